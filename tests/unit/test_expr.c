/*
 * test_expr.c — the rule expression language (rules/expr.c): every operator
 * and function compiles against a parser and evaluates right, and every error
 * names the byte offset it is about with a message an SRE can act on.
 *
 * Three ways in, from the smallest to the whole:
 *  - filters: compile `count(FILTER) > 0` and ask filt_match() about parsed
 *    events one by one (the semantics of == != < <= > >= =~ !~ in, not in,
 *    and, or, not, parentheses, and of an absent field);
 *  - aggregates: feed events into a window (rules_int.h) and read each
 *    aggregate with window_agg();
 *  - values: a one-rule file loaded with rules_load, fed and evaluated with
 *    rules_eval_all; the firing transition carries the left-hand value of the
 *    first comparison, so `(A) != 1e300` reports A (arithmetic, unary minus,
 *    units, division by zero) and firing or not reports a condition's truth.
 *
 * The parser is a regex parser with an ISO 8601 time field:
 *   TIME STATUS RT PATH [METHOD [BYTES]]      status:int rt:seconds bytes:int
 * and "-" as RT is an absent number.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/kl.h"
#include "parsers/parsers.h"
#include "rules/rules.h"
#include "rules/rules_int.h"

/* ------------------------------------------------------------------------- */
/* assertions that print both sides */

#define assert_dbl(got, want, tol)                                                              \
	do {                                                                                    \
		double g_ = (got), w_ = (want), t_ = (tol);                                     \
		if (!(fabs(g_ - w_) <= t_)) {                                                   \
			print_error("%s = %.17g\n  expected %s = %.17g (within %g)\n", #got, g_, \
				    #want, w_, t_);                                             \
			fail();                                                                 \
		}                                                                               \
	} while (0)
#define assert_rel(got, want, rel) assert_dbl((got), (want), fabs((double)(want)) * (rel))
#define assert_is_nan(got)                                                                  \
	do {                                                                                \
		double g_ = (got);                                                          \
		if (!isnan(g_)) {                                                           \
			print_error("%s = %.17g, expected NaN (undefined)\n", #got, g_);    \
			fail();                                                             \
		}                                                                           \
	} while (0)
#define assert_contains(hay, needle)                                                          \
	do {                                                                                  \
		const char *h_ = (hay), *n_ = (needle);                                       \
		if (!h_ || !strstr(h_, n_)) {                                                 \
			print_error("'%s'\n  does not contain '%s'\n", h_ ? h_ : "(null)", n_); \
			fail();                                                               \
		}                                                                             \
	} while (0)

/* ------------------------------------------------------------------------- */
/* fixture: the parser, a match data, a temporary directory for rule files */

#define BASE_US (1700000000LL * 1000000) /* 2023-11-14T22:13:20Z */
#define SEC 1000000LL
#define MS 1000LL

static struct parser *P;
static pcre2_match_data *MD;
static char DIR_[256];
static char RULEFILE[300];

static int group_setup(void **state)
{
	(void)state;
	kl_log_set_quiet(true);
	static const struct parser_field_spec types[] = {
		{ "status", PARSER_T_INT },
		{ "rt", PARSER_T_SECONDS },
		{ "bytes", PARSER_T_INT },
	};
	struct parser_spec spec = {
		.name = "app",
		.regex = "^(?<time>\\S+) (?<status>\\S+) (?<rt>\\S+) (?<path>\\S+)"
			 "(?: (?<method>\\S+))?(?: (?<bytes>\\S+))?$",
		.types = types,
		.ntypes = KL_ARRAY_LEN(types),
		.time_field = "time",
		.time_format = "iso8601",
	};
	char err[256];
	int eo;
	P = parser_new(&spec, err, sizeof err, &eo);
	if (!P) {
		fprintf(stderr, "parser_new: %s\n", err);
		return -1;
	}
	MD = pcre2_match_data_create(1, NULL);
	const char *tmp = getenv("TMPDIR");
	snprintf(DIR_, sizeof DIR_, "%s/klaxon-expr-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!MD || !mkdtemp(DIR_))
		return -1;
	snprintf(RULEFILE, sizeof RULEFILE, "%s/rules.yml", DIR_);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	unlink(RULEFILE);
	rmdir(DIR_);
	pcre2_match_data_free(MD);
	parser_free(P);
	return 0;
}

/* One parsed event; its fields are views into line. */
struct tev {
	char line[512];
	struct parser_event ev;
};

/* Parse "TIME rest" with TIME = us (whole milliseconds) as RFC 3339. */
static void mkev(struct tev *t, int64_t us, const char *rest)
{
	char ts[KL_RFC3339_MAX];
	kl_format_rfc3339(us, true, ts);
	int n = snprintf(t->line, sizeof t->line, "%s %s", ts, rest);
	assert_in_range(n, 1, sizeof t->line - 1);
	parser_event_init(&t->ev, P);
	int rc = parser_parse(P, t->line, (size_t)n, 0, &t->ev);
	if (rc != 0) {
		print_error("line '%s' does not parse: %d\n", t->line, rc);
		fail();
	}
	assert_int_equal(t->ev.time_us, us);
}

/* Compile or fail, printing the message. */
static void compile_ok(const char *src, struct expr *e)
{
	char err[512] = "";
	size_t off = 0;
	int rc = expr_compile(src, P, e, err, sizeof err, &off);
	if (rc != 0) {
		print_error("expr_compile(\"%s\") = %d at offset %zu: %s\n", src, rc, off, err);
		fail();
	}
}

/* ------------------------------------------------------------------------- */
/* the whole path: a one-rule file, fed and evaluated */

struct outcome {
	unsigned fired;
	double value;
	char diag[1024];
};

static void on_transition(void *ctx, const struct rules_transition *t)
{
	struct outcome *o = ctx;
	if (t->status == RULES_FIRING) {
		o->fired++;
		o->value = t->value;
	}
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

/*
 * Load `expr` as the only rule (window 1m, for 0) over source "app", feed the
 * events rests[0..n) at BASE + i seconds, evaluate at BASE + n seconds.
 */
static struct outcome run_expr(const char *expr, const char *const *rests, size_t n)
{
	struct outcome o = { 0, NAN, "" };
	struct kl_buf y = { 0 };
	assert_int_equal(kl_buf_append_str(&y, "rules:\n  - alert: T\n    source: app\n"
					     "    window: 1m\n    expr: '"),
			 0);
	for (const char *s = expr; *s; s++) { /* YAML single quotes: '' is ' */
		if (*s == '\'')
			assert_int_equal(kl_buf_append(&y, "''", 2), 0);
		else
			assert_int_equal(kl_buf_append(&y, s, 1), 0);
	}
	assert_int_equal(kl_buf_append_str(&y, "'\n"), 0);
	write_file(RULEFILE, y.p);
	kl_buf_free(&y);

	char *dtext = NULL;
	size_t dlen = 0;
	struct kl_diag d = { open_memstream(&dtext, &dlen), 0 };
	assert_non_null(d.out);
	const struct rules_source src[] = { { "app", P } };
	const char *files[] = { RULEFILE };
	struct rules_set *rs = rules_load(files, 1, src, 1, &d);
	fclose(d.out);
	if (!rs) {
		print_error("rules_load of expr '%s' failed:\n%s", expr, dtext ? dtext : "");
		free(dtext);
		fail();
	}
	free(dtext);
	for (size_t i = 0; i < n; i++) {
		struct tev t;
		mkev(&t, BASE_US + (int64_t)i * SEC, rests[i]);
		rules_feed(rs, 0, &t.ev);
	}
	rules_eval_all(rs, BASE_US + (int64_t)n * SEC, on_transition, &o);
	rules_free(rs);
	return o;
}

/* The value of a numeric expression A over the events: `(A) != 1e300` fires
 * with A as its value unless A is undefined (NaN). */
static double value_of(const char *a, const char *const *rests, size_t n)
{
	char src[512];
	snprintf(src, sizeof src, "(%s) != 1e300", a);
	struct outcome o = run_expr(src, rests, n);
	return o.fired ? o.value : NAN;
}

static bool holds(const char *cond, const char *const *rests, size_t n)
{
	return run_expr(cond, rests, n).fired > 0;
}

#define assert_holds(cond, rests, n, want)                                                  \
	do {                                                                                \
		bool got_ = holds((cond), (rests), (n));                                    \
		if (got_ != (want)) {                                                       \
			print_error("%s: got %s, expected %s\n", (cond),                    \
				    got_ ? "true" : "false", (want) ? "true" : "false");    \
			fail();                                                             \
		}                                                                           \
	} while (0)

/* ------------------------------------------------------------------------- */
/* filters */

struct fcase {
	const char *filter;
	const char *want; /* one '0'/'1' per event of FEVENTS */
};

static const char *const FEVENTS[] = {
	/* A */ "503 0.412 /api/debts GET 1200",
	/* B */ "200 - /health",
	/* C */ "301 2.5 /login POST 20000000",
	/* D */ "200 0.1 /q'x\"y",
};

static const struct fcase FCASES[] = {
	/* comparisons of numbers */
	{ "status == 503", "1000" },
	{ "status != 503", "0111" },
	{ "status < 301", "0101" },
	{ "status <= 301", "0111" },
	{ "status > 301", "1000" },
	{ "status >= 301", "1010" },
	{ "status == 503.0", "1000" },
	{ "status > -1", "1111" },
	/* units in filters; rt absent in B ("-") */
	{ "rt > 400ms", "1010" },
	{ "rt < 1s", "1001" },
	{ "rt >= 2.5s", "0010" },
	{ "rt == 0.412", "1000" },
	{ "rt != 0.412", "0111" }, /* an absent value is "not 0.412" */
	{ "rt > -1", "1011" },	   /* ... but not greater than anything */
	{ "rt <= 1m", "1011" },
	{ "bytes > 10MB", "0010" },
	{ "bytes <= 64KiB", "1000" },
	/* strings */
	{ "path == \"/health\"", "0100" },
	{ "path != \"/health\"", "1011" },
	{ "path == '/health'", "0100" },
	{ "path == \"/q'x\\\"y\"", "0001" },
	{ "path == '/q\\'x\"y'", "0001" },
	{ "method == \"GET\"", "1000" },
	{ "method != \"GET\"", "0111" }, /* absent method */
	/* regexes */
	{ "path =~ \"^/api/\"", "1000" },
	{ "path !~ \"^/api/\"", "0111" },
	{ "path =~ '^/api/\\w+$'", "1000" },
	{ "method =~ \"GET|POST\"", "1010" },
	{ "method !~ \"GET\"", "0111" },
	{ "status =~ \"^5\"", "1000" },
	{ "time =~ \"^2023-11-14T\"", "1111" },
	/* in, not in */
	{ "status in (200, 301)", "0111" },
	{ "status not in (200, 301)", "1000" },
	{ "status in (503)", "1000" },
	{ "rt in (0.412, 2.5s)", "1010" },
	{ "rt not in (0.412)", "0111" },
	{ "rt in (-1, 0.1)", "0001" },
	{ "path in (\"/health\", '/login')", "0110" },
	{ "method in (\"GET\", \"POST\")", "1010" },
	{ "method not in (\"GET\")", "0111" },
	/* and, or, not, parentheses, precedence */
	{ "status >= 500 and path =~ \"debts\"", "1000" },
	{ "status >= 500 or path == \"/health\"", "1100" },
	{ "not status >= 500", "0111" },
	{ "not rt > 1", "1101" },
	{ "not not status == 200", "0101" },
	{ "not (status >= 500 or rt > 2)", "0101" },
	{ "status == 200 or status == 301 and method == \"POST\"", "0111" },
	{ "(status == 200 or status == 301) and method == \"POST\"", "0010" },
	{ "status == 200 and rt < 1 or status == 301", "0011" },
	{ "not status == 200 and not status == 301", "1000" },
	{ "((status == 503))", "1000" },
	{ "status==503 and(path=~\"api\")", "1000" },
};

static void test_filters(void **state)
{
	(void)state;
	unsigned bad = 0;
	for (size_t c = 0; c < KL_ARRAY_LEN(FCASES); c++) {
		char src[256];
		snprintf(src, sizeof src, "count(%s) > 0", FCASES[c].filter);
		struct expr e;
		compile_ok(src, &e);
		assert_int_equal(e.naggs, 1);
		assert_int_equal(e.aggs[0].kind, AGG_COUNT);
		assert_non_null(e.aggs[0].filter);
		for (size_t i = 0; i < KL_ARRAY_LEN(FEVENTS); i++) {
			struct tev t;
			mkev(&t, BASE_US, FEVENTS[i]);
			bool got = filt_match(e.aggs[0].filter, &t.ev, MD);
			bool want = FCASES[c].want[i] == '1';
			if (got != want) {
				print_error("filter %s on '%s': got %s, expected %s\n", FCASES[c].filter,
					    FEVENTS[i], got ? "match" : "no match",
					    want ? "match" : "no match");
				bad++;
			}
		}
		expr_free(&e);
	}
	assert_int_equal(bad, 0);
}

/* The built-in nginx parser treats remote_user "-" as absent. */
static void test_filter_absent_builtin(void **state)
{
	(void)state;
	struct parser_spec spec = { .name = "web", .type = "nginx_timed" };
	char err[256];
	int eo;
	struct parser *np = parser_new(&spec, err, sizeof err, &eo);
	assert_non_null(np);
	static const char line[] =
		"203.0.113.7 - - [14/Nov/2023:22:13:20 +0000] \"GET /api/debts HTTP/1.1\" 503 512 "
		"\"-\" \"curl/8.0\" rt=0.412 urt=\"-\"";
	struct parser_event ev;
	parser_event_init(&ev, np);
	assert_int_equal(parser_parse(np, line, sizeof line - 1, 0, &ev), 0);
	static const struct {
		const char *filter;
		bool want;
	} cases[] = {
		{ "remote_user == \"-\"", false },
		{ "remote_user != \"alice\"", true },
		{ "remote_user =~ \".\"", false },
		{ "remote_user !~ \".\"", true },
		{ "remote_user in (\"-\")", false },
		{ "remote_user not in (\"-\")", true },
		{ "upstream_response_time >= 0", false },
		{ "upstream_response_time != 0", true },
		{ "request_time > 400ms and status == 503", true },
	};
	for (size_t c = 0; c < KL_ARRAY_LEN(cases); c++) {
		char src[256], msg[256];
		snprintf(src, sizeof src, "count(%s) > 0", cases[c].filter);
		struct expr e;
		size_t off;
		int rc = expr_compile(src, np, &e, msg, sizeof msg, &off);
		if (rc != 0) {
			print_error("%s: %s\n", src, msg);
			fail();
		}
		bool got = filt_match(e.aggs[0].filter, &ev, MD);
		if (got != cases[c].want) {
			print_error("filter %s: got %d, expected %d\n", cases[c].filter, got,
				    cases[c].want);
			fail();
		}
		expr_free(&e);
	}
	parser_free(np);
}

/* ------------------------------------------------------------------------- */
/* aggregates, read from a window */

struct win {
	struct expr e;
	struct window_shape s;
	struct window w;
	struct sketch sk;
	struct hll hl;
};

/* A 60 s window of 1 s buckets over the compiled src. */
static void win_open(struct win *x, const char *src)
{
	memset(x, 0, sizeof *x);
	compile_ok(src, &x->e);
	x->s = (struct window_shape){ .width_us = SEC, .nwin = 60, .nb = 62, .expr = &x->e };
	assert_int_equal(window_init(&x->w, &x->s), 0);
	sketch_init(&x->sk);
	hll_init(&x->hl);
}

static void win_add(struct win *x, int64_t us, const char *rest)
{
	struct tev t;
	mkev(&t, us, rest);
	assert_int_equal(window_add(&x->w, &x->s, &t.ev, MD, NULL), 0);
}

static double win_agg(struct win *x, unsigned i, int64_t now)
{
	assert_in_range(i, 0, x->e.naggs - 1);
	return window_agg(&x->w, &x->s, i, now, &x->sk, &x->hl);
}

static void win_close(struct win *x)
{
	window_free(&x->w, &x->s);
	sketch_free(&x->sk);
	hll_free(&x->hl);
	expr_free(&x->e);
}

static void test_aggregates(void **state)
{
	(void)state;
	struct win x;
	win_open(&x, "count() + count(status >= 500) + rate() + rate(status >= 500)"
		     " + ratio(status >= 500) + ratio(status >= 500, path =~ \"^/api\")"
		     " + sum(rt) + avg(rt) + min(rt) + max(rt) + last(rt)"
		     " + sum(rt, status >= 500) + avg(bytes, method == \"GET\")"
		     " + distinct(path) + distinct(method) + max(status, path == \"/none\") > 0");
	assert_int_equal(x.e.naggs, 16);
	static const struct {
		int64_t ms;
		const char *rest;
	} evs[] = {
		/* fed out of order on purpose: last() is by event time */
		{ 1000, "200 0.100 /api/a GET 100" },
		{ 5000, "503 1.500 /api/b GET 300" },
		{ 2000, "500 - /api/a POST" },
		{ 4000, "200 0.250 /static/x.css GET 500" },
		{ 3000, "502 3.000 /health" },
		{ 7000, "404 0.050 /api/c" },
		{ 6000, "200 0.600 /api/a PUT 7" },
	};
	for (size_t i = 0; i < KL_ARRAY_LEN(evs); i++)
		win_add(&x, BASE_US + evs[i].ms * MS, evs[i].rest);
	int64_t now = BASE_US + 10 * SEC;
	assert_dbl(win_agg(&x, 0, now), 7, 0);				/* count() */
	assert_dbl(win_agg(&x, 1, now), 3, 0);				/* count(5xx) */
	assert_dbl(win_agg(&x, 2, now), 7.0 / 60, 1e-12);		/* rate() */
	assert_dbl(win_agg(&x, 3, now), 3.0 / 60, 1e-12);		/* rate(5xx) */
	assert_dbl(win_agg(&x, 4, now), 3.0 / 7, 1e-12);		/* ratio */
	assert_dbl(win_agg(&x, 5, now), 2.0 / 5, 1e-12);		/* ratio with base */
	assert_dbl(win_agg(&x, 6, now), 0.1 + 1.5 + 0.25 + 3 + 0.05 + 0.6, 1e-9);
	assert_dbl(win_agg(&x, 7, now), (0.1 + 1.5 + 0.25 + 3 + 0.05 + 0.6) / 6, 1e-9);
	assert_dbl(win_agg(&x, 8, now), 0.05, 1e-12);			/* min(rt) */
	assert_dbl(win_agg(&x, 9, now), 3.0, 1e-12);			/* max(rt) */
	assert_dbl(win_agg(&x, 10, now), 0.05, 1e-12);			/* last(rt): t=7s */
	assert_dbl(win_agg(&x, 11, now), 1.5 + 3.0, 1e-12);		/* sum(rt, 5xx) */
	assert_dbl(win_agg(&x, 12, now), (100 + 300 + 500) / 3.0, 1e-9);/* avg(bytes, GET) */
	assert_dbl(win_agg(&x, 13, now), 5, 0.5);			/* distinct(path) */
	assert_dbl(win_agg(&x, 14, now), 3, 0.5);			/* distinct(method) */
	assert_is_nan(win_agg(&x, 15, now));				/* max of nothing */

	/* an empty window: counts are 0, the rest undefined (sum is 0) */
	int64_t later = BASE_US + 200 * SEC;
	assert_dbl(win_agg(&x, 0, later), 0, 0);
	assert_dbl(win_agg(&x, 2, later), 0, 0);
	assert_is_nan(win_agg(&x, 4, later));
	assert_is_nan(win_agg(&x, 5, later));
	assert_dbl(win_agg(&x, 6, later), 0, 0);
	assert_is_nan(win_agg(&x, 7, later));
	assert_is_nan(win_agg(&x, 8, later));
	assert_is_nan(win_agg(&x, 9, later));
	assert_is_nan(win_agg(&x, 10, later));
	assert_dbl(win_agg(&x, 13, later), 0, 0);
	win_close(&x);
}

/* last(): the value of the newest event by event time, whatever the order
 * of arrival; on a tie, the one fed last. */
static void test_last(void **state)
{
	(void)state;
	struct win x;
	win_open(&x, "last(status) > 0");
	win_add(&x, BASE_US + 30 * SEC, "201 - /a");
	win_add(&x, BASE_US + 10 * SEC, "202 - /a");
	/* before the newest event's bucket is in the window, the older one shows */
	assert_dbl(win_agg(&x, 0, BASE_US + 20 * SEC), 202, 0);
	assert_dbl(win_agg(&x, 0, BASE_US + 40 * SEC), 201, 0);
	win_add(&x, BASE_US + 30 * SEC, "203 - /a");
	assert_dbl(win_agg(&x, 0, BASE_US + 40 * SEC), 203, 0);
	/* when the newest leaves the window, nothing is left */
	assert_is_nan(win_agg(&x, 0, BASE_US + 100 * SEC));
	win_close(&x);
}

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void test_quantiles(void **state)
{
	(void)state;
	enum { N = 1000 };
	static double vals[N], sorted[N];
	struct win x;
	win_open(&x, "p50(rt) + p90(rt) + p95(rt) + p99(rt) + p95(rt, status >= 500) > 0");
	assert_int_equal(x.e.nsketches, 5);
	/* a skewed latency-like spread over three decades, fed in a scrambled
	 * order over 50 s */
	uint64_t seed = 12345;
	for (int i = 0; i < N; i++) {
		seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
		double u = (double)(seed >> 11) / 9007199254740992.0;
		vals[i] = 0.001 * pow(1000.0, u * u);
		char rest[64];
		snprintf(rest, sizeof rest, "%d %.6f /p", i % 4 == 0 ? 500 : 200, vals[i]);
		win_add(&x, BASE_US + (int64_t)((i * 7919) % N) * 50 * MS, rest);
		char back[32];
		snprintf(back, sizeof back, "%.6f", vals[i]);
		vals[i] = strtod(back, NULL); /* what the parser read */
	}
	memcpy(sorted, vals, sizeof sorted);
	qsort(sorted, N, sizeof *sorted, cmp_dbl);
	int64_t now = BASE_US + 55 * SEC;
	static const double qs[] = { 0.50, 0.90, 0.95, 0.99 };
	for (unsigned k = 0; k < 4; k++) {
		double exact = sorted[(size_t)floor(qs[k] * (N - 1))];
		double got = win_agg(&x, k, now);
		if (!(fabs(got - exact) <= 0.01 * exact)) {
			print_error("p%.0f(rt) = %.9g, exact %.9g: relative error %.4f > 1%%\n",
				    qs[k] * 100, got, exact, fabs(got - exact) / exact);
			fail();
		}
	}
	/* with a filter: only every fourth value */
	double sub[N / 4];
	for (int i = 0; i < N; i += 4)
		sub[i / 4] = vals[i];
	qsort(sub, N / 4, sizeof *sub, cmp_dbl);
	double exact = sub[(size_t)floor(0.95 * (N / 4 - 1))];
	assert_rel(win_agg(&x, 4, now), exact, 0.01);
	/* nothing in the window: undefined */
	assert_is_nan(win_agg(&x, 0, BASE_US + 500 * SEC));
	win_close(&x);
}

static void test_distinct(void **state)
{
	(void)state;
	struct win x;
	win_open(&x, "distinct(path) + distinct(status, status >= 500) + distinct(method) > 0");
	for (int i = 0; i < 600; i++) {
		char rest[64];
		snprintf(rest, sizeof rest, "%d 0.1 /item/%d%s", 500 + i % 7, i % 150,
			 i % 2 ? " GET" : "");
		win_add(&x, BASE_US + i * 50 * MS, rest);
	}
	int64_t now = BASE_US + 30 * SEC;
	assert_rel(win_agg(&x, 0, now), 150, 0.03);
	assert_rel(win_agg(&x, 1, now), 7, 0.03);
	assert_rel(win_agg(&x, 2, now), 1, 0.03); /* absent values are not a value */
	win_close(&x);
}

/* ------------------------------------------------------------------------- */
/* values: arithmetic, comparisons and booleans through the rules */

static const char *const VEVENTS[] = {
	"200 0.100 /a GET 100", "503 1.500 /a GET 300", "500 2.000 /b POST",
	"200 0.250 /c GET 500", "404 - /a",
};

static void test_arithmetic(void **state)
{
	(void)state;
	const size_t n = KL_ARRAY_LEN(VEVENTS);
	assert_dbl(value_of("count()", VEVENTS, n), 5, 0);
	assert_dbl(value_of("count() + 2", VEVENTS, n), 7, 0);
	assert_dbl(value_of("count() - 7", VEVENTS, n), -2, 0);
	assert_dbl(value_of("count() * 3", VEVENTS, n), 15, 0);
	assert_dbl(value_of("count() / 2", VEVENTS, n), 2.5, 0);
	assert_dbl(value_of("1 + 2 * 3", VEVENTS, n), 7, 0);
	assert_dbl(value_of("(1 + 2) * 3", VEVENTS, n), 9, 0);
	assert_dbl(value_of("10 - 4 - 3", VEVENTS, n), 3, 0);	/* left to right */
	assert_dbl(value_of("12 / 3 / 2", VEVENTS, n), 2, 0);
	assert_dbl(value_of("2 * 3 - 4 / 2", VEVENTS, n), 4, 0);
	assert_dbl(value_of("-count()", VEVENTS, n), -5, 0);
	assert_dbl(value_of("-(count() - 10)", VEVENTS, n), 5, 0);
	assert_dbl(value_of("2 - -3", VEVENTS, n), 5, 0);
	assert_dbl(value_of("- - 4", VEVENTS, n), 4, 0);
	assert_dbl(value_of("-2 * 3", VEVENTS, n), -6, 0);
	assert_dbl(value_of("count(status >= 500) / count()", VEVENTS, n), 0.4, 1e-12);
	assert_dbl(value_of("ratio(status >= 500)", VEVENTS, n), 0.4, 1e-12);
	assert_dbl(value_of("ratio(status >= 500, path == \"/a\")", VEVENTS, n), 1.0 / 3, 1e-12);
	assert_dbl(value_of("sum(rt) / count(rt >= 0)", VEVENTS, n), 3.85 / 4, 1e-12);
	assert_dbl(value_of("avg(rt)", VEVENTS, n), 3.85 / 4, 1e-12);
	assert_dbl(value_of("max(rt) - min(rt)", VEVENTS, n), 1.9, 1e-12);
	assert_dbl(value_of("sum(bytes) / 1KB", VEVENTS, n), 0.9, 1e-12);
	assert_dbl(value_of("rate() * 60", VEVENTS, n), 5, 1e-9);
	assert_dbl(value_of("last(status)", VEVENTS, n), 404, 0);
	assert_dbl(value_of("distinct(path)", VEVENTS, n), 3, 0.03);
	assert_rel(value_of("p50(rt)", VEVENTS, n), 0.25, 0.01);
	/* division by zero and undefined aggregates are undefined, not a number */
	assert_is_nan(value_of("count() / 0", VEVENTS, n));
	assert_is_nan(value_of("count() / count(status == 999)", VEVENTS, n));
	assert_is_nan(value_of("avg(rt, status == 999)", VEVENTS, n));
	assert_is_nan(value_of("ratio(status >= 500)", VEVENTS, 0));
	assert_dbl(value_of("count()", VEVENTS, 0), 0, 0);
}

static void test_units(void **state)
{
	(void)state;
	static const struct {
		const char *lit;
		double want;
	} cases[] = {
		{ "5%", 0.05 },	     { "2s", 2 },	   { "500ms", 0.5 },	 { "1m", 60 },
		{ "1h", 3600 },	     { "10MB", 10e6 },	   { "64KiB", 65536 },	 { "250us", 250e-6 },
		{ "1d", 86400 },     { "1w", 604800 },	   { "3B", 3 },		 { "2KB", 2000 },
		{ "1GB", 1e9 },	     { "1TB", 1e12 },	   { "2MiB", 2097152 },	 { "1GiB", 1073741824 },
		{ "0.5%", 0.005 },   { "1.5h", 5400 },	   { "1e3ms", 1 },	 { "12", 12 },
		{ ".5", 0.5 },	     { "2.5e-1", 0.25 },   { "100%", 1 },
		/* compound durations, as `| duration` writes them */
		{ "1m30s", 90 },     { "1h30m", 5400 },	   { "2d4h", 187200 },	 { "1w1d", 691200 },
		{ "1s500ms", 1.5 },  { "1h1m1s", 3661 },   { "1m0.5s", 60.5 },	 { "2s250us", 2.00025 },
	};
	for (size_t i = 0; i < KL_ARRAY_LEN(cases); i++) {
		char src[64];
		snprintf(src, sizeof src, "%s > 0", cases[i].lit);
		struct expr e;
		compile_ok(src, &e);
		assert_int_equal(e.root->kind, N_CMP);
		assert_int_equal(e.root->a->kind, N_NUM);
		if (!(fabs(e.root->a->num - cases[i].want) <= 1e-12 * cases[i].want)) {
			print_error("literal %s = %.17g, expected %.17g\n", cases[i].lit,
				    e.root->a->num, cases[i].want);
			fail();
		}
		expr_free(&e);
	}
	/* and through the rules, against values */
	const size_t n = KL_ARRAY_LEN(VEVENTS);
	assert_dbl(value_of("5%", VEVENTS, n), 0.05, 1e-15);
	assert_holds("ratio(status >= 500) > 5%", VEVENTS, n, true);
	assert_holds("ratio(status >= 500) < 50%", VEVENTS, n, true);
	assert_holds("ratio(status >= 500) > 40%", VEVENTS, n, false);
	assert_holds("max(rt) >= 2s and max(rt) < 2001ms", VEVENTS, n, true);
	assert_holds("sum(rt) < 1m and sum(rt) * 1h > 1h", VEVENTS, n, true);
	assert_holds("sum(bytes) < 1KiB and sum(bytes) > 0.8KB", VEVENTS, n, true);
	assert_holds("max(bytes) < 10MB", VEVENTS, n, true);
}

static void test_comparisons(void **state)
{
	(void)state;
	const size_t n = KL_ARRAY_LEN(VEVENTS); /* count() is 5 */
	static const struct {
		const char *cond;
		bool want;
	} cases[] = {
		{ "count() == 5", true },
		{ "count() == 4", false },
		{ "count() != 4", true },
		{ "count() != 5", false },
		{ "count() < 6", true },
		{ "count() < 5", false },
		{ "count() <= 5", true },
		{ "count() <= 4", false },
		{ "count() > 4", true },
		{ "count() > 5", false },
		{ "count() >= 5", true },
		{ "count() >= 6", false },
		{ "5 == count()", true },
		{ "count() > 4 and count() < 6", true },
		{ "count() > 4 and count() > 6", false },
		{ "count() > 6 or count() < 6", true },
		{ "count() > 6 or count() < 4", false },
		{ "not count() > 6", true },
		{ "not count() > 4", false },
		{ "not (count() > 4 and count() < 6)", false },
		{ "not not count() > 4", true },
		{ "count() > 6 or count() > 4 and count() < 6", true },	  /* and first */
		{ "(count() > 6 or count() > 4) and count() > 6", false },
		{ "count() > 6 and count() > 4 or count() == 5", true },
		{ "count() * 2 > count() + 4", true },			  /* 10 > 9 */
		{ "count() * 2 > count() + 5", false },
		{ "-count() < -4", true },
		{ "count(status >= 500) == 2 and ratio(status >= 500) == 40%", true },
		/* an undefined value makes its comparison false */
		{ "avg(rt, status == 999) < 1", false },
		{ "avg(rt, status == 999) >= 1", false },
		{ "count() / 0 != 1", false },
	};
	unsigned bad = 0;
	for (size_t i = 0; i < KL_ARRAY_LEN(cases); i++) {
		bool got = holds(cases[i].cond, VEVENTS, n);
		if (got != cases[i].want) {
			print_error("%s: got %s, expected %s\n", cases[i].cond, got ? "true" : "false",
				    cases[i].want ? "true" : "false");
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

/* The value a rule reports is the left-hand side of the first comparison. */
static void test_reported_value(void **state)
{
	(void)state;
	static const char *const ev[] = {
		"200 3.0 /a", "200 2.5 /a", "500 0.1 /a", "200 0.2 /a", "200 0.3 /a",
		"200 0.4 /a", "200 0.5 /a", "200 0.6 /a", "200 0.7 /a", "200 0.8 /a",
		"200 0.9 /a", "200 1.0 /a",
	};
	struct outcome o = run_expr("p95(rt) > 2s and count() > 10", ev, KL_ARRAY_LEN(ev));
	assert_int_equal(o.fired, 1);
	assert_rel(o.value, 2.5, 0.01);
	o = run_expr("count() > 10 and p95(rt) > 2s", ev, KL_ARRAY_LEN(ev));
	assert_int_equal(o.fired, 1);
	assert_dbl(o.value, 12, 0);
	o = run_expr("not (ratio(status >= 500) > 50%)", ev, KL_ARRAY_LEN(ev));
	assert_int_equal(o.fired, 1);
	assert_dbl(o.value, 1.0 / 12, 1e-12);
	o = run_expr("count() * 2 - 4 > 10", ev, KL_ARRAY_LEN(ev));
	assert_int_equal(o.fired, 1);
	assert_dbl(o.value, 20, 0);
}

/* ------------------------------------------------------------------------- */
/* compiled shape */

static void test_compiled_shape(void **state)
{
	(void)state;
	struct expr e;
	compile_ok("ratio(status >= 500, path =~ \"^/api\") > 5% or p99(rt) > 2s"
		   " or distinct(path) > 100 or sum(rt) > 0",
		   &e);
	assert_int_equal(e.naggs, 4);
	assert_int_equal(e.aggs[0].kind, AGG_RATIO);
	assert_non_null(e.aggs[0].filter);
	assert_non_null(e.aggs[0].base);
	assert_int_equal(e.aggs[0].field, -1);
	assert_int_equal(e.aggs[1].kind, AGG_QUANTILE);
	assert_dbl(e.aggs[1].q, 0.99, 0);
	assert_int_equal(e.aggs[1].field, parser_field_index(P, "rt", 2));
	assert_int_equal(e.aggs[2].kind, AGG_DISTINCT);
	assert_int_equal(e.aggs[3].kind, AGG_SUM);
	assert_null(e.aggs[3].filter);
	assert_int_equal(e.nsketches, 1);
	assert_int_equal(e.nhlls, 1);
	/* cells never overlap: cell 0 is every event, then each aggregate's own */
	unsigned next = 1;
	for (size_t i = 0; i < e.naggs; i++) {
		assert_int_equal(e.aggs[i].cell, next);
		next += e.aggs[i].ncells;
	}
	assert_int_equal(e.ncells, next);
	/* or is left-associative, each side a comparison */
	assert_int_equal(e.root->kind, N_OR);
	assert_int_equal(e.root->b->kind, N_CMP);
	assert_int_equal(e.root->b->op, OP_GT);
	expr_free(&e);
	expr_free(&e); /* idempotent on a freed (zeroed) expression */
}

/* ------------------------------------------------------------------------- */
/* errors */

struct ecase {
	const char *src;
	size_t off;	   /* 0-based byte offset */
	const char *msg;   /* a substring of the message */
	const char *msg2;  /* another, or NULL */
};

static const struct ecase ECASES[] = {
	/* unknown field: the message lists the parser's fields */
	{ "count(stauts >= 500) > 0", 6, "unknown field 'stauts' for parser 'app'",
	  "its fields are: time, status, rt, path, method, bytes" },
	{ "sum(latency) > 1", 4, "unknown field 'latency'", "status, rt, path" },
	{ "count(status >= 500 and pth == \"/\") > 0", 24, "unknown field 'pth'", NULL },
	/* unknown function, anomaly functions */
	{ "cuont() > 0", 0, "unknown function 'cuont'", "expected count, rate, ratio" },
	{ "count() > 1 and p42(rt) > 1", 16, "unknown function 'p42'", NULL },
	{ "zscore(count() > 3, 1h) > 3", 15, "expected ',' and a duration", NULL },
	{ "zscore(count(), 30s) > 3", 16, "the duration must be between 1m and 366d", NULL },
	{ "zscore(count()) > 3", 14, "expected ',' and a duration", NULL },
	{ "rate() < 0.5 * baseline(rate(), path)", 32, "baseline() takes a duration second", NULL },
	{ "new(1, 1d) > 0", 4, "new() takes a field name first", NULL },
	{ "new(stauts, 1d) > 0", 4, "unknown field 'stauts'", NULL },
	{ "zscore(1, 1h) > 3", 7, "zscore() takes an aggregate first", NULL },
	/* a string field used numerically */
	{ "sum(path) > 0", 4, "sum() needs a numeric field, and 'path' is a string", NULL },
	{ "p95(method) > 0", 4, "p95() needs a numeric field, and 'method' is a string", NULL },
	{ "last(path) > 0", 5, "last() needs a numeric field", NULL },
	{ "count(path > 5) > 0", 6, "field 'path' is a string; compare it with a quoted string",
	  NULL },
	{ "count(path in (1, 2)) > 0", 15, "expected a quoted string in the list for string field 'path'",
	  NULL },
	/* a number compared to a string */
	{ "count(status == \"500\") > 0", 16,
	  "field 'status' is a number (int); compare it with a number, not a string", NULL },
	{ "count(rt != \"x\") > 0", 12, "field 'rt' is a number (seconds)", NULL },
	{ "count(status in (200, \"x\")) > 0", 22, "expected a number, found '\"x\"'", NULL },
	{ "count(path < \"x\") > 0", 11, "strings compare only with == and !=", NULL },
	/* unknown unit */
	{ "count() > 5xyz", 11, "unknown unit 'xyz'", "expected one of %, us, ms, s" },
	{ "count(rt > 2sec) > 0", 12, "unknown unit 'sec'", NULL },
	{ "count() > 5kb", 11, "unknown unit 'kb'", NULL },
	/* compound durations: each part a smaller time unit */
	{ "count() > 1m30", 12, "'30' cannot follow 'm' in a duration", "(1h30m, 1m30s)" },
	{ "count() > 1s30m", 12, "'30m' cannot follow 's'", NULL },
	{ "count() > 1m1m", 12, "'1m' cannot follow 'm'", NULL },
	{ "count() > 1m30MB", 12, "'30MB' cannot follow 'm'", NULL },
	{ "count() > 1m30xs", 14, "unknown unit 'xs'", NULL },
	{ "count() > 10MB5KB", 14, "expected an operator", NULL },
	/* unterminated string */
	{ "count(path == \"/api) > 0", 14, "unterminated string: expected a closing \"", NULL },
	{ "count(path == '/api) > 0", 14, "unterminated string: expected a closing '", NULL },
	{ "count(path == \"/api\\\") > 0", 14, "unterminated string", NULL },
	/* bad regex: the offset is inside the quoted regex */
	{ "count(path =~ \"a(b\") > 0", 18, "bad regex: missing closing parenthesis", NULL },
	{ "count(path =~ \"[z-a]\") > 0", 18, "bad regex: range out of order", NULL },
	{ "count(path =~ 5) > 0", 14, "expected a quoted regex after '=~' or '!~'", NULL },
	/* ... counted in the expression as written, escapes included */
	{ "count(path =~ \"a\\\"b[z-a]\") > 0", 22, "bad regex: range out of order", NULL },
	{ "count(path !~ 'it\\'s(') > 0", 21, "bad regex: missing closing parenthesis", NULL },
	/* trailing junk */
	{ "count() > 5 junk", 12,
	  "expected an operator or the end of the expression, found 'junk'", NULL },
	{ "count() > 5)", 11, "expected an operator or the end of the expression, found ')'", NULL },
	{ "count() > 5 5", 12, "found '5'", NULL },
	/* not a condition */
	{ "count()", 0, "the expression must be a condition, e.g. ratio(status >= 500) > 5%", NULL },
	{ "count() + 1", 0, "the expression must be a condition", NULL },
	{ "count() > 1 > 2", 0, "a condition (comparison, and, or, not) cannot be used as a number",
	  NULL },
	{ "count() and count() > 1", 0, "the expression must be a condition", NULL },
	/* the rest of the grammar */
	{ "", 0, "expected a number, an aggregate such as count() or '(', found the end of the expression",
	  NULL },
	{ "count() >", 9, "found the end of the expression", NULL },
	{ "count( > 0", 7, "expected a field name, 'not' or '(', found '>'", NULL },
	{ "count(status >= 500 > 0", 20, "expected ')' to close the call, found '>'", NULL },
	{ "(count() > 0", 12, "expected ')', found the end of the expression", NULL },
	{ "ratio() > 0", 6, "ratio() needs a filter", NULL },
	{ "sum() > 0", 4, "sum() takes a field name first, found ')'", NULL },
	{ "status > 5", 0, "'status' is not a function call", "max(status)" },
	{ "count(status) > 0", 12, "expected a comparison (== != < <= > >= =~ !~ in) after field 'status'",
	  NULL },
	{ "count(status not 5) > 0", 17, "expected 'in' after 'not'", NULL },
	{ "count(status in 200) > 0", 16, "expected '(' after 'in'", NULL },
	{ "count(status in (200 300)) > 0", 21, "expected ',' or ')' in the 'in' list", NULL },
	{ "count(status = 500) > 0", 13, "unexpected character '='", NULL },
	{ "count() > 1 && count() > 2", 12, "unexpected character '&'", NULL },
	{ "count() > 1.2.3", 10, "'1.2.3' is not a number", NULL },
};

static void test_errors(void **state)
{
	(void)state;
	unsigned bad = 0;
	for (size_t i = 0; i < KL_ARRAY_LEN(ECASES); i++) {
		const struct ecase *c = &ECASES[i];
		char err[512] = "";
		size_t off = 9999;
		struct expr e = { 0 };
		int rc = expr_compile(c->src, P, &e, err, sizeof err, &off);
		if (rc != -EINVAL) {
			print_error("'%s': expr_compile = %d, expected -EINVAL\n", c->src, rc);
			if (rc == 0)
				expr_free(&e);
			bad++;
			continue;
		}
		if (off != c->off || !strstr(err, c->msg) || (c->msg2 && !strstr(err, c->msg2))) {
			print_error("'%s':\n  got    offset %zu: %s\n  wanted offset %zu: ...%s...%s%s\n",
				    c->src, off, err, c->off, c->msg, c->msg2 ? c->msg2 : "",
				    c->msg2 ? "..." : "");
			bad++;
		}
		/* the public check says the same, with a 1-based column */
		char err2[512] = "";
		int col = -1;
		rc = rules_expr_check(c->src, P, err2, sizeof err2, &col);
		if (rc != -EINVAL || col != (int)c->off + 1 || strcmp(err, err2) != 0) {
			print_error("'%s': rules_expr_check = %d, col %d (want %zu), '%s'\n", c->src, rc,
				    col, c->off + 1, err2);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

/* A message never overflows the caller's buffer, and is still a C string. */
static void test_error_buffer(void **state)
{
	(void)state;
	char err[16];
	memset(err, 'x', sizeof err);
	size_t off = 0;
	struct expr e;
	assert_int_equal(expr_compile("count(stauts >= 500) > 0", P, &e, err, sizeof err, &off), -EINVAL);
	assert_int_equal(strlen(err), sizeof err - 1);
	assert_string_equal(err, "unknown field '");
	assert_int_equal(off, 6);
	/* a long unknown field name still lists the fields */
	char big[2048], src[2100];
	memset(big, 'f', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	snprintf(src, sizeof src, "count(%s > 1) > 0", big);
	char msg[4096];
	assert_int_equal(expr_compile(src, P, &e, msg, sizeof msg, &off), -EINVAL);
	assert_int_equal(off, 6);
	assert_contains(msg, "its fields are: time, status");
}

/* Valid input that stresses the lexer: blanks, no blanks, exponents. */
static void test_lexing(void **state)
{
	(void)state;
	static const char *const ok[] = {
		"count()>0",
		"  count ( status>=500 )\t>\n0  ",
		"count(status>=500)>=1e0",
		"count(rt<1.5e-1s)>=0",
		"ratio(status>=500,path=~'^/a')>5%",
		"count(path==\"a b\")==0",
		"count(path == \"a\\\\\") >= 0",
		"count(path == \"\") == 0",
		"count(not(status==200))>=0",
		"count(status in(200,201,-1))>=0",
		"-1 < count()",
		"(((count())))>(((0)))",
	};
	for (size_t i = 0; i < KL_ARRAY_LEN(ok); i++) {
		struct expr e;
		compile_ok(ok[i], &e);
		expr_free(&e);
	}
}

/* Nesting is bounded: very deep input is an error, never a crash. */
static void test_deep_nesting(void **state)
{
	(void)state;
	static const struct {
		const char *head, *unit, *tail;
	} cases[] = {
		{ "", "(", "count() > 0" },
		{ "", "-", "count() > 0" },
		{ "", "not ", "count() > 0" },
		{ "count(", "not ", "status == 1) > 0" },
		{ "count(", "(", "status == 1) > 0" },
	};
	enum { DEPTH = 200000 };
	for (size_t k = 0; k < KL_ARRAY_LEN(cases); k++) {
		struct kl_buf b = { 0 };
		assert_int_equal(kl_buf_append_str(&b, cases[k].head), 0);
		for (int i = 0; i < DEPTH; i++)
			assert_int_equal(kl_buf_append_str(&b, cases[k].unit), 0);
		assert_int_equal(kl_buf_append_str(&b, cases[k].tail), 0);
		char err[256] = "";
		size_t off = 0;
		struct expr e;
		int rc = expr_compile(b.p, P, &e, err, sizeof err, &off);
		if (rc == 0)
			expr_free(&e);
		assert_int_equal(rc, -EINVAL);
		assert_contains(err, "nested too deeply");
		assert_in_range(off, 1, b.len - 1);
		kl_buf_free(&b);
	}
	/* a sane depth is fine */
	struct kl_buf b = { 0 };
	for (int i = 0; i < 40; i++)
		assert_int_equal(kl_buf_append_str(&b, "(-"), 0);
	assert_int_equal(kl_buf_append_str(&b, "count(not not not (status == 1))"), 0);
	for (int i = 0; i < 40; i++)
		assert_int_equal(kl_buf_append_str(&b, ")"), 0);
	assert_int_equal(kl_buf_append_str(&b, " < 0"), 0);
	struct expr e;
	compile_ok(b.p, &e);
	expr_free(&e);
	kl_buf_free(&b);
}

/* Long flat chains build deep trees too (a + b + c ... is left-deep, and so
 * is a or b or c ...): checking, evaluating and freeing them recurse, so their
 * size is bounded as well. */
static void test_long_chains(void **state)
{
	(void)state;
	static const struct {
		const char *head, *unit, *tail;
	} cases[] = {
		{ "", "1 + ", "count() > 0" },
		{ "", "count() > 0 or ", "count() > 0" },
		{ "count(", "status == 1 or ", "status == 2) > 0" },
		{ "count(", "status == 1 and ", "status == 2) > 0" },
	};
	enum { N = 200000 };
	for (size_t k = 0; k < KL_ARRAY_LEN(cases); k++) {
		struct kl_buf b = { 0 };
		assert_int_equal(kl_buf_append_str(&b, cases[k].head), 0);
		for (int i = 0; i < N; i++)
			assert_int_equal(kl_buf_append_str(&b, cases[k].unit), 0);
		assert_int_equal(kl_buf_append_str(&b, cases[k].tail), 0);
		char err[256] = "";
		size_t off = 0;
		struct expr e;
		int rc = expr_compile(b.p, P, &e, err, sizeof err, &off);
		if (rc == 0)
			expr_free(&e);
		assert_int_equal(rc, -EINVAL);
		assert_contains(err, "too long");
		assert_in_range(off, 1, b.len - 1);
		kl_buf_free(&b);
	}
	/* a long but sane expression is fine */
	struct kl_buf b = { 0 };
	assert_int_equal(kl_buf_append_str(&b, "count("), 0);
	for (int i = 0; i < 100; i++)
		assert_int_equal(kl_buf_appendf(&b, "path == \"/p%d\" or ", i), 0);
	assert_int_equal(kl_buf_append_str(&b, "status == 1) + count() * 2 > 0"), 0);
	struct expr e;
	compile_ok(b.p, &e);
	expr_free(&e);
	kl_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_filters),
		cmocka_unit_test(test_filter_absent_builtin),
		cmocka_unit_test(test_aggregates),
		cmocka_unit_test(test_last),
		cmocka_unit_test(test_quantiles),
		cmocka_unit_test(test_distinct),
		cmocka_unit_test(test_arithmetic),
		cmocka_unit_test(test_units),
		cmocka_unit_test(test_comparisons),
		cmocka_unit_test(test_reported_value),
		cmocka_unit_test(test_compiled_shape),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_error_buffer),
		cmocka_unit_test(test_lexing),
		cmocka_unit_test(test_long_chains),
		cmocka_unit_test(test_deep_nesting),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
