/*
 * test_log.c - the log on disk without a daemon: a log written by the test
 * writer (several segments, gaps, an index) read back by the reader, seek
 * by sequence number and by time, the reader's end position, a corrupt
 * record reported and skipped, verify, retention and recovery (which waits
 * for the writer's lock, so that a dead writer's last write lands first).
 *
 * Every destructive case works on a copy of the log in the test's own
 * mkdtemp directory, which is removed at the end.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "log_test_writer.h"

#define MAX_RECORD 8192u
#define SEGMENT_SIZE (64u << 10)
#define FIRST_POSITION 6400u /* the log does not start at 0 ... */
#define FIRST_SEQ 100u       /* ... nor at seq 1 */

static char root[256];
static int failures;

#define CHECK(cond, ...)                                                           \
	do {                                                                       \
		if (!(cond)) {                                                     \
			fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                              \
			fputc('\n', stderr);                                       \
			failures++;                                                \
		}                                                                  \
	} while (0)

/* Collected report() messages. */
static char reports[64][LOG_PATH_LEN + 600];
static int report_count;

static void collect(void *arg, const char *message)
{
	(void)arg;
	if (report_count < 64)
		snprintf(reports[report_count++], sizeof(reports[0]), "%s", message);
}

static int reported(const char *needle)
{
	int i;

	for (i = 0; i < report_count; i++)
		if (strstr(reports[i], needle))
			return 1;
	return 0;
}

static struct log_problem problems[64];
static char problem_what[64][LOG_PATH_LEN];
static int problem_count;

static void collect_problem(void *arg, const struct log_problem *p)
{
	(void)arg;
	if (problem_count < 64) {
		problems[problem_count] = *p;
		snprintf(problem_what[problem_count], sizeof(problem_what[0]), "%s", p->what);
		problems[problem_count].what = problem_what[problem_count];
		problems[problem_count].segment = NULL;
	}
	problem_count++;
}

static void path_in(char *out, const char *name)
{
	snprintf(out, LOG_PATH_LEN, "%s/%s", root, name);
}

/* The log every case starts from: ~2000 records in several segments. */
static void build(struct tw *w, const char *dir)
{
	int i;

	tw_init(w, dir, MAX_RECORD, SEGMENT_SIZE, FIRST_POSITION, FIRST_SEQ);
	for (i = 0; i < 2000; i++) {
		if (i % 97 == 50)
			tw_gap(w, 1 + i % 3, 64 * (1 + i % 2));
		tw_record(w, i % 13 == 0 ? 6000 : 1200);
	}
	/* A few small records after the last index entry, for recovery. */
	for (i = 0; i < 3 || w->frames[w->count - 3].position <= w->last_indexed; i++)
		tw_record(w, 0);
	tw_finish(w);
}

/* Read from where the reader is, checking each frame against frame @first
 * on, until the reader returns anything but a frame (*rc). Returns the count. */
static size_t read_frames(struct log_reader *r, const struct tw *w, size_t first, int *rc)
{
	const struct frame_header *h;
	uint64_t position;
	size_t k = first;
	const char *bad;

	while ((*rc = log_reader_next(r, &h, &position)) == 1) {
		CHECK(k < w->count, "more frames than written");
		if (k >= w->count)
			break;
		CHECK(position == w->frames[k].position, "frame %zu at %" PRIu64 ", expected %" PRIu64,
		      k, position, w->frames[k].position);
		bad = tw_check_frame(w, h, position);
		CHECK(!bad, "frame %zu: %s", k, bad ? bad : "");
		k++;
	}
	return k - first;
}

/* Read everything from where the reader is; it must end cleanly. */
static size_t read_all(struct log_reader *r, const struct tw *w, size_t first)
{
	size_t n;
	int rc;

	n = read_frames(r, w, first, &rc);
	CHECK(rc == 0, "reader ended with %s: %s", agentbus_strerror(rc), log_reader_error(r));
	return n;
}

static void test_round_trip(const struct tw *w, const char *dir)
{
	struct log_reader *r;
	uint64_t seq, position;

	CHECK(log_reader_open(&r, dir, UINT64_MAX) == 0, "open");
	CHECK(read_all(r, w, 0) == w->count, "not every frame read back");
	log_reader_where(r, &seq, &position);
	CHECK(seq == w->seq && position == w->position, "reader ends at seq %" PRIu64, seq);
	log_reader_close(r);
}

/* After seek_seq(seq), the next frame is the one holding seq. */
static void check_seek_seq(struct log_reader *r, const struct tw *w, uint64_t seq)
{
	const struct frame_header *h;
	uint64_t position;
	size_t k = tw_find_seq(w, seq);
	int rc = log_reader_seek_seq(r, seq);

	CHECK(rc == 0, "seek_seq(%" PRIu64 "): %s", seq, agentbus_strerror(rc));
	rc = log_reader_next(r, &h, &position);
	if (k == w->count) {
		CHECK(rc == 0, "seek past the end, then a frame");
		return;
	}
	CHECK(rc == 1 && position == w->frames[k].position,
	      "seek_seq(%" PRIu64 "): rc %d, frame at %" PRIu64 " not %" PRIu64, seq, rc,
	      rc == 1 ? position : 0, w->frames[k].position);
}

static void test_seek_seq(const struct tw *w, const char *dir)
{
	const struct frame_header *h;
	struct log_reader *r;
	uint64_t position;
	size_t k;
	int i;

	CHECK(log_reader_open(&r, dir, UINT64_MAX) == 0, "open");
	check_seek_seq(r, w, FIRST_SEQ);
	check_seek_seq(r, w, FIRST_SEQ + 1000);
	check_seek_seq(r, w, w->seq - 1);
	check_seek_seq(r, w, w->seq);       /* the next one to be written */
	check_seek_seq(r, w, w->seq + 100); /* beyond the end */
	for (i = 1; i < w->segment_count; i++) {
		check_seek_seq(r, w, w->segments[i].first_seq);
		check_seek_seq(r, w, w->segments[i].first_seq - 1);
	}
	for (k = 0; k < w->count; k++)
		if (w->frames[k].gap && w->frames[k].count > 1)
			break;
	CHECK(k < w->count, "no gap of several seqs written");
	check_seek_seq(r, w, w->frames[k].seq + 1); /* inside a gap */
	for (i = 0; i < 200; i++)
		check_seek_seq(r, w, FIRST_SEQ + tw_hash((uint64_t)i) % (w->seq - FIRST_SEQ));

	CHECK(log_reader_seek_seq(r, FIRST_SEQ - 1) == AGENTBUS_E_SEQ_GONE, "before the first");
	CHECK(log_reader_next(r, &h, &position) == 1 && position == FIRST_POSITION,
	      "after SEQ_GONE the reader is not at the first frame");
	/* After a seek, reading on returns every later frame. */
	CHECK(log_reader_seek_seq(r, FIRST_SEQ + 777) == 0, "seek");
	k = tw_find_seq(w, FIRST_SEQ + 777);
	CHECK(read_all(r, w, k) == w->count - k, "reading on after a seek");
	log_reader_close(r);
}

/* The first record at or after t (times are monotone here). */
static size_t first_at_time(const struct tw *w, uint64_t t)
{
	size_t k;

	for (k = 0; k < w->count; k++)
		if (!w->frames[k].gap && record_time(w->frames[k].seq) >= t)
			return k;
	return w->count;
}

static void test_seek_time(const struct tw *w, const char *dir)
{
	const struct frame_header *h;
	struct log_reader *r;
	uint64_t position, t;
	size_t k;
	int i, rc;

	CHECK(log_reader_open(&r, dir, UINT64_MAX) == 0, "open");
	for (i = 0; i < 300; i++) {
		if (i == 0)
			t = 0;
		else if (i == 1)
			t = UINT64_MAX;
		else if (i < 2 + w->segment_count)
			t = record_time(w->segments[i - 2].first_seq);
		else
			t = record_time(FIRST_SEQ) - 5000 + tw_hash((uint64_t)i) % ((w->seq - FIRST_SEQ + 10) * 1000);
		k = first_at_time(w, t);
		rc = log_reader_seek_time(r, t);
		CHECK(rc == 0, "seek_time: %s", agentbus_strerror(rc));
		rc = log_reader_next(r, &h, &position);
		if (k == w->count) {
			CHECK(rc == 0, "seek_time past the end, then a frame");
			continue;
		}
		CHECK(rc == 1 && position == w->frames[k].position,
		      "seek_time(%" PRIu64 "): frame at %" PRIu64 ", expected %" PRIu64, t,
		      rc == 1 ? position : 0, w->frames[k].position);
	}
	log_reader_close(r);
}

static void test_end_position(const struct tw *w, const char *dir)
{
	const struct frame_header *h;
	struct log_reader *r;
	uint64_t position;
	size_t k = w->count / 2;

	/* Exactly the frames before the end position, then more once it moves. */
	CHECK(log_reader_open(&r, dir, w->frames[k].position) == 0, "open");
	CHECK(read_all(r, w, 0) == k, "frames before the end position");
	CHECK(log_reader_next(r, &h, &position) == 0, "still at the end");
	/* An end inside a frame: not that frame. */
	log_reader_set_end(r, w->frames[k + 5].position + 64);
	CHECK(read_all(r, w, k) == 5, "frames up to an end inside a frame");
	log_reader_set_end(r, UINT64_MAX);
	CHECK(read_all(r, w, k + 5) == w->count - k - 5, "the rest");
	log_reader_close(r);
}

static void flip_byte(const char *path, uint64_t offset)
{
	unsigned char c;
	int fd = open(path, O_RDWR);

	if (fd < 0 || pread(fd, &c, 1, (off_t)offset) != 1)
		tw_die("flip", -errno);
	c ^= 0x5a;
	tw_pwrite(fd, &c, 1, offset);
	close(fd);
}

static void segment_path(const struct tw *w, const char *dir, int segment, char *log_path)
{
	char index_path[LOG_PATH_LEN];

	log_segment_paths(dir, w->segments[segment].base, log_path, index_path);
}

/* File offset of byte @delta of frame @k. */
static uint64_t frame_offset(const struct tw *w, size_t k, uint64_t delta)
{
	return LOG_HEADER_SIZE + w->frames[k].position - w->segments[w->frames[k].segment].base +
	       delta;
}

/* A record in the middle of segment @segment. */
static size_t record_in(const struct tw *w, int segment)
{
	size_t k, first = w->count, last = 0;

	for (k = 0; k < w->count; k++)
		if (w->frames[k].segment == segment) {
			if (first == w->count)
				first = k;
			last = k;
		}
	for (k = (first + last) / 2; w->frames[k].gap; k++)
		;
	return k;
}

static void test_corrupt_record(const struct tw *w, const char *dir)
{
	char copy[LOG_PATH_LEN], log_path[LOG_PATH_LEN], needle[64];
	struct log_reader *r;
	size_t k = record_in(w, 1);
	int rc, i;

	path_in(copy, "corrupt");
	tw_copy_dir(dir, copy);
	segment_path(w, copy, 1, log_path);
	flip_byte(log_path, frame_offset(w, k, 64 + 3)); /* in the subject */

	CHECK(log_reader_open(&r, copy, UINT64_MAX) == 0, "open");
	CHECK(read_frames(r, w, 0, &rc) == k, "frames before the corrupt one");
	CHECK(rc == AGENTBUS_E_CORRUPT, "corrupt record: %s", agentbus_strerror(rc));
	snprintf(needle, sizeof(needle), "seq %" PRIu64 " ", w->frames[k].seq);
	CHECK(strstr(log_reader_error(r), needle) && strstr(log_reader_error(r), log_path),
	      "error does not name seq %" PRIu64 " and its segment: %s", w->frames[k].seq,
	      log_reader_error(r));
	/* The caller may go on: the next call is the record after it. */
	CHECK(read_all(r, w, k + 1) == w->count - k - 1, "frames after the corrupt one");
	/* A seek onto it reports it too. */
	rc = log_reader_seek_seq(r, w->frames[k].seq);
	CHECK(rc == AGENTBUS_E_CORRUPT, "seek onto the corrupt record: %s", agentbus_strerror(rc));
	CHECK(read_all(r, w, k + 1) == w->count - k - 1, "frames after it, after the seek");
	/* A seek past it steps over it (when the scan from the index crosses it). */
	for (i = 1; i < 4; i++)
		check_seek_seq(r, w, w->frames[k + (size_t)i].seq);
	log_reader_close(r);
	tw_remove_dir(copy);
}

/* Verify a copy of the log damaged by @damage; returns the problem count. */
static int verify_damaged(const struct tw *w, const char *dir,
			  void (*damage)(const struct tw *, const char *))
{
	char copy[LOG_PATH_LEN];
	int n;

	path_in(copy, "verify");
	tw_copy_dir(dir, copy);
	damage(w, copy);
	problem_count = 0;
	n = log_verify(copy, collect_problem, NULL);
	CHECK(n == problem_count, "verify returned %d, reported %d", n, problem_count);
	tw_remove_dir(copy);
	return n;
}

static int has_problem_at_seq(uint64_t seq)
{
	int i;

	for (i = 0; i < problem_count && i < 64; i++)
		if (problems[i].seq == seq)
			return 1;
	return 0;
}

static void damage_payload(const struct tw *w, const char *dir)
{
	char path[LOG_PATH_LEN];
	size_t k = record_in(w, 2);

	segment_path(w, dir, 2, path);
	flip_byte(path, frame_offset(w, k, w->frames[k].len - 1 > 64 ? 70 : 40));
}

static void damage_tag(const struct tw *w, const char *dir)
{
	char path[LOG_PATH_LEN];
	size_t k = record_in(w, 0);

	segment_path(w, dir, 0, path);
	flip_byte(path, frame_offset(w, k, 1));
}

static void damage_hole(const struct tw *w, const char *dir)
{
	char path[LOG_PATH_LEN];

	segment_path(w, dir, 1, path);
	if (truncate(path, (off_t)(frame_offset(w, record_in(w, 1), 0) + 10)) != 0)
		tw_die("truncate", -errno);
}

static void damage_header(const struct tw *w, const char *dir)
{
	char path[LOG_PATH_LEN];

	segment_path(w, dir, 1, path);
	flip_byte(path, 30); /* first_seq */
}

/* Entry @n of segment @segment's index: read, changed by @change, sealed
 * again (so only verify's cross-check with the frames can tell). */
static void rewrite_index_entry(const struct tw *w, const char *dir, int segment, size_t n,
				void (*change)(const struct tw *, struct log_index_entry *))
{
	char log_path[LOG_PATH_LEN], index_path[LOG_PATH_LEN];
	struct log_index_entry e;
	int fd;

	log_segment_paths(dir, w->segments[segment].base, log_path, index_path);
	fd = open(index_path, O_RDWR);
	if (fd < 0 || pread(fd, &e, sizeof(e), (off_t)(n * sizeof(e))) != (ssize_t)sizeof(e))
		tw_die("index entry", -errno);
	change(w, &e);
	log_index_entry_seal(&e);
	tw_pwrite(fd, &e, sizeof(e), n * sizeof(e));
	close(fd);
}

static void next_seq(const struct tw *w, struct log_index_entry *e)
{
	(void)w;
	e->seq++;
}

/* Into the frame it names, if that frame is longer than one line. */
static void into_frame(const struct tw *w, struct log_index_entry *e)
{
	for (size_t k = 0; k < w->count; k++)
		if (w->frames[k].position == e->position && w->frames[k].len > FRAME_ALIGN)
			e->position += FRAME_ALIGN;
}

static void damage_index_byte(const struct tw *w, const char *dir)
{
	char log_path[LOG_PATH_LEN], index_path[LOG_PATH_LEN];

	log_segment_paths(dir, w->segments[2].base, log_path, index_path);
	flip_byte(index_path, sizeof(struct log_index_entry) + 3); /* entry 1's seq */
}

static void damage_index_seq(const struct tw *w, const char *dir)
{
	rewrite_index_entry(w, dir, 2, 0, next_seq);
}

static void damage_index_position(const struct tw *w, const char *dir)
{
	rewrite_index_entry(w, dir, 2, 0, into_frame);
}

static void damage_none(const struct tw *w, const char *dir)
{
	(void)w;
	(void)dir;
}

static void test_verify(const struct tw *w, const char *dir)
{
	int n;

	n = verify_damaged(w, dir, damage_none);
	CHECK(n == 0, "clean log: %d problems", n);
	n = verify_damaged(w, dir, damage_payload);
	CHECK(n == 1 && has_problem_at_seq(w->frames[record_in(w, 2)].seq),
	      "payload flip: %d problems", n);
	n = verify_damaged(w, dir, damage_tag);
	CHECK(n == 1 && has_problem_at_seq(w->frames[record_in(w, 0)].seq),
	      "tag flip: %d problems", n);
	n = verify_damaged(w, dir, damage_hole);
	CHECK(n >= 1 && has_problem_at_seq(w->frames[record_in(w, 1)].seq),
	      "segment cut short: %d problems", n);
	n = verify_damaged(w, dir, damage_header);
	CHECK(n >= 1, "segment header: %d problems", n);
	n = verify_damaged(w, dir, damage_index_byte);
	CHECK(n == 1 && strstr(problems[0].what, "damaged"), "index byte flip: %d problems", n);
	n = verify_damaged(w, dir, damage_index_seq);
	CHECK(n == 1 && strstr(problems[0].what, "seq or time"), "index entry's seq: %d problems", n);
	n = verify_damaged(w, dir, damage_index_position);
	CHECK(n == 1 && strstr(problems[0].what, "inside a frame"),
	      "index entry inside a frame: %d problems", n);
}

/* Segments left in @dir. */
static int segments_in(const char *dir, uint64_t *first_base)
{
	struct log_segment *list;
	size_t n;

	if (log_segments_list(dir, &list, &n, NULL, NULL) != 0)
		return -1;
	if (n && first_base)
		*first_base = list[0].base_position;
	free(list);
	return (int)n;
}

static int retention(const struct tw *w, const char *dir, const struct log_retention_limits *l,
		     uint64_t now, int *left)
{
	char copy[LOG_PATH_LEN];
	const struct frame_header *h;
	struct log_reader *r;
	uint64_t base = 0, position;
	int n, i;

	path_in(copy, "retention");
	tw_copy_dir(dir, copy);
	n = log_apply_retention(copy, l, now);
	*left = segments_in(copy, &base);
	/* What is left reads from its new first segment; older seqs are gone. */
	for (i = 0; i < w->segment_count && w->segments[i].base != base; i++)
		;
	CHECK(i < w->segment_count, "retention left a log starting at %" PRIu64, base);
	if (i < w->segment_count && log_reader_open(&r, copy, UINT64_MAX) == 0) {
		CHECK(read_all(r, w, tw_find_position(w, base)) ==
		      w->count - tw_find_position(w, base), "reading what retention left");
		if (i > 0) {
			CHECK(log_reader_seek_seq(r, FIRST_SEQ) == AGENTBUS_E_SEQ_GONE,
			      "a deleted seq is not gone");
			CHECK(log_reader_next(r, &h, &position) == 1 && position == base,
			      "after SEQ_GONE, the new first frame");
		}
		log_reader_close(r);
	}
	tw_remove_dir(copy);
	return n;
}

static void test_retention(const struct tw *w, const char *dir)
{
	struct log_retention_limits l;
	uint64_t total = 0, size0;
	struct log_segment *list;
	size_t n, i;
	int deleted, left, all = w->segment_count;

	CHECK(all >= 5, "only %d segments", all);
	if (log_segments_list(dir, &list, &n, NULL, NULL) != 0)
		return;
	for (i = 0; i < n; i++)
		total += list[i].file_size;
	size0 = list[0].file_size;
	free(list);

	memset(&l, 0, sizeof(l));
	l.keep_from = UINT64_MAX;
	deleted = retention(w, dir, &l, 0, &left);
	CHECK(deleted == 0 && left == all, "no limits: %d deleted", deleted);

	l.max_bytes = total - size0;
	deleted = retention(w, dir, &l, 0, &left);
	CHECK(deleted == 1 && left == all - 1, "bytes: %d deleted", deleted);
	l.max_bytes = 1;
	deleted = retention(w, dir, &l, 0, &left);
	CHECK(deleted == all - 1 && left == 1, "bytes 1: %d deleted, never the last", deleted);

	memset(&l, 0, sizeof(l));
	l.keep_from = UINT64_MAX;
	l.max_records = w->seq - w->segments[2].first_seq;
	deleted = retention(w, dir, &l, 0, &left);
	CHECK(deleted == 2, "records: %d deleted", deleted);

	memset(&l, 0, sizeof(l));
	l.keep_from = UINT64_MAX;
	l.max_age_ns = 60ull * 1000000000u;
	deleted = retention(w, dir, &l, record_time(w->segments[3].first_seq) + l.max_age_ns + 1,
			    &left);
	CHECK(deleted == 3, "age: %d deleted", deleted);
	deleted = retention(w, dir, &l, record_time(FIRST_SEQ), &left);
	CHECK(deleted == 0, "age, all young: %d deleted", deleted);

	l.max_age_ns = 0;
	l.max_bytes = 1;
	l.keep_from = w->segments[2].base + 64;
	deleted = retention(w, dir, &l, 0, &left);
	CHECK(deleted == 2, "keep_from: %d deleted", deleted);
	l.keep_from = 0;
	deleted = retention(w, dir, &l, 0, &left);
	CHECK(deleted == 0, "keep_from 0: %d deleted", deleted);
}

static void check_recovered_end(const struct tw *w, const struct log_recovery *out, size_t k)
{
	uint64_t position = k < w->count ? w->frames[k].position : w->position;
	uint64_t seq = k < w->count ? w->frames[k].seq : w->seq;

	CHECK(out->end_position == position && out->next_seq == seq,
	      "recovered end %" PRIu64 "/seq %" PRIu64 ", expected %" PRIu64 "/%" PRIu64,
	      out->end_position, out->next_seq, position, seq);
	CHECK(out->first_position == FIRST_POSITION && out->first_seq == FIRST_SEQ && !out->empty,
	      "recovered start");
}

static void test_recover_clean(const struct tw *w, const char *dir)
{
	struct log_recovery out;
	char copy[LOG_PATH_LEN];
	int rc;

	path_in(copy, "recover");
	tw_copy_dir(dir, copy);
	report_count = 0;
	rc = log_recover(copy, &out, collect, NULL);
	CHECK(rc == 0, "recover: %s", agentbus_strerror(rc));
	check_recovered_end(w, &out, w->count);
	CHECK(out.truncated_bytes == 0 && out.corrupt_frames == 0 && report_count == 0,
	      "clean log: %" PRIu64 " cut, %" PRIu64 " corrupt, %d reports", out.truncated_bytes,
	      out.corrupt_frames, report_count);
	CHECK(out.last_time_ns == record_time(w->seq - 1), "last time");
	/* Only the tail: from the last index entry, not the log. */
	CHECK(out.scanned_bytes <= LOG_INDEX_EVERY + 2 * max_frame_len(MAX_RECORD),
	      "scanned %" PRIu64 " bytes of a %" PRIu64 "-byte log", out.scanned_bytes,
	      w->position - FIRST_POSITION);
	CHECK(verify_damaged(w, copy, damage_none) == 0, "verify after recovery");
	tw_remove_dir(copy);

	/* Empty or absent: empty. */
	path_in(copy, "absent");
	CHECK(log_recover(copy, &out, collect, NULL) == 0 && out.empty, "absent log");
	CHECK(mkdir(copy, 0700) == 0 && log_recover(copy, &out, collect, NULL) == 0 && out.empty,
	      "empty log");
	rmdir(copy);
}

static void test_recover_torn(const struct tw *w, const char *dir)
{
	char copy[LOG_PATH_LEN], path[LOG_PATH_LEN], needle[64];
	struct log_recovery out;
	struct log_reader *r;
	size_t k = w->count - 2;
	int last = w->segment_count - 1, fd;

	/* The last frame torn. */
	path_in(copy, "torn");
	tw_copy_dir(dir, copy);
	segment_path(w, copy, last, path);
	CHECK(truncate(path, (off_t)frame_offset(w, w->count - 1, 17)) == 0, "truncate");
	report_count = 0;
	CHECK(log_recover(copy, &out, collect, NULL) == 0, "recover");
	check_recovered_end(w, &out, w->count - 1);
	CHECK(out.truncated_bytes == 17, "cut %" PRIu64, out.truncated_bytes);
	snprintf(needle, sizeof(needle), "torn tail at seq %" PRIu64 " ", w->frames[w->count - 1].seq);
	CHECK(reported(needle), "torn tail not reported (%d reports)", report_count);
	CHECK(log_reader_open(&r, copy, UINT64_MAX) == 0, "open");
	CHECK(read_all(r, w, 0) == w->count - 1, "all but the torn one");
	log_reader_close(r);
	/* Then: a second recovery has nothing to do. */
	report_count = 0;
	CHECK(log_recover(copy, &out, collect, NULL) == 0 && out.truncated_bytes == 0 &&
	      report_count == 0, "second recovery");
	check_recovered_end(w, &out, w->count - 1);

	/* Garbage after the end, and a damaged record before it with nothing valid after. */
	tw_copy_dir(dir, copy);
	fd = open(path, O_RDWR);
	CHECK(fd >= 0, "open segment");
	tw_pwrite(fd, w->frames, 1000, frame_offset(w, w->count - 1, w->frames[w->count - 1].len));
	close(fd);
	flip_byte(path, frame_offset(w, k, 40)); /* seq of frame k */
	report_count = 0;
	CHECK(log_recover(copy, &out, collect, NULL) == 0, "recover");
	/* Frame k is bad and frame k+1 follows it intact: corruption in the middle. */
	check_recovered_end(w, &out, w->count);
	CHECK(out.corrupt_frames == 1 && out.truncated_bytes == 1000,
	      "%" PRIu64 " corrupt, %" PRIu64 " cut", out.corrupt_frames, out.truncated_bytes);
	snprintf(needle, sizeof(needle), "corrupt frame at seq %" PRIu64 " ", w->frames[k].seq);
	CHECK(reported(needle), "corrupt frame not reported");
	CHECK(verify_damaged(w, copy, damage_none) == 1, "verify sees the kept corruption");
	tw_remove_dir(copy);
}

/* The last segment holds no valid frame: the end is the previous one's. */
static void test_recover_empty_last(const struct tw *w, const char *dir)
{
	char copy[LOG_PATH_LEN], path[LOG_PATH_LEN];
	struct log_recovery out;
	struct log_reader *r;
	int log_fd, index_fd, last = w->segment_count - 1;
	size_t k;

	/* A segment created just before a crash: header only. */
	path_in(copy, "emptylast");
	tw_copy_dir(dir, copy);
	CHECK(log_segment_create(copy, TW_STREAM, w->position, w->seq, MAX_RECORD, &log_fd,
				 &index_fd) == 0, "create");
	close(log_fd);
	close(index_fd);
	CHECK(log_recover(copy, &out, collect, NULL) == 0, "recover");
	check_recovered_end(w, &out, w->count);
	CHECK(segments_in(copy, NULL) == w->segment_count + 1, "the empty segment stays");

	/* The last segment's first frame torn: the end is its base. */
	tw_copy_dir(dir, copy);
	segment_path(w, copy, last, path);
	for (k = 0; w->frames[k].segment != last; k++)
		;
	CHECK(truncate(path, (off_t)frame_offset(w, k, 5)) == 0, "truncate");
	report_count = 0;
	CHECK(log_recover(copy, &out, collect, NULL) == 0, "recover");
	check_recovered_end(w, &out, k);
	CHECK(out.truncated_bytes == 5 && segments_in(copy, NULL) == w->segment_count,
	      "torn first frame");
	CHECK(log_reader_open(&r, copy, UINT64_MAX) == 0, "open");
	CHECK(read_all(r, w, 0) == k, "all before the last segment");
	log_reader_close(r);

	/* The previous segment torn too: the last one (now empty, not at the end) goes. */
	tw_copy_dir(dir, copy);
	CHECK(truncate(path, LOG_HEADER_SIZE + 3) == 0, "truncate last");
	segment_path(w, copy, last - 1, path);
	CHECK(truncate(path, (off_t)frame_offset(w, k - 1, 70)) == 0, "truncate previous");
	report_count = 0;
	CHECK(log_recover(copy, &out, collect, NULL) == 0, "recover");
	check_recovered_end(w, &out, k - 1);
	CHECK(segments_in(copy, NULL) == w->segment_count - 1 && reported("removed"),
	      "the empty last segment is removed");
	CHECK(verify_damaged(w, copy, damage_none) == 0, "verify after recovery");
	tw_remove_dir(copy);
}

/*
 * A log of one segment whose gaps are followed by records: the first gap in
 * the middle, the second after the last index entry. Sets *gap1 / *gap2 to
 * their frame numbers.
 */
static void build_gaps(struct tw *w, const char *dir, size_t *gap1, size_t *gap2)
{
	int i;

	tw_init(w, dir, 2048, 1u << 20, 0, 1);
	for (i = 0; i < 100; i++)
		tw_record(w, 900);
	*gap1 = w->count;
	tw_gap(w, 1, 64);
	for (i = 0; i < 300; i++)
		tw_record(w, 900);
	*gap2 = w->count;
	tw_gap(w, 2, 128);
	for (i = 0; i < 4; i++)
		tw_record(w, 0);
	tw_finish(w);
}

/* Recover @dir, a copy of the log of build_gaps(): nothing is cut, and one
 * corrupt frame is reported, at seq @seq, with @what in its report. */
static void recover_keeps_all(const struct tw *w, const char *dir, uint64_t seq, const char *what)
{
	struct log_recovery out;
	char needle[64];

	report_count = 0;
	CHECK(log_recover(dir, &out, collect, NULL) == 0, "recover");
	CHECK(out.end_position == w->position && out.next_seq == w->seq,
	      "recovered end %" PRIu64 "/seq %" PRIu64 ", expected %" PRIu64 "/%" PRIu64,
	      out.end_position, out.next_seq, w->position, w->seq);
	CHECK(out.truncated_bytes == 0 && out.corrupt_frames == 1,
	      "%" PRIu64 " bytes cut, %" PRIu64 " corrupt", out.truncated_bytes, out.corrupt_frames);
	snprintf(needle, sizeof(needle), "corrupt frame at seq %" PRIu64 " ", seq);
	CHECK(reported(needle) && reported(what), "not reported: %s (%d reports: %s)", what,
	      report_count, report_count ? reports[0] : "");
}

/* Read @dir: every frame of @w but frame @bad (AGENTBUS_E_CORRUPT there). */
static void read_all_but(const struct tw *w, const char *dir, size_t bad, const char *what)
{
	struct log_reader *r;
	int rc;

	CHECK(log_reader_open(&r, dir, UINT64_MAX) == 0, "open");
	CHECK(read_frames(r, w, 0, &rc) == bad, "frames before the bad one");
	CHECK(rc == AGENTBUS_E_CORRUPT && strstr(log_reader_error(r), what),
	      "bad frame: %s: %s", agentbus_strerror(rc), log_reader_error(r));
	CHECK(read_all(r, w, bad + 1) == w->count - bad - 1, "frames after the bad one");
	check_seek_seq(r, w, w->frames[bad + 3].seq);
	log_reader_close(r);
}

/*
 * A gap's count has no checksum. One damaged bit in it must not renumber
 * the frames after it: recovery would cut them all as a torn tail, and
 * readers would lose the rest of the segment.
 */
static void test_gap_count(void)
{
	static const char disagrees[] = "gap whose count disagrees with the frame after it";
	char dir[LOG_PATH_LEN], copy[LOG_PATH_LEN], path[LOG_PATH_LEN], index_path[LOG_PATH_LEN];
	const struct frame_header *h;
	struct log_reader *r;
	size_t gap1, gap2, k;
	struct tw w;
	int rc;

	path_in(dir, "gaps");
	path_in(copy, "gapcopy");
	build_gaps(&w, dir, &gap1, &gap2);
	CHECK(w.frames[gap2].position > w.last_indexed, "the second gap is indexed");
	log_segment_paths(copy, 0, path, index_path);

	/* The first gap's count damaged (byte 30: bits 16-23 of it). */
	tw_copy_dir(dir, copy);
	flip_byte(path, LOG_HEADER_SIZE + w.frames[gap1].position + 30);
	read_all_but(&w, copy, gap1, disagrees);
	CHECK(verify_damaged(&w, copy, damage_none) == 1 && has_problem_at_seq(w.frames[gap1].seq),
	      "verify: %d problems", problem_count);
	/* Without an index, recovery scans across it. */
	CHECK(unlink(index_path) == 0, "unlink index");
	recover_keeps_all(&w, copy, w.frames[gap1].seq, disagrees);
	read_all_but(&w, copy, gap1, disagrees);

	/* The second gap's count damaged: it is in the tail recovery scans. */
	tw_copy_dir(dir, copy);
	flip_byte(path, LOG_HEADER_SIZE + w.frames[gap2].position + 30);
	recover_keeps_all(&w, copy, w.frames[gap2].seq, disagrees);
	read_all_but(&w, copy, gap2, disagrees);

	/* The first gap's count and the record after it damaged: the count
	 * cannot be checked, so the bad record's seq is taken as too big, and
	 * nothing after it has its seq. Recovery must still keep the rest. */
	tw_copy_dir(dir, copy);
	flip_byte(path, LOG_HEADER_SIZE + w.frames[gap1].position + 30);
	flip_byte(path, LOG_HEADER_SIZE + w.frames[gap1 + 1].position + 70);
	CHECK(unlink(index_path) == 0, "unlink index");
	recover_keeps_all(&w, copy, w.frames[gap1].seq + 1 + (0x5au << 16), "count is damaged");
	/* A reader gets the (damaged) gap, the bad record, then the rest. */
	CHECK(log_reader_open(&r, copy, UINT64_MAX) == 0, "open");
	for (k = 0; (rc = log_reader_next(r, &h, NULL)) == 1; k++)
		;
	CHECK(k == gap1 + 1 && rc == AGENTBUS_E_CORRUPT, "%zu frames, then %s", k,
	      agentbus_strerror(rc));
	CHECK(read_all(r, &w, gap1 + 2) == w.count - gap1 - 2, "frames after the bad record");
	log_reader_close(r);

	tw_remove_dir(copy);
	tw_remove_dir(dir);
	free(w.frames);
}

/* A reader follows a writer that appends and starts new segments while it
 * reads, and one whose segments retention deletes under it. */
static void test_follow(void)
{
	char dir[LOG_PATH_LEN];
	struct log_retention_limits l = { .max_bytes = 1, .keep_from = UINT64_MAX };
	const struct frame_header *h;
	struct log_reader *r, *late;
	uint64_t position;
	struct tw w;
	int i, rc;

	path_in(dir, "follow");
	tw_init(&w, dir, 2048, 16u << 10, 0, 1);
	for (i = 0; i < 100; i++)
		tw_record(&w, 1000);
	CHECK(log_reader_open(&r, dir, UINT64_MAX) == 0, "open");
	CHECK(log_reader_open(&late, dir, w.position) == 0, "open");
	CHECK(read_all(r, &w, 0) == 100, "first part");
	CHECK(read_all(late, &w, 0) == 100, "first part, end position");
	for (i = 0; i < 300; i++) {
		if (i % 50 == 7)
			tw_gap(&w, 2, 128);
		tw_record(&w, 1000);
	}
	CHECK(w.segment_count > 10, "only %d segments", w.segment_count);
	CHECK(read_all(r, &w, 100) == w.count - 100, "what the writer added, new segments included");
	CHECK(log_reader_next(late, &h, &position) == 0, "nothing past the end position");
	log_reader_set_end(late, w.position);
	CHECK(read_all(late, &w, 100) == w.count - 100, "the rest once the end moves");
	log_reader_close(late);

	/* Retention under readers: one that has not read yet finds its start
	 * gone; one reading the first segment finishes it (its file is open)
	 * and then finds the next one gone. */
	CHECK(log_reader_open(&late, dir, UINT64_MAX) == 0, "open");
	CHECK(log_reader_seek_seq(r, 1) == 0, "seek to the start");
	CHECK(log_apply_retention(dir, &l, 0) == w.segment_count - 1, "retention");
	rc = log_reader_next(late, &h, &position);
	CHECK(rc == AGENTBUS_E_SEQ_GONE, "deleted under the reader: %s", agentbus_strerror(rc));
	log_reader_close(late);
	for (i = 0; i < 1000 && (rc = log_reader_next(r, &h, &position)) == 1; i++)
		CHECK(w.frames[i].segment == 0, "frame %d of a deleted segment", i);
	CHECK(rc == AGENTBUS_E_SEQ_GONE, "deleted under the reader: %s", agentbus_strerror(rc));
	CHECK(w.frames[i].segment == 1, "stopped at frame %d, not at the first of segment 1", i);
	CHECK(log_reader_seek_seq(r, w.segments[w.segment_count - 1].first_seq) == 0, "seek");
	CHECK(read_all(r, &w, tw_find_seq(&w, w.segments[w.segment_count - 1].first_seq)) > 0,
	      "the last segment");
	log_reader_close(r);
	tw_finish(&w);
	free(w.frames);
	tw_remove_dir(dir);
}

struct recovery_run {
	const char *dir;
	struct log_recovery out;
	int rc;
	atomic_int done;
};

static void *recover_in_thread(void *arg)
{
	struct recovery_run *run = arg;

	run->rc = log_recover(run->dir, &run->out, collect, NULL);
	atomic_store(&run->done, 1);
	return NULL;
}

/*
 * A writer that died with a write in flight: io_uring holds its file open,
 * and with it the writer's lock, until the write lands. Recovery waits for
 * the lock, then finds the whole frame (without waiting it cut the frame as
 * torn, and the late write then landed past the log's new end).
 */
static void test_recover_waits_for_writer(const struct tw *w, const char *dir)
{
	char copy[LOG_PATH_LEN], path[LOG_PATH_LEN], original[LOG_PATH_LEN];
	struct recovery_run run = { .dir = NULL };
	uint64_t start = frame_offset(w, w->count - 1, 17), end;
	int last = w->segment_count - 1, fd, writer;
	unsigned char rest[MAX_RECORD + 64];
	pthread_t thread;

	path_in(copy, "late");
	tw_copy_dir(dir, copy);
	segment_path(w, copy, last, path);
	segment_path(w, dir, last, original);
	end = frame_offset(w, w->count - 1, w->frames[w->count - 1].len);
	CHECK(end - start <= sizeof(rest), "last frame too long for the test");
	fd = open(original, O_RDONLY);
	CHECK(fd >= 0 && pread(fd, rest, end - start, (off_t)start) == (ssize_t)(end - start),
	      "read the last frame");
	close(fd);
	CHECK(truncate(path, (off_t)start) == 0, "truncate");
	writer = open(path, O_RDWR);
	CHECK(writer >= 0 && log_writer_lock(writer) == 0, "the writer's lock");

	run.dir = copy;
	CHECK(pthread_create(&thread, NULL, recover_in_thread, &run) == 0, "thread");
	usleep(100000);
	CHECK(!atomic_load(&run.done), "recovery did not wait for the writer's lock");
	tw_pwrite(writer, rest, end - start, start); /* the write in flight lands */
	close(writer);
	pthread_join(thread, NULL);
	CHECK(run.rc == 0, "recover: %s", agentbus_strerror(run.rc));
	check_recovered_end(w, &run.out, w->count);
	CHECK(run.out.truncated_bytes == 0, "cut %" PRIu64 " bytes", run.out.truncated_bytes);
	tw_remove_dir(copy);
}

int main(void)
{
	char dir[LOG_PATH_LEN];
	struct tw w;
	const char *tmp = getenv("TMPDIR");

	snprintf(root, sizeof(root), "%s/agentbus-test-log-XXXXXX", tmp ? tmp : "/tmp");
	if (!mkdtemp(root)) {
		perror("mkdtemp");
		return 1;
	}
	path_in(dir, "log");
	build(&w, dir);
	printf("log: %zu frames, %d segments, %" PRIu64 " bytes\n", w.count, w.segment_count,
	       w.position - FIRST_POSITION);

	test_round_trip(&w, dir);
	test_seek_seq(&w, dir);
	test_seek_time(&w, dir);
	test_end_position(&w, dir);
	test_corrupt_record(&w, dir);
	test_verify(&w, dir);
	test_retention(&w, dir);
	test_recover_clean(&w, dir);
	test_recover_torn(&w, dir);
	test_recover_waits_for_writer(&w, dir);
	test_recover_empty_last(&w, dir);
	test_gap_count();
	test_follow();

	tw_remove_dir(dir);
	rmdir(root);
	free(w.frames);
	printf("%s: %d failure(s)\n", failures ? "FAIL" : "PASS", failures);
	return failures ? 1 : 0;
}
