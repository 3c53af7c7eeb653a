-- StatefulSet (apps/v1): all replicas ready, all updated above the partition, and with
-- partition 0 the revisions equal (Helm's stricter rule; kubectl never reaches its
-- revision test). OnDelete is ready once the ready count matches. No controller
-- condition shows failure: with ctx.related, a pod of the update revision showing a
-- terminal waiting reason (see pod.lua) fails it fast; otherwise the deadline does.
local u = require "atom.readiness.util"

return function(obj, ctx)
  local spec, st = u.tbl(obj.spec), u.tbl(obj.status)
  local seen, why = u.observed(obj)
  if not seen then return "progressing", why end
  local failed = ctx and ctx.related and u.failing_pod(ctx.related("Pod", spec.selector), function(p)
    return st.updateRevision == nil or u.tbl(u.tbl(p.metadata).labels)["controller-revision-hash"] == st.updateRevision
  end)
  if failed then return "failed", failed end
  local want = u.int(spec.replicas, 1)
  local ready, total = u.int(st.readyReplicas), u.int(st.replicas)
  if ready < want then
    return "progressing", string.format("%d of %d replicas are ready", ready, want)
  end
  if total > want then
    return "progressing", string.format("%d extra replicas are pending termination", total - want)
  end
  local strategy = u.tbl(spec.updateStrategy)
  if strategy.type == "OnDelete" then
    return "ready", string.format("%d of %d replicas are ready (OnDelete: pods update when deleted)", ready, want)
  end
  local partition = u.int(u.tbl(strategy.rollingUpdate).partition)
  local updated = u.int(st.updatedReplicas)
  if updated < want - partition then
    return "progressing", string.format("%d out of %d new pods have been updated", updated, want - partition)
  end
  if partition == 0 and st.currentRevision ~= st.updateRevision then
    return "progressing", string.format("waiting for the rolling update to complete: %d pods at revision %s",
      updated, tostring(st.updateRevision))
  end
  return "ready", string.format("%d of %d replicas are ready and updated", ready, want)
end
