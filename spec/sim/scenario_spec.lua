local H = require "sim.sim_helper"

local CM = "/api/v1/namespaces/default/configmaps"

describe("scenarios", function()
  it("matches object rules by kind, name, labels and image glob, later rules winning", function()
    local t = H.new({ ready_after = 2 })
    assert(t.sim:load_scenario([[
      return { rules = {
        { kind = "Deployment", name = "web*", ready_after = 5 },
        { labels = { tier = "slow" }, never_ready = true },
        { image = "*:broken", crash_loop = true },
        { kind = "Deployment", name = "web-2", ready_after = 9 },
      } }]], "=test"))
    local sc = t.sim.scenario
    local dep = H.deployment("web-1")
    dep.kind = "Deployment"
    assert.equal(5, sc:rule_for(dep).ready_after)
    dep.metadata.name = "web-2"
    assert.equal(9, sc:rule_for(dep).ready_after)
    dep.metadata.name = "api"
    assert.equal(2, sc:rule_for(dep).ready_after)
    dep.metadata.labels = { tier = "slow" }
    assert.is_true(sc:rule_for(dep).never_ready)
    local pod = { kind = "Pod", metadata = { name = "p" }, spec = { containers = { { name = "c", image = "app:broken" } } } }
    assert.is_true(sc:rule_for(pod).crash_loop)
    pod.spec.containers[1].image = "nginx:does-not-exist"
    assert.is_true(sc:rule_for(pod).image_pull_fails)
    pod.spec.containers[1].image = "nginx:1.27"
    assert.is_nil(sc:rule_for(pod).image_pull_fails)
  end)

  it("injects counted API faults with Retry-After and latency", function()
    local t = H.new()
    assert(t.sim:load_scenario([[
      return { faults = {
        { verb = "create", resource = "configmaps", status = 429, retry_after = 2, count = 2 },
        { verb = "list", resource = "configmaps", latency = 0.5 },
      } }]]))
    local r = t.post(CM, H.configmap("a"))
    assert.equal(429, r.status)
    assert.equal("2", r.headers["Retry-After"])
    assert.equal("TooManyRequests", r.json.reason)
    assert.equal(429, t.post(CM, H.configmap("a")).status)
    assert.equal(201, t.post(CM, H.configmap("a")).status)
    local l = t.get(CM)
    assert.equal(200, l.status)
    assert.equal(0.5, l.delay)
    assert.is_nil(t.get("/api/v1/namespaces/default/secrets").delay)
  end)

  it("fails a deterministic fraction of requests", function()
    local src = [[return { seed = 42, faults = { { verb = "get", status = 503, fraction = 0.5 } } }]]
    local function run()
      local t = H.new()
      assert(t.sim:load_scenario(src))
      local out = {}
      for i = 1, 40 do out[i] = t.get(CM .. "/x").status == 503 and "F" or "." end
      return table.concat(out)
    end
    local a, b = run(), run()
    assert.equal(a, b)
    local fails = select(2, a:gsub("F", ""))
    assert.is_true(fails > 5 and fails < 35)
  end)

  it("expires and drops watches", function()
    local t = H.new()
    t.sim:load_scenario([[return { faults = { { verb = "watch", resource = "configmaps", expire = true, count = 1 },
      { verb = "watch", resource = "secrets", drop_watch_after = 3 } } }]])
    local w = t.get(CM .. "?watch=true&resourceVersion=1")
    t.loop.advance(0)
    local evs = t.loop.events(w.stream_id)
    assert.equal("ERROR", evs[1].type)
    assert.equal(410, evs[1].object.code)
    local ws = t.get("/api/v1/namespaces/default/secrets?watch=true")
    t.loop.advance(2)
    assert.is_nil(t.loop.finished[ws.stream_id])
    t.loop.advance(2)
    assert.is_true(t.loop.finished[ws.stream_id])
  end)

  it("loads and clears scenarios over HTTP, refusing bad ones", function()
    local t = H.new()
    local r = t.post("/atom-sim/scenario", [[return { faults = { { verb = "get", status = 500 } } }]])
    assert.equal(200, r.status)
    assert.equal(500, t.get(CM .. "/x").status)
    assert.equal(200, t.delete("/atom-sim/scenario").status)
    assert.equal(404, t.get(CM .. "/x").status)
    assert.equal(400, t.post("/atom-sim/scenario", "return {").status)
    assert.equal(400, t.post("/atom-sim/scenario", "return os.exit()").status)
  end)

  it("records ready times for the benchmark endpoint", function()
    local t = H.new()
    t.sim:mark_ready("deployments.apps", { metadata = { name = "web", namespace = "default" } })
    local r = t.get("/atom-sim/ready-times")
    assert.equal(1, #r.json)
    assert.equal("web", r.json[1].name)
    assert.equal("deployments.apps", r.json[1].rk)
    assert.equal(t.loop.wall(), r.json[1].at)
  end)
end)

describe("scenario path faults", function()
  it("can fail discovery by path without touching resource requests", function()
    local t = H.new()
    t.sim:load_scenario([[return { faults = { { path = "^/apis$", status = 503, count = 1 } } }]])
    assert.equal(200, t.get(CM).status)
    assert.equal(503, t.get("/apis").status)
    assert.equal(200, t.get("/apis").status)
    assert.equal(200, t.get("/version").status)
  end)
end)
