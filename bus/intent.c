/*
 * intent.c - producers' intent slots: what each producer thread is about to
 * reserve, so the daemon never has to guess whose an unmarked frame is.
 *
 * A producer dies between its tail CAS and its marks only in a window of a
 * few instructions, but a live one can be descheduled right there. Without
 * intents the daemon can only guess, and a wrong guess revokes a live
 * producer's frame, which it may later write into after the ring has moved
 * on. With intents, each thread states (position, seq, len, count) before
 * every tail CAS in a slot of its own (layout.h); the daemon waits while a
 * live thread names the frame and repairs it at once when only a dead one
 * does (bus/unblock.c).
 *
 * A thread claims a slot the first time it publishes through a stream
 * handle and keeps it until the handle is closed (or its process dies, when
 * the daemon frees it). With all slots taken, it publishes without one and
 * says so in `intentless`, and the daemon falls back on its old rule.
 *
 * A child of fork() inherits its parent's handles and the forking thread's
 * cache of slots. It forgets the cache (intent_forget_after_fork(), from the
 * fork handler in bus/client.c), so that each of its publishes through an
 * inherited handle comes here, finds the handle inherited and fails: it
 * neither writes into its parent thread's slot nor publishes in its parent's
 * name. Publishing never asks getpid() once a thread's slot is cached.
 *
 * Edge I1: the release store of `position` after seq/len/count, followed by
 * the seq_cst tail CAS, pairs with the daemon's seq_cst read of the tail and
 * acquire load of `position`: a daemon that sees the reservation sees the
 * intent that preceded it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <string.h>
#include <unistd.h>

#include "bus/internal.h"

#define INTENT_CACHE 4       /* stream handles a thread remembers its slot on */
#define NO_SLOT UINT32_MAX

struct intent_cache_entry {
	uint64_t handle_id;  /* agentbus_stream.handle_id; 0 = empty */
	uint32_t index;      /* slot, or NO_SLOT if none was free */
};

static __thread struct intent_cache_entry cache[INTENT_CACHE];
static __thread unsigned cache_next;
static __thread uint32_t my_thread;

void intent_forget_after_fork(void)
{
	memset(cache, 0, sizeof(cache));
	cache_next = 0;
	my_thread = 0;
}

static uint32_t thread_id(void)
{
	if (!my_thread)
		my_thread = (uint32_t)gettid();
	return my_thread;
}

static uint32_t client_id(const agentbus_stream *stream)
{
	return stream->bus ? stream->bus->client_id : 0;
}

/* A slot this handle already holds for this thread (the cache forgot it). */
static uint32_t find_held(agentbus_stream *stream)
{
	uint64_t mask = load_acquire(&stream->intent_mask);
	uint32_t i;

	for (i = 0; i < STREAM_MAX_INTENTS; i++) {
		struct intent_slot *in = &stream->control->intents[i];

		if ((mask >> i & 1) && load_relaxed(&in->thread) == thread_id() &&
		    load_relaxed(&in->owner) == client_id(stream))
			return i;
	}
	return NO_SLOT;
}

static uint32_t claim_free(agentbus_stream *stream)
{
	uint32_t i, free_owner;

	for (i = 0; i < STREAM_MAX_INTENTS; i++) {
		struct intent_slot *in = &stream->control->intents[i];

		free_owner = 0;
		if (load_relaxed(&in->owner) != 0 ||
		    !__atomic_compare_exchange_n(&in->owner, &free_owner, client_id(stream), 0,
						 __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
			continue;
		store_relaxed(&in->thread, thread_id());
		store_release(&in->position, UINT64_MAX); /* names no frame yet */
		/* Release: pairs with the acquire of the mask in find_held() and
		 * release_intents() of other threads of this process. */
		__atomic_fetch_or(&stream->intent_mask, 1ull << i, __ATOMIC_RELEASE);
		return i;
	}
	fetch_add_relaxed(&stream->control->intentless, 1);
	return NO_SLOT;
}

int intent_for_thread(agentbus_stream *stream, struct intent_slot **intent)
{
	struct intent_cache_entry *e;
	uint32_t index;
	unsigned i;
	int err;

	*intent = NULL;
	if (!client_id(stream))
		return 0; /* the daemon's own handles do not publish */
	for (i = 0; i < INTENT_CACHE; i++)
		if (cache[i].handle_id == stream->handle_id) {
			if (cache[i].index != NO_SLOT)
				*intent = &stream->control->intents[cache[i].index];
			return 0;
		}
	/* A child's publish would go out under its parent's client id, which
	 * lives on after the child dies: a frame it left unmarked would hold
	 * the stream up for good. Nothing is cached: it is asked every time. */
	err = bus_check_owner(stream->bus);
	if (err)
		return err;
	index = find_held(stream);
	if (index == NO_SLOT)
		index = claim_free(stream);
	e = &cache[cache_next++ % INTENT_CACHE];
	*e = (struct intent_cache_entry){ stream->handle_id, index };
	if (index != NO_SLOT)
		*intent = &stream->control->intents[index];
	return 0;
}

void intent_state(struct intent_slot *in, uint64_t position, uint64_t seq, uint64_t len,
		  uint64_t count)
{
	store_relaxed(&in->seq, seq);
	store_relaxed(&in->len, len);
	store_relaxed(&in->count, count);
	store_release(&in->position, position); /* I1 */
}

void release_intents(agentbus_stream *stream)
{
	uint64_t mask = load_acquire(&stream->intent_mask);
	uint32_t i, owner;

	for (i = 0; i < STREAM_MAX_INTENTS; i++) {
		struct intent_slot *in = &stream->control->intents[i];

		owner = client_id(stream);
		/* Release: our last intent stores are done before the slot is free;
		 * pairs with the CAS that claims it in claim_free(). */
		if (mask >> i & 1)
			__atomic_compare_exchange_n(&in->owner, &owner, 0, 0, __ATOMIC_RELEASE,
						    __ATOMIC_RELAXED);
	}
}
