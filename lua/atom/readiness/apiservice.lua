-- APIService (apiregistration.k8s.io/v1): ready on Available=True. Until then the reason
-- (MissingEndpoints, ServiceNotFound, FailedDiscoveryCheck, ...) is shown, and the
-- deadline decides: the backing service often comes up a little later.
local u = require "atom.readiness.util"

return function(obj)
  local c = u.condition(obj, "Available")
  if u.is(c, "True") then return "ready", "available" .. (c.reason and " (" .. c.reason .. ")" or "") end
  return "progressing", c and u.describe(c) or "waiting for the Available condition"
end
