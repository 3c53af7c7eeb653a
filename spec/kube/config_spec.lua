-- kubeconfig loading: precedence, merging, relative paths, and the errors a
-- user sees for bad input (each names the file and the field).
local H = require "kube.helper"
local config = require "atom.kube.config"

describe("atom.kube.config", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() os.execute("rm -rf " .. dir) end)

  local function kc(name, spec) return H.kubeconfig(dir .. "/" .. name, spec) end

  it("reads the current context, its namespace and a token", function()
    local p = kc("a", { server = "https://127.0.0.1:6443", user = { "token: abc" }, namespace = "team" })
    local cfg = assert(config.load { kubeconfig = p })
    assert.are.equal("https://127.0.0.1:6443", cfg.server)
    assert.are.equal("team", cfg.namespace)
    assert.are.equal("test", cfg.context)
    assert.are.equal("abc", config.credential(cfg).token)
  end)

  it("defaults the namespace to default and lets the caller override it", function()
    local p = kc("a", { server = "https://h:1" })
    assert.are.equal("default", config.load { kubeconfig = p }.namespace)
    assert.are.equal("x", config.load { kubeconfig = p, namespace = "x" }.namespace)
  end)

  it("merges KUBECONFIG files: the first file defining a name wins", function()
    local a = H.write(dir .. "/a", [[
current-context: one
clusters:
- name: c1
  cluster: { server: "https://first:1" }
contexts:
- name: one
  context: { cluster: c1, namespace: from-a }
]])
    local b = H.write(dir .. "/b", [[
current-context: two
clusters:
- name: c1
  cluster: { server: "https://second:1" }
- name: c2
  cluster: { server: "https://only-b:2" }
users:
- name: u2
  user: { token: tok-b }
contexts:
- name: two
  context: { cluster: c2, user: u2 }
]])
    local env = { KUBECONFIG = a .. ":" .. dir .. "/missing:" .. b }
    local cfg = assert(config.load { env = env })
    assert.are.equal("https://first:1", cfg.server)     -- a's current-context and c1
    assert.are.equal("from-a", cfg.namespace)
    local cfg2 = assert(config.load { env = env, context = "two" })
    assert.are.equal("https://only-b:2", cfg2.server)   -- context only in b, user only in b
    assert.are.equal("tok-b", config.credential(cfg2).token)
  end)

  it("--kubeconfig beats KUBECONFIG, which beats ~/.kube/config", function()
    local a = kc("a", { server = "https://a:1" })
    local b = kc("b", { server = "https://b:1" })
    os.execute("mkdir -p " .. dir .. "/home/.kube")
    kc("home/.kube/config", { server = "https://home:1" })
    assert.are.equal("https://a:1", config.load { kubeconfig = a, env = { KUBECONFIG = b } }.server)
    assert.are.equal("https://b:1", config.load { env = { KUBECONFIG = b, HOME = dir .. "/home" } }.server)
    assert.are.equal("https://home:1", config.load { env = { KUBECONFIG = false, HOME = dir .. "/home" } }.server)
  end)

  it("resolves relative paths against the kubeconfig's directory", function()
    os.execute("mkdir -p " .. dir .. "/sub/certs")
    H.write(dir .. "/sub/certs/ca.pem", "CA-PEM")
    H.write(dir .. "/sub/tok", "  file-token\n")
    local p = kc("sub/config", { server = "https://h:1", cluster = { "certificate-authority: certs/ca.pem" },
                                 user = { "tokenFile: tok" } })
    local cfg = assert(config.load { kubeconfig = p })
    assert.are.equal("CA-PEM", cfg.ca_pem)
    assert.are.equal("file-token", config.credential(cfg).token)
    H.write(dir .. "/sub/tok", "rotated")
    assert.are.equal("rotated", config.credential(cfg, { refresh = true }).token)
  end)

  it("decodes *-data fields and rejects a CA combined with insecure-skip-tls-verify", function()
    local core = require "atom.core"
    local p = kc("a", { server = "https://h:1", cluster = { "certificate-authority-data: " .. core.base64_encode("CA!") },
      user = { "client-certificate-data: " .. core.base64_encode("CERT"), "client-key-data: " .. core.base64_encode("KEY") } })
    local cfg = assert(config.load { kubeconfig = p })
    assert.are.same({ "CA!", "CERT", "KEY" }, { cfg.ca_pem, cfg.client_cert_pem, cfg.client_key_pem })
    local q = kc("b", { server = "https://h:1", cluster = { "certificate-authority-data: " .. core.base64_encode("CA!"),
      "insecure-skip-tls-verify: true" } })
    local _, err = config.load { kubeconfig = q }
    assert.matches("insecure%-skip%-tls%-verify", err.field)
  end)

  describe("bad input names the file and field", function()
    it("a file that is not YAML", function()
      local p = H.write(dir .. "/bad", "clusters: [\n  - {name: x\n")
      local cfg, err = config.load { kubeconfig = p }
      assert.is_nil(cfg)
      assert.are.equal(p, err.file)
      assert.matches("not valid YAML", tostring(err))
      assert.matches(p, tostring(err), 1, true)
    end)

    it("a kubeconfig that is a list, not a mapping", function()
      local p = H.write(dir .. "/list", "- a\n- b\n")
      local _, err = config.load { kubeconfig = p }
      assert.matches("mapping", tostring(err))
    end)

    it("a context that does not exist", function()
      local p = kc("a", { server = "https://h:1" })
      local _, err = config.load { kubeconfig = p, context = "nope" }
      assert.are.equal("contexts", err.field)
      assert.are.equal(p, err.file)
      assert.matches('context "nope" does not exist', tostring(err))
    end)

    it("a current-context that does not exist", function()
      local p = kc("a", { server = "https://h:1", current = "ghost" })
      local _, err = config.load { kubeconfig = p }
      assert.are.equal("current-context", err.field)
    end)

    it("a CA file that cannot be read", function()
      local p = kc("a", { server = "https://h:1", cluster = { "certificate-authority: no/such/ca.crt" } })
      local _, err = config.load { kubeconfig = p }
      assert.are.equal(p, err.file)
      assert.are.equal("clusters[test-cluster].cluster.certificate-authority", err.field)
      assert.matches(dir .. "/no/such/ca.crt", tostring(err), 1, true)
    end)

    it("a missing --kubeconfig file", function()
      local _, err = config.load { kubeconfig = dir .. "/absent" }
      assert.matches("cannot read kubeconfig: .*No such file", tostring(err))
      assert.are.equal(dir .. "/absent", err.file)
    end)

    it("an unknown exec apiVersion", function()
      local p = kc("a", { server = "https://h:1", user = { "exec:", "  apiVersion: client.authentication.k8s.io/v9",
        "  command: x" } })
      local _, err = config.load { kubeconfig = p }
      assert.are.equal("users[test-user].user.exec.apiVersion", err.field)
    end)
  end)

  describe("exec credential plugins", function()
    local function plugin(body)
      local p = H.write(dir .. "/plugin.sh", "#!/bin/sh\n" .. body .. "\n")
      os.execute("chmod +x " .. p)
      return p
    end

    local function exec_kc(api, extra)
      local user = { "exec:", "  apiVersion: client.authentication.k8s.io/" .. api,
        "  command: ./plugin.sh", "  interactiveMode: Never", "  provideClusterInfo: true",
        "  env:", "  - name: COUNT", "    value: " .. dir .. "/count" }
      for _, l in ipairs(extra or {}) do user[#user + 1] = l end
      return kc("a", { server = "https://h:1", user = user })
    end

    it("runs the plugin (relative to the kubeconfig) and caches until expiry, for v1 and v1beta1", function()
      for _, api in ipairs { "v1", "v1beta1" } do
        os.remove(dir .. "/count")
        plugin(([[echo x >> "$COUNT"
echo "$KUBERNETES_EXEC_INFO" > "$COUNT.info"
echo '{"apiVersion":"client.authentication.k8s.io/%s","kind":"ExecCredential","status":{"token":"t-'$(wc -l < "$COUNT")'","expirationTimestamp":"2099-01-01T00:00:00Z"}}']]):format(api))
        local cfg = assert(config.load { kubeconfig = exec_kc(api) })
        assert.are.equal("t-1", config.credential(cfg).token)
        assert.are.equal("t-1", config.credential(cfg).token)
        assert.are.equal("t-2", config.credential(cfg, { refresh = true }).token)
        local info = require("atom.json").decode(H.read(dir .. "/count.info"))
        assert.are.equal("ExecCredential", info.kind)
        assert.are.equal("https://h:1", info.spec.cluster.server)
        assert.is_false(info.spec.interactive)
      end
    end)

    it("re-runs the plugin once the credential has expired", function()
      plugin([[echo x >> "$COUNT"
echo '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"n'$(wc -l < "$COUNT")'","expirationTimestamp":"2001-01-01T00:00:00Z"}}']])
      local cfg = assert(config.load { kubeconfig = exec_kc("v1") })
      assert.are.equal("n1", config.credential(cfg).token)
      assert.are.equal("n2", config.credential(cfg).token)
    end)

    it("reports a plugin that exits non-zero, with its stderr", function()
      plugin("echo 'login required' >&2; exit 3")
      local p = exec_kc("v1")
      local cfg = assert(config.load { kubeconfig = p })
      local cred, err = config.credential(cfg)
      assert.is_nil(cred)
      assert.are.equal(p, err.file)
      assert.are.equal("users[test-user].user.exec.command", err.field)
      assert.matches("exited with status 3: login required", tostring(err))
    end)

    it("reports a plugin that prints nonsense", function()
      plugin("echo 'hello, I am not JSON'")
      local cfg = assert(config.load { kubeconfig = exec_kc("v1") })
      local _, err = config.credential(cfg)
      assert.matches("not an ExecCredential", tostring(err))
      assert.matches("hello, I am not JSON", tostring(err), 1, true)
    end)

    it("reports a plugin answering with another apiVersion", function()
      plugin([[echo '{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","status":{"token":"x"}}']])
      local cfg = assert(config.load { kubeconfig = exec_kc("v1") })
      local _, err = config.credential(cfg)
      assert.are.equal("users[test-user].user.exec.apiVersion", err.field)
    end)

    it("reports a plugin that cannot be started", function()
      local p = kc("a", { server = "https://h:1", user = { "exec:", "  apiVersion: client.authentication.k8s.io/v1",
        "  command: /no/such/plugin", "  installHint: install the plugin" } })
      local cfg = assert(config.load { kubeconfig = p })
      local _, err = config.credential(cfg)
      assert.matches("cannot run /no/such/plugin", tostring(err))
      assert.matches("install the plugin", tostring(err))
    end)
  end)

  it("uses the in-cluster service account when nothing else is configured", function()
    H.write(dir .. "/token", "sa-token\n")
    H.write(dir .. "/ca.crt", "SA-CA")
    H.write(dir .. "/namespace", "kube-apps")
    local cfg = assert(config.load { env = { KUBECONFIG = false, HOME = dir .. "/nohome",
      KUBERNETES_SERVICE_HOST = "10.0.0.1", KUBERNETES_SERVICE_PORT = "443" }, serviceaccount_dir = dir })
    assert.are.equal("https://10.0.0.1:443", cfg.server)
    assert.are.equal("kube-apps", cfg.namespace)
    assert.are.equal("SA-CA", cfg.ca_pem)
    assert.are.equal("sa-token", config.credential(cfg).token)
    local _, err = config.load { env = { KUBECONFIG = false, HOME = dir .. "/nohome" } }
    assert.matches("no kubeconfig", tostring(err))
  end)

  it("takes a kubeconfig as text", function()
    local text = H.read(kc("a", { server = "https://text:1", user = { "token: t" } }))
    local cfg = assert(config.load { kubeconfig_data = text, env = { KUBECONFIG = "/nonexistent" } })
    assert.are.equal("https://text:1", cfg.server)
    local _, err = config.load { kubeconfig_data = "a: [" }
    assert.are.equal("<kubeconfig data>", err.file)
  end)

  it("parses RFC 3339 times in UTC", function()
    assert.are.equal(0, config.parse_time("1970-01-01T00:00:00Z"))
    assert.are.equal(4102444800, config.parse_time("2100-01-01T00:00:00Z"))
    assert.are.equal(3600, config.parse_time("1970-01-01T02:00:00+01:00"))
  end)
end)
