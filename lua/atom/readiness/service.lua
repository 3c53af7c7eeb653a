-- Service (v1): a LoadBalancer waits for an address (as Helm and Argo CD do), or for
-- spec.externalIPs; every other type is ready once it exists. To stop waiting for a
-- load balancer that will never report one, override the object:
--   readiness = { ["Service/frontend-external"] = function() return "ready" end }
local u = require "atom.readiness.util"

return function(obj)
  local spec = u.tbl(obj.spec)
  local kind = spec.type or "ClusterIP"
  if kind ~= "LoadBalancer" then
    if kind == "ExternalName" then return "ready", "external name " .. tostring(spec.externalName) end
    return "ready", kind .. " " .. tostring(spec.clusterIP or "")
  end
  local ingress = u.tbl(u.tbl(u.tbl(obj.status).loadBalancer).ingress)
  local first = u.tbl(ingress[1])
  if first.ip or first.hostname then
    return "ready", "load balancer at " .. tostring(first.ip or first.hostname)
  end
  if #u.tbl(spec.externalIPs) > 0 then
    return "ready", "external IP " .. tostring(spec.externalIPs[1])
  end
  return "progressing", "waiting for the load balancer to get an address"
end
