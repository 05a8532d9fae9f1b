/*
 * agentbus.h - the one public API of agentbus, a single-host message bus for
 * agent processes: named streams in POSIX shared memory, written by many
 * processes at once without locks, read by any number of subscriptions.
 *
 * Conventions (as in liburing):
 *   - Functions return 0 (or a count, or a sequence number) on success and a
 *     negative code on failure: either -errno (a failed system call) or one of
 *     the AGENTBUS_E_* codes below. errno is never the way an error is reported.
 *   - agentbus_strerror() names any code; agentbus_last_error() gives the
 *     message of the last failure in the calling thread, with detail
 *     ("stream 'calls': record of 2000000 bytes exceeds max_record 1048576").
 *   - Bad input of any kind is an error code, never a crash or an abort.
 *
 * Processes and threads:
 *   - A bus is served by one daemon (`agentbus daemon`, or embedded in an
 *     application with agentbus_daemon_start()). The daemon owns the shared
 *     memory, notices dead clients through their closed socket and undoes what
 *     they left half done. It is off the data path.
 *   - An agentbus_bus handle may be shared by threads. A stream handle may be
 *     used by several threads to publish at once. A subscription belongs to one
 *     thread at a time.
 *   - Every handle belongs to the process that opened it: a child of fork()
 *     opens the bus again, and may only close what it inherited (see
 *     agentbus_open).
 *
 * Multi-process hygiene (what happens when a process dies):
 *   - A producer killed between claiming space and committing it leaves a hole.
 *     The daemon turns it into a gap as soon as it sees the producer's socket
 *     close: readers skip it and count it (agentbus_stream_info.gaps). A gap
 *     is never delivered as a record. A producer that outlived an earlier
 *     daemon and has not reconnected since (see agentbus_open) has no socket
 *     to the daemon: its death is seen from its lock file, within 50 ms.
 *   - A subscriber killed while reading releases its place in the stream, so
 *     it never holds producers back.
 *   - Shared memory lives in /dev/shm/agentbus-<uid>/<bus>/ (override with
 *     AGENTBUS_SHM_DIR), directories 0700, files 0600. A stream file appears
 *     under its name only once fully initialised.
 */
#ifndef AGENTBUS_H
#define AGENTBUS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */
/* ------------------------------------------------------------------------ */

enum agentbus_error {
	AGENTBUS_OK = 0,
	AGENTBUS_E_INVALID = -10001,      /* a bad argument; the message says which */
	AGENTBUS_E_BACKPRESSURE = -10002, /* the ring holds only records that may not be overwritten yet */
	AGENTBUS_E_TIMEOUT = -10003,      /* nothing happened before the timeout */
	AGENTBUS_E_NOT_FOUND = -10004,    /* no stream of that name */
	AGENTBUS_E_EXISTS = -10005,       /* a stream of that name already exists */
	AGENTBUS_E_TOO_LARGE = -10006,    /* record larger than the stream's max_record */
	AGENTBUS_E_CORRUPT = -10007,      /* shared memory holds something that is not a valid record */
	AGENTBUS_E_NO_DAEMON = -10008,    /* no daemon serves this bus */
	AGENTBUS_E_DELETED = -10009,      /* the stream was deleted while open */
	AGENTBUS_E_SEQ_GONE = -10010,     /* that sequence number is no longer in the ring */
	AGENTBUS_E_REVOKED = -10011,      /* a claim was turned into a gap before its commit */
	AGENTBUS_E_LIMIT = -10012,        /* a fixed table is full (streams, subscriptions) */
	AGENTBUS_E_VERSION = -10013,      /* a segment or peer of another format version */
	AGENTBUS_E_PROTOCOL = -10014,     /* the daemon or a client sent a malformed message */
	AGENTBUS_E_BUSY = -10015,         /* another daemon already serves this bus */
};

/* Short, static name of an error code (either -errno or AGENTBUS_E_*). */
const char *agentbus_strerror(int err);

/* The detailed message of the last failed call in this thread ("" if none). */
const char *agentbus_last_error(void);

/* ------------------------------------------------------------------------ */
/* Bus                                                                       */
/* ------------------------------------------------------------------------ */

typedef struct agentbus_bus agentbus_bus;
typedef struct agentbus_stream agentbus_stream;
typedef struct agentbus_sub agentbus_sub;
typedef struct agentbus_daemon agentbus_daemon;

#define AGENTBUS_NAME_MAX 63 /* longest bus or stream name, in bytes */

/*
 * Connect to the daemon of bus @name (NULL: $AGENTBUS_BUS, else "default").
 * Names are 1-63 characters of [A-Za-z0-9_.-], not starting with '.'.
 * Returns 0 and sets *bus, or AGENTBUS_E_NO_DAEMON when no daemon serves it.
 *
 * The handle outlives its daemon. The data path (shared memory) does not
 * need one; control requests (agentbus_stream_create, agentbus_stream_delete)
 * do. When the daemon dies and another starts for the bus, the next request
 * connects to the new daemon by itself, under the same client id, so that
 * the new daemon knows the handle's subscriptions and claims for a live
 * client's (it takes the id back while the handle holds the id's lock file
 * and no other connection has it), and from then on learns of the handle's
 * death from its socket, as of any client's. Only to the same bus: after
 * agentbus_bus_destroy(), a daemon makes the bus anew, with client ids from
 * 1 again; the old handle's requests then fail with AGENTBUS_E_NO_DAEMON
 * ("bus 'x' was destroyed and created anew since this handle opened it"),
 * and so do its waits for WRITTEN or SYNCED: close it, open the bus again.
 * In detail, a request that finds its daemon gone:
 *   - before sending: reconnects and is sent to the new daemon, once;
 *     AGENTBUS_E_NO_DAEMON if none listens (each later request tries again);
 *   - after sending, with no answer: fails with AGENTBUS_E_NO_DAEMON and a
 *     message saying that the request may or may not have been carried out
 *     (it is not repeated behind the caller's back); the next request
 *     reconnects.
 * A wait for WRITTEN or SYNCED (a durable publish, agentbus_wait_durable)
 * that finds its daemon gone reconnects too, and goes on waiting for the new
 * daemon to spill the record from the ring; with no daemon listening it fails
 * with AGENTBUS_E_NO_DAEMON.
 * A daemon that is alive but did not answer within 30 s is not left (it
 * would take the closed connection for this client's death): every later
 * request fails with AGENTBUS_E_NO_DAEMON until the bus is closed and opened
 * again.
 *
 * fork(): the handle, and the stream handles and subscriptions opened through
 * it, belong to the process that opened the bus; they stand for its client
 * id, connection, subscription slots and producer slots. A child of fork()
 * opens the bus again for itself. Its copies of the handle's descriptors
 * (the connection, the alive lock) are closed in the child at the fork, so
 * that a parent that dies is seen dead while the child lives on. What it
 * inherited it may only close: agentbus_close, agentbus_stream_close and
 * agentbus_sub_close then free the child's memory and touch nothing shared,
 * so the parent keeps its connection, subscriptions and claims. Control requests and
 * agentbus_stream_open / agentbus_subscribe on an inherited handle fail with
 * AGENTBUS_E_INVALID ("bus handle opened by pid X used in pid Y: open the bus
 * again after fork()"), and so do publishes and claims: they would go out
 * under the parent's client id, and a child that died half way through one
 * would leave a frame that the daemon takes for the live parent's. Reading
 * through an inherited subscription is not allowed and not checked (it would
 * cost a system call per read): it moves the parent's subscription.
 */
int agentbus_open(agentbus_bus **bus, const char *name);

/*
 * Disconnect. Streams and subscriptions opened through @bus must be closed
 * first. In a child of fork() that inherited @bus, only the child's copy is
 * freed (see agentbus_open).
 */
void agentbus_close(agentbus_bus *bus);

/* The name of the bus, as resolved by agentbus_open(). */
const char *agentbus_name(const agentbus_bus *bus);

/* ------------------------------------------------------------------------ */
/* Streams                                                                   */
/* ------------------------------------------------------------------------ */

#define AGENTBUS_DEFAULT_RING_SIZE (64u << 20)  /* bytes */
#define AGENTBUS_DEFAULT_MAX_RECORD (1u << 20)  /* bytes of subject+key+headers+payload */
#define AGENTBUS_MIN_RING_SIZE (64u << 10)
#define AGENTBUS_MAX_RING_SIZE (1u << 30)
#define AGENTBUS_SUBJECT_MAX 255

/*
 * Durability of a publish: what must have happened before it returns, and so
 * what can still lose the record (LMDB-style, exactly):
 *
 *   MEMORY   the record is committed in the ring. Lost by a reboot or power
 *            loss before the spill writer wrote it. The death of a process,
 *            the daemon's included, loses nothing: the ring stays in shared
 *            memory and the next daemon spills it.
 *   WRITTEN  the spill writer's write of the record to the log completed (in
 *            the page cache). Survives the death of any process, daemon
 *            included; lost on power loss or a kernel crash.
 *   SYNCED   an fdatasync covering the record completed (group commit: one
 *            fdatasync serves every record written before it). Lost only if
 *            the disk fails.
 *
 * A publish that cannot reach its level (disk full, I/O error, no daemon)
 * returns the error, never a false success; the record is still in the ring
 * and is spilled once the fault clears.
 */
enum agentbus_durability {
	AGENTBUS_DURABILITY_DEFAULT = 0, /* the stream's setting */
	AGENTBUS_DURABILITY_MEMORY = 1,
	AGENTBUS_DURABILITY_WRITTEN = 2,
	AGENTBUS_DURABILITY_SYNCED = 3,
};

/*
 * When the spill writer calls fdatasync on a stream's log:
 *   BATCH     after every batch of completed writes (default): `synced`
 *             publishes wait about one fdatasync; nothing written is ever
 *             unsynced for longer than that.
 *   INTERVAL  every fsync_interval_ms: up to that long of written records
 *             can be lost on power loss; `synced` publishes wait up to it.
 *   NEVER     never: the kernel writes back when it likes (typically within
 *             30 s), and `synced` publishes fail with AGENTBUS_E_INVALID.
 */
enum agentbus_fsync {
	AGENTBUS_FSYNC_BATCH = 0,
	AGENTBUS_FSYNC_INTERVAL = 1,
	AGENTBUS_FSYNC_NEVER = 2,
};

/*
 * What happens when a subscription falls a whole ring behind:
 *   SPILL  it goes on reading from the log, without missing a record, and
 *          returns to the ring when it catches up (default). Producers never
 *          wait for subscriptions, only for the spill writer.
 *   BLOCK  producers wait (or get AGENTBUS_E_BACKPRESSURE) while the slowest
 *          subscription is a ring behind.
 */
enum agentbus_overflow {
	AGENTBUS_OVERFLOW_SPILL = 0,
	AGENTBUS_OVERFLOW_BLOCK = 1,
};

struct agentbus_stream_config {
	uint64_t ring_size;           /* bytes, a power of two in [64 KiB, 1 GiB]; 0 = default 64 MiB */
	uint64_t max_record;          /* bytes; 0 = default 1 MiB; at most ring_size / 4 */
	enum agentbus_durability durability; /* default for publishes; DEFAULT = MEMORY */
	enum agentbus_fsync fsync;
	uint32_t fsync_interval_ms;   /* for AGENTBUS_FSYNC_INTERVAL, 1..60000 */
	enum agentbus_overflow overflow;
	uint64_t segment_size;        /* log segment bytes; 0 = 64 MiB */
	uint64_t max_age_ns;          /* retention: 0 = keep forever */
	uint64_t max_bytes;           /* retention: 0 = no limit */
	uint64_t max_records;         /* retention: 0 = no limit */
	int retention_force;          /* 1 = delete even what a subscription still needs */
};

struct agentbus_stream_info {
	char name[AGENTBUS_NAME_MAX + 1];
	uint64_t ring_size;     /* bytes */
	uint64_t max_record;    /* bytes */
	uint64_t first_seq;     /* oldest record still in the ring (next_seq when empty) */
	uint64_t next_seq;      /* sequence number the next record will get */
	uint64_t ring_used;     /* bytes between the oldest retained record and the tail */
	uint64_t gaps;          /* sequence numbers that hold no record (aborted or dead claims) */
	uint32_t subscriptions; /* attached subscriptions */
	uint32_t sleepers;      /* subscriptions asleep on the futex now */
	struct agentbus_stream_config config; /* as created (defaults filled in) */
	uint64_t log_first_seq; /* oldest record in the log (next_seq when empty) */
	uint64_t log_bytes;     /* bytes of log segments on disk */
	uint64_t written_seq;   /* every record below this is written to the log */
	uint64_t synced_seq;    /* every record below this is synced */
	int32_t spill_error;    /* 0, or the error holding the spill writer back */
	uint64_t lost_first_seq; /* a loss found at recovery: first..last seq (0 = none) */
	uint64_t lost_last_seq;
	uint64_t corrupt_records; /* bad records found in the log at recovery (kept, reported) */
};

/*
 * Create stream @name. @config may be NULL for defaults. Goes through the
 * daemon. AGENTBUS_E_EXISTS if it exists, AGENTBUS_E_INVALID for a bad name
 * or size; -ENOSPC when /dev/shm cannot hold the ring (the ring is allocated
 * up front, so a small /dev/shm fails here, not later with SIGBUS).
 * AGENTBUS_E_NO_DAEMON if no daemon serves the bus, or if the daemon went
 * away before answering: then the stream may or may not have been created
 * (agentbus_open() says how a restarted daemon is reached).
 */
int agentbus_stream_create(agentbus_bus *bus, const char *name,
			   const struct agentbus_stream_config *config);

/*
 * Delete stream @name. Open handles see AGENTBUS_E_DELETED on their next
 * publish; subscriptions first read what is left, then get AGENTBUS_E_DELETED.
 * AGENTBUS_E_NO_DAEMON as for agentbus_stream_create(): if the daemon went
 * away before answering, the stream may or may not have been deleted.
 */
int agentbus_stream_delete(agentbus_bus *bus, const char *name);

/*
 * List the streams of the bus: *infos is set to a malloc'd array of *count
 * entries, sorted by name, freed with free(). Returns 0 or a negative code.
 */
int agentbus_stream_list(agentbus_bus *bus, struct agentbus_stream_info **infos,
			 size_t *count);

/* Fill @info for stream @name. AGENTBUS_E_NOT_FOUND if there is none. */
int agentbus_stream_info_get(agentbus_bus *bus, const char *name,
			     struct agentbus_stream_info *info);

/* Map stream @name for publishing and subscribing. */
int agentbus_stream_open(agentbus_bus *bus, const char *name, agentbus_stream **stream);

/* Unmap. Subscriptions on @stream must be closed first. */
void agentbus_stream_close(agentbus_stream *stream);

/* Fill @info from an open stream (no daemon round trip). */
int agentbus_stream_stat(agentbus_stream *stream, struct agentbus_stream_info *info);

/* ------------------------------------------------------------------------ */
/* Records                                                                   */
/* ------------------------------------------------------------------------ */

struct agentbus_header {
	const char *name;   /* 1-255 bytes, not NUL-terminated when read back */
	uint16_t name_len;
	const void *value;
	uint32_t value_len;
};

/* A record to publish. Subject: 1-255 bytes of dot-separated, non-empty
 * tokens without spaces, '*' or '>'. Key and headers are optional. */
struct agentbus_message {
	const char *subject;
	size_t subject_len;   /* 0 = strlen(subject) */
	const void *key;      /* NULL = no key */
	size_t key_len;       /* at most 65535 */
	const struct agentbus_header *headers;
	size_t header_count;
	const void *payload;  /* may be NULL when payload_len is 0 */
	size_t payload_len;
};

/* A record read from a stream. Every pointer is a view into shared memory,
 * valid until the next read on the same subscription (or its close). */
struct agentbus_record {
	uint64_t seq;          /* 1, 2, 3, ... in stream order */
	uint64_t time_ns;      /* CLOCK_REALTIME when the producer claimed it */
	const char *subject;   /* not NUL-terminated */
	uint32_t subject_len;
	const void *key;
	uint32_t key_len;      /* 0 = no key */
	const void *headers;   /* encoded; walk with agentbus_header_next() */
	uint32_t headers_len;
	const void *payload;
	uint32_t payload_len;
};

/*
 * Iterate the headers of @record: start with *cursor = 0; each call fills
 * @header and returns 1, or returns 0 at the end, or AGENTBUS_E_CORRUPT.
 */
int agentbus_header_next(const struct agentbus_record *record, uint32_t *cursor,
			 struct agentbus_header *header);

/* ------------------------------------------------------------------------ */
/* Publishing                                                                */
/* ------------------------------------------------------------------------ */

/*
 * Publish one record, copying it into the ring. Lock-free: producers never
 * wait for one another's copies.
 * @timeout_ms: 0 = fail at once with AGENTBUS_E_BACKPRESSURE when the ring is
 * full of records that subscriptions have not passed; > 0 = wait up to that
 * long for room, then AGENTBUS_E_BACKPRESSURE; < 0 = wait as long as needed.
 * Returns the record's sequence number (> 0) or a negative code
 * (AGENTBUS_E_TOO_LARGE, AGENTBUS_E_INVALID, AGENTBUS_E_DELETED, ...).
 */
int64_t agentbus_publish(agentbus_stream *stream, const struct agentbus_message *message,
			 int timeout_ms);

/*
 * Publish @count records as one contiguous batch with consecutive sequence
 * numbers (one claim for all of them). Returns the first sequence number or a
 * negative code. A check that fails (TOO_LARGE, INVALID, BACKPRESSURE, ...)
 * publishes nothing. Two errors come after publishing: AGENTBUS_E_TIMEOUT or a
 * spill error while waiting for the stream's default durability (the records
 * are published, their durability unknown), and AGENTBUS_E_REVOKED when the
 * daemon took part of the batch for a dead process's (the records before the
 * revoked one are published; the message says how many).
 */
int64_t agentbus_publish_batch(agentbus_stream *stream,
			       const struct agentbus_message *messages, size_t count,
			       int timeout_ms);

/*
 * Publish (one record or a batch) and return only once @durability is
 * reached for all of them (see enum agentbus_durability). agentbus_publish()
 * and agentbus_publish_batch() use the stream's default. A publisher waiting
 * for WRITTEN or SYNCED sleeps on a futex; @timeout_ms bounds the whole call
 * (AGENTBUS_E_TIMEOUT if the level was not reached in time: the record is
 * published, its durability unknown). The spill writer's error (-ENOSPC,
 * -EIO, ...) is returned if it holds the level back.
 */
int64_t agentbus_publish_durable(agentbus_stream *stream,
				 const struct agentbus_message *messages, size_t count,
				 int timeout_ms, enum agentbus_durability durability);

/* Wait until record @seq of @stream reaches @durability (as above). */
int agentbus_wait_durable(agentbus_stream *stream, uint64_t seq,
			  enum agentbus_durability durability, int timeout_ms);

/* A zero-copy claim: space reserved in the ring, filled in place. */
struct agentbus_claim {
	void *payload;        /* write payload_len bytes here */
	size_t payload_len;
	uint64_t seq;         /* sequence number the record will have */
	/* private */
	agentbus_stream *stream;
	uint64_t position;
	uint64_t body_len;
};

/*
 * Reserve room for a record whose subject, key and headers come from
 * @message (its payload fields are ignored) and whose payload has
 * @payload_len bytes, to be written at claim->payload. Other producers go on
 * publishing meanwhile; subscriptions wait at this record until it is
 * committed or aborted. @timeout_ms as in agentbus_publish().
 */
int agentbus_claim(agentbus_stream *stream, const struct agentbus_message *message,
		   size_t payload_len, int timeout_ms, struct agentbus_claim *claim);

/* Make a claimed record visible, then wait, with no time limit, for the
 * stream's default durability (see agentbus_publish_durable(); at MEMORY
 * there is nothing to wait for). Returns its sequence number;
 * AGENTBUS_E_REVOKED if the daemon had already turned the claim into a gap
 * (only when this process was thought dead); or, the record being visible,
 * the spill writer's error, AGENTBUS_E_NO_DAEMON or AGENTBUS_E_DELETED if the
 * level cannot be reached. */
int64_t agentbus_commit(struct agentbus_claim *claim);

/* Give a claim up: its sequence number becomes a counted gap. */
int agentbus_abort(struct agentbus_claim *claim);

/* ------------------------------------------------------------------------ */
/* Subscriptions                                                             */
/* ------------------------------------------------------------------------ */

enum agentbus_start {
	AGENTBUS_START_NEW = 0,    /* the next record published */
	AGENTBUS_START_SEQ = 1,    /* start_seq (AGENTBUS_E_SEQ_GONE if older than the log) */
	AGENTBUS_START_OLDEST = 2, /* the oldest record kept (in the log, else the ring) */
	AGENTBUS_START_TIME = 3,   /* the first record stamped at or after start_time_ns */
};

enum agentbus_wait {
	AGENTBUS_WAIT_SPIN_SLEEP = 0, /* spin for spin_ns, then sleep on a futex (default) */
	AGENTBUS_WAIT_SPIN = 1,       /* busy-poll: lowest latency, burns a CPU */
	AGENTBUS_WAIT_SLEEP = 2,      /* sleep at once */
};

struct agentbus_sub_config {
	const char *filter;     /* NATS-style subject pattern ("tool.*", "agent.>"); NULL = all */
	enum agentbus_start start;
	uint64_t start_seq;     /* for AGENTBUS_START_SEQ */
	uint64_t start_time_ns; /* for AGENTBUS_START_TIME: CLOCK_REALTIME ns */
	enum agentbus_wait wait;
	uint32_t spin_ns;       /* for SPIN_SLEEP; 0 = 50000 */
};

struct agentbus_sub_stats {
	uint64_t next_seq;   /* sequence number the subscription will look at next */
	uint64_t delivered;  /* records returned */
	uint64_t filtered;   /* records skipped by the subject filter */
	uint64_t gaps;       /* sequence numbers skipped as gaps */
	uint64_t lag;        /* records published but not yet looked at */
	uint64_t from_log;   /* records read from the log (the subscription was a ring behind) */
	int in_log;          /* 1 while reading from the log */
};

/*
 * Attach a subscription to @stream. @config may be NULL (all subjects, start
 * at the next record, spin-then-sleep). Every subscription sees every record
 * in sequence order; producers never overwrite a record it has not passed.
 */
int agentbus_subscribe(agentbus_stream *stream, const struct agentbus_sub_config *config,
		       agentbus_sub **sub);

/* Detach and free. */
void agentbus_sub_close(agentbus_sub *sub);

/*
 * Non-blocking zero-copy read: returns 1 and fills @record (a view valid until
 * the next read), 0 when no matching record is ready, or a negative code.
 */
int agentbus_sub_poll(agentbus_sub *sub, struct agentbus_record *record);

/*
 * Blocking zero-copy read: waits per the subscription's wait strategy for up
 * to @timeout_ms (< 0: forever). Returns 1, 0 on timeout, or a negative code.
 */
int agentbus_sub_read(agentbus_sub *sub, struct agentbus_record *record, int timeout_ms);

/*
 * Batch read: waits as agentbus_sub_read() for the first record, then takes
 * whatever else is ready, up to @max. Returns the number filled (0 on
 * timeout) or a negative code. All views stay valid until the next read.
 */
int agentbus_sub_read_batch(agentbus_sub *sub, struct agentbus_record *records, size_t max,
			    int timeout_ms);

/*
 * Copying read: as agentbus_sub_read(), then copies the payload into @buffer
 * (AGENTBUS_E_TOO_LARGE, record kept for the next call, if it does not fit).
 * record->payload then points into @buffer; the other views as usual. The
 * first call sets aside about max_record bytes to keep such a record in; if
 * that fails it returns -ENOMEM and no record has been read.
 */
int agentbus_sub_read_copy(agentbus_sub *sub, struct agentbus_record *record, void *buffer,
			   size_t buffer_len, int timeout_ms);

/* Counters of this subscription. */
void agentbus_sub_stats_get(const agentbus_sub *sub, struct agentbus_sub_stats *stats);

/* ------------------------------------------------------------------------ */
/* Replay and verification of the log                                       */
/* ------------------------------------------------------------------------ */

typedef struct agentbus_replay agentbus_replay;

enum agentbus_rate {
	AGENTBUS_RATE_MAX = 0,      /* as fast as the log can be read */
	AGENTBUS_RATE_ORIGINAL = 1, /* with the original gaps between record times */
};

struct agentbus_replay_config {
	enum agentbus_start start; /* SEQ, TIME or OLDEST (NEW: nothing to replay) */
	uint64_t start_seq;
	uint64_t start_time_ns;
	uint64_t to_seq;           /* last seq to return; 0 = up to what is written now */
	const char *filter;        /* subject pattern; NULL = all */
	enum agentbus_rate rate;
	const char *data_dir;      /* read the logs under this absolute directory
				    * (<data_dir>/<bus>/<stream>/); NULL = see
				    * agentbus_replay_open() */
};

/*
 * Replay stream @stream of @bus from its log, read directly from the files
 * (the daemon need not run; @bus may be NULL: then $AGENTBUS_BUS, and the
 * data directory its last daemon used, else the default). A config->data_dir
 * wins over both: the files there are read as they are (a copy of a data
 * directory, say), up to their end, even when @bus is given (then only its
 * name is used). Records come in sequence order; gaps are
 * skipped; a record whose checksum fails is AGENTBUS_E_CORRUPT naming its
 * seq (the next call goes on after it).
 */
int agentbus_replay_open(agentbus_bus *bus, const char *stream,
			 const struct agentbus_replay_config *config, agentbus_replay **replay);

/* The next record: 1 (a view valid until the next call), 0 at the end, or < 0. */
int agentbus_replay_next(agentbus_replay *replay, struct agentbus_record *record);

void agentbus_replay_close(agentbus_replay *replay);

/* A problem found by agentbus_verify(). */
struct agentbus_problem {
	const char *stream;
	const char *segment;   /* path of the segment's log (.log) or index (.idx) file */
	uint64_t file_offset;
	uint64_t seq;          /* sequence number expected there (0: not known) */
	const char *what;
};

/*
 * Check every record of every segment of @stream (NULL: every stream) of bus
 * @bus_name (NULL: $AGENTBUS_BUS or "default") under @data_dir (NULL: the one
 * the bus's last daemon used, else the default, see agentbus_daemon_config), and
 * every entry of the segments' indexes against the frames. Calls @report for
 * each problem and returns how many there were, or a negative code.
 */
int agentbus_verify(const char *bus_name, const char *data_dir, const char *stream,
		    void (*report)(void *arg, const struct agentbus_problem *problem), void *arg);

/* ------------------------------------------------------------------------ */
/* Subjects                                                                  */
/* ------------------------------------------------------------------------ */

/* 0 if @subject (length @len) is a valid published subject, else AGENTBUS_E_INVALID. */
int agentbus_subject_check(const char *subject, size_t len);

/* 0 if @pattern is a valid filter ('*' = one token, '>' = the rest, last only). */
int agentbus_pattern_check(const char *pattern, size_t len);

/* 1 if @subject matches @pattern, else 0. Both must be valid. */
int agentbus_subject_matches(const char *pattern, size_t pattern_len, const char *subject,
			     size_t subject_len);

/* ------------------------------------------------------------------------ */
/* Daemon                                                                    */
/* ------------------------------------------------------------------------ */

struct agentbus_daemon_config {
	const char *bus;        /* NULL: $AGENTBUS_BUS, else "default" */
	int verbose;            /* 1 = log events (client deaths, gaps) to stderr */
	const char *data_dir;   /* logs: NULL = $AGENTBUS_DATA, else $XDG_DATA_HOME/agentbus,
				 * else ~/.local/share/agentbus (created 0700) */
};

/*
 * Start the daemon of a bus inside this process (embedded mode: a thread).
 * Creates the bus's directory and socket. AGENTBUS_E_BUSY if another daemon
 * serves the bus. Streams left in shared memory by an earlier daemon are
 * adopted. That daemon's clients that still run keep their subscriptions
 * and claims (each holds a lock file the kernel releases when it dies); what
 * those that died held is freed, and their claims become gaps.
 */
int agentbus_daemon_start(agentbus_daemon **daemon, const struct agentbus_daemon_config *config);

/* Stop an embedded daemon and free it. Shared memory stays for the next one. */
void agentbus_daemon_stop(agentbus_daemon *daemon);

/* Remove everything of bus @name: its shared memory and its logs (no daemon
 * may run). */
int agentbus_bus_destroy(const char *name);

#ifdef __cplusplus
}
#endif

#endif /* AGENTBUS_H */
