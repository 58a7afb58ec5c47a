/*
 * observe.c — see observe.h. The handler behind http_server: builds a
 * snapshot of the stages' stats for /metrics, checks the sources for
 * /healthz, lists the alerts for /alerts. Everything runs on the loop; a
 * scrape costs one fstat per followed file, a health check one stat, one
 * glob and one access(2) per matched file per source.
 */
#include <errno.h>
#include <ev.h>
#include <glob.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "src/alert_board.h"
#include "src/http_server.h"
#include "src/metrics.h"
#include "src/observe.h"

#define SAMPLE_S 1.0
#define HEALTH_ERROR_S 60

#ifndef KLAXON_VERSION
#define KLAXON_VERSION "dev"
#endif

struct src_watch {
	int64_t caught_up_us;	/* last seen with nothing unread */
	uint64_t read_errors;	/* the tail's count when last sampled */
	int64_t read_error_us;	/* when it last grew (0: never) */
	int read_error;		/* how many in that last growth */
};

struct observe {
	struct ev_loop *loop;
	struct runtime *rt;
	struct ingest_tail *const *tails;
	size_t ntails;
	struct src_watch *src;
	ev_timer sample;
	struct http_server *http;
	struct kl_buf scratch;
};

/* ---- sampling ----------------------------------------------------------------- */

static void sample_one(struct observe *o, size_t i, int64_t now, struct ingest_tail_stats *st)
{
	struct src_watch *w = &o->src[i];
	ingest_tail_get_stats(o->tails[i], st);
	if (st->bytes_behind == 0)
		w->caught_up_us = now;
	if (st->read_errors > w->read_errors) {
		w->read_error = (int)(st->read_errors - w->read_errors);
		w->read_error_us = now;
		w->read_errors = st->read_errors;
	}
}

static void on_sample(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct observe *o = t->data;
	int64_t now = kl_wall_us();
	struct ingest_tail_stats st;
	for (size_t i = 0; i < o->ntails; i++)
		sample_one(o, i, now, &st);
}

/* ---- /metrics ---------------------------------------------------------------------- */

static int metrics(struct observe *o, struct kl_buf *body)
{
	const struct config *cfg = o->rt->cfg;
	const struct sinks_spec *sp = &cfg->sinks_spec;
	size_t nrules = rules_count(o->rt->rules);
	struct metrics_source *srcs = calloc(o->ntails ? o->ntails : 1, sizeof *srcs);
	struct metrics_rule *rules = calloc(nrules ? nrules : 1, sizeof *rules);
	struct metrics_sink *sinks = calloc(sp->nsinks ? sp->nsinks : 1, sizeof *sinks);
	int rc = -ENOMEM;
	if (!srcs || !rules || !sinks)
		goto out;
	int64_t now = kl_wall_us();
	for (size_t i = 0; i < o->ntails; i++) {
		struct ingest_tail_stats st;
		sample_one(o, i, now, &st);
		const struct source_stats *ps = &o->rt->stats[i];
		srcs[i] = (struct metrics_source){
			.name = cfg->sources[i].name,
			.lines = st.lines,
			.bytes = st.bytes,
			.events = ps->events,
			.parse_errors = ps->parse_errors,
			.bytes_behind = st.bytes_behind,
			.seconds_behind = st.bytes_behind
						  ? (double)(now - o->src[i].caught_up_us) / 1e6
						  : 0.0,
		};
		if (srcs[i].seconds_behind < 0)
			srcs[i].seconds_behind = 0;
	}
	for (size_t i = 0; i < nrules; i++) {
		struct rules_rule_info ri;
		if (rules_rule_info(o->rt->rules, i, &ri) < 0)
			continue;
		rules[i] = (struct metrics_rule){
			.name = ri.alert,
			.file = ri.file,
			.line = ri.line,
			.evaluations = ri.evaluations,
			.eval_seconds = (double)ri.eval_ns / 1e9,
			.pending = ri.pending,
			.firing = ri.firing,
		};
	}
	size_t nsinks = 0;
	for (size_t i = 0; i < sp->nsinks; i++) {
		struct sink_stats ss;
		if (sinks_get_stats(o->rt->sinks, sp->sinks[i].name, &ss) < 0)
			continue;
		sinks[nsinks++] = (struct metrics_sink){
			.name = sp->sinks[i].name,
			.type = sink_kind_name(sp->sinks[i].kind),
			.sent = ss.written,
			.failed = ss.failed,
			.retried = ss.retried,
			.spooled = ss.spooled,
		};
	}
	struct rules_stats rst;
	rules_get_stats(o->rt->rules, &rst);
	struct sink_latency lat;
	sinks_get_latency(o->rt->sinks, &lat);
	struct metrics_redis mr = { 0 };
	struct sink_redis *redis = sinks_redis(o->rt->sinks);
	if (redis) {
		struct sink_redis_stats rs;
		struct rules_shared_stats ss;
		sink_redis_get_stats(redis, &rs);
		rules_shared_get_stats(o->rt->rules, &ss);
		mr = (struct metrics_redis){
			.up = rs.up, .connects = rs.connects, .disconnects = rs.disconnects,
			.slow = rs.slow, .commands = rs.commands, .bytes_out = rs.bytes_out,
			.bytes_in = rs.bytes_in, .dropped = rs.dropped, .errors = rs.errors,
			.leases_won = rs.leases_won, .leases_lost = rs.leases_lost,
			.leases_local = rs.leases_local, .stream_added = rs.stream_added,
			.buckets_put = ss.puts, .buckets_get = ss.gets,
			.snapshots_merged = ss.fields, .snapshots_refused = ss.refused,
		};
	}
	struct metrics_snapshot snap = {
		.redis = redis ? &mr : NULL,
		.version = KLAXON_VERSION,
		.sources = srcs,
		.nsources = o->ntails,
		.rules = rules,
		.nrules = nrules,
		.rules_groups_dropped = rst.groups_dropped,
		.rules_late_events = rst.late_events,
		.sinks = sinks,
		.nsinks = nsinks,
		.line_to_page = { lat.le, SINK_LATENCY_BUCKETS, lat.counts, lat.count, lat.sum_s },
	};
	rc = metrics_render(&snap, body);
out:
	free(srcs);
	free(rules);
	free(sinks);
	return rc;
}

/* ---- /healthz ------------------------------------------------------------------------ */

/* The directory a pattern's files live in: up to the last '/' before the
 * first wildcard ("." for a bare name, "/" for the root). */
static int pattern_dir(const char *pattern, struct kl_buf *out)
{
	size_t wild = strcspn(pattern, "*?[");
	size_t cut = 0;
	bool slash = false;
	for (size_t i = 0; i < wild; i++)
		if (pattern[i] == '/') {
			cut = i;
			slash = true;
		}
	kl_buf_reset(out);
	if (!slash)
		return kl_buf_append(out, ".", 2);
	if (cut == 0)
		return kl_buf_append(out, "/", 2);
	int rc = kl_buf_append(out, pattern, cut);
	return rc == 0 ? kl_buf_append(out, "", 1) : rc;
}

/* Append the source's problems, one line each; true when it has none. */
static bool source_health(struct observe *o, size_t i, int64_t now, struct kl_buf *why)
{
	const struct config_source *s = &o->rt->cfg->sources[i];
	struct ingest_tail_stats st;
	bool ok = true;
	sample_one(o, i, now, &st);
	if (pattern_dir(s->path, &o->scratch) < 0) {
		kl_buf_appendf(why, "source '%s': out of memory\n", s->name);
		return false;
	}
	const char *dir = o->scratch.p;
	struct stat ds;
	if (stat(dir, &ds) < 0) {
		kl_buf_appendf(why, "source '%s': %s %s\n", s->name, dir,
			       errno == ENOENT ? "does not exist" : strerror(errno));
		return false;
	}
	if (!S_ISDIR(ds.st_mode)) {
		kl_buf_appendf(why, "source '%s': %s is not a directory\n", s->name, dir);
		return false;
	}
	if (access(dir, R_OK | X_OK) < 0) {
		kl_buf_appendf(why, "source '%s': %s cannot be listed: %s\n", s->name, dir,
			       strerror(errno));
		return false;
	}
	glob_t g;
	if (glob(s->path, GLOB_NOSORT, NULL, &g) == 0) {
		for (size_t k = 0; k < g.gl_pathc; k++) {
			struct stat fs;
			if (stat(g.gl_pathv[k], &fs) < 0 || !S_ISREG(fs.st_mode))
				continue;
			if (access(g.gl_pathv[k], R_OK) < 0) {
				kl_buf_appendf(why, "source '%s': %s cannot be read: %s\n", s->name,
					       g.gl_pathv[k], strerror(errno));
				ok = false;
			}
		}
		globfree(&g);
	}
	const struct src_watch *w = &o->src[i];
	if (w->read_error_us && now - w->read_error_us < HEALTH_ERROR_S * 1000000LL) {
		kl_buf_appendf(why, "source '%s': %d read error(s) %llds ago (see the log)\n", s->name,
			       w->read_error, (long long)((now - w->read_error_us) / 1000000));
		ok = false;
	}
	return ok;
}

static int healthz(struct observe *o, struct kl_buf *body)
{
	int64_t now = kl_wall_us();
	bool ok = true;
	for (size_t i = 0; i < o->ntails; i++)
		ok &= source_health(o, i, now, body);
	if (ok)
		kl_buf_append_str(body, "ok\n");
	return ok ? 200 : 503;
}

/* ---- /alerts ------------------------------------------------------------------------------ */

struct alerts_ctx {
	struct kl_buf *b;
	const char *replica; /* shared mode: where each alert was judged */
	size_t n;
	int rc;
};

static void one_alert(void *ctx, const struct rules_alert_state *a)
{
	struct alerts_ctx *c = ctx;
	int rc = kl_buf_append_str(c->b, c->n++ ? ",\n " : "\n ");
	if (rc == 0)
		rc = alert_json(c->b, a, c->replica);
	if (rc < 0)
		c->rc = rc;
}

/* Ours, then (shared mode) the other replicas' alerts of unshared rules. */
static int alerts(struct observe *o, struct kl_buf *body)
{
	struct runtime *rt = o->rt;
	struct alerts_ctx c = { body, rt->board ? rt->replica : NULL, 0, 0 };
	int rc = kl_buf_append(body, "[", 1);
	if (rc == 0)
		rules_each_alert(rt->rules, one_alert, &c);
	if (rc == 0 && c.rc == 0 && rt->board)
		rc = alert_board_append(rt->board, body, &c.n, kl_wall_us());
	if (rc == 0 && c.rc == 0)
		rc = kl_buf_append_str(body, c.n ? "\n]\n" : "]\n");
	return rc < 0 ? rc : c.rc;
}

/* ---- the handler -------------------------------------------------------------------------- */

static int handle(void *ctx, const char *path, struct kl_buf *body, const char **type)
{
	struct observe *o = ctx;
	if (!strcmp(path, "/metrics")) {
		*type = "text/plain; version=0.0.4; charset=utf-8";
		if (metrics(o, body) == 0)
			return 200;
	} else if (!strcmp(path, "/healthz")) {
		return healthz(o, body);
	} else if (!strcmp(path, "/alerts")) {
		*type = "application/json";
		if (alerts(o, body) == 0)
			return 200;
	} else {
		kl_buf_append_str(body, "not found; try /metrics, /healthz or /alerts\n");
		return 404;
	}
	kl_buf_reset(body);
	*type = "text/plain; charset=utf-8";
	kl_buf_append_str(body, "out of memory\n");
	return 500;
}

int observe_start(struct ev_loop *loop, struct runtime *rt, struct ingest_tail *const *tails,
		  size_t ntails, struct observe **out)
{
	*out = NULL;
	const char *addr = rt->cfg->listen;
	if (!addr)
		return 0;
	struct observe *o = calloc(1, sizeof *o);
	if (!o || !(o->src = calloc(ntails ? ntails : 1, sizeof *o->src))) {
		free(o);
		kl_log(KL_LOG_ERROR, "listen %s: out of memory", addr);
		return -ENOMEM;
	}
	o->loop = loop;
	o->rt = rt;
	o->tails = tails;
	o->ntails = ntails;
	int64_t now = kl_wall_us();
	for (size_t i = 0; i < ntails; i++) {
		struct ingest_tail_stats st;
		ingest_tail_get_stats(tails[i], &st);
		o->src[i] = (struct src_watch){ .caught_up_us = now, .read_errors = st.read_errors };
	}
	int err = 0;
	o->http = http_server_start(loop, addr, handle, o, &err);
	if (!o->http) {
		free(o->src);
		free(o);
		if (!rt->cfg->listen_set) {
			kl_log(KL_LOG_WARN,
			       "listen %s (the default): not served; running without /metrics, "
			       "/healthz and /alerts (set `listen:` to another address, or `off`)",
			       addr);
			return 0;
		}
		return err;
	}
	ev_timer_init(&o->sample, on_sample, SAMPLE_S, SAMPLE_S);
	o->sample.data = o;
	ev_timer_start(loop, &o->sample);
	kl_log(KL_LOG_INFO, "listen %s: serving /metrics, /healthz, /alerts", addr);
	*out = o;
	return 0;
}

void observe_free(struct observe *o)
{
	if (!o)
		return;
	ev_timer_stop(o->loop, &o->sample);
	http_server_free(o->http);
	kl_buf_free(&o->scratch);
	free(o->src);
	free(o);
}
