local H = require "sim.sim_helper"

describe("sim API: server basics", function()
  local t
  before_each(function() t = H.new() end)

  it("reports version 1.32 and health", function()
    local r = t.get("/version")
    assert.equal(200, r.status)
    assert.equal("1", r.json.major)
    assert.equal("32", r.json.minor)
    assert.equal("v1.32.0", r.json.gitVersion)
    assert.equal("ok", t.get("/healthz").body)
    assert.equal("ok", t.get("/readyz").body)
  end)

  it("answers unknown paths with a 404 Status", function()
    local r = t.get("/apis/nope/v1/things")
    assert.equal(404, r.status)
    assert.equal("Status", r.json.kind)
    assert.equal("NotFound", r.json.reason)
    assert.equal(404, t.get("/apis/batch/v1beta1/namespaces/default/cronjobs").status)
    assert.equal(404, t.get("/openapi/v4").status)
  end)

  it("serves legacy discovery unless v2 is asked for", function()
    local r = t.get("/api", { accept = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json" })
    assert.equal("APIVersions", r.json.kind)
    r = t.get("/apis")
    assert.equal("APIGroupList", r.json.kind)
    local names = {}
    for _, g in ipairs(r.json.groups) do names[g.name] = g end
    assert.truthy(names.apps and names.batch and names["networking.k8s.io"] and names["apiextensions.k8s.io"])
    assert.equal("autoscaling/v2", names.autoscaling.preferredVersion.groupVersion)
    assert.equal(2, #names.autoscaling.versions)
    assert.equal(1, #names.batch.versions)

    r = t.get("/apis/apps/v1")
    assert.equal("APIResourceList", r.json.kind)
    local res = {}
    for _, x in ipairs(r.json.resources) do res[x.name] = x end
    assert.same({ "deploy" }, res.deployments.shortNames)
    assert.same({ "all" }, res.deployments.categories)
    assert.equal("Scale", res["deployments/scale"].kind)
    assert.equal("autoscaling", res["deployments/scale"].group)
    assert.same({ "get", "patch", "update" }, res["deployments/status"].verbs)
    assert.is_nil(res["daemonsets/scale"])
  end)

  it("serves aggregated discovery for a v2 Accept", function()
    local r = t.get("/apis", { accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json" })
    assert.equal("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList", r.headers["Content-Type"])
    assert.equal("APIGroupDiscoveryList", r.json.kind)
    local apps
    for _, it in ipairs(r.json.items) do if it.metadata.name == "apps" then apps = it end end
    local dep
    for _, x in ipairs(apps.versions[1].resources) do if x.resource == "deployments" then dep = x end end
    assert.equal("Namespaced", dep.scope)
    assert.equal("Deployment", dep.responseKind.kind)
    local core = t.get("/api", { accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList" })
    assert.equal(1, #core.json.items)
    assert.equal("", core.json.items[1].metadata.name)
  end)

  it("publishes OpenAPI v3 with a fieldValidation patch parameter per kind", function()
    local idx = t.get("/openapi/v3")
    local url = idx.json.paths["apis/apps/v1"].serverRelativeURL
    assert.truthy(url:match("^/openapi/v3/apis/apps/v1%?hash=%x+$"))
    assert.equal(url, t.get("/openapi/v3").json.paths["apis/apps/v1"].serverRelativeURL)
    local doc = t.get(url)
    local op = doc.json.paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"].patch
    assert.equal("Deployment", op["x-kubernetes-group-version-kind"].kind)
    local found = false
    for _, p in ipairs(op.parameters) do if p.name == "fieldValidation" then found = true end end
    assert.is_true(found)
    assert.truthy(t.get("/openapi/v3/api/v1").json.paths["/api/v1/namespaces/{name}"])
  end)
end)

describe("sim API: CRUD", function()
  local t
  before_each(function() t = H.new() end)

  it("creates, gets and lists with server-set metadata", function()
    local r = t.post("/api/v1/namespaces/default/configmaps", H.configmap("a"), { query = "" })
    assert.equal(201, r.status)
    local m = r.json.metadata
    assert.truthy(m.uid:match("^%x+%-%x+%-4%x+%-%x+%-%x+$"))
    assert.truthy(m.creationTimestamp:match("^%d+%-%d+%-%d+T%d+:%d+:%d+Z$"))
    assert.equal(1, m.generation)
    assert.equal("default", m.namespace)
    local rv1 = tonumber(m.resourceVersion)
    local r2 = t.post("/api/v1/namespaces/default/configmaps", H.configmap("b"))
    assert.is_true(tonumber(r2.json.metadata.resourceVersion) > rv1)
    local g = t.get("/api/v1/namespaces/default/configmaps/a")
    assert.equal("a", g.json.metadata.name)
    assert.equal("ConfigMap", g.json.kind)
    local l = t.get("/api/v1/namespaces/default/configmaps")
    assert.equal("ConfigMapList", l.json.kind)
    assert.equal(2, #l.json.items)
    assert.equal("v1", l.json.items[1].apiVersion)
    assert.equal(r2.json.metadata.resourceVersion, l.json.metadata.resourceVersion)
  end)

  it("encodes empty lists as JSON arrays", function()
    local r = t.get("/api/v1/namespaces/default/secrets")
    assert.truthy(r.body:find('"items":[]', 1, true))
    local c = t.post("/api/v1/namespaces/default/configmaps", '{"metadata":{"name":"x","finalizers":[]},"data":{"k":"[]"}}')
    assert.equal(201, c.status)
    assert.equal("[]", c.json.data.k)
  end)

  it("records managedFields for create with the field manager", function()
    local r = t.post("/api/v1/namespaces/default/configmaps", H.configmap("mf"), { headers = {} })
    local r2 = t.req("POST", "/api/v1/namespaces/default/configmaps?fieldManager=kubectl-create",
      { body = H.configmap("mf2") })
    local mf = r2.json.metadata.managedFields[1]
    assert.equal("kubectl-create", mf.manager)
    assert.equal("Update", mf.operation)
    assert.same({}, mf.fieldsV1["f:data"]["f:a"])
    assert.equal(201, r.status)
  end)

  it("refuses duplicates, stale updates and missing namespaces", function()
    t.post("/api/v1/namespaces/default/configmaps", H.configmap("a"))
    local dup = t.post("/api/v1/namespaces/default/configmaps", H.configmap("a"))
    assert.equal(409, dup.status)
    assert.equal("AlreadyExists", dup.json.reason)
    assert.equal('configmaps "a" already exists', dup.json.message)
    assert.equal("configmaps", dup.json.details.kind)

    local cur = t.get("/api/v1/namespaces/default/configmaps/a").json
    local stale = H.configmap("a", { a = "2" })
    stale.metadata.resourceVersion = "1"
    local c = t.put("/api/v1/namespaces/default/configmaps/a", stale)
    assert.equal(409, c.status)
    assert.equal("Conflict", c.json.reason)
    assert.truthy(c.json.message:find('Operation cannot be fulfilled on configmaps "a": the object has been modified', 1, true))
    stale.metadata.resourceVersion = cur.metadata.resourceVersion
    local ok = t.put("/api/v1/namespaces/default/configmaps/a", stale)
    assert.equal(200, ok.status)
    assert.equal("2", ok.json.data.a)

    local nf = t.post("/api/v1/namespaces/nope/configmaps", H.configmap("a"))
    assert.equal(404, nf.status)
    assert.equal('namespaces "nope" not found', nf.json.message)
    local nf2 = t.get("/apis/apps/v1/namespaces/default/deployments/missing")
    assert.equal('deployments.apps "missing" not found', nf2.json.message)
    assert.equal("apps", nf2.json.details.group)
    assert.equal("deployments", nf2.json.details.kind)
  end)

  it("rejects a body namespace that differs from the URL", function()
    local cm = H.configmap("a")
    cm.metadata.namespace = "kube-system"
    local r = t.post("/api/v1/namespaces/default/configmaps", cm)
    assert.equal(400, r.status)
    assert.equal("BadRequest", r.json.reason)
  end)

  it("validates names and immutable fields with 422", function()
    local bad = t.post("/api/v1/namespaces/default/configmaps", H.configmap("Bad_Name"))
    assert.equal(422, bad.status)
    assert.equal("Invalid", bad.json.reason)
    assert.equal("ConfigMap", bad.json.details.kind)
    assert.equal("metadata.name", bad.json.details.causes[1].field)
    local noname = t.post("/api/v1/namespaces/default/configmaps", { data = { a = "b" } })
    assert.equal(422, noname.status)
    assert.equal("FieldValueRequired", noname.json.details.causes[1].reason)

    local d = t.post("/apis/apps/v1/namespaces/default/deployments", H.deployment("web"))
    assert.equal(201, d.status)
    local changed = H.deployment("web", { labels = { app = "other" } })
    local r = t.put("/apis/apps/v1/namespaces/default/deployments/web", changed)
    assert.equal(422, r.status)
    assert.equal("spec.selector", r.json.details.causes[1].field)
    assert.truthy(r.json.message:find('Deployment.apps "web" is invalid: spec.selector', 1, true))

    local cm = H.configmap("frozen")
    cm.immutable = true
    t.post("/api/v1/namespaces/default/configmaps", cm)
    local r2 = t.patch("/api/v1/namespaces/default/configmaps/frozen", { data = { a = "9" } }, "application/merge-patch+json")
    assert.equal(422, r2.status)
    assert.equal("data", r2.json.details.causes[1].field)
  end)

  it("keeps Job templates immutable", function()
    local job = { apiVersion = "batch/v1", kind = "Job", metadata = { name = "j" },
      spec = { template = { spec = { restartPolicy = "Never", containers = { { name = "c", image = "busybox" } } } } } }
    local r = t.post("/apis/batch/v1/namespaces/default/jobs", job)
    assert.equal(201, r.status)
    assert.equal(6, r.json.spec.backoffLimit)
    assert.equal(1, r.json.spec.completions)
    local p = t.patch("/apis/batch/v1/namespaces/default/jobs/j",
      { spec = { template = { spec = { containers = { { name = "c", image = "busybox:2" } } } } } },
      "application/strategic-merge-patch+json")
    assert.equal(422, p.status)
    assert.equal("spec.template", p.json.details.causes[1].field)
  end)

  it("defaults Deployments, StatefulSets and Services", function()
    local d = t.post("/apis/apps/v1/namespaces/default/deployments", H.deployment("web")).json
    assert.equal(600, d.spec.progressDeadlineSeconds)
    assert.equal(10, d.spec.revisionHistoryLimit)
    assert.equal("RollingUpdate", d.spec.strategy.type)
    local sts = t.post("/apis/apps/v1/namespaces/default/statefulsets", {
      metadata = { name = "db" }, spec = { serviceName = "db", selector = { matchLabels = { app = "db" } },
        template = { metadata = { labels = { app = "db" } }, spec = { containers = { { name = "db", image = "pg" } } } } } }).json
    assert.equal(0, sts.spec.updateStrategy.rollingUpdate.partition)
    assert.equal("OrderedReady", sts.spec.podManagementPolicy)
    local svc = t.post("/api/v1/namespaces/default/services", { metadata = { name = "web" },
      spec = { selector = { app = "web" }, ports = { { port = 80 } } } }).json
    assert.truthy(svc.spec.clusterIP:match("^10%.96%.%d+%.%d+$"))
    assert.equal(svc.spec.clusterIP, svc.spec.clusterIPs[1])
    local headless = t.post("/api/v1/namespaces/default/services", { metadata = { name = "h" },
      spec = { clusterIP = "None", ports = { { port = 80 } } } }).json
    assert.equal("None", headless.spec.clusterIP)
    -- an update without clusterIP keeps the allocated one; changing it is refused
    local upd = t.put("/api/v1/namespaces/default/services/web", { metadata = { name = "web" },
      spec = { selector = { app = "web2" }, ports = { { port = 80 } } } })
    assert.equal(200, upd.status)
    assert.equal(svc.spec.clusterIP, upd.json.spec.clusterIP)
    local bad = t.put("/api/v1/namespaces/default/services/web", { metadata = { name = "web" },
      spec = { clusterIP = "10.96.200.200", ports = { { port = 80 } } } })
    assert.equal(422, bad.status)
  end)

  it("bumps generation only on spec changes and not on no-op writes", function()
    local d = t.post("/apis/apps/v1/namespaces/default/deployments", H.deployment("web")).json
    local p = t.patch("/apis/apps/v1/namespaces/default/deployments/web", { metadata = { labels = { x = "y" } } },
      "application/merge-patch+json").json
    assert.equal(1, p.metadata.generation)
    local p2 = t.patch("/apis/apps/v1/namespaces/default/deployments/web", { spec = { replicas = 5 } },
      "application/merge-patch+json").json
    assert.equal(2, p2.metadata.generation)
    local same = t.patch("/apis/apps/v1/namespaces/default/deployments/web", { spec = { replicas = 5 } },
      "application/merge-patch+json").json
    assert.equal(p2.metadata.resourceVersion, same.metadata.resourceVersion)
    assert.is_true(tonumber(p2.metadata.resourceVersion) > tonumber(d.metadata.resourceVersion))
  end)

  it("writes only status through the status subresource, and spec ignores status", function()
    t.post("/apis/apps/v1/namespaces/default/deployments", H.deployment("web"))
    local r = t.patch("/apis/apps/v1/namespaces/default/deployments/web/status",
      { status = { readyReplicas = 2 }, spec = { replicas = 9 } }, "application/merge-patch+json")
    assert.equal(200, r.status)
    assert.equal(2, r.json.status.readyReplicas)
    assert.equal(2, r.json.spec.replicas)
    local r2 = t.patch("/apis/apps/v1/namespaces/default/deployments/web",
      { status = { readyReplicas = 0 }, spec = { replicas = 3 } }, "application/merge-patch+json")
    assert.equal(2, r2.json.status.readyReplicas)
    assert.equal(3, r2.json.spec.replicas)
    local g = t.get("/apis/apps/v1/namespaces/default/deployments/web/status")
    assert.equal(2, g.json.status.readyReplicas)
  end)

  it("serves the scale subresource", function()
    t.post("/apis/apps/v1/namespaces/default/deployments", H.deployment("web"))
    local s = t.get("/apis/apps/v1/namespaces/default/deployments/web/scale")
    assert.equal("Scale", s.json.kind)
    assert.equal("autoscaling/v1", s.json.apiVersion)
    assert.equal(2, s.json.spec.replicas)
    assert.equal("app=web", s.json.status.selector)
    local p = t.patch("/apis/apps/v1/namespaces/default/deployments/web/scale", { spec = { replicas = 7 } },
      "application/merge-patch+json")
    assert.equal(7, p.json.spec.replicas)
    assert.equal(7, t.get("/apis/apps/v1/namespaces/default/deployments/web").json.spec.replicas)
    s = t.get("/apis/apps/v1/namespaces/default/deployments/web/scale").json
    s.spec.replicas = 1
    assert.equal(1, t.put("/apis/apps/v1/namespaces/default/deployments/web/scale", s).json.spec.replicas)
    assert.equal(404, t.get("/apis/apps/v1/namespaces/default/daemonsets/x/scale").status)
  end)

  it("does not store anything for dryRun=All", function()
    local r = t.req("POST", "/api/v1/namespaces/default/configmaps?dryRun=All", { body = H.configmap("dry") })
    assert.equal(201, r.status)
    assert.equal("dry", r.json.metadata.name)
    assert.equal(404, t.get("/api/v1/namespaces/default/configmaps/dry").status)
    t.post("/api/v1/namespaces/default/configmaps", H.configmap("wet"))
    local p = t.req("PATCH", "/api/v1/namespaces/default/configmaps/wet?dryRun=All",
      { body = { data = { a = "dry" } }, ctype = "application/merge-patch+json" })
    assert.equal("dry", p.json.data.a)
    assert.equal("1", t.get("/api/v1/namespaces/default/configmaps/wet").json.data.a)
    local d = t.req("DELETE", "/api/v1/namespaces/default/configmaps/wet?dryRun=All")
    assert.equal(200, d.status)
    assert.equal(200, t.get("/api/v1/namespaces/default/configmaps/wet").status)
  end)

  it("answers 415 for unknown patch types and SMP on custom resources, 413 for huge bodies", function()
    t.post("/api/v1/namespaces/default/configmaps", H.configmap("a"))
    local r = t.patch("/api/v1/namespaces/default/configmaps/a", "{}", "text/plain")
    assert.equal(415, r.status)
    assert.equal("UnsupportedMediaType", r.json.reason)
    local big = string.rep("x", 3 * 1024 * 1024 + 10)
    local b = t.post("/api/v1/namespaces/default/configmaps", big)
    assert.equal(413, b.status)
    assert.equal("RequestEntityTooLarge", b.json.reason)
  end)
end)

describe("sim API: selectors and pagination", function()
  local t
  before_each(function()
    t = H.new()
    for i, spec in ipairs({ { "a", { app = "web", tier = "fe" } }, { "b", { app = "web" } },
      { "c", { app = "db" } }, { "d", {} } }) do
      t.post("/api/v1/namespaces/default/configmaps", H.configmap(spec[1], { n = tostring(i) }, spec[2]))
    end
  end)

  local function names(path)
    local r = t.get(path)
    assert.equal(200, r.status)
    local out = {}
    for _, it in ipairs(r.json.items) do out[#out + 1] = it.metadata.name end
    return table.concat(out, ",")
  end

  it("filters by every label selector operator", function()
    local base = "/api/v1/namespaces/default/configmaps?labelSelector="
    assert.equal("a,b", names(base .. "app%3Dweb"))
    assert.equal("a,b", names(base .. "app%3D%3Dweb"))
    assert.equal("c,d", names(base .. "app%21%3Dweb"))
    assert.equal("a,b,c", names(base .. "app+in+%28web%2Cdb%29"))
    assert.equal("c,d", names(base .. "app+notin+%28web%29"))
    assert.equal("a", names(base .. "tier"))
    assert.equal("b,c,d", names(base .. "%21tier"))
    assert.equal("b", names(base .. "app%3Dweb%2C%21tier"))
    assert.equal(400, t.get(base .. "app%3D%3D%3Dx").status)
  end)

  it("filters by field selectors", function()
    assert.equal("b", names("/api/v1/namespaces/default/configmaps?fieldSelector=metadata.name%3Db"))
    assert.equal("a,c,d", names("/api/v1/namespaces/default/configmaps?fieldSelector=metadata.name%21%3Db"))
    assert.equal("a,b,c,d", names("/api/v1/configmaps?fieldSelector=metadata.namespace%3D%3Ddefault"))
    assert.equal("", names("/api/v1/configmaps?fieldSelector=metadata.namespace%3Dkube-system"))
  end)

  it("pages with limit and continue", function()
    local r = t.get("/api/v1/namespaces/default/configmaps?limit=3")
    assert.equal(3, #r.json.items)
    assert.equal(1, r.json.metadata.remainingItemCount)
    local tok = r.json.metadata.continue
    assert.truthy(tok)
    local r2 = t.get("/api/v1/namespaces/default/configmaps?limit=3&continue=" .. tok)
    assert.equal(1, #r2.json.items)
    assert.equal("d", r2.json.items[1].metadata.name)
    assert.is_nil(r2.json.metadata.continue)
  end)
end)

describe("sim API: tables", function()
  local t
  before_each(function() t = H.new() end)

  it("prints Deployment columns as a Table", function()
    t.post("/apis/apps/v1/namespaces/default/deployments", H.deployment("web"))
    local r = t.get("/apis/apps/v1/namespaces/default/deployments", { accept = H.TABLE_ACCEPT })
    assert.equal("application/json;as=Table;v=v1;g=meta.k8s.io", r.headers["Content-Type"])
    assert.equal("Table", r.json.kind)
    local cols = {}
    for i, c in ipairs(r.json.columnDefinitions) do cols[i] = c.name end
    assert.same({ "Name", "Ready", "Up-to-date", "Available", "Age", "Containers", "Images", "Selector" }, cols)
    assert.equal("name", r.json.columnDefinitions[1].format)
    assert.equal(1, r.json.columnDefinitions[6].priority)
    local row = r.json.rows[1]
    assert.same({ "web", "0/2", 0, 0, "0s", "app", "nginx:1.27", "app=web" }, row.cells)
    assert.equal("PartialObjectMetadata", row.object.kind)
    assert.equal("web", row.object.metadata.name)
    t.loop.advance(125)
    local one = t.get("/apis/apps/v1/namespaces/default/deployments/web", { accept = H.TABLE_ACCEPT })
    assert.equal(1, #one.json.rows)
    assert.equal("2m5s", one.json.rows[1].cells[5])
  end)

  it("uses the generic Name/Created At table for kinds without a printer", function()
    t.post("/apis/rbac.authorization.k8s.io/v1/clusterroles", { metadata = { name = "system:view-x" }, rules = {} })
    local r = t.get("/apis/rbac.authorization.k8s.io/v1/clusterroles", { accept = H.TABLE_ACCEPT })
    assert.equal("Created At", r.json.columnDefinitions[2].name)
    assert.equal("date", r.json.columnDefinitions[2].type)
    assert.truthy(r.json.rows[1].cells[2]:match("Z$"))
  end)

  it("formats ages as kubectl does", function()
    local tables = require "atom.sim.tables"
    assert.equal("0s", tables.human_duration(0))
    assert.equal("119s", tables.human_duration(119))
    assert.equal("2m", tables.human_duration(120))
    assert.equal("9m59s", tables.human_duration(599))
    assert.equal("10m", tables.human_duration(600))
    assert.equal("3h", tables.human_duration(3 * 3600))
    assert.equal("3h5m", tables.human_duration(3 * 3600 + 300))
    assert.equal("47h", tables.human_duration(47 * 3600))
    assert.equal("2d", tables.human_duration(48 * 3600))
    assert.equal("<invalid>", tables.human_duration(-5))
  end)
end)

describe("sim API: deletion", function()
  local t
  before_each(function() t = H.new() end)

  it("deletes at once without finalizers and waits for finalizers otherwise", function()
    t.post("/api/v1/namespaces/default/configmaps", H.configmap("a"))
    local d = t.delete("/api/v1/namespaces/default/configmaps/a", { propagationPolicy = "Background" })
    assert.equal(200, d.status)
    assert.equal(404, t.get("/api/v1/namespaces/default/configmaps/a").status)
    assert.equal(404, t.delete("/api/v1/namespaces/default/configmaps/a").status)

    local cm = H.configmap("f")
    cm.metadata.finalizers = { "example.com/hold" }
    t.post("/api/v1/namespaces/default/configmaps", cm)
    local d2 = t.delete("/api/v1/namespaces/default/configmaps/f")
    assert.equal(200, d2.status)
    assert.truthy(d2.json.metadata.deletionTimestamp)
    local live = t.get("/api/v1/namespaces/default/configmaps/f").json
    assert.truthy(live.metadata.deletionTimestamp)
    -- a new finalizer cannot be added while deleting
    local add = t.patch("/api/v1/namespaces/default/configmaps/f",
      { metadata = { finalizers = { "example.com/hold", "x/y" } } }, "application/merge-patch+json")
    assert.equal(422, add.status)
    local rm = t.patch("/api/v1/namespaces/default/configmaps/f", [[{"metadata":{"finalizers":null}}]],
      "application/merge-patch+json")
    assert.equal(200, rm.status)
    assert.equal(404, t.get("/api/v1/namespaces/default/configmaps/f").status)
  end)

  it("checks delete preconditions", function()
    t.post("/api/v1/namespaces/default/configmaps", H.configmap("a"))
    local r = t.delete("/api/v1/namespaces/default/configmaps/a", { preconditions = { uid = "nope" } })
    assert.equal(409, r.status)
    assert.equal(200, t.get("/api/v1/namespaces/default/configmaps/a").status)
  end)

  local function owned(kind_path, name, owner)
    local cm = H.configmap(name)
    cm.metadata.ownerReferences = { { apiVersion = "v1", kind = "ConfigMap", name = owner.metadata.name,
      uid = owner.metadata.uid, blockOwnerDeletion = true } }
    return t.post(kind_path, cm).json
  end

  it("garbage-collects dependents in the background", function()
    local base = "/api/v1/namespaces/default/configmaps"
    local owner = t.post(base, H.configmap("owner")).json
    local child = owned(base, "child", owner)
    owned(base, "grandchild", child)
    t.delete(base .. "/owner", { propagationPolicy = "Background" })
    assert.equal(404, t.get(base .. "/child").status)
    assert.equal(404, t.get(base .. "/grandchild").status)
  end)

  it("collects a dependent by its owner after its ownerReferences changed", function()
    local base = "/api/v1/namespaces/default/configmaps"
    local first = t.post(base, H.configmap("first")).json
    local second = t.post(base, H.configmap("second")).json
    owned(base, "child", first)
    local moved = t.patch(base .. "/child", { metadata = { ownerReferences = { { apiVersion = "v1",
      kind = "ConfigMap", name = "second", uid = second.metadata.uid } } } }, "application/merge-patch+json")
    assert.equal(200, moved.status)
    t.delete(base .. "/first", { propagationPolicy = "Background" })
    assert.equal(200, t.get(base .. "/child").status)
    t.delete(base .. "/second", { propagationPolicy = "Background" })
    assert.equal(404, t.get(base .. "/child").status)
  end)

  it("orphans dependents on Orphan", function()
    local base = "/api/v1/namespaces/default/configmaps"
    local owner = t.post(base, H.configmap("owner")).json
    owned(base, "child", owner)
    t.delete(base .. "/owner", { propagationPolicy = "Orphan" })
    local c = t.get(base .. "/child")
    assert.equal(200, c.status)
    assert.is_nil(c.json.metadata.ownerReferences)
  end)

  it("deletes dependents first on Foreground, waiting on their finalizers", function()
    local base = "/api/v1/namespaces/default/configmaps"
    local owner = t.post(base, H.configmap("owner")).json
    local cm = H.configmap("child")
    cm.metadata.finalizers = { "example.com/hold" }
    cm.metadata.ownerReferences = { { apiVersion = "v1", kind = "ConfigMap", name = "owner", uid = owner.metadata.uid } }
    t.post(base, cm)
    local d = t.delete(base .. "/owner", { propagationPolicy = "Foreground" })
    assert.equal(200, d.status)
    local o = t.get(base .. "/owner").json
    assert.truthy(o.metadata.deletionTimestamp)
    assert.same({ "foregroundDeletion" }, o.metadata.finalizers)
    t.patch(base .. "/child", '{"metadata":{"finalizers":null}}', "application/merge-patch+json")
    assert.equal(404, t.get(base .. "/child").status)
    assert.equal(404, t.get(base .. "/owner").status)
  end)

  it("terminates a namespace and everything in it", function()
    t.post("/api/v1/namespaces", { metadata = { name = "team" } })
    t.post("/api/v1/namespaces/team/configmaps", H.configmap("a"))
    t.post("/apis/apps/v1/namespaces/team/deployments", H.deployment("web"))
    local d = t.delete("/api/v1/namespaces/team")
    assert.equal(200, d.status)
    assert.equal("Terminating", d.json.status.phase)
    local forbidden = t.post("/api/v1/namespaces/team/configmaps", H.configmap("b"))
    assert.equal(403, forbidden.status)
    t.loop.advance(1)
    assert.equal(404, t.get("/api/v1/namespaces/team").status)
    assert.equal(0, #t.get("/api/v1/configmaps?fieldSelector=metadata.namespace%3Dteam").json.items)
    assert.equal(0, #t.get("/apis/apps/v1/deployments").json.items)
  end)

  it("deletes a collection by label", function()
    local base = "/api/v1/namespaces/default/configmaps"
    t.post(base, H.configmap("a", nil, { x = "1" }))
    t.post(base, H.configmap("b", nil, { x = "1" }))
    t.post(base, H.configmap("c"))
    local r = t.delete(base .. "?labelSelector=x%3D1")
    assert.equal(200, r.status)
    assert.equal(2, #r.json.items)
    assert.equal(1, #t.get(base).json.items)
  end)
end)

describe("sim API: custom resources", function()
  local t
  before_each(function() t = H.new() end)

  local crd = {
    apiVersion = "apiextensions.k8s.io/v1", kind = "CustomResourceDefinition",
    metadata = { name = "widgets.example.com" },
    spec = { group = "example.com", scope = "Namespaced",
      names = { plural = "widgets", singular = "widget", kind = "Widget", shortNames = { "wd" } },
      versions = { { name = "v1", served = true, storage = true,
        schema = { openAPIV3Schema = { type = "object" } },
        subresources = { status = {} },
        additionalPrinterColumns = { { name = "State", type = "string", jsonPath = ".status.state" },
          { name = "Size", type = "integer", jsonPath = ".spec.size" } } } } },
  }

  it("serves a CRD's kind once established, with its printer columns", function()
    local r = t.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    assert.equal(201, r.status)
    local rl = t.get("/apis/example.com/v1")
    assert.equal(200, rl.status)
    assert.equal("widgets", rl.json.resources[1].name)
    assert.truthy(t.get("/openapi/v3").json.paths["apis/example.com/v1"])
    local w = t.post("/apis/example.com/v1/namespaces/default/widgets",
      { apiVersion = "example.com/v1", kind = "Widget", metadata = { name = "w1" }, spec = { size = 3 } })
    assert.equal(201, w.status)
    t.patch("/apis/example.com/v1/namespaces/default/widgets/w1/status", { status = { state = "Ready" } },
      "application/merge-patch+json")
    local tb = t.get("/apis/example.com/v1/namespaces/default/widgets", { accept = H.TABLE_ACCEPT })
    assert.same({ "w1", "Ready", 3 }, tb.json.rows[1].cells)
    assert.equal(415, t.patch("/apis/example.com/v1/namespaces/default/widgets/w1", { spec = { size = 4 } },
      "application/strategic-merge-patch+json").status)
    -- deleting the CRD removes its instances and its endpoints
    t.delete("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com")
    assert.equal(404, t.get("/apis/example.com/v1/namespaces/default/widgets").status)
    assert.equal(404, t.get("/apis/example.com/v1").status)
  end)

  it("without a status subresource, bumps generation on any change but metadata", function()
    local plain = require("atom.sim.util").copy(crd)
    plain.spec.versions[1].subresources = nil
    assert.equal(201, t.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", plain).status)
    local url = "/apis/example.com/v1/namespaces/default/widgets/w1"
    t.post("/apis/example.com/v1/namespaces/default/widgets",
      { apiVersion = "example.com/v1", kind = "Widget", metadata = { name = "w1" }, spec = { size = 3 } })
    local function gen(patch)
      return t.patch(url, patch, "application/merge-patch+json").json.metadata.generation
    end
    assert.equal(1, gen({ metadata = { labels = { x = "y" } } }))
    assert.equal(2, gen({ status = { state = "Ready" } }))
    assert.equal(3, gen({ spec = { size = 4 } }))
    assert.equal(3, gen({ spec = { size = 4 } }))
  end)
end)

describe("sim API: metrics", function()
  it("counts requests by verb, resource and code, with the verbs kube-apiserver uses", function()
    local t = H.new()
    t.get("/api/v1/namespaces/default/configmaps")
    t.get("/api/v1/namespaces/default/configmaps/x")
    t.post("/api/v1/namespaces/default/configmaps", H.configmap("a"))
    t.patch("/api/v1/namespaces/default/configmaps/b?fieldManager=atom", H.configmap("b"),
      "application/apply-patch+yaml")
    local m = t.get("/metrics").body
    assert.truthy(m:find('apiserver_request_total{verb="LIST",resource="configmaps",code="200"} 1', 1, true))
    assert.truthy(m:find('apiserver_request_total{verb="GET",resource="configmaps",code="404"} 1', 1, true))
    assert.truthy(m:find('apiserver_request_total{verb="POST",resource="configmaps",code="201"} 1', 1, true))
    assert.truthy(m:find('apiserver_request_total{verb="APPLY",resource="configmaps",code="201"} 1', 1, true), m)
    assert.truthy(m:find("atom_sim_cpu_seconds_total", 1, true))
    t.post("/atom-sim/reset-metrics")
    assert.falsy(t.get("/metrics").body:find('resource="configmaps"', 1, true))
  end)
end)

describe("sim API: reviews and logs", function()
  it("allows every access review and reports the user", function()
    local t = H.new()
    local r = t.post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
      { apiVersion = "authorization.k8s.io/v1", kind = "SelfSubjectAccessReview",
        spec = { resourceAttributes = { verb = "create", resource = "deployments" } } })
    assert.equal(201, r.status)
    assert.is_true(r.json.status.allowed)
    local w = t.post("/apis/authentication.k8s.io/v1/selfsubjectreviews", { kind = "SelfSubjectReview" }, { user = "alice" })
    assert.equal("alice", w.json.status.userInfo.username)
    assert.equal(405, t.get("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews").status)
  end)

  it("serves pod logs from the controllers' hook", function()
    local t = H.new()
    t.sim.store:create("pods", { metadata = { name = "p", namespace = "default" },
      spec = { containers = { { name = "c", image = "busybox" } } } })
    assert.equal("", t.get("/api/v1/namespaces/default/pods/p/log").body)
    t.sim.pod_logs = function(pod, container) return pod.metadata.name .. "/" .. tostring(container) .. "\n" end
    local r = t.get("/api/v1/namespaces/default/pods/p/log?container=c")
    assert.equal(200, r.status)
    assert.equal("p/c\n", r.body)
    assert.equal(404, t.get("/api/v1/namespaces/default/pods/none/log").status)
  end)
end)

describe("sim API: missing namespaces", function()
  it("reports the namespace on create and apply, the object otherwise", function()
    local t = H.new()
    assert.equal('namespaces "nope" not found', t.post("/api/v1/namespaces/nope/configmaps", H.configmap("a")).json.message)
    local ap = t.req("PATCH", "/api/v1/namespaces/nope/configmaps/a?fieldManager=x",
      { body = H.configmap("a"), ctype = "application/apply-patch+yaml" })
    assert.equal('namespaces "nope" not found', ap.json.message)
    assert.equal('configmaps "a" not found', t.delete("/api/v1/namespaces/nope/configmaps/a").json.message)
    assert.equal('configmaps "a" not found', t.patch("/api/v1/namespaces/nope/configmaps/a", { data = {} },
      "application/merge-patch+json").json.message)
  end)
end)

describe("sim API: node ports", function()
  it("allocates node ports for NodePort services and keeps them on update", function()
    local t = H.new()
    local svc = { metadata = { name = "np" }, spec = { type = "NodePort", ports = { { port = 80 }, { port = 443, nodePort = 31443 } } } }
    local r = t.post("/api/v1/namespaces/default/services", svc).json
    local np = math.tointeger(r.spec.ports[1].nodePort)
    assert.is_true(np >= 30000 and np <= 32767)
    assert.equal(31443, r.spec.ports[2].nodePort)
    local u = t.put("/api/v1/namespaces/default/services/np", svc).json
    assert.equal(np, u.spec.ports[1].nodePort)
    local tb = t.get("/api/v1/namespaces/default/services/np", { accept = H.TABLE_ACCEPT })
    assert.equal("80:" .. np .. "/TCP,443:31443/TCP", tb.json.rows[1].cells[5])
  end)
end)

describe("sim API: versions", function()
  it("stores HPAs as autoscaling/v2 and converts for v1 clients", function()
    local t = H.new()
    local v1 = { apiVersion = "autoscaling/v1", kind = "HorizontalPodAutoscaler", metadata = { name = "web" },
      spec = { scaleTargetRef = { apiVersion = "apps/v1", kind = "Deployment", name = "web" },
        minReplicas = 2, maxReplicas = 5, targetCPUUtilizationPercentage = 70 } }
    local r = t.post("/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers", v1)
    assert.equal(201, r.status)
    assert.equal("autoscaling/v1", r.json.apiVersion)
    assert.equal(70, r.json.spec.targetCPUUtilizationPercentage)
    local v2 = t.get("/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers/web").json
    assert.equal("autoscaling/v2", v2.apiVersion)
    assert.is_nil(v2.spec.targetCPUUtilizationPercentage)
    assert.equal(70, v2.spec.metrics[1].resource.target.averageUtilization)
    local p = t.patch("/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers/web",
      { spec = { targetCPUUtilizationPercentage = 50 } }, "application/merge-patch+json")
    assert.equal(50, p.json.spec.targetCPUUtilizationPercentage)
    assert.equal(50, t.sim.store:get("horizontalpodautoscalers.autoscaling", "default", "web").spec.metrics[1].resource.target.averageUtilization)
  end)
end)

describe("sim API: subresource tables", function()
  it("prints Scale and status subresources as tables", function()
    local t = H.new()
    t.post("/apis/apps/v1/namespaces/default/deployments", H.deployment("web"))
    local s = t.get("/apis/apps/v1/namespaces/default/deployments/web/scale", { accept = H.TABLE_ACCEPT })
    assert.equal("Table", s.json.kind)
    assert.same({ "web", 2, 0 }, s.json.rows[1].cells)
    local st = t.get("/apis/apps/v1/namespaces/default/deployments/web/status", { accept = H.TABLE_ACCEPT })
    assert.equal("Up-to-date", st.json.columnDefinitions[3].name)
  end)
end)

describe("sim API: label validation", function()
  it("rejects bad label keys and values with 422", function()
    local t = H.new()
    local bad_key = t.post("/api/v1/namespaces/default/configmaps", H.configmap("a", nil, { ["bad key!"] = "x" }))
    assert.equal(422, bad_key.status)
    assert.equal("metadata.labels", bad_key.json.details.causes[1].field)
    local bad_val = t.post("/api/v1/namespaces/default/configmaps", H.configmap("b", nil, { ok = "-x-" }))
    assert.equal(422, bad_val.status)
    local good = t.post("/api/v1/namespaces/default/configmaps",
      H.configmap("c", nil, { ["app.kubernetes.io/name"] = "web", ["x"] = "" }))
    assert.equal(201, good.status)
  end)
end)

describe("sim API: list resourceVersion", function()
  it("refuses a resourceVersion from the future and expired exact reads", function()
    local t = H.new({ history_cap = 2 })
    for i = 1, 5 do t.post("/api/v1/namespaces/default/configmaps", H.configmap("c" .. i)) end
    local rv = tonumber(t.get("/api/v1/namespaces/default/configmaps").json.metadata.resourceVersion)
    assert.equal(200, t.get("/api/v1/namespaces/default/configmaps?resourceVersion=" .. rv).status)
    assert.equal(200, t.get("/api/v1/namespaces/default/configmaps?resourceVersion=0").status)
    local fut = t.get("/api/v1/namespaces/default/configmaps?resourceVersion=" .. (rv + 100))
    assert.equal(504, fut.status)
    assert.equal("ResourceVersionTooLarge", fut.json.details.causes[1].reason)
    local old = t.get("/api/v1/namespaces/default/configmaps?resourceVersionMatch=Exact&resourceVersion=1")
    assert.equal(410, old.status)
  end)
end)

describe("sim store: empty lists written from Lua", function()
  it("never serves a list field as an empty object", function()
    local t = H.new()
    local pod = { metadata = { name = "p", namespace = "default" },
      spec = { containers = { { name = "c", image = "x", ports = {} } }, volumes = {} }, status = { conditions = {} } }
    local o = assert(t.sim.store:create("pods", pod))
    assert.is_nil(o.spec.volumes)
    assert.is_nil(o.spec.containers[1].ports)
    local r = t.get("/api/v1/namespaces/default/pods/p")
    assert.falsy(r.body:find('"volumes":{}', 1, true))
    assert.falsy(r.body:find('"conditions":{}', 1, true))
    -- an explicit empty array survives as []
    local c = t.post("/api/v1/namespaces/default/configmaps", '{"metadata":{"name":"x","finalizers":[]}}')
    assert.equal(201, c.status)
  end)
end)
