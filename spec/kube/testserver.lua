-- A small Kubernetes-shaped HTTP(S) server for the atom.kube specs, run as
-- its own process: `lua5.4 spec/kube/testserver.lua DIR`. DIR/server.json
-- configures it ({ tls = { cert, key, ca } | nil, tokens = {...},
-- require_auth = bool, aggregated = bool }); it writes its port to DIR/port.
-- Real sockets, real TLS (luasec), HTTP/1.1 keep-alive, chunked watch
-- streams; no libcurl mocks. One coroutine per connection over select().
--
-- Test control (no auth): POST /_test/faults { faults = [{ match = "GET /api/v1/...",
-- status, count, retry_after }] }, POST /_test/tokens { tokens = [...] },
-- POST /_test/expire { mode = "event"|"http" } (drop watches; older RVs get 410),
-- POST /_test/drop (drop watches), POST /_test/silent_delete { path },
-- GET /_test/log (requests seen), POST /_test/clear_log.
local socket = require "socket"
local cjson = require "cjson"

local dir = assert(arg[1], "usage: testserver.lua DIR")

local function readf(p)
  local f = assert(io.open(p, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local conf = cjson.decode(readf(dir .. "/server.json"))
local ssl = conf.tls and require "ssl"
local ssl_ctx
if conf.tls then
  -- no_ticket: luasec sets no session id context, so OpenSSL answers a
  -- resumed client-cert session with "internal error"; a real API server
  -- (Go crypto/tls) resumes fine, and curl does try to resume.
  ssl_ctx = assert(ssl.newcontext {
    mode = "server", protocol = "any", key = conf.tls.key, certificate = conf.tls.cert,
    cafile = conf.tls.ca, verify = { "peer" }, options = { "all", "no_ticket" },
  })
end

local listener = assert(socket.bind("127.0.0.1", 0))
listener:settimeout(0)
do
  local _, port = listener:getsockname()
  local f = assert(io.open(dir .. "/port.tmp", "w"))
  f:write(tostring(port))
  f:close()
  os.rename(dir .. "/port.tmp", dir .. "/port")
end

-- ---- state ------------------------------------------------------------------
local valid_tokens = {}
for _, t in ipairs(conf.tokens or {}) do valid_tokens[t] = true end
local faults, log, accepted = {}, {}, 0
local rv, compacted, expire_mode = 1, 0, "event"
local store = {}        -- collection path -> name -> object
local events = {}       -- { rv, coll, type, obj }
local watchers = {}     -- conn -> { coll, ns_any, field_name }
local owners = {}       -- collection/name -> { field path -> manager }

local resources = {
  { group = "", version = "v1", resource = "configmaps", kind = "ConfigMap", namespaced = true },
  { group = "", version = "v1", resource = "namespaces", kind = "Namespace", namespaced = false },
  { group = "", version = "v1", resource = "events", kind = "Event", namespaced = true },
  { group = "apps", version = "v1", resource = "deployments", kind = "Deployment", namespaced = true },
  { group = "apiextensions.k8s.io", version = "v1", resource = "customresourcedefinitions",
    kind = "CustomResourceDefinition", namespaced = false },
}
local VERBS = { "create", "delete", "get", "list", "patch", "update", "watch" }

local function gv_of(r) return r.group == "" and r.version or (r.group .. "/" .. r.version) end

local function find_resource(group, version, resource)
  for _, r in ipairs(resources) do
    if r.group == group and r.version == version and r.resource == resource then return r end
  end
end

local function status_body(code, reason, message, extra)
  local s = { kind = "Status", apiVersion = "v1", metadata = {}, status = code < 400 and "Success" or "Failure",
              message = message, reason = reason, code = code }
  for k, v in pairs(extra or {}) do s[k] = v end
  return s
end

-- ---- discovery ----------------------------------------------------------------
local function resource_list(gv)
  local list = { kind = "APIResourceList", apiVersion = "v1", groupVersion = gv, resources = {} }
  for _, r in ipairs(resources) do
    if gv_of(r) == gv then
      list.resources[#list.resources + 1] = { name = r.resource, kind = r.kind, namespaced = r.namespaced, verbs = VERBS }
      list.resources[#list.resources + 1] = { name = r.resource .. "/status", kind = r.kind,
        namespaced = r.namespaced, verbs = { "get", "patch", "update" } }
    end
  end
  return list
end

local function groups()
  local seen, out = {}, {}
  for _, r in ipairs(resources) do
    if r.group ~= "" and not seen[gv_of(r)] then
      seen[gv_of(r)] = true
      out[#out + 1] = { group = r.group, version = r.version }
    end
  end
  return out
end

local function aggregated(core)
  local items = {}
  local by = {}
  for _, r in ipairs(resources) do
    if (r.group == "") == core then
      local item = by[r.group]
      if not item then
        item = { metadata = { name = r.group }, versions = { { version = r.version, resources = {} } } }
        by[r.group] = item
        items[#items + 1] = item
      end
      local res = item.versions[1].resources
      res[#res + 1] = { resource = r.resource, responseKind = { group = r.group, version = r.version, kind = r.kind },
        scope = r.namespaced and "Namespaced" or "Cluster", verbs = VERBS }
    end
  end
  return { kind = "APIGroupDiscoveryList", apiVersion = "apidiscovery.k8s.io/v2", metadata = {}, items = items }
end

-- ---- HTTP plumbing ------------------------------------------------------------
local function send_all(c, data)
  c.sock:settimeout(5)
  local ok, err = c.sock:send(data)
  c.sock:settimeout(0)
  if not ok then c.dead = err or "send failed" end
end

local REASONS = { [200] = "OK", [201] = "Created", [401] = "Unauthorized", [404] = "Not Found",
  [409] = "Conflict", [410] = "Gone", [429] = "Too Many Requests", [500] = "Internal Server Error",
  [503] = "Service Unavailable", [400] = "Bad Request", [422] = "Unprocessable Entity" }

local function respond(c, code, body, headers)
  local text = type(body) == "table" and cjson.encode(body) or (body or "")
  local h = { ("HTTP/1.1 %d %s"):format(code, REASONS[code] or "Status"),
              "Content-Type: " .. ((headers and headers["Content-Type"]) or "application/json"),
              "Content-Length: " .. #text }
  for k, v in pairs(headers or {}) do
    -- A list sends the header once per value (Kubernetes sends several Warnings).
    if type(v) == "table" then
      for _, one in ipairs(v) do h[#h + 1] = k .. ": " .. one end
    elseif k ~= "Content-Type" then
      h[#h + 1] = k .. ": " .. v
    end
  end
  send_all(c, table.concat(h, "\r\n") .. "\r\n\r\n" .. text)
end

local function send_chunk(c, data)
  send_all(c, ("%x\r\n%s\r\n"):format(#data, data))
end

local function close_conn(c)
  c.dead = c.dead or "closed"
  watchers[c] = nil
  pcall(c.sock.close, c.sock)
end

-- ---- store ------------------------------------------------------------------------
local function emit(coll, type_, obj)
  events[#events + 1] = { rv = rv, coll = coll, type = type_, obj = obj }
  local line = cjson.encode { type = type_, object = obj } .. "\n"
  for c, w in pairs(watchers) do
    if w.coll == coll or (w.any_ns and coll:sub(-#w.suffix) == w.suffix and coll:find(w.prefix, 1, true) == 1) then
      if not w.name or w.name == obj.metadata.name then send_chunk(c, line) end
    end
  end
end

local function bump(obj)
  rv = rv + 1
  obj.metadata.resourceVersion = tostring(rv)
end

local function deep_merge(dst, src)
  for k, v in pairs(src) do
    if v == cjson.null then dst[k] = nil
    elseif type(v) == "table" and type(dst[k]) == "table" and next(v) ~= nil and v[1] == nil then deep_merge(dst[k], v)
    else dst[k] = v end
  end
  return dst
end

local function leaves(prefix, t, out)
  for k, v in pairs(t) do
    local p = prefix .. "." .. tostring(k)
    if type(v) == "table" and v[1] == nil and next(v) ~= nil then leaves(p, v, out) else out[p] = v end
  end
  return out
end

local function match_labels(obj, sel)
  if not sel or sel == "" then return true end
  local labels = obj.metadata.labels or {}
  for k, v in sel:gmatch("([^,=]+)=([^,]*)") do
    if labels[k] ~= v then return false end
  end
  return true
end

local function parse_query(q)
  local t = {}
  for k, v in (q or ""):gmatch("([^&=]+)=([^&]*)") do
    t[k] = v:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
  end
  return t
end

local function handle_crd(obj)
  local spec = obj.spec or {}
  local names = spec.names or {}
  for _, v in ipairs(spec.versions or {}) do
    if not find_resource(spec.group, v.name, names.plural) then
      resources[#resources + 1] = { group = spec.group, version = v.name, resource = names.plural,
        kind = names.kind, namespaced = spec.scope ~= "Cluster" }
    end
  end
end

-- ---- API --------------------------------------------------------------------------
local function api(c, req)
  local path, qs = req.target:match("^([^?]*)%??(.*)$")
  local q = parse_query(qs)
  local method = req.method
  if path == "/version" then return respond(c, 200, { major = "1", minor = "32", gitVersion = "v1.32.0-test" }) end
  local accept = req.headers["accept"] or ""
  if path == "/api" then
    if conf.aggregated and accept:find("as=APIGroupDiscoveryList", 1, true) then
      return respond(c, 200, aggregated(true), { ["Content-Type"] = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList" })
    end
    return respond(c, 200, { kind = "APIVersions", versions = { "v1" } })
  end
  if path == "/apis" then
    if conf.aggregated and accept:find("as=APIGroupDiscoveryList", 1, true) then
      return respond(c, 200, aggregated(false), { ["Content-Type"] = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList" })
    end
    local gl = { kind = "APIGroupList", apiVersion = "v1", groups = {} }
    for _, g in ipairs(groups()) do
      local gv = g.group .. "/" .. g.version
      gl.groups[#gl.groups + 1] = { name = g.group, versions = { { groupVersion = gv, version = g.version } },
        preferredVersion = { groupVersion = gv, version = g.version } }
    end
    return respond(c, 200, gl)
  end
  local group, version, rest = path:match("^/apis/([^/]+)/([^/]+)(.*)$")
  if not group then
    version, rest = path:match("^/api/(v1)(.*)$")
    group = ""
  end
  if not version then return respond(c, 404, status_body(404, "NotFound", "the server could not find the requested resource")) end
  local segs = {}
  for s in rest:gmatch("[^/]+") do segs[#segs + 1] = s end
  if #segs == 0 then
    local gv = group == "" and version or (group .. "/" .. version)
    for _, r in ipairs(resources) do
      if gv_of(r) == gv then return respond(c, 200, resource_list(gv)) end
    end
    return respond(c, 404, status_body(404, "NotFound", "the server could not find the requested resource"))
  end
  local ns, resource, name, sub
  if segs[1] == "namespaces" and #segs >= 3 then
    ns, resource, name, sub = segs[2], segs[3], segs[4], segs[5]
  else
    resource, name, sub = segs[1], segs[2], segs[3]
  end
  local r = find_resource(group, version, resource)
  if not r then return respond(c, 404, status_body(404, "NotFound", "the server could not find the requested resource")) end
  local prefix = "/" .. (group == "" and "api/v1" or ("apis/" .. group .. "/" .. version))
  local function coll_of(n) return prefix .. (r.namespaced and ("/namespaces/" .. n) or "") .. "/" .. resource end
  local coll = coll_of(ns or "")
  store[coll] = store[coll] or {}
  local objs = store[coll]
  local body = req.body ~= "" and cjson.decode(req.body) or nil
  local gr = resource .. (group ~= "" and ("." .. group) or "")

  if method == "GET" and name then
    local o = objs[name]
    if not o then return respond(c, 404, status_body(404, "NotFound", ('%s "%s" not found'):format(gr, name), { details = { name = name, kind = resource } })) end
    return respond(c, 200, o)
  end
  if method == "GET" then
    local all = {}
    local function collect(cl)
      for _, o in pairs(store[cl] or {}) do
        if match_labels(o, q.labelSelector) and (not q.fieldSelector or q.fieldSelector == "metadata.name=" .. o.metadata.name) then
          all[#all + 1] = o
        end
      end
    end
    local any_ns = r.namespaced and not ns
    if any_ns then
      for cl in pairs(store) do
        if cl:find(prefix .. "/namespaces/", 1, true) == 1 and cl:sub(-#resource - 1) == "/" .. resource then collect(cl) end
      end
    else
      collect(coll)
    end
    table.sort(all, function(a, b) return (a.metadata.namespace or "") .. a.metadata.name < (b.metadata.namespace or "") .. b.metadata.name end)
    if q.watch == "true" or q.watch == "1" then
      local since = tonumber(q.resourceVersion or "")
      if since and since < compacted then
        if expire_mode == "http" then
          return respond(c, 410, status_body(410, "Expired", "too old resource version: " .. since .. " (" .. compacted .. ")"))
        end
        send_all(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        send_chunk(c, cjson.encode { type = "ERROR", object = status_body(410, "Expired", "too old resource version") } .. "\n")
        send_all(c, "0\r\n\r\n")
        return
      end
      send_all(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
      local fname = q.fieldSelector and q.fieldSelector:match("^metadata.name=(.*)$")
      if since then
        for _, e in ipairs(events) do
          if e.rv > since and e.coll == coll and (not fname or e.obj.metadata.name == fname) then
            send_chunk(c, cjson.encode { type = e.type, object = e.obj } .. "\n")
          end
        end
      else
        for _, o in ipairs(all) do send_chunk(c, cjson.encode { type = "ADDED", object = o } .. "\n") end
      end
      watchers[c] = { coll = coll, any_ns = any_ns, prefix = prefix .. "/namespaces/", suffix = "/" .. resource, name = fname }
      c.watching = true
      return
    end
    local limit = tonumber(q.limit or "")
    local start = tonumber(q.continue or "") or 1
    local items, cont = {}, nil
    for i = start, #all do
      if limit and #items >= limit then cont = tostring(i) break end
      local copy = cjson.decode(cjson.encode(all[i]))
      copy.apiVersion, copy.kind = nil, nil
      items[#items + 1] = copy
    end
    local list = { kind = r.kind .. "List", apiVersion = gv_of(r), metadata = { resourceVersion = tostring(rv), continue = cont }, items = items }
    local text = cjson.encode(list):gsub('"items":{}', '"items":[]')
    return respond(c, 200, text)
  end
  if method == "POST" then
    local md = body.metadata or {}
    body.metadata = md
    if not md.name and md.generateName then md.name = md.generateName .. tostring(rv + 1) end
    if objs[md.name] then return respond(c, 409, status_body(409, "AlreadyExists", ('%s "%s" already exists'):format(gr, md.name))) end
    md.namespace = r.namespaced and ns or nil
    md.uid = "uid-" .. tostring(rv + 1)
    bump(body)
    objs[md.name] = body
    if resource == "customresourcedefinitions" then handle_crd(body) end
    emit(coll, "ADDED", body)
    return respond(c, 201, body)
  end
  if method == "PATCH" and q.fieldManager and (req.headers["content-type"] or ""):find("merge-patch", 1, true) then
    local okey = coll .. "/" .. tostring(name)
    owners[okey] = owners[okey] or {}
    local own = owners[okey]
    if type(body.data) == "table" then for p in pairs(leaves(".data", body.data, {})) do own[p] = q.fieldManager end end
    if type(body.spec) == "table" then for p in pairs(leaves(".spec", body.spec, {})) do own[p] = q.fieldManager end end
  end
  if method == "PUT" then
    local o = objs[name]
    if not o then return respond(c, 404, status_body(404, "NotFound", ('%s "%s" not found'):format(gr, name))) end
    if body.metadata.resourceVersion ~= o.metadata.resourceVersion then
      return respond(c, 409, status_body(409, "Conflict", ("Operation cannot be fulfilled on %s \"%s\": the object has been modified"):format(gr, name)))
    end
    body.metadata.uid = o.metadata.uid
    body.metadata.namespace = o.metadata.namespace
    bump(body)
    objs[name] = body
    emit(coll, "MODIFIED", body)
    return respond(c, 200, body)
  end
  if method == "PATCH" then
    local ct = req.headers["content-type"] or ""
    local o = objs[name]
    if ct:find("apply-patch", 1, true) then
      local manager = q.fieldManager
      if not manager then return respond(c, 400, status_body(400, "BadRequest", "fieldManager is required for apply requests")) end
      -- fieldValidation=Strict refuses a field the type does not declare, as a real server
      -- does for server-side apply (only ConfigMaps' top level is known here).
      if q.fieldValidation == "Strict" and resource == "configmaps" then
        local known = { apiVersion = true, kind = true, metadata = true, data = true, binaryData = true, immutable = true }
        for k in pairs(body) do
          if not known[k] then
            return respond(c, 400, status_body(400, "BadRequest", ("failed to create typed patch object (/v1, Kind=ConfigMap) %s: .%s: field not declared in schema"):format(name, k)))
          end
        end
      end
      local applied = {}
      for _, top in ipairs { "spec", "data" } do
        if type(body[top]) == "table" then leaves("." .. top, body[top], applied) end
      end
      if o then
        local conflicts = {}
        local okey = coll .. "/" .. name
        owners[okey] = owners[okey] or {}
        local own = owners[okey]
        for p, v in pairs(applied) do
          local live = leaves("", o, {})[p]
          if own[p] and own[p] ~= manager and cjson.encode(live) ~= cjson.encode(v) and q.force ~= "true" then
            conflicts[#conflicts + 1] = { reason = "FieldManagerConflict", message = ('conflict with "%s"'):format(own[p]), field = p }
          end
        end
        if #conflicts > 0 then
          table.sort(conflicts, function(a, b) return a.field < b.field end)
          return respond(c, 409, status_body(409, "Conflict", ("Apply failed with %d conflict(s)"):format(#conflicts),
            { details = { name = name, kind = resource, causes = conflicts } }))
        end
        deep_merge(o, body)
        for p in pairs(applied) do own[p] = manager end
        bump(o)
        emit(coll, "MODIFIED", o)
        return respond(c, 200, o)
      end
      -- An annotation asks for Warning headers, as a real server sends for a deprecated API.
      local warn = (body.metadata.annotations or {})["test/warn"]
      local warn_headers = warn and { Warning = { '299 - "' .. warn .. '"', '299 - "a \\"quoted\\" second"' } }
      body.metadata.namespace = r.namespaced and ns or nil
      body.metadata.uid = "uid-" .. tostring(rv + 1)
      local own = {}
      owners[coll .. "/" .. name] = own
      for p in pairs(applied) do own[p] = manager end
      bump(body)
      objs[name] = body
      if resource == "customresourcedefinitions" then handle_crd(body) end
      emit(coll, "ADDED", body)
      return respond(c, 201, body, warn_headers)
    end
    if not o then return respond(c, 404, status_body(404, "NotFound", ('%s "%s" not found'):format(gr, name))) end
    if ct:find("merge-patch", 1, true) then
      deep_merge(o, body)
      bump(o)
      emit(coll, "MODIFIED", o)
      return respond(c, 200, o)
    end
    return respond(c, 415, status_body(415, "UnsupportedMediaType", "unsupported patch type " .. ct))
  end
  if method == "DELETE" then
    local o = objs[name]
    if not o then return respond(c, 404, status_body(404, "NotFound", ('%s "%s" not found'):format(gr, name))) end
    objs[name] = nil
    bump(o)
    c.last_delete_options = body
    emit(coll, "DELETED", o)
    return respond(c, 200, status_body(200, nil, nil, { details = { name = name, kind = resource,
      propagation = body and body.propagationPolicy } }))
  end
  return respond(c, 405, status_body(405, "MethodNotAllowed", "method not allowed"))
end

local function control(c, req)
  local path = req.target
  local body = req.body ~= "" and cjson.decode(req.body) or {}
  if path == "/_test/faults" then
    if body.clear then faults = {} end
    for _, f in ipairs(body.faults or {}) do faults[#faults + 1] = f end
  elseif path == "/_test/tokens" then
    valid_tokens = {}
    for _, t in ipairs(body.tokens or {}) do valid_tokens[t] = true end
  elseif path == "/_test/expire" or path == "/_test/drop" then
    if path == "/_test/expire" then
      compacted = rv
      expire_mode = body.mode or "event"
    end
    for w in pairs(watchers) do
      send_all(w, "0\r\n\r\n")
      close_conn(w)
    end
  elseif path == "/_test/silent_delete" then
    for _, objs in pairs(store) do
      for n, o in pairs(objs) do
        if n == body.name then objs[n] = nil; rv = rv + 1; _ = o end
      end
    end
  elseif path == "/_test/log" then
    return respond(c, 200, { entries = log, connections = accepted })
  elseif path == "/_test/clear_log" then
    log = {}
  end
  return respond(c, 200, { ok = true, rv = rv })
end

local function dispatch(c, req)
  -- As an HTTP proxy (absolute-form target), serve the request ourselves.
  local proxied = req.target:match("^https?://[^/]+(/.*)$")
  if proxied then req.target = proxied end
  if req.target:find("^/_test/") then return control(c, req) end
  local entry = { method = req.method, target = req.target, auth = req.headers["authorization"],
                  content_type = req.headers["content-type"], accept = req.headers["accept"],
                  cn = c.cn, ua = req.headers["user-agent"], t = socket.gettime(), proxied = proxied ~= nil }
  log[#log + 1] = entry
  local line = req.method .. " " .. req.target
  for i, f in ipairs(faults) do
    if line:find(f.match, 1, true) then
      f.count = (f.count or 1) - 1
      if f.count <= 0 then table.remove(faults, i) end
      entry.fault = f.status
      local h = {}
      if f.retry_after then h["Retry-After"] = tostring(f.retry_after) end
      return respond(c, f.status, status_body(f.status, f.reason or "InternalError", f.message or "injected fault"), h)
    end
  end
  local authed = c.cn ~= nil
  local a = req.headers["authorization"]
  if a then
    local tok = a:match("^Bearer (.+)$")
    if tok and valid_tokens[tok] then authed = true
    elseif tok then return respond(c, 401, status_body(401, "Unauthorized", "Unauthorized")) end
  end
  if conf.require_auth and not authed then
    return respond(c, 401, status_body(401, "Unauthorized", "Unauthorized"))
  end
  local ok, err = pcall(api, c, req)
  if not ok then respond(c, 500, status_body(500, "InternalError", tostring(err))) end
end

-- ---- connections ---------------------------------------------------------------
local function fill(c)
  local data, err, partial = c.sock:receive(65536)
  data = data or partial
  if data and #data > 0 then c.buf = c.buf .. data end
  if err == "closed" then c.dead = "closed" end
  return data and #data > 0
end

local function serve(c)
  if ssl_ctx then
    c.sock = assert(ssl.wrap(c.sock, ssl_ctx))
    c.sock:settimeout(0)
    while true do
      local ok, err = c.sock:dohandshake()
      if ok then break end
      if err ~= "wantread" and err ~= "wantwrite" and err ~= "timeout" then c.dead = err return end
      coroutine.yield()
    end
    local cert = c.sock:getpeercertificate()
    if cert and c.sock:getpeerverification() then
      for _, e in ipairs(cert:subject()) do
        if e.name == "commonName" or e.oid == "2.5.4.3" then c.cn = e.value end
      end
    end
  end
  while not c.dead do
    local head_end = c.buf:find("\r\n\r\n", 1, true)
    if head_end then
      local head = c.buf:sub(1, head_end - 1)
      local method, target = head:match("^(%u+) (%S+) HTTP/1%.%d")
      local headers = {}
      for k, v in head:gmatch("\r\n([^:\r\n]+):%s*([^\r\n]*)") do headers[k:lower()] = v end
      local len = tonumber(headers["content-length"] or "0")
      while #c.buf < head_end + 3 + len and not c.dead do
        if not fill(c) then coroutine.yield() end
      end
      local body = c.buf:sub(head_end + 4, head_end + 3 + len)
      c.buf = c.buf:sub(head_end + 4 + len)
      if c.watching then return end
      dispatch(c, { method = method, target = target, headers = headers, body = body })
      if c.watching then
        while not c.dead do
          fill(c)
          coroutine.yield()
        end
        return
      end
    else
      if not fill(c) then
        if c.dead then return end
        coroutine.yield()
      end
    end
  end
end

local conns = {}
while true do
  local recvt = { listener }
  local ready_now = {}
  for _, c in ipairs(conns) do
    recvt[#recvt + 1] = c.sock
    if c.sock.dirty and c.sock:dirty() then ready_now[#ready_now + 1] = c end
  end
  local readable = socket.select(recvt, nil, #ready_now > 0 and 0 or 0.5)
  local hit = {}
  for _, s in ipairs(readable or {}) do hit[s] = true end
  if hit[listener] then
    while true do
      local s = listener:accept()
      if not s then break end
      s:settimeout(0)
      s:setoption("tcp-nodelay", true)
      accepted = accepted + 1
      local c = { sock = s, buf = "" }
      c.co = coroutine.create(serve)
      conns[#conns + 1] = c
      hit[s] = true
    end
  end
  for _, c in ipairs(ready_now) do hit[c.sock] = true end
  local keep = {}
  for _, c in ipairs(conns) do
    if hit[c.sock] and not c.dead then
      local ok, err = coroutine.resume(c.co, c)
      if not ok then io.stderr:write("testserver: ", tostring(err), "\n"); c.dead = err end
    end
    if c.dead or coroutine.status(c.co) == "dead" then
      close_conn(c)
    else
      keep[#keep + 1] = c
    end
  end
  conns = keep
end
