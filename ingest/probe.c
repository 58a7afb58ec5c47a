/*
 * probe.c — probes: checks on a timer whose results are events.
 *
 * Design and invariants:
 * - One struct ingest_probe per configured probe, with two timers: `every`
 *   (the interval; the first check runs at once) and `deadline` (the check in
 *   flight times out). A kind (probe_http.c, probe_net.c, probe_pg.c,
 *   probe_redis.c, probe_host.c, probe_file.c, and the disk check below)
 *   implements start/cancel through struct probe_ops and ends every check it
 *   started with exactly one probe_done or probe_fail, unless it was cancelled.
 * - A check never overlaps the previous one of the same probe: an interval
 *   that comes while a check runs is remembered (`due`, counted as delayed)
 *   and the next check starts when this one ends.
 * - Never silence: a check that fails hands out up = 0 and the reason; one
 *   that times out is cancelled and handed out as failed ("timed out after
 *   5s"). The values set before the failure are kept (an HTTPS check whose
 *   verification failed still reports the certificate's expiry).
 * - Results are handed out through one callback with the values in the
 *   kind's fixed field order (ingest_probe_fields); strings live in the
 *   probe's own buffers, valid during the callback.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "ingest/ingest_int.h"

static const char *const kind_names[INGEST_PROBE_KINDS] = {
	[INGEST_PROBE_HTTP] = "http",	      [INGEST_PROBE_TCP] = "tcp",
	[INGEST_PROBE_DISK] = "disk",	      [INGEST_PROBE_POSTGRES] = "postgres",
	[INGEST_PROBE_REDIS] = "redis",	      [INGEST_PROBE_HOST] = "host",
	[INGEST_PROBE_FILE] = "file",
};

#define UP_ERR { "up", INGEST_PF_COUNT }, { "error", INGEST_PF_STRING }

static const struct ingest_probe_field http_fields[PF_HTTP_N] = {
	UP_ERR,
	{ "status", INGEST_PF_COUNT },
	{ "latency", INGEST_PF_SECONDS },
	{ "cert_days_left", INGEST_PF_NUMBER },
};
static const struct ingest_probe_field tcp_fields[PF_TCP_N] = {
	UP_ERR,
	{ "latency", INGEST_PF_SECONDS },
};
static const struct ingest_probe_field disk_fields[PF_DISK_N] = {
	UP_ERR,
	{ "free_pct", INGEST_PF_NUMBER },
	{ "free_bytes", INGEST_PF_COUNT },
	{ "total_bytes", INGEST_PF_COUNT },
	{ "inodes_free_pct", INGEST_PF_NUMBER },
};
static const struct ingest_probe_field pg_fields[PF_PG_N] = {
	UP_ERR,
	{ "latency", INGEST_PF_SECONDS },
	{ "connections", INGEST_PF_COUNT },
	{ "max_connections", INGEST_PF_COUNT },
	{ "longest_active_query", INGEST_PF_SECONDS },
	{ "active_over_1m", INGEST_PF_COUNT },
	{ "waiting_on_locks", INGEST_PF_COUNT },
};
static const struct ingest_probe_field redis_fields[PF_REDIS_N] = {
	UP_ERR,
	{ "latency", INGEST_PF_SECONDS },
	{ "used_memory", INGEST_PF_COUNT },
	{ "connected_clients", INGEST_PF_COUNT },
	{ "rdb_last_bgsave_status", INGEST_PF_STRING },
};
static const struct ingest_probe_field host_fields[PF_HOST_N] = {
	UP_ERR,
	{ "mem_used_pct", INGEST_PF_NUMBER },
	{ "cpu_used_pct", INGEST_PF_NUMBER },
	{ "load1", INGEST_PF_NUMBER },
};
static const struct ingest_probe_field file_fields[PF_FILE_N] = {
	UP_ERR,
	{ "age", INGEST_PF_SECONDS },
	{ "size", INGEST_PF_COUNT },
	{ "count", INGEST_PF_COUNT },
	{ "intact", INGEST_PF_COUNT },
	{ "path", INGEST_PF_STRING },
};

static const struct {
	const struct ingest_probe_field *f;
	size_t n;
	const struct probe_ops *ops;
} kinds[INGEST_PROBE_KINDS] = {
	[INGEST_PROBE_HTTP] = { http_fields, PF_HTTP_N, &probe_http_ops },
	[INGEST_PROBE_TCP] = { tcp_fields, PF_TCP_N, &probe_tcp_ops },
	[INGEST_PROBE_DISK] = { disk_fields, PF_DISK_N, &probe_disk_ops },
	[INGEST_PROBE_POSTGRES] = { pg_fields, PF_PG_N, &probe_pg_ops },
	[INGEST_PROBE_REDIS] = { redis_fields, PF_REDIS_N, &probe_redis_ops },
	[INGEST_PROBE_HOST] = { host_fields, PF_HOST_N, &probe_host_ops },
	[INGEST_PROBE_FILE] = { file_fields, PF_FILE_N, &probe_file_ops },
};

int ingest_probe_kind_from_name(const char *name, enum ingest_probe_kind *out)
{
	for (int k = 0; name && k < INGEST_PROBE_KINDS; k++) {
		if (strcmp(kind_names[k], name) == 0) {
			*out = (enum ingest_probe_kind)k;
			return 0;
		}
	}
	return -EINVAL;
}

const char *ingest_probe_kind_name(enum ingest_probe_kind k)
{
	return (unsigned)k < INGEST_PROBE_KINDS ? kind_names[k] : "unknown";
}

const struct ingest_probe_field *ingest_probe_fields(enum ingest_probe_kind k, size_t *n)
{
	if ((unsigned)k >= INGEST_PROBE_KINDS) {
		*n = 0;
		return NULL;
	}
	*n = kinds[k].n;
	return kinds[k].f;
}

/* ---------------------------------------------------------------------------
 * Targets.
 */

static bool starts_nocase(const char *s, const char *prefix)
{
	for (; *prefix; s++, prefix++) {
		char a = *s >= 'A' && *s <= 'Z' ? (char)(*s - 'A' + 'a') : *s;
		if (a != *prefix)
			return false;
	}
	return true;
}

int probe_split_hostport(const char *s, char *host, size_t hostlen, uint16_t *port)
{
	const char *colon, *h = s;
	size_t hl;
	uint64_t pv;

	if (!s || !*s)
		return -EINVAL;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':')
			return -EINVAL;
		h = s + 1;
		hl = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || memchr(s, ':', (size_t)(colon - s)))
			return -EINVAL; /* none, or a bare IPv6 address */
		hl = (size_t)(colon - s);
	}
	if (hl == 0 || hl >= hostlen || kl_parse_u64(colon + 1, strlen(colon + 1), &pv) < 0 ||
	    pv == 0 || pv > 65535)
		return -EINVAL;
	for (size_t i = 0; i < hl; i++)
		if ((unsigned char)h[i] <= 0x20 || h[i] == '/' || h[i] == '@')
			return -EINVAL;
	memcpy(host, h, hl);
	host[hl] = '\0';
	*port = (uint16_t)pv;
	return 0;
}

int ingest_probe_check_target(enum ingest_probe_kind k, const char *t, char *why, size_t whylen)
{
	char host[256];
	uint16_t port;
	const char *problem = NULL;

	if (!t)
		t = "";
	for (const char *c = t; *c && !problem; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			problem = "contains a control character";
	if (problem)
		goto out;
	switch (k) {
	case INGEST_PROBE_HTTP: {
		size_t skip = starts_nocase(t, "http://") ? 7 : starts_nocase(t, "https://") ? 8 : 0;
		if (!skip)
			problem = "expected a URL starting with http:// or https://";
		else if (t[skip] == '\0' || t[skip] == '/')
			problem = "the URL has no host after the scheme";
		else if (strchr(t, ' '))
			problem = "the URL contains a space";
		break;
	}
	case INGEST_PROBE_TCP:
		if (probe_split_hostport(t, host, sizeof host, &port) < 0)
			problem = "expected HOST:PORT (e.g. db:5432, [::1]:6379)";
		break;
	case INGEST_PROBE_REDIS:
		if (starts_nocase(t, "redis://")) {
			const char *hp = t + 8, *at = strrchr(hp, '@');
			if (at)
				hp = at + 1;
			size_t n = strcspn(hp, "/");
			char buf[300];
			if (n == 0 || n >= sizeof buf)
				problem = "the URL has no host (redis://[:PASSWORD@]HOST[:PORT][/DB])";
			else {
				memcpy(buf, hp, n);
				buf[n] = '\0';
				if (!strchr(buf, ':') && !strchr(buf, '[')) {
					if (n + 6 < sizeof buf)
						memcpy(buf + n, ":6379", 6);
				}
				if (probe_split_hostport(buf, host, sizeof host, &port) < 0)
					problem = "expected redis://[:PASSWORD@]HOST[:PORT][/DB]";
			}
		} else if (probe_split_hostport(t, host, sizeof host, &port) < 0) {
			problem = "expected HOST:PORT or redis://[:PASSWORD@]HOST[:PORT][/DB]";
		}
		break;
	case INGEST_PROBE_DISK:
	case INGEST_PROBE_FILE:
		if (!*t)
			problem = k == INGEST_PROBE_DISK ? "expected a path" : "expected a path or a glob";
		break;
	case INGEST_PROBE_POSTGRES:
		if (!*t)
			problem = "expected a libpq connection string (host=... dbname=...) or URI";
		break;
	case INGEST_PROBE_HOST:
		break;
	default:
		problem = "unknown kind";
	}
out:
	if (problem) {
		if (why && whylen)
			snprintf(why, whylen, "%s", problem);
		return -EINVAL;
	}
	return 0;
}

/* ---------------------------------------------------------------------------
 * Values and results.
 */

void probe_set(struct ingest_probe *p, unsigned idx, double v)
{
	if (idx >= p->nfields)
		return;
	p->v[idx] = (struct ingest_probe_value){ .set = true, .num = v };
}

void probe_set_str(struct ingest_probe *p, unsigned idx, const char *s)
{
	if (idx >= p->nfields || !s)
		return;
	snprintf(p->str[idx], sizeof p->str[idx], "%s", s);
	p->v[idx] = (struct ingest_probe_value){ .set = true, .str = p->str[idx] };
}

double probe_elapsed(const struct ingest_probe *p)
{
	return (double)(kl_mono_us() - p->started_us) / 1e6;
}

static void clear_values(struct ingest_probe *p)
{
	memset(p->v, 0, sizeof p->v);
}

void probe_emit(struct ingest_probe *p)
{
	struct ingest_probe_result r = { p->name, p->kind, kl_wall_us(), p->v, p->nfields };
	p->stats.checks++;
	if (p->v[PF_UP].set && p->v[PF_UP].num == 0)
		p->stats.failures++;
	p->fn(p->ctx, &r);
}

static void start_check(struct ingest_probe *p);

/* The check in flight is over: hand it out, then start the one that was due. */
static void finish(struct ingest_probe *p)
{
	ev_timer_stop(p->loop, &p->deadline);
	p->running = false;
	probe_emit(p);
	if (p->due) {
		p->due = false;
		start_check(p);
	}
}

void probe_done(struct ingest_probe *p)
{
	if (!p->running)
		return;
	if (!p->v[PF_UP].set)
		probe_set(p, PF_UP, 1);
	finish(p);
}

void probe_fail(struct ingest_probe *p, const char *fmt, ...)
{
	char msg[PROBE_ERR_MAX];
	va_list ap;

	if (!p->running)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	/* one line, printable, single spaces: the message goes into JSON and
	 * chat messages (libpq's span lines, with two spaces after FATAL:) */
	size_t o = 0;
	for (size_t i = 0; msg[i]; i++) {
		char c = (unsigned char)msg[i] < 0x20 ? ' ' : msg[i];
		if (c == ' ' && (o == 0 || msg[o - 1] == ' '))
			continue;
		msg[o++] = c;
	}
	msg[o] = '\0';
	size_t n = o;
	while (n && msg[n - 1] == ' ')
		msg[--n] = '\0';
	probe_set(p, PF_UP, 0);
	probe_set_str(p, PF_ERROR, msg[0] ? msg : "failed");
	finish(p);
}

static void start_check(struct ingest_probe *p)
{
	clear_values(p);
	p->running = true;
	p->started_us = kl_mono_us();
	ev_timer_set(&p->deadline, (double)p->timeout_us / 1e6, 0.0);
	ev_timer_start(p->loop, &p->deadline);
	p->ops->start(p);
}

static void on_every(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ingest_probe *p = w->data;
	if (p->running) {
		p->due = true;
		p->stats.delayed++;
		return;
	}
	start_check(p);
}

static void on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ingest_probe *p = w->data;
	char d[32];
	if (!p->running)
		return;
	p->ops->cancel(p);
	p->stats.timeouts++;
	kl_format_duration(p->timeout_us, d);
	probe_fail(p, "timed out after %s", d);
}

static char *dup_or_null(const char *s)
{
	return s ? kl_strndup(s, strlen(s)) : NULL;
}

struct ingest_probe *ingest_probe_new(struct ev_loop *loop, const struct ingest_probe_opts *o,
				      ingest_probe_fn fn, void *ctx, int *err)
{
	struct ingest_probe *p = NULL;
	int rc = -EINVAL;

	if (!loop || !o || !fn || (unsigned)o->kind >= INGEST_PROBE_KINDS || o->interval_us <= 0 ||
	    o->timeout_us <= 0 || ingest_probe_check_target(o->kind, o->target, NULL, 0) < 0)
		goto fail;
	rc = -ENOMEM;
	p = calloc(1, sizeof *p);
	if (!p)
		goto fail;
	p->loop = loop;
	p->kind = o->kind;
	p->fn = fn;
	p->ctx = ctx;
	p->interval_us = o->interval_us;
	p->timeout_us = o->timeout_us < o->interval_us ? o->timeout_us : o->interval_us;
	p->tls_insecure = o->tls_insecure;
	p->ops = kinds[o->kind].ops;
	p->nfields = kinds[o->kind].n;
	p->name = dup_or_null(o->name ? o->name : kind_names[o->kind]);
	p->target = dup_or_null(o->target ? o->target : "");
	p->root = dup_or_null(o->root && o->root[0] ? o->root : "");
	if (!p->name || !p->target || !p->root || (o->ca_file && !(p->ca_file = dup_or_null(o->ca_file))))
		goto fail;
	ev_timer_init(&p->every, on_every, 0.0, (double)p->interval_us / 1e6);
	ev_timer_init(&p->deadline, on_deadline, 0.0, 0.0);
	p->every.data = p->deadline.data = p;
	if (p->ops->init && (rc = p->ops->init(p)) < 0)
		goto fail;
	ev_timer_start(loop, &p->every);
	return p;
fail:
	if (p) {
		if (p->impl && p->ops->destroy)
			p->ops->destroy(p);
		free(p->name);
		free(p->target);
		free(p->root);
		free(p->ca_file);
		free(p);
	}
	if (err)
		*err = rc;
	return NULL;
}

void ingest_probe_free(struct ingest_probe *p)
{
	if (!p)
		return;
	if (p->running)
		p->ops->cancel(p);
	p->running = false;
	ev_timer_stop(p->loop, &p->every);
	ev_timer_stop(p->loop, &p->deadline);
	if (p->ops->destroy)
		p->ops->destroy(p);
	free(p->name);
	free(p->target);
	free(p->root);
	free(p->ca_file);
	free(p);
}

void ingest_probe_get_stats(const struct ingest_probe *p, struct ingest_probe_stats *out)
{
	*out = p->stats;
}

/* ---------------------------------------------------------------------------
 * disk: statvfs of a path. One syscall on the loop.
 */

int probe_disk_compute(const struct statvfs *st, struct probe_disk *out)
{
	double frsize = st->f_frsize ? (double)st->f_frsize : (double)st->f_bsize;
	if (st->f_blocks == 0 || frsize == 0)
		return -EINVAL;
	/* as df: used = blocks - free; the share is of used + available, so
	 * the blocks reserved for root do not count as free */
	double used = (double)(st->f_blocks - st->f_bfree);
	double avail = (double)st->f_bavail;
	double base = used + avail;
	out->free_pct = base > 0 ? avail / base * 100.0 : 0.0;
	out->free_bytes = avail * frsize;
	out->total_bytes = (double)st->f_blocks * frsize;
	out->inodes_free_pct = st->f_files ? (double)st->f_favail / (double)st->f_files * 100.0 : -1;
	return 0;
}

static void disk_start(struct ingest_probe *p)
{
	struct statvfs st;
	struct probe_disk d;
	if (statvfs(p->target, &st) < 0) {
		probe_fail(p, "statvfs '%s': %s", p->target, strerror(errno));
		return;
	}
	if (probe_disk_compute(&st, &d) < 0) {
		probe_fail(p, "'%s': the filesystem reports no blocks", p->target);
		return;
	}
	probe_set(p, PF_DISK_FREE_PCT, d.free_pct);
	probe_set(p, PF_DISK_FREE_BYTES, d.free_bytes);
	probe_set(p, PF_DISK_TOTAL_BYTES, d.total_bytes);
	if (d.inodes_free_pct >= 0)
		probe_set(p, PF_DISK_INODES_FREE_PCT, d.inodes_free_pct);
	probe_done(p);
}

static void nothing(struct ingest_probe *p)
{
}

const struct probe_ops probe_disk_ops = { NULL, disk_start, nothing, NULL };
