/*
 * spill.c - `agentbus bench spill`: records/s and bytes/s that reach the
 * log, sustained, against the raw sequential write bandwidth of the same
 * disk measured in the same run.
 *
 * Method: publisher threads (memory durability, batches of records) keep
 * the ring full; since the ring never overwrites a record the spill writer
 * has not written, they run exactly as fast as the spill writer lets them.
 * After a warm-up the window opens at the stream's written position w0;
 * when it closes the publishers stop and the spill writer catches up with
 * everything published (the catch-up counts). The figure is the records
 * written from w0 to the end over that whole time. Then a synced wait on
 * the last record gives the like-for-like figure for the baseline, which
 * writes the same number of bytes in 1 MiB pwrite()s followed by one
 * fdatasync(), end to end.
 *
 * Placement: the daemon (and so its spill writer) on the last CPU we may
 * use, the publishers on the first.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "durability.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_internal.h"

#define SP_MAX_PUBLISHERS 16
#define SP_CATCHUP_NS (120ull * 1000000000u) /* the spill writer must catch up by then */

struct sp_opts {
	uint64_t size;      /* payload bytes */
	double seconds;     /* measured window */
	double warmup;      /* seconds before it */
	int publishers;     /* publisher threads */
	uint64_t batch;     /* records per publish call */
	uint64_t ring_size; /* stream ring bytes */
	int fsync_never;    /* stream fsync NEVER instead of BATCH */
	int json;
	int cpu_pub;        /* the publishers' CPU */
	int cpu_daemon;     /* the daemon's (and spill writer's) CPU */
};

struct sp_result {
	double window_s;        /* window plus catch-up */
	double catchup_s;       /* from the publishers' stop to the last record written */
	uint64_t records;       /* written in that time */
	double msgs_per_s;
	double bytes_per_s;     /* payload bytes */
	double log_bytes_per_s; /* growth of the log files (frames, index) */
	double synced_bytes_per_s; /* the same, to the synced wait on the last record */
	double baseline_bytes_per_s;
	uint64_t backpressure;  /* publishes that waited 100 ms for room */
};

struct sp_shared {
	const struct sp_opts *o;
	agentbus_stream *stream;
	_Atomic int stop;
	_Atomic int failed;
	_Atomic uint64_t backpressure;
};

/* One publisher: whole batches of records until told to stop. */
static void *sp_publisher(void *arg)
{
	struct sp_shared *sh = arg;
	const struct sp_opts *o = sh->o;
	struct agentbus_message *msgs = calloc(o->batch, sizeof(*msgs));
	char *payload = malloc(o->size);

	dur_pin_thread(o->cpu_pub);
	if (!msgs || !payload) {
		atomic_store(&sh->failed, 1);
		goto out;
	}
	memset(payload, 'p', o->size);
	for (uint64_t i = 0; i < o->batch; i++)
		msgs[i] = (struct agentbus_message){ .subject = DUR_SUBJECT, .payload = payload,
						     .payload_len = o->size };
	while (!atomic_load_explicit(&sh->stop, memory_order_relaxed)) {
		int64_t rc = agentbus_publish_batch(sh->stream, msgs, o->batch, 100);

		if (rc == AGENTBUS_E_BACKPRESSURE) {
			atomic_fetch_add(&sh->backpressure, 1);
			continue;
		}
		if (rc < 0) {
			dur_fail("agentbus_publish_batch", (int)rc);
			atomic_store(&sh->failed, 1);
			break;
		}
	}
out:
	free(msgs);
	free(payload);
	return NULL;
}

/* Wait until every record below @next is written; 0 or -1 at the deadline. */
static int sp_wait_written(agentbus_stream *stream, uint64_t next, uint64_t deadline)
{
	struct agentbus_stream_info info;

	for (;;) {
		if (agentbus_stream_stat(stream, &info) < 0)
			return -1;
		if (info.written_seq >= next)
			return 0;
		if (info.spill_error)
			return dur_fail("spill writer", info.spill_error);
		if (bench_now_ns() > deadline)
			return dur_fail("catch-up", AGENTBUS_E_TIMEOUT);
		bench_sleep_ns(20000);
	}
}

/* Stop the publishers and wait for them. */
static void sp_join(struct sp_shared *sh, pthread_t *threads, int count)
{
	atomic_store(&sh->stop, 1);
	for (int i = 0; i < count; i++)
		pthread_join(threads[i], NULL);
}

static double sp_rate(double amount, uint64_t from_ns, uint64_t to_ns)
{
	return to_ns > from_ns ? amount * 1e9 / (double)(to_ns - from_ns) : 0.0;
}

/*
 * The measured part: warm-up, window, stop (joining the @count publishers),
 * catch-up, synced wait. Fills @r except the baseline; 0 or -1.
 */
static int sp_measure(struct dur_bus *b, struct sp_shared *sh, pthread_t *threads, int count,
		      struct sp_result *r)
{
	struct agentbus_stream_info start, end;
	uint64_t t0, t_stop, t_written, t_synced, log0, log1;
	int rc;

	bench_sleep_ns((uint64_t)(sh->o->warmup * 1e9));
	agentbus_stream_stat(b->stream, &start);
	log0 = dur_tree_bytes(b->dir);
	t0 = bench_now_ns();
	bench_sleep_ns((uint64_t)(sh->o->seconds * 1e9));
	sp_join(sh, threads, count);
	t_stop = bench_now_ns();
	agentbus_stream_stat(b->stream, &end);
	if (atomic_load(&sh->failed) || end.next_seq <= start.written_seq)
		return dur_fail("spill: nothing was published", AGENTBUS_E_TIMEOUT);
	if (sp_wait_written(b->stream, end.next_seq, t_stop + SP_CATCHUP_NS) < 0)
		return -1;
	t_written = bench_now_ns();
	log1 = dur_tree_bytes(b->dir);
	agentbus_stream_stat(b->stream, &end);
	rc = agentbus_wait_durable(b->stream, end.next_seq - 1, AGENTBUS_DURABILITY_SYNCED, 60000);
	if (rc < 0 && !sh->o->fsync_never)
		return dur_fail("agentbus_wait_durable(synced)", rc);
	t_synced = bench_now_ns();
	r->records = end.next_seq - start.written_seq;
	r->window_s = (double)(t_written - t0) / 1e9;
	r->catchup_s = (double)(t_written - t_stop) / 1e9;
	r->msgs_per_s = sp_rate((double)r->records, t0, t_written);
	r->bytes_per_s = r->msgs_per_s * (double)sh->o->size;
	r->log_bytes_per_s = sp_rate((double)(log1 - log0), t0, t_written);
	r->synced_bytes_per_s = rc < 0 ? 0 : sp_rate((double)r->records * (double)sh->o->size,
						     t0, t_synced);
	r->backpressure = atomic_load(&sh->backpressure);
	return 0;
}

/*
 * One run: a private bus and data directory, the daemon on its CPU, the
 * publishers, the measurement, then the baseline on the same directory.
 */
static int sp_run(const struct sp_opts *o, struct sp_result *r)
{
	struct agentbus_stream_config sc = {
		.ring_size = o->ring_size,
		.durability = AGENTBUS_DURABILITY_MEMORY,
		.fsync = o->fsync_never ? AGENTBUS_FSYNC_NEVER : AGENTBUS_FSYNC_BATCH,
	};
	struct sp_shared sh = { .o = o };
	pthread_t threads[SP_MAX_PUBLISHERS];
	struct dur_bus b;
	int started = 0, rc = -1;

	memset(r, 0, sizeof(*r));
	if (dur_make_dir(&b, "spill") < 0)
		return -1;
	dur_pin_thread(o->cpu_daemon);
	if (dur_start(&b, &sc) < 0)
		goto out;
	sh.stream = b.stream;
	for (; started < o->publishers; started++)
		if (pthread_create(&threads[started], NULL, sp_publisher, &sh) != 0)
			break;
	if (started < o->publishers) {
		sp_join(&sh, threads, started);
		dur_fail("pthread_create", -EAGAIN);
		goto out;
	}
	rc = sp_measure(&b, &sh, threads, started, r);
	dur_stop_daemon(&b);
	if (rc == 0) {
		uint64_t bytes = r->records * o->size;

		rc = dur_raw_bandwidth(b.dir, bytes, &r->baseline_bytes_per_s);
		if (rc < 0)
			dur_fail("raw write baseline", rc);
	}
out:
	dur_cleanup(&b);
	return rc < 0 ? -1 : 0;
}

/* ------------------------------------------------------------------------ */
/* Report, options, entry                                                    */
/* ------------------------------------------------------------------------ */

static double sp_ratio(double a, double b)
{
	return b > 0 ? a / b : 0.0;
}

static void sp_print(const struct sp_opts *o, const struct sp_result *r, int ok)
{
	if (o->json) {
		printf("{\"bench\":\"spill\",\"ok\":%s,\"size_bytes\":%" PRIu64
		       ",\"publishers\":%d,\"batch\":%" PRIu64 ",\"fsync\":\"%s\",\"window_s\":%.6f"
		       ",\"catchup_s\":%.6f,\"records\":%" PRIu64 ",\"msgs_per_s\":%.0f"
		       ",\"bytes_per_s\":%.0f,\"log_bytes_per_s\":%.0f,\"synced_bytes_per_s\":%.0f"
		       ",\"baseline_bytes_per_s\":%.0f,\"ratio\":%.3f,\"synced_ratio\":%.3f"
		       ",\"backpressure_waits\":%" PRIu64 "}\n",
		       ok ? "true" : "false", o->size, o->publishers, o->batch,
		       o->fsync_never ? "never" : "batch", r->window_s, r->catchup_s, r->records,
		       r->msgs_per_s, r->bytes_per_s, r->log_bytes_per_s, r->synced_bytes_per_s,
		       r->baseline_bytes_per_s, sp_ratio(r->bytes_per_s, r->baseline_bytes_per_s),
		       sp_ratio(r->synced_bytes_per_s, r->baseline_bytes_per_s), r->backpressure);
		return;
	}
	printf("agentbus bench spill: %" PRIu64 " B records, %d publisher%s on CPU %d, "
	       "daemon on CPU %d\n", o->size, o->publishers, o->publishers > 1 ? "s" : "",
	       o->cpu_pub, o->cpu_daemon);
	printf("  written   %10.3f M records/s %8.1f MB/s  (%" PRIu64 " records in %.3f s, "
	       "catch-up %.3f s)\n", r->msgs_per_s / 1e6, r->bytes_per_s / 1e6, r->records,
	       r->window_s, r->catchup_s);
	printf("  synced    %10.1f MB/s  (to the fdatasync of the last record)\n",
	       r->synced_bytes_per_s / 1e6);
	printf("  raw disk  %10.1f MB/s  (1 MiB pwrite()s + one fdatasync, same bytes)\n",
	       r->baseline_bytes_per_s / 1e6);
	printf("  ratio     %10.2f written, %.2f synced\n",
	       sp_ratio(r->bytes_per_s, r->baseline_bytes_per_s),
	       sp_ratio(r->synced_bytes_per_s, r->baseline_bytes_per_s));
}

static void sp_usage(FILE *out)
{
	fprintf(out,
		"usage: agentbus bench spill [--size BYTES] [--seconds S] [--publishers N]\n"
		"                            [--batch N] [--ring-size BYTES] [--fsync batch|never]\n"
		"                            [--json]\n"
		"\n"
		"Records/s and bytes/s the spill writer sustains into the log, beside the raw\n"
		"sequential write bandwidth of the same disk (1 MiB pwrite()s + one fdatasync).\n"
		"The log lives in a mkdtemp directory under $AGENTBUS_BENCH_DIR or /var/tmp.\n"
		"\n"
		"  --size BYTES      payload bytes, default 4096\n"
		"  --seconds S       measured window after a 0.5 s warm-up, default 3\n"
		"  --publishers N    publisher threads (1-%d), default 1\n"
		"  --batch N         records per publish call, default 16\n"
		"  --ring-size BYTES stream ring, default 256M\n"
		"  --fsync MODE      the stream's fsync setting, default batch\n"
		"  --json            print one JSON object\n", SP_MAX_PUBLISHERS);
}

/* Parse one option at argv[*i]: 0 ok, 1 --help, -1 error. */
static int sp_parse_one(int argc, char **argv, int *i, struct sp_opts *o)
{
	const char *v = NULL;
	uint64_t n;
	int m;

	if ((m = bench_opt(argc, argv, i, "--size", &v)) != 0)
		return m < 0 || bench_parse_size(v, &o->size) ? bench_bad_opt("--size", v) : 0;
	if ((m = bench_opt(argc, argv, i, "--seconds", &v)) != 0)
		return m < 0 || bench_parse_double(v, &o->seconds) || o->seconds > 600 ?
			       bench_bad_opt("--seconds", v) : 0;
	if ((m = bench_opt(argc, argv, i, "--publishers", &v)) != 0) {
		if (m < 0 || bench_parse_u64(v, &n) || n < 1 || n > SP_MAX_PUBLISHERS)
			return bench_bad_opt("--publishers", v);
		o->publishers = (int)n;
		return 0;
	}
	if ((m = bench_opt(argc, argv, i, "--batch", &v)) != 0)
		return m < 0 || bench_parse_u64(v, &o->batch) || !o->batch || o->batch > 1024 ?
			       bench_bad_opt("--batch", v) : 0;
	if ((m = bench_opt(argc, argv, i, "--ring-size", &v)) != 0)
		return m < 0 || bench_parse_size(v, &o->ring_size) ?
			       bench_bad_opt("--ring-size", v) : 0;
	if ((m = bench_opt(argc, argv, i, "--fsync", &v)) != 0) {
		if (m < 0 || (strcmp(v, "batch") != 0 && strcmp(v, "never") != 0))
			return bench_bad_opt("--fsync", v);
		o->fsync_never = strcmp(v, "never") == 0;
		return 0;
	}
	if (bench_opt(argc, argv, i, "--json", NULL) > 0)
		return o->json = 1, 0;
	if (bench_opt(argc, argv, i, "--help", NULL) > 0 || bench_opt(argc, argv, i, "-h", NULL) > 0)
		return 1;
	bench_error("spill: unknown option '%s' (see --help)", argv[*i]);
	return -1;
}

int bench_spill_main(int argc, char **argv)
{
	struct sp_opts o = { .size = 4096, .seconds = 3, .warmup = 0.5, .publishers = 1,
			     .batch = 16, .ring_size = 256u << 20 };
	struct sp_result r;
	int rc;

	for (int i = 1; i < argc; i++) {
		rc = sp_parse_one(argc, argv, &i, &o);
		if (rc > 0)
			sp_usage(stdout);
		if (rc != 0)
			return rc > 0 ? BENCH_OK : BENCH_USAGE;
	}
	if (o.size < 1 || o.size * o.batch + 4096 * o.batch > o.ring_size / 4)
		return bench_error("spill: --size times --batch must fit a quarter of the ring");
	dur_cpus(&o.cpu_pub, &o.cpu_daemon);
	rc = sp_run(&o, &r);
	sp_print(&o, &r, rc == 0);
	return rc == 0 ? BENCH_OK : BENCH_FAILED;
}
