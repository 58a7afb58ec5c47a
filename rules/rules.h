/*
 * rules.h — alert rules over rolling windows of events.
 *
 * A rule set is loaded from rule files against the sources the configuration
 * defines (each with its parser, so field names are resolved to indexes and
 * checked at load). Events are fed as they are parsed; evaluation happens when
 * the caller says so, with the current time as an argument: rules never read a
 * clock themselves, so `run` (wall clock) and `replay` (event-time clock) share
 * every line of code here.
 *
 * Memory depends on rules × buckets × groups, never on traffic: each rule keeps
 * a ring of time buckets per group (bucket width ≤ window/60), groups are capped
 * per rule, quantiles live in fixed-accuracy mergeable sketches.
 *
 * Alert state per rule and group: inactive → pending (condition true, `for`
 * not yet elapsed) → firing → resolved (condition false for keep_firing_for);
 * a transition into firing or resolved is reported through the callback.
 */
#ifndef RULES_H
#define RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/kl.h"
#include "parsers/parsers.h"

struct rules_set;

/* A source rules may name: its name and the parser its events come from. */
struct rules_source {
	const char *name;
	const struct parser *parser;
};

struct rules_label {
	const char *key;
	const char *value;
};

enum rules_status {
	RULES_FIRING,
	RULES_RESOLVED,
};

/* One alert transition. All pointers are valid only during the callback. */
struct rules_transition {
	int64_t at_us;		  /* instant of the transition (the evaluation clock) */
	enum rules_status status;
	const char *alert;	  /* the rule's `alert` name */
	const struct rules_label *labels; /* source, the rule's labels, then `by` fields */
	size_t nlabels;
	const struct rules_label *annotations; /* templates rendered */
	size_t nannotations;
	double value;		  /* the expression's left-hand value at at_us */
	int64_t started_us;	  /* when this firing began */
	int64_t window_us;
	/* A firing alert restored from saved state (rules_announce): already
	 * notified before the restart, so sinks record it without paging. */
	bool restored;
	/* Read time (wall clock) of the newest event fed to the rule since its
	 * previous evaluation: the line that tipped the condition is among
	 * those. 0 when none was (a time-driven transition: `for` elapsed, a
	 * window emptied) and for restored alerts. Sinks measure line-to-page
	 * latency from it. */
	int64_t read_us;
};

typedef void (*rules_transition_fn)(void *ctx, const struct rules_transition *t);

/*
 * Load and compile every rule in files[0..nfiles). Each problem is reported
 * through d as FILE:LINE:COL: message (unknown source, unknown field, a string
 * field used as a number, an unknown function, a syntax error in expr with the
 * column inside it, a bad duration, ...), and loading goes on to find the
 * others; returns NULL if there was any. The sources array must outlive the
 * set (the parsers are referenced, not copied).
 */
struct rules_set *rules_load(const char *const *files, size_t nfiles,
			     const struct rules_source *sources, size_t nsources,
			     struct kl_diag *d);
void rules_free(struct rules_set *rs);
size_t rules_count(const struct rules_set *rs);

/*
 * Feed one event of source source_idx (index into the sources given to
 * rules_load). Updates the windows of every rule over that source, at the
 * event's time_us. Marks those rules for evaluation. No allocation unless a
 * new group appears (bounded by the cardinality cap).
 */
void rules_feed(struct rules_set *rs, unsigned source_idx, struct parser_event *ev);

/*
 * Evaluate at now_us: every rule if the eval tick (eval_interval) has come,
 * otherwise only the rules fed since the last call. Expires buckets, advances
 * pending/firing states, and reports each transition through fn, in rule
 * order. now_us must not go backwards (a smaller value is treated as the last
 * one).
 */
void rules_eval(struct rules_set *rs, int64_t now_us, rules_transition_fn fn, void *ctx);
/* Evaluate every rule at now_us regardless of the tick (used by replay to
 * step through ticks). */
void rules_eval_all(struct rules_set *rs, int64_t now_us, rules_transition_fn fn, void *ctx);
void rules_set_eval_interval(struct rules_set *rs, int64_t us);
int64_t rules_eval_interval(const struct rules_set *rs);

/*
 * After a reload: move the windows and alert states of every rule of `from`
 * that is unchanged in `to` (same alert, source, expression, window, by) into
 * `to`, so a reload neither re-fires nor forgets an alert. Returns how many
 * rules kept their state; `from` is left with fresh state, to be freed.
 */
size_t rules_adopt_state(struct rules_set *to, struct rules_set *from);

/*
 * Saved state: every rule's groups (by-values, alert state and its instants,
 * window buckets), so a restart neither re-fires an alert that was firing nor
 * forgets one that was pending. rules_save appends an encoding of the whole
 * set to out (0 or -ENOMEM; out unchanged on failure). rules_restore reads
 * one back into a freshly loaded set: each saved rule whose identity (alert,
 * expression, source, window, by, max_groups) matches a rule of rs gives that
 * rule its state; saved rules with no match are skipped, and the count of
 * each is returned through the stats. Returns 0, -EINVAL for data that is
 * not a complete saved state (checksum, version, structure; then rs keeps
 * fresh state everywhere), or -ENOMEM.
 */
int rules_save(const struct rules_set *rs, struct kl_buf *out);
struct rules_restore_stats {
	size_t restored; /* rules that took their saved state */
	size_t skipped;	 /* saved rules that are gone or changed */
	size_t firing;	 /* firing alerts among the restored */
	size_t pending;
	int64_t saved_at_us;
};
int rules_restore(struct rules_set *rs, const char *data, size_t len,
		  struct rules_restore_stats *st);
/* A number that changes whenever the saved state would (events fed, alert
 * states advanced, groups forgotten): save when it moved. */
uint64_t rules_generation(const struct rules_set *rs);
/* Report every firing alert through fn with `restored` set (after
 * rules_restore: the sinks learn what is firing without a new page). */
void rules_announce(struct rules_set *rs, int64_t now_us, rules_transition_fn fn, void *ctx);

struct rules_stats {
	uint64_t evaluations;
	uint64_t events;
	uint64_t groups_dropped; /* events of a new group past the cardinality cap */
	uint64_t late_events;	 /* events older than their rule's window ring */
	uint64_t transitions;
	unsigned firing;
};
void rules_get_stats(const struct rules_set *rs, struct rules_stats *out);

/*
 * Read-only views for the main program's /metrics and /alerts. Strings point
 * into rs and live as long as it does.
 */
struct rules_rule_info {
	const char *alert;
	const char *source;
	const char *file;	/* the rule file and the line of the rule in it */
	int line;
	uint64_t evaluations;
	int64_t eval_ns;	/* time spent evaluating it, in all (monotonic clock) */
	size_t pending;		/* groups in each alert state now */
	size_t firing;
};
/* Rule i of rs (0 <= i < rules_count, in load order): 0, or -ERANGE. */
int rules_rule_info(const struct rules_set *rs, size_t i, struct rules_rule_info *out);

/* One pending or firing alert; pointers valid only during the callback. */
struct rules_alert_state {
	const char *alert;
	const struct rules_label *labels; /* as in a transition */
	size_t nlabels;
	bool firing;			  /* else pending */
	int64_t since_us;		  /* pending since, or firing since */
	double value;			  /* at the last evaluation instant; NaN: undefined */
	bool shared;			  /* judged on the replicas' union (shared mode) */
};
typedef void (*rules_alert_fn)(void *ctx, const struct rules_alert_state *a);
/* Report every pending and firing alert, rule by rule. Changes no state. */
void rules_each_alert(struct rules_set *rs, rules_alert_fn fn, void *ctx);

/*
 * Shared windows (shared mode). A shared rule (`shared: true`, or every rule
 * when share_all) keeps, per group, its own buckets and a copy of the other
 * replicas' buckets, and is judged on their merge. The rules never talk to
 * Redis: the main program hands them a store with two calls, both of which
 * must return at once (queue or drop; never wait):
 *
 *   put: HSET key field value + PEXPIRE key ttl_ms. One bucket of one group,
 *        as a snapshot: putting it again is harmless (idempotent).
 *   get: every field of key; the answer is handed back later through
 *        rules_shared_answer with the same tag (or never, if the store is
 *        lost: then rules_shared_lost).
 *
 * Keys are "klaxon:w:ALERT/SOURCE:BUCKET"; fields "REPLICA|GROUP" where GROUP
 * is the by-values, each a varint length and its bytes. The value is
 * window_bucket_encode's.
 */
struct rules_store {
	void *ctx;
	void (*put)(void *ctx, const char *key, const char *field, size_t flen, const char *val,
		    size_t vlen, int64_t ttl_ms);
	void (*get)(void *ctx, const char *key, uint64_t tag);
};
struct rules_field {
	const char *name;
	size_t nlen;
	const char *val;
	size_t vlen;
};
/*
 * Enter shared mode: replica names this process in the fields it writes
 * (copied; no '|'); share_all shares every rule, else those marked. 0 or
 * -ENOMEM. The store must outlive rs (or the next rules_share call).
 */
int rules_share(struct rules_set *rs, const struct rules_store *store, const char *replica,
		bool share_all);
/*
 * Once per eval tick while the store is up: put every bucket written since
 * the last sync, and get the buckets of the window that may still change
 * (and, once, those completed before: they are cached).
 */
void rules_shared_sync(struct rules_set *rs, int64_t now_us);
/* An answer to a get: fields[0..n); n = 0 for an empty hash. */
void rules_shared_answer(struct rules_set *rs, uint64_t tag, const char *key,
			 const struct rules_field *fields, size_t n);
/*
 * The store is gone (down, slow, restarted): forget the other replicas'
 * buckets, so every rule is judged on local windows alone, and put every live
 * bucket again at the next sync (a restarted Redis lost them).
 */
void rules_shared_lost(struct rules_set *rs);
struct rules_shared_stats {
	uint64_t puts;		/* buckets put */
	uint64_t gets;		/* buckets asked for */
	uint64_t fields;	/* other replicas' bucket snapshots merged */
	uint64_t refused;	/* snapshots not of this rule's shape (another version?) */
	size_t rules;		/* rules shared */
};
void rules_shared_get_stats(const struct rules_set *rs, struct rules_shared_stats *out);

/* Parse one expression on its own (for the fuzz target and tests): returns 0,
 * or -EINVAL with a message and the 1-based column of the problem. */
int rules_expr_check(const char *expr, const struct parser *p, char *err, size_t errlen,
		     int *col);

#endif
