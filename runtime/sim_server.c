/*
 * sim_server.c — `atom sim`: the HTTP/HTTPS front of the simulated cluster.
 *
 * C owns the sockets, TLS, authentication, chunked streams and timers; every
 * request is handed as a table to the Lua object that require("atom.sim").new
 * returns (sim:handle(req)), which answers with a whole response, a delayed
 * one, or a stream that Lua feeds later through atom.loop (l_loop.c).
 *
 * Ownership: sim_run owns everything it creates (event base, evhttp, Lua
 * host, TLS material) and frees it before returning. A request's sim_call
 * lives on sim_on_request's stack while Lua handles it and moves to the heap
 * only when the response outlives the callback (a delay or a stream); such
 * calls sit on srv->live until they finish or their client goes away.
 * libevent owns each evhttp_request until it is detached from its connection
 * (client gone while we still owed a reply); from then on we own it and free
 * it with evhttp_send_reply_end.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli.h"
#include "clock.h"
#include "error.h"
#include "l_loop.h"
#include "tls_material.h"
/* OpenSSL's deprecated lhash macros take the names of the Lua host's API. */
#undef lh_new
#undef lh_free
#include "lua_host.h"

/* The real kube-apiserver refuses request bodies past 3 MiB with a 413
 * Status; libevent's own hard cap sits above it so that we, not libevent's
 * HTML error page, answer the common case. */
#define SIM_BODY_LIMIT ((size_t)3 << 20)
#define SIM_EVHTTP_BODY_CAP ((ev_ssize_t)16 << 20)
#define SIM_HEADERS_CAP ((ev_ssize_t)1 << 20)
/* Watches are held open for minutes; idle keep-alive sockets of dead
 * clients are reaped by the kernel's EOF, not by this. */
#define SIM_IO_TIMEOUT_SECONDS 3600
/* A watcher that stops reading must not grow our memory without bound: past
 * this much unsent output its connection is dropped, as a real apiserver
 * drops a watcher whose event channel is full. */
#define SIM_STREAM_BACKLOG_MAX ((size_t)16 << 20)
/* How long a watch event may sit in our output while one long turn of the loop (a
 * controller draining a burst of pods) keeps libevent from writing it: a client's
 * readiness latency counts from the moment the object turned ready in the store. */
#define SIM_STREAM_FLUSH_SECONDS 0.0005
#define SIM_SLOT_BITS 24
#define SIM_SLOT_MAX ((uint32_t)1 << SIM_SLOT_BITS)

typedef struct sim_options {
    int port;
    const char *address;
    int tls;
    const char *token;
    const char *kubeconfig;
    const char *scenario;
    const char *handler_module;
    double time_scale;
    double ready_after;
    int nodes;
} sim_options;

typedef struct sim_server sim_server;

typedef enum sim_call_state {
    SIM_HANDLING,  /* inside sim:handle, on the C stack */
    SIM_DELAYED,   /* response waits for its timer */
    SIM_STREAMING, /* chunked reply started, Lua writes to it */
} sim_call_state;

typedef struct sim_call {
    sim_server *srv;
    struct evhttp_request *req;
    struct evhttp_connection *conn;
    long long id;
    sim_call_state state;
    int stream;         /* the response is a stream */
    int finish_pending; /* loop.finish came before the stream started */
    int overflow;       /* its client fell too far behind: drop the connection */
    int written;        /* on srv->written: output added since the last write-out */
    int status;
    struct evbuffer *buf; /* early stream chunks, or a delayed body */
    struct event *timer;  /* the delay */
    struct sim_call *prev, *next;
} sim_call;

typedef struct sim_slot {
    sim_call *call;
    uint32_t gen;
    uint32_t next_free;
} sim_slot;

struct sim_server {
    struct event_base *base;
    struct evhttp *http;
    struct event *sigint, *sigterm;
    SSL_CTX *ssl_ctx;
    tls_material tls;
    int use_tls;
    lh_host *host;
    int sim_ref;    /* the object sim.new returned */
    int encode_ref; /* cjson.encode, for Status bodies built in C */
    atom_loop_host loop;
    sim_slot *slots;
    uint32_t nslots, slot_cap, free_head;
    sim_call *live; /* delayed and streaming calls */
    struct evbuffer *scratch;
    struct event *drop; /* drops overflowed connections outside Lua's calls */
    double flushed_at;  /* monotonic time streams were last written out by sim_flush_due */
    long long *written; /* ids of the streams written to since then (stale ids are skipped) */
    size_t nwritten, written_cap;
    int stopping;
};

/* ---- stream ids --------------------------------------------------------- */

#define SIM_NO_SLOT UINT32_MAX

/* An id is (generation << 24 | slot): O(1) lookup, and a stale id of a
 * finished stream never reaches the request that reuses its slot. */
static int sim_slot_alloc(sim_server *srv, sim_call *call)
{
    uint32_t i;
    if (srv->free_head != SIM_NO_SLOT) {
        i = srv->free_head;
        srv->free_head = srv->slots[i].next_free;
    } else {
        if (srv->nslots == SIM_SLOT_MAX)
            return -1;
        if (srv->nslots == srv->slot_cap) {
            uint32_t cap = srv->slot_cap ? srv->slot_cap * 2 : 256;
            sim_slot *s = realloc(srv->slots, (size_t)cap * sizeof *s);
            if (s == NULL)
                return -1;
            srv->slots = s;
            srv->slot_cap = cap;
        }
        i = srv->nslots++;
        srv->slots[i].gen = 0;
    }
    sim_slot *s = &srv->slots[i];
    s->gen++;
    s->call = call;
    call->id = ((long long)s->gen << SIM_SLOT_BITS) | i;
    return 0;
}

static void sim_slot_release(sim_server *srv, long long id)
{
    uint32_t i = (uint32_t)(id & (SIM_SLOT_MAX - 1));
    srv->slots[i].call = NULL;
    srv->slots[i].next_free = srv->free_head;
    srv->free_head = i;
}

static sim_call *sim_slot_find(sim_server *srv, long long id)
{
    if (id < 0)
        return NULL;
    uint32_t i = (uint32_t)(id & (SIM_SLOT_MAX - 1));
    uint64_t gen = (uint64_t)id >> SIM_SLOT_BITS;
    if (i >= srv->nslots || srv->slots[i].gen != gen)
        return NULL;
    return srv->slots[i].call;
}

/* ---- live calls --------------------------------------------------------- */

static void sim_live_link(sim_server *srv, sim_call *c)
{
    c->prev = NULL;
    c->next = srv->live;
    if (srv->live)
        srv->live->prev = c;
    srv->live = c;
}

static void sim_live_unlink(sim_server *srv, sim_call *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->live = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

/* Frees a heap call that is already unlinked and whose slot is released.
 * The request is freed too when libevent detached it (client gone). */
static void sim_call_free(sim_call *c)
{
    if (c->req && evhttp_request_get_connection(c->req) == NULL)
        evhttp_send_reply_end(c->req); /* frees a detached request */
    if (c->timer)
        event_free(c->timer);
    if (c->buf)
        evbuffer_free(c->buf);
    free(c);
}

/* ---- Lua calls ---------------------------------------------------------- */

static void sim_log_lua_error(const char *what, const atom_error *err)
{
    fprintf(stderr, "atom sim: %s: %s\n", what, err->message);
}

/* Calls sim:<method>(id) if the object has that method. */
static void sim_notify(sim_server *srv, const char *method, long long id)
{
    lua_State *L = lh_state(srv->host);
    lua_rawgeti(L, LUA_REGISTRYINDEX, srv->sim_ref);
    if (lua_getfield(L, -1, method) != LUA_TFUNCTION) {
        lua_pop(L, 2);
        return;
    }
    lua_insert(L, -2);
    lua_pushinteger(L, (lua_Integer)id);
    atom_error err;
    if (lh_pcall(srv->host, 2, 0, &err) != ATOM_OK)
        sim_log_lua_error(method, &err);
}

/* Remembers that stream c has output for the next write-out (not on TLS, which has none);
 * if the list cannot grow, libevent still writes it between turns. */
static void sim_note_written(sim_server *srv, sim_call *c)
{
    if (srv->use_tls || c->written)
        return;
    if (srv->nwritten == srv->written_cap) {
        size_t cap = srv->written_cap ? srv->written_cap * 2 : 64;
        long long *w = realloc(srv->written, cap * sizeof *w);
        if (w == NULL)
            return;
        srv->written = w;
        srv->written_cap = cap;
    }
    srv->written[srv->nwritten++] = c->id;
    c->written = 1;
}

/* Writes the watch streams' pending output to their sockets now, at most once per
 * SIM_STREAM_FLUSH_SECONDS: libevent writes only between turns of its loop, and a turn
 * that runs hundreds of due timers, or a controller working through its queue, holds
 * every event it produced until it ends. Called after each Lua callback, each stream
 * write and each item of a controller's queue (loop.flush). Plain TCP only: a TLS
 * stream's bytes must go through its bufferevent's SSL. */
static void sim_flush_due(sim_server *srv)
{
    if (srv->nwritten == 0)
        return;
    double now = atom_monotonic();
    if (now - srv->flushed_at < SIM_STREAM_FLUSH_SECONDS)
        return;
    srv->flushed_at = now;
    size_t n = srv->nwritten;
    srv->nwritten = 0;
    for (size_t i = 0; i < n; i++) {
        sim_call *c = sim_slot_find(srv, srv->written[i]);
        if (c == NULL)
            continue; /* finished since */
        c->written = 0;
        struct evhttp_connection *conn =
            c->state == SIM_STREAMING && !c->overflow && c->req ? evhttp_request_get_connection(c->req) : NULL;
        if (conn == NULL)
            continue;
        struct bufferevent *bev = evhttp_connection_get_bufferevent(conn);
        struct evbuffer *out = bev ? bufferevent_get_output(bev) : NULL;
        if (out == NULL || evbuffer_get_length(out) == 0)
            continue;
        /* A bufferevent keeps the start of its output frozen so that only its own write
         * callback drains it; that callback unfreezes around its write the same way.
         * What the socket does not take now (EAGAIN) stays for libevent. */
        evbuffer_unfreeze(out, 1);
        (void)evbuffer_write(out, bufferevent_getfd(bev));
        evbuffer_freeze(out, 1);
    }
}

static void sim_loop_flush(void *ctx)
{
    sim_flush_due(ctx);
}

static void sim_loop_call(void *ctx, lua_State *L, int nargs)
{
    sim_server *srv = ctx;
    (void)L;
    atom_error err;
    if (lh_pcall(srv->host, nargs, 0, &err) != ATOM_OK)
        sim_log_lua_error("timer callback", &err);
    sim_flush_due(srv);
}

/* ---- replies ------------------------------------------------------------ */

/* Sends a metav1.Status; the JSON comes from cjson so any message is safe. */
static void sim_send_status(sim_server *srv, struct evhttp_request *req, int code,
                            const char *reason, const char *message)
{
    lua_State *L = lh_state(srv->host);
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    evhttp_add_header(out, "Content-Type", "application/json");
    lua_rawgeti(L, LUA_REGISTRYINDEX, srv->encode_ref);
    lua_createtable(L, 0, 7);
    lua_pushliteral(L, "Status");
    lua_setfield(L, -2, "kind");
    lua_pushliteral(L, "v1");
    lua_setfield(L, -2, "apiVersion");
    lua_newtable(L);
    lua_setfield(L, -2, "metadata");
    lua_pushliteral(L, "Failure");
    lua_setfield(L, -2, "status");
    lua_pushstring(L, message);
    lua_setfield(L, -2, "message");
    lua_pushstring(L, reason);
    lua_setfield(L, -2, "reason");
    lua_pushinteger(L, code);
    lua_setfield(L, -2, "code");
    atom_error err;
    if (lh_pcall(srv->host, 1, 1, &err) == ATOM_OK) {
        size_t len;
        const char *json = lua_tolstring(L, -1, &len);
        evbuffer_add(srv->scratch, json, len);
        lua_pop(L, 1);
    } else {
        evbuffer_add_printf(srv->scratch,
                            "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},"
                            "\"status\":\"Failure\",\"reason\":\"%s\",\"code\":%d}",
                            reason, code);
    }
    evhttp_send_reply(req, code, NULL, srv->scratch);
}

static void sim_stream_start(sim_call *c)
{
    evhttp_send_reply_start(c->req, c->status, NULL);
    if (c->buf && evbuffer_get_length(c->buf) > 0)
        evhttp_send_reply_chunk(c->req, c->buf);
    c->state = SIM_STREAMING;
}

/* Ends a heap call whose response is complete: release, unlink, free. */
static void sim_call_done(sim_server *srv, sim_call *c)
{
    sim_slot_release(srv, c->id);
    sim_live_unlink(srv, c);
    sim_call_free(c);
}

static void sim_on_delay(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sim_call *c = arg;
    sim_server *srv = c->srv;
    if (evhttp_request_get_connection(c->req) == NULL) {
        /* The client left while we waited and no close callback told us. */
        long long id = c->id;
        int stream = c->stream;
        sim_call_done(srv, c);
        if (stream)
            sim_notify(srv, "closed", id);
        return;
    }
    if (!c->stream) {
        evhttp_send_reply(c->req, c->status, NULL, c->buf);
        c->req = NULL; /* evhttp_send_reply took it, even if detached */
        sim_call_done(srv, c);
        return;
    }
    sim_stream_start(c);
    if (c->finish_pending) {
        evhttp_send_reply_end(c->req);
        c->req = NULL;
        sim_call_done(srv, c);
    }
}

/* ---- atom.loop callbacks ------------------------------------------------ */

static int sim_loop_write(void *ctx, long long id, const char *const *data, const size_t *lens,
                          int n)
{
    sim_server *srv = ctx;
    sim_call *c = sim_slot_find(srv, id);
    if (c == NULL || c->finish_pending)
        return 0;
    size_t len = 0;
    for (int i = 0; i < n; i++)
        len += lens[i];
    if (c->state != SIM_STREAMING) {
        if (c->buf == NULL && (c->buf = evbuffer_new()) == NULL)
            return 0;
        for (int i = 0; i < n; i++)
            if (evbuffer_add(c->buf, data[i], lens[i]) != 0)
                return 0;
        return 1;
    }
    if (evhttp_request_get_connection(c->req) == NULL) {
        /* The client left and libevent saw it before any close callback. */
        sim_call_done(srv, c);
        return 0;
    }
    if (len == 0)
        return 1; /* an empty chunk would end the chunked body */
    struct bufferevent *bev = evhttp_connection_get_bufferevent(c->conn);
    if (c->overflow ||
        (bev && evbuffer_get_length(bufferevent_get_output(bev)) > SIM_STREAM_BACKLOG_MAX)) {
        /* Freeing the connection here would re-enter Lua from inside its
         * write; a zero timer does it once this call has returned. */
        if (!c->overflow) {
            struct timeval now = {0, 0};
            c->overflow = 1;
            evtimer_add(srv->drop, &now);
        }
        return 0;
    }
    for (int i = 0; i < n; i++)
        evbuffer_add(srv->scratch, data[i], lens[i]);
    evhttp_send_reply_chunk(c->req, srv->scratch);
    evbuffer_drain(srv->scratch, evbuffer_get_length(srv->scratch));
    sim_note_written(srv, c);
    sim_flush_due(srv);
    return 1;
}

static int sim_loop_finish(void *ctx, long long id)
{
    sim_server *srv = ctx;
    sim_call *c = sim_slot_find(srv, id);
    if (c == NULL || c->finish_pending)
        return 0;
    if (c->state != SIM_STREAMING) {
        c->finish_pending = 1;
        return 1;
    }
    evhttp_send_reply_end(c->req);
    c->req = NULL;
    sim_call_done(srv, c);
    return 1;
}

/* ---- connections -------------------------------------------------------- */

static void sim_on_close(struct evhttp_connection *conn, void *arg)
{
    sim_server *srv = arg;
    if (srv->stopping)
        return;
    /* Collect first: Lua's closed() may finish or write other streams. */
    sim_call *gone = NULL;
    for (sim_call *c = srv->live, *next; c; c = next) {
        next = c->next;
        if (c->conn != conn)
            continue;
        sim_live_unlink(srv, c);
        sim_slot_release(srv, c->id);
        c->next = gone;
        gone = c;
    }
    while (gone) {
        sim_call *c = gone;
        gone = c->next;
        if (c->stream)
            sim_notify(srv, "closed", c->id);
        /* Still attached requests are freed by libevent with the connection. */
        if (c->req && evhttp_request_get_connection(c->req) != NULL)
            c->req = NULL;
        sim_call_free(c);
    }
}

static void sim_on_drop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sim_server *srv = arg;
    for (sim_call *c = srv->live; c;) {
        if (!c->overflow) {
            c = c->next;
            continue;
        }
        struct evhttp_connection *conn = c->conn;
        fprintf(stderr, "atom sim: dropping a watch whose client stopped reading\n");
        sim_on_close(conn, srv); /* frees every call of conn, c included */
        evhttp_connection_set_closecb(conn, NULL, NULL);
        evhttp_connection_free(conn);
        c = srv->live; /* the list changed under us */
    }
}

static struct bufferevent *sim_bevcb(struct event_base *base, void *arg)
{
    sim_server *srv = arg;
    SSL *ssl = SSL_new(srv->ssl_ctx);
    if (ssl == NULL)
        return NULL;
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        SSL_free(ssl);
        return NULL;
    }
    /* Clients routinely close without close_notify. */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

/* ---- authentication ----------------------------------------------------- */

/* The paths a real apiserver lets anonymous clients read
 * (system:public-info-viewer). */
static int sim_public_path(const char *path)
{
    static const char *const public_paths[] = {"/version", "/healthz", "/livez", "/readyz"};
    for (size_t i = 0; i < sizeof public_paths / sizeof *public_paths; i++) {
        size_t n = strlen(public_paths[i]);
        if (strncmp(path, public_paths[i], n) == 0 && (path[n] == '\0' || path[n] == '/'))
            return 1;
    }
    return 0;
}

typedef enum { SIM_AUTH_OK, SIM_AUTH_ANONYMOUS, SIM_AUTH_FAILED } sim_auth;

/* Like the apiserver's union authenticator: a verified client certificate
 * or the bearer token is enough; a wrong token with no certificate fails
 * (401) even on public paths; no credentials at all is anonymous. */
static sim_auth sim_authenticate(sim_server *srv, struct evhttp_request *req, char *user,
                                 size_t user_len)
{
    user[0] = '\0';
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    struct bufferevent *bev = conn ? evhttp_connection_get_bufferevent(conn) : NULL;
    SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
    X509 *peer = ssl ? SSL_get0_peer_certificate(ssl) : NULL;
    if (peer && SSL_get_verify_result(ssl) == X509_V_OK) {
        if (X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, user,
                                      (int)user_len) <= 0)
            snprintf(user, user_len, "system:unknown");
        return SIM_AUTH_OK;
    }
    const char *authz = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (authz == NULL)
        return SIM_AUTH_ANONYMOUS;
    size_t tlen = strlen(srv->tls.token);
    if (strncasecmp(authz, "Bearer ", 7) == 0 && strlen(authz + 7) == tlen &&
        CRYPTO_memcmp(authz + 7, srv->tls.token, tlen) == 0) {
        snprintf(user, user_len, "atom-sim-admin");
        return SIM_AUTH_OK;
    }
    return SIM_AUTH_FAILED;
}

/* ---- requests ----------------------------------------------------------- */

static const char *sim_method_name(enum evhttp_cmd_type cmd)
{
    switch (cmd) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_HEAD: return "HEAD";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_OPTIONS: return "OPTIONS";
    case EVHTTP_REQ_TRACE: return "TRACE";
    case EVHTTP_REQ_CONNECT: return "CONNECT";
    case EVHTTP_REQ_PATCH: return "PATCH";
    }
    return "GET";
}

/* What sim_request_table turns into the table sim:handle receives. The
 * caller owns every pointer and frees them after the protected call, so a
 * Lua error while the table is built (the body can be megabytes; the heap
 * has a ceiling) comes back as an error instead of a panic or a leak. */
typedef struct sim_request_args {
    struct evhttp_request *req;
    const char *path; /* already percent-decoded */
    size_t path_len;
    long long id;
    const char *user;
} sim_request_args;

/* lua_CFunction run under lh_pcall: (lightuserdata sim_request_args) -> request table. */
static int sim_request_table(lua_State *L)
{
    const sim_request_args *a = lua_touserdata(L, 1);
    struct evhttp_request *req = a->req;
    lua_createtable(L, 0, 7);
    lua_pushstring(L, sim_method_name(evhttp_request_get_command(req)));
    lua_setfield(L, -2, "method");
    lua_pushlstring(L, a->path, a->path_len);
    lua_setfield(L, -2, "path");

    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
    lua_pushstring(L, query ? query : "");
    lua_setfield(L, -2, "query");

    lua_createtable(L, 0, 8);
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    for (struct evkeyval *kv = in->tqh_first; kv; kv = kv->next.tqe_next) {
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        for (const char *p = kv->key; *p; p++)
            luaL_addchar(&b, (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p));
        luaL_pushresult(&b);
        /* Repeated headers fold into one comma-separated value, as in Go. */
        lua_pushvalue(L, -1);
        if (lua_rawget(L, -3) == LUA_TSTRING) {
            lua_pushliteral(L, ", ");
            lua_pushstring(L, kv->value);
            lua_concat(L, 3);
        } else {
            lua_pop(L, 1);
            lua_pushstring(L, kv->value);
        }
        lua_rawset(L, -3);
    }
    lua_setfield(L, -2, "headers");

    struct evbuffer *body = evhttp_request_get_input_buffer(req);
    size_t blen = evbuffer_get_length(body);
    if (blen > 0) {
        lua_pushlstring(L, (const char *)evbuffer_pullup(body, -1), blen);
        lua_setfield(L, -2, "body");
    }
    lua_pushinteger(L, (lua_Integer)a->id);
    lua_setfield(L, -2, "stream");
    if (a->user && *a->user) {
        lua_pushstring(L, a->user);
        lua_setfield(L, -2, "user");
    }
    return 1;
}

/* Reads sim:handle's answer (on top of the stack) into c and the request's
 * output headers; the body goes to body. 0 on success, else -1 with a
 * message pushed. */
static int sim_read_response(lua_State *L, sim_call *c, struct evbuffer *body, double *delay)
{
    int r = lua_gettop(L);
    if (!lua_istable(L, r)) {
        lua_pushfstring(L, "sim:handle returned a %s, not a response table", luaL_typename(L, r));
        return -1;
    }
    lua_getfield(L, r, "status");
    int isnum = 0;
    lua_Integer status = lua_tointegerx(L, -1, &isnum);
    if (lua_isnil(L, -1))
        status = 200;
    else if (!isnum || status < 100 || status > 599) {
        lua_pushliteral(L, "sim:handle returned an invalid status");
        return -1;
    }
    lua_pop(L, 1);
    c->status = (int)status;

    struct evkeyvalq *out = evhttp_request_get_output_headers(c->req);
    int has_type = 0;
    if (lua_getfield(L, r, "headers") == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            if (lua_type(L, -2) == LUA_TSTRING && lua_isstring(L, -1)) {
                const char *k = lua_tostring(L, -2);
                /* lua_tostring on the value only: the key must stay a string for lua_next */
                const char *v = lua_tostring(L, -1);
                if (strcasecmp(k, "Content-Type") == 0)
                    has_type = 1;
                evhttp_add_header(out, k, v); /* refuses CR/LF in values */
            } else if (lua_type(L, -2) == LUA_TSTRING && lua_istable(L, -1)) {
                /* A list: the header once per value (a server sends several Warnings). */
                const char *k = lua_tostring(L, -2);
                for (lua_Integer i = 1; lua_rawgeti(L, -1, i) != LUA_TNIL; i++) {
                    if (lua_type(L, -1) == LUA_TSTRING)
                        evhttp_add_header(out, k, lua_tostring(L, -1));
                    lua_pop(L, 1);
                }
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    if (!has_type)
        evhttp_add_header(out, "Content-Type", "application/json");

    lua_getfield(L, r, "stream");
    c->stream = lua_toboolean(L, -1);
    lua_pop(L, 1);

    if (!c->stream) {
        size_t len = 0;
        if (lua_getfield(L, r, "body") == LUA_TSTRING) {
            const char *s = lua_tolstring(L, -1, &len);
            evbuffer_add(body, s, len);
        }
        lua_pop(L, 1);
    }

    lua_getfield(L, r, "delay");
    double d = lua_tonumber(L, -1);
    lua_pop(L, 1);
    *delay = (d > 0 && d < 1e7) ? d : 0;
    return 0;
}

static void sim_on_request(struct evhttp_request *req, void *arg)
{
    sim_server *srv = arg;
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    evhttp_connection_set_closecb(conn, sim_on_close, srv);
    /* Watch events are small writes in quick succession: without NODELAY,
     * Nagle holds each behind the client's delayed ACK (Go servers set it on
     * every connection too). libevent 2.1 has no per-connection hook, and a
     * setsockopt per request costs far less than the request itself. */
    struct bufferevent *conn_bev = evhttp_connection_get_bufferevent(conn);
    evutil_socket_t fd = conn_bev ? bufferevent_getfd(conn_bev) : -1;
    if (fd >= 0) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }

    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (path == NULL || *path == '\0')
        path = "/";

    char user[256] = "";
    if (srv->use_tls) {
        sim_auth a = sim_authenticate(srv, req, user, sizeof user);
        if (a == SIM_AUTH_FAILED || (a == SIM_AUTH_ANONYMOUS && !sim_public_path(path))) {
            sim_send_status(srv, req, 401, "Unauthorized", "Unauthorized");
            return;
        }
    }

    if (evbuffer_get_length(evhttp_request_get_input_buffer(req)) > SIM_BODY_LIMIT) {
        char msg[96];
        snprintf(msg, sizeof msg, "Request entity too large: limit is %zu", SIM_BODY_LIMIT);
        sim_send_status(srv, req, 413, "RequestEntityTooLarge", msg);
        return;
    }

    sim_call call = {.srv = srv, .req = req, .conn = conn, .state = SIM_HANDLING};
    if (sim_slot_alloc(srv, &call) != 0) {
        sim_send_status(srv, req, 503, "ServiceUnavailable", "too many open requests");
        return;
    }

    sim_request_args args = {.req = req, .path = path, .id = call.id, .user = user};
    char *decoded = strchr(path, '%') ? evhttp_uridecode(path, 0, &args.path_len) : NULL;
    if (decoded)
        args.path = decoded;
    else
        args.path_len = strlen(path);

    lua_State *L = lh_state(srv->host);
    int top = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, srv->sim_ref);
    lua_getfield(L, -1, "handle");
    lua_insert(L, -2);
    lua_pushcfunction(L, sim_request_table);
    lua_pushlightuserdata(L, &args);
    atom_error err;
    double delay = 0;
    int ok = lh_pcall(srv->host, 1, 1, &err) == ATOM_OK;
    free(decoded);
    ok = ok && lh_pcall(srv->host, 2, 1, &err) == ATOM_OK;
    if (ok && sim_read_response(L, &call, srv->scratch, &delay) != 0) {
        atom_error_set(&err, ATOM_ELUA, "%s", lua_tostring(L, -1));
        ok = 0;
    }
    lua_settop(L, top);

    if (!ok) {
        sim_slot_release(srv, call.id);
        if (call.buf)
            evbuffer_free(call.buf);
        fprintf(stderr, "atom sim: %s %s: %s\n", sim_method_name(evhttp_request_get_command(req)),
                path, err.message);
        evbuffer_drain(srv->scratch, evbuffer_get_length(srv->scratch));
        evhttp_clear_headers(evhttp_request_get_output_headers(req));
        const char *msg = err.message;
        const char *nl = strchr(msg, '\n'); /* the first line, not the traceback */
        char first[512];
        snprintf(first, sizeof first, "%.*s", nl ? (int)(nl - msg) : (int)strlen(msg), msg);
        sim_send_status(srv, req, 500, "InternalError", first);
        return;
    }

    if (!call.stream && delay == 0) {
        sim_slot_release(srv, call.id);
        if (call.buf)
            evbuffer_free(call.buf);
        evhttp_send_reply(req, call.status, NULL, srv->scratch);
        return;
    }

    /* The response outlives this callback: move the call to the heap. */
    sim_call *c = malloc(sizeof *c);
    if (c == NULL) {
        sim_slot_release(srv, call.id);
        if (call.buf)
            evbuffer_free(call.buf);
        evbuffer_drain(srv->scratch, evbuffer_get_length(srv->scratch));
        sim_send_status(srv, req, 500, "InternalError", "out of memory");
        return;
    }
    *c = call;
    srv->slots[c->id & (SIM_SLOT_MAX - 1)].call = c;
    sim_live_link(srv, c);
    if (!c->stream) {
        /* A delayed whole response keeps its body in c->buf. */
        if (c->buf)
            evbuffer_drain(c->buf, evbuffer_get_length(c->buf));
        else
            c->buf = evbuffer_new();
        if (c->buf)
            evbuffer_add_buffer(c->buf, srv->scratch);
        evbuffer_drain(srv->scratch, evbuffer_get_length(srv->scratch));
    }
    if (delay > 0) {
        c->state = SIM_DELAYED;
        c->timer = evtimer_new(srv->base, sim_on_delay, c);
        double whole = floor(delay);
        struct timeval tv = {(time_t)whole, (suseconds_t)((delay - whole) * 1e6)};
        if (c->timer && evtimer_add(c->timer, &tv) == 0)
            return;
        sim_on_delay(-1, 0, c); /* could not schedule: answer now */
        return;
    }
    sim_stream_start(c);
    if (c->finish_pending) {
        evhttp_send_reply_end(req);
        c->req = NULL;
        sim_call_done(srv, c);
    }
}

/* ---- files -------------------------------------------------------------- */

/* Writes via a temporary file and rename, so readers never see a partial file. */
static int sim_write_file(const char *path, const char *data, size_t len, mode_t mode,
                          atom_error *err)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return atom_error_set(err, ATOM_EINVAL, "path too long: %s", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return atom_error_set(err, ATOM_EIO, "cannot create %s: %s", tmp, strerror(errno));
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return atom_error_set(err, ATOM_EIO, "cannot write %s: %s", tmp, strerror(e));
        }
        off += (size_t)n;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return atom_error_set(err, ATOM_EIO, "cannot write %s: %s", path, strerror(e));
    }
    return ATOM_OK;
}

static int sim_write_side_file(const char *kubeconfig, const char *suffix, const char *data,
                               mode_t mode, atom_error *err)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s%s", kubeconfig, suffix) >= (int)sizeof path)
        return atom_error_set(err, ATOM_EINVAL, "path too long: %s", kubeconfig);
    return sim_write_file(path, data, strlen(data), mode, err);
}

#define SIM_KUBECONFIG_HEAD                                                                        \
    "apiVersion: v1\n"                                                                           \
    "kind: Config\n"                                                                             \
    "clusters:\n"                                                                                \
    "- name: atom-sim\n"                                                                         \
    "  cluster:\n"                                                                               \
    "    server: %s\n"
#define SIM_KUBECONFIG_TAIL                                                                        \
    "contexts:\n"                                                                                \
    "- name: atom-sim\n"                                                                         \
    "  context:\n"                                                                               \
    "    cluster: atom-sim\n"                                                                    \
    "    user: atom-sim\n"                                                                       \
    "    namespace: default\n"                                                                   \
    "current-context: atom-sim\n"                                                                \
    "preferences: {}\n"

static int sim_write_kubeconfig(sim_server *srv, const char *path, const char *url,
                                atom_error *err)
{
    char *ca = NULL, *cert = NULL, *key = NULL, *doc = NULL;
    int rc = ATOM_OK;
    if (srv->use_tls) {
        const tls_material *m = &srv->tls;
        if ((rc = sim_write_side_file(path, ".token", m->token, 0600, err)) ||
            (rc = sim_write_side_file(path, ".ca.crt", m->ca_pem, 0644, err)) ||
            (rc = sim_write_side_file(path, ".client.crt", m->client_cert_pem, 0644, err)) ||
            (rc = sim_write_side_file(path, ".client.key", m->client_key_pem, 0600, err)))
            return rc;
        ca = tls_base64(m->ca_pem, strlen(m->ca_pem));
        cert = tls_base64(m->client_cert_pem, strlen(m->client_cert_pem));
        key = tls_base64(m->client_key_pem, strlen(m->client_key_pem));
        if (!ca || !cert || !key) {
            rc = atom_error_set(err, ATOM_ENOMEM, "out of memory writing the kubeconfig");
            goto done;
        }
    }
    /* Every interpolated value is a URL, base64 or a token68 string, none of
     * which needs YAML quoting. */
    /* Every interpolated value is a URL, base64 or a token68 string, none of
     * which needs YAML quoting. */
    int n;
    if (srv->use_tls)
        n = asprintf(&doc, SIM_KUBECONFIG_HEAD
                     "    certificate-authority-data: %s\n"
                     "users:\n"
                     "- name: atom-sim\n"
                     "  user:\n"
                     "    token: %s\n"
                     "    client-certificate-data: %s\n"
                     "    client-key-data: %s\n" SIM_KUBECONFIG_TAIL,
                     url, ca, srv->tls.token, cert, key);
    else
        n = asprintf(&doc, SIM_KUBECONFIG_HEAD "users:\n- name: atom-sim\n  user: {}\n"
                     SIM_KUBECONFIG_TAIL, url);
    if (n < 0) {
        doc = NULL;
        rc = atom_error_set(err, ATOM_ENOMEM, "out of memory writing the kubeconfig");
        goto done;
    }
    rc = sim_write_file(path, doc, (size_t)n, 0600, err);
done:
    free(doc);
    free(ca);
    free(cert);
    free(key);
    return rc;
}

static char *sim_read_file(const char *path, size_t *len, atom_error *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        atom_error_set(err, ATOM_EIO, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 8192, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap)
            break;
        char *bigger = realloc(buf, cap * 2);
        if (bigger == NULL) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    int failed = ferror(f);
    fclose(f);
    if (buf == NULL || failed) {
        free(buf);
        atom_error_set(err, ATOM_EIO, "cannot read %s", path);
        return NULL;
    }
    *len = n;
    return buf;
}

/* ---- the server --------------------------------------------------------- */

static void sim_on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    sim_server *srv = arg;
    event_base_loopbreak(srv->base);
}

/* Creates the Lua side: require(handler).new(opts), kept in the registry. */
static int sim_start_lua(sim_server *srv, const sim_options *o, const char *url, atom_error *err)
{
    srv->host = lh_new(err);
    if (srv->host == NULL)
        return err ? err->code : ATOM_ENOMEM;
    lua_State *L = lh_state(srv->host);
    srv->loop = (atom_loop_host){
        .base = srv->base,
        .L = L,
        .ctx = srv,
        .write = sim_loop_write,
        .finish = sim_loop_finish,
        .flush = sim_loop_flush,
        .call = sim_loop_call,
    };
    atom_loop_attach(L, &srv->loop);

    int rc = lh_require(srv->host, "cjson", err);
    if (rc != ATOM_OK)
        return rc;
    lua_getfield(L, -1, "encode");
    srv->encode_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pop(L, 1);

    if ((rc = lh_require(srv->host, o->handler_module, err)) != ATOM_OK)
        return rc;
    if (lua_getfield(L, -1, "new") != LUA_TFUNCTION) {
        lua_pop(L, 2);
        return atom_error_set(err, ATOM_ELUA, "module %s has no function new",
                              o->handler_module);
    }
    lua_remove(L, -2);
    lua_createtable(L, 0, 8);
    if ((rc = lh_require(srv->host, "atom.loop", err)) != ATOM_OK) {
        lua_pop(L, 2);
        return rc;
    }
    lua_setfield(L, -2, "loop");
    lua_pushnumber(L, o->time_scale);
    lua_setfield(L, -2, "time_scale");
    lua_pushnumber(L, o->ready_after);
    lua_setfield(L, -2, "ready_after");
    lua_pushinteger(L, o->nodes);
    lua_setfield(L, -2, "nodes");
    lua_pushstring(L, url);
    lua_setfield(L, -2, "server_url");
    if (o->scenario) {
        size_t len = 0;
        char *text = sim_read_file(o->scenario, &len, err);
        if (text == NULL) {
            lua_pop(L, 2);
            return err ? err->code : ATOM_EIO;
        }
        lua_pushlstring(L, text, len);
        free(text);
        lua_setfield(L, -2, "scenario");
        lua_pushstring(L, o->scenario);
        lua_setfield(L, -2, "scenario_name");
    }
    if ((rc = lh_pcall(srv->host, 1, 1, err)) != ATOM_OK)
        return rc;
    if (!lua_istable(L, -1) && !lua_isuserdata(L, -1)) {
        lua_pop(L, 1);
        return atom_error_set(err, ATOM_ELUA, "%s.new returned no object", o->handler_module);
    }
    srv->sim_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    /* The sim keeps every object of the cluster alive and allocates a fresh table per write,
     * so the host's generational mode spends a quarter of the sim's CPU in collections during a
     * large release (minor collections keep re-walking the big, always-touched store indexes).
     * Incremental mode with a wider pause collects a few times less often, for at most a few
     * times the live heap, which a test tool can afford; measured with bench/run. */
    lua_gc(L, LUA_GCINC, 400, 400, 0);
    return ATOM_OK;
}

static int sim_listen(sim_server *srv, const sim_options *o, char *url, size_t url_len,
                      atom_error *err)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t sslen;
    const char *address = strcmp(o->address, "localhost") == 0 ? "127.0.0.1" : o->address;
    int v6 = strchr(address, ':') != NULL;
    if (v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)o->port);
        if (inet_pton(AF_INET6, address, &a->sin6_addr) != 1 ||
            !IN6_IS_ADDR_LOOPBACK(&a->sin6_addr))
            return atom_error_set(err, ATOM_EINVAL, "--address must be a loopback address: %s",
                                  address);
        sslen = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)o->port);
        if (inet_pton(AF_INET, address, &a->sin_addr) != 1 ||
            (ntohl(a->sin_addr.s_addr) >> 24) != 127)
            return atom_error_set(err, ATOM_EINVAL, "--address must be a loopback address: %s",
                                  address);
        sslen = sizeof *a;
    }
    /* A release tool opens hundreds of connections at once. */
    struct evconnlistener *lst = evconnlistener_new_bind(
        srv->base, NULL, NULL, LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
        4096, (struct sockaddr *)&ss, (int)sslen);
    if (lst == NULL)
        return atom_error_set(err, ATOM_EIO, "cannot listen on %s port %d: %s", address,
                              o->port, strerror(errno));
    if (evhttp_bind_listener(srv->http, lst) == NULL) {
        evconnlistener_free(lst);
        return atom_error_set(err, ATOM_EIO, "cannot serve HTTP on the listener");
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    if (getsockname(evconnlistener_get_fd(lst), (struct sockaddr *)&bound, &blen) != 0)
        return atom_error_set(err, ATOM_EIO, "getsockname: %s", strerror(errno));
    int port = v6 ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                  : ntohs(((struct sockaddr_in *)&bound)->sin_port);
    snprintf(url, url_len, v6 ? "%s://[%s]:%d" : "%s://%s:%d", srv->use_tls ? "https" : "http",
             address, port);
    return ATOM_OK;
}

static void sim_raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void sim_shutdown(sim_server *srv)
{
    srv->stopping = 1;
    while (srv->live) {
        sim_call *c = srv->live;
        sim_live_unlink(srv, c);
        sim_slot_release(srv, c->id); /* Lua's finalizers may still look ids up */
        /* Attached requests go with their connection in evhttp_free. */
        if (c->req && evhttp_request_get_connection(c->req) != NULL)
            c->req = NULL;
        sim_call_free(c);
    }
    if (srv->http)
        evhttp_free(srv->http);
    if (srv->sigint)
        event_free(srv->sigint);
    if (srv->sigterm)
        event_free(srv->sigterm);
    if (srv->drop)
        event_free(srv->drop);
    /* Lua first: its timers hold events of the base. */
    lh_free(srv->host);
    if (srv->ssl_ctx)
        SSL_CTX_free(srv->ssl_ctx);
    tls_material_free(&srv->tls);
    if (srv->scratch)
        evbuffer_free(srv->scratch);
    if (srv->base)
        event_base_free(srv->base);
    free(srv->slots);
    free(srv->written);
}

static int sim_run(const sim_options *o, atom_error *err)
{
    sim_server srv_storage;
    sim_server *srv = &srv_storage;
    memset(srv, 0, sizeof *srv);
    srv->free_head = SIM_NO_SLOT;
    srv->use_tls = o->tls;
    srv->sim_ref = srv->encode_ref = LUA_NOREF;

    /* A client that vanishes mid-write must cost an EPIPE, not the process. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sim_raise_fd_limit();

    int rc = ATOM_OK;
    char url[128];
    srv->base = event_base_new();
    srv->http = srv->base ? evhttp_new(srv->base) : NULL;
    srv->scratch = evbuffer_new();
    if (!srv->base || !srv->http || !srv->scratch) {
        rc = atom_error_set(err, ATOM_ENOMEM, "cannot create the event loop");
        goto out;
    }
    evhttp_set_gencb(srv->http, sim_on_request, srv);
    evhttp_set_allowed_methods(srv->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                              EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH |
                                              EVHTTP_REQ_HEAD | EVHTTP_REQ_OPTIONS);
    evhttp_set_max_body_size(srv->http, SIM_EVHTTP_BODY_CAP);
    evhttp_set_max_headers_size(srv->http, SIM_HEADERS_CAP);
    evhttp_set_timeout(srv->http, SIM_IO_TIMEOUT_SECONDS);
    evhttp_set_default_content_type(srv->http, "application/json");

    if (o->tls) {
        if ((rc = tls_material_generate(&srv->tls, o->token, err)) != ATOM_OK)
            goto out;
        srv->ssl_ctx = tls_material_server_ctx(&srv->tls, err);
        if (srv->ssl_ctx == NULL) {
            rc = err ? err->code : ATOM_EIO;
            goto out;
        }
        evhttp_set_bevcb(srv->http, sim_bevcb, srv);
    }

    srv->drop = evtimer_new(srv->base, sim_on_drop, srv);
    srv->sigint = evsignal_new(srv->base, SIGINT, sim_on_signal, srv);
    srv->sigterm = evsignal_new(srv->base, SIGTERM, sim_on_signal, srv);
    if (!srv->drop || !srv->sigint || !srv->sigterm || evsignal_add(srv->sigint, NULL) != 0 ||
        evsignal_add(srv->sigterm, NULL) != 0) {
        rc = atom_error_set(err, ATOM_EIO, "cannot install signal handlers");
        goto out;
    }

    if ((rc = sim_listen(srv, o, url, sizeof url, err)) != ATOM_OK)
        goto out;
    if ((rc = sim_start_lua(srv, o, url, err)) != ATOM_OK)
        goto out;
    /* Only now, listening and ready: readers may connect as soon as it exists. */
    if ((rc = sim_write_kubeconfig(srv, o->kubeconfig, url, err)) != ATOM_OK)
        goto out;
    printf("atom sim: serving on %s (kubeconfig %s)\n", url, o->kubeconfig);
    fflush(stdout);

    if (event_base_dispatch(srv->base) < 0)
        rc = atom_error_set(err, ATOM_EIO, "the event loop failed");
out:
    sim_shutdown(srv);
    return rc;
}

/* ---- the verb ----------------------------------------------------------- */

static void sim_usage(FILE *out)
{
    fprintf(out,
            "usage: atom sim [--port N] [--address 127.0.0.1] [--tls] [--token TOKEN]\n"
            "                [--kubeconfig PATH] [--scenario FILE.lua] [--time-scale X]\n"
            "                [--ready-after SECONDS] [--nodes N]\n"
            "\n"
            "Serves a simulated Kubernetes API server on loopback (port 0: any free port)\n"
            "and writes a kubeconfig for it (default ./atom-sim.kubeconfig) once listening.\n"
            "With --tls it generates a CA, server and client certificates and a token, and\n"
            "writes PATH.token, PATH.ca.crt, PATH.client.crt, PATH.client.key beside it.\n");
}

static int sim_token_ok(const char *t)
{
    for (; *t; t++)
        if (!((*t >= 'a' && *t <= 'z') || (*t >= 'A' && *t <= 'Z') || (*t >= '0' && *t <= '9') ||
              strchr("-._~+/=", *t)))
            return 0;
    return 1;
}

static int sim_parse_number(const char *flag, const char *s, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= min && v <= max)) {
        fprintf(stderr, "atom sim: %s needs a number between %g and %g, got '%s'\n", flag, min,
                max, s);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_sim(int argc, char **argv)
{
    sim_options o = {
        .port = 0,
        .address = "127.0.0.1",
        .kubeconfig = "atom-sim.kubeconfig",
        .handler_module = "atom.sim",
        .time_scale = 1,
        .ready_after = 1,
        .nodes = 3,
    };
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            sim_usage(stdout);
            return CLI_EXIT_OK;
        }
        if (strcmp(arg, "--tls") == 0) {
            o.tls = 1;
            continue;
        }
        /* --flag value and --flag=value */
        const char *eq = strchr(arg, '=');
        size_t nlen = eq ? (size_t)(eq - arg) : strlen(arg);
        const char *val = eq ? eq + 1 : (i + 1 < argc ? argv[i + 1] : NULL);
#define SIM_FLAG(name) (nlen == strlen(name) && strncmp(arg, name, nlen) == 0)
        int known = SIM_FLAG("--port") || SIM_FLAG("--address") || SIM_FLAG("--token") ||
                    SIM_FLAG("--kubeconfig") || SIM_FLAG("--scenario") ||
                    SIM_FLAG("--time-scale") || SIM_FLAG("--ready-after") ||
                    SIM_FLAG("--nodes") || SIM_FLAG("--handler-module");
        if (!known) {
            fprintf(stderr, "atom sim: unknown argument '%s'\n", arg);
            sim_usage(stderr);
            return CLI_EXIT_USAGE;
        }
        if (val == NULL) {
            fprintf(stderr, "atom sim: %s needs a value\n", arg);
            return CLI_EXIT_USAGE;
        }
        if (!eq)
            i++;
        double num = 0;
        if (SIM_FLAG("--port")) {
            if (sim_parse_number("--port", val, 0, 65535, &num) || num != floor(num))
                return CLI_EXIT_USAGE;
            o.port = (int)num;
        } else if (SIM_FLAG("--address")) {
            o.address = val;
        } else if (SIM_FLAG("--token")) {
            if (!*val || strlen(val) > TLS_TOKEN_MAX || !sim_token_ok(val)) {
                fprintf(stderr, "atom sim: --token must be 1-%d characters of [A-Za-z0-9-._~+/=]\n",
                        TLS_TOKEN_MAX);
                return CLI_EXIT_USAGE;
            }
            o.token = val;
        } else if (SIM_FLAG("--kubeconfig")) {
            o.kubeconfig = val;
        } else if (SIM_FLAG("--scenario")) {
            o.scenario = val;
        } else if (SIM_FLAG("--time-scale")) {
            if (sim_parse_number("--time-scale", val, 1e-6, 1e6, &o.time_scale))
                return CLI_EXIT_USAGE;
        } else if (SIM_FLAG("--ready-after")) {
            if (sim_parse_number("--ready-after", val, 0, 1e7, &o.ready_after))
                return CLI_EXIT_USAGE;
        } else if (SIM_FLAG("--nodes")) {
            if (sim_parse_number("--nodes", val, 1, 10000, &num))
                return CLI_EXIT_USAGE;
            o.nodes = (int)num;
        } else if (SIM_FLAG("--handler-module")) {
            o.handler_module = val;
        }
#undef SIM_FLAG
    }
    atom_error err;
    atom_error_clear(&err);
    int rc = sim_run(&o, &err);
    libevent_global_shutdown();
    if (rc != ATOM_OK) {
        fprintf(stderr, "atom sim: %s\n", err.message);
        return rc == ATOM_EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_FAILED;
    }
    return CLI_EXIT_OK;
}
