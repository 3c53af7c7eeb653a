-- atom.json — the one JSON codec of atom's Lua (lua-cjson underneath).
--
-- Debian's lua-cjson 2.1.0 cannot tell `[]` from `{}`: it decodes both to an
-- empty table and encodes every empty table as `{}`, which an API server
-- rejects for list fields. This module keeps that distinction through
-- core.array_mt: empty tables carrying it encode as `[]`, and `[]` in decoded
-- text comes back as an empty table carrying it. Text without `[]` and values
-- without marked empty tables take the plain single cjson call.
--
--   json.encode(v) -> string          (raises on unencodable values, as cjson)
--   json.decode(s) -> value           (raises on invalid JSON, as cjson)
--   json.try_decode(s) -> value | nil, err
--   json.array(t) -> t marked as a list (so `{}` encodes as `[]`)
--   json.is_array(t) -> bool          (carries array_mt)
--   json.null                         (cjson.null)
local cjson = require "cjson"

local array_mt, c_empty_arrays
do
  local ok, core = pcall(require, "atom.core")
  if ok and core.array_mt then
    array_mt = core.array_mt
    -- The walk for empty lists, in C: in Lua it cost as much as cjson's encode.
    c_empty_arrays = core.json_empty_arrays
  else
    -- Without the C module (a pure-Lua tool), still keep the distinction.
    array_mt = { __name = "array" }
  end
end

local json = { null = cjson.null, array_mt = array_mt }

local cj = cjson.new()
cj.encode_sparse_array(true)   -- a sparse list is a caller bug; keep it visible
cj.decode_max_depth(1000)
cj.encode_max_depth(1000)

-- A string no real manifest contains (a NUL and a private-use code point):
-- stands in for an empty list while cjson encodes or decodes.
local SENTINEL = "\0atom\u{F8FF}[]"
local SENTINEL_JSON = cj.encode(SENTINEL)
local SENTINEL_LIST_JSON = "[" .. SENTINEL_JSON .. "]"
local SENTINEL_LIST_PATTERN = SENTINEL_LIST_JSON:gsub("%p", "%%%0")

local getmetatable, next, type, pairs = getmetatable, next, type, pairs

function json.array(t)
  return setmetatable(t or {}, array_mt)
end

function json.is_array(t)
  return type(t) == "table" and getmetatable(t) == array_mt
end

-- Collects the empty marked tables reachable from v (depth-first).
local function collect_empty_arrays(v, found, seen)
  for _, x in pairs(v) do
    if type(x) == "table" and not seen[x] then
      seen[x] = true
      if next(x) == nil then
        if getmetatable(x) == array_mt then found[#found + 1] = x end
      else
        collect_empty_arrays(x, found, seen)
      end
    end
  end
  return found
end

function json.encode(v)
  if type(v) ~= "table" then return cj.encode(v) end
  local empties
  if next(v) == nil then
    if getmetatable(v) == array_mt then return "[]" end
    return "{}"
  end
  -- The C walk sets the sentinels itself; it answers nil when there is no empty list
  -- and false for a value it leaves to the Lua walk (cyclic, absurdly deep or large).
  if c_empty_arrays then empties = c_empty_arrays(v, SENTINEL) else empties = false end
  if empties == false then
    empties = collect_empty_arrays(v, {}, {})
    if #empties == 0 then
      empties = nil
    else
      for i = 1, #empties do empties[i][1] = SENTINEL end
    end
  end
  if empties == nil then return cj.encode(v) end
  local ok, out = pcall(cj.encode, v)
  for i = 1, #empties do empties[i][1] = nil end
  if not ok then error(out, 2) end
  return (out:gsub(SENTINEL_LIST_PATTERN, "[]"))
end

-- Rewrites every `[]` outside string literals to a one-sentinel list.
local function mark_empty_lists(s)
  local parts, n, pos, len = {}, 0, 1, #s
  local i = 1
  while i <= len do
    local c = s:find('["%[]', i)
    if not c then break end
    if s:byte(c) == 34 then -- '"': skip the string literal, honouring escapes
      local j = c + 1
      while true do
        local q = s:find('["\\]', j)
        if not q then return s end -- unterminated: let cjson report it
        if s:byte(q) == 92 then j = q + 2 else i = q + 1; break end
      end
    else
      local close = s:match("^%[%s*()%]", c)
      if close then
        n = n + 1; parts[n] = s:sub(pos, c - 1)
        n = n + 1; parts[n] = SENTINEL_LIST_JSON
        pos = close + 1
        i = close + 1
      else
        i = c + 1
      end
    end
  end
  n = n + 1; parts[n] = s:sub(pos)
  return table.concat(parts)
end

local function restore_empty_lists(v)
  for k, x in pairs(v) do
    if type(x) == "table" then
      if x[1] == SENTINEL and x[2] == nil then
        x[1] = nil
        v[k] = setmetatable(x, array_mt)
      else
        restore_empty_lists(x)
      end
    end
  end
end

-- Whether s may hold an empty list: "[" then "]" or white space (what %[%s*%] would find).
-- Plain searches: the pattern walked every character, 18 us for a 3 KB Deployment against
-- 0.5 us, almost as long as decoding it.
local function may_have_empty_list(s)
  return s:find("[]", 1, true) or s:find("[ ", 1, true) or s:find("[\n", 1, true)
    or s:find("[\r", 1, true) or s:find("[\t", 1, true) or s:find("[\v", 1, true)
    or s:find("[\f", 1, true)
end

function json.decode(s)
  if not may_have_empty_list(s) then return cj.decode(s) end
  local v = cj.decode(mark_empty_lists(s))
  if type(v) == "table" then
    if v[1] == SENTINEL and v[2] == nil then
      v[1] = nil
      return setmetatable(v, array_mt)
    end
    restore_empty_lists(v)
  end
  return v
end

function json.try_decode(s)
  if type(s) ~= "string" then return nil, "not a string" end
  local ok, v = pcall(json.decode, s)
  if ok then return v end
  return nil, tostring(v)
end

return json
