/*
 * stream_config.c - a stream's settings: defaults and checks (the same code
 * runs in the client, for a precise message, and in the daemon, which trusts
 * no client), and the copy kept beside the log as stream.conf, from which a
 * stream is made again after a reboot empties shared memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus/internal.h"
#include "persist/log.h"

#define CONF_NAME "stream.conf"

int stream_config_normalize(const char *name, struct agentbus_stream_config *c)
{
	int err = check_name("stream", name);

	if (err)
		return err;
	if (!c->ring_size)
		c->ring_size = AGENTBUS_DEFAULT_RING_SIZE;
	if (!c->max_record)
		c->max_record = AGENTBUS_DEFAULT_MAX_RECORD < c->ring_size / 4 ?
					AGENTBUS_DEFAULT_MAX_RECORD : c->ring_size / 4;
	if (c->durability == AGENTBUS_DURABILITY_DEFAULT)
		c->durability = AGENTBUS_DURABILITY_MEMORY;
	if (!c->segment_size)
		c->segment_size = LOG_DEFAULT_SEGMENT_SIZE;
	if (c->ring_size < AGENTBUS_MIN_RING_SIZE || c->ring_size > AGENTBUS_MAX_RING_SIZE ||
	    (c->ring_size & (c->ring_size - 1)) != 0)
		return set_error(AGENTBUS_E_INVALID,
				 "stream '%s': ring size %" PRIu64 " is not a power of two in [64 KiB, 1 GiB]",
				 name, c->ring_size);
	if (c->max_record > c->ring_size / 4)
		return set_error(AGENTBUS_E_INVALID,
				 "stream '%s': max record %" PRIu64 " must be 1..ring size/4 (%" PRIu64 ")",
				 name, c->max_record, c->ring_size / 4);
	if (c->durability > AGENTBUS_DURABILITY_SYNCED || c->fsync > AGENTBUS_FSYNC_NEVER ||
	    c->overflow > AGENTBUS_OVERFLOW_BLOCK)
		return set_error(AGENTBUS_E_INVALID, "stream '%s': unknown durability, fsync or overflow",
				 name);
	if (c->fsync == AGENTBUS_FSYNC_INTERVAL &&
	    (c->fsync_interval_ms < 1 || c->fsync_interval_ms > 60000))
		return set_error(AGENTBUS_E_INVALID, "stream '%s': fsync interval must be 1-60000 ms",
				 name);
	if (c->fsync == AGENTBUS_FSYNC_NEVER && c->durability == AGENTBUS_DURABILITY_SYNCED)
		return set_error(AGENTBUS_E_INVALID,
				 "stream '%s': durability synced needs an fsync other than never", name);
	if (c->segment_size < (1u << 20) || c->segment_size > (1ull << 40))
		return set_error(AGENTBUS_E_INVALID, "stream '%s': segment size must be 1 MiB-1 TiB",
				 name);
	return 0;
}

static const char *durability_names[] = { "default", "memory", "written", "synced" };
static const char *fsync_names[] = { "batch", "interval", "never" };
static const char *overflow_names[] = { "spill", "block" };

int stream_config_save(const char *dir, const struct agentbus_stream_config *c)
{
	char path[PATH_LEN], tmp[PATH_LEN];
	int fd, err = 0, n;
	FILE *f;

	if (path_join(path, sizeof(path), dir, CONF_NAME) ||
	    path_join(tmp, sizeof(tmp), dir, "." CONF_NAME ".tmp"))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || !(f = fdopen(fd, "w")))
		return set_error(-errno, "cannot write %s: %s", tmp, strerror(errno));
	n = fprintf(f,
		    "# agentbus stream settings, written when the stream was created\n"
		    "version 1\nring_size %" PRIu64 "\nmax_record %" PRIu64 "\ndurability %s\n"
		    "fsync %s\nfsync_interval_ms %u\noverflow %s\nsegment_size %" PRIu64 "\n"
		    "max_age_ns %" PRIu64 "\nmax_bytes %" PRIu64 "\nmax_records %" PRIu64 "\n"
		    "retention_force %d\n",
		    c->ring_size, c->max_record, durability_names[c->durability],
		    fsync_names[c->fsync], c->fsync_interval_ms, overflow_names[c->overflow],
		    c->segment_size, c->max_age_ns, c->max_bytes, c->max_records,
		    c->retention_force ? 1 : 0);
	if (n < 0 || fflush(f) != 0 || fsync(fd) != 0)
		err = -errno;
	fclose(f);
	if (!err && rename(tmp, path) != 0)
		err = -errno;
	if (err)
		return set_error(err, "cannot write %s: %s", path, strerror(-err));
	return 0;
}

static int name_index(const char *value, const char **names, int count)
{
	int i;

	for (i = 0; i < count; i++)
		if (strcmp(value, names[i]) == 0)
			return i;
	return -1;
}

/* One "key value" line into @c. Unknown keys are for newer versions: ignored. */
static int parse_line(const char *key, const char *value, struct agentbus_stream_config *c)
{
	char *end;
	uint64_t number = strtoull(value, &end, 10);
	int numeric = *value && *end == '\0';
	int named;

	if (strcmp(key, "durability") == 0 && (named = name_index(value, durability_names, 4)) >= 0)
		c->durability = (enum agentbus_durability)named;
	else if (strcmp(key, "fsync") == 0 && (named = name_index(value, fsync_names, 3)) >= 0)
		c->fsync = (enum agentbus_fsync)named;
	else if (strcmp(key, "overflow") == 0 && (named = name_index(value, overflow_names, 2)) >= 0)
		c->overflow = (enum agentbus_overflow)named;
	else if (!numeric)
		return strcmp(key, "durability") && strcmp(key, "fsync") && strcmp(key, "overflow") ? 0 : -1;
	else if (strcmp(key, "ring_size") == 0)
		c->ring_size = number;
	else if (strcmp(key, "max_record") == 0)
		c->max_record = number;
	else if (strcmp(key, "fsync_interval_ms") == 0)
		c->fsync_interval_ms = (uint32_t)number;
	else if (strcmp(key, "segment_size") == 0)
		c->segment_size = number;
	else if (strcmp(key, "max_age_ns") == 0)
		c->max_age_ns = number;
	else if (strcmp(key, "max_bytes") == 0)
		c->max_bytes = number;
	else if (strcmp(key, "max_records") == 0)
		c->max_records = number;
	else if (strcmp(key, "retention_force") == 0)
		c->retention_force = number != 0;
	return 0;
}

int stream_config_load(const char *dir, const char *name, struct agentbus_stream_config *c)
{
	char path[PATH_LEN], line[256], key[64], value[128];
	int bad = 0;
	FILE *f;

	if (path_join(path, sizeof(path), dir, CONF_NAME))
		return -ENAMETOOLONG;
	f = fopen(path, "re");
	if (!f)
		return set_error(-errno, "cannot read %s: %s", path, strerror(errno));
	memset(c, 0, sizeof(*c));
	while (fgets(line, sizeof(line), f)) {
		if (line[0] == '#' || sscanf(line, "%63s %127s", key, value) != 2)
			continue;
		if (parse_line(key, value, c) != 0)
			bad = 1;
	}
	fclose(f);
	if (bad)
		return set_error(AGENTBUS_E_CORRUPT, "%s has a value agentbus does not know", path);
	return stream_config_normalize(name, c);
}
