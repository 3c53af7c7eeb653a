-- Every built-in readiness check against live objects from the simulated cluster: each
-- object is created through sim:handle as a client would (POST, PUT), the real store and
-- controllers move it on a manual clock, and the object is read back with GET and decoded
-- by lua-cjson, exactly what atom's waiter hands a check. Hand-written tables would only
-- test what the author believes the controllers write; this tests what they do write.
--
-- One `it` per kind x outcome, so a failure names both. Where the sim has no controller
-- for a state (an Ingress address, a lost claim, a PDB sync failure, a custom resource's
-- conditions), the status is written with store:update_status, as the real controller
-- would; each such case says so.
local H = require "sim.sim_helper"
local cjson = require "cjson"
local readiness = require "atom.readiness"

-- kind -> { api prefix, plural, namespaced }
local KINDS = {
  Pod = { "/api/v1", "pods", true },
  Service = { "/api/v1", "services", true },
  Endpoints = { "/api/v1", "endpoints", true },
  PersistentVolumeClaim = { "/api/v1", "persistentvolumeclaims", true },
  ReplicationController = { "/api/v1", "replicationcontrollers", true },
  Namespace = { "/api/v1", "namespaces", false },
  Deployment = { "/apis/apps/v1", "deployments", true },
  ReplicaSet = { "/apis/apps/v1", "replicasets", true },
  StatefulSet = { "/apis/apps/v1", "statefulsets", true },
  DaemonSet = { "/apis/apps/v1", "daemonsets", true },
  Job = { "/apis/batch/v1", "jobs", true },
  CronJob = { "/apis/batch/v1", "cronjobs", true },
  Ingress = { "/apis/networking.k8s.io/v1", "ingresses", true },
  CustomResourceDefinition = { "/apis/apiextensions.k8s.io/v1", "customresourcedefinitions", false },
  HorizontalPodAutoscaler = { "/apis/autoscaling/v2", "horizontalpodautoscalers", true },
  PodDisruptionBudget = { "/apis/policy/v1", "poddisruptionbudgets", true },
  APIService = { "/apis/apiregistration.k8s.io/v1", "apiservices", false },
  StorageClass = { "/apis/storage.k8s.io/v1", "storageclasses", false },
  Widget = { "/apis/example.com/v1", "widgets", true },
}

local API_VERSION = {
  Deployment = "apps/v1", ReplicaSet = "apps/v1", StatefulSet = "apps/v1", DaemonSet = "apps/v1",
  Job = "batch/v1", CronJob = "batch/v1", Ingress = "networking.k8s.io/v1",
  CustomResourceDefinition = "apiextensions.k8s.io/v1", HorizontalPodAutoscaler = "autoscaling/v2",
  PodDisruptionBudget = "policy/v1", APIService = "apiregistration.k8s.io/v1", Widget = "example.com/v1",
}

local NS = "default"

local function path_of(kind, name, ns)
  local k = assert(KINDS[kind], "no path for kind " .. kind)
  local p = k[1]
  if k[3] then p = p .. "/namespaces/" .. (ns or NS) end
  p = p .. "/" .. k[2]
  if name then p = p .. "/" .. name end
  return p
end

local function selector_string(sel)
  local parts = {}
  for k, v in pairs((type(sel) == "table" and sel.matchLabels) or sel or {}) do
    parts[#parts + 1] = k .. "%3D" .. v
  end
  table.sort(parts)
  return table.concat(parts, "%2C")
end

-- A sim with the real controllers on a manual clock, plus the client-side helpers the
-- cases use. rules: scenario rules added to the sim's own.
local function cluster(rules, opts)
  opts = opts or {}
  local t = H.new({ controllers = true, ready_after = opts.ready_after or 1, nodes = 3 })
  for _, r in ipairs(rules or {}) do t.sim.scenario.rules[#t.sim.scenario.rules + 1] = r end
  local c = { t = t, sim = t.sim }
  function c.advance(dt) t.loop.advance(dt) end
  -- POST obj (apiVersion and kind filled in); returns what the server answered.
  function c.create(obj)
    obj.apiVersion = obj.apiVersion or API_VERSION[obj.kind] or "v1"
    local ns = obj.metadata.namespace
    local resp = t.post(path_of(obj.kind, nil, ns), obj)
    assert(resp.status == 201 or resp.status == 200,
      "create " .. obj.kind .. "/" .. tostring(obj.metadata.name) .. ": " .. tostring(resp.status) .. " " .. tostring(resp.body))
    return resp.json
  end
  function c.get(kind, name, ns)
    local resp = t.get(path_of(kind, name, ns))
    if resp.status == 404 then return nil end
    assert(resp.status == 200, "get " .. kind .. "/" .. name .. ": " .. tostring(resp.status) .. " " .. tostring(resp.body))
    return resp.json
  end
  -- Change the live object with fn and PUT it back, as kubectl edit would.
  function c.edit(kind, name, fn, ns)
    local obj = assert(c.get(kind, name, ns))
    fn(obj)
    local resp = t.put(path_of(kind, name, ns), obj)
    assert(resp.status == 200, "put " .. kind .. "/" .. name .. ": " .. tostring(resp.status) .. " " .. tostring(resp.body))
    return resp.json
  end
  -- Write status as the object's own controller would (see the header).
  function c.set_status(kind, name, fn, ns)
    local k = KINDS[kind]
    local group = k[1]:match("^/apis/([^/]+)/") or ""
    local rk = group ~= "" and k[2] .. "." .. group or k[2]
    local obj = c.sim.util.copy(assert(c.sim.store:get(rk, k[3] and (ns or NS) or nil, name)))
    obj.status = obj.status or {}
    fn(obj.status)
    assert(c.sim.store:update_status(rk, obj))
  end
  -- The check's context, as atom's waiter builds it: get and related read the API.
  c.ctx = {
    get = function(kind, name) return c.get(kind, name) end,
    related = function(kind, sel)
      local resp = t.get(path_of(kind) .. "?labelSelector=" .. selector_string(sel))
      assert(resp.status == 200, "list " .. kind .. ": " .. tostring(resp.body))
      return resp.json.items
    end,
  }
  -- state, message of the live object through the full readiness dispatch.
  function c.check(kind, name, ns, ctx)
    return readiness.check(c.get(kind, name, ns) or cjson.null, nil, ctx or c.ctx)
  end
  return c
end


local function labels(app) return { app = app } end

local function pod_template(app, image)
  return { metadata = { labels = labels(app) },
    spec = { containers = { { name = "c", image = image or "nginx:1.27" } } } }
end

local function pod(name, image)
  return { kind = "Pod", metadata = { name = name, labels = labels(name) },
    spec = { containers = { { name = "c", image = image or "nginx:1.27" } } } }
end

local function deployment(name, replicas, image, extra)
  local d = { kind = "Deployment", metadata = { name = name },
    spec = { replicas = replicas, selector = { matchLabels = labels(name) },
      template = pod_template(name, image) } }
  for k, v in pairs(extra or {}) do d.spec[k] = v end
  return d
end

local function replicaset(kind, name, replicas)
  local sel = kind == "ReplicationController" and labels(name) or { matchLabels = labels(name) }
  return { kind = kind, metadata = { name = name },
    spec = { replicas = replicas, selector = sel, template = pod_template(name) } }
end

local function statefulset(name, replicas)
  return { kind = "StatefulSet", metadata = { name = name },
    spec = { replicas = replicas, serviceName = name, selector = { matchLabels = labels(name) },
      template = pod_template(name) } }
end

local function daemonset(name)
  return { kind = "DaemonSet", metadata = { name = name },
    spec = { selector = { matchLabels = labels(name) }, template = pod_template(name) } }
end

local function job(name, backoff)
  return { kind = "Job", metadata = { name = name },
    spec = { backoffLimit = backoff, template = { spec = { restartPolicy = "Never",
      containers = { { name = "m", image = "busybox:1.36" } } } } } }
end

local function service(name, type_, selector)
  return { kind = "Service", metadata = { name = name },
    spec = { type = type_, selector = selector or labels(name), ports = { { port = 80 } } } }
end

local function pvc(name, class)
  return { kind = "PersistentVolumeClaim", metadata = { name = name },
    spec = { accessModes = { "ReadWriteOnce" }, storageClassName = class,
      resources = { requests = { storage = "1Gi" } } } }
end

local function crd(name, group, plural, kind, conditions)
  local schema = { type = "object", ["x-kubernetes-preserve-unknown-fields"] = true }
  if conditions then
    schema = { type = "object", properties = {
      spec = { type = "object", ["x-kubernetes-preserve-unknown-fields"] = true },
      status = { type = "object", properties = { conditions = { type = "array",
        items = { type = "object", ["x-kubernetes-preserve-unknown-fields"] = true } } } } } }
  end
  return { kind = "CustomResourceDefinition", metadata = { name = name },
    spec = { group = group, scope = "Namespaced",
      names = { plural = plural, singular = plural:sub(1, -2), kind = kind, listKind = kind .. "List" },
      versions = { { name = "v1", served = true, storage = true, subresources = { status = {} },
        schema = { openAPIV3Schema = schema } } } } }
end

local function hpa(name, target)
  return { kind = "HorizontalPodAutoscaler", metadata = { name = name },
    spec = { scaleTargetRef = { apiVersion = "apps/v1", kind = "Deployment", name = target },
      minReplicas = 2, maxReplicas = 4 } }
end

local function pdb(name, app)
  return { kind = "PodDisruptionBudget", metadata = { name = name },
    spec = { minAvailable = 1, selector = { matchLabels = labels(app) } } }
end

local function apiservice(name, svc)
  local version, group = name:match("^([^.]+)%.(.+)$")
  return { kind = "APIService", metadata = { name = name },
    spec = { group = group, version = version, groupPriorityMinimum = 1000, versionPriority = 15,
      insecureSkipTLSVerify = true, service = svc } }
end

-- A Widget kind served by the sim once its CRD is established.
local function widgets(c, with_conditions)
  c.create(crd("widgets.example.com", "example.com", "widgets", "Widget", with_conditions))
  c.advance(2)
end

local function widget(name)
  return { kind = "Widget", metadata = { name = name }, spec = { size = 1 } }
end

local function condition(st, ctype, status, reason, message)
  st.conditions = st.conditions or {}
  for _, cd in ipairs(st.conditions) do
    if cd.type == ctype then
      cd.status, cd.reason, cd.message = status, reason, message
      return
    end
  end
  st.conditions[#st.conditions + 1] = { type = ctype, status = status, reason = reason, message = message,
    lastTransitionTime = "2026-01-01T00:00:00Z" }
end

-- { kind, outcome, rules = scenario rules, run = function(c) -> state, message,
--   state = want, message = Lua pattern the message must contain }
local CASES = {
  -- Pod ------------------------------------------------------------------------------------
  { "Pod", "ready", run = function(c)
      c.create(pod("web"))
      c.advance(5)
      return c.check("Pod", "web")
    end, state = "ready", message = "^pod is running and ready$" },
  { "Pod", "progressing (containers being created)", run = function(c)
      c.create(pod("web"))
      c.advance(0.5)
      return c.check("Pod", "web")
    end, state = "progressing", message = 'container "c" is waiting: ContainerCreating' },
  { "Pod", "failed (ImagePullBackOff)", rules = { { kind = "Pod", name = "pull", image_pull_fails = true } },
    run = function(c)
      c.create(pod("pull", "registry.example/app:v9"))
      c.advance(10)
      return c.check("Pod", "pull")
    end, state = "failed", message = 'container "c" is waiting: ImagePullBackOff' },
  { "Pod", "failed (ErrImagePull, before the back-off)", rules = { { kind = "Pod", name = "pull", image_pull_fails = true } },
    run = function(c)
      c.create(pod("pull", "registry.example/app:v9"))
      c.advance(1.5)
      return c.check("Pod", "pull")
    end, state = "failed", message = 'container "c" is waiting: ErrImagePull' },
  { "Pod", "failed (CrashLoopBackOff)", rules = { { kind = "Pod", name = "crash", crash_loop = true } },
    run = function(c)
      c.create(pod("crash"))
      c.advance(30)
      return c.check("Pod", "crash")
    end, state = "failed", message = 'container "c" is waiting: CrashLoopBackOff' },

  -- Deployment -----------------------------------------------------------------------------
  { "Deployment", "ready", run = function(c)
      c.create(deployment("web", 3))
      c.advance(10)
      return c.check("Deployment", "web")
    end, state = "ready", message = "^3 of 3 replicas are updated and available$" },
  { "Deployment", "progressing (new replicas not yet available)", run = function(c)
      c.create(deployment("web", 3))
      c.advance(0.5)
      return c.check("Deployment", "web")
    end, state = "progressing", message = "^0 of 3 updated replicas are available$" },
  { "Deployment", "progressing (rolling update under way)", run = function(c)
      c.create(deployment("web", 3))
      c.advance(10)
      c.edit("Deployment", "web", function(d) d.spec.template.spec.containers[1].image = "nginx:1.28" end)
      c.advance(0.5)
      return c.check("Deployment", "web")
    end, state = "progressing", message = "new replicas have been updated" },
  { "Deployment", "progressing (scaled up, the new pod not yet available)", run = function(c)
      c.create(deployment("web", 2))
      c.advance(10)
      c.edit("Deployment", "web", function(d) d.spec.replicas = 3 end)
      c.advance(0.5)
      return c.check("Deployment", "web")
    end, state = "progressing", message = "^2 of 3 updated replicas are available$" },
  { "Deployment", "ready (paused mid-rollout)", run = function(c)
      c.create(deployment("web", 2))
      c.advance(10)
      c.edit("Deployment", "web", function(d)
        d.spec.paused = true
        d.spec.template.spec.containers[1].image = "nginx:1.28"
      end)
      c.advance(1)
      return c.check("Deployment", "web")
    end, state = "ready", message = "^deployment is paused$" },
  { "Deployment", "failed (ProgressDeadlineExceeded)", run = function(c)
      -- :does-not-exist makes the sim's kubelet fail the pull (scenario.lua).
      c.create(deployment("bad", 2, "nginx:does-not-exist", { progressDeadlineSeconds = 20 }))
      c.advance(30)
      -- without ctx.related: only the Deployment's own condition can say it failed
      return c.check("Deployment", "bad", nil, { get = c.ctx.get })
    end, state = "failed",
    message = "^exceeded its progress deadline: .*ReplicaSet \"bad%-%w+\" has timed out progressing" },
  { "Deployment", "failed early through its pods (ImagePullBackOff)", run = function(c)
      c.create(deployment("bad", 2, "nginx:does-not-exist", { progressDeadlineSeconds = 600 }))
      c.advance(10)
      return c.check("Deployment", "bad")
    end, state = "failed", message = '^pod bad%-%w+%-%w+: container "c" is waiting: ImagePullBackOff' },
  { "Deployment", "failed early through its pods (CrashLoopBackOff)",
    rules = { { kind = "Deployment", name = "crash", crash_loop = true } }, run = function(c)
      c.create(deployment("crash", 2))
      c.advance(30)
      return c.check("Deployment", "crash")
    end, state = "failed", message = 'container "c" is waiting: CrashLoopBackOff' },

  -- ReplicaSet, ReplicationController --------------------------------------------------------
  { "ReplicaSet", "ready", run = function(c)
      c.create(replicaset("ReplicaSet", "rs", 3))
      c.advance(10)
      return c.check("ReplicaSet", "rs")
    end, state = "ready", message = "^3 of 3 replicas are available$" },
  { "ReplicaSet", "progressing", run = function(c)
      c.create(replicaset("ReplicaSet", "rs", 3))
      c.advance(0.5)
      return c.check("ReplicaSet", "rs")
    end, state = "progressing", message = "^0 of 3 replicas are ready$" },
  { "ReplicaSet", "progressing (scale-down not yet observed)", run = function(c)
      c.create(replicaset("ReplicaSet", "rs", 3))
      c.advance(10)
      c.edit("ReplicaSet", "rs", function(o) o.spec.replicas = 1 end)
      -- the controller has seen the new generation but not yet reported fewer pods
      local live = c.get("ReplicaSet", "rs")
      return readiness.check(live, nil, c.ctx)
    end, state = "progressing", message = "generation 2" },
  { "ReplicaSet", "progressing (scaled up, the new pod not yet ready)", run = function(c)
      c.create(replicaset("ReplicaSet", "rs", 2))
      c.advance(10)
      c.edit("ReplicaSet", "rs", function(o) o.spec.replicas = 3 end)
      c.advance(0.5)
      return c.check("ReplicaSet", "rs")
    end, state = "progressing", message = "^2 of 3 replicas are ready$" },
  { "StatefulSet", "progressing (rolling update under way)", run = function(c)
      c.create(statefulset("db", 2))
      c.advance(20)
      c.edit("StatefulSet", "db", function(o) o.spec.template.spec.containers[1].image = "nginx:1.28" end)
      c.advance(0.5)
      return c.check("StatefulSet", "db")
    end, state = "progressing", message = "^1 of 2 replicas are ready$" },
  { "ReplicationController", "ready", run = function(c)
      c.create(replicaset("ReplicationController", "rc", 2))
      c.advance(10)
      return c.check("ReplicationController", "rc")
    end, state = "ready", message = "^2 of 2 replicas are available$" },
  { "ReplicationController", "progressing", run = function(c)
      c.create(replicaset("ReplicationController", "rc", 2))
      c.advance(0.5)
      return c.check("ReplicationController", "rc")
    end, state = "progressing", message = "^0 of 2 replicas are ready$" },

  -- StatefulSet, DaemonSet -----------------------------------------------------------------
  { "StatefulSet", "ready", run = function(c)
      c.create(statefulset("db", 2))
      c.advance(20)
      return c.check("StatefulSet", "db")
    end, state = "ready", message = "^2 of 2 replicas are ready and updated$" },
  { "StatefulSet", "progressing (ordered start: second pod not ready yet)", run = function(c)
      c.create(statefulset("db", 2))
      c.advance(1.5)
      return c.check("StatefulSet", "db")
    end, state = "progressing", message = "^1 of 2 replicas are ready$" },
  { "DaemonSet", "ready", run = function(c)
      c.create(daemonset("agent"))
      c.advance(10)
      return c.check("DaemonSet", "agent")
    end, state = "ready", message = "^3 of 3 pods are available$" },
  { "DaemonSet", "progressing", run = function(c)
      c.create(daemonset("agent"))
      c.advance(0.5)
      return c.check("DaemonSet", "agent")
    end, state = "progressing", message = "of 3 pods are ready$" },

  -- Job, CronJob ---------------------------------------------------------------------------
  { "Job", "ready", run = function(c)
      c.create(job("migrate"))
      c.advance(10)
      return c.check("Job", "migrate")
    end, state = "ready", message = "^job completed %(1 succeeded%)$" },
  { "Job", "progressing", run = function(c)
      c.create(job("migrate"))
      c.advance(1.5)
      return c.check("Job", "migrate")
    end, state = "progressing", message = "^1 active, 0 succeeded, 0 failed of 1 completions$" },
  { "Job", "failed (BackoffLimitExceeded)", rules = { { kind = "Job", name = "doomed", job_fails = true } },
    run = function(c)
      c.create(job("doomed", 1))
      c.advance(60)
      return c.check("Job", "doomed")
    end, state = "failed", message = "^Failed=True: BackoffLimitExceeded: Job has reached the specified backoff limit$" },
  { "CronJob", "ready (not scheduled yet)", run = function(c)
      c.create({ kind = "CronJob", metadata = { name = "tick" },
        spec = { schedule = "*/5 * * * *", jobTemplate = { spec = job("x").spec } } })
      c.advance(1)
      return c.check("CronJob", "tick")
    end, state = "ready", message = "^not scheduled yet$" },
  { "CronJob", "ready (a run is active)", run = function(c)
      c.create({ kind = "CronJob", metadata = { name = "tick" },
        spec = { schedule = "* * * * *", jobTemplate = { spec = job("x").spec } } })
      c.advance(61)
      return c.check("CronJob", "tick")
    end, state = "ready", message = "^last scheduled at %d%d%d%d%-%d%d%-%d%dT[%d:]+Z, 1 active$" },
  { "CronJob", "ready although its last run failed (runs are separate Jobs)",
    rules = { { kind = "Job", name = "tick-*", job_fails = true } }, run = function(c)
      local spec = job("x", 0).spec
      c.create({ kind = "CronJob", metadata = { name = "tick" },
        spec = { schedule = "* * * * *", jobTemplate = { spec = spec } } })
      c.advance(61 + 20)
      return c.check("CronJob", "tick")
    end, state = "ready", message = "has not succeeded$" },

  -- Service --------------------------------------------------------------------------------
  { "Service", "ready (ClusterIP)", run = function(c)
      c.create(service("web", "ClusterIP"))
      return c.check("Service", "web")
    end, state = "ready", message = "^ClusterIP 10%.%d+%.%d+%.%d+$" },
  { "Service", "ready (LoadBalancer with an address)", run = function(c)
      c.create(service("lb", "LoadBalancer"))
      c.advance(5)
      return c.check("Service", "lb")
    end, state = "ready", message = "^load balancer at 172%.18%.255%.%d+$" },
  { "Service", "progressing (LoadBalancer without an address)",
    rules = { { kind = "Service", name = "lb", never_ready = true } }, run = function(c)
      c.create(service("lb", "LoadBalancer"))
      c.advance(30)
      return c.check("Service", "lb")
    end, state = "progressing", message = "^waiting for the load balancer to get an address$" },

  -- Ingress --------------------------------------------------------------------------------
  { "Ingress", "ready (no address: not waited for)", run = function(c)
      c.create(service("web", "ClusterIP"))
      c.create({ kind = "Ingress", metadata = { name = "web" }, spec = { rules = { { host = "web.example",
        http = { paths = { { path = "/", pathType = "Prefix",
          backend = { service = { name = "web", port = { number = 80 } } } } } } } } } })
      c.advance(5)
      return c.check("Ingress", "web")
    end, state = "ready", message = "^no address yet$" },
  { "Ingress", "ready (with an address)", run = function(c)
      c.create({ kind = "Ingress", metadata = { name = "web" }, spec = { defaultBackend = {
        service = { name = "web", port = { number = 80 } } } } })
      -- The sim runs no ingress controller: publish the address as ingress-nginx would.
      c.set_status("Ingress", "web", function(st)
        st.loadBalancer = { ingress = { { ip = "172.18.255.200" } } }
      end)
      return c.check("Ingress", "web")
    end, state = "ready", message = "^address 172%.18%.255%.200$" },

  -- PersistentVolumeClaim ----------------------------------------------------------------------
  { "PersistentVolumeClaim", "ready (bound)", run = function(c)
      c.create(pvc("data"))
      c.advance(5)
      return c.check("PersistentVolumeClaim", "data")
    end, state = "ready", message = "^bound to pvc%-" },
  { "PersistentVolumeClaim", "progressing (no such StorageClass)", run = function(c)
      c.create(pvc("data", "fast-ssd"))
      c.advance(5)
      return c.check("PersistentVolumeClaim", "data")
    end, state = "progressing", message = "^claim is Pending$" },
  { "PersistentVolumeClaim", "ready (class binds on first consumer)", run = function(c)
      c.create({ apiVersion = "storage.k8s.io/v1", kind = "StorageClass", metadata = { name = "local-wait" },
        provisioner = "rancher.io/local-path", volumeBindingMode = "WaitForFirstConsumer" })
      c.create(pvc("data", "local-wait"))
      -- Read before the sim's PV controller binds it (after its short delay): it binds
      -- even WaitForFirstConsumer claims, where Kubernetes would wait for a pod.
      c.advance(0.1)
      return c.check("PersistentVolumeClaim", "data")
    end, state = "ready", message = "^waits for its first consumer %(StorageClass local%-wait%)$" },
  { "PersistentVolumeClaim", "failed (Lost)", run = function(c)
      c.create(pvc("data"))
      c.advance(5)
      -- The sim's PV controller never reports Lost: write it as kube-controller-manager
      -- does when a bound claim's volume disappears.
      c.set_status("PersistentVolumeClaim", "data", function(st) st.phase = "Lost" end)
      return c.check("PersistentVolumeClaim", "data")
    end, state = "failed", message = "^claim lost its volume$" },

  -- Namespace ------------------------------------------------------------------------------
  { "Namespace", "ready", run = function(c)
      c.create({ kind = "Namespace", metadata = { name = "team-a" } })
      c.advance(1)
      return c.check("Namespace", "team-a")
    end, state = "ready", message = "^namespace is Active$" },
  { "Namespace", "progressing (being deleted)", run = function(c)
      c.create({ kind = "Namespace", metadata = { name = "team-a" }, spec = { finalizers = { "example.com/hold" } } })
      c.advance(1)
      assert.are.equal(200, c.t.delete(path_of("Namespace", "team-a")).status)
      c.advance(5)
      return c.check("Namespace", "team-a")
    end, state = "progressing", message = "^terminating$" },
  { "Namespace", "failed (the built-in alone on a namespace stuck Terminating)", run = function(c)
      -- A foreign finalizer keeps it Terminating. Through readiness.check the
      -- deletionTimestamp rule answers first (progressing, above); the built-in's own
      -- verdict on the same live object is "failed".
      c.create({ kind = "Namespace", metadata = { name = "team-a" }, spec = { finalizers = { "example.com/hold" } } })
      c.advance(1)
      c.t.delete(path_of("Namespace", "team-a"))
      c.advance(5)
      return require("atom.readiness.namespace")(c.get("Namespace", "team-a"))
    end, state = "failed", message = "^namespace is terminating" },

  -- CustomResourceDefinition -----------------------------------------------------------------
  { "CustomResourceDefinition", "ready", run = function(c)
      c.create(crd("widgets.example.com", "example.com", "widgets", "Widget"))
      c.advance(2)
      return c.check("CustomResourceDefinition", "widgets.example.com")
    end, state = "ready", message = "^established$" },
  { "CustomResourceDefinition", "progressing", run = function(c)
      c.create(crd("widgets.example.com", "example.com", "widgets", "Widget"))
      c.advance(0.1)
      return c.check("CustomResourceDefinition", "widgets.example.com")
    end, state = "progressing", message = "^waiting to be established$" },
  { "CustomResourceDefinition", "failed (kind already claimed in the group)", run = function(c)
      c.create(crd("widgets.example.com", "example.com", "widgets", "Widget"))
      c.advance(2)
      c.create(crd("gadgets.example.com", "example.com", "gadgets", "Widget"))
      c.advance(2)
      return c.check("CustomResourceDefinition", "gadgets.example.com")
    end, state = "failed", message = '^NamesAccepted=False: KindConflict: "Widget" is already in use$' },

  -- HorizontalPodAutoscaler ------------------------------------------------------------------
  { "HorizontalPodAutoscaler", "ready", run = function(c)
      c.create(deployment("web", 1))
      c.create(hpa("web", "web"))
      c.advance(10)
      return c.check("HorizontalPodAutoscaler", "web")
    end, state = "ready", message = "^2 current, 2 desired replicas$" },
  { "HorizontalPodAutoscaler", "progressing (new spec not yet observed)", run = function(c)
      c.create(deployment("web", 1))
      c.create(hpa("web", "web"))
      c.advance(10)
      c.edit("HorizontalPodAutoscaler", "web", function(o) o.spec.maxReplicas = 6 end)
      return c.check("HorizontalPodAutoscaler", "web")
    end, state = "progressing", message = "^waiting for the controller to observe generation 2 %(has seen 1%)$" },
  { "HorizontalPodAutoscaler", "failed (target missing)", run = function(c)
      c.create(hpa("web", "nowhere"))
      c.advance(2)
      return c.check("HorizontalPodAutoscaler", "web")
    end, state = "failed", message = '^AbleToScale=False: FailedGetScale: .*"nowhere" not found$' },

  -- PodDisruptionBudget ----------------------------------------------------------------------
  { "PodDisruptionBudget", "ready", run = function(c)
      c.create(deployment("web", 2))
      c.create(pdb("web", "web"))
      c.advance(10)
      return c.check("PodDisruptionBudget", "web")
    end, state = "ready", message = "^2 healthy pods, 1 required, 1 disruptions allowed$" },
  { "PodDisruptionBudget", "ready, noting too few pods (normal during a rollout)", run = function(c)
      c.create(deployment("web", 2))
      c.create(pdb("web", "web"))
      c.advance(0.5)
      return c.check("PodDisruptionBudget", "web")
    end, state = "ready", message = "^0 healthy pods, 1 required, 0 disruptions allowed %(DisruptionAllowed=False: InsufficientPods%)$" },
  { "PodDisruptionBudget", "progressing (new spec not yet observed)", run = function(c)
      c.create(pdb("web", "web"))
      c.advance(1)
      c.edit("PodDisruptionBudget", "web", function(o) o.spec.minAvailable = 2 end)
      return c.check("PodDisruptionBudget", "web")
    end, state = "progressing", message = "^waiting for the controller to observe generation 2 %(has seen 1%)$" },
  { "PodDisruptionBudget", "failed (SyncFailed)", run = function(c)
      c.create(pdb("web", "web"))
      c.advance(1)
      -- The sim's disruption controller never fails to sync: write what the real one
      -- writes when it cannot get the scale of the pods' controller.
      c.set_status("PodDisruptionBudget", "web", function(st)
        condition(st, "DisruptionAllowed", "False", "SyncFailed",
          'found no controllers for pod "web-0"')
      end)
      return c.check("PodDisruptionBudget", "web")
    end, state = "failed", message = '^DisruptionAllowed=False: SyncFailed: found no controllers for pod "web%-0"$' },

  -- APIService -----------------------------------------------------------------------------
  { "APIService", "ready (local)", run = function(c)
      c.create(apiservice("v1.local.example.com", nil))
      c.advance(1)
      return c.check("APIService", "v1.local.example.com")
    end, state = "ready", message = "^available %(Local%)$" },
  { "APIService", "ready (aggregated, backing pods up)", run = function(c)
      c.create(deployment("metrics", 1))
      c.create(service("metrics", "ClusterIP"))
      c.create(apiservice("v1beta1.metrics.example.com", { namespace = NS, name = "metrics", port = 80 }))
      c.advance(10)
      return c.check("APIService", "v1beta1.metrics.example.com")
    end, state = "ready", message = "^available %(Passed%)$" },
  { "APIService", "progressing (service has no ready endpoints)", run = function(c)
      c.create(deployment("metrics", 1))
      c.create(service("metrics", "ClusterIP"))
      c.create(apiservice("v1beta1.metrics.example.com", { namespace = NS, name = "metrics", port = 80 }))
      c.advance(0.5)
      return c.check("APIService", "v1beta1.metrics.example.com")
    end, state = "progressing", message = "^Available=False: MissingEndpoints: endpoints for service/metrics" },
  { "APIService", "progressing (service not found)", run = function(c)
      c.create(apiservice("v1beta1.metrics.example.com", { namespace = NS, name = "metrics", port = 80 }))
      c.advance(5)
      return c.check("APIService", "v1beta1.metrics.example.com")
    end, state = "progressing", message = '^Available=False: ServiceNotFound: service/metrics in "default" is not present$' },

  -- A custom resource, judged by the generic rule ------------------------------------------------
  -- The sim runs no controller for custom kinds: the conditions are written with
  -- update_status as the kind's operator would.
  { "Widget (generic rule)", "ready (no conditions: exists)", run = function(c)
      widgets(c)
      c.create(widget("w"))
      return c.check("Widget", "w")
    end, state = "ready", message = "^exists$" },
  { "Widget (generic rule)", "ready (Ready=True)", run = function(c)
      widgets(c, true)
      c.create(widget("w"))
      c.set_status("Widget", "w", function(st) condition(st, "Ready", "True", "Reconciled", "widget is up") end)
      return c.check("Widget", "w")
    end, state = "ready", message = "^Ready=True: Reconciled: widget is up$" },
  { "Widget (generic rule)", "progressing (CRD declares conditions, none reported yet)", run = function(c)
      widgets(c, true)
      c.create(widget("w"))
      local ctx = { get = c.ctx.get, expects_conditions = true }
      return c.check("Widget", "w", nil, ctx)
    end, state = "progressing", message = "^waiting for the controller to report status$" },
  { "Widget (generic rule)", "progressing (Ready=False)", run = function(c)
      widgets(c, true)
      c.create(widget("w"))
      c.set_status("Widget", "w", function(st) condition(st, "Ready", "False", "Provisioning", "2 of 3 shards up") end)
      return c.check("Widget", "w")
    end, state = "progressing", message = "^Ready=False: Provisioning: 2 of 3 shards up$" },
  { "Widget (generic rule)", "progressing (Reconciling=True)", run = function(c)
      widgets(c, true)
      c.create(widget("w"))
      c.set_status("Widget", "w", function(st) condition(st, "Reconciling", "True", "Progressing", "rolling shards") end)
      return c.check("Widget", "w")
    end, state = "progressing", message = "^Reconciling=True: Progressing: rolling shards$" },
  { "Widget (generic rule)", "failed (Stalled=True)", run = function(c)
      widgets(c, true)
      c.create(widget("w"))
      c.set_status("Widget", "w", function(st)
        condition(st, "Ready", "False", "Failed", "quota exceeded")
        condition(st, "Stalled", "True", "QuotaExceeded", "cannot create shard 3: quota exceeded")
      end)
      return c.check("Widget", "w")
    end, state = "failed", message = "^Stalled=True: QuotaExceeded: cannot create shard 3: quota exceeded$" },
}

describe("built-in readiness checks on live simulated objects", function()
  for _, case in ipairs(CASES) do
    it(case[1] .. ": " .. case[2], function()
      local c = cluster(case.rules)
      local state, message = case.run(c)
      local got = tostring(state) .. ", " .. tostring(message)
      assert.are.equal(case.state, state, got)
      assert.is_truthy(tostring(message):find(case.message), "message " .. got .. " lacks " .. case.message)
      assert.are.same({}, c.sim.errors, "the sim logged errors")
    end)
  end

  it("covers every kind that has a built-in check", function()
    local covered = {}
    for _, case in ipairs(CASES) do covered[case[1]] = true end
    for kind in pairs(KINDS) do
      if readiness.for_kind(API_VERSION[kind] or "v1", kind) then
        assert.is_true(covered[kind] == true, kind .. " has a built-in check but no live case")
      end
    end
    assert.is_nil(readiness.for_kind("example.com/v1", "Widget"))
  end)
end)
