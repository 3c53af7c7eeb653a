-- atom.proc and atom.http on their own: the C halves of the kube client.
local H = require "kube.helper"
local json = require "atom.json"

describe("atom.proc", function()
  local proc = require "atom.proc"

  it("runs a program without a shell and collects status, stdout and stderr", function()
    local r = assert(proc.run { command = "sh", args = { "-c", 'printf "%s|" "$GREETING"; cat; echo oops >&2; exit 7' },
      env = { GREETING = "hi there" }, stdin = "from stdin" })
    assert.are.equal(7, r.status)
    assert.are.equal("hi there|from stdin", r.stdout)
    assert.are.equal("oops\n", r.stderr)
    assert.is_false(r.timed_out)
  end)

  it("passes arguments verbatim (no shell expansion)", function()
    local r = assert(proc.run { command = "printf", args = { "%s", "$HOME *" } })
    assert.are.equal("$HOME *", r.stdout)
  end)

  it("keeps the parent's environment and overrides single names", function()
    local r = assert(proc.run { command = "sh", args = { "-c", 'echo "$PATH" "$HOME"' }, env = { HOME = "/elsewhere" } })
    assert.are.equal(os.getenv("PATH") .. " /elsewhere\n", r.stdout)
  end)

  it("kills a program that overruns its timeout", function()
    local r = assert(proc.run { command = "sleep", args = { "30" }, timeout = 0.2 })
    assert.is_true(r.timed_out)
    assert.are.equal(128 + 9, r.status)
  end)

  it("reports a program that cannot be started", function()
    local r, err = proc.run { command = "/no/such/program" }
    assert.is_nil(r)
    assert.matches("cannot run /no/such/program", err)
  end)
end)

describe("atom.http", function()
  local http = require "atom.http"
  local srv, ca
  setup(function()
    srv = H.start {}
    ca = H.read(srv.pki.ca)
  end)
  teardown(function() srv.stop() end)

  local function conn(extra)
    local o = { server = srv.url, ca_pem = ca, retries = 3, backoff = 0.01, backoff_max = 0.05 }
    for k, v in pairs(extra or {}) do o[k] = v end
    return http.new(o)
  end
  local AUTH = "Authorization: Bearer good-token"

  it("keeps many requests in flight and reports each once", function()
    local c = conn()
    local ids = {}
    for i = 1, 60 do
      ids[c:send { method = "PATCH", path = ("/api/v1/namespaces/t/configmaps/c%d?fieldManager=t"):format(i),
        headers = { AUTH, "Content-Type: application/apply-patch+yaml" },
        body = json.encode(H.configmap("c" .. i, { i = tostring(i) })) }] = i
    end
    assert.are.equal(60, c:pending())
    local seen = 0
    while seen < 60 do
      for _, done in ipairs(c:poll(1)) do
        local i = assert(ids[done.id])
        ids[done.id] = nil
        seen = seen + 1
        assert.are.equal(201, done.status)
        assert.are.equal(tostring(i), json.decode(done.body).data.i)
        assert.matches("json", done.headers["content-type"])
      end
    end
    assert.are.equal(0, c:pending())
    c:close()
    assert.has_error(function() c:poll(0) end)
  end)

  it("streams a body in pieces and cancels a stream", function()
    local c = conn()
    local sid = c:stream { path = "/api/v1/namespaces/t/configmaps?watch=true", headers = { AUTH } }
    local text = ""
    for _ = 1, 50 do
      for _, ev in ipairs(c:poll(0.2)) do
        assert.are.equal(sid, ev.id)
        text = text .. (ev.chunk or "")
      end
      local _, lines = text:gsub("\n", "")
      if lines >= 60 then break end
    end
    local _, lines = text:gsub("\n", "")
    assert.are.equal(60, lines)
    assert.is_true(c:cancel(sid))
    assert.is_false(c:cancel(sid))
    assert.are.equal(0, c:pending())
  end)

  it("request() keeps other completions for the next poll", function()
    local c = conn()
    local other = c:send { path = "/version" }
    local r = c:request { path = "/api", headers = { AUTH } }
    assert.are.equal(200, r.status)
    local got = c:poll(2)
    assert.are.equal(1, #got)
    assert.are.equal(other, got[1].id)
  end)

  it("rejects a bad header without leaving a half-made request behind", function()
    local c = conn()
    assert.has_error(function() c:send { path = "/version", headers = { 42 } } end)
    assert.has_error(function() c:send { path = "/version", headers = { X = {} } } end)
    assert.has_error(function() c:send { path = "no-slash" } end)
    assert.are.equal(0, c:pending())
    assert.are.same({}, c:poll(0))
  end)

  it("retries a refused connection for GET but not for POST", function()
    local c = http.new { server = "http://127.0.0.1:1", retries = 2, backoff = 0.01 }
    local g = c:request { path = "/x" }
    assert.are.equal(3, g.attempts)
    assert.matches("onnect", g.error)
    local p = c:request { method = "POST", path = "/x", body = "{}" }
    assert.are.equal(1, p.attempts)
    assert.are.equal(0, p.status)
  end)

  it("refuses a server whose certificate it cannot verify", function()
    local c = http.new { server = srv.url, retries = 0 }
    local r = c:request { path = "/version" }
    assert.are.equal(0, r.status)
    assert.matches("certificate", r.error)
    local ok = http.new { server = srv.url, insecure = true }:request { path = "/_test/log" }
    assert.are.equal(200, ok.status)
  end)
end)
