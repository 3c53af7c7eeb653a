-- atom.sim: the simulated Kubernetes API server's machinery. C creates one instance with
-- `require("atom.sim").new(opts)` and calls `sim:handle(req)` per request and `sim:closed(id)`
-- when a watch client disconnects. The instance owns the store, registry, scenario, metrics and
-- watch streams; controllers (lua/atom/sim/controllers) attach themselves to it at creation.
local util = require "atom.sim.util"
local clockmod = require "atom.sim.clock"
local registrymod = require "atom.sim.registry"
local storemod = require "atom.sim.store"
local scenariomod = require "atom.sim.scenario"
local metricsmod = require "atom.sim.metrics"
local discoverymod = require "atom.sim.discovery"
local openapimod = require "atom.sim.openapi"
local api = require "atom.sim.api"

local M = {}
local Sim = {}
Sim.__index = Sim

local CRD_RK = "customresourcedefinitions.apiextensions.k8s.io"

local function established(crd)
  for _, c in ipairs(util.get_path(crd, "status", "conditions") or {}) do
    if c.type == "Established" and c.status == "True" then return true end
  end
  return false
end

function Sim:_on_crd(typ, obj)
  local names = util.get_path(obj, "spec", "names") or {}
  local group = util.get_path(obj, "spec", "group")
  if not names.plural or not group then return end
  local rk = registrymod.rk_of(names.plural, group)
  local cur = self.registry:lookup(rk)
  if typ == "DELETED" or not established(obj) then
    if cur and cur.crd then
      self.registry:remove(rk)
      if typ == "DELETED" then
        -- the real apiserver removes every instance before the CRD goes away
        self.registry:add(cur)
        for _, o in ipairs(self.store:list(rk)) do
          self.store:delete(rk, o.metadata.namespace, o.metadata.name, { propagation = "Background" })
        end
        self.registry:remove(rk)
      end
    end
    return
  end
  self.registry:add_crd(obj)
end

-- Without the controllers helper loaded, CRDs are accepted and established at once.
function Sim:_auto_establish(typ, obj)
  if typ ~= "ADDED" or established(obj) then return end
  local c = util.copy(obj)
  c.status = c.status or {}
  local now = self.clock:rfc3339()
  c.status.conditions = util.array({
    { type = "NamesAccepted", status = "True", reason = "NoConflicts", message = "no conflicts found", lastTransitionTime = now },
    { type = "Established", status = "True", reason = "InitialNamesAccepted", message = "the initial names have been accepted", lastTransitionTime = now },
  })
  c.status.acceptedNames = util.copy(util.get_path(obj, "spec", "names"))
  c.status.storedVersions = util.array()
  for _, v in ipairs(util.get_path(obj, "spec", "versions") or {}) do
    if v.storage then c.status.storedVersions[#c.status.storedVersions + 1] = v.name end
  end
  self.store:update_status(CRD_RK, c)
end

function Sim:_seed()
  local store = self.store
  for _, ns in ipairs({ "default", "kube-system", "kube-public", "kube-node-lease" }) do
    store:create("namespaces", { apiVersion = "v1", kind = "Namespace", metadata = { name = ns } })
  end
  store:create("services", { apiVersion = "v1", kind = "Service",
    metadata = { name = "kubernetes", namespace = "default",
      labels = { component = "apiserver", provider = "kubernetes" } },
    spec = { clusterIP = "10.96.0.1", ports = util.array({ { name = "https", port = 443, protocol = "TCP", targetPort = 6443 } }) } })
end

-- Nodes, unless the node controller already made them.
function Sim:_seed_nodes(nodes)
  local store = self.store
  if #store:list("nodes") > 0 then return end
  local now = self.clock:rfc3339()
  for i = 1, nodes do
    local name = "sim-node-" .. i
    store:create("nodes", { apiVersion = "v1", kind = "Node", metadata = { name = name,
      labels = { ["kubernetes.io/hostname"] = name, ["kubernetes.io/os"] = "linux",
        ["kubernetes.io/arch"] = "amd64" } },
      spec = { podCIDR = string.format("10.244.%d.0/24", i) },
      status = {
        conditions = util.array({ { type = "Ready", status = "True", reason = "KubeletReady",
          message = "kubelet is posting ready status", lastHeartbeatTime = now, lastTransitionTime = now } }),
        addresses = util.array({ { type = "InternalIP", address = "172.18.0." .. (i + 1) },
          { type = "Hostname", address = name } }),
        capacity = { cpu = "8", memory = "32Gi", pods = "110" },
        allocatable = { cpu = "8", memory = "32Gi", pods = "110" },
        nodeInfo = { kubeletVersion = "v1.32.0", osImage = "atom sim", kernelVersion = "6.0.0",
          containerRuntimeVersion = "sim://1.0", operatingSystem = "linux", architecture = "amd64" },
      } })
  end
end

function Sim:_load_controllers()
  local ok, list = pcall(require, "atom.sim.controllers")
  if not ok or list == nil then return false end
  if type(list) == "function" then list(self) return true end
  if type(list) ~= "table" then return false end
  for _, name in ipairs(list) do
    local okm, mod = pcall(require, name)
    if not okm then okm, mod = pcall(require, "atom.sim.controllers." .. name) end
    if okm and type(mod) == "function" then
      local okc, err = pcall(mod, self)
      if not okc then self.errors[#self.errors + 1] = "controller " .. name .. ": " .. tostring(err) end
    else
      self.errors[#self.errors + 1] = "controller " .. tostring(name) .. ": " .. tostring(mod)
    end
  end
  return true
end

function M.new(opts)
  opts = opts or {}
  local loop = assert(opts.loop, "atom.sim.new: opts.loop is required")
  local self = setmetatable({}, Sim)
  self.opts = opts
  self.loop = loop
  self.util = util
  self.errors = {}
  self.clock = clockmod.new(loop, opts.time_scale or 1)
  self.registry = registrymod.new()
  self.store = storemod.new({ registry = self.registry, clock = self.clock, loop = loop,
    history_cap = opts.history_cap })
  -- subscriber failures are kept (bounded) for specs and debugging, and passed to opts.log
  self.log = opts.log
  self.on_error = function(err) self.store.on_error(err) end
  self.store.on_error = function(err)
    if #self.errors < 200 then self.errors[#self.errors + 1] = tostring(err) end
    if type(opts.log) == "function" then pcall(opts.log, "atom sim: " .. tostring(err)) end
  end
  self.scenario = scenariomod.new({ ready_after = opts.ready_after or 1 })
  self.metrics = metricsmod.new()
  local addr = (opts.server_url or ""):match("^%a+://([^/]+)") or "127.0.0.1:6443"
  self.discovery = discoverymod.new(self.registry, addr)
  self.openapi = openapimod.new(self.registry)
  self.watchers, self.watch_by_rk, self.watch_by_name = {}, {}, {}
  self.ready_times = {}
  self.bookmark_interval = opts.bookmark_interval
  -- Every store event passes here: the name-pinned index is only consulted (a key string per
  -- event) while some watch is pinned to a name, and nothing is allocated for an event no
  -- watcher gets.
  self.store:subscribe(function(typ, rk, obj, old)
    local ws = self.watch_by_rk[rk]
    if ws and next(ws) == nil then ws = nil end
    local named, named_old
    if next(self.watch_by_name) ~= nil then
      named = self.watch_by_name[rk .. "\0" .. tostring(obj.metadata.name)]
      named_old = old and old.metadata.name ~= obj.metadata.name
        and self.watch_by_name[rk .. "\0" .. tostring(old.metadata.name)] or nil
    end
    if ws or named or named_old then
      local ev = { type = typ, rk = rk, obj = obj, old = old, rv = tonumber(obj.metadata.resourceVersion) or self.store.rv }
      if ws then for _, w in pairs(ws) do api.deliver(self, w, ev) end end
      if named then for _, w in pairs(named) do api.deliver(self, w, ev) end end
      if named_old then for _, w in pairs(named_old) do api.deliver(self, w, ev) end end
    end
  end)
  self.store:subscribe(function(typ, rk, obj)
    if rk == CRD_RK then self:_on_crd(typ, obj) end
  end)
  self:_seed()
  -- opts.controllers = false runs the bare API machinery (used by its own specs)
  self.controllers_loaded = opts.controllers ~= false and self:_load_controllers() or false
  self.store.wait_namespace_finalizer = self.controllers_loaded
  self:_seed_nodes(opts.nodes or 3)
  if not self.controllers_loaded or opts.auto_establish_crds then
    self.store:subscribe(function(typ, rk, obj)
      if rk == CRD_RK then self:_auto_establish(typ, obj) end
    end)
  end
  if opts.scenario then
    local ok, err = self:load_scenario(opts.scenario, "=scenario")
    if not ok then error("scenario: " .. tostring(err)) end
  end
  return self
end

function Sim:handle(req)
  return api.handle(self, req)
end

function Sim:closed(stream_id)
  local w = self.watchers[stream_id]
  if w then api.close_watch(self, w, false) end
end

-- The ready marks kept for /atom-sim/ready-times: the most recent READY_KEEP to
-- 2 x READY_KEEP of them, so a long-lived sim's record (and each read of it) stays bounded.
local READY_KEEP = 50000
function Sim:mark_ready(rk, obj)
  local meta = obj and obj.metadata or {}
  local rt = self.ready_times
  if #rt >= 2 * READY_KEEP then
    rt = table.move(rt, #rt - READY_KEEP + 1, #rt, 1, {})
    self.ready_times = rt
  end
  rt[#rt + 1] = { rk = rk, namespace = meta.namespace, name = meta.name, at = self.loop.wall() }
end

function Sim:load_scenario(source, chunkname)
  return self.scenario:load(source, chunkname)
end

M.Sim = Sim
return M
