local H = require "sim.sim_helper"
local patch = require "atom.sim.patch"

local DEP = "/apis/apps/v1/namespaces/default/deployments"

local function containers(obj)
  local out = {}
  for _, c in ipairs(obj.spec.template.spec.containers) do out[#out + 1] = c.name .. "=" .. c.image end
  return table.concat(out, ",")
end

describe("patch: JSON merge patch", function()
  it("merges maps, deletes nulls, replaces lists", function()
    local out = patch.merge_patch({ a = { b = 1, c = 2 }, l = { 1, 2 } },
      require("atom.sim.util").decode('{"a":{"b":null,"d":3},"l":[9]}'))
    assert.same({ a = { c = 2, d = 3 }, l = { 9 } }, out)
  end)
end)

describe("patch: JSON patch", function()
  it("applies add/remove/replace/move/copy/test", function()
    local doc = { metadata = { labels = { a = "1" } }, spec = { list = { "x", "y" } } }
    local out, err = patch.json_patch(doc, {
      { op = "add", path = "/metadata/labels/b~1c", value = "2" },
      { op = "replace", path = "/metadata/labels/a", value = "9" },
      { op = "add", path = "/spec/list/1", value = "mid" },
      { op = "add", path = "/spec/list/-", value = "end" },
      { op = "remove", path = "/spec/list/0" },
      { op = "copy", from = "/metadata/labels/a", path = "/spec/copied" },
      { op = "move", from = "/spec/copied", path = "/spec/moved" },
      { op = "test", path = "/spec/moved", value = "9" },
    })
    assert.is_nil(err)
    assert.same({ a = "9", ["b/c"] = "2" }, out.metadata.labels)
    assert.same({ "mid", "y", "end" }, out.spec.list)
    assert.equal("9", out.spec.moved)
    assert.is_nil(out.spec.copied)
    assert.same({ "x", "y" }, doc.spec.list)
  end)

  it("fails cleanly on a missing path or failed test", function()
    local _, err = patch.json_patch({ a = 1 }, { { op = "remove", path = "/b" } })
    assert.truthy(err:find("missing path", 1, true))
    _, err = patch.json_patch({ a = 1 }, { { op = "test", path = "/a", value = 2 } })
    assert.truthy(err:find("test failed", 1, true))
  end)

  it("is served with 422 on failure", function()
    local t = H.new()
    t.post(DEP, H.deployment("web"))
    local r = t.patch(DEP .. "/web", { { op = "replace", path = "/spec/replicas", value = 4 } }, "application/json-patch+json")
    assert.equal(200, r.status)
    assert.equal(4, r.json.spec.replicas)
    local bad = t.patch(DEP .. "/web", { { op = "remove", path = "/spec/nothing" } }, "application/json-patch+json")
    assert.equal(422, bad.status)
  end)
end)

describe("patch: strategic merge patch", function()
  local t
  before_each(function()
    t = H.new()
    t.post(DEP, H.deployment("web", { containers = {
      { name = "app", image = "nginx:1", env = { { name = "A", value = "1" }, { name = "B", value = "2" } },
        ports = { { containerPort = 80 } } },
      { name = "sidecar", image = "envoy:1" } } }))
  end)

  it("merges containers by name and keeps the others", function()
    local r = t.patch(DEP .. "/web", {
      spec = { template = { spec = {
        ["$setElementOrder/containers"] = { { name = "app" }, { name = "sidecar" } },
        containers = { { name = "app", image = "nginx:2" } } } } } }, "application/strategic-merge-patch+json")
    assert.equal(200, r.status)
    assert.equal("app=nginx:2,sidecar=envoy:1", containers(r.json))
    local app = r.json.spec.template.spec.containers[1]
    assert.equal(2, #app.env)
    assert.equal(80, app.ports[1].containerPort)
  end)

  it("merges env by name and ports by containerPort", function()
    local r = t.patch(DEP .. "/web", { spec = { template = { spec = { containers = {
      { name = "app", env = { { name = "B", value = "22" }, { name = "C", value = "3" } },
        ports = { { containerPort = 443 } } } } } } } }, "application/strategic-merge-patch+json")
    local app = r.json.spec.template.spec.containers[1]
    local env = {}
    for _, e in ipairs(app.env) do env[#env + 1] = e.name .. "=" .. e.value end
    assert.equal("A=1,B=22,C=3", table.concat(env, ","))
    assert.equal(2, #app.ports)
  end)

  it("honours $patch: delete, $patch: replace and $retainKeys", function()
    local r = t.patch(DEP .. "/web", { spec = { template = { spec = {
      containers = { { name = "sidecar", ["$patch"] = "delete" } } } } } }, "application/strategic-merge-patch+json")
    assert.equal("app=nginx:1", containers(r.json))
    r = t.patch(DEP .. "/web", { spec = { strategy = { ["$retainKeys"] = { "type" }, type = "Recreate" } } },
      "application/strategic-merge-patch+json")
    assert.same({ type = "Recreate" }, r.json.spec.strategy)
    r = t.patch(DEP .. "/web", { spec = { template = { spec = { containers = {
      { name = "only", image = "x:1" }, { ["$patch"] = "replace" } } } } } }, "application/strategic-merge-patch+json")
    assert.equal("only=x:1", containers(r.json))
  end)

  it("deletes map keys with null and replaces lists without a merge key", function()
    local r = t.patch(DEP .. "/web", '{"metadata":{"labels":{"app":null,"x":"y"}},"spec":{"template":{"spec":{"containers":[{"name":"app","args":["a","b"]}]}}}}',
      "application/strategic-merge-patch+json")
    assert.same({ x = "y" }, r.json.metadata.labels)
    r = t.patch(DEP .. "/web", { spec = { template = { spec = { containers = { { name = "app", args = { "c" } } } } } } },
      "application/strategic-merge-patch+json")
    assert.same({ "c" }, r.json.spec.template.spec.containers[1].args)
  end)

  it("reorders with $setElementOrder", function()
    local r = t.patch(DEP .. "/web", { spec = { template = { spec = {
      ["$setElementOrder/containers"] = { { name = "sidecar" }, { name = "app" } } } } } },
      "application/strategic-merge-patch+json")
    assert.equal("sidecar=envoy:1,app=nginx:1", containers(r.json))
  end)
end)

describe("patch: server-side apply", function()
  local t
  local APPLY = "application/apply-patch+yaml"
  before_each(function() t = H.new() end)

  local function apply(obj, manager, force)
    local q = "?fieldManager=" .. manager .. "&fieldValidation=Strict&force=" .. tostring(force or false)
    return t.req("PATCH", DEP .. "/web" .. q, { body = obj, ctype = APPLY })
  end

  local function manager(obj, name, op)
    for _, m in ipairs(obj.metadata.managedFields or {}) do
      if m.manager == name and (not op or m.operation == op) then return m end
    end
  end

  it("requires a field manager", function()
    local r = t.patch(DEP .. "/web", H.deployment("web"), APPLY)
    assert.equal(400, r.status)
    assert.truthy(r.json.message:find("fieldManager", 1, true))
  end)

  it("creates when absent, then updates, tracking owned fields", function()
    local r = apply(H.deployment("web"), "kubectl")
    assert.equal(201, r.status)
    local m = manager(r.json, "kubectl", "Apply")
    assert.truthy(m)
    assert.equal("apps/v1", m.apiVersion)
    assert.same({}, m.fieldsV1["f:spec"]["f:replicas"])
    local c = m.fieldsV1["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"app"}']
    assert.same({}, c["."])
    assert.same({}, c["f:image"])
    assert.same({}, c["f:ports"]['k:{"containerPort":80,"protocol":"TCP"}']["f:containerPort"])
    assert.is_nil(m.fieldsV1["f:metadata"]["f:name"])
    local r2 = apply(H.deployment("web", { replicas = 3 }), "kubectl")
    assert.equal(200, r2.status)
    assert.equal(3, r2.json.spec.replicas)
    assert.equal(2, r2.json.metadata.generation)
  end)

  it("reports conflicts with another manager and takes them with force", function()
    apply(H.deployment("web"), "kubectl")
    local r = apply(H.deployment("web", { replicas = 5 }), "other")
    assert.equal(409, r.status)
    assert.equal("Conflict", r.json.reason)
    assert.equal('Apply failed with 1 conflict: conflict with "kubectl": .spec.replicas', r.json.message)
    assert.equal("FieldManagerConflict", r.json.details.causes[1].reason)
    assert.equal(".spec.replicas", r.json.details.causes[1].field)
    assert.equal('conflict with "kubectl"', r.json.details.causes[1].message)
    local f = apply(H.deployment("web", { replicas = 5 }), "other", true)
    assert.equal(200, f.status)
    assert.equal(5, f.json.spec.replicas)
    assert.is_nil(manager(f.json, "kubectl", "Apply").fieldsV1["f:spec"]["f:replicas"])
    assert.truthy(manager(f.json, "other", "Apply").fieldsV1["f:spec"]["f:replicas"])
  end)

  it("shares ownership when the value is the same", function()
    apply(H.deployment("web"), "kubectl")
    local r = apply(H.deployment("web"), "other")
    assert.equal(200, r.status)
    assert.truthy(manager(r.json, "kubectl", "Apply").fieldsV1["f:spec"]["f:replicas"])
    assert.truthy(manager(r.json, "other", "Apply").fieldsV1["f:spec"]["f:replicas"])
  end)

  it("conflicts with an Update manager such as a merge patch", function()
    apply(H.deployment("web"), "kubectl")
    t.req("PATCH", DEP .. "/web/scale?fieldManager=hpa", { body = { spec = { replicas = 9 } }, ctype = "application/merge-patch+json" })
    local r = apply(H.deployment("web", { replicas = 2 }), "kubectl")
    assert.equal(409, r.status)
    assert.truthy(r.json.message:find('conflict with "hpa"', 1, true))
  end)

  it("prunes fields the manager dropped unless someone else owns them", function()
    local d = H.deployment("web", { containers = { { name = "app", image = "a:1" }, { name = "side", image = "s:1" } } })
    d.metadata.labels.extra = "yes"
    d.spec.selector.matchLabels.extra = nil
    apply(d, "kubectl")
    local d2 = H.deployment("web", { containers = { { name = "app", image = "a:1" } } })
    local r = apply(d2, "kubectl")
    assert.equal(200, r.status)
    assert.equal("app=a:1", containers(r.json))
    assert.is_nil(r.json.metadata.labels.extra)
    -- a label someone else set survives this manager's applies
    t.patch(DEP .. "/web?fieldManager=labeler", { metadata = { labels = { team = "x" } } }, "application/merge-patch+json")
    local r3 = apply(d2, "kubectl")
    assert.equal("x", r3.json.metadata.labels.team)
  end)

  it("records a before-first-apply owner for objects created without managed fields", function()
    local d = H.deployment("web")
    t.sim.store:create("deployments.apps", d)
    local r = apply(H.deployment("web", { replicas = 4 }), "kubectl")
    assert.equal(409, r.status)
    assert.truthy(r.json.message:find("before-first-apply", 1, true))
  end)

  it("rejects apply bodies with managedFields or a different kind", function()
    local d = H.deployment("web")
    d.metadata.managedFields = { { manager = "x" } }
    assert.equal(400, apply(d, "kubectl").status)
    local cm = H.configmap("web")
    assert.equal(400, apply(cm, "kubectl").status)
  end)

  it("accepts dryRun without storing", function()
    local r = t.req("PATCH", DEP .. "/web?fieldManager=kubectl&dryRun=All", { body = H.deployment("web"), ctype = APPLY })
    assert.equal(201, r.status)
    assert.equal(404, t.get(DEP .. "/web").status)
  end)

  it("computes field sets with list keys and sets", function()
    local ctx = { kind = "Deployment" }
    local set = patch.fieldset({ metadata = { name = "x", finalizers = { "a/b" } },
      spec = { template = { spec = { containers = { { name = "c", env = { { name = "E", value = "1" } } } } } } } }, ctx)
    assert.truthy(set["f:metadata\nf:finalizers\nv:\"a\\/b\""] or set['f:metadata\nf:finalizers\nv:"a/b"'])
    assert.truthy(set['f:spec\nf:template\nf:spec\nf:containers\nk:{"name":"c"}\nf:env\nk:{"name":"E"}\nf:value'])
    assert.is_nil(set["f:metadata\nf:name"])
  end)

  it("builds the same FieldsV1 trie straight from the object as from its field set", function()
    local util = require "atom.sim.util"
    local objs = {
      { kind = "Deployment", metadata = { name = "x", labels = { app = "x" }, finalizers = { "a/b", "c" },
          ownerReferences = { { uid = "u1", name = "o" } } },
        spec = { replicas = 2, selector = { matchLabels = { app = "x" } }, empty = {},
          template = { metadata = { labels = { app = "x" } }, spec = {
            containers = { { name = "c", image = "i", env = { { name = "E", value = "1" }, { name = "F" } },
              ports = { { containerPort = 80 }, { containerPort = 53, protocol = "UDP" } },
              args = util.array(), resources = {} }, "not a map" },
            nodeSelector = { disk = "ssd" }, volumes = util.array() } } },
        status = { replicas = 2, conditions = { { type = "Available", status = "True" } } } },
      { kind = "Service", metadata = { name = "s", annotations = { a = "b" } },
        spec = { selector = { app = "x" }, ports = { { port = 80, name = "http" } } } },
      { kind = "ConfigMap", metadata = { name = "only-skipped", namespace = "n" }, data = {} },
    }
    for _, obj in ipairs(objs) do
      for _, with_status in ipairs({ false, true }) do
        for _, crd in ipairs({ false, true }) do
          local ctx = { kind = obj.kind, crd = crd }
          assert.same(patch.to_fields_v1(patch.fieldset(obj, ctx, with_status)),
            patch.fields_trie(obj, ctx, with_status))
        end
      end
    end
  end)
end)

describe("patch: client-side to server-side apply upgrade", function()
  it("does not report conflicts on fields the last-applied annotation lists", function()
    local t = H.new()
    local d = H.deployment("web")
    local ann = require("atom.sim.util").encode(d)
    d.metadata.annotations = { ["kubectl.kubernetes.io/last-applied-configuration"] = ann }
    t.req("POST", DEP .. "?fieldManager=kubectl-client-side-apply", { body = d })
    local r = t.req("PATCH", DEP .. "/web?fieldManager=kubectl&force=false",
      { body = H.deployment("web", { replicas = 4 }), ctype = "application/apply-patch+yaml" })
    assert.equal(200, r.status)
    assert.equal(4, r.json.spec.replicas)
    -- a manager other than client-side apply still conflicts
    local r2 = t.req("PATCH", DEP .. "/web?fieldManager=other&force=false",
      { body = H.deployment("web", { replicas = 6 }), ctype = "application/apply-patch+yaml" })
    assert.equal(409, r2.status)
  end)

  it("takes managedFields a client writes explicitly", function()
    local t = H.new()
    t.req("POST", DEP .. "?fieldManager=kubectl-create", { body = H.deployment("web") })
    local mf = { { manager = "migrated", operation = "Apply", apiVersion = "apps/v1", fieldsType = "FieldsV1",
      fieldsV1 = { ["f:spec"] = { ["f:replicas"] = {} } } } }
    local r = t.patch(DEP .. "/web", { { op = "replace", path = "/metadata/managedFields", value = mf } },
      "application/json-patch+json")
    assert.equal(200, r.status)
    assert.equal(1, #r.json.metadata.managedFields)
    assert.equal("migrated", r.json.metadata.managedFields[1].manager)
  end)
end)

describe("patch: idempotent apply", function()
  it("does not bump the resourceVersion when an apply changes nothing", function()
    local t = H.new()
    local function apply(obj)
      return t.req("PATCH", DEP .. "/web?fieldManager=kubectl&force=false",
        { body = obj, ctype = "application/apply-patch+yaml" })
    end
    local a = apply(H.deployment("web")).json
    t.loop.advance(5)
    local b = apply(H.deployment("web")).json
    assert.equal(a.metadata.resourceVersion, b.metadata.resourceVersion)
    assert.same(a.metadata.managedFields, b.metadata.managedFields)
    local c = apply(H.deployment("web", { replicas = 3 })).json
    assert.is_true(tonumber(c.metadata.resourceVersion) > tonumber(b.metadata.resourceVersion))
  end)
end)
