-- atom.release.hooks: runs a release's user hooks under the budgets and gives them the
-- helpers the engine's ctx lacks.
--
-- hooks.run(release, phase, state_name, ctx) -> true | nil, message
--   phase "before" | "after". No hook for that state: true. The engine's ctx
--   ({ release, version, from, to, log, event, kube }) is copied and extended (the
--   engine's table is not changed) with:
--     ctx.namespace                      the release namespace
--     ctx.kube                           the engine's client behind a read-only view
--     ctx.run_job(job, { timeout = s, keep = bool }) -> true | nil, message  (jobs.lua)
--     ctx.http{ method =, url =, headers =, body = string|table (JSON), timeout = }
--         -> status, body | nil, message       (atom.http, the kube client's transport)
--   An error names the hook, its file:line and carries the traceback; a hook stopped by
--   a budget is reported the same way, naming the budget.
-- hooks.find(release, phase, state_name) -> the user's hook function | nil
-- hooks.context(ctx, release) -> the extended copy, finish (call finish() once the hook
--   is done: it closes the hook's watches and hands back the engine's events).
local jobs = require "atom.release.jobs"

local hooks = {}

local function http_request(req)
  if type(req) ~= "table" or type(req.url) ~= "string" then
    return nil, "ctx.http: want { url = \"https://...\", method =, headers =, body = }"
  end
  local origin, path = req.url:match("^(https?://[^/]+)(.*)$")
  if not origin then return nil, "ctx.http: not an http(s) URL: " .. req.url end
  local ok, http = pcall(require, "atom.http")
  if not ok then return nil, "ctx.http: atom.http is not available: " .. tostring(http) end
  local headers = {}
  for k, v in pairs(req.headers or {}) do headers[k] = v end
  local body = req.body
  if type(body) == "table" then
    body = require("atom.json").encode(body)
    if headers["Content-Type"] == nil then headers["Content-Type"] = "application/json" end
  end
  local conn = http.new{ server = origin, timeout = req.timeout or 10, retries = req.retries or 2 }
  local done = conn:request{ method = req.method or (body and "POST" or "GET"),
    path = path ~= "" and path or "/", headers = headers, body = body }
  conn:close()
  if done.error and (done.status or 0) == 0 then
    return nil, string.format("%s %s: %s", req.method or "POST", req.url, done.error)
  end
  return done.status, done.body
end

-- The client as hooks see it: its methods and plain fields, read-only, so a hook cannot
-- replace what the engine calls after it (outside any budget). The client is shared with
-- the engine, so watches opened through the view are the hook's: its poll returns only
-- their events and keeps the engine's aside. Returns view, finish; finish() closes the
-- hook's watches and hands the kept events back to the client (hooks.run calls it).
function hooks.client_view(client)
  if type(client) ~= "table" then return client, function() end end
  local view, bound = {}, {}
  local mine, kept = {}, {}
  local special = {
    watch = function(_, ...)
      local w, err = client:watch(...)
      if w then mine[#mine + 1] = w; mine[w] = true end
      return w, err
    end,
    poll = function(_, timeout)
      local out = {}
      for _, ev in ipairs(client:poll(timeout) or {}) do
        if mine[ev.watcher] then out[#out + 1] = ev else kept[#kept + 1] = ev end
      end
      return out
    end,
  }
  local function finish()
    for i = 1, #mine do
      local w = mine[i]
      if type(w) == "table" and not w.closed and w.close then pcall(w.close, w) end
    end
    jobs.hand_back(client, kept)
    kept = {}
  end
  return setmetatable(view, {
    __index = function(_, k)
      local v = client[k]
      if type(v) == "function" then
        bound[k] = bound[k] or special[k] or function(self_, ...)
          if self_ == view then self_ = client end
          return v(self_, ...)
        end
        return bound[k]
      end
      if type(v) == "table" then return nil end
      return v
    end,
    __newindex = function(_, k)
      error("ctx.kube is read-only (cannot set " .. tostring(k) .. ")", 2)
    end,
    __metatable = false,
  }), finish
end

function hooks.context(ctx, release)
  local out = {}
  for k, v in pairs(ctx or {}) do out[k] = v end
  local client = out.kube
  out.namespace = out.namespace or (release and release.namespace)
  -- Versions are whole numbers; one that went through JSON may arrive as 1.0.
  if math.type(out.version) == "float" then out.version = math.tointeger(out.version) or out.version end
  out.log = out.log or function(msg) io.stderr:write(tostring(msg), "\n") end
  out.event = out.event or function() end
  if out.run_job == nil then
    out.run_job = function(job, opts)
      if client == nil then return nil, "ctx.run_job: no cluster client in this context" end
      opts = opts or {}
      return jobs.run(client, job, { timeout = opts.timeout, keep = opts.keep,
        namespace = out.namespace, log = out.log })
    end
  end
  out.http = out.http or http_request
  local finish
  out.kube, finish = hooks.client_view(out.kube)
  return out, finish
end

function hooks.find(release, phase, state_name)
  local set = release.hooks and release.hooks[phase]
  return set and set[state_name] or nil
end

function hooks.run(release, phase, state_name, ctx)
  local fn = hooks.find(release, phase, state_name)
  if fn == nil then return true end
  local script = require "atom.release.script"
  local where = release._hook_where and release._hook_where[phase .. " " .. state_name] or script.fn_where(fn)
  local name = string.format("hook %s %s (%s)", phase, state_name, where)
  local limits = release.limits
  local seconds = limits.hook_seconds or limits.seconds
  local hctx, finish = hooks.context(ctx, release)
  local ok, a, kind = release:call(seconds, fn, hctx)
  finish()
  if ok then return true end
  local budget = script.budget_text(kind, limits, seconds)
  if budget then
    return nil, string.format("%s was stopped: it %s\n%s", name, budget, script.trim_traceback(a))
  end
  return nil, string.format("%s failed: %s", name, script.trim_traceback(a))
end

return hooks
