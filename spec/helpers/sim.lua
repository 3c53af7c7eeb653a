-- Shared fixture for end-to-end specs: runs a real `atom sim` in the
-- background and runs commands (kubectl, curl, atom) against it.
--
--   local sim = require "helpers.sim"
--   local s = sim.start({ tls = true, ready_after = 0 })
--   local r = s:kubectl("get ns")        -- { code =, stdout =, stderr = }
--   local code = s.stop()                -- SIGTERM; the server's exit code
--
-- start(opts): tls, token, time_scale, ready_after, scenario (a file path),
-- nodes, handler (a Lua module name under spec/, for testing the server
-- without atom.sim), args (extra flags), env (extra VAR=value strings).
-- Returns { kubeconfig, url, pid, dir, home, stdout_file, stderr_file, stop,
-- run, kubectl, curl, stderr }. Each server gets its own temporary dir, which
-- is also kubectl's HOME so its discovery cache never leaks between runs.
local M = {}

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.quote = shell_quote

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local data = f:read("a")
  f:close()
  return data
end
M.read_file = read_file

local function write_file(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end
M.write_file = write_file

local function sleep(seconds)
  local ok, socket = pcall(require, "socket")
  if ok then socket.sleep(seconds) else os.execute("sleep " .. seconds) end
end
M.sleep = sleep

local function source_dir()
  return os.getenv("ATOM_SOURCE_DIR") or os.getenv("PWD") or "."
end

function M.bin()
  local bin = os.getenv("ATOM_BIN")
  if bin and bin ~= "" then return bin end
  return source_dir() .. "/build/atom"
end

-- Every scratch dir a spec makes goes when the busted process ends (it exits
-- with os.exit(code, true), which closes the state and runs this finalizer),
-- so no spec has to remember to clean up. M.keep(dir) spares one.
local scratch = setmetatable({}, { __gc = function(dirs)
  for dir in pairs(dirs) do os.execute("rm -rf '" .. dir .. "'") end
end })

function M.tmpdir()
  local p = assert(io.popen("mktemp -d /tmp/atom-spec.XXXXXX"))
  local dir = p:read("l")
  p:close()
  assert(dir and dir ~= "", "mktemp -d failed")
  scratch[dir] = true
  return dir
end

function M.keep(dir) scratch[dir] = nil end

local function alive(pid)
  return os.execute("kill -0 " .. pid .. " 2>/dev/null") == true
end

-- Runs a shell command line; opts.env (list of VAR=value), opts.timeout
-- (seconds, SIGINT then SIGKILL), opts.stdin (string), opts.dir (cwd).
-- Tools run without LD_PRELOAD, so an ASan run's preload never reaches curl.
function M.run(cmd, opts)
  opts = opts or {}
  local dir = M.tmpdir()
  local out, err, inp = dir .. "/stdout", dir .. "/stderr", dir .. "/stdin"
  write_file(inp, opts.stdin or "")
  local env = { "env -u LD_PRELOAD" }
  for _, kv in ipairs(opts.env or {}) do env[#env + 1] = shell_quote(kv) end
  local prefix = table.concat(env, " ")
  if opts.timeout then
    prefix = prefix .. " timeout -s INT -k 2 " .. tostring(opts.timeout)
  end
  local line = string.format("%s%s sh -c %s < %s > %s 2> %s",
    opts.dir and ("cd " .. shell_quote(opts.dir) .. " && ") or "",
    prefix, shell_quote(cmd), shell_quote(inp), shell_quote(out), shell_quote(err))
  local _, how, code = os.execute(line)
  local r = { stdout = read_file(out) or "", stderr = read_file(err) or "" }
  r.code = how == "exit" and code or 128 + (code or 0)
  os.execute("rm -rf " .. shell_quote(dir))
  return r
end

function M.start(opts)
  opts = opts or {}
  local dir = M.tmpdir()
  if opts.keep then M.keep(dir) end
  local kubeconfig = dir .. "/kubeconfig"
  local args = { shell_quote(M.bin()), "sim", "--port", "0", "--kubeconfig", shell_quote(kubeconfig) }
  if opts.tls then args[#args + 1] = "--tls" end
  if opts.token then args[#args + 1] = "--token=" .. shell_quote(opts.token) end
  if opts.time_scale then args[#args + 1] = "--time-scale=" .. tostring(opts.time_scale) end
  if opts.ready_after then args[#args + 1] = "--ready-after=" .. tostring(opts.ready_after) end
  if opts.nodes then args[#args + 1] = "--nodes=" .. tostring(opts.nodes) end
  if opts.scenario then args[#args + 1] = "--scenario=" .. shell_quote(opts.scenario) end
  if opts.handler then args[#args + 1] = "--handler-module=" .. shell_quote(opts.handler) end
  for _, a in ipairs(opts.args or {}) do args[#args + 1] = shell_quote(a) end

  local env = {}
  if opts.handler then
    local lp = os.getenv("LUA_PATH")
    env[#env + 1] = "LUA_PATH=" .. source_dir() .. "/spec/?.lua;" .. (lp or ";")
  end
  for _, kv in ipairs(opts.env or {}) do env[#env + 1] = kv end
  local envs = {}
  for _, kv in ipairs(env) do envs[#envs + 1] = shell_quote(kv) end

  local stdout_file, stderr_file = dir .. "/sim.stdout", dir .. "/sim.stderr"
  local pid_file, rc_file = dir .. "/sim.pid", dir .. "/sim.rc"
  -- The wrapper waits for the server so its exit code can be read back.
  local script = string.format("env %s %s > %s 2> %s & pid=$!; echo $pid > %s; wait $pid; echo $? > %s",
    table.concat(envs, " "), table.concat(args, " "), shell_quote(stdout_file),
    shell_quote(stderr_file), shell_quote(pid_file), shell_quote(rc_file))
  os.execute("sh -c " .. shell_quote(script) .. " >/dev/null 2>&1 &")

  local s = { dir = dir, home = dir, kubeconfig = kubeconfig, stdout_file = stdout_file,
              stderr_file = stderr_file }
  -- The shell creates a file before it writes into it: an empty rc is no exit code yet, and
  -- a kubeconfig without its server line is not written yet.
  local function exit_code() return tonumber(read_file(rc_file) or "") end
  local deadline = os.time() + (opts.start_timeout or 20)
  while true do
    local pid = tonumber(read_file(pid_file) or "")
    if pid and not s.pid then s.pid = pid end
    if (read_file(kubeconfig) or ""):match("server: %S+") then break end
    if exit_code() or os.time() > deadline then
      local msg = "atom sim did not start: " .. (read_file(stderr_file) or "")
      if s.pid and alive(s.pid) then os.execute("kill -KILL " .. s.pid) end
      os.execute("rm -rf " .. shell_quote(dir))
      error(msg, 2)
    end
    sleep(0.02)
  end
  s.url = read_file(kubeconfig):match("server: (%S+)")
  s.port = tonumber(s.url:match(":(%d+)$"))

  function s.stderr() return read_file(stderr_file) or "" end
  function s.stdout() return read_file(stdout_file) or "" end

  -- SIGTERM (or sig) and wait; returns the server's exit code. Idempotent.
  function s.stop(sig)
    if s.exit_code == nil then
      if s.pid and alive(s.pid) then os.execute("kill -" .. (sig or "TERM") .. " " .. s.pid) end
      local stop_deadline = os.time() + 20
      while not exit_code() and os.time() <= stop_deadline do sleep(0.02) end
      s.exit_code = exit_code()
      if s.exit_code == nil and s.pid then os.execute("kill -KILL " .. s.pid .. " 2>/dev/null") end
      s.final_stderr = read_file(stderr_file) or ""
      if not opts.keep then os.execute("rm -rf " .. shell_quote(dir)) end
    end
    return s.exit_code
  end

  -- Runs cmd with KUBECONFIG and HOME pointing at this server.
  function s:run(cmd, ropts)
    ropts = ropts or {}
    local renv = { "KUBECONFIG=" .. (ropts.kubeconfig or self.kubeconfig), "HOME=" .. self.home }
    for _, kv in ipairs(ropts.env or {}) do renv[#renv + 1] = kv end
    return M.run(cmd, { env = renv, timeout = ropts.timeout or 60, stdin = ropts.stdin })
  end

  function s:kubectl(argline, ropts)
    return self:run("kubectl " .. argline, ropts)
  end

  -- curl with the TLS material of this server (client cert unless
  -- ropts.anonymous); argline is appended as is.
  function s:curl(argline, ropts)
    ropts = ropts or {}
    local tls = ""
    if self.url:match("^https") then
      tls = "--cacert " .. shell_quote(self.kubeconfig .. ".ca.crt")
      if not ropts.anonymous then
        tls = tls .. " --cert " .. shell_quote(self.kubeconfig .. ".client.crt") ..
          " --key " .. shell_quote(self.kubeconfig .. ".client.key")
      end
    end
    return self:run("curl -sS " .. tls .. " " .. argline, ropts)
  end

  return s
end

-- True when the real API machinery (lua/atom/sim/init.lua) is present.
function M.have_api()
  return read_file(source_dir() .. "/lua/atom/sim/init.lua") ~= nil
end

return M
