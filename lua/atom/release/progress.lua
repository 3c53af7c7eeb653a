-- atom.release.progress: what the user sees while a release runs.
--
--   progress.new{ out = file (default io.stderr), tty = bool, release = name, quiet = bool }
--   view:log(fields)           a logfmt line ({ {k, v}, ... }; ts added)
--   view:update(not_ready, n)  on a terminal, redraws the list of objects still not ready
--                              and why; elsewhere, one log line per object whose state or
--                              message changed
--   view:finish()              clears the live area
-- The view owns its own small table of last-seen states; callers own what they pass in.
local util = require "atom.release.util"

local progress = {}
local View = {}
View.__index = View

local MAX_LINES = 12

function progress.new(opts)
  opts = opts or {}
  return setmetatable({ out = opts.out or io.stderr, tty = opts.tty, release = opts.release,
                        quiet = opts.quiet, last = {}, drawn = 0 }, View)
end

function View:clear()
  if self.tty and self.drawn > 0 then
    self.out:write(string.format("\27[%dA\27[J", self.drawn))
    self.drawn = 0
    self.drawn_sig = nil
  end
end

function View:log(fields)
  if self.quiet then return end
  self:clear()
  table.insert(fields, 1, { "ts", util.rfc3339(nil, true) })
  self.out:write(util.logfmt(fields), "\n")
  self.out:flush()
end

function View:update(not_ready, total)
  if self.quiet then return end
  if self.tty then
    local sig = { tostring(total) }
    for _, n in ipairs(not_ready) do sig[#sig + 1] = n.object .. "\0" .. n.state .. "\0" .. tostring(n.message) end
    sig = table.concat(sig, "\n")
    -- Redrawn when something changed, not on every tick: no flicker.
    if sig == self.drawn_sig and self.drawn > 0 then return end
    self.drawn_sig = sig
    self:clear()
    if #not_ready == 0 then return end
    local lines = { string.format("waiting for %d of %d object%s:", #not_ready, total, total == 1 and "" or "s") }
    for i, n in ipairs(not_ready) do
      if i >= MAX_LINES then
        lines[#lines + 1] = string.format("  ... and %d more", #not_ready - i + 1)
        break
      end
      lines[#lines + 1] = string.format("  %-40s %-11s %s", n.object, n.state, util.first_line(n.message))
    end
    self.out:write(table.concat(lines, "\n"), "\n")
    self.out:flush()
    self.drawn = #lines
    return
  end
  -- One write for the whole update: a large release changes hundreds of objects at once.
  local now, lines, ts = {}, {}, util.rfc3339(nil, true)
  local function line(fields)
    table.insert(fields, 1, { "ts", ts })
    lines[#lines + 1] = util.logfmt(fields)
  end
  for _, n in ipairs(not_ready) do
    local text = n.state .. "\0" .. tostring(n.message)
    now[n.key] = { text = text, object = n.object }
    if (self.last[n.key] or {}).text ~= text then
      line({ { "release", self.release }, { "object", n.object }, { "state", n.state },
             { "message", util.first_line(n.message) } })
    end
  end
  for key, was in pairs(self.last) do
    if not now[key] then
      line({ { "release", self.release }, { "object", was.object }, { "state", "ready" } })
    end
  end
  self.last = now
  if #lines > 0 then
    lines[#lines + 1] = ""
    self.out:write(table.concat(lines, "\n"))
    self.out:flush()
  end
end

function View:finish()
  self:clear()
end

return progress
