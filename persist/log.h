/*
 * log.h - a stream's durable log on disk: segment files that hold the
 * stream's frames byte for byte, an index per segment, and the reading,
 * recovery, verification and retention of them. docs/log-format.md is the
 * format. Nothing here knows about shared memory or subscriptions: callers
 * pass positions and sequence numbers.
 *
 * Functions return 0 (or a count) on success and a negative code on failure:
 * -errno, or AGENTBUS_E_CORRUPT / AGENTBUS_E_VERSION / AGENTBUS_E_SEQ_GONE.
 */
#ifndef AGENTBUS_PERSIST_LOG_H
#define AGENTBUS_PERSIST_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "persist/frame.h"

#define LOG_FORMAT_VERSION 1u
#define LOG_SEGMENT_MAGIC 0x3147424c47534741ull /* "AGSGLBG1" */
#define LOG_HEADER_SIZE 4096u
#define LOG_INDEX_EVERY 4096u        /* an index entry at least every this many log bytes */
#define LOG_DEFAULT_SEGMENT_SIZE (64ull << 20)
#define LOG_PATH_LEN 4096

/* The first bytes of a segment file (the rest of its 4096-byte header is zero). */
struct log_segment_header {
	uint64_t magic;          /* LOG_SEGMENT_MAGIC */
	uint32_t version;        /* LOG_FORMAT_VERSION */
	uint32_t header_size;    /* LOG_HEADER_SIZE */
	uint64_t base_position;  /* stream position of the first frame (file offset 4096) */
	uint64_t first_seq;      /* sequence number of the first frame */
	uint64_t created_ns;     /* CLOCK_REALTIME */
	char stream[64];         /* NUL-terminated stream name */
	uint64_t max_record;     /* the stream's max_record when the segment was made: bounds lengths */
	uint64_t checksum;       /* XXH3-64 of the bytes above */
};

struct log_index_entry {
	uint64_t seq;            /* sequence number of the frame */
	uint64_t position;       /* its stream position */
	uint64_t time_ns;        /* its time (records), or the previous record's (gaps) */
	uint64_t checksum;       /* XXH3-64 of the 24 bytes above */
};

/* A segment found on disk, as listed by log_segments_list(). */
struct log_segment {
	uint64_t base_position;
	uint64_t first_seq;
	uint64_t max_record;
	uint64_t file_size;      /* bytes of the .log file, header included */
	char log_path[LOG_PATH_LEN];
	char index_path[LOG_PATH_LEN];
};

/* ------------------------------------------------------------ segments (log_segment.c) */

/* "<dir>/<20-digit base position>.log" / ".idx" */
int log_segment_paths(const char *dir, uint64_t base_position, char *log_path, char *index_path);

/*
 * Create the segment starting at @base_position / @first_seq: write its
 * header, then fdatasync it and fsync @dir, so it is durable before any
 * record in it can be reported synced. Returns the open fds (O_RDWR) of the
 * .log and the .idx file. An existing segment of that name is replaced only
 * if it holds no frame (a crash between creating and writing it).
 */
int log_segment_create(const char *dir, const char *stream, uint64_t base_position,
		       uint64_t first_seq, uint64_t max_record, int *log_fd, int *index_fd);

/*
 * The writer's lock on a segment: the spill writer holds the segment it
 * appends to flock'd. The lock lives as long as the open file, and io_uring
 * writes in flight hold the file open, even once the writer's process has
 * died: log_wait_for_writer() returns once the last of them has landed, so
 * that recovery never reads a tail that a dead writer still changes.
 */
int log_writer_lock(int log_fd);
int log_wait_for_writer(const char *log_path, unsigned timeout_ms);

/* fsync directory @dir, so that files made or removed in it stay so. */
int log_sync_dir(const char *dir);

/* Read and check a segment's header. */
int log_segment_header_read(int fd, struct log_segment_header *header);

/*
 * List the segments of a log directory, sorted by base position. *segments
 * is malloc'd (free it); files whose header is not valid are skipped and
 * reported through @report (may be NULL).
 */
int log_segments_list(const char *dir, struct log_segment **segments, size_t *count,
		      void (*report)(void *arg, const char *message), void *arg);

/* Seal an index entry (fill its checksum) / check one. */
void log_index_entry_seal(struct log_index_entry *entry);
int log_index_entry_ok(const struct log_index_entry *entry);

/* ------------------------------------------------------------ reading (log_read.c) */

struct log_reader;

/*
 * Open a reader over the log in @dir. It never reads at or past @end_position
 * (the position the writer has completed; UINT64_MAX for a log nobody
 * writes), which log_reader_set_end() may raise as the log grows.
 */
int log_reader_open(struct log_reader **reader, const char *dir, uint64_t end_position);
void log_reader_set_end(struct log_reader *reader, uint64_t end_position);
void log_reader_close(struct log_reader *reader);

/* Position the reader at the frame holding @seq (the first frame if @seq is
 * older than the log holds: then AGENTBUS_E_SEQ_GONE is returned and the
 * reader is at the first frame; the end of the log if @seq is not written
 * yet: log_reader_where() then says which seq comes next). Corrupt frames
 * before @seq are stepped over; AGENTBUS_E_CORRUPT if @seq itself cannot be
 * read (the reader is then past it, on the next good frame). */
int log_reader_seek_seq(struct log_reader *reader, uint64_t seq);

/* Position the reader at the first record with time >= @time_ns (in stream
 * order from the last index entry before it). AGENTBUS_E_CORRUPT if a
 * corrupt frame was met on the way (it might have been that record); the
 * reader is then past it. */
int log_reader_seek_time(struct log_reader *reader, uint64_t time_ns);

/*
 * The next frame: returns 1 and points *frame at the frame in the reader's
 * buffer (valid until the next call) with *position set, 0 at the end (the
 * end position, or the end of what is on disk), or a negative code:
 * AGENTBUS_E_CORRUPT for a frame that is not valid where one is expected
 * (the message names the sequence number, segment and file offset; the next
 * call moves past it if the frame after it can be found). Gap frames are
 * returned too (tag state FRAME_GAP): callers count and skip them.
 */
int log_reader_next(struct log_reader *reader, const struct frame_header **frame,
		    uint64_t *position);

/* Sequence number and position the reader will look at next. */
void log_reader_where(const struct log_reader *reader, uint64_t *next_seq, uint64_t *position);

/* What the last AGENTBUS_E_CORRUPT (or other error) of @reader was about:
 * sequence number, segment, file offset and what is wrong. "" if none. */
const char *log_reader_error(const struct log_reader *reader);

/* ------------------------------------------------------------ frames on disk (log_read.c) */

/* A buffer that grows to hold frames (never beyond a checked length). */
struct log_frame_buffer {
	unsigned char *data;
	size_t cap;
};

/* One segment file seen as a run of frames; shared by reader, recovery and
 * verify. Nothing read from the file is trusted: every length is bounded by
 * max_frame and by data_end before it is used. Frames are read through a
 * window of cached file bytes, so a run of small frames costs one pread. */
struct log_segment_view {
	int fd;                  /* the .log file */
	uint64_t base_position;  /* position of its first frame (file offset LOG_HEADER_SIZE) */
	uint64_t data_end;       /* position no frame may run past (file end, next base, ...) */
	uint64_t max_frame;      /* bound on a frame's length: max_frame_len(max_record) */
	uint64_t readahead;      /* bytes read beyond what a frame needs (up to data_end); 0 = none */
	uint64_t read_bytes;     /* bytes read from the file through this view (counter) */
	struct log_frame_buffer window; /* cached file bytes ... */
	uint64_t window_position;       /* ... from this position ... */
	uint64_t window_len;            /* ... this many (0: none) */
};

/*
 * Load the frame at @position where sequence number @seq is expected.
 * Returns 1 if it is a valid record or gap (*frame points at it in the
 * view's window, valid until the next call on the view; *frame_len and
 * *next_seq set), 0 if it does not fit before data_end (incomplete: the end
 * of what is there), AGENTBUS_E_CORRUPT if it is not valid (*why says what
 * is wrong), or -errno.
 */
int log_frame_load(struct log_segment_view *view, uint64_t position, uint64_t seq,
		   const struct frame_header **frame, uint64_t *frame_len, uint64_t *next_seq,
		   const char **why);

/*
 * Find the first valid frame at or after @from (FRAME_ALIGN steps, up to
 * data_end) whose sequence number is greater than @after_seq. Returns 1
 * with *position and *seq set, 0 if there is none, or -errno.
 */
int log_frame_find(struct log_segment_view *view, uint64_t from, uint64_t after_seq,
		   uint64_t *position, uint64_t *seq);

/* Drop the view's cached bytes (the file changed under them) / free them. */
void log_view_forget(struct log_segment_view *view);
void log_view_free(struct log_segment_view *view);

/*
 * Load the usable entries of @segment's index: checksum good, pointing
 * inside [base, data_end) at an aligned position, seq and position strictly
 * increasing. *entries is malloc'd (NULL if none); if @raw is not NULL,
 * (*raw)[i] is the entry's number in the file. A missing index is empty.
 */
int log_index_load(const struct log_segment *segment, uint64_t data_end,
		   struct log_index_entry **entries, size_t **raw, size_t *count);

/* ------------------------------------------------------------ recovery (log_recover.c) */

struct log_recovery {
	uint64_t first_position;   /* where the log begins (first segment's base) */
	uint64_t first_seq;        /* its first sequence number */
	uint64_t end_position;     /* just past the last valid frame */
	uint64_t next_seq;         /* sequence number after the last valid frame */
	uint64_t last_time_ns;     /* time of the last valid record (0 if none) */
	uint64_t bytes;            /* bytes of .log files after recovery */
	uint64_t truncated_bytes;  /* torn tail cut off (0 if none) */
	uint64_t corrupt_frames;   /* bad frames in the middle, kept and reported */
	uint64_t scanned_bytes;    /* bytes of .log files read to find the end (tail only) */
	int empty;                 /* no segment at all */
};

/*
 * Find the end of the log in @dir after a crash, reading only the tail of
 * its last segment (from the last good index entry): truncate a torn tail,
 * rebuild missing index entries of that tail, and report every problem
 * through @report. Returns 0 (also for an empty or absent log) or -errno.
 */
int log_recover(const char *dir, struct log_recovery *out,
		void (*report)(void *arg, const char *message), void *arg);

struct log_problem {
	const char *segment;       /* path of the segment file */
	uint64_t file_offset;      /* where in it */
	uint64_t position;         /* stream position */
	uint64_t seq;              /* sequence number expected there */
	const char *what;          /* what is wrong */
};

/* Check every frame of every segment in @dir. Returns the number of
 * problems found (each reported through @report), or a negative code. */
int log_verify(const char *dir, void (*report)(void *arg, const struct log_problem *problem),
	       void *arg);

/* ------------------------------------------------------------ retention (log_retention.c) */

struct log_retention_limits {
	uint64_t max_age_ns;       /* 0 = no limit: delete segments whose newest record is older */
	uint64_t max_bytes;        /* 0 = no limit: keep the log at most this big */
	uint64_t max_records;      /* 0 = no limit: keep about this many records (whole segments) */
	uint64_t keep_from;        /* never delete a segment holding this position or later
				    * (UINT64_MAX: nothing to keep for readers; 0 keeps all) */
};

/* Delete whole segments (oldest first, never the last one) beyond the
 * limits. Returns the number of segments deleted or a negative code. */
int log_apply_retention(const char *dir, const struct log_retention_limits *limits,
			uint64_t now_ns);

#endif
