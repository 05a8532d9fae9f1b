/*
 * util.c - the plumbing every benchmark shares: the clock, CPU pinning,
 * memory shared with forked children, children that are always reaped (or
 * killed by pid at a deadline), percentiles and option parsing.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "bench_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Time                                                                      */
/* ------------------------------------------------------------------------ */

/* CLOCK_MONOTONIC in ns: consistent across CPUs here, unlike the TSC. */
uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Busy-wait until @deadline_ns; a sleep would add a wake-up to every send. */
void bench_spin_until(uint64_t deadline_ns)
{
	while (bench_now_ns() < deadline_ns)
		bench_cpu_relax();
}

void bench_sleep_ns(uint64_t ns)
{
	struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000u),
			       .tv_nsec = (long)(ns % 1000000000u) };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ------------------------------------------------------------------------ */
/* CPUs                                                                      */
/* ------------------------------------------------------------------------ */

/*
 * Fill @cpus with the CPU numbers this process may run on, in order, so
 * "CPU 0 and CPU 1" of a benchmark mean the first two we are allowed to use.
 * Returns how many (at most @max), or -errno.
 */
int bench_allowed_cpus(int *cpus, int max)
{
	cpu_set_t set;
	int n = 0;

	CPU_ZERO(&set);
	if (sched_getaffinity(0, sizeof(set), &set) < 0)
		return -errno;
	for (int cpu = 0; cpu < CPU_SETSIZE && n < max; cpu++)
		if (CPU_ISSET(cpu, &set))
			cpus[n++] = cpu;
	return n;
}

/* Pin the calling process (all its future threads too) to @cpu. */
int bench_pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) < 0)
		return -errno;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Shared memory                                                             */
/* ------------------------------------------------------------------------ */

/*
 * An anonymous MAP_SHARED mapping survives fork() as the same pages, so
 * parent and children see one another's stores. Touched here so nobody
 * takes a first-touch fault while measuring.
 */
void *bench_shared_alloc(size_t len)
{
	void *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (mem == MAP_FAILED)
		return NULL;
	memset(mem, 0, len);
	return mem;
}

void bench_shared_free(void *mem, size_t len)
{
	if (mem)
		munmap(mem, len);
}

/*
 * Wait for a flag another process raises. Polls every 50 us: this is for
 * set-up and tear-down, never inside a measurement.
 */
int bench_wait_at_least(_Atomic uint32_t *flag, uint32_t want, _Atomic uint32_t *abort,
			uint64_t deadline_ns)
{
	while (atomic_load_explicit(flag, memory_order_acquire) < want) {
		if (abort && atomic_load_explicit(abort, memory_order_acquire))
			return -1;
		if (bench_now_ns() > deadline_ns) {
			fprintf(stderr, "agentbus bench: deadline passed waiting for another process\n");
			return -1;
		}
		bench_sleep_ns(50000);
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Child processes                                                           */
/* ------------------------------------------------------------------------ */

/*
 * The child side of bench_spawn(): die with the parent (so an interrupted
 * benchmark leaves nothing spinning), pin, run @fn, exit without running the
 * parent's atexit handlers or flushing its stdio buffers twice.
 */
static void __attribute__((noreturn))
bench_child(pid_t parent, int cpu, int (*fn)(void *arg), void *arg)
{
	int rc;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(120);
	if (cpu >= 0 && bench_pin(cpu) < 0) {
		fprintf(stderr, "agentbus bench: cannot pin to CPU %d: %s\n", cpu, strerror(errno));
		_exit(121);
	}
	rc = fn(arg);
	fflush(stdout);
	fflush(stderr);
	_exit(rc ? 1 : 0);
}

/*
 * Fork a child pinned to @cpu (-1: not pinned) that runs @fn(@arg) and exits
 * 0 when it returns 0, else 1. Returns 0 or -errno.
 */
int bench_spawn(struct bench_children *children, int cpu, int (*fn)(void *arg), void *arg)
{
	pid_t parent = getpid();
	pid_t pid;

	if (children->count >= BENCH_MAX_CHILDREN)
		return -EAGAIN;
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0)
		bench_child(parent, cpu, fn, arg);
	children->pid[children->count++] = pid;
	return 0;
}

/* 1 if a waitpid() status means the child did not end with exit(0); a signal is named. */
static int bench_status_failed(pid_t pid, int status)
{
	if (WIFSIGNALED(status))
		fprintf(stderr, "agentbus bench: child %d died of signal %d (%s)\n", (int)pid,
			WTERMSIG(status), strsignal(WTERMSIG(status)));
	return !WIFEXITED(status) || WEXITSTATUS(status) != 0;
}

/*
 * Wait for every child until @deadline_ns, then SIGKILL (by pid) and reap
 * those still running. Returns how many failed or had to be killed.
 */
int bench_reap(struct bench_children *children, uint64_t deadline_ns)
{
	int failed = 0;
	int live = children->count;

	while (live > 0 && bench_now_ns() < deadline_ns) {
		for (int i = 0; i < children->count; i++) {
			int status;

			if (children->pid[i] <= 0 || waitpid(children->pid[i], &status, WNOHANG) <= 0)
				continue;
			failed += bench_status_failed(children->pid[i], status);
			children->pid[i] = 0;
			live--;
		}
		if (live > 0)
			bench_sleep_ns(1000000);
	}
	if (live > 0)
		fprintf(stderr, "agentbus bench: %d child process(es) past the deadline, killed\n", live);
	failed += live;
	bench_kill_all(children);
	return failed;
}

/* SIGKILL and reap every child still listed. */
void bench_kill_all(struct bench_children *children)
{
	for (int i = 0; i < children->count; i++) {
		if (children->pid[i] <= 0)
			continue;
		kill(children->pid[i], SIGKILL);
		while (waitpid(children->pid[i], NULL, 0) < 0 && errno == EINTR)
			;
		children->pid[i] = 0;
	}
	children->count = 0;
}

/* ------------------------------------------------------------------------ */
/* Statistics                                                                */
/* ------------------------------------------------------------------------ */

static int bench_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The nearest-rank percentile (per mille) of sorted @s: s[ceil(q*n) - 1]. */
static uint64_t bench_rank(const uint64_t *s, size_t n, unsigned per_mille)
{
	size_t rank = (n * per_mille + 999) / 1000;

	return s[rank ? rank - 1 : 0];
}

/* Sort @samples in place and summarise them; all zero when @n is 0. */
void bench_percentiles(uint64_t *samples, size_t n, struct bench_pcts *out)
{
	double sum = 0;

	memset(out, 0, sizeof(*out));
	if (n == 0)
		return;
	qsort(samples, n, sizeof(*samples), bench_cmp_u64);
	for (size_t i = 0; i < n; i++)
		sum += (double)samples[i];
	out->n = n;
	out->min = samples[0];
	out->p50 = bench_rank(samples, n, 500);
	out->p99 = bench_rank(samples, n, 990);
	out->p999 = bench_rank(samples, n, 999);
	out->max = samples[n - 1];
	out->mean = sum / (double)n;
}

/* Print `"name":{...}` (no separator around it). */
void bench_json_pcts(FILE *out, const char *name, const struct bench_pcts *p)
{
	fprintf(out,
		"\"%s\":{\"n\":%" PRIu64 ",\"min_ns\":%" PRIu64 ",\"p50_ns\":%" PRIu64
		",\"p99_ns\":%" PRIu64 ",\"p999_ns\":%" PRIu64 ",\"max_ns\":%" PRIu64
		",\"mean_ns\":%.1f}",
		name, p->n, p->min, p->p50, p->p99, p->p999, p->max, p->mean);
}

/* ------------------------------------------------------------------------ */
/* Options                                                                   */
/* ------------------------------------------------------------------------ */

/*
 * Match argv[*i] against option @name ("--size"). A value may follow as
 * "--size=64" or as the next word (then *i advances). @value NULL means a
 * flag without value. Returns 1 on a match, 0 if it is another option,
 * -1 when the value is missing (*value then stays NULL).
 */
int bench_opt(int argc, char **argv, int *i, const char *name, const char **value)
{
	const char *arg = argv[*i];
	size_t len = strlen(name);

	if (strncmp(arg, name, len) != 0)
		return 0;
	if (!value)
		return arg[len] == '\0';
	if (arg[len] == '=') {
		*value = arg + len + 1;
		return 1;
	}
	if (arg[len] != '\0')
		return 0;
	if (*i + 1 >= argc)
		return -1;
	*value = argv[++*i];
	return 1;
}

/* A decimal number without sign or junk. 0 or -1. */
int bench_parse_u64(const char *text, uint64_t *out)
{
	char *end;

	if (!text || *text < '0' || *text > '9')
		return -1;
	errno = 0;
	*out = strtoull(text, &end, 10);
	return errno || *end ? -1 : 0;
}

int bench_parse_double(const char *text, double *out)
{
	char *end;

	if (!text || !*text)
		return -1;
	errno = 0;
	*out = strtod(text, &end);
	return errno || *end || *out <= 0 ? -1 : 0;
}

/* A byte count: "4096", "64B", "1K", "1KiB", "64k", "1M", "1MiB", "1G". */
int bench_parse_size(const char *text, uint64_t *out)
{
	static const struct { const char *suffix; unsigned shift; } units[] = {
		{ "", 0 },  { "B", 0 },  { "K", 10 }, { "k", 10 }, { "KiB", 10 }, { "KB", 10 },
		{ "M", 20 }, { "MiB", 20 }, { "MB", 20 }, { "G", 30 }, { "GiB", 30 }, { "GB", 30 },
	};
	char *end;
	uint64_t n;

	if (!text || *text < '0' || *text > '9')
		return -1;
	errno = 0;
	n = strtoull(text, &end, 10);
	if (errno)
		return -1;
	for (size_t u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
		if (strcmp(end, units[u].suffix) != 0)
			continue;
		if (n > (UINT64_MAX >> units[u].shift))
			return -1;
		*out = n << units[u].shift;
		return 0;
	}
	return -1;
}

/* A bus name no other run uses: "bench-<what>-<pid>-<n>". */
void bench_bus_name(char *buf, size_t len, const char *what)
{
	static unsigned serial;

	snprintf(buf, len, "bench-%s-%d-%u", what, (int)getpid(), serial++);
}

/* Print "agentbus bench: <message>" as one line on stderr; returns BENCH_USAGE. */
int bench_error(const char *fmt, ...)
{
	va_list ap;

	fputs("agentbus bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return BENCH_USAGE;
}

/* Report a missing or bad option value; returns -1. */
int bench_bad_opt(const char *name, const char *value)
{
	if (!value)
		bench_error("%s needs a value", name);
	else
		bench_error("bad value for %s: '%s'", name, value);
	return -1;
}
