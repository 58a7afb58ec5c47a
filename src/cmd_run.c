/*
 * cmd_run.c — `klaxon run`: the sidecar.
 *
 * One libev loop: a tailer per source delivers lines; after each read batch
 * the rules fed by it are evaluated at once (a page should not wait for a
 * tick), and a timer evaluates every rule each eval_interval (window expiry,
 * `for`, flatline). Signal watchers only record and break or reload on the
 * loop; nothing here blocks.
 */
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>

#include "ingest/ingest.h"
#include "src/args.h"
#include "src/commands.h"
#include "src/pipeline.h"

#define REPORT_INTERVAL 60.0

struct run;

struct tailctx {
	struct run *run;
	unsigned src;
	ev_timer flush; /* the source's pending multi-line record times out */
};

struct run {
	struct ev_loop *loop;
	struct runtime rt;
	struct ingest_tail **tails;
	struct tailctx *ctxs;
	size_t ntails;
	ev_timer tick;
	ev_timer report;
	ev_signal sigterm;
	ev_signal sigint;
	ev_signal sighup;
};

static void on_line(void *ctx, const char *line, size_t len, int64_t read_us)
{
	struct tailctx *t = ctx;
	runtime_input(&t->run->rt, t->src, line, len, read_us);
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
	rules_eval(rt->rules, now, runtime_transition, rt);
	runtime_flush(rt);
	arm_flush(t, now);
}

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct run *r = w->data;
	rules_eval_all(r->rt.rules, kl_wall_us(), runtime_transition, &r->rt);
	runtime_flush(&r->rt);
}

static void on_report(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct run *r = w->data;
	runtime_report_parse_errors(&r->rt);
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

static void watch(struct run *r)
{
	double interval = (double)r->rt.cfg->eval_interval_us / 1e6;
	ev_timer_init(&r->tick, on_tick, interval, interval);
	ev_timer_init(&r->report, on_report, REPORT_INTERVAL, REPORT_INTERVAL);
	ev_signal_init(&r->sigterm, on_stop, SIGTERM);
	ev_signal_init(&r->sigint, on_stop, SIGINT);
	ev_signal_init(&r->sighup, on_reload, SIGHUP);
	r->tick.data = r->report.data = r;
	r->sigterm.data = r->sigint.data = r->sighup.data = r;
	ev_timer_start(r->loop, &r->tick);
	ev_timer_start(r->loop, &r->report);
	ev_signal_start(r->loop, &r->sigterm);
	ev_signal_start(r->loop, &r->sigint);
	ev_signal_start(r->loop, &r->sighup);
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
	if (runtime_load(&r.rt, path, &d) < 0 || runtime_open_sinks(&r.rt, r.loop) < 0)
		goto out;
	if (start_tails(&r) < 0)
		goto out;
	watch(&r);
	kl_log(KL_LOG_INFO, "run: %zu source(s), %zu rule(s) from %s", r.rt.cfg->nsources,
	       rules_count(r.rt.rules), path);
	ev_run(r.loop, 0);
	status = EXIT_OK;
out:
	for (size_t i = 0; i < r.ntails; i++) {
		ingest_tail_free(r.tails[i]);
		ev_timer_stop(r.loop, &r.ctxs[i].flush);
		runtime_input_flush(&r.rt, (unsigned)i); /* a record cut short by the stop */
	}
	free(r.tails);
	free(r.ctxs);
	runtime_flush(&r.rt);
	runtime_free(&r.rt);
	ev_loop_destroy(r.loop);
	return status;
}
