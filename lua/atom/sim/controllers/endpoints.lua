-- Endpoints and EndpointSlice controller: for every Service with a selector,
-- keeps an Endpoints object (same name) and one EndpointSlice (owned by the
-- Service) listing the matching pods' IPs, ready or not, as the real
-- endpoint and endpointslice controllers do. `kubectl describe svc` and
-- `kubectl get endpoints` read these.
--
-- Ownership: the label indexes of services and pods, and the slice name per
-- Service, live in this closure.

local util = require("atom.sim.controllers.util")

local SVC = "services"
local EP = "endpoints"
local SLICE = "endpointslices.discovery.k8s.io"

local function pairs_of(map)
  local out = {}
  for k, v in pairs(map or {}) do out[#out + 1] = k .. "=" .. tostring(v) end
  return out
end

return function(sim)
  local store = sim.store
  local svc_by_pair = {} -- ns -> "k=v" -> { [service name] = true }
  local svc_sel = {}     -- "ns/name" -> selector map indexed above
  local pod_by_pair = {} -- ns -> "k=v" -> { [pod name] = true }
  local slice_of = {}    -- service uid -> EndpointSlice name
  local q

  local function index_add(idx, ns, keys, name)
    local byns = idx[ns]
    if not byns then
      byns = {}
      idx[ns] = byns
    end
    for _, k in ipairs(keys) do
      local set = byns[k]
      if not set then
        set = {}
        byns[k] = set
      end
      set[name] = true
    end
  end

  local function index_remove(idx, ns, keys, name)
    local byns = idx[ns]
    if not byns then return end
    for _, k in ipairs(keys) do
      local set = byns[k]
      if set then
        set[name] = nil
        if next(set) == nil then byns[k] = nil end
      end
    end
    -- a deleted namespace leaves nothing behind in a long-lived sim
    if next(byns) == nil then idx[ns] = nil end
  end

  -- Pods matching a plain-map selector, starting from its rarest label pair.
  local function matching_pods(ns, sel)
    local byns = pod_by_pair[ns]
    if not byns then return {} end
    local best
    for _, k in ipairs(pairs_of(sel)) do
      local set = byns[k]
      if not set then return {} end
      local n = 0
      for _ in pairs(set) do n = n + 1 end
      if not best or n < (best.n or math.huge) then best = { set = set, n = n } end
    end
    local out = {}
    if not best then return out end
    for name in pairs(best.set) do
      local p = store:get("pods", ns, name)
      if p and util.selector_matches(sel, p.metadata.labels) then out[#out + 1] = p end
    end
    table.sort(out, function(a, b) return a.metadata.name < b.metadata.name end)
    return out
  end

  -- Service port -> endpoint port: a named targetPort is looked up in the
  -- pod's container ports.
  local function endpoint_ports(svc, pod)
    local out = {}
    for _, sp in ipairs((svc.spec or {}).ports or {}) do
      local tp = sp.targetPort or sp.port
      if type(tp) == "string" then
        local num = tonumber(tp)
        if not num and pod then
          for _, c in ipairs((pod.spec or {}).containers or {}) do
            for _, cp in ipairs(c.ports or {}) do
              if cp.name == tp then num = cp.containerPort end
            end
          end
        end
        tp = num
      end
      if tp then
        out[#out + 1] = { name = sp.name, port = tp, protocol = sp.protocol or "TCP" }
      end
    end
    return out
  end

  local function reconcile(ns, name)
    local svc = store:get(SVC, ns, name)
    if not svc then return end
    local spec = svc.spec or {}
    local sel = spec.selector
    if spec.type == "ExternalName" or not sel or next(sel) == nil then return end

    local ready, not_ready, slice_eps = {}, {}, {}
    local first
    for _, p in ipairs(matching_pods(ns, sel)) do
      local st = p.status or {}
      if st.podIP and util.pod_active(p) then
        first = first or p
        local ref = { kind = "Pod", name = p.metadata.name, namespace = ns, uid = p.metadata.uid }
        local addr = { ip = st.podIP, nodeName = p.spec.nodeName, targetRef = ref }
        local ok = util.pod_ready(p)
        if ok then ready[#ready + 1] = addr else not_ready[#not_ready + 1] = addr end
        slice_eps[#slice_eps + 1] = {
          addresses = { st.podIP },
          conditions = { ready = ok, serving = ok, terminating = false },
          nodeName = p.spec.nodeName,
          targetRef = util.copy(sim, ref),
        }
      end
    end
    local ports = endpoint_ports(svc, first)

    local subsets
    if #ready + #not_ready > 0 then
      subsets = { {
        addresses = #ready > 0 and ready or nil,
        notReadyAddresses = #not_ready > 0 and not_ready or nil,
        ports = #ports > 0 and ports or nil,
      } }
    end
    local ep = store:get(EP, ns, name)
    if not ep then
      store:create(EP, { apiVersion = "v1", kind = "Endpoints",
        metadata = { name = name, namespace = ns,
          labels = svc.metadata.labels and util.copy(sim, svc.metadata.labels) or nil },
        subsets = subsets }, util.OWNED)
    elseif not util.equal(ep.subsets, subsets) then
      -- only subsets change: the rest is shared with the stored version (sim.util.revise)
      local upd = sim.util.revise(ep)
      upd.subsets = subsets
      store:update(EP, upd, util.OWNED)
    end

    local slice_ports = {}
    for _, p in ipairs(ports) do
      -- Slice port names are pointers the real controller always sets, ""
      -- for an unnamed port; kubectl describe dereferences them.
      local c = util.copy(sim, p)
      c.name = c.name or ""
      slice_ports[#slice_ports + 1] = c
    end
    local uid = svc.metadata.uid
    local cur = slice_of[uid] and store:get(SLICE, ns, slice_of[uid])
    local eps = #slice_eps > 0 and slice_eps or nil
    local sports = #slice_ports > 0 and slice_ports or nil
    if not cur then
      local created = util.create_named(sim, SLICE, {
        apiVersion = "discovery.k8s.io/v1",
        kind = "EndpointSlice",
        metadata = {
          namespace = ns,
          labels = {
            ["kubernetes.io/service-name"] = name,
            ["endpointslice.kubernetes.io/managed-by"] = "endpointslice-controller.k8s.io",
          },
          ownerReferences = { util.owner_ref(svc, "v1", "Service") },
        },
        addressType = "IPv4",
        endpoints = eps,
        ports = sports,
      }, name .. "-")
      if created then slice_of[uid] = created.metadata.name end
    elseif not util.equal(cur.endpoints, eps) or not util.equal(cur.ports, sports) then
      local upd = sim.util.revise(cur)
      upd.endpoints, upd.ports = eps, sports
      store:update(SLICE, upd, util.OWNED)
    end
  end

  q = util.queue(sim, reconcile)

  -- What about a pod matters to its services.
  local function pod_view(p)
    if not p then return nil end
    local st = p.status or {}
    return tostring(st.podIP) .. "|" .. tostring(util.pod_ready(p)) .. "|" .. tostring(util.pod_active(p))
  end

  local function services_for(ns, labels, out)
    local byns = svc_by_pair[ns]
    if not byns then return end
    for k, v in pairs(labels or {}) do
      local set = byns[k .. "=" .. tostring(v)]
      if set then
        for sname in pairs(set) do
          if util.selector_matches(svc_sel[util.key(ns, sname)], labels) then out[sname] = true end
        end
      end
    end
  end

  local function on_event(ev, rk, obj, old)
    if rk == "pods" then
      local ns, name = obj.metadata.namespace, obj.metadata.name
      local labels, olabels = obj.metadata.labels, old and old.metadata.labels
      -- a pod without an IP is in no endpoints: its arrival or departure changes nothing
      local has_ip = (obj.status and obj.status.podIP) or (old and old.status and old.status.podIP)
      if ev == "DELETED" then
        index_remove(pod_by_pair, ns, pairs_of(labels), name)
        if not has_ip then return end
      elseif ev == "ADDED" then
        index_add(pod_by_pair, ns, pairs_of(labels), name)
        if not has_ip then return end
      elseif labels ~= olabels and not util.equal(labels, olabels) then
        index_remove(pod_by_pair, ns, pairs_of(olabels), name)
        index_add(pod_by_pair, ns, pairs_of(labels), name)
      elseif svc_by_pair[ns] == nil or pod_view(obj) == pod_view(old) then
        return
      end
      if svc_by_pair[ns] == nil then return end
      local hit = {}
      services_for(ns, labels, hit)
      if olabels then services_for(ns, olabels, hit) end
      for sname in pairs(hit) do q.add(ns, sname) end
      return
    end
    if rk ~= SVC then return end
    local ns, name = obj.metadata.namespace, obj.metadata.name
    local k = util.key(ns, name)
    if svc_sel[k] then
      index_remove(svc_by_pair, ns, pairs_of(svc_sel[k]), name)
      svc_sel[k] = nil
    end
    if ev == "DELETED" then
      slice_of[obj.metadata.uid] = nil
      sim.clock:after(0, function()
        if not store:get(SVC, ns, name) and store:get(EP, ns, name) then
          store:delete(EP, ns, name, { propagation = "Background" })
        end
      end)
      return
    end
    local sel = (obj.spec or {}).selector
    if sel and next(sel) and (obj.spec or {}).type ~= "ExternalName" then
      svc_sel[k] = sel
      index_add(svc_by_pair, ns, pairs_of(sel), name)
    end
    if util.needs_reconcile(ev, obj, old) then q.add(ns, name) end
  end
  store:subscribe(on_event, "pods")
  store:subscribe(on_event, SVC)
end
