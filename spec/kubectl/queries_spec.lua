-- Real kubectl 1.32 against `atom sim`: list paging, selectors, output
-- formats, dry runs, deletes that wait and namespace deletion, judged by
-- kubectl's output and exit codes.
local sim = require "helpers.sim"
local K = require "kubectl.kctl"

local has = K.has

local function names(text)
  local out = {}
  for _, row in ipairs(K.table(text).rows) do out[#out + 1] = row[1] end
  table.sort(out)
  return out
end

describe("kubectl queries against atom sim #kubectl", function()
  local s

  setup(function()
    s = sim.start({ time_scale = 60 })
    for i = 1, 5 do
      K.ok(s, string.format("create configmap c%d --from-literal=k=%d", i, i))
      K.ok(s, string.format("label configmap c%d idx=%d", i, i))
    end
  end)

  teardown(function()
    if s then s.stop() end
  end)

  it("pages a list with limit/continue and prints one table", function()
    local r = K.ok(s, "get configmaps -l idx --chunk-size=2 -v=6")
    local _, pages = r.stderr:gsub("configmaps%?[^ ]*limit=2", "")
    assert.equal(3, pages, r.stderr)
    assert.truthy(has(r.stderr, "continue="), r.stderr)
    assert.same({ "c1", "c2", "c3", "c4", "c5" }, names(r.stdout))
  end)

  it("filters by label selectors with every operator and by field selector", function()
    assert.same({ "c1", "c3" }, names(K.ok(s, "get configmaps -l 'idx in (1,3)'").stdout))
    assert.same({ "c2", "c4", "c5" }, names(K.ok(s, "get configmaps -l 'idx notin (1,3),idx'").stdout))
    assert.same({ "c1", "c3", "c4", "c5" }, names(K.ok(s, "get configmaps -l 'idx!=2,idx'").stdout))
    assert.same({ "c2" }, names(K.ok(s, "get configmaps -l idx==2").stdout))
    local none = K.ok(s, "get configmaps -l '!idx,nothing'")
    assert.equal("", none.stdout)
    assert.equal("No resources found in default namespace.\n", none.stderr)
    assert.same({ "c4" }, names(K.ok(s, "get configmaps --field-selector metadata.name=c4").stdout))
    local bad = s:kubectl("get configmaps -l 'idx in ('")
    assert.equal(1, bad.code)
  end)

  it("prints jsonpath, custom columns and names", function()
    assert.equal("3", K.ok(s, "get configmap c3 -o jsonpath={.data.k}").stdout)
    local t = K.table(K.ok(s, "get configmaps -l idx -o custom-columns=NAME:.metadata.name,K:.data.k " ..
      "--sort-by=.metadata.name").stdout)
    assert.same({ "NAME", "K" }, t.header)
    assert.same({ "c5", "5" }, t.rows[5])
    assert.equal("configmap/c1\n", K.ok(s, "get configmap c1 -o name").stdout)
  end)

  it("a server dry run answers like a create and stores nothing", function()
    local r = K.ok(s, "create configmap dry --from-literal=a=b --dry-run=server -o json")
    local j = K.json(r.stdout)
    assert.equal("dry", j.metadata.name)
    assert.truthy(j.metadata.uid)
    local g = s:kubectl("get configmap dry")
    assert.equal(1, g.code)
    assert.equal('Error from server (NotFound): configmaps "dry" not found\n', g.stderr)
  end)

  it("deletes by selector and waits for deletion", function()
    assert.equal('configmap "c5" deleted\n', K.ok(s, "delete configmaps -l idx=5").stdout)
    K.ok(s, "wait --for=delete configmap/c5 --timeout=5s")
    local r = K.ok(s, "delete configmaps -l idx=5")
    assert.equal("No resources found\n", r.stdout .. r.stderr)
  end)

  it("logs of a missing pod is NotFound", function()
    local r = s:kubectl("logs nopod")
    assert.equal(1, r.code)
    assert.truthy(has(r.stderr, 'pods "nopod" not found'), r.stderr)
  end)

  it("deleting a namespace deletes what is in it", function()
    K.ok(s, "create namespace doomed")
    K.ok(s, "apply -n doomed -f " .. K.file(s, "d.yaml", K.deployment("inside", { replicas = 1 })))
    K.ok(s, "rollout status -n doomed deployment/inside --timeout=30s")
    assert.equal('namespace "doomed" deleted\n', K.ok(s, "delete namespace doomed --wait=true --timeout=30s").stdout)
    local r = s:kubectl("get namespace doomed")
    assert.equal(1, r.code)
    local left = K.json(K.ok(s, "get deployments,replicasets,pods -A -o json").stdout)
    for _, o in ipairs(left.items) do
      assert.is_not.equal("doomed", o.metadata.namespace, o.kind .. " " .. o.metadata.name)
    end
  end)

  it("get -w on a Deployment sees it MODIFIED by a scale", function()
    K.ok(s, "apply -f " .. K.file(s, "w.yaml", K.deployment("watched", { replicas = 1 })))
    K.ok(s, "rollout status deployment/watched --timeout=30s")
    local r = s:kubectl("get deployment watched --watch --output-watch-events --request-timeout=2s & " ..
      "sleep 0.7; kubectl scale deployment/watched --replicas=2 >/dev/null; wait $!")
    assert.equal(0, r.code, r.stderr)
    local t = K.table(r.stdout)
    assert.same({ "EVENT", "NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE" }, t.header)
    assert.same({ "ADDED", "watched", "1/1" }, { t.rows[1][1], t.rows[1][2], t.rows[1][3] })
    local final = t.rows[#t.rows]
    assert.same({ "MODIFIED", "watched", "2/2" }, { final[1], final[2], final[3] })
  end)

  it("serves health, version and metrics as raw paths", function()
    assert.equal("ok", K.ok(s, "get --raw /readyz").stdout)
    assert.equal("32", K.json(K.ok(s, "get --raw /version").stdout).minor)
    local m = K.ok(s, "get --raw /metrics").stdout
    assert.truthy(m:match('apiserver_request_total{[^}]*resource="configmaps"[^}]*} %d+'), m:sub(1, 400))
  end)
end)
