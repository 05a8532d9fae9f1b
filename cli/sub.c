/*
 * sub.c - `agentbus sub`: attach a subscription to a stream and print its
 * records, one line each, for humans or as JSON.
 *
 * The command stops after --count records, after --timeout seconds without
 * a record, or on SIGINT/SIGTERM. The signal handler only sets a flag: the
 * loop reads in slices of at most SLICE_MS, so it notices the flag soon and
 * closes the subscription properly instead of dying with it attached.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

/* Longest single blocking read: bounds how late a signal is noticed. */
#define SLICE_MS 200
static const char usage[] =
	"Usage: agentbus sub STREAM [--subject PATTERN]\n"
	"                   [--from-seq N | --from-time TIME | --from-start | --new]\n"
	"                   [--count N] [--timeout SECONDS] [--json] [--bus NAME]\n"
	"\n"
	"Print the records of STREAM as they arrive, one line each:\n"
	"  #12 2026-11-22T18:30:01.123456789Z tool.call.search key=k1 hdr=a:1 (5 bytes) hello\n"
	"The payload is shown when it is UTF-8 text (control characters escaped as\n"
	"\\n, \\t, \\r, \\xHH), else as 'binary' and its first 32 bytes in hex.\n"
	"Records older than the ring are read from the stream's log.\n"
	"\n"
	"Options:\n"
	"  --subject PATTERN   only records whose subject matches PATTERN: '*'\n"
	"                      matches one token, a final '>' the rest (tool.*, agent.>)\n"
	"  --new               start at the next record published (the default)\n"
	"  --from-start        start at the oldest record kept (in the log, else in\n"
	"                      the ring)\n"
	"  --from-seq N        start at sequence number N\n"
	"  --from-time TIME    start at the first record published at or after TIME:\n"
	"                      RFC 3339 (2026-11-22T18:30:00Z, 2026-11-22T18:30:00.5Z,\n"
	"                      2026-11-22T19:30:00+01:00), nanoseconds since 1970, or\n"
	"                      -DURATION for that long ago (-500ms, -30s, -5m, -2h, -7d)\n"
	"  --count N           stop after N records\n"
	"  --timeout SECONDS   stop when SECONDS (e.g. 5 or 0.5) pass without a record\n"
	"  --json              one JSON object per line:\n"
	"                        {\"seq\":12,\"time_ns\":...,\"subject\":\"...\",\"key\":\"k1\",\n"
	"                         \"headers\":{\"a\":\"1\"},\"data\":\"hello\"}\n"
	"                      time_ns: nanoseconds since 1970 (UTC) when the record\n"
	"                      was published; key: null when the record has none. A\n"
	"                      payload (or key) that is not valid UTF-8 comes as\n"
	"                      \"data_base64\" (\"key_base64\") instead of \"data\" (\"key\").\n"
	"                      In the subject and in header names and values, bytes\n"
	"                      that are not UTF-8 become U+FFFD; a header repeated in\n"
	"                      the record is repeated in the object.\n"
	"  --bus NAME          the bus (default: $AGENTBUS_BUS, else \"default\")\n"
	"  -h, --help          show this help\n"
	"\n"
	"Without --count or --timeout it runs until SIGINT or SIGTERM. Stopping for\n"
	"any of these reasons exits 0, or 1 when a record in the log failed its\n"
	"checksum (reported on stderr with its sequence number, and skipped).\n";

enum {
	OPT_SUBJECT = CLI_OPT_FIRST,
	OPT_FROM_SEQ,
	OPT_FROM_START,
	OPT_FROM_TIME,
	OPT_NEW,
	OPT_COUNT,
	OPT_TIMEOUT,
	OPT_JSON,
};

/* What the command line asked for. */
struct sub_args {
	const char *stream;
	struct agentbus_sub_config config;
	int start_options;  /* how many of the --new/--from-* options were given */
	uint64_t count;     /* stop after this many records; 0 = never */
	int64_t timeout_ms; /* stop after this long without a record; -1 = never */
	bool json;
};

/* ------------------------------------------------------------------------ */
/* Command line                                                              */
/* ------------------------------------------------------------------------ */

/* Handle one option of `sub`; 0 or an exit code, reported. */
static int sub_option(struct cli_ctx *ctx, struct sub_args *args, int opt)
{
	switch (opt) {
	case OPT_SUBJECT:
		if (agentbus_pattern_check(optarg, strlen(optarg)) < 0)
			return cli_usage_error(ctx, "invalid --subject '%s': dot-separated tokens, '*' for one token, '>' last for the rest",
					       optarg);
		args->config.filter = optarg;
		return 0;
	case OPT_FROM_SEQ:
		if (cli_parse_u64(optarg, &args->config.start_seq) < 0 || args->config.start_seq == 0)
			return cli_usage_error(ctx, "bad --from-seq '%s': a sequence number, at least 1",
					       optarg);
		args->config.start = AGENTBUS_START_SEQ;
		args->start_options++;
		return 0;
	case OPT_FROM_TIME:
		if (cli_parse_time(optarg, &args->config.start_time_ns) < 0)
			return cli_usage_error(ctx, "bad --from-time '%s': RFC 3339 (2026-11-22T18:30:00Z), nanoseconds since 1970, or -DURATION (-5m)",
					       optarg);
		args->config.start = AGENTBUS_START_TIME;
		args->start_options++;
		return 0;
	case OPT_FROM_START:
	case OPT_NEW:
		args->config.start = opt == OPT_NEW ? AGENTBUS_START_NEW : AGENTBUS_START_OLDEST;
		args->start_options++;
		return 0;
	case OPT_COUNT:
		if (cli_parse_u64(optarg, &args->count) < 0 || args->count == 0)
			return cli_usage_error(ctx, "bad --count '%s': a number of records, at least 1",
					       optarg);
		return 0;
	case OPT_TIMEOUT:
		if (cli_parse_seconds(optarg, &args->timeout_ms) < 0)
			return cli_usage_error(ctx, "bad --timeout '%s': a number of seconds such as 5 or 0.5",
					       optarg);
		return 0;
	case OPT_JSON:
		args->json = true;
		return 0;
	}
	return 0;
}

/* Parse the command line of `sub` into @args; 0 or an exit code. */
static int parse_sub(struct cli_ctx *ctx, int argc, char **argv, struct sub_args *args)
{
	static const struct option options[] = {
		{ "subject", required_argument, NULL, OPT_SUBJECT },
		{ "from-seq", required_argument, NULL, OPT_FROM_SEQ },
		{ "from-start", no_argument, NULL, OPT_FROM_START },
		{ "from-time", required_argument, NULL, OPT_FROM_TIME },
		{ "new", no_argument, NULL, OPT_NEW },
		{ "count", required_argument, NULL, OPT_COUNT },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "json", no_argument, NULL, OPT_JSON },
		CLI_COMMON_OPTIONS,
	};
	int opt, rc;

	args->config.start = AGENTBUS_START_NEW;
	args->timeout_ms = -1;
	while ((opt = cli_next_option(ctx, argc, argv, options)) != -1) {
		if (opt == CLI_OPT_EXIT)
			return ctx->exit_code;
		rc = sub_option(ctx, args, opt);
		if (rc)
			return rc;
	}
	if (args->start_options > 1)
		return cli_usage_error(ctx, "--new, --from-start, --from-seq and --from-time exclude each other");
	rc = cli_positionals(ctx, argc, argv, 1, 1, "STREAM");
	if (rc)
		return rc;
	args->stream = argv[optind];
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Reading                                                                   */
/* ------------------------------------------------------------------------ */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* How long the next blocking read may wait: a slice, less near @deadline;
 * -1 once the deadline (if any, >= 0) has passed. */
static int next_wait_ms(int64_t deadline)
{
	int64_t left;

	if (deadline < 0)
		return SLICE_MS;
	left = deadline - now_ms();
	if (left <= 0)
		return -1;
	return left < SLICE_MS ? (int)left : SLICE_MS;
}

/* Report a failed read or subscribe: @err from the library. */
static int read_error(struct cli_ctx *ctx, const struct sub_args *args, int err)
{
	if (err == AGENTBUS_E_DELETED)
		return cli_fail(ctx, "stream '%s' was deleted", args->stream);
	return cli_fail_code(ctx, err, "cannot read stream '%s'", args->stream);
}

/*
 * A read returned AGENTBUS_E_CORRUPT: if the subscription moved past the
 * bad record (a damaged frame in the log is skipped by the next read),
 * report it on one line and return true to go on. A corruption that does not
 * move (*last_at, the position of the last one, seen again) returns false:
 * reading on would print the same error forever.
 */
static bool corrupt_passed(struct cli_ctx *ctx, agentbus_sub *sub, uint64_t *last_at)
{
	struct agentbus_sub_stats stats;
	char detail[512];

	snprintf(detail, sizeof(detail), "%s", agentbus_last_error());
	agentbus_sub_stats_get(sub, &stats);
	if (stats.next_seq == *last_at)
		return false;
	*last_at = stats.next_seq;
	if (cli_flush_output(ctx) != CLI_GO_ON)
		return false;
	cli_fail(ctx, "%s", detail); /* the library's message names the stream and seq */
	return true;
}

/*
 * Print records until --count, --timeout or a signal. Records already in
 * the ring are taken with a poll and printed through stdio's buffer; only
 * when none is ready is the output flushed and a blocking read started, so
 * a backlog costs no write per record and a live tail shows each at once.
 * A corrupt record in the log is reported and passed, as in `replay`, and
 * makes the exit code 1.
 */
static int read_loop(struct cli_ctx *ctx, const struct sub_args *args, agentbus_sub *sub)
{
	int64_t deadline = args->timeout_ms >= 0 ? now_ms() + args->timeout_ms : -1;
	uint64_t got = 0, corrupt = 0, corrupt_at = 0;
	int rc;

	while (!cli_stop_requested && (args->count == 0 || got < args->count)) {
		struct agentbus_record rec;
		int wait;

		rc = agentbus_sub_poll(sub, &rec);
		if (rc == 0) {
			rc = cli_flush_output(ctx);
			if (rc != CLI_GO_ON)
				return rc;
			wait = next_wait_ms(deadline);
			if (wait < 0)
				break;
			rc = agentbus_sub_read(sub, &rec, wait);
		}
		if (rc == 0 || rc == -EINTR)
			continue;
		if (rc == AGENTBUS_E_CORRUPT && corrupt_passed(ctx, sub, &corrupt_at)) {
			corrupt++;
			continue;
		}
		if (rc < 0)
			return read_error(ctx, args, rc);
		cli_print_record(&rec, args->json);
		got++;
		if (deadline >= 0)
			deadline = now_ms() + args->timeout_ms;
	}
	rc = cli_flush_output(ctx);
	if (rc != CLI_GO_ON)
		return rc;
	return corrupt ? CLI_FAILURE : CLI_OK;
}

/*
 * Report a failed subscribe, naming the oldest sequence number kept (in the
 * log or the ring, whichever reaches further back) for SEQ_GONE.
 */
static int subscribe_error(struct cli_ctx *ctx, const struct sub_args *args,
			   agentbus_stream *stream, int err)
{
	struct agentbus_stream_info info;
	uint64_t oldest;

	if (err == AGENTBUS_E_SEQ_GONE && agentbus_stream_stat(stream, &info) == 0) {
		oldest = info.log_first_seq < info.first_seq ? info.log_first_seq : info.first_seq;
		return cli_fail(ctx, "sequence %llu is no longer kept by stream '%s' (oldest: %llu)",
				(unsigned long long)args->config.start_seq, args->stream,
				(unsigned long long)oldest);
	}
	return read_error(ctx, args, err);
}

/* Open bus, stream and subscription, read, and close them all. */
static int run_sub(struct cli_ctx *ctx, const struct sub_args *args)
{
	agentbus_bus *bus;
	agentbus_stream *stream;
	agentbus_sub *sub;
	int rc = cli_open_bus(ctx, &bus);

	if (rc)
		return rc;
	rc = cli_open_stream(ctx, bus, args->stream, &stream);
	if (rc == 0) {
		rc = agentbus_subscribe(stream, &args->config, &sub);
		if (rc < 0) {
			rc = subscribe_error(ctx, args, stream, rc);
		} else {
			rc = read_loop(ctx, args, sub);
			agentbus_sub_close(sub);
		}
		agentbus_stream_close(stream);
	}
	agentbus_close(bus);
	return rc;
}

/* `agentbus sub STREAM [--subject P] [--from-seq N|--from-time T|--from-start|--new] ...` */
int cli_sub_main(int argc, char **argv)
{
	struct sub_args args = { 0 };
	struct cli_ctx ctx;
	int rc;

	cli_init(&ctx, "sub", usage);
	rc = parse_sub(&ctx, argc, argv, &args);
	if (rc)
		return rc;
	cli_install_stop_signals();
	return run_sub(&ctx, &args);
}
