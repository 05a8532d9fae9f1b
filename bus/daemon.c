/*
 * daemon.c - the daemon of a bus: owns its shared-memory directory, answers
 * control requests on a Unix socket, and learns that a client died when its
 * connection closes (the kernel closes it for any death; pids are not used,
 * since they repeat across containers). It runs as a thread, either inside an
 * application (embedded) or in `agentbus daemon`. It is off the data path.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "bus/daemon.h"
#include "bus/protocol.h"

#define TICK_MS 2 /* how often waiting subscriptions are checked for dead producers */

void daemon_log(struct agentbus_daemon *d, const char *fmt, ...)
{
	va_list ap;

	if (!d->verbose)
		return;
	fprintf(stderr, "agentbus daemon [%s]: ", d->bus);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int daemon_client_alive(const struct agentbus_daemon *d, uint32_t id)
{
	size_t i;

	for (i = 0; id && i < d->client_count; i++)
		if (d->clients[i].id == id)
			return 1;
	return 0;
}

/* ---------------------------------------------------------------- streams */

static struct watched_stream *find_stream(struct agentbus_daemon *d, const char *name)
{
	size_t i;

	for (i = 0; i < d->stream_count; i++)
		if (strcmp(d->streams[i].stream->name, name) == 0)
			return &d->streams[i];
	return NULL;
}

static int watch_stream(struct agentbus_daemon *d, const char *name)
{
	struct watched_stream *grown;
	agentbus_stream *stream;
	int err;

	err = stream_map(d->dir, name, 0, &stream);
	if (err)
		return err;
	if (d->stream_count == d->stream_capacity) {
		size_t cap = d->stream_capacity ? 2 * d->stream_capacity : 8;

		grown = realloc(d->streams, cap * sizeof(*grown));
		if (!grown) {
			stream_unmap(stream);
			return set_error(-ENOMEM, "out of memory");
		}
		d->streams = grown;
		d->stream_capacity = cap;
	}
	memset(&d->streams[d->stream_count], 0, sizeof(d->streams[0]));
	d->streams[d->stream_count++].stream = stream;
	return 0;
}

static void unwatch_stream(struct agentbus_daemon *d, struct watched_stream *w)
{
	stream_unmap(w->stream);
	*w = d->streams[--d->stream_count];
}

/* Adopt the streams an earlier daemon of this bus left in shared memory. */
static void adopt_streams(struct agentbus_daemon *d)
{
	char path[PATH_LEN];
	struct dirent *e;
	DIR *dir;

	if (path_join(path, sizeof(path), d->dir, STREAMS_DIR) != 0)
		return;
	dir = opendir(path);
	if (!dir)
		return;
	while ((e = readdir(dir)) != NULL) {
		if (e->d_name[0] == '.') {
			if (strncmp(e->d_name, ".init-", 6) == 0)
				unlinkat(dirfd(dir), e->d_name, 0); /* a creator died midway */
			continue;
		}
		if (watch_stream(d, e->d_name) != 0)
			daemon_log(d, "ignoring %s/%s: %s", path, e->d_name, agentbus_last_error());
		else
			daemon_log(d, "adopted stream '%s'", e->d_name);
	}
	closedir(dir);
}

static int create_stream(struct agentbus_daemon *d, const struct control_request *req)
{
	int err = check_stream_config(req->name, req->ring_size, req->max_record);

	if (err)
		return err;
	err = stream_create_segment(d->dir, req->name, req->ring_size, req->max_record);
	if (err == -EEXIST)
		return set_error(AGENTBUS_E_EXISTS, "stream '%s' already exists", req->name);
	if (err == -ENOSPC)
		return set_error(err, "stream '%s': no room for a %llu-byte ring in shared memory",
				 req->name, (unsigned long long)req->ring_size);
	if (err)
		return set_error(err, "stream '%s': %s", req->name, agentbus_strerror(err));
	daemon_log(d, "created stream '%s' (ring %llu bytes)", req->name,
		   (unsigned long long)req->ring_size);
	return watch_stream(d, req->name);
}

static int delete_stream(struct agentbus_daemon *d, const struct control_request *req)
{
	struct watched_stream *w;
	char streams[PATH_LEN], path[PATH_LEN];
	int err = check_name("stream", req->name);

	if (err)
		return err;
	w = find_stream(d, req->name);
	if (!w)
		return set_error(AGENTBUS_E_NOT_FOUND, "no stream named '%s'", req->name);
	if (path_join(streams, sizeof(streams), d->dir, STREAMS_DIR) == 0 &&
	    path_join(path, sizeof(path), streams, req->name) == 0)
		unlink(path);
	/* Mapped handles keep the memory; the flag tells them it is gone. */
	store_release(&w->stream->control->deleted, 1);
	wake_sleepers(w->stream->control);
	unwatch_stream(d, w);
	daemon_log(d, "deleted stream '%s'", req->name);
	return 0;
}

/* ---------------------------------------------------------------- clients */

static uint32_t assign_client_id(struct agentbus_daemon *d)
{
	uint32_t id = d->next_client_id++;

	if (d->next_client_id == 0)
		d->next_client_id = 1;
	/* Persisted, so ids are not reused by the next daemon of this bus:
	 * frames still marked with an old id then read as "owner dead". */
	if (pwrite(d->lock_fd, &d->next_client_id, sizeof(d->next_client_id), 0) < 0)
		daemon_log(d, "cannot persist client id counter: %s", strerror(errno));
	return id;
}

static void handle_request(struct agentbus_daemon *d, struct client *c,
			   const struct control_request *req, struct control_reply *reply)
{
	int err;

	clear_error();
	switch (req->op) {
	case OP_HELLO:
		if (!c->id) {
			c->id = assign_client_id(d);
			c->pid = req->pid;
			daemon_log(d, "client %u (pid %d) attached", c->id, (int)c->pid);
		}
		reply->client_id = c->id;
		err = 0;
		break;
	case OP_STREAM_CREATE:
		err = create_stream(d, req);
		break;
	case OP_STREAM_DELETE:
		err = delete_stream(d, req);
		break;
	default:
		err = set_error(AGENTBUS_E_PROTOCOL, "unknown request %u", req->op);
	}
	reply->status = err;
	snprintf(reply->message, sizeof(reply->message), "%s", err ? agentbus_last_error() : "");
}

static void client_died(struct agentbus_daemon *d, size_t index)
{
	struct client c = d->clients[index];
	size_t i;

	close(c.fd);
	d->clients[index] = d->clients[--d->client_count];
	if (!c.id)
		return;
	d->last_death_ns = monotonic_ns();
	daemon_log(d, "client %u (pid %d) is gone", c.id, (int)c.pid);
	for (i = 0; i < d->stream_count; i++)
		unblock_stream(d, &d->streams[i]);
}

/* Returns 0 to keep the client, -1 when it is gone or misbehaved. */
static int serve_client(struct agentbus_daemon *d, struct client *c)
{
	struct control_request req;
	struct control_reply reply = { .magic = PROTOCOL_MAGIC };
	ssize_t n;

	n = recv(c->fd, &req, sizeof(req), MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0)
		return -1;
	if (n != (ssize_t)sizeof(req) || req.magic != PROTOCOL_MAGIC) {
		daemon_log(d, "dropping client %u: malformed request", c->id);
		return -1;
	}
	req.name[sizeof(req.name) - 1] = '\0';
	handle_request(d, c, &req, &reply);
	if (send(c->fd, &reply, sizeof(reply), MSG_NOSIGNAL) != (ssize_t)sizeof(reply))
		return -1;
	return 0;
}

static void accept_client(struct agentbus_daemon *d)
{
	struct client *grown;
	int fd = accept4(d->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	if (fd < 0)
		return;
	if (d->client_count == d->client_capacity) {
		size_t cap = d->client_capacity ? 2 * d->client_capacity : 16;

		grown = realloc(d->clients, cap * sizeof(*grown));
		if (!grown) {
			close(fd);
			return;
		}
		d->clients = grown;
		d->client_capacity = cap;
	}
	d->clients[d->client_count++] = (struct client){ .fd = fd };
}

/* ---------------------------------------------------------------- main loop */

static int poll_once(struct agentbus_daemon *d, struct pollfd **fds, size_t *cap)
{
	size_t n = d->client_count + 2, i;

	if (n > *cap) {
		struct pollfd *grown = realloc(*fds, n * sizeof(**fds));

		if (!grown)
			return -1;
		*fds = grown;
		*cap = n;
	}
	(*fds)[0] = (struct pollfd){ .fd = d->stop_pipe[0], .events = POLLIN };
	(*fds)[1] = (struct pollfd){ .fd = d->listen_fd, .events = POLLIN };
	for (i = 0; i < d->client_count; i++)
		(*fds)[i + 2] = (struct pollfd){ .fd = d->clients[i].fd, .events = POLLIN };
	return poll(*fds, n, TICK_MS);
}

static void *daemon_main(void *arg)
{
	struct agentbus_daemon *d = arg;
	struct pollfd *fds = NULL;
	size_t cap = 0, i, count;

	for (;;) {
		if (poll_once(d, &fds, &cap) > 0) {
			if (fds[0].revents)
				break;
			/* Walk backwards: client_died() moves the last client into the hole. */
			count = d->client_count;
			for (i = count; i-- > 0;)
				if (fds[i + 2].revents && serve_client(d, &d->clients[i]) != 0)
					client_died(d, i);
			if (fds[1].revents)
				accept_client(d);
		}
		for (i = 0; i < d->stream_count; i++)
			unblock_stream(d, &d->streams[i]);
	}
	free(fds);
	return NULL;
}

/* ---------------------------------------------------------------- start/stop */

static int make_dirs(struct agentbus_daemon *d)
{
	char base[PATH_LEN], streams[PATH_LEN];
	int err;

	if (shm_base_dir(base, sizeof(base)) != 0)
		return set_error(-ENAMETOOLONG, "AGENTBUS_SHM_DIR is too long");
	err = path_join(streams, sizeof(streams), d->dir, STREAMS_DIR);
	if (err)
		return err;
	err = shm_dir_ensure(base);
	if (!err)
		err = shm_dir_ensure(d->dir);
	if (!err)
		err = shm_dir_ensure(streams);
	if (err)
		return set_error(err, "cannot make %s: %s", streams, agentbus_strerror(err));
	return 0;
}

static int take_bus_lock(struct agentbus_daemon *d)
{
	char path[PATH_LEN];
	ssize_t n;

	if (path_join(path, sizeof(path), d->dir, LOCK_NAME) != 0)
		return -ENAMETOOLONG;
	d->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (d->lock_fd < 0)
		return set_error(-errno, "cannot open %s: %s", path, strerror(errno));
	/* The kernel drops this lock when the daemon dies, however it dies. */
	if (flock(d->lock_fd, LOCK_EX | LOCK_NB) != 0)
		return set_error(AGENTBUS_E_BUSY, "another daemon already serves bus '%s'", d->bus);
	n = pread(d->lock_fd, &d->next_client_id, sizeof(d->next_client_id), 0);
	if (n != (ssize_t)sizeof(d->next_client_id) || d->next_client_id == 0)
		d->next_client_id = 1;
	return 0;
}

static int listen_socket(struct agentbus_daemon *d)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int n;

	n = snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/%s", d->dir, SOCKET_NAME);
	if (n < 0 || (size_t)n >= sizeof(addr.sun_path))
		return set_error(-ENAMETOOLONG, "socket path in %s is too long", d->dir);
	unlink(addr.sun_path); /* left by a dead daemon; we hold the bus lock */
	d->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (d->listen_fd < 0)
		return set_error(-errno, "socket: %s", strerror(errno));
	if (bind(d->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
	    chmod(addr.sun_path, 0600) != 0 || listen(d->listen_fd, 64) != 0)
		return set_error(-errno, "cannot listen on %s: %s", addr.sun_path, strerror(errno));
	return 0;
}

static void daemon_free(struct agentbus_daemon *d)
{
	while (d->stream_count)
		unwatch_stream(d, &d->streams[0]);
	while (d->client_count)
		close(d->clients[--d->client_count].fd);
	if (d->listen_fd >= 0)
		close(d->listen_fd);
	if (d->lock_fd >= 0)
		close(d->lock_fd);
	if (d->stop_pipe[0] >= 0) {
		close(d->stop_pipe[0]);
		close(d->stop_pipe[1]);
	}
	free(d->streams);
	free(d->clients);
	free(d);
}

static int daemon_setup(struct agentbus_daemon *d, const struct agentbus_daemon_config *cfg)
{
	int err = resolve_bus_name(cfg ? cfg->bus : NULL, d->bus);

	d->verbose = cfg ? cfg->verbose : 0;
	if (!err)
		err = bus_dir_path(d->bus, d->dir, sizeof(d->dir));
	if (!err)
		err = make_dirs(d);
	if (!err)
		err = take_bus_lock(d);
	if (!err)
		err = listen_socket(d);
	if (!err && pipe2(d->stop_pipe, O_CLOEXEC) != 0)
		err = set_error(-errno, "pipe: %s", strerror(errno));
	return err;
}

int agentbus_daemon_start(agentbus_daemon **out, const struct agentbus_daemon_config *config)
{
	struct agentbus_daemon *d;
	int err;

	if (!out)
		return set_error(AGENTBUS_E_INVALID, "daemon start: NULL argument");
	d = calloc(1, sizeof(*d));
	if (!d)
		return set_error(-ENOMEM, "out of memory");
	d->lock_fd = d->listen_fd = d->stop_pipe[0] = d->stop_pipe[1] = -1;
	err = daemon_setup(d, config);
	if (!err) {
		adopt_streams(d);
		err = -pthread_create(&d->thread, NULL, daemon_main, d);
		if (err)
			set_error(err, "cannot start the daemon thread");
	}
	if (err) {
		daemon_free(d);
		return err;
	}
	daemon_log(d, "serving %s", d->dir);
	*out = d;
	return 0;
}

void agentbus_daemon_stop(agentbus_daemon *d)
{
	char path[PATH_LEN];

	if (!d)
		return;
	if (write(d->stop_pipe[1], "x", 1) == 1)
		pthread_join(d->thread, NULL);
	if (path_join(path, sizeof(path), d->dir, SOCKET_NAME) == 0)
		unlink(path);
	daemon_log(d, "stopped");
	daemon_free(d);
}

/* ---------------------------------------------------------------- destroy */

static void remove_dir_contents(const char *path)
{
	char child[PATH_LEN];
	struct dirent *e;
	DIR *dir = opendir(path);

	if (!dir)
		return;
	while ((e = readdir(dir)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (path_join(child, sizeof(child), path, e->d_name) != 0)
			continue;
		if (e->d_type == DT_DIR) {
			remove_dir_contents(child);
			rmdir(child);
		} else {
			unlink(child);
		}
	}
	closedir(dir);
}

int agentbus_bus_destroy(const char *name)
{
	char bus[AGENTBUS_NAME_MAX + 1], dir[PATH_LEN], lock[PATH_LEN];
	int err, fd;

	err = resolve_bus_name(name, bus);
	if (!err)
		err = bus_dir_path(bus, dir, sizeof(dir));
	if (err)
		return err;
	err = path_join(lock, sizeof(lock), dir, LOCK_NAME);
	if (err)
		return err;
	fd = open(lock, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno != ENOENT)
		return set_error(-errno, "cannot open %s: %s", lock, strerror(errno));
	if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) != 0) {
		close(fd);
		return set_error(AGENTBUS_E_BUSY, "a daemon still serves bus '%s'", bus);
	}
	remove_dir_contents(dir);
	if (fd >= 0)
		close(fd);
	if (rmdir(dir) != 0 && errno != ENOENT)
		return set_error(-errno, "cannot remove %s: %s", dir, strerror(errno));
	return 0;
}
