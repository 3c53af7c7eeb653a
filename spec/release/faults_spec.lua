-- Immutable fields (with and without recreate), API faults during a release, a version too
-- big for one record object, and the hooks and policies of a script as the engine runs them.
local S = require "release.support"
local json = require "cjson"

local function transitions_of(s, run, name, version)
  local st = json.decode(run("status " .. name .. " -n " .. name .. " -o json").stdout)
  local path, reasons = {}, {}
  for _, t in ipairs(st.transitions) do
    if t.version == version then path[#path + 1] = t.to; reasons[t.to] = t.reason end
  end
  return path, reasons
end

describe("release edge cases #kubectl", function()
  local s, dir
  local run = S.release_suite({ ready_after = 1 }, function(sim, d) s, dir = sim, d end)

  it("an immutable-field change without recreate is an Error and rolls back", function()
    assert.are.equal(0, run("run " .. dir .. "/release.lua -q", { "NAME=im1", "NS=im1" }).code)
    local r = run("run " .. dir .. "/release.lua -q", { "NAME=im1", "NS=im1", "V=2", "SELECTOR=web2" })
    assert.are.equal(3, r.code, r.stderr)
    local path, reasons = transitions_of(s, run, "im1", 2)
    assert.are.same({ "Pending", "Error", "Rollback", "Reverted" }, path)
    assert.matches("Deployment/im1/web.*immutable.*atom.dev/recreate", reasons.Error)
    local d = S.kubectl_json(s, "get deployment web -n im1")
    assert.are.equal("web", d.spec.selector.matchLabels.app)
    assert.are.same({ "common", "only-v1" }, S.names(s, "configmaps", "im1"))
  end)

  it("an immutable-field change with atom/recreate deletes and recreates the object", function()
    assert.are.equal(0, run("run " .. dir .. "/release.lua -q", { "NAME=im2", "NS=im2", "RECREATE=1" }).code)
    local uid = S.kubectl_json(s, "get deployment web -n im2").metadata.uid
    local r = run("run " .. dir .. "/release.lua", { "NAME=im2", "NS=im2", "V=2", "SELECTOR=web2", "RECREATE=1" })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("recreated Deployment/im2/web", r.stderr)
    local d = S.kubectl_json(s, "get deployment web -n im2")
    assert.are.equal("web2", d.spec.selector.matchLabels.app)
    assert.are_not.equal(uid, d.metadata.uid)
  end)

  it("splits a version bigger than one object across parts and reads it back for a rollback", function()
    local big = S.script([[
local atom = require "atom"
local v = atom.env("V", "1")
math.randomseed(7)
local function blob(n)
  local t = {}
  for i = 1, n do t[i] = string.char(math.random(33, 126)) end
  return table.concat(t)
end
local objects = {}
for i = 1, 3 do
  objects[i] = { apiVersion = "v1", kind = "ConfigMap", metadata = { name = "blob" .. i }, data = { x = blob(300000) } }
end
objects[4] = { apiVersion = "apps/v1", kind = "Deployment", metadata = { name = "web" },
  spec = { replicas = 1, selector = { matchLabels = { app = "web" } },
    template = { metadata = { labels = { app = "web" } },
      spec = { containers = { { name = "web", image = v == "1" and "nginx:1" or "nginx:does-not-exist" } } } } } }
return { name = "big", namespace = "big", deadline = 2, objects = objects,
  limits = { instructions = 1e10, seconds = 30 } }
]])
    local r1 = run("run " .. big .. "/release.lua -q")
    assert.are.equal(0, r1.code, r1.stderr)
    local parts = S.names(s, "atomversions", "big")
    assert.are.same("big.v1", parts[1])
    assert.truthy(#parts >= 2, "expected big.v1.<n> parts, got " .. table.concat(parts, ","))
    local blob_before = S.kubectl_json(s, "get configmap blob2 -n big").data.x
    s:kubectl("delete configmap blob2 -n big")
    local r2 = run("run " .. big .. "/release.lua -q", { "V=2" })
    assert.are.equal(3, r2.code, r2.stderr)
    -- the rollback re-applied version 1 from its parts: blob2 is back, byte for byte
    assert.are.equal(blob_before, S.kubectl_json(s, "get configmap blob2 -n big").data.x)
  end)

  it("a failing before-hook turns the transition into Error; a failing after-hook is reported, not fatal", function()
    local hooked = S.script([[
local atom = require "atom"
return { name = "hk", namespace = "hk", deadline = 10,
  objects = { { apiVersion = "v1", kind = "ConfigMap", metadata = { name = "c" }, data = { v = atom.env("V", "1") } } },
  hooks = {
    before = { Updating = function(ctx) if ctx.version == 2 then error("migration refused") end end },
    after = { Running = function(ctx) error("notifier down") end },
  } }
]])
    local r1 = run("run " .. hooked .. "/release.lua -q")
    assert.are.equal(0, r1.code, r1.stderr)
    local warn = s:kubectl("get events -n hk --field-selector reason=HookFailed")
    assert.matches("after hook of Running failed.*notifier down", warn.stdout)
    local rec = S.atom_record(s, "hk", "hk")
    assert.are.equal("Running", rec.status.hookError.state)
    assert.matches("notifier down", rec.status.hookError.message)
    local r2 = run("run " .. hooked .. "/release.lua -q", { "V=2" })
    assert.are.equal(3, r2.code, r2.stderr)
    local path, reasons = transitions_of(s, run, "hk", 2)
    assert.are.same({ "Pending", "Error", "Rollback", "Reverted" }, path)
    assert.matches("before hook of Updating failed.*migration refused", reasons.Error)
    assert.matches("release%.lua:%d+", reasons.Error)
    assert.are.equal("1", S.kubectl_json(s, "get configmap c -n hk").data.v)
  end)

  it("follows the policy: fail keeps the failed version, retry re-applies N times then rolls back", function()
    local pol = S.script([[
local atom = require "atom"
local retry = require "atom.policy.retry"
local p = atom.env("POLICY", "rollback")
return { name = atom.env("NAME", "pol"), namespace = atom.env("NAME", "pol"), deadline = 1,
  policy = p == "retry" and retry { times = 2 } or p,
  objects = { { apiVersion = "apps/v1", kind = "Deployment", metadata = { name = "web" },
    spec = { replicas = 1, selector = { matchLabels = { app = "web" } },
      template = { metadata = { labels = { app = "web" } },
        spec = { containers = { { name = "web", image = "nginx:" .. atom.env("TAG", "1") } } } } } } } }
]])
    for _, p in ipairs({ "fail", "retry" }) do
      local name = "pol-" .. p
      assert.are.equal(0, run("run " .. pol .. "/release.lua -q", { "NAME=" .. name }).code)
      local r = run("run " .. pol .. "/release.lua -q", { "NAME=" .. name, "POLICY=" .. p, "TAG=does-not-exist" })
      local path = transitions_of(s, run, name, 2)
      if p == "fail" then
        assert.are.equal(4, r.code, r.stderr)
        assert.are.same({ "Pending", "Updating", "Deadline", "Failure" }, path)
        assert.are.equal("nginx:does-not-exist", S.image(s, name, "web"))
      else
        assert.are.equal(3, r.code, r.stderr)
        assert.are.same({ "Pending", "Updating", "Deadline", "Updating", "Deadline", "Updating", "Deadline",
                          "Rollback", "Reverted" }, path)
        assert.are.equal("nginx:1", S.image(s, name, "web"))
      end
    end
  end)
end)

describe("a release under API faults #kubectl", function()
  it("ends the same: 503 bursts, expired (410) and dropped watches", function()
    local dir = S.script(S.RELEASE)
    local scen = S.script("", nil) .. "/scenario.lua"
    local f = assert(io.open(scen, "w"))
    f:write([[
return { faults = {
  { verb = "patch", status = 503, count = 3 },
  { verb = "create", status = 503, count = 2 },
  { verb = "watch", expire = true, count = 3 },
  { verb = "watch", drop_watch_after = 3, count = 20 },
  { verb = "get", status = 500, count = 2 },
} }
]])
    f:close()
    local s = S.sim({ ready_after = 5, scenario = scen })
    local ok, err = pcall(function()
      local r1 = S.atom(s, "run " .. dir .. "/release.lua -q", { timeout = 90 })
      assert.are.equal(0, r1.code, r1.stderr)
      local r2 = S.atom(s, "run " .. dir .. "/release.lua -q", { env = { "V=2", "TAG=does-not-exist", "DEADLINE=3" }, timeout = 90 })
      assert.are.equal(3, r2.code, r2.stderr)
      assert.are.same({ "common", "only-v1" }, S.names(s, "configmaps", "shop"))
      local r3 = S.atom(s, "run " .. dir .. "/release.lua -q", { env = { "V=3", "TAG=1.28" }, timeout = 90 })
      assert.are.equal(0, r3.code, r3.stderr)
      assert.are.equal("nginx:1.28", S.image(s, "shop", "web"))
      local metrics = s:curl("-s " .. s.url .. "/metrics").stdout
      assert.matches('code="503"', metrics)
    end)
    s.stop()
    assert(ok, err)
  end)
end)

-- An apply longer than the lease: the run renews it while the answers are slow to come, so
-- a second run is still refused, and the first ends Running.
describe("a release whose apply outlasts its lease", function()
  it("keeps the lease through the apply", function()
    local dir = S.script(S.RELEASE)
    local scen = S.script("", nil) .. "/scenario.lua"
    local f = assert(io.open(scen, "w"))
    f:write('return { faults = { { verb = "patch", resource = "configmaps", latency = 2.5 } } }\n')
    f:close()
    local s = S.sim({ time_scale = 1, ready_after = 0.2, scenario = scen })
    local ok, err = pcall(function()
      local first = S.bg(s, "run " .. dir .. "/release.lua -q --lease-duration 1", { env = { "NAME=ka", "NS=ka" } })
      assert.truthy(S.eventually(function() return S.state(s, "ka", "ka") == "Pending" end, 20), first.stderr())
      -- well past the 1 s lease, with the ConfigMaps' answers still 2.5 s away
      S.sleep(1.6)
      assert.are.equal("Pending", S.state(s, "ka", "ka"))
      local second = S.atom(s, "run " .. dir .. "/release.lua -q", { env = { "NAME=ka", "NS=ka", "V=2" }, timeout = 60 })
      assert.are.equal(5, second.code, second.stderr)
      assert.matches("held by", second.stderr)
      assert.are.equal(0, first.wait(60), first.stderr())
      assert.are.equal("Running", S.state(s, "ka", "ka"))
    end)
    s.stop()
    assert(ok, err)
  end)
end)
