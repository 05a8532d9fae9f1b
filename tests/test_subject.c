/*
 * test_subject.c - subject and pattern validation and matching.
 *
 * Table tests of the edges (empty tokens, dots at either end, 255 vs 256
 * bytes, wildcards inside tokens, '>' before the end), then a randomized
 * cross-check of all three functions against a deliberately naive reference
 * that splits into tokens and compares them. Every string handed to the
 * library lives in a heap block of exactly its length, so AddressSanitizer
 * catches any read past the given length.
 *
 * Exit status: 0 on pass, 1 on failure (each failure is printed).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agentbus.h"

static int failures;

#define FAIL(...)                                                   \
	do {                                                        \
		fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
		fprintf(stderr, __VA_ARGS__);                       \
		fputc('\n', stderr);                                \
		failures++;                                         \
	} while (0)

/* A heap copy of exactly @len bytes (no NUL), so over-reads are caught. */
static char *exact_copy(const char *text, size_t len)
{
	char *copy = malloc(len ? len : 1);

	if (!copy) {
		perror("malloc");
		exit(1);
	}
	memcpy(copy, text, len);
	return copy;
}

static int subject_check(const char *text, size_t len)
{
	char *copy = exact_copy(text, len);
	int ret = agentbus_subject_check(copy, len);

	free(copy);
	return ret;
}

static int pattern_check(const char *text, size_t len)
{
	char *copy = exact_copy(text, len);
	int ret = agentbus_pattern_check(copy, len);

	free(copy);
	return ret;
}

static int matches(const char *pattern, size_t plen, const char *subject, size_t slen)
{
	char *p = exact_copy(pattern, plen), *s = exact_copy(subject, slen);
	int ret = agentbus_subject_matches(p, plen, s, slen);

	free(p);
	free(s);
	return ret;
}

/* ------------------------------------------------------------------------ */
/* Reference implementation: split, then compare token lists                 */
/* ------------------------------------------------------------------------ */

struct tokens {
	size_t count;
	const char *start[AGENTBUS_SUBJECT_MAX + 1];
	size_t len[AGENTBUS_SUBJECT_MAX + 1];
};

/* Split on every dot; "a..b" gives an empty middle token. */
static void ref_split(const char *text, size_t len, struct tokens *t)
{
	size_t start = 0;

	t->count = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || text[i] == '.') {
			t->start[t->count] = text + start;
			t->len[t->count] = i - start;
			t->count++;
			start = i + 1;
		}
	}
}

static bool ref_is(const struct tokens *t, size_t i, const char *word)
{
	return t->len[i] == strlen(word) && memcmp(t->start[i], word, t->len[i]) == 0;
}

static bool ref_literal_ok(const char *tok, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)tok[i];

		if (c <= 0x20 || c == 0x7f || c == '*' || c == '>')
			return false;
	}
	return true;
}

static bool ref_subject_ok(const char *text, size_t len, struct tokens *t)
{
	if (len < 1 || len > AGENTBUS_SUBJECT_MAX)
		return false;
	ref_split(text, len, t);
	for (size_t i = 0; i < t->count; i++)
		if (!ref_literal_ok(t->start[i], t->len[i]))
			return false;
	return true;
}

static bool ref_pattern_ok(const char *text, size_t len, struct tokens *t)
{
	if (len < 1 || len > AGENTBUS_SUBJECT_MAX)
		return false;
	ref_split(text, len, t);
	for (size_t i = 0; i < t->count; i++) {
		if (ref_is(t, i, "*"))
			continue;
		if (ref_is(t, i, ">") && i == t->count - 1)
			continue;
		if (!ref_literal_ok(t->start[i], t->len[i]))
			return false;
	}
	return true;
}

static int ref_matches(const char *pattern, size_t plen, const char *subject, size_t slen)
{
	static struct tokens p, s;

	if (!ref_pattern_ok(pattern, plen, &p) || !ref_subject_ok(subject, slen, &s))
		return 0;
	for (size_t i = 0; i < p.count; i++) {
		if (ref_is(&p, i, ">"))
			return s.count > i;
		if (i >= s.count)
			return 0;
		if (ref_is(&p, i, "*"))
			continue;
		if (p.len[i] != s.len[i] || memcmp(p.start[i], s.start[i], p.len[i]) != 0)
			return 0;
	}
	return p.count == s.count;
}

/* ------------------------------------------------------------------------ */
/* Tables                                                                    */
/* ------------------------------------------------------------------------ */

struct check_case {
	const char *text;
	int subject_ok;
	int pattern_ok;
};

static const struct check_case check_cases[] = {
	{ "a", 1, 1 },
	{ "tool.call.search", 1, 1 },
	{ "a.b.c.d.e.f", 1, 1 },
	{ "UTF8.\xc3\xa9t\xc3\xa9", 1, 1 },
	{ "with-dash_and~tilde.0123", 1, 1 },
	{ "", 0, 0 },
	{ ".", 0, 0 },
	{ "..", 0, 0 },
	{ ".a", 0, 0 },
	{ "a.", 0, 0 },
	{ "a..b", 0, 0 },
	{ "a b", 0, 0 },
	{ "a\tb", 0, 0 },
	{ "a\nb", 0, 0 },
	{ "a\x7f", 0, 0 },
	{ "a\x01.b", 0, 0 },
	{ "*", 0, 1 },
	{ ">", 0, 1 },
	{ "a.*", 0, 1 },
	{ "*.a", 0, 1 },
	{ "*.*.*", 0, 1 },
	{ "a.>", 0, 1 },
	{ "*.>", 0, 1 },
	{ "a.*.>", 0, 1 },
	{ "foo*", 0, 0 },
	{ "*foo", 0, 0 },
	{ "a.f*o.b", 0, 0 },
	{ "a>", 0, 0 },
	{ ">a", 0, 0 },
	{ "**", 0, 0 },
	{ ">>", 0, 0 },
	{ "a.>.b", 0, 0 },
	{ ">.a", 0, 0 },
	{ ">.>", 0, 0 },
	{ "a.>.", 0, 0 },
	{ "a.*.", 0, 0 },
	{ ".*", 0, 0 },
	{ "a. .b", 0, 0 },
};

static void test_check_table(void)
{
	for (size_t i = 0; i < sizeof(check_cases) / sizeof(check_cases[0]); i++) {
		const struct check_case *c = &check_cases[i];
		size_t len = strlen(c->text);
		int want_s = c->subject_ok ? 0 : AGENTBUS_E_INVALID;
		int want_p = c->pattern_ok ? 0 : AGENTBUS_E_INVALID;
		int got_s = subject_check(c->text, len);
		int got_p = pattern_check(c->text, len);

		if (got_s != want_s)
			FAIL("subject_check(\"%s\") = %d, want %d", c->text, got_s, want_s);
		if (got_p != want_p)
			FAIL("pattern_check(\"%s\") = %d, want %d", c->text, got_p, want_p);
	}
}

/* Lengths are exact: a NUL is just a forbidden byte, len 0 is invalid. */
static void test_exact_lengths(void)
{
	if (agentbus_subject_check("tool.call", 4) != 0)
		FAIL("subject_check(\"tool.call\", 4) should see \"tool\" and pass");
	if (agentbus_subject_check("tool.call", 5) != AGENTBUS_E_INVALID)
		FAIL("subject_check(\"tool.call\", 5) should see \"tool.\" and fail");
	if (agentbus_subject_check("a\0b", 3) != AGENTBUS_E_INVALID)
		FAIL("subject_check with an embedded NUL should fail");
	if (agentbus_subject_check("abc", 0) != AGENTBUS_E_INVALID)
		FAIL("subject_check with len 0 should fail (no strlen)");
	if (agentbus_pattern_check("abc", 0) != AGENTBUS_E_INVALID)
		FAIL("pattern_check with len 0 should fail (no strlen)");
	if (agentbus_subject_matches("a", 1, "a", 0) != 0)
		FAIL("matches with subject len 0 should be 0");
	if (agentbus_subject_matches(">", 0, "a", 1) != 0)
		FAIL("matches with pattern len 0 should be 0");
	if (agentbus_subject_matches("tool.*", 6, "tool.call.x", 9) != 1)
		FAIL("matches(\"tool.*\", \"tool.call\" by length) should be 1");
	if (agentbus_subject_check(NULL, 3) != AGENTBUS_E_INVALID)
		FAIL("subject_check(NULL) should fail");
	if (agentbus_pattern_check(NULL, 3) != AGENTBUS_E_INVALID)
		FAIL("pattern_check(NULL) should fail");
	if (agentbus_subject_matches(NULL, 1, "a", 1) != 0 ||
	    agentbus_subject_matches("a", 1, NULL, 1) != 0)
		FAIL("matches with NULL should be 0");
}

/* 255 bytes is the longest subject and pattern; 256 is one too many. */
static void test_max_length(void)
{
	char buf[AGENTBUS_SUBJECT_MAX + 2];

	/* "a.a.a...." alternating, so that it also has many tokens */
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (i % 2) ? '.' : 'a';
	if (subject_check(buf, 255) != 0)
		FAIL("255-byte subject rejected");
	if (pattern_check(buf, 255) != 0)
		FAIL("255-byte pattern rejected");
	/* one 256-byte token, so that only the length is wrong */
	memset(buf, 'a', 256);
	if (subject_check(buf, 256) != AGENTBUS_E_INVALID)
		FAIL("256-byte subject accepted");
	if (pattern_check(buf, 256) != AGENTBUS_E_INVALID)
		FAIL("256-byte pattern accepted");
	if (matches(">", 1, buf, 256) != 0)
		FAIL("\">\" matched a 256-byte subject");
	if (matches(buf, 256, buf, 256) != 0)
		FAIL("256-byte pattern matched itself");
	if (matches(buf, 255, buf, 255) != 1)
		FAIL("255-byte pattern did not match itself");
	if (matches(">", 1, buf, 255) != 1)
		FAIL("\">\" did not match a 255-byte subject");
}

struct match_case {
	const char *pattern;
	const char *subject;
	int want;
};

static const struct match_case match_cases[] = {
	{ "tool.*", "tool.call", 1 },
	{ "tool.*", "tool.reply", 1 },
	{ "tool.*", "tool.call.x", 0 },
	{ "tool.*", "tool", 0 },
	{ "tool.*", "tools.call", 0 },
	{ "tool.*", "too.call", 0 },
	{ "agent.>", "agent.a", 1 },
	{ "agent.>", "agent.a.b", 1 },
	{ "agent.>", "agent.a.b.c.d", 1 },
	{ "agent.>", "agent", 0 },
	{ "agent.>", "agents.a", 0 },
	{ "agent.>", "agent.", 0 },
	{ "agent.>", "agent..a", 0 },
	{ "*", "a", 1 },
	{ "*", "abc", 1 },
	{ "*", "a.b", 0 },
	{ ">", "a", 1 },
	{ ">", "a.b", 1 },
	{ ">", "a.b.c.d.e", 1 },
	{ ">", "x.y", 1 },
	{ "*.>", "a", 0 },
	{ "*.>", "a.b", 1 },
	{ "*.b", "a.b", 1 },
	{ "*.b", "a.c", 0 },
	{ "*.*", "a.b", 1 },
	{ "*.*", "a.b.c", 0 },
	{ "a.*.c", "a.b.c", 1 },
	{ "a.*.c", "a.b.d", 0 },
	{ "a.*.c", "a.c", 0 },
	{ "a.b", "a.b", 1 },
	{ "a.b", "a.bc", 0 },
	{ "a.bc", "a.b", 0 },
	{ "a.b", "a", 0 },
	{ "a", "a.b", 0 },
	/* invalid on either side never matches */
	{ "a.b", "a.b.", 0 },
	{ ">", "a.", 0 },
	{ ">", ".a", 0 },
	{ ">", "a..b", 0 },
	{ ">", "a b", 0 },
	{ ">", "a.*", 0 },
	{ ">", "a.>", 0 },
	{ "*", "*", 0 },
	{ "*", ">", 0 },
	{ "a.*", "a.*", 0 },
	{ "a.>", "a.>", 0 },
	{ "a.>.b", "a.x.b", 0 },
	{ "a.>.", "a.x", 0 },
	{ "a.", "a.", 0 },
	{ "a.", "a.b", 0 },
	{ "a.*.", "a.b.c", 0 },
	{ "foo*", "foo*", 0 },
	{ "foo*", "foox", 0 },
	{ "a.b ", "a.b ", 0 },
	{ "*.a b", "x.a b", 0 },
	{ "x.y.z.w", "x.y", 0 },
};

static void test_match_table(void)
{
	for (size_t i = 0; i < sizeof(match_cases) / sizeof(match_cases[0]); i++) {
		const struct match_case *c = &match_cases[i];
		size_t plen = strlen(c->pattern), slen = strlen(c->subject);
		int got = matches(c->pattern, plen, c->subject, slen);
		int ref = ref_matches(c->pattern, plen, c->subject, slen);

		if (got != c->want)
			FAIL("matches(\"%s\", \"%s\") = %d, want %d", c->pattern, c->subject, got,
			     c->want);
		if (ref != c->want)
			FAIL("reference disagrees with the table on (\"%s\", \"%s\")", c->pattern,
			     c->subject);
	}
}

/* ------------------------------------------------------------------------ */
/* Randomized cross-check                                                    */
/* ------------------------------------------------------------------------ */

#define RANDOM_PAIRS 100000
#define RANDOM_SECONDS 20

#define RANDOM_SEED 0x9e3779b97f4a7c15ull

static uint64_t rng_state = RANDOM_SEED;

/* xorshift64*, fixed seed: small, fast, and every run is the same run. */
static uint64_t rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

static size_t rng_below(size_t n)
{
	return (size_t)(rng() % n);
}

/* Any bytes from a small alphabet that includes every special byte. */
static size_t random_bytes(char *buf, size_t max)
{
	static const char alphabet[] = "ab..*> \x7f\x80";
	size_t len = rng_below(max + 1);

	for (size_t i = 0; i < len; i++)
		buf[i] = alphabet[rng_below(sizeof(alphabet) - 1)];
	return len;
}

/*
 * Mostly well-formed strings: tokens from a short list (so that subject and
 * pattern often agree), with an occasional flaw dropped in.
 */
static size_t random_tokens(char *buf, size_t max, bool pattern)
{
	static const char *const words[] = { "a", "b", "ab", "ba", "*", ">", "", "a b" };
	size_t nwords = pattern ? 6 : 4, count = 1 + rng_below(5), len = 0;

	if (rng_below(20) == 0)
		nwords = sizeof(words) / sizeof(words[0]);
	for (size_t i = 0; i < count; i++) {
		const char *w = words[rng_below(nwords)];
		size_t wlen = strlen(w);

		if (len + wlen + 1 > max)
			break;
		if (i > 0)
			buf[len++] = '.';
		memcpy(buf + len, w, wlen);
		len += wlen;
	}
	return len;
}

/* A subject or pattern near the length limit, to hit 255 vs 256 at random. */
static size_t random_long(char *buf, bool pattern)
{
	size_t len = AGENTBUS_SUBJECT_MAX - 3 + rng_below(6);

	for (size_t i = 0; i < len; i++)
		buf[i] = (i % 2) ? '.' : 'a';
	if (len % 2 == 0)
		buf[len - 1] = 'b'; /* do not end in a dot */
	if (pattern && rng_below(2))
		buf[len - 1] = '>';
	return len;
}

static size_t random_string(char *buf, size_t max, bool pattern)
{
	size_t kind = rng_below(100);

	if (kind < 15)
		return random_bytes(buf, 12);
	if (kind < 17)
		return random_long(buf, pattern);
	return random_tokens(buf, max, pattern);
}

static void show(const char *label, const char *text, size_t len)
{
	fprintf(stderr, "  %s (%zu bytes): \"", label, len);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];

		if (c > 0x20 && c < 0x7f && c != '"' && c != '\\')
			fputc(c, stderr);
		else
			fprintf(stderr, "\\x%02x", c);
	}
	fprintf(stderr, "\"\n");
}

static void test_random(void)
{
	static struct tokens scratch;
	char p[AGENTBUS_SUBJECT_MAX + 8], s[AGENTBUS_SUBJECT_MAX + 8];
	time_t deadline = time(NULL) + RANDOM_SECONDS;
	size_t done, matched = 0, valid_patterns = 0;
	int before = failures;

	for (done = 0; done < RANDOM_PAIRS && failures - before < 10; done++) {
		size_t plen = random_string(p, 24, true);
		size_t slen = random_string(s, 24, false);
		int want = ref_matches(p, plen, s, slen);
		int got = matches(p, plen, s, slen);
		int want_p = ref_pattern_ok(p, plen, &scratch) ? 0 : AGENTBUS_E_INVALID;
		int want_s = ref_subject_ok(s, slen, &scratch) ? 0 : AGENTBUS_E_INVALID;

		if (got != want) {
			FAIL("random: matches = %d, reference = %d", got, want);
			show("pattern", p, plen);
			show("subject", s, slen);
		}
		if (pattern_check(p, plen) != want_p) {
			FAIL("random: pattern_check disagrees with the reference");
			show("pattern", p, plen);
		}
		if (subject_check(s, slen) != want_s) {
			FAIL("random: subject_check disagrees with the reference");
			show("subject", s, slen);
		}
		/* a valid subject is also a valid pattern that matches exactly itself */
		if (want_s == 0 && (pattern_check(s, slen) != 0 || matches(s, slen, s, slen) != 1)) {
			FAIL("random: a valid subject is not a pattern matching itself");
			show("subject", s, slen);
		}
		matched += (size_t)want;
		valid_patterns += want_p == 0;
		if ((done & 1023) == 0 && time(NULL) > deadline)
			break;
	}
	printf("random: %zu pairs (seed %#llx), %zu valid patterns, %zu matches\n", done,
	       (unsigned long long)RANDOM_SEED, valid_patterns, matched);
	/* the generator must actually exercise the matching path */
	if (done >= 10000 && matched < done / 50)
		FAIL("random: only %zu of %zu pairs matched; generator is too weak", matched, done);
}

int main(void)
{
	test_check_table();
	test_exact_lengths();
	test_max_length();
	test_match_table();
	test_random();
	if (failures) {
		fprintf(stderr, "test_subject: %d failure(s)\n", failures);
		return 1;
	}
	printf("test_subject: pass\n");
	return 0;
}
