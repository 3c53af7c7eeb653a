-- Deployment (apps/v1): kubectl's `rollout status` rule plus kstatus's readyReplicas and
-- Available=True tests. Fails on ProgressDeadlineExceeded; a paused Deployment counts as
-- ready. With ctx.related it also fails fast when a pod of the rollout shows a terminal
-- waiting reason (see pod.lua), instead of waiting for the progress deadline.
local u = require "atom.readiness.util"

-- Pods of the newest ReplicaSet: the one whose revision annotation matches ours.
local function rollout_pods(obj, ctx)
  local selector = u.tbl(obj.spec).selector
  local pods = u.tbl(ctx.related("Pod", selector))
  local rev = u.tbl(u.tbl(obj.metadata).annotations)["deployment.kubernetes.io/revision"]
  local hash
  for _, rs in ipairs(u.tbl(ctx.related("ReplicaSet", selector))) do
    local m = u.tbl(rs.metadata)
    if rev and u.tbl(m.annotations)["deployment.kubernetes.io/revision"] == rev then
      hash = u.tbl(m.labels)["pod-template-hash"]
    end
  end
  if not hash then return pods end
  local mine = {}
  for _, p in ipairs(pods) do
    if u.tbl(u.tbl(p.metadata).labels)["pod-template-hash"] == hash then mine[#mine + 1] = p end
  end
  return mine
end

return function(obj, ctx)
  local spec, st = u.tbl(obj.spec), u.tbl(obj.status)
  if spec.paused == true then return "ready", "deployment is paused" end
  local seen, why = u.observed(obj)
  if not seen then return "progressing", why end
  local prog = u.condition(obj, "Progressing")
  if prog and prog.reason == "ProgressDeadlineExceeded" then
    return "failed", "exceeded its progress deadline: " .. tostring(prog.message or "")
  end
  local failed = ctx and ctx.related and u.failing_pod(rollout_pods(obj, ctx))
  if failed then return "failed", failed end
  local want = u.int(spec.replicas, 1)
  local updated, total = u.int(st.updatedReplicas), u.int(st.replicas)
  local available, ready = u.int(st.availableReplicas), u.int(st.readyReplicas)
  local msg
  if updated < want then
    msg = string.format("%d out of %d new replicas have been updated", updated, want)
  elseif total > updated then
    msg = string.format("%d old replicas are pending termination", total - updated)
  elseif available < updated then
    msg = string.format("%d of %d updated replicas are available", available, updated)
  elseif ready < want then
    msg = string.format("%d of %d replicas are ready", ready, want)
  elseif not u.is(u.condition(obj, "Available"), "True") then
    msg = "waiting for the Available condition"
  end
  if msg then
    local rf = u.condition(obj, "ReplicaFailure")
    if u.is(rf, "True") then msg = msg .. " (" .. u.describe(rf) .. ")" end
    return "progressing", msg
  end
  return "ready", string.format("%d of %d replicas are updated and available", available, want)
end
