/*
 * test_crash.c - a producer killed (SIGKILL) at each step between reserving
 * ring space and committing it must not wedge the bus: after the daemon sees
 * it die, readers and other producers go on, exactly the killed record
 * becomes a counted gap, and nothing else is lost or altered. A subscriber
 * killed while holding back producers releases them. A producer that only
 * stalls right after reserving (for longer than any timeout, while another
 * client dies) keeps its frame: nothing may be revoked from a live producer.
 *
 * Children are this program re-executed with a role (never fork() alone from
 * a process that runs the daemon thread).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agentbus.h"
#include "bus/internal.h"
#include "bus/testing.h"

#define STREAM "work"
#define PRE_RECORDS 5
#define LIVE_RECORDS 3000
#define READY_FD 3 /* children signal "parked" on this inherited pipe */

static const char *park_point_names[] = { "", "reserved", "marked", "written" };
static int park_point;
static int published_before_park;
static int pre_records = PRE_RECORDS;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#define FAIL(...)                                                                       \
	do {                                                                            \
		fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                    \
		fprintf(stderr, __VA_ARGS__);                                           \
		fprintf(stderr, " [%s]\n", agentbus_last_error());                     \
		exit(1);                                                                \
	} while (0)

/* ---------------------------------------------------------------- children */

static void signal_parked_and_wait(void)
{
	if (write(READY_FD, "P", 1) != 1)
		_exit(3);
	for (;;)
		pause(); /* the parent kills us here */
}

static volatile sig_atomic_t resumed;

static void on_resume(int sig)
{
	(void)sig;
	resumed = 1;
}

/* Say "parked", then wait for SIGUSR1 and go on. */
static void signal_parked_and_stall(void)
{
	sigset_t usr1, old;

	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, &old);
	if (write(READY_FD, "P", 1) != 1)
		_exit(3);
	while (!resumed)
		sigsuspend(&old);
	sigprocmask(SIG_SETMASK, &old, NULL);
}

static int stall_instead;

static void park_hook(int point)
{
	if (point != park_point || published_before_park != pre_records)
		return;
	if (stall_instead)
		signal_parked_and_stall();
	else
		signal_parked_and_wait();
}

static agentbus_stream *child_open(const char *bus_name, agentbus_bus **bus)
{
	agentbus_stream *stream;

	if (agentbus_open(bus, bus_name) != 0 || agentbus_stream_open(*bus, STREAM, &stream) != 0)
		_exit(2);
	return stream;
}

static void publish_text(agentbus_stream *stream, const char *subject, const char *text)
{
	struct agentbus_message m = { .subject = subject, .payload = text,
				      .payload_len = strlen(text) };

	if (agentbus_publish(stream, &m, 10000) < 0)
		_exit(4);
}

/* Publish pre_records records, then park inside the next publish. */
static int child_park(const char *bus_name, int point)
{
	agentbus_stream *stream;
	agentbus_bus *bus;
	char text[32];

	stream = child_open(bus_name, &bus);
	park_point = point;
	agentbus_test_hook = park_hook;
	for (published_before_park = 0; published_before_park < pre_records;
	     published_before_park++) {
		snprintf(text, sizeof(text), "pre-%d", published_before_park);
		publish_text(stream, "crash.pre", text);
	}
	publish_text(stream, "crash.doomed", "doomed");
	return 5; /* not reached: the hook parks */
}

/* Publish pre_records records, stall inside the next publish right after
 * reserving until SIGUSR1, then finish it: exit 0 if it was published. */
static int child_stall(const char *bus_name)
{
	struct agentbus_message m = { .subject = "crash.stalled", .payload = "stalled",
				      .payload_len = 7 };
	agentbus_stream *stream;
	agentbus_bus *bus;
	char text[32];
	int64_t seq;

	signal(SIGUSR1, on_resume);
	stream = child_open(bus_name, &bus);
	park_point = 1;
	stall_instead = 1;
	agentbus_test_hook = park_hook;
	for (published_before_park = 0; published_before_park < pre_records;
	     published_before_park++) {
		snprintf(text, sizeof(text), "pre-%d", published_before_park);
		publish_text(stream, "crash.pre", text);
	}
	seq = agentbus_publish(stream, &m, 10000);
	agentbus_stream_close(stream);
	agentbus_close(bus);
	return seq > 0 ? 0 : 8;
}

/* Publish PRE_RECORDS records, then hold a zero-copy claim half written. */
static int child_claim(const char *bus_name)
{
	struct agentbus_message m = { .subject = "crash.doomed" };
	struct agentbus_claim claim;
	agentbus_stream *stream;
	agentbus_bus *bus;
	char text[32];
	int i;

	stream = child_open(bus_name, &bus);
	for (i = 0; i < PRE_RECORDS; i++) {
		snprintf(text, sizeof(text), "pre-%d", i);
		publish_text(stream, "crash.pre", text);
	}
	if (agentbus_claim(stream, &m, 64, 1000, &claim) != 0)
		_exit(6);
	memset(claim.payload, 'X', 32);
	signal_parked_and_wait();
	return 0;
}

static int child_live(const char *bus_name)
{
	agentbus_stream *stream;
	agentbus_bus *bus;
	char text[32];
	int i;

	stream = child_open(bus_name, &bus);
	for (i = 0; i < LIVE_RECORDS; i++) {
		snprintf(text, sizeof(text), "live-%d", i);
		publish_text(stream, "crash.live", text);
	}
	agentbus_stream_close(stream);
	agentbus_close(bus);
	return 0;
}

/* Subscribe, read nothing, and wait to be killed. */
static int child_idle_subscriber(const char *bus_name)
{
	agentbus_stream *stream;
	agentbus_sub *sub;
	agentbus_bus *bus;

	stream = child_open(bus_name, &bus);
	if (agentbus_subscribe(stream, NULL, &sub) != 0)
		_exit(7);
	signal_parked_and_wait();
	return 0;
}

/* ---------------------------------------------------------------- parent */

static pid_t spawn(const char *role, const char *bus_name, const char *arg, int ready_pipe[2])
{
	pid_t pid = fork();

	if (pid < 0)
		FAIL("fork: %s", strerror(errno));
	if (pid == 0) {
		if (ready_pipe) {
			dup2(ready_pipe[1], READY_FD);
			close(ready_pipe[0]);
		}
		execl("/proc/self/exe", "test_crash", role, bus_name, arg, (char *)NULL);
		_exit(127);
	}
	return pid;
}

static void wait_parked(int fd, pid_t child)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char c;

	if (poll(&p, 1, 10000) != 1 || read(fd, &c, 1) != 1)
		FAIL("child %d never parked", (int)child);
}

static void kill_and_reap(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static void expect_payload(const struct agentbus_record *r, const char *text)
{
	if (r->payload_len != strlen(text) || memcmp(r->payload, text, r->payload_len) != 0)
		FAIL("seq %llu: payload '%.*s', expected '%s'", (unsigned long long)r->seq,
		     (int)r->payload_len, (const char *)r->payload, text);
}

static void read_pre_records(agentbus_sub *sub)
{
	struct agentbus_record r;
	char text[32];
	int i;

	for (i = 0; i < PRE_RECORDS; i++) {
		if (agentbus_sub_read(sub, &r, 5000) != 1)
			FAIL("pre record %d missing", i);
		snprintf(text, sizeof(text), "pre-%d", i);
		expect_payload(&r, text);
	}
}

/* Read every live record after the hole; returns ns from the kill until the
 * reader got past the hole. */
static uint64_t read_live_records(agentbus_sub *sub, uint64_t killed_at, uint64_t first_seq)
{
	struct agentbus_record r;
	uint64_t passed_at = 0, deadline = now_ns() + 20000000000ull;
	char text[32];
	int i;

	for (i = 0; i < LIVE_RECORDS; i++) {
		int got = agentbus_sub_read(sub, &r, 1000);

		if (got != 1 && now_ns() < deadline) {
			i--;
			continue;
		}
		if (got != 1)
			FAIL("live record %d never arrived (read returned %d)", i, got);
		if (!passed_at)
			passed_at = now_ns();
		snprintf(text, sizeof(text), "live-%d", i);
		expect_payload(&r, text);
		if (i == 0 && r.seq != first_seq + 1)
			FAIL("first live record has seq %llu, expected %llu after one gap",
			     (unsigned long long)r.seq, (unsigned long long)first_seq + 1);
	}
	return passed_at - killed_at;
}

static void check_gaps(agentbus_bus *bus, agentbus_sub *sub, uint64_t stream_want,
		       uint64_t sub_want)
{
	struct agentbus_stream_info info;
	struct agentbus_sub_stats stats;

	if (agentbus_stream_info_get(bus, STREAM, &info) != 0)
		FAIL("stream info");
	agentbus_sub_stats_get(sub, &stats);
	if (info.gaps != stream_want || stats.gaps != sub_want)
		FAIL("gaps: stream %llu, subscription %llu, expected %llu and %llu",
		     (unsigned long long)info.gaps, (unsigned long long)stats.gaps,
		     (unsigned long long)stream_want, (unsigned long long)sub_want);
}

/* Open the bus and the stream, and subscribe (sleeping reads). */
static void attach_reader(const char *bus_name, agentbus_bus **bus, agentbus_stream **stream,
			  agentbus_sub **sub)
{
	struct agentbus_sub_config cfg = { .wait = AGENTBUS_WAIT_SLEEP };

	if (agentbus_open(bus, bus_name) != 0 || agentbus_stream_open(*bus, STREAM, stream) != 0 ||
	    agentbus_subscribe(*stream, &cfg, sub) != 0)
		FAIL("setup");
}

/*
 * One scenario: a producer parks at @point (or holds a claim), the reader
 * reaches its hole, a live producer runs into back-pressure behind it, the
 * parked producer is killed, and everything must flow again.
 */
static void run_producer_death(const char *bus_name, const char *role, const char *point,
			       uint64_t *gaps_so_far)
{
	struct agentbus_stream_info info;
	struct agentbus_record r;
	agentbus_stream *stream;
	agentbus_sub *sub;
	agentbus_bus *bus;
	pid_t parked, live;
	uint64_t killed_at, hole_seq, took;
	int ready[2];

	attach_reader(bus_name, &bus, &stream, &sub);
	if (pipe(ready) != 0)
		FAIL("pipe");
	parked = spawn(role, bus_name, point, ready);
	close(ready[1]);
	wait_parked(ready[0], parked);
	close(ready[0]);
	read_pre_records(sub);
	if (agentbus_stream_info_get(bus, STREAM, &info) != 0)
		FAIL("stream info");
	hole_seq = info.next_seq - 1; /* the parked producer holds the last reserved seq */

	live = spawn("live", bus_name, "", NULL);
	if (agentbus_sub_read(sub, &r, 200) != 0)
		FAIL("read went past a hole whose producer is alive (seq %llu)",
		     (unsigned long long)r.seq);
	killed_at = now_ns();
	kill_and_reap(parked);
	took = read_live_records(sub, killed_at, hole_seq);
	if (waitpid(live, NULL, 0) != live)
		FAIL("live producer");
	*gaps_so_far += 1;
	check_gaps(bus, sub, *gaps_so_far, 1); /* the stream counts them all */
	printf("reader past the hole %.2f ms after SIGKILL; %d live records intact\n", took / 1e6,
	       LIVE_RECORDS);
	agentbus_sub_close(sub);
	agentbus_stream_close(stream);
	agentbus_close(bus);
}

/*
 * Two producers die back to back, both right after reserving: the daemon
 * cannot see where the first frame ends, and must still free the readers
 * (after its stale-claim timeout) with one gap of two sequence numbers.
 */
static void run_double_death(const char *bus_name, uint64_t *gaps_so_far)
{
	struct agentbus_stream_info info;
	agentbus_stream *stream;
	agentbus_sub *sub;
	agentbus_bus *bus;
	pid_t first, second, live;
	uint64_t killed_at, hole_seq, took;
	int ready[2];

	attach_reader(bus_name, &bus, &stream, &sub);
	if (pipe(ready) != 0)
		FAIL("pipe");
	first = spawn("park", bus_name, "1", ready);
	wait_parked(ready[0], first);
	second = spawn("park-next", bus_name, "", ready);
	close(ready[1]);
	wait_parked(ready[0], second);
	close(ready[0]);
	read_pre_records(sub);
	if (agentbus_stream_info_get(bus, STREAM, &info) != 0)
		FAIL("stream info");
	hole_seq = info.next_seq - 2;
	live = spawn("live", bus_name, "", NULL);
	killed_at = now_ns();
	kill_and_reap(first);
	kill_and_reap(second);
	took = read_live_records(sub, killed_at, hole_seq + 1);
	if (waitpid(live, NULL, 0) != live)
		FAIL("live producer");
	*gaps_so_far += 2;
	check_gaps(bus, sub, *gaps_so_far, 2);
	printf("two producers killed back to back: reader past both holes %.0f ms after SIGKILL\n",
	       took / 1e6);
	agentbus_sub_close(sub);
	agentbus_stream_close(stream);
	agentbus_close(bus);
}

/*
 * A live producer stalls right after reserving, for longer than the
 * daemon's stale-claim timeout, while another client dies: its frame must
 * not be revoked (it states its intent before reserving, bus/intent.c), and
 * once it goes on, its record and every later one arrive, with no gap.
 */
static void run_live_stall(const char *bus_name, uint64_t gaps_so_far)
{
	struct agentbus_stream_info info;
	struct agentbus_record r;
	agentbus_stream *stream;
	agentbus_sub *sub;
	agentbus_bus *bus;
	pid_t stalled, idle, live;
	uint64_t hole_seq;
	int ready[2], status;

	attach_reader(bus_name, &bus, &stream, &sub);
	if (pipe(ready) != 0)
		FAIL("pipe");
	stalled = spawn("stall", bus_name, "", ready);
	wait_parked(ready[0], stalled);
	read_pre_records(sub);
	if (agentbus_stream_info_get(bus, STREAM, &info) != 0)
		FAIL("stream info");
	hole_seq = info.next_seq - 1;
	idle = spawn("idle", bus_name, "", ready);
	close(ready[1]);
	wait_parked(ready[0], idle);
	close(ready[0]);
	kill_and_reap(idle); /* a death while the frame is stuck */
	live = spawn("live", bus_name, "", NULL);
	usleep(1500000); /* past STALE_CLAIM_TIMEOUT_NS */
	if (agentbus_sub_read(sub, &r, 0) != 0)
		FAIL("read went past the frame of a stalled live producer (seq %llu)",
		     (unsigned long long)r.seq);
	check_gaps(bus, sub, gaps_so_far, 0);
	kill(stalled, SIGUSR1);
	if (waitpid(stalled, &status, 0) != stalled || !WIFEXITED(status) || WEXITSTATUS(status))
		FAIL("the stalled producer's publish failed (status %d)", status);
	if (agentbus_sub_read(sub, &r, 5000) != 1 || r.seq != hole_seq)
		FAIL("the stalled producer's record is not at seq %llu", (unsigned long long)hole_seq);
	expect_payload(&r, "stalled");
	read_live_records(sub, now_ns(), hole_seq);
	if (waitpid(live, NULL, 0) != live)
		FAIL("live producer");
	check_gaps(bus, sub, gaps_so_far, 0);
	printf("a producer stalled 1.5 s after reserving kept its frame; no gap\n");
	agentbus_sub_close(sub);
	agentbus_stream_close(stream);
	agentbus_close(bus);
}

/* Publish one record and die without closing anything. */
static int child_publish_die(const char *bus_name)
{
	agentbus_stream *stream;
	agentbus_bus *bus;

	stream = child_open(bus_name, &bus);
	publish_text(stream, "crash.once", "once");
	_exit(0);
}

/*
 * Producers that die leave their intent slots behind; the daemon frees them
 * once nothing is in question, so more of them than there are slots still
 * all publish with an intent (none counted in `intentless`).
 */
static void run_intent_slots_recycled(const char *bus_name)
{
	agentbus_stream *stream;
	agentbus_bus *bus;
	uint32_t i;

	if (agentbus_open(&bus, bus_name) != 0 || agentbus_stream_open(bus, STREAM, &stream) != 0)
		FAIL("setup");
	for (i = 0; i < STREAM_MAX_INTENTS + 16; i++) {
		pid_t child = spawn("once", bus_name, "", NULL);
		uint64_t deadline = now_ns() + 1000000000ull;

		if (waitpid(child, NULL, 0) != child)
			FAIL("child %u", i);
		/* the daemon frees the slot once the record is spilled: wait for it */
		while (now_ns() < deadline && load_relaxed(&stream->control->intents[0].owner) != 0 &&
		       load_relaxed(&stream->control->intentless) == 0)
			usleep(1000);
	}
	if (load_relaxed(&stream->control->intentless) != 0)
		FAIL("%u producers found no free intent slot", load_relaxed(&stream->control->intentless));
	printf("%u dead producers' intent slots were recycled\n", STREAM_MAX_INTENTS + 16);
	agentbus_stream_close(stream);
	agentbus_close(bus);
}

/* A subscriber that never reads holds producers back until it dies. */
static void run_subscriber_death(const char *bus_name)
{
	struct agentbus_message m = { .subject = "crash.fill", .payload_len = 900 };
	static char filler[900];
	agentbus_stream *stream;
	agentbus_bus *bus;
	int64_t r = 0;
	int ready[2], i;
	pid_t idle;

	m.payload = filler;
	if (agentbus_open(&bus, bus_name) != 0 || agentbus_stream_open(bus, STREAM, &stream) != 0 ||
	    pipe(ready) != 0)
		FAIL("setup");
	idle = spawn("idle", bus_name, "", ready);
	close(ready[1]);
	wait_parked(ready[0], idle);
	close(ready[0]);
	for (i = 0; i < 10000 && (r = agentbus_publish(stream, &m, 0)) > 0; i++)
		;
	if (r != AGENTBUS_E_BACKPRESSURE)
		FAIL("an idle subscriber should cause back-pressure, got %lld", (long long)r);
	kill_and_reap(idle);
	r = agentbus_publish(stream, &m, 10000);
	if (r <= 0)
		FAIL("producer still blocked after the idle subscriber died: %lld", (long long)r);
	printf("a dead idle subscriber released the producers\n");
	agentbus_stream_close(stream);
	agentbus_close(bus);
}

static int parent(void)
{
	struct agentbus_stream_config sc = { .ring_size = 64 << 10, .max_record = 1024 };
	struct agentbus_daemon_config dc = { 0 };
	static const char *points[] = { "1", "2", "3" };
	agentbus_daemon *daemon;
	agentbus_bus *bus;
	char bus_name[64];
	uint64_t gaps = 0;
	int i;

	snprintf(bus_name, sizeof(bus_name), "t-crash-%d", (int)getpid());
	dc.bus = bus_name;
	dc.verbose = getenv("VERBOSE") != NULL;
	if (agentbus_daemon_start(&daemon, &dc) != 0 || agentbus_open(&bus, bus_name) != 0 ||
	    agentbus_stream_create(bus, STREAM, &sc) != 0)
		FAIL("daemon and stream setup");
	for (i = 0; i < 3; i++) {
		printf("killed after %-8s: ", park_point_names[i + 1]);
		run_producer_death(bus_name, "park", points[i], &gaps);
	}
	printf("killed holding a claim: ");
	run_producer_death(bus_name, "claim", "", &gaps);
	run_double_death(bus_name, &gaps);
	run_live_stall(bus_name, gaps);
	run_intent_slots_recycled(bus_name);
	run_subscriber_death(bus_name);
	agentbus_close(bus);
	agentbus_daemon_stop(daemon);
	if (agentbus_bus_destroy(bus_name) != 0)
		FAIL("destroy");
	printf("PASS\n");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 4 && strcmp(argv[1], "park") == 0)
		return child_park(argv[2], atoi(argv[3]));
	if (argc >= 3 && strcmp(argv[1], "park-next") == 0) {
		pre_records = 0; /* reserve right behind the producer parked before us */
		return child_park(argv[2], 1);
	}
	if (argc >= 3 && strcmp(argv[1], "claim") == 0)
		return child_claim(argv[2]);
	if (argc >= 3 && strcmp(argv[1], "stall") == 0)
		return child_stall(argv[2]);
	if (argc >= 3 && strcmp(argv[1], "once") == 0)
		return child_publish_die(argv[2]);
	if (argc >= 3 && strcmp(argv[1], "live") == 0)
		return child_live(argv[2]);
	if (argc >= 3 && strcmp(argv[1], "idle") == 0)
		return child_idle_subscriber(argv[2]);
	return parent();
}
