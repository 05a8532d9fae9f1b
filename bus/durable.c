/*
 * durable.c - waiting for a record to reach the log (WRITTEN) or the disk
 * (SYNCED). The publisher sleeps on a futex in the stream's control area that
 * the spill writer bumps whenever the written or synced position moves or an
 * error appears (edge D2 in persist/spill.c); it never polls a file.
 *
 *   D2' seq_cst increment of durability_waiters, then re-reading the
 *       positions: pairs with the spill writer's store then seq_cst bump of
 *       durability_signal and load of durability_waiters.
 *   D3' acquire load of spill_error, then error_seq, then the position
 *       again: pairs with the spill writer's release stores of error_seq
 *       then spill_error (D3), made after the positions it had reached.
 */
#include <errno.h>

#include "bus/internal.h"
#include "shm/futex.h"

#define MAX_NAP_NS 10000000ll /* re-check the daemon's liveness this often */

static void wake_spill_writer(agentbus_bus *bus)
{
	if (!load_acquire(&bus->control->spill_asleep))
		return;
	fetch_add_seq_cst(&bus->control->spill_wakeup, 1);
	futex_wake_all(&bus->control->spill_wakeup);
}

/*
 * 1 when reached, 0 not yet, < 0 the spill writer's error for @seq. The
 * error seen (D3') comes with its own seq or a newer one, and the position
 * is loaded again before failing: it may have passed @seq after the first
 * load and before the error was published (a record WRITTEN, then an
 * fdatasync failed before it), and a level reached is never failed.
 */
static int reached(agentbus_stream *stream, uint64_t seq, const uint64_t *position_seq)
{
	struct stream_control *c = stream->control;
	int32_t err;

	if (load_seq_cst(position_seq) > seq)
		return 1;
	err = load_acquire(&c->spill_error); /* D3' */
	if (!err || load_acquire(&c->error_seq) > seq)
		return 0;
	if (load_seq_cst(position_seq) > seq)
		return 1;
	return set_error(err, "stream '%s': seq %llu cannot reach the log: %s", stream->name,
			 (unsigned long long)seq, agentbus_strerror(err));
}

static int wait_level(agentbus_stream *stream, uint64_t seq, const uint64_t *position_seq,
		      uint64_t deadline)
{
	struct stream_control *c = stream->control;
	uint64_t now;
	uint32_t signal;
	int64_t nap;
	int r;

	for (;;) {
		r = reached(stream, seq, position_seq);
		if (r)
			return r < 0 ? r : 0;
		if (load_relaxed(&c->deleted))
			return set_error(AGENTBUS_E_DELETED, "stream '%s' was deleted", stream->name);
		/* A next daemon adopts the ring and spills what is in it. */
		if (reconnect_if_daemon_gone(stream->bus) != 0)
			return set_error(AGENTBUS_E_NO_DAEMON,
					 "the daemon is gone: seq %llu may never reach the log",
					 (unsigned long long)seq);
		now = monotonic_ns();
		if (now >= deadline)
			return set_error(AGENTBUS_E_TIMEOUT, "stream '%s': seq %llu not yet durable",
					 stream->name, (unsigned long long)seq);
		signal = load_acquire(&c->durability_signal);
		fetch_add_seq_cst(&c->durability_waiters, 1); /* D2' */
		r = reached(stream, seq, position_seq);
		if (r == 0) {
			wake_spill_writer(stream->bus);
			nap = deadline - now < (uint64_t)MAX_NAP_NS ? (int64_t)(deadline - now) : MAX_NAP_NS;
			futex_wait(&c->durability_signal, signal, nap);
		}
		fetch_sub_seq_cst(&c->durability_waiters, 1);
	}
}

/* Can @level be reached on @stream at all? Checked before publishing, so a
 * refused level publishes nothing. */
int check_durability(agentbus_stream *stream, enum agentbus_durability level)
{
	if (level > AGENTBUS_DURABILITY_SYNCED)
		return set_error(AGENTBUS_E_INVALID, "unknown durability %d", (int)level);
	if (level == AGENTBUS_DURABILITY_SYNCED && stream->control->fsync == AGENTBUS_FSYNC_NEVER)
		return set_error(AGENTBUS_E_INVALID,
				 "stream '%s' never calls fsync: durability synced cannot be reached",
				 stream->name);
	return 0;
}

int wait_durable_until(agentbus_stream *stream, uint64_t seq, enum agentbus_durability level,
		       uint64_t deadline)
{
	struct stream_control *c = stream->control;
	int err;

	if (level == AGENTBUS_DURABILITY_DEFAULT)
		level = stream->durability;
	err = check_durability(stream, level);
	if (err)
		return err;
	if (level == AGENTBUS_DURABILITY_MEMORY)
		return 0;
	return wait_level(stream, seq,
			  level == AGENTBUS_DURABILITY_WRITTEN ? &c->written_seq : &c->synced_seq,
			  deadline);
}

uint64_t deadline_after(int timeout_ms)
{
	return timeout_ms < 0 ? UINT64_MAX : monotonic_ns() + (uint64_t)timeout_ms * 1000000u;
}

int agentbus_wait_durable(agentbus_stream *stream, uint64_t seq,
			  enum agentbus_durability durability, int timeout_ms)
{
	if (!stream || !stream->bus || seq == 0)
		return set_error(AGENTBUS_E_INVALID, "wait durable: no stream or seq 0");
	return wait_durable_until(stream, seq, durability, deadline_after(timeout_ms));
}
