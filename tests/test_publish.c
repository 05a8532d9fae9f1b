/*
 * test_publish.c - publishing: copy, batch, zero-copy claim, and refusals.
 *
 * A record must come back exactly as it was published (subject, key,
 * headers, payload, including empty ones) with dense sequence numbers; a
 * batch takes consecutive numbers; an aborted claim becomes one counted
 * gap; an oversized record or a bad subject is refused; and a ring full of
 * records a subscription has not passed pushes back at once, or after the
 * producer's timeout, until the subscription moves on.
 */
#include <pthread.h>

#include "helpers.h"

#define SMALL_RING (64u << 10)
#define SMALL_MAX (16u << 10)

/*
 * How far a record's time may stray from CLOCK_REALTIME read around the
 * publish. The core may extrapolate the clock from the TSC between
 * re-anchorings (bus/clock.c), which is exact to well under this.
 */
#define CLOCK_SLACK_NS 1000000u

/* CLOCK_REALTIME in nanoseconds, the clock of record timestamps. */
static uint64_t wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Fail unless @rec's headers are exactly @want (@n of them, in order). */
static void expect_headers(const struct agentbus_record *rec, const struct agentbus_header *want,
			   size_t n)
{
	struct agentbus_header h;
	uint32_t cursor = 0;

	for (size_t i = 0; i < n; i++) {
		T_EQ(agentbus_header_next(rec, &cursor, &h), 1);
		T_EQ(h.name_len, strlen(want[i].name));
		T_ASSERT(memcmp(h.name, want[i].name, h.name_len) == 0);
		T_EQ(h.value_len, want[i].value_len);
		T_ASSERT(h.value_len == 0 || memcmp(h.value, want[i].value, h.value_len) == 0);
	}
	T_EQ(agentbus_header_next(rec, &cursor, &h), 0);
	/* the end stays the end */
	T_EQ(agentbus_header_next(rec, &cursor, &h), 0);
}

/* Every field survives the trip, including empty keys, headers and payloads. */
static void test_round_trip(agentbus_bus *bus)
{
	static const unsigned char binary_value[] = { 0, 1, 2, 0xff, 0 };
	const struct agentbus_header headers[] = {
		{ .name = "content-type", .name_len = 12, .value = "application/json", .value_len = 16 },
		{ .name = "empty", .name_len = 5, .value = NULL, .value_len = 0 },
		{ .name = "bin", .name_len = 3, .value = binary_value, .value_len = 5 },
	};
	static const char payload[] = "{\"tool\":\"search\",\"q\":\"agentbus\"}";
	struct agentbus_message full = {
		.subject = "tool.call.search",
		.key = "conv-42",
		.key_len = 7,
		.headers = headers,
		.header_count = 3,
		.payload = payload,
		.payload_len = sizeof(payload) - 1,
	};
	struct agentbus_message bare = { .subject = "x", .payload = NULL, .payload_len = 0 };
	struct agentbus_record rec;
	uint64_t before, after;
	agentbus_stream *s;
	agentbus_sub *sub;

	t_create_stream(bus, "rt", 1u << 20, 64u << 10);
	s = t_open_stream(bus, "rt");
	sub = t_subscribe(s, AGENTBUS_START_NEW, 0, AGENTBUS_WAIT_SPIN);

	before = wall_ns();
	T_EQ(agentbus_publish(s, &full, T_WAIT_MS), 1);
	after = wall_ns();
	T_EQ(agentbus_publish(s, &bare, T_WAIT_MS), 2);

	T_EQ(agentbus_sub_poll(sub, &rec), 1);
	T_EQ(rec.seq, 1);
	T_ASSERTF(rec.time_ns + CLOCK_SLACK_NS >= before && rec.time_ns <= after + CLOCK_SLACK_NS,
		  "time_ns %" PRIu64 " not in [%" PRIu64 ", %" PRIu64 "]", rec.time_ns, before,
		  after);
	T_ASSERT(t_subject_is(&rec, "tool.call.search"));
	T_EQ(rec.key_len, 7);
	T_ASSERT(memcmp(rec.key, "conv-42", 7) == 0);
	T_EQ(rec.payload_len, sizeof(payload) - 1);
	T_ASSERT(memcmp(rec.payload, payload, rec.payload_len) == 0);
	expect_headers(&rec, headers, 3);

	T_EQ(agentbus_sub_poll(sub, &rec), 1);
	T_EQ(rec.seq, 2);
	T_ASSERT(t_subject_is(&rec, "x"));
	T_EQ(rec.key_len, 0);
	T_EQ(rec.payload_len, 0);
	T_EQ(rec.headers_len, 0);
	expect_headers(&rec, NULL, 0);
	T_ASSERT(rec.time_ns + CLOCK_SLACK_NS >= after);

	T_EQ(agentbus_sub_poll(sub, &rec), 0);
	agentbus_sub_close(sub);
	agentbus_stream_close(s);
	T_OK(agentbus_stream_delete(bus, "rt"));
}

/* Fill @buf with bytes derived from @seq, so a reader can check them. */
static void pattern_fill(unsigned char *buf, size_t len, uint64_t seq)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (unsigned char)(seq * 31 + i * 7);
}

static bool pattern_ok(const unsigned char *buf, size_t len, uint64_t seq)
{
	for (size_t i = 0; i < len; i++)
		if (buf[i] != (unsigned char)(seq * 31 + i * 7))
			return false;
	return true;
}

/*
 * N records of varied sizes get seqs 1..N, and a reader that starts with
 * the stream sees them all, with intact payloads, wrapping the ring.
 */
static void test_dense(agentbus_bus *bus)
{
	enum { N = 3000 };
	static unsigned char buf[4096];
	struct agentbus_record rec;
	agentbus_stream *s;
	agentbus_sub *sub;
	uint64_t next_read = 1, last_time = 0;

	t_create_stream(bus, "dense", 256u << 10, 8192);
	s = t_open_stream(bus, "dense");
	sub = t_subscribe(s, AGENTBUS_START_NEW, 0, AGENTBUS_WAIT_SPIN);
	for (uint64_t seq = 1; seq <= N; seq++) {
		size_t len = (seq * 97) % sizeof(buf);
		struct agentbus_message m = t_msg("dense.rec", buf, len);

		pattern_fill(buf, len, seq);
		T_EQ(agentbus_publish(s, &m, T_WAIT_MS), seq);
		/* read every few records so the 256 KiB ring never fills */
		while (seq % 16 == 0 && agentbus_sub_poll(sub, &rec) == 1) {
			T_EQ(rec.seq, next_read);
			/* one producer thread: its record times never go backwards */
			T_ASSERT(rec.time_ns >= last_time);
			last_time = rec.time_ns;
			T_EQ(rec.payload_len, (next_read * 97) % sizeof(buf));
			T_ASSERTF(pattern_ok(rec.payload, rec.payload_len, rec.seq),
				  "payload of seq %" PRIu64 " altered", rec.seq);
			next_read++;
		}
	}
	while (agentbus_sub_poll(sub, &rec) == 1) {
		T_EQ(rec.seq, next_read);
		T_ASSERT(pattern_ok(rec.payload, rec.payload_len, rec.seq));
		next_read++;
	}
	T_EQ(next_read, N + 1);
	agentbus_sub_close(sub);
	agentbus_stream_close(s);
	T_OK(agentbus_stream_delete(bus, "dense"));
}

/* A batch takes consecutive seqs; a batch with a bad member publishes nothing. */
static void test_batch(agentbus_bus *bus)
{
	enum { B = 10 };
	struct agentbus_message msgs[B];
	char payloads[B][16];
	struct agentbus_record recs[B + 1];
	struct agentbus_stream_info info;
	agentbus_stream *s;
	agentbus_sub *sub;

	t_create_stream(bus, "batch", 1u << 20, 4096);
	s = t_open_stream(bus, "batch");
	sub = t_subscribe(s, AGENTBUS_START_NEW, 0, AGENTBUS_WAIT_SPIN);
	T_EQ(agentbus_publish(s, &(struct agentbus_message){ .subject = "one" }, T_WAIT_MS), 1);
	for (int i = 0; i < B; i++) {
		int n = snprintf(payloads[i], sizeof(payloads[i]), "batch-%d", i);

		msgs[i] = t_msg(i % 2 ? "batch.odd" : "batch.even", payloads[i], (size_t)n);
	}
	T_EQ(agentbus_publish_batch(s, msgs, B, T_WAIT_MS), 2);
	T_EQ(agentbus_publish(s, &(struct agentbus_message){ .subject = "after" }, T_WAIT_MS), 2 + B);

	T_EQ(agentbus_sub_read_batch(sub, recs, 1, 0), 1);
	T_EQ(recs[0].seq, 1);
	T_EQ(agentbus_sub_read_batch(sub, recs, B + 1, 0), B + 1);
	for (int i = 0; i < B; i++) {
		T_EQ(recs[i].seq, 2 + i);
		T_ASSERT(t_subject_is(&recs[i], i % 2 ? "batch.odd" : "batch.even"));
		T_EQ(recs[i].payload_len, strlen(payloads[i]));
		T_ASSERT(memcmp(recs[i].payload, payloads[i], recs[i].payload_len) == 0);
	}
	T_EQ(recs[B].seq, 2 + B);

	/* one bad subject in the middle: the whole batch is refused */
	msgs[4].subject = "bad..subject";
	msgs[4].subject_len = strlen(msgs[4].subject);
	T_ERR(agentbus_publish_batch(s, msgs, B, T_WAIT_MS), AGENTBUS_E_INVALID);
	T_OK(agentbus_stream_stat(s, &info));
	T_EQ(info.next_seq, 3 + B);
	T_EQ(agentbus_sub_poll(sub, &recs[0]), 0);

	agentbus_sub_close(sub);
	agentbus_stream_close(s);
	T_OK(agentbus_stream_delete(bus, "batch"));
}

/*
 * claim/commit delivers what was written in place; a reader waits at an
 * uncommitted claim even when later records are committed; claim/abort
 * leaves exactly one counted gap that readers skip.
 */
static void test_claim(agentbus_bus *bus)
{
	struct agentbus_message hdr = { .subject = "claim.rec", .key = "k", .key_len = 1 };
	struct agentbus_message later = t_msg("claim.later", "L", 1);
	struct agentbus_stream_info info;
	struct agentbus_sub_stats stats;
	struct agentbus_claim c1, c2;
	struct agentbus_record rec;
	agentbus_stream *s;
	agentbus_sub *sub;

	t_create_stream(bus, "claim", 1u << 20, 4096);
	s = t_open_stream(bus, "claim");
	sub = t_subscribe(s, AGENTBUS_START_NEW, 0, AGENTBUS_WAIT_SPIN);

	T_OK(agentbus_claim(s, &hdr, 100, T_WAIT_MS, &c1));
	T_EQ(c1.seq, 1);
	T_EQ(c1.payload_len, 100);
	T_ASSERT(c1.payload != NULL);
	pattern_fill(c1.payload, 100, 1);
	/* a later record commits first; the reader must still wait for seq 1 */
	T_EQ(agentbus_publish(s, &later, T_WAIT_MS), 2);
	T_EQ(agentbus_sub_poll(sub, &rec), 0);
	T_EQ(agentbus_commit(&c1), 1);
	T_EQ(agentbus_sub_poll(sub, &rec), 1);
	T_EQ(rec.seq, 1);
	T_ASSERT(t_subject_is(&rec, "claim.rec"));
	T_EQ(rec.key_len, 1);
	T_EQ(rec.payload_len, 100);
	T_ASSERT(pattern_ok(rec.payload, 100, 1));
	T_EQ(agentbus_sub_poll(sub, &rec), 1);
	T_EQ(rec.seq, 2);

	/* abort: seq 3 becomes a gap between 2 and 4 */
	T_OK(agentbus_claim(s, &hdr, 50, T_WAIT_MS, &c2));
	T_EQ(c2.seq, 3);
	memset(c2.payload, 'G', 50);
	T_OK(agentbus_abort(&c2));
	T_EQ(agentbus_publish(s, &later, T_WAIT_MS), 4);
	T_EQ(agentbus_sub_poll(sub, &rec), 1);
	T_EQ(rec.seq, 4);
	T_ASSERT(t_subject_is(&rec, "claim.later"));
	T_EQ(agentbus_sub_poll(sub, &rec), 0);

	T_OK(agentbus_stream_info_get(bus, "claim", &info));
	T_EQ(info.gaps, 1);
	T_EQ(info.next_seq, 5);
	agentbus_sub_stats_get(sub, &stats);
	T_EQ(stats.gaps, 1);
	T_EQ(stats.delivered, 3);
	T_EQ(stats.next_seq, 5);
	T_EQ(stats.lag, 0);

	/* zero-length claim works too */
	T_OK(agentbus_claim(s, &hdr, 0, T_WAIT_MS, &c1));
	T_EQ(agentbus_commit(&c1), 5);
	T_EQ(agentbus_sub_poll(sub, &rec), 1);
	T_EQ(rec.payload_len, 0);

	agentbus_sub_close(sub);
	agentbus_stream_close(s);
	T_OK(agentbus_stream_delete(bus, "claim"));
}

static void *publish_empty_subject(void *stream)
{
	struct agentbus_message m = t_msg("", "p", 1);

	m.subject_len = 0;
	return (void *)(intptr_t)agentbus_publish(stream, &m, T_WAIT_MS);
}

/* The first publish of a thread, with an empty subject: the thread's cache of
 * the last valid subject is empty too, and must not let it through. */
static void test_empty_subject_first(agentbus_bus *bus)
{
	agentbus_stream *s;
	pthread_t thread;
	void *rc;

	t_create_stream(bus, "empty", 1u << 20, 4096);
	s = t_open_stream(bus, "empty");
	T_ASSERT(pthread_create(&thread, NULL, publish_empty_subject, s) == 0);
	T_ASSERT(pthread_join(thread, &rc) == 0);
	T_EQ((int64_t)(intptr_t)rc, AGENTBUS_E_INVALID);
	agentbus_stream_close(s);
	T_OK(agentbus_stream_delete(bus, "empty"));
}

/* Records above max_record and malformed subjects are refused, nothing published. */
static void test_refusals(agentbus_bus *bus)
{
	static const char *bad_subjects[] = { "a..b", ".a", "a.", "a b", "a.*", "a.>", "*", ">",
					      "tab\tx", "" };
	static char big[8192];
	char long_subject[AGENTBUS_SUBJECT_MAX + 2];
	struct agentbus_stream_info info;
	struct agentbus_message m;
	struct agentbus_claim c;
	agentbus_stream *s;

	t_create_stream(bus, "refuse", 1u << 20, 4096);
	s = t_open_stream(bus, "refuse");

	m = t_msg("big", big, 4097);
	T_ERR(agentbus_publish(s, &m, T_WAIT_MS), AGENTBUS_E_TOO_LARGE);
	T_ASSERT(strlen(agentbus_last_error()) > 0);
	m.payload_len = sizeof(big);
	T_ERR(agentbus_publish(s, &m, T_WAIT_MS), AGENTBUS_E_TOO_LARGE);
	T_ERR(agentbus_publish_batch(s, &m, 1, T_WAIT_MS), AGENTBUS_E_TOO_LARGE);
	T_ERR(agentbus_claim(s, &m, 4097, T_WAIT_MS, &c), AGENTBUS_E_TOO_LARGE);
	/* subject + payload of exactly max_record fits */
	m.payload_len = 4096 - 3;
	T_EQ(agentbus_publish(s, &m, T_WAIT_MS), 1);
	m.payload_len = 4096 - 2;
	T_ERR(agentbus_publish(s, &m, T_WAIT_MS), AGENTBUS_E_TOO_LARGE);

	for (size_t i = 0; i < sizeof(bad_subjects) / sizeof(bad_subjects[0]); i++) {
		m = t_msg(bad_subjects[i], "p", 1);
		T_ASSERTF(agentbus_publish(s, &m, T_WAIT_MS) == AGENTBUS_E_INVALID, "subject '%s' accepted",
			  bad_subjects[i]);
		T_ERR(agentbus_claim(s, &m, 1, T_WAIT_MS, &c), AGENTBUS_E_INVALID);
	}
	memset(long_subject, 'a', sizeof(long_subject));
	long_subject[AGENTBUS_SUBJECT_MAX + 1] = '\0';
	m = t_msg(long_subject, "p", 1);
	T_ERR(agentbus_publish(s, &m, T_WAIT_MS), AGENTBUS_E_INVALID);
	m.subject_len = AGENTBUS_SUBJECT_MAX;
	T_EQ(agentbus_publish(s, &m, T_WAIT_MS), 2);
	m.subject = NULL;
	m.subject_len = 0;
	T_ERR(agentbus_publish(s, &m, T_WAIT_MS), AGENTBUS_E_INVALID);
	T_ERR(agentbus_publish(s, NULL, T_WAIT_MS), AGENTBUS_E_INVALID);
	/* a payload length with no payload */
	m = t_msg("p", NULL, 10);
	T_ERR(agentbus_publish(s, &m, T_WAIT_MS), AGENTBUS_E_INVALID);

	T_OK(agentbus_stream_stat(s, &info));
	T_EQ(info.next_seq, 3);
	T_EQ(info.gaps, 0);
	agentbus_stream_close(s);
	T_OK(agentbus_stream_delete(bus, "refuse"));
}

/*
 * Records up to max_record (a quarter of the ring) cross the ring's end
 * cleanly: sizes from 0 to exactly the maximum, so frames of every size
 * meet the end of the ring. The reader keeps up (the ring filling is
 * test_backpressure's business).
 */
static void test_wrap_large(agentbus_bus *bus)
{
	static unsigned char buf[SMALL_MAX];
	struct agentbus_record rec;
	agentbus_stream *s;
	agentbus_sub *sub;
	uint64_t next_read = 1;

	t_create_stream(bus, "wrap", SMALL_RING, SMALL_MAX);
	s = t_open_stream(bus, "wrap");
	sub = t_subscribe(s, AGENTBUS_START_NEW, 0, AGENTBUS_WAIT_SPIN);
	for (uint64_t seq = 1; seq <= 600; seq++) {
		static const size_t sizes[] = { SMALL_MAX - 4, 0, 1, SMALL_MAX - 5, 7000, 4093, 12345 };
		size_t len = sizes[seq % 7];
		struct agentbus_message m = t_msg("wrap", buf, len);

		pattern_fill(buf, len, seq);
		T_EQ(agentbus_publish(s, &m, T_WAIT_MS), seq);
		while (next_read <= seq) {
			T_EQ(agentbus_sub_poll(sub, &rec), 1);
			T_EQ(rec.seq, next_read);
			T_EQ(rec.payload_len, sizes[next_read % 7]);
			T_ASSERTF(pattern_ok(rec.payload, rec.payload_len, rec.seq),
				  "payload of seq %" PRIu64 " altered", rec.seq);
			next_read++;
		}
	}
	T_EQ(agentbus_sub_poll(sub, &rec), 0);
	agentbus_sub_close(sub);
	agentbus_stream_close(s);
	T_OK(agentbus_stream_delete(bus, "wrap"));
}

/* Keys up to 65535 bytes are kept; longer keys and malformed headers are refused. */
static void test_key_and_header_limits(agentbus_bus *bus)
{
	static char key[65536];
	struct agentbus_header bad_header = { .name = "", .name_len = 0, .value = "v", .value_len = 1 };
	struct agentbus_header null_value = { .name = "n", .name_len = 1, .value = NULL, .value_len = 3 };
	struct agentbus_message m = t_msg("keyed", "p", 1);
	struct agentbus_record rec;
	agentbus_stream *s;
	agentbus_sub *sub;

	memset(key, 'k', sizeof(key));
	t_create_stream(bus, "keys", 1u << 20, 128u << 10);
	s = t_open_stream(bus, "keys");
	sub = t_subscribe(s, AGENTBUS_START_NEW, 0, AGENTBUS_WAIT_SPIN);
	m.key = key;
	m.key_len = 65535;
	T_EQ(agentbus_publish(s, &m, T_WAIT_MS), 1);
	T_EQ(agentbus_sub_poll(sub, &rec), 1);
	T_EQ(rec.key_len, 65535);
	T_ASSERT(memcmp(rec.key, key, 65535) == 0);
	T_EQ(rec.payload_len, 1);

	m.key_len = 65536;
	T_ERR(agentbus_publish(s, &m, T_WAIT_MS), AGENTBUS_E_INVALID);
	m.key = NULL;
	m.key_len = 5;
	T_ERR(agentbus_publish(s, &m, T_WAIT_MS), AGENTBUS_E_INVALID);
	m.key_len = 0;
	m.headers = &bad_header;
	m.header_count = 1;
	T_ERR(agentbus_publish(s, &m, T_WAIT_MS), AGENTBUS_E_INVALID);
	m.headers = &null_value;
	T_ERR(agentbus_publish(s, &m, T_WAIT_MS), AGENTBUS_E_INVALID);
	m.headers = NULL;
	m.header_count = 2;
	T_ERR(agentbus_publish(s, &m, T_WAIT_MS), AGENTBUS_E_INVALID);

	T_EQ(agentbus_sub_poll(sub, &rec), 0);
	agentbus_sub_close(sub);
	agentbus_stream_close(s);
	T_OK(agentbus_stream_delete(bus, "keys"));
}

/* Publish 1 KiB records without waiting until back-pressure; returns how many went in. */
static int fill_ring(agentbus_stream *s, int limit)
{
	static char kib[1024];
	struct agentbus_message m = t_msg("fill", kib, sizeof(kib));

	for (int i = 0; i < limit; i++) {
		int64_t r = agentbus_publish(s, &m, 0);

		if (r == AGENTBUS_E_BACKPRESSURE)
			return i;
		T_OK(r);
		/* The spill writer holds producers back too, until records are
		 * synced: wait for it, so only the subscription is left to. */
		T_OK(agentbus_wait_durable(s, (uint64_t)r, AGENTBUS_DURABILITY_SYNCED, T_WAIT_MS));
	}
	t_fail(__FILE__, __LINE__, "no back-pressure after %d KiB in a 64 KiB ring", limit);
}

/* Drain @sub completely; returns the number of records read. */
static int drain(agentbus_sub *sub)
{
	struct agentbus_record rec;
	int n = 0, r;

	while ((r = agentbus_sub_poll(sub, &rec)) == 1)
		n++;
	T_OK(r);
	return n;
}

struct late_reader {
	agentbus_sub *sub;
	int delay_ms;
	int read;
};

/* Wait a while, then read everything, freeing the ring for a waiting producer. */
static void *late_reader_main(void *arg)
{
	struct late_reader *lr = arg;

	t_sleep_us((uint64_t)lr->delay_ms * 1000);
	lr->read = drain(lr->sub);
	return NULL;
}

/*
 * A subscription that does not read holds the ring: timeout 0 gets
 * AGENTBUS_E_BACKPRESSURE at once, timeout 50 ms after waiting at least
 * about that long; reading frees room; a producer waiting with a timeout
 * gets in when a reader moves on meanwhile; with no subscription the ring
 * just overwrites.
 */
static void test_backpressure(agentbus_bus *bus)
{
	static char kib[1024];
	struct agentbus_message m = t_msg("fill", kib, sizeof(kib));
	struct late_reader lr;
	pthread_t thread;
	agentbus_stream *s;
	agentbus_sub *sub;
	uint64_t t0, waited;
	int n, read;
	int64_t r;

	struct agentbus_stream_config blocking = { .ring_size = SMALL_RING, .max_record = SMALL_MAX,
						   .overflow = AGENTBUS_OVERFLOW_BLOCK };

	T_OK(agentbus_stream_create(bus, "bp", &blocking));
	s = t_open_stream(bus, "bp");

	/* no subscription holds the ring: 10x its size goes through */
	for (int i = 0; i < 640; i++)
		T_OK(agentbus_publish(s, &m, T_WAIT_MS));

	sub = t_subscribe(s, AGENTBUS_START_NEW, 0, AGENTBUS_WAIT_SPIN);
	n = fill_ring(s, 1000);
	T_ASSERTF(n >= 32 && n <= 64, "%d KiB fit in a 64 KiB ring", n);
	T_ERR(agentbus_publish(s, &m, 0), AGENTBUS_E_BACKPRESSURE);

	t0 = t_now_ns();
	r = agentbus_publish(s, &m, 50);
	waited = t_now_ns() - t0;
	T_ERR(r, AGENTBUS_E_BACKPRESSURE);
	T_ASSERTF(waited >= 45000000u, "publish with 50 ms timeout gave up after %" PRIu64 " us",
		  waited / 1000);

	/* the reader moves on: room again, for at least as much as it read */
	read = drain(sub);
	T_EQ(read, n);
	T_OK(agentbus_publish(s, &m, T_WAIT_MS));
	n = fill_ring(s, 1000);
	T_ASSERT(n >= 16);

	/* a producer waiting with a timeout gets in when a reader drains meanwhile */
	lr = (struct late_reader){ .sub = sub, .delay_ms = 100 };
	T_EQ(pthread_create(&thread, NULL, late_reader_main, &lr), 0);
	t0 = t_now_ns();
	r = agentbus_publish(s, &m, 5000);
	waited = t_now_ns() - t0;
	pthread_join(thread, NULL);
	T_OK(r);
	T_ASSERTF(waited < 4000000000u, "waiting producer took %" PRIu64 " ms", waited / 1000000);
	T_ASSERT(lr.read >= n);

	/* closing the subscription releases the ring completely */
	fill_ring(s, 1000);
	agentbus_sub_close(sub);
	for (int i = 0; i < 200; i++)
		T_OK(agentbus_publish(s, &m, T_WAIT_MS));

	agentbus_stream_close(s);
	T_OK(agentbus_stream_delete(bus, "bp"));
}

int main(void)
{
	agentbus_bus *bus = t_setup("publish");

	T_RUN(test_round_trip, bus);
	T_RUN(test_dense, bus);
	T_RUN(test_batch, bus);
	T_RUN(test_claim, bus);
	T_RUN(test_refusals, bus);
	T_RUN(test_empty_subject_first, bus);
	T_RUN(test_wrap_large, bus);
	T_RUN(test_key_and_header_limits, bus);
	T_RUN(test_backpressure, bus);
	return t_done();
}
