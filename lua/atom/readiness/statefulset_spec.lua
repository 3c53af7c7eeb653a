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
end)
