-- The examples and the issue's checks for the Lua surface, end to end: `atom run` against
-- a real `atom sim` over HTTP, judged with kubectl.
local sim = require "helpers.sim"

local function atom_run(s, args, opts)
  return s:run(sim.quote(sim.bin()) .. " run " .. args, opts)
end

local function count(text, pattern)
  local n = 0
  for _ in text:gmatch(pattern) do n = n + 1 end
  return n
end

local function write_release(text)
  local dir = sim.tmpdir()
  sim.write_file(dir .. "/release.lua", text)
  return dir
end

describe("examples against atom sim #kubectl", function()
  local s
  before_each(function() s = sim.start({ ready_after = 0.2 }) end)
  after_each(function() if s then s.stop() end end)

  it("hello reaches Running with its Deployment, Service and ConfigMap", function()
    local r = atom_run(s, "examples/hello/release.lua")
    assert.equal(0, r.code, r.stderr)
    assert.matches("hello: version 1 Running", r.stdout .. r.stderr)
    assert.matches("hello v1 is live %(nginx " .. (os.getenv("HELLO_TAG") or "1.27"):gsub("%p", "%%%0") .. "%)", r.stderr)
    local k = s:kubectl("get deployment/hello service/hello configmap/hello-settings -n hello -o name")
    assert.equal(0, k.code, k.stderr)
    assert.equal("deployment.apps/hello\nservice/hello\nconfigmap/hello-settings\n", k.stdout)
  end)

  it("crd-readiness: the CRD kind reaches Running with the override", function()
    local r = atom_run(s, "examples/crd-readiness/release.lua")
    assert.equal(0, r.code, r.stderr)
    local k = s:kubectl("get servicemonitors.monitoring.coreos.com example-app -n monitoring-demo -o name")
    assert.equal("servicemonitor.monitoring.coreos.com/example-app\n", k.stdout)
  end)

  it("migration-hook: the Job runs before Updating, the after-Running ConfigMap stays", function()
    local r = atom_run(s, "examples/migration-hook/release.lua")
    assert.equal(0, r.code, r.stderr)
    assert.matches("Job shop/migrate%-v1 completed", r.stderr)
    assert.equal("", s:kubectl("get jobs -n shop -o name").stdout) -- cleaned up
    r = atom_run(s, "examples/migration-hook/release.lua", { env = { "SHOP_TAG=2.4.2" } })
    assert.equal(0, r.code, r.stderr)
    local k = s:kubectl("get configmap shop-release-log -n shop -o jsonpath={.data.version}/{.data.tag}")
    assert.equal(0, k.code, k.stderr)
    assert.equal("2/2.4.2", k.stdout)
  end)
end)

describe("hooks and policies against atom sim #kubectl", function()
  local s, dirs
  before_each(function() dirs = {} end)
  after_each(function()
    if s then s.stop() end
    for _, d in ipairs(dirs) do os.execute("rm -rf " .. sim.quote(d)) end
  end)

  -- A kind whose CRD declares status.conditions: the sim runs no controller for it, so
  -- nothing ever reports on a Widget.
  local WIDGETS = [[
local atom = require "atom"
local release = {
  name = "widgets", namespace = "widgets",
  objects = {
    { apiVersion = "apiextensions.k8s.io/v1", kind = "CustomResourceDefinition",
      metadata = { name = "widgets.example.com" },
      spec = { group = "example.com", scope = "Namespaced",
        names = { kind = "Widget", plural = "widgets", singular = "widget", listKind = "WidgetList" },
        versions = { { name = "v1", served = true, storage = true, subresources = { status = {} },
          schema = { openAPIV3Schema = { type = "object", ["x-kubernetes-preserve-unknown-fields"] = true,
            properties = { status = { type = "object", ["x-kubernetes-preserve-unknown-fields"] = true,
              properties = { conditions = { type = "array", items = { type = "object",
                ["x-kubernetes-preserve-unknown-fields"] = true } } } } } } } } } } },
    { apiVersion = "example.com/v1", kind = "Widget", metadata = { name = "w1" }, spec = { size = 3 } },
    { apiVersion = "v1", kind = "ConfigMap", metadata = { name = "widget-settings" } },
  },
}
if atom.env("WIDGET_OVERRIDE") == "on" then
  release.readiness = { ["Widget.example.com"] = function(obj)
    if obj.spec and obj.spec.size then return "ready", "size " .. obj.spec.size end
    return "progressing", "no size yet"
  end }
end
return release
]]

  it("a CRD kind the sim never marks ready reaches Running with a user readiness override", function()
    s = sim.start({ ready_after = 0.2 })
    local dir = write_release(WIDGETS)
    dirs[#dirs + 1] = dir
    local r = atom_run(s, sim.quote(dir .. "/release.lua"), { env = { "WIDGET_OVERRIDE=on" } })
    assert.equal(0, r.code, r.stderr)
    assert.matches("to=Running", r.stderr)
    assert.equal("widget.example.com/w1\n", s:kubectl("get widgets -n widgets -o name").stdout)
  end)

  it("without the override it reaches Deadline -> Reverted", function()
    s = sim.start({ ready_after = 0.2 })
    local dir = write_release(WIDGETS)
    dirs[#dirs + 1] = dir
    local r = atom_run(s, "--deadline 3 " .. sim.quote(dir .. "/release.lua"))
    assert.equal(3, r.code, r.stderr)
    assert.matches("from=Updating to=Deadline", r.stderr)
    assert.matches("waiting for the controller to report status", r.stderr)
    assert.matches("to=Reverted", r.stderr)
    assert.not_equal(0, s:kubectl("get configmap widget-settings -n widgets -o name").code)
  end)

  it("a failing migration Job: before Updating fails -> Error -> Reverted, naming the hook's line", function()
    local scenario = sim.tmpdir()
    dirs[#dirs + 1] = scenario
    sim.write_file(scenario .. "/s.lua", 'return { rules = { { match = { kind = "Job" }, job_fails = true } } }')
    s = sim.start({ ready_after = 0.2, scenario = scenario .. "/s.lua" })
    local r = atom_run(s, "examples/migration-hook/release.lua")
    assert.equal(3, r.code, r.stderr)
    assert.matches("from=Pending to=Error", r.stderr)
    assert.matches("hook before Updating %(examples/migration%-hook/release%.lua:23, [^)]*hooks/migration_job%.lua:19%) failed", r.stderr)
    assert.matches("BackoffLimitExceeded", r.stderr)
    assert.matches("container migrate terminated: Error %(exit code 1%)", r.stderr)
    assert.matches("stack traceback", r.stderr)
    assert.matches("to=Reverted", r.stderr)
  end)

  it("a before Updating hook that raises: Error -> Reverted with its file:line and traceback", function()
    s = sim.start({ ready_after = 0.2 })
    local dir = write_release([[
return {
  name = "boom", namespace = "boom",
  objects = { { apiVersion = "v1", kind = "ConfigMap", metadata = { name = "c" } } },
  hooks = { before = { Updating = function(ctx)
    local settings = nil
    return settings.flag
  end } },
}
]])
    dirs[#dirs + 1] = dir
    local r = atom_run(s, sim.quote(dir .. "/release.lua"))
    assert.equal(3, r.code, r.stderr)
    assert.matches("hook before Updating %(" .. dir:gsub("%p", "%%%0") .. "/release%.lua:4%) failed: .*release%.lua:6: attempt to index a nil value", r.stderr)
    assert.matches("stack traceback", r.stderr)
    assert.matches("to=Reverted", r.stderr)
  end)

  it("a hook that loops forever is stopped by the budget and the release still ends", function()
    s = sim.start({ ready_after = 0.2 })
    local dir = write_release([[
return {
  name = "spin", namespace = "spin",
  limits = { instructions = 2000000 },
  objects = { { apiVersion = "v1", kind = "ConfigMap", metadata = { name = "c" } } },
  hooks = { before = { Updating = function(ctx) while true do end end } },
}
]])
    dirs[#dirs + 1] = dir
    local r = atom_run(s, sim.quote(dir .. "/release.lua"))
    assert.equal(3, r.code, r.stderr)
    assert.matches("hook before Updating %(.*release%.lua:5%) was stopped: it ran out of its instruction budget", r.stderr)
  end)

  it("a check that loops forever and one that allocates without bound fail the release, which still ends", function()
    s = sim.start({ ready_after = 0.2 })
    local dir = write_release([[
return {
  name = "runaway", namespace = "runaway",
  limits = { instructions = 5000000, heap = 32 * 1024 * 1024 },
  objects = {
    { apiVersion = "v1", kind = "ConfigMap", metadata = { name = "spin" } },
    { apiVersion = "v1", kind = "Secret", metadata = { name = "hog" } },
  },
  readiness = {
    ["ConfigMap/spin"] = function(obj) while true do end end,
    ["Secret/hog"] = function(obj)
      local t = {}
      while true do t[#t + 1] = string.rep("x", 1 << 20) .. #t end
    end,
  },
}
]])
    dirs[#dirs + 1] = dir
    local r = atom_run(s, sim.quote(dir .. "/release.lua"))
    assert.equal(3, r.code, r.stderr)
    assert.matches("to=Error", r.stderr)
    assert.matches("readiness check [%w/]+ %(.*release%.lua:%d+%) failed: ", r.stderr)
    assert.matches("to=Reverted", r.stderr)
    local r2 = atom_run(s, sim.quote(dir .. "/release.lua"))
    assert.equal(3, r2.code) -- the host survived both and the next run behaves the same
  end)

  it("a script that allocates without bound is stopped at the heap ceiling (exit 2)", function()
    s = sim.start({ ready_after = 0.2 })
    local dir = write_release([[
local t = {}
while true do t[#t + 1] = string.rep("y", 1 << 20) .. #t end
]])
    dirs[#dirs + 1] = dir
    local r = atom_run(s, sim.quote(dir .. "/release.lua"))
    assert.equal(2, r.code, r.stderr)
    assert.matches("release%.lua:2: .*heap ceiling", r.stderr)
  end)

  it("ready-made hooks in a real run: webhook_notify posts, scale_down_canary scales", function()
    s = sim.start({ ready_after = 0.2 })
    -- A one-shot HTTP server in its own process: prints its port, then what it received.
    local server = [[
      local socket = require "socket"
      local srv = assert(socket.bind("127.0.0.1", 0))
      local _, p = srv:getsockname(); print(p); io.stdout:flush()
      srv:settimeout(30)
      local c = assert(srv:accept())
      c:settimeout(5)
      local first, len = nil, 0
      for line in function() return c:receive("*l") end do
        if line == "" then break end
        first = first or line
        len = tonumber(line:match("^[Cc]ontent%-[Ll]ength:%s*(%d+)")) or len
      end
      local body = c:receive(len)
      c:send("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
      c:close()
      print(first); print(body)
    ]]
    local proc = assert(io.popen("lua5.4 -e " .. sim.quote(server), "r"))
    local port = proc:read("l")
    local dir = write_release([[
local atom = require "atom"
local notify = require("atom.hooks.webhook_notify"){ url = atom.env("HOOK_URL"), required = true }
local canary_off = require("atom.hooks.scale_down_canary"){ name = "web-canary" }
local function deployment(name)
  return { apiVersion = "apps/v1", kind = "Deployment", metadata = { name = name },
    spec = { replicas = 2, selector = { matchLabels = { app = name } },
      template = { metadata = { labels = { app = name } },
        spec = { containers = { { name = "c", image = "nginx:1.27" } } } } } }
end
return {
  name = "canary", namespace = "canary",
  objects = { deployment("web"), deployment("web-canary") },
  hooks = { after = { Running = function(ctx) notify(ctx); canary_off(ctx) end } },
}
]])
    dirs[#dirs + 1] = dir
    local r = atom_run(s, sim.quote(dir .. "/release.lua"),
      { env = { "HOOK_URL=http://127.0.0.1:" .. port .. "/hooks/T1" } })
    local request_line, body = proc:read("l"), proc:read("l")
    proc:close()
    assert.equal(0, r.code, r.stderr)
    assert.equal("POST /hooks/T1 HTTP/1.1", request_line)
    assert.same({ text = "release canary v1: Updating => Running" }, require("cjson").decode(body))
    local k = s:kubectl("get deployment web-canary -n canary -o jsonpath={.spec.replicas}")
    assert.equal("0", k.stdout)
  end)

  it("os.execute in a script is refused before anything is written (exit 2)", function()
    s = sim.start({ ready_after = 0.2 })
    local dir = write_release("os.execute('true')\nreturn { name = 'x', objects = {} }\n")
    dirs[#dirs + 1] = dir
    local r = atom_run(s, sim.quote(dir .. "/release.lua"))
    assert.equal(2, r.code, r.stderr)
    assert.matches("release%.lua:1: os%.execute is not allowed in release scripts %(run with %-%-allow%-exec to allow it%)", r.stderr)
    assert.equal("", s:kubectl("get atoms -A -o name").stdout)
  end)

  it("policy fail ends in Failure with the failed version's objects left in place", function()
    s = sim.start({ ready_after = 0.2 })
    local dir = write_release([[
return {
  name = "keep", namespace = "keep", policy = "fail",
  objects = {
    { apiVersion = "v1", kind = "ConfigMap", metadata = { name = "keep-settings" } },
    { apiVersion = "apps/v1", kind = "Deployment", metadata = { name = "keep" },
      spec = { replicas = 1, selector = { matchLabels = { app = "keep" } },
        template = { metadata = { labels = { app = "keep" } },
          spec = { containers = { { name = "c", image = "example.com/keep:does-not-exist" } } } } } },
  },
}
]])
    dirs[#dirs + 1] = dir
    local r = atom_run(s, "--deadline 4 " .. sim.quote(dir .. "/release.lua"))
    assert.equal(4, r.code, r.stderr)
    assert.matches("to=Failure", r.stderr)
    assert.not_matches("to=Rollback", r.stderr)
    local k = s:kubectl("get deployment/keep configmap/keep-settings -n keep -o name")
    assert.equal("deployment.apps/keep\nconfigmap/keep-settings\n", k.stdout)
  end)

  it("retry-policy retries exactly twice, then rolls back", function()
    s = sim.start({ ready_after = 0.2 })
    local r = atom_run(s, "--deadline 3 examples/retry-policy/release.lua",
      { env = { "API_IMAGE=registry.example.com/api:does-not-exist" }, timeout = 120 })
    assert.equal(3, r.code, r.stderr)
    assert.equal(3, count(r.stderr, "to=Updating"))       -- the first try and two retries
    assert.equal(2, count(r.stderr, "from=%a+ to=Updating reason=\"retry"), r.stderr)
    assert.equal(1, count(r.stderr, "to=Rollback"))
    assert.matches("to=Reverted", r.stderr)
  end)
end)
