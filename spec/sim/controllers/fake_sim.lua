-- The sim the controller specs drive. M.new returns the real atom.sim on the
-- manual-clock loop of spec/sim/fake_loop.lua (so the specs exercise the real
-- store, registry and scenario), with sim.clock:advance(dt) added. When that
-- is unavailable, or ATOM_SPEC_FAKE_STORE is set, it returns the minimal
-- in-memory stand-in below, with exactly the interface the controllers use
-- (store, clock, opts, scenario, mark_ready, util).

local M = {}

local function copy(t)
  if type(t) ~= "table" then return t end
  local o = {}
  for k, v in pairs(t) do o[k] = copy(v) end
  return o
end

local function equal(a, b)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  for k, v in pairs(a) do if not equal(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

local function new_clock(start)
  local c = { t = start or 1767225600, seq = 0, timers = {} }
  function c:now() return self.t end
  function c:rfc3339(t)
    t = t or self.t
    return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(t))
  end
  function c:after(dt, fn)
    self.seq = self.seq + 1
    local h = { at = self.t + dt, seq = self.seq, fn = fn }
    function h.cancel() h.cancelled = true end
    self.timers[#self.timers + 1] = h
    return h
  end
  -- Runs every timer due up to now + dt, in time order, including timers
  -- those timers add.
  function c:advance(dt)
    local target = self.t + (dt or 0)
    while true do
      local best, bi
      for i, h in ipairs(self.timers) do
        if not h.cancelled and h.at <= target and
          (not best or h.at < best.at or (h.at == best.at and h.seq < best.seq)) then
          best, bi = h, i
        end
      end
      if not best then break end
      table.remove(self.timers, bi)
      if best.at > self.t then self.t = best.at end
      best.fn()
    end
    self.t = target
    local live = {}
    for _, h in ipairs(self.timers) do if not h.cancelled then live[#live + 1] = h end end
    self.timers = live
  end
  return c
end

local function new_store(clock)
  local s = { data = {}, subs = {}, rv = 0, uidn = 0 }
  local function bucket(rk, ns)
    s.data[rk] = s.data[rk] or {}
    local b = s.data[rk][ns or ""]
    if not b then
      b = {}
      s.data[rk][ns or ""] = b
    end
    return b
  end
  local function emit(ev, rk, obj, old)
    for _, fn in ipairs(s.subs) do fn(ev, rk, obj, old) end
  end
  function s:subscribe(fn) self.subs[#self.subs + 1] = fn end
  function s:get(rk, ns, name)
    local b = self.data[rk] and self.data[rk][ns or ""]
    return b and b[name]
  end
  function s:list(rk, ns, filter)
    local out = {}
    for bns, b in pairs(self.data[rk] or {}) do
      if ns == nil or bns == ns then
        for _, o in pairs(b) do
          if not filter or filter(o) then out[#out + 1] = o end
        end
      end
    end
    table.sort(out, function(a, b) return a.metadata.name < b.metadata.name end)
    return out
  end
  function s:create(rk, obj)
    obj = copy(obj)
    local md = obj.metadata
    if not md.name and md.generateName then
      self.uidn = self.uidn + 1
      md.name = md.generateName .. string.format("%05x", self.uidn)
    end
    local b = bucket(rk, md.namespace)
    if b[md.name] then return nil, { code = 409, reason = "AlreadyExists" } end
    self.uidn = self.uidn + 1
    self.rv = self.rv + 1
    md.uid = string.format("uid-%06d", self.uidn)
    md.resourceVersion = tostring(self.rv)
    md.creationTimestamp = clock:rfc3339()
    md.generation = 1
    if rk == "namespaces" then
      obj.spec = obj.spec or {}
      obj.spec.finalizers = obj.spec.finalizers or { "kubernetes" }
    end
    b[md.name] = obj
    emit("ADDED", rk, obj, nil)
    return obj
  end
  local function gc(uid)
    for rk, per in pairs(s.data) do
      for _, b in pairs(per) do
        for _, o in pairs(b) do
          for _, r in ipairs(o.metadata.ownerReferences or {}) do
            if r.uid == uid then
              s:delete(rk, o.metadata.namespace, o.metadata.name)
              break
            end
          end
        end
      end
    end
  end
  -- Store new in place of old under the next resourceVersion and tell the
  -- subscribers, as every write to an existing object does.
  function s:_modified(rk, new, old)
    self.rv = self.rv + 1
    new.metadata.resourceVersion = tostring(self.rv)
    bucket(rk, new.metadata.namespace)[new.metadata.name] = new
    emit("MODIFIED", rk, new, old)
  end
  function s:update(rk, obj)
    local old = self:get(rk, obj.metadata.namespace, obj.metadata.name)
    if not old then return nil, { code = 404, reason = "NotFound" } end
    local new = copy(obj)
    new.status = copy(old.status)
    new.metadata.uid = old.metadata.uid
    new.metadata.creationTimestamp = old.metadata.creationTimestamp
    new.metadata.deletionTimestamp = old.metadata.deletionTimestamp
    new.metadata.generation = old.metadata.generation
    if not equal(old.spec, new.spec) then
      new.metadata.generation = old.metadata.generation + 1
    end
    self:_modified(rk, new, old)
    if rk == "namespaces" and new.metadata.deletionTimestamp
      and #((new.spec or {}).finalizers or {}) == 0 then
      bucket(rk, nil)[new.metadata.name] = nil
      emit("DELETED", rk, new, new)
    end
    return new
  end
  function s:update_status(rk, obj)
    local old = self:get(rk, obj.metadata.namespace, obj.metadata.name)
    if not old then return nil, { code = 404, reason = "NotFound" } end
    local new = copy(old)
    new.status = copy(obj.status)
    self:_modified(rk, new, old)
    return new
  end
  function s:delete(rk, ns, name)
    local b = self.data[rk] and self.data[rk][ns or ""]
    local old = b and b[name]
    if not old then return nil, { code = 404, reason = "NotFound" } end
    if rk == "namespaces" then
      local new = copy(old)
      new.metadata.deletionTimestamp = clock:rfc3339()
      new.status = new.status or {}
      new.status.phase = "Terminating"
      self.rv = self.rv + 1
      new.metadata.resourceVersion = tostring(self.rv)
      b[name] = new
      for _, per in pairs(self.data) do
        local nb = per[name]
        if nb then
          for _, o in pairs(nb) do
            nb[o.metadata.name] = nil
            emit("DELETED", "?", o, o)
          end
        end
      end
      emit("MODIFIED", rk, new, old)
      return new
    end
    b[name] = nil
    emit("DELETED", rk, old, old)
    gc(old.metadata.uid)
    return old
  end
  return s
end

-- Scenario rules in the real scenario format: { kind = ..., name = ...,
-- <rule fields> }, names matched exactly or as a prefix when ending in "*".
local function rule_matches(r, obj)
  local meta = obj.metadata or {}
  if r.kind and r.kind ~= obj.kind then return false end
  if r.name then
    local prefix = r.name:match("^(.*)%*$")
    if prefix then
      if (meta.name or ""):sub(1, #prefix) ~= prefix then return false end
    elseif r.name ~= meta.name then
      return false
    end
  end
  return true
end

-- opts: ready_after, nodes, rules (array, real scenario format), store = "fake"
-- to force the minimal store. Uses the real atom.sim (with the controllers it
-- loads itself) when it is available, so the specs exercise the real store.
function M.new(opts)
  opts = opts or {}
  local rules = opts.rules or {}
  local ok, simmod = pcall(require, "atom.sim")
  local okl, loopmod = pcall(require, "sim.fake_loop")
  if opts.store ~= "fake" and not os.getenv("ATOM_SPEC_FAKE_STORE") and ok and okl then
    local loop = loopmod.new()
    local okn, sim = pcall(simmod.new, { loop = loop, ready_after = opts.ready_after, nodes = opts.nodes or 3 })
    if okn and sim then
      for _, r in ipairs(rules) do sim.scenario.rules[#sim.scenario.rules + 1] = r end
      sim.clock.advance = function(_, dt) loop.advance(dt) end
      sim.ready_marks = sim.ready_times
      sim.real = true
      return sim
    end
  end
  local clock = new_clock()
  local sim = {
    opts = { ready_after = opts.ready_after, nodes = opts.nodes or 3 },
    clock = clock,
    store = new_store(clock),
    util = { copy = copy, uid = function() return tostring(math.random(1e9)) end },
    ready_marks = {},
  }
  sim.scenario = {
    rule_for = function(_, obj)
      local out = {}
      for _, r in ipairs(rules) do
        if rule_matches(r, obj) then
          for k, v in pairs(r) do
            if k ~= "kind" and k ~= "name" then out[k] = v end
          end
        end
      end
      return out
    end,
  }
  function sim:mark_ready(rk, obj)
    self.ready_marks[#self.ready_marks + 1] = { rk = rk, name = obj.metadata.name, t = self.clock:now() }
  end
  return sim
end

-- Load every controller listed by atom.sim.controllers into sim (the real sim
-- has already loaded them), then run what is due now.
function M.start(sim)
  -- Controller errors (caught per reconcile) are collected so specs can
  -- assert that none happened.
  sim.logged = {}
  sim.log = function(msg) sim.logged[#sim.logged + 1] = msg end
  M.last = sim
  if sim.real then
    sim.store.on_error = function(err) sim.logged[#sim.logged + 1] = tostring(err) end
  end
  if not sim.real then
    for _, name in ipairs(require("atom.sim.controllers")) do
      require(name)(sim)
    end
  end
  sim.clock:advance(0)
  return sim
end

return M
