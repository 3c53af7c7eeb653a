local check = require "atom.readiness.persistentvolumeclaim"

local function pvc(phase, class)
  return { apiVersion = "v1", kind = "PersistentVolumeClaim",
    metadata = { name = "mysql-pv-claim", namespace = "default",
      annotations = phase == "Bound" and { ["pv.kubernetes.io/bind-completed"] = "yes" } or nil },
    spec = { accessModes = { "ReadWriteOnce" }, resources = { requests = { storage = "20Gi" } },
      storageClassName = class or "standard", volumeMode = "Filesystem",
      volumeName = phase == "Bound" and "pvc-0b7e1c2a" or nil },
    status = { phase = phase,
      capacity = phase == "Bound" and { storage = "20Gi" } or nil } }
end

describe("persistentvolumeclaim readiness", function()
  it("is ready when Bound", function()
    assert.same({ "ready", "bound to pvc-0b7e1c2a" }, { check(pvc("Bound")) })
  end)

  it("waits while Pending", function()
    assert.same({ "progressing", "claim is Pending" }, { check(pvc("Pending")) })
  end)

  it("fails when Lost", function()
    assert.equal("failed", (check(pvc("Lost"))))
  end)

  it("does not block on a claim that binds on first consumer", function()
    local ctx = { get = function(kind, name)
      assert.equal("StorageClass", kind)
      if name == "local-wffc" then
        return { apiVersion = "storage.k8s.io/v1", kind = "StorageClass", metadata = { name = name },
          provisioner = "rancher.io/local-path", volumeBindingMode = "WaitForFirstConsumer" }
      end
      return { apiVersion = "storage.k8s.io/v1", kind = "StorageClass", metadata = { name = name },
        provisioner = "rancher.io/local-path", volumeBindingMode = "Immediate" }
    end }
    assert.equal("ready", (check(pvc("Pending", "local-wffc"), ctx)))
    assert.equal("progressing", (check(pvc("Pending", "standard"), ctx)))
  end)
end)
