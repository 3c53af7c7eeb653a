-- atom's own readiness checks, run on what the simulated controllers write:
-- healthy objects must read "ready", broken ones "failed", and nothing may be
-- judged ready before the sim has made it so.
local fake = require("sim.controllers.fake_sim")
local readiness = require("atom.readiness")
local helpers = require("sim.controllers.helpers")

local function tmpl(app, image)
  return { metadata = { labels = { app = app } },
    spec = { containers = { { name = "c", image = image or "nginx:1.27" } } } }
end

local OBJECTS = {
  { "deployments.apps", { apiVersion = "apps/v1", kind = "Deployment", metadata = { name = "web" },
    spec = { replicas = 2, selector = { matchLabels = { app = "web" } }, template = tmpl("web") } } },
  { "statefulsets.apps", { apiVersion = "apps/v1", kind = "StatefulSet", metadata = { name = "db" },
    spec = { replicas = 2, serviceName = "db", selector = { matchLabels = { app = "db" } }, template = tmpl("db"),
      volumeClaimTemplates = { { metadata = { name = "data" }, spec = { accessModes = { "ReadWriteOnce" },
        resources = { requests = { storage = "1Gi" } } } } } } } },
  { "daemonsets.apps", { apiVersion = "apps/v1", kind = "DaemonSet", metadata = { name = "agent" },
    spec = { selector = { matchLabels = { app = "agent" } }, template = tmpl("agent") } } },
  { "jobs.batch", { apiVersion = "batch/v1", kind = "Job", metadata = { name = "migrate" },
    spec = { template = { spec = { restartPolicy = "Never", containers = { { name = "m", image = "busybox" } } } } } } },
  { "services", { apiVersion = "v1", kind = "Service", metadata = { name = "lb" },
    spec = { type = "LoadBalancer", selector = { app = "web" }, ports = { { port = 80 } } } } },
  { "persistentvolumeclaims", { apiVersion = "v1", kind = "PersistentVolumeClaim", metadata = { name = "scratch" },
    spec = { accessModes = { "ReadWriteOnce" }, resources = { requests = { storage = "1Gi" } } } } },
  { "customresourcedefinitions.apiextensions.k8s.io", { apiVersion = "apiextensions.k8s.io/v1",
    kind = "CustomResourceDefinition", metadata = { name = "widgets.example.com" },
    spec = { group = "example.com", scope = "Namespaced", names = { plural = "widgets", kind = "Widget" },
      versions = { { name = "v1", served = true, storage = true,
        schema = { openAPIV3Schema = { type = "object" } } } } } } },
  { "poddisruptionbudgets.policy", { apiVersion = "policy/v1", kind = "PodDisruptionBudget", metadata = { name = "web" },
    spec = { minAvailable = 1, selector = { matchLabels = { app = "web" } } } } },
  { "horizontalpodautoscalers.autoscaling", { apiVersion = "autoscaling/v2", kind = "HorizontalPodAutoscaler",
    metadata = { name = "web" }, spec = { scaleTargetRef = { apiVersion = "apps/v1", kind = "Deployment", name = "web" },
      minReplicas = 2, maxReplicas = 4 } } },
}

local function create_all(sim)
  for _, o in ipairs(OBJECTS) do
    local obj = sim.util.copy(o[2])
    if o[1] ~= "customresourcedefinitions.apiextensions.k8s.io" then obj.metadata.namespace = "default" end
    assert(sim.store:create(o[1], obj))
  end
end

local function state_of(sim, o)
  local ns = o[1] ~= "customresourcedefinitions.apiextensions.k8s.io" and "default" or nil
  local obj = sim.store:get(o[1], ns, o[2].metadata.name)
  local ctx = {
    related = function(kind, selector)
      local rk = kind == "Pod" and "pods" or "replicasets.apps"
      return sim.store:list(rk, "default", function(x)
        for k, v in pairs((selector or {}).matchLabels or selector or {}) do
          if (x.metadata.labels or {})[k] ~= v then return false end
        end
        return true
      end)
    end,
  }
  return (readiness.check(obj, nil, ctx))
end

describe("atom readiness on simulated objects", function()
  after_each(helpers.no_reconcile_errors)

  it("judges every healthy kind ready once the sim has settled, and none of the workloads before", function()
    local sim = fake.start(fake.new{ ready_after = 1 })
    create_all(sim)
    sim.clock:advance(0.2)
    for _, o in ipairs(OBJECTS) do
      if o[1]:find("%.apps$") or o[1] == "jobs.batch" then
        assert.are.equal("progressing", state_of(sim, o), o[2].kind)
      end
    end
    sim.clock:advance(10)
    for _, o in ipairs(OBJECTS) do
      assert.are.equal("ready", state_of(sim, o), o[2].kind)
    end
  end)

  it("judges a bad image failed at the deadline and a failed Job failed", function()
    local sim = fake.start(fake.new{ ready_after = 1, rules = { { kind = "Job", name = "doomed", job_fails = true } } })
    local bad = { "deployments.apps", { apiVersion = "apps/v1", kind = "Deployment", metadata = { name = "bad" },
      spec = { replicas = 1, progressDeadlineSeconds = 20, selector = { matchLabels = { app = "bad" } },
        template = tmpl("bad", "nginx:does-not-exist") } } }
    local doomed = { "jobs.batch", { apiVersion = "batch/v1", kind = "Job", metadata = { name = "doomed" },
      spec = { backoffLimit = 1, template = { spec = { restartPolicy = "Never",
        containers = { { name = "m", image = "busybox" } } } } } } }
    for _, o in ipairs({ bad, doomed }) do
      local obj = sim.util.copy(o[2])
      obj.metadata.namespace = "default"
      assert(sim.store:create(o[1], obj))
    end
    sim.clock:advance(30)
    assert.are.equal("failed", state_of(sim, bad))
    assert.are.equal("failed", state_of(sim, doomed))
  end)
end)
