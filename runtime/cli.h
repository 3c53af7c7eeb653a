/*
 * cli.h — the `atom` command. Each verb is a function taking the arguments
 * after the verb and returning the process exit code from the design's
 * table (0 ok, 1 could not do the work, 2 usage/invalid input, 3 Reverted,
 * 4 Failure, 5 refused). Verbs never call exit(); main() does.
 *
 * Ownership: argv is borrowed from main() for the call; a verb frees
 * everything it allocates (its Lua host included) before it returns.
 */
#ifndef ATOM_RUNTIME_CLI_H
#define ATOM_RUNTIME_CLI_H

enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAILED = 1,
    CLI_EXIT_USAGE = 2,
    CLI_EXIT_REVERTED = 3,
    CLI_EXIT_FAILURE = 4,
    CLI_EXIT_REFUSED = 5,
};

typedef int (*cli_verb_fn)(int argc, char **argv);

int cli_main(int argc, char **argv);

int cli_version(int argc, char **argv);
int cli_sim(int argc, char **argv); /* sim_server.c */
int cli_release_verb(int argc, char **argv); /* cli_release.c: argv[0] is the verb */

#endif
