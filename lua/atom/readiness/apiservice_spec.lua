local check = require "atom.readiness.apiservice"

local function apiservice(cond)
  return { apiVersion = "apiregistration.k8s.io/v1", kind = "APIService",
    metadata = { name = "v1beta1.metrics.k8s.io" },
    spec = { group = "metrics.k8s.io", version = "v1beta1", groupPriorityMinimum = 100, versionPriority = 100,
      service = { name = "metrics-server", namespace = "kube-system", port = 443 } },
    status = { conditions = cond and { cond } or nil } }
end

describe("apiservice readiness", function()
  it("is ready when Available", function()
    assert.same({ "ready", "available (Passed)" },
      { check(apiservice({ type = "Available", status = "True", reason = "Passed", message = "all checks passed" })) })
  end)

  it("waits, with the reason, while not available", function()
    assert.same({ "progressing",
      'Available=False: MissingEndpoints: endpoints for service/metrics-server in "kube-system" have no addresses' },
      { check(apiservice({ type = "Available", status = "False", reason = "MissingEndpoints",
        message = 'endpoints for service/metrics-server in "kube-system" have no addresses' })) })
  end)

  it("waits before the condition appears", function()
    assert.equal("progressing", (check(apiservice(nil))))
  end)
end)
