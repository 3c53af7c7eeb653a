-- Shared helpers for the simulated cluster's controllers.
--
-- Ownership: every helper here works on values the caller owns; nothing keeps
-- state between sims. Per-sim state (work queues, timers, owner indexes) lives
-- in the objects these constructors return, which the calling controller keeps
-- in its own closure.

local core = require("atom.core")

local M = {}

-- Store write options for a table the controller built (or copied) for this write and drops
-- afterwards: the store keeps it instead of deep-copying it a second time.
local OWNED = { owned = true }
M.OWNED = OWNED

-- Kubernetes kind of a controller owner -> the store's resource key.
M.kind_rk = {
  ReplicaSet = "replicasets.apps",
  Deployment = "deployments.apps",
  StatefulSet = "statefulsets.apps",
  DaemonSet = "daemonsets.apps",
  Job = "jobs.batch",
  CronJob = "cronjobs.batch",
  ReplicationController = "replicationcontrollers",
}

-- A reconcile error goes to sim.log when the host set one; otherwise to
-- stderr and to sim.errors (bounded), where the sim keeps its own errors.
local function log(sim, msg)
  if type(sim.log) == "function" then
    sim.log(msg)
    return
  end
  io.stderr:write("atom sim controllers: ", msg, "\n")
  if type(sim.errors) == "table" and #sim.errors < 100 then
    sim.errors[#sim.errors + 1] = msg
  end
end
M.log = log

function M.copy(sim, t)
  return sim.util.copy(t)
end

function M.key(ns, name)
  return (ns or "") .. "/" .. name
end

-- Deep equality, used to skip writes that would change nothing: every write
-- bumps resourceVersion and wakes every watcher, and an unconditional write
-- from a reconcile that reacts to its own writes would never settle.
M.equal = require("atom.sim.util").equal

-- Work queue that coalesces reconcile requests per object key and drains them
-- in one timer turn, so a burst of events for 5,000 objects costs one timer,
-- not one per event.
function M.queue(sim, handler)
  local pending, order = {}, {}
  local scheduled = false
  local q = {}
  -- Lets the server send the watch events of the items done so far: a turn over
  -- thousands of objects would otherwise hold them all until it ends.
  local send_streams = sim.loop and sim.loop.flush or function() end

  local function flush()
    scheduled = false
    local batch, items = order, pending
    order, pending = {}, {}
    for i = 1, #batch do
      local it = items[batch[i]]
      local ok, err = pcall(handler, it.ns, it.name)
      if not ok then
        log(sim, "reconcile " .. batch[i] .. " failed: " .. tostring(err))
      end
      send_streams()
    end
  end

  function q.add(ns, name)
    local k = M.key(ns, name)
    if not pending[k] then
      pending[k] = { ns = ns, name = name }
      order[#order + 1] = k
    end
    if not scheduled then
      scheduled = true
      sim.clock:after(0, flush)
    end
  end

  return q
end

-- One pending timer per key: setting a key again replaces its timer, so a
-- pod or deployment never has more than one outstanding wake-up.
function M.timers(sim)
  local handles = {}
  local t = {}
  function t.set(key, delay, fn)
    local h = handles[key]
    if h then h:cancel() end
    local mine
    mine = sim.clock:after(delay, function()
      if handles[key] == mine then handles[key] = nil end
      fn()
    end)
    handles[key] = mine
  end
  function t.cancel(key)
    local h = handles[key]
    if h then
      h:cancel()
      handles[key] = nil
    end
  end
  function t.has(key)
    return handles[key] ~= nil
  end
  return t
end

-- Whether a store event can need the object's own controller: not for a
-- status-only write (usually the controller's own), which would only cost a
-- reconcile that finds nothing to do.
function M.needs_reconcile(ev, obj, old)
  if ev ~= "MODIFIED" or not old then return true end
  local m, om = obj.metadata, old.metadata
  return m.generation ~= om.generation or m.deletionTimestamp ~= om.deletionTimestamp
end

-- The controller ownerReference of obj, if any.
function M.controller_ref(obj)
  local refs = obj.metadata and obj.metadata.ownerReferences
  if not refs then return nil end
  for _, r in ipairs(refs) do
    if r.controller then return r end
  end
  return nil
end

function M.owner_ref(owner, api_version, kind)
  return {
    apiVersion = api_version,
    kind = kind,
    name = owner.metadata.name,
    uid = owner.metadata.uid,
    controller = true,
    blockOwnerDeletion = true,
  }
end

-- Index of children by their controller owner's uid, kept current from store
-- events, so a reconcile reads its own children instead of scanning the
-- namespace (which would make 5,000 Deployments quadratic).
-- on_change(owner_ref, child, event) is called for every child event.
function M.child_index(sim, child_rk, owner_kind, on_change)
  local by_owner = {}
  local idx = {}
  -- The controller ref of o when its kind is owner_kind: several indexes see
  -- every pod event, so this must be cheap for the others.
  local function ref_of(o)
    local refs = o and o.metadata.ownerReferences
    if not refs then return nil end
    for i = 1, #refs do
      local r = refs[i]
      if r.controller then
        if r.kind == owner_kind then return r end
        return nil
      end
    end
    return nil
  end
  sim.store:subscribe(function(ev, rk, obj, old)
    if rk ~= child_rk then return end
    local oref = ref_of(old)
    local nref = ev ~= "DELETED" and ref_of(obj) or nil
    if not oref and not nref then return end
    local ns, name = obj.metadata.namespace, obj.metadata.name
    local k = M.key(ns, name)
    if oref and (not nref or nref.uid ~= oref.uid) then
      local set = by_owner[oref.uid]
      if set then
        set[k] = nil
        if next(set) == nil then by_owner[oref.uid] = nil end
      end
    end
    if nref then
      local set = by_owner[nref.uid]
      if not set then
        set = {}
        by_owner[nref.uid] = set
      end
      set[k] = name
      on_change(nref, obj, ev)
    else
      on_change(oref, obj, ev)
    end
  end, child_rk)
  -- Children of owner (live objects, read-only), in no particular order.
  function idx.children(owner)
    local set = by_owner[owner.metadata.uid]
    local out = {}
    if not set then return out end
    local ns = owner.metadata.namespace
    for k, name in pairs(set) do
      local c = sim.store:get(child_rk, ns, name)
      if c then
        out[#out + 1] = c
      else
        set[k] = nil
      end
    end
    return out
  end
  return idx
end

-- Label selectors: a LabelSelector (matchLabels/matchExpressions) or, for
-- ReplicationController and Service, a plain map.
function M.selector_matches(sel, labels)
  if sel == nil then return false end
  labels = labels or {}
  if sel.matchLabels == nil and sel.matchExpressions == nil then
    for k, v in pairs(sel) do
      if labels[k] ~= v then return false end
    end
    return next(sel) ~= nil
  end
  for k, v in pairs(sel.matchLabels or {}) do
    if labels[k] ~= v then return false end
  end
  for _, e in ipairs(sel.matchExpressions or {}) do
    local v = labels[e.key]
    local inset = false
    for _, x in ipairs(e.values or {}) do
      if x == v then inset = true end
    end
    if e.operator == "In" and not inset then return false end
    if e.operator == "NotIn" and inset then return false end
    if e.operator == "Exists" and v == nil then return false end
    if e.operator == "DoesNotExist" and v ~= nil then return false end
  end
  return true
end

-- Stable text form of a Lua value with sorted keys. It only feeds the
-- template hash below; it is not a serialisation format anyone parses.
-- Empty maps count as absent (`resources: {}` from kubectl equals no
-- resources, as Go's struct comparison in the real controller sees it), and
-- the pod-template-hash label is left out so a ReplicaSet's template hashes
-- like the Deployment template it came from.
local function fingerprint(v, out)
  local tv = type(v)
  if tv ~= "table" then
    -- 30 (a default the server filled in) and 30.0 (cjson decodes every number as a
    -- float) are the same value: otherwise a template that went through a client, as
    -- `rollout undo` does, never matches the ReplicaSet it came from.
    if tv == "number" then v = math.tointeger(v) or v end
    out[#out + 1] = tv:sub(1, 1) .. tostring(v) .. ";"
    return
  end
  local keys = {}
  for k, x in pairs(v) do
    if not (type(x) == "table" and next(x) == nil) and k ~= "pod-template-hash" then
      keys[#keys + 1] = k
    end
  end
  local ok = pcall(table.sort, keys)
  if not ok then table.sort(keys, function(a, b) return tostring(a) < tostring(b) end) end
  out[#out + 1] = "{"
  for _, k in ipairs(keys) do
    out[#out + 1] = tostring(k) .. "="
    fingerprint(v[k], out)
  end
  out[#out + 1] = "}"
end

-- The alphabet Kubernetes uses for generated names and hashes (no vowels,
-- no look-alike digits), so names look like the real ones.
local ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

-- pod-template-hash / controller-revision-hash of a pod template: a hash of the
-- fingerprint, printed in the safe alphabet (10 chars like the real one). SHA-256 from
-- atom.core: FNV-1a written in Lua was 4% of the sim at 1,000 Deployments.
function M.template_hash(template)
  local parts = {}
  fingerprint(template, parts)
  -- 13 hex digits are 52 bits, more than the 27^10 names the 10 characters can hold.
  local n = tonumber(core.sha256_hex(table.concat(parts)):sub(1, 13), 16)
  local out = {}
  for i = 1, 10 do
    local d = n % #ALPHABET
    out[i] = ALPHABET:sub(d + 1, d + 1)
    n = n // #ALPHABET
  end
  return table.concat(out)
end

function M.random_suffix(n)
  local out = {}
  for i = 1, n or 5 do
    local d = math.random(#ALPHABET)
    out[i] = ALPHABET:sub(d, d)
  end
  return table.concat(out)
end

-- Create obj (a fresh table, handed over to the store) under name prefix ..
-- random suffix, retrying on a name clash like the real generateName does.
function M.create_named(sim, rk, obj, prefix)
  local created, err
  for _ = 1, 5 do
    obj.metadata.name = prefix .. M.random_suffix(5)
    created, err = sim.store:create(rk, obj, OWNED)
    if created then return created end
  end
  return nil, err
end

-- int-or-percent against a total, as Kubernetes' intstr does.
function M.int_or_percent(v, total, round_up, default)
  if v == nil then v = default end
  if type(v) == "number" then return math.floor(v) end
  if type(v) == "string" then
    local p = v:match("^(%d+)%%$")
    if p then
      local x = tonumber(p) * total / 100
      if round_up then return math.ceil(x) end
      return math.floor(x)
    end
    return tonumber(v) or 0
  end
  return 0
end

local function days_from_civil(y, m, d)
  y = m <= 2 and y - 1 or y
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = (153 * mp + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end
M.days_from_civil = days_from_civil

-- Seconds since the epoch of an RFC 3339 UTC timestamp (what the clock writes).
function M.parse_time(s)
  if type(s) ~= "string" then return nil end
  local y, mo, d, h, mi, sec, frac = s:match("^(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)(%.?%d*)Z$")
  if not y then return nil end
  local t = days_from_civil(tonumber(y), tonumber(mo), tonumber(d)) * 86400
    + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(sec)
  if frac ~= "" and frac ~= "." then t = t + tonumber("0" .. frac) end
  return t
end

-- Set a condition in conds (an array, changed in place). The transition time
-- moves only when the status changes, as every Kubernetes controller does.
-- Returns true when anything changed.
function M.set_condition(conds, ctype, status, reason, message, now, with_update_time)
  for _, c in ipairs(conds) do
    if c.type == ctype then
      if c.status == status and c.reason == reason and c.message == message then
        return false
      end
      if c.status ~= status then c.lastTransitionTime = now end
      c.status, c.reason, c.message = status, reason, message
      if with_update_time then c.lastUpdateTime = now end
      return true
    end
  end
  local c = { type = ctype, status = status, reason = reason, message = message,
              lastTransitionTime = now }
  if with_update_time then c.lastUpdateTime = now end
  conds[#conds + 1] = c
  return true
end

function M.get_condition(obj, ctype)
  local conds = obj.status and obj.status.conditions
  if not conds then return nil end
  for _, c in ipairs(conds) do
    if c.type == ctype then return c end
  end
  return nil
end

-- How a Job finished, "Complete" or "Failed" (nil while it runs), and the
-- condition that says so.
function M.job_finished(job)
  for _, t in ipairs({ "Complete", "Failed" }) do
    local c = M.get_condition(job, t)
    if c and c.status == "True" then return t, c end
  end
  return nil
end

function M.pod_ready(pod)
  local st = pod.status
  if not st or st.phase ~= "Running" then return false end
  local c = M.get_condition(pod, "Ready")
  return c ~= nil and c.status == "True"
end

-- Whether a ready pod has been ready for minReadySeconds; the second result
-- is how many seconds remain when it has not (so the caller can wake up then).
function M.pod_available(sim, pod, min_ready)
  if not M.pod_ready(pod) then return false end
  min_ready = min_ready or 0
  if min_ready <= 0 then return true end
  local c = M.get_condition(pod, "Ready")
  local since = M.parse_time(c.lastTransitionTime) or 0
  local left = since + min_ready - sim.clock:now()
  if left <= 0 then return true end
  return false, left
end

function M.pod_active(pod)
  local st = pod.status or {}
  return st.phase ~= "Succeeded" and st.phase ~= "Failed"
    and pod.metadata.deletionTimestamp == nil
end

-- Pod from a workload's template: labels, annotations and spec copied, an
-- ownerReference to the controller, and the defaults the API server fills.
-- The spec is copied one level deep: containers, volumes and the rest are
-- shared with the owner's stored template, which is never mutated (nor is the
-- pod once stored), instead of a deep copy per pod.
function M.pod_from_template(sim, template, owner, owner_api, owner_kind, extra_labels)
  local tmeta = template.metadata or {}
  local labels = sim.util.copy(tmeta.labels or {})
  for k, v in pairs(extra_labels or {}) do labels[k] = v end
  local spec = {}
  for k, v in pairs(template.spec or {}) do spec[k] = v end
  spec.restartPolicy = spec.restartPolicy or "Always"
  spec.dnsPolicy = spec.dnsPolicy or "ClusterFirst"
  spec.schedulerName = spec.schedulerName or "default-scheduler"
  spec.terminationGracePeriodSeconds = spec.terminationGracePeriodSeconds or 30
  spec.serviceAccountName = spec.serviceAccountName or "default"
  return {
    apiVersion = "v1",
    kind = "Pod",
    metadata = {
      namespace = owner.metadata.namespace,
      labels = labels,
      annotations = tmeta.annotations and sim.util.copy(tmeta.annotations) or nil,
      ownerReferences = { M.owner_ref(owner, owner_api, owner_kind) },
    },
    spec = spec,
  }
end

-- Whether ready_after = 0: then work happens in the same turn, no timers.
function M.instant(sim)
  return (sim.opts and sim.opts.ready_after) == 0
end

function M.ready_after(sim)
  local v = sim.opts and sim.opts.ready_after
  if v == nil then return 1 end
  return v
end

-- A short controller reaction delay (CRD established, LB address, PVC bound):
-- shorter than a pod start, zero in benchmark mode.
function M.short_delay(sim)
  local ra = M.ready_after(sim)
  if ra <= 0 then return 0 end
  return math.min(ra, 0.5)
end

-- Scenario rule for obj; nil-safe when no scenario is loaded.
function M.rule_for(sim, obj)
  local sc = sim.scenario
  if sc and sc.rule_for then
    local ok, r = pcall(sc.rule_for, sc, obj)
    if ok and type(r) == "table" then return r end
  end
  return {}
end

-- Records v1 Events about objects, as a controller's event recorder does:
-- a repeat of the same reason and message on the same object bumps count
-- and lastTimestamp instead of adding an event. It keeps per object (uid) the
-- names of its events; the controller calls forget(uid) when the object goes
-- (the Deployments' scaling events made a flat table grow with every
-- Deployment a long-lived sim ever ran, and forget scanned all of it).
function M.recorder(sim, component)
  local seen = {} -- uid -> { reason .. "\0" .. message -> event name }
  local r = {}
  function r.event(obj, etype, reason, message, host)
    local m = obj.metadata
    local ns = m.namespace or "default"
    local now = sim.clock:rfc3339(sim.clock:now())
    local uid = tostring(m.uid)
    local key = reason .. "\0" .. message
    local mine = seen[uid]
    local name = mine and mine[key]
    local cur = name and sim.store:get("events", ns, name)
    if cur then
      local upd = sim.util.copy(cur)
      upd.count = (cur.count or 1) + 1
      upd.lastTimestamp = now
      sim.store:update("events", upd)
      return
    end
    local ev = {
      apiVersion = "v1",
      kind = "Event",
      metadata = { namespace = ns },
      involvedObject = { apiVersion = obj.apiVersion, kind = obj.kind, name = m.name,
        namespace = m.namespace, uid = m.uid, resourceVersion = m.resourceVersion },
      reason = reason,
      message = message,
      type = etype,
      count = 1,
      firstTimestamp = now,
      lastTimestamp = now,
      source = { component = component, host = host },
      reportingComponent = component,
      reportingInstance = host or "",
    }
    local created = M.create_named(sim, "events", ev, m.name .. ".")
    if created then
      if not mine then mine = {} seen[uid] = mine end
      mine[key] = created.metadata.name
    end
  end
  function r.forget(uid)
    seen[tostring(uid)] = nil
  end
  return r
end

-- Write st as obj's status. The store takes only .status (and the name to
-- find the object), so a light table is passed instead of a copy of obj.
-- st is handed over: it becomes the stored status, so the caller builds it
-- fresh (a copy of the old status, changed) and does not change it after.
-- Returns the stored object, or nil and the store's error.
function M.write_status(sim, rk, obj, st)
  local m = obj.metadata
  return sim.store:update_status(rk, {
    apiVersion = obj.apiVersion,
    kind = obj.kind,
    metadata = { name = m.name, namespace = m.namespace },
    status = st,
  }, OWNED)
end

-- spec.replicas of a workload, defaulted to 1 as the API server does.
function M.spec_replicas(obj)
  local r = obj.spec and obj.spec.replicas
  if r == nil then return 1 end
  return r
end

-- Write st as obj's status unless it equals the stored one (see M.equal for
-- why). Returns the object as stored now.
function M.save_status(sim, rk, obj, st)
  if M.equal(st, obj.status) then return obj end
  return M.write_status(sim, rk, obj, st) or obj
end

-- Drop the named status counts that are 0: they are omitempty in the API, so
-- a real server never shows them as 0.
function M.omit_zero(st, fields)
  for _, f in ipairs(fields) do
    if st[f] == 0 then st[f] = nil end
  end
end

-- How many of pods are ready, and how many available (ready for min_ready
-- seconds); the third result is how soon the first of the others becomes
-- available, nil when none will without a change, so the caller can wake
-- up then.
function M.pod_counts(sim, pods, min_ready)
  local ready, available, wake = 0, 0, nil
  for _, p in ipairs(pods) do
    if M.pod_ready(p) then ready = ready + 1 end
    local ok, left = M.pod_available(sim, p, min_ready)
    if ok then
      available = available + 1
    elseif left and (not wake or left < wake) then
      wake = left
    end
  end
  return ready, available, wake
end

function M.mark_ready(sim, rk, obj)
  if type(sim.mark_ready) == "function" then
    sim:mark_ready(rk, obj)
  end
end

-- Records which generation of each object was last reported ready, so
-- mark_ready fires once per generation.
function M.ready_marks(sim, rk)
  local seen = {}
  local m = {}
  function m.mark(obj)
    local uid = obj.metadata.uid
    local gen = obj.metadata.generation or 0
    if seen[uid] == gen then return end
    seen[uid] = gen
    M.mark_ready(sim, rk, obj)
  end
  function m.forget(obj)
    seen[obj.metadata.uid] = nil
  end
  return m
end

-- Feeds q from the events of the controller's own resource rk. A status-only
-- write skips the reconcile (see needs_reconcile) unless every is true, for a
-- controller that reacts to its own status. On DELETED, forget(obj) drops
-- the controller's per-object state instead.
function M.watch(sim, rk, q, forget, every)
  sim.store:subscribe(function(ev, erk, obj, old)
    if erk ~= rk then return end
    if not every and not M.needs_reconcile(ev, obj, old) then return end
    if ev == "DELETED" then
      if forget then forget(obj) end
      return
    end
    q.add(obj.metadata.namespace, obj.metadata.name)
  end, rk)
end

-- The frame of a workload controller (ReplicaSet, StatefulSet, DaemonSet, Job,
-- Deployment, CronJob): per object a wake-up timer and a ready mark, and
-- w.children(owner), what it owns (child_rk, pods by default) from an index
-- that queues the owner whenever a child changes. Once reconcile(ns, name) is
-- defined, w.run(reconcile, forget) makes the queue w.q and watches rk; on
-- delete the timer and mark go, and forget(obj) drops any other state.
function M.workload(sim, rk, kind, child_rk)
  local w = { timers = M.timers(sim), marks = M.ready_marks(sim, rk) }
  w.children = M.child_index(sim, child_rk or "pods", kind, function(ref, child)
    w.q.add(child.metadata.namespace, ref.name)
  end).children
  -- Reconcile obj again after delay seconds (replacing an earlier wake-up).
  function w.wake(obj, delay)
    local ns, name = obj.metadata.namespace, obj.metadata.name
    w.timers.set(obj.metadata.uid, delay, function() w.q.add(ns, name) end)
  end
  function w.run(reconcile, forget)
    w.q = M.queue(sim, reconcile)
    M.watch(sim, rk, w.q, function(obj)
      w.timers.cancel(obj.metadata.uid)
      w.marks.forget(obj)
      if forget then forget(obj) end
    end)
  end
  return w
end

return M
