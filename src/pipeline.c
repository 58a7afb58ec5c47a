/*
 * pipeline.c — see pipeline.h.
 */
#include <errno.h>
#include <glob.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "src/alert_board.h"
#include "src/pipeline.h"

static struct rules_set *load_rules(struct runtime *rt, const struct config *cfg, struct kl_diag *d)
{
	struct rules_set *rs = rules_load((const char *const *)cfg->rule_files, cfg->nrule_files,
					  rt->sources, rt->nall, d);
	if (rs)
		rules_set_eval_interval(rs, cfg->eval_interval_us);
	return rs;
}

/* The source's record rule: its `multiline:`, else its parser's default. */
static int setup_multiline(struct runtime *rt, size_t i, struct kl_diag *d)
{
	const struct config_source *s = &rt->cfg->sources[i];
	const struct config_multiline *m = &s->multiline;
	struct ingest_multiline_opts o = { m->start, m->continuation, m->timeout_us, m->max_lines,
					   m->max_bytes };
	struct parser_multiline pm;
	if (!m->set) {
		if (!parser_default_multiline(s->parser, &pm))
			return 0;
		o.start = pm.start;
		o.continuation = pm.continuation;
	}
	char err[256];
	rt->multiline[i] = ingest_multiline_new(&o, err, sizeof err);
	if (!rt->multiline[i]) {
		kl_diag_error(d, rt->cfg->file, s->line, s->col, "source '%s': multiline %s", s->name, err);
		return -EINVAL;
	}
	return 0;
}

int runtime_load(struct runtime *rt, const char *path, struct kl_diag *d)
{
	struct config *cfg;
	memset(rt, 0, sizeof *rt);
	if (config_load(path, &cfg, d) < 0)
		return -EINVAL;
	return runtime_load_config(rt, cfg, d);
}

int runtime_load_config(struct runtime *rt, struct config *cfg, struct kl_diag *d)
{
	const char *path = cfg->file;
	memset(rt, 0, sizeof *rt);
	rt->cfg = cfg;
	size_t n = rt->cfg->nsources + rt->cfg->nprobes;
	rt->nall = n;
	rt->sources = calloc(n ? n : 1, sizeof *rt->sources);
	rt->multiline = calloc(n ? n : 1, sizeof *rt->multiline);
	rt->events = calloc(n ? n : 1, sizeof *rt->events);
	rt->stats = calloc(n ? n : 1, sizeof *rt->stats);
	if (!rt->sources || !rt->events || !rt->stats || !rt->multiline) {
		kl_diag_error(d, path, 0, 0, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < rt->cfg->nsources; i++) {
		const struct config_source *s = &rt->cfg->sources[i];
		rt->sources[i] = (struct rules_source){ s->name, s->parser };
		parser_event_init(&rt->events[i], s->parser);
		if (setup_multiline(rt, i, d) < 0)
			return -EINVAL;
	}
	for (size_t i = 0; i < rt->cfg->nprobes; i++) {
		const struct config_probe *pr = &rt->cfg->probes[i];
		size_t k = rt->cfg->nsources + i;
		rt->sources[k] = (struct rules_source){ pr->name, pr->parser };
		parser_event_init(&rt->events[k], pr->parser);
	}
	rt->rules = load_rules(rt, rt->cfg, d);
	return rt->rules ? 0 : -EINVAL;
}

/* mkdir -p: state_dir is ours to create (0750) when it is missing. */
static int make_dirs(const char *path)
{
	char buf[4096];
	size_t n = strlen(path);
	if (n == 0 || n >= sizeof buf)
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		char c = buf[i];
		buf[i] = '\0';
		if (mkdir(buf, 0750) < 0 && errno != EEXIST)
			return -errno;
		buf[i] = c;
	}
	return 0;
}

/* ---- shared mode: the rules' store is the sinks' Redis connection ------------ */

static void store_put(void *ctx, const char *key, const char *field, size_t flen, const char *val,
		      size_t vlen, int64_t ttl_ms)
{
	sink_redis_hset(ctx, key, field, flen, val, vlen, ttl_ms);
}

static void store_get(void *ctx, const char *key, uint64_t tag)
{
	sink_redis_hgetall(ctx, key, tag);
}

static void on_redis_hash(void *ctx, uint64_t tag, const char *key,
			  const struct sink_redis_field *f, size_t n)
{
	struct runtime *rt = ctx;
	if (tag == ALERT_BOARD_TAG) {
		alert_board_answer(rt->board, f, n, kl_wall_us());
		return;
	}
	if (n > rt->fcap) {
		struct rules_field *nf = realloc(rt->fields, n * sizeof *nf);
		if (!nf)
			return;
		rt->fields = nf;
		rt->fcap = n;
	}
	for (size_t i = 0; i < n; i++)
		rt->fields[i] = (struct rules_field){ f[i].name, f[i].nlen, f[i].val, f[i].vlen };
	rules_shared_answer(rt->rules, tag, key, rt->fields, n);
	/* Judge on the merge at once (only the rules the answer changed). */
	rules_eval(rt->rules, kl_wall_us(), runtime_transition, rt);
	runtime_flush(rt);
}

static void on_redis_state(void *ctx, bool up)
{
	struct runtime *rt = ctx;
	if (!up) {
		rules_shared_lost(rt->rules);
		alert_board_clear(rt->board); /* alone: /alerts shows ours only */
	}
}

/* Give the rules the store (at start, and to a reloaded set). */
static int share_rules(struct runtime *rt)
{
	struct sink_redis *r = sinks_redis(rt->sinks);
	if (!r)
		return 0;
	struct rules_store store = { r, store_put, store_get };
	return rules_share(rt->rules, &store, rt->replica, rt->cfg->redis.share_all);
}

void runtime_shared_sync(struct runtime *rt, int64_t now)
{
	struct sink_redis *r = sinks_redis(rt->sinks);
	if (sink_redis_up(r)) {
		rules_shared_sync(rt->rules, now);
		alert_board_sync(rt->board, r, rt->rules, now);
	}
}

/* The replica's name: `replica:`, else HOSTNAME-PID (unique per process,
 * and the host name is the container's in compose). */
static int replica_name(struct runtime *rt)
{
	char host[256] = "klaxon";
	struct kl_buf b = { 0 };
	int rc;
	if (rt->cfg->redis.replica) {
		rc = kl_buf_append_str(&b, rt->cfg->redis.replica);
	} else {
		if (gethostname(host, sizeof host) < 0)
			snprintf(host, sizeof host, "klaxon");
		host[sizeof host - 1] = '\0';
		for (char *c = host; *c; c++)
			if (*c == '|') /* it separates the replica in field names */
				*c = '_';
		rc = kl_buf_appendf(&b, "%s-%ld", host, (long)getpid());
	}
	if (rc < 0)
		return -ENOMEM;
	rt->replica = b.p;
	return 0;
}

static int open_redis(struct runtime *rt)
{
	const struct config_redis *c = &rt->cfg->redis;
	if (replica_name(rt) < 0 || !(rt->board = alert_board_new(rt->replica)))
		return -ENOMEM;
	rt->redis_spec = (struct sink_redis_spec){
		.host = c->host,
		.port = c->port,
		.db = c->db,
		.password = c->password,
		.replica = rt->replica,
		.lease_us = c->lease_us,
		.stream_key = c->stream_key,
		.stream_maxlen = c->stream_maxlen,
		.stream_events = c->stream_events,
		.tls = c->tls,
		.tls_ca_file = c->tls_ca_file,
		.tls_insecure = c->tls_insecure,
	};
	rt->cfg->sinks_spec.redis = &rt->redis_spec;
	return 0;
}

int runtime_open_sinks(struct runtime *rt, struct ev_loop *loop)
{
	if (loop) {
		int rc = make_dirs(rt->cfg->state_dir);
		if (rc < 0) {
			kl_log(KL_LOG_ERROR, "state_dir '%s': cannot create it: %s (%s)", rt->cfg->state_dir,
			       strerror(-rc), rt->cfg->file);
			return rc;
		}
	}
	static const struct sink_spec stdout_only = { .name = "stdout", .kind = SINK_STDOUT };
	struct sinks_spec replay = { .sinks = &stdout_only, .nsinks = 1 };
	int err = 0;
	if (loop && rt->cfg->redis.set && open_redis(rt) < 0)
		return -ENOMEM;
	rt->sinks = sinks_new(loop, loop ? &rt->cfg->sinks_spec : &replay, &err);
	if (!rt->sinks)
		return err;
	rt->event_sinks = sinks_want_events(rt->sinks);
	if (share_rules(rt) < 0)
		return -ENOMEM;
	if (sinks_redis(rt->sinks)) {
		struct rules_shared_stats st;
		rules_shared_get_stats(rt->rules, &st);
		kl_log(KL_LOG_INFO, "redis %s:%u: shared mode for %zu rule(s), replica '%s'",
		       rt->cfg->redis.host, rt->cfg->redis.port, st.rules, rt->replica);
		sink_redis_start(sinks_redis(rt->sinks), on_redis_hash, on_redis_state, rt);
	}
	return 0;
}

int runtime_reload_rules(struct runtime *rt)
{
	struct kl_diag d = { .out = stderr };
	struct config *cfg = NULL;
	if (config_load(rt->cfg->file, &cfg, &d) < 0) {
		kl_log(KL_LOG_ERROR, "reload: %s has %u problem(s); the old rules keep running",
		       rt->cfg->file, d.errors);
		return -EINVAL;
	}
	/* Sources are followed as they were at start; only rules are reloaded.
	 * The new rules are compiled against the running sources. */
	struct config tmp = *rt->cfg;
	tmp.rule_files = cfg->rule_files;
	tmp.nrule_files = cfg->nrule_files;
	tmp.eval_interval_us = cfg->eval_interval_us;
	struct rules_set *rs = load_rules(rt, &tmp, &d);
	config_free(cfg);
	if (!rs) {
		kl_log(KL_LOG_ERROR, "reload: the rule files have %u problem(s); the old rules keep running",
		       d.errors);
		return -EINVAL;
	}
	size_t kept = rules_adopt_state(rs, rt->rules);
	rules_free(rt->rules);
	rt->rules = rs;
	if (share_rules(rt) < 0)
		kl_log(KL_LOG_ERROR, "reload: out of memory for shared mode; the rules are local");
	kl_log(KL_LOG_INFO, "reload: %zu rules loaded, %zu unchanged kept their windows and alerts",
	       rules_count(rs), kept);
	return 0;
}

void runtime_free(struct runtime *rt)
{
	sinks_free(rt->sinks);
	rules_free(rt->rules);
	for (size_t i = 0; rt->multiline && rt->cfg && i < rt->cfg->nsources; i++)
		ingest_multiline_free(rt->multiline[i]);
	free(rt->multiline);
	free(rt->sources);
	free(rt->events);
	free(rt->stats);
	kl_buf_free(&rt->probe_text);
	free(rt->replica);
	free(rt->fields);
	alert_board_free(rt->board);
	config_free(rt->cfg);
	memset(rt, 0, sizeof *rt);
}

void runtime_feed(struct runtime *rt, unsigned src)
{
	struct parser_event *ev = &rt->events[src];
	rt->stats[src].events++;
	if (rt->event_sinks)
		sinks_event(rt->sinks, rt->sources[src].name, ev);
	rules_feed(rt->rules, src, ev);
}

int runtime_line_parse(struct runtime *rt, unsigned src, const char *line, size_t len,
		       int64_t read_us, int64_t *event_us)
{
	struct parser_event *ev = &rt->events[src];
	rt->stats[src].lines++;
	if (parser_parse((struct parser *)rt->cfg->sources[src].parser, line, len, read_us, ev) < 0) {
		rt->stats[src].parse_errors++;
		return -EINVAL;
	}
	*event_us = ev->time_us;
	return 0;
}

int runtime_line(struct runtime *rt, unsigned src, const char *line, size_t len, int64_t read_us,
		 int64_t *event_us)
{
	int rc = runtime_line_parse(rt, src, line, len, read_us, event_us);
	if (rc == 0)
		runtime_feed(rt, src);
	return rc;
}

void runtime_probe(struct runtime *rt, unsigned probe, const struct ingest_probe_result *r)
{
	unsigned src = (unsigned)rt->cfg->nsources + probe;
	struct parser_event *ev = &rt->events[src];
	size_t nf = parser_field_count(ev->parser);
	size_t off[PARSER_MAX_FIELDS];
	struct kl_buf *b = &rt->probe_text;

	if (probe >= rt->cfg->nprobes)
		return;
	/* numbers as text too: `by` labels and string comparisons read the
	 * text; their values are set exactly below */
	kl_buf_reset(b);
	for (size_t i = 0; i < nf && i < r->n; i++) {
		off[i] = b->len;
		if (r->values[i].set && !r->values[i].str &&
		    kl_json_append_num(b, r->values[i].num) < 0) {
			rt->stats[src].parse_errors++;
			return;
		}
	}
	ev->num_tried = ev->num_ok = ev->literal = 0;
	for (size_t i = 0; i < nf; i++) {
		const struct ingest_probe_value *v = i < r->n ? &r->values[i] : NULL;
		if (!v || !v->set) {
			ev->raw[i] = (struct kl_str){ NULL, 0 };
		} else if (v->str) {
			ev->raw[i] = (struct kl_str){ v->str, strlen(v->str) };
		} else {
			size_t end = i + 1 < nf && i + 1 < r->n ? off[i + 1] : b->len;
			ev->raw[i] = (struct kl_str){ b->p + off[i], end - off[i] };
			ev->num[i] = v->num;
			ev->num_tried |= 1ull << i;
			ev->num_ok |= 1ull << i;
		}
	}
	ev->time_us = ev->read_us = r->at_us;
	rt->stats[src].lines++;
	runtime_feed(rt, src);
}

struct record_ctx {
	struct runtime *rt;
	unsigned src;
};

static void on_record(void *ctx, const char *rec, size_t len, int64_t first_read_us)
{
	const struct record_ctx *c = ctx;
	int64_t t;
	runtime_line(c->rt, c->src, rec, len, first_read_us, &t);
}

void runtime_input(struct runtime *rt, unsigned src, const char *line, size_t len, int64_t read_us)
{
	if (!rt->multiline[src]) {
		int64_t t;
		runtime_line(rt, src, line, len, read_us, &t);
		return;
	}
	struct record_ctx c = { rt, src };
	ingest_multiline_feed(rt->multiline[src], line, len, read_us, on_record, &c);
}

void runtime_input_flush(struct runtime *rt, unsigned src)
{
	struct record_ctx c = { rt, src };
	if (rt->multiline[src])
		ingest_multiline_flush(rt->multiline[src], on_record, &c);
}

void runtime_transition(void *ctx, const struct rules_transition *t)
{
	struct runtime *rt = ctx;
	rt->alerts++;
	sinks_alert(rt->sinks, t);
}

void runtime_flush(struct runtime *rt)
{
	if (rt->sinks)
		sinks_flush(rt->sinks);
}

void runtime_report_parse_errors(struct runtime *rt)
{
	for (size_t i = 0; i < rt->cfg->nsources; i++) {
		struct source_stats *s = &rt->stats[i];
		if (s->parse_errors == s->reported_errors)
			continue;
		kl_log(KL_LOG_WARN, "source '%s': %llu line(s) did not match parser '%s' (%llu in all); try `klaxon parse --source %s`",
		       rt->cfg->sources[i].name,
		       (unsigned long long)(s->parse_errors - s->reported_errors),
		       rt->cfg->sources[i].parser_name, (unsigned long long)s->parse_errors,
		       rt->cfg->sources[i].name);
		s->reported_errors = s->parse_errors;
	}
}

struct dated {
	char *path;
	int64_t mtime_ns;
};

static int by_mtime(const void *a, const void *b)
{
	const struct dated *x = a, *y = b;
	if (x->mtime_ns != y->mtime_ns)
		return x->mtime_ns < y->mtime_ns ? -1 : 1;
	/* Same second: access.log.2 is older than access.log.1, which is older
	 * than access.log. Longer names (more suffixes) first, then reverse. */
	size_t lx = strlen(x->path), ly = strlen(y->path);
	if (lx != ly)
		return lx > ly ? -1 : 1;
	return -strcmp(x->path, y->path);
}

static int add_glob(const char *pattern, struct dated **list, size_t *n, size_t *cap)
{
	glob_t g;
	int rc = glob(pattern, GLOB_NOSORT, NULL, &g);
	if (rc == GLOB_NOMATCH)
		return 0;
	if (rc != 0)
		return -ENOMEM;
	for (size_t i = 0; i < g.gl_pathc; i++) {
		struct stat st;
		if (stat(g.gl_pathv[i], &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		bool dup = false;
		for (size_t k = 0; k < *n && !dup; k++)
			dup = !strcmp((*list)[k].path, g.gl_pathv[i]);
		if (dup)
			continue;
		if (*n == *cap) {
			size_t nc = *cap ? *cap * 2 : 16;
			void *p = realloc(*list, nc * sizeof **list);
			if (!p)
				goto nomem;
			*list = p;
			*cap = nc;
		}
		char *copy = kl_strndup(g.gl_pathv[i], strlen(g.gl_pathv[i]));
		if (!copy)
			goto nomem;
		(*list)[(*n)++] = (struct dated){ copy,
						  (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec };
	}
	globfree(&g);
	return 0;
nomem:
	globfree(&g);
	return -ENOMEM;
}

int source_files(const char *pattern, bool rotated, char ***out, size_t *n)
{
	struct dated *list = NULL;
	size_t count = 0, cap = 0;
	int rc = add_glob(pattern, &list, &count, &cap);
	if (rc == 0 && rotated) {
		/* Rotated siblings of each live match: NAME.* and NAME-* */
		size_t live = count;
		for (size_t i = 0; i < live && rc == 0; i++) {
			struct kl_buf b = { 0 };
			if (kl_buf_appendf(&b, "%s.*", list[i].path) < 0 ||
			    (rc = add_glob(b.p, &list, &count, &cap)) < 0)
				rc = -ENOMEM;
			kl_buf_reset(&b);
			if (rc == 0 && (kl_buf_appendf(&b, "%s-*", list[i].path) < 0 ||
					(rc = add_glob(b.p, &list, &count, &cap)) < 0))
				rc = -ENOMEM;
			kl_buf_free(&b);
		}
	}
	if (rc < 0) {
		for (size_t i = 0; i < count; i++)
			free(list[i].path);
		free(list);
		return rc;
	}
	qsort(list, count, sizeof *list, by_mtime);
	char **files = calloc(count ? count : 1, sizeof *files);
	if (!files) {
		for (size_t i = 0; i < count; i++)
			free(list[i].path);
		free(list);
		return -ENOMEM;
	}
	for (size_t i = 0; i < count; i++)
		files[i] = list[i].path;
	free(list);
	*out = files;
	*n = count;
	return 0;
}

void files_free(char **files, size_t n)
{
	for (size_t i = 0; files && i < n; i++)
		free(files[i]);
	free(files);
}
