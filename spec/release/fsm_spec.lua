-- atom.fsm from Lua: the one transition table (runtime/fsm.c) as the engine and CLI see it,
-- and the C driver run on a scripted engine.
local fsm = require "atom.fsm"

describe("atom.fsm", function()
  it("lists the nine states by their exact names", function()
    assert.are.same({ "Pending", "Updating", "Running", "Cancelled", "Deadline", "Error", "Rollback",
                      "Reverted", "Failure" }, fsm.states)
  end)

  it("answers the design's table", function()
    assert.is_true(fsm.allowed("", "Pending"))
    assert.is_true(fsm.allowed("Updating", "Cancelled"))
    assert.is_true(fsm.allowed("Deadline", "Updating"))
    assert.is_true(fsm.allowed("Rollback", "Failure"))
    assert.is_false(fsm.allowed("Rollback", "Error"))
    assert.is_false(fsm.allowed("Cancelled", "Updating"))
    assert.is_false(fsm.allowed("Pending", "Running"))
    assert.is_true(fsm.terminal("Reverted"))
    assert.is_false(fsm.terminal("Rollback"))
    assert.has_error(function() fsm.allowed("running", "Pending") end)
  end)

  it("drives an engine and never obeys an answer outside the table", function()
    local plan = { [""] = "Pending", Pending = "Updating", Updating = "Reverted", Error = "Rollback",
                   Rollback = "Reverted" }
    local log = {}
    local e = { cur = "" }
    function e:state() return self.cur end
    function e:step(s) return plan[s], "why" end
    function e:hook() return true end
    function e:transition(from, to, why) log[#log + 1] = to .. ":" .. why; self.cur = to; return "ok" end
    function e:announce() end
    assert.are.equal("Reverted", fsm.drive(e))
    assert.are.equal("Error", log[3]:match("^(%a+):"))
    assert.matches("Updating => Reverted is not a transition", log[3])
  end)

  it("reports a record it cannot write instead of going on", function()
    local e = { cur = "" }
    function e:state() return self.cur end
    function e:step() return "Pending", "go" end
    function e:hook() return true end
    function e:transition() return nil, "cluster unreachable" end
    function e:announce() end
    local final, msg = fsm.drive(e)
    assert.is_nil(final)
    assert.matches("cluster unreachable", msg)
  end)
end)
