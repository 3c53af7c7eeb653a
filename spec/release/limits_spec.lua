-- The budget flags of run/diff/check (--max-instructions, --max-seconds, --max-heap)
-- override the script's limits: a check that loops forever under a script that allows
-- it almost unlimited instructions is stopped by a small --max-instructions, and the
-- release still reaches a terminal state.
local S = require "release.support"

-- A ConfigMap whose readiness check never returns; the script's own limits would let it
-- spin for a minute.
local LOOPING_CHECK = [[
return {
  name = "spin", namespace = "spin", deadline = 60,
  limits = { instructions = 1e12, seconds = 60 },
  objects = { { apiVersion = "v1", kind = "ConfigMap", metadata = { name = "settings" }, data = { a = "1" } } },
  readiness = { ConfigMap = function(obj) while true do end end },
}
]]

-- Loading it allocates without bound unless the heap ceiling stops it.
local HUNGRY = [[
local t = {}
for i = 1, 1e9 do t[i] = string.rep("x", 64) .. i end
return { name = "hungry", objects = { { apiVersion = "v1", kind = "ConfigMap", metadata = { name = "c" } } } }
]]

local LOOPING_LOAD = [[
local n = 0
while true do n = n + 1 end
]]

describe("budget flags", function()
  local s
  setup(function() s = S.sim({ ready_after = 0 }) end)
  teardown(function() if s then s.stop() end end)

  it("stop a readiness check that loops forever: Error, then Reverted", function()
    local dir = S.script(LOOPING_CHECK)
    local r = S.atom(s, "run " .. dir .. "/release.lua -q --max-instructions 200000", { timeout = 60 })
    assert.are.equal(3, r.code, r.stdout .. r.stderr)
    assert.matches("spin: version 1 Reverted", r.stdout)
    local a = S.atom_record(s, "spin", "spin")
    local path = {}
    for _, t in ipairs(a.status.transitions) do path[#path + 1] = t.to end
    assert.are.same({ "Pending", "Updating", "Error", "Rollback", "Reverted" }, path)
    local why = a.status.transitions[3].reason
    assert.matches("readiness check ConfigMap %(.*release%.lua:%d+%) failed", why)
    assert.matches("instruction budget %(limits%.instructions = 200000%)", why)
  end)

  it("override the script's limits when checking it (--max-instructions, --max-seconds)", function()
    local dir = S.script(LOOPING_LOAD)
    local r = S.atom(s, "check " .. dir .. "/release.lua --max-instructions=5000", { timeout = 30 })
    assert.are.equal(2, r.code, r.stderr)
    assert.matches("release%.lua:%d+: the script ran out of its instruction budget %(limits%.instructions = 5000%)",
      r.stderr)
    r = S.atom(s, "check " .. dir .. "/release.lua --max-instructions 1e15 --max-seconds 0.2", { timeout = 30 })
    assert.are.equal(2, r.code, r.stderr)
    assert.matches("the script ran out of its wall%-time budget %(0%.2 s%)", r.stderr)
  end)

  it("take K, M and G suffixes for --max-heap", function()
    local dir = S.script(HUNGRY)
    local r = S.atom(s, "diff " .. dir .. "/release.lua --max-heap 2M", { timeout = 30 })
    assert.are.equal(2, r.code, r.stderr)
    assert.matches("reached the Lua heap ceiling %(limits%.heap = 2097152 bytes%)", r.stderr)
    r = S.atom(s, "check " .. dir .. "/release.lua --max-heap=512k", { timeout = 30 })
    assert.are.equal(2, r.code, r.stderr)
    assert.matches("limits%.heap = 524288 bytes", r.stderr)
  end)

  it("refuse values that are not budgets, with the usage text", function()
    local dir = S.script(LOOPING_CHECK)
    local r = S.atom(s, "check " .. dir .. "/release.lua --max-heap 12X")
    assert.are.equal(2, r.code)
    assert.matches("%-%-max%-heap wants a positive size", r.stderr)
    assert.matches("%-%-max%-instructions N", r.stderr)
    r = S.atom(s, "check " .. dir .. "/release.lua --max-instructions 0")
    assert.are.equal(2, r.code)
    assert.matches("%-%-max%-instructions must be a positive number", r.stderr)
    -- without a flag the script's own limits stand and the script is valid
    r = S.atom(s, "check " .. dir .. "/release.lua")
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("spin: valid, 1 object", r.stdout)
  end)
end)
