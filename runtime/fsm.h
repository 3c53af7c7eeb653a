/*
 * fsm.h — the release state machine: the nine states, the one transition
 * table (DESIGN.md, "The state machine") and the driver loop.
 *
 * The table lives only here; Lua reads it through the module atom.fsm
 * (l_fsm.c), so the two halves can never disagree about what is allowed.
 *
 * The driver owns no memory of its own. It works on a Lua "engine" table the
 * caller leaves on the host's stack (see fsm_drive) and calls its methods
 * through lh_pcall; the engine (lua/atom/release/engine.lua) owns the
 * records, the cluster I/O and the hooks. The driver owns the decisions
 * that must never bend: which transitions exist, what a failing before-hook
 * turns into, and that an answer outside the table is never obeyed.
 */
#ifndef ATOM_RUNTIME_FSM_H
#define ATOM_RUNTIME_FSM_H

#include <stdbool.h>

#include "error.h"
#include "lua_host.h"

typedef enum fsm_state {
    FSM_NONE = 0, /* no version recorded yet; only -> Pending leaves it */
    FSM_PENDING,
    FSM_UPDATING,
    FSM_RUNNING,
    FSM_CANCELLED,
    FSM_DEADLINE,
    FSM_ERROR,
    FSM_ROLLBACK,
    FSM_REVERTED,
    FSM_FAILURE,
    FSM_STATE_COUNT
} fsm_state;

/* The exact name stored in the cluster ("Pending", ...); "" for FSM_NONE. */
const char *fsm_state_name(fsm_state s);

/* Parses an exact state name ("" or NULL gives FSM_NONE). Returns ATOM_OK or
 * ATOM_EINVAL (err names the unknown state). */
int fsm_state_parse(const char *name, fsm_state *out, atom_error *err);

/* True when the design's table lets a release go from `from` to `to`. */
bool fsm_allowed(fsm_state from, fsm_state to);

/* Running, Reverted and Failure: a run stops there. */
bool fsm_terminal(fsm_state s);

/* Where a transition goes instead when it cannot be taken as asked (a
 * failing before-hook, an answer outside the table): Error when the table
 * allows it from `from`, else Failure. */
fsm_state fsm_fallback(fsm_state from);

/*
 * Drives the release until it rests in a terminal state. The engine table is
 * at stack index `engine` of the host's state and must have these methods:
 *   engine:state()                      -> name of the recorded state ("" = none)
 *   engine:step(state)                  -> next_name, reason | nil (stop; only
 *                                          in a terminal state)
 *   engine:hook(phase, from, to, why)   -> true | nil, message   (phase "before"/"after")
 *   engine:transition(from, to, why)    -> "ok" | "conflict" | nil, message
 *       writes the record (resourceVersion-checked); "conflict" means the
 *       record changed under us: it was re-read, the driver decides again.
 *   engine:announce(from, to, why)      -> emits the Event and the log line
 * Lua errors in step become an Error/Failure transition (the release is never
 * left half-done on a script bug); errors writing the record stop the driver
 * (the record stays what it was, `atom resume` continues from it).
 * On success *final is the terminal state reached.
 */
int fsm_drive(lh_host *host, int engine, fsm_state *final, atom_error *err);

/* The same driver on any lua_State, for the Lua module atom.fsm (plain
 * lua5.4 has no lh_host). `pcall` must behave as lh_pcall does: call the
 * function and nargs arguments on the stack, leave nresults, and on a Lua
 * error pop them and fill err. */
typedef int (*fsm_pcall_fn)(void *ud, lua_State *L, int nargs, int nresults, atom_error *err);
int fsm_drive_state(lua_State *L, fsm_pcall_fn pcall, void *ud, int engine, fsm_state *final,
                    atom_error *err);

#endif
