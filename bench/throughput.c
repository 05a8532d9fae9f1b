/*
 * throughput.c - `agentbus bench throughput`: records/s and bytes/s that N
 * producer processes publish into one stream and one subscriber process
 * drains.
 *
 * Method: all processes are forked before the embedded daemon starts, attach,
 * and wait. With --seconds (the default, 2 s) the parent then lets them run
 * a warm-up (0.3 s), opens the measured window, and closes it; every process
 * notes its own record count and CLOCK_MONOTONIC time when it sees the window
 * open and close, so a process that is descheduled at that moment does not
 * skew the others. With --count N the producers publish N records in all and
 * the window runs from the start to the subscriber's N-th record.
 *
 * With --burst the producers first publish one whole lap of the ring (every
 * page of it touched by every process: a first touch costs ~6 us per page
 * on these VMs), then stop; once the subscriber has read everything and the
 * log holds it, they publish a burst that fits in the ring (--count N, by
 * default three quarters of it), timed to the subscriber's last record. The
 * ring absorbs the burst while the spill writer follows, so the figure is
 * what the ring and the publish path sustain, not the log: past a ring's
 * worth, the default mode's figure (log-bound) is the one that holds.
 *
 * The headline figure (msgs_per_s) is what the subscriber received per
 * second; bytes_per_s is that times the payload size. The publish rate is
 * the sum of the producers' own rates. A publish that meets back-pressure
 * (the subscriber is behind by a whole ring) waits up to 100 ms and is then
 * retried; those retries are counted.
 *
 * Placement: the subscriber runs on the last CPU we may use; producer i on
 * CPU i modulo the others, or, with --same-cpu, all producers on the first
 * CPU. On a 2-CPU machine both placements put every producer on CPU 0.
 *
 * Each payload starts with (producer << 56 | its record number), and the
 * subscriber checks that every producer's records arrive complete and in
 * order; a mismatch is counted as an error and fails the run.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "bench_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "agentbus.h"

#define TP_SETUP_NS (15ull * 1000000000u) /* daemon start, ring pre-fault, attach */
#define TP_MAX_PRODUCERS 32
#define TP_READ_BATCH 256
#define TP_STREAM "throughput"
#define TP_SUBJECT "bench.throughput"
#define TP_SEQ_MASK ((1ull << 56) - 1)

struct tp_opts {
	uint64_t size;      /* payload bytes (>= 8) */
	int producers;      /* producer processes */
	int same_cpu;       /* all producers on the first CPU */
	uint64_t count;     /* records in all (count and burst modes), 0 = time mode */
	int burst;          /* warm lap, settle, then a burst that fits in the ring */
	double seconds;     /* measured window (time mode) */
	double warmup;      /* seconds before the window (time mode) */
	uint64_t batch;     /* records per publish call; 1 = agentbus_publish() */
	uint64_t ring_size; /* stream ring bytes; 0 = default */
	int json;           /* print one JSON object */
	int cpu_sub;        /* the subscriber's CPU */
	int cpu_prod[TP_MAX_PRODUCERS]; /* each producer's CPU */
};

enum tp_phase {
	TP_WAIT = 0,    /* attach and wait */
	TP_RUN = 1,     /* publish, not measured yet (warm-up) */
	TP_SETTLE = 2,  /* burst mode: stop and let the subscriber and the log catch up */
	TP_MEASURE = 3, /* the measured window is open */
	TP_STOP = 4,    /* the window closed: stop */
};

/* What one process saw; each on its own cache line. */
struct tp_side {
	_Alignas(64) uint64_t start_ns; /* when it saw TP_MEASURE */
	uint64_t start_count;           /* its records at that moment */
	uint64_t end_ns;                /* when it saw TP_STOP (or finished) */
	uint64_t end_count;             /* its records then */
	uint64_t backpressure;          /* publishes retried after back-pressure */
	uint64_t errors;                /* records missing, repeated, or of wrong size */
};

struct tp_shared {
	_Alignas(64) _Atomic uint32_t phase; /* enum tp_phase, set by the parent */
	_Alignas(64) _Atomic uint32_t bus_ready; /* daemon up, stream created */
	_Atomic uint32_t attached;           /* children ready to go */
	_Atomic uint32_t failed;             /* a child gave up */
	_Atomic uint32_t settled;            /* burst mode: producers that stopped */
	uint64_t window_records;             /* count and burst modes: records in the window */
	uint64_t records_before;             /* burst mode: records published before it */
	_Alignas(64) _Atomic uint64_t received; /* records the subscriber read so far */
	struct tp_side sub;
	struct tp_side prod[TP_MAX_PRODUCERS];
};

struct tp_ctx {
	const struct tp_opts *o;
	struct tp_shared *sh;
	uint64_t deadline;               /* children give up after this (ns) */
	char bus[AGENTBUS_NAME_MAX + 1]; /* the bus of this run */
	int index;                       /* producer number (in the child) */
};

struct tp_result {
	double msgs_per_s;    /* delivered to the subscriber */
	double publish_per_s; /* sum of the producers' rates */
	double window_s;      /* the subscriber's window */
	uint64_t delivered;   /* records in the subscriber's window */
	uint64_t published;   /* records in the producers' windows */
	uint64_t backpressure;
	uint64_t errors;
};

/* ------------------------------------------------------------------------ */
/* Children                                                                  */
/* ------------------------------------------------------------------------ */

static int tp_fail(struct tp_ctx *c, const char *what, int err)
{
	fprintf(stderr, "agentbus bench: %s: %s%s%s\n", what,
		err <= -10000 ? agentbus_strerror(err) : strerror(-err),
		err <= -10000 && *agentbus_last_error() ? ": " : "",
		err <= -10000 ? agentbus_last_error() : "");
	atomic_store_explicit(&c->sh->failed, 1, memory_order_release);
	return -1;
}

/* Wait for the daemon, open the stream, and (after @sub_cfg) subscribe. */
static int tp_attach(struct tp_ctx *c, agentbus_bus **bus, agentbus_stream **stream)
{
	int rc;

	*bus = NULL;
	*stream = NULL;
	if (bench_wait_at_least(&c->sh->bus_ready, 1, &c->sh->failed, c->deadline) < 0)
		return -1;
	rc = agentbus_open(bus, c->bus);
	if (rc == 0)
		rc = agentbus_stream_open(*bus, TP_STREAM, stream);
	if (rc < 0)
		return tp_fail(c, "agentbus attach", rc);
	return 0;
}

static void tp_detach(agentbus_bus *bus, agentbus_stream *stream)
{
	if (stream)
		agentbus_stream_close(stream);
	if (bus)
		agentbus_close(bus);
}

/* Say we are attached and wait for the parent to start the run. */
static int tp_ready(struct tp_ctx *c)
{
	atomic_fetch_add_explicit(&c->sh->attached, 1, memory_order_release);
	return bench_wait_at_least(&c->sh->phase, TP_RUN, &c->sh->failed, c->deadline);
}

/*
 * Note the window edges as this process sees them. Returns 1 when the run
 * is over for it.
 */
static int tp_mark(struct tp_side *side, uint32_t phase, uint64_t count)
{
	if (phase == TP_MEASURE) {
		side->start_ns = bench_now_ns();
		side->start_count = count;
	} else if (phase >= TP_STOP) {
		side->end_ns = bench_now_ns();
		side->end_count = count;
		return 1;
	}
	return 0;
}

/* How many of the window's records producer @index publishes. */
static uint64_t tp_share(const struct tp_ctx *c)
{
	uint64_t total = c->sh->window_records, share = total / (uint64_t)c->o->producers;

	return c->index == 0 ? share + total % (uint64_t)c->o->producers : share;
}

/* The producer's messages: @batch of them, each with its own payload. */
static struct agentbus_message *tp_messages(const struct tp_opts *o, char **payloads)
{
	struct agentbus_message *msgs = calloc(o->batch, sizeof(*msgs));

	*payloads = calloc(o->batch, o->size);
	if (!msgs || !*payloads) {
		free(msgs);
		free(*payloads);
		return NULL;
	}
	for (uint64_t i = 0; i < o->batch; i++) {
		msgs[i].subject = TP_SUBJECT;
		msgs[i].subject_len = sizeof(TP_SUBJECT) - 1;
		msgs[i].payload = *payloads + i * o->size;
		msgs[i].payload_len = o->size;
		memset(*payloads + i * o->size, 'a' + (int)(i % 26), o->size);
	}
	return msgs;
}

/* Stamp producer number and record numbers, then publish one call's worth. */
static int64_t tp_publish(struct tp_ctx *c, agentbus_stream *stream,
			  struct agentbus_message *msgs, char *payloads, uint64_t count)
{
	const struct tp_opts *o = c->o;

	for (uint64_t i = 0; i < o->batch; i++) {
		uint64_t tag = (uint64_t)c->index << 56 | ((count + i) & TP_SEQ_MASK);

		memcpy(payloads + i * o->size, &tag, sizeof(tag));
	}
	if (o->batch == 1)
		return agentbus_publish(stream, msgs, 100);
	return agentbus_publish_batch(stream, msgs, o->batch, 100);
}

/* Does the window end at a number of records (count and burst modes)? */
static int tp_counted(const struct tp_opts *o)
{
	return o->count || o->burst;
}

/* One publish call, retried after back-pressure; adds its records to *count. */
static int tp_publish_retrying(struct tp_ctx *c, agentbus_stream *stream,
			       struct agentbus_message *msgs, char *payloads, uint64_t *count)
{
	int64_t rc;

	while ((rc = tp_publish(c, stream, msgs, payloads, *count)) == AGENTBUS_E_BACKPRESSURE) {
		c->sh->prod[c->index].backpressure++;
		if (bench_now_ns() > c->deadline)
			return tp_fail(c, "publish: back-pressure until the deadline", (int)rc);
	}
	if (rc < 0)
		return tp_fail(c, "publish", (int)rc);
	*count += c->o->batch;
	return 0;
}

/*
 * The producer loop: publish until the parent says stop (time mode) or the
 * share is done (count mode). The phase word is read every call: it sits in
 * this CPU's cache, shared, until the parent writes it.
 */
static int tp_produce(struct tp_ctx *c, agentbus_stream *stream, struct agentbus_message *msgs,
		      char *payloads)
{
	struct tp_side *side = &c->sh->prod[c->index];
	uint64_t share = c->o->count ? tp_share(c) : UINT64_MAX;
	uint64_t count = 0;
	uint32_t seen = TP_WAIT;

	for (;;) {
		uint32_t phase = atomic_load_explicit(&c->sh->phase, memory_order_acquire);

		if (phase != seen && tp_mark(side, phase, count))
			break;
		seen = phase;
		if (count >= share || atomic_load_explicit(&c->sh->failed, memory_order_relaxed))
			break;
		if (tp_publish_retrying(c, stream, msgs, payloads, &count) < 0)
			return -1;
	}
	if (c->o->count)
		tp_mark(side, TP_STOP, count);
	return 0;
}

/* Burst mode: publish through the warm-up, stop when told to settle, then
 * publish this producer's share of the burst. */
static int tp_produce_burst(struct tp_ctx *c, agentbus_stream *stream,
			    struct agentbus_message *msgs, char *payloads)
{
	struct tp_side *side = &c->sh->prod[c->index];
	uint64_t count = 0, end;

	while (atomic_load_explicit(&c->sh->phase, memory_order_acquire) == TP_RUN)
		if (tp_publish_retrying(c, stream, msgs, payloads, &count) < 0)
			return -1;
	atomic_fetch_add_explicit(&c->sh->settled, 1, memory_order_release);
	/* Pairs with the parent's release of TP_MEASURE after window_records. */
	if (bench_wait_at_least(&c->sh->phase, TP_MEASURE, &c->sh->failed, c->deadline) < 0)
		return -1;
	end = count + tp_share(c);
	tp_mark(side, TP_MEASURE, count);
	while (count < end)
		if (tp_publish_retrying(c, stream, msgs, payloads, &count) < 0)
			return -1;
	tp_mark(side, TP_STOP, count);
	return 0;
}

static int tp_producer(void *arg)
{
	struct tp_ctx *c = arg;
	agentbus_bus *bus;
	agentbus_stream *stream;
	struct agentbus_message *msgs;
	char *payloads = NULL;
	int rc = -1;

	msgs = tp_messages(c->o, &payloads);
	if (!msgs)
		return tp_fail(c, "producer", -ENOMEM);
	if (tp_attach(c, &bus, &stream) == 0 && tp_ready(c) == 0)
		rc = c->o->burst ? tp_produce_burst(c, stream, msgs, payloads) :
				   tp_produce(c, stream, msgs, payloads);
	tp_detach(bus, stream);
	free(msgs);
	free(payloads);
	return rc;
}

/* Check one record's length and that it is its producer's next one. */
static void tp_check(struct tp_ctx *c, const struct agentbus_record *rec, uint64_t *next)
{
	uint64_t tag, producer;

	if (rec->payload_len != c->o->size) {
		c->sh->sub.errors++;
		return;
	}
	memcpy(&tag, rec->payload, sizeof(tag));
	producer = tag >> 56;
	if (producer >= (uint64_t)c->o->producers || (tag & TP_SEQ_MASK) != next[producer]) {
		c->sh->sub.errors++;
		if (producer < (uint64_t)c->o->producers)
			next[producer] = (tag & TP_SEQ_MASK) + 1;
		return;
	}
	next[producer]++;
}

/*
 * The subscriber loop: drain in batches, checking every record. In time
 * mode the parent closes the window; in count and burst modes it ends at the
 * window's last record.
 */
static int tp_drain(struct tp_ctx *c, agentbus_sub *sub)
{
	struct agentbus_record recs[TP_READ_BATCH];
	uint64_t next[TP_MAX_PRODUCERS] = { 0 };
	uint64_t count = 0, end = UINT64_MAX;
	uint32_t seen = TP_WAIT;

	for (;;) {
		uint32_t phase = atomic_load_explicit(&c->sh->phase, memory_order_acquire);
		int n;

		if (phase != seen && !tp_counted(c->o) && tp_mark(&c->sh->sub, phase, count))
			break;
		if (phase != seen && tp_counted(c->o) && phase == TP_MEASURE) {
			tp_mark(&c->sh->sub, phase, count);
			end = c->sh->records_before + c->sh->window_records;
		}
		seen = phase;
		if (count >= end || atomic_load_explicit(&c->sh->failed, memory_order_relaxed))
			break;
		n = agentbus_sub_read_batch(sub, recs, TP_READ_BATCH, 10);
		if (n < 0)
			return tp_fail(c, "agentbus_sub_read_batch", n);
		for (int i = 0; i < n; i++)
			tp_check(c, &recs[i], next);
		count += (uint64_t)n;
		atomic_store_explicit(&c->sh->received, count, memory_order_relaxed);
		if (n == 0 && bench_now_ns() > c->deadline)
			return tp_fail(c, "subscriber: records stopped coming", AGENTBUS_E_TIMEOUT);
	}
	if (tp_counted(c->o))
		tp_mark(&c->sh->sub, TP_STOP, count);
	return 0;
}

static int tp_subscriber(void *arg)
{
	struct tp_ctx *c = arg;
	struct agentbus_sub_config cfg = { .start = AGENTBUS_START_NEW, .wait = AGENTBUS_WAIT_SPIN };
	agentbus_bus *bus;
	agentbus_stream *stream;
	agentbus_sub *sub = NULL;
	int rc = -1;

	if (tp_attach(c, &bus, &stream) == 0) {
		rc = agentbus_subscribe(stream, &cfg, &sub);
		if (rc < 0)
			rc = tp_fail(c, "agentbus_subscribe", rc);
		else if (tp_ready(c) == 0)
			rc = tp_drain(c, sub);
		else
			rc = -1;
	}
	if (sub)
		agentbus_sub_close(sub);
	tp_detach(bus, stream);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Parent                                                                    */
/* ------------------------------------------------------------------------ */

/* The daemon and the stream; 0 or -1 (message printed). */
static int tp_start_bus(struct tp_ctx *c, agentbus_daemon **daemon)
{
	struct agentbus_daemon_config dc = { .bus = c->bus };
	struct agentbus_stream_config sc = { .ring_size = c->o->ring_size };
	agentbus_bus *bus = NULL;
	uint64_t record = c->o->size * c->o->batch + 4096 * c->o->batch;
	int rc;

	if (record > AGENTBUS_DEFAULT_MAX_RECORD)
		sc.max_record = record;
	rc = agentbus_daemon_start(daemon, &dc);
	if (rc == 0)
		rc = agentbus_open(&bus, c->bus);
	if (rc == 0)
		rc = agentbus_stream_create(bus, TP_STREAM, &sc);
	if (bus)
		agentbus_close(bus);
	if (rc < 0)
		return tp_fail(c, "agentbus set-up", rc);
	return 0;
}

static void tp_set_phase(struct tp_ctx *c, uint32_t phase)
{
	atomic_store_explicit(&c->sh->phase, phase, memory_order_release);
}

/* Poll the stream until @done says yes; 0, or -1 at the deadline. */
static int tp_poll_stream(struct tp_ctx *c, agentbus_stream *stream,
			  int (*done)(struct tp_ctx *, const struct agentbus_stream_info *),
			  struct agentbus_stream_info *info)
{
	while (agentbus_stream_stat(stream, info) == 0 && !done(c, info)) {
		if (bench_now_ns() > c->deadline || atomic_load(&c->sh->failed))
			return tp_fail(c, "burst warm-up: the stream did not settle", AGENTBUS_E_TIMEOUT);
		bench_sleep_ns(1000000);
	}
	return 0;
}

/* The oldest record in the ring is no longer the first: it went round once. */
static int tp_lapped(struct tp_ctx *c, const struct agentbus_stream_info *info)
{
	(void)c;
	return info->first_seq > 1;
}

/* The subscriber has read every record, and the log holds them all. */
static int tp_caught_up(struct tp_ctx *c, const struct agentbus_stream_info *info)
{
	uint64_t logged = info->config.fsync == AGENTBUS_FSYNC_NEVER ? info->written_seq :
								       info->synced_seq;

	return atomic_load(&c->sh->received) + 1 >= info->next_seq && logged >= info->next_seq;
}

/* Three quarters of the ring, in records of the size the warm-up lap had. */
static uint64_t tp_burst_records(const struct agentbus_stream_info *info)
{
	uint64_t records = info->next_seq - info->first_seq;
	uint64_t frame = records ? info->ring_used / records : 0;

	return frame ? info->ring_size / 4 * 3 / frame : 1;
}

/*
 * Burst mode: a lap of warm-up, then settle (producers stop, subscriber and
 * log catch up), then size the burst to three quarters of the ring unless
 * --count said otherwise.
 */
static int tp_settle(struct tp_ctx *c)
{
	struct agentbus_stream_info info;
	agentbus_bus *bus = NULL;
	agentbus_stream *stream = NULL;
	int rc = tp_attach(c, &bus, &stream);

	if (rc == 0) {
		tp_set_phase(c, TP_RUN);
		rc = tp_poll_stream(c, stream, tp_lapped, &info);
	}
	tp_set_phase(c, TP_SETTLE);
	if (rc == 0)
		rc = bench_wait_at_least(&c->sh->settled, (uint32_t)c->o->producers, &c->sh->failed,
					 c->deadline);
	if (rc == 0)
		rc = tp_poll_stream(c, stream, tp_caught_up, &info);
	if (rc == 0) {
		c->sh->records_before = info.next_seq - 1;
		if (!c->o->count)
			c->sh->window_records = tp_burst_records(&info);
	}
	tp_detach(bus, stream);
	return rc;
}

/* Drive the phases: warm-up and window (time mode), warm-up, settle and
 * burst (burst mode), or just go (count mode). */
static int tp_drive(struct tp_ctx *c)
{
	uint32_t all = (uint32_t)c->o->producers + 1;

	if (bench_wait_at_least(&c->sh->attached, all, &c->sh->failed, c->deadline) < 0) {
		atomic_store(&c->sh->failed, 1);
		return -1;
	}
	c->sh->window_records = c->o->count;
	if (c->o->burst && tp_settle(c) < 0) {
		atomic_store(&c->sh->failed, 1);
		return -1;
	}
	if (c->o->count || c->o->burst) {
		tp_set_phase(c, TP_MEASURE);
		return 0;
	}
	tp_set_phase(c, TP_RUN);
	bench_sleep_ns((uint64_t)(c->o->warmup * 1e9));
	tp_set_phase(c, TP_MEASURE);
	bench_sleep_ns((uint64_t)(c->o->seconds * 1e9));
	tp_set_phase(c, TP_STOP);
	return 0;
}

static double tp_rate(uint64_t count, uint64_t start_ns, uint64_t end_ns)
{
	return end_ns > start_ns ? (double)count * 1e9 / (double)(end_ns - start_ns) : 0.0;
}

static void tp_collect(const struct tp_ctx *c, struct tp_result *r)
{
	const struct tp_side *sub = &c->sh->sub;

	memset(r, 0, sizeof(*r));
	r->delivered = sub->end_count - sub->start_count;
	r->msgs_per_s = tp_rate(r->delivered, sub->start_ns, sub->end_ns);
	r->window_s = (double)(sub->end_ns - sub->start_ns) / 1e9;
	r->errors = sub->errors;
	for (int i = 0; i < c->o->producers; i++) {
		const struct tp_side *p = &c->sh->prod[i];
		uint64_t n = p->end_count - p->start_count;

		r->published += n;
		r->publish_per_s += tp_rate(n, p->start_ns, p->end_ns);
		r->backpressure += p->backpressure;
	}
}

/*
 * One run: fork the subscriber and the producers (before the daemon thread
 * exists), start the bus, drive the phases, reap everyone by the deadline,
 * stop the daemon and remove the bus.
 */
static int tp_run(const struct tp_opts *o, struct tp_result *r)
{
	struct tp_ctx c = { .o = o };
	struct tp_ctx pc[TP_MAX_PRODUCERS];
	struct bench_children kids = { .count = 0 };
	agentbus_daemon *daemon = NULL;
	uint64_t run_ns = tp_counted(o) ? 60000000000ull + o->count * 2000 :
				     (uint64_t)((o->warmup + o->seconds) * 1e9);
	int failed = 0;

	c.sh = bench_shared_alloc(sizeof(*c.sh));
	if (!c.sh)
		return bench_error("cannot map shared memory"), -1;
	bench_bus_name(c.bus, sizeof(c.bus), "tp");
	c.deadline = bench_now_ns() + TP_SETUP_NS + run_ns;
	failed |= bench_spawn(&kids, o->cpu_sub, tp_subscriber, &c) < 0;
	for (int i = 0; i < o->producers && !failed; i++) {
		pc[i] = c;
		pc[i].index = i;
		failed |= bench_spawn(&kids, o->cpu_prod[i], tp_producer, &pc[i]) < 0;
	}
	if (failed || tp_start_bus(&c, &daemon) < 0)
		atomic_store(&c.sh->failed, 1);
	atomic_store_explicit(&c.sh->bus_ready, 1, memory_order_release);
	if (!atomic_load(&c.sh->failed))
		tp_drive(&c);
	failed |= bench_reap(&kids, c.deadline + 2000000000u) != 0;
	if (daemon)
		agentbus_daemon_stop(daemon);
	agentbus_bus_destroy(c.bus);
	failed |= atomic_load(&c.sh->failed) != 0;
	tp_collect(&c, r);
	failed |= r->errors != 0;
	bench_shared_free(c.sh, sizeof(*c.sh));
	if (failed)
		bench_error("throughput: measurement failed");
	return failed ? -1 : 0;
}

/* ------------------------------------------------------------------------ */
/* Report                                                                    */
/* ------------------------------------------------------------------------ */

static void tp_print_human(const struct tp_opts *o, const struct tp_result *r)
{
	printf("agentbus bench throughput: %" PRIu64 " B payloads, %d producer%s on CPU",
	       o->size, o->producers, o->producers > 1 ? "s" : "");
	for (int i = 0; i < o->producers; i++)
		printf("%s%d", i ? "," : " ", o->cpu_prod[i]);
	printf(", subscriber on CPU %d, %" PRIu64 " record%s per publish call\n", o->cpu_sub,
	       o->batch, o->batch > 1 ? "s" : "");
	printf("  delivered  %10.3f M records/s %10.1f MB/s  (%" PRIu64 " records in %.3f s)\n",
	       r->msgs_per_s / 1e6, r->msgs_per_s * (double)o->size / 1e6, r->delivered,
	       r->window_s);
	printf("  published  %10.3f M records/s %10.1f MB/s\n", r->publish_per_s / 1e6,
	       r->publish_per_s * (double)o->size / 1e6);
	printf("  back-pressure retries %" PRIu64 ", order/length errors %" PRIu64 "\n",
	       r->backpressure, r->errors);
}

static void tp_print_json(const struct tp_opts *o, const struct tp_result *r, int ok)
{
	printf("{\"bench\":\"throughput\",\"ok\":%s,\"size_bytes\":%" PRIu64 ",\"producers\":%d,"
	       "\"same_cpu\":%s,\"batch\":%" PRIu64 ",\"cpu_subscriber\":%d,\"cpu_producers\":[",
	       ok ? "true" : "false", o->size, o->producers, o->same_cpu ? "true" : "false",
	       o->batch, o->cpu_sub);
	for (int i = 0; i < o->producers; i++)
		printf("%s%d", i ? "," : "", o->cpu_prod[i]);
	printf("],\"window_s\":%.6f,\"msgs_per_s\":%.0f,\"bytes_per_s\":%.0f,"
	       "\"publish_msgs_per_s\":%.0f,\"publish_bytes_per_s\":%.0f,\"delivered\":%" PRIu64
	       ",\"published\":%" PRIu64 ",\"backpressure_retries\":%" PRIu64
	       ",\"errors\":%" PRIu64 "}\n",
	       r->window_s, r->msgs_per_s, r->msgs_per_s * (double)o->size, r->publish_per_s,
	       r->publish_per_s * (double)o->size, r->delivered, r->published, r->backpressure,
	       r->errors);
}

/* ------------------------------------------------------------------------ */
/* Options and entry                                                         */
/* ------------------------------------------------------------------------ */

static void tp_usage(FILE *out)
{
	fprintf(out,
		"usage: agentbus bench throughput [--size BYTES] [--producers N] [--same-cpu]\n"
		"                                 [--count N | --seconds S] [--burst] [--batch N]\n"
		"                                 [--ring-size BYTES] [--json]\n"
		"\n"
		"Records/s and bytes/s that N producer processes publish and one subscriber\n"
		"process (spinning) drains. The subscriber runs on the last CPU we may use,\n"
		"producers spread over the others (--same-cpu: all on the first).\n"
		"\n"
		"  --size BYTES      payload bytes (>= 8; K/M suffixes), default 64\n"
		"  --producers N     producer processes (1-%d), default 1\n"
		"  --same-cpu        pin every producer to the first CPU\n"
		"  --seconds S       measured window after a 0.3 s warm-up, default 2\n"
		"  --count N         instead: publish N records in all, time until all arrive\n"
		"  --burst           first a lap of the ring, then, once the subscriber and\n"
		"                    the log caught up, a burst the ring absorbs (--count N,\n"
		"                    default 3/4 of the ring): the ring's rate, not the log's\n"
		"  --batch N         records per publish call (agentbus_publish_batch), default 1\n"
		"  --ring-size BYTES stream ring size, default the stream default\n"
		"  --json            print one JSON object (msgs_per_s, bytes_per_s, ...)\n",
		TP_MAX_PRODUCERS);
}

/* Parse one option at argv[*i]: 0 ok, 1 --help, -1 error. */
static int tp_parse_one(int argc, char **argv, int *i, struct tp_opts *o)
{
	const char *v = NULL;
	uint64_t n;
	int m;

	if ((m = bench_opt(argc, argv, i, "--size", &v)) != 0)
		return m < 0 || bench_parse_size(v, &o->size) ? bench_bad_opt("--size", v) : 0;
	if ((m = bench_opt(argc, argv, i, "--producers", &v)) != 0) {
		if (m < 0 || bench_parse_u64(v, &n) || n < 1 || n > TP_MAX_PRODUCERS)
			return bench_bad_opt("--producers", v);
		o->producers = (int)n;
		return 0;
	}
	if ((m = bench_opt(argc, argv, i, "--count", &v)) != 0)
		return m < 0 || bench_parse_u64(v, &o->count) || !o->count ?
			       bench_bad_opt("--count", v) : 0;
	if ((m = bench_opt(argc, argv, i, "--seconds", &v)) != 0)
		return m < 0 || bench_parse_double(v, &o->seconds) || o->seconds > 3600 ?
			       bench_bad_opt("--seconds", v) : 0;
	if ((m = bench_opt(argc, argv, i, "--batch", &v)) != 0)
		return m < 0 || bench_parse_u64(v, &o->batch) || !o->batch || o->batch > 4096 ?
			       bench_bad_opt("--batch", v) : 0;
	if ((m = bench_opt(argc, argv, i, "--ring-size", &v)) != 0)
		return m < 0 || bench_parse_size(v, &o->ring_size) ?
			       bench_bad_opt("--ring-size", v) : 0;
	if (bench_opt(argc, argv, i, "--same-cpu", NULL) > 0)
		return o->same_cpu = 1, 0;
	if (bench_opt(argc, argv, i, "--burst", NULL) > 0)
		return o->burst = 1, 0;
	if (bench_opt(argc, argv, i, "--json", NULL) > 0)
		return o->json = 1, 0;
	if (bench_opt(argc, argv, i, "--help", NULL) > 0 || bench_opt(argc, argv, i, "-h", NULL) > 0)
		return 1;
	bench_error("throughput: unknown option '%s' (see --help)", argv[*i]);
	return -1;
}

/* Subscriber on the last CPU; producers on the others, or all on the first. */
static int tp_place(struct tp_opts *o)
{
	int cpus[BENCH_MAX_CPUS];
	int n = bench_allowed_cpus(cpus, BENCH_MAX_CPUS);

	if (n < 2)
		return bench_error("throughput needs two CPUs to run on"), -1;
	o->cpu_sub = cpus[n - 1];
	for (int i = 0; i < o->producers; i++)
		o->cpu_prod[i] = o->same_cpu ? cpus[0] : cpus[i % (n - 1)];
	return 0;
}

/* Fill @o from the command line and the defaults. 0, 1 (help shown), -1. */
static int tp_parse(int argc, char **argv, struct tp_opts *o)
{
	*o = (struct tp_opts){ .size = 64, .producers = 1, .seconds = 2, .warmup = 0.3,
			       .batch = 1 };
	for (int i = 1; i < argc; i++) {
		int r = tp_parse_one(argc, argv, &i, o);

		if (r > 0)
			tp_usage(stdout);
		if (r != 0)
			return r;
	}
	if (o->size < 8 || o->size > (64u << 20))
		return bench_error("--size must be 8 B to 64 MiB"), -1;
	if (o->count > (1ull << 40))
		return bench_error("--count too large"), -1;
	return tp_place(o);
}

int bench_throughput_main(int argc, char **argv)
{
	struct tp_result r;
	struct tp_opts o;
	int rc = tp_parse(argc, argv, &o);

	if (rc != 0)
		return rc > 0 ? BENCH_OK : BENCH_USAGE;
	rc = tp_run(&o, &r);
	if (o.json)
		tp_print_json(&o, &r, rc == 0);
	else
		tp_print_human(&o, &r);
	return rc == 0 ? BENCH_OK : BENCH_FAILED;
}
