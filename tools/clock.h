/*
 * clock.h - the two clocks the tools and the SQLite extension read, in
 * milliseconds: wall time for what is compared with the library's TTLs
 * (absolute expiry times since the epoch, so they survive restarts), and
 * monotonic time for intervals and timeouts (a stepped wall clock must not
 * fire them or stall them).
 */
#ifndef TOOLS_CLOCK_H
#define TOOLS_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t ms_of_clock(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Milliseconds since the epoch: the clock of hmm_entry_info.expire_ms. */
static inline uint64_t wall_clock_ms(void)
{
    return ms_of_clock(CLOCK_REALTIME);
}

/* Milliseconds since some fixed point: for how long something took. */
static inline uint64_t monotonic_ms(void)
{
    return ms_of_clock(CLOCK_MONOTONIC);
}

#endif
