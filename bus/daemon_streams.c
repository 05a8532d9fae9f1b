/*
 * daemon_streams.c - the streams a daemon serves: each is a segment in shared
 * memory plus a log on disk (<data dir>/<bus>/<stream>/), joined by the spill
 * writer. At start the daemon recovers every log and re-attaches it to its
 * ring: the ring an earlier daemon left in shared memory, or a new ring that
 * goes on after the log's last record (after a reboot).
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bus/daemon.h"
#include "bus/protocol.h"

#define RETENTION_EVERY_NS 1000000000ull

static int log_dir_of(struct agentbus_daemon *d, const char *name, char *out)
{
	return path_join(out, PATH_LEN, d->bus_data_dir, name);
}

static void report_to_daemon_log(void *arg, const char *message)
{
	daemon_warn(arg, "%s", message);
}

static struct watched_stream *add_watched(struct agentbus_daemon *d, agentbus_stream *stream)
{
	struct watched_stream *grown;

	if (d->stream_count == d->stream_capacity) {
		size_t cap = d->stream_capacity ? 2 * d->stream_capacity : 8;

		grown = realloc(d->streams, cap * sizeof(*grown));
		if (!grown)
			return NULL;
		d->streams = grown;
		d->stream_capacity = cap;
	}
	memset(&d->streams[d->stream_count], 0, sizeof(d->streams[0]));
	d->streams[d->stream_count].stream = stream;
	return &d->streams[d->stream_count++];
}

struct watched_stream *daemon_find_stream(struct agentbus_daemon *d, const char *name)
{
	size_t i;

	for (i = 0; i < d->stream_count; i++)
		if (strcmp(d->streams[i].stream->name, name) == 0)
			return &d->streams[i];
	return NULL;
}

/* Stop spilling and unmap; the shared memory and the log stay. */
static void unwatch(struct agentbus_daemon *d, struct watched_stream *w)
{
	/* A deleted stream (daemon_delete_stream() set the flag) is not worth
	 * waiting for a full disk; any other, whose records not yet in the log
	 * stay in its ring for the next daemon, gets a few seconds. A client
	 * that forges the flag saves only those seconds: no record is lost. */
	if (w->spill)
		spill_remove_stream(d->spill, w->spill,
				    load_relaxed(&w->stream->control->deleted) ? SPILL_REMOVE_DELETE
									       : SPILL_REMOVE_DETACH);
	stream_unmap(w->stream);
	*w = d->streams[--d->stream_count];
}

void daemon_unwatch_all(struct agentbus_daemon *d)
{
	/* A full disk then holds the stop back a few seconds, not that per stream
	 * (with dozens, past a service manager's stop timeout). */
	if (d->spill)
		spill_writer_stopping(d->spill);
	while (d->stream_count)
		unwatch(d, &d->streams[0]);
}

/* ---------------------------------------------------------------- spill hookup */

static void fill_source(struct agentbus_daemon *d, struct watched_stream *w,
			struct spill_source *src)
{
	agentbus_stream *s = w->stream;
	struct stream_control *c = s->control;

	memset(src, 0, sizeof(*src));
	snprintf(src->name, sizeof(src->name), "%s", s->name);
	log_dir_of(d, s->name, src->log_dir);
	src->ring = s->ring;
	src->ring_size = s->ring_size;
	src->max_record = s->max_record;
	src->fsync = (enum spill_fsync)c->fsync;
	src->fsync_interval_ms = c->fsync_interval_ms;
	src->segment_size = c->segment_size;
	src->spill_position = &c->spill_position;
	src->written_position = &c->written_position;
	src->written_seq = &c->written_seq;
	src->synced_seq = &c->synced_seq;
	src->error_seq = &c->error_seq;
	src->spill_error = &c->spill_error;
	src->durability_signal = &c->durability_signal;
	src->durability_waiters = &c->durability_waiters;
}

/* Sequence number of the frame at @position of a ring (a boundary). */
static uint64_t seq_at(agentbus_stream *s, uint64_t position)
{
	union pair64 tail = load128(&s->control->tail);
	uint64_t seq = stream_floor_seq(s, position, tail);

	return seq ? seq : tail.hi;
}

/*
 * Where spilling goes on: the end of the log, unless the ring no longer holds
 * the frames right after it (they would be lost: reported, and the log goes
 * on from the oldest frame the ring holds, in a new segment).
 */
static void spill_start(struct agentbus_daemon *d, struct watched_stream *w,
			struct log_recovery *rec, uint64_t *position, uint64_t *seq)
{
	agentbus_stream *s = w->stream;
	uint64_t floor = load_acquire(&s->control->spill_position);

	if (rec->empty) {
		*position = floor;
		*seq = seq_at(s, floor);
		return;
	}
	*position = rec->end_position;
	*seq = rec->next_seq;
	if (rec->end_position >= floor)
		return;
	*position = floor;
	*seq = seq_at(s, floor);
	daemon_warn(d, "stream '%s': records %" PRIu64 "-%" PRIu64 " never reached the log and are lost",
		    s->name, rec->next_seq, *seq - 1);
	store_relaxed(&s->control->lost_first_seq, rec->next_seq);
	store_relaxed(&s->control->lost_last_seq, *seq - 1);
	rec->empty = 1; /* the log goes on in a new segment at the floor */
}

static int start_spilling(struct agentbus_daemon *d, struct watched_stream *w,
			  struct log_recovery *rec)
{
	struct spill_source src;
	uint64_t position, seq;
	int err;

	spill_start(d, w, rec, &position, &seq);
	fill_source(d, w, &src);
	err = spill_add_stream(d->spill, &src, rec, position, seq, &w->spill);
	if (err)
		return set_error(err, "stream '%s': cannot open its log in %s: %s", w->stream->name,
				 src.log_dir, agentbus_strerror(err));
	store_relaxed(&w->stream->control->log_first_seq, rec->empty ? seq : rec->first_seq);
	store_relaxed(&w->stream->control->log_bytes, rec->bytes);
	store_relaxed(&w->stream->control->corrupt_records, rec->corrupt_frames);
	return 0;
}

/* ---------------------------------------------------------------- attaching */

/* The ring of @name: the one in shared memory, or a new one going on after
 * the log (a reboot emptied shared memory). */
static int map_or_make_ring(struct agentbus_daemon *d, const char *name,
			    const struct agentbus_stream_config *cfg,
			    const struct log_recovery *rec, agentbus_stream **out)
{
	int err = stream_map(d->dir, name, 1, out);

	if (err != AGENTBUS_E_NOT_FOUND || !cfg)
		return err;
	err = stream_create_segment(d->dir, name, cfg, rec->empty ? 0 : rec->end_position,
				    rec->empty ? 1 : rec->next_seq);
	if (err)
		return set_error(err, "stream '%s': cannot make its ring: %s", name,
				 agentbus_strerror(err));
	if (rec->truncated_bytes) {
		/* The ring that held what followed the torn record is gone. */
		daemon_warn(d, "stream '%s': records from seq %" PRIu64 " on were not in the log "
			       "and are lost with the old ring", name, rec->next_seq);
	}
	err = stream_map(d->dir, name, 1, out);
	if (!err && rec->truncated_bytes) {
		store_relaxed(&(*out)->control->lost_first_seq, rec->next_seq);
		store_relaxed(&(*out)->control->lost_last_seq, rec->next_seq);
	}
	return err;
}

/*
 * Serve stream @name: recover its log, find or make its ring, start spilling.
 * A stream in shared memory without a log (its data directory was moved) gets
 * a new log that begins at the oldest frame its ring holds.
 */
static int attach_stream(struct agentbus_daemon *d, const char *name)
{
	struct agentbus_stream_config cfg, *have_cfg = NULL;
	struct log_recovery rec = { .empty = 1 };
	char log_dir[PATH_LEN];
	struct watched_stream *w;
	agentbus_stream *stream;
	int err;

	if (daemon_find_stream(d, name) || log_dir_of(d, name, log_dir))
		return 0;
	if (stream_config_load(log_dir, name, &cfg) == 0) {
		have_cfg = &cfg;
		err = log_recover(log_dir, &rec, report_to_daemon_log, d);
		if (err)
			return set_error(err, "stream '%s': cannot recover %s: %s", name, log_dir,
					 agentbus_strerror(err));
	}
	err = map_or_make_ring(d, name, have_cfg, &rec, &stream);
	if (err)
		return err;
	if (!have_cfg) {
		stream_config_from_control(stream->control, &cfg);
		if (mkdir(log_dir, 0700) != 0 && errno != EEXIST)
			err = set_error(-errno, "cannot make %s: %s", log_dir, strerror(errno));
		if (!err)
			err = stream_config_save(log_dir, &cfg);
	}
	w = err ? NULL : add_watched(d, stream);
	if (!w) {
		stream_unmap(stream);
		return err ? err : set_error(-ENOMEM, "out of memory");
	}
	err = start_spilling(d, w, &rec);
	if (err)
		unwatch(d, w);
	return err;
}

static void attach_all_in(struct agentbus_daemon *d, const char *dir_path, int skip_init)
{
	struct dirent *e;
	DIR *dir = opendir(dir_path);

	if (!dir)
		return;
	while ((e = readdir(dir)) != NULL) {
		if (e->d_name[0] == '.') {
			if (skip_init && strncmp(e->d_name, ".init-", 6) == 0)
				unlinkat(dirfd(dir), e->d_name, 0); /* a creator died midway */
			continue;
		}
		if (check_name("stream", e->d_name) != 0)
			continue;
		if (attach_stream(d, e->d_name) != 0)
			daemon_warn(d, "stream '%s' not served: %s", e->d_name, agentbus_last_error());
		else
			daemon_log(d, "serving stream '%s'", e->d_name);
	}
	closedir(dir);
}

/* Every stream with a log, then every ring without one. */
void daemon_attach_streams(struct agentbus_daemon *d)
{
	char rings[PATH_LEN];

	attach_all_in(d, d->bus_data_dir, 0);
	if (path_join(rings, sizeof(rings), d->dir, STREAMS_DIR) == 0)
		attach_all_in(d, rings, 1);
}

/* ---------------------------------------------------------------- requests */

/*
 * Take back the ring of a stream whose creation failed after
 * stream_create_segment(): without this it stays in shared memory, listed
 * and open to publishers, yet served by no daemon, and neither `rm` (not
 * watched) nor `add` (it exists) can get rid of it. A client may have mapped
 * it already (it is visible once made), so it is marked deleted first, as
 * daemon_delete_stream() does. Keeps the caller's error message.
 */
static void discard_ring(struct agentbus_daemon *d, const char *name)
{
	char message[512], streams[PATH_LEN], path[PATH_LEN];
	agentbus_stream *s;

	snprintf(message, sizeof(message), "%s", agentbus_last_error());
	if (stream_map(d->dir, name, 0, &s) == 0) {
		store_release(&s->control->deleted, 1);
		wake_sleepers(s->control);
		stream_unmap(s);
	}
	if (path_join(streams, sizeof(streams), d->dir, STREAMS_DIR) == 0 &&
	    path_join(path, sizeof(path), streams, name) == 0 && unlink(path) != 0)
		daemon_warn(d, "stream '%s': cannot remove %s: %s", name, path, strerror(errno));
	set_error(0, "%s", message);
}

int daemon_create_stream(struct agentbus_daemon *d, const struct control_request *req)
{
	struct agentbus_stream_config cfg = req->config;
	char log_dir[PATH_LEN];
	int err = stream_config_normalize(req->name, &cfg);

	if (err)
		return err;
	if (log_dir_of(d, req->name, log_dir))
		return -ENAMETOOLONG;
	if (mkdir(log_dir, 0700) != 0)
		return errno == EEXIST ? set_error(AGENTBUS_E_EXISTS, "stream '%s' already exists (its log is in %s)",
						   req->name, log_dir)
				       : set_error(-errno, "cannot make %s: %s", log_dir, strerror(errno));
	err = stream_create_segment(d->dir, req->name, &cfg, 0, 1);
	if (err == -EEXIST)
		err = set_error(AGENTBUS_E_EXISTS, "stream '%s' already exists", req->name);
	else if (err == -ENOSPC)
		err = set_error(err, "stream '%s': no room for a %" PRIu64 "-byte ring in shared memory",
				req->name, cfg.ring_size);
	else if (err)
		err = set_error(err, "stream '%s': %s", req->name, agentbus_strerror(err));
	if (err) {
		remove_tree(log_dir);
		return err;
	}
	err = stream_config_save(log_dir, &cfg);
	if (!err)
		err = attach_stream(d, req->name);
	if (err) {
		discard_ring(d, req->name);
		remove_tree(log_dir);
		return err;
	}
	daemon_log(d, "created stream '%s' (ring %" PRIu64 " bytes, log in %s)", req->name,
		   cfg.ring_size, log_dir);
	return 0;
}

int daemon_delete_stream(struct agentbus_daemon *d, const struct control_request *req)
{
	char streams[PATH_LEN], path[PATH_LEN], log_dir[PATH_LEN];
	struct watched_stream *w;
	int err = check_name("stream", req->name);

	if (err)
		return err;
	w = daemon_find_stream(d, req->name);
	if (!w)
		return set_error(AGENTBUS_E_NOT_FOUND, "no stream named '%s'", req->name);
	if (path_join(streams, sizeof(streams), d->dir, STREAMS_DIR) == 0 &&
	    path_join(path, sizeof(path), streams, req->name) == 0)
		unlink(path);
	/* Mapped handles keep the memory; the flag tells them it is gone. */
	store_release(&w->stream->control->deleted, 1);
	wake_sleepers(w->stream->control);
	unwatch(d, w);
	if (log_dir_of(d, req->name, log_dir) == 0)
		remove_tree(log_dir);
	daemon_log(d, "deleted stream '%s' and its log", req->name);
	return 0;
}

/* ---------------------------------------------------------------- retention */

/* The oldest position a subscription still reads from. */
static uint64_t oldest_needed(agentbus_stream *s)
{
	uint64_t oldest = UINT64_MAX, p;
	uint32_t i;

	for (i = 0; i < STREAM_MAX_SUBSCRIPTIONS; i++) {
		if (load_acquire(&s->control->slots[i].state) == SLOT_FREE)
			continue;
		p = load_acquire(&s->control->slots[i].position);
		if (p < oldest)
			oldest = p;
	}
	return oldest;
}

/* What is left of the log after retention, for stream info. */
static void refresh_log_facts(struct agentbus_daemon *d, agentbus_stream *s, const char *log_dir)
{
	struct log_segment *segments;
	uint64_t bytes = 0;
	size_t n, i;

	if (log_segments_list(log_dir, &segments, &n, NULL, NULL) != 0)
		return;
	for (i = 0; i < n; i++)
		bytes += segments[i].file_size;
	if (n)
		store_relaxed(&s->control->log_first_seq, segments[0].first_seq);
	store_relaxed(&s->control->log_bytes, bytes);
	free(segments);
	(void)d;
}

void daemon_apply_retention(struct agentbus_daemon *d, uint64_t now)
{
	struct log_retention_limits limits;
	char log_dir[PATH_LEN];
	size_t i;
	int deleted;

	if (now - d->last_retention_ns < RETENTION_EVERY_NS)
		return;
	d->last_retention_ns = now;
	for (i = 0; i < d->stream_count; i++) {
		agentbus_stream *s = d->streams[i].stream;
		struct stream_control *c = s->control;

		if (log_dir_of(d, s->name, log_dir))
			continue;
		limits = (struct log_retention_limits){ .max_age_ns = c->max_age_ns,
							.max_bytes = c->max_bytes,
							.max_records = c->max_records };
		limits.keep_from = c->retention_force ? UINT64_MAX : oldest_needed(s);
		if (limits.max_age_ns || limits.max_bytes || limits.max_records) {
			deleted = log_apply_retention(log_dir, &limits, realtime_ns());
			if (deleted > 0)
				daemon_log(d, "stream '%s': retention deleted %d log segment(s)", s->name,
					   deleted);
		}
		refresh_log_facts(d, s, log_dir);
	}
}
