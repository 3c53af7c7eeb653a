/*
 * l_proc.c — Lua module `atom.proc`: runs a program (exec credential plugins)
 * without a shell and collects what it prints. Trusted code only: the
 * sandbox never exposes it to scripts.
 *
 *   proc.run{ command = "name or path", args = {...}, env = { NAME = "v" },
 *             stdin = "bytes" | nil, timeout = seconds }
 *       -> { status = exit code (128+signal if killed), stdout =, stderr =,
 *            timed_out = bool } | nil, err
 *
 * Ownership: every buffer, pipe and the argv/envp arrays live in a `run_box`
 * userdata, so a Lua error (out of memory while building the result) still
 * closes the pipes and frees the memory through __gc/__close. The child is
 * always reaped before run() returns.
 */
#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <lua.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bindings.h"
#include "clock.h"

extern char **environ;

#define PROC_OUTPUT_MAX ((size_t)16 << 20)

typedef struct run_box {
    char **argv, **envp;
    size_t argc, envc;
    int fd_in, fd_out, fd_err;
    char *out, *err;
    size_t out_len, out_cap, err_len, err_cap;
    pid_t pid;
} run_box;

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

static void run_box_free(run_box *b)
{
    close_fd(&b->fd_in);
    close_fd(&b->fd_out);
    close_fd(&b->fd_err);
    if (b->pid > 0) {
        /* Never leave a zombie behind, even when unwinding a Lua error. */
        kill(b->pid, SIGKILL);
        while (waitpid(b->pid, NULL, 0) < 0 && errno == EINTR) {
        }
        b->pid = 0;
    }
    if (b->argv) {
        for (size_t i = 0; i < b->argc; i++)
            free(b->argv[i]);
        free(b->argv);
        b->argv = NULL;
    }
    if (b->envp) {
        for (size_t i = 0; i < b->envc; i++)
            free(b->envp[i]);
        free(b->envp);
        b->envp = NULL;
    }
    free(b->out);
    free(b->err);
    b->out = b->err = NULL;
}

static int run_box_gc(lua_State *L)
{
    run_box_free(lua_touserdata(L, 1));
    return 0;
}

static int append(char **buf, size_t *len, size_t *cap, const char *data, size_t n)
{
    if (*len + n > PROC_OUTPUT_MAX)
        return -1;
    if (*len + n + 1 > *cap) {
        size_t nc = *cap ? *cap * 2 : 4096;
        while (nc < *len + n + 1)
            nc *= 2;
        char *p = realloc(*buf, nc);
        if (!p)
            return -1;
        *buf = p;
        *cap = nc;
    }
    memcpy(*buf + *len, data, n);
    *len += n;
    return 0;
}

/* One read from a ready pipe into buf; closes the pipe at EOF or on an
 * error. -1 when the output would pass PROC_OUTPUT_MAX (or memory ran out). */
static int read_some(int *fd, char **buf, size_t *len, size_t *cap)
{
    char chunk[8192];
    ssize_t r = read(*fd, chunk, sizeof chunk);
    if (r > 0)
        return append(buf, len, cap, chunk, (size_t)r);
    if (r == 0 || errno != EINTR)
        close_fd(fd);
    return 0;
}

/* Pushes a copy of s into a malloc'd slot of an array we own. */
static char *dup_or_die(lua_State *L, const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (!p)
        luaL_error(L, "proc.run: out of memory");
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static void build_argv(lua_State *L, run_box *b, const char *command)
{
    lua_getfield(L, 1, "args");
    size_t nargs = lua_istable(L, -1) ? (size_t)luaL_len(L, -1) : 0;
    b->argv = calloc(nargs + 2, sizeof(char *));
    if (!b->argv)
        luaL_error(L, "proc.run: out of memory");
    b->argv[b->argc++] = dup_or_die(L, command, strlen(command));
    for (size_t i = 1; i <= nargs; i++) {
        lua_geti(L, -1, (lua_Integer)i);
        size_t n;
        const char *s = lua_tolstring(L, -1, &n);
        if (!s)
            luaL_error(L, "proc.run: args[%d] is not a string", (int)i);
        b->argv[b->argc++] = dup_or_die(L, s, n);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

/* The parent's environment with env = {...} overriding or adding names. */
static void build_envp(lua_State *L, run_box *b)
{
    size_t parent = 0, extra = 0;
    while (environ && environ[parent])
        parent++;
    lua_getfield(L, 1, "env");
    int has_env = lua_istable(L, -1);
    if (has_env) {
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            extra++;
            lua_pop(L, 1);
        }
    }
    b->envp = calloc(parent + extra + 1, sizeof(char *));
    if (!b->envp)
        luaL_error(L, "proc.run: out of memory");
    if (has_env) {
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            if (lua_type(L, -2) != LUA_TSTRING || !lua_isstring(L, -1))
                luaL_error(L, "proc.run: env must map names to strings");
            lua_pushvalue(L, -2);
            lua_pushliteral(L, "=");
            lua_pushvalue(L, -3);
            lua_concat(L, 3);
            size_t n;
            const char *s = lua_tolstring(L, -1, &n);
            b->envp[b->envc++] = dup_or_die(L, s, n);
            lua_pop(L, 2);
        }
    }
    for (size_t i = 0; i < parent; i++) {
        const char *eq = strchr(environ[i], '=');
        size_t name_len = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
        int overridden = 0;
        for (size_t j = 0; j < b->envc && !overridden; j++)
            overridden = strncmp(b->envp[j], environ[i], name_len) == 0 &&
                         b->envp[j][name_len] == '=';
        if (!overridden)
            b->envp[b->envc++] = dup_or_die(L, environ[i], strlen(environ[i]));
    }
    lua_pop(L, 1);
}

static int l_proc_run(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "command");
    const char *command = luaL_optstring(L, -1, NULL);
    if (!command || !*command)
        return luaL_error(L, "proc.run: command is required");
    lua_getfield(L, 1, "stdin");
    size_t in_len = 0;
    const char *in = lua_tolstring(L, -1, &in_len);
    lua_getfield(L, 1, "timeout");
    double timeout = luaL_optnumber(L, -1, 60);

    run_box *b = lua_newuserdatauv(L, sizeof *b, 0);
    memset(b, 0, sizeof *b);
    b->fd_in = b->fd_out = b->fd_err = -1;
    if (luaL_newmetatable(L, "atom.proc.run")) {
        lua_pushcfunction(L, run_box_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, run_box_gc);
        lua_setfield(L, -2, "__close");
    }
    lua_setmetatable(L, -2);
    int box_idx = lua_gettop(L);

    build_argv(L, b, command);
    build_envp(L, b);

    int pin[2] = {-1, -1}, pout[2] = {-1, -1}, perr[2] = {-1, -1};
    if (pipe2(pin, O_CLOEXEC) < 0 || pipe2(pout, O_CLOEXEC) < 0 || pipe2(perr, O_CLOEXEC) < 0) {
        int e = errno;
        for (int i = 0; i < 2; i++) {
            if (pin[i] >= 0) close(pin[i]);
            if (pout[i] >= 0) close(pout[i]);
            if (perr[i] >= 0) close(perr[i]);
        }
        lua_pushnil(L);
        lua_pushfstring(L, "cannot create pipes for %s: %s", command, strerror(e));
        return 2;
    }
    b->fd_in = pin[1];
    b->fd_out = pout[0];
    b->fd_err = perr[0];

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pin[0], 0);
    posix_spawn_file_actions_adddup2(&fa, pout[1], 1);
    posix_spawn_file_actions_adddup2(&fa, perr[1], 2);
    pid_t pid;
    int rc = posix_spawnp(&pid, command, &fa, NULL, b->argv, b->envp);
    posix_spawn_file_actions_destroy(&fa);
    close(pin[0]);
    close(pout[1]);
    close(perr[1]);
    if (rc != 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "cannot run %s: %s", command, strerror(rc));
        return 2;
    }
    b->pid = pid;

    /* A plugin that never reads stdin must not make us block on the write. */
    fcntl(b->fd_in, F_SETFL, O_NONBLOCK);
    size_t in_off = 0;
    if (!in || in_len == 0)
        close_fd(&b->fd_in);

    double deadline = atom_monotonic() + timeout;
    int timed_out = 0, too_big = 0;
    while (b->fd_out >= 0 || b->fd_err >= 0) {
        struct pollfd fds[3];
        int nf = 0;
        int idx_in = -1, idx_out = -1, idx_err = -1;
        if (b->fd_in >= 0) {
            idx_in = nf;
            fds[nf++] = (struct pollfd){.fd = b->fd_in, .events = POLLOUT};
        }
        if (b->fd_out >= 0) {
            idx_out = nf;
            fds[nf++] = (struct pollfd){.fd = b->fd_out, .events = POLLIN};
        }
        if (b->fd_err >= 0) {
            idx_err = nf;
            fds[nf++] = (struct pollfd){.fd = b->fd_err, .events = POLLIN};
        }
        double left = deadline - atom_monotonic();
        if (left <= 0) {
            timed_out = 1;
            break;
        }
        int pr = poll(fds, (nfds_t)nf, (int)(left * 1000) + 1);
        if (pr < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (idx_in >= 0 && fds[idx_in].revents) {
            ssize_t w = write(b->fd_in, in + in_off, in_len - in_off);
            if (w > 0)
                in_off += (size_t)w;
            if (w < 0 && errno != EAGAIN && errno != EINTR)
                in_off = in_len;
            if (in_off >= in_len)
                close_fd(&b->fd_in);
        }
        if (idx_out >= 0 && fds[idx_out].revents &&
            read_some(&b->fd_out, &b->out, &b->out_len, &b->out_cap) < 0) {
            too_big = 1;
            break;
        }
        if (idx_err >= 0 && fds[idx_err].revents &&
            read_some(&b->fd_err, &b->err, &b->err_len, &b->err_cap) < 0) {
            too_big = 1;
            break;
        }
    }
    close_fd(&b->fd_in);
    if (timed_out || too_big)
        kill(b->pid, SIGKILL);
    int wstatus = 0;
    while (waitpid(b->pid, &wstatus, 0) < 0 && errno == EINTR) {
    }
    b->pid = 0;
    if (too_big) {
        lua_pushnil(L);
        lua_pushfstring(L, "%s printed more than %d bytes", command, (int)PROC_OUTPUT_MAX);
        return 2;
    }

    lua_createtable(L, 0, 4);
    lua_pushinteger(L, WIFEXITED(wstatus)     ? WEXITSTATUS(wstatus)
                       : WIFSIGNALED(wstatus) ? 128 + WTERMSIG(wstatus)
                                              : -1);
    lua_setfield(L, -2, "status");
    lua_pushlstring(L, b->out ? b->out : "", b->out_len);
    lua_setfield(L, -2, "stdout");
    lua_pushlstring(L, b->err ? b->err : "", b->err_len);
    lua_setfield(L, -2, "stderr");
    lua_pushboolean(L, timed_out);
    lua_setfield(L, -2, "timed_out");
    run_box_free(b);
    (void)box_idx;
    return 1;
}

int luaopen_atom_proc(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"run", l_proc_run},
        {NULL, NULL},
    };
    luaL_newlib(L, fns);
    return 1;
}
