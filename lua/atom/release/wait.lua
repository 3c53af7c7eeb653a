-- atom.release.wait: waits, by watch, until every object of a version is ready.
--
--   wait.run(client, opts) -> outcome, message, not_ready | nil, err
--   opts = { objects = prepared objects, release = name, namespace = the Atom's namespace,
--            check = function(obj) -> "ready"|"progressing"|"failed", message,
--            deadline_at = wall-clock seconds, phase = "Updating"|"Rollback",
--            tick = function() -> nil | "cancel" | nil, err (lease renewal, Ctrl-C),
--            progress = atom.release.progress view (optional) }
--   outcome: "ready", "failed" (a check said failed: fail fast), "deadline" (still not ready
--   after a last look at the deadline), "cancelled" (the Atom's cancel request for `phase`).
--   not_ready: { { key =, object = "Kind/ns/name", state =, message = }, ... }
-- One list + one watch per kind (label selector on the release label) and one watch on the
-- Atom; no GET polling except the one last look at the deadline.
local core = require "atom.core"
local util = require "atom.release.util"
local records = require "atom.release.records"

local wait = {}

-- Kinds whose objects may finish and be deleted (ttlSecondsAfterFinished): gone after being
-- seen ready is ready.
local FINISHES = { Job = true, Pod = true }

function wait.run(client, opts)
  local want, order, kinds = {}, {}, {}
  for _, o in ipairs(opts.objects) do
    local k = util.key(o)
    if not want[k] then
      want[k] = { obj = o, live = nil, state = "progressing", message = "not found yet", dirty = false }
      order[#order + 1] = k
      local kk = o.apiVersion .. "|" .. o.kind
      local entry = kinds[kk]
      if not entry then
        entry = { apiVersion = o.apiVersion, kind = o.kind, ns = o.metadata.namespace }
        kinds[kk] = entry
      elseif entry.ns ~= o.metadata.namespace then
        entry.ns = false -- several namespaces: watch all of them
      end
    end
  end

  local function check(entry)
    if entry.live == nil then
      if entry.gone_ready then
        entry.state, entry.message = "ready", "gone after it was seen complete"
      else
        entry.state, entry.message = "progressing", "not found yet"
      end
    else
      local ok, state, message = pcall(opts.check, entry.live)
      if not ok then state, message = "progressing", "readiness check raised: " .. tostring(state) end
      entry.state, entry.message = state, message or ""
      if state == "ready" and FINISHES[entry.obj.kind] then entry.gone_ready = true end
    end
    entry.dirty = false
  end

  local function observe(obj, deleted)
    if type(obj) ~= "table" or not obj.metadata then return end
    local entry = want[util.key(obj)]
    if not entry then return end
    entry.live = not deleted and obj or nil
    entry.dirty = true
  end

  local watchers, kind_of, atom_watch = {}, {}, nil
  local function close_all()
    for _, w in ipairs(watchers) do w:close() end
    if atom_watch then atom_watch:close() end
  end

  local selector = util.LABEL .. "=" .. opts.release
  for _, k in pairs(kinds) do
    local ns = k.ns or nil
    local items, rv = client:list(k.apiVersion, k.kind, ns, { labelSelector = selector })
    if not items then close_all(); return nil, rv end
    for _, o in ipairs(items) do
      o.apiVersion, o.kind = o.apiVersion or k.apiVersion, o.kind or k.kind
      observe(o)
    end
    local w = client:watch(k.apiVersion, k.kind, ns, { labelSelector = selector, resourceVersion = rv })
    watchers[#watchers + 1] = w
    kind_of[w] = k
  end
  local cancelled = false
  if opts.phase then
    local atom = records.get(client, opts.namespace, opts.release)
    cancelled = records.cancel_requested(atom, opts.phase)
    atom_watch = client:watch(records.API_VERSION, "Atom", opts.namespace,
      { fieldSelector = "metadata.name=" .. opts.release })
  end

  local function not_ready()
    local out = {}
    for _, k in ipairs(order) do
      local e = want[k]
      if e.state ~= "ready" then
        out[#out + 1] = { key = k, object = util.show(e.obj), state = e.state, message = e.message }
      end
    end
    return out
  end

  local function summary(list)
    local parts = {}
    for i, n in ipairs(list) do
      if i > 5 then parts[#parts + 1] = string.format("and %d more", #list - 5); break end
      parts[#parts + 1] = string.format("%s: %s", n.object, n.message)
    end
    return table.concat(parts, "; ")
  end

  for _, k in ipairs(order) do check(want[k]) end
  while true do
    if cancelled then
      local nr = not_ready()
      close_all()
      return "cancelled", "cancel requested", nr
    end
    local failed
    for _, k in ipairs(order) do
      local e = want[k]
      if e.dirty then check(e) end
      if e.state == "failed" and not failed then failed = e end
    end
    local nr = not_ready()
    if opts.progress then opts.progress:update(nr, #order) end
    if failed then
      close_all()
      return "failed", string.format("%s failed: %s", util.show(failed.obj), failed.message), nr
    end
    if #nr == 0 then
      close_all()
      return "ready", string.format("%d object%s ready", #order, #order == 1 and "" or "s"), nr
    end
    local left = opts.deadline_at - core.wall()
    if left <= 0 then
      -- One last look before declaring the deadline: the watch may lag the server.
      for _, n in ipairs(nr) do
        local e = want[n.key]
        local md = e.obj.metadata
        local live = client:get(e.obj.apiVersion, e.obj.kind, md.namespace, md.name)
        e.live = live or nil
        check(e)
      end
      nr = not_ready()
      close_all()
      if #nr == 0 then
        return "ready", string.format("%d object%s ready at the deadline", #order, #order == 1 and "" or "s"), nr
      end
      return "deadline", string.format("%d of %d not ready: %s", #nr, #order, summary(nr)), nr
    end
    if opts.tick then
      local t, terr = opts.tick()
      if t == "cancel" then cancelled = true
      elseif t == nil and terr then close_all(); return nil, terr end
    end
    local events = client:poll(math.min(0.5, math.max(0.01, left))) or {}
    for _, ev in ipairs(events) do
      if ev.watcher == atom_watch then
        if ev.object and ev.type ~= "DELETED" then
          ev.object.spec, ev.object.status = ev.object.spec or {}, ev.object.status or {}
          if records.cancel_requested(ev.object, opts.phase) then cancelled = true end
        end
      elseif ev.object then
        local k = ev.watcher and kind_of[ev.watcher]
        if k then ev.object.apiVersion, ev.object.kind = ev.object.apiVersion or k.apiVersion, ev.object.kind or k.kind end
        observe(ev.object, ev.type == "DELETED")
      end
    end
  end
end

return wait
