/* errors.c - error codes to names, and the per-thread detailed message. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bus/internal.h"

static __thread char last_error[512];

int set_error(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	return err;
}

void clear_error(void)
{
	last_error[0] = '\0';
}

const char *agentbus_last_error(void)
{
	return last_error;
}

const char *agentbus_strerror(int err)
{
	switch (err) {
	case AGENTBUS_OK: return "success";
	case AGENTBUS_E_INVALID: return "invalid argument";
	case AGENTBUS_E_BACKPRESSURE: return "back-pressure: ring full of unread records";
	case AGENTBUS_E_TIMEOUT: return "timed out";
	case AGENTBUS_E_NOT_FOUND: return "no such stream";
	case AGENTBUS_E_EXISTS: return "stream already exists";
	case AGENTBUS_E_TOO_LARGE: return "record too large";
	case AGENTBUS_E_CORRUPT: return "corrupt shared memory";
	case AGENTBUS_E_NO_DAEMON: return "no daemon serves this bus";
	case AGENTBUS_E_DELETED: return "stream deleted";
	case AGENTBUS_E_SEQ_GONE: return "sequence number no longer in the ring";
	case AGENTBUS_E_REVOKED: return "claim revoked";
	case AGENTBUS_E_LIMIT: return "table full";
	case AGENTBUS_E_VERSION: return "format version mismatch";
	case AGENTBUS_E_PROTOCOL: return "protocol error";
	case AGENTBUS_E_BUSY: return "another daemon serves this bus";
	}
	if (err < 0 && err > -4096)
		return strerror(-err);
	return "unknown error";
}
