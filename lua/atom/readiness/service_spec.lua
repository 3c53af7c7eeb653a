local check = require "atom.readiness.service"

local function service(spec, status)
  spec.ports = spec.ports or { { port = 80, targetPort = 8080, protocol = "TCP" } }
  return { apiVersion = "v1", kind = "Service",
    metadata = { name = "frontend-external", namespace = "shop" }, spec = spec, status = status }
end

describe("service readiness", function()
  it("is ready once a ClusterIP service exists", function()
    assert.same({ "ready", "ClusterIP 10.96.14.7" },
      { check(service({ type = "ClusterIP", clusterIP = "10.96.14.7", clusterIPs = { "10.96.14.7" } },
        { loadBalancer = {} })) })
  end)

  it("is ready for a headless service", function()
    assert.equal("ready", (check(service({ type = "ClusterIP", clusterIP = "None" }, {}))))
  end)

  it("is ready for an ExternalName service", function()
    assert.same({ "ready", "external name db.example.com" },
      { check(service({ type = "ExternalName", externalName = "db.example.com" })) })
  end)

  it("waits for a load balancer address", function()
    assert.same({ "progressing", "waiting for the load balancer to get an address" },
      { check(service({ type = "LoadBalancer", clusterIP = "10.96.0.20" }, { loadBalancer = {} })) })
  end)

  it("is ready once the load balancer has an IP or a hostname", function()
    assert.same({ "ready", "load balancer at 203.0.113.10" },
      { check(service({ type = "LoadBalancer" }, { loadBalancer = { ingress = { { ip = "203.0.113.10", ipMode = "VIP" } } } })) })
    assert.same({ "ready", "load balancer at lb.example.com" },
      { check(service({ type = "LoadBalancer" }, { loadBalancer = { ingress = { { hostname = "lb.example.com" } } } })) })
  end)

  it("accepts spec.externalIPs instead of a load balancer address (Helm)", function()
    assert.equal("ready", (check(service({ type = "LoadBalancer", externalIPs = { "198.51.100.4" } },
      { loadBalancer = {} }))))
  end)
end)
