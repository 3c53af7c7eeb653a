local rollback = require "atom.policy.rollback"

describe("rollback policy", function()
  it("rolls back after any failure", function()
    for _, state in ipairs({ "Cancelled", "Deadline", "Error" }) do
      assert.equal("rollback", rollback({ state = state, reason = "x", attempt = 1, not_ready = {} }))
    end
  end)
end)
