-- A minimal OpenAPI v3: the index and one document per group-version listing, for every kind,
-- a `patch` operation with the `fieldValidation` parameter (what kubectl's --validate=strict
-- probes for). Cached per registry generation; hashes are content hashes so kubectl's cache
-- keys stay stable.
local util = require "atom.sim.util"

local M = {}
M.__index = M

function M.new(registry)
  return setmetatable({ registry = registry, gen = -1, docs = {}, index = nil }, M)
end

local function gv_key(group, version)
  if group == "" then return "api/" .. version end
  return "apis/" .. group .. "/" .. version
end

function M:_build()
  if self.gen == self.registry.gen then return end
  self.gen = self.registry.gen
  self.docs = {}
  local paths = {}
  for _, g in ipairs(self.registry.groups) do
    for _, v in ipairs(g.versions) do
      local key = gv_key(g.name, v)
      local doc_paths = {}
      for _, i in ipairs(self.registry:resources_of(g.name, v)) do
        local base = "/" .. key .. (i.namespaced and "/namespaces/{namespace}/" or "/") .. i.resource
        local gvk = { group = i.group, version = v, kind = i.kind }
        local params = util.array({
          { name = "fieldValidation", ["in"] = "query", schema = { type = "string" },
            description = "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields." },
          { name = "fieldManager", ["in"] = "query", schema = { type = "string" } },
          { name = "dryRun", ["in"] = "query", schema = { type = "string" } },
          { name = "force", ["in"] = "query", schema = { type = "boolean" } },
        })
        doc_paths[base .. "/{name}"] = {
          patch = { ["x-kubernetes-action"] = "patch", ["x-kubernetes-group-version-kind"] = gvk,
            operationId = "patch" .. i.kind, parameters = params,
            responses = { ["200"] = { description = "OK" }, ["201"] = { description = "Created" } } },
          put = { ["x-kubernetes-action"] = "put", ["x-kubernetes-group-version-kind"] = gvk,
            parameters = params, responses = { ["200"] = { description = "OK" } } },
        }
        doc_paths[base] = {
          post = { ["x-kubernetes-action"] = "post", ["x-kubernetes-group-version-kind"] = gvk,
            parameters = params, responses = { ["201"] = { description = "Created" } } },
        }
      end
      local body = util.encode({ openapi = "3.0.0",
        info = { title = "Kubernetes", version = "v1.32.0" }, paths = doc_paths,
        components = { schemas = {} } })
      local h = util.hash(body) .. util.hash(body:reverse())
      self.docs[key] = body
      paths[key] = { serverRelativeURL = "/openapi/v3/" .. key .. "?hash=" .. h }
    end
  end
  self.index = util.encode({ paths = paths })
end

function M:get_index()
  self:_build()
  return self.index
end

-- key like "apis/apps/v1"; returns JSON or nil.
function M:get_doc(key)
  self:_build()
  return self.docs[key]
end

return M
