/*
 * test_stress.c - many producer processes and many subscriber processes on
 * one small ring that wraps many times.
 *
 * The checkers attach first (from seq 1), then the producers run for a few
 * seconds ($AGENTBUS_STRESS_SECONDS for a long run), then the parent
 * publishes an end marker and every checker proves it saw each record
 * exactly once, in order, intact (see stress.h). Each process opens its own
 * connection to the bus, as a real client would; the control block lives in
 * memory shared through t_shared(). Set AGENTBUS_STRESS_SEED to replay a
 * run's random choices.
 *
 * Usage: test_stress [block|spill] (see stress_create_stream()).
 */
#include "stress.h"

#define PRODUCERS 4
#define CHECKERS 3
#define STREAM "stress"

static struct stress_ctl *ctl;

/* Open the bus and the stream from inside a child. */
static int child_open(const char *who, agentbus_bus **bus, agentbus_stream **s)
{
	int r = agentbus_open(bus, t_state.bus_name);

	if (r < 0)
		return STRESS_FAIL(who, "agentbus_open: %d (%s)", r, agentbus_strerror(r));
	r = agentbus_stream_open(*bus, STREAM, s);
	if (r < 0)
		return STRESS_FAIL(who, "agentbus_stream_open: %d (%s)", r, agentbus_strerror(r));
	return T_PASS;
}

static int producer_main(const char *arg)
{
	uint32_t id = (uint32_t)atoi(arg);
	agentbus_stream *s;
	agentbus_bus *bus;
	char who[16];
	int r;

	ctl = t_shared(sizeof(*ctl));
	snprintf(who, sizeof(who), "producer%u", id);
	if (child_open(who, &bus, &s) != T_PASS)
		return T_FAIL;
	r = stress_produce(ctl, s, id);
	agentbus_stream_close(s);
	agentbus_close(bus);
	return r;
}

static int checker_main(const char *arg)
{
	int id = atoi(arg);
	struct agentbus_sub_config cfg = {
		.start = AGENTBUS_START_SEQ,
		.start_seq = 1,
	};
	agentbus_sub *sub = NULL;
	agentbus_stream *s;
	agentbus_bus *bus;
	char who[16];
	int r;

	ctl = t_shared(sizeof(*ctl));
	cfg.wait = stress_wait_of(id);
	snprintf(who, sizeof(who), "checker%d", id);
	if (child_open(who, &bus, &s) != T_PASS)
		return T_FAIL;
	r = agentbus_subscribe(s, &cfg, &sub);
	if (r < 0)
		return STRESS_FAIL(who, "subscribe: %d (%s)", r, agentbus_strerror(r));
	atomic_fetch_add(&ctl->subs_ready, 1);
	r = stress_consume(ctl, sub, who, id % 3);
	agentbus_sub_close(sub);
	agentbus_stream_close(s);
	agentbus_close(bus);
	return r;
}

/* Wait for every child in @pids; returns how many did not exit 0. */
static int reap(const pid_t *pids, int n, const char *what)
{
	int failed = 0;

	for (int i = 0; i < n; i++) {
		uint64_t left = ctl->hard_end_ns > t_now_ns() ? ctl->hard_end_ns - t_now_ns() : 0;
		int code = t_wait_child(pids[i], left / 1000000 + 1000);

		if (code != 0) {
			fprintf(stderr, "%s %d exited with %d\n", what, i, code);
			failed++;
		}
	}
	return failed;
}

/* Spawn child @role number @i. */
static pid_t spawn_numbered(const char *role, int i)
{
	char arg[16];

	snprintf(arg, sizeof(arg), "%d", i);
	return t_spawn(role, arg);
}

int main(int argc, char **argv)
{
	static const struct t_role roles[] = {
		{ "producer", producer_main },
		{ "checker", checker_main },
	};
	const char *mode = argc > 1 ? argv[1] : "block";
	unsigned seconds = t_stress_seconds(3);
	pid_t producers[PRODUCERS], checkers[CHECKERS];
	const char *seed_env = getenv("AGENTBUS_STRESS_SEED");
	struct agentbus_stream_info info;
	struct t_deadline ready_by;
	uint64_t published, aborted;
	agentbus_bus *bus;
	int failed;

	t_child_dispatch(argc, argv, roles, 2);
	bus = t_setup("stress");
	ctl = t_shared(sizeof(*ctl));
	ctl->producers = PRODUCERS;
	ctl->seed = seed_env ? strtoull(seed_env, NULL, 0) : t_now_ns();
	printf("seed %" PRIu64 " (AGENTBUS_STRESS_SEED), %u s, %d producers, %d checkers, %s\n",
	       ctl->seed, seconds, PRODUCERS, CHECKERS, mode);
	stress_create_stream(bus, STREAM, 1u << 20, mode);

	/* checkers first, so that none of them can miss seq 1 */
	ctl->hard_end_ns = t_now_ns() + (seconds + 60) * 1000000000ull;
	for (int i = 0; i < CHECKERS; i++)
		checkers[i] = spawn_numbered("checker", i);
	ready_by = t_deadline_ms(10000);
	while (atomic_load(&ctl->subs_ready) < CHECKERS && !t_expired(&ready_by))
		t_sleep_us(1000);
	T_EQ(atomic_load(&ctl->subs_ready), CHECKERS);

	ctl->end_ns = t_now_ns() + seconds * 1000000000ull;
	for (int i = 0; i < PRODUCERS; i++)
		producers[i] = spawn_numbered("producer", i);
	failed = reap(producers, PRODUCERS, "producer");
	T_EQ(failed, 0);

	{
		agentbus_stream *s = t_open_stream(bus, STREAM);

		T_OK(stress_publish_end(s));
		agentbus_stream_close(s);
	}
	failed = reap(checkers, CHECKERS, "checker");
	T_EQ(failed, 0);

	stress_totals(ctl, &published, &aborted);
	T_OK(agentbus_stream_info_get(bus, STREAM, &info));
	printf("%" PRIu64 " records, %" PRIu64 " aborted claims, %" PRIu64
	       " times the ring was full, ring of %" PRIu64 " KiB reached seq %" PRIu64 "\n",
	       published, aborted, (uint64_t)atomic_load(&ctl->backpressured),
	       info.ring_size >> 10, info.next_seq - 1);
	T_EQ(info.gaps, aborted);
	T_EQ(info.next_seq, published + aborted + 2);
	/* a short run that never wrapped would prove little */
	T_ASSERTF(info.first_seq > 1, "the ring never wrapped (first_seq %" PRIu64 ")",
		  info.first_seq);
	return t_done();
}
