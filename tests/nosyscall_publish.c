/*
 * nosyscall_publish.c - the workload that test_nosyscall.sh runs under
 * strace to show that publishing makes no system call while no reader
 * sleeps (issue 2, point 4; invariant 6 of DESIGN.md).
 *
 *   nosyscall_publish spin  [N]   N records to a subscriber that spins
 *   nosyscall_publish sleep [N]   N records, paced so the subscriber falls
 *                                 asleep before each one (futex wakes needed)
 *   nosyscall_publish read  [N]   N committed records read back with poll
 *
 * The publish (or read) loop is bracketed by two markers that strace shows plainly:
 * write(-1, "agentbus-nosyscall-begin", ...) and the same with "end". Both
 * fail with EBADF and do nothing else. The script counts the system calls
 * of the marking thread between them. The subscriber is another process
 * that checks it got every record in order; its exit code is ours.
 *
 * One record is published before the begin marker, so that set-up done
 * lazily on a stream's first publish is not mistaken for the hot path.
 * Pacing in sleep mode spins on clock_gettime(), which the vDSO serves
 * without entering the kernel, so the loop itself adds no system call.
 */
#include "helpers.h"

#define STREAM "nosys"
#define BEGIN_MARK "agentbus-nosyscall-begin"
#define END_MARK "agentbus-nosyscall-end"

struct shared {
	volatile int ready;    /* the subscriber is attached and reading */
	uint64_t records;      /* how many records the subscriber must see */
	enum agentbus_wait wait;
};

static struct shared *sh;

/* A system call strace shows clearly and that has no effect. */
static void mark(const char *text)
{
	ssize_t r = write(-1, text, strlen(text));

	(void)r;
}

/* Spin (no system call) for @ns nanoseconds. */
static void busy_wait_ns(uint64_t ns)
{
	uint64_t end = t_now_ns() + ns;

	while (t_now_ns() < end)
		;
}

/* The subscriber process: read every record, in order, within a deadline. */
static int subscriber_main(const char *arg)
{
	struct t_deadline d = t_deadline_ms(60000);
	struct agentbus_record rec;
	agentbus_stream *s = NULL;
	agentbus_bus *bus = NULL;
	agentbus_sub *sub = NULL;
	struct agentbus_sub_config cfg = { .start = AGENTBUS_START_NEW };
	uint64_t seen = 0, last = 0;

	(void)arg;
	sh = t_shared(sizeof(*sh));
	cfg.wait = sh->wait;
	if (agentbus_open(&bus, t_state.bus_name) < 0 ||
	    agentbus_stream_open(bus, STREAM, &s) < 0 || agentbus_subscribe(s, &cfg, &sub) < 0) {
		fprintf(stderr, "subscriber: set-up failed: %s\n", agentbus_last_error());
		return T_FAIL;
	}
	__atomic_store_n(&sh->ready, 1, __ATOMIC_RELEASE);
	while (seen < sh->records && !t_expired(&d)) {
		int r = agentbus_sub_read(sub, &rec, 100);

		if (r < 0) {
			fprintf(stderr, "subscriber: read: %d (%s)\n", r, agentbus_strerror(r));
			return T_FAIL;
		}
		if (r == 0)
			continue;
		if (last && rec.seq != last + 1) {
			fprintf(stderr, "subscriber: seq %" PRIu64 " after %" PRIu64 "\n", rec.seq,
				last);
			return T_FAIL;
		}
		last = rec.seq;
		seen++;
	}
	if (seen != sh->records) {
		fprintf(stderr, "subscriber: saw %" PRIu64 " of %" PRIu64 " records\n", seen,
			sh->records);
		return T_FAIL;
	}
	agentbus_sub_close(sub);
	agentbus_stream_close(s);
	agentbus_close(bus);
	return T_PASS;
}

/* Wait until the subscriber is attached, and in sleep mode asleep. */
static void wait_for_subscriber(agentbus_stream *s, bool sleeping)
{
	struct t_deadline d = t_deadline_ms(10000);
	struct agentbus_stream_info info;

	while (!__atomic_load_n(&sh->ready, __ATOMIC_ACQUIRE)) {
		T_ASSERT(!t_expired(&d));
		t_sleep_us(1000);
	}
	while (sleeping) {
		T_OK(agentbus_stream_stat(s, &info));
		if (info.sleepers > 0)
			break;
		T_ASSERT(!t_expired(&d));
		t_sleep_us(1000);
	}
}

/*
 * Read mode: @n records are published first; then this thread reads them
 * all with agentbus_sub_poll() between the markers. Reading what is
 * already committed must not enter the kernel either.
 */
static int read_committed(agentbus_bus *bus, uint64_t n)
{
	unsigned char payload[64] = { 0 };
	struct agentbus_message m = t_msg("bench.nosys", payload, sizeof(payload));
	struct agentbus_record rec;
	agentbus_stream *s;
	agentbus_sub *sub;
	uint64_t seen = 0, bad = 0;

	t_create_stream(bus, STREAM, 32u << 20, 4096);
	s = t_open_stream(bus, STREAM);
	sub = t_subscribe(s, AGENTBUS_START_NEW, 0, AGENTBUS_WAIT_SPIN);
	for (uint64_t i = 0; i < n; i++)
		T_OK(agentbus_publish(s, &m, T_WAIT_MS));
	/* one read outside the markers, for any set-up done on a first read */
	T_EQ(agentbus_sub_poll(sub, &rec), 1);

	mark(BEGIN_MARK);
	while (agentbus_sub_poll(sub, &rec) == 1) {
		if (rec.seq != seen + 2)
			bad++;
		seen++;
	}
	mark(END_MARK);

	T_EQ(bad, 0);
	T_EQ(seen, n - 1);
	agentbus_sub_close(sub);
	agentbus_stream_close(s);
	return t_done();
}

int main(int argc, char **argv)
{
	static const struct t_role roles[] = { { "subscriber", subscriber_main } };
	const char *mode = argc > 1 ? argv[1] : "";
	bool sleep_mode = strcmp(mode, "sleep") == 0;
	uint64_t n = argc > 2 ? strtoull(argv[2], NULL, 10) : (sleep_mode ? 200 : 100000);
	unsigned char payload[64];
	struct agentbus_message m = t_msg("bench.nosys", payload, sizeof(payload));
	agentbus_stream *s;
	agentbus_bus *bus;
	pid_t child;
	uint64_t failed = 0;

	t_child_dispatch(argc, argv, roles, 1);
	if ((!sleep_mode && strcmp(mode, "spin") != 0 && strcmp(mode, "read") != 0) || n < 2) {
		fprintf(stderr, "usage: %s spin|sleep|read [N >= 2]\n", argv[0]);
		return T_FAIL;
	}
	bus = t_setup(mode[0] == 's' ? (sleep_mode ? "nosys-sleep" : "nosys-spin") : "nosys-read");
	if (strcmp(mode, "read") == 0)
		return read_committed(bus, n);

	sh = t_shared(sizeof(*sh));
	sh->records = n + 1;
	sh->wait = sleep_mode ? AGENTBUS_WAIT_SLEEP : AGENTBUS_WAIT_SPIN;
	memset(payload, 0x5a, sizeof(payload));

	/* room for every record: back-pressure must not be what is measured */
	t_create_stream(bus, STREAM, 32u << 20, 4096);
	s = t_open_stream(bus, STREAM);
	child = t_spawn("subscriber", "-");
	wait_for_subscriber(s, false);
	T_OK(agentbus_publish(s, &m, 0));
	if (sleep_mode)
		wait_for_subscriber(s, true);

	mark(BEGIN_MARK);
	for (uint64_t i = 0; i < n; i++) {
		if (sleep_mode)
			busy_wait_ns(2000000); /* long enough for the reader to fall asleep */
		if (agentbus_publish(s, &m, 0) < 0)
			failed++;
	}
	mark(END_MARK);

	T_EQ(failed, 0);
	T_EQ(t_wait_child(child, 60000), 0);
	agentbus_stream_close(s);
	return t_done();
}
