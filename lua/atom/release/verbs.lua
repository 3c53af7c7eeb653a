-- atom.release.verbs: what each CLI verb (and the embedding API, atom.api) does, returning
-- data rather than printing. atom.release.cli formats it and picks the exit code.
--
-- Every function takes `eo` (engine options): { kubeconfig, context, namespace, client
-- (an atom.kube client to reuse), lease_duration (default 15), deadline, history_limit,
-- interrupted = function() -> count, tty, out, quiet, log = function(line) } and returns
-- a result table | nil, err with err = { kind = "invalid"|"kube"|"busy"|"state"|"lua",
-- message = string } (__tostring).
--   verbs.run(release, eo)      -> { name, namespace, version, state }
--   verbs.resume(name, eo)      -> { name, namespace, version, state }
--   verbs.rollback(name, eo)    -> { name, namespace, version, state, to }   (eo.to: version)
--   verbs.cancel(name, eo)      -> { name, namespace, version, state, phase }
--   verbs.status(name, eo)      -> { name, namespace, state, version, previous, message,
--                                    attempt, step_started, versions, not_ready, transitions }
--   verbs.history(name, eo)     -> { { version, state, when, who, digest, script }, ... }
--   verbs.diff(release, eo)     -> { changes = { { object, action, fields } }, prune = { object... } }
local fsm = require "atom.fsm"
local readiness = require "atom.readiness"
local util = require "atom.release.util"
local records = require "atom.release.records"
local lease_mod = require "atom.release.lease"
local apply = require "atom.release.apply"
local engine = require "atom.release.engine"
local progress_mod = require "atom.release.progress"

local verbs = {}

local err_mt = { __tostring = function(e) return e.message end }
local function fail(kind, message, extra)
  local e = setmetatable({ kind = kind, message = tostring(message) }, err_mt)
  for k, v in pairs(extra or {}) do e[k] = v end
  return nil, e
end

local function describe(err)
  if type(err) == "table" and err.message then return tostring(err.message) end
  return tostring(err)
end

function verbs.connect(eo)
  if eo.client then return eo.client end
  local kube = require "atom.kube"
  local client, err = kube.connect({ kubeconfig = eo.kubeconfig, context = eo.context,
                                     namespace = eo.namespace, kubeconfig_data = eo.kubeconfig_data })
  if not client then return fail("kube", describe(err)) end
  return client
end

-- The client and the namespace a verb works in (the release's own, else the flag's, else the
-- kubeconfig context's): -> client, namespace | nil, nil, err.
local function open(eo, namespace)
  local client, cerr = verbs.connect(eo)
  if not client then return nil, nil, cerr end
  return client, namespace or eo.namespace or client.namespace or "default"
end

local function no_release(name, ns)
  return fail("state", string.format("no release %q in namespace %q", name, ns))
end

-- The release's Atom, or the error a verb answers with when it cannot be read or there is none.
local function existing(client, ns, name)
  local atom, aerr = records.get(client, ns, name)
  if atom then return atom end
  if aerr then return fail("kube", describe(aerr)) end
  return no_release(name, ns)
end

local function progress_for(eo, name)
  return eo.progress_view or progress_mod.new({ release = name, tty = eo.tty, out = eo.out, quiet = eo.quiet })
end

local function final_result(e, final)
  local st = e:status()
  return { name = e.name, namespace = e.namespace, version = util.int(st.version), state = final,
           message = st.message }
end

-- Takes the lease, builds the engine, drives to a terminal state, gives the lease back.
local function drive(client, ns, name, plan, eo)
  local l, lerr = lease_mod.acquire(client, ns, name, { duration = eo.lease_duration or 15 })
  if not l then
    if type(lerr) == "table" and lerr.busy then
      return fail("busy", lerr.message, { holder = lerr.holder, expires_in = lerr.expires_in })
    end
    return fail("kube", "taking the lease of " .. name .. ": " .. describe(lerr))
  end
  -- Read the record only once the lease is ours: what we read now cannot be moved by another run.
  local atom, aerr = records.get(client, ns, name)
  if aerr then l:release(); return fail("kube", describe(aerr)) end
  if not plan and not atom then
    l:release()
    return no_release(name, ns)
  end
  local view = progress_for(eo, name)
  if atom and l.taken_over and not fsm.terminal(atom.status.state or "") and (atom.status.state or "") ~= "" then
    view:log({ { "release", name }, { "version", atom.status.version },
               { "msg", "took over an expired lease; finishing the interrupted version first" } })
  end
  local e = engine.new({ client = client, namespace = ns, name = name, lease = l, plan = plan,
                         progress = view, interrupted = eo.interrupted, atom = atom })
  local final, msg, status = e:drive()
  view:finish()
  -- The lease goes back together with the last transition's background writes: the
  -- record, written first, already says how the run ended.
  if not e.lease_lost then
    local req = l:release_req()
    if req then e:background(req) end
  end
  -- Those writes are on their way (Engine:background); their round trip overlaps the
  -- closing of the watches.
  e:drop_observer()
  e:settle()
  if not final then
    return fail(status == "ATOM_EBUSY" and "busy" or "kube", msg)
  end
  return final_result(e, final)
end

-- Every kind must be served by the server or defined by a CRD of the same release; found
-- out before anything is written, as bad input (exit 2) naming where the object came from.
local function check_kinds(client, release)
  local ok, err = client:resource_for("v1", "Namespace")
  if not ok then return fail("kube", describe(err)) end
  local defined = {}
  for _, entry in ipairs(release.objects or {}) do
    local o = entry.object or entry
    if o.kind == "CustomResourceDefinition" and type(o.spec) == "table" and type(o.spec.names) == "table" then
      defined[tostring(o.spec.group) .. "/" .. tostring(o.spec.names.kind)] = true
    end
  end
  for _, entry in ipairs(release.objects or {}) do
    local o = entry.object or entry
    if not defined[util.group_of(o.apiVersion) .. "/" .. tostring(o.kind)] then
      local info, kerr = client:resource_for(o.apiVersion, o.kind)
      if not info then
        return fail("invalid", string.format("%s: unknown kind %s (apiVersion %s): %s",
          entry.source or util.show(o), tostring(o.kind), tostring(o.apiVersion), describe(kerr)))
      end
    end
  end
  return true
end

-- A loaded release lists { object, source } entries; a plain table may list the objects.
local function objects_of(release)
  local objects = {}
  for i, entry in ipairs(release.objects or {}) do objects[i] = entry.object or entry end
  return objects
end

function verbs.run(release, eo)
  eo = eo or {}
  local client, ns, cerr = open(eo, release.namespace)
  if not client then return nil, cerr end
  local kinds_ok, kerr = check_kinds(client, release)
  if not kinds_ok then return nil, kerr end
  local ok, rerr = records.ensure(client, ns)
  if not ok then return fail("kube", "preparing the records in namespace " .. ns .. ": " .. describe(rerr)) end
  local objects = objects_of(release)
  local deadline = eo.deadline or release.deadline or 300
  local plan = {
    objects = objects, digest = release.script_digest, script = release.script_path,
    deadline = deadline, rollback_deadline = eo.deadline or release.rollback_deadline or deadline,
    history_limit = eo.history_limit or release.history_limit or 10, release = release,
  }
  return drive(client, ns, release.name, plan, eo)
end

function verbs.resume(name, eo)
  eo = eo or {}
  local client, ns, cerr = open(eo)
  if not client then return nil, cerr end
  return drive(client, ns, name, nil, eo)
end

-- The newest version that reached Running before the one now live.
local function previous_good(atom, versions)
  local st = atom.status
  local live = st.state == "Running" and util.int(st.version) or util.int(st.previous) or 0
  local best
  for _, v in ipairs(versions) do
    if v.state == "Running" and v.version < live then best = v.version end
  end
  return best
end

function verbs.rollback(name, eo)
  eo = eo or {}
  local client, ns, cerr = open(eo)
  if not client then return nil, cerr end
  local atom, aerr = existing(client, ns, name)
  if not atom then return nil, aerr end
  local versions = records.list_versions(client, ns, name) or {}
  local to = util.int(eo.to) or previous_good(atom, versions)
  if not to then return fail("state", "release " .. name .. " has no earlier version that reached Running") end
  local v, verr = records.get_version(client, ns, name, to)
  if not v then return fail("state", string.format("version %d of %s: %s", to, name, describe(verr))) end
  local st = atom.status
  local plan = {
    objects = v.objects, digest = v.digest, script = v.script, rollback_of = to,
    deadline = eo.deadline or util.int(st.deadline) or 300,
    rollback_deadline = eo.deadline or util.int(st.rollbackDeadline) or util.int(st.deadline) or 300,
    history_limit = eo.history_limit or util.int(st.historyLimit) or 10,
  }
  local res, err = drive(client, ns, name, plan, eo)
  if res then res.to = to end
  return res, err
end

function verbs.cancel(name, eo)
  eo = eo or {}
  local client, ns, cerr = open(eo)
  if not client then return nil, cerr end
  for _ = 1, 10 do
    local atom, aerr = existing(client, ns, name)
    if not atom then return nil, aerr end
    local state = atom.status.state or ""
    local phase
    if state == "Pending" or state == "Updating" then phase = "Updating"
    elseif state == "Rollback" or state == "Cancelled" or state == "Deadline" or state == "Error" then phase = "Rollback"
    else
      return fail("state", string.format("release %s is %s: nothing to cancel", name, state == "" and "empty" or state))
    end
    atom.spec.cancel = { version = util.int(atom.status.version), state = phase, at = util.rfc3339(), by = util.who() }
    local live, werr = records.write(client, atom)
    if live then
      return { name = name, namespace = ns, version = util.int(atom.status.version), state = state, phase = phase }
    end
    if werr ~= "conflict" then return fail("kube", describe(werr)) end
  end
  return fail("kube", "the record of " .. name .. " kept changing; try again")
end

function verbs.history(name, eo)
  eo = eo or {}
  local client, ns, cerr = open(eo)
  if not client then return nil, cerr end
  local versions, err = records.list_versions(client, ns, name)
  if not versions then return fail("kube", describe(err)) end
  if #versions == 0 then
    if not records.get(client, ns, name) then return no_release(name, ns) end
  end
  return versions
end

function verbs.status(name, eo)
  eo = eo or {}
  local client, ns, cerr = open(eo)
  if not client then return nil, cerr end
  local atom, aerr = existing(client, ns, name)
  if not atom then return nil, aerr end
  local st = atom.status
  local out = { name = name, namespace = ns, state = st.state, version = util.int(st.version),
                previous = util.int(st.previous), message = st.message, attempt = util.int(st.attempt),
                step_started = st.stepStarted, deadline = util.int(st.deadline), digest = st.digest,
                transitions = st.transitions or {}, not_ready = {},
                cancel = atom.spec.cancel }
  out.versions = records.list_versions(client, ns, name) or {}
  -- Which objects of the version that should be live are not ready, and why (GETs: a
  -- status read is a snapshot, not a wait).
  local live_version = util.int(st.version) or 0
  if st.state == "Reverted" or st.state == "Rollback" then live_version = util.int(st.previous) or 0 end
  if live_version > 0 then
    local v = records.get_version(client, ns, name, live_version)
    local prepared = v and apply.prepare(client, name, live_version, v.objects, ns)
    for _, o in ipairs(prepared or {}) do
      local md = o.metadata
      local live = client:get(o.apiVersion, o.kind, md.namespace, md.name)
      local state, message = readiness.check(live)
      if state ~= "ready" then
        out.not_ready[#out.not_ready + 1] = { object = util.show(o), state = state, message = message }
      end
    end
  end
  return out
end

-- Fields whose values differ between two objects, as kubectl writes paths
-- (spec.containers[0].image; server-owned ones skipped).
local SKIP = { ["metadata.resourceVersion"] = true, ["metadata.managedFields"] = true,
               ["metadata.generation"] = true, ["metadata.creationTimestamp"] = true,
               ["metadata.uid"] = true, status = true }
local function changed_fields(a, b, prefix, out)
  out = out or {}
  local keys = {}
  for k in pairs(type(a) == "table" and a or {}) do keys[k] = true end
  for k in pairs(type(b) == "table" and b or {}) do keys[k] = true end
  for k in pairs(keys) do
    local path
    if math.type(k) == "integer" then
      path = (prefix or "") .. "[" .. (k - 1) .. "]"
    else
      path = prefix and (prefix .. "." .. tostring(k)) or tostring(k)
    end
    if not SKIP[path] then
      local x, y = a[k], b[k]
      if type(x) == "table" and type(y) == "table" then
        changed_fields(x, y, path, out)
      elseif x ~= y then
        out[#out + 1] = path
      end
    end
  end
  table.sort(out)
  return out
end

function verbs.diff(release, eo)
  eo = eo or {}
  local client, ns, cerr = open(eo, release.namespace)
  if not client then return nil, cerr end
  local objects = objects_of(release)
  local result = { changes = {}, prune = {} }
  local atom = records.get(client, ns, release.name)
  local version = atom and (util.int(atom.status.latest) or 0) + 1 or 1
  local known, unknown = {}, {}
  for _, o in ipairs(objects) do
    if client:resource_for(o.apiVersion, o.kind) then known[#known + 1] = o else unknown[#unknown + 1] = o end
  end
  local prepared, perr = apply.prepare(client, release.name, version, known, ns)
  if not prepared then return fail("kube", perr) end
  local dry = client:apply_many(prepared, { force = true, dry_run = true, field_manager = "atom" })
  for i, o in ipairs(prepared) do
    local md = o.metadata
    local live = client:get(o.apiVersion, o.kind, md.namespace, md.name)
    local r = dry[i] or {}
    local entry = { object = util.show(o) }
    if r.err and not live and type(r.err) == "table" and r.err.code == 404 then
      -- Its namespace does not exist yet (the run creates it): a plain create.
      entry.action = "create"
    elseif r.err then
      entry.action, entry.error = "error", describe(r.err)
    elseif not live then
      entry.action = "create"
    else
      -- The version annotation always changes; it says nothing about the object itself.
      local fields = {}
      for _, f in ipairs(changed_fields(live, r.object or {})) do
        if f ~= "metadata.annotations." .. util.VERSION_ANNOTATION then fields[#fields + 1] = f end
      end
      entry.action = #fields > 0 and "update" or "unchanged"
      entry.fields = fields
    end
    result.changes[#result.changes + 1] = entry
  end
  for _, o in ipairs(unknown) do
    result.changes[#result.changes + 1] = { object = util.show(o), action = "create",
      note = "kind not served yet (its CRD is created by this release)" }
  end
  if atom then
    local doomed = apply.prune(client, release.name, prepared, atom.status.kinds or {},
      { dry_run = true, namespace = ns, keep_namespace = ns }) or {}
    for _, o in ipairs(doomed) do result.prune[#result.prune + 1] = util.show(o) end
  end
  return result
end

return verbs
