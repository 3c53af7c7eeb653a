-- Job controller: runs pods to completion (completions/parallelism), counts
-- active/succeeded/failed/ready, sets SuccessCriteriaMet+Complete or
-- FailureTarget+Failed (BackoffLimitExceeded, DeadlineExceeded) like 1.31+,
-- honours suspend, activeDeadlineSeconds and ttlSecondsAfterFinished.
--
-- Ownership: the owner->pods index and TTL/deadline timers live in this
-- closure (util.workload).

local util = require("atom.sim.controllers.util")

local RK = "jobs.batch"
local IDX = "batch.kubernetes.io/job-completion-index"

-- "0-2,4" for indexes {0,1,2,4}, as status.completedIndexes writes them.
local function index_ranges(set, n)
  local parts, i = {}, 0
  while i < n do
    if set[i] then
      local j = i
      while j + 1 < n and set[j + 1] do j = j + 1 end
      parts[#parts + 1] = (i == j) and tostring(i) or (i .. "-" .. j)
      i = j + 1
    else
      i = i + 1
    end
  end
  if #parts == 0 then return nil end
  return table.concat(parts, ",")
end

-- When the Job finished (nil while it runs), and how.
local function finished_at(job)
  local how, c = util.job_finished(job)
  if not how then return nil end
  return util.parse_time((job.status or {}).completionTime) or util.parse_time(c.lastTransitionTime), how
end

-- A Job's end is two conditions with one reason: the target (SuccessCriteriaMet
-- or FailureTarget) that 1.31+ sets first, then the final one.
local function conclude(conds, target, final, reason, message, now)
  util.set_condition(conds, target, "True", reason, message, now)
  util.set_condition(conds, final, "True", reason, message, now)
end

return function(sim)
  local store, clock = sim.store, sim.clock
  local recorder = util.recorder(sim, "job-controller")
  local w = util.workload(sim, RK, "Job")
  local timers = w.timers

  local function schedule_ttl(job)
    local spec = job.spec or {}
    local ttl = spec.ttlSecondsAfterFinished
    if ttl == nil then return end
    local at = finished_at(job)
    if not at then return end
    local ns, name, uid = job.metadata.namespace, job.metadata.name, job.metadata.uid
    local function expire()
      local cur = store:get(RK, ns, name)
      if cur and cur.metadata.uid == uid then
        store:delete(RK, ns, name, { propagation = "Background" })
      end
    end
    local left = at + ttl - clock:now()
    if left <= 0 and util.instant(sim) then
      expire()
    elseif not timers.has(uid) then
      timers.set(uid, math.max(left, 0), expire)
    end
  end

  local function reconcile(ns, name)
    local job = store:get(RK, ns, name)
    if not job or job.metadata.deletionTimestamp then return end
    if finished_at(job) then
      schedule_ttl(job)
      return
    end
    local spec = job.spec or {}
    local tnow = clock:now()
    local now = clock:rfc3339(tnow)
    local parallelism = spec.parallelism
    if parallelism == nil then parallelism = 1 end
    local completions = spec.completions
    local backoff = spec.backoffLimit
    if backoff == nil then backoff = 6 end
    local st = util.copy(sim, job.status or {})
    st.conditions = st.conditions or {}

    local indexed = spec.completionMode == "Indexed" and completions ~= nil
    local done_idx, busy_idx = {}, {}
    local function index_of(p)
      return tonumber(((p.metadata.annotations or {})[IDX]))
    end
    local active, succeeded, failed, ready = {}, 0, 0, 0
    for _, p in ipairs(w.children(job)) do
      local phase = (p.status or {}).phase
      if indexed and phase == "Succeeded" and index_of(p) then
        done_idx[index_of(p)] = true
      elseif indexed and phase ~= "Failed" and index_of(p) then
        busy_idx[index_of(p)] = true
      end
      if phase == "Succeeded" then
        succeeded = succeeded + 1
      elseif phase == "Failed" then
        failed = failed + 1
      elseif p.metadata.deletionTimestamp == nil then
        active[#active + 1] = p
        if util.pod_ready(p) then ready = ready + 1 end
      end
    end
    local function stop_active()
      for _, p in ipairs(active) do
        store:delete("pods", ns, p.metadata.name, { propagation = "Background" })
      end
      active, ready = {}, 0
    end
    local function fail(reason, message)
      stop_active()
      conclude(st.conditions, "FailureTarget", "Failed", reason, message, now)
      recorder.event(job, "Warning", reason, message)
    end

    if spec.suspend then
      stop_active()
      util.set_condition(st.conditions, "Suspended", "True", "JobSuspended", "Job suspended", now)
    else
      local sus = util.get_condition({ status = st }, "Suspended")
      if sus and sus.status == "True" then
        util.set_condition(st.conditions, "Suspended", "False", "JobResumed", "Job resumed", now)
      end
      st.startTime = st.startTime or now
      local started = util.parse_time(st.startTime) or tnow
      local ads = spec.activeDeadlineSeconds
      local done = completions == nil and succeeded > 0 or (completions ~= nil and succeeded >= completions)
      if indexed then
        local n = 0
        for _ in pairs(done_idx) do n = n + 1 end
        done = n >= completions
      end
      if done then
        stop_active()
        conclude(st.conditions, "SuccessCriteriaMet", "Complete", "CompletionsReached",
          "Reached expected number of succeeded pods", now)
        st.completionTime = now
        -- The event outlives the Job, so a Job removed by ttlSecondsAfterFinished=0 can
        -- still be told apart from one that never finished (the job controller sends it too).
        recorder.event(job, "Normal", "Completed", "Job completed")
      elseif failed > backoff then
        fail("BackoffLimitExceeded", "Job has reached the specified backoff limit")
      elseif ads and started + ads <= tnow then
        fail("DeadlineExceeded", "Job was active longer than specified deadline")
      else
        local want = parallelism
        if completions ~= nil then want = math.min(parallelism, completions - succeeded) end
        local tmpl = spec.template or {}
        local uid = job.metadata.uid
        -- Indexed Jobs run each completion index once: the lowest indexes
        -- neither done nor running go next.
        local next_idx = 0
        local function free_index()
          while next_idx < completions and (done_idx[next_idx] or busy_idx[next_idx]) do
            next_idx = next_idx + 1
          end
          if next_idx >= completions then return nil end
          busy_idx[next_idx] = true
          return next_idx
        end
        for _ = #active + 1, want do
          local labels = {
            ["batch.kubernetes.io/controller-uid"] = uid,
            ["batch.kubernetes.io/job-name"] = name,
            ["controller-uid"] = uid,
            ["job-name"] = name,
          }
          local idx = indexed and free_index() or nil
          if indexed and not idx then break end
          if idx then labels[IDX] = tostring(idx) end
          local pod = util.pod_from_template(sim, tmpl, job, "batch/v1", "Job", labels)
          pod.spec.restartPolicy = (tmpl.spec or {}).restartPolicy or "Never"
          local prefix = name .. "-"
          if idx then
            pod.metadata.annotations = pod.metadata.annotations or {}
            pod.metadata.annotations[IDX] = tostring(idx)
            pod.spec.hostname = name .. "-" .. idx
            prefix = name .. "-" .. idx .. "-"
          end
          local created = util.create_named(sim, "pods", pod, prefix)
          if created then active[#active + 1] = created end
        end
        if ads then
          w.wake(job, math.max(started + ads - tnow, 0))
        end
      end
    end

    if indexed then
      st.completedIndexes = index_ranges(done_idx, completions)
      succeeded = 0
      for _ in pairs(done_idx) do succeeded = succeeded + 1 end
    end
    st.active = #active > 0 and #active or nil
    st.succeeded = succeeded > 0 and succeeded or nil
    st.failed = failed > 0 and failed or nil
    st.ready = ready
    st.terminating = 0
    if #st.conditions == 0 then st.conditions = nil end
    job = util.save_status(sim, RK, job, st)
    local at, how = finished_at(job)
    if at then
      if how == "Complete" then w.marks.mark(job) end
      timers.cancel(job.metadata.uid)
      schedule_ttl(job)
    end
  end

  w.run(reconcile, function(obj) recorder.forget(obj.metadata.uid) end)
end
