/*
 * test_daemon_kill.c - SIGKILL of the daemon under load, then a restart
 * (issue 3, point 5a): every record whose publish returned WRITTEN or
 * SYNCED is in the log, in order and intact, and the stream goes on after
 * it. So is every record published at MEMORY when shared memory survived
 * the crash: the new daemon adopts the ring and spills what the old one had
 * not (only a reboot may lose those, as the durability contract says).
 *
 * Everything is a separate process, this program re-executed with a role:
 * the daemon (agentbus_daemon_start, then waits for SIGTERM) and producers
 * that publish at WRITTEN, SYNCED or MEMORY and, only once a publish has returned
 * success, append its seq, key, length and payload hash to a file of their
 * own (O_APPEND; this process outlives them, so no fsync is needed). Each
 * round the test kills the daemon with SIGKILL while they publish, then the
 * producers, and starts a new daemon on the same bus and data directory. In
 * most rounds shared memory survives and the new daemon adopts the rings; in
 * every other one it is removed first, as a reboot would (the data directory
 * stays). After each restart the logs are replayed from their files and
 * every acknowledged record is looked up there; a new publish must take the
 * next sequence number. At the end agentbus_verify() must find no problem.
 * Around that: clients that outlive a daemon reattach to the next one under
 * their client id, and a handle of a bus destroyed and made anew does not.
 *
 * AGENTBUS_KILL_ROUNDS sets the rounds (default 5); AGENTBUS_TEST_SEED
 * repeats a run's random timings.
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "bus/internal.h"
#include "bus/protocol.h"
#include "durability.h"

#define STREAM_BATCH "kill-b"   /* fsync batch: WRITTEN and SYNCED producers */
#define STREAM_NEVER "kill-n"   /* fsync never: WRITTEN producers */
#define STREAM_KEEP "kill-keep" /* overflow block: subscriptions that outlive a daemon */
#define STREAM_AGAIN "kill-again" /* made by a client of a killed daemon, through the next */
#define STREAM_CLAIM "kill-claim" /* a claim left by a client that reattached, then died */
#define STREAM_DROP "kill-drop"   /* subscribed to by a client its daemon dropped */
#define PRODUCER_COUNT 5
#define MIN_ACKS 20             /* each producer's, before the daemon is killed */
#define ROUND_BASE 1000000u     /* key index of round r starts at r * ROUND_BASE */
#define MAX_LEN 2000
#define MEMORY_PACE_US 200      /* a MEMORY producer waits for nothing: keep its log small */

/* One acknowledged publish, as a producer records it. */
struct ack {
	uint64_t seq;
	uint64_t key;
	uint64_t hash;      /* t_fnv1a() of the payload */
	uint32_t len;       /* payload bytes */
	uint32_t level;     /* enum agentbus_durability it returned at */
};

/* Producer p: its stream and level (0 = WRITTEN and SYNCED by turns). */
static const struct {
	const char *stream;
	enum agentbus_durability level;
} producer_plan[PRODUCER_COUNT + 1] = {
	{ NULL, 0 }, /* 0: the test itself, publishing after each restart */
	{ STREAM_BATCH, AGENTBUS_DURABILITY_WRITTEN },
	{ STREAM_BATCH, AGENTBUS_DURABILITY_SYNCED },
	{ STREAM_BATCH, 0 },
	{ STREAM_NEVER, AGENTBUS_DURABILITY_WRITTEN },
	{ STREAM_BATCH, AGENTBUS_DURABILITY_MEMORY },
};

/* Odd rounds end in a reboot: shared memory is removed with the daemon. */
static bool round_reboots(unsigned round)
{
	return round % 2 == 1;
}

/* Only a reboot may lose a MEMORY record: was @a's round one? */
static bool may_be_lost(const struct ack *a)
{
	return a->level == AGENTBUS_DURABILITY_MEMORY &&
	       round_reboots((unsigned)((a->key & 0xffffffffu) / ROUND_BASE));
}

static const char *level_name(uint32_t level)
{
	return level == AGENTBUS_DURABILITY_SYNCED ? "synced" :
	       level == AGENTBUS_DURABILITY_WRITTEN ? "written" : "memory";
}

static const char *streams[] = { STREAM_BATCH, STREAM_NEVER };

/* <data dir>/acks-<producer>-<stream>: where acks of that pair go. */
static void ack_path(char *out, size_t len, uint32_t producer, const char *stream)
{
	snprintf(out, len, "%s/acks-%u-%s", getenv("AGENTBUS_DATA"), producer, stream);
}

static void append_ack(int fd, const struct ack *a)
{
	if (write(fd, a, sizeof(*a)) != (ssize_t)sizeof(*a)) {
		fprintf(stderr, "cannot record an ack: %s\n", strerror(errno));
		_exit(T_FAIL);
	}
}

/* ------------------------------------------------------------------------ */
/* Children                                                                  */
/* ------------------------------------------------------------------------ */

/* Errors a producer may get because the daemon was killed under it. */
static bool daemon_death_error(int64_t r)
{
	return r == AGENTBUS_E_NO_DAEMON || r == AGENTBUS_E_REVOKED ||
	       r == AGENTBUS_E_BACKPRESSURE || r == AGENTBUS_E_TIMEOUT;
}

/*
 * A producer: @arg is "ID INDEX0". Publishes records d_key(ID, INDEX0 + i)
 * at its plan's level until killed (or 60 s), recording each success.
 */
static int role_producer(const char *arg)
{
	unsigned char payload[MAX_LEN + 8];
	struct agentbus_message m;
	struct t_deadline d = t_deadline_ms(60000);
	agentbus_stream *stream;
	agentbus_bus *bus;
	uint32_t id, index0, i;
	char path[512];
	int fd, r;

	if (sscanf(arg, "%u %u", &id, &index0) != 2 || id == 0 || id > PRODUCER_COUNT)
		return T_FAIL;
	ack_path(path, sizeof(path), id, producer_plan[id].stream);
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	r = fd < 0 ? -errno : t_open_bus(t_state.bus_name, &bus, 10000);
	if (r == 0)
		r = agentbus_stream_open(bus, producer_plan[id].stream, &stream);
	if (r < 0) {
		fprintf(stderr, "producer %u: %d (%s): %s\n", id, r, agentbus_strerror(r),
			agentbus_last_error());
		return T_FAIL;
	}
	r = T_PASS;
	for (i = 0; r == T_PASS && !t_expired(&d); i++) {
		uint64_t key = d_key(id, index0 + i);
		size_t len = d_len(key, MAX_LEN);
		enum agentbus_durability level = producer_plan[id].level;
		int64_t seq;

		if (!level)
			level = i % 2 ? AGENTBUS_DURABILITY_SYNCED : AGENTBUS_DURABILITY_WRITTEN;
		d_fill(payload, len, key);
		m = t_msg("kill.rec", payload, len);
		seq = agentbus_publish_durable(stream, &m, 1, T_WAIT_MS, level);
		if (seq > 0) {
			append_ack(fd, &(struct ack){ (uint64_t)seq, key, t_fnv1a(payload, len),
						      (uint32_t)len, level });
			if (level == AGENTBUS_DURABILITY_MEMORY)
				t_sleep_us(MEMORY_PACE_US);
			continue;
		}
		if (daemon_death_error(seq))
			break;
		fprintf(stderr, "producer %u: publish: %" PRId64 " (%s): %s\n", id, seq,
			agentbus_strerror((int)seq), agentbus_last_error());
		r = T_FAIL;
	}
	agentbus_stream_close(stream);
	agentbus_close(bus);
	close(fd);
	return r;
}

/* A subscriber on STREAM_KEEP that reads nothing and waits to be killed. */
static int role_subscriber(const char *arg)
{
	agentbus_stream *stream;
	agentbus_sub *sub;
	agentbus_bus *bus;

	(void)arg;
	if (t_open_bus(t_state.bus_name, &bus, 10000) != 0 ||
	    agentbus_stream_open(bus, STREAM_KEEP, &stream) != 0 ||
	    agentbus_subscribe(stream, NULL, &sub) != 0)
		return T_FAIL;
	for (;;)
		pause();
}

/* What the claimer child and the test tell each other (t_shared). */
struct claimer_talk {
	int32_t step;       /* CLAIMER_*, set by the claimer */
	int32_t go;         /* 1: the next daemon serves the bus (set by the test) */
	int32_t keeper;     /* pid of the claimer's child that keeps its alive lock */
	uint32_t client_id; /* the claimer's */
};

enum { CLAIMER_OPEN = 1, CLAIMER_CLAIMED = 2, CLAIMER_FAILED = 3 };

static struct claimer_talk *claimer_talk(void)
{
	return t_shared(sizeof(struct claimer_talk));
}

/* A child that keeps @bus's alive lock (the flock belongs to the open file,
 * which it shares with its parent) but not its connection. Through a copy
 * of the descriptor: the library closes the child's own copies at the fork. */
static pid_t keep_alive_lock(agentbus_bus *bus, struct claimer_talk *talk)
{
	int lock_copy = dup(bus->alive_fd);
	pid_t pid;

	if (lock_copy < 0)
		return -1;
	pid = fork();
	if (pid != 0)
		close(lock_copy);
	if (pid == 0) {
		/* Bounded, and holding no output open, should the test fail
		 * before it kills us. */
		close(STDOUT_FILENO);
		close(STDERR_FILENO);
		alarm(60);
		__atomic_store_n(&talk->keeper, getpid(), __ATOMIC_RELEASE);
		for (;;)
			pause();
	}
	return pid;
}

/*
 * Opens the bus under one daemon; once the test says the next one serves it,
 * makes a control request (which reattaches it there), claims a record
 * without committing it, and waits to be killed. A child of its own keeps
 * its alive lock, so that only its closed socket can tell the daemon that
 * it died.
 */
static int role_claimer(const char *arg)
{
	struct claimer_talk *talk = claimer_talk();
	struct t_deadline d = t_deadline_ms(60000);
	struct agentbus_message m = t_msg("kill.claim", NULL, 0);
	struct agentbus_claim claim;
	agentbus_stream *stream;
	agentbus_bus *bus;
	int r;

	(void)arg;
	r = t_open_bus(t_state.bus_name, &bus, 10000);
	if (r == 0)
		r = agentbus_stream_open(bus, STREAM_CLAIM, &stream);
	if (r != 0)
		goto fail;
	talk->client_id = bus->client_id;
	__atomic_store_n(&talk->step, CLAIMER_OPEN, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&talk->go, __ATOMIC_ACQUIRE) && !t_expired(&d))
		t_sleep_us(2000);
	r = agentbus_stream_create(bus, STREAM_CLAIM, NULL);
	if (r != AGENTBUS_E_EXISTS)
		goto fail;
	r = agentbus_claim(stream, &m, 64, T_WAIT_MS, &claim);
	if (r != 0 || keep_alive_lock(bus, talk) < 0)
		goto fail;
	while (!__atomic_load_n(&talk->keeper, __ATOMIC_ACQUIRE) && !t_expired(&d))
		t_sleep_us(2000);
	__atomic_store_n(&talk->step, CLAIMER_CLAIMED, __ATOMIC_RELEASE);
	while (!t_expired(&d))
		t_sleep_us(100000);
	return T_FAIL;
fail:
	fprintf(stderr, "claimer: %d (%s): %s\n", r, agentbus_strerror(r), agentbus_last_error());
	__atomic_store_n(&talk->step, CLAIMER_FAILED, __ATOMIC_RELEASE);
	return T_FAIL;
}

/* ------------------------------------------------------------------------ */
/* Checking the log                                                          */
/* ------------------------------------------------------------------------ */

/* What the replay of one stream's log found, by seq. */
struct log_view {
	uint64_t end;        /* one past the highest seq the arrays cover */
	uint64_t *key;       /* 0 where no record */
	uint64_t *hash;
	uint32_t *len;
	uint64_t records;
	uint64_t last_seq;   /* of the last record */
};

/* Replay all of @name's log from its files: in order, intact. */
static void replay_all(const char *name, uint64_t end, struct log_view *v)
{
	struct agentbus_replay_config cfg = { .start = AGENTBUS_START_OLDEST };
	struct agentbus_record rec;
	agentbus_replay *replay = NULL;
	uint64_t key;
	int r;

	*v = (struct log_view){ .end = end };
	v->key = calloc(end, sizeof(*v->key));
	v->hash = calloc(end, sizeof(*v->hash));
	v->len = calloc(end, sizeof(*v->len));
	T_ASSERT(v->key && v->hash && v->len);
	T_OK(agentbus_replay_open(NULL, name, &cfg, &replay));
	while ((r = agentbus_replay_next(replay, &rec)) == 1) {
		T_ASSERTF(rec.seq > v->last_seq, "log of '%s': seq %" PRIu64 " after %" PRIu64, name,
			  rec.seq, v->last_seq);
		T_ASSERTF(rec.seq < end, "log of '%s': seq %" PRIu64 " but next_seq is %" PRIu64, name,
			  rec.seq, end);
		T_ASSERTF(d_intact(rec.payload, rec.payload_len, &key),
			  "log of '%s': seq %" PRIu64 " has a damaged payload", name, rec.seq);
		v->key[rec.seq] = key;
		v->hash[rec.seq] = t_fnv1a(rec.payload, rec.payload_len);
		v->len[rec.seq] = rec.payload_len;
		v->last_seq = rec.seq;
		v->records++;
	}
	agentbus_replay_close(replay);
	T_ASSERTF(r == 0, "replay of '%s' stopped after seq %" PRIu64 ": %d (%s)", name, v->last_seq,
		  r, agentbus_strerror(r));
}

static void view_free(struct log_view *v)
{
	free(v->key);
	free(v->hash);
	free(v->len);
}

/* Every ack of @producer on @name is in @v. Returns how many there were. */
static uint64_t check_acks(const char *name, uint32_t producer, const struct log_view *v,
			   const struct agentbus_stream_info *info)
{
	char path[512];
	struct ack a;
	uint64_t n = 0, prev = 0;
	FILE *f;

	ack_path(path, sizeof(path), producer, name);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (fread(&a, sizeof(a), 1, f) == 1) {
		bool lost = info->lost_first_seq && a.seq >= info->lost_first_seq &&
			    a.seq <= info->lost_last_seq;

		if (may_be_lost(&a))
			continue; /* its seq may even belong to a later record now */
		T_ASSERTF(a.seq > prev, "producer %u: acks out of order (%" PRIu64 " after %" PRIu64 ")",
			  producer, a.seq, prev);
		T_ASSERTF(a.seq < v->end && v->key[a.seq] == a.key,
			  "stream '%s': seq %" PRIu64 " (producer %u, key %" PRIx64 ", acked %s) is %s"
			  "%s", name, a.seq, producer, a.key, level_name(a.level),
			  a.seq < v->end && v->key[a.seq] ?
			  "another record in the log" : "missing from the log",
			  lost ? " (reported lost)" : "");
		T_ASSERTF(v->hash[a.seq] == a.hash && v->len[a.seq] == a.len,
			  "stream '%s': seq %" PRIu64 " differs from what was acked", name, a.seq);
		prev = a.seq;
		n++;
	}
	fclose(f);
	return n;
}

static void print_problem(void *arg, const struct agentbus_problem *p)
{
	(void)arg;
	fprintf(stderr, "verify: stream '%s' segment %s offset %" PRIu64 " seq %" PRIu64 ": %s\n",
		p->stream, p->segment, p->file_offset, p->seq, p->what);
}

/* Wait (bounded) until the restarted daemon has written all @s holds. */
static struct agentbus_stream_info wait_spilled(agentbus_stream *s, const char *name)
{
	struct t_deadline d = t_deadline_ms(20000);
	struct agentbus_stream_info info;

	for (;;) {
		info = d_stat(s);
		if (info.written_seq >= info.next_seq)
			return info;
		T_ASSERTF(!t_expired(&d), "stream '%s': written_seq %" PRIu64 " of %" PRIu64
			  " after the restart (spill_error %d)", name, info.written_seq,
			  info.next_seq, info.spill_error);
		t_sleep_us(5000);
	}
}

/*
 * After a restart: every acked record of @name is in its log, and a new
 * publish takes the next sequence number (recorded as producer 0's ack).
 */
static void check_stream(agentbus_bus *bus, const char *name, unsigned round)
{
	struct agentbus_stream_info info;
	struct log_view v;
	agentbus_stream *s = t_open_stream(bus, name);
	uint64_t acks = 0, key = d_key(0, round);
	char path[512];
	int64_t seq;
	int fd;

	info = wait_spilled(s, name);
	if (info.lost_first_seq)
		printf("# round %u: stream '%s' reports seqs %" PRIu64 "-%" PRIu64 " lost\n", round,
		       name, info.lost_first_seq, info.lost_last_seq);
	T_EQ(info.spill_error, 0);
	T_EQ(info.log_first_seq, 1);
	replay_all(name, info.next_seq, &v);
	for (uint32_t p = 0; p <= PRODUCER_COUNT; p++)
		if (p == 0 || strcmp(producer_plan[p].stream, name) == 0)
			acks += check_acks(name, p, &v, &info);
	printf("# round %u: '%s': %" PRIu64 " acked records all in a log of %" PRIu64
	       " records (next seq %" PRIu64 ")\n", round, name, acks, v.records, info.next_seq);

	/* The sequence goes on after everything there is. */
	seq = T_OK(d_publish(s, "kill.next", key, 100, AGENTBUS_DURABILITY_WRITTEN, T_WAIT_MS));
	T_EQ(seq, info.next_seq);
	T_ASSERT((uint64_t)seq > v.last_seq);
	{
		unsigned char payload[100];

		d_fill(payload, sizeof(payload), key);
		ack_path(path, sizeof(path), 0, name);
		fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		T_ASSERT(fd >= 0);
		append_ack(fd, &(struct ack){ (uint64_t)seq, key, t_fnv1a(payload, 100), 100,
					      AGENTBUS_DURABILITY_WRITTEN });
		close(fd);
	}
	view_free(&v);
	agentbus_stream_close(s);
}

/* ------------------------------------------------------------------------ */
/* Rounds                                                                    */
/* ------------------------------------------------------------------------ */

/* Acks recorded so far by @producer. */
static uint64_t acks_of(uint32_t producer)
{
	char path[512];
	struct stat st;

	ack_path(path, sizeof(path), producer, producer_plan[producer].stream);
	return stat(path, &st) == 0 ? (uint64_t)st.st_size / sizeof(struct ack) : 0;
}

/* Kill @pid; it must have been running, or have stopped for a reason we accept. */
static void kill_producer(pid_t pid, uint32_t id)
{
	int status;

	kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	t_forget_child(pid);
	T_ASSERTF(!WIFEXITED(status) || WEXITSTATUS(status) == T_PASS,
		  "producer %u exited with %d (see its message above)", id, WEXITSTATUS(status));
}

/* One round: producers under load, SIGKILL of @daemon, maybe a reboot. */
static void run_round(unsigned round, uint64_t *rng, pid_t daemon)
{
	pid_t producers[PRODUCER_COUNT + 1];
	struct t_deadline d = t_deadline_ms(30000);
	char arg[64];
	bool rebooted = round_reboots(round);
	uint64_t extra_ms = 20 + t_rand(rng) % 300;

	for (uint32_t p = 1; p <= PRODUCER_COUNT; p++) {
		snprintf(arg, sizeof(arg), "%u %u", p, round * ROUND_BASE);
		producers[p] = t_spawn("producer", arg);
	}
	/* Under load: every producer has had publishes acknowledged. */
	for (uint32_t p = 1; p <= PRODUCER_COUNT; p++) {
		uint64_t want = acks_of(p) + MIN_ACKS;

		while (acks_of(p) < want) {
			T_ASSERTF(!t_expired(&d), "producer %u: fewer than %u acks in 30 s", p, MIN_ACKS);
			t_sleep_us(2000);
		}
	}
	t_sleep_us(extra_ms * 1000);

	t_kill_child(daemon);
	t_sleep_us(t_rand(rng) % 5000);
	for (uint32_t p = 1; p <= PRODUCER_COUNT; p++)
		kill_producer(producers[p], p);
	printf("# round %u: daemon killed after %" PRIu64 " ms more%s\n", round, extra_ms,
	       rebooted ? "; reboot (shared memory removed)" : "");
	if (rebooted)
		t_remove_bus_shm();
}

/* Wait (bounded) until @s has @want subscriptions. */
static void wait_subscriptions(agentbus_stream *s, uint32_t want, const char *why)
{
	struct t_deadline d = t_deadline_ms(5000);

	while (d_stat(s).subscriptions != want) {
		T_ASSERTF(!t_expired(&d), "%s: %u subscriptions, expected %u", why,
			  d_stat(s).subscriptions, want);
		t_sleep_us(5000);
	}
}

/* A stand-in for a daemon that takes a client back (its reattach), reads
 * its next request and dies before answering. */
struct dropper {
	int listen_fd;     /* bound where the daemon's socket is */
	ssize_t received;  /* bytes of the request it took; -1 if none came in 10 s */
};

/* Wait (10 s at most) for a message on @fd and read it into @request. */
static ssize_t receive_one(int fd, struct control_request *request)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	if (poll(&p, 1, 10000) != 1)
		return -1;
	return recv(fd, request, sizeof(*request), 0);
}

static void *drop_one_request(void *arg)
{
	struct dropper *dr = arg;
	struct pollfd p = { .fd = dr->listen_fd, .events = POLLIN };
	struct control_reply welcome = { .magic = PROTOCOL_MAGIC };
	struct control_request request;
	int fd;

	dr->received = -1;
	if (poll(&p, 1, 10000) != 1)
		return NULL;
	fd = accept4(dr->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return NULL;
	dr->received = receive_one(fd, &request);
	if (dr->received == (ssize_t)sizeof(request) && request.op == OP_REATTACH)
		dr->received = send(fd, &welcome, sizeof(welcome), MSG_NOSIGNAL) ==
			       (ssize_t)sizeof(welcome) ? receive_one(fd, &request) : -1;
	close(fd);
	return NULL;
}

/*
 * @bus's daemon was killed. A control request through it finds no daemon
 * (and says so); one that a daemon takes and dies on before answering fails
 * saying that it may have been carried out, since repeating it could do it
 * twice. Neither leaves the handle unable to reach the next daemon.
 */
static void check_requests_between_daemons(agentbus_bus *bus)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct dropper dr;
	pthread_t thread;
	char dir[512];
	int n, r;

	r = agentbus_stream_create(bus, STREAM_AGAIN, NULL);
	T_EQ(r, AGENTBUS_E_NO_DAEMON);
	T_ASSERTF(strstr(agentbus_last_error(), "no daemon serves"),
		  "no daemon, but the error says: %s", agentbus_last_error());

	t_bus_shm_dir(dir, sizeof(dir));
	n = snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/daemon.sock", dir);
	T_ASSERTF(n > 0 && (size_t)n < sizeof(addr.sun_path), "%s/daemon.sock is too long", dir);
	unlink(addr.sun_path); /* the killed daemon's */
	dr.listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	T_ASSERT(dr.listen_fd >= 0);
	T_ASSERT(bind(dr.listen_fd, (struct sockaddr *)&addr, sizeof(addr)) == 0);
	T_ASSERT(listen(dr.listen_fd, 1) == 0);
	T_ASSERT(pthread_create(&thread, NULL, drop_one_request, &dr) == 0);
	r = agentbus_stream_create(bus, STREAM_AGAIN, NULL);
	pthread_join(thread, NULL);
	close(dr.listen_fd);
	unlink(addr.sun_path);
	T_ASSERTF(dr.received > 0, "the client never sent its request to the stand-in daemon");
	T_EQ(r, AGENTBUS_E_NO_DAEMON);
	T_ASSERTF(strstr(agentbus_last_error(), "may or may not have been carried out"),
		  "a request lost with its daemon, but the error says: %s", agentbus_last_error());
}

/*
 * Clients of a killed daemon that still run keep their subscriptions under
 * the next daemon (it sees each hold its lock file); one that dies then has
 * its slot freed. On an overflow-block stream a freed live slot would let
 * producers overwrite what its reader has not read. Their control requests
 * go to the next daemon, and so do their waits for a record to reach the
 * log: the handle reconnects, and keeps its client id.
 */
static pid_t check_live_clients_outlive_daemon(pid_t daemon)
{
	struct agentbus_stream_config block = { .ring_size = 64u << 10,
						.overflow = AGENTBUS_OVERFLOW_BLOCK };
	struct agentbus_record rec;
	agentbus_stream *old_stream, *s;
	agentbus_bus *old_bus, *bus;
	agentbus_sub *sub;
	pid_t child;
	int i;

	old_bus = NULL;
	T_ASSERT(t_open_bus(t_state.bus_name, &old_bus, 10000) == 0);
	d_create(old_bus, STREAM_KEEP, &block);
	old_stream = t_open_stream(old_bus, STREAM_KEEP);
	T_OK(agentbus_subscribe(old_stream, NULL, &sub));
	child = t_spawn("subscriber", "");
	wait_subscriptions(old_stream, 2, "before the kill");

	t_kill_child(daemon);
	check_requests_between_daemons(old_bus);
	daemon = t_start_daemon_child(&bus);
	/* A durable wait, the handle's first call to need the new daemon. */
	T_OK(d_publish(old_stream, "kill.keep", d_key(0, 99), 64, AGENTBUS_DURABILITY_WRITTEN,
		       T_WAIT_MS));
	T_OK(agentbus_stream_create(old_bus, STREAM_AGAIN, &block));
	T_OK(agentbus_stream_delete(old_bus, STREAM_AGAIN));
	s = t_open_stream(bus, STREAM_KEEP);
	t_sleep_us(200000); /* 100 ticks of the new daemon's unblocker */
	wait_subscriptions(s, 2, "live clients of the killed daemon");
	t_kill_child(child);
	wait_subscriptions(s, 1, "after one of them died");

	for (i = 0; i < 5; i++)
		T_OK(d_publish(s, "kill.keep", d_key(0, (uint32_t)i), 64, AGENTBUS_DURABILITY_MEMORY,
			       T_WAIT_MS));
	for (i = 0; i < 6; i++) {
		T_ASSERTF(agentbus_sub_read(sub, &rec, T_WAIT_MS) == 1,
			  "the old subscription lost record %d", i);
		T_EQ(rec.payload_len, 64);
	}
	printf("# a live client of the killed daemon kept its subscription and reached the next "
	       "daemon; a dead one's was freed\n");
	agentbus_sub_close(sub);
	agentbus_stream_close(old_stream);
	agentbus_close(old_bus); /* its goodbye goes to the next daemon */
	agentbus_stream_close(s);
	agentbus_close(bus);
	return daemon;
}

/* Wait (bounded) for the claimer to reach @step. */
static void wait_claimer(struct claimer_talk *talk, int32_t step)
{
	struct t_deadline d = t_deadline_ms(20000);
	int32_t now;

	while ((now = __atomic_load_n(&talk->step, __ATOMIC_ACQUIRE)) != step) {
		T_ASSERTF(now != CLAIMER_FAILED, "the claimer failed (see its message above)");
		T_ASSERTF(!t_expired(&d), "the claimer is at step %d, not %d", now, step);
		t_sleep_us(2000);
	}
}

/*
 * A client of a killed daemon reattaches to the next one under its client
 * id: then its socket's closing is its death notice there, as for a client
 * that said hello. Here the claimer's alive lock outlives it (a child of its
 * own holds it), so the closed socket is the only notice: its claim must
 * become a gap. Before reattaching, the next daemon did not know whose the
 * connection was, and took the claimer for alive as long as the lock was held.
 */
static pid_t check_reattached_client_dies(pid_t daemon)
{
	struct claimer_talk *talk = claimer_talk();
	struct t_deadline d = t_deadline_ms(10000);
	agentbus_stream *s;
	agentbus_bus *bus;
	pid_t claimer;
	uint64_t gaps;

	T_ASSERT(t_open_bus(t_state.bus_name, &bus, 10000) == 0);
	d_create(bus, STREAM_CLAIM, &(struct agentbus_stream_config){ .ring_size = 64u << 10 });
	agentbus_close(bus);
	claimer = t_spawn("claimer", "");
	wait_claimer(talk, CLAIMER_OPEN);
	t_kill_child(daemon);
	daemon = t_start_daemon_child(&bus);
	s = t_open_stream(bus, STREAM_CLAIM);
	gaps = d_stat(s).gaps;
	__atomic_store_n(&talk->go, 1, __ATOMIC_RELEASE);
	wait_claimer(talk, CLAIMER_CLAIMED);
	t_kill_child(claimer);
	while (d_stat(s).gaps == gaps && !t_expired(&d))
		t_sleep_us(5000);
	kill(__atomic_load_n(&talk->keeper, __ATOMIC_ACQUIRE), SIGKILL);
	T_ASSERTF(d_stat(s).gaps == gaps + 1, "the claim of reattached client %u, killed, is "
		  "not a gap after 10 s (%" PRIu64 " gaps)", talk->client_id, d_stat(s).gaps);
	printf("# the claim of a client that reattached to the next daemon, then died, is a gap\n");
	agentbus_stream_close(s);
	agentbus_close(bus);
	return daemon;
}

/* Wait (bounded) until @bus's connection is closed by the daemon. */
static void wait_hung_up(agentbus_bus *bus)
{
	struct pollfd p = { .fd = bus->socket_fd, .events = POLLRDHUP };

	T_ASSERTF(poll(&p, 1, 10000) == 1 && (p.revents & (POLLHUP | POLLRDHUP)),
		  "the daemon did not drop a client that sent it garbage");
}

/*
 * A live daemon that drops a live client (here for a malformed request) takes
 * it for dead; when the client reconnects under the same id, the daemon must
 * know it for alive again, or it frees the client's new subscription slot
 * (the id is one it gave out, and no connection of its has it). Two requests
 * after subscribing: the daemon's loop looks at the streams after serving
 * the first, before the second.
 */
static void check_dropped_client_reattaches(void)
{
	agentbus_stream *s;
	agentbus_bus *bus;
	agentbus_sub *sub;

	T_ASSERT(t_open_bus(t_state.bus_name, &bus, 10000) == 0);
	d_create(bus, STREAM_DROP, &(struct agentbus_stream_config){ .ring_size = 64u << 10 });
	s = t_open_stream(bus, STREAM_DROP);
	T_ASSERT(send(bus->socket_fd, "x", 1, MSG_NOSIGNAL) == 1);
	wait_hung_up(bus);
	T_EQ(agentbus_stream_create(bus, STREAM_DROP, NULL), AGENTBUS_E_EXISTS);
	T_OK(agentbus_subscribe(s, NULL, &sub));
	T_EQ(agentbus_stream_create(bus, STREAM_DROP, NULL), AGENTBUS_E_EXISTS);
	T_EQ(agentbus_stream_create(bus, STREAM_DROP, NULL), AGENTBUS_E_EXISTS);
	T_ASSERTF(d_stat(s).subscriptions == 1, "the daemon freed the subscription of a "
		  "client it had dropped, which reconnected (%u subscriptions)",
		  d_stat(s).subscriptions);
	printf("# a client the daemon dropped reconnected, and the daemon knows it for alive\n");
	agentbus_sub_close(sub);
	agentbus_stream_close(s);
	agentbus_close(bus);
}

/* Is the file at @bus's alive lock path the one @bus holds? */
static bool alive_file_is(agentbus_bus *bus)
{
	char path[PATH_LEN + 32];
	struct stat ours, there;

	snprintf(path, sizeof(path), "%s/%s/%u", bus->dir, CLIENTS_DIR, bus->client_id);
	return fstat(bus->alive_fd, &ours) == 0 && stat(path, &there) == 0 &&
	       ours.st_dev == there.st_dev && ours.st_ino == there.st_ino;
}

/*
 * @old was opened before its daemon stopped; then the bus was destroyed and
 * a new daemon made it anew, so client ids start again. @old must not
 * reconnect to that other bus, and closing it must leave alone the alive
 * file of the new client that has its id.
 */
static void check_bus_created_anew(agentbus_bus *old)
{
	struct t_deadline d = t_deadline_ms(20000);
	agentbus_bus *fresh;
	pid_t daemon;
	int r, status;

	T_OK(agentbus_bus_destroy(t_state.bus_name));
	daemon = t_start_daemon_child(&fresh);
	while (fresh->client_id < old->client_id && !t_expired(&d)) {
		agentbus_close(fresh);
		T_ASSERT(t_open_bus(t_state.bus_name, &fresh, 10000) == 0);
	}
	T_ASSERTF(fresh->client_id == old->client_id, "new client id %u, old %u",
		  fresh->client_id, old->client_id);
	r = agentbus_stream_create(old, STREAM_AGAIN, NULL);
	T_EQ(r, AGENTBUS_E_NO_DAEMON);
	T_ASSERTF(strstr(agentbus_last_error(), "created anew"),
		  "a handle of the destroyed bus, but the error says: %s", agentbus_last_error());
	agentbus_close(old);
	T_ASSERTF(alive_file_is(fresh), "closing a handle of the destroyed bus removed the "
		  "alive file of the new client %u", fresh->client_id);
	printf("# a handle of a destroyed bus does not reach the bus made anew, nor touch "
	       "its client of the same id\n");
	agentbus_close(fresh);
	kill(daemon, SIGTERM);
	status = t_wait_child(daemon, 20000);
	T_ASSERTF(status == T_PASS, "the daemon of the new bus ended with %d on SIGTERM", status);
}

int main(int argc, char **argv)
{
	static const struct t_role roles[] = { { "daemon", t_role_daemon },
					       { "producer", role_producer },
					       { "subscriber", role_subscriber },
					       { "claimer", role_claimer } };
	struct agentbus_stream_config batch = { .ring_size = 1u << 20, .segment_size = 1u << 20,
						.fsync = AGENTBUS_FSYNC_BATCH };
	struct agentbus_stream_config never = { .ring_size = 256u << 10, .segment_size = 1u << 20,
						.fsync = AGENTBUS_FSYNC_NEVER };
	const char *env = getenv("AGENTBUS_KILL_ROUNDS");
	unsigned rounds = env && atoi(env) > 0 ? (unsigned)atoi(env) : 5;
	const char *seed_env = getenv("AGENTBUS_TEST_SEED");
	uint64_t seed = seed_env ? strtoull(seed_env, NULL, 0) : (uint64_t)time(NULL) ^ (uint64_t)getpid();
	uint64_t rng = seed | 1;
	agentbus_bus *bus, *old;
	pid_t daemon;
	int status, problems;

	t_child_dispatch(argc, argv, roles, 4);
	t_begin("kill");
	printf("# seed %" PRIu64 " (AGENTBUS_TEST_SEED), %u rounds\n", seed, rounds);
	claimer_talk(); /* before any child: they inherit it */
	setenv("AGENTBUS_BUS", t_state.bus_name, 1);

	daemon = t_start_daemon_child(&bus);
	d_create(bus, STREAM_BATCH, &batch);
	d_create(bus, STREAM_NEVER, &never);
	agentbus_close(bus);
	for (unsigned round = 0; round < rounds; round++) {
		run_round(round, &rng, daemon);
		daemon = t_start_daemon_child(&bus);
		for (size_t i = 0; i < 2; i++)
			check_stream(bus, streams[i], round);
		agentbus_close(bus);
		printf("ok - round %u\n", round);
	}

	daemon = check_live_clients_outlive_daemon(daemon);
	daemon = check_reattached_client_dies(daemon);
	check_dropped_client_reattaches();

	/* A clean stop, then every segment of every log must check out. */
	T_ASSERT(t_open_bus(t_state.bus_name, &old, 10000) == 0);
	kill(daemon, SIGTERM);
	status = t_wait_child(daemon, 20000);
	T_ASSERTF(status == T_PASS, "the last daemon ended with %d on SIGTERM", status);
	problems = agentbus_verify(t_state.bus_name, t_state.data_dir, NULL, print_problem, NULL);
	T_ASSERTF(problems == 0, "agentbus_verify found %d problem(s) (%s)", problems,
		  problems < 0 ? agentbus_strerror(problems) : "see agentbus verify");
	check_bus_created_anew(old);
	return t_done();
}
