/*
 * cli_release.c — the release verbs of `atom` (run, resume, status, history, cancel,
 * rollback, diff, check). Flags are parsed here; the work is Lua's
 * (lua/atom/release/cli.lua, whose cli.main returns the exit code).
 *
 * Ownership: the Lua host is created here, per invocation, and freed on every path except
 * a verb that ran to its end (cli_release_verb: the process exits with its code right
 * after). The only process-wide state is the SIGINT counter below, which a signal handler
 * must be able to reach.
 */
#include <lauxlib.h>
#include <lua.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "lua_host.h"

/* A signal handler can only talk to the program through a static flag. First Ctrl-C asks
 * the run to cancel (Cancelled -> Rollback, recorded); a second one exits at once and
 * leaves the record for `atom resume`. */
static volatile sig_atomic_t cli_interrupts;

static void cli_on_sigint(int sig)
{
    (void)sig;
    if (cli_interrupts > 0) {
        static const char msg[] = "\natom: interrupted again: exiting; `atom resume` finishes the release\n";
        ssize_t ignored = write(STDERR_FILENO, msg, sizeof msg - 1);
        (void)ignored;
        _exit(130);
    }
    cli_interrupts = 1;
}

static int cli_l_interrupted(lua_State *L)
{
    lua_pushinteger(L, cli_interrupts);
    return 1;
}

static void cli_release_usage(FILE *out, const char *verb)
{
    fprintf(out,
            "usage: atom %s %s [flags]\n"
            "flags:\n"
            "  --kubeconfig PATH        kubeconfig file (default: $KUBECONFIG, ~/.kube/config)\n"
            "  --context NAME           kubeconfig context\n"
            "  -n, --namespace NS       namespace (release default for scripts)\n"
            "  -o, --output text|json   output format\n"
            "  --lease-duration SECONDS lease of a run (default 15)\n"
            "  --deadline SECONDS       override the script's deadline\n"
            "  --history-limit N        versions kept (default 10)\n"
            "  --to VERSION             rollback: the version to go back to\n"
            "  --allow-exec             let the script spawn processes\n"
            "  --allow-read-outside     let the script read files outside its folder\n"
            "  --max-instructions N     instruction budget of each call into the script:\n"
            "                           loading it, a readiness check, a policy, a hook\n"
            "                           (overrides its limits.instructions)\n"
            "  --max-seconds S          wall-time budget of loading the script and of each\n"
            "                           check or policy call (overrides limits.seconds;\n"
            "                           hooks keep limits.hook_seconds)\n"
            "  --max-heap BYTES         Lua heap ceiling per call; K, M or G suffix\n"
            "                           (1024-based; overrides its limits.heap)\n"
            "  -q, --quiet              no progress output\n",
            verb,
            (strcmp(verb, "run") == 0 || strcmp(verb, "diff") == 0 || strcmp(verb, "check") == 0)
                ? "SCRIPT"
                : "NAME");
}

typedef struct cli_flag {
    const char *long_name;
    const char *short_name;
    const char *field; /* key in the Lua opts table */
    enum { CLI_STRING, CLI_NUMBER, CLI_BOOL, CLI_SIZE } type;
} cli_flag;

static const cli_flag cli_flags[] = {
    {"--kubeconfig", NULL, "kubeconfig", CLI_STRING},
    {"--context", NULL, "context", CLI_STRING},
    {"--namespace", "-n", "namespace", CLI_STRING},
    {"--output", "-o", "output", CLI_STRING},
    {"--lease-duration", NULL, "lease_duration", CLI_NUMBER},
    {"--deadline", NULL, "deadline", CLI_NUMBER},
    {"--history-limit", NULL, "history_limit", CLI_NUMBER},
    {"--to", NULL, "to", CLI_NUMBER},
    {"--allow-exec", NULL, "allow_exec", CLI_BOOL},
    {"--allow-read-outside", NULL, "allow_read_outside", CLI_BOOL},
    {"--quiet", "-q", "quiet", CLI_BOOL},
    /* Budgets: cli.lua turns max_* into the limits table script.load takes. */
    {"--max-instructions", NULL, "max_instructions", CLI_NUMBER},
    {"--max-seconds", NULL, "max_seconds", CLI_NUMBER},
    {"--max-heap", NULL, "max_heap", CLI_SIZE},
    {NULL, NULL, NULL, CLI_BOOL},
};

/* Parses argv into the table on top of L; returns 0 or prints why and returns -1. */
static int cli_parse(lua_State *L, int argc, char **argv)
{
    int t = lua_gettop(L);
    lua_newtable(L); /* positional arguments */
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || strcmp(a, "-") == 0) {
            lua_pushstring(L, a);
            lua_rawseti(L, -2, ++npos);
            continue;
        }
        const cli_flag *f = NULL;
        const char *value = NULL;
        size_t namelen = strcspn(a, "=");
        for (const cli_flag *c = cli_flags; c->long_name; c++) {
            if ((strlen(c->long_name) == namelen && strncmp(c->long_name, a, namelen) == 0) ||
                (c->short_name && strcmp(c->short_name, a) == 0)) {
                f = c;
                break;
            }
        }
        if (f == NULL) {
            fprintf(stderr, "atom %s: unknown flag '%s'\n", argv[0], a);
            return -1;
        }
        if (a[namelen] == '=')
            value = a + namelen + 1;
        if (f->type == CLI_BOOL) {
            if (value) {
                fprintf(stderr, "atom %s: %s takes no value\n", argv[0], f->long_name);
                return -1;
            }
            lua_pushboolean(L, 1);
            lua_setfield(L, t, f->field);
            continue;
        }
        if (value == NULL) {
            if (i + 1 >= argc) {
                fprintf(stderr, "atom %s: %s needs a value\n", argv[0], f->long_name);
                return -1;
            }
            value = argv[++i];
        }
        if (f->type == CLI_SIZE) {
            char *end;
            double d = strtod(value, &end);
            double unit = 1;
            /* Sizes read like `ulimit`'s: K, M, G, 1024-based, any case, optional B. */
            if (*end != '\0' && strchr("kKmMgG", *end) != NULL) {
                unit = (*end == 'k' || *end == 'K')   ? 1024.0
                       : (*end == 'm' || *end == 'M') ? 1024.0 * 1024
                                                      : 1024.0 * 1024 * 1024;
                end++;
                if (*end == 'b' || *end == 'B')
                    end++;
            }
            if (*value == '\0' || end == value || *end != '\0' || !(d > 0)) {
                fprintf(stderr, "atom %s: %s wants a positive size (bytes, or with K, M or G), got '%s'\n",
                        argv[0], f->long_name, value);
                return -1;
            }
            lua_pushnumber(L, d * unit);
        } else if (f->type == CLI_NUMBER) {
            char *end;
            double d = strtod(value, &end);
            if (*value == '\0' || *end != '\0' || d < 0) {
                fprintf(stderr, "atom %s: %s wants a non-negative number, got '%s'\n", argv[0],
                        f->long_name, value);
                return -1;
            }
            lua_pushnumber(L, d);
        } else {
            if (strcmp(f->field, "output") == 0 && strcmp(value, "text") != 0 &&
                strcmp(value, "json") != 0) {
                fprintf(stderr, "atom %s: -o wants text or json, got '%s'\n", argv[0], value);
                return -1;
            }
            lua_pushstring(L, value);
        }
        lua_setfield(L, t, f->field);
    }
    if (npos != 1) {
        fprintf(stderr, "atom %s: %s\n", argv[0],
                npos == 0 ? "missing argument" : "too many arguments");
        return -1;
    }
    lua_setfield(L, t, "args");
    return 0;
}

int cli_release_verb(int argc, char **argv)
{
    const char *verb = argv[0];
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            cli_release_usage(stdout, verb);
            return CLI_EXIT_OK;
        }
    }
    atom_error err;
    atom_error_clear(&err);
    lh_host *host = lh_new(&err);
    if (host == NULL) {
        fprintf(stderr, "atom: %s\n", err.message);
        return CLI_EXIT_FAILED;
    }
    lua_State *L = lh_state(host);
    int code = CLI_EXIT_FAILED;
    if (lh_require(host, "atom.release.cli", &err) != ATOM_OK) {
        fprintf(stderr, "atom: %s\n", err.message);
        goto done;
    }
    lua_getfield(L, -1, "main");
    lua_pushstring(L, verb);
    lua_newtable(L);
    if (cli_parse(L, argc, argv) != 0) {
        cli_release_usage(stderr, verb);
        code = CLI_EXIT_USAGE;
        goto done;
    }
    lua_pushcfunction(L, cli_l_interrupted);
    lua_setfield(L, -2, "interrupted");
    lua_pushboolean(L, isatty(STDERR_FILENO));
    lua_setfield(L, -2, "tty");

    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = cli_on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old);
    int rc = lh_pcall(host, 2, 1, &err);
    sigaction(SIGINT, &old, NULL);
    if (rc != ATOM_OK) {
        fprintf(stderr, "atom: %s\n", err.message);
        goto done;
    }
    if (lua_isinteger(L, -1))
        code = (int)lua_tointeger(L, -1);
#ifndef ATOM_FREE_AT_EXIT
    /* The process ends right after this: the kernel takes the Lua heap back at once,
     * where lua_close would free a large release's objects one by one, tens of
     * milliseconds after the work is done and the user is waiting for the prompt. Files
     * the Lua side left open are stdio streams, which exit() flushes. Sanitizer builds
     * define ATOM_FREE_AT_EXIT, so that leak checks still see everything else; the
     * environment variable of that name asks for the same at run time (valgrind, or a
     * profiler that reports from a __gc). */
    if (getenv("ATOM_FREE_AT_EXIT") == NULL) {
        /* Nor do the libraries' exit handlers run (OpenSSL's cleanup frees its
         * whole state, about half a millisecond): the streams are flushed here
         * and the process ends. */
        fflush(NULL);
        _exit(code);
    }
#endif
done:
    lh_free(host);
    return code;
}
