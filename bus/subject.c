/*
 * subject.c - subject and pattern validation and NATS-style matching.
 *
 * A subject is 1-255 bytes of '.'-separated tokens. Every token is non-empty
 * and holds no whitespace or control byte (<= 0x20, 0x7f) and no '*' or '>'.
 * Bytes >= 0x80 are allowed, so UTF-8 subjects work.
 *
 * A pattern has the same shape, except that a token may be exactly "*" (any
 * one token) or, as the last token only, exactly ">" (one or more tokens).
 *
 * Every length here is exact: these functions never call strlen() and never
 * read past the length they are given, because subjects read from a ring are
 * not NUL-terminated. A length of 0 is invalid.
 *
 * agentbus_subject_matches() runs once per record on the read path, so it
 * validates and matches in one pass, allocates nothing and stops at the first
 * byte that decides the answer.
 */
#include <stdbool.h>
#include <stddef.h>

#include "agentbus.h"

/* True for a byte that may appear inside a literal token. */
static inline bool token_byte_ok(unsigned char c)
{
	return c > 0x20 && c != 0x7f && c != '.' && c != '*' && c != '>';
}

/* True if @len is a length a subject or pattern may have. */
static inline bool length_ok(const char *text, size_t len)
{
	return text != NULL && len >= 1 && len <= AGENTBUS_SUBJECT_MAX;
}

/*
 * True if @s[0, @len) is a well-formed run of literal tokens: non-empty, no
 * empty token, no leading or trailing dot, no wildcard byte. The caller has
 * bounded @len already; this is the tail check after a '>' as well as the
 * whole of agentbus_subject_check().
 */
static bool literal_tokens_ok(const char *s, size_t len)
{
	size_t token_len = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (token_len == 0)
				return false;
			token_len = 0;
		} else if (token_byte_ok(c)) {
			token_len++;
		} else {
			return false;
		}
	}
	return token_len > 0;
}

int agentbus_subject_check(const char *subject, size_t len)
{
	if (!length_ok(subject, len) || !literal_tokens_ok(subject, len))
		return AGENTBUS_E_INVALID;
	return 0;
}

/*
 * Checks a pattern token by token. A token holding '*' or '>' must be that
 * byte alone, and a '>' token must end the pattern. Returns 0 or
 * AGENTBUS_E_INVALID.
 */
int agentbus_pattern_check(const char *pattern, size_t len)
{
	size_t start = 0;

	if (!length_ok(pattern, len))
		return AGENTBUS_E_INVALID;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && pattern[i] != '.')
			continue;
		/* [start, i) is one token */
		if (i == start)
			return AGENTBUS_E_INVALID;
		if (i - start == 1 && pattern[start] == '*') {
			/* a single-token wildcard */
		} else if (i - start == 1 && pattern[start] == '>') {
			if (i != len)
				return AGENTBUS_E_INVALID;
		} else {
			for (size_t j = start; j < i; j++)
				if (!token_byte_ok((unsigned char)pattern[j]))
					return AGENTBUS_E_INVALID;
		}
		start = i + 1;
	}
	return 0;
}

/*
 * Advance *@pos over one literal subject token of @s (up to the next dot or
 * @len). Returns false if the token is empty or holds a forbidden byte.
 */
static inline bool skip_subject_token(const char *s, size_t len, size_t *pos)
{
	size_t i = *pos;

	while (i < len && s[i] != '.') {
		if (!token_byte_ok((unsigned char)s[i]))
			return false;
		i++;
	}
	if (i == *pos)
		return false;
	*pos = i;
	return true;
}

/*
 * Compare one literal pattern token at *@pi with the subject token at *@si,
 * byte by byte; both cursors end on the dot (or end) after their token.
 * Equal bytes that pass token_byte_ok() make the subject token valid too.
 */
static inline bool match_literal_token(const char *p, size_t plen, size_t *pi,
				       const char *s, size_t slen, size_t *si)
{
	size_t i = *pi, j = *si;

	while (i < plen && p[i] != '.') {
		if (j >= slen || p[i] != s[j] || !token_byte_ok((unsigned char)p[i]))
			return false;
		i++;
		j++;
	}
	/* empty pattern token, or the subject token goes on */
	if (i == *pi || (j < slen && s[j] != '.'))
		return false;
	*pi = i;
	*si = j;
	return true;
}

/*
 * 1 if @subject matches @pattern, else 0. Both are checked on the way: an
 * invalid pattern or subject never matches. Walks both strings once, a token
 * of each at a time; both cursors always stand at the start of a token.
 */
int agentbus_subject_matches(const char *pattern, size_t pattern_len, const char *subject,
			     size_t subject_len)
{
	const char *p = pattern, *s = subject;
	size_t plen = pattern_len, slen = subject_len;
	size_t pi = 0, si = 0;

	if (!length_ok(p, plen) || !length_ok(s, slen))
		return 0;
	for (;;) {
		bool one_byte = pi + 1 == plen || (pi + 1 < plen && p[pi + 1] == '.');

		if (one_byte && p[pi] == '>') {
			/* must be the last pattern token; the rest of the subject must be
			 * one or more valid tokens (si < slen holds, see below) */
			return pi + 1 == plen && literal_tokens_ok(s + si, slen - si);
		}
		if (one_byte && p[pi] == '*') {
			pi++;
			if (!skip_subject_token(s, slen, &si))
				return 0;
		} else if (!match_literal_token(p, plen, &pi, s, slen, &si)) {
			return 0;
		}
		/* both cursors are on a dot or at the end */
		if (pi == plen || si == slen)
			return pi == plen && si == slen;
		pi++;
		si++;
		/* a trailing dot leaves an empty last token; this keeps the loop
		 * invariant pi < plen && si < slen */
		if (pi == plen || si == slen)
			return 0;
	}
}
