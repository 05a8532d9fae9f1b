/*
 * bench_internal.h - what the benchmarks share: a clock, CPU pinning, memory
 * shared across fork(), child processes that are always reaped, percentiles
 * and option parsing. Nothing here is part of the public API.
 */
#ifndef AGENTBUS_BENCH_INTERNAL_H
#define AGENTBUS_BENCH_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define BENCH_MAX_CHILDREN 64
#define BENCH_MAX_CPUS 256

#if defined(__x86_64__) || defined(__i386__)
#define bench_cpu_relax() __builtin_ia32_pause()
#else
#define bench_cpu_relax() atomic_signal_fence(memory_order_seq_cst)
#endif

/* Exit codes of agentbus_bench_main(). */
#define BENCH_OK 0
#define BENCH_FAILED 1
#define BENCH_USAGE 2

/* ---- time ---- */
uint64_t bench_now_ns(void);                 /* CLOCK_MONOTONIC */
void bench_spin_until(uint64_t deadline_ns); /* busy-wait, for pacing */
void bench_sleep_ns(uint64_t ns);

/* ---- CPUs ---- */
int bench_allowed_cpus(int *cpus, int max);  /* CPU numbers we may run on */
int bench_pin(int cpu);                      /* 0 or -errno */

/* ---- memory shared with children ---- */
void *bench_shared_alloc(size_t len);        /* zeroed, page aligned, NULL on failure */
void bench_shared_free(void *mem, size_t len);

/*
 * Spin-sleep until *flag >= @want. Gives up when *abort becomes non-zero
 * (@abort may be NULL) or at @deadline_ns. Returns 0 or -1.
 */
int bench_wait_at_least(_Atomic uint32_t *flag, uint32_t want, _Atomic uint32_t *abort,
			uint64_t deadline_ns);

/* ---- child processes ---- */
struct bench_children {
	pid_t pid[BENCH_MAX_CHILDREN]; /* forked and not yet reaped */
	int count;                     /* entries used in pid[] */
};

int bench_spawn(struct bench_children *children, int cpu, int (*fn)(void *arg), void *arg);
int bench_reap(struct bench_children *children, uint64_t deadline_ns);
void bench_kill_all(struct bench_children *children);

/* ---- statistics ---- */
struct bench_pcts {
	uint64_t n;    /* samples */
	uint64_t min;  /* ns */
	uint64_t p50;  /* ns */
	uint64_t p99;  /* ns */
	uint64_t p999; /* ns */
	uint64_t max;  /* ns */
	double mean;   /* ns */
};

void bench_percentiles(uint64_t *samples, size_t n, struct bench_pcts *out);
void bench_json_pcts(FILE *out, const char *name, const struct bench_pcts *p);

/* ---- options ---- */
int bench_opt(int argc, char **argv, int *i, const char *name, const char **value);
int bench_parse_size(const char *text, uint64_t *out);
int bench_parse_u64(const char *text, uint64_t *out);
int bench_parse_double(const char *text, double *out);
void bench_bus_name(char *buf, size_t len, const char *what);
int bench_bad_opt(const char *name, const char *value);
int bench_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- the benchmarks ---- */
int bench_latency_main(int argc, char **argv);
int bench_throughput_main(int argc, char **argv);
int bench_noise_main(int argc, char **argv);

#endif /* AGENTBUS_BENCH_INTERNAL_H */
