/*
 * spill.h - the spill writer: one thread with one io_uring that writes every
 * committed frame of every stream to that stream's log, in order, straight
 * from the ring (no intermediate copy), and reports how far it got through
 * words in shared memory that publishers wait on.
 *
 * It knows streams only through struct spill_source: where the frames are in
 * memory and which words to update. Nothing here knows about subscriptions,
 * clients or sockets.
 */
#ifndef AGENTBUS_PERSIST_SPILL_H
#define AGENTBUS_PERSIST_SPILL_H

#include <stdint.h>

#include "persist/log.h"

enum spill_fsync {
	SPILL_FSYNC_BATCH = 0,    /* fdatasync after every batch of completed writes */
	SPILL_FSYNC_INTERVAL = 1, /* every fsync_interval_ms */
	SPILL_FSYNC_NEVER = 2,
};

/* A stream as the spill writer sees it. The pointers stay valid until
 * spill_remove_stream() returns. */
struct spill_source {
	char name[64];
	char log_dir[LOG_PATH_LEN];
	const unsigned char *ring;    /* ring_size bytes mapped twice, back to back */
	uint64_t ring_size;
	uint64_t max_record;
	enum spill_fsync fsync;
	uint32_t fsync_interval_ms;
	uint64_t segment_size;
	/* In shared memory; see struct stream_control in bus/layout.h. */
	uint64_t *spill_position;     /* D1: release-stored after writes complete */
	uint64_t *written_position;   /* D2: where the log ends (readers stop there) */
	uint64_t *written_seq;
	uint64_t *synced_seq;
	uint64_t *error_seq;
	int32_t *spill_error;
	uint32_t *durability_signal;
	uint32_t *durability_waiters;
};

struct spill_writer;
struct spill_stream;

/*
 * Start the spill thread. It sleeps on the futex @wakeup (publishers waiting
 * for durability bump and wake it) and sets *@asleep while it does;
 * @log(arg, message) receives what an operator should see.
 */
int spill_writer_start(struct spill_writer **writer, uint32_t *wakeup, uint32_t *asleep,
		       void (*log)(void *arg, const char *message), void *arg);

/* Finish the writes in flight, stop the thread, close every log. */
void spill_writer_stop(struct spill_writer *writer);

/*
 * Start spilling @source, whose log was recovered as @recovery (log_recover()),
 * from @position / @seq on: the log's end, or where the log must begin when it
 * is empty. Everything already in the log is made durable (fdatasync) first,
 * so written and synced both start at @seq.
 */
int spill_add_stream(struct spill_writer *writer, const struct spill_source *source,
		     const struct log_recovery *recovery, uint64_t position, uint64_t seq,
		     struct spill_stream **stream);

/* What removing a stream means for its records not yet in the log. */
enum spill_remove {
	SPILL_REMOVE_DETACH = 0, /* the stream lives on (the daemon stops) */
	SPILL_REMOVE_DELETE = 1, /* the stream and its log are being deleted */
};

/* How long a detached stream's failed writes are retried. */
#define SPILL_GIVE_UP_MS 3000

/*
 * Stop spilling a stream: waits for its I/O in flight, closes its log.
 * Writes that failed (a full disk) are retried for SPILL_GIVE_UP_MS if @how
 * is DETACH (or until the deadline of spill_writer_stopping(), if earlier),
 * not at all if DELETE; then they are given up, told to the log callback,
 * and the log is cut where the records written in order end. The records
 * after it are still in the ring: a later daemon writes them.
 */
void spill_remove_stream(struct spill_writer *writer, struct spill_stream *stream,
			 enum spill_remove how);

/*
 * The owner is about to remove every stream (it stops): from now on, a
 * DETACH retries failed writes until SPILL_GIVE_UP_MS after this call at
 * most, so that removing the streams one after another on a full disk takes
 * that long in all, not that long for each. Calling it again changes nothing.
 */
void spill_writer_stopping(struct spill_writer *writer);

/* The next frame the spill writer waits for (its position and seq): the
 * daemon looks there for holes left by dead producers. */
void spill_stream_frontier(struct spill_writer *writer, struct spill_stream *stream,
			   uint64_t *position, uint64_t *seq);

/* Test hook: when set, called with each completed write's or fsync's result;
 * what it returns replaces the result (e.g. -ENOSPC), to inject faults. */
extern int (*spill_fault_hook)(int is_fsync, int result);

#endif
