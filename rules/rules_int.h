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
};

struct node {
	enum node_kind kind;
	enum cmp_op op;	 /* N_CMP */
	double num;	 /* N_NUM */
	unsigned agg;	 /* N_AGG: index into expr.aggs */
	struct node *a, *b;
};

struct expr {
	struct node *root;
	struct agg *aggs;
	size_t naggs;
	unsigned ncells;    /* numeric cells per bucket, cell 0 = all events */
	unsigned nsketches; /* quantile sketches per bucket */
	unsigned nhlls;	    /* distinct counters per bucket */
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
	       pcre2_match_data *md);
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

#endif
