-- core.yaml_decode reads plain documents from libyaml's events and everything else
-- (anchors, aliases, merge keys, errors) through libyaml's document loader. Both must
-- give the same tables, down to the key order cjson sees. A document with an anchor
-- sends a whole file down the loader's path, which lets these specs compare the two.
local core = require "atom.core"
local json = require "atom.json"

local FORCE_LOADER = "\n--- &atom_spec_anchor 1\n"

local function both(text)
  local fast, fast_lines = core.yaml_decode(text, "f.yaml")
  local slow, slow_lines = core.yaml_decode(text .. FORCE_LOADER, "f.yaml")
  assert(fast, fast_lines)
  assert(slow, slow_lines)
  assert.are.equal(1, slow[#slow])
  slow[#slow], slow_lines[#slow_lines] = nil, nil
  return fast, slow, fast_lines, slow_lines
end

-- Same values, same metatables, same pairs order at every level.
local function same_tables(a, b, where)
  where = where or "doc"
  assert.are.equal(type(a), type(b), where)
  if type(a) ~= "table" then
    if a ~= a then assert.is_true(b ~= b, where) return end
    assert.are.equal(a, b, where)
    assert.are.equal(math.type(a), math.type(b), where)
    return
  end
  assert.are.equal(getmetatable(a), getmetatable(b), where)
  local ka, kb = {}, {}
  for k in next, a do ka[#ka + 1] = k end
  for k in next, b do kb[#kb + 1] = k end
  assert.are.same(ka, kb, where .. " key order")
  for _, k in ipairs(ka) do same_tables(a[k], b[k], where .. "." .. tostring(k)) end
end

local function fixture_files()
  local files = {}
  local p = io.popen("find spec/fixtures/manifests -name '*.yaml' -o -name '*.yml' | sort")
  for line in p:lines() do files[#files + 1] = line end
  p:close()
  return files
end

describe("core.yaml_decode", function()
  it("reads the real-world fixture manifests the same on both paths", function()
    local files = fixture_files()
    assert.is_true(#files > 10)
    for _, file in ipairs(files) do
      local f = assert(io.open(file, "rb"))
      local text = f:read("a")
      f:close()
      local fast, slow, fl, sl = both(text)
      assert.are.same(sl, fl, file)
      same_tables(fast, slow, file)
      for i = 1, #fast do
        assert.are.equal(json.encode(slow[i]), json.encode(fast[i]), file .. " document " .. i)
      end
    end
  end)

  it("reads scalars, tags, empty lists and maps, repeated keys the same on both paths", function()
    local text = table.concat({
      "---",
      "a: 1", "b: -0x1F", "c: 0o17", "d: 1_000", "e: _5", "f: 1.5e3", "ff2: 1_0.5", "g: .inf", "h: -.INF", "i: .nan",
      "j: yes", "k: Off", "l: ~", "m: null", "n:", "o: '1'", "p: \"true\"", "q: !!str 12", "qq: !!str true", "qqq: ! 16", "r: !!int '7'",
      "s: !!null ''", "t: !custom 3", "u: []", "v: {}", "w: [[], {}, [1, [2, []]]]",
      "x: 0", "y: 012", "z: 1.", "aa: +.5", "bb: 1_0.5", "cc: 99999999999999999999", "dd: 0b101",
      "ee: |", "  block", "  text", "ff: >-", "  folded", "  text",
      "dup: 1", "dup: 2", "'quoted key': 1", "80: port", "true: bool key", "'null': quoted null key",
      "---", "# only a comment", "---", "- 1", "- two", "- {three: 3}",
      "--- plain scalar", "--- 42", "...",
    }, "\n") .. "\n"
    local fast, slow, fl, sl = both(text)
    assert.are.same(sl, fl)
    same_tables(fast, slow)
    assert.are.equal(4, #fast) -- the comment-only document is skipped
    assert.are.equal(2, fast[1].dup)
    assert.are.equal(core.array_mt, getmetatable(fast[1].u))
    assert.is_nil(getmetatable(fast[1].v))
    assert.are.equal(-31, fast[1].b)
    -- As kubectl reads them: a leading underscore is text, underscores after it are not.
    assert.are.equal("_5", fast[1].e)
    assert.are.equal(10.5, fast[1].ff2)
    assert.are.equal("port", fast[1]["80"])
    -- An explicit !!str (or the non-specific "!") keeps the text, on the loader's path
    -- too, where libyaml gives an untagged scalar the same str tag.
    assert.are.equal("12", fast[1].q)
    assert.are.equal("true", fast[1].qq)
    assert.are.equal("16", fast[1].qqq)
    assert.are.equal(7, fast[1].r)
  end)

  it("still expands anchors, aliases and merge keys", function()
    local docs = assert(core.yaml_decode(table.concat({
      "base: &b {x: 1, y: 2}",
      "copy: *b",
      "merged:", "  <<: *b", "  y: 3",
      "list: &l [1, 2]",
      "again: *l",
    }, "\n"), "m.yaml"))
    local d = docs[1]
    assert.are.same({ x = 1, y = 2 }, d.copy)
    assert.are_not.equal(d.base, d.copy)
    assert.are.same({ x = 1, y = 3 }, d.merged)
    assert.are.same({ 1, 2 }, d.again)
  end)

  it("names file:line:column in its errors, as before", function()
    local docs, err = core.yaml_decode("a: 1\nb: [1, 2\nc: 3\n", "bad.yaml")
    assert.is_nil(docs)
    assert.matches("^bad%.yaml:%d+:%d+: ", err)
    assert.has_error(function() core.yaml_decode("? [1, 2]\n: v\n", "k.yaml") end,
      "k.yaml:1:3: mapping keys must be scalars")
    -- kubectl refuses a null key too; on both paths (an anchor sends a file to the loader).
    for _, text in ipairs({ "a: 1\n~: v\n", "a: &x 1\nnull: v\n" }) do
      local ok, err = pcall(core.yaml_decode, text, "n.yaml")
      assert.is_false(ok)
      assert.matches("n%.yaml:2:1: a mapping key is null", err)
    end
    local _, alias_err = core.yaml_decode("a: *nope\n", "u.yaml")
    assert.matches("^u%.yaml:1:4: found undefined alias", alias_err)
  end)

  it("refuses documents nested deeper than 512 levels", function()
    local deep = string.rep("[", 600) .. string.rep("]", 600)
    assert.has_error(function() core.yaml_decode(deep, "deep.yaml") end)
    local ok, err = pcall(core.yaml_decode, deep, "deep.yaml")
    assert.is_false(ok)
    assert.matches("deep%.yaml:1:%d+: document nests too deeply", err)
    local fine = string.rep("[", 500) .. string.rep("]", 500)
    assert.is_table(core.yaml_decode(fine, "fine.yaml")[1])
  end)
end)
