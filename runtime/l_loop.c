/*
 * l_loop.c — Lua module atom.loop: clocks, timers and stream writes on the
 * event loop of `atom sim`. See l_loop.h for how the server attaches it.
 *
 *   loop.now() -> monotonic seconds        loop.wall() -> unix seconds
 *   loop.timer(delay, fn) -> handle        handle:cancel() -> was_pending
 *   loop.write(id, data, ...) -> bool      loop.finish(id) -> bool
 *     (the strings are sent in order as one chunk: a watch event's JSON is written
 *      between its envelope's two halves without concatenating a copy in Lua)
 *   loop.flush()    (lets the server send stream output in the middle of a long callback)
 *
 * Without an attached loop (plain lua5.4, or any host other than the sim's),
 * now/wall work and the rest raise an error that says so.
 */
#include "l_loop.h"

#include <event2/event.h>
#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <time.h>

#include "bindings.h"
#include "clock.h"

#define L_TIMER_MT "atom.loop.timer"

/* Its address is the registry key; the byte itself is never written. */
static const char l_loop_key = 0;

void atom_loop_attach(lua_State *L, atom_loop_host *host)
{
    lua_pushlightuserdata(L, host);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &l_loop_key);
}

static atom_loop_host *l_loop_host(lua_State *L)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &l_loop_key);
    atom_loop_host *host = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (host == NULL)
        luaL_error(L, "atom.loop: no event loop here (only inside `atom sim`)");
    return host;
}

static int l_loop_now(lua_State *L)
{
    lua_pushnumber(L, atom_monotonic());
    return 1;
}

static int l_loop_wall(lua_State *L)
{
    lua_pushnumber(L, atom_wall());
    return 1;
}

typedef struct l_timer {
    struct event *ev;
    atom_loop_host *host;
    int self_ref; /* keeps the handle (and so fn) alive while pending */
} l_timer;

static void l_timer_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    l_timer *t = arg;
    lua_State *L = t->host->L;
    atom_loop_host *host = t->host;
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->self_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, t->self_ref);
    t->self_ref = LUA_NOREF;
    /* The handle stays on the stack during the call so the GC cannot free
     * the event under libevent's feet. */
    lua_getiuservalue(L, -1, 1);
    host->call(host->ctx, L, 0);
    lua_pop(L, 1);
}

static int l_loop_timer(lua_State *L)
{
    lua_Number delay = luaL_checknumber(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    atom_loop_host *host = l_loop_host(L);
    if (!(delay >= 0) || delay > 1e9)
        return luaL_argerror(L, 1, "delay must be between 0 and 1e9 seconds");
    l_timer *t = lua_newuserdatauv(L, sizeof *t, 1);
    t->ev = NULL;
    t->host = host;
    t->self_ref = LUA_NOREF;
    luaL_setmetatable(L, L_TIMER_MT);
    lua_pushvalue(L, 2);
    lua_setiuservalue(L, -2, 1);
    t->ev = evtimer_new(host->base, l_timer_fire, t);
    if (t->ev == NULL)
        return luaL_error(L, "atom.loop: cannot create a timer");
    double whole = floor(delay);
    struct timeval tv = {(time_t)whole, (suseconds_t)((delay - whole) * 1e6)};
    if (evtimer_add(t->ev, &tv) != 0)
        return luaL_error(L, "atom.loop: cannot schedule a timer");
    lua_pushvalue(L, -1);
    t->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 1;
}

static int l_timer_cancel(lua_State *L)
{
    l_timer *t = luaL_checkudata(L, 1, L_TIMER_MT);
    int pending = t->self_ref != LUA_NOREF;
    if (pending) {
        evtimer_del(t->ev);
        luaL_unref(L, LUA_REGISTRYINDEX, t->self_ref);
        t->self_ref = LUA_NOREF;
    }
    lua_pushboolean(L, pending);
    return 1;
}

static int l_timer_gc(lua_State *L)
{
    l_timer *t = luaL_checkudata(L, 1, L_TIMER_MT);
    if (t->ev) {
        event_free(t->ev);
        t->ev = NULL;
    }
    return 0;
}

#define L_LOOP_WRITE_MAX 8

static int l_loop_write(lua_State *L)
{
    lua_Integer id = luaL_checkinteger(L, 1);
    int n = lua_gettop(L) - 1;
    if (n < 1)
        return luaL_argerror(L, 2, "string expected, got no value");
    if (n > L_LOOP_WRITE_MAX)
        return luaL_error(L, "atom.loop.write: at most %d pieces", L_LOOP_WRITE_MAX);
    const char *data[L_LOOP_WRITE_MAX];
    size_t len[L_LOOP_WRITE_MAX];
    for (int i = 0; i < n; i++)
        data[i] = luaL_checklstring(L, i + 2, &len[i]);
    atom_loop_host *host = l_loop_host(L);
    /* The strings stay on the stack, so alive, until write returns. */
    lua_pushboolean(L, host->write(host->ctx, (long long)id, data, len, n));
    return 1;
}

static int l_loop_finish(lua_State *L)
{
    lua_Integer id = luaL_checkinteger(L, 1);
    atom_loop_host *host = l_loop_host(L);
    lua_pushboolean(L, host->finish(host->ctx, (long long)id));
    return 1;
}

static int l_loop_flush(lua_State *L)
{
    atom_loop_host *host = l_loop_host(L);
    if (host->flush)
        host->flush(host->ctx);
    return 0;
}

int luaopen_atom_loop(lua_State *L)
{
    static const luaL_Reg timer_methods[] = {
        {"cancel", l_timer_cancel},
        {NULL, NULL},
    };
    if (luaL_newmetatable(L, L_TIMER_MT)) {
        luaL_newlib(L, timer_methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_timer_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    static const luaL_Reg fns[] = {
        {"now", l_loop_now},     {"wall", l_loop_wall},     {"timer", l_loop_timer},
        {"write", l_loop_write}, {"finish", l_loop_finish}, {"flush", l_loop_flush},
        {NULL, NULL},
    };
    luaL_newlib(L, fns);
    return 1;
}
