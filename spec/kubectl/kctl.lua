-- Helpers shared by the kubectl end-to-end specs: manifests written to the
-- sim's temp dir, table parsing, and assertions that print kubectl's output
-- when an exit code is not the expected one.
local cjson = require "cjson"
local sim = require "helpers.sim"

local M = {}

M.quote = sim.quote

-- Whether text holds needle as plain text (no patterns).
function M.has(text, needle)
  return text:find(needle, 1, true) ~= nil
end

-- Starts one `atom sim` (with opts) before the tests of the enclosing describe
-- block and stops it after them. Returns a stand-in that forwards to the running
-- server, so specs can hold it as an upvalue from the start.
function M.serve(opts)
  local busted = require "busted"
  local server
  busted.setup(function() server = sim.start(opts) end)
  busted.teardown(function() if server then server.stop() end end)
  return setmetatable({}, { __index = function(_, k)
    return assert(server, "the sim is started in setup")[k]
  end })
end

function M.fixtures()
  local shared = os.getenv("ATOM_SHARED_DIR") or ((os.getenv("PWD") or ".") .. "/../shared")
  return shared .. "/fixtures/manifests"
end

-- Writes text to a file in the server's temp dir and returns the path.
function M.file(s, name, text)
  local path = s.dir .. "/" .. name
  sim.write_file(path, text)
  return path
end

-- Asserts kubectl's exit code; the message carries what kubectl printed.
function M.expect(r, code, what)
  assert(r.code == code, string.format("%s: exit %d, wanted %d\nstdout: %s\nstderr: %s",
    what or "kubectl", r.code, code, r.stdout, r.stderr))
  return r
end

-- Runs kubectl and asserts it exited 0.
function M.ok(s, args, opts)
  return M.expect(s:kubectl(args, opts), 0, "kubectl " .. args)
end

-- Splits kubectl's table output into { header = {cols}, rows = {{cells}} }.
-- Cells never contain spaces for the kinds these specs print.
function M.table(text)
  local out = { rows = {} }
  for line in text:gmatch("[^\n]+") do
    local cells = {}
    for c in line:gmatch("%S+") do cells[#cells + 1] = c end
    if not out.header then out.header = cells else out.rows[#out.rows + 1] = cells end
  end
  return out
end

function M.json(text)
  return cjson.decode(text)
end

function M.deployment(name, opts)
  opts = opts or {}
  return string.format([[
apiVersion: apps/v1
kind: Deployment
metadata:
  name: %s
  labels:
    app: %s
spec:
  replicas: %d
  progressDeadlineSeconds: %d
  selector:
    matchLabels:
      app: %s
  template:
    metadata:
      labels:
        app: %s
    spec:
      containers:
      - name: main
        image: %s
        ports:
        - containerPort: 80
]], name, name, opts.replicas or 2, opts.deadline or 600, opts.selector or name, opts.selector or name,
    opts.image or "nginx:1.27")
end

function M.configmap(name, data)
  local lines = { "apiVersion: v1", "kind: ConfigMap", "metadata:", "  name: " .. name, "data:" }
  local keys = {}
  for k in pairs(data) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do lines[#lines + 1] = string.format("  %s: %q", k, data[k]) end
  return table.concat(lines, "\n") .. "\n"
end

return M
