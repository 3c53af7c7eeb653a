-- Namespace (v1): Active is ready. Terminating is failed for an apply step, since nothing
-- can be created in it; the deletion conditions say what holds it up. (A namespace with
-- metadata.deletionTimestamp is already "progressing: terminating" in the dispatcher.)
local u = require "atom.readiness.util"

return function(obj)
  local phase = u.tbl(obj.status).phase
  if phase == "Terminating" then
    local why = {}
    for _, t in ipairs({ "NamespaceDeletionDiscoveryFailure", "NamespaceDeletionContentFailure",
                         "NamespaceContentRemaining", "NamespaceFinalizersRemaining" }) do
      local c = u.condition(obj, t)
      if u.is(c, "True") then why[#why + 1] = u.describe(c) end
    end
    return "failed", "namespace is terminating" .. (#why > 0 and ": " .. table.concat(why, "; ") or "")
  end
  return "ready", "namespace is " .. tostring(phase or "created")
end
