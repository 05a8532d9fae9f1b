/*
 * test_retention.c - retention of a stream's log by record count, bytes and
 * age (issue 3, point 6), on 1 MiB segments.
 *
 *  - Past its limit, the log loses whole segments, oldest first, within a
 *    few seconds (the daemon applies retention about once a second): stream
 *    info's log_first_seq moves up and log_bytes down, what is left replays
 *    from log_first_seq on, intact, and verifies clean; a subscription or a
 *    replay asking for a deleted seq gets AGENTBUS_E_SEQ_GONE.
 *  - A subscription still reading the oldest segment (START_OLDEST, paused)
 *    keeps it, and every later one, until it reads on; with retention_force
 *    the segments go anyway.
 */
#include <dirent.h>
#include <sys/stat.h>

#include "durability.h"

#define SEGMENT (1u << 20)
#define PAYLOAD 1000         /* frames of 1088 bytes: ~960 per segment */
#define PER_SEGMENT (SEGMENT / 1088)

/* Create @name with 1 MiB segments, a 256 KiB ring and these limits. */
static void create(agentbus_bus *bus, const char *name, uint64_t max_records, uint64_t max_bytes,
		   uint64_t max_age_ns, int force)
{
	struct agentbus_stream_config cfg = { .ring_size = 256u << 10, .segment_size = SEGMENT,
					      .max_records = max_records, .max_bytes = max_bytes,
					      .max_age_ns = max_age_ns, .retention_force = force };

	d_create(bus, name, &cfg);
}

/* Publish @count records with keys from @index0 on; returns the last seq. */
static uint64_t publish(agentbus_stream *s, uint32_t index0, uint32_t count)
{
	int64_t seq = 0;

	for (uint32_t i = 0; i < count; i++)
		seq = T_OK(d_publish(s, "ret.x", d_key(0, index0 + i), PAYLOAD,
				     AGENTBUS_DURABILITY_MEMORY, T_WAIT_MS));
	T_OK(agentbus_wait_durable(s, (uint64_t)seq, AGENTBUS_DURABILITY_SYNCED, T_WAIT_MS));
	return (uint64_t)seq;
}

static struct agentbus_stream_info info_of(agentbus_bus *bus, const char *name)
{
	struct agentbus_stream_info info;

	T_OK(agentbus_stream_info_get(bus, name, &info));
	return info;
}

/* Wait (up to @ms) until retention has deleted something of @name. */
static struct agentbus_stream_info wait_deleted(agentbus_bus *bus, const char *name, uint64_t ms)
{
	struct t_deadline d = t_deadline_ms(ms);
	struct agentbus_stream_info info;

	for (;;) {
		info = info_of(bus, name);
		if (info.log_first_seq > 1)
			return info;
		T_ASSERTF(!t_expired(&d), "stream '%s': nothing deleted in %" PRIu64 " ms "
			  "(log_first_seq %" PRIu64 ", log_bytes %" PRIu64 ", next_seq %" PRIu64 ")",
			  name, ms, info.log_first_seq, info.log_bytes, info.next_seq);
		t_sleep_us(20000);
	}
}

/* Bytes of .log files on disk, and their count, for stream @name. */
static uint64_t disk_bytes(const char *name, unsigned *segments)
{
	char dir[512], path[1024];
	struct dirent *e;
	struct stat st;
	uint64_t bytes = 0;
	size_t len;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/%s/%s", t_state.data_dir, t_state.bus_name, name);
	d = opendir(dir);
	T_ASSERTF(d, "cannot open %s", dir);
	*segments = 0;
	while ((e = readdir(d)) != NULL) {
		len = strlen(e->d_name);
		if (len < 5 || strcmp(e->d_name + len - 4, ".log") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		T_ASSERT(stat(path, &st) == 0);
		bytes += (uint64_t)st.st_size;
		(*segments)++;
	}
	closedir(d);
	return bytes;
}

static void print_problem(void *arg, const struct agentbus_problem *p)
{
	(void)arg;
	fprintf(stderr, "verify: stream '%s' segment %s offset %" PRIu64 " seq %" PRIu64 ": %s\n",
		p->stream, p->segment, p->file_offset, p->seq, p->what);
}

/*
 * What is left of @name after retention: stream info matches the files,
 * the log replays intact from log_first_seq to @last, and older seqs are
 * gone for subscriptions and replays alike.
 */
static void check_remaining(agentbus_bus *bus, const char *name, uint64_t last)
{
	struct agentbus_stream_info info = info_of(bus, name);
	struct agentbus_replay_config cfg = { .start = AGENTBUS_START_SEQ, .start_seq = 1 };
	agentbus_replay *replay = NULL;
	agentbus_stream *s;
	agentbus_sub *sub = NULL;
	uint64_t keys[64];
	unsigned segments;
	uint64_t bytes = disk_bytes(name, &segments);

	/* info is refreshed about once a second: let it catch up with the files */
	for (struct t_deadline d = t_deadline_ms(5000); info.log_bytes != bytes && !t_expired(&d);
	     bytes = disk_bytes(name, &segments)) {
		t_sleep_us(50000);
		info = info_of(bus, name);
	}
	T_EQ(info.log_bytes, bytes);
	T_ASSERT(segments >= 1);
	for (uint64_t i = 0; i < 64; i++)
		keys[i] = d_key(0, (uint32_t)(last - 63 + i - 1));
	d_replay_check(name, info.log_first_seq, last, NULL);
	d_replay_check(name, last - 63, last, keys);
	T_EQ(agentbus_verify(t_state.bus_name, t_state.data_dir, name, print_problem, NULL), 0);

	T_ERR(agentbus_replay_open(NULL, name, &cfg, &replay), AGENTBUS_E_SEQ_GONE);
	s = t_open_stream(bus, name);
	T_ERR(agentbus_subscribe(s, &(struct agentbus_sub_config){ .start = AGENTBUS_START_SEQ,
								   .start_seq = 1 }, &sub),
	      AGENTBUS_E_SEQ_GONE);
	agentbus_stream_close(s);
	printf("# '%s': %u segment(s), %" PRIu64 " bytes, seqs %" PRIu64 "-%" PRIu64 " kept\n", name,
	       segments, bytes, info.log_first_seq, last);
}

/* max_records: whole segments go until at most that many records are left. */
static void test_max_records(agentbus_bus *bus)
{
	agentbus_stream *s;
	struct agentbus_stream_info info;
	uint64_t last;

	create(bus, "ret-records", 1500, 0, 0, 0);
	s = t_open_stream(bus, "ret-records");
	last = publish(s, 0, 6 * PER_SEGMENT);
	agentbus_stream_close(s);
	info = wait_deleted(bus, "ret-records", 10000);
	/* Let the deletions finish: the log shrinks to at most the limit. */
	for (struct t_deadline d = t_deadline_ms(5000); !t_expired(&d); t_sleep_us(50000)) {
		info = info_of(bus, "ret-records");
		if (last + 1 - info.log_first_seq <= 1500)
			break;
	}
	T_ASSERTF(last + 1 - info.log_first_seq <= 1500, "%" PRIu64 " records kept, limit 1500",
		  last + 1 - info.log_first_seq);
	/* The limit is a maximum, but no more goes than needed to stay under it:
	 * with the segment before it, what is left would be over the limit. */
	T_ASSERTF(last + 1 - info.log_first_seq + PER_SEGMENT + 16 > 1500,
		  "only %" PRIu64 " records kept, limit 1500", last + 1 - info.log_first_seq);
	check_remaining(bus, "ret-records", last);
}

/* max_bytes: the segments on disk shrink to at most that many bytes. */
static void test_max_bytes(agentbus_bus *bus)
{
	const uint64_t limit = 2 * SEGMENT + SEGMENT / 2;
	struct agentbus_stream_info info;
	agentbus_stream *s;
	uint64_t last, bytes;
	unsigned segments;

	create(bus, "ret-bytes", 0, limit, 0, 0);
	s = t_open_stream(bus, "ret-bytes");
	last = publish(s, 0, 7 * PER_SEGMENT);
	agentbus_stream_close(s);
	wait_deleted(bus, "ret-bytes", 10000);
	for (struct t_deadline d = t_deadline_ms(5000); !t_expired(&d); t_sleep_us(50000))
		if (disk_bytes("ret-bytes", &segments) <= limit)
			break;
	bytes = disk_bytes("ret-bytes", &segments);
	T_ASSERTF(bytes <= limit, "%" PRIu64 " bytes of log kept, limit %" PRIu64, bytes, limit);
	T_ASSERTF(bytes + 2 * SEGMENT > limit, "only %" PRIu64 " bytes kept, limit %" PRIu64, bytes,
		  limit);
	info = info_of(bus, "ret-bytes");
	T_ASSERT(info.log_first_seq > 1);
	check_remaining(bus, "ret-bytes", last);
}

/* max_age: segments whose records are all older than that go. */
static void test_max_age(agentbus_bus *bus)
{
	agentbus_stream *s;
	uint64_t last;

	create(bus, "ret-age", 0, 0, 1000000000ull, 0);
	s = t_open_stream(bus, "ret-age");
	last = publish(s, 0, 3 * PER_SEGMENT);
	T_EQ(info_of(bus, "ret-age").log_first_seq, 1); /* young yet */
	t_sleep_us(1200000);
	last = publish(s, 3 * PER_SEGMENT, PER_SEGMENT + 10); /* a new segment, now */
	agentbus_stream_close(s);
	wait_deleted(bus, "ret-age", 10000);
	check_remaining(bus, "ret-age", last);
}

/*
 * A paused subscription at the oldest record holds every segment from its
 * own on; once it reads on, they go. With @force they go regardless.
 */
static void test_reader_holds(agentbus_bus *bus, const char *name, int force)
{
	struct agentbus_sub_config cfg = { .start = AGENTBUS_START_OLDEST, .wait = AGENTBUS_WAIT_SLEEP };
	struct agentbus_stream_info info;
	struct agentbus_record rec;
	agentbus_stream *s;
	agentbus_sub *sub = NULL;
	uint64_t last, next = 1, key;
	int r;

	create(bus, name, 1000, 0, 0, force);
	s = t_open_stream(bus, name);
	publish(s, 0, 2 * PER_SEGMENT);
	T_OK(agentbus_subscribe(s, &cfg, &sub));
	for (; next <= 5; next++) {
		T_EQ(agentbus_sub_read(sub, &rec, T_WAIT_MS), 1);
		T_EQ(rec.seq, next);
	}
	last = publish(s, 2 * PER_SEGMENT, 4 * PER_SEGMENT);

	if (force) {
		info = wait_deleted(bus, name, 10000);
		printf("# '%s': log_first_seq %" PRIu64 " with a reader at seq %" PRIu64 "\n", name,
		       info.log_first_seq, next);
		/* The reader goes on as it can: never a damaged or repeated record. */
		while ((r = agentbus_sub_read(sub, &rec, 1000)) == 1 && rec.seq <= last) {
			T_ASSERT(rec.seq >= next);
			T_ASSERT(d_intact(rec.payload, rec.payload_len, &key));
			next = rec.seq + 1;
		}
		printf("# '%s': the reader stopped at seq %" PRIu64 ": %d (%s)\n", name, next, r,
		       r < 0 ? agentbus_strerror(r) : "ok");
	} else {
		/* Several retention passes (one a second): nothing may go. */
		t_sleep_us(3000000);
		info = info_of(bus, name);
		T_ASSERTF(info.log_first_seq == 1, "stream '%s': log_first_seq %" PRIu64
			  " while a subscription reads seq %" PRIu64, name, info.log_first_seq, next);
		for (; next <= last; next++) {
			T_EQ(agentbus_sub_read(sub, &rec, T_WAIT_MS), 1);
			T_EQ(rec.seq, next);
			T_ASSERT(d_intact(rec.payload, rec.payload_len, &key) &&
				 key == d_key(0, (uint32_t)next - 1));
		}
		wait_deleted(bus, name, 10000);
		check_remaining(bus, name, last);
	}
	agentbus_sub_close(sub);
	agentbus_stream_close(s);
}

int main(void)
{
	agentbus_bus *bus = d_setup("retention");

	T_RUN(test_max_records, bus);
	T_RUN(test_max_bytes, bus);
	T_RUN(test_max_age, bus);
	T_RUN(test_reader_holds, bus, "ret-held", 0);
	T_RUN(test_reader_holds, bus, "ret-force", 1);
	return t_done();
}
