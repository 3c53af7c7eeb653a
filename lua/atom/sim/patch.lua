-- The four patch kinds (JSON merge patch, JSON patch, strategic merge patch, server-side apply)
-- and managedFields bookkeeping. Functions take the live object read-only and return a new
-- table owned by the caller; errors come back as (nil, message) or as metav1.Status tables.
-- List semantics follow /work/shared/reference/merge-keys-and-columns.md part 1.
local util = require "atom.sim.util"
local cjson = require "cjson"

local M = {}
local null = cjson.null
local SEP = "\n"

local CONTAINER_LISTS = { containers = true, initContainers = true, ephemeralContainers = true }

-- List semantics for the list at `path` (array of field names) in an object of `ctx.kind`.
-- Returns { smp_key = key|nil, smp_prim = bool, ssa = "map"|"set"|"atomic", keys = {...} }:
-- shared constants, read-only for callers (this runs for every list of every write).
local ATOMIC = { ssa = "atomic" }
local function keyed(key, keys) return { smp_key = key, ssa = "map", keys = keys or { key } } end
local BY_UID = keyed("uid")
local PRIM_SET = { smp_prim = true, ssa = "set" }
local BY_NAME = keyed("name")
local BY_CONTAINER_PORT = keyed("containerPort", { "containerPort", "protocol" })
local BY_PORT = keyed("port", { "port", "protocol" })
local BY_MOUNT_PATH = keyed("mountPath")
local BY_DEVICE_PATH = keyed("devicePath")
local BY_IP = keyed("ip")
local BY_TOPOLOGY = keyed("topologyKey", { "topologyKey", "whenUnsatisfiable" })
local JOB_CONDITIONS = { smp_key = "type", ssa = "atomic" }
local BY_TYPE = keyed("type")
function M.list_info(ctx, path)
  local n = #path
  local name, parent = path[n], path[n - 1]
  if n == 2 and path[1] == "metadata" then
    if name == "ownerReferences" then return BY_UID end
    if name == "finalizers" then return PRIM_SET end
    return ATOMIC
  end
  if ctx.crd then return ATOMIC end
  if CONTAINER_LISTS[name] or name == "schedulingGates" or name == "resourceClaims" and parent ~= "resources" then
    return BY_NAME
  end
  if name == "volumes" then return BY_NAME end
  if name == "imagePullSecrets" then
    if ctx.kind == "ServiceAccount" and n == 1 then return ATOMIC end
    return BY_NAME
  end
  if name == "env" and CONTAINER_LISTS[parent] then return BY_NAME end
  if name == "ports" then
    if CONTAINER_LISTS[parent] then return BY_CONTAINER_PORT end
    if ctx.kind == "Service" and n == 2 and path[1] == "spec" then return BY_PORT end
    return ATOMIC
  end
  if name == "volumeMounts" then return BY_MOUNT_PATH end
  if name == "volumeDevices" then return BY_DEVICE_PATH end
  if name == "hostAliases" then return BY_IP end
  if name == "topologySpreadConstraints" then return BY_TOPOLOGY end
  if name == "conditions" and path[1] == "status" then
    if ctx.kind == "Job" then return JOB_CONDITIONS end
    return BY_TYPE
  end
  if name == "podIPs" and path[1] == "status" then return BY_IP end
  if name == "addresses" and ctx.kind == "Node" then return BY_TYPE end
  if name == "secrets" and ctx.kind == "ServiceAccount" then return BY_NAME end
  if name == "podCIDRs" and ctx.kind == "Node" then return PRIM_SET end
  return ATOMIC
end

-- Maps that SSA owns as one value.
local function atomic_map(ctx, path)
  local n = #path
  if ctx.crd and path[1] ~= "metadata" then return false end
  if path[n] == "nodeSelector" then return true end
  if path[n] == "selector" and n == 2 and path[1] == "spec" and ctx.kind == "Service" then return true end
  return false
end

local function is_map(v)
  return type(v) == "table" and getmetatable(v) ~= util.array_mt and (next(v) == nil or v[1] == nil)
end
local function is_list(v)
  return type(v) == "table" and (getmetatable(v) == util.array_mt or v[1] ~= nil)
end
M.is_map, M.is_list = is_map, is_list

local function push(path, name)
  local p = table.move(path, 1, #path, 1, {})
  p[#p + 1] = name
  return p
end

---------------------------------------------------------------------------------------------
-- JSON merge patch (RFC 7386)

-- In place on `out`, which the caller owns.
local function merge_into(out, patch)
  for k, v in pairs(patch) do
    if v == null then
      out[k] = nil
    elseif is_map(v) then
      out[k] = merge_into(is_map(out[k]) and out[k] or {}, v)
    else
      out[k] = util.copy(v)
    end
  end
  return out
end

function M.merge_patch(target, patch)
  if not is_map(patch) then return util.copy(patch) end
  return merge_into(is_map(target) and util.copy(target) or {}, patch)
end

---------------------------------------------------------------------------------------------
-- JSON patch (RFC 6902)

local function parse_pointer(p)
  if type(p) ~= "string" then return nil, "missing path" end
  if p == "" then return {} end
  if p:sub(1, 1) ~= "/" then return nil, "invalid JSON pointer: " .. p end
  local out = {}
  for tok in (p:sub(2) .. "/"):gmatch("([^/]*)/") do
    out[#out + 1] = tok:gsub("~1", "/"):gsub("~0", "~")
  end
  return out
end

local function index_of(container, tok, for_add)
  if is_list(container) or (type(container) == "table" and next(container) == nil and (tok == "-" or tok:match("^%d+$") and for_add)) then
    if tok == "-" then return #container + 1, true end
    if not tok:match("^%d+$") then return nil end
    local i = tonumber(tok) + 1
    if i > #container + (for_add and 1 or 0) then return nil end
    return i, true
  end
  return tok, false
end

local function resolve_parent(doc, toks)
  local cur = doc
  for i = 1, #toks - 1 do
    if type(cur) ~= "table" then return nil end
    local k = index_of(cur, toks[i], false)
    if k == nil then return nil end
    cur = cur[k]
  end
  if type(cur) ~= "table" then return nil end
  return cur
end

local function get_at(doc, toks)
  if #toks == 0 then return doc end
  local parent = resolve_parent(doc, toks)
  if not parent then return nil end
  local k = index_of(parent, toks[#toks], false)
  if k == nil then return nil end
  return parent[k]
end

local function remove_at(doc, toks)
  local parent = resolve_parent(doc, toks)
  if not parent then return nil end
  local k, arr = index_of(parent, toks[#toks], false)
  if k == nil or parent[k] == nil then return nil end
  local v = parent[k]
  if arr then table.remove(parent, k) else parent[k] = nil end
  return v
end

local function add_at(doc, toks, value)
  if #toks == 0 then return value end
  local parent = resolve_parent(doc, toks)
  if not parent then return nil end
  local k, arr = index_of(parent, toks[#toks], true)
  if k == nil then return nil end
  if arr then
    table.insert(parent, k, value)
    setmetatable(parent, util.array_mt)
  else
    parent[k] = value
  end
  return doc
end

-- Returns new doc or nil, message.
function M.json_patch(doc, ops)
  if not is_list(ops) and not (type(ops) == "table" and next(ops) == nil) then
    return nil, "json patch must be an array of operations"
  end
  doc = util.copy(doc)
  for _, op in ipairs(ops) do
    if type(op) ~= "table" then return nil, "invalid json patch operation" end
    local toks, err = parse_pointer(op.path)
    if not toks then return nil, err end
    local kind = op.op
    local value = op.value
    if value == null then value = nil end
    if kind == "add" then
      if op.value == nil then return nil, "add operation does not apply: missing value" end
      local d = add_at(doc, toks, util.copy(op.value))
      if d == nil then return nil, "add operation does not apply: doc is missing path: \"" .. op.path .. "\"" end
      doc = d
    elseif kind == "remove" then
      if remove_at(doc, toks) == nil then
        return nil, "remove operation does not apply: doc is missing path: \"" .. op.path .. "\""
      end
    elseif kind == "replace" then
      if op.value == nil then return nil, "replace operation does not apply: missing value" end
      if #toks == 0 then doc = util.copy(op.value) else
        if remove_at(doc, toks) == nil then
          return nil, "replace operation does not apply: doc is missing key: " .. op.path
        end
        doc = add_at(doc, toks, util.copy(op.value))
        if doc == nil then return nil, "replace operation does not apply: " .. op.path end
      end
    elseif kind == "move" or kind == "copy" then
      local from = parse_pointer(op.from)
      if not from then return nil, kind .. " operation: invalid from" end
      local v
      if kind == "move" then v = remove_at(doc, from) else v = util.copy(get_at(doc, from)) end
      if v == nil then return nil, kind .. " operation does not apply: doc is missing from path: " .. tostring(op.from) end
      doc = add_at(doc, toks, v)
      if doc == nil then return nil, kind .. " operation does not apply: " .. op.path end
    elseif kind == "test" then
      if not util.equal(get_at(doc, toks), op.value) then
        return nil, "testing value " .. op.path .. " failed: test failed"
      end
    else
      return nil, "Unexpected kind: " .. tostring(kind)
    end
  end
  return doc
end

---------------------------------------------------------------------------------------------
-- Strategic merge patch

local smp_map

local function strip_directives(v)
  if is_map(v) then
    local out = {}
    for k, x in pairs(v) do
      if type(k) ~= "string" or k:sub(1, 1) ~= "$" then
        if x ~= null then out[k] = strip_directives(x) end
      end
    end
    return out
  elseif is_list(v) then
    local out = util.array()
    for _, x in ipairs(v) do out[#out + 1] = strip_directives(x) end
    return out
  end
  return v
end

local function order_by(list, order, key)
  if not is_list(order) then return list end
  local pos = {}
  for i, o in ipairs(order) do
    local kv = key and (type(o) == "table" and o[key]) or o
    if kv ~= nil then pos[cjson.encode(kv)] = i end
  end
  local decorated = {}
  for i, x in ipairs(list) do
    local kv = key and (type(x) == "table" and x[key]) or x
    local p = kv ~= nil and pos[cjson.encode(kv)] or nil
    decorated[i] = { x = x, p = p or (#order + i), i = i }
  end
  table.sort(decorated, function(a, b) if a.p ~= b.p then return a.p < b.p end return a.i < b.i end)
  local out = util.array()
  for i, d in ipairs(decorated) do out[i] = d.x end
  return out
end

local function smp_list(ctx, path, live, patch, order)
  local li = M.list_info(ctx, path)
  live = is_list(live) and live or util.array()
  if li.smp_key then
    local key = li.smp_key
    for _, e in ipairs(patch) do
      if type(e) == "table" and e["$patch"] == "replace" then
        local out = util.array()
        for _, x in ipairs(patch) do
          if not (type(x) == "table" and x["$patch"]) then out[#out + 1] = strip_directives(x) end
        end
        return out
      end
    end
    local out = util.array()
    for i, x in ipairs(live) do out[i] = x end
    for _, e in ipairs(patch) do
      if type(e) == "table" then
        local kv = e[key]
        local found
        for i, x in ipairs(out) do
          if type(x) == "table" and kv ~= nil and util.equal(x[key], kv) then found = i break end
        end
        if e["$patch"] == "delete" then
          if found then table.remove(out, found) end
        elseif found then
          out[found] = smp_map(ctx, path, out[found], e)
        else
          out[#out + 1] = strip_directives(e)
        end
      end
    end
    return order_by(out, order, key)
  elseif li.smp_prim then
    local out, seen = util.array(), {}
    for _, x in ipairs(live) do out[#out + 1] = x seen[x] = true end
    for _, x in ipairs(patch) do
      if not seen[x] and type(x) ~= "table" then out[#out + 1] = x seen[x] = true end
    end
    return order_by(out, order, nil)
  end
  return strip_directives(patch)
end

-- `live` is owned by the caller (a copy) and is merged in place.
smp_map = function(ctx, path, live, patch)
  if patch["$patch"] == "replace" then return strip_directives(patch) end
  if patch["$patch"] == "delete" then return nil end
  local out = is_map(live) and live or {}
  local orders = {}
  for k, v in pairs(patch) do
    local field = type(k) == "string" and k:match("^%$setElementOrder/(.+)$")
    if field then orders[field] = v end
  end
  for k, v in pairs(patch) do
    if type(k) == "string" and k:sub(1, 1) == "$" then
      -- directives handled below
    elseif v == null then
      out[k] = nil
    elseif is_map(v) and next(v) ~= nil then
      local sub = push(path, k)
      if is_map(out[k]) and not atomic_map(ctx, sub) then
        out[k] = smp_map(ctx, sub, out[k], v)
      else
        out[k] = v["$patch"] ~= "delete" and strip_directives(v) or nil
      end
    elseif is_list(v) then
      out[k] = smp_list(ctx, push(path, k), out[k], v, orders[k])
    else
      out[k] = util.copy(v)
    end
  end
  for k, v in pairs(patch) do
    if type(k) == "string" then
      local field = k:match("^%$deleteFromPrimitiveList/(.+)$")
      if field and is_list(out[field]) and is_list(v) then
        local drop = {}
        for _, x in ipairs(v) do drop[x] = true end
        local kept = util.array()
        for _, x in ipairs(out[field]) do if not drop[x] then kept[#kept + 1] = x end end
        out[field] = kept
      end
      field = k:match("^%$setElementOrder/(.+)$")
      if field and patch[field] == nil and is_list(out[field]) then
        local li = M.list_info(ctx, push(path, field))
        out[field] = order_by(out[field], v, li.smp_key)
      end
    end
  end
  local retain = patch["$retainKeys"]
  if is_list(retain) then
    local keep = {}
    for _, x in ipairs(retain) do keep[x] = true end
    for k in pairs(out) do if not keep[k] then out[k] = nil end end
  end
  return out
end

function M.strategic_merge(live, patch, ctx)
  if not is_map(patch) then return nil, "strategic merge patch must be a JSON object" end
  return smp_map(ctx, {}, util.copy(live), patch)
end

---------------------------------------------------------------------------------------------
-- Field sets (managedFields). A set is { [path_string] = true }, a path string is the FieldsV1
-- keys from the root joined by "\n" (e.g. "f:spec\nf:replicas").

local DEFAULTS = { protocol = "TCP" }

-- the sorted copy of each list_info keys table, made once
local sorted_keys = setmetatable({}, { __mode = "k" })
local function key_json(elem, keys)
  local parts = {}
  local sorted = sorted_keys[keys]
  if not sorted then
    sorted = table.move(keys, 1, #keys, 1, {})
    table.sort(sorted)
    sorted_keys[keys] = sorted
  end
  for _, k in ipairs(sorted) do
    local v = elem[k]
    if v == nil then v = DEFAULTS[k] end
    if v ~= nil then parts[#parts + 1] = cjson.encode(k) .. ":" .. cjson.encode(v) end
  end
  return "k:{" .. table.concat(parts, ",") .. "}"
end

local SKIP_META = {
  name = true, namespace = true, uid = true, resourceVersion = true, generation = true,
  creationTimestamp = true, managedFields = true, deletionTimestamp = true,
  deletionGracePeriodSeconds = true, selfLink = true,
}

local walk_fields
local function walk_list(ctx, path, list, prefix, out)
  local li = M.list_info(ctx, path)
  if li.ssa == "map" then
    for _, e in ipairs(list) do
      if type(e) == "table" then
        local p = prefix .. SEP .. key_json(e, li.keys)
        out[p .. SEP .. "."] = true
        walk_fields(ctx, path, e, p, out, true)
      end
    end
  elseif li.ssa == "set" then
    for _, e in ipairs(list) do out[prefix .. SEP .. "v:" .. cjson.encode(e)] = true end
  else
    out[prefix] = true
  end
end

walk_fields = function(ctx, path, obj, prefix, out, in_list)
  for k, v in pairs(obj) do
    if type(k) == "string" then
      local p = (prefix == "" and "" or prefix .. SEP) .. "f:" .. k
      local sub = push(path, k)
      if type(v) ~= "table" then
        out[p] = true
      elseif is_list(v) then
        walk_list(ctx, sub, v, p, out)
      elseif next(v) == nil or atomic_map(ctx, sub) then
        out[p] = true
      else
        walk_fields(ctx, sub, v, p, out, false)
      end
    end
  end
  return out
end

-- Fields of a whole object as a set. `with_status` false leaves status out (main resource).
function M.fieldset(obj, ctx, with_status)
  local out = {}
  for k, v in pairs(obj) do
    if k == "metadata" and type(v) == "table" then
      for mk, mv in pairs(v) do
        if not SKIP_META[mk] then
          walk_fields(ctx, { "metadata" }, { [mk] = mv }, "f:metadata", out)
        end
      end
    elseif k ~= "apiVersion" and k ~= "kind" and (k ~= "status" or with_status) then
      walk_fields(ctx, {}, { [k] = v }, "", out)
    end
  end
  return out
end

-- The FieldsV1 trie of an object's fields, built as it is walked: the same value as
-- to_fields_v1(fieldset(obj, ctx, with_status)) without making a path string per field and
-- splitting it again, which was most of a create-by-apply's cost. A map or list gets a node
-- only once something is found under it, as a path would create it. `path` is one stack of
-- field names, pushed and popped as the walk goes (list_info and atomic_map only read it).
local trie_fields
local function trie_list(ctx, path, list, node, key)
  local li = M.list_info(ctx, path)
  if li.ssa == "map" then
    for _, e in ipairs(list) do
      if type(e) == "table" then
        local lnode = node[key]
        if not lnode then lnode = {} node[key] = lnode end
        local ek = key_json(e, li.keys)
        local enode = lnode[ek]
        if not enode then enode = {} lnode[ek] = enode end
        if not enode["."] then enode["."] = {} end
        trie_fields(ctx, path, e, enode)
      end
    end
  elseif li.ssa == "set" then
    for _, e in ipairs(list) do
      local lnode = node[key]
      if not lnode then lnode = {} node[key] = lnode end
      local vk = "v:" .. cjson.encode(e)
      if not lnode[vk] then lnode[vk] = {} end
    end
  elseif not node[key] then
    node[key] = {}
  end
end

trie_fields = function(ctx, path, obj, node)
  local depth = #path + 1
  for k, v in pairs(obj) do
    if type(k) == "string" then
      local key = "f:" .. k
      if type(v) ~= "table" then
        if not node[key] then node[key] = {} end
      else
        path[depth] = k
        if is_list(v) then
          trie_list(ctx, path, v, node, key)
        elseif next(v) == nil or atomic_map(ctx, path) then
          if not node[key] then node[key] = {} end
        else
          local t = node[key] or {}
          trie_fields(ctx, path, v, t)
          if next(t) ~= nil then node[key] = t end
        end
        path[depth] = nil
      end
    end
  end
end

function M.fields_trie(obj, ctx, with_status)
  local root = {}
  for k, v in pairs(obj) do
    if k == "metadata" and type(v) == "table" then
      local t = root["f:metadata"] or {}
      for mk, mv in pairs(v) do
        if not SKIP_META[mk] then trie_fields(ctx, { "metadata" }, { [mk] = mv }, t) end
      end
      if next(t) ~= nil then root["f:metadata"] = t end
    elseif k ~= "apiVersion" and k ~= "kind" and (k ~= "status" or with_status) then
      trie_fields(ctx, {}, { [k] = v }, root)
    end
  end
  return root
end

local function split_path(p)
  local out = {}
  for pe in (p .. SEP):gmatch("(.-)" .. SEP) do out[#out + 1] = pe end
  return out
end

local key_cache = setmetatable({}, { __mode = "k" })
local function decode_key(pe)
  local k = key_cache[pe]
  if k == nil then
    k = util.decode(pe:sub(3)) or {}
    key_cache[pe] = k
  end
  return k
end

local function find_elem(list, pe)
  if not is_list(list) then return nil end
  if pe:sub(1, 2) == "k:" then
    local keys = decode_key(pe)
    for i, e in ipairs(list) do
      if type(e) == "table" then
        local ok = true
        for kk, kv in pairs(keys) do
          local ev = e[kk]
          if ev == nil then ev = DEFAULTS[kk] end
          if not util.equal(ev, kv) then ok = false break end
        end
        if ok then return e, i end
      end
    end
  elseif pe:sub(1, 2) == "v:" then
    local want = util.decode(pe:sub(3))
    for i, e in ipairs(list) do
      if util.equal(e, want) then return e, i end
    end
  end
  return nil
end

-- Value at a path; for "." returns true when the element exists.
function M.value_at(obj, p)
  local cur = obj
  for _, pe in ipairs(split_path(p)) do
    if pe == "." then return cur ~= nil and true or nil end
    if type(cur) ~= "table" then return nil end
    local c = pe:sub(1, 2)
    if c == "f:" then cur = cur[pe:sub(3)]
    elseif c == "v:" then
      local e = find_elem(cur, pe)
      return e ~= nil and true or nil
    else cur = find_elem(cur, pe) end
    if cur == nil then return nil end
  end
  return cur
end

-- Remove the field at path from obj (in place).
function M.remove_path(obj, p)
  local pes = split_path(p)
  local parents = { obj }
  local cur = obj
  for i = 1, #pes - 1 do
    local pe = pes[i]
    if pes[i + 1] == "." then
      -- remove the list element pe from list cur
      local _, idx = find_elem(cur, pe)
      if idx then table.remove(cur, idx) end
      return
    end
    if type(cur) ~= "table" then return end
    if pe:sub(1, 2) == "f:" then cur = cur[pe:sub(3)] else cur = find_elem(cur, pe) end
    if cur == nil then return end
    parents[#parents + 1] = cur
  end
  local last = pes[#pes]
  if type(cur) ~= "table" then return end
  if last:sub(1, 2) == "f:" then cur[last:sub(3)] = nil
  elseif last:sub(1, 2) == "v:" then
    local _, idx = find_elem(cur, last)
    if idx then table.remove(cur, idx) end
  end
end

function M.to_fields_v1(set)
  local root = {}
  for p in pairs(set) do
    local node = root
    for pe in (p .. SEP):gmatch("(.-)" .. SEP) do
      local nxt = node[pe]
      if not nxt then nxt = {} node[pe] = nxt end
      node = nxt
    end
  end
  return root
end

function M.from_fields_v1(trie)
  local out = {}
  local function walk(node, prefix)
    for k, v in pairs(node) do
      local p = prefix == "" and k or prefix .. SEP .. k
      if type(v) ~= "table" or next(v) == nil then out[p] = true else walk(v, p) end
    end
  end
  if type(trie) == "table" then walk(trie, "") end
  return out
end

---------------------------------------------------------------------------------------------
-- Server-side apply merge

local ssa_merge_map
local function ssa_merge_list(ctx, path, live, applied)
  local li = M.list_info(ctx, path)
  if li.ssa == "map" and is_list(live) then
    local out = util.array()
    for i, x in ipairs(live) do out[i] = x end
    for _, e in ipairs(applied) do
      if type(e) == "table" then
        local _, idx = find_elem(out, key_json(e, li.keys))
        if idx then out[idx] = ssa_merge_map(ctx, path, out[idx], e)
        else out[#out + 1] = util.copy(e) end
      end
    end
    return out
  elseif li.ssa == "set" and is_list(live) then
    local out = util.array()
    for i, x in ipairs(live) do out[i] = x end
    for _, e in ipairs(applied) do
      local found = false
      for _, x in ipairs(out) do if util.equal(x, e) then found = true break end end
      if not found then out[#out + 1] = util.copy(e) end
    end
    return out
  end
  return util.copy(applied)
end

-- `live` is owned by the caller (a copy) and is merged in place.
ssa_merge_map = function(ctx, path, live, applied)
  local out = is_map(live) and live or {}
  for k, v in pairs(applied) do
    local sub = push(path, k)
    if is_list(v) then
      out[k] = ssa_merge_list(ctx, sub, out[k], v)
    elseif is_map(v) and next(v) ~= nil and is_map(out[k]) and not atomic_map(ctx, sub) then
      out[k] = ssa_merge_map(ctx, sub, out[k], v)
    else
      out[k] = util.copy(v)
    end
  end
  return out
end

local function path_text(p)
  -- ".spec.template.spec.containers[name=\"app\"].image" as the apiserver prints it
  local parts = {}
  for _, pe in ipairs(split_path(p)) do
    local c = pe:sub(1, 2)
    if c == "f:" then parts[#parts + 1] = "." .. pe:sub(3)
    elseif c == "k:" then
      local keys = decode_key(pe)
      local ks = util.sorted_keys(keys)
      local kv = {}
      for _, k in ipairs(ks) do kv[#kv + 1] = k .. "=" .. cjson.encode(keys[k]) end
      parts[#parts + 1] = "[" .. table.concat(kv, ",") .. "]"
    elseif c == "v:" then parts[#parts + 1] = "[=" .. pe:sub(3) .. "]"
    end
  end
  return table.concat(parts)
end
M.path_text = path_text

local function managers_of(obj)
  local out = {}
  for _, e in ipairs(util.get_path(obj, "metadata", "managedFields") or {}) do
    if type(e) == "table" then
      out[#out + 1] = {
        manager = e.manager, operation = e.operation, apiVersion = e.apiVersion, time = e.time,
        subresource = e.subresource, set = M.from_fields_v1(e.fieldsV1),
      }
    end
  end
  return out
end

local function encode_managers(list)
  local out = util.array()
  for _, m in ipairs(list) do
    if next(m.set) ~= nil then
      out[#out + 1] = {
        manager = m.manager, operation = m.operation, apiVersion = m.apiVersion, time = m.time,
        fieldsType = "FieldsV1", fieldsV1 = M.to_fields_v1(m.set), subresource = m.subresource,
      }
    end
  end
  return out
end

-- Server-side apply. `live` may be nil (create). opts = { manager, force, api_version, time,
-- ctx = { kind, crd }, with_status, owned }. Returns merged object (managedFields set), or nil,
-- conflicts where conflicts = array of { manager, api_version, path }.
-- opts.owned: `applied` is the caller's, already free of nulls, and may be changed and kept;
-- a create then returns it (with managedFields) instead of two deep copies of it.
function M.apply(live, applied, opts)
  local ctx = opts.ctx
  if not opts.owned then applied = util.strip_nulls(util.copy(applied)) end
  if applied.metadata then applied.metadata.managedFields = nil end
  if not opts.with_status then applied.status = nil end
  if not live and opts.owned then
    -- a create: no other manager, nothing to merge or prune; applied itself, with one Apply
    -- entry that owns all its fields (what the general path below computes, less its work)
    local trie = M.fields_trie(applied, ctx, opts.with_status)
    local mf = util.array()
    if next(trie) ~= nil then
      mf[1] = { manager = opts.manager, operation = "Apply", apiVersion = opts.api_version,
        time = opts.time, fieldsType = "FieldsV1", fieldsV1 = trie }
    end
    applied.metadata = applied.metadata or {}
    applied.metadata.managedFields = mf
    return applied
  end
  local managers = live and managers_of(live) or {}
  if live and #managers == 0 then
    managers[1] = { manager = "before-first-apply", operation = "Update",
      apiVersion = opts.api_version, time = opts.time, set = M.fieldset(live, ctx, false) }
  end
  local mine
  for _, m in ipairs(managers) do
    if m.manager == opts.manager and m.operation == "Apply" and not m.subresource then mine = m end
  end
  local new_set = M.fieldset(applied, ctx, opts.with_status)
  local base = live or {}
  -- merging into nothing is a deep copy of applied, which an owned applied can skip
  local merged = (opts.owned and not live) and applied or ssa_merge_map(ctx, {}, util.copy(base), applied)
  -- conflicts: fields another manager owns whose value this apply changes
  local conflicts = {}
  for p in pairs(new_set) do
    if p:sub(-2) ~= SEP .. "." then
      for _, m in ipairs(managers) do
        -- The scale subresource's writer owns .spec.replicas on the main resource too
        -- (status writers own only .status, which an apply to the main resource drops).
        if m ~= mine and m.set[p] and (not m.subresource or m.subresource == "scale") then
          local before = M.value_at(base, p)
          if before ~= nil and not util.equal(before, M.value_at(merged, p)) then
            conflicts[#conflicts + 1] = { manager = m.manager, api_version = m.apiVersion,
              path = path_text(p), raw = p, owner = m }
          end
        end
      end
    end
  end
  if #conflicts > 0 then
    if not opts.force then
      table.sort(conflicts, function(a, b)
        if a.manager ~= b.manager then return a.manager < b.manager end
        return a.path < b.path
      end)
      return nil, conflicts
    end
    for _, c in ipairs(conflicts) do c.owner.set[c.raw] = nil end
  end
  -- prune what this manager dropped and nobody else owns
  if mine then
    local drop = {}
    for p in pairs(mine.set) do
      if not new_set[p] then
        local owned = false
        for _, m in ipairs(managers) do
          if m ~= mine and m.set[p] then owned = true break end
        end
        if not owned then drop[#drop + 1] = p end
      end
    end
    table.sort(drop, function(a, b) return #a < #b end)
    for _, p in ipairs(drop) do M.remove_path(merged, p) end
    local same_set = #drop == 0 and mine.apiVersion == opts.api_version
    if same_set then
      for p in pairs(new_set) do if not mine.set[p] then same_set = false break end end
    end
    mine.set = new_set
    mine.apiVersion = opts.api_version
    merged.metadata = merged.metadata or {}
    -- an apply that changes nothing leaves the object (managedFields timestamps included) alone,
    -- so it does not bump the resourceVersion
    if same_set and #conflicts == 0 and #managers == #(live.metadata.managedFields or {}) then
      local a, b = util.copy(merged), util.copy(live)
      a.metadata.managedFields, b.metadata.managedFields = nil, nil
      if util.equal(a, b) then
        merged.metadata.managedFields = util.copy(live.metadata.managedFields)
        return merged
      end
    end
    mine.time = opts.time
  else
    managers[#managers + 1] = { manager = opts.manager, operation = "Apply",
      apiVersion = opts.api_version, time = opts.time, set = new_set }
  end
  merged.metadata = merged.metadata or {}
  merged.metadata.managedFields = encode_managers(managers)
  return merged
end

-- Record a non-apply write by `manager`: fields it changed move to its Update entry; fields it
-- removed leave every entry. Mutates and returns `new`.
function M.record_update(old, new, opts)
  local ctx = opts.ctx
  local managers = old and managers_of(old) or {}
  local new_set = M.fieldset(new, ctx, false)
  local changed, removed = {}, {}
  if old then
    for p in pairs(new_set) do
      if not util.equal(M.value_at(old, p), M.value_at(new, p)) then changed[p] = true end
    end
    for p in pairs(M.fieldset(old, ctx, false)) do
      if not new_set[p] then removed[p] = true end
    end
  else
    changed = new_set
  end
  if next(changed) == nil and next(removed) == nil and old then
    new.metadata.managedFields = util.copy(old.metadata.managedFields)
    return new
  end
  local mine
  for _, m in ipairs(managers) do
    if m.manager == opts.manager and m.operation == "Update" and m.subresource == opts.subresource then
      mine = m
    end
    -- An update takes the fields it changed from every other manager, the scale
    -- subresource's included (they are the same .spec.replicas).
    if not m.subresource or m.subresource == "scale" or opts.subresource then
      for p in pairs(changed) do if m.set[p] then m.set[p] = nil end end
      for p in pairs(removed) do m.set[p] = nil end
    end
  end
  if not mine then
    mine = { manager = opts.manager, operation = "Update", subresource = opts.subresource, set = {} }
    managers[#managers + 1] = mine
  end
  for p in pairs(changed) do mine.set[p] = true end
  mine.apiVersion = opts.api_version
  mine.time = opts.time
  new.metadata.managedFields = encode_managers(managers)
  return new
end

-- How kube-apiserver names the manager in a conflict: appliers by name only (their
-- identifier has no apiVersion), updaters "using <apiVersion>" (the time is never part of it),
-- and a subresource writer "with subresource \"scale\"" before that.
function M.manager_text(c)
  local op = c.owner and c.owner.operation
  local who = string.format('"%s"', c.manager)
  local sub = c.owner and c.owner.subresource
  if sub then who = string.format('%s with subresource "%s"', who, sub) end
  if op == "Update" then return string.format("%s using %s", who, c.api_version or "") end
  return who
end

function M.conflict_message(conflicts)
  local n = #conflicts
  if n == 1 then
    local c = conflicts[1]
    return string.format("Apply failed with 1 conflict: conflict with %s: %s", M.manager_text(c), c.path)
  end
  local lines = { string.format("Apply failed with %d conflicts: ", n) }
  local by = {}
  local order = {}
  for _, c in ipairs(conflicts) do
    if not by[c.manager] then by[c.manager] = {} order[#order + 1] = c.manager end
    table.insert(by[c.manager], c)
  end
  local chunks = {}
  for _, m in ipairs(order) do
    local ls = { string.format("conflicts with %s:", M.manager_text(by[m][1])) }
    for _, c in ipairs(by[m]) do ls[#ls + 1] = "- " .. c.path end
    chunks[#chunks + 1] = table.concat(ls, "\n")
  end
  return lines[1] .. table.concat(chunks, "\n")
end

return M
