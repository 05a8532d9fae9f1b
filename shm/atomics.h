/*
 * atomics.h - the named atomic operations agentbus uses on shared memory.
 *
 * Every synchronising access in the lock-free code goes through one of these,
 * so the memory order is visible at the call site, where a comment names the
 * edge it pairs with. 128-bit compare-and-swap needs cmpxchg16b (x86-64,
 * built with -mcx16); it is how a producer reserves ring space and a sequence
 * number in one step.
 */
#ifndef AGENTBUS_SHM_ATOMICS_H
#define AGENTBUS_SHM_ATOMICS_H

#include <stdint.h>

typedef unsigned __int128 u128;

/* A pair of 64-bit words changed together by a 128-bit CAS. */
union pair64 {
	u128 whole;
	struct {
		uint64_t lo;
		uint64_t hi;
	};
};

#define load_relaxed(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define load_acquire(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define load_seq_cst(p) __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define store_relaxed(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define store_release(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define fetch_add_seq_cst(p, v) __atomic_fetch_add((p), (v), __ATOMIC_SEQ_CST)
#define fetch_add_relaxed(p, v) __atomic_fetch_add((p), (v), __ATOMIC_RELAXED)
#define fetch_sub_seq_cst(p, v) __atomic_fetch_sub((p), (v), __ATOMIC_SEQ_CST)
#define fence_seq_cst() __atomic_thread_fence(__ATOMIC_SEQ_CST)

/* CAS of a 64-bit word, sequentially consistent (a full barrier on x86).
 * Returns 1 on success; on failure *expected holds the current value. */
static inline int cas64(uint64_t *p, uint64_t *expected, uint64_t desired)
{
	return __atomic_compare_exchange_n(p, expected, desired, 0, __ATOMIC_SEQ_CST,
					   __ATOMIC_SEQ_CST);
}

/* CAS of a 16-byte aligned pair (lock cmpxchg16b: a full barrier). Returns
 * the value found; the swap happened iff it equals @expected. */
static inline union pair64 cas128(union pair64 *p, union pair64 expected, union pair64 desired)
{
	union pair64 found;

	found.whole = __sync_val_compare_and_swap(&p->whole, expected.whole, desired.whole);
	return found;
}

/* Atomic 16-byte read: a CAS that stores back what it finds. It takes the
 * cache line exclusive, so it is for control paths, never per record. */
static inline union pair64 load128(union pair64 *p)
{
	union pair64 zero = { .whole = 0 };

	return cas128(p, zero, zero);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

#endif
