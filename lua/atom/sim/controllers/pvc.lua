-- PersistentVolumeClaim controller: binds a claim to a new PV `pvc-<uid>` after
-- a short delay when its StorageClass exists (or it names none and a default
-- class exists, or there are no classes at all); otherwise it stays Pending.
-- Deleting a bound claim deletes its PV (reclaim policy Delete).
--
-- Ownership: bind timers live in this closure.

local util = require("atom.sim.controllers.util")

local RK = "persistentvolumeclaims"
local PV_RK = "persistentvolumes"
local SC_RK = "storageclasses.storage.k8s.io"

return function(sim)
  local store = sim.store
  local timers = util.timers(sim)
  local marks = util.ready_marks(sim, RK)

  local function classes()
    local ok, list = pcall(store.list, store, SC_RK, nil, nil)
    if not ok or not list then return {} end
    return list
  end

  -- The class the claim binds with, or nil when it cannot bind (yet).
  local function class_for(pvc)
    local want = (pvc.spec or {}).storageClassName
    local list = classes()
    if want == "" then return "" end
    if want then
      for _, sc in ipairs(list) do
        if sc.metadata.name == want then return want end
      end
      return nil
    end
    for _, sc in ipairs(list) do
      local a = sc.metadata.annotations or {}
      if a["storageclass.kubernetes.io/is-default-class"] == "true" then return sc.metadata.name end
    end
    if #list == 0 then return "standard" end
    return nil
  end

  -- A claim waiting for a class or for the provisioner shows Pending.
  local function pending(pvc)
    if ((pvc.status or {}).phase) ~= "Pending" then
      util.write_status(sim, RK, pvc, { phase = "Pending" })
    end
  end

  local function bind(ns, name)
    local pvc = store:get(RK, ns, name)
    if not pvc or pvc.metadata.deletionTimestamp then return end
    if ((pvc.status or {}).phase) == "Bound" then return end
    if util.rule_for(sim, pvc).never_ready then return end
    local class = class_for(pvc)
    if not class then
      pending(pvc)
      return
    end
    local spec = pvc.spec or {}
    local size = ((spec.resources or {}).requests or {}).storage or "1Gi"
    local modes = util.copy(sim, spec.accessModes or { "ReadWriteOnce" })
    local pv_name = "pvc-" .. pvc.metadata.uid
    if not store:get(PV_RK, nil, pv_name) then
      local pv = store:create(PV_RK, {
        apiVersion = "v1",
        kind = "PersistentVolume",
        metadata = {
          name = pv_name,
          annotations = { ["pv.kubernetes.io/provisioned-by"] = "atom.sim/hostpath" },
        },
        spec = {
          capacity = { storage = size },
          accessModes = modes,
          persistentVolumeReclaimPolicy = "Delete",
          storageClassName = class ~= "" and class or nil,
          volumeMode = spec.volumeMode or "Filesystem",
          hostPath = { path = "/var/local-path-provisioner/" .. pv_name, type = "DirectoryOrCreate" },
          claimRef = { apiVersion = "v1", kind = "PersistentVolumeClaim", namespace = ns,
            name = name, uid = pvc.metadata.uid, resourceVersion = pvc.metadata.resourceVersion },
        },
      })
      if pv then util.write_status(sim, PV_RK, pv, { phase = "Bound" }) end
    end
    local upd = util.copy(sim, pvc)
    upd.spec = upd.spec or {}
    upd.spec.volumeName = pv_name
    upd.metadata.annotations = upd.metadata.annotations or {}
    upd.metadata.annotations["pv.kubernetes.io/bind-completed"] = "yes"
    upd.metadata.annotations["pv.kubernetes.io/bound-by-controller"] = "yes"
    upd.metadata.annotations["volume.beta.kubernetes.io/storage-provisioner"] = "atom.sim/hostpath"
    upd.metadata.annotations["volume.kubernetes.io/storage-provisioner"] = "atom.sim/hostpath"
    pvc = store:update(RK, upd) or pvc
    pvc = util.write_status(sim, RK, pvc,
      { phase = "Bound", accessModes = modes, capacity = { storage = size } }) or pvc
    marks.mark(pvc)
  end

  local function reconcile(ns, name)
    local pvc = store:get(RK, ns, name)
    if not pvc or pvc.metadata.deletionTimestamp then return end
    if ((pvc.status or {}).phase) == "Bound" then return end
    local uid = pvc.metadata.uid
    if timers.has(uid) then return end
    local delay = util.short_delay(sim)
    if delay == 0 then
      bind(ns, name)
    else
      pending(pvc)
      timers.set(uid, delay, function() bind(ns, name) end)
    end
  end

  local q = util.queue(sim, reconcile)
  local function on_event(ev, rk, obj)
    if rk == SC_RK and ev == "ADDED" then
      -- A class appearing can unblock Pending claims.
      for _, c in ipairs(store:list(RK, nil, nil)) do
        if ((c.status or {}).phase) ~= "Bound" then q.add(c.metadata.namespace, c.metadata.name) end
      end
      return
    end
    if rk ~= RK then return end
    if ev == "DELETED" then
      timers.cancel(obj.metadata.uid)
      marks.forget(obj)
      local pv = (obj.spec or {}).volumeName
      if pv then
        sim.clock:after(0, function()
          if store:get(PV_RK, nil, pv) then
            store:delete(PV_RK, nil, pv, { propagation = "Background" })
          end
        end)
      end
      return
    end
    q.add(obj.metadata.namespace, obj.metadata.name)
  end
  store:subscribe(on_event, SC_RK)
  store:subscribe(on_event, RK)
end
