/*
 * log_retention.c - deleting the oldest whole segments of a log beyond its
 * limits of age, bytes and records.
 *
 * What each limit measures, cheaply (no segment is scanned):
 *  - bytes: the sizes of the .log files;
 *  - records: sequence numbers, first_seq of each segment; the last
 *    segment's count comes from its last usable index entry, so it may be
 *    short by the records after that entry (a few KiB of log);
 *  - age: a segment's newest record is taken to be as old as the first
 *    frame of the next segment (its first index entry's time). That is an
 *    upper bound (record times are nearly monotone), so a segment is never
 *    deleted before its records are older than max_age.
 * The limits are maxima: segments go, oldest first, while the log is over
 * any of them, and never the last segment, nor one holding keep_from or a
 * later position (a live subscription still needs it).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agentbus.h"
#include "persist/log.h"

/* Time of the first usable index entry of @s (limited to @data_end); 0 if none. */
static uint64_t first_time(const struct log_segment *s, uint64_t data_end)
{
	struct log_index_entry *entries;
	uint64_t t = 0;
	size_t n;

	if (log_index_load(s, data_end, &entries, NULL, &n) == 0 && n)
		t = entries[0].time_ns;
	free(entries);
	return t;
}

/* Sequence number after the last indexed frame of @s (a lower bound of its end). */
static uint64_t indexed_end_seq(const struct log_segment *s)
{
	struct log_index_entry *entries;
	uint64_t seq = s->first_seq;
	size_t n;

	if (log_index_load(s, UINT64_MAX, &entries, NULL, &n) == 0 && n)
		seq = entries[n - 1].seq + 1;
	free(entries);
	return seq;
}

/* Is segment @i (not the last) beyond any limit, given what is left from it on? */
static int over_limits(const struct log_segment *list, size_t n, size_t i,
		       const struct log_retention_limits *limits, uint64_t now_ns,
		       uint64_t bytes_left, uint64_t end_seq)
{
	uint64_t newest;

	if (limits->max_bytes && bytes_left > limits->max_bytes)
		return 1;
	if (limits->max_records && end_seq - list[i].first_seq > limits->max_records)
		return 1;
	if (limits->max_age_ns) {
		newest = first_time(&list[i + 1], i + 2 < n ? list[i + 2].base_position : UINT64_MAX);
		if (newest && newest < now_ns && now_ns - newest > limits->max_age_ns)
			return 1;
	}
	return 0;
}

int log_apply_retention(const char *dir, const struct log_retention_limits *limits,
			uint64_t now_ns)
{
	struct log_segment *list;
	uint64_t bytes_left = 0, end_seq;
	size_t n, i;
	int rc, deleted = 0;

	rc = log_segments_list(dir, &list, &n, NULL, NULL);
	if (rc)
		return rc;
	for (i = 0; i < n; i++)
		bytes_left += list[i].file_size;
	end_seq = n ? indexed_end_seq(&list[n - 1]) : 0;
	for (i = 0; i + 1 < n; i++) {
		/* Segment i holds positions up to the next base. */
		if (list[i + 1].base_position > limits->keep_from)
			break;
		if (!over_limits(list, n, i, limits, now_ns, bytes_left, end_seq))
			break;
		/* The .log first: an .idx alone is ignored, a .log alone is not. */
		if (unlink(list[i].log_path) != 0 && errno != ENOENT) {
			rc = -errno;
			break;
		}
		unlink(list[i].index_path);
		bytes_left -= list[i].file_size;
		deleted++;
	}
	free(list);
	if (deleted && rc == 0)
		rc = log_sync_dir(dir);
	return rc ? rc : deleted;
}
