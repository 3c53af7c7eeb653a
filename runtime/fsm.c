/* fsm.c — the release state machine's table and driver (see fsm.h). */
#include "fsm.h"

#include <lauxlib.h>
#include <lua.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const fsm_names[FSM_STATE_COUNT] = {
    [FSM_NONE] = "",
    [FSM_PENDING] = "Pending",
    [FSM_UPDATING] = "Updating",
    [FSM_RUNNING] = "Running",
    [FSM_CANCELLED] = "Cancelled",
    [FSM_DEADLINE] = "Deadline",
    [FSM_ERROR] = "Error",
    [FSM_ROLLBACK] = "Rollback",
    [FSM_REVERTED] = "Reverted",
    [FSM_FAILURE] = "Failure",
};

/* DESIGN.md's "leaves to" column, row by row. FSM_NONE is the empty record
 * before a release's first version; it can only start one. */
static const bool fsm_table[FSM_STATE_COUNT][FSM_STATE_COUNT] = {
    [FSM_NONE] = {[FSM_PENDING] = true},
    [FSM_PENDING] = {[FSM_UPDATING] = true, [FSM_ERROR] = true},
    [FSM_UPDATING] = {[FSM_RUNNING] = true, [FSM_DEADLINE] = true, [FSM_ERROR] = true,
                      [FSM_CANCELLED] = true},
    [FSM_RUNNING] = {[FSM_PENDING] = true},
    [FSM_CANCELLED] = {[FSM_ROLLBACK] = true, [FSM_FAILURE] = true},
    [FSM_DEADLINE] = {[FSM_ROLLBACK] = true, [FSM_FAILURE] = true, [FSM_UPDATING] = true},
    [FSM_ERROR] = {[FSM_ROLLBACK] = true, [FSM_FAILURE] = true, [FSM_UPDATING] = true},
    [FSM_ROLLBACK] = {[FSM_REVERTED] = true, [FSM_FAILURE] = true},
    [FSM_REVERTED] = {[FSM_PENDING] = true},
    [FSM_FAILURE] = {[FSM_PENDING] = true},
};

/* A record that keeps conflicting means someone else drives the release;
 * past this many re-reads in a row the driver gives up instead of spinning. */
#define FSM_MAX_CONFLICTS 50

const char *fsm_state_name(fsm_state s)
{
    if ((int)s < 0 || s >= FSM_STATE_COUNT)
        return "?";
    return fsm_names[s];
}

int fsm_state_parse(const char *name, fsm_state *out, atom_error *err)
{
    if (name == NULL)
        name = "";
    for (int i = 0; i < FSM_STATE_COUNT; i++) {
        if (strcmp(fsm_names[i], name) == 0) {
            *out = (fsm_state)i;
            return ATOM_OK;
        }
    }
    return atom_error_set(err, ATOM_EINVAL, "unknown release state '%s'", name);
}

bool fsm_allowed(fsm_state from, fsm_state to)
{
    if ((int)from < 0 || from >= FSM_STATE_COUNT || (int)to < 0 || to >= FSM_STATE_COUNT)
        return false;
    return fsm_table[from][to];
}

bool fsm_terminal(fsm_state s)
{
    return s == FSM_RUNNING || s == FSM_REVERTED || s == FSM_FAILURE;
}

fsm_state fsm_fallback(fsm_state from)
{
    return fsm_allowed(from, FSM_ERROR) ? FSM_ERROR : FSM_FAILURE;
}

/* Reasons are cut at the buffer's end on purpose: a long hook traceback
 * must not stop a transition from being recorded. */
__attribute__((format(printf, 3, 4))) static void fsm_fmt(char *buf, size_t size, const char *fmt,
                                                           ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, size, fmt, ap);
    va_end(ap);
}

/* ---- calling the engine ---------------------------------------------- */

/* Calls engine:<method>(args...) with string arguments; leaves nresults on
 * the stack on success. */
typedef struct fsm_caller {
    lua_State *L;
    fsm_pcall_fn pcall;
    void *ud;
} fsm_caller;

static int fsm_call(const fsm_caller *host, int engine, const char *method, int nresults, atom_error *err,
                    int nargs, const char *a, const char *b, const char *c, const char *d)
{
    lua_State *L = host->L;
    if (lua_getfield(L, engine, method) != LUA_TFUNCTION) {
        lua_pop(L, 1);
        return atom_error_set(err, ATOM_ESTATE, "release engine has no method '%s'", method);
    }
    lua_pushvalue(L, engine);
    const char *args[4] = {a, b, c, d};
    for (int i = 0; i < nargs; i++)
        lua_pushstring(L, args[i] ? args[i] : "");
    return host->pcall(host->ud, L, nargs + 1, nresults, err);
}

static int fsm_read_state(const fsm_caller *host, int engine, fsm_state *out, atom_error *err)
{
    lua_State *L = host->L;
    int rc = fsm_call(host, engine, "state", 1, err, 0, NULL, NULL, NULL, NULL);
    if (rc != ATOM_OK)
        return rc;
    const char *name = lua_tostring(L, -1);
    rc = fsm_state_parse(name, out, err);
    lua_pop(L, 1);
    return rc;
}

/* Runs a hook; returns true when it passed, else copies its message. */
static bool fsm_hook(const fsm_caller *host, int engine, const char *phase, fsm_state from, fsm_state to,
                     const char *why, char *msg, size_t msg_size)
{
    lua_State *L = host->L;
    atom_error e;
    atom_error_clear(&e);
    if (fsm_call(host, engine, "hook", 2, &e, 4, phase, fsm_state_name(from), fsm_state_name(to),
                 why) != ATOM_OK) {
        fsm_fmt(msg, msg_size, "%s", e.message);
        return false;
    }
    bool ok = lua_toboolean(L, -2);
    if (!ok)
        fsm_fmt(msg, msg_size, "%s", lua_isstring(L, -1) ? lua_tostring(L, -1) : "hook failed");
    lua_pop(L, 2);
    return ok;
}

/* ---- the driver ------------------------------------------------------- */

static int fsm_lh_pcall(void *ud, lua_State *L, int nargs, int nresults, atom_error *err)
{
    (void)L;
    return lh_pcall(ud, nargs, nresults, err);
}

int fsm_drive(lh_host *host, int engine, fsm_state *final, atom_error *err)
{
    return fsm_drive_state(lh_state(host), fsm_lh_pcall, host, engine, final, err);
}

int fsm_drive_state(lua_State *L, fsm_pcall_fn pcall, void *ud, int engine, fsm_state *final,
                    atom_error *err)
{
    fsm_caller caller = {L, pcall, ud};
    const fsm_caller *host = &caller;
    engine = lua_absindex(L, engine);
    int conflicts = 0;
    /* Reasons are built here and handed to Lua, which copies them. */
    char reason[ATOM_ERROR_MESSAGE_MAX];
    char hookmsg[ATOM_ERROR_MESSAGE_MAX];

    for (;;) {
        fsm_state cur;
        int rc = fsm_read_state(host, engine, &cur, err);
        if (rc != ATOM_OK)
            return rc;

        /* 1. the operation of the current state says where to go */
        fsm_state next = FSM_NONE;
        atom_error e;
        atom_error_clear(&e);
        rc = fsm_call(host, engine, "step", 2, &e, 1, fsm_state_name(cur), NULL, NULL, NULL);
        bool internal = false;
        if (rc != ATOM_OK) {
            fsm_fmt(reason, sizeof reason, "internal error in %s: %s", fsm_state_name(cur),
                     e.message);
            internal = true;
        } else {
            const char *to = lua_tostring(L, -2);
            const char *why = lua_tostring(L, -1);
            fsm_fmt(reason, sizeof reason, "%s", why ? why : "");
            if (to == NULL) {
                lua_pop(L, 2);
                if (fsm_terminal(cur)) {
                    *final = cur;
                    return ATOM_OK;
                }
                fsm_fmt(reason, sizeof reason, "internal error: %s gave no next state",
                         fsm_state_name(cur));
                internal = true;
            } else if (fsm_state_parse(to, &next, NULL) != ATOM_OK || !fsm_allowed(cur, next)) {
                /* Never obeyed: the table is the contract, not the engine. */
                fsm_fmt(hookmsg, sizeof hookmsg,
                         "internal error: %s => %s is not a transition the state machine allows (%s)",
                         fsm_state_name(cur), to, reason);
                fsm_fmt(reason, sizeof reason, "%s", hookmsg);
                internal = true;
                lua_pop(L, 2);
            } else {
                lua_pop(L, 2);
            }
        }
        if (internal) {
            if (cur == FSM_NONE || fsm_terminal(cur))
                return atom_error_set(err, ATOM_ESTATE, "%s", reason);
            next = fsm_fallback(cur);
        }

        /* 2. the target's before-hook may veto the transition */
        if (!fsm_hook(host, engine, "before", cur, next, reason, hookmsg, sizeof hookmsg)) {
            fsm_state alt = fsm_fallback(cur);
            char why[ATOM_ERROR_MESSAGE_MAX];
            fsm_fmt(why, sizeof why, "before hook of %s failed: %s", fsm_state_name(next), hookmsg);
            fsm_fmt(reason, sizeof reason, "%s", why);
            if (alt != next && fsm_allowed(cur, alt)) {
                next = alt;
                /* The fallback's own hook runs too, but cannot redirect again. */
                if (!fsm_hook(host, engine, "before", cur, next, reason, hookmsg, sizeof hookmsg)) {
                    size_t len = strlen(reason);
                    fsm_fmt(reason + len, sizeof reason - len, "; before hook of %s failed: %s",
                             fsm_state_name(next), hookmsg);
                }
            } else if (!fsm_allowed(cur, next)) {
                return atom_error_set(err, ATOM_ESTATE, "%s", reason);
            }
        }

        /* 3. the record first: a transition exists once it is written */
        rc = fsm_call(host, engine, "transition", 2, &e, 3, fsm_state_name(cur),
                      fsm_state_name(next), reason, NULL);
        if (rc != ATOM_OK)
            return atom_error_set(err, rc, "%s", e.message);
        const char *res = lua_tostring(L, -2);
        if (res == NULL) {
            atom_error_set(err, ATOM_EKUBE, "recording %s => %s: %s", fsm_state_name(cur),
                           fsm_state_name(next),
                           lua_isstring(L, -1) ? lua_tostring(L, -1) : "unknown error");
            lua_pop(L, 2);
            return err ? err->code : ATOM_EKUBE;
        }
        bool conflict = strcmp(res, "conflict") == 0;
        lua_pop(L, 2);
        if (conflict) {
            if (++conflicts > FSM_MAX_CONFLICTS)
                return atom_error_set(err, ATOM_EBUSY,
                                      "the release record keeps changing under this run; "
                                      "another process is driving it");
            continue; /* re-read and re-decide, never overwrite */
        }
        conflicts = 0;

        /* 4. tell the world, then the after-hook (reported, not fatal) */
        rc = fsm_call(host, engine, "announce", 0, &e, 3, fsm_state_name(cur),
                      fsm_state_name(next), reason, NULL);
        if (rc != ATOM_OK)
            fprintf(stderr, "atom: announcing %s => %s: %s\n", fsm_state_name(cur),
                    fsm_state_name(next), e.message);
        (void)fsm_hook(host, engine, "after", cur, next, reason, hookmsg, sizeof hookmsg);
    }
}
