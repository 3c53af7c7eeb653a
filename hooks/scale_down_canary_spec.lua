-- hooks/scale_down_canary.lua against a recorded kube client.
local sandbox = require "atom.release.sandbox"

local function canary(opts)
  return sandbox.new{ dir = "hooks", hooks_dir = "hooks" }.require("atom.hooks.scale_down_canary")(opts)
end

local function ctx(answer)
  local c = { namespace = "shop", logs = {}, events = {}, patches = {} }
  c.log = function(m) c.logs[#c.logs + 1] = m end
  c.event = function(r, m) c.events[#c.events + 1] = r .. ": " .. m end
  c.kube = { patch = function(_, api, kind, ns, name, body, how)
    c.patches[#c.patches + 1] = { api, kind, ns, name, body, how }
    if answer == "ok" then return { metadata = { name = name } } end
    return nil, setmetatable({ code = answer }, { __tostring = function() return "HTTP " .. answer end })
  end }
  return c
end

describe("hooks/scale_down_canary", function()
  it("merge-patches spec.replicas to 0 in the release namespace", function()
    local c = ctx("ok")
    canary{ name = "web-canary" }(c)
    assert.same({ { "apps/v1", "Deployment", "shop", "web-canary", { spec = { replicas = 0 } }, "merge" } }, c.patches)
    assert.same({ "CanaryScaled: Deployment web-canary scaled to 0" }, c.events)
  end)

  it("skips a canary that does not exist unless required", function()
    local c = ctx(404)
    canary{ name = "web-canary", kind = "StatefulSet", replicas = 1, namespace = "edge" }(c)
    assert.same({ "canary StatefulSet edge/web-canary not found; nothing to scale" }, c.logs)
    local ok, err = pcall(canary{ name = "web-canary", required = true }, ctx(404))
    assert.is_false(ok)
    assert.equal("scale_down_canary: cannot scale Deployment shop/web-canary: HTTP 404", err)
  end)

  it("fails on other errors", function()
    assert.has_error(function() canary{ name = "w" }(ctx(403)) end, "scale_down_canary: cannot scale Deployment shop/w: HTTP 403")
  end)
end)
