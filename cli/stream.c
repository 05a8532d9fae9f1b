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
	"  add NAME [OPTIONS]   create a stream (sizes, durability, retention)\n"
	"  ls [--json]          list the streams\n"
	"  info NAME [--json]   show one stream, its log and its durability\n"
	"  rm NAME              delete a stream\n"
	"\n"
	"Run 'agentbus stream COMMAND --help' for the options of a command.\n";

static const char add_usage[] =
	"Usage: agentbus stream add NAME [--ring-size BYTES] [--max-record BYTES]\n"
	"                       [--durability memory|written|synced]\n"
	"                       [--fsync batch|INTERVAL|never] [--overflow spill|block]\n"
	"                       [--segment-size BYTES] [--max-age DURATION]\n"
	"                       [--max-bytes BYTES] [--max-records N]\n"
	"                       [--retention-force] [--bus NAME]\n"
	"\n"
	"Create stream NAME (1-63 characters of A-Z a-z 0-9 _ . -, not starting\n"
	"with '.'). The ring is allocated in shared memory at once; every record\n"
	"is also written to the stream's log on disk by the daemon.\n"
	"\n"
	"Options:\n"
	"  --ring-size BYTES     ring capacity, a power of two from 64K to 1G\n"
	"                        (default 64M)\n"
	"  --max-record BYTES    largest record (subject, key, headers and payload),\n"
	"                        at most a quarter of the ring (default 1M)\n"
	"  --durability LEVEL    what a publish waits for by default (default memory):\n"
	"                          memory   the record is in the ring\n"
	"                          written  it is written to the log (survives the\n"
	"                                   death of any process)\n"
	"                          synced   it is on disk (survives power loss)\n"
	"  --fsync WHEN          when the log is synced to disk: batch (after each\n"
	"                        batch of writes, the default), an interval such as\n"
	"                        200ms or 1s (1ms to 60s), or never (then\n"
	"                        --durability synced is impossible)\n"
	"  --overflow POLICY     a subscription a whole ring behind: spill (it reads\n"
	"                        on from the log, the default) or block (producers\n"
	"                        wait for it)\n"
	"  --segment-size BYTES  size of a log segment file, 1M to 1T (default 64M)\n"
	"  --max-age DURATION    delete log segments older than DURATION\n"
	"  --max-bytes BYTES     keep at most about BYTES of log\n"
	"  --max-records N       keep at most about N records in the log\n"
	"  --retention-force     apply the limits above even to records a\n"
	"                        subscription has not read yet\n"
	"  --bus NAME            the bus (default: $AGENTBUS_BUS, else \"default\")\n"
	"  -h, --help            show this help\n"
	"\n"
	"BYTES is a number with an optional suffix K, M, G or T (also KiB, MiB,\n"
	"GiB, TiB), all 1024-based. DURATION is a number with a unit: ms, s, m, h\n"
	"or d (500ms, 30s, 15m, 2h, 7d). Without a retention limit the log is kept\n"
	"forever.\n";

static const char ls_usage[] =
	"Usage: agentbus stream ls [--json] [--bus NAME]\n"
	"\n"
	"List the streams of the bus, sorted by name. LOG is the size of the\n"
	"stream's log on disk.\n"
	"\n"
	"Options:\n"
	"  --json       print a JSON array with one object per stream (the fields\n"
	"               of 'stream info --json')\n"
	"  --bus NAME   the bus (default: $AGENTBUS_BUS, else \"default\")\n"
	"  -h, --help   show this help\n";

static const char info_usage[] =
	"Usage: agentbus stream info NAME [--json] [--bus NAME]\n"
	"\n"
	"Show stream NAME:\n"
	"  the ring: ring_size, max_record (bytes), first_seq..last_seq (the records\n"
	"    in the ring), next_seq (the sequence number of the next record),\n"
	"    ring_used (bytes), gaps (sequence numbers that hold no record),\n"
	"    subscriptions and sleepers (subscriptions asleep now);\n"
	"  its settings: durability, fsync, overflow, segment_size and retention\n"
	"    (max_age, max_bytes, max_records, retention_force);\n"
	"  its log: log_first_seq..log_last_seq (the records on disk), log_bytes,\n"
	"    written_seq and synced_seq (every record below them is written to the\n"
	"    log, synced to disk), spill_error (what holds the writer back, if\n"
	"    anything), and what recovery found: records lost (lost_first_seq..\n"
	"    lost_last_seq) and corrupt_records kept in the log.\n"
	"\n"
	"Options:\n"
	"  --json       print one JSON object with those fields and name; fsync is\n"
	"               \"batch\", \"interval\" or \"never\" (fsync_interval_ms says\n"
	"               how often), max_age_ns 0 and the other limits 0 mean none,\n"
	"               spill_error is null or a message, lost_* 0 when none\n"
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
	OPT_DURABILITY,
	OPT_FSYNC,
	OPT_OVERFLOW,
	OPT_SEGMENT_SIZE,
	OPT_MAX_AGE,
	OPT_MAX_BYTES,
	OPT_MAX_RECORDS,
	OPT_RETENTION_FORCE,
};

/* ------------------------------------------------------------------------ */
/* Output                                                                    */
/* ------------------------------------------------------------------------ */

/* The fsync setting as the options spell it: "batch", "200ms", "never". */
static void format_fsync(char *buf, size_t size, const struct agentbus_stream_config *config)
{
	if (config->fsync == AGENTBUS_FSYNC_INTERVAL)
		snprintf(buf, size, "%ums", config->fsync_interval_ms);
	else if (config->fsync == AGENTBUS_FSYNC_NEVER)
		snprintf(buf, size, "never");
	else
		snprintf(buf, size, "batch");
}

static const char *fsync_name(enum agentbus_fsync fsync)
{
	if (fsync == AGENTBUS_FSYNC_INTERVAL)
		return "interval";
	return fsync == AGENTBUS_FSYNC_NEVER ? "never" : "batch";
}

static const char *overflow_name(enum agentbus_overflow overflow)
{
	return overflow == AGENTBUS_OVERFLOW_BLOCK ? "block" : "spill";
}

/* A duration in its largest whole unit ("7d", "90m", "1500ms"), as --max-age takes it. */
static void format_duration(char *buf, size_t size, uint64_t ns)
{
	static const struct {
		const char *name;
		uint64_t ns;
	} units[] = {
		{ "d", 86400ull * 1000000000ull }, { "h", 3600ull * 1000000000ull },
		{ "m", 60ull * 1000000000ull }, { "s", 1000000000ull }, { "ms", 1000000ull },
	};

	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (ns >= units[i].ns && ns % units[i].ns == 0) {
			snprintf(buf, size, "%llu%s", (unsigned long long)(ns / units[i].ns),
				 units[i].name);
			return;
		}
	}
	snprintf(buf, size, "%lluns", (unsigned long long)ns);
}

/* The sequence number of the last record below @next (0 when there is none). */
static uint64_t last_below(uint64_t next)
{
	return next ? next - 1 : 0;
}

/* The configuration fields of @info, each as ,"name":value. */
static void print_config_json(const struct agentbus_stream_config *c)
{
	printf(",\"durability\":\"%s\",\"fsync\":\"%s\",\"fsync_interval_ms\":%u,"
	       "\"overflow\":\"%s\",\"segment_size\":%llu,\"max_age_ns\":%llu,"
	       "\"max_bytes\":%llu,\"max_records\":%llu,\"retention_force\":%s",
	       cli_durability_name(c->durability), fsync_name(c->fsync), c->fsync_interval_ms,
	       overflow_name(c->overflow), (unsigned long long)c->segment_size,
	       (unsigned long long)c->max_age_ns, (unsigned long long)c->max_bytes,
	       (unsigned long long)c->max_records, c->retention_force ? "true" : "false");
}

/* The log fields of @info, each as ,"name":value. */
static void print_log_json(const struct agentbus_stream_info *info)
{
	printf(",\"log_first_seq\":%llu,\"log_last_seq\":%llu,\"log_bytes\":%llu,"
	       "\"written_seq\":%llu,\"synced_seq\":%llu,\"spill_error\":",
	       (unsigned long long)info->log_first_seq,
	       (unsigned long long)last_below(info->written_seq),
	       (unsigned long long)info->log_bytes, (unsigned long long)info->written_seq,
	       (unsigned long long)info->synced_seq);
	if (info->spill_error) {
		const char *what = agentbus_strerror(info->spill_error);

		cli_print_json_string(stdout, what, strlen(what));
	} else {
		fputs("null", stdout);
	}
	printf(",\"lost_first_seq\":%llu,\"lost_last_seq\":%llu,\"corrupt_records\":%llu",
	       (unsigned long long)info->lost_first_seq, (unsigned long long)info->lost_last_seq,
	       (unsigned long long)info->corrupt_records);
}

/* One stream as a JSON object on one line, without the newline. */
static void print_info_json(const struct agentbus_stream_info *info)
{
	fputs("{\"name\":", stdout);
	cli_print_json_string(stdout, info->name, strnlen(info->name, sizeof(info->name)));
	printf(",\"ring_size\":%llu,\"max_record\":%llu,\"first_seq\":%llu,\"last_seq\":%llu,"
	       "\"next_seq\":%llu,\"ring_used\":%llu,\"gaps\":%llu,"
	       "\"subscriptions\":%u,\"sleepers\":%u",
	       (unsigned long long)info->ring_size, (unsigned long long)info->max_record,
	       (unsigned long long)info->first_seq, (unsigned long long)last_below(info->next_seq),
	       (unsigned long long)info->next_seq,
	       (unsigned long long)info->ring_used, (unsigned long long)info->gaps,
	       info->subscriptions, info->sleepers);
	print_config_json(&info->config);
	print_log_json(info);
	fputc('}', stdout);
}

/* The retention limits on one line: "max_age 7d, max_bytes 1GiB" or "none". */
static void print_retention_text(const struct agentbus_stream_config *c)
{
	char buf[32];
	const char *sep = "";

	printf("retention:       ");
	if (c->max_age_ns) {
		format_duration(buf, sizeof(buf), c->max_age_ns);
		printf("max_age %s", buf);
		sep = ", ";
	}
	if (c->max_bytes) {
		cli_format_size(buf, sizeof(buf), c->max_bytes);
		printf("%smax_bytes %s", sep, buf);
		sep = ", ";
	}
	if (c->max_records) {
		printf("%smax_records %llu", sep, (unsigned long long)c->max_records);
		sep = ", ";
	}
	if (!sep[0])
		printf("none (the log is kept forever)");
	else if (c->retention_force)
		printf(", forced (even what subscriptions have not read)");
	fputc('\n', stdout);
}

/* The settings of a stream as "field: value" lines. */
static void print_config_text(const struct agentbus_stream_config *c)
{
	char fsync[32], segment[32];

	format_fsync(fsync, sizeof(fsync), c);
	cli_format_size(segment, sizeof(segment), c->segment_size);
	printf("durability:      %s\n", cli_durability_name(c->durability));
	printf("fsync:           %s\n", fsync);
	printf("overflow:        %s\n", overflow_name(c->overflow));
	printf("segment_size:    %llu (%s)\n", (unsigned long long)c->segment_size, segment);
	print_retention_text(c);
}

/* The log of a stream as "field: value" lines. */
static void print_log_text(const struct agentbus_stream_info *info)
{
	char bytes[32];

	cli_format_size(bytes, sizeof(bytes), info->log_bytes);
	printf("log_first_seq:   %llu\n", (unsigned long long)info->log_first_seq);
	printf("log_last_seq:    %llu%s\n", (unsigned long long)last_below(info->written_seq),
	       info->log_first_seq >= info->written_seq ? " (the log is empty)" : "");
	printf("log_bytes:       %llu (%s)\n", (unsigned long long)info->log_bytes, bytes);
	printf("written_seq:     %llu (all records below %llu are written)\n",
	       (unsigned long long)info->written_seq, (unsigned long long)info->written_seq);
	printf("synced_seq:      %llu (all records below %llu are synced)\n",
	       (unsigned long long)info->synced_seq, (unsigned long long)info->synced_seq);
	printf("spill_error:     %s\n",
	       info->spill_error ? agentbus_strerror(info->spill_error) : "none");
	if (info->lost_first_seq)
		printf("lost:            %llu..%llu (found missing at recovery)\n",
		       (unsigned long long)info->lost_first_seq,
		       (unsigned long long)info->lost_last_seq);
	else
		printf("lost:            none\n");
	printf("corrupt_records: %llu\n", (unsigned long long)info->corrupt_records);
}

/* One stream as "field: value" lines. */
static void print_info_text(const struct agentbus_stream_info *info)
{
	char ring[32], record[32];
	double fill = info->ring_size ? 100.0 * (double)info->ring_used / (double)info->ring_size : 0;

	cli_format_size(ring, sizeof(ring), info->ring_size);
	cli_format_size(record, sizeof(record), info->max_record);
	printf("name:            %.*s\n", (int)sizeof(info->name), info->name);
	printf("ring_size:       %llu (%s)\n", (unsigned long long)info->ring_size, ring);
	printf("max_record:      %llu (%s)\n", (unsigned long long)info->max_record, record);
	printf("first_seq:       %llu\n", (unsigned long long)info->first_seq);
	printf("last_seq:        %llu%s\n", (unsigned long long)last_below(info->next_seq),
	       info->first_seq >= info->next_seq ? " (the ring is empty)" : "");
	printf("next_seq:        %llu\n", (unsigned long long)info->next_seq);
	printf("ring_used:       %llu (%.1f%%)\n", (unsigned long long)info->ring_used, fill);
	printf("gaps:            %llu\n", (unsigned long long)info->gaps);
	printf("subscriptions:   %u\n", info->subscriptions);
	printf("sleepers:        %u\n", info->sleepers);
	print_config_text(&info->config);
	print_log_text(info);
}

/* The streams as a table with a header line. */
static void print_list_text(const struct agentbus_stream_info *infos, size_t count)
{
	printf("%-24s %12s %12s %8s %12s %8s %8s %5s %10s\n", "NAME", "FIRST_SEQ", "NEXT_SEQ",
	       "RING", "RING_USED", "MAX_REC", "GAPS", "SUBS", "LOG");
	for (size_t i = 0; i < count; i++) {
		const struct agentbus_stream_info *info = &infos[i];
		char ring[32], record[32], log[32];

		cli_format_size(ring, sizeof(ring), info->ring_size);
		cli_format_size(record, sizeof(record), info->max_record);
		cli_format_size(log, sizeof(log), info->log_bytes);
		printf("%-24.*s %12llu %12llu %8s %12llu %8s %8llu %5u %10s\n",
		       (int)sizeof(info->name), info->name,
		       (unsigned long long)info->first_seq, (unsigned long long)info->next_seq,
		       ring, (unsigned long long)info->ring_used, record,
		       (unsigned long long)info->gaps, info->subscriptions, log);
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
		return cli_usage_error(ctx, "bad %s '%s': a number of bytes, optionally with K, M, G or T",
				       option, optarg);
	return 0;
}

/*
 * Parse --fsync: batch, never, or an interval such as 200ms or 1s (whole
 * milliseconds; the library checks the range). 0 or CLI_USAGE, reported.
 */
static int parse_fsync_option(struct cli_ctx *ctx, struct agentbus_stream_config *config)
{
	uint64_t ns;

	if (strcmp(optarg, "batch") == 0) {
		config->fsync = AGENTBUS_FSYNC_BATCH;
	} else if (strcmp(optarg, "never") == 0) {
		config->fsync = AGENTBUS_FSYNC_NEVER;
	} else if (cli_parse_duration(optarg, &ns) == 0 && ns % 1000000u == 0 && ns > 0 &&
		   ns / 1000000u <= UINT32_MAX) {
		config->fsync = AGENTBUS_FSYNC_INTERVAL;
		config->fsync_interval_ms = (uint32_t)(ns / 1000000u);
	} else {
		return cli_usage_error(ctx, "bad --fsync '%s': batch, never, or an interval such as 200ms or 1s",
				       optarg);
	}
	return 0;
}

/* Parse a count option (at least 1) into @value; 0 or CLI_USAGE, reported. */
static int parse_count_option(struct cli_ctx *ctx, const char *option, uint64_t *value)
{
	if (cli_parse_u64(optarg, value) < 0 || *value == 0)
		return cli_usage_error(ctx, "bad %s '%s': a number, at least 1", option, optarg);
	return 0;
}

/* Handle one option of `stream add`; 0 or an exit code, reported. */
static int add_option(struct cli_ctx *ctx, int opt, struct agentbus_stream_config *config)
{
	switch (opt) {
	case OPT_RING_SIZE:
		return parse_size_option(ctx, "--ring-size", &config->ring_size);
	case OPT_MAX_RECORD:
		return parse_size_option(ctx, "--max-record", &config->max_record);
	case OPT_SEGMENT_SIZE:
		return parse_size_option(ctx, "--segment-size", &config->segment_size);
	case OPT_MAX_BYTES:
		return parse_size_option(ctx, "--max-bytes", &config->max_bytes);
	case OPT_MAX_RECORDS:
		return parse_count_option(ctx, "--max-records", &config->max_records);
	case OPT_DURABILITY:
		if (cli_parse_durability(optarg, &config->durability) < 0)
			return cli_usage_error(ctx, "bad --durability '%s': memory, written or synced",
					       optarg);
		return 0;
	case OPT_FSYNC:
		return parse_fsync_option(ctx, config);
	case OPT_OVERFLOW:
		if (strcmp(optarg, "spill") == 0)
			config->overflow = AGENTBUS_OVERFLOW_SPILL;
		else if (strcmp(optarg, "block") == 0)
			config->overflow = AGENTBUS_OVERFLOW_BLOCK;
		else
			return cli_usage_error(ctx, "bad --overflow '%s': spill or block", optarg);
		return 0;
	case OPT_MAX_AGE:
		if (cli_parse_duration(optarg, &config->max_age_ns) < 0 || config->max_age_ns == 0)
			return cli_usage_error(ctx, "bad --max-age '%s': a duration such as 500ms, 30s, 15m, 2h or 7d",
					       optarg);
		return 0;
	case OPT_RETENTION_FORCE:
		config->retention_force = 1;
		return 0;
	}
	return 0;
}

/* Parse the command line of `stream add`; 0 or an exit code. */
static int parse_add(struct cli_ctx *ctx, int argc, char **argv,
		     struct agentbus_stream_config *config)
{
	static const struct option options[] = {
		{ "ring-size", required_argument, NULL, OPT_RING_SIZE },
		{ "max-record", required_argument, NULL, OPT_MAX_RECORD },
		{ "durability", required_argument, NULL, OPT_DURABILITY },
		{ "fsync", required_argument, NULL, OPT_FSYNC },
		{ "overflow", required_argument, NULL, OPT_OVERFLOW },
		{ "segment-size", required_argument, NULL, OPT_SEGMENT_SIZE },
		{ "max-age", required_argument, NULL, OPT_MAX_AGE },
		{ "max-bytes", required_argument, NULL, OPT_MAX_BYTES },
		{ "max-records", required_argument, NULL, OPT_MAX_RECORDS },
		{ "retention-force", no_argument, NULL, OPT_RETENTION_FORCE },
		CLI_COMMON_OPTIONS,
	};
	int opt, rc = 0;

	while (rc == 0 && (opt = cli_next_option(ctx, argc, argv, options)) != -1) {
		if (opt == CLI_OPT_EXIT)
			return ctx->exit_code;
		rc = add_option(ctx, opt, config);
	}
	if (rc)
		return rc;
	if (config->fsync == AGENTBUS_FSYNC_NEVER &&
	    config->durability == AGENTBUS_DURABILITY_SYNCED)
		return cli_usage_error(ctx, "--durability synced needs an --fsync other than never");
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
	printf("created stream '%s' (ring %s, max record %s, durability %s)\n", name, ring,
	       record, cli_durability_name(info.config.durability));
}

/* `agentbus stream add NAME [--ring-size BYTES] [--max-record BYTES] [--durability ...] ...` */
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
	return cli_finish_output(&ctx, rc);
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
	return cli_finish_output(&ctx, rc);
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
	return cli_finish_output(&ctx, rc);
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
	return cli_finish_output(&ctx, rc); /* it prints nothing, but one day may */
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
