/*
 * replay_rate.c - `agentbus bench replay-rate`: how faithfully a replay at
 * AGENTBUS_RATE_ORIGINAL reproduces the gaps between records (issue 3 point
 * 4: within 5% over a 2-second replay). Records are published with random
 * gaps (0-2x the mean) over the span asked for; the replay's wall time from
 * its first record to its last is compared with the span of the records'
 * own times, and each gap's error is summarised too.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_internal.h"
#include "durability.h"

struct rr_opts {
	double seconds; /* span of the published run */
	int records;
	int json;
};

/* Publish with random gaps; returns the last seq, or < 0. */
static int64_t rr_publish(const struct rr_opts *o, agentbus_stream *stream)
{
	uint64_t mean_gap = (uint64_t)(o->seconds * 1e9) / (uint64_t)(o->records - 1);
	struct agentbus_message m = { .subject = "bench.replay.rate", .payload = "x",
				      .payload_len = 1 };
	int64_t seq = 0;

	srand(42);
	for (int i = 0; i < o->records; i++) {
		if (i)
			bench_sleep_ns(mean_gap * (uint64_t)(rand() % 2001) / 1000u);
		seq = agentbus_publish(stream, &m, 1000);
		if (seq < 0)
			return dur_fail("publish", (int)seq);
	}
	return seq;
}

/* Replay at the original rate: the spans of the original run and of the
 * replay, and the worst error of a single gap between two records. */
static int rr_replay(struct dur_bus *b, int records, double *original_s, double *replayed_s,
		     double *worst_gap_ms)
{
	struct agentbus_replay_config cfg = { .start = AGENTBUS_START_OLDEST,
					      .rate = AGENTBUS_RATE_ORIGINAL };
	uint64_t first_time = 0, prev_time = 0, first_wall = 0, prev_wall = 0, wall;
	struct agentbus_record rec;
	agentbus_replay *replay;
	double err;
	int n = 0, r;

	r = agentbus_replay_open(b->bus, DUR_STREAM, &cfg, &replay);
	if (r < 0)
		return dur_fail("replay open", r);
	*worst_gap_ms = 0;
	while ((r = agentbus_replay_next(replay, &rec)) == 1) {
		wall = bench_now_ns();
		if (!n) {
			first_time = rec.time_ns;
			first_wall = wall;
		} else {
			err = ((double)(wall - prev_wall) - (double)(rec.time_ns - prev_time)) / 1e6;
			if (err < 0)
				err = -err;
			if (err > *worst_gap_ms)
				*worst_gap_ms = err;
		}
		prev_time = rec.time_ns;
		prev_wall = wall;
		n++;
	}
	agentbus_replay_close(replay);
	if (r < 0 || n != records)
		return dur_fail("replay (records missing)", r < 0 ? r : -1);
	*original_s = (double)(prev_time - first_time) / 1e9;
	*replayed_s = (double)(prev_wall - first_wall) / 1e9;
	return 0;
}

static int rr_parse(int argc, char **argv, struct rr_opts *o)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			o->json = 1;
		else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
			o->seconds = atof(argv[++i]);
		else if (strcmp(argv[i], "--records") == 0 && i + 1 < argc)
			o->records = atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: agentbus bench replay-rate [--seconds S] [--records N] [--json]\n");
			return strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0 ? 1 : -1;
		}
	}
	if (o->seconds < 0.1 || o->seconds > 60 || o->records < 2 || o->records > 100000) {
		fprintf(stderr, "agentbus bench replay-rate: --seconds 0.1-60, --records 2-100000\n");
		return -1;
	}
	return 0;
}

int bench_replay_rate_main(int argc, char **argv)
{
	struct agentbus_stream_config sc = { .durability = AGENTBUS_DURABILITY_MEMORY };
	struct rr_opts o = { .seconds = 2.0, .records = 400 };
	double original = 0, replayed = 0, worst_gap_ms = 0, error;
	struct dur_bus b;
	int64_t last;
	int rc = rr_parse(argc, argv, &o);

	if (rc)
		return rc > 0 ? 0 : 2;
	if (dur_make_dir(&b, "replayrate") < 0 || dur_start(&b, &sc) < 0)
		return 1;
	last = rr_publish(&o, b.stream);
	rc = last < 0 ? -1 : agentbus_wait_durable(b.stream, (uint64_t)last,
						   AGENTBUS_DURABILITY_WRITTEN, 10000);
	if (rc < 0 && last >= 0)
		dur_fail("wait durable", rc);
	if (rc == 0)
		rc = rr_replay(&b, o.records, &original, &replayed, &worst_gap_ms);
	dur_cleanup(&b);
	if (rc)
		return 1;
	error = (replayed - original) / original;
	if (o.json)
		printf("{\"bench\":\"replay-rate\",\"records\":%d,\"original_s\":%.6f,"
		       "\"replayed_s\":%.6f,\"span_error\":%.6f,\"worst_gap_error_ms\":%.3f}\n",
		       o.records, original, replayed, error, worst_gap_ms);
	else
		printf("agentbus bench replay-rate: %d records over %.3f s replayed in %.3f s "
		       "(%+.2f%%); worst single gap off by %.3f ms\n",
		       o.records, original, replayed, error * 100, worst_gap_ms);
	return 0;
}
