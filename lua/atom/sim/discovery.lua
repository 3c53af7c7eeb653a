-- Discovery documents: legacy (/api, /apis, /api/v1, /apis/<g>/<v>) and aggregated
-- (apidiscovery.k8s.io/v2, only when the Accept header asks for v=v2). Documents are rebuilt when
-- the registry generation changes and cached as JSON strings owned by this module's instance.
local util = require "atom.sim.util"

local M = {}
M.__index = M

function M.new(registry, server_address)
  return setmetatable({ registry = registry, server_address = server_address or "127.0.0.1:6443",
    cache = {}, gen = -1 }, M)
end

function M:_cached(key, build)
  if self.gen ~= self.registry.gen then
    self.cache = {}
    self.gen = self.registry.gen
  end
  local s = self.cache[key]
  if not s then
    s = util.encode(build())
    self.cache[key] = s
  end
  return s
end

local function arr(t) return util.array(t or {}) end

function M:api_versions()
  return self:_cached("/api", function()
    return { kind = "APIVersions", versions = arr({ "v1" }),
      serverAddressByClientCIDRs = arr({ { clientCIDR = "0.0.0.0/0", serverAddress = self.server_address } }) }
  end)
end

function M:group_list()
  return self:_cached("/apis", function()
    local groups = arr()
    for _, g in ipairs(self.registry.groups) do
      if g.name ~= "" then
        local vs = arr()
        for _, v in ipairs(g.versions) do vs[#vs + 1] = { groupVersion = g.name .. "/" .. v, version = v } end
        groups[#groups + 1] = { name = g.name, versions = vs, preferredVersion = vs[1] }
      end
    end
    return { kind = "APIGroupList", apiVersion = "v1", groups = groups }
  end)
end

function M:group(name)
  local g = self.registry.group_index[name]
  if not g or name == "" then return nil end
  return self:_cached("group:" .. name, function()
    local vs = arr()
    for _, v in ipairs(g.versions) do vs[#vs + 1] = { groupVersion = name .. "/" .. v, version = v } end
    return { kind = "APIGroup", apiVersion = "v1", name = name, versions = vs, preferredVersion = vs[1] }
  end)
end

local SUB_VERBS = arr({ "get", "patch", "update" })

function M:resource_list(group, version)
  local infos = self.registry:resources_of(group, version)
  if #infos == 0 then return nil end
  local gv = group == "" and version or (group .. "/" .. version)
  return self:_cached("rl:" .. gv, function()
    local res = arr()
    for _, i in ipairs(infos) do
      res[#res + 1] = { name = i.resource, singularName = i.singular, namespaced = i.namespaced,
        kind = i.kind, verbs = arr(i.verbs), shortNames = #i.short_names > 0 and arr(i.short_names) or nil,
        categories = #i.categories > 0 and arr(i.categories) or nil,
        storageVersionHash = util.hash(i.rk):sub(1, 8) .. "=" }
      if i.subresources.status then
        res[#res + 1] = { name = i.resource .. "/status", singularName = "", namespaced = i.namespaced,
          kind = i.kind, verbs = SUB_VERBS }
      end
      if i.subresources.scale then
        res[#res + 1] = { name = i.resource .. "/scale", singularName = "", namespaced = i.namespaced,
          group = "autoscaling", version = "v1", kind = "Scale", verbs = SUB_VERBS }
      end
      if i.subresources.log then
        res[#res + 1] = { name = i.resource .. "/log", singularName = "", namespaced = i.namespaced,
          kind = i.kind, verbs = arr({ "get" }) }
      end
      if i.subresources.approval then
        res[#res + 1] = { name = i.resource .. "/approval", singularName = "", namespaced = i.namespaced,
          kind = i.kind, verbs = SUB_VERBS }
      end
    end
    return { kind = "APIResourceList", apiVersion = "v1", groupVersion = gv, resources = res }
  end)
end

local function discovery_resource(i, version)
  local subs = arr()
  local rk = { group = i.group, version = version, kind = i.kind }
  if i.subresources.status then
    subs[#subs + 1] = { subresource = "status", responseKind = rk, verbs = SUB_VERBS }
  end
  if i.subresources.scale then
    subs[#subs + 1] = { subresource = "scale",
      responseKind = { group = "autoscaling", version = "v1", kind = "Scale" }, verbs = SUB_VERBS }
  end
  return { resource = i.resource, singularResource = i.singular, responseKind = rk,
    scope = i.namespaced and "Namespaced" or "Cluster", verbs = arr(i.verbs),
    shortNames = #i.short_names > 0 and arr(i.short_names) or nil,
    categories = #i.categories > 0 and arr(i.categories) or nil,
    subresources = #subs > 0 and subs or nil }
end

-- Aggregated discovery for "/api" (core) or "/apis" (named groups).
function M:aggregated(root)
  return self:_cached("agg:" .. root, function()
    local items = arr()
    for _, g in ipairs(self.registry.groups) do
      if (root == "/api") == (g.name == "") then
        local versions = arr()
        for _, v in ipairs(g.versions) do
          local res = arr()
          for _, i in ipairs(self.registry:resources_of(g.name, v)) do
            res[#res + 1] = discovery_resource(i, v)
          end
          versions[#versions + 1] = { version = v, resources = res, freshness = "Current" }
        end
        items[#items + 1] = { metadata = { name = g.name, creationTimestamp = util.null }, versions = versions }
      end
    end
    return { kind = "APIGroupDiscoveryList", apiVersion = "apidiscovery.k8s.io/v2",
      metadata = {}, items = items }
  end)
end

M.AGG_CONTENT_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"

function M.wants_aggregated(accept)
  if type(accept) ~= "string" then return false end
  for part in accept:gmatch("[^,]+") do
    if part:find("as=APIGroupDiscoveryList", 1, true) and part:find("g=apidiscovery.k8s.io", 1, true)
      and (part:match("v=v2;") or part:match("v=v2%s*$")) then
      return true
    end
  end
  return false
end

return M
