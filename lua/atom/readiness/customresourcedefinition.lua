-- CustomResourceDefinition (apiextensions.k8s.io/v1): ready once Established=True with
-- its names accepted; failed on a name conflict or a non-structural schema. The caller
-- refreshes discovery after it is ready, before applying resources of the new kind.
local u = require "atom.readiness.util"

return function(obj)
  local names = u.condition(obj, "NamesAccepted")
  if u.is(names, "False") then return "failed", u.describe(names) end
  local schema = u.condition(obj, "NonStructuralSchema")
  if u.is(schema, "True") then return "failed", u.describe(schema) end
  local est = u.condition(obj, "Established")
  if u.is(est, "True") then return "ready", "established" end
  return "progressing", est and u.describe(est) or "waiting to be established"
end
