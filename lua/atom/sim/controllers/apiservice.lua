-- APIService controller: local APIServices (no spec.service) are Available
-- at once (reason Local); an aggregated one is Available (Passed) once its
-- Service has ready endpoints, and False with MissingEndpoints or
-- ServiceNotFound until then, as kube-aggregator reports it.
--
-- Ownership: the service->APIService index lives in this closure.

local util = require("atom.sim.controllers.util")

local RK = "apiservices.apiregistration.k8s.io"

return function(sim)
  local store, clock = sim.store, sim.clock
  local by_service = {} -- "ns/name" -> { [apiservice name] = true }
  local service_of = {} -- apiservice name -> "ns/name"

  local function reconcile(_, name)
    local as = store:get(RK, nil, name)
    if not as then return end
    local svc = (as.spec or {}).service
    local status, reason, msg
    if not svc then
      status, reason, msg = "True", "Local", "Local APIServices are always available"
    else
      local ns, sname = svc.namespace or "default", svc.name
      local s = store:get("services", ns, sname)
      local ep = store:get("endpoints", ns, sname)
      local ready = false
      for _, sub in ipairs((ep or {}).subsets or {}) do
        if sub.addresses and #sub.addresses > 0 then ready = true end
      end
      if not s then
        status, reason = "False", "ServiceNotFound"
        msg = string.format('service/%s in "%s" is not present', sname, ns)
      elseif not ready then
        status, reason = "False", "MissingEndpoints"
        msg = string.format('endpoints for service/%s in "%s" have no addresses with port name ""', sname, ns)
      else
        status, reason, msg = "True", "Passed", "all checks passed"
      end
    end
    local st = util.copy(sim, as.status or {})
    st.conditions = st.conditions or {}
    util.set_condition(st.conditions, "Available", status, reason, msg, clock:rfc3339(clock:now()))
    as = util.save_status(sim, RK, as, st)
    if status == "True" then util.mark_ready(sim, RK, as) end
  end

  local q = util.queue(sim, reconcile)
  local function on_event(ev, rk, obj, old)
    if rk == RK then
      local name = obj.metadata.name
      local prev = service_of[name]
      if prev and by_service[prev] then by_service[prev][name] = nil end
      service_of[name] = nil
      if ev == "DELETED" then return end
      local svc = (obj.spec or {}).service
      if svc and svc.name then
        local k = util.key(svc.namespace or "default", svc.name)
        by_service[k] = by_service[k] or {}
        by_service[k][name] = true
        service_of[name] = k
      end
      if util.needs_reconcile(ev, obj, old) then q.add(nil, name) end
    elseif (rk == "endpoints" or rk == "services") and next(by_service) then
      local set = by_service[util.key(obj.metadata.namespace, obj.metadata.name)]
      if set then
        for n in pairs(set) do q.add(nil, n) end
      end
    end
  end
  for _, rk in ipairs({ RK, "endpoints", "services" }) do store:subscribe(on_event, rk) end
end
