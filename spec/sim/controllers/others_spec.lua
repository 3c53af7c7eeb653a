local fake = require("sim.controllers.fake_sim")
local util = require("atom.sim.controllers.util")
local helpers = require("sim.controllers.helpers")

local get, cond = helpers.get, helpers.cond

local function pod(name, image, owner_labels)
  return { apiVersion = "v1", kind = "Pod",
    metadata = { name = name, namespace = "default", labels = owner_labels or { app = name } },
    spec = { containers = { { name = "main", image = image or "nginx:1.27" } } } }
end

describe("pod controller", function()
  after_each(helpers.no_reconcile_errors)

  it("schedules, then reports Running and Ready with container status", function()
    local sim = fake.start(fake.new{ ready_after = 2 })
    sim.store:create("pods", pod("p"))
    sim.clock:advance(0.5)
    local p = get(sim, "pods", "p")
    assert.are.equal("Pending", p.status.phase)
    assert.are.equal("True/", cond(p, "PodScheduled"))
    assert.are.equal("False/ContainersNotReady", cond(p, "Ready"))
    assert.are.equal("ContainerCreating", p.status.containerStatuses[1].state.waiting.reason)
    assert.truthy(p.spec.nodeName)
    sim.clock:advance(2)
    p = get(sim, "pods", "p")
    assert.are.equal("Running", p.status.phase)
    assert.are.equal("True/", cond(p, "Ready"))
    assert.are.equal("True/", cond(p, "ContainersReady"))
    assert.are.equal("True/", cond(p, "Initialized"))
    local cs = p.status.containerStatuses[1]
    assert.is_true(cs.ready)
    assert.is_true(cs.started)
    assert.are.equal(0, cs.restartCount)
    assert.are.equal("main", cs.name)
    assert.truthy(cs.state.running.startedAt)
    assert.truthy(p.status.podIP:match("^10%.244%."))
    assert.truthy(p.status.hostIP:match("^172%.18%.0%."))
    assert.are.equal("BestEffort", p.status.qosClass)
  end)

  it("reports ErrImagePull then ImagePullBackOff for a missing image", function()
    local sim = fake.start(fake.new{ ready_after = 1 })
    sim.store:create("pods", pod("bad", "nginx:does-not-exist"))
    sim.clock:advance(1.5)
    local p = get(sim, "pods", "bad")
    assert.are.equal("ErrImagePull", p.status.containerStatuses[1].state.waiting.reason)
    sim.clock:advance(5)
    p = get(sim, "pods", "bad")
    assert.are.equal("Pending", p.status.phase)
    assert.are.equal("ImagePullBackOff", p.status.containerStatuses[1].state.waiting.reason)
    assert.are.equal("False/ContainersNotReady", cond(p, "Ready"))
    local reasons = {}
    for _, e in ipairs(sim.store:list("events", "default", function(e) return e.involvedObject.name == "bad" end)) do
      reasons[#reasons + 1] = e.type .. "/" .. e.reason .. ": " .. e.message
    end
    table.sort(reasons)
    assert.are.same({ "Normal/BackOff: Back-off pulling image \"nginx:does-not-exist\"",
      "Warning/Failed: Error: ErrImagePull", "Warning/Failed: Error: ImagePullBackOff",
      "Warning/Failed: Failed to pull image \"nginx:does-not-exist\": rpc error: code = NotFound desc = failed to pull and unpack image \"nginx:does-not-exist\": not found" },
      reasons)
  end)

  it("crash loops with a climbing restart count when the scenario says so", function()
    local sim = fake.start(fake.new{ ready_after = 1, rules = {
      { name = "crash", crash_loop = true } } })
    sim.store:create("pods", pod("crash"))
    sim.clock:advance(2)
    local p = get(sim, "pods", "crash")
    local cs = p.status.containerStatuses[1]
    assert.are.equal("Running", p.status.phase)
    assert.are.equal("CrashLoopBackOff", cs.state.waiting.reason)
    assert.are.equal(1, cs.lastState.terminated.exitCode)
    assert.are.equal("Error", cs.lastState.terminated.reason)
    assert.are.equal(1, cs.restartCount)
    assert.is_false(cs.ready)
    sim.clock:advance(100)
    p = get(sim, "pods", "crash")
    assert.is_true(p.status.containerStatuses[1].restartCount >= 3)
    assert.are.equal("False/ContainersNotReady", cond(p, "Ready"))
    -- One BackOff event, counted up, as kubectl describe shows it.
    local evs = sim.store:list("events", "default", function(e)
      return e.involvedObject.name == "crash" and e.reason == "BackOff" end)
    assert.are.equal(1, #evs)
    assert.are.equal("Warning", evs[1].type)
    assert.are.equal(p.status.containerStatuses[1].restartCount, evs[1].count)
  end)

  it("applies a workload's rule to its pods and honours never_ready and ready_after", function()
    local sim = fake.start(fake.new{ ready_after = 1, rules = {
      { kind = "ReplicaSet", name = "slow", ready_after = 10 },
      { name = "stuck", never_ready = true } } })
    sim.store:create("replicasets.apps", { apiVersion = "apps/v1", kind = "ReplicaSet",
      metadata = { name = "slow", namespace = "default" },
      spec = { replicas = 2, selector = { matchLabels = { app = "slow" } },
        template = { metadata = { labels = { app = "slow" } }, spec = { containers = { { name = "c", image = "x" } } } } } })
    sim.store:create("pods", pod("stuck"))
    sim.clock:advance(5)
    assert.is_nil(get(sim, "replicasets.apps", "slow").status.readyReplicas)
    local p = get(sim, "pods", "stuck")
    assert.are.equal("Running", p.status.phase)
    assert.is_false(p.status.containerStatuses[1].ready)
    sim.clock:advance(6)
    local rs = get(sim, "replicasets.apps", "slow")
    assert.are.same({ 2, 2, 2, 2, 1 }, { rs.status.replicas, rs.status.fullyLabeledReplicas,
      rs.status.readyReplicas, rs.status.availableReplicas, rs.status.observedGeneration })
  end)

  it("ReplicationController keeps its replica count like a ReplicaSet", function()
    local sim = fake.start(fake.new{ ready_after = 1 })
    sim.store:create("replicationcontrollers", { apiVersion = "v1", kind = "ReplicationController",
      metadata = { name = "rc", namespace = "default" },
      spec = { replicas = 2, selector = { app = "rc" },
        template = { metadata = { labels = { app = "rc" } }, spec = { containers = { { name = "c", image = "x" } } } } } })
    sim.clock:advance(2)
    local rc = get(sim, "replicationcontrollers", "rc")
    assert.are.equal(2, rc.status.readyReplicas)
    local pods = sim.store:list("pods", "default")
    assert.are.equal(2, #pods)
    sim.store:delete("pods", "default", pods[1].metadata.name, { propagation = "Background" })
    sim.clock:advance(2)
    assert.are.equal(2, #sim.store:list("pods", "default"))
    assert.are.equal(2, get(sim, "replicationcontrollers", "rc").status.availableReplicas)
  end)
end)

describe("cluster objects", function()
  after_each(helpers.no_reconcile_errors)

  it("creates Ready nodes at start", function()
    local sim = fake.start(fake.new{ nodes = 2 })
    local nodes = sim.store:list("nodes", nil)
    assert.are.equal(2, #nodes)
    assert.are.equal("sim-node-1", nodes[1].metadata.name)
    assert.are.equal("True/KubeletReady", cond(nodes[2], "Ready"))
  end)

  it("gives a LoadBalancer Service an address after a short delay, unless never_ready", function()
    local sim = fake.start(fake.new{ ready_after = 1, rules = {
      { name = "internal", never_ready = true } } })
    for _, n in ipairs({ "lb", "internal" }) do
      sim.store:create("services", { apiVersion = "v1", kind = "Service", metadata = { name = n, namespace = "default" },
        spec = { type = "LoadBalancer", selector = { app = n }, ports = { { port = 80 } } } })
    end
    sim.clock:advance(0)
    assert.is_nil(((get(sim, "services", "lb").status or {}).loadBalancer or {}).ingress)
    sim.clock:advance(2)
    local ing = get(sim, "services", "lb").status.loadBalancer.ingress
    assert.truthy(ing[1].ip:match("^172%.18%.255%.%d+$"))
    assert.is_nil(((get(sim, "services", "internal").status or {}).loadBalancer or {}).ingress)
  end)

  it("binds a claim to a new PV when the class exists, and leaves it Pending otherwise", function()
    local sim = fake.start(fake.new{ ready_after = 1 })
    sim.store:create("persistentvolumeclaims", { apiVersion = "v1", kind = "PersistentVolumeClaim",
      metadata = { name = "ok", namespace = "default" },
      spec = { accessModes = { "ReadWriteOnce" }, resources = { requests = { storage = "2Gi" } } } })
    sim.store:create("persistentvolumeclaims", { apiVersion = "v1", kind = "PersistentVolumeClaim",
      metadata = { name = "nope", namespace = "default" },
      spec = { storageClassName = "fast-ssd", accessModes = { "ReadWriteOnce" } } })
    sim.clock:advance(2)
    local pvc = get(sim, "persistentvolumeclaims", "ok")
    assert.are.equal("Bound", pvc.status.phase)
    assert.are.equal("2Gi", pvc.status.capacity.storage)
    assert.are.equal("yes", pvc.metadata.annotations["pv.kubernetes.io/bind-completed"])
    local pv = get(sim, "persistentvolumes", pvc.spec.volumeName, false)
    assert.are.equal("ok", pv.spec.claimRef.name)
    assert.are.equal("Bound", pv.status.phase)
    assert.are.equal("Pending", get(sim, "persistentvolumeclaims", "nope").status.phase)
    sim.store:create("storageclasses.storage.k8s.io", { apiVersion = "storage.k8s.io/v1", kind = "StorageClass",
      metadata = { name = "fast-ssd" }, provisioner = "x" })
    sim.clock:advance(2)
    assert.are.equal("Bound", get(sim, "persistentvolumeclaims", "nope").status.phase)
    sim.store:delete("persistentvolumeclaims", "default", "ok", { propagation = "Background" })
    sim.clock:advance(1)
    assert.is_nil(get(sim, "persistentvolumes", pvc.spec.volumeName, false))
  end)

  it("establishes a CRD with accepted names", function()
    local sim = fake.start(fake.new{ ready_after = 1 })
    sim.store:create("customresourcedefinitions.apiextensions.k8s.io", {
      apiVersion = "apiextensions.k8s.io/v1", kind = "CustomResourceDefinition",
      metadata = { name = "widgets.example.com" },
      spec = { group = "example.com", scope = "Namespaced",
        names = { plural = "widgets", kind = "Widget" },
        versions = { { name = "v1", served = true, storage = true, schema = { openAPIV3Schema = { type = "object" } } } } } })
    sim.clock:advance(0)
    local crd = get(sim, "customresourcedefinitions.apiextensions.k8s.io", "widgets.example.com", false)
    assert.is_nil(util.get_condition(crd, "Established"))
    sim.clock:advance(1)
    crd = get(sim, "customresourcedefinitions.apiextensions.k8s.io", "widgets.example.com", false)
    assert.are.equal("True/InitialNamesAccepted", cond(crd, "Established"))
    assert.are.equal("True/NoConflicts", cond(crd, "NamesAccepted"))
    assert.are.same({ kind = "Widget", listKind = "WidgetList", plural = "widgets", singular = "widget" },
      crd.status.acceptedNames)
    assert.are.same({ "v1" }, crd.status.storedVersions)
  end)

  it("establishes a CRD at once with ready_after = 0", function()
    local sim = fake.start(fake.new{ ready_after = 0 })
    sim.store:create("customresourcedefinitions.apiextensions.k8s.io", {
      apiVersion = "apiextensions.k8s.io/v1", kind = "CustomResourceDefinition",
      metadata = { name = "gadgets.example.com" },
      spec = { group = "example.com", scope = "Namespaced", names = { plural = "gadgets", kind = "Gadget" },
        versions = { { name = "v1", served = true, storage = true } } } })
    sim.clock:advance(0)
    local crd = get(sim, "customresourcedefinitions.apiextensions.k8s.io", "gadgets.example.com", false)
    assert.are.equal("True/InitialNamesAccepted", cond(crd, "Established"))
  end)

  it("takes a namespace through Terminating to gone", function()
    local sim = fake.start(fake.new{ ready_after = 1 })
    sim.store:create("namespaces", { apiVersion = "v1", kind = "Namespace", metadata = { name = "team" } })
    sim.clock:advance(0)
    assert.are.equal("Active", get(sim, "namespaces", "team", false).status.phase)
    sim.store:create("configmaps", { apiVersion = "v1", kind = "ConfigMap", metadata = { name = "c", namespace = "team" } })
    sim.store:delete("namespaces", nil, "team", { propagation = "Background" })
    local ns = get(sim, "namespaces", "team", false)
    if ns then assert.are.equal("Terminating", ns.status.phase) end
    sim.clock:advance(2)
    assert.is_nil(get(sim, "namespaces", "team", false))
    assert.is_nil(get(sim, "configmaps", "c", "team"))
  end)

  it("writes HPA and PDB status from their targets", function()
    local sim = fake.start(fake.new{ ready_after = 1 })
    sim.store:create("deployments.apps", { apiVersion = "apps/v1", kind = "Deployment",
      metadata = { name = "api", namespace = "default" },
      spec = { replicas = 1, selector = { matchLabels = { app = "api" } },
        template = { metadata = { labels = { app = "api" } }, spec = { containers = { { name = "c", image = "x" } } } } } })
    sim.store:create("horizontalpodautoscalers.autoscaling", { apiVersion = "autoscaling/v2",
      kind = "HorizontalPodAutoscaler", metadata = { name = "api", namespace = "default" },
      spec = { scaleTargetRef = { apiVersion = "apps/v1", kind = "Deployment", name = "api" },
        minReplicas = 2, maxReplicas = 5 } })
    sim.store:create("poddisruptionbudgets.policy", { apiVersion = "policy/v1", kind = "PodDisruptionBudget",
      metadata = { name = "api", namespace = "default" },
      spec = { minAvailable = 1, selector = { matchLabels = { app = "api" } } } })
    sim.clock:advance(5)
    local hpa = get(sim, "horizontalpodautoscalers.autoscaling", "api")
    assert.are.equal(2, hpa.status.desiredReplicas)
    assert.are.equal(2, hpa.status.currentReplicas)
    assert.are.equal("True/ReadyForNewScale", cond(hpa, "AbleToScale"))
    assert.are.equal("True/ValidMetricFound", cond(hpa, "ScalingActive"))
    assert.are.equal(2, get(sim, "deployments.apps", "api").status.availableReplicas)
    local pdb = get(sim, "poddisruptionbudgets.policy", "api")
    assert.are.same({ 2, 2, 1, 1, 1 }, { pdb.status.expectedPods, pdb.status.currentHealthy,
      pdb.status.desiredHealthy, pdb.status.disruptionsAllowed, pdb.status.observedGeneration })
    assert.are.equal("True/SufficientPods", cond(pdb, "DisruptionAllowed"))
  end)
end)

describe("benchmark mode", function()
  after_each(helpers.no_reconcile_errors)

  it("settles many Deployments with ready_after = 0 without advancing time", function()
    local sim = fake.start(fake.new{ ready_after = 0 })
    for i = 1, 200 do
      sim.store:create("deployments.apps", { apiVersion = "apps/v1", kind = "Deployment",
        metadata = { name = "d" .. i, namespace = "default" },
        spec = { replicas = 2, selector = { matchLabels = { app = "d" .. i } },
          template = { metadata = { labels = { app = "d" .. i } }, spec = { containers = { { name = "c", image = "x" } } } } } })
    end
    sim.clock:advance(0)
    local done = 0
    for _, d in ipairs(sim.store:list("deployments.apps", "default")) do
      if d.status.availableReplicas == 2 and cond(d, "Progressing") == "True/NewReplicaSetAvailable" then
        done = done + 1
      end
    end
    assert.are.equal(200, done)
    local marked = 0
    for _, m in ipairs(sim.ready_times) do if m.rk == "deployments.apps" then marked = marked + 1 end end
    assert.are.equal(200, marked)
  end)
end)

describe("pods and missing references", function()
  after_each(helpers.no_reconcile_errors)

  it("waits in ContainerCreating for a missing Secret volume and starts once it exists", function()
    local sim = fake.start(fake.new{ ready_after = 1 })
    local p = pod("vol")
    p.spec.volumes = { { name = "cfg", secret = { secretName = "creds" } } }
    sim.store:create("pods", p)
    sim.clock:advance(5)
    local got = get(sim, "pods", "vol")
    assert.are.equal("Pending", got.status.phase)
    assert.are.equal("ContainerCreating", got.status.containerStatuses[1].state.waiting.reason)
    sim.store:create("secrets", { apiVersion = "v1", kind = "Secret", metadata = { name = "creds", namespace = "default" } })
    sim.clock:advance(0)
    got = get(sim, "pods", "vol")
    assert.are.equal("Running", got.status.phase)
    assert.is_true(got.status.containerStatuses[1].ready)
  end)

  it("reports CreateContainerConfigError for a missing ConfigMap in env", function()
    local sim = fake.start(fake.new{ ready_after = 1 })
    local p = pod("env")
    p.spec.containers[1].envFrom = { { configMapRef = { name = "settings" } } }
    p.spec.containers[1].env = { { name = "X", valueFrom = { secretKeyRef = { name = "maybe", key = "k", optional = true } } } }
    sim.store:create("pods", p)
    sim.clock:advance(3)
    local w = get(sim, "pods", "env").status.containerStatuses[1].state.waiting
    assert.are.equal("CreateContainerConfigError", w.reason)
    assert.are.equal('configmap "settings" not found', w.message)
    sim.store:create("configmaps", { apiVersion = "v1", kind = "ConfigMap", metadata = { name = "settings", namespace = "default" } })
    sim.clock:advance(0)
    assert.are.equal("Running", get(sim, "pods", "env").status.phase)
  end)
end)

describe("scheduling", function()
  after_each(helpers.no_reconcile_errors)

  it("reports Unschedulable for a nodeSelector no node matches, and places matching pods", function()
    local sim = fake.start(fake.new{ ready_after = 1 })
    local p = pod("nowhere")
    p.spec.nodeSelector = { disk = "ssd" }
    sim.store:create("pods", p)
    local q = pod("here")
    q.spec.nodeSelector = { ["kubernetes.io/hostname"] = "sim-node-2" }
    sim.store:create("pods", q)
    sim.clock:advance(2)
    local got = get(sim, "pods", "nowhere")
    assert.are.equal("Pending", got.status.phase)
    assert.are.equal("False/Unschedulable", cond(got, "PodScheduled"))
    local evs = sim.store:list("events", "default", function(e) return e.involvedObject.name == "nowhere" end)
    assert.are.equal("FailedScheduling", evs[1].reason)
    assert.are.equal("default-scheduler", evs[1].source.component)
    assert.is_nil(got.spec.nodeName)
    got = get(sim, "pods", "here")
    assert.are.equal("sim-node-2", got.spec.nodeName)
    assert.are.equal("Running", got.status.phase)
  end)
end)

describe("endpoints controller", function()
  after_each(helpers.no_reconcile_errors)

  it("lists ready and not-ready pods of a Service in Endpoints and an EndpointSlice", function()
    local sim = fake.start(fake.new{ ready_after = 1, rules = { { name = "api-stuck", never_ready = true } } })
    sim.store:create("services", { apiVersion = "v1", kind = "Service", metadata = { name = "api", namespace = "default" },
      spec = { selector = { app = "api" }, ports = { { name = "http", port = 80, targetPort = "web" } } } })
    for _, n in ipairs({ "api-a", "api-stuck", "other" }) do
      local p = pod(n, "nginx", { app = n == "other" and "other" or "api" })
      p.spec.containers[1].ports = { { name = "web", containerPort = 8080 } }
      sim.store:create("pods", p)
    end
    sim.clock:advance(2)
    local ep = get(sim, "endpoints", "api")
    local s = ep.subsets[1]
    assert.are.equal(1, #s.addresses)
    assert.are.equal("api-a", s.addresses[1].targetRef.name)
    assert.are.equal(1, #s.notReadyAddresses)
    assert.are.equal("api-stuck", s.notReadyAddresses[1].targetRef.name)
    assert.are.same({ { name = "http", port = 8080, protocol = "TCP" } }, s.ports)
    local slices = sim.store:list("endpointslices.discovery.k8s.io", "default")
    assert.are.equal(1, #slices)
    assert.are.equal("api", slices[1].metadata.labels["kubernetes.io/service-name"])
    assert.are.equal(2, #slices[1].endpoints)
    sim.store:delete("pods", "default", "api-a", { propagation = "Background" })
    sim.clock:advance(0)
    ep = get(sim, "endpoints", "api")
    assert.is_nil(ep.subsets[1].addresses)
    sim.store:delete("services", "default", "api", { propagation = "Background" })
    sim.clock:advance(0)
    assert.is_nil(get(sim, "endpoints", "api"))
    assert.are.equal(0, #sim.store:list("endpointslices.discovery.k8s.io", "default"))
  end)
end)

describe("apiservice controller", function()
  after_each(helpers.no_reconcile_errors)

  it("is Available for a local APIService and waits for endpoints of an aggregated one", function()
    local sim = fake.start(fake.new{ ready_after = 1 })
    local rk = "apiservices.apiregistration.k8s.io"
    sim.store:create(rk, { apiVersion = "apiregistration.k8s.io/v1", kind = "APIService",
      metadata = { name = "v1.local.example.com" },
      spec = { group = "local.example.com", version = "v1", groupPriorityMinimum = 100, versionPriority = 100 } })
    sim.store:create(rk, { apiVersion = "apiregistration.k8s.io/v1", kind = "APIService",
      metadata = { name = "v1beta1.metrics.k8s.io" },
      spec = { group = "metrics.k8s.io", version = "v1beta1", groupPriorityMinimum = 100, versionPriority = 100,
        service = { name = "metrics-server", namespace = "kube-system" } } })
    sim.clock:advance(0)
    assert.are.equal("True/Local", cond(get(sim, rk, "v1.local.example.com", false), "Available"))
    assert.are.equal("False/ServiceNotFound", cond(get(sim, rk, "v1beta1.metrics.k8s.io", false), "Available"))
    sim.store:create("services", { apiVersion = "v1", kind = "Service",
      metadata = { name = "metrics-server", namespace = "kube-system" },
      spec = { selector = { app = "metrics" }, ports = { { port = 443, targetPort = 4443 } } } })
    sim.clock:advance(0)
    assert.are.equal("False/MissingEndpoints", cond(get(sim, rk, "v1beta1.metrics.k8s.io", false), "Available"))
    local p = pod("metrics", "metrics-server:0.7", { app = "metrics" })
    p.metadata.namespace = "kube-system"
    sim.store:create("pods", p)
    sim.clock:advance(2)
    assert.are.equal("True/Passed", cond(get(sim, rk, "v1beta1.metrics.k8s.io", false), "Available"))
  end)
end)
