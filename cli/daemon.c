/*
 * daemon.c - `agentbus daemon`: run the daemon of a bus in the foreground
 * until SIGINT or SIGTERM.
 *
 * The daemon itself is the embedded one of the library (threads started by
 * agentbus_daemon_start()); this command only waits for the signal. The
 * signals are blocked before the daemon starts, so every thread it creates
 * inherits the mask and only sigwait() here ever sees them: no handler runs
 * on an arbitrary thread in the middle of the daemon's work.
 */
#include <pthread.h>
#include <signal.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
	"Usage: agentbus daemon [--bus NAME] [--verbose]\n"
	"\n"
	"Run the daemon of a bus in the foreground until SIGINT or SIGTERM.\n"
	"It creates the bus's shared memory (/dev/shm/agentbus-<uid>/<bus>/, or\n"
	"$AGENTBUS_SHM_DIR), serves clients, and turns the claims of dead\n"
	"producers into gaps. Streams stay in shared memory after it stops and\n"
	"are adopted by the next daemon of the same bus.\n"
	"\n"
	"Options:\n"
	"  --bus NAME     the bus to serve (default: $AGENTBUS_BUS, else \"default\")\n"
	"  --verbose      log events (start, client deaths, gaps) to stderr\n"
	"  -h, --help     show this help\n";

enum { OPT_VERBOSE = CLI_OPT_FIRST };

/* Start the daemon with SIGINT/SIGTERM blocked in @signals; 0 or an exit code. */
static int start_daemon(struct cli_ctx *ctx, int verbose, sigset_t *signals,
			agentbus_daemon **daemon)
{
	struct agentbus_daemon_config config = { .bus = ctx->bus, .verbose = verbose };
	int rc;

	sigemptyset(signals);
	sigaddset(signals, SIGINT);
	sigaddset(signals, SIGTERM);
	rc = pthread_sigmask(SIG_BLOCK, signals, NULL);
	if (rc != 0)
		return cli_fail(ctx, "cannot block signals: %s", strerror(rc));
	/* A client that hangs up must cost an error on a write, not the daemon. */
	signal(SIGPIPE, SIG_IGN);
	rc = agentbus_daemon_start(daemon, &config);
	if (rc == AGENTBUS_E_BUSY)
		return cli_fail(ctx, "bus '%s' is already served by another daemon",
				cli_bus_name(ctx));
	if (rc < 0)
		return cli_fail_code(ctx, rc, "cannot start the daemon of bus '%s'",
				     cli_bus_name(ctx));
	return 0;
}

int cli_daemon_main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "verbose", no_argument, NULL, OPT_VERBOSE },
		CLI_COMMON_OPTIONS,
	};
	struct cli_ctx ctx;
	agentbus_daemon *daemon;
	sigset_t signals;
	int opt, verbose = 0, sig = 0, rc;

	cli_init(&ctx, "daemon", usage);
	while ((opt = cli_next_option(&ctx, argc, argv, options)) != -1) {
		if (opt == CLI_OPT_EXIT)
			return ctx.exit_code;
		if (opt == OPT_VERBOSE)
			verbose = 1;
	}
	rc = cli_positionals(&ctx, argc, argv, 0, 0, "");
	if (rc)
		return rc;
	rc = start_daemon(&ctx, verbose, &signals, &daemon);
	if (rc)
		return rc;
	if (sigwait(&signals, &sig) == 0 && verbose)
		fprintf(stderr, "agentbus: daemon: %s, stopping\n", strsignal(sig));
	agentbus_daemon_stop(daemon);
	return CLI_OK;
}
