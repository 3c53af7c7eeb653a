/*
 * test_api.c — libatom's public API under misuse: every call with a NULL
 * handle, an unloaded release, bad names and options, and a host function
 * that errors returns a negative code with a message and never crashes; two
 * handles in one process (and on two threads) keep their own state.
 * Uses only include/atom.h. Cluster runs are covered by spec/embed/.
 */
#if !defined(_GNU_SOURCE) && !defined(_XOPEN_SOURCE)
#define _XOPEN_SOURCE 700 /* mkdtemp */
#endif
#include <atom.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                              \
        }                                                                            \
    } while (0)

#define CHECK_MSG(rt, needle)                                                           \
    do {                                                                                \
        const char *m_ = atom_runtime_last_error(rt);                                   \
        if (m_ == NULL || strstr(m_, needle) == NULL) {                                 \
            fprintf(stderr, "%s:%d: last error '%s' lacks '%s'\n", __FILE__, __LINE__, \
                    m_ ? m_ : "(null)", needle);                                        \
            failures++;                                                                 \
        }                                                                               \
    } while (0)

static void test_codes_and_states(void)
{
    CHECK(ATOM_OK == 0 && ATOM_EINVAL == -1 && ATOM_ENOMEM == -2 && ATOM_EIO == -3 &&
          ATOM_ELUA == -4 && ATOM_EKUBE == -5 && ATOM_EBUSY == -6 && ATOM_EBUDGET == -7 &&
          ATOM_ESTATE == -8);
    CHECK(strcmp(atom_status_string(ATOM_EKUBE), "ATOM_EKUBE") == 0);
    CHECK(strcmp(atom_status_string(12345), "ATOM_EUNKNOWN") == 0);
    const char *names[] = {"Pending", "Updating", "Running", "Cancelled", "Deadline",
                           "Error", "Rollback", "Reverted", "Failure"};
    for (int i = 0; i < 9; i++) {
        atom_state s = atom_state_from_name(names[i]);
        CHECK(s == (atom_state)(i + 1));
        CHECK(strcmp(atom_state_name(s), names[i]) == 0);
    }
    CHECK(atom_state_from_name("running") == ATOM_STATE_NONE);
    CHECK(atom_state_from_name(NULL) == ATOM_STATE_NONE);
    CHECK(strcmp(atom_state_name((atom_state)99), "") == 0);
    CHECK(atom_state_is_terminal(ATOM_STATE_RUNNING) && atom_state_is_terminal(ATOM_STATE_REVERTED) &&
          atom_state_is_terminal(ATOM_STATE_FAILURE) && !atom_state_is_terminal(ATOM_STATE_ROLLBACK));
    CHECK(atom_version()[0] >= '0' && atom_version()[0] <= '9');
}

static int dummy_fn(void *user, atom_call *call)
{
    (void)user;
    (void)call;
    return ATOM_OK;
}

static int history_cb(void *user, const atom_version_info *v)
{
    (void)user;
    (void)v;
    return 0;
}

static void test_null_handle(void)
{
    atom_state st = ATOM_STATE_RUNNING;
    atom_release_info info;
    const char *json = "x";
    CHECK(atom_runtime_new(NULL) == ATOM_EINVAL);
    atom_runtime_free(NULL);
    atom_release_free(NULL);
    CHECK(strstr(atom_runtime_last_error(NULL), "NULL") != NULL);
    CHECK(atom_runtime_last_code(NULL) == ATOM_EINVAL);
    CHECK(atom_runtime_set_kubeconfig(NULL, "x") == ATOM_EINVAL);
    CHECK(atom_runtime_set_kubeconfig_data(NULL, "x", 1) == ATOM_EINVAL);
    CHECK(atom_runtime_set_context(NULL, "x") == ATOM_EINVAL);
    CHECK(atom_runtime_set_namespace(NULL, "x") == ATOM_EINVAL);
    CHECK(atom_runtime_set_option(NULL, "deadline", "3") == ATOM_EINVAL);
    CHECK(atom_runtime_set_log(NULL, NULL, NULL) == ATOM_EINVAL);
    CHECK(atom_runtime_set_progress(NULL, NULL, NULL) == ATOM_EINVAL);
    CHECK(atom_runtime_register(NULL, "f", dummy_fn, NULL) == ATOM_EINVAL);
    CHECK(atom_runtime_set_string(NULL, "f", "v") == ATOM_EINVAL);
    atom_release *r = (atom_release *)&json; /* must be reset to NULL */
    CHECK(atom_release_load_file(NULL, "x.lua", &r) == ATOM_EINVAL && r == NULL);
    r = (atom_release *)&json;
    CHECK(atom_release_load_string(NULL, "return {}", 9, NULL, NULL, &r) == ATOM_EINVAL && r == NULL);
    CHECK(atom_release_run(NULL, &st) == ATOM_ESTATE && st == ATOM_STATE_NONE);
    CHECK(atom_release_name(NULL) == NULL);
    CHECK(atom_release_resume(NULL, "x", &st) == ATOM_EINVAL);
    CHECK(atom_release_cancel(NULL, "x") == ATOM_EINVAL);
    CHECK(atom_release_rollback(NULL, "x", 0, &st) == ATOM_EINVAL);
    CHECK(atom_release_status(NULL, "x", &info) == ATOM_EINVAL);
    CHECK(atom_release_history(NULL, "x", history_cb, NULL) == ATOM_EINVAL);
    CHECK(atom_release_status_json(NULL, "x", &json) == ATOM_EINVAL);
    CHECK(atom_release_history_json(NULL, "x", &json) == ATOM_EINVAL);
    /* atom_call accessors tolerate NULL too (a host function passing it on). */
    CHECK(atom_call_argc(NULL) == 0);
    CHECK(atom_call_arg_type(NULL, 1) == ATOM_TYPE_NONE);
    CHECK(atom_call_arg_string(NULL, 1, NULL) == NULL);
    CHECK(atom_call_return_nil(NULL) == ATOM_EINVAL);
    CHECK(atom_call_error(NULL, "x") == ATOM_ELUA);
}

static void test_bad_arguments(atom_runtime *rt)
{
    atom_release *r = NULL;
    atom_state st;
    atom_release_info info;
    const char *json;

    CHECK(atom_release_load_file(rt, NULL, &r) == ATOM_EINVAL && r == NULL);
    CHECK_MSG(rt, "path is NULL");
    CHECK(atom_release_load_file(rt, "x.lua", NULL) == ATOM_EINVAL);
    CHECK(atom_release_load_string(rt, NULL, 0, NULL, NULL, &r) == ATOM_EINVAL);
    CHECK_MSG(rt, "source is NULL");

    CHECK(atom_runtime_register(rt, "not an identifier", dummy_fn, NULL) == ATOM_EINVAL);
    CHECK_MSG(rt, "not a Lua identifier");
    CHECK(atom_runtime_register(rt, "9lives", dummy_fn, NULL) == ATOM_EINVAL);
    CHECK(atom_runtime_register(rt, NULL, dummy_fn, NULL) == ATOM_EINVAL);
    CHECK(atom_runtime_register(rt, "ok_name", NULL, NULL) == ATOM_EINVAL);
    CHECK_MSG(rt, "NULL");
    CHECK(atom_runtime_register(rt, "ok_name", dummy_fn, NULL) == ATOM_OK);
    CHECK(strcmp(atom_runtime_last_error(rt), "") == 0); /* a success clears it */
    CHECK(atom_runtime_set_string(rt, "a-b", "v") == ATOM_EINVAL);
    CHECK(atom_runtime_set_string(rt, "tag", "v1") == ATOM_OK);

    CHECK(atom_runtime_set_option(rt, "no-such-option", "1") == ATOM_EINVAL);
    CHECK_MSG(rt, "no-such-option");
    CHECK(atom_runtime_set_option(rt, "deadline", "soon") == ATOM_EINVAL);
    CHECK_MSG(rt, "number");
    CHECK(atom_runtime_set_option(rt, "allow-exec", "maybe") == ATOM_EINVAL);
    CHECK(atom_runtime_set_option(rt, "deadline", "30") == ATOM_OK);
    CHECK(atom_runtime_set_option(rt, "allow-exec", "false") == ATOM_OK);
    CHECK(atom_runtime_set_option(rt, "deadline", NULL) == ATOM_OK);
    CHECK(atom_runtime_set_option(rt, NULL, "1") == ATOM_EINVAL);

    CHECK(atom_runtime_set_kubeconfig(rt, "/nonexistent/kubeconfig") == ATOM_OK);
    CHECK(atom_runtime_set_kubeconfig(rt, NULL) == ATOM_OK);
    CHECK(atom_runtime_set_kubeconfig_data(rt, "apiVersion: v1\n", 15) == ATOM_OK);
    CHECK(atom_runtime_set_kubeconfig_data(rt, NULL, 0) == ATOM_OK);
    CHECK(atom_runtime_set_context(rt, "ctx") == ATOM_OK);
    CHECK(atom_runtime_set_namespace(rt, "ns") == ATOM_OK);

    CHECK(atom_release_resume(rt, "", &st) == ATOM_EINVAL);
    CHECK_MSG(rt, "name is empty");
    CHECK(atom_release_cancel(rt, NULL) == ATOM_EINVAL);
    CHECK(atom_release_rollback(rt, "x", -1, &st) == ATOM_EINVAL);
    CHECK_MSG(rt, "negative");
    CHECK(atom_release_status(rt, "x", NULL) == ATOM_EINVAL);
    CHECK(atom_release_history(rt, "x", NULL, NULL) == ATOM_EINVAL);
    CHECK(atom_release_status_json(rt, "x", NULL) == ATOM_EINVAL);
    (void)info;
    (void)json;
}

/* A script that is not there: a code and a message naming it. */
static void test_missing_script(atom_runtime *rt)
{
    atom_release *r = NULL;
    int rc = atom_release_load_file(rt, "/nonexistent/atom/release.lua", &r);
    CHECK(rc < 0 && r == NULL);
    CHECK(atom_runtime_last_code(rt) == rc);
    CHECK_MSG(rt, "release.lua");
}

/* ---- host functions --------------------------------------------------- */

typedef struct tag_source {
    const char *tag;
    int calls;
} tag_source;

static int image_tag(void *user, atom_call *call)
{
    tag_source *src = user;
    src->calls++;
    size_t len = 0;
    const char *app = atom_call_arg_string(call, 1, &len);
    if (app == NULL)
        return atom_call_error(call, "image_tag wants an app name, got type %d",
                               atom_call_arg_type(call, 1));
    char buf[128];
    snprintf(buf, sizeof buf, "%.*s:%s", (int)len, app, src->tag);
    return atom_call_return_string(call, buf, strlen(buf));
}

static int always_fails(void *user, atom_call *call)
{
    (void)user;
    return atom_call_error(call, "the registry is down (%d)", 503);
}

static int fails_silently(void *user, atom_call *call)
{
    (void)user;
    (void)call;
    return ATOM_EIO;
}

static const char *script_dir(char *buf, size_t n)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(buf, n, "%s/atom-test-api-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    return mkdtemp(buf);
}

/* A release script calling host functions at load time; the loader runs
 * the script, so the values land in the release table. */
static void test_host_functions(void)
{
    atom_runtime *rt = NULL;
    CHECK(atom_runtime_new(&rt) == ATOM_OK && rt != NULL);
    if (rt == NULL)
        return;
    char dirbuf[256];
    const char *dir = script_dir(dirbuf, sizeof dirbuf);
    CHECK(dir != NULL);

    tag_source src = {"v42", 0};
    CHECK(atom_runtime_register(rt, "image_tag", image_tag, &src) == ATOM_OK);
    CHECK(atom_runtime_register(rt, "boom", always_fails, NULL) == ATOM_OK);
    CHECK(atom_runtime_register(rt, "quiet", fails_silently, NULL) == ATOM_OK);
    CHECK(atom_runtime_set_string(rt, "team", "payments") == ATOM_OK);

    const char *ok_script =
        "local atom = require 'atom'\n"
        "local img = atom.app.image_tag('web')\n"
        "assert(img == 'web:v42', 'got ' .. tostring(img))\n"
        "assert(atom.app.team == 'payments')\n"
        "return { name = 'api-' .. atom.app.team, namespace = 'default',\n"
        "  objects = { { apiVersion = 'v1', kind = 'ConfigMap',\n"
        "    metadata = { name = 'tag' }, data = { image = img } } } }\n";
    atom_release *r = NULL;
    int rc = atom_release_load_string(rt, ok_script, strlen(ok_script), dir, "ok.lua", &r);
    if (rc != ATOM_OK)
        fprintf(stderr, "load ok.lua: %s: %s\n", atom_status_string(rc), atom_runtime_last_error(rt));
    CHECK(rc == ATOM_OK && r != NULL);
    CHECK(src.calls == 1);
    CHECK(r && strcmp(atom_release_name(r), "api-payments") == 0);
    atom_release_free(r);

    /* The host function's own message reaches the caller, with its name. */
    const char *boom_script = "local atom = require 'atom'\nreturn { name = atom.app.boom() }\n";
    r = NULL;
    rc = atom_release_load_string(rt, boom_script, strlen(boom_script), dir, "boom.lua", &r);
    CHECK(rc < 0 && r == NULL);
    CHECK_MSG(rt, "the registry is down (503)");
    CHECK_MSG(rt, "atom.app.boom");

    const char *quiet_script = "local atom = require 'atom'\nreturn { name = atom.app.quiet() }\n";
    rc = atom_release_load_string(rt, quiet_script, strlen(quiet_script), dir, "quiet.lua", &r);
    CHECK(rc < 0 && r == NULL);
    CHECK_MSG(rt, "ATOM_EIO");

    /* A wrong argument type becomes the host function's error, not a crash. */
    const char *badarg = "local atom = require 'atom'\nreturn { name = atom.app.image_tag({}) }\n";
    rc = atom_release_load_string(rt, badarg, strlen(badarg), dir, "badarg.lua", &r);
    CHECK(rc < 0);
    CHECK_MSG(rt, "wants an app name");

    /* A release loaded and never freed is freed with its handle (ASan). */
    rc = atom_release_load_string(rt, ok_script, strlen(ok_script), dir, "ok.lua", &r);
    CHECK(rc == ATOM_OK);
    atom_runtime_free(rt);
    if (dir)
        rmdir(dir);
}

/* ---- two handles ------------------------------------------------------ */

typedef struct worker {
    const char *tag;
    const char *dir;
    int ok;
    char name[64];
} worker;

static int worker_tag(void *user, atom_call *call)
{
    worker *w = user;
    return atom_call_return_string(call, w->tag, strlen(w->tag));
}

/* Each thread owns a handle and loads many times; a handle that saw the
 * other's host function or value would produce the wrong name. */
static void *worker_main(void *arg)
{
    worker *w = arg;
    atom_runtime *rt = NULL;
    if (atom_runtime_new(&rt) != ATOM_OK)
        return NULL;
    atom_runtime_register(rt, "tag", worker_tag, w);
    atom_runtime_set_string(rt, "who", w->tag);
    const char *script =
        "local atom = require 'atom'\n"
        "local s = 0\nfor i = 1, 20000 do s = s + i end\n"
        "return { name = atom.app.tag() .. '-' .. atom.app.who, namespace = 'default',\n"
        "  objects = { { apiVersion = 'v1', kind = 'ConfigMap', metadata = { name = 'c' } } } }\n";
    w->ok = 1;
    for (int i = 0; i < 20; i++) {
        atom_release *r = NULL;
        if (atom_release_load_string(rt, script, strlen(script), w->dir, "w.lua", &r) != ATOM_OK) {
            fprintf(stderr, "worker %s: %s\n", w->tag, atom_runtime_last_error(rt));
            w->ok = 0;
            break;
        }
        snprintf(w->name, sizeof w->name, "%s", atom_release_name(r));
        char want[64];
        snprintf(want, sizeof want, "%s-%s", w->tag, w->tag);
        if (strcmp(w->name, want) != 0)
            w->ok = 0;
        atom_release_free(r);
    }
    atom_runtime_free(rt);
    return NULL;
}

static void test_two_handles(void)
{
    atom_runtime *a = NULL, *b = NULL;
    CHECK(atom_runtime_new(&a) == ATOM_OK && atom_runtime_new(&b) == ATOM_OK);
    if (!a || !b)
        return;
    /* Errors are per handle. */
    CHECK(atom_runtime_set_option(a, "bogus", "1") == ATOM_EINVAL);
    CHECK(atom_runtime_last_code(a) == ATOM_EINVAL && atom_runtime_last_code(b) == ATOM_OK);
    CHECK(strcmp(atom_runtime_last_error(b), "") == 0);
    atom_runtime_free(a);
    atom_runtime_free(b);

    char dirbuf[256];
    const char *dir = script_dir(dirbuf, sizeof dirbuf);
    worker w1 = {"alpha", dir, 0, ""}, w2 = {"beta", dir, 0, ""};
    pthread_t t1, t2;
    CHECK(pthread_create(&t1, NULL, worker_main, &w1) == 0);
    CHECK(pthread_create(&t2, NULL, worker_main, &w2) == 0);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    CHECK(w1.ok && strcmp(w1.name, "alpha-alpha") == 0);
    CHECK(w2.ok && strcmp(w2.name, "beta-beta") == 0);
    if (dir)
        rmdir(dir);
}

/* ---- two handles, two releases at once, against a cluster ------------- */

typedef struct runner {
    const char *kubeconfig;
    const char *dir;
    const char *name;
    const char *tag;       /* image tag; "does-not-exist" never gets ready on atom sim */
    int cancel_on_updating;
    atom_runtime *rt;
    int saw_cancelled;
    long last_version;
    int transitions;       /* progress events for this release */
    int foreign;           /* progress events naming another release */
    atom_state final;
    int rc;
    char error[512];
} runner;

static int count_versions(void *user, const atom_version_info *v)
{
    long *last = user; /* versions come oldest first */
    CHECK(v->version > *last && v->who[0] != '\0' && v->digest[0] != '\0');
    *last = v->version;
    return 0;
}

static void runner_progress(void *user, const atom_progress *p)
{
    runner *r = user;
    if (strcmp(p->release, r->name) != 0) {
        r->foreign++;
    } else if (p->kind == ATOM_PROGRESS_TRANSITION) {
        r->transitions++;
        if (p->to == ATOM_STATE_CANCELLED)
            r->saw_cancelled = 1;
        if (p->to == ATOM_STATE_UPDATING && r->cancel_on_updating)
            CHECK(atom_runtime_cancel_run(r->rt) == ATOM_OK);
    }
}

static void runner_log(void *user, int level, const char *line)
{
    (void)user;
    (void)level;
    (void)line;
}

static int runner_image(void *user, atom_call *call)
{
    runner *r = user;
    char img[128];
    snprintf(img, sizeof img, "example.com/%s:%s", r->name, r->tag);
    return atom_call_return_string(call, img, strlen(img));
}

static void *runner_main(void *arg)
{
    runner *r = arg;
    atom_runtime *rt = NULL;
    if ((r->rc = atom_runtime_new(&rt)) != ATOM_OK)
        return NULL;
    r->rt = rt;
    if (r->cancel_on_updating) {
        /* This one gets the kubeconfig in memory, as a service holding it would. */
        char data[16384];
        FILE *f = fopen(r->kubeconfig, "r");
        size_t n = f ? fread(data, 1, sizeof data, f) : 0;
        if (f)
            fclose(f);
        CHECK(n > 0 && n < sizeof data);
        CHECK(atom_runtime_set_kubeconfig_data(rt, data, n) == ATOM_OK);
    } else {
        atom_runtime_set_kubeconfig(rt, r->kubeconfig);
    }
    atom_runtime_set_progress(rt, runner_progress, r);
    atom_runtime_set_log(rt, runner_log, r);
    atom_runtime_register(rt, "image", runner_image, r);
    atom_runtime_set_string(rt, "release", r->name);
    const char *script =
        "local atom = require 'atom'\n"
        "local n = atom.app.release\n"
        "return { name = n, namespace = n, deadline = 30, objects = {\n"
        "  { apiVersion = 'apps/v1', kind = 'Deployment', metadata = { name = 'web' },\n"
        "    spec = { replicas = 2, selector = { matchLabels = { app = n } },\n"
        "      template = { metadata = { labels = { app = n } },\n"
        "        spec = { containers = { { name = 'web', image = atom.app.image() } } } } } } } }\n";
    atom_release *rel = NULL;
    r->rc = atom_release_load_string(rt, script, strlen(script), r->dir, "two.lua", &rel);
    if (r->rc == ATOM_OK)
        r->rc = atom_release_run(rel, &r->final);
    if (r->rc == ATOM_OK) {
        /* The record agrees with the run, through every read path. */
        atom_release_info info;
        const char *json = NULL;
        CHECK(atom_release_describe(rel, &info) == ATOM_OK);
        CHECK(info.state == r->final && info.version >= 1 && strcmp(info.name, r->name) == 0);
        CHECK(strcmp(info.ns, r->name) == 0);
        CHECK(atom_runtime_set_namespace(rt, r->name) == ATOM_OK);
        CHECK(atom_release_status(rt, r->name, &info) == ATOM_OK && info.state == r->final);
        CHECK(atom_release_history_json(rt, r->name, &json) == ATOM_OK && json != NULL);
        CHECK(json && strstr(json, atom_state_name(r->final)) != NULL);
        CHECK(atom_release_status_json(rt, r->name, &json) == ATOM_OK && json && json[0] == '{');
        long version = info.version;
        CHECK(atom_release_history(rt, r->name, count_versions, &r->last_version) == ATOM_OK);
        CHECK(r->last_version == version);
        /* Nothing is in flight any more: a cancel is refused with a message. */
        CHECK(atom_release_cancel(rt, r->name) == ATOM_ESTATE);
        CHECK(strstr(atom_runtime_last_error(rt), "nothing to cancel") != NULL);
    }
    if (r->rc != ATOM_OK)
        snprintf(r->error, sizeof r->error, "%s", atom_runtime_last_error(rt));
    atom_release_free(rel);
    atom_runtime_free(rt);
    return NULL;
}

/* Only with ATOM_TEST_KUBECONFIG (spec/embed starts `atom sim` and sets it). */
static void test_two_releases_at_once(const char *kubeconfig)
{
    char dirbuf[256];
    const char *dir = script_dir(dirbuf, sizeof dirbuf);
    runner a = {kubeconfig, dir, "two-alpha", "1.0", 0, NULL, 0, 0, 0, 0, ATOM_STATE_NONE, 0, ""};
    runner b = {kubeconfig, dir, "two-beta", "1.0", 0, NULL, 0, 0, 0, 0, ATOM_STATE_NONE, 0, ""};
    pthread_t ta, tb;
    CHECK(pthread_create(&ta, NULL, runner_main, &a) == 0);
    CHECK(pthread_create(&tb, NULL, runner_main, &b) == 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    if (a.rc != ATOM_OK || b.rc != ATOM_OK)
        fprintf(stderr, "two releases: %s / %s\n", a.error, b.error);
    CHECK(a.rc == ATOM_OK && a.final == ATOM_STATE_RUNNING);
    CHECK(b.rc == ATOM_OK && b.final == ATOM_STATE_RUNNING);
    /* (none)->Pending, Pending->Updating, Updating->Running, each its own. */
    CHECK(a.transitions == 3 && b.transitions == 3);
    CHECK(a.foreign == 0 && b.foreign == 0);

    /* Cancelling from the progress callback: Updating -> Cancelled -> Rollback
     * -> Reverted (the first version rolls back to the empty version). */
    runner c = {kubeconfig, dir, "cancel-gamma", "does-not-exist", 1, NULL, 0, 0, 0, 0,
                ATOM_STATE_NONE, 0, ""};
    runner_main(&c);
    if (c.rc != ATOM_OK)
        fprintf(stderr, "cancel: %s\n", c.error);
    CHECK(c.rc == ATOM_OK && c.final == ATOM_STATE_REVERTED && c.saw_cancelled);

    if (dir)
        rmdir(dir);
    printf("test_api: two releases at once: %s %s, %s %s\n", a.name, atom_state_name(a.final),
           b.name, atom_state_name(b.final));
}

int main(void)
{
    test_codes_and_states();
    test_null_handle();
    atom_runtime *rt = NULL;
    int rc = atom_runtime_new(&rt);
    if (rc != ATOM_OK) {
        fprintf(stderr, "atom_runtime_new: %s\n", atom_status_string(rc));
        return 1;
    }
    CHECK(strcmp(atom_runtime_last_error(rt), "") == 0 && atom_runtime_last_code(rt) == ATOM_OK);
    test_bad_arguments(rt);
    test_missing_script(rt);
    atom_runtime_free(rt);
    test_host_functions();
    test_two_handles();
    const char *kubeconfig = getenv("ATOM_TEST_KUBECONFIG");
    if (kubeconfig && *kubeconfig)
        test_two_releases_at_once(kubeconfig);
    if (failures) {
        fprintf(stderr, "test_api: %d check(s) failed\n", failures);
        return 1;
    }
    printf("test_api: ok\n");
    return 0;
}
