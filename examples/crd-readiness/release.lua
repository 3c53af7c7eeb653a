-- A release with a CustomResourceDefinition and a custom resource of that kind in one
-- version: prometheus-operator's ServiceMonitor CRD, its getting-started example app,
-- and the ServiceMonitor that selects it (manifests/ are copies of the upstream files,
-- attribution headers kept).
--
-- A ServiceMonitor's CRD declares status.conditions, so atom waits for a controller to
-- report on it. Without prometheus-operator in the cluster nothing ever does, and the
-- release would end Deadline -> Reverted. The override below says what "ready" means
-- for this kind here instead: the Service it selects exists and has the named port.
--
--   atom run examples/crd-readiness/release.lua
--   CRD_READINESS_OVERRIDE=off atom run --deadline 20 examples/crd-readiness/release.lua
--       (no override: watch it hit Deadline and roll back)
local atom = require "atom"

local readiness = {}
if atom.env("CRD_READINESS_OVERRIDE", "on") ~= "off" then
  readiness["ServiceMonitor.monitoring.coreos.com"] = function(obj)
    local spec = obj.spec or {}
    local labels = spec.selector and spec.selector.matchLabels
    if type(labels) ~= "table" or next(labels) == nil then
      return "failed", "spec.selector.matchLabels is empty: it would select every Service"
    end
    if type(spec.endpoints) ~= "table" or #spec.endpoints == 0 then
      return "failed", "no endpoints to scrape"
    end
    for _, ep in ipairs(spec.endpoints) do
      if not ep.port and not ep.targetPort then
        return "failed", "an endpoint has neither port nor targetPort"
      end
    end
    return "ready", string.format("selects %d endpoint(s)", #spec.endpoints)
  end
end

return {
  name = "example-app",
  namespace = "monitoring-demo",
  deadline = 120,
  objects = { atom.yaml("manifests/*.yaml") },
  readiness = readiness,
}
