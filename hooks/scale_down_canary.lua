-- Ready-made hook: scale a canary workload down (to 0 by default) once the release has
-- settled, or after a rollback so the canary stops taking traffic.
--
--   local canary_off = require("atom.hooks.scale_down_canary"){ name = "web-canary" }
--   hooks = { after = { Running = canary_off, Reverted = canary_off } }
--
-- Options: name (required), kind (default "Deployment"; also StatefulSet or anything with
-- spec.replicas), apiVersion (default "apps/v1"), namespace (default the release's),
-- replicas (default 0), required (default false: a canary that does not exist is logged
-- and skipped; true makes that an error).
return function(opts)
  opts = opts or {}
  if type(opts.name) ~= "string" then error("scale_down_canary: name is required", 2) end
  local kind, api = opts.kind or "Deployment", opts.apiVersion or "apps/v1"
  local replicas = opts.replicas or 0
  return function(ctx)
    local ns = opts.namespace or ctx.namespace
    local live, err = ctx.kube:patch(api, kind, ns, opts.name, { spec = { replicas = replicas } }, "merge")
    if live then
      ctx.log(string.format("scaled %s %s/%s to %d", kind, ns, opts.name, replicas))
      ctx.event("CanaryScaled", string.format("%s %s scaled to %d", kind, opts.name, replicas))
      return
    end
    if err and err.code == 404 and not opts.required then
      ctx.log(string.format("canary %s %s/%s not found; nothing to scale", kind, ns, opts.name))
      return
    end
    error(string.format("scale_down_canary: cannot scale %s %s/%s: %s", kind, ns, opts.name, tostring(err)), 0)
  end
end
