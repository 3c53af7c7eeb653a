-- ReplicaSet and ReplicationController controller: keeps the number of live
-- pods equal to spec.replicas and reports replicas / fullyLabeledReplicas /
-- readyReplicas / availableReplicas / observedGeneration.
--
-- Ownership: the owner->pods index and wake-up timers live in this closure
-- (util.workload).

local util = require("atom.sim.controllers.util")

local function setup(sim, rk, kind, api_version)
  local store = sim.store
  local w = util.workload(sim, rk, kind)

  local function selector_of(rs)
    local sel = rs.spec and rs.spec.selector
    if kind == "ReplicationController" and sel == nil then
      sel = rs.spec.template and rs.spec.template.metadata and rs.spec.template.metadata.labels
    end
    return sel
  end

  -- Pods to remove first when scaling down: not yet running, then not
  -- ready, then the newest (what the real controller ranks as cheapest).
  local function deletion_rank(p)
    local st = p.status or {}
    if not (p.spec and p.spec.nodeName) then return 0 end
    if st.phase == "Pending" then return 1 end
    if not util.pod_ready(p) then return 2 end
    return 3
  end

  local function reconcile(ns, name)
    local rs = store:get(rk, ns, name)
    if not rs or rs.metadata.deletionTimestamp then return end
    local want = util.spec_replicas(rs)
    local min_ready = rs.spec.minReadySeconds or 0
    local sel = selector_of(rs)

    local active = {}
    for _, p in ipairs(w.children(rs)) do
      if util.pod_active(p) then active[#active + 1] = p end
    end

    local diff = want - #active
    if diff > 0 then
      local tmpl = rs.spec.template or {}
      for _ = 1, diff do
        local pod = util.pod_from_template(sim, tmpl, rs, api_version, kind)
        local created = util.create_named(sim, "pods", pod, name .. "-")
        if created then active[#active + 1] = created end
      end
    elseif diff < 0 then
      table.sort(active, function(a, b)
        local ra, rb = deletion_rank(a), deletion_rank(b)
        if ra ~= rb then return ra < rb end
        return (a.metadata.creationTimestamp or "") > (b.metadata.creationTimestamp or "")
      end)
      for i = 1, -diff do
        local p = active[i]
        store:delete("pods", ns, p.metadata.name, { propagation = "Background" })
      end
      local keep = {}
      for i = -diff + 1, #active do keep[#keep + 1] = active[i] end
      active = keep
    end

    local labeled = 0
    for _, p in ipairs(active) do
      if util.selector_matches(sel, p.metadata.labels) then labeled = labeled + 1 end
    end
    local ready, available, wake = util.pod_counts(sim, active, min_ready)
    if wake then w.wake(rs, wake) end

    local st = util.copy(sim, rs.status or {})
    st.replicas = #active
    st.fullyLabeledReplicas = labeled
    st.readyReplicas = ready
    st.availableReplicas = available
    st.observedGeneration = rs.metadata.generation
    util.omit_zero(st, { "fullyLabeledReplicas", "readyReplicas", "availableReplicas" })
    rs = util.save_status(sim, rk, rs, st)
    if #active == want and available >= want then
      w.marks.mark(rs)
    end
  end

  w.run(reconcile)
end

return function(sim)
  setup(sim, "replicasets.apps", "ReplicaSet", "apps/v1")
  setup(sim, "replicationcontrollers", "ReplicationController", "v1")
end
