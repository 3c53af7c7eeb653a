-- atom.release.script: loads and validates a release script; the release it returns is
-- what the engine drives.
--
-- script.load(path, opts) -> release | nil, err
--   opts: allow_exec, allow_read_outside (the --allow-* flags), limits (flag overrides of
--   the script's limits), namespace (the -n override), log = function(line) (script
--   print/atom.log output; stderr by default), hooks_dir (where atom.hooks.* live).
--   err = { kind = "invalid", message = "file:line: what is wrong", traceback = string|nil }
--   Nothing here touches a cluster.
--
-- release = { name, namespace, deadline, rollback_deadline, history_limit, fail_fast_after,
--   objects = { { object =, source = "file:line" }, ... }, readiness, hooks = { before, after },
--   policy, limits = { instructions, seconds, heap, hook_seconds }, script_path,
--   script_digest, dir } with methods check, has_hook, run_hook and decide (below). Every call into
--   user Lua runs through atom.host.call under limits; user functions never raise into the
--   engine.
local core = require "atom.core"
local host = require "atom.host"
local readiness = require "atom.readiness"
local policy_mod = require "atom.policy"
local sandbox = require "atom.release.sandbox"
local atom_mod = require "atom"

local script = {}

script.DEFAULT_LIMITS = {
  instructions = 50000000, -- per call; a busy loop stops in well under a minute
  seconds = 10,            -- wall time per call of a check, policy or the script itself
  heap = 256 * 1024 * 1024, -- heap growth allowed during one call
  -- hook_seconds: wall time per hook call; hooks wait on the cluster (Jobs), so it
  -- defaults to the release deadline.
}

script.STATES = { "Pending", "Updating", "Running", "Cancelled", "Deadline", "Error", "Rollback",
  "Reverted", "Failure" }
local STATE_SET = {}
for _, s in ipairs(script.STATES) do STATE_SET[s] = true end

local KNOWN_FIELDS = { name = true, namespace = true, deadline = true, rollback_deadline = true,
  history_limit = true, objects = true, readiness = true, hooks = true, policy = true,
  limits = true, description = true, fail_fast_after = true }

local LIMIT_FIELDS = { instructions = true, seconds = true, heap = true, hook_seconds = true }

-- Names RBAC kinds may carry (path segments, e.g. "system:controller:foo").
local PATH_SEGMENT_KINDS = { Role = true, ClusterRole = true, RoleBinding = true,
  ClusterRoleBinding = true }
local LABEL_KINDS = { Namespace = true, Service = true }

-- Checked for every object's name and namespace: find and byte, no captured strings.
local function is_label(s)
  if type(s) ~= "string" or #s > 63 or not s:find("^[a-z0-9][-a-z0-9]*$") then return false end
  local last = s:byte(-1)
  return last >= 97 and last <= 122 or last >= 48 and last <= 57
end

local function is_subdomain(s)
  if type(s) ~= "string" or #s == 0 or #s > 253 then return false end
  if not s:find(".", 1, true) then return is_label(s) end
  for part in (s .. "."):gmatch("([^.]*)%.") do
    if not is_label(part) then return false end
  end
  return s:sub(-1) ~= "."
end

local function show(v)
  if type(v) == "string" then return string.format("%q", v) end
  return tostring(v)
end

local function group_of(api_version)
  return type(api_version) == "string" and api_version:match("^(.*)/[^/]*$") or ""
end

local function first_line(msg)
  msg = tostring(msg)
  return msg:match("^([^\n]*)") or msg
end

-- Drops the frames below the budgeted call (atom's own machinery) from a traceback.
local function trim_traceback(msg)
  msg = tostring(msg)
  local cut = msg:find("\n%s*%[C%]: in function 'atom%.host%.call'")
  if cut then msg = msg:sub(1, cut - 1) end
  return msg
end

local function fn_where(fn)
  local info = debug.getinfo(fn, "S")
  if info and info.what ~= "C" and info.linedefined and info.linedefined > 0 then
    return info.short_src .. ":" .. info.linedefined
  end
  return "?"
end

local function budget_text(kind, limits, seconds)
  if kind == "instruction" then
    return string.format("ran out of its instruction budget (limits.instructions = %d)", limits.instructions)
  elseif kind == "time" then
    return string.format("ran out of its wall-time budget (%g s)", seconds)
  elseif kind == "memory" then
    return string.format("reached the Lua heap ceiling (limits.heap = %d bytes)", limits.heap)
  end
  return nil
end

-- Helpers for naming lines of the script text in errors about its fields.
local function text_index(text)
  local lines = {}
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  local idx = { lines = lines }
  -- The first line that assigns `key =` (or ["key"] =), else fallback.
  function idx.field(key, fallback)
    local plain = "^%s*" .. key:gsub("%p", "%%%0") .. "%s*="
    local quoted = "%[%s*[\"']" .. key:gsub("%p", "%%%0") .. "[\"']%s*%]%s*="
    for i, l in ipairs(lines) do
      if l:match(plain) or l:find(quoted) or l:find("[{,]%s*" .. key:gsub("%p", "%%%0") .. "%s*=") then
        return i
      end
    end
    return fallback or 1
  end
  -- The first line holding the string literal s.
  function idx.literal(s, fallback)
    if type(s) ~= "string" then return fallback end
    for i, l in ipairs(lines) do
      if l:find('"' .. s .. '"', 1, true) or l:find("'" .. s .. "'", 1, true) then return i end
    end
    return fallback
  end
  function idx.last_return()
    for i = #lines, 1, -1 do
      if lines[i]:match("^%s*return[%s{(]") or lines[i]:match("^%s*return$") then return i end
    end
    for i = #lines, 1, -1 do
      if lines[i]:match("%S") then return i end
    end
    return 1
  end
  return idx
end

-- A copy of a script's data made with raw access only; metatables are dropped except
-- the JSON-array marker. The Lua walk is the reference; core.raw_copy does the same in
-- C (in Lua it was a third of loading 5,000 objects) and leaves values nested deeper
-- than it goes to this one.
local function lua_raw_copy(root)
  local seen = {}
  local function copy(v)
    if type(v) ~= "table" then return v end
    if seen[v] then return seen[v] end
    local out = {}
    seen[v] = out
    local k, x = next(v)
    while k ~= nil do
      rawset(out, copy(k), copy(x))
      k, x = next(v, k)
    end
    if getmetatable(v) == core.array_mt then setmetatable(out, core.array_mt) end
    return out
  end
  return copy(root)
end

-- An atom.core built before core.raw_copy existed (a stale rock) still loads scripts.
local c_raw_copy = core.raw_copy or function() return nil end
local function raw_copy(root)
  local out = c_raw_copy(root)
  if out == nil and root ~= nil then return lua_raw_copy(root) end
  return out
end

local Invalid = {}
local function invalid(message, traceback)
  error(setmetatable({ kind = "invalid", message = message, traceback = traceback }, Invalid), 0)
end

local function merge_limits(...)
  local out = {}
  for k, v in pairs(script.DEFAULT_LIMITS) do out[k] = v end
  for i = 1, select("#", ...) do
    local t = select(i, ...)
    if type(t) == "table" then
      for k, v in pairs(t) do out[k] = v end
    end
  end
  return out
end

local function check_limits(t, where)
  if t == nil then return end
  if type(t) ~= "table" then invalid(where .. ": limits must be a table, got " .. type(t)) end
  for k, v in pairs(t) do
    if not LIMIT_FIELDS[k] then
      invalid(string.format("%s: limits.%s is not a limit (want instructions, seconds, heap or hook_seconds)",
        where, tostring(k)))
    end
    if type(v) ~= "number" or v <= 0 or v ~= v then
      if where == "flags" then
        invalid(string.format("--max-%s must be a positive number, got %s", k, show(v)))
      end
      invalid(string.format("%s: limits.%s must be a positive number, got %s", where, k, show(v)))
    end
  end
end

-- Lists of objects in any nesting; a table with kind, apiVersion or metadata, or one
-- atom.yaml produced, is an object. value is the raw copy, orig the script's table it
-- was copied from (read with rawget only): atom.yaml's sources are keyed by the
-- original, and walking both saves a copy -> original map of every copied table.
local function flatten(value, orig, out, path, is_object)
  if type(value) ~= "table" then
    return path .. " is a " .. type(value) .. ", not an object or a list of objects"
  end
  if is_object(value, orig) then
    out[#out + 1] = { object = value, orig = orig, path = path }
    return nil
  end
  local n = 0
  for k in pairs(value) do
    n = n + 1
    if math.type(k) ~= "integer" then
      return path .. " is neither an object (no apiVersion or kind) nor a list of objects (key " .. show(k) .. ")"
    end
  end
  for i = 1, #value do
    local err = flatten(value[i], rawget(orig, i), out, path .. "[" .. i .. "]", is_object)
    if err then return err end
  end
  if n ~= #value then return path .. " has holes (nil entries)" end
  return nil
end

-- How an entry is named in errors (made only for an error: it runs for every object).
local function doc_of(entry)
  return entry.doc and ("document " .. entry.doc) or ("object " .. entry.path)
end

local function validate_object(entry, ctx)
  local obj, src = entry.object, entry.source
  if type(obj.kind) ~= "string" or obj.kind == "" then
    invalid(string.format("%s: %s has no kind", src, doc_of(entry)))
  end
  if type(obj.apiVersion) ~= "string" or obj.apiVersion == "" then
    invalid(string.format("%s: %s (%s) has no apiVersion", src, doc_of(entry), obj.kind))
  end
  local meta = obj.metadata
  if type(meta) ~= "table" or type(meta.name) ~= "string" or meta.name == "" then
    if type(meta) == "table" and meta.generateName then
      invalid(string.format("%s: %s (%s) uses metadata.generateName; a release needs fixed names",
        src, doc_of(entry), obj.kind))
    end
    invalid(string.format("%s: %s (%s) has no metadata.name", src, doc_of(entry), obj.kind))
  end
  local name, kind = meta.name, obj.kind
  local g = group_of(obj.apiVersion)
  if LABEL_KINDS[kind] and g == "" then
    if not is_label(name) then
      invalid(string.format("%s: %s name %s is not a valid DNS label (lowercase letters, digits and '-', at most 63)",
        src, kind, show(name)))
    end
  elseif PATH_SEGMENT_KINDS[kind] then
    if name == "." or name == ".." or name:find("[/%%]") then
      invalid(string.format("%s: %s name %s may not be '.', '..' or contain '/' or '%%'", src, kind, show(name)))
    end
  elseif not is_subdomain(name) then
    invalid(string.format("%s: %s name %s is not a valid DNS subdomain (lowercase letters, digits, '-' and '.', at most 253)",
      src, kind, show(name)))
  end
  local ns = meta.namespace
  if ns ~= nil and not is_label(ns) then
    invalid(string.format("%s: %s/%s namespace %s is not a valid DNS label", src, kind, name, show(ns)))
  end
  local cond
  if type(meta.annotations) == "table" then cond = meta.annotations["atom.conditions"] end
  if cond ~= nil then
    local ok, perr = pcall(readiness.parse_conditions, cond)
    if not ok then invalid(string.format("%s: %s/%s: %s", src, kind, name, tostring(perr))) end
  end
  local key = g .. "\0" .. kind .. "\0" .. (ns or ctx.namespace) .. "\0" .. name
  local first = ctx.seen[key]
  if first then
    invalid(string.format("%s: duplicate object %s%s %s/%s (first defined at %s)", src, kind,
      g ~= "" and "." .. g or "", ns or ctx.namespace, name, first))
  end
  ctx.seen[key] = src
end

-- ---- the release's methods -------------------------------------------------

local Release = {}
Release.__index = Release

-- Readiness of one live object, user overrides included (they run under the budgets).
-- When the caller does not say whether a custom resource's CRD declares
-- status.conditions, a CRD shipped in this same release answers it.
function Release:check(obj, ctx)
  if type(obj) == "table" and (ctx == nil or ctx.expects_conditions == nil) then
    local expects = self._crd_conditions[tostring(obj.apiVersion) .. "|" .. tostring(obj.kind)]
    if expects ~= nil then
      local c = {}
      for k, v in pairs(ctx or {}) do c[k] = v end
      c.expects_conditions = expects
      ctx = c
    end
  end
  return readiness.check(obj, self._checks, ctx)
end

-- "group/version|Kind" -> true/false for every version of every CRD in the objects.
local function crd_conditions(objects)
  local plain = {}
  for i, e in ipairs(objects) do plain[i] = e.object end
  return require("atom.release.wait").crd_conditions(plain)
end

-- Whether the user wrote a hook for (phase, state).
function Release:has_hook(phase, state_name)
  return require("atom.release.hooks").find(self, phase, state_name) ~= nil
end

-- Runs the user's hook for (phase, state) if any. ctx is the engine's; hooks.lua adds
-- run_job and http to it.
function Release:run_hook(phase, state_name, ctx)
  return require("atom.release.hooks").run(self, phase, state_name, ctx)
end

-- The policy's answer to a failure. A policy that errors, runs out of budget or answers
-- nonsense gives "rollback" (the safe default) and the reason as a second value.
function Release:decide(failure)
  local limits = self.limits
  local ok, answer, kind = host.call({ instructions = limits.instructions, seconds = limits.seconds,
    heap = limits.heap }, policy_mod.decide, self.policy, failure)
  if ok then return answer end -- policy.decide only lets the three answers through
  local where = type(self.policy) == "function" and fn_where(self.policy) or tostring(self.policy)
  local why = budget_text(kind, limits, limits.seconds) or first_line(answer)
  return "rollback", string.format("policy (%s) failed, rolling back: %s", where, why)
end

-- Calls fn under the release's budgets; returns true, results... | false, message, kind.
function Release:call(seconds, fn, ...)
  local limits = self.limits
  return host.call({ instructions = limits.instructions, seconds = seconds or limits.seconds,
    heap = limits.heap }, fn, ...)
end

script.budget_text = budget_text
script.fn_where = fn_where
script.first_line = first_line
script.trim_traceback = trim_traceback
-- For specs: the C copy and its Lua reference.
script._raw_copy, script._lua_raw_copy = raw_copy, lua_raw_copy

local function wrap_checks(release, overrides)
  if overrides == nil then return nil end
  local wrapped = {}
  for key, fn in pairs(overrides) do
    local where = fn_where(fn)
    wrapped[key] = function(obj, ctx)
      -- The live object is the engine's; the check gets its own copy to read or change.
      local ok, a, b = release:call(nil, fn, (raw_copy(obj)), ctx)
      if ok then
        -- Only plain values leave the budget: tostring on a table could run its __tostring.
        if a ~= nil and type(a) ~= "string" then
          return "failed", string.format("readiness check %s (%s) returned a %s, not a state", key, where, type(a))
        end
        if b ~= nil and type(b) ~= "string" then
          b = (type(b) == "number" or type(b) == "boolean") and tostring(b) or "(a " .. type(b) .. ")"
        end
        return a, b
      end
      local why = budget_text(b, release.limits, release.limits.seconds) or first_line(a)
      return "failed", string.format("readiness check %s (%s) failed: %s", key, where, why)
    end
  end
  return wrapped
end

-- ---- loading ------------------------------------------------------------------

local function read_all(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local text = f:read("a")
  f:close()
  return text
end

local function do_load(path, opts)
  local text, rerr = read_all(path)
  if not text then invalid(string.format("%s:1: cannot read the script: %s", path, tostring(rerr))) end
  local dir = path:match("^(.*)/[^/]*$") or "."
  if dir == "" then dir = "/" end
  local idx = text_index(text)

  check_limits(opts.limits, "flags")
  local load_limits = merge_limits(opts.limits)
  local env, _, control = sandbox.new{ dir = dir, script = path, allow_exec = opts.allow_exec,
    allow_read_outside = opts.allow_read_outside, log = opts.log, hooks_dir = opts.hooks_dir }

  local chunk, serr = load(text, "@" .. path, "t", env)
  if not chunk then invalid(tostring(serr)) end
  local ok, t, kind = host.call({ instructions = load_limits.instructions,
    seconds = load_limits.seconds, heap = load_limits.heap }, chunk)
  if not ok then
    if control.invalid() then invalid(control.invalid()) end
    local budget = budget_text(kind, load_limits, load_limits.seconds)
    local msg = first_line(t)
    if budget then
      local loc = msg:match("^([^:]+:%d+):") or (path .. ":" .. idx.last_return())
      msg = loc .. ": the script " .. budget
    end
    -- The design promises file, line and traceback for a script error: the first line
    -- is "file:line: what", the traceback follows.
    local tb = trim_traceback(t)
    local frames = tb:match("\n(stack traceback:.*)$")
    invalid(frames and (msg .. "\n" .. frames) or msg, tb)
  end
  local at = function(key) return path .. ":" .. idx.field(key, idx.last_return()) end
  if type(t) ~= "table" then
    invalid(string.format("%s:%d: the script must return the release table, got %s", path, idx.last_return(),
      t == nil and "nothing" or type(t)))
  end
  -- From here on atom reads the script's data outside any budget: work on a raw copy, so
  -- no metamethod of the script's (__index, __len, __pairs, ...) runs unbudgeted.
  local script_t = t
  t = raw_copy(t)
  for k in pairs(t) do
    if not KNOWN_FIELDS[k] then
      invalid(string.format("%s: unknown release field %s (want name, namespace, deadline, rollback_deadline, "
        .. "history_limit, fail_fast_after, objects, readiness, hooks, policy, limits)", at(tostring(k)), show(k)))
    end
  end

  if t.name == nil then invalid(at("name") .. ": the release has no name") end
  if not is_label(t.name) then
    invalid(string.format("%s: release name %s is not a valid DNS label (lowercase letters, digits and '-', at most 63)",
      at("name"), show(t.name)))
  end
  local namespace = opts.namespace or t.namespace or "default"
  if not is_label(namespace) then
    invalid(string.format("%s: namespace %s is not a valid DNS label", at("namespace"), show(namespace)))
  end
  local function positive(key, default)
    local v = t[key]
    if v == nil then return default end
    if type(v) ~= "number" or v <= 0 or v ~= v or v == math.huge then
      invalid(string.format("%s: %s must be a positive number of seconds, got %s", at(key), key, show(v)))
    end
    return v
  end
  local deadline = positive("deadline", 300)
  local rollback_deadline = positive("rollback_deadline", deadline)
  -- How long a Deployment may progress before its pods are looked at for a failure that
  -- will not heal (ImagePullBackOff, CrashLoopBackOff); then once per this period.
  local fail_fast_after = positive("fail_fast_after", 5)
  local history_limit = t.history_limit or 10
  if math.type(history_limit) ~= "integer" and not (type(history_limit) == "number"
      and history_limit == math.floor(history_limit)) or history_limit < 1 then
    invalid(string.format("%s: history_limit must be a positive integer, got %s", at("history_limit"),
      show(history_limit)))
  end

  check_limits(t.limits, at("limits"))
  local limits = merge_limits({ hook_seconds = deadline }, t.limits, opts.limits)

  -- objects
  if t.objects == nil then invalid(at("objects") .. ": the release has no objects") end
  local flat = {}
  local ferr = flatten(t.objects, rawget(script_t, "objects"), flat, "objects", function(v, orig)
    -- The copy's own fields first: source_of makes a "file:line" string.
    return v.kind ~= nil or v.apiVersion ~= nil or v.metadata ~= nil or control.source_of(orig) ~= nil
  end)
  if ferr then invalid(at("objects") .. ": " .. ferr) end
  if #flat == 0 then invalid(at("objects") .. ": the release has no objects") end
  local vctx = { seen = {}, namespace = namespace }
  local objects = {}
  local objects_line = idx.field("objects", idx.last_return())
  for i, e in ipairs(flat) do
    local src, info = control.source_of(e.orig)
    if src then
      e.source, e.doc = src, info.doc
    else
      local meta = type(e.object.metadata) == "table" and e.object.metadata or {}
      e.source = path .. ":" .. idx.literal(meta.name, objects_line)
    end
    validate_object(e, vctx)
    objects[i] = { object = e.object, source = e.source }
  end

  -- readiness overrides
  if t.readiness ~= nil then
    local rok, rerr2 = pcall(readiness.validate_overrides, t.readiness)
    if not rok then
      local key = tostring(rerr2):match('override key "([^"]*)"') or tostring(rerr2):match('override "([^"]*)"')
      local line = key and idx.literal(key, nil) or idx.field("readiness")
      invalid(string.format("%s:%d: %s", path, line, tostring(rerr2)))
    end
  end

  -- hooks
  local hooks = { before = {}, after = {} }
  local hook_where = {}
  if t.hooks ~= nil then
    if type(t.hooks) ~= "table" then invalid(at("hooks") .. ": hooks must be a table, got " .. type(t.hooks)) end
    for phase, set in pairs(t.hooks) do
      if phase ~= "before" and phase ~= "after" then
        invalid(string.format("%s: hooks.%s: want hooks.before or hooks.after", at(tostring(phase)), tostring(phase)))
      end
      if type(set) ~= "table" then
        invalid(string.format("%s: hooks.%s must be a table keyed by state name", at(phase), phase))
      end
      for state, fn in pairs(set) do
        if not STATE_SET[state] then
          invalid(string.format("%s: hooks.%s.%s is not a state (want one of %s)", at(tostring(state)), phase,
            tostring(state), table.concat(script.STATES, ", ")))
        end
        if type(fn) ~= "function" then
          invalid(string.format("%s: hooks.%s.%s must be a function, got %s", at(state), phase, state, type(fn)))
        end
        hooks[phase][state] = fn
        -- Where the hook is named in this script, when its code lives elsewhere (a
        -- ready-made hook or a module): errors then point at both.
        local defined = fn_where(fn)
        if defined:sub(1, #path + 1) ~= path .. ":" then
          hook_where[phase .. " " .. state] = path .. ":" .. idx.field(state, idx.field("hooks")) .. ", " .. defined
        end
      end
    end
  end

  -- policy
  local pok, perr = pcall(policy_mod.resolve, t.policy)
  if not pok then invalid(string.format("%s: %s", at("policy"), tostring(perr):gsub("^[^:]*:%d+: ", ""))) end

  local release = setmetatable({
    name = t.name, namespace = namespace, deadline = deadline, rollback_deadline = rollback_deadline,
    history_limit = math.tointeger(history_limit), fail_fast_after = fail_fast_after,
    objects = objects, readiness = t.readiness,
    hooks = hooks, policy = t.policy, limits = limits, script_path = path,
    script_digest = core.sha256_hex(text), dir = dir, description = t.description,
  }, Release)
  release._checks = wrap_checks(release, t.readiness)
  release._hook_where = hook_where
  release._crd_conditions = crd_conditions(objects)
  return release
end

function script.load(path, opts)
  if type(path) ~= "string" then
    return nil, { kind = "invalid", message = "script.load: path must be a string" }
  end
  local ok, result = pcall(do_load, path, opts or {})
  if ok then return result end
  if getmetatable(result) == Invalid then
    return nil, { kind = "invalid", message = result.message, traceback = result.traceback }
  end
  -- A bug of ours, not the user's: say so rather than blame the script.
  return nil, { kind = "internal", message = path .. ": internal error while loading: " .. tostring(result) }
end

return script
