/*
 * sinks.h — where alert transitions and events go.
 *
 * Two families of sink:
 *  - records: `stdout` (every alert transition as one JSON line, the contract's
 *    line) and `jsonl` (JSON lines appended to a file: transitions, or with
 *    what: events every parsed event). They see everything, at once, and ignore
 *    routes.
 *  - notifiers: `webhook` (Alertmanager's webhook payload v4), `alertmanager`
 *    (an existing Alertmanager's /api/v2/alerts), `slack` (also Mattermost and
 *    Rocket.Chat), `discord`, `teams`. Transitions reach them through the
 *    notification policy: routes pick the sinks, alerts of one rule and route
 *    are grouped into one message (group_wait, group_interval), firing groups
 *    are repeated (repeat_interval), resolved alerts are sent once
 *    (send_resolved), silences and inhibition mute. Every message is written to
 *    an fsync'd spool before it is sent, and removed only once the receiver
 *    took it (2xx) or refused it for good (4xx other than 429): a receiver
 *    outage or a restart loses nothing. Delivery runs on the loop through
 *    libcurl's multi interface; ingestion never waits for it.
 *
 * The program builds a struct sinks_spec from the configuration and hands it
 * to sinks_new; the spec is copied where needed and may be freed afterwards.
 */
#ifndef SINKS_H
#define SINKS_H

#include <stdbool.h>
#include <stdint.h>

#include "common/kl.h"
#include "parsers/parsers.h"
#include "rules/rules.h"

struct ev_loop;
struct sinks;

enum sink_kind {
	SINK_STDOUT,
	SINK_JSONL,
	SINK_WEBHOOK,
	SINK_ALERTMANAGER,
	SINK_SLACK,
	SINK_DISCORD,
	SINK_TEAMS,
};

/* "stdout", "jsonl", "webhook", … → kind; 0 or -EINVAL. */
int sink_kind_from_name(const char *name, enum sink_kind *out);
const char *sink_kind_name(enum sink_kind k);
static inline bool sink_kind_notifies(enum sink_kind k)
{
	return k >= SINK_WEBHOOK;
}

struct sink_spec {
	const char *name;
	enum sink_kind kind;
	const char *path;	/* jsonl */
	bool events;		/* jsonl: every event rather than transitions */
	const char *url;	/* notifiers; a secret: never logged whole */
	const char *secret;	/* HMAC-SHA256 key, or NULL */
	bool tls_insecure;	/* tls_verify: false */
	int64_t timeout_us;	/* per request; 0: 10 s */
};

struct sink_match {
	const char *name;
	const char *value;
};

struct notify_spec {
	int64_t group_wait_us;
	int64_t group_interval_us;
	int64_t repeat_interval_us;
	bool send_resolved;
};

/* Defaults: Alertmanager's (group_wait 30s, group_interval 5m,
 * repeat_interval 4h, send_resolved true). */
void notify_spec_defaults(struct notify_spec *n);

struct route_spec {
	const struct sink_match *match; /* every one must equal the alert's label */
	size_t nmatch;
	const char *const *sinks;	/* names of notifier sinks */
	size_t nsinks;
	bool cont;			/* continue to the next routes after a match */
	struct notify_spec notify;
	/* Labels that make a group (one message); none: alertname, i.e. one
	 * group per rule; "..." alone: every alert is its own group. */
	const char *const *group_by;
	size_t ngroup_by;
};

struct inhibit_spec {
	const struct sink_match *source_match; /* the muting alert (firing) */
	size_t nsource;
	const struct sink_match *target_match; /* the muted alert */
	size_t ntarget;
	const char *const *equal;	       /* labels both must share */
	size_t nequal;
};

struct sinks_spec {
	const char *state_dir;	       /* spool and silences live here */
	const char *external_url;      /* in webhook payloads; may be NULL */
	uint64_t spool_max_bytes;      /* 0: 64 MiB */
	const struct sink_spec *sinks;
	size_t nsinks;
	const struct route_spec *routes; /* none: one route to every notifier */
	size_t nroutes;
	struct notify_spec notify;     /* defaults for routes */
	const struct inhibit_spec *inhibits;
	size_t ninhibits;
	const struct sink_redis_spec *redis; /* shared mode, or NULL */
};

/*
 * Open every sink of spec. loop is needed by notifiers (NULL is fine when
 * there are none). Pending messages found in the spool are queued for
 * delivery. NULL with *err = -errno on failure (logged with the sink's name).
 */
struct sinks *sinks_new(struct ev_loop *loop, const struct sinks_spec *spec, int *err);
/* Stops every watcher, flushes the record sinks, closes the spool (what is
 * pending stays in it for the next start). Accepts NULL. */
void sinks_free(struct sinks *s);

/* An alert transition, at t->at_us (the caller's clock: the wall clock). */
void sinks_alert(struct sinks *s, const struct rules_transition *t);
bool sinks_want_events(const struct sinks *s);
void sinks_event(struct sinks *s, const char *source, struct parser_event *ev);
/* Write out buffered record lines (after each read batch). */
void sinks_flush(struct sinks *s);

struct sink_stats {
	uint64_t written;   /* records: lines; notifiers: messages delivered (2xx) */
	uint64_t failed;    /* records: lines lost; notifiers: messages given up (4xx) */
	uint64_t retried;   /* notifiers: attempts that will be retried */
	uint64_t spooled;   /* notifiers: messages written to the spool */
	uint64_t silenced;  /* alerts left out of a message by a silence */
	uint64_t inhibited; /* alerts left out by an inhibit rule */
};
/* Stats of the sink named name; -ENOENT if there is none. */
int sinks_get_stats(const struct sinks *s, const char *name, struct sink_stats *out);
/* Messages written to the spool so far, every notifier summed: the caller
 * saves its own state when this moves (see cmd_run's checkpoint). */
uint64_t sinks_spooled(const struct sinks *s);

/*
 * Line-to-page latency: for each message a notifier delivered (2xx) that
 * carries a transition caused by a line (rules_transition.read_us), the time
 * from that line's read to the 2xx; the earliest such line when a message
 * holds several. Summed over every notifier. Buckets are per bucket (not
 * cumulative); counts[SINK_LATENCY_BUCKETS] is above the largest bound.
 */
#define SINK_LATENCY_BUCKETS 13
struct sink_latency {
	double le[SINK_LATENCY_BUCKETS]; /* upper bounds, seconds, ascending */
	uint64_t counts[SINK_LATENCY_BUCKETS + 1];
	uint64_t count;
	double sum_s;
};
void sinks_get_latency(const struct sinks *s, struct sink_latency *out);

/*
 * The contract's alert line, without the newline:
 * {"at":"…Z","status":"firing","alert":"X","labels":{…},"value":0.07,
 *  "annotations":{…},"started":"…Z"}
 */
int sink_transition_json(const struct rules_transition *t, struct kl_buf *out);

/* ---- Redis: the connection behind shared mode (redis.c) ----------------------
 *
 * One connection on the loop, reconnected with backoff; nothing waits for it.
 * The sinks use it for the notification lease and the stream; the main
 * program also hands it to the rules as their bucket store. Every call
 * returns at once: while Redis is down (or MAX_INFLIGHT commands wait), a put
 * or a get is dropped (counted) and a lease answers "decide locally".
 */
struct sink_redis;
struct sink_redis_spec {
	const char *host;
	uint16_t port;
	unsigned db;
	const char *password;	/* a secret: never logged */
	const char *replica;	/* this process's name in fields and leases */
	int64_t lease_us;
	const char *stream_key; /* NULL: no stream */
	uint64_t stream_maxlen;
	bool stream_events;	/* the stream takes events (else alert transitions) */
	bool tls;		/* rediss:// (sinks/redis_tls.h) */
	const char *tls_ca_file; /* NULL: the system's CAs */
	bool tls_insecure;	/* `tls_verify: false`: any certificate, any name */
};
struct sink_redis_field {
	const char *name;
	size_t nlen;
	const char *val;
	size_t vlen;
};
/* An HGETALL's answer (pointers valid during the call only). */
typedef void (*sink_redis_hash_fn)(void *ctx, uint64_t tag, const char *key,
				   const struct sink_redis_field *f, size_t n);
/* The connection came up (true) or went down (false). */
typedef void (*sink_redis_state_fn)(void *ctx, bool up);
/* A lease's verdict: 1 ours, 0 another replica's, -1 unknown (Redis lost:
 * decide locally), -2 cancelled (shutting down: do nothing). */
typedef void (*sink_redis_lease_fn)(void *ctx, int verdict);

struct sink_redis_stats {
	bool up;
	size_t inflight;
	uint64_t connects, disconnects, slow;
	uint64_t commands, replies, errors, dropped;
	uint64_t bytes_out, bytes_in; /* bytes in: HGETALL payloads */
	uint64_t leases_won, leases_lost, leases_local;
	uint64_t stream_added;
};

/* NULL on allocation failure. Connects at sink_redis_start. */
struct sink_redis *sink_redis_new(struct ev_loop *loop, const struct sink_redis_spec *spec);
void sink_redis_start(struct sink_redis *r, sink_redis_hash_fn hash_fn,
		      sink_redis_state_fn state_fn, void *ctx);
void sink_redis_free(struct sink_redis *r);
bool sink_redis_up(const struct sink_redis *r);
const char *sink_redis_replica(const struct sink_redis *r);
/* HSET key field val, and PEXPIRE key ttl_ms (once a second per key). */
void sink_redis_hset(struct sink_redis *r, const char *key, const char *field, size_t flen,
		     const char *val, size_t vlen, int64_t ttl_ms);
/* HGETALL key; the answer comes to the hash callback with tag (or never). */
void sink_redis_hgetall(struct sink_redis *r, const char *key, uint64_t tag);
/* Take or renew klaxon:lease:NAME for the lease time: 0 and fn is called
 * later (always once), or -EAGAIN (down, full: decide locally, fn is not
 * called). */
int sink_redis_lease(struct sink_redis *r, const char *name, sink_redis_lease_fn fn, void *ctx);
/* The lease holder marks the message it sent (its hash) for the group;
 * sink_redis_sent reads the mark back: fn(ctx, status, hash) later, always
 * once (status 1 found, 0 none, -1 unknown, -2 cancelled), and 0; or
 * -EAGAIN / -ENOMEM at once (fn not called). */
typedef void (*sink_redis_sent_fn)(void *ctx, int status, uint64_t hash);
void sink_redis_mark_sent(struct sink_redis *r, const char *name, uint64_t hash);
int sink_redis_sent(struct sink_redis *r, const char *name, sink_redis_sent_fn fn, void *ctx);
int64_t sink_redis_lease_ms(const struct sink_redis *r);
/* XADD the stream MAXLEN ~ N, if it takes this kind (event or transition). */
void sink_redis_xadd(struct sink_redis *r, bool event, const char *kind, const char *json,
		     size_t len);
bool sink_redis_streams(const struct sink_redis *r, bool events);
void sink_redis_get_stats(const struct sink_redis *r, struct sink_redis_stats *out);
/* The connection the sinks were opened with (sinks_spec.redis), or NULL. */
struct sink_redis *sinks_redis(const struct sinks *s);

/* ---- silences (state_dir/silences.json) ---------------------------------- */

struct silence_matcher {
	char *name;
	char *value;
	bool regex; /* value is a PCRE2 pattern matched against the whole label */
};

struct silence {
	char *id;
	struct silence_matcher *matchers;
	size_t nmatchers;
	int64_t starts_us;
	int64_t ends_us;
	int64_t created_us;
	char *comment;
};

struct silences {
	struct silence *items;
	size_t n;
};

/* Load state_dir/silences.json (a missing file is an empty list). 0 or
 * -errno / -EINVAL (the message is logged with the path). */
int silences_load(const char *state_dir, struct silences *out);
/* Write the list atomically (temp, fsync, rename). */
int silences_save(const char *state_dir, const struct silences *s);
void silences_free(struct silences *s);
/* A new id (random, 16 hex digits) into out[17]. */
void silence_new_id(char out[17]);
/* Whether the silence is active at now and matches every matcher against the
 * label set. */
bool silence_matches(const struct silence *s, const struct sink_match *labels, size_t n,
		     int64_t now_us);

#endif
