-- Which kinds `atom run` watches while it waits, counted by the sim's /metrics: kinds that
-- are ready once they exist (no built-in check, no override, no atom.conditions) are ready
-- from the apply's answer and get no watch; the others are still watched and waited for.
local S = require "release.support"

-- ConfigMaps and Secrets with one Deployment; EXTRA adds a ConfigMap `gated` that is ready
-- only through an override (GATE=override: once its data has ready=yes) or an
-- atom.conditions annotation (GATE=annotation: a condition a ConfigMap never gets).
local RELEASE = [[
local atom = require "atom"
local gate = atom.env("GATE", "")
local objects = {
  { apiVersion = "apps/v1", kind = "Deployment", metadata = { name = "web" },
    spec = { replicas = 1, selector = { matchLabels = { app = "web" } },
      template = { metadata = { labels = { app = "web" } },
        spec = { containers = { { name = "web", image = "nginx:1.27" } } } } } },
}
for i = 1, 3 do
  objects[#objects + 1] = { apiVersion = "v1", kind = "ConfigMap", metadata = { name = "cm" .. i }, data = { i = tostring(i) } }
  objects[#objects + 1] = { apiVersion = "v1", kind = "Secret", metadata = { name = "s" .. i }, data = { k = "dg==" } }
end
local readiness
if gate == "override" then
  objects[#objects + 1] = { apiVersion = "v1", kind = "ConfigMap", metadata = { name = "gated" }, data = { ready = "no" } }
  readiness = { ["ConfigMap/gated"] = function(obj)
    if obj.data and obj.data.ready == "yes" then return "ready", "gate open" end
    return "progressing", "gate closed"
  end }
elseif gate == "annotation" then
  objects[#objects + 1] = { apiVersion = "v1", kind = "ConfigMap",
    metadata = { name = "gated", annotations = { ["atom.conditions"] = "Synced=True" } }, data = {} }
end
return { name = "shop", namespace = "shop", deadline = tonumber(atom.env("DEADLINE", "30")),
  objects = objects, readiness = readiness }
]]

describe("atom run watches", function()
  local s, dir
  setup(function()
    s = S.sim({ ready_after = 0.5 })
    dir = S.script(RELEASE)
    -- The first release of a cluster also installs (and watches) the Atom CRD: not counted.
    local r = S.atom(s, "run " .. dir .. "/release.lua -q", { timeout = 60 })
    assert.are.equal(0, r.code, r.stderr)
  end)
  teardown(function() if s then s.stop() end end)

  local function reset()
    local r = s:curl("-X POST " .. s.url .. "/atom-sim/reset-metrics")
    assert.are.equal(0, r.code, r.stderr)
  end

  -- resource -> number of WATCH requests since the last reset
  local function watches()
    local out = {}
    local text = s:curl(s.url .. "/metrics").stdout
    for labels, n in text:gmatch("apiserver_request_total{([^}]*)} (%d+)") do
      if labels:find('verb="WATCH"', 1, true) then
        local res = labels:match('resource="([^"]*)"')
        out[res] = (out[res] or 0) + tonumber(n)
      end
    end
    return out
  end

  local function sorted_keys(t)
    local out = {}
    for k in pairs(t) do out[#out + 1] = k end
    table.sort(out)
    return out
  end

  it("watches only the Deployments and the Atom when the rest is ready once it exists", function()
    reset()
    local r = S.atom(s, "run " .. dir .. "/release.lua -q", { timeout = 60 })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("version 2 Running %(7 objects ready%)", r.stdout)
    local w = watches()
    assert.are.same({ "atoms", "deployments" }, sorted_keys(w))
    assert.are.equal(1, w.deployments)
    -- and `atom resume`-style waits still see them exist: the objects are there
    assert.are.same({ "cm1", "cm2", "cm3" }, S.names(s, "configmaps", "shop"))
  end)

  it("still watches and waits for a ConfigMap with a readiness override", function()
    reset()
    local bg = S.bg(s, "run " .. dir .. "/release.lua -q", { env = { "GATE=override" } })
    -- the release waits on the gate: it is Updating and stays so until the data changes
    assert.truthy(S.eventually(function() return S.state(s, "shop", "shop") == "Updating" end, 30), bg.stderr())
    assert.truthy(S.eventually(function() return (watches().configmaps or 0) >= 1 end, 10))
    S.sleep(0.5)
    assert.are.equal("Updating", S.state(s, "shop", "shop"))
    local p = s:curl("-X PATCH -H 'Content-Type: application/merge-patch+json' -d '{\"data\":{\"ready\":\"yes\"}}' "
      .. s.url .. "/api/v1/namespaces/shop/configmaps/gated")
    assert.are.equal(0, p.code, p.stderr)
    assert.are.equal(0, bg.wait(60), bg.stderr())
    assert.are.equal("Running", S.state(s, "shop", "shop"))
    local w = watches()
    assert.truthy(w.configmaps and w.configmaps >= 1)
    assert.is_nil(w.secrets)
  end)

  it("still watches and waits for a ConfigMap with an atom.conditions annotation", function()
    reset()
    local r = S.atom(s, "run " .. dir .. "/release.lua", { env = { "GATE=annotation", "DEADLINE=2" }, timeout = 60 })
    -- never ready: Deadline, rolled back to the previous version
    assert.are.equal(3, r.code, r.stderr)
    assert.matches("ConfigMap/shop/gated", r.stderr .. r.stdout)
    local w = watches()
    assert.truthy(w.configmaps and w.configmaps >= 1)
    assert.is_nil(w.secrets)
  end)

  -- Their apply answers are not decoded (only existence counts), unless the answer shows
  -- more than existence: a ConfigMap held by a finalizer while it is deleted is not ready.
  it("does not take a ConfigMap being deleted as ready from the apply's answer", function()
    local cm = s.url .. "/api/v1/namespaces/shop/configmaps/cm1"
    local p = s:curl("-X PATCH -H 'Content-Type: application/merge-patch+json' "
      .. "-d '{\"metadata\":{\"finalizers\":[\"example.com/hold\"]}}' " .. cm)
    assert.are.equal(0, p.code, p.stderr)
    assert.are.equal(0, s:curl("-X DELETE " .. cm).code)
    local r = S.atom(s, "run " .. dir .. "/release.lua", { env = { "DEADLINE=2" }, timeout = 60 })
    assert.are_not.equal(0, r.code, r.stderr)
    assert.matches("ConfigMap/shop/cm1: terminating", r.stderr .. r.stdout)
    s:curl("-X PATCH -H 'Content-Type: application/merge-patch+json' -d '{\"metadata\":{\"finalizers\":null}}' " .. cm)
  end)
end)
