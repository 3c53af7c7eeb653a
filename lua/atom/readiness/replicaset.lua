-- ReplicaSet (apps/v1) and ReplicationController (v1): kstatus's counts. ReplicaFailure
-- (quota or admission refusing pods) is reported in the message and left to the
-- deadline, since the cause may be fixed outside the release.
local u = require "atom.readiness.util"

return function(obj)
  local st = u.tbl(obj.status)
  local seen, why = u.observed(obj)
  if not seen then return "progressing", why end
  local want = u.int(u.tbl(obj.spec).replicas, 1)
  local msg
  if u.int(st.replicas) > want then
    msg = string.format("%d extra replicas are pending termination", u.int(st.replicas) - want)
  elseif u.int(st.fullyLabeledReplicas) < want then
    msg = string.format("%d of %d replicas are labeled", u.int(st.fullyLabeledReplicas), want)
  elseif u.int(st.readyReplicas) < want then
    msg = string.format("%d of %d replicas are ready", u.int(st.readyReplicas), want)
  elseif u.int(st.availableReplicas) < want then
    msg = string.format("%d of %d replicas are available", u.int(st.availableReplicas), want)
  end
  if msg then
    local rf = u.condition(obj, "ReplicaFailure")
    if u.is(rf, "True") then msg = msg .. " (" .. u.describe(rf) .. ")" end
    return "progressing", msg
  end
  return "ready", string.format("%d of %d replicas are available", u.int(st.availableReplicas), want)
end
