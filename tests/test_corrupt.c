/*
 * test_corrupt.c - shared memory is untrusted input. While a producer
 * publishes and two subscriptions read, this test writes garbage into the
 * stream segment thousands of times: frame headers and lengths, forged
 * "committed" tags ahead of the readers, the tail, the limit, the
 * subscription slots, random ring bytes. Readers (and producers, and the
 * daemon) must return errors or skip, never crash, hang or read out of
 * bounds; run it under AddressSanitizer. Readers that get an error
 * re-subscribe, which exercises the join path under corruption too.
 *
 * AGENTBUS_CORRUPT_ROUNDS sets the number of corruptions (default 5000).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agentbus.h"
#include "bus/layout.h"

#define STREAM "victim"
#define RING (64u << 10)

struct shared {
	const char *bus_name;
	volatile int stop;
	uint64_t published, publish_errors; /* written by the producer thread only */
	uint64_t read[2], read_errors[2];   /* each reader its own slot */
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void fail(const char *what)
{
	fprintf(stderr, "FAIL: %s [%s]\n", what, agentbus_last_error());
	exit(1);
}

static void *producer(void *arg)
{
	struct shared *sh = arg;
	struct agentbus_header h = { "trace", 5, "abc", 3 };
	struct agentbus_message m = { .subject = "corrupt.me", .key = "k", .key_len = 1,
				      .headers = &h, .header_count = 1 };
	char payload[300];
	agentbus_stream *stream;
	agentbus_bus *bus;

	memset(payload, 'p', sizeof(payload));
	m.payload = payload;
	if (agentbus_open(&bus, sh->bus_name) != 0 || agentbus_stream_open(bus, STREAM, &stream) != 0)
		fail("producer setup");
	while (!sh->stop) {
		m.payload_len = (size_t)(rand() % (int)sizeof(payload));
		if (agentbus_publish(stream, &m, 5) > 0)
			sh->published++;
		else
			sh->publish_errors++;
	}
	agentbus_stream_close(stream);
	agentbus_close(bus);
	return NULL;
}

/* Touch every byte a record claims to have, so a bad length would show. */
static uint64_t consume(const struct agentbus_record *r)
{
	const unsigned char *p = r->payload;
	struct agentbus_header h;
	uint64_t sum = r->subject_len + r->key_len;
	uint32_t cursor = 0, i;

	for (i = 0; i < r->payload_len; i++)
		sum += p[i];
	for (i = 0; i < r->subject_len; i++)
		sum += (unsigned char)r->subject[i];
	while (agentbus_header_next(r, &cursor, &h) == 1)
		sum += h.name_len + h.value_len;
	return sum;
}

static void *reader(void *arg)
{
	struct shared *sh = ((void **)arg)[0];
	int index = (int)(intptr_t)((void **)arg)[1];
	struct agentbus_sub_config cfg = { .wait = index ? AGENTBUS_WAIT_SLEEP : AGENTBUS_WAIT_SPIN_SLEEP };
	struct agentbus_record recs[8];
	agentbus_stream *stream;
	agentbus_sub *sub = NULL;
	agentbus_bus *bus;
	volatile uint64_t sink = 0;
	int n, i;

	if (agentbus_open(&bus, sh->bus_name) != 0 || agentbus_stream_open(bus, STREAM, &stream) != 0)
		fail("reader setup");
	while (!sh->stop) {
		if (!sub && agentbus_subscribe(stream, &cfg, &sub) != 0) {
			sub = NULL;
			sh->read_errors[index]++;
			usleep(1000);
			continue;
		}
		n = index ? agentbus_sub_read(sub, &recs[0], 10) : agentbus_sub_read_batch(sub, recs, 8, 10);
		if (n < 0) {
			sh->read_errors[index]++;
			agentbus_sub_close(sub); /* move on: re-join at the tail */
			sub = NULL;
			continue;
		}
		for (i = 0; i < n; i++)
			sink += consume(&recs[i]);
		sh->read[index] += (uint64_t)n;
	}
	(void)sink;
	agentbus_sub_close(sub);
	agentbus_stream_close(stream);
	agentbus_close(bus);
	return NULL;
}

static uint64_t random64(void)
{
	return ((uint64_t)rand() << 33) ^ ((uint64_t)rand() << 11) ^ (uint64_t)rand();
}

/* Values that are likely to reach the checks: near-valid, huge, negative-ish. */
static uint64_t nasty_value(uint64_t near)
{
	switch (rand() % 5) {
	case 0: return random64();
	case 1: return near + (uint64_t)(rand() % 4096) - 2048;
	case 2: return UINT64_MAX - (uint64_t)(rand() % 16);
	case 3: return (uint64_t)(rand() % 256);
	default: return near * 2;
	}
}

/* Forge a COMMITTED (or GAP) frame where a reader is about to look, with
 * garbage lengths: the surest way to reach the readers' checks. */
static void forge_frame(struct stream_control *c, unsigned char *ring)
{
	uint64_t at = c->slots[rand() % 2].position & ~(uint64_t)(FRAME_ALIGN - 1);
	struct frame_header *h;

	at += FRAME_ALIGN * (uint64_t)(rand() % 4);
	h = (struct frame_header *)(ring + (at & (RING - 1)));
	h->frame_len = (uint32_t)nasty_value(256);
	h->seq = c->slots[0].next_seq + (uint64_t)(rand() % 3);
	h->subject_len = (uint16_t)rand();
	h->key_len = (uint16_t)rand();
	h->headers_len = (uint32_t)nasty_value(64);
	h->payload_len = (uint32_t)nasty_value(300);
	h->gap_frame_len = (uint32_t)nasty_value(256);
	h->gap_first_seq = h->seq;
	h->gap_seq_count = (uint32_t)nasty_value(1);
	__atomic_store_n(&h->tag, at | (uint64_t)(rand() % 2 ? 2 : 3), __ATOMIC_RELEASE);
}

/* The tail: mostly plausible (aligned) values, so the stream limps on. */
static void corrupt_tail(struct stream_control *c)
{
	uint64_t v = nasty_value(c->tail.lo);

	c->tail.lo = rand() % 8 ? v & ~(uint64_t)(FRAME_ALIGN - 1) : v;
	if (rand() % 2)
		c->tail.hi = nasty_value(c->tail.hi);
}

static void corrupt_once(struct stream_control *c, unsigned char *ring)
{
	unsigned char *frame = ring + ((uint64_t)rand() % (RING / FRAME_ALIGN)) * FRAME_ALIGN;
	struct sub_slot *slot = &c->slots[rand() % 4];

	switch (rand() % 10) {
	case 0: case 1: case 2: case 3: forge_frame(c, ring); break;
	case 4: /* a header field of some frame */
		((uint32_t *)frame)[rand() % 16] = (uint32_t)random64();
		break;
	case 5: corrupt_tail(c); break;
	case 6: c->limit.lo = nasty_value(c->limit.lo); if (rand() % 2) c->limit.hi = random64(); break;
	case 7: /* a slot: position, seq, owner or state */
		((uint32_t *)slot)[rand() % 6] = (uint32_t)random64();
		break;
	case 8: c->sleepers = (uint32_t)rand(); break;
	default: ring[(uint64_t)rand() % RING] = (unsigned char)rand();
	}
}

static void *map_segment(const char *bus_name, size_t *len)
{
	char base[512], path[1024];
	struct stat st;
	void *p;
	int fd;

	snprintf(base, sizeof(base), "/dev/shm/agentbus-%u", (unsigned)getuid());
	if (getenv("AGENTBUS_SHM_DIR"))
		snprintf(base, sizeof(base), "%s", getenv("AGENTBUS_SHM_DIR"));
	snprintf(path, sizeof(path), "%s/%s/streams/%s", base, bus_name, STREAM);
	fd = open(path, O_RDWR);
	if (fd < 0 || fstat(fd, &st) != 0)
		fail("open the segment to corrupt it");
	*len = (size_t)st.st_size;
	p = mmap(NULL, *len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		fail("map the segment");
	return p;
}

int main(void)
{
	struct agentbus_stream_config sc = { .ring_size = RING, .max_record = 4096 };
	struct agentbus_daemon_config dc = { 0 };
	struct shared sh = { 0 };
	pthread_t threads[3];
	void *reader_args[2][2];
	agentbus_daemon *daemon;
	agentbus_bus *bus;
	char bus_name[64];
	const char *env = getenv("AGENTBUS_CORRUPT_ROUNDS");
	long rounds = env ? atol(env) : 5000, done, i;
	uint64_t deadline;
	unsigned char *segment;
	size_t len;

	srand((unsigned)time(NULL));
	snprintf(bus_name, sizeof(bus_name), "t-corrupt-%d", (int)getpid());
	sh.bus_name = bus_name;
	dc.bus = bus_name;
	if (agentbus_daemon_start(&daemon, &dc) != 0 || agentbus_open(&bus, bus_name) != 0 ||
	    agentbus_stream_create(bus, STREAM, &sc) != 0)
		fail("setup");
	segment = map_segment(bus_name, &len);
	pthread_create(&threads[0], NULL, producer, &sh);
	for (i = 0; i < 2; i++) {
		reader_args[i][0] = &sh;
		reader_args[i][1] = (void *)(intptr_t)i;
		pthread_create(&threads[1 + i], NULL, reader, reader_args[i]);
	}
	usleep(20000);
	deadline = now_ns() + 60000000000ull;
	for (done = 0; done < rounds && now_ns() < deadline; done++) {
		corrupt_once((struct stream_control *)segment, segment + STREAM_CONTROL_SIZE);
		usleep(done % 4 ? 20 : 500);
	}
	sh.stop = 1;
	for (i = 0; i < 3; i++)
		pthread_join(threads[i], NULL);
	munmap(segment, len);
	printf("%ld corruptions: published %llu (%llu errors); read %llu + %llu (%llu + %llu errors)\n",
	       done, (unsigned long long)sh.published, (unsigned long long)sh.publish_errors,
	       (unsigned long long)sh.read[0], (unsigned long long)sh.read[1],
	       (unsigned long long)sh.read_errors[0], (unsigned long long)sh.read_errors[1]);
	if (sh.read_errors[0] + sh.read_errors[1] == 0)
		fail("no reader ever noticed the corruption: the test is not reaching the checks");
	if (sh.read[0] + sh.read[1] == 0)
		fail("readers got nothing at all");
	agentbus_stream_delete(bus, STREAM);
	agentbus_close(bus);
	agentbus_daemon_stop(daemon);
	if (agentbus_bus_destroy(bus_name) != 0)
		fail("destroy");
	printf("PASS\n");
	return 0;
}
