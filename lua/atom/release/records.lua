-- atom.release.records: the release's state in the cluster.
--
--   Atom        (atoms.atom.dev, one per release, name = release name): spec.cancel (a cancel
--               request: { version, state, at, by }), status { state, version, previous,
--               latest, stepStarted, deadline, rollbackDeadline, message, attempt, kinds,
--               historyLimit, digest, who }.
--   AtomVersion (atomversions.atom.dev, `<release>.v<N>`, immutable once written except
--               status.state): spec { release, version, digest, who, when, script, parts, kinds,
--               data = base64(gzip(json(objects))) } and, past ~700 KiB, the data split across
--               `<release>.v<N>.<i>` AtomVersion parts (spec.partOf, spec.part).
-- Every write of the Atom carries its resourceVersion: a 409 comes back as "conflict" for the
-- caller to re-read and re-decide. Functions take the client; nothing is cached here.
local core = require "atom.core"
local json = require "atom.json"
local util = require "atom.release.util"

local records = {}

records.GROUP = "atom.dev"
records.API_VERSION = "atom.dev/v1"
records.PART_BYTES = 700 * 1024

-- The CRDs as text: the schema hash is the digest of these bytes, so any change to them
-- upgrades the CRDs in every cluster on its next use.
local CRD_TEXT = [[
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: atoms.atom.dev
spec:
  group: atom.dev
  scope: Namespaced
  names: { plural: atoms, singular: atom, kind: Atom, listKind: AtomList }
  versions:
  - name: v1
    served: true
    storage: true
    additionalPrinterColumns:
    - { name: State, type: string, jsonPath: .status.state }
    - { name: Version, type: integer, jsonPath: .status.version }
    - { name: Previous, type: integer, jsonPath: .status.previous }
    - { name: Age, type: date, jsonPath: .metadata.creationTimestamp }
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: { type: object, x-kubernetes-preserve-unknown-fields: true }
          status: { type: object, x-kubernetes-preserve-unknown-fields: true }
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: atomversions.atom.dev
spec:
  group: atom.dev
  scope: Namespaced
  names: { plural: atomversions, singular: atomversion, kind: AtomVersion, listKind: AtomVersionList }
  versions:
  - name: v1
    served: true
    storage: true
    additionalPrinterColumns:
    - { name: Release, type: string, jsonPath: .spec.release }
    - { name: Version, type: integer, jsonPath: .spec.version }
    - { name: State, type: string, jsonPath: .status.state }
    - { name: Age, type: date, jsonPath: .metadata.creationTimestamp }
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: { type: object, x-kubernetes-preserve-unknown-fields: true }
          status: { type: object, x-kubernetes-preserve-unknown-fields: true }
]]

records.SCHEMA_HASH = core.sha256_hex(CRD_TEXT):sub(1, 16)
local HASH_ANNOTATION = "atom.dev/schema-hash"

function records.crds()
  local docs = assert(core.yaml_decode(CRD_TEXT, "atom.release.records"))
  for _, d in ipairs(docs) do
    d.metadata.annotations = { [HASH_ANNOTATION] = records.SCHEMA_HASH }
  end
  return docs
end

local function established(crd)
  for _, c in ipairs(((crd or {}).status or {}).conditions or {}) do
    if c.type == "Established" and c.status == "True" then return true end
  end
  return false
end

-- Waits on a watch of CRDs until every name given is Established (timeout in seconds).
function records.wait_established(client, names, timeout)
  local pending, n = {}, 0
  for _, name in ipairs(names) do
    local live = client:get("apiextensions.k8s.io/v1", "CustomResourceDefinition", nil, name)
    if not established(live) then pending[name] = true; n = n + 1 end
  end
  if n == 0 then return true end
  local w = client:watch("apiextensions.k8s.io/v1", "CustomResourceDefinition", nil, {})
  local until_t = core.monotonic() + (timeout or 60)
  while n > 0 and core.monotonic() < until_t do
    for _, ev in ipairs(util.poll(client, 0.5) or {}) do
      local o = ev.object
      if ev.watcher == w and o and o.metadata and pending[o.metadata.name] and established(o) then
        pending[o.metadata.name] = nil; n = n - 1
      end
    end
    if n > 0 then
      -- A watch event may have come before ours opened: one GET per still-missing name.
      for name in pairs(pending) do
        if established(client:get("apiextensions.k8s.io/v1", "CustomResourceDefinition", nil, name)) then
          pending[name] = nil; n = n - 1
        end
      end
    end
  end
  w:close()
  if n > 0 then
    local names_left = {}
    for name in pairs(pending) do names_left[#names_left + 1] = name end
    table.sort(names_left)
    return nil, "CustomResourceDefinition not Established in time: " .. table.concat(names_left, ", ")
  end
  return true
end

-- The release namespace (created if missing, as helm --create-namespace) and atom's CRDs
-- (installed on first use, upgraded when the schema hash differs).
function records.ensure(client, namespace)
  local ns, err = client:get("v1", "Namespace", nil, namespace)
  if not ns then
    if err and err.code ~= 404 then return nil, err end
    local _, cerr = client:create({ apiVersion = "v1", kind = "Namespace", metadata = { name = namespace } })
    if cerr and cerr.code ~= 409 then return nil, cerr end
  end
  local names = {}
  for _, crd in ipairs(records.crds()) do
    local live, gerr = client:get(crd.apiVersion, crd.kind, nil, crd.metadata.name)
    if not live and gerr and gerr.code ~= 404 then return nil, gerr end
    local hash = live and ((live.metadata or {}).annotations or {})[HASH_ANNOTATION]
    if hash ~= records.SCHEMA_HASH then
      local _, aerr = client:apply(crd, { force = true })
      if aerr then return nil, aerr end
    end
    names[#names + 1] = crd.metadata.name
  end
  return records.wait_established(client, names, 60)
end

-- ---- the Atom ------------------------------------------------------------------------

-- JSON brings whole numbers back as floats (1.0); versions are integers everywhere else.
local function normalize(atom)
  atom.spec = atom.spec or {}
  atom.status = atom.status or {}
  local st = atom.status
  for _, k in ipairs({ "version", "previous", "latest", "attempt", "deadline", "rollbackDeadline", "historyLimit" }) do
    st[k] = util.int(st[k])
  end
  for _, t in ipairs(st.transitions or {}) do t.version = util.int(t.version) end
  return atom
end

function records.get(client, namespace, name)
  local atom, err = client:get(records.API_VERSION, "Atom", namespace, name)
  if not atom then
    if err and err.code == 404 then return nil end
    return nil, err
  end
  return normalize(atom)
end

function records.new(namespace, name)
  return {
    apiVersion = records.API_VERSION, kind = "Atom",
    metadata = { name = name, namespace = namespace, labels = { [util.LABEL] = name } },
    spec = {}, status = { state = "", version = 0, previous = 0, latest = 0 },
  }
end

-- Writes the Atom with its resourceVersion (create when it has none).
-- -> written atom | nil, "conflict" | nil, err
function records.write(client, atom)
  local live, err
  if atom.metadata.resourceVersion then
    live, err = client:update(atom)
  else
    live, err = client:create(atom)
  end
  if live then return normalize(live) end
  if err and err.code == 409 then return nil, "conflict" end
  return nil, err
end

-- Is a cancel pending for the state the release is in? `atom cancel` names the version
-- and the phase it cancels (Updating or Rollback), so a cancel of Updating is not read
-- again as a cancel of the rollback that follows it.
function records.cancel_requested(atom, phase)
  local c = atom and atom.spec and atom.spec.cancel
  if type(c) ~= "table" then return false end
  return util.int(c.version) == util.int(atom.status.version) and c.state == phase
end

-- ---- versions --------------------------------------------------------------------------

function records.version_name(release, n)
  return string.format("%s.v%d", release, n)
end

-- Writes version n's AtomVersion(s). Server-side apply makes a retried write (after a
-- kill between this and the Atom update) land on the same objects.
function records.put_version(client, namespace, release, n, objects, meta)
  local data = core.base64_encode(core.gzip(json.encode(json.array(objects))))
  local kinds, seen = {}, {}
  for _, o in ipairs(objects) do
    local k = o.apiVersion .. "|" .. o.kind
    if not seen[k] then seen[k] = true; kinds[#kinds + 1] = k end
  end
  local name = records.version_name(release, n)
  local parts = {}
  if #data > records.PART_BYTES then
    for i = 1, #data, records.PART_BYTES do parts[#parts + 1] = data:sub(i, i + records.PART_BYTES - 1) end
  end
  local labels = { [util.LABEL] = release, ["atom.dev/version"] = tostring(n) }
  for i, chunk in ipairs(parts) do
    local _, err = client:apply({
      apiVersion = records.API_VERSION, kind = "AtomVersion",
      metadata = { name = name .. "." .. i, namespace = namespace, labels = labels },
      spec = { release = release, version = n, partOf = name, part = i, data = chunk },
    }, { force = true })
    if err then return nil, err end
  end
  local _, err = client:apply({
    apiVersion = records.API_VERSION, kind = "AtomVersion",
    metadata = { name = name, namespace = namespace, labels = labels },
    spec = { release = release, version = n, digest = meta.digest, who = meta.who or util.who(),
             when = meta.when or util.rfc3339(), script = meta.script, parts = #parts,
             kinds = json.array(kinds), count = #objects,
             data = #parts == 0 and data or nil, rollbackOf = meta.rollback_of },
    status = { state = "Pending" },
  }, { force = true })
  if err then return nil, err end
  return kinds
end

-- -> { version, digest, who, when, script, kinds, state, objects = {...} } | nil, err
function records.get_version(client, namespace, release, n)
  if not n or n == 0 then return { version = 0, objects = {}, kinds = {} } end
  local name = records.version_name(release, n)
  local v, err = client:get(records.API_VERSION, "AtomVersion", namespace, name)
  if not v then return nil, err or ("no AtomVersion " .. name) end
  local spec = v.spec or {}
  local data = spec.data
  if (util.int(spec.parts) or 0) > 0 then
    local chunks = {}
    for i = 1, spec.parts do
      local p, perr = client:get(records.API_VERSION, "AtomVersion", namespace, name .. "." .. i)
      if not p then return nil, perr end
      chunks[i] = p.spec.data
    end
    data = table.concat(chunks)
  end
  local ok, objects = pcall(function() return json.decode(core.gunzip(core.base64_decode(data or ""))) end)
  if not ok then return nil, "AtomVersion " .. name .. " holds unreadable objects: " .. tostring(objects) end
  return { version = n, digest = spec.digest, who = spec.who, when = spec.when, script = spec.script,
           kinds = spec.kinds or {}, state = (v.status or {}).state, objects = objects,
           rollback_of = util.int(spec.rollbackOf) }
end

-- The request that records a version's state (nil for the empty version), for a caller
-- that sends it in the background.
function records.version_state_req(client, namespace, release, n, state)
  if not n or n == 0 then return nil end
  local req = client:_patch_req(records.API_VERSION, "AtomVersion", namespace, records.version_name(release, n),
    { status = { state = state } }, "merge")
  -- The answer carries the version's whole payload, and nothing reads it.
  if req then req.raw = true end
  return req
end

-- Versions of a release (main objects only, no payload), oldest first.
function records.list_versions(client, namespace, release)
  local items, err = client:list(records.API_VERSION, "AtomVersion", namespace,
    { labelSelector = util.LABEL .. "=" .. release })
  if not items then return nil, err end
  local out = {}
  for _, v in ipairs(items) do
    local s = v.spec or {}
    if not s.partOf then
      out[#out + 1] = { version = util.int(s.version), digest = s.digest, who = s.who, when = s.when,
                        script = s.script, state = (v.status or {}).state, count = s.count,
                        rollback_of = util.int(s.rollbackOf), name = v.metadata.name }
    end
  end
  table.sort(out, function(a, b) return a.version < b.version end)
  return out
end

-- Deletes versions beyond `limit`, oldest first, never one listed in `keep`.
function records.prune_history(client, namespace, release, limit, keep)
  local versions, err = records.list_versions(client, namespace, release)
  if not versions then return nil, err end
  local protect = {}
  for _, k in ipairs(keep or {}) do protect[util.int(k) or -1] = true end
  local excess = #versions - (limit or 10)
  for _, v in ipairs(versions) do
    if excess <= 0 then break end
    if not protect[v.version] then
      excess = excess - 1
      local parts = client:list(records.API_VERSION, "AtomVersion", namespace,
        { labelSelector = util.LABEL .. "=" .. release .. ",atom.dev/version=" .. v.version }) or {}
      for _, p in ipairs(parts) do
        client:delete(records.API_VERSION, "AtomVersion", namespace, p.metadata.name)
      end
    end
  end
  return true
end

return records
