/*
 * demo_collector.c - what the demo's supervisor does with "results": match
 * every answer to its call, check it, time it, and tell the story at the end.
 *
 * An answer counts only if it names a call the planner made, comes from the
 * agent that serves that tool, on the right subject, with exactly the answer
 * that call should get. Latencies are CLOCK_MONOTONIC differences across
 * processes: one-way (planner publish -> agent read, measured by the agent)
 * and round trip (planner publish -> collector read of the answer).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "demo.h"

/* Allocate the per-call tables for @calls calls. Returns 0 or -1. */
int demo_tally_init(struct demo_tally *tally, uint64_t calls)
{
	memset(tally, 0, sizeof(*tally));
	tally->calls = calls;
	tally->seen = calloc(calls + 1, 1);
	tally->one_way_ns = calloc(calls, sizeof(uint64_t));
	tally->round_trip_ns = calloc(calls, sizeof(uint64_t));
	if (!tally->seen || !tally->one_way_ns || !tally->round_trip_ns) {
		demo_tally_free(tally);
		return -1;
	}
	return 0;
}

void demo_tally_free(struct demo_tally *tally)
{
	free(tally->seen);
	free(tally->one_way_ns);
	free(tally->round_trip_ns);
	tally->seen = NULL;
	tally->one_way_ns = NULL;
	tally->round_trip_ns = NULL;
}

/* True if the subject of @record is exactly @text. */
static int subject_is(const struct agentbus_record *record, const char *text)
{
	size_t len = strlen(text);

	return record->subject_len == len && memcmp(record->subject, text, len) == 0;
}

/* Take an agent's goodbye; returns 1 if @record was one, else 0. */
static int take_goodbye(struct demo_tally *tally, const struct agentbus_record *record)
{
	char subject[64];

	for (int t = 0; t < DEMO_TOOL_COUNT; t++) {
		snprintf(subject, sizeof(subject), "agent.%s.bye", demo_agents[t].name);
		if (!subject_is(record, subject))
			continue;
		if (tally->bye[t][0] == '\0' && record->payload_len < DEMO_PAYLOAD_MAX) {
			memcpy(tally->bye[t], record->payload, record->payload_len);
			tally->bye[t][record->payload_len] = '\0';
			tally->byes++;
		}
		return 1;
	}
	return 0;
}

/*
 * Check an answer against the call it names, which is rebuilt into @call.
 * Returns 0 if the answer is right in every respect, else -1.
 */
static int check_answer(const struct demo_tally *tally, const struct agentbus_record *record,
			struct demo_call *call)
{
	char expected[DEMO_PAYLOAD_MAX], subject[64], agent[32];
	uint64_t id;
	int n;

	if (demo_key_id(record, &id) != 0 || id > tally->calls)
		return -1;
	demo_call_make(id, call);
	snprintf(subject, sizeof(subject), "tool.result.%s", demo_tool_name(call->tool));
	if (!subject_is(record, subject))
		return -1;
	if (demo_header_get(record, "agent", agent, sizeof(agent)) != 0 ||
	    strcmp(agent, demo_agents[call->tool].name) != 0)
		return -1;
	n = demo_answer(call->tool, call->payload, call->payload_len, expected, sizeof(expected));
	if (n < 0 || record->payload_len != (uint32_t)n ||
	    memcmp(record->payload, expected, (size_t)n) != 0)
		return -1;
	return 0;
}

/* Keep the answer to @call as a sample if its tool still has room. */
static void keep_sample(struct demo_tally *tally, const struct demo_call *call,
			const struct agentbus_record *record, uint64_t one_way_ns,
			uint64_t round_trip_ns)
{
	for (int i = 0; i < DEMO_SAMPLES_PER_TOOL; i++) {
		struct demo_sample *sample = &tally->samples[call->tool][i];

		if (sample->id != 0)
			continue;
		sample->id = call->id;
		memcpy(sample->answer, record->payload, record->payload_len);
		sample->answer[record->payload_len] = '\0';
		sample->one_way_ns = one_way_ns;
		sample->round_trip_ns = round_trip_ns;
		return;
	}
}

/*
 * Account for one record read from "results" at @received_ns: an answer
 * (checked, deduplicated, timed) or an agent's goodbye. Anything else is
 * counted as unknown.
 */
void demo_tally_add(struct demo_tally *tally, const struct agentbus_record *record,
		    uint64_t received_ns)
{
	struct demo_call call;
	uint64_t sent_ns, one_way_ns, round_trip_ns;

	if (take_goodbye(tally, record))
		return;
	if (record->subject_len < 12 || memcmp(record->subject, "tool.result.", 12) != 0) {
		tally->unknown++;
		return;
	}
	if (check_answer(tally, record, &call) != 0 ||
	    demo_header_u64(record, "t-sent", &sent_ns) != 0 ||
	    demo_header_u64(record, "one-way-ns", &one_way_ns) != 0) {
		tally->wrong++;
		return;
	}
	if (tally->seen[call.id]) {
		tally->duplicates++;
		return;
	}
	tally->seen[call.id] = 1;
	round_trip_ns = received_ns > sent_ns ? received_ns - sent_ns : 0;
	tally->one_way_ns[tally->answered] = one_way_ns;
	tally->round_trip_ns[tally->answered] = round_trip_ns;
	tally->answered++;
	tally->per_agent[call.tool]++;
	keep_sample(tally, &call, record, one_way_ns, round_trip_ns);
}

/* 1 if every call got exactly one correct answer and nothing else came. */
int demo_tally_ok(const struct demo_tally *tally)
{
	return tally->answered == tally->calls && tally->duplicates == 0 && tally->wrong == 0 &&
	       tally->unknown == 0;
}

static int compare_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile @p (0-100] of the sorted @values[@n]. */
static uint64_t percentile(const uint64_t *values, uint64_t n, double p)
{
	uint64_t rank = (uint64_t)(p / 100.0 * (double)n + 0.999999);

	if (n == 0)
		return 0;
	return values[rank == 0 ? 0 : (rank > n ? n : rank) - 1];
}

/* Print one latency row: p50, p99, max of @values[@n] in microseconds. */
static void print_latency(const char *what, uint64_t *values, uint64_t n)
{
	qsort(values, n, sizeof(*values), compare_u64);
	printf("  %-28s %9.1f %9.1f %9.1f\n", what, percentile(values, n, 50) / 1e3,
	       percentile(values, n, 99) / 1e3, n ? values[n - 1] / 1e3 : 0.0);
}

/* Print who answered what, with the subscription counters from goodbyes. */
static void print_agents(const struct demo_tally *tally)
{
	for (int t = 0; t < DEMO_TOOL_COUNT; t++) {
		uint64_t delivered = 0, filtered = 0;
		const char *bye = tally->bye[t];

		printf("  %-10s (filter %-18s) answered %5" PRIu64 " calls", demo_agents[t].name,
		       demo_agents[t].filter, tally->per_agent[t]);
		if (bye[0] && sscanf(bye, "{\"answered\":%*u,\"rejected\":%*u,\"delivered\":%" SCNu64
					  ",\"filtered\":%" SCNu64, &delivered, &filtered) == 2)
			printf("; its filter let %" PRIu64 " through and skipped %" PRIu64 "\n",
			       delivered, filtered);
		else
			printf("; no goodbye received\n");
	}
}

/* Print the first answers of each tool, with the call they answer. */
static void print_samples(const struct demo_tally *tally)
{
	struct demo_call call;

	for (int t = 0; t < DEMO_TOOL_COUNT; t++) {
		for (int i = 0; i < DEMO_SAMPLES_PER_TOOL; i++) {
			const struct demo_sample *sample = &tally->samples[t][i];

			if (sample->id == 0)
				continue;
			demo_call_make(sample->id, &call);
			printf("  %s  %-22s %s\n", call.key, call.subject, call.payload);
			printf("      -> %-10s  tool.result.%-10s %s\n", demo_agents[t].name,
			       demo_tool_name(call.tool), sample->answer);
			printf("         one-way %.1f us, round trip %.1f us\n",
			       sample->one_way_ns / 1e3, sample->round_trip_ns / 1e3);
		}
	}
}

/* Print the counters of stream @name as the bus sees them now. */
static void print_stream(const char *name, const struct agentbus_stream_info *info)
{
	printf("  %-8s records %" PRIu64 "..%" PRIu64 ", gaps %" PRIu64 ", %" PRIu64
	       " of %" PRIu64 " ring bytes in use, %u subscription%s\n",
	       name, info->first_seq, info->next_seq - 1, info->gaps, info->ring_used,
	       info->ring_size, info->subscriptions, info->subscriptions == 1 ? "" : "s");
	if (info->written_seq > 1)
		printf("  %-8s records %" PRIu64 "..%" PRIu64 " written to the log by the spill writer\n",
		       "", info->log_first_seq, info->written_seq - 1);
}

/* Fill @info for stream @name; on failure say so and zero it. */
static int stream_info(agentbus_bus *bus, const char *name, struct agentbus_stream_info *info)
{
	int err = agentbus_stream_info_get(bus, name, info);

	if (err < 0) {
		memset(info, 0, sizeof(*info));
		printf("  (stream info of %s failed: %s)\n", name, agentbus_last_error());
	}
	return err;
}

/*
 * Tell the story of the run: totals, each agent's share, sample exchanges,
 * latency percentiles and the streams' final state. Sorts the latency tables
 * of @tally in place.
 */
void demo_report(struct demo_tally *tally, agentbus_bus *bus)
{
	struct agentbus_stream_info calls, results;
	int calls_ok = stream_info(bus, DEMO_CALLS_STREAM, &calls) == 0;
	int results_ok = stream_info(bus, DEMO_RESULTS_STREAM, &results) == 0;

	printf("\nWhat happened:\n");
	printf("  %" PRIu64 " calls planned, %" PRIu64 " published, %" PRIu64 " answered, %" PRIu64
	       " missing, %" PRIu64 " duplicate, %" PRIu64 " wrong, %" PRIu64 " unexpected records\n",
	       tally->calls, calls.next_seq ? calls.next_seq - 1 - calls.gaps : 0, tally->answered,
	       tally->calls - tally->answered, tally->duplicates, tally->wrong, tally->unknown);
	print_agents(tally);
	printf("\nSample exchanges:\n");
	print_samples(tally);
	printf("\nDelivery latency (CLOCK_MONOTONIC across processes, microseconds, %" PRIu64
	       " calls):\n", tally->answered);
	printf("  %-28s %9s %9s %9s\n", "", "p50", "p99", "max");
	print_latency("planner -> agent (one way)", tally->one_way_ns, tally->answered);
	print_latency("call -> answer (round trip)", tally->round_trip_ns, tally->answered);
	printf("  The agents and the collector wait with the default spin-then-sleep strategy and\n"
	       "  calls come in bursts, so most deliveries include waking a sleeping process, and\n"
	       "  %ld CPUs are shared by 5 processes. `agentbus bench latency` measures the bus\n"
	       "  alone.\n", sysconf(_SC_NPROCESSORS_ONLN));
	printf("\nStreams at the end:\n");
	if (calls_ok)
		print_stream(DEMO_CALLS_STREAM, &calls);
	if (results_ok)
		print_stream(DEMO_RESULTS_STREAM, &results);
}
