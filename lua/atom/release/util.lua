-- atom.release.util: small pieces the release engine's modules share: times as the API
-- server writes them, object keys, who is running, logfmt quoting. Pure functions; nothing
-- here keeps state between calls.
local core = require "atom.core"

local util = {}

util.LABEL = "atom.dev/release"
-- Release names are unique per namespace only: the namespace of the release's records goes
-- on every object too, so two releases called "shop" never prune each other's objects.
util.NS_LABEL = "atom.dev/release-namespace"

function util.selector(release, namespace)
  return string.format("%s=%s,%s=%s", util.LABEL, release, util.NS_LABEL, namespace)
end

-- Does this live object belong to that release?
function util.owned(obj, release, namespace)
  local labels = (obj.metadata or {}).labels or {}
  return labels[util.LABEL] == release and labels[util.NS_LABEL] == namespace
end
util.VERSION_ANNOTATION = "atom.dev/version"

-- Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm): os.time reads a
-- table as local time, and a record must mean the same instant on every machine.
local function days_from_civil(y, m, d)
  y = m <= 2 and y - 1 or y
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local doy = (153 * (m > 2 and m - 3 or m + 9) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

-- "2026-11-26T15:14:16.123456Z" (MicroTime; also a valid metav1.Time after trimming).
function util.rfc3339(t, micro)
  t = t or core.wall()
  local s = os.date("!%Y-%m-%dT%H:%M:%S", math.floor(t))
  if micro then s = s .. string.format(".%06d", math.floor((t % 1) * 1e6)) end
  return s .. "Z"
end

-- Seconds since the epoch of an RFC 3339 time, or nil when it is not one.
function util.parse_time(s)
  if type(s) ~= "string" then return nil end
  local y, mo, d, h, mi, sec, frac = s:match("^(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)(%.?%d*)")
  if not y then return nil end
  local t = days_from_civil(tonumber(y), tonumber(mo), tonumber(d)) * 86400
    + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(sec)
  if frac ~= "" and frac ~= "." then t = t + tonumber("0" .. frac) end
  local sign, oh, om = s:match("([+-])(%d%d):?(%d%d)$")
  if sign then
    local off = tonumber(oh) * 3600 + tonumber(om) * 60
    t = sign == "+" and t - off or t + off
  end
  return t
end

function util.who()
  return string.format("%s@%s", core.username(), core.hostname())
end

function util.holder()
  return string.format("%s/%d", util.who(), core.pid())
end

-- apiVersion -> group, for the few apiVersions a run sees: util.key runs for every apply
-- answer and watch event, and the pattern match was a tenth of a large release's CPU.
local GROUP_OF = {}

function util.group_of(api_version)
  if type(api_version) ~= "string" then return "" end
  local g = GROUP_OF[api_version]
  if not g then
    g = api_version:match("^(.*)/[^/]*$") or ""
    GROUP_OF[api_version] = g
  end
  return g
end

-- Identity of an object across versions: the group, not the version, names a kind.
function util.key_of(api_version, kind, namespace, name)
  return util.group_of(api_version) .. "/" .. tostring(kind) .. "/" .. (namespace or "") .. "/" .. tostring(name)
end

function util.key(obj)
  local md = obj.metadata or {}
  return util.key_of(obj.apiVersion, obj.kind, md.namespace, md.name)
end

-- "Kind/name" or "Kind/namespace/name", for people.
function util.show(obj)
  local md = obj.metadata or {}
  if md.namespace and md.namespace ~= "" then
    return string.format("%s/%s/%s", obj.kind, md.namespace, md.name)
  end
  return string.format("%s/%s", obj.kind, md.name)
end

function util.copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = util.copy(x) end
  return setmetatable(out, getmetatable(v))
end

-- A logfmt value: bare when it is a simple word, else quoted with \" \\ \n escaped.
function util.logfmt_value(v)
  v = tostring(v == nil and "" or v)
  if v ~= "" and not v:find('[%s"=\\]') then return v end
  return '"' .. v:gsub('[\\"]', "\\%0"):gsub("\n", "\\n") .. '"'
end

function util.logfmt(fields)
  local parts = {}
  for _, kv in ipairs(fields) do
    parts[#parts + 1] = kv[1] .. "=" .. util.logfmt_value(kv[2])
  end
  return table.concat(parts, " ")
end

-- A number as an integer when it is whole: JSON gives 1.0 for a stored 1, and versions
-- are shown and compared as integers.
function util.int(v)
  local n = tonumber(v)
  if n == nil then return nil end
  return math.tointeger(n) or n
end

-- Release observers (atom.release.wait) registered on a client, weak-keyed: the only
-- state kept between calls, and it lives on the client it is about.
function util.observers(client)
  local r = rawget(client, "_atom_observers")
  if not r then
    r = setmetatable({}, { __mode = "k" })
    rawset(client, "_atom_observers", r)
  end
  return r
end

-- client:poll for every release module: events of an open observer's watches go to it
-- (so a wait never loses what arrived while something else polled); the rest are returned.
function util.poll(client, timeout)
  local events = client:poll(timeout) or {}
  local reg = util.observers(client)
  local rest = {}
  for _, ev in ipairs(events) do
    local taken = false
    for obs in pairs(reg) do
      if obs:accept(ev) then taken = true; break end
    end
    if not taken then rest[#rest + 1] = ev end
  end
  return rest
end

-- Puts events back in front of the client's queue (for the next poll), in order.
function util.requeue(client, events)
  if #events == 0 then return end
  if type(client.requeue) == "function" then return client:requeue(events) end
  local q = rawget(client, "events")
  if type(q) == "table" then
    for i = #events, 1, -1 do table.insert(q, 1, events[i]) end
  end
end

-- A whole file as bytes: -> text | nil, err (also when the read itself fails, as for a folder).
function util.read_file(path)
  local f, ferr = io.open(path, "rb")
  if not f then return nil, ferr end
  local text, rerr = f:read("a")
  f:close()
  if not text then return nil, rerr end
  return text
end

-- Writes a whole file (replacing it): -> true | nil, err.
function util.write_file(path, data)
  local f, ferr = io.open(path, "wb")
  if not f then return nil, ferr end
  local ok, werr = f:write(data)
  f:close()
  if not ok then return nil, werr end
  return true
end

-- First line of an error, for one-line messages.
function util.first_line(s)
  s = tostring(s)
  return s:match("^[^\n]*")
end

return util
