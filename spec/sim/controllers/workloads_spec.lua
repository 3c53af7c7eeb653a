local fake = require("sim.controllers.fake_sim")
local util = require("atom.sim.controllers.util")
local helpers = require("sim.controllers.helpers")

local function tmpl(app, image)
  return {
    metadata = { labels = { app = app } },
    spec = { containers = { { name = "c", image = image or "busybox" } } },
  }
end

local get, update, cond, pods = helpers.get, helpers.update, helpers.cond, helpers.pods

-- A pod template for Jobs: tmpl with a restartPolicy (Never unless given).
local function job_tmpl(name, image, restart)
  local t = tmpl(name, image)
  t.spec.restartPolicy = restart or "Never"
  return t
end

local function job(name, extra, image)
  local j = { apiVersion = "batch/v1", kind = "Job", metadata = { name = name, namespace = "default" },
    spec = { template = job_tmpl(name, image) } }
  for k, v in pairs(extra or {}) do j.spec[k] = v end
  return j
end

local function cronjob(name, schedule, extra, restart)
  local c = { apiVersion = "batch/v1", kind = "CronJob", metadata = { name = name, namespace = "default" },
    spec = { schedule = schedule, jobTemplate = { spec = { template = job_tmpl(name, nil, restart) } } } }
  for k, v in pairs(extra or {}) do c.spec[k] = v end
  return c
end

describe("statefulset controller", function()
  after_each(helpers.no_reconcile_errors)

  local function sts(name, replicas, extra)
    local s = { apiVersion = "apps/v1", kind = "StatefulSet",
      metadata = { name = name, namespace = "default" },
      spec = { replicas = replicas, serviceName = name, selector = { matchLabels = { app = name } },
        template = tmpl(name, "nginx:1"),
        updateStrategy = { type = "RollingUpdate", rollingUpdate = { partition = 0 } } } }
    for k, v in pairs(extra or {}) do s.spec[k] = v end
    return s
  end

  it("creates pods in order, each waiting for the previous one to be Ready", function()
    local sim = fake.start(fake.new{ ready_after = 1 })
    sim.store:create("statefulsets.apps", sts("web", 3, {
      volumeClaimTemplates = { { metadata = { name = "data" },
        spec = { accessModes = { "ReadWriteOnce" }, resources = { requests = { storage = "1Gi" } } } } } }))
    sim.clock:advance(0.5)
    local names = {}
    for _, p in ipairs(pods(sim, "web")) do names[#names + 1] = p.metadata.name end
    assert.are.same({ "web-0" }, names)
    sim.clock:advance(1)
    assert.are.equal(2, #pods(sim, "web"))
    sim.clock:advance(3)
    local s = get(sim, "statefulsets.apps", "web")
    assert.are.equal(3, s.status.replicas)
    assert.are.equal(3, s.status.readyReplicas)
    assert.are.equal(3, s.status.availableReplicas)
    assert.are.equal(3, s.status.currentReplicas)
    assert.are.equal(3, s.status.updatedReplicas)
    assert.are.equal(1, s.status.observedGeneration)
    assert.are.equal(s.status.currentRevision, s.status.updateRevision)
    assert.truthy(get(sim, "controllerrevisions.apps", s.status.updateRevision))
    local pvc = get(sim, "persistentvolumeclaims", "data-web-2")
    assert.are.equal("Bound", pvc.status.phase)
    assert.are.equal("pvc-" .. pvc.metadata.uid, pvc.spec.volumeName)
    local p0 = get(sim, "pods", "web-0")
    assert.are.equal("data-web-0", p0.spec.volumes[1].persistentVolumeClaim.claimName)
    assert.are.equal("web-0", p0.spec.hostname)
  end)

  it("updates in reverse ordinal order and honours the partition", function()
    local sim = fake.start(fake.new{ ready_after = 1 })
    sim.store:create("statefulsets.apps", sts("db", 3))
    sim.clock:advance(5)
    local old_rev = get(sim, "statefulsets.apps", "db").status.currentRevision
    update(sim, "statefulsets.apps", "db", function(o)
      o.spec.template.spec.containers[1].image = "nginx:2"
      o.spec.updateStrategy.rollingUpdate.partition = 1
    end)
    local order = {}
    for _ = 1, 40 do
      sim.clock:advance(0.25)
      for _, n in ipairs({ "db-2", "db-1", "db-0" }) do
        local p = get(sim, "pods", n)
        if p and p.spec.containers[1].image == "nginx:2" and not order[n] then
          order[n] = true
          order[#order + 1] = n
        end
      end
    end
    assert.are.same({ "db-2", "db-1" }, { order[1], order[2] })
    assert.is_nil(order[3])
    local s = get(sim, "statefulsets.apps", "db")
    assert.are.equal(2, s.status.updatedReplicas)
    assert.are.equal(3, s.status.readyReplicas)
    assert.are.equal(old_rev, s.status.currentRevision)
    assert.are_not.equal(old_rev, s.status.updateRevision)
    update(sim, "statefulsets.apps", "db", function(o) o.spec.updateStrategy.rollingUpdate.partition = 0 end)
    sim.clock:advance(5)
    s = get(sim, "statefulsets.apps", "db")
    assert.are.equal(3, s.status.updatedReplicas)
    assert.are.equal(s.status.updateRevision, s.status.currentRevision)
  end)

  it("Parallel creates all pods at once and scale-down keeps the claims", function()
    local sim = fake.start(fake.new{ ready_after = 1 })
    sim.store:create("statefulsets.apps", sts("par", 3, { podManagementPolicy = "Parallel",
      volumeClaimTemplates = { { metadata = { name = "d" }, spec = { accessModes = { "ReadWriteOnce" } } } } }))
    sim.clock:advance(0.5)
    assert.are.equal(3, #pods(sim, "par"))
    sim.clock:advance(2)
    update(sim, "statefulsets.apps", "par", function(o) o.spec.replicas = 1 end)
    sim.clock:advance(1)
    assert.are.equal(1, #pods(sim, "par"))
    assert.truthy(get(sim, "persistentvolumeclaims", "d-par-2"))
    assert.are.equal(1, get(sim, "statefulsets.apps", "par").status.replicas)
  end)

  it("deletes claims on scale-down and with the set when the retention policy says Delete", function()
    local sim = fake.start(fake.new{ ready_after = 1 })
    sim.store:create("statefulsets.apps", sts("tmp", 2, { podManagementPolicy = "Parallel",
      persistentVolumeClaimRetentionPolicy = { whenDeleted = "Delete", whenScaled = "Delete" },
      volumeClaimTemplates = { { metadata = { name = "d" }, spec = { accessModes = { "ReadWriteOnce" } } } } }))
    sim.clock:advance(2)
    assert.truthy(get(sim, "persistentvolumeclaims", "d-tmp-1"))
    update(sim, "statefulsets.apps", "tmp", function(o) o.spec.replicas = 1 end)
    sim.clock:advance(1)
    assert.is_nil(get(sim, "persistentvolumeclaims", "d-tmp-1"))
    assert.truthy(get(sim, "persistentvolumeclaims", "d-tmp-0"))
    sim.store:delete("statefulsets.apps", "default", "tmp", { propagation = "Background" })
    sim.clock:advance(1)
    assert.is_nil(get(sim, "persistentvolumeclaims", "d-tmp-0"))
  end)
end)

describe("daemonset controller", function()
  after_each(helpers.no_reconcile_errors)

  it("runs one pod per node and reports the counts", function()
    local sim = fake.start(fake.new{ ready_after = 1, nodes = 4 })
    sim.store:create("daemonsets.apps", { apiVersion = "apps/v1", kind = "DaemonSet",
      metadata = { name = "agent", namespace = "default" },
      spec = { selector = { matchLabels = { app = "agent" } }, template = tmpl("agent", "agent:1") } })
    sim.clock:advance(0.5)
    local ds = get(sim, "daemonsets.apps", "agent")
    assert.are.equal(4, ds.status.desiredNumberScheduled)
    assert.are.equal(0, ds.status.numberReady)
    sim.clock:advance(1)
    ds = get(sim, "daemonsets.apps", "agent")
    assert.are.same({ 1, 4, 4, 4, 4, 4 }, { ds.status.observedGeneration, ds.status.desiredNumberScheduled,
      ds.status.currentNumberScheduled, ds.status.numberReady, ds.status.numberAvailable,
      ds.status.updatedNumberScheduled })
    local nodes = {}
    for _, p in ipairs(pods(sim, "agent")) do nodes[p.spec.nodeName] = true end
    assert.are.same({ ["sim-node-1"] = true, ["sim-node-2"] = true, ["sim-node-3"] = true, ["sim-node-4"] = true }, nodes)
    update(sim, "daemonsets.apps", "agent", function(o) o.spec.template.spec.containers[1].image = "agent:2" end)
    local max_unready = 0
    for _ = 1, 40 do
      sim.clock:advance(0.25)
      local d = get(sim, "daemonsets.apps", "agent")
      local un = 4 - (d.status.numberAvailable or 0)
      if un > max_unready then max_unready = un end
    end
    assert.are.equal(1, max_unready)
    ds = get(sim, "daemonsets.apps", "agent")
    assert.are.equal(4, ds.status.updatedNumberScheduled)
    assert.are.equal(4, ds.status.numberAvailable)
    for _, p in ipairs(pods(sim, "agent")) do assert.are.equal("agent:2", p.spec.containers[1].image) end
  end)

  it("counts template changes in deprecated.daemonset.template.generation and labels pods with it", function()
    local sim = fake.start(fake.new{ ready_after = 1, nodes = 2 })
    sim.store:create("daemonsets.apps", { apiVersion = "apps/v1", kind = "DaemonSet",
      metadata = { name = "agent", namespace = "default" },
      spec = { selector = { matchLabels = { app = "agent" } }, template = tmpl("agent", "agent:1") } })
    local function template_generation()
      return get(sim, "daemonsets.apps", "agent").metadata.annotations["deprecated.daemonset.template.generation"]
    end
    assert.are.equal("1", template_generation())
    -- a spec change outside the template bumps metadata.generation only
    update(sim, "daemonsets.apps", "agent", function(o) o.spec.minReadySeconds = 1 end)
    assert.are.same({ 2, "1" }, { get(sim, "daemonsets.apps", "agent").metadata.generation, template_generation() })
    update(sim, "daemonsets.apps", "agent", function(o) o.spec.template.spec.containers[1].image = "agent:2" end)
    assert.are.same({ 3, "2" }, { get(sim, "daemonsets.apps", "agent").metadata.generation, template_generation() })
    sim.clock:advance(15)
    for _, p in ipairs(pods(sim, "agent")) do
      assert.are.same({ "agent:2", "2" }, { p.spec.containers[1].image, p.metadata.labels["pod-template-generation"] })
    end
  end)
end)

describe("job controller", function()
  after_each(helpers.no_reconcile_errors)

  it("runs pods to completion and sets SuccessCriteriaMet and Complete", function()
    local sim = fake.start(fake.new{ ready_after = 1 })
    sim.store:create("jobs.batch", job("once", { completions = 3, parallelism = 2 }))
    sim.clock:advance(0.5)
    local j = get(sim, "jobs.batch", "once")
    assert.are.equal(2, j.status.active)
    assert.truthy(j.status.startTime)
    assert.is_nil(util.get_condition(j, "Complete"))
    sim.clock:advance(10)
    j = get(sim, "jobs.batch", "once")
    assert.are.equal(3, j.status.succeeded)
    assert.is_nil(j.status.active)
    assert.are.equal("True/CompletionsReached", cond(j, "Complete"))
    assert.are.equal("True/CompletionsReached", cond(j, "SuccessCriteriaMet"))
    assert.truthy(j.status.completionTime)
    for _, p in ipairs(pods(sim, "once")) do assert.are.equal("Succeeded", p.status.phase) end
  end)

  it("fails after backoffLimit failed pods", function()
    local sim = fake.start(fake.new{ ready_after = 1, rules = {
      { name = "boom*", job_fails = true } } })
    sim.store:create("jobs.batch", job("boom", { backoffLimit = 2 }))
    sim.clock:advance(30)
    local j = get(sim, "jobs.batch", "boom")
    assert.are.equal(3, j.status.failed)
    assert.are.equal("True/BackoffLimitExceeded", cond(j, "Failed"))
    assert.are.equal("True/BackoffLimitExceeded", cond(j, "FailureTarget"))
    assert.is_nil(util.get_condition(j, "Complete"))
    assert.are.equal(3, #pods(sim, "boom"))
  end)

  it("deletes a finished Job right away with ttlSecondsAfterFinished 0, and later with 30", function()
    local sim = fake.start(fake.new{ ready_after = 1 })
    sim.store:create("jobs.batch", job("gone", { ttlSecondsAfterFinished = 0 }))
    sim.store:create("jobs.batch", job("later", { ttlSecondsAfterFinished = 30 }))
    sim.clock:advance(1.5)
    assert.truthy(get(sim, "jobs.batch", "gone"))
    sim.clock:advance(1)
    assert.is_nil(get(sim, "jobs.batch", "gone"))
    assert.are.equal(0, #pods(sim, "gone"))
    assert.truthy(get(sim, "jobs.batch", "later"))
    sim.clock:advance(31)
    assert.is_nil(get(sim, "jobs.batch", "later"))
  end)

  it("creates no pods while suspended", function()
    local sim = fake.start(fake.new{ ready_after = 1 })
    sim.store:create("jobs.batch", job("sus", { suspend = true }))
    sim.clock:advance(5)
    assert.are.equal(0, #pods(sim, "sus"))
    assert.are.equal("True/JobSuspended", cond(get(sim, "jobs.batch", "sus"), "Suspended"))
    update(sim, "jobs.batch", "sus", function(o) o.spec.suspend = false end)
    sim.clock:advance(5)
    assert.are.equal("True/CompletionsReached", cond(get(sim, "jobs.batch", "sus"), "Complete"))
    assert.are.equal("False/JobResumed", cond(get(sim, "jobs.batch", "sus"), "Suspended"))
  end)
end)

describe("cronjob controller", function()
  after_each(helpers.no_reconcile_errors)

  it("creates Jobs on a */N schedule, named by scheduled minute, and keeps history", function()
    local sim = fake.start(fake.new{ ready_after = 1 })
    -- Start on a minute boundary that */5 matches.
    sim.clock:advance(300 - sim.clock:now() % 300)
    local start = sim.clock:now()
    sim.store:create("cronjobs.batch",
      cronjob("tick", "*/5 * * * *", { successfulJobsHistoryLimit = 2 }, "OnFailure"))
    sim.clock:advance(299)
    assert.are.equal(0, #sim.store:list("jobs.batch", "default"))
    sim.clock:advance(2)
    local jobs = sim.store:list("jobs.batch", "default")
    assert.are.equal(1, #jobs)
    assert.are.equal("tick-" .. math.floor((start + 300) / 60), jobs[1].metadata.name)
    local cj = get(sim, "cronjobs.batch", "tick")
    assert.are.equal(sim.clock:rfc3339(start + 300), cj.status.lastScheduleTime)
    assert.are.equal(1, #cj.status.active)
    sim.clock:advance(10)
    cj = get(sim, "cronjobs.batch", "tick")
    assert.is_nil(cj.status.active)
    assert.truthy(cj.status.lastSuccessfulTime)
    sim.clock:advance(1200)
    jobs = sim.store:list("jobs.batch", "default")
    assert.are.equal(2, #jobs)
    assert.are.equal("tick-" .. math.floor((start + 1500) / 60), jobs[2].metadata.name)
  end)

  it("parses lists and ranges and creates nothing while suspended", function()
    local sim = fake.start(fake.new{ ready_after = 1 })
    sim.clock:advance(3600 - sim.clock:now() % 3600)
    local start = sim.clock:now()
    sim.store:create("cronjobs.batch", cronjob("list", "10,20-21 * * * *"))
    sim.store:create("cronjobs.batch", cronjob("off", "* * * * *", { suspend = true }))
    sim.clock:advance(30 * 60)
    local names = {}
    for _, j in ipairs(sim.store:list("jobs.batch", "default")) do names[#names + 1] = j.metadata.name end
    local m = math.floor(start / 60)
    table.sort(names)
    assert.are.same({ "list-" .. (m + 10), "list-" .. (m + 20), "list-" .. (m + 21) }, names)
  end)
end)

describe("indexed job", function()
  after_each(helpers.no_reconcile_errors)

  it("runs each completion index once and reports completedIndexes", function()
    local sim = fake.start(fake.new{ ready_after = 1 })
    sim.store:create("jobs.batch", job("idx", { completions = 4, parallelism = 2, completionMode = "Indexed" }))
    sim.clock:advance(0.5)
    local names = {}
    for _, p in ipairs(sim.store:list("pods", "default")) do names[#names + 1] = p.metadata.name:match("^(idx%-%d+)%-") end
    table.sort(names)
    assert.are.same({ "idx-0", "idx-1" }, names)
    sim.clock:advance(3)
    assert.are.equal("0-1", get(sim, "jobs.batch", "idx").status.completedIndexes)
    sim.clock:advance(5)
    local j = get(sim, "jobs.batch", "idx")
    assert.are.equal("0-3", j.status.completedIndexes)
    assert.are.equal(4, j.status.succeeded)
    assert.are.equal("True", util.get_condition(j, "Complete").status)
    assert.are.equal(4, #sim.store:list("pods", "default"))
  end)
end)
