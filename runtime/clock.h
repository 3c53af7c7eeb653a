/*
 * clock.h — seconds as a double from a POSIX clock, the unit every Lua-facing
 * deadline and timestamp in the runtime uses.
 *
 * Header-only (static inline) because it is compiled both into the atom binary
 * and into atom/core.so for plain lua5.4, which share no other translation
 * unit that could own it. Nothing is allocated; nothing is owned.
 */
#ifndef ATOM_RUNTIME_CLOCK_H
#define ATOM_RUNTIME_CLOCK_H

#include <time.h>

static inline double atom_clock_seconds(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Deadlines and durations: never jumps with the wall clock. */
static inline double atom_monotonic(void)
{
    return atom_clock_seconds(CLOCK_MONOTONIC);
}

/* Unix seconds, for timestamps people read. */
static inline double atom_wall(void)
{
    return atom_clock_seconds(CLOCK_REALTIME);
}

#endif
