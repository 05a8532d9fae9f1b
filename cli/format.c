/*
 * format.c - how the CLI writes record contents: UTF-8 checks, escaped text
 * for humans, JSON strings, base64, hex, timestamps and sizes.
 *
 * Records come from other processes, so nothing here trusts that a subject,
 * key, header or payload is text: every byte sequence is either shown as
 * valid UTF-8 or escaped, and control bytes never reach the terminal raw.
 */
#include <string.h>
#include <time.h>

#include "cli.h"

/*
 * Length of the well-formed UTF-8 sequence at @s (of @len bytes left), or 0
 * if it is not one: overlong forms, surrogates and code points above
 * U+10FFFF are refused, as RFC 3629 says.
 */
static size_t utf8_sequence_len(const unsigned char *s, size_t len)
{
	unsigned char c = s[0];
	size_t n;
	unsigned char min2 = 0x80, max2 = 0xbf; /* allowed range of the 2nd byte */

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		if (c == 0xe0)
			min2 = 0xa0; /* overlong */
		if (c == 0xed)
			max2 = 0x9f; /* surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		if (c == 0xf0)
			min2 = 0x90; /* overlong */
		if (c == 0xf4)
			max2 = 0x8f; /* above U+10FFFF */
	} else {
		return 0;
	}
	if (len < n || s[1] < min2 || s[1] > max2)
		return 0;
	for (size_t i = 2; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	}
	return n;
}

/* True if @data[0, @len) is well-formed UTF-8. */
bool cli_utf8_valid(const void *data, size_t len)
{
	const unsigned char *s = data;

	for (size_t i = 0; i < len;) {
		size_t n = utf8_sequence_len(s + i, len - i);

		if (n == 0)
			return false;
		i += n;
	}
	return true;
}

/* True for the control bytes that still belong in text: tab and line ends. */
static bool text_control_ok(unsigned char c)
{
	return c == '\t' || c == '\n' || c == '\r';
}

/* True if @data is text a human can read: UTF-8 without stray control bytes. */
bool cli_is_text(const void *data, size_t len)
{
	const unsigned char *s = data;

	for (size_t i = 0; i < len; i++) {
		if ((s[i] < 0x20 && !text_control_ok(s[i])) || s[i] == 0x7f)
			return false;
	}
	return cli_utf8_valid(data, len);
}

/*
 * Write text for a human on one line: control bytes become \n, \t, \r or
 * \xHH, so a record never spans lines. Bytes that are not UTF-8 are written
 * as \xHH too.
 */
void cli_print_text(FILE *out, const void *data, size_t len)
{
	const unsigned char *s = data;

	for (size_t i = 0; i < len;) {
		size_t n = utf8_sequence_len(s + i, len - i);

		if (s[i] == '\n')
			fputs("\\n", out);
		else if (s[i] == '\t')
			fputs("\\t", out);
		else if (s[i] == '\r')
			fputs("\\r", out);
		else if (n == 0 || s[i] < 0x20 || s[i] == 0x7f)
			fprintf(out, "\\x%02x", s[i]);
		else
			fwrite(s + i, 1, n, out);
		i += n ? n : 1;
	}
}

/* Write the first @max bytes of @data in hex, then "..." if there were more. */
void cli_print_hex(FILE *out, const void *data, size_t len, size_t max)
{
	const unsigned char *s = data;

	for (size_t i = 0; i < len && i < max; i++)
		fprintf(out, "%02x", s[i]);
	if (len > max)
		fputs("...", out);
}

/*
 * Write @data as a JSON string, quotes included. '"' and '\' are escaped,
 * every control byte below 0x20 becomes \u00XX, and each byte that is not
 * part of well-formed UTF-8 becomes U+FFFD (the output is always valid JSON;
 * callers that must not lose bytes check cli_utf8_valid() first).
 */
void cli_print_json_string(FILE *out, const void *data, size_t len)
{
	const unsigned char *s = data;

	fputc('"', out);
	for (size_t i = 0; i < len;) {
		size_t n = utf8_sequence_len(s + i, len - i);

		if (n == 0)
			fputs("\\ufffd", out);
		else if (s[i] == '"' || s[i] == '\\')
			fprintf(out, "\\%c", s[i]);
		else if (s[i] < 0x20)
			fprintf(out, "\\u%04x", s[i]);
		else
			fwrite(s + i, 1, n, out);
		i += n ? n : 1;
	}
	fputc('"', out);
}

/* Write @data in standard base64 (RFC 4648, with '=' padding), no quotes. */
void cli_print_base64(FILE *out, const void *data, size_t len)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *s = data;

	for (size_t i = 0; i < len; i += 3) {
		size_t left = len - i;
		uint32_t group = (uint32_t)s[i] << 16;

		if (left > 1)
			group |= (uint32_t)s[i + 1] << 8;
		if (left > 2)
			group |= s[i + 2];
		fputc(alphabet[(group >> 18) & 63], out);
		fputc(alphabet[(group >> 12) & 63], out);
		fputc(left > 1 ? alphabet[(group >> 6) & 63] : '=', out);
		fputc(left > 2 ? alphabet[group & 63] : '=', out);
	}
}

/* Format @time_ns (since the epoch) as RFC 3339 UTC with nanoseconds. */
void cli_format_time(char *buf, size_t size, uint64_t time_ns)
{
	time_t seconds = (time_t)(time_ns / 1000000000u);
	struct tm tm;
	size_t n = 0;

	if (gmtime_r(&seconds, &tm))
		n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
	if (n == 0) {
		snprintf(buf, size, "@%llu.%09lluZ", (unsigned long long)seconds,
			 (unsigned long long)(time_ns % 1000000000u));
		return;
	}
	snprintf(buf + n, size - n, ".%09lluZ", (unsigned long long)(time_ns % 1000000000u));
}

/* Format a size as "64MiB" when it is a whole number of KiB/MiB/GiB/TiB
 * (the suffixes the options take), else "1234B". */
void cli_format_size(char *buf, size_t size, uint64_t bytes)
{
	static const char *const units[] = { "TiB", "GiB", "MiB", "KiB" };

	for (int i = 0; i < 4; i++) {
		uint64_t unit = 1ull << (10 * (4 - i));

		if (bytes >= unit && bytes % unit == 0) {
			snprintf(buf, size, "%llu%s", (unsigned long long)(bytes / unit), units[i]);
			return;
		}
	}
	snprintf(buf, size, "%lluB", (unsigned long long)bytes);
}
