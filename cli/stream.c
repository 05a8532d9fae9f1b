/*
 * stream.c - `agentbus stream add|ls|info|rm`: create, list, inspect and
 * delete the streams of a bus. All of them go through the daemon.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char group_usage[] =
	"Usage: agentbus stream [--bus NAME] COMMAND [ARGS...]\n"
	"\n"
	"Commands:\n"
	"  add NAME [--ring-size BYTES] [--max-record BYTES]   create a stream\n"
	"  ls [--json]                                         list the streams\n"
	"  info NAME [--json]                                  show one stream\n"
	"  rm NAME                                             delete a stream\n"
	"\n"
	"Run 'agentbus stream COMMAND --help' for the options of a command.\n";

static const char add_usage[] =
	"Usage: agentbus stream add NAME [--ring-size BYTES] [--max-record BYTES] [--bus NAME]\n"
	"\n"
	"Create stream NAME (1-63 characters of A-Z a-z 0-9 _ . -, not starting\n"
	"with '.'). The ring is allocated in shared memory at once.\n"
	"\n"
	"Options:\n"
	"  --ring-size BYTES    ring capacity, a power of two from 64K to 1G\n"
	"                       (default 64M)\n"
	"  --max-record BYTES   largest record (subject, key, headers and payload),\n"
	"                       at most a quarter of the ring (default 1M)\n"
	"  --bus NAME           the bus (default: $AGENTBUS_BUS, else \"default\")\n"
	"  -h, --help           show this help\n"
	"\n"
	"BYTES is a number with an optional suffix K, M or G (also KiB, MiB, GiB),\n"
	"all 1024-based.\n";

static const char ls_usage[] =
	"Usage: agentbus stream ls [--json] [--bus NAME]\n"
	"\n"
	"List the streams of the bus, sorted by name.\n"
	"\n"
	"Options:\n"
	"  --json       print a JSON array with one object per stream (the fields\n"
	"               of 'stream info --json')\n"
	"  --bus NAME   the bus (default: $AGENTBUS_BUS, else \"default\")\n"
	"  -h, --help   show this help\n";

static const char info_usage[] =
	"Usage: agentbus stream info NAME [--json] [--bus NAME]\n"
	"\n"
	"Show stream NAME: ring_size, max_record (bytes), first_seq (oldest record\n"
	"in the ring), next_seq (the sequence number of the next record),\n"
	"ring_used (bytes), gaps (sequence numbers that hold no record),\n"
	"subscriptions and sleepers (subscriptions asleep now).\n"
	"\n"
	"Options:\n"
	"  --json       print one JSON object with those fields and name\n"
	"  --bus NAME   the bus (default: $AGENTBUS_BUS, else \"default\")\n"
	"  -h, --help   show this help\n";

static const char rm_usage[] =
	"Usage: agentbus stream rm NAME [--bus NAME]\n"
	"\n"
	"Delete stream NAME. Publishers then get an error; subscriptions read\n"
	"what is left, then stop.\n"
	"\n"
	"Options:\n"
	"  --bus NAME   the bus (default: $AGENTBUS_BUS, else \"default\")\n"
	"  -h, --help   show this help\n";

enum {
	OPT_JSON = CLI_OPT_FIRST,
	OPT_RING_SIZE,
	OPT_MAX_RECORD,
};

/* ------------------------------------------------------------------------ */
/* Output                                                                    */
/* ------------------------------------------------------------------------ */

/* One stream as a JSON object on one line, without the newline. */
static void print_info_json(const struct agentbus_stream_info *info)
{
	fputs("{\"name\":", stdout);
	cli_print_json_string(stdout, info->name, strnlen(info->name, sizeof(info->name)));
	printf(",\"ring_size\":%llu,\"max_record\":%llu,\"first_seq\":%llu,"
	       "\"next_seq\":%llu,\"ring_used\":%llu,\"gaps\":%llu,"
	       "\"subscriptions\":%u,\"sleepers\":%u}",
	       (unsigned long long)info->ring_size, (unsigned long long)info->max_record,
	       (unsigned long long)info->first_seq, (unsigned long long)info->next_seq,
	       (unsigned long long)info->ring_used, (unsigned long long)info->gaps,
	       info->subscriptions, info->sleepers);
}

/* One stream as "field: value" lines. */
static void print_info_text(const struct agentbus_stream_info *info)
{
	char ring[32], record[32];
	double fill = info->ring_size ? 100.0 * (double)info->ring_used / (double)info->ring_size : 0;

	cli_format_size(ring, sizeof(ring), info->ring_size);
	cli_format_size(record, sizeof(record), info->max_record);
	printf("name:          %.*s\n", (int)sizeof(info->name), info->name);
	printf("ring_size:     %llu (%s)\n", (unsigned long long)info->ring_size, ring);
	printf("max_record:    %llu (%s)\n", (unsigned long long)info->max_record, record);
	printf("first_seq:     %llu\n", (unsigned long long)info->first_seq);
	printf("next_seq:      %llu\n", (unsigned long long)info->next_seq);
	printf("ring_used:     %llu (%.1f%%)\n", (unsigned long long)info->ring_used, fill);
	printf("gaps:          %llu\n", (unsigned long long)info->gaps);
	printf("subscriptions: %u\n", info->subscriptions);
	printf("sleepers:      %u\n", info->sleepers);
}

/* The streams as a table with a header line. */
static void print_list_text(const struct agentbus_stream_info *infos, size_t count)
{
	printf("%-24s %12s %12s %8s %12s %8s %8s %5s\n", "NAME", "FIRST_SEQ", "NEXT_SEQ",
	       "RING", "RING_USED", "MAX_REC", "GAPS", "SUBS");
	for (size_t i = 0; i < count; i++) {
		const struct agentbus_stream_info *info = &infos[i];
		char ring[32], record[32];

		cli_format_size(ring, sizeof(ring), info->ring_size);
		cli_format_size(record, sizeof(record), info->max_record);
		printf("%-24.*s %12llu %12llu %8s %12llu %8s %8llu %5u\n",
		       (int)sizeof(info->name), info->name,
		       (unsigned long long)info->first_seq, (unsigned long long)info->next_seq,
		       ring, (unsigned long long)info->ring_used, record,
		       (unsigned long long)info->gaps, info->subscriptions);
	}
}

/* The streams as a JSON array, one object per line. */
static void print_list_json(const struct agentbus_stream_info *infos, size_t count)
{
	fputc('[', stdout);
	for (size_t i = 0; i < count; i++) {
		fputs(i ? ",\n " : "\n ", stdout);
		print_info_json(&infos[i]);
	}
	fputs(count ? "\n]\n" : "]\n", stdout);
}

/* ------------------------------------------------------------------------ */
/* Commands                                                                  */
/* ------------------------------------------------------------------------ */

/*
 * Parse the options of a command that takes at most --json (when @json is
 * not NULL) and exactly @args positionals named @names. Returns 0 or the
 * exit code to return now.
 */
static int parse_simple(struct cli_ctx *ctx, int argc, char **argv, bool *json, int args,
			const char *names)
{
	static const struct option with_json[] = {
		{ "json", no_argument, NULL, OPT_JSON },
		CLI_COMMON_OPTIONS,
	};
	static const struct option without_json[] = { CLI_COMMON_OPTIONS };
	int opt;

	while ((opt = cli_next_option(ctx, argc, argv, json ? with_json : without_json)) != -1) {
		if (opt == CLI_OPT_EXIT)
			return ctx->exit_code;
		if (opt == OPT_JSON)
			*json = true;
	}
	return cli_positionals(ctx, argc, argv, args, args, names);
}

/*
 * Parse a BYTES option into @value; 0 or CLI_USAGE, reported. Zero is
 * refused: the library would read it as "the default", which is not what
 * someone who typed 0 asked for.
 */
static int parse_size_option(struct cli_ctx *ctx, const char *option, uint64_t *value)
{
	if (cli_parse_size(optarg, value) < 0 || *value == 0)
		return cli_usage_error(ctx, "bad %s '%s': a number of bytes, optionally with K, M or G",
				       option, optarg);
	return 0;
}

/* Parse the command line of `stream add`; 0 or an exit code. */
static int parse_add(struct cli_ctx *ctx, int argc, char **argv,
		     struct agentbus_stream_config *config)
{
	static const struct option options[] = {
		{ "ring-size", required_argument, NULL, OPT_RING_SIZE },
		{ "max-record", required_argument, NULL, OPT_MAX_RECORD },
		CLI_COMMON_OPTIONS,
	};
	int opt, rc = 0;

	while (rc == 0 && (opt = cli_next_option(ctx, argc, argv, options)) != -1) {
		if (opt == CLI_OPT_EXIT)
			return ctx->exit_code;
		if (opt == OPT_RING_SIZE)
			rc = parse_size_option(ctx, "--ring-size", &config->ring_size);
		else if (opt == OPT_MAX_RECORD)
			rc = parse_size_option(ctx, "--max-record", &config->max_record);
	}
	if (rc)
		return rc;
	return cli_positionals(ctx, argc, argv, 1, 1, "NAME");
}

/* Confirm a new stream with the sizes it got (defaults filled in). */
static void print_created(agentbus_bus *bus, const char *name)
{
	struct agentbus_stream_info info;
	char ring[32], record[32];

	if (agentbus_stream_info_get(bus, name, &info) < 0) {
		printf("created stream '%s'\n", name);
		return;
	}
	cli_format_size(ring, sizeof(ring), info.ring_size);
	cli_format_size(record, sizeof(record), info.max_record);
	printf("created stream '%s' (ring %s, max record %s)\n", name, ring, record);
}

/* `agentbus stream add NAME [--ring-size BYTES] [--max-record BYTES]` */
static int stream_add(int argc, char **argv)
{
	struct agentbus_stream_config config = { 0 };
	struct cli_ctx ctx;
	agentbus_bus *bus;
	const char *name;
	int rc;

	cli_init(&ctx, "stream add", add_usage);
	rc = parse_add(&ctx, argc, argv, &config);
	if (rc)
		return rc;
	name = argv[optind];
	rc = cli_open_bus(&ctx, &bus);
	if (rc)
		return rc;
	rc = agentbus_stream_create(bus, name, &config);
	if (rc == AGENTBUS_E_EXISTS)
		rc = cli_fail(&ctx, "a stream named '%s' already exists", name);
	else if (rc < 0)
		rc = cli_fail_code(&ctx, rc, "cannot create stream '%s'", name);
	else
		print_created(bus, name);
	agentbus_close(bus);
	return rc;
}

/* `agentbus stream ls [--json]` */
static int stream_ls(int argc, char **argv)
{
	struct agentbus_stream_info *infos = NULL;
	struct cli_ctx ctx;
	agentbus_bus *bus;
	size_t count = 0;
	bool json = false;
	int rc;

	cli_init(&ctx, "stream ls", ls_usage);
	rc = parse_simple(&ctx, argc, argv, &json, 0, "");
	if (rc)
		return rc;
	rc = cli_open_bus(&ctx, &bus);
	if (rc)
		return rc;
	rc = agentbus_stream_list(bus, &infos, &count);
	if (rc < 0) {
		rc = cli_fail_code(&ctx, rc, "cannot list the streams of bus '%s'",
				   cli_bus_name(&ctx));
	} else {
		if (json)
			print_list_json(infos, count);
		else
			print_list_text(infos, count);
		free(infos);
	}
	agentbus_close(bus);
	return rc;
}

/* `agentbus stream info NAME [--json]` */
static int stream_info(int argc, char **argv)
{
	struct agentbus_stream_info info;
	struct cli_ctx ctx;
	agentbus_bus *bus;
	const char *name;
	bool json = false;
	int rc;

	cli_init(&ctx, "stream info", info_usage);
	rc = parse_simple(&ctx, argc, argv, &json, 1, "NAME");
	if (rc)
		return rc;
	name = argv[optind];
	rc = cli_open_bus(&ctx, &bus);
	if (rc)
		return rc;
	rc = agentbus_stream_info_get(bus, name, &info);
	if (rc == AGENTBUS_E_NOT_FOUND) {
		rc = cli_fail(&ctx, "no stream named '%s'", name);
	} else if (rc < 0) {
		rc = cli_fail_code(&ctx, rc, "cannot read stream '%s'", name);
	} else if (json) {
		print_info_json(&info);
		fputc('\n', stdout);
	} else {
		print_info_text(&info);
	}
	agentbus_close(bus);
	return rc;
}

/* `agentbus stream rm NAME` */
static int stream_rm(int argc, char **argv)
{
	struct cli_ctx ctx;
	agentbus_bus *bus;
	const char *name;
	int rc;

	cli_init(&ctx, "stream rm", rm_usage);
	rc = parse_simple(&ctx, argc, argv, NULL, 1, "NAME");
	if (rc)
		return rc;
	name = argv[optind];
	rc = cli_open_bus(&ctx, &bus);
	if (rc)
		return rc;
	rc = agentbus_stream_delete(bus, name);
	if (rc == AGENTBUS_E_NOT_FOUND)
		rc = cli_fail(&ctx, "no stream named '%s'", name);
	else if (rc < 0)
		rc = cli_fail_code(&ctx, rc, "cannot delete stream '%s'", name);
	agentbus_close(bus);
	return rc;
}

static const struct cli_command stream_commands[] = {
	{ "add", stream_add },
	{ "ls", stream_ls },
	{ "info", stream_info },
	{ "rm", stream_rm },
	{ NULL, NULL },
};

/* `agentbus stream [--bus NAME] COMMAND ...`: options, then the sub-command. */
int cli_stream_main(int argc, char **argv)
{
	static const struct option options[] = { CLI_COMMON_OPTIONS };
	struct cli_ctx ctx;
	int opt;

	cli_init(&ctx, "stream", group_usage);
	ctx.stop_at_positional = true;
	while ((opt = cli_next_option(&ctx, argc, argv, options)) != -1) {
		if (opt == CLI_OPT_EXIT)
			return ctx.exit_code;
	}
	return cli_dispatch(&ctx, stream_commands, argc, argv);
}
