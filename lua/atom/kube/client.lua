-- atom.kube.client — REST verbs over atom.http for one cluster/context.
--
-- See atom.kube (init.lua) for the interface. Internals worth knowing:
--   * every request goes through self.conn (one libcurl multi handle);
--     asynchronous ones register a handler by request id, and _pump() feeds
--     completions to handlers, so apply_many, discovery fan-out and watch
--     streams share one pipeline;
--   * credentials come from config.credential() per request (exec plugins and
--     token files change), and a 401 re-asks the plugin once and resends;
--   * errors are tables { code, reason, message, status, causes, conflicts }
--     with __tostring; message = "<what> of <server>: <what the server said>".
local config = require "atom.kube.config"
local discovery = require "atom.kube.discovery"
local json = require "atom.json"
local http = require "atom.http"

local Client = {}
Client.__index = Client

local VERSION = "0.1.0"
-- Requests in flight at once: over HTTP/1.1 only max_connections of them
-- are on the wire and the rest cost CPU while they wait, so the window is
-- as many as the connections (16); over HTTP/2 streams multiplex and it widens.
local H1_WINDOW, H2_WINDOW = 16, 128

local err_mt = { __tostring = function(e) return e.message end }

local function urlescape(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end))
end

local function query_string(q)
  if not q then return "" end
  local keys = {}
  for k, v in pairs(q) do
    if v ~= nil and v ~= false then keys[#keys + 1] = k end
  end
  if #keys == 0 then return "" end
  table.sort(keys)
  local parts = {}
  for i, k in ipairs(keys) do parts[i] = urlescape(k) .. "=" .. urlescape(q[k]) end
  return "?" .. table.concat(parts, "&")
end

function Client:make_error(what, code, status, detail, extra)
  local e = {
    code = code or 0,
    reason = status and status.reason or (code == 0 and "ConnectionError" or nil),
    status = status,
    causes = status and status.details and status.details.causes or nil,
    what = what,
    server = self.server,
    detail = detail,
  }
  e.message = ("%s of %s: %s"):format(what, self.server, detail)
  if extra then for k, v in pairs(extra) do e[k] = v end end
  return setmetatable(e, err_mt)
end

function Client:_http_error(req, comp)
  local what = req.what or (req.method .. " " .. req.path)
  if comp.error then
    return self:make_error(what, 0, nil, comp.error)
  end
  local code = comp.status
  local body = comp.body or ""
  local st = body:sub(1, 1) == "{" and json.try_decode(body) or nil
  if type(st) == "table" and st.kind == "Status" then
    local detail = st.message or st.reason or ("HTTP " .. code)
    if st.reason and st.reason ~= "" then detail = ("%s (%s, HTTP %d)"):format(detail, st.reason, code) end
    local conflicts
    local causes = st.details and st.details.causes
    if code == 409 and type(causes) == "table" then
      local fields = {}
      for _, c in ipairs(causes) do
        if c.field then
          fields[#fields + 1] = c.field
          conflicts = conflicts or {}
          conflicts[#conflicts + 1] = { field = c.field, message = c.message, reason = c.reason }
        end
      end
      if #fields > 0 then detail = detail .. "; conflicting fields: " .. table.concat(fields, ", ") end
    end
    return self:make_error(what, code, st, detail, { conflicts = conflicts })
  end
  local text = body:gsub("%s+$", "")
  if #text > 300 then text = text:sub(1, 300) .. "..." end
  local detail = text ~= "" and ("HTTP %d: %s"):format(code, text) or ("HTTP %d"):format(code)
  return self:make_error(what, code, nil, detail)
end

-- ---- connection and credentials -------------------------------------------

function Client:_open_conn(cred)
  local cfg, o = self.cfg, self.http_opts
  local cert = (cred and cred.client_cert_pem) or cfg.client_cert_pem
  local key = (cred and cred.client_key_pem) or cfg.client_key_pem
  if self.conn and self.conn_cert == cert then return end
  if self.conn then
    if self.conn:pending() > 0 then return end -- next time, when idle
    self.conn:close()
  end
  self.conn = http.new {
    server = cfg.server, ca_pem = cfg.ca_pem, insecure = cfg.insecure,
    tls_server_name = cfg.tls_server_name, proxy = cfg.proxy,
    client_cert_pem = cert, client_key_pem = key,
    user_agent = "atom/" .. VERSION,
    timeout = o.timeout, retries = o.retries, backoff = o.backoff,
    backoff_max = o.backoff_max, retry_window = o.retry_window,
    max_connections = o.max_connections,
  }
  self.conn_cert = cert
end

-- Headers carrying the current credential (only over https, as client-go).
function Client:_auth_headers(refresh)
  local cfg, h = self.cfg, {}
  if not self.https then return h end
  local cred, cerr = config.credential(cfg, { refresh = refresh })
  if not cred then return nil, cerr end
  if cred.client_cert_pem then self:_open_conn(cred) end
  if cred.token then
    h[#h + 1] = "Authorization: Bearer " .. cred.token
  elseif cfg.username then
    h[#h + 1] = "Authorization: Basic " .. require("atom.core").base64_encode(cfg.username .. ":" .. cfg.password)
  end
  if cfg.impersonate_user then h[#h + 1] = "Impersonate-User: " .. cfg.impersonate_user end
  for _, g in ipairs(cfg.impersonate_groups or {}) do h[#h + 1] = "Impersonate-Group: " .. g end
  return h
end

-- ---- request pipeline ---------------------------------------------------------

-- req: { method, path, query, body (table|string), content_type, accept,
--        what, stream, raw (do not decode) }
function Client:_send(req, refresh)
  local headers, herr = self:_auth_headers(refresh)
  if not headers then return nil, herr end
  headers[#headers + 1] = "Accept: " .. (req.accept or "application/json")
  local body = req.body
  if type(body) == "table" then body = json.encode(body) end
  if body then
    headers[#headers + 1] = "Content-Type: " .. (req.content_type or "application/json")
  end
  local spec = { method = req.method or "GET", path = req.path .. (req.qs or query_string(req.query)),
                 headers = headers, body = body, want_headers = not req.bulk }
  if req.stream then return self.conn:stream(spec) end
  return self.conn:send(spec)
end

-- The text of each Warning header (RFC 7234: `299 - "text"`), as kubectl prints it.
local function warning_texts(values)
  local out = {}
  for i, v in ipairs(values) do
    local text = v:match('^%d%d%d%s+%S+%s+"(.*)"')
    out[i] = text and text:gsub('\\(.)', '%1') or v
  end
  return out
end

-- Turns a completion into status, body, headers, warnings | nil, err. warnings: the
-- texts of the server's Warning headers, nil when it sent none.
function Client:_finish(req, comp)
  if comp.error or comp.status >= 400 then return nil, self:_http_error(req, comp) end
  local body = comp.body
  if not req.raw and body and body ~= "" then
    local ct = comp.content_type or ""
    if ct:find("json", 1, true) or body:match("^%s*[{%[]") then
      local v, derr = json.try_decode(body)
      if v == nil then
        return nil, self:make_error(req.what or (req.method .. " " .. req.path), comp.status, nil,
          "the answer is not valid JSON: " .. tostring(derr))
      end
      body = v
    end
  end
  return comp.status, body, comp.headers, comp.warnings and warning_texts(comp.warnings)
end

function Client:_should_reauth(req, comp)
  return comp.status == 401 and not req.reauthed and config.refreshable(self.cfg)
end

-- Sends req and calls done(status, body, headers | nil, err) when it ends.
function Client:_async(req, done)
  local id, serr = self:_send(req)
  if not id then return done(nil, serr) end
  self.handlers[id] = function(comp)
    self.handlers[comp.id] = nil
    if self:_should_reauth(req, comp) then
      req.reauthed = true
      local nid, nerr = self:_send(req, true)
      if not nid then return done(nil, nerr) end
      self.handlers[nid] = function(c2)
        self.handlers[c2.id] = nil
        done(self:_finish(req, c2))
      end
      return
    end
    done(self:_finish(req, comp))
  end
  return id
end

-- Feeds completions to their handlers; returns how many arrived.
function Client:_pump(timeout)
  local comps = self.conn:poll(timeout or 0)
  for i = 1, #comps do
    local comp = comps[i]
    if comp.h2 and not self.fixed_window then self.window = H2_WINDOW end
    local h = self.handlers[comp.id]
    if h then h(comp) end
  end
  return #comps
end

function Client:request(req)
  req.method = req.method or "GET"
  local id, serr = self:_send(req)
  if not id then return nil, serr end
  local comp = self:_wait(id)
  if self:_should_reauth(req, comp) then
    req.reauthed = true
    id, serr = self:_send(req, true)
    if not id then return nil, serr end
    comp = self:_wait(id)
  end
  return self:_finish(req, comp)
end

-- Drives the pipeline until request id completes; other completions go to
-- their handlers (watch chunks, other async work) meanwhile.
function Client:_wait(id)
  local got
  self.handlers[id] = function(comp) got = comp; self.handlers[id] = nil end
  while not got do self:_pump(1) end
  return got
end

-- Runs many requests concurrently, at most `window` in flight, and returns
-- results[i] = { status =, body =, headers =, warnings = } or { err = }. on_result(i, r)
-- sees each as it arrives and may return what to keep instead; idle() runs
-- after each round of completions, outside any handler (callers hand on
-- watch events there rather than letting them pile up), and at least every
-- idle_every seconds (default 1) while answers are slow to come.
function Client:request_many(reqs, window, on_result, idle, idle_every)
  window = window or self.window
  local results, next_i, active, n = {}, 1, 0, #reqs
  local function launch()
    while active < window and next_i <= n do
      local i = next_i
      next_i = next_i + 1
      active = active + 1
      self:_async(reqs[i], function(status, body, headers, warnings)
        active = active - 1
        local r
        if status then r = { status = status, body = body, headers = headers, warnings = warnings }
        else r = { err = body } end
        if on_result then r = on_result(i, r) or r end
        results[i] = r
      end)
    end
  end
  launch()
  -- Until every request is launched, not only until none is in flight: idle() may pump,
  -- and completions it takes can empty the window before the rest were sent (at 5,000
  -- objects on a busy machine, the last few hundred were never applied).
  while active > 0 or next_i <= n do
    if active > 0 then self:_pump(idle_every or 1) end
    launch()
    if idle then idle() end
  end
  return results
end

-- ---- resources and paths -------------------------------------------------------

function Client:resource_for(api_version, kind)
  return self.discovery:resource_for(api_version, kind)
end

local function describe(kind, ns, name)
  if name and ns then return ("%s %s/%s"):format(kind, ns, name) end
  if name then return ("%s %s"):format(kind, name) end
  if ns then return ("%s in namespace %s"):format(kind, ns) end
  return kind
end

function Client:path_for(info, namespace, name, sub)
  local base = info.group == "" and ("/api/" .. info.version) or ("/apis/" .. info.group .. "/" .. info.version)
  if info.namespaced and namespace then base = base .. "/namespaces/" .. urlescape(namespace) end
  base = base .. "/" .. info.resource
  if name then base = base .. "/" .. urlescape(name) end
  if sub then base = base .. "/" .. sub end
  return base
end

-- Resolves kind and namespace for a verb; namespaced kinds default to the
-- client's namespace, cluster-scoped kinds ignore any namespace given.
function Client:_target(api_version, kind, namespace, all_allowed, verb, name)
  local info, ierr = self:resource_for(api_version, kind)
  if not info then
    if verb and ierr.what and ierr.what:find("^discover") then
      -- Say what the user asked for, then why it could not be looked up.
      local e = self:make_error(verb .. " " .. describe(kind, namespace, name), ierr.code, ierr.status,
        ("%s failed: %s"):format(ierr.what, ierr.detail))
      return nil, e
    end
    return nil, ierr
  end
  local ns
  if info.namespaced then
    ns = namespace
    if (ns == nil or ns == "") and not all_allowed then ns = self.namespace end
    if ns == "" then ns = nil end
  end
  return info, ns
end

local function obj_ref(obj)
  local md = type(obj) == "table" and obj.metadata or nil
  if type(md) ~= "table" then return nil end
  return obj.apiVersion, obj.kind, md.namespace, md.name
end

function Client:get(api_version, kind, namespace, name)
  local info, ns = self:_target(api_version, kind, namespace, false, "get", name)
  if not info then return nil, ns end
  local status, body = self:request { method = "GET", path = self:path_for(info, ns, name),
    what = "get " .. describe(kind, ns, name) }
  if not status then return nil, body end
  return body
end

-- opts: labelSelector, fieldSelector, limit (page size), continue (start
-- token), pages (stop after this many pages; the third result is then the
-- continue token), resourceVersion.
function Client:list(api_version, kind, namespace, opts)
  opts = opts or {}
  local info, ns = self:_target(api_version, kind, namespace, true, "list")
  if not info then return nil, ns end
  local path = self:path_for(info, ns)
  local items, rv, token, pages = json.array(), nil, opts.continue, 0
  repeat
    local q = { labelSelector = opts.labelSelector, fieldSelector = opts.fieldSelector,
                limit = opts.limit, continue = token, resourceVersion = (not token) and opts.resourceVersion or nil }
    local status, body = self:request { method = "GET", path = path, query = q,
      what = "list " .. describe(kind, ns) }
    if not status then return nil, body end
    if type(body) ~= "table" then
      return nil, self:make_error("list " .. describe(kind, ns), status, nil, "the answer is not a list")
    end
    for _, it in ipairs(body.items or {}) do
      if it.apiVersion == nil then it.apiVersion = api_version end
      if it.kind == nil then it.kind = kind end
      items[#items + 1] = it
    end
    local md = body.metadata or {}
    rv = md.resourceVersion
    token = md.continue
    if token == "" or token == json.null then token = nil end
    pages = pages + 1
  until not token or (opts.pages and pages >= opts.pages)
  return items, rv, token
end

-- Sends a request built by one of the _*_req methods (given with its build error) and
-- returns the decoded answer | nil, err.
function Client:_body(req, rerr)
  if not req then return nil, rerr end
  local status, body = self:request(req)
  if not status then return nil, body end
  return body
end

function Client:_write_req(method, obj, sub, verb)
  local av, kind, ns, name = obj_ref(obj)
  local info, tns = self:_target(av, kind, ns, false, verb, name)
  if not info then return nil, tns end
  return { method = method, path = self:path_for(info, tns, method ~= "POST" and name or nil, sub),
           body = obj, what = verb .. " " .. describe(kind, tns, name) }
end

function Client:_write(method, obj, sub, verb)
  return self:_body(self:_write_req(method, obj, sub, verb))
end

function Client:create(obj) return self:_write("POST", obj, nil, "create") end
function Client:update(obj) return self:_write("PUT", obj, nil, "update") end
function Client:update_status(obj) return self:_write("PUT", obj, "status", "update status of") end

-- The query of a server-side apply. Unknown or duplicate fields fail it (Strict), as they
-- fail kubectl's: left to the server's default (Warn), a misspelt field would be dropped
-- and the release reported ready without it.
local function apply_query(opts)
  return query_string { fieldManager = opts.field_manager or "atom", force = opts.force and "true" or nil,
                        dryRun = opts.dry_run and "All" or nil,
                        fieldValidation = opts.field_validation or "Strict" }
end

-- The request for a server-side apply of obj, or nil, err.
function Client:_apply_req(obj, opts)
  local av, kind, ns, name = obj_ref(obj)
  if not name then
    return nil, self:make_error("apply " .. tostring(kind), 0, nil, "the object has no metadata.name")
  end
  local info, tns = self:_target(av, kind, ns, false, "apply " .. tostring(av), name)
  if not info then return nil, tns end
  local qs = opts._qs or apply_query(opts)
  return {
    method = "PATCH", path = self:path_for(info, tns, name), qs = qs,
    body = obj, content_type = "application/apply-patch+yaml",
    what = ("apply %s %s"):format(av, describe(kind, tns, name)),
  }
end

-- Server-side apply. opts: force (take over conflicting fields; default
-- false, as kubectl), dry_run, field_manager (default "atom"), field_validation
-- ("Strict" by default, as kubectl; "Warn" or "Ignore").
function Client:apply(obj, opts)
  return self:_body(self:_apply_req(obj, opts or {}))
end

-- opts.on_result(i, result): each result as it arrives; the returned list then
-- keeps { ok = true } for successes instead of the live objects (a large
-- release's answers are most of its memory). opts.idle: see request_many.
-- opts.raw(i) -> true: object i's answer is left undecoded (result.object is
-- the JSON text), for a caller that reads little or nothing of it.
-- opts.idle_every: see request_many. result.warnings: the texts of the server's Warning
-- headers (deprecations, ignored or dubious fields), when it sent any.
function Client:apply_many(objs, opts)
  opts = opts or {}
  local o = { field_manager = opts.field_manager, force = opts.force, dry_run = opts.dry_run,
              field_validation = opts.field_validation }
  o._qs = apply_query(o)
  local reqs, results, map = {}, {}, {}
  for i, obj in ipairs(objs) do
    local req, rerr = self:_apply_req(obj, o)
    if req then
      req.bulk = true
      if opts.raw and opts.raw(i) then req.raw = true end
      reqs[#reqs + 1] = req
      map[#reqs] = i
    else
      results[i] = { err = rerr }
      if opts.on_result then opts.on_result(i, results[i]) end
    end
  end
  local each = opts.on_result
  local kept = each and { ok = true }
  self:request_many(reqs, opts.concurrency, function(j, r)
    local i = map[j]
    local res = r.err and { err = r.err } or { object = r.body, warnings = r.warnings }
    if each then
      each(i, res)
      if not res.err then res = kept end
    end
    results[i] = res
    return true
  end, opts.idle, opts.idle_every)
  return results
end

local PATCH_TYPES = {
  merge = "application/merge-patch+json",
  json = "application/json-patch+json",
  strategic = "application/strategic-merge-patch+json",
}

function Client:_patch_req(api_version, kind, namespace, name, patch, ptype)
  ptype = ptype or "merge"
  local ct = PATCH_TYPES[ptype]
  if not ct then
    return nil, self:make_error("patch " .. describe(kind, namespace, name), 0, nil,
      ("unknown patch type %q (merge, json or strategic)"):format(tostring(ptype)))
  end
  local info, ns = self:_target(api_version, kind, namespace, false, ptype .. " patch", name)
  if not info then return nil, ns end
  return { method = "PATCH", path = self:path_for(info, ns, name),
           body = patch, content_type = ct, what = ptype .. " patch " .. describe(kind, ns, name) }
end

function Client:patch(api_version, kind, namespace, name, patch, ptype)
  return self:_body(self:_patch_req(api_version, kind, namespace, name, patch, ptype))
end

function Client:_delete_req(api_version, kind, namespace, name, opts)
  local info, ns = self:_target(api_version, kind, namespace, false, "delete", name)
  if not info then return nil, ns end
  return {
    method = "DELETE", path = self:path_for(info, ns, name),
    body = { kind = "DeleteOptions", apiVersion = "v1",
             propagationPolicy = opts.propagation or "Background",
             gracePeriodSeconds = opts.grace },
    what = "delete " .. describe(kind, ns, name),
  }
end

-- Returns true when deleted (or deletion started), "absent" when it was not there.
function Client:delete(api_version, kind, namespace, name, opts)
  local req, rerr = self:_delete_req(api_version, kind, namespace, name, opts or {})
  if not req then return nil, rerr end
  local status, body = self:request(req)
  if not status then
    if body.code == 404 then return "absent" end
    return nil, body
  end
  return true
end

-- refs: objects or { apiVersion, kind, namespace, name }; results[i] = { ok = } | { err = }
function Client:delete_many(refs, opts)
  opts = opts or {}
  local reqs, results, map = {}, {}, {}
  for i, ref in ipairs(refs) do
    local av, kind, ns, name = ref.apiVersion, ref.kind, ref.namespace, ref.name
    if ref.metadata then av, kind, ns, name = obj_ref(ref) end
    local req, rerr = self:_delete_req(av, kind, ns, name, opts)
    if req then
      req.bulk = true
      reqs[#reqs + 1] = req
      map[#reqs] = i
    else
      results[i] = { err = rerr }
    end
  end
  local out = self:request_many(reqs, opts.concurrency)
  for j, r in ipairs(out) do
    if r.err and r.err.code == 404 then results[map[j]] = { ok = "absent" }
    elseif r.err then results[map[j]] = { err = r.err }
    else results[map[j]] = { ok = true } end
  end
  return results
end

local function rfc3339(t)
  return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(t))
end

function Client:_event_req(involved, opts)
  opts = opts or {}
  local md = involved.metadata or {}
  local ns = md.namespace or self.namespace
  local now = rfc3339(require("atom.core").wall())
  local ev = {
    apiVersion = "v1", kind = "Event",
    metadata = { generateName = (md.name or "atom") .. ".", namespace = ns },
    involvedObject = { apiVersion = involved.apiVersion, kind = involved.kind, name = md.name,
                       namespace = md.namespace, uid = md.uid, resourceVersion = md.resourceVersion },
    type = opts.type or "Normal", reason = opts.reason or "Atom", message = opts.message or "",
    firstTimestamp = now, lastTimestamp = now, count = 1,
    source = { component = "atom" }, reportingComponent = "atom",
    reportingInstance = require("atom.core").hostname(),
  }
  return self:_write_req("POST", ev, nil, "create event for")
end

function Client:event(involved, opts)
  return self:_body(self:_event_req(involved, opts))
end

-- Sends a request built by one of the _*_req methods without waiting for it: done(status,
-- body | nil, err) runs from a later poll or wait, or at once when it could not be sent.
function Client:send_async(req, done)
  req.method = req.method or "GET"
  self:_async(req, done)
end

-- Drives the pipeline for at most `timeout` seconds (watch chunks and async completions go
-- to their handlers).
function Client:pump(timeout)
  return self:_pump(timeout)
end

function Client:watch(api_version, kind, namespace, opts)
  return require("atom.kube.watch").open(self, api_version, kind, namespace, opts or {})
end

-- Drives watchers and pending async work; returns the events gathered.
function Client:poll(timeout)
  local w = require "atom.kube.watch"
  w.drive(self, timeout or 0)
  local events = self.events
  self.events = {}
  return events
end

-- Puts events back so the next poll returns them first (a caller that
-- consumed events meant for someone else).
function Client:requeue(events)
  if #events == 0 then return end
  local merged = table.move(events, 1, #events, 1, {})
  table.move(self.events, 1, #self.events, #merged + 1, merged)
  self.events = merged
end

function Client:close()
  for wt in pairs(self.watchers) do wt:close() end
  if self.conn then self.conn:close() end
end

local M = {}

-- cfg from atom.kube.config; opts.http overrides transport knobs (tests:
-- retries, backoff, backoff_max, timeout).
function M.new(cfg, opts)
  opts = opts or {}
  local self = setmetatable({
    cfg = cfg, server = cfg.server, namespace = cfg.namespace, context = cfg.context,
    handlers = {}, events = {}, watchers = {},
    window = opts.window or H1_WINDOW, fixed_window = opts.window ~= nil,
    http_opts = opts.http or {},
    https = cfg.server:match("^https://") ~= nil,
  }, Client)
  local cred
  if self.https and (cfg.exec or cfg.token_file) then
    local cerr
    cred, cerr = config.credential(cfg)
    if not cred then return nil, cerr end
  end
  self:_open_conn(cred)
  self.discovery = discovery.new(self)
  return self
end

M.Client = Client
M.query_string = query_string
return M
