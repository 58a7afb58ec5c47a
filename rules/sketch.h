/*
 * sketch.h — mergeable summaries the rolling windows keep per time bucket
 * (private to rules/; nothing outside the folder includes it).
 *
 * struct sketch: a DDSketch-style quantile sketch with relative accuracy
 * SKETCH_ALPHA, exact counts, and exact add / merge / subtract, so a window
 * can keep its total by merging buckets in and subtracting expired ones.
 *
 * struct hll: a HyperLogLog distinct counter (precision HLL_P). Not
 * subtractable: a window estimates distinct() over its live buckets with
 * hll_estimate_union(), or by merging them into a scratch hll.
 *
 * Both are plain structs the caller embeds; zero-initialised (or *_init) they
 * are empty and own no memory. Memory is allocated on first add and kept
 * until *_free (a *_reset empties but keeps it, for bucket reuse). Fallible
 * calls return 0 or a negative errno and leave the counts unchanged on
 * failure. Neither is thread-safe; each is owned by one window.
 */
#ifndef SKETCH_H
#define SKETCH_H

#include <stddef.h>
#include <stdint.h>

#include "common/kl.h"

/* ---------------------------------------------------------------------------
 * Quantile sketch.
 *
 * Guarantee: while sketch_collapsed() is 0, sketch_quantile(s, q) returns v
 * with |v - x| <= SKETCH_ALPHA * |x|, where x is the item of rank
 * floor(q * (n - 1)) (0-based, "lower" convention) among the n values added
 * and not subtracted, sorted; values with |x| < SKETCH_ZERO count as 0 and
 * are returned as 0. SKETCH_ALPHA = (2^(1/70) - 1) / (2^(1/70) + 1) ~ 0.00495:
 * within 0.5%, inside the 1% that DESIGN.md promises for p50..p99.
 *
 * Memory: the counts of a sign cover at most SKETCH_MAX_BINS bins (70 per
 * power of two, so a ratio of 2^58.5 ~ 4e17 between the largest and the
 * smallest magnitude kept exactly). Past that the smallest magnitudes are
 * folded into the lowest kept bin ("collapsing lowest") and
 * sketch_collapsed() counts the values so folded. Folding depends only on
 * the largest magnitude ever added to the sketch, which keeps subtraction
 * exact (see sketch.c). A count takes 1, 2, 4 or 8 bytes, widened as needed.
 */
#define SKETCH_ALPHA 0.004951010835220861
#define SKETCH_ZERO 1e-9
#define SKETCH_MAX_BINS 4096

struct sketch_store {
	void *bins;	/* counts of bins [lo, lo + n); `width` bytes each */
	uint64_t total; /* sum of the counts */
	int32_t lo;
	uint32_t n;	/* 0 when empty; lo + n - 1 is the highest index added */
	uint32_t cap;	/* bins allocated */
	uint8_t width;	/* bytes per count: 1, 2, 4 or 8 */
};

struct sketch {
	struct sketch_store pos; /* x >= SKETCH_ZERO, by index of x */
	struct sketch_store neg; /* x <= -SKETCH_ZERO, by index of -x */
	uint64_t zero;		 /* |x| < SKETCH_ZERO */
	uint64_t collapsed;	 /* values folded into a lowest bin; only grows */
};

/* Empty sketch, no memory. A zero-initialised struct is the same. */
void sketch_init(struct sketch *s);
/* Releases the memory; the sketch is empty again. NULL is accepted. */
void sketch_free(struct sketch *s);
/* Empties the sketch (counts, collapsed) and keeps its memory for reuse. */
void sketch_reset(struct sketch *s);

/*
 * Adds one value. 0, -EINVAL for NaN and infinities (not counted), or
 * -ENOMEM (not counted).
 */
int sketch_add(struct sketch *s, double x);

/* dst += src. 0 or -ENOMEM (dst unchanged). dst and src must differ. */
int sketch_merge(struct sketch *dst, const struct sketch *src);

/*
 * dst -= src, where src (as it is now) was merged or added value by value
 * into dst earlier: counts go down exactly, and dst ends up as if src's
 * values had never been added to it (bar memory, and `collapsed`). 0, or
 * -EINVAL if src is not contained in dst (dst unchanged). Never allocates.
 * A window adding each value to its bucket and its total must treat a failed
 * add to either as a divergence (rebuild the total from the buckets), or
 * merge each bucket into the total instead, which fails as a whole.
 */
int sketch_subtract(struct sketch *dst, const struct sketch *src);

/* Values added and not subtracted. */
uint64_t sketch_count(const struct sketch *s);

/*
 * The value at rank floor(q * (n - 1)) within SKETCH_ALPHA (see above); NaN
 * when the sketch is empty or q is not within [0, 1].
 */
double sketch_quantile(const struct sketch *s, double q);

/* Values folded into a lowest bin since init/reset (the cap's counter). */
uint64_t sketch_collapsed(const struct sketch *s);

/* Bytes owned, the struct included. */
size_t sketch_memory(const struct sketch *s);

/*
 * Saved state: append the sketch's exact contents (kl_buf_put_* encoding);
 * 0 or -ENOMEM. sketch_decode reads one back into an empty sketch s: 0, or
 * -EINVAL for input that is not an encoded sketch (s stays empty, r is marked
 * bad), -ENOMEM. Decoding gives back the same counts bin for bin, so a
 * decoded bucket can still be subtracted from a total it was merged into.
 */
int sketch_encode(const struct sketch *s, struct kl_buf *out);
int sketch_decode(struct sketch *s, struct kl_rd *r);

/*
 * The bin mapping, exposed for tests: index of |x| (|x| >= SKETCH_ZERO,
 * finite) is ceil(70 * log2|x|), i.e. ceil(log_g |x|) with g = 2^(1/70);
 * sketch_bin_value(i) is the value reported for bin i.
 */
int32_t sketch_index(double x);
double sketch_bin_value(int32_t i);

/* ---------------------------------------------------------------------------
 * HyperLogLog, precision HLL_P: 4096 registers of one byte. Standard error
 * 1.04 / sqrt(4096) ~ 1.6% (so within 5% at three standard errors), over the
 * whole range: the estimator is Ertl's (arXiv:1702.01284), which needs no
 * separate small-range correction and has no bias bump at 2.5 * 4096.
 *
 * Storage: nothing while empty; a sorted list of touched registers (4 bytes
 * each) up to HLL_SPARSE_MAX of them; then the 4096 registers. The estimate is
 * the same in both forms.
 */
#define HLL_P 12
#define HLL_M (1u << HLL_P)
#define HLL_SPARSE_MAX 256

struct hll {
	void *mem;	/* NULL, uint32_t entries[] (sparse), or uint8_t regs[HLL_M] */
	uint32_t bytes; /* allocated */
	uint32_t n;	/* sparse entries used */
	uint8_t dense;
};

/*
 * The 64-bit hash for distinct(): a wyhash-style multiply-fold over 16-byte
 * blocks, reading little-endian, so every host (shared windows merge hlls
 * built on several) gets the same value. Not for hostile-collision use.
 */
uint64_t hll_hash(const void *data, size_t len);
/* hll_hash of x's 8 bytes, little-endian (e.g. a number's bits). */
uint64_t hll_hash_u64(uint64_t x);

void hll_init(struct hll *h);
/* Releases the memory; empty again. NULL is accepted. */
void hll_free(struct hll *h);
/* Empties it and keeps its memory. */
void hll_reset(struct hll *h);

/* Adds an item by its hash. 0 or -ENOMEM (unchanged). */
int hll_add_hash(struct hll *h, uint64_t hash);
/* hll_add_hash(h, hll_hash(data, len)). */
int hll_add(struct hll *h, const void *data, size_t len);

/* dst = dst ∪ src. 0 or -ENOMEM (dst unchanged). dst and src must differ. */
int hll_merge(struct hll *dst, const struct hll *src);

/* Estimated number of distinct items; 0 when empty. */
double hll_estimate(const struct hll *h);
/* Estimate of the union of n hlls, without allocating (4 KB of stack). */
double hll_estimate_union(const struct hll *const *hs, size_t n);

/* Bytes owned, the struct included. */
size_t hll_memory(const struct hll *h);

/* Saved state, as for sketches: the registers exactly. */
int hll_encode(const struct hll *h, struct kl_buf *out);
int hll_decode(struct hll *h, struct kl_rd *r);

#endif
