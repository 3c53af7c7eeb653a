-- atom.release.jobs: runs a Kubernetes Job to completion for hooks (ctx.run_job).
--
-- jobs.run(kube, job, opts) -> true | nil, message
--   kube  the atom.kube client (create, get, list, delete, watch, poll)
--   job   a batch/v1 Job table (the caller's; it is copied, never changed)
--   opts  { timeout = seconds (default 300), keep = bool (default false: the Job and its
--           pods are deleted once it has finished, failed or timed out), namespace =
--           default namespace, log = function(msg) }
-- A Job left over by an earlier run under the same name is deleted first (a finished
-- Job would otherwise answer for this run). Waiting is by watch on that one Job; on
-- failure or timeout the message carries the Job's condition and each pod's container
-- waiting/terminated reasons — the nearest thing to its logs the API gives.
local jobs = {}

local function deep_copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = deep_copy(x) end
  return setmetatable(out, getmetatable(v))
end

local function condition(obj, ctype)
  local st = type(obj) == "table" and type(obj.status) == "table" and obj.status or {}
  for _, c in ipairs(type(st.conditions) == "table" and st.conditions or {}) do
    if type(c) == "table" and c.type == ctype and c.status == "True" then return c end
  end
  return nil
end

-- "Complete" | "Failed" | nil, with the deciding condition.
local function outcome(obj)
  local failed = condition(obj, "Failed")
  if failed then return "Failed", failed end
  local done = condition(obj, "Complete")
  if done then return "Complete", done end
  return nil
end

local function describe_state(name, state)
  if type(state) ~= "table" then return nil end
  if type(state.waiting) == "table" and state.waiting.reason then
    return string.format("%s waiting: %s%s", name, state.waiting.reason,
      state.waiting.message and (" (" .. tostring(state.waiting.message) .. ")") or "")
  end
  local t = state.terminated
  if type(t) == "table" and (t.reason or t.exitCode) then
    return string.format("%s terminated: %s (exit code %s)%s", name, tostring(t.reason or "?"),
      tostring(math.tointeger(t.exitCode) or t.exitCode or "?"), t.message and (": " .. tostring(t.message)) or "")
  end
  return nil
end

-- One line per pod of the Job that did not succeed.
function jobs.pod_reasons(kube, namespace, name)
  local items = kube:list("v1", "Pod", namespace, { labelSelector = "job-name=" .. name })
  if type(items) ~= "table" then return {} end
  local lines = {}
  for _, pod in ipairs(items) do
    local st = type(pod.status) == "table" and pod.status or {}
    if st.phase ~= "Succeeded" then
      local parts = {}
      for _, field in ipairs({ "initContainerStatuses", "containerStatuses" }) do
        for _, cs in ipairs(type(st[field]) == "table" and st[field] or {}) do
          local d = describe_state("container " .. tostring(cs.name), cs.state)
            or describe_state("container " .. tostring(cs.name) .. " (last)", cs.lastState)
          if d then parts[#parts + 1] = d end
        end
      end
      if #parts == 0 and st.reason then parts[1] = tostring(st.reason) .. (st.message and (": " .. st.message) or "") end
      if #parts == 0 then parts[1] = "phase " .. tostring(st.phase or "unknown") end
      lines[#lines + 1] = string.format("pod %s: %s", tostring(pod.metadata and pod.metadata.name),
        table.concat(parts, "; "))
    end
  end
  table.sort(lines)
  return lines
end

-- Puts events polled on behalf of other watchers back in front of the client's queue.
function jobs.hand_back(kube, events)
  if #events == 0 then return end
  if type(kube.requeue) == "function" then return kube:requeue(events) end
  if type(kube.events) == "table" then
    for i = #events, 1, -1 do table.insert(kube.events, 1, events[i]) end
  end
end

local function clean_up(kube, namespace, name, keep)
  if keep then return end
  kube:delete("batch/v1", "Job", namespace, name, { propagation = "Background" })
end

local function gone(kube, namespace, name, until_t, core)
  while core.monotonic() < until_t do
    local obj, err = kube:get("batch/v1", "Job", namespace, name)
    if not obj and err and err.code == 404 then return true end
    core.sleep(0.2)
  end
  return false
end

function jobs.run(kube, job, opts)
  opts = opts or {}
  local core = require "atom.core"
  if type(job) ~= "table" or job.kind ~= "Job" or type(job.metadata) ~= "table"
      or type(job.metadata.name) ~= "string" then
    return nil, "run_job: want a batch/v1 Job table with metadata.name"
  end
  job = deep_copy(job)
  job.apiVersion = job.apiVersion or "batch/v1"
  local ns = job.metadata.namespace or opts.namespace or kube.namespace or "default"
  job.metadata.namespace = ns
  local name = job.metadata.name
  local label = string.format("Job %s/%s", ns, name)
  local timeout = opts.timeout or 300
  local until_t = core.monotonic() + timeout
  local log = opts.log or function() end

  local live, err = kube:create(job)
  if not live and err and err.code == 409 then
    log(label .. " exists from an earlier run; deleting it first")
    kube:delete("batch/v1", "Job", ns, name, { propagation = "Foreground" })
    if not gone(kube, ns, name, until_t, core) then
      return nil, label .. " from an earlier run could not be deleted in time"
    end
    live, err = kube:create(job)
  end
  if not live then return nil, string.format("cannot create %s: %s", label, tostring(err)) end
  log(label .. " created")

  -- The client is shared with the engine: events for its watchers that arrive while the
  -- hook waits are handed back afterwards, in order, instead of being lost.
  local foreign = {}
  local result, cond = outcome(live)
  local watcher = kube:watch("batch/v1", "Job", ns, { fieldSelector = "metadata.name=" .. name,
    resourceVersion = live.metadata and live.metadata.resourceVersion })
  while not result do
    local left = until_t - core.monotonic()
    if left <= 0 then break end
    if not watcher or watcher.closed then
      -- The server refused the watch (or it ended for good): read the Job instead.
      local obj = kube:get("batch/v1", "Job", ns, name)
      result, cond = outcome(obj)
      if obj == nil and not result then
        result, cond = "Failed", { reason = "Deleted", message = "the Job disappeared while atom waited for it" }
      end
      if result then break end
    end
    local events = kube:poll(math.min(left, 1)) or {}
    for _, ev in ipairs(events) do
      if ev.watcher ~= watcher then
        foreign[#foreign + 1] = ev
      elseif result then -- already decided; later events of ours are of no interest
      elseif type(ev.object) == "table" then
        if ev.type == "DELETED" then
          result, cond = "Failed", { reason = "Deleted", message = "the Job was deleted while atom waited for it" }
        else
          result, cond = outcome(ev.object)
        end
      end
    end
  end
  if watcher and watcher.close then watcher:close() end
  jobs.hand_back(kube, foreign)

  if result == "Complete" then
    log(label .. " completed")
    clean_up(kube, ns, name, opts.keep)
    return true
  end
  local reasons = jobs.pod_reasons(kube, ns, name)
  local head
  if result == "Failed" then
    head = string.format("%s failed: %s%s", label, tostring(cond.reason or "Failed"),
      cond.message and (": " .. tostring(cond.message)) or "")
  else
    head = string.format("%s did not finish within %g s", label, timeout)
  end
  clean_up(kube, ns, name, opts.keep)
  if #reasons > 0 then head = head .. "\n  " .. table.concat(reasons, "\n  ") end
  return nil, head
end

return jobs
