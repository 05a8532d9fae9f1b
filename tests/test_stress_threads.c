/*
 * test_stress_threads.c - the stress test of test_stress.c with threads
 * instead of processes, so ThreadSanitizer can watch every access of the
 * ring (label "tsan").
 *
 * The producers share one stream handle, as the API allows; each checker
 * has its own subscription on it. Fewer workers than the process variant,
 * because under TSan every access costs many times more on 2 CPUs.
 *
 * Usage: test_stress_threads [block|spill] (see stress_create_stream()).
 */
#include <pthread.h>

#include "stress.h"

#define PRODUCERS 3
#define CHECKERS 3
#define STREAM "stress"

struct worker {
	struct stress_ctl *ctl;
	agentbus_stream *stream;
	agentbus_sub *sub; /* checkers only */
	uint32_t id;
	char who[16];
	int result;
	pthread_t thread;
};

static void *producer_main(void *arg)
{
	struct worker *w = arg;

	w->result = stress_produce(w->ctl, w->stream, w->id);
	return NULL;
}

static void *checker_main(void *arg)
{
	struct worker *w = arg;

	w->result = stress_consume(w->ctl, w->sub, w->who, (int)w->id % 3);
	return NULL;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "block";
	static struct stress_ctl ctl;
	unsigned seconds = t_stress_seconds(2);
	struct worker producers[PRODUCERS], checkers[CHECKERS];
	const char *seed_env = getenv("AGENTBUS_STRESS_SEED");
	struct agentbus_stream_info info;
	uint64_t published, aborted;
	agentbus_stream *s;
	agentbus_bus *bus;

	bus = t_setup("stressthr");
	ctl.producers = PRODUCERS;
	ctl.seed = seed_env ? strtoull(seed_env, NULL, 0) : t_now_ns();
	printf("seed %" PRIu64 " (AGENTBUS_STRESS_SEED), %u s, %d producer threads, %d checker threads, %s\n",
	       ctl.seed, seconds, PRODUCERS, CHECKERS, mode);
	/* smaller than the process variant: TSan makes each record slow */
	stress_create_stream(bus, STREAM, 256u << 10, mode);
	s = t_open_stream(bus, STREAM);

	ctl.hard_end_ns = t_now_ns() + (seconds + 90) * 1000000000ull;
	for (int i = 0; i < CHECKERS; i++) {
		struct agentbus_sub_config cfg = {
			.start = AGENTBUS_START_SEQ,
			.start_seq = 1,
			.wait = stress_wait_of(i),
		};

		checkers[i] = (struct worker){ .ctl = &ctl, .stream = s, .id = (uint32_t)i };
		snprintf(checkers[i].who, sizeof(checkers[i].who), "checker%d", i);
		T_OK(agentbus_subscribe(s, &cfg, &checkers[i].sub));
		T_EQ(pthread_create(&checkers[i].thread, NULL, checker_main, &checkers[i]), 0);
	}
	ctl.end_ns = t_now_ns() + seconds * 1000000000ull;
	for (int i = 0; i < PRODUCERS; i++) {
		producers[i] = (struct worker){ .ctl = &ctl, .stream = s, .id = (uint32_t)i };
		T_EQ(pthread_create(&producers[i].thread, NULL, producer_main, &producers[i]), 0);
	}
	/* every thread's loop is bounded by ctl.hard_end_ns, so join cannot hang */
	for (int i = 0; i < PRODUCERS; i++) {
		pthread_join(producers[i].thread, NULL);
		T_EQ(producers[i].result, T_PASS);
	}
	T_OK(stress_publish_end(s));
	for (int i = 0; i < CHECKERS; i++) {
		pthread_join(checkers[i].thread, NULL);
		T_EQ(checkers[i].result, T_PASS);
		agentbus_sub_close(checkers[i].sub);
	}

	stress_totals(&ctl, &published, &aborted);
	T_OK(agentbus_stream_stat(s, &info));
	printf("%" PRIu64 " records, %" PRIu64 " aborted claims, %" PRIu64
	       " times the ring was full, reached seq %" PRIu64 "\n",
	       published, aborted, (uint64_t)atomic_load(&ctl.backpressured), info.next_seq - 1);
	T_EQ(info.gaps, aborted);
	T_EQ(info.next_seq, published + aborted + 2);
	T_ASSERTF(info.first_seq > 1, "the ring never wrapped (first_seq %" PRIu64 ")",
		  info.first_seq);
	agentbus_stream_close(s);
	return t_done();
}
