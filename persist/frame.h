/*
 * frame.h - the record format, shared by the ring in shared memory and the
 * log on disk (the log is a byte-for-byte copy of the stream's frames; see
 * docs/log-format.md and docs/shm-layout.md).
 *
 * A frame starts at a FRAME_ALIGN-aligned position with a struct
 * frame_header whose `tag` is (position | FRAME_*). The part of the header
 * from `seq` on and the body are covered by the record's checksum, seeded
 * with the position, so a record moved, renumbered, torn or bit-flipped
 * fails it.
 */
#ifndef AGENTBUS_PERSIST_FRAME_H
#define AGENTBUS_PERSIST_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define FRAME_ALIGN 64u
#define HEADER_ENCODED_PREFIX 6u /* u16 name_len, u32 value_len before each header */

enum frame_state {
	FRAME_CLAIMED = 1,   /* reserved, being written by `owner` (ring only) */
	FRAME_COMMITTED = 2, /* a record */
	FRAME_GAP = 3,       /* sequence numbers that hold no record; skip */
	FRAME_STATE_MASK = 3,
};

struct frame_header {
	uint64_t tag;           /* position | enum frame_state: the commit word */
	uint32_t owner;         /* client id of the producer (a mark) */
	uint32_t checksum;      /* records: low 32 bits of XXH3-64(seed = position) of [seq, end of body) */
	uint64_t gap_first_seq; /* gaps: first sequence number skipped */
	uint32_t gap_frame_len; /* gaps: bytes to skip */
	uint32_t gap_seq_count; /* gaps: how many sequence numbers are skipped */
	/* Checksummed from here to the end of the body. */
	uint64_t seq;           /* sequence number (a mark, written last of the marks, with release) */
	uint64_t time_ns;       /* CLOCK_REALTIME when published */
	uint32_t frame_len;     /* bytes of the frame, header included, FRAME_ALIGN multiple (a mark) */
	uint32_t payload_len;   /* bytes */
	uint32_t headers_len;   /* bytes of the encoded headers */
	uint16_t key_len;       /* bytes, 0 = no key */
	uint16_t subject_len;   /* bytes, 1..255 */
	/* then subject, key, headers, payload */
};
_Static_assert(sizeof(struct frame_header) == 64, "frame header is one cache line");
#define FRAME_CHECKSUMMED_FROM 32u /* offsetof(struct frame_header, seq) */

static inline uint64_t frame_tag(uint64_t position, enum frame_state state)
{
	return position | (uint64_t)state;
}

static inline uint64_t align_frame(uint64_t len)
{
	return (len + FRAME_ALIGN - 1) & ~(uint64_t)(FRAME_ALIGN - 1);
}

/* Largest frame a stream with this max_record can hold. */
static inline uint64_t max_frame_len(uint64_t max_record)
{
	return align_frame(sizeof(struct frame_header) + max_record);
}

/* Bytes of subject, key, headers and payload. */
static inline uint64_t frame_body_len(const struct frame_header *h)
{
	return (uint64_t)h->subject_len + h->key_len + h->headers_len + h->payload_len;
}

/* The checksum a record at @position with @body_len bytes of body must carry.
 * The length is the caller's: a header in shared memory may be changed under
 * it, so it is never re-read from there. */
uint32_t frame_checksum(const struct frame_header *h, uint64_t position, uint64_t body_len);

/*
 * Is @h, at @position, the committed record with sequence number @seq, whole
 * and intact? Checks tag, seq, every length against @max_frame and the
 * checksum. Returns 1 or 0.
 */
int frame_record_valid(const struct frame_header *h, uint64_t position, uint64_t seq,
		       uint64_t max_frame);

#endif
