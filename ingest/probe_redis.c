/*
 * probe_redis.c — the redis probe: hiredis's async context on the loop (its
 * libev adapter), one connection per check: AUTH when the URL has a
 * password, then INFO.
 *
 * Fields: `up`, `latency` (connect and INFO's answer), `used_memory`,
 * `connected_clients`, `rdb_last_bgsave_status` ("ok" or "err": the last
 * background save, which is what a Redis that persists needs).
 *
 * hiredis frees its context itself after a failed connect, after a
 * disconnect, and (with every pending callback called with a NULL reply)
 * in redisAsyncFree. So struct rprobe forgets the context *before* anything
 * that may free it, and every callback first checks that the context it is
 * called for is still the one in flight; callbacks for a forgotten one do
 * nothing.
 */
#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-function"
#include <hiredis/adapters/libev.h>
#pragma GCC diagnostic pop

#include "ingest/ingest_int.h"

struct rprobe {
	redisAsyncContext *ac; /* the connection in flight, or NULL */
	struct kl_lookup *lookup;
	char host[256];
	uint16_t port;
	char user[128];
	char password[256];
};

/* ---- INFO ------------------------------------------------------------------------------ */

void probe_redis_info_parse(const char *text, size_t len, struct probe_redis_info *out)
{
	const char *p = text, *end = text + len;
	out->used_memory = -1;
	out->connected_clients = -1;
	out->rdb_last_bgsave_status[0] = '\0';
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		size_t n = (size_t)(le - p);
		if (n && p[n - 1] == '\r')
			n--;
		const char *colon = memchr(p, ':', n);
		if (colon && p[0] != '#') {
			struct kl_str k = { p, (size_t)(colon - p) };
			const char *v = colon + 1;
			size_t vl = n - k.len - 1;
			double d;
			if (kl_str_eq(k, "used_memory", 11) && kl_parse_double(v, vl, &d) == 0)
				out->used_memory = d;
			else if (kl_str_eq(k, "connected_clients", 17) &&
				 kl_parse_double(v, vl, &d) == 0)
				out->connected_clients = d;
			else if (kl_str_eq(k, "rdb_last_bgsave_status", 22) &&
				 vl < sizeof out->rdb_last_bgsave_status) {
				memcpy(out->rdb_last_bgsave_status, v, vl);
				out->rdb_last_bgsave_status[vl] = '\0';
			}
		}
		p = le + 1;
	}
}

/* ---- the target ------------------------------------------------------------------------------ */

/* redis://[[USER]:PASSWORD@]HOST[:PORT][/DB], or HOST:PORT. */
static int parse_target(struct rprobe *r, const char *t)
{
	char hp[300];
	if (strncasecmp(t, "redis://", 8) != 0)
		return probe_split_hostport(t, r->host, sizeof r->host, &r->port);
	t += 8;
	const char *slash = t + strcspn(t, "/");
	const char *at = memrchr(t, '@', (size_t)(slash - t));
	if (at) {
		const char *colon = memchr(t, ':', (size_t)(at - t));
		size_t ul = colon ? (size_t)(colon - t) : 0;
		const char *pw = colon ? colon + 1 : t;
		size_t pl = (size_t)(at - pw);
		if (ul >= sizeof r->user || pl >= sizeof r->password)
			return -EINVAL;
		memcpy(r->user, t, ul);
		r->user[ul] = '\0';
		memcpy(r->password, pw, pl);
		r->password[pl] = '\0';
		t = at + 1;
	}
	size_t n = (size_t)(slash - t);
	if (n == 0 || n + 6 >= sizeof hp)
		return -EINVAL;
	memcpy(hp, t, n);
	hp[n] = '\0';
	const char *close = strchr(hp, ']');
	const char *colon = strrchr(close ? close : hp, ':');
	if (!colon)
		memcpy(hp + n, ":6379", 6);
	return probe_split_hostport(hp, r->host, sizeof r->host, &r->port);
}

/* ---- the check ---------------------------------------------------------------------------------- */

static void forget(struct ingest_probe *p)
{
	struct rprobe *r = p->impl;
	redisAsyncContext *ac = r->ac;
	kl_lookup_cancel(r->lookup);
	r->lookup = NULL;
	r->ac = NULL;
	if (ac)
		redisAsyncFree(ac); /* its callbacks see a forgotten context */
}

static void on_info(redisAsyncContext *c, void *reply, void *priv)
{
	struct ingest_probe *p = c->data;
	struct rprobe *r = p ? p->impl : NULL;
	redisReply *rep = reply;
	if (!r || r->ac != c)
		return;
	r->ac = NULL;
	if (!rep) {
		probe_fail(p, "connection lost: %s", c->errstr[0] ? c->errstr : "closed");
		return; /* hiredis is freeing c */
	}
	double secs = probe_elapsed(p);
	redisAsyncDisconnect(c); /* freed by hiredis after this callback */
	if (rep->type == REDIS_REPLY_ERROR) {
		probe_fail(p, "%.*s", (int)rep->len, rep->str);
		return;
	}
	if (rep->type != REDIS_REPLY_STRING && rep->type != REDIS_REPLY_STATUS) {
		probe_fail(p, "unexpected answer to INFO");
		return;
	}
	struct probe_redis_info in;
	probe_redis_info_parse(rep->str, rep->len, &in);
	probe_set(p, PF_REDIS_LATENCY, secs);
	if (in.used_memory >= 0)
		probe_set(p, PF_REDIS_USED_MEMORY, in.used_memory);
	if (in.connected_clients >= 0)
		probe_set(p, PF_REDIS_CLIENTS, in.connected_clients);
	if (in.rdb_last_bgsave_status[0])
		probe_set_str(p, PF_REDIS_BGSAVE, in.rdb_last_bgsave_status);
	probe_done(p);
}

static void on_connect(const redisAsyncContext *c, int status)
{
	struct ingest_probe *p = c->data;
	struct rprobe *r = p ? p->impl : NULL;
	if (!r || r->ac != c || status == REDIS_OK)
		return;
	r->ac = NULL; /* hiredis frees it after this callback */
	probe_fail(p, "connect to %s:%u: %s", r->host, r->port, c->errstr[0] ? c->errstr : "failed");
}

static void on_disconnect(const redisAsyncContext *c, int status)
{
	struct ingest_probe *p = c->data;
	struct rprobe *r = p ? p->impl : NULL;
	if (!r || r->ac != c)
		return;
	r->ac = NULL;
	probe_fail(p, "disconnected: %s", c->errstr[0] ? c->errstr : "closed by the server");
}

static void connect_to(struct ingest_probe *p, const struct sockaddr_storage *a)
{
	struct rprobe *r = p->impl;
	char ip[64];
	if (kl_addr_text(a, ip, sizeof ip) < 0) {
		probe_fail(p, "cannot use the address of '%s'", r->host);
		return;
	}
	redisAsyncContext *ac = redisAsyncConnect(ip, r->port);
	if (!ac) {
		probe_fail(p, "out of memory");
		return;
	}
	if (ac->err) {
		char msg[PROBE_ERR_MAX];
		snprintf(msg, sizeof msg, "%s", ac->errstr);
		redisAsyncFree(ac);
		probe_fail(p, "connect to %s:%u: %s", r->host, r->port, msg);
		return;
	}
	ac->data = p;
	r->ac = ac;
	if (redisLibevAttach(p->loop, ac) != REDIS_OK) {
		forget(p);
		probe_fail(p, "cannot attach to the loop");
		return;
	}
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	int rc = REDIS_OK;
	if (r->password[0] && r->user[0])
		rc = redisAsyncCommand(ac, NULL, NULL, "AUTH %s %s", r->user, r->password);
	else if (r->password[0])
		rc = redisAsyncCommand(ac, NULL, NULL, "AUTH %s", r->password);
	if (rc == REDIS_OK)
		rc = redisAsyncCommand(ac, on_info, NULL, "INFO");
	if (rc != REDIS_OK) {
		forget(p);
		probe_fail(p, "cannot send INFO");
	}
}

static void on_looked_up(void *ctx, int err, const struct sockaddr_storage *a, socklen_t len)
{
	struct ingest_probe *p = ctx;
	struct rprobe *r = p->impl;
	r->lookup = NULL;
	if (err) {
		probe_fail(p, "cannot resolve '%s': %s", r->host, gai_strerror(err));
		return;
	}
	connect_to(p, a);
}

static int redis_init(struct ingest_probe *p)
{
	struct rprobe *r = calloc(1, sizeof *r);
	if (!r)
		return -ENOMEM;
	p->impl = r;
	return parse_target(r, p->target);
}

static void redis_start(struct ingest_probe *p)
{
	struct rprobe *r = p->impl;
	struct sockaddr_storage a;
	socklen_t len;
	int rc = kl_lookup_start(p->loop, r->host, r->port, on_looked_up, p, &r->lookup, &a, &len);
	if (rc < 0)
		probe_fail(p, "cannot resolve '%s': %s", r->host, strerror(-rc));
	else if (rc == 1)
		connect_to(p, &a);
}

static void redis_destroy(struct ingest_probe *p)
{
	struct rprobe *r = p->impl;
	if (!r)
		return;
	forget(p);
	memset(r->password, 0, sizeof r->password);
	free(r);
	p->impl = NULL;
}

const struct probe_ops probe_redis_ops = { redis_init, redis_start, forget, redis_destroy };
