/*
 * main.c - entry point of the `agentbus` command-line tool: the top-level
 * options (--bus, --help, --version) and the dispatch to a command.
 *
 * Each command lives in its own file (daemon.c, stream.c, pub.c, sub.c,
 * replay.c, verify.c) and parses its own options with the helpers of
 * options.c; `bench` is handed to the benchmark library of bench/, when it
 * was built.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#ifdef AGENTBUS_HAVE_BENCH
#include "bench/bench.h"
#endif

#ifndef AGENTBUS_VERSION
#define AGENTBUS_VERSION "unknown"
#endif

static const char usage[] =
	"Usage: agentbus [--bus NAME] COMMAND [ARGS...]\n"
	"\n"
	"A message bus for agent processes on one host.\n"
	"\n"
	"Commands:\n"
	"  daemon         run the daemon of a bus in the foreground\n"
	"  stream         add, list, inspect and remove streams (add|ls|info|rm)\n"
	"  pub            publish records to a stream\n"
	"  sub            read records from a stream as they arrive\n"
	"  replay         print the records of a stream's log\n"
	"  verify         check the logs for damaged records\n"
	"  bench          measure latency and throughput\n"
	"  help COMMAND   show the help of a command\n"
	"\n"
	"Options (every command takes --bus and --help too):\n"
	"  --bus NAME     the bus to use (default: $AGENTBUS_BUS, else \"default\")\n"
	"  -h, --help     show this help\n"
	"  --version      show the version\n"
	"\n"
	"Exit status: 0 on success, 1 when something failed at run time,\n"
	"2 when the command line was wrong.\n";

/*
 * Take --bus NAME / --bus=NAME out of @argv (up to a "--"), so that the
 * benchmark's parser never sees it; the last one wins. Returns the new argc.
 */
static int strip_bus_option(int argc, char **argv, const char **bus)
{
	int out = 0, i = 0;

	for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
		if (strcmp(argv[i], "--bus") == 0 && i + 1 < argc)
			*bus = argv[++i];
		else if (strncmp(argv[i], "--bus=", 6) == 0)
			*bus = argv[i] + 6;
		else
			argv[out++] = argv[i];
	}
	while (i < argc)
		argv[out++] = argv[i++];
	argv[out] = NULL;
	return out;
}

/*
 * `agentbus bench ...`: the rest of argv goes to agentbus_bench_main(). A bus
 * chosen with --bus reaches it through $AGENTBUS_BUS.
 */
static int cmd_bench(int argc, char **argv)
{
	struct cli_ctx ctx;

	cli_init(&ctx, "bench", "");
	argc = strip_bus_option(argc, argv, &ctx.bus);
	if (ctx.bus && (!ctx.bus[0] || setenv("AGENTBUS_BUS", ctx.bus, 1) < 0))
		return cli_usage_error(&ctx, "bad --bus name");
#ifdef AGENTBUS_HAVE_BENCH
	return agentbus_bench_main(argc, argv);
#else
	(void)argc;
	return cli_fail(&ctx, "bench not built (bench/ has no agentbus_bench library)");
#endif
}

static const struct cli_command commands[] = {
	{ "daemon", cli_daemon_main },
	{ "stream", cli_stream_main },
	{ "pub", cli_pub_main },
	{ "sub", cli_sub_main },
	{ "replay", cli_replay_main },
	{ "verify", cli_verify_main },
	{ "bench", cmd_bench },
	{ NULL, NULL },
};

enum { OPT_VERSION = CLI_OPT_FIRST };

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "version", no_argument, NULL, OPT_VERSION },
		CLI_COMMON_OPTIONS,
	};
	struct cli_ctx ctx;
	int opt;

	/* A closed pipe is EPIPE on a write, which every command handles (see
	 * cli_flush_output()), not a death in the middle of a publish. */
	signal(SIGPIPE, SIG_IGN);
	cli_init(&ctx, "", usage);
	ctx.stop_at_positional = true;
	while ((opt = cli_next_option(&ctx, argc, argv, options)) != -1) {
		switch (opt) {
		case OPT_VERSION:
			printf("agentbus %s\n", AGENTBUS_VERSION);
			return cli_finish_output(&ctx, CLI_OK);
		case CLI_OPT_EXIT:
			return ctx.exit_code;
		}
	}
	return cli_dispatch(&ctx, commands, argc, argv);
}
