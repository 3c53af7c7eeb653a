-- The ctx path of readiness, without a cluster: what the waiter hands a check (and what it
-- costs in requests), and that a release's overrides and the atom.conditions annotation
-- behave the same when a ctx comes along.
local fake = require "surface.fake_kube"
local tree = require "surface.tree"
local wait = require "atom.release.wait"
local script = require "atom.release.script"
local core = require "atom.core"

local function deployment(name)
  return { apiVersion = "apps/v1", kind = "Deployment",
    metadata = { name = name, namespace = "ns", uid = "u-" .. name, generation = 1 },
    spec = { replicas = 1, selector = { matchLabels = { app = name } } },
    status = { observedGeneration = 1, replicas = 1, updatedReplicas = 1, availableReplicas = 0 } }
end

local function count(calls, pattern)
  local n = 0
  for _, c in ipairs(calls) do if c:match(pattern) then n = n + 1 end end
  return n
end

describe("the waiter's ctx", function()
  it("lists a slow Deployment's pods only after fail_fast_after, then fails it from them", function()
    local k = fake.new({ pods = { { metadata = { name = "web-1", labels = { app = "web" } },
      spec = { restartPolicy = "Always" },
      status = { phase = "Pending", containerStatuses = { { name = "web",
        state = { waiting = { reason = "ImagePullBackOff", message = "no such tag" } } } } } } } })
    local seen = {}
    local function check(obj, ctx)
      seen[#seen + 1] = ctx
      return require("atom.readiness").check(obj, nil, ctx)
    end
    local dep = deployment("web")
    local obs = assert(wait.observe(k, { objects = { dep }, release = "r", namespace = "ns", check = check,
      fail_fast_after = 0.5 }))
    obs:applied(dep)
    assert.are.equal(1, #seen)
    assert.is_nil(seen[1].related, "no pods looked at on the first check")
    assert.are.equal(0, count(k.calls, "^list Pod"))
    local outcome, message = obs:run({ check = check, deadline_at = core.wall() + 30 })
    obs:close()
    assert.are.equal("failed", outcome)
    assert.matches("Deployment/ns/web failed: pod web%-1: container \"web\" is waiting: ImagePullBackOff", message)
    assert.are.equal(1, count(k.calls, "^list Pod ns app=web$"))
    assert.is_function(seen[#seen].related)
  end)

  it("asks the cluster for a custom kind's CRD once per kind, and not for built-in kinds", function()
    local k = fake.new()
    function k:resource_for(api_version, kind)
      return { group = "example.com", version = "v1", resource = kind:lower() .. "s", api_version = api_version }
    end
    local get = k.get
    function k:get(av, kind, ns, name)
      if kind == "CustomResourceDefinition" then
        self.calls[#self.calls + 1] = "get CRD " .. name
        return { spec = { versions = { { name = "v1", schema = { openAPIV3Schema = { properties = {
          status = { properties = { conditions = { type = "array" } } } } } } } } } }
      end
      return get(self, av, kind, ns, name)
    end
    local got = {}
    local function check(obj, ctx) got[obj.metadata.name] = ctx.expects_conditions; return "progressing", "" end
    local function gadget(name)
      return { apiVersion = "example.com/v1", kind = "Gadget", metadata = { name = name, namespace = "ns" } }
    end
    local cm = { apiVersion = "v1", kind = "ConfigMap", metadata = { name = "c", namespace = "ns" } }
    local cache = {}
    local obs = assert(wait.observe(k, { objects = { gadget("a"), gadget("b"), cm }, release = "r",
      namespace = "ns", check = check, crd_cache = cache }))
    obs:applied(gadget("a")); obs:applied(gadget("b")); obs:applied(cm)
    obs:close()
    assert.is_true(got.a)
    assert.is_true(got.b)
    assert.is_nil(got.c)
    assert.are.equal(1, count(k.calls, "^get CRD gadgets%.example%.com$"))
    -- a second wait of the same run (the rollback) reuses the answer
    local obs2 = assert(wait.observe(k, { objects = { gadget("a") }, release = "r", namespace = "ns",
      check = check, crd_cache = cache }))
    obs2:applied(gadget("a"))
    obs2:close()
    assert.are.equal(1, count(k.calls, "^get CRD"))
  end)

  it("prefers the CRD shipped in the version waited for, without a request", function()
    local k = fake.new()
    function k:resource_for() error("no lookup expected") end
    -- the CRD is cluster-scoped: its list and watch have no namespace
    function k:list(_, kind) self.calls[#self.calls + 1] = "list " .. kind; return {} end
    function k:watch(_, kind) self.calls[#self.calls + 1] = "watch " .. kind; return { close = function() end } end
    local crd = { apiVersion = "apiextensions.k8s.io/v1", kind = "CustomResourceDefinition",
      metadata = { name = "plains.example.com" },
      spec = { group = "example.com", names = { kind = "Plain", plural = "plains" },
        versions = { { name = "v1", schema = { openAPIV3Schema = { type = "object" } } } } } }
    local plain = { apiVersion = "example.com/v1", kind = "Plain", metadata = { name = "p", namespace = "ns" } }
    local got
    local obs = assert(wait.observe(k, { objects = { crd, plain }, release = "r", namespace = "ns",
      check = function(obj, ctx) if obj.kind == "Plain" then got = ctx.expects_conditions end; return "ready" end }))
    obs:applied(plain)
    obs:close()
    assert.is_false(got)
  end)

  it("turns a LabelSelector into the query string the API takes", function()
    assert.are.equal("app=web,tier in (a,b),!legacy",
      wait.selector_string({ matchLabels = { app = "web" }, matchExpressions = {
        { key = "tier", operator = "In", values = { "b", "a" } },
        { key = "legacy", operator = "DoesNotExist" } } }))
    assert.is_nil(wait.selector_string({}), "an empty selector would match every pod")
  end)
end)

describe("Release:check with a ctx", function()
  local dir
  teardown(function() if dir then tree.remove(dir) end end)

  local release
  setup(function()
    dir = tree.make({ ["release.lua"] = [[
return {
  name = "r",
  objects = {
    { apiVersion = "apiextensions.k8s.io/v1", kind = "CustomResourceDefinition",
      metadata = { name = "widgets.example.com" },
      spec = { group = "example.com", names = { kind = "Widget", plural = "widgets" },
        versions = { { name = "v1", schema = { openAPIV3Schema = { properties = {
          status = { properties = { conditions = { type = "array" } } } } } } } } } },
    { apiVersion = "v1", kind = "ConfigMap", metadata = { name = "c" } },
  },
  readiness = {
    ["Database.example.com"] = function(obj, ctx)
      local secret = ctx and ctx.get and ctx.get("Secret", obj.spec.secret)
      if secret then return "ready", "secret " .. secret.metadata.name .. " is there" end
      return "progressing", "no secret yet"
    end,
  },
}]] })
    release = assert(script.load(dir .. "/release.lua"))
  end)

  it("hands the ctx to a user's override of a custom kind", function()
    local db = { apiVersion = "example.com/v1", kind = "Database", metadata = { name = "d" }, spec = { secret = "pw" } }
    local state, msg = release:check(db, { get = function(kind, name)
      if kind == "Secret" then return { metadata = { name = name } } end end })
    assert.are.equal("ready", state)
    assert.are.equal("secret pw is there", msg)
    assert.are.same({ "progressing", "no secret yet" }, { release:check(db, {}) })
  end)

  it("keeps the atom.conditions annotation ahead of overrides and ctx", function()
    local db = { apiVersion = "example.com/v1", kind = "Database", spec = { secret = "pw" },
      metadata = { name = "d", generation = 2, annotations = { ["atom.conditions"] = "Synced=True" } },
      status = { conditions = { { type = "Synced", status = "True", observedGeneration = 2 } } } }
    local state, msg = release:check(db, { get = function() error("not asked") end, expects_conditions = true })
    assert.are.equal("ready", state)
    assert.are.equal("conditions met: Synced=True", msg)
  end)

  it("takes expects_conditions from the ctx, else from the release's own CRD", function()
    local w = { apiVersion = "example.com/v1", kind = "Widget", metadata = { name = "w" } }
    assert.are.same({ "progressing", "waiting for the controller to report status" }, { release:check(w, {}) })
    assert.are.same({ "ready", "exists" }, { release:check(w, { expects_conditions = false }) })
  end)

  it("fails a Deployment from its pods through the built-in check when ctx.related is given", function()
    local dep = deployment("api")
    local pods = { { metadata = { name = "api-1" }, spec = {}, status = { phase = "Running",
      containerStatuses = { { name = "api", state = { waiting = { reason = "CrashLoopBackOff" } } } } } } }
    local state, msg = release:check(dep, { related = function(kind) return kind == "Pod" and pods or {} end })
    assert.are.equal("failed", state)
    assert.matches("pod api%-1: container \"api\" is waiting: CrashLoopBackOff", msg)
    assert.are.equal("progressing", (release:check(dep, {})))
  end)
end)
