/*
 * fuzz_lines.c — the line splitter against a reference.
 *
 * Input: byte 0 picks max_line (small, so cuts are common, or the default);
 * bytes 1..8 are a cycle of chunk sizes; the rest is fed in those chunks, each
 * a fresh heap copy freed after the call (so a view kept too long, or a read
 * past the chunk, shows under ASan). Every line handed out is checked at once
 * against a plain reference split of the whole input (each line cut to
 * max_line), so the result must not depend on the chunking. Invariants: no
 * line longer than max_line; bytes of lines + newlines + skipped bytes equal
 * the input; the counters match; the pending buffer stays within max_line + 1.
 * Any violation abort()s.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/ingest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HEADER 9

struct ref {
	const char *in;
	size_t len;
	size_t pos; /* start of the next expected line in in */
	size_t max;
	uint64_t lines, cut;
};

static void fail(const char *what, const struct ref *r)
{
	fprintf(stderr, "fuzz_lines: %s (max_line %zu, input offset %zu of %zu)\n", what, r->max,
		r->pos, r->len);
	abort();
}

static void check_line(void *ctx, const char *line, size_t len)
{
	struct ref *r = ctx;
	if (r->pos >= r->len)
		fail("a line after the end of the input", r);
	const char *start = r->in + r->pos;
	const char *nl = memchr(start, '\n', r->len - r->pos);
	size_t whole = nl ? (size_t)(nl - start) : r->len - r->pos;
	size_t want = whole > r->max ? r->max : whole;
	if (len > r->max)
		fail("a line longer than max_line", r);
	if (len != want)
		fail("a line of the wrong length", r);
	if (len && memcmp(line, start, len) != 0)
		fail("a line with the wrong bytes", r);
	if (memchr(line, '\n', len))
		fail("a '\\n' inside a line", r);
	r->lines++;
	r->cut += whole > r->max;
	r->pos += whole + (nl ? 1 : 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < HEADER)
		return 0;
	struct ref r = {
		.in = (const char *)data + HEADER,
		.len = size - HEADER,
		.max = data[0] < 224 ? 1 + data[0] % 48 : INGEST_DEFAULT_MAX_LINE,
	};
	size_t chunks[8];
	for (int i = 0; i < 8; i++)
		chunks[i] = data[1 + i] == 0 ? 4096 : 1 + data[1 + i] % 64;

	struct ingest_lines s = { 0 };
	if (ingest_lines_init(&s, r.max) != 0)
		abort();
	size_t off = 0;
	for (int i = 0; off < r.len; i = (i + 1) % 8) {
		size_t n = chunks[i] < r.len - off ? chunks[i] : r.len - off;
		char *copy = malloc(n);
		if (!copy)
			abort();
		memcpy(copy, r.in + off, n);
		if (ingest_lines_feed(&s, copy, n, check_line, &r) != 0)
			fail("feed failed", &r);
		free(copy);
		off += n;
		if (s.len > s.max_line || s.cap > s.max_line + 1)
			fail("the pending buffer outgrew max_line + 1", &r);
		if (s.skipping && s.len)
			fail("skipping with bytes pending", &r);
	}
	ingest_lines_flush(&s, check_line, &r);

	/* Everything accounted for: lines + newlines + skipped == input. */
	if (r.pos != r.len)
		fail("input left over after the flush", &r);
	if (s.lines != r.lines || s.too_long != r.cut)
		fail("counters differ from the reference", &r);
	if (s.len != 0 || s.skipping)
		fail("state left after the flush", &r);
	ingest_lines_free(&s);
	return 0;
}
