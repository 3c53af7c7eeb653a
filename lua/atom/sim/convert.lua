-- Conversion between served versions of one resource. Objects are stored in the storage
-- (preferred) version; requests in another version are converted on the way in and out.
-- Only HorizontalPodAutoscaler has two shapes (autoscaling/v2 stored, v1 served); every other
-- kind just changes apiVersion. Functions return new tables (shallow where nothing changes).
local util = require "atom.sim.util"

local M = {}

local function shallow(t)
  local o = {}
  for k, v in pairs(t or {}) do o[k] = v end
  return o
end

local function hpa_v1_to_v2(obj)
  local o = shallow(obj)
  o.apiVersion = "autoscaling/v2"
  local spec = shallow(obj.spec)
  local cpu = spec.targetCPUUtilizationPercentage
  spec.targetCPUUtilizationPercentage = nil
  if cpu ~= nil then
    spec.metrics = util.array({ { type = "Resource", resource = { name = "cpu",
      target = { type = "Utilization", averageUtilization = cpu } } } })
  end
  o.spec = spec
  if type(obj.status) == "table" then
    local st = shallow(obj.status)
    local cur = st.currentCPUUtilizationPercentage
    st.currentCPUUtilizationPercentage = nil
    if cur ~= nil then
      st.currentMetrics = util.array({ { type = "Resource", resource = { name = "cpu",
        current = { averageUtilization = cur } } } })
    end
    o.status = st
  end
  return o
end

local function hpa_v2_to_v1(obj)
  local o = shallow(obj)
  o.apiVersion = "autoscaling/v1"
  local spec = shallow(obj.spec)
  for _, m in ipairs(spec.metrics or {}) do
    local r = type(m) == "table" and m.resource
    if m.type == "Resource" and type(r) == "table" and r.name == "cpu" and type(r.target) == "table"
      and r.target.averageUtilization ~= nil then
      spec.targetCPUUtilizationPercentage = r.target.averageUtilization
    end
  end
  spec.metrics, spec.behavior = nil, nil
  o.spec = spec
  if type(obj.status) == "table" then
    local st = shallow(obj.status)
    for _, m in ipairs(st.currentMetrics or {}) do
      local r = type(m) == "table" and m.resource
      if m.type == "Resource" and type(r) == "table" and r.name == "cpu" and type(r.current) == "table" then
        st.currentCPUUtilizationPercentage = r.current.averageUtilization
      end
    end
    st.currentMetrics, st.conditions = nil, nil
    o.status = st
  end
  return o
end

-- obj as the client of `api_version` sees it. Returns obj itself when nothing changes.
function M.to_version(info, obj, api_version)
  if obj.apiVersion == api_version then return obj end
  if info.rk == "horizontalpodautoscalers.autoscaling" then
    if api_version == "autoscaling/v1" then return hpa_v2_to_v1(obj) end
    if obj.apiVersion == "autoscaling/v1" then return hpa_v1_to_v2(obj) end
  end
  local o = shallow(obj)
  o.apiVersion = api_version
  return o
end

-- obj (sent as `api_version`) in the storage version.
function M.to_storage(info, obj, storage_api_version)
  if info.rk == "horizontalpodautoscalers.autoscaling" and obj.apiVersion == "autoscaling/v1" then
    return hpa_v1_to_v2(obj)
  end
  obj.apiVersion = storage_api_version
  return obj
end

return M
