-- atom.release.lease: one coordination.k8s.io/v1 Lease per release (`atom-<release>` in the
-- release namespace) so that two runs never drive the same release.
--
--   lease.acquire(client, namespace, release, { holder =, duration = }) -> lease | nil, err
--     err.busy = true (with err.holder, err.expires_in) when another live run holds it.
--   l:renew(force) -> true | nil, err   (renews when a third of the duration has passed)
--   l:release()                          (gives the lease up; best effort)
--   l:release_req() -> request | nil     (the same write, to send along with others)
-- Every write carries the Lease's resourceVersion: of two runs taking over an expired lease
-- at once, exactly one write succeeds; the other gets a 409 and is refused.
local core = require "atom.core"
local util = require "atom.release.util"

local lease = {}
local Lease = {}
Lease.__index = Lease

local API, KIND = "coordination.k8s.io/v1", "Lease"

local function busy(holder, expires_in)
  return setmetatable({ busy = true, holder = holder, expires_in = expires_in,
    message = string.format("release is held by %s; its lease expires in %.0fs", holder, math.max(0, expires_in)) },
    { __tostring = function(e) return e.message end })
end

local function expires_at(obj)
  local spec = obj.spec or {}
  local renewed = util.parse_time(spec.renewTime) or util.parse_time(spec.acquireTime) or 0
  return renewed + (tonumber(spec.leaseDurationSeconds) or 0)
end

-- Another run created or updated the lease between our read and our write (409): say who
-- holds it now.
local function lost_race(client, namespace, name, err)
  if not (err and err.code == 409) then return nil, err end
  local other = client:get(API, KIND, namespace, name) or { spec = {} }
  return nil, busy(other.spec.holderIdentity or "another run", expires_at(other) - core.wall())
end

function lease.acquire(client, namespace, release, opts)
  local holder = opts.holder or util.holder()
  local duration = math.max(1, math.floor(opts.duration or 15))
  local name = "atom-" .. release
  local now = util.rfc3339(nil, true)
  local live, err = client:get(API, KIND, namespace, name)
  if not live and err and err.code ~= 404 then return nil, err end
  local obj, taken_over
  if not live then
    obj, err = client:create({ apiVersion = API, kind = KIND,
      metadata = { name = name, namespace = namespace, labels = { ["atom.dev/lease-of"] = release } },
      spec = { holderIdentity = holder, leaseDurationSeconds = duration, acquireTime = now,
               renewTime = now, leaseTransitions = 0 } })
    if not obj then return lost_race(client, namespace, name, err) end
  else
    local spec = live.spec or {}
    local left = expires_at(live) - core.wall()
    if spec.holderIdentity and spec.holderIdentity ~= "" and spec.holderIdentity ~= holder and left > 0 then
      return nil, busy(spec.holderIdentity, left)
    end
    live.spec = spec
    taken_over = spec.holderIdentity and spec.holderIdentity ~= "" and spec.holderIdentity ~= holder
    spec.holderIdentity = holder
    spec.leaseDurationSeconds = duration
    spec.acquireTime = now
    spec.renewTime = now
    spec.leaseTransitions = (tonumber(spec.leaseTransitions) or 0) + 1
    obj, err = client:update(live)
    if not obj then return lost_race(client, namespace, name, err) end
  end
  return setmetatable({ client = client, obj = obj, holder = holder, duration = duration,
                        renewed = core.monotonic(), taken_over = taken_over and true or nil }, Lease)
end

function Lease:renew(force)
  if not force and core.monotonic() - self.renewed < self.duration / 3 then return true end
  self.obj.spec.renewTime = util.rfc3339(nil, true)
  local obj, err = self.client:update(self.obj)
  if not obj then
    if err and err.code == 409 then
      return nil, "lost the lease " .. self.obj.metadata.name .. ": another run took it over"
    end
    return nil, err
  end
  self.obj = obj
  self.renewed = core.monotonic()
  return true
end

-- The request that gives the lease up, for a caller that sends it with other writes.
function Lease:release_req()
  self.obj.spec.holderIdentity = ""
  self.obj.spec.renewTime = util.rfc3339(nil, true)
  local req = self.client:_write_req("PUT", self.obj, nil, "update")
  if req then req.raw = true end
  return req
end

function Lease:release()
  local req = self:release_req()
  if req then self.client:request(req) end
end

return lease
