-- Request routing and the REST verbs of the simulated API server, including watch streams.
-- Every function takes the sim instance (init.lua) and a request table as described in
-- ARCHITECTURE.md / the C server contract; responses are fresh tables owned by the C side.
local util = require "atom.sim.util"
local status = require "atom.sim.status"
local selectors = require "atom.sim.selectors"
local patchmod = require "atom.sim.patch"
local tables = require "atom.sim.tables"
local discovery = require "atom.sim.discovery"
local protobuf = require "atom.sim.protobuf"
local convert = require "atom.sim.convert"
local validate = require "atom.sim.validate"

local M = {}

local MAX_BODY = 3 * 1024 * 1024
local JSON = "application/json"

local function respond(code, body, ctype, headers)
  local h = headers or {}
  h["Content-Type"] = ctype or JSON
  return { status = code, headers = h, body = body }
end

local function status_resp(st)
  local headers = {}
  if st.retry_after then
    headers["Retry-After"] = tostring(math.floor(st.retry_after))
    st.details = st.details or {}
    st.details.retryAfterSeconds = math.floor(st.retry_after)
    st.retry_after = nil
  end
  return respond(st.code, util.encode(st), JSON, headers)
end
M.status_resp = status_resp

local function text(code, body)
  return respond(code, body, "text/plain; charset=utf-8")
end

local function split_path(path)
  local parts = {}
  for p in path:gmatch("[^/]+") do parts[#parts + 1] = util.url_decode(p) end
  return parts
end

---------------------------------------------------------------------------------------------
-- Body decoding

local function decode_body(body, ctype)
  if body == nil or body == "" then return nil, "empty body" end
  local first = body:match("^%s*(.)")
  if first == "{" or first == "[" then
    local v, err = util.decode(body)
    if v ~= nil then return v end
    if not (ctype or ""):find("yaml", 1, true) then return nil, err end
  end
  if (ctype or ""):find("yaml", 1, true) then
    local ok, core = pcall(require, "atom.core")
    if ok and type(core) == "table" and core.yaml_decode then
      local ok2, v, err = pcall(core.yaml_decode, body)
      if not ok2 then return nil, tostring(v) end
      if v == nil then return nil, tostring(err or "invalid YAML") end
      if type(v) == "table" and v[1] ~= nil and #v == 1 and type(v[1]) == "table" and first ~= "-" then
        v = v[1]
      end
      return util.strip_nulls(v)
    end
    return nil, "YAML bodies are not supported by this build; send JSON"
  end
  return util.decode(body)
end

local function decode_object(body, ctype)
  local v, err
  if (ctype or ""):find("application/vnd.kubernetes.protobuf", 1, true) then
    v, err = protobuf.decode(body)
    if v == nil then return nil, status.new(415, tostring(err), "UnsupportedMediaType") end
  else
    v, err = decode_body(body, ctype)
  end
  if v == nil then
    return nil, status.bad_request("the object provided is unrecognized or malformed: " .. tostring(err))
  end
  if not patchmod.is_map(v) then
    return nil, status.bad_request("the object provided is not a JSON object")
  end
  if v.metadata ~= nil and not patchmod.is_map(v.metadata) then
    return nil, status.bad_request("metadata must be an object")
  end
  return util.strip_nulls(v)
end

---------------------------------------------------------------------------------------------
-- Output helpers

local function api_version_of(sim, info, version)
  return sim.registry:api_version(info, version)
end

-- JSON of an object as seen through `version` (stored objects use the JSON cache).
local function obj_json(sim, info, version, obj)
  local seen = convert.to_version(info, obj, api_version_of(sim, info, version))
  if seen == obj then return sim.store:json(obj) end
  return util.encode(seen)
end

-- A request body in the request's version, turned into the storage version.
local function stored_form(sim, r, obj)
  obj.apiVersion = api_version_of(sim, r.info, r.version)
  return convert.to_storage(r.info, obj, api_version_of(sim, r.info, nil))
end

local function object_resp(sim, r, code, obj)
  if r.table then
    local t = tables.build(r.info, r.version, { obj }, { now = sim.clock:now(), include = r.q.includeObject,
      rv = obj.metadata.resourceVersion })
    return respond(code, util.encode(t), tables.CONTENT_TYPE)
  end
  return respond(code, obj_json(sim, r.info, r.version, obj))
end

-- The answer to a write, with the Warning headers a real server adds (validate.warnings):
-- kubectl prints them, and so does atom.
local function written_resp(sim, r, code, obj)
  local resp = object_resp(sim, r, code, obj)
  local warnings = validate.warnings(obj)
  if #warnings > 0 then
    for i, w in ipairs(warnings) do warnings[i] = '299 - "' .. w:gsub('[\\"]', '\\%0') .. '"' end
    resp.headers["Warning"] = warnings -- a list: one header line each
  end
  return resp
end

---------------------------------------------------------------------------------------------
-- Resource path parsing

local function parse_resource_path(sim, parts)
  local group, version, i
  if parts[1] == "api" then
    group, version, i = "", parts[2], 3
  else
    group, version, i = parts[2], parts[3], 4
  end
  if not version then return nil end
  local rest = {}
  for j = i, #parts do rest[#rest + 1] = parts[j] end
  if #rest == 0 then return nil end
  local ns, res, name, sub
  if rest[1] == "namespaces" and #rest >= 3 then
    local inner = sim.registry:lookup_gvr(group, version, rest[3])
    if inner and inner.namespaced then
      ns, res, name, sub = rest[2], rest[3], rest[4], rest[5]
      if #rest > 5 then return nil end
    elseif group == "" and #rest == 3 then
      res, name, sub = "namespaces", rest[2], rest[3]
    else
      return nil
    end
  else
    res, name, sub = rest[1], rest[2], rest[3]
    if #rest > 3 then return nil end
  end
  local info = sim.registry:lookup_gvr(group, version, res)
  if not info then return nil end
  if ns and not info.namespaced then return nil end
  if sub and not info.subresources[sub] then return nil end
  return { info = info, group = group, version = version, ns = ns, name = name, sub = sub }
end

local function verb_of(method, r, q)
  if method == "GET" then
    if r.name then return "get" end
    if q.watch == "true" or q.watch == "1" then return "watch" end
    return "list"
  elseif method == "POST" then return "create"
  elseif method == "PUT" then return "update"
  elseif method == "PATCH" then return "patch"
  elseif method == "DELETE" then return r.name and "delete" or "deletecollection"
  end
  return method:lower()
end

---------------------------------------------------------------------------------------------
-- Verbs

local function selectors_of(q)
  local ls, err = selectors.parse_labels(q.labelSelector)
  if not ls then return nil, nil, status.bad_request("unable to parse requirement: " .. tostring(err)) end
  local fs, ferr = selectors.parse_fields(q.fieldSelector)
  if not fs then return nil, nil, status.bad_request(ferr) end
  return ls, fs
end

local function list_objects(sim, r, ls, fs)
  local rk = r.info.rk
  local pinned = selectors.pinned_name(fs)
  local filter = function(o)
    return selectors.match_labels(ls, o.metadata.labels) and selectors.match_fields(fs, o)
  end
  if pinned and r.ns then
    local o = sim.store:get(rk, r.ns, pinned)
    if o and filter(o) then return { o } end
    return {}
  end
  return sim.store:list(rk, r.ns, (#ls > 0 or #fs > 0) and filter or nil)
end

local function do_list(sim, r)
  local q = r.q
  local ls, fs, err = selectors_of(q)
  if err then return status_resp(err) end
  local want = tonumber(q.resourceVersion)
  if want and want > sim.store.rv then
    return status_resp(status.new(504, string.format("Too large resource version: %d, current: %d",
      want, sim.store.rv), "Timeout", { causes = { { reason = "ResourceVersionTooLarge",
      message = "Too large resource version" } }, retryAfterSeconds = 1 }))
  end
  if want and q.resourceVersionMatch == "Exact" and want < sim.store.compacted_rv then
    return status_resp(status.expired(string.format("too old resource version: %d (%d)", want,
      sim.store.compacted_rv + 1)))
  end
  local items = list_objects(sim, r, ls, fs)
  local list_rv = sim.store.rv
  local cont, remaining
  local limit = tonumber(q.limit)
  if q.continue and q.continue ~= "" then
    local trv, key = q.continue:match("^(%d+):(.*)$")
    if not trv then return status_resp(status.bad_request("invalid continue token")) end
    if tonumber(trv) < sim.store.compacted_rv then
      return status_resp(status.expired("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter."))
    end
    list_rv = tonumber(trv)
    local start = #items + 1
    for i, o in ipairs(items) do
      if ((o.metadata.namespace or "") .. "/" .. o.metadata.name) > key then start = i break end
    end
    items = table.move(items, start, #items, 1, {})
  end
  if limit and limit > 0 and #items > limit then
    remaining = #items - limit
    local last = items[limit]
    cont = string.format("%d:%s/%s", list_rv, last.metadata.namespace or "", last.metadata.name)
    items = table.move(items, 1, limit, 1, {})
  end
  if r.table then
    local t = tables.build(r.info, r.version, items, { now = sim.clock:now(), include = q.includeObject,
      rv = tostring(list_rv), continue = cont, remaining = remaining })
    return respond(200, util.encode(t), tables.CONTENT_TYPE)
  end
  local parts = {}
  for i, o in ipairs(items) do parts[i] = obj_json(sim, r.info, r.version, o) end
  local meta = util.encode({ resourceVersion = tostring(list_rv), continue = cont, remainingItemCount = remaining })
  local body = string.format('{"kind":%s,"apiVersion":%s,"metadata":%s,"items":[%s]}',
    util.encode(r.info.list_kind), util.encode(api_version_of(sim, r.info, r.version)), meta,
    table.concat(parts, ","))
  return respond(200, body)
end

local function scale_of(sim, info, obj)
  local sel = util.get_path(obj, "spec", "selector")
  local sel_str
  if type(sel) == "table" and (sel.matchLabels or sel.matchExpressions) then
    sel_str = selectors.label_selector_string(sel)
  elseif type(sel) == "table" then
    sel_str = selectors.map_string(sel)
  end
  return {
    kind = "Scale", apiVersion = "autoscaling/v1",
    metadata = { name = obj.metadata.name, namespace = obj.metadata.namespace, uid = obj.metadata.uid,
      resourceVersion = obj.metadata.resourceVersion, creationTimestamp = obj.metadata.creationTimestamp },
    spec = { replicas = util.get_path(obj, "spec", "replicas") or 0 },
    status = { replicas = util.get_path(obj, "status", "replicas") or 0, selector = sel_str },
  }
end

local function do_get(sim, r)
  local obj = sim.store:get(r.info.rk, r.ns, r.name)
  if not obj then return status_resp(status.not_found(r.info, r.name)) end
  if r.sub == "log" then
    -- controllers may provide pod output through sim.pod_logs(pod, container); empty otherwise
    local logs = ""
    if type(sim.pod_logs) == "function" then
      local ok, l = pcall(sim.pod_logs, obj, r.q.container)
      if ok and type(l) == "string" then logs = l end
    end
    return text(200, logs)
  end
  if r.sub == "scale" then
    local sc = scale_of(sim, r.info, obj)
    if r.wants_table then
      local t = tables.build(r.info, r.version, { sc }, { now = sim.clock:now(), include = r.q.includeObject,
        rv = obj.metadata.resourceVersion, kind = "Scale" })
      return respond(200, util.encode(t), tables.CONTENT_TYPE)
    end
    return respond(200, util.encode(sc))
  end
  return object_resp(sim, r, 200, obj)
end

local function manager_of(r)
  local m = r.q.fieldManager
  if m and m ~= "" then return m end
  local ua = r.headers["user-agent"]
  if ua and ua ~= "" then return (ua:match("^([^/]+)") or ua) end
  return "unknown"
end

local function ctx_of(info)
  return { kind = info.kind, crd = info.crd }
end

local function dry_run(r)
  return r.q.dryRun == "All"
end

local function check_body_identity(r, obj, for_create)
  local meta = obj.metadata or {}
  if r.info.namespaced and meta.namespace and meta.namespace ~= "" and r.ns and meta.namespace ~= r.ns then
    return status.bad_request("the namespace of the provided object does not match the namespace sent on the request")
  end
  if not for_create and meta.name and meta.name ~= "" and meta.name ~= r.name then
    return status.bad_request(string.format("the name of the object (%s) does not match the name on the URL (%s)",
      tostring(meta.name), tostring(r.name)))
  end
  if obj.apiVersion ~= nil or obj.kind ~= nil then
    local av = api_version_of(r.sim, r.info, r.version)
    if obj.kind ~= nil and obj.kind ~= r.info.kind then
      return status.bad_request(string.format("the object kind %q does not match the expected kind %q",
        tostring(obj.kind), r.info.kind))
    end
    if obj.apiVersion ~= nil and obj.apiVersion ~= av then
      local found = false
      for _, v in ipairs(r.info.versions) do
        if api_version_of(r.sim, r.info, v) == obj.apiVersion then found = true end
      end
      if not found then
        return status.bad_request(string.format("the API version in the data (%s) does not match the expected API version (%s)",
          tostring(obj.apiVersion), av))
      end
    end
  end
  return nil
end

-- A write that itself changes metadata.managedFields (kubectl's client-side to server-side apply
-- migration does, with a JSON patch) is trusted as the new ownership record, as the apiserver
-- does; an empty list resets tracking.
local function client_set_managed_fields(old, new)
  local mf = new.metadata.managedFields
  if mf == nil or util.equal(mf, old.metadata.managedFields) then return false end
  if not patchmod.is_list(mf) and not (type(mf) == "table" and next(mf) == nil) then
    new.metadata.managedFields = nil
    return false
  end
  if next(mf) == nil then new.metadata.managedFields = nil end
  return true
end

-- How a create, update or patch records its manager's Update entry in managedFields.
local function update_opts(sim, r)
  return { manager = manager_of(r), ctx = ctx_of(r.info),
    api_version = api_version_of(sim, r.info, r.version), time = sim.clock:rfc3339() }
end

-- An update or patch (not an apply): the old managedFields carry over with this manager's
-- Update entry added, unless the client sent managedFields of its own.
local function track_update(sim, r, old, new)
  if client_set_managed_fields(old, new) then return end
  new.metadata.managedFields = old.metadata.managedFields
  patchmod.record_update(old, new, update_opts(sim, r))
end

-- Access and identity reviews: everyone may do everything in the simulated cluster.
local function do_review(sim, r, obj)
  obj.apiVersion = api_version_of(sim, r.info, r.version)
  obj.kind = r.info.kind
  obj.metadata = { creationTimestamp = util.null }
  if r.info.kind == "SelfSubjectAccessReview" then
    obj.status = { allowed = true, reason = "atom sim allows every request" }
  elseif r.info.kind == "SelfSubjectRulesReview" then
    obj.status = { resourceRules = util.array({ { verbs = util.array({ "*" }), apiGroups = util.array({ "*" }),
      resources = util.array({ "*" }) } }), nonResourceRules = util.array({ { verbs = util.array({ "*" }),
      nonResourceURLs = util.array({ "*" }) } }), incomplete = false }
  else
    obj.status = { userInfo = { username = r.user or "system:anonymous",
      groups = util.array({ r.user and "system:authenticated" or "system:unauthenticated" }) } }
  end
  return respond(201, util.encode(obj))
end

local function do_create(sim, r)
  if r.name then return status_resp(status.method_not_allowed()) end
  local obj, err = decode_object(r.body, r.headers["content-type"])
  if not obj then return status_resp(err) end
  if r.info.review then return do_review(sim, r, obj) end
  local bad = check_body_identity(r, obj, true)
  if bad then return status_resp(bad) end
  obj.metadata = obj.metadata or {}
  if r.info.namespaced then obj.metadata.namespace = r.ns or obj.metadata.namespace end
  obj = stored_form(sim, r, obj)
  obj.kind = r.info.kind
  if r.info.subresources.status and r.info.kind ~= "Namespace" then obj.status = nil end
  obj.metadata.managedFields = nil
  patchmod.record_update(nil, obj, update_opts(sim, r))
  local created, cerr = sim.store:create(r.info.rk, obj, { dry_run = dry_run(r), owned = true })
  if not created then return status_resp(cerr) end
  return written_resp(sim, r, 201, created)
end

local function write_back(sim, r, old, new, code)
  local opts = { dry_run = dry_run(r), owned = true }
  if r.sub == "status" then opts.status_write = true end
  local res, err = sim.store:update(r.info.rk, new, opts)
  if not res then return status_resp(err) end
  return written_resp(sim, r, code or 200, res)
end

local function apply_scale(sim, r, old, scale)
  local rv = util.get_path(scale, "metadata", "resourceVersion")
  if rv and rv ~= "" and rv ~= old.metadata.resourceVersion then
    return status_resp(status.conflict(r.info, r.name))
  end
  local replicas = util.get_path(scale, "spec", "replicas")
  if type(replicas) ~= "number" or replicas < 0 then
    return status_resp(status.invalid({ kind = "Scale", group = "autoscaling" }, r.name,
      { status.cause("FieldValueInvalid", "spec.replicas", "Invalid value: must be greater than or equal to 0") }))
  end
  local new = util.copy(old)
  new.spec = new.spec or {}
  new.spec.replicas = math.tointeger(replicas) or replicas
  new.metadata.resourceVersion = nil
  patchmod.record_update(old, new, { manager = manager_of(r), ctx = ctx_of(r.info),
    api_version = old.apiVersion, time = sim.clock:rfc3339(), subresource = "scale" })
  local res, err = sim.store:update(r.info.rk, new, { dry_run = dry_run(r), owned = true })
  if not res then return status_resp(err) end
  return respond(200, util.encode(scale_of(sim, r.info, res)))
end

local function do_update(sim, r)
  local body, err = decode_object(r.body, r.headers["content-type"])
  if not body then return status_resp(err) end
  local old = sim.store:get(r.info.rk, r.ns, r.name)
  if not old then return status_resp(status.not_found(r.info, r.name)) end
  if r.sub == "scale" then return apply_scale(sim, r, old, body) end
  local bad = check_body_identity(r, body, false)
  if bad then return status_resp(bad) end
  body.metadata = body.metadata or {}
  body.metadata.name = r.name
  body.metadata.namespace = r.ns
  if r.sub == "status" then
    local rv = body.metadata.resourceVersion
    if rv and rv ~= "" and rv ~= old.metadata.resourceVersion then
      return status_resp(status.conflict(r.info, r.name))
    end
    local new = util.copy(old)
    new.status = body.status
    return write_back(sim, r, old, new)
  end
  body = stored_form(sim, r, body)
  body.kind = r.info.kind
  if r.info.subresources.status then body.status = old.status end
  track_update(sim, r, old, body)
  return write_back(sim, r, old, body)
end

local PATCH_TYPES = {
  ["application/json-patch+json"] = "json",
  ["application/merge-patch+json"] = "merge",
  ["application/strategic-merge-patch+json"] = "strategic",
  ["application/apply-patch+yaml"] = "apply",
  ["application/apply-patch+json"] = "apply",
}

-- Upgrade path from client-side to server-side apply (apimachinery's last-applied manager):
-- conflicts with the client-side apply manager on fields that its
-- last-applied-configuration annotation lists are not reported.
local function last_applied_allows(old, conflicts, ctx)
  local ann = util.get_path(old, "metadata", "annotations", "kubectl.kubernetes.io/last-applied-configuration")
  if type(ann) ~= "string" then return false end
  local last = util.decode(ann)
  if not patchmod.is_map(last) then return false end
  local set = patchmod.fieldset(util.strip_nulls(last), ctx, false)
  for _, c in ipairs(conflicts) do
    if c.manager ~= "kubectl-client-side-apply" or not set[c.raw] then return false end
  end
  return true
end

local function do_apply(sim, r, old)
  local manager = r.q.fieldManager
  if not manager or manager == "" then
    return status_resp(status.bad_request(
      'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch'))
  end
  local body, err = decode_object(r.body, "application/apply-patch+yaml")
  if not body then return status_resp(err) end
  if util.get_path(body, "metadata", "managedFields") then
    return status_resp(status.bad_request("metadata.managedFields must be nil"))
  end
  local bad = check_body_identity(r, body, false)
  if bad then return status_resp(bad) end
  if body.kind == nil or body.apiVersion == nil then
    return status_resp(status.bad_request("invalid object type: apiVersion and kind must be set for apply"))
  end
  body.metadata = body.metadata or {}
  local want_rv = body.metadata.resourceVersion
  if want_rv and want_rv ~= "" and (not old or want_rv ~= old.metadata.resourceVersion) then
    if not old then return status_resp(status.not_found(r.info, r.name)) end
    return status_resp(status.conflict(r.info, r.name))
  end
  body.metadata.resourceVersion = nil
  body.metadata.name = r.name
  if r.info.namespaced then body.metadata.namespace = r.ns else body.metadata.namespace = nil end
  local av = api_version_of(sim, r.info, r.version)
  body = stored_form(sim, r, body)
  local with_status = r.sub == "status"
  -- body is this request's fresh, null-free decode: apply may keep it (owned)
  local merged, conflicts = patchmod.apply(old, body, { manager = manager, force = r.q.force == "true",
    api_version = av, time = sim.clock:rfc3339(), ctx = ctx_of(r.info),
    with_status = with_status or not r.info.subresources.status, owned = true })
  if not merged and old and last_applied_allows(old, conflicts, ctx_of(r.info)) then
    merged, conflicts = patchmod.apply(old, body, { manager = manager, force = true,
      api_version = av, time = sim.clock:rfc3339(), ctx = ctx_of(r.info),
      with_status = with_status or not r.info.subresources.status, owned = true })
  end
  if not merged then
    local causes = util.array()
    for i, c in ipairs(conflicts) do
      causes[i] = { reason = "FieldManagerConflict",
        message = "conflict with " .. patchmod.manager_text(c), field = c.path }
    end
    return status_resp(status.new(409, patchmod.conflict_message(conflicts), "Conflict", { causes = causes }))
  end
  merged.apiVersion = api_version_of(sim, r.info, nil)
  merged.kind = r.info.kind
  if not old then
    if with_status then return status_resp(status.not_found(r.info, r.name)) end
    local created, cerr = sim.store:create(r.info.rk, merged, { dry_run = dry_run(r), owned = true })
    if not created then return status_resp(cerr) end
    return written_resp(sim, r, 201, created)
  end
  merged.metadata.resourceVersion = old.metadata.resourceVersion
  if r.info.subresources.status and not with_status then merged.status = old.status end
  return write_back(sim, r, old, merged)
end

local function do_patch(sim, r)
  local ctype = (r.headers["content-type"] or ""):match("^([^;%s]+)") or ""
  local kind = PATCH_TYPES[ctype]
  if not kind then return status_resp(status.unsupported_media(ctype)) end
  if kind == "strategic" and r.info.crd then return status_resp(status.unsupported_media(ctype)) end
  if r.body and #r.body > MAX_BODY then return status_resp(status.too_large()) end
  local old = sim.store:get(r.info.rk, r.ns, r.name)
  if kind == "apply" then
    if r.sub == "scale" then kind = "merge" else return do_apply(sim, r, old) end
  end
  if not old then return status_resp(status.not_found(r.info, r.name)) end
  local p, perr = decode_body(r.body, ctype)
  if p == nil then
    return status_resp(status.bad_request("error decoding patch: " .. tostring(perr)))
  end
  local base = r.sub == "scale" and scale_of(sim, r.info, old)
    or convert.to_version(r.info, old, api_version_of(sim, r.info, r.version))
  local patched, err
  if kind == "json" then
    patched, err = patchmod.json_patch(base, p)
    if not patched then return status_resp(status.new(422, tostring(err), "Invalid")) end
  elseif kind == "merge" then
    if not patchmod.is_map(p) then return status_resp(status.bad_request("merge patch must be a JSON object")) end
    patched = patchmod.merge_patch(base, p)
  else
    if not patchmod.is_map(p) then return status_resp(status.bad_request("strategic merge patch must be a JSON object")) end
    patched, err = patchmod.strategic_merge(base, p, ctx_of(r.info))
    if not patched then return status_resp(status.bad_request(err)) end
  end
  if not patchmod.is_map(patched) then return status_resp(status.bad_request("patch result is not an object")) end
  util.strip_nulls(patched)
  if r.sub == "scale" then return apply_scale(sim, r, old, patched) end
  patched = convert.to_storage(r.info, patched, api_version_of(sim, r.info, nil))
  patched.metadata = patchmod.is_map(patched.metadata) and patched.metadata or {}
  local rv = patched.metadata.resourceVersion
  if rv ~= nil and rv ~= old.metadata.resourceVersion then
    return status_resp(status.conflict(r.info, r.name))
  end
  if patched.metadata.name ~= r.name then
    return status_resp(status.bad_request("metadata.name cannot be changed by a patch"))
  end
  patched.metadata.namespace = old.metadata.namespace
  patched.metadata.uid = old.metadata.uid
  if r.sub ~= "status" then track_update(sim, r, old, patched) end
  return write_back(sim, r, old, patched)
end

local function delete_options(r)
  local opts = {}
  if r.body and r.body:match("%S") then
    local b, err = decode_body(r.body, r.headers["content-type"])
    if b == nil or not patchmod.is_map(b) then
      return nil, status.bad_request("invalid DeleteOptions: " .. tostring(err))
    end
    opts.propagation = b.propagationPolicy
    opts.grace = b.gracePeriodSeconds
    opts.preconditions = b.preconditions
    if type(b.dryRun) == "table" and b.dryRun[1] == "All" then opts.dry_run = true end
    if b.orphanDependents == true then opts.propagation = opts.propagation or "Orphan" end
  end
  local q = r.q
  if q.propagationPolicy then opts.propagation = q.propagationPolicy end
  if q.gracePeriodSeconds then opts.grace = tonumber(q.gracePeriodSeconds) end
  if dry_run(r) then opts.dry_run = true end
  local p = opts.propagation
  if p ~= nil and p ~= "Orphan" and p ~= "Background" and p ~= "Foreground" then
    return nil, status.bad_request("propagationPolicy: Unsupported value: " .. tostring(p))
  end
  return opts
end

local function do_delete(sim, r)
  local opts, err = delete_options(r)
  if not opts then return status_resp(err) end
  local res, derr = sim.store:delete(r.info.rk, r.ns, r.name, opts)
  if not res then return status_resp(derr) end
  return object_resp(sim, r, 200, res)
end

local function do_deletecollection(sim, r)
  local opts, err = delete_options(r)
  if not opts then return status_resp(err) end
  local ls, fs, serr = selectors_of(r.q)
  if serr then return status_resp(serr) end
  local items = list_objects(sim, r, ls, fs)
  local parts = {}
  for _, o in ipairs(items) do
    local res = sim.store:delete(r.info.rk, o.metadata.namespace, o.metadata.name, opts)
    if res then parts[#parts + 1] = obj_json(sim, r.info, r.version, res) end
  end
  local body = string.format('{"kind":%s,"apiVersion":%s,"metadata":{"resourceVersion":"%d"},"items":[%s]}',
    util.encode(r.info.list_kind), util.encode(api_version_of(sim, r.info, r.version)), sim.store.rv,
    table.concat(parts, ","))
  return respond(200, body)
end

---------------------------------------------------------------------------------------------
-- Watch

local function close_watch(sim, w, finish)
  if w.closed then return end
  w.closed = true
  for _, t in ipairs(w.timers) do if t and t.cancel then pcall(t.cancel, t) end end
  sim.watchers[w.id] = nil
  local byrk = w.index_key and sim.watch_by_name[w.index_key] or sim.watch_by_rk[w.rk]
  if byrk then
    byrk[w.id] = nil
    if w.index_key and next(byrk) == nil then sim.watch_by_name[w.index_key] = nil end
  end
  if finish then pcall(sim.loop.finish, w.id) end
end
M.close_watch = close_watch

-- data, ...: pieces of one chunk (loop.write joins them in C)
local function write(sim, w, ...)
  if w.closed then return false end
  local ok, res = pcall(sim.loop.write, w.id, ...)
  if not ok or res == false then
    close_watch(sim, w, false)
    return false
  end
  return true
end

local EVENT_HEAD = {}
for _, typ in ipairs({ "ADDED", "MODIFIED", "DELETED" }) do EVENT_HEAD[typ] = '{"type":"' .. typ .. '","object":' end
local EVENT_TAIL = "}\n"

-- A watch event line as the pieces to write: its envelope's head, the object's JSON (for a
-- stored object the store's cached encoding, not copied into a line of its own) and tail.
local function event_line(sim, w, typ, obj)
  local head = EVENT_HEAD[typ] or ('{"type":"' .. typ .. '","object":')
  if w.table and (typ == "ADDED" or typ == "MODIFIED" or typ == "DELETED") then
    local t = tables.build(w.info, w.version, { obj }, { now = sim.clock:now(), include = w.include,
      rv = obj.metadata.resourceVersion, no_columns = not w.first })
    w.first = false
    return head, util.encode(t), EVENT_TAIL
  end
  return head, obj_json(sim, w.info, w.version, obj), EVENT_TAIL
end

local function matches(w, obj)
  if not obj then return false end
  if w.ns and obj.metadata.namespace ~= w.ns then return false end
  return selectors.match_labels(w.ls, obj.metadata.labels) and selectors.match_fields(w.fs, obj)
end

local function send_bookmark(sim, w, extra_annotations)
  local meta = { resourceVersion = tostring(w.last_rv), annotations = extra_annotations }
  local obj = { kind = w.info.kind, apiVersion = api_version_of(sim, w.info, w.version), metadata = meta }
  return write(sim, w, '{"type":"BOOKMARK","object":' .. util.encode(obj) .. '}\n')
end

-- Deliver one store event to a watcher (filters, maps to ADDED/MODIFIED/DELETED).
function M.deliver(sim, w, ev)
  if w.closed or ev.rv <= w.last_rv then return end
  if w.pending then
    w.backlog[#w.backlog + 1] = ev
    return
  end
  local typ
  local now_match = matches(w, ev.obj)
  if ev.type == "ADDED" then
    typ = now_match and "ADDED" or nil
  elseif ev.type == "MODIFIED" then
    local was = matches(w, ev.old)
    if was and now_match then typ = "MODIFIED"
    elseif now_match then typ = "ADDED"
    elseif was then typ = "DELETED" end
  elseif ev.type == "DELETED" then
    typ = (now_match or matches(w, ev.old)) and "DELETED" or nil
  end
  w.last_rv = ev.rv
  if typ then write(sim, w, event_line(sim, w, typ, ev.obj)) end
end

local function do_watch(sim, r, fault)
  local q = r.q
  local ls, fs, err = selectors_of(q)
  if err then return status_resp(err) end
  local id = r.stream
  if id == nil then return status_resp(status.bad_request("watch needs a streaming connection")) end
  local w = { id = id, rk = r.info.rk, info = r.info, version = r.version, ns = r.ns, ls = ls, fs = fs,
    table = r.table, include = q.includeObject, first = true, timers = {}, pending = true, backlog = {},
    bookmarks = q.allowWatchBookmarks == "true" or q.allowWatchBookmarks == "1" }
  local initial, expired = {}, false
  local rv = q.resourceVersion
  local store = sim.store
  if fault and fault.expire then
    expired = true
  elseif rv == nil or rv == "" or rv == "0" or q.sendInitialEvents == "true" then
    for _, o in ipairs(list_objects(sim, r, ls, fs)) do
      if not r.ns or o.metadata.namespace == r.ns then initial[#initial + 1] = o end
    end
    w.last_rv = store.rv
  else
    local n = tonumber(rv)
    if not n then return status_resp(status.bad_request("invalid resourceVersion: " .. rv)) end
    local evs = store:events_since(n, w.rk)
    if not evs then expired = true
    else
      w.last_rv = n
      w.resume = evs
    end
  end
  sim.watchers[id] = w
  -- watches pinned to one name (kubectl wait / rollout status / delete) are indexed by name so
  -- an event reaches only its own watchers, however many objects are being waited on
  local pinned = selectors.pinned_name(fs)
  local index = sim.watch_by_rk
  local key = w.rk
  if pinned then
    w.index_key = w.rk .. "\0" .. pinned
    index, key = sim.watch_by_name, w.index_key
  end
  index[key] = index[key] or {}
  index[key][id] = w
  local loop = sim.loop
  w.timers[#w.timers + 1] = loop.timer(0, function()
    if w.closed then return end
    if expired then
      local st = status.expired(string.format("too old resource version: %s (%d)", tostring(rv), store.compacted_rv + 1))
      st.details = nil
      write(sim, w, '{"type":"ERROR","object":' .. util.encode(st) .. '}\n')
      close_watch(sim, w, true)
      return
    end
    for _, o in ipairs(initial) do
      if not write(sim, w, event_line(sim, w, "ADDED", o)) then return end
    end
    if q.sendInitialEvents == "true" and w.bookmarks then
      send_bookmark(sim, w, { ["k8s.io/initial-events-end"] = "true" })
    end
    w.pending = false
    for _, ev in ipairs(w.resume or {}) do M.deliver(sim, w, ev) end
    w.resume = nil
    local backlog = w.backlog
    w.backlog = {}
    for _, ev in ipairs(backlog) do M.deliver(sim, w, ev) end
  end)
  local timeout = tonumber(q.timeoutSeconds)
  if timeout and timeout > 0 then
    w.timers[#w.timers + 1] = loop.timer(timeout, function()
      if w.closed then return end
      if w.bookmarks then send_bookmark(sim, w) end
      close_watch(sim, w, true)
    end)
  end
  if fault and fault.drop_watch_after then
    w.timers[#w.timers + 1] = loop.timer(fault.drop_watch_after, function()
      close_watch(sim, w, true)
    end)
  end
  if w.bookmarks then
    local interval = sim.bookmark_interval or 30
    local function tick()
      if w.closed then return end
      if not w.pending then send_bookmark(sim, w) end
      w.timers[#w.timers + 1] = loop.timer(interval, tick)
    end
    w.timers[#w.timers + 1] = loop.timer(interval, tick)
  end
  return { status = 200, headers = { ["Content-Type"] = r.table and tables.CONTENT_TYPE or JSON }, stream = true }
end

---------------------------------------------------------------------------------------------
-- Non-resource endpoints

local VERSION = util.encode({ major = "1", minor = "32", gitVersion = "v1.32.0",
  gitCommit = "70d3cc986aa8221cd1dfb1121852688902d3bf53", gitTreeState = "clean",
  buildDate = "2024-12-11T17:59:15Z", goVersion = "go1.23.3", compiler = "gc", platform = "linux/amd64" })

local function do_sim_endpoint(sim, req, parts)
  local what = parts[2]
  if what == "ready-times" and req.method == "GET" then
    -- the marks are never changed once recorded, and none holds an empty array
    return respond(200, util.encode(util.array(sim.ready_times)))
  elseif what == "scenario" and req.method == "POST" then
    local ok, err = sim:load_scenario(req.body or "", "=scenario")
    if not ok then return status_resp(status.bad_request("scenario: " .. tostring(err))) end
    return respond(200, '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success","code":200}')
  elseif what == "scenario" and req.method == "DELETE" then
    sim.scenario:clear()
    return respond(200, '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success","code":200}')
  elseif what == "reset-metrics" and req.method == "POST" then
    sim.metrics:reset()
    return respond(200, '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success","code":200}')
  end
  return status_resp(status.path_not_found())
end

local function do_discovery(sim, req, parts, accept)
  local d = sim.discovery
  local n = #parts
  if parts[1] == "api" then
    if n == 1 then
      if discovery.wants_aggregated(accept) then return respond(200, d:aggregated("/api"), discovery.AGG_CONTENT_TYPE) end
      return respond(200, d:api_versions())
    elseif n == 2 then
      local s = d:resource_list("", parts[2])
      if s then return respond(200, s) end
    end
  else
    if n == 1 then
      if discovery.wants_aggregated(accept) then return respond(200, d:aggregated("/apis"), discovery.AGG_CONTENT_TYPE) end
      return respond(200, d:group_list())
    elseif n == 2 then
      local s = d:group(parts[2])
      if s then return respond(200, s) end
    elseif n == 3 then
      local s = d:resource_list(parts[2], parts[3])
      if s then return respond(200, s) end
    end
  end
  return status_resp(status.path_not_found())
end

---------------------------------------------------------------------------------------------
-- Entry point

-- A scenario fault: its latency always delays the answer; a status (if it has one) is the answer.
local function fault_response(fault, r_out)
  r_out.delay = fault.latency
  if not fault.status then return nil end
  local st = status.new(fault.status, fault.message or ("simulated fault: " .. (status.REASONS[fault.status] or "error")))
  if fault.retry_after then st.retry_after = fault.retry_after end
  return status_resp(st)
end

local function route(sim, req, r_out)
  local path = req.path or "/"
  local parts = split_path(path)
  local method = req.method or "GET"
  local headers = req.headers or {}
  local accept = headers["accept"]
  local q = util.parse_query(req.query)
  if req.body and #req.body > MAX_BODY then
    r_out.verb = verb_of(method, {}, q)
    return status_resp(status.too_large())
  end
  local p1 = parts[1]
  -- /api/v1/<resource>... or /apis/<group>/<version>/<resource>...; shorter ones are discovery
  local is_api = p1 == "api" or p1 == "apis"
  local resource_path = is_api and #parts > (p1 == "api" and 2 or 3)
  if not resource_path then
    -- discovery, OpenAPI and other non-resource paths fail only for faults that name a path
    if p1 ~= "atom-sim" and p1 ~= "metrics" and sim.scenario:has_path_faults() then
      local fault = sim.scenario:fault_for({ verb = "get", resource = "", path = path, non_resource = true })
      local resp = fault and fault_response(fault, r_out)
      if resp then return resp end
    end
  end
  if p1 == nil then
    return respond(200, util.encode({ paths = util.array({ "/api", "/api/v1", "/apis", "/healthz", "/livez",
      "/metrics", "/openapi/v2", "/openapi/v3", "/readyz", "/version" }) }))
  end
  if p1 == "version" and #parts == 1 then return respond(200, VERSION) end
  if p1 == "healthz" or p1 == "readyz" or p1 == "livez" then return text(200, "ok") end
  if p1 == "metrics" and #parts == 1 then
    return respond(200, sim.metrics:render(), "text/plain; version=0.0.4; charset=utf-8")
  end
  if p1 == "atom-sim" then return do_sim_endpoint(sim, req, parts) end
  if p1 == "openapi" then
    if parts[2] == "v3" then
      if #parts == 2 then return respond(200, sim.openapi:get_index()) end
      local key = table.concat(parts, "/", 3)
      local doc = sim.openapi:get_doc(key)
      if doc then return respond(200, doc) end
    end
    -- kubectl validates kinds it finds in neither the v3 index nor the CRDs against the v2
    -- document; a 404 there makes `apply` of an unknown kind fail validation instead of
    -- saying "no matches for kind". A Document with only swagger "2.0" (protobuf field 1) and
    -- no definitions means "no schema for that kind", which kubectl skips, as on a real server.
    -- The content type is the one kube-apiserver sends: Go's mime parser refuses the "@" form.
    if parts[2] == "v2" and #parts == 2 then
      return respond(200, "\10\0032.0", "application/com.github.proto-openapi.spec.v2.v1.0+protobuf")
    end
    return status_resp(status.path_not_found())
  end
  if not is_api then return status_resp(status.path_not_found()) end
  if not resource_path then
    if method ~= "GET" then return status_resp(status.method_not_allowed()) end
    return do_discovery(sim, req, parts, accept)
  end
  local r = parse_resource_path(sim, parts)
  if not r then return status_resp(status.path_not_found()) end
  r.q, r.headers, r.body, r.stream, r.sim, r.user = q, headers, req.body, req.stream, sim, req.user
  r.wants_table = tables.wants_table(accept)
  r.table = r.wants_table and r.sub ~= "scale" and r.sub ~= "log"
  if method == "GET" and r.name and not r.sub and (q.watch == "true" or q.watch == "1") then
    -- the old single-object watch form: a collection watch pinned to the name
    local fs = "metadata.name=" .. r.name
    q.fieldSelector = (q.fieldSelector and q.fieldSelector ~= "") and (q.fieldSelector .. "," .. fs) or fs
    r.name = nil
  end
  local verb = verb_of(method, r, q)
  r_out.verb, r_out.resource = verb, r.info.resource
  local fault = sim.scenario:fault_for({ verb = verb, resource = r.info.resource, rk = r.info.rk,
    namespace = r.ns, path = path })
  local resp = fault and fault_response(fault, r_out)
  if resp then return resp end
  if r.info.review and verb ~= "create" then return status_resp(status.method_not_allowed()) end
  if r.sub == "log" and verb ~= "get" then return status_resp(status.method_not_allowed()) end
  if verb == "watch" then return do_watch(sim, r, fault) end
  if verb == "list" then return do_list(sim, r) end
  if verb == "get" then return do_get(sim, r) end
  if verb == "create" then return do_create(sim, r) end
  if verb == "update" then return do_update(sim, r) end
  if verb == "patch" then return do_patch(sim, r) end
  if verb == "delete" then
    if r.sub then return status_resp(status.method_not_allowed()) end
    return do_delete(sim, r)
  end
  if verb == "deletecollection" then return do_deletecollection(sim, r) end
  return status_resp(status.method_not_allowed())
end

function M.handle(sim, req)
  local meta = {}
  local ok, resp = pcall(route, sim, req, meta)
  if not ok then
    if sim.on_error then sim.on_error(resp) end
    resp = status_resp(status.internal(resp))
  end
  if meta.delay and meta.delay > 0 then resp.delay = meta.delay end
  local verb = meta.verb or string.lower(req.method or "get")
  if verb == "patch" and (req.headers and req.headers["content-type"] or ""):find("apply-patch", 1, true) then
    verb = "apply"
  end
  sim.metrics:count(verb, meta.resource or "", resp.status)
  return resp
end

return M
