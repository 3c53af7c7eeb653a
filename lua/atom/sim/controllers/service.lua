-- Service controller: `type: LoadBalancer` gets status.loadBalancer.ingress
-- (an address from 172.18.255.x, as kind's MetalLB would give) after a short
-- delay, unless a scenario rule says never_ready. ClusterIP allocation is the
-- API machinery's job, not this controller's.
--
-- Ownership: the address counter and delay timers live in this closure.

local util = require("atom.sim.controllers.util")

local RK = "services"

return function(sim)
  local store = sim.store
  local timers = util.timers(sim)
  local marks = util.ready_marks(sim, RK)
  local assigned = {} -- uid -> ip, so an address survives spec edits
  local next_ip = 0

  local function assign(ns, name)
    local svc = store:get(RK, ns, name)
    if not svc or (svc.spec or {}).type ~= "LoadBalancer" then return end
    if util.rule_for(sim, svc).never_ready then return end
    local uid = svc.metadata.uid
    local ip = assigned[uid]
    if not ip then
      next_ip = next_ip % 254 + 1
      ip = "172.18.255." .. next_ip
      assigned[uid] = ip
    end
    local st = util.copy(sim, svc.status or {})
    st.loadBalancer = { ingress = { { ip = ip, ipMode = "VIP" } } }
    svc = util.save_status(sim, RK, svc, st)
    marks.mark(svc)
  end

  local function reconcile(ns, name)
    local svc = store:get(RK, ns, name)
    if not svc then return end
    local spec = svc.spec or {}
    if spec.type == "LoadBalancer" then
      local ing = ((svc.status or {}).loadBalancer or {}).ingress
      if ing and #ing > 0 then
        marks.mark(svc)
      elseif util.short_delay(sim) == 0 then
        assign(ns, name)
      elseif not timers.has(svc.metadata.uid) then
        timers.set(svc.metadata.uid, util.short_delay(sim), function() assign(ns, name) end)
      end
    else
      local lb = (svc.status or {}).loadBalancer
      if lb and lb.ingress then
        -- No longer a LoadBalancer: the address is released.
        local st = util.copy(sim, svc.status)
        st.loadBalancer = {}
        util.write_status(sim, RK, svc, st)
      end
      assigned[svc.metadata.uid] = nil
      marks.mark(svc)
    end
  end

  -- Every event, status writes too: the address assigned is what marks it ready.
  util.watch(sim, RK, util.queue(sim, reconcile), function(obj)
    timers.cancel(obj.metadata.uid)
    assigned[obj.metadata.uid] = nil
    marks.forget(obj)
  end, true)
end
