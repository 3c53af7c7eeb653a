-- CronJob controller: a 5-field cron schedule (`*`, `*/N`, ranges, lists,
-- month/day names, @hourly-style macros; UTC), Jobs named
-- <cron>-<scheduled minutes since epoch> from jobTemplate, concurrencyPolicy,
-- suspend, history limits, and lastScheduleTime / lastSuccessfulTime / active.
--
-- Ownership: the owner->jobs index, parsed schedules and wake-up timers live in
-- this closure.

local util = require("atom.sim.controllers.util")

local RK = "cronjobs.batch"
local JOB_RK = "jobs.batch"

local MACROS = {
  ["@yearly"] = "0 0 1 1 *", ["@annually"] = "0 0 1 1 *", ["@monthly"] = "0 0 1 * *",
  ["@weekly"] = "0 0 * * 0", ["@daily"] = "0 0 * * *", ["@midnight"] = "0 0 * * *",
  ["@hourly"] = "0 * * * *",
}
local NAMES = {
  jan = 1, feb = 2, mar = 3, apr = 4, may = 5, jun = 6, jul = 7, aug = 8, sep = 9, oct = 10,
  nov = 11, dec = 12, sun = 0, mon = 1, tue = 2, wed = 3, thu = 4, fri = 5, sat = 6,
}

local function value(s)
  return tonumber(s) or NAMES[s:lower()]
end

-- One cron field -> set of allowed values, and whether it was `*`.
local function parse_field(f, lo, hi)
  local set = {}
  local star = f == "*" or f == "?"
  for part in f:gmatch("[^,]+") do
    local range, step = part:match("^([^/]+)/(%d+)$")
    range = range or part
    step = tonumber(step) or 1
    local a, b
    if range == "*" or range == "?" then
      a, b = lo, hi
    else
      local x, y = range:match("^(%w+)%-(%w+)$")
      if x then
        a, b = value(x), value(y)
      else
        a = value(range)
        b = (part:find("/") and hi) or a
      end
    end
    if not a or not b or step < 1 then return nil end
    for v = a, b, step do
      set[v] = true
    end
  end
  return { set = set, star = star }
end

local function parse(schedule)
  if type(schedule) ~= "string" then return nil end
  schedule = schedule:gsub("^%s*TZ=%S+%s+", ""):gsub("^%s*CRON_TZ=%S+%s+", "")
  schedule = MACROS[schedule:match("^%s*(.-)%s*$")] or schedule
  local f = {}
  for w in schedule:gmatch("%S+") do f[#f + 1] = w end
  if #f ~= 5 then return nil end
  local c = {
    min = parse_field(f[1], 0, 59), hour = parse_field(f[2], 0, 23),
    dom = parse_field(f[3], 1, 31), mon = parse_field(f[4], 1, 12),
    dow = parse_field(f[5], 0, 7),
  }
  for _, v in pairs(c) do if not v then return nil end end
  if c.dow.set[7] then c.dow.set[0] = true end
  return c
end

local function day_matches(c, tm)
  local dom_ok = c.dom.set[tm.day] == true
  local dow_ok = c.dow.set[tm.wday - 1] == true
  if c.dom.star or c.dow.star then return dom_ok and dow_ok end
  return dom_ok or dow_ok
end

-- First scheduled time strictly after t (seconds), searching up to ~5 years.
local function next_after(c, t)
  local x = (math.floor(t / 60) + 1) * 60
  for _ = 1, 100000 do
    local tm = os.date("!*t", x)
    if not c.mon.set[tm.month] or not day_matches(c, tm) then
      x = x - (tm.hour * 3600 + tm.min * 60) + 86400
    elseif not c.hour.set[tm.hour] then
      x = x - tm.min * 60 + 3600
    elseif not c.min.set[tm.min] then
      x = x + 60
    else
      return x
    end
  end
  return nil
end

return function(sim)
  local store, clock = sim.store, sim.clock
  local w = util.workload(sim, RK, "CronJob", JOB_RK)
  local parsed = {}

  local function schedule_of(s)
    local c = parsed[s]
    if c == nil then
      c = parse(s) or false
      parsed[s] = c
    end
    return c or nil
  end

  local function reconcile(ns, name)
    local cj = store:get(RK, ns, name)
    if not cj or cj.metadata.deletionTimestamp then return end
    local spec = cj.spec or {}
    local tnow = clock:now()
    local st = util.copy(sim, cj.status or {})

    local active, ok_jobs, failed_jobs = {}, {}, {}
    local last_success = util.parse_time(st.lastSuccessfulTime)
    for _, j in ipairs(w.children(cj)) do
      local how = util.job_finished(j)
      if how == "Complete" then
        ok_jobs[#ok_jobs + 1] = j
        local ct = util.parse_time((j.status or {}).completionTime)
        if ct and (not last_success or ct > last_success) then last_success = ct end
      elseif how == "Failed" then
        failed_jobs[#failed_jobs + 1] = j
      else
        active[#active + 1] = j
      end
    end

    -- History limits: oldest finished Jobs beyond the limit go.
    local function prune(list, limit)
      table.sort(list, function(a, b)
        return (a.metadata.creationTimestamp or "") < (b.metadata.creationTimestamp or "")
      end)
      for i = 1, #list - limit do
        store:delete(JOB_RK, ns, list[i].metadata.name, { propagation = "Background" })
      end
    end
    prune(ok_jobs, spec.successfulJobsHistoryLimit or 3)
    prune(failed_jobs, spec.failedJobsHistoryLimit or 1)

    local c = schedule_of(spec.schedule)
    if c and not spec.suspend then
      local base = util.parse_time(st.lastScheduleTime) or util.parse_time(cj.metadata.creationTimestamp) or tnow
      local latest
      local t = next_after(c, base)
      for _ = 1, 1000 do
        if not t or t > tnow then break end
        latest = t
        t = next_after(c, t)
      end
      if latest and spec.startingDeadlineSeconds and latest + spec.startingDeadlineSeconds < tnow then
        latest = nil
      end
      local policy = spec.concurrencyPolicy or "Allow"
      if latest and policy == "Forbid" and #active > 0 then
        latest = nil
      end
      if latest then
        if policy == "Replace" then
          for _, j in ipairs(active) do
            store:delete(JOB_RK, ns, j.metadata.name, { propagation = "Background" })
          end
          active = {}
        end
        local tmpl = spec.jobTemplate or {}
        local tmeta = tmpl.metadata or {}
        local annotations = util.copy(sim, tmeta.annotations or {})
        annotations["batch.kubernetes.io/cronjob-scheduled-timestamp"] = clock:rfc3339(latest)
        local job = store:create(JOB_RK, {
          apiVersion = "batch/v1",
          kind = "Job",
          metadata = {
            name = name .. "-" .. math.floor(latest / 60),
            namespace = ns,
            labels = tmeta.labels and util.copy(sim, tmeta.labels) or nil,
            annotations = annotations,
            ownerReferences = { util.owner_ref(cj, "batch/v1", "CronJob") },
          },
          spec = util.copy(sim, tmpl.spec or {}),
        })
        if job then active[#active + 1] = job end
        st.lastScheduleTime = clock:rfc3339(latest)
      end
      local nxt = next_after(c, tnow)
      if nxt then
        w.wake(cj, nxt - tnow)
      end
    else
      w.timers.cancel(cj.metadata.uid)
    end

    local refs = {}
    table.sort(active, function(a, b) return a.metadata.name < b.metadata.name end)
    for _, j in ipairs(active) do
      refs[#refs + 1] = { apiVersion = "batch/v1", kind = "Job", name = j.metadata.name,
        namespace = ns, uid = j.metadata.uid }
    end
    st.active = #refs > 0 and refs or nil
    if last_success then st.lastSuccessfulTime = clock:rfc3339(last_success) end
    util.save_status(sim, RK, cj, st)
  end

  w.run(reconcile)
end
