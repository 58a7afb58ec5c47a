/*
 * test_window.c — rolling windows as rings of time buckets (rules/window.c):
 * when an event leaves the window, which late events are refused, events out
 * of order inside the ring, a ring across a long gap (recycled slots must not
 * leak old counts, extremes, sketches or distinct counters), negative times
 * (floor, not truncation, picks the bucket), and the rate's denominator.
 *
 * Windows are driven directly through rules_int.h with an expression compiled
 * against a parser without a time field, so an event's time is whatever
 * microsecond the test gives (negative too). Evaluation times only move
 * forward within a test, as they do in the rules.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/kl.h"
#include "parsers/parsers.h"
#include "rules/rules_int.h"

#define assert_dbl(got, want, tol)                                                              \
	do {                                                                                    \
		double g_ = (got), w_ = (want), t_ = (tol);                                     \
		if (!(fabs(g_ - w_) <= t_)) {                                                   \
			print_error("%s = %.17g\n  expected %s = %.17g (within %g)\n", #got, g_, \
				    #want, w_, t_);                                             \
			fail();                                                                 \
		}                                                                               \
	} while (0)
#define assert_is_nan(got)                                                                  \
	do {                                                                                \
		double g_ = (got);                                                          \
		if (!isnan(g_)) {                                                           \
			print_error("%s = %.17g, expected NaN (undefined)\n", #got, g_);    \
			fail();                                                             \
		}                                                                           \
	} while (0)

#define SEC 1000000LL
#define MS 1000LL

static struct parser *P;
static pcre2_match_data *MD;

static int group_setup(void **state)
{
	(void)state;
	kl_log_set_quiet(true);
	static const struct parser_field_spec types[] = {
		{ "status", PARSER_T_INT },
		{ "rt", PARSER_T_SECONDS },
	};
	struct parser_spec spec = {
		.name = "w",
		.regex = "^(?<status>\\S+) (?<rt>\\S+) (?<path>\\S+)$",
		.types = types,
		.ntypes = KL_ARRAY_LEN(types),
	};
	char err[256];
	int eo;
	P = parser_new(&spec, err, sizeof err, &eo);
	MD = pcre2_match_data_create(1, NULL);
	return P && MD ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	pcre2_match_data_free(MD);
	parser_free(P);
	return 0;
}

/* Aggregates every test reads, by index. */
enum { A_COUNT, A_SUM, A_MIN, A_MAX, A_LAST, A_P50, A_P99, A_DISTINCT, A_RATE, A_AVG, A_N };
static const char EXPR[] = "count() + sum(rt) + min(rt) + max(rt) + last(rt) + p50(rt) + p99(rt)"
			   " + distinct(path) + rate() + avg(rt) > 0";

struct win {
	struct expr e;
	struct window_shape s;
	struct window w;
	struct sketch sk;
	struct hll hl;
};

static void win_open(struct win *x, int64_t width_us, unsigned nwin)
{
	memset(x, 0, sizeof *x);
	char err[256];
	size_t off;
	assert_int_equal(expr_compile(EXPR, P, &x->e, err, sizeof err, &off), 0);
	assert_int_equal(x->e.naggs, A_N);
	x->s = (struct window_shape){ .width_us = width_us, .nwin = nwin, .nb = nwin + 2,
				      .expr = &x->e };
	assert_int_equal(window_init(&x->w, &x->s), 0);
	sketch_init(&x->sk);
	hll_init(&x->hl);
}

static void win_close(struct win *x)
{
	window_free(&x->w, &x->s);
	sketch_free(&x->sk);
	hll_free(&x->hl);
	expr_free(&x->e);
}

/* Add "STATUS RT PATH" at us; returns window_add's result. */
static int win_add(struct win *x, int64_t us, double rt, const char *path)
{
	char line[128];
	int n = snprintf(line, sizeof line, "200 %.6f %s", rt, path);
	struct parser_event ev;
	parser_event_init(&ev, P);
	assert_int_equal(parser_parse(P, line, (size_t)n, us, &ev), 0);
	assert_int_equal(ev.time_us, us);
	return window_add(&x->w, &x->s, &ev, MD, NULL);
}

#define ADD_OK(x, us, rt, path) assert_int_equal(win_add((x), (us), (rt), (path)), 0)
#define ADD_LATE(x, us, rt, path) assert_int_equal(win_add((x), (us), (rt), (path)), -ERANGE)

static double agg(struct win *x, unsigned i, int64_t now)
{
	return window_agg(&x->w, &x->s, i, now, &x->sk, &x->hl);
}

static double events(struct win *x, int64_t now)
{
	double n = window_events(&x->w, &x->s, now);
	/* cell 0 and count() always agree */
	assert_dbl(agg(x, A_COUNT, now), n, 0);
	return n;
}

/* ------------------------------------------------------------------------- */

/*
 * Bucket b covers [b·width, (b+1)·width); the window ending at now is the nwin
 * buckets up to now's. So an event stays in the window at least window - width
 * and leaves it at most `window` after it happened: exactly at the end of the
 * bucket nwin buckets after its own.
 */
static void test_expiry(void **state)
{
	(void)state;
	const int64_t W = 10 * SEC; /* window 60 s of six 10 s buckets */
	struct win x;
	win_open(&x, W, 6);
	const int64_t t0 = 100 * SEC;		 /* first instant of bucket 10 */
	const int64_t t1 = 110 * SEC - 1;	 /* last instant of bucket 10 */
	ADD_OK(&x, t0, 9.0, "/a");
	assert_dbl(events(&x, t0), 1, 0);
	ADD_OK(&x, t1, 8.0, "/b");
	assert_dbl(events(&x, t1), 2, 0);
	/* t0 + window - 1 µs, and t1 + window - width: still both */
	assert_dbl(events(&x, 160 * SEC - 1), 2, 0);
	assert_dbl(events(&x, 160 * SEC), 0, 0);	   /* both gone at 160 s */
	assert_dbl(events(&x, t0 + 60 * SEC + W), 0, 0);  /* window + one bucket */
	win_close(&x);

	/* the values leave with the events: extremes, quantiles, distinct, sums */
	win_open(&x, W, 6);
	ADD_OK(&x, 100 * SEC, 9.0, "/a"); /* bucket 10: leaves at 160 s */
	ADD_OK(&x, 125 * SEC, 1.0, "/b"); /* bucket 12: leaves at 180 s */
	ADD_OK(&x, 135 * SEC, 2.0, "/b"); /* bucket 13: leaves at 190 s */
	int64_t now = 159 * SEC;
	assert_dbl(events(&x, now), 3, 0);
	assert_dbl(agg(&x, A_SUM, now), 12, 1e-9);
	assert_dbl(agg(&x, A_MAX, now), 9, 0);
	assert_dbl(agg(&x, A_MIN, now), 1, 0);
	assert_dbl(agg(&x, A_LAST, now), 2, 0);
	assert_dbl(agg(&x, A_P50, now), 2, 0.02);
	assert_dbl(agg(&x, A_P99, now), 2, 0.02); /* rank floor(0.99 * 2) = 1 */
	assert_dbl(agg(&x, A_DISTINCT, now), 2, 0.02);
	now = 160 * SEC;
	assert_dbl(events(&x, now), 2, 0);
	assert_dbl(agg(&x, A_SUM, now), 3, 1e-9);
	assert_dbl(agg(&x, A_MAX, now), 2, 0);
	assert_dbl(agg(&x, A_P50, now), 1, 0.01);
	assert_dbl(agg(&x, A_P99, now), 1, 0.01); /* rank floor(0.99 * 1) = 0 */
	assert_dbl(agg(&x, A_DISTINCT, now), 1, 0.01);
	now = 185 * SEC;
	assert_dbl(events(&x, now), 1, 0);
	assert_dbl(agg(&x, A_MIN, now), 2, 0);
	assert_dbl(agg(&x, A_P50, now), 2, 0.02);
	assert_dbl(agg(&x, A_AVG, now), 2, 1e-12);
	now = 190 * SEC;
	assert_dbl(events(&x, now), 0, 0);
	assert_dbl(agg(&x, A_SUM, now), 0, 0);
	assert_is_nan(agg(&x, A_MIN, now));
	assert_is_nan(agg(&x, A_MAX, now));
	assert_is_nan(agg(&x, A_LAST, now));
	assert_is_nan(agg(&x, A_P50, now));
	assert_is_nan(agg(&x, A_AVG, now));
	assert_dbl(agg(&x, A_DISTINCT, now), 0, 0);
	win_close(&x);
}

/* rate() is per second over the whole window (width × nwin). */
static void test_rate(void **state)
{
	(void)state;
	struct win x;
	win_open(&x, 5 * SEC, 60); /* 5 m */
	for (int i = 0; i < 600; i++)
		ADD_OK(&x, 1000 * SEC + i * 500 * MS, 0.1, "/r");
	int64_t now = 1000 * SEC + 299 * SEC;
	assert_dbl(events(&x, now), 600, 0);
	assert_dbl(agg(&x, A_RATE, now), 2.0, 1e-12);
	win_close(&x);
}

/*
 * The ring holds nwin + 2 buckets: an event whose bucket is nb or more behind
 * the newest bucket written is late and refused (-ERANGE), and changes
 * nothing; one inside the ring is accepted, counted if inside the window.
 */
static void test_late(void **state)
{
	(void)state;
	struct win x;
	win_open(&x, SEC, 10); /* nb = 12 */
	ADD_OK(&x, 100 * SEC, 1.0, "/new");
	ADD_LATE(&x, 88 * SEC, 50.0, "/late");		/* bucket 88 = 100 - 12 */
	ADD_LATE(&x, 89 * SEC - 1, 50.0, "/late");	/* still bucket 88 */
	ADD_LATE(&x, -5 * SEC, 50.0, "/late");
	ADD_OK(&x, 89 * SEC, 40.0, "/ring");		/* bucket 89: in the ring ... */
	ADD_OK(&x, 95 * SEC, 2.0, "/win");		/* ... bucket 95: in the window */
	int64_t now = 100 * SEC + 500 * MS;		/* window: buckets 91..100 */
	assert_dbl(events(&x, now), 2, 0);
	assert_dbl(agg(&x, A_SUM, now), 3, 1e-12);
	assert_dbl(agg(&x, A_MAX, now), 2, 0);
	assert_dbl(agg(&x, A_P99, now), 1, 0.01); /* rank floor(0.99 * 1) = 0 */
	assert_dbl(agg(&x, A_DISTINCT, now), 2, 0.02);
	assert_dbl(agg(&x, A_LAST, now), 1, 0);

	/* the ring moves with the newest bucket */
	ADD_OK(&x, 150 * SEC, 3.0, "/n2");
	ADD_LATE(&x, 138 * SEC, 50.0, "/late");
	ADD_OK(&x, 139 * SEC, 50.0, "/ring2");		/* accepted, outside the window */
	ADD_LATE(&x, 100 * SEC, 50.0, "/late");
	now = 150 * SEC;
	assert_dbl(events(&x, now), 1, 0);
	assert_dbl(agg(&x, A_MAX, now), 3, 0);
	assert_dbl(agg(&x, A_P50, now), 3, 0.03);
	win_close(&x);
}

/* Events out of order inside the ring give exactly what in-order ones give. */
static void test_out_of_order(void **state)
{
	(void)state;
	enum { N = 400 };
	struct win a, b;
	win_open(&a, SEC, 30);
	win_open(&b, SEC, 30);
	static int64_t t[N];
	static double rt[N];
	static char path[N][16];
	for (int i = 0; i < N; i++) {
		t[i] = 5000 * SEC + (int64_t)i * 75 * MS; /* 30 s of events */
		rt[i] = 0.001 * (1 + (i * 37) % 997);
		snprintf(path[i], sizeof path[i], "/p%d", i % 23);
		ADD_OK(&a, t[i], rt[i], path[i]);
	}
	/* b: the same events, newest first in blocks, shuffled inside them */
	for (int blk = N / 40 - 1; blk >= 0; blk--)
		for (int k = 0; k < 40; k++) {
			int i = blk * 40 + (k * 17) % 40;
			ADD_OK(&b, t[i], rt[i], path[i]);
		}
	int64_t now = t[N - 1];
	for (unsigned i = 0; i < A_N; i++) {
		double va = agg(&a, i, now), vb = agg(&b, i, now);
		if (!(va == vb || fabs(va - vb) <= 1e-9 * fabs(va))) {
			print_error("aggregate %u: in order %.17g, out of order %.17g\n", i, va, vb);
			fail();
		}
	}
	assert_dbl(events(&b, now), N, 0);
	assert_dbl(agg(&b, A_LAST, now), rt[N - 1], 1e-12);
	assert_dbl(agg(&b, A_DISTINCT, now), 23, 0.5);
	win_close(&a);
	win_close(&b);
}

/*
 * After a gap longer than the ring, every slot holds a stale bucket: none of
 * it may show, events from before the gap are late, and a slot reused for a
 * new bucket starts empty (counts, extremes, last, sketches, distinct).
 */
static void test_long_gap(void **state)
{
	(void)state;
	struct win x;
	win_open(&x, SEC, 10); /* nb = 12 */
	for (int i = 0; i < 12; i++) {
		char p[16];
		snprintf(p, sizeof p, "/old%d", i);
		ADD_OK(&x, i * SEC + 300 * MS, 100.0 + i, p);
	}
	assert_dbl(events(&x, 11 * SEC), 10, 0);

	/* 12000 s later: the same slot as bucket 0 */
	int64_t t = 12000 * SEC + 300 * MS;
	ADD_OK(&x, t, 1.0, "/new");
	int64_t now = t;
	assert_dbl(events(&x, now), 1, 0);
	assert_dbl(agg(&x, A_SUM, now), 1, 1e-12);
	assert_dbl(agg(&x, A_MIN, now), 1, 0);
	assert_dbl(agg(&x, A_MAX, now), 1, 0);
	assert_dbl(agg(&x, A_LAST, now), 1, 0);
	assert_dbl(agg(&x, A_P50, now), 1, 0.01);
	assert_dbl(agg(&x, A_P99, now), 1, 0.01);
	assert_dbl(agg(&x, A_DISTINCT, now), 1, 0.01);
	ADD_LATE(&x, 5 * SEC, 100.0, "/old5");

	/* the window a little later still sees only the new event */
	now = t + 9 * SEC;
	assert_dbl(events(&x, now), 1, 0);
	/* and, past it, nothing at all */
	now = t + 10 * SEC;
	assert_dbl(events(&x, now), 0, 0);
	assert_is_nan(agg(&x, A_P50, now));

	/* a gap of exactly the ring's length: the slot is recycled */
	int64_t u = t + 12 * SEC;
	ADD_OK(&x, u, 7.0, "/again");
	assert_dbl(events(&x, u), 1, 0);
	assert_dbl(agg(&x, A_SUM, u), 7, 1e-12);
	assert_dbl(agg(&x, A_MIN, u), 7, 0);
	assert_dbl(agg(&x, A_P50, u), 7, 0.07);
	assert_dbl(agg(&x, A_DISTINCT, u), 1, 0.01);
	win_close(&x);
}

/* Times before 1970: bucket numbers are floors, so -1 µs is in bucket -1. */
static void test_negative_times(void **state)
{
	(void)state;
	struct win x;
	win_open(&x, SEC, 10); /* nb = 12 */
	ADD_OK(&x, -30 * SEC - 500 * MS, 30.0, "/a");	/* bucket -31 */
	ADD_OK(&x, -10 * SEC, 10.0, "/b");		/* bucket -10 */
	ADD_OK(&x, -5 * SEC, 5.0, "/c");		/* bucket -5 */
	ADD_OK(&x, -1, 1.0, "/d");			/* bucket -1 */
	int64_t now = -1;				/* window: buckets -10..-1 */
	assert_dbl(events(&x, now), 3, 0);
	assert_dbl(agg(&x, A_MAX, now), 10, 0);
	assert_dbl(agg(&x, A_LAST, now), 1, 0);
	ADD_OK(&x, 500 * MS, 0.5, "/e");		/* bucket 0 */
	now = 500 * MS;					/* window: buckets -9..0 */
	assert_dbl(events(&x, now), 3, 0);
	assert_dbl(agg(&x, A_SUM, now), 6.5, 1e-12);
	assert_dbl(agg(&x, A_MAX, now), 5, 0);
	assert_dbl(agg(&x, A_LAST, now), 0.5, 0);
	/* the ring: newest bucket 0, so bucket -12 is late, -11 is not */
	ADD_LATE(&x, -11 * SEC - 1, 99.0, "/late");
	ADD_OK(&x, -11 * SEC, 99.0, "/ring");
	/* the event at -1 µs leaves at 9 s (bucket -1 + 10), not 10 s */
	assert_dbl(events(&x, 9 * SEC - 1), 2, 0);
	assert_dbl(events(&x, 9 * SEC), 1, 0);
	assert_dbl(events(&x, 10 * SEC), 0, 0);
	win_close(&x);

	/* far before the epoch */
	win_open(&x, 5 * SEC, 60);
	const int64_t t = -2000000000LL * SEC; /* 1906 */
	ADD_OK(&x, t, 2.0, "/x");
	ADD_OK(&x, t + 1, 4.0, "/y");
	assert_dbl(events(&x, t + 299 * SEC), 2, 0);
	assert_dbl(agg(&x, A_AVG, t + 299 * SEC), 3, 1e-12);
	assert_dbl(events(&x, t + 300 * SEC), 0, 0);
	win_close(&x);
}

/* The smallest ring: one bucket in the window. */
static void test_one_bucket(void **state)
{
	(void)state;
	struct win x;
	win_open(&x, 100 * MS, 1); /* nb = 3 */
	ADD_OK(&x, 1000 * MS, 1.0, "/a");
	ADD_OK(&x, 1099 * MS, 2.0, "/a");
	assert_dbl(events(&x, 1099 * MS), 2, 0);
	assert_dbl(events(&x, 1100 * MS), 0, 0);
	ADD_OK(&x, 1250 * MS, 3.0, "/a");	/* bucket 12 */
	ADD_OK(&x, 1000 * MS, 1.0, "/a");	/* bucket 10: still in the ring */
	ADD_LATE(&x, 999 * MS, 1.0, "/a");	/* bucket 9 */
	assert_dbl(events(&x, 1250 * MS), 1, 0);
	assert_dbl(agg(&x, A_SUM, 1250 * MS), 3, 1e-12);
	assert_dbl(agg(&x, A_RATE, 1250 * MS), 10, 1e-9);
	win_close(&x);
}

/*
 * Events newer than now (a log whose clock runs ahead of the evaluator's) are
 * not in the window ending at now, for every aggregate alike.
 */
static void test_future_events(void **state)
{
	(void)state;
	struct win x;
	win_open(&x, SEC, 30);
	ADD_OK(&x, 10 * SEC, 1.0, "/now");
	ADD_OK(&x, 30 * SEC, 9.0, "/later");
	ADD_OK(&x, 31 * SEC, 9.0, "/later");
	ADD_OK(&x, 32 * SEC, 9.0, "/later");
	int64_t now = 20 * SEC;
	assert_dbl(events(&x, now), 1, 0);
	assert_dbl(agg(&x, A_MAX, now), 1, 0);
	assert_dbl(agg(&x, A_LAST, now), 1, 0);
	assert_dbl(agg(&x, A_DISTINCT, now), 1, 0.01);
	assert_dbl(agg(&x, A_P50, now), 1, 0.01);
	assert_dbl(agg(&x, A_P99, now), 1, 0.01);
	now = 35 * SEC;
	assert_dbl(events(&x, now), 4, 0);
	assert_dbl(agg(&x, A_P50, now), 9, 0.09);
	assert_dbl(agg(&x, A_P99, now), 9, 0.09);
	win_close(&x);
}

/* ------------------------------------------------------------------------- */
/* against a reference that keeps every event */

struct ref_ev {
	int64_t t;
	double rt; /* NaN: absent */
	int path;
	int order;
};

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static int64_t floordiv(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static uint64_t rnd_state = 88172645463325252ULL;
static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

static double rnd01(void)
{
	return (double)(rnd() >> 11) / 9007199254740992.0;
}

/* Compare every aggregate with the brute-force value at now. */
static void check_reference(struct win *x, const struct ref_ev *evs, size_t n, int64_t now,
			    double *scratch)
{
	const int64_t width = x->s.width_us;
	const int64_t cur = floordiv(now, width), lo = cur - (int64_t)x->s.nwin + 1;
	size_t cnt = 0, nrt = 0;
	double sum = 0, mn = INFINITY, mx = -INFINITY, last = NAN;
	int64_t last_t = INT64_MIN;
	int last_order = -1;
	bool seen[64] = { false };
	unsigned distinct = 0;
	for (size_t i = 0; i < n; i++) {
		int64_t b = floordiv(evs[i].t, width);
		if (b < lo || b > cur)
			continue;
		cnt++;
		if (!seen[evs[i].path]) {
			seen[evs[i].path] = true;
			distinct++;
		}
		if (isnan(evs[i].rt))
			continue;
		scratch[nrt++] = evs[i].rt;
		sum += evs[i].rt;
		mn = evs[i].rt < mn ? evs[i].rt : mn;
		mx = evs[i].rt > mx ? evs[i].rt : mx;
		if (evs[i].t > last_t || (evs[i].t == last_t && evs[i].order > last_order)) {
			last_t = evs[i].t;
			last_order = evs[i].order;
			last = evs[i].rt;
		}
	}
	double got[A_N];
	for (unsigned i = 0; i < A_N; i++)
		got[i] = agg(x, i, now);
	bool ok = got[A_COUNT] == (double)cnt && window_events(&x->w, &x->s, now) == (double)cnt &&
		  fabs(got[A_SUM] - sum) <= 1e-9 * (1 + fabs(sum)) &&
		  fabs(got[A_DISTINCT] - distinct) <= 0.03 * distinct + 0.5 &&
		  fabs(got[A_RATE] - (double)cnt / ((double)width * x->s.nwin / 1e6)) <= 1e-9;
	double q50 = NAN, q99 = NAN;
	if (nrt) {
		qsort(scratch, nrt, sizeof *scratch, cmp_dbl);
		q50 = scratch[(size_t)floor(0.50 * (double)(nrt - 1))];
		q99 = scratch[(size_t)floor(0.99 * (double)(nrt - 1))];
		ok = ok && got[A_MIN] == mn && got[A_MAX] == mx && got[A_LAST] == last &&
		     fabs(got[A_AVG] - sum / (double)nrt) <= 1e-9 * (1 + fabs(sum)) &&
		     fabs(got[A_P50] - q50) <= 0.01 * q50 && fabs(got[A_P99] - q99) <= 0.01 * q99;
	} else {
		ok = ok && isnan(got[A_MIN]) && isnan(got[A_MAX]) && isnan(got[A_LAST]) &&
		     isnan(got[A_AVG]) && isnan(got[A_P50]) && isnan(got[A_P99]);
	}
	if (!ok) {
		print_error("at now %" PRId64 " (%zu events fed):\n"
			    "  count %.17g want %zu\n  sum %.17g want %.17g\n"
			    "  min %.17g want %.17g\n  max %.17g want %.17g\n"
			    "  last %.17g want %.17g\n  avg %.17g want %.17g\n"
			    "  p50 %.17g want %.17g\n  p99 %.17g want %.17g\n"
			    "  distinct %.17g want %u\n  rate %.17g\n",
			    now, n, got[A_COUNT], cnt, got[A_SUM], sum, got[A_MIN], mn, got[A_MAX], mx,
			    got[A_LAST], last, got[A_AVG], nrt ? sum / (double)nrt : NAN, got[A_P50],
			    q50, got[A_P99], q99, got[A_DISTINCT], distinct, got[A_RATE]);
		fail();
	}
}

/*
 * Random traffic: mostly in order with jitter, bursts in one bucket, gaps
 * longer than the ring, late events (some inside the ring, some not), absent
 * values; evaluated now and then at a time that only moves forward, and is
 * at times behind the newest event. Every aggregate must equal the
 * brute-force value over the accepted events inside the window ending at now.
 */
static void test_reference(void **state)
{
	(void)state;
	enum { N = 20000 };
	static struct ref_ev evs[N];
	static double scratch[N];
	struct win x;
	win_open(&x, 250 * MS, 12); /* 3 s window, nb = 14 */
	size_t n = 0;
	int64_t t = -5 * SEC, now = INT64_MIN, newest_bucket = INT64_MIN;
	unsigned late_refused = 0, late_taken = 0, evals = 0;
	for (int i = 0; i < N; i++) {
		uint64_t r = rnd() % 1000;
		if (r < 5)
			t += (int64_t)(rnd() % (8 * SEC)); /* a gap, often past the ring */
		else if (r < 400)
			t += (int64_t)(rnd() % (200 * MS));
		int64_t et = t;
		if (rnd() % 100 < 7)
			et = t - (int64_t)(rnd() % (5 * SEC)); /* late */
		double rt = rnd() % 20 == 0 ? NAN : 0.001 * pow(10000.0, rnd01());
		int path = (int)(rnd() % 40);
		char p[16];
		snprintf(p, sizeof p, "/p%d", path);
		char line[64];
		int len = isnan(rt) ? snprintf(line, sizeof line, "200 - %s", p)
				    : snprintf(line, sizeof line, "200 %.6f %s", rt, p);
		if (!isnan(rt))
			rt = strtod(line + 4, NULL);
		struct parser_event ev;
		parser_event_init(&ev, P);
		assert_int_equal(parser_parse(P, line, (size_t)len, et, &ev), 0);
		int rc = window_add(&x.w, &x.s, &ev, MD, NULL);
		int64_t b = floordiv(et, x.s.width_us);
		bool late = newest_bucket != INT64_MIN && b <= newest_bucket - (int64_t)x.s.nb;
		if (late) {
			assert_int_equal(rc, -ERANGE);
			late_refused++;
		} else {
			assert_int_equal(rc, 0);
			evs[n++] = (struct ref_ev){ et, rt, path, i };
			late_taken += et < t;
			newest_bucket = b > newest_bucket ? b : newest_bucket;
		}
		if (rnd() % 50 == 0) {
			/* now is sometimes behind the newest event, by less
			 * than a bucket (the ring's margin) */
			int64_t want = t - 240 * MS + (int64_t)(rnd() % (2 * SEC));
			now = want > now ? want : now;
			check_reference(&x, evs, n, now, scratch);
			evals++;
		}
	}
	/* the mix happened */
	assert_in_range(late_refused, 50, N);
	assert_in_range(late_taken, 50, N);
	assert_in_range(evals, 200, N);
	win_close(&x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_expiry),
		cmocka_unit_test(test_rate),
		cmocka_unit_test(test_late),
		cmocka_unit_test(test_out_of_order),
		cmocka_unit_test(test_long_gap),
		cmocka_unit_test(test_negative_times),
		cmocka_unit_test(test_one_bucket),
		cmocka_unit_test(test_future_events),
		cmocka_unit_test(test_reference),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
