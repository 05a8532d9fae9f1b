/*
 * latency.c - `agentbus bench latency`: one-way delivery latency between two
 * processes pinned to two CPUs, next to the floors of this machine measured
 * in the same run between the same two CPUs.
 *
 * Method (the same for every transport, so the ratios compare like with
 * like): a sender process pinned to the first CPU sends one message every
 * --interval-us (paced, so we measure latency, not queueing), each carrying
 * its CLOCK_MONOTONIC send time; a receiver pinned to the second CPU takes
 * CLOCK_MONOTONIC as soon as it has the message and keeps now - sent. The
 * clock is consistent across CPUs here (the TSC is not), and reading it
 * costs ~26 ns through the vDSO, in every figure alike.
 *
 * Transports:
 *   cache line   one 64-byte-aligned word in MAP_SHARED memory: the sender
 *                stores its send time, the receiver spins on it. The floor
 *                for a spinning reader.
 *   ping-pong    the same line bounced back: half the round trip, taken by
 *                the sender. A cross-check of the one-way figure only.
 *   unix socket  a socketpair(AF_UNIX, SOCK_STREAM); the receiver busy-polls
 *                recv(MSG_DONTWAIT) for --wait spin, blocks in recv() for
 *                --wait sleep. Messages are --size bytes.
 *   futex wake   (--wait sleep) the receiver sleeps in FUTEX_WAIT on a
 *                shared word; the sender stores its send time and the
 *                record number, then calls FUTEX_WAKE. The floor for a
 *                sleeping reader.
 *   agentbus     an embedded daemon on a bus of its own, one stream; the
 *                sender agentbus_publish()es --size byte payloads (send
 *                time and index in the first 16 bytes), the receiver reads
 *                with agentbus_sub_read() and the chosen wait strategy.
 */
#define _GNU_SOURCE
#include "bench_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include "agentbus.h"

#define LAT_SETUP_NS (15ull * 1000000000u) /* daemon start, ring pre-fault, attach */
#define LAT_SPIN_CHECK 4096                /* spins between two deadline checks */
#define LAT_HEADER 16                      /* send time + index at payload start */

struct lat_opts {
	uint64_t size;           /* payload bytes (>= LAT_HEADER) */
	enum agentbus_wait wait; /* AGENTBUS_WAIT_SPIN or AGENTBUS_WAIT_SLEEP */
	uint64_t count;          /* measured messages */
	uint64_t warmup;         /* messages sent first and not measured */
	uint64_t interval_ns;    /* one send every interval_ns */
	uint64_t ring_size;      /* agentbus stream ring bytes; 0 = default */
	int json;                /* print one JSON object */
	int cpu_send;            /* CPU of the sender */
	int cpu_recv;            /* CPU of the receiver */
};

/* Everything the parent and its two children share (MAP_SHARED). */
struct lat_shared {
	_Alignas(64) _Atomic uint32_t ready; /* receiver attached and waiting */
	_Atomic uint32_t bus_ready;          /* parent: transport set up (daemon, stream) */
	_Atomic uint32_t sender_done;        /* sender sent all it will send */
	_Atomic uint32_t failed;             /* a child gave up; the others stop too */
	uint64_t received;                   /* samples[] entries written */
	uint64_t lost;                       /* messages sent but never seen */
	_Alignas(64) _Atomic uint64_t line;  /* cache line: send time / ping-pong count */
	_Alignas(64) _Atomic uint64_t stamp; /* futex: send time of the last wake */
	_Atomic uint32_t futex_word;         /* futex: messages sent so far */
	_Alignas(64) uint64_t samples[];     /* one-way ns, in arrival order */
};

/* One measurement: the options plus the state of its transport. */
struct lat_ctx {
	const struct lat_opts *o;
	struct lat_shared *sh;
	uint64_t deadline;               /* children give up after this (ns) */
	int fds[2];                      /* unix socket: sender end, receiver end */
	char bus[AGENTBUS_NAME_MAX + 1]; /* agentbus: the bus of this run */
	agentbus_daemon *daemon;         /* agentbus: embedded daemon (parent) */
};

/* A transport: its two children, and what the parent does around them. */
struct lat_kind {
	const char *key;                    /* JSON name */
	const char *label;                  /* human name */
	int (*sender)(void *ctx);           /* runs in the child on cpu_send */
	int (*receiver)(void *ctx);         /* runs in the child on cpu_recv */
	int (*setup)(struct lat_ctx *c);    /* parent, before fork */
	int (*start)(struct lat_ctx *c);    /* parent, after fork */
	void (*stop)(struct lat_ctx *c);    /* parent, after the children ended */
};

struct lat_result {
	struct bench_pcts pcts; /* one-way ns */
	uint64_t lost;          /* messages the receiver never saw */
	int ok;                 /* measured */
};

/* ------------------------------------------------------------------------ */
/* Helpers of both sides                                                     */
/* ------------------------------------------------------------------------ */

static uint64_t lat_total(const struct lat_opts *o)
{
	return o->warmup + o->count;
}

/* A child's failure: tell the user and the other side (which then stops). */
static int lat_fail(struct lat_ctx *c, const char *what, int err)
{
	fprintf(stderr, "agentbus bench: %s: %s%s%s\n", what,
		err <= -10000 ? agentbus_strerror(err) : strerror(-err),
		err <= -10000 && *agentbus_last_error() ? ": " : "",
		err <= -10000 ? agentbus_last_error() : "");
	atomic_store_explicit(&c->sh->failed, 1, memory_order_release);
	return -1;
}

/*
 * Wait for the next send time, then move *next one interval on. A sender
 * that fell behind (preempted) starts a fresh interval instead of sending a
 * burst to catch up, which would measure queueing. Returns -1 when the other
 * side failed or time is up.
 */
static int lat_pace(struct lat_ctx *c, uint64_t *next)
{
	uint64_t now;

	bench_spin_until(*next);
	if (atomic_load_explicit(&c->sh->failed, memory_order_relaxed))
		return -1;
	now = bench_now_ns();
	if (now > c->deadline)
		return -1;
	*next += c->o->interval_ns;
	if (*next < now)
		*next = now + c->o->interval_ns;
	return 0;
}

/* Start pacing once the receiver is ready. */
static int lat_sender_begin(struct lat_ctx *c, uint64_t *next)
{
	if (bench_wait_at_least(&c->sh->ready, 1, &c->sh->failed, c->deadline) < 0)
		return -1;
	*next = bench_now_ns() + c->o->interval_ns;
	return 0;
}

static void lat_sender_end(struct lat_ctx *c)
{
	atomic_store_explicit(&c->sh->sender_done, 1, memory_order_release);
}

/* Receiver: fault the sample array in, then say we are ready. */
static void lat_receiver_ready(struct lat_ctx *c)
{
	memset(c->sh->samples, 0, c->o->count * sizeof(c->sh->samples[0]));
	atomic_store_explicit(&c->sh->ready, 1, memory_order_release);
}

/* Keep the sample of message @index unless it is a warm-up one. */
static void lat_record(struct lat_ctx *c, uint64_t index, uint64_t one_way_ns)
{
	struct lat_shared *sh = c->sh;

	if (index >= c->o->warmup && sh->received < c->o->count)
		sh->samples[sh->received++] = one_way_ns;
}

/* 1 when the receiver should stop waiting: sender finished, failed, or late. */
static int lat_receiver_should_stop(struct lat_ctx *c)
{
	return atomic_load_explicit(&c->sh->sender_done, memory_order_acquire) ||
	       atomic_load_explicit(&c->sh->failed, memory_order_acquire) ||
	       bench_now_ns() > c->deadline;
}

/*
 * Spin until @word differs from @last and return its new value; 0 when it
 * will not change any more. The clock and flags are looked at only every
 * LAT_SPIN_CHECK spins, so the loop that detects the change is a bare load.
 */
static uint64_t lat_spin_change(struct lat_ctx *c, _Atomic uint64_t *word, uint64_t last)
{
	unsigned spins = 0;
	uint64_t v;

	while ((v = atomic_load_explicit(word, memory_order_acquire)) == last) {
		if (++spins % LAT_SPIN_CHECK)
			continue;
		if (lat_receiver_should_stop(c) &&
		    atomic_load_explicit(word, memory_order_acquire) == last)
			return 0;
	}
	return v;
}

/* Spin until @word equals @want. 0, or -1 when time is up or a side failed. */
static int lat_spin_equal(struct lat_ctx *c, _Atomic uint64_t *word, uint64_t want)
{
	unsigned spins = 0;

	while (atomic_load_explicit(word, memory_order_acquire) != want) {
		if (++spins % LAT_SPIN_CHECK)
			continue;
		if (atomic_load_explicit(&c->sh->failed, memory_order_relaxed) ||
		    bench_now_ns() > c->deadline)
			return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Cache line, one way                                                       */
/* ------------------------------------------------------------------------ */

static int cl_sender(void *arg)
{
	struct lat_ctx *c = arg;
	uint64_t next;

	if (lat_sender_begin(c, &next) < 0)
		return -1;
	for (uint64_t i = 0; i < lat_total(c->o); i++) {
		if (lat_pace(c, &next) < 0)
			return -1;
		atomic_store_explicit(&c->sh->line, bench_now_ns(), memory_order_release);
	}
	lat_sender_end(c);
	return 0;
}

/* A value overwritten before we saw it (we were preempted) counts as lost. */
static int cl_receiver(void *arg)
{
	struct lat_ctx *c = arg;
	uint64_t last = 0, seen = 0;

	lat_receiver_ready(c);
	while (seen < lat_total(c->o)) {
		uint64_t sent = lat_spin_change(c, &c->sh->line, last);
		uint64_t now = bench_now_ns();

		if (!sent)
			break;
		lat_record(c, seen++, now - sent);
		last = sent;
	}
	c->sh->lost = lat_total(c->o) - seen;
	return atomic_load(&c->sh->failed) ? -1 : 0;
}

/* ------------------------------------------------------------------------ */
/* Cache line, ping-pong (half round trip)                                   */
/* ------------------------------------------------------------------------ */

/* The sender pings with odd values and times until the even answer. */
static int pp_sender(void *arg)
{
	struct lat_ctx *c = arg;
	uint64_t next;

	if (lat_sender_begin(c, &next) < 0)
		return -1;
	for (uint64_t i = 0; i < lat_total(c->o); i++) {
		uint64_t t0, t1;

		if (lat_pace(c, &next) < 0)
			return -1;
		t0 = bench_now_ns();
		atomic_store_explicit(&c->sh->line, 2 * i + 1, memory_order_release);
		if (lat_spin_equal(c, &c->sh->line, 2 * i + 2) < 0)
			return lat_fail(c, "ping-pong: no answer", -ETIMEDOUT);
		t1 = bench_now_ns();
		lat_record(c, i, (t1 - t0) / 2);
	}
	lat_sender_end(c);
	return 0;
}

static int pp_receiver(void *arg)
{
	struct lat_ctx *c = arg;

	lat_receiver_ready(c);
	for (uint64_t i = 0; i < lat_total(c->o); i++) {
		if (lat_spin_equal(c, &c->sh->line, 2 * i + 1) < 0)
			return -1;
		atomic_store_explicit(&c->sh->line, 2 * i + 2, memory_order_release);
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Unix socket                                                               */
/* ------------------------------------------------------------------------ */

static int sock_setup(struct lat_ctx *c)
{
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, c->fds) < 0) {
		c->fds[0] = c->fds[1] = -1;
		return bench_error("socketpair: %s", strerror(errno)), -1;
	}
	return 0;
}

/* The children hold their ends now; the parent's copies only delay EOF. */
static int sock_start(struct lat_ctx *c)
{
	close(c->fds[0]);
	close(c->fds[1]);
	c->fds[0] = c->fds[1] = -1;
	return 0;
}

static void sock_timeout(int fd, int which, long usec)
{
	struct timeval tv = { .tv_sec = usec / 1000000, .tv_usec = usec % 1000000 };

	setsockopt(fd, SOL_SOCKET, which, &tv, sizeof(tv));
}

/* Write all of @buf; -1 on error or when time is up. */
static int sock_write_all(struct lat_ctx *c, int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && (errno == EINTR || errno == EAGAIN) && bench_now_ns() < c->deadline)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int sock_sender(void *arg)
{
	struct lat_ctx *c = arg;
	int fd = c->fds[0];
	char *buf = calloc(1, c->o->size);
	uint64_t next;
	int rc = -1;

	close(c->fds[1]);
	sock_timeout(fd, SO_SNDTIMEO, 100000);
	if (!buf || lat_sender_begin(c, &next) < 0)
		goto out;
	for (uint64_t i = 0; i < lat_total(c->o); i++) {
		uint64_t now;

		if (lat_pace(c, &next) < 0)
			goto out;
		now = bench_now_ns();
		memcpy(buf, &now, 8);
		memcpy(buf + 8, &i, 8);
		if (sock_write_all(c, fd, buf, c->o->size) < 0) {
			lat_fail(c, "unix socket: write", -errno);
			goto out;
		}
	}
	lat_sender_end(c);
	rc = 0;
out:
	free(buf);
	close(fd);
	return rc;
}

/*
 * Read one whole message. @spin: poll with MSG_DONTWAIT, else block (the
 * socket has a receive timeout so the deadline is still seen). Returns 1,
 * 0 at the end (EOF, or sender finished and nothing left), -1 on error.
 */
static int sock_read_msg(struct lat_ctx *c, int fd, char *buf, size_t len, int spin)
{
	size_t got = 0;
	unsigned spins = 0;

	while (got < len) {
		ssize_t n = recv(fd, buf + got, len - got, spin ? MSG_DONTWAIT : 0);

		if (n > 0) {
			got += (size_t)n;
			continue;
		}
		if (n == 0)
			return 0;
		if (errno != EAGAIN && errno != EINTR)
			return -1;
		if ((spin && ++spins % 256) || got > 0)
			continue;
		if (lat_receiver_should_stop(c))
			return atomic_load(&c->sh->sender_done) ? 0 : -1;
	}
	return 1;
}

static int sock_receiver(void *arg)
{
	struct lat_ctx *c = arg;
	int fd = c->fds[1];
	int spin = c->o->wait == AGENTBUS_WAIT_SPIN;
	char *buf = malloc(c->o->size);
	uint64_t expected = 0, got = 0;
	int rc = -1;

	close(c->fds[0]);
	sock_timeout(fd, SO_RCVTIMEO, 100000);
	if (!buf)
		goto out;
	lat_receiver_ready(c);
	while (expected < lat_total(c->o)) {
		uint64_t now, sent, index;
		int r = sock_read_msg(c, fd, buf, c->o->size, spin);

		if (r <= 0) {
			if (r < 0)
				lat_fail(c, "unix socket: read", -errno);
			break;
		}
		now = bench_now_ns();
		memcpy(&sent, buf, 8);
		memcpy(&index, buf + 8, 8);
		lat_record(c, index, now - sent);
		expected = index + 1;
		got++;
	}
	c->sh->lost = lat_total(c->o) - got;
	rc = atomic_load(&c->sh->failed) ? -1 : 0;
out:
	free(buf);
	close(fd);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Futex wake                                                                */
/* ------------------------------------------------------------------------ */

/* Not FUTEX_PRIVATE: the word is shared between two processes. */
static long futex(_Atomic uint32_t *word, int op, uint32_t val, const struct timespec *timeout)
{
	return syscall(SYS_futex, (uint32_t *)word, op, val, timeout, NULL, 0);
}

static int fx_sender(void *arg)
{
	struct lat_ctx *c = arg;
	uint64_t next;

	if (lat_sender_begin(c, &next) < 0)
		return -1;
	for (uint32_t i = 0; i < lat_total(c->o); i++) {
		if (lat_pace(c, &next) < 0)
			return -1;
		atomic_store_explicit(&c->sh->stamp, bench_now_ns(), memory_order_relaxed);
		atomic_store_explicit(&c->sh->futex_word, i + 1, memory_order_release);
		futex(&c->sh->futex_word, FUTEX_WAKE, 1, NULL);
	}
	lat_sender_end(c);
	return 0;
}

/* Sleeps until the word moves past @seen; returns its value, or @seen at the end. */
static uint32_t fx_wait(struct lat_ctx *c, uint32_t seen)
{
	static const struct timespec timeout = { .tv_nsec = 100000000 };
	uint32_t w;

	while ((w = atomic_load_explicit(&c->sh->futex_word, memory_order_acquire)) == seen) {
		if (lat_receiver_should_stop(c) &&
		    atomic_load_explicit(&c->sh->futex_word, memory_order_acquire) == seen)
			break;
		futex(&c->sh->futex_word, FUTEX_WAIT, seen, &timeout);
	}
	return w;
}

static int fx_receiver(void *arg)
{
	struct lat_ctx *c = arg;
	uint32_t seen = 0;

	lat_receiver_ready(c);
	while (seen < lat_total(c->o)) {
		uint32_t w = fx_wait(c, seen);
		uint64_t now = bench_now_ns();

		if (w == seen)
			break;
		lat_record(c, w - 1, now - atomic_load_explicit(&c->sh->stamp, memory_order_relaxed));
		c->sh->lost += w - seen - 1;
		seen = w;
	}
	c->sh->lost += lat_total(c->o) - seen;
	return atomic_load(&c->sh->failed) ? -1 : 0;
}

/* ------------------------------------------------------------------------ */
/* agentbus                                                                  */
/* ------------------------------------------------------------------------ */

#define AB_STREAM "latency"
#define AB_SUBJECT "bench.latency"

/* Parent, after the fork: the daemon, the stream, then tell the children. */
static int ab_start(struct lat_ctx *c)
{
	struct agentbus_daemon_config dc = { .bus = c->bus };
	struct agentbus_stream_config sc = { .ring_size = c->o->ring_size };
	agentbus_bus *bus = NULL;
	int rc;

	if (c->o->size + 4096 > AGENTBUS_DEFAULT_MAX_RECORD)
		sc.max_record = c->o->size + 4096;
	rc = agentbus_daemon_start(&c->daemon, &dc);
	if (rc == 0)
		rc = agentbus_open(&bus, c->bus);
	if (rc == 0)
		rc = agentbus_stream_create(bus, AB_STREAM, &sc);
	if (bus)
		agentbus_close(bus);
	if (rc < 0)
		return lat_fail(c, "agentbus set-up", rc);
	return 0;
}

static void ab_stop(struct lat_ctx *c)
{
	if (c->daemon)
		agentbus_daemon_stop(c->daemon);
	c->daemon = NULL;
	agentbus_bus_destroy(c->bus);
}

/* A child's connection: wait for the parent's set-up, then open the stream. */
static int ab_attach(struct lat_ctx *c, agentbus_bus **bus, agentbus_stream **stream)
{
	int rc;

	*bus = NULL;
	*stream = NULL;
	if (bench_wait_at_least(&c->sh->bus_ready, 1, &c->sh->failed, c->deadline) < 0)
		return -1;
	rc = agentbus_open(bus, c->bus);
	if (rc == 0)
		rc = agentbus_stream_open(*bus, AB_STREAM, stream);
	if (rc < 0)
		return lat_fail(c, "agentbus attach", rc);
	return 0;
}

static void ab_detach(agentbus_bus *bus, agentbus_stream *stream)
{
	if (stream)
		agentbus_stream_close(stream);
	if (bus)
		agentbus_close(bus);
}

/* The send time goes in just before the publish, which then copies it in. */
static int ab_send_all(struct lat_ctx *c, agentbus_stream *stream, char *buf)
{
	struct agentbus_message msg = { .subject = AB_SUBJECT,
					.subject_len = sizeof(AB_SUBJECT) - 1,
					.payload = buf,
					.payload_len = c->o->size };
	uint64_t next;

	if (lat_sender_begin(c, &next) < 0)
		return -1;
	for (uint64_t i = 0; i < lat_total(c->o); i++) {
		uint64_t now;
		int64_t seq;

		if (lat_pace(c, &next) < 0)
			return -1;
		now = bench_now_ns();
		memcpy(buf, &now, 8);
		memcpy(buf + 8, &i, 8);
		seq = agentbus_publish(stream, &msg, 1000);
		if (seq < 0)
			return lat_fail(c, "agentbus_publish", (int)seq);
	}
	lat_sender_end(c);
	return 0;
}

static int ab_sender(void *arg)
{
	struct lat_ctx *c = arg;
	agentbus_bus *bus;
	agentbus_stream *stream;
	char *buf = calloc(1, c->o->size);
	int rc = -1;

	if (buf && ab_attach(c, &bus, &stream) == 0)
		rc = ab_send_all(c, stream, buf);
	ab_detach(bus, stream);
	free(buf);
	return rc;
}

/* Take one record: its sample, and a check that none was skipped. */
static int ab_take(struct lat_ctx *c, const struct agentbus_record *rec, uint64_t now,
		   uint64_t *expected)
{
	uint64_t sent, index;

	if (rec->payload_len != c->o->size)
		return lat_fail(c, "agentbus: record of unexpected length", AGENTBUS_E_CORRUPT);
	memcpy(&sent, rec->payload, 8);
	memcpy(&index, (const char *)rec->payload + 8, 8);
	if (index < *expected)
		return lat_fail(c, "agentbus: record out of order", AGENTBUS_E_CORRUPT);
	lat_record(c, index, now - sent);
	*expected = index + 1;
	return 0;
}

static int ab_receive_all(struct lat_ctx *c, agentbus_sub *sub)
{
	uint64_t expected = 0, got = 0;

	lat_receiver_ready(c);
	while (expected < lat_total(c->o)) {
		struct agentbus_record rec;
		int r = agentbus_sub_read(sub, &rec, 100);
		uint64_t now = bench_now_ns();

		if (r < 0)
			return lat_fail(c, "agentbus_sub_read", r);
		if (r == 1 && ab_take(c, &rec, now, &expected) < 0)
			return -1;
		got += r == 1;
		if (r == 0 && lat_receiver_should_stop(c))
			break;
	}
	c->sh->lost = lat_total(c->o) - got;
	return atomic_load(&c->sh->failed) ? -1 : 0;
}

static int ab_receiver(void *arg)
{
	struct lat_ctx *c = arg;
	struct agentbus_sub_config cfg = { .start = AGENTBUS_START_NEW, .wait = c->o->wait };
	agentbus_bus *bus;
	agentbus_stream *stream;
	agentbus_sub *sub = NULL;
	int rc = -1;

	if (ab_attach(c, &bus, &stream) == 0) {
		rc = agentbus_subscribe(stream, &cfg, &sub);
		if (rc < 0)
			rc = lat_fail(c, "agentbus_subscribe", rc);
		else
			rc = ab_receive_all(c, sub);
	}
	if (sub)
		agentbus_sub_close(sub);
	ab_detach(bus, stream);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Running one transport                                                     */
/* ------------------------------------------------------------------------ */

enum { K_CACHELINE, K_PINGPONG, K_SOCKET, K_FUTEX, K_AGENTBUS, K_COUNT };

static const struct lat_kind lat_kinds[K_COUNT] = {
	[K_CACHELINE] = { "cacheline", "cache line (one way)", cl_sender, cl_receiver,
			  NULL, NULL, NULL },
	[K_PINGPONG] = { "cacheline_pingpong_half_rtt", "cache line (ping-pong / 2)",
			 pp_sender, pp_receiver, NULL, NULL, NULL },
	[K_SOCKET] = { "unix_socket", "unix socket", sock_sender, sock_receiver,
		       sock_setup, sock_start, NULL },
	[K_FUTEX] = { "futex_wake", "futex wake", fx_sender, fx_receiver, NULL, NULL, NULL },
	[K_AGENTBUS] = { "agentbus", "agentbus", ab_sender, ab_receiver, NULL, ab_start,
			 ab_stop },
};

/*
 * Measure transport @k: fork the receiver and the sender (before any daemon
 * thread exists, so the children are plain single-threaded copies), set the
 * transport up, wait for both children with a deadline, tear down.
 */
static int lat_measure(const struct lat_opts *o, const struct lat_kind *k, struct lat_result *r)
{
	size_t len = sizeof(struct lat_shared) + o->count * sizeof(uint64_t);
	struct lat_ctx c = { .o = o, .fds = { -1, -1 } };
	struct bench_children kids = { .count = 0 };
	uint64_t run_ns = lat_total(o) * (o->interval_ns + 20000) * 3;
	int failed;

	memset(r, 0, sizeof(*r));
	c.sh = bench_shared_alloc(len);
	if (!c.sh)
		return bench_error("cannot map %zu bytes of shared memory", len), -1;
	bench_bus_name(c.bus, sizeof(c.bus), "lat");
	c.deadline = bench_now_ns() + LAT_SETUP_NS + run_ns;
	if (k->setup && k->setup(&c) < 0) {
		bench_shared_free(c.sh, len);
		return -1;
	}
	if (bench_spawn(&kids, o->cpu_recv, k->receiver, &c) < 0 ||
	    bench_spawn(&kids, o->cpu_send, k->sender, &c) < 0)
		atomic_store(&c.sh->failed, 1);
	else if (k->start && k->start(&c) < 0)
		atomic_store(&c.sh->failed, 1);
	atomic_store_explicit(&c.sh->bus_ready, 1, memory_order_release);
	failed = bench_reap(&kids, c.deadline + 2000000000u);
	if (k->stop)
		k->stop(&c);
	if (c.fds[0] >= 0)
		sock_start(&c);
	if (!failed && !atomic_load(&c.sh->failed) && c.sh->received > 0) {
		bench_percentiles(c.sh->samples, c.sh->received, &r->pcts);
		r->lost = c.sh->lost;
		r->ok = 1;
	}
	bench_shared_free(c.sh, len);
	if (!r->ok)
		bench_error("%s: measurement failed", k->label);
	return r->ok ? 0 : -1;
}

/* ------------------------------------------------------------------------ */
/* Report                                                                    */
/* ------------------------------------------------------------------------ */

static const char *lat_wait_name(enum agentbus_wait wait)
{
	return wait == AGENTBUS_WAIT_SPIN ? "spin" : "sleep";
}

/* The transport agentbus is held against: cache line (spin), futex (sleep). */
static int lat_baseline(const struct lat_opts *o)
{
	return o->wait == AGENTBUS_WAIT_SPIN ? K_CACHELINE : K_FUTEX;
}

static double lat_ratio(uint64_t a, uint64_t b)
{
	return b ? (double)a / (double)b : 0.0;
}

static void lat_print_row(const char *label, const struct lat_result *r)
{
	if (!r->ok) {
		printf("  %-30s %10s\n", label, "failed");
		return;
	}
	printf("  %-30s %10" PRIu64 " %10" PRIu64 " %10" PRIu64 " %10" PRIu64 " %8" PRIu64 "\n",
	       label, r->pcts.p50, r->pcts.p99, r->pcts.p999, r->pcts.max, r->lost);
}

static void lat_print_ratio(const char *label, const struct lat_result *a,
			    const struct lat_result *b)
{
	if (!a->ok || !b->ok)
		return;
	printf("  %-30s %9.2fx %9.2fx %9.2fx %9.2fx\n", label,
	       lat_ratio(a->pcts.p50, b->pcts.p50), lat_ratio(a->pcts.p99, b->pcts.p99),
	       lat_ratio(a->pcts.p999, b->pcts.p999), lat_ratio(a->pcts.max, b->pcts.max));
}

static void lat_print_human(const struct lat_opts *o, const struct lat_result *res)
{
	const struct lat_result *ab = &res[K_AGENTBUS];
	char label[64];

	printf("agentbus bench latency: %" PRIu64 " B payloads, wait=%s, CPU %d -> CPU %d, "
	       "%" PRIu64 " samples after %" PRIu64 " warm-up, one send every %.1f us\n",
	       o->size, lat_wait_name(o->wait), o->cpu_send, o->cpu_recv, o->count, o->warmup,
	       (double)o->interval_ns / 1000.0);
	printf("one-way latency in ns (CLOCK_MONOTONIC send stamp to receipt)\n");
	printf("  %-30s %10s %10s %10s %10s %8s\n", "", "p50", "p99", "p99.9", "max", "lost");
	for (int k = 0; k < K_COUNT; k++) {
		if (k == K_FUTEX && o->wait != AGENTBUS_WAIT_SLEEP)
			continue;
		snprintf(label, sizeof(label), "%s%s", lat_kinds[k].label,
			 k == K_AGENTBUS || k == K_SOCKET ?
				 (o->wait == AGENTBUS_WAIT_SPIN ? " (spin)" : " (sleep)") : "");
		lat_print_row(label, &res[k]);
	}
	lat_print_ratio("agentbus / cache line", ab, &res[K_CACHELINE]);
	lat_print_ratio("agentbus / unix socket", ab, &res[K_SOCKET]);
	if (o->wait == AGENTBUS_WAIT_SLEEP)
		lat_print_ratio("agentbus / futex wake", ab, &res[K_FUTEX]);
}

static void lat_print_json(const struct lat_opts *o, const struct lat_result *res)
{
	const struct lat_result *ab = &res[K_AGENTBUS];
	const struct lat_result *base = &res[lat_baseline(o)];

	printf("{\"bench\":\"latency\",\"size_bytes\":%" PRIu64 ",\"wait\":\"%s\",\"count\":%" PRIu64
	       ",\"warmup\":%" PRIu64 ",\"interval_ns\":%" PRIu64 ",\"cpu_send\":%d,\"cpu_recv\":%d,"
	       "\"ok\":%s,\"p50_ns\":%" PRIu64 ",\"p99_ns\":%" PRIu64 ",\"p999_ns\":%" PRIu64
	       ",\"max_ns\":%" PRIu64 ",\"mean_ns\":%.1f,\"lost\":%" PRIu64 ",\"baseline\":\"%s\","
	       "\"baseline_p50_ns\":%" PRIu64 ",\"ratio_p50\":%.3f,\"ratio_p99\":%.3f",
	       o->size, lat_wait_name(o->wait), o->count, o->warmup, o->interval_ns, o->cpu_send,
	       o->cpu_recv, ab->ok ? "true" : "false", ab->pcts.p50, ab->pcts.p99, ab->pcts.p999,
	       ab->pcts.max, ab->pcts.mean, ab->lost, lat_kinds[lat_baseline(o)].key,
	       base->pcts.p50, lat_ratio(ab->pcts.p50, base->pcts.p50),
	       lat_ratio(ab->pcts.p99, base->pcts.p99));
	for (int k = 0; k < K_COUNT; k++) {
		if (!res[k].ok)
			continue;
		putchar(',');
		bench_json_pcts(stdout, lat_kinds[k].key, &res[k].pcts);
	}
	printf("}\n");
}

/* ------------------------------------------------------------------------ */
/* Options and entry                                                         */
/* ------------------------------------------------------------------------ */

static void lat_usage(FILE *out)
{
	fprintf(out,
		"usage: agentbus bench latency [--size BYTES] [--wait spin|sleep] [--count N]\n"
		"                              [--warmup N] [--interval-us US] [--ring-size BYTES] [--json]\n"
		"\n"
		"One-way latency between two processes pinned to the first two CPUs we may use,\n"
		"with the raw cache-line hand-off, a cache-line ping-pong, a Unix socket and (for\n"
		"--wait sleep) a futex wake measured in the same run between the same CPUs.\n"
		"\n"
		"  --size BYTES      payload bytes (>= 16; K/M suffixes), default 64\n"
		"  --wait MODE       spin (busy-poll) or sleep (futex), default spin\n"
		"  --count N         measured messages, default 100000 (spin), 20000 (sleep)\n"
		"  --warmup N        messages sent first and not measured, default 1000\n"
		"  --interval-us US  one send every US microseconds, default 25 (spin), 100 (sleep)\n"
		"  --ring-size BYTES agentbus ring size, default the stream default\n"
		"  --json            print one JSON object (p50_ns, p99_ns, p999_ns, max_ns,\n"
		"                    baseline_p50_ns: cache line for spin, futex wake for sleep)\n");
}

/* Parse one option at argv[*i]: 0 ok, 1 --help, -1 error. */
static int lat_parse_one(int argc, char **argv, int *i, struct lat_opts *o, double *interval_us,
			 int *have_count)
{
	const char *v = NULL;
	int m;

	if ((m = bench_opt(argc, argv, i, "--size", &v)) != 0)
		return m < 0 || bench_parse_size(v, &o->size) ? bench_bad_opt("--size", v) : 0;
	if ((m = bench_opt(argc, argv, i, "--count", &v)) != 0) {
		*have_count = 1;
		return m < 0 || bench_parse_u64(v, &o->count) || !o->count ?
			       bench_bad_opt("--count", v) : 0;
	}
	if ((m = bench_opt(argc, argv, i, "--warmup", &v)) != 0)
		return m < 0 || bench_parse_u64(v, &o->warmup) ? bench_bad_opt("--warmup", v) : 0;
	if ((m = bench_opt(argc, argv, i, "--interval-us", &v)) != 0)
		return m < 0 || bench_parse_double(v, interval_us) ?
			       bench_bad_opt("--interval-us", v) : 0;
	if ((m = bench_opt(argc, argv, i, "--ring-size", &v)) != 0)
		return m < 0 || bench_parse_size(v, &o->ring_size) ?
			       bench_bad_opt("--ring-size", v) : 0;
	if ((m = bench_opt(argc, argv, i, "--wait", &v)) != 0) {
		if (m > 0 && strcmp(v, "spin") == 0)
			o->wait = AGENTBUS_WAIT_SPIN;
		else if (m > 0 && strcmp(v, "sleep") == 0)
			o->wait = AGENTBUS_WAIT_SLEEP;
		else
			return bench_bad_opt("--wait (spin or sleep)", v);
		return 0;
	}
	if (bench_opt(argc, argv, i, "--json", NULL) > 0)
		return o->json = 1, 0;
	if (bench_opt(argc, argv, i, "--help", NULL) > 0 || bench_opt(argc, argv, i, "-h", NULL) > 0)
		return 1;
	bench_error("latency: unknown option '%s' (see --help)", argv[*i]);
	return -1;
}

/* Fill @o from the command line and the defaults. 0, 1 (help shown), -1. */
static int lat_parse(int argc, char **argv, struct lat_opts *o)
{
	double interval_us = 0;
	int have_count = 0;
	int cpus[2];

	*o = (struct lat_opts){ .size = 64, .wait = AGENTBUS_WAIT_SPIN, .warmup = 1000 };
	for (int i = 1; i < argc; i++) {
		int r = lat_parse_one(argc, argv, &i, o, &interval_us, &have_count);

		if (r > 0)
			lat_usage(stdout);
		if (r != 0)
			return r;
	}
	if (!have_count)
		o->count = o->wait == AGENTBUS_WAIT_SPIN ? 100000 : 20000;
	if (interval_us == 0)
		interval_us = o->wait == AGENTBUS_WAIT_SPIN ? 25 : 100;
	o->interval_ns = (uint64_t)(interval_us * 1000.0);
	if (o->size < LAT_HEADER || o->size > (64u << 20))
		return bench_error("--size must be 16 B to 64 MiB"), -1;
	if (o->count > 100000000 || o->warmup > 100000000)
		return bench_error("--count/--warmup too large"), -1;
	if (bench_allowed_cpus(cpus, 2) < 2)
		return bench_error("latency needs two CPUs to run on"), -1;
	o->cpu_send = cpus[0];
	o->cpu_recv = cpus[1];
	return 0;
}

/*
 * `agentbus bench latency`: measure the baselines, then agentbus, all with
 * the same sender and receiver CPUs, pacing and sample count.
 */
int bench_latency_main(int argc, char **argv)
{
	struct lat_result res[K_COUNT];
	struct lat_opts o;
	int r = lat_parse(argc, argv, &o);
	int failed = 0;

	if (r != 0)
		return r > 0 ? BENCH_OK : BENCH_USAGE;
	memset(res, 0, sizeof(res));
	for (int k = 0; k < K_COUNT; k++) {
		if (k == K_FUTEX && o.wait != AGENTBUS_WAIT_SLEEP)
			continue;
		failed |= lat_measure(&o, &lat_kinds[k], &res[k]) < 0;
	}
	if (o.json)
		lat_print_json(&o, res);
	else
		lat_print_human(&o, res);
	return failed ? BENCH_FAILED : BENCH_OK;
}
