/*
 * publish.c - producers: reserving ring space, writing frames, committing.
 *
 * Synchronising edges (each named at both ends):
 *   T1  tail CAS: reserves [position, position+len) and the sequence numbers.
 *       Producers race only on this CAS; none waits for another's copy.
 *   C1  tag CAS -> P|COMMITTED (release) pairs with the acquire load
 *       of the tag in subscribe.c (C1'): a reader that sees COMMITTED sees
 *       the whole record.
 *   S1  the acquire load of a subscription's slot position in limit_refresh()
 *       pairs with the release store in subscribe.c (S1'): a reader has
 *       finished with every byte below the position it published before a
 *       producer may overwrite them.
 *   W1  commit (seq_cst CAS) then seq_cst load of `sleepers` pairs with the
 *       reader's seq_cst increment of `sleepers` then tag load (W1'): either
 *       the reader sees the record or the producer sees the sleeper and wakes.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus/internal.h"
#include "bus/testing.h"
#include "shm/futex.h"

void (*agentbus_test_hook)(int point);

#define REVOKE_RETRIES 8
#define SMALL_BATCH 32 /* batches up to this many records plan on the stack: no malloc */

struct frame_plan {
	uint32_t subject_len;
	uint32_t key_len;
	uint32_t headers_len;
	uint64_t payload_len;
	uint64_t frame_len;
};

static uint64_t plan_body(const struct frame_plan *plan)
{
	return (uint64_t)plan->subject_len + plan->key_len + plan->headers_len + plan->payload_len;
}

/*
 * Producers publish on a handful of subjects over and over; checking one
 * costs ~150 instructions, a fifth of a publish. Each thread remembers the
 * last subject it found valid and only compares against it.
 */
static int check_subject(const char *subject, size_t len)
{
	static __thread char last_valid[AGENTBUS_SUBJECT_MAX];
	static __thread size_t last_len;
	int err;

	/* last_len starts at 0: an empty subject must not match the empty cache. */
	if (len && len == last_len && memcmp(subject, last_valid, len) == 0)
		return 0;
	err = agentbus_subject_check(subject, len);
	if (!err) {
		memcpy(last_valid, subject, len);
		last_len = len;
	}
	return err;
}

/* Check @m and work out its frame. @copying is 0 for a zero-copy claim,
 * whose payload is written in place later and not read from @m. */
static int plan_frame(const agentbus_stream *stream, const struct agentbus_message *m,
		      int copying, size_t payload_len, struct frame_plan *plan)
{
	size_t subject_len, i;
	uint64_t body;
	int err;

	if (!m || !m->subject)
		return set_error(AGENTBUS_E_INVALID, "publish: message or subject is NULL");
	subject_len = m->subject_len ? m->subject_len : strnlen(m->subject, AGENTBUS_SUBJECT_MAX + 1);
	err = check_subject(m->subject, subject_len);
	if (err)
		return set_error(err, "publish: invalid subject '%.*s'", (int)(subject_len > 80 ? 80 : subject_len),
				 m->subject);
	if (m->key_len > UINT16_MAX || (m->key_len && !m->key))
		return set_error(AGENTBUS_E_INVALID, "publish: key must be 0-65535 bytes and not NULL");
	if (m->header_count && !m->headers)
		return set_error(AGENTBUS_E_INVALID, "publish: headers is NULL with header_count %zu",
				 m->header_count);
	if (copying && payload_len && !m->payload)
		return set_error(AGENTBUS_E_INVALID, "publish: payload is NULL with payload_len %zu",
				 payload_len);
	body = subject_len + m->key_len;
	for (i = 0; i < m->header_count && body <= stream->max_record; i++) {
		const struct agentbus_header *h = &m->headers[i];

		if (!h->name || h->name_len == 0 || (h->value_len && !h->value))
			return set_error(AGENTBUS_E_INVALID, "publish: header %zu has no name or a NULL value", i);
		body += HEADER_ENCODED_PREFIX + h->name_len + (uint64_t)h->value_len;
	}
	plan->headers_len = (uint32_t)(body - subject_len - m->key_len);
	body += payload_len;
	if (body > stream->max_record || payload_len > UINT32_MAX)
		return set_error(AGENTBUS_E_TOO_LARGE,
				 "stream '%s': record of %llu bytes exceeds max_record %llu",
				 stream->name, (unsigned long long)body,
				 (unsigned long long)stream->max_record);
	plan->subject_len = (uint32_t)subject_len;
	plan->key_len = (uint32_t)m->key_len;
	plan->payload_len = payload_len;
	plan->frame_len = align_frame(sizeof(struct frame_header) + body);
	return 0;
}

/*
 * Recompute how far producers may write: the lowest position the spill
 * writer (and, with overflow BLOCK, any subscription) still needs, plus the
 * ring size. Called only when a reservation does not fit under the current
 * limit. Returns the limit.
 */
uint64_t limit_refresh(agentbus_stream *stream)
{
	struct stream_control *c = stream->control;
	union pair64 limit, found, next;
	uint64_t lowest, p;
	uint32_t i;

	for (;;) {
		limit = load128(&c->limit);
		if (limit.hi & LIMIT_HOLDER_MASK)
			return limit.lo; /* frozen while a subscription joins */
		lowest = load_acquire(&c->tail.lo);
		p = load_acquire(&c->spill_position); /* D1: pairs with persist/spill.c */
		if (p < lowest)
			lowest = p;
		for (i = 0; i < STREAM_MAX_SUBSCRIPTIONS; i++) {
			struct sub_slot *slot = &c->slots[i];

			if (load_acquire(&slot->state) != SLOT_TETHERED)
				continue;
			p = load_acquire(&slot->position); /* S1: pairs with S1' in subscribe.c */
			if (p < lowest)
				lowest = p;
		}
		next.lo = lowest + stream->ring_size;
		next.hi = limit.hi;
		if (next.lo <= limit.lo)
			return limit.lo;
		/* Fails if a joiner took the hold since we read the limit: the
		 * version in hi makes even a hold-and-release visible. */
		found = cas128(&c->limit, limit, next);
		if (found.whole == limit.whole)
			return next.lo;
	}
}

/* Sleep a little longer each time a full ring makes a producer wait. */
static void backoff(unsigned attempt)
{
	struct timespec ts = { 0, 0 };

	if (attempt < 16) {
		sched_yield();
		return;
	}
	ts.tv_nsec = attempt < 64 ? 20000 : 200000;
	nanosleep(&ts, NULL);
}

/* Say who holds producers back: the spill writer, or a subscription. */
static int backpressure(agentbus_stream *stream, uint64_t wanted_end)
{
	struct stream_control *c = stream->control;

	if (load_acquire(&c->spill_position) + stream->ring_size < wanted_end)
		return set_error(AGENTBUS_E_BACKPRESSURE,
				 "stream '%s': ring full of records not yet %s to the log%s", stream->name,
				 c->fsync == AGENTBUS_FSYNC_NEVER ? "written" : "synced",
				 load_relaxed(&c->spill_error) ? " (the spill writer has an I/O error)" : "");
	return set_error(AGENTBUS_E_BACKPRESSURE,
			 "stream '%s': ring full of records a subscription has not read", stream->name);
}

/*
 * Reserve @len bytes and @seqs sequence numbers (edge T1), stating each try
 * in this thread's intent slot first (edge I1, bus/intent.c). Returns 0 with
 * the position and first seq, or AGENTBUS_E_BACKPRESSURE / AGENTBUS_E_DELETED.
 */
static int reserve(agentbus_stream *stream, uint64_t len, uint64_t seqs, int timeout_ms,
		   uint64_t *position, uint64_t *seq)
{
	struct stream_control *c = stream->control;
	struct intent_slot *intent;
	union pair64 tail, next, found;
	uint64_t limit, deadline = 0;
	unsigned attempt = 0;
	int err = intent_for_thread(stream, &intent);

	if (err)
		return err;

	/* Two plain halves may be torn; the CAS then fails and hands back the truth. */
	tail.lo = load_relaxed(&c->tail.lo);
	tail.hi = load_relaxed(&c->tail.hi);
	/* Pairs with the limit CAS in limit_refresh(), made after it acquired the
	 * spill position (D1) and tethered slots (S1): what they released is done
	 * with before we overwrite it. */
	limit = load_acquire(&c->limit.lo);
	for (;;) {
		if (tail.lo % FRAME_ALIGN)
			return set_error(AGENTBUS_E_CORRUPT, "stream '%s': tail position %llu is misaligned",
					 stream->name, (unsigned long long)tail.lo);
		if (tail.lo + len > limit) {
			limit = limit_refresh(stream);
			if (tail.lo + len > limit) {
				if (load_relaxed(&c->deleted))
					return set_error(AGENTBUS_E_DELETED, "stream '%s' was deleted",
							 stream->name);
				if (timeout_ms == 0 || (deadline && monotonic_ns() >= deadline))
					return backpressure(stream, tail.lo + len);
				if (!deadline && timeout_ms > 0)
					deadline = monotonic_ns() + (uint64_t)timeout_ms * 1000000u;
				backoff(attempt++);
				tail.lo = load_relaxed(&c->tail.lo);
				tail.hi = load_relaxed(&c->tail.hi);
				continue;
			}
		}
		next.lo = tail.lo + len;
		next.hi = tail.hi + seqs;
		if (intent)
			intent_state(intent, tail.lo, tail.hi, len, seqs);
		found = cas128(&c->tail, tail, next); /* T1 */
		if (found.whole == tail.whole)
			break;
		tail = found;
	}
	*position = tail.lo;
	*seq = tail.hi;
	return 0;
}

/*
 * Write who reserved the frame, its length and seq. The seq goes last, with
 * release: the daemon, seeing the seq it expects (acquire), can trust owner
 * and length and so repair the frame at once if the owner is dead.
 */
static void write_marks(agentbus_stream *stream, uint64_t position, uint64_t frame_len,
			uint64_t seq)
{
	struct frame_header *h = frame_at(stream, position);

	h->owner = stream->bus ? stream->bus->client_id : 0;
	h->frame_len = (uint32_t)frame_len;
	store_release(&h->seq, seq);
}

/*
 * Move a frame of ours to @state (COMMITTED or GAP). A zero-copy claim moves
 * from CLAIMED; a copy publish skips that step (one locked instruction fewer
 * per record) and moves from whatever stale value the tag holds. Either way
 * it is a CAS from the value we own, so it fails, and only fails, if the
 * daemon made the frame a gap first (it thought us dead).
 */
static int finish_frame(agentbus_stream *stream, uint64_t position, int claimed,
			enum frame_state state)
{
	struct frame_header *h = frame_at(stream, position);
	uint64_t old = claimed ? frame_tag(position, FRAME_CLAIMED) : load_relaxed(&h->tag);

	if (old == frame_tag(position, FRAME_GAP))
		return AGENTBUS_E_REVOKED;
	if (state == FRAME_GAP) {
		h->gap_frame_len = h->frame_len;
		h->gap_first_seq = h->seq;
		h->gap_seq_count = 1;
	}
	/* C1 (release, seq_cst): pairs with C1' in subscribe.c. */
	if (!cas64(&h->tag, &old, frame_tag(position, state)))
		return AGENTBUS_E_REVOKED;
	if (state == FRAME_GAP)
		fetch_add_relaxed(&stream->control->gaps, 1);
	return 0;
}

/* A zero-copy claim is marked CLAIMED, since it may be held for long: the
 * daemon then knows at a glance whose it is. */
static int mark_claimed(agentbus_stream *stream, uint64_t position, uint64_t frame_len,
			uint64_t seq)
{
	struct frame_header *h = frame_at(stream, position);
	uint64_t old;

	write_marks(stream, position, frame_len, seq);
	old = load_relaxed(&h->tag);
	if (old == frame_tag(position, FRAME_GAP))
		return AGENTBUS_E_REVOKED;
	if (!cas64(&h->tag, &old, frame_tag(position, FRAME_CLAIMED)))
		return AGENTBUS_E_REVOKED;
	return 0;
}

static unsigned char *write_fields(struct frame_header *h, const struct agentbus_message *m,
				   const struct frame_plan *plan, uint64_t time_ns)
{
	unsigned char *p = (unsigned char *)(h + 1);
	size_t i;

	h->time_ns = time_ns;
	h->payload_len = (uint32_t)plan->payload_len;
	h->subject_len = (uint16_t)plan->subject_len;
	h->key_len = (uint16_t)plan->key_len;
	h->headers_len = plan->headers_len;
	memcpy(p, m->subject, plan->subject_len);
	p += plan->subject_len;
	if (plan->key_len)
		memcpy(p, m->key, plan->key_len);
	p += plan->key_len;
	for (i = 0; i < m->header_count; i++) {
		const struct agentbus_header *hd = &m->headers[i];

		memcpy(p, &hd->name_len, 2);
		memcpy(p + 2, &hd->value_len, 4);
		memcpy(p + HEADER_ENCODED_PREFIX, hd->name, hd->name_len);
		if (hd->value_len)
			memcpy(p + HEADER_ENCODED_PREFIX + hd->name_len, hd->value, hd->value_len);
		p += HEADER_ENCODED_PREFIX + hd->name_len + hd->value_len;
	}
	return p; /* where the payload goes */
}

void wake_sleepers(struct stream_control *c)
{
	/* W1: after the seq_cst commit CAS; pairs with W1' in subscribe.c. */
	if (load_seq_cst(&c->sleepers) == 0)
		return;
	fetch_add_seq_cst(&c->wake_signal, 1);
	futex_wake_all(&c->wake_signal);
}

static int check_stream(agentbus_stream *stream)
{
	if (!stream)
		return set_error(AGENTBUS_E_INVALID, "publish: stream is NULL");
	if (load_relaxed(&stream->control->deleted))
		return set_error(AGENTBUS_E_DELETED, "stream '%s' was deleted", stream->name);
	return 0;
}

/*
 * One attempt at a (batch) copy publish: reserve, mark every frame, copy,
 * commit in order. If the daemon revoked frame i (only possible when it
 * thought us dead, e.g. it restarted), frames before i are already visible;
 * the rest become gaps. Returns the number of frames that became visible
 * in *visible.
 */
static int publish_once(agentbus_stream *stream, const struct agentbus_message *messages,
			const struct frame_plan *plans, size_t count, uint64_t total,
			int timeout_ms, uint64_t *first_seq, size_t *visible)
{
	uint64_t position, seq, p, now;
	size_t i;
	int err;

	*visible = 0;
	/* Stamped before reserving: from the marks to the commit, the producer
	 * touches the frame's first cache line in as short a burst as it can,
	 * so a reader spinning on that line steals it as rarely as possible. */
	now = record_time_ns();
	err = reserve(stream, total, count, timeout_ms, &position, &seq);
	if (err)
		return err;
	test_hook(HOOK_RESERVED);
	for (i = 0, p = position; i < count; p += plans[i].frame_len, i++)
		write_marks(stream, p, plans[i].frame_len, seq + i);
	test_hook(HOOK_MARKED);
	for (i = 0, p = position; i < count; p += plans[i].frame_len, i++) {
		unsigned char *payload = write_fields(frame_at(stream, p), &messages[i], &plans[i], now);

		if (plans[i].payload_len)
			memcpy(payload, messages[i].payload, plans[i].payload_len);
		frame_at(stream, p)->checksum = frame_checksum(frame_at(stream, p), p, plan_body(&plans[i]));
	}
	test_hook(HOOK_WRITTEN);
	for (i = 0, p = position; i < count && !err; p += plans[i].frame_len, i++) {
		err = finish_frame(stream, p, 0, FRAME_COMMITTED);
		*visible += !err;
	}
	for (; i < count; p += plans[i].frame_len, i++)
		finish_frame(stream, p, 0, FRAME_GAP);
	wake_sleepers(stream->control);
	*first_seq = seq;
	return err;
}

static int plan_batch(agentbus_stream *stream, const struct agentbus_message *messages,
		      size_t count, struct frame_plan *plans, uint64_t *total)
{
	size_t i;
	int err;

	*total = 0;
	for (i = 0; i < count; i++) {
		err = plan_frame(stream, &messages[i], 1, messages[i].payload_len, &plans[i]);
		if (err)
			return err;
		*total += plans[i].frame_len;
	}
	if (*total > stream->ring_size / 2)
		return set_error(AGENTBUS_E_TOO_LARGE, "stream '%s': batch of %llu bytes exceeds half the ring",
				 stream->name, (unsigned long long)*total);
	return 0;
}

static int64_t publish_records(agentbus_stream *stream, const struct agentbus_message *messages,
			       size_t count, int timeout_ms)
{
	struct frame_plan small[SMALL_BATCH], *plans = small;
	uint64_t total, first_seq = 0;
	size_t visible = 0;
	int err, attempt;

	err = check_stream(stream);
	if (err)
		return err;
	if (!messages || count == 0)
		return set_error(AGENTBUS_E_INVALID, "publish: no messages");
	if (count > SMALL_BATCH && !(plans = malloc(count * sizeof(*plans))))
		return set_error(-ENOMEM, "out of memory");
	err = plan_batch(stream, messages, count, plans, &total);
	/* A revoked attempt that showed nothing can simply be tried again. */
	for (attempt = 0; !err && attempt < REVOKE_RETRIES; attempt++) {
		err = publish_once(stream, messages, plans, count, total, timeout_ms, &first_seq,
				   &visible);
		if (err != AGENTBUS_E_REVOKED || visible)
			break;
		err = 0;
	}
	if (plans != small)
		free(plans);
	if (err == AGENTBUS_E_REVOKED || (!err && attempt == REVOKE_RETRIES))
		return set_error(AGENTBUS_E_REVOKED,
				 "stream '%s': the daemon revoked the reservation (%zu of %zu records published)",
				 stream->name, visible, count);
	return err ? err : (int64_t)first_seq;
}

int64_t agentbus_publish_durable(agentbus_stream *stream, const struct agentbus_message *messages,
				 size_t count, int timeout_ms, enum agentbus_durability durability)
{
	uint64_t deadline;
	int64_t first;
	int err;

	if (durability == AGENTBUS_DURABILITY_DEFAULT && stream)
		durability = stream->durability;
	if (durability == AGENTBUS_DURABILITY_MEMORY)
		return publish_records(stream, messages, count, timeout_ms); /* no clock read */
	err = stream ? check_durability(stream, durability) : 0;
	if (err)
		return err;
	deadline = deadline_after(timeout_ms);
	first = publish_records(stream, messages, count, timeout_ms);
	if (first < 0)
		return first;
	err = wait_durable_until(stream, (uint64_t)first + count - 1, durability, deadline);
	return err ? err : first;
}

int64_t agentbus_publish_batch(agentbus_stream *stream, const struct agentbus_message *messages,
			       size_t count, int timeout_ms)
{
	return agentbus_publish_durable(stream, messages, count, timeout_ms,
					AGENTBUS_DURABILITY_DEFAULT);
}

int64_t agentbus_publish(agentbus_stream *stream, const struct agentbus_message *message,
			 int timeout_ms)
{
	return agentbus_publish_durable(stream, message, 1, timeout_ms,
					AGENTBUS_DURABILITY_DEFAULT);
}

int agentbus_claim(agentbus_stream *stream, const struct agentbus_message *message,
		   size_t payload_len, int timeout_ms, struct agentbus_claim *claim)
{
	struct frame_plan plan;
	uint64_t position, seq;
	int err = check_stream(stream), attempt;

	if (err)
		return err;
	if (!claim)
		return set_error(AGENTBUS_E_INVALID, "claim: claim is NULL");
	err = plan_frame(stream, message, 0, payload_len, &plan);
	if (err)
		return err;
	for (attempt = 0; attempt < REVOKE_RETRIES; attempt++) {
		err = reserve(stream, plan.frame_len, 1, timeout_ms, &position, &seq);
		if (err)
			return err;
		test_hook(HOOK_RESERVED);
		err = mark_claimed(stream, position, plan.frame_len, seq);
		if (err != AGENTBUS_E_REVOKED)
			break;
	}
	if (err)
		return set_error(err, "claim revoked by the daemon");
	test_hook(HOOK_MARKED);
	claim->payload = write_fields(frame_at(stream, position), message, &plan, record_time_ns());
	claim->payload_len = payload_len;
	claim->seq = seq;
	claim->stream = stream;
	claim->position = position;
	claim->body_len = plan_body(&plan);
	return 0;
}

int64_t agentbus_commit(struct agentbus_claim *claim)
{
	struct frame_header *h;
	int err;

	if (!claim || !claim->stream)
		return set_error(AGENTBUS_E_INVALID, "commit: not a live claim");
	test_hook(HOOK_WRITTEN);
	h = frame_at(claim->stream, claim->position);
	h->checksum = frame_checksum(h, claim->position, claim->body_len);
	err = finish_frame(claim->stream, claim->position, 1, FRAME_COMMITTED);
	wake_sleepers(claim->stream->control);
	if (err) {
		claim->stream = NULL;
		return set_error(err, "commit: the daemon turned this claim into a gap");
	}
	err = wait_durable_until(claim->stream, claim->seq, AGENTBUS_DURABILITY_DEFAULT, UINT64_MAX);
	claim->stream = NULL;
	return err ? err : (int64_t)claim->seq;
}

int agentbus_abort(struct agentbus_claim *claim)
{
	agentbus_stream *stream;

	if (!claim || !claim->stream)
		return set_error(AGENTBUS_E_INVALID, "abort: not a live claim");
	stream = claim->stream;
	claim->stream = NULL;
	finish_frame(stream, claim->position, 1, FRAME_GAP);
	/* Readers waiting at this frame may now skip it. */
	wake_sleepers(stream->control);
	return 0;
}
