-- Retry a flaky rollout before giving up. A release that hits its deadline or fails is
-- applied again up to `times` more times; after that the `then` policy decides (here:
-- roll back). A cancel is never retried.
--
--   atom run examples/retry-policy/release.lua
--   API_IMAGE=registry.example.com/api:does-not-exist atom run examples/retry-policy/release.lua
--       (the image never pulls: 2 retries, then Rollback -> Reverted)
local atom = require "atom"
local retry = require "atom.policy.retry"

local image = atom.env("API_IMAGE", "registry.example.com/api:1.0.0")

return {
  name = "api",
  namespace = "api",
  deadline = 60,
  objects = {
    {
      apiVersion = "apps/v1", kind = "Deployment",
      metadata = { name = "api", labels = { app = "api" } },
      spec = {
        replicas = 2,
        selector = { matchLabels = { app = "api" } },
        template = {
          metadata = { labels = { app = "api" } },
          spec = { containers = { { name = "api", image = image, ports = { { containerPort = 8080 } } } } },
        },
      },
    },
  },
  -- Equivalent by hand: function(f) if f.state ~= "Cancelled" and f.attempt <= 2 then
  -- return "retry" end return "rollback" end
  policy = retry{ times = 2, ["then"] = "rollback" },
}
