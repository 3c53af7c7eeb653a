/*
 * l_fsm.c — Lua module atom.fsm: the state machine's one table, shared with
 * Lua so that the engine, the CLI and specs never keep a copy of it.
 *   fsm.states            the nine state names, in the design's order
 *   fsm.allowed(from, to) true when the table allows from => to ("" = no version yet)
 *   fsm.terminal(s)       true for Running, Reverted, Failure
 *   fsm.drive(engine)     runs the C driver (fsm.h) on an engine table;
 *                         -> final state name | nil, message, atom status name
 * Nothing here keeps references to Lua values between calls.
 */
#include <lauxlib.h>
#include <lua.h>

#include "bindings.h"
#include "fsm.h"

static fsm_state l_fsm_check(lua_State *L, int idx)
{
    fsm_state s;
    atom_error err;
    if (fsm_state_parse(luaL_checkstring(L, idx), &s, &err) != ATOM_OK)
        luaL_argerror(L, idx, err.message);
    return s;
}

static int l_fsm_allowed(lua_State *L)
{
    fsm_state from = l_fsm_check(L, 1), to = l_fsm_check(L, 2);
    lua_pushboolean(L, fsm_allowed(from, to));
    return 1;
}

static int l_fsm_terminal(lua_State *L)
{
    lua_pushboolean(L, fsm_terminal(l_fsm_check(L, 1)));
    return 1;
}

static int l_fsm_traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL && luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
        msg = lua_tostring(L, -1);
    luaL_traceback(L, L, msg ? msg : "(error object is not a string)", 1);
    return 1;
}

/* Protected call through Lua's own xpcall (lua_host.c stays the only
 * caller of lua_pcall), with the same contract as lh_pcall. */
static int l_fsm_pcall(void *ud, lua_State *L, int nargs, int nresults, atom_error *err)
{
    (void)ud;
    int fn = lua_gettop(L) - nargs;
    lua_getglobal(L, "xpcall");
    lua_insert(L, fn);
    lua_pushcfunction(L, l_fsm_traceback);
    lua_insert(L, fn + 2);
    lua_call(L, nargs + 2, LUA_MULTRET);
    if (!lua_toboolean(L, fn)) {
        atom_error_set(err, ATOM_ELUA, "%s", lua_isstring(L, fn + 1) ? lua_tostring(L, fn + 1) : "?");
        lua_settop(L, fn - 1);
        return ATOM_ELUA;
    }
    lua_remove(L, fn);
    lua_settop(L, fn - 1 + nresults);
    return ATOM_OK;
}

static int l_fsm_drive(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    fsm_state final;
    atom_error err;
    atom_error_clear(&err);
    if (fsm_drive_state(L, l_fsm_pcall, NULL, 1, &final, &err) != ATOM_OK) {
        luaL_pushfail(L);
        lua_pushstring(L, err.message);
        lua_pushstring(L, atom_status_name(err.code));
        return 3;
    }
    lua_pushstring(L, fsm_state_name(final));
    return 1;
}

int luaopen_atom_fsm(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"allowed", l_fsm_allowed},
        {"terminal", l_fsm_terminal},
        {"drive", l_fsm_drive},
        {NULL, NULL},
    };
    luaL_newlib(L, fns);
    lua_createtable(L, FSM_STATE_COUNT - 1, 0);
    for (int i = FSM_PENDING; i < FSM_STATE_COUNT; i++) {
        lua_pushstring(L, fsm_state_name((fsm_state)i));
        lua_rawseti(L, -2, i);
    }
    lua_setfield(L, -2, "states");
    return 1;
}
