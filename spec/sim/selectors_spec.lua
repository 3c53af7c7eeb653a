local sel = require "atom.sim.selectors"

describe("label selectors", function()
  local labels = { app = "web", tier = "fe", ["example.com/team"] = "a" }
  local function m(s) return sel.match_labels(assert(sel.parse_labels(s)), labels) end

  it("supports every operator", function()
    assert.is_true(m("app=web"))
    assert.is_true(m("app==web"))
    assert.is_false(m("app!=web"))
    assert.is_true(m("missing!=x"))
    assert.is_true(m("app in (db, web)"))
    assert.is_false(m("app notin (web)"))
    assert.is_true(m("missing notin (web)"))
    assert.is_true(m("tier"))
    assert.is_false(m("!tier"))
    assert.is_true(m("!missing"))
    assert.is_true(m("example.com/team=a,app=web"))
    assert.is_false(m("app=web,tier=be"))
    assert.is_true(m(""))
  end)

  it("rejects malformed selectors", function()
    for _, s in ipairs({ "app===x", "=x", "app in web", "a,,b", "app=in valid" }) do
      assert.is_nil(sel.parse_labels(s), s)
    end
  end)
end)

describe("field selectors", function()
  it("compares dotted fields with = == !=", function()
    local obj = { metadata = { name = "x", namespace = "ns" }, status = { phase = "Running" } }
    assert.is_true(sel.match_fields(sel.parse_fields("metadata.name=x"), obj))
    assert.is_true(sel.match_fields(sel.parse_fields("metadata.name==x,metadata.namespace!=y"), obj))
    assert.is_false(sel.match_fields(sel.parse_fields("status.phase!=Running"), obj))
    assert.equal("x", sel.pinned_name(sel.parse_fields("metadata.name=x")))
    assert.is_nil(sel.parse_fields("metadata.name~x"))
  end)
end)

describe("LabelSelector objects", function()
  it("matches and prints matchLabels and matchExpressions", function()
    local s = { matchLabels = { app = "web" }, matchExpressions = {
      { key = "tier", operator = "In", values = { "fe", "be" } }, { key = "legacy", operator = "DoesNotExist" } } }
    assert.is_true(sel.match_label_selector(s, { app = "web", tier = "fe" }))
    assert.is_false(sel.match_label_selector(s, { app = "web", tier = "fe", legacy = "1" }))
    assert.is_false(sel.match_label_selector(nil, { app = "web" }))
    assert.equal("app=web,tier in (be,fe),!legacy", sel.label_selector_string(s))
  end)
end)
