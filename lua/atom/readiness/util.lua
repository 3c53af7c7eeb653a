-- Small helpers shared by the per-kind readiness checks.
--
-- Live objects come from lua-cjson, so any field may be cjson.null (a userdata) or have
-- an unexpected type; these helpers turn such values into safe defaults so each check
-- can stay a few readable lines. API status counts are omit-empty: a missing count is 0.
local util = {}

-- A table, or an empty one when the value is absent, null or not a table.
function util.tbl(value)
  if type(value) == "table" then return value end
  return {}
end

-- A number, or the default (0 unless given) when absent or not a number.
function util.int(value, default)
  if type(value) == "number" then return math.tointeger(value) or value end
  return default or 0
end

-- The condition of the given type in status.conditions, compared case-insensitively
-- as kubectl wait does; nil when there is none.
function util.condition(obj, ctype)
  local want = ctype:lower()
  for _, c in ipairs(util.tbl(util.tbl(obj.status).conditions)) do
    if type(c) == "table" and type(c.type) == "string" and c.type:lower() == want then
      return c
    end
  end
  return nil
end

-- True when the condition exists with the given status ("True", "False", "Unknown").
function util.is(cond, status)
  return cond ~= nil and type(cond.status) == "string" and cond.status:lower() == status:lower()
end

-- "Type=Status: Reason: message" for messages, leaving out what the condition lacks.
function util.describe(cond)
  local s = tostring(cond.type) .. "=" .. tostring(cond.status)
  if type(cond.reason) == "string" and cond.reason ~= "" then s = s .. ": " .. cond.reason end
  if type(cond.message) == "string" and cond.message ~= "" then s = s .. ": " .. cond.message end
  return s
end

-- For kinds run by a controller: has it reported on the current spec? The dispatcher
-- already rejects a stale observedGeneration; this also rejects a missing one, because
-- a brand-new object with empty status would otherwise pass count tests such as 0 >= 0.
function util.observed(obj)
  local gen = util.tbl(obj.metadata).generation
  local seen = util.tbl(obj.status).observedGeneration
  if type(gen) ~= "number" then return true end
  if type(seen) ~= "number" or seen == 0 then
    return false, "waiting for the controller to observe the object"
  end
  if seen < gen then
    return false, string.format("waiting for the controller to observe generation %d (has seen %d)",
      util.int(gen), util.int(seen))
  end
  return true
end

-- The first of pods (only those keep(pod) accepts, when given) that cannot start, by the
-- Pod check: "pod NAME: why", or nil. How the workload checks fail fast with ctx.related.
function util.failing_pod(pods, keep)
  local pod = require "atom.readiness.pod" -- here, not above: pod.lua requires this module
  for _, p in ipairs(util.tbl(pods)) do
    if not keep or keep(p) then
      local state, msg = pod(p)
      if state == "failed" then return string.format("pod %s: %s", tostring(util.tbl(p.metadata).name), msg) end
    end
  end
  return nil
end

return util
