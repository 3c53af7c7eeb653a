-- CustomResourceDefinition controller: after a short delay (at once when
-- ready_after = 0) sets NamesAccepted and Established True, acceptedNames and
-- storedVersions; the API machinery's registry then serves the kind.
-- A plural or kind already claimed by another CRD in the group gets
-- NamesAccepted False, as on a real server.
--
-- Ownership: delay timers live in this closure.

local util = require("atom.sim.controllers.util")

local RK = "customresourcedefinitions.apiextensions.k8s.io"

return function(sim)
  local store, clock = sim.store, sim.clock
  local timers = util.timers(sim)
  local marks = util.ready_marks(sim, RK)

  local function conflict(crd)
    local names = (crd.spec or {}).names or {}
    for _, other in ipairs(store:list(RK, nil, nil)) do
      if other.metadata.uid ~= crd.metadata.uid and (other.spec or {}).group == crd.spec.group then
        local acc = (other.status or {}).acceptedNames or {}
        if acc.plural and acc.plural == names.plural then
          return "PluralConflict", '"' .. names.plural .. '" is already in use'
        end
        if acc.kind and acc.kind == names.kind then
          return "KindConflict", '"' .. names.kind .. '" is already in use'
        end
      end
    end
    return nil
  end

  local function establish(name)
    local crd = store:get(RK, nil, name)
    if not crd or crd.metadata.deletionTimestamp then return end
    local spec = crd.spec or {}
    local names = spec.names or {}
    local now = clock:rfc3339(clock:now())
    local st = util.copy(sim, crd.status or {})
    st.conditions = st.conditions or {}
    local reason, msg = conflict(crd)
    if reason then
      util.set_condition(st.conditions, "NamesAccepted", "False", reason, msg, now)
      util.set_condition(st.conditions, "Established", "False", "NotAccepted", "not all names are accepted", now)
    else
      local kind = names.kind or ""
      st.acceptedNames = {
        kind = kind,
        listKind = names.listKind or (kind .. "List"),
        plural = names.plural,
        singular = names.singular or kind:lower(),
        shortNames = names.shortNames,
        categories = names.categories,
      }
      util.set_condition(st.conditions, "NamesAccepted", "True", "NoConflicts", "no conflicts found", now)
      util.set_condition(st.conditions, "Established", "True", "InitialNamesAccepted",
        "the initial names have been accepted", now)
    end
    local stored = util.copy(sim, st.storedVersions or {})
    for _, v in ipairs(spec.versions or {}) do
      if v.storage then
        local have = false
        for _, s in ipairs(stored) do if s == v.name then have = true end end
        if not have then stored[#stored + 1] = v.name end
      end
    end
    st.storedVersions = #stored > 0 and stored or nil
    crd = util.save_status(sim, RK, crd, st)
    if not reason then marks.mark(crd) end
  end

  local function reconcile(_, name)
    local crd = store:get(RK, nil, name)
    if not crd or crd.metadata.deletionTimestamp then return end
    local est = util.get_condition(crd, "Established")
    local acc = (crd.status or {}).acceptedNames or {}
    local names = (crd.spec or {}).names or {}
    local stale = not est or est.status ~= "True" or acc.plural ~= names.plural or acc.kind ~= names.kind
    if not stale then
      -- storedVersions may still need the current storage version.
      establish(name)
      return
    end
    local delay = util.short_delay(sim)
    if delay == 0 then
      establish(name)
    elseif not timers.has(name) then
      timers.set(name, delay, function() establish(name) end)
    end
  end

  util.watch(sim, RK, util.queue(sim, reconcile), function(obj)
    timers.cancel(obj.metadata.name)
    marks.forget(obj)
  end)
end
