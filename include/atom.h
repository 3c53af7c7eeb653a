/*
 * atom.h — the public C API of libatom: run atom releases in-process.
 *
 * This is the one public header. It uses no Lua, curl or OpenSSL types, so a
 * program needs nothing but this file and `pkg-config --cflags --libs atom`.
 *
 * Model
 *   An atom_runtime is an opaque handle that owns one Lua state, its
 *   configuration (kubeconfig, context, namespace, callbacks, host functions)
 *   and its last error. Everything hangs off the handle: the library keeps no
 *   global mutable state (apart from a once-only libcurl initialisation),
 *   never installs signal handlers and never calls exit(). Two handles in one
 *   process never interfere; each may be driven from its own thread. One
 *   handle must not be used by two threads at the same time.
 *
 * Errors
 *   Every fallible function returns ATOM_OK (0) or a negative atom_status.
 *   The message for the most recent failure is atom_runtime_last_error(rt):
 *   owned by rt, valid until the next call on rt. Use the return code, not
 *   the message, to detect errors. Passing a NULL handle returns ATOM_EINVAL.
 *
 * Ownership, in one place
 *   - Strings passed in are copied; the caller may free them after the call.
 *   - Strings handed out (last error, release name, status fields, progress
 *     fields, call arguments) are owned by the library; their lifetime is
 *     stated on each function and is never longer than the next call on the
 *     same handle.
 *   - user pointers given with callbacks are never dereferenced or freed by
 *     the library; they must outlive the registration.
 *   - Every _new/_load has a matching _free; _free(NULL) is a no-op.
 */
#ifndef ATOM_H
#define ATOM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define ATOM_API __attribute__((visibility("default")))
#define ATOM_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define ATOM_API
#define ATOM_PRINTF(f, a)
#endif

/* ---- status codes ----------------------------------------------------- */

/* The values are those of the runtime's own error convention
 * (runtime/error.h); the guard lets the runtime include both headers. */
#ifndef ATOM_RUNTIME_ERROR_H
typedef enum atom_status {
    ATOM_OK = 0,
    ATOM_EINVAL = -1,   /* bad input: a script, manifest, argument, NULL handle */
    ATOM_ENOMEM = -2,   /* allocation failed or the Lua heap ceiling was hit */
    ATOM_EIO = -3,      /* a file, socket or process could not be used */
    ATOM_ELUA = -4,     /* Lua code raised an error (message has a traceback) */
    ATOM_EKUBE = -5,    /* the Kubernetes API refused or could not be reached */
    ATOM_EBUSY = -6,    /* another run holds the release (its lease) */
    ATOM_EBUDGET = -7,  /* a Lua call ran out of instructions or time */
    ATOM_ESTATE = -8    /* not allowed now: unloaded release, wrong state */
} atom_status;
#endif

/* A short stable name ("ATOM_EKUBE"); never NULL; static storage. */
ATOM_API const char *atom_status_string(int code);

/* The library's version, "MAJOR.MINOR.PATCH"; static storage. */
ATOM_API const char *atom_version(void);

/* ---- release states ----------------------------------------------------- */

/* The nine states of DESIGN.md, plus NONE for "no state / unknown". */
typedef enum atom_state {
    ATOM_STATE_NONE = 0,
    ATOM_STATE_PENDING,
    ATOM_STATE_UPDATING,
    ATOM_STATE_RUNNING,    /* terminal, success */
    ATOM_STATE_CANCELLED,
    ATOM_STATE_DEADLINE,
    ATOM_STATE_ERROR,
    ATOM_STATE_ROLLBACK,
    ATOM_STATE_REVERTED,   /* terminal: the previous version is back */
    ATOM_STATE_FAILURE     /* terminal: neither version is ready */
} atom_state;

/* The exact name stored in the cluster ("Running"), "" for NONE or an
 * unknown value; static storage. */
ATOM_API const char *atom_state_name(atom_state state);

/* Parses an exact state name; ATOM_STATE_NONE when name is not one. */
ATOM_API atom_state atom_state_from_name(const char *name);

/* 1 for Running, Reverted and Failure; 0 otherwise. */
ATOM_API int atom_state_is_terminal(atom_state state);

/* ---- the runtime handle ----------------------------------------------- */

typedef struct atom_runtime atom_runtime;

/* Creates a handle with its own Lua state. On success *out owns a handle
 * the caller frees with atom_runtime_free. On failure *out is NULL (there is
 * no handle to read a message from, hence the code says it all). */
ATOM_API int atom_runtime_new(atom_runtime **out);

/* Frees the handle and everything it owns, including releases loaded on it
 * that were not freed yet. NULL is a no-op. */
ATOM_API void atom_runtime_free(atom_runtime *rt);

/* The message of the most recent failed call on rt: owned by rt, valid until
 * the next call on rt, never NULL ("" when the last call succeeded). For a
 * NULL rt, a static message saying so. */
ATOM_API const char *atom_runtime_last_error(const atom_runtime *rt);

/* The code of the most recent call on rt (ATOM_OK after a success). */
ATOM_API int atom_runtime_last_code(const atom_runtime *rt);

/* Kubernetes connection, as kubectl's flags. Each setter copies its string;
 * NULL resets to the default (KUBECONFIG / ~/.kube/config, the current
 * context, the context's namespace). set_kubeconfig_data takes a whole
 * kubeconfig document in memory (YAML or JSON) instead of a path; it wins over
 * a path when both are set. */
ATOM_API int atom_runtime_set_kubeconfig(atom_runtime *rt, const char *path);
ATOM_API int atom_runtime_set_kubeconfig_data(atom_runtime *rt, const char *data, size_t len);
ATOM_API int atom_runtime_set_context(atom_runtime *rt, const char *context);
ATOM_API int atom_runtime_set_namespace(atom_runtime *rt, const char *ns);

/* Any other option the CLI takes as a long flag, without the dashes:
 * "deadline" (seconds), "lease-duration" (seconds), "history-limit",
 * "allow-exec" ("true"/"false"), "allow-read-outside". Copied; NULL value
 * removes the option. Unknown names are refused with ATOM_EINVAL. */
ATOM_API int atom_runtime_set_option(atom_runtime *rt, const char *name, const char *value);

/* ---- callbacks -------------------------------------------------------- */

enum { ATOM_LOG_DEBUG = 0, ATOM_LOG_INFO = 1, ATOM_LOG_WARN = 2, ATOM_LOG_ERROR = 3 };

/* Receives each log line (logfmt, no trailing newline). line is valid only
 * during the call. Called on the thread running the operation. */
typedef void (*atom_log_fn)(void *user, int level, const char *line);

/* Replaces the log callback; fn NULL restores the default (stderr). */
ATOM_API int atom_runtime_set_log(atom_runtime *rt, atom_log_fn fn, void *user);

typedef enum atom_progress_kind {
    ATOM_PROGRESS_TRANSITION = 1,  /* the release moved from one state to another */
    ATOM_PROGRESS_NOT_READY = 2    /* an object is (still) not ready */
} atom_progress_kind;

/* One progress event. All pointers are owned by the library and valid only
 * during the callback; copy what you keep. Fields may be appended in later
 * versions, never reordered. */
typedef struct atom_progress {
    atom_progress_kind kind;
    const char *release;    /* release name */
    long version;           /* version being driven (0 if not known yet) */
    atom_state from;        /* TRANSITION: the state left (NONE at the start) */
    atom_state to;          /* TRANSITION: the state entered */
    const char *object;     /* NOT_READY: "Kind/namespace/name"; NULL otherwise */
    const char *message;    /* why: transition reason or readiness message; never NULL */
} atom_progress;

typedef void (*atom_progress_fn)(void *user, const atom_progress *p);

/* Sets the progress callback (NULL: none). Called on the thread running the
 * operation, between steps; it must not call back into the same handle. */
ATOM_API int atom_runtime_set_progress(atom_runtime *rt, atom_progress_fn fn, void *user);

/* ---- host functions and values (extending the scripts' world) ---------- */

/* A call from a release script into the embedding program. Opaque; valid
 * only during the atom_host_fn it is passed to. Arguments are numbered from
 * 1 as in Lua. */
typedef struct atom_call atom_call;

enum { ATOM_TYPE_NONE = -1, ATOM_TYPE_NIL = 0, ATOM_TYPE_BOOLEAN = 1,
       ATOM_TYPE_NUMBER = 2, ATOM_TYPE_STRING = 3, ATOM_TYPE_OTHER = 4 };

ATOM_API int atom_call_argc(const atom_call *call);
/* ATOM_TYPE_* of argument i; ATOM_TYPE_NONE past the last one. */
ATOM_API int atom_call_arg_type(const atom_call *call, int i);
/* The argument as a string (numbers are converted), or NULL when it is
 * neither. Owned by the script's state, valid until the host function
 * returns. len may be NULL. */
ATOM_API const char *atom_call_arg_string(const atom_call *call, int i, size_t *len);
/* The argument as a number; *ok (may be NULL) is 1 when it was one. */
ATOM_API double atom_call_arg_number(const atom_call *call, int i, int *ok);
/* Lua truthiness of the argument (nil and false are 0). */
ATOM_API int atom_call_arg_boolean(const atom_call *call, int i);

/* Results, in order. Strings are copied. */
ATOM_API int atom_call_return_string(atom_call *call, const char *s, size_t len);
ATOM_API int atom_call_return_number(atom_call *call, double n);
ATOM_API int atom_call_return_boolean(atom_call *call, int b);
ATOM_API int atom_call_return_nil(atom_call *call);

/* Records an error message (copied) and returns ATOM_ELUA, so a host
 * function can `return atom_call_error(call, "no tag for %s", name);`. */
ATOM_API int atom_call_error(atom_call *call, const char *fmt, ...) ATOM_PRINTF(2, 3);

/* A host function returns ATOM_OK (its results are what it returned through
 * atom_call_return_*) or a negative code, which raises a Lua error in the
 * script carrying the message set with atom_call_error (or a generic one). */
typedef int (*atom_host_fn)(void *user, atom_call *call);

/* Makes fn callable from release scripts (and their hooks, checks and
 * policies) as atom.app.<name>(...). name is a Lua identifier; it is copied.
 * Registering a name again replaces it. user must outlive rt. */
ATOM_API int atom_runtime_register(atom_runtime *rt, const char *name, atom_host_fn fn, void *user);

/* Makes a string value visible to scripts as atom.app.<name>. Copied. */
ATOM_API int atom_runtime_set_string(atom_runtime *rt, const char *name, const char *value);

/* ---- releases --------------------------------------------------------- */

typedef struct atom_release atom_release;

/* Loads and validates a release script (nothing touches the cluster). On
 * success *out is owned by the caller (atom_release_free) and must not
 * outlive rt. On failure *out is NULL and the message names file and line. */
ATOM_API int atom_release_load_file(atom_runtime *rt, const char *path, atom_release **out);

/* As load_file, from text in memory. dir is the folder relative paths in
 * the script (atom.yaml patterns) resolve against; NULL = the current
 * directory. chunkname names the script in errors (NULL: "release.lua"). */
ATOM_API int atom_release_load_string(atom_runtime *rt, const char *source, size_t len,
                                      const char *dir, const char *chunkname,
                                      atom_release **out);

ATOM_API void atom_release_free(atom_release *r);

/* The release's name as the script gives it; owned by r. NULL for NULL. */
ATOM_API const char *atom_release_name(const atom_release *r);

/* Runs the loaded release to a terminal state (as `atom run`): records a new
 * version, applies, waits for readiness, rolls back on failure. Blocks.
 * Returns ATOM_OK when a terminal state was reached — *final_state (may be
 * NULL) says which: RUNNING, REVERTED or FAILURE. Returns a negative code
 * when the release could not be driven (EKUBE unreachable, EBUSY another run
 * holds it, EINVAL invalid, ESTATE r is NULL or was not loaded). */
ATOM_API int atom_release_run(atom_release *r, atom_state *final_state);

/* Operations on a release by name (in the configured namespace), as the
 * CLI verbs. Each blocks until done. */
ATOM_API int atom_release_resume(atom_runtime *rt, const char *name, atom_state *final_state);
ATOM_API int atom_release_cancel(atom_runtime *rt, const char *name);
/* to_version 0 = the previous good version. */
ATOM_API int atom_release_rollback(atom_runtime *rt, const char *name, long to_version,
                                   atom_state *final_state);

/* Asks the run, resume or rollback in progress on rt to cancel, as Ctrl-C
 * does for `atom run`: during Updating the release goes to Cancelled and
 * rolls back; during Rollback it ends in Failure. The one call that may be
 * made from another thread (or a signal handler) while rt is busy; it only
 * sets a flag, which the next run on rt clears. */
ATOM_API int atom_runtime_cancel_run(atom_runtime *rt);

/* A release's record. Strings owned by rt, valid until the next call on rt. */
typedef struct atom_release_info {
    const char *name;
    const char *ns;
    atom_state state;
    long version;          /* current version (0 = none) */
    long previous;         /* last version that reached Running (0 = none) */
    const char *message;   /* why it is in this state; never NULL */
} atom_release_info;

ATOM_API int atom_release_status(atom_runtime *rt, const char *name, atom_release_info *out);

/* The record of a loaded release, looked up in the script's own namespace
 * (which may differ from the runtime's). Strings as atom_release_status. */
ATOM_API int atom_release_describe(atom_release *r, atom_release_info *out);

/* One version in a release's history; strings valid only during the call. */
typedef struct atom_version_info {
    long version;
    atom_state state;
    const char *when;      /* RFC 3339 */
    const char *who;       /* user@host */
    const char *digest;    /* sha256 of the script */
} atom_version_info;

/* Return non-zero from the callback to stop early. */
typedef int (*atom_history_fn)(void *user, const atom_version_info *v);

ATOM_API int atom_release_history(atom_runtime *rt, const char *name, atom_history_fn fn, void *user);

/* The same data as `atom status -o json` / `atom history -o json`. *json is
 * owned by rt, valid until the next call on rt. */
ATOM_API int atom_release_status_json(atom_runtime *rt, const char *name, const char **json);
ATOM_API int atom_release_history_json(atom_runtime *rt, const char *name, const char **json);

#ifdef __cplusplus
}
#endif

#endif
