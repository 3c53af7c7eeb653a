-- hooks/time_window.lua with a fixed clock.
local sandbox = require "atom.release.sandbox"

local function window(opts)
  return sandbox.new{ dir = "hooks", hooks_dir = "hooks" }.require("atom.hooks.time_window")(opts)
end

-- 2026-11-23 is a Monday; epoch seconds for a UTC day and time.
local function at(day_offset, hh, mm)
  return function() return 1795392000 + day_offset * 86400 + hh * 3600 + mm * 60 end
end

describe("hooks/time_window", function()
  it("the clock helper starts on a Monday", function()
    assert.equal("Mon 00:00", os.date("!%a %H:%M", at(0, 0, 0)()))
  end)

  it("lets a release through inside the window", function()
    local logs = {}
    window{ days = "Mon-Fri", from = "09:00", to = "17:00", now = at(2, 10, 30) }({ log = function(m) logs[#logs + 1] = m end })
    assert.same({ "inside the release window" }, logs)
  end)

  it("refuses outside the hours and on other days, saying when releases are allowed", function()
    local ok, err = pcall(window{ days = "Mon-Fri", from = "09:00", to = "17:00", now = at(2, 17, 0) }, {})
    assert.is_false(ok)
    assert.equal("releases are allowed Mon-Fri 09:00-17:00 UTC; it is Wed 17:00 UTC", err)
    ok, err = pcall(window{ days = "Mon-Fri", from = "09:00", to = "17:00", now = at(5, 10, 0) }, {})
    assert.is_false(ok)
    assert.matches("it is Sat 10:00 UTC", err)
  end)

  it("handles windows across midnight and day lists", function()
    local night = { days = { "Fri" }, from = "22:00", to = "02:00" }
    night.now = at(4, 23, 0); assert.has_no_error(function() window(night)({}) end)
    night.now = at(5, 1, 59); assert.has_no_error(function() window(night)({}) end)
    night.now = at(5, 2, 0); assert.has_error(function() window(night)({}) end)
    night.now = at(3, 23, 0); assert.has_error(function() window(night)({}) end)
    assert.has_no_error(function() window{ days = "Sat-Mon", now = at(6, 3, 0) }({}) end)
    assert.has_error(function() window{ days = "Sat-Mon", now = at(1, 3, 0) }({}) end)
  end)

  it("rejects a malformed window when built", function()
    assert.has_error(function() window{ from = "9am" } end, "time_window: from must be HH:MM, got 9am")
    assert.has_error(function() window{ days = "Funday" } end, "time_window: unknown day Funday")
  end)
end)
