-- Ready-made hook: refuse to release outside a time window (a change freeze at night and
-- over the weekend, say).
--
--   local window = require("atom.hooks.time_window"){ days = "Mon-Fri", from = "09:00", to = "17:00" }
--   hooks = { before = { Pending = window } }
--
-- Options: days ("Mon-Fri", "Mon,Wed,Fri" or a list; default every day), from/to
-- ("HH:MM", to exclusive; a window may cross midnight), utc (default true; false uses the
-- machine's local time), now (a function returning epoch seconds, for tests).
-- Rollback states are never refused: only the start of a release is gated.
local DAYS = { Sun = 1, Mon = 2, Tue = 3, Wed = 4, Thu = 5, Fri = 6, Sat = 7 }
local NAMES = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" }

local function minutes(s, what)
  local h, m = tostring(s):match("^(%d%d?):(%d%d)$")
  h, m = tonumber(h), tonumber(m)
  if not h or h > 24 or m > 59 then error("time_window: " .. what .. " must be HH:MM, got " .. tostring(s), 3) end
  return h * 60 + m
end

local function day_set(spec)
  local set = {}
  if spec == nil then
    for i = 1, 7 do set[i] = true end
    return set
  end
  local items = type(spec) == "table" and spec or {}
  if type(spec) == "string" then
    for part in spec:gmatch("[^,%s]+") do items[#items + 1] = part end
  end
  for _, item in ipairs(items) do
    local a, b = item:match("^(%a+)%-(%a+)$")
    if a then
      if not DAYS[a] or not DAYS[b] then error("time_window: unknown day in " .. item, 3) end
      local i = DAYS[a]
      while true do
        set[i] = true
        if i == DAYS[b] then break end
        i = i % 7 + 1
      end
    elseif DAYS[item] then
      set[DAYS[item]] = true
    else
      error("time_window: unknown day " .. tostring(item), 3)
    end
  end
  return set
end

return function(opts)
  opts = opts or {}
  local days = day_set(opts.days)
  local from = minutes(opts.from or "00:00", "from")
  local to = minutes(opts.to or "24:00", "to")
  local fmt = opts.utc == false and "*t" or "!*t"
  local zone = opts.utc == false and "local time" or "UTC"
  local now = opts.now or os.time
  return function(ctx)
    local t = os.date(fmt, now())
    local m = t.hour * 60 + t.min
    local day = t.wday
    local inside
    if from <= to then
      inside = days[day] and m >= from and m < to
    else -- across midnight: the part after midnight belongs to the previous day's window
      inside = (days[day] and m >= from) or (days[(day - 2) % 7 + 1] and m < to)
    end
    if not inside then
      error(string.format("releases are allowed %s %s-%s %s; it is %s %02d:%02d %s",
        opts.days and (type(opts.days) == "table" and table.concat(opts.days, ",") or opts.days) or "every day",
        opts.from or "00:00", opts.to or "24:00", zone, NAMES[day], t.hour, t.min, zone), 0)
    end
    if ctx and ctx.log then ctx.log("inside the release window") end
  end
end
