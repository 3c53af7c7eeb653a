-- Shared set-up for the atom.kube specs: TLS material made with the openssl
-- CLI, a spec/kube/testserver.lua process on a loopback port, kubeconfig
-- files, and a control channel to the server (over atom.http itself).
local core = require "atom.core"
local json = require "atom.json"

local H = {}

local function sh(cmd)
  local ok = os.execute(cmd .. " >/dev/null 2>&1")
  assert(ok, "command failed: " .. cmd)
end

function H.write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

function H.read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

function H.tmpdir()
  local p = os.tmpname()
  os.remove(p)
  sh("mkdir -p " .. p)
  return p
end

-- CA, server certificate (127.0.0.1, localhost, kube.test) and a client
-- certificate (CN=alice), all short-lived EC keys.
function H.pki(dir)
  local ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
  sh(("cd %s && openssl req -x509 %s -keyout ca.key -out ca.crt -subj /CN=atom-test-ca -days 2"):format(dir, ec))
  H.write(dir .. "/server.ext", "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kube.test\n")
  H.write(dir .. "/client.ext", "extendedKeyUsage=clientAuth\n")
  for _, who in ipairs { { "server", "kube-test" }, { "client", "alice" } } do
    sh(("cd %s && openssl req %s -keyout %s.key -out %s.csr -subj /CN=%s"):format(dir, ec, who[1], who[1], who[2]))
    sh(("cd %s && openssl x509 -req -in %s.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out %s.crt -days 2 -extfile %s.ext")
      :format(dir, who[1], who[1], who[1]))
  end
  return { ca = dir .. "/ca.crt", cert = dir .. "/server.crt", key = dir .. "/server.key",
           client_cert = dir .. "/client.crt", client_key = dir .. "/client.key" }
end

-- Starts a test server; returns { url, port, dir, pki, stop(), control(path, body) }.
function H.start(opts)
  opts = opts or {}
  local dir = H.tmpdir()
  local pki = opts.tls ~= false and H.pki(dir) or nil
  local conf = { tokens = opts.tokens or { "good-token" }, require_auth = opts.require_auth ~= false and pki ~= nil,
                 aggregated = opts.aggregated or false }
  if pki then conf.tls = { cert = pki.cert, key = pki.key, ca = pki.ca } end
  H.write(dir .. "/server.json", json.encode(conf))
  local src = (os.getenv("ATOM_SOURCE_DIR") or ".") .. "/spec/kube/testserver.lua"
  assert(os.execute(("lua5.4 %s %s >%s/server.log 2>&1 & echo $! > %s/pid"):format(src, dir, dir, dir)))
  local pid = H.read(dir .. "/pid"):match("%d+")
  local port
  for _ = 1, 500 do
    local f = io.open(dir .. "/port")
    if f then port = f:read("a") f:close() break end
    core.sleep(0.01)
  end
  assert(port, "test server did not start: " .. (io.open(dir .. "/server.log") and H.read(dir .. "/server.log") or ""))
  local scheme = pki and "https" or "http"
  local srv = { port = tonumber(port), dir = dir, pki = pki, pid = pid,
                url = ("%s://127.0.0.1:%s"):format(scheme, port) }
  local http = require "atom.http"
  srv.ctl = http.new { server = srv.url, ca_pem = pki and H.read(pki.ca), retries = 0 }
  function srv.control(path, body)
    local r = srv.ctl:request { method = body and "POST" or "GET", path = "/_test/" .. path,
                                body = body and json.encode(body) or nil,
                                headers = { "Content-Type: application/json" } }
    assert(r.status == 200, "control " .. path .. " failed: " .. tostring(r.error or r.body))
    return json.decode(r.body)
  end
  function srv.log() return srv.control("log").entries end
  function srv.stop()
    if srv.stopped then return end
    srv.stopped = true
    srv.ctl:close()
    os.execute("kill " .. pid .. " 2>/dev/null")
    os.execute("rm -rf " .. dir)
  end
  return srv
end

-- Writes a kubeconfig; spec = { server, cluster = {...extra yaml lines}, user = {...}, namespace }
function H.kubeconfig(path, spec)
  local lines = {
    "apiVersion: v1", "kind: Config",
    "current-context: " .. (spec.current or "test"),
    "clusters:", "- name: " .. (spec.cluster_name or "test-cluster"), "  cluster:",
    "    server: " .. spec.server,
  }
  for _, l in ipairs(spec.cluster or {}) do lines[#lines + 1] = "    " .. l end
  lines[#lines + 1] = "users:"
  lines[#lines + 1] = "- name: " .. (spec.user_name or "test-user")
  lines[#lines + 1] = "  user:"
  for _, l in ipairs(spec.user or {}) do lines[#lines + 1] = "    " .. l end
  if #(spec.user or {}) == 0 then lines[#lines] = "  user: {}" end
  lines[#lines + 1] = "contexts:"
  lines[#lines + 1] = "- name: " .. (spec.context_name or "test")
  lines[#lines + 1] = "  context:"
  lines[#lines + 1] = "    cluster: " .. (spec.cluster_name or "test-cluster")
  lines[#lines + 1] = "    user: " .. (spec.user_name or "test-user")
  if spec.namespace then lines[#lines + 1] = "    namespace: " .. spec.namespace end
  return H.write(path, table.concat(lines, "\n") .. "\n")
end

-- Fast transport knobs for specs: short backoff, few tries.
H.fast = { retries = 6, backoff = 0.02, backoff_max = 0.2, retry_window = 10, timeout = 10 }

function H.configmap(name, data, ns)
  return { apiVersion = "v1", kind = "ConfigMap", metadata = { name = name, namespace = ns }, data = data or { k = "v" } }
end

-- Polls the client until pred(events_so_far) is true or `limit` seconds pass.
function H.poll_until(client, pred, limit)
  local got = {}
  local deadline = core.monotonic() + (limit or 5)
  while core.monotonic() < deadline do
    for _, ev in ipairs(client:poll(0.2)) do got[#got + 1] = ev end
    if pred(got) then return got end
  end
  return got
end

return H
