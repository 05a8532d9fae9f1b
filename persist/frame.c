/* frame.c - checksums and validity of frames (the one record format). */
#define XXH_INLINE_ALL
#include <xxhash.h>

/* From libxxhash (xxh_x86dispatch.h, which cannot be included beside the
 * inlined functions): picks the widest vector unit at run time. */
extern XXH64_hash_t XXH3_64bits_withSeed_dispatch(const void *input, size_t len,
						  XXH64_hash_t seed);

#include "persist/frame.h"

/* Below this, the inlined SSE2 code beats the dispatcher's call overhead;
 * above it, the dispatcher's wider vectors win (~4x at 64 KiB here). */
#define DISPATCH_FROM 2048u

uint32_t frame_checksum(const struct frame_header *h, uint64_t position, uint64_t body_len)
{
	const unsigned char *from = (const unsigned char *)h + FRAME_CHECKSUMMED_FROM;
	size_t len = sizeof(*h) - FRAME_CHECKSUMMED_FROM + body_len;

	if (len < DISPATCH_FROM)
		return (uint32_t)XXH3_64bits_withSeed(from, len, position);
	return (uint32_t)XXH3_64bits_withSeed_dispatch(from, len, position);
}

int frame_record_valid(const struct frame_header *h, uint64_t position, uint64_t seq,
		       uint64_t max_frame)
{
	uint64_t len = h->frame_len;

	if (h->tag != frame_tag(position, FRAME_COMMITTED) || h->seq != seq)
		return 0;
	if (len < FRAME_ALIGN || len > max_frame || h->subject_len == 0 ||
	    h->subject_len > 255 || align_frame(sizeof(*h) + frame_body_len(h)) != len)
		return 0;
	return frame_checksum(h, position, frame_body_len(h)) == h->checksum;
}
