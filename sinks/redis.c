/*
 * redis.c — the connection behind shared mode: shared windows' buckets, the
 * notification lease, the stream. hiredis's async context on the loop (its
 * libev adapter); nothing here waits for Redis.
 *
 * One connection, reconnected with exponential backoff (1 s, doubling, at
 * most 30 s) after a failed connect, a disconnect, or Redis being slow (a
 * command unanswered for SLOW_US with nothing answered meanwhile: the
 * connection is dropped, which answers every pending callback with NULL).
 * Each change of state is logged once and counted; the owner is told through
 * the state callback (the rules go local, and publish everything again when
 * Redis is back).
 *
 * Bounded: at most MAX_INFLIGHT commands wait for an answer; past that, puts
 * and gets are dropped (counted) and a lease is decided locally — never a
 * queue that grows while Redis is away, never a wait.
 *
 * hiredis frees its context itself after a failed connect, after a
 * disconnect and in redisAsyncFree (with every pending callback called with
 * a NULL reply). So r->ac is forgotten before anything that may free it,
 * and every callback checks that the context it is called for is r->ac.
 */
#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-function"
#include <hiredis/adapters/libev.h>
#pragma GCC diagnostic pop

#include "common/kl_lookup.h"
#include "sinks/redis_tls.h"
#include "sinks/sinks.h"

#define BACKOFF_MIN 1.0
#define BACKOFF_MAX 30.0
#define SLOW_US (3 * 1000000LL)
#define MAX_INFLIGHT 20000

/*
 * The lease: SET NX PX, and for the holder a renewal of its own lease, in
 * one atomic step (so a holder that pages again keeps it, and nobody else
 * can take it in between). 1: ours; 0: another replica's.
 */
static const char LEASE_LUA[] =
	"local v = redis.call('GET', KEYS[1]) "
	"if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end "
	"if v then return 0 end "
	"redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) return 1";

struct sink_redis {
	struct ev_loop *loop;
	char *host;
	uint16_t port;
	unsigned db;
	char *password;
	char *replica;
	int64_t lease_ms;
	char *stream_key;
	uint64_t stream_maxlen;
	bool stream_events;
	bool closing;	       /* in sink_redis_free: leases are cancelled */
	struct kl_lookup *lookup; /* the host name being looked up, or NULL */
	struct redis_tls_ctx *tls_ctx; /* rediss://, else NULL */
	struct redis_tls *tls;	       /* the bridge under r->ac (rediss://), or NULL */
	redisAsyncContext *ac; /* connecting or connected, or NULL */
	bool up;	       /* connected (AUTH and SELECT sent) */
	bool was_up;	       /* for "back" vs "connected" */
	bool down_logged;      /* the current outage was logged */
	bool unproven;	       /* connected, nothing answered yet */
	double backoff;
	ev_timer retry;
	ev_timer watchdog;
	int64_t wait_since_us; /* the oldest unanswered command, or the last answer */
	size_t inflight;
	char last_exp[256];    /* the key PEXPIRE'd last (once per key and sync) */
	int64_t last_exp_us;
	sink_redis_hash_fn hash_fn;
	sink_redis_state_fn state_fn;
	void *ctx;
	struct sink_redis_field *fields; /* scratch for HGETALL answers */
	size_t fcap;
	struct sink_redis_stats st;
};

/* One HGETALL in flight: what to answer with. */
struct hget {
	struct sink_redis *r;
	uint64_t tag;
	char key[];
};

/* One lease in flight. */
struct lease {
	sink_redis_lease_fn fn;
	void *ctx;
};

static void connect_now(struct sink_redis *r);

/* ---- state --------------------------------------------------------------------- */

static void schedule_retry(struct sink_redis *r)
{
	ev_timer_stop(r->loop, &r->retry);
	ev_timer_set(&r->retry, r->backoff, 0.0);
	ev_timer_start(r->loop, &r->retry);
	r->backoff = r->backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : r->backoff * 2;
}

/* The connection is gone (why says how): local from now on, retry later. */
static void went_down(struct sink_redis *r, const char *why)
{
	bool was = r->up;
	r->up = false;
	r->inflight = 0;
	r->last_exp[0] = '\0';
	redis_tls_free(r->tls); /* hiredis's side of it ends with its context */
	r->tls = NULL;
	if (!r->down_logged) {
		kl_log(KL_LOG_WARN,
		       "redis %s:%u: %s; going on alone (local windows, local notifications) and "
		       "reconnecting with backoff up to %gs",
		       r->host, r->port, why, BACKOFF_MAX);
		r->down_logged = true;
	}
	if (was) {
		r->st.disconnects++;
		if (r->state_fn)
			r->state_fn(r->ctx, false);
	}
	schedule_retry(r);
}

static void sent(struct sink_redis *r, size_t bytes)
{
	if (r->inflight++ == 0)
		r->wait_since_us = kl_mono_us();
	r->st.commands++;
	r->st.bytes_out += bytes;
}

/* A connection counts as back at its first answer, not at connect: a
 * stopped (SIGSTOP) Redis still accepts connections, and must not reset the
 * backoff or the "logged once" of its outage at each attempt. */
static void answered(struct sink_redis *r)
{
	if (r->inflight)
		r->inflight--;
	r->wait_since_us = kl_mono_us();
	r->st.replies++;
	if (!r->unproven)
		return;
	r->unproven = false;
	r->backoff = BACKOFF_MIN;
	kl_log(KL_LOG_INFO, "redis %s:%u: %s; shared mode on (replica '%s')", r->host, r->port,
	       r->was_up ? "connected again" : "connected", r->replica);
	r->was_up = true;
	r->down_logged = false;
}

/* Send argv formatted; false when not sent (down, full, no memory). */
static bool send_argv(struct sink_redis *r, redisCallbackFn *cb, void *priv, int argc,
		      const char **argv, const size_t *lens)
{
	if (!r->up || !r->ac || r->inflight >= MAX_INFLIGHT) {
		if (r->up)
			r->st.dropped++;
		return false;
	}
	char *cmd = NULL;
	int len = redisFormatCommandArgv(&cmd, argc, argv, lens);
	if (len < 0)
		return false;
	int rc = redisAsyncFormattedCommand(r->ac, cb, priv, cmd, (size_t)len);
	free(cmd);
	if (rc != REDIS_OK)
		return false;
	sent(r, (size_t)len);
	return true;
}

/* A reply to a command whose answer only matters as an error. */
static void on_status(redisAsyncContext *c, void *reply, void *priv)
{
	struct sink_redis *r = c->data;
	redisReply *rep = reply;
	if (!r || r->ac != c || !rep)
		return;
	answered(r);
	if (rep->type == REDIS_REPLY_ERROR) {
		r->st.errors++;
		if (r->st.errors == 1 || r->st.errors % 1000 == 0)
			kl_log(KL_LOG_WARN, "redis %s:%u: %.*s (%llu error(s) so far)", r->host, r->port,
			       (int)rep->len, rep->str, (unsigned long long)r->st.errors);
	}
}

/* AUTH's answer: a refused password is a configuration problem, said once. */
static void on_auth(redisAsyncContext *c, void *reply, void *priv)
{
	struct sink_redis *r = c->data;
	redisReply *rep = reply;
	if (!r || r->ac != c || !rep)
		return;
	answered(r);
	if (rep->type == REDIS_REPLY_ERROR) {
		kl_log(KL_LOG_ERROR,
		       "redis %s:%u: AUTH refused (%.*s): check `redis: password_file` or the URL's "
		       "password",
		       r->host, r->port, (int)rep->len, rep->str);
		r->ac = NULL;
		redisAsyncDisconnect(c);
		went_down(r, "AUTH refused");
	}
}

static void on_connect(const redisAsyncContext *c, int status)
{
	struct sink_redis *r = c->data;
	if (!r || r->ac != c)
		return;
	if (status != REDIS_OK) {
		char why[300];
		const char *tls = redis_tls_error(r->tls);
		snprintf(why, sizeof why, "cannot connect: %s",
			 tls ? tls : c->errstr[0] ? c->errstr : "failed");
		r->ac = NULL; /* hiredis frees it after this callback */
		went_down(r, why);
		return;
	}
	r->up = true;
	r->unproven = true;
	r->st.connects++;
	/* Pipelined ahead of anything else: they are answered first. */
	if (r->password) {
		const char *argv[] = { "AUTH", r->password };
		size_t lens[] = { 4, strlen(r->password) };
		send_argv(r, on_auth, NULL, 2, argv, lens);
	}
	if (r->db) {
		char db[16];
		snprintf(db, sizeof db, "%u", r->db);
		const char *argv[] = { "SELECT", db };
		size_t lens[] = { 6, strlen(db) };
		send_argv(r, on_status, NULL, 2, argv, lens);
	}
	const char *ping[] = { "PING" };
	size_t plen[] = { 4 };
	send_argv(r, on_status, NULL, 1, ping, plen); /* its answer proves the connection */
	if (r->state_fn)
		r->state_fn(r->ctx, true);
}

static void on_disconnect(const redisAsyncContext *c, int status)
{
	struct sink_redis *r = c->data;
	if (!r || r->ac != c)
		return;
	char why[300];
	const char *tls = redis_tls_error(r->tls); /* the bridge knows better */
	snprintf(why, sizeof why, "connection lost: %s",
		 tls ? tls : c->errstr[0] ? c->errstr : "closed by the server");
	r->ac = NULL;
	went_down(r, why);
}

/* rediss://: hiredis connects to a TLS bridge to addr (sinks/redis_tls.h). */
static redisAsyncContext *connect_tls(struct sink_redis *r, const struct sockaddr_storage *addr,
				      socklen_t len)
{
	char err[300];
	r->tls = redis_tls_start(r->loop, r->tls_ctx, addr, len, r->host, err, sizeof err);
	if (!r->tls) {
		went_down(r, err);
		return NULL;
	}
	redisAsyncContext *ac = redisAsyncConnectUnix(redis_tls_path(r->tls));
	if (!ac)
		went_down(r, "out of memory");
	return ac;
}

/* Connect to an address already resolved (hiredis would otherwise call
 * getaddrinfo itself, on the loop). */
static void connect_addr(struct sink_redis *r, const struct sockaddr_storage *addr,
			 socklen_t len)
{
	char ip[64];
	redisAsyncContext *ac;
	if (r->tls_ctx) {
		if (!(ac = connect_tls(r, addr, len)))
			return;
	} else if (kl_addr_text(addr, ip, sizeof ip) < 0) {
		went_down(r, "cannot use the resolved address");
		return;
	} else {
		ac = redisAsyncConnect(ip, r->port);
	}
	if (!ac) {
		went_down(r, "out of memory");
		return;
	}
	if (ac->err) {
		char why[160];
		snprintf(why, sizeof why, "cannot connect: %s", ac->errstr);
		redisAsyncFree(ac);
		went_down(r, why);
		return;
	}
	ac->data = r;
	r->ac = ac;
	redisLibevAttach(r->loop, ac);
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
}

static void cannot_resolve(struct sink_redis *r, const char *what)
{
	char why[200];
	snprintf(why, sizeof why, "cannot resolve %s: %s", r->host, what);
	went_down(r, why);
}

static void on_resolved(void *ctx, int err, const struct sockaddr_storage *addr,
			socklen_t len)
{
	struct sink_redis *r = ctx;
	r->lookup = NULL; /* the lookup frees itself after this callback */
	if (err)
		cannot_resolve(r, gai_strerror(err));
	else
		connect_addr(r, addr, len);
}

/* A name is looked up off the loop (a DNS server that does not answer would
 * otherwise hold every tailer and rule for seconds); an address is used as is. */
static void connect_now(struct sink_redis *r)
{
	struct sockaddr_storage addr;
	socklen_t len = 0;
	int rc = kl_lookup_start(r->loop, r->host, r->port, on_resolved, r, &r->lookup, &addr,
				 &len);
	if (rc == 1)
		connect_addr(r, &addr, len);
	else if (rc < 0)
		cannot_resolve(r, strerror(-rc));
}

static void on_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sink_redis *r = w->data;
	if (!r->ac && !r->lookup)
		connect_now(r);
}

/* Slow counts as down: a command unanswered for SLOW_US with no answer in
 * between. Dropping the connection answers the pending callbacks (NULL). */
static void on_watchdog(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sink_redis *r = w->data;
	if (!r->ac || !r->inflight || kl_mono_us() - r->wait_since_us < SLOW_US)
		return;
	redisAsyncContext *ac = r->ac;
	r->ac = NULL;
	r->st.slow++;
	went_down(r, "no answer for 3s (slow or stuck)");
	redisAsyncFree(ac);
}

/* ---- commands -------------------------------------------------------------------- */

void sink_redis_hset(struct sink_redis *r, const char *key, const char *field, size_t flen,
		     const char *val, size_t vlen, int64_t ttl_ms)
{
	const char *argv[] = { "HSET", key, field, val };
	size_t lens[] = { 4, strlen(key), flen, vlen };
	if (!send_argv(r, on_status, NULL, 4, argv, lens))
		return;
	/* One PEXPIRE per key and second, not per field. */
	int64_t now = kl_mono_us();
	if (!strcmp(r->last_exp, key) && now - r->last_exp_us < 1000000)
		return;
	char ms[24];
	snprintf(ms, sizeof ms, "%lld", (long long)ttl_ms);
	const char *eargv[] = { "PEXPIRE", key, ms };
	size_t elens[] = { 7, strlen(key), strlen(ms) };
	if (send_argv(r, on_status, NULL, 3, eargv, elens) && strlen(key) < sizeof r->last_exp) {
		memcpy(r->last_exp, key, strlen(key) + 1);
		r->last_exp_us = now;
	}
}

static void on_hgetall(redisAsyncContext *c, void *reply, void *priv)
{
	struct hget *h = priv;
	struct sink_redis *r = c->data;
	redisReply *rep = reply;
	if (!r || r->ac != c || !rep || rep->type != REDIS_REPLY_ARRAY) {
		if (r && r->ac == c && rep) {
			answered(r);
			r->st.errors++;
		}
		free(h);
		return;
	}
	answered(r);
	size_t n = rep->elements / 2;
	if (n > r->fcap) {
		struct sink_redis_field *f = realloc(r->fields, n * sizeof *f);
		if (!f) {
			free(h);
			return;
		}
		r->fields = f;
		r->fcap = n;
	}
	size_t k = 0;
	for (size_t i = 0; i + 1 < rep->elements; i += 2) {
		const redisReply *a = rep->element[i], *b = rep->element[i + 1];
		if (a->type != REDIS_REPLY_STRING || b->type != REDIS_REPLY_STRING)
			continue;
		r->fields[k++] = (struct sink_redis_field){ a->str, a->len, b->str, b->len };
		r->st.bytes_in += a->len + b->len;
	}
	if (r->hash_fn)
		r->hash_fn(r->ctx, h->tag, h->key, r->fields, k);
	free(h);
}

void sink_redis_hgetall(struct sink_redis *r, const char *key, uint64_t tag)
{
	size_t kl = strlen(key);
	if (!r->up)
		return;
	struct hget *h = malloc(sizeof *h + kl + 1);
	if (!h)
		return;
	h->r = r;
	h->tag = tag;
	memcpy(h->key, key, kl + 1);
	const char *argv[] = { "HGETALL", key };
	size_t lens[] = { 7, kl };
	if (!send_argv(r, on_hgetall, h, 2, argv, lens))
		free(h);
}

static void on_lease(redisAsyncContext *c, void *reply, void *priv)
{
	struct lease *l = priv;
	struct sink_redis *r = c->data;
	redisReply *rep = reply;
	int verdict = -1; /* unknown: the caller sends locally */
	if (r && r->closing) {
		l->fn(l->ctx, -2);
		free(l);
		return;
	}
	if (r && r->ac == c && rep) {
		answered(r);
		if (rep->type == REDIS_REPLY_INTEGER)
			verdict = rep->integer == 1 ? 1 : 0;
		else
			r->st.errors++;
	}
	if (r) {
		if (verdict == 1)
			r->st.leases_won++;
		else if (verdict == 0)
			r->st.leases_lost++;
		else
			r->st.leases_local++;
	}
	l->fn(l->ctx, verdict);
	free(l);
}

int sink_redis_lease(struct sink_redis *r, const char *name, sink_redis_lease_fn fn, void *ctx)
{
	struct kl_buf key = { 0 };
	char ms[24];
	struct lease *l = malloc(sizeof *l);
	if (!l || kl_buf_appendf(&key, "klaxon:lease:%s", name) < 0)
		goto local;
	*l = (struct lease){ fn, ctx };
	snprintf(ms, sizeof ms, "%lld", (long long)r->lease_ms);
	const char *argv[] = { "EVAL", LEASE_LUA, "1", key.p, r->replica, ms };
	size_t lens[] = { 4, sizeof LEASE_LUA - 1, 1, key.len, strlen(r->replica), strlen(ms) };
	if (!send_argv(r, on_lease, l, 6, argv, lens))
		goto local;
	kl_buf_free(&key);
	return 0;
local:
	free(l);
	kl_buf_free(&key);
	r->st.leases_local++;
	return -EAGAIN;
}

/* The holder's "sent" mark: which message of the group it told last. */
void sink_redis_mark_sent(struct sink_redis *r, const char *name, uint64_t hash)
{
	struct kl_buf key = { 0 };
	char hex[17], ms[24];
	if (kl_buf_appendf(&key, "klaxon:sent:%s", name) < 0)
		return;
	snprintf(hex, sizeof hex, "%016llx", (unsigned long long)hash);
	snprintf(ms, sizeof ms, "%lld", (long long)(2 * r->lease_ms + 60000));
	const char *argv[] = { "SET", key.p, hex, "PX", ms };
	size_t lens[] = { 3, key.len, 16, 2, strlen(ms) };
	send_argv(r, on_status, NULL, 5, argv, lens);
	kl_buf_free(&key);
}

struct sent_ask {
	sink_redis_sent_fn fn;
	void *ctx;
};

static void on_sent(redisAsyncContext *c, void *reply, void *priv)
{
	struct sent_ask *a = priv;
	struct sink_redis *r = c->data;
	redisReply *rep = reply;
	int status = -1;
	uint64_t hash = 0;
	if (r && r->closing) {
		status = -2;
	} else if (r && r->ac == c && rep) {
		answered(r);
		if (rep->type == REDIS_REPLY_NIL) {
			status = 0;
		} else if (rep->type == REDIS_REPLY_STRING && rep->len == 16) {
			char hex[17];
			memcpy(hex, rep->str, 16);
			hex[16] = '\0';
			hash = strtoull(hex, NULL, 16);
			status = 1;
		}
	}
	a->fn(a->ctx, status, hash);
	free(a);
}

int sink_redis_sent(struct sink_redis *r, const char *name, sink_redis_sent_fn fn, void *ctx)
{
	struct kl_buf key = { 0 };
	struct sent_ask *a = malloc(sizeof *a);
	if (!a || kl_buf_appendf(&key, "klaxon:sent:%s", name) < 0) {
		free(a);
		kl_buf_free(&key);
		return -ENOMEM;
	}
	*a = (struct sent_ask){ fn, ctx };
	const char *argv[] = { "GET", key.p };
	size_t lens[] = { 3, key.len };
	bool ok = send_argv(r, on_sent, a, 2, argv, lens);
	kl_buf_free(&key);
	if (!ok) {
		free(a);
		return -EAGAIN;
	}
	return 0;
}

int64_t sink_redis_lease_ms(const struct sink_redis *r)
{
	return r->lease_ms;
}

void sink_redis_xadd(struct sink_redis *r, bool event, const char *kind, const char *json,
		     size_t len)
{
	if (!r->stream_key || event != r->stream_events)
		return;
	char maxlen[24];
	snprintf(maxlen, sizeof maxlen, "%llu", (unsigned long long)r->stream_maxlen);
	const char *argv[] = { "XADD", r->stream_key, "MAXLEN", "~", maxlen, "*",
			       "replica", r->replica, "kind", kind, "json", json };
	size_t lens[] = { 4, strlen(r->stream_key), 6, 1, strlen(maxlen), 1,
			  7, strlen(r->replica), 4, strlen(kind), 4, len };
	if (send_argv(r, on_status, NULL, 12, argv, lens))
		r->st.stream_added++;
}

bool sink_redis_streams(const struct sink_redis *r, bool events)
{
	return r && r->stream_key && r->stream_events == events;
}

/* ---- life -------------------------------------------------------------------------- */

static char *dup_or_null(const char *s)
{
	return s ? kl_strndup(s, strlen(s)) : NULL;
}

struct sink_redis *sink_redis_new(struct ev_loop *loop, const struct sink_redis_spec *spec)
{
	struct sink_redis *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->loop = loop;
	r->host = dup_or_null(spec->host);
	r->port = spec->port;
	r->db = spec->db;
	r->password = dup_or_null(spec->password);
	r->replica = dup_or_null(spec->replica);
	r->lease_ms = spec->lease_us / 1000 > 0 ? spec->lease_us / 1000 : 1;
	r->stream_key = dup_or_null(spec->stream_key);
	r->stream_maxlen = spec->stream_maxlen;
	r->stream_events = spec->stream_events;
	r->backoff = BACKOFF_MIN;
	if (!r->host || !r->replica || (spec->password && !r->password) ||
	    (spec->stream_key && !r->stream_key)) {
		sink_redis_free(r);
		return NULL;
	}
	char err[300];
	if (spec->tls &&
	    !(r->tls_ctx = redis_tls_ctx_new(spec->tls_ca_file, !spec->tls_insecure, err,
					     sizeof err))) {
		kl_log(KL_LOG_ERROR, "redis %s:%u: %s", r->host, r->port, err);
		sink_redis_free(r);
		return NULL;
	}
	ev_init(&r->retry, on_retry);
	r->retry.data = r;
	ev_timer_init(&r->watchdog, on_watchdog, 1.0, 1.0);
	r->watchdog.data = r;
	ev_timer_start(loop, &r->watchdog);
	return r;
}

void sink_redis_start(struct sink_redis *r, sink_redis_hash_fn hash_fn,
		      sink_redis_state_fn state_fn, void *ctx)
{
	r->hash_fn = hash_fn;
	r->state_fn = state_fn;
	r->ctx = ctx;
	if (!r->ac && !r->lookup && !ev_is_active(&r->retry))
		connect_now(r);
}

void sink_redis_free(struct sink_redis *r)
{
	if (!r)
		return;
	if (r->loop) {
		ev_timer_stop(r->loop, &r->retry);
		ev_timer_stop(r->loop, &r->watchdog);
	}
	r->state_fn = NULL;
	r->hash_fn = NULL;
	r->closing = true;
	kl_lookup_cancel(r->lookup);
	r->lookup = NULL;
	redisAsyncContext *ac = r->ac;
	r->ac = NULL;
	if (ac)
		redisAsyncFree(ac); /* pending callbacks see a forgotten context */
	redis_tls_free(r->tls);
	redis_tls_ctx_free(r->tls_ctx);
	free(r->host);
	if (r->password)
		memset(r->password, 0, strlen(r->password));
	free(r->password);
	free(r->replica);
	free(r->stream_key);
	free(r->fields);
	free(r);
}

bool sink_redis_up(const struct sink_redis *r)
{
	return r && r->up;
}

const char *sink_redis_replica(const struct sink_redis *r)
{
	return r->replica;
}

void sink_redis_get_stats(const struct sink_redis *r, struct sink_redis_stats *out)
{
	*out = r->st;
	out->up = r->up;
	out->inflight = r->inflight;
}
