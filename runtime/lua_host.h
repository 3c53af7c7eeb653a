/*
 * lua_host.h — the one place where C calls Lua.
 *
 * An lh_host owns one lua_State, its allocator (with a heap ceiling) and its
 * budgets. Everything that runs Lua goes through lh_pcall, which installs a
 * traceback message handler, so a Lua error comes back as ATOM_ELUA with the
 * file, line and traceback in the caller's atom_error and never longjmps
 * through C frames that own memory.
 *
 * Ownership: lh_new returns a host the caller frees with lh_free. The
 * lua_State returned by lh_state belongs to the host; callers may push and
 * pop on it but must not close it. Binding files (l_*.c) receive the state
 * through their luaopen_ functions and never see lh_host.
 */
#ifndef ATOM_RUNTIME_LUA_HOST_H
#define ATOM_RUNTIME_LUA_HOST_H

#include <stddef.h>

#include "error.h"

typedef struct lua_State lua_State;
typedef struct lh_host lh_host;

/* Default ceiling of the whole Lua heap; a script can lower it per call. */
#define LH_DEFAULT_HEAP_MAX ((size_t)2 << 30)

/* Creates a state with the standard libraries, cjson, the C modules
 * (atom.core, atom.host, ...) and every embedded Lua module under lua/ preloaded. */
lh_host *lh_new(atom_error *err);

/* Frees the host and its state; lh_free(NULL) is a no-op. */
void lh_free(lh_host *host);

lua_State *lh_state(lh_host *host);

/* Like lua_pcall: the function and nargs arguments are on the stack. On
 * failure pops them, fills err (code ATOM_ELUA, ATOM_ENOMEM or ATOM_EBUDGET,
 * message with traceback) and returns that code; the stack is as it was
 * below the function. */
int lh_pcall(lh_host *host, int nargs, int nresults, atom_error *err);

/* lh_pcall for a state the caller owns (plain lua5.4 loading atom's C
 * modules has no lh_host): same traceback handler, same contract. */
int lh_pcall_on(lua_State *L, int nargs, int nresults, atom_error *err);

/* Pushes require(name) or fills err. */
int lh_require(lh_host *host, const char *name, atom_error *err);

/* Bytes the Lua heap uses now. */
size_t lh_heap_used(const lh_host *host);

/* Sets the ceiling of the whole heap (0 = LH_DEFAULT_HEAP_MAX). */
void lh_set_heap_max(lh_host *host, size_t bytes);

/* Opens the C modules preloaded into every host (defined in lua_host.c);
 * also used by luaopen_atom_core for plain lua5.4. */
void lh_preload_modules(lua_State *L);

#endif
