-- Deployment controller: one ReplicaSet per pod-template hash, rolling update
-- (maxSurge/maxUnavailable) or Recreate, and the status and conditions that
-- `kubectl rollout status`, `kubectl wait` and atom's readiness checks read:
-- Available (MinimumReplicasAvailable/-Unavailable) and Progressing
-- (NewReplicaSetCreated, ReplicaSetUpdated, NewReplicaSetAvailable,
-- ProgressDeadlineExceeded, DeploymentPaused/Resumed).
--
-- Ownership: the owner->ReplicaSets index and deadline timers live in this
-- closure (util.workload); everything else is read from and written to the store.

local util = require("atom.sim.controllers.util")

local spec_replicas = util.spec_replicas

local RK = "deployments.apps"
local RS_RK = "replicasets.apps"
local REV = "deployment.kubernetes.io/revision"

local function revision_of(rs)
  local a = rs.metadata.annotations
  return tonumber(a and a[REV]) or 0
end

-- A new version of obj for a write of its annotations (and the top-level
-- fields named in ...), sharing the rest with the stored version instead of
-- deep-copying all of it (see sim.util.revise).
local function with_annotations(sim, obj, ...)
  local upd = sim.util.revise(obj, ...)
  local ann = {}
  for k, v in pairs(obj.metadata.annotations or {}) do ann[k] = v end
  upd.metadata.annotations = ann
  return upd
end

return function(sim)
  local store, clock = sim.store, sim.clock
  local w = util.workload(sim, RK, "Deployment", RS_RK)
  local recorder = util.recorder(sim, "deployment-controller")
  local timers = w.timers
  -- The template only changes with the generation, so its hash is kept per
  -- uid and generation: hashing on every reconcile was the main CPU cost.
  local hashes = {} -- uid -> { gen, hash }
  local deadlines = {} -- uid -> simulated time the progress deadline timer is set for
  local function template_hash(d)
    local uid, gen = d.metadata.uid, d.metadata.generation
    local h = hashes[uid]
    if h and h[1] == gen then return h[2] end
    local v = util.template_hash((d.spec or {}).template or {})
    hashes[uid] = { gen, v }
    return v
  end

  local function scale(rs, n, d, max_surge)
    local from = spec_replicas(rs)
    if from == n then return rs end
    -- What `kubectl describe deployment` lists under Events on a real cluster.
    recorder.event(d, "Normal", "ScalingReplicaSet", string.format("Scaled %s replica set %s from %d to %d",
      from < n and "up" or "down", rs.metadata.name, from, n))
    local upd = with_annotations(sim, rs, "spec")
    upd.spec.replicas = n
    upd.metadata.annotations["deployment.kubernetes.io/desired-replicas"] = tostring(d.spec.replicas or 1)
    upd.metadata.annotations["deployment.kubernetes.io/max-replicas"] = tostring((d.spec.replicas or 1) + max_surge)
    return store:update(RS_RK, upd, util.OWNED) or rs
  end

  -- One level of t copied (a fresh table when t is nil): the rest stays shared.
  local function shallow(t)
    local c = {}
    for k, v in pairs(t or {}) do c[k] = v end
    return c
  end

  -- The ReplicaSet's template and selector copy only the maps that get the
  -- hash label; the pod spec is shared with the Deployment's stored template
  -- (never mutated) instead of deep-copied per ReplicaSet.
  local function new_replica_set(d, hash, revision, initial, max_surge)
    local tmpl = shallow(d.spec.template)
    tmpl.metadata = shallow(tmpl.metadata)
    tmpl.metadata.labels = shallow(tmpl.metadata.labels)
    tmpl.metadata.labels["pod-template-hash"] = hash
    local sel = shallow(d.spec.selector)
    sel.matchLabels = shallow(sel.matchLabels)
    sel.matchLabels["pod-template-hash"] = hash
    local rs = {
      apiVersion = "apps/v1",
      kind = "ReplicaSet",
      metadata = {
        name = d.metadata.name .. "-" .. hash,
        namespace = d.metadata.namespace,
        labels = util.copy(sim, tmpl.metadata.labels),
        annotations = {
          [REV] = tostring(revision),
          ["deployment.kubernetes.io/desired-replicas"] = tostring(d.spec.replicas or 1),
          ["deployment.kubernetes.io/max-replicas"] = tostring((d.spec.replicas or 1) + max_surge),
        },
        ownerReferences = { util.owner_ref(d, "apps/v1", "Deployment") },
      },
      spec = {
        replicas = initial,
        minReadySeconds = d.spec.minReadySeconds,
        selector = sel,
        template = tmpl,
      },
    }
    local created = store:create(RS_RK, rs, util.OWNED)
    if not created then
      created = store:get(RS_RK, rs.metadata.namespace, rs.metadata.name)
    elseif initial > 0 then
      recorder.event(d, "Normal", "ScalingReplicaSet",
        string.format("Scaled up replica set %s from 0 to %d", created.metadata.name, initial))
    end
    return created
  end

  local function reconcile(ns, name)
    local d = store:get(RK, ns, name)
    if not d or d.metadata.deletionTimestamp then return end
    local spec = d.spec or {}
    local replicas = util.spec_replicas(d)
    local tnow = clock:now()
    local now = clock:rfc3339(tnow)
    local strategy = spec.strategy or {}
    local recreate = strategy.type == "Recreate"
    local ru = strategy.rollingUpdate or {}
    local max_surge, max_unav = 0, 0
    if not recreate then
      max_surge = util.int_or_percent(ru.maxSurge, replicas, true, "25%")
      max_unav = util.int_or_percent(ru.maxUnavailable, replicas, false, "25%")
      if max_surge == 0 and max_unav == 0 then max_unav = 1 end
    end

    local hash = template_hash(d)
    local new_rs, olds, max_rev = nil, {}, 0
    for _, rs in ipairs(w.children(d)) do
      if rs.metadata.deletionTimestamp == nil then
        local labels = rs.metadata.labels or {}
        if labels["pod-template-hash"] == hash and not new_rs then
          new_rs = rs
        else
          olds[#olds + 1] = rs
        end
      end
    end
    if not new_rs then
      -- A template brought back by `rollout undo` matches an old ReplicaSet
      -- by content; its hash label is from when it was first created.
      for i, rs in ipairs(olds) do
        if util.template_hash((rs.spec or {}).template or {}) == hash then
          new_rs = table.remove(olds, i)
          break
        end
      end
    end
    for _, rs in ipairs(olds) do
      if revision_of(rs) > max_rev then max_rev = revision_of(rs) end
    end
    table.sort(olds, function(a, b)
      return (a.metadata.creationTimestamp or "") < (b.metadata.creationTimestamp or "")
    end)

    local st = util.copy(sim, d.status or {})
    local old_st = d.status or {}
    st.conditions = st.conditions or {}
    local created_new = false

    if not new_rs and not spec.paused then
      local initial = replicas
      local total = 0
      for _, rs in ipairs(olds) do total = total + spec_replicas(rs) end
      if recreate then
        if total > 0 then initial = 0 end
      else
        initial = math.max(0, math.min(replicas + max_surge - total, replicas))
      end
      new_rs = new_replica_set(d, hash, max_rev + 1, initial, max_surge)
      if new_rs then
        created_new = true
        util.set_condition(st.conditions, "Progressing", "True", "NewReplicaSetCreated",
          'Created new replica set "' .. new_rs.metadata.name .. '"', now, true)
      end
    elseif new_rs and revision_of(new_rs) <= max_rev then
      -- Rolling back to an older template makes its ReplicaSet the newest revision.
      local upd = with_annotations(sim, new_rs)
      upd.metadata.annotations[REV] = tostring(max_rev + 1)
      new_rs = store:update(RS_RK, upd, util.OWNED) or new_rs
    end

    -- The Deployment carries its newest revision, which `rollout status
    -- --revision` and `rollout history` read.
    if new_rs then
      local rev = tostring(revision_of(new_rs))
      local ann = d.metadata.annotations or {}
      if ann[REV] ~= rev then
        local upd = with_annotations(sim, d)
        upd.metadata.annotations[REV] = rev
        d = store:update(RK, upd, util.OWNED) or d
      end
    end

    if spec.paused then
      local active = 0
      for _, rs in ipairs(olds) do if spec_replicas(rs) > 0 then active = active + 1 end end
      if new_rs and active == 0 then new_rs = scale(new_rs, replicas, d, max_surge) end
    elseif recreate then
      local old_pods = 0
      for i, rs in ipairs(olds) do
        if spec_replicas(rs) > 0 then olds[i] = scale(rs, 0, d, 0) end
        old_pods = old_pods + ((rs.status or {}).replicas or 0)
      end
      if new_rs and old_pods == 0 then new_rs = scale(new_rs, replicas, d, 0) end
    elseif new_rs then
      -- Scale the new ReplicaSet up within maxSurge.
      local cur = spec_replicas(new_rs)
      if cur > replicas then
        new_rs = scale(new_rs, replicas, d, max_surge)
      elseif cur < replicas then
        local total = cur
        for _, rs in ipairs(olds) do total = total + spec_replicas(rs) end
        local target = math.min(replicas + max_surge - (total - cur), replicas)
        if target > cur then new_rs = scale(new_rs, target, d, max_surge) end
      end
      -- Scale old ReplicaSets down, keeping replicas - maxUnavailable available.
      local min_available = replicas - max_unav
      local all_pods = ((new_rs.status or {}).replicas or 0)
      for _, rs in ipairs(olds) do all_pods = all_pods + ((rs.status or {}).replicas or 0) end
      local new_unavailable = spec_replicas(new_rs) - ((new_rs.status or {}).availableReplicas or 0)
      local max_down = all_pods - min_available - new_unavailable
      if max_down > 0 then
        -- Unhealthy old pods first: they count for nothing.
        local cleaned = 0
        for i, rs in ipairs(olds) do
          if cleaned >= max_down then break end
          local n = spec_replicas(rs)
          local unhealthy = n - ((rs.status or {}).availableReplicas or 0)
          if n > 0 and unhealthy > 0 then
            local down = math.min(max_down - cleaned, unhealthy)
            olds[i] = scale(rs, n - down, d, max_surge)
            cleaned = cleaned + down
          end
        end
        local available = (new_rs.status or {}).availableReplicas or 0
        for _, rs in ipairs(olds) do
          available = available + math.min((rs.status or {}).availableReplicas or 0, spec_replicas(rs))
        end
        local budget = math.min(available - min_available, max_down - cleaned)
        for i, rs in ipairs(olds) do
          if budget <= 0 then break end
          local n = spec_replicas(rs)
          if n > 0 then
            local down = math.min(n, budget)
            olds[i] = scale(rs, n - down, d, max_surge)
            budget = budget - down
          end
        end
      end
    end

    -- Old ReplicaSets beyond revisionHistoryLimit go once they are empty.
    local limit = spec.revisionHistoryLimit or 10
    local empty = {}
    for _, rs in ipairs(olds) do
      if spec_replicas(rs) == 0 and ((rs.status or {}).replicas or 0) == 0 then
        empty[#empty + 1] = rs
      end
    end
    if #empty > limit then
      table.sort(empty, function(a, b) return revision_of(a) < revision_of(b) end)
      for i = 1, #empty - limit do
        store:delete(RS_RK, ns, empty[i].metadata.name, { propagation = "Background" })
      end
    end

    -- Status, computed as the real controller does from all its ReplicaSets.
    local all = {}
    for _, rs in ipairs(olds) do all[#all + 1] = rs end
    if new_rs then all[#all + 1] = new_rs end
    local actual, ready, available, total_spec = 0, 0, 0, 0
    for _, rs in ipairs(all) do
      local rst = rs.status or {}
      actual = actual + (rst.replicas or 0)
      ready = ready + (rst.readyReplicas or 0)
      available = available + (rst.availableReplicas or 0)
      total_spec = total_spec + spec_replicas(rs)
    end
    local updated = new_rs and ((new_rs.status or {}).replicas or 0) or 0
    st.observedGeneration = d.metadata.generation
    st.replicas = actual
    st.updatedReplicas = updated
    st.readyReplicas = ready
    st.availableReplicas = available
    st.unavailableReplicas = math.max(0, total_spec - available)
    util.omit_zero(st, { "replicas", "updatedReplicas", "readyReplicas", "availableReplicas", "unavailableReplicas" })

    if available >= replicas - max_unav then
      util.set_condition(st.conditions, "Available", "True", "MinimumReplicasAvailable",
        "Deployment has minimum availability.", now, true)
    else
      util.set_condition(st.conditions, "Available", "False", "MinimumReplicasUnavailable",
        "Deployment does not have minimum availability.", now, true)
    end
    -- Available comes first, as on a real cluster.
    table.sort(st.conditions, function(a, b)
      local order = { Available = 1, Progressing = 2, ReplicaFailure = 3 }
      return (order[a.type] or 9) < (order[b.type] or 9)
    end)

    local rs_name = new_rs and new_rs.metadata.name or d.metadata.name
    local complete = new_rs ~= nil and updated == replicas and actual == replicas
      and available >= replicas and spec_replicas(new_rs) == replicas
    local prog = util.get_condition({ status = st }, "Progressing")
    local pds = spec.progressDeadlineSeconds or 600
    if spec.paused then
      util.set_condition(st.conditions, "Progressing", "Unknown", "DeploymentPaused",
        "Deployment is paused", now, true)
    else
      if prog and prog.reason == "DeploymentPaused" then
        util.set_condition(st.conditions, "Progressing", "Unknown", "DeploymentResumed",
          "Deployment is resumed", now, true)
        prog = util.get_condition({ status = st }, "Progressing")
      end
      if complete then
        util.set_condition(st.conditions, "Progressing", "True", "NewReplicaSetAvailable",
          'ReplicaSet "' .. rs_name .. '" has successfully progressed.', now, true)
      elseif not created_new then
        local progressed = updated > (old_st.updatedReplicas or 0)
          or ready > (old_st.readyReplicas or 0)
          or available > (old_st.availableReplicas or 0)
          or (actual - updated) < ((old_st.replicas or 0) - (old_st.updatedReplicas or 0))
          or (old_st.observedGeneration or 0) < (d.metadata.generation or 0)
          or (prog and prog.reason == "DeploymentResumed")
        if progressed or not prog then
          util.set_condition(st.conditions, "Progressing", "True", "ReplicaSetUpdated",
            'ReplicaSet "' .. rs_name .. '" is progressing.', now, true)
          prog = util.get_condition({ status = st }, "Progressing")
          prog.lastUpdateTime = now
        elseif prog.reason ~= "NewReplicaSetAvailable" and prog.reason ~= "ProgressDeadlineExceeded" then
          local since = util.parse_time(prog.lastUpdateTime) or tnow
          if since + pds <= tnow then
            util.set_condition(st.conditions, "Progressing", "False", "ProgressDeadlineExceeded",
              'ReplicaSet "' .. rs_name .. '" has timed out progressing.', now, true)
          end
        end
      end
      prog = util.get_condition({ status = st }, "Progressing")
      if not complete and prog and prog.reason ~= "ProgressDeadlineExceeded" then
        local since = util.parse_time(prog.lastUpdateTime) or tnow
        local left = since + pds - tnow
        -- Re-arm only when the deadline moved: most reconciles keep it.
        local at = since + pds
        if deadlines[d.metadata.uid] ~= at or not timers.has(d.metadata.uid) then
          deadlines[d.metadata.uid] = at
          w.wake(d, math.max(left, 0) + 0.001)
        end
      else
        deadlines[d.metadata.uid] = nil
        timers.cancel(d.metadata.uid)
      end
    end

    d = util.save_status(sim, RK, d, st)
    if complete and available >= replicas then
      local av = util.get_condition({ status = st }, "Available")
      if av and av.status == "True" then w.marks.mark(d) end
    end
  end

  w.run(reconcile, function(obj)
    recorder.forget(obj.metadata.uid)
    hashes[obj.metadata.uid] = nil
    deadlines[obj.metadata.uid] = nil
  end)
end
