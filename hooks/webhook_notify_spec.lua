-- hooks/webhook_notify.lua: the request it makes, and what happens when the webhook fails.
local sandbox = require "atom.release.sandbox"

local function load_hook()
  return sandbox.new{ dir = "hooks", hooks_dir = "hooks" }.require("atom.hooks.webhook_notify")
end

local function ctx(status, reply)
  local c = { release = "shop", version = 7, from = "Updating", to = "Running", logs = {}, sent = {} }
  c.log = function(m) c.logs[#c.logs + 1] = m end
  c.http = function(req) c.sent[#c.sent + 1] = req return status, reply end
  return c
end

describe("hooks/webhook_notify", function()
  it("posts a JSON text message about the transition", function()
    local c = ctx(200, "ok")
    load_hook(){ url = "https://hooks.example.com/T1/B2" }(c)
    assert.equal(1, #c.sent)
    assert.equal("POST", c.sent[1].method)
    assert.equal("https://hooks.example.com/T1/B2", c.sent[1].url)
    assert.same({ text = "release shop v7: Updating => Running" }, c.sent[1].body)
    assert.same({ "notified https://hooks.example.com" }, c.logs)
  end)

  it("logs a failing webhook and goes on, unless required", function()
    local c = ctx(500, "oops")
    load_hook(){ url = "http://x.test/h" }(c)
    assert.same({ "webhook_notify: HTTP 500 oops" }, c.logs)
    local ok, err = pcall(load_hook(){ url = "http://x.test/h", required = true }, ctx(nil, "connection refused"))
    assert.is_false(ok)
    assert.equal("webhook_notify: connection refused", err)
  end)

  it("takes a custom body", function()
    local c = ctx(204)
    load_hook(){ url = "http://x.test/h", body = function(cx, text) return { content = text, v = cx.version } end }(c)
    assert.same({ content = "release shop v7: Updating => Running", v = 7 }, c.sent[1].body)
  end)

  it("needs an http(s) url", function()
    assert.has_error(function() load_hook(){ url = "ftp://x" } end, "webhook_notify: url must be an http(s) URL, got ftp://x")
  end)

  it("really posts through ctx.http (atom.http) to a server", function()
    -- A one-shot HTTP server on loopback in its own process (lua5.4 + luasocket): it prints
    -- its port, serves one request with 200, then prints what it received.
    local server = [[
      local socket = require "socket"
      local s = assert(socket.bind("127.0.0.1", 0))
      local _, p = s:getsockname(); print(p); io.stdout:flush()
      s:settimeout(10)
      local c = assert(s:accept())
      c:settimeout(5)
      local lines, len = {}, 0
      for line in function() return c:receive("*l") end do
        if line == "" then break end
        lines[#lines + 1] = line
        len = tonumber(line:match("^[Cc]ontent%-[Ll]ength:%s*(%d+)")) or len
      end
      local body = c:receive(len)
      c:send("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
      c:close()
      print(lines[1]); print(body)
    ]]
    local proc = assert(io.popen("lua5.4 -e " .. string.format("%q", server):gsub("\\\n", "\n"), "r"))
    local port = proc:read("l")
    local hooks = require "atom.release.hooks"
    local c = hooks.context({ release = "shop", version = 1, from = "Rollback", to = "Reverted",
      log = function() end }, { namespace = "shop" })
    local hook = load_hook(){ url = "http://127.0.0.1:" .. port .. "/hook/T1", required = true }
    hook(c)
    local request_line, body = proc:read("l"), proc:read("l")
    proc:close()
    assert.equal("POST /hook/T1 HTTP/1.1", request_line)
    assert.same({ text = "release shop v1: Rollback => Reverted" }, require("cjson").decode(body))
  end)
end)
