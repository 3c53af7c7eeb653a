-- Controlling a running release from outside: atom cancel from a second process, Ctrl-C,
-- a second run refused by the lease, and kill -9 at each state followed by atom resume.
-- The sim makes a pod take 2 s to become ready (--ready-after 20 at time scale 10), so a
-- rollback that needs a new pod is slow enough to be interrupted.
local S = require "release.support"
local json = require "cjson"

describe("a running release #kubectl", function()
  local s, dir
  local run = S.release_suite({ ready_after = 20 }, function(sim, d) s, dir = sim, d end)

  -- Version 1 of release `name` reaches Running.
  local function v1(name)
    local r = run("run " .. dir .. "/release.lua -q", { "NAME=" .. name, "NS=" .. name, "V=1" })
    assert.are.equal(0, r.code, r.stderr)
  end

  local function bg(name, env, flags)
    local e = { "NAME=" .. name, "NS=" .. name }
    for _, kv in ipairs(env) do e[#e + 1] = kv end
    return S.bg(s, "run " .. dir .. "/release.lua -q " .. (flags or ""), { env = e })
  end

  local function reach(name, state)
    return S.eventually(function() return S.state(s, name, name) == state end, 30)
  end

  -- The live objects are exactly version 1's.
  local function assert_v1(name)
    assert.are.same({ "common", "only-v1" }, S.names(s, "configmaps", name))
    assert.are.same({ "web" }, S.names(s, "deployments", name))
    local d = S.kubectl_json(s, "get deployment web -n " .. name)
    assert.are.equal(2, d.spec.replicas)
    assert.are.equal("nginx:1.27", d.spec.template.spec.containers[1].image)
    assert.are.equal("1", S.kubectl_json(s, "get configmap common -n " .. name).data.v)
  end

  it("atom cancel during Updating ends in Reverted", function()
    v1("c1")
    local h = bg("c1", { "V=2", "BAD=1", "DEADLINE=60" })
    assert.truthy(reach("c1", "Updating"))
    -- status from another process names what is not ready and why
    local st = json.decode(run("status c1 -n c1 -o json").stdout)
    assert.are.equal("Updating", st.state)
    local names = {}
    for _, n in ipairs(st.not_ready) do names[#names + 1] = n.object end
    assert.are.same({ "Deployment/c1/bad" }, names)
    -- someone else's write to the record is never overwritten by the runner (409: re-read)
    assert.are.equal(0, s:kubectl("annotate atom c1 -n c1 example.com/note=kept").code)
    local c = run("cancel c1 -n c1 -o json")
    assert.are.equal(0, c.code, c.stderr)
    assert.are.equal("Updating", json.decode(c.stdout).phase)
    assert.are.equal(3, h.wait(60), h.stderr())
    assert.are.equal("Reverted", S.state(s, "c1", "c1"))
    assert_v1("c1")
    local st = json.decode(run("status c1 -n c1 -o json").stdout)
    local path = {}
    for _, t in ipairs(st.transitions) do if t.version == 2 then path[#path + 1] = t.to end end
    assert.are.same({ "Pending", "Updating", "Cancelled", "Rollback", "Reverted" }, path)
    assert.are.equal("kept", S.atom_record(s, "c1", "c1").metadata.annotations["example.com/note"])
  end)

  it("atom cancel during Rollback ends in Failure", function()
    v1("c2")
    local h = bg("c2", { "V=2", "BAD=1", "REPLICAS=1", "DEADLINE=1" })
    assert.truthy(reach("c2", "Rollback"))
    local c = run("cancel c2 -n c2")
    assert.are.equal(0, c.code, c.stderr)
    assert.are.equal(4, h.wait(60), h.stderr())
    assert.are.equal("Failure", S.state(s, "c2", "c2"))
    -- nothing more to cancel once terminal
    assert.are.equal(1, run("cancel c2 -n c2").code)
  end)

  it("Ctrl-C cancels (Cancelled -> Rollback -> Reverted)", function()
    v1("c3")
    local h = bg("c3", { "V=2", "BAD=1", "DEADLINE=60" })
    assert.truthy(reach("c3", "Updating"))
    h.kill("INT")
    assert.are.equal(3, h.wait(60), h.stderr())
    assert.are.equal("Reverted", S.state(s, "c3", "c3"))
    assert_v1("c3")
  end)

  it("a second Ctrl-C exits at once; atom resume finishes from the record", function()
    v1("c4")
    local h = bg("c4", { "V=2", "BAD=1", "REPLICAS=1", "DEADLINE=60" }, "--lease-duration 2")
    assert.truthy(reach("c4", "Updating"))
    h.kill("INT")
    assert.truthy(reach("c4", "Rollback"))
    h.kill("INT")
    assert.are.equal(130, h.wait(10))
    assert.matches("interrupted again", h.stderr())
    assert.are.equal("Rollback", S.state(s, "c4", "c4"))
    local r = S.eventually(function()
      local res = run("resume c4 -n c4 -q")
      if res.code ~= 5 then return res end
    end, 30)
    assert.are.equal(3, r.code, r.stderr)
    assert_v1("c4")
  end)

  it("refuses a second run while the first holds the lease (exit 5 naming the holder)", function()
    v1("l1")
    -- a 1 s lease, renewed every third of it: still held 1.5 s into the run
    local h = bg("l1", { "V=2", "BAD=1", "DEADLINE=4" }, "--lease-duration 1")
    assert.truthy(reach("l1", "Updating"))
    S.sleep(1.5)
    local r = run("run " .. dir .. "/release.lua -q", { "NAME=l1", "NS=l1", "V=3" })
    assert.are.equal(5, r.code, r.stderr)
    assert.matches("held by [^%s]+@[^%s]+/%d+; its lease expires in %d+s", r.stderr)
    assert.are.equal(5, run("resume l1 -n l1").code)
    assert.are.equal(3, h.wait(60), h.stderr())
    -- the refused run changed nothing: no version 3
    local hist = json.decode(run("history l1 -n l1 -o json").stdout)
    assert.are.equal(2, #hist)
  end)

  it("lets exactly one of two simultaneous runs proceed", function()
    v1("l2")
    -- new images: each run waits ~2 s for its pods, so the two overlap
    local a = bg("l2", { "V=2", "TAG=1.28" })
    local b = bg("l2", { "V=3", "TAG=1.29" })
    local codes = { a.wait(60), b.wait(60) }
    table.sort(codes)
    assert.are.same({ 0, 5 }, codes)
    local hist = json.decode(run("history l2 -n l2 -o json").stdout)
    assert.are.equal(2, #hist)
    assert.are.equal("Running", hist[2].state)
  end)

  -- kill -9 at each state, then atom resume: a terminal state, nothing lost.
  local kill_points = {
    { state = "Pending", env = { "V=2", "HOOK_SPIN=20" }, final = "Running", code = 0 },
    { state = "Updating", env = { "V=2", "BAD=1", "DEADLINE=8" }, final = "Reverted", code = 3 },
    -- The rollback's own deadline outlasts the lease's expiry: where the kill lands (before
    -- or after the rollback's apply) decides nothing.
    { state = "Rollback", env = { "V=2", "BAD=1", "REPLICAS=1", "DEADLINE=1", "ROLLBACK_DEADLINE=10" },
      final = "Reverted", code = 3 },
  }
  for i, kp in ipairs(kill_points) do
    it("kill -9 during " .. kp.state .. " then atom resume ends " .. kp.final, function()
      local name = "k" .. i
      v1(name)
      local h = bg(name, kp.env, "--lease-duration 2")
      assert.truthy(reach(name, kp.state))
      h.kill("KILL")
      h.wait(10)
      assert.are.equal(kp.state, S.state(s, name, name))
      local r = S.eventually(function()
        local res = run("resume " .. name .. " -n " .. name .. " -q --lease-duration 2")
        if res.code ~= 5 then return res end
      end, 30)
      assert.truthy(r)
      assert.are.equal(kp.code, r.code, r.stderr)
      assert.are.equal(kp.final, S.state(s, name, name))
      if kp.final == "Reverted" then
        assert_v1(name)
      else
        assert.are.same({ "common", "only-v2" }, S.names(s, "configmaps", name))
        assert.are.equal("2", S.kubectl_json(s, "get configmap common -n " .. name).data.v)
      end
      -- both versions are still recorded, the resumed one with its final state
      local hist = json.decode(run("history " .. name .. " -n " .. name .. " -o json").stdout)
      assert.are.equal(2, #hist)
      assert.are.equal(kp.final, hist[2].state)
      -- a new run after the resume proceeds normally
      local again = run("run " .. dir .. "/release.lua -q", { "NAME=" .. name, "NS=" .. name, "V=3" })
      assert.are.equal(0, again.code, again.stderr)
    end)
  end

  it("a rollback resumed after its deadline gets its whole deadline again", function()
    v1("r9")
    -- Killed in Rollback before its apply (the after-Rollback hook spins), and resumed once
    -- the 3 s the rollback had are over: the resume applies version 1 and waits for it.
    local h = bg("r9", { "V=2", "BAD=1", "REPLICAS=1", "DEADLINE=1", "ROLLBACK_DEADLINE=3", "ROLLBACK_SPIN=60" },
      "--lease-duration 2")
    assert.truthy(reach("r9", "Rollback"))
    local t0 = os.time()
    h.kill("KILL")
    h.wait(10)
    S.eventually(function() return os.time() - t0 >= 5 end, 30)
    assert.are.same({ "common", "only-v2" }, S.names(s, "configmaps", "r9")) -- version 1 not applied yet
    local r = S.eventually(function()
      local res = run("resume r9 -n r9 -q --lease-duration 2")
      if res.code ~= 5 then return res end
    end, 30)
    assert.truthy(r)
    assert.are.equal(3, r.code, r.stderr)
    assert.are.equal("Reverted", S.state(s, "r9", "r9"))
    assert_v1("r9")
  end)

  it("atom run takes over an expired lease and finishes the interrupted version first", function()
    v1("t1")
    local h = bg("t1", { "V=2", "BAD=1", "DEADLINE=8" }, "--lease-duration 2")
    assert.truthy(reach("t1", "Updating"))
    h.kill("KILL")
    h.wait(10)
    local r = S.eventually(function()
      local res = run("run " .. dir .. "/release.lua --lease-duration 2", { "NAME=t1", "NS=t1", "V=3" })
      if res.code ~= 5 then return res end
    end, 30)
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("took over an expired lease", r.stderr)
    local hist = json.decode(run("history t1 -n t1 -o json").stdout)
    assert.are.same({ "Running", "Reverted", "Running" }, { hist[1].state, hist[2].state, hist[3].state })
    assert.are.same({ "common", "only-v3" }, S.names(s, "configmaps", "t1"))
  end)
end)
