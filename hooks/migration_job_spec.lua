-- hooks/migration_job.lua, loaded through the release sandbox as scripts load it.
local sandbox = require "atom.release.sandbox"

local function load_hook()
  local env = sandbox.new{ dir = "hooks", hooks_dir = "hooks" }
  return env.require("atom.hooks.migration_job")
end

local function ctx(result)
  local c = { release = "shop", version = 4, logs = {}, events = {}, jobs = {} }
  c.log = function(m) c.logs[#c.logs + 1] = m end
  c.event = function(r, m) c.events[#c.events + 1] = r .. ": " .. m end
  c.run_job = function(job, opts)
    c.jobs[#c.jobs + 1] = { job = job, opts = opts }
    if result == true then return true end
    return nil, result
  end
  return c
end

describe("hooks/migration_job", function()
  it("builds a one-shot Job per version and runs it", function()
    local hook = load_hook(){ image = "shop/migrate:1.2", command = { "./migrate", "up" },
      env = { DB = "postgres://db" }, timeout = 120 }
    local c = ctx(true)
    hook(c)
    local job = c.jobs[1].job
    assert.equal("migrate-v4", job.metadata.name)
    assert.equal("shop", job.metadata.labels["atom.dev/release"])
    assert.equal(0, job.spec.backoffLimit)
    assert.equal("Never", job.spec.template.spec.restartPolicy)
    assert.same({ "./migrate", "up" }, job.spec.template.spec.containers[1].command)
    assert.same({ { name = "DB", value = "postgres://db" } }, job.spec.template.spec.containers[1].env)
    assert.equal(120, c.jobs[1].opts.timeout)
    assert.same({ "Migrated: Job migrate-v4 completed" }, c.events)
  end)

  it("raises the Job's failure so a before hook turns into Error", function()
    local hook = load_hook(){ image = "shop/migrate:1.2" }
    local ok, err = pcall(hook, ctx("Job shop/migrate-v4 failed: BackoffLimitExceeded"))
    assert.is_false(ok)
    assert.equal("Job shop/migrate-v4 failed: BackoffLimitExceeded", err)
  end)

  it("takes a whole Job table", function()
    local job = { apiVersion = "batch/v1", kind = "Job", metadata = { name = "seed" }, spec = {} }
    local c = ctx(true)
    load_hook(){ job = job }(c)
    assert.equal(job, c.jobs[1].job)
  end)

  it("needs an image or a job", function()
    assert.has_error(function() load_hook(){} end, "migration_job: give image (and command) or job")
  end)
end)
