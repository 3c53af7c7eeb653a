local fail = require "atom.policy.fail"

describe("fail policy", function()
  it("stops at Failure after any failure", function()
    for _, state in ipairs({ "Cancelled", "Deadline", "Error" }) do
      assert.equal("fail", fail({ state = state, reason = "x", attempt = 1, not_ready = {} }))
    end
  end)
end)
