-- Request counters exported on /metrics in the Prometheus text format.
local M = {}
M.__index = M

function M.new()
  local self = setmetatable({}, M)
  self:reset()
  return self
end

function M:reset()
  self.counts = {}
  self.cpu0 = os.clock()
end

-- kube-apiserver labels requests by HTTP-ish verb, not by the API verb: a create is POST,
-- an update PUT, a server-side apply APPLY, a list LIST.
local METRIC_VERB = {
  get = "GET", list = "LIST", watch = "WATCH", create = "POST", update = "PUT", patch = "PATCH",
  apply = "APPLY", delete = "DELETE", deletecollection = "DELETECOLLECTION",
}

-- The label text of each (verb, resource, code), made once: counting runs on every request.
local keys = {}
function M:count(verb, resource, code)
  verb = METRIC_VERB[verb] or string.upper(verb or "")
  resource, code = resource or "", code or 0
  local by_res = keys[verb]
  if not by_res then by_res = {} keys[verb] = by_res end
  local by_code = by_res[resource]
  if not by_code then by_code = {} by_res[resource] = by_code end
  local key = by_code[code]
  if not key then
    key = string.format('verb="%s",resource="%s",code="%d"', verb, resource, code)
    by_code[code] = key
  end
  self.counts[key] = (self.counts[key] or 0) + 1
end

function M:total(verb, resource)
  local n = 0
  for k, v in pairs(self.counts) do
    if (not verb or k:find('verb="' .. (METRIC_VERB[verb] or verb) .. '"', 1, true))
      and (not resource or k:find('resource="' .. resource .. '"', 1, true)) then n = n + v end
  end
  return n
end

function M:render()
  local keys = {}
  for k in pairs(self.counts) do keys[#keys + 1] = k end
  table.sort(keys)
  local out = {
    "# HELP apiserver_request_total Counter of apiserver requests broken out for each verb, resource and HTTP response code.",
    "# TYPE apiserver_request_total counter",
  }
  for _, k in ipairs(keys) do out[#out + 1] = string.format("apiserver_request_total{%s} %d", k, self.counts[k]) end
  out[#out + 1] = "# HELP atom_sim_cpu_seconds_total CPU time used by the simulator since the last reset."
  out[#out + 1] = "# TYPE atom_sim_cpu_seconds_total counter"
  out[#out + 1] = string.format("atom_sim_cpu_seconds_total %.6f", os.clock() - self.cpu0)
  return table.concat(out, "\n") .. "\n"
end

return M
