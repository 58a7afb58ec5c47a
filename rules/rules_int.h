/*
 * rules_int.h — private to rules/: the compiled expression tree, the window
 * storage it reads, and the rule itself.
 *
 * An expression compiles to two things: a tree of value nodes (arithmetic,
 * comparisons, boolean combinations, aggregate references) evaluated once per
 * evaluation, and a flat list of aggregates, each with an optional event filter
 * and a few numeric cells per window bucket, updated once per event.
 */
#ifndef RULES_INT_H
#define RULES_INT_H

#include <pcre2.h>

#include "rules/rules.h"
#include "rules/sketch.h"

/* ---- filters: predicates over one event -------------------------------- */

enum filt_kind {
	F_CMP_NUM, /* field op number */
	F_CMP_STR, /* field == / != string */
	F_REGEX,   /* field =~ / !~ regex */
	F_IN_NUM,
	F_IN_STR,
	F_AND,
	F_OR,
	F_NOT,
	F_TRUE,
};

enum cmp_op { OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE };

struct filt {
	enum filt_kind kind;
	enum cmp_op op;
	bool negate;	    /* !~, not in */
	unsigned field;
	double num;
	struct kl_str str;  /* owned copy (p is heap) */
	pcre2_code *re;
	double *nums;	    /* F_IN_NUM */
	struct kl_str *strs; /* F_IN_STR (owned copies) */
	size_t nin;
	struct filt *a, *b; /* children */
};

/* ---- aggregates: what each window bucket accumulates --------------------- */

enum agg_kind {
	AGG_COUNT,
	AGG_RATE,
	AGG_RATIO,
	AGG_SUM,
	AGG_AVG,
	AGG_MIN,
	AGG_MAX,
	AGG_LAST,
	AGG_QUANTILE,
	AGG_DISTINCT,
	AGG_NEW, /* new(FIELD, H): events whose value was not seen in the last H */
};

struct agg {
	enum agg_kind kind;
	struct filt *filter; /* NULL: every event */
	struct filt *base;   /* ratio's denominator; NULL: every event */
	int field;	     /* -1 for count/rate/ratio */
	double q;	     /* quantile */
	unsigned cell;	     /* first numeric cell in a bucket */
	unsigned ncells;
	int sketch;	     /* index of its sketch/hll in a bucket, or -1 */
	int64_t span_us;     /* new(): H */
};

/* ---- value nodes --------------------------------------------------------- */

enum node_kind {
	N_NUM,
	N_AGG,
	N_NEG,
	N_ADD,
	N_SUB,
	N_MUL,
	N_DIV,
	N_CMP,
	N_AND,
	N_OR,
	N_NOT,
	N_ZSCORE,   /* zscore(a, H) */
	N_BASELINE, /* baseline(a, P) */
};

struct node {
	enum node_kind kind;
	enum cmp_op op;	 /* N_CMP */
	double num;	 /* N_NUM */
	unsigned agg;	 /* N_AGG: index into expr.aggs */
	unsigned hist;	 /* N_ZSCORE, N_BASELINE: index into expr.hists */
	struct node *a, *b;
};

/* Instants read back from saved state are bounded (INT64_MIN aside, which
 * means "unset"): a state with a valid checksum but absurd times must not
 * make the arithmetic on them overflow. ±2^62 µs is ±146,000 years. */
#define STATE_TIME_MAX (INT64_C(1) << 62)
static inline bool state_time_ok(int64_t t)
{
	return t == INT64_MIN || (t >= -STATE_TIME_MAX && t <= STATE_TIME_MAX);
}

/* ---- histories: an aggregate's own past (history.c) ---------------------- */

enum hist_kind { HIST_ZSCORE, HIST_BASELINE };

struct hist_shape {
	enum hist_kind kind;
	int64_t span_us;     /* H, or the period P */
	int64_t slot_us;
	unsigned nslots;     /* ring size */
	unsigned per_period; /* baseline: slots a period */
	const struct node *node; /* the zscore/baseline node (its a: the sampled value) */
};

/* One group's history of one zscore/baseline call. */
struct hist {
	double *z;	     /* zscore: nslots × (sum, sum of squares, count) */
	float *b;	     /* baseline: nslots values (NaN: unknown) */
	int64_t first_us;    /* the first sample, or INT64_MIN */
	int64_t newest;	     /* newest slot number written, or INT64_MIN */
	int64_t last_minute; /* the minute last sampled */
	double last_ref;     /* at the last evaluation: the mean (zscore) or baseline */
	double last_score;   /* the z-score, or now / baseline */
	/* zscore: the sums over the ring as of slot tot_bucket (INT64_MIN: not
	 * computed), so an evaluation costs O(1), not a pass over the ring;
	 * recomputed when the ring moves (at most once a slot). */
	double tot_sum, tot_sq, tot_n;
	int64_t tot_bucket;
};

void hist_shape_init(struct hist_shape *s, enum hist_kind kind, int64_t span_us);
size_t hist_memory(const struct hist_shape *s);
int hist_init(struct hist *h, const struct hist_shape *s);
void hist_free(struct hist *h);
bool hist_sample_due(const struct hist *h, int64_t now_us);
/* Sample v (once a minute: later calls in the same minute are ignored). */
void hist_sample(struct hist *h, const struct hist_shape *s, int64_t now_us, double v);
/* (v - mean) / stddev over the last H; NaN for no verdict (less than H/2
 * known, fewer than 2 samples, no spread). */
double hist_zscore(struct hist *h, const struct hist_shape *s, int64_t now_us, double v);
/* The median of the values 1..7 periods ago at this phase; NaN for no
 * verdict (less than one period known, or none at this phase). */
double hist_baseline(struct hist *h, const struct hist_shape *s, int64_t now_us, double v);
int hist_encode(const struct hist *h, const struct hist_shape *s, struct kl_buf *out);
int hist_decode(struct hist *h, const struct hist_shape *s, struct kl_rd *r);

/* Values new() has seen: keys (group and value hashed) with their last time,
 * capped, least recently seen forgotten first. */
struct seen;
struct seen *seen_new(uint32_t cap);
void seen_free(struct seen *s);
/* Record key at t: true if it is new (not seen within the last span_us) and
 * the learning period (span_us / 2 from the first value) is over. */
bool seen_check(struct seen *s, uint64_t key, int64_t t_us, int64_t span_us);
uint64_t seen_forgotten(const struct seen *s);
size_t seen_memory(const struct seen *s);
int seen_encode(const struct seen *s, struct kl_buf *out);
int seen_decode(struct seen *s, struct kl_rd *r);

/* What window_add needs for new(): the rule's seen tables (per aggregate,
 * NULL for the others) and the event's group. */
struct newctx {
	struct seen *const *seen;
	uint64_t group_key;
};

struct expr {
	struct node *root;
	struct agg *aggs;
	size_t naggs;
	unsigned ncells;    /* numeric cells per bucket, cell 0 = all events */
	unsigned nsketches; /* quantile sketches per bucket */
	unsigned nhlls;	    /* distinct counters per bucket */
	struct hist_shape *hists; /* one per zscore/baseline call */
	unsigned nhists;
	unsigned nnew;	    /* new() calls */
};

/*
 * Compile src against parser p (field names resolved, types checked). On
 * error returns -EINVAL with a message and the 0-based byte offset in src.
 */
int expr_compile(const char *src, const struct parser *p, struct expr *out, char *err,
		 size_t errlen, size_t *erroff);
void expr_free(struct expr *e);
bool filt_match(const struct filt *f, struct parser_event *ev, pcre2_match_data *md);

/* ---- windows ------------------------------------------------------------- */

/* One group's ring of buckets. Buckets are laid out in one allocation. */
struct window {
	int64_t *epoch;		 /* per bucket: bucket number (time / width), or INT64_MIN */
	double *cells;		 /* nb × ncells */
	struct sketch *sketches; /* nb × nsketches */
	struct hll *hlls;	 /* nb × nhlls */
	int64_t newest;		 /* newest bucket number written */
	/*
	 * Quantiles are read from running totals, not by merging 60 buckets at
	 * each evaluation: totals[k] is the sum of sketch k of every bucket
	 * numbered ≥ floor. A bucket is subtracted when it leaves the window
	 * (at evaluation) or is recycled, whichever comes first.
	 */
	struct sketch *totals;	 /* nsketches */
	int64_t floor;
	bool totals_stale;	 /* an add or subtract failed (no memory): rebuild */
	/* The bucket written last (events come in runs of the same second):
	 * saves two divisions per event. */
	int64_t hot_start_us;	 /* its first µs, or INT64_MAX */
	size_t hot_slot;
	/* Shared windows: the other replicas' buckets, folded in by
	 * window_events and window_agg (NULL: local only). Not owned. */
	const struct window *remote;
};

struct window_shape {
	int64_t width_us;  /* bucket width */
	unsigned nwin;	   /* buckets covering the window */
	unsigned nb;	   /* ring size (nwin + 2: the current and a late margin) */
	const struct expr *expr;
};

int window_init(struct window *w, const struct window_shape *s);
void window_free(struct window *w, const struct window_shape *s);
/* Add ev (at ev->time_us); 0, or -ERANGE when it is older than the ring. */
int window_add(struct window *w, const struct window_shape *s, struct parser_event *ev,
	       pcre2_match_data *md, const struct newctx *nc);
/* Events in the window ending at now. */
double window_events(const struct window *w, const struct window_shape *s, int64_t now_us);
/* Value of aggregate i over the window ending at now_us; NaN when undefined
 * (no values, a ratio over nothing). scratch is a sketch/hll workspace. */
double window_agg(struct window *w, const struct window_shape *s, unsigned i,
		  int64_t now_us, struct sketch *sk_scratch, struct hll *hll_scratch);
/* Saved state (kl_buf_put_* encoding). window_decode reads into a window
 * fresh from window_init: 0, -EINVAL (r marked bad; the window may hold part
 * of it: free it) or -ENOMEM. */
int window_encode(const struct window *w, const struct window_shape *s, struct kl_buf *out);
int window_decode(struct window *w, const struct window_shape *s, struct kl_rd *r);

/*
 * Shared windows: one bucket as a snapshot another replica merges. The
 * encoding starts with the shape (bucket width, cells, sketches, hlls) so a
 * replica running a different rule under the same name is refused rather
 * than misread; then the cells, the sketches and the hlls, exactly.
 *
 * window_bucket_encode appends bucket number `bucket` of w to out: 0,
 * -ENOENT (not in the ring any more) or -ENOMEM.
 * window_bucket_clear empties bucket `bucket` of w (a remote window about to
 * take a fresh answer for it): 0, or -ERANGE when a newer bucket holds its
 * slot (the answer is stale).
 * window_bucket_merge adds an encoded bucket into w's bucket `bucket`
 * (cleared first): cells summed, min/min, max/max, last by time, sketches
 * merged exactly, hlls as unions. 0, -EINVAL (not an encoding of this shape)
 * or -ENOMEM; w is unchanged on failure.
 */
int window_bucket_encode(const struct window *w, const struct window_shape *s, int64_t bucket,
			 struct kl_buf *out);
int window_bucket_clear(struct window *w, const struct window_shape *s, int64_t bucket);
int window_bucket_merge(struct window *w, const struct window_shape *s, int64_t bucket,
			const char *data, size_t len);

/* ---- rules, groups, the set (rules.c; shared.c reads them too) ----------- */

#define MAX_BY 8

struct shared_rule;  /* shared.c: a shared rule's view of the other replicas */

enum astate { S_INACTIVE, S_PENDING, S_FIRING };

struct group {
	uint64_t hash;
	struct kl_str *vals; /* nby owned copies of the by-values ("" when absent) */
	struct window w;
	/* Shared rules: the other replicas' buckets of this group (shared.c),
	 * and the buckets written since the last publish (INT64_MAX..INT64_MIN:
	 * none). */
	struct window *remote;
	int64_t pub_lo, pub_hi;
	int64_t pub_hot; /* w.hot_start_us when last marked */
	struct hist *hists;	/* expr.nhists: the zscore/baseline histories */
	enum astate state;
	int64_t since_us;	/* pending since, or firing since */
	int64_t false_since_us; /* firing, condition false since (or -1) */
};

struct rule {
	char *alert;
	char *expr_src;	/* as written: a reload keeps the state of unchanged rules */
	char *file;
	int line;
	unsigned source;
	struct expr expr;
	const struct node *value_node;
	struct window_shape shape;
	int64_t window_us;
	int64_t for_us;
	int64_t keep_us;
	uint64_t min_events;
	unsigned by[MAX_BY];
	char *by_names[MAX_BY];
	size_t nby;
	struct rules_label *labels; /* owned strings */
	size_t nlabels;
	struct rules_label *annotations; /* templates, owned */
	size_t nannotations;
	struct group *groups;
	size_t ngroups;
	size_t max_groups;
	struct seen **seen;	/* per aggregate: new()'s table, else NULL */
	int32_t *index;	   /* open addressing: group index + 1, 0 = empty */
	size_t index_mask;
	bool dirty;
	uint64_t dropped;	 /* events of new groups past max_groups */
	uint64_t dropped_logged; /* dropped when last logged */
	int64_t dropped_log_us;
	uint64_t evaluations;	 /* observability (rules_rule_info) */
	int64_t eval_ns;
	int64_t fed_read_us;	 /* newest read time fed since the last evaluation */
	bool shared;		 /* `shared: true`: merged across replicas (shared.c) */
	struct shared_rule *sh;	 /* NULL: not shared now */
};

struct rules_set {
	struct rule *rules;
	size_t n;
	const struct rules_source *sources;
	size_t nsources;
	unsigned **by_source; /* per source: rule indexes */
	size_t *nby_source;
	pcre2_match_data *md;
	struct sketch sk_scratch;
	struct hll hll_scratch;
	int64_t eval_interval_us;
	int64_t last_tick_us;
	int64_t last_now_us;
	struct rules_stats stats;
	struct kl_buf render; /* annotation rendering scratch */
	struct rules_label *out_labels;
	struct rules_label *out_ann;
	uint64_t generation; /* changes whenever what rules_save writes does */
	struct shared_set *shared; /* shared.c; NULL: not in shared mode */
};


struct group *group_of_values(struct rules_set *rs, struct rule *r, const struct kl_str *vals);
void group_release(struct rule *r, struct group *g);

/* shared.c */
void shared_free(struct rules_set *rs);
/* Note that g's bucket holding its newest write changed (rules_feed). */
static inline void shared_mark(struct group *g)
{
	if (g->w.hot_start_us == g->pub_hot)
		return;
	g->pub_hot = g->w.hot_start_us;
	if (g->pub_hot < g->pub_lo)
		g->pub_lo = g->pub_hot;
	if (g->pub_hot > g->pub_hi)
		g->pub_hi = g->pub_hot;
}

#endif
