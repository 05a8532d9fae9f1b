/*
 * disk.c - the plumbing of the durability benchmarks: a bus whose embedded
 * daemon logs into a private mkdtemp directory on the disk under test, its
 * clean-up, thread pinning, and the raw-disk baselines (sequential
 * bandwidth, 4 KiB append + fdatasync) measured on that same directory in
 * the same run, so the two figures see the same disk at the same moment.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "durability.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench_internal.h"

#define DUR_CHUNK (1u << 20) /* bytes per pwrite() of the bandwidth baseline */
#define DUR_RECORD 4096u     /* bytes per append of the latency baseline */

int dur_fail(const char *what, int err)
{
	if (err <= -10000)
		fprintf(stderr, "agentbus bench: %s: %s%s%s\n", what, agentbus_strerror(err),
			*agentbus_last_error() ? ": " : "", agentbus_last_error());
	else
		fprintf(stderr, "agentbus bench: %s: %s\n", what, strerror(-err));
	return -1;
}

/*
 * Not /tmp: it may be a tmpfs, and the point is the disk. $AGENTBUS_BENCH_DIR
 * lets a run pick another disk.
 */
int dur_make_dir(struct dur_bus *b, const char *what)
{
	const char *base = getenv("AGENTBUS_BENCH_DIR");

	memset(b, 0, sizeof(*b));
	snprintf(b->dir, sizeof(b->dir), "%s/agentbus-bench-%s-XXXXXX",
		 base && *base ? base : "/var/tmp", what);
	if (!mkdtemp(b->dir)) {
		int err = -errno;

		b->dir[0] = '\0';
		return dur_fail("mkdtemp", err);
	}
	bench_bus_name(b->name, sizeof(b->name), what);
	return 0;
}

/* The daemon (its spill writer inherits the calling thread's CPUs), then the stream. */
int dur_start(struct dur_bus *b, const struct agentbus_stream_config *sc)
{
	struct agentbus_daemon_config dc = { .bus = b->name, .data_dir = b->dir };
	int rc;

	rc = agentbus_daemon_start(&b->daemon, &dc);
	if (rc < 0) {
		b->daemon = NULL;
		return dur_fail("agentbus_daemon_start", rc);
	}
	rc = agentbus_open(&b->bus, b->name);
	if (rc < 0) {
		b->bus = NULL;
		return dur_fail("agentbus_open", rc);
	}
	if (sc) {
		rc = agentbus_stream_create(b->bus, DUR_STREAM, sc);
		if (rc < 0)
			return dur_fail("agentbus_stream_create", rc);
	}
	rc = agentbus_stream_open(b->bus, DUR_STREAM, &b->stream);
	if (rc < 0) {
		b->stream = NULL;
		return dur_fail("agentbus_stream_open", rc);
	}
	return 0;
}

void dur_stop_daemon(struct dur_bus *b)
{
	if (b->stream)
		agentbus_stream_close(b->stream);
	if (b->bus)
		agentbus_close(b->bus);
	if (b->daemon)
		agentbus_daemon_stop(b->daemon);
	b->stream = NULL;
	b->bus = NULL;
	b->daemon = NULL;
}

void dur_cleanup(struct dur_bus *b)
{
	dur_stop_daemon(b);
	if (b->name[0])
		agentbus_bus_destroy(b->name);
	if (b->dir[0])
		dur_remove_tree(b->dir);
	b->dir[0] = '\0';
}

static int dur_unlink_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (type == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

void dur_remove_tree(const char *path)
{
	nftw(path, dur_unlink_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* nftw() has no argument for its callback: the sum of the walk in progress. */
static _Thread_local uint64_t dur_walk_bytes;

static int dur_count_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)path;
	(void)ftw;
	if (type == FTW_F && S_ISREG(st->st_mode))
		dur_walk_bytes += (uint64_t)st->st_size;
	return 0;
}

uint64_t dur_tree_bytes(const char *path)
{
	dur_walk_bytes = 0;
	nftw(path, dur_count_one, 16, FTW_PHYS);
	return dur_walk_bytes;
}

static int dur_evict_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	int fd;

	(void)ftw;
	if (type != FTW_F || !S_ISREG(st->st_mode))
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	/* Only clean pages can be dropped: write back first. */
	if (fdatasync(fd) == 0 && posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0)
		dur_walk_bytes += (uint64_t)st->st_size;
	close(fd);
	return 0;
}

uint64_t dur_evict_tree(const char *path)
{
	dur_walk_bytes = 0;
	nftw(path, dur_evict_one, 16, FTW_PHYS);
	return dur_walk_bytes;
}

void dur_shm_dir(const struct dur_bus *b, char *buf, size_t len)
{
	const char *base = getenv("AGENTBUS_SHM_DIR");

	if (base && *base)
		snprintf(buf, len, "%s/%s", base, b->name);
	else
		snprintf(buf, len, "/dev/shm/agentbus-%u/%s", (unsigned)getuid(), b->name);
}

int dur_pin_thread(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return 0;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return -pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

void dur_cpus(int *first, int *last)
{
	int cpus[BENCH_MAX_CPUS];
	int n = bench_allowed_cpus(cpus, BENCH_MAX_CPUS);

	*first = n > 0 ? cpus[0] : -1;
	*last = n > 0 ? cpus[n - 1] : -1;
}

int dur_raw_file(const char *dir, char *path, size_t len)
{
	int fd;

	snprintf(path, len, "%s/baseline.XXXXXX", dir);
	fd = mkstemp(path);
	return fd < 0 ? -errno : fd;
}

/* Write @len bytes at @off, whatever pwrite() splits them into. */
static int dur_pwrite_all(int fd, const char *buf, size_t len, uint64_t off)
{
	while (len > 0) {
		ssize_t n = pwrite(fd, buf, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		buf += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int dur_raw_bandwidth(const char *dir, uint64_t bytes, double *bytes_per_s)
{
	char path[PATH_MAX + 32];
	char *buf = malloc(DUR_CHUNK);
	int fd = dur_raw_file(dir, path, sizeof(path));
	uint64_t t0, t1, off = 0;
	int err = 0;

	if (fd < 0 || !buf) {
		free(buf);
		if (fd >= 0)
			close(fd), unlink(path);
		return fd < 0 ? fd : -ENOMEM;
	}
	memset(buf, 0x5a, DUR_CHUNK);
	t0 = bench_now_ns();
	for (off = 0; off < bytes && !err; off += DUR_CHUNK)
		err = dur_pwrite_all(fd, buf, DUR_CHUNK, off);
	if (!err && fdatasync(fd) < 0)
		err = -errno;
	t1 = bench_now_ns();
	*bytes_per_s = (double)off * 1e9 / (double)(t1 - t0);
	close(fd);
	unlink(path);
	free(buf);
	return err;
}

int64_t dur_raw_append(int fd, uint64_t index)
{
	static const char buf[DUR_RECORD] = { 0x5a };
	uint64_t t0 = bench_now_ns();
	int err = dur_pwrite_all(fd, buf, sizeof(buf), index * sizeof(buf));

	if (!err && fdatasync(fd) < 0)
		err = -errno;
	return err ? err : (int64_t)(bench_now_ns() - t0);
}

int dur_raw_fdatasync(const char *dir, size_t count, uint64_t *samples)
{
	char path[PATH_MAX + 32];
	int fd = dur_raw_file(dir, path, sizeof(path));
	int64_t ns = 0;

	if (fd < 0)
		return fd;
	for (size_t i = 0; i < count && ns >= 0; i++) {
		ns = dur_raw_append(fd, i);
		samples[i] = ns >= 0 ? (uint64_t)ns : 0;
	}
	close(fd);
	unlink(path);
	return ns < 0 ? (int)ns : 0;
}
