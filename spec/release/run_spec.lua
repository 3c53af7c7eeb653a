-- atom run end to end against `atom sim`: fixtures reach Running and show in kubectl and
-- atom history; a never-ready version goes Deadline -> Rollback -> Reverted and leaves
-- exactly the first version's objects; bad input changes nothing; the read-only verbs.
local S = require "release.support"
local json = require "cjson"

local FIXTURES = (os.getenv("ATOM_SHARED_DIR") or "../shared") .. "/fixtures/manifests"

describe("atom run #kubectl", function()
  local s, dir
  local run = S.release_suite({ ready_after = 1 }, function(sim, d) s, dir = sim, d end)

  it("releases real fixture manifests to Running, visible to kubectl and atom history", function()
    local fx = S.script(string.format([[
local atom = require "atom"
return { name = "demo", namespace = "demo", deadline = 30,
  objects = { atom.yaml(%q), atom.yaml(%q) } }
]], FIXTURES .. "/microservices-demo/kubernetes-manifests.yaml",
    FIXTURES .. "/prometheus-operator/*.yaml"))
    local r = run("run " .. fx .. "/release.lua --allow-read-outside -q")
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("demo: version 1 Running", r.stdout)

    local atoms = s:kubectl("get atoms -n demo")
    assert.are.equal(0, atoms.code, atoms.stderr)
    assert.matches("demo%s+Running%s+1", atoms.stdout)
    local versions = s:kubectl("get atomversions -n demo")
    assert.matches("demo%.v1%s+demo%s+1%s+Running", versions.stdout)

    local events = S.kubectl_json(s, "get events -n demo --field-selector involvedObject.kind=Atom")
    local seen = {}
    for _, e in ipairs(events.items) do seen[e.reason] = e.message end
    assert.matches("^%(none%) => Pending: version 1", seen.Pending)
    assert.matches("^Pending => Updating: applied 43 objects", seen.Updating)
    assert.matches("^Updating => Running: 43 objects ready", seen.Running)

    local h = run("history demo -n demo -o json")
    assert.are.equal(0, h.code, h.stderr)
    local hist = json.decode(h.stdout)
    assert.are.equal(1, #hist)
    assert.are.equal("Running", hist[1].state)
    assert.matches("^%x+$", hist[1].digest)
    assert.matches("@", hist[1].who)
    -- a custom resource of a CRD in the same release is there, labelled
    local sm = S.kubectl_json(s, "get servicemonitors -n demo")
    assert.are.equal(1, #sm.items)
    assert.are.equal("demo", sm.items[1].metadata.labels["atom.dev/release"])
  end)

  it("rolls a never-ready version back to exactly the first version's objects", function()
    local r1 = run("run " .. dir .. "/release.lua -q", { "V=1" })
    assert.are.equal(0, r1.code, r1.stderr)
    assert.are.same({ "common", "only-v1" }, S.names(s, "configmaps", "shop"))

    local r2 = run("run " .. dir .. "/release.lua", { "V=2", "TAG=does-not-exist", "DEADLINE=2" })
    assert.are.equal(3, r2.code, r2.stderr)
    assert.matches("shop: version 2 Reverted", r2.stdout)
    -- logfmt transition lines on stderr
    assert.matches('from=Updating to=Deadline reason="', r2.stderr)
    assert.matches("release=shop version=2 from=Deadline to=Rollback", r2.stderr)
    assert.matches("from=Rollback to=Reverted", r2.stderr)

    -- the object v2 added is gone, the one it removed is back, the image is v1's
    assert.are.same({ "common", "only-v1" }, S.names(s, "configmaps", "shop"))
    assert.are.equal("nginx:1.27", S.image(s, "shop", "web"))
    local cm = S.kubectl_json(s, "get configmap common -n shop")
    assert.are.equal("1", cm.data.v)

    local st = json.decode(run("status shop -n shop -o json").stdout)
    assert.are.equal("Reverted", st.state)
    assert.are.equal(2, st.version)
    assert.are.equal(1, st.previous)
    local path = {}
    for _, t in ipairs(st.transitions) do
      if t.version == 2 then path[#path + 1] = t.to end
    end
    assert.are.same({ "Pending", "Updating", "Deadline", "Rollback", "Reverted" }, path)

    -- previous stays the last Running version: a third good version rolls back to... itself
    local r3 = run("run " .. dir .. "/release.lua -q", { "V=3" })
    assert.are.equal(0, r3.code, r3.stderr)
    local a = S.atom_record(s, "shop", "shop")
    assert.are.equal(3, a.status.version)
    assert.are.equal(1, a.status.previous)
    assert.are.same({ "common", "only-v3" }, S.names(s, "configmaps", "shop"))

    -- atom rollback: a new version with version 1's objects
    local rb = run("rollback shop -n shop -q")
    assert.are.equal(0, rb.code, rb.stderr)
    assert.matches("shop: version 4 Running", rb.stdout)
    assert.are.same({ "common", "only-v1" }, S.names(s, "configmaps", "shop"))
    local hist = json.decode(run("history shop -n shop -o json").stdout)
    assert.are.equal(4, #hist)
    assert.are.equal(1, hist[4].rollback_of)
    assert.are.same({ "Running", "Reverted", "Running", "Running" },
      { hist[1].state, hist[2].state, hist[3].state, hist[4].state })
  end)

  it("installs its CRDs with printer columns and upgrades them when the schema hash differs", function()
    assert.are.equal(0, run("run " .. dir .. "/release.lua -q", { "NAME=crdup", "NS=crdup" }).code)
    local crd = S.kubectl_json(s, "get crd atoms.atom.dev")
    local cols = {}
    for _, c in ipairs(crd.spec.versions[1].additionalPrinterColumns) do cols[#cols + 1] = c.name end
    assert.are.same({ "State", "Version", "Previous", "Age" }, cols)
    local hash = crd.metadata.annotations["atom.dev/schema-hash"]
    assert.matches("^%x+$", hash)
    assert.are.equal(0, s:kubectl("annotate crd atomversions.atom.dev --overwrite atom.dev/schema-hash=old").code)
    assert.are.equal(0, run("run " .. dir .. "/release.lua -q", { "NAME=crdup", "NS=crdup", "V=2" }).code)
    local v = S.kubectl_json(s, "get crd atomversions.atom.dev")
    assert.are.equal(hash, v.metadata.annotations["atom.dev/schema-hash"])
  end)

  it("removes what a first version created when it fails", function()
    local r = run("run " .. dir .. "/release.lua -q", { "NAME=fresh", "NS=fresh", "TAG=does-not-exist", "DEADLINE=1" })
    assert.are.equal(3, r.code, r.stderr)
    assert.are.same({}, S.names(s, "configmaps", "fresh"))
    assert.are.same({}, S.names(s, "deployments", "fresh"))
    assert.are.equal("Reverted", S.state(s, "fresh", "fresh"))
  end)

  it("passes on the server's warnings, as kubectl prints them", function()
    local d = S.script([[
return { name = "warned", namespace = "warned", objects = {
  { apiVersion = "v1", kind = "ConfigMap", metadata = { name = "fin", finalizers = { "cleanup" } } } } }
]])
    local r = run("run " .. d .. "/release.lua", {})
    assert.are.equal(0, r.code, r.stderr)
    assert.truthy(r.stderr:find('ConfigMap/warned/fin: warning from the server: metadata.finalizers: \\"cleanup\\": ' ..
      "prefer a domain-qualified finalizer name", 1, true), r.stderr)
  end)

  it("never prunes the objects of a release of the same name in another namespace", function()
    local objs = [[
local atom = require "atom"
return { name = "twin", namespace = atom.env("NS", "a"), objects = {
  { apiVersion = "v1", kind = "ConfigMap", metadata = { name = atom.env("CM", "one") } },
  { apiVersion = "rbac.authorization.k8s.io/v1", kind = "ClusterRole", metadata = { name = "twin-" .. atom.env("NS", "a") } } } }
]]
    local d = S.script(objs)
    assert.are.equal(0, run("run " .. d .. "/release.lua -q", { "NS=twin-a" }).code)
    assert.are.equal(0, run("run " .. d .. "/release.lua -q", { "NS=twin-b" }).code)
    assert.are.equal(0, run("run " .. d .. "/release.lua -q", { "NS=twin-a", "CM=two" }).code)
    assert.are.same({ "two" }, S.names(s, "configmaps", "twin-a"))
    assert.are.same({ "one" }, S.names(s, "configmaps", "twin-b"))
    assert.are.equal(0, s:kubectl("get clusterrole twin-twin-a twin-twin-b").code)
  end)

  it("diff of a release whose namespace does not exist yet shows creates", function()
    local r = run("diff " .. dir .. "/release.lua -o json", { "NAME=nodiff", "NS=nodiff" })
    assert.are.equal(0, r.code, r.stderr)
    for _, c in ipairs(json.decode(r.stdout).changes) do assert.are.equal("create", c.action) end
    assert.are_not.equal(0, s:kubectl("get namespace nodiff").code)
  end)

  it("keeps history_limit versions", function()
    for i = 1, 4 do
      local r = run("run " .. dir .. "/release.lua -q --history-limit 2", { "NAME=hist", "NS=hist", "V=" .. i })
      assert.are.equal(0, r.code, r.stderr)
    end
    assert.are.same({ "hist.v3", "hist.v4" }, S.names(s, "atomversions", "hist"))
  end)

  describe("bad input exits 2 before anything is written", function()
    local cases = {
      { "invalid YAML", "a: [1, 2\nb: c\n", "bad%.yaml:%d+" },
      { "an object without a kind", "apiVersion: v1\nmetadata:\n  name: x\n", "bad%.yaml:%d+.*kind" },
      { "a name that is not a DNS label", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Not_A_Name\n", "bad%.yaml:%d+" },
    }
    for _, c in ipairs(cases) do
      it(c[1], function()
        local d = S.script([[
local atom = require "atom"
return { name = "bad", namespace = "bad", objects = { atom.yaml("bad.yaml") } }
]])
        local f = assert(io.open(d .. "/bad.yaml", "w")); f:write(c[2]); f:close()
        for _, verb in ipairs({ "run", "check" }) do
          local r = run(verb .. " " .. d .. "/release.lua -q")
          assert.are.equal(2, r.code, r.stderr)
          assert.matches(c[3], r.stderr)
        end
        assert.are_not.equal(0, s:kubectl("get namespace bad").code)
      end)
    end

    it("an unknown kind", function()
      local d = S.script([[
local atom = require "atom"
return { name = "unknown", namespace = "unknown", deadline = 5, objects = { atom.yaml("m.yaml") } }
]])
      local f = assert(io.open(d .. "/m.yaml", "w"))
      f:write("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\n"
        .. "apiVersion: example.com/v1\nkind: Gizmo\nmetadata:\n  name: g\n")
      f:close()
      local r = run("run " .. d .. "/release.lua -q")
      assert.are.equal(2, r.code, r.stderr)
      assert.matches("m%.yaml:6.*unknown kind Gizmo", r.stderr)
      assert.are_not.equal(0, s:kubectl("get namespace unknown").code)
    end)

    it("a usage error", function()
      assert.are.equal(2, run("run").code)
      assert.are.equal(2, run("status a b").code)
      assert.are.equal(2, run("run x.lua --deadline soon").code)
    end)
  end)

  it("check validates without a cluster; diff shows changes and prunes without changing anything", function()
    local c = S.atom(s, "check " .. dir .. "/release.lua -o json", { kubeconfig = "/nonexistent" })
    assert.are.equal(0, c.code, c.stderr)
    assert.are.equal(3, json.decode(c.stdout).objects)

    local before = S.kubectl_json(s, "get configmap common -n shop").metadata.resourceVersion
    local d = run("diff " .. dir .. "/release.lua -o json", { "V=9", "TAG=1.28" })
    assert.are.equal(0, d.code, d.stderr)
    local res = json.decode(d.stdout)
    local by = {}
    for _, ch in ipairs(res.changes) do by[ch.object] = ch end
    assert.are.equal("update", by["Deployment/shop/web"].action)
    assert.are.equal("update", by["ConfigMap/shop/common"].action)
    assert.are.equal("create", by["ConfigMap/shop/only-v9"].action)
    assert.are.same({ "ConfigMap/shop/only-v1" }, res.prune)
    assert.are.equal(before, S.kubectl_json(s, "get configmap common -n shop").metadata.resourceVersion)
    assert.are.same({ "common", "only-v1" }, S.names(s, "configmaps", "shop"))
  end)
end)
