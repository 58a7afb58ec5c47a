/*
 * cmd_run.c — `klaxon run`: the sidecar.
 *
 * One libev loop: a tailer per source delivers lines; after each read batch
 * the rules fed by it are evaluated at once (a page should not wait for a
 * tick), and a timer evaluates every rule each eval_interval (window expiry,
 * `for`, flatline). Signal watchers only record and break or reload on the
 * loop; nothing here blocks. Each probe runs its checks on the same loop;
 * a result is an event fed to the rules, which are evaluated at once.
 *
 * Checkpoint: state_dir/checkpoint holds the position of every followed file
 * of every source, so a restart resumes where the last run stopped:
 *
 *   klaxon-checkpoint 1
 *   source NAME
 *   file dev=... ino=... off=... fplen=... fp=... skip=0 path=...   (ingest.h)
 *   ...
 *   end
 *
 * It is read once at start (missing: a first start; invalid: logged, then as
 * if missing), and written with the durable-write recipe once the files are
 * open, then every CHECKPOINT_INTERVAL when it changed, and at a clean stop
 * after the last flush. Offsets are those of lines already handed on and flushed to the
 * sinks: after a crash, at most the lines of the last interval come again.
 *
 * Rule state: state_dir/rules.state holds every rule's windows and alert
 * states (rules_save), written just before the checkpoint whenever it
 * changed, with the same recipe, so the windows a restart finds match the
 * offsets it resumes from (a crash between the two writes counts the lines of
 * one interval twice, never loses them). At start it is restored into the
 * freshly loaded rules and the firing alerts are announced to the sinks as
 * restored: nothing is paged again, resolutions still go out.
 *
 * A message spooled for a notifier writes both at once (before the loop
 * sleeps again), not at the next interval: a crash right after a page is
 * queued must not resume before the line that caused it, read it again,
 * and page twice.
 */
#include <errno.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ingest/ingest.h"
#include "rotate/rotate.h"
#include "src/args.h"
#include "src/commands.h"
#include "src/observe.h"
#include "src/pipeline.h"

#define REPORT_INTERVAL 60.0
#define CHECKPOINT_INTERVAL 1.0
#define CHECKPOINT_NAME "checkpoint"
#define CHECKPOINT_MAX (64u << 20)
#define CHECKPOINT_MAGIC "klaxon-checkpoint 1\n"
#define RULES_STATE_NAME "rules.state"
#define RULES_STATE_MAX (256u << 20)

struct run;

struct tailctx {
	struct run *run;
	unsigned src;
	ev_timer flush; /* the source's pending multi-line record times out */
	/* Where the pending multi-line record began: the checkpoint goes no
	 * further, so a crash re-reads the record rather than losing it. */
	struct ingest_mark held;
	bool holding;
};

struct probectx {
	struct run *run;
	unsigned probe;
};

struct run {
	struct ev_loop *loop;
	struct runtime rt;
	struct ingest_probe **probes;
	struct probectx *pctxs;
	size_t nprobes;
	struct ingest_tail **tails;
	struct tailctx *ctxs;
	size_t ntails;
	ev_timer tick;
	ev_timer report;
	ev_signal sigterm;
	ev_signal sigint;
	ev_signal sighup;
	/* checkpoint */
	char *ckpt_path;
	char *ckpt_data;	   /* as read at start; sections point into it */
	struct kl_str *ckpt_sec;   /* per source: its records (p NULL: none) */
	int64_t ckpt_time_us;	   /* when the checkpoint read at start was written */
	struct kl_buf ckpt_last;   /* what was written last */
	struct kl_buf ckpt_next;
	bool ckpt_failing;	   /* the last write failed (logged once) */
	ev_timer ckpt;
	ev_prepare spooled_w;	   /* a message spooled since: checkpoint now */
	uint64_t spooled;	   /* sinks_spooled() at the last checkpoint */
	/* rule state */
	char *rstate_path;
	struct kl_buf rstate;
	uint64_t rstate_gen;	   /* rules_generation when last written */
	bool rstate_written;
	bool rstate_failing;
	struct rotate *rot;	   /* the rotator (NULL: no `rotate:` entries) */
	struct observe *obs; /* listen: /metrics, /healthz, /alerts (NULL: off) */
};

static void on_line(void *ctx, const char *line, size_t len, int64_t read_us)
{
	struct tailctx *t = ctx;
	struct ingest_multiline *m = t->run->rt.multiline[t->src];
	struct ingest_mark mark;
	if (m && t->run->tails[t->src])
		ingest_tail_line_mark(t->run->tails[t->src], &mark);
	else
		mark = (struct ingest_mark){ NULL, 0 };
	runtime_input(&t->run->rt, t->src, line, len, read_us);
	if (!m)
		return;
	size_t pending = ingest_multiline_pending(m);
	if (pending == 1) {
		t->held = mark; /* this line began the pending record */
		t->holding = true;
	} else if (pending == 0) {
		t->holding = false;
	}
}

/* Arm the source's timer for its pending record's deadline, if any. */
static void arm_flush(struct tailctx *t, int64_t now)
{
	struct ingest_multiline *m = t->run->rt.multiline[t->src];
	int64_t due = m ? ingest_multiline_deadline(m) : INT64_MAX;
	ev_timer_stop(t->run->loop, &t->flush);
	if (due == INT64_MAX)
		return;
	ev_timer_set(&t->flush, due > now ? (double)(due - now) / 1e6 : 0.0, 0.0);
	ev_timer_start(t->run->loop, &t->flush);
}

static void on_batch(void *ctx)
{
	struct tailctx *t = ctx;
	struct runtime *rt = &t->run->rt;
	int64_t now = kl_wall_us();
	rules_eval(rt->rules, now, runtime_transition, rt);
	runtime_flush(rt);
	arm_flush(t, now);
}

static void on_flush(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct tailctx *t = w->data;
	struct runtime *rt = &t->run->rt;
	int64_t now = kl_wall_us();
	runtime_input_flush(rt, t->src);
	t->holding = false;
	rules_eval(rt->rules, now, runtime_transition, rt);
	runtime_flush(rt);
	arm_flush(t, now);
}

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct run *r = w->data;
	int64_t now = kl_wall_us();
	runtime_shared_sync(&r->rt, now); /* the merge's answers come on the loop */
	rules_eval_all(r->rt.rules, now, runtime_transition, &r->rt);
	runtime_flush(&r->rt);
}

/* A source more than this far behind its files is reported (a minute's
 * worth of a busy log at the default chunk: reading is not keeping up). */
#define LAG_REPORT_BYTES (64u << 20)

static void report_lag(struct run *r)
{
	for (size_t i = 0; i < r->ntails; i++) {
		struct ingest_tail_stats st;
		ingest_tail_get_stats(r->tails[i], &st);
		if (st.bytes_behind >= LAG_REPORT_BYTES)
			kl_log(KL_LOG_WARN,
			       "source '%s': %llu bytes behind its files (the rules or sinks are "
			       "slower than the writer; reading goes on at their pace)",
			       r->rt.cfg->sources[i].name, (unsigned long long)st.bytes_behind);
	}
}

static void on_report(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct run *r = w->data;
	runtime_report_parse_errors(&r->rt);
	report_lag(r);
}

static void on_stop(struct ev_loop *loop, ev_signal *w, int revents)
{
	kl_log(KL_LOG_INFO, "run: signal %d, stopping", w->signum);
	ev_break(loop, EVBREAK_ALL);
}

static void on_reload(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct run *r = w->data;
	runtime_reload_rules(&r->rt);
}

/* ---------------------------------------------------------------------------
 * Checkpoint.
 */

/* Split the checkpoint into per-source sections. 0, or -EINVAL with *line. */
static int ckpt_parse(struct run *r, const char *data, size_t len, size_t *line,
		      const char **why)
{
	const struct config *cfg = r->rt.cfg;
	const char *p = data, *end = data + len;
	size_t n = strlen(CHECKPOINT_MAGIC);
	long cur = -1; /* source index of the section, -2: a source not configured */
	bool ended = false;

	*line = 1;
	*why = "expected the header \"klaxon-checkpoint 1\"";
	if (len < n || memcmp(p, CHECKPOINT_MAGIC, n) != 0)
		return -EINVAL;
	p += n;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		(*line)++;
		*why = "expected a complete line";
		if (!nl)
			return -EINVAL;
		size_t l = (size_t)(nl - p);
		*why = "expected nothing after \"end\"";
		if (ended)
			return -EINVAL;
		if (l == 3 && memcmp(p, "end", 3) == 0) {
			ended = true;
		} else if (l > 7 && memcmp(p, "source ", 7) == 0) {
			cur = -2;
			for (size_t i = 0; i < cfg->nsources; i++)
				if (kl_str_eq((struct kl_str){ p + 7, l - 7 }, cfg->sources[i].name,
					      strlen(cfg->sources[i].name)))
					cur = (long)i;
			*why = "a source appears twice";
			if (cur >= 0 && r->ckpt_sec[cur].p)
				return -EINVAL;
			if (cur >= 0)
				r->ckpt_sec[cur] = (struct kl_str){ nl + 1, 0 };
		} else if (l > 5 && (memcmp(p, "file ", 5) == 0 || memcmp(p, "done ", 5) == 0)) {
			*why = "a file record outside a source section";
			if (cur == -1)
				return -EINVAL;
			size_t bad = 0;
			*why = "expected a file record (file dev=... ino=... off=... fplen=... "
			       "fp=... skip=... path=...) or a done record (done fp=... fplen=... "
			       "end=...)";
			if (ingest_tail_state_check(p, l, &bad) < 0)
				return -EINVAL;
			if (cur >= 0)
				r->ckpt_sec[cur].len += l + 1;
		} else {
			*why = "expected \"source NAME\", \"file ...\", \"done ...\" or \"end\"";
			return -EINVAL;
		}
		p = nl + 1;
	}
	*why = "expected \"end\" (the file is cut short)";
	return ended ? 0 : -EINVAL;
}

/* Read the checkpoint, if any. Only -ENOMEM is fatal. */
static int ckpt_load(struct run *r)
{
	const char *dir = r->rt.cfg->state_dir;
	size_t n = r->rt.cfg->nsources, len = 0, line = 0;
	const char *why = NULL;
	struct kl_buf b = { 0 };

	if (kl_buf_appendf(&b, "%s/%s", dir, CHECKPOINT_NAME) < 0)
		return -ENOMEM;
	r->ckpt_path = b.p;
	r->ckpt_sec = calloc(n ? n : 1, sizeof *r->ckpt_sec);
	if (!r->ckpt_sec)
		return -ENOMEM;
	struct stat st;
	if (stat(r->ckpt_path, &st) == 0)
		r->ckpt_time_us = (int64_t)st.st_mtim.tv_sec * 1000000 + st.st_mtim.tv_nsec / 1000;
	int rc = kl_read_file(r->ckpt_path, CHECKPOINT_MAX, &r->ckpt_data, &len);
	if (rc == -ENOENT) {
		kl_log(KL_LOG_INFO, "run: no checkpoint \"%s\" yet: a first start", r->ckpt_path);
		return 0;
	}
	if (rc == -ENOMEM)
		return rc;
	if (rc < 0) {
		kl_log(KL_LOG_ERROR,
		       "run: cannot read the checkpoint \"%s\": %s; starting without it",
		       r->ckpt_path, strerror(-rc));
		return 0;
	}
	if (ckpt_parse(r, r->ckpt_data, len, &line, &why) < 0) {
		kl_log(KL_LOG_ERROR,
		       "run: checkpoint \"%s\" line %zu: %s; starting without it (files are read "
		       "as the sources' `from` says)",
		       r->ckpt_path, line, why);
		memset(r->ckpt_sec, 0, (n ? n : 1) * sizeof *r->ckpt_sec);
		return 0;
	}
	size_t found = 0;
	for (size_t i = 0; i < n; i++)
		found += r->ckpt_sec[i].p != NULL;
	kl_log(KL_LOG_INFO, "run: checkpoint \"%s\": positions of %zu of %zu source(s)",
	       r->ckpt_path, found, n);
	return 0;
}

/* ---------------------------------------------------------------------------
 * Rule state.
 */

/* Restore the rules' windows and alert states, if saved. Only -ENOMEM is
 * fatal: anything else starts the rules fresh, logged. */
static int rstate_load(struct run *r)
{
	struct kl_buf b = { 0 };
	char *data = NULL;
	size_t len = 0;
	if (kl_buf_appendf(&b, "%s/%s", r->rt.cfg->state_dir, RULES_STATE_NAME) < 0)
		return -ENOMEM;
	r->rstate_path = b.p;
	int rc = kl_read_file(r->rstate_path, RULES_STATE_MAX, &data, &len);
	if (rc == -ENOENT)
		return 0;
	if (rc == -ENOMEM)
		return rc;
	if (rc < 0) {
		kl_log(KL_LOG_ERROR, "run: cannot read the rule state \"%s\": %s; rules start empty",
		       r->rstate_path, strerror(-rc));
		return 0;
	}
	struct rules_restore_stats st;
	rc = rules_restore(r->rt.rules, data, len, &st);
	free(data);
	if (rc == -ENOMEM)
		return rc;
	if (rc < 0) {
		kl_log(KL_LOG_ERROR,
		       "run: the rule state \"%s\" is damaged or from another version; rules "
		       "start empty (alerts firing before the restart fire again)",
		       r->rstate_path);
		return 0;
	}
	char at[40];
	kl_format_rfc3339(st.saved_at_us, false, at);
	kl_log(KL_LOG_INFO,
	       "run: rule state of %s restored: %zu rule(s) (%zu firing, %zu pending alert(s)), "
	       "%zu saved rule(s) gone or changed",
	       at, st.restored, st.firing, st.pending, st.skipped);
	rules_announce(r->rt.rules, kl_wall_us(), runtime_transition, &r->rt);
	r->rstate_gen = rules_generation(r->rt.rules);
	r->rstate_written = true;
	return 0;
}

/* Write the rule state if it changed since the last write. */
static void rstate_write(struct run *r)
{
	uint64_t gen = rules_generation(r->rt.rules);
	if (r->rstate_written && gen == r->rstate_gen && !r->rstate_failing)
		return;
	kl_buf_reset(&r->rstate);
	int rc = rules_save(r->rt.rules, &r->rstate);
	if (rc == 0)
		rc = kl_write_file_atomic(r->rstate_path, r->rstate.p, r->rstate.len);
	if (rc < 0) {
		if (!r->rstate_failing)
			kl_log(KL_LOG_ERROR,
			       "run: cannot write the rule state \"%s\": %s; retrying every %gs",
			       r->rstate_path, strerror(-rc), CHECKPOINT_INTERVAL);
		r->rstate_failing = true;
		return;
	}
	if (r->rstate_failing)
		kl_log(KL_LOG_INFO, "run: the rule state \"%s\" is written again", r->rstate_path);
	r->rstate_failing = false;
	r->rstate_written = true;
	r->rstate_gen = gen;
}

/* Write the checkpoint if it changed since the last write. */
static void ckpt_write(struct run *r)
{
	rstate_write(r); /* first: a crash between the two re-counts lines, never loses them */
	struct kl_buf *b = &r->ckpt_next;
	kl_buf_reset(b);
	int rc = kl_buf_append_str(b, CHECKPOINT_MAGIC);
	for (size_t i = 0; i < r->ntails && rc == 0; i++) {
		rc = kl_buf_appendf(b, "source %s\n", r->rt.cfg->sources[i].name);
		if (rc == 0)
			rc = ingest_tail_save_held(r->tails[i], b, &r->ctxs[i].held,
						   r->ctxs[i].holding);
	}
	if (rc == 0)
		rc = kl_buf_append_str(b, "end\n");
	if (rc == 0 && b->len == r->ckpt_last.len && memcmp(b->p, r->ckpt_last.p, b->len) == 0)
		return;
	if (rc == 0)
		rc = kl_write_file_atomic(r->ckpt_path, b->p, b->len);
	if (rc < 0) {
		if (!r->ckpt_failing)
			kl_log(KL_LOG_ERROR,
			       "run: cannot write the checkpoint \"%s\": %s; retrying every %gs "
			       "(a restart now would resume from the last one written)",
			       r->ckpt_path, strerror(-rc), CHECKPOINT_INTERVAL);
		r->ckpt_failing = true;
		return;
	}
	if (r->ckpt_failing)
		kl_log(KL_LOG_INFO, "run: the checkpoint \"%s\" is written again", r->ckpt_path);
	r->ckpt_failing = false;
	struct kl_buf tmp = r->ckpt_last;
	r->ckpt_last = *b;
	*b = tmp;
}

static void checkpoint_now(struct run *r)
{
	runtime_flush(&r->rt); /* what the offsets count as handed on is out */
	r->spooled = sinks_spooled(r->rt.sinks);
	ckpt_write(r);
}

static void on_checkpoint(struct ev_loop *loop, ev_timer *w, int revents)
{
	checkpoint_now(w->data);
}

static void on_spooled(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct run *r = w->data;
	if (sinks_spooled(r->rt.sinks) != r->spooled)
		checkpoint_now(r);
}

static int start_tails(struct run *r)
{
	size_t n = r->rt.cfg->nsources;
	r->tails = calloc(n ? n : 1, sizeof *r->tails);
	r->ctxs = calloc(n ? n : 1, sizeof *r->ctxs);
	if (!r->tails || !r->ctxs)
		return -1;
	for (size_t i = 0; i < n; i++) {
		const struct config_source *s = &r->rt.cfg->sources[i];
		r->ctxs[i] = (struct tailctx){ .run = r, .src = (unsigned)i };
		ev_init(&r->ctxs[i].flush, on_flush);
		r->ctxs[i].flush.data = &r->ctxs[i];
		struct ingest_tail_opts o = {
			.pattern = s->path,
			.from_beginning = s->from_beginning,
			.max_line = s->max_line,
			.state = r->ckpt_sec[i].p,
			.state_len = r->ckpt_sec[i].len,
			.state_time_us = r->ckpt_time_us,
		};
		struct ingest_tail_cbs cbs = { on_line, on_batch, &r->ctxs[i] };
		int err = 0;
		r->tails[i] = ingest_tail_new(r->loop, &o, &cbs, &err);
		if (!r->tails[i]) {
			kl_log(KL_LOG_ERROR, "source '%s': cannot follow '%s' (%s:%d:%d)", s->name, s->path,
			       r->rt.cfg->file, s->line, s->col);
			return -1;
		}
		r->ntails++;
	}
	return 0;
}

/* ---------------------------------------------------------------------------
 * The rotator: its scans run on this loop every rotate_interval; it asks the
 * tails whether a file has been handed on to its end before it compresses,
 * deletes or truncates it. A rotation by rename needs nothing more from the
 * tails: they follow rename-and-create and copytruncate on their own.
 */
static bool rot_fully_read(void *ctx, dev_t dev, ino_t ino, uint64_t size, uint64_t *read)
{
	const struct run *r = ctx;
	uint64_t off;
	for (size_t i = 0; i < r->ntails; i++)
		if (ingest_tail_position(r->tails[i], (uint64_t)dev, (uint64_t)ino, &off) == 0) {
			*read = off;
			return off >= size;
		}
	return true; /* not followed */
}

static int start_rotator(struct run *r)
{
	const struct config *cfg = r->rt.cfg;
	if (cfg->nrotate == 0)
		return 0;
	struct rotate_opts o = { .interval_us = cfg->rotate_interval_us };
	struct rotate_hooks h = { .fully_read = rot_fully_read, .ctx = r };
	int err = 0;
	r->rot = rotate_new(r->loop, cfg->rotate, cfg->nrotate, &o, &h, &err);
	if (!r->rot) {
		kl_log(KL_LOG_ERROR, "run: cannot start the rotator: %s", strerror(-err));
		return -1;
	}
	char iv[32];
	kl_format_duration(cfg->rotate_interval_us, iv);
	kl_log(KL_LOG_INFO, "run: rotator: %zu rule(s), a scan every %s", cfg->nrotate, iv);
	return 0;
}

static void on_probe(void *ctx, const struct ingest_probe_result *res)
{
	struct probectx *pc = ctx;
	struct runtime *rt = &pc->run->rt;
	runtime_probe(rt, pc->probe, res);
	rules_eval(rt->rules, kl_wall_us(), runtime_transition, rt);
	runtime_flush(rt);
}

static int start_probes(struct run *r)
{
	size_t n = r->rt.cfg->nprobes;
	r->probes = calloc(n ? n : 1, sizeof *r->probes);
	r->pctxs = calloc(n ? n : 1, sizeof *r->pctxs);
	if (!r->probes || !r->pctxs)
		return -1;
	for (size_t i = 0; i < n; i++) {
		const struct config_probe *pr = &r->rt.cfg->probes[i];
		r->pctxs[i] = (struct probectx){ r, (unsigned)i };
		struct ingest_probe_opts o = {
			.name = pr->name,
			.kind = pr->kind,
			.target = pr->target,
			.interval_us = pr->interval_us,
			.timeout_us = pr->timeout_us,
			.tls_insecure = pr->tls_insecure,
			.ca_file = pr->ca_file,
		};
		int err = 0;
		r->probes[i] = ingest_probe_new(r->loop, &o, on_probe, &r->pctxs[i], &err);
		if (!r->probes[i]) {
			kl_log(KL_LOG_ERROR, "probe '%s': cannot start it: %s (%s:%d:%d)", pr->name,
			       err == -ENOMEM ? "out of memory" : "invalid target", r->rt.cfg->file,
			       pr->line, pr->col);
			return -1;
		}
		if (pr->tls_insecure)
			kl_log(KL_LOG_WARN, "probe '%s': tls_verify is false: the certificate is not verified",
			       pr->name);
		r->nprobes++;
	}
	return 0;
}

/*
 * Before anything starts: a SIGTERM while klaxon opens its files (a service
 * manager stopping it at once) must stop it cleanly, not kill it. The
 * signals are blocked and read through a signalfd, so they wait for the
 * loop, which runs once everything is set up.
 */
static void catch_signals(struct run *r)
{
	ev_signal_init(&r->sigterm, on_stop, SIGTERM);
	ev_signal_init(&r->sigint, on_stop, SIGINT);
	ev_signal_init(&r->sighup, on_reload, SIGHUP);
	r->sigterm.data = r->sigint.data = r->sighup.data = r;
	ev_signal_start(r->loop, &r->sigterm);
	ev_signal_start(r->loop, &r->sigint);
	ev_signal_start(r->loop, &r->sighup);
}

static void watch(struct run *r)
{
	double interval = (double)r->rt.cfg->eval_interval_us / 1e6;
	ev_timer_init(&r->tick, on_tick, interval, interval);
	ev_timer_init(&r->report, on_report, REPORT_INTERVAL, REPORT_INTERVAL);
	r->tick.data = r->report.data = r;
	ev_timer_start(r->loop, &r->tick);
	ev_timer_start(r->loop, &r->report);
	ev_timer_init(&r->ckpt, on_checkpoint, CHECKPOINT_INTERVAL, CHECKPOINT_INTERVAL);
	r->ckpt.data = r;
	ev_timer_start(r->loop, &r->ckpt);
	ev_prepare_init(&r->spooled_w, on_spooled);
	r->spooled_w.data = r;
	r->spooled = sinks_spooled(r->rt.sinks);
	ev_prepare_start(r->loop, &r->spooled_w);
}

int cmd_run(int argc, char **argv)
{
	struct args a;
	if (args_parse("run", argc, argv, false, &a) < 0 || a.npositional)
		return EXIT_USAGE;
	const char *path = find_config_or_explain(a.config);
	if (!path)
		return EXIT_PROBLEMS;
	struct run r = { .loop = ev_default_loop(EVFLAG_AUTO | EVFLAG_SIGNALFD) };
	struct kl_diag d = { .out = stderr };
	int status = EXIT_PROBLEMS;
	if (!r.loop) {
		kl_log(KL_LOG_ERROR, "run: cannot start the event loop");
		return EXIT_PROBLEMS;
	}
	catch_signals(&r);
	if (runtime_load(&r.rt, path, &d) < 0 || runtime_open_sinks(&r.rt, r.loop) < 0)
		goto out;
	if (ckpt_load(&r) < 0 || rstate_load(&r) < 0) {
		kl_log(KL_LOG_ERROR, "run: no memory for the checkpoint");
		goto out;
	}
	if (start_tails(&r) < 0 || start_probes(&r) < 0 ||
	    observe_start(r.loop, &r.rt, r.tails, r.ntails, &r.obs) < 0)
		goto out;
	free(r.ckpt_data); /* the tails have read their sections */
	r.ckpt_data = NULL;
	memset(r.ckpt_sec, 0, r.rt.cfg->nsources * sizeof *r.ckpt_sec);
	/* At once, not after the first interval: a run killed sooner still
	 * leaves the files it follows (and the generations it found rotated)
	 * for the next, which otherwise would take itself for a first start. */
	ckpt_write(&r);
	watch(&r);
	if (start_rotator(&r) < 0)
		goto out;
	kl_log(KL_LOG_INFO, "run: %zu source(s), %zu probe(s), %zu rule(s) from %s",
	       r.rt.cfg->nsources, r.rt.cfg->nprobes, rules_count(r.rt.rules), path);
	ev_run(r.loop, 0);
	status = EXIT_OK;
out:
	for (size_t i = 0; i < r.ntails; i++) {
		ev_timer_stop(r.loop, &r.ctxs[i].flush);
		runtime_input_flush(&r.rt, (unsigned)i); /* a record cut short by the stop */
		r.ctxs[i].holding = false;
	}
	runtime_flush(&r.rt);
	if (r.rt.cfg)
		runtime_report_parse_errors(&r.rt); /* those since the last report */
	if (status == EXIT_OK)
		ckpt_write(&r); /* after the last flush, before the tails go */
	ev_timer_stop(r.loop, &r.ckpt);
	ev_prepare_stop(r.loop, &r.spooled_w);
	observe_free(r.obs);
	rotate_free(r.rot); /* before the tails its hook reads */
	for (size_t i = 0; i < r.nprobes; i++)
		ingest_probe_free(r.probes[i]);
	free(r.probes);
	free(r.pctxs);
	for (size_t i = 0; i < r.ntails; i++)
		ingest_tail_free(r.tails[i]);
	free(r.tails);
	free(r.ctxs);
	free(r.ckpt_path);
	free(r.ckpt_data);
	free(r.ckpt_sec);
	kl_buf_free(&r.ckpt_last);
	kl_buf_free(&r.ckpt_next);
	free(r.rstate_path);
	kl_buf_free(&r.rstate);
	runtime_free(&r.rt);
	ev_loop_destroy(r.loop);
	return status;
}
