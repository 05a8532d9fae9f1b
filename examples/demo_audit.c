/*
 * demo_audit.c - the demo's audit trail: once the agents have stopped, read
 * the whole run back from the logs of "calls" and "results" and check that
 * the log alone tells who called which tool, what came back, and when.
 *
 * Nothing here uses what the collector saw live: every fact comes from the
 * records the spill writer put on disk, read with agentbus_replay_*(). Calls
 * and results are joined by their key ("call-000042"). Every call id is
 * checked, not just the few that are printed: each planned call must be in
 * the calls log once and have exactly one result, from the agent that serves
 * its tool, in the results log.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "demo.h"

#define AUDIT_SHOWN 8               /* calls printed, the first ones by id */
#define AUDIT_DURABLE_TIMEOUT_MS 5000
#define AUDIT_TEXT 44               /* payload characters shown */

/* What the log says about one printed call. */
struct audit_line {
	uint64_t call_seq, call_time_ns;
	uint64_t result_seq, result_time_ns;
	char subject[64], result_subject[64], agent[32];
	char request[AUDIT_TEXT + 1], result[AUDIT_TEXT + 1];
};

struct audit {
	uint64_t calls;                 /* ids 1..calls were planned */
	uint8_t *call_count;            /* [calls + 1]: records of each call, saturating */
	uint8_t *result_count;          /* [calls + 1]: its results, saturating */
	struct audit_line lines[AUDIT_SHOWN + 1]; /* [id] for ids 1..AUDIT_SHOWN */
	uint64_t records[2];            /* replayed from the calls and results logs */
	uint64_t byes;                  /* agents' goodbyes in the results log */
	uint64_t stray;                 /* records that belong to no planned call */
	uint64_t wrong_agent;           /* results from an agent that does not serve the tool */
	uint64_t unreadable;            /* replay errors (a bad checksum, ...) */
};

/* Copy at most AUDIT_TEXT characters of @data into @out, marking a cut with "...". */
static void shorten(const void *data, size_t len, char out[AUDIT_TEXT + 1])
{
	if (len <= AUDIT_TEXT) {
		memcpy(out, data, len);
		out[len] = '\0';
		return;
	}
	memcpy(out, data, AUDIT_TEXT - 3);
	memcpy(out + AUDIT_TEXT - 3, "...", 4);
}

/* Copy the subject of @record, NUL-terminated and cut to fit @out_len. */
static void subject_copy(const struct agentbus_record *record, char *out, size_t out_len)
{
	size_t len = record->subject_len < out_len ? record->subject_len : out_len - 1;

	memcpy(out, record->subject, len);
	out[len] = '\0';
}

/* Format CLOCK_REALTIME @ns as HH:MM:SS.micro, UTC. */
static void format_time(uint64_t ns, char *out, size_t out_len)
{
	time_t seconds = (time_t)(ns / 1000000000u);
	struct tm tm;
	size_t n;

	if (!gmtime_r(&seconds, &tm) || (n = strftime(out, out_len, "%H:%M:%S", &tm)) == 0) {
		snprintf(out, out_len, "?");
		return;
	}
	snprintf(out + n, out_len - n, ".%06u", (unsigned)(ns % 1000000000u / 1000u));
}

/* Count one more of something, without wrapping past 255. */
static void bump(uint8_t *count)
{
	if (*count < UINT8_MAX)
		(*count)++;
}

/* Account for one record of the calls log. */
static void take_call(struct audit *audit, const struct agentbus_record *record)
{
	struct audit_line *line;
	uint64_t id;

	if (demo_key_id(record, &id) != 0 || id > audit->calls ||
	    record->subject_len < 10 || memcmp(record->subject, "tool.call.", 10) != 0) {
		audit->stray++;
		return;
	}
	bump(&audit->call_count[id]);
	if (id > AUDIT_SHOWN || audit->call_count[id] != 1)
		return;
	line = &audit->lines[id];
	line->call_seq = record->seq;
	line->call_time_ns = record->time_ns;
	subject_copy(record, line->subject, sizeof(line->subject));
	shorten(record->payload, record->payload_len, line->request);
}

/* Account for one record of the results log: an answer or a goodbye. */
static void take_result(struct audit *audit, const struct agentbus_record *record)
{
	struct demo_call call;
	struct audit_line *line;
	char agent[32] = "";
	uint64_t id;

	if (record->key_len == 0 && record->subject_len > 6 &&
	    memcmp(record->subject, "agent.", 6) == 0) {
		audit->byes++;
		return;
	}
	if (demo_key_id(record, &id) != 0 || id > audit->calls ||
	    record->subject_len < 12 || memcmp(record->subject, "tool.result.", 12) != 0) {
		audit->stray++;
		return;
	}
	bump(&audit->result_count[id]);
	demo_call_make(id, &call);
	if (demo_header_get(record, "agent", agent, sizeof(agent)) != 0 ||
	    strcmp(agent, demo_agents[call.tool].name) != 0)
		audit->wrong_agent++;
	if (id > AUDIT_SHOWN || audit->result_count[id] != 1)
		return;
	line = &audit->lines[id];
	line->result_seq = record->seq;
	line->result_time_ns = record->time_ns;
	snprintf(line->agent, sizeof(line->agent), "%s", agent);
	subject_copy(record, line->result_subject, sizeof(line->result_subject));
	shorten(record->payload, record->payload_len, line->result);
}

/*
 * Wait until every record published on stream @name is written to its log,
 * so the replay (which ends where the log is written) sees the whole run.
 * Returns 0 or -1.
 */
static int wait_written(agentbus_bus *bus, const char *name)
{
	struct agentbus_stream_info info;
	agentbus_stream *stream;
	int err;

	if ((err = agentbus_stream_open(bus, name, &stream)) < 0)
		goto failed;
	err = agentbus_stream_stat(stream, &info);
	if (err == 0 && info.next_seq > 1)
		err = agentbus_wait_durable(stream, info.next_seq - 1, AGENTBUS_DURABILITY_WRITTEN,
					    AUDIT_DURABLE_TIMEOUT_MS);
	agentbus_stream_close(stream);
	if (err == 0)
		return 0;
failed:
	fprintf(stderr, "agentbus-demo: waiting for the log of %s: %s (%s)\n", name,
		agentbus_strerror(err), agentbus_last_error());
	return -1;
}

/*
 * Replay stream @name from its oldest logged record, handing each record to
 * @take. A record that cannot be read is counted and skipped (the replay
 * goes on after it); too many such errors end it. Returns 0 or -1.
 */
static int replay_stream(agentbus_bus *bus, const char *name, struct audit *audit,
			 uint64_t *records,
			 void (*take)(struct audit *, const struct agentbus_record *))
{
	struct agentbus_replay_config config = { .start = AGENTBUS_START_OLDEST };
	struct agentbus_record record;
	agentbus_replay *replay;
	int r, err = agentbus_replay_open(bus, name, &config, &replay);

	if (err < 0) {
		fprintf(stderr, "agentbus-demo: replaying %s: %s (%s)\n", name,
			agentbus_strerror(err), agentbus_last_error());
		return -1;
	}
	while ((r = agentbus_replay_next(replay, &record)) != 0) {
		if (r > 0) {
			(*records)++;
			take(audit, &record);
			continue;
		}
		fprintf(stderr, "agentbus-demo: replaying %s: %s (%s)\n", name,
			agentbus_strerror(r), agentbus_last_error());
		if (++audit->unreadable >= 16)
			break;
	}
	agentbus_replay_close(replay);
	return 0;
}

/* Print the call @id and its result as the log has them. */
static void print_line(const struct audit *audit, uint64_t id)
{
	const struct audit_line *line = &audit->lines[id];
	char when[32], seq[32];

	if (audit->call_count[id] == 0) {
		printf("  call-%06" PRIu64 " is not in the calls log\n", id);
		return;
	}
	format_time(line->call_time_ns, when, sizeof(when));
	snprintf(seq, sizeof(seq), "calls#%" PRIu64, line->call_seq);
	printf("  %s  %-11s call-%06" PRIu64 "  %-21s %s\n", when, seq, id, line->subject,
	       line->request);
	if (audit->result_count[id] != 1)
		printf("  %15s  -> %s%u results in the results log, not exactly 1\n", "",
		       audit->result_count[id] == UINT8_MAX ? "at least " : "",
		       audit->result_count[id]);
	if (line->result_seq == 0)
		return;
	format_time(line->result_time_ns, when, sizeof(when));
	snprintf(seq, sizeof(seq), "results#%" PRIu64, line->result_seq);
	printf("  %s  %-11s   -> %-10s %-18s %s (%+.3f ms)\n", when, seq, line->agent,
	       line->result_subject, line->result,
	       ((double)line->result_time_ns - (double)line->call_time_ns) / 1e6);
}

/* Check every planned call; print the totals. Returns the number of mismatches. */
static uint64_t summarize(const struct audit *audit, uint64_t replay_ns)
{
	uint64_t unlogged = 0, unanswered = 0, repeated = 0, mismatches;

	for (uint64_t id = 1; id <= audit->calls; id++) {
		if (audit->call_count[id] == 0)
			unlogged++;
		if (audit->call_count[id] > 1 || audit->result_count[id] > 1)
			repeated++;
		else if (audit->call_count[id] == 1 && audit->result_count[id] == 0)
			unanswered++;
	}
	mismatches = unlogged + unanswered + repeated + audit->stray + audit->wrong_agent +
		     audit->unreadable;
	printf("  replayed %" PRIu64 " records from the log of \"%s\" and %" PRIu64
	       " from \"%s\" (%" PRIu64 " answers, %" PRIu64 " goodbyes) in %.1f ms\n",
	       audit->records[0], DEMO_CALLS_STREAM, audit->records[1], DEMO_RESULTS_STREAM,
	       audit->records[1] - audit->byes - audit->stray, audit->byes, replay_ns / 1e6);
	printf("  %s: %" PRIu64 " of %" PRIu64 " calls logged;\n  %" PRIu64 " mismatches (%" PRIu64
	       " unanswered, %" PRIu64 " repeated, %" PRIu64 " not logged, %" PRIu64
	       " stray records, %" PRIu64 " from the wrong agent, %" PRIu64 " unreadable)\n",
	       mismatches ? "MISMATCH" : "every logged call has exactly one logged result",
	       audit->calls - unlogged, audit->calls, mismatches, unanswered, repeated, unlogged,
	       audit->stray, audit->wrong_agent, audit->unreadable);
	return mismatches;
}

/*
 * Replay the run from the logs of @bus, print the first calls with their
 * results and check all @calls planned calls. Returns 0 if the log holds
 * exactly one result for every call and nothing else amiss, else -1.
 */
int demo_audit(agentbus_bus *bus, uint64_t calls)
{
	struct audit audit = { .calls = calls };
	uint64_t replay_ns;
	int rc = -1;

	printf("\nAudit trail, replayed from the logs (the first %d calls by id; UTC):\n",
	       AUDIT_SHOWN);
	audit.call_count = calloc(calls + 1, 1);
	audit.result_count = calloc(calls + 1, 1);
	if (!audit.call_count || !audit.result_count) {
		fprintf(stderr, "agentbus-demo: out of memory\n");
		goto out;
	}
	if (wait_written(bus, DEMO_CALLS_STREAM) != 0 || wait_written(bus, DEMO_RESULTS_STREAM) != 0)
		goto out;
	replay_ns = demo_now_ns();
	if (replay_stream(bus, DEMO_CALLS_STREAM, &audit, &audit.records[0], take_call) != 0 ||
	    replay_stream(bus, DEMO_RESULTS_STREAM, &audit, &audit.records[1], take_result) != 0)
		goto out;
	replay_ns = demo_now_ns() - replay_ns;
	for (uint64_t id = 1; id <= AUDIT_SHOWN && id <= calls; id++)
		print_line(&audit, id);
	rc = summarize(&audit, replay_ns) == 0 ? 0 : -1;
out:
	free(audit.call_count);
	free(audit.result_count);
	return rc;
}
