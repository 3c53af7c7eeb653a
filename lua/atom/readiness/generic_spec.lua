local check = require "atom.readiness.generic"

local function certificate(conditions, generation)
  return { apiVersion = "cert-manager.io/v1", kind = "Certificate",
    metadata = { name = "web-tls", namespace = "shop", generation = generation or 1 },
    spec = { secretName = "web-tls", dnsNames = { "shop.example.com" } },
    status = conditions and { conditions = conditions } or nil }
end

describe("generic readiness", function()
  it("is ready on Ready=True", function()
    assert.same({ "ready", "Ready=True: Ready: Certificate is up to date and has not expired" },
      { check(certificate({ { type = "Ready", status = "True", reason = "Ready", observedGeneration = 1,
        message = "Certificate is up to date and has not expired" } })) })
  end)

  it("waits on Ready=False rather than failing", function()
    assert.same({ "progressing", "Ready=False: DoesNotExist: Issuing certificate as Secret does not exist" },
      { check(certificate({ { type = "Ready", status = "False", reason = "DoesNotExist", observedGeneration = 1,
        message = "Issuing certificate as Secret does not exist" } })) })
  end)

  it("does not count a Ready condition written for an older generation", function()
    assert.same({ "progressing", "Ready condition is for generation 1, not 2" },
      { check(certificate({ { type = "Ready", status = "True", reason = "Ready", observedGeneration = 1 } }, 2)) })
  end)

  it("is ready once it exists when there is nothing to judge", function()
    assert.same({ "ready", "exists" }, { check({ apiVersion = "v1", kind = "ConfigMap",
      metadata = { name = "settings" }, data = { mode = "fast" } }) })
    assert.equal("ready", (check(certificate(nil))))
  end)

  it("waits for the controller when the CRD declares status conditions", function()
    local ctx = { expects_conditions = true }
    assert.same({ "progressing", "waiting for the controller to report status" }, { check(certificate(nil), ctx) })
    assert.equal("ready", (check(certificate({ { type = "Ready", status = "True" } }), ctx)))
  end)
end)
