-- atom.api without a cluster: options, the embedder's atom.app functions and values as
-- release scripts see them, loading from a path and from text, and the error kinds the
-- C library turns into status codes.
local api = require "atom.api"
local sim = require "helpers.sim"

local tmpdir = sim.tmpdir
local write = sim.write_file

local function list(dir)
  local p = io.popen("ls -A " .. dir)
  local out = p:read("a")
  p:close()
  return out
end

local SCRIPT = [[
local atom = require "atom"
return {
  name = "shop-" .. atom.app.team,
  namespace = "shop",
  objects = {
    { apiVersion = "v1", kind = "ConfigMap", metadata = { name = "image" },
      data = { image = atom.app.image_tag("web") } },
  },
}
]]

describe("atom.api", function()
  local dir

  before_each(function() dir = tmpdir() end)
  after_each(function() os.execute("rm -rf " .. dir) end)

  describe("coerce_option", function()
    it("converts the CLI's long options to their types", function()
      assert.equals(30, api.coerce_option("deadline", "30"))
      assert.equals(2.5, api.coerce_option("lease-duration", "2.5"))
      assert.is_true(api.coerce_option("allow-exec", "true"))
      assert.is_false(api.coerce_option("allow-read-outside", "false"))
      assert.is_nil(api.coerce_option("deadline", nil))
    end)

    it("refuses unknown names and values of the wrong type, naming them", function()
      local v, err = api.coerce_option("dedline", "3")
      assert.is_nil(v)
      assert.matches("unknown option 'dedline'", err)
      v, err = api.coerce_option("deadline", "-1")
      assert.is_nil(v)
      assert.matches("non%-negative number", err)
      v, err = api.coerce_option("allow-exec", "perhaps")
      assert.is_nil(v)
      assert.matches("true or false", err)
    end)
  end)

  describe("load", function()
    it("gives scripts the embedder's functions and values as atom.app", function()
      write(dir .. "/release.lua", SCRIPT)
      local asked
      local rel, err = api.load(dir .. "/release.lua", { app = {
        team = "payments",
        image_tag = function(name) asked = name; return "registry/" .. name .. ":7" end,
      } })
      assert.is_nil(err)
      assert.equals("shop-payments", rel.name)
      assert.equals("web", asked)
      assert.equals("registry/web:7", rel.objects[1].object.data.image)
    end)

    it("reports an error raised by a host function with its message", function()
      write(dir .. "/release.lua", SCRIPT)
      local rel, err = api.load(dir .. "/release.lua", { app = {
        team = "payments",
        image_tag = function() error("no build for web", 0) end,
      } })
      assert.is_nil(rel)
      assert.matches("no build for web", err.message)
      assert.is_string(err.kind)
    end)

    it("refuses app names that are not identifiers and values that are neither functions nor strings", function()
      local rel, err = api.load(dir .. "/release.lua", { app = { ["image-tag"] = function() end } })
      assert.is_nil(rel)
      assert.equals("invalid", err.kind)
      assert.matches("identifiers", err.message)
      rel, err = api.load(dir .. "/release.lua", { app = { n = 3 } })
      assert.is_nil(rel)
      assert.matches("atom.app.n must be a function or a string", err.message)
    end)

    it("refuses unknown options before touching anything", function()
      local rel, err = api.load(dir .. "/missing.lua", { options = { bogus = "1" } })
      assert.is_nil(rel)
      assert.equals("invalid", err.kind)
      assert.matches("bogus", err.message)
    end)

    it("names a script that is not there", function()
      local rel, err = api.load(dir .. "/missing.lua", {})
      assert.is_nil(rel)
      assert.matches("missing%.lua", err.message)
    end)
  end)

  describe("load_string", function()
    it("loads text as if it were a script in dir, leaving nothing behind", function()
      write(dir .. "/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\n")
      local text = 'local atom = require "atom"\n'
        .. 'return { name = "texty", namespace = "default", objects = { atom.yaml("cm.yaml") } }\n'
      local rel, err = api.load_string(text, dir, "texty.lua", {})
      assert.is_nil(err)
      assert.equals("texty", rel.name)
      assert.equals("from-yaml", rel.objects[1].object.metadata.name)
      assert.equals("cm.yaml\n", list(dir))
    end)

    it("reports invalid text with the kind the C library maps to ATOM_EINVAL", function()
      local rel, err = api.load_string("return { name = 'Not_A_Label', objects = {} }", dir, "bad.lua", {})
      assert.is_nil(rel)
      assert.equals("invalid", err.kind)
      assert.equals("", list(dir))
    end)
  end)

  describe("operations on a cluster", function()
    it("say which cluster could not be reached instead of raising", function()
      write(dir .. "/kubeconfig", "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
      local res, err = api.status("shop", { kubeconfig = dir .. "/kubeconfig" })
      assert.is_nil(res)
      assert.is_string(err.kind)
      assert.is_string(err.message)
      assert.is_true(#err.message > 0)
    end)

    it("stage an in-memory kubeconfig and remove it afterwards", function()
      local real_tmpname, staged = os.tmpname, {}
      os.tmpname = function()
        local p = real_tmpname()
        staged[#staged + 1] = p
        return p
      end
      local ok, res, err = pcall(api.history, "shop", { kubeconfig_data = "apiVersion: v1\nkind: Config\n" })
      os.tmpname = real_tmpname
      assert.is_true(ok)
      assert.is_nil(res)
      assert.is_string(err.message)
      assert.equals(1, #staged)
      assert.is_nil(io.open(staged[1], "r"))
    end)
  end)
end)
