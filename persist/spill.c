/*
 * spill.c - the spill writer (see spill.h).
 *
 * Per stream it keeps two frontiers: `scan` (frames handed to io_uring) and
 * `done` (frames whose writes have all completed, in order). Writes go
 * straight from the ring: the ring is mapped twice back to back, so a run of
 * frames is contiguous memory. A run never crosses a segment boundary and is
 * at most MAX_RUN bytes; up to MAX_INFLIGHT runs per stream are in flight.
 *
 * An fdatasync is issued only for writes that have completed (an io_uring
 * fsync is not ordered after writes still in flight), and covers all of them:
 * group commit. When it fails, the kernel may have dropped the dirty pages,
 * so everything since the last good fdatasync is written again from the ring
 * before the next try; this is why, unless fsync is NEVER, producers are held
 * back by the synced position, not the written one (with a ring of tens of
 * MiB, one fdatasync per ring is no limit on throughput).
 *
 * Index entries are written only for frames an fdatasync covered (with
 * fsync NEVER: once written). Writeback may put the .idx and later log pages
 * on disk before earlier log pages; recovery trusts the newest index entry
 * whose frame is valid and never scans before it, so an entry past a hole
 * would hide the hole. The frames are still in the ring when their
 * fdatasync completes: the tether is the synced position.
 *
 * The error word (*spill_error, *error_seq) says what holds the stream back
 * first. An I/O error (a failed write or fdatasync, retried every RETRY_NS)
 * sits where the frames written (or synced) in order end, at or before a
 * corrupt frame the scan is stuck at, so it is shown while it lasts: a
 * publisher waiting for a record before the corrupt frame must fail too
 * (agentbus_commit() waits with no time limit). Once it clears, the corrupt
 * frame is shown, as long as the scan is stuck there: it stops the stream
 * until someone fixes it. Every I/O error is told to the operator's log.
 *
 * Removing a stream waits for its I/O in flight, but not forever for a
 * write that keeps failing (a full disk): see spill_remove_stream() and
 * spill_writer_stopping().
 *
 * Synchronising edges:
 *   D0  acquire load of a frame's tag: pairs with the producer's commit CAS
 *       (C1 in bus/publish.c); the frame's bytes are complete.
 *   D1  release store of *spill_position after the write (and, unless fsync
 *       is NEVER, the fdatasync) completed: pairs with the acquire load in
 *       limit_refresh() (bus/publish.c): only then may producers overwrite.
 *   D2  release stores of *written_seq / *synced_seq, then a bump of
 *       *durability_signal (seq_cst) and a wake if *durability_waiters:
 *       pairs with the waiter's seq_cst increment of durability_waiters then
 *       re-check (bus/durable.c), so no wake-up is lost.
 *   D3  release store of *error_seq, then of *spill_error (publish_error(),
 *       after the positions reached): pairs with D3' in bus/durable.c, the
 *       acquire load of *spill_error, then *error_seq and the position. A
 *       code is never seen with a seq older than its own, nor with positions
 *       older than when it was published. *error_seq is stored only with a
 *       code, never by a clear, so an older code seen with a newer seq still
 *       fails only records that something held back.
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agentbus.h"
#include "persist/spill.h"
#include "shm/atomics.h"
#include "shm/futex.h"

#define QUEUE_DEPTH 256
#define MAX_INFLIGHT 8             /* writes in flight per stream */
#define MAX_RUN (1u << 20)         /* bytes per write */
#define BUSY_WAIT_NS 200000ll      /* wait for completions at most this long */
#define IDLE_WAIT_NS 1000000ll     /* memory-level records reach the log within ~1 ms */
#define RETRY_NS 100000000ull      /* after an I/O error, try again this much later */
#define GIVE_UP_NS (SPILL_GIVE_UP_MS * 1000000ull)
#define FSYNC_BIT 0x10u
#define SLOT_MASK 0x0fu

int (*spill_fault_hook)(int is_fsync, int result);

struct pending_write {
	uint64_t position;        /* first byte of the run */
	uint64_t len;             /* bytes of the run */
	uint64_t done_len;        /* bytes written so far (short writes continue) */
	uint64_t end_seq;         /* sequence number after the run */
	int completed;
	int failed;               /* waiting to be submitted again */
};

struct spill_stream {
	struct spill_source src;
	struct spill_stream *next;
	uint64_t ring_mask;
	uint64_t max_frame;
	uint64_t scan_position, scan_seq;   /* handed to io_uring up to here */
	uint64_t done_position, done_seq;   /* written, in order, up to here */
	uint64_t synced_position;           /* covered by a completed fdatasync */
	struct pending_write pending[MAX_INFLIGHT]; /* a queue in submission order */
	unsigned head, count;
	int log_fd, index_fd;
	uint64_t segment_base;
	uint64_t index_entries;             /* entries in the .idx file */
	uint64_t indexed_position, indexed_seq; /* frames before it are indexed */
	uint64_t next_index_at;             /* position due for the next entry */
	uint64_t last_time_ns;              /* of the last record seen (index of gaps) */
	int fsync_inflight;
	uint64_t fsync_target_seq, fsync_target_position;
	uint64_t last_fsync_ns;
	int32_t error;                      /* last I/O error, 0 when healthy */
	uint64_t error_seq;                 /* first seq it holds back */
	uint64_t retry_at_ns;
	int rewind;                         /* rewrite from synced_position once idle */
	int corrupt;                        /* the scan is stuck at a corrupt frame ... */
	uint64_t corrupt_position, corrupt_seq; /* ... this one */
	int removing;                       /* spill_remove_stream() waits for the drop */
	enum spill_remove remove_how;       /* why: DETACH or DELETE */
	uint64_t give_up_ns;                /* drop with failed writes from then on */
};

struct spill_writer {
	struct io_uring uring;
	pthread_t thread;
	pthread_mutex_t lock;               /* streams and their state */
	pthread_cond_t removed;
	struct spill_stream *streams;
	int stop;
	uint64_t give_up_ns;                /* spill_writer_stopping(): detaches give up then */
	unsigned inflight;                  /* SQEs whose CQE has not been seen */
	uint32_t *wakeup, *asleep;
	void (*log)(void *arg, const char *message);
	void *log_arg;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void say(struct spill_writer *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct spill_writer *w, const char *fmt, ...)
{
	char message[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	if (w->log)
		w->log(w->log_arg, message);
}

/* D2: publish progress to publishers waiting for durability. */
static void signal_waiters(struct spill_stream *s)
{
	fetch_add_seq_cst(s->src.durability_signal, 1);
	if (load_seq_cst(s->src.durability_waiters))
		futex_wake_all(s->src.durability_signal);
}

/*
 * Publish what holds the stream back first: the I/O error if there is one
 * before the corrupt frame (or no corrupt frame), else the corrupt frame the
 * scan is stuck at, else nothing (0). Publishers waiting for a record at or
 * after the seq shown fail with the code shown; those before it go on
 * waiting. A clear leaves *error_seq as it was (D3).
 */
static void publish_error(struct spill_stream *s)
{
	int io_first = s->error && (!s->corrupt || s->error_seq < s->corrupt_seq);
	int32_t code = io_first ? s->error : s->corrupt ? AGENTBUS_E_CORRUPT : 0;

	if (code)
		store_release(s->src.error_seq, io_first ? s->error_seq : s->corrupt_seq); /* D3 */
	store_release(s->src.spill_error, code); /* D3 */
	signal_waiters(s);
}

/* An I/O error: told to the operator, and published (publish_error()). */
static void set_error(struct spill_writer *w, struct spill_stream *s, int err, uint64_t seq,
		      const char *what)
{
	if (s->error != err)
		say(w, "stream '%s': %s failed at seq %llu: %s; retrying", s->src.name, what,
		    (unsigned long long)seq, agentbus_strerror(err));
	s->error = err;
	s->error_seq = seq;
	s->retry_at_ns = now_ns() + RETRY_NS;
	publish_error(s);
}

static void clear_error(struct spill_writer *w, struct spill_stream *s)
{
	int32_t shown = s->corrupt ? AGENTBUS_E_CORRUPT : 0;

	if (!s->error && load_relaxed(s->src.spill_error) == shown)
		return;
	if (s->error && s->corrupt)
		say(w, "stream '%s': spilling again, up to the corrupt frame at seq %llu",
		    s->src.name, (unsigned long long)s->corrupt_seq);
	else if (s->error)
		say(w, "stream '%s': spilling again", s->src.name);
	s->error = 0;
	publish_error(s);
}

/* The scan found no frame of seq @seq at @position: report it (once). */
static void set_corrupt(struct spill_writer *w, struct spill_stream *s, uint64_t position,
			uint64_t seq)
{
	if (s->corrupt && s->corrupt_position == position)
		return;
	s->corrupt = 1;
	s->corrupt_position = position;
	s->corrupt_seq = seq;
	say(w, "stream '%s': the ring holds a corrupt frame at seq %llu; spilling stops before it",
	    s->src.name, (unsigned long long)seq);
	publish_error(s);
}

/* The frame at the corrupt position is a good one now: the scan goes on. */
static void clear_corrupt(struct spill_writer *w, struct spill_stream *s)
{
	s->corrupt = 0;
	say(w, "stream '%s': the frame at seq %llu is good now; spilling goes on", s->src.name,
	    (unsigned long long)s->corrupt_seq);
	publish_error(s);
}

/* A write waiting to be submitted again (it failed, or made no progress). */
static int write_failed(const struct spill_stream *s)
{
	for (unsigned i = 0; i < s->count; i++)
		if (s->pending[(s->head + i) % MAX_INFLIGHT].failed)
			return 1;
	return 0;
}

/*
 * Some I/O just succeeded: clear the I/O error only if nothing is still
 * wrong. One write's success says nothing of another that failed (it may
 * never be retried then, see stream_step()), nor of a pending rewind. A
 * corrupt frame is not an I/O error: it stays reported (publish_error()).
 */
static void clear_error_if_healthy(struct spill_writer *w, struct spill_stream *s)
{
	if (s->rewind || write_failed(s))
		return;
	clear_error(w, s);
}

static struct frame_header *frame_at(struct spill_stream *s, uint64_t position)
{
	return (struct frame_header *)(s->src.ring + (position & s->ring_mask));
}

/* ---------------------------------------------------------------- scanning */

/*
 * Length and sequence count of the final frame (record or gap) at @p with
 * expected sequence @seq; 0 if it is not final yet; -1 if shared memory
 * holds something that is not a frame there.
 */
static int64_t final_frame(struct spill_stream *s, uint64_t p, uint64_t seq, uint64_t *count)
{
	struct frame_header *h = frame_at(s, p);
	uint64_t tag = load_acquire(&h->tag), len; /* D0 */

	if (tag == frame_tag(p, FRAME_COMMITTED)) {
		len = h->frame_len;
		if (h->seq != seq || len < FRAME_ALIGN || len % FRAME_ALIGN || len > s->max_frame)
			return -1;
		*count = 1;
		return (int64_t)len;
	}
	if (tag == frame_tag(p, FRAME_GAP)) {
		len = h->gap_frame_len;
		if (h->gap_first_seq != seq || !h->gap_seq_count || len < FRAME_ALIGN ||
		    len % FRAME_ALIGN || len > s->src.ring_size / 2)
			return -1;
		*count = h->gap_seq_count;
		return (int64_t)len;
	}
	return 0;
}

static int segment_full(struct spill_stream *s, uint64_t position)
{
	return position - s->segment_base >= s->src.segment_size;
}

/* Extend the scan frontier over final frames: the next run to write. */
static uint64_t collect_run(struct spill_writer *w, struct spill_stream *s)
{
	uint64_t start = s->scan_position, p = start, seq = s->scan_seq, count;
	int64_t len;

	while (!segment_full(s, p)) {
		len = final_frame(s, p, seq, &count);
		if (len < 0)
			set_corrupt(w, s, p, seq);
		else if (len > 0 && s->corrupt && p == s->corrupt_position)
			clear_corrupt(w, s);
		if (len <= 0 || (p > start && p - start + (uint64_t)len > MAX_RUN))
			break;
		p += (uint64_t)len;
		seq += count;
	}
	s->scan_position = p;
	s->scan_seq = seq;
	return p - start;
}

/* ---------------------------------------------------------------- I/O */

static struct io_uring_sqe *get_sqe(struct spill_writer *w)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&w->uring);

	if (!sqe) {
		io_uring_submit(&w->uring);
		sqe = io_uring_get_sqe(&w->uring);
	}
	return sqe;
}

static void submit_write(struct spill_writer *w, struct spill_stream *s, unsigned slot)
{
	struct pending_write *pw = &s->pending[slot];
	uint64_t from = pw->position + pw->done_len;
	struct io_uring_sqe *sqe = get_sqe(w);

	io_uring_prep_write(sqe, s->log_fd, s->src.ring + (from & s->ring_mask),
			    (unsigned)(pw->len - pw->done_len),
			    LOG_HEADER_SIZE + (from - s->segment_base));
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)s | slot);
	pw->failed = 0;
	w->inflight++;
}

static void queue_run(struct spill_writer *w, struct spill_stream *s, uint64_t start, uint64_t len)
{
	unsigned slot = (s->head + s->count) % MAX_INFLIGHT;

	s->pending[slot] = (struct pending_write){ .position = start, .len = len,
						    .end_seq = s->scan_seq };
	s->count++;
	submit_write(w, s, slot);
}

static void submit_fsync(struct spill_writer *w, struct spill_stream *s)
{
	struct io_uring_sqe *sqe = get_sqe(w);

	io_uring_prep_fsync(sqe, s->log_fd, IORING_FSYNC_DATASYNC);
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)s | FSYNC_BIT);
	s->fsync_inflight = 1;
	s->fsync_target_seq = s->done_seq;
	s->fsync_target_position = s->done_position;
	w->inflight++;
}

static int fsync_due(struct spill_stream *s, uint64_t now)
{
	if (s->src.fsync == SPILL_FSYNC_NEVER || s->fsync_inflight ||
	    s->done_position == s->synced_position)
		return 0;
	return s->src.fsync == SPILL_FSYNC_BATCH ||
	       now - s->last_fsync_ns >= (uint64_t)s->src.fsync_interval_ms * 1000000u;
}

/* ---------------------------------------------------------------- index */

/* Append @n entries to the .idx file. */
static void index_append(struct spill_writer *w, struct spill_stream *s,
			 const struct log_index_entry *entries, unsigned n)
{
	ssize_t bytes = (ssize_t)(n * sizeof(entries[0]));

	if (!n)
		return;
	/* The index is derived data (recovery rebuilds it), so a plain write. */
	if (pwrite(s->index_fd, entries, (size_t)bytes,
		   (off_t)(s->index_entries * sizeof(entries[0]))) == bytes)
		s->index_entries += n;
	else
		say(w, "stream '%s': cannot write the index: %s", s->src.name, strerror(errno));
}

/*
 * Append index entries for the frames from the indexed position up to
 * @to / @to_seq, which are final, in the current segment and still in the
 * ring (tethered), and, unless fsync is NEVER, covered by an fdatasync. An
 * fdatasync can cover many runs, so entries go out in batches.
 */
static void index_to(struct spill_writer *w, struct spill_stream *s, uint64_t to, uint64_t to_seq)
{
	struct log_index_entry entries[MAX_RUN / LOG_INDEX_EVERY + 2];
	unsigned n = 0;
	uint64_t p = s->indexed_position, seq = s->indexed_seq, count;
	int64_t len;

	if (to <= p)
		return; /* e.g. a roll's fdatasync right after a batch's */
	while (p < to) {
		len = final_frame(s, p, seq, &count);
		if (len <= 0)
			break; /* cannot happen: the frames are final and tethered */
		if (frame_at(s, p)->tag == frame_tag(p, FRAME_COMMITTED))
			s->last_time_ns = frame_at(s, p)->time_ns;
		if (p >= s->next_index_at) {
			entries[n] = (struct log_index_entry){ .seq = seq, .position = p,
							      .time_ns = s->last_time_ns };
			log_index_entry_seal(&entries[n++]);
			s->next_index_at = p + LOG_INDEX_EVERY;
			if (n == sizeof(entries) / sizeof(entries[0])) {
				index_append(w, s, entries, n);
				n = 0;
			}
		}
		p += (uint64_t)len;
		seq += count;
	}
	index_append(w, s, entries, n);
	/* Never again, even if the scan stopped short: no entry twice. */
	s->indexed_position = to;
	s->indexed_seq = to_seq;
}

/* ---------------------------------------------------------------- progress */

/* The tether: producers may overwrite only what is safe in the log. */
static void publish_tether(struct spill_stream *s)
{
	uint64_t safe = s->src.fsync == SPILL_FSYNC_NEVER ? s->done_position : s->synced_position;

	store_release(s->src.spill_position, safe); /* D1 */
}

/* Move `done` over the writes that completed in order. */
static void advance_done(struct spill_writer *w, struct spill_stream *s)
{
	int moved = 0;

	while (s->count && s->pending[s->head].completed) {
		struct pending_write *pw = &s->pending[s->head];

		s->done_position = pw->position + pw->len;
		s->done_seq = pw->end_seq;
		s->head = (s->head + 1) % MAX_INFLIGHT;
		s->count--;
		moved = 1;
	}
	if (!moved)
		return;
	if (s->src.fsync == SPILL_FSYNC_NEVER)
		index_to(w, s, s->done_position, s->done_seq); /* nothing is ever synced */
	/* D2: the position first, so whoever sees the seq finds the frames. */
	store_release(s->src.written_position, s->done_position);
	if (s->done_seq > load_relaxed(s->src.written_seq))
		store_release(s->src.written_seq, s->done_seq);
	if (s->src.fsync == SPILL_FSYNC_NEVER) {
		s->synced_position = s->done_position;
		clear_error_if_healthy(w, s);
	}
	publish_tether(s);
	signal_waiters(s);
}

static void write_completed(struct spill_writer *w, struct spill_stream *s, unsigned slot, int res)
{
	struct pending_write *pw = &s->pending[slot];

	if (spill_fault_hook)
		res = spill_fault_hook(0, res);
	if (res < 0) {
		pw->failed = 1;
		set_error(w, s, res, s->done_seq, "writing the log");
		return;
	}
	pw->done_len += (uint64_t)res;
	if (pw->done_len < pw->len) {
		if (res == 0) { /* no progress: treat as an error, retry later */
			pw->failed = 1;
			set_error(w, s, -EIO, s->done_seq, "writing the log (no progress)");
		} else {
			submit_write(w, s, slot);
		}
		return;
	}
	pw->completed = 1;
	if (s->src.fsync == SPILL_FSYNC_NEVER)
		clear_error_if_healthy(w, s);
	advance_done(w, s);
}

/*
 * An fdatasync covering everything before @position / @seq completed: index
 * those frames, then let producers overwrite them and waiters see them.
 */
static void synced_to(struct spill_writer *w, struct spill_stream *s, uint64_t position,
		      uint64_t seq)
{
	index_to(w, s, position, seq);
	s->synced_position = position;
	if (seq > load_relaxed(s->src.synced_seq))
		store_release(s->src.synced_seq, seq); /* D2 */
	publish_tether(s);
	signal_waiters(s);
}

static void fsync_completed(struct spill_writer *w, struct spill_stream *s, int res)
{
	if (spill_fault_hook)
		res = spill_fault_hook(1, res);
	s->fsync_inflight = 0;
	s->last_fsync_ns = now_ns();
	if (res < 0) {
		/* The kernel may have dropped the pages it could not write back:
		 * write everything since the last good fdatasync again. */
		s->rewind = 1;
		set_error(w, s, res, load_relaxed(s->src.synced_seq), "fdatasync of the log");
		return;
	}
	synced_to(w, s, s->fsync_target_position, s->fsync_target_seq);
	clear_error_if_healthy(w, s);
}

static void handle_cqe(struct spill_writer *w, struct io_uring_cqe *cqe)
{
	uint64_t data = io_uring_cqe_get_data64(cqe);
	struct spill_stream *s = (struct spill_stream *)(uintptr_t)(data & ~(uint64_t)63);

	w->inflight--;
	if (data & FSYNC_BIT)
		fsync_completed(w, s, cqe->res);
	else
		write_completed(w, s, (unsigned)(data & SLOT_MASK), cqe->res);
}

/* ---------------------------------------------------------------- segments */

static int open_segment(struct spill_stream *s, uint64_t base, uint64_t seq)
{
	int log_fd, index_fd;
	int err = log_segment_create(s->src.log_dir, s->src.name, base, seq, s->src.max_record,
				     &log_fd, &index_fd);

	/* On failure the stream keeps the segment it had (a roll retries). */
	if (err)
		return err;
	if (s->log_fd >= 0)
		close(s->log_fd);
	if (s->index_fd >= 0)
		close(s->index_fd);
	s->log_fd = log_fd;
	s->index_fd = index_fd;
	s->segment_base = base;
	s->index_entries = 0;
	s->next_index_at = base;
	s->indexed_position = base;
	s->indexed_seq = seq;
	return 0;
}

/*
 * Close the full segment (made durable, and its last frames indexed, first)
 * and start the next one. Nothing is in flight, so `done` is `scan`, the
 * segment's end. The old segment stays open until the new one exists, so
 * that a failed create is retried with the old segment intact (its
 * fdatasync then repeated, which costs nothing once its pages are clean).
 */
static int roll_segment(struct spill_writer *w, struct spill_stream *s)
{
	int err;

	if (s->src.fsync != SPILL_FSYNC_NEVER && fdatasync(s->log_fd) != 0) {
		/* As in fsync_completed(): the pages may be lost, and the next
		 * fdatasync would succeed anyway (Linux marks them clean). So
		 * rewrite from the last synced position, then sync again. */
		err = -errno;
		s->rewind = 1;
		set_error(w, s, err, load_relaxed(s->src.synced_seq),
			  "fdatasync of the full log segment");
		return err;
	}
	/* Into the old segment's index, before open_segment() closes it. */
	if (s->src.fsync != SPILL_FSYNC_NEVER)
		synced_to(w, s, s->done_position, s->done_seq);
	err = open_segment(s, s->scan_position, s->scan_seq);
	if (err) {
		set_error(w, s, err, s->scan_seq, "starting a new log segment");
		return err;
	}
	clear_error_if_healthy(w, s);
	return 0;
}

/* ---------------------------------------------------------------- the loop */

/* After a failed fdatasync, with nothing in flight: rewrite from the last
 * synced position (still in the ring: producers are held back by it). */
static void rewind_to_synced(struct spill_stream *s)
{
	s->rewind = 0;
	s->scan_position = s->done_position = s->synced_position;
	s->scan_seq = s->done_seq = load_relaxed(s->src.synced_seq);
}

static void retry_failed(struct spill_writer *w, struct spill_stream *s)
{
	unsigned i, slot;

	for (i = 0; i < s->count; i++) {
		slot = (s->head + i) % MAX_INFLIGHT;
		if (s->pending[slot].failed)
			submit_write(w, s, slot);
	}
}

/*
 * A stream being removed stops retrying its failed writes: at once if it is
 * being deleted (nobody will read its log), after GIVE_UP_NS if it is only
 * detached (the daemon stops; a disk that stays full must not hang it), or
 * at the writer's deadline (spill_writer_stopping()) if that comes first.
 */
static int giving_up(const struct spill_stream *s, uint64_t now)
{
	return s->removing && (s->remove_how == SPILL_REMOVE_DELETE || now >= s->give_up_ns);
}

/* One step for one stream: submit what can be submitted. Returns 1 if it did. */
static int stream_step(struct spill_writer *w, struct spill_stream *s, uint64_t now)
{
	uint64_t start, len;
	int work = 0;

	if (s->error && now < s->retry_at_ns)
		return 0;
	/* Whatever the error word says now: a failed write left behind holds
	 * `done` (and the tether) until it is written, or given up. */
	if (write_failed(s) && !giving_up(s, now)) {
		s->retry_at_ns = now + RETRY_NS;
		retry_failed(w, s);
	}
	if (s->rewind) {
		if (s->count || s->fsync_inflight)
			return 0;
		rewind_to_synced(s);
	}
	if (segment_full(s, s->scan_position) && s->scan_position > s->segment_base) {
		if (s->count || s->fsync_inflight || roll_segment(w, s) != 0)
			return 0;
		work = 1;
	}
	while (s->count < MAX_INFLIGHT && !s->removing && !w->stop) {
		start = s->scan_position;
		len = collect_run(w, s);
		if (!len)
			break;
		queue_run(w, s, start, len);
		work = 1;
	}
	if (!w->stop && fsync_due(s, now)) {
		submit_fsync(w, s);
		work = 1;
	}
	return work;
}

static void free_stream(struct spill_stream *s)
{
	if (s->log_fd >= 0)
		close(s->log_fd);
	if (s->index_fd >= 0)
		close(s->index_fd);
	free(s);
}

/* Does io_uring still hold an operation on @s's ring or log? */
static int io_in_flight(const struct spill_stream *s)
{
	const struct pending_write *pw;

	for (unsigned i = 0; i < s->count; i++) {
		pw = &s->pending[(s->head + i) % MAX_INFLIGHT];
		if (!pw->completed && !pw->failed)
			return 1;
	}
	return s->fsync_inflight;
}

/*
 * Failed writes of a removed stream are given up. Later runs may have
 * completed past the failed one: cut the log where the frames written in
 * order end (the published written position), or the next daemon's recovery
 * would take the hole for corruption and skip its records for good. Nothing
 * is lost silently: the records from there on stay in the ring (the tether
 * is at or before the cut) until a daemon writes them.
 */
static void give_up_writes(struct spill_writer *w, struct spill_stream *s)
{
	off_t end = (off_t)(LOG_HEADER_SIZE + (s->done_position - s->segment_base));
	struct stat st;

	if (fstat(s->log_fd, &st) == 0 && st.st_size > end && ftruncate(s->log_fd, end) != 0)
		say(w, "stream '%s': cannot cut the log after seq %llu: %s; the next recovery "
		    "reports the records after it corrupt", s->src.name,
		    (unsigned long long)s->done_seq - 1, strerror(errno));
	if (s->remove_how == SPILL_REMOVE_DELETE)
		say(w, "stream '%s': deleted while writing its log failed (%s): records from "
		    "seq %llu on were never written, and are gone with the stream", s->src.name,
		    agentbus_strerror(s->error), (unsigned long long)s->done_seq);
	else
		say(w, "stream '%s': gave up writing the log (%s): records from seq %llu on are "
		    "not in it; they stay in shared memory, and the next daemon writes them from "
		    "the log's end (lost if shared memory goes first, e.g. in a reboot)",
		    s->src.name, agentbus_strerror(s->error), (unsigned long long)s->done_seq);
}

/* Drop streams being removed once nothing of theirs is in flight and
 * nothing is left to write, or their failed writes are given up. */
static void reap_removed(struct spill_writer *w, uint64_t now)
{
	struct spill_stream **link = &w->streams, *s;

	while ((s = *link) != NULL) {
		if (s->removing && !io_in_flight(s) && (!s->count || giving_up(s, now))) {
			if (s->count)
				give_up_writes(w, s);
			*link = s->next;
			free_stream(s);
			pthread_cond_broadcast(&w->removed);
		} else {
			link = &s->next;
		}
	}
}

static void wait_for_work(struct spill_writer *w, int worked)
{
	struct __kernel_timespec ts = { 0, BUSY_WAIT_NS };
	struct io_uring_cqe *cqe;
	unsigned head, seen = 0;
	uint32_t wakeup;

	if (w->inflight) {
		io_uring_wait_cqe_timeout(&w->uring, &cqe, &ts);
		pthread_mutex_lock(&w->lock);
		io_uring_for_each_cqe(&w->uring, head, cqe) {
			handle_cqe(w, cqe);
			seen++;
		}
		io_uring_cq_advance(&w->uring, seen);
		return;
	}
	if (worked) {
		pthread_mutex_lock(&w->lock);
		return;
	}
	/* Idle: sleep until a publisher waiting for durability wakes us, or
	 * the next tick spills what memory-level publishers left. */
	wakeup = load_acquire(w->wakeup);
	store_release(w->asleep, 1);
	futex_wait(w->wakeup, wakeup, IDLE_WAIT_NS);
	store_release(w->asleep, 0);
	pthread_mutex_lock(&w->lock);
}

static void *spill_main(void *arg)
{
	struct spill_writer *w = arg;
	struct spill_stream *s;
	int worked;

	pthread_mutex_lock(&w->lock);
	while (!w->stop || w->inflight) {
		uint64_t now = now_ns();

		worked = 0;
		for (s = w->streams; s; s = s->next)
			worked |= stream_step(w, s, now);
		reap_removed(w, now);
		pthread_mutex_unlock(&w->lock);
		if (io_uring_sq_ready(&w->uring))
			io_uring_submit(&w->uring);
		wait_for_work(w, worked);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/* ---------------------------------------------------------------- API */

int spill_writer_start(struct spill_writer **out, uint32_t *wakeup, uint32_t *asleep,
		       void (*log)(void *arg, const char *message), void *arg)
{
	struct spill_writer *w = calloc(1, sizeof(*w));
	int err;

	if (!w)
		return -ENOMEM;
	err = io_uring_queue_init(QUEUE_DEPTH, &w->uring, 0);
	if (err) {
		free(w);
		return err;
	}
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->removed, NULL);
	w->wakeup = wakeup;
	w->asleep = asleep;
	w->log = log;
	w->log_arg = arg;
	err = -pthread_create(&w->thread, NULL, spill_main, w);
	if (err) {
		io_uring_queue_exit(&w->uring);
		free(w);
		return err;
	}
	*out = w;
	return 0;
}

static void wake(struct spill_writer *w)
{
	fetch_add_seq_cst(w->wakeup, 1);
	futex_wake_all(w->wakeup);
}

void spill_writer_stop(struct spill_writer *w)
{
	struct spill_stream *s;

	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stop = 1;
	pthread_mutex_unlock(&w->lock);
	wake(w);
	pthread_join(w->thread, NULL);
	while ((s = w->streams) != NULL) {
		w->streams = s->next;
		free_stream(s);
	}
	io_uring_queue_exit(&w->uring);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->removed);
	free(w);
}

/* Open the log where it ends (recovery says where), or start it. */
static int open_log_end(struct spill_stream *s, const struct log_recovery *rec,
			uint64_t position, uint64_t seq)
{
	struct log_segment *segments;
	size_t n;
	int err;

	if (rec->empty || rec->end_position != position)
		return open_segment(s, position, seq);
	err = log_segments_list(s->src.log_dir, &segments, &n, NULL, NULL);
	if (err)
		return err;
	if (!n) {
		free(segments);
		return open_segment(s, position, seq);
	}
	s->segment_base = segments[n - 1].base_position;
	s->log_fd = open(segments[n - 1].log_path, O_RDWR | O_CLOEXEC);
	s->index_fd = open(segments[n - 1].index_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	free(segments);
	if (s->log_fd < 0 || s->index_fd < 0)
		return -errno;
	err = log_writer_lock(s->log_fd);
	if (err)
		return err;
	s->index_entries = (uint64_t)lseek(s->index_fd, 0, SEEK_END) / sizeof(struct log_index_entry);
	s->next_index_at = position;
	s->indexed_position = position;
	s->indexed_seq = seq;
	/* What the last daemon wrote may not be on disk yet. */
	if (fdatasync(s->log_fd) != 0)
		return -errno;
	return 0;
}

int spill_add_stream(struct spill_writer *w, const struct spill_source *source,
		     const struct log_recovery *recovery, uint64_t position, uint64_t seq,
		     struct spill_stream **out)
{
	struct spill_stream *s = aligned_alloc(64, align_frame(sizeof(*s)));
	int err;

	if (!s)
		return -ENOMEM;
	memset(s, 0, sizeof(*s));
	s->src = *source;
	s->log_fd = s->index_fd = -1;
	s->ring_mask = source->ring_size - 1;
	s->max_frame = max_frame_len(source->max_record);
	s->scan_position = s->done_position = s->synced_position = position;
	s->scan_seq = s->done_seq = seq;
	s->last_time_ns = recovery->last_time_ns;
	s->last_fsync_ns = now_ns(); /* INTERVAL: the first fdatasync waits its turn too */
	err = open_log_end(s, recovery, position, seq);
	if (err) {
		free_stream(s);
		return err;
	}
	store_release(s->src.written_position, position);
	store_release(s->src.written_seq, seq);
	store_release(s->src.synced_seq, seq);
	publish_tether(s);
	pthread_mutex_lock(&w->lock);
	s->next = w->streams;
	w->streams = s;
	pthread_mutex_unlock(&w->lock);
	*out = s;
	return 0;
}

void spill_stream_frontier(struct spill_writer *w, struct spill_stream *s, uint64_t *position,
			   uint64_t *seq)
{
	pthread_mutex_lock(&w->lock);
	*position = s->scan_position;
	*seq = s->scan_seq;
	pthread_mutex_unlock(&w->lock);
}

void spill_writer_stopping(struct spill_writer *w)
{
	pthread_mutex_lock(&w->lock);
	if (!w->give_up_ns)
		w->give_up_ns = now_ns() + GIVE_UP_NS;
	pthread_mutex_unlock(&w->lock);
}

void spill_remove_stream(struct spill_writer *w, struct spill_stream *s, enum spill_remove how)
{
	struct spill_stream *t;
	int present;

	pthread_mutex_lock(&w->lock);
	s->removing = 1;
	s->remove_how = how;
	s->give_up_ns = w->give_up_ns ? w->give_up_ns : now_ns() + GIVE_UP_NS;
	for (;;) {
		for (present = 0, t = w->streams; t; t = t->next)
			present |= t == s;
		if (!present)
			break;
		wake(w);
		pthread_cond_wait(&w->removed, &w->lock);
	}
	pthread_mutex_unlock(&w->lock);
}
