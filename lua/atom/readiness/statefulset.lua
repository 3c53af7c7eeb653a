-- StatefulSet (apps/v1): all replicas ready, all updated above the partition, and with
-- partition 0 the revisions equal (Helm's stricter rule; kubectl never reaches its
-- revision test). OnDelete is ready once the ready count matches. No controller
-- condition shows failure: with ctx.related, a pod of the update revision showing a
-- terminal waiting reason (see pod.lua) fails it fast; otherwise the deadline does.
local u = require "atom.readiness.util"
local pod = require "atom.readiness.pod"

return function(obj, ctx)
  local spec, st = u.tbl(obj.spec), u.tbl(obj.status)
  local seen, why = u.observed(obj)
  if not seen then return "progressing", why end
  if ctx and ctx.related then
    for _, p in ipairs(u.tbl(ctx.related("Pod", spec.selector))) do
      local m = u.tbl(p.metadata)
      if st.updateRevision == nil or u.tbl(m.labels)["controller-revision-hash"] == st.updateRevision then
        local state, msg = pod(p)
        if state == "failed" then return "failed", string.format("pod %s: %s", tostring(m.name), msg) end
      end
    end
  end
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
