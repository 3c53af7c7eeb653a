-- Namespace controller: phase Active on create; on delete, phase Terminating
-- until the store has emptied it, then the `kubernetes` finalizer is removed so
-- the store can drop the namespace.
--
-- Ownership: pending finalize timers live in this closure.

local util = require("atom.sim.controllers.util")

local RK = "namespaces"

return function(sim)
  local store = sim.store
  local timers = util.timers(sim)

  local function finalize(name)
    local ns = store:get(RK, nil, name)
    if not ns or not ns.metadata.deletionTimestamp then return end
    local upd = util.copy(sim, ns)
    upd.spec = upd.spec or {}
    local keep = {}
    for _, f in ipairs(upd.spec.finalizers or {}) do
      if f ~= "kubernetes" then keep[#keep + 1] = f end
    end
    upd.spec.finalizers = keep
    store:update(RK, upd)
  end

  local function set_phase(ns, phase)
    local st = util.copy(sim, ns.status or {})
    st.phase = phase
    util.write_status(sim, RK, ns, st)
  end

  local function reconcile(_, name)
    local ns = store:get(RK, nil, name)
    if not ns then return end
    local st = ns.status or {}
    if ns.metadata.deletionTimestamp then
      if st.phase ~= "Terminating" then set_phase(ns, "Terminating") end
      -- Seen as Terminating for a moment, as on a real cluster; the store
      -- has already deleted the contents.
      if not timers.has(name) then
        timers.set(name, util.short_delay(sim), function() finalize(name) end)
      end
    elseif st.phase ~= "Active" then
      set_phase(ns, "Active")
    end
  end

  local q = util.queue(sim, reconcile)
  util.watch(sim, RK, q, function(obj) timers.cancel(obj.metadata.name) end, true)
  for _, ns in ipairs(store:list(RK, nil, nil)) do q.add(nil, ns.metadata.name) end
end
