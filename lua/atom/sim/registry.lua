-- The resource types the simulated API server serves: built-in kinds plus CRD kinds registered
-- at run time. Entries (`info`) are owned by the registry; callers must not change them.
-- info = { group, version, versions, resource, singular, kind, namespaced, verbs, short_names,
--          categories, rk, subresources = { status = true, scale = true }, crd = bool,
--          printer_columns = { [version] = {...} } (CRDs only), list_kind }
local M = {}
M.__index = M

local ALL_VERBS = { "create", "delete", "deletecollection", "get", "list", "patch", "update", "watch" }

-- group | versions (preferred first) | resource | Kind | N(amespaced)/C(luster) | short names |
-- categories | subresources
local BUILTIN = [[
|v1|namespaces|Namespace|C|ns||status
|v1|pods|Pod|N|po|all|status,log
|v1|services|Service|N|svc|all|status
|v1|endpoints|Endpoints|N|ep||
|v1|configmaps|ConfigMap|N|cm||
|v1|secrets|Secret|N|||
|v1|serviceaccounts|ServiceAccount|N|sa||
|v1|events|Event|N|ev||
|v1|persistentvolumes|PersistentVolume|C|pv||status
|v1|persistentvolumeclaims|PersistentVolumeClaim|N|pvc||status
|v1|replicationcontrollers|ReplicationController|N|rc|all|status,scale
|v1|limitranges|LimitRange|N|limits||
|v1|resourcequotas|ResourceQuota|N|quota||status
|v1|nodes|Node|C|no||status
|v1|podtemplates|PodTemplate|N|||
apps|v1|deployments|Deployment|N|deploy|all|status,scale
apps|v1|replicasets|ReplicaSet|N|rs|all|status,scale
apps|v1|statefulsets|StatefulSet|N|sts|all|status,scale
apps|v1|daemonsets|DaemonSet|N|ds|all|status
apps|v1|controllerrevisions|ControllerRevision|N|||
batch|v1|jobs|Job|N||all|status
batch|v1|cronjobs|CronJob|N|cj|all|status
autoscaling|v2,v1|horizontalpodautoscalers|HorizontalPodAutoscaler|N|hpa|all|status
policy|v1|poddisruptionbudgets|PodDisruptionBudget|N|pdb||status
networking.k8s.io|v1|ingresses|Ingress|N|ing||status
networking.k8s.io|v1|ingressclasses|IngressClass|C|||
networking.k8s.io|v1|networkpolicies|NetworkPolicy|N|netpol||
rbac.authorization.k8s.io|v1|roles|Role|N|||
rbac.authorization.k8s.io|v1|rolebindings|RoleBinding|N|||
rbac.authorization.k8s.io|v1|clusterroles|ClusterRole|C|||
rbac.authorization.k8s.io|v1|clusterrolebindings|ClusterRoleBinding|C|||
coordination.k8s.io|v1|leases|Lease|N|||
discovery.k8s.io|v1|endpointslices|EndpointSlice|N|||
events.k8s.io|v1|events|Event|N|ev||
storage.k8s.io|v1|storageclasses|StorageClass|C|sc||
storage.k8s.io|v1|volumeattachments|VolumeAttachment|C|||status
storage.k8s.io|v1|csidrivers|CSIDriver|C|||
certificates.k8s.io|v1|certificatesigningrequests|CertificateSigningRequest|C|csr||status,approval
admissionregistration.k8s.io|v1|validatingwebhookconfigurations|ValidatingWebhookConfiguration|C|||
admissionregistration.k8s.io|v1|mutatingwebhookconfigurations|MutatingWebhookConfiguration|C|||
admissionregistration.k8s.io|v1|validatingadmissionpolicies|ValidatingAdmissionPolicy|C|||status
admissionregistration.k8s.io|v1|validatingadmissionpolicybindings|ValidatingAdmissionPolicyBinding|C|||
admissionregistration.k8s.io|v1|mutatingadmissionpolicies|MutatingAdmissionPolicy|C|||
admissionregistration.k8s.io|v1|mutatingadmissionpolicybindings|MutatingAdmissionPolicyBinding|C|||
apiextensions.k8s.io|v1|customresourcedefinitions|CustomResourceDefinition|C|crd,crds|api-extensions|status
apiregistration.k8s.io|v1|apiservices|APIService|C||api-extensions|status
scheduling.k8s.io|v1|priorityclasses|PriorityClass|C|pc||
authorization.k8s.io|v1|selfsubjectaccessreviews|SelfSubjectAccessReview|C|||
authorization.k8s.io|v1|selfsubjectrulesreviews|SelfSubjectRulesReview|C|||
authentication.k8s.io|v1|selfsubjectreviews|SelfSubjectReview|C|||
]]

-- Review kinds are answered at once and never stored; they only take `create`.
local CREATE_ONLY = { selfsubjectaccessreviews = true, selfsubjectrulesreviews = true,
  selfsubjectreviews = true }

-- Group order in /apis, as a real server lists them.
local GROUP_ORDER = {
  "apiregistration.k8s.io", "apps", "events.k8s.io", "authentication.k8s.io",
  "authorization.k8s.io", "autoscaling", "batch", "certificates.k8s.io", "networking.k8s.io",
  "policy", "rbac.authorization.k8s.io", "storage.k8s.io", "admissionregistration.k8s.io",
  "apiextensions.k8s.io", "scheduling.k8s.io", "coordination.k8s.io", "discovery.k8s.io",
}

local function split(s, sep)
  local out = {}
  if s == nil or s == "" then return out end
  for p in (s .. sep):gmatch("(.-)" .. sep:gsub("%p", "%%%0")) do out[#out + 1] = p end
  return out
end

local function rk_of(resource, group)
  if group == "" then return resource end
  return resource .. "." .. group
end
M.rk_of = rk_of

local function singular_of(kind) return kind:lower() end

function M.new()
  local self = setmetatable({}, M)
  self.by_rk = {}        -- rk -> info
  self.by_gvr = {}       -- "group/version/resource" -> info
  self.groups = {}       -- ordered array of { name, versions = {..} }
  self.group_index = {}  -- name -> group entry
  self.gen = 0           -- bumped on every change so callers can cache derived documents
  for line in BUILTIN:gmatch("[^\n]+") do
    local f = split(line, "|")
    local subs = {}
    for _, s in ipairs(split(f[8], ",")) do subs[s] = true end
    self:add({
      group = f[1], versions = split(f[2], ","), resource = f[3], kind = f[4],
      namespaced = f[5] == "N", short_names = split(f[6], ","), categories = split(f[7], ","),
      subresources = subs, verbs = CREATE_ONLY[f[3]] and { "create" } or nil,
      review = CREATE_ONLY[f[3]] or nil,
    })
  end
  return self
end

local function group_rank(name)
  if name == "" then return 0 end
  for i, g in ipairs(GROUP_ORDER) do if g == name then return i end end
  return 1000
end

function M:_rebuild_groups()
  local seen, groups = {}, {}
  for _, info in pairs(self.by_rk) do
    local g = seen[info.group]
    if not g then
      g = { name = info.group, versions = {}, vset = {} }
      seen[info.group] = g
      groups[#groups + 1] = g
    end
    for _, v in ipairs(info.versions) do
      if not g.vset[v] then
        g.vset[v] = true
        g.versions[#g.versions + 1] = v
      end
    end
  end
  for _, g in ipairs(groups) do
    table.sort(g.versions, function(a, b) return M.version_less(b, a) end)
  end
  table.sort(groups, function(a, b)
    local ra, rb = group_rank(a.name), group_rank(b.name)
    if ra ~= rb then return ra < rb end
    return a.name < b.name
  end)
  self.groups = groups
  self.group_index = seen
  self.gen = self.gen + 1
end

-- Kube version priority: GA > beta > alpha, then by number (v2 > v1, v1beta2 > v1beta1).
function M.version_less(a, b)
  local function key(v)
    local major, kind, minor = v:match("^v(%d+)(%a*)(%d*)$")
    if not major then return { -1, 0, 0, v } end
    local rank = (kind == "" and 3) or (kind == "beta" and 2) or (kind == "alpha" and 1) or 0
    return { rank, tonumber(major), tonumber(minor) or 0, v }
  end
  local ka, kb = key(a), key(b)
  for i = 1, 3 do if ka[i] ~= kb[i] then return ka[i] < kb[i] end end
  return ka[4] > kb[4]
end

function M:add(info)
  info.rk = rk_of(info.resource, info.group)
  info.version = info.versions[1]
  info.singular = info.singular or singular_of(info.kind)
  info.verbs = info.verbs or ALL_VERBS
  info.subresources = info.subresources or {}
  info.list_kind = info.kind .. "List"
  local old = self.by_rk[info.rk]
  if old then self:remove(info.rk, true) end
  self.by_rk[info.rk] = info
  for _, v in ipairs(info.versions) do
    self.by_gvr[info.group .. "/" .. v .. "/" .. info.resource] = info
  end
  self:_rebuild_groups()
  return info
end

function M:remove(rk, no_rebuild)
  local info = self.by_rk[rk]
  if not info then return end
  self.by_rk[rk] = nil
  for _, v in ipairs(info.versions) do
    self.by_gvr[info.group .. "/" .. v .. "/" .. info.resource] = nil
  end
  if not no_rebuild then self:_rebuild_groups() end
end

function M:lookup(rk) return self.by_rk[rk] end

function M:lookup_gvr(group, version, resource)
  return self.by_gvr[group .. "/" .. version .. "/" .. resource]
end

function M:api_version(info, version)
  version = version or info.version
  if info.group == "" then return version end
  return info.group .. "/" .. version
end

-- Resources of one group/version, sorted by name.
function M:resources_of(group, version)
  local out = {}
  for _, info in pairs(self.by_rk) do
    if info.group == group then
      for _, v in ipairs(info.versions) do
        if v == version then out[#out + 1] = info break end
      end
    end
  end
  table.sort(out, function(a, b) return a.resource < b.resource end)
  return out
end

-- Register the kind a CRD object describes (called when the CRD is Established).
function M:add_crd(crd)
  local spec = crd.spec or {}
  local names = spec.names or {}
  if not spec.group or not names.plural or not names.kind then return nil end
  local versions, columns, subs, scale_paths = {}, {}, {}, nil
  for _, v in ipairs(spec.versions or {}) do
    if v.served ~= false and v.name then
      versions[#versions + 1] = v.name
      columns[v.name] = v.additionalPrinterColumns
      if type(v.subresources) == "table" then
        if v.subresources.status then subs.status = true end
        if v.subresources.scale then subs.scale = true end
        scale_paths = scale_paths or v.subresources.scale
      end
    end
  end
  if #versions == 0 then return nil end
  table.sort(versions, function(a, b) return M.version_less(b, a) end)
  return self:add({
    group = spec.group, versions = versions, resource = names.plural, kind = names.kind,
    singular = names.singular or names.kind:lower(), namespaced = spec.scope ~= "Cluster",
    short_names = names.shortNames or {}, categories = names.categories or {},
    subresources = subs, crd = true, printer_columns = columns,
    crd_name = crd.metadata and crd.metadata.name, scale_paths = scale_paths,
  })
end

return M
