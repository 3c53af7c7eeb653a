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
-- and returns its result, or nil and an error table { kind = K, message = M }
-- where K is "invalid", "kube", "busy", "lua", "budget", "state" or "io".
--
-- progress events: { kind = "transition", release, version, from, to, reason }
--                  { kind = "not_ready", release, version, object, message }
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

local function engine()
  local ok, mod = pcall(require, "atom.release.engine")
  if not ok then
    return nil, "the release engine (atom.release.engine) is not available: " .. tostring(mod)
  end
  return mod
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
    app = app,
  }
  for k, v in pairs(opts.options or {}) do
    o[k:gsub("-", "_")] = api.coerce_option(k, v)
  end
  return o
end

local function prepare(opts)
  opts = opts or {}
  local bad = check_options(opts)
  if bad then return nil, nil, bad end
  local err, app = install_app(opts)
  if err then return nil, nil, err end
  return opts, engine_opts(opts, app)
end

-- Loads and validates a script (no cluster access).
function api.load(path, opts)
  local _, eo, bad = prepare(opts)
  if bad then return fail("invalid", bad) end
  local ok, script = pcall(require, "atom.release.script")
  if not ok then
    return fail("state", "the release loader (atom.release.script) is not available: " .. tostring(script))
  end
  local ok2, release, err = pcall(script.load, path, {
    allow_exec = eo.allow_exec, allow_read_outside = eo.allow_read_outside,
    namespace = eo.namespace, app = eo.app,
  })
  if not ok2 then return nil, as_error(release, "lua") end
  if not release then return nil, as_error(err, "invalid") end
  return release
end

-- As load, from text. The loader reads scripts from files (their folder is
-- where relative paths resolve), so the text is staged as a file in `dir`
-- and removed once loaded, unless the loader can take text directly.
function api.load_string(source, dir, chunkname, opts)
  local ok, script = pcall(require, "atom.release.script")
  if ok and type(script.load_string) == "function" then
    local _, eo, bad = prepare(opts)
    if bad then return fail("invalid", bad) end
    local ok2, release, err = pcall(script.load_string, source, {
      dir = dir or ".", chunkname = chunkname or "release.lua",
      allow_exec = eo.allow_exec, allow_read_outside = eo.allow_read_outside,
      namespace = eo.namespace, app = eo.app,
    })
    if not ok2 then return nil, as_error(release, "lua") end
    if not release then return nil, as_error(err, "invalid") end
    return release
  end
  -- Fallback: a script file written into dir (so relative paths resolve as
  -- the embedder means), removed again at once.
  local base = (dir or ".") .. "/.atom-embed-" .. tostring(os.time()) .. "-"
    .. tostring(math.random(1, 1 << 30)) .. "-" .. (chunkname or "release.lua"):gsub("[^%w%.%-_]", "_")
  local f, ferr = io.open(base, "wb")
  if not f then return fail("io", "cannot stage the script in " .. tostring(dir) .. ": " .. tostring(ferr)) end
  f:write(source)
  f:close()
  local release, err = api.load(base, opts)
  os.remove(base)
  return release, err
end

-- Calls engine[verb](...) protected, mapping its answer to result | nil, err.
local function drive(verb, ...)
  local eng, why = engine()
  if not eng then return fail("state", why) end
  local fn = eng[verb]
  if type(fn) ~= "function" then
    return fail("state", "the release engine has no '" .. verb .. "' entry point yet")
  end
  local ok, res, err = pcall(fn, ...)
  if not ok then return nil, as_error(res, "lua") end
  if res == nil then return nil, as_error(err or "failed", "kube") end
  return res
end

local function release_arg(release_or_path, opts)
  if type(release_or_path) == "string" then
    return api.load(release_or_path, opts)
  end
  if type(release_or_path) ~= "table" then
    return fail("invalid", "run wants a loaded release or a script path")
  end
  return release_or_path
end

-- Runs to a terminal state: -> { name, version, state = "Running"|"Reverted"|"Failure" }
function api.run(release_or_path, opts)
  local release, err = release_arg(release_or_path, opts)
  if not release then return nil, err end
  local _, eo, bad = prepare(opts)
  if bad then return fail("invalid", bad) end
  return drive("run", release, eo)
end

function api.resume(name, opts)
  local _, eo, bad = prepare(opts)
  if bad then return fail("invalid", bad) end
  return drive("resume", name, eo)
end

function api.cancel(name, opts)
  local _, eo, bad = prepare(opts)
  if bad then return fail("invalid", bad) end
  return drive("cancel", name, eo)
end

-- to: version number, or nil for the previous good one.
function api.rollback(name, to, opts)
  local _, eo, bad = prepare(opts)
  if bad then return fail("invalid", bad) end
  eo.to = to
  return drive("rollback", name, eo)
end

-- -> { name, namespace, state, version, previous, message, not_ready = {...} }
function api.status(name, opts)
  local _, eo, bad = prepare(opts)
  if bad then return fail("invalid", bad) end
  return drive("status", name, eo)
end

-- -> { { version, state, when, who, digest }, ... } oldest first
function api.history(name, opts)
  local _, eo, bad = prepare(opts)
  if bad then return fail("invalid", bad) end
  return drive("history", name, eo)
end

return api
