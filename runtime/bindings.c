/* The C modules every Lua host preloads. One line per binding file. */
#include "bindings.h"

const lh_native_module lh_native_modules[] = {
#ifndef ATOM_LUA_MODULE /* plain lua5.4 brings its own cjson.so */
    {"cjson", luaopen_cjson},
#endif
    {"atom.host", luaopen_atom_host},
    {"atom.core", luaopen_atom_core},
    {"atom.loop", luaopen_atom_loop},
    {"atom.fsm", luaopen_atom_fsm},
    {"atom.http", luaopen_atom_http},
    {"atom.proc", luaopen_atom_proc},
    {NULL, NULL},
};
