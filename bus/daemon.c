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
#define EARLIER_CLIENT_RECHECK_NS 50000000ull /* a lock probe per earlier client per 50 ms */

static void vlog(struct agentbus_daemon *d, const char *fmt, va_list ap)
{
	char line[1024];

	vsnprintf(line, sizeof(line), fmt, ap);
	fprintf(stderr, "agentbus daemon [%s]: %s\n", d->bus, line);
}

void daemon_log(struct agentbus_daemon *d, const char *fmt, ...)
{
	va_list ap;

	if (!d->verbose)
		return;
	va_start(ap, fmt);
	vlog(d, fmt, ap);
	va_end(ap);
}

void daemon_warn(struct agentbus_daemon *d, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(d, fmt, ap);
	va_end(ap);
}

/*
 * Does client @id hold its alive lock? Each client holds its file in
 * CLIENTS_DIR locked (the kernel drops the lock when the process dies,
 * however it dies), so a lock we can take, or no file, means it is gone.
 */
static int probe_alive_lock(const struct agentbus_daemon *d, uint32_t id)
{
	char path[PATH_LEN];
	int fd, alive;

	if (snprintf(path, sizeof(path), "%s/%s/%u", d->dir, CLIENTS_DIR, id) >= (int)sizeof(path))
		return 0;
	fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return 0;
	alive = flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
	if (!alive)
		unlink(path);
	close(fd);
	return alive;
}

/* The cache entry of an earlier daemon's client @id, or the least recently
 * checked one, to be reused for it. */
static struct earlier_client *earlier_entry(struct agentbus_daemon *d, uint32_t id)
{
	struct earlier_client *oldest = &d->earlier[0];
	size_t i;

	for (i = 0; i < EARLIER_CLIENTS_CACHED; i++) {
		if (d->earlier[i].id == id)
			return &d->earlier[i];
		if (d->earlier[i].checked_ns < oldest->checked_ns)
			oldest = &d->earlier[i];
	}
	return oldest;
}

/* The cached answer for an earlier daemon's client; a death is final. */
static int earlier_client_alive(struct agentbus_daemon *d, uint32_t id)
{
	uint64_t now = monotonic_ns();
	struct earlier_client *e = earlier_entry(d, id);

	if (e->id != id || (e->alive && now - e->checked_ns >= EARLIER_CLIENT_RECHECK_NS))
		*e = (struct earlier_client){ id, probe_alive_lock(d, id), now };
	return e->alive;
}

static int own_client_id(const struct agentbus_daemon *d, uint32_t id)
{
	return id >= d->first_client_id && id < d->next_client_id;
}

static struct client *connected_client(struct agentbus_daemon *d, uint32_t id)
{
	size_t i;

	for (i = 0; i < d->client_count; i++)
		if (d->clients[i].id == id)
			return &d->clients[i];
	return NULL;
}

int daemon_client_alive(struct agentbus_daemon *d, uint32_t id)
{
	if (id == 0)
		return 0;
	if (connected_client(d, id))
		return 1;
	if (own_client_id(d, id))
		return 0; /* ours, and its connection is gone */
	return earlier_client_alive(d, id);
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

/*
 * A client whose connection ended while it lived (its daemon died, or we
 * dropped it) connects again and takes back @req->client_id, which its
 * claims and slots carry, so that this connection's closing is its death
 * notice, as after a hello. Only a live holder of the id may: its alive
 * file is locked, and no connection has the id. A client of an earlier
 * incarnation of the bus (destroyed, then made anew: ids start again)
 * checks that the file at the id's path is its own before it asks.
 */
static int reattach_client(struct agentbus_daemon *d, struct client *c,
			   const struct control_request *req)
{
	uint32_t id = req->client_id;

	if (c->id)
		return set_error(AGENTBUS_E_PROTOCOL, "client %u asked to be client %u", c->id, id);
	if (id == 0)
		return set_error(AGENTBUS_E_PROTOCOL, "reattach without a client id");
	if (connected_client(d, id))
		return set_error(AGENTBUS_E_INVALID, "client %u of bus '%s' is connected already",
				 id, d->bus);
	if (!probe_alive_lock(d, id))
		return set_error(AGENTBUS_E_INVALID, "no live client %u on bus '%s' "
				 "(%s/%s/%u is not locked)", id, d->bus, d->dir, CLIENTS_DIR, id);
	c->id = id;
	c->pid = req->pid;
	daemon_log(d, "client %u (pid %d) attached again", c->id, (int)c->pid);
	return 0;
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
		err = daemon_create_stream(d, req);
		break;
	case OP_STREAM_DELETE:
		err = daemon_delete_stream(d, req);
		break;
	case OP_GOODBYE:
		c->said_goodbye = 1;
		err = 0;
		break;
	case OP_REATTACH:
		err = reattach_client(d, c, req);
		break;
	default:
		err = set_error(AGENTBUS_E_PROTOCOL, "unknown request %u", req->op);
	}
	reply->status = err;
	snprintf(reply->message, sizeof(reply->message), "%s", err ? agentbus_last_error() : "");
}

/* The connection closed: a clean close after a goodbye, or a death. */
static void client_died(struct agentbus_daemon *d, size_t index)
{
	struct client c = d->clients[index];
	size_t i;

	close(c.fd);
	d->clients[index] = d->clients[--d->client_count];
	if (!c.id)
		return;
	if (c.said_goodbye) {
		daemon_log(d, "client %u (pid %d) closed", c.id, (int)c.pid);
		return;
	}
	d->last_death_ns = monotonic_ns();
	/* An earlier daemon's client that attached again: its lock may not be
	 * released yet, and a probe would take it for alive for a while. */
	if (!own_client_id(d, c.id))
		*earlier_entry(d, c.id) = (struct earlier_client){ c.id, 0, d->last_death_ns };
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
		daemon_apply_retention(d, monotonic_ns());
	}
	free(fds);
	return NULL;
}

/* ---------------------------------------------------------------- start/stop */

static void report_spill(void *arg, const char *message)
{
	daemon_warn(arg, "%s", message);
}

static void bus_control_init(void *control, void *arg)
{
	struct bus_control *bc = control;

	(void)arg;
	bc->version = STREAM_LAYOUT_VERSION;
	store_release(&bc->magic, BUS_MAGIC);
}

/* The bus segment: made once per bus, adopted by later daemons; it tells
 * clients where the logs are. */
static int open_bus_segment(struct agentbus_daemon *d)
{
	char data_dir[PATH_LEN];
	size_t len;
	int err;

	err = shm_segment_create(d->dir, BUS_SEGMENT_NAME, BUS_CONTROL_SIZE, 0, bus_control_init,
				 NULL);
	if (err && err != -EEXIST)
		return set_error(err, "cannot make the bus segment in %s: %s", d->dir,
				 agentbus_strerror(err));
	err = bus_segment_map(d->dir, &d->bus_map, &d->bus_control);
	if (err)
		return err;
	/* bus_data_dir is <data dir>/<bus>: keep the data dir part. */
	len = strlen(d->bus_data_dir) - strlen(d->bus) - 1;
	snprintf(data_dir, sizeof(data_dir), "%.*s", (int)len, d->bus_data_dir);
	memcpy(d->bus_control->data_dir, data_dir, strlen(data_dir) + 1);
	return 0;
}

static int make_dirs(struct agentbus_daemon *d, const char *data_dir_option)
{
	char base[PATH_LEN], streams[PATH_LEN], clients[PATH_LEN], data_dir[PATH_LEN];
	int err;

	err = resolve_data_dir(data_dir_option, data_dir);
	if (!err)
		err = path_join(d->bus_data_dir, sizeof(d->bus_data_dir), data_dir, d->bus);
	if (!err)
		err = make_dir_path(d->bus_data_dir);
	if (err)
		return err;

	if (shm_base_dir(base, sizeof(base)) != 0)
		return set_error(-ENAMETOOLONG, "AGENTBUS_SHM_DIR is too long");
	err = path_join(streams, sizeof(streams), d->dir, STREAMS_DIR);
	if (!err)
		err = path_join(clients, sizeof(clients), d->dir, CLIENTS_DIR);
	if (err)
		return err;
	err = shm_dir_ensure(base);
	if (!err)
		err = shm_dir_ensure(d->dir);
	if (!err)
		err = shm_dir_ensure(streams);
	if (!err)
		err = shm_dir_ensure(clients);
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
	d->first_client_id = d->next_client_id;
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
	daemon_unwatch_all(d);
	spill_writer_stop(d->spill);
	shm_segment_unmap(&d->bus_map);
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
		err = make_dirs(d, cfg ? cfg->data_dir : NULL);
	if (!err)
		err = take_bus_lock(d);
	if (!err)
		err = open_bus_segment(d);
	if (!err)
		err = spill_writer_start(&d->spill, &d->bus_control->spill_wakeup,
					 &d->bus_control->spill_asleep, report_spill, d);
	if (err && !*agentbus_last_error())
		set_error(err, "cannot start the spill writer: %s", agentbus_strerror(err));
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
		daemon_attach_streams(d);
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

/* rm -r @path (no links are followed: entries are unlinked, not entered). */
void remove_tree(const char *path)
{
	char child[PATH_LEN];
	struct dirent *e;
	DIR *dir = opendir(path);

	if (dir) {
		while ((e = readdir(dir)) != NULL) {
			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
			    path_join(child, sizeof(child), path, e->d_name) != 0)
				continue;
			if (e->d_type == DT_DIR)
				remove_tree(child);
			else
				unlink(child);
		}
		closedir(dir);
	}
	rmdir(path);
}

/* <data dir>/<bus>, as the last daemon of the bus wrote it in the bus segment. */
static void remove_bus_logs(const char *bus, const char *dir)
{
	struct bus_control *bc;
	struct shm_mapping map;
	char logs[PATH_LEN];

	if (bus_segment_map(dir, &map, &bc) != 0)
		return;
	if (bc->data_dir[0] == '/' && path_join(logs, sizeof(logs), bc->data_dir, bus) == 0)
		remove_tree(logs);
	shm_segment_unmap(&map);
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
	remove_bus_logs(bus, dir);
	remove_tree(dir);
	if (fd >= 0)
		close(fd);
	if (access(dir, F_OK) == 0)
		return set_error(-EBUSY, "cannot remove all of %s", dir);
	return 0;
}
