-- A stand-in for atom.sim with the same interface (new(opts), sim:handle(req),
-- sim:closed(id)), so the C server can be tested on its own. Loaded with
-- `atom sim --handler-module simserver.echo_handler` and LUA_PATH=spec/?.lua.
local cjson = require "cjson"

local M = {}
M.__index = M

function M.new(opts)
  return setmetatable({ opts = opts, loop = opts.loop, closed_ids = {}, open = {} }, M)
end

local function json(status, value)
  return { status = status, headers = { ["Content-Type"] = "application/json" }, body = cjson.encode(value) }
end

function M:handle(req)
  local loop = self.loop
  if req.path == "/echo" or req.path:sub(1, 6) == "/echo/" then
    return json(200, {
      method = req.method, path = req.path, query = req.query, headers = req.headers,
      body_length = req.body and #req.body or cjson.null, user = req.user or cjson.null,
      stream = req.stream,
      opts = { time_scale = self.opts.time_scale, ready_after = self.opts.ready_after,
               nodes = self.opts.nodes, server_url = self.opts.server_url,
               scenario = self.opts.scenario or cjson.null,
               scenario_name = self.opts.scenario_name or cjson.null },
    })
  elseif req.path == "/version" then
    return json(200, { major = "1", minor = "32", gitVersion = "v1.32.0-atom-sim" })
  elseif req.path == "/stream" then
    -- Written before the stream starts: the server must hold it until then.
    loop.write(req.stream, '{"n":0}\n')
    local id, n = req.stream, 0
    local function tick()
      n = n + 1
      loop.write(id, cjson.encode({ n = n }) .. "\n")
      if n < 3 then loop.timer(0.02, tick) else loop.finish(id) end
    end
    loop.timer(0.02, tick)
    return { status = 200, headers = { ["Content-Type"] = "application/json" }, stream = true }
  elseif req.path == "/watch" then
    self.open[req.stream] = true
    loop.write(req.stream, '{"type":"ADDED"}\n')
    return { status = 200, stream = true }
  elseif req.path == "/flood" then
    -- Writes until the server refuses: a client that never reads.
    local id, chunk = req.stream, string.rep("x", 1024 * 1024) .. "\n"
    self.open[id] = true
    local function more()
      for _ = 1, 4 do
        if not loop.write(id, chunk) then
          self.flood_refused = (self.flood_refused or 0) + 1
          return
        end
      end
      loop.timer(0, more)
    end
    loop.timer(0, more)
    return { status = 200, stream = true }
  elseif req.path == "/long-turn" then
    -- One timer callback that writes, then keeps the loop busy until the client shows it
    -- has read that write (by creating the marker file named in the query) or 5 s pass:
    -- the write must reach the client while the turn is still running.
    local id, marker = req.stream, req.query:match("marker=([^&]+)")
    loop.timer(0.02, function()
      loop.write(id, "early\n")
      local seen, started = false, loop.now()
      repeat
        local f = io.open(marker, "r")
        if f then f:close(); seen = true end
      until seen or loop.now() - started > 5
      loop.write(id, "marker seen during the turn: " .. tostring(seen) .. "\n")
      loop.finish(id)
    end)
    return { status = 200, stream = true }
  elseif req.path == "/cancel" then
    local id = req.stream
    local t1 = loop.timer(0.02, function() loop.write(id, "cancelled timer fired\n") end)
    local first = t1:cancel()
    local t2
    t2 = loop.timer(0.05, function()
      loop.write(id, "cancel=" .. tostring(first) .. " again=" .. tostring(t1:cancel())
        .. " after-fire=" .. tostring(t2:cancel()) .. "\n")
      loop.finish(id)
      loop.write(id, "after finish\n")
    end)
    return { status = 200, stream = true }
  elseif req.path == "/closed" then
    local ids = {}
    for id in pairs(self.closed_ids) do ids[#ids + 1] = id end
    local open = 0
    for _ in pairs(self.open) do open = open + 1 end
    return json(200, { closed = #ids, open = open, flood_refused = self.flood_refused or 0 })
  elseif req.path == "/delay" then
    return { status = 202, headers = { ["Content-Type"] = "text/plain" }, body = "late", delay = 0.1 }
  elseif req.path == "/error" then
    error("boom \"quoted\"")
  elseif req.path == "/timer-error" then
    loop.timer(0, function() error("timer boom") end)
    return json(200, { ok = true })
  elseif req.path == "/bad-response" then
    return 42
  end
  return json(404, { kind = "Status", apiVersion = "v1", metadata = {}, status = "Failure",
                     reason = "NotFound", code = 404, message = "not found: " .. req.path })
end

function M:closed(id)
  self.closed_ids[id] = true
  self.open[id] = nil
end

return M
