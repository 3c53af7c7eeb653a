-- Job (batch/v1): ready only on Complete=True; failed on Failed=True or FailureTarget=True
-- (Kubernetes 1.31+ sets the latter first). A suspended Job is ready: it was asked not to
-- run, and waiting would only hang until the deadline.
local u = require "atom.readiness.util"

return function(obj)
  local st = u.tbl(obj.status)
  for _, t in ipairs({ "Failed", "FailureTarget" }) do
    local c = u.condition(obj, t)
    if u.is(c, "True") then return "failed", u.describe(c) end
  end
  if u.is(u.condition(obj, "Complete"), "True") then
    return "ready", string.format("job completed (%d succeeded)", u.int(st.succeeded))
  end
  if u.tbl(obj.spec).suspend == true or u.is(u.condition(obj, "Suspended"), "True") then
    return "ready", "job is suspended"
  end
  return "progressing", string.format("%d active, %d succeeded, %d failed of %d completions",
    u.int(st.active), u.int(st.succeeded), u.int(st.failed), u.int(u.tbl(obj.spec).completions, 1))
end
