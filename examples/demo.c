/*
 * demo.c - agentbus-demo: a planner and three tool agents talking over an
 * embedded agentbus, with delivery latencies measured along the way.
 *
 * This process forks the planner and the agents first (so none of them
 * inherits the daemon's thread), then starts the embedded daemon, creates
 * the streams "calls" and "results", and lets the children go in order:
 * agents subscribe and report ready, then the planner publishes. This process
 * collects the answers, stops the agents with SIGTERM once every call is
 * answered, reaps every child by pid, prints what happened, replays the run
 * from the streams' logs as an audit trail, stops the daemon and removes the
 * bus (shared memory and logs). Every wait is bounded; the exit code is 0
 * only if every call got exactly one correct answer, every child exited
 * cleanly, and the logs hold exactly one result for every call.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "demo.h"

#define CHILDREN (1 + DEMO_TOOL_COUNT) /* the planner, then one process per agent */
#define READY_TIMEOUT_MS 10000         /* agents must subscribe within this */
#define SLACK_MS 35000                 /* beyond the planner's schedule (loaded CI hosts) */
#define GOODBYE_TIMEOUT_MS 3000
#define REAP_TIMEOUT_MS 3000
#define DEMO_RING_SIZE (1u << 20)     /* small rings: the demo's records are tiny */

struct child {
	const char *role;   /* "planner" or the agent's name */
	pid_t pid;          /* 0 = not started */
	int status;         /* from waitpid(), valid once reaped */
	int reaped;         /* 1 once waitpid() returned it */
};

/* Everything one run holds, so teardown can release whatever was set up. */
struct run {
	struct demo_options options;
	struct child children[CHILDREN];  /* [0] = planner, [1 + tool] = agents */
	int agents_go[2];                 /* one byte per agent: attach now */
	int planner_go[2];                /* one byte: start publishing */
	int ready[2];                     /* one byte per agent: subscribed */
	agentbus_daemon *daemon;
	agentbus_bus *bus;
	agentbus_stream *results;
	agentbus_sub *sub;
	struct demo_tally tally;
};

/* Set by SIGINT/SIGTERM in the supervisor: stop, clean up, exit 1. */
static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
	(void)sig;
	interrupted = 1;
}

uint64_t demo_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * Wait up to @timeout_ms for one byte on @fd. Returns 1 when a byte came,
 * 0 on end of file or timeout, -1 on error (an interrupting signal included).
 */
int demo_wait_byte(int fd, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	char byte;
	int r = poll(&pfd, 1, timeout_ms);

	if (r <= 0)
		return r;
	r = (int)read(fd, &byte, 1);
	return r < 0 ? -1 : r;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: agentbus-demo [--calls N] [--interval-us N]\n"
		"\n"
		"A planner process publishes tool calls on stream \"calls\"; three agent\n"
		"processes take them by subject filter and answer on \"results\"; this\n"
		"process runs the embedded daemon, checks every answer and prints the\n"
		"delivery latencies, then replays the run from the streams' logs as an\n"
		"audit trail. Ends by itself (about 5 s with the defaults).\n"
		"\n"
		"  --calls N        tool calls to make (default 2000)\n"
		"  --interval-us N  pause between the planner's bursts (default 5000)\n"
		"\n"
		"The bus is demo-<pid>, removed at the end with everything in it.\n");
}

/* Parse a number in [@min, @max]; returns 0 or -1. */
static int parse_u64(const char *text, uint64_t min, uint64_t max, uint64_t *value)
{
	char *end;

	errno = 0;
	*value = strtoull(text, &end, 10);
	return errno == 0 && end != text && *end == '\0' && *value >= min && *value <= max ? 0 : -1;
}

static int bad_option(const char *message)
{
	fprintf(stderr, "agentbus-demo: %s\n", message);
	return -1;
}

/* Fill @options from the command line. Returns 0, 1 for --help, -1 on error. */
static int parse_options(int argc, char **argv, struct demo_options *options)
{
	static const struct option longopts[] = {
		{ "calls", required_argument, NULL, 'c' },
		{ "interval-us", required_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	options->calls = 2000;
	options->interval_us = 5000;
	/* Always a bus of our own: the demo destroys its bus when it ends. */
	snprintf(options->bus, sizeof(options->bus), "demo-%d", (int)getpid());
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			if (parse_u64(optarg, 1, 1000000, &options->calls) != 0)
				return bad_option("--calls wants a number from 1 to 1000000");
			break;
		case 'i':
			if (parse_u64(optarg, 0, 1000000, &options->interval_us) != 0)
				return bad_option("--interval-us wants a number from 0 to 1000000");
			break;
		case 'h':
			return 1;
		default:
			return -1; /* getopt_long() has said what was wrong */
		}
	}
	return optind == argc ? 0 : bad_option("unexpected argument");
}

/* In a new child: die with the parent, keep only the pipe ends @role uses. */
static void child_setup(struct run *run, pid_t parent, int is_planner)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1); /* the parent is already gone */
	signal(SIGINT, SIG_IGN); /* Ctrl-C is the supervisor's to handle */
	close(run->agents_go[1]);
	close(run->planner_go[1]);
	close(run->ready[0]);
	if (is_planner) {
		close(run->agents_go[0]);
		close(run->ready[1]);
	} else {
		close(run->planner_go[0]);
	}
}

/*
 * Fork the planner and the agents. They wait on their go pipes, so nothing
 * happens until the bus exists. Returns 0 or -1 (children already started
 * are left in run->children for teardown to reap).
 */
static int spawn_children(struct run *run)
{
	pid_t parent = getpid();

	fflush(NULL); /* a child must not inherit and later flush our buffers */
	for (int i = 0; i < CHILDREN; i++) {
		const struct demo_agent_spec *spec = i ? &demo_agents[i - 1] : NULL;
		pid_t pid = fork();

		if (pid < 0) {
			perror("agentbus-demo: fork");
			return -1;
		}
		if (pid == 0) {
			child_setup(run, parent, i == 0);
			if (i == 0)
				exit(demo_planner_main(&run->options, run->planner_go[0]));
			exit(demo_agent_main(&run->options, spec, run->agents_go[0], run->ready[1]));
		}
		run->children[i].role = i ? spec->name : "planner";
		run->children[i].pid = pid;
	}
	close(run->agents_go[0]);
	close(run->planner_go[0]);
	close(run->ready[1]);
	run->agents_go[0] = run->planner_go[0] = run->ready[1] = -1;
	return 0;
}

/* Report the last agentbus failure of @what and return -1. */
static int bus_failed(const char *what, int err)
{
	fprintf(stderr, "agentbus-demo: %s: %s (%s)\n", what, agentbus_strerror(err),
		agentbus_last_error());
	return -1;
}

/* Start the embedded daemon, create both streams, subscribe to "results". */
static int start_bus(struct run *run)
{
	struct agentbus_daemon_config daemon_config = { .bus = run->options.bus };
	struct agentbus_stream_config stream_config = { .ring_size = DEMO_RING_SIZE };
	struct agentbus_sub_config sub_config = { .start = AGENTBUS_START_OLDEST };
	int err;

	if ((err = agentbus_daemon_start(&run->daemon, &daemon_config)) < 0)
		return bus_failed("starting the daemon", err);
	if ((err = agentbus_open(&run->bus, run->options.bus)) < 0)
		return bus_failed("opening the bus", err);
	if ((err = agentbus_stream_create(run->bus, DEMO_CALLS_STREAM, &stream_config)) < 0)
		return bus_failed("creating stream calls", err);
	if ((err = agentbus_stream_create(run->bus, DEMO_RESULTS_STREAM, &stream_config)) < 0)
		return bus_failed("creating stream results", err);
	if ((err = agentbus_stream_open(run->bus, DEMO_RESULTS_STREAM, &run->results)) < 0)
		return bus_failed("opening stream results", err);
	if ((err = agentbus_subscribe(run->results, &sub_config, &run->sub)) < 0)
		return bus_failed("subscribing to results", err);
	return 0;
}

static void print_cast(const struct run *run)
{
	printf("agentbus demo: bus \"%s\", streams \"%s\" and \"%s\"\n", run->options.bus,
	       DEMO_CALLS_STREAM, DEMO_RESULTS_STREAM);
	printf("  collector  (pid %d) runs the embedded daemon, reads \"results\", checks answers\n",
	       (int)getpid());
	printf("  planner    (pid %d) publishes %" PRIu64 " tool calls on \"calls\", "
	       "in bursts of 1-4 every %.1f ms\n", (int)run->children[0].pid, run->options.calls,
	       run->options.interval_us / 1e3);
	for (int t = 0; t < DEMO_TOOL_COUNT; t++)
		printf("  %-10s (pid %d) takes %-18s from \"calls\", answers tool.result.%s\n",
		       demo_agents[t].name, (int)run->children[1 + t].pid, demo_agents[t].filter,
		       demo_tool_name(demo_agents[t].tool));
	fflush(stdout);
}

/* Say how @child ended, on stderr. */
static void report_exit(const struct child *child, const char *when)
{
	if (WIFSIGNALED(child->status))
		fprintf(stderr, "agentbus-demo: %s (pid %d) %s: killed by signal %d\n", child->role,
			(int)child->pid, when, WTERMSIG(child->status));
	else
		fprintf(stderr, "agentbus-demo: %s (pid %d) %s: exit status %d\n", child->role,
			(int)child->pid, when, WEXITSTATUS(child->status));
}

/*
 * Reap children that have exited, without blocking. Returns -1 if one of
 * them ended badly (any agent, since agents run until told to stop, or a
 * planner that failed) or the demo was interrupted; 0 otherwise.
 */
static int check_children(struct run *run)
{
	int bad = 0;

	for (int i = 0; i < CHILDREN; i++) {
		struct child *child = &run->children[i];

		if (child->pid <= 0 || child->reaped || waitpid(child->pid, &child->status, WNOHANG) <= 0)
			continue;
		child->reaped = 1;
		if (i > 0 || !WIFEXITED(child->status) || WEXITSTATUS(child->status) != 0) {
			report_exit(child, "ended early");
			bad = 1;
		}
	}
	if (interrupted) {
		fprintf(stderr, "agentbus-demo: interrupted\n");
		bad = 1;
	}
	return bad ? -1 : 0;
}

/* Let the agents subscribe, wait until all have, then let the planner go. */
static int release_children(struct run *run)
{
	uint64_t deadline = demo_now_ns() + READY_TIMEOUT_MS * 1000000ull;
	int ready = 0;

	for (int t = 0; t < DEMO_TOOL_COUNT; t++)
		if (write(run->agents_go[1], "g", 1) != 1)
			return -1;
	while (ready < DEMO_TOOL_COUNT) {
		int r = demo_wait_byte(run->ready[0], 100);

		if (r == 1)
			ready++;
		else if (r < 0 || check_children(run) != 0 || demo_now_ns() > deadline)
			return -1;
	}
	return write(run->planner_go[1], "g", 1) == 1 ? 0 : -1;
}

/* Read one record from "results" into the tally, waiting up to @timeout_ms.
 * Returns 0 (a record or a timeout) or -1. */
static int collect_one(struct run *run, int timeout_ms)
{
	struct agentbus_record record;
	int r = agentbus_sub_read(run->sub, &record, timeout_ms);

	if (r == 1)
		demo_tally_add(&run->tally, &record, demo_now_ns());
	else if (r < 0 && r != -EINTR)
		return bus_failed("reading results", r);
	return 0;
}

/*
 * Read answers until every call has one, a child fails, or the planner's
 * schedule plus SLACK_MS has passed. Returns 0 if all calls were answered.
 */
static int collect_answers(struct run *run)
{
	uint64_t steps = run->options.calls * 2 / 5 + 1; /* 2.5 calls per burst */
	uint64_t deadline = demo_now_ns() + steps * run->options.interval_us * 1000u +
			    SLACK_MS * 1000000ull;
	uint64_t next_check = 0;

	while (run->tally.answered < run->options.calls) {
		uint64_t now = demo_now_ns();

		if (now > deadline) {
			fprintf(stderr, "agentbus-demo: gave up waiting for answers\n");
			return -1;
		}
		if (now > next_check) {
			if (check_children(run) != 0)
				return -1;
			next_check = now + 100000000u; /* every 100 ms */
		}
		if (collect_one(run, 100) != 0)
			return -1;
	}
	return 0;
}

/* Ask the agents to stop and read their goodbyes (bounded). */
static int collect_goodbyes(struct run *run)
{
	uint64_t deadline = demo_now_ns() + GOODBYE_TIMEOUT_MS * 1000000ull;

	for (int i = 1; i < CHILDREN; i++)
		if (run->children[i].pid > 0 && !run->children[i].reaped)
			kill(run->children[i].pid, SIGTERM);
	while (run->tally.byes < DEMO_TOOL_COUNT && demo_now_ns() < deadline)
		if (collect_one(run, 100) != 0)
			return -1;
	return run->tally.byes == DEMO_TOOL_COUNT ? 0 : -1;
}

/*
 * Wait for child @child to exit, up to REAP_TIMEOUT_MS, then kill it. An
 * exit other than status 0 is reported unless @quiet (the child was killed
 * on purpose) or it was reported when first seen. Returns 0 if it exited by
 * itself with status 0.
 */
static int reap_child(struct child *child, int quiet)
{
	uint64_t deadline = demo_now_ns() + REAP_TIMEOUT_MS * 1000000ull;
	struct timespec pause = { .tv_nsec = 10000000 };

	if (child->pid <= 0)
		return 0;
	if (child->reaped)
		quiet = 1; /* check_children() saw it end */
	while (!child->reaped) {
		pid_t r = waitpid(child->pid, &child->status, WNOHANG);

		if (r == child->pid || (r < 0 && errno != EINTR)) {
			child->reaped = 1;
			break;
		}
		if (demo_now_ns() > deadline) {
			fprintf(stderr, "agentbus-demo: %s (pid %d) did not exit, killing it\n",
				child->role, (int)child->pid);
			kill(child->pid, SIGKILL);
			while (waitpid(child->pid, &child->status, 0) < 0 && errno == EINTR)
				;
			child->reaped = 1;
			return -1;
		}
		nanosleep(&pause, NULL);
	}
	if (WIFEXITED(child->status) && WEXITSTATUS(child->status) == 0)
		return 0;
	if (!quiet)
		report_exit(child, "failed");
	return -1;
}

/* Reap every child; on @failed, kill them first. Returns 0 if all exited 0. */
static int reap_children(struct run *run, int failed)
{
	int rc = 0;

	for (int i = 0; i < CHILDREN; i++)
		if (failed && run->children[i].pid > 0 && !run->children[i].reaped)
			kill(run->children[i].pid, SIGKILL);
	for (int i = 0; i < CHILDREN; i++)
		if (reap_child(&run->children[i], failed) != 0)
			rc = -1;
	return rc;
}

/* Close every handle, stop the daemon, and remove the bus's shared memory. */
static void stop_bus(struct run *run)
{
	int err;

	if (run->sub)
		agentbus_sub_close(run->sub);
	if (run->results)
		agentbus_stream_close(run->results);
	if (run->bus)
		agentbus_close(run->bus);
	if (!run->daemon)
		return;
	agentbus_daemon_stop(run->daemon);
	err = agentbus_bus_destroy(run->options.bus);
	if (err < 0)
		bus_failed("removing the bus", err);
}

static void close_pipes(struct run *run)
{
	int *fds[] = { run->agents_go, run->planner_go, run->ready };

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		for (int j = 0; j < 2; j++)
			if (fds[i][j] >= 0)
				close(fds[i][j]);
}

/* Turn SIGINT and SIGTERM into a clean stop: reap, report, remove the bus. */
static void catch_interrupts(void)
{
	struct sigaction sa = { .sa_handler = on_interrupt };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

/* Run the whole demo on @run, whose options are set. Returns the exit code. */
static int demo_run(struct run *run)
{
	uint64_t started = demo_now_ns();
	int failed = 0, children_ok, audit_ok = 0;

	if (pipe(run->agents_go) || pipe(run->planner_go) || pipe(run->ready)) {
		perror("agentbus-demo: pipe");
		close_pipes(run);
		return 1;
	}
	if (spawn_children(run) != 0)
		failed = 1;
	else
		catch_interrupts(); /* after fork: the agents have their own SIGTERM */
	if (failed || start_bus(run) != 0) {
		failed = 1;
	} else {
		print_cast(run);
		failed = release_children(run) != 0 || collect_answers(run) != 0 ||
			 collect_goodbyes(run) != 0;
	}
	children_ok = reap_children(run, failed) == 0;
	close_pipes(run);
	if (run->bus)
		demo_report(&run->tally, run->bus);
	/* Only a finished run is worth auditing: a failed one already says why. */
	if (run->bus && !failed && children_ok)
		audit_ok = demo_audit(run->bus, run->options.calls) == 0;
	stop_bus(run);
	failed = failed || !children_ok || !demo_tally_ok(&run->tally) || !audit_ok;
	printf("\n%s (%.1f s)\n",
	       failed ? "FAILED: not every call got exactly one correct answer, a process failed, "
			"or the log does not hold exactly one result per call"
		      : "OK: every call got exactly one correct answer, and the log agrees",
	       (demo_now_ns() - started) / 1e9);
	return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct run run;
	int r, rc;

	memset(&run, 0, sizeof(run));
	run.agents_go[0] = run.agents_go[1] = -1;
	run.planner_go[0] = run.planner_go[1] = -1;
	run.ready[0] = run.ready[1] = -1;
	r = parse_options(argc, argv, &run.options);
	if (r > 0) {
		usage(stdout);
		return 0;
	}
	if (r < 0) {
		fprintf(stderr, "usage: agentbus-demo [--calls N] [--interval-us N] (see --help)\n");
		return 2;
	}
	if (demo_tally_init(&run.tally, run.options.calls) != 0) {
		fprintf(stderr, "agentbus-demo: out of memory\n");
		return 1;
	}
	/* A child that dies must not take us down with SIGPIPE on a go pipe. */
	signal(SIGPIPE, SIG_IGN);
	rc = demo_run(&run);
	demo_tally_free(&run.tally);
	return rc;
}
