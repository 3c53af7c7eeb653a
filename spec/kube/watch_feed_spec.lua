-- A watch stream's lines arrive split across chunks in any way (a large object in many
-- pieces, several events in one chunk): each event comes out once, whole, in order.
local watch = require "atom.kube.watch"
local cjson = require "cjson"

local function fake_client()
  return {
    watchers = {}, events = {}, handlers = {},
    _target = function(_, _, _, ns) return { namespaced = true }, ns end,
    path_for = function() return "/api/v1/namespaces/x/configmaps" end,
    _send = function() return nil end, -- no stream: the test feeds the watch itself
  }
end

local function event(name, size)
  return cjson.encode({ type = "ADDED", object = { apiVersion = "v1", kind = "ConfigMap",
    metadata = { name = name, namespace = "x", resourceVersion = name .. "-rv" },
    data = { blob = string.rep("a", size) } } }) .. "\n"
end

describe("a watch fed its stream in chunks", function()
  it("yields each event whole however its lines are split", function()
    local c = fake_client()
    local w = watch.open(c, "v1", "ConfigMap", "x", {})
    local text = event("big", 100000) .. event("small-1", 3) .. event("small-2", 3)
    -- A large object in 1,000-byte pieces, then the small ones split mid-line.
    local pos = 1
    while pos <= #text do
      local n = pos < 100000 and 1000 or 7
      w:_feed(text:sub(pos, pos + n - 1))
      pos = pos + n
    end
    local names = {}
    for _, ev in ipairs(c.events) do names[#names + 1] = ev.object.metadata.name end
    assert.are.same({ "big", "small-1", "small-2" }, names)
    assert.are.equal(100000, #c.events[1].object.data.blob)
    assert.are.equal("small-2-rv", w.resource_version)
  end)

  it("keeps an unfinished line for the stream's end", function()
    local c = fake_client()
    local w = watch.open(c, "v1", "ConfigMap", "x", {})
    local line = event("tail", 10):sub(1, -2) -- no newline: the stream ends after it
    w:_feed(line:sub(1, 20))
    w:_feed(line:sub(21))
    assert.are.equal(0, #c.events)
    w:_on({ id = 1, done = true, status = 200 })
    assert.are.equal(1, #c.events)
    assert.are.equal("tail", c.events[1].object.metadata.name)
  end)
end)
