-- PersistentVolumeClaim (v1): Bound is ready, Lost is failed, Pending waits. A claim
-- whose StorageClass binds on first consumer stays Pending until a pod uses it; when
-- ctx.get can fetch the StorageClass, such a claim counts as ready so that the workload
-- using it is not blocked waiting for it.
local u = require "atom.readiness.util"

return function(obj, ctx)
  local phase = u.tbl(obj.status).phase
  if phase == "Bound" then return "ready", "bound to " .. tostring(u.tbl(obj.spec).volumeName) end
  if phase == "Lost" then return "failed", "claim lost its volume" end
  local class = u.tbl(obj.spec).storageClassName
  if ctx and ctx.get and type(class) == "string" then
    local sc = u.tbl(ctx.get("StorageClass", class))
    if sc.volumeBindingMode == "WaitForFirstConsumer" then
      return "ready", "waits for its first consumer (StorageClass " .. class .. ")"
    end
  end
  return "progressing", "claim is " .. tostring(phase or "Pending")
end
