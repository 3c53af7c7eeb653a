/*
 * l_http.c — Lua module `atom.http`: the Kubernetes transport. One
 * connection object per API server, all requests asynchronous on one libcurl
 * multi handle (connections reused, HTTP/2 over TLS when the server offers
 * it, streams multiplexed), retries of 429/5xx with capped exponential
 * backoff and Retry-After done on timers inside the poll loop.
 *
 *   http.new{ server = "https://host:port[/prefix]", ca_pem =, insecure =,
 *             tls_server_name =, client_cert_pem =, client_key_pem =, proxy =,
 *             user_agent =, timeout = seconds (per request, default 60),
 *             connect_timeout = seconds (default 10), retries = tries after the
 *             first (default 8), backoff = first delay (0.1), backoff_max = 5,
 *             retry_window = seconds (60), max_connections = per host (16) }
 *   conn:send{ method =, path = "/api/v1/...?q", headers = { "Name: v", ... }
 *              or { Name = "v" }, body = "bytes", want_headers = true } -> id
 *       want_headers = false leaves the headers table out of the completion
 *       (content_type is always there): bulk applies need nothing else.
 *   conn:stream{ method = "GET", path =, headers = } -> id
 *   conn:poll(timeout_seconds) -> array of completions:
 *       { id, status, body, headers = { lowercase-name = value }, content_type,
 *         warnings = { "Warning header value", ... } (only when there are any;
 *         Kubernetes may send several, so they are not in headers alone),
 *         error, attempts,
 *         h2 = true when the answer came over HTTP/2,
 *         connects = new connections this transfer opened (last try) }
 *       { id, chunk = "bytes" }           (2xx stream body, in arrival order)
 *       { id, done = true, status, body (non-2xx only), headers, error }
 *   conn:request{...} -> completion       (send + drive until that id is done;
 *                                          other completions wait for poll)
 *   conn:cancel(id), conn:pending() -> n, conn:close()
 *
 * Ownership: the connection userdata owns the multi handle, every easy
 * handle, every request and its buffers; the configured strings (PEM blobs
 * included) are copied into it and handed to curl with CURL_BLOB_NOCOPY, so
 * they must outlive every request — which they do, since close/__gc frees
 * requests first. Credentials are per-request headers chosen by Lua; nothing
 * here caches them. No global mutable state (curl_global_init runs once).
 */
#include <ctype.h>
#include <curl/curl.h>
#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "bindings.h"
#include "clock.h"

#define HTTP_CONN_MT "atom.http.conn"
/* Easy handles are costly to create (many allocations); a bulk apply reuses
 * the ones its finished requests leave behind. */
#define HTTP_SPARE_EASY 32

enum req_state { REQ_WAITING, REQ_ACTIVE, REQ_DONE };

typedef struct buf {
    char *data;
    size_t len, cap;
} buf;

typedef struct http_req {
    struct http_req *prev, *next;
    struct http_conn *conn;
    lua_Integer id;
    CURL *easy;
    struct curl_slist *headers;
    char *method, *url, *body;
    size_t body_len;
    int is_stream, idempotent, want_headers;
    enum req_state state;
    buf resp, resp_headers, chunk;
    long status;
    int attempts, streamed;
    double first_try, next_try;
    char error[CURL_ERROR_SIZE];
    char curl_error[CURL_ERROR_SIZE];
} http_req;

typedef struct http_conn {
    CURLM *multi;
    char *server, *ca_pem, *cert_pem, *key_pem, *proxy, *sni, *user_agent;
    char *connect_to_entry;
    struct curl_slist *connect_to;
    char *url_base;   /* server with the host replaced by sni when set */
    char *host_header;
    int insecure;
    double timeout, connect_timeout, backoff, backoff_max, retry_window;
    int retries;
    lua_Integer next_id;
    http_req *head, *tail;
    size_t ready; /* requests DONE or streams holding undelivered chunks */
    CURL *spare[HTTP_SPARE_EASY]; /* reset easy handles kept for reuse */
    size_t nspare;
    /* The sockets curl wants watched and its next timeout, from the
     * socket/timer callbacks: curl_multi_socket_action then touches only
     * the transfers with activity, so hundreds in flight stay cheap. */
    struct pollfd *fds;
    size_t nfds, capfds;
    double timer_at; /* monotonic seconds; < 0 = no timer */
    int closed;
    /* The server's protocol as its answers showed it (0 until one came, then 1 or 2).
     * PIPEWAIT makes a request wait for a busy connection in the hope it multiplexes;
     * once the server is known to speak HTTP/1.1 that hope is false and the wait
     * serialises requests that could run side by side. */
    int http_major;
} http_conn;

static int buf_add(buf *b, const char *data, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 1024;
        while (nc < b->len + n + 1)
            nc *= 2;
        char *p = realloc(b->data, nc);
        if (!p)
            return -1;
        b->data = p;
        b->cap = nc;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

static void buf_free(buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static char *dupstr(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* ---- requests --------------------------------------------------------- */

static void req_unlink(http_conn *c, http_req *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        c->head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        c->tail = r->prev;
    r->prev = r->next = NULL;
}

static int req_is_ready(const http_req *r)
{
    return r->state == REQ_DONE || (r->is_stream && r->chunk.len > 0);
}

static void req_free(http_conn *c, http_req *r)
{
    if (req_is_ready(r))
        c->ready--;
    req_unlink(c, r);
    if (r->easy) {
        if (r->state == REQ_ACTIVE)
            curl_multi_remove_handle(c->multi, r->easy);
        if (c->nspare < HTTP_SPARE_EASY && !c->closed) {
            curl_easy_reset(r->easy);
            c->spare[c->nspare++] = r->easy;
        } else {
            curl_easy_cleanup(r->easy);
        }
    }
    curl_slist_free_all(r->headers);
    free(r->method);
    free(r->url);
    free(r->body);
    buf_free(&r->resp);
    buf_free(&r->resp_headers);
    buf_free(&r->chunk);
    free(r);
}

static http_req *req_find(http_conn *c, lua_Integer id)
{
    for (http_req *r = c->head; r; r = r->next)
        if (r->id == id)
            return r;
    return NULL;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    http_req *r = ud;
    size_t n = size * nmemb;
    if (r->is_stream) {
        long code = 0;
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
        if (code >= 200 && code < 300) {
            int was_ready = req_is_ready(r);
            if (buf_add(&r->chunk, ptr, n) < 0)
                return 0;
            r->streamed = 1;
            if (!was_ready)
                r->conn->ready++;
            return n;
        }
    }
    return buf_add(&r->resp, ptr, n) < 0 ? 0 : n;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud)
{
    http_req *r = ud;
    size_t n = size * nmemb;
    /* A new status line (after 100 Continue or a proxy CONNECT) starts over. */
    if (n >= 5 && strncmp(ptr, "HTTP/", 5) == 0)
        r->resp_headers.len = 0;
    return buf_add(&r->resp_headers, ptr, n) < 0 ? 0 : n;
}

static void set_blob(CURL *e, CURLoption opt, char *pem)
{
    struct curl_blob blob = {.data = pem, .len = strlen(pem), .flags = CURL_BLOB_NOCOPY};
    curl_easy_setopt(e, opt, &blob);
}

static int req_setup(http_conn *c, http_req *r)
{
    CURL *e = r->easy;
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_URL, r->url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(e, CURLOPT_PIPEWAIT, c->http_major == 1 ? 0L : 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->curl_error);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(c->connect_timeout * 1000));
    if (!r->is_stream && c->timeout > 0)
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(c->timeout * 1000));
    if (r->is_stream) {
        /* A watch may be silent for minutes; TCP keepalive notices a dead peer. */
        curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    }
    if (c->user_agent)
        curl_easy_setopt(e, CURLOPT_USERAGENT, c->user_agent);
    if (strcmp(r->method, "GET") == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(r->method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body ? r->body : "");
    }
    if (c->ca_pem)
        set_blob(e, CURLOPT_CAINFO_BLOB, c->ca_pem);
    if (c->cert_pem) {
        set_blob(e, CURLOPT_SSLCERT_BLOB, c->cert_pem);
        curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
    }
    if (c->key_pem) {
        set_blob(e, CURLOPT_SSLKEY_BLOB, c->key_pem);
        curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
    }
    if (c->insecure) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (c->proxy)
        curl_easy_setopt(e, CURLOPT_PROXY, c->proxy);
    else
        curl_easy_setopt(e, CURLOPT_PROXY, ""); /* kubeconfig decides, not env */
    if (c->connect_to)
        curl_easy_setopt(e, CURLOPT_CONNECT_TO, c->connect_to);
    return 0;
}

static void req_start(http_conn *c, http_req *r)
{
    r->attempts++;
    r->resp.len = 0;
    r->resp_headers.len = 0;
    r->curl_error[0] = '\0';
    r->status = 0;
    r->state = REQ_ACTIVE;
    CURLMcode mc = curl_multi_add_handle(c->multi, r->easy);
    if (mc != CURLM_OK) {
        snprintf(r->error, sizeof r->error, "%s", curl_multi_strerror(mc));
        r->state = REQ_DONE;
        c->ready++;
    }
}

/* One header line of an answer: name and value, the value trimmed. */
typedef struct header_line {
    const char *name, *value;
    size_t name_len, value_len;
} header_line;

/* Steps *pos through r's header lines (start with *pos = NULL), skipping the status line
 * and anything without a colon; 0 after the last. The one reader of the raw headers. */
static int next_header(http_req *r, const char **pos, header_line *h)
{
    const char *end = r->resp_headers.data ? r->resp_headers.data + r->resp_headers.len : NULL;
    const char *p = *pos ? *pos : r->resp_headers.data;
    while (p && p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        *pos = eol + 1;
        if (colon && strncmp(p, "HTTP/", 5) != 0) {
            const char *v = colon + 1, *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && isspace((unsigned char)ve[-1]))
                ve--;
            h->name = p;
            h->name_len = (size_t)(colon - p);
            h->value = v;
            h->value_len = (size_t)(ve - v);
            return 1;
        }
        p = eol + 1;
    }
    return 0;
}

static int header_is(const header_line *h, const char *name)
{
    return h->name_len == strlen(name) && strncasecmp(h->name, name, h->name_len) == 0;
}

static const char *header_value(http_req *r, const char *name, size_t *len)
{
    const char *pos = NULL;
    header_line h;
    while (next_header(r, &pos, &h)) {
        if (header_is(&h, name)) {
            *len = h.value_len;
            return h.value;
        }
    }
    return NULL;
}

static int retryable_status(long status)
{
    return status == 429 || (status >= 500 && status != 501 && status != 505);
}

/* Decides what a finished transfer means: done, or another try later. */
static void req_finished(http_conn *c, http_req *r, CURLcode rc)
{
    curl_multi_remove_handle(c->multi, r->easy);
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->status);
    double now = atom_monotonic();
    int transport_failed = rc != CURLE_OK;
    int want_retry = 0;
    double delay = c->backoff * pow(2.0, r->attempts - 1);
    if (delay > c->backoff_max)
        delay = c->backoff_max;
    if (!r->streamed && r->attempts <= c->retries) {
        if (transport_failed)
            want_retry = r->idempotent && rc != CURLE_OPERATION_TIMEDOUT &&
                         rc != CURLE_SSL_CACERT && rc != CURLE_PEER_FAILED_VERIFICATION &&
                         rc != CURLE_SSL_CERTPROBLEM && rc != CURLE_URL_MALFORMAT &&
                         rc != CURLE_UNSUPPORTED_PROTOCOL;
        else if (retryable_status(r->status)) {
            want_retry = 1;
            size_t len;
            const char *ra = header_value(r, "Retry-After", &len);
            if (ra && len > 0 && len < 16 && isdigit((unsigned char)ra[0])) {
                /* The server asked for this delay; the cap protects our window only. */
                delay = strtod(ra, NULL);
            }
        }
        if (want_retry && now + delay - r->first_try > c->retry_window)
            want_retry = 0;
    }
    if (want_retry) {
        r->state = REQ_WAITING;
        r->next_try = now + delay;
        return;
    }
    if (transport_failed)
        snprintf(r->error, sizeof r->error, "%s",
                 r->curl_error[0] ? r->curl_error : curl_easy_strerror(rc));
    int was_ready = req_is_ready(r);
    r->state = REQ_DONE;
    if (!was_ready)
        c->ready++;
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    (void)socketp;
    http_conn *c = userp;
    size_t i;
    for (i = 0; i < c->nfds && c->fds[i].fd != fd; i++) {
    }
    if (what == CURL_POLL_REMOVE) {
        if (i < c->nfds)
            c->fds[i] = c->fds[--c->nfds];
        return 0;
    }
    if (i == c->nfds) {
        if (c->nfds == c->capfds) {
            size_t nc = c->capfds ? c->capfds * 2 : 16;
            struct pollfd *p = realloc(c->fds, nc * sizeof *p);
            if (!p)
                return -1;
            c->fds = p;
            c->capfds = nc;
        }
        c->nfds++;
    }
    c->fds[i].fd = fd;
    c->fds[i].events = (short)(((what & CURL_POLL_IN) ? POLLIN : 0) |
                               ((what & CURL_POLL_OUT) ? POLLOUT : 0));
    c->fds[i].revents = 0;
    return 0;
}

static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    http_conn *c = userp;
    c->timer_at = timeout_ms < 0 ? -1 : atom_monotonic() + (double)timeout_ms / 1000.0;
    return 0;
}

static void collect_done(http_conn *c)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(c->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        http_req *r = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        CURLcode rc = m->data.result;
        if (r)
            req_finished(c, r, rc);
    }
}

/* Runs the multi handle until something is reportable or the time is up. */
static void conn_drive(http_conn *c, double timeout, lua_Integer only_id)
{
    double deadline = atom_monotonic() + (timeout > 0 ? timeout : 0);
    struct pollfd *snap = NULL;
    size_t snap_cap = 0;
    for (;;) {
        double now = atom_monotonic(), next_wake = deadline;
        for (http_req *r = c->head; r; r = r->next) {
            if (r->state != REQ_WAITING)
                continue;
            if (r->next_try <= now)
                req_start(c, r);
            else if (r->next_try < next_wake)
                next_wake = r->next_try;
        }
        int running = 0;
        if (c->timer_at >= 0 && c->timer_at <= atom_monotonic()) {
            c->timer_at = -1;
            curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        }
        collect_done(c);
        if (only_id) {
            http_req *r = req_find(c, only_id);
            if (!r || r->state == REQ_DONE)
                break;
        } else if (c->ready > 0) {
            break;
        }
        now = atom_monotonic();
        if (now >= deadline)
            break;
        /* Transfers that just failed may now wait for a retry: wake for them. */
        for (http_req *r = c->head; r; r = r->next)
            if (r->state == REQ_WAITING && r->next_try < next_wake)
                next_wake = r->next_try;
        double wake = next_wake < deadline ? next_wake : deadline;
        if (c->timer_at >= 0 && c->timer_at < wake)
            wake = c->timer_at;
        int ms = (int)ceil((wake - now) * 1000);
        if (ms < 0)
            ms = 0;
        /* curl may change its socket set while we handle events: poll a copy. */
        if (snap_cap < c->nfds) {
            struct pollfd *p = realloc(snap, c->nfds * sizeof *p);
            if (!p)
                break;
            snap = p;
            snap_cap = c->nfds;
        }
        size_t n = c->nfds;
        if (n)
            memcpy(snap, c->fds, n * sizeof *snap);
        int pr = poll(snap, (nfds_t)n, ms);
        if (pr <= 0)
            continue;
        for (size_t i = 0; i < n; i++) {
            if (!snap[i].revents)
                continue;
            int ev = 0;
            if (snap[i].revents & (POLLIN | POLLHUP))
                ev |= CURL_CSELECT_IN;
            if (snap[i].revents & POLLOUT)
                ev |= CURL_CSELECT_OUT;
            if (snap[i].revents & (POLLERR | POLLNVAL))
                ev |= CURL_CSELECT_ERR;
            curl_multi_socket_action(c->multi, snap[i].fd, ev, &running);
        }
    }
    free(snap);
}

/* ---- Lua side ---------------------------------------------------------- */

static http_conn *check_conn(lua_State *L)
{
    http_conn *c = luaL_checkudata(L, 1, HTTP_CONN_MT);
    if (c->closed)
        luaL_error(L, "http connection is closed");
    return c;
}

static void conn_free(http_conn *c)
{
    c->closed = 1;
    while (c->head)
        req_free(c, c->head);
    while (c->nspare > 0)
        curl_easy_cleanup(c->spare[--c->nspare]);
    if (c->multi) {
        curl_multi_cleanup(c->multi);
        c->multi = NULL;
    }
    curl_slist_free_all(c->connect_to);
    c->connect_to = NULL;
    free(c->fds);
    c->fds = NULL;
    c->nfds = c->capfds = 0;
    char **strs[] = {&c->server, &c->ca_pem, &c->cert_pem, &c->key_pem, &c->proxy,
                     &c->sni, &c->user_agent, &c->connect_to_entry, &c->url_base,
                     &c->host_header};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        free(*strs[i]);
        *strs[i] = NULL;
    }
    c->closed = 1;
}

static int l_conn_gc(lua_State *L)
{
    conn_free(luaL_checkudata(L, 1, HTTP_CONN_MT));
    return 0;
}

static const char *opt_string(lua_State *L, int idx, const char *key)
{
    lua_getfield(L, idx, key);
    int t = lua_type(L, -1);
    if (t != LUA_TNIL && t != LUA_TSTRING)
        luaL_error(L, "http: %s must be a string", key);
    const char *s = t == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    /* Only real strings: the table keeps them alive after the pop (a number
     * converted here would be a temporary). */
    lua_pop(L, 1);
    return (s && *s) ? s : NULL;
}

static double opt_number(lua_State *L, int idx, const char *key, double def)
{
    lua_getfield(L, idx, key);
    double v = luaL_optnumber(L, -1, def);
    lua_pop(L, 1);
    return v;
}

/* Splits "https://host:port/prefix" into its parts for the SNI override. */
static int split_url(const char *url, char *scheme, size_t ss, char *host, size_t hs,
                     long *port, const char **rest)
{
    const char *p = strstr(url, "://");
    if (!p || (size_t)(p - url) >= ss)
        return -1;
    memcpy(scheme, url, (size_t)(p - url));
    scheme[p - url] = '\0';
    const char *h = p + 3, *he;
    if (*h == '[') {
        he = strchr(h, ']');
        if (!he)
            return -1;
        he++;
    } else {
        he = h + strcspn(h, ":/");
    }
    if ((size_t)(he - h) >= hs)
        return -1;
    memcpy(host, h, (size_t)(he - h));
    host[he - h] = '\0';
    *port = strcmp(scheme, "https") == 0 ? 443 : 80;
    if (*he == ':')
        *port = strtol(he + 1, (char **)&he, 10);
    *rest = he;
    return 0;
}

static int l_http_new(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    const char *server = opt_string(L, 1, "server");
    if (!server)
        return luaL_error(L, "http.new: server is required");
    http_conn *c = lua_newuserdatauv(L, sizeof *c, 0);
    memset(c, 0, sizeof *c);
    c->closed = 1; /* until fully built, __gc frees what exists */
    luaL_setmetatable(L, HTTP_CONN_MT);

    size_t sl = strlen(server);
    while (sl > 0 && server[sl - 1] == '/')
        sl--;
    c->server = strndup(server, sl);
    c->ca_pem = dupstr(opt_string(L, 1, "ca_pem"));
    c->cert_pem = dupstr(opt_string(L, 1, "client_cert_pem"));
    c->key_pem = dupstr(opt_string(L, 1, "client_key_pem"));
    c->proxy = dupstr(opt_string(L, 1, "proxy"));
    c->sni = dupstr(opt_string(L, 1, "tls_server_name"));
    c->user_agent = dupstr(opt_string(L, 1, "user_agent"));
    lua_getfield(L, 1, "insecure");
    c->insecure = lua_toboolean(L, -1);
    lua_pop(L, 1);
    c->timeout = opt_number(L, 1, "timeout", 60);
    c->connect_timeout = opt_number(L, 1, "connect_timeout", 10);
    c->retries = (int)opt_number(L, 1, "retries", 8);
    c->backoff = opt_number(L, 1, "backoff", 0.1);
    c->backoff_max = opt_number(L, 1, "backoff_max", 5);
    c->retry_window = opt_number(L, 1, "retry_window", 60);
    long max_conns = (long)opt_number(L, 1, "max_connections", 16);
    c->multi = curl_multi_init();
    if (!c->server || !c->multi)
        return luaL_error(L, "http.new: out of memory");
    curl_multi_setopt(c->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    c->timer_at = -1;
    curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, max_conns);

    c->url_base = strdup(c->server);
    if (c->sni) {
        /* The URL names the TLS server name (so SNI and verification use it);
         * CONNECT_TO sends the bytes to the real host. */
        char scheme[16], host[256];
        long port;
        const char *rest;
        if (split_url(c->server, scheme, sizeof scheme, host, sizeof host, &port, &rest) < 0)
            return luaL_error(L, "http.new: cannot parse server URL %s", c->server);
        size_t n = strlen(c->sni) * 2 + strlen(host) + strlen(rest) + 64;
        free(c->url_base);
        c->url_base = malloc(n);
        c->connect_to_entry = malloc(n);
        c->host_header = malloc(n);
        if (!c->url_base || !c->connect_to_entry || !c->host_header)
            return luaL_error(L, "http.new: out of memory");
        snprintf(c->url_base, n, "%s://%s:%ld%s", scheme, c->sni, port, rest);
        snprintf(c->connect_to_entry, n, "%s:%ld:%s:%ld", c->sni, port, host, port);
        snprintf(c->host_header, n, "Host: %s:%ld", host, port);
        c->connect_to = curl_slist_append(NULL, c->connect_to_entry);
    }
    c->next_id = 1;
    c->closed = 0;
    return 1;
}

static int method_is_idempotent(const char *m)
{
    return strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0 || strcmp(m, "PUT") == 0 ||
           strcmp(m, "DELETE") == 0 || strcmp(m, "OPTIONS") == 0;
}

static int add_header(http_req *r, const char *line)
{
    struct curl_slist *n = curl_slist_append(r->headers, line);
    if (!n)
        return -1;
    r->headers = n;
    return 0;
}

static int submit(lua_State *L, int is_stream)
{
    http_conn *c = check_conn(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    const char *method = opt_string(L, 2, "method");
    const char *path = opt_string(L, 2, "path");
    if (!method)
        method = "GET";
    if (!path || path[0] != '/')
        return luaL_error(L, "http request: path must start with '/'");
    lua_getfield(L, 2, "body");
    size_t body_len = 0;
    const char *body = lua_isnil(L, -1) ? NULL : luaL_checklstring(L, -1, &body_len);

    /* Check the headers before anything is allocated, so a bad one raises
     * with nothing half-built. */
    lua_getfield(L, 2, "headers");
    if (lua_istable(L, -1)) {
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            if (lua_type(L, -1) != LUA_TSTRING ||
                (lua_type(L, -2) != LUA_TNUMBER && lua_type(L, -2) != LUA_TSTRING))
                return luaL_error(L, "http request: headers must be strings "
                                     "(\"Name: value\" or Name = \"value\")");
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);

    http_req *r = calloc(1, sizeof *r);
    if (!r)
        return luaL_error(L, "http request: out of memory");
    r->conn = c;
    /* Link first so that any error below still frees r with the connection. */
    r->prev = c->tail;
    if (c->tail)
        c->tail->next = r;
    else
        c->head = r;
    c->tail = r;
    r->state = REQ_WAITING;
    r->is_stream = is_stream;
    r->method = strdup(method);
    size_t ul = strlen(c->url_base) + strlen(path) + 1;
    r->url = malloc(ul);
    if (r->url)
        snprintf(r->url, ul, "%s%s", c->url_base, path);
    if (body) {
        r->body = malloc(body_len + 1);
        if (r->body) {
            memcpy(r->body, body, body_len);
            r->body[body_len] = '\0';
            r->body_len = body_len;
        }
    }
    r->easy = c->nspare > 0 ? c->spare[--c->nspare] : curl_easy_init();
    if (!r->method || !r->url || (body && !r->body) || !r->easy) {
        req_free(c, r);
        return luaL_error(L, "http request: out of memory");
    }
    r->idempotent = method_is_idempotent(method);
    lua_getfield(L, 2, "want_headers");
    r->want_headers = lua_isnil(L, -1) || lua_toboolean(L, -1);
    lua_pop(L, 1);
    int bad = add_header(r, "Expect:");
    if (c->host_header)
        bad |= add_header(r, c->host_header);
    lua_getfield(L, 2, "headers");
    if (lua_istable(L, -1)) {
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            if (lua_type(L, -2) == LUA_TNUMBER) {
                bad |= add_header(r, lua_tostring(L, -1));
            } else {
                lua_pushvalue(L, -2);
                lua_pushliteral(L, ": ");
                lua_pushvalue(L, -3);
                lua_concat(L, 3);
                bad |= add_header(r, lua_tostring(L, -1));
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    if (bad) {
        req_free(c, r);
        return luaL_error(L, "http request: out of memory");
    }
    r->id = c->next_id++;
    req_setup(c, r);
    r->first_try = atom_monotonic();
    req_start(c, r);
    lua_pushinteger(L, r->id);
    return 1;
}

static int l_conn_send(lua_State *L)
{
    return submit(L, 0);
}

static int l_conn_stream(lua_State *L)
{
    return submit(L, 1);
}

static void push_headers(lua_State *L, http_req *r)
{
    lua_newtable(L);
    const char *pos = NULL;
    header_line h;
    while (next_header(r, &pos, &h)) {
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        for (size_t i = 0; i < h.name_len; i++)
            luaL_addchar(&b, (char)tolower((unsigned char)h.name[i]));
        luaL_pushresult(&b);
        lua_pushlstring(L, h.value, h.value_len);
        lua_settable(L, -3);
    }
}

/* Every Warning header of r's answer as a list in the table on top, unless there is none:
 * the server's deprecation and validation notes, which kubectl prints. */
static void push_warnings(lua_State *L, http_req *r)
{
    lua_Integer n = 0;
    const char *pos = NULL;
    header_line h;
    while (next_header(r, &pos, &h)) {
        if (!header_is(&h, "Warning"))
            continue;
        if (n == 0)
            lua_newtable(L);
        lua_pushlstring(L, h.value, h.value_len);
        lua_rawseti(L, -2, ++n);
    }
    if (n > 0)
        lua_setfield(L, -2, "warnings");
}

/* Pushes r's pending report; frees r when it is finished. */
static void push_report(lua_State *L, http_conn *c, http_req *r, lua_Integer *n)
{
    if (r->is_stream && r->chunk.len > 0) {
        lua_createtable(L, 0, 2);
        lua_pushinteger(L, r->id);
        lua_setfield(L, -2, "id");
        lua_pushlstring(L, r->chunk.data, r->chunk.len);
        lua_setfield(L, -2, "chunk");
        lua_seti(L, -2, ++*n);
        r->chunk.len = 0;
        if (r->state != REQ_DONE)
            c->ready--;
    }
    if (r->state != REQ_DONE)
        return;
    lua_createtable(L, 0, 7);
    lua_pushinteger(L, r->id);
    lua_setfield(L, -2, "id");
    lua_pushinteger(L, r->status);
    lua_setfield(L, -2, "status");
    if (!r->is_stream || r->resp.len > 0) {
        lua_pushlstring(L, r->resp.data ? r->resp.data : "", r->resp.len);
        lua_setfield(L, -2, "body");
    }
    /* A header table per answer costs; bulk callers only need the type. */
    if (r->want_headers) {
        push_headers(L, r);
        lua_setfield(L, -2, "headers");
    }
    size_t ctl;
    const char *ct = header_value(r, "Content-Type", &ctl);
    if (ct) {
        lua_pushlstring(L, ct, ctl);
        lua_setfield(L, -2, "content_type");
    }
    push_warnings(L, r);
    if (r->error[0]) {
        lua_pushstring(L, r->error);
        lua_setfield(L, -2, "error");
    }
    lua_pushinteger(L, r->attempts);
    lua_setfield(L, -2, "attempts");
    long connects = 0;
    curl_easy_getinfo(r->easy, CURLINFO_NUM_CONNECTS, &connects);
    lua_pushinteger(L, connects);
    lua_setfield(L, -2, "connects");
    long hv = 0;
    curl_easy_getinfo(r->easy, CURLINFO_HTTP_VERSION, &hv);
    if (hv != 0)
        c->http_major = hv == CURL_HTTP_VERSION_2_0 ? 2 : 1;
    if (hv == CURL_HTTP_VERSION_2_0) {
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "h2");
    }
    if (r->is_stream) {
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "done");
    }
    lua_seti(L, -2, ++*n);
    req_free(c, r);
}

static int l_conn_poll(lua_State *L)
{
    http_conn *c = check_conn(L);
    double timeout = luaL_optnumber(L, 2, 0);
    conn_drive(c, timeout, 0);
    lua_createtable(L, (int)c->ready, 0);
    lua_Integer n = 0;
    http_req *r = c->head;
    while (r && c->ready > 0) {
        http_req *next = r->next;
        if (req_is_ready(r))
            push_report(L, c, r, &n);
        r = next;
    }
    return 1;
}

static int l_conn_request(lua_State *L)
{
    http_conn *c = check_conn(L);
    lua_settop(L, 2);
    l_conn_send(L);
    lua_Integer id = lua_tointeger(L, -1);
    conn_drive(c, 1e9, id);
    http_req *r = req_find(c, id);
    if (!r || r->state != REQ_DONE)
        return luaL_error(L, "http request %d vanished", (int)id);
    lua_createtable(L, 1, 0);
    lua_Integer n = 0;
    push_report(L, c, r, &n);
    lua_geti(L, -1, 1);
    return 1;
}

static int l_conn_cancel(lua_State *L)
{
    http_conn *c = check_conn(L);
    http_req *r = req_find(c, luaL_checkinteger(L, 2));
    if (r)
        req_free(c, r);
    lua_pushboolean(L, r != NULL);
    return 1;
}

static int l_conn_pending(lua_State *L)
{
    http_conn *c = check_conn(L);
    lua_Integer n = 0;
    for (http_req *r = c->head; r; r = r->next)
        n++;
    lua_pushinteger(L, n);
    return 1;
}

static int l_conn_close(lua_State *L)
{
    conn_free(luaL_checkudata(L, 1, HTTP_CONN_MT));
    return 0;
}

static int l_conn_tostring(lua_State *L)
{
    http_conn *c = luaL_checkudata(L, 1, HTTP_CONN_MT);
    lua_pushfstring(L, "atom.http(%s)", c->server ? c->server : "closed");
    return 1;
}

static int l_http_version(lua_State *L)
{
    lua_pushstring(L, curl_version());
    return 1;
}

int luaopen_atom_http(lua_State *L)
{
    /* Idempotent; libcurl keeps its own count. Needed before any multi handle. */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    static const luaL_Reg methods[] = {
        {"send", l_conn_send},     {"stream", l_conn_stream}, {"poll", l_conn_poll},
        {"request", l_conn_request}, {"cancel", l_conn_cancel}, {"pending", l_conn_pending},
        {"close", l_conn_close},   {NULL, NULL},
    };
    if (luaL_newmetatable(L, HTTP_CONN_MT)) {
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_conn_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, l_conn_gc);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, l_conn_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
    static const luaL_Reg fns[] = {
        {"new", l_http_new},
        {"version", l_http_version},
        {NULL, NULL},
    };
    luaL_newlib(L, fns);
    return 1;
}
