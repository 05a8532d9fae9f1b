/*
 * durability.h - what the durability tests (test_durable, test_catchup,
 * test_daemon_kill, test_retention) share on top of helpers.h: a daemon
 * whose data directory is the test's own (passed as
 * agentbus_daemon_config.data_dir, not only through $AGENTBUS_DATA), records
 * whose payload proves their identity and integrity, and a replay of the log
 * that checks every record of a range.
 *
 * A payload is 8 bytes of a key (chosen by the test: who published it, and
 * its index) followed by bytes generated from the key, so any record read
 * back, from the ring or the log, can be checked with nothing but itself.
 */
#ifndef AGENTBUS_TEST_DURABILITY_H
#define AGENTBUS_TEST_DURABILITY_H

#include "helpers.h"

#define D_PAYLOAD_MAX 4096 /* largest payload these tests publish */

/* Key of record @index of producer @producer (producer 0: a lone one). */
static inline uint64_t d_key(uint32_t producer, uint32_t index)
{
	return (uint64_t)producer << 32 | index;
}

/* Fill @buf (@len >= 8 bytes) with the payload of @key. */
static inline void d_fill(unsigned char *buf, size_t len, uint64_t key)
{
	uint64_t state = key * 0x9E3779B97F4A7C15ull + 1, r = 0;

	memcpy(buf, &key, sizeof(key));
	for (size_t i = sizeof(key); i < len; i++) {
		if ((i & 7) == 0)
			r = t_rand(&state);
		buf[i] = (unsigned char)(r >> ((i & 7) * 8));
	}
}

/* True if @payload is a whole payload d_fill() made; sets *key. */
static inline bool d_intact(const void *payload, size_t len, uint64_t *key)
{
	unsigned char expect[D_PAYLOAD_MAX];

	if (len < sizeof(*key) || len > sizeof(expect))
		return false;
	memcpy(key, payload, sizeof(*key));
	d_fill(expect, len, *key);
	return memcmp(expect, payload, len) == 0;
}

/* Payload length of @key: 8 to 8 + @spread - 1 bytes, varying by key. */
static inline size_t d_len(uint64_t key, size_t spread)
{
	return 8 + (size_t)((key * 2654435761u) >> 7) % spread;
}

/* Publish the record of @key (@len bytes) at @level; the publish's result. */
static inline int64_t d_publish(agentbus_stream *stream, const char *subject, uint64_t key,
				size_t len, enum agentbus_durability level, int timeout_ms)
{
	unsigned char payload[D_PAYLOAD_MAX];
	struct agentbus_message m;

	/* Filled before t_msg() sees it: gcc 12 at -O0 flags a const pointer
	 * to an array not yet written (-Wmaybe-uninitialized). */
	d_fill(payload, len, key);
	m = t_msg(subject, payload, len);
	return agentbus_publish_durable(stream, &m, 1, timeout_ms, level);
}

/* Stream info without a daemon round trip, or fail. */
static inline struct agentbus_stream_info d_stat(agentbus_stream *stream)
{
	struct agentbus_stream_info info;
	int r = agentbus_stream_stat(stream, &info);

	if (r < 0)
		t_fail(__FILE__, __LINE__, "agentbus_stream_stat: %d (%s)", r, agentbus_strerror(r));
	return info;
}

/* Create stream @name with @config, or fail. */
static inline void d_create(agentbus_bus *bus, const char *name,
			    const struct agentbus_stream_config *config)
{
	int r = agentbus_stream_create(bus, name, config);

	if (r < 0)
		t_fail(__FILE__, __LINE__, "agentbus_stream_create(%s): %d (%s)", name, r,
		       agentbus_strerror(r));
}

/*
 * Start the embedded daemon of bus "t-<tag>-<pid>" on a fresh data directory
 * of the test's own, open the bus and return it. $AGENTBUS_DATA and
 * $AGENTBUS_BUS are set too, so agentbus_replay_open(NULL, ...) and
 * agentbus_verify(NULL, NULL, ...) read this bus's logs. t_cleanup() stops
 * the daemon and removes the bus and the directory.
 */
static inline agentbus_bus *d_setup(const char *tag)
{
	struct agentbus_daemon_config cfg = { 0 };
	int r;

	setvbuf(stdout, NULL, _IOLBF, 0);
	t_state.owner = getpid();
	t_make_data_dir();
	t_bus_name_for(t_state.bus_name, sizeof(t_state.bus_name), tag);
	setenv("AGENTBUS_BUS", t_state.bus_name, 1);
	agentbus_bus_destroy(t_state.bus_name);
	cfg.bus = t_state.bus_name;
	cfg.data_dir = t_state.data_dir;
	cfg.verbose = getenv("AGENTBUS_TEST_VERBOSE") != NULL;
	r = agentbus_daemon_start(&t_state.daemon, &cfg);
	if (r < 0)
		t_fail(__FILE__, __LINE__, "agentbus_daemon_start(%s): %d (%s)", t_state.bus_name, r,
		       agentbus_strerror(r));
	r = agentbus_open(&t_state.bus, t_state.bus_name);
	if (r < 0)
		t_fail(__FILE__, __LINE__, "agentbus_open(%s): %d (%s)", t_state.bus_name, r,
		       agentbus_strerror(r));
	return t_state.bus;
}

/*
 * Replay stream @name from its files (no daemon involved: bus NULL) over
 * seqs [@first, @last] and check each record: consecutive sequence numbers
 * from @first (the stream has no gaps there), an intact payload, and, when
 * @keys is given, the key @keys[seq - @first]. Fails the test otherwise;
 * returns the number of records checked, which must be all of them.
 */
static inline uint64_t d_replay_check(const char *name, uint64_t first, uint64_t last,
				      const uint64_t *keys)
{
	struct agentbus_replay_config cfg = { .start = AGENTBUS_START_SEQ, .start_seq = first,
					       .to_seq = last };
	struct agentbus_record rec;
	agentbus_replay *replay = NULL;
	uint64_t want = first, key;
	int r;

	r = agentbus_replay_open(NULL, name, &cfg, &replay);
	if (r < 0)
		t_fail(__FILE__, __LINE__, "agentbus_replay_open(%s): %d (%s)", name, r,
		       agentbus_strerror(r));
	while ((r = agentbus_replay_next(replay, &rec)) == 1) {
		T_ASSERTF(rec.seq == want, "replay of '%s': seq %" PRIu64 " where %" PRIu64
			  " was due", name, rec.seq, want);
		T_ASSERTF(d_intact(rec.payload, rec.payload_len, &key),
			  "replay of '%s': seq %" PRIu64 " has a damaged payload", name, rec.seq);
		T_ASSERTF(!keys || key == keys[want - first],
			  "replay of '%s': seq %" PRIu64 " holds key %" PRIx64 ", want %" PRIx64,
			  name, rec.seq, key, keys[want - first]);
		want++;
	}
	agentbus_replay_close(replay);
	T_ASSERTF(r == 0, "replay of '%s' at seq %" PRIu64 ": %d (%s)", name, want, r,
		  agentbus_strerror(r));
	T_ASSERTF(want == last + 1, "replay of '%s' ended at seq %" PRIu64 ", want %" PRIu64
		  " to %" PRIu64, name, want, first, last);
	return want - first;
}

#endif /* AGENTBUS_TEST_DURABILITY_H */
