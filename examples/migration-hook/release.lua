-- A database migration before the new version takes traffic, and a record of every
-- successful release kept in the cluster.
--
--   atom run examples/migration-hook/release.lua
--
-- `before Updating` runs the ready-made migration hook (hooks/migration_job.lua): it
-- creates a Job "migrate-v<version>", waits for it to finish and removes it. If the Job
-- fails, the hook fails, the release goes to Error and rolls back; the error names the
-- hook, its line here and the pods' reasons. `after Running` writes a ConfigMap that
-- outlives the release's own objects (it is not part of them, so nothing prunes it).
local atom = require "atom"
local migrate = require "atom.hooks.migration_job"

local tag = atom.env("SHOP_TAG", "2.4.1")

return {
  name = "shop",
  namespace = "shop",
  deadline = 90,
  objects = { atom.yaml("manifests/shop.yaml", { tag = tag }) },
  hooks = {
    before = {
      Updating = migrate{
        image = "registry.example.com/shop-migrate:" .. tag,
        command = { "/migrate", "up" },
        env = { DATABASE_URL = "postgres://shop-db/shop" },
        timeout = 60,
      },
    },
    after = {
      Running = function(ctx)
        local record = {
          apiVersion = "v1", kind = "ConfigMap",
          metadata = { name = "shop-release-log", namespace = ctx.namespace },
          data = { version = tostring(ctx.version), tag = tag, at = os.date("!%Y-%m-%dT%H:%M:%SZ") },
        }
        local ok, err = ctx.kube:apply(record, { force = true, field_manager = "atom-hook" })
        if not ok then error("cannot record the release: " .. tostring(err), 0) end
        ctx.log("recorded shop v" .. ctx.version .. " in ConfigMap shop-release-log")
      end,
    },
  },
}
