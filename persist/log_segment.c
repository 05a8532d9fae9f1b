/* log_segment.c - segment files of a log: names, creation, headers, listing. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "agentbus.h"
#include "persist/log.h"

#define HEADER_CHECKED_BYTES offsetof(struct log_segment_header, checksum)

int log_segment_paths(const char *dir, uint64_t base_position, char *log_path, char *index_path)
{
	int n = snprintf(log_path, LOG_PATH_LEN, "%s/%020" PRIu64 ".log", dir, base_position);
	int m = snprintf(index_path, LOG_PATH_LEN, "%s/%020" PRIu64 ".idx", dir, base_position);

	if (n < 0 || n >= LOG_PATH_LEN || m < 0 || m >= LOG_PATH_LEN)
		return -ENAMETOOLONG;
	return 0;
}

static int write_all(int fd, const void *buf, size_t len, off_t offset)
{
	const char *p = buf;
	ssize_t n;

	while (len) {
		n = pwrite(fd, p, len, offset);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		len -= (size_t)n;
		offset += n;
	}
	return 0;
}

int log_writer_lock(int log_fd)
{
	/* Not waiting: recovery waited for the last writer, and one daemon
	 * serves a bus, so only a stuck writer can hold it. */
	if (flock(log_fd, LOCK_EX | LOCK_NB) != 0)
		return errno == EWOULDBLOCK ? -EBUSY : -errno;
	return 0;
}

int log_wait_for_writer(const char *log_path, unsigned timeout_ms)
{
	int fd = open(log_path, O_RDONLY | O_CLOEXEC), err = 0;
	unsigned waited_ms = 0;

	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		if (errno != EWOULDBLOCK && errno != EINTR) {
			err = -errno;
			break;
		}
		if (waited_ms++ >= timeout_ms) {
			err = -EBUSY;
			break;
		}
		usleep(1000);
	}
	close(fd); /* and with it the lock: the caller only waited */
	return err;
}

int log_sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), err = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) != 0)
		err = -errno;
	close(fd);
	return err;
}

int log_segment_create(const char *dir, const char *stream, uint64_t base_position,
		       uint64_t first_seq, uint64_t max_record, int *log_fd, int *index_fd)
{
	static const char zeros[LOG_HEADER_SIZE];
	char log_path[LOG_PATH_LEN], index_path[LOG_PATH_LEN];
	struct log_segment_header h = { 0 };
	struct timespec now;
	int err, lfd, ifd;

	err = log_segment_paths(dir, base_position, log_path, index_path);
	if (err)
		return err;
	clock_gettime(CLOCK_REALTIME, &now);
	h.magic = LOG_SEGMENT_MAGIC;
	h.version = LOG_FORMAT_VERSION;
	h.header_size = LOG_HEADER_SIZE;
	h.base_position = base_position;
	h.first_seq = first_seq;
	h.created_ns = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
	snprintf(h.stream, sizeof(h.stream), "%s", stream);
	h.max_record = max_record;
	h.checksum = XXH3_64bits(&h, HEADER_CHECKED_BYTES);

	/* O_TRUNC: a segment of this name can only be one a crash left empty,
	 * since the writer starts a segment exactly where the log ends. */
	lfd = open(log_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (lfd < 0)
		return -errno;
	err = log_writer_lock(lfd);
	if (err) {
		close(lfd);
		return err;
	}
	ifd = open(index_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (ifd < 0) {
		err = -errno;
		close(lfd);
		return err;
	}
	err = write_all(lfd, zeros, sizeof(zeros), 0);
	if (!err)
		err = write_all(lfd, &h, sizeof(h), 0);
	/* Durable before any record in it may be reported synced: the disk has
	 * a write-back cache and ext4 here has no journal. */
	if (!err && fdatasync(lfd) != 0)
		err = -errno;
	if (!err && fdatasync(ifd) != 0)
		err = -errno;
	if (!err)
		err = log_sync_dir(dir);
	if (err) {
		close(lfd);
		close(ifd);
		return err;
	}
	*log_fd = lfd;
	*index_fd = ifd;
	return 0;
}

int log_segment_header_read(int fd, struct log_segment_header *h)
{
	ssize_t n = pread(fd, h, sizeof(*h), 0);

	if (n < 0)
		return -errno;
	if (n != (ssize_t)sizeof(*h) || h->magic != LOG_SEGMENT_MAGIC)
		return AGENTBUS_E_CORRUPT;
	if (h->version != LOG_FORMAT_VERSION)
		return AGENTBUS_E_VERSION;
	if (h->header_size != LOG_HEADER_SIZE || h->base_position % FRAME_ALIGN ||
	    h->first_seq == 0 || h->checksum != XXH3_64bits(h, HEADER_CHECKED_BYTES))
		return AGENTBUS_E_CORRUPT;
	h->stream[sizeof(h->stream) - 1] = '\0';
	return 0;
}

static int is_segment_name(const char *name, uint64_t *base)
{
	char *end;

	if (strlen(name) != 24 || strcmp(name + 20, ".log") != 0)
		return 0;
	errno = 0;
	*base = strtoull(name, &end, 10);
	return errno == 0 && end == name + 20;
}

static int compare_segments(const void *a, const void *b)
{
	uint64_t x = ((const struct log_segment *)a)->base_position;
	uint64_t y = ((const struct log_segment *)b)->base_position;

	return x < y ? -1 : x > y;
}

/* Fill @s from the segment file named with @base, or report why not. */
static int load_segment(const char *dir, uint64_t base, struct log_segment *s,
			void (*report)(void *, const char *), void *arg)
{
	struct log_segment_header h;
	char message[LOG_PATH_LEN + 128];
	off_t size;
	int fd, err;

	if (log_segment_paths(dir, base, s->log_path, s->index_path) != 0)
		return -ENAMETOOLONG;
	fd = open(s->log_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	err = log_segment_header_read(fd, &h);
	size = lseek(fd, 0, SEEK_END);
	close(fd);
	if (!err && (h.base_position != base || size < (off_t)LOG_HEADER_SIZE))
		err = AGENTBUS_E_CORRUPT;
	if (err) {
		if (report) {
			snprintf(message, sizeof(message), "%s: not a valid segment (%s), skipped",
				 s->log_path, agentbus_strerror(err));
			report(arg, message);
		}
		return err;
	}
	s->base_position = base;
	s->first_seq = h.first_seq;
	s->max_record = h.max_record;
	s->file_size = (uint64_t)size;
	return 0;
}

int log_segments_list(const char *dir, struct log_segment **segments, size_t *count,
		      void (*report)(void *arg, const char *message), void *arg)
{
	struct log_segment *list = NULL, *grown;
	size_t n = 0, cap = 0;
	struct dirent *e;
	uint64_t base;
	DIR *d = opendir(dir);

	if (!d)
		return -errno;
	while ((e = readdir(d)) != NULL) {
		if (!is_segment_name(e->d_name, &base))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 16;
			grown = realloc(list, cap * sizeof(*list));
			if (!grown) {
				free(list);
				closedir(d);
				return -ENOMEM;
			}
			list = grown;
		}
		if (load_segment(dir, base, &list[n], report, arg) == 0)
			n++;
	}
	closedir(d);
	if (n)
		qsort(list, n, sizeof(*list), compare_segments);
	*segments = list;
	*count = n;
	return 0;
}

void log_index_entry_seal(struct log_index_entry *entry)
{
	entry->checksum = XXH3_64bits(entry, offsetof(struct log_index_entry, checksum));
}

int log_index_entry_ok(const struct log_index_entry *entry)
{
	return entry->checksum == XXH3_64bits(entry, offsetof(struct log_index_entry, checksum));
}
