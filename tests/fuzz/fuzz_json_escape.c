/*
 * fuzz_json_escape.c — kl_json_append_str on arbitrary bytes must produce a
 * strict JSON string literal in valid UTF-8, and must give back the input
 * unchanged (once unescaped) whenever the input was valid UTF-8.
 *
 * The checks are written independently of kl.c (a decoder of code points
 * rather than a table of byte ranges) so that one mistake cannot hide in
 * both; any violation abort()s.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/kl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, size_t at)
{
	fprintf(stderr, "fuzz_json_escape: %s at byte %zu\n", what, at);
	abort();
}

/* Decode one UTF-8 code point at s[0..n); returns its length, or 0 if the
 * sequence is ill-formed (overlong, surrogate, > U+10FFFF, truncated). */
static size_t decode(const uint8_t *s, size_t n, uint32_t *cp)
{
	uint8_t c = s[0];
	size_t len;
	uint32_t v, min;

	if (c < 0x80) {
		*cp = c;
		return 1;
	} else if ((c & 0xe0) == 0xc0) {
		len = 2, v = c & 0x1f, min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		len = 3, v = c & 0x0f, min = 0x800;
	} else if ((c & 0xf8) == 0xf0) {
		len = 4, v = c & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		v = v << 6 | (s[i] & 0x3f);
	}
	if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return 0;
	*cp = v;
	return len;
}

static bool valid_utf8(const uint8_t *s, size_t n)
{
	uint32_t cp;
	for (size_t i = 0; i < n;) {
		size_t k = decode(s + i, n - i, &cp);
		if (!k)
			return false;
		i += k;
	}
	return true;
}

static int hexval(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static void put_utf8(struct kl_buf *b, uint32_t cp)
{
	uint8_t o[4];
	size_t n;
	if (cp < 0x80) {
		o[0] = (uint8_t)cp, n = 1;
	} else if (cp < 0x800) {
		o[0] = (uint8_t)(0xc0 | cp >> 6), o[1] = (uint8_t)(0x80 | (cp & 0x3f)), n = 2;
	} else {
		o[0] = (uint8_t)(0xe0 | cp >> 12), o[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
		o[2] = (uint8_t)(0x80 | (cp & 0x3f)), n = 3;
	}
	if (kl_buf_append(b, o, n) < 0)
		abort();
}

/* Check that j[0..n) is one JSON string literal (RFC 8259 §7) and unescape it
 * into out. Surrogate escapes are not expected from the escaper: rejected. */
static void check_json_string(const uint8_t *j, size_t n, struct kl_buf *out)
{
	if (n < 2 || j[0] != '"' || j[n - 1] != '"')
		fail("not enclosed in quotes", 0);
	if (!valid_utf8(j, n))
		fail("output is not valid UTF-8", 0);
	for (size_t i = 1; i < n - 1;) {
		uint8_t c = j[i];
		if (c < 0x20)
			fail("raw control character", i);
		if (c == '"')
			fail("unescaped quote", i);
		if (c != '\\') {
			uint32_t cp;
			size_t k = decode(j + i, n - 1 - i, &cp);
			if (!k)
				fail("invalid UTF-8", i);
			if (kl_buf_append(out, j + i, k) < 0)
				abort();
			i += k;
			continue;
		}
		if (i + 1 >= n - 1)
			fail("dangling backslash", i);
		uint8_t e = j[i + 1];
		static const char simple[] = "\"\\/bfnrt";
		static const char value[] = "\"\\/\b\f\n\r\t";
		const char *p = e ? strchr(simple, e) : NULL;
		if (p) {
			if (kl_buf_append(out, &value[p - simple], 1) < 0)
				abort();
			i += 2;
			continue;
		}
		if (e != 'u' || i + 6 > n - 1)
			fail("bad escape", i);
		uint32_t cp = 0;
		for (size_t k = 2; k < 6; k++) {
			int h = hexval(j[i + k]);
			if (h < 0)
				fail("bad \\u escape", i);
			cp = cp << 4 | (uint32_t)h;
		}
		if (cp >= 0xd800 && cp <= 0xdfff)
			fail("surrogate escape", i);
		put_utf8(out, cp);
		i += 6;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kl_buf b = { 0 }, back = { 0 };

	/* a prefix already in the buffer must be kept as is */
	if (kl_buf_append(&b, "x", 1) < 0)
		abort();
	if (kl_json_append_str(&b, (const char *)data, size) < 0)
		abort();
	if (b.p[0] != 'x' || b.p[b.len] != '\0')
		fail("prefix or terminator lost", 0);
	check_json_string((const uint8_t *)b.p + 1, b.len - 1, &back);
	if (valid_utf8(data, size) &&
	    (back.len != size || (size && memcmp(back.p, data, size) != 0)))
		fail("valid input not preserved", 0);
	/* the output never grows more than 6x (+ quotes) */
	if (b.len - 1 > 6 * size + 2)
		fail("output too long", 0);
	kl_buf_free(&back);
	kl_buf_free(&b);
	return 0;
}
