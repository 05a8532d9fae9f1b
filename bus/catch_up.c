/*
 * catch_up.c - a subscription reading from the log: one that started before
 * the ring's oldest record, or (overflow SPILL) one the ring lapped. It reads
 * what the spill writer has written, in order, without missing a record, and
 * goes back to the ring where the log ends: everything past the written
 * position is still in the ring, since producers never overwrite what the
 * spill writer has not written (D1 in persist/spill.c), and the written
 * position is never behind the spill writer's tether.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "bus/internal.h"

static int open_reader(agentbus_sub *sub)
{
	agentbus_stream *stream = sub->stream;
	const char *data_dir = stream->bus->control->data_dir;
	char bus_dir[PATH_LEN], dir[PATH_LEN];
	int err;

	if (data_dir[0] != '/')
		return set_error(AGENTBUS_E_CORRUPT, "bus segment has no data directory");
	err = path_join(bus_dir, sizeof(bus_dir), data_dir, stream->bus->name);
	if (!err)
		err = path_join(dir, sizeof(dir), bus_dir, stream->name);
	if (!err)
		err = log_reader_open(&sub->log, dir,
				      load_acquire(&stream->control->written_position));
	if (err)
		return set_error(err, "stream '%s': cannot read its log: %s", stream->name,
				 agentbus_strerror(err));
	return 0;
}

/* Not counted by producers while reading the log; seen by retention. */
static void follow_from_log(agentbus_sub *sub)
{
	log_reader_where(sub->log, &sub->next_seq, &sub->position);
	store_relaxed(&sub->slot->next_seq, sub->next_seq);
	store_relaxed(&sub->slot->position, sub->position);
	store_release(&sub->slot->state, SLOT_FOLLOWING);
	sub->released_position = sub->position;
	sub->in_log = 1;
}

/*
 * Start reading the log at @seq (AGENTBUS_START_SEQ), @time_ns (TIME) or its
 * beginning (OLDEST). AGENTBUS_E_SEQ_GONE if @seq is older than the log: the
 * subscription then goes on from the oldest record there is.
 */
int log_start(agentbus_sub *sub, enum agentbus_start start, uint64_t seq, uint64_t time_ns)
{
	uint64_t oldest;
	int err;

	if (load_relaxed(&sub->stream->control->deleted))
		return set_error(AGENTBUS_E_DELETED, "stream '%s' was deleted", sub->stream->name);
	err = sub->log ? 0 : open_reader(sub);
	if (err)
		return err;
	log_reader_set_end(sub->log, load_acquire(&sub->stream->control->written_position));
	if (start == AGENTBUS_START_TIME)
		err = log_reader_seek_time(sub->log, time_ns);
	else
		err = log_reader_seek_seq(sub->log, start == AGENTBUS_START_SEQ ? seq : 1);
	if (err == AGENTBUS_E_SEQ_GONE && start == AGENTBUS_START_OLDEST)
		err = 0;
	follow_from_log(sub);
	if (err == AGENTBUS_E_SEQ_GONE) {
		oldest = sub->next_seq;
		return set_error(err, "stream '%s': seq %llu is older than the log (oldest is %llu)",
				 sub->stream->name, (unsigned long long)seq, (unsigned long long)oldest);
	}
	if (err)
		return set_error(err, "stream '%s': %s", sub->stream->name, log_reader_error(sub->log));
	return 0;
}

void log_stop(agentbus_sub *sub)
{
	log_reader_close(sub->log);
	sub->log = NULL;
	sub->in_log = 0;
}

/* At the end of the log: back to the ring, where it holds our position. */
static int rejoin_ring(agentbus_sub *sub)
{
	uint64_t seq, position;
	int err;

	log_reader_where(sub->log, &seq, &position);
	sub->position = position;
	sub->next_seq = seq;
	if (sub->following) {
		store_relaxed(&sub->slot->next_seq, seq);
		store_release(&sub->slot->position, position);
		sub->released_position = position;
		sub->in_log = 0;
		return STEP_MOVED;
	}
	err = join_ring_at(sub, position, seq);
	if (err == -EAGAIN)
		return STEP_NOTHING; /* the ring moved on meanwhile: more log to read */
	if (err)
		return err;
	sub->in_log = 0;
	return STEP_MOVED;
}

/* One step of reading the log (enum step, or an error). */
int poll_log(agentbus_sub *sub, struct agentbus_record *rec)
{
	agentbus_stream *stream = sub->stream;
	const struct frame_header *h;
	struct frame_header *copy;
	uint64_t position, len;
	int r;

	/* Records handed out by this call live in the arena: leave room. */
	if (sub->arena_used && sub->arena_used + stream->max_frame > sub->arena_cap)
		return STEP_NOTHING;
	log_reader_set_end(sub->log, load_acquire(&stream->control->written_position));
	r = log_reader_next(sub->log, &h, &position);
	if (r < 0 && load_relaxed(&stream->control->deleted)) {
		/* Its log is gone with it: read on what the ring still holds. */
		log_stop(sub);
		return STEP_MOVED;
	}
	if (r < 0)
		return set_error(r, "stream '%s': %s", stream->name, log_reader_error(sub->log));
	if (r == 0)
		return rejoin_ring(sub);
	if (h->tag == frame_tag(position, FRAME_GAP)) {
		sub->position = position + h->gap_frame_len;
		sub->next_seq = h->gap_first_seq + h->gap_seq_count;
		sub->stats.gaps += h->gap_seq_count;
		return STEP_SKIPPED;
	}
	len = h->frame_len; /* checked by the reader: tag, lengths, checksum */
	copy = (struct frame_header *)arena_take(sub, len);
	if (!copy)
		return set_error(-ENOMEM, "out of memory");
	memcpy(copy, h, len);
	sub->position = position;
	sub->next_seq = h->seq; /* past a corrupt record the reader skipped, if any */
	r = fill_record(sub, copy, len, rec);
	if (r)
		return r;
	sub->position = position + len;
	sub->next_seq++;
	sub->stats.from_log++;
	return STEP_RECORD;
}
