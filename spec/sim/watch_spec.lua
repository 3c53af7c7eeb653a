local H = require "sim.sim_helper"

local CM = "/api/v1/namespaces/default/configmaps"

local function types(events)
  local out = {}
  for _, e in ipairs(events) do
    local n = e.object.metadata and e.object.metadata.name
    out[#out + 1] = e.type .. (n and (":" .. n) or "")
  end
  return table.concat(out, ",")
end

describe("sim watch", function()
  local t
  before_each(function() t = H.new() end)

  it("streams synthetic ADDED for current objects, then changes", function()
    t.post(CM, H.configmap("a"))
    local w = t.get(CM .. "?watch=true")
    assert.equal(200, w.status)
    assert.is_true(w.stream)
    t.loop.advance(0)
    t.post(CM, H.configmap("b"))
    t.patch(CM .. "/a", { data = { x = "y" } }, "application/merge-patch+json")
    t.delete(CM .. "/b")
    local evs = t.loop.events(w.stream_id)
    assert.equal("ADDED:a,ADDED:b,MODIFIED:a,DELETED:b", types(evs))
    local last = 0
    for _, e in ipairs(evs) do
      local rv = tonumber(e.object.metadata.resourceVersion)
      assert.is_true(rv > last)
      last = rv
    end
  end)

  it("resumes strictly after a resourceVersion", function()
    local a = t.post(CM, H.configmap("a")).json
    t.post(CM, H.configmap("b"))
    local w = t.get(CM .. "?watch=1&resourceVersion=" .. a.metadata.resourceVersion)
    t.loop.advance(0)
    assert.equal("ADDED:b", types(t.loop.events(w.stream_id)))
    -- events raised before the stream started are not duplicated
    local l = t.get(CM)
    local w2 = t.get(CM .. "?watch=true&resourceVersion=" .. l.json.metadata.resourceVersion)
    t.post(CM, H.configmap("c"))
    t.loop.advance(0)
    assert.equal("ADDED:c", types(t.loop.events(w2.stream_id)))
  end)

  it("sends 410 Expired for a compacted resourceVersion and closes", function()
    t = H.new({ history_cap = 5 })
    local first = t.post(CM, H.configmap("a")).json.metadata.resourceVersion
    for i = 1, 10 do t.post(CM, H.configmap("n" .. i)) end
    local w = t.get(CM .. "?watch=true&resourceVersion=" .. first)
    t.loop.advance(0)
    local evs = t.loop.events(w.stream_id)
    assert.equal(1, #evs)
    assert.equal("ERROR", evs[1].type)
    assert.equal(410, evs[1].object.code)
    assert.equal("Expired", evs[1].object.reason)
    assert.truthy(evs[1].object.message:find("too old resource version", 1, true))
    assert.is_true(t.loop.finished[w.stream_id])
  end)

  it("applies selectors and turns objects that stop matching into DELETED", function()
    t.post(CM, H.configmap("a", nil, { app = "web" }))
    t.post(CM, H.configmap("b", nil, { app = "db" }))
    local w = t.get(CM .. "?watch=true&labelSelector=app%3Dweb")
    local wf = t.get(CM .. "?watch=true&fieldSelector=metadata.name%3Db")
    t.loop.advance(0)
    t.patch(CM .. "/a", { metadata = { labels = { app = "other" } } }, "application/merge-patch+json")
    t.patch(CM .. "/b", { metadata = { labels = { app = "web" } } }, "application/merge-patch+json")
    assert.equal("ADDED:a,DELETED:a,ADDED:b", types(t.loop.events(w.stream_id)))
    assert.equal("ADDED:b,MODIFIED:b", types(t.loop.events(wf.stream_id)))
  end)

  it("filters by namespace", function()
    t.post("/api/v1/namespaces", { metadata = { name = "other" } })
    local w = t.get(CM .. "?watch=true")
    t.loop.advance(0)
    t.post("/api/v1/namespaces/other/configmaps", H.configmap("x"))
    t.post(CM, H.configmap("y"))
    assert.equal("ADDED:y", types(t.loop.events(w.stream_id)))
  end)

  it("ends at timeoutSeconds with a bookmark when allowed", function()
    local l = t.get(CM)
    local w = t.get(CM .. "?watch=true&allowWatchBookmarks=true&timeoutSeconds=5&resourceVersion=" .. l.json.metadata.resourceVersion)
    t.loop.advance(1)
    assert.is_nil(t.loop.finished[w.stream_id])
    t.loop.advance(5)
    local evs = t.loop.events(w.stream_id)
    assert.equal("BOOKMARK", evs[#evs].type)
    assert.equal("ConfigMap", evs[#evs].object.kind)
    assert.truthy(evs[#evs].object.metadata.resourceVersion)
    assert.is_true(t.loop.finished[w.stream_id])
  end)

  it("sends periodic bookmarks", function()
    local w = t.get(CM .. "?watch=true&allowWatchBookmarks=true&resourceVersion=1")
    t.loop.advance(31)
    local evs = t.loop.events(w.stream_id)
    assert.equal("BOOKMARK", evs[#evs].type)
  end)

  it("stops writing after the client goes away", function()
    local w = t.get(CM .. "?watch=true")
    t.loop.advance(0)
    t.sim:closed(w.stream_id)
    t.post(CM, H.configmap("a"))
    assert.equal(0, #t.loop.events(w.stream_id))
    assert.is_nil(t.sim.watchers[w.stream_id])
    local w2 = t.get(CM .. "?watch=true")
    t.loop.advance(0)
    t.loop.gone[w2.stream_id] = true
    t.post(CM, H.configmap("b"))
    assert.is_nil(t.sim.watchers[w2.stream_id])
  end)

  it("streams Table rows with column definitions only in the first event", function()
    t.post(CM, H.configmap("a"))
    local w = t.get(CM .. "?watch=true", { accept = H.TABLE_ACCEPT })
    assert.equal("application/json;as=Table;v=v1;g=meta.k8s.io", w.headers["Content-Type"])
    t.loop.advance(0)
    t.post(CM, H.configmap("b"))
    local evs = t.loop.events(w.stream_id)
    assert.equal(2, #evs)
    assert.equal("Table", evs[1].object.kind)
    assert.equal(3, #evs[1].object.columnDefinitions)
    assert.same({ "a", 1, "0s" }, evs[1].object.rows[1].cells)
    assert.equal(0, #evs[2].object.columnDefinitions)
    assert.equal("b", evs[2].object.rows[1].cells[1])
  end)

  it("delivers events caused by subscribers in resourceVersion order", function()
    -- a subscriber that reacts to each ConfigMap by writing another object
    t.sim.store:subscribe(function(typ, rk, obj)
      if rk == "configmaps" and typ == "ADDED" and obj.metadata.name == "a" then
        t.sim.store:create("configmaps", H.configmap("a-child"))
      end
    end)
    local w = t.get(CM .. "?watch=true&resourceVersion=" .. t.sim.store.rv)
    t.loop.advance(0)
    t.post(CM, H.configmap("a"))
    assert.equal("ADDED:a,ADDED:a-child", types(t.loop.events(w.stream_id)))
  end)
end)

describe("sim watch on one object path", function()
  it("watches a named object through its own URL", function()
    local t = H.new()
    t.post(CM, H.configmap("a"))
    t.post(CM, H.configmap("b"))
    local w = t.get(CM .. "/a?watch=true")
    assert.is_true(w.stream)
    t.loop.advance(0)
    t.patch(CM .. "/b", { data = { x = "1" } }, "application/merge-patch+json")
    t.patch(CM .. "/a", { data = { x = "1" } }, "application/merge-patch+json")
    assert.equal("ADDED:a,MODIFIED:a", types(t.loop.events(w.stream_id)))
  end)
end)
