-- Small order statistics for the benchmark summary. Pure functions over lists of numbers;
-- inputs are never modified (each function sorts a copy).
local M = {}

local function sorted(xs)
  local c = {}
  for i, x in ipairs(xs) do c[i] = x end
  table.sort(c)
  return c
end

function M.median(xs)
  if #xs == 0 then return nil end
  local c = sorted(xs)
  local m = (#c + 1) // 2
  if #c % 2 == 1 then return c[m] end
  return (c[m] + c[m + 1]) / 2
end

-- Nearest-rank percentile (p in 0..100): with few samples p99 is simply the maximum.
function M.percentile(xs, p)
  if #xs == 0 then return nil end
  local c = sorted(xs)
  local rank = math.max(1, math.ceil(p / 100 * #c))
  return c[rank]
end

function M.min(xs)
  if #xs == 0 then return nil end
  return sorted(xs)[1]
end

function M.max(xs)
  if #xs == 0 then return nil end
  local c = sorted(xs)
  return c[#c]
end

-- { median, min, max, p99, n } or nil for an empty list.
function M.summary(xs)
  if #xs == 0 then return nil end
  return { median = M.median(xs), min = M.min(xs), max = M.max(xs),
           p99 = M.percentile(xs, 99), n = #xs }
end

return M
