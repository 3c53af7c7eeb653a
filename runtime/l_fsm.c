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

/* The driver's protected calls use the host's message handler, so an error
 * in the engine carries the same traceback as every other Lua error. */
static int l_fsm_pcall(void *ud, lua_State *L, int nargs, int nresults, atom_error *err)
{
    (void)ud;
    return lh_pcall_on(L, nargs, nresults, err);
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
