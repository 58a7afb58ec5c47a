/*
 * sketch.c — the quantile sketch and the HyperLogLog the windows keep per
 * bucket (see sketch.h for the interface and the guarantees).
 *
 * Quantile sketch: bins and accuracy.
 *   The brief is DDSketch with alpha = 0.005: bins (g^(i-1), g^i] with
 *   g = (1 + a) / (1 - a) ~ 1.01005, index ceil(log_g x). We take g slightly
 *   smaller, g = 2^(1/70) ~ 1.009951, so that every power of two holds exactly
 *   70 bins. Then ceil(log_g x) = 70 * e + ceil(70 * log2(m)) for
 *   x = m * 2^e, m in [1, 2), and the second term depends on the mantissa
 *   bits only: a 128-entry table indexed by the top 7 mantissa bits gives the
 *   candidate bin, and one integer comparison with the bin's upper bound
 *   (71 bounds, computed offline to 60 digits) settles it. No log, no
 *   floating point on insert, and the bins are exactly the log-spaced ones
 *   (no approximation to pay for in accuracy). The table works because a bin
 *   is wider (>= 0.00995 in mantissa) than a cell (1/128), so a cell holds at
 *   most one bin boundary. A bin reports lower * 2g / (1 + g), whose relative
 *   error over the bin is at most (g - 1) / (g + 1) = 0.004951 = SKETCH_ALPHA.
 *   The price of g < (1+a)/(1-a): 1% more bins than the brief's g.
 *
 * Quantile sketch: storage, and why collapsing keeps subtraction exact.
 *   A fixed range for |x| in [1e-9, 1e12] is 70 * log2(1e21) = 4884 bins:
 *   19.5 KB a sign with 32-bit counts, ~1.2 MB per group and aggregate for 60
 *   buckets. Too much, so each sign keeps a dense array over the range of
 *   indexes it has seen, [lo, top]. The buffer grows by a quarter, and the
 *   range by an eighth more than needed below (top cannot take slack, see
 *   next), so that extending either way costs O(1) amortised moves per bin;
 *   with iid values the range only grows on a new extreme, O(log n) times.
 *   A typical latency bucket spans 10 to 15 powers of two: 700 to 1050 bins.
 *   Counts start at one byte and are widened (2, 4, 8) when one would
 *   overflow: low-rate buckets stay small, and a day-long window at a million
 *   events per second cannot overflow a bin.
 *
 *   The range of a sign is capped at SKETCH_MAX_BINS: bins below
 *   top - SKETCH_MAX_BINS + 1 (the "floor"), where top is the highest index
 *   added since the sign was last empty, are folded into the floor bin. The
 *   floor depends on `top` only, and `top` only grows. So a value x of index
 *   i sits in bin max(i, floor) of every sketch it was added to. If src's
 *   values were all added to dst too (value by value, or by merging src),
 *   then top(dst) >= top(src), so floor(dst) >= floor(src), and subtracting
 *   src's bin j from dst's bin max(j, floor(dst)) removes each value from the
 *   very bin it sits in: subtraction is exact even after folding, whatever
 *   the order of folds. When a sign becomes empty its `top` is forgotten
 *   (nothing in it can be subtracted any more), so an outlier stops costing
 *   accuracy once the window has emptied; a window that wants that sooner
 *   can rebuild its total from the live buckets when sketch_collapsed() moves.
 *
 *   Zero (|x| < 1e-9) is a counter; negatives have a store of their own,
 *   indexed by |x|, whose floor folds the smallest magnitudes too.
 *
 * HyperLogLog: HLL_P = 12, 4096 one-byte registers; rho of the 52 bits under
 * the register index, capped at 53. Registers are allocated only when an
 * item is added, and kept sparse (a sorted list of (index, rho)) up to
 * HLL_SPARSE_MAX touched registers: most buckets of most groups see few
 * distinct values. The estimate is Ertl's improved raw estimator
 * (arXiv:1702.01284, section 4, as Redis computes it): nearly unbiased from a
 * handful of items to far beyond what a window sees, with no switch-over to
 * LinearCounting (and no bias bump there) and no empirical bias tables.
 *
 * Allocation goes through SKETCH_CALLOC / SKETCH_REALLOC, so the unit test
 * can compile this file with failing allocators (the fault-injection seam).
 */
#include "rules/sketch.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#ifndef SKETCH_CALLOC
#define SKETCH_CALLOC calloc
#endif
#ifndef SKETCH_REALLOC
#define SKETCH_REALLOC realloc
#endif

#define BINS_PER_OCTAVE 70
#define FRAC_BITS 52
#define FRAC_MASK ((UINT64_C(1) << FRAC_BITS) - 1)
#define EXP_INF UINT64_C(0x7ff0000000000000)
#define SIGN_BIT (UINT64_C(1) << 63)

/*
 * bound[j] = the largest 52-bit fraction f with 1 + f / 2^52 <= 2^(j / 70):
 * bin j of a power of two holds the fractions (bound[j-1], bound[j]].
 */
static const uint64_t bound[BINS_PER_OCTAVE + 1] = {
	0x0000000000000, 0x028c2af3c1ff4, 0x051ed35254d7a, 0x07b809a43b567,
	0x0a57de9c16bc7, 0x0cfe6317120a1, 0x0faba81d4e5df, 0x125fbee250664,
	0x151ab8c56eea2, 0x17dca752426be, 0x1aa59c4115e7d, 0x1d75a97758b25,
	0x204ce10811781, 0x232b55345262f, 0x2611186bae674, 0x28fe3d4cafbb7,
	0x2bf2d6a54f7da, 0x2eeef7736e8a2, 0x31f2b2e54f85c, 0x34fe1c5a121ed,
	0x381147622f886, 0x3b2c47bff8328, 0x3e4f316812c2f, 0x417a1881fc50d,
	0x44ad116889e7b, 0x47e830aa6b53e, 0x4b2b8b0aaf3c7, 0x4e773581488d9,
	0x51cb453b9536c, 0x5527cf9ce6406, 0x588cea3f093bd, 0x5bfaaaf2d311e,
	0x5f7127c0ac329, 0x62f076e91e2a4, 0x6678aee5629f7, 0x6a09e667f3bcc,
	0x6da4345d1e0ad, 0x7147afeb93bdb, 0x74f470750179f, 0x78aa8d96a493e,
	0x7c6a1f29e2ce6, 0x80333d44e39bd, 0x8406003b2ae5c, 0x87e2809e355e7,
	0x8bc8d73e1660f, 0x8fb91d2a17639, 0x93b36bb158ffe, 0x97b7dc637595c,
	0x9bc68911258bf, 0x9fdf8bcce533d, 0xa402feeb9c532, 0xa830fd0547590,
	0xac69a0f5a241c, 0xb0ad05dcd52df, 0xb4fb472022b1a, 0xb954806a97df0,
	0xbdb8cdadbe120, 0xc2284b224e80a, 0xc6a31548e794d, 0xcb2948eac4142,
	0xcfbb031a741a4, 0xd458613497eab, 0xd90180e09c9e3, 0xddb680117ab12,
	0xe2777d0676770, 0xe744964be278b, 0xec1deabbe3c14, 0xf103997f381f4,
	0xf5f5c20dfe5f2, 0xfaf4843080835, 0x10000000000000,
};

/* first_bin[t] = the first j with bound[j] >= t << 45: the cell's first bin. */
static const uint8_t first_bin[128] = {
	0,  1,  2,  3,  4,  4,  5,  6,  7,  7,  8,  9,  10, 10, 11, 12,
	12, 13, 14, 14, 15, 16, 17, 17, 18, 19, 19, 20, 20, 21, 22, 22,
	23, 24, 24, 25, 26, 26, 27, 27, 28, 29, 29, 30, 30, 31, 32, 32,
	33, 33, 34, 34, 35, 35, 36, 37, 37, 38, 38, 39, 39, 40, 40, 41,
	41, 42, 42, 43, 44, 44, 45, 45, 46, 46, 47, 47, 48, 48, 49, 49,
	50, 50, 50, 51, 51, 52, 52, 53, 53, 54, 54, 55, 55, 56, 56, 57,
	57, 57, 58, 58, 59, 59, 60, 60, 61, 61, 61, 62, 62, 63, 63, 64,
	64, 64, 65, 65, 66, 66, 66, 67, 67, 68, 68, 69, 69, 69, 70, 70,
};

/* 2g / (1 + g), g = 2^(1/70): lower bound * this = the bin's value. */
static const double bin_mid = 0x1.0144782d9e920p+0;

static inline uint64_t bits_of(double x)
{
	uint64_t b;
	memcpy(&b, &x, sizeof(b));
	return b;
}

/* Index of a finite positive double >= SKETCH_ZERO, given its bits. */
static inline int32_t index_of_bits(uint64_t a)
{
	int32_t e = (int32_t)(a >> FRAC_BITS) - 1023;
	uint64_t f = a & FRAC_MASK;
	unsigned j = first_bin[f >> (FRAC_BITS - 7)];
	j += f > bound[j];
	return BINS_PER_OCTAVE * e + (int32_t)j;
}

int32_t sketch_index(double x)
{
	uint64_t a = bits_of(x) & ~SIGN_BIT;
	if (a >= EXP_INF || a < bits_of(SKETCH_ZERO))
		return INT32_MIN;
	return index_of_bits(a);
}

double sketch_bin_value(int32_t i)
{
	/* Bin i is (lower, lower * g] with lower = 2^((i - 1) / 70). */
	int32_t k = i - 1;
	int32_t e = k >= 0 ? k / BINS_PER_OCTAVE : -((-k + BINS_PER_OCTAVE - 1) / BINS_PER_OCTAVE);
	int32_t r = k - e * BINS_PER_OCTAVE;
	double lower = ldexp(1.0 + (double)bound[r] * 0x1p-52, e);
	return lower * bin_mid;
}

/* ---------------------------------------------------------------------------
 * Count arrays of 1, 2, 4 or 8 bytes a count.
 */
static inline uint64_t get(const void *b, unsigned w, uint32_t k)
{
	switch (w) {
	case 1:
		return ((const uint8_t *)b)[k];
	case 2:
		return ((const uint16_t *)b)[k];
	case 4:
		return ((const uint32_t *)b)[k];
	default:
		return ((const uint64_t *)b)[k];
	}
}

static inline void put(void *b, unsigned w, uint32_t k, uint64_t v)
{
	switch (w) {
	case 1:
		((uint8_t *)b)[k] = (uint8_t)v;
		break;
	case 2:
		((uint16_t *)b)[k] = (uint16_t)v;
		break;
	case 4:
		((uint32_t *)b)[k] = (uint32_t)v;
		break;
	default:
		((uint64_t *)b)[k] = v;
		break;
	}
}

static unsigned width_for(uint64_t v)
{
	if (v <= UINT8_MAX)
		return 1;
	if (v <= UINT16_MAX)
		return 2;
	if (v <= UINT32_MAX)
		return 4;
	return 8;
}

static inline unsigned max_u(unsigned a, unsigned b)
{
	return a > b ? a : b;
}

static inline int32_t store_top(const struct sketch_store *st)
{
	return st->lo + (int32_t)st->n - 1;
}

static inline int32_t floor_of(int32_t top)
{
	return top - (SKETCH_MAX_BINS - 1);
}

/* The count of bin i (0 outside the range). */
static uint64_t store_at(const struct sketch_store *st, int32_t i)
{
	uint32_t k = (uint32_t)(i - st->lo);
	return k < st->n ? get(st->bins, st->width, k) : 0;
}

/* Sum of the counts of bins <= i. */
static uint64_t store_sum_to(const struct sketch_store *st, int32_t i)
{
	uint64_t sum = 0;
	for (uint32_t k = 0; k < st->n && st->lo + (int32_t)k <= i; k++)
		sum += get(st->bins, st->width, k);
	return sum;
}

/* Empty; the buffer is kept, its bytes counted as one-byte bins. */
static void store_clear(struct sketch_store *st)
{
	st->cap *= st->width;
	if (st->cap > 0)
		st->width = 1;
	st->total = 0;
	st->lo = 0;
	st->n = 0;
}

/*
 * Changing a store's range or width happens in two steps, so that a merge can
 * allocate for both signs before it changes either: plan_prepare allocates
 * (the only step that can fail), plan_commit moves the counts.
 */
struct plan {
	void *buf; /* new buffer, or NULL to reuse the current one */
	uint32_t cap;
	int32_t lo, top;
	uint8_t width;
	bool active;
};

static int plan_prepare(const struct sketch_store *st, int32_t lo, int32_t top, unsigned width,
			struct plan *p)
{
	uint32_t n = (uint32_t)(top - lo + 1);

	assert(top >= lo && n <= SKETCH_MAX_BINS);
	assert(width >= st->width);
	p->active = true;
	p->lo = lo;
	p->top = top;
	p->width = (uint8_t)width;
	p->buf = NULL;
	p->cap = st->cap;
	if (st->bins != NULL && width == st->width && n <= st->cap)
		return 0;

	/* Widening keeps the number of bins; growing adds a quarter. */
	uint32_t cap = width != st->width && n <= st->cap ? st->cap : st->cap + st->cap / 4;
	if (cap < n)
		cap = n;
	if (cap < 16)
		cap = 16;
	if (cap > SKETCH_MAX_BINS)
		cap = SKETCH_MAX_BINS;
	p->buf = SKETCH_CALLOC(cap, width);
	if (p->buf == NULL)
		return -ENOMEM;
	p->cap = cap;
	return 0;
}

static void plan_abort(struct plan *p)
{
	free(p->buf);
	p->buf = NULL;
	p->active = false;
}

/* Applies the plan; returns the count folded into the new lowest bin. */
static uint64_t plan_commit(struct sketch_store *st, struct plan *p)
{
	uint32_t nn = (uint32_t)(p->top - p->lo + 1);
	unsigned w = p->width;
	uint64_t folded = 0;

	if (!p->active)
		return 0;
	p->active = false;
	if (st->n == 0) {
		if (p->buf != NULL) {
			free(st->bins);
			st->bins = p->buf;
		} else {
			memset(st->bins, 0, (size_t)nn * w);
		}
	} else if (p->buf != NULL) {
		for (uint32_t k = 0; k < st->n; k++) {
			uint64_t v = get(st->bins, st->width, k);
			int32_t i = st->lo + (int32_t)k;
			uint32_t t = 0;

			if (v == 0)
				continue;
			if (i > p->lo)
				t = (uint32_t)(i - p->lo);
			else if (i < p->lo)
				folded += v;
			put(p->buf, w, t, get(p->buf, w, t) + v);
		}
		free(st->bins);
		st->bins = p->buf;
	} else if (p->lo <= st->lo) {
		/* Same width, room enough: shift up, zero the new bins. */
		uint32_t d = (uint32_t)(st->lo - p->lo);
		char *b = st->bins;

		memmove(b + (size_t)d * w, b, (size_t)st->n * w);
		memset(b, 0, (size_t)d * w);
		memset(b + (size_t)(d + st->n) * w, 0, (size_t)(nn - d - st->n) * w);
	} else {
		/* The floor rose: fold bins [lo, p->lo] into the first, shift down. */
		uint32_t c = (uint32_t)(p->lo - st->lo);
		uint32_t keep = st->n > c ? st->n - c : 0;
		char *b = st->bins;
		uint64_t first;

		for (uint32_t k = 0; k < c && k < st->n; k++)
			folded += get(b, w, k);
		memmove(b, b + (size_t)c * w, (size_t)keep * w);
		memset(b + (size_t)keep * w, 0, (size_t)(nn - keep) * w);
		first = get(b, w, 0) + folded;
		put(b, w, 0, first);
	}
	st->cap = p->cap;
	st->width = p->width;
	st->lo = p->lo;
	st->n = nn;
	return folded;
}

/* ---------------------------------------------------------------------------
 * Quantile sketch.
 */
void sketch_init(struct sketch *s)
{
	memset(s, 0, sizeof(*s));
}

void sketch_free(struct sketch *s)
{
	if (s == NULL)
		return;
	free(s->pos.bins);
	free(s->neg.bins);
	sketch_init(s);
}

void sketch_reset(struct sketch *s)
{
	store_clear(&s->pos);
	store_clear(&s->neg);
	s->zero = 0;
	s->collapsed = 0;
}

/* Index i is outside the range, or its count is at its width's maximum. */
static int store_add_slow(struct sketch_store *st, int32_t i, uint64_t *collapsed)
{
	int32_t lo, top, target, bottom;
	uint64_t v = 1, fold = 0;
	unsigned width = max_u(st->width, 1);
	struct plan p;
	int rc;

	if (st->n == 0) {
		/* Room below the first value; its index is the top. */
		uint32_t room = st->cap > 0 ? st->cap : 16;
		uint32_t slack = (room - 1) / 2 < 32 ? (room - 1) / 2 : 32;

		top = target = i;
		lo = i - (int32_t)slack;
	} else if (i > store_top(st)) {
		top = target = i;
		bottom = floor_of(top);
		lo = st->lo < bottom ? bottom : st->lo;
		if (lo > st->lo)
			fold = store_sum_to(st, lo);
	} else if (i < st->lo) {
		uint32_t slack = st->n / 8 > 8 ? st->n / 8 : 8;

		top = store_top(st);
		bottom = floor_of(top);
		target = i < bottom ? bottom : i;
		v = store_at(st, target) + 1; /* the floor may be in range already */
		lo = target - (int32_t)slack;
		if (lo < bottom)
			lo = bottom;
	} else {
		/* In range: the count is at its width's maximum. */
		top = store_top(st);
		lo = st->lo;
		target = i;
		v = store_at(st, i) + 1;
	}
	width = max_u(width, max_u(width_for(v), width_for(fold)));
	rc = plan_prepare(st, lo, top, width, &p);
	if (rc < 0)
		return rc;
	*collapsed += plan_commit(st, &p);

	uint32_t k = (uint32_t)(target - st->lo);
	put(st->bins, st->width, k, get(st->bins, st->width, k) + 1);
	st->total++;
	if (i < target)
		(*collapsed)++;
	return 0;
}

static inline int store_add(struct sketch_store *st, int32_t i, uint64_t *collapsed)
{
	uint32_t k = (uint32_t)(i - st->lo);

	if (k < st->n) {
		switch (st->width) {
		case 1: {
			uint8_t *c = (uint8_t *)st->bins + k;
			if (*c == UINT8_MAX)
				break;
			++*c;
			st->total++;
			return 0;
		}
		case 2: {
			uint16_t *c = (uint16_t *)st->bins + k;
			if (*c == UINT16_MAX)
				break;
			++*c;
			st->total++;
			return 0;
		}
		case 4: {
			uint32_t *c = (uint32_t *)st->bins + k;
			if (*c == UINT32_MAX)
				break;
			++*c;
			st->total++;
			return 0;
		}
		default:
			((uint64_t *)st->bins)[k]++;
			st->total++;
			return 0;
		}
	}
	return store_add_slow(st, i, collapsed);
}

int sketch_add(struct sketch *s, double x)
{
	uint64_t b = bits_of(x);
	uint64_t a = b & ~SIGN_BIT;

	if (a >= EXP_INF)
		return -EINVAL;
	if (a < bits_of(SKETCH_ZERO)) {
		s->zero++;
		return 0;
	}
	return store_add((b & SIGN_BIT) ? &s->neg : &s->pos, index_of_bits(a), &s->collapsed);
}

/* Plans dst's range and width to take src in (inactive if src is empty). */
static int merge_prepare(const struct sketch_store *dst, const struct sketch_store *src,
			 struct plan *p)
{
	int32_t lo, top;
	uint64_t peak;

	p->active = false;
	p->buf = NULL;
	if (src->total == 0)
		return 0;
	top = store_top(src);
	lo = src->lo;
	if (dst->n > 0) {
		if (store_top(dst) > top)
			top = store_top(dst);
		if (dst->lo < lo)
			lo = dst->lo;
	}
	if (lo < floor_of(top))
		lo = floor_of(top);

	/* The largest count after the merge decides the width. */
	peak = store_sum_to(dst, lo) + store_sum_to(src, lo);
	for (int32_t i = lo + 1; i <= top; i++) {
		uint64_t v = store_at(dst, i) + store_at(src, i);
		if (v > peak)
			peak = v;
	}
	return plan_prepare(dst, lo, top, max_u(max_u(dst->width, 1), width_for(peak)), p);
}

/* Adds src's counts into dst, already reshaped; returns the count folded. */
static uint64_t merge_commit(struct sketch_store *dst, const struct sketch_store *src)
{
	uint64_t folded = 0;

	for (uint32_t k = 0; k < src->n; k++) {
		uint64_t v = get(src->bins, src->width, k);
		int32_t i = src->lo + (int32_t)k;
		uint32_t t = 0;

		if (v == 0)
			continue;
		if (i > dst->lo)
			t = (uint32_t)(i - dst->lo);
		else if (i < dst->lo)
			folded += v;
		put(dst->bins, dst->width, t, get(dst->bins, dst->width, t) + v);
	}
	dst->total += src->total;
	return folded;
}

int sketch_merge(struct sketch *dst, const struct sketch *src)
{
	struct plan pp, pn;
	int rc;

	assert(dst != src);
	rc = merge_prepare(&dst->pos, &src->pos, &pp);
	if (rc < 0)
		return rc;
	rc = merge_prepare(&dst->neg, &src->neg, &pn);
	if (rc < 0) {
		plan_abort(&pp);
		return rc;
	}
	if (pp.active) {
		dst->collapsed += plan_commit(&dst->pos, &pp);
		dst->collapsed += merge_commit(&dst->pos, &src->pos);
	}
	if (pn.active) {
		dst->collapsed += plan_commit(&dst->neg, &pn);
		dst->collapsed += merge_commit(&dst->neg, &src->neg);
	}
	dst->zero += src->zero;
	dst->collapsed += src->collapsed;
	return 0;
}

/*
 * Whether every count of src, each in the bin it sits in within dst (its own
 * bin, or dst's floor), is there to take out.
 */
static bool store_contains(const struct sketch_store *dst, const struct sketch_store *src)
{
	int32_t top, bottom;
	uint64_t folded = 0;

	if (src->total == 0)
		return true;
	if (dst->n == 0 || src->total > dst->total)
		return false;
	top = store_top(dst);
	bottom = floor_of(top);
	for (uint32_t k = 0; k < src->n; k++) {
		uint64_t v = get(src->bins, src->width, k);
		int32_t i = src->lo + (int32_t)k;

		if (v == 0)
			continue;
		if (i <= bottom) {
			folded += v;
			continue;
		}
		if (i > top || v > store_at(dst, i))
			return false;
	}
	return folded == 0 || (bottom >= dst->lo && folded <= store_at(dst, bottom));
}

static void store_subtract(struct sketch_store *dst, const struct sketch_store *src)
{
	int32_t bottom;

	if (src->total == 0)
		return;
	bottom = floor_of(store_top(dst));
	for (uint32_t k = 0; k < src->n; k++) {
		uint64_t v = get(src->bins, src->width, k);
		int32_t i = src->lo + (int32_t)k;
		uint32_t t;

		if (v == 0)
			continue;
		t = (uint32_t)((i < bottom ? bottom : i) - dst->lo);
		put(dst->bins, dst->width, t, get(dst->bins, dst->width, t) - v);
	}
	dst->total -= src->total;
	if (dst->total == 0)
		store_clear(dst);
}

int sketch_subtract(struct sketch *dst, const struct sketch *src)
{
	assert(dst != src);
	if (src->zero > dst->zero || !store_contains(&dst->pos, &src->pos) ||
	    !store_contains(&dst->neg, &src->neg))
		return -EINVAL;
	store_subtract(&dst->pos, &src->pos);
	store_subtract(&dst->neg, &src->neg);
	dst->zero -= src->zero;
	return 0;
}

uint64_t sketch_count(const struct sketch *s)
{
	return s->pos.total + s->neg.total + s->zero;
}

uint64_t sketch_collapsed(const struct sketch *s)
{
	return s->collapsed;
}

double sketch_quantile(const struct sketch *s, double q)
{
	uint64_t n = sketch_count(s), r, seen = 0;

	if (n == 0 || !(q >= 0.0 && q <= 1.0))
		return NAN;
	r = (uint64_t)floor(q * (double)(n - 1));
	if (r > n - 1)
		r = n - 1;

	/* Ascending order: negatives by falling magnitude, zeros, positives. */
	if (r < s->neg.total) {
		const struct sketch_store *st = &s->neg;
		for (uint32_t k = st->n; k-- > 0;) {
			seen += get(st->bins, st->width, k);
			if (seen > r)
				return -sketch_bin_value(st->lo + (int32_t)k);
		}
	} else if (r - s->neg.total < s->zero) {
		return 0.0;
	} else {
		const struct sketch_store *st = &s->pos;
		r -= s->neg.total + s->zero;
		for (uint32_t k = 0; k < st->n; k++) {
			seen += get(st->bins, st->width, k);
			if (seen > r)
				return sketch_bin_value(st->lo + (int32_t)k);
		}
	}
	/* Unreachable: a store's total is the sum of its bins. */
	assert(false);
	return NAN;
}

size_t sketch_memory(const struct sketch *s)
{
	return sizeof(*s) + (size_t)s->pos.cap * s->pos.width + (size_t)s->neg.cap * s->neg.width;
}

/* ---------------------------------------------------------------------------
 * Hash: the wyhash (final 4, public domain) construction, single lane.
 * Inputs up to 16 bytes are read as two overlapping 64-bit words; longer ones
 * fold 16 bytes at a time into the seed by a 64x64->128 multiply whose halves
 * are xored ("mum"), then the last 16 bytes (overlapping) are mixed in.
 */
#define K0 UINT64_C(0xa0761d6478bd642f)
#define K1 UINT64_C(0xe7037ed1a0b428db)
#define K2 UINT64_C(0x8ebc6af09c88c6db)

static inline void mul128(uint64_t a, uint64_t b, uint64_t *lo, uint64_t *hi)
{
#ifdef __SIZEOF_INT128__
	__extension__ unsigned __int128 r = (unsigned __int128)a * b;
	*lo = (uint64_t)r;
	*hi = (uint64_t)(r >> 64);
#else
	uint64_t ha = a >> 32, hb = b >> 32, la = (uint32_t)a, lb = (uint32_t)b;
	uint64_t rh = ha * hb, rm0 = ha * lb, rm1 = hb * la, rl = la * lb;
	uint64_t t = rl + (rm0 << 32), c = t < rl;
	*lo = t + (rm1 << 32);
	c += *lo < t;
	*hi = rh + (rm0 >> 32) + (rm1 >> 32) + c;
#endif
}

static inline uint64_t mum(uint64_t a, uint64_t b)
{
	uint64_t lo, hi;
	mul128(a, b, &lo, &hi);
	return lo ^ hi;
}

static inline uint64_t rd64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	return v;
}

static inline uint64_t rd32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap32(v);
#endif
	return v;
}

uint64_t hll_hash(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t seed = K0 ^ mum(K0 ^ K1, K2);
	uint64_t a, b, lo, hi;

	if (len <= 16) {
		if (len >= 4) {
			size_t o = (len >> 3) << 2;
			a = (rd32(p) << 32) | rd32(p + o);
			b = (rd32(p + len - 4) << 32) | rd32(p + len - 4 - o);
		} else if (len > 0) {
			a = ((uint64_t)p[0] << 16) | ((uint64_t)p[len >> 1] << 8) | p[len - 1];
			b = 0;
		} else {
			a = b = 0;
		}
	} else {
		size_t i = len;
		while (i > 16) {
			seed = mum(rd64(p) ^ K1, rd64(p + 8) ^ seed);
			p += 16;
			i -= 16;
		}
		a = rd64(p + i - 16);
		b = rd64(p + i - 8);
	}
	mul128(a ^ K1, b ^ seed, &lo, &hi);
	return mum(lo ^ K0 ^ (uint64_t)len, hi ^ K1);
}

uint64_t hll_hash_u64(uint64_t x)
{
	uint8_t le[8];
	for (int i = 0; i < 8; i++)
		le[i] = (uint8_t)(x >> (8 * i));
	return hll_hash(le, sizeof(le));
}

/* ---------------------------------------------------------------------------
 * Saved state. A store is its lowest index, its number of bins and their
 * counts; decoding rebuilds it at the narrowest width that holds them.
 * Indexes are bounded well past what a finite double maps to, so a decoded
 * store is one the add path could have built.
 */
#define STORE_INDEX_MAX (1 << 20)

static int store_encode(const struct sketch_store *st, struct kl_buf *out)
{
	int rc = kl_buf_put_i64(out, st->n ? st->lo : 0);
	if (rc == 0)
		rc = kl_buf_put_u64(out, st->n);
	for (uint32_t k = 0; k < st->n && rc == 0; k++)
		rc = kl_buf_put_u64(out, get(st->bins, st->width, k));
	return rc;
}

static int store_decode(struct sketch_store *st, struct kl_rd *r)
{
	int64_t lo = kl_rd_i64(r);
	uint32_t n = (uint32_t)kl_rd_count(r, SKETCH_MAX_BINS);
	if (r->bad || lo < -STORE_INDEX_MAX || lo > STORE_INDEX_MAX)
		goto bad;
	if (n == 0)
		return 0;
	/* Counts first (the width depends on the largest), then the store. */
	const unsigned char *mark = r->p;
	uint64_t top = 0, total = 0;
	for (uint32_t k = 0; k < n; k++) {
		uint64_t v = kl_rd_u64(r);
		if (v > top)
			top = v;
		if (total + v < total)
			r->bad = true;
		total += v;
	}
	if (r->bad)
		goto bad;
	struct plan p;
	int rc = plan_prepare(st, (int32_t)lo, (int32_t)lo + (int32_t)n - 1, width_for(top), &p);
	if (rc < 0)
		return rc;
	plan_commit(st, &p);
	r->p = mark;
	for (uint32_t k = 0; k < n; k++)
		put(st->bins, st->width, k, kl_rd_u64(r));
	st->total = total;
	return 0;
bad:
	r->bad = true;
	return -EINVAL;
}

int sketch_encode(const struct sketch *s, struct kl_buf *out)
{
	int rc = store_encode(&s->pos, out);
	if (rc == 0)
		rc = store_encode(&s->neg, out);
	if (rc == 0)
		rc = kl_buf_put_u64(out, s->zero);
	if (rc == 0)
		rc = kl_buf_put_u64(out, s->collapsed);
	return rc;
}

int sketch_decode(struct sketch *s, struct kl_rd *r)
{
	int rc = store_decode(&s->pos, r);
	if (rc == 0)
		rc = store_decode(&s->neg, r);
	if (rc == 0) {
		s->zero = kl_rd_u64(r);
		s->collapsed = kl_rd_u64(r);
		rc = r->bad ? -EINVAL : 0;
	}
	if (rc < 0)
		sketch_reset(s);
	return rc;
}

/* ---------------------------------------------------------------------------
 * HyperLogLog.
 */
#define HLL_Q (64 - HLL_P)	  /* bits under the index */
#define HLL_REG_MAX (HLL_Q + 1) /* largest register value */

static inline uint32_t entry_idx(uint32_t e)
{
	return e >> 8;
}

static inline uint8_t entry_rho(uint32_t e)
{
	return (uint8_t)(e & 0xff);
}

void hll_init(struct hll *h)
{
	memset(h, 0, sizeof(*h));
}

void hll_free(struct hll *h)
{
	if (h == NULL)
		return;
	free(h->mem);
	hll_init(h);
}

void hll_reset(struct hll *h)
{
	/* The buffer stays; whatever its size, it holds a sparse list again. */
	h->dense = 0;
	h->n = 0;
}

/* First sparse entry whose index is >= idx. */
static uint32_t sparse_find(const uint32_t *e, uint32_t n, uint32_t idx)
{
	uint32_t lo = 0, hi = n;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (entry_idx(e[mid]) < idx)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int to_dense(struct hll *h)
{
	uint32_t saved[HLL_SPARSE_MAX];
	uint32_t n = h->n;
	uint8_t *regs;

	assert(!h->dense && n <= HLL_SPARSE_MAX);
	if (n > 0)
		memcpy(saved, h->mem, (size_t)n * sizeof(uint32_t));
	if (h->bytes >= HLL_M) {
		regs = h->mem;
		memset(regs, 0, HLL_M);
	} else {
		regs = SKETCH_CALLOC(HLL_M, 1);
		if (regs == NULL)
			return -ENOMEM;
		free(h->mem);
		h->mem = regs;
		h->bytes = HLL_M;
	}
	for (uint32_t k = 0; k < n; k++)
		regs[entry_idx(saved[k])] = entry_rho(saved[k]);
	h->dense = 1;
	h->n = 0;
	return 0;
}

/* Room for `want` sparse entries. */
static int sparse_reserve(struct hll *h, uint32_t want)
{
	uint32_t cap = h->bytes / sizeof(uint32_t);
	void *p;

	if (want <= cap)
		return 0;
	cap = cap < 8 ? 8 : cap * 2;
	if (cap < want)
		cap = want;
	if (cap > HLL_SPARSE_MAX)
		cap = HLL_SPARSE_MAX;
	p = SKETCH_REALLOC(h->mem, (size_t)cap * sizeof(uint32_t));
	if (p == NULL)
		return -ENOMEM;
	h->mem = p;
	h->bytes = cap * (uint32_t)sizeof(uint32_t);
	return 0;
}

static int hll_set(struct hll *h, uint32_t idx, uint8_t rho)
{
	uint32_t *e, k;
	int rc;

	if (h->dense) {
		uint8_t *regs = h->mem;
		if (regs[idx] < rho)
			regs[idx] = rho;
		return 0;
	}
	e = h->mem;
	k = sparse_find(e, h->n, idx);
	if (k < h->n && entry_idx(e[k]) == idx) {
		if (entry_rho(e[k]) < rho)
			e[k] = idx << 8 | rho;
		return 0;
	}
	if (h->n == HLL_SPARSE_MAX) {
		rc = to_dense(h);
		if (rc < 0)
			return rc;
		((uint8_t *)h->mem)[idx] = rho;
		return 0;
	}
	rc = sparse_reserve(h, h->n + 1);
	if (rc < 0)
		return rc;
	e = h->mem;
	memmove(e + k + 1, e + k, (size_t)(h->n - k) * sizeof(uint32_t));
	e[k] = idx << 8 | rho;
	h->n++;
	return 0;
}

int hll_add_hash(struct hll *h, uint64_t hash)
{
	uint32_t idx = (uint32_t)(hash >> HLL_Q);
	uint64_t w = hash << HLL_P;
	uint8_t rho = w != 0 ? (uint8_t)(__builtin_clzll(w) + 1) : HLL_REG_MAX;

	if (h->dense) {
		uint8_t *regs = h->mem;
		if (regs[idx] < rho)
			regs[idx] = rho;
		return 0;
	}
	return hll_set(h, idx, rho);
}

int hll_add(struct hll *h, const void *data, size_t len)
{
	return hll_add_hash(h, hll_hash(data, len));
}

static bool hll_empty(const struct hll *h)
{
	return !h->dense && h->n == 0;
}

int hll_merge(struct hll *dst, const struct hll *src)
{
	int rc;

	assert(dst != src);
	if (hll_empty(src))
		return 0;
	if (src->dense) {
		const uint8_t *s = src->mem;
		uint8_t *d;

		if (!dst->dense) {
			rc = to_dense(dst);
			if (rc < 0)
				return rc;
		}
		d = dst->mem;
		for (uint32_t i = 0; i < HLL_M; i++)
			d[i] = d[i] > s[i] ? d[i] : s[i];
		return 0;
	}

	const uint32_t *s = src->mem;
	uint32_t sn = src->n;
	if (!dst->dense) {
		/* Size of the union of the two sorted lists. */
		const uint32_t *d = dst->mem;
		uint32_t i = 0, j = 0, u = 0;
		while (i < dst->n || j < sn) {
			if (j == sn || (i < dst->n && entry_idx(d[i]) < entry_idx(s[j])))
				i++;
			else if (i == dst->n || entry_idx(s[j]) < entry_idx(d[i]))
				j++;
			else
				i++, j++; /* the same register in both */
			u++;
		}
		if (u > HLL_SPARSE_MAX) {
			rc = to_dense(dst);
		} else {
			rc = sparse_reserve(dst, u);
			if (rc == 0) {
				/* Merge from the back, in place: slot k is never ahead of i. */
				uint32_t *e = dst->mem;
				uint32_t a = dst->n, b = sn, k = u;
				while (b > 0) {
					uint32_t from;
					if (a > 0 && entry_idx(e[a - 1]) > entry_idx(s[b - 1])) {
						from = e[--a];
					} else if (a > 0 && entry_idx(e[a - 1]) == entry_idx(s[b - 1])) {
						uint32_t x = e[--a], y = s[--b];
						from = entry_rho(x) > entry_rho(y) ? x : y;
					} else {
						from = s[--b];
					}
					e[--k] = from;
				}
				assert(k == a);
				dst->n = u;
				return 0;
			}
		}
		if (rc < 0)
			return rc;
	}
	uint8_t *regs = dst->mem;
	for (uint32_t k = 0; k < sn; k++) {
		uint32_t idx = entry_idx(s[k]);
		if (regs[idx] < entry_rho(s[k]))
			regs[idx] = entry_rho(s[k]);
	}
	return 0;
}

/* Ertl's sigma and tau (arXiv:1702.01284, algorithm 6). */
static double hll_sigma(double x)
{
	double y = 1.0, z = x, prev;

	if (x == 1.0)
		return INFINITY;
	do {
		x *= x;
		prev = z;
		z += x * y;
		y += y;
	} while (z != prev);
	return z;
}

static double hll_tau(double x)
{
	double y = 1.0, z, prev;

	if (x == 0.0 || x == 1.0)
		return 0.0;
	z = 1.0 - x;
	do {
		x = sqrt(x);
		prev = z;
		y *= 0.5;
		z -= (1.0 - x) * (1.0 - x) * y;
	} while (z != prev);
	return z / 3.0;
}

/* Estimate from the histogram c[v] = number of registers holding v. */
static double hll_from_histogram(const uint32_t c[HLL_REG_MAX + 1])
{
	const double m = HLL_M;
	double z;

	if (c[0] == HLL_M)
		return 0.0;
	z = m * hll_tau((m - c[HLL_REG_MAX]) / m);
	for (int k = HLL_Q; k >= 1; k--) {
		z += c[k];
		z *= 0.5;
	}
	z += m * hll_sigma(c[0] / m);
	return m * m / (2.0 * 0.693147180559945309417 * z); /* alpha_inf = 1 / (2 ln 2) */
}

double hll_estimate(const struct hll *h)
{
	uint32_t c[HLL_REG_MAX + 1] = { 0 };

	if (h->dense) {
		const uint8_t *regs = h->mem;
		for (uint32_t i = 0; i < HLL_M; i++)
			c[regs[i]]++;
	} else {
		const uint32_t *e = h->mem;
		c[0] = HLL_M - h->n;
		for (uint32_t k = 0; k < h->n; k++)
			c[entry_rho(e[k])]++;
	}
	return hll_from_histogram(c);
}

double hll_estimate_union(const struct hll *const *hs, size_t n)
{
	uint8_t regs[HLL_M] = { 0 };
	uint32_t c[HLL_REG_MAX + 1] = { 0 };

	for (size_t i = 0; i < n; i++) {
		const struct hll *h = hs[i];
		if (h->dense) {
			const uint8_t *r = h->mem;
			for (uint32_t k = 0; k < HLL_M; k++)
				regs[k] = regs[k] > r[k] ? regs[k] : r[k];
		} else {
			const uint32_t *e = h->mem;
			for (uint32_t k = 0; k < h->n; k++) {
				uint32_t idx = entry_idx(e[k]);
				if (regs[idx] < entry_rho(e[k]))
					regs[idx] = entry_rho(e[k]);
			}
		}
	}
	for (uint32_t k = 0; k < HLL_M; k++)
		c[regs[k]]++;
	return hll_from_histogram(c);
}

size_t hll_memory(const struct hll *h)
{
	return sizeof(*h) + h->bytes;
}

/* Sparse: the entries (index << 8 | rho), ascending; dense: the registers. */
int hll_encode(const struct hll *h, struct kl_buf *out)
{
	int rc = kl_buf_put_u64(out, h->dense);
	if (rc < 0)
		return rc;
	if (h->dense)
		return kl_buf_append(out, h->mem, HLL_M);
	rc = kl_buf_put_u64(out, h->n);
	for (uint32_t k = 0; k < h->n && rc == 0; k++)
		rc = kl_buf_put_u64(out, ((const uint32_t *)h->mem)[k]);
	return rc;
}

int hll_decode(struct hll *h, struct kl_rd *r)
{
	uint64_t dense = kl_rd_count(r, 1);
	int rc;
	if (r->bad)
		return -EINVAL;
	hll_reset(h);
	if (dense) {
		if (r->end - r->p < (ptrdiff_t)HLL_M)
			goto bad;
		for (uint32_t i = 0; i < HLL_M; i++)
			if (r->p[i] > HLL_REG_MAX)
				goto bad;
		if ((rc = to_dense(h)) < 0)
			return rc;
		memcpy(h->mem, r->p, HLL_M);
		r->p += HLL_M;
		return 0;
	}
	uint32_t n = (uint32_t)kl_rd_count(r, HLL_SPARSE_MAX);
	if (r->bad)
		goto bad;
	if (n && (rc = sparse_reserve(h, n)) < 0)
		return rc;
	uint32_t *e = h->mem;
	for (uint32_t k = 0; k < n; k++) {
		uint64_t v = kl_rd_u64(r);
		uint32_t idx = (uint32_t)(v >> 8);
		uint8_t rho = (uint8_t)(v & 0xff);
		if (r->bad || v > UINT32_MAX || idx >= HLL_M || rho == 0 || rho > HLL_REG_MAX ||
		    (k && entry_idx(e[k - 1]) >= idx))
			goto bad;
		e[k] = (uint32_t)v;
	}
	h->n = n;
	return 0;
bad:
	r->bad = true;
	hll_reset(h);
	return -EINVAL;
}
