/*
 * helpers.h - what every agentbus test program shares.
 *
 * Each test is a small program that exits T_PASS (0), T_FAIL (1) or T_SKIP
 * (77, ctest's SKIP_RETURN_CODE). A test runs its own embedded daemon on a
 * bus named "t-<tag>-<pid>", so tests can run side by side and a crashed run
 * leaves nothing another run trips over.
 *
 * Failure handling: an assertion that fails prints file:line, the failed
 * expression, the code it returned and agentbus_last_error(), then cleans
 * up and exits 1. Cleanup kills the children this process spawned, stops
 * the daemon and destroys the bus, but only in the process that started the
 * daemon; a child (see t_spawn) just exits. An alarm bounds the cleanup itself, so a core
 * that hangs on the way out still ends the test.
 *
 * Every loop in a test is bounded by a deadline (t_deadline_*), because a
 * test that hangs costs the whole CI run its timeout instead of one line.
 *
 * Everything here is static so each test is one translation unit.
 */
#ifndef AGENTBUS_TEST_HELPERS_H
#define AGENTBUS_TEST_HELPERS_H

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agentbus.h"

#define T_PASS 0
#define T_FAIL 1
#define T_SKIP 77

#define T_MAX_CHILDREN 64

/*
 * Publish timeout (ms) wherever back-pressure is not what a test is about.
 * The ring may be held for a moment by something other than the test's own
 * subscriptions (the daemon's spill writer, once the log exists), so a
 * publish that must succeed waits for room, boundedly, rather than fail.
 */
#define T_WAIT_MS 10000

/* State of this test program; one daemon and one bus per program. */
static struct {
	char bus_name[AGENTBUS_NAME_MAX + 1]; /* "t-<tag>-<pid>"; "" before t_setup() */
	agentbus_daemon *daemon;              /* embedded daemon, NULL when stopped */
	agentbus_bus *bus;                    /* the main connection, NULL when closed */
	pid_t owner;                          /* pid that started the daemon */
	pid_t children[T_MAX_CHILDREN];       /* spawned and not yet reaped; 0 = free */
	int shared_fd;                        /* memfd of t_shared(), inherited by children */
	void *shared;                         /* its mapping in this process */
	char data_dir[256];                   /* private $AGENTBUS_DATA; "" if none made */
} t_state __attribute__((unused));

/* ------------------------------------------------------------------------ */
/* Time and deadlines                                                        */
/* ------------------------------------------------------------------------ */

/* CLOCK_MONOTONIC in nanoseconds. */
static inline uint64_t t_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct t_deadline {
	uint64_t end_ns; /* CLOCK_MONOTONIC instant at which the loop gives up */
};

static inline struct t_deadline t_deadline_ms(uint64_t ms)
{
	struct t_deadline d = { t_now_ns() + ms * 1000000u };

	return d;
}

static inline bool t_expired(const struct t_deadline *d)
{
	return t_now_ns() >= d->end_ns;
}

/* Sleep @us microseconds (EINTR shortens it, which no caller minds). */
static inline void t_sleep_us(uint64_t us)
{
	struct timespec ts = { (time_t)(us / 1000000u), (long)(us % 1000000u) * 1000 };

	nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------------------ */
/* Failure and cleanup                                                       */
/* ------------------------------------------------------------------------ */

static inline void t_cleanup(void);

/* Print a failure with its location and the library's last message, clean
 * up (only in the owner process) and exit 1. Never returns. */
static inline void __attribute__((noreturn, format(printf, 3, 4)))
t_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	const char *detail = agentbus_last_error();

	fprintf(stderr, "%s:%d: FAIL (pid %d): ", file, line, (int)getpid());
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n  last error: %s\n", detail && *detail ? detail : "(none)");
	fflush(stderr);
	if (getpid() == t_state.owner) {
		/* the core may hang while stopping; SIGALRM's default ends us */
		alarm(10);
		t_cleanup();
	}
	_exit(T_FAIL);
}

/* Skip the whole test with a reason. */
static inline void __attribute__((noreturn, format(printf, 1, 2))) t_skip(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "SKIP: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	if (getpid() == t_state.owner)
		t_cleanup();
	exit(T_SKIP);
}

#define T_ASSERT(cond)                                                              \
	do {                                                                        \
		if (!(cond))                                                        \
			t_fail(__FILE__, __LINE__, "assertion `%s` failed", #cond); \
	} while (0)

/* Like T_ASSERT with a printf-style explanation. */
#define T_ASSERTF(cond, ...)                                    \
	do {                                                    \
		if (!(cond))                                    \
			t_fail(__FILE__, __LINE__, __VA_ARGS__); \
	} while (0)

/* @expr must be >= 0 (a count, a seq, or 0); evaluates to its value. */
#define T_OK(expr)                                                                     \
	({                                                                             \
		int64_t t_ok_r_ = (int64_t)(expr);                                     \
		if (t_ok_r_ < 0)                                                       \
			t_fail(__FILE__, __LINE__, "`%s` returned %" PRId64 " (%s)", #expr, \
			       t_ok_r_, agentbus_strerror((int)t_ok_r_));              \
		t_ok_r_;                                                               \
	})

/* @expr must return exactly the code @want. */
#define T_ERR(expr, want)                                                                \
	do {                                                                             \
		int64_t t_err_r_ = (int64_t)(expr);                                      \
		int64_t t_err_w_ = (int64_t)(want);                                      \
		if (t_err_r_ != t_err_w_)                                                \
			t_fail(__FILE__, __LINE__,                                       \
			       "`%s` returned %" PRId64 " (%s), want %" PRId64 " (%s)", #expr, \
			       t_err_r_, agentbus_strerror((int)t_err_r_), t_err_w_,     \
			       agentbus_strerror((int)t_err_w_));                        \
	} while (0)

/* Two integers must be equal; both are printed when they are not. */
#define T_EQ(a, b)                                                                     \
	do {                                                                           \
		int64_t t_eq_a_ = (int64_t)(a);                                        \
		int64_t t_eq_b_ = (int64_t)(b);                                        \
		if (t_eq_a_ != t_eq_b_)                                                \
			t_fail(__FILE__, __LINE__, "`%s` == %" PRId64 ", want `%s` == %" PRId64, \
			       #a, t_eq_a_, #b, t_eq_b_);                              \
	} while (0)

/* Run sub-test @fn(...) and report it, so a log shows how far a test got. */
#define T_RUN(fn, ...)                             \
	do {                                       \
		fn(__VA_ARGS__);                   \
		printf("ok - %s\n", #fn);          \
		fflush(stdout);                    \
	} while (0)

/* ------------------------------------------------------------------------ */
/* Child processes                                                           */
/* ------------------------------------------------------------------------ */

static inline void t_forget_child(pid_t pid)
{
	for (int i = 0; i < T_MAX_CHILDREN; i++)
		if (t_state.children[i] == pid)
			t_state.children[i] = 0;
}

/*
 * A role a child process can play: @fn gets the argument string given to
 * t_spawn() and returns the child's exit code.
 *
 * Children are this program executed again with "--t-child ROLE BUS FD ARG",
 * never a bare fork(): the test process runs the daemon's threads, and a
 * fork() taken while one of them holds a lock (the sanitizers' allocator,
 * for one) leaves that lock held forever in the child. Only exec is safe
 * after fork in a multi-threaded process.
 */
struct t_role {
	const char *name;
	int (*fn)(const char *arg);
};

/*
 * Call first thing in main() of a test that spawns children. In the parent
 * it returns at once; in a child it runs the role named on the command line
 * and exits with its result.
 */
static inline void t_child_dispatch(int argc, char **argv, const struct t_role *roles,
				    size_t count)
{
	if (argc != 6 || strcmp(argv[1], "--t-child") != 0)
		return;
	t_state.owner = 0; /* a child never cleans up the bus */
	setvbuf(stdout, NULL, _IOLBF, 0);
	snprintf(t_state.bus_name, sizeof(t_state.bus_name), "%s", argv[3]);
	t_state.shared_fd = atoi(argv[4]);
	for (size_t i = 0; i < count; i++)
		if (strcmp(roles[i].name, argv[2]) == 0)
			exit(roles[i].fn(argv[5]));
	fprintf(stderr, "unknown child role '%s'\n", argv[2]);
	exit(T_FAIL);
}

/*
 * Memory shared with the children, @size bytes, zeroed: a memfd that the
 * children inherit across exec. The parent calls it before spawning; a
 * child calls it with the same size to map the parent's block. One block
 * per test program.
 */
static inline void *t_shared(size_t size)
{
	void *p;

	if (t_state.shared)
		return t_state.shared;
	if (t_state.shared_fd <= 0) {
		/* no MFD_CLOEXEC: the children must inherit it */
		t_state.shared_fd = memfd_create("agentbus-test", 0);
		if (t_state.shared_fd < 0 || ftruncate(t_state.shared_fd, (off_t)size) != 0)
			t_fail(__FILE__, __LINE__, "memfd: %s", strerror(errno));
	}
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, t_state.shared_fd, 0);
	if (p == MAP_FAILED)
		t_fail(__FILE__, __LINE__, "mmap shared block: %s", strerror(errno));
	t_state.shared = p;
	return p;
}

/*
 * Start a child playing @role with argument @arg (see t_child_dispatch).
 * The child opens its own bus connection (t_state.bus_name is set for it).
 * Returns the pid; fails the test if fork does.
 */
static inline pid_t t_spawn(const char *role, const char *arg)
{
	char fd[16];
	char *argv[] = { "/proc/self/exe", "--t-child", (char *)role, t_state.bus_name, fd,
			 (char *)arg, NULL };
	int slot = -1;
	pid_t pid;

	for (int i = 0; i < T_MAX_CHILDREN && slot < 0; i++)
		if (t_state.children[i] == 0)
			slot = i;
	if (slot < 0)
		t_fail(__FILE__, __LINE__, "more than %d children", T_MAX_CHILDREN);
	snprintf(fd, sizeof(fd), "%d", t_state.shared_fd);
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		t_fail(__FILE__, __LINE__, "fork: %s", strerror(errno));
	if (pid == 0) {
		/* only async-signal-safe calls between fork and exec */
		execv(argv[0], argv);
		_exit(127);
	}
	t_state.children[slot] = pid;
	return pid;
}

/*
 * Wait up to @timeout_ms for child @pid. Returns its exit code (0-255),
 * 128 + signal if a signal ended it, or -1 if it was still running at the
 * deadline, in which case it is killed and reaped.
 */
static inline int t_wait_child(pid_t pid, uint64_t timeout_ms)
{
	struct t_deadline d = t_deadline_ms(timeout_ms);
	int status;

	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			break;
		if (r < 0 && errno != EINTR) {
			t_forget_child(pid);
			return -1;
		}
		if (t_expired(&d)) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			t_forget_child(pid);
			return -1;
		}
		t_sleep_us(2000);
	}
	t_forget_child(pid);
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

/* Kill child @pid with SIGKILL and reap it. */
static inline void t_kill_child(pid_t pid)
{
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	t_forget_child(pid);
}

/* ------------------------------------------------------------------------ */
/* Bus set-up and tear-down                                                  */
/* ------------------------------------------------------------------------ */

/* Fill @buf with the unique bus name of test @tag. */
static inline void t_bus_name_for(char *buf, size_t len, const char *tag)
{
	snprintf(buf, len, "t-%s-%d", tag, (int)getpid());
}

/* nftw callback: remove one entry of a tree, children first. */
static inline int t_remove_entry(const char *path, const struct stat *st, int type,
				 struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	remove(path);
	return 0;
}

/*
 * Give the test a private data directory (where the daemon keeps stream
 * logs) and point $AGENTBUS_DATA at it, so a test never writes into the
 * user's own ~/.local/share/agentbus and leaves nothing behind. Children
 * inherit the variable. $TMPDIR (else /tmp) holds it.
 */
static inline void t_make_data_dir(void)
{
	const char *tmp = getenv("TMPDIR");
	int n = snprintf(t_state.data_dir, sizeof(t_state.data_dir), "%s/agentbus-test-%d-XXXXXX",
			 tmp && *tmp == '/' ? tmp : "/tmp", (int)getpid());

	if (n < 0 || (size_t)n >= sizeof(t_state.data_dir) || !mkdtemp(t_state.data_dir)) {
		t_state.data_dir[0] = '\0';
		t_fail(__FILE__, __LINE__, "cannot make a data directory under %s", tmp);
	}
	setenv("AGENTBUS_DATA", t_state.data_dir, 1);
}

/* Remove the tree at @path, if any, without the library's help. */
static inline void t_remove_tree(const char *path)
{
	nftw(path, t_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The per-user shared-memory directory: $AGENTBUS_SHM_DIR or
 * /dev/shm/agentbus-<uid>. */
static inline void t_shm_user_dir(char *out, size_t len)
{
	const char *env = getenv("AGENTBUS_SHM_DIR");

	if (env && *env)
		snprintf(out, len, "%s", env);
	else
		snprintf(out, len, "/dev/shm/agentbus-%u", (unsigned)getuid());
}

/* This test's bus's shared-memory directory (its daemon's socket is there too). */
static inline void t_bus_shm_dir(char *dir, size_t len)
{
	char shm[256];

	t_shm_user_dir(shm, sizeof(shm));
	snprintf(dir, len, "%s/%s", shm, t_state.bus_name);
}

/* Remove this test's bus's shared memory, as a reboot would; the logs stay. */
static inline void t_remove_bus_shm(void)
{
	char dir[512];

	t_bus_shm_dir(dir, sizeof(dir));
	if (access(dir, F_OK) != 0)
		t_fail(__FILE__, __LINE__, "no shared memory at %s", dir);
	t_remove_tree(dir);
	if (access(dir, F_OK) == 0)
		t_fail(__FILE__, __LINE__, "cannot remove %s", dir);
}

/* The pid at the end of "<prefix><pid>" or "<prefix><pid>-<suffix>", or 0. */
static inline pid_t t_name_pid(const char *name, const char *prefix)
{
	size_t len = strlen(prefix);
	char *end;
	long pid;

	if (strncmp(name, prefix, len) != 0)
		return 0;
	pid = strtol(name + len, &end, 10);
	return pid > 0 && (*end == '\0' || *end == '-') ? (pid_t)pid : 0;
}

/* True if no process @pid exists (not merely one we may not signal). */
static inline bool t_pid_dead(pid_t pid)
{
	return kill(pid, 0) != 0 && errno == ESRCH;
}

/*
 * Remove what earlier test runs left behind when they died without
 * cleaning up (a sanitizer abort, a timeout's SIGKILL): buses named
 * "t-<tag>-<pid>" and data directories "agentbus-test-<pid>-*" whose pid
 * no longer exists. Without this, each aborted run would keep its rings
 * (up to 64 MiB each) in /dev/shm until reboot. A bus whose daemon still
 * runs (a pid from another pid namespace, say) is safe: agentbus_bus_destroy()
 * refuses while the daemon holds the bus's lock.
 */
static inline void t_sweep_stale(void)
{
	const char *tmp = getenv("TMPDIR");
	char dir[256], path[512];
	struct dirent *e;
	DIR *d;

	t_shm_user_dir(dir, sizeof(dir));
	if ((d = opendir(dir)) != NULL) {
		while ((e = readdir(d)) != NULL) {
			const char *dash = strrchr(e->d_name, '-');
			pid_t pid = dash && e->d_name[0] == 't' && e->d_name[1] == '-' ?
					    t_name_pid(dash + 1, "") : 0;

			if (pid > 0 && t_pid_dead(pid))
				agentbus_bus_destroy(e->d_name);
		}
		closedir(d);
	}
	snprintf(dir, sizeof(dir), "%s", tmp && *tmp == '/' ? tmp : "/tmp");
	if ((d = opendir(dir)) != NULL) {
		while ((e = readdir(d)) != NULL) {
			pid_t pid = t_name_pid(e->d_name, "agentbus-test-");

			if (pid > 0 && t_pid_dead(pid)) {
				snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
				t_remove_tree(path);
			}
		}
		closedir(d);
	}
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#include <sanitizer/common_interface_defs.h>

/*
 * A sanitizer that finds an error ends the process at once, past every
 * cleanup. Its death callback still runs: kill the children and remove the
 * bus's files directly (the daemon's threads may be anywhere, so no library
 * call), leaving nothing for the next run to trip over.
 */
static void t_on_sanitizer_death(void)
{
	char dir[256], path[512];

	if (getpid() != t_state.owner)
		return;
	for (int i = 0; i < T_MAX_CHILDREN; i++)
		if (t_state.children[i] > 0)
			kill(t_state.children[i], SIGKILL);
	if (t_state.bus_name[0]) {
		t_shm_user_dir(dir, sizeof(dir));
		snprintf(path, sizeof(path), "%s/%s", dir, t_state.bus_name);
		t_remove_tree(path);
	}
	if (t_state.data_dir[0])
		t_remove_tree(t_state.data_dir);
}
#endif

/*
 * What every test does first, with or without an embedded daemon: this
 * process owns the bus "t-<tag>-<pid>" and a private data directory, and
 * leftovers of dead earlier runs (and of one with the same pid) are gone.
 */
static inline void t_begin(const char *tag)
{
	/* line by line, so a crash loses no line of progress in a pipe */
	setvbuf(stdout, NULL, _IOLBF, 0);
	t_state.owner = getpid();
	t_sweep_stale();
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	__sanitizer_set_death_callback(t_on_sanitizer_death);
#endif
	t_make_data_dir();
	t_bus_name_for(t_state.bus_name, sizeof(t_state.bus_name), tag);
	agentbus_bus_destroy(t_state.bus_name);
}

/*
 * The role of a daemon in a child process (for tests that kill it, or that
 * must run no thread themselves): serve until SIGTERM. @arg is the data
 * directory.
 */
static inline int t_role_daemon(const char *arg)
{
	struct agentbus_daemon_config cfg = { .bus = t_state.bus_name, .data_dir = arg };
	agentbus_daemon *daemon;
	sigset_t set;
	int sig, r;

	/* Blocked before the daemon's threads exist, so they inherit it. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	cfg.verbose = getenv("AGENTBUS_TEST_VERBOSE") != NULL;
	r = agentbus_daemon_start(&daemon, &cfg);
	if (r < 0) {
		fprintf(stderr, "daemon child: start: %d (%s): %s\n", r, agentbus_strerror(r),
			agentbus_last_error());
		return T_FAIL;
	}
	sigwait(&set, &sig);
	agentbus_daemon_stop(daemon);
	return T_PASS;
}

/* Open bus @name, waiting (bounded) for a daemon that is starting. */
static inline int t_open_bus(const char *name, agentbus_bus **bus, uint64_t timeout_ms)
{
	struct t_deadline d = t_deadline_ms(timeout_ms);
	int r;

	while ((r = agentbus_open(bus, name)) == AGENTBUS_E_NO_DAEMON && !t_expired(&d))
		t_sleep_us(5000);
	return r;
}

/* Start a daemon child process (role "daemon": t_role_daemon) and connect
 * to it. Returns its pid. */
static inline pid_t t_start_daemon_child(agentbus_bus **bus)
{
	pid_t pid = t_spawn("daemon", t_state.data_dir);
	int r = t_open_bus(t_state.bus_name, bus, 20000);

	if (r != 0)
		t_fail(__FILE__, __LINE__, "no daemon: %d (%s)", r, agentbus_strerror(r));
	return pid;
}

/*
 * Start an embedded daemon on bus "t-<tag>-<pid>" and open it. Leftovers
 * of dead earlier runs, and of an earlier run with the same pid, are
 * destroyed first. Returns the open bus (also in t_state.bus).
 */
static inline agentbus_bus *t_setup(const char *tag)
{
	struct agentbus_daemon_config cfg = { 0 };
	int r;

	t_begin(tag);
	cfg.bus = t_state.bus_name;
	cfg.verbose = getenv("AGENTBUS_TEST_VERBOSE") != NULL;
	r = agentbus_daemon_start(&t_state.daemon, &cfg);
	if (r < 0)
		t_fail(__FILE__, __LINE__, "agentbus_daemon_start(%s): %d (%s)",
		       t_state.bus_name, r, agentbus_strerror(r));
	r = agentbus_open(&t_state.bus, t_state.bus_name);
	if (r < 0)
		t_fail(__FILE__, __LINE__, "agentbus_open(%s): %d (%s)", t_state.bus_name, r,
		       agentbus_strerror(r));
	return t_state.bus;
}

/*
 * Kill remaining children, close the main connection, stop the daemon,
 * destroy the bus and remove the private data directory. The caller closes its streams and subscriptions first
 * on the normal path; on the failure path they leak, which is harmless
 * since the process exits.
 */
static inline void t_cleanup(void)
{
	for (int i = 0; i < T_MAX_CHILDREN; i++)
		if (t_state.children[i] > 0)
			t_kill_child(t_state.children[i]);
	if (t_state.bus) {
		agentbus_close(t_state.bus);
		t_state.bus = NULL;
	}
	if (t_state.daemon) {
		agentbus_daemon_stop(t_state.daemon);
		t_state.daemon = NULL;
	}
	if (t_state.bus_name[0]) {
		agentbus_bus_destroy(t_state.bus_name);
		t_state.bus_name[0] = '\0';
	}
	if (t_state.data_dir[0]) {
		t_remove_tree(t_state.data_dir);
		t_state.data_dir[0] = '\0';
	}
}

/* Clean up and return T_PASS, for the end of main(). */
static inline int t_done(void)
{
	t_cleanup();
	return T_PASS;
}

/* Create stream @name with @ring_size and @max_record (0 = defaults). */
static inline void t_create_stream(agentbus_bus *bus, const char *name, uint64_t ring_size,
				   uint64_t max_record)
{
	struct agentbus_stream_config cfg = { .ring_size = ring_size, .max_record = max_record };
	int r = agentbus_stream_create(bus, name, &cfg);

	if (r < 0)
		t_fail(__FILE__, __LINE__, "agentbus_stream_create(%s): %d (%s)", name, r,
		       agentbus_strerror(r));
}

/* Open stream @name or fail. */
static inline agentbus_stream *t_open_stream(agentbus_bus *bus, const char *name)
{
	agentbus_stream *s = NULL;
	int r = agentbus_stream_open(bus, name, &s);

	if (r < 0)
		t_fail(__FILE__, __LINE__, "agentbus_stream_open(%s): %d (%s)", name, r,
		       agentbus_strerror(r));
	return s;
}

/* Subscribe with @start / @wait and no filter, or fail. */
static inline agentbus_sub *t_subscribe(agentbus_stream *stream, enum agentbus_start start,
					uint64_t start_seq, enum agentbus_wait wait)
{
	struct agentbus_sub_config cfg = { .start = start, .start_seq = start_seq, .wait = wait };
	agentbus_sub *sub = NULL;
	int r = agentbus_subscribe(stream, &cfg, &sub);

	if (r < 0)
		t_fail(__FILE__, __LINE__, "agentbus_subscribe: %d (%s)", r, agentbus_strerror(r));
	return sub;
}

/* ------------------------------------------------------------------------ */
/* Records                                                                   */
/* ------------------------------------------------------------------------ */

/* A message with @subject and @payload only. */
static inline struct agentbus_message t_msg(const char *subject, const void *payload,
					    size_t payload_len)
{
	struct agentbus_message m = {
		.subject = subject,
		.subject_len = strlen(subject),
		.payload = payload,
		.payload_len = payload_len,
	};

	return m;
}

/* True if the record's subject is exactly @subject. */
static inline bool t_subject_is(const struct agentbus_record *rec, const char *subject)
{
	size_t len = strlen(subject);

	return rec->subject_len == len && memcmp(rec->subject, subject, len) == 0;
}

/* xorshift64*: a small, seedable generator, so a failing run can be
 * repeated from its printed seed. */
static inline uint64_t t_rand(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545F4914F6CDD1Dull;
}

/* FNV-1a 64: a checksum that needs no library, for payload integrity. */
static inline uint64_t t_fnv1a(const void *data, size_t len)
{
	const unsigned char *p = data;
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

/* Seconds a stress test runs: $AGENTBUS_STRESS_SECONDS, else @dflt. */
static inline unsigned t_stress_seconds(unsigned dflt)
{
	const char *s = getenv("AGENTBUS_STRESS_SECONDS");
	long v;

	if (!s || !*s)
		return dflt;
	v = strtol(s, NULL, 10);
	return v > 0 ? (unsigned)v : dflt;
}

#endif /* AGENTBUS_TEST_HELPERS_H */
