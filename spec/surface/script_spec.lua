-- Loading and validating release scripts: no cluster involved.
local tree = require "surface.tree"
local script = require "atom.release.script"

local DEPLOY = [[
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      containers:
        - name: web
          image: ${image}
]]

describe("atom.release.script.load", function()
  local trees = tree.scope()
  local load = trees.load
  teardown(trees.remove_all)

  it("builds the release table with defaults, objects from YAML and Lua, sources and digest", function()
    local text = [[
local atom = require "atom"
return {
  name = "shop",
  namespace = "shop",
  objects = {
    atom.yaml("manifests/*.yaml", { image = "nginx:1.27" }),
    { { apiVersion = "v1", kind = "ConfigMap",
        metadata = { name = "settings" }, data = { mode = "fast" } } },
  },
}
]]
    local r, _, dir = load({ ["release.lua"] = text, ["manifests/a.yaml"] = DEPLOY .. "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\n" })
    assert.is_table(r)
    assert.equal("shop", r.name)
    assert.equal("shop", r.namespace)
    assert.equal(300, r.deadline)
    assert.equal(300, r.rollback_deadline)
    assert.equal(10, r.history_limit)
    assert.equal(dir, r.dir)
    assert.equal(dir .. "/release.lua", r.script_path)
    assert.equal(require("atom.core").sha256_hex(text), r.script_digest)
    assert.equal(3, #r.objects)
    assert.equal("nginx:1.27", r.objects[1].object.spec.template.spec.containers[1].image)
    assert.equal(dir .. "/manifests/a.yaml:1", r.objects[1].source)
    assert.equal(dir .. "/manifests/a.yaml:12", r.objects[2].source)
    assert.equal("Service", r.objects[2].object.kind)
    assert.equal(dir .. "/release.lua:8", r.objects[3].source)
    assert.equal(50000000, r.limits.instructions)
    assert.equal(300, r.limits.hook_seconds)
  end)

  it("lets flags override the script's limits and namespace", function()
    local r = load({ ["release.lua"] = [[return { name = "a", namespace = "x", deadline = 20,
      limits = { instructions = 1000000, seconds = 3 },
      objects = { { apiVersion = "v1", kind = "ConfigMap", metadata = { name = "c" } } } }]] },
      { limits = { seconds = 2 }, namespace = "override" })
    assert.equal("override", r.namespace)
    assert.equal(1000000, r.limits.instructions)
    assert.equal(2, r.limits.seconds)
    assert.equal(20, r.limits.hook_seconds)
    assert.equal(20, r.rollback_deadline)
  end)

  local function invalid(files, pattern, opts)
    local r, err = load(files, opts)
    assert.is_nil(r)
    assert.equal("invalid", err.kind)
    assert.matches(pattern, err.message)
    return err
  end

  it("reports bad YAML with file:line:col", function()
    invalid({ ["release.lua"] = [[return { name = "a", objects = { require("atom").yaml("m.yaml") } }]],
      ["m.yaml"] = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [a\n  b: c\n" },
      "m%.yaml:5:%d+: ")
  end)

  it("reports a null or non-scalar mapping key as bad input at its line, without a traceback", function()
    local err = invalid({ ["release.lua"] = [[return { name = "a", objects = { require("atom").yaml("m.yaml") } }]],
      ["m.yaml"] = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  ~: v\n" },
      "m%.yaml:6:3: a mapping key is null %(~%); quote it if it is text$")
    assert.is_nil(err.traceback)
    err = invalid({ ["release.lua"] = [[return { name = "a", objects = { require("atom").yaml("m.yaml") } }]],
      ["m.yaml"] = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  ? [k]\n  : v\n" },
      "m%.yaml:6:5: mapping keys must be scalars$")
    assert.is_nil(err.traceback)
  end)

  it("reports a document without a kind as file:line: document N has no kind", function()
    local err = invalid({ ["release.lua"] = [[return { name = "a", objects = { require("atom").yaml("m.yaml") } }]],
      ["m.yaml"] = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\napiVersion: v1\nmetadata:\n  name: b\n" },
      "m%.yaml:6: document 2 has no kind$")
    assert.is_nil(err.traceback)
  end)

  it("rejects bad names with the object's line", function()
    invalid({ ["release.lua"] = [[return { name = "a", objects = { require("atom").yaml("m.yaml") } }]],
      ["m.yaml"] = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n" },
      "m%.yaml:1: ConfigMap name \"Bad_Name\" is not a valid DNS subdomain")
    invalid({ ["release.lua"] = [[return { name = "a", objects = { require("atom").yaml("m.yaml") } }]],
      ["m.yaml"] = "apiVersion: v1\nkind: Service\nmetadata:\n  name: a.b\n" },
      "m%.yaml:1: Service name \"a.b\" is not a valid DNS label")
    invalid({ ["release.lua"] = "return {\n  name = \"Shop\",\n  objects = {} }" },
      "release%.lua:2: release name \"Shop\" is not a valid DNS label")
    invalid({ ["release.lua"] = "return {\n  name = \"a\",\n  namespace = \"x_y\",\n objects = {} }" },
      "release%.lua:3: namespace \"x_y\" is not a valid DNS label")
  end)

  it("accepts RBAC names with colons", function()
    local r = load({ ["release.lua"] = [[return { name = "a", objects = {
      { apiVersion = "rbac.authorization.k8s.io/v1", kind = "ClusterRole", metadata = { name = "system:atom-reader" } } } }]] })
    assert.is_table(r)
  end)

  it("rejects duplicates naming both places", function()
    invalid({ ["release.lua"] = [[return { name = "a", namespace = "n", objects = {
      require("atom").yaml("m.yaml"),
      { apiVersion = "v1", kind = "ConfigMap", metadata = { name = "c", namespace = "n" } } } }]],
      ["m.yaml"] = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n" },
      "release%.lua:3: duplicate object ConfigMap n/c %(first defined at .*m%.yaml:1%)")
  end)

  it("checks deadline, fields, readiness keys, hooks, policy and limits", function()
    invalid({ ["release.lua"] = "return {\n name = \"a\",\n deadline = -1,\n objects = {} }" },
      "release%.lua:3: deadline must be a positive number")
    invalid({ ["release.lua"] = "return {\n name = \"a\",\n deadine = 3,\n objects = {} }" },
      "release%.lua:3: unknown release field \"deadine\"")
    invalid({ ["release.lua"] = "return {\n name = \"a\",\n objects = { { apiVersion = 'v1', kind = 'ConfigMap', metadata = { name = 'c' } } },\n readiness = {\n  ['Deployment apps'] = function() end } }" },
      "release%.lua:5: readiness override key \"Deployment apps\"")
    invalid({ ["release.lua"] = "return {\n name = \"a\",\n objects = { { apiVersion = 'v1', kind = 'ConfigMap', metadata = { name = 'c' } } },\n readiness = {\n  ConfigMap = 'ready' } }" },
      "readiness override \"ConfigMap\" must be a function")
    invalid({ ["release.lua"] = "return {\n name = \"a\",\n objects = { { apiVersion = 'v1', kind = 'ConfigMap', metadata = { name = 'c' } } },\n hooks = { before = {\n  Updateing = function() end } } }" },
      "release%.lua:5: hooks%.before%.Updateing is not a state")
    invalid({ ["release.lua"] = "return {\n name = \"a\",\n objects = { { apiVersion = 'v1', kind = 'ConfigMap', metadata = { name = 'c' } } },\n policy = 'sometimes' }" },
      "release%.lua:4: unknown policy \"sometimes\"")
    invalid({ ["release.lua"] = "return {\n name = \"a\",\n objects = { { apiVersion = 'v1', kind = 'ConfigMap', metadata = { name = 'c' } } },\n limits = { instructions = 0 } }" },
      "release%.lua:4: limits%.instructions must be a positive number")
  end)

  it("checks the atom.conditions annotation at load time", function()
    invalid({ ["release.lua"] = [[return { name = "a", objects = { require("atom").yaml("m.yaml") } }]],
      ["m.yaml"] = "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n  annotations:\n    atom.conditions: Ready=Maybe\n" },
      "m%.yaml:1: Widget/w: atom%.conditions: malformed clause")
  end)

  it("reports script errors as file:line with a traceback and a missing return", function()
    local err = invalid({ ["release.lua"] = "local function f(x)\n  return x.y\nend\nreturn { name = f(nil) }\n" },
      "^[^\n]*release%.lua:2: attempt to index a nil value %(local 'x'%)\nstack traceback:\n")
    assert.matches("release%.lua:4: in main chunk", err.message)
    assert.not_matches("atom%.host%.call", err.message)
    assert.matches("stack traceback", err.traceback)
    invalid({ ["release.lua"] = "local x = 1\n" }, "release%.lua:1: the script must return the release table, got nothing")
    invalid({ ["release.lua"] = "return {\n name = 'a' \n objects = {} }" }, "release%.lua:3: .*expected")
  end)

  it("reports a placeholder without a value at its line", function()
    invalid({ ["release.lua"] = [[return { name = "a", objects = { require("atom").yaml("m.yaml", { }) } }]],
      ["m.yaml"] = DEPLOY }, "m%.yaml:10: placeholder ${image} has no value")
  end)

  it("fills nested placeholders, keeps $${...} literal, expands kind: List", function()
    local r = load({ ["release.lua"] = [[return { name = "a", objects = {
      require("atom").yaml("m.yaml", { image = { repo = "nginx", tag = 1.27 }, debug = false }) } }]],
      ["m.yaml"] = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: a\n"
        .. "  data:\n    image: ${image.repo}:${image.tag}\n    debug: \"${debug}\"\n    shell: $${HOME}\n"
        .. "- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: b\n" })
    assert.is_table(r)
    assert.equal(2, #r.objects)
    assert.same({ image = "nginx:1.27", debug = "false", shell = "${HOME}" }, r.objects[1].object.data)
    assert.equal("b", r.objects[2].object.metadata.name)
    assert.matches("m%.yaml:1$", r.objects[2].source)
  end)

  it("reads YAML outside the folder only with allow_read_outside", function()
    local outside = trees.make({ ["shared.yaml"] = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared\n" })
    local text = 'return { name = "a", objects = { require("atom").yaml("' .. outside .. '/shared.yaml") } }'
    invalid({ ["release.lua"] = text }, "reads outside the release folder .* %(run with %-%-allow%-read%-outside to allow it%)")
    local r = load({ ["release.lua"] = text }, { allow_read_outside = true })
    assert.equal(outside .. "/shared.yaml:1", r.objects[1].source)
  end)

  it("reports a glob that matches nothing", function()
    invalid({ ["release.lua"] = "return {\n name = 'a',\n objects = { require('atom').yaml('none/*.yaml') } }" },
      "release%.lua:3: atom%.yaml%(\"none/%*%.yaml\"%) matches no files")
  end)
end)

describe("custom resources whose CRD is in the release", function()
  local dir
  teardown(function() tree.remove(dir) end)

  it("wait for a controller when the CRD declares status.conditions", function()
    dir = tree.make({ ["release.lua"] = [[
return { name = "w", objects = {
  { apiVersion = "apiextensions.k8s.io/v1", kind = "CustomResourceDefinition",
    metadata = { name = "widgets.example.com" },
    spec = { group = "example.com", scope = "Namespaced",
      names = { kind = "Widget", plural = "widgets", singular = "widget", listKind = "WidgetList" },
      versions = {
        { name = "v1", served = true, storage = true, schema = { openAPIV3Schema = { type = "object",
          properties = { status = { type = "object", properties = { conditions = { type = "array" } } } } } } },
        { name = "v0", served = true, storage = false, schema = { openAPIV3Schema = { type = "object" } } },
      } } },
  { apiVersion = "example.com/v1", kind = "Widget", metadata = { name = "w" } },
} }]] })
    local r = assert(script.load(dir .. "/release.lua"))
    local w = { apiVersion = "example.com/v1", kind = "Widget", metadata = { name = "w" } }
    local state, msg = r:check(w)
    assert.equal("progressing", state)
    assert.equal("waiting for the controller to report status", msg)
    assert.equal("ready", (r:check(w, { expects_conditions = false })))
    assert.equal("ready", (r:check({ apiVersion = "example.com/v0", kind = "Widget", metadata = { name = "w" } })))
  end)
end)
