-- atom.kube against a real HTTPS server on loopback (spec/kube/testserver.lua):
-- auth modes, verbs, retries, errors, discovery and watches.
local H = require "kube.helper"
local kube = require "atom.kube"
local json = require "atom.json"

local function count(log, pred)
  local n = 0
  for _, e in ipairs(log) do if pred(e) then n = n + 1 end end
  return n
end

describe("atom.kube client", function()
  local srv, dir
  setup(function()
    srv = H.start {}
    dir = srv.dir
  end)
  teardown(function() srv.stop() end)

  local function connect(user, cluster, extra)
    local p = H.kubeconfig(dir .. "/kc-" .. tostring(math.random(1e9)), {
      server = srv.url, cluster = cluster or { "certificate-authority: " .. srv.pki.ca },
      user = user or { "token: good-token" }, namespace = "default" })
    local opts = { kubeconfig = p, http = H.fast }
    for k, v in pairs(extra or {}) do opts[k] = v end
    return kube.connect(opts)
  end

  describe("authentication and TLS", function()
    it("sends the bearer token over verified TLS", function()
      srv.control("clear_log", {})
      local c = assert(connect())
      assert.truthy(c:apply(H.configmap("tok")))
      local log = srv.log()
      assert.is_true(#log > 0)
      for _, e in ipairs(log) do
        assert.are.equal("Bearer good-token", e.auth)
        assert.matches("^atom/", e.ua)
      end
      assert.are.equal("default", c.namespace)
      assert.are.equal(srv.url, c.server)
      c:close()
    end)

    it("authenticates with a client certificate from files", function()
      srv.control("clear_log", {})
      local c = assert(connect({ "client-certificate: client.crt", "client-key: client.key" }))
      local items = assert(c:list("v1", "ConfigMap", "default"))
      assert.is_table(items)
      local log = srv.log()
      assert.are.equal("alice", log[#log].cn)
      assert.is_nil(log[#log].auth)
    end)

    it("is refused without credentials", function()
      local c = assert(connect({}))
      local obj, err = c:get("v1", "ConfigMap", "default", "x")
      assert.is_nil(obj)
      assert.are.equal(401, err.code)
      assert.matches("get ConfigMap default/x of " .. srv.url, tostring(err), 1, true)
      assert.matches("Unauthorized", tostring(err))
    end)

    it("verifies the server certificate unless told otherwise", function()
      local c = assert(connect(nil, {}))   -- no CA: the system store does not know ours
      local _, err = c:get("v1", "ConfigMap", "default", "x")
      assert.are.equal(0, err.code)
      assert.matches("get ConfigMap default/x of " .. srv.url, tostring(err), 1, true)
      local insecure = assert(connect(nil, { "insecure-skip-tls-verify: true" }))
      local _, err2 = insecure:get("v1", "ConfigMap", "default", "absent")
      assert.are.equal(404, err2.code)
    end)

    it("checks the certificate against tls-server-name", function()
      local good = assert(connect(nil, { "certificate-authority: " .. srv.pki.ca, "tls-server-name: kube.test" }))
      local _, err = good:get("v1", "ConfigMap", "default", "absent")
      assert.are.equal(404, err.code)
      local bad = assert(connect(nil, { "certificate-authority: " .. srv.pki.ca, "tls-server-name: other.test" }))
      local _, err2 = bad:get("v1", "ConfigMap", "default", "absent")
      assert.are.equal(0, err2.code)
    end)

    it("reads tokenFile", function()
      H.write(dir .. "/tokfile", "good-token\n")
      local c = assert(connect({ "tokenFile: tokfile" }))
      local _, err = c:get("v1", "ConfigMap", "default", "absent")
      assert.are.equal(404, err.code)
    end)

    it("runs an exec plugin, caches its token, and re-runs it after a 401", function()
      H.write(dir .. "/exec-token", "exec-1")
      local plugin = H.write(dir .. "/cred.sh", [[#!/bin/sh
echo run >> "$RUNS"
printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"%s"}}' "$(cat "$TOKEN")"
]])
      os.execute("chmod +x " .. plugin)
      os.remove(dir .. "/runs")
      srv.control("tokens", { tokens = { "good-token", "exec-1" } })
      local c = assert(connect({ "exec:", "  apiVersion: client.authentication.k8s.io/v1", "  command: ./cred.sh",
        "  interactiveMode: Never", "  env:", "  - name: RUNS", "    value: " .. dir .. "/runs",
        "  - name: TOKEN", "    value: " .. dir .. "/exec-token" }))
      assert.truthy(c:apply(H.configmap("exec")))
      assert.truthy(c:get("v1", "ConfigMap", "default", "exec"))
      local function runs() local n = 0 for _ in io.lines(dir .. "/runs") do n = n + 1 end return n end
      assert.are.equal(1, runs())
      -- the server rotates: the old token now gets 401, the plugin yields a new one
      H.write(dir .. "/exec-token", "exec-2")
      srv.control("tokens", { tokens = { "good-token", "exec-2" } })
      assert.truthy(c:get("v1", "ConfigMap", "default", "exec"))
      assert.are.equal(2, runs())
      srv.control("tokens", { tokens = { "good-token" } })
    end)

    it("fails to connect, naming file and field, when the exec plugin fails", function()
      local plugin = H.write(dir .. "/broken.sh", "#!/bin/sh\necho 'token expired, run login' >&2\nexit 2\n")
      os.execute("chmod +x " .. plugin)
      local p = H.kubeconfig(dir .. "/kc-broken", { server = srv.url, cluster = { "certificate-authority: " .. srv.pki.ca },
        user = { "exec:", "  apiVersion: client.authentication.k8s.io/v1beta1", "  command: ./broken.sh" } })
      local c, err = kube.connect { kubeconfig = p, http = H.fast }
      assert.is_nil(c)
      assert.are.equal(p, err.file)
      assert.are.equal("users[test-user].user.exec.command", err.field)
      assert.matches("token expired, run login", tostring(err), 1, true)
    end)

    it("merges two kubeconfig files given through KUBECONFIG", function()
      local clusters = H.write(dir .. "/k-clusters", ([[
clusters:
- name: sim
  cluster:
    server: %s
    certificate-authority: %s
]]):format(srv.url, srv.pki.ca))
      local users = H.write(dir .. "/k-users", [[
current-context: mine
users:
- name: me
  user: { token: good-token }
contexts:
- name: mine
  context: { cluster: sim, user: me, namespace: merged }
]])
      local c = assert(kube.connect { env = { KUBECONFIG = clusters .. ":" .. users }, http = H.fast })
      assert.are.equal("merged", c.namespace)
      assert.are.equal("mine", c.context)
      local live = assert(c:apply(H.configmap("m")))
      assert.are.equal("merged", live.metadata.namespace)
    end)

    it("goes through proxy-url", function()
      local proxy = H.start { tls = false }
      finally(proxy.stop)
      -- nothing listens on the server's port: only the proxy can answer
      local p = H.kubeconfig(proxy.dir .. "/kc", { server = "http://127.0.0.1:1",
        cluster = { "proxy-url: " .. proxy.url } })
      local c = assert(kube.connect { kubeconfig = p, http = H.fast })
      assert.truthy(c:apply(H.configmap("via-proxy")))
      local log = proxy.log()
      assert.is_true(#log > 0)
      for _, e in ipairs(log) do assert.is_true(e.proxied) end
    end)

    it("never sends credentials over plain http", function()
      local plain = H.start { tls = false }
      finally(plain.stop)
      local p = H.kubeconfig(plain.dir .. "/kc", { server = plain.url, user = { "token: secret" } })
      local c = assert(kube.connect { kubeconfig = p, http = H.fast })
      assert.truthy(c:apply(H.configmap("p")))
      for _, e in ipairs(plain.log()) do assert.is_nil(e.auth) end
    end)
  end)

  describe("verbs", function()
    local c
    setup(function() c = assert(connect()) end)

    it("creates, gets, updates, patches and deletes", function()
      local created = assert(c:create(H.configmap("v1", { a = "1" })))
      assert.are.equal("1", created.data.a)
      local _, dup = c:create(H.configmap("v1"))
      assert.are.equal(409, dup.code)
      assert.are.equal("AlreadyExists", dup.reason)
      created.data.a = "2"
      local updated = assert(c:update(created))
      assert.are.equal("2", updated.data.a)
      created.data.a = "3"   -- stale resourceVersion now
      local _, conflict = c:update(created)
      assert.are.equal(409, conflict.code)
      local patched = assert(c:patch("v1", "ConfigMap", nil, "v1", { data = { b = "x" } }, "merge"))
      assert.are.same({ a = "2", b = "x" }, patched.data)
      assert.are.equal(true, c:delete("v1", "ConfigMap", nil, "v1", { propagation = "Foreground" }))
      assert.are.equal("absent", c:delete("v1", "ConfigMap", nil, "v1"))
      local gone, err = c:get("v1", "ConfigMap", nil, "v1")
      assert.is_nil(gone)
      assert.are.equal(404, err.code)
      assert.are.equal('get ConfigMap default/v1 of ' .. srv.url .. ': configmaps "v1" not found (NotFound, HTTP 404)',
        tostring(err))
    end)

    it("applies with field manager atom and reports conflicts per field", function()
      srv.control("clear_log", {})
      assert.truthy(c:apply(H.configmap("ssa", { k = "mine", j = "mine" })))
      local e = srv.log()[1]
      assert.matches("fieldManager=atom", e.target, 1, true)
      assert.matches("fieldValidation=Strict", e.target, 1, true)
      assert.are.equal("application/apply-patch+yaml", e.content_type)
      -- A misspelt field fails the apply, naming the field, as it fails kubectl's.
      local typo = H.configmap("typo", { k = "v" })
      typo.daat = { k = "v" }
      local none, terr = c:apply(typo)
      assert.is_nil(none)
      assert.are.equal(400, terr.code)
      assert.matches(".daat: field not declared in schema", tostring(terr), 1, true)
      for _, r in ipairs(c:apply_many({ typo })) do assert.are.equal(400, r.err.code) end
      -- The server's Warning headers come back as text, every one, as kubectl prints them.
      local warned = H.configmap("warned", { k = "v" })
      warned.metadata.annotations = { ["test/warn"] = "v1 ConfigMap is fine, this is a test" }
      local results = {}
      c:apply_many({ warned }, { on_result = function(i, r) results[i] = r end })
      assert.are.same({ "v1 ConfigMap is fine, this is a test", 'a "quoted" second' }, results[1].warnings)
      local _, _, _, plain = c:_finish({}, { status = 200, body = "", warnings = { "not in the RFC form" } })
      assert.are.same({ "not in the RFC form" }, plain)
      -- someone else takes the fields over
      local st = c:request { method = "PATCH", path = "/api/v1/namespaces/default/configmaps/ssa",
        query = { fieldManager = "kubectl" }, body = { data = { k = "theirs", j = "theirs" } },
        content_type = "application/merge-patch+json" }
      assert.are.equal(200, st)
      local live, err = c:apply(H.configmap("ssa", { k = "mine", j = "mine" }))
      assert.is_nil(live)
      assert.are.equal(409, err.code)
      assert.are.same({ ".data.j", ".data.k" }, { err.conflicts[1].field, err.conflicts[2].field })
      assert.matches("conflicting fields: .data.j, .data.k", tostring(err), 1, true)
      assert.matches("apply v1 ConfigMap default/ssa of " .. srv.url, tostring(err), 1, true)
      local forced = assert(c:apply(H.configmap("ssa", { k = "mine", j = "mine" }), { force = true }))
      assert.are.equal("mine", forced.data.k)
    end)

    it("applies many objects concurrently and deletes them again", function()
      local objs = {}
      for i = 1, 150 do objs[i] = H.configmap(("many-%03d"):format(i), { i = tostring(i) }, "bulk") end
      objs[151] = { apiVersion = "v1", kind = "Nope", metadata = { name = "x" } }
      local results = c:apply_many(objs, { force = true })
      for i = 1, 150 do
        assert.is_nil(results[i].err)
        assert.are.equal(tostring(i), results[i].object.data.i)
      end
      assert.matches('does not know kind "Nope"', tostring(results[151].err))
      local items = assert(c:list("v1", "ConfigMap", "bulk"))
      assert.are.equal(150, #items)
      local refs = {}
      for i = 1, 150 do refs[i] = objs[i] end
      refs[151] = { apiVersion = "v1", kind = "ConfigMap", namespace = "bulk", name = "never-there" }
      local del = c:delete_many(refs)
      for i = 1, 150 do assert.are.equal(true, del[i].ok) end
      assert.are.equal("absent", del[151].ok)
      assert.are.equal(0, #assert(c:list("v1", "ConfigMap", "bulk")))
    end)

    it("lists with limit and continue, filling in apiVersion and kind", function()
      for i = 1, 5 do assert.truthy(c:apply(H.configmap("page-" .. i, nil, "pages"))) end
      srv.control("clear_log", {})
      local items, rv = c:list("v1", "ConfigMap", "pages", { limit = 2 })
      assert.are.equal(5, #items)
      assert.is_string(rv)
      assert.are.equal("ConfigMap", items[1].kind)
      assert.are.equal("v1", items[1].apiVersion)
      assert.are.equal(3, #srv.log())
      local one, _, token = c:list("v1", "ConfigMap", "pages", { limit = 2, pages = 1 })
      assert.are.equal(2, #one)
      assert.is_string(token)
      local none = assert(c:list("v1", "ConfigMap", "empty-ns"))
      assert.are.equal("[]", json.encode(none))
    end)

    it("creates events about an object", function()
      local cm = assert(c:apply(H.configmap("evt")))
      local ev = assert(c:event(cm, { reason = "Running", message = "all ready" }))
      assert.are.equal("Running", ev.reason)
      assert.are.equal("evt", ev.involvedObject.name)
      assert.are.equal("atom", ev.source.component)
    end)

    it("passes raw requests through", function()
      local status, body = c:request { method = "GET", path = "/version" }
      assert.are.equal(200, status)
      assert.are.equal("1", body.major)
      local st2, raw = c:request { method = "GET", path = "/version", raw = true }
      assert.are.equal(200, st2)
      assert.is_string(raw)
    end)
    it("hands apply_many results on as they arrive and then keeps only the outcome", function()
      local objs = {}
      for i = 1, 40 do objs[i] = H.configmap(("stream-%02d"):format(i), { i = tostring(i) }, "stream") end
      objs[41] = { apiVersion = "v1", kind = "Nope", metadata = { name = "x" } }
      local seen, idles = {}, 0
      local results = c:apply_many(objs, { force = true, concurrency = 4,
        on_result = function(i, r) seen[i] = r end,
        idle = function() idles = idles + 1 end })
      for i = 1, 40 do
        assert.are.equal(tostring(i), seen[i].object.data.i)
        assert.are.same({ ok = true }, results[i])
      end
      assert.matches('does not know kind "Nope"', tostring(seen[41].err))
      assert.are.equal(seen[41].err, results[41].err)
      assert.is_true(idles >= 1)
      c:delete_many(objs)
    end)

    it("requeue puts events back in front, in order", function()
      c.events = { { type = "MODIFIED", n = 3 } }
      c:requeue({ { type = "ADDED", n = 1 }, { type = "ADDED", n = 2 } })
      local got = {}
      for i, e in ipairs(c.events) do got[i] = e.n end
      assert.are.same({ 1, 2, 3 }, got)
      c.events = {}
    end)
  end)

  describe("retries", function()
    local c
    setup(function() c = assert(connect()) end)

    it("survives a burst of 503", function()
      assert.truthy(c:apply(H.configmap("r503")))
      srv.control("clear_log", {})
      srv.control("faults", { faults = { { match = "GET /api/v1/namespaces/default/configmaps/r503", status = 503, count = 3 } } })
      local obj = assert(c:get("v1", "ConfigMap", nil, "r503"))
      assert.are.equal("r503", obj.metadata.name)
      local log = srv.log()
      assert.are.equal(3, count(log, function(e) return e.fault == 503 end))
      assert.are.equal(4, #log)
    end)

    it("waits out a 429 for as long as Retry-After says", function()
      srv.control("clear_log", {})
      srv.control("faults", { faults = { { match = "GET /api/v1/namespaces/default/configmaps/r503", status = 429,
        retry_after = 1, count = 1 } } })
      assert.truthy(c:get("v1", "ConfigMap", nil, "r503"))
      local log = srv.log()
      assert.are.equal(2, #log)
      assert.are.equal(429, log[1].fault)
      -- backoff_max is 0.2 s here, so only Retry-After explains the gap the server saw
      assert.is_true(log[2].t - log[1].t >= 0.95)
    end)

    it("gives up after the configured tries and says what the server said", function()
      srv.control("faults", { faults = { { match = "GET /api/v1/namespaces/default/configmaps", status = 503,
        count = 50, message = "etcd is sad" } } })
      local items, err = c:list("v1", "ConfigMap", "default")
      assert.is_nil(items)
      assert.are.equal(503, err.code)
      assert.matches("list ConfigMap in namespace default of " .. srv.url .. ": etcd is sad", tostring(err), 1, true)
      srv.control("faults", { clear = true })
      assert.truthy(c:list("v1", "ConfigMap", "default"))
    end)
  end)

  describe("discovery", function()
    it("maps built-in kinds, errors on unknown ones and finds CRDs created meanwhile", function()
      local c = assert(connect())
      local info = assert(c:resource_for("apps/v1", "Deployment"))
      assert.are.same({ "apps", "v1", "deployments", true }, { info.group, info.version, info.resource, info.namespaced })
      assert.is_true(info.verbs.watch)
      assert.is_false(assert(c:resource_for("v1", "Namespace")).namespaced)
      local _, err = c:resource_for("example.com/v1", "Widget")
      assert.matches('the server does not know kind "Widget" in apiVersion "example.com/v1"', tostring(err), 1, true)
      assert.matches(srv.url, tostring(err), 1, true)
      assert.truthy(c:apply({ apiVersion = "apiextensions.k8s.io/v1", kind = "CustomResourceDefinition",
        metadata = { name = "widgets.example.com" },
        spec = { group = "example.com", scope = "Namespaced", names = { plural = "widgets", kind = "Widget" },
                 versions = { { name = "v1", served = true, storage = true } } } }))
      local w = assert(c:resource_for("example.com/v1", "Widget"))
      assert.are.equal("widgets", w.resource)
      local live = assert(c:apply({ apiVersion = "example.com/v1", kind = "Widget", metadata = { name = "w1" },
        spec = { size = 3 } }))
      assert.are.equal(3, live.spec.size)
    end)

    it("uses aggregated discovery when the server offers it", function()
      local agg = H.start { aggregated = true }
      finally(agg.stop)
      local p = H.kubeconfig(agg.dir .. "/kc", { server = agg.url, cluster = { "certificate-authority: " .. agg.pki.ca },
        user = { "token: good-token" } })
      local c = assert(kube.connect { kubeconfig = p, http = H.fast })
      assert.truthy(c:resource_for("apps/v1", "Deployment"))
      assert.truthy(c:resource_for("v1", "ConfigMap"))
      local log = agg.log()
      assert.are.equal(2, #log)
      for _, e in ipairs(log) do assert.matches("apidiscovery.k8s.io", e.accept, 1, true) end
    end)
  end)

  describe("watch", function()
    local c
    setup(function() c = assert(connect()) end)

    local function names(evs, t)
      local out = {}
      for _, e in ipairs(evs) do
        if not t or e.type == t then out[#out + 1] = e.object.metadata.name end
      end
      table.sort(out)
      return out
    end

    it("delivers events, resumes after a drop and re-lists after a 410 event", function()
      assert.truthy(c:apply(H.configmap("a", nil, "w1")))
      assert.truthy(c:apply(H.configmap("b", nil, "w1")))
      local w = assert(c:watch("v1", "ConfigMap", "w1"))
      local evs = H.poll_until(c, function(e) return #e >= 2 end)
      assert.are.same({ "a", "b" }, names(evs, "ADDED"))
      -- a dropped stream resumes from the last RV: no replays, new events flow
      srv.control("drop", {})
      assert.truthy(c:apply(H.configmap("c", nil, "w1")))
      evs = H.poll_until(c, function(e) return #e >= 1 end)
      assert.are.same({ "c" }, names(evs))
      assert.are.equal(2, w.streams)
      assert.are.equal("ADDED", evs[1].type)
      assert.are.equal(w, evs[1].watcher)
      -- b vanishes while the history is compacted: the next resume gets 410
      srv.control("silent_delete", { name = "b" })
      srv.control("expire", { mode = "event" })
      evs = H.poll_until(c, function(e) return #e >= 3 end)
      assert.are.same({ "a", "c" }, names(evs, "RELISTED"))
      assert.are.same({ "b" }, names(evs, "DELETED"))
      -- the deletion is announced from what the watch remembered: a stub, not the object
      for _, e in ipairs(evs) do
        if e.type == "DELETED" then
          assert.are.equal("ConfigMap", e.object.kind)
          assert.are.equal("v1", e.object.apiVersion)
          assert.are.equal("w1", e.object.metadata.namespace)
          assert.truthy(e.object.metadata.uid)
          assert.truthy(e.object.metadata.resourceVersion)
          assert.is_nil(e.object.data)
        end
      end
      -- and watching continues from the list's RV
      assert.truthy(c:apply(H.configmap("d", nil, "w1")))
      evs = H.poll_until(c, function(e) return #e >= 1 end)
      assert.are.same({ "d" }, names(evs, "ADDED"))
      w:close()
    end)

    it("re-lists after an HTTP 410 too", function()
      assert.truthy(c:apply(H.configmap("x", nil, "w2")))
      local w = assert(c:watch("v1", "ConfigMap", "w2"))
      H.poll_until(c, function(e) return #e >= 1 end)
      srv.control("silent_delete", { name = "x" })
      assert.truthy(c:apply(H.configmap("y", nil, "w3")))  -- moves the RV on elsewhere
      srv.control("expire", { mode = "http" })
      local evs = H.poll_until(c, function(e) return #e >= 1 end)
      assert.are.same({ "x" }, names(evs, "DELETED"))
      w:close()
    end)

    it("keeps watch events that arrive while other requests run", function()
      local w = assert(c:watch("v1", "ConfigMap", "w4", { resourceVersion = nil }))
      assert.truthy(c:apply(H.configmap("q1", nil, "w4")))
      assert.truthy(c:apply(H.configmap("q2", nil, "w4")))
      local evs = H.poll_until(c, function(e) return #e >= 2 end)
      assert.are.same({ "q1", "q2" }, names(evs))
      w:close()
      assert.are.same({}, c:poll(0))
    end)
  end)
end)
