-- Helpers the controller specs share: reading objects and conditions back from
-- a fake sim, and the check that no reconcile raised an error.
--
-- Ownership: nothing kept; every helper works on the sim it is given.
local fake = require("sim.controllers.fake_sim")
local util = require("atom.sim.controllers.util")
local assert = require("luassert")

local H = {}

-- Object rk/name in ns ("default" when nil; false for a cluster-scoped one).
function H.get(sim, rk, name, ns)
  if ns == nil then ns = "default" end
  if ns == false then ns = nil end
  return sim.store:get(rk, ns, name)
end

-- Change a copy of the object with fn and write it back, as a client would.
function H.update(sim, rk, name, fn)
  local o = sim.util.copy(H.get(sim, rk, name))
  fn(o)
  return sim.store:update(rk, o)
end

-- "Status/Reason" of condition t, nil when the object has none.
function H.cond(obj, t)
  local c = util.get_condition(obj, t)
  return c and (c.status .. "/" .. (c.reason or ""))
end

-- Pods labelled app=<app> in the default namespace.
function H.pods(sim, app)
  return sim.store:list("pods", "default", function(p) return p.metadata.labels.app == app end)
end

-- For after_each: no reconcile may have raised an error (the fake sim logs
-- them instead of failing the test on its own).
function H.no_reconcile_errors()
  assert.are.same({}, fake.last.logged)
end

return H
