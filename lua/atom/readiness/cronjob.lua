-- CronJob (batch/v1): ready once it exists; its runs are separate Jobs. The message
-- mentions a suspended schedule and a last run that seems to have failed.
local u = require "atom.readiness.util"

return function(obj)
  local st = u.tbl(obj.status)
  if u.tbl(obj.spec).suspend == true then return "ready", "cronjob is suspended" end
  local scheduled, succeeded = st.lastScheduleTime, st.lastSuccessfulTime
  if type(scheduled) ~= "string" then return "ready", "not scheduled yet" end
  local active = #u.tbl(st.active)
  -- RFC 3339 timestamps from the API server share one format, so they sort as strings.
  if active == 0 and (type(succeeded) ~= "string" or succeeded < scheduled) then
    return "ready", "last run at " .. scheduled .. " has not succeeded"
  end
  return "ready", string.format("last scheduled at %s, %d active", scheduled, active)
end
