local check = require "atom.readiness.statefulset"

-- The k8s-website "web" StatefulSet (replicas 3) with the defaults a real server fills.
local function statefulset(status, strategy)
  return { apiVersion = "apps/v1", kind = "StatefulSet",
    metadata = { name = "web", namespace = "default", generation = 2 },
    spec = { replicas = 3, serviceName = "nginx", podManagementPolicy = "OrderedReady",
      selector = { matchLabels = { app = "nginx" } },
      updateStrategy = strategy or { type = "RollingUpdate", rollingUpdate = { partition = 0 } } },
    status = status }
end

local function status(changes)
  local s = { observedGeneration = 2, replicas = 3, readyReplicas = 3, availableReplicas = 3,
    currentReplicas = 3, updatedReplicas = 3, currentRevision = "web-6d4b7c9f8",
    updateRevision = "web-6d4b7c9f8", collisionCount = 0 }
  for k, v in pairs(changes or {}) do s[k] = v end
  return s
end

describe("statefulset readiness", function()
  it("is ready when all replicas are ready and at the update revision", function()
    assert.same({ "ready", "3 of 3 replicas are ready and updated" }, { check(statefulset(status())) })
  end)

  it("waits while a pod is not ready (e.g. crash-looping under OrderedReady)", function()
    assert.same({ "progressing", "1 of 3 replicas are ready" },
      { check(statefulset(status({ readyReplicas = 1, availableReplicas = 1 }))) })
  end)

  it("waits for pods to be updated during a rolling update", function()
    assert.same({ "progressing", "1 out of 3 new pods have been updated" },
      { check(statefulset(status({ updatedReplicas = 1, currentReplicas = 2, updateRevision = "web-5c8f7d6b9" }))) })
  end)

  it("waits for the revisions to meet even when all pods are updated (partition 0)", function()
    local state, msg = check(statefulset(status({ updateRevision = "web-5c8f7d6b9" })))
    assert.equal("progressing", state)
    assert.matches("revision web-5c8f7d6b9", msg, 1, true)
  end)

  it("with a partition, is ready once the pods above it are updated", function()
    local strategy = { type = "RollingUpdate", rollingUpdate = { partition = 2 } }
    assert.equal("ready", (check(statefulset(status({ updatedReplicas = 1, currentReplicas = 2,
      updateRevision = "web-5c8f7d6b9" }), strategy))))
    assert.equal("progressing", (check(statefulset(status({ updatedReplicas = 0,
      updateRevision = "web-5c8f7d6b9" }), strategy))))
  end)

  it("with OnDelete, is ready once the ready count matches, but not before", function()
    local strategy = { type = "OnDelete" }
    assert.equal("ready", (check(statefulset(status({ updatedReplicas = 0,
      updateRevision = "web-5c8f7d6b9" }), strategy))))
    assert.equal("progressing", (check(statefulset(status({ readyReplicas = 2 }), strategy))))
  end)

  it("waits until the controller has observed the current generation", function()
    assert.equal("progressing", (check(statefulset(nil))))
    assert.equal("progressing", (check(statefulset(status({ observedGeneration = 1 })))))
  end)

  -- ctx.related as the waiter gives it to a StatefulSet stuck progressing: its pods.
  local function pulling(name, rev)
    return { metadata = { name = name, labels = { app = "nginx", ["controller-revision-hash"] = rev } },
      spec = { restartPolicy = "Always", containers = { { name = "nginx" } } },
      status = { phase = "Pending", containerStatuses = { { name = "nginx", ready = false,
        state = { waiting = { reason = "ImagePullBackOff", message = "Back-off pulling image" } } } } } }
  end
  local function ctx_with(pods)
    return { related = function(kind, sel)
      assert.equal("Pod", kind)
      assert.same({ matchLabels = { app = "nginx" } }, sel)
      return pods
    end }
  end

  it("fails fast when a pod of the update revision cannot start", function()
    local s = status({ readyReplicas = 0, updatedReplicas = 0, updateRevision = "web-5c8f7d6b9" })
    local state, msg = check(statefulset(s), ctx_with({ pulling("web-0", "web-5c8f7d6b9") }))
    assert.equal("failed", state)
    assert.matches('pod web%-0: container "nginx" is waiting: ImagePullBackOff', msg)
  end)

  it("does not fail for a pod of an older revision, which the update replaces", function()
    local s = status({ readyReplicas = 2, updatedReplicas = 0, updateRevision = "web-5c8f7d6b9" })
    local state = check(statefulset(s), ctx_with({ pulling("web-2", "web-6d4b7c9f8") }))
    assert.equal("progressing", state)
  end)
end)
