-- The C walks of atom.core against the Lua code they replace: core.json_empty_arrays
-- (atom.json's search for empty lists) and core.raw_copy (the script loader's copy of
-- a script's data). Each must give the same answer as its Lua twin, byte for byte.
local core = require "atom.core"
local json = require "atom.json"
local script = require "atom.release.script"

-- atom.json as a pure-Lua tool gets it (no C walk), with the same array_mt so both
-- modules mark and read the same tables.
local function lua_json()
  local path = package.searchpath("atom.json", package.path)
  local env = setmetatable({
    require = function(name)
      if name == "atom.core" then return { array_mt = core.array_mt } end
      return require(name)
    end,
  }, { __index = _G })
  return assert(loadfile(path, "t", env))()
end
local ljson = lua_json()
local A = json.array

local function nest(depth, leaf)
  local t = leaf
  for _ = 1, depth do t = { t } end
  return t
end

-- Values covering what the walk can meet: nested, shared and marked-but-full lists,
-- empty maps, mixed keys.
local function samples()
  local shared_empty = A()
  local shared_map = { ports = A(), name = "x" }
  local s = {}
  s[#s + 1] = { a = A(), b = {}, c = { d = A(), e = { f = A(), g = { 1, 2, A() } } } }
  s[#s + 1] = { A(), A(), { A() }, {} }
  s[#s + 1] = { x = shared_empty, y = shared_empty, z = { shared_empty } }
  s[#s + 1] = { one = shared_map, two = shared_map, list = { shared_map, shared_map } }
  s[#s + 1] = { full = A({ 1, 2, 3 }), inner = A({ A(), {}, A({ A() }) }) }
  s[#s + 1] = { kind = "Deployment", spec = { template = { spec = { containers = { {
    name = "app", args = A(), env = A(), ports = { { containerPort = 80 } } } } } } } }
  s[#s + 1] = { plain = { a = 1, b = "two", c = true, d = json.null, e = 1.5 } }
  s[#s + 1] = { [1] = A(), [2] = "x", [3] = { [1] = A() } }
  s[#s + 1] = { s = "\0atom\u{F8FF}[]", list = { "[]", A() } }
  s[#s + 1] = nest(900, { leaf = A() })
  -- deeper than the C walk goes (Lua walks it) and than cjson encodes: both raise
  s[#s + 1] = nest(1200, { leaf = A() })
  return s, #s
end

local function encode_with(mod, v)
  local ok, out = pcall(mod.encode, v)
  return ok, out
end

describe("core.json_empty_arrays", function()
  it("answers nil when there is no empty list, and changes nothing", function()
    local v = { a = { b = {} }, c = A({ 1 }) }
    assert.is_nil(core.json_empty_arrays(v, "S"))
    assert.is_nil(next(v.a.b))
    assert.are.equal(1, #v.c)
  end)

  it("lists the empty lists below the root and puts the sentinel in each", function()
    local e1, e2 = A(), A()
    local root = A()
    local v = { x = e1, y = { z = e2, w = {} }, root = root }
    local found = core.json_empty_arrays(v, "S")
    assert.are.equal(3, #found)
    assert.are.equal("S", e1[1])
    assert.are.equal("S", e2[1])
    assert.are.equal("S", root[1])
    assert.is_nil(v.y.w[1])
  end)

  it("answers false for a value too deep to walk, changing nothing", function()
    local leaf = A()
    assert.is_false(core.json_empty_arrays(nest(1500, { leaf }), "S"))
    assert.is_nil(leaf[1])
  end)

  it("answers false for a cycle instead of looping", function()
    local e = A()
    local v = { e = e }
    v.self = v
    assert.is_false(core.json_empty_arrays(v, "S"))
    assert.is_nil(e[1])
  end)
end)

describe("atom.json.encode with the C walk", function()
  it("gives byte for byte what the pure-Lua walk gives", function()
    local s, too_deep = samples()
    for i, v in ipairs(s) do
      local ok1, out1 = encode_with(json, v)
      local ok2, out2 = encode_with(ljson, v)
      assert.are.equal(ok2, ok1, "sample " .. i)
      assert.are.equal(out2, out1, "sample " .. i)
      assert.are.equal(i ~= too_deep, ok1, "sample " .. i .. ": " .. tostring(out1))
    end
  end)

  it("encodes nested empty lists as [] and restores them", function()
    local v = { a = A(), b = { c = A(), d = {} }, e = { A(), { f = A() } } }
    local out = json.encode(v)
    local back = json.decode(out)
    assert.is_true(json.is_array(back.a))
    assert.is_true(json.is_array(back.b.c))
    assert.is_false(json.is_array(back.b.d))
    assert.is_true(json.is_array(back.e[1]))
    assert.is_true(json.is_array(back.e[2].f))
    assert.is_nil(v.a[1])
    assert.is_nil(v.b.c[1])
    assert.is_nil(v.e[2].f[1])
    assert.is_nil(out:find("atom", 1, true))
  end)

  it("raises the same errors as the pure-Lua walk (cycles, unencodable values)", function()
    local with_empty = { e = A() }
    with_empty.self = with_empty
    local without = { n = 1 }
    without.self = without
    local bad_with_empty = { e = A(), f = function() end }
    local bad = { f = function() end }
    for i, v in ipairs({ with_empty, without, bad_with_empty, bad }) do
      local ok1, err1 = encode_with(json, v)
      local ok2, err2 = encode_with(ljson, v)
      assert.is_false(ok1, "case " .. i)
      assert.is_false(ok2, "case " .. i)
      assert.are.equal(err2, err1, "case " .. i)
    end
    assert.is_nil(with_empty.e[1])
    assert.is_nil(bad_with_empty.e[1])
  end)

  it("reads a __metatable field as getmetatable does", function()
    local disguised = setmetatable({}, { __metatable = core.array_mt })
    local masked = setmetatable({}, { __metatable = "not the array marker" })
    -- getmetatable reads __metatable raw: an __index on the metatable is not asked
    local marked = setmetatable({}, setmetatable({}, { __index = { __metatable = core.array_mt } }))
    local v = { a = disguised, b = masked, c = marked }
    assert.are.equal(ljson.encode(v), json.encode(v))
    assert.truthy(json.encode(v):find('"a":[]', 1, true))
    assert.truthy(json.encode(v):find('"b":{}', 1, true))
    assert.truthy(json.encode(v):find('"c":{}', 1, true))
  end)
end)

-- True when a and b have the same shape: same plain values, same metatables, and the
-- same sharing (one table of a always matches the same table of b).
local function isomorphic(a, b, map, back)
  map, back = map or {}, back or {}
  if type(a) ~= "table" or type(b) ~= "table" then return rawequal(a, b) end
  if map[a] ~= nil or back[b] ~= nil then return map[a] == b and back[b] == a end
  map[a], back[b] = b, a
  if getmetatable(a) ~= getmetatable(b) then return false end
  local n = 0
  for k, v in next, a do
    n = n + 1
    local kb = k
    if type(k) == "table" then
      kb = map[k]
      if kb == nil then
        for k2 in next, b do
          if type(k2) == "table" and back[k2] == nil and isomorphic(k, k2, map, back) then kb = k2 break end
        end
      end
      if kb == nil then return false end
    end
    if not isomorphic(v, rawget(b, kb), map, back) then return false end
  end
  for _ in next, b do n = n - 1 end
  return n == 0
end

describe("core.raw_copy", function()
  local function trap()
    return setmetatable({}, {
      __index = function() error("__index ran") end,
      __newindex = function() error("__newindex ran") end,
      __pairs = function() error("__pairs ran") end,
      __len = function() error("__len ran") end,
    })
  end

  local function samples_for_copy()
    local shared = { x = 1 }
    local key = { "a key" }
    local cyclic = { name = "c" }
    cyclic.self = cyclic
    cyclic.list = { cyclic, shared }
    local trapped = trap()
    rawset(trapped, "kind", "ConfigMap")
    rawset(trapped, "nested", setmetatable({ a = A() }, { __index = function() error("x") end }))
    return {
      { a = shared, b = shared, c = { shared } },
      { [key] = key, other = key },
      cyclic,
      trapped,
      { list = A(), full = A({ 1, { A() } }), map = {} },
      { 1, 2, nil, 4, n = "holes" },
      { f = print, s = "str", b = false, num = 1.25, null = json.null },
      nest(900, { leaf = A() }),
      nest(1500, { leaf = A() }),
    }
  end

  it("copies as the Lua raw_copy does: sharing, cycles, array_mt kept, other metatables dropped", function()
    for i, v in ipairs(samples_for_copy()) do
      local c = script._raw_copy(v)
      local l = script._lua_raw_copy(v)
      assert.is_true(isomorphic(l, c), "sample " .. i)
      assert.are_not.equal(v, c)
    end
  end)

  it("keeps shared subtables shared and cycles cyclic", function()
    local shared = { x = 1 }
    local v = { a = shared, b = shared }
    v.self = v
    local c = core.raw_copy(v)
    assert.are.equal(c.a, c.b)
    assert.are_not.equal(shared, c.a)
    assert.are.equal(c, c.self)
    local k = {}
    local kv = core.raw_copy({ [k] = k })
    local ck = next(kv)
    assert.are_not.equal(k, ck)
    assert.are.equal(ck, kv[ck])
  end)

  it("runs no metamethod and drops every metatable but array_mt", function()
    local t = trap()
    rawset(t, "a", setmetatable({}, core.array_mt))
    rawset(t, "b", setmetatable({}, { __metatable = core.array_mt }))
    local c = core.raw_copy(t)
    assert.is_nil(getmetatable(c))
    assert.are.equal(core.array_mt, getmetatable(c.a))
    -- getmetatable(v) == array_mt is what the Lua copy asks, __metatable included
    assert.are.equal(core.array_mt, getmetatable(c.b))
  end)

  it("leaves values nested too deeply to the Lua copy", function()
    local deep = nest(1500, { leaf = A() })
    assert.is_nil(core.raw_copy(deep))
    local c = script._raw_copy(deep)
    for _ = 1, 1500 do c = c[1] end
    assert.are.equal(core.array_mt, getmetatable(c.leaf))
  end)

  it("returns other values as they are", function()
    assert.are.equal("s", core.raw_copy("s"))
    assert.are.equal(3, core.raw_copy(3))
    assert.is_nil(core.raw_copy(nil))
    assert.is_nil(script._raw_copy(nil))
  end)
end)
