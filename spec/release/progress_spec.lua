-- The pieces of the release engine that need no cluster: record times, logfmt lines and
-- the progress view on a terminal and elsewhere.
local util = require "atom.release.util"
local progress = require "atom.release.progress"

local function sink()
  local buf = {}
  return { write = function(self, ...) for _, s in ipairs({ ... }) do buf[#buf + 1] = s end return self end,
           flush = function() end, text = function() return table.concat(buf) end,
           reset = function() for i = #buf, 1, -1 do buf[i] = nil end end }
end

describe("atom.release.util", function()
  it("writes and reads RFC 3339 times as the API server does, in UTC", function()
    assert.are.equal("2026-11-26T15:14:16Z", util.rfc3339(1795706056))
    assert.are.equal(1795706056, util.parse_time("2026-11-26T15:14:16Z"))
    assert.are.equal(1795706056.25, util.parse_time("2026-11-26T15:14:16.250000Z"))
    assert.are.equal(1795706056, util.parse_time("2026-11-26T17:14:16+02:00"))
    assert.are.equal(951782400, util.parse_time("2000-02-29T00:00:00Z"))
    assert.is_nil(util.parse_time("yesterday"))
    local t = 1795706056.5
    assert.are.equal(t, util.parse_time(util.rfc3339(t, true)))
  end)

  it("quotes logfmt values only when needed", function()
    assert.are.equal('release=shop version=2 from="" to=Running reason="3 objects ready"',
      util.logfmt({ { "release", "shop" }, { "version", 2 }, { "from", "" }, { "to", "Running" },
                    { "reason", "3 objects ready" } }))
    assert.are.equal('reason="say \\"hi\\"\\nback\\\\slash"',
      util.logfmt({ { "reason", 'say "hi"\nback\\slash' } }))
  end)

  it("keys objects by group, kind, namespace and name, not by version", function()
    assert.are.equal(util.key({ apiVersion = "apps/v1", kind = "Deployment", metadata = { name = "w", namespace = "n" } }),
      util.key({ apiVersion = "apps/v1beta2", kind = "Deployment", metadata = { name = "w", namespace = "n" } }))
    assert.are.equal("/ConfigMap/n/c", util.key({ apiVersion = "v1", kind = "ConfigMap", metadata = { name = "c", namespace = "n" } }))
    assert.are.equal(1, math.type(util.int(1.0)) == "integer" and 1 or 0)
  end)
end)

describe("atom.release.progress", function()
  local nr = {
    { key = "a", object = "Deployment/shop/web", state = "progressing", message = "1 of 2 updated replicas are available" },
    { key = "b", object = "Job/shop/migrate", state = "progressing", message = "0 of 1 completions" },
  }

  it("logs one line per object whose state changed when not on a terminal", function()
    local out = sink()
    local v = progress.new({ out = out, tty = false, release = "shop" })
    v:update(nr, 3)
    local first = out.text()
    assert.matches('object=Deployment/shop/web state=progressing message="1 of 2 updated replicas are available"', first)
    assert.matches("object=Job/shop/migrate", first)
    out.reset()
    v:update(nr, 3)
    assert.are.equal("", out.text())
    v:update({ nr[2] }, 3)
    assert.matches("object=Deployment/shop/web state=ready", out.text())
    assert.not_matches("migrate", out.text())
  end)

  it("redraws the list of objects not ready in place on a terminal", function()
    local out = sink()
    local v = progress.new({ out = out, tty = true, release = "shop" })
    v:update(nr, 3)
    assert.matches("waiting for 2 of 3 objects:", out.text())
    out.reset()
    v:update(nr, 3)
    assert.are.equal("", out.text()) -- nothing changed: nothing redrawn

    v:update({ nr[2] }, 3)
    assert.matches("^\27%[3A\27%[J", out.text())
    assert.matches("waiting for 1 of 3 objects:", out.text())
    out.reset()
    v:log({ { "release", "shop" }, { "to", "Running" } })
    assert.matches("^\27%[2A\27%[J.*release=shop to=Running\n$", out.text())
  end)

  it("prints nothing when quiet", function()
    local out = sink()
    local v = progress.new({ out = out, tty = true, quiet = true })
    v:update(nr, 3)
    v:log({ { "a", "b" } })
    assert.are.equal("", out.text())
  end)
end)
