-- atom.policy: what to do when a release fails. A policy is
--   function(failure) -> "rollback" | "fail" | "retry"
-- where failure = { state = "Cancelled" | "Deadline" | "Error", reason = string,
--   attempt = 1 for the first try, not_ready = { {key=, state=, message=}, ... } }.
-- The state machine only offers transitions its table allows; a policy picks one of them.
local policy = {}

local ANSWERS = { rollback = true, fail = true, retry = true }
local STATES = { Cancelled = true, Deadline = true, Error = true }

-- Names accepted where a policy is expected. "retry" alone retries once, then rolls back.
local NAMED = {
  rollback = function() return require "atom.policy.rollback" end,
  fail = function() return require "atom.policy.fail" end,
  retry = function() return require "atom.policy.retry" { times = 1 } end,
}

-- nil -> the rollback policy; a name -> that ready-made policy; a function -> itself.
function policy.resolve(spec)
  if spec == nil then return require "atom.policy.rollback" end
  if type(spec) == "function" then return spec end
  if type(spec) == "string" and NAMED[spec] then return NAMED[spec]() end
  if type(spec) == "string" then
    error(string.format("unknown policy %q (want \"rollback\", \"fail\", \"retry\" or a function)", spec), 2)
  end
  error("a policy must be a name or a function, got " .. type(spec), 2)
end

local function show(v)
  if type(v) == "string" then return string.format("%q", v) end
  return tostring(v)
end

-- Calls the policy (anything resolve accepts) and checks its answer. A cancel is never retried: "retry" after
-- Cancelled becomes "rollback". Errors raised by the policy propagate to the caller.
function policy.decide(fn, failure)
  if type(failure) ~= "table" or not STATES[failure.state] then
    error("policy.decide: failure.state must be Cancelled, Deadline or Error, got "
      .. show(type(failure) == "table" and failure.state or failure), 2)
  end
  local answer = policy.resolve(fn)(failure)
  if not ANSWERS[answer] then
    error(string.format("policy returned %s (want \"rollback\", \"fail\" or \"retry\")", show(answer)), 2)
  end
  if answer == "retry" and failure.state == "Cancelled" then return "rollback" end
  return answer
end

return policy
