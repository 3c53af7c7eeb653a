-- The ctx the waiter hands to readiness checks, end to end against `atom sim`:
--   * a Deployment (or StatefulSet, or DaemonSet) whose pods cannot pull their image, or keep
--     crashing, fails fast (Error, not Deadline) once it has sat unchanged for longer than
--     fail_fast_after, long before its deadline;
--   * before that grace period the pods are not looked at;
--   * a custom resource whose CRD is already in the cluster (not in the release) waits for
--     its controller when the CRD declares status.conditions, and is ready once it exists
--     when the CRD declares no status.
local S = require "release.support"

local function path_of(atom)
  local out = {}
  for _, t in ipairs(atom.status.transitions or {}) do out[#out + 1] = t.to end
  return out
end

local function reason_to(atom, state)
  for _, t in ipairs(atom.status.transitions or {}) do
    if t.to == state then return t.reason end
  end
end

-- A run that failed fast: exit 3, its transitions from the from-th (default 1) on Error (not
-- Deadline) and back; returns why it failed.
local function failed_fast(sim, name, r, from)
  assert.are.equal(3, r.code, r.stdout .. r.stderr)
  local a = S.atom_record(sim, name, name)
  assert.are.same({ "Pending", "Updating", "Error", "Rollback", "Reverted" }, { table.unpack(path_of(a), from or 1) })
  return reason_to(a, "Error")
end

local function crd(kind, plural, with_conditions)
  local status = with_conditions
    and string.format([[status = { type = "object", properties = { conditions = { type = "array",
          items = { type = "object", ["x-kubernetes-preserve-unknown-fields"] = true } } } },]])
    or ""
  return string.format([[
    { apiVersion = "apiextensions.k8s.io/v1", kind = "CustomResourceDefinition",
      metadata = { name = "%s.example.com" },
      spec = { group = "example.com", scope = "Namespaced",
        names = { kind = "%s", plural = "%s", singular = "%s", listKind = "%sList" },
        versions = { { name = "v1", served = true, storage = true, subresources = { status = {} },
          schema = { openAPIV3Schema = { type = "object", properties = {
            spec = { type = "object", ["x-kubernetes-preserve-unknown-fields"] = true },
            %s } } } } } } },
]], plural, kind, plural, kind:lower(), kind, status)
end

-- The CRDs alone, released first: the release of the custom resources does not carry them.
local CRDS = "return { name = 'crds', namespace = 'crds', deadline = 30, objects = {\n"
  .. crd("Gadget", "gadgets", true) .. crd("Plain", "plains", false) .. "} }\n"

local RESOURCES = [[
local atom = require "atom"
local kind = atom.env("KIND", "Plain")
return {
  name = "things", namespace = "things", deadline = tonumber(atom.env("DEADLINE", "20")),
  objects = {
    { apiVersion = "example.com/v1", kind = kind, metadata = { name = "one" }, spec = { size = 1 } },
    { apiVersion = "v1", kind = "ConfigMap", metadata = { name = "things-settings" } },
  },
}
]]

describe("readiness ctx #kubectl", function()
  local s
  setup(function() s = S.sim({ ready_after = 1 }) end)
  teardown(function() if s then s.stop() end end)

  local function run(dir, env, extra)
    return S.atom(s, "run " .. dir .. "/release.lua -q" .. (extra or ""), { env = env, timeout = 120 })
  end

  it("fails a rollout whose pods cannot pull their image fast: Error, not Deadline", function()
    local dir = S.script(S.RELEASE)
    local r1 = run(dir, { "NAME=pull", "NS=pull", "V=1" })
    assert.are.equal(0, r1.code, r1.stderr)
    local r2 = run(dir, { "NAME=pull", "NS=pull", "V=2", "TAG=does-not-exist", "DEADLINE=120" })
    local why = failed_fast(s, "pull", r2, 4)
    assert.matches("Deployment/pull/web failed: pod web%-[%w-]+: container \"web\" is waiting: [%a]+", why)
    local waiting = why:match("is waiting: (%a+)")
    assert.truthy(waiting == "ErrImagePull" or waiting == "ImagePullBackOff", why)
    -- the first version's image is back
    assert.are.equal("nginx:1.27", S.image(s, "pull", "web"))
  end)

  it("fails a StatefulSet whose pods cannot pull their image fast too", function()
    local dir = S.script([[
local atom = require "atom"
return { name = "db", namespace = "db", deadline = 120, objects = {
  { apiVersion = "apps/v1", kind = "StatefulSet", metadata = { name = "db" },
    spec = { replicas = 2, serviceName = "db", selector = { matchLabels = { app = "db" } },
      template = { metadata = { labels = { app = "db" } },
        spec = { containers = { { name = "db", image = "postgres:does-not-exist" } } } } } },
} }
]])
    assert.matches("StatefulSet/db/db failed: pod db%-0: container \"db\" is waiting: %a+",
      failed_fast(s, "db", run(dir, {})))
  end)

  it("fails a DaemonSet update whose new pods cannot pull their image fast, and puts the old back", function()
    local dir = S.script([[
local atom = require "atom"
return { name = "agent", namespace = "agent", deadline = tonumber(atom.env("DEADLINE", "30")), objects = {
  { apiVersion = "apps/v1", kind = "DaemonSet", metadata = { name = "agent" },
    spec = { selector = { matchLabels = { app = "agent" } },
      template = { metadata = { labels = { app = "agent" } },
        spec = { containers = { { name = "agent", image = "fluentd:" .. atom.env("TAG", "v1.16") } } } } } },
} }
]])
    local r1 = run(dir, {})
    assert.are.equal(0, r1.code, r1.stderr)
    local r2 = run(dir, { "TAG=does-not-exist", "DEADLINE=120" })
    -- Only a pod of the new template counts: the old ones are healthy until replaced.
    assert.matches("DaemonSet/agent/agent failed: pod agent%-[%w-]+: container \"agent\" is waiting: %a+",
      failed_fast(s, "agent", r2, 4))
    local ds = S.kubectl_json(s, "get daemonset agent -n agent")
    assert.are.equal("fluentd:v1.16", ds.spec.template.spec.containers[1].image)
    assert.are.equal("3", ds.metadata.annotations["deprecated.daemonset.template.generation"])
  end)

  it("fails a rollout whose pods keep crashing fast too (CrashLoopBackOff)", function()
    local scenario = S.script('return { rules = { { match = { image = "nginx:crash" }, crash_loop = true } } }')
    local cs = S.sim({ ready_after = 1, scenario = scenario .. "/release.lua" })
    local ok, err = pcall(function()
      local dir = S.script(S.RELEASE)
      local r = S.atom(cs, "run " .. dir .. "/release.lua -q",
        { env = { "NAME=crash", "NS=crash", "TAG=crash", "DEADLINE=120" }, timeout = 120 })
      assert.matches("Deployment/crash/web failed: pod web%-[%w-]+: container \"web\" is waiting: CrashLoopBackOff",
        failed_fast(cs, "crash", r))
    end)
    cs.stop()
    assert(ok, err)
  end)

  it("does not look at the pods before fail_fast_after has passed", function()
    local dir = S.script((S.RELEASE:gsub("deadline = tonumber", "fail_fast_after = 600, deadline = tonumber", 1)))
    local r = run(dir, { "NAME=patient", "NS=patient", "TAG=does-not-exist", "DEADLINE=3" })
    assert.are.equal(3, r.code, r.stdout .. r.stderr)
    local a = S.atom_record(s, "patient", "patient")
    assert.are.same({ "Pending", "Updating", "Deadline", "Rollback", "Reverted" }, path_of(a))
    assert.matches("Deployment/patient/web: %d+ of %d+ updated replicas are available", reason_to(a, "Deadline"))
  end)

  it("refuses a fail_fast_after that is not a positive number", function()
    local dir = S.script((S.RELEASE:gsub("deadline = tonumber", "fail_fast_after = 0, deadline = tonumber", 1)))
    local r = S.atom(s, "check " .. dir .. "/release.lua")
    assert.are.equal(2, r.code)
    assert.matches("release%.lua:%d+: fail_fast_after must be a positive number of seconds, got 0", r.stderr)
  end)

  describe("a custom resource whose CRD is in the cluster, not in the release", function()
    setup(function()
      local r = run(S.script(CRDS), {})
      assert.are.equal(0, r.code, r.stderr)
    end)

    it("is ready once it exists when the CRD declares no status", function()
      local r = run(S.script(RESOURCES), { "KIND=Plain" })
      assert.are.equal(0, r.code, r.stdout .. r.stderr)
      assert.matches("things: version 1 Running", r.stdout)
    end)

    it("waits for its controller when the CRD declares status.conditions", function()
      local r = run(S.script(RESOURCES), { "KIND=Gadget", "DEADLINE=2" })
      assert.are.equal(3, r.code, r.stdout .. r.stderr)
      local a = S.atom_record(s, "things", "things")
      assert.matches("Gadget/things/one: waiting for the controller to report status", reason_to(a, "Deadline"))
    end)
  end)
end)
