-- Ready-made hook: run a database migration (or any one-off task) as a Job and wait for it.
--
--   local migrate = require "atom.hooks.migration_job"
--   hooks = { before = { Updating = migrate{ image = "shop/migrate:" .. tag,
--                                            command = { "./migrate", "up" } } } }
--
-- Options: image and command (or job = a whole batch/v1 Job table), name (default
-- "migrate"; the Job is "<name>-v<version>" so each version runs its own), env (a table
-- name -> value), timeout (seconds, default 600), backoff_limit (default 0: a failing
-- migration is not run again by Kubernetes), keep (leave the finished Job in place).
-- The hook raises the Job's failure (with the pods' reasons) so a `before` hook turns the
-- transition into Error and the release rolls back.
return function(opts)
  opts = opts or {}
  if opts.job == nil and type(opts.image) ~= "string" then
    error("migration_job: give image (and command) or job", 2)
  end
  local base = opts.name or "migrate"
  return function(ctx)
    local job
    if opts.job then
      job = opts.job
    else
      local env = {}
      for k, v in pairs(opts.env or {}) do env[#env + 1] = { name = k, value = tostring(v) } end
      table.sort(env, function(a, b) return a.name < b.name end)
      job = {
        apiVersion = "batch/v1", kind = "Job",
        metadata = { name = string.format("%s-v%s", base, tostring(ctx.version)),
          labels = { ["atom.dev/release"] = ctx.release, ["atom.dev/hook"] = "migration" } },
        spec = {
          backoffLimit = opts.backoff_limit or 0,
          template = { spec = {
            restartPolicy = "Never",
            containers = { { name = base, image = opts.image, command = opts.command,
              env = #env > 0 and env or nil } },
          } },
        },
      }
    end
    ctx.log(string.format("running %s %s", job.kind, job.metadata.name))
    local ok, err = ctx.run_job(job, { timeout = opts.timeout or 600, keep = opts.keep })
    if not ok then error(err, 0) end
    ctx.event("Migrated", "Job " .. job.metadata.name .. " completed")
  end
end
