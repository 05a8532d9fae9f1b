/*
 * noise.c - `agentbus bench noise`: how much of each CPU a pinned, spinning
 * process actually gets, first one CPU at a time, then both at once.
 *
 * The figures of the other benchmarks only mean something next to this one:
 * on a shared, virtualised host a vCPU can vanish for milliseconds, and that
 * shows up in every tail percentile and every throughput figure. The probe
 * reads CLOCK_MONOTONIC in a tight loop; any step longer than 5 us between
 * two reads is time the process did not run (preempted in the guest, or the
 * vCPU descheduled by the host).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "bench_internal.h"

#include <inttypes.h>
#include <string.h>

#define NOISE_GAP_NS 5000 /* a step this long between two clock reads is a gap */

struct noise_probe {
	_Alignas(64) uint64_t gaps;   /* steps > 5 us */
	uint64_t gaps_100us;          /* steps > 100 us */
	uint64_t gaps_1ms;            /* steps > 1 ms */
	uint64_t lost_ns;             /* sum of the gaps */
	uint64_t max_ns;              /* longest gap */
	uint64_t span_ns;             /* how long it probed */
};

struct noise_ctx {
	struct noise_probe *probes;   /* one per CPU, shared */
	int slot;                     /* this child's probe */
	uint64_t ns;                  /* how long to probe */
};

/* Spin for ctx->ns, recording every step of the clock longer than 5 us. */
static int noise_child(void *arg)
{
	struct noise_ctx *c = arg;
	struct noise_probe *p = &c->probes[c->slot];
	uint64_t start = bench_now_ns(), last = start, end = start + c->ns;

	while (last < end) {
		uint64_t now = bench_now_ns(), step = now - last;

		if (step > NOISE_GAP_NS) {
			p->gaps++;
			p->gaps_100us += step > 100000;
			p->gaps_1ms += step > 1000000;
			p->lost_ns += step;
			if (step > p->max_ns)
				p->max_ns = step;
		}
		last = now;
	}
	p->span_ns = last - start;
	return 0;
}

/* Probe CPUs @cpus[0..n-1] at once; results in @out. 0 or -1. */
static int noise_probe(const int *cpus, int n, uint64_t ns, struct noise_probe *out)
{
	struct bench_children kids = { .count = 0 };
	struct noise_probe *probes = bench_shared_alloc(2 * sizeof(*probes));
	struct noise_ctx ctx[2];
	int failed = 0;

	if (!probes)
		return -1;
	for (int i = 0; i < n && !failed; i++) {
		ctx[i] = (struct noise_ctx){ .probes = probes, .slot = i, .ns = ns };
		failed = bench_spawn(&kids, cpus[i], noise_child, &ctx[i]) < 0;
	}
	failed |= bench_reap(&kids, bench_now_ns() + ns + 10000000000ull) != 0;
	memcpy(out, probes, 2 * sizeof(*probes));
	bench_shared_free(probes, 2 * sizeof(*probes));
	return failed ? -1 : 0;
}

static double noise_lost_pct(const struct noise_probe *p)
{
	return p->span_ns ? 100.0 * (double)p->lost_ns / (double)p->span_ns : 0.0;
}

static void noise_print(const char *what, int cpu, const struct noise_probe *p, int json,
			int first)
{
	if (json) {
		printf("%s{\"probe\":\"%s\",\"cpu\":%d,\"lost_pct\":%.2f,\"gaps\":%" PRIu64
		       ",\"gaps_over_100us\":%" PRIu64 ",\"gaps_over_1ms\":%" PRIu64
		       ",\"max_gap_ns\":%" PRIu64 "}",
		       first ? "" : ",", what, cpu, noise_lost_pct(p), p->gaps, p->gaps_100us,
		       p->gaps_1ms, p->max_ns);
		return;
	}
	printf("  %-6s CPU %-3d %6.2f%% %10" PRIu64 " %10" PRIu64 " %10" PRIu64 " %10.3f\n", what,
	       cpu, noise_lost_pct(p), p->gaps, p->gaps_100us, p->gaps_1ms,
	       (double)p->max_ns / 1e6);
}

static void noise_usage(void)
{
	printf("usage: agentbus bench noise [--seconds S] [--json]\n"
	       "\n"
	       "How much of the first two CPUs a pinned spinning process gets: each CPU alone,\n"
	       "then both at once (as in the latency and throughput benchmarks). A step of\n"
	       "CLOCK_MONOTONIC over 5 us between two reads counts as time not run.\n"
	       "  --seconds S  probe length of each phase, default 1\n"
	       "  --json       print one JSON object\n");
}

/* `agentbus bench noise`: alone on CPU 0, alone on CPU 1, then both. */
int bench_noise_main(int argc, char **argv)
{
	struct noise_probe alone[2][2], both[2];
	double seconds = 1;
	int cpus[2], json = 0;
	uint64_t ns;

	for (int i = 1; i < argc; i++) {
		const char *v = NULL;
		int m = bench_opt(argc, argv, &i, "--seconds", &v);

		if (m != 0) {
			if (m < 0 || bench_parse_double(v, &seconds) || seconds > 600)
				return bench_bad_opt("--seconds", v), BENCH_USAGE;
		} else if (bench_opt(argc, argv, &i, "--json", NULL) > 0) {
			json = 1;
		} else if (bench_opt(argc, argv, &i, "--help", NULL) > 0) {
			noise_usage();
			return BENCH_OK;
		} else {
			return bench_error("noise: unknown option '%s' (see --help)", argv[i]);
		}
	}
	if (bench_allowed_cpus(cpus, 2) < 2)
		return bench_error("noise needs two CPUs to run on");
	ns = (uint64_t)(seconds * 1e9);
	if (noise_probe(&cpus[0], 1, ns, alone[0]) || noise_probe(&cpus[1], 1, ns, alone[1]) ||
	    noise_probe(cpus, 2, ns, both))
		return bench_error("noise: a probe failed"), BENCH_FAILED;
	if (json)
		printf("{\"bench\":\"noise\",\"seconds\":%.3f,\"probes\":[", seconds);
	else
		printf("agentbus bench noise: time a pinned spinning process did not run (%.1f s each)\n"
		       "  %-6s %-7s %7s %10s %10s %10s %10s\n",
		       seconds, "probe", "", "lost", "gaps>5us", ">100us", ">1ms", "max ms");
	noise_print("alone", cpus[0], &alone[0][0], json, 1);
	noise_print("alone", cpus[1], &alone[1][0], json, 0);
	noise_print("both", cpus[0], &both[0], json, 0);
	noise_print("both", cpus[1], &both[1], json, 0);
	if (json)
		printf("]}\n");
	return BENCH_OK;
}
