-- Real kubectl 1.32 against `atom sim`: a CustomResourceDefinition becomes
-- served (Established, in discovery), its additionalPrinterColumns shape
-- `kubectl get`, and a CRD too large for client-side apply is refused the way
-- kube-apiserver refuses it while server-side apply takes it.
local K = require "kubectl.kctl"

local has = K.has

local CRD = [[
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names:
    plural: widgets
    singular: widget
    kind: Widget
    shortNames: [wg]
  versions:
  - name: v1
    served: true
    storage: true
    additionalPrinterColumns:
    - name: Size
      type: integer
      jsonPath: .spec.size
    - name: Color
      type: string
      jsonPath: .spec.color
    - name: Age
      type: date
      jsonPath: .metadata.creationTimestamp
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
              color: {type: string}
]]

local WIDGET = [[
apiVersion: example.com/v1
kind: Widget
metadata:
  name: blue-one
spec:
  size: 3
  color: blue
]]

describe("kubectl with custom resources on atom sim #kubectl", function()
  local s = K.serve({ time_scale = 60 })

  it("serves a new CRD and prints its additionalPrinterColumns", function()
    local crd = K.file(s, "crd.yaml", CRD)
    assert.equal("customresourcedefinition.apiextensions.k8s.io/widgets.example.com created\n",
      K.ok(s, "apply -f " .. crd).stdout)
    K.ok(s, "wait --for=condition=Established --timeout=30s crd/widgets.example.com")
    local j = K.json(K.ok(s, "get crd widgets.example.com -o json").stdout)
    local cond = {}
    for _, c in ipairs(j.status.conditions) do cond[c.type] = c.status end
    assert.equal("True", cond.Established)
    assert.equal("True", cond.NamesAccepted)

    local t = K.table(K.ok(s, "api-resources --api-group=example.com").stdout)
    assert.same({ "widgets", "wg", "example.com/v1", "true", "Widget" }, t.rows[1])

    local w = K.file(s, "widget.yaml", WIDGET)
    assert.equal("widget.example.com/blue-one created\n", K.ok(s, "apply -f " .. w).stdout)
    t = K.table(K.ok(s, "get widgets").stdout)
    assert.same({ "NAME", "SIZE", "COLOR", "AGE" }, t.header)
    assert.same({ "blue-one", "3", "blue" }, { t.rows[1][1], t.rows[1][2], t.rows[1][3] })
    t = K.table(K.ok(s, "get wg blue-one").stdout)
    assert.equal("blue-one", t.rows[1][1])
    assert.equal("widget.example.com/blue-one unchanged\n", K.ok(s, "apply -f " .. w).stdout)
  end)

  it("deleting the CRD stops serving its kind", function()
    K.ok(s, "delete crd widgets.example.com --wait=true")
    -- With its discovery cache kubectl still maps the kind; the list is a 404.
    local r = s:kubectl("get widgets")
    assert.equal(1, r.code)
    assert.truthy(has(r.stderr, 'Error from server (NotFound): Unable to list "example.com/v1, Resource=widgets"'),
      r.stderr)
    -- A fresh cache sees the kind is gone from discovery.
    local home = s.dir .. "/fresh-home"
    os.execute("mkdir -p " .. K.quote(home))
    r = s:kubectl("get widgets", { env = { "HOME=" .. home } })
    assert.equal(1, r.code)
    assert.equal('error: the server doesn\'t have a resource type "widgets"\n', r.stderr)
  end)

  it("refuses a CRD whose last-applied annotation is too long, and takes it server side", function()
    local f = K.fixtures() .. "/prometheus-operator/03-crd-alertmanagerconfigs-large.yaml"
    local r = s:kubectl("apply -f " .. f)
    assert.equal(1, r.code)
    assert.truthy(has(r.stderr, 'The CustomResourceDefinition "alertmanagerconfigs.monitoring.coreos.com" is invalid: ' ..
      "metadata.annotations: Too long: "), r.stderr)
    assert.truthy(has(r.stderr, "262144 bytes"), r.stderr)
    assert.equal(1, s:kubectl("get crd alertmanagerconfigs.monitoring.coreos.com").code)
    r = K.ok(s, "apply --server-side -f " .. f)
    assert.equal("customresourcedefinition.apiextensions.k8s.io/alertmanagerconfigs.monitoring.coreos.com serverside-applied\n",
      r.stdout)
    K.ok(s, "wait --for=condition=Established --timeout=30s crd/alertmanagerconfigs.monitoring.coreos.com")
  end)
end)
