-- The sim the controller specs drive: the real atom.sim on the manual-clock
-- loop of spec/sim/fake_loop.lua (so the specs exercise the real store,
-- registry and scenario), with sim.clock:advance(dt) added.

local M = {}

-- opts: ready_after, nodes, rules (array, real scenario format).
function M.new(opts)
  opts = opts or {}
  local loop = require("sim.fake_loop").new()
  local sim = require("atom.sim").new({ loop = loop, ready_after = opts.ready_after, nodes = opts.nodes or 3 })
  for _, r in ipairs(opts.rules or {}) do sim.scenario.rules[#sim.scenario.rules + 1] = r end
  sim.clock.advance = function(_, dt) loop.advance(dt) end
  return sim
end

-- Readies sim for a spec (atom.sim has loaded its controllers), then runs what
-- is due now.
function M.start(sim)
  -- Controller errors (caught per reconcile) are collected so specs can
  -- assert that none happened.
  sim.logged = {}
  sim.log = function(msg) sim.logged[#sim.logged + 1] = msg end
  M.last = sim
  sim.store.on_error = function(err) sim.logged[#sim.logged + 1] = tostring(err) end
  sim.clock:advance(0)
  return sim
end

return M
