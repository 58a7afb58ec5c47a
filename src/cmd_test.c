/*
 * cmd_test.c — `klaxon test FILE...`: rule unit tests from raw log lines.
 *
 * Each test file (src/ruletest.h) is resolved into a config: its `config:`
 * file's sources, parsers and probes with the test file's rule_files, or the
 * sources and parsers written in the test file. Each test then gets a fresh
 * rule set and is run the way `replay` runs files: the input lines, generated
 * in event time, go per source through the source's multi-line assembler and
 * parser (runtime_line_parse, runtime_feed); a probe's `fields:` entries are
 * check results, handed to the rules as `run` hands a real check's
 * (runtime_probe); the sources and probes are merged by event time,
 * and the shared event-time clock (src/event_clock.h) evaluates the rules —
 * per batch of fed events and at every eval_interval tick — from the test's
 * start to its end. So a test gives the transitions replay (and run) would.
 *
 * Then the transitions got are matched against the expected ones:
 * - an expected transition matches a got one of the same alert and status
 *   whose labels include the listed ones, whose listed annotations are equal
 *   once rendered, and whose instant is within the tolerance of `at`: one
 *   bucket of the rule's window (window/60: windows are rings of 60 buckets,
 *   so a condition turns true or false up to a bucket away from the instant
 *   an exact evaluator names) plus one eval_interval (states advance on
 *   ticks), unless the expectation says `within:`;
 * - every transition of an alert named in `expect` must be expected: a got
 *   transition left over is a failure (a flap, a second firing);
 * - `absent` entries: no transition of the alert (with those labels) in
 *   their span.
 * A line that does not parse is a mistake in the test, not in the rules: the
 * test is reported as an error at the line's place in the file.
 *
 * Exit: 0 all tests passed, 1 some failed, 2 a test file could not be run as
 * written (its problems as FILE:LINE:COL: message on stderr).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/commands.h"
#include "src/event_clock.h"
#include "src/pipeline.h"
#include "src/ruletest.h"

/* After the last instant a test names, the clock runs on this long, so that
 * a transition due a little late is still seen. */
#define END_MARGIN_US (INT64_C(60) * 1000000)
/* Test errors reported per test before the rest are only counted. */
#define MAX_ERRORS_SHOWN 3

/* One physical input line; its text is tester.arena[off, off+len). For a
 * probe, one check result: its values are tester.pvals[off, off+len). */
struct tline {
	int64_t t;
	size_t off, len;
	size_t seq; /* generation order: ties in t keep it */
	const struct ruletest_item *item;
};

struct feed {
	struct tester *ts;
	unsigned src;
	struct tline *lines;
	size_t n, cap, next;
	size_t rec_first; /* the line that began the pending multi-line record */
	bool flushed;	  /* the last record handed out */
	bool has_head;
	int64_t head_us;
};

struct got {
	int64_t at;
	bool resolved;
	char *alert;
	struct ruletest_kv *labels, *ann; /* own copies */
	size_t nlabels, nann;
	double value;
	int64_t window_us;
	int used; /* 0, or what claimed it (see check) */
};

struct tester {
	struct runtime rt;
	const struct ruletest_file *f;
	const struct ruletest_case *t;
	struct kl_diag *d;
	bool verbose;
	const char **timefmt; /* per source, once known */
	struct feed *feeds;   /* per source, then per probe (rt.nall) */
	struct kl_buf arena;
	struct ingest_probe_value *pvals; /* the probe results' values, per entry */
	size_t npvals, cappvals;
	struct got *got;
	size_t ngot, capgot;
	unsigned errors; /* test errors of the current test */
	bool oom;
};

static void test_error(struct tester *ts, int line, int col, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void test_error(struct tester *ts, int line, int col, const char *fmt, ...)
{
	char msg[640];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	fflush(stdout);
	if (ts->errors++ < MAX_ERRORS_SHOWN)
		kl_diag_error(ts->d, ts->f->path, line, col, "test '%s': %s", ts->t->name, msg);
}

/* The text, cut and with control characters shown, for messages. */
static const char *shown(const char *s, size_t len, char *buf, size_t size)
{
	size_t o = 0;
	for (size_t i = 0; i < len && o + 8 < size; i++)
		buf[o++] = (unsigned char)s[i] < 0x20 ? '?' : s[i];
	if (o + 8 >= size)
		memcpy(buf + o, "...", 3), o += 3;
	buf[o] = '\0';
	return buf;
}

/* ------------------------------------------------------------------------- */
/* Generating the input */

static bool push_line(struct tester *ts, struct feed *fd, int64_t t, size_t off, size_t len,
		      const struct ruletest_item *it)
{
	if (fd->n == fd->cap) {
		size_t nc = fd->cap ? fd->cap * 2 : 64;
		void *p = realloc(fd->lines, nc * sizeof *fd->lines);
		if (!p) {
			ts->oom = true;
			return false;
		}
		fd->lines = p;
		fd->cap = nc;
	}
	fd->lines[fd->n] = (struct tline){ t, off, len, fd->n, it };
	fd->n++;
	return true;
}

/*
 * The format {{time}} is written in for source src: its `time_format:`, else
 * the first candidate in which the template's first line parses with the
 * source's parser and gives back the instant it was written with.
 */
static const char *time_format(struct tester *ts, unsigned src, const struct ruletest_item *it,
			       const char *tmpl, int64_t t)
{
	if (ts->timefmt[src])
		return ts->timefmt[src];
	const struct config_source *s = &ts->rt.cfg->sources[src];
	for (size_t i = 0; i < ts->f->ntime_formats; i++)
		if (strcmp(ts->f->time_formats[i].source, s->name) == 0)
			return ts->timefmt[src] = ts->f->time_formats[i].format;
	const char *nl = strchr(tmpl, '\n');
	size_t first = nl ? (size_t)(nl - tmpl) : strlen(tmpl);
	struct parser_event ev;
	parser_event_init(&ev, s->parser);
	for (const char *const *c = ruletest_time_candidates(); *c; c++) {
		struct kl_buf b = { 0 };
		int64_t prec = ruletest_time_precision(*c);
		bool ok = ruletest_expand(tmpl, first, *c, t, 0, &b) == 0 &&
			  parser_parse((struct parser *)s->parser, b.p, b.len, t, &ev) == 0 &&
			  ev.time_us <= t && t - ev.time_us < prec;
		kl_buf_free(&b);
		if (ok)
			return ts->timefmt[src] = *c;
	}
	test_error(ts, it->line, it->col,
		   "{{time}}: in none of the formats klaxon tries does this line of source '%s' "
		   "parse with parser '%s' and give back its instant; write the time out, or name "
		   "the format with `time_format: {%s: '...'}` at the top of the file",
		   s->name, s->parser_name, s->name);
	return NULL;
}

/* Every line of item it of source src, expanded, into feed src. */
static void generate(struct tester *ts, unsigned src, const struct ruletest_item *it)
{
	struct feed *fd = &ts->feeds[src];
	int64_t base = ts->t->start_us + it->at_us;
	for (size_t j = 0; j < it->nlines; j++) {
		const char *tmpl = it->lines[j];
		if (ruletest_has_time(tmpl, strlen(tmpl)) && !time_format(ts, src, it, tmpl, base))
			return;
	}
	for (uint64_t k = 0; k < it->times && !ts->oom; k++) {
		int64_t t = base + (int64_t)k * it->every_us;
		for (size_t j = 0; j < it->nlines && !ts->oom; j++) {
			const char *tmpl = it->lines[j];
			size_t tl = strlen(tmpl);
			while (tl && tmpl[tl - 1] == '\n') /* a block scalar's last line break */
				tl--;
			size_t start = ts->arena.len;
			if (ruletest_expand(tmpl, tl, ts->timefmt[src], t, k, &ts->arena) < 0) {
				ts->oom = true;
				break;
			}
			/* one physical line per '\n' (a traceback, a DETAIL line) */
			size_t end = ts->arena.len;
			for (size_t p = start; p <= end && !ts->oom;) {
				const char *nl = memchr(ts->arena.p + p, '\n', end - p);
				size_t e = nl ? (size_t)(nl - ts->arena.p) : end;
				if (!push_line(ts, fd, t, p, e - p, it))
					ts->oom = true;
				p = e + 1;
			}
		}
	}
}

/*
 * The value of field f of a probe result from what `fields:` says (x, NULL
 * when it names none). `up` is 1 when not given: a check always says it.
 * 0, or -EINVAL with why (for the SRE who wrote it).
 */
static int probe_value(const struct ingest_probe_field *f, const struct ruletest_field *x,
		       struct ingest_probe_value *out, const char **why)
{
	*out = (struct ingest_probe_value){ 0 };
	if (!x) {
		if (strcmp(f->name, "up") == 0)
			*out = (struct ingest_probe_value){ .set = true, .num = 1 };
		return 0;
	}
	if (f->type == INGEST_PF_STRING) {
		*out = (struct ingest_probe_value){ .set = true, .str = x->value };
		return 0;
	}
	double v;
	if (ruletest_probe_number(x->value, strlen(x->value), f->type == INGEST_PF_SECONDS, &v) < 0) {
		*why = f->type == INGEST_PF_SECONDS ? "a number of seconds or a duration (0.25, 27h)" :
		       f->type == INGEST_PF_COUNT   ? "a whole number" :
						      "a number (percentages 0..100)";
		return -EINVAL;
	}
	/* 2^53: every whole double below it converts exactly */
	if (f->type == INGEST_PF_COUNT &&
	    (v < 0 || v > 9007199254740992.0 || v != (double)(uint64_t)v)) {
		*why = "a whole number";
		return -EINVAL;
	}
	if (strcmp(f->name, "up") == 0 && v != 0 && v != 1) {
		*why = "1 (the check passed) or 0 (it failed)";
		return -EINVAL;
	}
	*out = (struct ingest_probe_value){ .set = true, .num = v };
	return 0;
}

static const struct ruletest_field *field_of(const struct ruletest_item *it, const char *name)
{
	for (size_t i = 0; i < it->nfields; i++)
		if (strcmp(it->fields[i].name, name) == 0)
			return &it->fields[i];
	return NULL;
}

/* Every result of item it of probe feed src: one set of values, repeated.
 * The fields were checked with the file (check_inputs). */
static void generate_probe(struct tester *ts, unsigned src, const struct ruletest_item *it)
{
	struct feed *fd = &ts->feeds[src];
	const struct config_probe *pr = &ts->rt.cfg->probes[src - ts->rt.cfg->nsources];
	size_t nf;
	const struct ingest_probe_field *f = ingest_probe_fields(pr->kind, &nf);
	if (ts->npvals + nf > ts->cappvals) {
		size_t nc = ts->cappvals ? ts->cappvals * 2 : 64;
		while (nc < ts->npvals + nf)
			nc *= 2;
		void *p = realloc(ts->pvals, nc * sizeof *ts->pvals);
		if (!p) {
			ts->oom = true;
			return;
		}
		ts->pvals = p;
		ts->cappvals = nc;
	}
	size_t off = ts->npvals;
	for (size_t i = 0; i < nf; i++) {
		const char *why;
		if (probe_value(&f[i], field_of(it, f[i].name), &ts->pvals[off + i], &why) < 0)
			ts->pvals[off + i] = (struct ingest_probe_value){ 0 };
	}
	ts->npvals += nf;
	int64_t base = ts->t->start_us + it->at_us;
	for (uint64_t k = 0; k < it->times && !ts->oom; k++)
		if (!push_line(ts, fd, base + (int64_t)k * it->every_us, off, nf, it))
			ts->oom = true;
}

static int by_time(const void *a, const void *b)
{
	const struct tline *x = a, *y = b;
	if (x->t != y->t)
		return x->t < y->t ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* ------------------------------------------------------------------------- */
/* Feeding: replay's cursors over generated lines */

static void bad_record(struct tester *ts, struct feed *fd, size_t first, const char *rec,
		       size_t len)
{
	const struct config_source *s = &ts->rt.cfg->sources[fd->src];
	const struct ruletest_item *it = first < fd->n ? fd->lines[first].item : NULL;
	char buf[160];
	char when[32];
	kl_format_duration(first < fd->n ? fd->lines[first].t - ts->t->start_us : 0, when);
	test_error(ts, it ? it->line : ts->t->line, it ? it->col : ts->t->col,
		   "a line of source '%s' (at +%s) does not parse with parser '%s': '%s' (try it "
		   "with `klaxon parse`)",
		   s->name, when, s->parser_name, shown(rec, len, buf, sizeof buf));
}

static void on_record(void *ctx, const char *rec, size_t len, int64_t read_us)
{
	struct feed *fd = ctx;
	int64_t t;
	if (runtime_line_parse(&fd->ts->rt, fd->src, rec, len, read_us, &t) == 0) {
		fd->has_head = true;
		fd->head_us = t;
	} else {
		bad_record(fd->ts, fd, fd->rec_first, rec, len);
	}
}

static void advance(struct tester *ts, struct feed *fd)
{
	struct ingest_multiline *ml = ts->rt.multiline[fd->src];
	fd->has_head = false;
	if (fd->src >= ts->rt.cfg->nsources) { /* a probe: its next result, fed by feed() */
		if (fd->next < fd->n) {
			fd->has_head = true;
			fd->head_us = fd->lines[fd->next++].t;
		}
		return;
	}
	while (fd->next < fd->n) {
		size_t i = fd->next++;
		const struct tline *l = &fd->lines[i];
		const char *text = ts->arena.p + l->off;
		if (ml) {
			ingest_multiline_feed(ml, text, l->len, l->t, on_record, fd);
			if (ingest_multiline_pending(ml) == 1)
				fd->rec_first = i;
			if (fd->has_head)
				return;
			continue;
		}
		int64_t t;
		if (runtime_line_parse(&ts->rt, fd->src, text, l->len, l->t, &t) == 0) {
			fd->has_head = true;
			fd->head_us = t;
			return;
		}
		bad_record(ts, fd, i, text, l->len);
	}
	if (ml && !fd->flushed) {
		fd->flushed = true;
		ingest_multiline_flush(ml, on_record, fd);
	}
}

/* Hand the head of fd to the rules: a parsed record, or a probe's result. */
static void feed(struct tester *ts, struct feed *fd)
{
	size_t nsources = ts->rt.cfg->nsources;
	if (fd->src < nsources) {
		runtime_feed(&ts->rt, fd->src);
		return;
	}
	const struct tline *l = &fd->lines[fd->next - 1];
	const struct config_probe *pr = &ts->rt.cfg->probes[fd->src - nsources];
	struct ingest_probe_result r = { .name = pr->name, .kind = pr->kind, .at_us = l->t,
					 .values = &ts->pvals[l->off], .n = l->len };
	runtime_probe(&ts->rt, fd->src - (unsigned)nsources, &r);
}

static struct feed *oldest(struct tester *ts)
{
	struct feed *best = NULL;
	for (size_t i = 0; i < ts->rt.nall; i++) {
		struct feed *fd = &ts->feeds[i];
		if (fd->has_head && (!best || fd->head_us < best->head_us))
			best = fd;
	}
	return best;
}

static char *dup(struct tester *ts, const char *s)
{
	char *c = kl_strndup(s, strlen(s));
	if (!c)
		ts->oom = true;
	return c;
}

static struct ruletest_kv *dup_kvs(struct tester *ts, const struct rules_label *l, size_t n)
{
	struct ruletest_kv *kv = calloc(n ? n : 1, sizeof *kv);
	if (!kv) {
		ts->oom = true;
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		kv[i] = (struct ruletest_kv){ dup(ts, l[i].key), dup(ts, l[i].value) };
	return kv;
}

static void on_transition(void *ctx, const struct rules_transition *tr)
{
	struct tester *ts = ctx;
	ts->rt.alerts++;
	if (tr->restored)
		return;
	if (ts->ngot == ts->capgot) {
		size_t nc = ts->capgot ? ts->capgot * 2 : 16;
		void *p = realloc(ts->got, nc * sizeof *ts->got);
		if (!p) {
			ts->oom = true;
			return;
		}
		ts->got = p;
		ts->capgot = nc;
	}
	struct got *g = &ts->got[ts->ngot++];
	*g = (struct got){ .at = tr->at_us,
			   .resolved = tr->status == RULES_RESOLVED,
			   .alert = dup(ts, tr->alert),
			   .labels = dup_kvs(ts, tr->labels, tr->nlabels),
			   .nlabels = tr->nlabels,
			   .ann = dup_kvs(ts, tr->annotations, tr->nannotations),
			   .nann = tr->nannotations,
			   .value = tr->value,
			   .window_us = tr->window_us };
	if (!g->labels)
		g->nlabels = 0;
	if (!g->ann)
		g->nann = 0;
}

static void free_got(struct tester *ts)
{
	for (size_t i = 0; i < ts->ngot; i++) {
		struct got *g = &ts->got[i];
		free(g->alert);
		for (size_t k = 0; k < g->nlabels; k++)
			free((char *)g->labels[k].key), free((char *)g->labels[k].value);
		for (size_t k = 0; k < g->nann; k++)
			free((char *)g->ann[k].key), free((char *)g->ann[k].value);
		free(g->labels);
		free(g->ann);
	}
	ts->ngot = 0;
}

/* ------------------------------------------------------------------------- */
/* Checking */

enum { FREE = 0, MATCHED, PAIRED, REPORTED };

static const char *kv_get(const struct ruletest_kv *kv, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (kv[i].key && strcmp(kv[i].key, key) == 0)
			return kv[i].value;
	return NULL;
}

static bool labels_in(const struct ruletest_kv *want, size_t n, const struct got *g)
{
	for (size_t i = 0; i < n; i++) {
		const char *v = kv_get(g->labels, g->nlabels, want[i].key);
		if (!v || strcmp(v, want[i].value) != 0)
			return false;
	}
	return true;
}

static bool annotations_eq(const struct ruletest_expect *e, const struct got *g)
{
	for (size_t i = 0; i < e->nannotations; i++) {
		const char *v = kv_get(g->ann, g->nann, e->annotations[i].key);
		if (!v || strcmp(v, e->annotations[i].value) != 0)
			return false;
	}
	return true;
}

/* ceil(window / 60), at least 1 ms: the rules' bucket width (rules.c shape_of). */
static int64_t bucket_us(int64_t window_us)
{
	int64_t w = (window_us + 59) / 60;
	return w < 1000 ? 1000 : w;
}

static int64_t tolerance(const struct tester *ts, const struct ruletest_expect *e,
			 const struct got *g)
{
	if (e->within_us >= 0)
		return e->within_us;
	return bucket_us(g->window_us) + ts->rt.cfg->eval_interval_us;
}

static int64_t dist(int64_t a, int64_t b)
{
	return a > b ? a - b : b - a;
}

static void fmt_offset(const struct tester *ts, int64_t at, char *buf, size_t size)
{
	char d[32], r[KL_RFC3339_MAX];
	int64_t off = at - ts->t->start_us;
	kl_format_duration(off < 0 ? -off : off, d);
	kl_format_rfc3339(at, at % 1000000 != 0, r);
	snprintf(buf, size, "%s%s (%s)", off < 0 ? "-" : "+", d, r);
}

static void fmt_kvs(const struct ruletest_kv *kv, size_t n, struct kl_buf *b)
{
	kl_buf_reset(b);
	for (size_t i = 0; i < n; i++)
		kl_buf_appendf(b, "%s%s=%s", i ? ", " : "", kv[i].key, kv[i].value);
	if (!n)
		kl_buf_append_str(b, "(none)");
	kl_buf_append(b, "", 1);
}

struct row {
	char name[24];
	char *left, *right; /* heap, or NULL for "-" */
};

/* One side-by-side table: expected on the left, got on the right. */
static void table(FILE *out, const char *head, struct row *rows, size_t n)
{
	size_t w = strlen("expected");
	for (size_t i = 0; i < n; i++)
		if (rows[i].left && strlen(rows[i].left) > w)
			w = strlen(rows[i].left);
	fprintf(out, "    %s\n", head);
	fprintf(out, "      %-11s %-*s  %s\n", "", (int)w, "expected", "got");
	for (size_t i = 0; i < n; i++) {
		fprintf(out, "      %-11s %-*s  %s\n", rows[i].name, (int)w,
		       rows[i].left ? rows[i].left : "-", rows[i].right ? rows[i].right : "-");
		free(rows[i].left);
		free(rows[i].right);
	}
}

static char *str(const char *s)
{
	return s ? kl_strndup(s, strlen(s)) : NULL;
}

/* Print one problem: e (may be NULL) against g (may be NULL). */
static void problem(struct tester *ts, FILE *out, const char *alert, int64_t at, const char *why,
		    const struct ruletest_expect *e, const struct got *g, const char *absent)
{
	struct row rows[16];
	size_t n = 0;
	char buf[160], head[400];
	struct kl_buf b = { 0 };

	fmt_offset(ts, at, buf, sizeof buf);
	snprintf(head, sizeof head, "rule %s at %s: %s", alert, buf, why);
	rows[n] = (struct row){ "instant", NULL, NULL };
	if (e) {
		fmt_offset(ts, ts->t->start_us + e->at_us, buf, sizeof buf);
		rows[n].left = str(buf);
	} else if (absent) {
		rows[n].left = str(absent);
	}
	if (g) {
		fmt_offset(ts, g->at, buf, sizeof buf);
		rows[n].right = str(buf);
	}
	n++;
	rows[n] = (struct row){ "status", e ? str(e->resolved ? "resolved" : "firing") : NULL,
				g ? str(g->resolved ? "resolved" : "firing") : NULL };
	n++;
	rows[n] = (struct row){ "labels", NULL, NULL };
	if (e && e->nlabels) {
		fmt_kvs(e->labels, e->nlabels, &b);
		rows[n].left = str(b.p);
	}
	if (g) {
		fmt_kvs(g->labels, g->nlabels, &b);
		rows[n].right = str(b.p);
	}
	n++;
	if (g) {
		snprintf(buf, sizeof buf, "%.6g", g->value);
		rows[n++] = (struct row){ "value", NULL, str(buf) };
	}
	/* the annotations the expectation names, then the got summary */
	bool summary_done = false;
	for (size_t i = 0; e && i < e->nannotations && n + 1 < KL_ARRAY_LEN(rows); i++) {
		rows[n] = (struct row){ "", str(e->annotations[i].value),
					g ? str(kv_get(g->ann, g->nann, e->annotations[i].key)) : NULL };
		snprintf(rows[n].name, sizeof rows[n].name, "%s", e->annotations[i].key);
		summary_done |= strcmp(e->annotations[i].key, "summary") == 0;
		n++;
	}
	if (g && !summary_done && kv_get(g->ann, g->nann, "summary"))
		rows[n++] = (struct row){ "summary", NULL, str(kv_get(g->ann, g->nann, "summary")) };
	kl_buf_free(&b);
	table(out, head, rows, n);
}

static bool named_in_expect(const struct ruletest_case *t, const char *alert)
{
	for (size_t i = 0; i < t->nexpects; i++)
		if (strcmp(t->expects[i].alert, alert) == 0)
			return true;
	return false;
}

/* Returns the number of problems (printed). */
static size_t check(struct tester *ts, int64_t end, FILE *out)
{
	const struct ruletest_case *t = ts->t;
	size_t problems = 0;
	bool *done = calloc(t->nexpects ? t->nexpects : 1, sizeof *done);
	if (!done) {
		ts->oom = true;
		return 1;
	}
	/* 1. full matches, the nearest in time first */
	for (size_t i = 0; i < t->nexpects; i++) {
		const struct ruletest_expect *e = &t->expects[i];
		int64_t at = t->start_us + e->at_us;
		struct got *best = NULL;
		for (size_t k = 0; k < ts->ngot; k++) {
			struct got *g = &ts->got[k];
			if (g->used || strcmp(g->alert, e->alert) || g->resolved != e->resolved ||
			    dist(g->at, at) > tolerance(ts, e, g) ||
			    !labels_in(e->labels, e->nlabels, g) || !annotations_eq(e, g))
				continue;
			if (!best || dist(g->at, at) < dist(best->at, at))
				best = g;
		}
		if (best) {
			best->used = MATCHED;
			done[i] = true;
		}
	}
	/* 2. the rest, side by side with the closest got */
	for (size_t i = 0; i < t->nexpects; i++) {
		if (done[i])
			continue;
		const struct ruletest_expect *e = &t->expects[i];
		int64_t at = t->start_us + e->at_us;
		struct got *near = NULL;
		const char *why = "not got";
		int rank = 0; /* 3: only annotations differ, 2: labels, 1: the instant */
		for (size_t k = 0; k < ts->ngot; k++) {
			struct got *g = &ts->got[k];
			if (g->used || strcmp(g->alert, e->alert) || g->resolved != e->resolved)
				continue;
			bool in_time = dist(g->at, at) <= tolerance(ts, e, g);
			bool lab = labels_in(e->labels, e->nlabels, g);
			int r = in_time && lab ? 3 : in_time ? 2 : 1;
			if (r > rank || (r == rank && dist(g->at, at) < dist(near->at, at))) {
				rank = r;
				near = g;
			}
		}
		char why_buf[160];
		if (rank == 3) {
			why = e->nannotations == 1 ? "the annotation differs" : "annotations differ";
			if (e->nannotations && !strcmp(e->annotations[0].key, "summary") &&
			    e->nannotations == 1)
				why = "the summary differs";
		} else if (rank == 2) {
			why = "the labels differ";
		} else if (rank == 1) {
			char d[32];
			kl_format_duration(dist(near->at, at), d);
			char tol[32];
			kl_format_duration(tolerance(ts, e, near), tol);
			snprintf(why_buf, sizeof why_buf, "not got in time: the nearest is %s %s (tolerance ±%s)",
				 d, near->at > at ? "late" : "early", tol);
			why = why_buf;
		}
		if (near)
			near->used = PAIRED;
		problem(ts, out, e->alert, at, why, e, near, NULL);
		problems++;
	}
	/* 3. absent spans */
	for (size_t i = 0; i < t->nabsents; i++) {
		const struct ruletest_absent *a = &t->absents[i];
		int64_t from = t->start_us + a->from_us;
		int64_t until = a->until_us < 0 ? end : t->start_us + a->until_us;
		for (size_t k = 0; k < ts->ngot; k++) {
			struct got *g = &ts->got[k];
			if (g->used == MATCHED || strcmp(g->alert, a->alert) || g->at < from ||
			    (a->status >= 0 && g->resolved != (a->status == 1)) ||
			    g->at > until || !labels_in(a->labels, a->nlabels, g))
				continue;
			char f[32], u[32], what[96];
			kl_format_duration(from - t->start_us, f);
			kl_format_duration(until - t->start_us, u);
			snprintf(what, sizeof what, "none from +%s to +%s", f, u);
			problem(ts, out, g->alert, g->at, "unexpected (absent)", NULL, g, what);
			g->used = REPORTED;
			problems++;
		}
	}
	/* 4. transitions of the alerts under test that nobody expected */
	for (size_t k = 0; k < ts->ngot; k++) {
		struct got *g = &ts->got[k];
		if (g->used || !named_in_expect(t, g->alert))
			continue;
		problem(ts, out, g->alert, g->at, "unexpected", NULL, g, "(no transition)");
		g->used = REPORTED;
		problems++;
	}
	free(done);
	return problems;
}

/* ------------------------------------------------------------------------- */

static int fresh_rules(struct tester *ts)
{
	struct config *cfg = ts->rt.cfg;
	struct kl_diag quiet = { .out = ts->d->out };
	struct rules_set *rs = rules_load((const char *const *)cfg->rule_files, cfg->nrule_files,
					  ts->rt.sources, ts->rt.nall, &quiet);
	if (!rs)
		return -EINVAL; /* loaded once already: the files changed under us */
	rules_set_eval_interval(rs, cfg->eval_interval_us);
	rules_free(ts->rt.rules);
	ts->rt.rules = rs;
	return 0;
}

static int64_t last_instant(const struct tester *ts)
{
	const struct ruletest_case *t = ts->t;
	int64_t last = 0;
	for (size_t i = 0; i < t->ninputs; i++)
		for (size_t j = 0; j < t->inputs[i].nitems; j++) {
			const struct ruletest_item *it = &t->inputs[i].items[j];
			int64_t e = it->at_us + (int64_t)(it->times - 1) * it->every_us;
			last = e > last ? e : last;
		}
	for (size_t i = 0; i < t->nexpects; i++)
		last = t->expects[i].at_us > last ? t->expects[i].at_us : last;
	for (size_t i = 0; i < t->nabsents; i++)
		last = t->absents[i].until_us > last ? t->absents[i].until_us : last;
	return last;
}

static void print_got(const struct tester *ts)
{
	printf(ts->ngot ? "    transitions got:\n" : "    no transition got\n");
	for (size_t k = 0; k < ts->ngot; k++) {
		const struct got *g = &ts->got[k];
		char buf[160];
		struct kl_buf b = { 0 };
		fmt_offset(ts, g->at, buf, sizeof buf);
		fmt_kvs(g->labels, g->nlabels, &b);
		printf("      %s %s %s {%s} value %.6g", buf, g->alert,
		       g->resolved ? "resolved" : "firing", b.p ? b.p : "", g->value);
		const char *s = kv_get(g->ann, g->nann, "summary");
		printf("%s%s%s\n", s ? " summary '" : "", s ? s : "", s ? "'" : "");
		kl_buf_free(&b);
	}
}

/* 0 passed, 1 failed, 2 error. */
static int run_test(struct tester *ts, const struct ruletest_case *t)
{
	struct config *cfg = ts->rt.cfg;
	ts->t = t;
	ts->errors = 0;
	kl_buf_reset(&ts->arena);
	ts->npvals = 0;
	for (size_t i = 0; i < ts->rt.nall; i++) {
		free(ts->feeds[i].lines);
		ts->feeds[i] = (struct feed){ .ts = ts, .src = (unsigned)i };
		memset(&ts->rt.stats[i], 0, sizeof ts->rt.stats[i]);
	}
	if (fresh_rules(ts) < 0) {
		test_error(ts, t->line, t->col, "the rule files no longer load");
		return 2;
	}
	for (size_t i = 0; i < t->ninputs; i++) {
		const struct config_source *s = config_source_by_name(cfg, t->inputs[i].source);
		const struct config_probe *pr = config_probe_by_name(cfg, t->inputs[i].source);
		for (size_t j = 0; s && j < t->inputs[i].nitems; j++)
			generate(ts, (unsigned)(s - cfg->sources), &t->inputs[i].items[j]);
		for (size_t j = 0; !s && pr && j < t->inputs[i].nitems; j++)
			generate_probe(ts, (unsigned)(cfg->nsources + (size_t)(pr - cfg->probes)),
				       &t->inputs[i].items[j]);
	}
	for (size_t i = 0; i < ts->rt.nall; i++)
		if (ts->feeds[i].n > 1)
			qsort(ts->feeds[i].lines, ts->feeds[i].n, sizeof *ts->feeds[i].lines, by_time);
	if (ts->oom || ts->errors)
		goto error;

	int64_t end = t->start_us + (t->until_us >= 0 ? t->until_us : last_instant(ts) + END_MARGIN_US);
	struct event_clock clock;
	struct rules_set *rs = ts->rt.rules;
	event_clock_init(&clock);
	/* the clock starts at the test's start, as `run` would at its start */
	event_clock_advance(&clock, rs, t->start_us, on_transition, ts);
	for (size_t i = 0; i < ts->rt.nall; i++)
		advance(ts, &ts->feeds[i]);
	for (struct feed *fd; (fd = oldest(ts));) {
		event_clock_advance(&clock, rs, fd->head_us, on_transition, ts);
		feed(ts, fd);
		advance(ts, fd);
	}
	event_clock_advance(&clock, rs, end, on_transition, ts);
	event_clock_finish(&clock, rs, on_transition, ts);
	if (ts->oom || ts->errors)
		goto error;

	/* the verdict comes first, then the problems that check found */
	char name[160];
	snprintf(name, sizeof name, "%s (%s:%d)", t->name, ts->f->path, t->line);
	size_t lines = 0; /* log records and probe results */
	for (size_t i = 0; i < ts->rt.nall; i++)
		lines += (size_t)ts->rt.stats[i].lines;
	char *text = NULL;
	size_t textlen = 0;
	FILE *mem = open_memstream(&text, &textlen);
	size_t problems = check(ts, end, mem ? mem : stdout);
	if (mem)
		fclose(mem);
	printf("  %s  %s: %zu records, %zu transitions\n", problems ? "FAIL" : "PASS", name, lines,
	       ts->ngot);
	if (text)
		fputs(text, stdout);
	free(text);
	if (ts->verbose || problems)
		print_got(ts);
	free_got(ts);
	return problems ? 1 : 0;
error:
	if (ts->oom)
		kl_diag_error(ts->d, ts->f->path, t->line, t->col, "test '%s': out of memory", t->name);
	else if (ts->errors > MAX_ERRORS_SHOWN)
		kl_diag_error(ts->d, ts->f->path, t->line, t->col, "test '%s': %u more problem(s)",
			      t->name, ts->errors - MAX_ERRORS_SHOWN);
	printf("  ERROR %s (%s:%d): the test could not run as written (see above)\n", t->name,
	       ts->f->path, t->line);
	free_got(ts);
	return 2;
}

/* The config of a test file: its `config:` with its rule_files, or its own
 * sources. NULL after reporting. */
static struct config *file_config(const struct ruletest_file *f, struct kl_diag *d)
{
	struct config *own = NULL, *base = NULL;
	if (config_load_embedded(f->path, &f->embedded, &own, d) < 0)
		return NULL;
	if (!f->config_path)
		return own;
	if (config_load(f->config_path, &base, d) < 0) {
		kl_diag_error(d, f->path, f->config_line, f->config_col,
			      "config '%s' does not load (see above)", f->config_path);
		config_free(own);
		return NULL;
	}
	char **files = base->rule_files;
	size_t n = base->nrule_files;
	base->rule_files = own->rule_files;
	base->nrule_files = own->nrule_files;
	own->rule_files = files;
	own->nrule_files = n;
	if (f->has_eval_interval)
		base->eval_interval_us = own->eval_interval_us;
	config_free(own);
	return base;
}

/* The entries of probe pr in input in: fields, each one of its kind's, with a
 * value of the field's type. */
static void check_probe_input(const struct ruletest_file *f, const struct config_probe *pr,
			      const struct ruletest_input *in, struct kl_diag *d)
{
	size_t nf;
	const struct ingest_probe_field *kf = ingest_probe_fields(pr->kind, &nf);
	struct kl_buf names = { 0 };
	for (size_t i = 0; i < nf; i++)
		kl_buf_appendf(&names, "%s%s", i ? ", " : "", kf[i].name);
	for (size_t j = 0; j < in->nitems; j++) {
		const struct ruletest_item *it = &in->items[j];
		if (!it->nfields) {
			kl_diag_error(d, f->path, it->line, it->col,
				      "input: '%s' is a probe (%s): its entries give 'fields' (one "
				      "check's result, e.g. {fields: {up: 0, error: 'timed out'}}), "
				      "not log lines",
				      in->source, ingest_probe_kind_name(pr->kind));
			continue;
		}
		for (size_t k = 0; k < it->nfields; k++) {
			const struct ruletest_field *x = &it->fields[k];
			const struct ingest_probe_field *fk = NULL;
			for (size_t i = 0; i < nf && !fk; i++)
				if (strcmp(kf[i].name, x->name) == 0)
					fk = &kf[i];
			struct ingest_probe_value v;
			const char *why;
			if (!fk)
				kl_diag_error(d, f->path, x->name_line, x->name_col,
					      "fields: probe '%s' (%s) has no field '%s'; its fields "
					      "are: %s",
					      in->source, ingest_probe_kind_name(pr->kind), x->name,
					      names.p ? names.p : "(none)");
			else if (probe_value(fk, x, &v, &why) < 0)
				kl_diag_error(d, f->path, x->line, x->col,
					      "fields: invalid value '%s' for '%s'; expected %s", x->value,
					      x->name, why);
		}
	}
	kl_buf_free(&names);
}

/* Sources and probes named in the file that the config lacks, and entries
 * that do not suit what they name (lines for a source, fields for a probe). */
static void check_inputs(const struct ruletest_file *f, const struct config *cfg,
			 struct kl_diag *d)
{
	struct kl_buf names = { 0 }, probes = { 0 };
	for (size_t i = 0; i < cfg->nsources; i++)
		kl_buf_appendf(&names, "%s%s", i ? ", " : "", cfg->sources[i].name);
	for (size_t i = 0; i < cfg->nprobes; i++)
		kl_buf_appendf(&probes, "%s%s", i ? ", " : "", cfg->probes[i].name);
	const char *known = names.p ? names.p : "(none)";
	for (size_t i = 0; i < f->ntests; i++)
		for (size_t j = 0; j < f->tests[i].ninputs; j++) {
			const struct ruletest_input *in = &f->tests[i].inputs[j];
			const struct config_probe *pr = config_probe_by_name(cfg, in->source);
			if (pr) {
				check_probe_input(f, pr, in, d);
				continue;
			}
			if (!config_source_by_name(cfg, in->source)) {
				kl_diag_error(d, f->path, in->line, in->col,
					      "input: no source named '%s' (nor a probe); the sources "
					      "are: %s; the probes: %s",
					      in->source, known, probes.p ? probes.p : "(none)");
				continue;
			}
			for (size_t k = 0; k < in->nitems; k++)
				if (in->items[k].nfields)
					kl_diag_error(d, f->path, in->items[k].line, in->items[k].col,
						      "input: '%s' is a log source: its entries give "
						      "'line' or 'lines'; 'fields' is for a probe's results",
						      in->source);
		}
	for (size_t i = 0; i < f->ntime_formats; i++)
		if (!config_source_by_name(cfg, f->time_formats[i].source))
			kl_diag_error(d, f->path, f->time_formats[i].line, f->time_formats[i].col,
				      "time_format: no source named '%s'; the sources are: %s",
				      f->time_formats[i].source, known);
	kl_buf_free(&names);
	kl_buf_free(&probes);
}

struct totals {
	unsigned passed, failed, errors, bad_files;
};

static void run_file(const char *path, bool verbose, struct totals *tot)
{
	struct kl_diag d = { .out = stderr };
	struct tester ts = { .d = &d, .verbose = verbose };
	struct ruletest_file *f = ruletest_load(path, &d);
	struct config *cfg;
	printf("%s\n", path);
	fflush(stdout);
	if (!f || !(cfg = file_config(f, &d)))
		goto bad;
	ts.f = f;
	if (runtime_load_config(&ts.rt, cfg, &d) < 0)
		goto bad;
	check_inputs(f, cfg, &d);
	if (d.errors)
		goto bad;
	ts.timefmt = calloc(cfg->nsources ? cfg->nsources : 1, sizeof *ts.timefmt);
	ts.feeds = calloc(ts.rt.nall ? ts.rt.nall : 1, sizeof *ts.feeds);
	if (!ts.timefmt || !ts.feeds) {
		kl_diag_error(&d, path, 0, 0, "out of memory");
		goto bad;
	}
	for (size_t i = 0; i < f->ntests; i++) {
		int rc = run_test(&ts, &f->tests[i]);
		if (rc == 0)
			tot->passed++;
		else if (rc == 1)
			tot->failed++;
		else
			tot->errors++;
	}
	goto out;
bad:
	fflush(stderr);
	printf("  ERROR %s: %u problem(s) (see above)\n", path, d.errors ? d.errors : 1);
	tot->bad_files++;
out:
	for (size_t i = 0; ts.feeds && i < ts.rt.nall; i++)
		free(ts.feeds[i].lines);
	free(ts.feeds);
	free(ts.pvals);
	free(ts.timefmt);
	free(ts.got);
	kl_buf_free(&ts.arena);
	runtime_free(&ts.rt);
	ruletest_free(f);
}

static const char test_usage[] =
	"usage: klaxon test [-v] FILE...\n"
	"  run the rule unit tests of each FILE (see README.md, \"klaxon test\")\n"
	"  -v, --verbose    also list every transition each test got\n"
	"exit 0: all passed; 1: a test failed; 2: a test file could not be run as written\n";

int cmd_test(int argc, char **argv)
{
	bool verbose = false, opts = true;
	int nfiles = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (opts && !strcmp(a, "--")) {
			opts = false;
		} else if (opts && (!strcmp(a, "-v") || !strcmp(a, "--verbose"))) {
			verbose = true;
		} else if (opts && (!strcmp(a, "-h") || !strcmp(a, "--help"))) {
			fputs(test_usage, stdout);
			return EXIT_OK;
		} else if (opts && a[0] == '-' && a[1]) {
			fprintf(stderr, "klaxon test: unknown option '%s'\n%s", a, test_usage);
			return EXIT_USAGE;
		} else {
			nfiles++;
		}
	}
	if (!nfiles) {
		fprintf(stderr, "klaxon test: no test file given\n%s", test_usage);
		return EXIT_USAGE;
	}
	kl_log_set_quiet(true);
	struct totals tot = { 0 };
	opts = true;
	for (int i = 1; i < argc; i++) {
		if (opts && !strcmp(argv[i], "--")) {
			opts = false;
			continue;
		}
		if (opts && argv[i][0] == '-' && argv[i][1])
			continue;
		run_file(argv[i], verbose, &tot);
		fflush(stdout);
	}
	printf("klaxon test: %u passed, %u failed, %u errors", tot.passed, tot.failed, tot.errors);
	if (tot.bad_files)
		printf(", %u test file(s) not run", tot.bad_files);
	printf("\n");
	if (tot.bad_files || tot.errors)
		return EXIT_USAGE;
	return tot.failed ? EXIT_PROBLEMS : EXIT_OK;
}
