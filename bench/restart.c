/*
 * restart.c - `agentbus bench restart`: how long a daemon takes to serve
 * again when it starts over a large log (issue 3, point 5d: a 1 GiB log,
 * serving again in less than 1 s).
 *
 * Method: the real daemon builds a log of about --gib GiB (4 KiB records,
 * memory durability, in batches), waits until all is synced, and stops.
 * Then, twice, the clock runs from agentbus_daemon_start() until
 * agentbus_open(), agentbus_stream_open() and one memory-level publish have
 * succeeded: first with the bus's shared memory kept (the daemon adopts the
 * ring), then after removing the bus's shared-memory directory as a reboot
 * would (the daemon rebuilds the stream from its log), and a third time
 * with shared memory removed again and the log's files dropped from the
 * page cache (fdatasync + POSIX_FADV_DONTNEED: a cold start, as far as a
 * guest can make one; the host may still cache the disk). Each start also
 * notes when a publish at durability `written` next returns, i.e. when the
 * spill writer is logging again.
 *
 * The stream has the default ring (64 MiB) and segment size (64 MiB).
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

#include "bench_internal.h"

#define RS_RECORD 4096u /* payload bytes */
#define RS_BATCH 16     /* records per publish call while filling */

struct rs_opts {
	double gib;     /* log size to build */
	int json;
	int cpu_daemon;
};

struct rs_start {
	double serving_s; /* daemon start to the first memory publish */
	double written_s; /* daemon start to a publish at `written` */
};

struct rs_result {
	uint64_t log_bytes;  /* of the stream, after filling */
	uint64_t records;
	double fill_s;
	struct rs_start warm;   /* shared memory kept */
	struct rs_start reboot; /* shared memory removed */
	struct rs_start cold;   /* removed again, and the log evicted from the page cache */
	uint64_t evicted_bytes;
};

/* Publish 4 KiB records until the log holds @bytes, then wait for synced. */
static int rs_fill(agentbus_stream *stream, uint64_t bytes, uint64_t *records)
{
	struct agentbus_message msgs[RS_BATCH];
	char *payload = malloc(RS_RECORD);
	int64_t seq = 0;

	if (!payload)
		return dur_fail("restart", -ENOMEM);
	memset(payload, 'R', RS_RECORD);
	for (int i = 0; i < RS_BATCH; i++)
		msgs[i] = (struct agentbus_message){ .subject = DUR_SUBJECT, .payload = payload,
						     .payload_len = RS_RECORD };
	for (*records = 0; *records * RS_RECORD < bytes; *records += RS_BATCH) {
		seq = agentbus_publish_batch(stream, msgs, RS_BATCH, 10000);
		if (seq < 0)
			break;
		seq += RS_BATCH - 1;
	}
	free(payload);
	if (seq < 0)
		return dur_fail("agentbus_publish_batch", (int)seq);
	seq = agentbus_wait_durable(stream, (uint64_t)seq, AGENTBUS_DURABILITY_SYNCED, 300000);
	return seq < 0 ? dur_fail("agentbus_wait_durable(synced)", (int)seq) : 0;
}

/* Start the daemon and time it until it serves; then stop it. 0 or -1. */
static int rs_time_start(struct dur_bus *b, struct rs_start *s)
{
	struct agentbus_message msg = { .subject = DUR_SUBJECT, .payload = "x", .payload_len = 1 };
	uint64_t t0 = bench_now_ns();
	int64_t rc;

	if (dur_start(b, NULL) < 0)
		return -1;
	rc = agentbus_publish(b->stream, &msg, 5000);
	if (rc < 0)
		return dur_fail("first publish after the restart", (int)rc);
	s->serving_s = (double)(bench_now_ns() - t0) / 1e9;
	rc = agentbus_publish_durable(b->stream, &msg, 1, 60000, AGENTBUS_DURABILITY_WRITTEN);
	if (rc < 0)
		return dur_fail("written publish after the restart", (int)rc);
	s->written_s = (double)(bench_now_ns() - t0) / 1e9;
	dur_stop_daemon(b);
	return 0;
}

static int rs_run(const struct rs_opts *o, struct rs_result *r)
{
	struct agentbus_stream_config sc = { .durability = AGENTBUS_DURABILITY_MEMORY };
	char shm[PATH_MAX + AGENTBUS_NAME_MAX + 2];
	struct dur_bus b;
	uint64_t t0;
	int rc = -1;

	memset(r, 0, sizeof(*r));
	if (dur_make_dir(&b, "restart") < 0)
		return -1;
	dur_pin_thread(o->cpu_daemon);
	if (dur_start(&b, &sc) < 0)
		goto out;
	t0 = bench_now_ns();
	if (rs_fill(b.stream, (uint64_t)(o->gib * (double)(1ull << 30)), &r->records) < 0)
		goto out;
	r->fill_s = (double)(bench_now_ns() - t0) / 1e9;
	dur_stop_daemon(&b);
	r->log_bytes = dur_tree_bytes(b.dir);
	if (rs_time_start(&b, &r->warm) < 0)
		goto out;
	dur_shm_dir(&b, shm, sizeof(shm));
	dur_remove_tree(shm);
	if (rs_time_start(&b, &r->reboot) < 0)
		goto out;
	dur_remove_tree(shm);
	r->evicted_bytes = dur_evict_tree(b.dir);
	rc = rs_time_start(&b, &r->cold);
out:
	dur_cleanup(&b);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Report, options, entry                                                    */
/* ------------------------------------------------------------------------ */

static void rs_print(const struct rs_opts *o, const struct rs_result *r, int ok)
{
	if (o->json) {
		printf("{\"bench\":\"restart\",\"ok\":%s,\"log_bytes\":%" PRIu64 ",\"records\":%" PRIu64
		       ",\"fill_s\":%.3f,\"start_s\":%.6f,\"start_written_s\":%.6f"
		       ",\"start_after_reboot_s\":%.6f,\"start_after_reboot_written_s\":%.6f"
		       ",\"evicted_bytes\":%" PRIu64 ",\"start_cold_s\":%.6f,\"start_cold_written_s\":%.6f}\n",
		       ok ? "true" : "false", r->log_bytes, r->records, r->fill_s, r->warm.serving_s,
		       r->warm.written_s, r->reboot.serving_s, r->reboot.written_s, r->evicted_bytes,
		       r->cold.serving_s, r->cold.written_s);
		return;
	}
	printf("agentbus bench restart: log of %.1f MiB (%" PRIu64 " records of 4 KiB, "
	       "written in %.2f s), daemon on CPU %d\n", (double)r->log_bytes / 1048576.0,
	       r->records, r->fill_s, o->cpu_daemon);
	printf("  shared memory kept     serving after %.3f s, logging (written) after %.3f s\n",
	       r->warm.serving_s, r->warm.written_s);
	printf("  shared memory removed  serving after %.3f s, logging (written) after %.3f s\n",
	       r->reboot.serving_s, r->reboot.written_s);
	printf("  ... and log evicted    serving after %.3f s, logging (written) after %.3f s"
	       " (%.1f MiB dropped from the page cache)\n", r->cold.serving_s, r->cold.written_s,
	       (double)r->evicted_bytes / 1048576.0);
}

static void rs_usage(FILE *out)
{
	fprintf(out,
		"usage: agentbus bench restart [--gib N] [--json]\n"
		"\n"
		"Seconds from agentbus_daemon_start() until a client can open the stream and\n"
		"publish, over a log of N GiB, with shared memory kept, after removing it\n"
		"as a reboot would, and after removing it again with the log's files dropped\n"
		"from the page cache (a cold start). The log lives in a mkdtemp directory under\n"
		"$AGENTBUS_BENCH_DIR or /var/tmp.\n"
		"\n"
		"  --gib N   log size in GiB (may be a fraction), default 1\n"
		"  --json    print one JSON object\n");
}

int bench_restart_main(int argc, char **argv)
{
	struct rs_opts o = { .gib = 1 };
	struct rs_result r;
	int first, rc;

	for (int i = 1; i < argc; i++) {
		const char *v = NULL;
		int m = bench_opt(argc, argv, &i, "--gib", &v);

		if (m != 0) {
			if (m < 0 || bench_parse_double(v, &o.gib) || o.gib > 16)
				return bench_bad_opt("--gib", v), BENCH_USAGE;
		} else if (bench_opt(argc, argv, &i, "--json", NULL) > 0) {
			o.json = 1;
		} else if (bench_opt(argc, argv, &i, "--help", NULL) > 0 ||
			   bench_opt(argc, argv, &i, "-h", NULL) > 0) {
			rs_usage(stdout);
			return BENCH_OK;
		} else {
			return bench_error("restart: unknown option '%s' (see --help)", argv[i]);
		}
	}
	dur_cpus(&first, &o.cpu_daemon);
	rc = rs_run(&o, &r);
	rs_print(&o, &r, rc == 0);
	return rc == 0 ? BENCH_OK : BENCH_FAILED;
}
