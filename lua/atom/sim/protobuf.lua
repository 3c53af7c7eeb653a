-- Decoding of the Kubernetes protobuf request encoding (`application/vnd.kubernetes.protobuf`)
-- for the kinds kubectl's typed generators send (`kubectl create namespace|configmap|secret|
-- deployment|service|job|cronjob|role|...`): the "k8s\0" envelope, a runtime.Unknown, and the
-- object message, turned into the same Lua table the JSON decoder would give. Only the fields
-- those commands set are described; other fields are skipped. Returns fresh tables.
local util = require "atom.sim.util"

local M = {}

-- Field specs: [number] = { json name, type, flags }. Types: s string, b bytes (base64 in JSON),
-- i varint integer, bool, t Time, q Quantity, ios IntOrString, ms map<string,string>,
-- mb map<string,bytes>, mq map<string,Quantity>, or a message name. Flags: r repeated,
-- p pointer (zero values are kept: they were set), i inline (fields merged into the parent).
local S = {}

S.ObjectMeta = { { "name", "s" }, { "generateName", "s" }, { "namespace", "s" }, nil, { "uid", "s" },
  { "resourceVersion", "s" }, { "generation", "i" }, { "creationTimestamp", "t" }, nil, nil,
  { "labels", "ms" }, { "annotations", "ms" }, { "ownerReferences", "OwnerReference", "r" },
  { "finalizers", "s", "r" } }
S.OwnerReference = { { "kind", "s" }, nil, { "name", "s" }, { "uid", "s" }, { "apiVersion", "s" },
  { "controller", "bool", "p" }, { "blockOwnerDeletion", "bool", "p" } }
S.LabelSelector = { { "matchLabels", "ms" }, { "matchExpressions", "LabelSelectorRequirement", "r" } }
S.LabelSelectorRequirement = { { "key", "s" }, { "operator", "s" }, { "values", "s", "r" } }
S.LocalObjectReference = { { "name", "s" } }
S.ObjectReference = { { "kind", "s" }, { "namespace", "s" }, { "name", "s" }, { "uid", "s" },
  { "apiVersion", "s" }, { "resourceVersion", "s" }, { "fieldPath", "s" } }

S.Namespace = { { "metadata", "ObjectMeta" }, { "spec", "NamespaceSpec" } }
S.NamespaceSpec = { { "finalizers", "s", "r" } }
S.ConfigMap = { { "metadata", "ObjectMeta" }, { "data", "ms" }, { "binaryData", "mb" }, { "immutable", "bool", "p" } }
S.Secret = { { "metadata", "ObjectMeta" }, { "data", "mb" }, { "type", "s" }, { "stringData", "ms" },
  { "immutable", "bool", "p" } }
S.ServiceAccount = { { "metadata", "ObjectMeta" }, { "secrets", "ObjectReference", "r" },
  { "imagePullSecrets", "LocalObjectReference", "r" }, { "automountServiceAccountToken", "bool", "p" } }

S.Pod = { { "metadata", "ObjectMeta" }, { "spec", "PodSpec" } }
S.PodTemplateSpec = { { "metadata", "ObjectMeta" }, { "spec", "PodSpec" } }
S.PodSpec = { nil, { "containers", "Container", "r" }, { "restartPolicy", "s" },
  { "terminationGracePeriodSeconds", "i", "p" }, { "activeDeadlineSeconds", "i", "p" }, { "dnsPolicy", "s" },
  { "nodeSelector", "ms" }, { "serviceAccountName", "s" }, { "serviceAccount", "s" }, { "nodeName", "s" },
  { "hostNetwork", "bool" }, { "hostPID", "bool" }, { "hostIPC", "bool" }, nil,
  { "imagePullSecrets", "LocalObjectReference", "r" }, { "hostname", "s" }, { "subdomain", "s" }, nil,
  { "schedulerName", "s" }, { "initContainers", "Container", "r" }, nil,
  { "tolerations", "Toleration", "r" }, nil, { "priorityClassName", "s" } }
S.Container = { { "name", "s" }, { "image", "s" }, { "command", "s", "r" }, { "args", "s", "r" },
  { "workingDir", "s" }, { "ports", "ContainerPort", "r" }, { "env", "EnvVar", "r" },
  { "resources", "ResourceRequirements" }, nil, nil, nil, nil, { "terminationMessagePath", "s" },
  { "imagePullPolicy", "s" }, nil, { "stdin", "bool" }, { "stdinOnce", "bool" }, { "tty", "bool" }, nil,
  { "terminationMessagePolicy", "s" } }
S.ContainerPort = { { "name", "s" }, { "hostPort", "i" }, { "containerPort", "i" }, { "protocol", "s" },
  { "hostIP", "s" } }
S.EnvVar = { { "name", "s" }, { "value", "s" } }
S.ResourceRequirements = { { "limits", "mq" }, { "requests", "mq" } }
S.Toleration = { { "key", "s" }, { "operator", "s" }, { "value", "s" }, { "effect", "s" },
  { "tolerationSeconds", "i", "p" } }

S.Deployment = { { "metadata", "ObjectMeta" }, { "spec", "DeploymentSpec" } }
S.DeploymentSpec = { { "replicas", "i", "p" }, { "selector", "LabelSelector" }, { "template", "PodTemplateSpec" },
  { "strategy", "DeploymentStrategy" }, { "minReadySeconds", "i" }, { "revisionHistoryLimit", "i", "p" },
  { "paused", "bool" }, nil, { "progressDeadlineSeconds", "i", "p" } }
S.DeploymentStrategy = { { "type", "s" }, { "rollingUpdate", "RollingUpdateDeployment" } }
S.RollingUpdateDeployment = { { "maxUnavailable", "ios", "p" }, { "maxSurge", "ios", "p" } }

S.Service = { { "metadata", "ObjectMeta" }, { "spec", "ServiceSpec" } }
S.ServiceSpec = { { "ports", "ServicePort", "r" }, { "selector", "ms" }, { "clusterIP", "s" }, { "type", "s" },
  { "externalIPs", "s", "r" }, nil, { "sessionAffinity", "s" }, { "loadBalancerIP", "s" },
  { "loadBalancerSourceRanges", "s", "r" }, { "externalName", "s" }, { "externalTrafficPolicy", "s" },
  { "healthCheckNodePort", "i" }, { "publishNotReadyAddresses", "bool" } }
S.ServicePort = { { "name", "s" }, { "protocol", "s" }, { "port", "i" }, { "targetPort", "ios" },
  { "nodePort", "i" }, { "appProtocol", "s", "p" } }

S.Job = { { "metadata", "ObjectMeta" }, { "spec", "JobSpec" } }
S.JobSpec = { { "parallelism", "i", "p" }, { "completions", "i", "p" }, { "activeDeadlineSeconds", "i", "p" },
  { "selector", "LabelSelector" }, { "manualSelector", "bool", "p" }, { "template", "PodTemplateSpec" },
  { "backoffLimit", "i", "p" }, { "ttlSecondsAfterFinished", "i", "p" }, { "completionMode", "s", "p" },
  { "suspend", "bool", "p" } }
S.CronJob = { { "metadata", "ObjectMeta" }, { "spec", "CronJobSpec" } }
S.CronJobSpec = { { "schedule", "s" }, { "startingDeadlineSeconds", "i", "p" }, { "concurrencyPolicy", "s" },
  { "suspend", "bool", "p" }, { "jobTemplate", "JobTemplateSpec" }, { "successfulJobsHistoryLimit", "i", "p" },
  { "failedJobsHistoryLimit", "i", "p" }, { "timeZone", "s", "p" } }
S.JobTemplateSpec = { { "metadata", "ObjectMeta" }, { "spec", "JobSpec" } }

S.Role = { { "metadata", "ObjectMeta" }, { "rules", "PolicyRule", "r" } }
S.ClusterRole = S.Role
S.PolicyRule = { { "verbs", "s", "r" }, { "apiGroups", "s", "r" }, { "resources", "s", "r" },
  { "resourceNames", "s", "r" }, { "nonResourceURLs", "s", "r" } }
S.RoleBinding = { { "metadata", "ObjectMeta" }, { "subjects", "Subject", "r" }, { "roleRef", "RoleRef" } }
S.ClusterRoleBinding = S.RoleBinding
S.Subject = { { "kind", "s" }, { "apiGroup", "s" }, { "name", "s" }, { "namespace", "s" } }
S.RoleRef = { { "apiGroup", "s" }, { "kind", "s" }, { "name", "s" } }

S.PodDisruptionBudget = { { "metadata", "ObjectMeta" }, { "spec", "PodDisruptionBudgetSpec" } }
S.PodDisruptionBudgetSpec = { { "minAvailable", "ios", "p" }, { "selector", "LabelSelector" },
  { "maxUnavailable", "ios", "p" }, { "unhealthyPodEvictionPolicy", "s", "p" } }
S.PriorityClass = { { "metadata", "ObjectMeta" }, { "value", "i", "p" }, { "globalDefault", "bool" },
  { "description", "s" }, { "preemptionPolicy", "s", "p" } }
S.ResourceQuota = { { "metadata", "ObjectMeta" }, { "spec", "ResourceQuotaSpec" } }
S.ResourceQuotaSpec = { { "hard", "mq" }, { "scopes", "s", "r" } }

S.Ingress = { { "metadata", "ObjectMeta" }, { "spec", "IngressSpec" } }
S.IngressSpec = { { "defaultBackend", "IngressBackend" }, { "tls", "IngressTLS", "r" },
  { "rules", "IngressRule", "r" }, { "ingressClassName", "s", "p" } }
S.IngressTLS = { { "hosts", "s", "r" }, { "secretName", "s" } }
S.IngressRule = { { "host", "s" }, { "ingressRuleValue", "IngressRuleValue", "i" } }
S.IngressRuleValue = { { "http", "HTTPIngressRuleValue" } }
S.HTTPIngressRuleValue = { { "paths", "HTTPIngressPath", "r" } }
S.HTTPIngressPath = { { "path", "s" }, { "backend", "IngressBackend" }, { "pathType", "s", "p" } }
S.IngressBackend = { nil, nil, nil, { "service", "IngressServiceBackend" } }
S.IngressServiceBackend = { { "name", "s" }, { "port", "ServiceBackendPort" } }
S.ServiceBackendPort = { { "name", "s" }, { "number", "i" } }

S.HorizontalPodAutoscaler = { { "metadata", "ObjectMeta" }, { "spec", "HorizontalPodAutoscalerSpec" } }
S.HorizontalPodAutoscalerSpec = { { "scaleTargetRef", "CrossVersionObjectReference" },
  { "minReplicas", "i", "p" }, { "maxReplicas", "i" }, { "metrics", "MetricSpec", "r" } }
S.CrossVersionObjectReference = { { "kind", "s" }, { "name", "s" }, { "apiVersion", "s" } }
S.MetricSpec = { { "type", "s" }, nil, nil, { "resource", "ResourceMetricSource" } }
S.ResourceMetricSource = { { "name", "s" }, { "target", "MetricTarget" } }
S.MetricTarget = { { "type", "s" }, { "value", "q", "p" }, { "averageValue", "q", "p" },
  { "averageUtilization", "i", "p" } }

-- autoscaling/v1 (what `kubectl autoscale` sends) differs from v2; looked up by apiVersion first.
S["autoscaling/v1/HorizontalPodAutoscaler"] = { { "metadata", "ObjectMeta" }, { "spec", "HorizontalPodAutoscalerSpecV1" } }
S.HorizontalPodAutoscalerSpecV1 = { { "scaleTargetRef", "CrossVersionObjectReference" },
  { "minReplicas", "i", "p" }, { "maxReplicas", "i" }, { "targetCPUUtilizationPercentage", "i", "p" } }

-- Reviews are answered without looking at their spec.
S.SelfSubjectAccessReview = { { "metadata", "ObjectMeta" } }
S.SelfSubjectRulesReview = S.SelfSubjectAccessReview
S.SelfSubjectReview = S.SelfSubjectAccessReview

M.SCHEMAS = S

local function varint(s, i)
  local v, shift = 0, 0
  while true do
    local b = s:byte(i)
    if not b then error("truncated varint", 0) end
    i = i + 1
    v = v | ((b & 0x7f) << shift)
    if b < 0x80 then return v, i end
    shift = shift + 7
    if shift > 63 then error("varint too long", 0) end
  end
end

-- Iterate over the fields of a message: calls fn(number, wiretype, value) where value is an
-- integer (wire type 0) or a string (length-delimited).
local function each_field(s, fn)
  local i = 1
  while i <= #s do
    local key
    key, i = varint(s, i)
    local num, wt = key >> 3, key & 7
    if wt == 0 then
      local v
      v, i = varint(s, i)
      fn(num, wt, v)
    elseif wt == 2 then
      local n
      n, i = varint(s, i)
      if n < 0 or i + n - 1 > #s then error("truncated field", 0) end
      fn(num, wt, s:sub(i, i + n - 1))
      i = i + n
    elseif wt == 5 then i = i + 4
    elseif wt == 1 then i = i + 8
    else error("unsupported wire type " .. wt, 0) end
  end
end

local function int32(v)
  if v >= 0x80000000 and v < 0x100000000 then return v - 0x100000000 end
  return v
end

local decode_message

local function base64(s)
  local ok, core = pcall(require, "atom.core")
  if ok and type(core) == "table" and core.base64_encode then return core.base64_encode(s) end
  error("base64 encoding needs atom.core", 0)
end

local function map_entries(raw, value_kind)
  local k, v = "", nil
  each_field(raw, function(num, _, val)
    if num == 1 then k = val
    elseif num == 2 then
      if value_kind == "q" then
        local q = ""
        each_field(val, function(n, _, x) if n == 1 then q = x end end)
        v = q
      else v = val end
    end
  end)
  if value_kind == "b" then v = base64(v or "") end
  return k, v or ""
end

local function scalar(typ, wt, val)
  if typ == "s" then return val
  elseif typ == "b" then return base64(val)
  elseif typ == "i" then return val
  elseif typ == "bool" then return val ~= 0
  elseif typ == "q" then
    local q = ""
    each_field(val, function(n, _, x) if n == 1 then q = x end end)
    return q
  elseif typ == "t" then
    local secs = 0
    each_field(val, function(n, _, x) if n == 1 then secs = x end end)
    if secs == 0 then return nil end
    return os.date("!%Y-%m-%dT%H:%M:%SZ", secs)
  elseif typ == "ios" then
    local kind, iv, sv = 0, 0, ""
    each_field(val, function(n, _, x)
      if n == 1 then kind = x elseif n == 2 then iv = x elseif n == 3 then sv = x end
    end)
    if kind == 1 then return sv end
    return int32(iv)
  end
  return val
end

local function is_zero(v)
  return v == nil or v == "" or v == 0 or v == false or (type(v) == "table" and next(v) == nil)
end

decode_message = function(name, raw)
  local schema = S[name]
  local out = {}
  each_field(raw, function(num, wt, val)
    local f = schema[num]
    if not f then return end
    local fname, typ, flags = f[1], f[2], f[3] or ""
    local repeated, pointer, inline = flags:find("r", 1, true), flags:find("p", 1, true), flags:find("i", 1, true)
    if typ == "ms" or typ == "mb" or typ == "mq" then
      local k, v = map_entries(val, typ:sub(2))
      out[fname] = out[fname] or {}
      out[fname][k] = v
      return
    end
    local v
    if S[typ] then v = decode_message(typ, val)
    elseif wt == 2 and (typ == "i" or typ == "bool") then
      -- packed repeated scalars
      local list = util.array()
      local j = 1
      while j <= #val do
        local x
        x, j = varint(val, j)
        list[#list + 1] = scalar(typ, 0, x)
      end
      out[fname] = out[fname] or util.array()
      for _, x in ipairs(list) do out[fname][#out[fname] + 1] = x end
      return
    else v = scalar(typ, wt, val) end
    if inline and type(v) == "table" then
      for k, x in pairs(v) do out[k] = x end
      return
    end
    if repeated then
      out[fname] = out[fname] or util.array()
      out[fname][#out[fname] + 1] = v == nil and "" or v
    elseif pointer then
      out[fname] = v
    elseif not is_zero(v) then
      out[fname] = v
    end
  end)
  return out
end

-- Decode a request body. Returns object or nil, message.
function M.decode(body)
  if type(body) ~= "string" or body:sub(1, 4) ~= "k8s\0" then
    return nil, "not a Kubernetes protobuf envelope"
  end
  local ok, res, err = pcall(function()
    local api_version, kind, raw = "", "", nil
    each_field(body:sub(5), function(num, _, val)
      if num == 1 then
        each_field(val, function(n, _, x)
          if n == 1 then api_version = x elseif n == 2 then kind = x end
        end)
      elseif num == 2 then raw = val end
    end)
    local name = S[api_version .. "/" .. kind] and (api_version .. "/" .. kind) or kind
    if not S[name] or not S[name][1] or S[name][1][1] ~= "metadata" then
      return nil, "protobuf bodies of kind " .. tostring(kind) .. " are not supported; send JSON"
    end
    local obj = decode_message(name, raw or "")
    obj.apiVersion, obj.kind = api_version, kind
    return obj
  end)
  if not ok then return nil, "invalid protobuf body: " .. tostring(res) end
  return res, err
end

return M
