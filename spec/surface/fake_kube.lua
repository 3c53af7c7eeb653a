-- A scripted stand-in for the atom.kube client, for specs of code that only needs a few
-- verbs (create/get/list/delete/watch/poll). fake.new{ job_outcome = "Complete"|"Failed"|nil,
-- pods = { ... }, exists = bool } records every call in .calls. The real client is
-- exercised against atom sim in spec/examples.
local fake = {}

function fake.new(opts)
  opts = opts or {}
  local k = { namespace = "default", calls = {}, objects = {}, polls = 0, events = {} }
  local function note(...) k.calls[#k.calls + 1] = table.concat({ ... }, " ") end
  local function key(ns, name) return ns .. "/" .. name end

  function k:create(obj)
    local id = key(obj.metadata.namespace, obj.metadata.name)
    note("create", obj.kind, id)
    if opts.exists and not self.deleted_once then
      return nil, setmetatable({ code = 409 }, { __tostring = function() return "409 AlreadyExists" end })
    end
    self.objects[id] = obj
    return { apiVersion = obj.apiVersion, kind = obj.kind,
      metadata = { name = obj.metadata.name, namespace = obj.metadata.namespace, resourceVersion = "1" } }
  end
  function k:get(_, kind, ns, name)
    note("get", kind, key(ns, name))
    if opts.no_watch and self.objects[key(ns, name)] and opts.job_outcome then
      local o = self.objects[key(ns, name)]
      o.status = { conditions = { { type = opts.job_outcome, status = "True" } } }
    end
    if self.objects[key(ns, name)] then return self.objects[key(ns, name)] end
    return nil, { code = 404 }
  end
  function k:delete(_, kind, ns, name, o)
    note("delete", kind, key(ns, name), o and o.propagation or "")
    self.objects[key(ns, name)] = nil
    self.deleted_once = true
    return true
  end
  function k:list(_, kind, ns, o)
    note("list", kind, ns, o and o.labelSelector or "")
    return opts.pods or {}
  end
  function k:watch(_, kind, ns, o)
    note("watch", kind, ns, o and o.fieldSelector or "")
    if opts.no_watch then return nil, { code = 403 } end
    local w = { closed = false }
    function w.close(self_) self_.closed = true; k.watch_closed = true end
    self.watcher = w
    return w
  end
  function k:poll(timeout)
    self.polls = self.polls + 1
    if opts.foreign and self.polls == 1 then
      return { { watcher = "engine's", type = "ADDED", object = { kind = "Deployment" } } }
    end
    if opts.job_outcome and self.polls == 2 then
      local job = { apiVersion = "batch/v1", kind = "Job", metadata = { name = "m" },
        status = { conditions = { { type = opts.job_outcome, status = "True",
          reason = opts.job_outcome == "Failed" and "BackoffLimitExceeded" or nil,
          message = opts.job_outcome == "Failed" and "Job has reached the specified backoff limit" or nil } } } }
      return { { watcher = self.watcher, type = "MODIFIED", object = job } }
    end
    require("atom.core").sleep(math.min(timeout, 0.01))
    return {}
  end
  return k
end

return fake
