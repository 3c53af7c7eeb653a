-- DaemonSet controller: one pod per simulated Node, rolling update honouring
-- maxUnavailable, and desiredNumberScheduled / currentNumberScheduled /
-- numberReady / numberAvailable / updatedNumberScheduled / observedGeneration.
--
-- Ownership: the owner->pods index lives in this closure (util.workload).

local util = require("atom.sim.controllers.util")
local validate = require("atom.sim.validate")

local RK = "daemonsets.apps"
local HASH = "controller-revision-hash"

return function(sim)
  local store = sim.store
  local w = util.workload(sim, RK, "DaemonSet")

  -- Nodes the DaemonSet's pods may run on: schedulable and matching the
  -- template's nodeSelector.
  local function node_names(ds)
    local want = ((ds.spec.template or {}).spec or {}).nodeSelector
    if want and next(want) == nil then want = nil end
    local out = {}
    for _, n in ipairs(store:list("nodes", nil, nil)) do
      if not n.metadata.deletionTimestamp and not (n.spec and n.spec.unschedulable)
        and (not want or util.selector_matches(want, n.metadata.labels)) then
        out[#out + 1] = n.metadata.name
      end
    end
    table.sort(out)
    return out
  end

  local function reconcile(ns, name)
    local ds = store:get(RK, ns, name)
    if not ds or ds.metadata.deletionTimestamp then return end
    local spec = ds.spec or {}
    local nodes = node_names(ds)
    local desired = #nodes
    local hash = util.template_hash(spec.template or {})
    local strategy = spec.updateStrategy or {}
    local on_delete = strategy.type == "OnDelete"
    local max_unav = util.int_or_percent((strategy.rollingUpdate or {}).maxUnavailable, desired, true, 1)
    if max_unav < 1 then max_unav = 1 end
    local min_ready = spec.minReadySeconds or 0

    local on_node = {}
    for _, p in ipairs(w.children(ds)) do
      if util.pod_active(p) then
        local n = p.spec and p.spec.nodeName
        if n then on_node[n] = p end
      else
        store:delete("pods", ns, p.metadata.name, { propagation = "Background" })
      end
    end

    for _, n in ipairs(nodes) do
      if not on_node[n] then
        local pod = util.pod_from_template(sim, spec.template or {}, ds, "apps/v1", "DaemonSet", {
          [HASH] = hash,
          ["pod-template-generation"] = validate.template_generation(ds),
        })
        pod.spec.nodeName = n
        on_node[n] = util.create_named(sim, "pods", pod, name .. "-")
      end
    end

    if not on_delete then
      local unavailable = 0
      for _, n in ipairs(nodes) do
        if not util.pod_available(sim, on_node[n], min_ready) then unavailable = unavailable + 1 end
      end
      for _, n in ipairs(nodes) do
        local p = on_node[n]
        if p and (p.metadata.labels or {})[HASH] ~= hash then
          local avail = util.pod_available(sim, p, min_ready)
          if not avail or unavailable < max_unav then
            store:delete("pods", ns, p.metadata.name, { propagation = "Background" })
            on_node[n] = nil
            if avail then unavailable = unavailable + 1 end
          end
        end
      end
    end

    local live, updated = {}, 0
    for _, n in ipairs(nodes) do
      local p = on_node[n]
      if p then
        live[#live + 1] = p
        if (p.metadata.labels or {})[HASH] == hash then updated = updated + 1 end
      end
    end
    local current = #live
    local ready, available, wake = util.pod_counts(sim, live, min_ready)
    if wake then w.wake(ds, wake) end

    local st = util.copy(sim, ds.status or {})
    st.observedGeneration = ds.metadata.generation
    st.desiredNumberScheduled = desired
    st.currentNumberScheduled = current
    st.numberMisscheduled = 0
    st.numberReady = ready
    st.numberAvailable = available > 0 and available or nil
    st.numberUnavailable = desired - available > 0 and (desired - available) or nil
    st.updatedNumberScheduled = updated > 0 and updated or nil
    ds = util.save_status(sim, RK, ds, st)
    if updated >= desired and available >= desired and ready >= desired and current >= desired then
      w.marks.mark(ds)
    end
  end

  w.run(reconcile)
  -- A node coming or going changes where every DaemonSet runs.
  store:subscribe(function(ev, rk, obj, old)
    if rk ~= "nodes" or not util.needs_reconcile(ev, obj, old) then return end
    for _, ds in ipairs(store:list(RK, nil, nil)) do
      w.q.add(ds.metadata.namespace, ds.metadata.name)
    end
  end, "nodes")
end
