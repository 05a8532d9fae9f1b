/*
 * cli.h - what the files of the `agentbus` command-line tool share: the
 * per-command context, the option parser, number parsing, error reporting and
 * the text/JSON formatting helpers.
 *
 * Conventions of every command:
 *   - exit 0 on success, CLI_USAGE (2) for bad input on the command line,
 *     CLI_FAILURE (1) for a failure at run time (no daemon, no such stream);
 *   - every error is one line on stderr: "agentbus: <command>: <message>";
 *   - output that cannot be written is a failure (exit 1), except to a
 *     reader that went away (`| head`): SIGPIPE is ignored, and EPIPE ends
 *     the output as if it were complete;
 *   - --bus NAME and --help are accepted by every command, anywhere among its
 *     options.
 */
#ifndef AGENTBUS_CLI_H
#define AGENTBUS_CLI_H

#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "agentbus.h"

enum cli_exit {
	CLI_OK = 0,
	CLI_FAILURE = 1, /* something failed at run time */
	CLI_USAGE = 2,   /* the command line was wrong */
};

/* Long-option values of the options every command takes. */
enum {
	CLI_OPT_BUS = 0x100,
	CLI_OPT_HELP = 'h',
	CLI_OPT_EXIT = 0x1ff, /* returned by cli_next_option(): stop, exit with ctx->exit_code */
	CLI_OPT_FIRST = 0x200, /* commands number their own options from here */
};

/* The entries for --bus and --help; end every command's option table with it. */
#define CLI_COMMON_OPTIONS                                       \
	{ "bus", required_argument, NULL, CLI_OPT_BUS },         \
	{ "help", no_argument, NULL, CLI_OPT_HELP },             \
	{ NULL, 0, NULL, 0 }

/* One command being run. */
struct cli_ctx {
	const char *name;  /* "stream info": the prefix of its error messages */
	const char *usage; /* the text --help prints */
	const char *bus;   /* --bus NAME, or NULL for $AGENTBUS_BUS / "default" */
	bool stop_at_positional; /* options end at the first non-option (command groups) */
	int exit_code;     /* what to exit with after CLI_OPT_EXIT (never 0) */
};

/* Signature of a command: argv[0] is the command's own name. */
typedef int (*cli_command_fn)(int argc, char **argv);

/* An entry of a dispatch table (top level, `stream ...`). */
struct cli_command {
	const char *name;
	cli_command_fn run;
};

/* options.c */
extern const char *cli_default_bus;

void cli_init(struct cli_ctx *ctx, const char *name, const char *usage);
int cli_next_option(struct cli_ctx *ctx, int argc, char **argv,
		    const struct option *options);
int cli_positionals(struct cli_ctx *ctx, int argc, char **argv, int min, int max,
		    const char *missing);
int cli_dispatch(struct cli_ctx *ctx, const struct cli_command *table, int argc,
		 char **argv);
int cli_usage_error(const struct cli_ctx *ctx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int cli_fail(const struct cli_ctx *ctx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int cli_fail_code(const struct cli_ctx *ctx, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
const char *cli_bus_name(const struct cli_ctx *ctx);
int cli_open_bus(const struct cli_ctx *ctx, agentbus_bus **bus);
int cli_open_stream(const struct cli_ctx *ctx, agentbus_bus *bus, const char *name,
		    agentbus_stream **stream);

int cli_parse_u64(const char *text, uint64_t *value);
int cli_parse_size(const char *text, uint64_t *value);
int cli_parse_seconds(const char *text, int64_t *ms);
int cli_parse_duration(const char *text, uint64_t *ns);
int cli_parse_time(const char *text, uint64_t *ns);
int cli_parse_durability(const char *text, enum agentbus_durability *durability);
const char *cli_durability_name(enum agentbus_durability durability);
int cli_data_dir(const struct cli_ctx *ctx, const char *given, char *out, size_t size);

/* Standard output: every command checks that what it printed got out. A
 * reader that went away (EPIPE; SIGPIPE is ignored) ends the output, and
 * is no failure. */
#define CLI_GO_ON (-1) /* cli_flush_output(): all is well, go on */

int cli_flush_output(const struct cli_ctx *ctx);
int cli_finish_output(const struct cli_ctx *ctx, int rc);

/* format.c */
bool cli_utf8_valid(const void *data, size_t len);
bool cli_is_text(const void *data, size_t len);
void cli_print_text(FILE *out, const void *data, size_t len);
void cli_print_hex(FILE *out, const void *data, size_t len, size_t max);
void cli_print_json_string(FILE *out, const void *data, size_t len);
void cli_print_base64(FILE *out, const void *data, size_t len);
void cli_format_time(char *buf, size_t size, uint64_t time_ns);
void cli_format_size(char *buf, size_t size, uint64_t bytes);

/* record.c: printing records (sub, replay) and stopping on a signal */
extern volatile sig_atomic_t cli_stop_requested;

void cli_install_stop_signals(void);
void cli_print_record(const struct agentbus_record *rec, bool json);

/* The commands. */
int cli_daemon_main(int argc, char **argv);
int cli_stream_main(int argc, char **argv);
int cli_pub_main(int argc, char **argv);
int cli_sub_main(int argc, char **argv);
int cli_replay_main(int argc, char **argv);
int cli_verify_main(int argc, char **argv);

#endif /* AGENTBUS_CLI_H */
