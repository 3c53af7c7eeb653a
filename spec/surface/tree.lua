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

-- Folders made for one describe block, removed together by its teardown:
--   local trees = tree.scope(); teardown(trees.remove_all)
--   trees.make(files) -> dir;  trees.load(files, opts) -> release, err, dir (script.load of
--   dir/release.lua).
function tree.scope()
  local dirs = {}
  local scope = {}
  function scope.make(files)
    local dir = tree.make(files)
    dirs[#dirs + 1] = dir
    return dir
  end
  function scope.load(files, opts)
    local dir = scope.make(files)
    local r, err = require("atom.release.script").load(dir .. "/release.lua", opts)
    return r, err, dir
  end
  function scope.remove_all()
    for _, d in ipairs(dirs) do tree.remove(d) end
  end
  return scope
end

return tree
