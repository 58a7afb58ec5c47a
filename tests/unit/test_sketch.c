/*
 * test_sketch.c — the quantile sketch and the HyperLogLog of rules/sketch.c.
 *
 * The quantile bound is checked against exact sorted quantiles at the same
 * rank convention, on several distributions; merge, subtract and the cap are
 * checked bin by bin; allocation failures are injected.
 *
 * This file compiles rules/sketch.c itself, with allocators that fail on
 * demand (the SKETCH_CALLOC / SKETCH_REALLOC seam): the linker then takes no
 * sketch.o from the rules library.
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* Allocations fail when fail_at reaches zero (counted down per call). */
static long fail_at = -1;
static long failures;

static int should_fail(void)
{
	if (fail_at < 0)
		return 0;
	if (fail_at-- == 0) {
		failures++;
		return 1;
	}
	return 0;
}

static void *fault_calloc(size_t n, size_t size)
{
	return should_fail() ? NULL : calloc(n, size);
}

static void *fault_realloc(void *p, size_t size)
{
	return should_fail() ? NULL : realloc(p, size);
}

#define SKETCH_CALLOC fault_calloc
#define SKETCH_REALLOC fault_realloc
#include "rules/sketch.c"

/* ---------------------------------------------------------------------------
 * Helpers.
 */

/* got is exact within the sketch's guarantee (0 for |exact| < SKETCH_ZERO). */
static int near(double got, double exact)
{
	if (fabs(exact) < SKETCH_ZERO)
		return got == 0.0;
	return fabs(got - exact) <= SKETCH_ALPHA * fabs(exact) * (1 + 1e-12);
}

#define assert_near(got, exact) near_or_fail((got), (exact), #got, __LINE__)

static void near_or_fail(double got, double exact, const char *expr, int line)
{
	if (!near(got, exact))
		fail_msg("line %d: %s = %.17g, want %.17g within %g", line, expr, got, exact,
			 SKETCH_ALPHA);
}

/* splitmix64: deterministic, good enough for test data. */
static uint64_t rng_state;

static void rng_seed(uint64_t s)
{
	rng_state = s;
}

static uint64_t rng_u64(void)
{
	uint64_t z = (rng_state += UINT64_C(0x9e3779b97f4a7c15));
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

/* Uniform in (0, 1]. */
static double rng_unit(void)
{
	return (double)((rng_u64() >> 11) + 1) * 0x1p-53;
}

static double rng_normal(void)
{
	return sqrt(-2.0 * log(rng_unit())) * cos(2.0 * M_PI * rng_unit());
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* The count of bin i of a store, 0 outside its range. */
static uint64_t bin(const struct sketch_store *st, int32_t i)
{
	return store_at(st, i);
}

/* Same counts in every bin, same zero count. */
static void assert_same_bins(const struct sketch *a, const struct sketch *b, const char *what)
{
	const struct sketch_store *sa[2] = { &a->pos, &a->neg }, *sb[2] = { &b->pos, &b->neg };

	if (sketch_count(a) != sketch_count(b) || a->zero != b->zero)
		fail_msg("%s: count %llu vs %llu, zero %llu vs %llu", what,
			 (unsigned long long)sketch_count(a), (unsigned long long)sketch_count(b),
			 (unsigned long long)a->zero, (unsigned long long)b->zero);
	for (int s = 0; s < 2; s++) {
		int32_t lo = INT32_MAX, hi = INT32_MIN;
		if (sa[s]->n > 0) {
			lo = sa[s]->lo;
			hi = store_top(sa[s]);
		}
		if (sb[s]->n > 0) {
			lo = sb[s]->lo < lo ? sb[s]->lo : lo;
			hi = store_top(sb[s]) > hi ? store_top(sb[s]) : hi;
		}
		for (int32_t i = lo; i <= hi; i++)
			if (bin(sa[s], i) != bin(sb[s], i))
				fail_msg("%s: %s bin %d holds %llu vs %llu", what, s ? "neg" : "pos",
					 (int)i, (unsigned long long)bin(sa[s], i),
					 (unsigned long long)bin(sb[s], i));
	}
}

/* A copy, through merge into an empty sketch. */
static void copy_sketch(struct sketch *dst, const struct sketch *src)
{
	sketch_init(dst);
	assert_int_equal(sketch_merge(dst, src), 0);
}

/*
 * Adds v[0..n) to a sketch and checks the quantiles against the exact ones:
 * the item of rank floor(q * (n - 1)) of the sorted values.
 */
static void check_quantiles(const char *name, double *v, size_t n)
{
	static const double qs[] = { 0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1 };
	struct sketch s;

	sketch_init(&s);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(sketch_add(&s, v[i]), 0);
	assert_int_equal(sketch_count(&s), n);
	assert_int_equal(sketch_collapsed(&s), 0);
	qsort(v, n, sizeof(*v), cmp_double);
	for (size_t k = 0; k < sizeof(qs) / sizeof(qs[0]); k++) {
		double exact = v[(size_t)floor(qs[k] * (double)(n - 1))];
		double got = sketch_quantile(&s, qs[k]);
		if (!near(got, exact))
			fail_msg("%s: q=%g: sketch %.17g, exact %.17g, relative error %g > %g", name,
				 qs[k], got, exact, fabs(got - exact) / fabs(exact), SKETCH_ALPHA);
	}
	sketch_free(&s);
}

#define NVAL 200000

/* ---------------------------------------------------------------------------
 * The bin mapping.
 */
static void test_index_boundaries(void **state)
{
	int ambiguous = 0;

	(void)state;
	if (LDBL_MANT_DIG < 64)
		skip();
	/*
	 * The largest double <= 2^(j/70) * 2^e ends bin 70e + j; the next double
	 * starts the next bin. The reference is exp2l of a small argument (a
	 * large one would lose the bits that matter here).
	 */
	for (int j = 1; j <= 70; j++) {
		long double t = exp2l((long double)j / 70.0L);
		double m = (double)t;
		if ((long double)m > t)
			m = nextafter(m, 0.0);
		if (t - m < 0x1p-62L || (long double)nextafter(m, 3.0) - t < 0x1p-62L) {
			ambiguous++;
			continue;
		}
		for (int e = -29; e <= 1023; e += 7) {
			double x = ldexp(m, e), y = nextafter(x, INFINITY);
			if (sketch_index(x) != 70 * e + j)
				fail_msg("index(%a) = %d, want %d", x, (int)sketch_index(x), 70 * e + j);
			if (isfinite(y) && sketch_index(y) != 70 * e + j + 1)
				fail_msg("index(%a) = %d, want %d", y, (int)sketch_index(y), 70 * e + j + 1);
		}
	}
	assert_true(ambiguous <= 2);
}

static void test_index_matches_log(void **state)
{
	(void)state;
	rng_seed(1);
	for (int k = 0; k < 1000000; k++) {
		/* Uniform in log over [1e-9, 1e300]. */
		double x = exp(log(1e-9) + (log(1e300) - log(1e-9)) * rng_unit());
		long double l = 70.0L * log2l((long double)x);
		long double c = ceill(l);
		if (c - l < 1e-9L || l - (c - 1) < 1e-9L)
			continue; /* too close to a boundary for log2l to tell */
		if (sketch_index(x) != (int32_t)c)
			fail_msg("index(%.17g) = %d, ceil(70 log2 x) = %d", x, (int)sketch_index(x), (int)c);
	}
	assert_int_equal(sketch_index(1.0), 0);
	assert_int_equal(sketch_index(2.0), 70);
	assert_int_equal(sketch_index(0.5), -70);
	assert_int_equal(sketch_index(-2.0), 70);
	assert_int_equal(sketch_index(NAN), INT32_MIN);
	assert_int_equal(sketch_index(INFINITY), INT32_MIN);
	assert_int_equal(sketch_index(1e-10), INT32_MIN);
	assert_int_equal(sketch_index(DBL_MAX), 70 * 1024);
}

/* Every value of a bin is within SKETCH_ALPHA of the value the bin reports. */
static void test_bin_value_error(void **state)
{
	double worst = 0;

	(void)state;
	for (int32_t i = -2090; i <= 70 * 1024; i += 1 + (i > 2000 ? 97 : 0)) {
		double v = sketch_bin_value(i);
		int r = (i - 1 + 7000) % 70, e = (int)floor((i - 1) / 70.0);
		double first = nextafter(ldexp(1.0 + (double)bound[r] * 0x1p-52, e), INFINITY);
		double last = ldexp(1.0 + (double)bound[r + 1] * 0x1p-52, e);

		assert_int_equal(sketch_index(first), i);
		assert_int_equal(sketch_index(last), i);
		if (isfinite(nextafter(last, INFINITY)))
			assert_int_equal(sketch_index(nextafter(last, INFINITY)), i + 1);
		double e1 = fabs(v - first) / first, e2 = fabs(v - last) / last;
		worst = fmax(worst, fmax(e1, e2));
		if (e1 > SKETCH_ALPHA * (1 + 1e-12) || e2 > SKETCH_ALPHA * (1 + 1e-12))
			fail_msg("bin %d reports %.17g for [%.17g, %.17g]: errors %g %g > %g", (int)i,
				 v, first, last, e1, e2, SKETCH_ALPHA);
	}
	/* The bound is tight: the edges of a bin come within 1e-9 of it. */
	assert_true(worst > SKETCH_ALPHA - 1e-9);
}

/* ---------------------------------------------------------------------------
 * Quantile accuracy against exact quantiles.
 */
static void test_uniform(void **state)
{
	double *v = malloc(NVAL * sizeof(*v));

	(void)state;
	assert_non_null(v);
	rng_seed(2);
	for (size_t i = 0; i < NVAL; i++)
		v[i] = 1000.0 * rng_unit();
	check_quantiles("uniform(0, 1000]", v, NVAL);
	free(v);
}

static void test_lognormal(void **state)
{
	double *v = malloc(NVAL * sizeof(*v));

	(void)state;
	assert_non_null(v);
	rng_seed(3);
	for (size_t i = 0; i < NVAL; i++)
		v[i] = exp(log(0.05) + 1.2 * rng_normal()); /* seconds, median 50 ms */
	check_quantiles("lognormal", v, NVAL);
	free(v);
}

static void test_pareto(void **state)
{
	double *v = malloc(NVAL * sizeof(*v));

	(void)state;
	assert_non_null(v);
	rng_seed(4);
	for (size_t i = 0; i < NVAL; i++)
		v[i] = 1.0 / pow(rng_unit(), 1.0 / 1.1); /* shape 1.1: infinite variance */
	check_quantiles("pareto(1.1)", v, NVAL);
	free(v);
}

static void test_constant(void **state)
{
	double *v = malloc(NVAL * sizeof(*v));

	(void)state;
	assert_non_null(v);
	for (size_t i = 0; i < NVAL; i++)
		v[i] = 42.5;
	check_quantiles("constant", v, NVAL);
	for (size_t i = 0; i < 1000; i++)
		v[i] = 0.0;
	check_quantiles("all zero", v, 1000);
	v[0] = -3.25;
	check_quantiles("one negative", v, 1);
	free(v);
}

static void test_wide_span(void **state)
{
	double *v = malloc(NVAL * sizeof(*v));

	(void)state;
	assert_non_null(v);
	rng_seed(5);
	for (size_t i = 0; i < NVAL; i++)
		v[i] = exp(log(1e-6) + (log(1e6) - log(1e-6)) * rng_unit());
	check_quantiles("log-uniform [1e-6, 1e6]", v, NVAL);
	free(v);
}

static void test_negatives_and_zeros(void **state)
{
	double *v = malloc(NVAL * sizeof(*v));

	(void)state;
	assert_non_null(v);
	rng_seed(6);
	for (size_t i = 0; i < NVAL; i++) {
		double u = rng_unit();
		if (u < 0.1)
			v[i] = 0.0;
		else if (u < 0.12)
			v[i] = (u < 0.11 ? -1e-12 : 3e-10); /* below SKETCH_ZERO: counted as 0 */
		else if (u < 0.13)
			v[i] = -0.0;
		else if (u < 0.5)
			v[i] = -exp(log(1e-6) + (log(1e6) - log(1e-6)) * rng_unit());
		else
			v[i] = 100.0 * rng_normal();
	}
	check_quantiles("negatives, zeros, normal", v, NVAL);
	free(v);
}

/* Every rank of a small mixed sample, not only the usual q. */
static void test_every_rank(void **state)
{
	enum { N = 3001 };
	double v[N], sorted[N];
	struct sketch s;

	(void)state;
	sketch_init(&s);
	rng_seed(7);
	for (int i = 0; i < N; i++) {
		v[i] = (i % 7 == 0) ? 0.0 : (i % 3 == 0 ? -1.0 : 1.0) * exp(6 * rng_normal());
		assert_int_equal(sketch_add(&s, v[i]), 0);
	}
	assert_int_equal(sketch_collapsed(&s), 0);
	memcpy(sorted, v, sizeof(v));
	qsort(sorted, N, sizeof(double), cmp_double);
	for (int r = 0; r < N; r++) {
		double q = r == N - 1 ? 1.0 : (r + 0.5) / (N - 1);
		double got = sketch_quantile(&s, q), exact = sorted[r];
		if (!near(got, exact))
			fail_msg("rank %d: sketch %.17g, exact %.17g", r, got, exact);
	}
	sketch_free(&s);
}

/* ---------------------------------------------------------------------------
 * Empty, invalid input, reset.
 */
static void test_empty_and_invalid(void **state)
{
	struct sketch s = { 0 };

	(void)state;
	assert_true(isnan(sketch_quantile(&s, 0.5)));
	assert_int_equal(sketch_count(&s), 0);
	assert_int_equal(sketch_memory(&s), sizeof(s));
	assert_int_equal(sketch_add(&s, NAN), -EINVAL);
	assert_int_equal(sketch_add(&s, INFINITY), -EINVAL);
	assert_int_equal(sketch_add(&s, -INFINITY), -EINVAL);
	assert_int_equal(sketch_count(&s), 0);
	assert_int_equal(sketch_add(&s, 7.0), 0);
	assert_true(isnan(sketch_quantile(&s, -0.01)));
	assert_true(isnan(sketch_quantile(&s, 1.01)));
	assert_true(isnan(sketch_quantile(&s, NAN)));
	assert_near(sketch_quantile(&s, 0.0), 7.0);
	assert_near(sketch_quantile(&s, 1.0), 7.0);
	/* Extremes of the double range. */
	assert_int_equal(sketch_add(&s, DBL_MAX), 0);
	assert_int_equal(sketch_add(&s, -DBL_MAX), 0);
	assert_int_equal(sketch_add(&s, DBL_MIN), 0); /* below SKETCH_ZERO */
	assert_near(sketch_quantile(&s, 1.0), DBL_MAX);
	assert_near(sketch_quantile(&s, 0.0), -DBL_MAX);
	assert_true(isfinite(sketch_quantile(&s, 1.0)));
	sketch_free(&s);
	sketch_free(&s);
	sketch_free(NULL);
}

static void test_reset(void **state)
{
	struct sketch s;
	size_t mem;

	(void)state;
	sketch_init(&s);
	rng_seed(8);
	for (int i = 0; i < 10000; i++)
		assert_int_equal(sketch_add(&s, (i % 2 ? -1 : 1) * exp(3 * rng_normal())), 0);
	mem = sketch_memory(&s);
	assert_true(mem > sizeof(s));
	sketch_reset(&s);
	assert_int_equal(sketch_count(&s), 0);
	assert_true(isnan(sketch_quantile(&s, 0.5)));
	assert_int_equal(sketch_memory(&s), mem);
	/* Reused memory starts clean. */
	assert_int_equal(sketch_add(&s, 3.0), 0);
	assert_int_equal(sketch_add(&s, 3.0), 0);
	assert_int_equal(sketch_add(&s, -5.0), 0);
	assert_int_equal(sketch_count(&s), 3);
	assert_int_equal(bin(&s.pos, sketch_index(3.0)), 2);
	assert_int_equal(s.pos.total, 2);
	assert_near(sketch_quantile(&s, 0.0), -5.0);
	assert_near(sketch_quantile(&s, 0.5), 3.0);
	sketch_free(&s);
}

/* ---------------------------------------------------------------------------
 * Merge and subtract.
 */
static double mixed_value(void)
{
	double u = rng_unit();
	if (u < 0.05)
		return 0.0;
	if (u < 0.2)
		return -exp(2 * rng_normal());
	return exp(log(0.05) + 1.5 * rng_normal());
}

static void test_merge_equals_single(void **state)
{
	struct sketch a, b, all, empty;

	(void)state;
	sketch_init(&a);
	sketch_init(&b);
	sketch_init(&all);
	sketch_init(&empty);
	rng_seed(9);
	for (int i = 0; i < 50000; i++) {
		double x = mixed_value();
		assert_int_equal(sketch_add(i % 3 ? &a : &b, x), 0);
		assert_int_equal(sketch_add(&all, x), 0);
	}
	/* b's range differs from a's: merging must extend a both ways. */
	assert_int_equal(sketch_add(&b, 1e6), 0);
	assert_int_equal(sketch_add(&b, 1e-8), 0);
	assert_int_equal(sketch_add(&b, -1e7), 0);
	assert_int_equal(sketch_add(&all, 1e6), 0);
	assert_int_equal(sketch_add(&all, 1e-8), 0);
	assert_int_equal(sketch_add(&all, -1e7), 0);

	assert_int_equal(sketch_merge(&a, &empty), 0);
	assert_int_equal(sketch_merge(&a, &b), 0);
	assert_same_bins(&a, &all, "merge vs single");
	for (int k = 0; k <= 1000; k++)
		assert_true(sketch_quantile(&a, k / 1000.0) == sketch_quantile(&all, k / 1000.0));

	/* Into an empty sketch: a copy. */
	assert_int_equal(sketch_merge(&empty, &all), 0);
	assert_same_bins(&empty, &all, "merge into empty");
	sketch_free(&a);
	sketch_free(&b);
	sketch_free(&all);
	sketch_free(&empty);
}

static void test_subtract_restores(void **state)
{
	struct sketch a, b, t, a0;

	(void)state;
	sketch_init(&a);
	sketch_init(&b);
	rng_seed(10);
	for (int i = 0; i < 20000; i++)
		assert_int_equal(sketch_add(&a, mixed_value()), 0);
	for (int i = 0; i < 30000; i++)
		assert_int_equal(sketch_add(&b, 10 * mixed_value()), 0);
	copy_sketch(&a0, &a);
	copy_sketch(&t, &a);
	assert_int_equal(sketch_merge(&t, &b), 0);
	assert_int_equal(sketch_subtract(&t, &b), 0);
	assert_same_bins(&t, &a0, "(a + b) - b");
	for (int k = 0; k <= 100; k++)
		assert_true(sketch_quantile(&t, k / 100.0) == sketch_quantile(&a0, k / 100.0));
	assert_int_equal(sketch_subtract(&t, &a), 0);
	assert_int_equal(sketch_count(&t), 0);
	assert_true(isnan(sketch_quantile(&t, 0.5)));
	assert_int_equal(t.pos.n, 0);
	assert_int_equal(t.neg.n, 0);

	/* Not contained: refused, dst unchanged. */
	assert_int_equal(sketch_merge(&t, &a), 0);
	assert_int_equal(sketch_subtract(&t, &b), -EINVAL);
	assert_same_bins(&t, &a0, "refused subtract");
	assert_int_equal(sketch_add(&b, 1.0), 0);
	assert_int_equal(sketch_merge(&t, &b), 0);
	assert_int_equal(sketch_add(&b, 1e9), 0); /* b grew after it was merged */
	assert_int_equal(sketch_subtract(&t, &b), -EINVAL);
	sketch_free(&a);
	sketch_free(&b);
	sketch_free(&t);
	sketch_free(&a0);
}

/*
 * A window: a ring of 60 buckets, the total kept by adding each event to its
 * bucket and to the total (or by merging a bucket into the total when it
 * closes) and subtracting buckets as they expire. With `outliers`, magnitudes
 * far apart force the cap to fold, in buckets and total at different moments.
 */
static void run_window(int by_merge, int outliers)
{
	enum { NB = 60, STEPS = 400 };
	struct sketch bucket[NB], total, rebuilt;
	int live = 0;

	sketch_init(&total);
	for (int b = 0; b < NB; b++)
		sketch_init(&bucket[b]);
	rng_seed(11 + (uint64_t)by_merge * 2 + (uint64_t)outliers);
	for (int step = 0; step < STEPS; step++) {
		struct sketch *cur = &bucket[step % NB];
		int events = (int)(rng_u64() % 300);

		if (step >= NB) {
			assert_int_equal(sketch_subtract(&total, cur), 0);
			sketch_reset(cur);
			live--;
		}
		for (int e = 0; e < events; e++) {
			double x = mixed_value();
			if (outliers && rng_u64() % 97 == 0)
				x = (rng_u64() % 2 ? 1 : -1) * ldexp(1.0, (int)(rng_u64() % 2000) - 1000);
			assert_int_equal(sketch_add(cur, x), 0);
			if (!by_merge)
				assert_int_equal(sketch_add(&total, x), 0);
		}
		if (by_merge)
			assert_int_equal(sketch_merge(&total, cur), 0);
		live++;

		/* The total holds exactly the live buckets' values. */
		sketch_init(&rebuilt);
		for (int b = 0; b < NB; b++)
			assert_int_equal(sketch_merge(&rebuilt, &bucket[b]), 0);
		assert_int_equal(sketch_count(&total), sketch_count(&rebuilt));
		if (!outliers)
			assert_same_bins(&total, &rebuilt, "window total vs live buckets");
		sketch_free(&rebuilt);
	}
	if (outliers)
		assert_true(sketch_collapsed(&total) > 0);
	/* Expire everything: the total ends empty, exactly. */
	for (int step = STEPS; step < STEPS + NB; step++) {
		assert_int_equal(sketch_subtract(&total, &bucket[step % NB]), 0);
		sketch_free(&bucket[step % NB]);
	}
	assert_int_equal(sketch_count(&total), 0);
	assert_int_equal(total.pos.n, 0);
	assert_int_equal(total.neg.n, 0);
	sketch_free(&total);
}

static void test_window_by_event(void **state)
{
	(void)state;
	run_window(0, 0);
}

static void test_window_by_merge(void **state)
{
	(void)state;
	run_window(1, 0);
}

static void test_window_outliers_by_event(void **state)
{
	(void)state;
	run_window(0, 1);
}

static void test_window_outliers_by_merge(void **state)
{
	(void)state;
	run_window(1, 1);
}

/* ---------------------------------------------------------------------------
 * The cap and the count widths.
 */
static void test_memory_bounded(void **state)
{
	struct sketch s;
	double top = 0;

	(void)state;
	sketch_init(&s);
	rng_seed(12);
	/* Every power of ten of the double range, both signs, then noise. */
	for (int e = -9; e <= 307; e++) {
		assert_int_equal(sketch_add(&s, pow(10, e)), 0);
		assert_int_equal(sketch_add(&s, -pow(10, e)), 0);
	}
	for (int i = 0; i < 300000; i++) {
		double x = ldexp(rng_unit(), (int)(rng_u64() % 2048) - 1024);
		if (rng_u64() % 2) {
			top = x > top ? x : top;
			assert_int_equal(sketch_add(&s, x), 0);
		} else {
			assert_int_equal(sketch_add(&s, -x), 0);
		}
	}
	assert_true(s.pos.n <= SKETCH_MAX_BINS);
	assert_true(s.neg.n <= SKETCH_MAX_BINS);
	assert_true(sketch_memory(&s) <= sizeof(s) + (size_t)SKETCH_MAX_BINS * (s.pos.width + s.neg.width));
	print_message("adversarial spread: %zu bytes, counts of %u and %u bytes\n", sketch_memory(&s),
		      s.pos.width, s.neg.width);
	assert_true(sketch_collapsed(&s) > 0);
	assert_int_equal(sketch_count(&s), 300000 + 2 * 317);
	/* Collapsing lowest keeps the top exact. */
	assert_near(sketch_quantile(&s, 1.0), top);
	sketch_free(&s);
}

static void test_count_widths(void **state)
{
	struct sketch one, big;
	long k;

	(void)state;
	sketch_init(&one);
	sketch_init(&big);
	for (k = 0; k < 70000; k++)
		assert_int_equal(sketch_add(&one, 0.25), 0);
	assert_int_equal(one.pos.width, 4);
	assert_int_equal(bin(&one.pos, sketch_index(0.25)), 70000);
	/* 65536 merges of 70000: 4.6e9 in one bin, past 32 bits. */
	for (k = 0; k < 65536; k++)
		assert_int_equal(sketch_merge(&big, &one), 0);
	assert_int_equal(big.pos.width, 8);
	assert_int_equal(sketch_count(&big), UINT64_C(70000) * 65536);
	assert_int_equal(bin(&big.pos, sketch_index(0.25)), UINT64_C(70000) * 65536);
	assert_near(sketch_quantile(&big, 0.5), 0.25);
	for (k = 0; k < 65535; k++)
		assert_int_equal(sketch_subtract(&big, &one), 0);
	assert_same_bins(&big, &one, "after subtracting back");
	/* Incrementing into the 8-byte width. */
	for (k = 0; k < 100; k++)
		assert_int_equal(sketch_add(&big, 0.25), 0);
	assert_int_equal(sketch_count(&big), 70100);
	sketch_free(&one);
	sketch_free(&big);
}

/* A typical latency bucket: how much memory, printed for the record. */
static void test_typical_memory(void **state)
{
	struct sketch s;

	(void)state;
	sketch_init(&s);
	rng_seed(13);
	for (int i = 0; i < 100000; i++)
		assert_int_equal(sketch_add(&s, exp(log(0.05) + 1.2 * rng_normal())), 0);
	print_message("lognormal latency, 1e5 values: %u bins, %u-byte counts, %zu bytes\n",
		      s.pos.n, s.pos.width, sketch_memory(&s));
	assert_true(sketch_memory(&s) < 8192);
	sketch_free(&s);
}

/* ---------------------------------------------------------------------------
 * Failing allocations: every call either succeeds or changes no count.
 */
static void sketch_workload(struct sketch *s, struct sketch *other, int *failed)
{
	rng_seed(14);
	for (int i = 0; i < 3000; i++) {
		double x = (i % 5 == 0) ? ldexp(rng_unit(), (int)(rng_u64() % 400) - 200) : mixed_value();
		uint64_t before = sketch_count(s);
		int rc = sketch_add(i % 2 ? s : other, x);
		if (rc == -ENOMEM) {
			(*failed)++;
			assert_int_equal(sketch_count(s), before);
		} else {
			assert_int_equal(rc, 0);
		}
		if (i % 500 == 499) {
			struct sketch snap;
			long saved = fail_at;

			fail_at = -1;
			copy_sketch(&snap, s);
			fail_at = saved;
			rc = sketch_merge(s, other);
			if (rc == -ENOMEM) {
				(*failed)++;
				assert_same_bins(s, &snap, "failed merge");
			} else {
				assert_int_equal(rc, 0);
			}
			sketch_free(&snap);
		}
	}
}

static void test_sketch_alloc_failures(void **state)
{
	(void)state;
	for (long n = 0;; n++) {
		struct sketch s, o;
		int failed = 0;

		sketch_init(&s);
		sketch_init(&o);
		fail_at = n;
		failures = 0;
		sketch_workload(&s, &o, &failed);
		fail_at = -1;
		assert_int_equal(failed, failures);
		sketch_free(&s);
		sketch_free(&o);
		if (failures == 0)
			break;
	}
}

/* ---------------------------------------------------------------------------
 * Hash.
 */
static void test_hash_vectors(void **state)
{
	/* Pinned: hlls built on different hosts are merged (shared windows). */
	static const struct {
		const char *s;
		uint64_t h;
	} kat[] = {
		{ "", UINT64_C(0x6fcf1e81c77623df) },
		{ "a", UINT64_C(0xb58869e34a8a6ae8) },
		{ "abc", UINT64_C(0xb8051a62fab0faf7) },
		{ "hello", UINT64_C(0x019cafd99516dc88) },
		{ "GET /index.html", UINT64_C(0xe301225c4078e3c2) },
		{ "0123456789abcdef", UINT64_C(0x04cb68cd2bbdd794) },
		{ "0123456789abcdefg", UINT64_C(0xcc581e8aca92d626) },
		{ "user-1234567@example.com logged in from 192.0.2.1", UINT64_C(0xab8142c36ef2b3c7) },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(kat) / sizeof(kat[0]); i++) {
		uint64_t h = hll_hash(kat[i].s, strlen(kat[i].s));
		if (h != kat[i].h)
			fail_msg("hll_hash(\"%s\") = 0x%016llx, want 0x%016llx", kat[i].s,
				 (unsigned long long)h, (unsigned long long)kat[i].h);
	}
	uint8_t le[8] = { 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11 };
	assert_int_equal(hll_hash_u64(UINT64_C(0x1122334455667788)), hll_hash(le, 8));
}

/* Every length and every single-bit flip gives a different hash. */
static void test_hash_distinct(void **state)
{
	uint8_t buf[80];
	uint64_t seen[81 + 80 * 8];
	size_t n = 0;

	(void)state;
	memset(buf, 'x', sizeof(buf));
	for (size_t len = 0; len <= sizeof(buf); len++)
		seen[n++] = hll_hash(buf, len);
	for (size_t i = 0; i < sizeof(buf); i++) {
		for (int b = 0; b < 8; b++) {
			buf[i] ^= (uint8_t)(1u << b);
			seen[n++] = hll_hash(buf, sizeof(buf));
			buf[i] ^= (uint8_t)(1u << b);
		}
	}
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			if (seen[i] == seen[j])
				fail_msg("hash collision between inputs %zu and %zu", i, j);
	/* Top bits (the register index) are balanced over sequential keys. */
	uint32_t hist[16] = { 0 };
	char key[32];
	for (int i = 0; i < 160000; i++) {
		int len = snprintf(key, sizeof(key), "k%d", i);
		hist[hll_hash(key, (size_t)len) >> 60]++;
	}
	for (int b = 0; b < 16; b++)
		if (hist[b] < 9500 || hist[b] > 10500)
			fail_msg("top nibble %d: %u of 160000", b, hist[b]);
}

/* ---------------------------------------------------------------------------
 * HyperLogLog.
 */
static size_t key_of(char *buf, size_t size, uint64_t i)
{
	return (size_t)snprintf(buf, size, "10.%u.%u.%u/user%llu", (unsigned)(i % 251),
				(unsigned)(i / 251 % 253), (unsigned)(i % 7), (unsigned long long)i);
}

static void add_range(struct hll *h, uint64_t from, uint64_t to)
{
	char key[64];
	for (uint64_t i = from; i < to; i++)
		assert_int_equal(hll_add(h, key, key_of(key, sizeof(key), i)), 0);
}

static void check_estimate(const char *what, double est, double n)
{
	double sigma = 1.04 / sqrt((double)HLL_M);
	double tol = fmax(3 * sigma * n, 1.0);
	if (!(fabs(est - n) <= tol))
		fail_msg("%s: estimate %.1f for %.0f distinct, error %.2f%% > 3 sigma (%.2f%%)", what,
			 est, n, 100 * (est - n) / n, 300 * sigma);
}

static void test_hll_accuracy(void **state)
{
	static const uint64_t ns[] = { 1, 10, 100, 1000, 5000, 12000, 20000, 100000, 1000000 };
	struct hll h;

	(void)state;
	hll_init(&h);
	assert_true(hll_estimate(&h) == 0.0);
	assert_int_equal(hll_memory(&h), sizeof(h));
	uint64_t done = 0;
	for (size_t k = 0; k < sizeof(ns) / sizeof(ns[0]); k++) {
		char what[32];
		add_range(&h, done, ns[k]);
		done = ns[k];
		snprintf(what, sizeof(what), "n=%llu", (unsigned long long)ns[k]);
		check_estimate(what, hll_estimate(&h), (double)ns[k]);
		print_message("hll n=%-8llu estimate %.1f (%+.2f%%), %zu bytes\n",
			      (unsigned long long)ns[k], hll_estimate(&h),
			      100 * (hll_estimate(&h) - (double)ns[k]) / (double)ns[k], hll_memory(&h));
	}
	/* Duplicates change nothing. */
	double before = hll_estimate(&h);
	add_range(&h, 0, 10000);
	assert_true(hll_estimate(&h) == before);
	assert_int_equal(hll_memory(&h), sizeof(h) + HLL_M);
	hll_free(&h);
	hll_free(&h);
	hll_free(NULL);
}

/* Several independent key sets, to see the error spread, not one draw. */
static void test_hll_spread(void **state)
{
	(void)state;
	for (uint64_t seed = 0; seed < 20; seed++) {
		struct hll h;
		char what[48];

		hll_init(&h);
		for (uint64_t i = 0; i < 100000; i++)
			assert_int_equal(hll_add_hash(&h, hll_hash_u64(seed << 40 | i)), 0);
		snprintf(what, sizeof(what), "seed %llu, n=100000", (unsigned long long)seed);
		check_estimate(what, hll_estimate(&h), 100000);
		hll_free(&h);
	}
}

static void test_hll_sparse(void **state)
{
	struct hll h;
	const struct hll *one[1] = { &h };

	(void)state;
	hll_init(&h);
	add_range(&h, 0, 50);
	assert_false(h.dense);
	assert_true(hll_memory(&h) <= sizeof(h) + 64 * sizeof(uint32_t));
	check_estimate("sparse n=50", hll_estimate(&h), 50);
	assert_true(hll_estimate(&h) == hll_estimate_union(one, 1));
	add_range(&h, 50, 2000);
	assert_true(h.dense);
	assert_true(hll_estimate(&h) == hll_estimate_union(one, 1));
	/* Reset keeps the registers' memory, and works from sparse again. */
	hll_reset(&h);
	assert_true(hll_estimate(&h) == 0.0);
	assert_int_equal(hll_memory(&h), sizeof(h) + HLL_M);
	add_range(&h, 0, 50);
	check_estimate("after reset n=50", hll_estimate(&h), 50);
	add_range(&h, 50, 2000);
	check_estimate("after reset n=2000", hll_estimate(&h), 2000);
	hll_free(&h);
}

/* Union through merge equals a single hll over all the keys, in every form. */
static void test_hll_merge(void **state)
{
	static const uint64_t sizes[][4] = {
		/* a from, a to, b from, b to */
		{ 0, 0, 0, 30 },	  /* empty + sparse */
		{ 0, 30, 0, 0 },	  /* sparse + empty */
		{ 0, 30, 20, 60 },	  /* sparse + sparse, overlapping */
		{ 0, 200, 150, 300 },	  /* sparse + sparse, union past the sparse cap */
		{ 0, 100, 0, 5000 },	  /* sparse + dense */
		{ 0, 5000, 4000, 4100 },  /* dense + sparse */
		{ 0, 60000, 40000, 100000 }, /* dense + dense */
	};

	(void)state;
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		struct hll a, b, all;
		const uint64_t *z = sizes[k];
		const struct hll *both[2] = { &a, &b };

		hll_init(&a);
		hll_init(&b);
		hll_init(&all);
		add_range(&a, z[0], z[1]);
		add_range(&b, z[2], z[3]);
		add_range(&all, z[0], z[1]);
		add_range(&all, z[2], z[3]);
		double u = hll_estimate_union(both, 2);
		assert_int_equal(hll_merge(&a, &b), 0);
		if (hll_estimate(&a) != hll_estimate(&all) || u != hll_estimate(&all))
			fail_msg("case %zu: merged %.3f, union %.3f, single %.3f", k, hll_estimate(&a),
				 u, hll_estimate(&all));
		uint64_t lo = z[0] < z[2] ? z[0] : z[2], hi = z[1] > z[3] ? z[1] : z[3];
		if (z[1] == z[0])
			lo = z[2];
		if (z[3] == z[2])
			hi = z[1];
		check_estimate("merged", hll_estimate(&a), (double)(hi - lo));
		hll_free(&a);
		hll_free(&b);
		hll_free(&all);
	}
}

static void test_hll_alloc_failures(void **state)
{
	(void)state;
	for (long n = 0;; n++) {
		struct hll a, b;
		char key[64];
		int failed = 0;

		hll_init(&a);
		hll_init(&b);
		fail_at = n;
		failures = 0;
		for (uint64_t i = 0; i < 600; i++) {
			double before = hll_estimate(&a);
			int rc = hll_add(i % 3 ? &a : &b, key, key_of(key, sizeof(key), i));
			if (rc == -ENOMEM) {
				failed++;
				assert_true(hll_estimate(&a) == before);
			} else {
				assert_int_equal(rc, 0);
			}
			if (i % 100 == 99) {
				before = hll_estimate(&a);
				rc = hll_merge(&a, &b);
				if (rc == -ENOMEM) {
					failed++;
					assert_true(hll_estimate(&a) == before);
				} else {
					assert_int_equal(rc, 0);
				}
			}
		}
		fail_at = -1;
		assert_int_equal(failed, failures);
		hll_free(&a);
		hll_free(&b);
		if (failures == 0)
			break;
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_index_boundaries),
		cmocka_unit_test(test_index_matches_log),
		cmocka_unit_test(test_bin_value_error),
		cmocka_unit_test(test_uniform),
		cmocka_unit_test(test_lognormal),
		cmocka_unit_test(test_pareto),
		cmocka_unit_test(test_constant),
		cmocka_unit_test(test_wide_span),
		cmocka_unit_test(test_negatives_and_zeros),
		cmocka_unit_test(test_every_rank),
		cmocka_unit_test(test_empty_and_invalid),
		cmocka_unit_test(test_reset),
		cmocka_unit_test(test_merge_equals_single),
		cmocka_unit_test(test_subtract_restores),
		cmocka_unit_test(test_window_by_event),
		cmocka_unit_test(test_window_by_merge),
		cmocka_unit_test(test_window_outliers_by_event),
		cmocka_unit_test(test_window_outliers_by_merge),
		cmocka_unit_test(test_memory_bounded),
		cmocka_unit_test(test_count_widths),
		cmocka_unit_test(test_typical_memory),
		cmocka_unit_test(test_sketch_alloc_failures),
		cmocka_unit_test(test_hash_vectors),
		cmocka_unit_test(test_hash_distinct),
		cmocka_unit_test(test_hll_accuracy),
		cmocka_unit_test(test_hll_spread),
		cmocka_unit_test(test_hll_sparse),
		cmocka_unit_test(test_hll_merge),
		cmocka_unit_test(test_hll_alloc_failures),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
