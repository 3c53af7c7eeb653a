-- Ready-made hook: post a message to a chat or incident webhook (Slack, Mattermost, Teams
-- incoming webhooks, or any URL that takes JSON), through atom's own HTTP transport.
--
--   local notify = require("atom.hooks.webhook_notify"){ url = atom.env("SLACK_WEBHOOK") }
--   hooks = { after = { Running = notify, Reverted = notify, Failure = notify } }
--
-- Options: url (required), body = function(ctx, text) -> table (default { text = text }),
-- format = function(ctx) -> text, headers, required (default false: a webhook that is
-- down is logged, not fatal; true makes the hook fail).
local function default_text(ctx)
  return string.format("release %s v%s: %s => %s", tostring(ctx.release), tostring(ctx.version),
    tostring(ctx.from), tostring(ctx.to))
end

return function(opts)
  opts = opts or {}
  if type(opts.url) ~= "string" or not opts.url:match("^https?://") then
    error("webhook_notify: url must be an http(s) URL, got " .. tostring(opts.url), 2)
  end
  return function(ctx)
    local text = (opts.format or default_text)(ctx)
    local body = opts.body and opts.body(ctx, text) or { text = text }
    local status, reply = ctx.http{ method = "POST", url = opts.url, body = body, headers = opts.headers }
    if status and status >= 200 and status < 300 then
      ctx.log("notified " .. opts.url:match("^(https?://[^/]+)"))
      return
    end
    local why = status and string.format("HTTP %d %s", status, tostring(reply or ""):sub(1, 200)) or tostring(reply)
    if opts.required then error("webhook_notify: " .. why, 0) end
    ctx.log("webhook_notify: " .. why)
  end
end
