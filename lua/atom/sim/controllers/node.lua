-- Creates the simulated Nodes (sim-node-1..N, Ready) when the sim starts, and
-- a default StorageClass so claims without a class bind as on kind/minikube.
--
-- Ownership: nothing kept; the objects live in the store.

local util = require("atom.sim.controllers.util")

return function(sim)
  local store, clock = sim.store, sim.clock
  local n = (sim.opts and sim.opts.nodes) or 3
  local now = clock:rfc3339(clock:now())
  for i = 1, n do
    local name = "sim-node-" .. i
    if not store:get("nodes", nil, name) then
      local node = store:create("nodes", {
        apiVersion = "v1",
        kind = "Node",
        metadata = {
          name = name,
          labels = {
            ["kubernetes.io/hostname"] = name,
            ["kubernetes.io/os"] = "linux",
            ["kubernetes.io/arch"] = "amd64",
            ["beta.kubernetes.io/os"] = "linux",
            ["beta.kubernetes.io/arch"] = "amd64",
          },
        },
        spec = { podCIDR = "10.244." .. i .. ".0/24", podCIDRs = { "10.244." .. i .. ".0/24" } },
      })
      if node then
        local upd = util.copy(sim, node)
        upd.status = {
          conditions = {
            { type = "MemoryPressure", status = "False", reason = "KubeletHasSufficientMemory",
              message = "kubelet has sufficient memory available", lastHeartbeatTime = now, lastTransitionTime = now },
            { type = "DiskPressure", status = "False", reason = "KubeletHasNoDiskPressure",
              message = "kubelet has no disk pressure", lastHeartbeatTime = now, lastTransitionTime = now },
            { type = "PIDPressure", status = "False", reason = "KubeletHasSufficientPID",
              message = "kubelet has sufficient PID available", lastHeartbeatTime = now, lastTransitionTime = now },
            { type = "Ready", status = "True", reason = "KubeletReady",
              message = "kubelet is posting ready status", lastHeartbeatTime = now, lastTransitionTime = now },
          },
          addresses = {
            { type = "InternalIP", address = "172.18.0." .. (1 + i % 250) },
            { type = "Hostname", address = name },
          },
          capacity = { cpu = "8", memory = "32863084Ki", pods = "110", ["ephemeral-storage"] = "102400000Ki" },
          allocatable = { cpu = "8", memory = "32863084Ki", pods = "110", ["ephemeral-storage"] = "102400000Ki" },
          nodeInfo = {
            architecture = "amd64", operatingSystem = "linux", osImage = "atom sim",
            kernelVersion = "6.1.0", containerRuntimeVersion = "containerd://1.7.18",
            kubeletVersion = "v1.32.0", kubeProxyVersion = "v1.32.0",
            machineID = "", systemUUID = "", bootID = "",
          },
          daemonEndpoints = { kubeletEndpoint = { Port = 10250 } },
        }
        store:update_status("nodes", upd)
      end
    end
  end
  local sc_rk = "storageclasses.storage.k8s.io"
  local ok, existing = pcall(store.list, store, sc_rk, nil, nil)
  if ok and existing and #existing == 0 then
    pcall(store.create, store, sc_rk, {
      apiVersion = "storage.k8s.io/v1",
      kind = "StorageClass",
      metadata = {
        name = "standard",
        annotations = { ["storageclass.kubernetes.io/is-default-class"] = "true" },
      },
      provisioner = "atom.sim/hostpath",
      reclaimPolicy = "Delete",
      volumeBindingMode = "Immediate",
    })
  end
end
