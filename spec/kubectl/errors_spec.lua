-- Real kubectl 1.32 against `atom sim`: the failures a release tool must
-- recognise, with the exit codes and the reason strings kube-apiserver gives
-- (../shared/reference/kubernetes-api.md section 6).
local K = require "kubectl.kctl"

local has = K.has

describe("kubectl sees real-server errors from atom sim #kubectl", function()
  local s = K.serve({ time_scale = 60 })

  it("server-side apply by another manager conflicts unless forced", function()
    local f1 = K.file(s, "owned.yaml", K.configmap("owned", { key = "one" }))
    K.ok(s, "apply --server-side --field-manager=alpha -f " .. f1)
    local f2 = K.file(s, "owned2.yaml", K.configmap("owned", { key = "two" }))
    local r = s:kubectl("apply --server-side --field-manager=beta -f " .. f2)
    assert.equal(1, r.code)
    assert.truthy(has(r.stderr, 'error: Apply failed with 1 conflict: conflict with "alpha": .data.key\n'), r.stderr)
    assert.truthy(has(r.stderr, "--force-conflicts"), r.stderr)
    assert.equal("one", K.json(K.ok(s, "get configmap owned -o json").stdout).data.key)
    r = K.ok(s, "apply --server-side --field-manager=beta --force-conflicts -f " .. f2)
    assert.equal("configmap/owned serverside-applied\n", r.stdout)
    assert.equal("two", K.json(K.ok(s, "get configmap owned -o json").stdout).data.key)
  end)

  it("warns about a finalizer without a domain, as a 1.27+ server does", function()
    local f = K.file(s, "fin.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fin\n  finalizers: [cleanup]\n")
    local r = K.ok(s, "apply --server-side -f " .. f)
    assert.truthy(has(r.stderr, 'Warning: metadata.finalizers: "cleanup": prefer a domain-qualified finalizer name ' ..
      "to avoid accidental conflicts with other finalizer writers"), r.stderr)
    assert.is_false(has(K.ok(s, "get configmap fin").stderr, "Warning"))
  end)

  it("names an updater with the apiVersion it used", function()
    local f = K.file(s, "upd.yaml", K.configmap("upd", { key = "one" }))
    K.ok(s, "create -f " .. f)
    local f2 = K.file(s, "upd2.yaml", K.configmap("upd", { key = "two" }))
    local r = s:kubectl("apply --server-side -f " .. f2)
    assert.equal(1, r.code)
    assert.truthy(has(r.stderr, 'conflict with "kubectl-create" using v1: .data.key'), r.stderr)
  end)

  it("kubectl scale owns .spec.replicas through the scale subresource", function()
    local f = K.file(s, "scaled.yaml", K.deployment("scaled", { replicas = 1 }))
    K.ok(s, "apply --server-side -f " .. f)
    K.ok(s, "scale deployment/scaled --replicas=2")
    local r = s:kubectl("apply --server-side -f " .. f)
    assert.equal(1, r.code)
    assert.truthy(has(r.stderr, 'error: Apply failed with 1 conflict: conflict with "kubectl" with subresource "scale" ' ..
      "using apps/v1: .spec.replicas\n"), r.stderr)
    K.ok(s, "apply --server-side --force-conflicts -f " .. f)
    local d = K.json(K.ok(s, "get deployment scaled -o json --show-managed-fields").stdout)
    assert.equal(1, d.spec.replicas)
    for _, m in ipairs(d.metadata.managedFields) do assert.is_nil(m.subresource, m.manager) end
  end)

  it("replace with a stale resourceVersion is a Conflict", function()
    local f = K.file(s, "stale.yaml", K.configmap("stale", { a = "1" }))
    K.ok(s, "create -f " .. f)
    local old = K.file(s, "stale-old.yaml", K.ok(s, "get configmap stale -o yaml").stdout)
    K.ok(s, "label configmap stale bumped=yes")
    local r = s:kubectl("replace -f " .. old)
    assert.equal(1, r.code)
    assert.equal('Error from server (Conflict): error when replacing "' .. old ..
      '": Operation cannot be fulfilled on configmaps "stale": the object has been modified; ' ..
      "please apply your changes to the latest version and try again\n", r.stderr)
  end)

  it("create of an existing object is AlreadyExists", function()
    local f = s.dir .. "/stale.yaml"
    local r = s:kubectl("create -f " .. f)
    assert.equal(1, r.code)
    assert.equal('Error from server (AlreadyExists): error when creating "' .. f ..
      '": configmaps "stale" already exists\n', r.stderr)
  end)

  it("changing a Deployment's selector is Invalid and names the field", function()
    local f = K.file(s, "imm.yaml", K.deployment("imm", { replicas = 1 }))
    K.ok(s, "apply -f " .. f)
    local f2 = K.file(s, "imm2.yaml", K.deployment("imm", { replicas = 1, selector = "other" }))
    local r = s:kubectl("apply -f " .. f2)
    assert.equal(1, r.code)
    assert.equal('The Deployment "imm" is invalid: spec.selector: Invalid value: ' ..
      'v1.LabelSelector{MatchLabels:map[string]string{"app":"other"}, ' ..
      "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable\n", r.stderr)
    r = s:kubectl("apply --server-side --force-conflicts -f " .. f2)
    assert.equal(1, r.code)
    assert.truthy(has(r.stderr, 'The Deployment "imm" is invalid: spec.selector'), r.stderr)
  end)

  it("an unknown kind has no mapping and an unknown resource type is refused", function()
    local f = K.file(s, "nope.yaml",
      "apiVersion: example.com/v1\nkind: Nope\nmetadata:\n  name: thing\n")
    for _, mode in ipairs({ "", "--server-side " }) do
      local r = s:kubectl("apply " .. mode .. "-f " .. f)
      assert.equal(1, r.code)
      assert.truthy(has(r.stderr, 'no matches for kind "Nope" in version "example.com/v1"'), r.stderr)
      assert.truthy(has(r.stderr, "ensure CRDs are installed first"), r.stderr)
    end
    local r = s:kubectl("get nopes")
    assert.equal(1, r.code)
    assert.equal('error: the server doesn\'t have a resource type "nopes"\n', r.stderr)
  end)

  it("refuses the removed batch/v1beta1 CronJob", function()
    local f = K.fixtures() .. "/k8s-website-examples/legacy/cronjob-batch-v1beta1.yaml"
    local r = s:kubectl("apply --server-side -f " .. f)
    assert.is_not.equal(0, r.code)
    assert.truthy(has(r.stderr, 'no matches for kind "CronJob" in version "batch/v1beta1"'), r.stderr)
    assert.same({}, K.json(K.ok(s, "get cronjobs -A -o json").stdout).items)
  end)

  it("refuses objects in a namespace that does not exist", function()
    local f = K.file(s, "lost.yaml", K.configmap("lost", { a = "1" }))
    local r = s:kubectl("apply -n missing -f " .. f)
    assert.equal(1, r.code)
    assert.truthy(has(r.stderr, 'namespaces "missing" not found'), r.stderr)
  end)

  it("a Deployment whose image does not exist never becomes Available and exceeds its deadline", function()
    local f = K.file(s, "bad.yaml", K.deployment("bad", { replicas = 1, deadline = 10, image = "nginx:does-not-exist" }))
    K.ok(s, "apply --server-side -f " .. f)
    local r = s:kubectl("rollout status deployment/bad --timeout=30s")
    assert.equal(1, r.code)
    assert.truthy(has(r.stderr, 'error: deployment "bad" exceeded its progress deadline'), r.stderr)
    r = s:kubectl("wait --for=condition=Available deployment/bad --timeout=1s")
    assert.equal(1, r.code)
    assert.truthy(has(r.stderr, "timed out waiting for the condition on deployments/bad"), r.stderr)
    local d = K.json(K.ok(s, "get deployment bad -o json").stdout)
    local cond = {}
    for _, c in ipairs(d.status.conditions) do cond[c.type] = c end
    assert.equal("False", cond.Progressing.status)
    assert.equal("ProgressDeadlineExceeded", cond.Progressing.reason)
    assert.equal("False", cond.Available.status)
    local pods = K.table(K.ok(s, "get pods -l app=bad").stdout)
    assert.equal(1, #pods.rows)
    assert.truthy(pods.rows[1][3] == "ImagePullBackOff" or pods.rows[1][3] == "ErrImagePull", pods.rows[1][3])
  end)
end)
