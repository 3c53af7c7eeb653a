local check = require "atom.readiness.cronjob"

local function cronjob(status, suspend)
  return { apiVersion = "batch/v1", kind = "CronJob",
    metadata = { name = "hello", namespace = "default", generation = 1 },
    spec = { schedule = "* * * * *", suspend = suspend or false, concurrencyPolicy = "Allow" },
    status = status }
end

describe("cronjob readiness", function()
  it("is ready before its first run (an empty status)", function()
    assert.same({ "ready", "not scheduled yet" }, { check(cronjob({})) })
  end)

  it("is ready after a successful run", function()
    assert.same({ "ready", "last scheduled at 2026-11-26T10:01:00Z, 0 active" },
      { check(cronjob({ lastScheduleTime = "2026-11-26T10:01:00Z", lastSuccessfulTime = "2026-11-26T10:01:09Z" })) })
  end)

  it("stays ready but says so when the last run has not succeeded", function()
    assert.same({ "ready", "last run at 2026-11-26T10:02:00Z has not succeeded" },
      { check(cronjob({ lastScheduleTime = "2026-11-26T10:02:00Z", lastSuccessfulTime = "2026-11-26T10:01:09Z",
        active = {} })) })
  end)

  it("is ready while a run is active", function()
    local state, msg = check(cronjob({ lastScheduleTime = "2026-11-26T10:02:00Z",
      active = { { kind = "Job", name = "hello-29400122", namespace = "default" } } }))
    assert.equal("ready", state)
    assert.matches("1 active", msg)
  end)

  it("is ready when suspended", function()
    assert.same({ "ready", "cronjob is suspended" }, { check(cronjob(nil, true)) })
  end)
end)
