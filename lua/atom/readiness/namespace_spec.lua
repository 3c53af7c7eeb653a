local check = require "atom.readiness.namespace"
local readiness = require "atom.readiness"

local function namespace(status, deleting)
  return { apiVersion = "v1", kind = "Namespace",
    metadata = { name = "ingress-nginx", labels = { ["kubernetes.io/metadata.name"] = "ingress-nginx" },
      deletionTimestamp = deleting and "2026-11-26T10:05:00Z" or nil },
    spec = { finalizers = { "kubernetes" } }, status = status }
end

describe("namespace readiness", function()
  it("is ready when Active", function()
    assert.same({ "ready", "namespace is Active" }, { check(namespace({ phase = "Active" })) })
  end)

  it("fails when Terminating, naming what holds the deletion up", function()
    local state, msg = check(namespace({ phase = "Terminating", conditions = {
      { type = "NamespaceContentRemaining", status = "True", reason = "SomeResourcesRemain",
        message = "Some resources are remaining: pods. has 1 resource instances" },
      { type = "NamespaceDeletionDiscoveryFailure", status = "False", reason = "ResourcesDiscovered" } } }))
    assert.equal("failed", state)
    assert.matches("NamespaceContentRemaining=True: SomeResourcesRemain", msg, 1, true)
    assert.not_matches("Discovery", msg)
  end)

  it("is progressing (terminating) through the dispatcher while being deleted", function()
    assert.same({ "progressing", "terminating" },
      { readiness.check(namespace({ phase = "Terminating" }, true)) })
  end)
end)
