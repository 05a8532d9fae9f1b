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
	"Usage: agentbus daemon [--bus NAME] [--data-dir DIR] [--verbose]\n"
	"\n"
	"Run the daemon of a bus in the foreground until SIGINT or SIGTERM.\n"
	"It creates the bus's shared memory (/dev/shm/agentbus-<uid>/<bus>/, or\n"
	"$AGENTBUS_SHM_DIR), serves clients, and turns the claims of dead\n"
	"producers into gaps. Streams stay in shared memory after it stops and\n"
	"are adopted by the next daemon of the same bus. Every record is also\n"
	"written to its stream's log under DIR/<bus>/<stream>/, which outlives a\n"
	"reboot: a stream found there is made again when the daemon starts.\n"
	"\n"
	"Options:\n"
	"  --bus NAME     the bus to serve (default: $AGENTBUS_BUS, else \"default\")\n"
	"  --data-dir DIR where the logs live (default: $AGENTBUS_DATA, else\n"
	"                 $XDG_DATA_HOME/agentbus, else ~/.local/share/agentbus)\n"
	"  --verbose      log events (start, client deaths, gaps) to stderr\n"
	"  -h, --help     show this help\n";

enum {
	OPT_VERBOSE = CLI_OPT_FIRST,
	OPT_DATA_DIR,
};

/* Start the daemon with SIGINT/SIGTERM blocked in @signals; 0 or an exit code. */
static int start_daemon(struct cli_ctx *ctx, struct agentbus_daemon_config *config,
			sigset_t *signals, agentbus_daemon **daemon)
{
	int rc;

	sigemptyset(signals);
	sigaddset(signals, SIGINT);
	sigaddset(signals, SIGTERM);
	rc = pthread_sigmask(SIG_BLOCK, signals, NULL);
	if (rc != 0)
		return cli_fail(ctx, "cannot block signals: %s", strerror(rc));
	/* A client that hangs up must cost an error on a write, not the daemon. */
	signal(SIGPIPE, SIG_IGN);
	rc = agentbus_daemon_start(daemon, config);
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
		{ "data-dir", required_argument, NULL, OPT_DATA_DIR },
		CLI_COMMON_OPTIONS,
	};
	struct agentbus_daemon_config config = { 0 };
	struct cli_ctx ctx;
	agentbus_daemon *daemon;
	sigset_t signals;
	char data_dir[4096];
	int opt, sig = 0, rc = 0;

	cli_init(&ctx, "daemon", usage);
	while (rc == 0 && (opt = cli_next_option(&ctx, argc, argv, options)) != -1) {
		if (opt == CLI_OPT_EXIT)
			return ctx.exit_code;
		if (opt == OPT_VERBOSE)
			config.verbose = 1;
		if (opt == OPT_DATA_DIR) {
			rc = cli_data_dir(&ctx, optarg, data_dir, sizeof(data_dir));
			config.data_dir = data_dir;
		}
	}
	if (rc == 0)
		rc = cli_positionals(&ctx, argc, argv, 0, 0, "");
	if (rc)
		return rc;
	config.bus = ctx.bus;
	rc = start_daemon(&ctx, &config, &signals, &daemon);
	if (rc)
		return rc;
	if (sigwait(&signals, &sig) == 0 && config.verbose)
		fprintf(stderr, "agentbus: daemon: %s, stopping\n", strsignal(sig));
	agentbus_daemon_stop(daemon);
	return CLI_OK;
}
