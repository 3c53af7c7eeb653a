-- Server-side printing (meta.k8s.io/v1 Table): columns per kind as a 1.32 apiserver prints them
-- (merge-keys-and-columns.md part 2), CRD additionalPrinterColumns, and the generic fallback.
-- Builders return fresh tables owned by the caller.
local util = require "atom.sim.util"
local selectors = require "atom.sim.selectors"
local clockmod = require "atom.sim.clock"

local M = {}

-- "5m" or "5m30s": the smaller unit only when it is not zero.
local function two_units(n, unit, r, small_unit)
  if r == 0 then return n .. unit end
  return string.format("%d%s%d%s", n, unit, r, small_unit)
end

function M.human_duration(d)
  if d < -1 then return "<invalid>" end
  if d < 0 then return "0s" end
  local s = math.floor(d)
  if s < 120 then return s .. "s" end
  local m = s // 60
  if m < 10 then return two_units(m, "m", s % 60, "s") end
  if m < 180 then return m .. "m" end
  local h = s // 3600
  if h < 8 then return two_units(h, "h", (s % 3600) // 60, "m") end
  if h < 48 then return h .. "h" end
  local days = h // 24
  if h < 192 then return two_units(days, "d", h % 24, "h") end
  if days < 730 then return days .. "d" end
  local y = days // 365
  if y < 8 then return two_units(y, "y", days % 365, "d") end
  return y .. "y"
end

local function age(now, ts)
  local t = clockmod.parse(ts)
  if not t then return "<unknown>" end
  return M.human_duration(now - t)
end

local function col(name, typ, desc, priority, format)
  return { name = name, type = typ or "string", format = format or "", description = desc or name,
    priority = priority or 0 }
end

local NAME = col("Name", "string",
  "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically.", 0, "name")
local AGE = col("Age", "string", "CreationTimestamp is a timestamp representing the server time when this object was created.")

local function g(o, ...) return util.get_path(o, ...) end
local function int(v) return math.tointeger(tonumber(v) or 0) or 0 end

local function containers_images(tpl_spec)
  local names, images = {}, {}
  for _, c in ipairs((tpl_spec or {}).containers or {}) do
    names[#names + 1] = c.name or ""
    images[#images + 1] = c.image or ""
  end
  return table.concat(names, ","), table.concat(images, ",")
end

local function more_list(items)
  if #items == 0 then return nil end
  if #items <= 3 then return table.concat(items, ",") end
  return table.concat(items, ",", 1, 3) .. string.format(" + %d more...", #items - 3)
end

local function pod_status(o, now)
  local st = o.status or {}
  local reason = st.reason or st.phase or "Pending"
  local total = #(g(o, "spec", "containers") or {})
  local ready, restarts = 0, 0
  local initializing = false
  local inits = g(o, "spec", "initContainers") or {}
  for i, cs in ipairs(st.initContainerStatuses or {}) do
    restarts = restarts + int(cs.restartCount)
    local state = cs.state or {}
    if state.terminated and int(state.terminated.exitCode) == 0 then
      -- done
    elseif state.terminated then
      reason = "Init:" .. (state.terminated.reason or ("ExitCode:" .. int(state.terminated.exitCode)))
      initializing = true
      break
    elseif state.waiting and state.waiting.reason and state.waiting.reason ~= "PodInitializing" then
      reason = "Init:" .. state.waiting.reason
      initializing = true
      break
    else
      reason = string.format("Init:%d/%d", i - 1, #inits)
      initializing = true
      break
    end
  end
  if not initializing then
    local css = st.containerStatuses or {}
    for i = #css, 1, -1 do
      local cs = css[i]
      restarts = restarts + int(cs.restartCount)
      local state = cs.state or {}
      if state.waiting and state.waiting.reason then reason = state.waiting.reason
      elseif state.terminated and state.terminated.reason then reason = state.terminated.reason
      elseif state.terminated then reason = "ExitCode:" .. int(state.terminated.exitCode)
      elseif cs.ready and state.running then ready = ready + 1 end
    end
  end
  if o.metadata.deletionTimestamp then
    if st.reason == "NodeLost" then reason = "Unknown"
    elseif st.phase ~= "Succeeded" and st.phase ~= "Failed" then reason = "Terminating" end
  end
  return string.format("%d/%d", ready, total), reason, restarts
end

local function condition(o, typ)
  for _, c in ipairs(g(o, "status", "conditions") or {}) do
    if c.type == typ then return c end
  end
end

local K = {}

K.Pod = {
  cols = { NAME, col("Ready"), col("Status"), col("Restarts", "string"), AGE,
    col("IP", "string", nil, 1), col("Node", "string", nil, 1), col("Nominated Node", "string", nil, 1),
    col("Readiness Gates", "string", nil, 1) },
  cells = function(o, now)
    local r, s, n = pod_status(o, now)
    local ips = g(o, "status", "podIPs")
    local ip = (ips and ips[1] and ips[1].ip) or g(o, "status", "podIP") or "<none>"
    return { o.metadata.name, r, s, tostring(n), age(now, o.metadata.creationTimestamp), ip,
      g(o, "spec", "nodeName") or "<none>", g(o, "status", "nominatedNodeName") or "<none>", "<none>" }
  end,
}

K.Deployment = {
  cols = { NAME, col("Ready"), col("Up-to-date", "integer"), col("Available", "integer"), AGE,
    col("Containers", "string", nil, 1), col("Images", "string", nil, 1), col("Selector", "string", nil, 1) },
  cells = function(o, now)
    local c, i = containers_images(g(o, "spec", "template", "spec"))
    return { o.metadata.name, string.format("%d/%d", int(g(o, "status", "readyReplicas")), int(g(o, "spec", "replicas"))),
      int(g(o, "status", "updatedReplicas")), int(g(o, "status", "availableReplicas")),
      age(now, o.metadata.creationTimestamp), c, i, selectors.label_selector_string(g(o, "spec", "selector")) }
  end,
}

-- ReplicaSet and ReplicationController print alike; only their selectors are shaped apart
-- (a LabelSelector, a plain map).
local function replica_cells(selector_string)
  return function(o, now)
    local c, i = containers_images(g(o, "spec", "template", "spec"))
    return { o.metadata.name, int(g(o, "spec", "replicas")), int(g(o, "status", "replicas")),
      int(g(o, "status", "readyReplicas")), age(now, o.metadata.creationTimestamp), c, i,
      selector_string(g(o, "spec", "selector")) }
  end
end

K.ReplicaSet = {
  cols = { NAME, col("Desired", "integer"), col("Current", "integer"), col("Ready", "integer"), AGE,
    col("Containers", "string", nil, 1), col("Images", "string", nil, 1), col("Selector", "string", nil, 1) },
  cells = replica_cells(selectors.label_selector_string),
}
K.ReplicationController = {
  cols = K.ReplicaSet.cols,
  cells = replica_cells(selectors.map_string),
}

K.StatefulSet = {
  cols = { NAME, col("Ready"), AGE, col("Containers", "string", nil, 1), col("Images", "string", nil, 1) },
  cells = function(o, now)
    local c, i = containers_images(g(o, "spec", "template", "spec"))
    return { o.metadata.name, string.format("%d/%d", int(g(o, "status", "readyReplicas")), int(g(o, "spec", "replicas"))),
      age(now, o.metadata.creationTimestamp), c, i }
  end,
}

K.DaemonSet = {
  cols = { NAME, col("Desired", "integer"), col("Current", "integer"), col("Ready", "integer"),
    col("Up-to-date", "integer"), col("Available", "integer"), col("Node Selector"), AGE,
    col("Containers", "string", nil, 1), col("Images", "string", nil, 1), col("Selector", "string", nil, 1) },
  cells = function(o, now)
    local c, i = containers_images(g(o, "spec", "template", "spec"))
    local s = o.status or {}
    return { o.metadata.name, int(s.desiredNumberScheduled), int(s.currentNumberScheduled), int(s.numberReady),
      int(s.updatedNumberScheduled), int(s.numberAvailable),
      selectors.map_string(g(o, "spec", "template", "spec", "nodeSelector")),
      age(now, o.metadata.creationTimestamp), c, i, selectors.label_selector_string(g(o, "spec", "selector")) }
  end,
}

K.Job = {
  cols = { NAME, col("Status"), col("Completions"), col("Duration"), AGE,
    col("Containers", "string", nil, 1), col("Images", "string", nil, 1), col("Selector", "string", nil, 1) },
  cells = function(o, now)
    local c, i = containers_images(g(o, "spec", "template", "spec"))
    local function is(t) local x = condition(o, t) return x and x.status == "True" end
    local st = "Running"
    if is("Complete") then st = "Complete" elseif is("Failed") then st = "Failed"
    elseif o.metadata.deletionTimestamp then st = "Terminating"
    elseif is("Suspended") then st = "Suspended" elseif is("FailureTarget") then st = "FailureTarget" end
    local succeeded = int(g(o, "status", "succeeded"))
    local comp = g(o, "spec", "completions")
    local par = int(g(o, "spec", "parallelism"))
    local completions
    if comp then completions = string.format("%d/%d", succeeded, int(comp))
    elseif par > 1 then completions = string.format("%d/1 of %d", succeeded, par)
    else completions = string.format("%d/1", succeeded) end
    local dur = ""
    local start = clockmod.parse(g(o, "status", "startTime"))
    if start then
      local fin = clockmod.parse(g(o, "status", "completionTime")) or now
      dur = M.human_duration(fin - start)
    end
    return { o.metadata.name, st, completions, dur, age(now, o.metadata.creationTimestamp), c, i,
      selectors.label_selector_string(g(o, "spec", "selector")) }
  end,
}

K.CronJob = {
  cols = { NAME, col("Schedule"), col("Timezone"), col("Suspend", "boolean"), col("Active", "integer"),
    col("Last Schedule"), AGE, col("Containers", "string", nil, 1), col("Images", "string", nil, 1),
    col("Selector", "string", nil, 1) },
  cells = function(o, now)
    local c, i = containers_images(g(o, "spec", "jobTemplate", "spec", "template", "spec"))
    local susp = g(o, "spec", "suspend")
    local last = g(o, "status", "lastScheduleTime")
    return { o.metadata.name, g(o, "spec", "schedule") or "", g(o, "spec", "timeZone") or "<none>",
      susp == nil and "<unset>" or (susp and "True" or "False"), #(g(o, "status", "active") or {}),
      last and age(now, last) or "<none>", age(now, o.metadata.creationTimestamp), c, i,
      selectors.label_selector_string(g(o, "spec", "jobTemplate", "spec", "selector")) }
  end,
}

K.Service = {
  cols = { NAME, col("Type"), col("Cluster-IP"), col("External-IP"), col("Port(s)"), AGE,
    col("Selector", "string", nil, 1) },
  cells = function(o, now)
    local s = o.spec or {}
    local typ = s.type or "ClusterIP"
    local cip = (s.clusterIPs and s.clusterIPs[1]) or s.clusterIP or "<none>"
    local ext
    if typ == "ExternalName" then ext = s.externalName or "<none>"
    elseif typ == "LoadBalancer" then
      local ips = {}
      for _, ing in ipairs(g(o, "status", "loadBalancer", "ingress") or {}) do
        ips[#ips + 1] = ing.ip or ing.hostname
      end
      for _, x in ipairs(s.externalIPs or {}) do ips[#ips + 1] = x end
      ext = #ips > 0 and table.concat(ips, ",") or "<pending>"
    else
      ext = (s.externalIPs and #s.externalIPs > 0) and table.concat(s.externalIPs, ",") or "<none>"
    end
    local ports = {}
    for _, p in ipairs(s.ports or {}) do
      local t = util.num(p.port)
      if p.nodePort then t = t .. ":" .. util.num(p.nodePort) end
      ports[#ports + 1] = t .. "/" .. (p.protocol or "TCP")
    end
    return { o.metadata.name, typ, cip, ext, #ports > 0 and table.concat(ports, ",") or "<none>",
      age(now, o.metadata.creationTimestamp), selectors.map_string(s.selector) }
  end,
}

local function count_keys(t) local n = 0 for _ in pairs(t or {}) do n = n + 1 end return n end

K.ConfigMap = {
  cols = { NAME, col("Data", "integer"), AGE },
  cells = function(o, now)
    return { o.metadata.name, count_keys(o.data) + count_keys(o.binaryData), age(now, o.metadata.creationTimestamp) }
  end,
}
K.Secret = {
  cols = { NAME, col("Type"), col("Data", "integer"), AGE },
  cells = function(o, now)
    return { o.metadata.name, o.type or "Opaque", count_keys(o.data), age(now, o.metadata.creationTimestamp) }
  end,
}
K.ServiceAccount = {
  cols = { NAME, col("Secrets", "integer"), AGE },
  cells = function(o, now) return { o.metadata.name, #(o.secrets or {}), age(now, o.metadata.creationTimestamp) } end,
}
K.Namespace = {
  cols = { NAME, col("Status"), AGE },
  cells = function(o, now)
    return { o.metadata.name, g(o, "status", "phase") or "Active", age(now, o.metadata.creationTimestamp) }
  end,
}
K.Node = {
  cols = { NAME, col("Status"), col("Roles"), AGE, col("Version"), col("Internal-IP", "string", nil, 1),
    col("External-IP", "string", nil, 1), col("OS-Image", "string", nil, 1),
    col("Kernel-Version", "string", nil, 1), col("Container-Runtime", "string", nil, 1) },
  cells = function(o, now)
    local rc = condition(o, "Ready")
    local st = rc and (rc.status == "True" and "Ready" or "NotReady") or "Unknown"
    if g(o, "spec", "unschedulable") then st = st .. ",SchedulingDisabled" end
    local roles = {}
    for k, v in pairs(o.metadata.labels or {}) do
      local r = k:match("^node%-role%.kubernetes%.io/(.+)$")
      if r then roles[#roles + 1] = r elseif k == "kubernetes.io/role" then roles[#roles + 1] = v end
    end
    table.sort(roles)
    local int_ip, ext_ip = "<none>", "<none>"
    for _, a in ipairs(g(o, "status", "addresses") or {}) do
      if a.type == "InternalIP" then int_ip = a.address elseif a.type == "ExternalIP" then ext_ip = a.address end
    end
    local ni = g(o, "status", "nodeInfo") or {}
    return { o.metadata.name, st, #roles > 0 and table.concat(roles, ",") or "<none>",
      age(now, o.metadata.creationTimestamp), ni.kubeletVersion or "", int_ip, ext_ip,
      ni.osImage or "<unknown>", ni.kernelVersion or "<unknown>", ni.containerRuntimeVersion or "<unknown>" }
  end,
}

local MODES = { ReadWriteOnce = "RWO", ReadOnlyMany = "ROX", ReadWriteMany = "RWX", ReadWriteOncePod = "RWOP" }
local function modes(list)
  local out = {}
  for _, m in ipairs(list or {}) do out[#out + 1] = MODES[m] or m end
  return table.concat(out, ",")
end

K.PersistentVolumeClaim = {
  cols = { NAME, col("Status"), col("Volume"), col("Capacity"), col("Access Modes"), col("StorageClass"),
    col("VolumeAttributesClass"), AGE, col("VolumeMode", "string", nil, 1) },
  cells = function(o, now)
    local s = o.spec or {}
    local phase = g(o, "status", "phase") or "Pending"
    if o.metadata.deletionTimestamp then phase = "Terminating" end
    local cap, am = "", ""
    if s.volumeName then
      cap = g(o, "status", "capacity", "storage") or ""
      am = modes(g(o, "status", "accessModes"))
    end
    return { o.metadata.name, phase, s.volumeName or "", cap, am, s.storageClassName or "<unset>",
      s.volumeAttributesClassName or "<unset>", age(now, o.metadata.creationTimestamp), s.volumeMode or "Filesystem" }
  end,
}
K.PersistentVolume = {
  cols = { NAME, col("Capacity"), col("Access Modes"), col("Reclaim Policy"), col("Status"), col("Claim"),
    col("StorageClass"), col("VolumeAttributesClass"), col("Reason"), AGE, col("VolumeMode", "string", nil, 1) },
  cells = function(o, now)
    local s = o.spec or {}
    local claim = ""
    if s.claimRef then claim = (s.claimRef.namespace or "") .. "/" .. (s.claimRef.name or "") end
    return { o.metadata.name, g(s, "capacity", "storage") or "", modes(s.accessModes),
      s.persistentVolumeReclaimPolicy or "Retain", g(o, "status", "phase") or "Pending", claim,
      s.storageClassName or "", s.volumeAttributesClassName or "<unset>", g(o, "status", "reason") or "",
      age(now, o.metadata.creationTimestamp), s.volumeMode or "Filesystem" }
  end,
}
K.Ingress = {
  cols = { NAME, col("Class"), col("Hosts"), col("Address"), col("Ports"), AGE },
  cells = function(o, now)
    local s = o.spec or {}
    local hosts = {}
    for _, r in ipairs(s.rules or {}) do if r.host then hosts[#hosts + 1] = r.host end end
    local addrs = {}
    for _, ing in ipairs(g(o, "status", "loadBalancer", "ingress") or {}) do addrs[#addrs + 1] = ing.ip or ing.hostname end
    return { o.metadata.name, s.ingressClassName or "<none>", more_list(hosts) or "*", table.concat(addrs, ","),
      (s.tls and #s.tls > 0) and "80, 443" or "80", age(now, o.metadata.creationTimestamp) }
  end,
}
K.Lease = {
  cols = { NAME, col("Holder"), AGE },
  cells = function(o, now) return { o.metadata.name, g(o, "spec", "holderIdentity") or "", age(now, o.metadata.creationTimestamp) } end,
}
K.PodDisruptionBudget = {
  cols = { NAME, col("Min Available"), col("Max Unavailable"), col("Allowed Disruptions", "integer"), AGE },
  cells = function(o, now)
    local s = o.spec or {}
    local function iop(v) if v == nil then return "N/A" end return type(v) == "number" and util.num(v) or tostring(v) end
    return { o.metadata.name, iop(s.minAvailable), iop(s.maxUnavailable), int(g(o, "status", "disruptionsAllowed")),
      age(now, o.metadata.creationTimestamp) }
  end,
}
K.HorizontalPodAutoscaler = {
  cols = { NAME, col("Reference"), col("Targets"), col("MinPods", "integer"), col("MaxPods", "integer"),
    col("Replicas", "integer"), AGE },
  cells = function(o, now)
    local s = o.spec or {}
    local ref = s.scaleTargetRef or {}
    local targets = {}
    if s.targetCPUUtilizationPercentage then
      targets[1] = "cpu: <unknown>/" .. util.num(s.targetCPUUtilizationPercentage) .. "%"
    end
    for _, m in ipairs(s.metrics or {}) do
      local r = m.resource or {}
      local t = r.target or {}
      if t.averageUtilization then targets[#targets + 1] = (r.name or "?") .. ": <unknown>/" .. util.num(t.averageUtilization) .. "%"
      else targets[#targets + 1] = (r.name or m.type or "?") .. ": <unknown>" end
    end
    local tg = "<none>"
    if #targets > 0 then
      tg = table.concat(targets, ", ", 1, math.min(2, #targets))
      if #targets > 2 then tg = tg .. string.format(" + %d more...", #targets - 2) end
    end
    return { o.metadata.name, (ref.kind or "") .. "/" .. (ref.name or ""), tg,
      s.minReplicas and int(s.minReplicas) or "<unset>", int(s.maxReplicas), int(g(o, "status", "currentReplicas")),
      age(now, o.metadata.creationTimestamp) }
  end,
}
local function binding_cells(o, now)
  local rr = o.roleRef or {}
  local users, groups, sas = {}, {}, {}
  for _, s in ipairs(o.subjects or {}) do
    if s.kind == "User" then users[#users + 1] = s.name
    elseif s.kind == "Group" then groups[#groups + 1] = s.name
    elseif s.kind == "ServiceAccount" then sas[#sas + 1] = (s.namespace or "") .. "/" .. (s.name or "") end
  end
  return { o.metadata.name, (rr.kind or "") .. "/" .. (rr.name or ""), age(now, o.metadata.creationTimestamp),
    table.concat(users, ", "), table.concat(groups, ", "), table.concat(sas, ", ") }
end
K.RoleBinding = {
  cols = { NAME, col("Role"), AGE, col("Users", "string", nil, 1), col("Groups", "string", nil, 1),
    col("ServiceAccounts", "string", nil, 1) },
  cells = binding_cells,
}
K.ClusterRoleBinding = K.RoleBinding
K.NetworkPolicy = {
  cols = { NAME, col("Pod-Selector"), AGE },
  cells = function(o, now)
    local s = selectors.label_selector_string(g(o, "spec", "podSelector"))
    return { o.metadata.name, s == "" and "<none>" or s, age(now, o.metadata.creationTimestamp) }
  end,
}
K.Endpoints = {
  cols = { NAME, col("Endpoints"), AGE },
  cells = function(o, now)
    local eps = {}
    for _, ss in ipairs(o.subsets or {}) do
      for _, a in ipairs(ss.addresses or {}) do
        if ss.ports and #ss.ports > 0 then
          for _, p in ipairs(ss.ports) do eps[#eps + 1] = a.ip .. ":" .. util.num(p.port) end
        else eps[#eps + 1] = a.ip end
      end
    end
    return { o.metadata.name, more_list(eps) or "<none>", age(now, o.metadata.creationTimestamp) }
  end,
}
K.EndpointSlice = {
  cols = { NAME, col("AddressType"), col("Ports"), col("Endpoints"), AGE },
  cells = function(o, now)
    local ports, eps = {}, {}
    for _, p in ipairs(o.ports or {}) do ports[#ports + 1] = p.port and util.num(p.port) or p.name or "*" end
    for _, e in ipairs(o.endpoints or {}) do for _, a in ipairs(e.addresses or {}) do eps[#eps + 1] = a end end
    return { o.metadata.name, o.addressType or "", #ports > 0 and table.concat(ports, ",") or "<unset>",
      more_list(eps) or "<unset>", age(now, o.metadata.creationTimestamp) }
  end,
}
K.Event = {
  cols = { col("Last Seen"), col("Type"), col("Reason"), col("Object"), col("Subobject", "string", nil, 1),
    col("Source", "string", nil, 1), col("Message"), col("First Seen", "string", nil, 1),
    col("Count", "integer", nil, 1), col("Name", "string", nil, 1) },
  cells = function(o, now)
    local first = o.firstTimestamp or o.eventTime or o.metadata.creationTimestamp
    local last = o.lastTimestamp or first
    local count = o.count or 1
    if type(o.series) == "table" then
      last = o.series.lastObservedTime or last
      count = o.series.count or count
    end
    local io = o.involvedObject or o.regarding or {}
    local src = o.source or {}
    local source = src.component or o.reportingController or o.reportingComponent or ""
    local host = src.host or o.reportingInstance
    if host and host ~= "" then source = source .. ", " .. host end
    return { age(now, last), o.type or "", o.reason or "", string.lower(io.kind or "") .. "/" .. (io.name or ""),
      io.fieldPath or "", source, o.message or o.note or "", age(now, first), int(count), o.metadata.name }
  end,
}

K.Scale = {
  cols = { NAME, col("Desired", "integer"), col("Available", "integer") },
  cells = function(o) return { o.metadata.name, int(g(o, "spec", "replicas")), int(g(o, "status", "replicas")) } end,
}

local GENERIC = {
  cols = { NAME, col("Created At", "date", "CreationTimestamp is a timestamp representing the server time when this object was created.") },
  cells = function(o) return { o.metadata.name, o.metadata.creationTimestamp or util.null } end,
}

-- Very small JSONPath: `.a.b`, `.a[0].b`, `.a[*].b` (first match), `{.a}` braces tolerated.
local function jsonpath(obj, path)
  if type(path) ~= "string" then return nil end
  path = path:gsub("^{", ""):gsub("}$", "")
  local cur = obj
  for seg in path:gmatch("[^%.]+") do
    local name, rest = seg:match("^([^%[]*)(.*)$")
    if name ~= "" then
      if type(cur) ~= "table" then return nil end
      cur = cur[name]
    end
    for idx in rest:gmatch("%[([^%]]*)%]") do
      if type(cur) ~= "table" then return nil end
      if idx == "*" then cur = cur[1] else
        local n = tonumber(idx)
        if n then cur = cur[n + 1] else
          -- ?(@.type=="Ready") filters
          local fk, fv = idx:match('^%?%(@%.([%w_]+)%s*==%s*["\']([^"\']*)["\']%)$')
          local found
          if fk then
            for _, e in ipairs(cur) do if type(e) == "table" and tostring(e[fk]) == fv then found = e break end end
          end
          cur = found
        end
      end
    end
    if cur == nil then return nil end
  end
  return cur
end
M.jsonpath = jsonpath

local function crd_table(info, version)
  local pcs = info.printer_columns and info.printer_columns[version]
  if not pcs or #pcs == 0 then
    pcs = { { name = "Age", type = "date", jsonPath = ".metadata.creationTimestamp" } }
  end
  local cols = { NAME }
  for _, pc in ipairs(pcs) do
    cols[#cols + 1] = col(pc.name, pc.type or "string", pc.description or pc.jsonPath, pc.priority or 0, pc.format)
  end
  return {
    cols = cols,
    cells = function(o, now)
      local out = { o.metadata.name }
      for i, pc in ipairs(pcs) do
        local v = jsonpath(o, pc.jsonPath)
        local t = pc.type or "string"
        if v == nil then v = util.null
        elseif t == "date" then
          v = type(v) == "string" and (clockmod.parse(v) and age(now, v) or "<invalid>") or "<invalid>"
        elseif t == "integer" or t == "number" then
          v = tonumber(v) or util.null
        elseif t == "boolean" then
          if type(v) ~= "boolean" then v = util.null end
        elseif type(v) == "table" then
          v = util.encode(v)
        else
          v = type(v) == "number" and util.num(v) or tostring(v)
        end
        out[i + 1] = v
      end
      return out
    end,
  }
end

local function printer(info, version, kind)
  if kind == "Scale" then return K.Scale end
  if info.crd then return crd_table(info, version) end
  return K[info.kind] or GENERIC
end

local function row(o, p, now, include, api_version)
  local r = { cells = p.cells(o, now) }
  if include == "Object" then
    r.object = o
  elseif include ~= "None" then
    local meta = util.copy(o.metadata)
    r.object = { kind = "PartialObjectMetadata", apiVersion = "meta.k8s.io/v1", metadata = meta }
  end
  return r
end

-- Build a Table. `objs` is an array of stored objects; opts = { now, include = "Metadata"|"Object"|
-- "None", no_columns = bool, rv, continue, remaining, kind = "Scale" for the scale subresource }.
function M.build(info, version, objs, opts)
  local p = printer(info, version, opts.kind)
  local rows = util.array()
  for i, o in ipairs(objs) do
    local ok, r = pcall(row, o, p, opts.now, opts.include)
    if not ok then
      r = row(o, GENERIC, opts.now, opts.include)
      if p ~= GENERIC then
        -- keep one cell per column even when a printer could not read an odd object
        local cells = { o.metadata.name }
        for j = 2, #p.cols do cells[j] = util.null end
        r.cells = cells
      end
    end
    rows[i] = r
  end
  local meta = { resourceVersion = opts.rv, continue = opts.continue, remainingItemCount = opts.remaining }
  return {
    kind = "Table", apiVersion = "meta.k8s.io/v1", metadata = meta,
    columnDefinitions = opts.no_columns and util.array() or util.array(util.copy(p.cols)),
    rows = rows,
  }
end

M.CONTENT_TYPE = "application/json;as=Table;v=v1;g=meta.k8s.io"

function M.wants_table(accept)
  return type(accept) == "string" and accept:find("as=Table", 1, true) ~= nil
end

return M
