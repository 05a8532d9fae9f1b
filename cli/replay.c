/*
 * replay.c - `agentbus replay`: print the records of a stream's log, from a
 * sequence number or a time, at full speed or at the pace they were
 * published, in the format of `agentbus sub`.
 *
 * The log is read straight from its files. When a daemon serves the bus the
 * replay goes through its handle, which tells where the log is and where the
 * spill writer has got to; without one (or with --data-dir) the files are
 * read as they are, so a log can be replayed after the daemon stopped or on
 * a copy of the data directory.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

static const char usage[] =
	"Usage: agentbus replay STREAM [--from-seq N | --from-time TIME | --from-start]\n"
	"                       [--to-seq N] [--subject PATTERN] [--rate max|original]\n"
	"                       [--json] [--data-dir DIR] [--bus NAME]\n"
	"\n"
	"Print the records of STREAM's log, oldest first, in the format of\n"
	"'agentbus sub' (text, or JSON with --json), and stop at the end of what\n"
	"is written. The daemon need not run.\n"
	"\n"
	"Options:\n"
	"  --from-start        start at the oldest record in the log (the default)\n"
	"  --from-seq N        start at sequence number N\n"
	"  --from-time TIME    start at the first record published at or after TIME:\n"
	"                      RFC 3339 (2026-11-22T18:30:00Z, with a fraction or a\n"
	"                      +HH:MM zone too), nanoseconds since 1970, or -DURATION\n"
	"                      for that long ago (-500ms, -30s, -5m, -2h, -7d)\n"
	"  --to-seq N          stop after sequence number N\n"
	"  --subject PATTERN   only records whose subject matches PATTERN ('*' one\n"
	"                      token, a final '>' the rest)\n"
	"  --rate RATE         max (as fast as possible, the default) or original\n"
	"                      (with the gaps there were between the records)\n"
	"  --json              one JSON object per line, as 'agentbus sub --json'\n"
	"  --data-dir DIR      read the logs under DIR directly, even when a daemon\n"
	"                      runs (default: the daemon's; without a daemon\n"
	"                      $AGENTBUS_DATA, else $XDG_DATA_HOME/agentbus, else\n"
	"                      ~/.local/share/agentbus)\n"
	"  --bus NAME          the bus (default: $AGENTBUS_BUS, else \"default\")\n"
	"  -h, --help          show this help\n"
	"\n"
	"A record that fails its checksum is reported on stderr with its sequence\n"
	"number and skipped; the replay goes on and then exits 1.\n";

enum {
	OPT_FROM_SEQ = CLI_OPT_FIRST,
	OPT_FROM_TIME,
	OPT_FROM_START,
	OPT_TO_SEQ,
	OPT_SUBJECT,
	OPT_RATE,
	OPT_JSON,
	OPT_DATA_DIR,
};

/* What the command line asked for. */
struct replay_args {
	const char *stream;
	struct agentbus_replay_config config;
	int start_options;  /* how many of the --from-* options were given */
	bool json;
	bool data_dir_given;
	char data_dir[4096];
};

/* Handle one option of `replay` that picks where to start; 0 or CLI_USAGE. */
static int start_option(struct cli_ctx *ctx, struct replay_args *args, int opt)
{
	struct agentbus_replay_config *c = &args->config;

	args->start_options++;
	if (opt == OPT_FROM_START) {
		c->start = AGENTBUS_START_OLDEST;
	} else if (opt == OPT_FROM_SEQ) {
		if (cli_parse_u64(optarg, &c->start_seq) < 0 || c->start_seq == 0)
			return cli_usage_error(ctx, "bad --from-seq '%s': a sequence number, at least 1",
					       optarg);
		c->start = AGENTBUS_START_SEQ;
	} else {
		if (cli_parse_time(optarg, &c->start_time_ns) < 0)
			return cli_usage_error(ctx, "bad --from-time '%s': RFC 3339 (2026-11-22T18:30:00Z), nanoseconds since 1970, or -DURATION (-5m)",
					       optarg);
		c->start = AGENTBUS_START_TIME;
	}
	return 0;
}

/* Handle one option of `replay`; 0 or an exit code, reported. */
static int replay_option(struct cli_ctx *ctx, struct replay_args *args, int opt)
{
	switch (opt) {
	case OPT_FROM_SEQ:
	case OPT_FROM_TIME:
	case OPT_FROM_START:
		return start_option(ctx, args, opt);
	case OPT_TO_SEQ:
		if (cli_parse_u64(optarg, &args->config.to_seq) < 0 || args->config.to_seq == 0)
			return cli_usage_error(ctx, "bad --to-seq '%s': a sequence number, at least 1",
					       optarg);
		return 0;
	case OPT_SUBJECT:
		if (agentbus_pattern_check(optarg, strlen(optarg)) < 0)
			return cli_usage_error(ctx, "invalid --subject '%s': dot-separated tokens, '*' for one token, '>' last for the rest",
					       optarg);
		args->config.filter = optarg;
		return 0;
	case OPT_RATE:
		if (strcmp(optarg, "max") == 0)
			args->config.rate = AGENTBUS_RATE_MAX;
		else if (strcmp(optarg, "original") == 0)
			args->config.rate = AGENTBUS_RATE_ORIGINAL;
		else
			return cli_usage_error(ctx, "bad --rate '%s': max or original", optarg);
		return 0;
	case OPT_JSON:
		args->json = true;
		return 0;
	case OPT_DATA_DIR:
		args->data_dir_given = true;
		return cli_data_dir(ctx, optarg, args->data_dir, sizeof(args->data_dir));
	}
	return 0;
}

/* Parse the command line of `replay` into @args; 0 or an exit code. */
static int parse_replay(struct cli_ctx *ctx, int argc, char **argv, struct replay_args *args)
{
	static const struct option options[] = {
		{ "from-seq", required_argument, NULL, OPT_FROM_SEQ },
		{ "from-time", required_argument, NULL, OPT_FROM_TIME },
		{ "from-start", no_argument, NULL, OPT_FROM_START },
		{ "to-seq", required_argument, NULL, OPT_TO_SEQ },
		{ "subject", required_argument, NULL, OPT_SUBJECT },
		{ "rate", required_argument, NULL, OPT_RATE },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "data-dir", required_argument, NULL, OPT_DATA_DIR },
		CLI_COMMON_OPTIONS,
	};
	int opt, rc;

	args->config.start = AGENTBUS_START_OLDEST;
	while ((opt = cli_next_option(ctx, argc, argv, options)) != -1) {
		if (opt == CLI_OPT_EXIT)
			return ctx->exit_code;
		rc = replay_option(ctx, args, opt);
		if (rc)
			return rc;
	}
	if (args->start_options > 1)
		return cli_usage_error(ctx, "--from-start, --from-seq and --from-time exclude each other");
	if (args->config.start == AGENTBUS_START_SEQ && args->config.to_seq &&
	    args->config.to_seq < args->config.start_seq)
		return cli_usage_error(ctx, "--to-seq %llu is before --from-seq %llu",
				       (unsigned long long)args->config.to_seq,
				       (unsigned long long)args->config.start_seq);
	rc = cli_positionals(ctx, argc, argv, 1, 1, "STREAM");
	if (rc)
		return rc;
	args->stream = argv[optind];
	return 0;
}

/*
 * Print records until the end of the log, --to-seq or a signal. A corrupt
 * record is one line on stderr and the replay goes on; it makes the exit
 * code 1. At the original rate each record is flushed as it comes, else
 * stdio's buffer batches the writes.
 */
static int replay_loop(struct cli_ctx *ctx, const struct replay_args *args,
		       agentbus_replay *replay)
{
	bool live = args->config.rate == AGENTBUS_RATE_ORIGINAL;
	int rc, corrupt = 0;

	while (!cli_stop_requested) {
		struct agentbus_record rec;

		rc = agentbus_replay_next(replay, &rec);
		if (rc == 0)
			break;
		if (rc == AGENTBUS_E_CORRUPT) {
			rc = cli_flush_output(ctx); /* the error goes after what came before it */
			if (rc != CLI_GO_ON)
				return rc;
			cli_fail(ctx, "stream '%s': %s", args->stream, agentbus_last_error());
			corrupt++;
			continue;
		}
		if (rc < 0)
			return cli_fail_code(ctx, rc, "cannot read the log of stream '%s'", args->stream);
		cli_print_record(&rec, args->json);
		if (live && (rc = cli_flush_output(ctx)) != CLI_GO_ON)
			return rc;
	}
	rc = cli_flush_output(ctx);
	if (rc != CLI_GO_ON)
		return rc;
	return corrupt ? CLI_FAILURE : CLI_OK;
}

/* Report a failed agentbus_replay_open(); returns the exit code. */
static int open_error(struct cli_ctx *ctx, const struct replay_args *args, int err)
{
	if (err == AGENTBUS_E_NOT_FOUND)
		return cli_fail(ctx, "stream '%s' has no log: %s", args->stream,
				agentbus_last_error());
	return cli_fail_code(ctx, err, "cannot replay stream '%s'", args->stream);
}

/*
 * Find the log: through the daemon of the bus when one runs and no
 * --data-dir was given, else from the files: under --data-dir (in
 * args->config, so that it wins over the data directory the bus's shared
 * memory names), else where the library finds them. The bus name reaches
 * the library through $AGENTBUS_BUS (it has no other way to take it when
 * there is no bus handle). Sets *bus (NULL for files only); 0 or an exit
 * code, reported.
 */
static int locate_log(struct cli_ctx *ctx, struct replay_args *args, agentbus_bus **bus)
{
	struct stat st;
	int rc;

	*bus = NULL;
	if (args->data_dir_given) {
		/* Else a mistyped directory reads as "stream has no log". */
		if (stat(args->data_dir, &st) != 0)
			return cli_fail(ctx, "cannot use --data-dir '%s': %s", args->data_dir,
					strerror(errno));
		if (!S_ISDIR(st.st_mode))
			return cli_fail(ctx, "cannot use --data-dir '%s': not a directory",
					args->data_dir);
		args->config.data_dir = args->data_dir;
	} else {
		rc = agentbus_open(bus, ctx->bus);
		if (rc == 0)
			return 0;
		*bus = NULL;
		if (rc != AGENTBUS_E_NO_DAEMON)
			return cli_fail_code(ctx, rc, "cannot open bus '%s'", cli_bus_name(ctx));
	}
	if (ctx->bus && setenv("AGENTBUS_BUS", ctx->bus, 1) < 0)
		return cli_fail(ctx, "cannot set AGENTBUS_BUS: out of memory");
	return 0;
}

/* `agentbus replay STREAM [--from-seq N|--from-time T|--from-start] [--to-seq N] ...` */
int cli_replay_main(int argc, char **argv)
{
	struct replay_args args = { 0 };
	agentbus_replay *replay;
	struct cli_ctx ctx;
	agentbus_bus *bus;
	int rc;

	cli_init(&ctx, "replay", usage);
	rc = parse_replay(&ctx, argc, argv, &args);
	if (rc)
		return rc;
	rc = locate_log(&ctx, &args, &bus);
	if (rc)
		return rc;
	cli_install_stop_signals();
	rc = agentbus_replay_open(bus, args.stream, &args.config, &replay);
	if (rc < 0) {
		rc = open_error(&ctx, &args, rc);
	} else {
		rc = replay_loop(&ctx, &args, replay);
		agentbus_replay_close(replay);
	}
	if (bus)
		agentbus_close(bus);
	return rc;
}
