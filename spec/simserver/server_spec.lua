-- The C front of `atom sim`: HTTP/HTTPS serving, auth, streams, timers and
-- robustness, checked against the real binary. Most cases use a stand-in
-- handler (spec/simserver/echo_handler.lua) so they do not depend on the API
-- machinery; the last block drives the real atom.sim with kubectl.
local cjson = require "cjson"
local socket = require "socket"
local sim = require "helpers.sim"

local HANDLER = "simserver.echo_handler"

local function host_port(s)
  return s.url:match("^https?://([^:/]+):(%d+)$")
end

-- A raw TCP client for what curl would refuse to send.
local function raw_connect(s)
  local host, port = host_port(s)
  local c = assert(socket.tcp())
  c:settimeout(5)
  assert(c:connect(host, tonumber(port)))
  return c
end

local function wait_until(fn, seconds)
  local deadline = socket.gettime() + (seconds or 5)
  while socket.gettime() < deadline do
    local v = fn()
    if v then return v end
    socket.sleep(0.02)
  end
  return fn()
end

local function closed_counts(s)
  local r = s:curl(s.url .. "/closed")
  return cjson.decode(r.stdout)
end

describe("atom sim server (HTTP)", function()
  local s
  setup(function() s = sim.start({ handler = HANDLER, time_scale = 2.5, ready_after = 0, nodes = 5 }) end)
  -- Exit 0 also means clean under ASan: a leak report makes it non-zero.
  teardown(function() if s then assert.equal(0, s.stop(), s.final_stderr) end end)

  it("writes a kubeconfig for itself once listening and says where", function()
    local kc = sim.read_file(s.kubeconfig)
    assert.matches("server: http://127%.0%.0%.1:%d+\n", kc)
    assert.matches("current%-context: atom%-sim", kc)
    assert.matches("namespace: default", kc)
    assert.is_nil(kc:match("token:"))
    assert.matches("^atom sim: serving on " .. s.url:gsub("%p", "%%%0") .. " %(kubeconfig "
      .. s.kubeconfig:gsub("%p", "%%%0") .. "%)\n$", s.stdout())
  end)

  it("hands Lua the request: method, decoded path, raw query, folded lower-case headers, body, options", function()
    local r = s:curl("-H 'X-Foo: a' -H 'X-Foo: b' -H 'Content-Type: application/json' --data-binary '{\"a\":1}' "
      .. sim.quote(s.url .. "/echo/a%20b?labelSelector=app%3Dweb&limit=5"))
    assert.equal(0, r.code, r.stderr)
    local req = cjson.decode(r.stdout)
    assert.equal("POST", req.method)
    assert.equal("/echo/a b", req.path)
    assert.equal("labelSelector=app%3Dweb&limit=5", req.query)
    assert.equal("a, b", req.headers["x-foo"])
    assert.equal("application/json", req.headers["content-type"])
    assert.equal(7, req.body_length)
    assert.equal(cjson.null, req.user)
    assert.is_number(req.stream)
    assert.equal(2.5, req.opts.time_scale)
    assert.equal(0, req.opts.ready_after)
    assert.equal(5, req.opts.nodes)
    assert.equal(s.url, req.opts.server_url)
  end)

  it("gives every request its own stream id", function()
    local a = cjson.decode(s:curl(s.url .. "/echo").stdout).stream
    local b = cjson.decode(s:curl(s.url .. "/echo").stdout).stream
    assert.are_not.equal(a, b)
  end)

  it("streams chunks written before and after the response started, then ends it", function()
    local r = s:curl("-i -N " .. s.url .. "/stream")
    assert.equal(0, r.code, r.stderr)
    assert.matches("HTTP/1.1 200", r.stdout)
    assert.matches("[Tt]ransfer%-[Ee]ncoding: chunked", r.stdout)
    local body = r.stdout:match("\r\n\r\n(.*)$")
    assert.equal('{"n":0}\n{"n":1}\n{"n":2}\n{"n":3}\n', body)
  end)

  it("cancels timers: a cancelled one never fires, and cancel says whether it was pending", function()
    local r = s:curl("-N " .. s.url .. "/cancel")
    assert.equal(0, r.code, r.stderr)
    assert.equal("cancel=true again=false after-fire=false\n", r.stdout)
  end)

  it("tells Lua when a streaming client goes away", function()
    local before = closed_counts(s).closed
    local r = s:curl("-N --max-time 0.5 " .. s.url .. "/watch")
    assert.equal('{"type":"ADDED"}\n', r.stdout)
    local after = wait_until(function()
      local c = closed_counts(s)
      return c.closed == before + 1 and c
    end)
    assert.is_truthy(after)
    assert.equal(0, after.open)
  end)

  it("sends a delayed response later, with its status and headers", function()
    local r = s:curl("-i " .. s.url .. "/delay")
    assert.matches("HTTP/1.1 202", r.stdout)
    assert.matches("Content%-Type: text/plain", r.stdout)
    assert.matches("\r\n\r\nlate$", r.stdout)
  end)

  it("answers 500 with a Status when the handler raises, and keeps serving", function()
    local r = s:curl("-i " .. s.url .. "/error")
    assert.matches("HTTP/1.1 500", r.stdout)
    local st = cjson.decode(r.stdout:match("\r\n\r\n(.*)$"))
    assert.equal("Status", st.kind)
    assert.equal("InternalError", st.reason)
    assert.equal(500, st.code)
    assert.matches('boom "quoted"', st.message)
    assert.matches("stack traceback", s.stderr())
    r = s:curl("-i " .. s.url .. "/bad-response")
    assert.matches("HTTP/1.1 500", r.stdout)
    assert.equal(200, tonumber(s:curl("-o /dev/null -w '%{http_code}' " .. s.url .. "/echo").stdout))
  end)

  it("logs an error in a timer callback and keeps running", function()
    assert.equal(0, s:curl(s.url .. "/timer-error").code)
    assert.truthy(wait_until(function() return s.stderr():match("timer boom") end))
    assert.equal(200, tonumber(s:curl("-o /dev/null -w '%{http_code}' " .. s.url .. "/echo").stdout))
  end)

  it("refuses bodies past 3 MiB with 413 and a Status, and takes one just under", function()
    local dir = sim.tmpdir()
    sim.write_file(dir .. "/big", string.rep("x", 4 * 1024 * 1024))
    sim.write_file(dir .. "/ok", string.rep("x", 3 * 1024 * 1024 - 10))
    -- curl sends Expect: 100-continue for a big body; the 413 comes after the 100.
    local r = s:curl("-i --data-binary @" .. dir .. "/big " .. s.url .. "/echo")
    assert.matches("HTTP/1.1 413", r.stdout)
    local st = cjson.decode(r.stdout:match("\r\n\r\n({.*)$"))
    assert.equal("RequestEntityTooLarge", st.reason)
    assert.equal(413, st.code)
    r = s:curl("--data-binary @" .. dir .. "/ok " .. s.url .. "/echo")
    assert.equal(3 * 1024 * 1024 - 10, cjson.decode(r.stdout).body_length)
    os.execute("rm -rf " .. dir)
  end)

  it("holds hundreds of concurrent streams and notices each one closing", function()
    local before = closed_counts(s).closed
    local conns = {}
    for i = 1, 300 do
      local c = raw_connect(s)
      assert(c:send("GET /watch HTTP/1.1\r\nHost: x\r\n\r\n"))
      conns[i] = c
    end
    for _, c in ipairs(conns) do
      assert.equal("HTTP/1.1 200 OK", c:receive("*l"))
    end
    assert.equal(300, closed_counts(s).open)
    for _, c in ipairs(conns) do c:close() end
    assert.truthy(wait_until(function() return closed_counts(s).closed == before + 300 end))
    assert.equal(0, closed_counts(s).open)
  end)

  it("drops a stream whose client stops reading instead of buffering without bound", function()
    local before = closed_counts(s)
    local c = raw_connect(s)
    c:send("GET /flood HTTP/1.1\r\nHost: x\r\n\r\n")
    local after = wait_until(function()
      local now = closed_counts(s)
      return now.flood_refused == before.flood_refused + 1 and now.closed == before.closed + 1 and now
    end, 10)
    c:close()
    assert.is_truthy(after)
    assert.equal(0, after.open)
    assert.matches("stopped reading", s.stderr())
  end)

  it("survives thousands of malformed requests and still answers correctly", function()
    math.randomseed(4)
    local bad = {
      "GET\r\n\r\n",
      "GET / HTTP/9.9\r\n\r\n",
      "FOO / HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET /%zz%00%ff HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET http://[::1 HTTP/1.1\r\nHost: x\r\n\r\n",
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten..",
      "GET /echo HTTP/1.1\r\nHost: x\r\nBad Header Without Colon\r\n\r\n",
      "GET /echo HTTP/1.1\r\nHost: x\r\nX-Null: a\0b\r\n\r\n",
      "GET /echo HTTP/1.1\r\n" .. string.rep("X-Many: y\r\n", 5000) .. "\r\n",
      "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET /watch HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET /delay HTTP/1.1\r\nHost: x\r\n\r\n",
      string.rep("GET /echo HTTP/1.1\r\nHost: x\r\n\r\n", 20),
    }
    local huge = "GET /echo HTTP/1.1\r\nX-Huge: " .. string.rep("h", 1100 * 1024) .. "\r\n\r\n"
    for i = 1, 3000 do
      local payload
      if i % 3 == 0 then
        local t = {}
        for j = 1, math.random(1, 300) do t[j] = string.char(math.random(0, 255)) end
        payload = table.concat(t)
      else
        payload = bad[(i % #bad) + 1]
        if i % 7 == 0 then payload = payload:sub(1, math.random(1, #payload)) end
      end
      if i % 500 == 0 then payload = huge end
      local c = raw_connect(s)
      c:send(payload)
      if i % 250 == 0 then -- sometimes half-close and wait for the answer or the close
        c:shutdown("send")
        c:receive("*l")
      end
      c:close()
    end
    -- A malformed request line gets a 400 from the server, not a hang.
    local c = raw_connect(s)
    c:send("GET / HTTP/9.9\r\n\r\n")
    local line = c:receive("*l")
    c:close()
    assert.matches("^HTTP/1%.%d 400", line)
    local r = s:curl("-H 'X-Check: yes' " .. s.url .. "/echo/after")
    assert.equal(0, r.code, r.stderr)
    local req = cjson.decode(r.stdout)
    assert.equal("/echo/after", req.path)
    assert.equal("yes", req.headers["x-check"])
  end)

  it("sends a stream's chunk while a long timer callback is still running", function()
    -- libevent writes only between turns of its loop; the server writes streams out
    -- itself during a long turn, or a watcher hears of a change only when the turn ends.
    local marker = os.tmpname()
    os.remove(marker)
    local c = raw_connect(s)
    c:send("GET /long-turn?marker=" .. marker .. " HTTP/1.1\r\nHost: x\r\n\r\n")
    c:settimeout(10)
    local lines = {}
    repeat
      local line = assert(c:receive("*l"))
      lines[#lines + 1] = line
      if line == "early" then assert(io.open(marker, "w")):close() end
    until line:match("^marker seen")
    c:close()
    os.remove(marker)
    assert.equal("marker seen during the turn: true", lines[#lines])
  end)

  it("serves keep-alive and pipelined requests on one connection", function()
    local c = raw_connect(s)
    c:send("GET /echo/1 HTTP/1.1\r\nHost: x\r\n\r\nGET /echo/2 HTTP/1.1\r\nHost: x\r\n\r\n")
    local paths = {}
    for _ = 1, 2 do
      assert.equal("HTTP/1.1 200 OK", c:receive("*l"))
      local len
      repeat
        local h = c:receive("*l")
        len = len or tonumber(h:match("^Content%-Length: (%d+)"))
      until h == ""
      local body, e = c:receive(len)
      assert(body, "no body: " .. tostring(e) .. " " .. tostring(len))
      paths[#paths + 1] = cjson.decode(body).path
    end
    c:close()
    assert.same({ "/echo/1", "/echo/2" }, paths)
  end)
end)

describe("atom sim server (lifecycle)", function()
  it("exits 0 on SIGTERM and SIGINT, with streams and delayed replies open", function()
    for _, sig in ipairs({ "TERM", "INT" }) do
      local s = sim.start({ handler = HANDLER })
      local c = raw_connect(s)
      c:send("GET /watch HTTP/1.1\r\nHost: x\r\n\r\n")
      assert.equal("HTTP/1.1 200 OK", c:receive("*l"))
      local d = raw_connect(s)
      d:send("GET /delay HTTP/1.1\r\nHost: x\r\n\r\n")
      assert.equal(0, s.stop(sig))
      c:close()
      d:close()
      assert.is_nil(s.final_stderr:match("ERROR: AddressSanitizer"), s.final_stderr)
      assert.is_nil(s.final_stderr:match("LeakSanitizer"), s.final_stderr)
    end
  end)

  it("refuses a non-loopback address and unknown flags with a usage error", function()
    local r = sim.run(sim.quote(sim.bin()) .. " sim --address 0.0.0.0 --kubeconfig /tmp/never-written")
    assert.equal(2, r.code)
    assert.matches("loopback", r.stderr)
    r = sim.run(sim.quote(sim.bin()) .. " sim --bogus")
    assert.equal(2, r.code)
    r = sim.run(sim.quote(sim.bin()) .. " sim --token 'a b'")
    assert.equal(2, r.code)
  end)

  it("passes the scenario file's text and path to Lua", function()
    local dir = sim.tmpdir()
    sim.write_file(dir .. "/weather.lua", "return { rules = {} }\n")
    local s = sim.start({ handler = HANDLER, scenario = dir .. "/weather.lua" })
    local req = cjson.decode(s:curl(s.url .. "/echo").stdout)
    s.stop()
    os.execute("rm -rf " .. dir)
    assert.equal("return { rules = {} }\n", req.opts.scenario)
    assert.equal(dir .. "/weather.lua", req.opts.scenario_name)
  end)
end)

describe("atom sim server (HTTPS) #kubectl", function()
  local s
  setup(function() s = sim.start({ handler = HANDLER, tls = true, token = "fixed-token.42" }) end)
  -- Exit 0 also means clean under ASan: a leak report makes it non-zero.
  teardown(function() if s then assert.equal(0, s.stop(), s.final_stderr) end end)

  it("writes the CA, client certificate, key and token beside the kubeconfig", function()
    local kc = sim.read_file(s.kubeconfig)
    assert.matches("server: https://127%.0%.0%.1:%d+\n", kc)
    assert.matches("certificate%-authority%-data: [A-Za-z0-9+/=]+\n", kc)
    assert.matches("token: fixed%-token%.42\n", kc)
    assert.matches("client%-certificate%-data: ", kc)
    assert.matches("client%-key%-data: ", kc)
    assert.equal("fixed-token.42", sim.read_file(s.kubeconfig .. ".token"))
    assert.matches("^%-%-%-%-%-BEGIN CERTIFICATE", sim.read_file(s.kubeconfig .. ".ca.crt"))
    assert.matches("^%-%-%-%-%-BEGIN CERTIFICATE", sim.read_file(s.kubeconfig .. ".client.crt"))
    assert.matches("^%-%-%-%-%-BEGIN PRIVATE KEY", sim.read_file(s.kubeconfig .. ".client.key"))
    local r = sim.run("openssl x509 -noout -subject -ext subjectAltName -in " .. s.kubeconfig .. ".client.crt")
    assert.matches("O ?= ?system:masters, CN ?= ?atom%-sim%-admin", r.stdout)
  end)

  it("answers 401 with a Status without credentials, or with a wrong token", function()
    local r = s:curl("-i " .. s.url .. "/echo", { anonymous = true })
    assert.matches("HTTP/1.1 401", r.stdout)
    local st = cjson.decode(r.stdout:match("\r\n\r\n(.*)$"))
    assert.equal("Unauthorized", st.reason)
    assert.equal(401, st.code)
    r = s:curl("-o /dev/null -w '%{http_code}' -H 'Authorization: Bearer wrong' " .. s.url .. "/version",
      { anonymous = true })
    assert.equal("401", r.stdout)
  end)

  it("lets anonymous clients read /version and /healthz, as a real server does", function()
    local r = s:curl("-o /dev/null -w '%{http_code}' " .. s.url .. "/version", { anonymous = true })
    assert.equal("200", r.stdout)
  end)

  it("authenticates the bearer token and the client certificate", function()
    local r = s:curl("-H 'Authorization: Bearer fixed-token.42' " .. s.url .. "/echo", { anonymous = true })
    assert.equal("atom-sim-admin", cjson.decode(r.stdout).user)
    r = s:curl(s.url .. "/echo")
    assert.equal("atom-sim-admin", cjson.decode(r.stdout).user)
    -- As the apiserver's union authenticator: a good certificate wins over a bad token.
    r = s:curl("-H 'Authorization: Bearer wrong' " .. s.url .. "/echo")
    assert.equal("atom-sim-admin", cjson.decode(r.stdout).user)
    r = s:curl("https://localhost:" .. s.port .. "/echo")
    assert.equal(0, r.code, r.stderr)
  end)

  it("is accepted by kubectl with the token, the certificate, a tokenFile or an exec plugin", function()
    local ca = s.kubeconfig .. ".ca.crt"
    local users = {
      token = "    token: fixed-token.42\n",
      cert = "    client-certificate: " .. s.kubeconfig .. ".client.crt\n" ..
             "    client-key: " .. s.kubeconfig .. ".client.key\n",
      tokenfile = "    tokenFile: " .. s.kubeconfig .. ".token\n",
      exec = "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n" ..
             "      command: sh\n      interactiveMode: Never\n      args:\n      - -c\n" ..
             "      - 'printf %s \"{\\\"apiVersion\\\":\\\"client.authentication.k8s.io/v1\\\"," ..
             "\\\"kind\\\":\\\"ExecCredential\\\",\\\"status\\\":{\\\"token\\\":\\\"fixed-token.42\\\"}}\"'\n",
      wrong = "    token: not-the-token\n",
    }
    for name, user in pairs(users) do
      local path = s.dir .. "/kc-" .. name
      sim.write_file(path, "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n" ..
        "    server: " .. s.url .. "\n    certificate-authority: " .. ca .. "\n" ..
        "users:\n- name: u\n  user:\n" .. user ..
        "contexts:\n- name: x\n  context:\n    cluster: c\n    user: u\n" ..
        "current-context: x\n")
      local r = s:kubectl("get --raw /echo", { kubeconfig = path })
      if name == "wrong" then
        assert.are_not.equal(0, r.code)
        assert.matches("Unauthorized", r.stderr)
      else
        assert.equal(0, r.code, name .. ": " .. r.stderr)
        assert.equal("atom-sim-admin", cjson.decode(r.stdout).user, name)
      end
    end
    local r = s:kubectl("version")
    assert.equal(0, r.code, r.stderr)
    assert.matches("Server Version: v1%.32", r.stdout)
  end)
end)

-- The real API machinery behind the server: these need lua/atom/sim.
local api = sim.have_api() and describe or pending
api("atom sim with the API machinery, driven by kubectl #kubectl", function()
  for _, tls in ipairs({ false, true }) do
    describe(tls and "over HTTPS" or "over HTTP", function()
      local s
      setup(function() s = sim.start({ tls = tls, ready_after = 0 }) end)
      -- Exit 0 also means clean under ASan: a leak report makes it non-zero.
  teardown(function() if s then assert.equal(0, s.stop(), s.final_stderr) end end)

      it("answers kubectl version, get ns and api-resources", function()
        local r = s:kubectl("version")
        assert.equal(0, r.code, r.stderr)
        assert.matches("Server Version: v1%.32", r.stdout)
        r = s:kubectl("get ns")
        assert.equal(0, r.code, r.stderr)
        assert.matches("default", r.stdout)
        r = s:kubectl("api-resources")
        assert.equal(0, r.code, r.stderr)
        assert.matches("deployments", r.stdout)
      end)

      it("delivers watch events to kubectl get -w", function()
        local r = s:kubectl("get ns -w", { timeout = 1.5 })
        assert.matches("default", r.stdout)
      end)

      it("streams watch events as chunks while objects change", function()
        local watch = s.url .. "/api/v1/namespaces/default/configmaps?watch=true"
        local r = s:run("curl -sS -N --max-time 1.5 " .. (tls and ("--cacert " .. s.kubeconfig .. ".ca.crt --cert "
          .. s.kubeconfig .. ".client.crt --key " .. s.kubeconfig .. ".client.key ") or "")
          .. sim.quote(watch) .. " & sleep 0.3; kubectl create configmap w1 --from-literal=a=b >/dev/null; "
          .. "kubectl label configmap w1 x=y >/dev/null; wait")
        local events = {}
        for line in r.stdout:gmatch("[^\n]+") do
          local ev = cjson.decode(line)
          events[#events + 1] = ev.type .. " " .. ev.object.metadata.name
        end
        assert.same({ "ADDED w1", "MODIFIED w1" }, events)
      end)

      it("exits 0 on SIGTERM", function()
        assert.equal(0, s.stop())
      end)
    end)
  end
end)
