/*
 * error.h — the one error convention of atom's C core.
 *
 * Every fallible function returns ATOM_OK (0) or a negative atom_status, and,
 * when the caller passes a non-NULL atom_error, fills it with a message that
 * says what was asked and what went wrong. The atom_error is always owned by
 * the caller (usually on its stack or inside a handle); callees never
 * allocate it and never keep a pointer to it.
 */
#ifndef ATOM_RUNTIME_ERROR_H
#define ATOM_RUNTIME_ERROR_H

#include <stddef.h>

typedef enum atom_status {
    ATOM_OK = 0,
    ATOM_EINVAL = -1,    /* bad input: a script, manifest, flag or argument */
    ATOM_ENOMEM = -2,    /* allocation failed or the Lua heap ceiling was hit */
    ATOM_EIO = -3,       /* a file, socket or process could not be used */
    ATOM_ELUA = -4,      /* Lua code raised an error (message has a traceback) */
    ATOM_EKUBE = -5,     /* the Kubernetes API refused or could not be reached */
    ATOM_EBUSY = -6,     /* another run holds the release */
    ATOM_EBUDGET = -7,   /* a Lua call ran out of instructions or time */
    ATOM_ESTATE = -8,    /* an operation not allowed in the current state */
} atom_status;

#define ATOM_ERROR_MESSAGE_MAX 4096

typedef struct atom_error {
    int code;                              /* an atom_status */
    char message[ATOM_ERROR_MESSAGE_MAX];  /* NUL-terminated, maybe truncated */
} atom_error;

/* Sets code and a printf-style message; returns code so callers can
 * `return atom_error_set(err, ATOM_EINVAL, "...")`. err may be NULL. */
int atom_error_set(atom_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Resets err to ATOM_OK with an empty message. err may be NULL. */
void atom_error_clear(atom_error *err);

/* A short stable name for a status ("ATOM_EINVAL"); never NULL. */
const char *atom_status_name(int code);

#endif
