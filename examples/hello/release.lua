-- The smallest useful release: a web server, its Service and its settings.
--
--   atom run examples/hello/release.lua          (against `atom sim` or any cluster)
--   HELLO_TAG=1.28 atom run examples/hello/release.lua   (a new version: rolls out, or back)
--
-- YAML comes from manifests/ with ${...} placeholders filled from `values`; the ConfigMap
-- is built as a Lua table. Both ways make plain objects that atom applies as one version.
local atom = require "atom"

local values = {
  tag = atom.env("HELLO_TAG", "1.27"),   -- CI usually sets this
  replicas = 2,
}

return {
  name = "hello",
  namespace = "hello",
  deadline = 60,
  objects = {
    atom.yaml("manifests/*.yaml", values),
    {
      apiVersion = "v1", kind = "ConfigMap",
      metadata = { name = "hello-settings" },
      data = { greeting = "hello from atom", tag = values.tag },
    },
  },
  hooks = {
    after = {
      Running = function(ctx) ctx.log("hello v" .. ctx.version .. " is live (nginx " .. values.tag .. ")") end,
      Reverted = function(ctx) ctx.log("hello v" .. ctx.version .. " did not come up; the previous version is back") end,
    },
  },
}
