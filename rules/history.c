/*
 * history.c — an aggregate's own past, for zscore() and baseline(), and the
 * values new() has seen.
 *
 * A history is a ring of time slots sampled once a minute (the first
 * evaluation in each minute samples the inner aggregate's value):
 *  - zscore(AGG, H): nslots = min(H / 1m, ZSLOTS_MAX) slots of width H/nslots
 *    (at least a minute), each the sum, sum of squares and count of the
 *    samples that fell in it, so the mean and standard deviation over the
 *    last H are those of every per-minute sample, in bounded memory (at most
 *    ZSLOTS_MAX × 24 bytes, 34 KB for any H).
 *  - baseline(AGG, P): one slot a minute of phase (coarser only for periods
 *    over BSLOTS_PER_PERIOD minutes), covering BPERIODS periods back and the
 *    current one: the value k periods ago at this phase is one slot read, the
 *    baseline the median of k = 1..7. Floats: 4 bytes a slot (46 KB a day).
 * A slot is known only when its bucket number matches the ring's; slots
 * skipped by a gap in sampling are cleared as the ring moves on, so a stale
 * value never stands for a missing one.
 *
 * "Seen" tables for new(FIELD, H): a chained hash of (group, value) keys with
 * the last time each was seen, in an LRU list so the oldest is forgotten
 * first when the cap is reached (counted).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rules/rules_int.h"

#define MINUTE_US (60 * 1000000LL)
#define ZSLOTS_MAX 1440
#define BSLOTS_PER_PERIOD 10080 /* a week of minutes */
#define BPERIODS 7

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static size_t slot_of(int64_t bucket, unsigned n)
{
	int64_t m = bucket % (int64_t)n;
	return (size_t)(m < 0 ? m + n : m);
}

void hist_shape_init(struct hist_shape *s, enum hist_kind kind, int64_t span_us)
{
	s->kind = kind;
	s->span_us = span_us;
	if (kind == HIST_ZSCORE) {
		int64_t minutes = (span_us + MINUTE_US - 1) / MINUTE_US;
		s->nslots = (unsigned)(minutes < ZSLOTS_MAX ? (minutes > 2 ? minutes : 2) : ZSLOTS_MAX);
		s->slot_us = (span_us + s->nslots - 1) / s->nslots;
		if (s->slot_us < MINUTE_US)
			s->slot_us = MINUTE_US;
		s->per_period = 0;
	} else {
		int64_t minutes = (span_us + MINUTE_US - 1) / MINUTE_US;
		s->per_period = (unsigned)(minutes < BSLOTS_PER_PERIOD ? (minutes > 1 ? minutes : 1)
								      : BSLOTS_PER_PERIOD);
		s->slot_us = span_us / s->per_period;
		if (s->slot_us < 1)
			s->slot_us = 1;
		s->nslots = s->per_period * (BPERIODS + 1);
	}
}

size_t hist_memory(const struct hist_shape *s)
{
	return s->kind == HIST_ZSCORE ? (size_t)s->nslots * 3 * sizeof(double)
				      : (size_t)s->nslots * sizeof(float);
}

int hist_init(struct hist *h, const struct hist_shape *s)
{
	memset(h, 0, sizeof *h);
	h->first_us = INT64_MIN;
	h->newest = INT64_MIN;
	h->last_minute = INT64_MIN;
	h->last_ref = NAN;
	h->last_score = NAN;
	h->tot_bucket = INT64_MIN;
	if (s->kind == HIST_ZSCORE) {
		h->z = calloc((size_t)s->nslots * 3, sizeof *h->z);
		return h->z ? 0 : -ENOMEM;
	}
	h->b = malloc((size_t)s->nslots * sizeof *h->b);
	if (!h->b)
		return -ENOMEM;
	for (unsigned i = 0; i < s->nslots; i++)
		h->b[i] = NAN;
	return 0;
}

void hist_free(struct hist *h)
{
	if (!h)
		return;
	free(h->z);
	free(h->b);
	h->z = NULL;
	h->b = NULL;
}

static void clear_slot(struct hist *h, const struct hist_shape *s, size_t i)
{
	if (s->kind == HIST_ZSCORE)
		memset(h->z + 3 * i, 0, 3 * sizeof *h->z);
	else
		h->b[i] = NAN;
}

/* Move the ring's newest slot to bucket, clearing the slots in between. */
static void advance(struct hist *h, const struct hist_shape *s, int64_t bucket)
{
	if (h->newest != INT64_MIN && bucket <= h->newest)
		return;
	int64_t from = h->newest == INT64_MIN ? bucket - s->nslots + 1 : h->newest + 1;
	if (bucket - from >= (int64_t)s->nslots)
		from = bucket - s->nslots + 1;
	for (int64_t b = from; b <= bucket; b++)
		clear_slot(h, s, slot_of(b, s->nslots));
	h->newest = bucket;
}

bool hist_sample_due(const struct hist *h, int64_t now)
{
	return floor_div(now, MINUTE_US) != h->last_minute;
}

void hist_sample(struct hist *h, const struct hist_shape *s, int64_t now, double v)
{
	int64_t minute = floor_div(now, MINUTE_US);
	if (minute == h->last_minute)
		return;
	h->last_minute = minute;
	/* Nothing to learn from an undefined value, nor from one whose square
	 * overflows (the sums would be infinite from then on). */
	if (!isfinite(v) || !isfinite(v * v))
		return;
	int64_t bucket = floor_div(now, s->slot_us);
	if (h->newest != INT64_MIN && bucket < h->newest)
		return; /* the clock went back: keep the ring as it is */
	if (h->newest != INT64_MIN && bucket - h->newest >= (int64_t)s->nslots)
		h->first_us = INT64_MIN; /* a gap longer than the ring forgot it all: learn again */
	advance(h, s, bucket);
	size_t i = slot_of(bucket, s->nslots);
	if (s->kind == HIST_ZSCORE) {
		h->z[3 * i] += v;
		h->z[3 * i + 1] += v * v;
		h->z[3 * i + 2] += 1;
		if (h->tot_bucket == bucket) {
			h->tot_sum += v;
			h->tot_sq += v * v;
			h->tot_n += 1;
		} else {
			h->tot_bucket = INT64_MIN;
		}
	} else {
		h->b[i] = (float)v;
	}
	if (h->first_us == INT64_MIN)
		h->first_us = now;
}

double hist_zscore(struct hist *h, const struct hist_shape *s, int64_t now, double v)
{
	h->last_ref = NAN;
	h->last_score = NAN;
	if (h->first_us == INT64_MIN || now - h->first_us < s->span_us / 2 || !isfinite(v))
		return NAN;
	int64_t cur = floor_div(now, s->slot_us);
	if (h->tot_bucket != cur) {
		double sum = 0, sq = 0, n = 0;
		for (int64_t b = cur - s->nslots + 1; b <= cur; b++) {
			if (h->newest == INT64_MIN || b > h->newest ||
			    b <= h->newest - (int64_t)s->nslots)
				continue;
			const double *z = h->z + 3 * slot_of(b, s->nslots);
			sum += z[0];
			sq += z[1];
			n += z[2];
		}
		h->tot_sum = sum;
		h->tot_sq = sq;
		h->tot_n = n;
		h->tot_bucket = cur;
	}
	double sum = h->tot_sum, sq = h->tot_sq, n = h->tot_n;
	if (n < 2)
		return NAN;
	double mean = sum / n;
	double var = (sq - sum * mean) / (n - 1);
	h->last_ref = mean;
	/* No spread, no verdict: a constant history says nothing of how far
	 * off normal a change is (and would give infinity). */
	if (!(var > 1e-12 * (mean * mean + 1e-300)))
		return NAN;
	h->last_score = (v - mean) / sqrt(var);
	return h->last_score;
}

static int cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;
	return x < y ? -1 : x > y;
}

double hist_baseline(struct hist *h, const struct hist_shape *s, int64_t now, double v)
{
	h->last_ref = NAN;
	h->last_score = NAN;
	if (h->first_us == INT64_MIN || now - h->first_us < s->span_us)
		return NAN;
	int64_t cur = floor_div(now, s->slot_us);
	float vals[BPERIODS];
	size_t n = 0;
	for (int k = 1; k <= BPERIODS; k++) {
		int64_t b = cur - (int64_t)k * s->per_period;
		if (h->newest == INT64_MIN || b > h->newest || b <= h->newest - (int64_t)s->nslots)
			continue;
		float x = h->b[slot_of(b, s->nslots)];
		if (!isnan(x))
			vals[n++] = x;
	}
	if (n == 0)
		return NAN;
	qsort(vals, n, sizeof *vals, cmp_float);
	double med = n % 2 ? vals[n / 2] : ((double)vals[n / 2 - 1] + vals[n / 2]) / 2;
	h->last_ref = med;
	h->last_score = med != 0 && isfinite(v) ? v / med : NAN;
	return med;
}

/* ---- saved state --------------------------------------------------------- */

int hist_encode(const struct hist *h, const struct hist_shape *s, struct kl_buf *out)
{
	int rc = kl_buf_put_i64(out, h->first_us);
	if (rc == 0)
		rc = kl_buf_put_i64(out, h->newest);
	if (rc == 0)
		rc = kl_buf_put_i64(out, h->last_minute);
	/* Only the known slots, newest first, as (age, values). */
	unsigned used = 0;
	for (unsigned i = 0; h->newest != INT64_MIN && i < s->nslots; i++) {
		size_t k = slot_of(h->newest - i, s->nslots);
		used += s->kind == HIST_ZSCORE ? h->z[3 * k + 2] > 0 : !isnan(h->b[k]);
	}
	if (rc == 0)
		rc = kl_buf_put_u64(out, used);
	for (unsigned i = 0; rc == 0 && h->newest != INT64_MIN && i < s->nslots; i++) {
		size_t k = slot_of(h->newest - i, s->nslots);
		if (s->kind == HIST_ZSCORE) {
			if (h->z[3 * k + 2] <= 0)
				continue;
			rc = kl_buf_put_u64(out, i);
			for (int c = 0; c < 3 && rc == 0; c++)
				rc = kl_buf_put_f64(out, h->z[3 * k + c]);
		} else {
			if (isnan(h->b[k]))
				continue;
			rc = kl_buf_put_u64(out, i);
			if (rc == 0)
				rc = kl_buf_put_f64(out, h->b[k]);
		}
	}
	return rc;
}

int hist_decode(struct hist *h, const struct hist_shape *s, struct kl_rd *r)
{
	h->first_us = kl_rd_i64(r);
	h->newest = kl_rd_i64(r);
	h->last_minute = kl_rd_i64(r);
	unsigned used = (unsigned)kl_rd_count(r, s->nslots);
	if (r->bad || (used && h->newest == INT64_MIN) || !state_time_ok(h->first_us) ||
	    !state_time_ok(h->last_minute) ||
	    (h->newest != INT64_MIN && (h->newest > STATE_TIME_MAX / s->slot_us ||
					h->newest < -STATE_TIME_MAX / s->slot_us)))
		goto bad;
	for (unsigned n = 0; n < used; n++) {
		unsigned age = (unsigned)kl_rd_count(r, s->nslots - 1);
		size_t k = slot_of(h->newest - age, s->nslots);
		if (s->kind == HIST_ZSCORE) {
			for (int c = 0; c < 3; c++)
				h->z[3 * k + c] = kl_rd_f64(r);
			if (!(h->z[3 * k + 2] > 0) || !isfinite(h->z[3 * k]) || !isfinite(h->z[3 * k + 1]))
				goto bad;
		} else {
			h->b[k] = (float)kl_rd_f64(r);
		}
		if (r->bad)
			goto bad;
	}
	return 0;
bad:
	r->bad = true;
	return -EINVAL;
}

/* ---- values seen, for new() ----------------------------------------------- */

struct seen_entry {
	uint64_t key;
	int64_t last_us;
	uint32_t chain; /* next in the bucket, index + 1 (0: end) */
	uint32_t older; /* LRU neighbours, index + 1 */
	uint32_t newer;
};

struct seen {
	struct seen_entry *e;
	uint32_t *bucket; /* head index + 1 */
	uint32_t cap, nbuckets, n;
	uint32_t oldest, newest; /* index + 1 */
	int64_t first_us;	 /* the first value's time: the learning period's start */
	uint64_t forgotten;	 /* values dropped at the cap */
};

struct seen *seen_new(uint32_t cap)
{
	struct seen *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->cap = cap ? cap : 1;
	s->nbuckets = 16;
	while (s->nbuckets < s->cap)
		s->nbuckets <<= 1;
	s->e = calloc(s->cap, sizeof *s->e);
	s->bucket = calloc(s->nbuckets, sizeof *s->bucket);
	s->first_us = INT64_MIN;
	if (!s->e || !s->bucket) {
		seen_free(s);
		return NULL;
	}
	return s;
}

void seen_free(struct seen *s)
{
	if (!s)
		return;
	free(s->e);
	free(s->bucket);
	free(s);
}

static void lru_unlink(struct seen *s, uint32_t i)
{
	struct seen_entry *x = &s->e[i - 1];
	if (x->older)
		s->e[x->older - 1].newer = x->newer;
	else
		s->oldest = x->newer;
	if (x->newer)
		s->e[x->newer - 1].older = x->older;
	else
		s->newest = x->older;
	x->older = x->newer = 0;
}

static void lru_push(struct seen *s, uint32_t i)
{
	struct seen_entry *x = &s->e[i - 1];
	x->older = s->newest;
	x->newer = 0;
	if (s->newest)
		s->e[s->newest - 1].newer = i;
	else
		s->oldest = i;
	s->newest = i;
}

static uint32_t *chain_of(struct seen *s, uint64_t key)
{
	return &s->bucket[(key ^ (key >> 29)) & (s->nbuckets - 1)];
}

/* Forget the least recently seen value; its slot is returned. */
static uint32_t evict(struct seen *s)
{
	uint32_t i = s->oldest;
	lru_unlink(s, i);
	for (uint32_t *p = chain_of(s, s->e[i - 1].key); *p; p = &s->e[*p - 1].chain)
		if (*p == i) {
			*p = s->e[i - 1].chain;
			break;
		}
	s->forgotten++;
	return i;
}

static void insert(struct seen *s, uint64_t key, int64_t t)
{
	uint32_t i = s->n < s->cap ? ++s->n : evict(s);
	struct seen_entry *x = &s->e[i - 1];
	uint32_t *head = chain_of(s, key);
	x->key = key;
	x->last_us = t;
	x->chain = *head;
	*head = i;
	lru_push(s, i);
}

bool seen_check(struct seen *s, uint64_t key, int64_t t, int64_t span_us)
{
	if (s->first_us == INT64_MIN)
		s->first_us = t;
	bool learning = t - s->first_us < span_us / 2;
	for (uint32_t i = *chain_of(s, key); i; i = s->e[i - 1].chain) {
		struct seen_entry *x = &s->e[i - 1];
		if (x->key != key)
			continue;
		bool fresh = t - x->last_us > span_us; /* not seen within the last span */
		if (t > x->last_us)
			x->last_us = t;
		lru_unlink(s, i);
		lru_push(s, i);
		return fresh && !learning;
	}
	insert(s, key, t);
	return !learning;
}

uint64_t seen_forgotten(const struct seen *s)
{
	return s->forgotten;
}

size_t seen_memory(const struct seen *s)
{
	return sizeof *s + (size_t)s->cap * sizeof *s->e + (size_t)s->nbuckets * sizeof *s->bucket;
}

/* Oldest first, so decoding rebuilds the same LRU order. */
int seen_encode(const struct seen *s, struct kl_buf *out)
{
	int rc = kl_buf_put_i64(out, s->first_us);
	if (rc == 0)
		rc = kl_buf_put_u64(out, s->forgotten);
	if (rc == 0)
		rc = kl_buf_put_u64(out, s->n);
	for (uint32_t i = s->oldest; i && rc == 0; i = s->e[i - 1].newer) {
		rc = kl_buf_put_u64(out, s->e[i - 1].key);
		if (rc == 0)
			rc = kl_buf_put_i64(out, s->e[i - 1].last_us);
	}
	return rc;
}

int seen_decode(struct seen *s, struct kl_rd *r)
{
	int64_t first = kl_rd_i64(r);
	uint64_t forgotten = kl_rd_u64(r);
	uint32_t n = (uint32_t)kl_rd_count(r, UINT32_MAX);
	if (r->bad || !state_time_ok(first)) {
		r->bad = true;
		return -EINVAL;
	}
	for (uint32_t k = 0; k < n; k++) {
		uint64_t key = kl_rd_u64(r);
		int64_t t = kl_rd_i64(r);
		if (r->bad || t == INT64_MIN || !state_time_ok(t)) {
			r->bad = true;
			return -EINVAL;
		}
		insert(s, key, t); /* past the cap the oldest go first, as live */
	}
	s->first_us = first;
	s->forgotten += forgotten;
	return 0;
}
