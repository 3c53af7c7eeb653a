-- The benchmark end to end at a tiny size (N = 10, one repetition, both tools against a real
-- `atom sim`), plus its pure parts. No timing is asserted: only that every measure exists.
local cjson = require "cjson"

package.path = "bench/?.lua;" .. package.path
local gen = require "gen"
local stats = require "stats"

local sh_quote = require("helpers.sim").quote

describe("bench manifest generator", function()
  it("plans exactly N objects with namespaces first and apps of five kinds", function()
    for _, n in ipairs({ 1, 7, 10, 100, 1000 }) do
      local plan = gen.plan(n, "t", 2)
      local count, kinds = 0, {}
      for _, f in ipairs(plan.files) do
        for _, o in ipairs(f.objects) do
          count = count + 1
          kinds[o.kind] = (kinds[o.kind] or 0) + 1
        end
      end
      assert.are.equal(n, count)
      assert.are.equal("00-namespaces.yaml", plan.files[1].name)
      assert.are.equal(#plan.namespaces, kinds.Namespace)
      assert.are.equal(plan.deployments, kinds.Deployment or 0)
    end
    local p = gen.plan(1000, "t", 2)
    assert.are.equal(4, #p.namespaces)
    assert.are.equal(199, p.deployments)
  end)

  it("writes YAML documents that decode back to the planned objects", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. sh_quote(dir)))
    local plan = gen.write(gen.plan(10, "t", 2), dir)
    local f = assert(io.open(dir .. "/" .. plan.files[2].name))
    local text = f:read("a")
    f:close()
    os.execute("rm -rf " .. sh_quote(dir))
    local docs = {}
    for doc in text:gmatch("%-%-%-\n([^\n]+)") do docs[#docs + 1] = cjson.decode(doc) end
    assert.are.equal(#plan.files[2].objects, #docs)
    assert.are.equal("apps/v1", docs[4].apiVersion)
    assert.are.same(plan.files[2].objects[4].spec.template.spec.containers[1].image,
      docs[4].spec.template.spec.containers[1].image)
  end)
end)

describe("bench stats", function()
  it("takes medians, nearest-rank percentiles and extremes without reordering the input", function()
    local xs = { 5, 1, 4, 2, 3 }
    local s = stats.summary(xs)
    assert.are.same({ median = 3, min = 1, max = 5, p99 = 5, n = 5 }, s)
    assert.are.equal(2.5, stats.median({ 4, 1, 2, 3 }))
    assert.are.equal(2, stats.percentile({ 1, 2, 3, 4 }, 50))
    assert.are.same({ 5, 1, 4, 2, 3 }, xs)
    assert.is_nil(stats.summary({}))
  end)
end)

describe("bench/run #kubectl", function()
  local atom = os.getenv("ATOM_BIN") or "build/atom"

  it("releases 10 objects with atom and kubectl and writes the JSON, table and plot", function()
    local f = io.open(atom)
    if not f then
      pending("no atom binary at " .. atom .. " (set ATOM_BIN)")
      return
    end
    f:close()
    local out = os.tmpname()
    os.remove(out)
    local p = assert(io.popen(string.format("bench/run --sizes 10 --reps 1 --no-warmup --atom %s --out %s 2>&1",
      sh_quote(atom), sh_quote(out))))
    local printed = p:read("a")
    local ok = p:close()
    local ls = io.popen("ls " .. sh_quote(out) .. " 2>/dev/null")
    local files = ls:read("a")
    ls:close()
    local json_name = files:match("(%S+%.json)")
    local body
    if json_name then
      local jf = assert(io.open(out .. "/" .. json_name))
      body = jf:read("a")
      jf:close()
    end
    os.execute("rm -rf " .. sh_quote(out))

    assert.is_true(ok, printed)
    assert.truthy(files:match("%S+%.png"), "no plot in " .. files)
    assert.truthy(printed:find("| N ", 1, true), printed)
    assert.truthy(printed:find("atom/kubectl", 1, true), printed)
    assert.is_not_nil(body, "no JSON in " .. files)

    local res = cjson.decode(body)
    assert.are.equal("atom-bench/1", res.schema)
    assert.are.equal(2, #res.runs)
    local seen = {}
    for _, r in ipairs(res.runs) do
      seen[r.tool] = true
      assert.are.equal(10, r.n)
      assert.is_true(r.ok)
      for _, k in ipairs({ "wall_s", "cpu_s", "cpu_per_obj_us", "rss_kb", "req_per_obj",
                           "ready_latency_s", "sim_ready_s", "sim_cpu_s", "sim_cpu_per_req_us" }) do
        assert.are.equal("number", type(r[k]), r.tool .. " " .. k)
      end
      assert.is_true(r.rss_kb > 0)
      assert.is_true(r.requests.non_watch >= 10, "at least one request per object")
      assert.are.equal("number", type(r.requests.watches))
      assert.is_true(r.ready_marks > 0)
    end
    assert.is_true(seen.atom and seen.kubectl)
    for _, tool in ipairs({ "atom", "kubectl" }) do
      local s = res.summary["10"][tool]
      assert.are.equal(1, s.reps)
      assert.are.equal("number", type(s.wall_s.median))
    end
    assert.are.equal("string", type(res.table))
  end)
end)
