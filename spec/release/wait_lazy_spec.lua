-- atom.release.wait with kinds that are ready once they exist: no list+watch when the
-- apply's answers prove it, one list when nothing was applied first, a watch only when
-- that list (or the check) leaves one of them not ready.
local wait = require "atom.release.wait"
local readiness = require "atom.readiness"
local core = require "atom.core"

-- A client holding objects by kind; every call is noted in .calls ("list ConfigMap", ...).
local function fake()
  local k = { calls = {}, store = {}, events = {} }
  local function note(...) k.calls[#k.calls + 1] = table.concat({ ... }, " ") end
  function k:put(o)
    self.store[o.kind] = self.store[o.kind] or {}
    self.store[o.kind][o.metadata.name] = o
  end
  function k:list(_, kind)
    note("list", kind)
    local out = {}
    for _, o in pairs(self.store[kind] or {}) do out[#out + 1] = o end
    return out, "7"
  end
  function k:watch(_, kind)
    note("watch", kind)
    local w = { kind = kind }
    function w.close() end
    self.watchers = self.watchers or {}
    self.watchers[kind] = w
    return w
  end
  function k:get(_, kind, _, name)
    note("get", kind, name)
    local o = (self.store[kind] or {})[name]
    if o then return o end
    return nil, { code = 404 }
  end
  function k:resource_for() return nil end
  function k:poll(timeout)
    local evs = self.events
    self.events = {}
    if #evs == 0 then core.sleep(math.min(timeout, 0.01)) end
    return evs
  end
  return k
end

local function count(calls, what)
  local n = 0
  for _, c in ipairs(calls) do if c == what then n = n + 1 end end
  return n
end

local function obj(kind, name, extra)
  local o = { apiVersion = "v1", kind = kind, metadata = { name = name, namespace = "ns", uid = kind .. name } }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

local function builtin(o, ctx) return readiness.check(o, nil, ctx) end

local function soon() return core.wall() + 5 end

describe("atom.release.wait, kinds ready once they exist", function()
  it("watches only the kinds with a check of their own when the apply answers prove the rest", function()
    local k = fake()
    local cm, sec, svc = obj("ConfigMap", "a"), obj("Secret", "s"), obj("Service", "web", { spec = { type = "ClusterIP" } })
    local obs = assert(wait.observe(k, { objects = { cm, sec, svc }, release = "r", namespace = "ns", check = builtin }))
    assert.are.same({ "list Service", "watch Service" }, k.calls)
    obs:applied(cm); obs:applied(sec); obs:applied(svc)
    assert.are.equal("ready", (obs:run({ deadline_at = soon() })))
    obs:close()
    assert.are.same({ "list Service", "watch Service" }, k.calls)
  end)

  it("lists such a kind once when nothing was applied first, and watches it only if that is not enough", function()
    local k = fake()
    k:put(obj("ConfigMap", "a"))
    k:put(obj("ConfigMap", "b"))
    local outcome = wait.run(k, { objects = { obj("ConfigMap", "a"), obj("ConfigMap", "b") }, release = "r",
      namespace = "ns", check = builtin, deadline_at = soon() })
    assert.are.equal("ready", outcome)
    assert.are.same({ "list ConfigMap" }, k.calls)

    -- b appears only after the list: the watch brings it
    local k2 = fake()
    k2:put(obj("ConfigMap", "a"))
    local obs = assert(wait.observe(k2, { objects = { obj("ConfigMap", "a"), obj("ConfigMap", "b") }, release = "r",
      namespace = "ns", check = builtin }))
    local polls = 0
    local poll = k2.poll
    function k2:poll(t)
      polls = polls + 1
      if polls == 1 and self.watchers and self.watchers.ConfigMap then
        self.events = { { watcher = self.watchers.ConfigMap, type = "ADDED", object = obj("ConfigMap", "b") } }
      end
      return poll(self, t)
    end
    assert.are.equal("ready", (obs:run({ deadline_at = soon() })))
    obs:close()
    assert.are.same({ "list ConfigMap", "watch ConfigMap" }, k2.calls)
  end)

  it("still gets each one at the deadline", function()
    local k = fake()
    local outcome, _, nr = wait.run(k, { objects = { obj("ConfigMap", "gone") }, release = "r", namespace = "ns",
      check = builtin, deadline_at = core.wall() + 0.05 })
    assert.are.equal("deadline", outcome)
    assert.are.equal("ConfigMap/ns/gone", nr[1].object)
    assert.are.equal(1, count(k.calls, "get ConfigMap gone"))
  end)

  it("watches a kind that an override, an atom.conditions annotation or a CRD with conditions makes wait", function()
    local k = fake()
    -- override keys match kind and group case-insensitively, as atom.readiness does
    local obs = assert(wait.observe(k, { objects = { obj("ConfigMap", "a"), obj("Secret", "s") }, release = "r",
      namespace = "ns", check = builtin, overrides = { ["configmap/a"] = function() return "ready" end } }))
    obs:close()
    assert.are.same({ "list ConfigMap", "watch ConfigMap" }, k.calls)

    local k2 = fake()
    local ann = obj("Secret", "s", { metadata = { name = "s", namespace = "ns", annotations = { ["atom.conditions"] = "Ready=True" } } })
    obs = assert(wait.observe(k2, { objects = { obj("Secret", "t"), ann }, release = "r", namespace = "ns", check = builtin,
      overrides = { ["ConfigMap/other"] = function() return "ready" end } }))
    obs:close()
    assert.are.same({ "list Secret", "watch Secret" }, k2.calls)

    local k3 = fake()
    local crd = { apiVersion = "apiextensions.k8s.io/v1", kind = "CustomResourceDefinition",
      metadata = { name = "gadgets.example.com" },
      spec = { group = "example.com", names = { kind = "Gadget", plural = "gadgets" },
        versions = { { name = "v1", schema = { openAPIV3Schema = { properties = { status = {
          properties = { conditions = { type = "array" } } } } } } },
                     { name = "v2", schema = { openAPIV3Schema = { type = "object" } } } } } }
    local g1 = { apiVersion = "example.com/v1", kind = "Gadget", metadata = { name = "g", namespace = "ns" } }
    local g2 = { apiVersion = "example.com/v2", kind = "Gadget", metadata = { name = "h", namespace = "ns" } }
    obs = assert(wait.observe(k3, { objects = { crd, g1, g2 }, release = "r", namespace = "ns", check = builtin }))
    obs:close()
    -- v1 declares conditions (one watch for example.com/v1 Gadgets), v2 does not (none)
    assert.are.same({ "list CustomResourceDefinition", "watch CustomResourceDefinition",
                      "list Gadget", "watch Gadget" }, k3.calls)
  end)

  it("watches such a kind after all when the check does not like the apply's answer", function()
    local k = fake()
    local a = obj("ConfigMap", "a", { data = { ready = "no" } })
    local function check(o) return o.data and o.data.ready == "yes" and "ready" or "progressing", "gate" end
    local obs = assert(wait.observe(k, { objects = { a }, release = "r", namespace = "ns", check = check }))
    obs:applied(a)
    assert.are.same({}, k.calls)
    local polls = 0
    local poll = k.poll
    function k:poll(t)
      polls = polls + 1
      if polls == 1 and self.watchers and self.watchers.ConfigMap then
        self.events = { { watcher = self.watchers.ConfigMap, type = "MODIFIED",
          object = obj("ConfigMap", "a", { data = { ready = "yes" } }) } }
      end
      return poll(self, t)
    end
    assert.are.equal("ready", (obs:run({ deadline_at = soon() })))
    obs:close()
    assert.are.same({ "list ConfigMap", "watch ConfigMap" }, k.calls)
  end)
end)
