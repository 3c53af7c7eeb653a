-- PodDisruptionBudget (policy/v1): ready once its controller has observed the current
-- generation. Failed when the controller cannot sync it (SyncFailed); too few healthy
-- pods (InsufficientPods) is normal during a rollout and only noted in the message.
local u = require "atom.readiness.util"

return function(obj)
  local seen, why = u.observed(obj)
  if not seen then return "progressing", why end
  local st = u.tbl(obj.status)
  local c = u.condition(obj, "DisruptionAllowed")
  if u.is(c, "False") and c.reason == "SyncFailed" then return "failed", u.describe(c) end
  local msg = string.format("%d healthy pods, %d required, %d disruptions allowed",
    u.int(st.currentHealthy), u.int(st.desiredHealthy), u.int(st.disruptionsAllowed))
  if u.is(c, "False") then msg = msg .. " (" .. u.describe(c) .. ")" end
  return "ready", msg
end
