/* client.c - a client's connection to its bus's daemon (control path only). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "bus/internal.h"
#include "bus/protocol.h"

/* The longest a request may take: creating a stream of the largest ring
 * pre-faults 1 GiB (a few seconds here). A daemon that is stopped or hung
 * gets AGENTBUS_E_NO_DAEMON after this, not a client that waits forever. */
#define REQUEST_TIMEOUT_S 30

/*
 * Keep the socket off descriptors 0-2: a program started with one of them
 * closed would otherwise read its stdin from, or print into, the daemon's
 * connection. Then bound how long a request may wait for the daemon.
 */
static int settle_socket(int fd)
{
	struct timeval timeout = { .tv_sec = REQUEST_TIMEOUT_S };
	int high = fd;

	if (fd <= STDERR_FILENO) {
		high = fcntl(fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
		close(fd);
		if (high < 0)
			return -errno;
	}
	if (setsockopt(high, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)) != 0 ||
	    setsockopt(high, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout)) != 0) {
		close(high);
		return -errno;
	}
	return high;
}

static int connect_daemon(const char *dir, int *out_fd)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd, n;

	n = snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/%s", dir, SOCKET_NAME);
	if (n < 0 || (size_t)n >= sizeof(addr.sun_path))
		return set_error(-ENAMETOOLONG, "socket path '%s/%s' is too long", dir,
				 SOCKET_NAME);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd >= 0)
		fd = settle_socket(fd);
	if (fd < 0)
		return set_error(fd == -1 ? -errno : fd, "socket: %s", strerror(fd == -1 ? errno : -fd));
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
		int err = errno;

		close(fd);
		if (err == ENOENT || err == ECONNREFUSED)
			return set_error(AGENTBUS_E_NO_DAEMON, "no daemon serves %s (is `agentbus daemon` running?)",
					 dir);
		return set_error(-err, "connect %s: %s", addr.sun_path, strerror(err));
	}
	*out_fd = fd;
	return 0;
}

/*
 * A daemon that is gone leaves our connection dead for good; a later daemon
 * of the bus listens on the same path. These errors of a send or a recv
 * mean that the daemon at the other end is gone.
 */
static int daemon_gone_error(int err)
{
	return err == EPIPE || err == ECONNRESET || err == ECONNREFUSED || err == ENOTCONN;
}

/*
 * Hold <bus dir>/clients/<id> locked for as long as we live. Our socket
 * tells this daemon when we die; the lock tells a later one (after this
 * daemon was restarted), which must not free the slots or claims of a
 * client that is still running.
 */
static int alive_lock_path(const agentbus_bus *bus, char path[PATH_LEN])
{
	int n = snprintf(path, PATH_LEN, "%s/%s/%u", bus->dir, CLIENTS_DIR, bus->client_id);

	return n < 0 || n >= PATH_LEN ? -ENAMETOOLONG : 0;
}

/*
 * The path of our alive file, in @path, if the file there is still ours. It
 * is not once agentbus_bus_destroy() removed the bus directory: a daemon
 * started after that makes the bus anew, with client ids from 1 again, so
 * our id may be a new client's, with its alive file at our path. Our open
 * alive_fd keeps our file's inode in use: no other file has its dev and ino.
 */
static int alive_file_ours(const agentbus_bus *bus, char path[PATH_LEN])
{
	struct stat ours, there;

	return alive_lock_path(bus, path) == 0 && fstat(bus->alive_fd, &ours) == 0 &&
	       lstat(path, &there) == 0 && ours.st_dev == there.st_dev &&
	       ours.st_ino == there.st_ino;
}

/* One reply from @fd: the bytes received, 0 if the daemon hung up, or -1
 * (errno set). */
static ssize_t recv_reply(int fd, struct control_reply *reply)
{
	ssize_t n;

	do
		n = recv(fd, reply, sizeof(*reply), 0);
	while (n < 0 && errno == EINTR);
	return n;
}

/*
 * Tell the daemon at the other end of @fd our client id, which our claims
 * and subscription slots carry (a hello would give us a new one). It takes
 * the id while we hold its alive lock and no other connection has it; then
 * the closing of @fd is our death notice to it, as after a hello.
 */
static int reattach(agentbus_bus *bus, int fd)
{
	struct control_request req = { .magic = PROTOCOL_MAGIC, .op = OP_REATTACH,
				       .pid = (int32_t)bus->pid, .client_id = bus->client_id };
	struct control_reply reply;
	int answered = send(fd, &req, sizeof(req), MSG_NOSIGNAL) == (ssize_t)sizeof(req) &&
		       recv_reply(fd, &reply) == (ssize_t)sizeof(reply);

	if (!answered)
		return set_error(AGENTBUS_E_NO_DAEMON, "the daemon of bus '%s' is gone and the "
				 "next one did not answer (the next request tries again)",
				 bus->name);
	if (reply.status != 0) {
		reply.message[sizeof(reply.message) - 1] = '\0';
		return set_error(AGENTBUS_E_NO_DAEMON, "the next daemon of bus '%s' does not take "
				 "this handle back: %s; close it and open the bus again", bus->name,
				 reply.message);
	}
	return 0;
}

/*
 * Connect again, to whichever daemon serves the bus now, in place of a
 * connection whose daemon is gone (or dropped us). The descriptor keeps its
 * number (dup3 swaps the socket under it), since reconnect_if_daemon_gone()
 * polls socket_fd without our lock. Only to the bus we opened, not to one
 * made anew since under its name, and under our client id (reattach), once
 * we have one: before our hello there is nothing to keep.
 */
static int reconnect(agentbus_bus *bus)
{
	char path[PATH_LEN];
	int fd, err = connect_daemon(bus->dir, &fd);

	if (err == AGENTBUS_E_NO_DAEMON)
		return set_error(err, "the daemon of bus '%s' is gone and no daemon serves %s now "
				 "(the next request tries again)", bus->name, bus->dir);
	if (err)
		return err;
	/* Checked after the connect: a daemon that serves us now started
	 * after any destroy of the bus, since a destroy needs no daemon. */
	if (bus->alive_fd >= 0 && !alive_file_ours(bus, path))
		err = set_error(AGENTBUS_E_NO_DAEMON, "bus '%s' was destroyed and created anew "
				"since this handle opened it: close it and open the bus again",
				bus->name);
	if (!err && bus->alive_fd >= 0)
		err = reattach(bus, fd);
	if (!err && dup3(fd, bus->socket_fd, O_CLOEXEC) < 0)
		err = set_error(-errno, "dup3: %s", strerror(errno));
	/* A late reply of a request that timed out would have come on the old
	 * socket, which is gone now. */
	if (!err)
		bus->out_of_step = 0;
	close(fd);
	return err;
}

/*
 * The daemon closed our connection. Only a hang-up says so. POLLIN does not:
 * another thread of this client may be in request() on the same socket, with
 * the daemon's reply queued and not yet received.
 */
static int daemon_hung_up(const agentbus_bus *bus)
{
	struct pollfd p = { .fd = bus->socket_fd, .events = POLLRDHUP };

	return poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLRDHUP | POLLERR));
}

int reconnect_if_daemon_gone(agentbus_bus *bus)
{
	int err = 0;

	/* Unlocked first: a durable wait asks often, and a request in flight
	 * (up to 30 s) holds the lock. socket_fd keeps its number. */
	if (!daemon_hung_up(bus))
		return 0;
	pthread_mutex_lock(&bus->lock);
	if (daemon_hung_up(bus)) /* another thread may have reconnected */
		err = reconnect(bus);
	pthread_mutex_unlock(&bus->lock);
	return err;
}

/*
 * A child of fork() has copies of its parent's handles: the same connection,
 * alive lock, client id and slots. Whatever it did through them would be
 * done in the parent's name, so only closing them is allowed there.
 */
int bus_inherited(const agentbus_bus *bus)
{
	return bus && bus->pid != getpid();
}

int bus_check_owner(const agentbus_bus *bus)
{
	pid_t pid = getpid();

	if (bus->pid == pid)
		return 0;
	return set_error(AGENTBUS_E_INVALID, "bus handle opened by pid %d used in pid %d: "
			 "open the bus again after fork()", (int)bus->pid, (int)pid);
}

/* exchange(): the daemon was gone before the send; it never saw the request. */
#define UNSENT 1

/* One request, one reply on the current connection: 0, UNSENT, or an error. */
static int exchange(agentbus_bus *bus, const struct control_request *req,
		    struct control_reply *reply)
{
	ssize_t n;
	int err;

	if (bus->out_of_step)
		return set_error(AGENTBUS_E_NO_DAEMON, "daemon of bus '%s' stopped answering; "
				 "close the bus and open it again", bus->name);
	n = send(bus->socket_fd, req, sizeof(*req), MSG_NOSIGNAL);
	if (n < 0 && daemon_gone_error(errno))
		return UNSENT; /* SOCK_SEQPACKET: a failed send queued nothing */
	if (n != (ssize_t)sizeof(*req))
		return set_error(AGENTBUS_E_NO_DAEMON, "cannot send to the daemon of bus '%s': %s",
				 bus->name, n < 0 ? strerror(errno) : "short send");
	n = recv_reply(bus->socket_fd, reply);
	err = n < 0 ? errno : 0;
	/* A reply that comes later would answer the next request. */
	bus->out_of_step = err == EAGAIN || err == EWOULDBLOCK;
	/* It may have carried the request out before it went: repeating it
	 * could do it twice. The caller is told; the next request reconnects. */
	if (n == 0 || err == ECONNRESET)
		return set_error(AGENTBUS_E_NO_DAEMON, "daemon of bus '%s' went away before answering: "
				 "the request may or may not have been carried out (the next request "
				 "connects to the bus's new daemon)", bus->name);
	if (n != (ssize_t)sizeof(*reply) || reply->magic != PROTOCOL_MAGIC)
		return set_error(AGENTBUS_E_NO_DAEMON, "daemon of bus '%s' did not answer%s",
				 bus->name, bus->out_of_step ? " within 30 s" : "");
	return 0;
}

/*
 * One request, one reply; the reply's status is the result. A request that
 * finds its daemon gone before it is sent is sent again, once, to whichever
 * daemon serves the bus now, so that a restart of the daemon between two
 * requests costs the client nothing. A goodbye is not: nobody is left to
 * leave (a later daemon learns that we closed from our alive lock).
 */
static int request(agentbus_bus *bus, struct control_request *req, struct control_reply *reply)
{
	int err = bus_check_owner(bus);

	if (err)
		return err;
	req->magic = PROTOCOL_MAGIC;
	req->pid = (int32_t)bus->pid;
	pthread_mutex_lock(&bus->lock);
	err = exchange(bus, req, reply);
	if (err == UNSENT && req->op != OP_GOODBYE) {
		err = reconnect(bus);
		if (!err)
			err = exchange(bus, req, reply);
	}
	pthread_mutex_unlock(&bus->lock);
	if (err == UNSENT)
		return set_error(AGENTBUS_E_NO_DAEMON, "daemon of bus '%s' is gone", bus->name);
	if (err)
		return err;
	if (reply->status != 0) {
		reply->message[sizeof(reply->message) - 1] = '\0';
		return set_error(reply->status, "%s", reply->message);
	}
	return 0;
}

int bus_segment_map(const char *bus_dir, struct shm_mapping *map, struct bus_control **control)
{
	char path[PATH_LEN];
	int err = path_join(path, sizeof(path), bus_dir, BUS_SEGMENT_NAME);

	if (!err)
		err = shm_segment_map(path, BUS_CONTROL_SIZE, 1, map);
	if (err)
		return set_error(err, "cannot map %s: %s", path, agentbus_strerror(err));
	*control = map->control;
	if (load_acquire(&(*control)->magic) != BUS_MAGIC || (*control)->version != STREAM_LAYOUT_VERSION) {
		shm_segment_unmap(map);
		return set_error(AGENTBUS_E_VERSION, "%s is not a bus segment of this version", path);
	}
	(*control)->data_dir[sizeof((*control)->data_dir) - 1] = '\0';
	return 0;
}

static int hold_alive_lock(agentbus_bus *bus)
{
	char path[PATH_LEN];

	if (alive_lock_path(bus, path) != 0)
		return set_error(-ENAMETOOLONG, "bus directory '%s' is too long", bus->dir);
	bus->alive_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (bus->alive_fd < 0 || flock(bus->alive_fd, LOCK_EX | LOCK_NB) != 0)
		return set_error(-errno, "cannot lock %s: %s", path, strerror(errno));
	return 0;
}

static void drop_alive_lock(agentbus_bus *bus)
{
	char path[PATH_LEN];

	if (bus->alive_fd < 0)
		return;
	if (alive_file_ours(bus, path))
		unlink(path);
	close(bus->alive_fd);
}

/*
 * Open handles, so that a child of fork() lets go of its copies of their
 * connections and alive locks at once: a copy would keep the parent's
 * connection open and its lock held, and a parent that died would pass for
 * alive (its claims never gapped, its slots never freed) until the child
 * ended. The fork handlers hold the list's lock across fork(), so the child
 * finds the list whole. They are registered by the first agentbus_open(),
 * before any thread can publish (and cache an intent slot).
 */
static struct {
	pthread_mutex_t lock;
	agentbus_bus *first;
	int fork_watched;
} handles = { .lock = PTHREAD_MUTEX_INITIALIZER };
static pthread_once_t fork_watch = PTHREAD_ONCE_INIT;

static void lock_handles(void)
{
	pthread_mutex_lock(&handles.lock);
}

static void unlock_handles(void)
{
	pthread_mutex_unlock(&handles.lock);
}

/* In the child of fork(): the parent's descriptors, and the intent slots
 * the forking thread cached, are the parent's. */
static void forget_parent_handles(void)
{
	agentbus_bus *bus;

	intent_forget_after_fork();

	for (bus = handles.first; bus; bus = bus->next_open) {
		close(bus->socket_fd);
		bus->socket_fd = -1;
		if (bus->alive_fd >= 0)
			close(bus->alive_fd);
		bus->alive_fd = -1;
	}
	unlock_handles();
}

static void watch_forks(void)
{
	handles.fork_watched =
		pthread_atfork(lock_handles, unlock_handles, forget_parent_handles) == 0;
}

static void list_handle(agentbus_bus *bus)
{
	lock_handles();
	bus->next_open = handles.first;
	handles.first = bus;
	unlock_handles();
}

static void unlist_handle(agentbus_bus *bus)
{
	agentbus_bus **link;

	lock_handles();
	for (link = &handles.first; *link; link = &(*link)->next_open)
		if (*link == bus) {
			*link = bus->next_open;
			break;
		}
	unlock_handles();
}

int agentbus_open(agentbus_bus **out, const char *name)
{
	struct control_request req = { .op = OP_HELLO };
	struct control_reply reply;
	agentbus_bus *bus;
	int err;

	if (!out)
		return set_error(AGENTBUS_E_INVALID, "agentbus_open: bus pointer is NULL");
	pthread_once(&fork_watch, watch_forks);
	if (!handles.fork_watched)
		return set_error(-ENOMEM, "agentbus_open: cannot register the fork handlers");
	bus = calloc(1, sizeof(*bus));
	if (!bus)
		return set_error(-ENOMEM, "out of memory");
	bus->alive_fd = -1;
	bus->pid = getpid();
	err = resolve_bus_name(name, bus->name);
	if (!err)
		err = bus_dir_path(bus->name, bus->dir, sizeof(bus->dir));
	if (!err)
		err = connect_daemon(bus->dir, &bus->socket_fd);
	if (!err && bus_segment_map(bus->dir, &bus->bus_map, &bus->control) != 0) {
		close(bus->socket_fd);
		err = agentbus_last_error()[0] ? AGENTBUS_E_VERSION : AGENTBUS_E_NO_DAEMON;
	}
	if (err) {
		free(bus);
		return err;
	}
	pthread_mutex_init(&bus->lock, NULL);
	err = request(bus, &req, &reply);
	if (err) {
		agentbus_close(bus);
		return err;
	}
	bus->client_id = reply.client_id;
	err = hold_alive_lock(bus);
	if (err) {
		agentbus_close(bus);
		return err;
	}
	list_handle(bus);
	*out = bus;
	return 0;
}

void agentbus_close(agentbus_bus *bus)
{
	struct control_request req = { .op = OP_GOODBYE };
	struct control_reply reply;

	if (!bus)
		return;
	unlist_handle(bus);
	/* In a child of fork() the handle is the parent's: no goodbye, no
	 * unlink, and our copies of its descriptors were closed at the fork.
	 * Its lock may be held by a parent thread that the child does not
	 * have, so it is not destroyed. */
	if (!bus_inherited(bus)) {
		request(bus, &req, &reply);
		drop_alive_lock(bus);
		pthread_mutex_destroy(&bus->lock);
		close(bus->socket_fd);
	}
	shm_segment_unmap(&bus->bus_map);
	free(bus);
}

const char *agentbus_name(const agentbus_bus *bus)
{
	return bus ? bus->name : "";
}

int agentbus_stream_create(agentbus_bus *bus, const char *name,
			   const struct agentbus_stream_config *config)
{
	struct control_request req = { .op = OP_STREAM_CREATE };
	struct control_reply reply;
	int err;

	if (!bus)
		return set_error(AGENTBUS_E_INVALID, "stream create: bus is NULL");
	if (config)
		req.config = *config;
	/* Checked here for a precise message, and again by the daemon. */
	err = stream_config_normalize(name, &req.config);
	if (err)
		return err;
	strcpy(req.name, name);
	return request(bus, &req, &reply);
}

int agentbus_stream_delete(agentbus_bus *bus, const char *name)
{
	struct control_request req = { .op = OP_STREAM_DELETE };
	struct control_reply reply;
	int err;

	if (!bus)
		return set_error(AGENTBUS_E_INVALID, "stream delete: bus is NULL");
	err = check_name("stream", name);
	if (err)
		return err;
	strcpy(req.name, name);
	return request(bus, &req, &reply);
}
