/* cli.c — dispatches `atom VERB ...` to the verb's function. */
#include "cli.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <lua.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <yaml.h>
#include <zlib.h>

#include "version.h"

typedef struct cli_verb {
    const char *name;
    cli_verb_fn fn;
    const char *summary;
} cli_verb;

static const cli_verb cli_verbs[] = {
    {"version", cli_version, "print the versions of atom and the libraries it runs with"},
    {"run", cli_release_verb, "release a script's objects as one transaction"},
    {"resume", cli_release_verb, "finish a release interrupted by a dead run"},
    {"status", cli_release_verb, "show a release's state and objects not ready"},
    {"history", cli_release_verb, "list a release's versions"},
    {"cancel", cli_release_verb, "cancel a running release (from any machine)"},
    {"rollback", cli_release_verb, "release an earlier version's objects again"},
    {"diff", cli_release_verb, "show what a script would change (server-side dry run)"},
    {"check", cli_release_verb, "validate a script and its manifests without a cluster"},
    {"sim", cli_sim, "serve a simulated Kubernetes API server on loopback (kubectl works)"},
    {NULL, NULL, NULL},
};

static void cli_usage(FILE *out)
{
    fprintf(out, "usage: atom VERB [ARGS...]\n\nverbs:\n");
    for (const cli_verb *v = cli_verbs; v->name; v++)
        fprintf(out, "  %-10s %s\n", v->name, v->summary);
}

int cli_version(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    curl_version_info_data *curl = curl_version_info(CURLVERSION_NOW);
    printf("atom %s\n", ATOM_VERSION_STRING);
    printf("lua %s\n", LUA_RELEASE + 4);
    printf("libcurl %s (%s)\n", curl->version, curl->ssl_version ? curl->ssl_version : "no TLS");
    printf("openssl %s\n", OpenSSL_version(OPENSSL_VERSION));
    printf("libyaml %s\n", yaml_get_version_string());
    printf("zlib %s\n", zlibVersion());
    printf("libevent %s\n", event_get_version());
    return CLI_EXIT_OK;
}

int cli_main(int argc, char **argv)
{
    if (argc < 2) {
        cli_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *verb = argv[1];
    if (strcmp(verb, "-h") == 0 || strcmp(verb, "--help") == 0 || strcmp(verb, "help") == 0) {
        cli_usage(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(verb, "--version") == 0)
        verb = "version";
    for (const cli_verb *v = cli_verbs; v->name; v++)
        if (strcmp(v->name, verb) == 0)
            return v->fn(argc - 1, argv + 1);
    fprintf(stderr, "atom: unknown verb '%s'\n", verb);
    cli_usage(stderr);
    return CLI_EXIT_USAGE;
}
