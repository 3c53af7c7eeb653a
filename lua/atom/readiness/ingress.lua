-- Ingress (networking.k8s.io/v1): ready once it exists, since several controllers never
-- publish an address. To wait for the address, override the object:
--   readiness = { ["Ingress.networking.k8s.io/web"] = function(obj)
--     local lb = obj.status and obj.status.loadBalancer
--     if lb and lb.ingress and lb.ingress[1] then return "ready" end
--     return "progressing", "no address yet"
--   end }
local u = require "atom.readiness.util"

return function(obj)
  local first = u.tbl(u.tbl(u.tbl(u.tbl(obj.status).loadBalancer).ingress)[1])
  if first.ip or first.hostname then return "ready", "address " .. tostring(first.ip or first.hostname) end
  return "ready", "no address yet"
end
