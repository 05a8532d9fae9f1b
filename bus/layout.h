/*
 * layout.h - the layout of a stream segment in shared memory (format version
 * 1; docs/shm-layout.md describes it for readers of the format).
 *
 * A stream segment is a control area (STREAM_CONTROL_SIZE bytes) followed by
 * the ring, which is mapped twice back to back (shm/segment.h).
 *
 * Positions are byte offsets into an endless stream; the ring holds the bytes
 * of position p at ring[p & (ring_size - 1)]. Every frame (persist/frame.h)
 * starts at a FRAME_ALIGN-aligned position with a header whose `tag` word is
 * the frame's state: (position | FRAME_*). A tag that does not carry the
 * frame's own position is left over from an earlier lap of the ring and means
 * "nothing here yet", so the ring never needs to be zeroed.
 *
 * Life of a frame (P = its position, S = its sequence number):
 *   1. A producer reserves [P, P+len) and S with one 128-bit CAS on `tail`.
 *   2. It writes owner and frame_len, then seq (release): the frame's marks.
 *      A zero-copy claim then CASes tag: stale -> P|CLAIMED, since it may be
 *      held for long; a copy publish skips that step.
 *   3. It writes the rest and the payload, then CASes the tag to
 *      P|COMMITTED (release): the record is visible.
 *   An abort, or the daemon on finding the owner dead, CASes the tag to
 *   P|GAP instead, after filling gap_frame_len/gap_first_seq/gap_seq_count.
 *   Because every change of a tag is a CAS, a producer and the daemon can
 *   never both win: a revoked producer learns it from its failed CAS.
 *
 * Space: a producer may only reserve below `limit.position`, which is
 * (the lowest position a subscription still needs) + ring_size. So the
 * region [limit.position - ring_size, tail) is intact; its start, the floor,
 * is always a frame boundary.
 */
#ifndef AGENTBUS_BUS_LAYOUT_H
#define AGENTBUS_BUS_LAYOUT_H

#include <stdint.h>

#include "persist/frame.h"
#include "shm/atomics.h"

#define STREAM_MAGIC 0x314d525453424761ull /* "aGBSTRM1" */
#define STREAM_LAYOUT_VERSION 1u
#define STREAM_CONTROL_SIZE (16u << 10)
#define STREAM_MAX_SUBSCRIPTIONS 128u
#define STREAM_MAX_INTENTS 64u

enum slot_state {
	SLOT_FREE = 0,
	SLOT_TETHERED = 1,  /* producers never overwrite at or past position (overflow BLOCK) */
	SLOT_FOLLOWING = 2, /* producers ignore it; it reads from the log when lapped */
};

/* One subscription's place in the stream, on a cache line of its own. */
struct sub_slot {
	uint64_t position;  /* first byte the subscription still needs (a frame boundary) */
	uint64_t next_seq;  /* sequence number of the frame at position */
	uint32_t owner;     /* client id holding the slot, 0 = free */
	uint32_t state;     /* enum slot_state */
	uint8_t pad[40];
};
_Static_assert(sizeof(struct sub_slot) == 64, "slot is one cache line");

/*
 * What one producer thread is about to reserve, on a cache line of its own.
 * Written before each tail CAS, position last with release (edge I1), so
 * that the daemon can tell whose a reserved but not yet marked frame is,
 * and whether that producer lives, instead of guessing (bus/unblock.c).
 */
struct intent_slot {
	uint64_t position;  /* the tail position the CAS expects: the frame's if it wins */
	uint64_t seq;       /* ... and its sequence number */
	uint64_t len;       /* bytes it reserves */
	uint64_t count;     /* sequence numbers it reserves */
	uint32_t owner;     /* client id, 0 = free */
	uint32_t thread;    /* the owning thread (gettid), so it finds its slot again */
	uint8_t pad[24];
};
_Static_assert(sizeof(struct intent_slot) == 64, "intent is one cache line");

/* The limit word: producers reserve below `position`. `holder` (1 + slot
 * index) is set while a subscription is joining: it freezes the limit so the
 * region the joiner is about to claim cannot be overwritten. `version` grows
 * at every release of the hold, so a producer's CAS can never succeed on a
 * value it read before a join came and went (ABA). */
#define LIMIT_HOLDER_BITS 16
#define LIMIT_HOLDER_MASK ((1ull << LIMIT_HOLDER_BITS) - 1)

struct stream_control {
	/* Identity: written once before the segment is renamed into place. */
	uint64_t magic;           /* STREAM_MAGIC */
	uint32_t version;         /* STREAM_LAYOUT_VERSION */
	uint32_t control_size;    /* STREAM_CONTROL_SIZE */
	uint64_t ring_size;       /* bytes, power of two */
	uint64_t max_record;      /* bytes of subject+key+headers+payload */
	uint64_t created_ns;      /* CLOCK_REALTIME */
	char name[64];            /* NUL-terminated */
	uint32_t deleted;         /* 1 once the stream was removed */
	uint8_t pad0[20];

	/* Reservation: lo = next free position, hi = next sequence number. */
	union pair64 tail __attribute__((aligned(64)));
	uint8_t pad1[48];

	/* lo = limit position, hi = version << 16 | holder. */
	union pair64 limit __attribute__((aligned(64)));
	uint8_t pad2[48];

	/* Wake-ups: readers that are asleep count themselves in `sleepers` and
	 * wait on `wake_signal`; producers bump and wake it only if sleepers > 0. */
	uint32_t sleepers __attribute__((aligned(64)));
	uint32_t wake_signal;
	uint8_t pad3[56];

	uint64_t gaps __attribute__((aligned(64))); /* sequence numbers turned into gaps */
	uint32_t intentless;      /* producer threads that found no free intent slot */
	uint8_t pad4[52];

	/* Durability, written by the daemon's spill writer (edge D1 in
	 * persist/spill.c): the log holds every frame below spill_position. */
	uint64_t spill_position __attribute__((aligned(64))); /* producers never overwrite at or past it + ring_size */
	uint64_t written_seq;      /* every record below this seq is written to the log */
	uint64_t synced_seq;       /* every record below this seq is synced */
	uint64_t error_seq;        /* spill_error holds back records from this seq on */
	int32_t spill_error;       /* 0, or what holds the log back first: -errno of a
				    * failed write or fsync, or AGENTBUS_E_CORRUPT */
	uint32_t durability_signal; /* futex word: bumped when any of the above change */
	uint32_t durability_waiters; /* publishers asleep on durability_signal */
	uint64_t written_position; /* the log holds every frame below (stored before written_seq) */
	uint8_t pad5[12];

	/* What the log says (daemon-written, for stream info). */
	uint64_t log_first_seq __attribute__((aligned(64)));
	uint64_t log_bytes;
	uint64_t lost_first_seq;   /* a loss found at recovery (0 = none) */
	uint64_t lost_last_seq;
	uint64_t corrupt_records;
	uint8_t pad6[24];

	/* Settings, fixed at creation (docs: agentbus_stream_config). */
	uint32_t durability __attribute__((aligned(64))); /* enum agentbus_durability */
	uint32_t fsync;            /* enum agentbus_fsync */
	uint32_t fsync_interval_ms;
	uint32_t overflow;         /* enum agentbus_overflow */
	uint64_t segment_size;
	uint64_t max_age_ns;
	uint64_t max_bytes;
	uint64_t max_records;
	uint32_t retention_force;
	uint8_t pad7[12];

	struct sub_slot slots[STREAM_MAX_SUBSCRIPTIONS] __attribute__((aligned(64)));
	struct intent_slot intents[STREAM_MAX_INTENTS] __attribute__((aligned(64)));
};
_Static_assert(sizeof(struct stream_control) <= STREAM_CONTROL_SIZE, "control fits");

/*
 * The bus segment (<bus dir>/bus): what every client of a bus shares that is
 * not a stream. Created by the daemon, read-mostly.
 */
#define BUS_MAGIC 0x31535542424741ull /* "AGBBUS1" */
#define BUS_CONTROL_SIZE (8u << 10)

struct bus_control {
	uint64_t magic;            /* BUS_MAGIC, written last */
	uint32_t version;          /* STREAM_LAYOUT_VERSION */
	uint32_t spill_wakeup;     /* futex word: bumped to wake the spill writer */
	uint32_t spill_asleep;     /* 1 while the spill writer sleeps on spill_wakeup */
	uint8_t pad[44];
	char data_dir[4096];       /* where the bus's logs live: <data_dir>/<bus>/<stream>/ */
};
_Static_assert(sizeof(struct bus_control) <= BUS_CONTROL_SIZE, "bus control fits");

#endif
