-- Writes small release folders for the surface specs: tree.make{ ["release.lua"] = text,
-- ["manifests/a.yaml"] = text } -> dir (a fresh folder under the system temp dir).
-- tree.remove(dir) deletes it. Test code only; release scripts never see this.
local tree = {}

local function sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

function tree.make(files)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. sh_quote(dir)))
  for name, text in pairs(files) do
    local sub = name:match("^(.*)/[^/]*$")
    if sub then assert(os.execute("mkdir -p " .. sh_quote(dir .. "/" .. sub))) end
    local f = assert(io.open(dir .. "/" .. name, "wb"))
    f:write(text)
    f:close()
  end
  return dir
end

function tree.remove(dir)
  if dir and dir:match("^/tmp/") then os.execute("rm -rf " .. sh_quote(dir)) end
end

return tree
