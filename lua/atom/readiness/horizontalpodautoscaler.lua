-- HorizontalPodAutoscaler (autoscaling/v2 and v1): ready once it exists. Failed only on
-- configuration errors (an invalid selector, a target that cannot be scaled); metric
-- failures are shown in the message, because metrics-server warms up slowly.
-- autoscaling/v1 keeps its conditions as JSON in an annotation.
local u = require "atom.readiness.util"
local cjson = require "cjson"

local FATAL = { FailedGetScale = true, InvalidSelector = true }

local function conditions(obj)
  local list = u.tbl(obj.status).conditions
  if type(list) == "table" then return list end
  local raw = u.tbl(u.tbl(obj.metadata).annotations)["autoscaling.alpha.kubernetes.io/conditions"]
  local ok, decoded = pcall(cjson.decode, type(raw) == "string" and raw or "[]")
  return ok and u.tbl(decoded) or {}
end

return function(obj)
  local notes = {}
  for _, c in ipairs(conditions(obj)) do
    c = u.tbl(c)
    if FATAL[c.reason] then return "failed", u.describe(c) end
    if u.is(c, "False") and c.type ~= "ScalingLimited" then notes[#notes + 1] = u.describe(c) end
  end
  local st = u.tbl(obj.status)
  local msg = string.format("%d current, %d desired replicas", u.int(st.currentReplicas), u.int(st.desiredReplicas))
  if #notes > 0 then msg = msg .. " (" .. table.concat(notes, "; ") .. ")" end
  return "ready", msg
end
