-- Embedding (issue #7), end to end: install into a temporary prefix, build the C
-- example out of tree with only pkg-config and again with find_package(atom), run it
-- against `atom sim`, install the Lua module with luarocks into a temporary tree and
-- run the Lua example; the release must reach Running (and Reverted when its image
-- never becomes ready), as the cluster's own record says.
--
-- Needs a configured and built tree: ATOM_BIN (set by ctest) or ATOM_BUILD_DIR
-- (default build-embed, then build) names it.
local SRC = os.getenv("ATOM_SOURCE_DIR") or "."

local helper = require "helpers.sim"
local sh_quote = helper.quote

-- Runs a shell command; -> exit code, stdout+stderr
local function run(cmd)
  local p = assert(io.popen("(" .. cmd .. ") 2>&1; echo \"__rc=$?\""))
  local out = p:read("a")
  p:close()
  local rc = tonumber(out:match("__rc=(%d+)%s*$"))
  return rc, (out:gsub("__rc=%d+%s*$", ""))
end

local function must(cmd)
  local rc, out = run(cmd)
  assert(rc == 0, "command failed (" .. tostring(rc) .. "): " .. cmd .. "\n" .. out)
  return out
end

local function exists(path)
  local f = io.open(path, "r")
  if f then f:close() return true end
  return false
end

local function build_dir()
  local bin = os.getenv("ATOM_BIN")
  if bin and bin ~= "" then return (bin:gsub("/[^/]*$", "")) end
  local dir = os.getenv("ATOM_BUILD_DIR")
  if dir and dir ~= "" then return dir end
  for _, d in ipairs({ SRC .. "/build-embed", SRC .. "/build" }) do
    if exists(d .. "/CMakeCache.txt") then return d end
  end
  error("no build tree: set ATOM_BIN or ATOM_BUILD_DIR")
end

local sleep = helper.sleep

describe("embedding atom #kubectl", function()
  local tmp, prefix, build, kubeconfig, sim_pid, pc_env

  setup(function()
    tmp = must("mktemp -d /tmp/atom-embed-spec-XXXXXX"):gsub("%s+$", "")
    prefix = tmp .. "/prefix"
    build = build_dir()
    must("cmake --install " .. sh_quote(build) .. " --prefix " .. sh_quote(prefix))
    pc_env = "PKG_CONFIG_PATH=" .. sh_quote(prefix .. "/lib/pkgconfig")

    kubeconfig = tmp .. "/sim.kubeconfig"
    sim_pid = must(sh_quote(prefix .. "/bin/atom") .. " sim --port 0 --ready-after 0.1 --kubeconfig "
      .. sh_quote(kubeconfig) .. " >" .. sh_quote(tmp .. "/sim.log") .. " 2>&1 & echo $!"):match("%d+")
    for _ = 1, 100 do
      if exists(kubeconfig) then break end
      sleep(0.1)
    end
    assert(exists(kubeconfig), "atom sim did not write its kubeconfig")
  end)

  teardown(function()
    if sim_pid then os.execute("kill " .. sim_pid .. " 2>/dev/null") end
    if tmp and tmp:match("^/tmp/atom%-embed%-spec%-") then os.execute("rm -rf " .. sh_quote(tmp)) end
  end)

  local function recorded_state(release, ns)
    return must("kubectl --kubeconfig " .. sh_quote(kubeconfig) .. " get atoms.atom.dev " .. release
      .. " -n " .. ns .. " -o jsonpath='{.status.state}'"):gsub("%s+$", "")
  end

  local function deployed_image(deployment, ns)
    local image = must("kubectl --kubeconfig " .. sh_quote(kubeconfig) .. " get deployment " .. deployment
      .. " -n " .. ns .. " -o jsonpath='{.spec.template.spec.containers[0].image}'")
    return (image:gsub("%s+$", ""))
  end

  it("installs the binary, both libraries, the header, atom.pc, the CMake package, Lua files and the man page", function()
    for _, f in ipairs({ "bin/atom", "lib/libatom.a", "lib/libatom.so", "include/atom.h",
                         "lib/pkgconfig/atom.pc", "lib/cmake/atom/atomConfig.cmake",
                         "lib/cmake/atom/atomConfigVersion.cmake", "lib/cmake/atom/atomTargets.cmake",
                         "share/lua/5.4/atom/api.lua", "share/lua/5.4/atom/release/engine.lua",
                         "lib/lua/5.4/atom/core.so", "share/man/man1/atom.1" }) do
      assert.is_true(exists(prefix .. "/" .. f), f .. " is not installed")
    end
    assert.is_false(exists(prefix .. "/share/lua/5.4/atom/readiness/pod_spec.lua"))
    local soname = must("objdump -p " .. sh_quote(prefix .. "/lib/libatom.so") .. " | grep SONAME")
    assert.matches("libatom%.so%.%d+", soname)
    local flags = must(pc_env .. " pkg-config --cflags --libs atom")
    assert.matches("%-latom", flags)
    assert.matches("%-I" .. prefix:gsub("%p", "%%%0") .. "/lib/pkgconfig/%.%./%.%./include", flags)
  end)

  it("exports only atom_ symbols from libatom.so", function()
    local out = must("nm -D --defined-only " .. sh_quote(prefix .. "/lib/libatom.so"))
    local count = 0
    for line in out:gmatch("[^\n]+") do
      local name = line:match("(%S+)$")
      assert.matches("^atom_", name)
      count = count + 1
    end
    assert.is_true(count > 20)
    assert.matches(" T atom_release_run\n", out)
  end)

  it("builds the C example with pkg-config only and runs a release to Running", function()
    local dir = tmp .. "/c-pkgconfig"
    must("mkdir -p " .. dir .. " && cp " .. SRC .. "/examples/embed/embed.c " .. SRC .. "/examples/embed/release.lua " .. dir)
    must(pc_env .. " make -C " .. dir .. " -f " .. sh_quote(SRC .. "/examples/embed/Makefile"))
    local rc, out = run("cd " .. dir .. " && LD_LIBRARY_PATH=" .. sh_quote(prefix .. "/lib")
      .. " ./embed --kubeconfig " .. sh_quote(kubeconfig) .. " release.lua 1.0.0 2>/dev/null")
    assert.equals(0, rc, out)
    assert.matches("transition embed%-demo v1: %(none%) %-> Pending", out)
    assert.matches("transition embed%-demo v1: Pending %-> Updating", out)
    assert.matches("transition embed%-demo v1: Updating %-> Running", out)
    assert.matches("final embed%-demo v1: Running .*image_tag called 1 time", out)
    assert.equals("Running", recorded_state("embed-demo", "embed-demo"))
    -- The host function's answer is what the cluster runs.
    assert.equals("registry.example.com/shop/web:1.0.0", deployed_image("web", "embed-demo"))
  end)

  it("builds the C example with find_package(atom) and rolls back a version that never gets ready", function()
    local bdir = tmp .. "/c-cmake"
    must("cmake -S " .. sh_quote(SRC .. "/examples/embed") .. " -B " .. bdir
      .. " -DCMAKE_PREFIX_PATH=" .. sh_quote(prefix))
    must("cmake --build " .. bdir)
    local rc, out = run("cd " .. sh_quote(SRC .. "/examples/embed") .. " && " .. bdir
      .. "/embed --kubeconfig " .. sh_quote(kubeconfig) .. " --deadline 2 release.lua does-not-exist 2>/dev/null")
    assert.equals(3, rc, out)
    assert.matches("v2: Updating %-> Deadline", out)
    assert.matches("v2: Deadline %-> Rollback", out)
    assert.matches("v2: Rollback %-> Reverted", out)
    assert.matches("not ready Deployment/embed%-demo/web: ", out)
    assert.equals("Reverted", recorded_state("embed-demo", "embed-demo"))
    assert.equals("registry.example.com/shop/web:1.0.0", deployed_image("web", "embed-demo"))
  end)

  it("drives two releases at once from two runtime handles in one process", function()
    local test_api = build .. "/test_api"
    assert.is_true(exists(test_api), "build test_api first")
    local rc, out = run("ATOM_TEST_KUBECONFIG=" .. sh_quote(kubeconfig) .. " " .. sh_quote(test_api))
    assert.equals(0, rc, out)
    assert.matches("two%-alpha Running, two%-beta Running", out)
    assert.equals("Running", recorded_state("two-alpha", "two-alpha"))
    assert.equals("Running", recorded_state("two-beta", "two-beta"))
  end)

  it("installs the Lua module with luarocks make; plain lua5.4 runs to Running, then to Reverted", function()
    local tree = tmp .. "/rocks"
    must("cd " .. sh_quote(SRC) .. " && luarocks --lua-version 5.4 make --tree " .. sh_quote(tree)
      .. " rockspec/atom-scm-1.rockspec")
    local env = "LUA_PATH=" .. sh_quote(tree .. "/share/lua/5.4/?.lua;" .. tree .. "/share/lua/5.4/?/init.lua;;")
      .. " LUA_CPATH=" .. sh_quote(tree .. "/lib/lua/5.4/?.so;;")
    -- The module found is the installed one, not the checkout's.
    local where = must("cd /tmp && " .. env .. " lua5.4 -e 'print(package.searchpath(\"atom\", package.path))'")
    assert.matches("^" .. tree:gsub("%p", "%%%0"), where)

    local script = sh_quote(SRC .. "/examples/embed/release.lua")
    local runlua = sh_quote(SRC .. "/examples/embed/run.lua")
    local rc, out = run("cd /tmp && " .. env .. " lua5.4 " .. runlua .. " " .. sh_quote(kubeconfig)
      .. " " .. script .. " 2.0.0 2>/dev/null")
    assert.equals(0, rc, out)
    assert.matches("v3: Reverted %-> Pending", out)
    assert.matches("v3: Updating %-> Running", out)
    assert.matches("final embed%-demo v3: Running", out)
    assert.equals("Running", recorded_state("embed-demo", "embed-demo"))

    rc, out = run("cd /tmp && " .. env .. " lua5.4 " .. runlua .. " " .. sh_quote(kubeconfig)
      .. " " .. script .. " does-not-exist 2 2>/dev/null")
    assert.equals(3, rc, out)
    assert.matches("v4: Rollback %-> Reverted %(version 3 is back", out)
    assert.equals("Reverted", recorded_state("embed-demo", "embed-demo"))

    -- status and history through the module agree with the record.
    local check = [[
      local atom = require "atom"
      local o = { kubeconfig = arg[1], namespace = "embed-demo" }
      local s = assert(atom.status("embed-demo", o))
      local h = assert(atom.history("embed-demo", o))
      local states = {}
      for _, v in ipairs(h) do states[#states + 1] = v.version .. "=" .. v.state end
      print(s.state, s.version, s.previous, table.concat(states, ","))
    ]]
    local f = assert(io.open(tmp .. "/check.lua", "w"))
    f:write(check)
    f:close()
    out = must("cd /tmp && " .. env .. " lua5.4 " .. sh_quote(tmp .. "/check.lua") .. " " .. sh_quote(kubeconfig))
    assert.equals("Reverted\t4\t3\t1=Running,2=Reverted,3=Running,4=Reverted", out:gsub("%s+$", ""))
  end)
end)
