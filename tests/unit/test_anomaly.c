/*
 * test_anomaly.c — the arithmetic behind zscore(), baseline() and new()
 * (rules/history.c), driven through rules_int.h:
 *  - hist_zscore against a brute-force mean and sample standard deviation of
 *    the per-minute samples in the last H (slots of a minute, and coarser
 *    slots for H over a day), evaluated between samples too (the totals are
 *    kept between samples);
 *  - no verdict: before H/2, with fewer than 2 samples, with zero variance,
 *    for an undefined value; after a gap longer than H (everything forgotten)
 *    until H/2 is known again; a short gap keeps the slots still in H;
 *  - hist_baseline: the median of the values 1..7 periods ago at the same
 *    phase, none before one period, a phase never sampled, phases missing in
 *    some periods;
 *  - seen tables: the learning period, a value seen again after more than H
 *    is new, the cap forgets the least recently seen first and counts it;
 *  - encode/decode round trips of histories and seen tables, and of a window
 *    whose ring holds a bucket it has left behind (a quiet source).
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
#define assert_is_nan(got)                                                               \
	do {                                                                             \
		double g_ = (got);                                                       \
		if (!isnan(g_)) {                                                        \
			print_error("%s = %.17g, expected NaN (no verdict)\n", #got, g_); \
			fail();                                                          \
		}                                                                        \
	} while (0)

#define SEC 1000000LL
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)
#define T0 (1700000000LL * SEC) /* a whole minute */

/* a deterministic spread of values */
static double val(int64_t i)
{
	uint64_t x = (uint64_t)i * 0x9e3779b97f4a7c15ULL;
	x ^= x >> 29;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 32;
	return 10.0 + (double)(x % 10000) / 1000.0; /* 10 .. 20 */
}

/* ---- zscore ----------------------------------------------------------------- */

struct sample {
	int64_t t;
	double v;
};

/* (v - mean) / sd of the samples whose slot is in the last nslots slots */
static double brute_z(const struct sample *s, size_t n, const struct hist_shape *hs, int64_t now,
		      double v, double *mean_out)
{
	int64_t cur = now / hs->slot_us;
	double sum = 0, k = 0;
	for (size_t i = 0; i < n; i++) {
		int64_t b = s[i].t / hs->slot_us;
		if (b > cur - (int64_t)hs->nslots && b <= cur) {
			sum += s[i].v;
			k++;
		}
	}
	double mean = sum / k, sq = 0;
	for (size_t i = 0; i < n; i++) {
		int64_t b = s[i].t / hs->slot_us;
		if (b > cur - (int64_t)hs->nslots && b <= cur)
			sq += (s[i].v - mean) * (s[i].v - mean);
	}
	*mean_out = mean;
	return (v - mean) / sqrt(sq / (k - 1));
}

static void zscore_vs_brute(int64_t span, int minutes, int every)
{
	struct hist_shape hs;
	struct hist h;
	hist_shape_init(&hs, HIST_ZSCORE, span);
	assert_int_equal(hist_init(&h, &hs), 0);
	struct sample *s = calloc((size_t)minutes, sizeof *s);
	assert_non_null(s);
	size_t n = 0;
	int checked = 0;
	for (int m = 0; m < minutes; m++) {
		int64_t t = T0 + m * MIN + 7 * SEC;
		assert_true(hist_sample_due(&h, t));
		double v = val(m);
		hist_sample(&h, &hs, t, v);
		assert_false(hist_sample_due(&h, t + 30 * SEC));
		hist_sample(&h, &hs, t + 30 * SEC, 1e9); /* same minute: ignored */
		s[n++] = (struct sample){ t, v };
		if (t - s[0].t < span / 2 || m % every)
			continue;
		/* evaluated several times a minute, as rules do */
		for (int64_t dt = 0; dt < MIN - 7 * SEC; dt += 20 * SEC) {
			double mean, want = brute_z(s, n, &hs, t + dt, 15.5, &mean);
			double got = hist_zscore(&h, &hs, t + dt, 15.5);
			assert_dbl(got, want, 1e-9 * fabs(want) + 1e-9);
			assert_dbl(h.last_ref, mean, 1e-9);
			assert_dbl(h.last_score, want, 1e-9 * fabs(want) + 1e-9);
		}
		checked++;
	}
	assert_true(checked > 0);
	free(s);
	hist_free(&h);
}

static void test_zscore_arithmetic_minute_slots(void **state)
{
	(void)state;
	struct hist_shape hs;
	hist_shape_init(&hs, HIST_ZSCORE, HOUR);
	assert_int_equal(hs.nslots, 60);
	assert_int_equal(hs.slot_us, MIN);
	zscore_vs_brute(HOUR, 200, 7);	    /* the ring wraps three times */
	zscore_vs_brute(DAY, 3000, 97);	    /* 1440 slots of a minute */
}

static void test_zscore_arithmetic_coarse_slots(void **state)
{
	(void)state;
	struct hist_shape hs;
	hist_shape_init(&hs, HIST_ZSCORE, 3 * DAY);
	assert_int_equal(hs.nslots, 1440);
	assert_int_equal(hs.slot_us, 3 * MIN); /* three samples a slot */
	assert_int_equal(hist_memory(&hs), 1440 * 3 * sizeof(double));
	zscore_vs_brute(3 * DAY, 6000, 331);
}

static void test_zscore_no_verdict(void **state)
{
	(void)state;
	struct hist_shape hs;
	struct hist h;
	hist_shape_init(&hs, HIST_ZSCORE, HOUR);
	assert_int_equal(hist_init(&h, &hs), 0);
	assert_is_nan(hist_zscore(&h, &hs, T0, 1)); /* nothing known */
	for (int m = 0; m < 30; m++)
		hist_sample(&h, &hs, T0 + m * MIN, val(m));
	/* the first sample at T0: half of H is known at T0 + 30m */
	assert_is_nan(hist_zscore(&h, &hs, T0 + 29 * MIN + 59 * SEC, 15));
	assert_false(isnan(hist_zscore(&h, &hs, T0 + 30 * MIN, 15)));
	assert_is_nan(hist_zscore(&h, &hs, T0 + 30 * MIN, NAN)); /* nothing to judge */
	assert_is_nan(h.last_score);
	hist_free(&h);

	/* fewer than 2 samples: H = 2m, half known after a minute */
	hist_shape_init(&hs, HIST_ZSCORE, 2 * MIN);
	assert_int_equal(hist_init(&h, &hs), 0);
	hist_sample(&h, &hs, T0, 5);
	assert_is_nan(hist_zscore(&h, &hs, T0 + 90 * SEC, 6));
	hist_sample(&h, &hs, T0 + 90 * SEC, 7);
	assert_dbl(hist_zscore(&h, &hs, T0 + 90 * SEC, 6), 0, 1e-12); /* mean 6, sd √2 */
	assert_dbl(hist_zscore(&h, &hs, T0 + 90 * SEC, 6 + sqrt(2)), 1, 1e-12);
	hist_free(&h);

	/* no spread: no verdict (not infinity), the mean still reported */
	hist_shape_init(&hs, HIST_ZSCORE, HOUR);
	assert_int_equal(hist_init(&h, &hs), 0);
	for (int m = 0; m < 45; m++)
		hist_sample(&h, &hs, T0 + m * MIN, 0.25);
	assert_is_nan(hist_zscore(&h, &hs, T0 + 45 * MIN, 0.9));
	assert_dbl(h.last_ref, 0.25, 1e-15);
	/* undefined samples (a ratio over no events) teach nothing */
	hist_sample(&h, &hs, T0 + 45 * MIN, NAN);
	assert_is_nan(hist_zscore(&h, &hs, T0 + 45 * MIN, 0.9));
	hist_sample(&h, &hs, T0 + 46 * MIN, 0.75);
	assert_false(isnan(hist_zscore(&h, &hs, T0 + 46 * MIN, 0.9)));
	hist_free(&h);
}

static void test_zscore_gaps(void **state)
{
	(void)state;
	struct hist_shape hs;
	struct hist h;
	hist_shape_init(&hs, HIST_ZSCORE, HOUR);

	/* a short gap: the slots still in H stay known */
	assert_int_equal(hist_init(&h, &hs), 0);
	struct sample s[80];
	size_t n = 0;
	for (int m = 0; m < 60; m++) {
		s[n] = (struct sample){ T0 + m * MIN, val(m) };
		hist_sample(&h, &hs, s[n].t, s[n].v);
		n++;
	}
	s[n] = (struct sample){ T0 + 75 * MIN, 30 };
	hist_sample(&h, &hs, s[n].t, s[n].v);
	n++;
	double mean, want = brute_z(s, n, &hs, T0 + 75 * MIN, 12, &mean);
	assert_dbl(hist_zscore(&h, &hs, T0 + 75 * MIN, 12), want, 1e-9);
	assert_dbl(h.last_ref, mean, 1e-9);
	/* evaluated later without samples: the old slots leave H one by one */
	want = brute_z(s, n, &hs, T0 + 110 * MIN, 12, &mean);
	assert_dbl(hist_zscore(&h, &hs, T0 + 110 * MIN, 12), want, 1e-9);
	/* past H of the last sample but one, only one is left: no verdict */
	assert_is_nan(hist_zscore(&h, &hs, T0 + 119 * MIN + 30 * SEC, 12));
	hist_free(&h);

	/* a gap longer than H forgets everything, and the history starts over:
	 * no verdict until half of H is known again */
	assert_int_equal(hist_init(&h, &hs), 0);
	for (int m = 0; m < 60; m++)
		hist_sample(&h, &hs, T0 + m * MIN, val(m));
	int64_t back = T0 + 59 * MIN + HOUR + 5 * MIN;
	for (int m = 0; m < 5; m++)
		hist_sample(&h, &hs, back + m * MIN, 100 + m);
	assert_is_nan(hist_zscore(&h, &hs, back + 4 * MIN, 100)); /* 5 minutes known */
	for (int m = 5; m < 30; m++)
		hist_sample(&h, &hs, back + m * MIN, 100 + m % 7);
	double z = hist_zscore(&h, &hs, back + 30 * MIN, 100);
	assert_false(isnan(z));
	/* and nothing of before the gap counts */
	double sum = 0, sq = 0;
	for (int m = 0; m < 30; m++)
		sum += m < 5 ? 100 + m : 100 + m % 7;
	double mu = sum / 30;
	for (int m = 0; m < 30; m++) {
		double v = m < 5 ? 100 + m : 100 + m % 7;
		sq += (v - mu) * (v - mu);
	}
	assert_dbl(z, (100 - mu) / sqrt(sq / 29), 1e-9);
	hist_free(&h);

	/* the clock going back keeps the ring as it is */
	assert_int_equal(hist_init(&h, &hs), 0);
	for (int m = 0; m < 40; m++)
		hist_sample(&h, &hs, T0 + m * MIN, val(m));
	double before = hist_zscore(&h, &hs, T0 + 40 * MIN, 12);
	hist_sample(&h, &hs, T0 + 10 * MIN, 1e6);
	assert_dbl(hist_zscore(&h, &hs, T0 + 40 * MIN, 12), before, 1e-12);
	hist_free(&h);
}

/* ---- baseline ---------------------------------------------------------------- */

static double bval(int period, int phase)
{
	return 100 + phase + 10 * ((period * 7) % 9); /* periods in a shuffled order */
}

static int cmpd(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
	qsort(v, n, sizeof *v, cmpd);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void test_baseline_median(void **state)
{
	(void)state;
	struct hist_shape hs;
	struct hist h;
	hist_shape_init(&hs, HIST_BASELINE, HOUR);
	assert_int_equal(hs.per_period, 60);
	assert_int_equal(hs.nslots, 60 * 8);
	assert_int_equal(hist_memory(&hs), 480 * sizeof(float));
	assert_int_equal(hist_init(&h, &hs), 0);
	for (int p = 0; p < 10; p++) {
		for (int ph = 0; ph < 60; ph++) {
			int64_t t = T0 + p * HOUR + ph * MIN + 3 * SEC;
			if (ph == 10 || (ph == 20 && p % 3 == 0))
				continue; /* phase 10 never sampled, 20 in some periods */
			if (p >= 1) {
				/* the value k periods ago, k = 1..min(p, 7) */
				double v[7];
				size_t n = 0;
				for (int k = 1; k <= 7 && k <= p; k++)
					if (!(ph == 20 && (p - k) % 3 == 0))
						v[n++] = bval(p - k, ph);
				double got = hist_baseline(&h, &hs, t, 300);
				if (n == 0) {
					assert_is_nan(got);
				} else {
					double want = median(v, n);
					assert_dbl(got, want, 1e-4);
					assert_dbl(h.last_ref, want, 1e-4);
					assert_dbl(h.last_score, 300 / want, 1e-6);
				}
			}
			hist_sample(&h, &hs, t, bval(p, ph));
		}
	}
	/* a phase never sampled: no verdict, whatever the period */
	assert_is_nan(hist_baseline(&h, &hs, T0 + 10 * HOUR + 10 * MIN + 3 * SEC, 1));
	hist_free(&h);
}

static void test_baseline_no_verdict(void **state)
{
	(void)state;
	struct hist_shape hs;
	struct hist h;
	hist_shape_init(&hs, HIST_BASELINE, DAY);
	assert_int_equal(hs.slot_us, MIN);
	assert_int_equal(hist_memory(&hs), 1440 * 8 * sizeof(float)); /* 46 KB */
	assert_int_equal(hist_init(&h, &hs), 0);
	assert_is_nan(hist_baseline(&h, &hs, T0, 1));
	for (int m = 0; m < 1440; m++)
		hist_sample(&h, &hs, T0 + m * MIN, 50 + m % 60);
	/* less than one period known: no verdict, even where a phase is known */
	assert_is_nan(hist_baseline(&h, &hs, T0 + DAY - SEC, 1));
	assert_dbl(hist_baseline(&h, &hs, T0 + DAY, 1), 50, 1e-6);
	assert_dbl(hist_baseline(&h, &hs, T0 + DAY + 61 * MIN + 30 * SEC, 1), 51, 1e-6);
	/* a zero baseline: the value, but no ratio */
	hist_free(&h);
	assert_int_equal(hist_init(&h, &hs), 0);
	for (int m = 0; m <= 1440; m++)
		hist_sample(&h, &hs, T0 + m * MIN, 0);
	assert_dbl(hist_baseline(&h, &hs, T0 + DAY, 3), 0, 0);
	assert_is_nan(h.last_score);
	hist_free(&h);
	/* after more than the whole ring (8 periods) without a sample, nothing
	 * at this phase is known */
	hist_shape_init(&hs, HIST_BASELINE, HOUR);
	assert_int_equal(hist_init(&h, &hs), 0);
	for (int m = 0; m < 120; m++)
		hist_sample(&h, &hs, T0 + m * MIN, 7);
	assert_dbl(hist_baseline(&h, &hs, T0 + 7 * HOUR, 1), 7, 1e-6);
	assert_is_nan(hist_baseline(&h, &hs, T0 + 10 * HOUR, 1));
	hist_free(&h);
}

/* ---- seen tables ------------------------------------------------------------- */

static void test_seen_learning_and_span(void **state)
{
	(void)state;
	const int64_t H = 1000 * SEC;
	struct seen *s = seen_new(100);
	assert_non_null(s);
	/* learning: H/2 from the first value, nothing is new */
	assert_false(seen_check(s, 1, T0, H));
	assert_false(seen_check(s, 2, T0 + 100 * SEC, H));
	assert_false(seen_check(s, 3, T0 + 499 * SEC, H));
	/* learning over: a value never seen is new, once */
	assert_true(seen_check(s, 4, T0 + 500 * SEC, H));
	assert_false(seen_check(s, 4, T0 + 501 * SEC, H));
	/* seen within H: not new (and seeing it again moves its time) */
	assert_false(seen_check(s, 2, T0 + 1100 * SEC, H));
	assert_false(seen_check(s, 2, T0 + 2100 * SEC, H)); /* exactly H after: still seen */
	/* seen last more than H ago: new again */
	assert_true(seen_check(s, 1, T0 + 1001 * SEC, H));
	assert_true(seen_check(s, 3, T0 + 1600 * SEC, H));
	assert_false(seen_check(s, 3, T0 + 1601 * SEC, H));
	assert_int_equal(seen_forgotten(s), 0);
	seen_free(s);
}

static void test_seen_cap_evicts_least_recent(void **state)
{
	(void)state;
	const int64_t H = 10 * DAY;
	struct seen *s = seen_new(3);
	assert_non_null(s);
	assert_false(seen_check(s, 10, T0, H)); /* learning */
	int64_t t = T0 + 6 * DAY;
	assert_true(seen_check(s, 11, t + 1, H));
	assert_true(seen_check(s, 12, t + 2, H));
	assert_false(seen_check(s, 10, t + 3, H)); /* 10 is the most recent now */
	/* full: 13 pushes out 11, the least recently seen */
	assert_true(seen_check(s, 13, t + 4, H));
	assert_int_equal(seen_forgotten(s), 1);
	assert_false(seen_check(s, 10, t + 5, H));
	assert_false(seen_check(s, 12, t + 6, H));
	assert_false(seen_check(s, 13, t + 7, H));
	/* 11 was forgotten: new again (pushing out 10, the least recent) */
	assert_true(seen_check(s, 11, t + 8, H));
	assert_int_equal(seen_forgotten(s), 2);
	assert_true(seen_check(s, 10, t + 9, H));
	assert_int_equal(seen_forgotten(s), 3);
	/* memory is the cap's, never the traffic's */
	size_t mem = seen_memory(s);
	for (uint64_t k = 100; k < 10000; k++)
		seen_check(s, k, t + 10 + (int64_t)k, H);
	assert_int_equal(seen_memory(s), mem);
	assert_int_equal(seen_forgotten(s), 3 + 9900);
	seen_free(s);

	struct seen *big = seen_new(10000);
	assert_non_null(big);
	assert_true(seen_memory(big) < 512 * 1024);
	seen_free(big);
}

/* ---- saved state ------------------------------------------------------------- */

static void roundtrip_hist(enum hist_kind kind, int64_t span, int minutes, int gap_at, int gap)
{
	struct hist_shape hs;
	struct hist a, b;
	hist_shape_init(&hs, kind, span);
	assert_int_equal(hist_init(&a, &hs), 0);
	assert_int_equal(hist_init(&b, &hs), 0);
	int64_t t = T0;
	for (int m = 0; m < minutes; m++) {
		t += (m == gap_at ? gap : 1) * MIN;
		hist_sample(&a, &hs, t, val(m));
	}
	struct kl_buf buf = { 0 };
	assert_int_equal(hist_encode(&a, &hs, &buf), 0);
	struct kl_rd r = kl_rd_of(buf.p, buf.len);
	assert_int_equal(hist_decode(&b, &hs, &r), 0);
	assert_true(kl_rd_done(&r));
	assert_int_equal(b.first_us, a.first_us);
	assert_int_equal(b.newest, a.newest);
	assert_int_equal(b.last_minute, a.last_minute);
	for (int64_t dt = 0; dt < 3 * span; dt += span / 7) {
		double x = kind == HIST_ZSCORE ? hist_zscore(&a, &hs, t + dt, 14) : hist_baseline(&a, &hs, t + dt, 14);
		double y = kind == HIST_ZSCORE ? hist_zscore(&b, &hs, t + dt, 14) : hist_baseline(&b, &hs, t + dt, 14);
		if (isnan(x))
			assert_is_nan(y);
		else
			assert_dbl(y, x, 0);
	}
	/* sampled on after the restore: the same again */
	hist_sample(&a, &hs, t + MIN, 3);
	hist_sample(&b, &hs, t + MIN, 3);
	if (kind == HIST_ZSCORE) {
		double x = hist_zscore(&a, &hs, t + MIN, 14), y = hist_zscore(&b, &hs, t + MIN, 14);
		if (isnan(x))
			assert_is_nan(y);
		else
			assert_dbl(y, x, 0);
	}
	/* truncated: refused */
	for (size_t cut = 0; cut < buf.len; cut += 1 + buf.len / 13) {
		struct hist c;
		assert_int_equal(hist_init(&c, &hs), 0);
		struct kl_rd rc = kl_rd_of(buf.p, cut);
		int rv = hist_decode(&c, &hs, &rc);
		assert_true(rv < 0 || !kl_rd_done(&rc) || cut == buf.len);
		hist_free(&c);
	}
	kl_buf_free(&buf);
	hist_free(&a);
	hist_free(&b);
}

static void test_hist_roundtrip(void **state)
{
	(void)state;
	roundtrip_hist(HIST_ZSCORE, HOUR, 150, 100, 20);
	roundtrip_hist(HIST_ZSCORE, DAY, 2000, 1500, 300);
	roundtrip_hist(HIST_BASELINE, HOUR, 500, 300, 90);
	roundtrip_hist(HIST_BASELINE, DAY, 3000, 2500, 100);
	/* never sampled */
	roundtrip_hist(HIST_ZSCORE, HOUR, 0, -1, 0);
	roundtrip_hist(HIST_BASELINE, HOUR, 0, -1, 0);
}

static void test_seen_roundtrip(void **state)
{
	(void)state;
	const int64_t H = 10 * DAY;
	struct seen *a = seen_new(5), *b = seen_new(5);
	assert_non_null(a);
	assert_non_null(b);
	seen_check(a, 1, T0, H);
	int64_t t = T0 + 6 * DAY;
	for (uint64_t k = 2; k <= 8; k++) /* 1, 2, 3 forgotten */
		assert_true(seen_check(a, k, t + (int64_t)k, H));
	assert_false(seen_check(a, 4, t + 20, H)); /* 4 the most recent */
	struct kl_buf buf = { 0 };
	assert_int_equal(seen_encode(a, &buf), 0);
	struct kl_rd r = kl_rd_of(buf.p, buf.len);
	assert_int_equal(seen_decode(b, &r), 0);
	assert_true(kl_rd_done(&r));
	assert_int_equal(seen_forgotten(b), seen_forgotten(a));
	/* the same LRU order: 9 pushes out 5 in both, then 4 is still known */
	assert_true(seen_check(a, 9, t + 30, H));
	assert_true(seen_check(b, 9, t + 30, H));
	for (uint64_t k = 4; k <= 9; k++) {
		bool x = seen_check(a, k, t + 40, H), y = seen_check(b, k, t + 40, H);
		assert_int_equal(x, y);
	}
	assert_int_equal(seen_forgotten(b), seen_forgotten(a));
	/* a value seen after the span, and the learning period, as saved */
	assert_true(seen_check(b, 6, t + 40 + H + 1, H));
	struct seen *c = seen_new(5);
	struct kl_rd r2 = kl_rd_of(buf.p, buf.len / 2);
	assert_true(seen_decode(c, &r2) < 0);
	seen_free(c);
	kl_buf_free(&buf);
	seen_free(a);
	seen_free(b);

	/* learning survives a save */
	a = seen_new(10);
	b = seen_new(10);
	seen_check(a, 1, T0, H);
	kl_buf_reset(&buf);
	assert_int_equal(seen_encode(a, &buf), 0);
	r = kl_rd_of(buf.p, buf.len);
	assert_int_equal(seen_decode(b, &r), 0);
	assert_false(seen_check(b, 2, T0 + H / 2 - 1, H));
	assert_true(seen_check(b, 3, T0 + H / 2, H));
	kl_buf_free(&buf);
	seen_free(a);
	seen_free(b);
}

/* A quiet source: a ring slot that no event reached for a whole ring keeps
 * its old bucket. Saving it made the whole rule state unreadable. */
static void test_window_roundtrip_quiet_source(void **state)
{
	(void)state;
	static const struct parser_field_spec types[] = { { "n", PARSER_T_INT } };
	struct parser_spec spec = { .name = "q", .regex = "^(?<n>\\d+)$", .types = types, .ntypes = 1 };
	char err[256];
	int eo;
	struct parser *p = parser_new(&spec, err, sizeof err, &eo);
	assert_non_null(p);
	pcre2_match_data *md = pcre2_match_data_create(1, NULL);
	struct expr e;
	size_t off;
	assert_int_equal(expr_compile("count() > 0", p, &e, err, sizeof err, &off), 0);
	struct window_shape ws = { .width_us = 5 * SEC, .nwin = 60, .nb = 62, .expr = &e };
	struct window a, b;
	assert_int_equal(window_init(&a, &ws), 0);
	assert_int_equal(window_init(&b, &ws), 0);
	struct parser_event ev;
	parser_event_init(&ev, p);
	int64_t times[] = { 1 * 5 * SEC, 2 * 5 * SEC, 70 * 5 * SEC, 71 * 5 * SEC };
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(parser_parse(p, "7", 1, T0 + times[i], &ev), 0);
		assert_int_equal(window_add(&a, &ws, &ev, md, NULL), 0);
	}
	struct kl_buf buf = { 0 };
	assert_int_equal(window_encode(&a, &ws, &buf), 0);
	struct kl_rd r = kl_rd_of(buf.p, buf.len);
	assert_int_equal(window_decode(&b, &ws, &r), 0);
	assert_true(kl_rd_done(&r));
	int64_t now = T0 + 71 * 5 * SEC + SEC;
	assert_dbl(window_events(&b, &ws, now), window_events(&a, &ws, now), 0);
	assert_dbl(window_events(&b, &ws, now), 2, 0);
	kl_buf_free(&buf);
	window_free(&a, &ws);
	window_free(&b, &ws);
	expr_free(&e);
	pcre2_match_data_free(md);
	parser_free(p);
}

int main(void)
{
	kl_log_set_quiet(true);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_zscore_arithmetic_minute_slots),
		cmocka_unit_test(test_zscore_arithmetic_coarse_slots),
		cmocka_unit_test(test_zscore_no_verdict),
		cmocka_unit_test(test_zscore_gaps),
		cmocka_unit_test(test_baseline_median),
		cmocka_unit_test(test_baseline_no_verdict),
		cmocka_unit_test(test_seen_learning_and_span),
		cmocka_unit_test(test_seen_cap_evicts_least_recent),
		cmocka_unit_test(test_hist_roundtrip),
		cmocka_unit_test(test_seen_roundtrip),
		cmocka_unit_test(test_window_roundtrip_quiet_source),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
