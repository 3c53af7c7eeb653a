-- atom.readiness: decides whether one live object is "ready", "progressing" or "failed".
--
-- readiness.check(obj, overrides, ctx) -> state, message
--   obj        the live object as decoded by lua-cjson (nil or cjson.null: not found yet)
--   overrides  optional table keyed Kind, Kind.group, Kind/name or Kind.group/name
--              (kubectl's spelling; core kinds have no group) whose values are
--              function(obj, ctx) -> state, message; the most specific key wins
--   ctx        optional, passed on to the checks: ctx.related(kind, labelSelector) -> list of
--              live objects, ctx.get(kind, name) -> live object or nil,
--              ctx.expects_conditions (the CRD declares status.conditions)
-- The caller owns all three tables; nothing here keeps a reference after returning.
-- readiness.override_for(obj, overrides) -> { key =, fn = } | nil: the override check()
-- would use (the waiter asks it to know which objects need watching).
-- readiness.validate_overrides(overrides) and readiness.parse_conditions(annotation) are
-- for plan time: they raise errors naming the bad key, value or clause.
-- Rules, in order (see README.md): not found; terminating; stale observedGeneration;
-- Stalled/Reconciling; the atom.conditions annotation; an override; the kind's built-in
-- check; the Ready condition; ready once it exists. A check that raises an error gives
-- "progressing" with the error as message (never a silent "ready"); a check that returns
-- something other than the three states gives "failed" naming the value.
local cjson = require "cjson"
local u = require "atom.readiness.util"

local readiness = {}

local STATES = { ready = true, progressing = true, failed = true }

-- group -> kind -> module name. Old groups (extensions) still appear in stored objects.
local BUILTIN = {
  [""] = { Pod = "pod", ReplicationController = "replicaset", Service = "service",
           PersistentVolumeClaim = "persistentvolumeclaim", Namespace = "namespace" },
  apps = { Deployment = "deployment", ReplicaSet = "replicaset", StatefulSet = "statefulset",
           DaemonSet = "daemonset" },
  extensions = { Deployment = "deployment", ReplicaSet = "replicaset", DaemonSet = "daemonset",
                 Ingress = "ingress" },
  batch = { Job = "job", CronJob = "cronjob" },
  ["networking.k8s.io"] = { Ingress = "ingress" },
  ["apiextensions.k8s.io"] = { CustomResourceDefinition = "customresourcedefinition" },
  autoscaling = { HorizontalPodAutoscaler = "horizontalpodautoscaler" },
  policy = { PodDisruptionBudget = "poddisruptionbudget" },
  ["apiregistration.k8s.io"] = { APIService = "apiservice" },
}

local function group_of(api_version)
  if type(api_version) ~= "string" then return "" end
  return api_version:match("^(.*)/[^/]*$") or ""
end

local function fmt_value(v)
  if type(v) == "string" then return string.format("%q", v) end
  return tostring(v)
end

-- The built-in check for a kind, or nil when the kind has none (the generic rule applies).
function readiness.for_kind(api_version, kind)
  local name = (BUILTIN[group_of(api_version)] or {})[kind]
  return name and require("atom.readiness." .. name) or nil
end

-- "Kind.group/name", or "Kind/name" for core kinds: the most specific override key.
function readiness.key(obj)
  obj = u.tbl(obj)
  local group = group_of(obj.apiVersion)
  local kind = tostring(obj.kind)
  if group ~= "" then kind = kind .. "." .. group end
  return kind .. "/" .. tostring(u.tbl(obj.metadata).name)
end

-- Parses "Type=Status[/Reason],..." into { {type=, status=, reason=}, ... }. Raises an
-- error naming the first malformed clause: the annotation is configuration, checked at
-- plan time. The type may itself contain "/" (example.com/Synced); the status may not.
function readiness.parse_conditions(annotation)
  if type(annotation) ~= "string" then
    error("atom.conditions: annotation must be a string, got " .. type(annotation), 0)
  end
  local clauses = {}
  for raw in (annotation .. ","):gmatch("([^,]*),") do
    local clause = raw:match("^%s*(.-)%s*$")
    local ctype, status, rest = clause:match("^([^=%s]+)%s*=%s*([^/%s]+)(.*)$")
    local reason = rest and rest:match("^%s*/%s*([^%s/]+)%s*$")
    local known = status and ({ ["true"] = "True", ["false"] = "False", unknown = "Unknown" })[status:lower()]
    if not known or (rest ~= "" and not reason) then
      error(string.format("atom.conditions: malformed clause %q (want Type=True|False|Unknown[/Reason])",
        clause), 0)
    end
    clauses[#clauses + 1] = { type = ctype, status = known, reason = reason }
  end
  return clauses
end

-- Checks a release script's overrides table at plan time, raising an error that names
-- the first bad key or value, so a typo is not silently ignored while waiting.
function readiness.validate_overrides(overrides)
  if overrides == nil then return true end
  if type(overrides) ~= "table" then
    error("readiness overrides must be a table, got " .. type(overrides), 0)
  end
  for k, fn in pairs(overrides) do
    if type(k) ~= "string" or not (k:match("^%a%w*$") or k:match("^%a%w*%.[%w.-]+$")
        or k:match("^%a%w*/[^/]+$") or k:match("^%a%w*%.[%w.-]+/[^/]+$")) then
      error(string.format("readiness override key %s is not Kind, Kind.group, Kind/name or Kind.group/name",
        fmt_value(k)), 0)
    end
    if type(fn) ~= "function" then
      error(string.format("readiness override %q must be a function, got %s", k, type(fn)), 0)
    end
  end
  return true
end

-- Every clause must match a condition; the first unmet one is the message.
local function annotation_check(obj, annotation)
  local ok, clauses = pcall(readiness.parse_conditions, annotation)
  if not ok then return "failed", tostring(clauses) end
  local gen = u.tbl(obj.metadata).generation
  for _, want in ipairs(clauses) do
    local have = u.condition(obj, want.type)
    local label = want.type .. "=" .. want.status .. (want.reason and "/" .. want.reason or "")
    if not have then return "progressing", "waiting for condition " .. label end
    if type(gen) == "number" and type(have.observedGeneration) == "number" and have.observedGeneration < gen then
      return "progressing", "waiting for condition " .. label .. " on the current generation"
    end
    if not u.is(have, want.status) or (want.reason and have.reason ~= want.reason) then
      return "progressing", "waiting for condition " .. label .. " (now " .. u.describe(have) .. ")"
    end
  end
  return "ready", "conditions met: " .. annotation
end

local function override_index(overrides)
  local idx = {}
  for k, fn in pairs(overrides) do
    if type(k) == "string" then
      local kg, name = k:match("^([^/]*)/(.*)$")
      idx[(kg or k):lower() .. (name and "/" .. name or "")] = { key = k, fn = fn }
    end
  end
  return idx
end

-- The override for obj as { key =, fn = }, most specific first, or nil; keys are matched
-- case-insensitively on the kind and group, exactly on the name.
function readiness.override_for(obj, overrides)
  if type(overrides) ~= "table" then return nil end
  local idx = override_index(overrides)
  local kind = tostring(obj.kind):lower()
  local group = group_of(obj.apiVersion):lower()
  local kg = group ~= "" and kind .. "." .. group or kind
  local name = tostring(u.tbl(obj.metadata).name)
  return idx[kg .. "/" .. name] or idx[kind .. "/" .. name] or idx[kg] or idx[kind]
end

-- Runs a check and holds its answer to the contract.
local function run(label, fn, obj, ctx)
  if type(fn) ~= "function" then
    return "failed", string.format("readiness check %s is a %s, not a function", label, type(fn))
  end
  local ok, state, message = pcall(fn, obj, ctx)
  if not ok then
    return "progressing", string.format("readiness check %s raised an error: %s", label, tostring(state))
  end
  if state == nil then
    return "progressing", message ~= nil and tostring(message) or "check " .. label .. " returned nothing"
  end
  if not STATES[state] then
    return "failed", string.format("readiness check %s returned %s (want \"ready\", \"progressing\" or \"failed\")",
      label, fmt_value(state))
  end
  if message ~= nil and type(message) ~= "string" then message = tostring(message) end
  return state, message
end

function readiness.check(obj, overrides, ctx)
  if obj == nil or obj == cjson.null then return "progressing", "not found" end
  if type(obj) ~= "table" then
    return "progressing", "object is a " .. type(obj) .. ", not a table"
  end
  local meta, st = u.tbl(obj.metadata), u.tbl(obj.status)
  if type(meta.deletionTimestamp) == "string" and meta.deletionTimestamp ~= "" then
    return "progressing", "terminating"
  end
  local gen, seen = meta.generation, st.observedGeneration
  if type(gen) == "number" and type(seen) == "number" and seen ~= gen then
    return "progressing", string.format("waiting for the controller to observe generation %d (has seen %d)",
      u.int(gen), u.int(seen))
  end
  local stalled = u.condition(obj, "Stalled")
  if u.is(stalled, "True") then return "failed", u.describe(stalled) end
  local reconciling = u.condition(obj, "Reconciling")
  if u.is(reconciling, "True") then return "progressing", u.describe(reconciling) end

  local annotation = u.tbl(meta.annotations)["atom.conditions"]
  if annotation ~= nil and annotation ~= cjson.null then return annotation_check(obj, annotation) end
  local override = readiness.override_for(obj, overrides)
  if override then return run("override " .. override.key, override.fn, obj, ctx) end
  local builtin = readiness.for_kind(obj.apiVersion, obj.kind)
  if builtin then return run("for " .. tostring(obj.kind), builtin, obj, ctx) end
  return run("generic", require "atom.readiness.generic", obj, ctx)
end

return readiness
