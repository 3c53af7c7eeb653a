-- Small shared helpers for the simulated API server: deep copy, equality, UIDs, and the JSON
-- boundary. Stored objects are plain Lua tables; the one wrinkle is that lua-cjson (upstream
-- 2.1.0) cannot tell `[]` from `{}`, so empty arrays are tables carrying `M.array_mt`, and
-- `M.decode`/`M.encode` translate them at the boundary. Everything returned here is owned by
-- the caller.
local cjson = require "cjson"

local M = {}

M.null = cjson.null
M.array_mt = { __name = "atom.sim.array" }

-- A decoded `[]` is replaced by a one-element array holding this number before decoding, and
-- turned back into an empty array afterwards; strings that contained `[]` are restored.
local EMPTY_NUM_TEXT = "-1.23456789e-300"
local EMPTY_NUM = tonumber(EMPTY_NUM_TEXT)
local EMPTY_IN_STRING = "[" .. EMPTY_NUM_TEXT .. "]"
-- Encoding marks empty arrays with this string and rewrites its JSON form to `[]`.
local MARK = "\1atom-empty-array\1"
local MARK_JSON = '"\\u0001atom%-empty%-array\\u0001"'

function M.array(t)
  return setmetatable(t or {}, M.array_mt)
end

function M.is_array(t)
  if type(t) ~= "table" then return false end
  if getmetatable(t) == M.array_mt then return true end
  if next(t) == nil then return false end
  return t[1] ~= nil
end

function M.copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do
    if type(x) == "table" then out[k] = M.copy(x) else out[k] = x end
  end
  local mt = getmetatable(v)
  if mt == M.array_mt then setmetatable(out, mt) end
  return out
end

-- Fields that are lists in every Kubernetes type that has them. An empty table under one of
-- these names that is not marked as an array (a Lua `{}` written by code, or a YAML `[]` that
-- lost its shape) would be sent as `{}` and break typed clients; the API leaves empty lists out
-- (omitempty), so such values are dropped.
local LIST_KEYS = {}
for k in ([[volumes containers initContainers ephemeralContainers conditions finalizers
  ownerReferences ports env envFrom volumeMounts volumeDevices args command imagePullSecrets
  tolerations containerStatuses initContainerStatuses ephemeralContainerStatuses podIPs hostIPs
  active subsets addresses notReadyAddresses endpoints items rules subjects secrets
  volumeClaimTemplates readinessGates hostAliases topologySpreadConstraints clusterIPs ipFamilies
  externalIPs tls paths accessModes storedVersions webhooks currentMetrics
  nodeSelectorTerms matchExpressions taints podCIDRs managedFields]]):gmatch("%S+") do
  LIST_KEYS[k] = true
end
M.LIST_KEYS = LIST_KEYS

-- Maps of stored objects that hold no null and no empty array at any depth carry this
-- metatable: the store marks them as it cleans a new version (store_clean, copy_clean), and an
-- encode marks those it walked. Stored objects are never mutated and a write shares the
-- subtrees it did not change (a status write keeps spec, labels and managedFields), so the next
-- version's clean-up and encode skip them: walking whole objects again and again (the null strip
-- and the empty-array marker walk before cjson, which cannot write []) cost several times
-- cjson's own encoding. copy and revise do not pass it on to the tables they create, so a table
-- someone may still change is never marked.
local clean_mt = { __name = "atom.sim.clean" }
M.clean_mt = clean_mt

-- Deep copy that also drops JSON nulls from maps (one pass instead of copy + strip_nulls).
local null_value = cjson.null
-- Its copies are marked clean_mt where clean (see there); the second result says whether v is.
local function copy_clean(v)
  local out = {}
  local clean = true
  for k, x in pairs(v) do
    if type(x) == "table" then
      if next(x) == nil then
        local arr = getmetatable(x) == M.array_mt
        if arr then
          out[k] = setmetatable({}, M.array_mt)
          clean = false
        elseif not LIST_KEYS[k] then
          out[k] = {}
        end
      else
        local c, cl = copy_clean(x)
        out[k] = c
        if not cl then clean = false end
      end
    elseif x ~= null_value then out[k] = x end
  end
  if getmetatable(v) == M.array_mt then setmetatable(out, M.array_mt)
  elseif clean and next(out) ~= nil then setmetatable(out, clean_mt) end
  return out, clean
end
function M.copy_clean(v)
  if type(v) ~= "table" then return v end
  return (copy_clean(v))
end

function M.equal(a, b)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  for k, x in pairs(a) do
    if not M.equal(x, b[k]) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

-- Like equal(a, b) for two tables, but without looking at their field `skip`.
function M.equal_except(a, b, skip)
  for k, x in pairs(a) do
    if k ~= skip and not M.equal(x, b[k]) then return false end
  end
  for k in pairs(b) do
    if k ~= skip and a[k] == nil then return false end
  end
  return true
end

-- Fix up a freshly decoded value: restore empty arrays and strings that held `[]`.
local function restore(v, had_marks)
  if type(v) == "string" then
    if had_marks and v:find(EMPTY_IN_STRING, 1, true) then
      return (v:gsub("%[" .. EMPTY_NUM_TEXT:gsub("[%-%.]", "%%%0") .. "%]", "[]"))
    end
    return v
  end
  if type(v) ~= "table" then return v end
  if v[1] ~= nil then
    if v[1] == EMPTY_NUM and v[2] == nil then
      return M.array()
    end
    setmetatable(v, M.array_mt)
  end
  for k, x in pairs(v) do
    if type(x) == "table" or (had_marks and type(x) == "string") then
      v[k] = restore(x, had_marks)
    end
  end
  return v
end

-- Decode JSON; returns value or nil, message. Never raises.
function M.decode(s)
  if type(s) ~= "string" then return nil, "body is not a string" end
  local had_marks = false
  if s:find("%[%s*%]") then
    s = s:gsub("%[%s*%]", EMPTY_IN_STRING)
    had_marks = true
  end
  local ok, v = pcall(cjson.decode, s)
  if not ok then return nil, tostring(v) end
  return restore(v, had_marks)
end

local function mark_empty(v, marks)
  for k, x in pairs(v) do
    if type(x) == "table" then
      if next(x) == nil then
        if getmetatable(x) == M.array_mt then
          marks[#marks + 1] = v
          marks[#marks + 1] = k
          marks[#marks + 1] = x
          v[k] = MARK
        end
      else
        mark_empty(x, marks)
      end
    end
  end
end

-- Encode to JSON. Temporarily swaps empty arrays for a marker (restored before returning) so
-- that they come out as `[]`.
function M.encode(v)
  if type(v) == "table" and next(v) == nil then
    return getmetatable(v) == M.array_mt and "[]" or "{}"
  end
  local marks = {}
  if type(v) == "table" then mark_empty(v, marks) end
  local ok, s = pcall(cjson.encode, v)
  for i = 1, #marks, 3 do marks[i][marks[i + 1]] = marks[i + 2] end
  if not ok then error(s, 2) end
  if #marks > 0 then s = s:gsub(MARK_JSON, "[]") end
  return s
end


-- Like mark_empty, skipping clean maps and marking the maps it finds clean; true if v is clean.
local function mark_empty_stored(v, marks)
  local clean = true
  for k, x in pairs(v) do
    if type(x) == "table" then
      local mt = getmetatable(x)
      if mt ~= clean_mt then
        if next(x) == nil then
          if mt == M.array_mt then
            marks[#marks + 1] = v
            marks[#marks + 1] = k
            marks[#marks + 1] = x
            v[k] = MARK
            clean = false
          end
        elseif mark_empty_stored(x, marks) then
          if mt == nil then setmetatable(x, clean_mt) end
        else
          clean = false
        end
      end
    end
  end
  return clean
end

-- M.encode for a stored object (see clean_mt).
function M.encode_stored(v)
  if next(v) == nil then return "{}" end
  local marks = {}
  mark_empty_stored(v, marks)
  local ok, s = pcall(cjson.encode, v)
  for i = 1, #marks, 3 do marks[i][marks[i + 1]] = marks[i + 2] end
  if not ok then error(s, 2) end
  if #marks > 0 then s = s:gsub(MARK_JSON, "[]") end
  return s
end

-- Drop JSON nulls from maps (a stored object never holds null). Maps marked clean_mt belong to
-- stored objects, so they are skipped: a new version that shares them needs no second look.
function M.strip_nulls(v)
  if type(v) ~= "table" then return v end
  for k, x in pairs(v) do
    if x == cjson.null then v[k] = nil
    elseif type(x) == "table" then
      local mt = getmetatable(x)
      if mt ~= clean_mt then
        if LIST_KEYS[k] and next(x) == nil and mt ~= M.array_mt then v[k] = nil
        else M.strip_nulls(x) end
      end
    end
  end
  return v
end

-- strip_nulls for a table the store is about to keep (an owned write): also marks its clean
-- maps clean_mt. Returns whether v itself is clean.
local function store_clean(v)
  local clean = true
  for k, x in pairs(v) do
    if x == null_value then v[k] = nil
    elseif type(x) == "table" then
      local mt = getmetatable(x)
      if mt ~= clean_mt then
        if next(x) == nil then
          if mt == M.array_mt then clean = false
          elseif LIST_KEYS[k] then v[k] = nil end
        elseif store_clean(x) then
          if mt == nil then setmetatable(x, clean_mt) end
        else
          clean = false
        end
      end
    end
  end
  return clean
end
function M.store_clean(v)
  if type(v) == "table" then store_clean(v) end
  return v
end

-- A new version of a stored object for a write that changes only metadata and the top-level
-- fields named in ...: obj's top level, its metadata and those fields are copied one level
-- deep, everything else is shared with obj. Stored objects are never mutated, so this is safe
-- as long as the caller changes only what was copied; it spares a deep copy of the whole
-- object, and the store's comparisons find the shared parts equal at once.
function M.revise(obj, ...)
  local c = {}
  for k, v in pairs(obj) do c[k] = v end
  local meta = {}
  for k, v in pairs(obj.metadata) do meta[k] = v end
  c.metadata = meta
  for i = 1, select("#", ...) do
    local f = select(i, ...)
    local t = obj[f]
    if type(t) == "table" then
      local n = {}
      for k, v in pairs(t) do n[k] = v end
      if getmetatable(t) == M.array_mt then setmetatable(n, M.array_mt) end
      c[f] = n
    end
  end
  return c
end

-- A random (version 4) UUID, from two 64-bit draws instead of 16 byte draws and a table.
local random = math.random
function M.uid()
  local a, b = random(0), random(0)
  return string.format("%08x-%04x-%04x-%04x-%04x%08x",
    (a >> 32) & 0xffffffff, (a >> 16) & 0xffff, (a & 0x0fff) | 0x4000,
    ((b >> 48) & 0x3fff) | 0x8000, (b >> 32) & 0xffff, b & 0xffffffff)
end

-- Integer-looking numbers as "3", not "3.0".
function M.num(v)
  if type(v) == "number" then
    local i = math.tointeger(v)
    if i then return tostring(i) end
  end
  return tostring(v)
end

function M.sorted_keys(t)
  local ks = {}
  for k in pairs(t or {}) do ks[#ks + 1] = k end
  table.sort(ks, function(a, b) return tostring(a) < tostring(b) end)
  return ks
end

-- FNV-1a, for stable content hashes in OpenAPI URLs (not security relevant).
function M.hash(s)
  local h = 2166136261
  for i = 1, #s do
    h = ((h ~ s:byte(i)) * 16777619) & 0xffffffff
  end
  return string.format("%08X", h)
end

function M.get_path(obj, ...)
  local v = obj
  for i = 1, select("#", ...) do
    if type(v) ~= "table" then return nil end
    v = v[select(i, ...)]
  end
  return v
end

local function hex_char(h) return string.char(tonumber(h, 16)) end
function M.url_decode(s)
  -- most path segments and query values have nothing to decode
  if not s:find("[%%+]") then return s end
  s = s:gsub("+", " ")
  return (s:gsub("%%(%x%x)", hex_char))
end

function M.parse_query(q)
  local out = {}
  if not q or q == "" then return out end
  for part in q:gmatch("[^&]+") do
    local k, v = part:match("^([^=]*)=(.*)$")
    if not k then k, v = part, "" end
    out[M.url_decode(k)] = M.url_decode(v)
  end
  return out
end

return M
