#include "shm/segment.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int shm_base_dir(char *out, size_t out_len)
{
	const char *env = getenv("AGENTBUS_SHM_DIR");
	int n;

	if (env && *env)
		n = snprintf(out, out_len, "%s", env);
	else
		n = snprintf(out, out_len, "/dev/shm/agentbus-%u", (unsigned)getuid());
	return n < 0 || (size_t)n >= out_len ? -ENAMETOOLONG : 0;
}

int shm_dir_ensure(const char *path)
{
	struct stat st;

	if (mkdir(path, 0700) != 0 && errno != EEXIST)
		return -errno;
	if (lstat(path, &st) != 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	/* Someone else's directory could be read or swapped under us. */
	if (st.st_uid != getuid())
		return -EPERM;
	return 0;
}

static int map_fixed(void *at, size_t len, int fd, off_t offset, int populate)
{
	int flags = MAP_SHARED | MAP_FIXED | (populate ? MAP_POPULATE : 0);
	void *p = mmap(at, len, PROT_READ | PROT_WRITE, flags, fd, offset);

	return p == MAP_FAILED ? -errno : 0;
}

/* Map control + ring, then the ring a second time right after it. */
static int map_double(int fd, size_t control_size, size_t ring_size, int populate,
		      struct shm_mapping *m)
{
	size_t total = control_size + 2 * ring_size;
	unsigned char *base;
	int err;

	base = mmap(NULL, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED)
		return -errno;
	err = map_fixed(base, control_size + ring_size, fd, 0, populate);
	if (!err && ring_size)
		err = map_fixed(base + control_size + ring_size, ring_size, fd,
				(off_t)control_size, populate);
	if (err) {
		munmap(base, total);
		return err;
	}
	m->control = base;
	m->ring = base + control_size;
	m->control_size = control_size;
	m->ring_size = ring_size;
	return 0;
}

static int init_file(int fd, size_t control_size, size_t ring_size,
		     void (*init)(void *control, void *arg), void *arg)
{
	struct shm_mapping m;
	int err;

	err = posix_fallocate(fd, 0, (off_t)(control_size + ring_size));
	if (err)
		return -err;
	err = map_double(fd, control_size, ring_size, 0, &m);
	if (err)
		return err;
	init(m.control, arg);
	munmap(m.control, control_size + 2 * ring_size); /* private: not shared yet */
	return 0;
}

int shm_segment_create(const char *dir, const char *name, size_t control_size,
		       size_t ring_size, void (*init)(void *control, void *arg), void *arg)
{
	char tmp[4096], final[4096];
	struct timespec now;
	int fd, err, n;

	clock_gettime(CLOCK_MONOTONIC, &now);
	n = snprintf(tmp, sizeof(tmp), "%s/.init-%s-%d-%ld", dir, name, (int)getpid(),
		     (long)now.tv_nsec);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return -ENAMETOOLONG;
	n = snprintf(final, sizeof(final), "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= sizeof(final))
		return -ENAMETOOLONG;

	fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	err = init_file(fd, control_size, ring_size, init, arg);
	close(fd);
	/* The rename is what makes the segment exist; it never replaces one. */
	if (!err && renameat2(AT_FDCWD, tmp, AT_FDCWD, final, RENAME_NOREPLACE) != 0)
		err = -errno;
	if (err)
		unlink(tmp);
	return err;
}

/*
 * Every handle on a segment in one process shares one mapping, counted. An
 * application with an embedded daemon would otherwise see the same memory at
 * two addresses (the daemon's and its own), pay the pre-faulting twice, and
 * leave ThreadSanitizer unable to pair an acquire at one address with a
 * release at the other.
 */
struct shared_map {
	dev_t dev;
	ino_t ino;
	struct shm_mapping map;
	int populated;
	unsigned refs;
	struct shared_map *next;
};

static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static struct shared_map *shared_maps;

static struct shared_map *find_shared(dev_t dev, ino_t ino, size_t control_size)
{
	struct shared_map *m;

	for (m = shared_maps; m; m = m->next)
		if (m->dev == dev && m->ino == ino && m->map.control_size == control_size)
			return m;
	return NULL;
}

static int share_map(int fd, const struct stat *st, size_t control_size, size_t ring_size,
		     int populate, struct shm_mapping *mapping)
{
	struct shared_map *m;
	int err = 0;

	pthread_mutex_lock(&shared_lock);
	m = find_shared(st->st_dev, st->st_ino, control_size);
	if (m) {
		if (populate && !m->populated)
			m->populated = madvise(m->map.control, control_size + 2 * ring_size,
					       MADV_POPULATE_WRITE) == 0;
	} else if (!(m = calloc(1, sizeof(*m)))) {
		err = -ENOMEM;
	} else if ((err = map_double(fd, control_size, ring_size, populate, &m->map)) != 0) {
		free(m);
	} else {
		m->dev = st->st_dev;
		m->ino = st->st_ino;
		m->populated = populate;
		m->next = shared_maps;
		shared_maps = m;
	}
	if (!err) {
		m->refs++;
		*mapping = m->map;
	}
	pthread_mutex_unlock(&shared_lock);
	return err;
}

int shm_segment_map(const char *path, size_t control_size, int populate,
		    struct shm_mapping *mapping)
{
	struct stat st;
	size_t ring_size;
	int fd, err;

	fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) != 0) {
		err = -errno;
		close(fd);
		return err;
	}
	ring_size = (size_t)st.st_size - control_size;
	if ((size_t)st.st_size < control_size || (ring_size & (ring_size - 1)) != 0 ||
	    ring_size % (size_t)sysconf(_SC_PAGESIZE) != 0) {
		close(fd);
		return -EINVAL;
	}
	err = share_map(fd, &st, control_size, ring_size, populate, mapping);
	close(fd);
	return err;
}

void shm_segment_unmap(struct shm_mapping *mapping)
{
	struct shared_map **link, *m;

	if (!mapping->control)
		return;
	pthread_mutex_lock(&shared_lock);
	for (link = &shared_maps; (m = *link) != NULL; link = &m->next) {
		if (m->map.control != mapping->control)
			continue;
		if (--m->refs == 0) {
			*link = m->next;
			munmap(m->map.control, m->map.control_size + 2 * m->map.ring_size);
			free(m);
		}
		break;
	}
	pthread_mutex_unlock(&shared_lock);
	mapping->control = NULL;
	mapping->ring = NULL;
}
