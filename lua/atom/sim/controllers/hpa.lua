-- HorizontalPodAutoscaler controller: keeps the target's replicas within
-- [minReplicas, maxReplicas] and writes plausible autoscaling/v2 status
-- (currentReplicas, desiredReplicas, AbleToScale / ScalingActive /
-- ScalingLimited) so readiness checks have real fields to read. No metrics
-- are simulated: the desired count is the target's own, clamped.
--
-- Ownership: the target->HPA index lives in this closure.

local util = require("atom.sim.controllers.util")

local RK = "horizontalpodautoscalers.autoscaling"

return function(sim)
  local store, clock = sim.store, sim.clock
  local by_target = {} -- "ns/Kind/name" -> { [hpa name] = true }
  local target_of = {} -- "ns/hpa name" -> target key
  local rk_kind = {}
  for kind, rk in pairs(util.kind_rk) do rk_kind[rk] = kind end

  local function tkey(ns, ref)
    return (ns or "") .. "/" .. tostring(ref.kind) .. "/" .. tostring(ref.name)
  end

  local function index(hpa, removed)
    local k = util.key(hpa.metadata.namespace, hpa.metadata.name)
    local old = target_of[k]
    if old and by_target[old] then by_target[old][hpa.metadata.name] = nil end
    target_of[k] = nil
    if removed then return end
    local ref = (hpa.spec or {}).scaleTargetRef
    if ref then
      local t = tkey(hpa.metadata.namespace, ref)
      by_target[t] = by_target[t] or {}
      by_target[t][hpa.metadata.name] = true
      target_of[k] = t
    end
  end

  local function reconcile(ns, name)
    local hpa = store:get(RK, ns, name)
    if not hpa then return end
    local spec = hpa.spec or {}
    local ref = spec.scaleTargetRef or {}
    local now = clock:rfc3339(clock:now())
    local st = util.copy(sim, hpa.status or {})
    st.conditions = st.conditions or {}
    st.observedGeneration = hpa.metadata.generation
    local trk = util.kind_rk[ref.kind]
    local target = trk and store:get(trk, ns, ref.name)
    if not target then
      util.set_condition(st.conditions, "AbleToScale", "False", "FailedGetScale",
        "the HPA controller was unable to get the target's current scale: " ..
        tostring(trk or ref.kind) .. ' "' .. tostring(ref.name) .. '" not found', now)
      st.currentReplicas = st.currentReplicas or 0
      st.desiredReplicas = st.desiredReplicas or 0
    else
      local lo, hi = spec.minReplicas or 1, spec.maxReplicas or 1
      local cur = (target.spec or {}).replicas or 1
      local desired = math.max(lo, math.min(hi, cur))
      if desired ~= cur then
        local upd = util.copy(sim, target)
        upd.spec.replicas = desired
        target = store:update(trk, upd) or target
        st.lastScaleTime = now
      end
      st.currentReplicas = (target.status or {}).replicas or 0
      st.desiredReplicas = desired
      util.set_condition(st.conditions, "AbleToScale", "True", "ReadyForNewScale",
        "recommended size matches current size", now)
      util.set_condition(st.conditions, "ScalingActive", "True", "ValidMetricFound",
        "the HPA was able to successfully calculate a replica count from cpu resource utilization (percentage of request)", now)
      if desired == cur then
        util.set_condition(st.conditions, "ScalingLimited", "False", "DesiredWithinRange",
          "the desired count is within the acceptable range", now)
      else
        util.set_condition(st.conditions, "ScalingLimited", "True",
          desired > cur and "TooFewReplicas" or "TooManyReplicas",
          "the desired replica count is " .. (desired > cur and "less than the minimum" or "more than the maximum") ..
          " replica count", now)
      end
    end
    util.save_status(sim, RK, hpa, st)
  end

  local q = util.queue(sim, reconcile)
  local function on_event(ev, rk, obj)
    if rk == RK then
      index(obj, ev == "DELETED")
      if ev ~= "DELETED" then q.add(obj.metadata.namespace, obj.metadata.name) end
      return
    end
    local kind = rk_kind[rk]
    if not kind or next(by_target) == nil then return end
    local set = by_target[tkey(obj.metadata.namespace, { kind = kind, name = obj.metadata.name })]
    if set then
      for n in pairs(set) do q.add(obj.metadata.namespace, n) end
    end
  end
  store:subscribe(on_event, RK)
  for rk in pairs(rk_kind) do store:subscribe(on_event, rk) end
end
