/*
 * internal.h - the handles behind the opaque types of agentbus.h, and the
 * helpers shared by the files of bus/.
 */
#ifndef AGENTBUS_BUS_INTERNAL_H
#define AGENTBUS_BUS_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include "agentbus.h"
#include "bus/layout.h"
#include "shm/segment.h"

#define PATH_LEN 4096

struct agentbus_bus {
	char name[AGENTBUS_NAME_MAX + 1];
	char dir[PATH_LEN];        /* the bus's shared-memory directory */
	int socket_fd;             /* connection to the daemon; its closing is our death notice */
	uint32_t client_id;        /* assigned by the daemon; marks our claims and slots */
	pthread_mutex_t lock;      /* one request at a time on socket_fd */
};

struct agentbus_stream {
	agentbus_bus *bus;
	struct shm_mapping map;
	struct stream_control *control;
	unsigned char *ring;       /* ring_size bytes mapped twice */
	uint64_t ring_size;        /* private copies, never re-read from shared memory */
	uint64_t ring_mask;
	uint64_t max_record;
	uint64_t max_frame;
	char name[AGENTBUS_NAME_MAX + 1];
};

struct agentbus_sub {
	agentbus_stream *stream;
	struct sub_slot *slot;
	uint32_t slot_index;
	uint64_t position;         /* next frame to look at (private cursor) */
	uint64_t next_seq;         /* its sequence number */
	uint64_t released_position; /* what the slot last told producers */
	uint64_t last_position;    /* frame of the record returned last */
	uint64_t last_seq;
	uint64_t min_seq;          /* records below this are skipped (start in the future) */
	char filter[AGENTBUS_SUBJECT_MAX + 1];
	size_t filter_len;         /* 0 = no filter */
	enum agentbus_wait wait;
	uint32_t spin_ns;
	int caught_up;             /* the last read found a record at once */
	struct agentbus_sub_stats stats;
};

/* errors.c: record the detailed message of a failure in this thread and
 * return @err, so error paths read `return set_error(err, "...", ...)`. */
int set_error(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void clear_error(void);

/* names.c */
int check_name(const char *what, const char *name);
int resolve_bus_name(const char *name, char *out);
int bus_dir_path(const char *bus, char *out, size_t out_len);
int path_join(char *out, size_t out_len, const char *a, const char *b);

/* client.c */
int check_stream_config(const char *name, uint64_t ring_size, uint64_t max_record);

/* stream.c */
int stream_create_segment(const char *bus_dir, const char *name, uint64_t ring_size,
			  uint64_t max_record);
int stream_map(const char *bus_dir, const char *name, int populate, agentbus_stream **out);
void stream_unmap(agentbus_stream *stream);
int stream_validate(const struct stream_control *control, const struct shm_mapping *map);
uint64_t stream_floor_seq(agentbus_stream *stream, uint64_t floor, union pair64 tail);

static inline struct frame_header *frame_at(agentbus_stream *stream, uint64_t position)
{
	return (struct frame_header *)(stream->ring + (position & stream->ring_mask));
}

/* publish.c */
uint64_t limit_refresh(agentbus_stream *stream);
void wake_sleepers(struct stream_control *control);

/* clock.c */
uint64_t realtime_ns(void);
uint64_t monotonic_ns(void);
uint64_t record_time_ns(void); /* CLOCK_REALTIME, cheaply, for record stamps */


#endif
