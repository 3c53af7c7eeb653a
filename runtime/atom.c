/*
 * atom.c — libatom's public API (include/atom.h) on top of the Lua host.
 *
 * Each atom_runtime owns one lh_host (its own lua_State) and keeps all of
 * its configuration inside that state's registry (table ATOM_CFG_KEY), so
 * two handles share nothing. The work itself is done by the Lua module
 * atom.api, which the Lua module `atom` (rockspec) uses too: one code path
 * for C embedders, plain Lua and the CLI's engine.
 *
 * Ownership: the handle owns its host, its copied strings, its last error
 * and the last result (registry slot ATOM_LAST_KEY) whose strings are handed
 * out "valid until the next call". Releases are owned by the caller but
 * linked into the handle so atom_runtime_free can free forgotten ones.
 */
#include "error.h"
#include "atom.h"

#include <curl/curl.h>
#include <lauxlib.h>
#include <lua.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua_host.h"
#include "version.h"

#define ATOM_CFG_KEY "atom.embed.config"   /* { options = {}, app = {} } */
#define ATOM_LAST_KEY "atom.embed.last"    /* the last result handed out */

struct atom_runtime {
    lh_host *host;
    atom_error err;
    char *kubeconfig;
    char *kubeconfig_data;
    size_t kubeconfig_data_len;
    char *context;
    char *ns;
    atom_log_fn log;
    void *log_user;
    atom_progress_fn progress;
    void *progress_user;
    atom_release *releases;  /* loaded and not yet freed */
    atomic_int cancels;      /* atom_runtime_cancel_run calls since the run began */
};

struct atom_release {
    atom_runtime *rt;
    int ref;          /* registry reference to the Lua release table */
    char *name;
    atom_release *prev, *next;
};

/* ---- small helpers ---------------------------------------------------- */

static int rt_fail(atom_runtime *rt, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int rt_fail(atom_runtime *rt, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rt->err.code = code;
    vsnprintf(rt->err.message, sizeof rt->err.message, fmt, ap);
    va_end(ap);
    return code;
}

static int rt_ok(atom_runtime *rt)
{
    atom_error_clear(&rt->err);
    return ATOM_OK;
}

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* Replaces *slot with a copy of s (NULL clears). */
static int set_copy(atom_runtime *rt, char **slot, const char *s, size_t n)
{
    char *copy = NULL;
    if (s && (copy = dup_n(s, n)) == NULL)
        return rt_fail(rt, ATOM_ENOMEM, "out of memory copying a setting");
    free(*slot);
    *slot = copy;
    return rt_ok(rt);
}

/* As set_copy, for a NUL-terminated string. */
static int set_string_copy(atom_runtime *rt, char **slot, const char *s)
{
    return set_copy(rt, slot, s, s ? strlen(s) : 0);
}

static int is_identifier(const char *s)
{
    if (s == NULL || !(*s == '_' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
        return 0;
    for (; *s; s++)
        if (!(*s == '_' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9')))
            return 0;
    return 1;
}

static const char *const state_names[] = {
    "", "Pending", "Updating", "Running", "Cancelled", "Deadline",
    "Error", "Rollback", "Reverted", "Failure",
};
#define STATE_COUNT (sizeof state_names / sizeof state_names[0])

/* ---- version, states, status names ------------------------------------ */

const char *atom_version(void)
{
    return ATOM_VERSION_STRING;
}

const char *atom_status_string(int code)
{
    return atom_status_name(code);
}

const char *atom_state_name(atom_state state)
{
    if ((unsigned)state >= STATE_COUNT)
        return "";
    return state_names[state];
}

atom_state atom_state_from_name(const char *name)
{
    if (name == NULL || *name == '\0')
        return ATOM_STATE_NONE;
    for (unsigned i = 1; i < STATE_COUNT; i++)
        if (strcmp(state_names[i], name) == 0)
            return (atom_state)i;
    return ATOM_STATE_NONE;
}

int atom_state_is_terminal(atom_state state)
{
    return state == ATOM_STATE_RUNNING || state == ATOM_STATE_REVERTED ||
           state == ATOM_STATE_FAILURE;
}

/* ---- the handle ------------------------------------------------------- */

/* libcurl's global init is the one process-wide step; doing it once here
 * keeps later per-handle curl use thread-safe. */
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

int atom_runtime_new(atom_runtime **out)
{
    if (out == NULL)
        return ATOM_EINVAL;
    *out = NULL;
    pthread_once(&curl_once, curl_init_once);
    atom_runtime *rt = calloc(1, sizeof *rt);
    if (rt == NULL)
        return ATOM_ENOMEM;
    atomic_init(&rt->cancels, 0);
    rt->host = lh_new(&rt->err);
    if (rt->host == NULL) {
        int code = rt->err.code ? rt->err.code : ATOM_ENOMEM;
        free(rt);
        return code;
    }
    lua_State *L = lh_state(rt->host);
    lua_createtable(L, 0, 2);
    lua_newtable(L);
    lua_setfield(L, -2, "options");
    lua_newtable(L);
    lua_setfield(L, -2, "app");
    lua_setfield(L, LUA_REGISTRYINDEX, ATOM_CFG_KEY);
    /* Load atom.api now so a broken build fails here, not mid-release. */
    if (lh_require(rt->host, "atom.api", &rt->err) != ATOM_OK) {
        int code = rt->err.code;
        lh_free(rt->host);
        free(rt);
        return code;
    }
    lua_pop(L, 1);
    *out = rt;
    return ATOM_OK;
}

static void release_unlink(atom_release *r)
{
    atom_runtime *rt = r->rt;
    if (r->prev)
        r->prev->next = r->next;
    else if (rt->releases == r)
        rt->releases = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

void atom_runtime_free(atom_runtime *rt)
{
    if (rt == NULL)
        return;
    while (rt->releases) {
        atom_release *r = rt->releases;
        release_unlink(r);
        free(r->name);
        free(r);
    }
    lh_free(rt->host);
    free(rt->kubeconfig);
    free(rt->kubeconfig_data);
    free(rt->context);
    free(rt->ns);
    free(rt);
}

const char *atom_runtime_last_error(const atom_runtime *rt)
{
    if (rt == NULL)
        return "atom: the atom_runtime handle is NULL";
    return rt->err.message;
}

int atom_runtime_last_code(const atom_runtime *rt)
{
    return rt ? rt->err.code : ATOM_EINVAL;
}

int atom_runtime_set_kubeconfig(atom_runtime *rt, const char *path)
{
    if (rt == NULL)
        return ATOM_EINVAL;
    return set_string_copy(rt, &rt->kubeconfig, path);
}

int atom_runtime_set_kubeconfig_data(atom_runtime *rt, const char *data, size_t len)
{
    if (rt == NULL)
        return ATOM_EINVAL;
    int rc = set_copy(rt, &rt->kubeconfig_data, data, len);
    if (rc == ATOM_OK)
        rt->kubeconfig_data_len = data ? len : 0;
    return rc;
}

int atom_runtime_set_context(atom_runtime *rt, const char *context)
{
    if (rt == NULL)
        return ATOM_EINVAL;
    return set_string_copy(rt, &rt->context, context);
}

int atom_runtime_set_namespace(atom_runtime *rt, const char *ns)
{
    if (rt == NULL)
        return ATOM_EINVAL;
    return set_string_copy(rt, &rt->ns, ns);
}

/* Pushes the config table. */
static void push_cfg(lua_State *L, const char *field)
{
    lua_getfield(L, LUA_REGISTRYINDEX, ATOM_CFG_KEY);
    lua_getfield(L, -1, field);
    lua_remove(L, -2);
}

/* config[table][name] = value; NULL clears (lua_pushstring pushes nil for it). */
static void cfg_set(lua_State *L, const char *table, const char *name, const char *value)
{
    push_cfg(L, table);
    lua_pushstring(L, value);
    lua_setfield(L, -2, name);
    lua_pop(L, 1);
}

/* Pushes require("atom.api")[fn]; the module is already loaded. */
static int push_api(atom_runtime *rt, const char *fn)
{
    lua_State *L = lh_state(rt->host);
    if (lh_require(rt->host, "atom.api", &rt->err) != ATOM_OK)
        return rt->err.code;
    lua_getfield(L, -1, fn);
    lua_remove(L, -2);
    if (!lua_isfunction(L, -1)) {
        lua_pop(L, 1);
        return rt_fail(rt, ATOM_ESTATE, "atom.api.%s is missing from this build", fn);
    }
    return ATOM_OK;
}

int atom_runtime_set_option(atom_runtime *rt, const char *name, const char *value)
{
    if (rt == NULL)
        return ATOM_EINVAL;
    if (name == NULL)
        return rt_fail(rt, ATOM_EINVAL, "atom_runtime_set_option: name is NULL");
    lua_State *L = lh_state(rt->host);
    int rc = push_api(rt, "coerce_option");
    if (rc != ATOM_OK)
        return rc;
    lua_pushstring(L, name);
    lua_pushstring(L, value);
    if ((rc = lh_pcall(rt->host, 2, 2, &rt->err)) != ATOM_OK)
        return rc;
    if (lua_isstring(L, -1)) {
        rc = rt_fail(rt, ATOM_EINVAL, "atom_runtime_set_option: %s", lua_tostring(L, -1));
        lua_pop(L, 2);
        return rc;
    }
    lua_pop(L, 2);
    cfg_set(L, "options", name, value);
    return rt_ok(rt);
}

int atom_runtime_set_log(atom_runtime *rt, atom_log_fn fn, void *user)
{
    if (rt == NULL)
        return ATOM_EINVAL;
    rt->log = fn;
    rt->log_user = user;
    return rt_ok(rt);
}

int atom_runtime_set_progress(atom_runtime *rt, atom_progress_fn fn, void *user)
{
    if (rt == NULL)
        return ATOM_EINVAL;
    rt->progress = fn;
    rt->progress_user = user;
    return rt_ok(rt);
}

/* ---- host functions --------------------------------------------------- */

#define ATOM_CALL_MAX_RESULTS 16

typedef struct call_result {
    int type;
    double number;
    char *string;  /* malloc'd copy for ATOM_TYPE_STRING */
    size_t len;
} call_result;

struct atom_call {
    lua_State *L;
    int nargs;
    int nresults;
    call_result results[ATOM_CALL_MAX_RESULTS];
    char message[512];
};

typedef struct host_reg {
    atom_host_fn fn;
    void *user;
    char name[64];
} host_reg;

int atom_call_argc(const atom_call *call)
{
    return call ? call->nargs : 0;
}

static int arg_ok(const atom_call *call, int i)
{
    return call && i >= 1 && i <= call->nargs;
}

int atom_call_arg_type(const atom_call *call, int i)
{
    if (!arg_ok(call, i))
        return ATOM_TYPE_NONE;
    switch (lua_type(call->L, i)) {
    case LUA_TNIL: return ATOM_TYPE_NIL;
    case LUA_TBOOLEAN: return ATOM_TYPE_BOOLEAN;
    case LUA_TNUMBER: return ATOM_TYPE_NUMBER;
    case LUA_TSTRING: return ATOM_TYPE_STRING;
    default: return ATOM_TYPE_OTHER;
    }
}

const char *atom_call_arg_string(const atom_call *call, int i, size_t *len)
{
    if (len)
        *len = 0;
    if (!arg_ok(call, i))
        return NULL;
    int t = lua_type(call->L, i);
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
        return NULL;
    /* Numbers are converted in place; the slot is the caller's argument,
     * which Lua allows for C functions' own stack slots. */
    return lua_tolstring(call->L, i, len);
}

double atom_call_arg_number(const atom_call *call, int i, int *ok)
{
    int isnum = 0;
    double n = 0;
    if (arg_ok(call, i))
        n = (double)lua_tonumberx(call->L, i, &isnum);
    if (ok)
        *ok = isnum;
    return isnum ? n : 0;
}

int atom_call_arg_boolean(const atom_call *call, int i)
{
    return arg_ok(call, i) ? lua_toboolean(call->L, i) : 0;
}

static call_result *next_result(atom_call *call)
{
    if (call == NULL || call->nresults >= ATOM_CALL_MAX_RESULTS)
        return NULL;
    call_result *r = &call->results[call->nresults];
    memset(r, 0, sizeof *r);
    return r;
}

/* Appends a result that owns no memory: a number, a boolean (0/1) or nil. */
static int return_scalar(atom_call *call, int type, double n)
{
    call_result *r = next_result(call);
    if (r == NULL)
        return ATOM_EINVAL;
    r->type = type;
    r->number = n;
    call->nresults++;
    return ATOM_OK;
}

int atom_call_return_string(atom_call *call, const char *s, size_t len)
{
    if (s == NULL)
        return return_scalar(call, ATOM_TYPE_NIL, 0);
    call_result *r = next_result(call);
    if (r == NULL)
        return ATOM_EINVAL;
    if ((r->string = dup_n(s, len)) == NULL)
        return ATOM_ENOMEM;
    r->type = ATOM_TYPE_STRING;
    r->len = len;
    call->nresults++;
    return ATOM_OK;
}

int atom_call_return_number(atom_call *call, double n)
{
    return return_scalar(call, ATOM_TYPE_NUMBER, n);
}

int atom_call_return_boolean(atom_call *call, int b)
{
    return return_scalar(call, ATOM_TYPE_BOOLEAN, b != 0);
}

int atom_call_return_nil(atom_call *call)
{
    return return_scalar(call, ATOM_TYPE_NIL, 0);
}

int atom_call_error(atom_call *call, const char *fmt, ...)
{
    if (call && fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(call->message, sizeof call->message, fmt, ap);
        va_end(ap);
    }
    return ATOM_ELUA;
}

/* Frees the result strings a host call still owns (set to NULL once pushed). */
static void call_free_results(atom_call *call)
{
    for (int i = 0; i < call->nresults; i++) {
        free(call->results[i].string);
        call->results[i].string = NULL;
    }
}

static int call_box_gc(lua_State *L)
{
    call_free_results(lua_touserdata(L, 1));
    return 0;
}

/* The Lua side of a host function. Results are buffered in C and pushed
 * after the embedder's function returns, so no Lua error ever unwinds
 * through the embedder's frames. The atom_call lives in a userdata above
 * the arguments, so a memory error while a result string is pushed leaves
 * the strings not yet pushed to its __gc instead of leaking them. */
static int l_host_trampoline(lua_State *L)
{
    host_reg *reg = lua_touserdata(L, lua_upvalueindex(1));
    int nargs = lua_gettop(L);
    atom_call *call = lua_newuserdatauv(L, sizeof *call, 0);
    memset(call, 0, sizeof *call);
    if (luaL_newmetatable(L, "atom.call")) {
        lua_pushcfunction(L, call_box_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    call->L = L;
    call->nargs = nargs;
    int rc = reg->fn(reg->user, call);
    int n = call->nresults;
    if (rc == ATOM_OK && !lua_checkstack(L, n))
        rc = atom_call_error(call, "too many results");
    if (rc != ATOM_OK) {
        call_free_results(call);
        if (call->message[0] == '\0')
            snprintf(call->message, sizeof call->message, "%s", atom_status_name(rc));
        return luaL_error(L, "atom.app.%s: %s", reg->name, call->message);
    }
    for (int i = 0; i < n; i++) {
        call_result *r = &call->results[i];
        switch (r->type) {
        case ATOM_TYPE_STRING: lua_pushlstring(L, r->string, r->len); break;
        case ATOM_TYPE_NUMBER: lua_pushnumber(L, r->number); break;
        case ATOM_TYPE_BOOLEAN: lua_pushboolean(L, r->number != 0); break;
        default: lua_pushnil(L); break;
        }
        free(r->string);
        r->string = NULL;
    }
    return n;
}

int atom_runtime_register(atom_runtime *rt, const char *name, atom_host_fn fn, void *user)
{
    if (rt == NULL)
        return ATOM_EINVAL;
    if (!is_identifier(name) || strlen(name) >= sizeof ((host_reg *)0)->name)
        return rt_fail(rt, ATOM_EINVAL, "atom_runtime_register: '%s' is not a Lua identifier "
                       "(letters, digits, _; at most 63 bytes)", name ? name : "(null)");
    if (fn == NULL)
        return rt_fail(rt, ATOM_EINVAL, "atom_runtime_register: function for '%s' is NULL", name);
    lua_State *L = lh_state(rt->host);
    push_cfg(L, "app");
    host_reg *reg = lua_newuserdatauv(L, sizeof *reg, 0);
    reg->fn = fn;
    reg->user = user;
    snprintf(reg->name, sizeof reg->name, "%s", name);
    lua_pushcclosure(L, l_host_trampoline, 1);
    lua_setfield(L, -2, name);
    lua_pop(L, 1);
    return rt_ok(rt);
}

int atom_runtime_set_string(atom_runtime *rt, const char *name, const char *value)
{
    if (rt == NULL)
        return ATOM_EINVAL;
    if (!is_identifier(name))
        return rt_fail(rt, ATOM_EINVAL, "atom_runtime_set_string: '%s' is not a Lua identifier",
                       name ? name : "(null)");
    cfg_set(lh_state(rt->host), "app", name, value);
    return rt_ok(rt);
}

/* ---- callbacks into the embedder ------------------------------------- */

static int level_of(const char *s)
{
    if (s == NULL) return ATOM_LOG_INFO;
    if (strcmp(s, "debug") == 0) return ATOM_LOG_DEBUG;
    if (strcmp(s, "warn") == 0 || strcmp(s, "warning") == 0) return ATOM_LOG_WARN;
    if (strcmp(s, "error") == 0) return ATOM_LOG_ERROR;
    return ATOM_LOG_INFO;
}

/* log(level, line) or log(line) */
static int l_log(lua_State *L)
{
    atom_runtime *rt = lua_touserdata(L, lua_upvalueindex(1));
    int level = ATOM_LOG_INFO;
    const char *line;
    if (lua_gettop(L) >= 2) {
        if (lua_type(L, 1) == LUA_TNUMBER)
            level = (int)lua_tointeger(L, 1);
        else
            level = level_of(lua_tostring(L, 1));
        line = luaL_tolstring(L, 2, NULL);
    } else {
        line = luaL_tolstring(L, 1, NULL);
    }
    if (rt->log)
        rt->log(rt->log_user, level, line);
    else
        fprintf(stderr, "%s\n", line);
    return 0;
}

static const char *opt_field(lua_State *L, int t, const char *k)
{
    lua_getfield(L, t, k);
    const char *s = lua_isstring(L, -1) ? lua_tostring(L, -1) : NULL;
    lua_pop(L, 1); /* the table still holds the string */
    return s;
}

/* As opt_field, with "" for a missing field: the public structs never hold NULL strings. */
static const char *str_field(lua_State *L, int t, const char *k)
{
    const char *s = opt_field(L, t, k);
    return s ? s : "";
}

static long num_field(lua_State *L, int t, const char *k)
{
    lua_getfield(L, t, k);
    long n = (long)lua_tointeger(L, -1);
    lua_pop(L, 1);
    return n;
}

/* progress(event) — converts the event table to an atom_progress. */
static int l_progress(lua_State *L)
{
    atom_runtime *rt = lua_touserdata(L, lua_upvalueindex(1));
    if (rt->progress == NULL || !lua_istable(L, 1))
        return 0;
    atom_progress p;
    memset(&p, 0, sizeof p);
    const char *kind = opt_field(L, 1, "kind");
    p.kind = kind && strcmp(kind, "not_ready") == 0 ? ATOM_PROGRESS_NOT_READY
                                                      : ATOM_PROGRESS_TRANSITION;
    p.release = str_field(L, 1, "release");
    p.version = num_field(L, 1, "version");
    p.from = atom_state_from_name(opt_field(L, 1, "from"));
    p.to = atom_state_from_name(opt_field(L, 1, "to"));
    if (p.kind == ATOM_PROGRESS_NOT_READY)
        p.object = opt_field(L, 1, "object");
    p.message = opt_field(L, 1, "reason");
    if (p.message == NULL)
        p.message = str_field(L, 1, "message");
    rt->progress(rt->progress_user, &p);
    return 0;
}

/* interrupted() -> cancel requests so far (the engine cancels when it grows). */
static int l_interrupted(lua_State *L)
{
    atom_runtime *rt = lua_touserdata(L, lua_upvalueindex(1));
    lua_pushinteger(L, atomic_load(&rt->cancels));
    return 1;
}

int atom_runtime_cancel_run(atom_runtime *rt)
{
    if (rt == NULL)
        return ATOM_EINVAL;
    /* No rt_ok here: the error buffer belongs to the thread running. */
    atomic_fetch_add(&rt->cancels, 1);
    return ATOM_OK;
}

/* t[k] = fn, a closure over the handle, for the table on top. */
static void set_callback(lua_State *L, atom_runtime *rt, const char *k, lua_CFunction fn)
{
    lua_pushlightuserdata(L, rt);
    lua_pushcclosure(L, fn, 1);
    lua_setfield(L, -2, k);
}

/* Pushes the opts table atom.api takes, from the handle's settings; a
 * setting not made is left out (nil), not an empty string. */
static void push_opts(atom_runtime *rt)
{
    lua_State *L = lh_state(rt->host);
    lua_createtable(L, 0, 8);
    lua_pushstring(L, rt->kubeconfig);
    lua_setfield(L, -2, "kubeconfig");
    if (rt->kubeconfig_data) {
        lua_pushlstring(L, rt->kubeconfig_data, rt->kubeconfig_data_len);
        lua_setfield(L, -2, "kubeconfig_data");
    }
    lua_pushstring(L, rt->context);
    lua_setfield(L, -2, "context");
    lua_pushstring(L, rt->ns);
    lua_setfield(L, -2, "namespace");
    push_cfg(L, "options");
    lua_setfield(L, -2, "options");
    push_cfg(L, "app");
    lua_setfield(L, -2, "app");
    set_callback(L, rt, "log", l_log);
    set_callback(L, rt, "interrupted", l_interrupted);
    if (rt->progress)
        set_callback(L, rt, "progress", l_progress);
}

static int code_of_kind(const char *kind)
{
    if (kind == NULL) return ATOM_ELUA;
    if (strcmp(kind, "invalid") == 0) return ATOM_EINVAL;
    if (strcmp(kind, "kube") == 0) return ATOM_EKUBE;
    if (strcmp(kind, "busy") == 0 || strcmp(kind, "refused") == 0) return ATOM_EBUSY;
    if (strcmp(kind, "budget") == 0) return ATOM_EBUDGET;
    if (strcmp(kind, "state") == 0) return ATOM_ESTATE;
    if (strcmp(kind, "io") == 0) return ATOM_EIO;
    if (strcmp(kind, "nomem") == 0) return ATOM_ENOMEM;
    return ATOM_ELUA;
}

/* With api.fn and its nargs arguments (opts last) pushed, calls it. On
 * success leaves the result on the stack and returns ATOM_OK; on failure
 * leaves nothing and fills rt->err. */
static int call_api(atom_runtime *rt, int nargs)
{
    lua_State *L = lh_state(rt->host);
    int rc = lh_pcall(rt->host, nargs, 2, &rt->err);
    if (rc != ATOM_OK)
        return rc;
    if (!lua_isnil(L, -2)) {
        lua_pop(L, 1);
        return rt_ok(rt);
    }
    if (lua_istable(L, -1)) {
        const char *kind = opt_field(L, -1, "kind");
        const char *msg = opt_field(L, -1, "message");
        rc = rt_fail(rt, code_of_kind(kind), "%s", msg ? msg : "failed");
    } else {
        const char *msg = lua_tostring(L, -1);
        rc = rt_fail(rt, ATOM_ELUA, "%s", msg ? msg : "failed");
    }
    lua_pop(L, 2);
    return rc;
}

/* Keeps the value on top as the last result (strings handed out from it
 * stay valid until the next call) and pops it. */
static void keep_last(lua_State *L)
{
    lua_setfield(L, LUA_REGISTRYINDEX, ATOM_LAST_KEY);
}

/* From the result table on top: its state field. */
static atom_state result_state(lua_State *L)
{
    if (lua_type(L, -1) == LUA_TSTRING)
        return atom_state_from_name(lua_tostring(L, -1));
    if (!lua_istable(L, -1))
        return ATOM_STATE_NONE;
    return atom_state_from_name(opt_field(L, -1, "state"));
}

/* ---- releases --------------------------------------------------------- */

static int wrap_release(atom_runtime *rt, atom_release **out)
{
    lua_State *L = lh_state(rt->host);
    atom_release *r = calloc(1, sizeof *r);
    const char *name = lua_istable(L, -1) ? opt_field(L, -1, "name") : NULL;
    if (r == NULL || (r->name = dup_n(name ? name : "", name ? strlen(name) : 0)) == NULL) {
        free(r);
        lua_pop(L, 1);
        return rt_fail(rt, ATOM_ENOMEM, "out of memory wrapping a release");
    }
    r->rt = rt;
    r->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    r->next = rt->releases;
    if (rt->releases)
        rt->releases->prev = r;
    rt->releases = r;
    *out = r;
    return rt_ok(rt);
}

int atom_release_load_file(atom_runtime *rt, const char *path, atom_release **out)
{
    if (out)
        *out = NULL;
    if (rt == NULL)
        return ATOM_EINVAL;
    if (path == NULL || out == NULL)
        return rt_fail(rt, ATOM_EINVAL, "atom_release_load_file: %s is NULL", path ? "out" : "path");
    lua_State *L = lh_state(rt->host);
    int rc = push_api(rt, "load");
    if (rc != ATOM_OK)
        return rc;
    lua_pushstring(L, path);
    push_opts(rt);
    if ((rc = call_api(rt, 2)) != ATOM_OK)
        return rc;
    return wrap_release(rt, out);
}

int atom_release_load_string(atom_runtime *rt, const char *source, size_t len, const char *dir,
                             const char *chunkname, atom_release **out)
{
    if (out)
        *out = NULL;
    if (rt == NULL)
        return ATOM_EINVAL;
    if (source == NULL || out == NULL)
        return rt_fail(rt, ATOM_EINVAL, "atom_release_load_string: %s is NULL",
                       source ? "out" : "source");
    lua_State *L = lh_state(rt->host);
    int rc = push_api(rt, "load_string");
    if (rc != ATOM_OK)
        return rc;
    lua_pushlstring(L, source, len);
    lua_pushstring(L, dir);        /* NULL pushes nil: the default */
    lua_pushstring(L, chunkname);
    push_opts(rt);
    if ((rc = call_api(rt, 4)) != ATOM_OK)
        return rc;
    return wrap_release(rt, out);
}

void atom_release_free(atom_release *r)
{
    if (r == NULL)
        return;
    luaL_unref(lh_state(r->rt->host), LUA_REGISTRYINDEX, r->ref);
    release_unlink(r);
    free(r->name);
    free(r);
}

const char *atom_release_name(const atom_release *r)
{
    return r ? r->name : NULL;
}

/* Finishes a verb whose result carries a final state. */
static int finish_state(atom_runtime *rt, atom_state *final_state)
{
    lua_State *L = lh_state(rt->host);
    atom_state s = result_state(L);
    keep_last(L);
    if (final_state)
        *final_state = s;
    return rt_ok(rt);
}

int atom_release_run(atom_release *r, atom_state *final_state)
{
    if (final_state)
        *final_state = ATOM_STATE_NONE;
    if (r == NULL)
        return ATOM_ESTATE;
    atom_runtime *rt = r->rt;
    atomic_store(&rt->cancels, 0);
    lua_State *L = lh_state(rt->host);
    int rc = push_api(rt, "run");
    if (rc != ATOM_OK)
        return rc;
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->ref);
    push_opts(rt);
    if ((rc = call_api(rt, 2)) != ATOM_OK)
        return rc;
    return finish_state(rt, final_state);
}

/* Calls api.<verb>(name, [extra,] opts). */
static int by_name(atom_runtime *rt, const char *verb, const char *name, int with_to, long to)
{
    if (name == NULL || *name == '\0')
        return rt_fail(rt, ATOM_EINVAL, "atom_release_%s: release name is empty", verb);
    lua_State *L = lh_state(rt->host);
    int rc = push_api(rt, verb);
    if (rc != ATOM_OK)
        return rc;
    lua_pushstring(L, name);
    if (with_to) {
        if (to > 0)
            lua_pushinteger(L, to);
        else
            lua_pushnil(L);
    }
    push_opts(rt);
    return call_api(rt, with_to ? 3 : 2);
}

int atom_release_resume(atom_runtime *rt, const char *name, atom_state *final_state)
{
    if (final_state)
        *final_state = ATOM_STATE_NONE;
    if (rt == NULL)
        return ATOM_EINVAL;
    atomic_store(&rt->cancels, 0);
    int rc = by_name(rt, "resume", name, 0, 0);
    return rc != ATOM_OK ? rc : finish_state(rt, final_state);
}

int atom_release_cancel(atom_runtime *rt, const char *name)
{
    if (rt == NULL)
        return ATOM_EINVAL;
    int rc = by_name(rt, "cancel", name, 0, 0);
    if (rc != ATOM_OK)
        return rc;
    keep_last(lh_state(rt->host));
    return rt_ok(rt);
}

int atom_release_rollback(atom_runtime *rt, const char *name, long to_version,
                          atom_state *final_state)
{
    if (final_state)
        *final_state = ATOM_STATE_NONE;
    if (rt == NULL)
        return ATOM_EINVAL;
    if (to_version < 0)
        return rt_fail(rt, ATOM_EINVAL, "atom_release_rollback: version %ld is negative", to_version);
    atomic_store(&rt->cancels, 0);
    int rc = by_name(rt, "rollback", name, 1, to_version);
    return rc != ATOM_OK ? rc : finish_state(rt, final_state);
}

/* Fills out from the status table on top of the stack and keeps it. */
static int fill_info(atom_runtime *rt, atom_release_info *out)
{
    int rc;
    lua_State *L = lh_state(rt->host);
    if (!lua_istable(L, -1)) {
        rc = rt_fail(rt, ATOM_ELUA, "atom.api.status returned a %s, not a table",
                     luaL_typename(L, -1));
        lua_pop(L, 1);
        return rc;
    }
    /* Strings stay valid: the table is kept as the last result. */
    out->name = str_field(L, -1, "name");
    out->ns = str_field(L, -1, "namespace");
    out->state = atom_state_from_name(opt_field(L, -1, "state"));
    out->version = num_field(L, -1, "version");
    out->previous = num_field(L, -1, "previous");
    out->message = str_field(L, -1, "message");
    keep_last(L);
    return rt_ok(rt);
}

int atom_release_status(atom_runtime *rt, const char *name, atom_release_info *out)
{
    if (rt == NULL)
        return ATOM_EINVAL;
    if (out == NULL)
        return rt_fail(rt, ATOM_EINVAL, "atom_release_status: out is NULL");
    memset(out, 0, sizeof *out);
    int rc = by_name(rt, "status", name, 0, 0);
    return rc != ATOM_OK ? rc : fill_info(rt, out);
}

int atom_release_describe(atom_release *r, atom_release_info *out)
{
    if (r == NULL)
        return ATOM_ESTATE;
    atom_runtime *rt = r->rt;
    if (out == NULL)
        return rt_fail(rt, ATOM_EINVAL, "atom_release_describe: out is NULL");
    memset(out, 0, sizeof *out);
    lua_State *L = lh_state(rt->host);
    int rc = push_api(rt, "status");
    if (rc != ATOM_OK)
        return rc;
    lua_pushstring(L, r->name);
    push_opts(rt);
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->ref);
    lua_getfield(L, -1, "namespace");
    lua_setfield(L, -3, "namespace");
    lua_pop(L, 1);
    if ((rc = call_api(rt, 2)) != ATOM_OK)
        return rc;
    return fill_info(rt, out);
}

int atom_release_history(atom_runtime *rt, const char *name, atom_history_fn fn, void *user)
{
    if (rt == NULL)
        return ATOM_EINVAL;
    if (fn == NULL)
        return rt_fail(rt, ATOM_EINVAL, "atom_release_history: callback is NULL");
    int rc = by_name(rt, "history", name, 0, 0);
    if (rc != ATOM_OK)
        return rc;
    lua_State *L = lh_state(rt->host);
    int t = lua_gettop(L);
    lua_Integer n = lua_istable(L, t) ? (lua_Integer)lua_rawlen(L, t) : 0;
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, t, i);
        if (lua_istable(L, -1)) {
            int e = lua_gettop(L);
            atom_version_info v;
            v.version = num_field(L, e, "version");
            v.state = atom_state_from_name(opt_field(L, e, "state"));
            v.when = str_field(L, e, "when");
            v.who = str_field(L, e, "who");
            v.digest = str_field(L, e, "digest");
            int stop = fn(user, &v);
            lua_pop(L, 1);
            if (stop)
                break;
        } else {
            lua_pop(L, 1);
        }
    }
    keep_last(L);
    return rt_ok(rt);
}

/* Encodes the result on top with cjson and keeps the text as last result. */
static int to_json(atom_runtime *rt, const char **json)
{
    lua_State *L = lh_state(rt->host);
    int rc = lh_require(rt->host, "cjson", &rt->err);
    if (rc != ATOM_OK) {
        lua_pop(L, 1);
        return rc;
    }
    lua_getfield(L, -1, "encode");
    lua_remove(L, -2);
    lua_insert(L, -2);
    if ((rc = lh_pcall(rt->host, 1, 1, &rt->err)) != ATOM_OK)
        return rc;
    *json = lua_tostring(L, -1);
    keep_last(L);
    return rt_ok(rt);
}

/* atom_release_<verb>_json: api.<verb>(name) as JSON text. */
static int by_name_json(atom_runtime *rt, const char *verb, const char *name, const char **json)
{
    if (rt == NULL)
        return ATOM_EINVAL;
    if (json == NULL)
        return rt_fail(rt, ATOM_EINVAL, "atom_release_%s_json: json is NULL", verb);
    *json = NULL;
    int rc = by_name(rt, verb, name, 0, 0);
    return rc != ATOM_OK ? rc : to_json(rt, json);
}

int atom_release_status_json(atom_runtime *rt, const char *name, const char **json)
{
    return by_name_json(rt, "status", name, json);
}

int atom_release_history_json(atom_runtime *rt, const char *name, const char **json)
{
    return by_name_json(rt, "history", name, json);
}
