-- atom.kube.watch — watches that survive: resume from the last seen
-- resourceVersion after a dropped stream, re-list after 410 Gone.
--
--   watch.open(client, apiVersion, kind, namespace|nil, opts) -> watcher | nil, err
--     opts: labelSelector, fieldSelector, resourceVersion
--   watch.drive(client, timeout)   (what client:poll calls)
--   watcher:close()
--   watcher.resource_version      the last RV seen
--   watcher.streams               how many watch requests it has opened
--
-- Events land in client.events as { watcher, type, object }: ADDED, MODIFIED,
-- DELETED as the server sends them; after a 410 the current objects come as
-- RELISTED, those that vanished meanwhile as DELETED (a stub: apiVersion,
-- kind and metadata name, namespace, uid, resourceVersion as last seen; a
-- watch keeps only that much per object, not the objects), then watching
-- resumes from the list's RV. A watch the server
-- refuses for good (403, 404, 400) yields one { type = "ERROR", err = err }
-- and closes; any other ERROR event yields { type = "ERROR", err = err } (no
-- object) and the watch resumes. BOOKMARKs only move the RV.
local config = require "atom.kube.config"
local json = require "atom.json"
local core = require "atom.core"

local M = {}
local W = {}
W.__index = W

local MAX_DELAY = 5

-- What a watch remembers of an object it saw: enough to announce its
-- deletion after a re-list, a few strings rather than the object.
local function remember(known, obj)
  local md = type(obj) == "table" and obj.metadata or nil
  if type(md) ~= "table" or md.name == nil then return nil end
  local ns = md.namespace
  local k = (ns or "") .. "/" .. tostring(md.name)
  local seen = known[k]
  if seen then
    seen[3], seen[4] = md.uid, md.resourceVersion
  else
    known[k] = { md.name, ns, md.uid, md.resourceVersion }
  end
  return k
end

local function forget(known, obj)
  local md = type(obj) == "table" and obj.metadata or nil
  if type(md) == "table" then known[(md.namespace or "") .. "/" .. tostring(md.name)] = nil end
end

function W:_stub(seen)
  return { apiVersion = self.api_version, kind = self.kind,
           metadata = { name = seen[1], namespace = seen[2], uid = seen[3], resourceVersion = seen[4] } }
end

function M.open(client, api_version, kind, namespace, opts)
  local info, ns = client:_target(api_version, kind, namespace, true)
  if not info then return nil, ns end
  local w = setmetatable({
    client = client, info = info, api_version = api_version, kind = kind, namespace = ns,
    opts = opts, resource_version = opts.resourceVersion, parts = {}, known = {},
    failures = 0, closed = false,
  }, W)
  w.what = ("watch %s %s"):format(api_version, ns and (kind .. " in namespace " .. ns) or kind)
  client.watchers[w] = true
  w:_start()
  return w
end

function W:_emit(t, obj, extra)
  local ev = { watcher = self, type = t, object = obj }
  if extra then for k, v in pairs(extra) do ev[k] = v end end
  local evs = self.client.events
  evs[#evs + 1] = ev
end

function W:_schedule(relist)
  self.failures = self.failures + 1
  local delay = math.min(0.05 * 2 ^ (self.failures - 1), MAX_DELAY)
  self.reopen_at = core.monotonic() + delay
  -- Without an RV to resume from, a new watch would replay everything as
  -- ADDED and miss deletions: list instead.
  local rv = self.resource_version
  self.pending_relist = relist or rv == nil or rv == ""
end

function W:_start()
  self.reopen_at, self.parts = nil, {}
  self.streams = (self.streams or 0) + 1
  local rv = self.resource_version
  local q = { watch = "true", allowWatchBookmarks = "true",
              labelSelector = self.opts.labelSelector, fieldSelector = self.opts.fieldSelector,
              resourceVersion = (rv and rv ~= "") and rv or nil }
  local c = self.client
  local req = { method = "GET", path = c:path_for(self.info, self.namespace), query = q,
                stream = true, what = self.what }
  local id = c:_send(req)
  if not id then return self:_schedule(false) end
  self.id = id
  c.handlers[id] = function(comp) self:_on(comp) end
end

function W:_stop_stream()
  if self.id then
    self.client.handlers[self.id] = nil
    self.client.conn:cancel(self.id)
    self.id = nil
  end
end

function W:_relist()
  self.reopen_at = nil
  local c = self.client
  local items, rv = c:list(self.api_version, self.kind, self.namespace,
    { labelSelector = self.opts.labelSelector, fieldSelector = self.opts.fieldSelector })
  if not items then return self:_schedule(true) end
  local fresh = {}
  for _, it in ipairs(items) do
    remember(fresh, it)
    self:_emit("RELISTED", it)
  end
  for k, seen in pairs(self.known) do
    if not fresh[k] then self:_emit("DELETED", self:_stub(seen)) end
  end
  self.known = fresh
  self.resource_version = rv
  self.pending_relist = false
  self:_start()
end

-- Returns false when the stream was torn down while handling this line.
function W:_line(line)
  local ev = json.try_decode(line)
  if type(ev) ~= "table" or type(ev.type) ~= "string" then return true end
  local obj = ev.object
  local md = type(obj) == "table" and obj.metadata or nil
  if ev.type == "ERROR" then
    self:_stop_stream()
    if type(obj) == "table" and obj.code == 410 then
      self:_relist()
    else
      local st = type(obj) == "table" and obj or nil
      local err = self.client:make_error(self.what, st and st.code or 0, st,
        (st and st.message) or "the server sent an ERROR event")
      self:_emit("ERROR", nil, { err = err })
      self:_schedule(false)
    end
    return false
  end
  if type(md) == "table" and md.resourceVersion then self.resource_version = md.resourceVersion end
  if ev.type == "BOOKMARK" then return true end
  self.failures = 0
  if ev.type == "DELETED" then forget(self.known, obj) else remember(self.known, obj) end
  self:_emit(ev.type, obj)
  return true
end

-- parts: the pieces of the line not finished yet. A large object arrives in many chunks;
-- they are joined once, when its newline comes, rather than the whole line so far being
-- copied and searched again for every chunk (quadratic in the object's size).
function W:_feed(chunk)
  local parts = self.parts
  if not chunk:find("\n", 1, true) then
    parts[#parts + 1] = chunk
    return
  end
  local buf = chunk
  if #parts > 0 then
    parts[#parts + 1] = chunk
    buf = table.concat(parts)
  end
  self.parts = {}
  local pos = 1
  while true do
    local nl = buf:find("\n", pos, true)
    if not nl then break end
    local line = buf:sub(pos, nl - 1)
    pos = nl + 1
    if line:find("%S") and not self:_line(line) then return end
  end
  if pos <= #buf then self.parts[1] = buf:sub(pos) end
end

function W:_on(comp)
  if self.closed then return end
  if comp.chunk then return self:_feed(comp.chunk) end
  if not comp.done then return end
  self.client.handlers[comp.id] = nil
  self.id = nil
  local rest = table.concat(self.parts)
  if rest:find("%S") then
    self.parts = {}
    if not self:_line(rest) then return end
  end
  local status = comp.status or 0
  if comp.error or (status >= 200 and status < 300) or status == 429 or status >= 500 then
    -- Dropped or ended: resume from the last RV (quickly after a healthy stream).
    return self:_schedule(false)
  end
  if status == 410 then return self:_relist() end
  if status == 401 and config.refreshable(self.client.cfg) and self.failures < 2 then
    config.credential(self.client.cfg, { refresh = true })
    return self:_schedule(false)
  end
  local err = self.client:_http_error({ what = self.what, method = "GET", path = "" }, comp)
  self:_emit("ERROR", nil, { err = err })
  self:close()
end

function W:close()
  if self.closed then return end
  self.closed = true
  self:_stop_stream()
  self.client.watchers[self] = nil
end

function M.drive(client, timeout)
  local deadline = core.monotonic() + timeout
  while true do
    local now = core.monotonic()
    local next_wake = deadline
    for w in pairs(client.watchers) do
      if not w.closed and w.reopen_at then
        if w.reopen_at <= now then
          if w.pending_relist then w:_relist() else w:_start() end
        elseif w.reopen_at < next_wake then
          next_wake = w.reopen_at
        end
      end
    end
    if #client.events > 0 then return end
    now = core.monotonic()
    if now >= deadline then
      client:_pump(0)
      return
    end
    client:_pump(math.max(0, next_wake - now))
    if #client.events > 0 then return end
  end
end

return M
