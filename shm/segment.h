/*
 * segment.h - files in shared memory that hold a control area followed by a
 * ring, mapped so that the ring appears twice back to back. A record that
 * wraps past the end of the ring is then contiguous in memory: no padding
 * frames, and zero-copy views never need to be split.
 *
 * Segments live in a per-user directory (mode 0700); files are 0600 and get
 * their final name by an atomic rename only after they are initialised, so
 * nobody can open a half-made segment.
 */
#ifndef AGENTBUS_SHM_SEGMENT_H
#define AGENTBUS_SHM_SEGMENT_H

#include <stddef.h>

struct shm_mapping {
	void *control;       /* start of the control area (page aligned) */
	unsigned char *ring; /* ring_size bytes, then the same bytes again */
	size_t control_size; /* bytes */
	size_t ring_size;    /* bytes, a power of two */
};

/* Write the per-user base directory ($AGENTBUS_SHM_DIR, else
 * /dev/shm/agentbus-<uid>) into @out. Returns 0 or -ENAMETOOLONG. */
int shm_base_dir(char *out, size_t out_len);

/* Create directory @path (mode 0700) unless it exists; an existing one must be
 * a directory owned by this user. Returns 0 or -errno. */
int shm_dir_ensure(const char *path);

/*
 * Create segment @dir/@name with a control area of @control_size bytes (a
 * page multiple) and a ring of @ring_size bytes (0: a control area alone),
 * all allocated up front
 * (-ENOSPC when the file system cannot hold it). @init fills the control area
 * before the segment becomes visible. Returns 0, -EEXIST, or -errno.
 */
int shm_segment_create(const char *dir, const char *name, size_t control_size,
		       size_t ring_size, void (*init)(void *control, void *arg), void *arg);

/*
 * Map segment @path (one mapping per segment per process, shared by every
 * handle and counted) whose control area has @control_size bytes; the ring size
 * is what follows it in the file and must be a power of two. @populate
 * pre-faults every page (11.8 us each on first touch, so the data path never
 * pays it); a quick look at the control area passes 0. Returns 0, or -ENOENT,
 * -EINVAL (a file of the wrong size), -errno.
 */
int shm_segment_map(const char *path, size_t control_size, int populate,
		    struct shm_mapping *mapping);

void shm_segment_unmap(struct shm_mapping *mapping);

#endif
