local policy = require "atom.policy"

local function failure(state, attempt)
  return { state = state, reason = "apply failed", attempt = attempt or 1, not_ready = {} }
end

describe("policy.resolve", function()
  it("defaults to rollback", function()
    assert.equal(require "atom.policy.rollback", policy.resolve(nil))
  end)

  it("accepts the ready-made names", function()
    assert.equal(require "atom.policy.fail", policy.resolve("fail"))
    local once = policy.resolve("retry")
    assert.equal("retry", once(failure("Error", 1)))
    assert.equal("rollback", once(failure("Error", 2)))
  end)

  it("returns a function as it is", function()
    local fn = function() return "fail" end
    assert.equal(fn, policy.resolve(fn))
  end)

  it("rejects unknown names and other types", function()
    assert.has_error(function() policy.resolve("rollforward") end,
      'unknown policy "rollforward" (want "rollback", "fail", "retry" or a function)')
    assert.has_error(function() policy.resolve(42) end, "a policy must be a name or a function, got number")
  end)
end)

describe("policy.decide", function()
  it("returns a valid answer", function()
    assert.equal("fail", policy.decide(function() return "fail" end, failure("Deadline")))
    assert.equal("retry", policy.decide(function() return "retry" end, failure("Error")))
    assert.equal("rollback", policy.decide(nil, failure("Error")))
  end)

  it("turns retry after Cancelled into rollback", function()
    assert.equal("rollback", policy.decide(function() return "retry" end, failure("Cancelled")))
  end)

  it("raises an error naming a bad answer", function()
    assert.has_error(function() policy.decide(function() return "Rollback" end, failure("Error")) end,
      'policy returned "Rollback" (want "rollback", "fail" or "retry")')
    assert.has_error(function() policy.decide(function() end, failure("Error")) end,
      'policy returned nil (want "rollback", "fail" or "retry")')
  end)

  it("passes the failure to the policy", function()
    local f = failure("Deadline", 3)
    f.not_ready = { { key = "Job.batch/migrate", state = "failed", message = "Failed=True: BackoffLimitExceeded" } }
    local got = policy.decide(function(x)
      return (x.attempt == 3 and x.not_ready[1].state == "failed") and "fail" or "rollback"
    end, f)
    assert.equal("fail", got)
  end)

  it("rejects a failure without a known state", function()
    assert.has_error(function() policy.decide(nil, { state = "Running" }) end,
      'policy.decide: failure.state must be Cancelled, Deadline or Error, got "Running"')
  end)
end)
