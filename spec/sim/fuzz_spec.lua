-- Throws a few thousand malformed or random requests at the sim, then checks it still serves
-- normal requests correctly. Deterministic (fixed seed).
local H = require "sim.sim_helper"

describe("sim robustness", function()
  it("survives malformed requests and keeps answering", function()
    local t = H.new()
    t.post("/api/v1/namespaces/default/configmaps", H.configmap("keep"))
    local seed = 12345
    local function rnd(n)
      seed = (seed * 1103515245 + 12345) % 2147483648
      return seed % n + 1
    end
    local paths = { "/api/v1/namespaces/default/configmaps", "/api/v1/namespaces/default/configmaps/keep",
      "/apis/apps/v1/namespaces/default/deployments", "/apis/apps/v1/namespaces/default/deployments/x/scale",
      "/api/v1/namespaces/default/pods/p/status", "/api/v1/namespaces", "/apis", "/api/v1/nodes/sim-node-1",
      "/apis/apps/v1/namespaces/%zz/deployments", "/api/v1/namespaces/default/configmaps/keep/extra/more",
      "/openapi/v3/apis/nope", "/apis/example.com/v1/widgets", "//", "/api/v1/namespaces/default/configmaps/" }
    local bodies = { "{", "[]", "null", "1", '"s"', '{"metadata":5}', '{"metadata":{"name":7}}',
      '{"metadata":{"name":"x"},"data":[1,2]}', '[{"op":"bogus"}]', '[{"op":"remove","path":"/a/b/c"}]',
      '{"spec":{"template":{"spec":{"containers":"nope"}}}}', '{"metadata":{"name":"x","labels":{"a":5}}}',
      string.rep("[", 2000), '{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x"},"spec":{}}',
      '{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"y","ownerReferences":[{"uid":1}],"finalizers":"x"}}' }
    local methods = { "GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS" }
    local ctypes = { "application/json", "application/merge-patch+json", "application/json-patch+json",
      "application/strategic-merge-patch+json", "application/apply-patch+yaml", "text/plain" }
    local queries = { "", "watch=true", "labelSelector=%28%28", "fieldSelector=a~b", "limit=-1", "continue=zzz",
      "fieldManager=fz", "fieldManager=fz&force=true", "resourceVersion=abc&watch=1", "dryRun=All",
      "labelSelector=a+in+%28b", "timeoutSeconds=x&watch=true" }
    local counts = {}
    for _ = 1, 3000 do
      local body = bodies[rnd(#bodies)]
      if rnd(4) == 1 then
        local chars = {}
        for j = 1, rnd(40) do chars[j] = string.char(rnd(256) - 1) end
        body = table.concat(chars)
      end
      local resp = t.sim:handle({ method = methods[rnd(#methods)], path = paths[rnd(#paths)],
        query = queries[rnd(#queries)], headers = { ["content-type"] = ctypes[rnd(#ctypes)],
          accept = rnd(2) == 1 and H.TABLE_ACCEPT or "application/json" },
        body = body, stream = 10000 + rnd(50) })
      assert.is_number(resp.status)
      assert.is_true(resp.stream == true or type(resp.body) == "string")
      counts[resp.status] = (counts[resp.status] or 0) + 1
    end
    t.loop.advance(10)
    assert.is_nil(counts[500], "internal errors: " .. table.concat(t.sim.errors, "\n"))
    local r = t.get("/api/v1/namespaces/default/configmaps/keep")
    if r.status == 200 then
      assert.equal("keep", r.json.metadata.name)
    else
      assert.equal(404, r.status) -- a random DELETE may legitimately have removed it
    end
    local c = t.post("/api/v1/namespaces/default/configmaps", H.configmap("after"))
    assert.equal(201, c.status)
    assert.equal("after", t.get("/api/v1/namespaces/default/configmaps/after").json.metadata.name)
    local l = t.get("/api/v1/namespaces/default/configmaps")
    assert.equal(200, l.status)
    assert.equal("ConfigMapList", l.json.kind)
  end)
end)
