/*
 * subscribe.c - attaching a subscription and choosing where it starts.
 * Reading is in read.c (the ring) and catch_up.c (the log).
 *
 * Under overflow SPILL a subscription is FOLLOWING: producers ignore it, and
 * anything older than the tail is read through the log, which hands over to
 * the ring where it ends. Under overflow BLOCK it is TETHERED while in the
 * ring: producers never overwrite what it has not read. Joining the ring as
 * TETHERED is edge J1:
 *
 *   J1  the subscription takes the hold in the limit word (128-bit CAS), so
 *       the limit cannot move while it picks its start; it then release-
 *       stores its slot as TETHERED and lets go of the hold with a CAS that
 *       bumps the version. A producer computing a new limit either read the
 *       limit after that CAS (and so sees the slot), or its own CAS fails
 *       because the word changed.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "bus/internal.h"
#include "shm/futex.h"

#define JOIN_TIMEOUT_NS 2000000000ull
#define DEFAULT_SPIN_NS 50000u

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
 * Walk from the floor to the frame holding @want (< @tail.hi); the limit is
 * held, so the region is intact. A frame not yet marked ends the walk with
 * -EAGAIN; a @want older than the floor is AGENTBUS_E_SEQ_GONE (the log has
 * it).
 */
static int seek_seq(agentbus_sub *sub, uint64_t floor, union pair64 tail, uint64_t want)
{
	agentbus_stream *stream = sub->stream;
	uint64_t p = floor, seq = 0, count, len, expect = 0;

	/* An empty ring below the tail holds no record at all: so it is right
	 * after a reboot, when the ring is made anew at the end of the log
	 * (limit = tail + ring size). */
	if (floor == tail.lo)
		return AGENTBUS_E_SEQ_GONE;
	while (p < tail.lo) {
		len = frame_extent(stream, p, &seq, &count);
		if (len == 0)
			return -EAGAIN;
		if (len % FRAME_ALIGN || len > stream->ring_size / 2 || p + len > tail.lo ||
		    count == 0 || (expect && seq != expect))
			return set_error(AGENTBUS_E_CORRUPT, "stream '%s': bad frame at position %llu",
					 stream->name, (unsigned long long)p);
		if (p == floor && want < seq)
			return AGENTBUS_E_SEQ_GONE;
		if (want < seq + count)
			break;
		p += len;
		expect = seq + count;
	}
	sub->position = p;
	sub->next_seq = p < tail.lo ? seq : tail.hi;
	return 0;
}

static union pair64 read_tail(agentbus_stream *stream, int *err)
{
	union pair64 tail = load128(&stream->control->tail);

	*err = tail.lo % FRAME_ALIGN ? set_error(AGENTBUS_E_CORRUPT, "stream '%s': tail is corrupt",
						 stream->name)
				     : 0;
	return tail;
}

static void set_slot(agentbus_sub *sub, enum slot_state state)
{
	store_relaxed(&sub->slot->next_seq, sub->next_seq);
	store_relaxed(&sub->slot->position, sub->position);
	store_release(&sub->slot->state, state);
	sub->released_position = sub->position;
}

/*
 * J1: become TETHERED at @position/@seq, if the ring still holds it: returns
 * 0, or -EAGAIN when the ring has moved past it (read on from the log).
 */
int join_ring_at(agentbus_sub *sub, uint64_t position, uint64_t seq)
{
	agentbus_stream *stream = sub->stream;
	union pair64 held;
	int err = hold_limit(sub, &held);

	if (err)
		return err;
	if (held.lo >= stream->ring_size && position < held.lo - stream->ring_size) {
		err = -EAGAIN;
	} else {
		sub->position = position;
		sub->next_seq = seq;
		set_slot(sub, SLOT_TETHERED);
	}
	release_limit(sub, held);
	return err;
}

/* TETHERED at the seq wanted if the ring holds it (-EAGAIN while a
 * producer sits between reserving and marking the frame on the way). */
static int join_ring_seeking(agentbus_sub *sub, uint64_t want)
{
	agentbus_stream *stream = sub->stream;
	uint64_t floor;
	union pair64 held, tail;
	int err = hold_limit(sub, &held);

	if (err)
		return err;
	floor = held.lo > stream->ring_size ? held.lo - stream->ring_size : 0;
	tail = read_tail(stream, &err);
	if (!err && (floor > tail.lo || floor % FRAME_ALIGN))
		err = set_error(AGENTBUS_E_CORRUPT, "stream '%s': limit is corrupt", stream->name);
	if (!err && want >= tail.hi) {
		sub->position = tail.lo;
		sub->next_seq = tail.hi;
	} else if (!err) {
		err = seek_seq(sub, floor, tail, want);
	}
	if (!err)
		set_slot(sub, SLOT_TETHERED);
	release_limit(sub, held);
	return err;
}

static int start_at_tail(agentbus_sub *sub)
{
	union pair64 tail;
	int err;

	if (!sub->following)
		return join_ring_seeking(sub, UINT64_MAX);
	tail = read_tail(sub->stream, &err);
	if (err)
		return err;
	sub->position = tail.lo;
	sub->next_seq = tail.hi;
	set_slot(sub, SLOT_FOLLOWING);
	return 0;
}

/* A tethered subscription starts in the ring when it can, else in the log. */
static int start_in_ring(agentbus_sub *sub, uint64_t want)
{
	uint64_t deadline = monotonic_ns() + JOIN_TIMEOUT_NS;
	int err;

	for (;;) {
		err = join_ring_seeking(sub, want);
		if (err != -EAGAIN)
			return err;
		if (monotonic_ns() > deadline)
			return set_error(AGENTBUS_E_TIMEOUT, "stream '%s': a claim stays unmarked",
					 sub->stream->name);
		sched_yield();
	}
}

static int choose_start(agentbus_sub *sub, const struct agentbus_sub_config *cfg)
{
	int err;

	switch (cfg->start) {
	case AGENTBUS_START_NEW:
		return start_at_tail(sub);
	case AGENTBUS_START_SEQ:
		if (cfg->start_seq == 0)
			return set_error(AGENTBUS_E_INVALID, "subscribe: sequence numbers start at 1");
		sub->min_seq = cfg->start_seq;
		if (!sub->following) {
			err = start_in_ring(sub, cfg->start_seq);
			if (err != AGENTBUS_E_SEQ_GONE)
				return err;
		}
		return log_start(sub, AGENTBUS_START_SEQ, cfg->start_seq, 0);
	case AGENTBUS_START_TIME:
		sub->min_time_ns = cfg->start_time_ns;
		return log_start(sub, AGENTBUS_START_TIME, 0, cfg->start_time_ns);
	default:
		return log_start(sub, AGENTBUS_START_OLDEST, 0, 0);
	}
}

static int check_config(agentbus_stream *stream, const struct agentbus_sub_config *cfg)
{
	size_t len;

	if (!stream || !stream->bus)
		return set_error(AGENTBUS_E_INVALID, "subscribe: stream is NULL");
	if (cfg->start > AGENTBUS_START_TIME || cfg->wait > AGENTBUS_WAIT_SLEEP)
		return set_error(AGENTBUS_E_INVALID, "subscribe: unknown start or wait strategy");
	if (!cfg->filter)
		return 0;
	len = strnlen(cfg->filter, AGENTBUS_SUBJECT_MAX + 1);
	if (agentbus_pattern_check(cfg->filter, len) != 0)
		return set_error(AGENTBUS_E_INVALID, "subscribe: invalid subject filter '%.80s'",
				 cfg->filter);
	return 0;
}

static void sub_free(agentbus_sub *sub)
{
	log_stop(sub);
	/* A child of fork() frees its copy; the slot is its parent's. */
	if (sub->slot && !bus_inherited(sub->stream->bus)) {
		store_release(&sub->slot->state, SLOT_FREE);
		store_release(&sub->slot->owner, 0);
	}
	free(sub->arena);
	free(sub->hold_space);
	free(sub);
}

int agentbus_subscribe(agentbus_stream *stream, const struct agentbus_sub_config *config,
		       agentbus_sub **out)
{
	struct agentbus_sub_config defaults = { 0 };
	const struct agentbus_sub_config *cfg = config ? config : &defaults;
	agentbus_sub *sub;
	int err;

	err = check_config(stream, cfg);
	if (!err)
		err = bus_check_owner(stream->bus);
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
	sub->following = !stream->tethered;
	sub->wait = cfg->wait;
	sub->spin_ns = cfg->spin_ns ? cfg->spin_ns : DEFAULT_SPIN_NS;
	if (cfg->filter) {
		sub->filter_len = strlen(cfg->filter);
		memcpy(sub->filter, cfg->filter, sub->filter_len);
	}
	err = take_slot(sub);
	if (!err)
		err = choose_start(sub, cfg);
	if (err) {
		sub_free(sub);
		return err;
	}
	*out = sub;
	return 0;
}

void agentbus_sub_close(agentbus_sub *sub)
{
	if (sub)
		sub_free(sub);
}

void agentbus_sub_stats_get(const agentbus_sub *sub, struct agentbus_sub_stats *stats)
{
	uint64_t next;

	if (!sub || !stats)
		return;
	*stats = sub->stats;
	/* Records below min_seq are looked at but never delivered. */
	stats->next_seq = sub->next_seq > sub->min_seq ? sub->next_seq : sub->min_seq;
	stats->in_log = sub->in_log;
	next = load_relaxed(&sub->stream->control->tail.hi);
	stats->lag = next > stats->next_seq ? next - stats->next_seq : 0;
}
