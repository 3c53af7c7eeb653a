local check = require "atom.readiness.replicaset"
local readiness = require "atom.readiness"

local function replicaset(status)
  return { apiVersion = "apps/v1", kind = "ReplicaSet",
    metadata = { name = "web-7d9f8c6b5", namespace = "shop", generation = 1 },
    spec = { replicas = 3, selector = { matchLabels = { app = "web" } } },
    status = status }
end

local HEALTHY = { observedGeneration = 1, replicas = 3, fullyLabeledReplicas = 3,
  readyReplicas = 3, availableReplicas = 3 }

local function with(changes)
  local s = {}
  for k, v in pairs(HEALTHY) do s[k] = v end
  for k, v in pairs(changes) do s[k] = v end
  return s
end

describe("replicaset readiness", function()
  it("is ready when every count reaches spec.replicas", function()
    assert.same({ "ready", "3 of 3 replicas are available" }, { check(replicaset(HEALTHY)) })
  end)

  it("waits for ready replicas", function()
    assert.same({ "progressing", "1 of 3 replicas are ready" },
      { check(replicaset(with({ readyReplicas = 1, availableReplicas = 1 }))) })
  end)

  it("waits for extra replicas to go after a scale-down", function()
    assert.same({ "progressing", "2 extra replicas are pending termination" },
      { check(replicaset(with({ replicas = 5 }))) })
  end)

  it("keeps waiting on ReplicaFailure, with the API error as the message", function()
    local state, msg = check(replicaset({ observedGeneration = 1, replicas = 0,
      conditions = { { type = "ReplicaFailure", status = "True", reason = "FailedCreate",
        message = 'pods "web-7d9f8c6b5-x" is forbidden: exceeded quota: compute' } } }))
    assert.equal("progressing", state)
    assert.matches("0 of 3 replicas are labeled", msg, 1, true)
    assert.matches("exceeded quota: compute", msg, 1, true)
  end)

  it("waits until the controller has observed it", function()
    assert.equal("progressing", (check(replicaset(nil))))
  end)

  it("also serves ReplicationController", function()
    assert.equal(check, readiness.for_kind("v1", "ReplicationController"))
    local rc = replicaset(HEALTHY)
    rc.apiVersion, rc.kind = "v1", "ReplicationController"
    assert.equal("ready", (readiness.check(rc)))
  end)
end)
