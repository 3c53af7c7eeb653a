/*
 * embed.c — a program that runs an atom release in-process through libatom.
 *
 * It extends the release script's world with one host function,
 * atom.app.image_tag(app), answered from this program (a deploy service
 * would ask its build database), runs the release against the cluster of
 * the kubeconfig (e.g. `atom sim`), and prints every transition and every
 * not-ready object from the progress callback.
 *
 *   embed [--kubeconfig PATH] [--namespace NS] [--deadline SECONDS] SCRIPT TAG
 *
 * Exit codes follow the atom CLI: 0 Running, 3 Reverted, 4 Failure,
 * 5 refused (another run holds the release), 2 invalid input, 1 otherwise.
 */
#include <atom.h>

#include <stdio.h>
#include <string.h>

/* What the host function answers from; owned by main, outlives the runtime. */
typedef struct image_source {
    const char *registry;
    const char *tag;
    int calls;
} image_source;

/* atom.app.image_tag(app) -> "registry/app:tag" */
static int image_tag(void *user, atom_call *call)
{
    image_source *src = user;
    size_t len = 0;
    const char *app = atom_call_arg_string(call, 1, &len);
    if (app == NULL || len == 0)
        return atom_call_error(call, "image_tag(app): app must be a non-empty string");
    char ref[512];
    int n = snprintf(ref, sizeof ref, "%s/%.*s:%s", src->registry, (int)len, app, src->tag);
    if (n < 0 || (size_t)n >= sizeof ref)
        return atom_call_error(call, "image reference for %.*s is too long", (int)len, app);
    src->calls++;
    return atom_call_return_string(call, ref, (size_t)n);
}

static void on_progress(void *user, const atom_progress *p)
{
    (void)user;
    if (p->kind == ATOM_PROGRESS_TRANSITION)
        printf("transition %s v%ld: %s -> %s (%s)\n", p->release, p->version,
               p->from == ATOM_STATE_NONE ? "(none)" : atom_state_name(p->from),
               atom_state_name(p->to), p->message);
    else
        printf("not ready %s: %s\n", p->object ? p->object : "?", p->message);
    fflush(stdout);
}

/* Log lines go to stderr; this program's stdout is the transitions. */
static void on_log(void *user, int level, const char *line)
{
    (void)user;
    (void)level;
    fprintf(stderr, "%s\n", line);
}

static int exit_code(int rc, atom_state final)
{
    if (rc == ATOM_EBUSY)
        return 5;
    if (rc == ATOM_EINVAL)
        return 2;
    if (rc != ATOM_OK)
        return 1;
    switch (final) {
    case ATOM_STATE_RUNNING: return 0;
    case ATOM_STATE_REVERTED: return 3;
    case ATOM_STATE_FAILURE: return 4;
    default: return 1;
    }
}

int main(int argc, char **argv)
{
    const char *kubeconfig = NULL, *ns = NULL, *deadline = NULL;
    int i = 1;
    for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
        if (strcmp(argv[i], "--kubeconfig") == 0)
            kubeconfig = argv[i + 1];
        else if (strcmp(argv[i], "--namespace") == 0)
            ns = argv[i + 1];
        else if (strcmp(argv[i], "--deadline") == 0)
            deadline = argv[i + 1];
        else
            break;
    }
    if (argc - i != 2) {
        fprintf(stderr, "usage: %s [--kubeconfig PATH] [--namespace NS] [--deadline S] SCRIPT TAG\n",
                argv[0]);
        return 2;
    }
    image_source images = {"registry.example.com/shop", argv[i + 1], 0};

    atom_runtime *rt = NULL;
    int rc = atom_runtime_new(&rt);
    if (rc != ATOM_OK) {
        fprintf(stderr, "embed: cannot create an atom runtime: %s\n", atom_status_string(rc));
        return 1;
    }
    printf("libatom %s\n", atom_version());
    atom_runtime_set_log(rt, on_log, NULL);
    atom_runtime_set_progress(rt, on_progress, NULL);
    if ((kubeconfig && (rc = atom_runtime_set_kubeconfig(rt, kubeconfig)) != ATOM_OK) ||
        (ns && (rc = atom_runtime_set_namespace(rt, ns)) != ATOM_OK) ||
        (deadline && (rc = atom_runtime_set_option(rt, "deadline", deadline)) != ATOM_OK) ||
        (rc = atom_runtime_register(rt, "image_tag", image_tag, &images)) != ATOM_OK ||
        (rc = atom_runtime_set_string(rt, "deployer", "embed-example")) != ATOM_OK) {
        fprintf(stderr, "embed: %s\n", atom_runtime_last_error(rt));
        atom_runtime_free(rt);
        return exit_code(rc, ATOM_STATE_NONE);
    }

    atom_release *release = NULL;
    atom_state final = ATOM_STATE_NONE;
    rc = atom_release_load_file(rt, argv[i], &release);
    if (rc == ATOM_OK)
        rc = atom_release_run(release, &final);
    if (rc != ATOM_OK) {
        fprintf(stderr, "embed: %s: %s\n", atom_status_string(rc), atom_runtime_last_error(rt));
    } else {
        atom_release_info info;
        if (atom_release_describe(release, &info) == ATOM_OK)
            printf("final %s v%ld: %s (previous good version %ld; image_tag called %d time%s)\n",
                   info.name, info.version, atom_state_name(info.state), info.previous,
                   images.calls, images.calls == 1 ? "" : "s");
    }
    atom_release_free(release);
    atom_runtime_free(rt);
    return exit_code(rc, final);
}
