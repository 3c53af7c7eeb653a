-- The Lua module `atom` for plain lua5.4: `local atom = require "atom"` then
-- atom.run(script, opts), atom.resume / status / history / cancel / rollback
-- (see lua/atom/api.lua). Built from the same sources as the atom binary and
-- libatom: the Lua half (lua/) and the C modules (atom.core, atom.host,
-- atom.http, atom.proc, atom.fsm, all one core.so).
--
--   luarocks --lua-version 5.4 make rockspec/atom-scm-1.rockspec [--tree DIR]
rockspec_format = "3.0"
package = "atom"
version = "scm-1"
source = {
  url = "git+https://github.com/atom-dev/atom.git",
}
description = {
  summary = "Transactional releases for Kubernetes, from Lua",
  detailed = [[
atom turns a change to a Kubernetes cluster into a transaction: it applies a
release's objects, waits until every one is ready, and puts the previous
version back when readiness does not come. This rock gives plain Lua 5.4 the
same powers as the atom CLI, with the same readiness checks, hooks and
rollback policies.]],
  homepage = "https://github.com/atom-dev/atom",
  license = "Apache-2.0",
}
-- lua-cjson is needed at run time too; distributions ship it (Debian:
-- lua-cjson), so it is not a rock dependency here.
dependencies = {
  "lua >= 5.4, < 5.5",
}
-- The C libraries (libcurl, OpenSSL, libyaml, zlib, libevent) are found by
-- CMake through pkg-config, multiarch paths included.
build = {
  type = "cmake",
  variables = {
    ATOM_LUAROCKS = "ON",
    CMAKE_BUILD_TYPE = "Release",
    CMAKE_INSTALL_PREFIX = "$(PREFIX)",
  },
}
