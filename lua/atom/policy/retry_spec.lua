local retry = require "atom.policy.retry"

local function failure(state, attempt)
  return { state = state, reason = "readiness deadline passed", attempt = attempt,
    not_ready = { { key = "Deployment.apps/web", state = "progressing", message = "2 of 3 updated replicas are available" } } }
end

describe("retry policy", function()
  it("retries N times, then rolls back by default", function()
    local p = retry { times = 2 }
    assert.equal("retry", p(failure("Deadline", 1)))
    assert.equal("retry", p(failure("Error", 2)))
    assert.equal("rollback", p(failure("Deadline", 3)))
  end)

  it("falls back to a named policy", function()
    local p = retry { times = 1, ["then"] = "fail" }
    assert.equal("retry", p(failure("Error", 1)))
    assert.equal("fail", p(failure("Error", 2)))
  end)

  it("falls back to a function, which sees the failure", function()
    local seen
    local p = retry { times = 0, ["then"] = function(f) seen = f; return "fail" end }
    local f = failure("Deadline", 1)
    assert.equal("fail", p(f))
    assert.equal(f, seen)
  end)

  it("never retries after Cancelled", function()
    assert.equal("rollback", (retry { times = 5 })(failure("Cancelled", 1)))
    assert.equal("fail", (retry { times = 5, ["then"] = "fail" })(failure("Cancelled", 1)))
  end)

  it("rejects bad options, naming them", function()
    assert.has_error(function() retry(3) end, "retry{ times = N, then = policy }: expected a table, got number")
    assert.has_error(function() retry { times = 1.5 } end, "retry: times must be a whole number, got 1.5")
    assert.has_error(function() retry { times = -1 } end, "retry: times must not be negative, got -1")
    assert.has_error(function() retry { times = 1, ["then"] = "retreat" } end)
  end)
end)
