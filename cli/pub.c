/*
 * pub.c - `agentbus pub`: publish one record (or the same record N times)
 * to a stream and print the sequence number of each.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* How long a publish waits for room when subscriptions hold the ring full. */
#define PUBLISH_TIMEOUT_MS 5000

static const char usage[] =
	"Usage: agentbus pub STREAM SUBJECT [DATA] [--key K] [--header NAME=VALUE]...\n"
	"                    [--count N] [--durability memory|written|synced]\n"
	"                    [--bus NAME]\n"
	"\n"
	"Publish a record with subject SUBJECT (dot-separated tokens such as\n"
	"tool.call.search) to STREAM and print its sequence number. The payload is\n"
	"DATA, or all of standard input when DATA is absent (up to the stream's\n"
	"max record). Use -- before a DATA that starts with '-'.\n"
	"\n"
	"Options:\n"
	"  --key K               the record's key\n"
	"  --header NAME=VALUE   add a header (repeatable; VALUE may be empty)\n"
	"  --count N             publish the same record N times, printing each\n"
	"                        sequence number on its own line (default 1)\n"
	"  --durability LEVEL    return only once each record is in the ring\n"
	"                        (memory), written to the log (written) or synced\n"
	"                        to disk (synced); default: the stream's setting\n"
	"  --bus NAME            the bus (default: $AGENTBUS_BUS, else \"default\")\n"
	"  -h, --help            show this help\n"
	"\n"
	"A publish waits up to 5 s for room when subscriptions have not yet read\n"
	"the oldest records of a full ring, and up to 5 s in all for its\n"
	"durability, then fails (exit 1). A record that did not reach its\n"
	"durability is still published and reaches the log once the fault clears.\n"
	"When the reader of the output goes away (| head -1), every record is\n"
	"still published.\n";

enum {
	OPT_KEY = CLI_OPT_FIRST,
	OPT_HEADER,
	OPT_COUNT,
	OPT_DURABILITY,
};

/* What the command line asked for. */
struct pub_args {
	const char *stream;
	struct agentbus_message message;
	struct agentbus_header *headers; /* malloc'd, message.headers points here */
	size_t header_count;
	uint64_t count;          /* records to publish */
	enum agentbus_durability durability; /* DEFAULT: the stream's */
	bool data_from_stdin;
	void *stdin_data;        /* malloc'd payload read from stdin */
};

/* Add the header of "--header NAME=VALUE" to @args; 0 or CLI_USAGE, reported. */
static int add_header(struct cli_ctx *ctx, struct pub_args *args, const char *text)
{
	const char *equals = strchr(text, '=');
	struct agentbus_header *headers;
	size_t name_len = equals ? (size_t)(equals - text) : 0;

	if (!equals || name_len == 0 || name_len > 255)
		return cli_usage_error(ctx, "bad --header '%s': expected NAME=VALUE with a 1-255 byte NAME",
				       text);
	headers = realloc(args->headers, (args->header_count + 1) * sizeof(*headers));
	if (!headers)
		return cli_fail(ctx, "out of memory");
	headers[args->header_count++] = (struct agentbus_header){
		.name = text,
		.name_len = (uint16_t)name_len,
		.value = equals + 1,
		.value_len = (uint32_t)strlen(equals + 1),
	};
	args->headers = headers;
	return 0;
}

/* Handle one option of `pub`; 0 or an exit code, reported. */
static int pub_option(struct cli_ctx *ctx, struct pub_args *args, int opt)
{
	switch (opt) {
	case OPT_KEY:
		if (!optarg[0])
			return cli_usage_error(ctx, "--key must not be empty");
		args->message.key = optarg;
		args->message.key_len = strlen(optarg);
		return 0;
	case OPT_HEADER:
		return add_header(ctx, args, optarg);
	case OPT_COUNT:
		if (cli_parse_u64(optarg, &args->count) < 0 || args->count == 0)
			return cli_usage_error(ctx, "bad --count '%s': a number of records, at least 1",
					       optarg);
		return 0;
	case OPT_DURABILITY:
		if (cli_parse_durability(optarg, &args->durability) < 0)
			return cli_usage_error(ctx, "bad --durability '%s': memory, written or synced",
					       optarg);
		return 0;
	}
	return 0;
}

/* Parse the command line of `pub` into @args; 0 or an exit code. */
static int parse_pub(struct cli_ctx *ctx, int argc, char **argv, struct pub_args *args)
{
	static const struct option options[] = {
		{ "key", required_argument, NULL, OPT_KEY },
		{ "header", required_argument, NULL, OPT_HEADER },
		{ "count", required_argument, NULL, OPT_COUNT },
		{ "durability", required_argument, NULL, OPT_DURABILITY },
		CLI_COMMON_OPTIONS,
	};
	int opt, rc;

	args->count = 1;
	while ((opt = cli_next_option(ctx, argc, argv, options)) != -1) {
		if (opt == CLI_OPT_EXIT)
			return ctx->exit_code;
		rc = pub_option(ctx, args, opt);
		if (rc)
			return rc;
	}
	rc = cli_positionals(ctx, argc, argv, 2, 3, argc - optind < 1 ? "STREAM" : "SUBJECT");
	if (rc)
		return rc;
	args->stream = argv[optind];
	args->message.subject = argv[optind + 1];
	args->message.subject_len = strlen(args->message.subject);
	if (agentbus_subject_check(args->message.subject, args->message.subject_len) < 0)
		return cli_usage_error(ctx, "invalid subject '%s': 1-255 bytes of dot-separated tokens without spaces, '*' or '>'",
				       args->message.subject);
	args->message.headers = args->headers;
	args->message.header_count = args->header_count;
	args->data_from_stdin = argc - optind < 3;
	if (!args->data_from_stdin) {
		args->message.payload = argv[optind + 2];
		args->message.payload_len = strlen(argv[optind + 2]);
	}
	return 0;
}

/*
 * Read all of standard input, at most @limit bytes, into a malloc'd buffer.
 * Returns the length, -1 (errno set) on a read error, or -2 when there is
 * more than @limit.
 */
static ssize_t read_stdin(uint64_t limit, void **data)
{
	size_t size = 0, used = 0;
	char *buf = NULL;

	for (;;) {
		ssize_t n;

		if (used == size) {
			/* Grow in doubling steps up to limit + 1: that extra byte tells "too much". */
			size_t want = size ? size * 2 : 65536;
			char *bigger;

			if (want > limit + 1)
				want = limit + 1;
			if (want <= used)
				break;
			bigger = realloc(buf, want);
			if (!bigger)
				goto fail;
			buf = bigger;
			size = want;
		}
		n = read(STDIN_FILENO, buf + used, size - used);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto fail;
		if (n == 0)
			break;
		used += (size_t)n;
	}
	if (used > limit) {
		free(buf);
		return -2;
	}
	*data = buf;
	return (ssize_t)used;
fail:
	free(buf);
	return -1;
}

/* Take the payload from standard input; 0 or an exit code, reported. */
static int load_stdin(struct cli_ctx *ctx, struct pub_args *args, agentbus_stream *stream)
{
	struct agentbus_stream_info info;
	ssize_t len;
	int rc = agentbus_stream_stat(stream, &info);

	if (rc < 0)
		return cli_fail_code(ctx, rc, "cannot read stream '%s'", args->stream);
	len = read_stdin(info.max_record, &args->stdin_data);
	if (len == -2)
		return cli_fail(ctx, "standard input holds more than the max record of stream '%s' (%llu bytes)",
				args->stream, (unsigned long long)info.max_record);
	if (len < 0)
		return cli_fail(ctx, "cannot read standard input: %s", strerror(errno));
	args->message.payload = args->stdin_data;
	args->message.payload_len = (size_t)len;
	return 0;
}

/*
 * Refuse --durability synced on a stream that never syncs before anything
 * is published: the library finds out only after the record is in the ring.
 */
static int check_durability(struct cli_ctx *ctx, struct pub_args *args, agentbus_stream *stream)
{
	struct agentbus_stream_info info;
	int rc;

	if (args->durability != AGENTBUS_DURABILITY_SYNCED)
		return 0;
	rc = agentbus_stream_stat(stream, &info);
	if (rc < 0)
		return cli_fail_code(ctx, rc, "cannot read stream '%s'", args->stream);
	if (info.config.fsync == AGENTBUS_FSYNC_NEVER)
		return cli_fail(ctx, "stream '%s' never syncs its log (fsync never): durability synced cannot be reached",
				args->stream);
	return 0;
}

/* Report a failed publish of the @done-th record; returns CLI_FAILURE. */
static int publish_error(struct cli_ctx *ctx, struct pub_args *args, int64_t err, uint64_t done)
{
	const char *detail = agentbus_last_error();

	if (err == AGENTBUS_E_BACKPRESSURE)
		return cli_fail(ctx, "stream '%s' is full of records subscriptions have not read (waited %d ms; %llu of %llu published)",
				args->stream, PUBLISH_TIMEOUT_MS, (unsigned long long)done,
				(unsigned long long)args->count);
	if (!detail || !detail[0])
		detail = agentbus_strerror((int)err);
	if (err == AGENTBUS_E_TIMEOUT)
		return cli_fail(ctx, "record published to stream '%s' but not %s within %d ms: %s",
				args->stream, cli_durability_name(args->durability),
				PUBLISH_TIMEOUT_MS, detail);
	return cli_fail_code(ctx, (int)err, "cannot publish to stream '%s'", args->stream);
}

/*
 * Publish the record args->count times, printing each sequence number. A
 * reader of the numbers that goes away (`| head -1`) does not stop the
 * publishing: the records are what was asked for, the numbers only a report.
 */
static int publish_all(struct cli_ctx *ctx, struct pub_args *args, agentbus_stream *stream)
{
	int rc = check_durability(ctx, args, stream);

	if (rc)
		return rc;
	for (uint64_t i = 0; i < args->count; i++) {
		int64_t seq = agentbus_publish_durable(stream, &args->message, 1,
						       PUBLISH_TIMEOUT_MS, args->durability);

		if (seq < 0)
			return publish_error(ctx, args, seq, i);
		printf("%lld\n", (long long)seq);
	}
	return 0;
}

/* Open the bus and the stream, then publish; 0 or an exit code. */
static int run_pub(struct cli_ctx *ctx, struct pub_args *args)
{
	agentbus_bus *bus;
	agentbus_stream *stream;
	int rc = cli_open_bus(ctx, &bus);

	if (rc)
		return rc;
	rc = cli_open_stream(ctx, bus, args->stream, &stream);
	if (rc == 0) {
		if (args->data_from_stdin)
			rc = load_stdin(ctx, args, stream);
		if (rc == 0)
			rc = publish_all(ctx, args, stream);
		agentbus_stream_close(stream);
	}
	agentbus_close(bus);
	return rc;
}

/* `agentbus pub STREAM SUBJECT [DATA] [--key K] [--header N=V]... [--count N]` */
int cli_pub_main(int argc, char **argv)
{
	struct pub_args args = { 0 };
	struct cli_ctx ctx;
	int rc;

	cli_init(&ctx, "pub", usage);
	rc = parse_pub(&ctx, argc, argv, &args);
	if (rc == 0)
		rc = run_pub(&ctx, &args);
	free(args.headers);
	free(args.stdin_data);
	return cli_finish_output(&ctx, rc);
}
