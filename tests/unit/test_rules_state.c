/*
 * test_rules_state.c — saved state: the binary codec of common/kl.c, the
 * sketch and HyperLogLog encodings of rules/sketch.c, and rules_save /
 * rules_restore / rules_announce / rules_generation of rules/rules.c.
 *
 * Codec: varints at their edges (lengths included), zigzag, doubles bit for
 * bit (NaN payloads, -0.0, infinities), byte strings as views; a truncated or
 * over-long input marks the reader bad and every read after returns 0.
 *
 * Sketches: a decoded sketch has the same bins (same quantiles, counts, the
 * same encoding again) and can be subtracted from a total it was merged into;
 * corrupt input is refused and leaves the sketch empty. HLLs likewise, sparse
 * and dense.
 *
 * Rules: a set restored from the state of another evaluates exactly like it
 * from then on (same transitions at the same instants with the same values,
 * windows with stale buckets, zscore/baseline histories and new()'s seen
 * table included); rules_announce reports what was firing, flagged restored;
 * a rule whose identity changed starts fresh, an unchanged one next to it
 * keeps its state; any damage (every byte flipped, every truncation, magic,
 * version, or a structure error behind a correct checksum) is refused and
 * leaves every rule fresh; instants at the ends of int64 behind a correct
 * checksum are refused or handled without overflow (UBSan tells); the
 * generation moves when the state does, and only then.
 *
 * Each rules test gets a fresh temporary directory, diag stream and rule sets
 * from its setup; its teardown frees and removes them. Sources as in
 * test_rules.c: "app" (regex: ISO 8601 time, status, rt, path, method) and
 * "web" (nginx_timed).
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <zlib.h>

#include "common/kl.h"
#include "parsers/parsers.h"
#include "rules/rules.h"
#include "rules/sketch.h"

#define assert_dbl(got, want, tol)                                                              \
	do {                                                                                    \
		double g_ = (got), w_ = (want), t_ = (tol);                                     \
		if (!(fabs(g_ - w_) <= t_)) {                                                   \
			print_error("%s = %.17g\n  expected %s = %.17g (within %g)\n", #got, g_, \
				    #want, w_, t_);                                             \
			fail();                                                                 \
		}                                                                               \
	} while (0)

/* Two doubles with the same bits (NaN payloads and -0.0 included). */
#define assert_same_bits(got, want)                                                            \
	do {                                                                                   \
		double g_ = (got), w_ = (want);                                                \
		uint64_t gb_, wb_;                                                             \
		memcpy(&gb_, &g_, 8);                                                          \
		memcpy(&wb_, &w_, 8);                                                          \
		if (gb_ != wb_) {                                                              \
			print_error("%s = %.17g (bits %016llx)\n  expected %s = %.17g (bits %016llx)\n", \
				    #got, g_, (unsigned long long)gb_, #want, w_,              \
				    (unsigned long long)wb_);                                  \
			fail();                                                                \
		}                                                                              \
	} while (0)

static double from_bits(uint64_t b)
{
	double d;
	memcpy(&d, &b, 8);
	return d;
}

static void assert_same_buf(const struct kl_buf *got, const struct kl_buf *want, const char *what)
{
	if (got->len != want->len) {
		print_error("%s: %zu bytes, expected %zu\n", what, got->len, want->len);
		fail();
	}
	for (size_t i = 0; i < got->len; i++)
		if (got->p[i] != want->p[i]) {
			print_error("%s: byte %zu is 0x%02x, expected 0x%02x (of %zu)\n", what, i,
				    (unsigned char)got->p[i], (unsigned char)want->p[i], got->len);
			fail();
		}
}

/* ===========================================================================
 * The codec (common/kl.c).
 */

static void test_codec_u64(void **state)
{
	(void)state;
	static const struct {
		uint64_t v;
		size_t len;
	} cases[] = {
		{ 0, 1 },	   { 1, 1 },	      { 127, 1 },
		{ 128, 2 },	   { 16383, 2 },      { 16384, 3 },
		{ UINT32_MAX, 5 }, { INT64_MAX, 9 },  { (uint64_t)1 << 63, 10 },
		{ UINT64_MAX, 10 },
	};
	struct kl_buf b = { 0 };
	size_t off[KL_ARRAY_LEN(cases) + 1] = { 0 };
	for (size_t i = 0; i < KL_ARRAY_LEN(cases); i++) {
		assert_int_equal(kl_buf_put_u64(&b, cases[i].v), 0);
		off[i + 1] = b.len;
		if (off[i + 1] - off[i] != cases[i].len) {
			print_error("%llu took %zu bytes, expected %zu\n",
				    (unsigned long long)cases[i].v, off[i + 1] - off[i], cases[i].len);
			fail();
		}
	}
	/* LEB128 as written: low groups first, the high bit says "more" */
	assert_int_equal((unsigned char)b.p[off[2]], 0x7f);   /* 127 */
	assert_int_equal((unsigned char)b.p[off[3]], 0x80);   /* 128 */
	assert_int_equal((unsigned char)b.p[off[3] + 1], 0x01);
	for (size_t k = 0; k < 9; k++)
		assert_int_equal((unsigned char)b.p[off[9] + k], 0xff); /* UINT64_MAX */
	assert_int_equal((unsigned char)b.p[off[9] + 9], 0x01);

	struct kl_rd r = kl_rd_of(b.p, b.len);
	for (size_t i = 0; i < KL_ARRAY_LEN(cases); i++) {
		uint64_t v = kl_rd_u64(&r);
		if (v != cases[i].v || r.bad) {
			print_error("read %llu (bad %d), expected %llu\n", (unsigned long long)v,
				    r.bad, (unsigned long long)cases[i].v);
			fail();
		}
		assert_int_equal(r.p - (const unsigned char *)b.p, off[i + 1]);
	}
	assert_true(kl_rd_done(&r));
	kl_buf_free(&b);
}

static void test_codec_i64(void **state)
{
	(void)state;
	static const struct {
		int64_t v;
		uint64_t zz; /* the varint zigzag gives */
		size_t len;
	} cases[] = {
		{ 0, 0, 1 },
		{ -1, 1, 1 },
		{ 1, 2, 1 },
		{ -64, 127, 1 },
		{ 64, 128, 2 },
		{ INT64_MAX, UINT64_MAX - 1, 10 },
		{ INT64_MIN, UINT64_MAX, 10 },
		{ INT64_MIN + 1, UINT64_MAX - 2, 10 },
	};
	struct kl_buf b = { 0 };
	for (size_t i = 0; i < KL_ARRAY_LEN(cases); i++) {
		kl_buf_reset(&b);
		assert_int_equal(kl_buf_put_i64(&b, cases[i].v), 0);
		assert_int_equal(b.len, cases[i].len);
		struct kl_rd r = kl_rd_of(b.p, b.len);
		assert_int_equal(kl_rd_u64(&r), cases[i].zz);
		r = kl_rd_of(b.p, b.len);
		int64_t got = kl_rd_i64(&r);
		if (got != cases[i].v || !kl_rd_done(&r)) {
			print_error("read %lld (bad %d), expected %lld\n", (long long)got, r.bad,
				    (long long)cases[i].v);
			fail();
		}
	}
	kl_buf_free(&b);
}

static void test_codec_f64(void **state)
{
	(void)state;
	const double cases[] = {
		0.0,
		-0.0,
		1.0,
		-2.5,
		M_PI,
		DBL_MAX,
		-DBL_MAX,
		DBL_MIN,
		DBL_TRUE_MIN, /* subnormal */
		INFINITY,
		-INFINITY,
		from_bits(UINT64_C(0x7ff8000000000000)), /* the default quiet NaN */
		from_bits(UINT64_C(0x7ff8000000000123)), /* NaN with a payload */
		from_bits(UINT64_C(0xfff8000000abcdef)), /* negative NaN */
		from_bits(UINT64_C(0x7ff0000000000001)), /* signalling NaN */
	};
	struct kl_buf b = { 0 };
	for (size_t i = 0; i < KL_ARRAY_LEN(cases); i++)
		assert_int_equal(kl_buf_put_f64(&b, cases[i]), 0);
	assert_int_equal(b.len, 8 * KL_ARRAY_LEN(cases));
	struct kl_rd r = kl_rd_of(b.p, b.len);
	for (size_t i = 0; i < KL_ARRAY_LEN(cases); i++)
		assert_same_bits(kl_rd_f64(&r), cases[i]);
	assert_true(kl_rd_done(&r));
	assert_true(signbit(from_bits(UINT64_C(0x8000000000000000))));

	/* little-endian IEEE bytes: 1.0 is 3ff0000000000000 */
	static const unsigned char one[8] = { 0, 0, 0, 0, 0, 0, 0xf0, 0x3f };
	kl_buf_reset(&b);
	assert_int_equal(kl_buf_put_f64(&b, 1.0), 0);
	assert_memory_equal(b.p, one, 8);
	kl_buf_free(&b);
}

static void test_codec_bytes(void **state)
{
	(void)state;
	char big[300];
	memset(big, 'x', sizeof big);
	const struct kl_str cases[] = {
		{ "", 0 },
		{ "abc", 3 },
		{ "a\0b", 3 },
		{ big, sizeof big }, /* a two-byte length */
	};
	struct kl_buf b = { 0 };
	for (size_t i = 0; i < KL_ARRAY_LEN(cases); i++)
		assert_int_equal(kl_buf_put_bytes(&b, cases[i].p, cases[i].len), 0);
	assert_int_equal(b.len, (1 + 0) + (1 + 3) + (1 + 3) + (2 + 300));
	assert_int_equal((unsigned char)b.p[9], 0xac); /* 300 = 0b10_0101100 */
	assert_int_equal((unsigned char)b.p[10], 0x02);

	struct kl_rd r = kl_rd_of(b.p, b.len);
	size_t at = 0;
	for (size_t i = 0; i < KL_ARRAY_LEN(cases); i++) {
		struct kl_str s = kl_rd_bytes(&r, 1000);
		assert_false(r.bad);
		assert_int_equal(s.len, cases[i].len);
		at += cases[i].len < 128 ? 1 : 2;
		/* a view into the input, not a copy */
		assert_ptr_equal(s.p, b.p + at);
		assert_memory_equal(s.p, cases[i].p, s.len);
		at += s.len;
	}
	assert_true(kl_rd_done(&r));

	/* longer than max: refused, and an empty (not NULL) string */
	r = kl_rd_of(b.p + 1, b.len - 1); /* "abc" */
	struct kl_str s = kl_rd_bytes(&r, 2);
	assert_true(r.bad);
	assert_int_equal(s.len, 0);
	assert_non_null(s.p);
	/* a length past the end of the input */
	static const char claim[] = { 5, 'a', 'b' };
	r = kl_rd_of(claim, sizeof claim);
	s = kl_rd_bytes(&r, 100);
	assert_true(r.bad);
	assert_int_equal(s.len, 0);
	assert_non_null(s.p);
	kl_buf_free(&b);
}

/* A record cut anywhere: the fields wholly before the cut read back, the rest
 * read as 0, and the reader ends bad. */
static void test_codec_truncated(void **state)
{
	(void)state;
	struct kl_buf b = { 0 };
	assert_int_equal(kl_buf_put_u64(&b, UINT64_MAX), 0); /* ends at 10 */
	assert_int_equal(kl_buf_put_i64(&b, INT64_MIN), 0);  /* 20 */
	assert_int_equal(kl_buf_put_f64(&b, M_PI), 0);	     /* 28 */
	assert_int_equal(kl_buf_put_bytes(&b, "hello", 5), 0); /* 34 */
	assert_int_equal(b.len, 34);
	for (size_t cut = 0; cut < b.len; cut++) {
		struct kl_rd r = kl_rd_of(b.p, cut);
		uint64_t u = kl_rd_u64(&r);
		int64_t i = kl_rd_i64(&r);
		double d = kl_rd_f64(&r);
		struct kl_str s = kl_rd_bytes(&r, 100);
		if (!r.bad || kl_rd_done(&r) || u != (cut >= 10 ? UINT64_MAX : 0) ||
		    i != (cut >= 20 ? INT64_MIN : 0) || d != (cut >= 28 ? M_PI : 0) || s.len != 0) {
			print_error("cut at %zu: bad %d, read %llu %lld %g '%.*s'\n", cut, r.bad,
				    (unsigned long long)u, (long long)i, d, (int)s.len, s.p);
			fail();
		}
	}
	/* a bad reader stays bad: a valid varint after it reads as 0 */
	static const unsigned char two[] = { 0x80, 0x05 };
	struct kl_rd r = kl_rd_of(two, 1);
	assert_int_equal(kl_rd_u64(&r), 0);
	assert_true(r.bad);
	r.end = two + 2;
	assert_int_equal(kl_rd_u64(&r), 0);
	assert_true(kl_rd_f64(&r) == 0);
	assert_true(r.bad);
	kl_buf_free(&b);
}

static void test_codec_overlong(void **state)
{
	(void)state;
	/* 11 bytes: more groups than 64 bits need */
	static const unsigned char eleven[] = { 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
						0x80, 0x80, 0x80, 0x80, 0x00 };
	struct kl_rd r = kl_rd_of(eleven, sizeof eleven);
	assert_int_equal(kl_rd_u64(&r), 0);
	assert_true(r.bad);
	/* 10 bytes whose last holds more than the 64th bit */
	static const unsigned char bit65[] = { 0xff, 0xff, 0xff, 0xff, 0xff,
					       0xff, 0xff, 0xff, 0xff, 0x02 };
	r = kl_rd_of(bit65, sizeof bit65);
	assert_int_equal(kl_rd_u64(&r), 0);
	assert_true(r.bad);
	/* 10 bytes, continued past the tenth */
	static const unsigned char cont[] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
					      0xff, 0xff, 0xff, 0x81, 0x00 };
	r = kl_rd_of(cont, sizeof cont);
	assert_int_equal(kl_rd_u64(&r), 0);
	assert_true(r.bad);
	/* nine continued bytes and the end of the input */
	r = kl_rd_of(bit65, sizeof bit65 - 1);
	assert_int_equal(kl_rd_u64(&r), 0);
	assert_true(r.bad);
	/* the largest that fits */
	static const unsigned char max[] = { 0xff, 0xff, 0xff, 0xff, 0xff,
					     0xff, 0xff, 0xff, 0xff, 0x01 };
	r = kl_rd_of(max, sizeof max);
	assert_int_equal(kl_rd_u64(&r), UINT64_MAX);
	assert_true(kl_rd_done(&r));
	/* zigzag of the over-long one: bad, 0 */
	r = kl_rd_of(eleven, sizeof eleven);
	assert_int_equal(kl_rd_i64(&r), 0);
	assert_true(r.bad);
}

static void test_codec_count(void **state)
{
	(void)state;
	struct kl_buf b = { 0 };
	assert_int_equal(kl_buf_put_u64(&b, 5), 0);
	assert_int_equal(kl_buf_put_u64(&b, 6), 0);
	assert_int_equal(kl_buf_put_u64(&b, 0), 0);
	struct kl_rd r = kl_rd_of(b.p, b.len);
	assert_int_equal(kl_rd_count(&r, 5), 5); /* max itself is fine */
	assert_false(r.bad);
	assert_int_equal(kl_rd_count(&r, 5), 0); /* 6 > 5 */
	assert_true(r.bad);
	assert_int_equal(kl_rd_count(&r, 5), 0); /* and stays bad */
	assert_true(r.bad);
	r = kl_rd_of(b.p + 1, b.len - 1);
	assert_int_equal(kl_rd_count(&r, 0), 0); /* 6 > 0 */
	assert_true(r.bad);
	r = kl_rd_of(b.p + 2, 1);
	assert_int_equal(kl_rd_count(&r, 0), 0); /* 0 <= 0 */
	assert_true(kl_rd_done(&r));
	kl_buf_reset(&b);
	assert_int_equal(kl_buf_put_u64(&b, UINT64_MAX), 0);
	r = kl_rd_of(b.p, b.len);
	assert_int_equal(kl_rd_count(&r, UINT64_MAX), UINT64_MAX);
	assert_true(kl_rd_done(&r));
	kl_buf_free(&b);
}

/* ===========================================================================
 * Sketch and HLL encodings (rules/sketch.c).
 */

static const double QS[] = { 0, 0.001, 0.01, 0.05, 0.1, 0.25, 0.333, 0.5,
			     0.75, 0.9, 0.95, 0.99, 0.999, 1 };

static void assert_same_sketch(const struct sketch *got, const struct sketch *want)
{
	assert_int_equal(sketch_count(got), sketch_count(want));
	assert_int_equal(got->zero, want->zero);
	assert_int_equal(got->pos.total, want->pos.total);
	assert_int_equal(got->neg.total, want->neg.total);
	assert_int_equal(sketch_collapsed(got), sketch_collapsed(want));
	for (size_t i = 0; i < KL_ARRAY_LEN(QS); i++)
		assert_same_bits(sketch_quantile(got, QS[i]), sketch_quantile(want, QS[i]));
}

/* Encode s, decode into a fresh sketch (which must take all of it). */
static void sketch_roundtrip(const struct sketch *s, struct sketch *out, struct kl_buf *enc)
{
	kl_buf_reset(enc);
	assert_int_equal(sketch_encode(s, enc), 0);
	sketch_init(out);
	struct kl_rd r = kl_rd_of(enc->p, enc->len);
	assert_int_equal(sketch_decode(out, &r), 0);
	assert_true(kl_rd_done(&r));
}

static void fill_mixed(struct sketch *s)
{
	for (int i = 1; i <= 500; i++)
		assert_int_equal(sketch_add(s, i * 0.37), 0);
	for (int i = 1; i <= 200; i++)
		assert_int_equal(sketch_add(s, -i * 1.5), 0);
	for (int i = 0; i < 50; i++)
		assert_int_equal(sketch_add(s, 0.0), 0);
	assert_int_equal(sketch_add(s, 1e-12), 0); /* counts as zero */
	assert_int_equal(sketch_add(s, -1e-12), 0);
	assert_int_equal(sketch_add(s, 1e6), 0);
	for (int i = 0; i < 300; i++)
		assert_int_equal(sketch_add(s, 42.0), 0); /* a count past one byte */
}

static void test_sketch_roundtrip(void **state)
{
	(void)state;
	struct sketch s, d;
	struct kl_buf enc = { 0 }, again = { 0 };
	sketch_init(&s);
	fill_mixed(&s);
	assert_int_equal(sketch_count(&s), 500 + 200 + 52 + 1 + 300);
	sketch_roundtrip(&s, &d, &enc);
	assert_same_sketch(&d, &s);
	assert_int_equal(d.zero, 52);
	assert_int_equal(d.neg.total, 200);
	assert_int_equal(d.pos.total, 801);
	assert_dbl(sketch_quantile(&d, 0), -300, 300 * SKETCH_ALPHA);
	assert_dbl(sketch_quantile(&d, 1), 1e6, 1e6 * SKETCH_ALPHA);
	assert_dbl(sketch_quantile(&d, 0.2), 0, 0); /* ranks 200..251 are the zeros */
	/* the same encoding again */
	assert_int_equal(sketch_encode(&d, &again), 0);
	assert_same_buf(&again, &enc, "re-encoded sketch");
	/* and it goes on working */
	assert_int_equal(sketch_add(&d, 7.0), 0);
	assert_int_equal(sketch_count(&d), sketch_count(&s) + 1);
	sketch_free(&d);

	/* empty */
	struct sketch e;
	sketch_init(&e);
	sketch_roundtrip(&e, &d, &enc);
	assert_int_equal(sketch_count(&d), 0);
	assert_true(isnan(sketch_quantile(&d, 0.5)));
	sketch_free(&d);

	/* only negatives, only zeros */
	sketch_reset(&s);
	for (int i = 0; i < 10; i++)
		assert_int_equal(sketch_add(&s, -0.001 * (i + 1)), 0);
	sketch_roundtrip(&s, &d, &enc);
	assert_same_sketch(&d, &s);
	sketch_free(&d);
	sketch_reset(&s);
	assert_int_equal(sketch_add(&s, 0.0), 0);
	sketch_roundtrip(&s, &d, &enc);
	assert_same_sketch(&d, &s);
	assert_same_bits(sketch_quantile(&d, 0.5), 0.0);
	sketch_free(&d);

	sketch_free(&s);
	kl_buf_free(&enc);
	kl_buf_free(&again);
}

/* Counts too wide to add one by one, handcrafted: 8-byte counts decode. */
static void test_sketch_wide_counts(void **state)
{
	(void)state;
	struct kl_buf enc = { 0 }, again = { 0 };
	int32_t i42 = sketch_index(42.0);
	assert_int_equal(kl_buf_put_i64(&enc, i42), 0); /* pos: lo, n, counts */
	assert_int_equal(kl_buf_put_u64(&enc, 2), 0);
	assert_int_equal(kl_buf_put_u64(&enc, UINT64_C(5000000000)), 0);
	assert_int_equal(kl_buf_put_u64(&enc, 1), 0);
	assert_int_equal(kl_buf_put_i64(&enc, 0), 0); /* neg: empty */
	assert_int_equal(kl_buf_put_u64(&enc, 0), 0);
	assert_int_equal(kl_buf_put_u64(&enc, 3), 0); /* zero */
	assert_int_equal(kl_buf_put_u64(&enc, 0), 0); /* collapsed */
	struct sketch d;
	sketch_init(&d);
	struct kl_rd r = kl_rd_of(enc.p, enc.len);
	assert_int_equal(sketch_decode(&d, &r), 0);
	assert_true(kl_rd_done(&r));
	assert_int_equal(sketch_count(&d), UINT64_C(5000000004));
	assert_int_equal(d.pos.width, 8);
	assert_same_bits(sketch_quantile(&d, 1), sketch_bin_value(i42 + 1));
	assert_same_bits(sketch_quantile(&d, 0.5), sketch_bin_value(i42));
	assert_same_bits(sketch_quantile(&d, 0), 0.0);
	assert_int_equal(sketch_encode(&d, &again), 0);
	assert_same_buf(&again, &enc, "re-encoded sketch");
	sketch_free(&d);
	kl_buf_free(&enc);
	kl_buf_free(&again);
}

/* A decoded bucket comes out of the total it went into, exactly. */
static void test_sketch_subtract_decoded(void **state)
{
	(void)state;
	struct sketch a, b, total, a2, justb;
	struct kl_buf enc = { 0 };
	sketch_init(&a);
	sketch_init(&b);
	sketch_init(&total);
	sketch_init(&justb);
	for (int i = 0; i < 200; i++)
		assert_int_equal(sketch_add(&a, 0.5 + i * 0.01), 0);
	for (int i = 0; i < 20; i++)
		assert_int_equal(sketch_add(&a, -3.0), 0);
	for (int i = 0; i < 7; i++)
		assert_int_equal(sketch_add(&a, 0.0), 0);
	for (int i = 0; i < 100; i++)
		assert_int_equal(sketch_add(&b, 10.0 + i), 0);
	assert_int_equal(sketch_add(&b, -1.0), 0);
	assert_int_equal(sketch_merge(&total, &a), 0);
	assert_int_equal(sketch_merge(&total, &b), 0);
	assert_int_equal(sketch_merge(&justb, &b), 0);
	sketch_roundtrip(&a, &a2, &enc);
	assert_int_equal(sketch_subtract(&total, &a2), 0);
	assert_int_equal(sketch_count(&total), 101);
	assert_same_sketch(&total, &justb);
	/* once only: a second time it is no longer contained */
	assert_int_equal(sketch_subtract(&total, &a2), -EINVAL);
	assert_int_equal(sketch_count(&total), 101);
	sketch_free(&a2);

	/* A total that folded a's bins (b spans more than SKETCH_MAX_BINS
	 * above them): the decoded a still comes out of it. */
	sketch_reset(&a);
	sketch_reset(&b);
	sketch_reset(&total);
	for (int i = 0; i < 50; i++)
		assert_int_equal(sketch_add(&a, 1e-8 * (1 + i)), 0);
	assert_int_equal(sketch_add(&b, 1e12), 0);
	assert_int_equal(sketch_add(&b, 5.0), 0);
	assert_int_equal(sketch_merge(&total, &a), 0);
	assert_int_equal(sketch_merge(&total, &b), 0);
	assert_true(sketch_collapsed(&total) > 0);
	sketch_roundtrip(&a, &a2, &enc);
	assert_int_equal(sketch_subtract(&total, &a2), 0);
	assert_int_equal(sketch_count(&total), 2);
	assert_dbl(sketch_quantile(&total, 0), 5.0, 5.0 * SKETCH_ALPHA);
	assert_dbl(sketch_quantile(&total, 1), 1e12, 1e12 * SKETCH_ALPHA);

	sketch_free(&a2);
	sketch_free(&a);
	sketch_free(&b);
	sketch_free(&total);
	sketch_free(&justb);
	kl_buf_free(&enc);
}

/* Decode handcrafted bytes: expect -EINVAL, a bad reader and an empty sketch
 * that still works. */
static void expect_bad_sketch(const struct kl_buf *enc, int line)
{
	struct sketch d;
	sketch_init(&d);
	struct kl_rd r = kl_rd_of(enc->p, enc->len);
	int rc = sketch_decode(&d, &r);
	if (rc != -EINVAL || !r.bad || sketch_count(&d) != 0 || d.pos.n != 0 || d.neg.n != 0 ||
	    d.zero != 0) {
		print_error("line %d: sketch_decode = %d (bad %d), count %llu, pos.n %u, neg.n %u;"
			    " expected -EINVAL, bad, empty\n",
			    line, rc, r.bad, (unsigned long long)sketch_count(&d), d.pos.n, d.neg.n);
		fail();
	}
	assert_int_equal(sketch_add(&d, 3.0), 0);
	assert_dbl(sketch_quantile(&d, 0.5), 3.0, 3.0 * SKETCH_ALPHA);
	sketch_free(&d);
}

static void put_store(struct kl_buf *b, int64_t lo, uint64_t n, uint64_t count)
{
	assert_int_equal(kl_buf_put_i64(b, lo), 0);
	assert_int_equal(kl_buf_put_u64(b, n), 0);
	for (uint64_t k = 0; k < n; k++)
		assert_int_equal(kl_buf_put_u64(b, count), 0);
}

static void put_sketch_tail(struct kl_buf *b)
{
	put_store(b, 0, 0, 0);			     /* neg */
	assert_int_equal(kl_buf_put_u64(b, 0), 0); /* zero */
	assert_int_equal(kl_buf_put_u64(b, 0), 0); /* collapsed */
}

static void expect_good_sketch(const struct kl_buf *enc, uint64_t count)
{
	struct sketch d;
	sketch_init(&d);
	struct kl_rd r = kl_rd_of(enc->p, enc->len);
	assert_int_equal(sketch_decode(&d, &r), 0);
	assert_true(kl_rd_done(&r));
	assert_int_equal(sketch_count(&d), count);
	sketch_free(&d);
}

static void test_sketch_decode_corrupt(void **state)
{
	(void)state;
	struct kl_buf b = { 0 };

	/* n at the cap is fine, one more is not */
	put_store(&b, 0, SKETCH_MAX_BINS, 1);
	put_sketch_tail(&b);
	expect_good_sketch(&b, SKETCH_MAX_BINS);
	kl_buf_reset(&b);
	put_store(&b, 0, SKETCH_MAX_BINS + 1, 1);
	put_sketch_tail(&b);
	expect_bad_sketch(&b, __LINE__);

	/* index range: 1 << 20 is the bound */
	kl_buf_reset(&b);
	put_store(&b, 1 << 20, 1, 1);
	put_sketch_tail(&b);
	expect_good_sketch(&b, 1);
	kl_buf_reset(&b);
	put_store(&b, (1 << 20) + 1, 1, 1);
	put_sketch_tail(&b);
	expect_bad_sketch(&b, __LINE__);
	kl_buf_reset(&b);
	put_store(&b, -(1 << 20) - 1, 1, 1);
	put_sketch_tail(&b);
	expect_bad_sketch(&b, __LINE__);
	kl_buf_reset(&b);
	put_store(&b, INT64_MIN, 1, 1);
	put_sketch_tail(&b);
	expect_bad_sketch(&b, __LINE__);

	/* counts summing past 64 bits */
	kl_buf_reset(&b);
	put_store(&b, 0, 2, UINT64_MAX);
	put_sketch_tail(&b);
	expect_bad_sketch(&b, __LINE__);

	/* a good positive store, then a bad negative one: nothing is kept */
	kl_buf_reset(&b);
	put_store(&b, 100, 3, 2);
	put_store(&b, 0, SKETCH_MAX_BINS + 1, 1);
	assert_int_equal(kl_buf_put_u64(&b, 0), 0);
	assert_int_equal(kl_buf_put_u64(&b, 0), 0);
	expect_bad_sketch(&b, __LINE__);
	/* good stores, then no `collapsed` */
	kl_buf_reset(&b);
	put_store(&b, 100, 3, 2);
	put_store(&b, 7, 1, 2);
	assert_int_equal(kl_buf_put_u64(&b, 9), 0);
	expect_bad_sketch(&b, __LINE__);
	/* an over-long varint for a count */
	kl_buf_reset(&b);
	put_store(&b, 100, 1, 2);
	b.len--;
	assert_int_equal(kl_buf_append(&b, "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00", 11), 0);
	put_sketch_tail(&b);
	expect_bad_sketch(&b, __LINE__);

	/* every truncation of a real sketch */
	struct sketch s;
	sketch_init(&s);
	fill_mixed(&s);
	kl_buf_reset(&b);
	assert_int_equal(sketch_encode(&s, &b), 0);
	size_t full = b.len;
	for (size_t cut = 0; cut < full; cut++) {
		b.len = cut;
		struct sketch d;
		sketch_init(&d);
		struct kl_rd r = kl_rd_of(b.p, b.len);
		int rc = sketch_decode(&d, &r);
		if (rc != -EINVAL || !r.bad || sketch_count(&d) != 0) {
			print_error("cut at %zu of %zu: sketch_decode = %d (bad %d), count %llu;"
				    " expected -EINVAL, bad, 0\n",
				    cut, full, rc, r.bad, (unsigned long long)sketch_count(&d));
			fail();
		}
		sketch_free(&d);
	}
	sketch_free(&s);
	kl_buf_free(&b);
}

#define HLL_REG_LIMIT (64 - HLL_P + 1) /* the largest register value */

static void hll_roundtrip(const struct hll *h, struct hll *out, struct kl_buf *enc)
{
	kl_buf_reset(enc);
	assert_int_equal(hll_encode(h, enc), 0);
	hll_init(out);
	struct kl_rd r = kl_rd_of(enc->p, enc->len);
	assert_int_equal(hll_decode(out, &r), 0);
	assert_true(kl_rd_done(&r));
}

static void test_hll_roundtrip(void **state)
{
	(void)state;
	struct hll h, d;
	struct kl_buf enc = { 0 }, again = { 0 };
	char item[32];

	hll_init(&h);
	hll_roundtrip(&h, &d, &enc); /* empty */
	assert_same_bits(hll_estimate(&d), 0.0);
	hll_free(&d);

	for (int i = 0; i < 100; i++) {
		int n = snprintf(item, sizeof item, "/path/%d", i);
		assert_int_equal(hll_add(&h, item, (size_t)n), 0);
	}
	assert_int_equal(h.dense, 0);
	hll_roundtrip(&h, &d, &enc);
	assert_int_equal(d.dense, 0);
	assert_int_equal(d.n, h.n);
	assert_same_bits(hll_estimate(&d), hll_estimate(&h));
	assert_dbl(hll_estimate(&d), 100, 5);
	assert_int_equal(hll_encode(&d, &again), 0);
	assert_same_buf(&again, &enc, "re-encoded sparse hll");
	/* it goes on working: a merge of the decoded one */
	struct hll m;
	hll_init(&m);
	assert_int_equal(hll_merge(&m, &d), 0);
	assert_same_bits(hll_estimate(&m), hll_estimate(&h));
	hll_free(&m);
	hll_free(&d);

	for (int i = 100; i < 20000; i++) {
		int n = snprintf(item, sizeof item, "/path/%d", i);
		assert_int_equal(hll_add(&h, item, (size_t)n), 0);
	}
	assert_int_equal(h.dense, 1);
	hll_roundtrip(&h, &d, &enc);
	assert_int_equal(d.dense, 1);
	assert_int_equal(enc.len, 1 + HLL_M);
	assert_same_bits(hll_estimate(&d), hll_estimate(&h));
	assert_dbl(hll_estimate(&d), 20000, 1000);
	kl_buf_reset(&again);
	assert_int_equal(hll_encode(&d, &again), 0);
	assert_same_buf(&again, &enc, "re-encoded dense hll");
	/* and a dense one decodes over a sparse one's memory */
	struct hll s;
	hll_init(&s);
	assert_int_equal(hll_add(&s, "x", 1), 0);
	struct kl_rd r = kl_rd_of(enc.p, enc.len);
	assert_int_equal(hll_decode(&s, &r), 0);
	assert_same_bits(hll_estimate(&s), hll_estimate(&h));
	hll_free(&s);
	hll_free(&d);
	hll_free(&h);
	kl_buf_free(&enc);
	kl_buf_free(&again);
}

static void expect_hll(const struct kl_buf *enc, int want, int line)
{
	struct hll d;
	hll_init(&d);
	struct kl_rd r = kl_rd_of(enc->p, enc->len);
	int rc = hll_decode(&d, &r);
	bool ok = want == 0 ? rc == 0 && kl_rd_done(&r)
			    : rc == want && r.bad && hll_estimate(&d) == 0.0 && !d.dense && d.n == 0;
	if (!ok) {
		print_error("line %d: hll_decode = %d (bad %d), dense %d n %u estimate %g;"
			    " expected %d%s\n",
			    line, rc, r.bad, d.dense, d.n, hll_estimate(&d), want,
			    want ? ", bad, empty" : "");
		fail();
	}
	hll_free(&d);
}

/* Sparse entries: index << 8 | rho. */
static void put_sparse(struct kl_buf *b, const uint64_t *e, size_t n)
{
	kl_buf_reset(b);
	assert_int_equal(kl_buf_put_u64(b, 0), 0);
	assert_int_equal(kl_buf_put_u64(b, n), 0);
	for (size_t k = 0; k < n; k++)
		assert_int_equal(kl_buf_put_u64(b, e[k]), 0);
}

static void test_hll_decode_corrupt(void **state)
{
	(void)state;
	struct kl_buf b = { 0 };
	const uint64_t good[] = { 2 << 8 | 1, 5 << 8 | 3, 4095 << 8 | HLL_REG_LIMIT };
	put_sparse(&b, good, 3);
	expect_hll(&b, 0, __LINE__);
	const uint64_t unsorted[] = { 5 << 8 | 3, 2 << 8 | 1 };
	put_sparse(&b, unsorted, 2);
	expect_hll(&b, -EINVAL, __LINE__);
	const uint64_t dup[] = { 5 << 8 | 3, 5 << 8 | 4 };
	put_sparse(&b, dup, 2);
	expect_hll(&b, -EINVAL, __LINE__);
	const uint64_t rho0[] = { 5 << 8 | 0 };
	put_sparse(&b, rho0, 1);
	expect_hll(&b, -EINVAL, __LINE__);
	const uint64_t rhobig[] = { 5 << 8 | (HLL_REG_LIMIT + 1) };
	put_sparse(&b, rhobig, 1);
	expect_hll(&b, -EINVAL, __LINE__);
	const uint64_t idxbig[] = { (uint64_t)HLL_M << 8 | 1 };
	put_sparse(&b, idxbig, 1);
	expect_hll(&b, -EINVAL, __LINE__);
	const uint64_t wide[] = { (UINT64_C(1) << 32) | 1 };
	put_sparse(&b, wide, 1);
	expect_hll(&b, -EINVAL, __LINE__);
	/* more sparse entries than a sparse hll holds */
	uint64_t many[HLL_SPARSE_MAX + 1];
	for (size_t k = 0; k < KL_ARRAY_LEN(many); k++)
		many[k] = (uint64_t)k << 8 | 1;
	put_sparse(&b, many, HLL_SPARSE_MAX);
	expect_hll(&b, 0, __LINE__);
	put_sparse(&b, many, HLL_SPARSE_MAX + 1);
	expect_hll(&b, -EINVAL, __LINE__);
	/* sparse, cut short */
	put_sparse(&b, good, 3);
	b.len--;
	expect_hll(&b, -EINVAL, __LINE__);
	/* a form that is neither */
	kl_buf_reset(&b);
	assert_int_equal(kl_buf_put_u64(&b, 2), 0);
	assert_int_equal(kl_buf_put_u64(&b, 0), 0);
	expect_hll(&b, -EINVAL, __LINE__);

	/* dense: registers up to the max, not above; all 4096 of them */
	kl_buf_reset(&b);
	assert_int_equal(kl_buf_put_u64(&b, 1), 0);
	for (unsigned i = 0; i < HLL_M; i++)
		assert_int_equal(kl_buf_append(&b, (char[]){ (char)(i % 7) }, 1), 0);
	b.p[1 + 100] = HLL_REG_LIMIT;
	expect_hll(&b, 0, __LINE__);
	b.p[1 + 100] = HLL_REG_LIMIT + 1;
	expect_hll(&b, -EINVAL, __LINE__);
	b.p[1 + 100] = (char)0xff;
	expect_hll(&b, -EINVAL, __LINE__);
	b.p[1 + 100] = 0;
	b.len--;
	expect_hll(&b, -EINVAL, __LINE__);
	kl_buf_free(&b);
}

/* ===========================================================================
 * rules_save / rules_restore.
 */

#define BASE_US (1700000000LL * 1000000) /* 2023-11-14T22:13:20Z */
#define SEC 1000000LL
#define T(s) (BASE_US + (int64_t)((s) * 1e6))

static struct parser *PAPP, *PWEB;
static struct rules_source SOURCES[2];

struct rec {
	enum rules_status status;
	bool restored;
	char alert[64];
	int64_t at_us, started_us, window_us;
	double value;
	char labels[256]; /* "k=v,k=v" in order */
	char ann[256];	  /* "k=v|k=v" in order */
};

#define MAX_RECS 64

struct log {
	struct rec r[MAX_RECS];
	unsigned n;
};

#define MAX_FILES 4

struct fx {
	char dir[256];
	char files[MAX_FILES][320];
	unsigned nfiles;
	struct kl_diag d;
	char *dtext;
	size_t dlen;
	struct rules_set *rs, *rs2; /* the original, the restored */
	struct log l1, l2;
	struct kl_buf saved;
};

static int group_setup(void **state)
{
	(void)state;
	kl_log_set_quiet(true);
	static const struct parser_field_spec types[] = {
		{ "status", PARSER_T_INT },
		{ "rt", PARSER_T_SECONDS },
	};
	struct parser_spec app = {
		.name = "app",
		.regex = "^(?<time>\\S+) (?<status>\\d+) (?<rt>\\S+) (?<path>\\S+)(?: (?<method>\\S+))?$",
		.types = types,
		.ntypes = KL_ARRAY_LEN(types),
		.time_field = "time",
		.time_format = "iso8601",
	};
	struct parser_spec web = { .name = "web", .type = "nginx_timed" };
	char err[256];
	int eo;
	PAPP = parser_new(&app, err, sizeof err, &eo);
	PWEB = parser_new(&web, err, sizeof err, &eo);
	if (!PAPP || !PWEB)
		return -1;
	SOURCES[0] = (struct rules_source){ "app", PAPP };
	SOURCES[1] = (struct rules_source){ "web", PWEB };
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	parser_free(PAPP);
	parser_free(PWEB);
	return 0;
}

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof *fx);
	if (!fx)
		return -1;
	const char *tmp = getenv("TMPDIR");
	snprintf(fx->dir, sizeof fx->dir, "%s/klaxon-state-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(fx->dir))
		return -1;
	fx->d.out = open_memstream(&fx->dtext, &fx->dlen);
	if (!fx->d.out)
		return -1;
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	rules_free(fx->rs);
	rules_free(fx->rs2);
	kl_buf_free(&fx->saved);
	fclose(fx->d.out);
	free(fx->dtext);
	for (unsigned i = 0; i < fx->nfiles; i++)
		unlink(fx->files[i]);
	rmdir(fx->dir);
	free(fx);
	return 0;
}

static const char *diag_text(struct fx *fx)
{
	fflush(fx->d.out);
	return fx->dtext ? fx->dtext : "";
}

/* Write a rule file into the test's directory; returns its path. */
static const char *rule_file(struct fx *fx, const char *name, const char *text)
{
	assert_in_range(fx->nfiles, 0, MAX_FILES - 1);
	char *path = fx->files[fx->nfiles++];
	struct kl_buf b = { 0 };
	assert_int_equal(kl_buf_appendf(&b, "%s/%s", fx->dir, name), 0);
	assert_in_range(b.len, 1, sizeof fx->files[0] - 1);
	memcpy(path, b.p, b.len + 1);
	kl_buf_free(&b);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_not_equal(fputs(text, f), EOF);
	assert_int_equal(fclose(f), 0);
	return path;
}

static struct rules_set *load_path(struct fx *fx, const char *path)
{
	const char *files[] = { path };
	struct rules_set *rs = rules_load(files, 1, SOURCES, 2, &fx->d);
	if (!rs) {
		print_error("rules_load failed:\n%s", diag_text(fx));
		fail();
	}
	assert_int_equal(fx->d.errors, 0);
	return rs;
}

static void on_transition(void *ctx, const struct rules_transition *t)
{
	struct log *l = ctx;
	assert_in_range(l->n, 0, MAX_RECS - 1);
	struct rec *r = &l->r[l->n++];
	memset(r, 0, sizeof *r);
	r->status = t->status;
	r->restored = t->restored;
	snprintf(r->alert, sizeof r->alert, "%s", t->alert);
	r->at_us = t->at_us;
	r->started_us = t->started_us;
	r->window_us = t->window_us;
	r->value = t->value;
	size_t n = 0;
	for (size_t i = 0; i < t->nlabels && n < sizeof r->labels; i++)
		n += (size_t)snprintf(r->labels + n, sizeof r->labels - n, "%s%s=%s", i ? "," : "",
				      t->labels[i].key, t->labels[i].value);
	n = 0;
	for (size_t i = 0; i < t->nannotations && n < sizeof r->ann; i++)
		n += (size_t)snprintf(r->ann + n, sizeof r->ann - n, "%s%s=%s", i ? "|" : "",
				      t->annotations[i].key, t->annotations[i].value);
}

static const char *status_name(enum rules_status s)
{
	return s == RULES_FIRING ? "firing" : "resolved";
}

static void print_rec(const char *side, const struct rec *r)
{
	print_error("  %s: %s %s%s at +%.3fs started +%.3fs window %llds value %.17g [%s] [%s]\n",
		    side, r->alert, status_name(r->status), r->restored ? " (restored)" : "",
		    (double)(r->at_us - BASE_US) / 1e6, (double)(r->started_us - BASE_US) / 1e6,
		    (long long)(r->window_us / SEC), r->value, r->labels, r->ann);
}

static bool same_value(double a, double b)
{
	return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof a) == 0;
}

static bool same_rec(const struct rec *a, const struct rec *b)
{
	return a->status == b->status && a->restored == b->restored &&
	       !strcmp(a->alert, b->alert) && a->at_us == b->at_us &&
	       a->started_us == b->started_us && a->window_us == b->window_us &&
	       same_value(a->value, b->value) && !strcmp(a->labels, b->labels) &&
	       !strcmp(a->ann, b->ann);
}

/* The transitions of got[from_g..] and want[from_w..] are the same, one for one. */
static void assert_same_recs(const struct log *got, unsigned from_g, const struct log *want,
			     unsigned from_w, const char *what, int64_t now)
{
	unsigned ng = got->n - from_g, nw = want->n - from_w;
	bool ok = ng == nw;
	for (unsigned i = 0; ok && i < ng; i++)
		ok = same_rec(&got->r[from_g + i], &want->r[from_w + i]);
	if (ok)
		return;
	print_error("%s at +%.3fs: the restored set gave %u transition(s), the original %u\n",
		    what, (double)(now - BASE_US) / 1e6, ng, nw);
	for (unsigned i = 0; i < ng || i < nw; i++) {
		if (i < ng)
			print_rec("restored", &got->r[from_g + i]);
		if (i < nw)
			print_rec("original", &want->r[from_w + i]);
	}
	fail();
}

/* Evaluate both sets at now: the same transitions, or the test fails. */
static unsigned eval_both(struct fx *fx, int64_t now)
{
	unsigned n1 = fx->l1.n, n2 = fx->l2.n;
	rules_eval_all(fx->rs, now, on_transition, &fx->l1);
	rules_eval_all(fx->rs2, now, on_transition, &fx->l2);
	assert_same_recs(&fx->l2, n2, &fx->l1, n1, "rules_eval_all", now);
	return fx->l1.n - n1;
}

/* Announce both sets at now: the same firing alerts with the same values. */
static unsigned announce_both(struct fx *fx, int64_t now)
{
	unsigned n1 = fx->l1.n, n2 = fx->l2.n;
	rules_announce(fx->rs, now, on_transition, &fx->l1);
	rules_announce(fx->rs2, now, on_transition, &fx->l2);
	assert_same_recs(&fx->l2, n2, &fx->l1, n1, "rules_announce", now);
	return fx->l1.n - n1;
}

static void expect_rec(const struct rec *r, int64_t at, enum rules_status st, const char *alert,
		       const char *labels, int line)
{
	if (r->at_us != at || r->status != st || strcmp(r->alert, alert) ||
	    strcmp(r->labels, labels)) {
		print_error("line %d: expected %s %s at +%.3fs [%s], got:\n", line, alert,
			    status_name(st), (double)(at - BASE_US) / 1e6, labels);
		print_rec("got", r);
		fail();
	}
}

#define EXPECT_REC(r, at, st, alert, labels) expect_rec((r), (at), (st), (alert), (labels), __LINE__)

/* Feed "STATUS RT PATH [METHOD]" to source app at us (whole milliseconds). */
static void feed_app(struct rules_set *rs, int64_t us, const char *rest)
{
	char ts[KL_RFC3339_MAX], line[256];
	kl_format_rfc3339(us, true, ts);
	int n = snprintf(line, sizeof line, "%s %s", ts, rest);
	struct parser_event ev;
	parser_event_init(&ev, PAPP);
	if (parser_parse(PAPP, line, (size_t)n, 0, &ev) != 0) {
		print_error("app line does not parse: '%s'\n", line);
		fail();
	}
	assert_int_equal(ev.time_us, us);
	rules_feed(rs, 0, &ev);
}

/* Feed an nginx_timed line to source web at us (whole seconds). */
static void feed_web(struct rules_set *rs, int64_t us, const char *path, int status, double rt)
{
	time_t secs = (time_t)(us / SEC);
	struct tm tm;
	gmtime_r(&secs, &tm);
	char when[64], line[512];
	strftime(when, sizeof when, "%d/%b/%Y:%H:%M:%S +0000", &tm);
	int n = snprintf(line, sizeof line,
			 "203.0.113.7 - - [%s] \"GET %s HTTP/1.1\" %d 512 \"-\" \"curl/8.0\" rt=%.3f urt=\"%.3f\"",
			 when, path, status, rt, rt);
	struct parser_event ev;
	parser_event_init(&ev, PWEB);
	if (parser_parse(PWEB, line, (size_t)n, 0, &ev) != 0) {
		print_error("web line does not parse: '%s'\n", line);
		fail();
	}
	assert_int_equal(ev.time_us, us);
	rules_feed(rs, 1, &ev);
}

static void save_ok(const struct rules_set *rs, struct kl_buf *out)
{
	kl_buf_reset(out);
	assert_int_equal(rules_save(rs, out), 0);
	assert_true(out->len > 8 + 1 + 4);
}

static void restore_ok_at(struct rules_set *rs, const struct kl_buf *in,
			  struct rules_restore_stats *st, int line)
{
	int rc = rules_restore(rs, in->p, in->len, st);
	if (rc != 0) {
		print_error("line %d: rules_restore of a state of %zu bytes = %d, expected 0\n", line,
			    in->len, rc);
		fail();
	}
}

#define restore_ok(rs, in, st) restore_ok_at((rs), (in), (st), __LINE__)

/* The crc32 rules_restore checks: over all but the last 4 bytes, stored
 * little-endian in them. */
static void reseal(struct kl_buf *b)
{
	assert_true(b->len >= 4);
	uLong c = crc32(0L, (const Bytef *)b->p, (uInt)(b->len - 4));
	for (int i = 0; i < 4; i++)
		b->p[b->len - 4 + (size_t)i] = (char)(c >> (8 * i));
}

/* ---- restore gives the same future --------------------------------------- */

static const char SCENARIO_RULES[] =
	"rules:\n"
	"  - alert: PathErrors\n"
	"    source: app\n"
	"    expr: ratio(status >= 500) > 50% and count() >= 2\n"
	"    window: 1m\n"
	"    for: 30s\n"
	"    by: [path]\n"
	"    labels: {severity: page}\n"
	"    annotations: {summary: '{{ labels.path }} at {{ value | pct }}'}\n"
	"  - alert: Slow\n"
	"    source: web\n"
	"    expr: p95(request_time) > 1s\n"
	"    window: 2m\n"
	"  - alert: Busy\n"
	"    source: web\n"
	"    expr: count() > 5\n"
	"    window: 1m\n"
	"    keep_firing_for: 30s\n"
	"  - alert: ManyPaths\n"
	"    source: app\n"
	"    expr: distinct(path) >= 4\n"
	"    window: 5m\n"
	"    for: 10s\n";

/*
 * Up to T(30), on fx->rs: PathErrors{/a} pending from 0 and firing at 30,
 * PathErrors{/b} pending from 20, PathErrors{/c} inactive with events, Slow
 * (p95 3 s) and Busy (10 requests) firing from 20, ManyPaths at 3 paths.
 * Saved into fx->saved after the evaluation at T(30).
 */
static void scenario(struct fx *fx)
{
	fx->rs = load_path(fx, rule_file(fx, "rules.yml", SCENARIO_RULES));
	feed_app(fx->rs, T(0), "500 0.1 /a");
	feed_app(fx->rs, T(0), "503 0.1 /a");
	rules_eval_all(fx->rs, T(0), on_transition, &fx->l1);
	for (int i = 10; i < 20; i++)
		feed_web(fx->rs, T(i), "/", 200, i >= 18 ? 3.0 : 0.2);
	feed_app(fx->rs, T(20), "500 0.1 /b");
	feed_app(fx->rs, T(20), "502 0.1 /b");
	feed_app(fx->rs, T(20), "200 0.1 /c");
	rules_eval_all(fx->rs, T(20), on_transition, &fx->l1);
	rules_eval_all(fx->rs, T(30), on_transition, &fx->l1);
	assert_int_equal(fx->l1.n, 3);
	EXPECT_REC(&fx->l1.r[0], T(20), RULES_FIRING, "Slow", "source=web");
	EXPECT_REC(&fx->l1.r[1], T(20), RULES_FIRING, "Busy", "source=web");
	EXPECT_REC(&fx->l1.r[2], T(30), RULES_FIRING, "PathErrors",
		   "source=app,severity=page,path=/a");
	assert_dbl(fx->l1.r[0].value, 3.0, 3.0 * 0.01);
	assert_dbl(fx->l1.r[1].value, 10, 0);
	assert_dbl(fx->l1.r[2].value, 1.0, 0);
	save_ok(fx->rs, &fx->saved);
}

/* Restore into a fresh set from the same file; check what the stats say. */
static void restore_scenario(struct fx *fx)
{
	fx->rs2 = load_path(fx, fx->files[0]);
	struct rules_restore_stats st;
	restore_ok(fx->rs2, &fx->saved, &st);
	assert_int_equal(st.restored, 4);
	assert_int_equal(st.skipped, 0);
	assert_int_equal(st.firing, 3);
	assert_int_equal(st.pending, 1);
	assert_int_equal(st.saved_at_us, T(30));
	struct rules_stats rst;
	rules_get_stats(fx->rs2, &rst);
	assert_int_equal(rst.firing, 3);
	assert_int_equal(rst.transitions, 0);
}

static void test_restore_announce(void **state)
{
	struct fx *fx = *state;
	scenario(fx);
	restore_scenario(fx);
	unsigned n1 = fx->l1.n;
	assert_int_equal(fx->l2.n, 0);
	rules_announce(fx->rs2, T(30), on_transition, &fx->l2);
	assert_int_equal(fx->l2.n, 3);
	/* in rule order, each with the start of its firing and its value now */
	const struct rec *r = fx->l2.r;
	EXPECT_REC(&r[0], T(30), RULES_FIRING, "PathErrors", "source=app,severity=page,path=/a");
	EXPECT_REC(&r[1], T(30), RULES_FIRING, "Slow", "source=web");
	EXPECT_REC(&r[2], T(30), RULES_FIRING, "Busy", "source=web");
	for (int i = 0; i < 3; i++)
		assert_true(r[i].restored);
	assert_int_equal(r[0].started_us, T(30));
	assert_int_equal(r[1].started_us, T(20));
	assert_int_equal(r[2].started_us, T(20));
	assert_int_equal(r[0].window_us, 60 * SEC);
	assert_int_equal(r[1].window_us, 120 * SEC);
	assert_string_equal(r[0].ann, "summary=/a at 100.00%");
	assert_dbl(r[0].value, 1.0, 0);
	assert_same_bits(r[1].value, fx->l1.r[0].value); /* p95: the same sketch */
	assert_dbl(r[2].value, 10, 0);
	/* the original announces the same at the same instant */
	rules_announce(fx->rs, T(30), on_transition, &fx->l1);
	assert_same_recs(&fx->l2, 0, &fx->l1, n1, "rules_announce", T(30));
	/* announcing is no transition */
	struct rules_stats rst;
	rules_get_stats(fx->rs2, &rst);
	assert_int_equal(rst.transitions, 0);
	assert_int_equal(rst.firing, 3);
	/* and the restored set does not fire them again */
	assert_int_equal(eval_both(fx, T(30)), 0);
	assert_int_equal(eval_both(fx, T(31)), 0);
}

/* Same file, same state: the same bytes when saved again. */
static void test_restore_save_again(void **state)
{
	struct fx *fx = *state;
	scenario(fx);
	restore_scenario(fx);
	struct kl_buf again = { 0 };
	save_ok(fx->rs2, &again);
	assert_same_buf(&again, &fx->saved, "state saved from the restored set");
	kl_buf_free(&again);
}

/* Both sets, fed the same and evaluated every second for five minutes, give
 * the same transitions with the same values. */
static void test_restore_same_future(void **state)
{
	struct fx *fx = *state;
	scenario(fx);
	restore_scenario(fx);
	unsigned from = fx->l1.n;
	for (int s = 30; s <= 310; s++) {
		if (s == 31) {
			feed_app(fx->rs, T(31), "404 0.1 /d");
			feed_app(fx->rs2, T(31), "404 0.1 /d");
		}
		for (int k = 0; s == 35 && k < 3; k++) {
			feed_web(fx->rs, T(35), "/", 200, 0.2);
			feed_web(fx->rs2, T(35), "/", 200, 0.2);
		}
		eval_both(fx, T(s));
		if (s == 90) /* the values of what is firing, mid-way */
			assert_int_equal(announce_both(fx, T(90)), 3);
	}
	/* what happened, on both (the announce at 90 included) */
	const struct rec *r = fx->l1.r + from;
	unsigned n = fx->l1.n - from;
	if (n != 10) {
		print_error("%u transitions after the restore, expected 10:\n", n);
		for (unsigned i = 0; i < n; i++)
			print_rec("got", &r[i]);
		fail();
	}
	/* the pending one fires when its `for` elapses from its saved start */
	EXPECT_REC(&r[0], T(41), RULES_FIRING, "ManyPaths", "source=app");
	assert_dbl(r[0].value, 4, 0.2);
	EXPECT_REC(&r[1], T(50), RULES_FIRING, "PathErrors", "source=app,severity=page,path=/b");
	assert_int_equal(r[1].started_us, T(50));
	assert_dbl(r[1].value, 1.0, 0);
	/* the firing one resolves when its events leave the window */
	EXPECT_REC(&r[2], T(60), RULES_RESOLVED, "PathErrors", "source=app,severity=page,path=/a");
	assert_int_equal(r[2].started_us, T(30));
	assert_true(isnan(r[2].value)); /* a ratio over nothing */
	EXPECT_REC(&r[3], T(80), RULES_RESOLVED, "PathErrors", "source=app,severity=page,path=/b");
	/* the announce at 90: Slow and Busy from their saved starts, and
	 * ManyPaths, fired since */
	EXPECT_REC(&r[4], T(90), RULES_FIRING, "Slow", "source=web");
	assert_true(r[4].restored);
	assert_int_equal(r[4].started_us, T(20));
	assert_dbl(r[4].value, 3.0, 3.0 * 0.01); /* 13 requests, the 2 slow ones on top */
	EXPECT_REC(&r[5], T(90), RULES_FIRING, "Busy", "source=web");
	assert_int_equal(r[5].started_us, T(20));
	assert_dbl(r[5].value, 3, 0); /* the three of T(35) */
	EXPECT_REC(&r[6], T(90), RULES_FIRING, "ManyPaths", "source=app");
	assert_int_equal(r[6].started_us, T(41));
	/* Busy: false from 77 (5 requests in the minute), kept firing 30 s */
	EXPECT_REC(&r[7], T(107), RULES_RESOLVED, "Busy", "source=web");
	assert_int_equal(r[7].started_us, T(20));
	assert_dbl(r[7].value, 0, 0);
	/* Slow: at 138 the 2 s bucket of the slow ones has left, p95 is 0.2 s */
	EXPECT_REC(&r[8], T(138), RULES_RESOLVED, "Slow", "source=web");
	assert_dbl(r[8].value, 0.2, 0.2 * 0.01);
	/* /a leaves the 5 m window at 300 */
	EXPECT_REC(&r[9], T(300), RULES_RESOLVED, "ManyPaths", "source=app");
	assert_dbl(r[9].value, 3, 0.2);
}

/* Restored later than saved (the restart took a while): the same jumps. */
static void test_restore_later(void **state)
{
	struct fx *fx = *state;
	scenario(fx);
	restore_scenario(fx);
	unsigned from = fx->l1.n;
	const int64_t at[] = { T(55), T(59), T(70), T(95), T(500) };
	for (size_t i = 0; i < KL_ARRAY_LEN(at); i++)
		eval_both(fx, at[i]);
	const struct rec *r = fx->l1.r + from;
	assert_int_equal(fx->l1.n - from, 5);
	/* `for` elapsed between the save and 55 */
	EXPECT_REC(&r[0], T(55), RULES_FIRING, "PathErrors", "source=app,severity=page,path=/b");
	assert_int_equal(r[0].started_us, T(55));
	EXPECT_REC(&r[1], T(70), RULES_RESOLVED, "PathErrors", "source=app,severity=page,path=/a");
	assert_int_equal(r[1].started_us, T(30));
	EXPECT_REC(&r[2], T(95), RULES_RESOLVED, "PathErrors", "source=app,severity=page,path=/b");
	/* Busy is first seen false at 95: kept firing until 125, resolved at
	 * the next evaluation */
	EXPECT_REC(&r[3], T(500), RULES_RESOLVED, "Slow", "source=web");
	assert_true(isnan(r[3].value)); /* p95 of nothing */
	EXPECT_REC(&r[4], T(500), RULES_RESOLVED, "Busy", "source=web");
	assert_dbl(r[4].value, 0, 0);
}

/* An evaluation clock that does not go back: the restored set keeps the saved
 * instant as its last one. */
static void test_restore_clock(void **state)
{
	struct fx *fx = *state;
	scenario(fx);
	restore_scenario(fx);
	/* an evaluation "before" the save is one at the saved instant */
	rules_eval_all(fx->rs2, T(10), on_transition, &fx->l2);
	assert_int_equal(fx->l2.n, 0);
	rules_announce(fx->rs2, T(30), on_transition, &fx->l2);
	assert_int_equal(fx->l2.n, 3);
}

/* Traffic with a gap longer than a window's ring: the old bucket stays in its
 * slot (nothing recycles it) and is saved with the rest; the state must
 * restore all the same, and the restored set go on as the original. */
static const char GAP_RULES[] =
	"rules:\n"
	"  - {alert: Any, source: app, expr: count() > 0, window: 1m}\n"
	"  - {alert: Errs, source: app, expr: count(status >= 500) > 0, window: 1m, by: [path]}\n";

static void test_restore_after_gap(void **state)
{
	struct fx *fx = *state;
	fx->rs = load_path(fx, rule_file(fx, "gap.yml", GAP_RULES));
	feed_app(fx->rs, T(0), "500 0.1 /a");
	rules_eval_all(fx->rs, T(0), on_transition, &fx->l1);
	assert_int_equal(fx->l1.n, 2); /* Any, Errs{/a} */
	/* 70 s later: a bucket 70 s (more than the 62 of the ring) after the
	 * one still held */
	feed_app(fx->rs, T(70), "200 0.1 /a");
	rules_eval_all(fx->rs, T(70), on_transition, &fx->l1);
	assert_int_equal(fx->l1.n, 3);
	EXPECT_REC(&fx->l1.r[2], T(70), RULES_RESOLVED, "Errs", "source=app,path=/a");
	save_ok(fx->rs, &fx->saved);

	fx->rs2 = load_path(fx, fx->files[0]);
	struct rules_restore_stats st;
	restore_ok(fx->rs2, &fx->saved, &st);
	assert_int_equal(st.restored, 2);
	assert_int_equal(st.firing, 1);
	unsigned from = fx->l1.n;
	assert_int_equal(announce_both(fx, T(70)), 1);
	EXPECT_REC(&fx->l1.r[from], T(70), RULES_FIRING, "Any", "source=app");
	assert_dbl(fx->l1.r[from].value, 1, 0);
	for (int s = 71; s <= 140; s++)
		eval_both(fx, T(s));
	assert_int_equal(fx->l1.n, from + 2);
	EXPECT_REC(&fx->l1.r[from + 1], T(130), RULES_RESOLVED, "Any", "source=app");
}

/* The same with events ahead of the evaluation clock: the old bucket is then
 * still inside the window being evaluated, and counts. */
static void test_restore_ahead_of_clock(void **state)
{
	struct fx *fx = *state;
	fx->rs = load_path(fx, rule_file(fx, "gap.yml", GAP_RULES));
	feed_app(fx->rs, T(0), "500 0.1 /a");
	feed_app(fx->rs, T(70), "200 0.1 /b");
	rules_eval_all(fx->rs, T(10), on_transition, &fx->l1);
	assert_int_equal(fx->l1.n, 2); /* Any, Errs{/a}: T(0) counts at T(10) */
	assert_dbl(fx->l1.r[0].value, 1, 0);
	save_ok(fx->rs, &fx->saved);

	fx->rs2 = load_path(fx, fx->files[0]);
	struct rules_restore_stats st;
	restore_ok(fx->rs2, &fx->saved, &st);
	assert_int_equal(st.restored, 2);
	assert_int_equal(st.firing, 2);
	unsigned from = fx->l1.n;
	assert_int_equal(announce_both(fx, T(10)), 2);
	assert_dbl(fx->l1.r[from].value, 1, 0);
	for (int s = 11; s <= 140; s++)
		eval_both(fx, T(s));
}

/* Histories (zscore, baseline) and new()'s seen table are part of the state:
 * restored in the middle of learning, the set judges the spike, the halving
 * and the new value as the original does. The windows are 2 h, longer than
 * the test, so no bucket goes stale. */
static const char ANOMALY_RULES[] =
	"rules:\n"
	"  - {alert: Surge, source: app, expr: \"zscore(last(rt), 1h) > 3\", window: 2h,"
	" by: [path], annotations: {z: 'z={{ zscore }} mean={{ baseline }}'}}\n"
	"  - {alert: Doubled, source: app, expr: \"last(rt) > 2 * baseline(last(rt), 1h)\","
	" window: 2h, annotations: {b: '{{ baseline }}'}}\n"
	"  - {alert: NewMethod, source: app, expr: \"new(method, 2h) > 0\", window: 2h}\n";

#define MIN_AT(m, s) T((m) * 60 + (s))

/* Minute m's event: rt cycling 0.10..0.18, 5 s at minute 70; PUT at 20 (still
 * learning), DELETE at 80 (new). */
static void anomaly_minute(struct rules_set *rs, int m)
{
	char rest[64];
	double rt = m == 70 ? 5.0 : 0.1 + (m % 5) * 0.02;
	const char *method = m == 20 ? "PUT" : m == 80 ? "DELETE" : "GET";
	snprintf(rest, sizeof rest, "200 %.2f /a %s", rt, method);
	feed_app(rs, MIN_AT(m, 1), rest);
}

static void test_restore_anomaly(void **state)
{
	struct fx *fx = *state;
	fx->rs = load_path(fx, rule_file(fx, "anomaly.yml", ANOMALY_RULES));
	for (int m = 0; m <= 45; m++) {
		anomaly_minute(fx->rs, m);
		rules_eval_all(fx->rs, MIN_AT(m, 30), on_transition, &fx->l1);
	}
	assert_int_equal(fx->l1.n, 0);
	save_ok(fx->rs, &fx->saved);
	fx->rs2 = load_path(fx, fx->files[0]);
	struct rules_restore_stats st;
	restore_ok(fx->rs2, &fx->saved, &st);
	assert_int_equal(st.restored, 3);
	struct kl_buf again = { 0 };
	save_ok(fx->rs2, &again);
	assert_same_buf(&again, &fx->saved, "state saved from the restored set");
	kl_buf_free(&again);

	for (int m = 46; m <= 100; m++) {
		anomaly_minute(fx->rs, m);
		anomaly_minute(fx->rs2, m);
		eval_both(fx, MIN_AT(m, 30));
	}
	const struct rec *r = fx->l1.r;
	if (fx->l1.n != 5) {
		print_error("%u transitions, expected 5:\n", fx->l1.n);
		for (unsigned i = 0; i < fx->l1.n; i++)
			print_rec("got", &r[i]);
		fail();
	}
	EXPECT_REC(&r[0], MIN_AT(70, 30), RULES_FIRING, "Surge", "source=app,path=/a");
	assert_true(r[0].value > 3);
	assert_true(strncmp(r[0].ann, "z=z=", 4) == 0);
	EXPECT_REC(&r[1], MIN_AT(70, 30), RULES_FIRING, "Doubled", "source=app");
	assert_dbl(r[1].value, 5.0, 0);
	assert_string_equal(r[1].ann, "b=0.1"); /* the value an hour before */
	EXPECT_REC(&r[2], MIN_AT(71, 30), RULES_RESOLVED, "Surge", "source=app,path=/a");
	EXPECT_REC(&r[3], MIN_AT(71, 30), RULES_RESOLVED, "Doubled", "source=app");
	EXPECT_REC(&r[4], MIN_AT(80, 30), RULES_FIRING, "NewMethod", "source=app");
	assert_dbl(r[4].value, 1, 0);
}

/* A zscore sample whose square overflows (a float field can hold 1e200): the
 * history is saved with it, and the state must still restore. */
static void test_restore_zscore_huge(void **state)
{
	struct fx *fx = *state;
	fx->rs = load_path(fx, rule_file(fx, "huge.yml",
					  "rules:\n"
					  "  - {alert: Z, source: app, expr: \"zscore(sum(rt), 1h) > 3\","
					  " window: 1m}\n"
					  "  - {alert: Any, source: app, expr: count() > 0, window: 1m}\n"));
	feed_app(fx->rs, T(0), "200 1e200 /a");
	rules_eval_all(fx->rs, T(0), on_transition, &fx->l1);
	assert_int_equal(fx->l1.n, 1); /* Any */
	save_ok(fx->rs, &fx->saved);
	fx->rs2 = load_path(fx, fx->files[0]);
	struct rules_restore_stats st;
	restore_ok(fx->rs2, &fx->saved, &st);
	assert_int_equal(st.restored, 2);
	assert_int_equal(st.firing, 1);
}

/* ---- identity: what is kept and what starts fresh ------------------------ */

static const char IDENT_A[] =
	"rules:\n"
	"  - {alert: Keep, source: app, expr: count() > 0, window: 1m}\n"
	"  - {alert: Expr, source: app, expr: count() > 0, window: 1m}\n"
	"  - {alert: Win, source: app, expr: count() > 0, window: 1m}\n"
	"  - {alert: By, source: app, expr: count() > 0, window: 1m, by: [path]}\n"
	"  - {alert: Groups, source: app, expr: count() > 0, window: 1m, by: [path], max_groups: 10}\n"
	"  - {alert: Src, source: app, expr: count() > 0, window: 1m}\n"
	"  - {alert: Gone, source: app, expr: count() > 0, window: 1m}\n"
	"  - {alert: Relabel, source: app, expr: count() > 0, window: 1m, by: [path],"
	" labels: {team: a}}\n";

static const char IDENT_B[] =
	"rules:\n"
	"  - {alert: Expr, source: app, expr: count() > 1, window: 1m}\n"
	"  - {alert: Win, source: app, expr: count() > 0, window: 2m}\n"
	"  - {alert: By, source: app, expr: count() > 0, window: 1m, by: [method]}\n"
	"  - {alert: Groups, source: app, expr: count() > 0, window: 1m, by: [path], max_groups: 20}\n"
	"  - {alert: Src, source: web, expr: count() > 0, window: 1m}\n"
	"  - {alert: New, source: app, expr: count() > 0, window: 1m}\n"
	"  - {alert: Relabel, source: app, expr: count() > 0, window: 1m, by: [path],"
	" labels: {team: b}, for: 1m}\n"
	"  - {alert: Keep, source: app, expr: count() > 0, window: 1m}\n";

static void test_restore_changed_rules(void **state)
{
	struct fx *fx = *state;
	fx->rs = load_path(fx, rule_file(fx, "a.yml", IDENT_A));
	feed_app(fx->rs, T(0), "500 0.1 /a GET");
	rules_eval_all(fx->rs, T(0), on_transition, &fx->l1);
	assert_int_equal(fx->l1.n, 8); /* all of them */
	save_ok(fx->rs, &fx->saved);

	fx->rs2 = load_path(fx, rule_file(fx, "b.yml", IDENT_B));
	struct rules_restore_stats st;
	restore_ok(fx->rs2, &fx->saved, &st);
	assert_int_equal(st.restored, 2); /* Keep, Relabel: `for` and labels are not identity */
	assert_int_equal(st.skipped, 6);  /* Expr, Win, By, Groups, Src, Gone */
	assert_int_equal(st.firing, 2);
	assert_int_equal(st.pending, 0);
	struct rules_stats rst;
	rules_get_stats(fx->rs2, &rst);
	assert_int_equal(rst.firing, 2);

	rules_announce(fx->rs2, T(1), on_transition, &fx->l2);
	assert_int_equal(fx->l2.n, 2);
	EXPECT_REC(&fx->l2.r[0], T(1), RULES_FIRING, "Relabel", "source=app,team=b,path=/a");
	EXPECT_REC(&fx->l2.r[1], T(1), RULES_FIRING, "Keep", "source=app");
	assert_int_equal(fx->l2.r[0].started_us, T(0));
	assert_int_equal(fx->l2.r[1].started_us, T(0));
	assert_dbl(fx->l2.r[1].value, 1, 0);

	/* nothing comes: the fresh ones have empty windows, the kept ones fire on */
	rules_eval_all(fx->rs2, T(1), on_transition, &fx->l2);
	assert_int_equal(fx->l2.n, 2);

	/* one event: the fresh ones see one, the kept ones two */
	feed_app(fx->rs2, T(2), "500 0.1 /a GET");
	rules_eval_all(fx->rs2, T(2), on_transition, &fx->l2);
	const struct rec *r = fx->l2.r + 2;
	if (fx->l2.n - 2 != 4) {
		print_error("%u transitions at +2s, expected 4 (Win, By, Groups, New):\n",
			    fx->l2.n - 2);
		for (unsigned i = 2; i < fx->l2.n; i++)
			print_rec("got", &fx->l2.r[i]);
		fail();
	}
	/* Expr (count() > 1) does not fire: its window was not kept */
	EXPECT_REC(&r[0], T(2), RULES_FIRING, "Win", "source=app");
	EXPECT_REC(&r[1], T(2), RULES_FIRING, "By", "source=app,method=GET");
	EXPECT_REC(&r[2], T(2), RULES_FIRING, "Groups", "source=app,path=/a");
	EXPECT_REC(&r[3], T(2), RULES_FIRING, "New", "source=app");
	for (int i = 0; i < 4; i++) {
		assert_false(r[i].restored);
		assert_int_equal(r[i].started_us, T(2));
		assert_dbl(r[i].value, 1, 0);
	}
	unsigned before = fx->l2.n;
	rules_announce(fx->rs2, T(2), on_transition, &fx->l2);
	assert_int_equal(fx->l2.n - before, 6);
	EXPECT_REC(&fx->l2.r[before + 4], T(2), RULES_FIRING, "Relabel", "source=app,team=b,path=/a");
	assert_dbl(fx->l2.r[before + 4].value, 2, 0); /* the saved event and this one */
	EXPECT_REC(&fx->l2.r[before + 5], T(2), RULES_FIRING, "Keep", "source=app");
	assert_dbl(fx->l2.r[before + 5].value, 2, 0);
}

/* A state saved by a set that has none of these rules changes nothing. */
static void test_restore_all_skipped(void **state)
{
	struct fx *fx = *state;
	fx->rs = load_path(fx, rule_file(fx, "a.yml", IDENT_A));
	feed_app(fx->rs, T(0), "500 0.1 /a GET");
	rules_eval_all(fx->rs, T(0), on_transition, &fx->l1);
	save_ok(fx->rs, &fx->saved);
	fx->rs2 = load_path(fx, rule_file(fx, "other.yml", SCENARIO_RULES));
	struct kl_buf fresh = { 0 }, after = { 0 };
	struct rules_restore_stats st;
	restore_ok(fx->rs2, &fx->saved, &st);
	assert_int_equal(st.restored, 0);
	assert_int_equal(st.skipped, 8);
	assert_int_equal(st.firing, 0);
	rules_announce(fx->rs2, T(0), on_transition, &fx->l2);
	assert_int_equal(fx->l2.n, 0);
	save_ok(fx->rs2, &after);
	/* only the clock moved: as a fresh set evaluated at the saved instant */
	struct rules_set *ref = load_path(fx, fx->files[1]);
	rules_eval_all(ref, T(0), NULL, NULL);
	save_ok(ref, &fresh);
	rules_free(ref);
	assert_same_buf(&after, &fresh, "state after restoring only skipped rules");
	kl_buf_free(&fresh);
	kl_buf_free(&after);
}

/* ---- damage ----------------------------------------------------------------- */

static const char SMALL_RULES[] =
	"rules:\n"
	"  - {alert: Errs, source: app, expr: count(status >= 500) > 0, window: 10s, by: [path]}\n"
	"  - {alert: Lat, source: app, expr: p95(rt) > 1s, window: 10s, for: 1m}\n"
	"  - {alert: Uniq, source: app, expr: distinct(path) > 1, window: 10s}\n";

struct damage {
	struct fx *fx;
	struct rules_set *target; /* fresh, and must stay so */
	struct kl_buf fresh;	  /* what it saves while fresh */
	struct kl_buf scratch;
};

static void small_state(struct fx *fx, struct damage *dm)
{
	const char *path = rule_file(fx, "small.yml", SMALL_RULES);
	fx->rs = load_path(fx, path);
	feed_app(fx->rs, T(0), "500 2.5 /a");
	feed_app(fx->rs, T(1), "200 1.5 /b");
	rules_eval_all(fx->rs, T(1), on_transition, &fx->l1);
	assert_int_equal(fx->l1.n, 2); /* Errs{/a} and Uniq firing, Lat pending */
	save_ok(fx->rs, &fx->saved);
	dm->fx = fx;
	dm->target = fx->rs2 = load_path(fx, path);
	memset(&dm->fresh, 0, sizeof dm->fresh);
	memset(&dm->scratch, 0, sizeof dm->scratch);
	save_ok(dm->target, &dm->fresh);
	/* the good state does restore (into another set) */
	struct rules_set *check = load_path(fx, path);
	struct rules_restore_stats st;
	restore_ok(check, &fx->saved, &st);
	assert_int_equal(st.restored, 3);
	assert_int_equal(st.firing, 2);
	assert_int_equal(st.pending, 1);
	rules_free(check);
}

static void damage_free(struct damage *dm)
{
	kl_buf_free(&dm->fresh);
	kl_buf_free(&dm->scratch);
}

/* Restore data into the target: -EINVAL, empty stats, nothing firing, and a
 * set that saves exactly as a fresh one. */
static void expect_refused(struct damage *dm, const char *data, size_t len, const char *what,
			   size_t pos)
{
	struct rules_restore_stats st;
	memset(&st, 0x5a, sizeof st);
	int rc = rules_restore(dm->target, data, len, &st);
	if (rc != -EINVAL) {
		print_error("%s (at %zu, %zu bytes): rules_restore = %d, expected -EINVAL\n", what,
			    pos, len, rc);
		fail();
	}
	if (st.restored || st.firing || st.pending || st.saved_at_us) {
		print_error("%s (at %zu): stats restored %zu firing %zu pending %zu saved_at %lld,"
			    " expected 0\n",
			    what, pos, st.restored, st.firing, st.pending, (long long)st.saved_at_us);
		fail();
	}
	struct log l = { .n = 0 };
	rules_announce(dm->target, T(1), on_transition, &l);
	if (l.n) {
		print_error("%s (at %zu): %u alert(s) announced after a refused restore:\n", what,
			    pos, l.n);
		print_rec("got", &l.r[0]);
		fail();
	}
	struct rules_stats rst;
	rules_get_stats(dm->target, &rst);
	assert_int_equal(rst.firing, 0);
	save_ok(dm->target, &dm->scratch);
	if (dm->scratch.len != dm->fresh.len ||
	    memcmp(dm->scratch.p, dm->fresh.p, dm->fresh.len) != 0) {
		print_error("%s (at %zu): the set is not fresh after a refused restore\n", what, pos);
		assert_same_buf(&dm->scratch, &dm->fresh, "state after the refused restore");
	}
}

static void test_damage_flip(void **state)
{
	struct fx *fx = *state;
	struct damage dm;
	small_state(fx, &dm);
	const struct kl_buf *good = &fx->saved;
	struct kl_buf b = { 0 };
	static const unsigned char masks[] = { 0x01, 0x80, 0xff, 0x5a };
	for (size_t pos = 0; pos < good->len; pos++)
		for (size_t m = 0; m < sizeof masks; m++) {
			kl_buf_reset(&b);
			assert_int_equal(kl_buf_append(&b, good->p, good->len), 0);
			b.p[pos] ^= (char)masks[m];
			expect_refused(&dm, b.p, b.len, "byte flipped", pos);
		}
	kl_buf_free(&b);
	damage_free(&dm);
}

static void test_damage_truncate(void **state)
{
	struct fx *fx = *state;
	struct damage dm;
	small_state(fx, &dm);
	const struct kl_buf *good = &fx->saved;
	for (size_t len = 0; len < good->len; len++) {
		/* a copy of exactly len bytes, so ASan sees any read past it */
		char *p = malloc(len ? len : 1);
		assert_non_null(p);
		memcpy(p, good->p, len);
		expect_refused(&dm, p, len, "truncated", len);
		free(p);
	}
	/* and with one byte too many */
	struct kl_buf b = { 0 };
	assert_int_equal(kl_buf_append(&b, good->p, good->len), 0);
	assert_int_equal(kl_buf_append(&b, "", 1), 0);
	expect_refused(&dm, b.p, b.len, "a byte appended", good->len);
	kl_buf_free(&b);
	damage_free(&dm);
}

/* Damage behind a correct checksum: the structure is checked too. */
static void test_damage_resealed(void **state)
{
	struct fx *fx = *state;
	struct damage dm;
	small_state(fx, &dm);
	const struct kl_buf *good = &fx->saved;
	struct kl_buf b = { 0 };

	/* our reseal is the checksum rules_restore checks */
	assert_int_equal(kl_buf_append(&b, good->p, good->len), 0);
	reseal(&b);
	assert_same_buf(&b, good, "resealed good state");

	/* wrong magic */
	b.p[7] = 'Z';
	reseal(&b);
	expect_refused(&dm, b.p, b.len, "wrong magic", 7);
	/* wrong version: 0, 2, 127, and 1 written as 2 bytes then something */
	static const unsigned char versions[] = { 0, 2, 127 };
	for (size_t v = 0; v < sizeof versions; v++) {
		kl_buf_reset(&b);
		assert_int_equal(kl_buf_append(&b, good->p, good->len), 0);
		assert_int_equal((unsigned char)b.p[8], 1);
		b.p[8] = (char)versions[v];
		reseal(&b);
		expect_refused(&dm, b.p, b.len, "wrong version", versions[v]);
	}
	/* a trailing byte inside the checksum */
	kl_buf_reset(&b);
	assert_int_equal(kl_buf_append(&b, good->p, good->len - 4), 0);
	assert_int_equal(kl_buf_append(&b, "\0\0\0\0\0", 5), 0);
	reseal(&b);
	expect_refused(&dm, b.p, b.len, "trailing byte", good->len - 4);
	/* every truncation of the body, resealed */
	for (size_t len = 9; len < good->len - 4; len++) {
		kl_buf_reset(&b);
		assert_int_equal(kl_buf_append(&b, good->p, len), 0);
		assert_int_equal(kl_buf_append(&b, "\0\0\0\0", 4), 0);
		reseal(&b);
		expect_refused(&dm, b.p, b.len, "body truncated and resealed", len);
	}
	/* every byte of the body flipped, resealed: refused (then fresh), or
	 * taken as some other valid state; never anything else */
	size_t refused = 0, taken = 0;
	for (size_t pos = 8; pos < good->len - 4; pos++)
		for (unsigned m = 0x01; m <= 0x80; m <<= 1) {
			kl_buf_reset(&b);
			assert_int_equal(kl_buf_append(&b, good->p, good->len), 0);
			b.p[pos] ^= (char)m;
			reseal(&b);
			struct rules_set *t = load_path(fx, fx->files[0]);
			struct rules_restore_stats st;
			int rc = rules_restore(t, b.p, b.len, &st);
			if (rc == -EINVAL) {
				rules_free(t);
				refused++;
				expect_refused(&dm, b.p, b.len, "body byte flipped and resealed", pos);
				continue;
			}
			if (rc != 0) {
				print_error("byte %zu ^ 0x%02x resealed: rules_restore = %d\n", pos, m, rc);
				fail();
			}
			taken++;
			assert_true(st.restored + st.skipped == 3);
			/* what was taken evaluates and saves */
			rules_announce(t, T(2), NULL, NULL);
			rules_eval_all(t, T(2), NULL, NULL);
			save_ok(t, &dm.scratch);
			rules_free(t);
		}
	assert_true(refused > 0);
	assert_true(taken > 0);
	kl_buf_free(&b);
	damage_free(&dm);
}

/* Where the rules of a saved state lie (the layout in rules.c). */
#define LAYOUT_MAX 8

struct layout {
	size_t header; /* bytes before the first rule */
	size_t nrules;
	size_t payload[LAYOUT_MAX]; /* offset of each rule's payload bytes */
	size_t payload_len[LAYOUT_MAX];
	size_t payload_lenpos[LAYOUT_MAX]; /* offset of its length varint */
};

static void parse_layout(const struct kl_buf *b, struct layout *lo)
{
	assert_true(b->len >= 13);
	struct kl_rd r = kl_rd_of(b->p + 8, b->len - 12);
	assert_int_equal(kl_rd_u64(&r), 1); /* version */
	kl_rd_i64(&r);			     /* last_now_us */
	kl_rd_i64(&r);			     /* last_tick_us */
	lo->nrules = (size_t)kl_rd_count(&r, LAYOUT_MAX);
	lo->header = (size_t)((const char *)r.p - b->p);
	for (size_t i = 0; i < lo->nrules; i++) {
		kl_rd_bytes(&r, 1000); /* alert */
		kl_rd_bytes(&r, 1000); /* expr */
		kl_rd_bytes(&r, 1000); /* source */
		kl_rd_i64(&r);	       /* window */
		uint64_t nby = kl_rd_count(&r, 8);
		for (uint64_t k = 0; k < nby; k++)
			kl_rd_bytes(&r, 1000);
		kl_rd_u64(&r); /* max_groups */
		lo->payload_lenpos[i] = (size_t)((const char *)r.p - b->p);
		struct kl_str pl = kl_rd_bytes(&r, b->len);
		lo->payload[i] = (size_t)(pl.p - b->p);
		lo->payload_len[i] = pl.len;
	}
	assert_true(kl_rd_done(&r));
}

/* A structure error in one rule's payload, behind a correct checksum: refused,
 * and the rules restored before it was found are fresh again too. */
static void test_damage_payload(void **state)
{
	struct fx *fx = *state;
	struct damage dm;
	small_state(fx, &dm);
	struct layout lo;
	parse_layout(&fx->saved, &lo);
	assert_int_equal(lo.nrules, 3);
	struct kl_buf b = { 0 };

	/* Uniq (no `by`, so one group at most), last: two groups */
	assert_int_equal(kl_buf_append(&b, fx->saved.p, fx->saved.len), 0);
	assert_int_equal(b.p[lo.payload[2]], 1);
	b.p[lo.payload[2]] = 2;
	reseal(&b);
	expect_refused(&dm, b.p, b.len, "two groups in a rule without by", lo.payload[2]);

	/* Lat, in the middle: no groups (a rule without `by` has its one) */
	kl_buf_reset(&b);
	assert_int_equal(kl_buf_append(&b, fx->saved.p, fx->saved.len), 0);
	b.p[lo.payload[1]] = 0;
	reseal(&b);
	{
		/* the rest of its payload is then left over: refused */
		expect_refused(&dm, b.p, b.len, "payload longer than its groups", lo.payload[1]);
	}

	/* Errs, first: its first group ("/a", firing) in a state past firing */
	kl_buf_reset(&b);
	assert_int_equal(kl_buf_append(&b, fx->saved.p, fx->saved.len), 0);
	size_t at = lo.payload[0];
	assert_int_equal(b.p[at], 2);	      /* two groups: /a, /b */
	assert_int_equal(b.p[at + 1], 2);     /* "/a" */
	assert_memory_equal(b.p + at + 2, "/a", 2);
	assert_int_equal(b.p[at + 4], 2);     /* S_FIRING */
	b.p[at + 4] = 3;
	reseal(&b);
	expect_refused(&dm, b.p, b.len, "an alert state past firing", at + 4);

	/* Lat's payload one byte longer (its length says so): left over */
	kl_buf_reset(&b);
	size_t lp = lo.payload_lenpos[1], end = lo.payload[1] + lo.payload_len[1];
	assert_true(lo.payload_len[1] < 127);
	assert_int_equal(kl_buf_append(&b, fx->saved.p, end), 0);
	b.p[lp]++;
	assert_int_equal(kl_buf_append(&b, "", 1), 0);
	assert_int_equal(kl_buf_append(&b, fx->saved.p + end, fx->saved.len - end), 0);
	reseal(&b);
	expect_refused(&dm, b.p, b.len, "a byte left over in a payload", end);

	/* and the untouched state still restores into the same target */
	struct rules_restore_stats st;
	restore_ok(dm.target, &fx->saved, &st);
	assert_int_equal(st.restored, 3);
	kl_buf_free(&b);
	damage_free(&dm);
}

/* ---- hostile values behind a correct checksum --------------------------------
 *
 * A state is built field by field (the layout in rules.c) with instants at the
 * ends of int64: each is refused, or taken and then evaluated, fed and
 * announced without an overflow. The overflows are undefined behaviour, so
 * what catches them is UBSan (the sanitizer lane runs with halt_on_error=1);
 * a plain build only shows that nothing crashes.
 */
static const char HOSTILE_RULES[] =
	"rules:\n"
	"  - {alert: Any, source: app, expr: count() > 0, window: 1m, for: 1m}\n"
	"  - {alert: Fresh, source: app, expr: \"new(path, 1h) > 0\", window: 1m}\n"
	"  - {alert: Z, source: app, expr: \"zscore(count(), 1h) > 3\", window: 1m}\n";

struct hostile {
	int64_t now, tick;
	uint64_t any_state;	    /* Any's one group */
	int64_t any_since;
	int64_t any_newest;	    /* its window, with no bucket */
	int64_t seen_first, seen_last; /* Fresh's seen table ("/a" seen at seen_last) */
	int64_t z_first;	    /* Z's history, with no slot */
};

static void put_group(struct kl_buf *b, uint64_t st, int64_t since, int64_t newest)
{
	assert_int_equal(kl_buf_put_u64(b, st), 0);
	assert_int_equal(kl_buf_put_i64(b, since), 0);
	assert_int_equal(kl_buf_put_i64(b, -1), 0); /* false_since */
	assert_int_equal(kl_buf_put_i64(b, newest), 0);
	assert_int_equal(kl_buf_put_u64(b, 0), 0); /* no bucket */
}

static void hostile_state(const struct kl_buf *fresh, const struct hostile *h, struct kl_buf *out)
{
	struct layout lo;
	parse_layout(fresh, &lo);
	assert_int_equal(lo.nrules, 3);
	struct kl_buf pl = { 0 };
	kl_buf_reset(out);
	assert_int_equal(kl_buf_append(out, "KLXRULES", 8), 0);
	assert_int_equal(kl_buf_put_u64(out, 1), 0);
	assert_int_equal(kl_buf_put_i64(out, h->now), 0);
	assert_int_equal(kl_buf_put_i64(out, h->tick), 0);
	assert_int_equal(kl_buf_put_u64(out, 3), 0);
	size_t from = lo.header;
	for (size_t i = 0; i < 3; i++) {
		/* the identity as saved, then our payload */
		assert_int_equal(kl_buf_append(out, fresh->p + from, lo.payload_lenpos[i] - from), 0);
		from = lo.payload[i] + lo.payload_len[i];
		kl_buf_reset(&pl);
		assert_int_equal(kl_buf_put_u64(&pl, 1), 0); /* one group */
		if (i == 0) {
			put_group(&pl, h->any_state, h->any_since, h->any_newest);
		} else {
			put_group(&pl, 0, 0, INT64_MIN);
		}
		if (i == 1) { /* the seen table */
			assert_int_equal(kl_buf_put_i64(&pl, h->seen_first), 0);
			assert_int_equal(kl_buf_put_u64(&pl, 0), 0);
			assert_int_equal(kl_buf_put_u64(&pl, h->seen_last ? 1 : 0), 0);
			if (h->seen_last) {
				/* the key of "/a" in the one group of a rule without by */
				assert_int_equal(kl_buf_put_u64(&pl, hll_hash("/a", 2)), 0);
				assert_int_equal(kl_buf_put_i64(&pl, h->seen_last), 0);
			}
		}
		if (i == 2) { /* the history: first, newest, last_minute, no slot */
			assert_int_equal(kl_buf_put_i64(&pl, h->z_first), 0);
			assert_int_equal(kl_buf_put_i64(&pl, INT64_MIN), 0);
			assert_int_equal(kl_buf_put_i64(&pl, INT64_MIN), 0);
			assert_int_equal(kl_buf_put_u64(&pl, 0), 0);
		}
		assert_int_equal(kl_buf_put_bytes(out, pl.p, pl.len), 0);
	}
	assert_int_equal(kl_buf_append(out, "\0\0\0\0", 4), 0);
	reseal(out);
	kl_buf_free(&pl);
}

static void run_hostile(struct fx *fx, const struct kl_buf *fresh, const struct hostile *h,
			const char *what, bool must_take)
{
	struct kl_buf b = { 0 };
	hostile_state(fresh, h, &b);
	struct rules_set *t = load_path(fx, fx->files[0]);
	struct rules_restore_stats st;
	int rc = rules_restore(t, b.p, b.len, &st);
	if (rc != 0 && (must_take || rc != -EINVAL)) {
		print_error("%s: rules_restore = %d, expected 0%s\n", what, rc,
			    must_take ? "" : " or -EINVAL");
		fail();
	}
	if (rc == 0) {
		assert_int_equal(st.restored, 3);
		/* as the daemon goes on: an event, its tick, every rule, an announce */
		feed_app(t, T(0), "200 0.1 /a");
		rules_eval(t, T(0), NULL, NULL);
		feed_app(t, T(61), "200 0.1 /b");
		rules_eval(t, T(61), NULL, NULL);
		rules_eval_all(t, T(3600), NULL, NULL);
		rules_announce(t, T(3600), NULL, NULL);
		struct kl_buf again = { 0 };
		save_ok(t, &again);
		kl_buf_free(&again);
	}
	rules_free(t);
	kl_buf_free(&b);
}

static void test_restore_hostile_instants(void **state)
{
	struct fx *fx = *state;
	fx->rs = load_path(fx, rule_file(fx, "hostile.yml", HOSTILE_RULES));
	save_ok(fx->rs, &fx->saved);
	const struct hostile ok = {
		.now = T(-10), .tick = T(-10), .any_state = 1, .any_since = T(-10),
		.any_newest = INT64_MIN, .seen_first = T(-3600), .seen_last = T(-20),
		.z_first = INT64_MIN,
	};
	/* the builder makes a state rules_restore takes */
	run_hostile(fx, &fx->saved, &ok, "a sane built state", true);

	struct hostile h;
	h = ok, h.now = INT64_MAX, h.tick = INT64_MIN;
	run_hostile(fx, &fx->saved, &h, "now INT64_MAX, tick INT64_MIN", false);
	h = ok, h.tick = INT64_MIN;
	run_hostile(fx, &fx->saved, &h, "tick INT64_MIN", false);
	h = ok, h.tick = INT64_MAX;
	run_hostile(fx, &fx->saved, &h, "tick INT64_MAX", false);
	h = ok, h.any_since = INT64_MIN; /* pending since */
	run_hostile(fx, &fx->saved, &h, "pending since INT64_MIN", false);
	h = ok, h.any_state = 2, h.any_since = INT64_MIN; /* firing since */
	run_hostile(fx, &fx->saved, &h, "firing since INT64_MIN", false);
	h = ok, h.any_newest = INT64_MIN + 8; /* no bucket, a newest near the end */
	run_hostile(fx, &fx->saved, &h, "window newest INT64_MIN + 8", false);
	h = ok, h.any_newest = INT64_MAX;
	run_hostile(fx, &fx->saved, &h, "window newest INT64_MAX", false);
	h = ok, h.seen_first = INT64_MIN + 1;
	run_hostile(fx, &fx->saved, &h, "seen first INT64_MIN + 1", false);
	h = ok, h.seen_last = INT64_MIN + 1;
	run_hostile(fx, &fx->saved, &h, "seen value last INT64_MIN + 1", false);
	h = ok, h.z_first = INT64_MIN + 1;
	run_hostile(fx, &fx->saved, &h, "history first INT64_MIN + 1", false);
}

/* ---- generation ---------------------------------------------------------- */

static void test_generation(void **state)
{
	struct fx *fx = *state;
	fx->rs = load_path(fx, rule_file(fx, "gen.yml",
					  "rules:\n"
					  "  - {alert: Errs, source: app, expr: count(status >= 500) > 0,"
					  " window: 1m, by: [path], for: 30s}\n"
					  "  - {alert: Many, source: app, expr: count() > 100, window: 1m}\n"));
	uint64_t g = rules_generation(fx->rs), prev;
	rules_eval_all(fx->rs, T(0), on_transition, &fx->l1);
	(void)g;

	prev = rules_generation(fx->rs);
	feed_app(fx->rs, T(0), "500 0.1 /a");
	assert_int_not_equal(rules_generation(fx->rs), prev); /* fed */

	prev = rules_generation(fx->rs);
	rules_eval_all(fx->rs, T(0), on_transition, &fx->l1);
	assert_int_not_equal(rules_generation(fx->rs), prev); /* /a pending */

	prev = rules_generation(fx->rs);
	rules_eval_all(fx->rs, T(10), on_transition, &fx->l1);
	assert_int_equal(rules_generation(fx->rs), prev); /* still pending: nothing changed */
	rules_eval_all(fx->rs, T(10), on_transition, &fx->l1);
	rules_eval(fx->rs, T(15), on_transition, &fx->l1);
	assert_int_equal(rules_generation(fx->rs), prev);

	rules_eval_all(fx->rs, T(30), on_transition, &fx->l1);
	assert_int_equal(fx->l1.n, 1); /* fired */
	assert_int_not_equal(rules_generation(fx->rs), prev);

	prev = rules_generation(fx->rs);
	rules_eval_all(fx->rs, T(40), on_transition, &fx->l1);
	assert_int_equal(rules_generation(fx->rs), prev); /* firing on */

	feed_app(fx->rs, T(45), "200 0.1 /b"); /* a group that never fires */
	assert_int_not_equal(rules_generation(fx->rs), prev);
	prev = rules_generation(fx->rs);
	rules_eval_all(fx->rs, T(45), on_transition, &fx->l1);
	assert_int_equal(rules_generation(fx->rs), prev); /* /b inactive: as it was */
	rules_eval_all(fx->rs, T(59), on_transition, &fx->l1);
	assert_int_equal(rules_generation(fx->rs), prev);

	rules_eval_all(fx->rs, T(60), on_transition, &fx->l1);
	assert_int_equal(fx->l1.n, 2); /* /a resolved */
	assert_int_not_equal(rules_generation(fx->rs), prev);

	prev = rules_generation(fx->rs);
	rules_eval_all(fx->rs, T(61), on_transition, &fx->l1);
	assert_int_not_equal(rules_generation(fx->rs), prev); /* /a forgotten */

	/* an announce is no change either */
	prev = rules_generation(fx->rs);
	rules_announce(fx->rs, T(62), on_transition, &fx->l1);
	assert_int_equal(rules_generation(fx->rs), prev);
	/* nor is a save */
	save_ok(fx->rs, &fx->saved);
	assert_int_equal(rules_generation(fx->rs), prev);
}

/* A rule without `by` whose window is empty has nothing to forget: an idle
 * set's evaluations change nothing that rules_save writes (bar the clock), so
 * a daemon must not rewrite its state file every tick. */
static void test_generation_idle(void **state)
{
	struct fx *fx = *state;
	fx->rs = load_path(fx, rule_file(fx, "gen.yml",
					  "rules:\n"
					  "  - {alert: Errs, source: app, expr: count(status >= 500) > 0,"
					  " window: 1m, by: [path]}\n"
					  "  - {alert: Slow, source: web, expr: p95(request_time) > 1s,"
					  " window: 1m}\n"
					  "  - {alert: Enough, source: web, expr: ratio(status >= 500) > 5%,"
					  " window: 1m, min_events: 10}\n"));
	rules_eval_all(fx->rs, T(0), on_transition, &fx->l1);
	uint64_t prev = rules_generation(fx->rs);
	struct kl_buf a = { 0 }, b = { 0 };
	save_ok(fx->rs, &a);
	rules_eval_all(fx->rs, T(1), on_transition, &fx->l1);
	rules_eval_all(fx->rs, T(2), on_transition, &fx->l1);
	save_ok(fx->rs, &b);
	assert_int_equal(fx->l1.n, 0);
	/* the saved groups are the same bytes (the header's clock moved) */
	struct layout la, lb;
	parse_layout(&a, &la);
	parse_layout(&b, &lb);
	assert_int_equal(a.len - la.header, b.len - lb.header);
	assert_memory_equal(a.p + la.header, b.p + lb.header, a.len - la.header - 4);
	if (rules_generation(fx->rs) != prev) {
		print_error("rules_generation moved from %llu to %llu over two evaluations that"
			    " changed no group\n",
			    (unsigned long long)prev, (unsigned long long)rules_generation(fx->rs));
		fail();
	}
	kl_buf_free(&a);
	kl_buf_free(&b);
}

int main(void)
{
#define T_(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_codec_u64),
		cmocka_unit_test(test_codec_i64),
		cmocka_unit_test(test_codec_f64),
		cmocka_unit_test(test_codec_bytes),
		cmocka_unit_test(test_codec_truncated),
		cmocka_unit_test(test_codec_overlong),
		cmocka_unit_test(test_codec_count),
		cmocka_unit_test(test_sketch_roundtrip),
		cmocka_unit_test(test_sketch_wide_counts),
		cmocka_unit_test(test_sketch_subtract_decoded),
		cmocka_unit_test(test_sketch_decode_corrupt),
		cmocka_unit_test(test_hll_roundtrip),
		cmocka_unit_test(test_hll_decode_corrupt),
		T_(test_restore_announce),
		T_(test_restore_save_again),
		T_(test_restore_same_future),
		T_(test_restore_later),
		T_(test_restore_clock),
		T_(test_restore_after_gap),
		T_(test_restore_ahead_of_clock),
		T_(test_restore_anomaly),
		T_(test_restore_zscore_huge),
		T_(test_restore_changed_rules),
		T_(test_restore_all_skipped),
		T_(test_damage_flip),
		T_(test_damage_truncate),
		T_(test_damage_resealed),
		T_(test_damage_payload),
		T_(test_restore_hostile_instants),
		T_(test_generation),
		T_(test_generation_idle),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
