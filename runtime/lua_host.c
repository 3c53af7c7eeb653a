/*
 * lua_host.c — creates Lua states, preloads atom's modules, and is the only
 * file that calls lua_pcall. Also provides the Lua module `atom.host`, which
 * lets trusted Lua (the release engine) call untrusted functions (user
 * hooks, checks, policies) under an instruction, time and heap budget.
 */
#include "lua_host.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bindings.h"
#include "clock.h"

#if LUA_VERSION_NUM != 504
#error "atom is written for Lua 5.4"
#endif

struct lh_host {
    lua_State *L;
    size_t used;      /* bytes the state holds now */
    size_t heap_max;  /* ceiling of the whole heap */
    size_t call_cap;  /* ceiling while a budgeted call runs; 0 = none */
};

/* Refusing past the ceiling makes Lua raise LUA_ERRMEM, which a budgeted
 * call reports as a memory error instead of letting the process swap. */
static void *lh_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    lh_host *host = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        host->used -= old;
        return NULL;
    }
    if (nsize > old) {
        size_t next = host->used + (nsize - old);
        size_t cap = host->heap_max;
        if (host->call_cap && host->call_cap < cap)
            cap = host->call_cap;
        if (next > cap)
            return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (p)
        host->used = host->used - old + nsize;
    return p;
}

static int lh_panic(lua_State *L)
{
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "atom: unprotected Lua error: %s\n", msg ? msg : "?");
    return 0; /* Lua aborts after this */
}

/* Message handler: turns any error value into a string with a traceback. */
static int lh_traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            msg = lua_tostring(L, -1);
        else
            msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* ---- budgets (module atom.host) ------------------------------------- */

#define LH_BUDGET_KEY "atom.host.budget"
#define LH_HOOK_EVERY 1000

typedef struct lh_budget {
    long long instructions_left; /* < 0: unlimited */
    double deadline;             /* monotonic seconds; 0 = none */
    size_t heap_limit;           /* Lua heap (KiB via lua_gc) ceiling; 0 = none */
    const char *exceeded;        /* which budget ran out, or NULL */
    int active;
} lh_budget;

static lh_budget *lh_budget_get(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, LH_BUDGET_KEY);
    lh_budget *b = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return b;
}

static void lh_budget_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lh_budget *b = lh_budget_get(L);
    if (b == NULL || !b->active)
        return;
    if (b->exceeded == NULL) {
        if (b->instructions_left >= 0) {
            b->instructions_left -= LH_HOOK_EVERY;
            if (b->instructions_left < 0)
                b->exceeded = "instruction";
        }
        if (b->deadline > 0 && atom_monotonic() > b->deadline)
            b->exceeded = "time";
        if (b->heap_limit && (size_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024u > b->heap_limit)
            b->exceeded = "memory";
        if (b->exceeded == NULL)
            return;
        /* From now on fire on every line too, so a pcall inside the script
         * cannot swallow the kill and carry on. */
        lua_sethook(L, lh_budget_hook, LUA_MASKCOUNT | LUA_MASKLINE, 1);
    }
    luaL_error(L, "%s budget exceeded", b->exceeded);
}

/* host.call(limits, fn, ...) -> true, results... | false, message, kind
 * limits: { instructions = n, seconds = s, heap = bytes } (each optional).
 * kind is "error", "instruction", "time" or "memory". */
static int l_host_call(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    int nargs = lua_gettop(L) - 2;

    lh_budget *b = lh_budget_get(L);
    if (b == NULL)
        return luaL_error(L, "atom.host: budget state missing");
    lh_budget saved = *b;
    lua_Hook saved_hook = lua_gethook(L);
    int saved_mask = lua_gethookmask(L), saved_count = lua_gethookcount(L);

    lua_getfield(L, 1, "instructions");
    long long instructions = (long long)luaL_optinteger(L, -1, -1);
    lua_getfield(L, 1, "seconds");
    double seconds = luaL_optnumber(L, -1, 0);
    lua_getfield(L, 1, "heap");
    lua_Integer heap = luaL_optinteger(L, -1, 0);
    lua_pop(L, 3);

    b->active = 1;
    b->exceeded = NULL;
    b->instructions_left = instructions;
    b->deadline = seconds > 0 ? atom_monotonic() + seconds : 0;
    b->heap_limit = heap > 0 ? (size_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024u + (size_t)heap : 0;
    /* Nested budgets never loosen an outer one. */
    if (saved.active) {
        if (saved.instructions_left >= 0 &&
            (b->instructions_left < 0 || saved.instructions_left < b->instructions_left))
            b->instructions_left = saved.instructions_left;
        if (saved.deadline > 0 && (b->deadline == 0 || saved.deadline < b->deadline))
            b->deadline = saved.deadline;
        if (saved.heap_limit && (b->heap_limit == 0 || saved.heap_limit < b->heap_limit))
            b->heap_limit = saved.heap_limit;
    }

    void *ud = NULL;
    lh_host *host = lua_getallocf(L, &ud) == lh_alloc ? ud : NULL;
    size_t saved_cap = host ? host->call_cap : 0;
    if (host && b->heap_limit)
        host->call_cap = b->heap_limit;

    lua_sethook(L, lh_budget_hook, LUA_MASKCOUNT, LH_HOOK_EVERY);
    lua_pushcfunction(L, lh_traceback);
    lua_insert(L, 2);
    int base = 2;
    int rc = lua_pcall(L, nargs, LUA_MULTRET, base);
    const char *exceeded = b->exceeded;

    lua_sethook(L, saved_hook, saved_mask, saved_count);
    if (host)
        host->call_cap = saved_cap;
    *b = saved;
    if (saved.instructions_left >= 0 && instructions >= 0 && b->active)
        b->instructions_left = saved.instructions_left; /* outer count continues */

    if (rc == LUA_OK) {
        int nres = lua_gettop(L) - base;
        lua_pushboolean(L, 1);
        lua_insert(L, base + 1);
        return nres + 1;
    }
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    if (rc == LUA_ERRMEM) {
        lua_pop(L, 1);
        lua_pushstring(L, "not enough memory: the Lua heap ceiling was reached");
        lua_pushstring(L, "memory");
    } else {
        lua_pushstring(L, exceeded ? exceeded : "error");
    }
    return 3;
}

/* host.heap() -> bytes in use */
static int l_host_heap(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)lua_gc(L, LUA_GCCOUNT, 0) * 1024 + lua_gc(L, LUA_GCCOUNTB, 0));
    return 1;
}

/* host.traceback(msg) — the message handler, for Lua code that pcalls. */
static int l_host_traceback(lua_State *L)
{
    return lh_traceback(L);
}

int luaopen_atom_host(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, LH_BUDGET_KEY);
    if (lua_isnil(L, -1)) {
        lh_budget *b = lua_newuserdatauv(L, sizeof *b, 0);
        memset(b, 0, sizeof *b);
        b->instructions_left = -1;
        lua_setfield(L, LUA_REGISTRYINDEX, LH_BUDGET_KEY);
    }
    lua_pop(L, 1);
    static const luaL_Reg fns[] = {
        {"call", l_host_call},
        {"heap", l_host_heap},
        {"traceback", l_host_traceback},
        {NULL, NULL},
    };
    luaL_newlib(L, fns);
    return 1;
}

/* ---- preloading ------------------------------------------------------ */

static int lh_load_embedded(lua_State *L)
{
    const lh_embedded_module *m = lua_touserdata(L, lua_upvalueindex(1));
    if (luaL_loadbufferx(L, m->source, m->length, m->chunkname, "t") != LUA_OK)
        return lua_error(L);
    lua_pushstring(L, m->name);
    lua_call(L, 1, 1);
    return 1;
}

void lh_preload_modules(lua_State *L)
{
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    for (const lh_native_module *n = lh_native_modules; n->name; n++) {
        lua_pushcfunction(L, n->open);
        lua_setfield(L, -2, n->name);
    }
    /* ATOM_LUA_DIR lets a developer run the Lua half from a checkout
     * without rebuilding the binary. */
    const char *dir = getenv("ATOM_LUA_DIR");
    if (dir && *dir) {
        lua_getglobal(L, "package");
        lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;", dir, dir);
        lua_getfield(L, -2, "path");
        lua_concat(L, 2);
        lua_setfield(L, -2, "path");
        lua_pop(L, 1);
    } else {
        for (const lh_embedded_module *m = lh_embedded_modules; m->name; m++) {
            lua_pushlightuserdata(L, (void *)m);
            lua_pushcclosure(L, lh_load_embedded, 1);
            lua_setfield(L, -2, m->name);
        }
    }
    lua_pop(L, 1);
}

/* ---- the host -------------------------------------------------------- */

lh_host *lh_new(atom_error *err)
{
    lh_host *host = calloc(1, sizeof *host);
    if (host == NULL) {
        atom_error_set(err, ATOM_ENOMEM, "out of memory creating the Lua host");
        return NULL;
    }
    host->heap_max = LH_DEFAULT_HEAP_MAX;
    host->L = lua_newstate(lh_alloc, host);
    if (host->L == NULL) {
        free(host);
        atom_error_set(err, ATOM_ENOMEM, "out of memory creating a Lua state");
        return NULL;
    }
    lua_atpanic(host->L, lh_panic);
    /* Incremental, collecting when the heap has grown by half: a release
     * decodes thousands of short-lived API objects that live just long
     * enough for generational mode to promote them, and peak memory then
     * waits on a full collection (5,000 objects: 87-89 MB instead of
     * 102-130 MB, same CPU). A step multiplier of 300 rather than 200 keeps
     * the cycle ahead of a burst of watch events: bench at 5,000 objects,
     * peak RSS median 66 MB [62-69] instead of 82 [66-91], CPU per object
     * unchanged (239 us); 400 and above cost CPU for little more. */
    lua_gc(host->L, LUA_GCINC, 150, 300, 0);
    luaL_openlibs(host->L);
    lh_preload_modules(host->L);
    return host;
}

void lh_free(lh_host *host)
{
    if (host == NULL)
        return;
    lua_close(host->L);
    free(host);
}

lua_State *lh_state(lh_host *host)
{
    return host->L;
}

size_t lh_heap_used(const lh_host *host)
{
    return host->used;
}

void lh_set_heap_max(lh_host *host, size_t bytes)
{
    host->heap_max = bytes ? bytes : LH_DEFAULT_HEAP_MAX;
}

int lh_pcall(lh_host *host, int nargs, int nresults, atom_error *err)
{
    return lh_pcall_on(host->L, nargs, nresults, err);
}

int lh_pcall_on(lua_State *L, int nargs, int nresults, atom_error *err)
{
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, lh_traceback);
    lua_insert(L, base);
    int rc = lua_pcall(L, nargs, nresults, base);
    lua_remove(L, base);
    if (rc == LUA_OK)
        return ATOM_OK;
    const char *msg = lua_tostring(L, -1);
    int code = rc == LUA_ERRMEM ? ATOM_ENOMEM : ATOM_ELUA;
    atom_error_set(err, code, "%s", msg ? msg : "(no message)");
    lua_pop(L, 1);
    return code;
}

int lh_require(lh_host *host, const char *name, atom_error *err)
{
    lua_State *L = host->L;
    lua_getglobal(L, "require");
    lua_pushstring(L, name);
    return lh_pcall(host, 1, 1, err);
}
