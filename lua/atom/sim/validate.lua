-- Defaulting and validation a real apiserver applies before storing, limited to what clients
-- (kubectl, atom) observe. Functions mutate the object they are given (owned by the store at
-- that point) and return an array of metav1.StatusCause tables (empty = valid).
local util = require "atom.sim.util"
local selectors = require "atom.sim.selectors"

local M = {}

local function cause(reason, field, message)
  return { reason = reason, field = field, message = message }
end

local function is_dns_label(s)
  return #s >= 1 and #s <= 63 and s:match("^[a-z0-9][-a-z0-9]*$") ~= nil and s:match("[a-z0-9]$") ~= nil
end
local function is_dns1035_label(s)
  return is_dns_label(s) and s:match("^[a-z]") ~= nil
end
local function is_dns_subdomain(s)
  if #s > 253 then return false end
  for part in (s .. "."):gmatch("([^.]*)%.") do
    if not is_dns_label(part) then return false end
  end
  return true
end
M.is_dns_label, M.is_dns_subdomain = is_dns_label, is_dns_subdomain

-- Label and annotation keys: [DNS-subdomain prefix "/"] name. Returns nil or the reason.
local function qualified_name_error(k)
  if type(k) ~= "string" then return "must be a string" end
  local prefix, name = k:match("^(.*)/(.*)$")
  if not prefix then name = k end
  if prefix and (prefix == "" or not is_dns_subdomain(prefix)) then
    return "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
  end
  if name == "" then return "name part must be non-empty" end
  if #name > 63 then return "name part must be no more than 63 characters" end
  if not name:match("^[%w][%w%-_%.]*$") or not name:match("[%w]$") then
    return "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
  end
  return nil
end

-- Answers of the string checks run on every write, by checked string. The same few label and
-- annotation keys (and an object's own name and labels) come back on every write, and the pattern
-- matching was a large part of a write's validation. Emptied when it grows past CACHE_MAX, so
-- a long-lived sim with ever new names stays bounded.
local CACHE_MAX = 20000
local function memo(check)
  local cache, n = {}, 0
  return function(s)
    local r = cache[s]
    if r == nil then
      r = check(s)
      if r == nil then r = false end
      if n >= CACHE_MAX then cache, n = {}, 0 end
      cache[s] = r
      n = n + 1
    end
    return r or nil
  end
end
M.qualified_name_error = memo(qualified_name_error)
local dns_label_ok = memo(function(s) return is_dns_label(s) or nil end)
local dns1035_label_ok = memo(function(s) return is_dns1035_label(s) or nil end)
local dns_subdomain_ok = memo(function(s) return is_dns_subdomain(s) or nil end)
local function label_value_bad(v)
  return #v > 63 or (v ~= "" and not v:match("^[%w][%w%-%._]*$")) or (v ~= "" and not v:match("[%w]$")) or nil
end
label_value_bad = memo(label_value_bad)

local PATH_SEGMENT_KINDS = {
  Role = true, ClusterRole = true, RoleBinding = true, ClusterRoleBinding = true,
}

local function name_causes(info, name)
  if name == nil or name == "" then
    return { cause("FieldValueRequired", "metadata.name", "Required value: name or generateName is required") }
  end
  if type(name) ~= "string" then
    return { cause("FieldValueInvalid", "metadata.name", "Invalid value: name must be a string") }
  end
  local ok, what
  if PATH_SEGMENT_KINDS[info.kind] then
    ok = name ~= "." and name ~= ".." and not name:find("[/%%]")
    what = 'may not contain "/" or "%"'
  elseif info.kind == "Namespace" then
    ok = dns_label_ok(name)
    what = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
  elseif info.kind == "Service" then
    ok = dns1035_label_ok(name)
    what = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
  else
    ok = dns_subdomain_ok(name)
    what = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
  end
  if not ok then
    return { cause("FieldValueInvalid", "metadata.name", string.format('Invalid value: "%s": %s', name, what)) }
  end
  return nil
end

local WORKLOADS = { Deployment = true, ReplicaSet = true, StatefulSet = true, DaemonSet = true }
-- Read-only stand-in for an absent map or list: object and default run on every write, and a
-- fresh `{}` per absent field was most of what they allocated.
local EMPTY = setmetatable({}, { __newindex = function() error("validate: EMPTY is read-only", 2) end })

local function template_causes(info, obj, out)
  local spec = obj.spec
  if type(spec) ~= "table" then
    out[#out + 1] = cause("FieldValueRequired", "spec.selector", "Required value")
    return
  end
  local sel = spec.selector
  if type(sel) ~= "table" then
    out[#out + 1] = cause("FieldValueRequired", "spec.selector", "Required value")
  elseif next(sel.matchLabels or {}) == nil and next(sel.matchExpressions or {}) == nil then
    out[#out + 1] = cause("FieldValueInvalid", "spec.selector", "Invalid value: \"null\": empty selector is invalid for deployment")
  else
    local labels = util.get_path(spec, "template", "metadata", "labels") or {}
    if not selectors.match_label_selector(sel, labels) then
      out[#out + 1] = cause("FieldValueInvalid", "spec.template.metadata.labels",
        "Invalid value: " .. selectors.map_string(labels) .. ": `selector` does not match template `labels`")
    end
  end
  local containers = util.get_path(spec, "template", "spec", "containers")
  if type(containers) ~= "table" or #containers == 0 then
    out[#out + 1] = cause("FieldValueRequired", "spec.template.spec.containers", "Required value")
  end
end

-- Validation on create and on every update.
function M.object(info, obj)
  local meta = obj.metadata
  local out = name_causes(info, meta.name) or {}
  if info.group == "apiextensions.k8s.io" and info.kind == "CustomResourceDefinition" then
    local spec = obj.spec or {}
    local want = tostring(util.get_path(spec, "names", "plural")) .. "." .. tostring(spec.group)
    if meta.name ~= want then
      out[#out + 1] = cause("FieldValueInvalid", "metadata.name",
        string.format('Invalid value: "%s": must be spec.names.plural+"."+spec.group', tostring(meta.name)))
    end
  end
  if WORKLOADS[info.kind] and info.group == "apps" then template_causes(info, obj, out) end
  if info.kind == "Pod" then
    local cs = util.get_path(obj, "spec", "containers")
    if type(cs) ~= "table" or #cs == 0 then
      out[#out + 1] = cause("FieldValueRequired", "spec.containers", "Required value")
    end
  end
  for i = 1, 2 do
    local which = i == 1 and "labels" or "annotations"
    for k in pairs(type(meta[which]) == "table" and meta[which] or EMPTY) do
      local bad = M.qualified_name_error(k)
      if bad then
        out[#out + 1] = cause("FieldValueInvalid", "metadata." .. which,
          string.format('Invalid value: "%s": %s', tostring(k), bad))
      end
    end
  end
  local ann_size = 0
  for k, v in pairs(meta.annotations or EMPTY) do
    ann_size = ann_size + #tostring(k) + (type(v) == "string" and #v or 0)
  end
  if ann_size > 262144 then
    out[#out + 1] = cause("FieldValueTooLong", "metadata.annotations",
      "Too long: may not be more than 262144 bytes")
  end
  for k, v in pairs(meta.labels or EMPTY) do
    if type(v) ~= "string" or label_value_bad(v) then
      out[#out + 1] = cause("FieldValueInvalid", "metadata.labels",
        string.format('Invalid value: "%s": a valid label must be an empty string or consist of alphanumeric characters, \'-\', \'_\' or \'.\', and must start and end with an alphanumeric character', tostring(v)))
    end
    if type(k) ~= "string" then break end
  end
  return out
end

local function differs(a, b) return not util.equal(a, b) end

local function go_quote(v)
  return '"' .. tostring(v):gsub('[\\"]', "\\%0") .. '"'
end

local function go_strings(list)
  if type(list) ~= "table" then return "[]string(nil)" end
  local parts = {}
  for i, v in ipairs(list) do parts[i] = go_quote(v) end
  return "[]string{" .. table.concat(parts, ", ") .. "}"
end

-- A LabelSelector as the apiserver prints a bad value: Go's %#v of the struct
-- (its String() is on the pointer only), e.g. v1.LabelSelector{MatchLabels:
-- map[string]string{"app":"web"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}.
local function go_label_selector(sel)
  local labels = "map[string]string(nil)"
  if type(sel.matchLabels) == "table" then
    local keys = {}
    for k in pairs(sel.matchLabels) do keys[#keys + 1] = k end
    table.sort(keys)
    for i, k in ipairs(keys) do keys[i] = go_quote(k) .. ":" .. go_quote(sel.matchLabels[k]) end
    labels = "map[string]string{" .. table.concat(keys, ", ") .. "}"
  end
  local exprs = "[]v1.LabelSelectorRequirement(nil)"
  if type(sel.matchExpressions) == "table" then
    local parts = {}
    for i, e in ipairs(sel.matchExpressions) do
      parts[i] = string.format("v1.LabelSelectorRequirement{Key:%s, Operator:%s, Values:%s}",
        go_quote(e.key or ""), go_quote(e.operator or ""), go_strings(e.values))
    end
    exprs = "[]v1.LabelSelectorRequirement{" .. table.concat(parts, ", ") .. "}"
  end
  return "v1.LabelSelector{MatchLabels:" .. labels .. ", MatchExpressions:" .. exprs .. "}"
end

-- spec.<field> may not change on update: the cause the apiserver gives when it did.
local function immutable(out, old_spec, new_spec, field)
  if differs(old_spec[field], new_spec[field]) then
    local v = new_spec[field]
    local shown = (field == "selector" and type(v) == "table") and go_label_selector(v)
      or util.encode(v or util.null)
    out[#out + 1] = cause("FieldValueInvalid", "spec." .. field,
      "Invalid value: " .. shown .. ": field is immutable")
  end
end

local STS_MUTABLE = {
  replicas = true, template = true, updateStrategy = true, ordinals = true,
  persistentVolumeClaimRetentionPolicy = true, minReadySeconds = true,
}

-- Immutable fields on update.
function M.update(info, old, new)
  local out = {}
  local k, g = info.kind, info.group
  local os_, ns_ = old.spec or {}, new.spec or {}
  if g == "apps" and WORKLOADS[k] then immutable(out, os_, ns_, "selector") end
  if g == "apps" and k == "StatefulSet" then
    local fields = {}
    for x in pairs(os_) do fields[x] = true end
    for x in pairs(ns_) do fields[x] = true end
    for f in pairs(fields) do
      if not STS_MUTABLE[f] and f ~= "selector" and differs(os_[f], ns_[f]) then
        out[#out + 1] = cause("FieldValueForbidden", "spec",
          "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden")
        break
      end
    end
  end
  if g == "batch" and k == "Job" then
    immutable(out, os_, ns_, "selector")
    immutable(out, os_, ns_, "template")
  end
  if g == "" and k == "Service" then
    if os_.clusterIP and ns_.clusterIP and os_.clusterIP ~= ns_.clusterIP and os_.clusterIP ~= "" then
      out[#out + 1] = cause("FieldValueInvalid", "spec.clusterIPs[0]",
        string.format('Invalid value: []string{"%s"}: may not change once set', tostring(ns_.clusterIP)))
    end
  end
  if g == "" and k == "PersistentVolumeClaim" then
    local a, b = util.copy(os_), util.copy(ns_)
    for _, x in ipairs({ a, b }) do
      if type(x.resources) == "table" then x.resources.requests = nil end
      x.volumeName = nil
    end
    if differs(a, b) then
      out[#out + 1] = cause("FieldValueForbidden", "spec",
        "Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims")
    end
  end
  if g == "" and (k == "ConfigMap" or k == "Secret") and old.immutable == true then
    if differs(old.data, new.data) then
      out[#out + 1] = cause("FieldValueForbidden", "data", "Forbidden: field is immutable when `immutable` is set")
    end
    if differs(old.binaryData, new.binaryData) and k == "ConfigMap" then
      out[#out + 1] = cause("FieldValueForbidden", "binaryData", "Forbidden: field is immutable when `immutable` is set")
    end
    if new.immutable ~= true then
      out[#out + 1] = cause("FieldValueForbidden", "immutable", "Forbidden: field is immutable when `immutable` is set")
    end
  end
  return out
end

local function default_template(tpl)
  if type(tpl) ~= "table" then return end
  local ps = tpl.spec
  if type(ps) ~= "table" then return end
  ps.restartPolicy = ps.restartPolicy or "Always"
  ps.terminationGracePeriodSeconds = ps.terminationGracePeriodSeconds or 30
  ps.dnsPolicy = ps.dnsPolicy or "ClusterFirst"
  ps.schedulerName = ps.schedulerName or "default-scheduler"
  for i = 1, 2 do
    local list = (i == 1 and ps.containers or ps.initContainers) or EMPTY
    for _, c in ipairs(list) do
      if type(c) == "table" then
        for _, p in ipairs(c.ports or EMPTY) do
          if type(p) == "table" then p.protocol = p.protocol or "TCP" end
        end
        c.terminationMessagePath = c.terminationMessagePath or "/dev/termination-log"
        c.terminationMessagePolicy = c.terminationMessagePolicy or "File"
        if c.imagePullPolicy == nil and type(c.image) == "string" then
          local tag = c.image:match(":([^:/]+)$")
          c.imagePullPolicy = (tag == nil or tag == "latest") and "Always" or "IfNotPresent"
        end
      end
    end
  end
end

-- The apiserver's DaemonSet strategy counts changes of the pod template (not of the whole
-- spec, as metadata.generation does) in this annotation; the controller labels each pod
-- pod-template-generation with it, which tells a new pod from one being replaced.
local TEMPLATE_GENERATION = "deprecated.daemonset.template.generation"
local function count_template_generation(obj, old)
  local was = old and type(old.metadata.annotations) == "table"
    and tonumber(old.metadata.annotations[TEMPLATE_GENERATION]) or 0
  local changed = old == nil or not util.equal((old.spec or {}).template, obj.spec.template)
  obj.metadata.annotations = type(obj.metadata.annotations) == "table" and obj.metadata.annotations or {}
  obj.metadata.annotations[TEMPLATE_GENERATION] = tostring(changed and was + 1 or math.max(was, 1))
end

-- What the DaemonSet controller labels a new pod pod-template-generation with.
function M.template_generation(ds)
  return type(ds.metadata.annotations) == "table" and ds.metadata.annotations[TEMPLATE_GENERATION]
    or tostring(ds.metadata.generation or 1)
end

-- Defaulting on create and update. `alloc.ip()` hands out a fresh ClusterIP, `alloc.node_port()`
-- a NodePort.
function M.default(info, obj, old, alloc)
  local k, g = info.kind, info.group
  local spec = obj.spec
  if g == "apps" and type(spec) == "table" then
    if k == "Deployment" then
      if spec.replicas == nil then spec.replicas = 1 end
      spec.progressDeadlineSeconds = spec.progressDeadlineSeconds or 600
      spec.revisionHistoryLimit = spec.revisionHistoryLimit or 10
      if type(spec.strategy) ~= "table" then spec.strategy = {} end
      spec.strategy.type = spec.strategy.type or "RollingUpdate"
      if spec.strategy.type == "RollingUpdate" then
        spec.strategy.rollingUpdate = spec.strategy.rollingUpdate or {}
        spec.strategy.rollingUpdate.maxUnavailable = spec.strategy.rollingUpdate.maxUnavailable or "25%"
        spec.strategy.rollingUpdate.maxSurge = spec.strategy.rollingUpdate.maxSurge or "25%"
      end
    elseif k == "StatefulSet" then
      if spec.replicas == nil then spec.replicas = 1 end
      spec.podManagementPolicy = spec.podManagementPolicy or "OrderedReady"
      spec.revisionHistoryLimit = spec.revisionHistoryLimit or 10
      if type(spec.updateStrategy) ~= "table" then spec.updateStrategy = {} end
      spec.updateStrategy.type = spec.updateStrategy.type or "RollingUpdate"
      if spec.updateStrategy.type == "RollingUpdate" then
        spec.updateStrategy.rollingUpdate = spec.updateStrategy.rollingUpdate or {}
        if spec.updateStrategy.rollingUpdate.partition == nil then
          spec.updateStrategy.rollingUpdate.partition = 0
        end
      end
      spec.persistentVolumeClaimRetentionPolicy = spec.persistentVolumeClaimRetentionPolicy
        or { whenDeleted = "Retain", whenScaled = "Retain" }
    elseif k == "ReplicaSet" then
      if spec.replicas == nil then spec.replicas = 1 end
    elseif k == "DaemonSet" then
      spec.revisionHistoryLimit = spec.revisionHistoryLimit or 10
      if type(spec.updateStrategy) ~= "table" then spec.updateStrategy = {} end
      spec.updateStrategy.type = spec.updateStrategy.type or "RollingUpdate"
      if spec.updateStrategy.type == "RollingUpdate" then
        spec.updateStrategy.rollingUpdate = spec.updateStrategy.rollingUpdate
          or { maxUnavailable = 1, maxSurge = 0 }
      end
    end
    default_template(spec.template)
    if k == "DaemonSet" then count_template_generation(obj, old) end
  elseif g == "batch" and type(spec) == "table" then
    if k == "Job" then
      if spec.backoffLimit == nil then spec.backoffLimit = 6 end
      if spec.completions == nil and spec.parallelism == nil then spec.completions = 1 end
      if spec.parallelism == nil then spec.parallelism = 1 end
      spec.completionMode = spec.completionMode or "NonIndexed"
      if spec.suspend == nil then spec.suspend = false end
      if spec.manualSelector == nil and type(spec.selector) ~= "table" and old == nil then
        local uid = obj.metadata.uid
        spec.selector = { matchLabels = { ["batch.kubernetes.io/controller-uid"] = uid } }
        local tpl = spec.template or {}
        spec.template = tpl
        tpl.metadata = tpl.metadata or {}
        tpl.metadata.labels = tpl.metadata.labels or {}
        tpl.metadata.labels["batch.kubernetes.io/controller-uid"] = uid
        tpl.metadata.labels["controller-uid"] = uid
        tpl.metadata.labels["batch.kubernetes.io/job-name"] = obj.metadata.name
        tpl.metadata.labels["job-name"] = obj.metadata.name
      end
      default_template(spec.template)
    elseif k == "CronJob" then
      spec.concurrencyPolicy = spec.concurrencyPolicy or "Allow"
      if spec.suspend == nil then spec.suspend = false end
      spec.successfulJobsHistoryLimit = spec.successfulJobsHistoryLimit or 3
      spec.failedJobsHistoryLimit = spec.failedJobsHistoryLimit or 1
      default_template(util.get_path(spec, "jobTemplate", "spec", "template"))
    end
  elseif g == "" then
    if k == "Service" then
      spec = spec or {}
      obj.spec = spec
      spec.type = spec.type or "ClusterIP"
      spec.sessionAffinity = spec.sessionAffinity or "None"
      if spec.type ~= "ExternalName" then
        local old_ip = old and util.get_path(old, "spec", "clusterIP")
        if spec.clusterIP == nil or spec.clusterIP == "" then
          spec.clusterIP = old_ip or alloc.ip()
        end
        if spec.clusterIP ~= "None" or spec.clusterIPs == nil then
          spec.clusterIPs = util.array({ spec.clusterIP })
        end
        spec.ipFamilies = spec.ipFamilies or util.array({ "IPv4" })
        spec.ipFamilyPolicy = spec.ipFamilyPolicy or "SingleStack"
        spec.internalTrafficPolicy = spec.internalTrafficPolicy or "Cluster"
      end
      for _, p in ipairs(spec.ports or {}) do
        if type(p) == "table" then
          p.protocol = p.protocol or "TCP"
          if p.targetPort == nil then p.targetPort = p.port end
        end
      end
      if (spec.type == "NodePort" or spec.type == "LoadBalancer") then
        spec.externalTrafficPolicy = spec.externalTrafficPolicy or "Cluster"
        local old_ports = {}
        for _, p in ipairs(old and util.get_path(old, "spec", "ports") or {}) do
          if type(p) == "table" and p.nodePort then
            old_ports[tostring(p.port) .. "/" .. tostring(p.protocol or "TCP")] = p.nodePort
          end
        end
        for _, p in ipairs(spec.ports or {}) do
          if type(p) == "table" and p.nodePort == nil then
            p.nodePort = old_ports[tostring(p.port) .. "/" .. tostring(p.protocol)] or alloc.node_port()
          end
        end
        if spec.type == "LoadBalancer" and spec.externalTrafficPolicy == "Local" and spec.healthCheckNodePort == nil then
          spec.healthCheckNodePort = util.get_path(old or {}, "spec", "healthCheckNodePort") or alloc.node_port()
        end
      end
    elseif k == "Pod" then
      default_template({ spec = spec })
    elseif k == "Secret" then
      obj.type = obj.type or "Opaque"
    elseif k == "Namespace" then
      obj.spec = obj.spec or {}
      if old == nil then obj.spec.finalizers = obj.spec.finalizers or util.array({ "kubernetes" }) end
      obj.status = obj.status or {}
      obj.status.phase = obj.status.phase or "Active"
      obj.metadata.labels = obj.metadata.labels or {}
      obj.metadata.labels["kubernetes.io/metadata.name"] = obj.metadata.name
    elseif k == "ReplicationController" and type(spec) == "table" then
      if spec.replicas == nil then spec.replicas = 1 end
      default_template(spec.template)
    end
  end
end

-- The finalizers a server knows without a domain (apimachinery's standard ones).
local STANDARD_FINALIZERS = { kubernetes = true, orphan = true, foregroundDeletion = true }

-- What a real server (1.27+) sends back in Warning headers for a written object: a
-- finalizer name without a domain. Strings, as kubectl prints them after "Warning: ".
function M.warnings(obj)
  local out = {}
  local md = type(obj) == "table" and obj.metadata
  for _, f in ipairs(type(md) == "table" and type(md.finalizers) == "table" and md.finalizers or {}) do
    if type(f) == "string" and not f:find("/", 1, true) and not STANDARD_FINALIZERS[f] then
      out[#out + 1] = string.format('metadata.finalizers: "%s": prefer a domain-qualified finalizer name ' ..
        "to avoid accidental conflicts with other finalizer writers", f)
    end
  end
  return out
end

return M
