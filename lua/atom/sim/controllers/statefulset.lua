-- StatefulSet controller: pods <name>-0..N-1 (OrderedReady: each waits for the
-- one before to be Ready; Parallel: all at once), PVCs from
-- volumeClaimTemplates (kept after the pods go), ControllerRevisions named by
-- template hash, rolling update in reverse ordinal order down to `partition`,
-- and the status fields kubectl rollout status and atom's checks read.
--
-- Ownership: the owner->pods index lives in this closure (util.workload).

local util = require("atom.sim.controllers.util")

local RK = "statefulsets.apps"
local HASH = "controller-revision-hash"

return function(sim)
  local store = sim.store
  local w = util.workload(sim, RK, "StatefulSet")

  local function retention(s)
    return (s.spec or {}).persistentVolumeClaimRetentionPolicy or {}
  end

  -- The claim of pod i from a volumeClaimTemplate: <template>-<set>-<i>.
  local function claim_name(s, vct, i)
    return ((vct.metadata or {}).name or "data") .. "-" .. s.metadata.name .. "-" .. i
  end

  local function delete_claims(s, i)
    for _, vct in ipairs(s.spec.volumeClaimTemplates or {}) do
      local cname = claim_name(s, vct, i)
      if store:get("persistentvolumeclaims", s.metadata.namespace, cname) then
        store:delete("persistentvolumeclaims", s.metadata.namespace, cname, { propagation = "Background" })
      end
    end
  end

  local function ensure_revision(s, rev, hash)
    if store:get("controllerrevisions.apps", s.metadata.namespace, rev) then return end
    local labels = util.copy(sim, (s.spec.template.metadata or {}).labels or {})
    labels["controller.kubernetes.io/hash"] = hash
    pcall(store.create, store, "controllerrevisions.apps", {
      apiVersion = "apps/v1",
      kind = "ControllerRevision",
      metadata = {
        name = rev,
        namespace = s.metadata.namespace,
        labels = labels,
        ownerReferences = { util.owner_ref(s, "apps/v1", "StatefulSet") },
      },
      data = { spec = { template = util.copy(sim, s.spec.template) } },
      revision = s.metadata.generation or 1,
    })
  end

  local function ensure_claims(s, i)
    local claims = {}
    for _, vct in ipairs(s.spec.volumeClaimTemplates or {}) do
      local tname = vct.metadata and vct.metadata.name or "data"
      local cname = claim_name(s, vct, i)
      claims[#claims + 1] = { vol = tname, claim = cname }
      if not store:get("persistentvolumeclaims", s.metadata.namespace, cname) then
        local labels = util.copy(sim, (s.spec.selector or {}).matchLabels or {})
        for k, v in pairs((vct.metadata or {}).labels or {}) do labels[k] = v end
        store:create("persistentvolumeclaims", {
          apiVersion = "v1",
          kind = "PersistentVolumeClaim",
          metadata = {
            name = cname,
            namespace = s.metadata.namespace,
            labels = labels,
            annotations = vct.metadata and vct.metadata.annotations
              and util.copy(sim, vct.metadata.annotations) or nil,
            -- whenDeleted: Delete makes the claims go with the StatefulSet
            -- (garbage collection through this reference).
            ownerReferences = retention(s).whenDeleted == "Delete"
              and { util.owner_ref(s, "apps/v1", "StatefulSet") } or nil,
          },
          spec = util.copy(sim, vct.spec or {}),
        })
      end
    end
    return claims
  end

  local function create_pod(s, i, rev)
    local pname = s.metadata.name .. "-" .. i
    local pod = util.pod_from_template(sim, s.spec.template or {}, s, "apps/v1", "StatefulSet", {
      [HASH] = rev,
      ["statefulset.kubernetes.io/pod-name"] = pname,
      ["apps.kubernetes.io/pod-index"] = tostring(i),
    })
    pod.metadata.name = pname
    pod.spec.hostname = pname
    pod.spec.subdomain = s.spec.serviceName
    local claims = ensure_claims(s, i)
    -- a list of the pod's own: the template's (shared, stored) is never appended to
    local tvols = pod.spec.volumes
    local vols = {}
    for j, v in ipairs(tvols or {}) do vols[j] = v end
    if tvols and getmetatable(tvols) == sim.util.array_mt then setmetatable(vols, sim.util.array_mt) end
    pod.spec.volumes = vols
    for _, c in ipairs(claims) do
      local present = false
      for _, v in ipairs(pod.spec.volumes) do
        if v.name == c.vol then present = true end
      end
      if not present then
        pod.spec.volumes[#pod.spec.volumes + 1] = {
          name = c.vol, persistentVolumeClaim = { claimName = c.claim } }
      end
    end
    return store:create("pods", pod)
  end

  local function reconcile(ns, name)
    local s = store:get(RK, ns, name)
    if not s or s.metadata.deletionTimestamp then return end
    local spec = s.spec or {}
    local replicas = util.spec_replicas(s)
    local ordered = spec.podManagementPolicy ~= "Parallel"
    local strategy = spec.updateStrategy or {}
    local on_delete = strategy.type == "OnDelete"
    local partition = ((strategy.rollingUpdate or {}).partition) or 0
    local min_ready = spec.minReadySeconds or 0

    local hash = util.template_hash(spec.template or {})
    local update_rev = name .. "-" .. hash
    ensure_revision(s, update_rev, hash)
    local st = util.copy(sim, s.status or {})
    local current_rev = st.currentRevision or update_rev

    local by_ord, extra = {}, {}
    for _, p in ipairs(w.children(s)) do
      local i = tonumber(p.metadata.name:match("%-(%d+)$"))
      if i and i < replicas then
        by_ord[i] = p
      elseif i then
        extra[#extra + 1] = { i = i, pod = p }
      end
    end

    -- Create missing pods (and replace finished ones) in ordinal order.
    local all_ready = true
    for i = 0, replicas - 1 do
      local p = by_ord[i]
      if p and not util.pod_active(p) and p.metadata.deletionTimestamp == nil then
        store:delete("pods", ns, p.metadata.name, { propagation = "Background" })
        p = nil
        by_ord[i] = nil
      end
      if not p then
        all_ready = false
        local rev = (i < partition) and current_rev or update_rev
        by_ord[i] = create_pod(s, i, rev)
        if ordered then break end
      elseif not util.pod_ready(p) then
        all_ready = false
        if ordered then break end
      end
    end

    -- Scale down from the highest ordinal, one at a time when ordered.
    table.sort(extra, function(a, b) return a.i > b.i end)
    for _, e in ipairs(extra) do
      if ordered and not all_ready then break end
      store:delete("pods", ns, e.pod.metadata.name, { propagation = "Background" })
      if retention(s).whenScaled == "Delete" then delete_claims(s, e.i) end
      if ordered then break end
    end

    -- Rolling update: replace the highest-ordinal outdated pod once all are ready.
    if not on_delete and all_ready and #extra == 0 then
      for i = replicas - 1, partition, -1 do
        local p = by_ord[i]
        if p and (p.metadata.labels or {})[HASH] ~= update_rev then
          store:delete("pods", ns, p.metadata.name, { propagation = "Background" })
          by_ord[i] = nil
          break
        end
      end
    end

    local live, current, updated = {}, 0, 0
    for i = 0, replicas - 1 do
      local p = by_ord[i]
      if p then
        live[#live + 1] = p
        local rev = (p.metadata.labels or {})[HASH]
        if rev == current_rev then current = current + 1 end
        if rev == update_rev then updated = updated + 1 end
      end
    end
    local count = #live + #extra
    local ready, available, wake = util.pod_counts(sim, live, min_ready)
    if wake then w.wake(s, wake) end
    -- The rollout is complete: the update revision becomes current.
    if updated == count and ready == count and count == replicas then
      current_rev = update_rev
      current = updated
    end

    st.observedGeneration = s.metadata.generation
    st.replicas = count
    st.readyReplicas = ready > 0 and ready or nil
    st.availableReplicas = available
    st.currentReplicas = current > 0 and current or nil
    st.updatedReplicas = updated > 0 and updated or nil
    st.currentRevision = current_rev
    st.updateRevision = update_rev
    st.collisionCount = st.collisionCount or 0
    s = util.save_status(sim, RK, s, st)
    if ready >= replicas and count == replicas and updated >= replicas - partition
      and (partition > 0 or current_rev == update_rev) then
      w.marks.mark(s)
    end
  end

  w.run(reconcile)
end
