-- DaemonSet (apps/v1): kstatus's rule, every count at least desiredNumberScheduled
-- (0 desired is ready). With OnDelete, pods update only when deleted, so the updated
-- count is not awaited (as for StatefulSet). No status field shows failure: with
-- ctx.related, a pod of the current template (label pod-template-generation, the
-- apiserver's count in the annotation below) showing a terminal waiting reason (see
-- pod.lua) fails it fast; otherwise the deadline does.
local u = require "atom.readiness.util"

local TEMPLATE_GENERATION = "deprecated.daemonset.template.generation"

-- The first pod of the current template that cannot start, and why.
local function failing_pod(obj, ctx)
  local current = u.tbl(u.tbl(obj.metadata).annotations)[TEMPLATE_GENERATION]
  return u.failing_pod(ctx.related("Pod", u.tbl(obj.spec).selector), function(p)
    return current == nil or u.tbl(u.tbl(p.metadata).labels)["pod-template-generation"] == current
  end)
end

return function(obj, ctx)
  local st = u.tbl(obj.status)
  local seen, why = u.observed(obj)
  if not seen then return "progressing", why end
  local failed = ctx and ctx.related and failing_pod(obj, ctx)
  if failed then return "failed", failed end
  local desired = u.int(st.desiredNumberScheduled)
  local ondelete = u.tbl(u.tbl(obj.spec).updateStrategy).type == "OnDelete"
  local checks = {
    { u.int(st.currentNumberScheduled), "%d of %d pods are scheduled" },
    { ondelete and desired or u.int(st.updatedNumberScheduled), "%d out of %d new pods have been updated" },
    { u.int(st.numberReady), "%d of %d pods are ready" },
    { u.int(st.numberAvailable), "%d of %d updated pods are available" },
  }
  for _, c in ipairs(checks) do
    if c[1] < desired then return "progressing", string.format(c[2], c[1], desired) end
  end
  return "ready", string.format("%d of %d pods are available", u.int(st.numberAvailable), desired)
end
