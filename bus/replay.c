/*
 * replay.c - reading a stream's log directly from its files: replay (at full
 * speed or at the original pace) and verify. Neither needs the daemon; with a
 * bus handle, replay stops where the spill writer has got to.
 */
#include <errno.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus/internal.h"

struct agentbus_replay {
	struct log_reader *log;
	struct agentbus_replay_config config;
	char filter[AGENTBUS_SUBJECT_MAX + 1];
	size_t filter_len;
	uint64_t first_time_ns;    /* record time of the first record returned */
	uint64_t started_ns;       /* CLOCK_MONOTONIC then */
	agentbus_stream *stream;   /* mapped when a bus was given: where the log ends */
};

/* The data directory the bus's (last) daemon used, as its bus segment says:
 * 1 if found. */
static int daemon_data_dir(const char *bus, char *out)
{
	struct bus_control *control;
	struct shm_mapping map;
	char dir[PATH_LEN];
	int found = 0;

	if (bus_dir_path(bus, dir, sizeof(dir)) || bus_segment_map(dir, &map, &control)) {
		clear_error();
		return 0;
	}
	if (control->data_dir[0] == '/') {
		snprintf(out, PATH_LEN, "%s", control->data_dir);
		found = 1;
	}
	shm_segment_unmap(&map);
	return found;
}

/* <data dir>/<bus>/<stream>: under @data_dir when given, else from the bus
 * (its handle, or its segment) or the usual defaults. */
static int log_dir_for(agentbus_bus *bus, const char *data_dir, const char *bus_name,
		       const char *stream, char *out)
{
	char resolved[PATH_LEN], name[AGENTBUS_NAME_MAX + 1], bus_dir[PATH_LEN];
	int err = check_name("stream", stream);

	if (!err && bus && !data_dir) {
		snprintf(resolved, sizeof(resolved), "%s", bus->control->data_dir);
		snprintf(name, sizeof(name), "%s", bus->name);
	} else if (!err) {
		err = resolve_bus_name(bus ? bus->name : bus_name, name);
		if (!err && (data_dir || !daemon_data_dir(name, resolved)))
			err = resolve_data_dir(data_dir, resolved);
	}
	if (!err)
		err = path_join(bus_dir, sizeof(bus_dir), resolved, name);
	if (!err)
		err = path_join(out, PATH_LEN, bus_dir, stream);
	return err;
}

static int check_replay_config(const struct agentbus_replay_config *c)
{
	if (c->start != AGENTBUS_START_SEQ && c->start != AGENTBUS_START_TIME &&
	    c->start != AGENTBUS_START_OLDEST)
		return set_error(AGENTBUS_E_INVALID, "replay: start must be SEQ, TIME or OLDEST");
	if (c->start == AGENTBUS_START_SEQ && c->start_seq == 0)
		return set_error(AGENTBUS_E_INVALID, "replay: sequence numbers start at 1");
	if (c->rate > AGENTBUS_RATE_ORIGINAL)
		return set_error(AGENTBUS_E_INVALID, "replay: unknown rate");
	if (c->filter && agentbus_pattern_check(c->filter, strnlen(c->filter, 256)) != 0)
		return set_error(AGENTBUS_E_INVALID, "replay: invalid subject filter '%.80s'", c->filter);
	return 0;
}

static int seek(agentbus_replay *r, const char *stream)
{
	const struct agentbus_replay_config *c = &r->config;
	int err;

	if (c->start == AGENTBUS_START_TIME)
		err = log_reader_seek_time(r->log, c->start_time_ns);
	else
		err = log_reader_seek_seq(r->log, c->start == AGENTBUS_START_SEQ ? c->start_seq : 1);
	if (err == AGENTBUS_E_SEQ_GONE && c->start == AGENTBUS_START_OLDEST)
		err = 0;
	if (err == AGENTBUS_E_SEQ_GONE)
		return set_error(err, "stream '%s': seq %llu is older than the log", stream,
				 (unsigned long long)c->start_seq);
	if (err)
		return set_error(err, "stream '%s': %s", stream, log_reader_error(r->log));
	return 0;
}

int agentbus_replay_open(agentbus_bus *bus, const char *stream,
			 const struct agentbus_replay_config *config, agentbus_replay **out)
{
	char dir[PATH_LEN];
	agentbus_replay *r;
	int err;

	if (!config || !out)
		return set_error(AGENTBUS_E_INVALID, "replay: NULL argument");
	err = check_replay_config(config);
	if (!err)
		err = log_dir_for(bus, config->data_dir, NULL, stream, dir);
	if (err)
		return err;
	r = calloc(1, sizeof(*r));
	if (!r)
		return set_error(-ENOMEM, "out of memory");
	r->config = *config;
	if (config->filter) {
		r->filter_len = strlen(config->filter);
		memcpy(r->filter, config->filter, r->filter_len);
	}
	r->config.filter = NULL;
	r->config.data_dir = NULL;
	/* Another data directory's log is not this ring's: read all it holds. */
	if (bus && !config->data_dir && stream_map(bus->dir, stream, 0, &r->stream) != 0)
		r->stream = NULL; /* no ring: read all there is on disk */
	err = log_reader_open(&r->log, dir, UINT64_MAX);
	if (err) {
		err = set_error(err == -ENOENT ? AGENTBUS_E_NOT_FOUND : err,
				"stream '%s': no log in %s", stream, dir);
	} else {
		err = seek(r, stream);
	}
	if (err) {
		agentbus_replay_close(r);
		return err;
	}
	*out = r;
	return 0;
}

/* AGENTBUS_RATE_ORIGINAL: sleep until the record's time, replayed from now. */
static void pace(agentbus_replay *r, uint64_t time_ns)
{
	uint64_t due, now;
	struct timespec ts;

	if (!r->first_time_ns) {
		r->first_time_ns = time_ns;
		r->started_ns = monotonic_ns();
		return;
	}
	if (time_ns <= r->first_time_ns)
		return;
	due = r->started_ns + (time_ns - r->first_time_ns);
	now = monotonic_ns();
	if (due <= now)
		return;
	ts.tv_sec = (time_t)((due - now) / 1000000000u);
	ts.tv_nsec = (long)((due - now) % 1000000000u);
	nanosleep(&ts, NULL);
}

int agentbus_replay_next(agentbus_replay *r, struct agentbus_record *record)
{
	const struct frame_header *h;
	uint64_t position;
	int got;

	if (!r || !record)
		return set_error(AGENTBUS_E_INVALID, "replay next: NULL argument");
	for (;;) {
		if (r->stream)
			log_reader_set_end(r->log, load_acquire(&r->stream->control->written_position));
		got = log_reader_next(r->log, &h, &position);
		if (got < 0)
			return set_error(got, "%s", log_reader_error(r->log));
		if (got == 0)
			return 0;
		if (h->tag == frame_tag(position, FRAME_GAP))
			continue;
		if (r->config.to_seq && h->seq > r->config.to_seq)
			return 0;
		if (r->filter_len &&
		    !agentbus_subject_matches(r->filter, r->filter_len, (const char *)(h + 1),
					      h->subject_len))
			continue;
		if (r->config.start == AGENTBUS_START_SEQ && h->seq < r->config.start_seq)
			continue;
		if (r->config.start == AGENTBUS_START_TIME && h->time_ns < r->config.start_time_ns)
			continue;
		record_view(h, h->seq, record); /* the reader checked its lengths */
		if (r->config.rate == AGENTBUS_RATE_ORIGINAL)
			pace(r, h->time_ns);
		return 1;
	}
}

void agentbus_replay_close(agentbus_replay *r)
{
	if (!r)
		return;
	log_reader_close(r->log);
	if (r->stream)
		stream_unmap(r->stream);
	free(r);
}

/* ---------------------------------------------------------------- verify */

struct verify_context {
	const char *stream;
	void (*report)(void *arg, const struct agentbus_problem *problem);
	void *arg;
};

static void forward_problem(void *arg, const struct log_problem *p)
{
	struct verify_context *v = arg;
	struct agentbus_problem problem = { v->stream, p->segment, p->file_offset, p->seq, p->what };

	if (v->report)
		v->report(v->arg, &problem);
}

static int verify_one(const char *dir, const char *stream,
		      void (*report)(void *, const struct agentbus_problem *), void *arg)
{
	struct verify_context v = { stream, report, arg };
	int n = log_verify(dir, forward_problem, &v);

	if (n < 0)
		return set_error(n, "stream '%s': cannot verify %s: %s", stream, dir,
				 agentbus_strerror(n));
	return n;
}

int agentbus_verify(const char *bus_name, const char *data_dir, const char *stream,
		    void (*report)(void *arg, const struct agentbus_problem *problem), void *arg)
{
	char dir[PATH_LEN], bus_dir[PATH_LEN];
	struct dirent *e;
	int n, total = 0;
	DIR *d;

	if (stream) {
		n = log_dir_for(NULL, data_dir, bus_name, stream, dir);
		return n ? n : verify_one(dir, stream, report, arg);
	}
	n = log_dir_for(NULL, data_dir, bus_name, "x", dir);
	if (n)
		return n;
	dir[strlen(dir) - 2] = '\0'; /* <data>/<bus> */
	snprintf(bus_dir, sizeof(bus_dir), "%s", dir);
	d = opendir(bus_dir);
	if (!d)
		return set_error(-errno, "cannot read %s: %s", bus_dir, strerror(errno));
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.' || check_name("stream", e->d_name) != 0 ||
		    path_join(dir, sizeof(dir), bus_dir, e->d_name) != 0)
			continue;
		n = verify_one(dir, e->d_name, report, arg);
		if (n < 0) {
			total = n;
			break;
		}
		total += n;
	}
	closedir(d);
	clear_error();
	return total;
}
