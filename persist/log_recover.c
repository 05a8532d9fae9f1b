/*
 * log_recover.c - finding the end of a log after a crash (the tail of the
 * last segment only, so start-up time does not grow with the log), and
 * verifying a whole log (every frame of every segment).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agentbus.h"
#include "persist/log.h"

#define RECOVERY_READ_AHEAD (64u << 10) /* bytes read at a time scanning a tail */
#define VERIFY_READ_AHEAD (1u << 20)    /* ... and verifying a whole segment */
#define WRITER_WAIT_MS 30000u           /* for a dead writer's last writes to land */

typedef void (*report_fn)(void *arg, const char *message);

static void say(report_fn report, void *arg, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void say(report_fn report, void *arg, const char *fmt, ...)
{
	char message[LOG_PATH_LEN + 512];
	va_list ap;

	if (!report)
		return;
	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	report(arg, message);
}

/* ------------------------------------------------------------ recovery */

/* What the tail scan of one segment found. */
struct tail {
	uint64_t end_position;     /* just past the last valid frame */
	uint64_t next_seq;         /* sequence number after it */
	uint64_t sure_seq;         /* ... as checksummed data says: a gap since may have moved
				    * next_seq on by its count, which has no checksum */
	uint64_t last_time_ns;     /* time of the last record seen (or of the index entry) */
	int any_valid;             /* the segment holds at least one valid frame */
	struct log_index_entry *added; /* index entries for the scanned frames */
	size_t added_count, added_cap;
	uint64_t last_indexed;     /* position of the last index entry kept or added */
	int indexed;               /* last_indexed is set */
};

static int index_add(struct tail *t, uint64_t seq, uint64_t position, uint64_t time_ns)
{
	struct log_index_entry *grown, *e;

	if (t->added_count == t->added_cap) {
		size_t cap = t->added_cap ? 2 * t->added_cap : 64;

		grown = realloc(t->added, cap * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		t->added = grown;
		t->added_cap = cap;
	}
	e = &t->added[t->added_count++];
	e->seq = seq;
	e->position = position;
	e->time_ns = time_ns;
	log_index_entry_seal(e);
	t->last_indexed = position;
	t->indexed = 1;
	return 0;
}

/* An index entry for the frame at @position if the last one is far enough
 * back (the writer's rule: one at least every LOG_INDEX_EVERY bytes). */
static int index_maybe_add(struct tail *t, uint64_t seq, uint64_t position, int force)
{
	if (!force && t->indexed && position - t->last_indexed < LOG_INDEX_EVERY)
		return 0;
	return index_add(t, seq, position, t->last_time_ns);
}

/*
 * Start the scan of @s at the last index entry whose frame is valid, else
 * at the segment's start. Sets *keep to the number of index file entries
 * to keep (those up to the starting one).
 */
static int tail_start(struct log_segment_view *v, const struct log_segment *s,
		      struct tail *t, uint64_t *position,
		      size_t *keep)
{
	const struct frame_header *frame;
	struct log_index_entry *entries;
	uint64_t len, next;
	const char *why;
	size_t *raw, n;
	long k;
	int rc = log_index_load(s, v->data_end, &entries, &raw, &n);

	if (rc)
		return rc;
	*position = s->base_position;
	t->next_seq = s->first_seq;
	t->sure_seq = s->first_seq;
	*keep = 0;
	for (k = (long)n - 1; k >= 0; k--) {
		rc = log_frame_load(v, entries[k].position, entries[k].seq, &frame, &len, &next, &why);
		if (rc < 0 && rc != AGENTBUS_E_CORRUPT)
			break;
		if (rc != 1)
			continue;
		*position = entries[k].position;
		t->next_seq = entries[k].seq;
		t->sure_seq = entries[k].seq;
		t->last_time_ns = entries[k].time_ns;
		t->last_indexed = entries[k].position;
		t->indexed = 1;
		*keep = raw[k] + 1;
		break;
	}
	free(entries);
	free(raw);
	return rc < 0 && rc != AGENTBUS_E_CORRUPT ? rc : 0;
}

/* Cut the segment at @position (a torn tail), durably. */
static int tail_cut(struct log_segment_view *v, const struct log_segment *s, uint64_t position,
		    uint64_t seq, struct log_recovery *out, report_fn report, void *arg)
{
	uint64_t offset = LOG_HEADER_SIZE + (position - v->base_position);
	uint64_t cut = v->data_end - position;

	if (ftruncate(v->fd, (off_t)offset) != 0 || fdatasync(v->fd) != 0)
		return -errno;
	say(report, arg, "stream log %s: torn tail at seq %" PRIu64 " (segment %s, offset %" PRIu64
	    "): %" PRIu64 " bytes cut; the stream continues at seq %" PRIu64,
	    s->log_path, seq, s->log_path, offset, cut, seq);
	out->truncated_bytes += cut;
	v->data_end = position;
	return 0;
}

/*
 * The frame at @position is bad: find the next valid frame after it.
 * Returns 1 (*q / *found_seq set; *renumbered if the gap before the bad
 * frame overstated its count), 0 if there is none (a torn tail), or -errno.
 */
static int tail_resync(struct log_segment_view *v, const struct tail *t, uint64_t position,
		       uint64_t *q, uint64_t *found_seq, int *renumbered)
{
	int rc = log_frame_find(v, position + FRAME_ALIGN, t->next_seq, q, found_seq);

	*renumbered = 0;
	if (rc != 0 || t->sure_seq >= t->next_seq)
		return rc;
	/* A gap's count checks against the frame after it only when that
	 * frame is valid; if it was not, the count may be too big, and the
	 * look above missed later frames whose seq is below it. Never cut a
	 * valid frame for that: look again for any seq after the gap's first. */
	rc = log_frame_find(v, position + FRAME_ALIGN, t->sure_seq, q, found_seq);
	*renumbered = rc == 1;
	return rc;
}

/* Report the bad frame at @position, skipped up to the valid frame at @q. */
static void report_skip(const struct log_segment *s, const struct log_segment_view *v,
			const struct tail *t, uint64_t position, const char *why, uint64_t q,
			uint64_t found_seq, int renumbered, report_fn report, void *arg)
{
	uint64_t offset = LOG_HEADER_SIZE + (position - v->base_position);

	if (!why)
		why = "incomplete frame";
	if (renumbered)
		say(report, arg, "stream log %s: corrupt frame at seq %" PRIu64 " (segment %s, offset %"
		    PRIu64 "): %s; gaps before it claimed seq %" PRIu64 "..%" PRIu64 " but a valid "
		    "frame with seq %" PRIu64 " follows (a gap's count is damaged); %" PRIu64
		    " bytes skipped, kept (readers get AGENTBUS_E_CORRUPT there)",
		    s->log_path, t->next_seq, s->log_path, offset, why, t->sure_seq,
		    t->next_seq - 1, found_seq, q - position);
	else
		say(report, arg, "stream log %s: corrupt frame at seq %" PRIu64 " (segment %s, offset %"
		    PRIu64 "): %s; seq %" PRIu64 "..%" PRIu64 " unreadable, %" PRIu64
		    " bytes skipped, kept (readers get AGENTBUS_E_CORRUPT there)",
		    s->log_path, t->next_seq, s->log_path, offset, why, t->next_seq, found_seq - 1,
		    q - position);
}

/*
 * Scan @s from its last good index entry to its end: records the end in
 * @t, cuts a torn tail, skips (and reports) corruption in the middle.
 */
static int tail_scan(struct log_segment_view *v, const struct log_segment *s,
		     struct tail *t, uint64_t position,
		     struct log_recovery *out, report_fn report, void *arg)
{
	const struct frame_header *h;
	uint64_t len, next, q, found_seq;
	const char *why;
	int rc, force = 0, renumbered;

	while (position < v->data_end) {
		rc = log_frame_load(v, position, t->next_seq, &h, &len, &next, &why);
		if (rc == 1) {
			if ((h->tag & FRAME_STATE_MASK) == FRAME_COMMITTED) {
				t->last_time_ns = h->time_ns;
				t->sure_seq = next;
			}
			rc = index_maybe_add(t, t->next_seq, position, force);
			if (rc)
				return rc;
			force = 0;
			t->any_valid = 1;
			position += len;
			t->next_seq = next;
			continue;
		}
		if (rc < 0 && rc != AGENTBUS_E_CORRUPT)
			return rc;
		rc = tail_resync(v, t, position, &q, &found_seq, &renumbered);
		if (rc < 0)
			return rc;
		if (rc == 0)
			return tail_cut(v, s, position, t->next_seq, out, report, arg);
		report_skip(s, v, t, position, why, q, found_seq, renumbered, report, arg);
		out->corrupt_frames++;
		position = q;
		t->next_seq = found_seq;
		t->sure_seq = found_seq;
		force = 1; /* index the first frame after the damage, for seeks */
	}
	return 0;
}

/* Write the index of the scanned tail: keep @keep entries, append the rest. */
static int tail_index_write(const struct log_segment *s, const struct tail *t, size_t keep)
{
	size_t bytes = t->added_count * sizeof(*t->added), done = 0;
	int fd = open(s->index_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600), err = 0;
	off_t at = (off_t)(keep * sizeof(struct log_index_entry));
	struct stat st;
	ssize_t n;

	if (fd < 0)
		return -errno;
	/* Nothing to change (a clean stop): no write, no sync. */
	if (!bytes && fstat(fd, &st) == 0 && st.st_size == at) {
		close(fd);
		return 0;
	}
	if (ftruncate(fd, at) != 0)
		err = -errno;
	while (!err && done < bytes) {
		n = pwrite(fd, (const char *)t->added + done, bytes - done, at + (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			err = n < 0 ? -errno : -EIO;
		else
			done += (size_t)n;
	}
	if (!err && fdatasync(fd) != 0)
		err = -errno;
	close(fd);
	return err;
}

/* Recover the tail of segment @s into @t. */
static int recover_segment(const struct log_segment *s, struct tail *t,
			   struct log_recovery *out, report_fn report, void *arg)
{
	struct log_segment_view v = { 0 };
	uint64_t position;
	struct stat st;
	size_t keep;
	int rc;

	memset(t, 0, sizeof(*t));
	v.fd = open(s->log_path, O_RDWR | O_CLOEXEC);
	if (v.fd < 0)
		return -errno;
	if (fstat(v.fd, &st) != 0 || st.st_size < (off_t)LOG_HEADER_SIZE) {
		close(v.fd);
		return AGENTBUS_E_CORRUPT;
	}
	v.base_position = s->base_position;
	v.data_end = s->base_position + ((uint64_t)st.st_size - LOG_HEADER_SIZE);
	v.max_frame = max_frame_len(s->max_record);
	/* Exact reads while trying index entries newest first (read-ahead
	 * would read each one's following bytes again), then read ahead. */
	rc = tail_start(&v, s, t, &position, &keep);
	if (!rc) {
		if (position > s->base_position)
			t->any_valid = 1;
		v.readahead = RECOVERY_READ_AHEAD;
		rc = tail_scan(&v, s, t, position, out, report, arg);
	}
	if (!rc)
		rc = tail_index_write(s, t, keep);
	t->end_position = v.data_end;
	out->scanned_bytes += v.read_bytes;
	log_view_free(&v);
	free(t->added);
	t->added = NULL;
	close(v.fd);
	return rc;
}

/* Remove segment @s (it holds nothing and does not follow the log's end). */
static int drop_segment(const struct log_segment *s, uint64_t end, report_fn report, void *arg)
{
	if (unlink(s->log_path) != 0 && errno != ENOENT)
		return -errno;
	if (unlink(s->index_path) != 0 && errno != ENOENT)
		return -errno;
	say(report, arg, "stream log %s: removed: it holds no valid frame and the previous segment "
	    "ends at position %" PRIu64 ", not at its base", s->log_path, end);
	return 0;
}

static void total_bytes(const struct log_segment *list, size_t n, struct log_recovery *out)
{
	struct stat st;
	size_t i;

	out->bytes = 0;
	for (i = 0; i < n; i++)
		if (stat(list[i].log_path, &st) == 0)
			out->bytes += (uint64_t)st.st_size;
}

/*
 * Walk back from the last segment while a segment holds no valid frame: its
 * end is then the end of the one before, which is scanned too. A segment
 * with nothing in it stays if it starts exactly where the log ends (the
 * writer goes on in it), else it is removed.
 */
static int recover_end(const char *dir, struct log_segment *list, size_t *n,
		       struct log_recovery *out, report_fn report, void *arg)
{
	struct tail t, later = { 0 };
	size_t i = *n - 1;
	int rc, have_later = 0;

	(void)dir;
	for (;;) {
		rc = recover_segment(&list[i], &t, out, report, arg);
		if (rc)
			return rc;
		if (have_later && t.end_position == list[i + 1].base_position &&
		    t.next_seq == list[i + 1].first_seq) {
			t = later; /* the empty segment continues the log */
			break;
		}
		if (have_later) {
			rc = drop_segment(&list[i + 1], t.end_position, report, arg);
			if (rc)
				return rc;
			*n = i + 1;
		}
		if (t.any_valid || i == 0)
			break;
		later = t;
		have_later = 1;
		i--;
	}
	out->end_position = t.end_position;
	out->next_seq = t.next_seq;
	out->last_time_ns = t.last_time_ns;
	return 0;
}

int log_recover(const char *dir, struct log_recovery *out,
		void (*report)(void *arg, const char *message), void *arg)
{
	struct log_segment *list;
	size_t n;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = log_segments_list(dir, &list, &n, report, arg);
	if (rc == -ENOENT || (rc == 0 && n == 0)) {
		if (rc == 0)
			free(list);
		out->empty = 1;
		return 0;
	}
	if (rc)
		return rc;
	out->first_position = list[0].base_position;
	out->first_seq = list[0].first_seq;
	/* Writes of a writer that died may still be landing (log.h). */
	rc = log_wait_for_writer(list[n - 1].log_path, WRITER_WAIT_MS);
	if (rc == -EBUSY)
		say(report, arg, "%s: its last writer still holds it after %u s (I/O stuck?)",
		    list[n - 1].log_path, WRITER_WAIT_MS / 1000);
	if (!rc)
		rc = recover_end(dir, list, &n, out, report, arg);
	if (!rc)
		total_bytes(list, n, out);
	free(list);
	return rc;
}

/* ------------------------------------------------------------ verify */

struct verify {
	void (*report)(void *arg, const struct log_problem *problem);
	void *arg;
	int problems;
};

static void problem(struct verify *vf, const char *segment, uint64_t offset, uint64_t position,
		    uint64_t seq, const char *what)
{
	struct log_problem p = { segment, offset, position, seq, what };

	vf->problems++;
	if (vf->report)
		vf->report(vf->arg, &p);
}

/* A segment that log_segments_list() skipped (bad header) is a problem too. */
static void listing_problem(void *arg, const char *message)
{
	problem(arg, "", 0, 0, 0, message);
}

/* A segment's index, checked entry by entry as verify walks the frames. */
struct index_check {
	struct verify *vf;
	const char *path;
	struct log_index_entry *entries; /* the usable ones, in order */
	size_t *raw;                     /* their numbers in the file */
	size_t count, next;              /* entries; the first not yet matched */
};

static void index_problem(struct index_check *ic, size_t number, const struct log_index_entry *e,
			  const char *what)
{
	problem(ic->vf, ic->path, number * sizeof(*e), e ? e->position : 0, e ? e->seq : 0, what);
}

/*
 * Load @s's index and report the entries that cannot be used (damaged, or
 * out of order). A missing index is no problem: seeks then scan from the
 * segment's start.
 */
static int index_check_open(struct index_check *ic, struct verify *vf, const struct log_segment *s,
			    uint64_t data_end)
{
	size_t number = 0, total, i;
	struct stat st;
	int rc;

	*ic = (struct index_check){ .vf = vf, .path = s->index_path };
	if (stat(s->index_path, &st) != 0)
		return errno == ENOENT ? 0 : -errno;
	rc = log_index_load(s, data_end, &ic->entries, &ic->raw, &ic->count);
	if (rc < 0)
		return rc;
	total = (size_t)st.st_size / sizeof(struct log_index_entry);
	for (i = 0; i <= ic->count; i++, number++)
		for (; number < (i < ic->count ? ic->raw[i] : total); number++)
			index_problem(ic, number, NULL, "index entry damaged or out of order");
	return 0;
}

/* The walk reached the frame at @position, expected to hold @seq; @time_ns
 * is its time if it is a valid record, else 0. */
static void index_check_frame(struct index_check *ic, uint64_t position, uint64_t seq,
			      uint64_t time_ns)
{
	const struct log_index_entry *e;

	for (; ic->next < ic->count && ic->entries[ic->next].position <= position; ic->next++) {
		e = &ic->entries[ic->next];
		if (e->position < position)
			index_problem(ic, ic->raw[ic->next], e, "index entry points inside a frame");
		else if (e->seq != seq || (time_ns && e->time_ns != time_ns))
			index_problem(ic, ic->raw[ic->next], e,
				      "index entry's seq or time differs from its frame's");
	}
}

/* The walk ended at @end: the entries left point inside its last frame or
 * past the segment's frames. */
static void index_check_close(struct index_check *ic, uint64_t end)
{
	for (; ic->next < ic->count; ic->next++)
		index_problem(ic, ic->raw[ic->next], &ic->entries[ic->next],
			      ic->entries[ic->next].position < end ?
				      "index entry points inside a frame" :
				      "index entry points past the segment's frames");
	free(ic->entries);
	free(ic->raw);
}

/*
 * Check every frame of segment @s from its base with @seq expected first.
 * Sets *end / *next_seq to where its valid frames end; *torn if it ends in
 * bytes that are not frames.
 */
static int verify_segment(struct verify *vf, const struct log_segment *s, uint64_t *end,
			  uint64_t *next_seq, int *torn)
{
	const struct frame_header *frame;
	struct log_segment_view v = { 0 };
	uint64_t p = s->base_position, seq = s->first_seq, len, next, q, found;
	struct index_check ic;
	const char *why;
	int rc = 0;

	*torn = 0;
	v.fd = open(s->log_path, O_RDONLY | O_CLOEXEC);
	if (v.fd < 0)
		return -errno;
	v.base_position = s->base_position;
	v.data_end = s->base_position + (s->file_size - LOG_HEADER_SIZE);
	v.max_frame = max_frame_len(s->max_record);
	v.readahead = VERIFY_READ_AHEAD;
	rc = index_check_open(&ic, vf, s, v.data_end);
	if (rc < 0) {
		close(v.fd);
		return rc;
	}
	while (p < v.data_end) {
		rc = log_frame_load(&v, p, seq, &frame, &len, &next, &why);
		index_check_frame(&ic, p, seq,
				  rc == 1 && frame->tag == frame_tag(p, FRAME_COMMITTED) ? frame->time_ns : 0);
		if (rc == 1) {
			p += len;
			seq = next;
			continue;
		}
		if (rc < 0 && rc != AGENTBUS_E_CORRUPT)
			break;
		problem(vf, s->log_path, LOG_HEADER_SIZE + (p - s->base_position), p, seq,
			why ? why : "incomplete frame: the segment ends inside it");
		rc = log_frame_find(&v, p + FRAME_ALIGN, seq, &q, &found);
		if (rc < 0)
			break;
		if (rc == 0) {
			*torn = 1;
			break;
		}
		p = q;
		seq = found;
	}
	index_check_close(&ic, p);
	close(v.fd);
	log_view_free(&v);
	*end = p;
	*next_seq = seq;
	return rc < 0 ? rc : 0;
}

int log_verify(const char *dir, void (*report)(void *arg, const struct log_problem *problem),
	       void *arg)
{
	struct verify vf = { report, arg, 0 };
	struct log_segment *list;
	uint64_t end = 0, next_seq = 0;
	size_t n, i;
	int rc, torn = 0;

	rc = log_segments_list(dir, &list, &n, listing_problem, &vf);
	if (rc)
		return rc;
	for (i = 0; i < n && rc == 0; i++) {
		const struct log_segment *s = &list[i];

		if (i > 0 && !torn && s->base_position != end)
			problem(&vf, s->log_path, LOG_HEADER_SIZE, s->base_position, s->first_seq,
				s->base_position < end ? "segment begins before the previous one ends"
						       : "segment begins after a hole in the log");
		else if (i > 0 && !torn && s->first_seq != next_seq)
			problem(&vf, s->log_path, LOG_HEADER_SIZE, s->base_position, s->first_seq,
				"segment's first_seq does not follow the previous segment");
		rc = verify_segment(&vf, s, &end, &next_seq, &torn);
	}
	free(list);
	return rc < 0 ? rc : vf.problems;
}
