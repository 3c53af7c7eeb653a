/*
 * bindings.h — the C modules and embedded Lua sources a host preloads.
 *
 * Each luaopen_atom_* lives in its own l_<ns>.c (one Lua namespace per
 * file). lh_native_modules is the list lua_host.c preloads; add a line there
 * when you add a binding. lh_embedded_modules is generated at build time
 * from lua/ (see cmake/embed_lua.cmake); its strings are static data.
 */
#ifndef ATOM_RUNTIME_BINDINGS_H
#define ATOM_RUNTIME_BINDINGS_H

#include <stddef.h>

typedef struct lua_State lua_State;

typedef struct lh_native_module {
    const char *name;              /* require name, e.g. "atom.core" */
    int (*open)(lua_State *L);
} lh_native_module;

typedef struct lh_embedded_module {
    const char *name;              /* "atom.readiness.pod" */
    const char *chunkname;         /* "@lua/atom/readiness/pod.lua" */
    const char *source;
    size_t length;
} lh_embedded_module;

extern const lh_native_module lh_native_modules[];   /* NULL-terminated */
extern const lh_embedded_module lh_embedded_modules[]; /* NULL-terminated */

int luaopen_cjson(lua_State *L);
int luaopen_atom_host(lua_State *L);
int luaopen_atom_core(lua_State *L);
int luaopen_atom_loop(lua_State *L);
int luaopen_atom_fsm(lua_State *L);
int luaopen_atom_http(lua_State *L);
int luaopen_atom_proc(lua_State *L);

#endif
