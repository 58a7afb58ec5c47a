/*
 * multiline.c — the multi-line record assembler: lines in, records out.
 *
 * Design:
 * - One regex, `start` or `continuation`, compiled once without UTF (a line is
 *   bytes: NULs and invalid UTF-8 are ordinary) and JIT-compiled; the
 *   interpreter is the fallback, with a warning. A regex that turns UTF on
 *   itself with (*UTF) is recompiled with PCRE2_MATCH_INVALID_UTF, since
 *   pcre2_jit_match does no UTF check and invalid input must never be undefined
 *   behaviour. One match data (a single pair: only "did it match" is asked),
 *   one match context with a match limit and one JIT stack are allocated here
 *   and reused for every line. A match that fails for any reason other than
 *   "no match" (the match limit, in a pathological user regex) counts as no
 *   match.
 * - Grouping. With `start`: a matching line begins a record; any other line
 *   appends to the pending one, or begins a record by itself when nothing is
 *   pending (a line is never dropped for lack of a start). With
 *   `continuation`: a matching line appends to the pending record (or begins
 *   one when nothing is pending); any other line begins a record.
 * - Time. The deadline of the pending record is the read time of its last
 *   line (dropped lines included: they still belong to it) + timeout. The
 *   caller's timer calls ingest_multiline_flush when it passes; a line fed at
 *   or after the deadline first hands out the pending record too, so the
 *   grouping does not depend on whether the timer or the read ran first on a
 *   busy loop.
 * - Caps. A record holds at most max_lines lines and max_bytes bytes. A line
 *   that does not fit is dropped with every later line of the same record
 *   (counted in cut_lines, the record once in cut_records); the first line of
 *   a record is never dropped: longer than max_bytes, it is truncated to
 *   max_bytes (the record counts as cut, the line does not). An allocation
 *   failure while growing is handled like the byte cap (logged once).
 * - Buffers. The record is assembled in one of two buffers; when it is handed
 *   out the assembler switches to the other, so a record stays valid until the
 *   next one has been handed out (replay holds one record as the head of its
 *   merge while it reads on). Each buffer grows by doubling to the largest
 *   record seen and never past max_bytes; in steady state nothing allocates.
 *
 * Invariants: len <= max_bytes; cap <= max_bytes; nlines <= max_lines;
 * pending == false implies len == 0, nlines == 0 and cut == false.
 * Stats: lines counts every line fed, so lines == (lines inside records handed
 * out or pending) + cut_lines.
 *
 * Not re-entrant: fn must not feed or flush the assembler that calls it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pcre2.h>

#include "common/kl_regex.h"
#include "ingest/ingest.h"

#define ML_DEFAULT_TIMEOUT_US (500 * 1000)
#define ML_DEFAULT_MAX_LINES 500
#define ML_DEFAULT_MAX_BYTES (1024 * 1024)
/* First allocation of a record buffer; it doubles up to max_bytes. */
#define ML_MIN_CAP 4096
/* Backtracking steps one line may take before it counts as unmatched. */
#define ML_MATCH_LIMIT 1000000
#define ML_JIT_STACK_MAX (1024 * 1024)

struct ml_buf {
	char *p;
	size_t cap;
};

struct ingest_multiline {
	pcre2_code *code;
	pcre2_match_data *md;
	pcre2_match_context *mctx;
	pcre2_jit_stack *jstack;
	bool jit;
	bool is_start; /* the regex is `start` (else `continuation`) */
	bool warned_nomem;

	int64_t timeout_us;
	size_t max_lines;
	size_t max_bytes;

	struct ml_buf buf[2];
	unsigned cur; /* buffer the pending record is assembled in */

	/* The pending record. */
	bool pending;
	bool cut; /* a line was dropped or truncated */
	size_t len;
	size_t nlines;
	int64_t first_us;
	int64_t last_us;

	struct ingest_multiline_stats st;
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Compile what (for messages: "start" or "continuation"). */
static pcre2_code *compile(const char *what, const char *regex, uint32_t opts, char *err,
			   size_t errlen)
{
	int ec;
	PCRE2_SIZE eo;
	pcre2_code *code = pcre2_compile((PCRE2_SPTR)regex, PCRE2_ZERO_TERMINATED, opts, &ec, &eo,
					 NULL);
	if (!code) {
		PCRE2_UCHAR msg[256];
		if (pcre2_get_error_message(ec, msg, sizeof msg) < 0)
			snprintf((char *)msg, sizeof msg, "error %d", ec);
		set_err(err, errlen, "%s: %s at offset %zu", what, (const char *)msg, (size_t)eo);
	}
	return code;
}

struct ingest_multiline *ingest_multiline_new(const struct ingest_multiline_opts *o, char *err,
					      size_t errlen)
{
	struct ingest_multiline *m = NULL;
	const char *what, *regex;
	uint32_t all = 0;

	if (err && errlen)
		err[0] = '\0';
	if (!o) {
		set_err(err, errlen, "no options given");
		return NULL;
	}
	if (o->start && o->continuation) {
		set_err(err, errlen,
			"both start and continuation given; give exactly one (start: a line matching it begins a record; continuation: a line matching it continues one)");
		return NULL;
	}
	if (!o->start && !o->continuation) {
		set_err(err, errlen,
			"neither start nor continuation given; give exactly one (start: a line matching it begins a record; continuation: a line matching it continues one)");
		return NULL;
	}
	if (o->timeout_us < 0) {
		set_err(err, errlen, "timeout: must not be negative");
		return NULL;
	}
	what = o->start ? "start" : "continuation";
	regex = o->start ? o->start : o->continuation;

	m = calloc(1, sizeof *m);
	if (!m)
		goto nomem;
	m->is_start = o->start != NULL;
	m->timeout_us = o->timeout_us ? o->timeout_us : ML_DEFAULT_TIMEOUT_US;
	m->max_lines = o->max_lines ? o->max_lines : ML_DEFAULT_MAX_LINES;
	m->max_bytes = o->max_bytes ? o->max_bytes : ML_DEFAULT_MAX_BYTES;

	m->code = compile(what, regex, 0, err, errlen);
	if (!m->code)
		goto fail;
	pcre2_pattern_info(m->code, PCRE2_INFO_ALLOPTIONS, &all);
	if ((all & PCRE2_UTF) && !(all & PCRE2_MATCH_INVALID_UTF)) {
		pcre2_code_free(m->code);
		m->code = compile(what, regex, PCRE2_MATCH_INVALID_UTF, err, errlen);
		if (!m->code)
			goto fail;
	}

	char why[256];
	m->jit = kl_regex_jit(m->code, why, sizeof why);
	if (!m->jit)
		kl_log(KL_LOG_WARN,
		       "multiline %s '%s': PCRE2 JIT not available (%s); using the interpreter, which is several times slower",
		       what, regex, why);

	m->md = pcre2_match_data_create(1, NULL);
	m->mctx = pcre2_match_context_create(NULL);
	if (!m->md || !m->mctx)
		goto nomem;
	pcre2_set_match_limit(m->mctx, ML_MATCH_LIMIT);
	if (m->jit) {
		m->jstack = pcre2_jit_stack_create(32 * 1024, ML_JIT_STACK_MAX, NULL);
		if (!m->jstack)
			goto nomem;
		pcre2_jit_stack_assign(m->mctx, NULL, m->jstack);
	}
	return m;

nomem:
	set_err(err, errlen, "out of memory");
fail:
	ingest_multiline_free(m);
	return NULL;
}

void ingest_multiline_free(struct ingest_multiline *m)
{
	if (!m)
		return;
	pcre2_jit_stack_free(m->jstack);
	pcre2_match_context_free(m->mctx);
	pcre2_match_data_free(m->md);
	pcre2_code_free(m->code);
	free(m->buf[0].p);
	free(m->buf[1].p);
	free(m);
}

static bool matches(struct ingest_multiline *m, const char *line, size_t len)
{
	/* PCRE2 before 10.43 rejects a NULL subject even of length 0. */
	PCRE2_SPTR s = (PCRE2_SPTR)(line ? line : "");
	int rc = m->jit ? pcre2_jit_match(m->code, s, len, 0, 0, m->md, m->mctx)
			: pcre2_match(m->code, s, len, 0, 0, m->md, m->mctx);
	return rc >= 0;
}

/* Hand out the pending record and switch buffers. The state is reset before
 * fn runs, so the record fn sees lives in the buffer we no longer write. */
static void emit(struct ingest_multiline *m, ingest_record_fn fn, void *ctx)
{
	static const char empty[1] = "";
	const char *rec = m->buf[m->cur].p ? m->buf[m->cur].p : empty;
	size_t len = m->len;
	int64_t first = m->first_us;

	m->st.records++;
	if (m->cut)
		m->st.cut_records++;
	m->cur ^= 1u;
	m->pending = false;
	m->cut = false;
	m->len = 0;
	m->nlines = 0;
	if (fn)
		fn(ctx, rec, len, first);
}

/* Make the current buffer hold at least need bytes (need <= max_bytes).
 * Returns false when it cannot grow. */
static bool reserve(struct ingest_multiline *m, size_t need)
{
	struct ml_buf *b = &m->buf[m->cur];
	if (need <= b->cap)
		return true;
	size_t limit = m->max_bytes;
	size_t cap = b->cap ? b->cap : ML_MIN_CAP;
	while (cap < need)
		cap = cap > limit / 2 ? limit : cap * 2;
	if (cap > limit)
		cap = limit;
	char *p = realloc(b->p, cap);
	if (!p) {
		if (!m->warned_nomem) {
			kl_log(KL_LOG_WARN,
			       "multiline: out of memory growing a record to %zu bytes; cutting it (counted in cut_lines/cut_records)",
			       need);
			m->warned_nomem = true;
		}
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

/* Drop a line of the pending record. */
static void drop(struct ingest_multiline *m)
{
	m->st.cut_lines++;
	m->cut = true;
}

/* Append a line to the pending record, or drop it past the caps. */
static void append(struct ingest_multiline *m, const char *line, size_t len)
{
	if (m->cut || m->nlines >= m->max_lines) {
		drop(m);
		return;
	}
	size_t room = m->max_bytes - m->len; /* len <= max_bytes */
	if (room < 1 || len > room - 1) {
		drop(m);
		return;
	}
	if (!reserve(m, m->len + 1 + len)) {
		drop(m);
		return;
	}
	char *p = m->buf[m->cur].p + m->len;
	*p = '\n';
	if (len)
		memcpy(p + 1, line, len);
	m->len += 1 + len;
	m->nlines++;
}

/* Begin a record with line (nothing is pending). */
static void begin(struct ingest_multiline *m, const char *line, size_t len, int64_t read_us)
{
	m->pending = true;
	m->first_us = read_us;
	m->nlines = 1;
	m->len = 0;
	if (len > m->max_bytes) {
		len = m->max_bytes;
		m->cut = true;
	}
	if (len && !reserve(m, len)) {
		/* Keep what the buffer we have holds. */
		len = m->buf[m->cur].cap;
		m->cut = true;
	}
	if (len)
		memcpy(m->buf[m->cur].p, line, len);
	m->len = len;
}

static int64_t deadline(const struct ingest_multiline *m)
{
	if (!m->pending)
		return INT64_MAX;
	/* INT64_MAX means "nothing pending": saturate just below it. */
	if (m->last_us > INT64_MAX - 1 - m->timeout_us)
		return INT64_MAX - 1;
	return m->last_us + m->timeout_us;
}

void ingest_multiline_feed(struct ingest_multiline *m, const char *line, size_t len, int64_t read_us,
			   ingest_record_fn fn, void *ctx)
{
	m->st.lines++;
	if (m->pending && read_us >= deadline(m))
		emit(m, fn, ctx);

	bool match = matches(m, line, len);
	bool continues = m->pending && (m->is_start ? !match : match);
	if (continues) {
		append(m, line, len);
	} else {
		if (m->pending)
			emit(m, fn, ctx);
		begin(m, line, len, read_us);
	}
	m->last_us = read_us;
}

void ingest_multiline_flush(struct ingest_multiline *m, ingest_record_fn fn, void *ctx)
{
	if (m->pending)
		emit(m, fn, ctx);
}

int64_t ingest_multiline_deadline(const struct ingest_multiline *m)
{
	return deadline(m);
}

const struct ingest_multiline_stats *ingest_multiline_stats(const struct ingest_multiline *m)
{
	return &m->st;
}

size_t ingest_multiline_pending(const struct ingest_multiline *m)
{
	return m->pending ? m->nlines : 0;
}
