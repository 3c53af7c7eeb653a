local check = require "atom.readiness.ingress"

local function ingress(status)
  return { apiVersion = "networking.k8s.io/v1", kind = "Ingress",
    metadata = { name = "web", namespace = "shop", generation = 1 },
    spec = { ingressClassName = "nginx", rules = { { host = "shop.example.com" } } }, status = status }
end

describe("ingress readiness", function()
  it("is ready with its address", function()
    assert.same({ "ready", "address 203.0.113.10" },
      { check(ingress({ loadBalancer = { ingress = { { ip = "203.0.113.10" } } } })) })
  end)

  it("does not wait for an address by default, but says it has none", function()
    assert.same({ "ready", "no address yet" }, { check(ingress({ loadBalancer = {} })) })
    assert.same({ "ready", "no address yet" }, { check(ingress(nil)) })
  end)
end)
