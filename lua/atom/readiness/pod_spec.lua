local check = require "atom.readiness.pod"

local function cond(type_, status, reason)
  return { type = type_, status = status, reason = reason, lastTransitionTime = "2026-11-26T10:00:00Z" }
end

-- Shapes as the kubelet reports them (reference §5, "Pod").
local function running_pod()
  return {
    apiVersion = "v1", kind = "Pod",
    metadata = { name = "web-7d9f8c6b5-abcde", namespace = "shop" },
    spec = { restartPolicy = "Always", containers = { { name = "web", image = "nginx:1.27" } } },
    status = {
      phase = "Running", podIP = "10.244.0.12", hostIP = "172.18.0.2", qosClass = "BestEffort",
      startTime = "2026-11-26T10:00:00Z",
      conditions = { cond("PodReadyToStartContainers", "True"), cond("Initialized", "True"),
        cond("ContainersReady", "True"), cond("Ready", "True"), cond("PodScheduled", "True") },
      containerStatuses = { { name = "web", ready = true, started = true, restartCount = 0,
        image = "docker.io/library/nginx:1.27", imageID = "docker.io/library/nginx@sha256:0123",
        state = { running = { startedAt = "2026-11-26T10:00:02Z" } } } },
    },
  }
end

local function waiting_pod(reason, phase)
  local p = running_pod()
  p.status.phase = phase or "Pending"
  p.status.conditions = { cond("Initialized", "True"), cond("Ready", "False", "ContainersNotReady"),
    cond("ContainersReady", "False", "ContainersNotReady"), cond("PodScheduled", "True") }
  p.status.containerStatuses = { { name = "web", ready = false, started = false, restartCount = 0,
    image = "nginx:nope", imageID = "",
    state = { waiting = { reason = reason, message = "Back-off pulling image \"nginx:nope\"" } } } }
  return p
end

describe("pod readiness", function()
  it("is ready when Running with Ready=True", function()
    assert.same({ "ready", "pod is running and ready" }, { check(running_pod()) })
  end)

  it("is ready once Succeeded", function()
    local p = running_pod()
    p.status.phase = "Succeeded"
    assert.equal("ready", (check(p)))
  end)

  it("waits while the container is being created", function()
    local state, msg = check(waiting_pod("ContainerCreating"))
    assert.equal("progressing", state)
    assert.equal('container "web" is waiting: ContainerCreating', msg)
  end)

  it("waits while Running but not Ready", function()
    local p = waiting_pod("ContainerCreating", "Running")
    p.status.containerStatuses[1].state = { running = { startedAt = "2026-11-26T10:00:02Z" } }
    local state, msg = check(p)
    assert.equal("progressing", state)
    assert.equal("Ready=False: ContainersNotReady", msg)
  end)

  it("waits while unschedulable and says why", function()
    local p = running_pod()
    p.status = { phase = "Pending", conditions = { { type = "PodScheduled", status = "False",
      reason = "Unschedulable", message = "0/3 nodes are available: 3 Insufficient cpu." } } }
    local state, msg = check(p)
    assert.equal("progressing", state)
    assert.equal("PodScheduled=False: Unschedulable: 0/3 nodes are available: 3 Insufficient cpu.", msg)
  end)

  it("waits for a pod with no status yet", function()
    local p = running_pod()
    p.status = nil
    assert.same({ "progressing", "pod is not yet scheduled" }, { check(p) })
  end)

  for _, reason in ipairs({ "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CrashLoopBackOff",
                            "CreateContainerConfigError", "CreateContainerError", "RunContainerError" }) do
    it("fails on the terminal waiting reason " .. reason, function()
      local state, msg = check(waiting_pod(reason))
      assert.equal("failed", state)
      assert.matches('container "web" is waiting: ' .. reason, msg, 1, true)
    end)
  end

  it("fails on a terminal reason in an init container", function()
    local p = waiting_pod("PodInitializing")
    p.status.initContainerStatuses = { { name = "migrate", ready = false, restartCount = 2,
      state = { waiting = { reason = "CrashLoopBackOff", message = "back-off 20s" } },
      lastState = { terminated = { exitCode = 1, reason = "Error" } } } }
    local state, msg = check(p)
    assert.equal("failed", state)
    assert.matches('container "migrate"', msg, 1, true)
  end)

  it("fails when the phase is Failed", function()
    local p = running_pod()
    p.status.phase = "Failed"
    p.status.reason = "Evicted"
    assert.same({ "failed", "pod failed: Evicted" }, { check(p) })
  end)

  describe("for hook pods (restartPolicy Never/OnFailure)", function()
    it("does not fail early on a waiting reason", function()
      local p = waiting_pod("ImagePullBackOff")
      p.spec.restartPolicy = "Never"
      assert.equal("progressing", (check(p)))
    end)

    it("is not ready while merely running", function()
      local p = running_pod()
      p.spec.restartPolicy = "OnFailure"
      assert.same({ "progressing", "waiting for the pod to complete" }, { check(p) })
    end)
  end)
end)
