local check = require "atom.readiness.poddisruptionbudget"

local function pdb(status)
  return { apiVersion = "policy/v1", kind = "PodDisruptionBudget",
    metadata = { name = "zk-pdb", namespace = "default", generation = 1 },
    spec = { maxUnavailable = 1, selector = { matchLabels = { app = "zk" } } }, status = status }
end

local function status(allowed, reason)
  return { observedGeneration = 1, expectedPods = 3, currentHealthy = allowed and 3 or 1, desiredHealthy = 2,
    disruptionsAllowed = allowed and 1 or 0,
    conditions = { { type = "DisruptionAllowed", status = allowed and "True" or "False", reason = reason,
      message = "", observedGeneration = 1, lastTransitionTime = "2026-11-26T10:00:00Z" } } }
end

describe("poddisruptionbudget readiness", function()
  it("is ready once observed", function()
    assert.same({ "ready", "3 healthy pods, 2 required, 1 disruptions allowed" },
      { check(pdb(status(true, "SufficientPods"))) })
  end)

  it("stays ready with too few healthy pods, saying so", function()
    local state, msg = check(pdb(status(false, "InsufficientPods")))
    assert.equal("ready", state)
    assert.matches("DisruptionAllowed=False: InsufficientPods", msg, 1, true)
  end)

  it("fails when the controller cannot sync it", function()
    assert.equal("failed", (check(pdb(status(false, "SyncFailed")))))
  end)

  it("waits until the controller has observed it", function()
    assert.equal("progressing", (check(pdb(nil))))
  end)
end)
