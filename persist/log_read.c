/*
 * log_read.c - reading a log: frames checked on disk, the index, and a
 * reader that follows segments as the writer adds them, with seek by
 * sequence number and by time.
 *
 * Every byte read from a file is untrusted. A frame's length is used only
 * after it has been checked against the segment's max_frame and against
 * the data that is there, so no read runs out of a buffer and no buffer is
 * grown beyond the largest frame the segment may hold.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agentbus.h"
#include "persist/log.h"

#define SCAN_CHUNK (64u << 10)     /* bytes read at a time when looking for a frame */
#define READ_AHEAD (256u << 10)    /* a reader reads frames this many bytes at a time */
#define SEEK_CANDIDATES 8          /* index entries tried before starting at the segment */

/* ------------------------------------------------------------ frames on disk */

/* pread until @len bytes or the end of the file; returns bytes read or -errno. */
static ssize_t read_at(int fd, void *buf, size_t len, uint64_t offset)
{
	size_t done = 0;
	ssize_t n;

	while (done < len) {
		n = pread(fd, (char *)buf + done, len - done, (off_t)(offset + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

static int buffer_reserve(struct log_frame_buffer *buf, size_t len)
{
	unsigned char *grown;
	size_t cap = buf->cap ? buf->cap : 4096;

	if (len <= buf->cap)
		return 0;
	while (cap < len)
		cap *= 2;
	grown = realloc(buf->data, cap);
	if (!grown)
		return -ENOMEM;
	buf->data = grown;
	buf->cap = cap;
	return 0;
}

void log_view_forget(struct log_segment_view *v)
{
	v->window_len = 0;
}

void log_view_free(struct log_segment_view *v)
{
	free(v->window.data);
	v->window.data = NULL;
	v->window.cap = 0;
	v->window_len = 0;
}

static uint64_t file_offset(const struct log_segment_view *v, uint64_t position)
{
	return LOG_HEADER_SIZE + (position - v->base_position);
}

/*
 * Point *bytes at the file's bytes [position, position + need), from the
 * window or read into it with the view's readahead (never past data_end;
 * the caller checked that need fits before it). Returns 1, 0 if the file
 * holds fewer bytes than data_end says, or -errno.
 */
static int view_bytes(struct log_segment_view *v, uint64_t position, uint64_t need,
		      const unsigned char **bytes)
{
	uint64_t want = need + v->readahead;
	ssize_t n;
	int err;

	if (position >= v->window_position &&
	    position + need <= v->window_position + v->window_len) {
		*bytes = v->window.data + (position - v->window_position);
		return 1;
	}
	if (want > v->data_end - position)
		want = v->data_end - position;
	err = buffer_reserve(&v->window, want);
	if (err)
		return err;
	v->window_len = 0;
	n = read_at(v->fd, v->window.data, want, file_offset(v, position));
	if (n < 0)
		return (int)n;
	v->read_bytes += (uint64_t)n;
	v->window_position = position;
	v->window_len = (uint64_t)n;
	*bytes = v->window.data;
	return (uint64_t)n >= need;
}

/* A gap frame: its position and sequence number must both match, and it
 * must fit in what is there (it carries no checksum). */
static int gap_check(const struct frame_header *h, uint64_t seq, uint64_t room,
		     uint64_t *frame_len, uint64_t *next_seq, const char **why)
{
	if (h->gap_first_seq != seq) {
		*why = "gap with the wrong sequence number";
		return AGENTBUS_E_CORRUPT;
	}
	if (h->gap_seq_count == 0 || h->gap_frame_len == 0 || h->gap_frame_len % FRAME_ALIGN) {
		*why = "gap with a bad length or count";
		return AGENTBUS_E_CORRUPT;
	}
	if (h->gap_frame_len > room)
		return 0;
	*frame_len = h->gap_frame_len;
	*next_seq = seq + h->gap_seq_count;
	return 1;
}

/* The header checks of a record that need no body; NULL if they pass. */
static const char *record_header_problem(const struct frame_header *h, uint64_t seq,
					 uint64_t max_frame)
{
	uint64_t len = h->frame_len;

	if (h->seq != seq)
		return "record with the wrong sequence number";
	if (len < FRAME_ALIGN || len % FRAME_ALIGN || len > max_frame)
		return "record with a bad frame length";
	if (h->subject_len == 0 || h->subject_len > 255 ||
	    align_frame(sizeof(*h) + frame_body_len(h)) != len)
		return "record whose lengths disagree";
	return NULL;
}

static int frame_load(struct log_segment_view *v, uint64_t position, uint64_t seq,
		      const struct frame_header **frame, uint64_t *frame_len, uint64_t *next_seq,
		      const char **why, int check_gap);

/*
 * A gap's count carries no checksum: one flipped bit would renumber every
 * frame after it, and recovery would take them all for a torn tail. So the
 * count must agree with the frame after the gap whenever that frame is
 * there and valid on its own terms (a record by its checksum, a gap by its
 * tag). Returns 1 if it disagrees, 0 if it agrees or cannot be checked (the
 * gap ends the data, or the next frame is itself damaged and is reported on
 * its own), or -errno.
 */
static int gap_disagrees(struct log_segment_view *v, uint64_t next_position, uint64_t expect)
{
	const struct frame_header *h, *frame;
	const unsigned char *bytes;
	uint64_t claimed, len, next;
	const char *why;
	int rc;

	if (next_position >= v->data_end || v->data_end - next_position < sizeof(*h))
		return 0;
	rc = view_bytes(v, next_position, sizeof(*h), &bytes);
	if (rc <= 0)
		return rc;
	h = (const struct frame_header *)bytes;
	if (h->tag == frame_tag(next_position, FRAME_GAP))
		return h->gap_first_seq != expect;
	if (h->tag != frame_tag(next_position, FRAME_COMMITTED) || h->seq == expect)
		return 0;
	claimed = h->seq;
	/* No gap check there: a run of gaps is checked one pair at a time. */
	rc = frame_load(v, next_position, claimed, &frame, &len, &next, &why, 0);
	if (rc < 0 && rc != AGENTBUS_E_CORRUPT)
		return rc;
	return rc == 1;
}

/* The gap whose header is in the window at @position (see log_frame_load()). */
static int gap_load(struct log_segment_view *v, uint64_t position, uint64_t seq, uint64_t room,
		    const struct frame_header **frame, uint64_t *frame_len, uint64_t *next_seq,
		    const char **why, int check_gap)
{
	const unsigned char *bytes;
	int rc = view_bytes(v, position, sizeof(**frame), &bytes);

	if (rc <= 0)
		return rc;
	rc = gap_check((const struct frame_header *)bytes, seq, room, frame_len, next_seq, why);
	if (rc == 1 && check_gap) {
		rc = gap_disagrees(v, position + *frame_len, *next_seq);
		if (rc < 0)
			return rc;
		if (rc) {
			*why = "gap whose count disagrees with the frame after it";
			return AGENTBUS_E_CORRUPT;
		}
		/* The check may have moved the window: point at the gap again. */
		rc = view_bytes(v, position, sizeof(**frame), &bytes);
		if (rc <= 0)
			return rc;
	}
	*frame = (const struct frame_header *)bytes;
	return rc;
}

int log_frame_load(struct log_segment_view *v, uint64_t position, uint64_t seq,
		   const struct frame_header **frame, uint64_t *frame_len, uint64_t *next_seq,
		   const char **why)
{
	return frame_load(v, position, seq, frame, frame_len, next_seq, why, 1);
}

static int frame_load(struct log_segment_view *v, uint64_t position, uint64_t seq,
		      const struct frame_header **frame, uint64_t *frame_len, uint64_t *next_seq,
		      const char **why, int check_gap)
{
	const struct frame_header *h;
	const unsigned char *bytes;
	uint64_t room, len;
	int rc;

	*why = NULL;
	if (position < v->base_position || position % FRAME_ALIGN)
		return -EINVAL;
	room = position < v->data_end ? v->data_end - position : 0;
	if (room < sizeof(*h))
		return 0;
	rc = view_bytes(v, position, sizeof(*h), &bytes);
	if (rc <= 0)
		return rc;
	h = (const struct frame_header *)bytes;
	if (h->tag == frame_tag(position, FRAME_GAP))
		return gap_load(v, position, seq, room, frame, frame_len, next_seq, why, check_gap);
	if (h->tag != frame_tag(position, FRAME_COMMITTED)) {
		*why = "no frame of this position here (bad tag)";
		return AGENTBUS_E_CORRUPT;
	}
	*why = record_header_problem(h, seq, v->max_frame);
	if (*why)
		return AGENTBUS_E_CORRUPT;
	len = h->frame_len;
	if (len > room)
		return 0;
	/* len <= max_frame and <= what the file holds: safe to read. */
	rc = view_bytes(v, position, len, &bytes);
	if (rc <= 0)
		return rc;
	h = (const struct frame_header *)bytes;
	if (frame_checksum(h, position, frame_body_len(h)) != h->checksum) {
		*why = "record checksum mismatch";
		return AGENTBUS_E_CORRUPT;
	}
	*frame = h;
	*frame_len = len;
	*next_seq = seq + 1;
	return 1;
}

/* Is the header at @q worth loading: its tag names @q and its sequence
 * number is after @after_seq? Sets *seq to the one it claims. */
static int candidate(const struct frame_header *h, uint64_t q, uint64_t after_seq, uint64_t *seq)
{
	if (h->tag == frame_tag(q, FRAME_COMMITTED) && h->seq > after_seq) {
		*seq = h->seq;
		return 1;
	}
	if (h->tag == frame_tag(q, FRAME_GAP) && h->gap_first_seq > after_seq) {
		*seq = h->gap_first_seq;
		return 1;
	}
	return 0;
}

int log_frame_find(struct log_segment_view *v, uint64_t from, uint64_t after_seq,
		   uint64_t *position, uint64_t *seq)
{
	const struct frame_header *h, *frame;
	const unsigned char *bytes = NULL; /* set by view_bytes() when it returns > 0 */
	uint64_t q, len, next, want, saved = v->readahead;
	const char *why;
	int rc = 0;

	/* Scanning: read in big steps whatever the view's habit. */
	if (v->readahead < SCAN_CHUNK)
		v->readahead = SCAN_CHUNK;
	from = align_frame(from < v->base_position ? v->base_position : from);
	for (q = from; q < v->data_end && v->data_end - q >= sizeof(*h); q += FRAME_ALIGN) {
		rc = view_bytes(v, q, sizeof(*h), &bytes);
		if (rc <= 0)
			break;
		h = (const struct frame_header *)bytes;
		rc = 0;
		if (!candidate(h, q, after_seq, &want))
			continue;
		rc = log_frame_load(v, q, want, &frame, &len, &next, &why);
		if (rc == 1) {
			*position = q;
			*seq = want;
			break;
		}
		if (rc < 0 && rc != AGENTBUS_E_CORRUPT)
			break;
		rc = 0;
	}
	v->readahead = saved;
	return rc;
}

/* ------------------------------------------------------------ the index */

/* Keep @e if it is sound and after the last kept entry. */
static int entry_usable(const struct log_index_entry *e, const struct log_segment *s,
			uint64_t data_end, const struct log_index_entry *last)
{
	if (!log_index_entry_ok(e) || e->position < s->base_position || e->position >= data_end ||
	    e->position % FRAME_ALIGN || e->seq < s->first_seq)
		return 0;
	return !last || (e->seq > last->seq && e->position > last->position);
}

int log_index_load(const struct log_segment *s, uint64_t data_end,
		   struct log_index_entry **entries, size_t **raw, size_t *count)
{
	struct log_index_entry *list = NULL;
	size_t *numbers = NULL, n = 0, total, i;
	struct stat st;
	ssize_t got;
	int fd, err = 0;

	*entries = NULL;
	*count = 0;
	if (raw)
		*raw = NULL;
	fd = open(s->index_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (fstat(fd, &st) != 0) {
		err = -errno;
		goto out;
	}
	if (data_end <= s->base_position)
		goto out;
	/* Entries beyond the file's frames (as listed) are of no use. */
	if (data_end - s->base_position > s->file_size - LOG_HEADER_SIZE)
		data_end = s->base_position + (s->file_size - LOG_HEADER_SIZE);
	/* No more entries than frames: bounds what an untrusted size makes us read. */
	total = (size_t)st.st_size / sizeof(*list);
	if (data_end > s->base_position &&
	    total > (data_end - s->base_position) / FRAME_ALIGN + 1)
		total = (data_end - s->base_position) / FRAME_ALIGN + 1;
	if (total == 0 || data_end <= s->base_position)
		goto out;
	list = malloc(total * sizeof(*list));
	numbers = malloc(total * sizeof(*numbers));
	if (!list || !numbers) {
		err = -ENOMEM;
		goto out;
	}
	got = read_at(fd, list, total * sizeof(*list), 0);
	if (got < 0) {
		err = (int)got;
		goto out;
	}
	total = (size_t)got / sizeof(*list);
	for (i = 0; i < total; i++) {
		if (!entry_usable(&list[i], s, data_end, n ? &list[n - 1] : NULL))
			continue;
		list[n] = list[i];
		numbers[n++] = i;
	}
out:
	close(fd);
	if (err || n == 0) {
		free(list);
		free(numbers);
		return err;
	}
	*entries = list;
	*count = n;
	if (raw)
		*raw = numbers;
	else
		free(numbers);
	return 0;
}

/* ------------------------------------------------------------ the reader */

struct log_reader {
	char dir[LOG_PATH_LEN];          /* the log directory */
	struct log_segment *segments;    /* as last listed, by base position */
	size_t count;                    /* entries in segments */
	size_t current;                  /* segment open in view (if view.fd >= 0) */
	struct log_segment_view view;    /* the open segment; data_end set before each use */
	uint64_t file_end;               /* position where its file ends, as last looked at */
	uint64_t position;               /* position of the next frame */
	uint64_t seq;                    /* sequence number expected there */
	uint64_t sure_seq;               /* ... as checksummed frames say (gap counts have none) */
	uint64_t end_position;           /* never read at or past this */
	int anchored;                    /* position/seq set (a segment was seen, or a seek) */
	int resync;                      /* the frame at position was bad: look past it */
	uint64_t resync_from;            /* where the look for a good frame goes on */
	const struct frame_header *frame; /* the frame loaded last, in view's window */
	char error[LOG_PATH_LEN + 256];  /* what the last error was about */
};

static void reader_close_segment(struct log_reader *r)
{
	if (r->view.fd >= 0)
		close(r->view.fd);
	r->view.fd = -1;
	log_view_forget(&r->view);
}

/* List the segments again; the writer adds segments and retention deletes them. */
static int reader_relist(struct log_reader *r)
{
	struct log_segment *list;
	size_t n;
	int err = log_segments_list(r->dir, &list, &n, NULL, NULL);

	if (err)
		return err;
	reader_close_segment(r);
	free(r->segments);
	r->segments = list;
	r->count = n;
	if (!r->anchored && n) {
		r->position = list[0].base_position;
		r->seq = list[0].first_seq;
		r->sure_seq = r->seq;
		r->anchored = 1;
	}
	return 0;
}

int log_reader_open(struct log_reader **reader, const char *dir, uint64_t end_position)
{
	struct log_reader *r = calloc(1, sizeof(*r));
	int err;

	if (!r)
		return -ENOMEM;
	if (snprintf(r->dir, sizeof(r->dir), "%s", dir) >= (int)sizeof(r->dir)) {
		free(r);
		return -ENAMETOOLONG;
	}
	r->view.fd = -1;
	r->end_position = end_position;
	r->seq = 1;
	r->sure_seq = 1;
	err = reader_relist(r);
	if (err) {
		free(r);
		return err;
	}
	*reader = r;
	return 0;
}

void log_reader_set_end(struct log_reader *r, uint64_t end_position)
{
	r->end_position = end_position;
}

void log_reader_close(struct log_reader *r)
{
	if (!r)
		return;
	reader_close_segment(r);
	free(r->segments);
	log_view_free(&r->view);
	free(r);
}

void log_reader_where(const struct log_reader *r, uint64_t *next_seq, uint64_t *position)
{
	if (next_seq)
		*next_seq = r->seq;
	if (position)
		*position = r->position;
}

const char *log_reader_error(const struct log_reader *r)
{
	return r->error;
}

/* Index of the segment holding @position (greatest base <= it), or -1. */
static long segment_for(const struct log_reader *r, uint64_t position)
{
	size_t lo = 0, hi = r->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (r->segments[mid].base_position <= position)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (long)lo - 1;
}

/* Where frames of the open segment must end: the next segment's base. */
static uint64_t next_base(const struct log_reader *r)
{
	return r->current + 1 < r->count ? r->segments[r->current + 1].base_position : UINT64_MAX;
}

static int reader_open_segment(struct log_reader *r, size_t i)
{
	const struct log_segment *s = &r->segments[i];
	struct stat st;
	int fd = open(s->log_path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) != 0 || st.st_size < (off_t)LOG_HEADER_SIZE) {
		close(fd);
		return AGENTBUS_E_CORRUPT;
	}
	reader_close_segment(r);
	r->current = i;
	r->view.fd = fd;
	r->view.base_position = s->base_position;
	r->file_end = s->base_position + ((uint64_t)st.st_size - LOG_HEADER_SIZE);
	r->view.data_end = r->file_end;
	r->view.max_frame = max_frame_len(s->max_record);
	r->view.readahead = READ_AHEAD;
	return 0;
}

/* The file grew since it was opened (the writer appends). */
static void reader_refresh_size(struct log_reader *r)
{
	struct stat st;

	if (r->view.fd >= 0 && fstat(r->view.fd, &st) == 0 && st.st_size >= (off_t)LOG_HEADER_SIZE)
		r->file_end = r->view.base_position + ((uint64_t)st.st_size - LOG_HEADER_SIZE);
}

/* Frames of the open segment may be read up to here. */
static void reader_set_limit(struct log_reader *r)
{
	uint64_t limit = r->file_end;

	if (limit > next_base(r))
		limit = next_base(r);
	if (limit > r->end_position)
		limit = r->end_position;
	r->view.data_end = limit;
}

/*
 * Make the open segment the one holding r->position. Returns 1, 0 if no
 * segment holds it yet (the end), AGENTBUS_E_SEQ_GONE if retention deleted
 * it, or another negative code.
 */
static int reader_enter(struct log_reader *r)
{
	long i;
	int err, relisted = 0;

	if (r->view.fd >= 0 && r->position >= r->view.base_position && r->position < next_base(r))
		return 1;
	for (;;) {
		i = segment_for(r, r->position);
		if (i >= 0) {
			err = reader_open_segment(r, (size_t)i);
			if (err != -ENOENT)
				return err ? err : 1;
		}
		if (relisted)
			break;
		err = reader_relist(r);
		if (err)
			return err;
		relisted = 1;
	}
	if (r->count && r->position < r->segments[0].base_position) {
		snprintf(r->error, sizeof(r->error), "log %s: position %" PRIu64
			 " (seq %" PRIu64 ") was deleted; the log now begins at position %" PRIu64,
			 r->dir, r->position, r->seq, r->segments[0].base_position);
		return AGENTBUS_E_SEQ_GONE;
	}
	return 0;
}

/* Does a segment named after r->position exist (the writer began one)? */
static int reader_new_segment_exists(struct log_reader *r)
{
	char log_path[LOG_PATH_LEN], index_path[LOG_PATH_LEN];

	if (log_segment_paths(r->dir, r->position, log_path, index_path) != 0)
		return 0;
	return access(log_path, F_OK) == 0;
}

static int reader_corrupt(struct log_reader *r, const char *why)
{
	snprintf(r->error, sizeof(r->error),
		 "seq %" PRIu64 " is corrupt: %.100s (segment %s, file offset %" PRIu64
		 ", position %" PRIu64 ")", r->seq, why,
		 r->segments[r->current].log_path, file_offset(&r->view, r->position), r->position);
	r->resync = 1;
	r->resync_from = r->position + FRAME_ALIGN;
	return AGENTBUS_E_CORRUPT;
}

/* The frame at r->position ran into the end of what is there: the end of
 * data (0), the start of a new segment (1: go on), or a broken segment. */
static int reader_at_data_end(struct log_reader *r, uint64_t limit)
{
	uint64_t next = next_base(r);

	if (next != UINT64_MAX && next <= r->end_position) {
		if (r->position == next)
			return 1;
		if (r->file_end < next)
			return reader_corrupt(r, "the segment ends before the next segment begins");
		return reader_corrupt(r, "frame runs past the start of the next segment");
	}
	if (limit == r->file_end && r->position > r->view.base_position &&
	    reader_new_segment_exists(r)) {
		int err = reader_relist(r);

		return err ? err : 1;
	}
	return 0;
}

/*
 * Load the frame at r->position into r->frame without moving past it.
 * Returns 1 (frame_len and next seq set), 0 at the end, or a negative code.
 */
static int reader_load(struct log_reader *r, uint64_t *len, uint64_t *next_seq)
{
	const char *why;
	int rc, refreshed = 0;

	for (;;) {
		if (r->position >= r->end_position)
			return 0;
		rc = reader_enter(r);
		if (rc <= 0)
			return rc;
		reader_set_limit(r);
		rc = log_frame_load(&r->view, r->position, r->seq, &r->frame, len, next_seq, &why);
		if (rc == AGENTBUS_E_CORRUPT)
			return reader_corrupt(r, why);
		if (rc != 0)
			return rc;
		if (!refreshed && r->view.data_end == r->file_end) {
			reader_refresh_size(r);
			refreshed = 1;
			continue;
		}
		rc = reader_at_data_end(r, r->view.data_end);
		if (rc <= 0)
			return rc;
		reader_close_segment(r); /* at the next segment's base: enter it */
		refreshed = 0;
	}
}

/*
 * After a bad frame: find the next valid frame with a greater sequence
 * number in this segment, else go to the next segment. Returns 1 when the
 * reader is on a frame to try again, 0 if nothing is found yet (the next
 * call looks again from where this one stopped), or a negative code.
 */
static int reader_resync(struct log_reader *r)
{
	uint64_t q, s, next;
	int rc = reader_enter(r);

	if (rc <= 0)
		return rc;
	reader_refresh_size(r);
	reader_set_limit(r);
	next = next_base(r);
	rc = log_frame_find(&r->view, r->resync_from, r->seq, &q, &s);
	/* A gap before the bad frame may have overstated its count (it was
	 * checked against the frame after it, which was bad): frames after
	 * may hold lower seqs than r->seq. Look for those too. */
	if (rc == 0 && r->sure_seq < r->seq)
		rc = log_frame_find(&r->view, r->resync_from, r->sure_seq, &q, &s);
	if (rc < 0)
		return rc;
	if (rc == 1) {
		r->position = q;
		r->seq = s;
	} else if (next != UINT64_MAX && next <= r->end_position) {
		r->position = next;
		r->seq = r->segments[r->current + 1].first_seq;
	} else {
		if (r->view.data_end >= r->resync_from + FRAME_ALIGN)
			r->resync_from = align_frame(r->view.data_end - FRAME_ALIGN + 1);
		return 0;
	}
	r->resync = 0;
	r->sure_seq = r->seq;
	return 1;
}

/* Move past the frame loaded (r->frame, @len bytes; @next_seq after it). */
static void reader_step(struct log_reader *r, uint64_t len, uint64_t next_seq)
{
	r->position += len;
	r->seq = next_seq;
	if ((r->frame->tag & FRAME_STATE_MASK) == FRAME_COMMITTED)
		r->sure_seq = next_seq;
}

int log_reader_next(struct log_reader *r, const struct frame_header **frame, uint64_t *position)
{
	uint64_t len, next_seq;
	int rc;

	if (r->resync) {
		rc = reader_resync(r);
		if (rc <= 0)
			return rc;
	}
	rc = reader_load(r, &len, &next_seq);
	if (rc != 1)
		return rc;
	*frame = r->frame;
	if (position)
		*position = r->position;
	reader_step(r, len, next_seq);
	return 1;
}

/* Put the reader on the frame at @position / @seq. */
static void reader_place(struct log_reader *r, uint64_t position, uint64_t seq)
{
	if (r->view.fd >= 0 && (position < r->view.base_position || position >= next_base(r)))
		reader_close_segment(r);
	r->position = position;
	r->seq = seq;
	r->sure_seq = seq;
	r->anchored = 1;
	r->resync = 0;
	r->error[0] = '\0';
}

/*
 * Start at the last of @entries[0..upto] whose frame is valid (trying a few,
 * newest first), else at the start of segment @i.
 */
static int reader_place_from_index(struct log_reader *r, size_t i,
				   const struct log_index_entry *entries, long upto)
{
	/* Copied: reader_load() may list the segments again. */
	uint64_t base = r->segments[i].base_position, first_seq = r->segments[i].first_seq;
	uint64_t len, next;
	long k;
	int rc;

	for (k = upto; k >= 0 && upto - k < SEEK_CANDIDATES; k--) {
		reader_place(r, entries[k].position, entries[k].seq);
		rc = reader_load(r, &len, &next);
		if (rc == 1)
			return 0;
		if (rc < 0 && rc != AGENTBUS_E_CORRUPT)
			return rc;
	}
	reader_place(r, base, first_seq);
	return 0;
}

/* Is the frame loaded (at r->seq) the one that holds @seq or a later one? */
static int frame_reaches_seq(const struct log_reader *r, uint64_t seq)
{
	const struct frame_header *h = r->frame;

	if ((h->tag & FRAME_STATE_MASK) == FRAME_GAP)
		return seq < r->seq + h->gap_seq_count;
	return r->seq >= seq;
}

static int frame_reaches_time(const struct log_reader *r, uint64_t time_ns)
{
	const struct frame_header *h = r->frame;

	return (h->tag & FRAME_STATE_MASK) == FRAME_COMMITTED && h->time_ns >= time_ns;
}

/*
 * Move forward frame by frame until @reached holds for the frame at the
 * reader (which is left on it), or to the end. A corrupt frame on the way
 * is stepped over when @by_seq and the next good frame is still not past
 * the target (the damage was before it); otherwise AGENTBUS_E_CORRUPT is
 * returned with the reader on the next good frame, or set to look for one.
 */
static int reader_scan_to(struct log_reader *r, uint64_t target,
			  int (*reached)(const struct log_reader *, uint64_t), int by_seq)
{
	uint64_t len, next;
	int rc;

	for (;;) {
		rc = reader_load(r, &len, &next);
		if (rc == AGENTBUS_E_CORRUPT) {
			rc = reader_resync(r);
			if (rc < 0)
				return rc;
			if (rc == 1 && by_seq && r->seq <= target)
				continue;
			return AGENTBUS_E_CORRUPT;
		}
		if (rc <= 0)
			return rc;
		if (reached(r, target))
			return 0;
		reader_step(r, len, next);
	}
}

/* Last entry with seq <= @seq, or -1. */
static long index_search_seq(const struct log_index_entry *e, size_t n, uint64_t seq)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (e[mid].seq <= seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (long)lo - 1;
}

/* Last entry with time_ns < @t, or -1 (times are nearly monotone). */
static long index_search_time(const struct log_index_entry *e, size_t n, uint64_t t)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (e[mid].time_ns < t)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (long)lo - 1;
}

/* Segment data end as far as the index is concerned. */
static uint64_t index_limit(const struct log_reader *r, size_t i)
{
	uint64_t end = i + 1 < r->count ? r->segments[i + 1].base_position : UINT64_MAX;

	return end < r->end_position ? end : r->end_position;
}

/* Place the reader in segment @i at the index entry chosen by @search. */
static int reader_place_in_segment(struct log_reader *r, size_t i, uint64_t key,
				   long (*search)(const struct log_index_entry *, size_t, uint64_t))
{
	struct log_index_entry *entries;
	size_t n;
	int rc = log_index_load(&r->segments[i], index_limit(r, i), &entries, NULL, &n);

	if (rc)
		return rc;
	rc = reader_place_from_index(r, i, entries, n ? search(entries, n, key) : -1);
	free(entries);
	return rc;
}

int log_reader_seek_seq(struct log_reader *r, uint64_t seq)
{
	size_t lo = 0, hi;
	int rc = reader_relist(r);

	if (rc)
		return rc;
	if (r->count == 0) {
		reader_place(r, r->position, seq);
		r->anchored = 0;
		return 0;
	}
	if (seq < r->segments[0].first_seq) {
		reader_place(r, r->segments[0].base_position, r->segments[0].first_seq);
		return AGENTBUS_E_SEQ_GONE;
	}
	/* Last segment whose first_seq <= seq. */
	for (hi = r->count; lo < hi;) {
		size_t mid = lo + (hi - lo) / 2;

		if (r->segments[mid].first_seq <= seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	rc = reader_place_in_segment(r, lo - 1, seq, index_search_seq);
	if (rc)
		return rc;
	return reader_scan_to(r, seq, frame_reaches_seq, 1);
}

/* Time of the first usable index entry of segment @i; 0 if none. */
static uint64_t segment_first_time(const struct log_reader *r, size_t i)
{
	const struct log_segment *s = &r->segments[i];
	struct log_index_entry e[8];
	ssize_t n = 0;
	int fd = open(s->index_path, O_RDONLY | O_CLOEXEC);
	long k;

	if (fd >= 0) {
		n = read_at(fd, e, sizeof(e), 0);
		close(fd);
	}
	for (k = 0; k < n / (ssize_t)sizeof(e[0]); k++)
		if (entry_usable(&e[k], s, index_limit(r, i), NULL))
			return e[k].time_ns;
	return 0;
}

int log_reader_seek_time(struct log_reader *r, uint64_t time_ns)
{
	size_t lo = 0, hi;
	uint64_t first;
	int rc = reader_relist(r);

	if (rc)
		return rc;
	if (r->count == 0)
		return 0;
	/* Last segment whose first time is known and before time_ns; a
	 * segment of unknown time counts as later (starting earlier is only
	 * slower, never wrong). */
	for (hi = r->count; lo < hi;) {
		size_t mid = lo + (hi - lo) / 2;

		first = segment_first_time(r, mid);
		if (first != 0 && first < time_ns)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		reader_place(r, r->segments[0].base_position, r->segments[0].first_seq);
	else {
		rc = reader_place_in_segment(r, lo - 1, time_ns, index_search_time);
		if (rc)
			return rc;
	}
	return reader_scan_to(r, time_ns, frame_reaches_time, 0);
}
