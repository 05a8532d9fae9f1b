/*
 * test_spill_faults.c - the spill writer under I/O faults, driven directly
 * (no daemon) over a ring in private memory, so that each fault hits one
 * chosen operation:
 *
 *  - one failed write among several in flight (fsync NEVER): the write is
 *    submitted again and the stream goes on, even though later writes
 *    succeeded meanwhile (they used to clear the error and, with it, the
 *    retry: `done` stuck forever, spill_error 0);
 *  - the same with an fdatasync in flight that succeeds after the failure
 *    (fsync BATCH);
 *  - a corrupt frame's AGENTBUS_E_CORRUPT stays reported after the writes
 *    before it completed (fsync NEVER used to erase it);
 *  - ... and after a failed write (fsync NEVER) or fdatasync (fsync BATCH)
 *    ahead of it was retried with success (the I/O error used to overwrite
 *    CORRUPT and the success to clear it, the stream stuck behind the frame
 *    with no error shown); once the frame is good, the stream goes on;
 *  - a failed fdatasync when a full segment is rolled: everything since the
 *    last synced position is written again before anything is reported
 *    synced (it used to retry the fdatasync alone, which succeeds once Linux
 *    has marked the pages clean, and report data that may be lost synced);
 *  - a failed create of the next segment: the roll is retried and the stream
 *    goes on (it used to be left with no log file, EBADF forever);
 *  - index entries only for synced frames (fsync BATCH, with an fdatasync
 *    held back, then failed; fsync INTERVAL, where only the roll syncs): they
 *    used to be written at write completion, so after a power loss an entry
 *    could point past a hole of lost log pages, which recovery then missed;
 *  - with every write failing and a bad frame after the records, the full
 *    disk is shown (it holds the stream back first), not CORRUPT: waiters for
 *    the records before the frame were never failed (agentbus_commit() hung);
 *    CORRUPT is shown once the disk has room;
 *  - removing a stream whose writes fail forever (a full disk) returns: the
 *    daemon stopping (DETACH) gives up after a few seconds, a deletion at
 *    once; both say so, and cut the log where the records written in order
 *    end (the rest stays in the ring). It used to wait forever; a watchdog
 *    thread fails the test instead of letting it hang;
 *  - a daemon stopping with three such streams gives up after those few
 *    seconds in all (spill_writer_stopping()), not after that per stream.
 *
 * Every log is checked by log_verify() and log_recover() when its rig stops.
 *
 * Faults come from spill_fault_hook (writes and io_uring fdatasyncs) and from
 * the linker (-Wl,--wrap=fdatasync,--wrap=log_segment_create: the segment
 * roll's synchronous calls). Every fault is armed before the frames it is
 * about are published, and fires once.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>

#include "helpers.h"
#include "persist/log.h"
#include "persist/spill.h"

#define RING (8u << 20)
#define FRAME 4096u
#define SEGMENT (16 * FRAME)
#define WAIT_MS 5000
#define REMOVE_WAIT_MS 30000 /* the watchdog of a removal (it gives up after SPILL_GIVE_UP_MS) */

/* The words a stream keeps in shared memory, here in private memory. */
struct words {
	uint64_t spill_position, written_position, written_seq, synced_seq, error_seq;
	int32_t spill_error;
	uint32_t durability_signal, durability_waiters;
};

static struct {
	unsigned char *ring;
	uint64_t next_position, next_seq;   /* where the next frame goes */
	char dir[LOG_PATH_LEN];
	uint64_t segment_size;              /* 0: SEGMENT */
	int bad_frame_at_start;             /* rig_start() adds a fixable bad frame */
	struct words words;
	uint32_t wakeup, asleep;
	struct spill_writer *writer;
	struct spill_stream *stream;
} rig;

/*
 * Faults and counters; the spill thread reads and bumps them. One struct, so
 * that rig_finish() resets them all at once.
 */
static struct {
	atomic_int fail_write_at;        /* fail the Nth write completion (1-based) */
	atomic_int fail_write_err;
	atomic_int fail_all_writes;      /* fail every write completion with ENOSPC */
	atomic_int frames_on_first_write; /* publish this many frames at the first completion */
	atomic_int fail_fdatasync;       /* fail the next synchronous fdatasync with EIO */
	atomic_int fail_create;          /* fail the next segment create with ENOSPC */
	atomic_int hold_fsync;           /* hold the next io_uring fdatasync's completion */
	atomic_int fsync_held;           /* it is held now */
	atomic_int fsync_release;        /* let it complete ... */
	atomic_int fsync_release_err;    /* ... with this error (0: its own result) */
	atomic_int writes_seen, creates_seen, fdatasync_faults;
	atomic_uint_fast64_t bytes_written, bytes_at_fault;
	atomic_int removal_returned;     /* spill_remove_stream() returned */
} faults;

/* What the spill writer told its log callback, for said(). */
static pthread_mutex_t said_lock = PTHREAD_MUTEX_INITIALIZER;
static char said_text[16384];

/* A record of FRAME bytes at the next position, all but its tag. */
static struct frame_header *fill_record(void)
{
	struct frame_header *h = (struct frame_header *)(rig.ring + rig.next_position);

	memset(h, 0, FRAME);
	h->seq = rig.next_seq;
	h->time_ns = 1000 + rig.next_seq;
	h->frame_len = FRAME;
	h->subject_len = 1;
	h->payload_len = FRAME - sizeof(*h) - 1;
	((char *)(h + 1))[0] = 'x';
	h->checksum = frame_checksum(h, rig.next_position, frame_body_len(h));
	return h;
}

/* The frame at the next position is final: the next one goes after it. */
static void commit_next(struct frame_header *h, enum frame_state state)
{
	__atomic_store_n(&h->tag, frame_tag(rig.next_position, state), __ATOMIC_RELEASE);
	rig.next_position += FRAME;
	rig.next_seq++;
}

/* Publish @n records of FRAME bytes, as a producer would (tag last, release). */
static void add_frames(unsigned n)
{
	while (n--)
		commit_next(fill_record(), FRAME_COMMITTED);
}

/*
 * A good record at the next position, but tagged as a gap whose fields are
 * zero: a bad frame. fix_bad_frame() turns it into the record by its tag
 * alone (release), so the spill thread never reads a field being written.
 */
static void add_bad_frame(void)
{
	struct frame_header *h = fill_record();

	__atomic_store_n(&h->tag, frame_tag(rig.next_position, FRAME_GAP), __ATOMIC_RELEASE);
}

static void fix_bad_frame(void)
{
	commit_next((struct frame_header *)(rig.ring + rig.next_position), FRAME_COMMITTED);
}

/* A frame at the next position that is no frame of the expected seq. */
static void add_corrupt_frame(void)
{
	struct frame_header *h = (struct frame_header *)(rig.ring + rig.next_position);

	memset(h, 0, FRAME);
	h->seq = rig.next_seq + 7;
	h->frame_len = FRAME;
	__atomic_store_n(&h->tag, frame_tag(rig.next_position, FRAME_COMMITTED), __ATOMIC_RELEASE);
}

/* Hold an fdatasync's completion (the spill thread waits here, bounded). */
static int fsync_hook(int result)
{
	struct t_deadline d = t_deadline_ms(2 * WAIT_MS);

	if (!atomic_exchange(&faults.hold_fsync, 0))
		return result;
	atomic_store(&faults.fsync_held, 1);
	while (!atomic_load(&faults.fsync_release) && !t_expired(&d))
		t_sleep_us(1000);
	atomic_store(&faults.fsync_release, 0);
	atomic_store(&faults.fsync_held, 0);
	return atomic_load(&faults.fsync_release_err) ? atomic_load(&faults.fsync_release_err) : result;
}

static int hook(int is_fsync, int result)
{
	int n;

	if (is_fsync)
		return fsync_hook(result);
	n = atomic_fetch_add(&faults.writes_seen, 1) + 1;
	if (n == 1 && atomic_load(&faults.frames_on_first_write))
		add_frames((unsigned)atomic_exchange(&faults.frames_on_first_write, 0));
	if (n == atomic_load(&faults.fail_write_at))
		return atomic_load(&faults.fail_write_err);
	if (atomic_load(&faults.fail_all_writes))
		return -ENOSPC;
	if (result > 0)
		atomic_fetch_add(&faults.bytes_written, (uint64_t)result);
	return result;
}

int __real_fdatasync(int fd);
int __wrap_fdatasync(int fd);
int __wrap_fdatasync(int fd)
{
	if (atomic_exchange(&faults.fail_fdatasync, 0)) {
		atomic_store(&faults.bytes_at_fault, atomic_load(&faults.bytes_written));
		atomic_fetch_add(&faults.fdatasync_faults, 1);
		errno = EIO;
		return -1;
	}
	return __real_fdatasync(fd);
}

int __real_log_segment_create(const char *dir, const char *stream, uint64_t base_position,
			      uint64_t first_seq, uint64_t max_record, int *log_fd, int *index_fd);
int __wrap_log_segment_create(const char *dir, const char *stream, uint64_t base_position,
			      uint64_t first_seq, uint64_t max_record, int *log_fd, int *index_fd);
int __wrap_log_segment_create(const char *dir, const char *stream, uint64_t base_position,
			      uint64_t first_seq, uint64_t max_record, int *log_fd, int *index_fd)
{
	atomic_fetch_add(&faults.creates_seen, 1);
	if (atomic_exchange(&faults.fail_create, 0))
		return -ENOSPC;
	return __real_log_segment_create(dir, stream, base_position, first_seq, max_record, log_fd,
					 index_fd);
}

static void log_message(void *arg, const char *message)
{
	size_t used;

	(void)arg;
	printf("# spill: %s\n", message);
	pthread_mutex_lock(&said_lock);
	used = strlen(said_text);
	snprintf(said_text + used, sizeof(said_text) - used, "%s\n", message);
	pthread_mutex_unlock(&said_lock);
}

/* Did the spill writer say something containing @what? */
static int said(const char *what)
{
	int found;

	pthread_mutex_lock(&said_lock);
	found = strstr(said_text, what) != NULL;
	pthread_mutex_unlock(&said_lock);
	return found;
}

static uint64_t word(const uint64_t *w)
{
	return __atomic_load_n(w, __ATOMIC_ACQUIRE);
}

static int32_t spill_error(void)
{
	return __atomic_load_n(&rig.words.spill_error, __ATOMIC_ACQUIRE);
}

/*
 * Spill the rig's ring as stream @name into the new log directory @dir, with
 * its words @words (several streams may spill the same ring: the spill
 * writer only reads it).
 */
static void add_stream(const char *name, const char *dir, struct words *words,
		       enum spill_fsync fsync, uint32_t interval_ms, struct spill_stream **stream)
{
	struct spill_source src = { .ring_size = RING, .max_record = 8192, .fsync = fsync,
				    .fsync_interval_ms = interval_ms,
				    .segment_size = rig.segment_size ? rig.segment_size : SEGMENT };
	struct log_recovery rec;

	memset(words, 0, sizeof(*words));
	T_ASSERT(mkdir(dir, 0700) == 0);
	snprintf(src.name, sizeof(src.name), "%s", name);
	snprintf(src.log_dir, sizeof(src.log_dir), "%s", dir);
	src.ring = rig.ring;
	src.spill_position = &words->spill_position;
	src.written_position = &words->written_position;
	src.written_seq = &words->written_seq;
	src.synced_seq = &words->synced_seq;
	src.error_seq = &words->error_seq;
	src.spill_error = &words->spill_error;
	src.durability_signal = &words->durability_signal;
	src.durability_waiters = &words->durability_waiters;
	T_OK(log_recover(dir, &rec, NULL, NULL));
	T_OK(spill_add_stream(rig.writer, &src, &rec, 0, 1, stream));
}

/*
 * A fresh log directory, ring and spill writer with one stream "s", whose
 * ring holds @frames records before the spill writer sees it (so that its
 * first round submits them all at once).
 */
static void rig_start(const char *name, enum spill_fsync fsync, uint32_t interval_ms,
		      unsigned frames)
{
	rig.ring = aligned_alloc(4096, 2 * RING);
	T_ASSERT(rig.ring);
	memset(rig.ring, 0, 2 * RING);
	rig.next_position = 0;
	rig.next_seq = 1;
	snprintf(rig.dir, sizeof(rig.dir), "%s/%s", t_state.data_dir, name);
	add_frames(frames);
	if (rig.bad_frame_at_start)
		add_bad_frame();
	T_OK(spill_writer_start(&rig.writer, &rig.wakeup, &rig.asleep, log_message, NULL));
	add_stream("s", rig.dir, &rig.words, fsync, interval_ms, &rig.stream);
}

static void report_problem(void *arg, const struct log_problem *problem)
{
	(void)arg;
	printf("# verify: %s at position %" PRIu64 ": %s\n", problem->segment, problem->position,
	       problem->what);
}

/* The log in @dir ends at seq @end (exclusive), intact; then it goes. */
static void check_log_and_remove(const char *dir, uint64_t end)
{
	struct log_recovery rec;

	T_EQ(log_verify(dir, report_problem, NULL), 0);
	T_OK(log_recover(dir, &rec, NULL, NULL));
	T_EQ(rec.next_seq, end);
	T_EQ(rec.truncated_bytes, 0);
	T_EQ(rec.corrupt_frames, 0);
	t_remove_tree(dir);
}

/* The stream is removed: stop the writer; the log then ends at seq @end
 * (exclusive), intact. */
static void rig_finish(uint64_t end)
{
	spill_writer_stop(rig.writer);
	free(rig.ring);
	check_log_and_remove(rig.dir, end);
	/* Disarm and reset, for the next sub-test. No spill thread (nor
	 * watchdog) runs now, so plain memset() of the atomics races nothing. */
	rig.segment_size = 0;
	rig.bad_frame_at_start = 0;
	said_text[0] = '\0';
	memset(&faults, 0, sizeof(faults));
}

/* Remove the stream (as a stopping daemon does) and finish. */
static void rig_stop(uint64_t end)
{
	spill_remove_stream(rig.writer, rig.stream, SPILL_REMOVE_DETACH);
	rig_finish(end);
}

/*
 * Wait (bounded) until *@w reaches @want and, if @no_error, spill_error is 0
 * (the error word and the written_seq shown on a failure are the rig's).
 */
static void wait_until(const uint64_t *w, const char *what, uint64_t want, int no_error)
{
	struct t_deadline d = t_deadline_ms(WAIT_MS);

	while (word(w) < want || (no_error && spill_error() != 0)) {
		T_ASSERTF(!t_expired(&d), "%s is %" PRIu64 ", spill_error %d (%s), after %d ms; "
			  "want %" PRIu64 "%s (written_seq %" PRIu64 ", writes %d)", what, word(w),
			  spill_error(), agentbus_strerror(spill_error()), WAIT_MS, want,
			  no_error ? " and no error" : "", word(&rig.words.written_seq),
			  atomic_load(&faults.writes_seen));
		t_sleep_us(2000);
	}
}

/* Wait (bounded) until *@w reaches @want, whatever the error word says. */
static void wait_word(const uint64_t *w, const char *what, uint64_t want)
{
	wait_until(w, what, want, 0);
}

/* Wait (bounded) until *@w reaches @want and spill_error is 0. */
static void wait_for(const uint64_t *w, const char *what, uint64_t want)
{
	wait_until(w, what, want, 1);
	T_EQ(word(w), want);
}

/*
 * fsync NEVER, four runs of writes in flight at once, the first completion
 * fails with ENOSPC and the others succeed: the failed one is written again.
 */
static void test_never_one_write_fails(void)
{
	unsigned frames = 3 * (1u << 20) / FRAME + 1; /* 4 runs of at most 1 MiB */

	atomic_store(&faults.fail_write_err, -ENOSPC);
	atomic_store(&faults.fail_write_at, 1);
	rig.segment_size = 64u << 20; /* no roll: the four writes go together */
	rig_start("never-write", SPILL_FSYNC_NEVER, 0, frames);
	wait_for(&rig.words.written_seq, "written_seq", 1 + frames);
	T_ASSERT(atomic_load(&faults.writes_seen) > 4); /* the failed write went again */
	T_EQ(word(&rig.words.spill_position), (uint64_t)frames * FRAME);
	rig_stop(1 + frames);
}

/*
 * fsync BATCH: the first write's completion publishes one frame more, so its
 * write and an fdatasync of the first are in flight together; the write
 * fails, the fdatasync succeeds. The write is still done again.
 */
static void test_batch_write_fails_fsync_succeeds(void)
{
	atomic_store(&faults.fail_write_err, -ENOSPC);
	atomic_store(&faults.fail_write_at, 2);
	atomic_store(&faults.frames_on_first_write, 1);
	rig_start("batch-write", SPILL_FSYNC_BATCH, 0, 2);
	wait_for(&rig.words.synced_seq, "synced_seq", 4);
	T_EQ(word(&rig.words.written_seq), 4);
	T_EQ(word(&rig.words.spill_position), 3 * FRAME);
	rig_stop(4);
}

/*
 * Wait (bounded) until *@w reaches @want, with a bad or corrupt frame right
 * after it: then AGENTBUS_E_CORRUPT must be reported, whatever I/O errors
 * came and went meanwhile, and *@w stay there.
 */
static void expect_corrupt_at(const uint64_t *w, const char *what, uint64_t want)
{
	wait_word(w, what, want);
	t_sleep_us(50000); /* a few more rounds of the spill loop */
	T_ASSERTF(spill_error() == AGENTBUS_E_CORRUPT, "spill_error is %d (%s) with a corrupt "
		  "frame at seq %" PRIu64 " still in the way", spill_error(),
		  agentbus_strerror(spill_error()), want);
	T_EQ(word(w), want);
}

/* fsync NEVER: a corrupt frame is reported, and stays reported once the
 * frames before it are written. */
static void test_never_corrupt_stays(void)
{
	rig_start("never-corrupt", SPILL_FSYNC_NEVER, 0, 0);
	add_frames(4);
	add_corrupt_frame();
	expect_corrupt_at(&rig.words.written_seq, "written_seq", 5);
	rig_stop(5);
}

/* Wait (bounded) until the held fdatasync's completion is being held. */
static void wait_fsync_held(void)
{
	struct t_deadline d = t_deadline_ms(WAIT_MS);

	while (!atomic_load(&faults.fsync_held)) {
		T_ASSERTF(!t_expired(&d), "no fdatasync completed within %d ms", WAIT_MS);
		t_sleep_us(1000);
	}
}

/* Let the held fdatasync complete with @err (0: its own result). */
static void release_fsync(int err)
{
	atomic_store(&faults.fsync_release_err, err);
	atomic_store(&faults.fsync_release, 1);
}

/*
 * expect_corrupt_at() with a bad frame: CORRUPT is reported at its seq. Then
 * fix the frame: the stream goes on.
 */
static void check_corrupt_stays(const uint64_t *w, const char *what, uint64_t want)
{
	expect_corrupt_at(w, what, want);
	T_EQ(word(&rig.words.error_seq), want);
	fix_bad_frame();
	wait_for(w, what, want + 1);
	/* A clear leaves the seq: a waiter that still sees the old code must
	 * not find an older seq with it (an I/O error's, or 0) and fail. */
	T_EQ(word(&rig.words.error_seq), want);
}

/*
 * fsync NEVER: the first round finds the bad frame after four good ones and
 * writes those; the write fails with ENOSPC, its retry succeeds. CORRUPT is
 * reported at the end (and the ENOSPC was told to the log).
 */
static void test_corrupt_outlasts_write_error(void)
{
	atomic_store(&faults.fail_write_err, -ENOSPC);
	atomic_store(&faults.fail_write_at, 1);
	rig.bad_frame_at_start = 1;
	rig_start("corrupt-write", SPILL_FSYNC_NEVER, 0, 4);
	check_corrupt_stays(&rig.words.written_seq, "written_seq", 5);
	T_ASSERT(said("writing the log failed at seq 1"));
	T_ASSERT(atomic_load(&faults.writes_seen) >= 3); /* the failure, its retry, the fixed frame */
	rig_stop(6);
}

/* The same with fsync BATCH and a failed fdatasync of the four frames. */
static void test_corrupt_outlasts_fsync_error(void)
{
	atomic_store(&faults.hold_fsync, 1);
	rig.bad_frame_at_start = 1;
	rig_start("corrupt-fsync", SPILL_FSYNC_BATCH, 0, 4);
	wait_fsync_held();
	release_fsync(-EIO);
	check_corrupt_stays(&rig.words.synced_seq, "synced_seq", 5);
	T_ASSERT(said("fdatasync of the log failed at seq 1"));
	rig_stop(6);
}

/* Wait (bounded) until the error word of @w shows @err at @seq. */
static void wait_error(const struct words *w, int32_t err, uint64_t seq)
{
	struct t_deadline d = t_deadline_ms(WAIT_MS);

	while (__atomic_load_n(&w->spill_error, __ATOMIC_ACQUIRE) != err ||
	       word(&w->error_seq) != seq) {
		T_ASSERTF(!t_expired(&d), "the error word is %d (%s) at seq %" PRIu64 " after %d "
			  "ms; want %d (%s) at seq %" PRIu64 " (written_seq %" PRIu64 ")",
			  __atomic_load_n(&w->spill_error, __ATOMIC_ACQUIRE),
			  agentbus_strerror(__atomic_load_n(&w->spill_error, __ATOMIC_ACQUIRE)),
			  word(&w->error_seq), WAIT_MS, err, agentbus_strerror(err), seq,
			  word(&w->written_seq));
		t_sleep_us(2000);
	}
}

/*
 * fsync NEVER, every write failing with ENOSPC, a bad frame after four good
 * ones: the first round finds the frame, then the write of the four fails.
 * What holds the stream back first is the full disk, at seq 1: it is shown
 * (CORRUPT at seq 5 was, so a waiter for seq 1-4 was never failed and
 * agentbus_commit() hung), through the retries too. Once the disk has room,
 * CORRUPT at seq 5 is shown; once the frame is good, the stream goes on.
 */
static void test_write_error_before_corrupt(void)
{
	struct t_deadline d = t_deadline_ms(WAIT_MS);
	int failures;

	atomic_store(&faults.fail_all_writes, 1);
	rig.bad_frame_at_start = 1;
	rig_start("write-before-corrupt", SPILL_FSYNC_NEVER, 0, 4);
	wait_error(&rig.words, -ENOSPC, 1);
	T_ASSERT(said("corrupt frame at seq 5"));
	failures = atomic_load(&faults.writes_seen) + 2;
	while (atomic_load(&faults.writes_seen) < failures) {
		T_ASSERTF(!t_expired(&d), "the failed write was not retried within %d ms", WAIT_MS);
		t_sleep_us(2000);
	}
	T_EQ(spill_error(), -ENOSPC);
	T_EQ(word(&rig.words.error_seq), 1);
	T_EQ(word(&rig.words.written_seq), 1);
	atomic_store(&faults.fail_all_writes, 0);
	check_corrupt_stays(&rig.words.written_seq, "written_seq", 5);
	rig_stop(6);
}

/* Fail the test if spill_remove_stream() hangs (instead of hanging CI). */
static void *removal_watchdog(void *arg)
{
	struct t_deadline d = t_deadline_ms(REMOVE_WAIT_MS);

	(void)arg;
	while (!atomic_load(&faults.removal_returned)) {
		if (t_expired(&d))
			t_fail(__FILE__, __LINE__, "spill_remove_stream() has not returned after %d ms "
			       "of writes failing with ENOSPC", REMOVE_WAIT_MS);
		t_sleep_us(1000);
	}
	return NULL;
}

/*
 * Remove @streams[0..@n) @how, one after another, under the watchdog.
 * Returns how many write completions the fault hook saw during the
 * removals after the first (see test_stop_disk_full()).
 */
static int remove_watched(struct spill_stream *const *streams, unsigned n, enum spill_remove how)
{
	pthread_t watchdog;
	int later_writes = 0, before;
	unsigned i;

	T_EQ(pthread_create(&watchdog, NULL, removal_watchdog, NULL), 0);
	for (i = 0; i < n; i++) {
		before = atomic_load(&faults.writes_seen);
		spill_remove_stream(rig.writer, streams[i], how);
		if (i > 0)
			later_writes += atomic_load(&faults.writes_seen) - before;
	}
	atomic_store(&faults.removal_returned, 1);
	T_EQ(pthread_join(watchdog, NULL), 0);
	return later_writes;
}

/*
 * Two records written, then every write fails with ENOSPC (the disk stays
 * full) and three more are published: removing the stream @how returns,
 * says @message, and the log ends after the two (the failed writes did
 * reach the file: the hook only changes their results, so the cut is seen).
 */
static void remove_on_full_disk(const char *name, enum spill_fsync fsync, enum spill_remove how,
				const char *message)
{
	rig_start(name, fsync, 0, 2);
	wait_for(&rig.words.written_seq, "written_seq", 3);
	atomic_store(&faults.fail_all_writes, 1);
	add_frames(3);
	wait_error(&rig.words, -ENOSPC, 3);
	remove_watched(&rig.stream, 1, how);
	T_ASSERTF(said(message), "the spill writer did not say \"%s\"", message);
	T_ASSERT(said("records from seq 3 on"));
	T_EQ(word(&rig.words.written_seq), 3);
	rig_finish(3);
}

/* The daemon stops with the disk full: removal gives up after a while. */
static void test_detach_disk_full(void)
{
	remove_on_full_disk("detach-full", SPILL_FSYNC_NEVER, SPILL_REMOVE_DETACH,
			    "gave up writing the log");
}

/* A stream is deleted with the disk full: removal gives up at once. */
static void test_delete_disk_full(void)
{
	remove_on_full_disk("delete-full", SPILL_FSYNC_BATCH, SPILL_REMOVE_DELETE,
			    "are gone with the stream");
}

/*
 * Three streams on one writer (over the same ring), two records written,
 * then every write fails with ENOSPC and three more are published: removing
 * the streams one after another, as a stopping daemon does after
 * spill_writer_stopping(), gives up after SPILL_GIVE_UP_MS in all. Each
 * removal used to retry for that long on its own, so a daemon with dozens
 * of streams on a full disk outlasted a service manager's stop timeout.
 */
static void test_stop_disk_full(void)
{
	static const char *const names[3] = { "s", "s1", "s2" };
	struct spill_stream *streams[3];
	struct words words[2], *all[3] = { &rig.words, &words[0], &words[1] };
	char dirs[2][LOG_PATH_LEN], message[64], what[32];
	int later_writes;
	unsigned i;

	rig_start("stop-full", SPILL_FSYNC_NEVER, 0, 2);
	streams[0] = rig.stream;
	for (i = 0; i < 2; i++) {
		T_ASSERT(snprintf(dirs[i], sizeof(dirs[i]), "%s-%s", rig.dir, names[i + 1]) <
			 (int)sizeof(dirs[i]));
		add_stream(names[i + 1], dirs[i], &words[i], SPILL_FSYNC_NEVER, 0, &streams[i + 1]);
	}
	for (i = 0; i < 3; i++) {
		snprintf(what, sizeof(what), "stream %u: written_seq", i);
		wait_word(&all[i]->written_seq, what, 3);
	}
	atomic_store(&faults.fail_all_writes, 1);
	add_frames(3);
	for (i = 0; i < 3; i++)
		wait_error(all[i], -ENOSPC, 3);
	spill_writer_stopping(rig.writer);
	later_writes = remove_watched(streams, 3, SPILL_REMOVE_DETACH);
	printf("# %d write attempts during the removals after the first\n", later_writes);
	/*
	 * One deadline for all, counted in write attempts, not in time: the
	 * first removal returns once the writer's deadline has passed, so the
	 * later streams are dropped at once, without a retry of their own; what
	 * the hook still sees during their removals is at most a write in
	 * flight each and one retry of s2 while only s1 is being removed
	 * (2 per stream). The slack of 10 is s2's retries, every RETRY_NS
	 * (100 ms), should this thread be held up for up to a second while s2
	 * is not being removed yet. A deadline per stream instead retries for
	 * SPILL_GIVE_UP_MS (3 s) more per removal: some 30 attempts per stream
	 * and removal, about 90 here. A loaded machine only makes fewer
	 * attempts, never more; and no clock is read.
	 */
	T_ASSERTF(later_writes <= 2 * 2 + 10, "%d write attempts while removing the streams "
		  "after the first, want at most %d: did each removal retry until a deadline "
		  "of its own, not the writer's (spill_writer_stopping())?", later_writes,
		  2 * 2 + 10);
	for (i = 0; i < 3; i++) {
		snprintf(message, sizeof(message), "stream '%s': gave up writing the log", names[i]);
		T_ASSERTF(said(message), "the spill writer did not say \"%s\"", message);
		T_EQ(word(&all[i]->written_seq), 3);
	}
	for (i = 0; i < 2; i++)
		check_log_and_remove(dirs[i], 3);
	rig_finish(3);
}

/*
 * fsync INTERVAL (rarely: only the roll syncs here): the fdatasync of a full
 * segment fails. Before the segment is reported synced, everything since the
 * last synced position (the whole segment) is written again.
 */
static void test_roll_fdatasync_fails(void)
{
	uint64_t rewritten;

	rig_start("roll-fsync", SPILL_FSYNC_INTERVAL, 60000, 0);
	atomic_store(&faults.fail_fdatasync, 1);
	/* One frame written alone first: the interval's first fdatasync is
	 * a minute away too (it used to be due at once, which synced this
	 * frame and left less to rewrite). */
	add_frames(1);
	wait_for(&rig.words.written_seq, "written_seq", 2);
	add_frames(SEGMENT / FRAME - 1);
	wait_for(&rig.words.synced_seq, "synced_seq", 1 + SEGMENT / FRAME);
	T_EQ(atomic_load(&faults.fdatasync_faults), 1);
	rewritten = atomic_load(&faults.bytes_written) - atomic_load(&faults.bytes_at_fault);
	T_ASSERTF(rewritten >= SEGMENT, "after the failed fdatasync of the full segment, only %"
		  PRIu64 " bytes were written again before it was reported synced (want %u)",
		  rewritten, SEGMENT);
	/* And the next segment works. */
	add_frames(3);
	wait_for(&rig.words.written_seq, "written_seq", 4 + SEGMENT / FRAME);
	rig_stop(4 + SEGMENT / FRAME);
}

/* fsync BATCH: creating the next segment fails once; the roll is retried. */
static void test_segment_create_fails(void)
{
	rig_start("roll-create", SPILL_FSYNC_BATCH, 0, 0);
	atomic_store(&faults.fail_create, 1);
	add_frames(SEGMENT / FRAME + 4);
	wait_for(&rig.words.synced_seq, "synced_seq", 5 + SEGMENT / FRAME);
	T_ASSERT(atomic_load(&faults.creates_seen) >= 3); /* the first segment, the failure, the retry */
	rig_stop(5 + SEGMENT / FRAME);
}

/*
 * The index of the segment at @base: it must hold exactly one good entry per
 * frame below @synced (FRAME-sized frames, seq 1 at position 0, so one
 * entry per frame), in order, and none at or beyond it.
 */
static void check_index(uint64_t base, uint64_t synced)
{
	char log_path[LOG_PATH_LEN], index_path[LOG_PATH_LEN];
	struct log_index_entry e[64];
	ssize_t got;
	size_t n, i;
	int fd;

	T_OK(log_segment_paths(rig.dir, base, log_path, index_path));
	fd = open(index_path, O_RDONLY | O_CLOEXEC);
	T_ASSERT(fd >= 0);
	got = pread(fd, e, sizeof(e), 0);
	close(fd);
	T_ASSERT(got >= 0 && got % (ssize_t)sizeof(e[0]) == 0);
	n = (size_t)got / sizeof(e[0]);
	for (i = 0; i < n; i++) {
		T_ASSERT(log_index_entry_ok(&e[i]));
		T_ASSERTF(e[i].position < synced, "index entry %zu points at position %" PRIu64
			  " (seq %" PRIu64 "), at or beyond the synced position %" PRIu64, i,
			  e[i].position, e[i].seq, synced);
		T_EQ(e[i].position, base + i * FRAME);
		T_EQ(e[i].seq, 1 + e[i].position / FRAME);
		T_EQ(e[i].time_ns, 1000 + e[i].seq);
	}
	T_EQ(n, (synced - base) / FRAME);
}

/*
 * fsync BATCH: while an fdatasync is held back after its writes completed,
 * the index has no entry for them; once it completes, it has. Then the same
 * with an fdatasync that fails: still none until the rewrite is synced, and
 * then each frame's entry once, in order.
 */
static void test_batch_index_after_sync(void)
{
	atomic_store(&faults.hold_fsync, 1);
	rig_start("batch-index", SPILL_FSYNC_BATCH, 0, 8);
	wait_fsync_held();
	T_EQ(word(&rig.words.written_seq), 9);
	T_EQ(word(&rig.words.synced_seq), 1);
	check_index(0, 0);
	release_fsync(0);
	wait_for(&rig.words.synced_seq, "synced_seq", 9);
	check_index(0, 8 * FRAME);

	atomic_store(&faults.hold_fsync, 1);
	add_frames(7);
	wait_fsync_held();
	T_EQ(word(&rig.words.written_seq), 16);
	check_index(0, 8 * FRAME);
	release_fsync(-EIO);
	wait_for(&rig.words.synced_seq, "synced_seq", 16);
	check_index(0, 15 * FRAME);
	rig_stop(16);
}

/*
 * fsync INTERVAL, so rarely that only the roll syncs (the first fdatasync
 * too waits a whole interval after the start): written frames are not
 * indexed before the roll; then the full segment is, to its last frame, and
 * the next one's written frames are not.
 */
static void test_interval_index_at_roll(void)
{
	rig_start("interval-index", SPILL_FSYNC_INTERVAL, 60000, 0);
	add_frames(2);
	wait_for(&rig.words.written_seq, "written_seq", 3);
	t_sleep_us(50000); /* a few more rounds of the spill loop */
	T_EQ(word(&rig.words.synced_seq), 1);
	check_index(0, 0);
	add_frames(SEGMENT / FRAME + 1);
	wait_for(&rig.words.written_seq, "written_seq", 4 + SEGMENT / FRAME);
	wait_for(&rig.words.synced_seq, "synced_seq", 1 + SEGMENT / FRAME);
	check_index(0, SEGMENT);
	check_index(SEGMENT, SEGMENT);
	rig_stop(4 + SEGMENT / FRAME);
}

/* Run sub-test @fn unless the command line names another one. */
#define RUN_IF_NAMED(fn)                                          \
	do {                                                      \
		if (argc < 2 || strcmp(argv[1], #fn) == 0)        \
			T_RUN(fn);                                \
	} while (0)

/* With an argument, run only the sub-test of that name. */
int main(int argc, char **argv)
{
	/* No daemon here: the bus "t-spill-<pid>" it names is never made (and
	 * destroying it, absent, does nothing); the sweep of dead runs'
	 * leftovers and the sanitizer's cleanup are as welcome as elsewhere. */
	t_begin("spill");
	spill_fault_hook = hook; /* before any spill thread exists */
	RUN_IF_NAMED(test_never_one_write_fails);
	RUN_IF_NAMED(test_batch_write_fails_fsync_succeeds);
	RUN_IF_NAMED(test_never_corrupt_stays);
	RUN_IF_NAMED(test_corrupt_outlasts_write_error);
	RUN_IF_NAMED(test_corrupt_outlasts_fsync_error);
	RUN_IF_NAMED(test_write_error_before_corrupt);
	RUN_IF_NAMED(test_roll_fdatasync_fails);
	RUN_IF_NAMED(test_segment_create_fails);
	RUN_IF_NAMED(test_batch_index_after_sync);
	RUN_IF_NAMED(test_interval_index_at_roll);
	RUN_IF_NAMED(test_detach_disk_full);
	RUN_IF_NAMED(test_delete_disk_full);
	RUN_IF_NAMED(test_stop_disk_full);
	return t_done();
}
