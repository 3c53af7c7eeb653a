local cjson = require "cjson"
local readiness = require "atom.readiness"

local function deployment(name, status)
  return { apiVersion = "apps/v1", kind = "Deployment",
    metadata = { name = name or "web", namespace = "shop", generation = 1, annotations = {} },
    spec = { replicas = 1, selector = { matchLabels = { app = "web" } } },
    status = status or { observedGeneration = 1, replicas = 1, updatedReplicas = 1, readyReplicas = 1,
      availableReplicas = 1, conditions = {
        { type = "Available", status = "True", reason = "MinimumReplicasAvailable" },
        { type = "Progressing", status = "True", reason = "NewReplicaSetAvailable" } } } }
end

local function widget(conditions, annotations)
  return { apiVersion = "example.com/v1", kind = "Widget",
    metadata = { name = "w1", namespace = "shop", generation = 3, annotations = annotations },
    spec = { size = 2 }, status = { observedGeneration = 3, conditions = conditions } }
end

local function always(state, message)
  return function() return state, message end
end

describe("readiness.check", function()
  describe("general rules, in order", function()
    it("treats an absent object as progressing", function()
      assert.same({ "progressing", "not found" }, { readiness.check(nil) })
      assert.same({ "progressing", "not found" }, { readiness.check(cjson.null) })
    end)

    it("treats an object being deleted as progressing, before any kind rule", function()
      local d = deployment()
      d.metadata.deletionTimestamp = "2026-11-26T10:00:00Z"
      assert.same({ "progressing", "terminating" }, { readiness.check(d, { Deployment = always("ready") }) })
    end)

    it("ignores a null deletionTimestamp as lua-cjson decodes it", function()
      local d = cjson.decode(cjson.encode(deployment()))
      d.metadata.deletionTimestamp = cjson.null
      assert.equal("ready", (readiness.check(d)))
    end)

    it("waits for a stale observedGeneration, even when an override would say ready", function()
      local d = deployment()
      d.metadata.generation = 2
      assert.same({ "progressing", "waiting for the controller to observe generation 2 (has seen 1)" },
        { readiness.check(d, { Deployment = always("ready") }) })
    end)

    it("fails on Stalled=True and waits on Reconciling=True, over the annotation", function()
      local ann = { ["atom.conditions"] = "Ready=True" }
      assert.same({ "failed", "Stalled=True: InstallFailed: chart not found" }, { readiness.check(widget({
        { type = "Ready", status = "True" },
        { type = "Stalled", status = "True", reason = "InstallFailed", message = "chart not found" } }, ann)) })
      assert.equal("progressing", (readiness.check(widget({ { type = "Ready", status = "True" },
        { type = "Reconciling", status = "True", reason = "Progressing" } }, ann))))
    end)

    it("uses the kind's built-in check", function()
      local d = deployment(nil, { observedGeneration = 1, replicas = 1, updatedReplicas = 1 })
      assert.same({ "progressing", "0 of 1 updated replicas are available" }, { readiness.check(d) })
    end)

    it("passes ctx on to the built-in check", function()
      local d = deployment(nil, { observedGeneration = 1, replicas = 1, updatedReplicas = 1 })
      local ctx = { related = function(kind)
        if kind == "ReplicaSet" then return {} end
        return { { apiVersion = "v1", kind = "Pod", metadata = { name = "web-1" }, spec = {},
          status = { phase = "Pending", containerStatuses = { { name = "web",
            state = { waiting = { reason = "ErrImagePull", message = "not found" } } } } } } }
      end }
      assert.equal("failed", (readiness.check(d, nil, ctx)))
    end)

    it("falls back to the Ready condition, then to existence, for custom resources", function()
      assert.equal("progressing", (readiness.check(widget({ { type = "Ready", status = "False" } }))))
      assert.equal("ready", (readiness.check(widget({ { type = "Ready", status = "True" } }))))
      assert.same({ "ready", "exists" }, { readiness.check(widget(nil)) })
    end)
  end)

  describe("the atom.conditions annotation", function()
    it("is ready when every clause matches, comparing type and status case-insensitively", function()
      local state, msg = readiness.check(widget({ { type = "synced", status = "true", reason = "ReconcileSuccess" },
        { type = "Ready", status = "False", reason = "Paused" } },
        { ["atom.conditions"] = "Synced=True/ReconcileSuccess, Ready=False" }))
      assert.equal("ready", state)
      assert.matches("conditions met", msg)
    end)

    it("waits on the first clause not met, naming it", function()
      local w = widget({ { type = "Synced", status = "True", reason = "Other" } },
        { ["atom.conditions"] = "Synced=True/ReconcileSuccess" })
      assert.same({ "progressing", "waiting for condition Synced=True/ReconcileSuccess (now Synced=True: Other)" },
        { readiness.check(w) })
      assert.same({ "progressing", "waiting for condition Ready=True" },
        { readiness.check(widget({}, { ["atom.conditions"] = "Ready=True" })) })
    end)

    it("does not count a condition written for an older generation", function()
      assert.equal("progressing", (readiness.check(widget({ { type = "Ready", status = "True", observedGeneration = 2 } },
        { ["atom.conditions"] = "Ready=True" }))))
    end)

    it("overrides user overrides and the built-in check", function()
      local d = deployment()
      d.metadata.annotations["atom.conditions"] = "Progressing=True/NewReplicaSetAvailable,Available=True"
      assert.equal("ready", (readiness.check(d, { Deployment = always("failed") })))
      d.metadata.annotations["atom.conditions"] = "Available=False"
      assert.equal("progressing", (readiness.check(d)))
    end)

    it("fails, never silently ready, when malformed", function()
      local state, msg = readiness.check(widget({ { type = "Ready", status = "True" } },
        { ["atom.conditions"] = "Ready=Yes" }))
      assert.equal("failed", state)
      assert.matches('malformed clause "Ready=Yes"', msg, 1, true)
    end)
  end)

  describe("overrides", function()
    local overrides = {
      Deployment = always("progressing", "Kind"),
      ["Deployment.apps"] = always("progressing", "Kind.group"),
      ["Deployment/legacy"] = always("ready", "Kind/name"),
      ["Deployment.apps/api"] = always("ready", "Kind.group/name"),
      ["configmap/settings"] = always("ready", "lower-case kind"),
    }

    it("takes the most specific key", function()
      local o = {}
      for k, v in pairs(overrides) do o[k] = v end
      assert.equal("Kind.group/name", select(2, readiness.check(deployment("api"), o)))
      assert.equal("Kind/name", select(2, readiness.check(deployment("legacy"), o)))
      assert.equal("Kind.group", select(2, readiness.check(deployment("other"), o)))
      o["Deployment.apps"] = nil
      assert.equal("Kind", select(2, readiness.check(deployment("other"), o)))
    end)

    it("matches core kinds, which have no group, case-insensitively on the kind", function()
      local cm = { apiVersion = "v1", kind = "ConfigMap", metadata = { name = "settings" } }
      assert.same({ "ready", "lower-case kind" }, { readiness.check(cm, overrides) })
    end)

    it("applies to custom resources by Kind.group", function()
      local o = { ["Widget.example.com"] = function(obj) return "ready", "widget " .. obj.metadata.name end }
      assert.same({ "ready", "widget w1" }, { readiness.check(widget(nil), o) })
    end)

    it("treats nil from a user check as progressing", function()
      assert.equal("progressing", (readiness.check(deployment(), { Deployment = function() end })))
    end)

    it("fails on any answer other than the three states, naming it", function()
      local state, msg = readiness.check(deployment(), { ["Deployment.apps/web"] = always("Healthy") })
      assert.equal("failed", state)
      assert.matches('returned "Healthy"', msg, 1, true)
      assert.matches("Deployment.apps/web", msg, 1, true)
      assert.matches("returned true", select(2, readiness.check(deployment(), { Deployment = always(true) })), 1, true)
    end)

    it("turns an error in a check into progressing with the error, never ready", function()
      local state, msg = readiness.check(deployment(), { Deployment = function(obj) return obj.spec.x.y end })
      assert.equal("progressing", state)
      assert.matches("raised an error", msg)
    end)

    it("fails when an override is not a function", function()
      assert.equal("failed", (readiness.check(deployment(), { Deployment = "ready" })))
    end)
  end)
end)

describe("readiness.parse_conditions", function()
  it("parses clauses with optional reasons and normalises the status", function()
    assert.same({ { type = "Ready", status = "True" },
                  { type = "Synced", status = "False", reason = "Paused" },
                  { type = "example.com/Healthy", status = "Unknown" } },
      readiness.parse_conditions(" Ready=True , Synced=false/Paused,example.com/Healthy=UNKNOWN"))
  end)

  for _, bad in ipairs({ "Ready", "Ready=", "=True", "Ready=Yes", "Ready=True/", "Ready=True/A/B", "Ready=True,,Synced=True", "" }) do
    it("rejects " .. string.format("%q", bad) .. ", naming the clause", function()
      local ok, err = pcall(readiness.parse_conditions, bad)
      assert.is_false(ok)
      assert.matches("malformed clause", err)
    end)
  end

  it("names the malformed clause itself", function()
    local ok, err = pcall(readiness.parse_conditions, "Ready=True, Synced=Maybe")
    assert.is_false(ok)
    assert.matches('"Synced=Maybe"', err, 1, true)
  end)

  it("rejects a value that is not a string", function()
    assert.has_error(function() readiness.parse_conditions(42) end,
      "atom.conditions: annotation must be a string, got number")
  end)
end)

describe("readiness.validate_overrides", function()
  it("accepts the four key forms and nil", function()
    local fn = function() return "ready" end
    assert.is_true(readiness.validate_overrides({ ConfigMap = fn, ["Deployment.apps"] = fn,
      ["Service/frontend-external"] = fn, ["Widget.example.com/w1"] = fn }))
    assert.is_true(readiness.validate_overrides(nil))
  end)

  it("names a bad key", function()
    assert.has_error(function() readiness.validate_overrides({ ["Deployment apps/web"] = function() end }) end,
      'readiness override key "Deployment apps/web" is not Kind, Kind.group, Kind/name or Kind.group/name')
    assert.has_error(function() readiness.validate_overrides({ function() end }) end,
      "readiness override key 1 is not Kind, Kind.group, Kind/name or Kind.group/name")
  end)

  it("names a value that is not a function", function()
    assert.has_error(function() readiness.validate_overrides({ ["Service/web"] = "ready" }) end,
      'readiness override "Service/web" must be a function, got string')
  end)
end)

describe("readiness.for_kind", function()
  it("finds the built-in check by group and kind", function()
    assert.equal(require "atom.readiness.deployment", readiness.for_kind("apps/v1", "Deployment"))
    assert.equal(require "atom.readiness.pod", readiness.for_kind("v1", "Pod"))
    assert.equal(require "atom.readiness.horizontalpodautoscaler", readiness.for_kind("autoscaling/v1", "HorizontalPodAutoscaler"))
    assert.equal(require "atom.readiness.ingress", readiness.for_kind("networking.k8s.io/v1", "Ingress"))
  end)

  it("returns nil for kinds with no rule of their own", function()
    assert.is_nil(readiness.for_kind("v1", "ConfigMap"))
    assert.is_nil(readiness.for_kind("example.com/v1", "Deployment"))
  end)
end)

describe("readiness.key", function()
  it("spells keys as kubectl does", function()
    assert.equal("Deployment.apps/web", readiness.key(deployment("web")))
    assert.equal("ConfigMap/settings", readiness.key({ apiVersion = "v1", kind = "ConfigMap", metadata = { name = "settings" } }))
    assert.equal("Widget.example.com/w1", readiness.key(widget(nil)))
  end)
end)
