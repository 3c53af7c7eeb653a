-- Pod "kubelet" and scheduler: binds new pods to a simulated node, then moves
-- them through the states a real kubelet reports (Pending/ContainerCreating,
-- Running+Ready, image pull failure, crash loop, run to completion for Job
-- pods), as decided by the scenario rules of the pod and its workload.
--
-- Ownership: per-pod lifecycle state lives in this closure, keyed by uid, and
-- is dropped when the pod is deleted.

local core = require("atom.core")
local util = require("atom.sim.controllers.util")

local RK = "pods"

-- A 64-hex-digit id from a uid (already random), without hashing per pod.
local function id_from(uid, n)
  local hex = tostring(uid):gsub("[^%x]", "")
  hex = (hex .. string.format("%08x", n or 0)):rep(3)
  return hex:sub(1, 64)
end

-- The scenario rule for a pod merges the pod's own rule with its workload's
-- (ReplicaSet, then the Deployment/CronJob above it): the pod carries the
-- workload's labels and images, but rules are often written per workload.
local function pod_rule(sim, pod)
  local rules = { util.rule_for(sim, pod) }
  local obj = pod
  for _ = 1, 2 do
    local ref = util.controller_ref(obj)
    local rk = ref and util.kind_rk[ref.kind]
    if not rk then break end
    obj = sim.store:get(rk, pod.metadata.namespace, ref.name)
    if not obj then break end
    rules[#rules + 1] = util.rule_for(sim, obj)
  end
  -- rule_for fills in the scenario's defaults (e.g. the global ready_after);
  -- those must not let the pod's rule hide what its workload's rule says.
  local defaults = (sim.scenario and type(sim.scenario.defaults) == "table") and sim.scenario.defaults or {}
  local merged = {}
  for i = #rules, 1, -1 do
    for k, v in pairs(rules[i]) do
      if defaults[k] ~= v or merged[k] == nil then merged[k] = v end
    end
  end
  for _, c in ipairs((pod.spec or {}).containers or {}) do
    if type(c.image) == "string" and c.image:find("does%-not%-exist") then
      if merged.image_pull_fails == nil then merged.image_pull_fails = true end
    end
  end
  return merged
end

-- The first Secret/ConfigMap the pod needs that does not exist: for a volume
-- (the kubelet keeps the pod in ContainerCreating) or for env (the container
-- fails with CreateContainerConfigError). Optional references never block.
local function missing_ref(store, pod)
  local ns = pod.metadata.namespace
  local spec = pod.spec or {}
  local function absent(rk, name, optional)
    return name and not optional and not store:get(rk, ns, name)
  end
  for _, v in ipairs(spec.volumes or {}) do
    if v.secret and absent("secrets", v.secret.secretName, v.secret.optional) then
      return "volume", "secret", v.secret.secretName, v.name
    end
    if v.configMap and absent("configmaps", v.configMap.name, v.configMap.optional) then
      return "volume", "configmap", v.configMap.name, v.name
    end
  end
  for _, list in ipairs({ spec.initContainers or {}, spec.containers or {} }) do
    for _, c in ipairs(list) do
      for _, e in ipairs(c.envFrom or {}) do
        if e.secretRef and absent("secrets", e.secretRef.name, e.secretRef.optional) then
          return "env", "secret", e.secretRef.name
        end
        if e.configMapRef and absent("configmaps", e.configMapRef.name, e.configMapRef.optional) then
          return "env", "configmap", e.configMapRef.name
        end
      end
      for _, e in ipairs(c.env or {}) do
        local vf = e.valueFrom or {}
        local sk, ck = vf.secretKeyRef, vf.configMapKeyRef
        if sk and absent("secrets", sk.name, sk.optional) then return "env", "secret", sk.name end
        if ck and absent("configmaps", ck.name, ck.optional) then return "env", "configmap", ck.name end
      end
    end
  end
  return nil
end

local function qos_class(spec)
  for _, c in ipairs(spec.containers or {}) do
    local r = c.resources
    if r and (r.requests or r.limits) then return "Burstable" end
  end
  return "BestEffort"
end

return function(sim)
  local store, clock = sim.store, sim.clock
  local life = {} -- uid -> { rule, node_ip, pod_ip, restarts, backoff }
  local blocked = {} -- uid -> life entry of a pod waiting for a Secret/ConfigMap
  local recheck = {} -- namespace -> true while a re-check of its blocked pods is queued
  local timers = util.timers(sim)
  local marks = util.ready_marks(sim, RK)
  local kubelet = util.recorder(sim, "kubelet")
  local scheduler = util.recorder(sim, "default-scheduler")
  local nodes_n = (sim.opts and sim.opts.nodes) or 3
  if nodes_n < 1 then nodes_n = 1 end
  local next_node = 0

  local function now() return clock:rfc3339(clock:now()) end

  -- The node's /24 while it lasts (as on kind), then further into
  -- 10.244.0.0/14 so IPs stay unique with thousands of pods.
  local per_node, overflow = {}, 0
  local function pod_ip(node_idx)
    local n = (per_node[node_idx] or 0) + 1
    per_node[node_idx] = n
    if n <= 250 and node_idx < 256 then
      return string.format("10.244.%d.%d", node_idx, n + 1)
    end
    overflow = overflow + 1
    return string.format("10.%d.%d.%d", 245 + (overflow >> 16) % 3, (overflow >> 8) % 256, overflow % 256)
  end

  local image_ids = {}
  local function image_id(full, image)
    local id = image_ids[image]
    if not id then
      -- A SHA-256 of the name stands in for the registry's digest; in C, since the bench
      -- gives every Deployment its own image (a hash written in Lua was 3% of the sim).
      id = full:gsub(":[^/]*$", "") .. "@sha256:" .. core.sha256_hex(image)
      image_ids[image] = id
    end
    return id
  end

  local function container_status(c, state, ready, started, restarts, last, uid, idx)
    local image = c.image or ""
    local full = image:find("/") and image or ("docker.io/library/" .. image)
    -- A container that never started has no container ID yet.
    local cid
    if not (state.waiting and state.waiting.reason ~= "CrashLoopBackOff") then
      cid = "containerd://" .. id_from(uid, idx * 1000 + restarts)
    end
    return {
      name = c.name,
      image = full:find(":") and full or (full .. ":latest"),
      imageID = (image:find("does%-not%-exist") and "") or image_id(full, image),
      containerID = cid,
      ready = ready,
      started = started,
      restartCount = restarts,
      state = state,
      lastState = last or {},
    }
  end

  -- Writes the pod's status; stage is one of creating, running, not_ready,
  -- pull_error, pull_backoff, crash, succeeded, failed.
  local function write(pod, l, stage)
    local t = now()
    local spec = pod.spec or {}
    -- Every field below is set anew except the conditions, which are changed in
    -- place: only they are copied deeply; the rest of the old status (immutable,
    -- stored) is shared instead of deep-copying container statuses that are
    -- replaced anyway.
    local old_st = pod.status or {}
    local st = {}
    for k, v in pairs(old_st) do st[k] = v end
    if old_st.conditions then st.conditions = util.copy(sim, old_st.conditions) end
    local phase = "Running"
    local ready, started, cstate, last = false, true, nil, nil
    local waiting_reason
    if stage == "creating" then
      phase, started = "Pending", false
      cstate = { waiting = { reason = "ContainerCreating" } }
    elseif stage == "running" then
      ready = true
      cstate = { running = { startedAt = l.started_at or t } }
    elseif stage == "not_ready" then
      cstate = { running = { startedAt = l.started_at or t } }
    elseif stage == "config_error" then
      phase, started = "Pending", false
      cstate = { waiting = { reason = "CreateContainerConfigError", message = l.config_message } }
    elseif stage == "pull_error" or stage == "pull_backoff" then
      phase, started = "Pending", false
      waiting_reason = stage == "pull_error" and "ErrImagePull" or "ImagePullBackOff"
    elseif stage == "crash" then
      started = false
      cstate = { waiting = { reason = "CrashLoopBackOff",
        message = "back-off " .. l.backoff .. "s restarting failed container" } }
      last = { terminated = { exitCode = 1, reason = "Error", startedAt = l.started_at or t,
        finishedAt = t, containerID = "containerd://" .. id_from(pod.metadata.uid, 500 + l.restarts) } }
    elseif stage == "succeeded" or stage == "failed" then
      phase = stage == "succeeded" and "Succeeded" or "Failed"
      started = false
      cstate = { terminated = {
        exitCode = stage == "succeeded" and 0 or 1,
        reason = stage == "succeeded" and "Completed" or "Error",
        startedAt = l.started_at or t, finishedAt = t,
        containerID = "containerd://" .. id_from(pod.metadata.uid, 0) } }
    end

    local statuses = {}
    local uid = pod.metadata.uid
    for i, c in ipairs(spec.containers or {}) do
      local s = cstate
      if waiting_reason then
        local msg = waiting_reason == "ErrImagePull"
          and ("failed to pull and unpack image \"" .. tostring(c.image) .. "\": not found")
          or ("Back-off pulling image \"" .. tostring(c.image) .. "\"")
        s = { waiting = { reason = waiting_reason, message = msg } }
      end
      statuses[#statuses + 1] = container_status(c, util.copy(sim, s), ready, started,
        l.restarts, last and util.copy(sim, last), uid, i)
    end
    local init_statuses
    if spec.initContainers and #spec.initContainers > 0 then
      init_statuses = {}
      for i, c in ipairs(spec.initContainers) do
        local s
        local sidecar = c.restartPolicy == "Always"
        if stage == "creating" then
          s = { waiting = { reason = "PodInitializing" } }
        elseif sidecar then
          s = { running = { startedAt = l.started_at or t } }
        else
          s = { terminated = { exitCode = 0, reason = "Completed", startedAt = l.started_at or t,
            finishedAt = l.started_at or t } }
        end
        init_statuses[#init_statuses + 1] = container_status(c, s,
          sidecar and stage ~= "creating", sidecar and stage ~= "creating", 0, nil, uid, 100 + i)
      end
    end

    local done = stage == "succeeded" or stage == "failed"
    local conds = st.conditions or {}
    local initialized = stage ~= "creating" or not init_statuses
    util.set_condition(conds, "PodReadyToStartContainers", (stage == "creating" or done) and "False" or "True", nil, nil, t)
    if initialized then
      util.set_condition(conds, "Initialized", "True", nil, nil, t)
    else
      local names = {}
      for _, c in ipairs(spec.initContainers or {}) do names[#names + 1] = c.name end
      util.set_condition(conds, "Initialized", "False", "ContainersNotInitialized",
        "containers with incomplete status: [" .. table.concat(names, " ") .. "]", t)
    end
    local rreason = done and "PodCompleted" or (not ready and "ContainersNotReady") or nil
    local rmsg
    if not ready and not done then
      local names = {}
      for _, c in ipairs(spec.containers or {}) do names[#names + 1] = c.name end
      rmsg = "containers with unready status: [" .. table.concat(names, " ") .. "]"
    end
    util.set_condition(conds, "Ready", ready and "True" or "False", rreason, rmsg, t)
    util.set_condition(conds, "ContainersReady", ready and "True" or "False", rreason, rmsg, t)
    util.set_condition(conds, "PodScheduled", "True", nil, nil, t)
    -- kubectl and kstatus expect Kubernetes' order of pod conditions.
    local order = { PodReadyToStartContainers = 1, Initialized = 2, Ready = 3, ContainersReady = 4, PodScheduled = 5 }
    table.sort(conds, function(a, b) return (order[a.type] or 9) < (order[b.type] or 9) end)

    st.phase = phase
    st.conditions = conds
    st.hostIP = l.node_ip
    st.hostIPs = { { ip = l.node_ip } }
    st.podIP = l.pod_ip
    st.podIPs = { { ip = l.pod_ip } }
    st.startTime = st.startTime or l.scheduled_at or t
    st.qosClass = qos_class(spec)
    st.containerStatuses = statuses
    st.initContainerStatuses = init_statuses
    local written = util.write_status(sim, RK, pod, st)
    if written and ready then marks.mark(written) end
    return written
  end

  local function current(l)
    return store:get(RK, l.ns, l.name)
  end

  local crash_step
  crash_step = function(l)
    local pod = current(l)
    if not pod or life[pod.metadata.uid] ~= l then return end
    l.restarts = l.restarts + 1
    write(pod, l, "crash")
    local c = ((pod.spec or {}).containers or {})[1] or {}
    kubelet.event(pod, "Warning", "BackOff", string.format("Back-off restarting failed container %s in pod %s_%s(%s)",
      tostring(c.name), pod.metadata.name, pod.metadata.namespace, pod.metadata.uid), l.node)
    l.backoff = math.min(l.backoff * 2, 300)
    timers.set(pod.metadata.uid, l.backoff, function() crash_step(l) end)
  end

  local function finish_job_pod(l)
    local pod = current(l)
    if not pod or life[pod.metadata.uid] ~= l then return end
    write(pod, l, l.rule.job_fails and "failed" or "succeeded")
  end

  -- The containers start: what happens depends on the scenario rule.
  local function start(l)
    local pod = current(l)
    if not pod or life[pod.metadata.uid] ~= l then return end
    local uid = pod.metadata.uid
    local rule = l.rule
    local what, kind, ref, vol = missing_ref(store, pod)
    if what then
      -- Wait for the object to appear (re-checked when one is created in the
      -- namespace), as the kubelet keeps retrying.
      blocked[uid] = l
      if what == "volume" then
        if l.stage ~= "creating" then l.stage = "creating" write(pod, l, "creating") end
        kubelet.event(pod, "Warning", "FailedMount", string.format('MountVolume.SetUp failed for volume "%s" : %s "%s" not found',
          tostring(vol), kind, ref), l.node)
      else
        l.config_message = kind .. ' "' .. ref .. '" not found'
        if l.stage ~= "config_error" then l.stage = "config_error" write(pod, l, "config_error") end
        kubelet.event(pod, "Warning", "Failed", "Error: " .. l.config_message, l.node)
      end
      return
    end
    blocked[uid] = nil
    l.started_at = now()
    if rule.image_pull_fails then
      write(pod, l, "pull_error")
      local image = tostring((((pod.spec or {}).containers or {})[1] or {}).image)
      kubelet.event(pod, "Warning", "Failed", string.format(
        'Failed to pull image "%s": rpc error: code = NotFound desc = failed to pull and unpack image "%s": not found',
        image, image), l.node)
      kubelet.event(pod, "Warning", "Failed", "Error: ErrImagePull", l.node)
      timers.set(uid, 2, function()
        local p = current(l)
        if p and life[uid] == l then
          write(p, l, "pull_backoff")
          kubelet.event(p, "Normal", "BackOff", string.format('Back-off pulling image "%s"', image), l.node)
          kubelet.event(p, "Warning", "Failed", "Error: ImagePullBackOff", l.node)
        end
      end)
    elseif rule.crash_loop then
      l.restarts, l.backoff = 0, 10
      crash_step(l)
    elseif l.job then
      local run = rule.ready_after or util.ready_after(sim)
      if run <= 0 then
        finish_job_pod(l)
      else
        write(pod, l, "running")
        timers.set(uid, run, function() finish_job_pod(l) end)
      end
    elseif rule.never_ready then
      write(pod, l, "not_ready")
    else
      write(pod, l, "running")
    end
  end

  local function schedule(ns, name)
    local pod = store:get(RK, ns, name)
    if not pod or pod.metadata.deletionTimestamp then return end
    local uid = pod.metadata.uid
    if life[uid] then return end
    local st = pod.status or {}
    if st.phase == "Succeeded" or st.phase == "Failed" then return end
    local node = pod.spec and pod.spec.nodeName
    local node_idx
    local want = pod.spec and pod.spec.nodeSelector
    if not node and want and next(want) then
      -- Only nodes whose labels match; none means Unschedulable, as the
      -- scheduler reports it.
      local fit = {}
      local all = store:list("nodes", nil, nil)
      for _, n in ipairs(all) do
        if util.selector_matches(want, n.metadata.labels) then fit[#fit + 1] = n.metadata.name end
      end
      if #fit == 0 then
        local t = now()
        local st2 = { phase = "Pending", conditions = { { type = "PodScheduled", status = "False",
          reason = "Unschedulable", lastTransitionTime = t,
          message = string.format("0/%d nodes are available: %d node(s) didn't match Pod's node affinity/selector. preemption: 0/%d nodes are available: %d Preemption is not helpful for scheduling.",
            #all, #all, #all, #all) } } }
        util.write_status(sim, RK, pod, st2)
        scheduler.event(pod, "Warning", "FailedScheduling", st2.conditions[1].message)
        return
      end
      next_node = next_node + 1
      node = fit[(next_node - 1) % #fit + 1]
      node_idx = tonumber(node:match("(%d+)$")) or 1
      local upd = sim.util.revise(pod, "spec")
      upd.spec.nodeName = node
      local np = store:update(RK, upd, util.OWNED)
      if np then pod = np end
    elseif not node then
      next_node = next_node % nodes_n + 1
      node_idx = next_node
      node = "sim-node-" .. node_idx
      local upd = sim.util.revise(pod, "spec")
      upd.spec.nodeName = node
      local np = store:update(RK, upd, util.OWNED)
      if np then pod = np end
    else
      node_idx = tonumber(node:match("(%d+)$")) or 1
    end
    local ref = util.controller_ref(pod)
    local l = {
      ns = ns, name = name, node = node,
      rule = pod_rule(sim, pod),
      node_ip = "172.18.0." .. (1 + node_idx % 250),
      -- The node's /24 while it lasts (as on kind), then further into
      -- 10.244.0.0/14 so IPs stay unique with thousands of pods.
      pod_ip = pod_ip(node_idx),
      restarts = 0, backoff = 10,
      job = ref ~= nil and ref.kind == "Job",
      scheduled_at = now(),
    }
    if pod.spec and pod.spec.hostNetwork then l.pod_ip = l.node_ip end
    life[uid] = l
    local delay = l.rule.ready_after or util.ready_after(sim)
    if delay <= 0 then
      start(l)
    else
      l.stage = "creating"
      write(pod, l, "creating")
      timers.set(uid, delay, function() start(l) end)
    end
  end

  local q = util.queue(sim, schedule)

  local function on_event(ev, rk, obj)
    if (rk == "secrets" or rk == "configmaps") and ev == "ADDED" and next(blocked) then
      -- One re-check per namespace per turn, however many objects arrive:
      -- a release creating 5,000 ConfigMaps must not cost 5,000 x pods.
      local ns = obj.metadata.namespace
      if not recheck[ns] then
        recheck[ns] = true
        sim.clock:after(0, function()
          recheck[ns] = nil
          local todo = {}
          for uid, l in pairs(blocked) do
            if l.ns == ns then todo[#todo + 1] = { uid, l } end
          end
          for _, t in ipairs(todo) do
            if blocked[t[1]] == t[2] then start(t[2]) end
          end
        end)
      end
      return
    end
    if rk ~= RK then return end
    local uid = obj.metadata.uid
    if ev == "DELETED" then
      timers.cancel(uid)
      life[uid] = nil
      blocked[uid] = nil
      marks.forget(obj)
      kubelet.forget(uid)
      scheduler.forget(uid)
    elseif not life[uid] and (ev == "ADDED" or not util.get_condition(obj, "PodScheduled")) then
      q.add(obj.metadata.namespace, obj.metadata.name)
    end
  end
  for _, rk in ipairs({ "secrets", "configmaps", RK }) do store:subscribe(on_event, rk) end
end
