/* stream.c - opening stream segments, and what they say about themselves. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/internal.h"
#include "bus/protocol.h"

struct stream_init_args {
	const char *name;
	const struct agentbus_stream_config *config;
	uint64_t position;  /* where the stream goes on: the end of its log */
	uint64_t seq;
};

/* Fill a fresh control area (zeroed by the file system). Runs before the
 * segment is renamed into place, so nobody else can see it yet. */
static void stream_control_init(void *control_memory, void *arg)
{
	struct stream_control *control = control_memory;
	const struct stream_init_args *args = arg;
	const struct agentbus_stream_config *cfg = args->config;
	union pair64 tail = { .lo = args->position, .hi = args->seq };
	union pair64 limit = { .lo = args->position + cfg->ring_size, .hi = 0 };

	control->version = STREAM_LAYOUT_VERSION;
	control->control_size = STREAM_CONTROL_SIZE;
	control->ring_size = cfg->ring_size;
	control->max_record = cfg->max_record;
	control->created_ns = realtime_ns();
	snprintf(control->name, sizeof(control->name), "%s", args->name);
	control->tail = tail;
	control->limit = limit;
	control->spill_position = control->written_position = args->position;
	control->written_seq = control->synced_seq = args->seq;
	control->log_first_seq = args->seq;
	control->durability = cfg->durability;
	control->fsync = cfg->fsync;
	control->fsync_interval_ms = cfg->fsync_interval_ms;
	control->overflow = cfg->overflow;
	control->segment_size = cfg->segment_size;
	control->max_age_ns = cfg->max_age_ns;
	control->max_bytes = cfg->max_bytes;
	control->max_records = cfg->max_records;
	control->retention_force = (uint32_t)cfg->retention_force;
	/* Pairs with the acquire in stream_validate(): magic last. */
	store_release(&control->magic, STREAM_MAGIC);
}

int stream_create_segment(const char *bus_dir, const char *name,
			  const struct agentbus_stream_config *config, uint64_t position,
			  uint64_t seq)
{
	struct stream_init_args args = { name, config, position, seq };
	char dir[PATH_LEN];

	if (path_join(dir, sizeof(dir), bus_dir, STREAMS_DIR) != 0)
		return -ENAMETOOLONG;
	return shm_segment_create(dir, name, STREAM_CONTROL_SIZE, config->ring_size,
				  stream_control_init, &args);
}

void stream_config_from_control(const struct stream_control *c, struct agentbus_stream_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->ring_size = c->ring_size;
	cfg->max_record = c->max_record;
	cfg->durability = (enum agentbus_durability)c->durability;
	cfg->fsync = (enum agentbus_fsync)c->fsync;
	cfg->fsync_interval_ms = c->fsync_interval_ms;
	cfg->overflow = (enum agentbus_overflow)c->overflow;
	cfg->segment_size = c->segment_size;
	cfg->max_age_ns = c->max_age_ns;
	cfg->max_bytes = c->max_bytes;
	cfg->max_records = c->max_records;
	cfg->retention_force = (int)c->retention_force;
}

/* A segment is untrusted: check everything a client will rely on. */
int stream_validate(const struct stream_control *control, const struct shm_mapping *map)
{
	uint64_t ring_size = control->ring_size, max_record = control->max_record;

	if (load_acquire(&control->magic) != STREAM_MAGIC)
		return set_error(AGENTBUS_E_CORRUPT, "not a stream segment (bad magic)");
	if (control->version != STREAM_LAYOUT_VERSION)
		return set_error(AGENTBUS_E_VERSION, "stream segment has layout version %u, not %u",
				 control->version, STREAM_LAYOUT_VERSION);
	if (control->control_size != STREAM_CONTROL_SIZE || ring_size != map->ring_size ||
	    max_record == 0 || max_record > ring_size / 4 ||
	    control->durability > AGENTBUS_DURABILITY_SYNCED || control->fsync > AGENTBUS_FSYNC_NEVER ||
	    control->overflow > AGENTBUS_OVERFLOW_BLOCK)
		return set_error(AGENTBUS_E_CORRUPT, "stream segment header is inconsistent");
	return 0;
}

static uint64_t next_handle_id = 1;

int stream_map(const char *bus_dir, const char *name, int populate, agentbus_stream **out)
{
	char dir[PATH_LEN], path[PATH_LEN];
	agentbus_stream *stream;
	int err;

	err = check_name("stream", name);
	if (!err)
		err = path_join(dir, sizeof(dir), bus_dir, STREAMS_DIR);
	if (!err)
		err = path_join(path, sizeof(path), dir, name);
	if (err)
		return err;
	stream = calloc(1, sizeof(*stream));
	if (!stream)
		return set_error(-ENOMEM, "out of memory");
	err = shm_segment_map(path, STREAM_CONTROL_SIZE, populate, &stream->map);
	if (err) {
		free(stream);
		if (err == -ENOENT)
			return set_error(AGENTBUS_E_NOT_FOUND, "no stream named '%s'", name);
		return set_error(err == -EINVAL ? AGENTBUS_E_CORRUPT : err,
				 "stream '%s': cannot map %s: %s", name, path,
				 agentbus_strerror(err));
	}
	stream->control = stream->map.control;
	err = stream_validate(stream->control, &stream->map);
	if (err) {
		stream_unmap(stream);
		return err;
	}
	stream->ring = stream->map.ring;
	stream->ring_size = stream->map.ring_size;
	stream->ring_mask = stream->ring_size - 1;
	stream->max_record = stream->control->max_record;
	stream->max_frame = max_frame_len(stream->max_record);
	stream->durability = (enum agentbus_durability)stream->control->durability;
	stream->tethered = stream->control->overflow == AGENTBUS_OVERFLOW_BLOCK;
	snprintf(stream->name, sizeof(stream->name), "%s", name);
	stream->handle_id = fetch_add_relaxed(&next_handle_id, 1);
	*out = stream;
	return 0;
}

void stream_unmap(agentbus_stream *stream)
{
	if (!bus_inherited(stream->bus)) /* a child's slots are its parent's */
		release_intents(stream);
	shm_segment_unmap(&stream->map);
	free(stream);
}

int agentbus_stream_open(agentbus_bus *bus, const char *name, agentbus_stream **out)
{
	int err;

	if (!bus || !out)
		return set_error(AGENTBUS_E_INVALID, "stream open: NULL argument");
	err = bus_check_owner(bus);
	if (!err)
		err = stream_map(bus->dir, name, 1, out);
	if (!err)
		(*out)->bus = bus;
	return err;
}

void agentbus_stream_close(agentbus_stream *stream)
{
	if (stream)
		stream_unmap(stream);
}

/*
 * Sequence number of the frame at @floor, a frame boundary inside the intact
 * region. Returns 0 when it cannot be told yet (a producer has reserved the
 * frame but not marked it: a few instructions' window).
 */
uint64_t stream_floor_seq(agentbus_stream *stream, uint64_t floor, union pair64 tail)
{
	struct frame_header *h;
	uint64_t tag;

	if (floor >= tail.lo)
		return tail.hi;
	h = (struct frame_header *)(stream->ring + (floor & stream->ring_mask));
	/* Pairs with the release CAS that set the tag: seq fields are visible. */
	tag = load_acquire(&h->tag);
	if (tag == frame_tag(floor, FRAME_GAP))
		return h->gap_first_seq;
	if (tag == frame_tag(floor, FRAME_COMMITTED) || tag == frame_tag(floor, FRAME_CLAIMED))
		return h->seq;
	return 0;
}

int agentbus_stream_stat(agentbus_stream *stream, struct agentbus_stream_info *info)
{
	struct stream_control *c;
	union pair64 tail, limit;
	uint64_t floor, first;
	uint32_t i;

	if (!stream || !info)
		return set_error(AGENTBUS_E_INVALID, "stream stat: NULL argument");
	c = stream->control;
	memset(info, 0, sizeof(*info));
	snprintf(info->name, sizeof(info->name), "%s", stream->name);
	info->ring_size = stream->ring_size;
	info->max_record = stream->max_record;
	tail = load128(&c->tail);
	limit = load128(&c->limit);
	floor = limit.lo > stream->ring_size ? limit.lo - stream->ring_size : 0;
	if (floor > tail.lo)
		floor = tail.lo; /* a corrupt limit must not make ring_used wrap */
	first = stream_floor_seq(stream, floor, tail);
	info->first_seq = first ? first : tail.hi;
	info->next_seq = tail.hi;
	info->ring_used = tail.lo - floor;
	info->gaps = load_relaxed(&c->gaps);
	info->sleepers = load_relaxed(&c->sleepers);
	stream_config_from_control(c, &info->config);
	info->log_first_seq = load_relaxed(&c->log_first_seq);
	info->log_bytes = load_relaxed(&c->log_bytes);
	info->written_seq = load_relaxed(&c->written_seq);
	info->synced_seq = load_relaxed(&c->synced_seq);
	info->spill_error = load_relaxed(&c->spill_error);
	info->lost_first_seq = load_relaxed(&c->lost_first_seq);
	info->lost_last_seq = load_relaxed(&c->lost_last_seq);
	info->corrupt_records = load_relaxed(&c->corrupt_records);
	for (i = 0; i < STREAM_MAX_SUBSCRIPTIONS; i++)
		info->subscriptions += load_relaxed(&c->slots[i].state) != SLOT_FREE;
	return 0;
}

int agentbus_stream_info_get(agentbus_bus *bus, const char *name,
			     struct agentbus_stream_info *info)
{
	agentbus_stream *stream;
	int err;

	if (!bus || !info)
		return set_error(AGENTBUS_E_INVALID, "stream info: NULL argument");
	err = stream_map(bus->dir, name, 0, &stream);
	if (err)
		return err;
	err = agentbus_stream_stat(stream, info);
	stream_unmap(stream);
	return err;
}

static int compare_info(const void *a, const void *b)
{
	return strcmp(((const struct agentbus_stream_info *)a)->name,
		      ((const struct agentbus_stream_info *)b)->name);
}

int agentbus_stream_list(agentbus_bus *bus, struct agentbus_stream_info **infos,
			 size_t *count)
{
	struct agentbus_stream_info *list = NULL, *grown;
	size_t n = 0, cap = 0;
	char dir[PATH_LEN];
	struct dirent *e;
	DIR *d;

	if (!bus || !infos || !count)
		return set_error(AGENTBUS_E_INVALID, "stream list: NULL argument");
	if (path_join(dir, sizeof(dir), bus->dir, STREAMS_DIR) != 0)
		return -ENAMETOOLONG;
	d = opendir(dir);
	if (!d)
		return set_error(-errno, "cannot read %s: %s", dir, strerror(errno));
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.' || check_name("stream", e->d_name) != 0)
			continue; /* half-made segments and strangers */
		if (n == cap) {
			cap = cap ? 2 * cap : 16;
			grown = realloc(list, cap * sizeof(*list));
			if (!grown) {
				closedir(d);
				free(list);
				return set_error(-ENOMEM, "out of memory");
			}
			list = grown;
		}
		/* A stream deleted meanwhile just drops out of the list. */
		if (agentbus_stream_info_get(bus, e->d_name, &list[n]) == 0)
			n++;
	}
	closedir(d);
	clear_error();
	if (n)
		qsort(list, n, sizeof(*list), compare_info);
	*infos = list;
	*count = n;
	return 0;
}
