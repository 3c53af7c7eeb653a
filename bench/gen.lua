-- Manifest generator for the benchmark: N objects, a realistic mix of the kinds an
-- application release carries (Namespace, ServiceAccount, ConfigMap, Secret, Deployment,
-- Service), spread over a few namespaces, written as multi-document YAML files that both
-- `kubectl apply -f DIR` and `atom.yaml("objects/*.yaml")` read.
--
-- Each document is JSON (which is YAML) encoded by lua-cjson, so there is no YAML
-- emitter to trust here; the "---" separators make the files ordinary multi-doc YAML.
--
-- Ownership: pure functions; `write` owns only the files it creates under the given dir.
local cjson = require "cjson"

local M = {}

-- Few namespaces, growing with N, as a team's release spans one to a handful.
function M.namespace_count(n)
  if n >= 1000 then return 4 elseif n >= 100 then return 2 else return 1 end
end

-- Fixed base64 payloads: computed once by coreutils so no codec is written here.
local function b64(s)
  local p = assert(io.popen("printf '%s' '" .. s .. "' | base64 -w0", "r"))
  local out = p:read("a")
  p:close()
  return (out:gsub("%s+$", ""))
end

local function app_objects(ns, app, secret_data, replicas)
  local labels = { ["app.kubernetes.io/name"] = app, ["app.kubernetes.io/part-of"] = "bench" }
  local sel = { ["app.kubernetes.io/name"] = app }
  return {
    { apiVersion = "v1", kind = "ServiceAccount",
      metadata = { name = app, namespace = ns, labels = labels } },
    { apiVersion = "v1", kind = "ConfigMap",
      metadata = { name = app .. "-config", namespace = ns, labels = labels },
      data = { ["LOG_LEVEL"] = "info", ["FEATURE_FLAGS"] = "search,checkout",
               ["app.properties"] = "cache.size=256\nupstream=http://" .. app .. "-upstream:8080\n" } },
    { apiVersion = "v1", kind = "Secret", type = "Opaque",
      metadata = { name = app .. "-secret", namespace = ns, labels = labels },
      data = secret_data },
    { apiVersion = "apps/v1", kind = "Deployment",
      metadata = { name = app, namespace = ns, labels = labels },
      spec = {
        replicas = replicas,
        selector = { matchLabels = sel },
        template = {
          metadata = { labels = labels },
          spec = {
            serviceAccountName = app,
            containers = { {
              name = "app",
              image = "registry.example.com/bench/" .. app .. ":1.0.0",
              ports = { { name = "http", containerPort = 8080 } },
              envFrom = { { configMapRef = { name = app .. "-config" } },
                          { secretRef = { name = app .. "-secret" } } },
              resources = { requests = { cpu = "50m", memory = "64Mi" },
                            limits = { memory = "128Mi" } },
              readinessProbe = { httpGet = { path = "/healthz", port = "http" },
                                 periodSeconds = 5 },
            } },
          },
        },
      } },
    { apiVersion = "v1", kind = "Service",
      metadata = { name = app, namespace = ns, labels = labels },
      spec = { selector = sel, ports = { { name = "http", port = 80, targetPort = "http" } } } },
  }
end

-- Returns a list of files { name = "...yaml", objects = {...} } with exactly n objects.
-- tag makes namespace names unique per repetition; replicas is per Deployment.
function M.plan(n, tag, replicas)
  assert(n >= 1, "need at least one object")
  local nns = math.min(M.namespace_count(n), n)
  local namespaces = {}
  local ns_docs = {}
  for i = 1, nns do
    namespaces[i] = string.format("%s-%d", tag, i)
    ns_docs[i] = { apiVersion = "v1", kind = "Namespace",
                   metadata = { name = namespaces[i], labels = { ["app.kubernetes.io/part-of"] = "bench" } } }
  end
  -- "00-" sorts first: kubectl applies files in name order and needs the namespaces first.
  local files = { { name = "00-namespaces.yaml", objects = ns_docs } }
  local secret_data = { username = b64("bench"), password = b64("s3cr3t-for-bench") }
  local rest = n - nns
  local apps = rest // 5
  for a = 1, apps do
    local ns = namespaces[(a - 1) % nns + 1]
    local app = string.format("app-%04d", a)
    files[#files + 1] = { name = string.format("%s-%s.yaml", ns, app),
                          objects = app_objects(ns, app, secret_data, replicas or 2) }
  end
  local extra = {}
  for e = 1, rest % 5 do
    extra[e] = { apiVersion = "v1", kind = "ConfigMap",
                 metadata = { name = string.format("extra-%d", e), namespace = namespaces[1] },
                 data = { note = "filler so the release has exactly N objects" } }
  end
  if #extra > 0 then files[#files + 1] = { name = namespaces[1] .. "-extra.yaml", objects = extra } end
  local deployments = 0
  for _, f in ipairs(files) do
    for _, o in ipairs(f.objects) do
      if o.kind == "Deployment" then deployments = deployments + 1 end
    end
  end
  return { files = files, namespaces = namespaces, deployments = deployments, objects = n }
end

-- The REST resource (plural) of each kind the generator writes, to match the sim's marks.
local RESOURCES = { Namespace = "namespaces", ServiceAccount = "serviceaccounts", ConfigMap = "configmaps",
                    Secret = "secrets", Deployment = "deployments", Service = "services" }

function M.resource_of(kind)
  return assert(RESOURCES[kind], kind)
end

local function encode(doc)
  -- cjson escapes "/" as "\/"; YAML parsers differ on that escape, so undo it.
  return (cjson.encode(doc):gsub("\\/", "/"))
end

-- Writes the plan's files into dir (which must exist). Returns the plan.
function M.write(plan, dir)
  for _, f in ipairs(plan.files) do
    local fh = assert(io.open(dir .. "/" .. f.name, "w"))
    for _, o in ipairs(f.objects) do
      fh:write("---\n", encode(o), "\n")
    end
    fh:close()
  end
  return plan
end

return M
