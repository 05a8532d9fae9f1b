/*
 * record.c - what `sub` and `replay` share: printing a record, one line for
 * a human or one JSON object, and stopping cleanly on SIGINT/SIGTERM. Both
 * commands print the same format, so a replay can be piped into whatever
 * reads a subscription.
 */
#include <signal.h>
#include <string.h>

#include "cli.h"

/* Binary payloads, keys and header values show at most this many bytes in hex. */
#define HEX_MAX 32

volatile sig_atomic_t cli_stop_requested;

static void on_stop_signal(int sig)
{
	(void)sig;
	cli_stop_requested = 1;
}

/* Stop on SIGINT/SIGTERM through the flag (main() already ignores SIGPIPE). */
void cli_install_stop_signals(void)
{
	struct sigaction action;

	memset(&action, 0, sizeof(action));
	action.sa_handler = on_stop_signal; /* no SA_RESTART: a sleeping read returns */
	sigemptyset(&action.sa_mask);
	sigaction(SIGINT, &action, NULL);
	sigaction(SIGTERM, &action, NULL);
}

/* Bytes for a human: as text when they are text, else "0x" and hex. */
static void print_bytes(const void *data, size_t len)
{
	if (cli_is_text(data, len)) {
		cli_print_text(stdout, data, len);
	} else {
		fputs("0x", stdout);
		cli_print_hex(stdout, data, len, HEX_MAX);
	}
}

/* One record on one line, for a human (the format of `sub --help`). */
static void print_record_text(const struct agentbus_record *rec)
{
	struct agentbus_header header;
	uint32_t cursor = 0;
	char time[64];
	int rc;

	cli_format_time(time, sizeof(time), rec->time_ns);
	printf("#%llu %s ", (unsigned long long)rec->seq, time);
	cli_print_text(stdout, rec->subject, rec->subject_len);
	if (rec->key_len) {
		fputs(" key=", stdout);
		print_bytes(rec->key, rec->key_len);
	}
	while ((rc = agentbus_header_next(rec, &cursor, &header)) == 1) {
		fputs(" hdr=", stdout);
		print_bytes(header.name, header.name_len);
		fputc(':', stdout);
		print_bytes(header.value, header.value_len);
	}
	if (rc < 0)
		fputs(" hdr=<corrupt>", stdout);
	printf(" (%u bytes)", rec->payload_len);
	if (rec->payload_len && cli_is_text(rec->payload, rec->payload_len)) {
		fputc(' ', stdout);
		cli_print_text(stdout, rec->payload, rec->payload_len);
	} else if (rec->payload_len) {
		fputs(" binary ", stdout);
		cli_print_hex(stdout, rec->payload, rec->payload_len, HEX_MAX);
	}
	fputc('\n', stdout);
}

/* ,"NAME":"..." when @data is UTF-8, else ,"NAME_base64":"..." */
static void print_json_bytes(const char *name, const void *data, size_t len)
{
	if (cli_utf8_valid(data, len)) {
		printf(",\"%s\":", name);
		cli_print_json_string(stdout, data, len);
	} else {
		printf(",\"%s_base64\":\"", name);
		cli_print_base64(stdout, data, len);
		fputc('"', stdout);
	}
}

/* The headers of @rec as a JSON object; stops quietly at a corrupt entry. */
static void print_json_headers(const struct agentbus_record *rec)
{
	struct agentbus_header header;
	uint32_t cursor = 0;
	bool first = true;

	fputs(",\"headers\":{", stdout);
	while (agentbus_header_next(rec, &cursor, &header) == 1) {
		if (!first)
			fputc(',', stdout);
		first = false;
		cli_print_json_string(stdout, header.name, header.name_len);
		fputc(':', stdout);
		cli_print_json_string(stdout, header.value, header.value_len);
	}
	fputc('}', stdout);
}

/* One record as one JSON object on one line (the format of `sub --help`). */
static void print_record_json(const struct agentbus_record *rec)
{
	printf("{\"seq\":%llu,\"time_ns\":%llu,\"subject\":", (unsigned long long)rec->seq,
	       (unsigned long long)rec->time_ns);
	cli_print_json_string(stdout, rec->subject, rec->subject_len);
	if (rec->key_len)
		print_json_bytes("key", rec->key, rec->key_len);
	else
		fputs(",\"key\":null", stdout);
	print_json_headers(rec);
	print_json_bytes("data", rec->payload, rec->payload_len);
	fputs("}\n", stdout);
}

/* Print @rec to stdout's buffer, as JSON or for a human. */
void cli_print_record(const struct agentbus_record *rec, bool json)
{
	if (json)
		print_record_json(rec);
	else
		print_record_text(rec);
}
