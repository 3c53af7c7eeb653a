local check = require "atom.readiness.job"

local function cond(type_, reason, message)
  return { type = type_, status = "True", reason = reason, message = message,
    lastProbeTime = "2026-11-26T10:01:00Z", lastTransitionTime = "2026-11-26T10:01:00Z" }
end

-- The k8s-website "pi" Job (backoffLimit 4) with the defaults a server fills in.
local function job(status)
  return { apiVersion = "batch/v1", kind = "Job",
    metadata = { name = "pi", namespace = "default", generation = 1 },
    spec = { backoffLimit = 4, completions = 1, parallelism = 1, completionMode = "NonIndexed", suspend = false },
    status = status }
end

describe("job readiness", function()
  it("is ready once Complete", function()
    local state, msg = check(job({ startTime = "2026-11-26T10:00:00Z", completionTime = "2026-11-26T10:01:00Z",
      succeeded = 1, ready = 0, conditions = { cond("SuccessCriteriaMet", "CompletionsReached"),
        cond("Complete", "CompletionsReached") } }))
    assert.equal("ready", state)
    assert.equal("job completed (1 succeeded)", msg)
  end)

  it("waits while running, even once started (unlike kstatus)", function()
    assert.same({ "progressing", "1 active, 0 succeeded, 0 failed of 1 completions" },
      { check(job({ startTime = "2026-11-26T10:00:00Z", active = 1, ready = 1 })) })
  end)

  it("waits when success criteria are met but Complete is not set yet", function()
    assert.equal("progressing", (check(job({ succeeded = 1, conditions = {
      cond("SuccessCriteriaMet", "CompletionsReached") } }))))
  end)

  it("fails on Failed=True", function()
    local state, msg = check(job({ failed = 5, conditions = {
      cond("FailureTarget", "BackoffLimitExceeded", "Job has reached the specified backoff limit"),
      cond("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit") } }))
    assert.equal("failed", state)
    assert.matches("BackoffLimitExceeded: Job has reached the specified backoff limit", msg, 1, true)
  end)

  it("fails already on FailureTarget=True (Kubernetes 1.31+)", function()
    local state, msg = check(job({ failed = 1, active = 0, conditions = {
      cond("FailureTarget", "DeadlineExceeded", "Job was active longer than specified deadline") } }))
    assert.equal("failed", state)
    assert.matches("^FailureTarget=True: DeadlineExceeded", msg)
  end)

  it("counts a suspended job as ready", function()
    local j = job({ conditions = { cond("Suspended", "JobSuspended", "Job suspended") } })
    j.spec.suspend = true
    assert.same({ "ready", "job is suspended" }, { check(j) })
  end)
end)
