/*
 * test_streams.c - stream life cycle: create, open, list, info, delete.
 *
 * Covers the defaults (64 MiB ring, 1 MiB max record), every way a name or
 * a size can be refused, the codes for duplicates and missing streams,
 * what a handle sees after its stream is deleted, and the permissions of
 * what lands in shared memory (directories 0700, files 0600).
 */
#include <dirent.h>
#include <limits.h>
#include <sys/stat.h>

#include "helpers.h"

/* Info of @name, or fail. */
static struct agentbus_stream_info info_of(agentbus_bus *bus, const char *name)
{
	struct agentbus_stream_info info;

	memset(&info, 0xa5, sizeof(info));
	T_OK(agentbus_stream_info_get(bus, name, &info));
	return info;
}

/* A stream created with no config gets the documented defaults. */
static void test_defaults(agentbus_bus *bus)
{
	struct agentbus_stream_config zero = { 0 };
	struct agentbus_stream_info info;

	T_OK(agentbus_stream_create(bus, "dflt-null", NULL));
	info = info_of(bus, "dflt-null");
	T_ASSERT(strcmp(info.name, "dflt-null") == 0);
	T_EQ(info.ring_size, AGENTBUS_DEFAULT_RING_SIZE);
	T_EQ(info.max_record, AGENTBUS_DEFAULT_MAX_RECORD);
	T_EQ(info.next_seq, 1);
	T_EQ(info.first_seq, info.next_seq);
	T_EQ(info.gaps, 0);
	T_EQ(info.subscriptions, 0);
	T_EQ(info.sleepers, 0);

	/* zeros in a config mean the same defaults */
	T_OK(agentbus_stream_create(bus, "dflt-zero", &zero));
	info = info_of(bus, "dflt-zero");
	T_EQ(info.ring_size, AGENTBUS_DEFAULT_RING_SIZE);
	T_EQ(info.max_record, AGENTBUS_DEFAULT_MAX_RECORD);

	T_OK(agentbus_stream_delete(bus, "dflt-null"));
	T_OK(agentbus_stream_delete(bus, "dflt-zero"));
}

/* Explicit sizes at both ends of the allowed range are kept exactly. */
static void test_explicit_sizes(agentbus_bus *bus)
{
	struct agentbus_stream_info info;

	t_create_stream(bus, "small", AGENTBUS_MIN_RING_SIZE, AGENTBUS_MIN_RING_SIZE / 4);
	info = info_of(bus, "small");
	T_EQ(info.ring_size, AGENTBUS_MIN_RING_SIZE);
	T_EQ(info.max_record, AGENTBUS_MIN_RING_SIZE / 4);

	t_create_stream(bus, "mid", 1u << 20, 1000);
	info = info_of(bus, "mid");
	T_EQ(info.ring_size, 1u << 20);
	T_EQ(info.max_record, 1000);

	T_OK(agentbus_stream_delete(bus, "small"));
	T_OK(agentbus_stream_delete(bus, "mid"));
}

/* Bad names and sizes are AGENTBUS_E_INVALID and create nothing. */
static void test_invalid(agentbus_bus *bus)
{
	static const char *bad_names[] = {
		"", ".hidden", "a/b", "has space", "tab\there", "star*", "semi;colon",
		"0123456789012345678901234567890123456789012345678901234567890123", /* 64 */
	};
	static const struct agentbus_stream_config bad_sizes[] = {
		{ .ring_size = 100000 },                           /* not a power of two */
		{ .ring_size = (64u << 10) + 4096 },               /* not a power of two */
		{ .ring_size = AGENTBUS_MIN_RING_SIZE / 2, .max_record = 1024 }, /* too small */
		{ .ring_size = 4096, .max_record = 512 },          /* far too small */
		{ .ring_size = (uint64_t)AGENTBUS_MAX_RING_SIZE * 2 }, /* too large */
		{ .ring_size = 1u << 20, .max_record = (1u << 18) + 1 }, /* > ring / 4 */
		{ .ring_size = 64u << 10, .max_record = 32u << 10 },     /* > ring / 4 */
	};
	struct agentbus_stream_info *infos = NULL;
	size_t count = 99;

	for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++)
		T_ERR(agentbus_stream_create(bus, bad_names[i], NULL), AGENTBUS_E_INVALID);
	T_ERR(agentbus_stream_create(bus, NULL, NULL), AGENTBUS_E_INVALID);
	for (size_t i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++) {
		int r = agentbus_stream_create(bus, "badsize", &bad_sizes[i]);

		T_ASSERTF(r == AGENTBUS_E_INVALID,
			  "ring_size %" PRIu64 " max_record %" PRIu64 ": got %d (%s), want INVALID",
			  bad_sizes[i].ring_size, bad_sizes[i].max_record, r, agentbus_strerror(r));
	}
	/* the longest valid name works */
	T_OK(agentbus_stream_create(bus,
				    "012345678901234567890123456789012345678901234567890123456789012",
				    &(struct agentbus_stream_config){ .ring_size = 64u << 10,
								      .max_record = 1024 }));
	T_OK(agentbus_stream_delete(bus,
				    "012345678901234567890123456789012345678901234567890123456789012"));

	/* none of the refused creates left a stream behind */
	T_OK(agentbus_stream_list(bus, &infos, &count));
	T_EQ(count, 0);
	free(infos);
}

/* A second create of one name is AGENTBUS_E_EXISTS and keeps the first. */
static void test_duplicate(agentbus_bus *bus)
{
	struct agentbus_stream_info info;

	t_create_stream(bus, "dup", 64u << 10, 1024);
	T_ERR(agentbus_stream_create(bus, "dup", NULL), AGENTBUS_E_EXISTS);
	info = info_of(bus, "dup");
	T_EQ(info.ring_size, 64u << 10);
	T_EQ(info.max_record, 1024);
	T_OK(agentbus_stream_delete(bus, "dup"));
}

/* Missing streams: info, open and delete say AGENTBUS_E_NOT_FOUND. */
static void test_missing(agentbus_bus *bus)
{
	struct agentbus_stream_info info;
	agentbus_stream *s = NULL;

	T_ERR(agentbus_stream_info_get(bus, "nope", &info), AGENTBUS_E_NOT_FOUND);
	T_ERR(agentbus_stream_open(bus, "nope", &s), AGENTBUS_E_NOT_FOUND);
	T_ERR(agentbus_stream_delete(bus, "nope"), AGENTBUS_E_NOT_FOUND);
}

/* list returns every stream, sorted by name, with the same data as info. */
static void test_list(agentbus_bus *bus)
{
	static const char *names[] = { "gamma", "alpha", "beta", "Zulu", "a-1", "a.2" };
	static const char *sorted[] = { "Zulu", "a-1", "a.2", "alpha", "beta", "gamma" };
	struct agentbus_stream_info *infos = NULL;
	size_t count = 0;

	for (size_t i = 0; i < 6; i++)
		t_create_stream(bus, names[i], 64u << 10, 1024);
	T_OK(agentbus_stream_list(bus, &infos, &count));
	T_EQ(count, 6);
	for (size_t i = 0; i < 6; i++) {
		T_ASSERTF(strcmp(infos[i].name, sorted[i]) == 0, "list[%zu] is '%s', want '%s'", i,
			  infos[i].name, sorted[i]);
		T_EQ(infos[i].ring_size, 64u << 10);
		T_EQ(infos[i].max_record, 1024);
	}
	free(infos);
	for (size_t i = 0; i < 6; i++)
		T_OK(agentbus_stream_delete(bus, names[i]));
	infos = NULL;
	T_OK(agentbus_stream_list(bus, &infos, &count));
	T_EQ(count, 0);
	free(infos);
}

/* info and stat follow what is published and who subscribes. */
static void test_info_counts(agentbus_bus *bus)
{
	struct agentbus_stream_info info, stat;
	struct agentbus_message m = t_msg("a.b", "xyz", 3);
	agentbus_stream *s;
	agentbus_sub *sub;

	t_create_stream(bus, "counts", 64u << 10, 1024);
	s = t_open_stream(bus, "counts");
	for (int i = 0; i < 3; i++)
		T_EQ(agentbus_publish(s, &m, T_WAIT_MS), i + 1);
	sub = t_subscribe(s, AGENTBUS_START_OLDEST, 0, AGENTBUS_WAIT_SPIN);
	info = info_of(bus, "counts");
	T_EQ(info.first_seq, 1);
	T_EQ(info.next_seq, 4);
	T_ASSERT(info.ring_used > 0 && info.ring_used <= info.ring_size);
	T_EQ(info.subscriptions, 1);
	T_EQ(info.gaps, 0);

	T_OK(agentbus_stream_stat(s, &stat));
	T_ASSERT(strcmp(stat.name, "counts") == 0);
	T_EQ(stat.ring_size, info.ring_size);
	T_EQ(stat.max_record, info.max_record);
	T_EQ(stat.first_seq, info.first_seq);
	T_EQ(stat.next_seq, info.next_seq);
	T_EQ(stat.subscriptions, 1);

	agentbus_sub_close(sub);
	info = info_of(bus, "counts");
	T_EQ(info.subscriptions, 0);
	agentbus_stream_close(s);
	T_OK(agentbus_stream_delete(bus, "counts"));
}

/*
 * Delete while open: a publish on the held handle is AGENTBUS_E_DELETED; a
 * subscription first drains what was left, then gets AGENTBUS_E_DELETED. A
 * new stream of the same name is a different stream to the old handle.
 */
static void test_delete_while_open(agentbus_bus *bus)
{
	struct agentbus_message m = t_msg("x.y", "data", 4);
	struct agentbus_record rec;
	struct t_deadline d;
	agentbus_stream *s, *s2;
	agentbus_sub *sub;
	int r;

	t_create_stream(bus, "doomed", 64u << 10, 1024);
	s = t_open_stream(bus, "doomed");
	T_EQ(agentbus_publish(s, &m, T_WAIT_MS), 1);
	T_EQ(agentbus_publish(s, &m, T_WAIT_MS), 2);
	sub = t_subscribe(s, AGENTBUS_START_OLDEST, 0, AGENTBUS_WAIT_SPIN);
	T_OK(agentbus_stream_delete(bus, "doomed"));

	T_ERR(agentbus_publish(s, &m, T_WAIT_MS), AGENTBUS_E_DELETED);
	T_ERR(agentbus_publish(s, &m, 100), AGENTBUS_E_DELETED);

	T_EQ(agentbus_sub_poll(sub, &rec), 1);
	T_EQ(rec.seq, 1);
	T_EQ(agentbus_sub_poll(sub, &rec), 1);
	T_EQ(rec.seq, 2);
	/* a blocking read must notice the delete rather than wait it out */
	d = t_deadline_ms(2000);
	r = agentbus_sub_read(sub, &rec, 1000);
	T_ERR(r, AGENTBUS_E_DELETED);
	T_ASSERT(!t_expired(&d));
	T_ERR(agentbus_sub_poll(sub, &rec), AGENTBUS_E_DELETED);

	T_ERR(agentbus_stream_info_get(bus, "doomed", &(struct agentbus_stream_info){ 0 }),
	      AGENTBUS_E_NOT_FOUND);

	/* the name is free again; the old handle stays deleted */
	t_create_stream(bus, "doomed", 64u << 10, 1024);
	s2 = t_open_stream(bus, "doomed");
	T_EQ(agentbus_publish(s2, &m, T_WAIT_MS), 1);
	T_ERR(agentbus_publish(s, &m, T_WAIT_MS), AGENTBUS_E_DELETED);

	agentbus_sub_close(sub);
	agentbus_stream_close(s);
	agentbus_stream_close(s2);
	T_OK(agentbus_stream_delete(bus, "doomed"));
}

/* Fail unless @path is a directory of mode @mode owned by us. */
static void expect_mode(const char *path, mode_t type, mode_t mode)
{
	struct stat st;

	T_ASSERTF(lstat(path, &st) == 0, "stat %s: %s", path, strerror(errno));
	T_ASSERTF((st.st_mode & S_IFMT) == type, "%s has type %o, want %o", path,
		  st.st_mode & S_IFMT, type);
	T_ASSERTF((st.st_mode & 07777) == mode, "%s has mode %04o, want %04o", path,
		  st.st_mode & 07777, mode);
	T_ASSERTF(st.st_uid == geteuid(), "%s is owned by uid %d", path, (int)st.st_uid);
}

/*
 * Check every entry under @dir recursively: directories 0700, regular files
 * 0600; sockets may be anything the daemon likes but must not be reachable
 * by others, which the 0700 directory already ensures. Returns the number
 * of regular files seen.
 */
static int check_tree(const char *dir)
{
	struct dirent *e;
	DIR *d = opendir(dir);
	int files = 0;

	T_ASSERTF(d != NULL, "opendir %s: %s", dir, strerror(errno));
	while ((e = readdir(d)) != NULL) {
		char path[PATH_MAX];
		struct stat st;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		T_ASSERTF(lstat(path, &st) == 0, "stat %s: %s", path, strerror(errno));
		if (S_ISDIR(st.st_mode)) {
			expect_mode(path, S_IFDIR, 0700);
			files += check_tree(path);
		} else if (S_ISREG(st.st_mode)) {
			expect_mode(path, S_IFREG, 0600);
			files++;
		}
	}
	closedir(d);
	return files;
}

/*
 * The shared memory of the bus: $AGENTBUS_SHM_DIR/<bus> if that variable
 * is set, else /dev/shm/agentbus-<uid>/<bus>. Writes both the per-user
 * directory and the bus directory.
 */
static void shm_dirs(char *user_dir, char *bus_dir, size_t len)
{
	const char *env = getenv("AGENTBUS_SHM_DIR");
	int n;

	if (env && *env)
		n = snprintf(user_dir, len, "%s", env);
	else
		n = snprintf(user_dir, len, "/dev/shm/agentbus-%d", (int)geteuid());
	T_ASSERT(n > 0 && (size_t)n < len);
	n = snprintf(bus_dir, PATH_MAX, "%s/%s", user_dir, t_state.bus_name);
	T_ASSERT(n > 0 && n < PATH_MAX);
}

/* What a stream leaves in shared memory is private to its user. */
static void test_permissions(agentbus_bus *bus)
{
	char user_dir[PATH_MAX / 2], bus_dir[PATH_MAX];
	int before, after;

	shm_dirs(user_dir, bus_dir, sizeof(user_dir));
	if (getenv("AGENTBUS_SHM_DIR") == NULL)
		expect_mode(user_dir, S_IFDIR, 0700);
	expect_mode(bus_dir, S_IFDIR, 0700);
	before = check_tree(bus_dir);
	t_create_stream(bus, "perm", 64u << 10, 1024);
	after = check_tree(bus_dir);
	T_ASSERTF(after > before, "creating a stream added no file under %s", bus_dir);
	T_OK(agentbus_stream_delete(bus, "perm"));
	T_EQ(check_tree(bus_dir), before);
}

/* Opening a bus nobody serves, or a bad bus name, fails cleanly. */
static void test_bus_open_errors(void)
{
	char name[AGENTBUS_NAME_MAX + 1];
	agentbus_bus *b = NULL;

	t_bus_name_for(name, sizeof(name), "nodaemon");
	agentbus_bus_destroy(name);
	T_ERR(agentbus_open(&b, name), AGENTBUS_E_NO_DAEMON);
	T_ERR(agentbus_open(&b, "bad/name"), AGENTBUS_E_INVALID);
	T_ERR(agentbus_open(&b, ".dot"), AGENTBUS_E_INVALID);
}

/*
 * Two buses side by side are independent: same stream names, separate
 * records; a second daemon on a served bus is AGENTBUS_E_BUSY.
 */
static void test_two_buses(agentbus_bus *bus)
{
	struct agentbus_daemon_config cfg = { 0 };
	struct agentbus_message m = t_msg("side.by.side", "1", 1);
	struct agentbus_stream_info info;
	agentbus_daemon *other_daemon = NULL, *dup = NULL;
	agentbus_bus *other = NULL;
	agentbus_stream *a, *b;
	char name[AGENTBUS_NAME_MAX + 1];

	t_bus_name_for(name, sizeof(name), "streams2");
	agentbus_bus_destroy(name);
	cfg.bus = name;
	T_OK(agentbus_daemon_start(&other_daemon, &cfg));
	T_OK(agentbus_open(&other, name));
	T_ASSERT(strcmp(agentbus_name(other), name) == 0);

	cfg.bus = t_state.bus_name;
	T_ERR(agentbus_daemon_start(&dup, &cfg), AGENTBUS_E_BUSY);

	t_create_stream(bus, "same", 64u << 10, 1024);
	t_create_stream(other, "same", 128u << 10, 2048);
	a = t_open_stream(bus, "same");
	b = t_open_stream(other, "same");
	T_EQ(agentbus_publish(a, &m, T_WAIT_MS), 1);
	T_EQ(agentbus_publish(a, &m, T_WAIT_MS), 2);
	T_EQ(agentbus_publish(b, &m, T_WAIT_MS), 1);
	T_OK(agentbus_stream_info_get(other, "same", &info));
	T_EQ(info.ring_size, 128u << 10);
	T_EQ(info.next_seq, 2);
	T_OK(agentbus_stream_info_get(bus, "same", &info));
	T_EQ(info.ring_size, 64u << 10);
	T_EQ(info.next_seq, 3);

	agentbus_stream_close(a);
	agentbus_stream_close(b);
	T_OK(agentbus_stream_delete(bus, "same"));
	agentbus_close(other);
	agentbus_daemon_stop(other_daemon);
	T_OK(agentbus_bus_destroy(name));
	T_ERR(agentbus_open(&other, name), AGENTBUS_E_NO_DAEMON);
}

/* NULL where a handle or an output belongs is an error code, not a crash. */
static void test_null_arguments(agentbus_bus *bus)
{
	struct agentbus_message m = t_msg("a", NULL, 0);
	struct agentbus_stream_info info;
	struct agentbus_record rec;
	agentbus_stream *s = NULL;
	agentbus_sub *sub = NULL;
	size_t count;

	T_ERR(agentbus_open(NULL, t_state.bus_name), AGENTBUS_E_INVALID);
	T_ERR(agentbus_stream_create(NULL, "x", NULL), AGENTBUS_E_INVALID);
	T_ERR(agentbus_stream_open(bus, "x", NULL), AGENTBUS_E_INVALID);
	T_ERR(agentbus_stream_open(bus, NULL, &s), AGENTBUS_E_INVALID);
	T_ERR(agentbus_stream_info_get(bus, "x", NULL), AGENTBUS_E_INVALID);
	T_ERR(agentbus_stream_list(bus, NULL, &count), AGENTBUS_E_INVALID);
	T_ERR(agentbus_stream_delete(bus, NULL), AGENTBUS_E_INVALID);
	T_ERR(agentbus_publish(NULL, &m, T_WAIT_MS), AGENTBUS_E_INVALID);
	T_ERR(agentbus_stream_stat(NULL, &info), AGENTBUS_E_INVALID);
	T_ERR(agentbus_subscribe(NULL, NULL, &sub), AGENTBUS_E_INVALID);
	T_ERR(agentbus_sub_poll(NULL, &rec), AGENTBUS_E_INVALID);
	T_ERR(agentbus_sub_read(NULL, &rec, 0), AGENTBUS_E_INVALID);

	t_create_stream(bus, "nulls", 64u << 10, 1024);
	s = t_open_stream(bus, "nulls");
	T_ERR(agentbus_subscribe(s, NULL, NULL), AGENTBUS_E_INVALID);
	sub = t_subscribe(s, AGENTBUS_START_NEW, 0, AGENTBUS_WAIT_SPIN);
	T_ERR(agentbus_sub_poll(sub, NULL), AGENTBUS_E_INVALID);
	T_ERR(agentbus_stream_stat(s, NULL), AGENTBUS_E_INVALID);
	agentbus_sub_close(sub);
	agentbus_stream_close(s);
	T_OK(agentbus_stream_delete(bus, "nulls"));
	/* closing nothing is a no-op, as free(NULL) */
	agentbus_sub_close(NULL);
	agentbus_stream_close(NULL);
}

int main(void)
{
	agentbus_bus *bus = t_setup("streams");

	T_ASSERT(strcmp(agentbus_name(bus), t_state.bus_name) == 0);
	T_RUN(test_permissions, bus);
	T_RUN(test_defaults, bus);
	T_RUN(test_explicit_sizes, bus);
	T_RUN(test_invalid, bus);
	T_RUN(test_duplicate, bus);
	T_RUN(test_missing, bus);
	T_RUN(test_list, bus);
	T_RUN(test_info_counts, bus);
	T_RUN(test_delete_while_open, bus);
	T_RUN(test_bus_open_errors);
	T_RUN(test_two_buses, bus);
	T_RUN(test_null_arguments, bus);
	return t_done();
}
