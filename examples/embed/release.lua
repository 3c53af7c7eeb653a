-- The release the embed examples run: the image comes from the embedding
-- program through atom.app.image_tag (a host function), not from the script.
local atom = require "atom"

return {
  name = "embed-demo",
  namespace = "embed-demo",
  deadline = 30,
  objects = {
    { apiVersion = "v1", kind = "ConfigMap", metadata = { name = "web-settings" },
      data = { deployer = atom.app.deployer or "unknown" } },
    { apiVersion = "apps/v1", kind = "Deployment",
      metadata = { name = "web", labels = { app = "web" } },
      spec = {
        replicas = 2,
        selector = { matchLabels = { app = "web" } },
        template = {
          metadata = { labels = { app = "web" } },
          spec = { containers = { { name = "web", image = atom.app.image_tag("web"),
                                    ports = { { containerPort = 8080 } } } } },
        },
      } },
    { apiVersion = "v1", kind = "Service", metadata = { name = "web" },
      spec = { selector = { app = "web" }, ports = { { port = 80, targetPort = 8080 } } } },
  },
}
