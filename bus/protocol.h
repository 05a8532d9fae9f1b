/*
 * protocol.h - messages between clients and the daemon over the bus's Unix
 * socket (SOCK_SEQPACKET: one message per send, and a closed connection is
 * how the daemon learns that a client died). Control operations only; the
 * data path never touches the socket.
 */
#ifndef AGENTBUS_BUS_PROTOCOL_H
#define AGENTBUS_BUS_PROTOCOL_H

#include <stdint.h>

#include "agentbus.h"

#define PROTOCOL_MAGIC 0x31424741u /* "AGB1" */
#define SOCKET_NAME "daemon.sock"
#define LOCK_NAME "daemon.lock"
#define STREAMS_DIR "streams"
#define CLIENTS_DIR "clients" /* <id>: a file each client holds flock'd while it lives */
#define BUS_SEGMENT_NAME "bus"

enum control_op {
	OP_HELLO = 1,         /* -> client_id */
	OP_STREAM_CREATE = 2, /* name, config */
	OP_STREAM_DELETE = 3, /* name */
	OP_GOODBYE = 4,       /* a clean close: holds nothing, so it is no death */
	OP_REATTACH = 5,      /* client_id: a client of an earlier connection (its daemon
			       * died, or dropped it) takes its id back, instead of a hello */
};

/*
 * OP_REATTACH came later than the rest, in a field that was reserved (zero),
 * so the layout and PROTOCOL_MAGIC stayed: a daemon from before refuses it
 * as an unknown request (AGENTBUS_E_PROTOCOL).
 */

struct control_request {
	uint32_t magic;
	uint32_t op;          /* enum control_op */
	int32_t pid;          /* for logs only: pids repeat across containers */
	uint32_t client_id;   /* OP_REATTACH: the id the client holds its alive lock for */
	struct agentbus_stream_config config; /* OP_STREAM_CREATE; no pointers inside */
	char name[64];        /* NUL-terminated */
};

struct control_reply {
	uint32_t magic;
	int32_t status;       /* 0 or a negative code */
	uint32_t client_id;   /* OP_HELLO */
	uint32_t reserved;
	char message[240];    /* detail for agentbus_last_error() */
};

#endif
