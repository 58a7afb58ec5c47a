/*
 * deliver.c — one notifying sink: spool → HTTP, in order, with retries.
 *
 * A notifier sends one message at a time: the oldest record of the spool that
 * is addressed to it. That keeps a group's messages in order and lets a
 * receiver outage cost one pending request, not a pile of them. Outcomes:
 *
 *   2xx                         delivered: the record leaves the spool
 *   0 (no answer), 408, 429, 5xx retried after 1 s, 2 s, 4 s … 5 min, ×[0.5, 1.5)
 *                               jitter, or after the receiver's Retry-After
 *   other 4xx                   refused for good: logged with the first line of
 *                               the answer, the record leaves the spool
 *
 * An outage is logged once when it starts and once when it ends, with the
 * count of failed attempts between. URLs are logged redacted (scheme, host,
 * port): a webhook URL's path usually is its secret.
 *
 * Line-to-page latency: a message queued with the read time of the line
 * behind it (notification.read_us) is remembered by spool id (at most
 * MAX_CAUSES); its 2xx observes now − read time into the sink's histogram.
 */
#include <errno.h>
#include <ev.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "sinks/sinks.h"
#include "sinks/sinks_int.h"

#define BACKOFF_FIRST_S 1.0
#define BACKOFF_MAX_S 300.0
#define RETRY_AFTER_MAX_S 3600.0
/* Messages in the spool whose line-to-page latency is awaited (id → read
 * time); past the cap the oldest is forgotten (it is then not measured). */
#define MAX_CAUSES 64

static const double latency_le[SINK_LATENCY_BUCKETS] = {
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

struct cause {
	uint64_t id;
	int64_t read_us;
};

struct notifier {
	char *name;
	enum sink_format format;
	char *url;
	char *secret;
	bool tls_insecure;
	long timeout_ms;
	char shown_url[160];
	struct ev_loop *loop;
	struct http *http;
	struct spool *spool;
	bool inflight;
	uint64_t inflight_id;
	unsigned attempt;
	uint64_t outage_failures;
	ev_timer retry;
	struct kl_buf body;
	struct sink_stats stats;
	struct cause causes[MAX_CAUSES];
	size_t ncauses;
	struct sink_latency latency; /* counts only; the bounds are latency_le */
};

void redact_url(const char *url, char *out, size_t outlen)
{
	const char *sep = strstr(url, "://");
	const char *host = sep ? sep + 3 : url;
	size_t n = strcspn(host, "/?#");
	const char *at = memchr(host, '@', n); /* user:password@host */
	if (at) {
		n -= (size_t)(at + 1 - host);
		host = at + 1;
	}
	snprintf(out, outlen, "%.*s%.*s%s", sep ? (int)(sep + 3 - url) : 0, url, (int)n, host,
		 host[n] ? "/…" : "");
}

static enum sink_format format_of(enum sink_kind k)
{
	switch (k) {
	case SINK_ALERTMANAGER: return FORMAT_ALERTMANAGER;
	case SINK_SLACK: return FORMAT_SLACK;
	case SINK_DISCORD: return FORMAT_DISCORD;
	case SINK_TEAMS: return FORMAT_TEAMS;
	default: return FORMAT_WEBHOOK;
	}
}

/* An Alertmanager is given by its base URL; the API path is ours to add. */
static char *api_url(const struct sink_spec *spec)
{
	const char *suffix = "/api/v2/alerts";
	size_t n = strlen(spec->url);
	while (n && spec->url[n - 1] == '/')
		n--;
	struct kl_buf b = { 0 };
	if (kl_buf_append(&b, spec->url, n) < 0)
		return NULL;
	if (spec->kind == SINK_ALERTMANAGER &&
	    (n < strlen(suffix) || memcmp(spec->url + n - strlen(suffix), suffix, strlen(suffix))))
		if (kl_buf_append_str(&b, suffix) < 0) {
			kl_buf_free(&b);
			return NULL;
		}
	if (spec->kind != SINK_ALERTMANAGER) {
		/* Keep the URL exactly as given (a trailing '/' may matter). */
		kl_buf_reset(&b);
		if (kl_buf_append_str(&b, spec->url) < 0) {
			kl_buf_free(&b);
			return NULL;
		}
	}
	return b.p;
}

static void on_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
	notifier_kick(w->data);
}

struct notifier *notifier_new(struct ev_loop *loop, struct http *http, struct spool *spool,
			      const struct sink_spec *spec, const char *external_url)
{
	struct notifier *n = calloc(1, sizeof *n);
	if (!n)
		return NULL;
	n->name = kl_strndup(spec->name, strlen(spec->name));
	n->url = api_url(spec);
	n->secret = spec->secret ? kl_strndup(spec->secret, strlen(spec->secret)) : NULL;
	if (!n->name || !n->url || (spec->secret && !n->secret)) {
		notifier_free(n);
		return NULL;
	}
	n->format = format_of(spec->kind);
	n->tls_insecure = spec->tls_insecure;
	n->timeout_ms = spec->timeout_us > 0 ? (long)(spec->timeout_us / 1000) : 10000;
	n->loop = loop;
	n->http = http;
	n->spool = spool;
	redact_url(n->url, n->shown_url, sizeof n->shown_url);
	ev_init(&n->retry, on_retry);
	n->retry.data = n;
	(void)external_url;
	return n;
}

void notifier_free(struct notifier *n)
{
	if (!n)
		return;
	if (n->loop)
		ev_timer_stop(n->loop, &n->retry);
	free(n->name);
	free(n->url);
	if (n->secret)
		memset(n->secret, 0, strlen(n->secret));
	free(n->secret);
	kl_buf_free(&n->body);
	free(n);
}

const char *notifier_name(const struct notifier *n)
{
	return n->name;
}

bool notifier_is_alertmanager(const struct notifier *n)
{
	return n->format == FORMAT_ALERTMANAGER;
}

void notifier_get_stats(const struct notifier *n, struct sink_stats *out)
{
	*out = n->stats;
}

void notifier_add_latency(const struct notifier *n, struct sink_latency *out)
{
	memcpy(out->le, latency_le, sizeof out->le);
	if (!n)
		return;
	for (size_t i = 0; i <= SINK_LATENCY_BUCKETS; i++)
		out->counts[i] += n->latency.counts[i];
	out->count += n->latency.count;
	out->sum_s += n->latency.sum_s;
}

static void cause_add(struct notifier *n, uint64_t id, int64_t read_us)
{
	if (n->ncauses == MAX_CAUSES) {
		memmove(n->causes, n->causes + 1, (MAX_CAUSES - 1) * sizeof *n->causes);
		n->ncauses--;
	}
	n->causes[n->ncauses++] = (struct cause){ id, read_us };
}

/* The read time behind message id, forgotten; 0 when none was kept. */
static int64_t cause_take(struct notifier *n, uint64_t id)
{
	for (size_t i = 0; i < n->ncauses; i++)
		if (n->causes[i].id == id) {
			int64_t r = n->causes[i].read_us;
			memmove(n->causes + i, n->causes + i + 1, (n->ncauses - i - 1) * sizeof *n->causes);
			n->ncauses--;
			return r;
		}
	return 0;
}

static void observe_latency(struct notifier *n, int64_t read_us)
{
	double s = (double)(kl_wall_us() - read_us) / 1e6;
	if (s < 0)
		s = 0; /* the wall clock stepped back */
	size_t b = 0;
	while (b < SINK_LATENCY_BUCKETS && s > latency_le[b])
		b++;
	n->latency.counts[b]++;
	n->latency.count++;
	n->latency.sum_s += s;
}

void notifier_count(struct notifier *n, uint64_t silenced, uint64_t inhibited)
{
	n->stats.silenced += silenced;
	n->stats.inhibited += inhibited;
}

int notifier_send(struct notifier *nt, struct notification *msg, int64_t now_us)
{
	kl_buf_reset(&nt->body);
	uint64_t id;
	int rc = format_payload(nt->format, msg, &nt->body);
	if (rc == 0)
		rc = spool_append(nt->spool, nt->name, nt->body.p, nt->body.len, now_us, &id);
	if (rc < 0) {
		kl_log(KL_LOG_ERROR, "sink '%s': cannot queue a message for %s: %s; it is lost", nt->name,
		       msg->group_key, strerror(-rc));
		nt->stats.failed++;
		return rc;
	}
	nt->stats.spooled++;
	if (msg->read_us > 0)
		cause_add(nt, id, msg->read_us);
	notifier_kick(nt);
	return 0;
}

static const struct spool_rec *next_record(const struct notifier *n)
{
	size_t len = strlen(n->name);
	for (size_t i = 0; i < spool_pending(n->spool); i++) {
		const struct spool_rec *r = spool_get(n->spool, i);
		if (r->sink_len == len && !memcmp(r->sink, n->name, len))
			return r;
	}
	return NULL;
}

static double jitter(void)
{
	uint32_t r = 0;
	if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
		r = (uint32_t)kl_mono_us();
	return 0.5 + (double)r / 4294967296.0;
}

static void done_ok(struct notifier *n)
{
	spool_ack(n->spool, n->inflight_id);
	n->stats.written++;
	int64_t read_us = cause_take(n, n->inflight_id);
	if (read_us > 0)
		observe_latency(n, read_us);
	if (n->outage_failures)
		kl_log(KL_LOG_INFO, "sink '%s': %s answers again; delivered after %llu failed attempt(s)",
		       n->name, n->shown_url, (unsigned long long)n->outage_failures);
	n->attempt = 0;
	n->outage_failures = 0;
}

static void done_retry(struct notifier *n, const struct http_response *r)
{
	double delay = BACKOFF_FIRST_S;
	for (unsigned i = 0; i < n->attempt && delay < BACKOFF_MAX_S; i++)
		delay *= 2;
	if (delay > BACKOFF_MAX_S)
		delay = BACKOFF_MAX_S;
	delay *= jitter();
	if (r->retry_after_s >= 0)
		delay = r->retry_after_s < RETRY_AFTER_MAX_S ? r->retry_after_s : RETRY_AFTER_MAX_S;
	n->attempt++;
	n->stats.retried++;
	if (!n->outage_failures++) {
		if (r->status)
			kl_log(KL_LOG_WARN, "sink '%s': %s answered %ld; retrying with backoff (the message waits in the spool)",
			       n->name, n->shown_url, r->status);
		else
			kl_log(KL_LOG_WARN, "sink '%s': %s: %s; retrying with backoff (the message waits in the spool)",
			       n->name, n->shown_url, r->error);
	}
	ev_timer_set(&n->retry, delay, 0.0);
	ev_timer_start(n->loop, &n->retry);
}

static void done_refused(struct notifier *n, const struct http_response *r)
{
	kl_log(KL_LOG_ERROR, "sink '%s': %s refused the message with %ld: %s; it is dropped (check the sink's URL and format)",
	       n->name, n->shown_url, r->status, r->body_first_line ? r->body_first_line : "");
	spool_ack(n->spool, n->inflight_id);
	cause_take(n, n->inflight_id);
	n->stats.failed++;
	n->attempt = 0;
}

static void on_done(void *ctx, const struct http_response *r)
{
	struct notifier *n = ctx;
	n->inflight = false;
	if (r->status >= 200 && r->status < 300)
		done_ok(n);
	else if (r->status == 0 || r->status == 408 || r->status == 429 || r->status >= 500) {
		done_retry(n, r);
		return;
	} else
		done_refused(n, r);
	notifier_kick(n);
}

void notifier_kick(struct notifier *n)
{
	if (n->inflight || ev_is_active(&n->retry))
		return;
	const struct spool_rec *rec = next_record(n);
	if (!rec)
		return;
	char ts[48], sig[128], hex[65];
	const char *headers[4] = { "Content-Type: application/json", NULL, NULL, NULL };
	if (n->secret) {
		/* Signed: "<unix seconds>.<body>", so a captured request cannot be
		 * replayed later with a fresh timestamp. */
		long long now_s = (long long)(kl_wall_us() / 1000000);
		struct kl_buf b = { 0 };
		if (kl_buf_appendf(&b, "%lld.", now_s) == 0 && kl_buf_append(&b, rec->body, rec->len) == 0) {
			hmac_sha256_hex(n->secret, strlen(n->secret), b.p, b.len, hex);
			snprintf(ts, sizeof ts, "X-Klaxon-Timestamp: %lld", now_s);
			snprintf(sig, sizeof sig, "X-Klaxon-Signature: sha256=%s", hex);
			headers[1] = ts;
			headers[2] = sig;
		}
		kl_buf_free(&b);
	}
	struct http_request req = {
		.url = n->url,
		.headers = headers,
		.body = rec->body,
		.len = rec->len,
		.timeout_ms = n->timeout_ms,
		.tls_insecure = n->tls_insecure,
	};
	n->inflight_id = rec->id;
	if (http_post(n->http, &req, on_done, n) < 0) {
		struct http_response fail = { .error = "cannot start the request", .retry_after_s = -1 };
		done_retry(n, &fail);
		return;
	}
	n->inflight = true;
}
