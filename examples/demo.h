/*
 * demo.h - shared pieces of agentbus-demo: the tool catalogue, the agents'
 * roles, and small helpers used by the planner, the agents and the collector.
 *
 * The demo runs one embedded bus with two streams:
 *   "calls"   the planner publishes tool calls (tool.call.<tool>[.<op>]),
 *   "results" the agents answer (tool.result.<tool>) and say goodbye
 *             (agent.<name>.bye).
 * A call's key is its id ("call-000042"); its header "t-sent" holds the
 * CLOCK_MONOTONIC time of the publish, which is consistent across CPUs and
 * processes, so one-way and round-trip latencies can be measured anywhere.
 */
#ifndef AGENTBUS_DEMO_H
#define AGENTBUS_DEMO_H

#include <stddef.h>
#include <stdint.h>

#include "agentbus.h"

#define DEMO_CALLS_STREAM "calls"
#define DEMO_RESULTS_STREAM "results"
#define DEMO_PAYLOAD_MAX 256 /* bytes; every call and answer fits */
#define DEMO_KEY_MAX 32      /* "call-" and the id */

enum demo_tool {
	DEMO_TOOL_SEARCH,
	DEMO_TOOL_FETCH,
	DEMO_TOOL_CALC,
	DEMO_TOOL_COUNT,
};

/* One agent process: who it is and which calls it takes. */
struct demo_agent_spec {
	const char *name;      /* "searcher" */
	const char *filter;    /* subject pattern on the calls stream */
	enum demo_tool tool;   /* the tool it serves */
};

extern const struct demo_agent_spec demo_agents[DEMO_TOOL_COUNT];

/* A tool call, generated from its id alone, so every process can rebuild it. */
struct demo_call {
	uint64_t id;                      /* 1, 2, 3, ... */
	enum demo_tool tool;
	char subject[64];                 /* "tool.call.calc.add" */
	char key[DEMO_KEY_MAX];           /* "call-000042" */
	char payload[DEMO_PAYLOAD_MAX];   /* {"id":42,"op":"add","a":3,"b":4} */
	size_t payload_len;               /* bytes of payload, no NUL */
};

/* Options of one run, set by main() from the command line. */
struct demo_options {
	char bus[AGENTBUS_NAME_MAX + 1];  /* bus name, unique per run */
	uint64_t calls;                   /* tool calls the planner makes */
	uint64_t interval_us;             /* pause between the planner's bursts */
};

/* One sample exchange kept for the story. */
struct demo_sample {
	uint64_t id;                      /* 0 = slot unused */
	char answer[DEMO_PAYLOAD_MAX];    /* the answer's payload */
	uint64_t one_way_ns;              /* planner -> agent */
	uint64_t round_trip_ns;           /* call published -> answer read */
};

#define DEMO_SAMPLES_PER_TOOL 2

/* What the collector saw on "results". */
struct demo_tally {
	uint64_t calls;                   /* calls the planner makes */
	uint8_t *seen;                    /* [calls + 1]: 1 once call id was answered */
	uint64_t answered;                /* distinct calls answered */
	uint64_t duplicates;              /* answers to a call already answered */
	uint64_t wrong;                   /* answers from the wrong agent or with wrong content */
	uint64_t unknown;                 /* records that are neither an answer nor a goodbye */
	uint64_t *one_way_ns;             /* [calls]: one-way latency of each answered call */
	uint64_t *round_trip_ns;          /* [calls]: call -> answer latency */
	uint64_t per_agent[DEMO_TOOL_COUNT];              /* answers by each agent */
	char bye[DEMO_TOOL_COUNT][DEMO_PAYLOAD_MAX];      /* each agent's goodbye ("" = none) */
	unsigned byes;                                    /* goodbyes received */
	struct demo_sample samples[DEMO_TOOL_COUNT][DEMO_SAMPLES_PER_TOOL];
};

/* demo_calls.c */
const char *demo_tool_name(enum demo_tool tool);
void demo_call_make(uint64_t id, struct demo_call *call);
int demo_answer(enum demo_tool tool, const void *payload, size_t payload_len, char *out,
		size_t out_len);
int demo_header_get(const struct agentbus_record *record, const char *name, char *out,
		    size_t out_len);
int demo_header_u64(const struct agentbus_record *record, const char *name, uint64_t *value);
int demo_key_id(const struct agentbus_record *record, uint64_t *id);

/* demo_collector.c */
int demo_tally_init(struct demo_tally *tally, uint64_t calls);
void demo_tally_free(struct demo_tally *tally);
void demo_tally_add(struct demo_tally *tally, const struct agentbus_record *record,
		    uint64_t received_ns);
int demo_tally_ok(const struct demo_tally *tally);
void demo_report(struct demo_tally *tally, agentbus_bus *bus);

/* demo_audit.c */
int demo_audit(agentbus_bus *bus, uint64_t calls);

/* demo.c */
uint64_t demo_now_ns(void);
int demo_wait_byte(int fd, int timeout_ms);

/* demo_planner.c, demo_agent.c: the bodies of the child processes (exit codes) */
int demo_planner_main(const struct demo_options *options, int go_fd);
int demo_agent_main(const struct demo_options *options, const struct demo_agent_spec *spec,
		    int go_fd, int ready_fd);

#endif /* AGENTBUS_DEMO_H */
