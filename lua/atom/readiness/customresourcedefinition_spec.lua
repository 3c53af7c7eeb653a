local check = require "atom.readiness.customresourcedefinition"

local function cond(type_, status, reason, message)
  return { type = type_, status = status, reason = reason, message = message,
    lastTransitionTime = "2026-11-26T10:00:00Z" }
end

local function crd(conditions)
  return { apiVersion = "apiextensions.k8s.io/v1", kind = "CustomResourceDefinition",
    metadata = { name = "servicemonitors.monitoring.coreos.com", generation = 1 },
    spec = { group = "monitoring.coreos.com", scope = "Namespaced",
      names = { kind = "ServiceMonitor", plural = "servicemonitors" } },
    status = { conditions = conditions, storedVersions = { "v1" },
      acceptedNames = conditions and { kind = "ServiceMonitor", listKind = "ServiceMonitorList",
        plural = "servicemonitors", singular = "servicemonitor" } or nil } }
end

describe("customresourcedefinition readiness", function()
  it("is ready once Established with its names accepted", function()
    assert.same({ "ready", "established" }, { check(crd({ cond("NamesAccepted", "True", "NoConflicts"),
      cond("Established", "True", "InitialNamesAccepted") })) })
  end)

  it("waits before the conditions appear", function()
    assert.same({ "progressing", "waiting to be established" }, { check(crd(nil)) })
  end)

  it("waits while installing", function()
    assert.same({ "progressing", "Established=False: Installing: the initial names have been accepted" },
      { check(crd({ cond("NamesAccepted", "True", "NoConflicts"),
        cond("Established", "False", "Installing", "the initial names have been accepted") })) })
  end)

  it("fails on a name conflict", function()
    local state, msg = check(crd({
      cond("NamesAccepted", "False", "PluralConflict", '"servicemonitors" is already in use'),
      cond("Established", "False", "NotAccepted", "not all names are accepted") }))
    assert.equal("failed", state)
    assert.matches("PluralConflict", msg)
  end)

  it("fails on a non-structural schema", function()
    local state = check(crd({ cond("NamesAccepted", "True", "NoConflicts"),
      cond("NonStructuralSchema", "True", "Violations", "spec.versions[0].schema.openAPIV3Schema.type: Required value"),
      cond("Established", "True", "InitialNamesAccepted") }))
    assert.equal("failed", state)
  end)
end)
