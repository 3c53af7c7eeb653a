-- Shared fixture for the release specs: a sim, release scripts written to a temp dir, and
-- `atom` run in the foreground or the background against the sim.
--
--   local S = require "release.support"
--   local s = S.sim{ ready_after = 1 }           -- helpers.sim, time scale 10
--   local dir = S.script(RELEASE_SRC)             -- a folder holding release.lua
--   local r = S.atom(s, "run " .. dir .. "/release.lua", { env = { "V=2" } })
--   local bg = S.bg(s, "run ...", { env = ... }); bg:kill(9); local code = bg:wait(30)
--   S.eventually(function() return S.state(s, "shop", "shop") == "Updating" end, 20)
local sim = require "helpers.sim"
local json = require "cjson"

local S = {}

S.quote = sim.quote

function S.sim(opts)
  opts = opts or {}
  opts.time_scale = opts.time_scale or 10
  return sim.start(opts)
end

function S.sleep(seconds) sim.sleep(seconds) end

function S.script(text, dir)
  dir = dir or sim.tmpdir()
  sim.write_file(dir .. "/release.lua", text)
  return dir
end

function S.bin() return sim.bin() end

function S.atom(s, args, ropts)
  return s:run(S.quote(sim.bin()) .. " " .. args, ropts)
end

-- `atom ARGS` in the background: { pid, wait(timeout) -> exit code, kill(sig), stderr() }.
function S.bg(s, args, ropts)
  ropts = ropts or {}
  local dir = sim.tmpdir()
  local env = { "KUBECONFIG=" .. s.kubeconfig, "HOME=" .. s.home }
  for _, kv in ipairs(ropts.env or {}) do env[#env + 1] = kv end
  local q = {}
  for _, kv in ipairs(env) do q[#q + 1] = S.quote(kv) end
  local script = string.format("env -u LD_PRELOAD %s %s %s > %s/out 2> %s/err & echo $! > %s/pid; wait $!; echo $? > %s/rc",
    table.concat(q, " "), S.quote(sim.bin()), args, dir, dir, dir, dir)
  os.execute("sh -c " .. S.quote(script) .. " >/dev/null 2>&1 &")
  local h = { dir = dir }
  S.eventually(function() h.pid = tonumber(sim.read_file(dir .. "/pid") or ""); return h.pid end, 10)
  function h.stderr() return sim.read_file(dir .. "/err") or "" end
  function h.stdout() return sim.read_file(dir .. "/out") or "" end
  function h.kill(sig) os.execute("kill -" .. tostring(sig or "TERM") .. " " .. h.pid .. " 2>/dev/null") end
  -- The shell creates rc before it writes the status into it: an empty rc is not an end.
  local function rc() return tonumber(sim.read_file(dir .. "/rc") or "") end
  function h.wait(timeout)
    local ok = S.eventually(rc, timeout or 60)
    if not ok then h.kill("KILL") end
    return rc()
  end
  return h
end

-- The fixture of the specs that run S.RELEASE, registered in the enclosing describe: a sim
-- (S.sim(opts)) started before its tests with S.RELEASE written out, stopped after them.
-- started(sim, dir) hands both to the spec once setup has run. Returns run(args, env):
-- atom against that sim.
function S.release_suite(opts, started)
  -- A required module does not see the spec's environment; busted's api does.
  local busted = require "busted"
  local s
  busted.setup(function()
    s = S.sim(opts)
    started(s, S.script(S.RELEASE))
  end)
  busted.teardown(function() if s then s.stop() end end)
  return function(args, env)
    return S.atom(s, args, { env = env, timeout = 90 })
  end
end

-- Polls fn until it returns a truthy value (or timeout seconds pass): returns that value.
function S.eventually(fn, timeout)
  local deadline = os.time() + (timeout or 20)
  repeat
    local v = fn()
    if v then return v end
    sim.sleep(0.05)
  until os.time() > deadline
  return nil
end

function S.kubectl_json(s, argline)
  local r = s:kubectl(argline .. " -o json")
  if r.code ~= 0 then return nil, r.stderr end
  return json.decode(r.stdout)
end

function S.atom_record(s, ns, name)
  return S.kubectl_json(s, string.format("get atom %s -n %s", name, ns))
end

function S.state(s, ns, name)
  local a = S.atom_record(s, ns, name)
  return a and a.status and a.status.state
end

-- Sorted names of the objects of a kind in a namespace.
function S.names(s, kind, ns)
  local l = S.kubectl_json(s, string.format("get %s -n %s", kind, ns)) or { items = {} }
  local out = {}
  for _, o in ipairs(l.items) do out[#out + 1] = o.metadata.name end
  table.sort(out)
  return out
end

function S.image(s, ns, deployment)
  local d = S.kubectl_json(s, string.format("get deployment %s -n %s", deployment, ns))
  return d and d.spec.template.spec.containers[1].image
end

-- A release with a Deployment `web`, ConfigMap `common` and one ConfigMap only its
-- version V has (`only-v<V>`); TAG picks the image (does-not-exist: never ready); DEADLINE;
-- ROLLBACK_DEADLINE; HOOK_SPIN makes the before-Updating hook spin that many seconds (kills
-- during Pending), ROLLBACK_SPIN the after-Rollback one (kills in Rollback before its apply);
-- SELECTOR changes the Deployment's (immutable) selector; RECREATE annotates it recreatable;
-- REPLICAS sets web's replicas (default 2); BAD adds a Deployment `bad` that is never ready.
S.RELEASE = [[
local atom = require "atom"
local v = atom.env("V", "1")
local tag = atom.env("TAG", "1.27")
local app = atom.env("SELECTOR", "web")
local spin = tonumber(atom.env("HOOK_SPIN", "0"))
local rollback_spin = tonumber(atom.env("ROLLBACK_SPIN", "0"))
local replicas = tonumber(atom.env("REPLICAS", "2"))
local annotations = {}
if atom.env("RECREATE", "") ~= "" then annotations["atom/recreate"] = "true" end
return {
  name = atom.env("NAME", "shop"), namespace = atom.env("NS", "shop"),
  deadline = tonumber(atom.env("DEADLINE", "20")),
  rollback_deadline = tonumber(atom.env("ROLLBACK_DEADLINE", "")),
  limits = { instructions = 1e12, seconds = 60 },
  objects = {
    { apiVersion = "apps/v1", kind = "Deployment", metadata = { name = "web", annotations = annotations },
      spec = { replicas = replicas, selector = { matchLabels = { app = app } },
        template = { metadata = { labels = { app = app } },
          spec = { containers = { { name = "web", image = "nginx:" .. tag } } } } } },
    { apiVersion = "v1", kind = "ConfigMap", metadata = { name = "common" }, data = { v = v } },
    { apiVersion = "v1", kind = "ConfigMap", metadata = { name = "only-v" .. v }, data = { v = v } },
    atom.env("BAD", "") ~= "" and {
    apiVersion = "apps/v1", kind = "Deployment", metadata = { name = "bad" },
    spec = { replicas = 1, selector = { matchLabels = { app = "bad" } },
      template = { metadata = { labels = { app = "bad" } },
        spec = { containers = { { name = "bad", image = "nginx:does-not-exist" } } } } } } or {},
  },
  hooks = { before = { Updating = function(ctx)
    local t = os.clock()
    while os.clock() - t < spin do end
  end }, after = { Rollback = function(ctx)
    local t = os.clock()
    while os.clock() - t < rollback_spin do end
  end } },
}
]]

return S
