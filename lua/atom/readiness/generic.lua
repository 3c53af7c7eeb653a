-- Any kind without a rule of its own, custom resources included: the Ready condition
-- decides when there is one (Ready=False is progressing: it often means "not yet"), and
-- a Ready condition written for an older generation does not count. With no Ready
-- condition the object is ready once it exists, unless ctx.expects_conditions says its
-- CRD declares status.conditions: then it waits for its controller to report.
local u = require "atom.readiness.util"

return function(obj, ctx)
  local c = u.condition(obj, "Ready")
  if c then
    local gen, cgen = u.tbl(obj.metadata).generation, c.observedGeneration
    if type(gen) == "number" and type(cgen) == "number" and cgen < gen then
      return "progressing", string.format("Ready condition is for generation %d, not %d", u.int(cgen), u.int(gen))
    end
    if u.is(c, "True") then return "ready", u.describe(c) end
    return "progressing", u.describe(c)
  end
  local conds = u.tbl(obj.status).conditions
  if ctx and ctx.expects_conditions and (type(conds) ~= "table" or #conds == 0) then
    return "progressing", "waiting for the controller to report status"
  end
  return "ready", "exists"
end
