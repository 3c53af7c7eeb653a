-- atom.release.wait: waits, by watch, until every object of a version is ready.
--
--   wait.observe(client, { objects =, release =, namespace =, phase =, check =,
--                          overrides = (the release's readiness table, or nil) }) -> observer | nil, err
--       opens one list + watch per kind (label selector on the release label) and one
--       watch on the Atom, BEFORE the objects are applied: a Job that completes and is
--       deleted at once (ttlSecondsAfterFinished: 0) is still seen complete.
--       Except for "exists" kinds: when no object of a kind has a built-in check, an
--       override in opts.overrides, an atom.conditions annotation, or a CRD that declares
--       status.conditions, the kind is ready from the object the apply returned
--       (observer:applied): watching it would only decode thousands of redundant events.
--       Such a kind is listed once (and watched only if still not ready after that) when
--       one of its objects is not ready when run() looks: nothing applied first (resume,
--       wait.run), or the check did not like the apply's answer.
--   observer:run{ check = function(obj) -> state, message, deadline_at = wall seconds,
--                 tick = function() -> true | "cancel" | nil, err, tick_every = seconds
--                 (at most this long between ticks; default 0.5), progress = view }
--       -> outcome, message, not_ready | nil, err
--       outcome: "ready"; "failed" (a check said failed: fail fast); "deadline" (still not
--       ready after one last look at the deadline); "cancelled" (the Atom's cancel request
--       for `phase`, or Ctrl-C through tick).
--       not_ready: { { key =, object = "Kind/ns/name", state =, message = }, ... }
--   observer:wants_answer(o) -> false when only o's existence counts (an "exists" kind):
--       the apply need not decode its answer (atom.release.apply's answer_needed)
--   observer:close()
--   wait.run(client, opts) -> observe + run + close, for a wait with nothing to apply first.
--   The check gets (obj, ctx), ctx as atom.readiness describes it:
--     ctx.expects_conditions  true/false when the kind's CRD (in the objects waited for, else
--                             in the cluster: one GET per kind, kept in opts.crd_cache, a
--                             table the caller owns and may share between observers)
--                             declares status.conditions; nil when not a custom resource
--     ctx.get(kind, name)     one live object in obj's namespace (or cluster-scoped),
--                             fetched at most once per observer
--     ctx.related(kind, sel)  live objects matching a label selector in obj's namespace;
--                             only given for a Deployment or StatefulSet that has been progressing, with
--                             no change, for longer than opts.fail_fast_after seconds
--                             (default 5), and at most once per that period each: pods are
--                             not listed on every check, yet a rollout whose pods cannot
--                             pull or keep crashing fails well before the deadline.
--   wait.poll(client, timeout) -> events no observer took (others use this instead of
--       client:poll so that an observer never loses its events to them).
-- Observers are registered on the client table (client._atom_observers, weak keys), which
-- is the only state shared between calls; close() removes them.
local core = require "atom.core"
local util = require "atom.release.util"
local records = require "atom.release.records"
local readiness = require "atom.readiness"

local wait = {}

-- Kinds whose objects may finish and be deleted (ttlSecondsAfterFinished): gone after being
-- seen ready is ready.
local FINISHES = { Job = true, Pod = true }

-- Kinds whose check can tell "failed" from the objects it owns (ctx.related) while the
-- object itself still just says "progressing": these are re-checked, with related, once
-- per grace period while they stay progressing.
local FAIL_FAST = { Deployment = { apps = true, extensions = true }, StatefulSet = { apps = true },
                    DaemonSet = { apps = true } }

local DEFAULT_FAIL_FAST_AFTER = 5
wait.DEFAULT_FAIL_FAST_AFTER = DEFAULT_FAIL_FAST_AFTER

-- The apiVersion a check means by a bare kind in ctx.get / ctx.related.
local KIND_API = { Pod = "v1", ReplicaSet = "apps/v1", StorageClass = "storage.k8s.io/v1",
  PersistentVolumeClaim = "v1", PersistentVolume = "v1", Service = "v1", Endpoints = "v1",
  ConfigMap = "v1", Secret = "v1", Node = "v1", Namespace = "v1", Deployment = "apps/v1",
  StatefulSet = "apps/v1", DaemonSet = "apps/v1", ControllerRevision = "apps/v1", Job = "batch/v1",
  EndpointSlice = "discovery.k8s.io/v1" }

-- Groups served by Kubernetes itself: their kinds have no CRD to look up.
local BUILTIN_GROUPS = { [""] = true, apps = true, batch = true, autoscaling = true, policy = true,
  extensions = true, ["networking.k8s.io"] = true, ["rbac.authorization.k8s.io"] = true,
  ["storage.k8s.io"] = true, ["apiextensions.k8s.io"] = true, ["apiregistration.k8s.io"] = true,
  ["admissionregistration.k8s.io"] = true, ["scheduling.k8s.io"] = true,
  ["coordination.k8s.io"] = true, ["node.k8s.io"] = true, ["discovery.k8s.io"] = true,
  ["certificates.k8s.io"] = true, ["events.k8s.io"] = true, ["flowcontrol.apiserver.k8s.io"] = true,
  ["resource.k8s.io"] = true, ["authentication.k8s.io"] = true, ["authorization.k8s.io"] = true,
  ["internal.apiserver.k8s.io"] = true, ["storagemigration.k8s.io"] = true }

local group_of = util.group_of

-- Whether version `version` of a CustomResourceDefinition declares status.conditions.
function wait.crd_declares_conditions(crd, version)
  local spec = type(crd) == "table" and crd.spec
  for _, v in ipairs(type(spec) == "table" and type(spec.versions) == "table" and spec.versions or {}) do
    if type(v) == "table" and v.name == version then
      local schema = type(v.schema) == "table" and v.schema.openAPIV3Schema
      local props = type(schema) == "table" and schema.properties
      local st = type(props) == "table" and props.status
      local stp = type(st) == "table" and st.properties
      return type(stp) == "table" and stp.conditions ~= nil
    end
  end
  return false
end

-- "group/version|Kind" -> true/false for every served version of every CRD in a list of
-- objects (plain tables).
function wait.crd_conditions(objects, out)
  out = out or {}
  for _, o in ipairs(objects) do
    if type(o) == "table" and o.kind == "CustomResourceDefinition" and group_of(o.apiVersion) == "apiextensions.k8s.io"
        and type(o.spec) == "table" and type(o.spec.names) == "table" then
      for _, v in ipairs(type(o.spec.versions) == "table" and o.spec.versions or {}) do
        if type(v) == "table" and v.name then
          out[tostring(o.spec.group) .. "/" .. v.name .. "|" .. tostring(o.spec.names.kind)] =
            wait.crd_declares_conditions(o, v.name)
        end
      end
    end
  end
  return out
end

-- A LabelSelector table ({ matchLabels, matchExpressions }) as a query string; a string
-- is taken as written. An empty selector gives nil: it would match everything.
local function selector_string(sel)
  if type(sel) == "string" then return sel ~= "" and sel or nil end
  if type(sel) ~= "table" then return nil end
  local parts = {}
  local keys = {}
  for k in pairs(type(sel.matchLabels) == "table" and sel.matchLabels or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. tostring(sel.matchLabels[k]) end
  for _, e in ipairs(type(sel.matchExpressions) == "table" and sel.matchExpressions or {}) do
    local vals = {}
    for _, x in ipairs(type(e.values) == "table" and e.values or {}) do vals[#vals + 1] = tostring(x) end
    table.sort(vals)
    if e.operator == "In" then parts[#parts + 1] = e.key .. " in (" .. table.concat(vals, ",") .. ")"
    elseif e.operator == "NotIn" then parts[#parts + 1] = e.key .. " notin (" .. table.concat(vals, ",") .. ")"
    elseif e.operator == "Exists" then parts[#parts + 1] = e.key
    elseif e.operator == "DoesNotExist" then parts[#parts + 1] = "!" .. e.key
    else return nil end
  end
  return #parts > 0 and table.concat(parts, ",") or nil
end
wait.selector_string = selector_string

local Observer = {}
Observer.__index = Observer

local check -- a verdict for one entry; defined below

local registry = util.observers

-- Kept under this name too: the observers' dispatch lives in util so records/apply share it.
wait.poll = util.poll

function wait.observe(client, opts)
  local self = setmetatable({ client = client, want = {}, order = {}, watchers = {}, kind_of = {},
                              kinds = {}, release = opts.release, namespace = opts.namespace,
                              phase = opts.phase, cancelled = false, check = opts.check,
                              fail_fast_after = opts.fail_fast_after or DEFAULT_FAIL_FAST_AFTER,
                              crd_cache = opts.crd_cache or {}, release_crds = {}, fetched = {},
                              slow = {}, getters = {},
                              overrides = opts.overrides,
                              -- Kept as verdicts change, so that a poll costs what arrived,
                              -- not a pass over every object (quadratic in a large release).
                              not_ready_count = 0, failed = {}, dirty_queue = {} },
                         Observer)
  registry(client)[self] = true
  local ok, err = self:add(opts.objects)
  if not ok then self:close(); return nil, err end
  if self.phase then
    local atom = records.get(client, self.namespace, self.release)
    self.cancelled = records.cancel_requested(atom, self.phase)
    self.atom_watch = client:watch(records.API_VERSION, "Atom", self.namespace,
      { fieldSelector = "metadata.name=" .. self.release })
  end
  return self
end

-- Whether o's readiness can change after it exists, so that its kind needs a watch: a
-- built-in check or a custom resource whose CRD declares (or may declare: lookup failed)
-- status.conditions, both decided once per kind (`known`, "apiVersion|Kind" -> boolean);
-- an override or the atom.conditions annotation, per object.
function Observer:needs_watch(o, kk, known)
  local by_kind = known[kk]
  if by_kind == nil then
    local has_check = readiness.for_kind(o.apiVersion, o.kind) ~= nil
    if has_check or BUILTIN_GROUPS[group_of(o.apiVersion)] then
      by_kind = has_check
    elseif self.release_crds[kk] ~= nil then
      by_kind = self.release_crds[kk]
    elseif not self.client:resource_for(o.apiVersion, o.kind) then
      -- Not served yet: no lookup now (its "unknown" would be cached for the checks).
      by_kind = true
    else
      by_kind = self:expects_conditions(o.apiVersion, o.kind) ~= false
    end
    known[kk] = by_kind
  end
  if by_kind or readiness.override_for(o, self.overrides) then return true end
  local ann = o.metadata.annotations
  return type(ann) == "table" and ann["atom.conditions"] ~= nil
end

-- Adds objects to wait for (prepared: namespaces defaulted); opens a list + watch for each
-- kind not watched yet that needs one (see the header). A kind not served yet (its CRD is
-- applied in this version) is watched once it is.
function Observer:add(objects)
  local fresh, known = {}, {}
  -- CRDs of this version answer expects_conditions for their kinds without a request.
  wait.crd_conditions(objects, self.release_crds)
  for _, o in ipairs(objects) do
    local k = util.key(o)
    if not self.want[k] then
      -- Only what names the object is kept: thousands of full copies would be most of
      -- the memory of a large release.
      local ref = { apiVersion = o.apiVersion, kind = o.kind,
                    metadata = { name = o.metadata.name, namespace = o.metadata.namespace } }
      local item = { obj = ref, live = nil, state = "progressing", message = "not found yet", dirty = true }
      self.want[k] = item
      self.order[#self.order + 1] = k
      item.index = #self.order
      self.not_ready_count = self.not_ready_count + 1
      self.dirty_queue[#self.dirty_queue + 1] = item
      local kk = o.apiVersion .. "|" .. o.kind
      local entry = self.kinds[kk]
      local needs = self:needs_watch(o, kk, known)
      if not entry then
        entry = { apiVersion = o.apiVersion, kind = o.kind, ns = o.metadata.namespace, keys = {},
                  lazy = not needs, not_ready = 0 }
        self.kinds[kk] = entry
        if needs then fresh[#fresh + 1] = entry; entry.queued = true end
      else
        if entry.ns ~= o.metadata.namespace then
          -- Several namespaces: one watch over all of them (reopened if already open).
          if entry.ns and entry.watcher then
            entry.watcher:close()
            self.kind_of[entry.watcher] = nil
            entry.watcher = nil
            fresh[#fresh + 1] = entry
            entry.queued = true
          end
          entry.ns = false
        end
        if needs and entry.lazy then
          entry.lazy = false
          if not entry.watcher and not entry.queued then fresh[#fresh + 1] = entry; entry.queued = true end
        end
        -- A lazy kind already looked at is looked at again for its new objects.
        entry.looked = nil
      end
      entry.keys[#entry.keys + 1] = k
      entry.not_ready = entry.not_ready + 1
      item.kind_entry = entry
      local applied = self.pending_applied and self.pending_applied[k]
      if applied then self.pending_applied[k] = nil; self:applied(applied) end
    end
  end
  self.deferred = self.deferred or {}
  for _, k in ipairs(fresh) do self.deferred[#self.deferred + 1] = k end
  return self:open_deferred(true)
end

function Observer:observe(obj, deleted)
  if type(obj) ~= "table" or not obj.metadata then return end
  local entry = self.want[util.key(obj)]
  if not entry then return end
  -- The watch opens before the apply, so it can still deliver the previous version's
  -- object (ready, at an older generation) or the one a recreate replaced: neither may
  -- count for the version just applied.
  local md = obj.metadata
  if entry.uid and md.uid and md.uid ~= entry.uid then return end
  if entry.min_generation and tonumber(md.generation) and tonumber(md.generation) < entry.min_generation then
    return
  end
  entry.live = not deleted and obj or nil
  -- Checked as it arrives when the check is known: a large release then holds verdicts,
  -- not thousands of live objects waiting for the wait to begin.
  if self.check then
    entry.dirty = true
    check(self, entry, self.check)
  else
    self:mark_dirty(entry)
  end
end

-- Whether the apply's answer for o is read: not for a kind ready once it exists and not
-- watched (see the header), whose thousands of answers would be decoded for nothing.
function Observer:wants_answer(o)
  local k = self.kinds[tostring(o.apiVersion) .. "|" .. tostring(o.kind)]
  return not (k and k.lazy)
end

-- Records what the apply returned for one object: from now on only that object (same uid)
-- at that generation or later counts.
function Observer:applied(live)
  if type(live) ~= "table" or type(live.metadata) ~= "table" then return end
  local key = util.key(live)
  if not self.want[key] then
    -- The apply may come before add() for objects not known ahead (see Engine:apply_version).
    self.pending_applied = self.pending_applied or {}
    self.pending_applied[key] = live
    return
  end
  local entry = self.want[key]
  entry.uid = live.metadata.uid
  entry.min_generation = tonumber(live.metadata.generation)
  self:observe(live)
end

-- Takes an event if it belongs to one of this observer's watches.
function Observer:accept(ev)
  if self.closed then return false end
  if ev.watcher ~= nil and ev.watcher == self.atom_watch then
    if ev.object and ev.type ~= "DELETED" then
      ev.object.spec, ev.object.status = ev.object.spec or {}, ev.object.status or {}
      if records.cancel_requested(ev.object, self.phase) then self.cancelled = true end
    end
    return true
  end
  local k = ev.watcher and self.kind_of[ev.watcher]
  if not k then return false end
  if ev.object then
    ev.object.apiVersion, ev.object.kind = ev.object.apiVersion or k.apiVersion, ev.object.kind or k.kind
    self:observe(ev.object, ev.type == "DELETED")
  end
  return true
end

-- Opens the list + watch of kinds not watched yet; a kind the server does not serve yet
-- stays deferred (its CRD is being applied), any other failure is an error.
function Observer:open_deferred()
  if not self.deferred then return true end
  local still = {}
  local selector = util.selector(self.release, self.namespace)
  for i, k in ipairs(self.deferred) do
    local ns = k.ns or nil
    local items, rv = self.client:list(k.apiVersion, k.kind, ns, { labelSelector = selector })
    if items then
      self:take_list(k, items)
      self:open_watch(k, selector, rv)
    elseif type(rv) == "table" and (rv.code == 404 or rv.code == 0) then
      still[#still + 1] = k
    else
      for j = i + 1, #self.deferred do still[#still + 1] = self.deferred[j] end
      self.deferred = still
      return nil, rv
    end
  end
  self.deferred = #still > 0 and still or nil
  return true
end

function Observer:take_list(k, items)
  for _, o in ipairs(items) do
    o.apiVersion, o.kind = o.apiVersion or k.apiVersion, o.kind or k.kind
    self:observe(o)
  end
end

function Observer:open_watch(k, selector, rv)
  local w = self.client:watch(k.apiVersion, k.kind, k.ns or nil, { labelSelector = selector, resourceVersion = rv })
  self.watchers[#self.watchers + 1] = w
  self.kind_of[w] = k
  k.watcher, k.queued = w, nil
end

-- The lazy kinds with objects not ready, not looked at yet: one list each, and a watch
-- from that list only when one of the kind's objects is still not ready after it.
-- -> true when it listed something (the verdicts changed), false, or nil, err.
function Observer:look_lazy(fn)
  local todo = {}
  for _, k in pairs(self.kinds) do
    if k.lazy and k.not_ready > 0 and not k.looked and not k.watcher and not k.queued then
      todo[#todo + 1] = k
    end
  end
  if #todo == 0 then return false end
  -- In the order of the objects, as the user listed them.
  table.sort(todo, function(a, b) return self.want[a.keys[1]].index < self.want[b.keys[1]].index end)
  local selector = util.selector(self.release, self.namespace)
  for _, k in ipairs(todo) do
    k.looked = true
    local items, rv = self.client:list(k.apiVersion, k.kind, k.ns or nil, { labelSelector = selector })
    if items then
      self:take_list(k, items)
      self:check_dirty(fn)
      if k.not_ready > 0 then self:open_watch(k, selector, rv) end
    elseif type(rv) == "table" and (rv.code == 404 or rv.code == 0) then
      -- Not served (yet): watched like any other kind once it is.
      k.lazy, k.queued = false, true
      self.deferred = self.deferred or {}
      self.deferred[#self.deferred + 1] = k
    else
      return nil, rv
    end
  end
  return true
end

function Observer:close()
  if self.closed then return end
  -- Events of our watches still queued in the client would be kept until someone polls:
  -- for a large release, thousands of objects. Take them now; hand back any others.
  local mine = {}
  for _, w in ipairs(self.watchers) do mine[w] = true end
  if self.atom_watch then mine[self.atom_watch] = true end
  local others = {}
  for _, ev in ipairs(self.client:poll(0) or {}) do
    if not mine[ev.watcher] then others[#others + 1] = ev end
  end
  util.requeue(self.client, others)
  self.closed = true
  for _, w in ipairs(self.watchers) do if self.kind_of[w] then w:close() end end
  if self.atom_watch then self.atom_watch:close() end
  registry(self.client)[self] = nil
end

-- ---- the ctx a check gets ------------------------------------------------------------

-- true/false when obj's kind is a custom resource whose CRD is known; nil otherwise (a
-- built-in kind, or the lookup failed: the check then decides without it).
function Observer:expects_conditions(api_version, kind)
  local key = tostring(api_version) .. "|" .. tostring(kind)
  local known = self.release_crds[key]
  if known ~= nil then return known end
  local group = group_of(api_version)
  if BUILTIN_GROUPS[group] then return nil end
  local cached = self.crd_cache[key] or self.fetched["crd|" .. key]
  if cached == nil then
    cached = "unknown"
    local info = self.client:resource_for(api_version, kind)
    if info and info.group and info.resource then
      local crd, err = self.client:get("apiextensions.k8s.io/v1", "CustomResourceDefinition", nil,
        info.resource .. "." .. info.group)
      if crd then
        cached = wait.crd_declares_conditions(crd, info.version)
      elseif not (type(err) == "table" and err.code == 404) then
        -- A failed lookup is asked again by the next observer, not on every check.
        self.fetched["crd|" .. key] = "unknown"
        return nil
      end
    end
    self.crd_cache[key] = cached
  end
  if cached == "unknown" then return nil end
  return cached
end

-- One live object by kind and name, fetched once per observer (nil when absent).
function Observer:get_related(kind, name, namespace)
  local api = KIND_API[kind]
  if not api or type(name) ~= "string" then return nil end
  local key = kind .. "|" .. tostring(namespace) .. "|" .. name
  local got = self.fetched[key]
  if got == nil then
    got = self.client:get(api, kind, namespace, name) or false
    self.fetched[key] = got
  end
  return got or nil
end

function Observer:list_related(kind, selector, namespace)
  local api = KIND_API[kind]
  local sel = selector_string(selector)
  if not api or not sel then return {} end
  local items = self.client:list(api, kind, namespace, { labelSelector = sel })
  return items or {}
end

-- The ctx for checking `live` (entry's object). related is handed out only when the grace
-- period allows it (see the header): that is what keeps a wait near one request per object.
function Observer:ctx_for(entry, live)
  local md = type(live.metadata) == "table" and live.metadata or {}
  local ns = md.namespace
  -- One getter per namespace, not a closure per check: a large release checks thousands.
  local key = ns or ""
  local get = self.getters[key]
  if not get then
    get = function(kind, name) return self:get_related(kind, name, ns) end
    self.getters[key] = get
  end
  local ctx = { expects_conditions = self:expects_conditions(live.apiVersion, live.kind), get = get }
  if entry.since then
    local now, grace = core.wall(), self.fail_fast_after
    if now - entry.since >= grace and now - (entry.related_at or 0) >= grace then
      entry.related_at = now
      ctx.related = function(kind, selector) return self:list_related(kind, selector, ns) end
    end
  end
  return ctx
end

local function fails_fast(obj)
  local groups = FAIL_FAST[obj.kind]
  return groups and groups[group_of(obj.apiVersion)] or false
end

-- The verdict of one entry, keeping the observer's counts of what is not ready and failed.
local function set_state(self, entry, state, message)
  local was_ready = entry.state == "ready"
  entry.state, entry.message = state, message
  local is_ready = state == "ready"
  if was_ready ~= is_ready then
    local d = is_ready and -1 or 1
    self.not_ready_count = self.not_ready_count + d
    local k = entry.kind_entry
    if k then k.not_ready = k.not_ready + d end
  end
  self.failed[entry] = state == "failed" or nil
end

function check(self, entry, fn)
  if entry.live == nil then
    if entry.gone_ready then
      set_state(self, entry, "ready", "gone after it was seen complete")
    else
      set_state(self, entry, "progressing", "not found yet")
    end
    entry.since, entry.kept, entry.related_at = nil, nil, nil
    self.slow[entry] = nil
  else
    local live = entry.live
    local ok, state, message = pcall(fn, live, self:ctx_for(entry, live))
    if not ok then state, message = "progressing", "readiness check raised: " .. tostring(state) end
    set_state(self, entry, state, message or "")
    if state == "ready" and FINISHES[entry.obj.kind] then entry.gone_ready = true end
    if state == "progressing" and fails_fast(entry.obj) then
      -- Kept so that it can be checked again (with related) when no event comes: a
      -- rollout stuck on pods that cannot start changes nothing in the Deployment. The
      -- grace runs from its last change, so one that is merely slow but moving (or a
      -- cluster busy with thousands of them) costs no lists.
      if not entry.recheck or not entry.since then entry.since = core.wall() end
      entry.kept = live
      self.slow[entry] = true
    else
      entry.since, entry.kept, entry.related_at = nil, nil, nil
      self.slow[entry] = nil
    end
    -- The verdict is kept, the object is not: the next event brings a fresh one.
    entry.live = nil
  end
  entry.dirty, entry.recheck = false, nil
end

-- Marks for a re-check the kept objects whose grace period has run out.
function Observer:recheck_due()
  local now, grace = core.wall(), self.fail_fast_after
  for e in pairs(self.slow) do
    if e.kept and not e.dirty and now - e.since >= grace and now - (e.related_at or 0) >= grace then
      e.live, e.recheck = e.kept, true
      self:mark_dirty(e)
    end
  end
end

function Observer:mark_dirty(entry)
  if entry.dirty then return end
  entry.dirty = true
  self.dirty_queue[#self.dirty_queue + 1] = entry
end

-- Checks the entries marked since the last call (only those: see dirty_queue).
function Observer:check_dirty(fn)
  local q = self.dirty_queue
  if #q == 0 then return end
  self.dirty_queue = {}
  for _, e in ipairs(q) do
    if e.dirty then check(self, e, fn) end
  end
end

-- The failed entry that comes first in the objects' order, or nil.
function Observer:first_failed()
  local first
  for e in pairs(self.failed) do
    if not first or e.index < first.index then first = e end
  end
  return first
end

function Observer:not_ready()
  local out = {}
  for _, k in ipairs(self.order) do
    local e = self.want[k]
    if e.state ~= "ready" then
      out[#out + 1] = { key = k, object = util.show(e.obj), state = e.state, message = e.message }
    end
  end
  return out
end

local function summary(list)
  local parts = {}
  for i, n in ipairs(list) do
    if i > 5 then parts[#parts + 1] = string.format("and %d more", #list - 5); break end
    parts[#parts + 1] = string.format("%s: %s", n.object, n.message)
  end
  return table.concat(parts, "; ")
end

-- How often the progress view is given the list of what is not ready: building it walks
-- every object, which a poll must not do each time an event arrives.
local PROGRESS_EVERY = 0.2

function Observer:run(opts)
  local want, client = self.want, self.client
  local fn = opts.check or self.check
  local n = #self.order
  local plural = n == 1 and "" or "s"
  local progress_at = 0
  local function show(nr)
    if opts.progress then
      opts.progress:update(nr, n)
      progress_at = core.monotonic() + PROGRESS_EVERY
    end
    return nr
  end
  local ok, derr = self:open_deferred()
  if not ok then return nil, derr end
  while true do
    if self.cancelled then
      return "cancelled", "cancel requested", show(self:not_ready())
    end
    self:recheck_due()
    self:check_dirty(fn)
    local failed = self:first_failed()
    if failed then
      return "failed", string.format("%s failed: %s", util.show(failed.obj), failed.message),
        show(self:not_ready())
    end
    if self.not_ready_count == 0 then
      -- Not shown object by object: the transition's "N objects ready" says it, and a
      -- large release would print hundreds of lines between readiness and the record.
      return "ready", string.format("%d object%s ready", n, plural), {}
    end
    if opts.progress and core.monotonic() >= progress_at then show(self:not_ready()) end
    local looked, lerr = self:look_lazy(fn)
    if looked == nil then return nil, lerr end
    local left = opts.deadline_at - core.wall()
    if looked then
      -- What the lists brought is judged at once, without waiting for an event.
    elseif left <= 0 then
      -- One last look before declaring the deadline: the watch may lag the server.
      for _, item in ipairs(self:not_ready()) do
        local e = want[item.key]
        local md = e.obj.metadata
        local live = client:get(e.obj.apiVersion, e.obj.kind, md.namespace, md.name)
        e.live = live or nil
        check(self, e, fn)
      end
      local nr = show(self:not_ready())
      if #nr == 0 then
        return "ready", string.format("%d object%s ready at the deadline", n, plural), nr
      end
      return "deadline", string.format("%d of %d not ready: %s", #nr, n, summary(nr)), nr
    else
      if opts.tick then
        local t, terr = opts.tick()
        if t == "cancel" then self.cancelled = true
        elseif t == nil and terr then return nil, terr end
      end
      if self.deferred then self:open_deferred() end
      wait.poll(client, math.min(opts.tick_every or 0.5, math.max(0.01, left)))
    end
  end
end

function wait.run(client, opts)
  local obs, err = wait.observe(client, opts)
  if not obs then return nil, err end
  local outcome, message, nr = obs:run(opts)
  obs:close()
  return outcome, message, nr
end

return wait
