-- kubectl is the judge of what a YAML scalar means: the same plain and tagged scalars,
-- read by kubectl (go-yaml, through `create --dry-run=client -o json`) and by
-- atom.core.yaml_decode, must give the same values. A manifest that kubectl applies
-- as the string "_5" or the number 10.5 is applied the same way by atom.
local core = require "atom.core"
local K = require "kubectl.kctl"

local SCALARS = {
  "yes", "Yes", "on", "off", "y", "n", "NO", "TRUE", "True", "tRUE",
  "012", "0o17", "0x1F", "0x_1F", "-0x1F", "0b101", "1_000", "1__0", "_5", "+12", "08",
  "1e3", "1.5e3", "1.", "+.5", "1_0.5", "0", "0.", "-0", "99999999999999999999",
  "1:30", "190:20:30", "2001-12-14", "=", "<<", "~", "null", "Null", "",
  "!!str 12", "!!str true", "! 16", "!!int '7'", "'012'", "\"yes\"",
}

describe("YAML scalars #kubectl", function()
  local s = K.serve()

  it("read as kubectl reads them", function()
    local lines = { "apiVersion: v1", "kind: ConfigMap", "metadata:", "  name: scalars", "extra:" }
    for i, v in ipairs(SCALARS) do lines[#lines + 1] = string.format("  k%d: %s", i, v) end
    local text = table.concat(lines, "\n") .. "\n"
    local path = K.file(s, "scalars.yaml", text)
    local want = K.json(K.ok(s, "create --dry-run=client --validate=false -o json -f " .. path).stdout).extra
    local docs = assert(core.yaml_decode(text, "scalars.yaml"))
    local got = docs[1].extra
    for i, v in ipairs(SCALARS) do
      local k = "k" .. i
      -- Values, not representations: lua-cjson reads every JSON number as a float.
      assert.are.equal(type(want[k]), type(got[k]), v)
      assert.are.equal(want[k], got[k], v)
    end
  end)
end)
