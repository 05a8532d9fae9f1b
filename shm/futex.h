/*
 * futex.h - sleeping on and waking a 32-bit word in shared memory.
 * The word may be mapped at different addresses in different processes, so
 * these are the shared (not FUTEX_PRIVATE) operations.
 */
#ifndef AGENTBUS_SHM_FUTEX_H
#define AGENTBUS_SHM_FUTEX_H

#include <stdint.h>

/* Sleep while *word == expected, at most @timeout_ns (< 0: no limit).
 * Returns 0 when woken or when *word already differed, -ETIMEDOUT, or -EINTR. */
int futex_wait(uint32_t *word, uint32_t expected, int64_t timeout_ns);

/* Wake every process sleeping on @word. */
void futex_wake_all(uint32_t *word);

#endif
