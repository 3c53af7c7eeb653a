-- Real kubectl 1.32 against `atom sim`: the everyday commands, their output
-- and exit codes, over HTTP and over HTTPS (bearer token only, client
-- certificate only). One server per transport, shared by its tests in order.
local sim = require "helpers.sim"
local K = require "kubectl.kctl"

local has = K.has

-- Derives a kubeconfig with only one of the two credentials the sim wrote.
local function kubeconfig_with(s, which)
  local url = s.url
  local ca = s.kubeconfig .. ".ca.crt"
  local user
  if which == "token" then
    user = "    token: " .. sim.read_file(s.kubeconfig .. ".token"):gsub("%s+$", "")
  elseif which == "cert" then
    user = "    client-certificate: " .. s.kubeconfig .. ".client.crt\n" ..
      "    client-key: " .. s.kubeconfig .. ".client.key"
  else
    user = "    token: wrong-token"
  end
  return K.file(s, "kubeconfig-" .. which, table.concat({
    "apiVersion: v1", "kind: Config",
    "clusters:", "- name: c", "  cluster:", "    server: " .. url, "    certificate-authority: " .. ca,
    "users:", "- name: u", "  user:", user,
    "contexts:", "- name: x", "  context:", "    cluster: c", "    user: u", "    namespace: default",
    "current-context: x", "" }, "\n"))
end

local function suite(label, start_opts, auth)
  describe("kubectl over " .. label .. " #kubectl", function()
    local s, kc, run

    setup(function()
      s = sim.start(start_opts)
      kc = auth and kubeconfig_with(s, auth) or s.kubeconfig
      run = function(args) return s:kubectl(args, { kubeconfig = kc }) end
    end)

    teardown(function()
      if s then s.stop() end
    end)

    local function ok(args)
      return K.expect(run(args), 0, "kubectl " .. args)
    end

    it("version reports a 1.32 server", function()
      local r = ok("version")
      assert.truthy(r.stdout:match("Server Version: v1%.32%.%d+"), r.stdout)
      local j = K.json(ok("version -o json").stdout)
      assert.equal("1", j.serverVersion.major)
      assert.equal("32", j.serverVersion.minor)
    end)

    it("api-resources lists core and group kinds with their scope", function()
      local t = K.table(ok("api-resources").stdout)
      assert.same({ "NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND" }, t.header)
      local found = {}
      for _, row in ipairs(t.rows) do found[row[1]] = row end
      assert.same({ "deployments", "deploy", "apps/v1", "true", "Deployment" }, found.deployments)
      assert.same({ "namespaces", "ns", "v1", "false", "Namespace" }, found.namespaces)
      assert.same({ "configmaps", "cm", "v1", "true", "ConfigMap" }, found.configmaps)
      local names = ok("api-resources --api-group=batch -o name").stdout
      assert.truthy(has(names, "jobs.batch"), names)
      assert.truthy(has(names, "cronjobs.batch"), names)
    end)

    it("get prints the columns a real server prints", function()
      local t = K.table(ok("get namespaces").stdout)
      assert.same({ "NAME", "STATUS", "AGE" }, t.header)
      local ns = {}
      for _, row in ipairs(t.rows) do ns[row[1]] = row[2] end
      assert.equal("Active", ns.default)
      assert.equal("Active", ns["kube-system"])
      local missing = run("get namespace nope")
      assert.equal(1, missing.code)
      assert.truthy(has(missing.stderr, 'Error from server (NotFound): namespaces "nope" not found'), missing.stderr)
    end)

    it("apply -f creates, configures and leaves unchanged (client side)", function()
      local f = K.file(s, "web.yaml", K.deployment("web", { replicas = 2 }))
      assert.equal("deployment.apps/web created\n", ok("apply -f " .. f).stdout)
      assert.equal("deployment.apps/web unchanged\n", ok("apply -f " .. f).stdout)
      K.file(s, "web.yaml", K.deployment("web", { replicas = 3 }))
      assert.equal("deployment.apps/web configured\n", ok("apply -f " .. f).stdout)
      local j = K.json(ok("get deployment web -o json").stdout)
      assert.equal(3, j.spec.replicas)
      assert.equal(2, j.metadata.generation)
      assert.truthy(j.metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"])
    end)

    it("rollout status and wait --for=condition=Available succeed once ready", function()
      local r = ok("rollout status deployment/web --timeout=60s")
      assert.truthy(has(r.stdout, 'deployment "web" successfully rolled out'), r.stdout)
      r = ok("wait --for=condition=Available deployment/web --timeout=60s")
      assert.equal("deployment.apps/web condition met\n", r.stdout)
    end)

    it("get prints deployment, pod and -o wide columns; -o json and -o yaml round-trip", function()
      local t = K.table(ok("get deployment web").stdout)
      assert.same({ "NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE" }, t.header)
      assert.same({ "web", "3/3", "3", "3" }, { t.rows[1][1], t.rows[1][2], t.rows[1][3], t.rows[1][4] })
      t = K.table(ok("get deployment web -o wide").stdout)
      assert.same({ "NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR" }, t.header)
      assert.same({ "main", "nginx:1.27", "app=web" }, { t.rows[1][6], t.rows[1][7], t.rows[1][8] })
      t = K.table(ok("get pods -l app=web").stdout)
      assert.same({ "NAME", "READY", "STATUS", "RESTARTS", "AGE" }, t.header)
      assert.equal(3, #t.rows)
      for _, row in ipairs(t.rows) do
        assert.truthy(row[1]:match("^web%-[a-z0-9]+%-[a-z0-9]+$"), row[1])
        assert.same({ "1/1", "Running", "0" }, { row[2], row[3], row[4] })
      end
      t = K.table(ok("get replicasets").stdout)
      assert.same({ "NAME", "DESIRED", "CURRENT", "READY", "AGE" }, t.header)
      local list = K.json(ok("get deployments -o json").stdout)
      assert.equal("List", list.kind)
      assert.equal("web", list.items[1].metadata.name)
      assert.equal("Deployment", list.items[1].kind)
      assert.equal(3, list.items[1].status.availableReplicas)
      local y = ok("get deployment web -o yaml").stdout
      assert.truthy(y:match("^apiVersion: apps/v1\n"), y)
      assert.truthy(has(y, "\nkind: Deployment\n"), y)
      assert.truthy(has(y, "\n  name: web\n"), y)
      assert.truthy(y:match('\n  resourceVersion: "%d+"\n'), y)
      assert.truthy(has(y, "\n    type: Available\n"), y)
    end)

    it("services print their columns; a LoadBalancer gets an external IP", function()
      local svc = K.file(s, "svc.yaml", table.concat({
        "apiVersion: v1", "kind: Service", "metadata:", "  name: web-lb", "spec:", "  type: LoadBalancer",
        "  selector:", "    app: web", "  ports:", "  - name: http", "    port: 80", "    targetPort: 80", "" }, "\n"))
      assert.equal("service/web-lb created\n", ok("apply -f " .. svc).stdout)
      assert.equal("service/web-lb unchanged\n", ok("apply -f " .. svc).stdout)
      assert.equal("service/web exposed\n", ok("expose deployment web --port=8080 --target-port=80").stdout)
      local t = K.table(ok("get service web").stdout)
      assert.same({ "NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE" }, t.header)
      assert.equal("ClusterIP", t.rows[1][2])
      assert.truthy(t.rows[1][3]:match("^%d+%.%d+%.%d+%.%d+$"), t.rows[1][3])
      assert.same({ "<none>", "8080/TCP" }, { t.rows[1][4], t.rows[1][5] })
      local lb
      for _ = 1, 50 do
        lb = K.json(ok("get service web-lb -o json").stdout)
        if lb.status.loadBalancer and lb.status.loadBalancer.ingress then break end
        sim.sleep(0.05)
      end
      local ip = lb.status.loadBalancer.ingress[1].ip
      assert.truthy(ip)
      t = K.table(ok("get service web-lb").stdout)
      assert.equal("LoadBalancer", t.rows[1][2])
      assert.equal(ip, t.rows[1][4])
      assert.truthy(t.rows[1][5]:match("^80:%d+/TCP$"), t.rows[1][5])
    end)

    it("diff exits 1 when the live object differs and 0 when it matches", function()
      local f = s.dir .. "/web.yaml"
      local same = run("diff -f " .. f)
      assert.equal(0, same.code, same.stderr)
      assert.equal("", same.stdout)
      K.file(s, "web-changed.yaml", K.deployment("web", { replicas = 4 }))
      local d = run("diff -f " .. s.dir .. "/web-changed.yaml")
      assert.equal(1, d.code, d.stderr)
      assert.truthy(has(d.stdout, "-  replicas: 3\n+  replicas: 4\n"), d.stdout)
    end)

    it("apply --server-side creates and re-applies", function()
      local f = K.file(s, "cfg.yaml", K.configmap("cfg", { a = "1" }))
      assert.equal("configmap/cfg serverside-applied\n", ok("apply --server-side -f " .. f).stdout)
      K.file(s, "cfg.yaml", K.configmap("cfg", { a = "2", b = "3" }))
      assert.equal("configmap/cfg serverside-applied\n", ok("apply --server-side -f " .. f).stdout)
      local j = K.json(ok("get configmap cfg -o json --show-managed-fields").stdout)
      assert.same({ a = "2", b = "3" }, j.data)
      local managers = {}
      for _, m in ipairs(j.metadata.managedFields) do managers[m.manager] = m.operation end
      assert.equal("Apply", managers.kubectl)
      local t = K.table(ok("get configmap cfg").stdout)
      assert.same({ "NAME", "DATA", "AGE" }, t.header)
      assert.same({ "cfg", "2" }, { t.rows[1][1], t.rows[1][2] })
    end)

    it("scale, label and annotate change the object", function()
      assert.equal("deployment.apps/web scaled\n", ok("scale deployment/web --replicas=1").stdout)
      assert.equal("deployment.apps/web labeled\n", ok("label deployment web tier=front").stdout)
      assert.equal("deployment.apps/web annotated\n", ok("annotate deployment web note=hello").stdout)
      local j = K.json(ok("get deployment web -o json").stdout)
      assert.equal(1, j.spec.replicas)
      assert.equal("front", j.metadata.labels.tier)
      assert.equal("hello", j.metadata.annotations.note)
      ok("rollout status deployment/web --timeout=60s")
      local t = K.table(ok("get deployment web --show-labels").stdout)
      assert.equal("1/1", t.rows[1][2])
      assert.equal("app=web,tier=front", t.rows[1][6])
      local again = run("label deployment web tier=back")
      assert.equal(1, again.code)
      assert.truthy(has(again.stderr, "'tier' already has a value (front), and --overwrite is false"), again.stderr)
    end)

    it("logs answers for a pod and for a deployment", function()
      local pod = ok("get pods -l app=web -o name").stdout:match("(pod/%S+)")
      assert.truthy(pod)
      local r = ok("logs " .. pod)
      assert.falsy(has(r.stderr, "error"), r.stderr)
      ok("logs deployment/web")
    end)

    it("get -w streams the change it is watching", function()
      -- kubectl ends the watch at its request timeout; the create happens meanwhile.
      local r = run("get configmaps --watch --output-watch-events --request-timeout=2s & " ..
        "sleep 0.7; kubectl create configmap watched --from-literal=k=v >/dev/null; wait $!")
      assert.equal(0, r.code, r.stderr)
      local t = K.table(r.stdout)
      assert.same({ "EVENT", "NAME", "DATA", "AGE" }, t.header)
      local seen = false
      for _, row in ipairs(t.rows) do
        if row[1] == "ADDED" and row[2] == "watched" then seen = true end
      end
      assert.is_true(seen, r.stdout)
    end)

    it("delete -f deletes, then the object is gone", function()
      local f = s.dir .. "/web.yaml"
      assert.equal('deployment.apps "web" deleted\n', ok("delete -f " .. f .. " --wait=true").stdout)
      local r = run("get deployment web")
      assert.equal(1, r.code)
      assert.equal('Error from server (NotFound): deployments.apps "web" not found\n', r.stderr)
      r = run("delete -f " .. f)
      assert.equal(1, r.code)
      assert.truthy(has(r.stderr, 'Error from server (NotFound): error when deleting'), r.stderr)
    end)
  end)
end

suite("HTTP", { time_scale = 30 })
suite("HTTPS with a bearer token", { tls = true, time_scale = 30 }, "token")

describe("kubectl over HTTPS with a client certificate #kubectl", function()
  local s
  setup(function() s = sim.start({ tls = true }) end)
  teardown(function() if s then s.stop() end end)

  it("authenticates by certificate alone", function()
    local kc = kubeconfig_with(s, "cert")
    local r = K.expect(s:kubectl("get namespace kube-system", { kubeconfig = kc }), 0, "get ns")
    assert.same({ "NAME", "STATUS", "AGE" }, K.table(r.stdout).header)
    local f = K.file(s, "cfg.yaml", K.configmap("c", { x = "y" }))
    r = K.expect(s:kubectl("apply --server-side -f " .. f, { kubeconfig = kc }), 0, "apply")
    assert.equal("configmap/c serverside-applied\n", r.stdout)
  end)

  it("refuses a wrong token with no certificate", function()
    local kc = kubeconfig_with(s, "wrong")
    local r = s:kubectl("get namespaces", { kubeconfig = kc })
    assert.equal(1, r.code)
    assert.truthy(has(r.stderr, "error: You must be logged in to the server"), r.stderr)
  end)
end)
