/*
 * clock.c - clocks. Records carry CLOCK_REALTIME in ns, but on this kind of
 * VM (kvm-clock) clock_gettime costs ~42 ns, a third of a publish. The record
 * clock reads the TSC instead (~18 ns) and converts it with a rate measured
 * against CLOCK_REALTIME, re-anchoring every millisecond, so it never drifts
 * from the system clock by more than the rate error over 1 ms (well under
 * a microsecond). State is per thread: no sharing, no atomics.
 */
#include <time.h>
#include <x86intrin.h>

#include "bus/internal.h"

#define RESYNC_NS 1000000u /* re-anchor to CLOCK_REALTIME this often */

struct tsc_clock {
	uint64_t anchor_tsc;  /* TSC at the last re-anchoring */
	uint64_t anchor_ns;   /* CLOCK_REALTIME then */
	uint64_t first_tsc;   /* TSC at the first reading: the rate is measured from it */
	uint64_t first_ns;
	double ns_per_tick;   /* 0 until a full RESYNC_NS has passed */
	uint64_t last_ns;     /* never go backwards within a thread */
};

static __thread struct tsc_clock tsc_clock;

uint64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t reanchor(struct tsc_clock *c, uint64_t tsc)
{
	uint64_t ns = realtime_ns();

	if (!c->first_tsc || tsc <= c->first_tsc || ns <= c->first_ns) {
		c->first_tsc = tsc; /* first use, a migrated TSC, or the clock was set back */
		c->first_ns = ns;
		c->ns_per_tick = 0;
	} else if (ns - c->first_ns >= RESYNC_NS) {
		c->ns_per_tick = (double)(ns - c->first_ns) / (double)(tsc - c->first_tsc);
	}
	c->anchor_tsc = tsc;
	c->anchor_ns = ns;
	return ns;
}

uint64_t record_time_ns(void)
{
	struct tsc_clock *c = &tsc_clock;
	uint64_t tsc = __rdtsc(), ns;

	if (c->ns_per_tick == 0 || tsc < c->anchor_tsc)
		ns = reanchor(c, tsc);
	else {
		ns = c->anchor_ns + (uint64_t)((double)(tsc - c->anchor_tsc) * c->ns_per_tick);
		if (ns - c->anchor_ns >= RESYNC_NS)
			ns = reanchor(c, tsc);
	}
	if (ns < c->last_ns)
		ns = c->last_ns;
	c->last_ns = ns;
	return ns;
}
