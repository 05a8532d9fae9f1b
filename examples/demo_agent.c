/*
 * demo_agent.c - an agent process: takes the calls its subject filter
 * selects from "calls", does the work and answers on "results".
 *
 * Every subscription sees every record of a stream; the filter decides which
 * ones this agent is handed, so three agents share one stream of calls
 * without a dispatcher in between. An answer carries the call's key, the
 * agent's name, the call's send time and the one-way delivery time the agent
 * measured. On SIGTERM the agent publishes a goodbye with its subscription's
 * counters and exits.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "demo.h"

#define READ_TIMEOUT_MS 50      /* how often the stop flag is looked at */
#define PUBLISH_TIMEOUT_MS 2000

static volatile sig_atomic_t stop_requested;

static void on_sigterm(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* An agent's handles and counters. */
struct agent {
	const struct demo_agent_spec *spec;
	agentbus_bus *bus;
	agentbus_stream *calls;
	agentbus_stream *results;
	agentbus_sub *sub;
	uint64_t answered;   /* answers published */
	uint64_t rejected;   /* calls that did not parse */
};

/* Publish @payload on "results" as @subject with the call's @key and the
 * given headers. Returns 0 or -1. */
static int publish_result(struct agent *agent, const char *subject, const void *key,
			  size_t key_len, const struct agentbus_header *headers, size_t header_count,
			  const char *payload, size_t payload_len)
{
	struct agentbus_message message = {
		.subject = subject,
		.key = key,
		.key_len = key_len,
		.headers = headers,
		.header_count = header_count,
		.payload = payload,
		.payload_len = payload_len,
	};
	int64_t seq = agentbus_publish(agent->results, &message, PUBLISH_TIMEOUT_MS);

	if (seq < 0) {
		fprintf(stderr, "%s: publish failed: %s (%s)\n", agent->spec->name,
			agentbus_strerror((int)seq), agentbus_last_error());
		return -1;
	}
	return 0;
}

/* Set @header to the NUL-terminated @name and @value. */
static void header_set(struct agentbus_header *header, const char *name, const char *value)
{
	header->name = name;
	header->name_len = (uint16_t)strlen(name);
	header->value = value;
	header->value_len = (uint32_t)strlen(value);
}

/*
 * Answer one call @record, received at @received_ns. A call that does not
 * parse is counted and skipped (a real agent would answer with an error).
 * Returns 0, or -1 when the answer could not be published.
 */
static int handle_call(struct agent *agent, const struct agentbus_record *record,
		       uint64_t received_ns)
{
	struct agentbus_header headers[3];
	char answer[DEMO_PAYLOAD_MAX], subject[64], sent[24], one_way[24];
	uint64_t sent_ns;
	int n;

	n = demo_answer(agent->spec->tool, record->payload, record->payload_len, answer,
			sizeof(answer));
	if (n < 0 || demo_header_u64(record, "t-sent", &sent_ns) != 0) {
		agent->rejected++;
		return 0;
	}
	snprintf(sent, sizeof(sent), "%" PRIu64, sent_ns);
	snprintf(one_way, sizeof(one_way), "%" PRIu64,
		 received_ns > sent_ns ? received_ns - sent_ns : 0);
	snprintf(subject, sizeof(subject), "tool.result.%s", demo_tool_name(agent->spec->tool));
	header_set(&headers[0], "agent", agent->spec->name);
	header_set(&headers[1], "t-sent", sent);
	header_set(&headers[2], "one-way-ns", one_way);
	if (publish_result(agent, subject, record->key, record->key_len, headers, 3, answer,
			   (size_t)n) != 0)
		return -1;
	agent->answered++;
	return 0;
}

/* Read and answer calls until SIGTERM. Returns 0 or -1. */
static int serve(struct agent *agent)
{
	struct agentbus_record record;

	while (!stop_requested) {
		int r = agentbus_sub_read(agent->sub, &record, READ_TIMEOUT_MS);

		if (r == 0 || r == -EINTR)
			continue;
		if (r < 0) {
			fprintf(stderr, "%s: read failed: %s (%s)\n", agent->spec->name,
				agentbus_strerror(r), agentbus_last_error());
			return -1;
		}
		if (handle_call(agent, &record, demo_now_ns()) != 0)
			return -1;
	}
	return 0;
}

/* Publish "agent.<name>.bye" with this agent's counters. Returns 0 or -1. */
static int say_goodbye(struct agent *agent)
{
	struct agentbus_sub_stats stats;
	char subject[64], payload[DEMO_PAYLOAD_MAX];
	int n;

	agentbus_sub_stats_get(agent->sub, &stats);
	snprintf(subject, sizeof(subject), "agent.%s.bye", agent->spec->name);
	n = snprintf(payload, sizeof(payload),
		     "{\"answered\":%" PRIu64 ",\"rejected\":%" PRIu64 ",\"delivered\":%" PRIu64
		     ",\"filtered\":%" PRIu64 ",\"gaps\":%" PRIu64 "}",
		     agent->answered, agent->rejected, stats.delivered, stats.filtered, stats.gaps);
	return publish_result(agent, subject, NULL, 0, NULL, 0, payload, (size_t)n);
}

/* Open the bus, both streams and the filtered subscription. Returns 0 or -1. */
static int agent_attach(struct agent *agent, const char *bus_name)
{
	struct agentbus_sub_config config = {
		.filter = agent->spec->filter,
		/* The streams are new: the oldest record is the first call. */
		.start = AGENTBUS_START_OLDEST,
		.wait = AGENTBUS_WAIT_SPIN_SLEEP,
	};

	if (agentbus_open(&agent->bus, bus_name) < 0)
		return -1;
	if (agentbus_stream_open(agent->bus, DEMO_CALLS_STREAM, &agent->calls) < 0)
		return -1;
	if (agentbus_stream_open(agent->bus, DEMO_RESULTS_STREAM, &agent->results) < 0)
		return -1;
	return agentbus_subscribe(agent->calls, &config, &agent->sub) < 0 ? -1 : 0;
}

/* Close whatever agent_attach() opened. */
static void agent_detach(struct agent *agent)
{
	if (agent->sub)
		agentbus_sub_close(agent->sub);
	if (agent->results)
		agentbus_stream_close(agent->results);
	if (agent->calls)
		agentbus_stream_close(agent->calls);
	if (agent->bus)
		agentbus_close(agent->bus);
}

/*
 * Body of an agent process. Waits for the go byte on @go_fd, subscribes,
 * reports readiness with a byte on @ready_fd, serves until SIGTERM, and
 * returns the exit code.
 */
int demo_agent_main(const struct demo_options *options, const struct demo_agent_spec *spec,
		    int go_fd, int ready_fd)
{
	struct sigaction sa = { .sa_handler = on_sigterm };
	struct agent agent = { .spec = spec };
	int rc = 1;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	if (demo_wait_byte(go_fd, 30000) != 1)
		return 1;
	if (agent_attach(&agent, options->bus) != 0) {
		fprintf(stderr, "%s: %s\n", spec->name, agentbus_last_error());
		goto out;
	}
	if (write(ready_fd, "r", 1) != 1)
		goto out;
	if (serve(&agent) == 0 && say_goodbye(&agent) == 0)
		rc = 0;
out:
	agent_detach(&agent);
	return rc;
}
