-- End to end: real kubectl against a real `atom sim` (ATOM_BIN or build/atom),
-- judging the controllers by what kubectl's rollout status and wait conclude.
local helper = require("helpers.sim")

local function have_binary()
  local f = io.open(helper.bin(), "rb")
  if f then f:close() end
  return f ~= nil and helper.have_api()
end

local e2e = have_binary() and describe or pending

e2e("controllers seen through kubectl #kubectl", function()
  local s, dir

  setup(function()
    dir = helper.tmpdir()
    local scenario = dir .. "/scenario.lua"
    helper.write_file(scenario, [[
      return { rules = { { kind = "Job", name = "doomed", job_fails = true } } }
    ]])
    s = helper.start({ ready_after = 0.5, scenario = scenario })
    helper.write_file(s.dir .. "/objs.yaml", [[
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: app, image: "nginx:1.27"}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: broken}
spec:
  replicas: 1
  progressDeadlineSeconds: 2
  selector: {matchLabels: {app: broken}}
  template:
    metadata: {labels: {app: broken}}
    spec:
      containers: [{name: app, image: "nginx:does-not-exist"}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 2
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: "postgres:16"}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: a, image: "agent:1"}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: migrate}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: m, image: busybox}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: doomed}
spec:
  backoffLimit: 1
  template:
    spec:
      restartPolicy: Never
      containers: [{name: m, image: busybox}]
]])
    local r = s:kubectl("apply -f " .. helper.quote(s.dir .. "/objs.yaml"))
    assert(r.code == 0, r.stderr)
  end)

  teardown(function()
    if s then s.stop() end
    if dir then os.execute("rm -rf " .. helper.quote(dir)) end
  end)

  it("rolls out a Deployment, a StatefulSet and a DaemonSet", function()
    for _, what in ipairs({ "deployment/web", "statefulset/db", "daemonset/agent" }) do
      local r = s:kubectl("rollout status " .. what .. " --timeout=30s")
      assert.are.equal(0, r.code, r.stderr)
    end
    local r = s:kubectl("wait --for=condition=Available deployment/web --timeout=5s")
    assert.are.equal(0, r.code, r.stderr)
  end)

  it("fails the rollout of an image that does not exist at the progress deadline", function()
    local r = s:kubectl("rollout status deployment/broken --timeout=30s")
    assert.are_not.equal(0, r.code)
    assert.truthy(r.stderr:find("exceeded its progress deadline", 1, true))
  end)

  it("completes one Job and fails the other after its backoff limit", function()
    local r = s:kubectl("wait --for=condition=Complete job/migrate --timeout=30s")
    assert.are.equal(0, r.code, r.stderr)
    r = s:kubectl("wait --for=condition=Failed job/doomed --timeout=30s")
    assert.are.equal(0, r.code, r.stderr)
  end)
end)
