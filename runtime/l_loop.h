/*
 * l_loop.h — how a server hands its event loop to the Lua module atom.loop.
 *
 * atom.loop (l_loop.c) gives Lua timers and stream writes, but it is also
 * compiled into atom/core.so for plain lua5.4, where there is no server; so it
 * never links against sim_server.c. The server fills an atom_loop_host and
 * attaches it to its lua_State with atom_loop_attach: the pointer is kept in
 * the state's registry (light userdata under a private key), never in a C
 * global.
 *
 * Ownership: the host struct belongs to the server and must outlive every
 * use of the state, i.e. stay valid until lua_close; timers created from Lua
 * are freed by the Lua GC (so lua_close must run before event_base_free).
 */
#ifndef ATOM_RUNTIME_L_LOOP_H
#define ATOM_RUNTIME_L_LOOP_H

#include <stddef.h>

typedef struct lua_State lua_State;
struct event_base;

typedef struct atom_loop_host {
    struct event_base *base;
    lua_State *L; /* the main state: timers run on it, not on a coroutine */
    void *ctx;    /* passed back to the callbacks */
    /* Sends the n pieces data[i] (len[i] bytes each) as one chunk of stream id, in order;
     * 1 if sent, 0 if the stream is gone. The pieces are only read during the call. */
    int (*write)(void *ctx, long long id, const char *const *data, const size_t *len, int n);
    /* Ends stream id; 1 if it was open. */
    int (*finish)(void *ctx, long long id);
    /* Sends what the streams hold now if the server thinks it is time, for Lua that works
     * through a long queue in one callback; may be NULL (then loop.flush does nothing). */
    void (*flush)(void *ctx);
    /* Calls the function on top of L with nargs arguments, under protection;
     * errors are logged by the host and never propagate. Pops function and args. */
    void (*call)(void *ctx, lua_State *L, int nargs);
} atom_loop_host;

void atom_loop_attach(lua_State *L, atom_loop_host *host);

int luaopen_atom_loop(lua_State *L);

#endif
