-- Bodies are built with a tiny protobuf writer so the spec needs no binary fixtures; the shapes
-- mirror what kubectl 1.32 `create namespace` / `create deployment` send.
local H = require "sim.sim_helper"
local pb = require "atom.sim.protobuf"

local function varint(n)
  local out = {}
  repeat
    local b = n & 0x7f
    n = n >> 7
    if n ~= 0 then b = b | 0x80 end
    out[#out + 1] = string.char(b)
  until n == 0
  return table.concat(out)
end
local function str(num, s) return varint(num << 3 | 2) .. varint(#s) .. s end
local function int(num, v) return varint(num << 3) .. varint(v) end
local function msg(num, ...) return str(num, table.concat({ ... })) end
local function envelope(api_version, kind, raw)
  return "k8s\0" .. msg(1, str(1, api_version), str(2, kind)) .. str(2, raw) .. str(3, "") .. str(4, "")
end
local function meta(name, labels)
  local parts = { str(1, name), str(2, ""), str(3, ""), str(4, ""), str(5, ""), str(6, ""), int(7, 0), str(8, "") }
  for k, v in pairs(labels or {}) do parts[#parts + 1] = msg(11, str(1, k), str(2, v)) end
  return msg(1, table.unpack(parts))
end

describe("protobuf request bodies", function()
  it("decodes a Namespace and drops zero values", function()
    local o = assert(pb.decode(envelope("v1", "Namespace", meta("tmp1") .. msg(2) .. msg(3, str(1, "")))))
    assert.same({ apiVersion = "v1", kind = "Namespace", metadata = { name = "tmp1" } }, o)
  end)

  it("decodes a Deployment with pointers, maps and nested lists", function()
    local container = msg(2, str(1, "nginx"), str(2, "nginx:1.27"), str(5, ""),
      msg(6, str(1, ""), int(2, 0), int(3, 80), str(4, ""), str(5, "")), str(8, ""), int(16, 0))
    local spec = msg(2, int(1, 0), msg(2, msg(1, str(1, "app"), str(2, "d1"))),
      msg(3, meta("", { app = "d1" }), msg(2, container, str(3, ""), int(11, 0))), msg(4, str(1, "")), int(5, 0))
    local o = assert(pb.decode(envelope("apps/v1", "Deployment", meta("d1", { app = "d1" }) .. spec)))
    assert.equal(0, o.spec.replicas)
    assert.same({ app = "d1" }, o.spec.selector.matchLabels)
    local c = o.spec.template.spec.containers[1]
    assert.same({ name = "nginx", image = "nginx:1.27", ports = { { containerPort = 80 } } }, c)
    assert.is_nil(o.spec.strategy)
    assert.is_nil(o.spec.template.spec.hostNetwork)
  end)

  it("is accepted by create, and unknown kinds get 415", function()
    local t = H.new()
    local r = t.post("/api/v1/namespaces", envelope("v1", "Namespace", meta("fromproto")),
      { ctype = "application/vnd.kubernetes.protobuf" })
    assert.equal(201, r.status)
    assert.equal("fromproto", t.get("/api/v1/namespaces/fromproto").json.metadata.name)
    local bad = t.post("/api/v1/namespaces/default/configmaps", envelope("v1", "Weird", meta("x")),
      { ctype = "application/vnd.kubernetes.protobuf" })
    assert.equal(415, bad.status)
    local garbage = t.post("/api/v1/namespaces/default/configmaps", "k8s\0\255\255\255",
      { ctype = "application/vnd.kubernetes.protobuf" })
    assert.equal(415, garbage.status)
  end)
end)
