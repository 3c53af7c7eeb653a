-- Pod (v1): ready when Running with Ready=True, or Succeeded. Failed when the phase is
-- Failed, or (for restartPolicy Always only, so hook pods are left alone) when a
-- container or init container waits with a reason that will not heal by itself.
local u = require "atom.readiness.util"

local TERMINAL = {
  ErrImagePull = true, ImagePullBackOff = true, InvalidImageName = true,
  CrashLoopBackOff = true, CreateContainerConfigError = true,
  CreateContainerError = true, RunContainerError = true,
}

local function waiting(st)
  for _, field in ipairs({ "initContainerStatuses", "containerStatuses" }) do
    for _, cs in ipairs(u.tbl(st[field])) do
      local w = u.tbl(u.tbl(u.tbl(cs).state).waiting)
      if w.reason then return cs.name, w end
    end
  end
end

return function(obj)
  local st = u.tbl(obj.status)
  local always = (u.tbl(obj.spec).restartPolicy or "Always") == "Always"
  if st.phase == "Succeeded" then return "ready", "pod completed" end
  if st.phase == "Failed" then
    return "failed", "pod failed: " .. tostring(st.reason or st.message or "phase Failed")
  end
  local name, w = waiting(st)
  if always and name and TERMINAL[w.reason] then
    return "failed", string.format("container %q is waiting: %s: %s", tostring(name),
      w.reason, tostring(w.message or ""))
  end
  local ready = u.condition(obj, "Ready")
  if st.phase == "Running" and u.is(ready, "True") then
    if always then return "ready", "pod is running and ready" end
    return "progressing", "waiting for the pod to complete"
  end
  local sched = u.condition(obj, "PodScheduled")
  if u.is(sched, "False") then return "progressing", u.describe(sched) end
  if name then
    return "progressing", string.format("container %q is waiting: %s", tostring(name), tostring(w.reason))
  end
  if ready and not u.is(ready, "True") then return "progressing", u.describe(ready) end
  return "progressing", "pod is " .. tostring(st.phase or "not yet scheduled")
end
