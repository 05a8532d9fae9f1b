/*
 * options.c - the pieces every command of the CLI shares: option parsing
 * around getopt_long(), positional arguments, dispatch to a sub-command,
 * strict number parsing, one-line error reports, and the end of output.
 *
 * getopt_long() keeps its state in globals, so each command resets it in
 * cli_init() before it parses its own argv; a command group (`stream`) parses
 * its options, then hands the rest of argv to the sub-command, which parses
 * afresh. opterr is 0 everywhere: getopt's own messages do not follow our
 * one-line format, so cli_next_option() writes them.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* The bus named by an earlier --bus (top level or command group). */
const char *cli_default_bus;

/* Prepare @ctx for the command @name and reset getopt for its argv. */
void cli_init(struct cli_ctx *ctx, const char *name, const char *usage)
{
	memset(ctx, 0, sizeof(*ctx));
	ctx->name = name;
	ctx->usage = usage;
	ctx->bus = cli_default_bus;
	optind = 0; /* 0, not 1: glibc then also forgets the scan of the last argv */
	opterr = 0;
}

/* Writes "agentbus: <command>: " and the message, without the newline. */
static void print_prefixed(const struct cli_ctx *ctx, const char *fmt, va_list ap)
{
	fputs("agentbus: ", stderr);
	if (ctx && ctx->name && ctx->name[0])
		fprintf(stderr, "%s: ", ctx->name);
	vfprintf(stderr, fmt, ap);
}

/* Report bad input on the command line; returns CLI_USAGE. */
int cli_usage_error(const struct cli_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	print_prefixed(ctx, fmt, ap);
	va_end(ap);
	if (ctx && ctx->name && ctx->name[0])
		fprintf(stderr, " (see 'agentbus %s --help')\n", ctx->name);
	else
		fputs(" (see 'agentbus --help')\n", stderr);
	return CLI_USAGE;
}

/* Report a failure at run time; returns CLI_FAILURE. */
int cli_fail(const struct cli_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	print_prefixed(ctx, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return CLI_FAILURE;
}

/*
 * Report the failure of a library call that returned @err: the message, then
 * the library's detail for this thread (or the name of the code when it left
 * none). A bad argument the library caught is a usage error, anything else a
 * run-time one.
 */
int cli_fail_code(const struct cli_ctx *ctx, int err, const char *fmt, ...)
{
	const char *detail = agentbus_last_error();
	va_list ap;

	if (!detail || !detail[0])
		detail = agentbus_strerror(err);
	va_start(ap, fmt);
	print_prefixed(ctx, fmt, ap);
	va_end(ap);
	fprintf(stderr, ": %s\n", detail);
	return err == AGENTBUS_E_INVALID ? CLI_USAGE : CLI_FAILURE;
}

/* Describe the option getopt_long() just refused, as precisely as it lets us. */
static int option_error(struct cli_ctx *ctx, char **argv, int result)
{
	const char *arg = optind > 0 ? argv[optind - 1] : "";
	int name_len = (int)strcspn(arg, "="); /* "--json=yes" is about "--json" */

	if (strncmp(arg, "--", 2) != 0) {
		if (result == ':')
			return cli_usage_error(ctx, "option '-%c' needs a value", optopt);
		return cli_usage_error(ctx, "unknown option '-%c'", optopt);
	}
	if (result == ':')
		return cli_usage_error(ctx, "option '%.*s' needs a value", name_len, arg);
	if (optopt != 0)
		return cli_usage_error(ctx, "option '%.*s' takes no value", name_len, arg);
	return cli_usage_error(ctx, "unknown or ambiguous option '%.*s'", name_len, arg);
}

/*
 * getopt_long() over @options (which end with CLI_COMMON_OPTIONS), handling
 * --bus and --help here: --help prints the usage and exits 0 at once. Returns
 * the next option of the command, -1 when there are no more, or CLI_OPT_EXIT
 * after reporting a bad option: the command must stop and exit with
 * ctx->exit_code (never 0, so callers may pass it on as "stop now").
 */
int cli_next_option(struct cli_ctx *ctx, int argc, char **argv,
		    const struct option *options)
{
	const char *short_options = ctx->stop_at_positional ? "+:h" : ":h";

	for (;;) {
		int opt = getopt_long(argc, argv, short_options, options, NULL);

		switch (opt) {
		case CLI_OPT_BUS:
			if (!optarg[0]) {
				ctx->exit_code = cli_usage_error(ctx, "--bus needs a name");
				return CLI_OPT_EXIT;
			}
			ctx->bus = optarg;
			continue;
		case CLI_OPT_HELP:
			/* Nothing is open while options are parsed: leaving here is clean. */
			fputs(ctx->usage, stdout);
			exit(cli_finish_output(ctx, CLI_OK));
		case '?':
		case ':':
			ctx->exit_code = option_error(ctx, argv, opt);
			return CLI_OPT_EXIT;
		default:
			return opt;
		}
	}
}

/*
 * Check that between @min and @max arguments are left after the options.
 * @names names them in order, for "missing STREAM". Returns 0 (the first
 * one is argv[optind]) or CLI_USAGE, reported.
 */
int cli_positionals(struct cli_ctx *ctx, int argc, char **argv, int min, int max,
		    const char *names)
{
	int have = argc - optind;

	if (have < min)
		return cli_usage_error(ctx, "missing %s", names);
	if (have > max)
		return cli_usage_error(ctx, "unexpected argument '%s'", argv[optind + max]);
	return 0;
}

/*
 * `agentbus help CMD...` is `agentbus CMD... --help`: rebuild argv that way
 * and run it through @table.
 */
static int run_help(struct cli_ctx *ctx, const struct cli_command *table, int argc,
		    char **argv)
{
	char **args;
	int rc;

	if (argc < 2) {
		fputs(ctx->usage, stdout);
		return cli_finish_output(ctx, CLI_OK);
	}
	args = calloc((size_t)argc + 1, sizeof(*args));
	if (!args)
		return cli_fail(ctx, "out of memory");
	for (int i = 1; i < argc; i++)
		args[i - 1] = argv[i];
	args[argc - 1] = "--help";
	optind = 0; /* the command name is now args[0] */
	rc = cli_dispatch(ctx, table, argc, args);
	free(args);
	return rc;
}

/*
 * Run the command named by argv[optind] from @table with the rest of argv.
 * The bus chosen so far (ctx->bus) becomes the default of the sub-command.
 */
int cli_dispatch(struct cli_ctx *ctx, const struct cli_command *table, int argc,
		 char **argv)
{
	const char *name;

	if (optind >= argc)
		return cli_usage_error(ctx, "missing command");
	name = argv[optind];
	cli_default_bus = ctx->bus;
	if (strcmp(name, "help") == 0)
		return run_help(ctx, table, argc - optind, argv + optind);
	for (const struct cli_command *cmd = table; cmd->name; cmd++) {
		if (strcmp(cmd->name, name) == 0)
			return cmd->run(argc - optind, argv + optind);
	}
	return cli_usage_error(ctx, "unknown command '%s'", name);
}

/* The name of the bus @ctx will open, for messages. */
const char *cli_bus_name(const struct cli_ctx *ctx)
{
	const char *env = getenv("AGENTBUS_BUS");

	if (ctx->bus)
		return ctx->bus;
	if (env && env[0])
		return env;
	return "default";
}

/* Connect to the daemon of the command's bus; returns 0 or an exit code, reported. */
int cli_open_bus(const struct cli_ctx *ctx, agentbus_bus **bus)
{
	int rc = agentbus_open(bus, ctx->bus);

	if (rc == AGENTBUS_E_NO_DAEMON)
		return cli_fail(ctx, "no daemon serves bus '%s' (start one with 'agentbus daemon --bus %s')",
				cli_bus_name(ctx), cli_bus_name(ctx));
	if (rc < 0)
		return cli_fail_code(ctx, rc, "cannot open bus '%s'", cli_bus_name(ctx));
	return 0;
}

/* Map stream @name of @bus; returns 0 or an exit code, reported. */
int cli_open_stream(const struct cli_ctx *ctx, agentbus_bus *bus, const char *name,
		    agentbus_stream **stream)
{
	int rc = agentbus_stream_open(bus, name, stream);

	if (rc == AGENTBUS_E_NOT_FOUND)
		return cli_fail(ctx, "no stream named '%s'", name);
	if (rc < 0)
		return cli_fail_code(ctx, rc, "cannot open stream '%s'", name);
	return 0;
}

/*
 * Parse a decimal unsigned number: digits only (no sign, no spaces, no
 * base prefix) and no overflow. Returns 0, or -1 for anything else.
 */
int cli_parse_u64(const char *text, uint64_t *value)
{
	uint64_t v = 0;

	if (!text || !text[0])
		return -1;
	for (const char *p = text; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	*value = v;
	return 0;
}

/* The decimal number at the start of @text, and where its unit begins.
 * Returns 0, or -1 for no digits, too many, or an overflow. */
static int number_then_unit(const char *text, uint64_t *number, const char **unit)
{
	char digits[24];
	size_t n = 0;

	if (!text)
		return -1;
	while (text[n] >= '0' && text[n] <= '9')
		n++;
	if (n == 0 || n >= sizeof(digits))
		return -1;
	memcpy(digits, text, n);
	digits[n] = '\0';
	*unit = text + n;
	return cli_parse_u64(digits, number);
}

/* The multiplier of a size suffix ("", K, M, G, T, KiB, MiB, GiB, TiB), or 0 if bad. */
static uint64_t size_multiplier(const char *suffix)
{
	unsigned shift;

	switch (suffix[0]) {
	case '\0':
		return 1;
	case 'k': case 'K':
		shift = 10;
		break;
	case 'm': case 'M':
		shift = 20;
		break;
	case 'g': case 'G':
		shift = 30;
		break;
	case 't': case 'T':
		shift = 40;
		break;
	default:
		return 0;
	}
	if (suffix[1] && strcmp(suffix + 1, "iB") != 0)
		return 0;
	return 1ull << shift;
}

/*
 * Parse a size in bytes: a decimal number with an optional 1024-based suffix
 * K, M, G or T (also KiB, MiB, GiB, TiB). Returns 0, or -1 for garbage, a sign or
 * an overflow.
 */
int cli_parse_size(const char *text, uint64_t *value)
{
	uint64_t number, multiplier;
	const char *suffix;

	if (number_then_unit(text, &number, &suffix) < 0)
		return -1;
	multiplier = size_multiplier(suffix);
	if (multiplier == 0)
		return -1;
	if (number > UINT64_MAX / multiplier)
		return -1;
	*value = number * multiplier;
	return 0;
}

/*
 * Parse a duration in seconds, "5" or "0.25" (no sign, no exponent), into
 * milliseconds, dropping what is below a millisecond. At most 10^9 seconds.
 * Returns 0 or -1.
 */
int cli_parse_seconds(const char *text, int64_t *ms)
{
	const char *dot = text ? strchr(text, '.') : NULL;
	char whole[16];
	size_t whole_len = dot ? (size_t)(dot - text) : (text ? strlen(text) : 0);
	uint64_t seconds = 0;
	int64_t fraction = 0, scale = 100;

	if (!text || whole_len >= sizeof(whole) || (whole_len == 0 && !dot))
		return -1;
	memcpy(whole, text, whole_len);
	whole[whole_len] = '\0';
	if (whole_len > 0 && cli_parse_u64(whole, &seconds) < 0)
		return -1;
	if (seconds > 1000000000ull)
		return -1;
	if (dot) {
		if (!dot[1] && whole_len == 0)
			return -1;
		for (const char *p = dot + 1; *p; p++) {
			if (*p < '0' || *p > '9')
				return -1;
			fraction += (*p - '0') * scale;
			scale /= 10;
		}
	}
	*ms = (int64_t)seconds * 1000 + fraction;
	return 0;
}

/* Nanoseconds in one unit of a duration suffix, or 0 if @unit is not one. */
static uint64_t duration_unit_ns(const char *unit)
{
	static const struct {
		const char *name;
		uint64_t ns;
	} units[] = {
		{ "ms", 1000000ull },
		{ "s", 1000000000ull },
		{ "m", 60ull * 1000000000ull },
		{ "h", 3600ull * 1000000000ull },
		{ "d", 86400ull * 1000000000ull },
	};

	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(unit, units[i].name) == 0)
			return units[i].ns;
	}
	return 0;
}

/*
 * Parse a duration: a decimal number and a unit, ms, s, m, h or d ("500ms",
 * "30s", "15m", "2h", "7d"), into nanoseconds. The unit is required: a bare
 * "30" could mean seconds or minutes, and a guess is worse than an error.
 * Returns 0, or -1 for garbage, a sign or an overflow.
 */
int cli_parse_duration(const char *text, uint64_t *ns)
{
	uint64_t number, unit;
	const char *suffix;

	if (number_then_unit(text, &number, &suffix) < 0)
		return -1;
	unit = duration_unit_ns(suffix);
	if (unit == 0 || number > UINT64_MAX / unit)
		return -1;
	*ns = number * unit;
	return 0;
}

/* Parse exactly @width digits at @text into @value; -1 if they are not all digits. */
static int fixed_digits(const char *text, int width, int *value)
{
	int v = 0;

	for (int i = 0; i < width; i++) {
		if (text[i] < '0' || text[i] > '9')
			return -1;
		v = v * 10 + (text[i] - '0');
	}
	*value = v;
	return 0;
}

/* Days in @month (1-12) of @year, leap years counted. */
static int days_in_month(int year, int month)
{
	static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

	return month == 2 && leap ? 29 : days[month - 1];
}

/*
 * Parse the fraction of a second after the dot at @text (1-9 digits) into
 * nanoseconds; *end is set past it. Returns 0 or -1.
 */
static int parse_fraction(const char *text, uint64_t *ns, const char **end)
{
	uint64_t scale = 100000000ull, value = 0;
	int n = 0;

	while (text[n] >= '0' && text[n] <= '9') {
		if (n == 9)
			return -1;
		value += (uint64_t)(text[n] - '0') * scale;
		scale /= 10;
		n++;
	}
	if (n == 0)
		return -1;
	*ns = value;
	*end = text + n;
	return 0;
}

/*
 * Parse the zone at the end of an RFC 3339 time: "Z", or "+HH:MM" /
 * "-HH:MM", into the seconds to subtract to get UTC. Returns 0 or -1.
 */
static int parse_zone(const char *text, int64_t *offset)
{
	int hours, minutes;

	if ((text[0] == 'Z' || text[0] == 'z') && !text[1]) {
		*offset = 0;
		return 0;
	}
	if ((text[0] != '+' && text[0] != '-') || fixed_digits(text + 1, 2, &hours) < 0 ||
	    text[3] != ':' || fixed_digits(text + 4, 2, &minutes) < 0 || text[6] ||
	    hours > 23 || minutes > 59)
		return -1;
	*offset = (int64_t)(hours * 3600 + minutes * 60) * (text[0] == '-' ? -1 : 1);
	return 0;
}

/*
 * Parse an RFC 3339 time, "2026-11-22T18:30:00Z", optionally with a
 * fraction of a second and a numeric zone instead of Z, into nanoseconds
 * since the epoch. Field ranges are checked (no 31st of April); a leap
 * second is refused. Returns 0 or -1.
 */
static int parse_rfc3339(const char *text, uint64_t *ns)
{
	int year, month, day, hour, minute, second;
	uint64_t fraction = 0;
	int64_t offset, seconds;
	const char *p = text + 19;
	struct tm tm;

	if (strlen(text) < 20 || fixed_digits(text, 4, &year) < 0 || text[4] != '-' ||
	    fixed_digits(text + 5, 2, &month) < 0 || text[7] != '-' ||
	    fixed_digits(text + 8, 2, &day) < 0 || (text[10] != 'T' && text[10] != 't') ||
	    fixed_digits(text + 11, 2, &hour) < 0 || text[13] != ':' ||
	    fixed_digits(text + 14, 2, &minute) < 0 || text[16] != ':' ||
	    fixed_digits(text + 17, 2, &second) < 0)
		return -1;
	if (year < 1970 || month < 1 || month > 12 || day < 1 ||
	    day > days_in_month(year, month) || hour > 23 || minute > 59 || second > 59)
		return -1;
	if (*p == '.' && parse_fraction(p + 1, &fraction, &p) < 0)
		return -1;
	if (parse_zone(p, &offset) < 0)
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = year - 1900;
	tm.tm_mon = month - 1;
	tm.tm_mday = day;
	tm.tm_hour = hour;
	tm.tm_min = minute;
	tm.tm_sec = second;
	seconds = (int64_t)timegm(&tm) - offset;
	if (seconds < 0 || (uint64_t)seconds > UINT64_MAX / 1000000000ull - 1)
		return -1;
	*ns = (uint64_t)seconds * 1000000000ull + fraction;
	return 0;
}

/*
 * Parse a point in time into nanoseconds since the epoch (CLOCK_REALTIME):
 * an RFC 3339 time (see parse_rfc3339), a plain number of nanoseconds, or
 * "-DURATION", that long before now ("-5m"). Returns 0 or -1.
 */
int cli_parse_time(const char *text, uint64_t *ns)
{
	struct timespec now;
	uint64_t ago, now_ns;

	if (!text || !text[0])
		return -1;
	if (text[0] == '-') {
		if (cli_parse_duration(text + 1, &ago) < 0 ||
		    clock_gettime(CLOCK_REALTIME, &now) < 0)
			return -1;
		now_ns = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
		*ns = ago < now_ns ? now_ns - ago : 0;
		return 0;
	}
	if (cli_parse_u64(text, ns) == 0)
		return 0;
	return parse_rfc3339(text, ns);
}

/* Parse "memory", "written" or "synced"; -1 for anything else. */
int cli_parse_durability(const char *text, enum agentbus_durability *durability)
{
	if (strcmp(text, "memory") == 0)
		*durability = AGENTBUS_DURABILITY_MEMORY;
	else if (strcmp(text, "written") == 0)
		*durability = AGENTBUS_DURABILITY_WRITTEN;
	else if (strcmp(text, "synced") == 0)
		*durability = AGENTBUS_DURABILITY_SYNCED;
	else
		return -1;
	return 0;
}

/* The name of a durability level, as the options spell it. */
const char *cli_durability_name(enum agentbus_durability durability)
{
	switch (durability) {
	case AGENTBUS_DURABILITY_MEMORY:
		return "memory";
	case AGENTBUS_DURABILITY_WRITTEN:
		return "written";
	case AGENTBUS_DURABILITY_SYNCED:
		return "synced";
	default:
		return "default";
	}
}

/* Whether the reader of standard output went away: a pipe or socket with
 * no one at the other end polls as an error. */
static bool reader_gone(void)
{
	struct pollfd p = { .fd = STDOUT_FILENO, .events = POLLOUT };

	return poll(&p, 1, 0) == 1 && (p.revents & (POLLERR | POLLHUP));
}

/*
 * Push what was printed to standard output. Returns CLI_GO_ON, or the exit
 * code to stop with: a reader that went away (EPIPE, as in `sub | head`:
 * main() ignores SIGPIPE) is a normal end, CLI_OK; any other write error is
 * a failure, reported. ferror() is checked too: stdio may have met the
 * error in an earlier, implicit flush, its errno long overwritten.
 */
int cli_flush_output(const struct cli_ctx *ctx)
{
	bool failed_now;

	errno = 0;
	failed_now = fflush(stdout) != 0;
	if (!failed_now && !ferror(stdout))
		return CLI_GO_ON;
	if ((failed_now && errno == EPIPE) || reader_gone())
		return CLI_OK;
	if (failed_now && errno)
		return cli_fail(ctx, "cannot write to standard output: %s", strerror(errno));
	return cli_fail(ctx, "cannot write to standard output: an earlier write failed");
}

/*
 * The end of a command that may have printed: push the output out and
 * return @rc, or CLI_FAILURE (reported) when a command that succeeded could
 * not write all it printed. A reader that went away is no failure.
 */
int cli_finish_output(const struct cli_ctx *ctx, int rc)
{
	int flushed = cli_flush_output(ctx);

	if (rc != CLI_OK || flushed == CLI_GO_ON)
		return rc;
	return flushed;
}

/*
 * Make the --data-dir @given absolute into @out (the library wants an
 * absolute path, and a daemon must not depend on where it was started).
 * Returns 0 or an exit code, reported.
 */
int cli_data_dir(const struct cli_ctx *ctx, const char *given, char *out, size_t size)
{
	char cwd[4096];
	int n;

	if (!given[0])
		return cli_usage_error(ctx, "--data-dir needs a directory");
	if (given[0] == '/') {
		n = snprintf(out, size, "%s", given);
	} else {
		if (!getcwd(cwd, sizeof(cwd)))
			return cli_fail(ctx, "cannot resolve --data-dir '%s': %s", given,
					strerror(errno));
		n = snprintf(out, size, "%s/%s", cwd, given);
	}
	if (n < 0 || (size_t)n >= size)
		return cli_usage_error(ctx, "--data-dir '%s' is too long", given);
	return 0;
}
