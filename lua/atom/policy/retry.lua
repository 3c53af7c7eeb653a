-- retry{ times = N, ["then"] = policy } -> policy
-- Retries the apply after a Deadline or Error until N retries have been made (attempt is
-- 1 for the first try, so attempts 1..N may be retried), then asks the `then` policy
-- (a function, or a name: "rollback" by default, "fail"). A cancel is never retried: it
-- goes straight to the `then` policy.
return function(opts)
  if type(opts) ~= "table" then
    error("retry{ times = N, then = policy }: expected a table, got " .. type(opts), 2)
  end
  local times = opts.times
  if math.type(times) ~= "integer" and not (type(times) == "number" and times == math.floor(times)) then
    error("retry: times must be a whole number, got " .. tostring(times), 2)
  end
  if times < 0 then error("retry: times must not be negative, got " .. tostring(times), 2) end
  -- Required here, not at load time: atom.policy itself loads this module.
  local after = require("atom.policy").resolve(opts["then"])
  return function(failure)
    if failure.state ~= "Cancelled" and (tonumber(failure.attempt) or 1) <= times then
      return "retry"
    end
    return after(failure)
  end
end
