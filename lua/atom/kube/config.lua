-- atom.kube.config — kubeconfig as kubectl reads it, and in-cluster config.
--
--   config.load{ kubeconfig = path|nil, kubeconfig_data = text|nil (wins over files),
--                context = name|nil, namespace = ns|nil,
--                env = { KUBECONFIG =, HOME =, KUBERNETES_SERVICE_HOST =, ... }|nil,
--                serviceaccount_dir = dir|nil }
--     -> cfg | nil, err
--   cfg: { server, context, namespace, ca_pem, insecure, tls_server_name, proxy,
--          client_cert_pem, client_key_pem, token, token_file, exec, username,
--          password, impersonate_user, impersonate_groups, source = file }
--   config.credential(cfg, opts) -> cred | nil, err
--     cred: { token =, client_cert_pem =, client_key_pem =, expires = epoch|nil }
--     cached on cfg until it expires; opts.refresh forces an exec/tokenFile re-run.
--   config.error(message, file, field) -> err table with __tostring
--
-- Precedence is kubectl's: --kubeconfig (only that file), else every file of
-- $KUBECONFIG merged (the first file that defines a name or current-context
-- wins; missing files are skipped), else ~/.kube/config, else the in-cluster
-- service account. Relative paths are relative to the file that holds them.
local core = require "atom.core"
local json = require "atom.json"

local M = {}

local err_mt = { __tostring = function(e) return e.message end }

function M.error(message, file, field)
  local text = message
  if file and field then
    text = ("%s: %s: %s"):format(file, field, message)
  elseif file then
    text = ("%s: %s"):format(file, message)
  end
  return setmetatable({ message = text, file = file, field = field, code = 0 }, err_mt)
end

local function read_file(path)
  local f, ferr = io.open(path, "rb")
  if not f then return nil, ferr end
  local data, rerr = f:read("a")
  f:close()
  if not data then return nil, rerr end
  return data
end

local function dirname(path)
  return path:match("^(.*)/[^/]*$") or "."
end

local function resolve(path, base_dir)
  if path:sub(1, 1) == "/" or path:sub(1, 1) == "~" then
    if path:sub(1, 2) == "~/" then
      return (os.getenv("HOME") or "") .. path:sub(2)
    end
    return path
  end
  return base_dir .. "/" .. path
end

local function getenv(opts, name)
  if opts.env and opts.env[name] ~= nil then
    local v = opts.env[name]
    if v == false then return nil end
    return v
  end
  return os.getenv(name)
end

-- Reads one kubeconfig into { file, dir, clusters = {name -> {cluster, file}},
-- users, contexts, current_context }.
local function parse_file(path, text, base_dir)
  if not text then
    local rerr
    text, rerr = read_file(path)
    if not text then
      return nil, M.error("cannot read kubeconfig: " .. tostring(rerr), path)
    end
  end
  local docs, derr = core.yaml_decode(text, path)
  if not docs then
    return nil, M.error("not valid YAML: " .. tostring(derr), path)
  end
  local doc = docs[1]
  if doc == nil then doc = {} end
  if type(doc) ~= "table" or json.is_array(doc) or doc[1] ~= nil or #docs > 1 then
    return nil, M.error("a kubeconfig must be one YAML mapping (kind: Config)", path)
  end
  local parsed = { file = path, dir = base_dir or dirname(path), clusters = {}, users = {}, contexts = {} }
  for _, section in ipairs { { "clusters", "cluster" }, { "users", "user" }, { "contexts", "context" } } do
    local key, inner = section[1], section[2]
    local list = doc[key]
    if list ~= nil and list ~= json.null then
      if type(list) ~= "table" then
        return nil, M.error("must be a list", path, key)
      end
      for i, entry in ipairs(list) do
        if type(entry) ~= "table" or type(entry.name) ~= "string" then
          return nil, M.error("entry has no name", path, ("%s[%d]"):format(key, i - 1))
        end
        local body = entry[inner]
        if body == json.null or body == nil then body = {} end
        if type(body) ~= "table" then
          return nil, M.error("must be a mapping", path, ("%s[%s].%s"):format(key, entry.name, inner))
        end
        if parsed[key][entry.name] == nil then
          parsed[key][entry.name] = { body = body, file = path, dir = parsed.dir }
        end
      end
    end
  end
  local cc = doc["current-context"]
  if type(cc) == "string" and cc ~= "" then parsed.current_context = cc end
  return parsed
end

local function merge(files)
  local merged = { clusters = {}, users = {}, contexts = {}, files = {} }
  for _, p in ipairs(files) do
    merged.files[#merged.files + 1] = p.file
    for _, key in ipairs { "clusters", "users", "contexts" } do
      for name, entry in pairs(p[key]) do
        if merged[key][name] == nil then merged[key][name] = entry end
      end
    end
    if not merged.current_context and p.current_context then
      merged.current_context = p.current_context
      merged.current_context_file = p.file
    end
  end
  return merged
end

local function file_exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

-- Loads a PEM from `<field>-data` (base64) or `<field>` (a file path).
local function pem_from(entry, field, what)
  local body = entry.body
  local data = body[field .. "-data"]
  if type(data) == "string" and data ~= "" then
    local pem = core.base64_decode(data)
    if not pem then
      return nil, M.error("is not valid base64", entry.file, what .. "." .. field .. "-data")
    end
    return pem
  end
  local path = body[field]
  if type(path) == "string" and path ~= "" then
    local full = resolve(path, entry.dir)
    local pem, rerr = read_file(full)
    if not pem then
      return nil, M.error("cannot read " .. full .. ": " .. tostring(rerr), entry.file, what .. "." .. field)
    end
    return pem
  end
  return nil
end

local function in_cluster(opts)
  local host = getenv(opts, "KUBERNETES_SERVICE_HOST")
  local port = getenv(opts, "KUBERNETES_SERVICE_PORT")
  if not host or host == "" or not port or port == "" then return nil end
  local dir = opts.serviceaccount_dir or "/var/run/secrets/kubernetes.io/serviceaccount"
  if host:find(":", 1, true) then host = "[" .. host .. "]" end
  local token_file = dir .. "/token"
  local token, terr = read_file(token_file)
  if not token then
    return nil, M.error("cannot read service account token: " .. tostring(terr), token_file)
  end
  local ca, cerr = read_file(dir .. "/ca.crt")
  if not ca then
    return nil, M.error("cannot read service account CA: " .. tostring(cerr), dir .. "/ca.crt")
  end
  local ns = read_file(dir .. "/namespace")
  ns = ns and ns:match("^%s*(.-)%s*$") or nil
  return {
    server = ("https://%s:%s"):format(host, port),
    context = "in-cluster",
    namespace = opts.namespace or (ns ~= "" and ns) or "default",
    ca_pem = ca,
    token_file = token_file,
    source = "in-cluster",
    creds = {},
  }
end

local function as_bool(v)
  return v == true or v == "true"
end

function M.load(opts)
  opts = opts or {}
  local paths, explicit = {}, false
  if opts.kubeconfig_data then
    explicit = true
  elseif opts.kubeconfig and opts.kubeconfig ~= "" then
    paths = { opts.kubeconfig }
    explicit = true
  else
    local env = getenv(opts, "KUBECONFIG")
    if env and env ~= "" then
      for p in env:gmatch("[^:]+") do
        if file_exists(p) then paths[#paths + 1] = p end
      end
    else
      local home = getenv(opts, "HOME")
      local p = home and (home .. "/.kube/config")
      if p and file_exists(p) then paths = { p } end
    end
  end
  if #paths == 0 and not opts.kubeconfig_data then
    if explicit then
      return nil, M.error("kubeconfig file does not exist", opts.kubeconfig)
    end
    local cfg, ierr = in_cluster(opts)
    if cfg then return cfg end
    if ierr then return nil, ierr end
    return nil, M.error("no kubeconfig: set --kubeconfig or KUBECONFIG, create ~/.kube/config, or run in a cluster")
  end

  local files = {}
  for _, p in ipairs(paths) do
    local parsed, perr = parse_file(p)
    if not parsed then return nil, perr end
    files[#files + 1] = parsed
  end
  if opts.kubeconfig_data then
    -- A kubeconfig handed over as text (the embedding API): relative paths
    -- in it are relative to the working directory.
    local parsed, perr = parse_file("<kubeconfig data>", opts.kubeconfig_data, ".")
    if not parsed then return nil, perr end
    files = { parsed }
  end
  local merged = merge(files)
  local where = #merged.files == 1 and merged.files[1] or table.concat(merged.files, ":")

  local ctx_name = opts.context
  if not ctx_name or ctx_name == "" then
    ctx_name = merged.current_context
    if not ctx_name then
      return nil, M.error("no current-context is set and no context was given (--context)", where, "current-context")
    end
  end
  local ctx = merged.contexts[ctx_name]
  if not ctx then
    local field = opts.context and "contexts" or "current-context"
    local file = (not opts.context and merged.current_context_file) or where
    return nil, M.error(("context %q does not exist"):format(ctx_name), file, field)
  end
  local cluster_name, user_name = ctx.body.cluster, ctx.body.user
  local cluster = cluster_name and merged.clusters[cluster_name]
  if not cluster then
    return nil, M.error(("cluster %q does not exist"):format(tostring(cluster_name)), ctx.file,
      ("contexts[%s].context.cluster"):format(ctx_name))
  end
  local user = { body = {}, file = ctx.file, dir = ctx.dir }
  if user_name and user_name ~= "" then
    user = merged.users[user_name]
    if not user then
      return nil, M.error(("user %q does not exist"):format(user_name), ctx.file,
        ("contexts[%s].context.user"):format(ctx_name))
    end
  end

  local cb, cfield = cluster.body, ("clusters[%s].cluster"):format(cluster_name)
  local server = cb.server
  if type(server) ~= "string" or not server:match("^https?://") then
    return nil, M.error("must be an http(s) URL", cluster.file, cfield .. ".server")
  end
  local ca_pem, caerr = pem_from(cluster, "certificate-authority", cfield)
  if caerr then return nil, caerr end
  local insecure = as_bool(cb["insecure-skip-tls-verify"])
  if insecure and ca_pem then
    return nil, M.error("insecure-skip-tls-verify cannot be combined with a certificate authority",
      cluster.file, cfield .. ".insecure-skip-tls-verify")
  end

  local ns = opts.namespace
  if not ns or ns == "" then
    ns = ctx.body.namespace
    if type(ns) ~= "string" or ns == "" then ns = "default" end
  end

  local ub = user.body
  local ufield = ("users[%s].user"):format(user_name or "")
  local cfg = {
    server = server,
    context = ctx_name,
    namespace = ns,
    ca_pem = ca_pem,
    insecure = insecure,
    tls_server_name = type(cb["tls-server-name"]) == "string" and cb["tls-server-name"] or nil,
    proxy = type(cb["proxy-url"]) == "string" and cb["proxy-url"] or nil,
    source = where,
    user_file = user.file,
    user_field = ufield,
    creds = {},
    cluster_entry = cluster,
  }
  local cert, certerr = pem_from(user, "client-certificate", ufield)
  if certerr then return nil, certerr end
  local key, keyerr = pem_from(user, "client-key", ufield)
  if keyerr then return nil, keyerr end
  if (cert == nil) ~= (key == nil) then
    return nil, M.error("client-certificate and client-key must be given together", user.file,
      ufield .. (cert and ".client-key" or ".client-certificate"))
  end
  cfg.client_cert_pem, cfg.client_key_pem = cert, key
  if type(ub.token) == "string" and ub.token ~= "" then cfg.token = ub.token end
  if type(ub.tokenFile) == "string" and ub.tokenFile ~= "" then
    cfg.token_file = resolve(ub.tokenFile, user.dir)
    local _, terr = read_file(cfg.token_file)
    if terr then
      return nil, M.error("cannot read " .. cfg.token_file .. ": " .. tostring(terr), user.file, ufield .. ".tokenFile")
    end
  end
  if type(ub.username) == "string" then
    cfg.username, cfg.password = ub.username, tostring(ub.password or "")
  end
  if type(ub.as) == "string" and ub.as ~= "" then cfg.impersonate_user = ub.as end
  if type(ub["as-groups"]) == "table" then cfg.impersonate_groups = ub["as-groups"] end
  if ub["auth-provider"] ~= nil and ub["auth-provider"] ~= json.null then
    return nil, M.error("auth-provider plugins are not supported; use an exec credential plugin",
      user.file, ufield .. ".auth-provider")
  end
  local exec = ub.exec
  if exec ~= nil and exec ~= json.null then
    local efield = ufield .. ".exec"
    if type(exec) ~= "table" then return nil, M.error("must be a mapping", user.file, efield) end
    local av = exec.apiVersion
    if av ~= "client.authentication.k8s.io/v1" and av ~= "client.authentication.k8s.io/v1beta1" then
      return nil, M.error(("unsupported apiVersion %q (want client.authentication.k8s.io/v1 or v1beta1)")
        :format(tostring(av)), user.file, efield .. ".apiVersion")
    end
    if type(exec.command) ~= "string" or exec.command == "" then
      return nil, M.error("is required", user.file, efield .. ".command")
    end
    local command = exec.command
    -- client-go: a relative command with a slash is relative to the kubeconfig.
    if command:find("/", 1, true) and command:sub(1, 1) ~= "/" then
      command = resolve(command, user.dir)
    end
    local env = {}
    if type(exec.env) == "table" then
      for i, e in ipairs(exec.env) do
        if type(e) ~= "table" or type(e.name) ~= "string" then
          return nil, M.error("needs name and value", user.file, ("%s.env[%d]"):format(efield, i - 1))
        end
        env[e.name] = tostring(e.value or "")
      end
    end
    local args = {}
    if type(exec.args) == "table" then
      for i, a in ipairs(exec.args) do args[i] = tostring(a) end
    end
    cfg.exec = {
      api_version = av, command = command, args = args, env = env,
      provide_cluster_info = as_bool(exec.provideClusterInfo),
      install_hint = type(exec.installHint) == "string" and exec.installHint or nil,
      file = user.file, field = efield,
    }
  end
  return cfg
end

-- RFC 3339 to seconds since the epoch (UTC), without the local time zone.
local function parse_time(s)
  local y, mo, d, h, mi, sec, rest = s:match("^(%d%d%d%d)-(%d%d)-(%d%d)[Tt ](%d%d):(%d%d):(%d%d)%.?%d*(.*)$")
  if not y then return nil end
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  -- days from civil (Howard Hinnant)
  local yy = mo <= 2 and y - 1 or y
  local era = (yy >= 0 and yy or yy - 399) // 400
  local yoe = yy - era * 400
  local doy = (153 * (mo > 2 and mo - 3 or mo + 9) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  local days = era * 146097 + doe - 719468
  local t = days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(sec)
  if rest == "Z" or rest == "z" or rest == "" then return t end
  local sign, oh, om = rest:match("^([+-])(%d%d):?(%d%d)$")
  if not sign then return nil end
  local off = tonumber(oh) * 3600 + tonumber(om) * 60
  return sign == "+" and t - off or t + off
end
M.parse_time = parse_time

local function run_exec(cfg)
  local ex = cfg.exec
  local info = {
    apiVersion = ex.api_version, kind = "ExecCredential",
    spec = { interactive = false },
  }
  if ex.provide_cluster_info then
    local cb = cfg.cluster_entry and cfg.cluster_entry.body or {}
    info.spec.cluster = {
      server = cfg.server,
      ["tls-server-name"] = cfg.tls_server_name,
      ["insecure-skip-tls-verify"] = cfg.insecure or nil,
      ["certificate-authority-data"] = cfg.ca_pem and core.base64_encode(cfg.ca_pem) or nil,
      ["proxy-url"] = cfg.proxy,
      config = (type(cb.extensions) == "table" and cb.extensions["client.authentication.k8s.io/exec"]) or json.null,
    }
  end
  local env = {}
  for k, v in pairs(ex.env) do env[k] = v end
  env.KUBERNETES_EXEC_INFO = json.encode(info)
  local proc = require "atom.proc"
  local res, perr = proc.run { command = ex.command, args = ex.args, env = env, timeout = 60 }
  local what = "exec credential plugin " .. ex.command
  if not res then
    local hint = ex.install_hint and ("\n" .. ex.install_hint) or ""
    return nil, M.error(what .. ": " .. tostring(perr) .. hint, ex.file, ex.field .. ".command")
  end
  if res.timed_out then
    return nil, M.error(what .. " did not finish within 60 s", ex.file, ex.field .. ".command")
  end
  if res.status ~= 0 then
    local stderr = res.stderr:gsub("%s+$", "")
    return nil, M.error(("%s exited with status %d%s"):format(what, res.status,
      stderr ~= "" and (": " .. stderr) or ""), ex.file, ex.field .. ".command")
  end
  local cred = json.try_decode(res.stdout)
  if type(cred) ~= "table" or cred.kind ~= "ExecCredential" then
    local shown = res.stdout:sub(1, 200):gsub("%s+$", "")
    return nil, M.error(("%s printed something that is not an ExecCredential: %q"):format(what, shown),
      ex.file, ex.field .. ".command")
  end
  if cred.apiVersion ~= ex.api_version then
    return nil, M.error(("%s returned apiVersion %q, but %q is configured"):format(what,
      tostring(cred.apiVersion), ex.api_version), ex.file, ex.field .. ".apiVersion")
  end
  local st = cred.status
  if type(st) ~= "table" then
    return nil, M.error(what .. " printed an ExecCredential without status", ex.file, ex.field .. ".command")
  end
  local out = {}
  if type(st.token) == "string" and st.token ~= "" then out.token = st.token end
  if type(st.clientCertificateData) == "string" and type(st.clientKeyData) == "string" then
    out.client_cert_pem, out.client_key_pem = st.clientCertificateData, st.clientKeyData
  end
  if not out.token and not out.client_cert_pem then
    return nil, M.error(what .. " printed an ExecCredential with neither token nor client certificate",
      ex.file, ex.field .. ".command")
  end
  if type(st.expirationTimestamp) == "string" then
    out.expires = parse_time(st.expirationTimestamp)
    if not out.expires then
      return nil, M.error(("%s printed a bad expirationTimestamp %q"):format(what, st.expirationTimestamp),
        ex.file, ex.field .. ".command")
    end
  end
  return out
end

local TOKEN_FILE_REREAD = 60

-- The credential to use now. Exec results are cached until their expiry;
-- token files are re-read every minute (the kubelet rotates them).
function M.credential(cfg, opts)
  local refresh = opts and opts.refresh
  local now = core.wall()
  local cache = cfg.creds
  if cfg.exec then
    local c = cache.exec
    if refresh or not c or (c.expires and c.expires - 10 <= now) then
      local fresh, eerr = run_exec(cfg)
      if not fresh then return nil, eerr end
      cache.exec = fresh
      c = fresh
    end
    return c
  end
  if cfg.token_file then
    if refresh or not cache.file_token or now - cache.file_read >= TOKEN_FILE_REREAD then
      local t, rerr = read_file(cfg.token_file)
      if not t then
        return nil, M.error("cannot read " .. cfg.token_file .. ": " .. tostring(rerr),
          cfg.user_file or cfg.token_file, cfg.user_field and (cfg.user_field .. ".tokenFile"))
      end
      cache.file_token = t:match("^%s*(.-)%s*$")
      cache.file_read = now
    end
    return { token = cache.file_token }
  end
  return { token = cfg.token }
end

-- Whether a 401 may be cured by asking again.
function M.refreshable(cfg)
  return cfg.exec ~= nil or cfg.token_file ~= nil
end

return M
