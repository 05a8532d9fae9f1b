/*
 * daemon.h - the daemon's private state, shared by daemon.c (sockets,
 * clients, requests) and unblock.c (repairing what dead clients left).
 */
#ifndef AGENTBUS_BUS_DAEMON_H
#define AGENTBUS_BUS_DAEMON_H

#include <pthread.h>
#include <sys/types.h>

#include "bus/internal.h"

#define STALE_CLAIM_TIMEOUT_NS 1000000000ull /* a reserved frame left unmarked this long is dead */

struct client {
	int fd;              /* its socket; EOF or an error = the client died */
	uint32_t id;         /* 0 until it said hello */
	pid_t pid;           /* for logs only */
};

/* What the daemon remembers of a frame a subscription is waiting at. */
struct stuck_frame {
	uint64_t position;   /* 0 with since_ns 0 = nothing remembered */
	uint64_t since_ns;   /* when it was first seen unmarked */
};

struct watched_stream {
	agentbus_stream *stream;
	struct stuck_frame stuck[STREAM_MAX_SUBSCRIPTIONS];
};

struct agentbus_daemon {
	char bus[AGENTBUS_NAME_MAX + 1];
	char dir[PATH_LEN];
	int verbose;
	int lock_fd;                 /* flock'd: one daemon per bus; holds next_client_id */
	int listen_fd;
	int stop_pipe[2];
	pthread_t thread;
	struct client *clients;
	size_t client_count, client_capacity;
	uint32_t next_client_id;
	uint64_t last_death_ns;      /* monotonic time of the latest client death */
	struct watched_stream *streams;
	size_t stream_count, stream_capacity;
};

void daemon_log(struct agentbus_daemon *d, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int daemon_client_alive(const struct agentbus_daemon *d, uint32_t id);

/* unblock.c: free what dead clients hold and turn their claims into gaps. */
void unblock_stream(struct agentbus_daemon *d, struct watched_stream *w);

#endif
