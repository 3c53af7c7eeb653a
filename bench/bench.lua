-- The benchmark driver: atom against kubectl on one `atom sim`, see bench/README.md.
-- Invoked by bench/run, which owns the temp dir (--tmp) and kills the sim whose pid this
-- driver writes to TMP/sim.pid if the driver dies; this driver stops the sim and removes
-- its per-repetition dirs itself on a normal exit.
local cjson = require "cjson"

local bench_dir = assert(arg[0]:match("^(.*)/[^/]+$"), "run as bench/bench.lua")
package.path = bench_dir .. "/?.lua;" .. package.path
local gen = require "gen"
local stats = require "stats"

local USAGE = [[
usage: bench/run [options]
  --sizes 10,100,1000,5000   object counts to release (default 10,100,1000,5000)
  --reps N                   measured repetitions per tool and size (default 3)
  --ready-after S            sim: seconds from pod creation to ready (default 0.2)
  --tools atom,kubectl       which tools to run (default both; alternated per repetition)
  --out DIR                  where the JSON, table and PNG go (default bench/results)
  --atom PATH                atom binary (default build/atom)
  --kubectl PATH             kubectl binary (default kubectl)
  --replicas N               replicas per Deployment (default 2)
  --rollout-status           kubectl also runs `rollout status` per deployment after wait
  --timeout S                per-release timeout for both tools (default 600)
  --kubeconfig PATH          use an already running sim instead of starting one
  --profile N                one size, atom only (unless --tools), for perf: see README
  --no-warmup                skip the unmeasured warm-up release per tool
  --keep                     keep the generated manifests and logs
  --tmp DIR                  scratch dir (bench/run passes one)
]]

---------------------------------------------------------------------------------------------
-- shell helpers

local function q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function sh(cmd)
  local ok, _, code = os.execute(cmd)
  return ok == true, code
end

local function capture(cmd)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("a")
  local ok, _, code = p:close()
  return out, ok == true, code
end

local function read_file(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function write_file(path, s)
  local f = assert(io.open(path, "w"))
  f:write(s)
  f:close()
end

local function die(msg)
  io.stderr:write("bench: ", msg, "\n")
  os.exit(1)
end

---------------------------------------------------------------------------------------------
-- options

local function split_csv(s)
  local out = {}
  for x in s:gmatch("[^,]+") do out[#out + 1] = x end
  return out
end

local function parse_args(argv)
  local o = { sizes = { 10, 100, 1000, 5000 }, reps = 3, ready_after = 0.2,
              tools = { "atom", "kubectl" }, out = bench_dir .. "/results", atom = bench_dir .. "/../build/atom",
              kubectl = "kubectl", replicas = 2, rollout = false, timeout = 600,
              warmup = true, keep = false }
  local tools_given = false
  local i = 1
  local function val()
    i = i + 1
    if argv[i] == nil then die("missing value for " .. argv[i - 1]) end
    return argv[i]
  end
  local function num(s, name)
    local n = tonumber(s)
    if not n or n < 0 then die("bad number for " .. name .. ": " .. s) end
    return n
  end
  while argv[i] do
    local a = argv[i]
    if a == "--sizes" then
      o.sizes = {}
      for _, s in ipairs(split_csv(val())) do o.sizes[#o.sizes + 1] = math.tointeger(num(s, a)) end
    elseif a == "--reps" then o.reps = math.tointeger(num(val(), a))
    elseif a == "--ready-after" then o.ready_after = num(val(), a)
    elseif a == "--tools" then o.tools = split_csv(val()); tools_given = true
    elseif a == "--out" then o.out = val()
    elseif a == "--atom" then o.atom = val()
    elseif a == "--kubectl" then o.kubectl = val()
    elseif a == "--replicas" then o.replicas = math.tointeger(num(val(), a))
    elseif a == "--rollout-status" then o.rollout = true
    elseif a == "--timeout" then o.timeout = math.tointeger(num(val(), a))
    elseif a == "--kubeconfig" then o.kubeconfig = val()
    elseif a == "--profile" then o.profile = math.tointeger(num(val(), a))
    elseif a == "--no-warmup" then o.warmup = false
    elseif a == "--keep" then o.keep = true
    elseif a == "--tmp" then o.tmp = val()
    elseif a == "-h" or a == "--help" then io.write(USAGE); os.exit(0)
    else die("unknown option " .. a .. "\n" .. USAGE) end
    i = i + 1
  end
  if o.profile then
    o.sizes = { o.profile }
    if not tools_given then o.tools = { "atom" } end
  end
  for _, t in ipairs(o.tools) do
    if t ~= "atom" and t ~= "kubectl" then die("unknown tool " .. t) end
  end
  for _, n in ipairs(o.sizes) do
    if not n or n < 1 then die("sizes must be positive integers") end
  end
  if not o.reps or o.reps < 1 then die("--reps must be at least 1") end
  if not o.tmp then die("--tmp DIR is required (bench/run passes it)") end
  return o
end

---------------------------------------------------------------------------------------------
-- the simulated cluster

-- Talks to the sim's non-resource endpoints with curl, authenticated as the kubeconfig says.
local function sim_client(kubeconfig, kubectl, tmp)
  local out, ok = capture(string.format("%s --kubeconfig %s config view --raw --flatten --minify -o json 2>&1",
    q(kubectl), q(kubeconfig)))
  if not ok then die("cannot read kubeconfig " .. kubeconfig .. ": " .. out) end
  local cfg = cjson.decode(out)
  local cluster = cfg.clusters[1].cluster
  local user = (cfg.users and cfg.users[1] and cfg.users[1].user) or {}
  local args = { "-sS", "--fail", "--max-time", "120" }
  local function decode_to(field, name)
    local path = tmp .. "/" .. name
    local f = assert(io.popen("base64 -d > " .. q(path), "w"))
    f:write(field)
    f:close()
    return path
  end
  if cluster["insecure-skip-tls-verify"] then args[#args + 1] = "-k" end
  if cluster["certificate-authority-data"] then
    args[#args + 1] = "--cacert " .. q(decode_to(cluster["certificate-authority-data"], "ca.crt"))
  elseif cluster["certificate-authority"] then
    args[#args + 1] = "--cacert " .. q(cluster["certificate-authority"])
  end
  if user["client-certificate-data"] then
    args[#args + 1] = "--cert " .. q(decode_to(user["client-certificate-data"], "client.crt"))
    args[#args + 1] = "--key " .. q(decode_to(user["client-key-data"], "client.key"))
  end
  local token = user.token or (user.tokenFile and read_file(user.tokenFile))
  if token then
    -- a header file keeps the token out of the process list
    local hf = tmp .. "/auth.header"
    write_file(hf, "Authorization: Bearer " .. token:gsub("%s+$", "") .. "\n")
    args[#args + 1] = "-H @" .. q(hf)
  end
  local base = table.concat(args, " ")
  local server = cluster.server:gsub("/+$", "")
  local c = {}
  function c.request(method, path)
    local body, rok = capture(string.format("curl %s -X %s %s 2>&1", base, method, q(server .. path)))
    if not rok then die(method .. " " .. path .. " failed: " .. body) end
    return body
  end
  return c
end

local function start_sim(o)
  local kc = o.tmp .. "/kubeconfig"
  local log = o.tmp .. "/sim.log"
  local pidfile = o.tmp .. "/sim.pid"
  local cmd = string.format("%s sim --port 0 --kubeconfig %s --ready-after %s >%s 2>&1 & echo $! >%s",
    q(o.atom), q(kc), tostring(o.ready_after), q(log), q(pidfile))
  if not sh(cmd) then die("cannot start the sim") end
  local pid = math.tointeger(tonumber((read_file(pidfile) or ""):match("%d+")))
  for _ = 1, 200 do
    local s = read_file(kc)
    if s and s:find("current%-context") then return kc, pid end
    if not sh("kill -0 " .. pid .. " 2>/dev/null") then
      die("the sim exited:\n" .. (read_file(log) or ""))
    end
    sh("sleep 0.05")
  end
  die("the sim did not write its kubeconfig within 10 s:\n" .. (read_file(log) or ""))
end

local function stop_sim(pid, tmp)
  if not pid then return end
  sh("kill " .. pid .. " 2>/dev/null")
  for _ = 1, 100 do
    if not sh("kill -0 " .. pid .. " 2>/dev/null") then break end
    sh("sleep 0.05")
  end
  os.remove(tmp .. "/sim.pid")
end

-- apiserver_request_total lines, minus the reset request the sim counts after resetting.
local function parse_metrics(text)
  local m = { total = 0, watches = 0, by_verb = {}, by_resource = {}, sim_cpu_s = 0, errors = 0 }
  for labels, v in text:gmatch("apiserver_request_total{([^}]*)}%s+([%d%.e+]+)") do
    local verb = labels:match('verb="([^"]*)"') or ""
    local resource = labels:match('resource="([^"]*)"') or ""
    local code = tonumber(labels:match('code="([^"]*)"')) or 0
    local n = tonumber(v)
    if verb == "post" and resource == "" and code == 200 then n = n - 1 end
    if n > 0 then
      m.total = m.total + n
      if verb:upper() == "WATCH" then m.watches = m.watches + n end
      if code >= 400 then m.errors = m.errors + n end
      m.by_verb[verb] = (m.by_verb[verb] or 0) + n
      local rk = resource == "" and "(non-resource)" or resource
      m.by_resource[rk] = (m.by_resource[rk] or 0) + n
    end
  end
  m.sim_cpu_s = tonumber(text:match("\natom_sim_cpu_seconds_total%s+([%d%.e+]+)")) or 0
  m.non_watch = m.total - m.watches
  return m
end

---------------------------------------------------------------------------------------------
-- one repetition

local function parse_release_out(text)
  local r = { procs = {}, cpu_user_s = 0, cpu_sys_s = 0, rss_kb = 0 }
  for line in text:gmatch("[^\n]+") do
    local k, rest = line:match("^(%S+)%s*(.*)$")
    if k == "start" then r.start = tonumber(rest)
    elseif k == "end" then r["end"] = tonumber(rest)
    elseif k == "exit" then r.exit = tonumber(rest)
    elseif k == "proc" then
      local w, u, s, rss, code, label = rest:match("^(%S+) (%S+) (%S+) (%S+) (%S+) (%S+)$")
      local p = { wall_s = tonumber(w), user_s = tonumber(u), sys_s = tonumber(s),
                  rss_kb = tonumber(rss), exit = tonumber(code), what = label }
      r.procs[#r.procs + 1] = p
      r.cpu_user_s = r.cpu_user_s + (p.user_s or 0)
      r.cpu_sys_s = r.cpu_sys_s + (p.sys_s or 0)
      r.rss_kb = math.max(r.rss_kb, p.rss_kb or 0)
    end
  end
  return r
end

local function release_lua(ns, deadline)
  return string.format([[
-- generated by bench/bench.lua
local atom = require "atom"
return {
  name = "bench",
  namespace = %q,
  deadline = %d,
  objects = { atom.yaml("objects/*.yaml") },
}
]], ns, deadline)
end

-- Waits until the sim is idle (its CPU grows by under 5% of the time over 0.25 s), so that
-- garbage collection after the previous release's namespace deletion is not billed to the
-- next one. Returns the seconds waited (at most 60).
local function sim_cpu(ctx)
  return parse_metrics(ctx.sim.request("GET", "/metrics")).sim_cpu_s
end

local function settle(ctx)
  local waited, prev = 0, sim_cpu(ctx)
  while waited < 60 do
    sh("sleep 0.25")
    waited = waited + 0.25
    local cur = sim_cpu(ctx)
    if cur >= prev and cur - prev < 0.0125 then break end
    prev = cur
  end
  return waited
end

local function run_once(ctx, tool, n, tag)
  local o = ctx.o
  local work = o.tmp .. "/" .. tag
  assert(sh("mkdir -p " .. q(work .. "/objects")))
  local plan = gen.write(gen.plan(n, tag, o.replicas), work .. "/objects")
  local deps = {}
  for _, f in ipairs(plan.files) do
    for _, ob in ipairs(f.objects) do
      if ob.kind == "Deployment" then deps[#deps + 1] = ob.metadata.namespace .. " " .. ob.metadata.name end
    end
  end
  write_file(work .. "/deployments", table.concat(deps, "\n") .. "\n")
  write_file(work .. "/release.lua", release_lua(plan.namespaces[1], o.timeout))

  local out, log = work .. "/measure.txt", work .. "/tool.log"
  local cmd
  if tool == "atom" then
    cmd = string.format("%s %s %s atom %s %s %s", q(ctx.release_sh), q(out), q(log), q(ctx.kubeconfig),
      q(work), q(o.atom))
  else
    local nss = {}
    for i, ns in ipairs(plan.namespaces) do nss[i] = q(ns) end
    cmd = string.format("KUBECACHEDIR=%s %s %s %s kubectl %s %s %s %d %d %s", q(o.tmp .. "/kubecache"),
      q(ctx.release_sh), q(out), q(log), q(ctx.kubeconfig), q(work), q(o.kubectl), o.timeout,
      o.rollout and 1 or 0, table.concat(nss, " "))
  end

  ctx.sim.request("POST", "/atom-sim/reset-metrics")
  sh(cmd)
  local metrics = parse_metrics(ctx.sim.request("GET", "/metrics"))
  local marks = cjson.decode(ctx.sim.request("GET", "/atom-sim/ready-times"))
  local r = parse_release_out(read_file(out) or "")

  -- Only the release's own objects count: the sim also marks the ReplicaSets it creates.
  local mine = {}
  for _, fl in ipairs(plan.files) do
    for _, ob in ipairs(fl.objects) do
      mine[gen.resource_of(ob.kind) .. "/" .. (ob.metadata.namespace or "") .. "/" .. ob.metadata.name] = true
    end
  end
  local last_ready, nmarks = nil, 0
  for _, mk in ipairs(marks) do
    local ns = mk.namespace
    if ns == cjson.null or ns == nil then ns = "" end
    local resource = tostring(mk.rk):match("^[^.]+")
    if mine[resource .. "/" .. ns .. "/" .. tostring(mk.name)] then
      nmarks = nmarks + 1
      if not last_ready or mk.at > last_ready then last_ready = mk.at end
    end
  end

  local rec = {
    tool = tool, n = n, tag = tag, objects = plan.objects, namespaces = #plan.namespaces,
    deployments = plan.deployments, exit = r.exit, ok = r.exit == 0,
    wall_s = (r["end"] and r.start) and (r["end"] - r.start) or nil,
    cpu_user_s = r.cpu_user_s, cpu_sys_s = r.cpu_sys_s, cpu_s = r.cpu_user_s + r.cpu_sys_s,
    rss_kb = r.rss_kb, processes = r.procs,
    requests = { total = metrics.total, non_watch = metrics.non_watch, watches = metrics.watches,
                 errors = metrics.errors, by_verb = metrics.by_verb, by_resource = metrics.by_resource },
    req_per_obj = metrics.non_watch / n,
    ready_marks = nmarks, last_ready_at = last_ready, finished_at = r["end"],
    ready_latency_s = (last_ready and r["end"]) and (r["end"] - last_ready) or nil,
    -- when the sim had the last object ready, from the start: the floor under the wall time
    sim_ready_s = (last_ready and r.start) and (last_ready - r.start) or nil,
    sim_cpu_s = metrics.sim_cpu_s,
    sim_cpu_per_req_us = metrics.total > 0 and metrics.sim_cpu_s / metrics.total * 1e6 or nil,
  }
  rec.cpu_per_obj_us = rec.cpu_s / n * 1e6
  if not rec.ok then
    rec.log_tail = capture("tail -n 20 " .. q(log))
    io.stderr:write(string.format("bench: %s at N=%d failed (exit %s); log tail:\n%s\n", tool, n,
      tostring(r.exit), rec.log_tail))
  end

  -- Not measured: give the sim its memory back before the next repetition.
  sh(string.format("KUBECONFIG=%s KUBECACHEDIR=%s %s delete namespace %s --wait=true --timeout=120s >>%s 2>&1",
    q(ctx.kubeconfig), q(o.tmp .. "/kubecache"), q(o.kubectl), table.concat(plan.namespaces, " "),
    q(o.tmp .. "/cleanup.log")))
  if not o.keep then sh("rm -rf " .. q(work)) end
  rec.settle_s = settle(ctx)
  return rec
end

---------------------------------------------------------------------------------------------
-- reporting

local FIELDS = {
  { key = "wall_s", get = function(r) return r.wall_s end },
  { key = "cpu_s", get = function(r) return r.cpu_s end },
  { key = "cpu_per_obj_us", get = function(r) return r.cpu_per_obj_us end },
  { key = "rss_kb", get = function(r) return r.rss_kb end },
  { key = "req_per_obj", get = function(r) return r.req_per_obj end },
  { key = "requests", get = function(r) return r.requests.non_watch end },
  { key = "watches", get = function(r) return r.requests.watches end },
  { key = "ready_latency_s", get = function(r) return r.ready_latency_s end },
  { key = "sim_ready_s", get = function(r) return r.sim_ready_s end },
  { key = "sim_cpu_per_req_us", get = function(r) return r.sim_cpu_per_req_us end },
}

local function summarize(runs, sizes, tools)
  local s = {}
  for _, n in ipairs(sizes) do
    s[tostring(n)] = {}
    for _, tool in ipairs(tools) do
      local per = { reps = 0, failed = 0 }
      local cols = {}
      for _, f in ipairs(FIELDS) do cols[f.key] = {} end
      for _, r in ipairs(runs) do
        if r.n == n and r.tool == tool then
          if r.ok then
            per.reps = per.reps + 1
            for _, f in ipairs(FIELDS) do
              local v = f.get(r)
              if v then table.insert(cols[f.key], v) end
            end
          else
            per.failed = per.failed + 1
          end
        end
      end
      for _, f in ipairs(FIELDS) do per[f.key] = stats.summary(cols[f.key]) end
      s[tostring(n)][tool] = per
    end
  end
  return s
end

local function fmt(v, scale, dec)
  if v == nil then return "-" end
  return string.format("%." .. dec .. "f", v * scale)
end

local function cell(sm, scale, dec)
  if not sm then return "-" end
  if sm.n == 1 then return fmt(sm.median, scale, dec) end
  return string.format("%s [%s-%s]", fmt(sm.median, scale, dec), fmt(sm.min, scale, dec), fmt(sm.max, scale, dec))
end

local COLS = {
  { "wall s", "wall_s", 1, 3 },
  { "CPU ms", "cpu_s", 1e3, 0 },
  { "CPU us/obj", "cpu_per_obj_us", 1, 0 },
  { "RSS MB", "rss_kb", 1 / 1024, 1 },
  { "req/obj", "req_per_obj", 1, 2 },
  { "watches", "watches", 1, 0 },
  { "ready lat ms", "ready_latency_s", 1e3, 1 },
  { "sim ready s", "sim_ready_s", 1, 3 },
  { "sim us/req", "sim_cpu_per_req_us", 1, 0 },
}

local function render_table(summary, sizes, tools)
  local rows = { { "N", "tool", "ok" } }
  for _, c in ipairs(COLS) do table.insert(rows[1], c[1]) end
  for _, n in ipairs(sizes) do
    for _, tool in ipairs(tools) do
      local p = summary[tostring(n)][tool]
      local row = { tostring(n), tool, string.format("%d/%d", p.reps, p.reps + p.failed) }
      for _, c in ipairs(COLS) do row[#row + 1] = cell(p[c[2]], c[3], c[4]) end
      rows[#rows + 1] = row
    end
    local a, k = summary[tostring(n)].atom, summary[tostring(n)].kubectl
    if a and k then
      local row = { tostring(n), "atom/kubectl", "" }
      for _, c in ipairs(COLS) do
        local am, km = a[c[2]] and a[c[2]].median, k[c[2]] and k[c[2]].median
        row[#row + 1] = (am and km and km ~= 0) and string.format("%.3fx", am / km) or "-"
      end
      rows[#rows + 1] = row
    end
  end
  local widths = {}
  for _, row in ipairs(rows) do
    for i, v in ipairs(row) do widths[i] = math.max(widths[i] or 0, utf8.len(v) or #v) end
  end
  local lines = {}
  for ri, row in ipairs(rows) do
    local cells = {}
    for i, v in ipairs(row) do cells[i] = v .. string.rep(" ", widths[i] - (utf8.len(v) or #v)) end
    lines[#lines + 1] = "| " .. table.concat(cells, " | ") .. " |"
    if ri == 1 then
      local seps = {}
      for i = 1, #row do seps[i] = string.rep("-", widths[i]) end
      lines[#lines + 1] = "|-" .. table.concat(seps, "-|-") .. "-|"
    end
  end
  return table.concat(lines, "\n") .. "\n"
end

-- The issue's targets, judged on medians (latency on the p99 over every atom repetition).
local function judge_targets(summary, runs, sizes)
  local out = {}
  local function add(name, met, detail)
    out[#out + 1] = { target = name, met = met, detail = detail }
  end
  local function med(n, tool, key)
    local p = summary[tostring(n)] and summary[tostring(n)][tool]
    return p and p[key] and p[key].median
  end
  local largest = sizes[#sizes]
  for _, n in ipairs(sizes) do if n > largest then largest = n end end
  local aw, kw = med(1000, "atom", "wall_s"), med(1000, "kubectl", "wall_s")
  if aw and kw then
    add("wall time at 1000 objects >= 20x better than kubectl", kw / aw >= 20,
      string.format("kubectl/atom = %.1fx", kw / aw))
  end
  local rpo = med(largest, "atom", "req_per_obj")
  if rpo then
    add("<= 1.05 API requests per object (watches apart)", rpo <= 1.05,
      string.format("%.3f at N=%d, watches %s", rpo, largest, fmt(med(largest, "atom", "watches"), 1, 0)))
  end
  local lats = {}
  for _, r in ipairs(runs) do
    if r.tool == "atom" and r.ok and r.ready_latency_s then lats[#lats + 1] = r.ready_latency_s end
  end
  if #lats > 0 then
    local p99 = stats.percentile(lats, 99)
    add("readiness-detection latency p99 <= 5 ms", p99 <= 0.005,
      string.format("p99 %.1f ms over %d atom releases", p99 * 1e3, #lats))
  end
  local rss = med(5000, "atom", "rss_kb")
  if rss then
    add("client peak RSS <= 16 MB at 5000 objects", rss <= 16 * 1024, string.format("%.1f MB", rss / 1024))
  end
  local cpo = med(largest, "atom", "cpu_per_obj_us")
  if cpo then
    add("client CPU <= 50 us per object", cpo <= 50, string.format("%.0f us/obj at N=%d", cpo, largest))
  end
  -- Linear growth: the marginal wall time per object should not climb between sizes.
  local sorted_sizes = {}
  for i, n in ipairs(sizes) do sorted_sizes[i] = n end
  table.sort(sorted_sizes)
  local margins = {}
  for i = 2, #sorted_sizes do
    local n0, n1 = sorted_sizes[i - 1], sorted_sizes[i]
    local w0, w1 = med(n0, "atom", "wall_s"), med(n1, "atom", "wall_s")
    if w0 and w1 then
      margins[#margins + 1] = { from = n0, to = n1, us_per_obj = (w1 - w0) / (n1 - n0) * 1e6 }
    end
  end
  if #margins >= 2 then
    local first, last = margins[#margins - 1], margins[#margins]
    local parts = {}
    for _, m in ipairs(margins) do parts[#parts + 1] = string.format("%d->%d: %.0f us/obj", m.from, m.to, m.us_per_obj) end
    -- a quadratic step doubles the marginal cost when N grows 5-10x; allow noise below that
    add("wall time grows linearly with N", last.us_per_obj <= 2 * math.max(first.us_per_obj, 50),
      table.concat(parts, ", "))
  end
  return out
end

local function write_plot(o, summary, sizes, tools, stamp)
  local rows = {}
  local sorted_sizes = {}
  for i, n in ipairs(sizes) do sorted_sizes[i] = n end
  table.sort(sorted_sizes)
  for _, n in ipairs(sorted_sizes) do
    local cols = { tostring(n) }
    for _, tool in ipairs({ "atom", "kubectl" }) do
      local p = summary[tostring(n)][tool]
      local w = p and p.wall_s
      if w then
        cols[#cols + 1] = string.format("%.6f %.6f %.6f", w.median, w.min, w.max)
      else
        cols[#cols + 1] = "NaN NaN NaN"
      end
    end
    rows[#rows + 1] = table.concat(cols, " ")
  end
  local dat = string.format("%s/%s.dat", o.out, stamp)
  write_file(dat, "# N atom_median atom_min atom_max kubectl_median kubectl_min kubectl_max (wall s)\n"
    .. table.concat(rows, "\n") .. "\n")
  local png = string.format("%s/%s.png", o.out, stamp)
  local ok = sh(string.format("gnuplot -e %s %s 2>%s", q(string.format("datafile='%s'; outfile='%s'", dat, png)),
    q(bench_dir .. "/plot.gp"), q(o.tmp .. "/gnuplot.log")))
  if not ok then
    io.stderr:write("bench: gnuplot failed: ", read_file(o.tmp .. "/gnuplot.log") or "", "\n")
    return nil
  end
  return png
end

---------------------------------------------------------------------------------------------
-- main

local function main()
  local o = parse_args(arg)
  local ctx = { o = o, release_sh = bench_dir .. "/release.sh" }
  local pid
  if o.kubeconfig then
    ctx.kubeconfig = o.kubeconfig
  else
    ctx.kubeconfig, pid = start_sim(o)
  end
  ctx.sim = sim_client(ctx.kubeconfig, o.kubectl, o.tmp)
  local runid = string.format("%x", os.time() % 0x100000)
  local stamp = os.date("!%Y%m%dT%H%M%SZ")

  if o.warmup then
    -- Unmeasured: fills kubectl's discovery cache (people run it warm) and the page cache.
    for _, tool in ipairs(o.tools) do
      local r = run_once(ctx, tool, 10, string.format("w%s-%s", runid, tool:sub(1, 1)))
      if not r.ok then io.stderr:write("bench: warm-up of ", tool, " failed\n") end
    end
  end

  local runs = {}
  for _, n in ipairs(o.sizes) do
    for rep = 1, o.reps do
      -- alternate which tool goes first so drift in the sim or the machine hits both
      local order = {}
      for i, t in ipairs(o.tools) do order[i] = t end
      if rep % 2 == 0 then
        local rev = {}
        for i = #order, 1, -1 do rev[#rev + 1] = order[i] end
        order = rev
      end
      for _, tool in ipairs(order) do
        local tag = string.format("b%s-%s%d-r%d", runid, tool:sub(1, 1), n, rep)
        local r = run_once(ctx, tool, n, tag)
        r.rep = rep
        runs[#runs + 1] = r
        io.stderr:write(string.format("bench: N=%-5d %-7s rep %d: %s wall %.3f s, cpu %.0f ms, rss %.1f MB, %.2f req/obj, %d watches, ready lat %s ms\n",
          n, tool, rep, r.ok and "ok" or "FAILED", r.wall_s or -1, r.cpu_s * 1e3, r.rss_kb / 1024,
          r.req_per_obj, r.requests.watches, r.ready_latency_s and string.format("%.1f", r.ready_latency_s * 1e3) or "-"))
      end
    end
  end

  stop_sim(pid, o.tmp)

  local summary = summarize(runs, o.sizes, o.tools)
  local tbl = render_table(summary, o.sizes, o.tools)
  local targets = judge_targets(summary, runs, o.sizes)
  local tlines = {}
  for _, t in ipairs(targets) do
    tlines[#tlines + 1] = string.format("- [%s] %s: %s", t.met and "met" or "NOT met", t.target, t.detail)
  end
  local report = tbl .. (#tlines > 0 and ("\nTargets (issue #8):\n" .. table.concat(tlines, "\n") .. "\n") or "")
  io.write(report)

  assert(sh("mkdir -p " .. q(o.out)))
  local atom_version = capture(q(o.atom) .. " version 2>&1")
  local kubectl_version = capture(q(o.kubectl) .. " version --client 2>&1")
  local json = {
    schema = "atom-bench/1",
    started = stamp,
    options = { sizes = o.sizes, reps = o.reps, ready_after = o.ready_after, tools = o.tools,
                replicas = o.replicas, rollout_status = o.rollout, timeout = o.timeout,
                profile = o.profile, external_sim = o.kubeconfig ~= nil },
    host = { nproc = tonumber((capture("nproc"))), uname = (capture("uname -srm"):gsub("%s+$", "")),
             atom = atom_version:gsub("%s+$", ""), kubectl = kubectl_version:gsub("%s+$", "") },
    runs = runs,
    summary = summary,
    targets = targets,
    table = tbl,
  }
  local jpath = string.format("%s/%s.json", o.out, stamp)
  write_file(jpath, cjson.encode(json))
  write_file(string.format("%s/%s.txt", o.out, stamp), report)
  local png = write_plot(o, summary, o.sizes, o.tools, stamp)
  io.stderr:write("bench: wrote ", jpath, png and (" and " .. png) or "", "\n")
  for _, r in ipairs(runs) do
    if not r.ok then return 3 end
  end
  return 0
end

os.exit(main())
