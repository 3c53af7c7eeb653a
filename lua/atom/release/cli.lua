-- atom.release.cli: the release verbs of the `atom` command. runtime/cli_release.c parses the
-- flags and calls cli.main(verb, opts); this prints (text or JSON) and returns the exit code
-- of DESIGN.md's table: 0 Running/ok, 1 could not do the work, 2 usage or invalid script,
-- 3 Reverted, 4 Failure, 5 refused (another run holds the release).
--   opts = { args = { positional... }, kubeconfig, context, namespace, output = "text"|"json",
--            lease_duration, deadline, history_limit, to, allow_exec, allow_read_outside,
--            max_instructions, max_seconds, max_heap (bytes; the budget flags, which
--            override the script's limits),
--            interrupted = function() -> count, tty = bool, quiet = bool,
--            stdout = file, stderr = file }
local json = require "atom.json"
local verbs = require "atom.release.verbs"
local util = require "atom.release.util"

local cli = {}

local EXIT = { ok = 0, failed = 1, usage = 2, reverted = 3, failure = 4, refused = 5 }
cli.EXIT = EXIT

local STATE_EXIT = { Running = EXIT.ok, Reverted = EXIT.reverted, Failure = EXIT.failure }

local function err_exit(err)
  local kind = type(err) == "table" and err.kind
  if kind == "busy" then return EXIT.refused end
  if kind == "invalid" then return EXIT.usage end
  return EXIT.failed
end

local function message_of(err)
  if type(err) == "table" and err.message then return tostring(err.message) end
  return tostring(err)
end

-- The budget flags as script.load's limits (nil when none is given, so the script's own
-- limits stand). The instruction count is whole: a budget of 2.5 instructions means 2.
local function flag_limits(opts)
  local limits
  local function set(field, v)
    if v == nil then return end
    limits = limits or {}
    limits[field] = v
  end
  set("instructions", opts.max_instructions and math.floor(opts.max_instructions))
  set("seconds", opts.max_seconds)
  set("heap", opts.max_heap and math.floor(opts.max_heap))
  return limits
end

local function load_script(path, opts)
  local script = require "atom.release.script"
  local ok, release, err = pcall(script.load, path, {
    allow_exec = opts.allow_exec, allow_read_outside = opts.allow_read_outside,
    namespace = opts.namespace, limits = flag_limits(opts),
  })
  if not ok then return nil, { kind = "invalid", message = tostring(release) } end
  if not release then return nil, { kind = "invalid", message = message_of(err) } end
  return release
end

local function eo_of(opts)
  return { kubeconfig = opts.kubeconfig, context = opts.context, namespace = opts.namespace,
           lease_duration = opts.lease_duration, deadline = opts.deadline,
           history_limit = opts.history_limit, to = opts.to, interrupted = opts.interrupted,
           tty = opts.tty, out = opts.stderr, quiet = opts.quiet }
end

local function printer(opts)
  local out = opts.stdout or io.stdout
  return function(fmt, ...)
    out:write(select("#", ...) > 0 and string.format(fmt, ...) or fmt, "\n")
  end
end

local function emit_json(opts, value)
  local out = opts.stdout or io.stdout
  out:write(json.encode(value), "\n")
end

local function fail_with(opts, err)
  local e = opts.stderr or io.stderr
  e:write("atom: ", message_of(err), "\n")
  return err_exit(err)
end

local function need_arg(opts, what)
  local v = opts.args and opts.args[1]
  if not v or v == "" then
    return nil, { kind = "invalid", message = "missing " .. what }
  end
  return v
end

-- run SCRIPT, rollback NAME and resume NAME end in a terminal state.
local function finish(opts, res)
  if opts.output == "json" then
    emit_json(opts, res)
  else
    printer(opts)("%s: version %s %s%s", res.name, tostring(res.version), res.state,
      res.message and res.message ~= "" and (" (" .. util.first_line(res.message) .. ")") or "")
  end
  return STATE_EXIT[res.state] or EXIT.failed
end

local handlers = {}

function handlers.run(opts)
  local path, perr = need_arg(opts, "SCRIPT")
  if not path then return fail_with(opts, perr) end
  local release, lerr = load_script(path, opts)
  if not release then return fail_with(opts, lerr) end
  local res, err = verbs.run(release, eo_of(opts))
  if not res then return fail_with(opts, err) end
  return finish(opts, res)
end

function handlers.resume(opts)
  local name, perr = need_arg(opts, "NAME")
  if not name then return fail_with(opts, perr) end
  local res, err = verbs.resume(name, eo_of(opts))
  if not res then return fail_with(opts, err) end
  return finish(opts, res)
end

function handlers.rollback(opts)
  local name, perr = need_arg(opts, "NAME")
  if not name then return fail_with(opts, perr) end
  local res, err = verbs.rollback(name, eo_of(opts))
  if not res then return fail_with(opts, err) end
  return finish(opts, res)
end

function handlers.cancel(opts)
  local name, perr = need_arg(opts, "NAME")
  if not name then return fail_with(opts, perr) end
  local res, err = verbs.cancel(name, eo_of(opts))
  if not res then return fail_with(opts, err) end
  if opts.output == "json" then emit_json(opts, res)
  else printer(opts)("%s: cancel of version %d requested (%s)", name, res.version or 0, res.state) end
  return EXIT.ok
end

function handlers.status(opts)
  local name, perr = need_arg(opts, "NAME")
  if not name then return fail_with(opts, perr) end
  local res, err = verbs.status(name, eo_of(opts))
  if not res then return fail_with(opts, err) end
  if opts.output == "json" then
    res.versions = json.array(res.versions or {})
    res.not_ready = json.array(res.not_ready or {})
    res.transitions = json.array(res.transitions or {})
    emit_json(opts, res)
    return EXIT.ok
  end
  local p = printer(opts)
  p("release:   %s (namespace %s)", res.name, res.namespace)
  p("state:     %s", tostring(res.state))
  p("version:   %s (previous good: %s)", tostring(res.version),
    (res.previous or 0) > 0 and tostring(res.previous) or "none")
  if res.message and res.message ~= "" then p("message:   %s", util.first_line(res.message)) end
  if res.step_started then p("since:     %s", res.step_started) end
  if #res.not_ready > 0 then
    p("not ready:")
    for _, n in ipairs(res.not_ready) do p("  %-40s %-11s %s", n.object, n.state, util.first_line(n.message or "")) end
  end
  return EXIT.ok
end

function handlers.history(opts)
  local name, perr = need_arg(opts, "NAME")
  if not name then return fail_with(opts, perr) end
  local res, err = verbs.history(name, eo_of(opts))
  if not res then return fail_with(opts, err) end
  if opts.output == "json" then emit_json(opts, json.array(res)); return EXIT.ok end
  local p = printer(opts)
  p("%-8s %-10s %-21s %-24s %-14s %s", "VERSION", "STATE", "WHEN", "WHO", "DIGEST", "SOURCE")
  for _, v in ipairs(res) do
    p("%-8s %-10s %-21s %-24s %-14s %s", tostring(v.version), tostring(v.state or ""), tostring(v.when or ""),
      tostring(v.who or ""), tostring(v.digest or ""):sub(1, 12),
      v.rollback_of and ("rollback to " .. v.rollback_of) or tostring(v.script or ""))
  end
  return EXIT.ok
end

function handlers.diff(opts)
  local path, perr = need_arg(opts, "SCRIPT")
  if not path then return fail_with(opts, perr) end
  local release, lerr = load_script(path, opts)
  if not release then return fail_with(opts, lerr) end
  local res, err = verbs.diff(release, eo_of(opts))
  if not res then return fail_with(opts, err) end
  if opts.output == "json" then
    for _, c in ipairs(res.changes) do if c.fields then c.fields = json.array(c.fields) end end
    res.changes, res.prune = json.array(res.changes), json.array(res.prune)
    emit_json(opts, res)
    return EXIT.ok
  end
  local p = printer(opts)
  for _, c in ipairs(res.changes) do
    if c.action == "update" then
      p("~ %s: %s", c.object, table.concat(c.fields, ", "))
    elseif c.action == "create" then
      p("+ %s%s", c.object, c.note and (" (" .. c.note .. ")") or "")
    elseif c.action == "error" then
      p("! %s: %s", c.object, c.error)
    else
      p("= %s", c.object)
    end
  end
  for _, o in ipairs(res.prune) do p("- %s (pruned: not in this version)", o) end
  return EXIT.ok
end

function handlers.check(opts)
  local path, perr = need_arg(opts, "SCRIPT")
  if not path then return fail_with(opts, perr) end
  local release, lerr = load_script(path, opts)
  if not release then return fail_with(opts, lerr) end
  local n = #(release.objects or {})
  if opts.output == "json" then
    emit_json(opts, { name = release.name, namespace = release.namespace, objects = n,
                      digest = release.script_digest, valid = true })
  else
    printer(opts)("%s: valid, %d object%s, namespace %s", release.name, n, n == 1 and "" or "s",
      tostring(release.namespace))
  end
  return EXIT.ok
end

cli.verbs = { "run", "resume", "status", "history", "cancel", "rollback", "diff", "check" }

function cli.main(verb, opts)
  local h = handlers[verb]
  if not h then
    return fail_with(opts, { kind = "invalid", message = "unknown release verb " .. tostring(verb) })
  end
  local ok, code = pcall(h, opts)
  if not ok then
    return fail_with(opts, { kind = "lua", message = "internal error: " .. tostring(code) })
  end
  return code
end

return cli
