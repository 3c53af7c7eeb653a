-- atom.kube.discovery — maps apiVersion + kind to resource, scope and verbs.
--
--   discovery.new(client) -> d
--   d:resource_for(apiVersion, kind) -> info | nil, err
--     info: { group, version, resource, kind, namespaced, verbs = { get = true, ... },
--             api_version }
--   d:invalidate()
--
-- The first lookup fetches /api and /apis once, asking for aggregated
-- discovery (one round trip per root) and walking the legacy documents when
-- the server answers in the old form. A miss fetches that one group-version
-- again, so a CRD created during the run becomes usable; a kind the server
-- still does not know gets an error naming it and the server.
local json = require "atom.json"

local D = {}
D.__index = D

local AGGREGATED_ACCEPT = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
  .. "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"

function D.new(client)
  return setmetatable({ client = client, map = {}, loaded = false, fetched_gv = {} }, D)
end

local function verb_set(list)
  local s = {}
  if type(list) == "table" then
    for _, v in ipairs(list) do s[v] = true end
  end
  return s
end

local function gv_path(gv)
  if gv:find("/", 1, true) then return "/apis/" .. gv end
  return "/api/" .. gv
end

function D:add(group, version, resource, kind, namespaced, verbs)
  local gv = group == "" and version or (group .. "/" .. version)
  local key = gv .. "\0" .. kind
  -- The first resource listed for a kind wins (e.g. not a subresource).
  if not self.map[key] then
    self.map[key] = {
      group = group, version = version, resource = resource, kind = kind,
      namespaced = namespaced, verbs = verb_set(verbs), api_version = gv,
    }
  end
end

function D:add_resource_list(gv, doc)
  local group, version = gv:match("^(.-)/([^/]+)$")
  if not group then group, version = "", gv end
  if type(doc) ~= "table" or type(doc.resources) ~= "table" then return end
  for _, r in ipairs(doc.resources) do
    if type(r.name) == "string" and not r.name:find("/", 1, true) and type(r.kind) == "string" then
      self:add(group, version, r.name, r.kind, r.namespaced == true, r.verbs)
    end
  end
  self.fetched_gv[gv] = true
end

function D:add_aggregated(doc)
  for _, item in ipairs(doc.items or {}) do
    local group = (item.metadata and item.metadata.name) or ""
    for _, v in ipairs(item.versions or {}) do
      for _, r in ipairs(v.resources or {}) do
        local kind = r.responseKind and r.responseKind.kind
        if type(kind) == "string" and type(r.resource) == "string" then
          self:add(group, v.version, r.resource, kind, r.scope == "Namespaced", r.verbs)
        end
      end
      self.fetched_gv[group == "" and v.version or (group .. "/" .. v.version)] = true
    end
  end
end

-- Fetches many GETs at once through the client's pipeline.
local function get_many(client, paths, accept)
  local reqs = {}
  for i, p in ipairs(paths) do
    reqs[i] = { method = "GET", path = p, accept = accept, what = "discover " .. p }
  end
  return client:request_many(reqs)
end

function D:load()
  local c = self.client
  local roots = get_many(c, { "/api", "/apis" }, AGGREGATED_ACCEPT)
  local legacy_gvs = {}
  for i, root in ipairs { "/api", "/apis" } do
    local res = roots[i]
    if res.err then return nil, res.err end
    local doc = res.body
    if type(doc) ~= "table" then
      return nil, c:make_error("discover " .. root, 0, nil, "the answer is not JSON")
    end
    if doc.kind == "APIGroupDiscoveryList" then
      self:add_aggregated(doc)
    elseif root == "/api" then
      for _, v in ipairs(doc.versions or {}) do legacy_gvs[#legacy_gvs + 1] = v end
    else
      for _, g in ipairs(doc.groups or {}) do
        for _, v in ipairs(g.versions or {}) do legacy_gvs[#legacy_gvs + 1] = v.groupVersion end
      end
    end
  end
  if #legacy_gvs > 0 then
    local paths = {}
    for i, gv in ipairs(legacy_gvs) do paths[i] = gv_path(gv) end
    local docs = get_many(c, paths)
    for i, gv in ipairs(legacy_gvs) do
      local res = docs[i]
      -- A broken aggregated API (503) must not hide every other group.
      if not res.err then self:add_resource_list(gv, res.body) end
    end
  end
  self.loaded = true
  return true
end

-- Re-fetches one group-version (the CRD-created-during-the-run case).
function D:refresh_gv(gv)
  local status, body = self.client:request { method = "GET", path = gv_path(gv), what = "discover " .. gv }
  if status and type(body) == "table" then self:add_resource_list(gv, body) end
end

function D:resource_for(api_version, kind)
  if type(api_version) ~= "string" or api_version == "" or type(kind) ~= "string" or kind == "" then
    return nil, self.client:make_error("look up a resource", 0, nil,
      ("an object needs apiVersion and kind (got %q, %q)"):format(tostring(api_version), tostring(kind)))
  end
  if not self.loaded then
    local ok, lerr = self:load()
    if not ok then return nil, lerr end
  end
  local key = api_version .. "\0" .. kind
  local info = self.map[key]
  if info then return info end
  self:refresh_gv(api_version)
  info = self.map[key]
  if info then return info end
  return nil, self.client:make_error(("find kind %q in %s"):format(kind, api_version), 404, nil,
    ("the server does not know kind %q in apiVersion %q"):format(kind, api_version))
end

function D:invalidate()
  self.map, self.loaded, self.fetched_gv = {}, false, {}
end

D.AGGREGATED_ACCEPT = AGGREGATED_ACCEPT
D.json = json
return D
