/*
 * lines.c — the line splitter behind ingest_tail (ingest_reader has its own
 * pull-based scanner with the same rules).
 *
 * Design: complete lines inside a fed chunk are handed out as views straight
 * into the caller's data; nothing is copied unless a partial line is pending.
 * Only the unterminated tail of a chunk is copied into s->buf, so the copy
 * cost is at most one line per chunk.
 *
 * Invariants:
 *  - s->len <= s->max_line and s->cap <= s->max_line + 1: the pending buffer
 *    never grows past the longest line we hand out whole (+1 spare byte).
 *  - s->skipping implies s->len == 0: an over-long line has already been
 *    handed out (its first max_line bytes) and counted in too_long; the rest
 *    up to the next '\n' is dropped.
 *  - Every line handed out is at most max_line bytes and never contains '\n'.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/ingest.h"

/* First allocation of the pending buffer; it doubles up to max_line + 1. */
#define LINES_MIN_CAP 4096

int ingest_lines_init(struct ingest_lines *s, size_t max_line)
{
	if (max_line == 0)
		max_line = INGEST_DEFAULT_MAX_LINE;
	if (max_line > SIZE_MAX / 2)
		return -EINVAL;
	*s = (struct ingest_lines){ .max_line = max_line };
	return 0;
}

void ingest_lines_free(struct ingest_lines *s)
{
	if (!s)
		return;
	free(s->buf);
	s->buf = NULL;
	s->len = s->cap = 0;
	s->skipping = false;
}

/* Make room for need bytes pending (need <= max_line). */
static int reserve(struct ingest_lines *s, size_t need)
{
	if (need <= s->cap)
		return 0;
	size_t limit = s->max_line + 1;
	size_t cap = s->cap ? s->cap : LINES_MIN_CAP;
	while (cap < need && cap < limit)
		cap = cap > limit / 2 ? limit : cap * 2;
	if (cap > limit)
		cap = limit;
	char *p = realloc(s->buf, cap);
	if (!p)
		return -ENOMEM;
	s->buf = p;
	s->cap = cap;
	return 0;
}

/* The line is cut: hand out its first max_line bytes, skip to the next '\n'. */
static void emit_cut(struct ingest_lines *s, const char *p, ingest_line_fn fn, void *ctx)
{
	s->lines++;
	s->too_long++;
	fn(ctx, p, s->max_line);
}

/* The pending line cannot be kept: it is lost, and so is the rest of it up to
 * its '\n'. It is counted with the cut lines (the only per-line loss counter
 * the interface has). */
static int drop_pending(struct ingest_lines *s)
{
	s->len = 0;
	s->too_long++;
	return -ENOMEM;
}

int ingest_lines_feed(struct ingest_lines *s, const char *data, size_t len, ingest_line_fn fn,
		      void *ctx)
{
	const char *p = data, *end = data + len;
	const size_t max = s->max_line;
	int rc = 0;

	if (len == 0)
		return 0;

	if (s->skipping) {
		const char *nl = memchr(p, '\n', len);
		if (!nl)
			return 0;
		s->skipping = false;
		p = nl + 1;
	} else if (s->len) {
		/* Complete the pending line first: the only copying path. */
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		size_t take = s->len + n > max ? max - s->len : n;
		if (reserve(s, s->len + take) < 0) {
			rc = drop_pending(s);
		} else {
			memcpy(s->buf + s->len, p, take);
			s->len += take;
			if (take < n) {
				s->len = 0;
				emit_cut(s, s->buf, fn, ctx);
			} else if (nl) {
				size_t l = s->len;
				s->len = 0;
				s->lines++;
				fn(ctx, s->buf, l);
			}
		}
		if (!nl) {
			/* Still pending, or cut/dropped: then skip to its end. */
			s->skipping = s->len == 0;
			return rc;
		}
		p = nl + 1;
	}

	/* The hot loop: views into the caller's data, no copy. */
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			break;
		size_t n = (size_t)(nl - p);
		if (n > max) {
			emit_cut(s, p, fn, ctx);
		} else {
			s->lines++;
			fn(ctx, p, n);
		}
		p = nl + 1;
	}
	if (p == end)
		return rc;

	/* Unterminated tail: keep it (or cut it now if it is already too long). */
	size_t n = (size_t)(end - p);
	if (n > max) {
		emit_cut(s, p, fn, ctx);
		s->skipping = true;
		return rc;
	}
	if (reserve(s, n) < 0) {
		s->skipping = true;
		return drop_pending(s);
	}
	memcpy(s->buf, p, n);
	s->len = n;
	return rc;
}

void ingest_lines_flush(struct ingest_lines *s, ingest_line_fn fn, void *ctx)
{
	if (s->skipping) {
		s->skipping = false;
		return;
	}
	if (s->len == 0)
		return;
	size_t l = s->len;
	s->len = 0;
	s->lines++;
	fn(ctx, s->buf, l);
}
