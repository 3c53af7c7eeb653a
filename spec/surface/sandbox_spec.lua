-- The sandbox and the budgets: refusals name the flag, runaway code is stopped.
local tree = require "surface.tree"
local script = require "atom.release.script"

local CM = "{ apiVersion = 'v1', kind = 'ConfigMap', metadata = { name = 'c' } }"

describe("release script sandbox", function()
  local trees = tree.scope()
  local load = trees.load
  teardown(trees.remove_all)

  local function refused(body, pattern, opts)
    local r, err = load({ ["release.lua"] = body .. "\nreturn { name = 'a', objects = { " .. CM .. " } }" }, opts)
    assert.is_nil(r)
    assert.equal("invalid", err.kind)
    assert.matches(pattern, err.message)
  end

  it("refuses os.execute, io.popen, file writes, loadlib, debug and other modules, naming the flag", function()
    refused("os.execute('touch /tmp/atom-pwned')",
      "release%.lua:1: os%.execute is not allowed in release scripts %(run with %-%-allow%-exec to allow it%)")
    refused("io.popen('id')", "io%.popen is not allowed .*%-%-allow%-exec")
    refused("io.open('x.txt', 'w')", "io%.open%(\"x%.txt\", \"w\"%): writing files is not allowed .*%-%-allow%-exec")
    refused("package.loadlib('/lib/libc.so.6', 'system')", "package%.loadlib is not allowed .*%-%-allow%-exec")
    refused("debug.getregistry()", "debug%.getregistry is not allowed .*%-%-allow%-exec")
    refused("require 'socket'", "require \"socket\" is not allowed.*%-%-allow%-exec")
    refused("os.exit(3)", "os%.exit is not allowed")
    refused("load(string.dump(function() end))", "attempt to call a nil value %(field 'dump'%)")
    refused("load('return 1', 'x', 'b')", "binary chunks are never loaded")
  end)

  it("keeps atom's metatables out of reach and refuses __gc", function()
    refused("getmetatable('').__index.rep = nil", "attempt to index a nil value")
    refused("setmetatable({}, { __gc = function() end })", "__gc metamethods are not allowed in release scripts")
    refused("setmetatable(debug, nil)", "cannot change a metatable the script did not set")
    local r = load({ ["release.lua"] = [[
      local mt = { __index = function(t, k) return k end }
      local t = setmetatable({}, mt)
      assert(getmetatable(t) == mt and t.x == "x")
      return { name = "a", objects = { ]] .. CM .. [[ } }]] })
    assert.is_table(r)
  end)

  it("reads the returned data raw, so the script's metamethods never run outside a budget", function()
    local r = load({ ["release.lua"] = [[
      local evil = { __index = function() while true do end end, __len = function() while true do end end,
        __pairs = function() while true do end end }
      local cm = setmetatable({ apiVersion = "v1", kind = "ConfigMap", metadata = { name = "c" } }, evil)
      return setmetatable({ name = "a", objects = setmetatable({ cm }, evil) }, evil)]] })
    assert.is_table(r)
    assert.equal("c", r.objects[1].object.metadata.name)
    assert.is_nil(getmetatable(r.objects[1].object))
  end)

  it("refuses reading outside the release folder unless --allow-read-outside", function()
    refused("io.open('/etc/hostname')", "io%.open%(\"/etc/hostname\"%) reads outside the release folder .*%-%-allow%-read%-outside")
    refused("dofile('../x.lua')", "dofile%(\"%.%./x%.lua\"%) reads outside the release folder")
    refused("require('atom').yaml('../*.yaml')", "reads outside the release folder .*%-%-allow%-read%-outside")
  end)

  it("gives string, table, math, utf8, coroutine, os.time/date/getenv and print", function()
    local logged = {}
    local r = load({ ["release.lua"] = [[
      local co = coroutine.wrap(function() coroutine.yield(utf8.char(72)) end)
      print("x", co(), math.max(1, 2), table.concat({ "a", "b" }), ("y"):rep(2), type(os.time()),
        os.date("!%Y", 0), os.getenv("HOME") ~= nil, select("#", 1, 2))
      return { name = "a", objects = { ]] .. CM .. [[ } }]] }, { log = function(l) logged[#logged + 1] = l end })
    assert.is_table(r)
    assert.same({ "x\tH\t2\tab\tyy\tnumber\t1970\ttrue\t2" }, logged)
  end)

  it("reads and requires files inside the folder, with the same sandbox", function()
    local r = load({
      ["release.lua"] = [[
        local lib = require "lib.names"
        local f = assert(io.open("data.txt"))
        local word = f:read("l")
        f:close()
        return { name = lib.name(word), objects = { ]] .. CM .. [[ } }]],
      ["lib/names.lua"] = [[
        local ok = pcall(os.execute, "true")
        return { name = function(w) return w .. (ok and "-escaped" or "-sandboxed") end }]],
      ["data.txt"] = "shop\n",
    })
    assert.equal("shop-sandboxed", r.name)
  end)

  it("lets scripts use atom's ready-made policies and readiness checks", function()
    local r = load({ ["release.lua"] = [[
      local retry = require "atom.policy.retry"
      local deployment = require "atom.readiness.deployment"
      return { name = "a", objects = { ]] .. CM .. [[ }, policy = retry{ times = 1 },
        readiness = { ["Deployment.apps"] = function(obj) return deployment(obj) end } }]] })
    assert.equal("retry", r:decide({ state = "Deadline", attempt = 1 }))
    assert.equal("rollback", r:decide({ state = "Deadline", attempt = 2 }))
  end)

  it("allows exec and outside reads when the flags say so", function()
    local r = load({ ["release.lua"] = [[
      local ok = os.execute("true")
      local f = assert(io.open("/etc/hostname"))
      f:close()
      return { name = ok and "yes" or "no", objects = { ]] .. CM .. [[ } }]] },
      { allow_exec = true, allow_read_outside = true })
    assert.equal("yes", r.name)
  end)

  it("gives atom.env and atom.array", function()
    local r = load({ ["release.lua"] = [[
      local atom = require "atom"
      local cm = { apiVersion = "v1", kind = "ConfigMap", metadata = { name = "c" },
        data = { home = atom.env("HOME", "none"), missing = atom.env("ATOM_SURELY_UNSET_VAR", "dflt"),
                 list = atom.json.encode({ items = atom.array({}) }) } }
      return { name = "a", objects = { cm } }]] })
    assert.equal(os.getenv("HOME"), r.objects[1].object.data.home)
    assert.equal("dflt", r.objects[1].object.data.missing)
    assert.equal('{"items":[]}', r.objects[1].object.data.list)
  end)
end)

describe("budgets", function()
  local trees = tree.scope()
  local function load(text, opts)
    local r, err = trees.load({ ["release.lua"] = text }, opts)
    return r, err
  end
  teardown(trees.remove_all)

  it("stops a script that loops forever, even when it pcalls", function()
    local r, err = load("while true do pcall(function() while true do end end) end",
      { limits = { instructions = 1000000 } })
    assert.is_nil(r)
    assert.matches("release%.lua:1: the script ran out of its instruction budget %(limits%.instructions = 1000000%)\nstack traceback:\n", err.message)
  end)

  it("stops a script that allocates without bound at the heap ceiling", function()
    local r, err = load("local t = {}\nwhile true do t[#t + 1] = string.rep('x', 65536) .. #t end",
      { limits = { heap = 16 * 1024 * 1024, instructions = 1e9 } })
    assert.is_nil(r)
    assert.matches("release%.lua:2: the script reached the Lua heap ceiling %(limits%.heap = 16777216 bytes%)\nstack traceback:\n", err.message)
    collectgarbage()
  end)

  it("stops a readiness check that loops forever and reports it as failed, naming the check", function()
    local r = assert(load([[return {
      name = "a",
      objects = { ]] .. CM .. [[ },
      limits = { instructions = 1000000 },
      readiness = {
        ["Widget.example.com"] = function(obj) while true do end end,
        ConfigMap = function(obj) return obj.data.x end,
      } }]]))
    local state, msg = r:check({ apiVersion = "example.com/v1", kind = "Widget", metadata = { name = "w" } })
    assert.equal("failed", state)
    assert.matches("readiness check Widget%.example%.com %(.*release%.lua:6%) failed: ran out of its instruction budget", msg)
    state, msg = r:check({ apiVersion = "v1", kind = "ConfigMap", metadata = { name = "c" } })
    assert.equal("failed", state)
    assert.matches("readiness check ConfigMap %(.*release%.lua:7%) failed: .*release%.lua:7: attempt to index", msg)
  end)

  it("gives a check its own copy of the live object and only plain answers back", function()
    local r = assert(load([[return { name = "a", objects = { ]] .. CM .. [[ },
      readiness = {
        ConfigMap = function(obj) obj.metadata = nil return "ready", { why = "table" } end,
        Secret = function(obj) return { "ready" } end,
      } }]]))
    local live = { apiVersion = "v1", kind = "ConfigMap", metadata = { name = "c" } }
    local state, msg = r:check(live)
    assert.equal("ready", state)
    assert.equal("(a table)", msg)
    assert.equal("c", live.metadata.name)
    state, msg = r:check({ apiVersion = "v1", kind = "Secret", metadata = { name = "s" } })
    assert.equal("failed", state)
    assert.matches("readiness check Secret %(.*%) returned a table, not a state", msg)
  end)

  it("gives the built-in answer where no override applies", function()
    local r = assert(load("return { name = 'a', objects = { " .. CM .. " } }"))
    assert.equal("progressing", (r:check({ apiVersion = "v1", kind = "Pod", metadata = { name = "p" },
      status = { phase = "Pending" } })))
  end)

  it("falls back to rollback when a policy errors or loops, and passes its answer otherwise", function()
    local r = assert(load([[return { name = "a", objects = { ]] .. CM .. [[ },
      limits = { instructions = 1000000 },
      policy = function(f)
        if f.attempt == 1 then return "retry" end
        if f.attempt == 2 then while true do end end
        return "maybe"
      end }]]))
    assert.equal("retry", r:decide({ state = "Deadline", attempt = 1 }))
    assert.equal("rollback", r:decide({ state = "Cancelled", attempt = 1 }))
    local answer, why = r:decide({ state = "Error", attempt = 2 })
    assert.equal("rollback", answer)
    assert.matches("instruction budget", why)
    answer, why = r:decide({ state = "Error", attempt = 3 })
    assert.equal("rollback", answer)
    assert.matches("policy returned \"maybe\"", why)
    local f = assert(load("return { name = 'a', objects = { " .. CM .. " }, policy = 'fail' }"))
    assert.equal("fail", f:decide({ state = "Deadline", attempt = 1 }))
  end)
end)

describe("atom.new wrapped by an embedder", function()
  it("still loads scripts, and scripts see what the wrapper adds", function()
    local atom = require "atom"
    local base = atom.new
    atom.new = function(...)
      local instance = base(...) -- one result only, as atom.api's wrapper keeps
      instance.app = { greeting = "hi" }
      return instance
    end
    local dir = tree.make({ ["release.lua"] = [[
      local atom = require "atom"
      return { name = atom.app.greeting, objects = { require("atom").yaml("m.yaml") } }]],
      ["m.yaml"] = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n" })
    local ok, r, err = pcall(script.load, dir .. "/release.lua")
    atom.new = base
    tree.remove(dir)
    assert.is_true(ok, tostring(r))
    assert.is_nil(err)
    assert.equal("hi", r.name)
    assert.matches("m%.yaml:1$", r.objects[1].source)
  end)
end)
