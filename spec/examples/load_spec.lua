-- Every example loads and validates without a cluster (what `atom check` does).
local script = require "atom.release.script"

local EXAMPLES = { "hello", "crd-readiness", "migration-hook", "retry-policy" }

describe("examples load", function()
  for _, name in ipairs(EXAMPLES) do
    it(name, function()
      local r, err = script.load("examples/" .. name .. "/release.lua", { hooks_dir = "hooks" })
      assert.is_nil(err and err.message)
      assert.is_table(r)
      for _, o in ipairs(r.objects) do
        assert.matches("^examples/" .. name:gsub("%-", "%%-") .. "/.+:%d+$", o.source)
      end
    end)
  end

  it("hello has a Deployment, a Service and a ConfigMap, image tag from the environment", function()
    local r = assert(script.load("examples/hello/release.lua"))
    local kinds = {}
    for _, o in ipairs(r.objects) do kinds[#kinds + 1] = o.object.kind end
    assert.same({ "Deployment", "Service", "ConfigMap" }, kinds)
    assert.equal("nginx:" .. (os.getenv("HELLO_TAG") or "1.27"),
      r.objects[1].object.spec.template.spec.containers[1].image)
    assert.equal(2, r.objects[1].object.spec.replicas)
  end)

  it("crd-readiness keeps the upstream attribution and judges its ServiceMonitor", function()
    local f = assert(io.open("examples/crd-readiness/manifests/12-example-app-service-monitor.yaml"))
    assert.matches("^# source: prometheus%-operator/prometheus%-operator .*\n# license: Apache%-2%.0\n", f:read("a"))
    f:close()
    local r = assert(script.load("examples/crd-readiness/release.lua"))
    local sm = r.objects[4].object
    assert.equal("ServiceMonitor", sm.kind)
    local state, msg = r:check(sm)
    assert.equal("ready", state)
    assert.equal("valid; no Prometheus has picked it up yet", msg)
    sm = { apiVersion = sm.apiVersion, kind = sm.kind, metadata = sm.metadata, spec = sm.spec,
      status = { bindings = { { resource = "prometheuses", name = "main", conditions = {
        { type = "Accepted", status = "False", reason = "InvalidConfiguration", message = "bad relabeling" } } } } } }
    state, msg = r:check(sm)
    assert.equal("failed", state)
    assert.equal("prometheuses main rejected it: bad relabeling", msg)
    assert.equal("failed", (r:check({ apiVersion = "monitoring.coreos.com/v1", kind = "ServiceMonitor",
      metadata = { name = "x" }, spec = { selector = {}, endpoints = {} } })))
  end)

  it("retry-policy retries twice, then rolls back; never retries a cancel", function()
    local r = assert(script.load("examples/retry-policy/release.lua"))
    assert.equal("retry", r:decide({ state = "Deadline", attempt = 1 }))
    assert.equal("retry", r:decide({ state = "Error", attempt = 2 }))
    assert.equal("rollback", r:decide({ state = "Error", attempt = 3 }))
    assert.equal("rollback", r:decide({ state = "Cancelled", attempt = 1 }))
  end)
end)
