/*
 * subscribe.c - subscriptions: joining a stream, reading frames in order,
 * waiting for new ones.
 *
 * Synchronising edges (see publish.c for the other ends):
 *   C1' acquire load of a frame's tag: sees the record a producer committed.
 *   S1' release store of the slot position: every byte below it is done
 *       with, so producers (S1) may overwrite it.
 *   W1' seq_cst increment of `sleepers`, fence, then tag load: no wake-up is
 *       lost between "nothing to read" and going to sleep.
 *   J1  join: the subscription takes the hold in the limit word (128-bit
 *       CAS), so the limit cannot move while it picks its start; it then
 *       release-stores its slot as ACTIVE and lets go of the hold with a CAS
 *       that bumps the version. A producer computing a new limit either read
 *       the limit after that CAS (and so sees the ACTIVE slot), or its own CAS
 *       fails because the word changed.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "bus/internal.h"
#include "shm/futex.h"

#define JOIN_TIMEOUT_NS 2000000000ull
#define DEFAULT_SPIN_NS 50000u
#define MAX_SLEEP_NS 100000000ll /* re-check deletion at least this often */
#define CATCH_UP_PAUSES 32        /* ~1 us of pause instructions here */

static int take_slot(agentbus_sub *sub)
{
	struct stream_control *c = sub->stream->control;
	uint32_t i, none, me = sub->stream->bus->client_id;

	for (i = 0; i < STREAM_MAX_SUBSCRIPTIONS; i++) {
		none = 0;
		if (__atomic_compare_exchange_n(&c->slots[i].owner, &none, me, 0, __ATOMIC_SEQ_CST,
						__ATOMIC_SEQ_CST)) {
			sub->slot = &c->slots[i];
			sub->slot_index = i;
			return 0;
		}
	}
	return set_error(AGENTBUS_E_LIMIT, "stream '%s': all %u subscription slots are taken",
			 sub->stream->name, STREAM_MAX_SUBSCRIPTIONS);
}

/* J1: freeze the limit. Waits (bounded) while another subscription joins. */
static int hold_limit(agentbus_sub *sub, union pair64 *held)
{
	struct stream_control *c = sub->stream->control;
	uint64_t deadline = monotonic_ns() + JOIN_TIMEOUT_NS;
	union pair64 limit, want;

	for (;;) {
		limit = load128(&c->limit);
		if ((limit.hi & LIMIT_HOLDER_MASK) == 0) {
			want.lo = limit.lo;
			want.hi = limit.hi | (sub->slot_index + 1);
			if (cas128(&c->limit, limit, want).whole == limit.whole) {
				*held = want;
				return 0;
			}
			continue;
		}
		if (monotonic_ns() > deadline)
			return set_error(AGENTBUS_E_TIMEOUT,
					 "stream '%s': another subscription is stuck joining",
					 sub->stream->name);
		sched_yield();
	}
}

static void release_limit(agentbus_sub *sub, union pair64 held)
{
	union pair64 next;

	next.lo = held.lo;
	next.hi = ((held.hi >> LIMIT_HOLDER_BITS) + 1) << LIMIT_HOLDER_BITS;
	/* Fails only if the daemon took the hold back from us, thinking us dead. */
	cas128(&sub->stream->control->limit, held, next);
}

/* Length and sequence count of the frame at @p, or 0 when it is not marked yet. */
static uint64_t frame_extent(agentbus_stream *stream, uint64_t p, uint64_t *seq, uint64_t *count)
{
	struct frame_header *h = frame_at(stream, p);
	uint64_t tag = load_acquire(&h->tag); /* C1' */

	if (tag == frame_tag(p, FRAME_GAP)) {
		*seq = h->gap_first_seq;
		*count = h->gap_seq_count;
		return h->gap_frame_len;
	}
	if (tag == frame_tag(p, FRAME_COMMITTED) || tag == frame_tag(p, FRAME_CLAIMED)) {
		*seq = h->seq;
		*count = 1;
		return h->frame_len;
	}
	return 0;
}

/*
 * Walk from the floor to the frame holding @want (0: the oldest frame); the
 * limit is held, so the region is intact. A frame not yet marked ends the
 * walk with -EAGAIN.
 */
static int seek_seq(agentbus_sub *sub, uint64_t floor, union pair64 tail, uint64_t want)
{
	agentbus_stream *stream = sub->stream;
	uint64_t p = floor, seq = 0, count, len, expect = 0;

	while (p < tail.lo) {
		len = frame_extent(stream, p, &seq, &count);
		if (len == 0)
			return -EAGAIN;
		if (len % FRAME_ALIGN || len > stream->ring_size / 2 || p + len > tail.lo ||
		    count == 0 || (expect && seq != expect))
			return set_error(AGENTBUS_E_CORRUPT, "stream '%s': bad frame at position %llu",
					 stream->name, (unsigned long long)p);
		if (p == floor && want == 0)
			want = seq; /* the oldest record */
		if (p == floor && want < seq)
			return set_error(AGENTBUS_E_SEQ_GONE,
					 "stream '%s': seq %llu is no longer in the ring (oldest is %llu)",
					 stream->name, (unsigned long long)want,
					 (unsigned long long)seq);
		if (want < seq + count)
			break;
		p += len;
		expect = seq + count;
	}
	sub->position = p;
	sub->next_seq = p < tail.lo ? seq : tail.hi;
	return 0;
}

static int choose_start(agentbus_sub *sub, const struct agentbus_sub_config *cfg,
			uint64_t limit)
{
	agentbus_stream *stream = sub->stream;
	union pair64 tail = load128(&stream->control->tail);
	uint64_t floor = limit > stream->ring_size ? limit - stream->ring_size : 0;
	uint64_t want;

	if (floor > tail.lo || floor % FRAME_ALIGN || tail.lo % FRAME_ALIGN)
		return set_error(AGENTBUS_E_CORRUPT, "stream '%s': tail or limit is corrupt",
				 stream->name);
	switch (cfg->start) {
	case AGENTBUS_START_NEW:
		sub->position = tail.lo;
		sub->next_seq = tail.hi;
		return 0;
	case AGENTBUS_START_OLDEST:
		want = 0;
		break;
	default:
		want = cfg->start_seq;
		if (want == 0)
			return set_error(AGENTBUS_E_INVALID, "subscribe: sequence numbers start at 1");
		if (want >= tail.hi) {
			sub->position = tail.lo;
			sub->next_seq = tail.hi;
			sub->min_seq = want;
			return 0;
		}
	}
	sub->min_seq = want;
	return seek_seq(sub, floor, tail, want);
}

/* J1: pick the start under the hold and become ACTIVE. */
static int join(agentbus_sub *sub, const struct agentbus_sub_config *cfg)
{
	uint64_t deadline = monotonic_ns() + JOIN_TIMEOUT_NS;
	union pair64 held;
	int err;

	for (;;) {
		err = hold_limit(sub, &held);
		if (err)
			return err;
		err = choose_start(sub, cfg, held.lo);
		if (!err) {
			store_relaxed(&sub->slot->next_seq, sub->next_seq);
			store_relaxed(&sub->slot->position, sub->position);
			store_release(&sub->slot->state, SLOT_ACTIVE);
		}
		release_limit(sub, held);
		if (err != -EAGAIN)
			break;
		/* A producer sits between reserving and marking its frame. */
		if (monotonic_ns() > deadline)
			return set_error(AGENTBUS_E_TIMEOUT, "stream '%s': a claim stays unmarked",
					 sub->stream->name);
		sched_yield();
	}
	sub->released_position = sub->position;
	return err;
}

static int check_config(agentbus_stream *stream, const struct agentbus_sub_config *cfg)
{
	size_t len;

	if (!stream || !stream->bus)
		return set_error(AGENTBUS_E_INVALID, "subscribe: stream is NULL");
	if (cfg->start > AGENTBUS_START_OLDEST || cfg->wait > AGENTBUS_WAIT_SLEEP)
		return set_error(AGENTBUS_E_INVALID, "subscribe: unknown start or wait strategy");
	if (!cfg->filter)
		return 0;
	len = strnlen(cfg->filter, AGENTBUS_SUBJECT_MAX + 1);
	if (agentbus_pattern_check(cfg->filter, len) != 0)
		return set_error(AGENTBUS_E_INVALID, "subscribe: invalid subject filter '%.80s'",
				 cfg->filter);
	return 0;
}

int agentbus_subscribe(agentbus_stream *stream, const struct agentbus_sub_config *config,
		       agentbus_sub **out)
{
	struct agentbus_sub_config defaults = { 0 };
	const struct agentbus_sub_config *cfg = config ? config : &defaults;
	agentbus_sub *sub;
	int err;

	err = check_config(stream, cfg);
	if (err)
		return err;
	if (!out)
		return set_error(AGENTBUS_E_INVALID, "subscribe: sub pointer is NULL");
	if (load_relaxed(&stream->control->deleted))
		return set_error(AGENTBUS_E_DELETED, "stream '%s' was deleted", stream->name);
	sub = calloc(1, sizeof(*sub));
	if (!sub)
		return set_error(-ENOMEM, "out of memory");
	sub->stream = stream;
	sub->wait = cfg->wait;
	sub->spin_ns = cfg->spin_ns ? cfg->spin_ns : DEFAULT_SPIN_NS;
	if (cfg->filter) {
		sub->filter_len = strlen(cfg->filter);
		memcpy(sub->filter, cfg->filter, sub->filter_len);
	}
	err = take_slot(sub);
	if (!err)
		err = join(sub, cfg);
	if (err) {
		if (sub->slot)
			store_release(&sub->slot->owner, 0);
		free(sub);
		return err;
	}
	*out = sub;
	return 0;
}

void agentbus_sub_close(agentbus_sub *sub)
{
	if (!sub)
		return;
	store_release(&sub->slot->state, SLOT_FREE);
	store_release(&sub->slot->owner, 0);
	free(sub);
}

/* S1': tell producers everything below our cursor may be overwritten. */
static void release_position(agentbus_sub *sub)
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

static int fill_record(agentbus_sub *sub, const struct frame_header *h, uint64_t len,
		       struct agentbus_record *rec)
{
	const unsigned char *body = (const unsigned char *)(h + 1);
	uint64_t used = (uint64_t)h->subject_len + h->key_len + h->headers_len + h->payload_len;

	if (h->subject_len == 0 || used > sub->stream->max_record ||
	    align_frame(sizeof(*h) + used) != len)
		return corrupt(sub, "record lengths do not add up");
	rec->seq = sub->next_seq;
	rec->time_ns = h->time_ns;
	rec->subject = (const char *)body;
	rec->subject_len = h->subject_len;
	rec->key = body + h->subject_len;
	rec->key_len = h->key_len;
	rec->headers = body + h->subject_len + h->key_len;
	rec->headers_len = h->headers_len;
	rec->payload = body + h->subject_len + h->key_len + h->headers_len;
	rec->payload_len = h->payload_len;
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

/* Does the committed frame @h pass the start and subject filters? */
static int wanted(agentbus_sub *sub, const struct agentbus_record *rec)
{
	if (rec->seq < sub->min_seq)
		return 0;
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

/*
 * Look at the frames from our cursor on: returns 1 with the next wanted
 * record, 0 when the next frame is not committed yet, or an error (the
 * cursor then stays on the bad frame). @may_release: no earlier view of this
 * call is in use, so skipped frames can be given back at once.
 */
static int poll_frames(agentbus_sub *sub, struct agentbus_record *rec, int may_release)
{
	agentbus_stream *stream = sub->stream;
	struct frame_header *h;
	uint64_t tag, len, p;
	int err;

	for (;;) {
		p = sub->position;
		h = frame_at(stream, p);
		tag = load_acquire(&h->tag); /* C1': pairs with C1 in publish.c */
		if (tag == frame_tag(p, FRAME_GAP)) {
			err = skip_gap(sub, h);
			if (err)
				return err;
			continue;
		}
		if (tag != frame_tag(p, FRAME_COMMITTED))
			break;
		len = h->frame_len;
		if (len < FRAME_ALIGN || len % FRAME_ALIGN || len > stream->max_frame)
			return corrupt(sub, "bad frame length");
		prefetch_body(h, len);
		if (h->seq != sub->next_seq)
			return corrupt(sub, "sequence number out of order");
		err = fill_record(sub, h, len, rec);
		if (err)
			return err;
		sub->last_position = p;
		sub->last_seq = sub->next_seq;
		sub->position += len;
		sub->next_seq++;
		if (wanted(sub, rec)) {
			sub->stats.delivered++;
			return 1;
		}
	}
	if (may_release)
		release_position(sub);
	if (load_relaxed(&stream->control->deleted))
		return set_error(AGENTBUS_E_DELETED, "stream '%s' was deleted", stream->name);
	return 0;
}

int agentbus_sub_poll(agentbus_sub *sub, struct agentbus_record *record)
{
	if (!sub || !record)
		return set_error(AGENTBUS_E_INVALID, "poll: NULL argument");
	release_position(sub); /* the previous read's views end here */
	return poll_frames(sub, record, 1);
}

/*
 * Busy-poll until @until. A reader that has just caught up with a producer
 * would otherwise sit on the very cache line the producer writes next, and
 * every record would cost a line transfer each way (~240 ns here): so right
 * after a record, it first pauses ~1 us and lets the producer run ahead.
 * A reader that has been idle polls tightly, for the lowest latency.
 */
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
	release_position(sub);
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
	if (r <= 0)
		return r;
	for (n = 1; n < max; n++) {
		/* Earlier views of this batch must stay valid: no release. */
		r = poll_frames(sub, &records[n], 0);
		if (r <= 0)
			break;
	}
	return (int)n;
}

int agentbus_sub_read_copy(agentbus_sub *sub, struct agentbus_record *record, void *buffer,
			   size_t buffer_len, int timeout_ms)
{
	int r;

	if (!sub || !record || (!buffer && buffer_len))
		return set_error(AGENTBUS_E_INVALID, "read copy: NULL argument");
	r = agentbus_sub_read(sub, record, timeout_ms);
	if (r <= 0)
		return r;
	if (record->payload_len > buffer_len) {
		/* Keep it for the next call, with a bigger buffer. */
		sub->position = sub->last_position;
		sub->next_seq = sub->last_seq;
		sub->stats.delivered--;
		return set_error(AGENTBUS_E_TOO_LARGE, "read copy: payload of %u bytes, buffer of %zu",
				 record->payload_len, buffer_len);
	}
	memcpy(buffer, record->payload, record->payload_len);
	record->payload = buffer;
	return 1;
}

void agentbus_sub_stats_get(const agentbus_sub *sub, struct agentbus_sub_stats *stats)
{
	uint64_t next;

	if (!sub || !stats)
		return;
	*stats = sub->stats;
	stats->next_seq = sub->next_seq;
	next = load_relaxed(&sub->stream->control->tail.hi);
	stats->lag = next > sub->next_seq ? next - sub->next_seq : 0;
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
