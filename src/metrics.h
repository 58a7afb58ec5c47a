/*
 * metrics.h — klaxon's own numbers in the Prometheus text exposition format
 * (version 0.0.4), for `/metrics` (private to the main program).
 *
 * A pure function from a snapshot to text: the caller (src/observe.c) fills
 * the snapshot from the stages' stats; nothing here reads a clock, a file or
 * a socket, so the renderer is tested without either.
 */
#ifndef KLAXON_METRICS_H
#define KLAXON_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "common/kl.h"

struct metrics_source {
	const char *name;
	uint64_t lines;		/* lines read from its files */
	uint64_t bytes;		/* bytes read from its files */
	uint64_t events;	/* records parsed into events */
	uint64_t parse_errors;	/* records its parser did not match */
	uint64_t bytes_behind;	/* written to its files, not read yet */
	double seconds_behind;	/* see observe.h */
};

struct metrics_rule {
	const char *name;	/* its `alert` */
	const char *file;	/* where it is written */
	int line;
	uint64_t evaluations;
	double eval_seconds;
	uint64_t pending;
	uint64_t firing;
};

struct metrics_sink {
	const char *name;
	const char *type;	/* webhook, slack, stdout, ... */
	uint64_t sent;		/* records: lines written; notifiers: messages delivered (2xx) */
	uint64_t failed;
	uint64_t retried;
	uint64_t spooled;
};

/* A histogram: le[0..nle) ascending finite bounds, counts[0..nle] per bucket
 * (not cumulative; counts[nle] above the largest bound). */
struct metrics_histogram {
	const double *le;
	size_t nle;
	const uint64_t *counts;
	uint64_t count;
	double sum;
};

/* Shared mode's figures (metrics_snapshot.redis; NULL: no `redis:`). */
struct metrics_redis {
	bool up;
	uint64_t connects, disconnects, slow;
	uint64_t commands, bytes_out, bytes_in, dropped, errors;
	uint64_t leases_won, leases_lost, leases_local;
	uint64_t stream_added;
	uint64_t buckets_put, buckets_get, snapshots_merged, snapshots_refused;
};

struct metrics_snapshot {
	const char *version;
	const struct metrics_source *sources;
	size_t nsources;
	const struct metrics_rule *rules;
	size_t nrules;
	uint64_t rules_groups_dropped; /* events of new groups past max_groups */
	uint64_t rules_late_events;    /* events older than their rule's window */
	const struct metrics_sink *sinks;
	size_t nsinks;
	struct metrics_histogram line_to_page; /* nle 0: no buckets are written */
	const struct metrics_redis *redis;
};

/*
 * Append the whole exposition to out: every family with its HELP and TYPE
 * lines, even when it has no samples (so a scrape always shows the names).
 * 0, or -ENOMEM (out then holds a part: discard it).
 */
int metrics_render(const struct metrics_snapshot *s, struct kl_buf *out);

/* Append v as a label value, between its quotes: backslash, double quote and
 * newline escaped, invalid UTF-8 replaced by U+FFFD. 0 or -ENOMEM. */
int metrics_label_value(struct kl_buf *out, const char *v);

#endif
