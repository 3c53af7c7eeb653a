-- run.lua — the embed example in plain Lua 5.4, through the `atom` module
-- (luarocks --lua-version 5.4 make rockspec/atom-scm-1.rockspec):
--   lua5.4 run.lua KUBECONFIG SCRIPT TAG [DEADLINE]
-- Same host function, same progress lines, same exit codes as embed.c.
local atom = require "atom"

local kubeconfig, script, tag, deadline = arg[1], arg[2], arg[3], arg[4]
if not (kubeconfig and script and tag) then
  io.stderr:write("usage: lua5.4 run.lua KUBECONFIG SCRIPT TAG [DEADLINE]\n")
  os.exit(2)
end

local calls = 0
local result, err = atom.run(script, {
  kubeconfig = kubeconfig,
  options = { deadline = deadline },
  app = {
    deployer = "embed-example-lua",
    image_tag = function(app)
      if type(app) ~= "string" or app == "" then error("image_tag(app): app must be a non-empty string", 2) end
      calls = calls + 1
      return "registry.example.com/shop/" .. app .. ":" .. tag
    end,
  },
  progress = function(ev)
    if ev.kind == "transition" then
      print(string.format("transition %s v%s: %s -> %s (%s)", ev.release, tostring(ev.version),
        ev.from == "" and "(none)" or ev.from, ev.to, ev.reason))
    else
      print(string.format("not ready %s: %s", ev.object, ev.message))
    end
  end,
  log = function(_, line) io.stderr:write(line, "\n") end,
})

if not result then
  io.stderr:write("run.lua: ", err.kind, ": ", err.message, "\n")
  os.exit(({ busy = 5, invalid = 2 })[err.kind] or 1)
end
print(string.format("final %s v%s: %s (previous good version %s; image_tag called %d time%s)",
  result.name, tostring(result.version), result.state, tostring(result.previous), calls,
  calls == 1 and "" or "s"))
os.exit(({ Running = 0, Reverted = 3, Failure = 4 })[result.state] or 1)
