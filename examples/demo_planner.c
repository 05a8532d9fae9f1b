/*
 * demo_planner.c - the planner process: publishes tool calls on "calls".
 *
 * Like an LLM planner that fans a step out into a few tool calls at once, it
 * publishes bursts of 1-4 calls, one burst every interval_us. It does not
 * wait for answers (the collector matches them), and it paces itself by an
 * absolute schedule, so a slow moment does not stretch the whole run.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "demo.h"

#define PUBLISH_TIMEOUT_MS 2000 /* wait this long for ring room before giving up */

/* Publish call @id with its send time in header "t-sent". Returns 0 or -1. */
static int publish_call(agentbus_stream *calls, uint64_t id)
{
	struct demo_call call;
	struct agentbus_header header;
	struct agentbus_message message;
	char sent[24];
	int64_t seq;

	demo_call_make(id, &call);
	memset(&message, 0, sizeof(message));
	message.subject = call.subject;
	message.key = call.key;
	message.key_len = strlen(call.key);
	message.headers = &header;
	message.header_count = 1;
	message.payload = call.payload;
	message.payload_len = call.payload_len;
	header.name = "t-sent";
	header.name_len = 6;
	header.value = sent;
	/* Taken last, so the latency covers the publish itself and no more. */
	header.value_len = (uint32_t)snprintf(sent, sizeof(sent), "%" PRIu64, demo_now_ns());
	seq = agentbus_publish(calls, &message, PUBLISH_TIMEOUT_MS);
	if (seq < 0) {
		fprintf(stderr, "planner: publish of %s failed: %s (%s)\n", call.key,
			agentbus_strerror((int)seq), agentbus_last_error());
		return -1;
	}
	return 0;
}

/* Sleep until @deadline_ns of CLOCK_MONOTONIC. */
static void sleep_until(uint64_t deadline_ns)
{
	struct timespec ts = {
		.tv_sec = (time_t)(deadline_ns / 1000000000u),
		.tv_nsec = (long)(deadline_ns % 1000000000u),
	};

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0)
		;
}

/* Publish every call in bursts. Returns 0 or -1. */
static int run_plan(agentbus_stream *calls, const struct demo_options *options)
{
	uint64_t next_burst = demo_now_ns();
	uint64_t id = 1;
	unsigned step = 0;

	while (id <= options->calls) {
		/* Burst sizes 1,3,2,4 repeat: 2.5 calls per step on average. */
		static const unsigned sizes[] = { 1, 3, 2, 4 };
		unsigned burst = sizes[step++ % 4];

		for (unsigned i = 0; i < burst && id <= options->calls; i++, id++)
			if (publish_call(calls, id) != 0)
				return -1;
		next_burst += options->interval_us * 1000u;
		sleep_until(next_burst);
	}
	return 0;
}

/*
 * Body of the planner process. Waits for the go byte on @go_fd (sent once
 * every agent listens), publishes all calls, and returns the exit code.
 */
int demo_planner_main(const struct demo_options *options, int go_fd)
{
	agentbus_bus *bus;
	agentbus_stream *calls;
	int err, rc;

	if (demo_wait_byte(go_fd, 30000) != 1)
		return 1; /* the supervisor gave up before starting us */
	err = agentbus_open(&bus, options->bus);
	if (err < 0) {
		fprintf(stderr, "planner: %s\n", agentbus_last_error());
		return 1;
	}
	err = agentbus_stream_open(bus, DEMO_CALLS_STREAM, &calls);
	if (err < 0) {
		fprintf(stderr, "planner: %s\n", agentbus_last_error());
		agentbus_close(bus);
		return 1;
	}
	rc = run_plan(calls, options) == 0 ? 0 : 1;
	agentbus_stream_close(calls);
	agentbus_close(bus);
	return rc;
}
