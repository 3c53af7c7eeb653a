local check = require "atom.readiness.daemonset"

local function daemonset(status, strategy)
  return { apiVersion = "apps/v1", kind = "DaemonSet",
    metadata = { name = "fluentd-elasticsearch", namespace = "kube-system", generation = 1 },
    spec = { selector = { matchLabels = { name = "fluentd-elasticsearch" } },
      updateStrategy = strategy or { type = "RollingUpdate", rollingUpdate = { maxUnavailable = 1, maxSurge = 0 } } },
    status = status }
end

local function status(changes)
  local s = { observedGeneration = 1, desiredNumberScheduled = 3, currentNumberScheduled = 3,
    updatedNumberScheduled = 3, numberReady = 3, numberAvailable = 3, numberMisscheduled = 0 }
  for k, v in pairs(changes or {}) do s[k] = v end
  return s
end

describe("daemonset readiness", function()
  it("is ready when every node runs an available, updated pod", function()
    assert.same({ "ready", "3 of 3 pods are available" }, { check(daemonset(status())) })
  end)

  it("waits while pods are not ready", function()
    assert.same({ "progressing", "1 of 3 pods are ready" },
      { check(daemonset(status({ numberReady = 1, numberAvailable = 1, numberUnavailable = 2 }))) })
  end)

  it("waits while pods are being updated", function()
    assert.same({ "progressing", "2 out of 3 new pods have been updated" },
      { check(daemonset(status({ updatedNumberScheduled = 2 }))) })
  end)

  it("waits for ready pods to become available", function()
    assert.same({ "progressing", "2 of 3 updated pods are available" },
      { check(daemonset(status({ numberAvailable = 2 }))) })
  end)

  it("is ready with no node to run on, once observed", function()
    assert.equal("ready", (check(daemonset({ observedGeneration = 1 }))))
    assert.equal("progressing", (check(daemonset(nil))))
  end)

  it("with OnDelete does not wait for pods to be updated", function()
    assert.equal("ready", (check(daemonset(status({ updatedNumberScheduled = 0 }), { type = "OnDelete" }))))
  end)
end)
