local check = require "atom.readiness.daemonset"

local function daemonset(status, strategy)
  return { apiVersion = "apps/v1", kind = "DaemonSet",
    metadata = { name = "fluentd-elasticsearch", namespace = "kube-system", generation = 1 },
    spec = { selector = { matchLabels = { name = "fluentd-elasticsearch" } },
      updateStrategy = strategy or { type = "RollingUpdate", rollingUpdate = { maxUnavailable = 1, maxSurge = 0 } } },
    status = status }
end

local function status(changes)
  local s = { observedGeneration = 1, desiredNumberScheduled = 3, currentNumberScheduled = 3,
    updatedNumberScheduled = 3, numberReady = 3, numberAvailable = 3, numberMisscheduled = 0 }
  for k, v in pairs(changes or {}) do s[k] = v end
  return s
end

describe("daemonset readiness", function()
  it("is ready when every node runs an available, updated pod", function()
    assert.same({ "ready", "3 of 3 pods are available" }, { check(daemonset(status())) })
  end)

  it("waits while pods are not ready", function()
    assert.same({ "progressing", "1 of 3 pods are ready" },
      { check(daemonset(status({ numberReady = 1, numberAvailable = 1, numberUnavailable = 2 }))) })
  end)

  it("waits while pods are being updated", function()
    assert.same({ "progressing", "2 out of 3 new pods have been updated" },
      { check(daemonset(status({ updatedNumberScheduled = 2 }))) })
  end)

  it("waits for ready pods to become available", function()
    assert.same({ "progressing", "2 of 3 updated pods are available" },
      { check(daemonset(status({ numberAvailable = 2 }))) })
  end)

  it("is ready with no node to run on, once observed", function()
    assert.equal("ready", (check(daemonset({ observedGeneration = 1 }))))
    assert.equal("progressing", (check(daemonset(nil))))
  end)

  it("with OnDelete does not wait for pods to be updated", function()
    assert.equal("ready", (check(daemonset(status({ updatedNumberScheduled = 0 }), { type = "OnDelete" }))))
  end)

  -- ctx.related as the waiter gives it to a DaemonSet stuck progressing: its pods.
  local function pulling(name, template_generation)
    return { metadata = { name = name, labels = { name = "fluentd-elasticsearch",
        ["pod-template-generation"] = template_generation } },
      spec = { restartPolicy = "Always", containers = { { name = "fluentd" } } },
      status = { phase = "Pending", containerStatuses = { { name = "fluentd", ready = false,
        state = { waiting = { reason = "ImagePullBackOff", message = "Back-off pulling image" } } } } } }
  end
  local function ctx_with(pods)
    return { related = function(kind, sel)
      assert.equal("Pod", kind)
      assert.same({ matchLabels = { name = "fluentd-elasticsearch" } }, sel)
      return pods
    end }
  end
  local function at_template(ds, generation)
    ds.metadata.annotations = { ["deprecated.daemonset.template.generation"] = generation }
    return ds
  end
  local updating = status({ numberReady = 2, numberAvailable = 2, updatedNumberScheduled = 1 })

  it("fails fast when a pod of the current template cannot start", function()
    local state, msg = check(at_template(daemonset(updating), "2"), ctx_with({ pulling("fluentd-x7k2p", "2") }))
    assert.equal("failed", state)
    assert.matches('pod fluentd%-x7k2p: container "fluentd" is waiting: ImagePullBackOff', msg)
  end)

  it("does not fail for a pod of an older template, which the update replaces", function()
    local state = check(at_template(daemonset(updating), "2"), ctx_with({ pulling("fluentd-q9w4m", "1") }))
    assert.equal("progressing", state)
  end)

  it("without the template annotation, any of its pods failing fails it", function()
    assert.equal("failed", (check(daemonset(updating), ctx_with({ pulling("fluentd-x7k2p", "1") }))))
  end)

  it("does not look at pods without ctx.related", function()
    assert.equal("progressing", (check(at_template(daemonset(updating), "2"))))
  end)
end)
