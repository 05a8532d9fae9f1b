/*
 * stress.h - the producer and checker shared by test_stress.c (processes)
 * and test_stress_threads.c (threads in one process).
 *
 * Producers publish until a deadline, mixing single publishes, batches,
 * claim/commit and (rarely) claim/abort. Every record's payload starts with
 * a stress_head naming its producer and that producer's counter, followed
 * by a body of pseudo-random bytes and random length whose checksum is in
 * the head. Each checker reads the stream from seq 1 and proves it saw
 * every record exactly once: sequence numbers strictly increase, every
 * producer's counter goes up by exactly one, batch members have adjacent
 * seqs, bodies match their checksums, and at the end the records it saw
 * plus the gaps it skipped account for every sequence number given out.
 *
 * The control block holds only atomics and plain values written before
 * the workers start, so it works both in a MAP_SHARED mapping and in
 * ordinary memory.
 */
#ifndef AGENTBUS_TEST_STRESS_H
#define AGENTBUS_TEST_STRESS_H

#include <stdatomic.h>

#include "helpers.h"

#define STRESS_MAX_PRODUCERS 16
#define STRESS_MAGIC 0x53545245u /* "STRE" */
#define STRESS_MAX_BODY 6000
#define STRESS_MAX_RECORD 8192
#define STRESS_MAX_BATCH 8
#define STRESS_END "stress.end" /* subject of the marker after the last record */

/* What every stress record's payload starts with. */
struct stress_head {
	uint32_t magic;       /* STRESS_MAGIC */
	uint32_t producer;    /* 0 .. producers-1 */
	uint64_t counter;     /* 1, 2, 3, ... per producer */
	uint32_t body_len;    /* bytes after this head */
	uint16_t batch_index; /* position in its batch; 0 for a lone record */
	uint16_t batch_len;   /* records in its batch; 1 for a lone record */
	uint64_t body_sum;    /* t_fnv1a of the body */
};

/* Shared by the parent, the producers and the checkers. */
struct stress_ctl {
	uint64_t end_ns;          /* CLOCK_MONOTONIC: producers stop starting records */
	uint64_t hard_end_ns;     /* CLOCK_MONOTONIC: everyone gives up and fails */
	uint64_t seed;            /* base of every producer's generator */
	uint32_t producers;       /* number of producers */
	atomic_uint subs_ready;   /* checkers attached and waiting for seq 1 */
	atomic_uint producers_done;
	atomic_uint_fast64_t published[STRESS_MAX_PRODUCERS]; /* records committed */
	atomic_uint_fast64_t aborted[STRESS_MAX_PRODUCERS];   /* claims given up */
	atomic_uint_fast64_t backpressured;                   /* publishes that found the ring full */
};

/* Print a stress failure and return T_FAIL, for use in workers. */
#define STRESS_FAIL(who, ...)                                         \
	({                                                            \
		fprintf(stderr, "%s:%d: %s: ", __FILE__, __LINE__, who); \
		fprintf(stderr, __VA_ARGS__);                         \
		fprintf(stderr, " (last error: %s)\n", agentbus_last_error()); \
		T_FAIL;                                               \
	})

/* Fill @body with @len pseudo-random bytes from @rng. */
static inline void stress_body(unsigned char *body, size_t len, uint64_t *rng)
{
	size_t i = 0;

	for (; i + 8 <= len; i += 8) {
		uint64_t v = t_rand(rng);

		memcpy(body + i, &v, 8);
	}
	if (i < len) {
		uint64_t v = t_rand(rng);

		memcpy(body + i, &v, len - i);
	}
}

/* A random body length: mostly small records, some large ones. */
static inline uint32_t stress_body_len(uint64_t *rng)
{
	uint64_t r = t_rand(rng);

	if (r % 10 < 8)
		return (uint32_t)((r >> 8) % 257);
	return (uint32_t)((r >> 8) % (STRESS_MAX_BODY + 1));
}

/* Write head and body of the next record of @producer into @out; returns its size. */
static inline size_t stress_make(unsigned char *out, uint32_t producer, uint64_t counter,
			  uint32_t body_len, uint16_t batch_index, uint16_t batch_len,
			  uint64_t *rng)
{
	struct stress_head h = {
		.magic = STRESS_MAGIC,
		.producer = producer,
		.counter = counter,
		.body_len = body_len,
		.batch_index = batch_index,
		.batch_len = batch_len,
	};

	stress_body(out + sizeof(h), body_len, rng);
	h.body_sum = t_fnv1a(out + sizeof(h), body_len);
	memcpy(out, &h, sizeof(h));
	return sizeof(h) + body_len;
}

/*
 * Publish the @n records of @m (a batch when @n > 1): first without
 * waiting, so that a full ring is counted, then waiting for room until the
 * hard deadline. Returns the first seq or a negative code.
 */
static inline int64_t stress_publish_batch(struct stress_ctl *ctl, agentbus_stream *s,
				    const struct agentbus_message *m, size_t n)
{
	int timeout = 0;

	for (;;) {
		int64_t r = n == 1 ? agentbus_publish(s, m, timeout)
				   : agentbus_publish_batch(s, m, n, timeout);

		if (r != AGENTBUS_E_BACKPRESSURE || t_now_ns() >= ctl->hard_end_ns)
			return r;
		/* count the full ring, then wait for room */
		if (timeout == 0)
			atomic_fetch_add(&ctl->backpressured, 1);
		timeout = 100;
	}
}

/* Claim room for @len payload bytes, counting and waiting out a full ring. */
static inline int stress_claim(struct stress_ctl *ctl, agentbus_stream *s,
			const struct agentbus_message *m, size_t len, struct agentbus_claim *c)
{
	int timeout = 0;

	for (;;) {
		int r = agentbus_claim(s, m, len, timeout, c);

		if (r != AGENTBUS_E_BACKPRESSURE || t_now_ns() >= ctl->hard_end_ns)
			return r;
		if (timeout == 0)
			atomic_fetch_add(&ctl->backpressured, 1);
		timeout = 100;
	}
}

/* Publish one batch of 1..STRESS_MAX_BATCH records by copy; returns 0 or T_FAIL. */
static inline int stress_copy_step(struct stress_ctl *ctl, agentbus_stream *s, uint32_t id,
			    const char *subject, uint64_t *counter, uint64_t *rng, bool batch)
{
	static _Thread_local unsigned char bufs[STRESS_MAX_BATCH][STRESS_MAX_RECORD];
	struct agentbus_message msgs[STRESS_MAX_BATCH];
	size_t n = batch ? 1 + t_rand(rng) % STRESS_MAX_BATCH : 1;
	int64_t r;

	for (size_t i = 0; i < n; i++) {
		/* a batch must fit in one claim, so keep its members small */
		uint32_t len = batch ? stress_body_len(rng) % 600 : stress_body_len(rng);
		size_t size = stress_make(bufs[i], id, *counter + 1 + i, len, (uint16_t)i,
					  (uint16_t)n, rng);

		msgs[i] = (struct agentbus_message){
			.subject = subject,
			.key = &id,
			.key_len = sizeof(id),
			.payload = bufs[i],
			.payload_len = size,
		};
	}
	r = stress_publish_batch(ctl, s, msgs, n);
	if (r <= 0)
		return STRESS_FAIL(subject, "publish of %zu records: %" PRId64 " (%s)", n, r,
				   agentbus_strerror((int)r));
	*counter += n;
	atomic_fetch_add(&ctl->published[id], n);
	return T_PASS;
}

/* Publish one record through claim/commit, or claim and abort it; 0 or T_FAIL. */
static inline int stress_claim_step(struct stress_ctl *ctl, agentbus_stream *s, uint32_t id,
			     const char *subject, uint64_t *counter, uint64_t *rng, bool abort)
{
	struct agentbus_message m = { .subject = subject, .key = &id, .key_len = sizeof(id) };
	uint32_t len = stress_body_len(rng);
	struct agentbus_claim c;
	int64_t r;

	r = stress_claim(ctl, s, &m, sizeof(struct stress_head) + len, &c);
	if (r < 0)
		return STRESS_FAIL(subject, "claim: %" PRId64 " (%s)", r, agentbus_strerror((int)r));
	if (abort) {
		/* write garbage first: an aborted claim must never be delivered */
		memset(c.payload, 0xee, c.payload_len);
		r = agentbus_abort(&c);
		if (r < 0)
			return STRESS_FAIL(subject, "abort: %" PRId64, r);
		atomic_fetch_add(&ctl->aborted[id], 1);
		return T_PASS;
	}
	stress_make(c.payload, id, *counter + 1, len, 0, 1, rng);
	r = agentbus_commit(&c);
	if (r != (int64_t)c.seq)
		return STRESS_FAIL(subject, "commit of seq %" PRIu64 ": %" PRId64, c.seq, r);
	*counter += 1;
	atomic_fetch_add(&ctl->published[id], 1);
	return T_PASS;
}

/* Producer @id: publish on @s until ctl->end_ns. Returns T_PASS or T_FAIL. */
static inline int stress_produce(struct stress_ctl *ctl, agentbus_stream *s, uint32_t id)
{
	uint64_t rng = ctl->seed ^ (0x9e3779b97f4a7c15ull * (id + 1));
	uint64_t counter = 0;
	char subject[32];
	int r = T_PASS;

	snprintf(subject, sizeof(subject), "stress.p%u", id);
	while (r == T_PASS && t_now_ns() < ctl->end_ns) {
		uint64_t op = t_rand(&rng) % 100;

		if (op < 70)
			r = stress_copy_step(ctl, s, id, subject, &counter, &rng, false);
		else if (op < 85)
			r = stress_copy_step(ctl, s, id, subject, &counter, &rng, true);
		else if (op < 99)
			r = stress_claim_step(ctl, s, id, subject, &counter, &rng, false);
		else
			r = stress_claim_step(ctl, s, id, subject, &counter, &rng, true);
	}
	atomic_fetch_add(&ctl->producers_done, 1);
	return r;
}

/* What one checker has seen so far. */
struct stress_check {
	const char *who;                               /* "sub0" ... for messages */
	uint64_t last_seq;                             /* seq of the last record seen */
	uint64_t seen;                                 /* records seen */
	uint64_t skipped;                              /* seqs jumped over (gaps) */
	uint64_t counters[STRESS_MAX_PRODUCERS];       /* last counter per producer */
	uint64_t producer_seq[STRESS_MAX_PRODUCERS];   /* seq of its last record */
};

/* Check one record against everything seen before; T_PASS or T_FAIL. */
static inline int stress_check_record(const struct stress_ctl *ctl, struct stress_check *ck,
			       const struct agentbus_record *rec)
{
	struct stress_head h;
	char subject[32];
	uint32_t key;

	if (rec->seq <= ck->last_seq)
		return STRESS_FAIL(ck->who, "seq %" PRIu64 " after %" PRIu64, rec->seq,
				   ck->last_seq);
	ck->skipped += rec->seq - ck->last_seq - 1;
	ck->last_seq = rec->seq;
	ck->seen++;
	if (rec->payload_len < sizeof(h))
		return STRESS_FAIL(ck->who, "seq %" PRIu64 ": payload of %u bytes", rec->seq,
				   rec->payload_len);
	memcpy(&h, rec->payload, sizeof(h));
	if (h.magic != STRESS_MAGIC || h.producer >= ctl->producers ||
	    h.body_len != rec->payload_len - sizeof(h))
		return STRESS_FAIL(ck->who, "seq %" PRIu64 ": bad head (magic %x producer %u len %u/%u)",
				   rec->seq, h.magic, h.producer, h.body_len, rec->payload_len);
	if (t_fnv1a((const unsigned char *)rec->payload + sizeof(h), h.body_len) != h.body_sum)
		return STRESS_FAIL(ck->who, "seq %" PRIu64 ": body checksum mismatch", rec->seq);
	snprintf(subject, sizeof(subject), "stress.p%u", h.producer);
	if (!t_subject_is(rec, subject) || rec->key_len != sizeof(key))
		return STRESS_FAIL(ck->who, "seq %" PRIu64 ": subject/key do not match producer %u",
				   rec->seq, h.producer);
	memcpy(&key, rec->key, sizeof(key));
	if (key != h.producer)
		return STRESS_FAIL(ck->who, "seq %" PRIu64 ": key %u, producer %u", rec->seq, key,
				   h.producer);
	if (h.counter != ck->counters[h.producer] + 1)
		return STRESS_FAIL(ck->who, "seq %" PRIu64 ": producer %u counter %" PRIu64
				   " after %" PRIu64, rec->seq, h.producer, h.counter,
				   ck->counters[h.producer]);
	if (h.batch_index > 0 && rec->seq != ck->producer_seq[h.producer] + 1)
		return STRESS_FAIL(ck->who, "seq %" PRIu64 ": member %u of a batch not adjacent to %"
				   PRIu64, rec->seq, h.batch_index, ck->producer_seq[h.producer]);
	ck->counters[h.producer] = h.counter;
	ck->producer_seq[h.producer] = rec->seq;
	return T_PASS;
}

/* Records committed and claims aborted by all producers so far. */
static inline void stress_totals(const struct stress_ctl *ctl, uint64_t *published, uint64_t *aborted)
{
	*published = 0;
	*aborted = 0;
	for (uint32_t i = 0; i < ctl->producers; i++) {
		*published += atomic_load(&ctl->published[i]);
		*aborted += atomic_load(&ctl->aborted[i]);
	}
}

/*
 * The final account of checker @ck, whose subscription is @sub, at the end
 * marker @end_seq: every record seen, every producer's last counter, every
 * gap an aborted claim. The marker is published after all producers are
 * done, so the totals are final and trailing aborts are gaps before it.
 */
static inline int stress_check_final(const struct stress_ctl *ctl, const struct stress_check *ck,
			      agentbus_sub *sub, uint64_t end_seq)
{
	struct agentbus_sub_stats st;
	uint64_t published, aborted;

	stress_totals(ctl, &published, &aborted);
	agentbus_sub_stats_get(sub, &st);
	if (end_seq != published + aborted + 1 || end_seq - ck->last_seq - 1 + ck->skipped != aborted)
		return STRESS_FAIL(ck->who, "end marker at seq %" PRIu64 " after seq %" PRIu64
				   ", skipped %" PRIu64 "; published %" PRIu64 " + aborted %" PRIu64,
				   end_seq, ck->last_seq, ck->skipped, published, aborted);
	if (ck->seen != published)
		return STRESS_FAIL(ck->who, "saw %" PRIu64 " records, %" PRIu64 " published",
				   ck->seen, published);
	for (uint32_t i = 0; i < ctl->producers; i++)
		if (ck->counters[i] != atomic_load(&ctl->published[i]))
			return STRESS_FAIL(ck->who, "producer %u: last counter %" PRIu64
					   ", published %" PRIu64, i, ck->counters[i],
					   (uint64_t)atomic_load(&ctl->published[i]));
	printf("%s: %" PRIu64 " records, %" PRIu64 " of them from the log\n", ck->who, st.delivered,
	       st.from_log);
	if (st.delivered != published + 1 || st.gaps != aborted)
		return STRESS_FAIL(ck->who, "stats: delivered %" PRIu64 " gaps %" PRIu64
				   "; want %" PRIu64 " and %" PRIu64, st.delivered, st.gaps,
				   published + 1, aborted);
	return T_PASS;
}

/*
 * Checker loop on @sub until the end marker (subject STRESS_END) or the
 * hard deadline. @mode picks the read call: 0 sub_read, 1 read_batch,
 * 2 read_copy, so all of them see the same load. Returns T_PASS or T_FAIL.
 */
static inline int stress_consume(const struct stress_ctl *ctl, agentbus_sub *sub, const char *who,
			  int mode)
{
	static _Thread_local unsigned char copy[STRESS_MAX_RECORD];
	struct agentbus_record recs[16];
	struct stress_check ck = { .who = who };

	for (;;) {
		int n;

		if (t_now_ns() >= ctl->hard_end_ns)
			return STRESS_FAIL(who, "deadline passed after %" PRIu64 " records, last seq %"
					   PRIu64, ck.seen, ck.last_seq);
		if (mode == 1)
			n = agentbus_sub_read_batch(sub, recs, 16, 100);
		else if (mode == 2)
			n = agentbus_sub_read_copy(sub, recs, copy, sizeof(copy), 100);
		else
			n = agentbus_sub_read(sub, recs, 100);
		if (n < 0)
			return STRESS_FAIL(who, "read: %d (%s)", n, agentbus_strerror(n));
		for (int i = 0; i < n; i++) {
			if (t_subject_is(&recs[i], STRESS_END)) {
				if (i != n - 1)
					return STRESS_FAIL(who, "records after the end marker");
				return stress_check_final(ctl, &ck, sub, recs[i].seq);
			}
			if (stress_check_record(ctl, &ck, &recs[i]) != T_PASS)
				return T_FAIL;
		}
	}
}

/* Publish the end marker, once every producer is done. Returns its seq. */
static inline int64_t stress_publish_end(agentbus_stream *s)
{
	struct agentbus_message m = t_msg(STRESS_END, NULL, 0);

	return agentbus_publish(s, &m, 10000);
}

/*
 * Create the stress stream. @mode is "block" (default: producers wait for
 * the slowest checker, so every record is read from the ring) or "spill"
 * (producers never wait for checkers; a checker that falls a ring behind
 * reads on from the log). Fails the test on an unknown mode.
 */
static inline void stress_create_stream(agentbus_bus *bus, const char *name, uint64_t ring_size,
					const char *mode)
{
	struct agentbus_stream_config cfg = {
		.ring_size = ring_size,
		.max_record = STRESS_MAX_RECORD,
		.overflow = AGENTBUS_OVERFLOW_BLOCK,
	};

	if (mode && strcmp(mode, "spill") == 0)
		cfg.overflow = AGENTBUS_OVERFLOW_SPILL;
	else if (mode && strcmp(mode, "block") != 0)
		t_fail(__FILE__, __LINE__, "unknown mode '%s' (block or spill)", mode);
	T_OK(agentbus_stream_create(bus, name, &cfg));
}

/* Wait strategy of checker @i: each strategy gets exercised. */
static inline enum agentbus_wait stress_wait_of(int i)
{
	static const enum agentbus_wait waits[] = { AGENTBUS_WAIT_SPIN_SLEEP, AGENTBUS_WAIT_SLEEP,
						    AGENTBUS_WAIT_SPIN };

	return waits[i % 3];
}

#endif /* AGENTBUS_TEST_STRESS_H */
