-- A manual-clock stand-in for the C event loop (atom.loop) for pure-Lua specs: timers fire only
-- when the test advances time; stream writes are captured per stream id.
local M = {}

function M.new(start_wall)
  local loop = { t = 0, wall0 = start_wall or 1767225600, timers = {}, seq = 0, streams = {}, finished = {},
    gone = {} }
  function loop.now() return loop.t end
  function loop.wall() return loop.wall0 + loop.t end
  function loop.timer(delay, fn)
    loop.seq = loop.seq + 1
    local h = { at = loop.t + (delay or 0), fn = fn, seq = loop.seq }
    function h.cancel(self) (self or h).cancelled = true end
    loop.timers[#loop.timers + 1] = h
    return h
  end
  -- like atom.loop.write: the pieces are one chunk
  function loop.write(id, ...)
    if loop.gone[id] or loop.finished[id] then return false end
    local s = loop.streams[id]
    if not s then s = {} loop.streams[id] = s end
    s[#s + 1] = table.concat({ ... })
    return true
  end
  function loop.finish(id) loop.finished[id] = true end
  -- Run every timer due up to now + dt, in time order (timers added while running included).
  function loop.advance(dt)
    local target = loop.t + (dt or 0)
    while true do
      local best, bi
      for i, h in ipairs(loop.timers) do
        if not h.cancelled and h.at <= target and (not best or h.at < best.at or (h.at == best.at and h.seq < best.seq)) then
          best, bi = h, i
        end
      end
      if not best then break end
      table.remove(loop.timers, bi)
      if best.at > loop.t then loop.t = best.at end
      best.fn()
    end
    loop.t = target
  end
  -- Decoded events written to a stream so far.
  function loop.events(id)
    local cjson = require "cjson"
    local out = {}
    for _, chunk in ipairs(loop.streams[id] or {}) do
      for line in chunk:gmatch("[^\n]+") do out[#out + 1] = cjson.decode(line) end
    end
    return out
  end
  return loop
end

return M
