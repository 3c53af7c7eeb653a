-- atom.kube — the Kubernetes client the release engine, hooks and readiness
-- checks use.
--
--   kube.connect{ kubeconfig = path|nil, kubeconfig_data = text|nil, context = name|nil,
--                 namespace = ns|nil, window = n|nil (requests in flight in bulk calls),
--                 http = { retries =, backoff =, backoff_max =, retry_window =, timeout =,
--                          max_connections = }|nil }
--     -> client | nil, err   (err: { message, field, file } with __tostring;
--                             the CLI exits 1 on it)
--   client.namespace, client.server, client.context
--   client:resource_for(apiVersion, kind) -> info | nil, err
--   client:get(apiVersion, kind, namespace, name) -> obj | nil, err (err.code 404 = not found)
--   client:list(apiVersion, kind, namespace|nil, { labelSelector, fieldSelector, limit })
--       -> items, list_rv | nil, err
--   client:create(obj), client:update(obj), client:update_status(obj) -> live | nil, err
--   client:apply(obj, { force =, dry_run =, field_manager = "atom" }) -> live | nil, err
--   client:apply_many(objs, opts) -> results  ({ object = live } or { err = err } each;
--       opts.on_result(i, result) sees each as it arrives, and the list then keeps
--       { ok = true } for successes; opts.idle() runs between rounds of completions)
--   client:patch(apiVersion, kind, namespace, name, patch, "merge"|"json"|"strategic")
--   client:delete(apiVersion, kind, namespace, name, { propagation =, grace = })
--       -> true | "absent" | nil, err
--   client:delete_many(refs, opts) -> results ({ ok = true|"absent" } or { err = })
--   client:request{ method, path, query, body, content_type, accept, raw }
--       -> status, body, headers | nil, err   (body decoded when JSON unless raw)
--   client:request_many(reqs, window, on_result, idle) -> results ({ status, body, headers } or { err })
--   client:watch(apiVersion, kind, namespace|nil, opts) -> watcher; watcher:close()
--   client:poll(timeout) -> events { watcher, type, object }
--       type: ADDED | MODIFIED | DELETED | RELISTED (after a 410: the current
--       objects, then DELETED for those gone) | ERROR ({ watcher, type, err },
--       no object; a watch refused for good is closed after it)
--   client:requeue(events)   puts events back for the next poll
--   client:event(involved, { type, reason, message }) -> Event | nil, err
--   client:close()
-- Errors: { code, reason, message = "<what> of <server>: <Status.message>",
--           status, causes, conflicts = { { field, message } } } with __tostring.
local config = require "atom.kube.config"
local client = require "atom.kube.client"

local M = { config = config }

function M.connect(opts)
  opts = opts or {}
  local cfg, err = config.load(opts)
  if not cfg then return nil, err end
  return client.new(cfg, opts)
end

-- For callers that already hold a config table (tests, in-process sims).
function M.from_config(cfg, opts)
  return client.new(cfg, opts)
end

return M
