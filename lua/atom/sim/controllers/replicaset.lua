-- ReplicaSet and ReplicationController controller: keeps the number of live
-- pods equal to spec.replicas and reports replicas / fullyLabeledReplicas /
-- readyReplicas / availableReplicas / observedGeneration.
--
-- Ownership: the owner->pods index and wake-up timers live in this closure.

local util = require("atom.sim.controllers.util")

local function setup(sim, rk, kind, api_version)
  local store = sim.store
  local timers = util.timers(sim)
  local marks = util.ready_marks(sim, rk)
  local q
  local pods = util.child_index(sim, "pods", kind, function(ref, child)
    q.add(child.metadata.namespace, ref.name)
  end)

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
    local want = rs.spec.replicas
    if want == nil then want = 1 end
    local min_ready = rs.spec.minReadySeconds or 0
    local sel = selector_of(rs)

    local active = {}
    for _, p in ipairs(pods.children(rs)) do
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

    local labeled, ready, available, wake = 0, 0, 0, nil
    for _, p in ipairs(active) do
      if util.selector_matches(sel, p.metadata.labels) then labeled = labeled + 1 end
      if util.pod_ready(p) then ready = ready + 1 end
      local ok, left = util.pod_available(sim, p, min_ready)
      if ok then
        available = available + 1
      elseif left and (not wake or left < wake) then
        wake = left
      end
    end
    if wake then
      timers.set(rs.metadata.uid, wake, function() q.add(ns, name) end)
    end

    local st = util.copy(sim, rs.status or {})
    st.replicas = #active
    st.fullyLabeledReplicas = labeled
    st.readyReplicas = ready
    st.availableReplicas = available
    st.observedGeneration = rs.metadata.generation
    -- These are omitempty in the API: a real server never shows them as 0.
    for _, f in ipairs({ "fullyLabeledReplicas", "readyReplicas", "availableReplicas" }) do
      if st[f] == 0 then st[f] = nil end
    end
    if not util.equal(st, rs.status) then
      rs = util.write_status(sim, rk, rs, st) or rs
    end
    if #active == want and available >= want then
      marks.mark(rs)
    end
  end

  q = util.queue(sim, reconcile)
  store:subscribe(function(ev, erk, obj, old)
    if erk ~= rk then return end
    if not util.needs_reconcile(ev, obj, old) then return end
    if ev == "DELETED" then
      timers.cancel(obj.metadata.uid)
      marks.forget(obj)
      return
    end
    q.add(obj.metadata.namespace, obj.metadata.name)
  end)
end

return function(sim)
  setup(sim, "replicasets.apps", "ReplicaSet", "apps/v1")
  setup(sim, "replicationcontrollers", "ReplicationController", "v1")
end
