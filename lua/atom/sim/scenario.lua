-- Scenarios: object rules (what the controllers look up with rule_for) and API faults (what the
-- request path consults with fault_for). A scenario is a Lua chunk run with an empty environment
-- plus math/string/table that returns { rules = {...}, faults = {...}, seed = n }. The scenario
-- table and its PRNG state belong to this instance.
local util = require "atom.sim.util"

local M = {}
M.__index = M

local MATCH_KEYS = { kind = true, name = true, namespace = true, labels = true, image = true, match = true }

function M.new(defaults)
  local self = setmetatable({}, M)
  self.defaults = defaults or {}
  self:clear()
  return self
end

function M:clear()
  self.rules, self.faults = {}, {}
  self.state = 0x2545F491
end

local function glob_to_pattern(g)
  return "^" .. g:gsub("[%^%$%(%)%%%.%[%]%+%-]", "%%%0"):gsub("%*", ".*"):gsub("%?", ".") .. "$"
end

local function glob(pattern, s)
  if pattern == nil then return true end
  if type(s) ~= "string" then return false end
  if type(pattern) == "table" then
    for _, p in ipairs(pattern) do if glob(p, s) then return true end end
    return false
  end
  return s:match(glob_to_pattern(tostring(pattern))) ~= nil
end
M.glob = glob

-- Load from source; returns true or nil, message. Replaces the current scenario.
function M:load(source, chunkname)
  local env = { math = math, string = string, table = table, pairs = pairs, ipairs = ipairs,
    tonumber = tonumber, tostring = tostring, type = type }
  local fn, err = load(source, chunkname or "=scenario", "t", env)
  if not fn then return nil, err end
  local ok, res = pcall(fn)
  if not ok then return nil, tostring(res) end
  if type(res) ~= "table" then return nil, "scenario must return a table" end
  self:clear()
  for _, r in ipairs(res.rules or {}) do
    if type(r) == "table" then self.rules[#self.rules + 1] = r end
  end
  for _, f in ipairs(res.faults or {}) do
    if type(f) == "table" then
      local c = util.copy(f)
      c.remaining = c.count
      self.faults[#self.faults + 1] = c
    end
  end
  local seed = tonumber(res.seed) or tonumber(util.hash(source), 16)
  self.state = math.tointeger(seed) & 0xffffffff
  if self.state == 0 then self.state = 0x2545F491 end
  return true
end

-- xorshift32: deterministic per scenario.
function M:random()
  local x = self.state
  x = x ~ ((x << 13) & 0xffffffff)
  x = x ~ (x >> 17)
  x = x ~ ((x << 5) & 0xffffffff)
  self.state = x
  return x / 4294967296
end

local function images_of(obj)
  local out = {}
  local function add(spec)
    if type(spec) ~= "table" then return end
    for _, l in ipairs({ spec.containers or {}, spec.initContainers or {} }) do
      for _, c in ipairs(l) do if type(c) == "table" and c.image then out[#out + 1] = c.image end end
    end
  end
  add(util.get_path(obj, "spec"))
  add(util.get_path(obj, "spec", "template", "spec"))
  add(util.get_path(obj, "spec", "jobTemplate", "spec", "template", "spec"))
  return out
end
M.images_of = images_of

local function rule_matches(r, obj)
  local m = type(r.match) == "table" and r.match or r
  local meta = obj.metadata or {}
  if m.kind and not glob(m.kind, obj.kind) then return false end
  if m.name and not glob(m.name, meta.name) then return false end
  if m.namespace and not glob(m.namespace, meta.namespace) then return false end
  if type(m.labels) == "table" then
    local labels = meta.labels or {}
    for k, v in pairs(m.labels) do
      if v == true then if labels[k] == nil then return false end
      elseif labels[k] ~= v then return false end
    end
  end
  if m.image then
    local any = false
    for _, img in ipairs(images_of(obj)) do if glob(m.image, img) then any = true break end end
    if not any then return false end
  end
  return true
end

-- Merged object rules for obj (later rules win). Always returns a fresh table.
function M:rule_for(obj)
  local out = {}
  for k, v in pairs(self.defaults) do out[k] = v end
  for _, img in ipairs(images_of(obj or {})) do
    local tag = img:match(":([^:/@]+)$")
    if tag == "does-not-exist" then out.image_pull_fails = true end
  end
  for _, r in ipairs(self.rules) do
    if rule_matches(r, obj or {}) then
      for k, v in pairs(r) do if not MATCH_KEYS[k] then out[k] = v end end
    end
  end
  return out
end

-- First fault matching req = { verb, resource, namespace, path }; consumes count/fraction.
-- Returns the fault table (caller reads status, latency, retry_after, ...) or nil.
function M:has_path_faults()
  for _, f in ipairs(self.faults) do if f.path then return true end end
  return false
end

function M:fault_for(req)
  for _, f in ipairs(self.faults) do
    local ok = not req.non_resource or f.path ~= nil
    if f.verb and f.verb ~= req.verb then
      ok = f.verb == "watch" and req.verb == "watch" or false
    end
    if ok and f.resource and f.resource ~= req.resource and f.resource ~= req.rk then ok = false end
    if ok and f.namespace and f.namespace ~= req.namespace then ok = false end
    if ok and f.path and not (req.path or ""):match(f.path) then ok = false end
    if ok and f.remaining ~= nil and f.remaining <= 0 then ok = false end
    if ok and f.fraction and self:random() >= f.fraction then ok = false end
    if ok then
      if f.remaining ~= nil then f.remaining = f.remaining - 1 end
      return f
    end
  end
  return nil
end

return M
