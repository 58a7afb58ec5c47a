/*
 * fuzz_multiline.c — the multi-line record assembler against a reference.
 *
 * Input: byte 0 picks the options —
 *   bit 0     mode: start (0) or continuation (1)
 *   bits 1-2  which regex of that mode (each has a plain C twin below)
 *   bits 3-4  max_lines: default, 1, 2, 5
 *   bits 5-6  max_bytes: default, 1, 16, 64
 *   bit 7     time moves: each line is read 0..3 x 400 us after the one before
 *             (by its last byte) with a 1000 us timeout, and every other line
 *             the "timer" flushes first when the deadline has passed; else all
 *             lines are read at time 0.
 * The rest is split on '\n' into lines (a last line without '\n' counts when
 * not empty), each fed as a fresh heap copy freed after the call, so a view
 * kept too long shows under ASan.
 *
 * A reference model of the documented rules runs in lockstep and predicts
 * every record (its bytes, first read time, and whether it was cut) and the
 * deadline after each line. Checked: each record equals the prediction, so
 * every input line is in exactly one record or counted as cut; records stay
 * within max_bytes and max_lines; the previous record's bytes are intact
 * until the next one is handed out (double buffering); the counters match.
 * Any violation abort()s.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/ingest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TIMEOUT_US 1000

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool pfx(const char *l, size_t n, const char *p)
{
	size_t k = strlen(p);
	return n >= k && memcmp(l, p, k) == 0;
}

/* The regexes and their twins. */
static const char *const start_re[4] = { "^\\d{4}-\\d{2}-\\d{2} ", "^S", "^$", "x" };
static const char *const cont_re[4] = { "^\\t", "^[ \\t]", "^(\\t|DETAIL:|HINT:)", "^$" };

static bool twin(bool cont, unsigned which, const char *l, size_t n)
{
	if (!cont) {
		switch (which) {
		case 0:
			if (n < 11)
				return false;
			for (size_t i = 0; i < 10; i++) {
				bool dash = i == 4 || i == 7;
				if (dash ? l[i] != '-' : !is_digit(l[i]))
					return false;
			}
			return l[10] == ' ';
		case 1:
			return n && l[0] == 'S';
		case 2:
			return n == 0;
		default:
			return n && memchr(l, 'x', n);
		}
	}
	switch (which) {
	case 0:
		return n && l[0] == '\t';
	case 1:
		return n && (l[0] == ' ' || l[0] == '\t');
	case 2:
		return (n && l[0] == '\t') || pfx(l, n, "DETAIL:") || pfx(l, n, "HINT:");
	default:
		return n == 0;
	}
}

struct ref {
	bool cont;
	unsigned which;
	size_t max_lines, max_bytes;
	int64_t timeout;

	/* The reference's pending record. */
	bool pending, cut;
	char *rec;
	size_t len, nlines;
	int64_t first_us, last_us;

	/* A record the reference closed and the assembler must hand out next. */
	bool expect;
	char *want;
	size_t want_len;
	int64_t want_first;
	bool want_cut;

	uint64_t records, lines, cut_lines, cut_records;

	/* The record handed out last, to check it stays intact. */
	const char *held;
	char *held_copy;
	size_t held_len;

	const struct ingest_multiline *m;
	size_t line_no;
};

static void fail(const char *what, const struct ref *r)
{
	fprintf(stderr,
		"fuzz_multiline: %s (line %zu, %s #%u, max_lines %zu, max_bytes %zu)\n",
		what, r->line_no, r->cont ? "continuation" : "start", r->which, r->max_lines,
		r->max_bytes);
	abort();
}

static void ref_close(struct ref *r)
{
	if (!r->pending)
		return;
	if (r->expect)
		fail("the reference closed two records in one step", r);
	r->expect = true;
	memcpy(r->want, r->rec, r->len);
	r->want_len = r->len;
	r->want_first = r->first_us;
	r->want_cut = r->cut;
	r->records++;
	r->cut_records += r->cut;
	r->pending = r->cut = false;
	r->len = r->nlines = 0;
}

static void ref_step(struct ref *r, const char *l, size_t n, int64_t t)
{
	r->lines++;
	if (r->pending && t >= r->last_us + r->timeout)
		ref_close(r);
	bool match = twin(r->cont, r->which, l, n);
	bool continues = r->pending && (r->cont ? match : !match);
	if (continues) {
		if (r->cut || r->nlines == r->max_lines || r->len + 1 + n > r->max_bytes) {
			r->cut = true;
			r->cut_lines++;
		} else {
			r->rec[r->len] = '\n';
			memcpy(r->rec + r->len + 1, l, n);
			r->len += 1 + n;
			r->nlines++;
		}
	} else {
		ref_close(r);
		r->pending = true;
		r->first_us = t;
		r->nlines = 1;
		r->len = n;
		if (n > r->max_bytes) {
			r->len = r->max_bytes;
			r->cut = true;
		}
		memcpy(r->rec, l, r->len);
	}
	r->last_us = t;
}

static void check_held(const struct ref *r)
{
	if (r->held && r->held_len && memcmp(r->held, r->held_copy, r->held_len) != 0)
		fail("the previous record changed before the next was handed out", r);
}

static void got_record(void *ctx, const char *rec, size_t len, int64_t first_us)
{
	struct ref *r = ctx;
	check_held(r);
	if (!rec)
		fail("a NULL record", r);
	if (!r->expect)
		fail("a record the reference did not close", r);
	if (len > r->max_bytes)
		fail("a record longer than max_bytes", r);
	if (len != r->want_len || (len && memcmp(rec, r->want, len) != 0))
		fail("a record with the wrong bytes", r);
	if (first_us != r->want_first)
		fail("a record with the wrong first read time", r);
	size_t seps = 0;
	for (size_t i = 0; i < len; i++)
		seps += rec[i] == '\n';
	if (seps + 1 > r->max_lines)
		fail("a record with more than max_lines lines", r);
	if (r->m && ingest_multiline_stats(r->m)->cut_records != r->cut_records)
		fail("cut_records differs from the reference", r);
	r->expect = false;
	memcpy(r->held_copy, rec, len);
	r->held = rec;
	r->held_len = len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t lines_opt[4] = { 0, 1, 2, 5 };
	static const size_t bytes_opt[4] = { 0, 1, 16, 64 };
	if (size < 1)
		return 0;
	uint8_t o = data[0];
	const char *in = (const char *)data + 1;
	size_t inlen = size - 1;
	bool timed = o & 0x80;

	struct ingest_multiline_opts opts = {
		.max_lines = lines_opt[(o >> 3) & 3],
		.max_bytes = bytes_opt[(o >> 5) & 3],
		.timeout_us = timed ? TIMEOUT_US : 0,
	};
	struct ref r = {
		.cont = o & 1,
		.which = (o >> 1) & 3,
		.max_lines = opts.max_lines ? opts.max_lines : 500,
		.max_bytes = opts.max_bytes ? opts.max_bytes : 1024 * 1024,
		.timeout = timed ? TIMEOUT_US : 500 * 1000,
	};
	if (r.cont)
		opts.continuation = cont_re[r.which];
	else
		opts.start = start_re[r.which];

	/* A record never exceeds the input (+ nothing): size the buffers by it. */
	r.rec = malloc(inlen + 1);
	r.want = malloc(inlen + 1);
	r.held_copy = malloc(inlen + 1);
	char err[256];
	struct ingest_multiline *m = ingest_multiline_new(&opts, err, sizeof err);
	if (!r.rec || !r.want || !r.held_copy || !m) {
		fprintf(stderr, "fuzz_multiline: setup: %s\n", m ? "out of memory" : err);
		abort();
	}
	r.m = m;
	if (ingest_multiline_deadline(m) != INT64_MAX)
		fail("a deadline with nothing pending", &r);

	int64_t now = 0;
	size_t off = 0;
	while (off < inlen) {
		const char *l = in + off;
		const char *nl = memchr(l, '\n', inlen - off);
		size_t n = nl ? (size_t)(nl - l) : inlen - off;
		off += n + (nl ? 1 : 0);
		r.line_no++;
		if (timed)
			now += (n ? (uint8_t)l[n - 1] % 4 : 1) * 400;

		ref_step(&r, l, n, now);
		/* The caller's timer, on every other line. */
		if (timed && r.line_no % 2 == 0 && now >= ingest_multiline_deadline(m))
			ingest_multiline_flush(m, got_record, &r);

		char *copy = malloc(n ? n : 1);
		if (!copy)
			abort();
		memcpy(copy, l, n);
		ingest_multiline_feed(m, n ? copy : NULL, n, now, got_record, &r);
		memset(copy, '#', n);
		free(copy);

		if (r.expect)
			fail("a record the reference closed was not handed out", &r);
		check_held(&r);
		int64_t want_dl = r.pending ? r.last_us + r.timeout : INT64_MAX;
		if (ingest_multiline_deadline(m) != want_dl)
			fail("a deadline that differs from the reference", &r);
	}
	ref_close(&r);
	ingest_multiline_flush(m, got_record, &r);
	if (r.expect)
		fail("the last record was not flushed", &r);
	if (ingest_multiline_deadline(m) != INT64_MAX)
		fail("a deadline after the flush", &r);
	ingest_multiline_flush(m, got_record, &r); /* nothing more */

	const struct ingest_multiline_stats *st = ingest_multiline_stats(m);
	if (st->records != r.records || st->lines != r.lines || st->cut_lines != r.cut_lines ||
	    st->cut_records != r.cut_records)
		fail("counters differ from the reference", &r);
	check_held(&r);
	ingest_multiline_free(m);
	free(r.rec);
	free(r.want);
	free(r.held_copy);
	return 0;
}
