-- The in-memory object store: one global resourceVersion counter, objects indexed by
-- (rk, namespace, name) and by uid, a bounded event history for watches, owner-reference
-- garbage collection and namespace termination. Stored objects belong to the store and are never
-- mutated in place (every write stores a fresh table), so readers may hold on to them but must
-- copy before changing. Errors are metav1.Status tables (see status.lua).
local util = require "atom.sim.util"
local status = require "atom.sim.status"
local validate = require "atom.sim.validate"

local M = {}
M.__index = M

local HISTORY_CAP = 10000

-- New versions that differ only in metadata (and the fields named): a deep copy of every
-- deleted object was most of a namespace deletion's cost and garbage.
local revise = util.revise

function M.new(opts)
  local self = setmetatable({}, M)
  self.registry = opts.registry
  self.clock = opts.clock
  self.loop = opts.loop
  self.data = {}          -- rk -> ns ("" cluster) -> name -> obj
  self.by_uid = {}        -- uid -> { rk, ns, name }
  self.deps = {}          -- owner uid -> { [dependent uid] = true }
  self.rv = 0
  self.hist = {}          -- ring of { rv, type, rk, obj, old }
  self.hist_first, self.hist_last = 1, 0
  self.compacted_rv = 0   -- events at or below this rv are no longer in history
  self.history_cap = opts.history_cap or HISTORY_CAP
  self.subs = {}          -- { fn, rk (nil: every event) } in subscription order
  self.subs_for = {}      -- rk -> subscriber functions for its events (a cache of subs)
  self.queue, self.qhead, self.dispatching = {}, 1, false
  self.next_ip = 10       -- 10.96.0.10 onwards
  self.json_cache = {}    -- obj -> its JSON, for the objects in json_ring
  self.json_ring, self.json_next = {}, 1
  return self
end

local function ns_key(info, ns)
  if info.namespaced then return ns or "" end
  return ""
end

function M:info(rk)
  return self.registry:lookup(rk)
end

function M:get(rk, ns, name)
  local byns = self.data[rk]
  if not byns then return nil end
  local info = self:info(rk)
  local m = byns[info and ns_key(info, ns) or (ns or "")]
  return m and m[name] or nil
end

local function sorted_names(m)
  local names = {}
  for n in pairs(m) do names[#names + 1] = n end
  table.sort(names)
  return names
end

-- Objects of rk, in namespace ns (nil = all), sorted by namespace then name as etcd returns them.
function M:list(rk, ns, filter)
  local out = {}
  local byns = self.data[rk]
  if not byns then return out end
  local spaces
  if ns ~= nil and ns ~= "" then spaces = { ns } else spaces = sorted_names(byns) end
  for _, s in ipairs(spaces) do
    local m = byns[s]
    if m then
      for _, n in ipairs(sorted_names(m)) do
        local o = m[n]
        if not filter or filter(o) then out[#out + 1] = o end
      end
    end
  end
  return out
end

function M:count(rk)
  local n = 0
  for _, m in pairs(self.data[rk] or {}) do for _ in pairs(m) do n = n + 1 end end
  return n
end

-- Cached JSON of a stored object (objects are immutable once stored). A version is encoded
-- for the write's answer and for each watcher at about the same time, so only the last
-- JSON_RECENT encodings are kept: a weak cache of every live version held the JSON of the whole
-- cluster (and its event history), which made the heap, and every collection, twice as big.
local JSON_RECENT = 512
function M:json(obj)
  local cache = self.json_cache
  local s = cache[obj]
  if not s then
    s = util.encode_stored(obj)
    local i = self.json_next
    local ring = self.json_ring
    local old = ring[i]
    if old ~= nil then cache[old] = nil end
    ring[i] = obj
    self.json_next = i % JSON_RECENT + 1
    cache[obj] = s
  end
  return s
end

-- fn(type, rk, obj, old) for every event, or only for events of rk when rk is given: most
-- subscribers care about one or two resources, and calling each of them for every event was a
-- large share of a write's cost. Delivery keeps subscription order either way.
function M:subscribe(fn, rk)
  self.subs[#self.subs + 1] = { fn = fn, rk = rk }
  self.subs_for = {}
  return fn
end

function M:unsubscribe(fn)
  for i, s in ipairs(self.subs) do
    if s.fn == fn then
      table.remove(self.subs, i)
      self.subs_for = {}
      return
    end
  end
end

-- The subscribers of rk's events in subscription order, cached until the set changes.
function M:_subscribers(rk)
  local list = self.subs_for[rk]
  if list then return list end
  list = {}
  for _, s in ipairs(self.subs) do
    if s.rk == nil or s.rk == rk then list[#list + 1] = s.fn end
  end
  self.subs_for[rk] = list
  return list
end

-- Events are recorded at once (so history and RVs stay ordered) and delivered through a queue,
-- so a subscriber that writes to the store from inside a callback does not reorder delivery.
function M:_emit(typ, rk, obj, old)
  local ev = { rv = self.rv, type = typ, rk = rk, obj = obj, old = old }
  self.hist_last = self.hist_last + 1
  self.hist[self.hist_last] = ev
  while self.hist_last - self.hist_first + 1 > self.history_cap do
    self.compacted_rv = self.hist[self.hist_first].rv
    self.hist[self.hist_first] = nil
    self.hist_first = self.hist_first + 1
  end
  self.qtail = (self.qtail or 0) + 1
  self.queue[self.qtail] = ev
  if self.dispatching then return end
  self.dispatching = true
  while self.qhead <= self.qtail do
    local e = self.queue[self.qhead]
    self.queue[self.qhead] = nil
    self.qhead = self.qhead + 1
    local subs = self:_subscribers(e.rk)
    for i = 1, #subs do
      local ok, err = pcall(subs[i], e.type, e.rk, e.obj, e.old)
      if not ok and self.on_error then self.on_error(err) end
    end
  end
  self.queue, self.qhead, self.qtail = {}, 1, 0
  self.dispatching = false
end

-- Events strictly after rv (for rk, or all when rk is nil); nil when rv is too old.
function M:events_since(rv, rk)
  if rv < self.compacted_rv then return nil end
  local lo, hi = self.hist_first, self.hist_last
  while lo <= hi do
    local mid = (lo + hi) // 2
    if self.hist[mid].rv <= rv then lo = mid + 1 else hi = mid - 1 end
  end
  local out = {}
  for i = lo, self.hist_last do
    local e = self.hist[i]
    if rk == nil or e.rk == rk then out[#out + 1] = e end
  end
  return out
end

function M:_bump()
  self.rv = self.rv + 1
  return self.rv
end

function M:alloc_node_port()
  self.next_node_port = (self.next_node_port or 30000) + 1
  if self.next_node_port > 32767 then self.next_node_port = 30001 end
  return self.next_node_port
end

-- Made once per store: validate.default takes them on every create and update.
function M:_allocators()
  local a = self.allocators
  if not a then
    a = { ip = function() return self:alloc_ip() end,
      node_port = function() return self:alloc_node_port() end }
    self.allocators = a
  end
  return a
end

function M:alloc_ip()
  local n = self.next_ip
  self.next_ip = n + 1
  return string.format("10.96.%d.%d", n // 250, n % 250 + 1)
end

local function owner_uids(obj)
  local out = {}
  for _, r in ipairs(util.get_path(obj, "metadata", "ownerReferences") or {}) do
    if type(r) == "table" and r.uid then out[#out + 1] = r.uid end
  end
  return out
end

function M:_unlink(uid, obj)
  for _, o in ipairs(owner_uids(obj)) do
    local d = self.deps[o]
    if d then
      d[uid] = nil
      if next(d) == nil then self.deps[o] = nil end
    end
  end
end

-- On an update the uid's place (rk, namespace, name) is the same, and so are its owners unless
-- ownerReferences changed: most writes (every status write) leave both indexes as they are.
function M:_index(rk, obj, old)
  local uid = obj.metadata.uid
  if old then
    if util.equal(old.metadata.ownerReferences, obj.metadata.ownerReferences) then return end
    self:_unlink(uid, old)
  else
    self.by_uid[uid] = { rk = rk, ns = obj.metadata.namespace or "", name = obj.metadata.name }
  end
  for _, o in ipairs(owner_uids(obj)) do
    local d = self.deps[o]
    if not d then d = {} self.deps[o] = d end
    d[uid] = true
  end
end

function M:_put(rk, info, obj)
  local byns = self.data[rk]
  if not byns then byns = {} self.data[rk] = byns end
  local k = ns_key(info, obj.metadata.namespace)
  local m = byns[k]
  if not m then m = {} byns[k] = m end
  m[obj.metadata.name] = obj
end

function M:by_uid_get(uid)
  local r = self.by_uid[uid]
  if not r then return nil end
  return self:get(r.rk, r.ns, r.name), r.rk
end

function M:dependents(uid)
  local out = {}
  for d in pairs(self.deps[uid] or {}) do
    local o, rk = self:by_uid_get(d)
    if o then out[#out + 1] = { rk = rk, obj = o } end
  end
  table.sort(out, function(a, b) return a.obj.metadata.name < b.obj.metadata.name end)
  return out
end

local RAND = "bcdfghjklmnpqrstvwxz2456789"
local function random_suffix()
  local t = {}
  for i = 1, 5 do
    local j = math.random(1, #RAND)
    t[i] = RAND:sub(j, j)
  end
  return table.concat(t)
end

-- opts: { dry_run = bool, owned = bool (obj is handed over, not copied) }
function M:create(rk, obj, opts)
  opts = opts or {}
  local info = self:info(rk)
  if not info then return nil, status.new(404, "the server could not find the requested resource") end
  if type(obj) ~= "table" then return nil, status.bad_request("object must be a JSON object") end
  -- opts.owned: the caller hands the table over (the API layer's fresh decodes), no copy needed
  obj = opts.owned and util.store_clean(obj) or util.copy_clean(obj)
  local meta = obj.metadata
  if type(meta) ~= "table" then meta = {} obj.metadata = meta end
  if (meta.name == nil or meta.name == "") and type(meta.generateName) == "string" and meta.generateName ~= "" then
    meta.name = meta.generateName .. random_suffix()
  end
  if info.namespaced then
    meta.namespace = (meta.namespace ~= nil and meta.namespace ~= "") and meta.namespace or "default"
    local nsobj = self:get("namespaces", nil, meta.namespace)
    if not nsobj then return nil, status.namespace_not_found(meta.namespace) end
    if nsobj.metadata.deletionTimestamp then
      return nil, status.new(403, string.format(
        '%s "%s" is forbidden: unable to create new content in namespace %s because it is being terminated',
        status.qualified(info), tostring(meta.name), meta.namespace), "Forbidden",
        { name = meta.name, group = info.group, kind = info.resource,
          causes = { { reason = "NamespaceTerminating", message = "namespace " .. meta.namespace .. " is being terminated", field = "metadata.namespace" } } })
    end
  else
    meta.namespace = nil
  end
  obj.apiVersion = obj.apiVersion or self.registry:api_version(info)
  obj.kind = obj.kind or info.kind
  local causes = validate.object(info, obj)
  if #causes > 0 then return nil, status.invalid(info, meta.name, causes) end
  if self:get(rk, meta.namespace, meta.name) then return nil, status.already_exists(info, meta.name) end
  meta.uid = util.uid()
  meta.creationTimestamp = self.clock:rfc3339()
  meta.generation = 1
  meta.deletionTimestamp = nil
  meta.deletionGracePeriodSeconds = nil
  meta.resourceVersion = nil
  if meta.finalizers and #meta.finalizers == 0 then meta.finalizers = nil end
  validate.default(info, obj, nil, self:_allocators())
  if opts.dry_run then return obj end
  meta.resourceVersion = tostring(self:_bump())
  self:_put(rk, info, obj)
  self:_index(rk, obj, nil)
  self:_emit("ADDED", rk, obj, nil)
  return obj
end

local function precondition_failed(info, name, what, want, have)
  return status.conflict(info, name, string.format(
    "Precondition failed: %s in precondition: %s, %s in object meta: %s", what, want, what, have))
end

-- opts: { dry_run, status_write (take .status from obj; ignore the rest), owned (obj is handed over) }
function M:update(rk, obj, opts)
  opts = opts or {}
  local info = self:info(rk)
  if not info then return nil, status.new(404, "the server could not find the requested resource") end
  if type(obj) ~= "table" or type(obj.metadata) ~= "table" then
    return nil, status.bad_request("object must carry metadata")
  end
  local name, ns = obj.metadata.name, obj.metadata.namespace
  local cur = self:get(rk, ns, name)
  if not cur then return nil, status.not_found(info, name) end
  local want_rv = obj.metadata.resourceVersion
  if want_rv ~= nil and want_rv ~= "" and want_rv ~= cur.metadata.resourceVersion then
    return nil, status.conflict(info, name)
  end
  if obj.metadata.uid ~= nil and obj.metadata.uid ~= "" and obj.metadata.uid ~= cur.metadata.uid then
    return nil, precondition_failed(info, name, "UID", obj.metadata.uid, cur.metadata.uid)
  end
  local new, spec_changed
  if opts.status_write then
    -- stored objects are never mutated, so a status write shares every other subtree with the
    -- previous version and copies only the top level and metadata
    new = {}
    for k, v in pairs(cur) do new[k] = v end
    local meta = {}
    for k, v in pairs(cur.metadata) do meta[k] = v end
    new.metadata = meta
    new.status = opts.owned and util.store_clean(obj.status) or util.copy_clean(obj.status)
  else
    new = opts.owned and util.store_clean(obj) or util.copy_clean(obj)
    local m, cm = new.metadata, cur.metadata
    m.uid, m.creationTimestamp, m.namespace = cm.uid, cm.creationTimestamp, cm.namespace
    m.deletionTimestamp, m.deletionGracePeriodSeconds = cm.deletionTimestamp, cm.deletionGracePeriodSeconds
    m.generation = cm.generation
    if m.managedFields == nil then m.managedFields = cm.managedFields end
    if m.finalizers and #m.finalizers == 0 then m.finalizers = nil end
    if info.subresources.status then new.status = cur.status end
    new.apiVersion = new.apiVersion or cur.apiVersion
    new.kind = new.kind or cur.kind
    if cm.deletionTimestamp then
      local had = {}
      for _, f in ipairs(cm.finalizers or {}) do had[f] = true end
      for _, f in ipairs(m.finalizers or {}) do
        if not had[f] then
          return nil, status.invalid(info, name, { status.cause("FieldValueForbidden", "metadata.finalizers",
            "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"" .. f .. "\"}") })
        end
      end
    end
    validate.default(info, new, cur, self:_allocators())
    local causes = validate.object(info, new)
    for _, c in ipairs(validate.update(info, cur, new)) do causes[#causes + 1] = c end
    if #causes > 0 then return nil, status.invalid(info, name, causes) end
    if info.crd and not info.subresources.status then
      spec_changed = not util.equal_except(cur, new, "metadata")
    else
      spec_changed = not util.equal(cur.spec, new.spec)
    end
    if spec_changed then m.generation = (cm.generation or 1) + 1 end
  end
  new.metadata.resourceVersion = cur.metadata.resourceVersion
  -- a status write differs from cur in .status alone (the rest is cur's, shared); a spec change
  -- has bumped the generation, so only an unchanged spec needs the whole object compared
  if opts.status_write then
    if util.equal(new.status, cur.status) then return cur end
  elseif not spec_changed and util.equal(new, cur) then
    return cur
  end
  if opts.dry_run then return new end
  if new.metadata.deletionTimestamp and (new.metadata.finalizers == nil or #new.metadata.finalizers == 0)
    and (rk ~= "namespaces" or self:_namespace_can_go(new)) then
    return self:_remove(rk, info, new, cur)
  end
  new.metadata.resourceVersion = tostring(self:_bump())
  self:_put(rk, info, new)
  self:_index(rk, new, cur)
  self:_emit("MODIFIED", rk, new, cur)
  return new
end

-- opts: { dry_run, check_rv, owned (obj.status is handed over, not copied) }
function M:update_status(rk, obj, opts)
  local o = { dry_run = opts and opts.dry_run, status_write = true, owned = opts and opts.owned }
  local meta = obj and obj.metadata or {}
  local probe = { metadata = { name = meta.name, namespace = meta.namespace,
    resourceVersion = opts and opts.check_rv and meta.resourceVersion or nil }, status = obj and obj.status }
  return self:update(rk, probe, o)
end

-- Remove an object for good: emits DELETED, then runs garbage collection.
function M:_remove(rk, info, final, cur)
  local k = ns_key(info, cur.metadata.namespace)
  local m = self.data[rk][k]
  m[cur.metadata.name] = nil
  -- an emptied namespace's map goes too: lists sort the namespace keys, and a long-lived sim
  -- would otherwise keep one per namespace it ever had, for every resource
  if next(m) == nil then self.data[rk][k] = nil end
  local uid = cur.metadata.uid
  self.by_uid[uid] = nil
  self:_unlink(uid, cur)
  final = final == cur and revise(cur) or final
  final.metadata.resourceVersion = tostring(self:_bump())
  self:_emit("DELETED", rk, final, cur)
  -- dependents whose every owner is now gone are deleted (Background); others lose the ref
  for _, d in ipairs(self:dependents(uid)) do
    local alive = false
    for _, o in ipairs(owner_uids(d.obj)) do
      if o ~= uid and self.by_uid[o] then alive = true end
    end
    if alive then
      local c = util.copy(d.obj)
      local refs = util.array()
      for _, r in ipairs(c.metadata.ownerReferences) do if r.uid ~= uid then refs[#refs + 1] = r end end
      c.metadata.ownerReferences = refs
      c.metadata.resourceVersion = nil
      self:update(d.rk, c)
    else
      self:delete(d.rk, d.obj.metadata.namespace, d.obj.metadata.name, { propagation = "Background" })
    end
  end
  self.deps[uid] = nil
  -- owners waiting in foreground deletion for this dependent
  for _, o in ipairs(owner_uids(cur)) do self:_check_foreground(o) end
  -- a terminating namespace disappears once empty
  local ns = cur.metadata.namespace
  if info.namespaced and ns then self:_check_namespace(ns) end
  return final
end

function M:_check_foreground(owner_uid)
  local owner, rk = self:by_uid_get(owner_uid)
  if not owner or not owner.metadata.deletionTimestamp then return end
  local fins = owner.metadata.finalizers or {}
  local has = false
  for _, f in ipairs(fins) do if f == "foregroundDeletion" then has = true end end
  if not has then return end
  if #self:dependents(owner_uid) > 0 then return end
  local c = util.copy(owner)
  local kept = util.array()
  for _, f in ipairs(fins) do if f ~= "foregroundDeletion" then kept[#kept + 1] = f end end
  c.metadata.finalizers = kept
  self:update(rk, c)
end

function M:namespace_empty(ns)
  for _, byns in pairs(self.data) do
    local m = byns[ns]
    if m and next(m) then return false end
  end
  return true
end

-- A terminating namespace goes once it is empty and, when a namespace controller runs
-- (`wait_namespace_finalizer`), once that controller has cleared spec.finalizers.
function M:_namespace_can_go(nso)
  if not self:namespace_empty(nso.metadata.name) then return false end
  local f = nso.spec and nso.spec.finalizers
  return not (self.wait_namespace_finalizer and f and #f > 0)
end

function M:_check_namespace(ns)
  local nso = self:get("namespaces", nil, ns)
  if not nso or not nso.metadata.deletionTimestamp then return end
  if not self:_namespace_can_go(nso) then return end
  local c = revise(nso, "spec")
  c.spec = c.spec or {}
  c.spec.finalizers = nil
  c.metadata.finalizers = nil
  local info = self:info("namespaces")
  self:_remove("namespaces", info, c, nso)
end

function M:_terminate_namespace(ns)
  for rk, byns in pairs(self.data) do
    if rk ~= "namespaces" and byns[ns] then
      for _, name in ipairs(sorted_names(byns[ns])) do
        -- an earlier delete may have emptied (and so dropped) the namespace's map
        local m = byns[ns]
        if m and m[name] then self:delete(rk, ns, name, { propagation = "Background" }) end
      end
    end
  end
  self:_check_namespace(ns)
end

-- opts: { propagation = "Background"|"Foreground"|"Orphan", preconditions = {uid, resourceVersion},
--         dry_run, grace }. Returns the object (deleted, or marked for deletion) or nil, err.
function M:delete(rk, ns, name, opts)
  opts = opts or {}
  local info = self:info(rk)
  if not info then return nil, status.new(404, "the server could not find the requested resource") end
  local cur = self:get(rk, ns, name)
  if not cur then return nil, status.not_found(info, name) end
  local pre = opts.preconditions
  if type(pre) == "table" then
    if pre.uid and pre.uid ~= cur.metadata.uid then
      return nil, precondition_failed(info, name, "UID", pre.uid, cur.metadata.uid)
    end
    if pre.resourceVersion and pre.resourceVersion ~= cur.metadata.resourceVersion then
      return nil, precondition_failed(info, name, "ResourceVersion", pre.resourceVersion, cur.metadata.resourceVersion)
    end
  end
  if opts.dry_run then return cur end
  local prop = opts.propagation or "Background"
  local uid = cur.metadata.uid
  if rk == "namespaces" then
    if name == "default" or name == "kube-system" or name == "kube-public" then
      return nil, status.new(403, string.format('namespaces "%s" is forbidden: this namespace may not be deleted', name),
        "Forbidden", { name = name, kind = "namespaces" })
    end
    if cur.metadata.deletionTimestamp then return cur end
    local c = revise(cur, "status")
    c.metadata.deletionTimestamp = self.clock:rfc3339()
    c.metadata.deletionGracePeriodSeconds = 0
    c.status = c.status or {}
    c.status.phase = "Terminating"
    c.metadata.resourceVersion = tostring(self:_bump())
    self:_put(rk, info, c)
    self:_emit("MODIFIED", rk, c, cur)
    if self.loop and self.loop.timer then
      self.loop.timer(0, function() self:_terminate_namespace(name) end)
    else
      self:_terminate_namespace(name)
    end
    return self:get(rk, nil, name) or c
  end
  local has_deps = next(self.deps[uid] or {}) ~= nil
  if prop == "Orphan" and has_deps then
    for _, d in ipairs(self:dependents(uid)) do
      local c = util.copy(d.obj)
      local refs = util.array()
      for _, r in ipairs(c.metadata.ownerReferences or {}) do if r.uid ~= uid then refs[#refs + 1] = r end end
      c.metadata.ownerReferences = #refs > 0 and refs or nil
      c.metadata.resourceVersion = nil
      self:update(d.rk, c)
    end
    has_deps = false
  end
  local fins = cur.metadata.finalizers or {}
  if cur.metadata.deletionTimestamp then
    return cur
  end
  if #fins == 0 and not (prop == "Foreground" and has_deps) then
    return self:_remove(rk, info, cur, cur)
  end
  local c = revise(cur)
  c.metadata.deletionTimestamp = self.clock:rfc3339()
  c.metadata.deletionGracePeriodSeconds = 0
  if prop == "Foreground" and has_deps then
    local f = util.array()
    for i, x in ipairs(fins) do f[i] = x end
    f[#f + 1] = "foregroundDeletion"
    c.metadata.finalizers = f
  end
  c.metadata.resourceVersion = tostring(self:_bump())
  self:_put(rk, info, c)
  self:_emit("MODIFIED", rk, c, cur)
  if prop == "Foreground" and has_deps then
    for _, d in ipairs(self:dependents(uid)) do
      self:delete(d.rk, d.obj.metadata.namespace, d.obj.metadata.name, { propagation = "Foreground" })
    end
    self:_check_foreground(uid)
  end
  return self:get(rk, ns, name) or c
end

return M
