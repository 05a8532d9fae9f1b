/*
 * verify.c - `agentbus verify`: check every record of the logs of a bus (or
 * of one stream) against its checksum and the frame rules of
 * docs/log-format.md, and list what is wrong. It reads the files only, so
 * it runs with or without a daemon.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
	"Usage: agentbus verify [STREAM] [--data-dir DIR] [--json] [--bus NAME]\n"
	"\n"
	"Check every record in the log of STREAM (default: of every stream of the\n"
	"bus): headers, checksums and sequence numbers, and every index entry\n"
	"against the frame it names. Each problem is one line\n"
	"  stream S: segment PATH offset O seq N: WHAT\n"
	"(O: the byte offset in the segment file, N: the sequence number expected\n"
	"there), then a summary line. The daemon need not run.\n"
	"\n"
	"Options:\n"
	"  --data-dir DIR   where the logs live (default: $AGENTBUS_DATA, else\n"
	"                   $XDG_DATA_HOME/agentbus, else ~/.local/share/agentbus)\n"
	"  --json           print one JSON object instead:\n"
	"                     {\"problems\":[{\"stream\":\"s\",\"segment\":\"...\",\n"
	"                       \"offset\":4160,\"seq\":2,\"what\":\"...\"}],\"count\":1}\n"
	"                   with \"error\":\"...\" added when a log could not be read\n"
	"  --bus NAME       the bus (default: $AGENTBUS_BUS, else \"default\")\n"
	"  -h, --help       show this help\n"
	"\n"
	"Exit status: 0 when the log is sound, 1 when a problem was found or the\n"
	"log could not be read, 2 when the command line was wrong.\n";

enum {
	OPT_DATA_DIR = CLI_OPT_FIRST,
	OPT_JSON,
};

/* What the problem reporter needs. */
struct verify_out {
	bool json;
	unsigned long long count;
};

/* Print one problem: a line of text, or an element of the JSON array. */
static void report_problem(void *arg, const struct agentbus_problem *p)
{
	struct verify_out *out = arg;
	const char *segment = p->segment ? p->segment : "?";
	const char *what = p->what ? p->what : "?";

	if (!out->json) {
		printf("stream %s: segment %s offset %llu seq %llu: %s\n", p->stream, segment,
		       (unsigned long long)p->file_offset, (unsigned long long)p->seq, what);
	} else {
		fputs(out->count ? ",\n {\"stream\":" : "\n {\"stream\":", stdout);
		cli_print_json_string(stdout, p->stream, strlen(p->stream));
		fputs(",\"segment\":", stdout);
		cli_print_json_string(stdout, segment, strlen(segment));
		printf(",\"offset\":%llu,\"seq\":%llu,\"what\":", (unsigned long long)p->file_offset,
		       (unsigned long long)p->seq);
		cli_print_json_string(stdout, what, strlen(what));
		fputc('}', stdout);
	}
	out->count++;
}

/*
 * Close the JSON object: the count, and "error" when the logs could not be
 * read to the end (so a reader of stdout alone never takes a failed check
 * for a clean one).
 */
static void finish_json(const struct verify_out *out, int found)
{
	const char *error = agentbus_last_error();

	printf("%s],\"count\":%llu", out->count ? "\n" : "", out->count);
	if (found < 0) {
		if (!error || !error[0])
			error = agentbus_strerror(found);
		fputs(",\"error\":", stdout);
		cli_print_json_string(stdout, error, strlen(error));
	}
	fputs("}\n", stdout);
}

/* The line after the problems: what was checked and how it went. */
static void print_summary(const struct cli_ctx *ctx, const char *stream, int found)
{
	char what[128];

	if (stream)
		snprintf(what, sizeof(what), "the log of stream '%s'", stream);
	else
		snprintf(what, sizeof(what), "the logs of bus '%s'", cli_bus_name(ctx));
	if (found == 0)
		printf("verified %s: no problems\n", what);
	else
		printf("verified %s: %d problem%s\n", what, found, found == 1 ? "" : "s");
}

/* `agentbus verify [STREAM] [--data-dir DIR] [--json]` */
int cli_verify_main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "data-dir", required_argument, NULL, OPT_DATA_DIR },
		{ "json", no_argument, NULL, OPT_JSON },
		CLI_COMMON_OPTIONS,
	};
	struct verify_out out = { 0 };
	struct cli_ctx ctx;
	const char *stream, *data_dir = NULL;
	char dir[4096];
	int opt, rc = 0, found;

	cli_init(&ctx, "verify", usage);
	while (rc == 0 && (opt = cli_next_option(&ctx, argc, argv, options)) != -1) {
		if (opt == CLI_OPT_EXIT)
			return ctx.exit_code;
		if (opt == OPT_JSON)
			out.json = true;
		if (opt == OPT_DATA_DIR) {
			rc = cli_data_dir(&ctx, optarg, dir, sizeof(dir));
			data_dir = dir;
		}
	}
	if (rc == 0)
		rc = cli_positionals(&ctx, argc, argv, 0, 1, "");
	if (rc)
		return rc;
	stream = optind < argc ? argv[optind] : NULL;
	if (out.json)
		fputs("{\"problems\":[", stdout);
	found = agentbus_verify(ctx.bus, data_dir, stream, report_problem, &out);
	if (out.json)
		finish_json(&out, found);
	else if (found >= 0)
		print_summary(&ctx, stream, found);
	/* The problems go out before the error that stopped the check. */
	rc = cli_finish_output(&ctx, found != 0 ? CLI_FAILURE : CLI_OK);
	if (found < 0)
		return cli_fail_code(&ctx, found, "cannot verify %s", stream ? "the stream" : "the bus");
	return rc;
}
