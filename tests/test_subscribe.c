/*
 * test_subscribe.c - subscriptions: fan-out, start positions, filters, the
 * four kinds of read, and the three wait strategies.
 *
 * Each subscription is an independent cursor that sees every record in
 * order; where it starts (next, a seq, the oldest) is exact; a seq that the
 * ring has overwritten is AGENTBUS_E_SEQ_GONE; filters follow NATS rules
 * and count what they skip; a blocking read honours its timeout; and every
 * wait strategy wakes up when another thread publishes. read_copy out of
 * memory leaves its record unread (malloc is wrapped by the linker, and
 * fails in the thread that asks it to).
 */
#include <pthread.h>
#include <stdatomic.h>

#include "helpers.h"

/* Publish @n records "s.<i>" with an 8-byte payload holding the seq we expect. */
static void publish_n(agentbus_stream *s, int n, uint64_t first_seq)
{
	for (int i = 0; i < n; i++) {
		uint64_t want = first_seq + (uint64_t)i;
		struct agentbus_message m = t_msg("s.rec", &want, sizeof(want));

		T_EQ(agentbus_publish(s, &m, T_WAIT_MS), want);
	}
}

/* Poll one record and check that it is seq @want with its payload. */
static void expect_next(agentbus_sub *sub, uint64_t want)
{
	struct agentbus_record rec;
	uint64_t v;

	T_EQ(agentbus_sub_poll(sub, &rec), 1);
	T_EQ(rec.seq, want);
	T_EQ(rec.payload_len, sizeof(v));
	memcpy(&v, rec.payload, sizeof(v));
	T_EQ(v, want);
}

/* Three subscriptions each see all records, in order, independently. */
static void test_fanout(agentbus_bus *bus)
{
	enum { SUBS = 3, N = 500 };
	agentbus_sub *subs[SUBS];
	agentbus_stream *s;

	t_create_stream(bus, "fan", 1u << 20, 4096);
	s = t_open_stream(bus, "fan");
	for (int i = 0; i < SUBS; i++)
		subs[i] = t_subscribe(s, AGENTBUS_START_NEW, 0, AGENTBUS_WAIT_SPIN);
	publish_n(s, N, 1);
	/* interleave the readers so each cursor moves on its own */
	for (int i = 1; i <= N; i++) {
		expect_next(subs[0], (uint64_t)i);
		if (i % 2 == 0)
			expect_next(subs[1], (uint64_t)i / 2);
	}
	for (int i = N / 2 + 1; i <= N; i++)
		expect_next(subs[1], (uint64_t)i);
	for (int i = 1; i <= N; i++)
		expect_next(subs[2], (uint64_t)i);
	for (int i = 0; i < SUBS; i++) {
		struct agentbus_sub_stats st;
		struct agentbus_record rec;

		T_EQ(agentbus_sub_poll(subs[i], &rec), 0);
		agentbus_sub_stats_get(subs[i], &st);
		T_EQ(st.delivered, N);
		T_EQ(st.next_seq, N + 1);
		T_EQ(st.lag, 0);
		agentbus_sub_close(subs[i]);
	}
	agentbus_stream_close(s);
	T_OK(agentbus_stream_delete(bus, "fan"));
}

/* START_NEW, START_SEQ and START_OLDEST begin exactly where they say. */
static void test_start_positions(agentbus_bus *bus)
{
	struct agentbus_sub_stats st;
	struct agentbus_record rec;
	agentbus_sub *at_new, *at_seq, *at_oldest, *at_next;
	agentbus_stream *s;

	t_create_stream(bus, "start", 1u << 20, 4096);
	s = t_open_stream(bus, "start");
	publish_n(s, 5, 1);

	at_new = t_subscribe(s, AGENTBUS_START_NEW, 0, AGENTBUS_WAIT_SPIN);
	at_seq = t_subscribe(s, AGENTBUS_START_SEQ, 3, AGENTBUS_WAIT_SPIN);
	at_oldest = t_subscribe(s, AGENTBUS_START_OLDEST, 0, AGENTBUS_WAIT_SPIN);
	at_next = t_subscribe(s, AGENTBUS_START_SEQ, 6, AGENTBUS_WAIT_SPIN);

	T_EQ(agentbus_sub_poll(at_new, &rec), 0);
	T_EQ(agentbus_sub_poll(at_next, &rec), 0);
	agentbus_sub_stats_get(at_seq, &st);
	T_EQ(st.next_seq, 3);
	T_EQ(st.lag, 3);

	publish_n(s, 1, 6);
	expect_next(at_new, 6);
	expect_next(at_next, 6);
	for (uint64_t i = 3; i <= 6; i++)
		expect_next(at_seq, i);
	for (uint64_t i = 1; i <= 6; i++)
		expect_next(at_oldest, i);

	agentbus_sub_close(at_new);
	agentbus_sub_close(at_seq);
	agentbus_sub_close(at_oldest);
	agentbus_sub_close(at_next);
	agentbus_stream_close(s);
	T_OK(agentbus_stream_delete(bus, "start"));
}

/*
 * Push far more than the ring holds with no subscriber: early seqs are
 * overwritten in the ring but kept in the log. START_SEQ on one of them, and
 * START_OLDEST, read them back from the log, in order, then go on in the
 * ring (issue 3: before the log existed, this was AGENTBUS_E_SEQ_GONE).
 */
static void read_seqs(agentbus_sub *sub, uint64_t from, uint64_t to, size_t payload_len)
{
	struct agentbus_record rec;

	for (uint64_t seq = from; seq <= to; seq++) {
		T_EQ(agentbus_sub_read(sub, &rec, T_WAIT_MS), 1);
		T_EQ(rec.seq, seq);
		T_EQ(rec.payload_len, payload_len);
	}
	T_EQ(agentbus_sub_poll(sub, &rec), 0);
}

static void test_seq_gone(agentbus_bus *bus)
{
	static char kib[1024];
	struct agentbus_sub_config cfg = { .start = AGENTBUS_START_SEQ, .start_seq = 1 };
	struct agentbus_message m = t_msg("gone", kib, sizeof(kib));
	struct agentbus_stream_info info;
	struct agentbus_sub_stats st;
	agentbus_sub *sub = NULL;
	agentbus_stream *s;

	t_create_stream(bus, "gone", 64u << 10, 16u << 10);
	s = t_open_stream(bus, "gone");
	for (int i = 0; i < 1000; i++)
		T_EQ(agentbus_publish(s, &m, T_WAIT_MS), i + 1);
	T_OK(agentbus_stream_stat(s, &info));
	T_EQ(info.next_seq, 1001);
	T_ASSERTF(info.first_seq > 900 && info.first_seq < 1001,
		  "first_seq %" PRIu64 " after 1000 KiB through a 64 KiB ring", info.first_seq);
	T_ASSERT(info.ring_used <= info.ring_size);
	T_EQ(info.log_first_seq, 1);

	T_OK(agentbus_subscribe(s, &cfg, &sub));
	read_seqs(sub, 1, 1000, sizeof(kib));
	agentbus_sub_stats_get(sub, &st);
	T_ASSERTF(st.from_log > 0, "%" PRIu64 " records came from the log", st.from_log);
	agentbus_sub_close(sub);

	cfg.start_seq = 500;
	T_OK(agentbus_subscribe(s, &cfg, &sub));
	read_seqs(sub, 500, 1000, sizeof(kib));
	agentbus_sub_close(sub);

	sub = t_subscribe(s, AGENTBUS_START_OLDEST, 0, AGENTBUS_WAIT_SPIN);
	read_seqs(sub, 1, 1000, sizeof(kib));
	agentbus_sub_close(sub);
	agentbus_stream_close(s);
	T_OK(agentbus_stream_delete(bus, "gone"));
}

/* Subscribe with filter @pattern from the oldest record. */
static agentbus_sub *sub_filtered(agentbus_stream *s, const char *pattern)
{
	struct agentbus_sub_config cfg = {
		.filter = pattern,
		.start = AGENTBUS_START_OLDEST,
		.wait = AGENTBUS_WAIT_SPIN,
	};
	agentbus_sub *sub = NULL;

	T_OK(agentbus_subscribe(s, &cfg, &sub));
	return sub;
}

/* Read @sub to the end and check that it delivers exactly @want, in order. */
static void expect_subjects(agentbus_sub *sub, const char *const *want, size_t n,
			    uint64_t total)
{
	struct agentbus_sub_stats st;
	struct agentbus_record rec;

	for (size_t i = 0; i < n; i++) {
		T_EQ(agentbus_sub_poll(sub, &rec), 1);
		T_ASSERTF(t_subject_is(&rec, want[i]), "got subject '%.*s', want '%s'",
			  (int)rec.subject_len, rec.subject, want[i]);
	}
	T_EQ(agentbus_sub_poll(sub, &rec), 0);
	agentbus_sub_stats_get(sub, &st);
	T_EQ(st.delivered, n);
	T_EQ(st.filtered, total - n);
	T_EQ(st.next_seq, total + 1);
	T_EQ(st.lag, 0);
}

/* NATS-style filters: '*' is one token, '>' one or more at the end. */
static void test_filters(agentbus_bus *bus)
{
	static const char *subjects[] = {
		"tool.call", "tool.call.search", "agent.x", "tool", "agent.x.y",
		"agent", "tool.result", "other.tool.call", "agentx.y",
	};
	static const char *want_tool_star[] = { "tool.call", "tool.result" };
	static const char *want_agent_gt[] = { "agent.x", "agent.x.y" };
	static const char *want_star_call[] = { "tool.call" };
	static const char *want_exact[] = { "tool.call.search" };
	static const char *bad_patterns[] = { "", "a.>.b", "tool.**", "a..b", ".a", "a.", "> ",
					      "a*.b", "a.b>" };
	const uint64_t total = sizeof(subjects) / sizeof(subjects[0]);
	struct agentbus_sub_config cfg = { .start = AGENTBUS_START_OLDEST };
	agentbus_sub *tool_star, *agent_gt, *star_call, *exact, *all, *sub = NULL;
	agentbus_stream *s;

	t_create_stream(bus, "filter", 1u << 20, 4096);
	s = t_open_stream(bus, "filter");
	for (size_t i = 0; i < total; i++) {
		struct agentbus_message m = t_msg(subjects[i], NULL, 0);

		T_EQ(agentbus_publish(s, &m, T_WAIT_MS), i + 1);
	}
	tool_star = sub_filtered(s, "tool.*");
	agent_gt = sub_filtered(s, "agent.>");
	star_call = sub_filtered(s, "*.call");
	exact = sub_filtered(s, "tool.call.search");
	all = sub_filtered(s, ">");
	expect_subjects(tool_star, want_tool_star, 2, total);
	expect_subjects(agent_gt, want_agent_gt, 2, total);
	expect_subjects(star_call, want_star_call, 1, total);
	expect_subjects(exact, want_exact, 1, total);
	expect_subjects(all, subjects, total, total);

	for (size_t i = 0; i < sizeof(bad_patterns) / sizeof(bad_patterns[0]); i++) {
		int r;

		cfg.filter = bad_patterns[i];
		r = agentbus_subscribe(s, &cfg, &sub);
		T_ASSERTF(r == AGENTBUS_E_INVALID, "pattern '%s': got %d (%s)", bad_patterns[i], r,
			  agentbus_strerror(r));
	}

	agentbus_sub_close(tool_star);
	agentbus_sub_close(agent_gt);
	agentbus_sub_close(star_call);
	agentbus_sub_close(exact);
	agentbus_sub_close(all);
	agentbus_stream_close(s);
	T_OK(agentbus_stream_delete(bus, "filter"));
}

/*
 * poll on an empty stream returns 0 at once; a blocking read with a timeout
 * returns 0 after roughly the timeout, for each wait strategy; lag counts
 * what is published and not yet looked at.
 */
static void test_empty_and_timeout(agentbus_bus *bus)
{
	static const enum agentbus_wait waits[] = { AGENTBUS_WAIT_SPIN, AGENTBUS_WAIT_SPIN_SLEEP,
						    AGENTBUS_WAIT_SLEEP };
	struct agentbus_sub_stats st;
	struct agentbus_record rec;
	agentbus_stream *s;

	t_create_stream(bus, "empty", 1u << 20, 4096);
	s = t_open_stream(bus, "empty");
	for (size_t w = 0; w < 3; w++) {
		agentbus_sub *sub = t_subscribe(s, AGENTBUS_START_NEW, 0, waits[w]);
		uint64_t t0 = t_now_ns(), took;

		T_EQ(agentbus_sub_poll(sub, &rec), 0);
		T_EQ(agentbus_sub_read(sub, &rec, 0), 0);
		T_ASSERT(t_now_ns() - t0 < 1000000000u);

		t0 = t_now_ns();
		T_EQ(agentbus_sub_read(sub, &rec, 100), 0);
		took = t_now_ns() - t0;
		T_ASSERTF(took >= 90000000u && took < 5000000000u,
			  "wait %d: read with 100 ms timeout returned after %" PRIu64 " us",
			  (int)waits[w], took / 1000);
		T_EQ(agentbus_sub_read_batch(sub, &rec, 1, 20), 0);
		agentbus_sub_close(sub);
	}

	/* lag */
	{
		agentbus_sub *sub = t_subscribe(s, AGENTBUS_START_NEW, 0, AGENTBUS_WAIT_SPIN);

		publish_n(s, 10, 1);
		agentbus_sub_stats_get(sub, &st);
		T_EQ(st.lag, 10);
		T_EQ(st.delivered, 0);
		for (uint64_t i = 1; i <= 3; i++)
			expect_next(sub, i);
		agentbus_sub_stats_get(sub, &st);
		T_EQ(st.lag, 7);
		T_EQ(st.delivered, 3);
		T_EQ(st.next_seq, 4);
		agentbus_sub_close(sub);
	}
	agentbus_stream_close(s);
	T_OK(agentbus_stream_delete(bus, "empty"));
}

/* read_batch takes up to max of what is ready; every view stays valid. */
static void test_read_batch(agentbus_bus *bus)
{
	struct agentbus_record recs[4];
	agentbus_stream *s;
	agentbus_sub *sub;
	uint64_t next = 1;

	t_create_stream(bus, "rbatch", 1u << 20, 4096);
	s = t_open_stream(bus, "rbatch");
	sub = t_subscribe(s, AGENTBUS_START_NEW, 0, AGENTBUS_WAIT_SPIN_SLEEP);
	publish_n(s, 10, 1);
	for (int want = 4; next <= 10; want = (int)(10 - next + 1 < 4 ? 10 - next + 1 : 4)) {
		T_EQ(agentbus_sub_read_batch(sub, recs, 4, 1000), want);
		/* check only after the whole batch: all views must still hold */
		for (int i = 0; i < want; i++) {
			uint64_t v;

			T_EQ(recs[i].seq, next);
			memcpy(&v, recs[i].payload, sizeof(v));
			T_EQ(v, next);
			next++;
		}
	}
	T_EQ(agentbus_sub_read_batch(sub, recs, 4, 0), 0);
	T_ERR(agentbus_sub_read_batch(sub, recs, 0, 0), AGENTBUS_E_INVALID);
	agentbus_sub_close(sub);
	agentbus_stream_close(s);
	T_OK(agentbus_stream_delete(bus, "rbatch"));
}

/* While set, every malloc of this thread fails (other threads' go on). */
static _Atomic(pthread_t *) malloc_fails_in;

void *__real_malloc(size_t size);
void *__wrap_malloc(size_t size);
void *__wrap_malloc(size_t size)
{
	pthread_t *failing = atomic_load(&malloc_fails_in);

	if (failing && pthread_equal(*failing, pthread_self())) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_malloc(size);
}

/* read_copy copies the payload; a too-small buffer keeps the record for later. */
static void test_read_copy(agentbus_bus *bus)
{
	unsigned char payload[100], buf[128];
	struct agentbus_message empty = t_msg("copy.empty", NULL, 0);
	struct agentbus_message m;
	struct agentbus_record rec;
	pthread_t self = pthread_self();
	agentbus_stream *s;
	agentbus_sub *sub;

	/* Filled before t_msg() sees it (gcc 12 -O0 -Wmaybe-uninitialized). */
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (unsigned char)(i * 3 + 1);
	m = t_msg("copy.me", payload, sizeof(payload));
	t_create_stream(bus, "rcopy", 1u << 20, 4096);
	s = t_open_stream(bus, "rcopy");
	sub = t_subscribe(s, AGENTBUS_START_NEW, 0, AGENTBUS_WAIT_SPIN);
	T_EQ(agentbus_publish(s, &m, T_WAIT_MS), 1);
	T_EQ(agentbus_publish(s, &empty, T_WAIT_MS), 2);

	/* Out of memory for a record it might have to keep: nothing is read. */
	atomic_store(&malloc_fails_in, &self);
	T_ERR(agentbus_sub_read_copy(sub, &rec, buf, 50, 0), -ENOMEM);
	atomic_store(&malloc_fails_in, NULL);
	T_ERR(agentbus_sub_read_copy(sub, &rec, buf, 50, 0), AGENTBUS_E_TOO_LARGE);
	T_ERR(agentbus_sub_read_copy(sub, &rec, buf, 99, 0), AGENTBUS_E_TOO_LARGE);
	memset(buf, 0, sizeof(buf));
	T_EQ(agentbus_sub_read_copy(sub, &rec, buf, sizeof(payload), 0), 1);
	T_EQ(rec.seq, 1);
	T_ASSERT(rec.payload == (const void *)buf);
	T_EQ(rec.payload_len, sizeof(payload));
	T_ASSERT(memcmp(buf, payload, sizeof(payload)) == 0);
	T_ASSERT(t_subject_is(&rec, "copy.me"));

	T_EQ(agentbus_sub_read_copy(sub, &rec, NULL, 0, 0), 1);
	T_EQ(rec.seq, 2);
	T_EQ(rec.payload_len, 0);
	T_EQ(agentbus_sub_read_copy(sub, &rec, buf, sizeof(buf), 0), 0);

	agentbus_sub_close(sub);
	agentbus_stream_close(s);
	T_OK(agentbus_stream_delete(bus, "rcopy"));
}

struct waker {
	agentbus_stream *stream;
	uint32_t want_sleepers; /* wait until this many sleep before publishing */
	int delay_ms;           /* then wait this long */
	int64_t result;         /* what the publish returned */
	uint32_t max_sleepers;  /* most sleepers seen before publishing */
	uint64_t publish_ns;    /* t_now_ns() right before the publish */
};

/* Sample the stream's sleepers into w->max_sleepers; returns the sample. */
static uint32_t sample_sleepers(struct waker *w)
{
	struct agentbus_stream_info info = { 0 };

	if (agentbus_stream_stat(w->stream, &info) == 0 && info.sleepers > w->max_sleepers)
		w->max_sleepers = info.sleepers;
	return info.sleepers;
}

/*
 * Wait for the reader to settle (asleep, or spinning), watching the sleeper
 * count all along, then publish one record. A sleeping reader may wake by
 * itself now and then (a capped nap), so one sample could miss it; the
 * maximum over the whole wait cannot.
 */
static void *waker_main(void *arg)
{
	struct waker *w = arg;
	struct t_deadline d = t_deadline_ms(3000);
	uint64_t v = 4242;
	struct agentbus_message m = t_msg("wake.up", &v, sizeof(v));

	while (!t_expired(&d) && sample_sleepers(w) < w->want_sleepers)
		t_sleep_us(1000);
	d = t_deadline_ms((uint64_t)w->delay_ms);
	while (!t_expired(&d)) {
		sample_sleepers(w);
		t_sleep_us(1000);
	}
	w->publish_ns = t_now_ns();
	w->result = agentbus_publish(w->stream, &m, 1000);
	return NULL;
}

/* Median of @n values (sorts them). */
static uint64_t median(uint64_t *v, size_t n)
{
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && v[j - 1] > v[j]; j--) {
			uint64_t t = v[j];

			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	return v[n / 2];
}

/*
 * Each wait strategy wakes on a publish from another thread. SLEEP and
 * SPIN_SLEEP (with a short spin) must be seen asleep (sleepers == 1) before
 * the publish, so the futex path is what wakes them; SPIN never sleeps.
 *
 * A sleeping reader also re-checks on its own every so often (the core caps
 * a nap, ~100 ms), which would hide a missing futex wake from a test that
 * only waits for the record. So each case runs several rounds and the
 * median delay from publish to read must be far below that cap.
 */
static void test_wait_strategies(agentbus_bus *bus)
{
	enum { ROUNDS = 7 };
	static const struct {
		enum agentbus_wait wait;
		uint32_t spin_ns;
		uint32_t sleepers;
	} cases[] = {
		{ AGENTBUS_WAIT_SPIN, 0, 0 },
		{ AGENTBUS_WAIT_SPIN_SLEEP, 1000, 1 },
		{ AGENTBUS_WAIT_SPIN_SLEEP, 0, 1 }, /* default spin of 50 us, then sleep */
		{ AGENTBUS_WAIT_SLEEP, 0, 1 },
	};
	agentbus_stream *s;

	t_create_stream(bus, "wait", 1u << 20, 4096);
	s = t_open_stream(bus, "wait");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct agentbus_sub_config cfg = { .wait = cases[i].wait, .spin_ns = cases[i].spin_ns };
		struct agentbus_stream_info info;
		agentbus_sub *sub = NULL;
		uint64_t delays[ROUNDS];

		T_OK(agentbus_subscribe(s, &cfg, &sub));
		for (int round = 0; round < ROUNDS; round++) {
			struct waker w = { .stream = s, .want_sleepers = cases[i].sleepers,
					   .delay_ms = round == 0 ? 50 : 5 };
			struct agentbus_record rec;
			pthread_t thread;
			uint64_t t0, done, v;
			int r;

			T_EQ(pthread_create(&thread, NULL, waker_main, &w), 0);
			t0 = t_now_ns();
			r = agentbus_sub_read(sub, &rec, 5000);
			done = t_now_ns();
			pthread_join(thread, NULL);
			T_OK(w.result);
			T_ASSERTF(r == 1, "case %zu (wait %d): read returned %d (%s) after %" PRIu64
				  " ms", i, (int)cases[i].wait, r, agentbus_strerror(r),
				  (done - t0) / 1000000);
			T_EQ(rec.seq, w.result);
			memcpy(&v, rec.payload, sizeof(v));
			T_EQ(v, 4242);
			T_ASSERTF(w.max_sleepers == cases[i].sleepers,
				  "case %zu (wait %d): up to %u sleepers before the publish, want %u", i,
				  (int)cases[i].wait, w.max_sleepers, cases[i].sleepers);
			delays[round] = done > w.publish_ns ? done - w.publish_ns : 0;
		}
		{
			uint64_t med = median(delays, ROUNDS);

			printf("  wait %d spin_ns %u: median wake %" PRIu64 " us\n", (int)cases[i].wait,
			       cases[i].spin_ns, med / 1000);
			T_ASSERTF(med < 20000000u, "case %zu (wait %d): median wake %" PRIu64
				  " ms; is the futex wake missing?", i, (int)cases[i].wait,
				  med / 1000000);
		}
		T_OK(agentbus_stream_stat(s, &info));
		T_EQ(info.sleepers, 0);
		agentbus_sub_close(sub);
	}
	agentbus_stream_close(s);
	T_OK(agentbus_stream_delete(bus, "wait"));
}

struct noise {
	agentbus_stream *stream;
	int count;      /* records to publish, one per ms */
	int failures;   /* publishes that did not return a seq */
};

/* Publish @count non-matching records ("b.x"), about one per millisecond. */
static void *noise_main(void *arg)
{
	struct noise *n = arg;
	struct agentbus_message m = t_msg("b.x", "n", 1);

	for (int i = 0; i < n->count; i++) {
		if (agentbus_publish(n->stream, &m, 1000) <= 0)
			n->failures++;
		t_sleep_us(1000);
	}
	return NULL;
}

/*
 * A filtered blocking read is not woken into returning by records it
 * filters out: it keeps waiting until its timeout, counting them, and
 * returns the first match when one comes.
 */
static void test_filtered_blocking(agentbus_bus *bus)
{
	static const enum agentbus_wait waits[] = { AGENTBUS_WAIT_SPIN, AGENTBUS_WAIT_SPIN_SLEEP,
						    AGENTBUS_WAIT_SLEEP };
	struct agentbus_message match = t_msg("a.y", "m", 1);
	agentbus_stream *s;

	t_create_stream(bus, "fblock", 1u << 20, 4096);
	s = t_open_stream(bus, "fblock");
	for (size_t w = 0; w < 3; w++) {
		struct agentbus_sub_config cfg = { .filter = "a.*", .wait = waits[w] };
		struct noise noise = { .stream = s, .count = 20 };
		struct agentbus_sub_stats st;
		struct agentbus_record rec;
		agentbus_sub *sub = NULL;
		pthread_t thread;
		uint64_t t0, took;
		int64_t seq;
		int r;

		T_OK(agentbus_subscribe(s, &cfg, &sub));
		T_EQ(pthread_create(&thread, NULL, noise_main, &noise), 0);
		t0 = t_now_ns();
		r = agentbus_sub_read(sub, &rec, 300);
		took = t_now_ns() - t0;
		pthread_join(thread, NULL);
		T_EQ(noise.failures, 0);
		T_ASSERTF(r == 0, "wait %d: filtered read returned %d (%s)", (int)waits[w], r,
			  r == 1 ? "a record" : agentbus_strerror(r));
		T_ASSERTF(took >= 270000000u, "wait %d: filtered read gave up after %" PRIu64 " ms",
			  (int)waits[w], took / 1000000);
		/* the noise may still be in flight at the timeout: drain it */
		T_EQ(agentbus_sub_poll(sub, &rec), 0);
		agentbus_sub_stats_get(sub, &st);
		T_EQ(st.filtered, 20);
		T_EQ(st.delivered, 0);

		seq = T_OK(agentbus_publish(s, &match, T_WAIT_MS));
		T_EQ(agentbus_sub_read(sub, &rec, 1000), 1);
		T_EQ(rec.seq, seq);
		T_ASSERT(t_subject_is(&rec, "a.y"));
		agentbus_sub_close(sub);
	}
	agentbus_stream_close(s);
	T_OK(agentbus_stream_delete(bus, "fblock"));
}

/* Out-of-range start and wait values are refused. */
static void test_bad_config(agentbus_bus *bus)
{
	struct agentbus_sub_config cfg = { 0 };
	agentbus_sub *sub = NULL;
	agentbus_stream *s;

	t_create_stream(bus, "badcfg", 64u << 10, 1024);
	s = t_open_stream(bus, "badcfg");
	cfg.start = (enum agentbus_start)7;
	T_ERR(agentbus_subscribe(s, &cfg, &sub), AGENTBUS_E_INVALID);
	cfg.start = AGENTBUS_START_NEW;
	cfg.wait = (enum agentbus_wait)9;
	T_ERR(agentbus_subscribe(s, &cfg, &sub), AGENTBUS_E_INVALID);
	agentbus_stream_close(s);
	T_OK(agentbus_stream_delete(bus, "badcfg"));
}

int main(void)
{
	agentbus_bus *bus = t_setup("subscribe");

	T_RUN(test_fanout, bus);
	T_RUN(test_start_positions, bus);
	T_RUN(test_seq_gone, bus);
	T_RUN(test_filters, bus);
	T_RUN(test_empty_and_timeout, bus);
	T_RUN(test_read_batch, bus);
	T_RUN(test_read_copy, bus);
	T_RUN(test_wait_strategies, bus);
	T_RUN(test_filtered_blocking, bus);
	T_RUN(test_bad_config, bus);
	return t_done();
}
