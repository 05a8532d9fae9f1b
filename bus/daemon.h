/*
 * daemon.h - the daemon's private state, shared by daemon.c (sockets,
 * clients, requests) and unblock.c (repairing what dead clients left).
 */
#ifndef AGENTBUS_BUS_DAEMON_H
#define AGENTBUS_BUS_DAEMON_H

#include <pthread.h>
#include <sys/types.h>

#include "bus/internal.h"
#include "persist/spill.h"

#define STALE_CLAIM_TIMEOUT_NS 1000000000ull /* a reserved frame left unmarked this long is dead */
#define UNMARKED_GRACE_NS 3000000ull /* stuck this long before a client died: it was that client's */
#define UNMARKED_LONG_NS 50000000ull /* stuck this long after a death: a live producer would have marked it */

struct client {
	int fd;              /* its socket; EOF or an error = the client died */
	uint32_t id;         /* 0 until it said hello */
	pid_t pid;           /* for logs only */
	int said_goodbye;    /* closed cleanly: holds no claim, so its end is no death */
};

/* What the daemon remembers of a frame a subscription is waiting at. */
struct stuck_frame {
	uint64_t position;   /* 0 with since_ns 0 = nothing remembered */
	uint64_t since_ns;   /* when it was first seen unmarked */
};

struct watched_stream {
	agentbus_stream *stream;
	struct spill_stream *spill;  /* its place in the spill writer */
	struct stuck_frame stuck[STREAM_MAX_SUBSCRIPTIONS + 1]; /* + the spill writer */
};

/* A client of an earlier daemon of this bus: alive while it holds its lock
 * file, which is probed at most every EARLIER_CLIENT_RECHECK_NS. */
#define EARLIER_CLIENTS_CACHED 64
struct earlier_client {
	uint32_t id;
	int alive;
	uint64_t checked_ns;
};

struct agentbus_daemon {
	char bus[AGENTBUS_NAME_MAX + 1];
	char dir[PATH_LEN];          /* the bus's shared-memory directory */
	char bus_data_dir[PATH_LEN]; /* <data dir>/<bus>: one log directory per stream */
	int verbose;
	struct shm_mapping bus_map;  /* the bus segment */
	struct bus_control *bus_control;
	struct spill_writer *spill;
	uint64_t last_retention_ns;
	int lock_fd;                 /* flock'd: one daemon per bus; holds next_client_id */
	int listen_fd;
	int stop_pipe[2];
	pthread_t thread;
	struct client *clients;
	size_t client_count, client_capacity;
	uint32_t next_client_id;
	uint32_t first_client_id;    /* ids below it are clients of earlier daemons */
	struct earlier_client earlier[EARLIER_CLIENTS_CACHED];
	uint64_t last_death_ns;      /* monotonic time of the latest client death */
	struct watched_stream *streams;
	size_t stream_count, stream_capacity;
};

/* daemon_log: events, when verbose; daemon_warn: what an operator must see
 * (losses, corruption, I/O errors), always. */
void daemon_log(struct agentbus_daemon *d, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void daemon_warn(struct agentbus_daemon *d, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void remove_tree(const char *path);
int daemon_client_alive(struct agentbus_daemon *d, uint32_t id);

/* daemon_streams.c: the streams served, their logs and spilling. */
struct control_request;
void daemon_attach_streams(struct agentbus_daemon *d);
struct watched_stream *daemon_find_stream(struct agentbus_daemon *d, const char *name);
int daemon_create_stream(struct agentbus_daemon *d, const struct control_request *req);
int daemon_delete_stream(struct agentbus_daemon *d, const struct control_request *req);
void daemon_unwatch_all(struct agentbus_daemon *d);
void daemon_apply_retention(struct agentbus_daemon *d, uint64_t now);

/* unblock.c: free what dead clients hold and turn their claims into gaps. */
void unblock_stream(struct agentbus_daemon *d, struct watched_stream *w);

#endif
