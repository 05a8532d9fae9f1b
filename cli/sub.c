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
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

/* Longest single blocking read: bounds how late a signal is noticed. */
#define SLICE_MS 200
/* Binary payloads, keys and header values show at most this many bytes in hex. */
#define HEX_MAX 32

/* Returned by flush_output() when all is well. */
#define SUB_GO_ON (-1)

static const char usage[] =
	"Usage: agentbus sub STREAM [--subject PATTERN] [--from-seq N | --from-start | --new]\n"
	"                   [--count N] [--timeout SECONDS] [--json] [--bus NAME]\n"
	"\n"
	"Print the records of STREAM as they arrive, one line each:\n"
	"  #12 2026-11-22T18:30:01.123456789Z tool.call.search key=k1 hdr=a:1 (5 bytes) hello\n"
	"The payload is shown when it is UTF-8 text (control characters escaped as\n"
	"\\n, \\t, \\r, \\xHH), else as 'binary' and its first 32 bytes in hex.\n"
	"\n"
	"Options:\n"
	"  --subject PATTERN   only records whose subject matches PATTERN: '*'\n"
	"                      matches one token, a final '>' the rest (tool.*, agent.>)\n"
	"  --new               start at the next record published (the default)\n"
	"  --from-start        start at the oldest record still in the ring\n"
	"  --from-seq N        start at sequence number N\n"
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
	"any of these reasons exits 0.\n";

enum {
	OPT_SUBJECT = CLI_OPT_FIRST,
	OPT_FROM_SEQ,
	OPT_FROM_START,
	OPT_NEW,
	OPT_COUNT,
	OPT_TIMEOUT,
	OPT_JSON,
};

/* What the command line asked for. */
struct sub_args {
	const char *stream;
	struct agentbus_sub_config config;
	int start_options;  /* how many of --new/--from-start/--from-seq were given */
	uint64_t count;     /* stop after this many records; 0 = never */
	int64_t timeout_ms; /* stop after this long without a record; -1 = never */
	bool json;
};

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

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
		return cli_usage_error(ctx, "--new, --from-start and --from-seq exclude each other");
	rc = cli_positionals(ctx, argc, argv, 1, 1, "STREAM");
	if (rc)
		return rc;
	args->stream = argv[optind];
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Output                                                                    */
/* ------------------------------------------------------------------------ */

/* Bytes for a human: as text when they are text, else "0x" and hex. */
static void print_bytes(const void *data, size_t len)
{
	if (cli_is_text(data, len)) {
		cli_print_text(stdout, data, len);
	} else {
		fputs("0x", stdout);
		cli_print_hex(stdout, data, len, HEX_MAX);
	}
}

/* One record on one line, for a human (the format of the usage text). */
static void print_record_text(const struct agentbus_record *rec)
{
	struct agentbus_header header;
	uint32_t cursor = 0;
	char time[64];
	int rc;

	cli_format_time(time, sizeof(time), rec->time_ns);
	printf("#%llu %s ", (unsigned long long)rec->seq, time);
	cli_print_text(stdout, rec->subject, rec->subject_len);
	if (rec->key_len) {
		fputs(" key=", stdout);
		print_bytes(rec->key, rec->key_len);
	}
	while ((rc = agentbus_header_next(rec, &cursor, &header)) == 1) {
		fputs(" hdr=", stdout);
		print_bytes(header.name, header.name_len);
		fputc(':', stdout);
		print_bytes(header.value, header.value_len);
	}
	if (rc < 0)
		fputs(" hdr=<corrupt>", stdout);
	printf(" (%u bytes)", rec->payload_len);
	if (rec->payload_len && cli_is_text(rec->payload, rec->payload_len)) {
		fputc(' ', stdout);
		cli_print_text(stdout, rec->payload, rec->payload_len);
	} else if (rec->payload_len) {
		fputs(" binary ", stdout);
		cli_print_hex(stdout, rec->payload, rec->payload_len, HEX_MAX);
	}
	fputc('\n', stdout);
}

/* ,"NAME":"..." when @data is UTF-8, else ,"NAME_base64":"..." */
static void print_json_bytes(const char *name, const void *data, size_t len)
{
	if (cli_utf8_valid(data, len)) {
		printf(",\"%s\":", name);
		cli_print_json_string(stdout, data, len);
	} else {
		printf(",\"%s_base64\":\"", name);
		cli_print_base64(stdout, data, len);
		fputc('"', stdout);
	}
}

/* The headers of @rec as a JSON object; stops quietly at a corrupt entry. */
static void print_json_headers(const struct agentbus_record *rec)
{
	struct agentbus_header header;
	uint32_t cursor = 0;
	bool first = true;

	fputs(",\"headers\":{", stdout);
	while (agentbus_header_next(rec, &cursor, &header) == 1) {
		if (!first)
			fputc(',', stdout);
		first = false;
		cli_print_json_string(stdout, header.name, header.name_len);
		fputc(':', stdout);
		cli_print_json_string(stdout, header.value, header.value_len);
	}
	fputc('}', stdout);
}

/* One record as one JSON object on one line (the format of the usage text). */
static void print_record_json(const struct agentbus_record *rec)
{
	printf("{\"seq\":%llu,\"time_ns\":%llu,\"subject\":", (unsigned long long)rec->seq,
	       (unsigned long long)rec->time_ns);
	cli_print_json_string(stdout, rec->subject, rec->subject_len);
	if (rec->key_len)
		print_json_bytes("key", rec->key, rec->key_len);
	else
		fputs(",\"key\":null", stdout);
	print_json_headers(rec);
	print_json_bytes("data", rec->payload, rec->payload_len);
	fputs("}\n", stdout);
}

/*
 * Push what was printed to standard output. Returns SUB_GO_ON, or the exit
 * code to stop with: a reader that went away (EPIPE, as in `sub | head`) is
 * a normal end, any other write error a failure.
 */
static int flush_output(struct cli_ctx *ctx)
{
	if (fflush(stdout) == 0)
		return SUB_GO_ON;
	if (errno == EPIPE)
		return CLI_OK;
	return cli_fail(ctx, "cannot write to standard output: %s", strerror(errno));
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
 * Print records until --count, --timeout or a signal. Records already in
 * the ring are taken with a poll and printed through stdio's buffer; only
 * when none is ready is the output flushed and a blocking read started, so
 * a backlog costs no write per record and a live tail shows each at once.
 */
static int read_loop(struct cli_ctx *ctx, const struct sub_args *args, agentbus_sub *sub)
{
	int64_t deadline = args->timeout_ms >= 0 ? now_ms() + args->timeout_ms : -1;
	uint64_t got = 0;
	int rc;

	while (!stop_requested && (args->count == 0 || got < args->count)) {
		struct agentbus_record rec;
		int wait;

		rc = agentbus_sub_poll(sub, &rec);
		if (rc == 0) {
			rc = flush_output(ctx);
			if (rc != SUB_GO_ON)
				return rc;
			wait = next_wait_ms(deadline);
			if (wait < 0)
				break;
			rc = agentbus_sub_read(sub, &rec, wait);
		}
		if (rc == 0 || rc == -EINTR)
			continue;
		if (rc < 0)
			return read_error(ctx, args, rc);
		if (args->json)
			print_record_json(&rec);
		else
			print_record_text(&rec);
		got++;
		if (deadline >= 0)
			deadline = now_ms() + args->timeout_ms;
	}
	rc = flush_output(ctx);
	return rc == SUB_GO_ON ? CLI_OK : rc;
}

/* Report a failed subscribe, naming the oldest sequence number for SEQ_GONE. */
static int subscribe_error(struct cli_ctx *ctx, const struct sub_args *args,
			   agentbus_stream *stream, int err)
{
	struct agentbus_stream_info info;

	if (err == AGENTBUS_E_SEQ_GONE && agentbus_stream_stat(stream, &info) == 0)
		return cli_fail(ctx, "sequence %llu is no longer in the ring of stream '%s' (oldest: %llu)",
				(unsigned long long)args->config.start_seq, args->stream,
				(unsigned long long)info.first_seq);
	return read_error(ctx, args, err);
}

/* Stop on SIGINT/SIGTERM through the flag; see a closed pipe as EPIPE. */
static void install_signals(void)
{
	struct sigaction action;

	memset(&action, 0, sizeof(action));
	action.sa_handler = on_stop_signal; /* no SA_RESTART: a sleeping read returns */
	sigemptyset(&action.sa_mask);
	sigaction(SIGINT, &action, NULL);
	sigaction(SIGTERM, &action, NULL);
	signal(SIGPIPE, SIG_IGN);
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

/* `agentbus sub STREAM [--subject P] [--from-seq N|--from-start|--new] ...` */
int cli_sub_main(int argc, char **argv)
{
	struct sub_args args = { 0 };
	struct cli_ctx ctx;
	int rc;

	cli_init(&ctx, "sub", usage);
	rc = parse_sub(&ctx, argc, argv, &args);
	if (rc)
		return rc;
	install_signals();
	return run_sub(&ctx, &args);
}
