-- A release with a CustomResourceDefinition and a custom resource of that kind in one
-- version: prometheus-operator's ServiceMonitor CRD, its getting-started example app,
-- and the ServiceMonitor that selects it (manifests/ are copies of the upstream files,
-- attribution headers kept). atom applies the CRD first, waits until it is Established,
-- then applies the ServiceMonitor.
--
-- The ServiceMonitor CRD has no top-level status.conditions, so atom's generic rule
-- would call a ServiceMonitor ready as soon as it exists — even one that selects nothing
-- or that Prometheus has rejected. The override below says what ready means for this
-- kind: its selector and endpoints make sense, and every Prometheus that picked it up
-- (status.bindings, written by the operator) accepted it. A rejection fails the release
-- at once instead of waiting for the deadline.
--
--   atom run examples/crd-readiness/release.lua
local atom = require "atom"

local function service_monitor_ready(obj)
  local spec = obj.spec or {}
  local labels = spec.selector and spec.selector.matchLabels
  if type(labels) ~= "table" or next(labels) == nil then
    return "failed", "spec.selector.matchLabels is empty: it would select every Service"
  end
  if type(spec.endpoints) ~= "table" or #spec.endpoints == 0 then
    return "failed", "no endpoints to scrape"
  end
  for i, ep in ipairs(spec.endpoints) do
    if not ep.port and not ep.targetPort then
      return "failed", string.format("endpoint %d has neither port nor targetPort", i)
    end
  end
  local bindings = obj.status and obj.status.bindings
  if type(bindings) ~= "table" or #bindings == 0 then
    return "ready", "valid; no Prometheus has picked it up yet"
  end
  for _, b in ipairs(bindings) do
    for _, c in ipairs(b.conditions or {}) do
      if c.type == "Accepted" and c.status == "False" then
        return "failed", string.format("%s %s rejected it: %s", tostring(b.resource), tostring(b.name),
          tostring(c.message or c.reason))
      end
      if c.type == "Accepted" and c.status ~= "True" then
        return "progressing", string.format("waiting for %s %s to accept it", tostring(b.resource), tostring(b.name))
      end
    end
  end
  return "ready", string.format("accepted by %d Prometheus", #bindings)
end

return {
  name = "example-app",
  namespace = "monitoring-demo",
  deadline = 120,
  objects = { atom.yaml("manifests/*.yaml") },
  readiness = {
    ["ServiceMonitor.monitoring.coreos.com"] = service_monitor_ready,
  },
}
