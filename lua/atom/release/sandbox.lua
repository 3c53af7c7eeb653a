-- atom.release.sandbox: the environment release scripts, their checks, hooks and
-- policies run in.
--
-- sandbox.new{ dir =, script =, allow_exec =, allow_read_outside =,
--              log = function(line), hooks_dir = } -> env, atom instance, control
--   (control: see atom.new; the loader reads object sources and input errors from it)
--
-- Given: string, table, math, utf8, coroutine, the safe builtins, print (-> log),
-- os.time/clock/date/getenv, io.open/io.lines for reading inside the release folder,
-- load (text only, the sandbox as default env), dofile/loadfile inside the folder, and a
-- require that knows "atom", "atom.hooks.<name>" (the ready-made hooks), atom.policy[.x],
-- atom.readiness[.x], atom.json, and Lua modules in the release folder (loaded as text
-- into this same sandbox).
-- Refused, unless a flag allows it, with an error that names the refused call and the
-- flag: os.execute/exit/remove/rename/tmpname, io.popen, io.open for writing, any other
-- module (native ones included), package.loadlib, debug (--allow-exec); reading files
-- outside the folder (--allow-read-outside). Binary chunks are never loaded.
--
-- The env belongs to the caller; modules required from it are cached in it.
local atom_mod = require "atom"

local sandbox = {}

local SAFE = { "assert", "error", "ipairs", "next", "pairs", "pcall", "rawequal", "rawget",
  "rawlen", "rawset", "select", "setmetatable", "getmetatable", "tonumber", "tostring", "type",
  "xpcall", "_VERSION" }

-- atom's own pure-Lua modules a script may use directly: the ready-made policies, the
-- built-in readiness checks (to wrap them in an override) and the JSON codec. None of
-- them reaches the file system, the network or a process.
local TRUSTED = { ["atom.policy"] = true, ["atom.readiness"] = true, ["atom.json"] = true }

local function copy(t)
  local out = {}
  for k, v in pairs(t) do out[k] = v end
  return out
end

local function refuse(what, flag)
  return function()
    error(string.format("%s is not allowed in release scripts (run with %s to allow it)", what, flag), 2)
  end
end

-- Where the ready-made hooks live: an explicit folder, $ATOM_HOOKS_DIR, beside a
-- checkout's lua/ ($ATOM_LUA_DIR or this file's own path), beside the binary, or the
-- install prefix; a build that embeds them preloads atom.hooks.<name>.
local function hooks_dirs(opts)
  local dirs = {}
  local function add(d) if d and d ~= "" then dirs[#dirs + 1] = atom_mod.normalize(d) end end
  add(opts.hooks_dir)
  add(os.getenv("ATOM_HOOKS_DIR"))
  local lua_dir = os.getenv("ATOM_LUA_DIR")
  if lua_dir then add(lua_dir .. "/../hooks") end
  local src = debug.getinfo(1, "S").source
  local root = src:match("^@(.*)lua/atom/release/sandbox%.lua$")
  if root then add((root == "" and "." or root) .. "/hooks") end
  -- Beside the running binary: <prefix>/bin/atom -> <prefix>/share/atom/hooks, and a
  -- build tree inside a checkout (<checkout>/build/atom -> <checkout>/hooks).
  local f = io.open("/proc/self/cmdline", "rb")
  local argv0 = f and (f:read("a") or ""):match("^([^%z]+)")
  if f then f:close() end
  local bindir = argv0 and argv0:match("^(.*)/[^/]*$")
  if bindir then
    add(bindir .. "/../share/atom/hooks")
    add(bindir .. "/../hooks")
  end
  add("/usr/local/share/atom/hooks")
  add("/usr/share/atom/hooks")
  return dirs
end

local function readable(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

function sandbox.new(opts)
  local dir = atom_mod.normalize(opts.dir or ".")
  local env = {}
  for _, name in ipairs(SAFE) do env[name] = _G[name] end
  env.string, env.table, env.math = copy(string), copy(table), copy(math)
  env.utf8, env.coroutine = copy(utf8), copy(coroutine)
  env.string.dump = nil -- bytecode is never loaded back, so there is no use for it

  local log = opts.log or function(line) io.stderr:write(line, "\n") end
  env.print = function(...)
    local parts = table.pack(...)
    for i = 1, parts.n do parts[i] = tostring(parts[i]) end
    log(table.concat(parts, "\t", 1, parts.n))
  end

  -- A path the script may read, or an error saying why not.
  local function resolve(path, what)
    if type(path) ~= "string" then error(what .. ": file name must be a string", 3) end
    local full = atom_mod.join(dir, path)
    if not opts.allow_read_outside and not atom_mod.inside(dir, full) then
      error(string.format("%s(%q) reads outside the release folder %s (run with --allow-read-outside to allow it)",
        what, path, dir), 3)
    end
    return full
  end

  env.os = { time = os.time, clock = os.clock, date = os.date, getenv = os.getenv,
    difftime = os.difftime }
  env.io = {}
  if opts.allow_exec then
    env.os.execute, env.os.exit, env.os.remove = os.execute, os.exit, os.remove
    env.os.rename, env.os.tmpname = os.rename, os.tmpname
    env.io = copy(io)
    env.debug = debug
  else
    for _, name in ipairs({ "execute", "exit", "remove", "rename", "tmpname" }) do
      env.os[name] = refuse("os." .. name, "--allow-exec")
    end
    env.io.popen = refuse("io.popen", "--allow-exec")
    env.io.write = refuse("io.write", "--allow-exec")
    env.io.output = refuse("io.output", "--allow-exec")
    env.debug = setmetatable({}, { __index = function(_, k)
      error(string.format("debug.%s is not allowed in release scripts (run with --allow-exec to allow it)",
        tostring(k)), 2)
    end })
    env.io.open = function(path, mode)
      mode = mode or "r"
      if mode ~= "r" and mode ~= "rb" then
        error(string.format("io.open(%q, %q): writing files is not allowed in release scripts (run with --allow-exec to allow it)",
          tostring(path), tostring(mode)), 2)
      end
      return io.open(resolve(path, "io.open"), mode)
    end
    env.io.lines = function(path, ...)
      if path == nil then error("io.lines without a file name reads stdin, which release scripts may not", 2) end
      return io.lines(resolve(path, "io.lines"), ...)
    end
  end
  env.io.stderr = nil

  env.load = function(chunk, name, mode, chunk_env)
    if mode == "b" then error("load: binary chunks are never loaded in release scripts", 2) end
    return load(chunk, name, "t", chunk_env == nil and env or chunk_env)
  end

  local function loadfile_in(path, what, chunk_env)
    local full = resolve(path, what)
    local f, err = io.open(full, "rb")
    if not f then return nil, err end
    local text = f:read("a")
    f:close()
    return load(text, "@" .. full, "t", chunk_env == nil and env or chunk_env)
  end
  env.loadfile = function(path, mode, chunk_env)
    if mode ~= nil and mode ~= "t" then error("loadfile: binary chunks are never loaded in release scripts", 2) end
    return loadfile_in(path, "loadfile", chunk_env)
  end
  env.dofile = function(path)
    local fn, err = loadfile_in(path, "dofile")
    if not fn then error(err, 2) end
    return fn()
  end

  local loaded = {}
  -- atom.new may be wrapped (the embedding API adds atom.app); the control table is
  -- read from the instance rather than from a second return value.
  local instance = atom_mod.new{ dir = dir, script = opts.script,
    allow_read_outside = opts.allow_read_outside, log = log }
  local control = atom_mod.control_of(instance)
  loaded.atom = instance

  local function load_module(name, file)
    local f, err = io.open(file, "rb")
    if not f then error(string.format("require %q: %s", name, err), 3) end
    local text = f:read("a")
    f:close()
    local fn, lerr = load(text, "@" .. file, "t", env)
    if not fn then error(lerr, 0) end
    local result = fn(name, file)
    if result == nil then result = true end
    loaded[name] = result
    return result
  end

  env.require = function(name)
    if type(name) ~= "string" then error("require: module name must be a string", 2) end
    if loaded[name] ~= nil then return loaded[name] end
    if TRUSTED[name] or name:match("^atom%.policy%.[%w_]+$") or name:match("^atom%.readiness%.[%w_]+$") then
      local value = require(name)
      loaded[name] = value
      return value
    end
    local hook = name:match("^atom%.hooks%.([%w_]+)$")
    if hook then
      for _, d in ipairs(hooks_dirs(opts)) do
        local file = d .. "/" .. hook .. ".lua"
        if readable(file) then return load_module(name, file) end
      end
      -- A build that embeds the hooks preloads them; they are atom's own code.
      local preload = package.preload[name]
      if preload then
        local value = preload(name)
        loaded[name] = value
        return value
      end
      error(string.format("require %q: no ready-made hook %s (set ATOM_HOOKS_DIR to atom's hooks/ folder)",
        name, hook), 2)
    end
    if name:match("^[%w_]+[%w_.]*$") and not name:match("%.%.") then
      local rel = name:gsub("%.", "/")
      for _, candidate in ipairs({ rel .. ".lua", rel .. "/init.lua" }) do
        local file = atom_mod.join(dir, candidate)
        if readable(file) then return load_module(name, file) end
      end
    end
    if opts.allow_exec then
      local value = require(name)
      loaded[name] = value
      return value
    end
    error(string.format("require %q is not allowed: release scripts may require \"atom\", \"atom.hooks.<name>\", "
      .. "atom.policy, atom.readiness and Lua modules in the release folder %s (run with --allow-exec to load other modules)", name, dir), 2)
  end

  env.package = { loaded = loaded, loadlib = opts.allow_exec and package.loadlib
    or refuse("package.loadlib", "--allow-exec") }
  -- Scripts see only the metatables they set themselves: atom's own objects (the kube
  -- client, the string metatable) stay out of reach, so user code cannot patch what the
  -- engine runs later outside any budget. A __gc metamethod would run user code at an
  -- arbitrary point of atom's own work, unbudgeted, so it is refused.
  local own_mts = setmetatable({}, { __mode = "k" })
  env.setmetatable = function(t, mt)
    if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
      error("setmetatable: __gc metamethods are not allowed in release scripts", 2)
    end
    local old_mt = getmetatable(t)
    if old_mt ~= nil and not own_mts[old_mt] then
      error("setmetatable: cannot change a metatable the script did not set", 2)
    end
    if mt ~= nil then own_mts[mt] = true end
    return setmetatable(t, mt)
  end
  env.getmetatable = function(v)
    local mt = getmetatable(v)
    if mt ~= nil and own_mts[mt] then return mt end
    return nil
  end
  env._G = env
  return env, instance, control
end

return sandbox
