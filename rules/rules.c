/*
 * rules.c — rule files, groups, evaluation and the alert state machine.
 *
 * Invariants:
 *  - A rule reads time only from the `now` it is given; run and replay differ
 *    only in where `now` comes from.
 *  - Per rule, groups (one per `by` value combination) are capped at
 *    max_groups; an event of a new group past the cap is counted and dropped.
 *    A group whose window is empty and whose alert is inactive is forgotten at
 *    evaluation, so the cap bounds live groups, not groups ever seen.
 *  - "No verdict" (fewer than min_events in the window) changes nothing: a
 *    pending alert stays pending, a firing one keeps firing.
 *  - A value that is undefined (NaN: a ratio over no events, a quantile of
 *    nothing) makes its comparison false.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zlib.h>

#include "common/kl_yaml.h"
#include "rules/rules_int.h"

#define DEFAULT_WINDOW_US (5 * 60 * 1000000LL)
#define DEFAULT_MAX_GROUPS 100
#define MAX_MAX_GROUPS 100000
#define BUCKETS_PER_WINDOW 60
#define SEEN_CAP 10000 /* values a new() call remembers per rule */

/* ---- groups ----------------------------------------------------------------- */

static uint64_t hash_bytes(uint64_t h, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static uint64_t group_hash(const struct rule *r, const struct parser_event *ev)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < r->nby; i++) {
		struct kl_str v = ev->raw[r->by[i]];
		h = hash_bytes(h, v.p ? v.p : "", v.p ? v.len : 0);
		h = hash_bytes(h, "\x1f", 1);
	}
	return h;
}

static bool group_matches(const struct rule *r, const struct group *g, const struct parser_event *ev)
{
	for (size_t i = 0; i < r->nby; i++) {
		struct kl_str v = ev->raw[r->by[i]];
		size_t len = v.p ? v.len : 0;
		if (g->vals[i].len != len || (len && memcmp(g->vals[i].p, v.p, len)))
			return false;
	}
	return true;
}

static void index_rebuild(struct rule *r)
{
	memset(r->index, 0, (r->index_mask + 1) * sizeof *r->index);
	for (size_t i = 0; i < r->ngroups; i++) {
		size_t slot = r->groups[i].hash & r->index_mask;
		while (r->index[slot])
			slot = (slot + 1) & r->index_mask;
		r->index[slot] = (int32_t)i + 1;
	}
}

static void hists_free(struct rule *r, struct group *g)
{
	for (size_t i = 0; g->hists && i < r->expr.nhists; i++)
		hist_free(&g->hists[i]);
	free(g->hists);
	g->hists = NULL;
}

static bool hists_init(struct rule *r, struct group *g)
{
	if (!r->expr.nhists)
		return true;
	g->hists = calloc(r->expr.nhists, sizeof *g->hists);
	if (!g->hists)
		return false;
	for (size_t i = 0; i < r->expr.nhists; i++)
		if (hist_init(&g->hists[i], &r->expr.hists[i]) < 0) {
			hists_free(r, g);
			return false;
		}
	return true;
}

void group_release(struct rule *r, struct group *g)
{
	hists_free(r, g);
	if (g->remote) {
		window_free(g->remote, &r->shape);
		free(g->remote);
		g->remote = NULL;
	}
	window_free(&g->w, &r->shape);
	for (size_t i = 0; i < r->nby; i++)
		free((void *)g->vals[i].p);
	free(g->vals);
}

static struct group *group_create(struct rule *r, const struct parser_event *ev, uint64_t h)
{
	struct group *g = &r->groups[r->ngroups];
	memset(g, 0, sizeof *g);
	g->hash = h;
	g->false_since_us = -1;
	g->pub_lo = INT64_MAX;
	g->pub_hi = INT64_MIN;
	g->pub_hot = INT64_MAX;
	if (r->nby) {
		g->vals = calloc(r->nby, sizeof *g->vals);
		if (!g->vals)
			return NULL;
		for (size_t i = 0; i < r->nby; i++) {
			struct kl_str v = ev ? ev->raw[r->by[i]] : (struct kl_str){ NULL, 0 };
			char *c = kl_strndup(v.p ? v.p : "", v.p ? v.len : 0);
			if (!c)
				goto fail;
			g->vals[i] = (struct kl_str){ c, v.p ? v.len : 0 };
		}
	}
	if (window_init(&g->w, &r->shape) < 0)
		goto fail;
	if (!hists_init(r, g)) {
		window_free(&g->w, &r->shape);
		goto fail;
	}
	r->ngroups++;
	return g;
fail:
	for (size_t i = 0; g->vals && i < r->nby; i++)
		free((void *)g->vals[i].p);
	free(g->vals);
	return NULL;
}

/* The group an event belongs to, created if new; NULL past the cap. */
static struct group *group_of(struct rules_set *rs, struct rule *r, const struct parser_event *ev)
{
	if (!r->nby)
		return &r->groups[0];
	uint64_t h = group_hash(r, ev);
	size_t slot = h & r->index_mask;
	for (int32_t gi; (gi = r->index[slot]); slot = (slot + 1) & r->index_mask) {
		struct group *g = &r->groups[gi - 1];
		if (g->hash == h && group_matches(r, g, ev))
			return g;
	}
	if (r->ngroups >= r->max_groups) {
		rs->stats.groups_dropped++;
		r->dropped++;
		return NULL;
	}
	struct group *g = group_create(r, ev, h);
	if (!g) {
		rs->stats.groups_dropped++;
		return NULL;
	}
	r->index[slot] = (int32_t)r->ngroups;
	return g;
}

/* The group of the given by-values (rule r's nby of them), created if new;
 * NULL past the cap or out of memory. For shared windows: another replica's
 * group this one has not seen yet. */
struct group *group_of_values(struct rules_set *rs, struct rule *r, const struct kl_str *vals)
{
	if (!r->nby)
		return &r->groups[0];
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < r->nby; i++)
		h = hash_bytes(hash_bytes(h, vals[i].p, vals[i].len), "\x1f", 1);
	size_t slot = h & r->index_mask;
	for (int32_t gi; (gi = r->index[slot]); slot = (slot + 1) & r->index_mask) {
		struct group *g = &r->groups[gi - 1];
		bool same = g->hash == h;
		for (size_t i = 0; same && i < r->nby; i++)
			same = g->vals[i].len == vals[i].len &&
			       !memcmp(g->vals[i].p, vals[i].p, vals[i].len);
		if (same)
			return g;
	}
	if (r->ngroups >= r->max_groups) {
		rs->stats.groups_dropped++;
		r->dropped++;
		return NULL;
	}
	struct group *g = group_create(r, NULL, h);
	if (!g)
		return NULL;
	for (size_t i = 0; i < r->nby; i++) {
		char *c = kl_strndup(vals[i].p, vals[i].len);
		if (!c) { /* keep the group with "" for this value: it is counted once */
			rs->stats.groups_dropped++;
			continue;
		}
		free((void *)g->vals[i].p);
		g->vals[i] = (struct kl_str){ c, vals[i].len };
	}
	r->index[slot] = (int32_t)r->ngroups;
	return g;
}

/* ---- feeding ---------------------------------------------------------------- */

void rules_feed(struct rules_set *rs, unsigned source_idx, struct parser_event *ev)
{
	if (source_idx >= rs->nsources)
		return;
	rs->stats.events++;
	rs->generation++;
	for (size_t k = 0; k < rs->nby_source[source_idx]; k++) {
		struct rule *r = &rs->rules[rs->by_source[source_idx][k]];
		struct group *g = group_of(rs, r, ev);
		if (!g)
			continue;
		struct newctx nc = { r->seen, g->hash };
		if (window_add(&g->w, &r->shape, ev, rs->md, r->expr.nnew ? &nc : NULL) < 0)
			rs->stats.late_events++;
		else if (r->sh)
			shared_mark(g);
		r->dirty = true;
		if (ev->read_us > r->fed_read_us)
			r->fed_read_us = ev->read_us;
	}
}

/* ---- evaluation ------------------------------------------------------------- */

struct evalctx {
	struct rules_set *rs;
	const struct rule *r;
	struct group *g;
	int64_t now;
	bool *no_verdict; /* set when an anomaly function cannot judge yet */
};

static double eval_num(const struct evalctx *c, const struct node *n)
{
	double a, b;
	switch (n->kind) {
	case N_NUM:
		return n->num;
	case N_AGG:
		return window_agg(&c->g->w, &c->r->shape, n->agg, c->now, &c->rs->sk_scratch,
				  &c->rs->hll_scratch);
	case N_ZSCORE:
	case N_BASELINE: {
		struct hist *h = &c->g->hists[n->hist];
		const struct hist_shape *hs = &c->r->expr.hists[n->hist];
		a = eval_num(c, n->a);
		b = n->kind == N_ZSCORE ? hist_zscore(h, hs, c->now, a) : hist_baseline(h, hs, c->now, a);
		if (isnan(b) && c->no_verdict)
			*c->no_verdict = true;
		return b;
	}
	case N_NEG:
		return -eval_num(c, n->a);
	case N_ADD:
		return eval_num(c, n->a) + eval_num(c, n->b);
	case N_SUB:
		return eval_num(c, n->a) - eval_num(c, n->b);
	case N_MUL:
		return eval_num(c, n->a) * eval_num(c, n->b);
	case N_DIV:
		a = eval_num(c, n->a);
		b = eval_num(c, n->b);
		return b == 0 ? NAN : a / b;
	default:
		return NAN;
	}
}

static bool eval_bool(const struct evalctx *c, const struct node *n)
{
	double a, b;
	switch (n->kind) {
	case N_AND:
		return eval_bool(c, n->a) && eval_bool(c, n->b);
	case N_OR:
		return eval_bool(c, n->a) || eval_bool(c, n->b);
	case N_NOT:
		return !eval_bool(c, n->a);
	case N_CMP:
		a = eval_num(c, n->a);
		b = eval_num(c, n->b);
		if (isnan(a) || isnan(b))
			return false;
		switch (n->op) {
		case OP_EQ: return a == b;
		case OP_NE: return a != b;
		case OP_LT: return a < b;
		case OP_LE: return a <= b;
		case OP_GT: return a > b;
		default: return a >= b;
		}
	default:
		return false;
	}
}

/* The value an alert reports: the left-hand side of the first comparison. */
static const struct node *value_node_of(const struct node *n)
{
	while (n && n->kind != N_CMP)
		n = n->a;
	return n ? n->a : NULL;
}

static void fmt_value(struct kl_buf *b, double v)
{
	if (isnan(v))
		kl_buf_append_str(b, "n/a");
	else
		kl_buf_appendf(b, "%.4g", v);
}

/*
 * Render one annotation template. Placeholders: {{ value }}, {{ value | pct }},
 * {{ value | duration }}, {{ window }}, {{ source }}, {{ alert }},
 * {{ labels.NAME }}. With t == NULL it only validates, returning the offset of
 * the first bad placeholder or -1.
 */
struct tmplctx {
	const struct rules_set *rs;
	const struct rule *r;
	const struct rules_label *labels;
	size_t nlabels;
	double value;
	const struct group *g; /* NULL when only validating */
};

/* {{ zscore }} and {{ baseline }}: from the rule's first zscore/baseline, as
 * the evaluation just computed it (the mean for a zscore's baseline). */
static bool render_anomaly(struct kl_buf *out, const struct tmplctx *t, bool zscore)
{
	if (!t->r->expr.nhists)
		return false;
	if (!out)
		return true;
	const struct hist *h = t->g ? &t->g->hists[0] : NULL;
	bool is_z = t->r->expr.hists[0].kind == HIST_ZSCORE;
	double v = !h ? NAN : zscore ? (is_z ? h->last_score : NAN) : h->last_ref;
	if (isnan(v))
		kl_buf_append_str(out, "n/a");
	else
		kl_buf_appendf(out, zscore ? "%.2f" : "%.4g", v);
	return true;
}

static bool span_is(const char *p, size_t n, const char *word)
{
	return strlen(word) == n && !memcmp(p, word, n);
}

static void trim(const char **p, size_t *n)
{
	while (*n && (**p == ' ' || **p == '\t')) {
		(*p)++;
		(*n)--;
	}
	while (*n && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t'))
		(*n)--;
}

/* A minute or more, to the second, as an SRE reads it: 95 s is "1m35s",
 * 93900 s is "1d2h5m". */
static void append_long_duration(struct kl_buf *out, double seconds)
{
	char d[32];
	kl_format_duration((int64_t)llround(seconds) * 1000000, d);
	kl_buf_append_str(out, d);
}

static bool render_one(struct kl_buf *out, const char *p, size_t n, const struct tmplctx *t)
{
	const char *filter = memchr(p, '|', n);
	size_t nlen = filter ? (size_t)(filter - p) : n;
	const char *f = filter ? filter + 1 : NULL;
	size_t flen = filter ? n - nlen - 1 : 0;
	trim(&p, &nlen);
	if (f)
		trim(&f, &flen);
	if (span_is(p, nlen, "value")) {
		if (!f) {
			if (out)
				fmt_value(out, t->value);
			return true;
		}
		if (span_is(f, flen, "pct")) {
			if (out) {
				if (isnan(t->value))
					kl_buf_append_str(out, "n/a");
				else
					kl_buf_appendf(out, "%.2f%%", t->value * 100);
			}
			return true;
		}
		if (span_is(f, flen, "duration")) {
			if (out) {
				if (isnan(t->value))
					kl_buf_append_str(out, "n/a");
				else if (t->value < 1)
					kl_buf_appendf(out, "%.0fms", t->value * 1000);
				else if (t->value < 60 || t->value > 1e12)
					kl_buf_appendf(out, "%.2fs", t->value);
				else
					append_long_duration(out, t->value);
			}
			return true;
		}
		return false;
	}
	if (f)
		return false;
	if (span_is(p, nlen, "zscore") || span_is(p, nlen, "baseline"))
		return render_anomaly(out, t, span_is(p, nlen, "zscore"));
	if (span_is(p, nlen, "window")) {
		if (out) {
			char d[32];
			kl_format_duration(t->r->window_us, d);
			kl_buf_append_str(out, d);
		}
		return true;
	}
	if (span_is(p, nlen, "source")) {
		if (out)
			kl_buf_append_str(out, t->rs->sources[t->r->source].name);
		return true;
	}
	if (span_is(p, nlen, "alert")) {
		if (out)
			kl_buf_append_str(out, t->r->alert);
		return true;
	}
	if (nlen > 7 && !memcmp(p, "labels.", 7)) {
		const char *key = p + 7;
		size_t klen = nlen - 7;
		bool known = false;
		for (size_t i = 0; i < t->r->nlabels; i++)
			known |= span_is(key, klen, t->r->labels[i].key);
		for (size_t i = 0; i < t->r->nby; i++)
			known |= span_is(key, klen, t->r->by_names[i]);
		known |= span_is(key, klen, "source");
		if (!known)
			return false;
		for (size_t i = 0; out && i < t->nlabels; i++)
			if (span_is(key, klen, t->labels[i].key))
				kl_buf_append_str(out, t->labels[i].value);
		return true;
	}
	return false;
}

static long render(struct kl_buf *out, const char *tmpl, const struct tmplctx *t)
{
	const char *s = tmpl;
	for (;;) {
		const char *open = strstr(s, "{{");
		if (!open) {
			if (out)
				kl_buf_append_str(out, s);
			return -1;
		}
		if (out)
			kl_buf_append(out, s, (size_t)(open - s));
		const char *close = strstr(open + 2, "}}");
		if (!close)
			return open - tmpl;
		if (!render_one(out, open + 2, (size_t)(close - open - 2), t))
			return open - tmpl;
		s = close + 2;
	}
}

static void emit(struct rules_set *rs, const struct rule *r, const struct group *g,
		 enum rules_status st, int64_t now, double value, rules_transition_fn fn, void *ctx,
		 bool restored)
{
	size_t nl = 0;
	rs->out_labels[nl++] = (struct rules_label){ "source", rs->sources[r->source].name };
	for (size_t i = 0; i < r->nlabels; i++)
		rs->out_labels[nl++] = r->labels[i];
	for (size_t i = 0; i < r->nby; i++)
		rs->out_labels[nl++] = (struct rules_label){ r->by_names[i], g->vals[i].p };

	struct tmplctx t = { rs, r, rs->out_labels, nl, value, g };
	/* Render every annotation into one buffer, then point into it (the
	 * buffer may move while it grows, so offsets first). */
	size_t offs[64];
	size_t na = r->nannotations < 64 ? r->nannotations : 64;
	kl_buf_reset(&rs->render);
	for (size_t i = 0; i < na; i++) {
		offs[i] = rs->render.len;
		render(&rs->render, r->annotations[i].value, &t);
		kl_buf_append(&rs->render, "", 1);
	}
	for (size_t i = 0; i < na; i++)
		rs->out_ann[i] = (struct rules_label){ r->annotations[i].key,
						       rs->render.p ? rs->render.p + offs[i] : "" };

	struct rules_transition tr = {
		.at_us = now,
		.status = st,
		.alert = r->alert,
		.labels = rs->out_labels,
		.nlabels = nl,
		.annotations = rs->out_ann,
		.nannotations = na,
		.value = value,
		.started_us = g->since_us,
		.window_us = r->window_us,
		.restored = restored,
		.read_us = restored ? 0 : r->fed_read_us,
	};
	if (!restored)
		rs->stats.transitions++;
	if (fn)
		fn(ctx, &tr);
}

/*
 * Once a minute, each zscore/baseline history takes its value's sample (at
 * every evaluation, min_events or not: the quiet hours are part of normal).
 */
static void sample_histories(const struct evalctx *c)
{
	for (unsigned i = 0; i < c->r->expr.nhists; i++) {
		struct hist *h = &c->g->hists[i];
		const struct hist_shape *hs = &c->r->expr.hists[i];
		if (hist_sample_due(h, c->now)) {
			hist_sample(h, hs, c->now, eval_num(c, hs->node->a));
			c->rs->generation++;
		}
	}
}

/* Advance one group's alert state; true if the group can be forgotten. */
static bool step_state(struct rules_set *rs, struct rule *r, struct group *g, int64_t now,
		       rules_transition_fn fn, void *ctx)
{
	bool no_verdict = false;
	struct evalctx c = { rs, r, g, now, &no_verdict };
	sample_histories(&c);
	double events = window_events(&g->w, &r->shape, now);
	if (r->min_events && events < (double)r->min_events)
		return g->state == S_INACTIVE && events == 0;

	bool cond = eval_bool(&c, r->expr.root);
	double value = r->value_node ? eval_num(&c, r->value_node) : NAN;
	/* An anomaly function without a verdict (its history too short, or
	 * flat): like too few events, nothing changes either way. */
	if (no_verdict)
		return false;
	switch (g->state) {
	case S_INACTIVE:
		if (!cond)
			return events == 0;
		g->since_us = now;
		g->state = S_PENDING;
		/* `for: 0` fires at once */
		__attribute__((fallthrough));
	case S_PENDING:
		if (!cond) {
			g->state = S_INACTIVE;
			return events == 0;
		}
		if (now - g->since_us >= r->for_us) {
			g->state = S_FIRING;
			g->since_us = now;
			g->false_since_us = -1;
			rs->stats.firing++;
			emit(rs, r, g, RULES_FIRING, now, value, fn, ctx, false);
		}
		return false;
	case S_FIRING:
		if (cond) {
			g->false_since_us = -1;
			return false;
		}
		if (g->false_since_us < 0)
			g->false_since_us = now;
		if (now - g->false_since_us >= r->keep_us) {
			g->state = S_INACTIVE;
			rs->stats.firing--;
			emit(rs, r, g, RULES_RESOLVED, now, value, fn, ctx, false);
		}
		return false;
	}
	return false;
}

/* step_state, noting in the generation whether the saved state changed. */
static bool step_group(struct rules_set *rs, struct rule *r, struct group *g, int64_t now,
		       rules_transition_fn fn, void *ctx)
{
	enum astate st = g->state;
	int64_t since = g->since_us, false_since = g->false_since_us;
	/* A group with a history is never forgotten: its past is the point. */
	bool idle = step_state(rs, r, g, now, fn, ctx) && r->nby && !r->expr.nhists;
	if (g->state != st || g->since_us != since || g->false_since_us != false_since || idle)
		rs->generation++;
	return idle;
}

/* Dropped groups are logged once a minute at most, with the count since. */
#define DROP_LOG_US (60 * 1000000LL)

static void report_drops(struct rule *r, int64_t now)
{
	if (r->dropped == r->dropped_logged ||
	    (r->dropped_log_us && now - r->dropped_log_us < DROP_LOG_US))
		return;
	kl_log(KL_LOG_WARN,
	       "rule '%s' (%s:%d): %llu event(s) of new 'by' groups dropped: %zu groups are live (max_groups); raise max_groups or use fewer 'by' fields",
	       r->alert, r->file, r->line, (unsigned long long)(r->dropped - r->dropped_logged),
	       r->max_groups);
	r->dropped_logged = r->dropped;
	r->dropped_log_us = now;
}

/* CPU-side cost of an evaluation, for /metrics only: never the rules' clock. */
static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void eval_rule(struct rules_set *rs, struct rule *r, int64_t now, rules_transition_fn fn,
		      void *ctx)
{
	int64_t t0 = mono_ns();
	report_drops(r, now);
	bool evicted = false;
	rs->stats.evaluations++;
	r->dirty = false;
	for (size_t i = 0; i < r->ngroups;) {
		struct group *g = &r->groups[i];
		if (step_group(rs, r, g, now, fn, ctx)) {
			group_release(r, g);
			r->groups[i] = r->groups[--r->ngroups];
			evicted = true;
			continue;
		}
		i++;
	}
	if (evicted)
		index_rebuild(r);
	r->fed_read_us = 0;
	r->evaluations++;
	r->eval_ns += mono_ns() - t0;
}

void rules_eval_all(struct rules_set *rs, int64_t now, rules_transition_fn fn, void *ctx)
{
	if (now < rs->last_now_us)
		now = rs->last_now_us;
	rs->last_now_us = now;
	rs->last_tick_us = now - now % rs->eval_interval_us;
	for (size_t i = 0; i < rs->n; i++)
		eval_rule(rs, &rs->rules[i], now, fn, ctx);
}

void rules_eval(struct rules_set *rs, int64_t now, rules_transition_fn fn, void *ctx)
{
	if (now < rs->last_now_us)
		now = rs->last_now_us;
	if (now - rs->last_tick_us >= rs->eval_interval_us) {
		rules_eval_all(rs, now, fn, ctx);
		return;
	}
	rs->last_now_us = now;
	for (size_t i = 0; i < rs->n; i++)
		if (rs->rules[i].dirty)
			eval_rule(rs, &rs->rules[i], now, fn, ctx);
}

void rules_set_eval_interval(struct rules_set *rs, int64_t us)
{
	rs->eval_interval_us = us > 0 ? us : 1000000;
}

int64_t rules_eval_interval(const struct rules_set *rs)
{
	return rs->eval_interval_us;
}

void rules_get_stats(const struct rules_set *rs, struct rules_stats *out)
{
	*out = rs->stats;
}

size_t rules_count(const struct rules_set *rs)
{
	return rs->n;
}

/* ---- loading ------------------------------------------------------------------ */

struct loader {
	struct rules_set *rs;
	const char *file;
	struct kl_diag *d;
};

static void err_at(struct loader *l, const struct kl_ynode *n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void err_at(struct loader *l, const struct kl_ynode *n, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	kl_diag_error(l->d, l->file, n ? n->line : 0, n ? n->col : 0, "%s", msg);
}

static const char *scalar(struct loader *l, const struct kl_ynode *n, const char *key)
{
	if (n->type != KL_Y_SCALAR) {
		err_at(l, n, "'%s' must be a single value, found %s", key, kl_ynode_kind(n));
		return NULL;
	}
	return n->str;
}

static bool duration(struct loader *l, const struct kl_ynode *n, const char *key, int64_t *out)
{
	const char *s = scalar(l, n, key);
	if (!s)
		return false;
	if (kl_parse_duration_us(s, n->len, out) < 0) {
		err_at(l, n, "'%s': '%s' is not a duration; expected e.g. 30s, 5m, 1h, 500ms", key, s);
		return false;
	}
	return true;
}

static bool is_alpha_(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool valid_name(const char *s)
{
	if (!*s || !(is_alpha_(*s)))
		return false;
	for (; *s; s++)
		if (!(is_alpha_(*s) || (*s >= '0' && *s <= '9')))
			return false;
	return true;
}

static const char *const rule_keys[] = {
	"alert", "source", "expr", "window", "min_events", "for", "keep_firing_for",
	"by", "labels", "annotations", "max_groups", "shared",
};

static bool check_keys(struct loader *l, const struct kl_ynode *m)
{
	bool ok = true;
	for (size_t i = 0; i < m->n; i++) {
		bool known = false;
		for (size_t k = 0; k < KL_ARRAY_LEN(rule_keys); k++)
			known |= !strcmp(m->keys[i]->str, rule_keys[k]);
		if (!known) {
			err_at(l, m->keys[i],
			       "unknown key '%s' in a rule; expected alert, source, expr, window, min_events, for, keep_firing_for, by, labels, annotations, max_groups or shared",
			       m->keys[i]->str);
			ok = false;
		}
	}
	return ok;
}

static int source_index(const struct rules_set *rs, const char *name)
{
	for (size_t i = 0; i < rs->nsources; i++)
		if (!strcmp(rs->sources[i].name, name))
			return (int)i;
	return -1;
}

static bool load_string_map(struct loader *l, const struct kl_ynode *m, const char *key,
			    struct rules_label **out, size_t *nout)
{
	if (m->type != KL_Y_MAP) {
		err_at(l, m, "'%s' must be a mapping of names to values, found %s", key, kl_ynode_kind(m));
		return false;
	}
	*out = calloc(m->n ? m->n : 1, sizeof **out);
	if (!*out)
		return false;
	for (size_t i = 0; i < m->n; i++) {
		const char *v = scalar(l, m->items[i], m->keys[i]->str);
		if (!v)
			return false;
		(*out)[i].key = kl_strndup(m->keys[i]->str, m->keys[i]->len);
		(*out)[i].value = kl_strndup(v, m->items[i]->len);
		(*nout)++;
		if (!(*out)[i].key || !(*out)[i].value)
			return false;
	}
	return true;
}

static bool load_by(struct loader *l, struct rule *r, const struct kl_ynode *n, const struct parser *p)
{
	const struct kl_ynode *const *items = (const struct kl_ynode *const *)&n;
	size_t count = 1;
	if (n->type == KL_Y_SEQ) {
		items = (const struct kl_ynode *const *)n->items;
		count = n->n;
	}
	if (count > MAX_BY) {
		err_at(l, n, "'by' names %zu fields; at most %d are allowed", count, MAX_BY);
		return false;
	}
	for (size_t i = 0; i < count; i++) {
		const char *f = scalar(l, items[i], "by");
		if (!f)
			return false;
		int idx = parser_field_index(p, f, items[i]->len);
		if (idx < 0) {
			err_at(l, items[i], "'by': unknown field '%s' for parser '%s'", f, parser_name(p));
			return false;
		}
		r->by[r->nby] = (unsigned)idx;
		r->by_names[r->nby] = kl_strndup(f, items[i]->len);
		if (!r->by_names[r->nby])
			return false;
		r->nby++;
	}
	return true;
}

static bool load_expr(struct loader *l, struct rule *r, const struct kl_ynode *n, const struct parser *p)
{
	const char *src = scalar(l, n, "expr");
	if (!src)
		return false;
	char msg[512];
	size_t off = 0;
	if (expr_compile(src, p, &r->expr, msg, sizeof msg, &off) < 0) {
		/* Point into the expression as written in the file (quotes,
		 * escapes, several lines); the scalar's start if that fails. */
		int line, col;
		kl_ynode_source_pos(n, off, &line, &col);
		kl_diag_error(l->d, l->file, line, col, "expr: %s", msg);
		return false;
	}
	r->value_node = value_node_of(r->expr.root);
	r->expr_src = kl_strndup(src, n->len);
	return r->expr_src != NULL;
}

static bool check_templates(struct loader *l, struct rule *r, const struct kl_ynode *m)
{
	bool ok = true;
	struct tmplctx t = { l->rs, r, NULL, 0, 0, NULL };
	for (size_t i = 0; i < r->nannotations; i++) {
		long bad = render(NULL, r->annotations[i].value, &t);
		if (bad >= 0) {
			const struct kl_ynode *v = m->items[i];
			const char *tm = r->annotations[i].value + bad;
			const char *end = strstr(tm, "}}");
			int shown = end ? (int)(end + 2 - tm) : (int)strlen(tm);
			kl_diag_error(l->d, l->file, v->line, v->col + (v->plain ? 0 : 1) + (int)bad,
				      "annotation '%s': unknown placeholder '%.*s'; expected {{ value }}, {{ value | pct }}, {{ value | duration }}, {{ window }}, {{ source }}, {{ alert }}, {{ labels.NAME }}, or with zscore()/baseline() in expr {{ zscore }} and {{ baseline }}",
				      r->annotations[i].key, shown, tm);
			ok = false;
		}
	}
	return ok;
}

static void rule_free(struct rule *r)
{
	for (size_t i = 0; i < r->ngroups; i++)
		group_release(r, &r->groups[i]);
	free(r->groups);
	free(r->index);
	for (size_t i = 0; r->seen && i < r->expr.naggs; i++)
		seen_free(r->seen[i]);
	free(r->seen);
	expr_free(&r->expr);
	for (size_t i = 0; i < r->nby; i++)
		free(r->by_names[i]);
	for (size_t i = 0; i < r->nlabels; i++) {
		free((void *)r->labels[i].key);
		free((void *)r->labels[i].value);
	}
	free(r->labels);
	for (size_t i = 0; i < r->nannotations; i++) {
		free((void *)r->annotations[i].key);
		free((void *)r->annotations[i].value);
	}
	free(r->annotations);
	free(r->alert);
	free(r->expr_src);
	free(r->file);
}

/* new()'s seen tables, one per new() call (per rule, shared by its groups). */
static bool setup_seen(struct rule *r)
{
	if (!r->expr.nnew)
		return true;
	r->seen = calloc(r->expr.naggs, sizeof *r->seen);
	if (!r->seen)
		return false;
	for (size_t i = 0; i < r->expr.naggs; i++)
		if (r->expr.aggs[i].kind == AGG_NEW && !(r->seen[i] = seen_new(SEEN_CAP)))
			return false;
	return true;
}

static bool setup_groups(struct rule *r)
{
	size_t idx = 16;
	while (idx < r->max_groups * 2)
		idx <<= 1;
	r->index = calloc(idx, sizeof *r->index);
	r->groups = calloc(r->nby ? r->max_groups : 1, sizeof *r->groups);
	if (!r->index || !r->groups)
		return false;
	r->index_mask = idx - 1;
	/* Without `by` the one group always exists: a silent source is still
	 * evaluated (flatline). */
	return r->nby || group_create(r, NULL, 0);
}

static void shape_of(struct rule *r)
{
	int64_t w = r->window_us;
	int64_t width = (w + BUCKETS_PER_WINDOW - 1) / BUCKETS_PER_WINDOW;
	if (width < 1000)
		width = 1000; /* 1 ms: finer than any log timestamp */
	r->shape.width_us = width;
	r->shape.nwin = (unsigned)((w + width - 1) / width);
	r->shape.nb = r->shape.nwin + 2;
	r->shape.expr = &r->expr;
}

/* Load one rule mapping; false after reporting (the rule is then freed). */
static bool load_rule(struct loader *l, struct rule *r, const struct kl_ynode *m)
{
	if (m->type != KL_Y_MAP) {
		err_at(l, m, "each rule must be a mapping with alert, source and expr, found %s",
		       kl_ynode_kind(m));
		return false;
	}
	bool ok = check_keys(l, m);
	const struct kl_ynode *alert = kl_ymap_get(m, "alert");
	const struct kl_ynode *src = kl_ymap_get(m, "source");
	const struct kl_ynode *ex = kl_ymap_get(m, "expr");
	if (!alert || !src || !ex) {
		err_at(l, m, "a rule needs %s", !alert ? "'alert' (its name)" : !src ? "'source'" : "'expr'");
		return false;
	}
	const char *name = scalar(l, alert, "alert");
	if (!name)
		return false;
	if (!valid_name(name)) {
		err_at(l, alert, "alert name '%s' must be letters, digits and '_', starting with a letter", name);
		ok = false;
	}
	r->alert = kl_strndup(name, alert->len);
	r->file = kl_strndup(l->file, strlen(l->file));
	r->line = m->line;
	r->window_us = DEFAULT_WINDOW_US;
	r->max_groups = DEFAULT_MAX_GROUPS;

	const char *sname = scalar(l, src, "source");
	if (!sname)
		return false;
	int si = source_index(l->rs, sname);
	if (si < 0) {
		char list[512] = "";
		size_t used = 0;
		for (size_t i = 0; i < l->rs->nsources && used + 40 < sizeof list; i++)
			used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "",
						 l->rs->sources[i].name);
		err_at(l, src, "unknown source '%s'; the config defines: %s", sname, used ? list : "(none)");
		return false;
	}
	r->source = (unsigned)si;
	const struct parser *p = l->rs->sources[si].parser;

	ok &= load_expr(l, r, ex, p);
	const struct kl_ynode *n;
	if ((n = kl_ymap_get(m, "window"))) {
		ok &= duration(l, n, "window", &r->window_us);
		if (r->window_us <= 0) {
			err_at(l, n, "'window' must be longer than zero");
			ok = false;
		}
	}
	if ((n = kl_ymap_get(m, "for")))
		ok &= duration(l, n, "for", &r->for_us);
	if ((n = kl_ymap_get(m, "keep_firing_for")))
		ok &= duration(l, n, "keep_firing_for", &r->keep_us);
	if ((n = kl_ymap_get(m, "min_events"))) {
		const char *s = scalar(l, n, "min_events");
		if (!s || kl_parse_u64(s, n->len, &r->min_events) < 0) {
			err_at(l, n, "'min_events' must be a whole number, found '%s'", s ? s : "");
			ok = false;
		}
	}
	if ((n = kl_ymap_get(m, "max_groups"))) {
		const char *s = scalar(l, n, "max_groups");
		uint64_t v = 0;
		if (!s || kl_parse_u64(s, n->len, &v) < 0 || v < 1 || v > MAX_MAX_GROUPS) {
			err_at(l, n, "'max_groups' must be a whole number from 1 to %d", MAX_MAX_GROUPS);
			ok = false;
		} else {
			r->max_groups = (size_t)v;
		}
	}
	if ((n = kl_ymap_get(m, "shared"))) {
		const char *s = scalar(l, n, "shared");
		if (s && (!strcmp(s, "true") || !strcmp(s, "false")))
			r->shared = !strcmp(s, "true");
		else {
			err_at(l, n, "'shared' must be true or false, found '%s' (true: the rule's "
				     "windows are merged across replicas through `redis:`)",
			       s ? s : "");
			ok = false;
		}
	}
	if ((n = kl_ymap_get(m, "by")))
		ok &= load_by(l, r, n, p);
	if ((n = kl_ymap_get(m, "labels")))
		ok &= load_string_map(l, n, "labels", &r->labels, &r->nlabels);
	const struct kl_ynode *ann = kl_ymap_get(m, "annotations");
	if (ann && load_string_map(l, ann, "annotations", &r->annotations, &r->nannotations))
		ok &= check_templates(l, r, ann);
	else if (ann)
		ok = false;
	if (r->nannotations > 64) {
		err_at(l, ann, "at most 64 annotations per rule");
		ok = false;
	}
	if (!ok)
		return false;
	shape_of(r);
	if (!setup_groups(r) || !setup_seen(r)) {
		err_at(l, m, "out of memory");
		return false;
	}
	return true;
}

static bool load_file(struct loader *l)
{
	struct kl_ynode *doc = kl_yaml_load_file(l->file, l->d);
	if (!doc)
		return false;
	bool ok = true;
	const struct kl_ynode *list = kl_ymap_get(doc, "rules");
	if (doc->type != KL_Y_MAP || !list) {
		err_at(l, doc, "a rule file is a mapping with a 'rules:' list");
		ok = false;
		goto out;
	}
	for (size_t i = 0; i < doc->n; i++)
		if (strcmp(doc->keys[i]->str, "rules")) {
			err_at(l, doc->keys[i], "unknown key '%s'; a rule file has only 'rules:'", doc->keys[i]->str);
			ok = false;
		}
	if (list->type != KL_Y_SEQ) {
		err_at(l, list, "'rules' must be a list of rules, found %s", kl_ynode_kind(list));
		ok = false;
		goto out;
	}
	struct rules_set *rs = l->rs;
	void *grown = realloc(rs->rules, (rs->n + list->n + 1) * sizeof *rs->rules);
	if (!grown) {
		ok = false;
		goto out;
	}
	rs->rules = grown;
	for (size_t i = 0; i < list->n; i++) {
		struct rule *r = &rs->rules[rs->n];
		memset(r, 0, sizeof *r);
		if (!load_rule(l, r, list->items[i])) {
			rule_free(r);
			ok = false;
			continue;
		}
		for (size_t k = 0; k < rs->n; k++)
			if (!strcmp(rs->rules[k].alert, r->alert) &&
			    rs->rules[k].source == r->source) {
				err_at(l, list->items[i], "alert '%s' on source '%s' is already defined at %s:%d",
				       r->alert, rs->sources[r->source].name, rs->rules[k].file,
				       rs->rules[k].line);
				ok = false;
			}
		rs->n++;
	}
out:
	kl_yaml_free(doc);
	return ok;
}

static bool index_sources(struct rules_set *rs)
{
	/* rs->rules moved while files were loaded: point each shape at its
	 * rule's expression where it now lives. */
	for (size_t i = 0; i < rs->n; i++)
		rs->rules[i].shape.expr = &rs->rules[i].expr;
	rs->by_source = calloc(rs->nsources ? rs->nsources : 1, sizeof *rs->by_source);
	rs->nby_source = calloc(rs->nsources ? rs->nsources : 1, sizeof *rs->nby_source);
	if (!rs->by_source || !rs->nby_source)
		return false;
	for (size_t s = 0; s < rs->nsources; s++) {
		rs->by_source[s] = calloc(rs->n ? rs->n : 1, sizeof **rs->by_source);
		if (!rs->by_source[s])
			return false;
		for (size_t i = 0; i < rs->n; i++)
			if (rs->rules[i].source == s)
				rs->by_source[s][rs->nby_source[s]++] = (unsigned)i;
	}
	size_t maxl = 1, maxa = 1;
	for (size_t i = 0; i < rs->n; i++) {
		size_t nl = 1 + rs->rules[i].nlabels + rs->rules[i].nby;
		maxl = nl > maxl ? nl : maxl;
		maxa = rs->rules[i].nannotations > maxa ? rs->rules[i].nannotations : maxa;
	}
	rs->out_labels = calloc(maxl, sizeof *rs->out_labels);
	rs->out_ann = calloc(maxa, sizeof *rs->out_ann);
	return rs->out_labels && rs->out_ann;
}

struct rules_set *rules_load(const char *const *files, size_t nfiles,
			     const struct rules_source *sources, size_t nsources, struct kl_diag *d)
{
	struct rules_set *rs = calloc(1, sizeof *rs);
	if (!rs)
		return NULL;
	rs->sources = sources;
	rs->nsources = nsources;
	rs->eval_interval_us = 1000000;
	rs->md = pcre2_match_data_create(1, NULL);
	sketch_init(&rs->sk_scratch);
	hll_init(&rs->hll_scratch);
	unsigned before = d->errors;
	for (size_t i = 0; i < nfiles; i++) {
		struct loader l = { rs, files[i], d };
		load_file(&l);
	}
	if (d->errors != before || !rs->md || !index_sources(rs)) {
		if (d->errors == before)
			kl_diag_error(d, files[0], 0, 0, "out of memory loading rules");
		rules_free(rs);
		return NULL;
	}
	return rs;
}

void rules_free(struct rules_set *rs)
{
	if (!rs)
		return;
	shared_free(rs);
	for (size_t i = 0; i < rs->n; i++)
		rule_free(&rs->rules[i]);
	free(rs->rules);
	for (size_t s = 0; rs->by_source && s < rs->nsources; s++)
		free(rs->by_source[s]);
	free(rs->by_source);
	free(rs->nby_source);
	if (rs->md)
		pcre2_match_data_free(rs->md);
	sketch_free(&rs->sk_scratch);
	hll_free(&rs->hll_scratch);
	kl_buf_free(&rs->render);
	free(rs->out_labels);
	free(rs->out_ann);
	free(rs);
}

/* Same windows and groups: the state of one can serve the other. */
static bool same_shape(const struct rule *a, const struct rule *b, const struct rules_set *ra,
		       const struct rules_set *rb)
{
	if (strcmp(a->alert, b->alert) || strcmp(a->expr_src, b->expr_src) ||
	    strcmp(ra->sources[a->source].name, rb->sources[b->source].name) ||
	    a->window_us != b->window_us || a->nby != b->nby || a->max_groups != b->max_groups ||
	    ra->sources[a->source].parser != rb->sources[b->source].parser)
		return false;
	for (size_t i = 0; i < a->nby; i++)
		if (a->by[i] != b->by[i])
			return false;
	return true;
}

static void swap_groups(struct rule *a, struct rule *b)
{
	struct group *g = a->groups;
	size_t n = a->ngroups;
	int32_t *idx = a->index;
	size_t mask = a->index_mask;
	a->groups = b->groups;
	a->ngroups = b->ngroups;
	a->index = b->index;
	a->index_mask = b->index_mask;
	b->groups = g;
	b->ngroups = n;
	b->index = idx;
	b->index_mask = mask;
	struct seen **seen = a->seen; /* same expression: same new() calls */
	a->seen = b->seen;
	b->seen = seen;
}

size_t rules_adopt_state(struct rules_set *to, struct rules_set *from)
{
	size_t kept = 0;
	for (size_t i = 0; i < to->n; i++) {
		struct rule *r = &to->rules[i];
		for (size_t k = 0; k < from->n; k++) {
			struct rule *o = &from->rules[k];
			if (!o->groups || !same_shape(r, o, to, from))
				continue;
			swap_groups(r, o);
			/* The window shapes are equal but each rule points at its
			 * own expression; the groups only hold data laid out by it. */
			for (size_t g = 0; g < r->ngroups; g++)
				if (r->groups[g].state == S_FIRING)
					to->stats.firing++;
			kept++;
			break;
		}
	}
	to->last_now_us = from->last_now_us;
	to->last_tick_us = from->last_tick_us;
	to->generation = from->generation + 1; /* another set: save it */
	return kept;
}

int rules_expr_check(const char *expr, const struct parser *p, char *err, size_t errlen, int *col)
{
	struct expr e;
	size_t off = 0;
	int rc = expr_compile(expr, p, &e, err, errlen, &off);
	if (rc < 0) {
		*col = (int)off + 1;
		return rc;
	}
	expr_free(&e);
	return 0;
}

/* ---- saved state ---------------------------------------------------------------
 *
 *   "KLXRULES" version            8 bytes, varint (STATE_VERSION)
 *   last_now_us last_tick_us nrules
 *   per rule:   alert expr source window_us nby by_names... max_groups
 *               payload (length-prefixed, so a rule that changed is skipped whole)
 *                 ngroups, per group: by-values, state, since, false_since, window
 *   crc32 of everything before it, 4 bytes little-endian
 *
 * Strings are kl_buf_put_bytes; numbers varints (common/kl.h).
 */
#define STATE_MAGIC "KLXRULES"
#define STATE_VERSION 1
#define STATE_STR_MAX 65536

static int save_group(const struct rule *r, const struct group *g, struct kl_buf *b)
{
	int rc = 0;
	for (size_t i = 0; i < r->nby && rc == 0; i++)
		rc = kl_buf_put_bytes(b, g->vals[i].p, g->vals[i].len);
	if (rc == 0)
		rc = kl_buf_put_u64(b, (uint64_t)g->state);
	if (rc == 0)
		rc = kl_buf_put_i64(b, g->since_us);
	if (rc == 0)
		rc = kl_buf_put_i64(b, g->false_since_us);
	if (rc == 0)
		rc = window_encode(&g->w, &r->shape, b);
	for (size_t i = 0; i < r->expr.nhists && rc == 0; i++)
		rc = hist_encode(&g->hists[i], &r->expr.hists[i], b);
	return rc;
}

static int save_rule(const struct rules_set *rs, const struct rule *r, struct kl_buf *b,
		     struct kl_buf *payload)
{
	const char *src = rs->sources[r->source].name;
	int rc = kl_buf_put_bytes(b, r->alert, strlen(r->alert));
	if (rc == 0)
		rc = kl_buf_put_bytes(b, r->expr_src, strlen(r->expr_src));
	if (rc == 0)
		rc = kl_buf_put_bytes(b, src, strlen(src));
	if (rc == 0)
		rc = kl_buf_put_i64(b, r->window_us);
	if (rc == 0)
		rc = kl_buf_put_u64(b, r->nby);
	for (size_t i = 0; i < r->nby && rc == 0; i++)
		rc = kl_buf_put_bytes(b, r->by_names[i], strlen(r->by_names[i]));
	if (rc == 0)
		rc = kl_buf_put_u64(b, r->max_groups);
	kl_buf_reset(payload);
	if (rc == 0)
		rc = kl_buf_put_u64(payload, r->ngroups);
	for (size_t i = 0; i < r->ngroups && rc == 0; i++)
		rc = save_group(r, &r->groups[i], payload);
	for (size_t i = 0; r->seen && i < r->expr.naggs && rc == 0; i++)
		if (r->seen[i])
			rc = seen_encode(r->seen[i], payload);
	if (rc == 0)
		rc = kl_buf_put_bytes(b, payload->p, payload->len);
	return rc;
}

int rules_save(const struct rules_set *rs, struct kl_buf *out)
{
	size_t mark = out->len;
	struct kl_buf payload = { 0 };
	int rc = kl_buf_append(out, STATE_MAGIC, 8);
	if (rc == 0)
		rc = kl_buf_put_u64(out, STATE_VERSION);
	if (rc == 0)
		rc = kl_buf_put_i64(out, rs->last_now_us);
	if (rc == 0)
		rc = kl_buf_put_i64(out, rs->last_tick_us);
	if (rc == 0)
		rc = kl_buf_put_u64(out, rs->n);
	for (size_t i = 0; i < rs->n && rc == 0; i++)
		rc = save_rule(rs, &rs->rules[i], out, &payload);
	kl_buf_free(&payload);
	if (rc == 0) {
		uLong crc = crc32(0L, (const Bytef *)out->p + mark, (uInt)(out->len - mark));
		unsigned char c[4] = { (unsigned char)crc, (unsigned char)(crc >> 8),
				       (unsigned char)(crc >> 16), (unsigned char)(crc >> 24) };
		rc = kl_buf_append(out, c, 4);
	}
	if (rc < 0)
		out->len = mark;
	return rc;
}

static bool str_is(struct kl_str s, const char *z)
{
	return s.len == strlen(z) && memcmp(s.p, z, s.len) == 0;
}

/* The rule of rs a saved identity names, or NULL (gone, or changed). */
static struct rule *match_rule(struct rules_set *rs, struct kl_rd *rd)
{
	struct kl_str alert = kl_rd_bytes(rd, STATE_STR_MAX);
	struct kl_str expr = kl_rd_bytes(rd, STATE_STR_MAX);
	struct kl_str src = kl_rd_bytes(rd, STATE_STR_MAX);
	int64_t window_us = kl_rd_i64(rd);
	size_t nby = (size_t)kl_rd_count(rd, MAX_BY);
	struct kl_str by[MAX_BY];
	for (size_t i = 0; i < nby; i++)
		by[i] = kl_rd_bytes(rd, STATE_STR_MAX);
	uint64_t max_groups = kl_rd_u64(rd);
	if (rd->bad)
		return NULL;
	for (size_t i = 0; i < rs->n; i++) {
		struct rule *r = &rs->rules[i];
		bool same = str_is(alert, r->alert) && str_is(expr, r->expr_src) &&
			    str_is(src, rs->sources[r->source].name) && window_us == r->window_us &&
			    nby == r->nby && max_groups == r->max_groups;
		for (size_t k = 0; same && k < nby; k++)
			same = str_is(by[k], r->by_names[k]);
		if (same)
			return r;
	}
	return NULL;
}

/* Forget every group (back to a rule fresh from loading). */
static bool reset_groups(struct rule *r)
{
	for (size_t i = 0; i < r->ngroups; i++)
		group_release(r, &r->groups[i]);
	r->ngroups = 0;
	free(r->groups);
	free(r->index);
	r->groups = NULL;
	r->index = NULL;
	return setup_groups(r);
}

static int restore_group(struct rule *r, struct group *g, struct kl_rd *rd)
{
	for (size_t i = 0; i < r->nby; i++) {
		struct kl_str v = kl_rd_bytes(rd, STATE_STR_MAX);
		if (rd->bad)
			return -EINVAL;
		char *c = kl_strndup(v.p, v.len);
		if (!c)
			return -ENOMEM;
		free((void *)g->vals[i].p);
		g->vals[i] = (struct kl_str){ c, v.len };
		g->hash = hash_bytes(hash_bytes(i ? g->hash : 0xcbf29ce484222325ULL, c, v.len),
				     "\x1f", 1);
	}
	uint64_t st = kl_rd_count(rd, S_FIRING);
	g->state = (enum astate)st;
	g->since_us = kl_rd_i64(rd);
	g->false_since_us = kl_rd_i64(rd);
	if (rd->bad || g->since_us == INT64_MIN || !state_time_ok(g->since_us) ||
	    g->false_since_us == INT64_MIN || !state_time_ok(g->false_since_us))
		return -EINVAL;
	int rc = window_decode(&g->w, &r->shape, rd);
	for (size_t i = 0; i < r->expr.nhists && rc == 0; i++)
		rc = hist_decode(&g->hists[i], &r->expr.hists[i], rd);
	return rc;
}

/* The seen tables, fresh, then as saved. */
static int restore_seen(struct rule *r, struct kl_rd *rd)
{
	for (size_t i = 0; r->seen && i < r->expr.naggs; i++) {
		if (!r->seen[i])
			continue;
		seen_free(r->seen[i]);
		if (!(r->seen[i] = seen_new(SEEN_CAP)))
			return -ENOMEM;
		if (rd && seen_decode(r->seen[i], rd) < 0)
			return -EINVAL;
	}
	return 0;
}

/* One rule's groups from its payload; on failure the rule is reset. */
static int restore_rule(struct rule *r, struct kl_str payload)
{
	struct kl_rd rd = kl_rd_of(payload.p, payload.len);
	size_t n = (size_t)kl_rd_count(&rd, r->nby ? r->max_groups : 1);
	int rc = rd.bad ? -EINVAL : 0;
	if (rc == 0 && !reset_groups(r))
		rc = -ENOMEM;
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct group *g = r->nby ? group_create(r, NULL, 0) : &r->groups[0];
		if (!g) {
			rc = -ENOMEM;
			break;
		}
		rc = restore_group(r, g, &rd);
	}
	if (rc == 0)
		rc = restore_seen(r, &rd);
	if (rc == 0 && !kl_rd_done(&rd))
		rc = -EINVAL;
	if (rc < 0) {
		if (!reset_groups(r) || restore_seen(r, NULL) < 0)
			return -ENOMEM;
		return rc;
	}
	if (r->nby)
		index_rebuild(r);
	return 0;
}

static int restore_all(struct rules_set *rs, struct kl_rd *rd, struct rules_restore_stats *st)
{
	int64_t now = kl_rd_i64(rd), tick = kl_rd_i64(rd);
	size_t n = (size_t)kl_rd_count(rd, 1000000);
	if (rd->bad || now == INT64_MIN || tick == INT64_MIN || !state_time_ok(now) ||
	    !state_time_ok(tick))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		struct rule *r = match_rule(rs, rd);
		struct kl_str payload = kl_rd_bytes(rd, (size_t)(rd->end - rd->p));
		if (rd->bad)
			return -EINVAL;
		if (!r) {
			st->skipped++;
			continue;
		}
		int rc = restore_rule(r, payload);
		if (rc < 0)
			return rc;
		st->restored++;
	}
	if (!kl_rd_done(rd))
		return -EINVAL;
	rs->last_now_us = now > rs->last_now_us ? now : rs->last_now_us;
	rs->last_tick_us = tick;
	st->saved_at_us = now;
	return 0;
}

int rules_restore(struct rules_set *rs, const char *data, size_t len,
		  struct rules_restore_stats *st)
{
	memset(st, 0, sizeof *st);
	if (len < 8 + 1 + 4 || memcmp(data, STATE_MAGIC, 8) != 0)
		return -EINVAL;
	const unsigned char *c = (const unsigned char *)data + len - 4;
	uLong want = (uLong)c[0] | (uLong)c[1] << 8 | (uLong)c[2] << 16 | (uLong)c[3] << 24;
	if (crc32(0L, (const Bytef *)data, (uInt)(len - 4)) != want)
		return -EINVAL;
	struct kl_rd rd = kl_rd_of(data + 8, len - 12);
	if (kl_rd_u64(&rd) != STATE_VERSION || rd.bad)
		return -EINVAL;
	int rc = restore_all(rs, &rd, st);
	rs->stats.firing = 0;
	for (size_t i = 0; i < rs->n; i++) {
		struct rule *r = &rs->rules[i];
		if (rc < 0 && rc != -ENOMEM && (!reset_groups(r) || restore_seen(r, NULL) < 0))
			rc = -ENOMEM;
		for (size_t k = 0; k < r->ngroups; k++) {
			rs->stats.firing += r->groups[k].state == S_FIRING;
			st->firing += r->groups[k].state == S_FIRING;
			st->pending += r->groups[k].state == S_PENDING;
		}
	}
	if (rc < 0) {
		size_t skipped = st->skipped;
		memset(st, 0, sizeof *st);
		st->skipped = skipped;
	}
	return rc;
}

uint64_t rules_generation(const struct rules_set *rs)
{
	return rs->generation;
}

void rules_announce(struct rules_set *rs, int64_t now, rules_transition_fn fn, void *ctx)
{
	for (size_t i = 0; i < rs->n; i++) {
		struct rule *r = &rs->rules[i];
		for (size_t k = 0; k < r->ngroups; k++) {
			struct group *g = &r->groups[k];
			if (g->state != S_FIRING)
				continue;
			struct evalctx c = { rs, r, g, now, NULL };
			double value = r->value_node ? eval_num(&c, r->value_node) : NAN;
			emit(rs, r, g, RULES_FIRING, now, value, fn, ctx, true);
		}
	}
}

/* ---- read-only views (/metrics, /alerts) ------------------------------------ */

int rules_rule_info(const struct rules_set *rs, size_t i, struct rules_rule_info *out)
{
	if (i >= rs->n)
		return -ERANGE;
	const struct rule *r = &rs->rules[i];
	*out = (struct rules_rule_info){
		.alert = r->alert,
		.source = rs->sources[r->source].name,
		.file = r->file,
		.line = r->line,
		.evaluations = r->evaluations,
		.eval_ns = r->eval_ns,
	};
	for (size_t k = 0; k < r->ngroups; k++) {
		out->pending += r->groups[k].state == S_PENDING;
		out->firing += r->groups[k].state == S_FIRING;
	}
	return 0;
}

void rules_each_alert(struct rules_set *rs, rules_alert_fn fn, void *ctx)
{
	for (size_t i = 0; i < rs->n; i++) {
		const struct rule *r = &rs->rules[i];
		for (size_t k = 0; k < r->ngroups; k++) {
			struct group *g = &r->groups[k];
			if (g->state == S_INACTIVE)
				continue;
			/* The labels as emit() gives them. */
			size_t nl = 0;
			rs->out_labels[nl++] = (struct rules_label){ "source", rs->sources[r->source].name };
			for (size_t j = 0; j < r->nlabels; j++)
				rs->out_labels[nl++] = r->labels[j];
			for (size_t j = 0; j < r->nby; j++)
				rs->out_labels[nl++] = (struct rules_label){ r->by_names[j], g->vals[j].p };
			/* At the last evaluation's instant: no bucket leaves the window. */
			struct evalctx c = { rs, r, g, rs->last_now_us, NULL };
			struct rules_alert_state a = {
				.alert = r->alert,
				.labels = rs->out_labels,
				.nlabels = nl,
				.firing = g->state == S_FIRING,
				.since_us = g->since_us,
				.value = r->value_node ? eval_num(&c, r->value_node) : NAN,
				.shared = r->sh != NULL,
			};
			fn(ctx, &a);
		}
	}
}
