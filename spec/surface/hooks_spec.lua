-- Hooks: run under budgets, errors name the hook and carry file:line and a traceback;
-- ctx.run_job drives a Job to its end.
local tree = require "surface.tree"
local script = require "atom.release.script"
local jobs = require "atom.release.jobs"
local fake = require "surface.fake_kube"

local CM = "{ apiVersion = 'v1', kind = 'ConfigMap', metadata = { name = 'c' } }"

describe("release:run_hook", function()
  local dir, r
  setup(function()
    dir = tree.make({ ["release.lua"] = [[
local seen = {}
return {
  name = "a",
  objects = { ]] .. CM .. [[ },
  limits = { instructions = 1000000 },
  hooks = {
    before = {
      Updating = function(ctx)
        local cfg = nil
        return cfg.migrate
      end,
      Rollback = function(ctx) while true do end end,
      Pending = function(ctx)
        ctx.log("pending " .. ctx.release .. " v" .. ctx.version .. " " .. ctx.from .. "->" .. ctx.to)
        ctx.event("Hook", "ran")
        assert(type(ctx.run_job) == "function" and type(ctx.http) == "function")
      end,
    },
    after = { Running = function(ctx) return ctx.run_job({ kind = "Job", metadata = { name = "m" } }) end },
  },
} ]] })
    r = assert(script.load(dir .. "/release.lua"))
  end)
  teardown(function() tree.remove(dir) end)

  it("is true when there is no hook for that state", function()
    assert.is_true(r:run_hook("after", "Failure", {}))
  end)

  it("passes the engine's ctx with helpers added", function()
    local logs, events = {}, {}
    local ctx = { release = "a", version = 3, from = "Running", to = "Pending",
      log = function(m) logs[#logs + 1] = m end,
      event = function(reason, m) events[#events + 1] = reason .. ":" .. m end }
    assert.is_true(r:run_hook("before", "Pending", ctx))
    assert.same({ "pending a v3 Running->Pending" }, logs)
    assert.same({ "Hook:ran" }, events)
    assert.is_nil(rawget(ctx, "run_job")) -- the engine's table is left as it was
  end)

  it("reports an error naming the hook, its file:line and the traceback", function()
    local ok, msg = r:run_hook("before", "Updating", { version = 1 })
    assert.is_nil(ok)
    assert.matches("^hook before Updating %(.*release%.lua:8%) failed: .*release%.lua:10: attempt to index a nil value", msg)
    assert.matches("stack traceback:", msg)
    assert.not_matches("atom/release/hooks%.lua", msg)
  end)

  it("stops a hook that loops forever and names it", function()
    local ok, msg = r:run_hook("before", "Rollback", {})
    assert.is_nil(ok)
    assert.matches("^hook before Rollback %(.*release%.lua:12%) was stopped: it ran out of its instruction budget", msg)
  end)

  it("gives hooks a read-only view of the client", function()
    local client = { namespace = "shop", cfg = { token = "secret" } }
    function client:get(a, k, ns, n) return { seen = (self == client), name = n } end
    local view = require("atom.release.hooks").context({ kube = client }, r).kube
    assert.same({ seen = true, name = "x" }, view:get("v1", "ConfigMap", "shop", "x"))
    assert.equal("shop", view.namespace)
    assert.is_nil(view.cfg)
    assert.has_error(function() view.get = nil end, "ctx.kube is read-only (cannot set get)")
    assert.is_false(getmetatable(view))
  end)

  it("keeps the engine's watch events away from a hook that polls, and hands them back", function()
    local hooks = require "atom.release.hooks"
    local engine_w, closed = {}, false
    local client = { events = {} }
    local hook_w = { close = function() closed = true end }
    function client:watch() return hook_w end
    function client:poll()
      return { { watcher = engine_w, type = "ADDED" }, { watcher = hook_w, type = "MODIFIED" } }
    end
    local hctx, finish = hooks.context({ kube = client }, r)
    local w = hctx.kube:watch("batch/v1", "Job", "shop", {})
    assert.equal(hook_w, w)
    assert.same({ { watcher = hook_w, type = "MODIFIED" } }, hctx.kube:poll(0))
    assert.same({}, client.events)
    finish()
    assert.is_true(closed)
    assert.same({ { watcher = engine_w, type = "ADDED" } }, client.events)
  end)

  it("lets a hook run a Job through ctx.run_job", function()
    local kube = fake.new({ job_outcome = "Complete" })
    assert.is_true(r:run_hook("after", "Running", { kube = kube, namespace = "shop", log = function() end }))
    assert.equal("create Job shop/m", kube.calls[1])
  end)
end)

describe("jobs.run", function()
  local JOB = { apiVersion = "batch/v1", kind = "Job", metadata = { name = "m" }, spec = {} }

  it("creates the Job, waits for Complete by watch, then deletes it", function()
    local kube = fake.new({ job_outcome = "Complete" })
    assert.is_true(jobs.run(kube, JOB, { namespace = "shop", timeout = 5 }))
    assert.same({ "create Job shop/m", "watch Job shop metadata.name=m", "delete Job shop/m Background" }, kube.calls)
    assert.is_true(kube.watch_closed)
    assert.is_nil(JOB.metadata.namespace) -- the caller's table is not changed
  end)

  it("hands events of the engine's watchers back to the shared client", function()
    local kube = fake.new({ job_outcome = "Complete", foreign = true })
    assert.is_true(jobs.run(kube, JOB, { namespace = "shop", timeout = 5 }))
    assert.same({ { watcher = "engine's", type = "ADDED", object = { kind = "Deployment" } } }, kube.events)
  end)

  it("reads the Job when the watch is refused", function()
    local kube = fake.new({ job_outcome = "Complete", no_watch = true })
    assert.is_true(jobs.run(kube, JOB, { namespace = "shop", timeout = 5 }))
    assert.same({ "create Job shop/m", "watch Job shop metadata.name=m", "get Job shop/m", "delete Job shop/m Background" },
      kube.calls)
  end)

  it("keeps the Job when asked", function()
    local kube = fake.new({ job_outcome = "Complete" })
    assert.is_true(jobs.run(kube, JOB, { namespace = "shop", keep = true }))
    assert.equal("watch Job shop metadata.name=m", kube.calls[#kube.calls])
  end)

  it("reports a failed Job with its pods' reasons", function()
    local kube = fake.new({ job_outcome = "Failed", pods = {
      { metadata = { name = "m-abc" }, status = { phase = "Failed", containerStatuses = {
        { name = "migrate", state = { terminated = { reason = "Error", exitCode = 3, message = "relation exists" } } } } } },
      { metadata = { name = "m-def" }, status = { phase = "Pending", containerStatuses = {
        { name = "migrate", state = { waiting = { reason = "ImagePullBackOff", message = "no such image" } } } } } },
      { metadata = { name = "m-ok" }, status = { phase = "Succeeded" } },
    } })
    local ok, msg = jobs.run(kube, JOB, { namespace = "shop" })
    assert.is_nil(ok)
    assert.equal("Job shop/m failed: BackoffLimitExceeded: Job has reached the specified backoff limit\n"
      .. "  pod m-abc: container migrate terminated: Error (exit code 3): relation exists\n"
      .. "  pod m-def: container migrate waiting: ImagePullBackOff (no such image)", msg)
    assert.equal("delete Job shop/m Background", kube.calls[#kube.calls])
  end)

  it("gives up at the timeout and cleans up", function()
    local kube = fake.new({})
    local ok, msg = jobs.run(kube, JOB, { namespace = "shop", timeout = 0.05 })
    assert.is_nil(ok)
    assert.matches("^Job shop/m did not finish within 0%.05 s", msg)
    assert.equal("delete Job shop/m Background", kube.calls[#kube.calls])
  end)

  it("replaces a Job left over by an earlier run", function()
    local kube = fake.new({ job_outcome = "Complete", exists = true })
    assert.is_true(jobs.run(kube, JOB, { namespace = "shop", timeout = 5 }))
    assert.same({ "create Job shop/m", "delete Job shop/m Foreground", "get Job shop/m", "create Job shop/m" },
      { table.unpack(kube.calls, 1, 4) })
  end)

  it("refuses something that is not a Job", function()
    local ok, msg = jobs.run(fake.new(), { kind = "Pod", metadata = { name = "p" } })
    assert.is_nil(ok)
    assert.matches("want a batch/v1 Job", msg)
  end)
end)
