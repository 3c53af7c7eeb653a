-- PodDisruptionBudget controller: counts the pods its selector matches and
-- writes expectedPods / currentHealthy / desiredHealthy / disruptionsAllowed /
-- observedGeneration and the DisruptionAllowed condition.
--
-- Ownership: the namespace->PDB index lives in this closure.

local util = require("atom.sim.controllers.util")

local RK = "poddisruptionbudgets.policy"

return function(sim)
  local store, clock = sim.store, sim.clock
  local by_ns = {} -- namespace -> { [pdb name] = true }

  local function reconcile(ns, name)
    local pdb = store:get(RK, ns, name)
    if not pdb then return end
    local spec = pdb.spec or {}
    local sel = spec.selector or {}
    local expected, healthy = 0, 0
    for _, p in ipairs(store:list("pods", ns, nil)) do
      if util.pod_active(p) and util.selector_matches(sel, (p.metadata.labels or {})) then
        expected = expected + 1
        if util.pod_ready(p) then healthy = healthy + 1 end
      end
    end
    local desired
    if spec.minAvailable ~= nil then
      desired = util.int_or_percent(spec.minAvailable, expected, true, 0)
    elseif spec.maxUnavailable ~= nil then
      desired = math.max(0, expected - util.int_or_percent(spec.maxUnavailable, expected, true, 0))
    else
      desired = expected
    end
    local allowed = math.max(0, healthy - desired)
    local now = clock:rfc3339(clock:now())
    local st = util.copy(sim, pdb.status or {})
    st.observedGeneration = pdb.metadata.generation
    st.expectedPods = expected
    st.currentHealthy = healthy
    st.desiredHealthy = desired
    st.disruptionsAllowed = allowed
    st.conditions = st.conditions or {}
    if allowed > 0 then
      util.set_condition(st.conditions, "DisruptionAllowed", "True", "SufficientPods", "", now)
    else
      util.set_condition(st.conditions, "DisruptionAllowed", "False", "InsufficientPods", "", now)
    end
    for _, c in ipairs(st.conditions) do c.observedGeneration = pdb.metadata.generation end
    util.save_status(sim, RK, pdb, st)
  end

  local q = util.queue(sim, reconcile)
  local function on_event(ev, rk, obj)
    local ns = obj.metadata.namespace or ""
    if rk == RK then
      by_ns[ns] = by_ns[ns] or {}
      if ev == "DELETED" then
        by_ns[ns][obj.metadata.name] = nil
      else
        by_ns[ns][obj.metadata.name] = true
        q.add(obj.metadata.namespace, obj.metadata.name)
      end
    elseif rk == "pods" and by_ns[ns] then
      for n in pairs(by_ns[ns]) do q.add(obj.metadata.namespace, n) end
    end
  end
  store:subscribe(on_event, RK)
  store:subscribe(on_event, "pods")
end
