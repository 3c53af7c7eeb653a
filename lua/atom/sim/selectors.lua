-- Label and field selectors: the query-string forms (`labelSelector=`, `fieldSelector=`) and the
-- structured metav1.LabelSelector. Parsers return a selector table or nil, message; selectors
-- are immutable values owned by the caller.
local M = {}

local function trim(s) return (s:gsub("^%s+", ""):gsub("%s+$", "")) end

local LABEL_VALUE = "^[%w]?[%w%-%._]*$"

local function valid_key(k)
  if k == "" or #k > 316 then return false end
  local prefix, name = k:match("^(.+)/(.+)$")
  if not prefix then name = k end
  if prefix and not prefix:match("^[%l%d][%l%d%-%.]*$") then return false end
  return #name <= 63 and name:match("^[%w][%w%-%._]*$") ~= nil and name:match("[%w]$") ~= nil
end

local function valid_value(v)
  if v == "" then return true end
  return #v <= 63 and v:match(LABEL_VALUE) ~= nil and v:match("^[%w]") ~= nil and v:match("[%w]$") ~= nil
end

-- Split on commas that are not inside parentheses.
local function split_terms(s)
  local out, depth, cur = {}, 0, {}
  for ch in s:gmatch(".") do
    if ch == "(" then depth = depth + 1 elseif ch == ")" then depth = depth - 1 end
    if ch == "," and depth == 0 then
      out[#out + 1] = table.concat(cur)
      cur = {}
    else
      cur[#cur + 1] = ch
    end
  end
  out[#out + 1] = table.concat(cur)
  return out
end

-- Parse `app=web,tier in (a,b),!legacy`. Returns an array of requirements
-- { key, op = "="|"!="|"in"|"notin"|"exists"|"!", values = {set} } or nil, message.
function M.parse_labels(s)
  local reqs = {}
  if s == nil or trim(s) == "" then return reqs end
  for _, term in ipairs(split_terms(s)) do
    term = trim(term)
    if term == "" then return nil, "found '', expected: identifier" end
    local key, op, rest
    key, rest = term:match("^([^%s!=(),]+)%s+notin%s*(%b())$")
    if key then op = "notin" else
      key, rest = term:match("^([^%s!=(),]+)%s+in%s*(%b())$")
      if key then op = "in" end
    end
    if op then
      local vals = {}
      for v in rest:sub(2, -2):gmatch("[^,]+") do
        v = trim(v)
        if not valid_value(v) then return nil, "invalid label value: " .. v end
        vals[v] = true
      end
      reqs[#reqs + 1] = { key = key, op = op, values = vals }
    else
      local k, o, v = term:match("^([^%s!=]+)%s*([!=]=?)%s*(.*)$")
      if k and (o == "=" or o == "==" or o == "!=") then
        v = trim(v)
        if not valid_value(v) then
          return nil, string.format("invalid label value: %q: at key: %q", v, k)
        end
        reqs[#reqs + 1] = { key = k, op = (o == "!=") and "!=" or "=", values = { [v] = true }, value = v }
        key = k
      elseif term:match("^!%s*[^%s!=(),]+$") then
        key = trim(term:sub(2))
        reqs[#reqs + 1] = { key = key, op = "!" }
      elseif term:match("^[^%s!=(),]+$") then
        key = term
        reqs[#reqs + 1] = { key = key, op = "exists" }
      else
        return nil, "unable to parse requirement: " .. term
      end
    end
    if not valid_key(key) then
      return nil, string.format("unable to parse requirement: invalid label key %q", key)
    end
  end
  return reqs
end

function M.match_labels(reqs, labels)
  labels = labels or {}
  for _, r in ipairs(reqs) do
    local v = labels[r.key]
    local op = r.op
    if op == "=" or op == "in" then
      if v == nil or not r.values[v] then return false end
    elseif op == "!=" or op == "notin" then
      if v ~= nil and r.values[v] then return false end
    elseif op == "exists" then
      if v == nil then return false end
    elseif op == "!" then
      if v ~= nil then return false end
    end
  end
  return true
end

-- Field selectors: `metadata.name=x,metadata.namespace!=y`. Any dotted path is accepted and read
-- from the object as a string (kube limits them per resource; being lenient is harmless here).
function M.parse_fields(s)
  local reqs = {}
  if s == nil or trim(s) == "" then return reqs end
  for term in (s .. ","):gmatch("([^,]*),") do
    term = trim(term)
    local k, o, v = term:match("^([%w%.%-_]+)%s*([!=]=?)%s*(.*)$")
    if not k or (o ~= "=" and o ~= "==" and o ~= "!=") then
      return nil, "invalid selector: '" .. s .. "'; can't understand '" .. term .. "'"
    end
    local path = {}
    for p in k:gmatch("[^%.]+") do path[#path + 1] = p end
    reqs[#reqs + 1] = { path = path, neg = (o == "!="), value = trim(v) }
  end
  return reqs
end

local function field_value(obj, path)
  local v = obj
  for _, p in ipairs(path) do
    if type(v) ~= "table" then return "" end
    v = v[p]
  end
  if v == nil then return "" end
  if type(v) == "number" then
    local i = math.tointeger(v)
    return i and tostring(i) or tostring(v)
  end
  return tostring(v)
end

function M.match_fields(reqs, obj)
  for _, r in ipairs(reqs) do
    local eq = field_value(obj, r.path) == r.value
    if eq == r.neg then return false end
  end
  return true
end

-- The single metadata.name a field selector pins, if any (lets list skip a scan).
function M.pinned_name(reqs)
  for _, r in ipairs(reqs or {}) do
    if not r.neg and r.path[1] == "metadata" and r.path[2] == "name" and #r.path == 2 then
      return r.value
    end
  end
  return nil
end

-- metav1.LabelSelector { matchLabels, matchExpressions }. An absent selector matches nothing;
-- an empty one matches everything (as the workload controllers treat them).
function M.match_label_selector(sel, labels)
  if type(sel) ~= "table" then return false end
  labels = labels or {}
  for k, v in pairs(sel.matchLabels or {}) do
    if labels[k] ~= v then return false end
  end
  for _, e in ipairs(sel.matchExpressions or {}) do
    local v = labels[e.key]
    local set = {}
    for _, x in ipairs(e.values or {}) do set[x] = true end
    if e.operator == "In" then
      if v == nil or not set[v] then return false end
    elseif e.operator == "NotIn" then
      if v ~= nil and set[v] then return false end
    elseif e.operator == "Exists" then
      if v == nil then return false end
    elseif e.operator == "DoesNotExist" then
      if v ~= nil then return false end
    else
      return false
    end
  end
  return true
end

-- kubectl's text form of a LabelSelector (`app=web,tier in (a,b)`); "" when empty.
function M.label_selector_string(sel)
  if type(sel) ~= "table" then return "" end
  local parts = {}
  local keys = {}
  for k in pairs(sel.matchLabels or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. tostring(sel.matchLabels[k]) end
  for _, e in ipairs(sel.matchExpressions or {}) do
    local vals = {}
    for _, x in ipairs(e.values or {}) do vals[#vals + 1] = x end
    table.sort(vals)
    local op = e.operator
    if op == "In" then parts[#parts + 1] = e.key .. " in (" .. table.concat(vals, ",") .. ")"
    elseif op == "NotIn" then parts[#parts + 1] = e.key .. " notin (" .. table.concat(vals, ",") .. ")"
    elseif op == "Exists" then parts[#parts + 1] = e.key
    elseif op == "DoesNotExist" then parts[#parts + 1] = "!" .. e.key end
  end
  return table.concat(parts, ",")
end

function M.map_string(m)
  if type(m) ~= "table" or next(m) == nil then return "<none>" end
  local keys = {}
  for k in pairs(m) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. tostring(m[k]) end
  return table.concat(parts, ",")
end

return M
