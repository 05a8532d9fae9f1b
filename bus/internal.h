/*
 * internal.h - the handles behind the opaque types of agentbus.h, and the
 * helpers shared by the files of bus/.
 */
#ifndef AGENTBUS_BUS_INTERNAL_H
#define AGENTBUS_BUS_INTERNAL_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include "agentbus.h"
#include "bus/layout.h"
#include "persist/log.h"
#include "shm/segment.h"

#define PATH_LEN 4096

struct agentbus_bus {
	char name[AGENTBUS_NAME_MAX + 1];
	char dir[PATH_LEN];        /* the bus's shared-memory directory */
	int socket_fd;             /* connection to the daemon; its closing is our death notice.
				    * Its number never changes: a reconnection swaps the socket under it */
	int alive_fd;              /* <bus dir>/clients/<id>, flock'd: our death notice to later daemons */
	uint32_t client_id;        /* assigned by the daemon; marks our claims and slots */
	struct shm_mapping bus_map;
	struct bus_control *control; /* the spill writer's wake word, the data directory */
	pthread_mutex_t lock;      /* one request (or reconnection) at a time on socket_fd */
	int out_of_step;           /* a request timed out: its late reply would answer the next */
	agentbus_bus *next_open;   /* in the list of open handles (client.c) */
	pid_t pid;                 /* the process that opened it: a child of fork() may only close it */
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
	enum agentbus_durability durability; /* the stream's default */
	int tethered;              /* overflow BLOCK: subscriptions hold producers back */
	uint64_t handle_id;        /* unique in this process: keys threads' intent slot caches */
	uint64_t intent_mask;      /* intent slots this handle's threads hold (atomic) */
	char name[AGENTBUS_NAME_MAX + 1];
};

struct agentbus_sub {
	agentbus_stream *stream;
	struct sub_slot *slot;
	uint32_t slot_index;
	uint64_t position;         /* next frame to look at (private cursor) */
	uint64_t next_seq;         /* its sequence number */
	uint64_t released_position; /* what the slot last told producers */
	uint64_t min_seq;          /* records below this are skipped (start in the future) */
	char filter[AGENTBUS_SUBJECT_MAX + 1];
	size_t filter_len;         /* 0 = no filter */
	enum agentbus_wait wait;
	uint32_t spin_ns;
	int caught_up;             /* the last read found a record at once */
	struct agentbus_sub_stats stats;
	int following;             /* overflow SPILL: producers ignore us; reads copy, then check */
	int in_log;                /* reading from the log: lapped, or started before the ring */
	struct log_reader *log;
	uint64_t min_time_ns;      /* START_TIME: skip records stamped earlier, until one is not */
	unsigned char *arena;      /* copies of the records returned by the current read call */
	size_t arena_used, arena_cap;
	struct agentbus_record held; /* a record read_copy could not take: returned next */
	unsigned char *hold_space;   /* its bytes: max_frame, set aside by the first read_copy */
	int holding;                 /* a record is held */
	int held_returned;           /* handed out by this call: let go at the next */
};

/* What one step of reading found (read.c, catch_up.c). */
enum step {
	STEP_NOTHING = 0,  /* the next frame is not there yet, or this call's batch is full */
	STEP_RECORD = 1,   /* a record, in *rec */
	STEP_SKIPPED = 2,  /* a gap, skipped */
	STEP_MOVED = 3,    /* lapped by the ring, or caught up with it: read from the other */
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
int make_dir_path(const char *path);
int resolve_data_dir(const char *given, char *out);

/* client.c: the bus segment (struct bus_control) of the bus in @bus_dir. */
int bus_segment_map(const char *bus_dir, struct shm_mapping *map, struct bus_control **control);
/* client.c: is @bus a handle this process inherited across fork()? (NULL:
 * no.) bus_check_owner() fails with AGENTBUS_E_INVALID, saying so, if it is. */
int bus_inherited(const agentbus_bus *bus);
int bus_check_owner(const agentbus_bus *bus);
/* client.c: if our daemon hung up, connect to the bus's next one; 0 if
 * one serves us now, AGENTBUS_E_NO_DAEMON if none does. */
int reconnect_if_daemon_gone(agentbus_bus *bus);

/* stream_config.c */
int stream_config_normalize(const char *name, struct agentbus_stream_config *config);
int stream_config_save(const char *dir, const struct agentbus_stream_config *config);
int stream_config_load(const char *dir, const char *name, struct agentbus_stream_config *config);

/* stream.c */
int stream_create_segment(const char *bus_dir, const char *name,
			  const struct agentbus_stream_config *config, uint64_t position,
			  uint64_t seq);
void stream_config_from_control(const struct stream_control *control,
				struct agentbus_stream_config *config);
int stream_map(const char *bus_dir, const char *name, int populate, agentbus_stream **out);
void stream_unmap(agentbus_stream *stream);
int stream_validate(const struct stream_control *control, const struct shm_mapping *map);
uint64_t stream_floor_seq(agentbus_stream *stream, uint64_t floor, union pair64 tail);

/*
 * Code that reads frames it does not hold back (a following reader, the
 * daemon inspecting frames in flight) races by design with producers reusing
 * the ring a lap later; it copies what it reads and decides with checks or
 * CASes that a stale view can only fail. ThreadSanitizer is told not to look
 * at those reads (and only at those), so that it checks everything else.
 */
#ifdef __SANITIZE_THREAD__
#define RACY_READER __attribute__((noinline, no_sanitize_thread))
#else
#define RACY_READER inline
#endif

static inline struct frame_header *frame_at(agentbus_stream *stream, uint64_t position)
{
	return (struct frame_header *)(stream->ring + (position & stream->ring_mask));
}

/* subscribe.c, read.c, catch_up.c */
int join_ring_at(agentbus_sub *sub, uint64_t position, uint64_t seq);
void release_position(agentbus_sub *sub);
int wanted(agentbus_sub *sub, const struct agentbus_record *rec);
int fill_record(agentbus_sub *sub, const struct frame_header *h, uint64_t len,
		struct agentbus_record *rec);
void record_view(const struct frame_header *h, uint64_t seq, struct agentbus_record *rec);
unsigned char *arena_take(agentbus_sub *sub, uint64_t len);
int log_start(agentbus_sub *sub, enum agentbus_start start, uint64_t seq, uint64_t time_ns);
int poll_log(agentbus_sub *sub, struct agentbus_record *rec);
void log_stop(agentbus_sub *sub);

/* durable.c */
int check_durability(agentbus_stream *stream, enum agentbus_durability level);
int wait_durable_until(agentbus_stream *stream, uint64_t seq, enum agentbus_durability level,
		       uint64_t deadline);
uint64_t deadline_after(int timeout_ms);

/* publish.c */
uint64_t limit_refresh(agentbus_stream *stream);

/* intent.c */
/* The calling thread's slot on @stream in *@intent (NULL: none was free), or
 * AGENTBUS_E_INVALID for a handle inherited across fork(). */
int intent_for_thread(agentbus_stream *stream, struct intent_slot **intent);
void intent_state(struct intent_slot *in, uint64_t position, uint64_t seq, uint64_t len,
		  uint64_t count);
void release_intents(agentbus_stream *stream);
/* In a child of fork(): its thread's cached slots are its parent thread's. */
void intent_forget_after_fork(void);
void wake_sleepers(struct stream_control *control);

/* clock.c */
uint64_t realtime_ns(void);
uint64_t monotonic_ns(void);
uint64_t record_time_ns(void); /* CLOCK_REALTIME, cheaply, for record stamps */


#endif
