-- Shared setup for the sim API specs: a sim on a fake loop, and request helpers that decode
-- JSON responses.
local fake_loop = require "sim.fake_loop"
local cjson = require "cjson"

local H = {}

H.TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"

function H.new(opts)
  opts = opts or {}
  local loop = fake_loop.new()
  opts.loop = loop
  if opts.controllers == nil then opts.controllers = false end
  local sim = require("atom.sim").new(opts)
  local t = { sim = sim, loop = loop, next_stream = 100 }
  -- request(method, path, { query=, body= (table or string), ctype=, accept=, headers= })
  function t.req(method, path, o)
    o = o or {}
    local path_only, q = path:match("^([^?]*)%??(.*)$")
    local headers = o.headers or {}
    headers["content-type"] = o.ctype or headers["content-type"] or "application/json"
    headers["accept"] = o.accept or headers["accept"] or "application/json"
    local body = o.body
    if type(body) == "table" then body = cjson.encode(body) end
    t.next_stream = t.next_stream + 1
    local resp = sim:handle({ method = method, path = path_only, query = q, headers = headers,
      body = body, stream = o.stream or t.next_stream, user = o.user })
    local ok, decoded = pcall(cjson.decode, resp.body or "")
    resp.json = ok and decoded or nil
    resp.stream_id = o.stream or t.next_stream
    return resp
  end
  function t.get(path, o) return t.req("GET", path, o) end
  function t.post(path, body, o) o = o or {} o.body = body return t.req("POST", path, o) end
  function t.put(path, body, o) o = o or {} o.body = body return t.req("PUT", path, o) end
  function t.patch(path, body, ctype, o) o = o or {} o.body = body o.ctype = ctype return t.req("PATCH", path, o) end
  function t.delete(path, body, o) o = o or {} o.body = body return t.req("DELETE", path, o) end
  return t
end

function H.deployment(name, o)
  o = o or {}
  local labels = o.labels or { app = name }
  return {
    apiVersion = "apps/v1", kind = "Deployment",
    metadata = { name = name, namespace = o.namespace, labels = labels },
    spec = {
      replicas = o.replicas or 2,
      selector = { matchLabels = labels },
      template = { metadata = { labels = labels }, spec = { containers = o.containers or {
        { name = "app", image = o.image or "nginx:1.27", ports = { { containerPort = 80 } } } } } },
    },
  }
end

function H.configmap(name, data, labels)
  return { apiVersion = "v1", kind = "ConfigMap", metadata = { name = name, labels = labels }, data = data or { a = "1" } }
end

return H
