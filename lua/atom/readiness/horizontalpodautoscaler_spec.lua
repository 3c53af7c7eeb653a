local cjson = require "cjson"
local check = require "atom.readiness.horizontalpodautoscaler"

local function cond(type_, status, reason, message)
  return { type = type_, status = status, reason = reason, message = message,
    lastTransitionTime = "2026-11-26T10:00:00Z" }
end

local function hpa(conditions)
  return { apiVersion = "autoscaling/v2", kind = "HorizontalPodAutoscaler",
    metadata = { name = "php-apache", namespace = "default", generation = 1 },
    spec = { minReplicas = 1, maxReplicas = 10,
      scaleTargetRef = { apiVersion = "apps/v1", kind = "Deployment", name = "php-apache" } },
    status = { observedGeneration = 1, currentReplicas = 1, desiredReplicas = 1, conditions = conditions } }
end

describe("horizontalpodautoscaler readiness", function()
  it("is ready when scaling normally", function()
    assert.same({ "ready", "1 current, 1 desired replicas" }, { check(hpa({
      cond("AbleToScale", "True", "ReadyForNewScale"), cond("ScalingActive", "True", "ValidMetricFound"),
      cond("ScalingLimited", "False", "DesiredWithinRange") })) })
  end)

  it("is ready right after creation, before any condition", function()
    assert.equal("ready", (check(hpa(nil))))
  end)

  it("stays ready while metrics are unavailable, saying so", function()
    local state, msg = check(hpa({ cond("AbleToScale", "True", "SucceededGetScale"),
      cond("ScalingActive", "False", "FailedGetResourceMetric",
        "the HPA was unable to compute the replica count: unable to get metrics for resource cpu") }))
    assert.equal("ready", state)
    assert.matches("ScalingActive=False: FailedGetResourceMetric", msg, 1, true)
  end)

  it("fails on an invalid selector", function()
    local state, msg = check(hpa({ cond("AbleToScale", "True", "SucceededGetScale"),
      cond("ScalingActive", "False", "InvalidSelector", "selector is required") }))
    assert.equal("failed", state)
    assert.matches("InvalidSelector", msg)
  end)

  it("fails when the target cannot be scaled", function()
    assert.equal("failed", (check(hpa({ cond("AbleToScale", "False", "FailedGetScale",
      'deployments/scale.apps "php-apache" not found') }))))
  end)

  it("reads autoscaling/v1 conditions from the annotation", function()
    local obj = { apiVersion = "autoscaling/v1", kind = "HorizontalPodAutoscaler",
      metadata = { name = "hpa", namespace = "default", annotations = {
        ["autoscaling.alpha.kubernetes.io/conditions"] = cjson.encode({
          cond("AbleToScale", "False", "FailedGetScale", 'deployments/scale.apps "deployment" not found') }) } },
      spec = { minReplicas = 1, maxReplicas = 10, targetCPUUtilizationPercentage = 50,
        scaleTargetRef = { apiVersion = "apps/v1", kind = "Deployment", name = "deployment" } },
      status = { currentReplicas = 0, desiredReplicas = 0 } }
    assert.equal("failed", (check(obj)))
  end)
end)
