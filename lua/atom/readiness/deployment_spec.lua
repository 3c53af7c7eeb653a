local cjson = require "cjson"
local check = require "atom.readiness.deployment"

-- A Deployment as the API server returns it (spec.replicas 3, generation 2), decoded by
-- lua-cjson like every live object, so counts are floats and absent fields are nil.
local HEALTHY = [[{
  "apiVersion": "apps/v1", "kind": "Deployment",
  "metadata": {"name": "web", "namespace": "shop", "generation": 2,
    "annotations": {"deployment.kubernetes.io/revision": "2"}},
  "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
    "progressDeadlineSeconds": 600, "revisionHistoryLimit": 10,
    "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}},
  "status": {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3,
    "readyReplicas": 3, "availableReplicas": 3,
    "conditions": [
      {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
       "message": "Deployment has minimum availability."},
      {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
       "message": "ReplicaSet \"web-7d9f8c6b5\" has successfully progressed."}]}
}]]

local function deployment(status_changes)
  local obj = cjson.decode(HEALTHY)
  for k, v in pairs(status_changes or {}) do obj.status[k] = v end
  return obj
end

local function condition(type_, status, reason, message)
  return { type = type_, status = status, reason = reason, message = message }
end

describe("deployment readiness", function()
  it("is ready when every replica is updated, ready and available", function()
    local state, msg = check(deployment())
    assert.equal("ready", state)
    assert.equal("3 of 3 replicas are updated and available", msg)
  end)

  it("waits while new replicas are being created", function()
    local state, msg = check(deployment({ updatedReplicas = 1, replicas = 4, availableReplicas = 3,
      conditions = { condition("Progressing", "True", "ReplicaSetUpdated") } }))
    assert.equal("progressing", state)
    assert.equal("1 out of 3 new replicas have been updated", msg)
  end)

  it("waits for old replicas to terminate", function()
    local state, msg = check(deployment({ replicas = 4 }))
    assert.equal("progressing", state)
    assert.equal("1 old replicas are pending termination", msg)
  end)

  it("waits until the updated replicas are available, in kubectl's words", function()
    local state, msg = check(deployment({ availableReplicas = 2, readyReplicas = 2 }))
    assert.equal("progressing", state)
    assert.equal("2 of 3 updated replicas are available", msg)
  end)

  it("waits for the Available condition (kstatus)", function()
    local state, msg = check(deployment({ conditions = {
      condition("Available", "False", "MinimumReplicasUnavailable") } }))
    assert.equal("progressing", state)
    assert.equal("waiting for the Available condition", msg)
  end)

  it("fails once the progress deadline is exceeded", function()
    local state, msg = check(deployment({ availableReplicas = 0, readyReplicas = 0, unavailableReplicas = 3,
      conditions = {
        condition("Available", "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability."),
        condition("Progressing", "False", "ProgressDeadlineExceeded", 'ReplicaSet "web-7d9f8c6b5" has timed out progressing.'),
      } }))
    assert.equal("failed", state)
    assert.matches("progress deadline", msg)
    assert.matches("timed out progressing", msg, 1, true)
  end)

  it("reports ReplicaFailure in the message but keeps waiting", function()
    local state, msg = check(deployment({ updatedReplicas = 0, replicas = 0, availableReplicas = 0,
      readyReplicas = 0, conditions = { condition("ReplicaFailure", "True", "FailedCreate",
        'pods "web-7d9f8c6b5-" is forbidden: exceeded quota') } }))
    assert.equal("progressing", state)
    assert.matches("0 out of 3 new replicas have been updated", msg, 1, true)
    assert.matches("ReplicaFailure=True: FailedCreate: pods", msg, 1, true)
  end)

  it("is not ready before the controller has observed it, even with zero replicas", function()
    local obj = cjson.decode(HEALTHY)
    obj.metadata.generation = 1
    obj.spec.replicas = 0
    obj.status = nil
    local state, msg = check(obj)
    assert.equal("progressing", state)
    assert.matches("observe", msg)
  end)

  it("is not ready while the controller has only seen an older generation", function()
    local state, msg = check(deployment({ observedGeneration = 1 }))
    assert.equal("progressing", state)
    assert.equal("waiting for the controller to observe generation 2 (has seen 1)", msg)
  end)

  it("counts a paused deployment as ready", function()
    local obj = deployment({ updatedReplicas = 1 })
    obj.spec.paused = true
    assert.same({ "ready", "deployment is paused" }, { check(obj) })
  end)

  describe("with related pods", function()
    local function pod(hash, waiting_reason)
      return { apiVersion = "v1", kind = "Pod",
        metadata = { name = "web-" .. hash .. "-x1", labels = { app = "web", ["pod-template-hash"] = hash } },
        spec = { restartPolicy = "Always" },
        status = { phase = "Running", containerStatuses = { { name = "web", ready = false, restartCount = 3,
          state = { waiting = { reason = waiting_reason, message = "back-off 40s restarting failed container" } },
          lastState = { terminated = { exitCode = 1, reason = "Error" } } } } } }
    end
    local function rs(hash, revision)
      return { apiVersion = "apps/v1", kind = "ReplicaSet", metadata = { name = "web-" .. hash,
        labels = { app = "web", ["pod-template-hash"] = hash },
        annotations = { ["deployment.kubernetes.io/revision"] = revision } } }
    end
    local function ctx_with(pods)
      local asked = {}
      return {
        asked = asked,
        related = function(kind, selector)
          asked[#asked + 1] = { kind, selector.matchLabels.app }
          if kind == "Pod" then return pods end
          return { rs("old111", "1"), rs("new222", "2") }
        end,
      }
    end

    it("fails fast when a pod of the new ReplicaSet is crash-looping", function()
      local ctx = ctx_with({ pod("new222", "CrashLoopBackOff") })
      local state, msg = check(deployment({ availableReplicas = 2, readyReplicas = 2 }), ctx)
      assert.equal("failed", state)
      assert.matches('pod web-new222-x1: container "web" is waiting: CrashLoopBackOff', msg, 1, true)
      assert.same({ "Pod", "web" }, ctx.asked[1])
    end)

    it("ignores pods of the old ReplicaSet", function()
      local state = check(deployment({ availableReplicas = 2, readyReplicas = 2 }),
        ctx_with({ pod("old111", "CrashLoopBackOff") }))
      assert.equal("progressing", state)
    end)

    it("keeps waiting on a pod that is only starting", function()
      local state = check(deployment({ availableReplicas = 2, readyReplicas = 2 }),
        ctx_with({ pod("new222", "ContainerCreating") }))
      assert.equal("progressing", state)
    end)
  end)
end)
