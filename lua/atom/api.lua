-- atom.api — the embedding entry points, shared by libatom (runtime/atom.c
-- calls these through lh_pcall) and the Lua module `atom` for plain lua5.4
-- (the rockspec). One code path: both end in the release engine the CLI uses.
--
-- Every function takes `opts`:
--   kubeconfig, kubeconfig_data, context, namespace   -- as kubectl's flags
--   options  = { deadline = s, ["lease-duration"] = s, ["history-limit"] = n,
--                ["allow-exec"] = bool, ["allow-read-outside"] = bool }
--   log      = function(level, line)          -- level: "debug"|"info"|"warn"|"error"
--   progress = function(event)                -- see below
--   app      = { name = function(...) | string }  -- seen by scripts as atom.app.<name>
--   interrupted = function() -> count         -- the run cancels when the count grows
-- and returns its result, or nil and an error table { kind = K, message = M }
-- where K is "invalid", "kube", "busy", "lua", "budget", "state" or "io".
--
-- progress events: { kind = "transition", release, version, from, to, reason }
--                  { kind = "not_ready", release, version, object, message }
local util = require "atom.release.util"

local api = {}

local KNOWN_OPTIONS = {
  ["deadline"] = "number",
  ["lease-duration"] = "number",
  ["history-limit"] = "number",
  ["allow-exec"] = "boolean",
  ["allow-read-outside"] = "boolean",
}
api.KNOWN_OPTIONS = KNOWN_OPTIONS

local function fail(kind, message)
  return nil, { kind = kind, message = tostring(message) }
end

-- Errors from below arrive as strings or as { kind, message } tables.
local function as_error(err, default_kind)
  if type(err) == "table" then
    return { kind = err.kind or default_kind, message = tostring(err.message or err[1] or "?") }
  end
  local msg = tostring(err)
  local kind = default_kind
  if msg:find("budget exceeded", 1, true) then kind = "budget" end
  return { kind = kind, message = msg }
end

-- Converts an option's string value (as C and the CLI give them) to its type.
function api.coerce_option(name, value)
  local want = KNOWN_OPTIONS[name]
  if not want then
    return nil, "unknown option '" .. tostring(name) .. "'"
  end
  if value == nil then return nil end
  if want == "number" then
    local n = tonumber(value)
    if not n or n < 0 then
      return nil, "option '" .. name .. "' wants a non-negative number, got '" .. tostring(value) .. "'"
    end
    return n
  end
  if value == true or value == "true" or value == "1" or value == "yes" then return true end
  if value == false or value == "false" or value == "0" or value == "no" then return false end
  return nil, "option '" .. name .. "' wants true or false, got '" .. tostring(value) .. "'"
end

local function check_options(opts)
  for k, v in pairs(opts.options or {}) do
    local _, err = api.coerce_option(k, v)
    if err then return err end
  end
end

-- The embedder's functions and values, put where scripts see them. Each
-- script gets its own `atom` instance from atom.new (the loader's sandbox
-- calls it), so the instance maker is wrapped once per Lua state to add
-- `app`; `current_app` is what the latest call on this state configured.
local current_app = {}
local wrapped = false

local function wrap_atom_new()
  if wrapped then return end
  local ok, atom = pcall(require, "atom")
  if not ok or type(atom) ~= "table" or type(atom.new) ~= "function" then return end
  local base_new = atom.new
  atom.new = function(...)
    local instance = base_new(...)
    if type(instance) == "table" and instance.app == nil then
      instance.app = current_app
    end
    return instance
  end
  atom.app = current_app
  wrapped = true
end

local function install_app(opts)
  local app = {}
  for name, v in pairs(opts.app or {}) do
    if type(name) ~= "string" or not name:match("^[%a_][%w_]*$") then
      return "app names must be Lua identifiers, got '" .. tostring(name) .. "'"
    end
    if type(v) ~= "function" and type(v) ~= "string" then
      return "atom.app." .. name .. " must be a function or a string"
    end
    app[name] = v
  end
  -- Fill the one table in place so instances made earlier see it too.
  for k in pairs(current_app) do current_app[k] = nil end
  for k, v in pairs(app) do current_app[k] = v end
  wrap_atom_new()
  return nil, current_app
end

-- The options table the engine and loader take, from the embedder's opts.
local function engine_opts(opts, app)
  local o = {
    kubeconfig = opts.kubeconfig,
    kubeconfig_data = opts.kubeconfig_data,
    context = opts.context,
    namespace = opts.namespace,
    log = opts.log,
    progress = opts.progress,
    interrupted = opts.interrupted,
    app = app,
  }
  for k, v in pairs(opts.options or {}) do
    o[k:gsub("-", "_")] = api.coerce_option(k, v)
  end
  return o
end

-- -> engine options | nil, what is wrong with opts
local function prepare(opts)
  opts = opts or {}
  local bad = check_options(opts)
  if bad then return nil, bad end
  local err, app = install_app(opts)
  if err then return nil, err end
  return engine_opts(opts, app)
end

-- Calls the release loader's `fn` protected; a raised error is the script's ("lua"),
-- a returned one is bad input ("invalid").
local function load_with(fn, arg, eo, extra)
  local lo = { allow_exec = eo.allow_exec, allow_read_outside = eo.allow_read_outside,
               namespace = eo.namespace, app = eo.app }
  for k, v in pairs(extra or {}) do lo[k] = v end
  local ok, release, err = pcall(fn, arg, lo)
  if not ok then return nil, as_error(release, "lua") end
  if not release then return nil, as_error(err, "invalid") end
  return release
end

-- Loads and validates a script (no cluster access).
function api.load(path, opts)
  local eo, bad = prepare(opts)
  if not eo then return fail("invalid", bad) end
  local ok, script = pcall(require, "atom.release.script")
  if not ok then
    return fail("state", "the release loader (atom.release.script) is not available: " .. tostring(script))
  end
  return load_with(script.load, path, eo)
end

-- As load, from text. The loader reads scripts from files (their folder is
-- where relative paths resolve), so the text is staged as a file in `dir`
-- and removed once loaded, unless the loader can take text directly.
function api.load_string(source, dir, chunkname, opts)
  local ok, script = pcall(require, "atom.release.script")
  if ok and type(script.load_string) == "function" then
    local eo, bad = prepare(opts)
    if not eo then return fail("invalid", bad) end
    return load_with(script.load_string, source, eo, { dir = dir or ".", chunkname = chunkname or "release.lua" })
  end
  -- Fallback: a script file written into dir (so relative paths resolve as
  -- the embedder means), removed again at once.
  local base = (dir or ".") .. "/.atom-embed-" .. tostring(os.time()) .. "-"
    .. tostring(math.random(1, 1 << 30)) .. "-" .. (chunkname or "release.lua"):gsub("[^%w%.%-_]", "_")
  local ok_w, ferr = util.write_file(base, source)
  if not ok_w then return fail("io", "cannot stage the script in " .. tostring(dir) .. ": " .. tostring(ferr)) end
  local release, err = api.load(base, opts)
  os.remove(base)
  return release, err
end

-- ---- driving releases (the same building blocks the CLI's verbs use) ----------

-- A progress view (the engine's `progress` interface: log, update, finish)
-- that hands transitions, not-ready objects and log lines to the embedder
-- instead of a terminal.
local View = {}
View.__index = View

local function new_view(eo, release)
  return setmetatable({ eo = eo, release = release, last = {} }, View)
end

function View:log(fields)
  local f = {}
  for _, kv in ipairs(fields) do f[kv[1]] = kv[2] end
  if f.to ~= nil and self.eo.progress then
    self.eo.progress({ kind = "transition", release = f.release or self.release,
      version = util.int(f.version), from = f.from or "", to = f.to, reason = tostring(f.reason or "") })
  end
  if self.eo.log then
    table.insert(fields, 1, { "ts", util.rfc3339(nil, true) })
    self.eo.log(f.error and "error" or "info", util.logfmt(fields))
  end
end

-- Reports each not-ready object whose state or message changed.
function View:update(not_ready)
  local now = {}
  for _, n in ipairs(not_ready or {}) do
    local text = tostring(n.state) .. "\0" .. tostring(n.message)
    now[n.key or n.object] = text
    if self.last[n.key or n.object] ~= text and self.eo.progress then
      self.eo.progress({ kind = "not_ready", release = self.release, object = tostring(n.object),
        message = tostring(n.state) .. ": " .. tostring(n.message or "") })
    end
  end
  self.last = now
end

function View:finish() end

-- The work itself is atom.release.verbs, the same functions the CLI's verbs call,
-- so a release run from C, from Lua or from `atom run` behaves the same.
local function verbs() return require "atom.release.verbs" end

-- kube.connect takes a path: in-memory kubeconfig data is staged in a private
-- file that lives as long as the operation (the client may read it again to
-- refresh credentials). -> eo for verbs, cleanup function | nil, err
local function verb_opts(eo, name)
  local vo = {}
  for k, v in pairs(eo) do vo[k] = v end
  vo.progress, vo.log, vo.app = nil, nil, nil
  vo.progress_view = new_view(eo, name)
  vo.quiet = true
  local staged
  if eo.kubeconfig_data then
    staged = os.tmpname()
    local ok, err = util.write_file(staged, eo.kubeconfig_data)
    if not ok then
      os.remove(staged)
      return nil, { kind = "io", message = "cannot stage the kubeconfig: " .. tostring(err) }
    end
    vo.kubeconfig, vo.kubeconfig_data = staged, nil
  end
  local ok, client, cerr = pcall(verbs().connect, vo)
  if not ok then client, cerr = nil, client end
  vo.client = client
  local function done()
    if vo.client and vo.client.close then pcall(vo.client.close, vo.client) end
    if staged then os.remove(staged) end
  end
  if not vo.client then
    done()
    return nil, as_error(cerr, "kube")
  end
  return vo, done
end

-- Calls verbs[verb](arg, vo) protected, always cleaning up, mapping raised errors.
local function call_verb(verb, arg, opts, name, extra)
  local eo, bad = prepare(opts)
  if not eo then return fail("invalid", bad) end
  local vo, done = verb_opts(eo, name)
  if not vo then return nil, done end
  for k, v in pairs(extra or {}) do vo[k] = v end
  local ok, res, err = pcall(verbs()[verb], arg, vo)
  done()
  if not ok then return nil, as_error(res, "lua") end
  if res == nil then return nil, as_error(err or "failed", "kube") end
  return res
end

local function release_arg(release_or_path, opts)
  if type(release_or_path) == "string" then
    return api.load(release_or_path, opts)
  end
  if type(release_or_path) ~= "table" or type(release_or_path.objects) ~= "table" then
    return fail("invalid", "run wants a loaded release (atom.load) or a script path")
  end
  return release_or_path
end

-- Runs to a terminal state (finishing first a version a dead run left behind):
-- -> { name, namespace, version, state = "Running"|"Reverted"|"Failure", message }
function api.run(release_or_path, opts)
  local release, err = release_arg(release_or_path, opts)
  if not release then return nil, err end
  return call_verb("run", release, opts, release.name)
end

-- Finishes an interrupted version from the record.
function api.resume(name, opts)
  return call_verb("resume", name, opts, name)
end

-- Marks the record so the run driving it cancels (from any process).
-- -> { name, namespace, version, state, phase }
function api.cancel(name, opts)
  return call_verb("cancel", name, opts, name)
end

-- A new version whose objects are version `to`'s (default: the previous good one).
function api.rollback(name, to, opts)
  return call_verb("rollback", name, opts, name, { to = util.int(to) })
end

-- -> { name, namespace, state, version, previous, message, attempt, step_started,
--      versions, not_ready = { { object, state, message } }, transitions }
function api.status(name, opts)
  return call_verb("status", name, opts, name)
end

-- -> { { version, state, when, who, digest, script }, ... } oldest first
function api.history(name, opts)
  local res, err = call_verb("history", name, opts, name)
  if not res then return nil, err end
  local out = {}
  for i, v in ipairs(res) do
    out[i] = { version = util.int(v.version), state = v.state or "", when = v.when or "", who = v.who or "",
               digest = v.digest or "", script = v.script }
  end
  return setmetatable(out, require("atom.core").array_mt)
end

return api
