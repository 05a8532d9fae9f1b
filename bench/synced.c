/*
 * synced.c - `agentbus bench synced`: how long a publish at durability
 * `synced` takes, with N publishers at once, against a raw 4 KiB write +
 * fdatasync of the same disk in the same run.
 *
 * Method: N publisher threads, started together, each publish --count
 * records of --size bytes one at a time with agentbus_publish_durable(...,
 * AGENTBUS_DURABILITY_SYNCED) and time every call. Group commit lets one
 * fdatasync serve all the records written before it, so with N publishers
 * the records/s should grow with N while each publish still waits about one
 * fdatasync. msgs_per_s is every record over the time from the start to the
 * last publisher's end. The baseline appends 4 KiB to a file of the same data
 * directory and calls fdatasync(), timed per call. With one publisher it
 * takes turns with the publishes, call by call, so both see the same moments
 * of a shared disk (its time is then left out of msgs_per_s); with more,
 * half of its samples are taken before the publishers run and half after.
 *
 * Placement: the daemon (its spill writer) on the last CPU we may use, the
 * publishers on the first.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "durability.h"

#include <errno.h>
#include <limits.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_internal.h"

#define SY_MAX_PUBLISHERS 64
#define SY_RUN_NS (120ull * 1000000000u) /* publishers give up after this */

struct sy_opts {
	int publishers;    /* publisher threads */
	uint64_t count;    /* records per publisher */
	uint64_t size;     /* payload bytes */
	uint64_t baseline; /* raw write + fdatasync samples */
	int json;
	int cpu_pub;       /* the publishers' CPU */
	int cpu_daemon;    /* the daemon's (and spill writer's) CPU */
};

struct sy_result {
	struct bench_pcts publish;  /* synced publish latency */
	struct bench_pcts baseline; /* raw 4 KiB write + fdatasync */
	double msgs_per_s;
	double window_s;
	uint64_t records;
};

struct sy_shared {
	const struct sy_opts *o;
	agentbus_stream *stream;
	uint64_t *samples;      /* count per publisher, publisher i at i * count */
	_Atomic uint64_t done;  /* samples taken, all publishers */
	_Atomic int go;         /* the start line */
	_Atomic int failed;
	_Atomic uint64_t end_ns; /* the last publisher's end */
	uint64_t start_ns;
	int base_fd;            /* the interleaved baseline's file, or -1 */
	uint64_t *base;         /* its samples */
	uint64_t base_n;        /* taken */
	uint64_t base_ns;       /* their total, left out of the window */
};

struct sy_thread {
	struct sy_shared *sh;
	pthread_t thread;
	int index;
};

/* With one publisher, one raw append + fdatasync before publish @n. 0 or -1. */
static int sy_interleave(struct sy_shared *sh, uint64_t n)
{
	int64_t ns;

	if (sh->base_fd < 0 || n >= sh->o->baseline)
		return 0;
	ns = dur_raw_append(sh->base_fd, n);
	if (ns < 0) {
		dur_fail("raw 4 KiB write + fdatasync", (int)ns);
		atomic_store(&sh->failed, 1);
		return -1;
	}
	sh->base[sh->base_n++] = (uint64_t)ns;
	sh->base_ns += (uint64_t)ns;
	return 0;
}

/* One publisher: --count synced publishes, each timed. */
static void *sy_publisher(void *arg)
{
	struct sy_thread *t = arg;
	struct sy_shared *sh = t->sh;
	const struct sy_opts *o = sh->o;
	uint64_t *samples = sh->samples + (uint64_t)t->index * o->count;
	char *payload = malloc(o->size);
	struct agentbus_message msg = { .subject = DUR_SUBJECT, .payload = payload,
					.payload_len = o->size };
	uint64_t n = 0, now = 0;

	dur_pin_thread(o->cpu_pub);
	if (!payload) {
		atomic_store(&sh->failed, 1);
		return NULL;
	}
	memset(payload, 's', o->size);
	while (!atomic_load_explicit(&sh->go, memory_order_acquire))
		bench_sleep_ns(20000);
	for (; n < o->count && !atomic_load_explicit(&sh->failed, memory_order_relaxed); n++) {
		uint64_t t0;
		int64_t rc;

		if (sy_interleave(sh, n) < 0)
			break;
		t0 = bench_now_ns();
		rc = agentbus_publish_durable(sh->stream, &msg, 1, 10000,
					      AGENTBUS_DURABILITY_SYNCED);
		now = bench_now_ns();
		if (rc < 0) {
			dur_fail("agentbus_publish_durable(synced)", (int)rc);
			atomic_store(&sh->failed, 1);
			break;
		}
		samples[n] = now - t0;
		if (now - sh->start_ns > SY_RUN_NS) {
			dur_fail("synced publishers", AGENTBUS_E_TIMEOUT);
			atomic_store(&sh->failed, 1);
		}
	}
	atomic_fetch_add(&sh->done, n);
	for (uint64_t end = atomic_load(&sh->end_ns); end < now;)
		if (atomic_compare_exchange_weak(&sh->end_ns, &end, now))
			break;
	free(payload);
	return NULL;
}

/* Gather each publisher's samples (only those it took) into one array. */
static uint64_t sy_gather(struct sy_shared *sh, uint64_t *out)
{
	uint64_t n = 0;

	for (uint64_t i = 0; i < (uint64_t)sh->o->publishers * sh->o->count; i++)
		if (sh->samples[i])
			out[n++] = sh->samples[i];
	return n;
}

/* Start the publishers together and wait for all of them; 0 or -1. */
static int sy_publish_all(struct sy_shared *sh, struct sy_thread *threads, struct sy_result *r)
{
	int started = 0;

	for (; started < sh->o->publishers; started++) {
		threads[started] = (struct sy_thread){ .sh = sh, .index = started };
		if (pthread_create(&threads[started].thread, NULL, sy_publisher,
				   &threads[started]) != 0) {
			atomic_store(&sh->failed, 1);
			break;
		}
	}
	bench_sleep_ns(50000000); /* let every thread reach the start line */
	sh->start_ns = bench_now_ns();
	atomic_store_explicit(&sh->go, 1, memory_order_release);
	for (int i = 0; i < started; i++)
		pthread_join(threads[i].thread, NULL);
	r->records = atomic_load(&sh->done);
	r->window_s = (double)(atomic_load(&sh->end_ns) - sh->start_ns - sh->base_ns) / 1e9;
	r->msgs_per_s = r->window_s > 0 ? (double)r->records / r->window_s : 0;
	return atomic_load(&sh->failed) ? -1 : 0;
}

/* Half the baseline samples into @samples at @from; 0 or -1. */
static int sy_baseline(const char *dir, uint64_t *samples, uint64_t from, uint64_t n)
{
	int rc = dur_raw_fdatasync(dir, (size_t)n, samples + from);

	return rc < 0 ? dur_fail("raw 4 KiB write + fdatasync", rc) : 0;
}

static int sy_run(const struct sy_opts *o, struct sy_result *r)
{
	struct agentbus_stream_config sc = { .durability = AGENTBUS_DURABILITY_MEMORY,
					     .fsync = AGENTBUS_FSYNC_BATCH };
	uint64_t total = (uint64_t)o->publishers * o->count;
	uint64_t half = o->baseline / 2;
	struct sy_shared sh = { .o = o, .base_fd = -1 };
	char base_path[PATH_MAX + 32];
	struct sy_thread *threads = calloc((size_t)o->publishers, sizeof(*threads));
	uint64_t *base = calloc(o->baseline + 1, sizeof(*base));
	uint64_t *merged = calloc(total, sizeof(*merged));
	struct dur_bus b;
	int rc = -1;

	memset(r, 0, sizeof(*r));
	sh.samples = calloc(total, sizeof(*sh.samples));
	if (!threads || !base || !merged || !sh.samples || dur_make_dir(&b, "synced") < 0)
		goto free;
	dur_pin_thread(o->cpu_daemon);
	if (o->publishers == 1) {
		sh.base = base;
		sh.base_fd = dur_raw_file(b.dir, base_path, sizeof(base_path));
		if (sh.base_fd < 0) {
			dur_fail("baseline file", sh.base_fd);
			goto out;
		}
	} else if (sy_baseline(b.dir, base, 0, half) < 0) {
		goto out;
	}
	if (dur_start(&b, &sc) < 0)
		goto out;
	sh.stream = b.stream;
	rc = sy_publish_all(&sh, threads, r);
	dur_stop_daemon(&b);
	if (o->publishers > 1 && sy_baseline(b.dir, base, half, o->baseline - half) < 0)
		rc = -1;
	bench_percentiles(merged, sy_gather(&sh, merged), &r->publish);
	bench_percentiles(base, o->publishers == 1 ? sh.base_n : o->baseline, &r->baseline);
out:
	if (sh.base_fd >= 0) {
		close(sh.base_fd);
		unlink(base_path);
	}
	dur_cleanup(&b);
free:
	free(threads);
	free(base);
	free(merged);
	free(sh.samples);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Report, options, entry                                                    */
/* ------------------------------------------------------------------------ */

static void sy_print(const struct sy_opts *o, const struct sy_result *r, int ok)
{
	double ratio = r->baseline.p50 ? (double)r->publish.p50 / (double)r->baseline.p50 : 0;

	if (o->json) {
		printf("{\"bench\":\"synced\",\"ok\":%s,\"publishers\":%d,\"count\":%" PRIu64
		       ",\"size_bytes\":%" PRIu64 ",\"records\":%" PRIu64 ",\"window_s\":%.6f"
		       ",\"msgs_per_s\":%.0f,\"p50_ns\":%" PRIu64 ",\"p99_ns\":%" PRIu64
		       ",\"baseline_p50_ns\":%" PRIu64 ",\"baseline_p99_ns\":%" PRIu64
		       ",\"p50_ratio\":%.3f,",
		       ok ? "true" : "false", o->publishers, o->count, o->size, r->records,
		       r->window_s, r->msgs_per_s, r->publish.p50, r->publish.p99,
		       r->baseline.p50, r->baseline.p99, ratio);
		bench_json_pcts(stdout, "publish", &r->publish);
		putchar(',');
		bench_json_pcts(stdout, "baseline", &r->baseline);
		printf("}\n");
		return;
	}
	printf("agentbus bench synced: %d publisher%s on CPU %d x %" PRIu64 " records of %" PRIu64
	       " B, daemon on CPU %d\n", o->publishers, o->publishers > 1 ? "s" : "", o->cpu_pub,
	       o->count, o->size, o->cpu_daemon);
	printf("  synced publish     p50 %8.1f us  p99 %8.1f us  %10.0f records/s\n",
	       (double)r->publish.p50 / 1e3, (double)r->publish.p99 / 1e3, r->msgs_per_s);
	printf("  raw write+fdatasync p50 %7.1f us  p99 %8.1f us  (4 KiB, same directory)\n",
	       (double)r->baseline.p50 / 1e3, (double)r->baseline.p99 / 1e3);
	printf("  p50 ratio %.2f\n", ratio);
}

static void sy_usage(FILE *out)
{
	fprintf(out,
		"usage: agentbus bench synced [--publishers N] [--count N] [--size BYTES]\n"
		"                             [--baseline N] [--json]\n"
		"\n"
		"Latency of publishes at durability synced (group commit) from N threads at\n"
		"once, beside a raw 4 KiB write + fdatasync on the same disk. The log lives in a\n"
		"mkdtemp directory under $AGENTBUS_BENCH_DIR or /var/tmp.\n"
		"\n"
		"  --publishers N  publisher threads (1-%d), default 1\n"
		"  --count N       records per publisher, default 1000\n"
		"  --size BYTES    payload bytes, default 4096\n"
		"  --baseline N    raw write + fdatasync samples, default 1000\n"
		"  --json          print one JSON object\n", SY_MAX_PUBLISHERS);
}

/* Parse one option at argv[*i]: 0 ok, 1 --help, -1 error. */
static int sy_parse_one(int argc, char **argv, int *i, struct sy_opts *o)
{
	const char *v = NULL;
	uint64_t n;
	int m;

	if ((m = bench_opt(argc, argv, i, "--publishers", &v)) != 0) {
		if (m < 0 || bench_parse_u64(v, &n) || n < 1 || n > SY_MAX_PUBLISHERS)
			return bench_bad_opt("--publishers", v);
		o->publishers = (int)n;
		return 0;
	}
	if ((m = bench_opt(argc, argv, i, "--count", &v)) != 0)
		return m < 0 || bench_parse_u64(v, &o->count) || !o->count ||
			       o->count > 1000000 ? bench_bad_opt("--count", v) : 0;
	if ((m = bench_opt(argc, argv, i, "--size", &v)) != 0)
		return m < 0 || bench_parse_size(v, &o->size) || !o->size ||
			       o->size > (256u << 10) ? bench_bad_opt("--size", v) : 0;
	if ((m = bench_opt(argc, argv, i, "--baseline", &v)) != 0)
		return m < 0 || bench_parse_u64(v, &o->baseline) || o->baseline < 2 ||
			       o->baseline > 100000 ? bench_bad_opt("--baseline", v) : 0;
	if (bench_opt(argc, argv, i, "--json", NULL) > 0)
		return o->json = 1, 0;
	if (bench_opt(argc, argv, i, "--help", NULL) > 0 || bench_opt(argc, argv, i, "-h", NULL) > 0)
		return 1;
	bench_error("synced: unknown option '%s' (see --help)", argv[*i]);
	return -1;
}

int bench_synced_main(int argc, char **argv)
{
	struct sy_opts o = { .publishers = 1, .count = 1000, .size = 4096, .baseline = 1000 };
	struct sy_result r;
	int rc;

	for (int i = 1; i < argc; i++) {
		rc = sy_parse_one(argc, argv, &i, &o);
		if (rc > 0)
			sy_usage(stdout);
		if (rc != 0)
			return rc > 0 ? BENCH_OK : BENCH_USAGE;
	}
	dur_cpus(&o.cpu_pub, &o.cpu_daemon);
	rc = sy_run(&o, &r);
	sy_print(&o, &r, rc == 0);
	return rc == 0 ? BENCH_OK : BENCH_FAILED;
}
