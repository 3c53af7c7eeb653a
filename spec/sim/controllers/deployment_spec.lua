local fake = require("sim.controllers.fake_sim")
local util = require("atom.sim.controllers.util")
local helpers = require("sim.controllers.helpers")

local function deployment(name, replicas, image, extra)
  local d = {
    apiVersion = "apps/v1", kind = "Deployment",
    metadata = { name = name, namespace = "default" },
    spec = {
      replicas = replicas,
      selector = { matchLabels = { app = name } },
      template = {
        metadata = { labels = { app = name } },
        spec = { containers = { { name = "app", image = image } } },
      },
    },
  }
  for k, v in pairs(extra or {}) do d.spec[k] = v end
  return d
end

-- kubectl rollout status's verdict (pkg/polymorphichelpers/rollout_status.go).
local function rollout_status(d)
  local st = d.status or {}
  if (st.observedGeneration or 0) < d.metadata.generation then return "waiting-generation" end
  local p = util.get_condition(d, "Progressing")
  if p and p.reason == "ProgressDeadlineExceeded" then return "deadline" end
  local want = d.spec.replicas or 1
  if (st.updatedReplicas or 0) < want then return "waiting-updated" end
  if (st.replicas or 0) > (st.updatedReplicas or 0) then return "waiting-old" end
  if (st.availableReplicas or 0) < (st.updatedReplicas or 0) then return "waiting-available" end
  return "done"
end

local cond, pods_of = helpers.cond, helpers.pods

local function dep(sim, name)
  return helpers.get(sim, "deployments.apps", name)
end

-- Change Deployment name with fn, as `kubectl edit` would.
local function edit(sim, name, fn)
  return helpers.update(sim, "deployments.apps", name, fn)
end

describe("deployment controller", function()
  after_each(helpers.no_reconcile_errors)

  it("makes a new Deployment ready the way rollout status reads it", function()
    local sim = fake.start(fake.new{ ready_after = 1 })
    sim.store:create("deployments.apps", deployment("web", 3, "nginx:1.27"))
    sim.clock:advance(0.5)
    local d = dep(sim, "web")
    assert.are.equal("waiting-available", rollout_status(d))
    assert.are.equal("True/ReplicaSetUpdated", cond(d, "Progressing"))
    assert.are.equal("False/MinimumReplicasUnavailable", cond(d, "Available"))
    sim.clock:advance(1)
    d = dep(sim, "web")
    assert.are.equal("done", rollout_status(d))
    assert.are.same({ observedGeneration = 1, replicas = 3, updatedReplicas = 3, readyReplicas = 3,
      availableReplicas = 3 }, {
      observedGeneration = d.status.observedGeneration, replicas = d.status.replicas,
      updatedReplicas = d.status.updatedReplicas, readyReplicas = d.status.readyReplicas,
      availableReplicas = d.status.availableReplicas })
    assert.is_nil(d.status.unavailableReplicas)
    assert.are.equal("True/MinimumReplicasAvailable", cond(d, "Available"))
    assert.are.equal("True/NewReplicaSetAvailable", cond(d, "Progressing"))
    assert.are.equal("1", d.metadata.annotations["deployment.kubernetes.io/revision"])
    local rss = sim.store:list("replicasets.apps", "default")
    assert.are.equal(1, #rss)
    local hash = rss[1].metadata.labels["pod-template-hash"]
    assert.are.equal("web-" .. hash, rss[1].metadata.name)
    assert.is_true(util.controller_ref(rss[1]).uid == d.metadata.uid)
    local pods = pods_of(sim, "web")
    assert.are.equal(3, #pods)
    for _, p in ipairs(pods) do
      assert.are.equal(hash, p.metadata.labels["pod-template-hash"])
      assert.are.equal("Running", p.status.phase)
      assert.truthy(p.spec.nodeName:match("^sim%-node%-%d$"))
      assert.is_true(p.status.containerStatuses[1].ready)
      assert.truthy(p.status.containerStatuses[1].state.running.startedAt)
      assert.truthy(p.status.podIP)
    end
    local marked = {}
    for _, m in ipairs(sim.ready_times) do marked[m.rk .. "/" .. m.name] = true end
    assert.is_true(marked["deployments.apps/web"])
    assert.is_true(marked["replicasets.apps/" .. rss[1].metadata.name])
    for _, p in ipairs(pods) do assert.is_true(marked["pods/" .. p.metadata.name]) end
  end)

  it("becomes ready in the same turn with ready_after = 0", function()
    local sim = fake.start(fake.new{ ready_after = 0 })
    sim.store:create("deployments.apps", deployment("fast", 2, "nginx"))
    sim.clock:advance(0)
    assert.are.equal("done", rollout_status(dep(sim, "fast")))
  end)

  it("never becomes available with a does-not-exist image and hits the progress deadline", function()
    local sim = fake.start(fake.new{ ready_after = 1 })
    sim.store:create("deployments.apps", deployment("bad", 2, "nginx:does-not-exist",
      { progressDeadlineSeconds = 30 }))
    sim.clock:advance(10)
    local d = dep(sim, "bad")
    assert.are.equal("waiting-available", rollout_status(d))
    for _, p in ipairs(pods_of(sim, "bad")) do
      assert.are.equal("Pending", p.status.phase)
      assert.are.equal("ImagePullBackOff", p.status.containerStatuses[1].state.waiting.reason)
      assert.is_false(p.status.containerStatuses[1].ready)
    end
    sim.clock:advance(25)
    d = dep(sim, "bad")
    assert.are.equal("deadline", rollout_status(d))
    assert.are.equal("False/ProgressDeadlineExceeded", cond(d, "Progressing"))
    assert.are.equal(2, d.status.unavailableReplicas)
    for _, m in ipairs(sim.ready_times) do assert.are_not.equal("deployments.apps", m.rk) end
  end)

  it("rolls from one template to another and ends with only the new ReplicaSet", function()
    local sim = fake.start(fake.new{ ready_after = 1 })
    sim.store:create("deployments.apps", deployment("roll", 4, "nginx:1"))
    sim.clock:advance(3)
    edit(sim, "roll", function(d) d.spec.template.spec.containers[1].image = "nginx:2" end)
    local max_pods = 0
    local saw_rolling = false
    for _ = 1, 40 do
      sim.clock:advance(0.25)
      local n = #pods_of(sim, "roll")
      if n > max_pods then max_pods = n end
      local cur = dep(sim, "roll")
      local p = util.get_condition(cur, "Progressing")
      if p.reason == "ReplicaSetUpdated" then saw_rolling = true end
    end
    -- 25% surge of 4 is 1 extra pod at most.
    assert.are.equal(5, max_pods)
    assert.is_true(saw_rolling)
    local d = dep(sim, "roll")
    assert.are.equal(2, d.metadata.generation)
    assert.are.equal("done", rollout_status(d))
    assert.are.equal("True/NewReplicaSetAvailable", cond(d, "Progressing"))
    assert.are.equal("2", d.metadata.annotations["deployment.kubernetes.io/revision"])
    local scaled = {}
    for _, rs in ipairs(sim.store:list("replicasets.apps", "default")) do
      scaled[rs.spec.template.spec.containers[1].image] = rs.spec.replicas
    end
    assert.are.same({ ["nginx:1"] = 0, ["nginx:2"] = 4 }, scaled)
    for _, p in ipairs(pods_of(sim, "roll")) do
      assert.are.equal("nginx:2", p.spec.containers[1].image)
    end
  end)

  it("Recreate removes the old pods before creating new ones", function()
    local sim = fake.start(fake.new{ ready_after = 1 })
    sim.store:create("deployments.apps", deployment("rec", 2, "nginx:1", { strategy = { type = "Recreate" } }))
    sim.clock:advance(3)
    edit(sim, "rec", function(d) d.spec.template.spec.containers[1].image = "nginx:2" end)
    local mixed = false
    for _ = 1, 20 do
      sim.clock:advance(0.25)
      local images = {}
      for _, p in ipairs(pods_of(sim, "rec")) do images[p.spec.containers[1].image] = true end
      if images["nginx:1"] and images["nginx:2"] then mixed = true end
    end
    assert.is_false(mixed)
    assert.are.equal("done", rollout_status(dep(sim, "rec")))
  end)

  it("follows a scale change", function()
    local sim = fake.start(fake.new{ ready_after = 1 })
    sim.store:create("deployments.apps", deployment("sc", 1, "nginx"))
    sim.clock:advance(2)
    edit(sim, "sc", function(d) d.spec.replicas = 3 end)
    sim.clock:advance(0)
    assert.are.equal("waiting-available", rollout_status(dep(sim, "sc")))
    sim.clock:advance(2)
    assert.are.equal("done", rollout_status(dep(sim, "sc")))
    assert.are.equal(3, #pods_of(sim, "sc"))
    edit(sim, "sc", function(d) d.spec.replicas = 1 end)
    sim.clock:advance(1)
    assert.are.equal(1, #pods_of(sim, "sc"))
    assert.are.equal("done", rollout_status(dep(sim, "sc")))
  end)

  it("does not roll out a paused Deployment", function()
    local sim = fake.start(fake.new{ ready_after = 1 })
    sim.store:create("deployments.apps", deployment("pz", 1, "nginx:1"))
    sim.clock:advance(2)
    edit(sim, "pz", function(d)
      d.spec.paused = true
      d.spec.template.spec.containers[1].image = "nginx:2"
    end)
    sim.clock:advance(5)
    local d = dep(sim, "pz")
    assert.are.equal("Unknown/DeploymentPaused", cond(d, "Progressing"))
    assert.are.equal(1, #sim.store:list("replicasets.apps", "default"))
    edit(sim, "pz", function(o) o.spec.paused = false end)
    sim.clock:advance(5)
    d = dep(sim, "pz")
    assert.are.equal("done", rollout_status(d))
    assert.are.equal("nginx:2", pods_of(sim, "pz")[1].spec.containers[1].image)
  end)
end)

describe("deployment rollback", function()
  after_each(helpers.no_reconcile_errors)

  it("reuses the old ReplicaSet when the template comes back, with a new revision", function()
    local sim = fake.start(fake.new{ ready_after = 1 })
    sim.store:create("deployments.apps", deployment("undo", 2, "nginx:1"))
    sim.clock:advance(3)
    local first = sim.store:list("replicasets.apps", "default")[1]
    edit(sim, "undo", function(d) d.spec.template.spec.containers[1].image = "nginx:2" end)
    sim.clock:advance(10)
    -- What `kubectl rollout undo` sends: the old RS template without the hash
    -- label, with the empty maps a typed client adds.
    local t = sim.util.copy(first.spec.template)
    t.metadata.labels["pod-template-hash"] = nil
    t.spec.containers[1].resources = {}
    edit(sim, "undo", function(d) d.spec.template = t end)
    sim.clock:advance(10)
    local rss = sim.store:list("replicasets.apps", "default")
    assert.are.equal(2, #rss)
    local cur = sim.store:get("replicasets.apps", "default", first.metadata.name)
    assert.are.equal(2, cur.spec.replicas)
    assert.are.equal("3", cur.metadata.annotations["deployment.kubernetes.io/revision"])
    local d = dep(sim, "undo")
    assert.are.equal("3", d.metadata.annotations["deployment.kubernetes.io/revision"])
    assert.are.equal("done", rollout_status(d))
  end)
end)
