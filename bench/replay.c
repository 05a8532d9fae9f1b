/*
 * replay.c - `agentbus bench replay`: records/s and bytes/s read back from
 * a stream's log through agentbus_replay_open()/agentbus_replay_next(),
 * every record's checksum verified by the reader, the files in the page
 * cache (the case this measures: the log was just written).
 *
 * Method: publish --count records of --size bytes (memory durability, in
 * batches), wait until the last one is synced, then time --passes full
 * replays from the oldest record and report the median pass. Every pass
 * must return exactly --count records of the right size. The CPU time the
 * reading thread got is reported beside the wall time: on a shared host the
 * difference is time it spent waiting for a CPU, not in the reader.
 *
 * Placement: the daemon on the last CPU we may use, the reader on the first.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "durability.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_internal.h"

#define RP_BATCH 64        /* records per publish call while filling */
#define RP_MAX_PASSES 15

struct rp_opts {
	uint64_t count; /* records */
	uint64_t size;  /* payload bytes */
	int passes;     /* timed replays */
	int json;
	int cpu_reader;
	int cpu_daemon;
};

struct rp_result {
	double pass_s[RP_MAX_PASSES]; /* each pass, in order */
	double cpu_s[RP_MAX_PASSES];  /* CPU time the reading thread got in each pass */
	double median_s;
	double msgs_per_s;            /* of the median pass */
	double bytes_per_s;           /* payload bytes, of the median pass */
	double msgs_per_cpu_s;        /* records per second of CPU time, median pass */
	double fill_s;                /* publishing and spilling the records */
	uint64_t log_bytes;
};

/* Publish --count records and wait until the last is synced; 0 or -1. */
static int rp_fill(const struct rp_opts *o, agentbus_stream *stream)
{
	struct agentbus_message msgs[RP_BATCH];
	char *payload = calloc(1, o->size);
	int64_t seq = 0;

	if (!payload)
		return dur_fail("replay", -ENOMEM);
	memset(payload, 'r', o->size);
	for (int i = 0; i < RP_BATCH; i++)
		msgs[i] = (struct agentbus_message){ .subject = DUR_SUBJECT, .payload = payload,
						     .payload_len = o->size };
	for (uint64_t done = 0; done < o->count;) {
		uint64_t n = o->count - done < RP_BATCH ? o->count - done : RP_BATCH;

		seq = agentbus_publish_batch(stream, msgs, n, 10000);
		if (seq < 0)
			break;
		done += n;
		seq += (int64_t)n - 1;
	}
	free(payload);
	if (seq < 0)
		return dur_fail("agentbus_publish_batch", (int)seq);
	/*
	 * A replay ends at the written position, so WRITTEN would do; SYNCED
	 * also keeps a later fdatasync out of the timed replay. The files stay
	 * in the page cache either way.
	 */
	seq = agentbus_wait_durable(stream, (uint64_t)seq, AGENTBUS_DURABILITY_SYNCED, 120000);
	return seq < 0 ? dur_fail("agentbus_wait_durable(synced)", (int)seq) : 0;
}

/* CPU time of the calling thread: on a shared host, what it actually got. */
static uint64_t rp_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * One timed replay of the whole log; its seconds (and its CPU seconds in
 * *cpu_s), or < 0 on failure.
 */
static double rp_pass(const struct rp_opts *o, struct dur_bus *b, double *cpu_s)
{
	struct agentbus_replay_config cfg = { .start = AGENTBUS_START_OLDEST };
	struct agentbus_record rec;
	agentbus_replay *rp;
	uint64_t n = 0, bad = 0, t0, t1, c0 = rp_cpu_ns();
	int rc;

	t0 = bench_now_ns();
	rc = agentbus_replay_open(b->bus, DUR_STREAM, &cfg, &rp);
	if (rc < 0)
		return dur_fail("agentbus_replay_open", rc);
	while ((rc = agentbus_replay_next(rp, &rec)) == 1) {
		bad += rec.payload_len != o->size;
		n++;
	}
	t1 = bench_now_ns();
	*cpu_s = (double)(rp_cpu_ns() - c0) / 1e9;
	agentbus_replay_close(rp);
	if (rc < 0)
		return dur_fail("agentbus_replay_next", rc);
	if (n != o->count || bad) {
		fprintf(stderr, "agentbus bench: replay returned %" PRIu64 " records (%" PRIu64
			" of a wrong size), expected %" PRIu64 "\n", n, bad, o->count);
		return -1;
	}
	return (double)(t1 - t0) / 1e9;
}

static int rp_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int rp_run(const struct rp_opts *o, struct rp_result *r)
{
	struct agentbus_stream_config sc = { .durability = AGENTBUS_DURABILITY_MEMORY };
	double sorted[RP_MAX_PASSES];
	struct dur_bus b;
	uint64_t t0;
	int rc = -1;

	memset(r, 0, sizeof(*r));
	if (dur_make_dir(&b, "replay") < 0)
		return -1;
	dur_pin_thread(o->cpu_daemon);
	if (dur_start(&b, &sc) < 0)
		goto out;
	dur_pin_thread(o->cpu_reader);
	t0 = bench_now_ns();
	if (rp_fill(o, b.stream) < 0)
		goto out;
	r->fill_s = (double)(bench_now_ns() - t0) / 1e9;
	r->log_bytes = dur_tree_bytes(b.dir);
	for (int i = 0; i < o->passes; i++) {
		r->pass_s[i] = sorted[i] = rp_pass(o, &b, &r->cpu_s[i]);
		if (r->pass_s[i] <= 0)
			goto out;
	}
	qsort(sorted, (size_t)o->passes, sizeof(sorted[0]), rp_cmp_double);
	r->median_s = sorted[o->passes / 2];
	for (int i = 0; i < o->passes; i++)
		if (r->pass_s[i] == r->median_s && r->cpu_s[i] > 0)
			r->msgs_per_cpu_s = (double)o->count / r->cpu_s[i];
	r->msgs_per_s = (double)o->count / r->median_s;
	r->bytes_per_s = r->msgs_per_s * (double)o->size;
	rc = 0;
out:
	dur_cleanup(&b);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Report, options, entry                                                    */
/* ------------------------------------------------------------------------ */

static void rp_print(const struct rp_opts *o, const struct rp_result *r, int ok)
{
	if (o->json) {
		printf("{\"bench\":\"replay\",\"ok\":%s,\"count\":%" PRIu64 ",\"size_bytes\":%" PRIu64
		       ",\"log_bytes\":%" PRIu64 ",\"fill_s\":%.3f,\"passes_s\":[",
		       ok ? "true" : "false", o->count, o->size, r->log_bytes, r->fill_s);
		for (int i = 0; i < o->passes; i++)
			printf("%s%.6f", i ? "," : "", r->pass_s[i]);
		printf("],\"cpu_s\":[");
		for (int i = 0; i < o->passes; i++)
			printf("%s%.6f", i ? "," : "", r->cpu_s[i]);
		printf("],\"median_s\":%.6f,\"msgs_per_s\":%.0f,\"bytes_per_s\":%.0f"
		       ",\"msgs_per_cpu_s\":%.0f}\n", r->median_s, r->msgs_per_s, r->bytes_per_s,
		       r->msgs_per_cpu_s);
		return;
	}
	printf("agentbus bench replay: %" PRIu64 " records of %" PRIu64 " B (log %.1f MB, "
	       "written in %.2f s), reader on CPU %d\n", o->count, o->size,
	       (double)r->log_bytes / 1e6, r->fill_s, o->cpu_reader);
	printf("  replay  %8.3f M records/s %8.1f MB/s  (median of %d passes: %.3f s)\n",
	       r->msgs_per_s / 1e6, r->bytes_per_s / 1e6, o->passes, r->median_s);
	printf("          %8.3f M records per CPU second of the reading thread\n",
	       r->msgs_per_cpu_s / 1e6);
}

static void rp_usage(FILE *out)
{
	fprintf(out,
		"usage: agentbus bench replay [--count N] [--size BYTES] [--passes N] [--json]\n"
		"\n"
		"Records/s read back from a freshly written log (page cache) with\n"
		"agentbus_replay_next(), checksums verified. The log lives in a mkdtemp\n"
		"directory under $AGENTBUS_BENCH_DIR or /var/tmp.\n"
		"\n"
		"  --count N     records, default 2000000\n"
		"  --size BYTES  payload bytes, default 64\n"
		"  --passes N    timed replays (1-%d), the median reported, default 3\n"
		"  --json        print one JSON object\n", RP_MAX_PASSES);
}

/* Parse one option at argv[*i]: 0 ok, 1 --help, -1 error. */
static int rp_parse_one(int argc, char **argv, int *i, struct rp_opts *o)
{
	const char *v = NULL;
	uint64_t n;
	int m;

	if ((m = bench_opt(argc, argv, i, "--count", &v)) != 0)
		return m < 0 || bench_parse_u64(v, &o->count) || !o->count ||
			       o->count > (1ull << 32) ? bench_bad_opt("--count", v) : 0;
	if ((m = bench_opt(argc, argv, i, "--size", &v)) != 0)
		return m < 0 || bench_parse_size(v, &o->size) || o->size > (256u << 10) ?
			       bench_bad_opt("--size", v) : 0;
	if ((m = bench_opt(argc, argv, i, "--passes", &v)) != 0) {
		if (m < 0 || bench_parse_u64(v, &n) || n < 1 || n > RP_MAX_PASSES)
			return bench_bad_opt("--passes", v);
		o->passes = (int)n;
		return 0;
	}
	if (bench_opt(argc, argv, i, "--json", NULL) > 0)
		return o->json = 1, 0;
	if (bench_opt(argc, argv, i, "--help", NULL) > 0 || bench_opt(argc, argv, i, "-h", NULL) > 0)
		return 1;
	bench_error("replay: unknown option '%s' (see --help)", argv[*i]);
	return -1;
}

int bench_replay_main(int argc, char **argv)
{
	struct rp_opts o = { .count = 2000000, .size = 64, .passes = 3 };
	struct rp_result r;
	int rc;

	for (int i = 1; i < argc; i++) {
		rc = rp_parse_one(argc, argv, &i, &o);
		if (rc > 0)
			rp_usage(stdout);
		if (rc != 0)
			return rc > 0 ? BENCH_OK : BENCH_USAGE;
	}
	dur_cpus(&o.cpu_reader, &o.cpu_daemon);
	rc = rp_run(&o, &r);
	rp_print(&o, &r, rc == 0);
	return rc == 0 ? BENCH_OK : BENCH_FAILED;
}
