-- atom.release.apply: puts a version's objects into the cluster and takes away the ones it
-- does not have.
--
--   apply.prepare(client, release_name, version, objects, default_ns) -> prepared | nil, err
--       copies with the release label, the version annotation and the namespace defaulted
--       (discovery says which kinds are namespaced); kinds not known yet (their CRD is in
--       this version) are resolved after the CRDs are Established.
--   apply.prepare_known(client, release_name, version, objects, default_ns) -> prepared, of
--       as prepare, leaving out objects whose kind is not served yet; `of` maps each given
--       object to its prepared copy, for apply's opts.prepared.
--   apply.apply(client, release_name, version, objects, default_ns, opts) -> prepared | nil, err
--       opts.prepared (prepare_known's `of`): copies already made, used instead of
--       preparing those objects again
--       opts.on_applied(live) sees each object as the server returned it, as the answer
--       arrives (not kept here: thousands of live objects would be most of a large
--       release's memory); opts.answer_needed(prepared) -> false: only the object's
--       existence matters, so its answer is not decoded and on_applied gets the object's
--       name alone (unless the answer shows a status or a deletion under way, then it is
--       read as usual); watch events arriving meanwhile go on to the observers
--       (util.poll) once the object they are about has been through on_applied
--       opts.log(message): what the user should read (an object recreated, a Warning the
--       server sent with an answer, as kubectl prints it)
--       opts.keepalive(): called at least every opts.keepalive_every seconds while the
--       apply and the prune run (the engine renews its lease there: a large apply on a slow
--       server can outlast it)
--       server-side apply (field manager atom, force) in dependency order, concurrently
--       within each group; immutable-field refusals recreate objects annotated
--       atom.dev/recreate (or atom/recreate) "true", and are an error otherwise.
--   apply.prune(client, release_name, keep, kinds, opts) -> deleted | nil, err
--       (opts.namespace: the release's namespace, part of what marks its objects;
--       opts.keep_namespace: a Namespace never pruned, the one holding the records; opts.dry_run;
--       opts.live: apply.live's answer taken before the apply, instead of listing now;
--       opts.keepalive: as for apply)
--       deletes live objects carrying this release's label, of the given kinds, that are
--       not in `keep` (prepared objects); never touches an object without the label.
-- The caller owns every table passed in; prepared objects are new tables down to their
-- metadata labels and annotations, and share what lies below (spec, data, ...) with the
-- objects given: read them, do not change them.
local util = require "atom.release.util"
local records = require "atom.release.records"
local json = require "atom.json"

local apply = {}

-- Dependency order (Helm's install order, simplified): what other objects need first.
local GROUP_OF = {
  Namespace = 1, CustomResourceDefinition = 1,
  PriorityClass = 2, StorageClass = 2, ServiceAccount = 2, Secret = 2, ConfigMap = 2,
  PersistentVolume = 2, PersistentVolumeClaim = 2, ClusterRole = 2, ClusterRoleBinding = 2,
  Role = 2, RoleBinding = 2, LimitRange = 2, ResourceQuota = 2, NetworkPolicy = 2,
  PodSecurityPolicy = 2, IngressClass = 2, RuntimeClass = 2,
  Service = 3,
}
apply.LAST_GROUP = 4

function apply.group(obj)
  return GROUP_OF[obj.kind] or apply.LAST_GROUP
end

local function recreate_allowed(obj)
  local a = (obj.metadata or {}).annotations or {}
  return a["atom.dev/recreate"] == "true" or a["atom/recreate"] == "true"
end

local function immutable(err)
  if type(err) ~= "table" or err.code ~= 422 then return false end
  local text = tostring(err.message or "")
  for _, c in ipairs(err.causes or {}) do text = text .. " " .. tostring(c.message or "") end
  return text:lower():find("immutable", 1, true) ~= nil
end

local function shallow(t)
  if type(t) ~= "table" then return t end
  local out = {}
  for k, v in pairs(t) do out[k] = v end
  return setmetatable(out, getmetatable(t))
end

-- One object made ready to apply; nil, err when its kind is unknown to the server.
local function prepare_one(client, release_name, version, obj, default_ns)
  local info, err = client:resource_for(obj.apiVersion, obj.kind)
  if not info then return nil, err end
  -- New tables down to the fields set here; what lies below (spec, data, ...) is shared
  -- with obj, read-only: a deep copy per object was most of prepare's time, and a release
  -- may be prepared more than once (a status read, a wait without the apply's observer).
  local o = shallow(obj)
  o.metadata = shallow(o.metadata) or {}
  o.metadata.labels = shallow(o.metadata.labels)
  o.metadata.annotations = shallow(o.metadata.annotations)
  if info.namespaced then
    if not o.metadata.namespace or o.metadata.namespace == "" then o.metadata.namespace = default_ns end
  else
    o.metadata.namespace = nil
  end
  o.metadata.labels = o.metadata.labels or {}
  o.metadata.labels[util.LABEL] = release_name
  o.metadata.labels[util.NS_LABEL] = default_ns
  o.metadata.annotations = o.metadata.annotations or {}
  o.metadata.annotations[util.VERSION_ANNOTATION] = tostring(version)
  -- Server-owned fields from a stored live copy would make the apply fail or conflict.
  o.metadata.resourceVersion, o.metadata.uid, o.metadata.creationTimestamp = nil, nil, nil
  o.metadata.managedFields, o.metadata.generation = nil, nil
  o.status = nil
  return o
end

function apply.prepare(client, release_name, version, objects, default_ns)
  local out = {}
  for i, obj in ipairs(objects) do
    local o, err = prepare_one(client, release_name, version, obj, default_ns)
    if not o then return nil, string.format("%s: %s", util.show(obj), tostring(err)) end
    out[i] = o
  end
  return out
end

-- As prepare, skipping objects whose kind the server does not serve yet (custom resources
-- of a CRD in the same version): what can be watched before anything is applied. The
-- copies made here are the ones apply uses (opts.prepared = of): preparing every object
-- twice per apply was a second copy of its metadata per object for nothing.
function apply.prepare_known(client, release_name, version, objects, default_ns)
  local out, of = {}, {}
  for _, obj in ipairs(objects) do
    local o = prepare_one(client, release_name, version, obj, default_ns)
    if o then out[#out + 1] = o; of[obj] = o end
  end
  return out, of
end

-- Prepares a group, reusing copies made before (done: given object -> prepared copy).
local function prepare_group(client, release_name, version, objects, default_ns, done)
  local out = {}
  for i, obj in ipairs(objects) do
    local o = done[obj]
    if not o then
      local err
      o, err = prepare_one(client, release_name, version, obj, default_ns)
      if not o then return nil, string.format("%s: %s", util.show(obj), tostring(err)) end
    end
    out[i] = o
  end
  return out
end

local function describe(err)
  if type(err) == "table" and err.message then return tostring(err.message) end
  return tostring(err)
end

-- The key util.key gives the object once prepared (namespace defaulted), without copying
-- it; nil when its kind is not served yet.
local function prepared_key(client, obj, default_ns)
  local info = client:resource_for(obj.apiVersion, obj.kind)
  if not info then return nil end
  local md = obj.metadata or {}
  local ns = ""
  if info.namespaced then
    ns = (md.namespace and md.namespace ~= "") and md.namespace or default_ns
  end
  return util.key_of(obj.apiVersion, obj.kind, ns, md.name)
end

local function event_key(ev)
  local o = ev.object
  if type(o) ~= "table" or type(o.metadata) ~= "table" then return nil end
  local w = ev.watcher
  local av, kind = o.apiVersion, o.kind
  if type(w) == "table" then av, kind = av or w.api_version, kind or w.kind end
  return util.key_of(av, kind, o.metadata.namespace, o.metadata.name)
end

-- Watch events that arrive while the apply runs go to the observers as they come, rather
-- than piling up as objects until the apply ends. An object's events wait until its
-- apply answer has gone to on_applied (unapplied[key] cleared): the observer must learn
-- the applied uid and generation before any state of the object, as when it saw them
-- all after the apply.
local HAND_ON_AT = 64

local function hand_on_events(client, unapplied)
  local evs = client.events
  if #evs < HAND_ON_AT then return end
  local now, held = {}, {}
  for _, ev in ipairs(evs) do
    local k = event_key(ev)
    if k and unapplied[k] then held[#held + 1] = ev else now[#now + 1] = ev end
  end
  if #now == 0 then return end
  client.events = now
  local rest = util.poll(client, 0)
  client:requeue(held)
  client:requeue(rest)
end

-- An answer left undecoded (opts.answer_needed said no): the object exists, and that is
-- all its check would read, unless the server says more (a status, a deletion under way).
-- The text is searched, not parsed: a match only means it is decoded after all.
local function undecoded(obj, text)
  if not text:find('"status"', 1, true) and not text:find('"deletionTimestamp"', 1, true) then
    return { apiVersion = obj.apiVersion, kind = obj.kind,
             metadata = { name = obj.metadata.name, namespace = obj.metadata.namespace } }
  end
  local live, err = json.try_decode(text)
  if type(live) ~= "table" then return nil, "the answer is not a JSON object: " .. tostring(err) end
  return live
end

-- Applies one group concurrently; recreates where allowed. Each answer goes to
-- opts.on_applied as it arrives and is not kept.
local function apply_group(client, group, opts, unapplied)
  local on_applied, answer_needed = opts.on_applied, opts.answer_needed
  local failed = {}
  local function handed(i, live)
    if unapplied then unapplied[util.key(group[i])] = nil end
    if on_applied and live then on_applied(live) end
  end
  local results = client:apply_many(group, {
    force = true, field_manager = "atom", dry_run = opts.dry_run,
    raw = on_applied and answer_needed and function(i) return not answer_needed(group[i]) end,
    on_result = function(i, r)
      local live, err = r.object, r.err
      -- What kubectl prints as "Warning: ...": deprecated APIs, fields that hide others.
      if r.warnings and opts.log then
        for _, w in ipairs(r.warnings) do opts.log(string.format("%s: warning from the server: %s", util.show(group[i]), w)) end
      end
      if not err and type(live) == "string" then live, err = undecoded(group[i], live) end
      if err then failed[#failed + 1] = { i = i, err = err } else handed(i, live) end
    end,
    idle = function()
      if unapplied then hand_on_events(client, unapplied) end
      if opts.keepalive then opts.keepalive() end
    end,
    idle_every = opts.keepalive_every,
  })
  -- Every object has its answer, or the apply is not done: never report one as applied
  -- that was not sent.
  for i = 1, #group do
    if results[i] == nil then
      return nil, string.format("applying %s: no answer from the server", util.show(group[i]))
    end
  end
  table.sort(failed, function(a, b) return a.i < b.i end)
  for _, f in ipairs(failed) do
    local i, err = f.i, f.err
    local obj = group[i]
    if immutable(err) and recreate_allowed(obj) and not opts.dry_run then
      local md = obj.metadata
      local _, derr = client:delete(obj.apiVersion, obj.kind, md.namespace, md.name,
        { propagation = "Foreground" })
      if derr then return nil, string.format("recreating %s: %s", util.show(obj), describe(derr)) end
      -- The old object may linger while its finalizers run; retry the create briefly.
      local made, aerr
      for _ = 1, 50 do
        made, aerr = client:apply(obj, { force = true, field_manager = "atom" })
        if made or not (aerr and aerr.code == 409) then break end
        util.poll(client, 0.1)
      end
      if not made then return nil, string.format("recreating %s: %s", util.show(obj), describe(aerr)) end
      handed(i, made)
      if opts.log then opts.log(string.format("recreated %s (immutable field changed)", util.show(obj))) end
    elseif immutable(err) then
      return nil, string.format("%s: %s (annotate it atom.dev/recreate: \"true\" to allow delete and recreate)",
        util.show(obj), describe(err))
    else
      return nil, string.format("applying %s: %s", util.show(obj), describe(err))
    end
  end
  return true
end

function apply.apply(client, release_name, version, objects, default_ns, opts)
  opts = opts or {}
  local done = opts.prepared or {}
  local groups = {}
  for g = 1, apply.LAST_GROUP do groups[g] = {} end
  for _, obj in ipairs(objects) do
    local g = groups[apply.group(obj)]
    g[#g + 1] = obj
  end
  -- Only an observer (on_applied) wants events handed on during the apply.
  local unapplied
  if opts.on_applied and not opts.dry_run then
    unapplied = {}
    for _, obj in ipairs(objects) do
      local k = done[obj] and util.key(done[obj]) or prepared_key(client, obj, default_ns)
      if k then unapplied[k] = true end
    end
  end
  local prepared = {}
  for g = 1, apply.LAST_GROUP do
    if #groups[g] > 0 then
      local batch, err = prepare_group(client, release_name, version, groups[g], default_ns, done)
      if not batch then return nil, err end
      local ok, aerr = apply_group(client, batch, opts, unapplied)
      if not ok then return nil, aerr end
      for _, o in ipairs(batch) do prepared[#prepared + 1] = o end
      if g == 1 and not opts.dry_run then
        local crds = {}
        for _, o in ipairs(batch) do
          if o.kind == "CustomResourceDefinition" then crds[#crds + 1] = o.metadata.name end
        end
        if #crds > 0 then
          local ok, werr = records.wait_established(client, crds, opts.crd_timeout or 60)
          if not ok then return nil, werr end
        end
      end
    end
  end
  return prepared
end

-- The release's live objects of the given kinds ("apiVersion|Kind" strings).
function apply.live(client, release_name, kinds, release_ns)
  local out = {}
  for _, k in ipairs(kinds or {}) do
    local api_version, kind = k:match("^(.-)|(.*)$")
    local items, err = client:list(api_version, kind, nil, { labelSelector = util.selector(release_name, release_ns) })
    if not items then
      -- A kind whose CRD is gone has no objects left to prune.
      if not (type(err) == "table" and (err.code == 404 or err.code == 0 and tostring(err.message):find("kind"))) then
        return nil, err
      end
    else
      for _, o in ipairs(items) do
        o.apiVersion = o.apiVersion or api_version
        o.kind = o.kind or kind
        out[#out + 1] = o
      end
    end
  end
  return out
end

function apply.prune(client, release_name, keep, kinds, opts)
  opts = opts or {}
  local wanted = {}
  for _, o in ipairs(keep) do wanted[util.key(o)] = true end
  local live, err = opts.live, nil
  if not live then
    live, err = apply.live(client, release_name, kinds, opts.namespace)
    if not live then return nil, err end
  end
  local doomed = {}
  for _, o in ipairs(live) do
    local labels = (o.metadata or {}).labels or {}
    -- The namespace holding the release's own records stays: deleting it would take the
    -- record of what happened with it.
    local protected = o.kind == "Namespace" and opts.keep_namespace and o.metadata.name == opts.keep_namespace
    if util.owned(o, release_name, opts.namespace) and not wanted[util.key(o)] and not (o.metadata or {}).deletionTimestamp
      and not protected then
      doomed[#doomed + 1] = o
    end
  end
  -- Dependents first: workloads before their Services and config, CRDs and Namespaces last.
  table.sort(doomed, function(a, b) return apply.group(a) > apply.group(b) end)
  if opts.dry_run then return doomed end
  for _, o in ipairs(doomed) do
    if opts.keepalive then opts.keepalive() end
    local md = o.metadata
    local _, derr = client:delete(o.apiVersion, o.kind, md.namespace, md.name, { propagation = "Background" })
    if derr then return nil, string.format("pruning %s: %s", util.show(o), describe(derr)) end
    if opts.log then opts.log("pruned " .. util.show(o)) end
  end
  return doomed
end

return apply
