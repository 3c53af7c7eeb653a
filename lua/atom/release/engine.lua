-- atom.release.engine: the operations the C state machine (runtime/fsm.c) calls for each
-- state, and the record writes behind each transition. The driver decides which
-- transitions exist; this module does the work of each state and says where it wants to go.
--
--   engine.new{ client =, namespace =, name =, lease = (atom.release.lease or nil),
--               plan = { objects =, digest =, script =, deadline =, rollback_deadline =,
--                        history_limit =, release = (atom.release.script release or nil),
--                        rollback_of = n } | nil (resume: finish the recorded version only),
--               progress = view, interrupted = function() -> count (Ctrl-C) | nil,
--               atom = the Atom as read (nil when the release has none yet) }
--   e:drive() -> final state | nil, message, status_name   (through atom.fsm.drive)
--   e:settle()  waits for the writes sent in the background (version state, Events): call
--               it before the run ends; drive's caller does.
-- The methods the driver calls (state, step, hook, transition, announce) follow fsm.h.
-- Hooks and the policy of a script apply only to the version that script started; a version
-- inherited from a dead run is finished with the built-in readiness and the default policy.
local core = require "atom.core"
local fsm = require "atom.fsm"
local policy = require "atom.policy"
local readiness = require "atom.readiness"
local util = require "atom.release.util"
local records = require "atom.release.records"
local apply = require "atom.release.apply"
local wait = require "atom.release.wait"
local json = require "atom.json"

local engine = {}
local Engine = {}
Engine.__index = Engine

local TRANSITIONS_KEPT = 30

function engine.new(o)
  local self = setmetatable({
    client = o.client, namespace = o.namespace, name = o.name, lease = o.lease, plan = o.plan,
    progress = o.progress or require("atom.release.progress").new({ release = o.name }),
    interrupted = o.interrupted, atom = o.atom, started = false, versions = {},
    seen_interrupts = 0, not_ready = {},
    -- Writes that nothing waits for (a version's state, Events) are sent without blocking
    -- the run and settled before the next transition and at the end: a transition then
    -- costs one round trip, the record's, not three in a row.
    in_flight = 0,
    -- CRD answers (does the kind declare status.conditions?) for every wait of this run:
    -- one lookup per kind, not per wait.
    crd_cache = {},
  }, Engine)
  return self
end

function Engine:drive()
  return fsm.drive(self)
end

-- Sends req in the background; on_error(err) when it fails. It leaves at once: a queued
-- request starts only when the client is next driven, and the next poll may return
-- queued watch events without driving it (the run's last writes then waited for the
-- watches to close).
function Engine:background(req, on_error)
  self.in_flight = self.in_flight + 1
  self.client:send_async(req, function(status, body)
    self.in_flight = self.in_flight - 1
    if not status and on_error then on_error(body) end
  end)
  self.client:pump(0)
end

function Engine:settle()
  while self.in_flight > 0 do self.client:pump(1) end
end

-- Renews the lease when a third of it has passed; a lost lease is noted (lease_lost) and
-- ends the run at its next step, as in a wait.
function Engine:keepalive()
  if not self.lease or self.lease_lost then return end
  local ok, err = self.lease:renew()
  if not ok then self.lease_lost = tostring(err) end
end

function Engine:status()
  return self.atom and self.atom.status or {}
end

-- The release script that owns the current version, if this run started it.
function Engine:script()
  local st = self:status()
  if self.plan and self.plan.release and self.own_version and util.int(st.version) == self.own_version then
    return self.plan.release
  end
  if self.plan and self.plan.release and self.next_version and not self.started then
    return self.plan.release
  end
  return nil
end

function Engine:version_data(n)
  n = util.int(n) or 0
  if not self.versions[n] then
    local v, err = records.get_version(self.client, self.namespace, self.name, n)
    if not v then error(string.format("reading version %d of %s: %s", n, self.name, tostring(err)), 0) end
    self.versions[n] = v
  end
  return self.versions[n]
end

function Engine:log(fields)
  self.progress:log(fields)
end

-- Called from every wait loop: keeps the lease alive and turns Ctrl-C into a cancel.
function Engine:tick()
  if self.lease then
    local ok, err = self.lease:renew()
    if not ok then
      self.lease_lost = tostring(err)
      return nil, self.lease_lost
    end
  end
  if self.interrupted then
    local n = self.interrupted()
    if n > self.seen_interrupts then
      self.seen_interrupts = n
      self:log({ { "release", self.name }, { "msg", "interrupted: cancelling (Ctrl-C again to exit at once; `atom resume` finishes later)" } })
      return "cancel"
    end
  end
  return true
end

function Engine:check_fn()
  local rel = self:script()
  if rel then
    return function(obj, ctx) return rel:check(obj, ctx) end
  end
  return function(obj, ctx) return readiness.check(obj, nil, ctx) end
end

-- What every wait.observe of this run shares: the grace before a slow Deployment's pods
-- are looked at (the script's fail_fast_after) and the CRD cache.
function Engine:observe_opts(objects, phase)
  local rel = self:script()
  return { objects = objects, release = self.name, namespace = self.namespace, phase = phase,
           check = self:check_fn(), crd_cache = self.crd_cache,
           -- The wait skips the watch of kinds only an override could make wait.
           overrides = rel and rel.readiness or nil,
           fail_fast_after = rel and rel.fail_fast_after or nil }
end

local function describe(err)
  if type(err) == "table" and err.message then return tostring(err.message) end
  return tostring(err)
end

-- Applies version n (0 = the empty version) and prunes what it does not have. The watches
-- of the following wait open first, so nothing that happens during the apply is missed.
function Engine:apply_version(n, phase)
  local v = self:version_data(n)
  self:drop_observer()
  -- What the release owns is listed before the apply, not after it: a first release lists
  -- nothing, and the lists are not between the last apply and the wait, where a large
  -- release's objects were already becoming ready unobserved.
  local kinds = self:status().kinds or {}
  local owned, lerr = apply.live(self.client, self.name, kinds, self.namespace)
  if not owned then return nil, "listing what the release owns: " .. describe(lerr) end
  local known, prepared_of = apply.prepare_known(self.client, self.name, n, v.objects, self.namespace)
  local obs, oerr = wait.observe(self.client, self:observe_opts(known, phase))
  if not obs then return nil, "watching: " .. describe(oerr) end
  local function log(msg) self:log({ { "release", self.name }, { "version", n }, { "msg", msg } }) end
  local function keepalive() self:keepalive() end
  local keepalive_every = self.lease and self.lease.duration / 3 or nil
  local prepared, err = apply.apply(self.client, self.name, n, v.objects, self.namespace,
    { log = log, prepared = prepared_of, on_applied = function(live) obs:applied(live) end,
      answer_needed = function(o) return obs:wants_answer(o) end,
      keepalive = keepalive, keepalive_every = keepalive_every })
  if self.lease_lost then obs:close(); error(self.lease_lost, 0) end
  if not prepared then obs:close(); return nil, err end
  local pruned, perr = apply.prune(self.client, self.name, prepared, kinds,
    { namespace = self.namespace, keep_namespace = self.namespace, log = log, live = owned,
      keepalive = keepalive })
  if self.lease_lost then obs:close(); error(self.lease_lost, 0) end
  if not pruned then obs:close(); return nil, perr end
  local ok, aerr = obs:add(prepared)
  if not ok then obs:close(); return nil, "watching: " .. describe(aerr) end
  self.observer = { obs = obs, version = n, phase = phase }
  -- Watch events queued during the apply become verdicts now instead of waiting, as
  -- objects, for the next step's first poll.
  util.poll(self.client, 0)
  return prepared, #pruned
end

function Engine:drop_observer()
  if self.observer then self.observer.obs:close(); self.observer = nil end
end

-- Waits for version n's objects; reuses the observer opened before its apply.
function Engine:wait_for(n, deadline_at, phase)
  local ob = self.observer
  local obs
  if ob and ob.version == n and ob.phase == phase and not ob.done then
    obs = ob.obs
  else
    self:drop_observer()
    local v = self:version_data(n)
    local prepared, perr = apply.prepare(self.client, self.name, n, v.objects, self.namespace)
    if not prepared then return "failed", perr end
    local oerr
    obs, oerr = wait.observe(self.client, self:observe_opts(prepared, phase))
    if not obs then error(describe(oerr), 0) end
    self.observer = { obs = obs, version = n, phase = phase }
  end
  local outcome, message, not_ready = obs:run({
    check = self:check_fn(), deadline_at = deadline_at, progress = self.progress,
    tick = function() return self:tick() end,
    tick_every = self.lease and math.min(0.5, self.lease.duration / 3) or 0.5,
  })
  -- Closed later (the next apply, a hook, the run's end): closing is a few watch streams
  -- torn down, which at the run's end overlaps the last writes instead of preceding them.
  if self.observer then self.observer.done = true end
  self.progress:finish()
  if not outcome then error(describe(message), 0) end
  self.not_ready = not_ready or {}
  return outcome, message
end

-- from_now: counted from now, not from when the step was recorded as started.
function Engine:deadline_at(seconds, from_now)
  local st = self:status()
  local started = not from_now and util.parse_time(st.stepStarted) or core.wall()
  return started + (util.int(seconds) or 300)
end

-- ---- the driver's interface -------------------------------------------------------

function Engine:state()
  return self:status().state or ""
end

function Engine:step(state)
  local st = self:status()
  if state == "" or fsm.terminal(state) then
    if self.plan and not self.started then
      self.next_version = (util.int(st.latest) or 0) + 1
      local what = self.plan.rollback_of and ("rollback to the objects of version " .. self.plan.rollback_of)
        or ("from " .. tostring(self.plan.script))
      return "Pending", string.format("version %d %s (digest %s)", self.next_version, what,
        tostring(self.plan.digest):sub(1, 12))
    end
    return nil
  end
  local n = util.int(st.version)

  if state == "Pending" then
    local prepared, err = self:apply_version(n, "Updating")
    if not prepared then return "Error", err end
    return "Updating", string.format("applied %d object%s%s", #prepared, #prepared == 1 and "" or "s",
      err > 0 and string.format(", pruned %d", err) or "")
  end

  if state == "Updating" then
    local outcome, message = self:wait_for(n, self:deadline_at(st.deadline), "Updating")
    if self.lease_lost then error(self.lease_lost, 0) end
    if outcome == "ready" then return "Running", message end
    if outcome == "failed" then return "Error", message end
    if outcome == "cancelled" then return "Cancelled", message end
    return "Deadline", message
  end

  if state == "Cancelled" or state == "Deadline" or state == "Error" then
    local failure = { state = state, reason = st.message or "", attempt = util.int(st.attempt) or 1,
                      not_ready = self.not_ready or {} }
    local rel = self:script()
    local ok, answer
    if rel then
      ok, answer = pcall(rel.decide, rel, failure)
    else
      ok, answer = pcall(policy.decide, nil, failure)
    end
    if not ok then
      return "Rollback", "policy failed (rolling back): " .. util.first_line(answer)
    end
    if answer == "fail" then return "Failure", "policy chose fail after " .. state .. ": " .. (st.message or "") end
    if answer == "retry" and state ~= "Cancelled" then
      local prepared, err = self:apply_version(n, "Updating")
      if not prepared then return "Rollback", "retry could not apply: " .. tostring(err) end
      return "Updating", string.format("retry %d after %s", failure.attempt, state)
    end
    local prev = util.int(st.previous) or 0
    return "Rollback", prev > 0 and string.format("rolling back to version %d", prev)
      or "rolling back to the empty version (removing what this release created)"
  end

  if state == "Rollback" then
    local prev = util.int(st.previous) or 0
    local prepared, err = self:apply_version(prev, "Rollback")
    if not prepared then return "Failure", "rollback could not apply: " .. tostring(err) end
    -- A rollback a dead run began gets its whole deadline from here: what it had ran out
    -- while nobody drove it (the lease had to expire first), and it is applied again now.
    -- The design gives a rollback a deadline of its own, never what is left of one.
    local deadline_at = self:deadline_at(st.rollbackDeadline or st.deadline, not self.entered_state)
    local outcome, message = self:wait_for(prev, deadline_at, "Rollback")
    if self.lease_lost then error(self.lease_lost, 0) end
    if outcome == "ready" then
      return "Reverted", prev > 0 and string.format("version %d is back: %s", prev, message)
        or "removed what the release created"
    end
    if outcome == "cancelled" then return "Failure", "rollback cancelled" end
    return "Failure", "rollback did not restore readiness: " .. message
  end
  error("no operation for state " .. tostring(state), 0)
end

function Engine:hook_ctx(from, to, why)
  local st = self:status()
  local version = (to == "Pending" and not self.started) and self.next_version or util.int(st.version)
  return {
    release = self.name, version = version, from = from, to = to, reason = why,
    namespace = self.namespace, kube = self.client,
    log = function(msg)
      self:log({ { "release", self.name }, { "version", version }, { "hook", to }, { "msg", tostring(msg) } })
    end,
    event = function(reason, message)
      if self.atom and self.atom.metadata.uid then
        self.client:event(self.atom, { type = "Normal", reason = tostring(reason), message = tostring(message) })
      end
    end,
  }
end

function Engine:hook(phase, from, to, why)
  local rel = self:script()
  if not rel or not rel.run_hook then return true end
  -- A hook may take long and use the client: a finished wait's watches are not left open
  -- under it.
  if self.observer and self.observer.done and rel:has_hook(phase, to) then
    self:drop_observer()
  end
  local ok, res, msg = pcall(rel.run_hook, rel, phase, to, self:hook_ctx(from, to, why))
  if not ok then res, msg = nil, res end
  if res then return true end
  if phase == "after" then
    self:log({ { "release", self.name }, { "version", self:status().version }, { "hook", "after " .. to },
               { "error", util.first_line(msg) } })
    if self.atom and self.atom.metadata.uid then
      self.client:event(self.atom, { type = "Warning", reason = "HookFailed",
        message = string.format("after hook of %s failed: %s", to, util.first_line(msg)) })
      self:record_hook_error(to, msg)
    end
  end
  return nil, tostring(msg)
end

-- A failed after-hook does not change the state, but the record says so (status.hookError),
-- written like every record write: with the resourceVersion, re-read on a conflict.
function Engine:record_hook_error(state, msg)
  for _ = 1, 5 do
    local atom = util.copy(self.atom)
    atom.status.hookError = { state = state, version = atom.status.version, message = util.first_line(msg),
                              at = util.rfc3339() }
    local live, err = records.write(self.client, atom)
    if live then self.atom = live; return true end
    if err ~= "conflict" then return nil, err end
    local fresh = records.get(self.client, self.namespace, self.name)
    if not fresh then return nil end
    self.atom = fresh
  end
end

function Engine:transition(from, to, why)
  -- The previous transition's version state lands before this one's is sent.
  self:settle()
  if self.lease_lost then return nil, self.lease_lost end
  if self.lease then
    local ok, err = self.lease:renew()
    if not ok then self.lease_lost = tostring(err); return nil, self.lease_lost end
  end
  local atom = self.atom and util.copy(self.atom) or records.new(self.namespace, self.name)
  atom.spec, atom.status = atom.spec or {}, atom.status or {}
  local st = atom.status
  local now = util.rfc3339(nil, true)
  if to == "Pending" then
    local n = self.next_version
    local plan = self.plan
    local kinds, err = records.put_version(self.client, self.namespace, self.name, n, plan.objects,
      { digest = plan.digest, script = plan.script, rollback_of = plan.rollback_of })
    if not kinds then return nil, "recording version " .. n .. ": " .. describe(err) end
    local all, seen = {}, {}
    for _, k in ipairs(st.kinds or {}) do if not seen[k] then seen[k] = true; all[#all + 1] = k end end
    for _, k in ipairs(kinds) do if not seen[k] then seen[k] = true; all[#all + 1] = k end end
    -- "Previous" is the last version that reached Running, never one that failed.
    if from == "Running" then st.previous = util.int(st.version) end
    st.previous = st.previous or 0
    -- History is trimmed when it grows, here, rather than after the release is ready,
    -- where it would stand between readiness and the run's end.
    records.prune_history(self.client, self.namespace, self.name, plan.history_limit or 10,
      { n, st.previous })
    st.kinds = json.array(all)
    st.version, st.latest, st.attempt = n, n, 1
    st.deadline = plan.deadline or 300
    st.rollbackDeadline = plan.rollback_deadline or st.deadline
    st.historyLimit = plan.history_limit or 10
    st.digest, st.script, st.who = plan.digest, plan.script, util.who()
    atom.spec.cancel = nil
  elseif to == "Updating" and (from == "Deadline" or from == "Error") then
    st.attempt = (util.int(st.attempt) or 1) + 1
  end
  st.state, st.message, st.stepStarted = to, why, now
  local hist = st.transitions or {}
  hist[#hist + 1] = { from = from, to = to, reason = why, at = now, version = st.version }
  while #hist > TRANSITIONS_KEPT do table.remove(hist, 1) end
  st.transitions = json.array(hist)

  local live, err = records.write(self.client, atom)
  if not live then
    if err == "conflict" then
      local fresh, gerr = records.get(self.client, self.namespace, self.name)
      if not fresh and gerr then return nil, describe(gerr) end
      self.atom = fresh
      return "conflict"
    end
    return nil, describe(err)
  end
  self.atom = live
  self.entered_state = true -- the state now recorded is one this run entered itself
  if to == "Pending" then
    self.started = true
    self.own_version = util.int(st.version)
    -- The objects just recorded are in memory: no need to read them back for the apply.
    self.versions[self.own_version] = { version = self.own_version, objects = self.plan.objects,
                                        digest = self.plan.digest }
  end
  local vreq = records.version_state_req(self.client, self.namespace, self.name, util.int(st.version), to)
  if vreq then self:background(vreq) end
  return "ok"
end

function Engine:announce(from, to, why)
  local st = self:status()
  local message = string.format("%s => %s: %s", from == "" and "(none)" or from, to, util.first_line(why))
  local normal = { Pending = true, Updating = true, Running = true, Reverted = true }
  local function failed(err)
    self:log({ { "release", self.name }, { "msg", "could not emit event: " .. describe(err) } })
  end
  local req, err = self.client:_event_req(self.atom, { type = normal[to] and "Normal" or "Warning",
                                                        reason = to, message = message })
  if req then
    req.raw = true
    self:background(req, failed)
  end
  self:log({ { "release", self.name }, { "version", st.version }, { "from", from }, { "to", to },
             { "reason", why } })
  if err then failed(err) end
end

-- The verbs, under the names atom.api (the embedding API) calls on this module.
for _, verb in ipairs({ "run", "resume", "rollback", "cancel", "status", "history", "diff" }) do
  engine[verb] = function(...) return require("atom.release.verbs")[verb](...) end
end

return engine
