/*
 * test_log_powerloss.c - recovery after simulated power losses.
 *
 * A log of a few thousand records of random sizes over many segments is
 * written once; then each case takes a fresh copy, damages it the way a
 * power loss can, runs log_recover() and reads everything back:
 *
 *   A  the last segment cut at a random byte;
 *   B  cut, then garbage after the cut (random bytes never written by us);
 *   C  a random range of the last segment overwritten in place;
 *   D  cut, and 1-3 random bytes flipped anywhere in the last two segments.
 *
 * Checked in every case: recovery succeeds; the end it finds is a frame
 * boundary and no intact frame is cut off (the frame there is damaged or
 * runs past the cut); every frame that no damage touched is read back
 * intact; nothing that was not written is ever returned as valid; every
 * run of unreadable frames is named (its first sequence number) by a
 * reader error or a recovery report; a cut tail is reported; the recovered
 * log verifies clean unless corruption was kept; a second recovery has
 * nothing to do; and recovery read only about one segment's tail.
 * In cases A and B the end is exact: the first frame not wholly before the
 * cut (or the one after it when the garbage happens to complete it, as
 * padding is not checksummed).
 *
 * AGENTBUS_POWERLOSS_CASES sets the number of cases (default 300),
 * AGENTBUS_POWERLOSS_SEED the first seed (default 1).
 */
#include "log_test_writer.h"

#define MAX_RECORD 4096u
#define SEGMENT_SIZE (64u << 10)
#define RECORDS 2500
#define MAX_DAMAGE 4

static char root[256];
static int failures;
static unsigned long case_seed;
static int reader_corrupt_cases, kept_corrupt_cases, cut_cases; /* coverage */

#define CHECK(cond, ...)                                                                  \
	do {                                                                              \
		if (!(cond)) {                                                            \
			fprintf(stderr, "FAIL (seed %lu) %s:%d: %s: ", case_seed, __FILE__, \
				__LINE__, #cond);                                         \
			fprintf(stderr, __VA_ARGS__);                                     \
			fputc('\n', stderr);                                              \
			failures++;                                                       \
		}                                                                         \
	} while (0)

static uint64_t rng_state;

static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static uint64_t rnd_below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

/* ------------------------------------------------------------ reports */

#define MAX_REPORTS 256
static char reports[MAX_REPORTS][LOG_PATH_LEN + 600];
static int report_count;

static void collect(void *arg, const char *message)
{
	(void)arg;
	if (report_count < MAX_REPORTS)
		snprintf(reports[report_count++], sizeof(reports[0]), "%s", message);
}

static int reports_with(const char *needle)
{
	int i, n = 0;

	for (i = 0; i < report_count; i++)
		if (strstr(reports[i], needle))
			n++;
	return n;
}

/* ------------------------------------------------------------ damage */

/* What a case did to its copy, in stream positions. */
struct damage {
	char mode;                      /* 'A'..'D' */
	uint64_t cut;                   /* data from here on removed (w->position: none) */
	uint64_t garbage;               /* bytes of garbage written at the cut */
	uint64_t lo[MAX_DAMAGE], hi[MAX_DAMAGE]; /* byte ranges changed in place */
	int ranges;
	int index_damage;               /* 1: index cut, 2: garbage appended, 3: both */
};

static void path_in(char *out, const char *name)
{
	snprintf(out, LOG_PATH_LEN, "%s/%s", root, name);
}

/* Segment index holding @position. */
static int segment_of(const struct tw *w, uint64_t position)
{
	int i = w->segment_count - 1;

	while (i > 0 && w->segments[i].base > position)
		i--;
	return i;
}

static int open_segment(const struct tw *w, const char *dir, int segment)
{
	char log_path[LOG_PATH_LEN], index_path[LOG_PATH_LEN];
	int fd;

	log_segment_paths(dir, w->segments[segment].base, log_path, index_path);
	fd = open(log_path, O_RDWR);
	if (fd < 0)
		tw_die("open segment", -errno);
	return fd;
}

static uint64_t offset_of(const struct tw *w, uint64_t position)
{
	return LOG_HEADER_SIZE + position - w->segments[segment_of(w, position)].base;
}

/* Random bytes, never zero (zeros could look like padding we wrote). */
static void random_bytes(unsigned char *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		b[i] = (unsigned char)(1 + rnd_below(255));
}

/* The index can lose its tail or gain garbage in a power loss too. */
static void damage_index(const struct tw *w, const char *dir, struct damage *d)
{
	char log_path[LOG_PATH_LEN], index_path[LOG_PATH_LEN];
	unsigned char junk[300];
	struct stat st;
	int fd;

	log_segment_paths(dir, w->segments[w->segment_count - 1].base, log_path, index_path);
	fd = open(index_path, O_RDWR);
	if (fd < 0 || fstat(fd, &st) != 0)
		tw_die("open index", -errno);
	d->index_damage = (int)(1 + rnd_below(3));
	if (d->index_damage & 1) /* cut anywhere, even inside an entry */
		if (ftruncate(fd, (off_t)rnd_below((uint64_t)st.st_size + 1)) != 0)
			tw_die("ftruncate index", -errno);
	if (d->index_damage & 2) { /* zeros or garbage after it */
		if (fstat(fd, &st) != 0)
			tw_die("fstat", -errno);
		memset(junk, 0, sizeof(junk));
		if (rnd_below(2))
			random_bytes(junk, sizeof(junk));
		tw_pwrite(fd, junk, 1 + rnd_below(sizeof(junk)), (uint64_t)st.st_size);
	}
	close(fd);
}

static void damage(const struct tw *w, const char *dir, struct damage *d)
{
	int last = w->segment_count - 1, fd = open_segment(w, dir, last), k, seg;
	uint64_t base = w->segments[last].base, lo, len, at;
	unsigned char buf[8192], c;

	memset(d, 0, sizeof(*d));
	d->mode = (char)('A' + rnd_below(4));
	if (rnd_below(3) == 0)
		damage_index(w, dir, d);
	d->cut = base + rnd_below(w->position - base + 1);
	if (d->mode == 'C') {
		/* Overwrite [cut, cut + len) in place; nothing is removed. */
		len = 1 + rnd_below(4096);
		if (d->cut + len > w->position)
			len = w->position - d->cut;
		random_bytes(buf, (size_t)len);
		tw_pwrite(fd, buf, (size_t)len, offset_of(w, d->cut));
		d->lo[0] = d->cut;
		d->hi[0] = d->cut + len;
		d->ranges = len ? 1 : 0;
		d->cut = w->position;
		close(fd);
		return;
	}
	if (ftruncate(fd, (off_t)offset_of(w, d->cut)) != 0)
		tw_die("ftruncate", -errno);
	if (d->mode == 'B') {
		d->garbage = 1 + rnd_below(sizeof(buf));
		random_bytes(buf, (size_t)d->garbage);
		tw_pwrite(fd, buf, (size_t)d->garbage, offset_of(w, d->cut));
	}
	close(fd);
	if (d->mode != 'D' || d->cut == w->segments[last > 0 ? last - 1 : 0].base)
		return;
	/* Flip bytes before the cut, in the last two segments. */
	lo = w->segments[last > 0 ? last - 1 : 0].base;
	for (k = 0; k < 1 + (int)rnd_below(3); k++) {
		at = lo + rnd_below(d->cut - lo);
		seg = segment_of(w, at);
		fd = open_segment(w, dir, seg);
		if (pread(fd, &c, 1, (off_t)offset_of(w, at)) != 1)
			tw_die("pread", -errno);
		c ^= (unsigned char)(1 + rnd_below(255));
		tw_pwrite(fd, &c, 1, offset_of(w, at));
		close(fd);
		d->lo[d->ranges] = at;
		d->hi[d->ranges++] = at + 1;
	}
}

/* Did the damage touch frame @k (or cut it)? */
static int frame_damaged(const struct tw *w, const struct damage *d, size_t k)
{
	uint64_t p = w->frames[k].position, e = p + w->frames[k].len;
	int i;

	if (e > d->cut)
		return 1;
	for (i = 0; i < d->ranges; i++)
		if (d->lo[i] < e && d->hi[i] > p)
			return 1;
	return 0;
}

/* ------------------------------------------------------------ checks */

/* Where the bytes frame @k's validity does not depend on begin, at the
 * earliest: a gap's checked fields end at 32 (offsetof seq), a record's body
 * runs past its 64-byte header (its padding is not checksummed). */
static uint64_t unchecked_from(const struct tw *w, size_t k)
{
	return w->frames[k].gap ? FRAME_CHECKSUMMED_FROM : sizeof(struct frame_header);
}

/* Cases A and B: the end is the first frame not wholly before the cut, or
 * the one after it if the garbage completed it (padding is unchecked). */
static size_t exact_end(const struct tw *w, const struct damage *d)
{
	size_t k;

	for (k = 0; k < w->count && w->frames[k].position + w->frames[k].len <= d->cut; k++)
		;
	return k;
}

/* Seeks through the (recovered) index land on readable frames, stepping
 * over any corruption before them. */
static void check_seeks(const struct tw *w, const char *dir, const unsigned char *returned,
			size_t end)
{
	const struct frame_header *h;
	struct log_reader *r;
	uint64_t position;
	size_t k;
	int i, rc;

	if (end == 0 || log_reader_open(&r, dir, UINT64_MAX) != 0)
		return;
	for (i = 0; i < 8; i++) {
		k = i == 0 ? end - 1 : rnd_below(end);
		if (!returned[k])
			continue;
		rc = log_reader_seek_seq(r, w->frames[k].seq);
		CHECK(rc == 0, "seek_seq(%" PRIu64 "): %s: %s", w->frames[k].seq, agentbus_strerror(rc),
		      log_reader_error(r));
		rc = log_reader_next(r, &h, &position);
		CHECK(rc == 1 && position == w->frames[k].position, "seek_seq(%" PRIu64 ") lands wrong",
		      w->frames[k].seq);
	}
	log_reader_close(r);
}

/* Read the recovered log back and check it (see the top of the file). */
static void read_back(const struct tw *w, const char *dir, const struct damage *d,
		      const struct log_recovery *out, size_t end, int *saw_corrupt)
{
	const struct frame_header *h;
	struct log_reader *r;
	unsigned char *returned = calloc(w->count + 1, 1);
	uint64_t position, last_position = 0;
	size_t k, calls, named_count = 0;
	uint64_t *named = calloc(3 * w->count + 16, sizeof(*named));
	const char *bad, *msg;
	int rc = 0;

	*saw_corrupt = 0;
	if (!returned || !named || log_reader_open(&r, dir, UINT64_MAX) != 0)
		tw_die("read back", -ENOMEM);
	for (calls = 0; calls < 3 * w->count + 16; calls++) {
		rc = log_reader_next(r, &h, &position);
		if (rc == 0)
			break;
		if (rc == AGENTBUS_E_CORRUPT) {
			*saw_corrupt = 1;
			msg = log_reader_error(r);
			if (strncmp(msg, "seq ", 4) == 0)
				named[named_count++] = strtoull(msg + 4, NULL, 10);
			continue;
		}
		CHECK(rc == 1, "reader: %s: %s", agentbus_strerror(rc), log_reader_error(r));
		if (rc != 1)
			break;
		k = tw_find_position(w, position);
		bad = tw_check_frame(w, h, position);
		CHECK(!bad, "a frame at %" PRIu64 " returned as valid: %s (mode %c)", position,
		      bad ? bad : "", d->mode);
		CHECK(position >= last_position, "frames out of order");
		last_position = position;
		if (!bad)
			returned[k] = 1;
	}
	CHECK(rc == 0, "reader did not reach the end");
	log_reader_where(r, NULL, &position);
	CHECK(position == out->end_position, "reader ended at %" PRIu64 ", recovery at %" PRIu64,
	      position, out->end_position);
	log_reader_close(r);

	for (k = 0; k < w->count; k++) {
		size_t i;
		char needle[64];
		int seen = 0;

		/* Also after the damage: corruption in the middle is not a tail. */
		CHECK(returned[k] || frame_damaged(w, d, k),
		      "undamaged frame %zu (seq %" PRIu64 ") lost (mode %c)", k, w->frames[k].seq,
		      d->mode);
		if (k >= end || returned[k] || (k > 0 && !returned[k - 1]))
			continue;
		/* The first frame of an unreadable run is named. */
		for (i = 0; i < named_count; i++)
			seen |= named[i] == w->frames[k].seq;
		snprintf(needle, sizeof(needle), "corrupt frame at seq %" PRIu64 " ", w->frames[k].seq);
		CHECK(seen || reports_with(needle), "unreadable seq %" PRIu64 " never named",
		      w->frames[k].seq);
	}
	check_seeks(w, dir, returned, end);
	free(returned);
	free(named);
}

/* Every usable index entry of every segment names the frame written there. */
static void check_index(const struct tw *w, const char *dir, const struct log_recovery *out)
{
	struct log_index_entry *entries;
	struct log_segment *list;
	size_t n, i, count, k;

	if (log_segments_list(dir, &list, &n, NULL, NULL) != 0)
		tw_die("list", -EIO);
	for (i = 0; i < n; i++) {
		if (log_index_load(&list[i], UINT64_MAX, &entries, NULL, &count) != 0)
			tw_die("index", -EIO);
		CHECK(count > 0 || list[i].file_size == LOG_HEADER_SIZE, "segment %zu has no index", i);
		for (k = 0; k < count; k++) {
			size_t f = tw_find_position(w, entries[k].position);

			CHECK(entries[k].position < out->end_position && f != (size_t)-1 &&
			      f < w->count && w->frames[f].seq == entries[k].seq,
			      "index entry seq %" PRIu64 " position %" PRIu64 " is wrong",
			      entries[k].seq, entries[k].position);
		}
		free(entries);
	}
	free(list);
}

static int verify_count(const char *dir)
{
	return log_verify(dir, NULL, NULL);
}

static void run_case(const struct tw *w, const char *original, const char *copy, int *modes)
{
	struct log_recovery out, again;
	struct damage d;
	char needle[80];
	size_t end, expect;
	uint64_t bound;
	int rc, saw_corrupt;

	tw_copy_dir(original, copy);
	damage(w, copy, &d);
	modes[d.mode - 'A']++;
	report_count = 0;
	rc = log_recover(copy, &out, collect, NULL);
	CHECK(rc == 0, "recover: %s", agentbus_strerror(rc));
	if (rc)
		return;
	end = tw_find_position(w, out.end_position);
	CHECK(end != (size_t)-1, "recovered end %" PRIu64 " is not a frame boundary",
	      out.end_position);
	if (end == (size_t)-1)
		return;
	CHECK(out.next_seq == (end < w->count ? w->frames[end].seq : w->seq),
	      "next_seq %" PRIu64 " does not match the end", out.next_seq);
	CHECK(end == w->count || frame_damaged(w, &d, end),
	      "intact frame %zu (seq %" PRIu64 ") cut off (mode %c)", end, w->frames[end].seq,
	      d.mode);
	if (d.mode == 'A' || d.mode == 'B') {
		expect = exact_end(w, &d);
		/* Garbage may complete the frame at the cut when the cut is
		 * in its padding (or after a gap's header). */
		CHECK(end == expect || (d.mode == 'B' && expect < w->count && end == expect + 1 &&
					d.cut >= w->frames[expect].position + unchecked_from(w, expect)),
		      "mode %c: end at frame %zu, expected %zu (cut at %" PRIu64 ", %" PRIu64
		      " bytes of garbage)", d.mode, end, expect, d.cut, d.garbage);
		CHECK(out.truncated_bytes == d.cut + d.garbage - out.end_position,
		      "mode %c: cut %" PRIu64 " bytes", d.mode, out.truncated_bytes);
		CHECK(out.corrupt_frames == 0, "mode %c: corruption reported", d.mode);
	}
	if (out.truncated_bytes) {
		snprintf(needle, sizeof(needle), "torn tail at seq %" PRIu64 " ", out.next_seq);
		CHECK(reports_with(needle) == 1, "cut tail not reported");
	}
	CHECK(reports_with("corrupt frame at seq") == (int)out.corrupt_frames,
	      "%" PRIu64 " corrupt frames, %d reports", out.corrupt_frames,
	      reports_with("corrupt frame at seq"));
	/* Only the tail: the last segment, and the one before if the last held nothing. */
	bound = 2 * (SEGMENT_SIZE + max_frame_len(MAX_RECORD)) + d.garbage + LOG_INDEX_EVERY;
	CHECK(out.scanned_bytes <= bound, "scanned %" PRIu64 " bytes", out.scanned_bytes);

	read_back(w, copy, &d, &out, end, &saw_corrupt);
	check_index(w, copy, &out);
	reader_corrupt_cases += saw_corrupt;
	kept_corrupt_cases += out.corrupt_frames > 0;
	cut_cases += out.truncated_bytes > 0;
	if (!saw_corrupt && !out.corrupt_frames)
		CHECK(verify_count(copy) == 0, "recovered log does not verify (mode %c)", d.mode);
	report_count = 0;
	rc = log_recover(copy, &again, collect, NULL);
	CHECK(rc == 0 && again.end_position == out.end_position && again.next_seq == out.next_seq &&
	      again.truncated_bytes == 0, "second recovery differs");
}

int main(void)
{
	char original[LOG_PATH_LEN], copy[LOG_PATH_LEN];
	const char *env = getenv("AGENTBUS_POWERLOSS_CASES"), *tmp = getenv("TMPDIR");
	unsigned long cases = env ? strtoul(env, NULL, 10) : 300, first_seed, i;
	struct log_recovery out;
	struct tw w;
	int n, modes[4] = { 0 };

	env = getenv("AGENTBUS_POWERLOSS_SEED");
	first_seed = env ? strtoul(env, NULL, 10) : 1;
	snprintf(root, sizeof(root), "%s/agentbus-test-powerloss-XXXXXX", tmp ? tmp : "/tmp");
	if (!mkdtemp(root)) {
		perror("mkdtemp");
		return 1;
	}
	path_in(original, "log");
	path_in(copy, "case");

	rng_state = 0x9e3779b97f4a7c15ull;
	tw_init(&w, original, MAX_RECORD, SEGMENT_SIZE, 0, 1);
	for (n = 0; n < RECORDS; n++) {
		if (rnd_below(50) == 0)
			tw_gap(&w, (uint32_t)(1 + rnd_below(3)), (uint32_t)(64 * (1 + rnd_below(4))));
		tw_record(&w, (uint32_t)(rnd_below(4) == 0 ? 3000 : 600));
	}
	tw_finish(&w);
	printf("log: %zu frames, %d segments, %" PRIu64 " bytes\n", w.count, w.segment_count,
	       w.position);

	/* The undamaged log: recovery reads one index step, not the log. */
	tw_copy_dir(original, copy);
	case_seed = 0;
	CHECK(log_recover(copy, &out, collect, NULL) == 0 && out.end_position == w.position &&
	      out.next_seq == w.seq && out.truncated_bytes == 0, "clean recovery");
	CHECK(out.scanned_bytes <= LOG_INDEX_EVERY + 2 * max_frame_len(MAX_RECORD),
	      "clean recovery scanned %" PRIu64 " bytes of %" PRIu64, out.scanned_bytes, w.position);

	for (i = 0; i < cases; i++) {
		case_seed = first_seed + i;
		rng_state = tw_hash(case_seed) | 1;
		run_case(&w, original, copy, modes);
	}
	printf("cases with a tail cut: %d, corruption kept by recovery: %d, reported by the reader: %d\n",
	       cut_cases, kept_corrupt_cases, reader_corrupt_cases);
	CHECK(cases < 100 || (cut_cases && kept_corrupt_cases && reader_corrupt_cases),
	      "the cases did not cover every outcome");
	tw_remove_dir(copy);
	tw_remove_dir(original);
	rmdir(root);
	free(w.frames);
	printf("%lu cases (A %d, B %d, C %d, D %d): %s, %d failure(s)\n", cases, modes[0], modes[1],
	       modes[2], modes[3], failures ? "FAIL" : "PASS", failures);
	return failures ? 1 : 0;
}
