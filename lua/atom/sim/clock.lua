-- Simulated time: wall clock at start plus real elapsed time scaled by `time_scale`.
-- Owns nothing but a reference to the loop it was given.
local M = {}
M.__index = M

function M.new(loop, time_scale)
  local self = setmetatable({}, M)
  self.loop = loop
  self.scale = (time_scale and time_scale > 0) and time_scale or 1
  self.wall0 = loop.wall()
  self.mono0 = loop.now()
  return self
end

function M:now()
  return self.wall0 + (self.loop.now() - self.mono0) * self.scale
end

-- Every write stamps times (creation, managedFields, conditions) and most fall in the same
-- second as the one before, so the last second's text is kept instead of formatting it again.
function M:rfc3339(t)
  local sec = math.floor(t or self:now())
  if sec ~= self.last_sec then
    self.last_sec, self.last_text = sec, os.date("!%Y-%m-%dT%H:%M:%SZ", sec)
  end
  return self.last_text
end

-- Parse the RFC 3339 timestamps this server writes (and the common fractional/offset forms).
function M.parse(s)
  if type(s) ~= "string" then return nil end
  local y, mo, d, h, mi, sec, rest = s:match("^(%d+)-(%d+)-(%d+)[Tt ](%d+):(%d+):(%d+)(.*)$")
  if not y then return nil end
  local frac = rest:match("^(%.%d+)") or ""
  rest = rest:sub(#frac + 1)
  local off = 0
  if rest ~= "Z" and rest ~= "z" and rest ~= "" then
    local sign, oh, om = rest:match("^([+-])(%d%d):?(%d%d)$")
    if not sign then return nil end
    off = (tonumber(oh) * 3600 + tonumber(om) * 60) * (sign == "+" and 1 or -1)
  end
  -- days since epoch (civil from days, inverse), avoiding os.time's local-time dependency
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  if mo <= 2 then y = y - 1 end
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local mp = (mo + 9) % 12
  local doy = (153 * mp + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  local days = era * 146097 + doe - 719468
  return days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(sec) - off
      + (tonumber("0" .. frac) or 0)
end

function M:after(sim_seconds, fn)
  return self.loop.timer(math.max(0, sim_seconds or 0) / self.scale, fn)
end

return M
