-- Every real-world manifest in $ATOM_SHARED_DIR/fixtures/manifests applies to
-- `atom sim` with `kubectl apply --server-side`, one release namespace per
-- folder, and its workloads become ready as kubectl judges it: Deployments
-- `wait --for=condition=Available`, StatefulSets and DaemonSets `rollout
-- status`, Jobs `wait --for=condition=Complete`, CRDs Established before
-- their custom resources are applied.
local sim = require "helpers.sim"
local K = require "kubectl.kctl"

local has = K.has

local function list_yaml(dir)
  local p = assert(io.popen("ls " .. K.quote(dir)))
  local files = {}
  for name in p:lines() do
    if name:match("%.yaml$") then files[#files + 1] = dir .. "/" .. name end
  end
  p:close()
  table.sort(files)
  return files
end

-- The namespace a file hard-codes at metadata level, if any.
local function pinned_namespace(path)
  return (sim.read_file(path) or ""):match("\n  namespace: ([%w%-%.]+)")
end

-- Folder -> { objects it holds (README counts), setup it needs }. The setup is
-- what a real cluster or another tool would provide: the Secret the website's
-- MySQL example expects the reader to create, and the webhook certificate the
-- ingress-nginx admission Job writes with kube-webhook-certgen (simulated pods
-- run no code).
local FOLDERS = {
  { name = "ingress-nginx", objects = 19,
    after = { "create secret generic ingress-nginx-admission -n ingress-nginx " ..
      "--from-literal=ca=sim --from-literal=cert=sim --from-literal=key=sim" } },
  { name = "k8s-website-examples", objects = 16,
    before = { "create secret generic mysql-pass -n %s --from-literal=password=sim" } },
  { name = "kube-state-metrics-standard", objects = 5 },
  { name = "kube-state-metrics-test-kinds", objects = 29 },
  { name = "microservices-demo", objects = 35 },
  { name = "prometheus-operator", objects = 8 },
}

describe("fixture manifests applied with kubectl apply --server-side #kubectl", function()
  local s = K.serve({ time_scale = 60 })

  it("finds the namespaces a real cluster starts with", function()
    local t = K.table(K.ok(s, "get namespaces").stdout)
    local names = {}
    for _, row in ipairs(t.rows) do names[row[1]] = true end
    for _, ns in ipairs({ "default", "kube-system", "kube-public", "kube-node-lease" }) do
      assert.is_true(names[ns] == true, ns)
    end
  end)

  -- A Job with ttlSecondsAfterFinished may be gone before kubectl looks:
  -- then its Completed event is the proof it succeeded.
  local function wait_job(ns, name)
    local r = s:kubectl(string.format("wait --for=condition=Complete --timeout=60s -n %s job/%s", ns, name))
    if r.code == 0 then
      assert.equal("job.batch/" .. name .. " condition met\n", r.stdout)
      return
    end
    assert.truthy(has(r.stderr, 'jobs.batch "' .. name .. '" not found'), r.stderr)
    local ev = K.json(K.ok(s, "get events -n " .. ns .. " -o json").stdout)
    local completed = false
    for _, e in ipairs(ev.items) do
      if e.involvedObject.kind == "Job" and e.involvedObject.name == name and e.reason == "Completed" then
        completed = true
      end
    end
    assert.is_true(completed, "job " .. ns .. "/" .. name .. " vanished without completing")
  end

  for _, folder in ipairs(FOLDERS) do
    it(folder.name .. " applies and becomes ready", function()
      local release = "fx-" .. folder.name
      K.ok(s, "create namespace " .. release)
      for _, cmd in ipairs(folder.before or {}) do K.ok(s, cmd:format(release)) end

      local applied = {}
      local by_ns = {}
      for _, file in ipairs(list_yaml(K.fixtures() .. "/" .. folder.name)) do
        local ns = pinned_namespace(file) or release
        local r = K.ok(s, string.format("apply --server-side -n %s -f %s -o name", ns, K.quote(file)))
        for ref in r.stdout:gmatch("[^\n]+") do
          applied[#applied + 1] = ref
          local kind, name = ref:match("^([^/]+)/(.+)$")
          by_ns[ns] = by_ns[ns] or {}
          table.insert(by_ns[ns], { kind = kind, name = name })
          -- Its custom resources come in a later file: the CRD must be served first.
          if kind == "customresourcedefinition.apiextensions.k8s.io" then
            local w = K.ok(s, "wait --for=condition=Established --timeout=30s crd/" .. name)
            assert.equal(ref .. " condition met\n", w.stdout)
          end
        end
      end
      assert.equal(folder.objects, #applied, table.concat(applied, "\n"))
      for _, cmd in ipairs(folder.after or {}) do K.ok(s, cmd) end

      local checked = 0
      for ns, refs in pairs(by_ns) do
        local deployments = {}
        for _, o in ipairs(refs) do
          if o.kind == "deployment.apps" then
            deployments[#deployments + 1] = "deployment/" .. o.name
          elseif o.kind == "statefulset.apps" or o.kind == "daemonset.apps" then
            local r = K.ok(s, string.format("rollout status --timeout=60s -n %s %s/%s", ns, o.kind, o.name))
            assert.truthy(has(r.stdout, "roll"), r.stdout)
            checked = checked + 1
          elseif o.kind == "job.batch" then
            wait_job(ns, o.name)
            checked = checked + 1
          end
        end
        if #deployments > 0 then
          local r = K.ok(s, string.format("wait --for=condition=Available --timeout=60s -n %s %s", ns,
            table.concat(deployments, " ")))
          local _, met = r.stdout:gsub("condition met", "")
          assert.equal(#deployments, met, r.stdout)
          checked = checked + #deployments
        end
      end
      assert.is_true(checked > 0, "no workload checked in " .. folder.name)
    end)
  end

  it("leaves every fixture Deployment fully rolled out", function()
    local list = K.json(K.ok(s, "get deployments -A -o json").stdout)
    assert.is_true(#list.items >= 17)
    for _, d in ipairs(list.items) do
      local want = d.spec.replicas
      assert.equal(want, d.status.availableReplicas, d.metadata.namespace .. "/" .. d.metadata.name)
      assert.equal(d.metadata.generation, d.status.observedGeneration)
    end
  end)
end)
