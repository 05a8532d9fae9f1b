/*
 * latency.c - `agentbus bench latency`: one-way delivery latency between two
 * processes pinned to two CPUs, next to the floors of this machine measured
 * in the same run, between the same two processes, at the same moments.
 *
 * Method (the same for every transport, so the ratios compare like with
 * like): a sender process pinned to the first CPU sends messages paced one
 * --interval-us apart, each carrying its CLOCK_MONOTONIC send time; a
 * receiver pinned to the second CPU takes CLOCK_MONOTONIC as soon as it has
 * the message and keeps now - sent. The clock is consistent across CPUs here
 * (the TSC is not) and costs ~26 ns through the vDSO, in every figure alike.
 *
 * The transports take turns: message i goes by cache line, then by socket,
 * (futex,) then by agentbus, and so on. The host under these VMs moves and
 * stalls vCPUs from one second to the next, so only figures taken at the
 * same moments compare; taking turns gives every transport the same share
 * of good and bad moments. Before each send the sender waits until the
 * receiver has acknowledged the previous message (on a cache line of its
 * own, outside the timed span), so a message never queues behind another
 * and a stalled receiver delays the next send instead of inflating it.
 *
 * Transports:
 *   cache line   one 64-byte-aligned word in MAP_SHARED memory: the sender
 *                stores its send time, the receiver spins on it. The floor
 *                for a spinning reader (a bare load loop, no pause).
 *   ping-pong    another line bounced back: half the round trip, timed by
 *                the sender. A cross-check of the one-way figure (--wait
 *                spin only).
 *   unix socket  a socketpair(AF_UNIX, SOCK_STREAM) carrying --size byte
 *                messages; the receiver busy-polls recv(MSG_DONTWAIT) for
 *                --wait spin, and blocks in recv() for --wait sleep.
 *   futex wake   (--wait sleep) the receiver sleeps in FUTEX_WAIT on a
 *                shared word; the sender stores its send time and the
 *                message number, then calls FUTEX_WAKE. The floor for a
 *                sleeping reader.
 *   agentbus     an embedded daemon on a bus of its own, one stream; the
 *                sender agentbus_publish()es --size byte payloads (send
 *                time and index in the first 16 bytes), the receiver reads
 *                with agentbus_sub_read() and the chosen wait strategy.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
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
#define LAT_NO_SAMPLE UINT64_MAX

enum { K_CACHELINE, K_PINGPONG, K_SOCKET, K_FUTEX, K_AGENTBUS, K_COUNT };

/* Sample arrays: one per transport, plus how long agentbus_publish() took. */
#define LAT_PUBLISH_CALL K_COUNT
#define LAT_ARRAYS (K_COUNT + 1)

struct lat_opts {
	uint64_t size;           /* payload bytes (>= LAT_HEADER) */
	enum agentbus_wait wait; /* AGENTBUS_WAIT_SPIN or AGENTBUS_WAIT_SLEEP */
	uint64_t count;          /* measured messages per transport */
	uint64_t warmup;         /* messages per transport sent first, not measured */
	uint64_t interval_ns;    /* one send every interval_ns */
	uint64_t ring_size;      /* agentbus stream ring bytes; 0 = default */
	int json;                /* print one JSON object */
	int cpu_send;            /* CPU of the sender */
	int cpu_recv;            /* CPU of the receiver */
	int active[K_COUNT];     /* transports in this run */
};

/* Everything the parent and its two children share (MAP_SHARED). */
struct lat_shared {
	_Alignas(64) _Atomic uint32_t ready; /* receiver attached and waiting */
	_Atomic uint32_t bus_ready;          /* parent: daemon up, stream created */
	_Atomic uint32_t sender_done;        /* sender sent all it will send */
	_Atomic uint32_t failed;             /* a child gave up; the other stops too */
	uint64_t received[LAT_ARRAYS];       /* samples[k] entries written */
	_Alignas(64) _Atomic uint64_t ack;   /* messages the receiver is done with */
	_Alignas(64) _Atomic uint64_t line;  /* cache line: send time */
	_Alignas(64) _Atomic uint64_t pong;  /* ping-pong: 2i+1 ping, 2i+2 pong */
	_Alignas(64) _Atomic uint64_t stamp; /* futex: send time of the last wake */
	_Atomic uint32_t futex_word;         /* futex: messages sent so far */
	_Alignas(64) uint64_t samples[];     /* LAT_ARRAYS arrays of count ns */
};

/* One run: options, shared state, and each child's own transport state. */
struct lat_ctx {
	const struct lat_opts *o;
	struct lat_shared *sh;
	uint64_t deadline;               /* children give up after this (ns) */
	int fds[2];                      /* unix socket: sender end, receiver end */
	int fd;                          /* unix socket: this child's end */
	char *buf;                       /* this child's message buffer (size bytes) */
	uint64_t last_line;              /* receiver: last cache-line value seen */
	char bus[AGENTBUS_NAME_MAX + 1]; /* agentbus: the bus of this run */
	agentbus_daemon *daemon;         /* agentbus: embedded daemon (parent) */
	agentbus_bus *conn;              /* agentbus: this child's connection */
	agentbus_stream *stream;         /* agentbus: the stream, opened by this child */
	agentbus_sub *sub;               /* agentbus: the receiver's subscription */
};

/*
 * A transport. send() gets the send time just read and may return a sample
 * (ping-pong times itself); recv() waits for message @index and returns its
 * one-way sample. Both return 0 or -1 (the run failed).
 */
struct lat_kind {
	const char *key;   /* JSON name */
	const char *label; /* human name */
	int (*send)(struct lat_ctx *c, uint64_t index, uint64_t now, uint64_t *sample);
	int (*recv)(struct lat_ctx *c, uint64_t index, uint64_t *sample);
};

struct lat_result {
	struct bench_pcts pcts; /* one-way ns */
	int ok;                 /* measured */
};

/* ------------------------------------------------------------------------ */
/* Helpers of both sides                                                     */
/* ------------------------------------------------------------------------ */

static uint64_t lat_total(const struct lat_opts *o)
{
	return o->warmup + o->count;
}

static uint64_t *lat_samples(struct lat_ctx *c, int kind)
{
	return c->sh->samples + (size_t)kind * c->o->count;
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
 * 1 when a waiting child should give up: the other side failed, or time is
 * up (then this side says so, and the other one stops too).
 */
static int lat_give_up(struct lat_ctx *c)
{
	if (atomic_load_explicit(&c->sh->failed, memory_order_acquire))
		return 1;
	if (bench_now_ns() <= c->deadline)
		return 0;
	return lat_fail(c, "latency: deadline passed while waiting", -ETIMEDOUT), 1;
}

/*
 * Spin until @word equals @want. The clock and flags are looked at only
 * every LAT_SPIN_CHECK spins, so the loop that sees the change is a bare
 * load. 0, or -1 when the run failed or time is up.
 */
static int lat_spin_equal(struct lat_ctx *c, _Atomic uint64_t *word, uint64_t want)
{
	unsigned spins = 0;

	while (atomic_load_explicit(word, memory_order_acquire) != want) {
		if (++spins % LAT_SPIN_CHECK == 0 && lat_give_up(c))
			return -1;
	}
	return 0;
}

/*
 * Wait for the receiver's acknowledgement of message @sent - 1, then for the
 * next send time, and move *next one interval on. A sender held back past
 * its time (the receiver or itself descheduled) starts a fresh interval
 * rather than sending a burst. 0 or -1.
 */
static int lat_pace(struct lat_ctx *c, uint64_t sent, uint64_t *next)
{
	uint64_t now;

	if (lat_spin_equal(c, &c->sh->ack, sent) < 0)
		return -1;
	bench_spin_until(*next);
	now = bench_now_ns();
	*next += c->o->interval_ns;
	if (*next < now)
		*next = now + c->o->interval_ns;
	return 0;
}

/* Keep message @index's sample unless it is a warm-up one. */
static void lat_record(struct lat_ctx *c, int kind, uint64_t index, uint64_t one_way_ns)
{
	uint64_t *n = &c->sh->received[kind];

	if (one_way_ns != LAT_NO_SAMPLE && index >= c->o->warmup && *n < c->o->count)
		lat_samples(c, kind)[(*n)++] = one_way_ns;
}

/* ------------------------------------------------------------------------ */
/* Cache line, one way                                                       */
/* ------------------------------------------------------------------------ */

static int cl_send(struct lat_ctx *c, uint64_t index, uint64_t now, uint64_t *sample)
{
	(void)index;
	atomic_store_explicit(&c->sh->line, now, memory_order_release);
	*sample = LAT_NO_SAMPLE;
	return 0;
}

/* The value is the send time itself, new every message (never 0). */
static int cl_recv(struct lat_ctx *c, uint64_t index, uint64_t *sample)
{
	unsigned spins = 0;
	uint64_t sent;

	(void)index;
	while ((sent = atomic_load_explicit(&c->sh->line, memory_order_acquire)) == c->last_line) {
		if (++spins % LAT_SPIN_CHECK == 0 && lat_give_up(c))
			return -1;
	}
	*sample = bench_now_ns() - sent;
	c->last_line = sent;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Cache line, ping-pong (half round trip)                                   */
/* ------------------------------------------------------------------------ */

static int pp_send(struct lat_ctx *c, uint64_t index, uint64_t now, uint64_t *sample)
{
	atomic_store_explicit(&c->sh->pong, 2 * index + 1, memory_order_release);
	if (lat_spin_equal(c, &c->sh->pong, 2 * index + 2) < 0)
		return -1;
	*sample = (bench_now_ns() - now) / 2;
	return 0;
}

static int pp_recv(struct lat_ctx *c, uint64_t index, uint64_t *sample)
{
	if (lat_spin_equal(c, &c->sh->pong, 2 * index + 1) < 0)
		return -1;
	atomic_store_explicit(&c->sh->pong, 2 * index + 2, memory_order_release);
	*sample = LAT_NO_SAMPLE;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Unix socket                                                               */
/* ------------------------------------------------------------------------ */

static int sock_send(struct lat_ctx *c, uint64_t index, uint64_t now, uint64_t *sample)
{
	const char *p = c->buf;
	size_t left = c->o->size;

	memcpy(c->buf, &now, 8);
	memcpy(c->buf + 8, &index, 8);
	while (left > 0) {
		ssize_t n = write(c->fd, p, left);

		if (n < 0 && (errno == EINTR || errno == EAGAIN) && !lat_give_up(c))
			continue;
		if (n <= 0)
			return lat_fail(c, "unix socket: write", n < 0 ? -errno : -EPIPE);
		p += n;
		left -= (size_t)n;
	}
	*sample = LAT_NO_SAMPLE;
	return 0;
}

/*
 * Read one whole message: busy-polling with MSG_DONTWAIT for --wait spin,
 * blocking otherwise (the socket has a receive timeout, so the deadline is
 * still seen). 0 or -1.
 */
static int sock_read_msg(struct lat_ctx *c)
{
	int flags = c->o->wait == AGENTBUS_WAIT_SPIN ? MSG_DONTWAIT : 0;
	size_t got = 0;
	unsigned polls = 0;

	while (got < c->o->size) {
		ssize_t n = recv(c->fd, c->buf + got, c->o->size - got, flags);

		if (n > 0) {
			got += (size_t)n;
			continue;
		}
		if (n == 0)
			return lat_fail(c, "unix socket: read", -EPIPE);
		if (errno != EAGAIN && errno != EINTR)
			return lat_fail(c, "unix socket: read", -errno);
		if ((!flags || ++polls % 256 == 0) && lat_give_up(c))
			return -1;
	}
	return 0;
}

static int sock_recv(struct lat_ctx *c, uint64_t index, uint64_t *sample)
{
	uint64_t now, sent, got_index;

	if (sock_read_msg(c) < 0)
		return -1;
	now = bench_now_ns();
	memcpy(&sent, c->buf, 8);
	memcpy(&got_index, c->buf + 8, 8);
	if (got_index != index)
		return lat_fail(c, "unix socket: message out of order", -EPROTO);
	*sample = now - sent;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Futex wake                                                                */
/* ------------------------------------------------------------------------ */

/* Not FUTEX_PRIVATE: the word is shared between two processes. */
static long futex(_Atomic uint32_t *word, int op, uint32_t val, const struct timespec *timeout)
{
	return syscall(SYS_futex, (uint32_t *)word, op, val, timeout, NULL, 0);
}

/* The raw pattern: publish the word, then always wake. */
static int fx_send(struct lat_ctx *c, uint64_t index, uint64_t now, uint64_t *sample)
{
	atomic_store_explicit(&c->sh->stamp, now, memory_order_relaxed);
	atomic_store_explicit(&c->sh->futex_word, (uint32_t)(index + 1), memory_order_release);
	futex(&c->sh->futex_word, FUTEX_WAKE, 1, NULL);
	*sample = LAT_NO_SAMPLE;
	return 0;
}

static int fx_recv(struct lat_ctx *c, uint64_t index, uint64_t *sample)
{
	static const struct timespec timeout = { .tv_nsec = 100000000 };
	uint32_t want = (uint32_t)(index + 1);
	uint32_t w;

	while ((w = atomic_load_explicit(&c->sh->futex_word, memory_order_acquire)) != want) {
		if (lat_give_up(c))
			return -1;
		futex(&c->sh->futex_word, FUTEX_WAIT, w, &timeout);
	}
	*sample = bench_now_ns() - atomic_load_explicit(&c->sh->stamp, memory_order_relaxed);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* agentbus                                                                  */
/* ------------------------------------------------------------------------ */

#define AB_STREAM "latency"
#define AB_SUBJECT "bench.latency"

/* Parent, after the fork: the daemon and the stream. */
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

/* A child's side: wait for the parent's set-up, open, and (@subscribe) subscribe. */
static int ab_attach(struct lat_ctx *c, int subscribe)
{
	struct agentbus_sub_config cfg = { .start = AGENTBUS_START_NEW, .wait = c->o->wait };
	int rc;

	if (bench_wait_at_least(&c->sh->bus_ready, 1, &c->sh->failed, c->deadline) < 0)
		return -1;
	rc = agentbus_open(&c->conn, c->bus);
	if (rc == 0)
		rc = agentbus_stream_open(c->conn, AB_STREAM, &c->stream);
	if (rc == 0 && subscribe)
		rc = agentbus_subscribe(c->stream, &cfg, &c->sub);
	if (rc < 0)
		return lat_fail(c, "agentbus attach", rc);
	return 0;
}

static void ab_detach(struct lat_ctx *c)
{
	if (c->sub)
		agentbus_sub_close(c->sub);
	if (c->stream)
		agentbus_stream_close(c->stream);
	if (c->conn)
		agentbus_close(c->conn);
	c->sub = NULL;
	c->stream = NULL;
	c->conn = NULL;
}

/* The send time goes in just before the publish, which copies it in. */
static int ab_send(struct lat_ctx *c, uint64_t index, uint64_t now, uint64_t *sample)
{
	struct agentbus_message msg = { .subject = AB_SUBJECT,
					.subject_len = sizeof(AB_SUBJECT) - 1,
					.payload = c->buf,
					.payload_len = c->o->size };
	int64_t seq;

	memcpy(c->buf, &now, 8);
	memcpy(c->buf + 8, &index, 8);
	seq = agentbus_publish(c->stream, &msg, 1000);
	if (seq < 0)
		return lat_fail(c, "agentbus_publish", (int)seq);
	/* Not part of the one-way figure: how much of it the call itself is. */
	lat_record(c, LAT_PUBLISH_CALL, index, bench_now_ns() - now);
	*sample = LAT_NO_SAMPLE;
	return 0;
}

static int ab_recv(struct lat_ctx *c, uint64_t index, uint64_t *sample)
{
	struct agentbus_record rec;
	uint64_t now, sent, got_index;
	int r;

	while ((r = agentbus_sub_read(c->sub, &rec, 100)) == 0) {
		if (lat_give_up(c))
			return -1;
	}
	now = bench_now_ns();
	if (r < 0)
		return lat_fail(c, "agentbus_sub_read", r);
	if (rec.payload_len != c->o->size)
		return lat_fail(c, "agentbus: record of unexpected length", AGENTBUS_E_CORRUPT);
	memcpy(&sent, rec.payload, 8);
	memcpy(&got_index, (const char *)rec.payload + 8, 8);
	if (got_index != index)
		return lat_fail(c, "agentbus: record out of order", AGENTBUS_E_CORRUPT);
	*sample = now - sent;
	return 0;
}

static const struct lat_kind lat_kinds[K_COUNT] = {
	[K_CACHELINE] = { "cacheline", "cache line (one way)", cl_send, cl_recv },
	[K_PINGPONG] = { "cacheline_pingpong_half_rtt", "cache line (ping-pong / 2)", pp_send,
			 pp_recv },
	[K_SOCKET] = { "unix_socket", "unix socket", sock_send, sock_recv },
	[K_FUTEX] = { "futex_wake", "futex wake", fx_send, fx_recv },
	[K_AGENTBUS] = { "agentbus", "agentbus", ab_send, ab_recv },
};

/* ------------------------------------------------------------------------ */
/* The two children                                                          */
/* ------------------------------------------------------------------------ */

/* A child's transports: its socket end, buffer, and agentbus handles. */
static int lat_child_init(struct lat_ctx *c, int receiver)
{
	struct timeval tv = { .tv_usec = 100000 };

	c->fd = c->fds[receiver];
	close(c->fds[!receiver]);
	setsockopt(c->fd, SOL_SOCKET, receiver ? SO_RCVTIMEO : SO_SNDTIMEO, &tv, sizeof(tv));
	c->buf = calloc(1, c->o->size);
	if (!c->buf)
		return lat_fail(c, "latency", -ENOMEM);
	return ab_attach(c, receiver);
}

static void lat_child_fini(struct lat_ctx *c)
{
	ab_detach(c);
	free(c->buf);
	close(c->fd);
}

/* The sender: each round, one message by every active transport, in turn. */
static int lat_send_all(struct lat_ctx *c)
{
	uint64_t sent = 0, next;

	if (bench_wait_at_least(&c->sh->ready, 1, &c->sh->failed, c->deadline) < 0)
		return -1;
	next = bench_now_ns() + c->o->interval_ns;
	for (uint64_t i = 0; i < lat_total(c->o); i++) {
		for (int k = 0; k < K_COUNT; k++) {
			uint64_t sample;

			if (!c->o->active[k])
				continue;
			if (lat_pace(c, sent++, &next) < 0 ||
			    lat_kinds[k].send(c, i, bench_now_ns(), &sample) < 0)
				return -1;
			lat_record(c, k, i, sample);
		}
	}
	atomic_store_explicit(&c->sh->sender_done, 1, memory_order_release);
	return 0;
}

static int lat_sender(void *arg)
{
	struct lat_ctx *c = arg;
	int rc = lat_child_init(c, 0);

	if (rc == 0)
		rc = lat_send_all(c);
	lat_child_fini(c);
	return rc;
}

/* The receiver: the same order; acknowledge each message once it is timed. */
static int lat_receive_all(struct lat_ctx *c)
{
	uint64_t done = 0;

	for (int k = 0; k < LAT_ARRAYS; k++)
		memset(lat_samples(c, k), 0, c->o->count * sizeof(uint64_t));
	atomic_store_explicit(&c->sh->ready, 1, memory_order_release);
	for (uint64_t i = 0; i < lat_total(c->o); i++) {
		for (int k = 0; k < K_COUNT; k++) {
			uint64_t sample;

			if (!c->o->active[k])
				continue;
			if (lat_kinds[k].recv(c, i, &sample) < 0)
				return -1;
			lat_record(c, k, i, sample);
			atomic_store_explicit(&c->sh->ack, ++done, memory_order_release);
		}
	}
	return 0;
}

static int lat_receiver(void *arg)
{
	struct lat_ctx *c = arg;
	int rc = lat_child_init(c, 1);

	if (rc == 0)
		rc = lat_receive_all(c);
	lat_child_fini(c);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* The run                                                                   */
/* ------------------------------------------------------------------------ */

static int lat_active_count(const struct lat_opts *o)
{
	int n = 0;

	for (int k = 0; k < K_COUNT; k++)
		n += o->active[k];
	return n;
}

/* Fork both children (before any daemon thread exists), then start the bus. */
static int lat_launch(struct lat_ctx *c, struct bench_children *kids)
{
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, c->fds) < 0)
		return bench_error("socketpair: %s", strerror(errno)), -1;
	if (bench_spawn(kids, c->o->cpu_recv, lat_receiver, c) < 0 ||
	    bench_spawn(kids, c->o->cpu_send, lat_sender, c) < 0)
		atomic_store(&c->sh->failed, 1);
	close(c->fds[0]);
	close(c->fds[1]);
	if (!atomic_load(&c->sh->failed) && ab_start(c) < 0)
		atomic_store(&c->sh->failed, 1);
	atomic_store_explicit(&c->sh->bus_ready, 1, memory_order_release);
	return 0;
}

/*
 * The whole measurement: launch, wait for both children with a deadline
 * (then kill them by pid), stop the daemon, remove the bus, and summarise.
 */
static int lat_run(const struct lat_opts *o, struct lat_result *res)
{
	size_t len = sizeof(struct lat_shared) + LAT_ARRAYS * o->count * sizeof(uint64_t);
	uint64_t sends = lat_total(o) * (uint64_t)lat_active_count(o);
	uint64_t run_ns = sends * (o->interval_ns + 20000) * 10; /* generous: hosts stall */
	struct lat_ctx c = { .o = o, .fds = { -1, -1 }, .fd = -1 };
	struct bench_children kids = { .count = 0 };
	int failed = 0;

	memset(res, 0, LAT_ARRAYS * sizeof(*res));
	c.sh = bench_shared_alloc(len);
	if (!c.sh)
		return bench_error("cannot map %zu bytes of shared memory", len), -1;
	bench_bus_name(c.bus, sizeof(c.bus), "lat");
	c.deadline = bench_now_ns() + LAT_SETUP_NS + run_ns;
	if (lat_launch(&c, &kids) < 0)
		failed = 1;
	failed |= bench_reap(&kids, c.deadline + 2000000000u) != 0;
	ab_stop(&c);
	failed |= atomic_load(&c.sh->failed) != 0;
	for (int k = 0; k < LAT_ARRAYS && !failed; k++) {
		if ((k < K_COUNT && !o->active[k]) || c.sh->received[k] == 0)
			continue;
		bench_percentiles(lat_samples(&c, k), c.sh->received[k], &res[k].pcts);
		res[k].ok = 1;
	}
	bench_shared_free(c.sh, len);
	if (failed)
		bench_error("latency: measurement failed");
	return failed ? -1 : 0;
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
	printf("  %-30s %10" PRIu64 " %10" PRIu64 " %10" PRIu64 " %10" PRIu64 "\n", label,
	       r->pcts.p50, r->pcts.p99, r->pcts.p999, r->pcts.max);
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
	printf("one-way latency in ns (CLOCK_MONOTONIC send stamp to receipt), transports "
	       "taking turns\n");
	printf("  %-30s %10s %10s %10s %10s\n", "", "p50", "p99", "p99.9", "max");
	for (int k = 0; k < K_COUNT; k++) {
		if (!o->active[k])
			continue;
		snprintf(label, sizeof(label), "%s%s", lat_kinds[k].label,
			 k == K_AGENTBUS || k == K_SOCKET ?
				 (o->wait == AGENTBUS_WAIT_SPIN ? " (spin)" : " (sleep)") : "");
		lat_print_row(label, &res[k]);
	}
	lat_print_row("agentbus_publish() call alone", &res[LAT_PUBLISH_CALL]);
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
	       ",\"max_ns\":%" PRIu64 ",\"mean_ns\":%.1f,\"baseline\":\"%s\","
	       "\"baseline_p50_ns\":%" PRIu64 ",\"ratio_p50\":%.3f,\"ratio_p99\":%.3f",
	       o->size, lat_wait_name(o->wait), o->count, o->warmup, o->interval_ns, o->cpu_send,
	       o->cpu_recv, ab->ok ? "true" : "false", ab->pcts.p50, ab->pcts.p99, ab->pcts.p999,
	       ab->pcts.max, ab->pcts.mean, lat_kinds[lat_baseline(o)].key,
	       base->pcts.p50, lat_ratio(ab->pcts.p50, base->pcts.p50),
	       lat_ratio(ab->pcts.p99, base->pcts.p99));
	for (int k = 0; k < K_COUNT; k++) {
		if (!res[k].ok)
			continue;
		putchar(',');
		bench_json_pcts(stdout, lat_kinds[k].key, &res[k].pcts);
	}
	if (res[LAT_PUBLISH_CALL].ok) {
		putchar(',');
		bench_json_pcts(stdout, "agentbus_publish_call", &res[LAT_PUBLISH_CALL].pcts);
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
		"One-way latency between two processes pinned to the first two CPUs we may use.\n"
		"The raw cache-line hand-off, a Unix socket, and a cache-line ping-pong (--wait\n"
		"spin) or a futex wake (--wait sleep) take turns with agentbus, message by\n"
		"message, between the same two processes.\n"
		"\n"
		"  --size BYTES      payload bytes (>= 16; K/M suffixes), default 64\n"
		"  --wait MODE       spin (busy-poll) or sleep (futex), default spin\n"
		"  --count N         measured messages per transport, default 100000 (spin),\n"
		"                    20000 (sleep)\n"
		"  --warmup N        messages per transport first, not measured, default 1000\n"
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
	o->active[K_CACHELINE] = o->active[K_SOCKET] = o->active[K_AGENTBUS] = 1;
	o->active[K_PINGPONG] = o->wait == AGENTBUS_WAIT_SPIN;
	o->active[K_FUTEX] = o->wait == AGENTBUS_WAIT_SLEEP;
	return 0;
}

/*
 * `agentbus bench latency`: measure the baselines, then agentbus, all with
 * the same sender and receiver CPUs, pacing and sample count.
 */
int bench_latency_main(int argc, char **argv)
{
	struct lat_result res[LAT_ARRAYS];
	struct lat_opts o;
	int r = lat_parse(argc, argv, &o);
	int failed = 0;

	if (r != 0)
		return r > 0 ? BENCH_OK : BENCH_USAGE;
	memset(res, 0, sizeof(res));
	failed = lat_run(&o, res) < 0;
	if (o.json)
		lat_print_json(&o, res);
	else
		lat_print_human(&o, res);
	return failed ? BENCH_FAILED : BENCH_OK;
}
