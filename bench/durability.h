/*
 * durability.h - what the durability benchmarks (spill, synced, replay,
 * restart) share: a bus whose embedded daemon logs into a private data
 * directory on the disk under test, thread pinning, and the raw-disk
 * baselines they are held against. Nothing here is part of the public API.
 */
#ifndef AGENTBUS_BENCH_DURABILITY_H
#define AGENTBUS_BENCH_DURABILITY_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "agentbus.h"

#define DUR_STREAM "durable"
#define DUR_SUBJECT "bench.durable"

/* A bus of one benchmark run, with its daemon and one open stream. */
struct dur_bus {
	char dir[PATH_MAX];              /* private data directory (mkdtemp) */
	char name[AGENTBUS_NAME_MAX + 1]; /* "bench-<what>-<pid>-<n>" */
	agentbus_daemon *daemon;
	agentbus_bus *bus;
	agentbus_stream *stream;
};

/* Make the data directory: mkdtemp under $AGENTBUS_BENCH_DIR, else /var/tmp. */
int dur_make_dir(struct dur_bus *b, const char *what);

/* Start the daemon on @b->dir, create and open stream DUR_STREAM with @sc. */
int dur_start(struct dur_bus *b, const struct agentbus_stream_config *sc);

/* Close handles and stop the daemon; the bus and its files stay. */
void dur_stop_daemon(struct dur_bus *b);

/* Stop everything, destroy the bus and remove the data directory. */
void dur_cleanup(struct dur_bus *b);

/* Remove a directory tree (no symlinks followed). */
void dur_remove_tree(const char *path);

/* Bytes in the regular files under @path (st_size; the log's segments and indexes). */
uint64_t dur_tree_bytes(const char *path);

/* Drop the files under @path from the page cache (fdatasync, then
 * POSIX_FADV_DONTNEED), so that the next reads come from the disk (or from
 * the host's cache, which a guest cannot drop). Returns the bytes evicted. */
uint64_t dur_evict_tree(const char *path);

/* The bus's shared-memory directory (as AGENTBUS_SHM_DIR or /dev/shm/agentbus-<uid>). */
void dur_shm_dir(const struct dur_bus *b, char *buf, size_t len);

/* Pin the calling thread to @cpu (< 0: leave it). 0 or -errno. */
int dur_pin_thread(int cpu);

/* The first and last CPU we may use (equal on a 1-CPU machine). */
void dur_cpus(int *first, int *last);

/*
 * Raw sequential write bandwidth of the disk holding @dir: @bytes written
 * with 1 MiB pwrite()s to a new file, then one fdatasync(), timed end to
 * end. Sets *bytes_per_s; 0 or -errno. The file is removed.
 */
int dur_raw_bandwidth(const char *dir, uint64_t bytes, double *bytes_per_s);

/* A new file for a baseline in @dir, its name in @path; fd or -errno. */
int dur_raw_file(const char *dir, char *path, size_t len);

/* Append 4 KiB block number @index to @fd and fdatasync(); ns taken or -errno. */
int64_t dur_raw_append(int fd, uint64_t index);

/*
 * Raw synced append latency: @count times a 4 KiB pwrite() at the end of a
 * new file followed by fdatasync(), each timed into samples[]. 0 or -errno.
 */
int dur_raw_fdatasync(const char *dir, size_t count, uint64_t *samples);

/* Print "agentbus bench: <what>: <error>" for an agentbus or errno code; -1. */
int dur_fail(const char *what, int err);

/* ---- the benchmarks ---- */
int bench_spill_main(int argc, char **argv);
int bench_synced_main(int argc, char **argv);
int bench_replay_main(int argc, char **argv);
int bench_replay_rate_main(int argc, char **argv);
int bench_restart_main(int argc, char **argv);

#endif /* AGENTBUS_BENCH_DURABILITY_H */
