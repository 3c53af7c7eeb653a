-- Real kubectl 1.32 against `atom sim`: a rolling update, its history and a
-- rollback, judged the way kubectl judges them.
local K = require "kubectl.kctl"

local has = K.has

local function replica_sets(s)
  local out = {}
  for _, rs in ipairs(K.json(K.ok(s, "get replicasets -l app=roll -o json").stdout).items) do
    out[rs.metadata.name] = { replicas = rs.spec.replicas, image = rs.spec.template.spec.containers[1].image,
      revision = rs.metadata.annotations["deployment.kubernetes.io/revision"] }
  end
  return out
end

describe("kubectl rollout against atom sim #kubectl", function()
  local s = K.serve({ time_scale = 60 })

  it("rolls a new image out through a second ReplicaSet", function()
    K.ok(s, "apply -f " .. K.file(s, "roll.yaml", K.deployment("roll", { replicas = 3 })))
    K.ok(s, "rollout status deployment/roll --timeout=60s")
    assert.equal("deployment.apps/roll image updated\n", K.ok(s, "set image deployment/roll main=nginx:1.28").stdout)
    local r = K.ok(s, "rollout status deployment/roll --timeout=60s")
    assert.truthy(has(r.stdout, 'deployment "roll" successfully rolled out'), r.stdout)
    local sets, active, idle = replica_sets(s), nil, 0
    for name, rs in pairs(sets) do
      if rs.replicas == 3 then active = rs else idle = idle + 1 end
      assert.truthy(name:match("^roll%-[a-z0-9]+$"), name)
    end
    assert.equal("nginx:1.28", active.image)
    assert.equal("2", active.revision)
    assert.equal(1, idle)
    local t = K.table(K.ok(s, "get deployment roll").stdout)
    assert.same({ "roll", "3/3", "3", "3" }, { t.rows[1][1], t.rows[1][2], t.rows[1][3], t.rows[1][4] })
    local old_name, new_name
    for name, rs in pairs(sets) do
      if rs.image == "nginx:1.28" then new_name = name else old_name = name end
    end
    local ev = K.json(K.ok(s, "get events --field-selector involvedObject.kind=Deployment," ..
      "involvedObject.name=roll,reason=ScalingReplicaSet -o json").stdout)
    local said = {}
    for _, e in ipairs(ev.items) do said[e.message] = e.type end
    assert.equal("Normal", said["Scaled up replica set " .. old_name .. " from 0 to 3"])
    assert.equal("Normal", said["Scaled up replica set " .. new_name .. " from 2 to 3"])
    assert.equal("Normal", said["Scaled down replica set " .. old_name .. " from 1 to 0"])
    local d = K.ok(s, "describe deployment roll").stdout
    assert.truthy(has(d, "deployment-controller  Scaled up replica set " .. new_name), d)
  end)

  it("rollout undo brings the first ReplicaSet back as the newest revision", function()
    local before = replica_sets(s)
    local first
    for name, rs in pairs(before) do if rs.image == "nginx:1.27" then first = name end end
    assert.truthy(first)
    assert.equal("deployment.apps/roll rolled back\n", K.ok(s, "rollout undo deployment/roll").stdout)
    K.ok(s, "rollout status deployment/roll --timeout=60s")
    local after = replica_sets(s)
    local n = 0
    for _ in pairs(after) do n = n + 1 end
    assert.equal(2, n)
    assert.equal(3, after[first].replicas)
    assert.equal("3", after[first].revision)
    local h = K.ok(s, "rollout history deployment/roll").stdout
    assert.truthy(h:match("\n2%s+<none>\n3%s+<none>\n"), h)
  end)

  it("rollout restart replaces every pod", function()
    local old = {}
    for name in K.ok(s, "get pods -l app=roll -o name").stdout:gmatch("pod/(%S+)") do old[name] = true end
    assert.equal("deployment.apps/roll restarted\n", K.ok(s, "rollout restart deployment/roll").stdout)
    K.ok(s, "rollout status deployment/roll --timeout=60s")
    local t = K.table(K.ok(s, "get pods -l app=roll").stdout)
    local running = 0
    for _, row in ipairs(t.rows) do
      if row[3] == "Running" then
        running = running + 1
        assert.is_nil(old[row[1]], row[1])
      end
    end
    assert.equal(3, running)
  end)
end)
