/*
 * unblock.c - the daemon's repair of streams after a client dies.
 *
 * A dead client may hold: subscription slots (they would hold producers back
 * forever), the join hold on the limit word, and frames it reserved but never
 * committed (readers would wait at them forever). For frames, the daemon looks
 * only where a subscription waits: the first uncommitted frame in its way.
 *
 *   - Marked (the seq it should have, with release, after owner and length;
 *     tag CLAIMED for a zero-copy claim, still stale for a copy in progress)
 *     by a client that is not alive: the frame knows its length, so it
 *     becomes a gap of one sequence number at once.
 *   - Not marked at all (the producer died in the few instructions between
 *     reserving and marking, or is about to mark it): its owner is found
 *     among the producers' intents (bus/intent.c). While a live producer
 *     names the frame, we wait; when only a dead one does, its stated
 *     reservation becomes a gap at once.
 *   - Only when a producer publishes without an intent slot (all taken) is
 *     the owner guessed, as before intents: the frame ends where the next
 *     marked frame starts, or at the tail, and is repaired when a client died
 *     around the time it got stuck, or after STALE_CLAIM_TIMEOUT_NS.
 *
 * Every change of a tag is a CAS from the exact value observed, so a producer
 * that is alive after all can never have its record half-overwritten.
 */
#include <string.h>

#include "bus/daemon.h"

/* A copy of the header at @position (see RACY_READER): the tag first, then
 * the seq, each with acquire (so the marks written before it are seen). */
static RACY_READER void snapshot(agentbus_stream *s, uint64_t position, struct frame_header *out)
{
	const struct frame_header *h = frame_at(s, position);

	out->tag = load_acquire(&h->tag);
	out->seq = load_acquire(&h->seq);
	out->owner = h->owner;
	out->frame_len = h->frame_len;
	out->gap_first_seq = h->gap_first_seq;
}

/* Gap fields of a frame whose producer is dead, or racing us to a CAS that
 * only one wins: the fields are read only if the gap's CAS wins. */
static RACY_READER void write_gap_fields(struct frame_header *h, uint64_t len, uint64_t seq,
					 uint64_t count)
{
	h->gap_frame_len = (uint32_t)len;
	h->gap_first_seq = seq;
	h->gap_seq_count = (uint32_t)count;
}

static void make_gap(struct agentbus_daemon *d, agentbus_stream *s, uint64_t position,
		     uint64_t observed_tag, uint64_t len, uint64_t seq, uint64_t count)
{
	struct frame_header *h = frame_at(s, position);

	write_gap_fields(h, len, seq, count);
	/* Release of the gap fields to readers (pairs with C1' in subscribe.c). */
	if (!cas64(&h->tag, &observed_tag, frame_tag(position, FRAME_GAP)))
		return; /* the producer was alive and got there first */
	fetch_add_relaxed(&s->control->gaps, count);
	wake_sleepers(s->control);
	daemon_log(d, "stream '%s': seq %llu-%llu (position %llu, %llu bytes) left by a dead producer is now a gap",
		   s->name, (unsigned long long)seq, (unsigned long long)(seq + count - 1),
		   (unsigned long long)position, (unsigned long long)len);
}

static int sane_length(agentbus_stream *s, uint64_t position, uint64_t len, uint64_t tail)
{
	return len >= FRAME_ALIGN && len % FRAME_ALIGN == 0 && len <= s->max_frame &&
	       position + len <= tail;
}

/* The sequence number a frame at @p is marked with, or 0 if it is not marked. */
static uint64_t marked_seq(agentbus_stream *s, uint64_t p)
{
	struct frame_header h;

	snapshot(s, p, &h);
	if (h.tag == frame_tag(p, FRAME_GAP))
		return h.gap_first_seq;
	return h.seq; /* records, claims, and copies in progress (marks, no tag) */
}

/*
 * Where the unmarked frame at @position (sequence @seq) ends: at the first
 * later frame marked with a sequence number in (seq, tail.hi), or at the tail.
 * *count is how many sequence numbers lie in between: more than one only if
 * several producers died unmarked back to back. Returns 0 if not found.
 */
static uint64_t find_frame_end(agentbus_stream *s, uint64_t position, uint64_t seq,
			       union pair64 tail, uint64_t *count)
{
	uint64_t p, found, end = position + s->ring_size / 2;

	if (end > tail.lo)
		end = tail.lo;
	for (p = position + FRAME_ALIGN; p < end; p += FRAME_ALIGN) {
		found = marked_seq(s, p);
		/* Each frame takes at least FRAME_ALIGN bytes: a cheap sanity check. */
		if (found > seq && found < tail.hi && p - position >= (found - seq) * FRAME_ALIGN) {
			*count = found - seq;
			return p;
		}
	}
	if (tail.hi > seq && tail.lo - position >= (tail.hi - seq) * FRAME_ALIGN) {
		*count = tail.hi - seq;
		return tail.lo;
	}
	return 0;
}

enum owner_verdict {
	OWNER_UNKNOWN, /* a producer without an intent slot may own it */
	OWNER_LIVE,    /* a live producer names it: it will mark it */
	OWNER_DEAD,    /* its owner is dead; *len and *count are its reservation */
	OWNER_NOBODY,  /* no intent names it, and every producer states intents */
};

/* A reservation (@len bytes, @count seqs) at @position that the tail allows. */
static int reservation_sane(agentbus_stream *s, uint64_t position, uint64_t seq, uint64_t len,
			    uint64_t count, union pair64 tail)
{
	return len >= FRAME_ALIGN && len % FRAME_ALIGN == 0 && len <= s->ring_size / 2 &&
	       count >= 1 && position + len <= tail.lo && seq + count <= tail.hi;
}

/* ... and that the stream bears out: the next frame, or the tail, follows it. */
static int reservation_confirmed(agentbus_stream *s, uint64_t position, uint64_t seq,
				 uint64_t len, uint64_t count, union pair64 tail)
{
	if (position + len == tail.lo)
		return seq + count == tail.hi;
	return marked_seq(s, position + len) == seq + count;
}

/*
 * Whose is the unmarked frame at @position (sequence @seq)? Its owner named
 * (position, seq) in its intent slot before its tail CAS (I1: the seq_cst
 * load of the tail in our caller, then the acquire of `position` here), and
 * cannot have moved on without marking the frame. So a live producer naming
 * it may be the owner; a single dead one naming it is the owner, unless some
 * producer has no intent slot, in which case the stream must bear it out.
 */
static enum owner_verdict intent_owner(struct agentbus_daemon *d, agentbus_stream *s,
				       uint64_t position, uint64_t seq, union pair64 tail,
				       uint64_t *len, uint64_t *count)
{
	uint32_t i, owner, named = 0, confirmed = 0;
	uint64_t named_len = 0, named_count = 0;
	int complete = load_relaxed(&s->control->intentless) == 0;

	for (i = 0; i < STREAM_MAX_INTENTS; i++) {
		struct intent_slot *in = &s->control->intents[i];
		uint64_t l, n;

		owner = load_acquire(&in->owner);
		if (!owner || load_acquire(&in->position) != position) /* I1 */
			continue;
		if (daemon_client_alive(d, owner))
			return OWNER_LIVE;
		l = load_relaxed(&in->len);
		n = load_relaxed(&in->count);
		if (load_relaxed(&in->seq) != seq || !reservation_sane(s, position, seq, l, n, tail))
			continue;
		named++;
		named_len = l;
		named_count = n;
		if (reservation_confirmed(s, position, seq, l, n, tail)) {
			confirmed++;
			*len = l;
			*count = n;
		}
	}
	if (confirmed == 1)
		return OWNER_DEAD;
	if (named == 1 && complete) {
		*len = named_len;
		*count = named_count;
		return OWNER_DEAD;
	}
	return named == 0 && complete ? OWNER_NOBODY : OWNER_UNKNOWN;
}

static void unmarked_frame(struct agentbus_daemon *d, struct watched_stream *w, uint32_t slot,
			   uint64_t position, uint64_t seq, uint64_t tag, union pair64 tail)
{
	struct stuck_frame *stuck = &w->stuck[slot];
	uint64_t now = monotonic_ns(), end = 0, count = 0;
	struct frame_header h;
	int timed_out;

	/* The seq's acquire pairs with its release in write_marks(). */
	snapshot(w->stream, position, &h);
	if (h.seq == seq) {
		if (!daemon_client_alive(d, h.owner) &&
		    sane_length(w->stream, position, h.frame_len, tail.lo))
			make_gap(d, w->stream, position, tag, h.frame_len, seq, 1);
		return; /* a live producer is copying its record */
	}
	switch (intent_owner(d, w->stream, position, seq, tail, &end, &count)) {
	case OWNER_LIVE:
		return;
	case OWNER_DEAD:
		make_gap(d, w->stream, position, tag, end, seq, count);
		return;
	case OWNER_NOBODY:
		/* Its owner may have marked it and moved on since our first look
		 * (the intent's acquire makes those marks visible now). */
		if (marked_seq(w->stream, position) == seq)
			return;
		end = find_frame_end(w->stream, position, seq, tail, &count);
		if (end && count == 1)
			make_gap(d, w->stream, position, tag, end - position, seq, count);
		return;
	case OWNER_UNKNOWN:
		break;
	}
	if (stuck->position != position || stuck->since_ns == 0) {
		stuck->position = position;
		stuck->since_ns = now;
		return;
	}
	/* Not marked: its producer died in the few instructions after reserving,
	 * or is about to mark it (a live one does so within nanoseconds, unless
	 * descheduled right there). Act if the frame was already stuck before a
	 * client died; if it got stuck just after a death, only once it has
	 * stayed so for UNMARKED_LONG_NS; whatever happened, after the timeout. */
	if (!(now - stuck->since_ns >= STALE_CLAIM_TIMEOUT_NS ||
	      d->last_death_ns >= stuck->since_ns + UNMARKED_GRACE_NS ||
	      (now - stuck->since_ns >= UNMARKED_LONG_NS &&
	       d->last_death_ns + STALE_CLAIM_TIMEOUT_NS >= stuck->since_ns)))
		return;
	timed_out = now - stuck->since_ns >= STALE_CLAIM_TIMEOUT_NS;
	end = find_frame_end(w->stream, position, seq, tail, &count);
	/* Several unmarked frames in a row might hide a live producer between
	 * two dead ones: only the timeout makes that too unlikely to wait for. */
	if (end && (count == 1 || timed_out))
		make_gap(d, w->stream, position, tag, end - position, seq, count);
}

/* Look at the frame a subscription (or the spill writer) waits at, and
 * repair it if its producer is dead. @waiter indexes the stuck memory. */
static void inspect_frame(struct agentbus_daemon *d, struct watched_stream *w, uint32_t slot,
			  uint64_t position, uint64_t seq)
{
	agentbus_stream *s = w->stream;
	union pair64 tail = load128(&s->control->tail);
	struct frame_header h;
	uint64_t tag;
	uint64_t limit = load_acquire(&s->control->limit.lo);

	/* Only the intact region: below it, a subscription reading the log
	 * has a position whose ring bytes belong to a later lap. */
	if (position >= tail.lo || position % FRAME_ALIGN ||
	    (limit > s->ring_size && position < limit - s->ring_size))
		return;
	snapshot(s, position, &h); /* the tag's acquire: sees the marks written before CLAIMED */
	tag = h.tag;
	if (tag == frame_tag(position, FRAME_COMMITTED) || tag == frame_tag(position, FRAME_GAP))
		return;
	if (tag != frame_tag(position, FRAME_CLAIMED)) {
		unmarked_frame(d, w, slot, position, seq, tag, tail);
		return;
	}
	if (daemon_client_alive(d, h.owner))
		return;
	if (sane_length(s, position, h.frame_len, tail.lo) && h.seq == seq)
		make_gap(d, s, position, tag, h.frame_len, seq, 1);
}

/* A slot of a dead client holds producers back: free it. */
static void free_slot(struct agentbus_daemon *d, agentbus_stream *s, uint32_t i)
{
	struct sub_slot *slot = &s->control->slots[i];
	uint32_t owner = load_acquire(&slot->owner);

	store_release(&slot->state, SLOT_FREE);
	if (__atomic_compare_exchange_n(&slot->owner, &owner, 0, 0, __ATOMIC_SEQ_CST,
					__ATOMIC_SEQ_CST))
		daemon_log(d, "stream '%s': freed subscription slot %u of dead client %u", s->name, i,
			   owner);
}

/* The join hold of a dead subscriber would freeze the limit forever. */
static void release_dead_hold(struct agentbus_daemon *d, agentbus_stream *s)
{
	union pair64 limit = load128(&s->control->limit), next;
	uint64_t holder = limit.hi & LIMIT_HOLDER_MASK;

	if (holder == 0)
		return;
	if (holder <= STREAM_MAX_SUBSCRIPTIONS &&
	    daemon_client_alive(d, load_acquire(&s->control->slots[holder - 1].owner)))
		return;
	next.lo = limit.lo;
	next.hi = ((limit.hi >> LIMIT_HOLDER_BITS) + 1) << LIMIT_HOLDER_BITS;
	if (cas128(&s->control->limit, limit, next).whole == limit.whole)
		daemon_log(d, "stream '%s': released the join hold of a dead subscriber", s->name);
}

/*
 * Free the intent slots of dead clients once they can name no frame still in
 * question: behind the spill writer's frontier (everything there is final)
 * or at or past the tail (never reserved). Liveness is read first: a dead
 * client's tail CAS, if any, is then in the tail we read.
 */
static void free_dead_intents(struct agentbus_daemon *d, struct watched_stream *w,
			      uint64_t frontier)
{
	struct stream_control *c = w->stream->control;
	uint32_t i, owner;

	for (i = 0; i < STREAM_MAX_INTENTS; i++) {
		struct intent_slot *in = &c->intents[i];
		uint64_t position, tail;

		owner = load_acquire(&in->owner);
		if (!owner || daemon_client_alive(d, owner))
			continue;
		tail = load128(&c->tail).lo;
		position = load_acquire(&in->position);
		/* A CAS from the dead owner: a producer claiming the slot meanwhile
		 * (claim_free() in bus/intent.c) makes it fail, never the reverse. */
		if (position < frontier || position >= tail)
			__atomic_compare_exchange_n(&in->owner, &owner, 0, 0, __ATOMIC_RELEASE,
						    __ATOMIC_RELAXED);
	}
}

void unblock_stream(struct agentbus_daemon *d, struct watched_stream *w)
{
	struct stream_control *c = w->stream->control;
	uint64_t position, seq;
	uint32_t i, owner;

	release_dead_hold(d, w->stream);
	for (i = 0; i < STREAM_MAX_SUBSCRIPTIONS; i++) {
		struct sub_slot *slot = &c->slots[i];

		owner = load_acquire(&slot->owner);
		if (owner == 0)
			continue;
		if (!daemon_client_alive(d, owner)) {
			free_slot(d, w->stream, i);
			continue;
		}
		if (load_acquire(&slot->state) == SLOT_FREE)
			continue;
		/* position and seq are stored apart: read them until they agree. */
		position = load_acquire(&slot->position);
		seq = load_relaxed(&slot->next_seq);
		if (load_acquire(&slot->position) != position)
			continue;
		inspect_frame(d, w, i, position, seq);
	}
	/* The spill writer waits at the first frame that is not final: with
	 * no subscription there, a dead producer's hole would still stop it,
	 * and then, once the ring is full, every producer. */
	if (w->spill) {
		spill_stream_frontier(d->spill, w->spill, &position, &seq);
		inspect_frame(d, w, STREAM_MAX_SUBSCRIPTIONS, position, seq);
		free_dead_intents(d, w, position);
	}
}
