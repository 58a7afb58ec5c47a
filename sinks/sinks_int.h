/*
 * sinks_int.h — private to sinks/: the pieces behind the notification path.
 *
 *   policy.c   routes, grouping (group_wait / group_interval / repeat_interval),
 *              send_resolved, silences, inhibition → notifications
 *   format.c   a notification → the bytes of one payload format
 *   spool.c    an append-only, fsync'd queue of payloads not yet delivered
 *   http.c     libcurl's multi interface on the libev loop
 *   deliver.c  per sink: spool → http, retries with backoff and jitter
 *
 * Nothing here blocks the loop; nothing here allocates per event (only per
 * alert transition and per notification, which are rare by design).
 */
#ifndef SINKS_INT_H
#define SINKS_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/kl.h"

struct ev_loop;

/* ---- notifications (policy.c → format.c) ----------------------------------- */

struct notif_label {
	const char *key;
	const char *value;
};

struct notif_alert {
	bool firing;			 /* false: resolved */
	const struct notif_label *labels; /* includes "alertname"; sorted by key */
	size_t nlabels;
	const struct notif_label *annotations; /* rendered; includes "value" */
	size_t nannotations;
	int64_t starts_us;
	int64_t ends_us;		 /* 0 while firing */
	double value;
	char fingerprint[17];		 /* 16 hex digits, NUL-terminated */
};

struct notification {
	const char *receiver;		 /* the sink's name */
	const char *group_key;		 /* stable per route and group */
	bool firing;			 /* any alert firing */
	const struct notif_label *group_labels; /* sorted by key */
	size_t ngroup_labels;
	const struct notif_label *common_labels; /* labels equal in every alert; sorted */
	size_t ncommon_labels;
	const struct notif_label *common_annotations; /* sorted */
	size_t ncommon_annotations;
	const char *external_url;	 /* "" if none configured */
	const struct notif_alert *alerts;
	size_t nalerts;
	int64_t read_us;		 /* read time of the line behind it, 0: none */
};

/* ---- format.c ----------------------------------------------------------------- */

enum sink_format {
	FORMAT_WEBHOOK,	     /* Alertmanager webhook payload, version 4 */
	FORMAT_ALERTMANAGER, /* Alertmanager API v2: POST /api/v2/alerts body (a JSON array) */
	FORMAT_SLACK,	     /* Slack incoming webhook; Mattermost and Rocket.Chat accept it */
	FORMAT_DISCORD,	     /* Discord webhook (content + embeds) */
	FORMAT_TEAMS,	     /* Microsoft Teams incoming webhook (MessageCard) */
};

/*
 * Append the payload of n in format f to out. Always valid UTF-8 JSON whatever
 * the labels and annotations hold. 0 or -ENOMEM.
 */
int format_payload(enum sink_format f, const struct notification *n, struct kl_buf *out);
/* Alertmanager's fingerprint of a label set: 64-bit FNV-1a over the sorted
 * names and values with 0xff separators, as 16 lower-case hex digits. */
void format_fingerprint(const struct notif_label *labels, size_t n, char out[17]);

/* ---- spool.c ------------------------------------------------------------------- */

struct spool;

struct spool_rec {
	uint64_t id;		/* increasing, never reused */
	const char *sink;	/* the sink's name */
	size_t sink_len;
	const char *body;
	size_t len;
	int64_t created_us;
};

/*
 * Open (creating) the spool in dir: file dir/spool.log. Pending records from
 * a previous run are loaded (a torn last record, from a crash mid-write, is
 * ignored and counted). max_bytes bounds the file: an append past it drops the
 * oldest pending records (counted and logged). 0 or -errno.
 */
int spool_open(const char *dir, uint64_t max_bytes, struct spool **out);
void spool_close(struct spool *s); /* accepts NULL */
/* Append a record and fsync it before returning. 0 or -errno (nothing added). */
int spool_append(struct spool *s, const char *sink, const void *body, size_t len,
		 int64_t now_us, uint64_t *id);
/* Mark delivered (or given up). Compacts the file (temp + fsync + rename) when
 * more than half of it is acknowledged. 0 or -errno. */
int spool_ack(struct spool *s, uint64_t id);
/* Pending records in id order; the record views live until the next call
 * that changes the spool. */
size_t spool_pending(const struct spool *s);
const struct spool_rec *spool_get(const struct spool *s, size_t i);

struct spool_stats {
	uint64_t appended;
	uint64_t acked;
	uint64_t dropped;   /* over max_bytes */
	uint64_t torn;	    /* damaged records skipped at open */
	uint64_t bytes;	    /* file size */
	uint64_t compactions;
};
void spool_get_stats(const struct spool *s, struct spool_stats *out);

/* ---- http.c ----------------------------------------------------------------------- */

struct http;

struct http_request {
	const char *url;
	const char *const *headers; /* "Name: value" strings; NULL-terminated; may be NULL */
	const char *body;
	size_t len;
	long timeout_ms;	    /* whole request; 0: 10 s */
	bool tls_insecure;	    /* skip certificate and host verification */
};

struct http_response {
	long status;		    /* HTTP status, 0 when no response */
	int curl_code;		    /* CURLE_OK or curl's error */
	const char *error;	    /* curl's message when curl_code != 0, else "" */
	double retry_after_s;	    /* Retry-After in seconds, or -1 */
	const char *body_first_line; /* first line of the response body (≤ 200 bytes) */
	double seconds;		    /* total time */
};

typedef void (*http_done_fn)(void *ctx, const struct http_response *r);

/* A multi handle on loop (socket and timer callbacks as libev watchers). */
struct http *http_new(struct ev_loop *loop);
void http_free(struct http *h); /* aborts transfers in flight (their callbacks are not called) */
/* Start a POST; request data are copied. done runs on the loop, once. 0 or -errno. */
int http_post(struct http *h, const struct http_request *req, http_done_fn done, void *ctx);
size_t http_inflight(const struct http *h);

/* HMAC-SHA256 of data with key, as 64 lower-case hex digits + NUL. */
void hmac_sha256_hex(const void *key, size_t klen, const void *data, size_t len, char out[65]);

/* ---- deliver.c: one notifier sink ------------------------------------------------ */

struct sink_spec;
struct sink_stats;
struct sink_latency;
struct notifier;

/*
 * A notifier sends the messages of one sink, in spool order, one at a time
 * (so a group's messages arrive in order), retrying failures with exponential
 * backoff and jitter (1 s doubling to 5 min, or the receiver's Retry-After).
 */
struct notifier *notifier_new(struct ev_loop *loop, struct http *http, struct spool *spool,
			      const struct sink_spec *spec, const char *external_url);
void notifier_free(struct notifier *n);
const char *notifier_name(const struct notifier *n);
bool notifier_is_alertmanager(const struct notifier *n);
/* Format n, spool it (fsync'd), start delivery. 0 or -errno (logged). */
int notifier_send(struct notifier *nt, struct notification *n, int64_t now_us);
/* Deliver whatever the spool holds for this sink (at start, after a restart). */
void notifier_kick(struct notifier *n);
void notifier_get_stats(const struct notifier *n, struct sink_stats *out);
/* Add this notifier's line-to-page latencies to out (bounds set too). */
void notifier_add_latency(const struct notifier *n, struct sink_latency *out);
void notifier_count(struct notifier *n, uint64_t silenced, uint64_t inhibited);
/* "scheme://host[:port]/…": a URL safe to log. */
void redact_url(const char *url, char *out, size_t outlen);

/* ---- policy.c -------------------------------------------------------------------- */

struct sinks_spec;
struct rules_transition;
struct policy;

struct policy *policy_new(struct ev_loop *loop, const struct sinks_spec *spec,
			  struct notifier **notifiers, size_t nnotifiers, int *err);
void policy_free(struct policy *p);
void policy_alert(struct policy *p, const struct rules_transition *t);
struct sink_redis;
/* Shared mode: take the group's lease before a message leaves (NULL: none). */
void policy_set_redis(struct policy *p, struct sink_redis *r);

#endif
