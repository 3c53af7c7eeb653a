-- atom.kube against the real simulated cluster (`atom sim --tls`): the same
-- client the release engine uses, over TLS with the kubeconfig the sim
-- writes, with faults injected through the sim's scenario endpoint.
local simh = require "helpers.sim"
local kube = require "atom.kube"

local function usable()
  local f = io.open(simh.bin(), "rb")
  if not f then return false end
  f:close()
  return simh.have_api()
end

local function deployment(name, replicas)
  return { apiVersion = "apps/v1", kind = "Deployment", metadata = { name = name, namespace = "default" },
    spec = { replicas = replicas or 1, selector = { matchLabels = { app = name } },
      template = { metadata = { labels = { app = name } },
        spec = { containers = { { name = "c", image = "nginx:1.27" } } } } } }
end

local function available(d)
  for _, c in ipairs(d and d.status and d.status.conditions or {}) do
    if c.type == "Available" and c.status == "True" then return true end
  end
  return false
end

if not usable() then
  describe("atom.kube against atom sim", function()
    pending("needs a built atom binary (ATOM_BIN) with the simulated cluster")
  end)
  return
end

describe("atom.kube against atom sim", function()
  local s, c
  setup(function()
    s = simh.start { tls = true, ready_after = 0 }
    c = assert(kube.connect { kubeconfig = s.kubeconfig,
      http = { retries = 6, backoff = 0.02, backoff_max = 0.2, retry_window = 10, timeout = 10 } })
  end)
  teardown(function()
    if c then c:close() end
    if s then s.stop() end
  end)

  local function scenario(text)
    local status = c:request { method = "POST", path = "/atom-sim/scenario", body = text, content_type = "text/plain" }
    assert.are.equal(200, status)
  end

  it("applies a Deployment and watches it become Available", function()
    local w = assert(c:watch("apps/v1", "Deployment", "default", { fieldSelector = "metadata.name=web" }))
    assert.truthy(c:apply(deployment("web", 2), { force = true }))
    local ready = false
    for _ = 1, 50 do
      for _, ev in ipairs(c:poll(0.2)) do
        if ev.watcher == w and available(ev.object) then ready = true end
      end
      if ready then break end
    end
    assert.is_true(ready)
    w:close()
  end)

  it("survives a 503 burst and a 429 with Retry-After", function()
    scenario [[return { faults = {
      { verb = "list", resource = "configmaps", status = 503, count = 3 },
      { verb = "get", resource = "configmaps", status = 429, retry_after = 1, count = 1 } } }]]
    assert.truthy(c:apply({ apiVersion = "v1", kind = "ConfigMap", metadata = { name = "cm" }, data = { a = "1" } },
      { force = true }))
    local items = assert(c:list("v1", "ConfigMap", "default"))
    assert.is_true(#items >= 1)
    local cm = assert(c:get("v1", "ConfigMap", "default", "cm"))
    assert.are.equal("1", cm.data.a)
    c:request { method = "DELETE", path = "/atom-sim/scenario" }
  end)

  it("resumes a watch the sim drops, without replaying what was seen", function()
    scenario [[return { faults = { { verb = "watch", drop_watch_after = 0.3, count = 1 } } }]]
    local w = assert(c:watch("v1", "ConfigMap", "default"))
    assert.truthy(c:apply({ apiVersion = "v1", kind = "ConfigMap", metadata = { name = "d1" }, data = { a = "1" } },
      { force = true }))
    local seen = {}
    local function drain(secs)
      for _ = 1, secs * 5 do
        for _, ev in ipairs(c:poll(0.2)) do
          local n = ev.object.metadata.name
          seen[n] = (seen[n] or 0) + 1
        end
      end
    end
    drain(1)   -- the drop happens in here
    assert.truthy(c:apply({ apiVersion = "v1", kind = "ConfigMap", metadata = { name = "d2" }, data = { a = "1" } },
      { force = true }))
    drain(1)
    assert.are.equal(1, seen.d1)
    assert.are.equal(1, seen.d2)
    assert.is_true(w.streams >= 2)
    w:close()
    c:request { method = "DELETE", path = "/atom-sim/scenario" }
  end)

  it("says which kind the server does not know", function()
    local _, err = c:get("example.com/v1", "Gadget", "default", "g")
    assert.are.equal(404, err.code)
    assert.matches('kind "Gadget"', tostring(err))
    assert.matches(s.url, tostring(err), 1, true)
  end)

  it("reports a failed delete of an absent object as absent", function()
    assert.are.equal("absent", c:delete("v1", "ConfigMap", "default", "never-was"))
  end)

  -- idle() may pump, and the completions it takes can empty the window: the rest must still
  -- be sent. With a window of 2 and an idle that drains everything in flight, the loop used
  -- to stop after the first requests and leave the others unsent.
  it("request_many sends every request even when idle drains the window", function()
    local reqs = {}
    for i = 1, 12 do
      reqs[i] = { method = "GET", path = "/api/v1/namespaces/default/configmaps", what = "list " .. i }
    end
    local seen = 0
    local results = c:request_many(reqs, 2, function() seen = seen + 1 end, function()
      while c:pump(0.05) > 0 do end
    end)
    assert.are.equal(12, seen)
    for i = 1, 12 do assert.are.equal(200, results[i] and results[i].status, "request " .. i) end
  end)
end)
