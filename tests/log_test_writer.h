/*
 * log_test_writer.h - a small writer of logs on disk for the log tests
 * (test_log.c, test_log_powerloss.c), independent of the spill writer: it
 * builds frames with the header fields and checksum of docs/log-format.md,
 * writes them with pwrite into segments made by log_segment_create(), and
 * adds an index entry for the first frame of a segment and then whenever
 * LOG_INDEX_EVERY bytes have passed. It remembers every frame it wrote, so
 * tests can check what a reader returns byte for byte.
 *
 * Record contents are a function of the sequence number (record_shape(),
 * record_byte()), so a check needs nothing but the seq.
 */
#ifndef AGENTBUS_TEST_LOG_WRITER_H
#define AGENTBUS_TEST_LOG_WRITER_H

#include <dirent.h>
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

#define TW_STREAM "logtest"
#define TW_T0 1700000000000000000ull /* time of seq 0; records are 1 us apart */

/* One frame the writer wrote. */
struct tw_frame {
	uint64_t position;      /* stream position */
	uint64_t seq;           /* its (first) sequence number */
	uint64_t len;           /* frame bytes */
	uint32_t count;         /* sequence numbers it holds: 1 for a record */
	int gap;                /* a gap frame */
	int segment;            /* which segment (0 = first) */
};

struct tw_segment {
	uint64_t base;          /* base position */
	uint64_t first_seq;
	uint64_t last_index_position; /* position of its last index entry */
};

struct tw {
	char dir[LOG_PATH_LEN];
	uint64_t max_record;    /* bytes, as in the segment header */
	uint64_t segment_size;  /* roll to a new segment beyond this many bytes of frames */
	int log_fd, index_fd;   /* current segment, -1 before the first */
	uint64_t position, seq; /* where the next frame goes */
	uint64_t base;          /* base of the current segment */
	uint64_t last_indexed;  /* position of the last index entry */
	int indexed;            /* the current segment has an entry */
	struct tw_frame *frames;
	size_t count, cap;
	struct tw_segment segments[1024];
	int segment_count;
	unsigned char *scratch; /* a frame being built */
};

static __attribute__((unused)) uint64_t tw_hash(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

/* Subject, key and payload lengths of record @seq, below @max_payload. */
static void record_shape(uint64_t seq, uint32_t max_payload, uint16_t *subject_len,
			 uint16_t *key_len, uint32_t *payload_len)
{
	uint64_t h = tw_hash(seq);

	*subject_len = (uint16_t)(1 + h % 40);
	*key_len = (uint16_t)((h >> 8) % 3 == 0 ? 0 : (h >> 16) % 20);
	*payload_len = max_payload ? (uint32_t)((h >> 24) % (max_payload + 1)) : 0;
}

static unsigned char record_byte(uint64_t seq, size_t i)
{
	return (unsigned char)(seq * 131 + i * 7 + (i >> 8));
}

static uint64_t record_time(uint64_t seq)
{
	return TW_T0 + seq * 1000;
}

static void tw_die(const char *what, int err)
{
	fprintf(stderr, "FAIL: test writer: %s: %s\n", what, agentbus_strerror(err));
	exit(1);
}

static void tw_pwrite(int fd, const void *buf, size_t len, uint64_t offset)
{
	if (pwrite(fd, buf, len, (off_t)offset) != (ssize_t)len)
		tw_die("pwrite", -errno);
}

static void tw_init(struct tw *w, const char *dir, uint64_t max_record, uint64_t segment_size,
		    uint64_t first_position, uint64_t first_seq)
{
	memset(w, 0, sizeof(*w));
	snprintf(w->dir, sizeof(w->dir), "%s", dir);
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		tw_die("mkdir", -errno);
	w->max_record = max_record;
	w->segment_size = segment_size;
	w->log_fd = w->index_fd = -1;
	w->position = first_position;
	w->seq = first_seq;
	w->scratch = calloc(1, max_frame_len(max_record));
	if (!w->scratch)
		tw_die("calloc", -ENOMEM);
}

static void tw_close_segment(struct tw *w)
{
	if (w->log_fd >= 0) {
		close(w->log_fd);
		close(w->index_fd);
	}
	w->log_fd = w->index_fd = -1;
}

/* Start a new segment at the current position. */
static void tw_roll(struct tw *w)
{
	int err;

	tw_close_segment(w);
	err = log_segment_create(w->dir, TW_STREAM, w->position, w->seq, w->max_record,
				 &w->log_fd, &w->index_fd);
	if (err)
		tw_die("log_segment_create", err);
	w->base = w->position;
	w->indexed = 0;
	w->segments[w->segment_count].base = w->position;
	w->segments[w->segment_count].first_seq = w->seq;
	w->segment_count++;
}

/* Index the frame about to be written at w->position if it is due. */
static void tw_index(struct tw *w, uint64_t time_ns)
{
	struct log_index_entry e;
	struct stat st;

	if (w->indexed && w->position - w->last_indexed < LOG_INDEX_EVERY)
		return;
	e.seq = w->seq;
	e.position = w->position;
	e.time_ns = time_ns;
	log_index_entry_seal(&e);
	if (fstat(w->index_fd, &st) != 0)
		tw_die("fstat", -errno);
	tw_pwrite(w->index_fd, &e, sizeof(e), (uint64_t)st.st_size);
	w->last_indexed = w->position;
	w->indexed = 1;
	w->segments[w->segment_count - 1].last_index_position = w->position;
}

static void tw_remember(struct tw *w, uint64_t len, uint32_t count, int gap)
{
	struct tw_frame *f;

	if (w->count == w->cap) {
		w->cap = w->cap ? 2 * w->cap : 1024;
		w->frames = realloc(w->frames, w->cap * sizeof(*w->frames));
		if (!w->frames)
			tw_die("realloc", -ENOMEM);
	}
	f = &w->frames[w->count++];
	f->position = w->position;
	f->seq = w->seq;
	f->len = len;
	f->count = count;
	f->gap = gap;
	f->segment = w->segment_count - 1;
}

static void tw_before_frame(struct tw *w)
{
	if (w->log_fd < 0 || w->position - w->base >= w->segment_size)
		tw_roll(w);
}

/* Append record w->seq with contents of record_shape(seq, max_payload). */
static void tw_record(struct tw *w, uint32_t max_payload)
{
	struct frame_header *h = (struct frame_header *)w->scratch;
	uint16_t subject_len, key_len;
	uint32_t payload_len;
	uint64_t len, body, i;

	tw_before_frame(w);
	record_shape(w->seq, max_payload, &subject_len, &key_len, &payload_len);
	body = (uint64_t)subject_len + key_len + payload_len;
	len = align_frame(sizeof(*h) + body);
	if (len > max_frame_len(w->max_record))
		tw_die("record too large for max_record", -EINVAL);
	memset(w->scratch, 0, len);
	h->tag = frame_tag(w->position, FRAME_COMMITTED);
	h->owner = 7;
	h->seq = w->seq;
	h->time_ns = record_time(w->seq);
	h->frame_len = (uint32_t)len;
	h->payload_len = payload_len;
	h->key_len = key_len;
	h->subject_len = subject_len;
	for (i = 0; i < body; i++)
		w->scratch[sizeof(*h) + i] = record_byte(w->seq, i);
	h->checksum = frame_checksum(h, w->position, frame_body_len(h));
	tw_index(w, h->time_ns);
	tw_pwrite(w->log_fd, w->scratch, len, LOG_HEADER_SIZE + (w->position - w->base));
	tw_remember(w, len, 1, 0);
	w->position += len;
	w->seq++;
}

/* Append a gap of @count sequence numbers, @len bytes (a multiple of 64). */
static void tw_gap(struct tw *w, uint32_t count, uint32_t len)
{
	struct frame_header *h = (struct frame_header *)w->scratch;

	tw_before_frame(w);
	memset(w->scratch, 0xee, len);
	memset(h, 0, sizeof(*h));
	h->tag = frame_tag(w->position, FRAME_GAP);
	h->gap_first_seq = w->seq;
	h->gap_frame_len = len;
	h->gap_seq_count = count;
	tw_index(w, record_time(w->seq - 1));
	tw_pwrite(w->log_fd, w->scratch, len, LOG_HEADER_SIZE + (w->position - w->base));
	tw_remember(w, len, count, 1);
	w->position += len;
	w->seq += count;
}

static void tw_finish(struct tw *w)
{
	tw_close_segment(w);
	free(w->scratch);
	w->scratch = NULL;
}

/* Frame index holding @seq (record, or gap covering it); w->count if none. */
static __attribute__((unused)) size_t tw_find_seq(const struct tw *w, uint64_t seq)
{
	size_t lo = 0, hi = w->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (w->frames[mid].seq + w->frames[mid].count <= seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Frame index at @position; w->count if it is the end, (size_t)-1 if none. */
static __attribute__((unused)) size_t tw_find_position(const struct tw *w, uint64_t position)
{
	size_t lo = 0, hi = w->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (w->frames[mid].position < position)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < w->count && w->frames[lo].position != position)
		return (size_t)-1;
	if (lo == w->count && position != w->position)
		return (size_t)-1;
	return lo;
}

/*
 * Does @h, returned at @position, hold exactly what the writer wrote there?
 * Returns NULL or what differs.
 */
static const char *tw_check_frame(const struct tw *w, const struct frame_header *h,
				  uint64_t position)
{
	size_t k = tw_find_position(w, position), i;
	const struct tw_frame *f;
	const unsigned char *body = (const unsigned char *)(h + 1);
	uint16_t subject_len, key_len;
	uint32_t payload_len;
	uint64_t n;

	if (k == (size_t)-1 || k == w->count)
		return "a frame at a position where none was written";
	f = &w->frames[k];
	if (f->gap)
		return (h->tag & FRAME_STATE_MASK) == FRAME_GAP && h->gap_first_seq == f->seq &&
		       h->gap_seq_count == f->count && h->gap_frame_len == f->len ?
		       NULL : "gap differs";
	if (h->tag != frame_tag(position, FRAME_COMMITTED) || h->seq != f->seq ||
	    h->frame_len != f->len || h->time_ns != record_time(f->seq))
		return "record header differs";
	record_shape(f->seq, 0, &subject_len, &key_len, &payload_len);
	if (h->subject_len != subject_len || h->key_len != key_len)
		return "record lengths differ";
	n = frame_body_len(h);
	for (i = 0; i < n; i++)
		if (body[i] != record_byte(f->seq, i))
			return "record body differs";
	return NULL;
}

/* ------------------------------------------------------------ temporary directories */

static int tw_copy_file(const char *from, const char *to)
{
	char buf[1 << 16];
	int in = open(from, O_RDONLY | O_CLOEXEC), out;
	ssize_t n;

	if (in < 0)
		return -errno;
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out < 0) {
		close(in);
		return -errno;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n) {
			n = -1;
			break;
		}
	close(in);
	close(out);
	return n < 0 ? -EIO : 0;
}

/* Remove every file in @dir, then @dir (no subdirectories in a log). */
static void tw_remove_dir(const char *dir)
{
	char path[LOG_PATH_LEN + 300];
	struct dirent *e;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((e = readdir(d)) != NULL) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

/* Copy the log in @from to @to (made afresh). */
static void tw_copy_dir(const char *from, const char *to)
{
	char src[LOG_PATH_LEN + 300], dst[LOG_PATH_LEN + 300];
	struct dirent *e;
	DIR *d;

	tw_remove_dir(to);
	if (mkdir(to, 0700) != 0)
		tw_die("mkdir copy", -errno);
	d = opendir(from);
	if (!d)
		tw_die("opendir", -errno);
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(src, sizeof(src), "%s/%s", from, e->d_name);
		snprintf(dst, sizeof(dst), "%s/%s", to, e->d_name);
		if (tw_copy_file(src, dst) != 0)
			tw_die("copy", -EIO);
	}
	closedir(d);
}

#endif
