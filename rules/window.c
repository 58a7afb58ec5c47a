/*
 * window.c — a rolling window as a ring of time buckets.
 *
 * Bucket b covers [b·width, (b+1)·width). The ring holds nb = nwin + 2
 * buckets: the nwin that make up the window ending now, plus a margin so an
 * event a little older than the newest one still finds its bucket. A slot is
 * recycled when a newer bucket number maps onto it; an event whose bucket has
 * already been recycled is late and refused (counted by the caller).
 *
 * Each bucket holds the expression's numeric cells (cell 0 counts every event),
 * one quantile sketch per quantile aggregate and one HyperLogLog per distinct().
 * Evaluation folds the live buckets; nothing is kept per event, so memory is
 * buckets × cells whatever the traffic.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rules/rules_int.h"

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static size_t slot_of(int64_t bucket, unsigned nb)
{
	int64_t m = bucket % (int64_t)nb;
	return (size_t)(m < 0 ? m + nb : m);
}

static void reset_cells(double *c, const struct expr *e)
{
	c[0] = 0;
	for (size_t i = 0; i < e->naggs; i++) {
		const struct agg *a = &e->aggs[i];
		double *x = c + a->cell;
		switch (a->kind) {
		case AGG_MIN:
			x[0] = INFINITY;
			break;
		case AGG_MAX:
			x[0] = -INFINITY;
			break;
		case AGG_LAST:
			x[0] = NAN;
			x[1] = -INFINITY;
			break;
		default:
			for (unsigned k = 0; k < a->ncells; k++)
				x[k] = 0;
		}
	}
}

int window_init(struct window *w, const struct window_shape *s)
{
	const struct expr *e = s->expr;
	memset(w, 0, sizeof *w);
	w->newest = INT64_MIN;
	w->floor = INT64_MIN;
	w->hot_start_us = INT64_MAX;
	w->epoch = malloc(s->nb * sizeof *w->epoch);
	w->cells = malloc((size_t)s->nb * e->ncells * sizeof *w->cells);
	if (e->nsketches) {
		w->sketches = calloc((size_t)s->nb * e->nsketches, sizeof *w->sketches);
		w->totals = calloc(e->nsketches, sizeof *w->totals);
	}
	if (e->nhlls)
		w->hlls = calloc((size_t)s->nb * e->nhlls, sizeof *w->hlls);
	if (!w->epoch || !w->cells || (e->nsketches && (!w->sketches || !w->totals)) ||
	    (e->nhlls && !w->hlls)) {
		free(w->totals);
		free(w->epoch);
		free(w->cells);
		free(w->sketches);
		free(w->hlls);
		memset(w, 0, sizeof *w);
		return -ENOMEM;
	}
	for (unsigned b = 0; b < s->nb; b++) {
		w->epoch[b] = INT64_MIN;
		reset_cells(w->cells + (size_t)b * e->ncells, e);
	}
	for (size_t i = 0; i < (size_t)s->nb * e->nsketches; i++)
		sketch_init(&w->sketches[i]);
	for (size_t i = 0; i < e->nsketches; i++)
		sketch_init(&w->totals[i]);
	for (size_t i = 0; i < (size_t)s->nb * e->nhlls; i++)
		hll_init(&w->hlls[i]);
	return 0;
}

void window_free(struct window *w, const struct window_shape *s)
{
	const struct expr *e = s->expr;
	for (size_t i = 0; w->sketches && i < (size_t)s->nb * e->nsketches; i++)
		sketch_free(&w->sketches[i]);
	for (size_t i = 0; w->totals && i < e->nsketches; i++)
		sketch_free(&w->totals[i]);
	for (size_t i = 0; w->hlls && i < (size_t)s->nb * e->nhlls; i++)
		hll_free(&w->hlls[i]);
	free(w->totals);
	free(w->epoch);
	free(w->cells);
	free(w->sketches);
	free(w->hlls);
	memset(w, 0, sizeof *w);
}

/* Take a bucket's sketches out of the running totals (if they are in). */
static void untotal(struct window *w, const struct window_shape *s, size_t slot)
{
	const struct expr *e = s->expr;
	if (!e->nsketches || w->epoch[slot] == INT64_MIN || w->epoch[slot] < w->floor)
		return;
	for (unsigned k = 0; k < e->nsketches; k++)
		if (sketch_subtract(&w->totals[k], &w->sketches[slot * e->nsketches + k]) < 0)
			w->totals_stale = true;
}

static void recycle(struct window *w, const struct window_shape *s, size_t slot, int64_t bucket)
{
	const struct expr *e = s->expr;
	untotal(w, s, slot);
	w->epoch[slot] = bucket;
	reset_cells(w->cells + slot * e->ncells, e);
	for (unsigned k = 0; k < e->nsketches; k++)
		sketch_reset(&w->sketches[slot * e->nsketches + k]);
	for (unsigned k = 0; k < e->nhlls; k++)
		hll_reset(&w->hlls[slot * e->nhlls + k]);
}

/* A distinct() value: the field's text (numbers too, as written). */
static uint64_t value_hash(const struct parser_event *ev, int field)
{
	struct kl_str v = ev->raw[field];
	return hll_hash(v.p ? v.p : "", v.p ? v.len : 0);
}

/* new(): the event's value, keyed with its group, checked against the
 * rule's seen table. */
static bool is_new(const struct agg *a, size_t i, struct parser_event *ev,
		   const struct newctx *nc)
{
	struct kl_str v = ev->raw[a->field];
	if (!nc || !nc->seen[i] || !v.p)
		return false;
	uint64_t key = hll_hash(v.p, v.len) ^ (nc->group_key * 0x9e3779b97f4a7c15ULL);
	return seen_check(nc->seen[i], key, ev->time_us, a->span_us);
}

static void add_to(double *c, struct sketch *sk, struct sketch *totals, bool *stale,
		   struct hll *hl, const struct expr *e, struct parser_event *ev,
		   pcre2_match_data *md, const struct newctx *nc)
{
	c[0] += 1;
	for (size_t i = 0; i < e->naggs; i++) {
		const struct agg *a = &e->aggs[i];
		double *x = c + a->cell;
		if (a->kind == AGG_RATIO) {
			bool in_base = !a->base || filt_match(a->base, ev, md);
			if (in_base) {
				x[1] += 1;
				if (filt_match(a->filter, ev, md))
					x[0] += 1;
			}
			continue;
		}
		if (a->filter && !filt_match(a->filter, ev, md))
			continue;
		double v;
		switch (a->kind) {
		case AGG_COUNT:
		case AGG_RATE:
			x[0] += 1;
			break;
		case AGG_DISTINCT:
			if (ev->raw[a->field].p)
				hll_add_hash(&hl[a->sketch], value_hash(ev, a->field));
			break;
		case AGG_NEW:
			if (is_new(a, i, ev, nc))
				x[0] += 1;
			break;
		default:
			if (parser_event_number(ev, (unsigned)a->field, &v) < 0)
				break;
			switch (a->kind) {
			case AGG_SUM:
			case AGG_AVG:
				x[0] += v;
				x[1] += 1;
				break;
			case AGG_MIN:
				if (v < x[0])
					x[0] = v;
				break;
			case AGG_MAX:
				if (v > x[0])
					x[0] = v;
				break;
			case AGG_LAST:
				if ((double)ev->time_us >= x[1]) {
					x[0] = v;
					x[1] = (double)ev->time_us;
				}
				break;
			case AGG_QUANTILE:
				/* A total that missed a value no longer matches
				 * its buckets: mark it for a rebuild. */
				if (sketch_add(&sk[a->sketch], v) == 0 && totals &&
				    sketch_add(&totals[a->sketch], v) < 0)
					*stale = true;
				break;
			default:
				break;
			}
		}
	}
}

int window_add(struct window *w, const struct window_shape *s, struct parser_event *ev,
	       pcre2_match_data *md, const struct newctx *nc)
{
	const struct expr *e = s->expr;
	if (ev->time_us >= w->hot_start_us && ev->time_us - w->hot_start_us < s->width_us) {
		size_t hot = w->hot_slot;
		add_to(w->cells + hot * e->ncells, w->sketches ? w->sketches + hot * e->nsketches : NULL,
		       w->epoch[hot] >= w->floor ? w->totals : NULL, &w->totals_stale,
		       w->hlls ? w->hlls + hot * e->nhlls : NULL, e, ev, md, nc);
		return 0;
	}
	int64_t bucket = floor_div(ev->time_us, s->width_us);
	if (w->newest != INT64_MIN && bucket <= w->newest - (int64_t)s->nb)
		return -ERANGE;
	size_t slot = slot_of(bucket, s->nb);
	if (w->epoch[slot] != bucket) {
		if (w->epoch[slot] != INT64_MIN && w->epoch[slot] > bucket)
			return -ERANGE;
		recycle(w, s, slot, bucket);
	}
	if (bucket > w->newest)
		w->newest = bucket;
	w->hot_start_us = bucket * s->width_us;
	w->hot_slot = slot;
	add_to(w->cells + slot * e->ncells, w->sketches ? w->sketches + slot * e->nsketches : NULL,
	       bucket >= w->floor ? w->totals : NULL, &w->totals_stale,
	       w->hlls ? w->hlls + slot * e->nhlls : NULL, e, ev, md, nc);
	return 0;
}

/* The slots of the buckets inside the window ending at now, at most nwin
 * (≤ 60, see shape_of in rules.c). */
static size_t live_slots(const struct window *w, const struct window_shape *s, int64_t now,
			 size_t out[static 64])
{
	size_t n = 0;
	int64_t cur = floor_div(now, s->width_us);
	for (int64_t b = cur - (int64_t)s->nwin + 1; b <= cur && n < 64; b++) {
		size_t slot = slot_of(b, s->nb);
		if (w->epoch[slot] == b)
			out[n++] = slot;
	}
	return n;
}

double window_events(const struct window *w, const struct window_shape *s, int64_t now)
{
	size_t slots[64];
	size_t n = live_slots(w, s, now, slots);
	double events = 0;
	for (size_t i = 0; i < n; i++)
		events += w->cells[slots[i] * s->expr->ncells];
	return w->remote ? events + window_events(w->remote, s, now) : events;
}

/* Subtract from the totals every bucket that has left the window ending at now. */
static void advance_floor(struct window *w, const struct window_shape *s, int64_t now)
{
	int64_t lo = floor_div(now, s->width_us) - (int64_t)s->nwin + 1;
	if (lo <= w->floor)
		return;
	for (size_t slot = 0; slot < s->nb; slot++)
		if (w->epoch[slot] != INT64_MIN && w->epoch[slot] >= w->floor && w->epoch[slot] < lo)
			untotal(w, s, slot);
	w->floor = lo;
}

/* Recompute the totals from the buckets they stand for (after a failure). */
static void rebuild_totals(struct window *w, const struct window_shape *s)
{
	const struct expr *e = s->expr;
	bool ok = true;
	for (unsigned k = 0; k < e->nsketches; k++) {
		sketch_reset(&w->totals[k]);
		for (size_t slot = 0; slot < s->nb; slot++)
			if (w->epoch[slot] != INT64_MIN && w->epoch[slot] >= w->floor)
				ok &= sketch_merge(&w->totals[k],
						   &w->sketches[slot * e->nsketches + k]) == 0;
	}
	w->totals_stale = !ok;
}

/* Fold aggregate a over w's buckets in the window ending at now into x0/x1
 * (and the scratch sketch/hll). */
static void fold(const struct window *w, const struct window_shape *s, const struct agg *a,
		 int64_t now, double *px0, double *px1, struct sketch *sk, struct hll *hl)
{
	const struct expr *e = s->expr;
	double x0 = *px0, x1 = *px1;
	size_t slots[64];
	size_t nlive = live_slots(w, s, now, slots);
	for (size_t k = 0; k < nlive; k++) {
		size_t slot = slots[k];
		const double *c = w->cells + slot * e->ncells + a->cell;
		switch (a->kind) {
		case AGG_MIN:
			x0 = c[0] < x0 ? c[0] : x0;
			break;
		case AGG_MAX:
			x0 = c[0] > x0 ? c[0] : x0;
			break;
		case AGG_LAST:
			if (c[1] > x1) {
				x0 = c[0];
				x1 = c[1];
			}
			break;
		case AGG_QUANTILE:
			sketch_merge(sk, &w->sketches[slot * e->nsketches + (unsigned)a->sketch]);
			break;
		case AGG_DISTINCT:
			hll_merge(hl, &w->hlls[slot * e->nhlls + (unsigned)a->sketch]);
			break;
		default:
			x0 += c[0];
			if (a->ncells > 1)
				x1 += c[1];
		}
	}
	*px0 = x0;
	*px1 = x1;
}

double window_agg(struct window *w, const struct window_shape *s, unsigned i, int64_t now,
		  struct sketch *sk, struct hll *hl)
{
	const struct expr *e = s->expr;
	const struct agg *a = &e->aggs[i];
	double x0 = 0, x1 = 0;
	switch (a->kind) {
	case AGG_MIN:
		x0 = INFINITY;
		break;
	case AGG_MAX:
		x0 = -INFINITY;
		break;
	case AGG_LAST:
		x0 = NAN;
		x1 = -INFINITY;
		break;
	case AGG_QUANTILE:
		advance_floor(w, s, now);
		if (w->totals_stale)
			rebuild_totals(w, s);
		/* The totals also hold buckets newer than now's (events ahead of
		 * the evaluation clock); then merge the window's buckets instead. */
		if (!w->totals_stale && w->newest <= floor_div(now, s->width_us) && !w->remote)
			return sketch_quantile(&w->totals[a->sketch], a->q);
		sketch_reset(sk);
		break;
	case AGG_DISTINCT:
		hll_reset(hl);
		break;
	default:
		break;
	}
	/* The local buckets, then (shared windows) the other replicas'. */
	for (const struct window *f = w; f; f = f == w ? w->remote : NULL)
		fold(f, s, a, now, &x0, &x1, sk, hl);
	double secs = (double)s->width_us * s->nwin / 1e6;
	switch (a->kind) {
	case AGG_COUNT:
	case AGG_SUM:
	case AGG_NEW:
		return x0;
	case AGG_RATE:
		return x0 / secs;
	case AGG_RATIO:
	case AGG_AVG:
		return x1 > 0 ? x0 / x1 : NAN;
	case AGG_MIN:
	case AGG_MAX:
		return isinf(x0) ? NAN : x0;
	case AGG_LAST:
		return x0;
	case AGG_QUANTILE:
		return sketch_quantile(sk, a->q);
	case AGG_DISTINCT:
		return hll_estimate(hl);
	default:
		break;
	}
	return NAN;
}

/* ---- saved state ------------------------------------------------------------ */

/*
 * A window is saved as its newest bucket number and its written buckets:
 * bucket number, the cells, then the sketches and hlls. The running totals are
 * not saved: they are rebuilt from the buckets at the first quantile read.
 */
/* One bucket's contents: its cells, then its sketches, then its HLLs. */
static int encode_slot(const struct window *w, const struct expr *e, size_t slot,
		       struct kl_buf *out)
{
	int rc = 0;
	for (unsigned c = 0; c < e->ncells && rc == 0; c++)
		rc = kl_buf_put_f64(out, w->cells[slot * e->ncells + c]);
	for (unsigned k = 0; k < e->nsketches && rc == 0; k++)
		rc = sketch_encode(&w->sketches[slot * e->nsketches + k], out);
	for (unsigned k = 0; k < e->nhlls && rc == 0; k++)
		rc = hll_encode(&w->hlls[slot * e->nhlls + k], out);
	return rc;
}

int window_encode(const struct window *w, const struct window_shape *s, struct kl_buf *out)
{
	const struct expr *e = s->expr;
	unsigned used = 0;
	for (unsigned b = 0; b < s->nb; b++)
		used += w->epoch[b] != INT64_MIN;
	int rc = kl_buf_put_i64(out, w->newest);
	if (rc == 0)
		rc = kl_buf_put_u64(out, used);
	for (size_t b = 0; b < s->nb && rc == 0; b++) {
		if (w->epoch[b] == INT64_MIN)
			continue;
		rc = kl_buf_put_i64(out, w->epoch[b]);
		if (rc == 0)
			rc = encode_slot(w, e, b, out);
	}
	return rc;
}

int window_decode(struct window *w, const struct window_shape *s, struct kl_rd *r)
{
	const struct expr *e = s->expr;
	int64_t newest = kl_rd_i64(r);
	unsigned used = (unsigned)kl_rd_count(r, s->nb);
	int rc = 0;
	if (r->bad || (used && newest == INT64_MIN) || (!used && newest != INT64_MIN) ||
	    (newest != INT64_MIN && (newest > INT64_MAX / s->width_us ||
				     newest < -(INT64_MAX / s->width_us))))
		goto bad;
	for (unsigned i = 0; i < used; i++) {
		int64_t bucket = kl_rd_i64(r);
		/* A slot no newer bucket recycled may hold one older than the ring's
		 * span: it still counts for a clock behind the newest event. */
		if (r->bad || bucket > newest || bucket == INT64_MIN)
			goto bad;
		size_t b = slot_of(bucket, s->nb);
		if (w->epoch[b] != INT64_MIN)
			goto bad; /* two buckets in one slot */
		w->epoch[b] = bucket;
		for (unsigned c = 0; c < e->ncells; c++)
			w->cells[b * e->ncells + c] = kl_rd_f64(r);
		for (unsigned k = 0; k < e->nsketches && rc == 0; k++)
			rc = sketch_decode(&w->sketches[b * e->nsketches + k], r);
		for (unsigned k = 0; k < e->nhlls && rc == 0; k++)
			rc = hll_decode(&w->hlls[b * e->nhlls + k], r);
		if (rc == -ENOMEM)
			return rc;
		if (rc < 0 || r->bad)
			goto bad;
	}
	w->newest = newest;
	w->floor = INT64_MIN;
	w->totals_stale = e->nsketches > 0;
	w->hot_start_us = INT64_MAX;
	return 0;
bad:
	r->bad = true;
	return -EINVAL;
}

/* ---- shared windows: one bucket at a time -------------------------------------- */

#define BUCKET_MAGIC 0x6b6c62 /* "klb": a bucket snapshot, version 1 */

int window_bucket_encode(const struct window *w, const struct window_shape *s, int64_t bucket,
			 struct kl_buf *out)
{
	const struct expr *e = s->expr;
	size_t slot = slot_of(bucket, s->nb);
	if (w->epoch[slot] != bucket)
		return -ENOENT;
	size_t mark = out->len;
	int rc = kl_buf_put_u64(out, BUCKET_MAGIC);
	if (rc == 0)
		rc = kl_buf_put_i64(out, s->width_us);
	if (rc == 0)
		rc = kl_buf_put_u64(out, e->ncells);
	if (rc == 0)
		rc = kl_buf_put_u64(out, e->nsketches);
	if (rc == 0)
		rc = kl_buf_put_u64(out, e->nhlls);
	if (rc == 0)
		rc = encode_slot(w, e, slot, out);
	if (rc < 0)
		out->len = mark;
	return rc;
}

int window_bucket_clear(struct window *w, const struct window_shape *s, int64_t bucket)
{
	const struct expr *e = s->expr;
	size_t slot = slot_of(bucket, s->nb);
	if (w->epoch[slot] != INT64_MIN && w->epoch[slot] > bucket)
		return -ERANGE;
	/* Not recycle(): a remote window has no running totals to keep. */
	w->epoch[slot] = bucket;
	reset_cells(w->cells + slot * e->ncells, e);
	for (unsigned k = 0; k < e->nsketches; k++)
		sketch_reset(&w->sketches[slot * e->nsketches + k]);
	for (unsigned k = 0; k < e->nhlls; k++)
		hll_reset(&w->hlls[slot * e->nhlls + k]);
	if (bucket > w->newest)
		w->newest = bucket;
	return 0;
}

/* dst (a bucket's cells) combined with src, aggregate by aggregate. */
static void merge_cells(double *dst, const double *src, const struct expr *e)
{
	dst[0] += src[0];
	for (size_t i = 0; i < e->naggs; i++) {
		const struct agg *a = &e->aggs[i];
		double *x = dst + a->cell;
		const double *y = src + a->cell;
		switch (a->kind) {
		case AGG_MIN:
			x[0] = y[0] < x[0] ? y[0] : x[0];
			break;
		case AGG_MAX:
			x[0] = y[0] > x[0] ? y[0] : x[0];
			break;
		case AGG_LAST:
			if (y[1] > x[1]) {
				x[0] = y[0];
				x[1] = y[1];
			}
			break;
		default:
			for (unsigned k = 0; k < a->ncells; k++)
				x[k] += y[k];
		}
	}
}

int window_bucket_merge(struct window *w, const struct window_shape *s, int64_t bucket,
			const char *data, size_t len)
{
	const struct expr *e = s->expr;
	size_t slot = slot_of(bucket, s->nb);
	struct kl_rd r = kl_rd_of(data, len);
	if (w->epoch[slot] != bucket || kl_rd_u64(&r) != BUCKET_MAGIC ||
	    kl_rd_i64(&r) != s->width_us || kl_rd_u64(&r) != e->ncells ||
	    kl_rd_u64(&r) != e->nsketches || kl_rd_u64(&r) != e->nhlls || r.bad)
		return -EINVAL;
	/* Decoded apart first, so a bad snapshot leaves w as it was. Once per
	 * remote field and bucket (a sync a second), never per event. */
	double *cells = calloc(e->ncells ? e->ncells : 1, sizeof *cells);
	struct sketch *sk = calloc(e->nsketches ? e->nsketches : 1, sizeof *sk);
	struct hll *hl = calloc(e->nhlls ? e->nhlls : 1, sizeof *hl);
	int rc = !cells || !sk || !hl ? -ENOMEM : 0;
	for (unsigned c = 0; c < e->ncells && rc == 0; c++)
		cells[c] = kl_rd_f64(&r);
	if (rc == 0 && r.bad)
		rc = -EINVAL;
	for (unsigned k = 0; k < e->nsketches && rc == 0; k++)
		rc = sketch_decode(&sk[k], &r);
	for (unsigned k = 0; k < e->nhlls && rc == 0; k++)
		rc = hll_decode(&hl[k], &r);
	if (rc == 0 && !kl_rd_done(&r))
		rc = -EINVAL;
	/* Sketches and hlls first: they can fail for memory, the cells cannot. */
	for (unsigned k = 0; k < e->nsketches && rc == 0; k++)
		rc = sketch_merge(&w->sketches[slot * e->nsketches + k], &sk[k]);
	for (unsigned k = 0; k < e->nhlls && rc == 0; k++)
		rc = hll_merge(&w->hlls[slot * e->nhlls + k], &hl[k]);
	if (rc == 0)
		merge_cells(w->cells + slot * e->ncells, cells, e);
	for (unsigned k = 0; sk && k < e->nsketches; k++)
		sketch_free(&sk[k]);
	for (unsigned k = 0; hl && k < e->nhlls; k++)
		hll_free(&hl[k]);
	free(cells);
	free(sk);
	free(hl);
	return rc;
}
