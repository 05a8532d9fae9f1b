/*
 * read.c - reading a subscription's records from the ring, waiting for new
 * ones, and the public read calls.
 *
 * A TETHERED subscription returns views straight into the ring: producers
 * cannot overwrite them before the next read. A FOLLOWING one (overflow
 * SPILL) can be lapped at any moment, so it copies each record into its
 * arena first and then checks that the copy is whole (edge L1); if it was
 * lapped, it goes on from the log (catch_up.c).
 *
 * Synchronising edges (see publish.c for the other ends):
 *   C1' acquire load of a frame's tag: sees the record a producer committed.
 *   S1' release store of the slot position: every byte below it is done
 *       with, so producers (S1) may overwrite it.
 *   W1' seq_cst increment of `sleepers`, fence, then tag load: no wake-up is
 *       lost between "nothing to read" and going to sleep.
 *   L1  a following reader copies a frame, then (acquire fence) reads the
 *       limit: a producer overwrites [p, p+len) only after the limit passed
 *       p + ring_size, and its writes reach memory after it read that limit
 *       (x86-64 keeps stores after earlier loads, and readers' loads in
 *       order), so a copy followed by limit <= p + ring_size is whole.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bus/internal.h"
#include "shm/futex.h"

#define MAX_SLEEP_NS 100000000ll /* re-check deletion at least this often */
#define CATCH_UP_PAUSES 32        /* ~1 us of pause instructions here */
#define ARENA_MIN (256u << 10)

/* S1': tell producers everything below our cursor may be overwritten. */
void release_position(agentbus_sub *sub)
{
	if (sub->position == sub->released_position)
		return;
	store_relaxed(&sub->slot->next_seq, sub->next_seq);
	store_release(&sub->slot->position, sub->position);
	sub->released_position = sub->position;
}

static int corrupt(agentbus_sub *sub, const char *what)
{
	return set_error(AGENTBUS_E_CORRUPT, "stream '%s': %s at seq %llu (position %llu)",
			 sub->stream->name, what, (unsigned long long)sub->next_seq,
			 (unsigned long long)sub->position);
}

/* Point @rec at the parts of the record @h (whose lengths were checked). */
void record_view(const struct frame_header *h, uint64_t seq, struct agentbus_record *rec)
{
	const unsigned char *body = (const unsigned char *)(h + 1);

	rec->seq = seq;
	rec->time_ns = h->time_ns;
	rec->subject = (const char *)body;
	rec->subject_len = h->subject_len;
	rec->key = body + h->subject_len;
	rec->key_len = h->key_len;
	rec->headers = body + h->subject_len + h->key_len;
	rec->headers_len = h->headers_len;
	rec->payload = body + h->subject_len + h->key_len + h->headers_len;
	rec->payload_len = h->payload_len;
}

int fill_record(agentbus_sub *sub, const struct frame_header *h, uint64_t len,
		struct agentbus_record *rec)
{
	uint64_t used = frame_body_len(h);

	if (h->subject_len == 0 || used > sub->stream->max_record ||
	    align_frame(sizeof(*h) + used) != len)
		return corrupt(sub, "record lengths do not add up");
	record_view(h, sub->next_seq, rec);
	return 0;
}

static int skip_gap(agentbus_sub *sub, const struct frame_header *h)
{
	uint64_t len = h->gap_frame_len, count = h->gap_seq_count;

	if (len < FRAME_ALIGN || len % FRAME_ALIGN || len > sub->stream->ring_size / 2 ||
	    count == 0 || h->gap_first_seq != sub->next_seq)
		return corrupt(sub, "malformed gap");
	sub->position += len;
	sub->next_seq += count;
	sub->stats.gaps += count;
	return 0;
}

/* Does the record pass the start (seq, time) and subject filters? */
int wanted(agentbus_sub *sub, const struct agentbus_record *rec)
{
	if (rec->seq < sub->min_seq)
		return 0;
	if (sub->min_time_ns) {
		if (rec->time_ns < sub->min_time_ns)
			return 0;
		sub->min_time_ns = 0; /* from the first record at or after it, all */
	}
	if (sub->filter_len &&
	    !agentbus_subject_matches(sub->filter, sub->filter_len, rec->subject, rec->subject_len)) {
		sub->stats.filtered++;
		return 0;
	}
	return 1;
}

/* Ask for the next lines of a small frame all at once, so their transfers
 * from the producer's CPU overlap instead of following one another. */
static void prefetch_body(const struct frame_header *h, uint64_t len)
{
	const char *line = (const char *)h + FRAME_ALIGN;

	if (len > FRAME_ALIGN)
		__builtin_prefetch(line);
	if (len > 2 * FRAME_ALIGN)
		__builtin_prefetch(line + FRAME_ALIGN);
	if (len > 3 * FRAME_ALIGN)
		__builtin_prefetch(line + 2 * FRAME_ALIGN);
}

/* Past this point, the frame at @p may have been overwritten (L1). The
 * limit is read first: it changes rarely and is mostly in our cache; only
 * when it says "maybe" is the (busier) tail read to be sure. */
static int maybe_lapped(agentbus_sub *sub, uint64_t p)
{
	struct stream_control *c = sub->stream->control;
	uint64_t end = p + sub->stream->ring_size;

	return load_acquire(&c->limit.lo) > end && load_acquire(&c->tail.lo) > end;
}

/* Copy a frame that a producer may be overwriting right now: the bytes may
 * be torn, which the caller detects (L1). */
static RACY_READER void copy_racy(void *to, const void *from, uint64_t len)
{
	const volatile uint64_t *src = from;
	uint64_t *dst = to, i;

	for (i = 0; i < len / 8; i++)
		dst[i] = src[i];
}

/* The probe of a following reader (see RACY_READER): L1 makes what it
 * reads safe to use. */
/* The frame's tag (C1') and, as a hint for how much to copy, its length. */
static RACY_READER uint64_t probe_frame(const struct frame_header *h, uint64_t *frame_len)
{
	uint64_t tag = load_acquire(&h->tag);

	*frame_len = h->frame_len;
	return tag;
}

/* Room for @len bytes in the arena; NULL if the records already returned by
 * this call fill it (it only grows when it is empty, so no view moves). */
unsigned char *arena_take(agentbus_sub *sub, uint64_t len)
{
	unsigned char *p;
	size_t cap;

	if (sub->arena_used + len > sub->arena_cap) {
		if (sub->arena_used)
			return NULL;
		cap = len > ARENA_MIN ? len : ARENA_MIN;
		p = realloc(sub->arena, cap);
		if (!p)
			return NULL;
		sub->arena = p;
		sub->arena_cap = cap;
	}
	p = sub->arena + sub->arena_used;
	sub->arena_used += align_frame(len);
	return p;
}

static int skip_or_error(agentbus_sub *sub, const struct frame_header *gap)
{
	int err = skip_gap(sub, gap);

	return err ? err : STEP_SKIPPED;
}

/* The ring lapped a following subscription: it goes on from the log. */
static int lapped(agentbus_sub *sub)
{
	int err = log_start(sub, AGENTBUS_START_SEQ, sub->next_seq, 0);

	return err ? err : STEP_MOVED;
}

/* A tethered subscription: the frame is ours until we release it. */
static int ring_next_tethered(agentbus_sub *sub, struct agentbus_record *rec)
{
	agentbus_stream *stream = sub->stream;
	uint64_t p = sub->position, tag, len;
	struct frame_header *h = frame_at(stream, p);
	int err;

	tag = load_acquire(&h->tag); /* C1': pairs with C1 in publish.c */
	if (tag == frame_tag(p, FRAME_GAP))
		return skip_or_error(sub, h);
	if (tag != frame_tag(p, FRAME_COMMITTED))
		return STEP_NOTHING;
	len = h->frame_len;
	if (len < FRAME_ALIGN || len % FRAME_ALIGN || len > stream->max_frame)
		return corrupt(sub, "bad frame length");
	prefetch_body(h, len);
	if (h->seq != sub->next_seq)
		return corrupt(sub, "sequence number out of order");
	err = fill_record(sub, h, len, rec);
	if (err)
		return err;
	sub->position += len;
	sub->next_seq++;
	return STEP_RECORD;
}

/* A following subscription: copy, then make sure the copy is whole (L1). */
static int ring_next_following(agentbus_sub *sub, struct agentbus_record *rec)
{
	agentbus_stream *stream = sub->stream;
	uint64_t p = sub->position, tag, len;
	struct frame_header *h = frame_at(stream, p), *copy;
	int err;

	tag = probe_frame(h, &len); /* C1' */
	if (tag != frame_tag(p, FRAME_COMMITTED) && tag != frame_tag(p, FRAME_GAP))
		return maybe_lapped(sub, p) ? lapped(sub) : STEP_NOTHING;
	if (tag == frame_tag(p, FRAME_GAP))
		len = sizeof(*h);
	if (len < FRAME_ALIGN || len % FRAME_ALIGN || len > stream->max_frame)
		len = sizeof(*h); /* maybe torn: the check below decides */
	copy = (struct frame_header *)arena_take(sub, len);
	if (!copy)
		return STEP_NOTHING; /* this call's batch is full */
	copy_racy(copy, h, len);
	__atomic_thread_fence(__ATOMIC_ACQUIRE); /* L1 */
	if (maybe_lapped(sub, p)) {
		sub->arena_used -= align_frame(len);
		return lapped(sub);
	}
	if (copy->tag == frame_tag(p, FRAME_GAP)) {
		sub->arena_used -= align_frame(len);
		return skip_or_error(sub, copy);
	}
	if (copy->frame_len != len || copy->seq != sub->next_seq)
		return corrupt(sub, "bad frame length or sequence number");
	err = fill_record(sub, copy, len, rec);
	if (err)
		return err;
	sub->position += len;
	sub->next_seq++;
	return STEP_RECORD;
}

/*
 * Look at the frames from our cursor on: returns 1 with the next wanted
 * record, 0 when the next frame is not committed yet (or this call's batch is
 * full), or an error (the cursor then stays on the bad frame). @may_release:
 * no earlier view of this call is in use, so skipped frames can be given
 * back at once.
 */
static int poll_frames(agentbus_sub *sub, struct agentbus_record *rec, int may_release)
{
	agentbus_stream *stream = sub->stream;
	int step, moves = 0;

	for (;;) {
		size_t arena_mark = sub->arena_used;

		/* Between the ring and the log once each way at most: more means
		 * they disagree (a corrupt tail, say); the caller's timeout rules. */
		if (moves > 2)
			break;
		if (sub->in_log)
			step = poll_log(sub, rec);
		else if (sub->following)
			step = ring_next_following(sub, rec);
		else
			step = ring_next_tethered(sub, rec);
		if (step < 0)
			return step;
		if (step == STEP_NOTHING)
			break;
		moves = step == STEP_MOVED ? moves + 1 : 0;
		if (step == STEP_RECORD && wanted(sub, rec)) {
			sub->stats.delivered++;
			return 1;
		}
		sub->arena_used = arena_mark; /* a copy nobody will see */
	}
	if (may_release)
		release_position(sub);
	if (load_relaxed(&stream->control->deleted))
		return set_error(AGENTBUS_E_DELETED, "stream '%s' was deleted", stream->name);
	return 0;
}

/* A new read call: the views of the last one end here. */
static int begin_read(agentbus_sub *sub, struct agentbus_record *record)
{
	if (sub->held_returned)
		sub->holding = sub->held_returned = 0;
	if (sub->holding) {
		*record = sub->held;
		sub->held_returned = 1;
		return 1;
	}
	sub->arena_used = 0;
	release_position(sub);
	return 0;
}

int agentbus_sub_poll(agentbus_sub *sub, struct agentbus_record *record)
{
	if (!sub || !record)
		return set_error(AGENTBUS_E_INVALID, "poll: NULL argument");
	if (begin_read(sub, record))
		return 1;
	return poll_frames(sub, record, 1);
}

static int spin_until(agentbus_sub *sub, struct agentbus_record *rec, uint64_t until)
{
	unsigned i;
	int r;

	if (sub->caught_up) {
		sub->caught_up = 0;
		for (i = 0; i < CATCH_UP_PAUSES; i++)
			cpu_relax();
	}
	for (;;) {
		for (i = 0; i < 64; i++) {
			r = poll_frames(sub, rec, 1);
			if (r)
				return r;
			cpu_relax();
		}
		if (monotonic_ns() >= until)
			return 0;
	}
}

/* W1': count ourselves as a sleeper, look once more, then sleep. */
static int sleep_until(agentbus_sub *sub, struct agentbus_record *rec, uint64_t until)
{
	struct stream_control *c = sub->stream->control;
	uint64_t now;
	uint32_t signal;
	int64_t nap;
	int r;

	for (;;) {
		signal = load_acquire(&c->wake_signal);
		fetch_add_seq_cst(&c->sleepers, 1);
		fence_seq_cst();
		r = poll_frames(sub, rec, 1);
		if (r == 0) {
			now = monotonic_ns();
			nap = until > now ? (int64_t)(until - now) : 0;
			if (nap > MAX_SLEEP_NS)
				nap = MAX_SLEEP_NS;
			if (nap > 0)
				futex_wait(&c->wake_signal, signal, nap);
			r = poll_frames(sub, rec, 1);
		}
		fetch_sub_seq_cst(&c->sleepers, 1);
		if (r || monotonic_ns() >= until)
			return r;
	}
}

static int wait_record(agentbus_sub *sub, struct agentbus_record *rec, int timeout_ms)
{
	uint64_t now = monotonic_ns();
	uint64_t until = timeout_ms < 0 ? UINT64_MAX : now + (uint64_t)timeout_ms * 1000000u;
	int r;

	switch (sub->wait) {
	case AGENTBUS_WAIT_SPIN:
		return spin_until(sub, rec, until);
	case AGENTBUS_WAIT_SPIN_SLEEP:
		r = spin_until(sub, rec, now + sub->spin_ns < until ? now + sub->spin_ns : until);
		if (r)
			return r;
		break;
	case AGENTBUS_WAIT_SLEEP:
		break;
	}
	return sleep_until(sub, rec, until);
}

int agentbus_sub_read(agentbus_sub *sub, struct agentbus_record *record, int timeout_ms)
{
	int r;

	if (!sub || !record)
		return set_error(AGENTBUS_E_INVALID, "read: NULL argument");
	if (begin_read(sub, record))
		return 1;
	r = poll_frames(sub, record, 1);
	if (r || timeout_ms == 0) {
		sub->caught_up = r == 1;
		return r;
	}
	return wait_record(sub, record, timeout_ms);
}

int agentbus_sub_read_batch(agentbus_sub *sub, struct agentbus_record *records, size_t max,
			    int timeout_ms)
{
	size_t n;
	int r;

	if (!sub || !records || max == 0)
		return set_error(AGENTBUS_E_INVALID, "read batch: NULL argument or max 0");
	r = agentbus_sub_read(sub, &records[0], timeout_ms);
	if (r <= 0 || sub->held_returned)
		return r;
	for (n = 1; n < max; n++) {
		/* Earlier views of this batch must stay valid: no release. */
		r = poll_frames(sub, &records[n], 0);
		if (r <= 0)
			break;
	}
	return (int)n;
}

/*
 * Keep @record for the next read call, in the hold space (every record comes
 * from a frame of at most max_frame bytes, so it fits).
 */
static void hold(agentbus_sub *sub, const struct agentbus_record *record)
{
	unsigned char *p = sub->hold_space;

	sub->held = *record;
	sub->holding = 1;
	memcpy(p, record->subject, record->subject_len);
	sub->held.subject = (const char *)p;
	p += record->subject_len;
	memcpy(p, record->key, record->key_len);
	sub->held.key = p;
	p += record->key_len;
	memcpy(p, record->headers, record->headers_len);
	sub->held.headers = p;
	p += record->headers_len;
	memcpy(p, record->payload, record->payload_len);
	sub->held.payload = p;
}

int agentbus_sub_read_copy(agentbus_sub *sub, struct agentbus_record *record, void *buffer,
			   size_t buffer_len, int timeout_ms)
{
	int r;

	if (!sub || !record || (!buffer && buffer_len))
		return set_error(AGENTBUS_E_INVALID, "read copy: NULL argument");
	/* Before the read: out of memory must leave the record unread. */
	if (!sub->hold_space && !(sub->hold_space = malloc(sub->stream->max_frame)))
		return set_error(-ENOMEM, "read copy: out of memory (no record was read)");
	r = agentbus_sub_read(sub, record, timeout_ms);
	if (r <= 0)
		return r;
	if (record->payload_len > buffer_len) {
		if (sub->held_returned)
			sub->held_returned = 0; /* still held for the next call */
		else
			hold(sub, record);
		return set_error(AGENTBUS_E_TOO_LARGE, "read copy: payload of %u bytes, buffer of %zu",
				 record->payload_len, buffer_len);
	}
	if (record->payload_len)
		memcpy(buffer, record->payload, record->payload_len);
	record->payload = buffer;
	return 1;
}

int agentbus_header_next(const struct agentbus_record *record, uint32_t *cursor,
			 struct agentbus_header *header)
{
	const unsigned char *p;
	uint16_t name_len;
	uint32_t value_len;

	if (!record || !cursor || !header)
		return set_error(AGENTBUS_E_INVALID, "header next: NULL argument");
	if (*cursor == record->headers_len)
		return 0;
	if (*cursor > record->headers_len ||
	    record->headers_len - *cursor < HEADER_ENCODED_PREFIX)
		return set_error(AGENTBUS_E_CORRUPT, "headers of seq %llu are truncated",
				 (unsigned long long)record->seq);
	p = (const unsigned char *)record->headers + *cursor;
	memcpy(&name_len, p, 2);
	memcpy(&value_len, p + 2, 4);
	if ((uint64_t)HEADER_ENCODED_PREFIX + name_len + value_len > record->headers_len - *cursor)
		return set_error(AGENTBUS_E_CORRUPT, "headers of seq %llu are truncated",
				 (unsigned long long)record->seq);
	header->name = (const char *)p + HEADER_ENCODED_PREFIX;
	header->name_len = name_len;
	header->value = p + HEADER_ENCODED_PREFIX + name_len;
	header->value_len = value_len;
	*cursor += HEADER_ENCODED_PREFIX + name_len + value_len;
	return 1;
}
