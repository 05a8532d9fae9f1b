/*
 * demo_calls.c - the demo's tool catalogue: which calls the planner makes,
 * how an agent answers them, and how records' keys and headers are read.
 *
 * Calls are generated from their id by a fixed hash, so the collector can
 * rebuild any call and the answer it must get, and check what came back
 * over the bus byte for byte.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demo.h"

/* Indexed by enum demo_tool: the agent that serves each tool. */
const struct demo_agent_spec demo_agents[DEMO_TOOL_COUNT] = {
	[DEMO_TOOL_SEARCH] = { "searcher", "tool.call.search.*", DEMO_TOOL_SEARCH },
	[DEMO_TOOL_FETCH] = { "fetcher", "tool.call.fetch", DEMO_TOOL_FETCH },
	[DEMO_TOOL_CALC] = { "calculator", "tool.call.calc.>", DEMO_TOOL_CALC },
};

static const char *const queries[] = {
	"lock-free ring buffer",
	"futex wake latency",
	"consumer group redelivery",
	"posix shared memory permissions",
	"nats subject wildcards",
	"io_uring fsync ordering",
};

const char *demo_tool_name(enum demo_tool tool)
{
	static const char *const names[DEMO_TOOL_COUNT] = { "search", "fetch", "calc" };

	return (unsigned)tool < DEMO_TOOL_COUNT ? names[tool] : "?";
}

/* splitmix64: a well-mixed hash of the id, so the mix of calls looks random
 * but every process derives the same call from the same id. */
static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/*
 * Fill @call with call number @id: about 40% searches (web or docs), 30%
 * fetches and 30% calculations (add or mul).
 */
void demo_call_make(uint64_t id, struct demo_call *call)
{
	uint64_t h = mix(id);
	unsigned pick = (unsigned)(h % 10);
	int n;

	memset(call, 0, sizeof(*call));
	call->id = id;
	snprintf(call->key, sizeof(call->key), "call-%06" PRIu64, id);
	if (pick < 4) {
		call->tool = DEMO_TOOL_SEARCH;
		snprintf(call->subject, sizeof(call->subject), "tool.call.search.%s",
			 (h >> 8) & 1 ? "web" : "docs");
		n = snprintf(call->payload, sizeof(call->payload), "{\"id\":%" PRIu64 ",\"q\":\"%s\"}",
			     id, queries[(h >> 16) % (sizeof(queries) / sizeof(queries[0]))]);
	} else if (pick < 7) {
		call->tool = DEMO_TOOL_FETCH;
		snprintf(call->subject, sizeof(call->subject), "tool.call.fetch");
		n = snprintf(call->payload, sizeof(call->payload),
			     "{\"id\":%" PRIu64 ",\"url\":\"https://docs.example.org/page/%u\"}", id,
			     (unsigned)((h >> 16) % 900 + 100));
	} else {
		int mul = (h >> 8) & 1;

		call->tool = DEMO_TOOL_CALC;
		snprintf(call->subject, sizeof(call->subject), "tool.call.calc.%s", mul ? "mul" : "add");
		n = snprintf(call->payload, sizeof(call->payload),
			     "{\"id\":%" PRIu64 ",\"op\":\"%s\",\"a\":%u,\"b\":%u}", id,
			     mul ? "mul" : "add", (unsigned)((h >> 16) % 1000),
			     (unsigned)((h >> 32) % 1000));
	}
	call->payload_len = (size_t)n;
}

/* The number of space-separated words in @text. */
static unsigned count_words(const char *text)
{
	unsigned words = 0;

	for (const char *p = text; *p; p++)
		if (*p != ' ' && (p == text || p[-1] == ' '))
			words++;
	return words;
}

/* Each tool's work: parse the request text @req, write the answer to @out.
 * Returns the answer's length, or -1 if the request does not parse. */
static int answer_search(const char *req, char *out, size_t out_len)
{
	uint64_t id;
	char q[96], first[96];

	if (sscanf(req, "{\"id\":%" SCNu64 ",\"q\":\"%95[^\"]\"}", &id, q) != 2)
		return -1;
	if (sscanf(q, "%95s", first) != 1)
		return -1;
	return snprintf(out, out_len, "{\"id\":%" PRIu64 ",\"hits\":%u,\"top\":\"%s-guide\"}", id,
			3 * count_words(q), first);
}

static int answer_fetch(const char *req, char *out, size_t out_len)
{
	uint64_t id;
	unsigned page;

	if (sscanf(req, "{\"id\":%" SCNu64 ",\"url\":\"https://docs.example.org/page/%u\"}", &id,
		   &page) != 2)
		return -1;
	return snprintf(out, out_len, "{\"id\":%" PRIu64 ",\"status\":200,\"bytes\":%u}", id,
			512 + 37 * page);
}

static int answer_calc(const char *req, char *out, size_t out_len)
{
	uint64_t id, value;
	unsigned a, b;
	char op[8];

	if (sscanf(req, "{\"id\":%" SCNu64 ",\"op\":\"%7[a-z]\",\"a\":%u,\"b\":%u}", &id, op, &a,
		   &b) != 4)
		return -1;
	if (strcmp(op, "add") == 0)
		value = (uint64_t)a + b;
	else if (strcmp(op, "mul") == 0)
		value = (uint64_t)a * b;
	else
		return -1;
	return snprintf(out, out_len, "{\"id\":%" PRIu64 ",\"value\":%" PRIu64 "}", id, value);
}

/*
 * Do the work of @tool for the request @payload (not NUL-terminated, as read
 * from the ring) and write the answer, NUL-terminated, to @out. Returns the
 * answer's length, or -1 for a request that does not parse or an answer that
 * does not fit.
 */
int demo_answer(enum demo_tool tool, const void *payload, size_t payload_len, char *out,
		size_t out_len)
{
	char req[DEMO_PAYLOAD_MAX];
	int n;

	if (payload_len >= sizeof(req))
		return -1;
	memcpy(req, payload, payload_len);
	req[payload_len] = '\0';
	switch (tool) {
	case DEMO_TOOL_SEARCH:
		n = answer_search(req, out, out_len);
		break;
	case DEMO_TOOL_FETCH:
		n = answer_fetch(req, out, out_len);
		break;
	case DEMO_TOOL_CALC:
		n = answer_calc(req, out, out_len);
		break;
	default:
		return -1;
	}
	return n >= 0 && (size_t)n < out_len ? n : -1;
}

/*
 * Copy the value of header @name of @record, NUL-terminated, into @out.
 * Returns 0, or -1 if the record has no such header or it does not fit.
 */
int demo_header_get(const struct agentbus_record *record, const char *name, char *out,
		    size_t out_len)
{
	struct agentbus_header header;
	uint32_t cursor = 0;
	size_t name_len = strlen(name);

	while (agentbus_header_next(record, &cursor, &header) == 1) {
		if (header.name_len != name_len || memcmp(header.name, name, name_len) != 0)
			continue;
		if (header.value_len >= out_len)
			return -1;
		memcpy(out, header.value, header.value_len);
		out[header.value_len] = '\0';
		return 0;
	}
	return -1;
}

/* Read header @name of @record as a decimal number. Returns 0 or -1. */
int demo_header_u64(const struct agentbus_record *record, const char *name, uint64_t *value)
{
	char text[32], *end;

	if (demo_header_get(record, name, text, sizeof(text)) != 0 || text[0] == '\0')
		return -1;
	*value = strtoull(text, &end, 10);
	return *end == '\0' ? 0 : -1;
}

/* Read the call id out of a record's key "call-NNNNNN". Returns 0 or -1. */
int demo_key_id(const struct agentbus_record *record, uint64_t *id)
{
	char text[DEMO_KEY_MAX], *end;

	if (record->key_len < 6 || record->key_len >= sizeof(text))
		return -1;
	memcpy(text, record->key, record->key_len);
	text[record->key_len] = '\0';
	if (strncmp(text, "call-", 5) != 0)
		return -1;
	*id = strtoull(text + 5, &end, 10);
	return *end == '\0' && *id > 0 ? 0 : -1;
}
