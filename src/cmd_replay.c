/*
 * cmd_replay.c — `klaxon replay`: the rules over existing files, in event time.
 *
 * Each source has a cursor over its files (oldest first); the cursors are
 * merged by event time, one parsed event ahead each, and drive the
 * event-time clock (src/event_clock.h: evaluation per batch of event time and
 * at every eval_interval tick, gaps included).
 * Alert transitions go to stdout only: a replay never pages anyone.
 *
 * --state DIR: the rules start from DIR/rules.state when it exists (the file
 * `run` keeps in its state_dir: windows, alert states, anomaly histories,
 * seen tables) with the clock where it stopped, and it is written there at
 * the end, so replaying Monday then Tuesday gives the transitions of one
 * pass over both, and a replay of the archives trains what `run` continues.
 */
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/ingest.h"
#include "src/args.h"
#include "src/commands.h"
#include "src/event_clock.h"
#include "src/pipeline.h"

struct cursor {
	struct replay *rp;
	unsigned src;
	char **files;
	size_t nfiles;
	size_t next;
	struct ingest_reader *reader;
	bool has_head;
	int64_t head_us;
};

struct replay {
	struct runtime rt;
	struct cursor *cursors;
	size_t ncursors;
	struct event_clock clock;
	uint64_t lines;
	uint64_t too_long;
	uint64_t read_errors;
	bool open_failed;
};

static void close_reader(struct replay *rp, struct cursor *c)
{
	const struct ingest_reader_stats *st = ingest_reader_stats(c->reader);
	rp->too_long += st->too_long;
	rp->read_errors += st->errors;
	ingest_reader_close(c->reader);
	c->reader = NULL;
}

/* A complete record of c: parsed into its head (the record's bytes stay
 * valid until the assembler hands out the next one). */
static void on_record(void *ctx, const char *rec, size_t len, int64_t read_us)
{
	struct cursor *c = ctx;
	int64_t t;
	if (runtime_line_parse(&c->rp->rt, c->src, rec, len, read_us, &t) == 0) {
		c->has_head = true;
		c->head_us = t;
	}
}

/* Parse lines of c until one is an event (its head) or its files end. */
static void advance(struct replay *rp, struct cursor *c)
{
	struct ingest_multiline *ml = rp->rt.multiline[c->src];
	c->has_head = false;
	for (;;) {
		if (!c->reader) {
			if (c->next == c->nfiles)
				return;
			const char *path = c->files[c->next++];
			int err = 0;
			c->reader = ingest_reader_open(path, rp->rt.cfg->sources[c->src].max_line, &err);
			if (!c->reader) {
				kl_log(KL_LOG_ERROR, "replay: cannot open '%s': %s", path, strerror(-err));
				rp->open_failed = true;
				continue;
			}
		}
		struct kl_str line;
		int rc = ingest_reader_next(c->reader, &line);
		if (rc <= 0) {
			close_reader(rp, c);
			if (ml) /* records do not span files */
				ingest_multiline_flush(ml, on_record, c);
			if (c->has_head)
				return;
			continue;
		}
		rp->lines++;
		if (ml) {
			ingest_multiline_feed(ml, line.p, line.len, 0, on_record, c);
			if (c->has_head)
				return;
			continue;
		}
		int64_t t;
		/* The read time of an archived line is unknown: formats without a
		 * time field get 0, and replay keeps its clock where it is. */
		if (runtime_line_parse(&rp->rt, c->src, line.p, line.len, 0, &t) == 0) {
			c->has_head = true;
			c->head_us = t;
			return;
		}
	}
}

static struct cursor *oldest(struct replay *rp)
{
	struct cursor *best = NULL;
	for (size_t i = 0; i < rp->ncursors; i++) {
		struct cursor *c = &rp->cursors[i];
		if (c->has_head && (!best || c->head_us < best->head_us))
			best = c;
	}
	return best;
}

static int add_files(struct replay *rp, unsigned src, char **files, size_t n)
{
	for (size_t i = 0; i < rp->ncursors; i++) {
		struct cursor *c = &rp->cursors[i];
		if (c->src != src)
			continue;
		char **grown = realloc(c->files, (c->nfiles + n) * sizeof *grown);
		if (!grown)
			return -ENOMEM;
		memcpy(grown + c->nfiles, files, n * sizeof *files);
		c->files = grown;
		c->nfiles += n;
		free(files);
		return 0;
	}
	struct cursor *grown = realloc(rp->cursors, (rp->ncursors + 1) * sizeof *grown);
	if (!grown)
		return -ENOMEM;
	rp->cursors = grown;
	rp->cursors[rp->ncursors++] = (struct cursor){ .rp = rp, .src = src, .files = files, .nfiles = n };
	return 0;
}

static int gather(struct replay *rp, const struct args *a)
{
	const struct config *cfg = rp->rt.cfg;
	if (a->nfiles) {
		for (size_t i = 0; i < a->nfiles; i++) {
			const struct config_source *s = config_source_by_name(cfg, a->files[i].name);
			if (!s && config_probe_by_name(cfg, a->files[i].name)) {
				fprintf(stderr,
					"klaxon replay: --source %s: '%s' is a probe: probes are live checks, "
					"replay has no files for them\n",
					a->files[i].name, a->files[i].name);
				return -EINVAL;
			}
			if (!s) {
				fprintf(stderr, "klaxon replay: --source %s: no source named '%s' in %s\n",
					a->files[i].name, a->files[i].name, cfg->file);
				return -EINVAL;
			}
			char **one = malloc(sizeof *one);
			if (!one || !(one[0] = kl_strndup(a->files[i].path, strlen(a->files[i].path)))) {
				free(one);
				return -ENOMEM;
			}
			if (add_files(rp, (unsigned)(s - cfg->sources), one, 1) < 0)
				return -ENOMEM;
		}
		return 0;
	}
	for (size_t i = 0; i < cfg->nsources; i++) {
		char **files;
		size_t n;
		if (source_files(cfg->sources[i].path, true, &files, &n) < 0 ||
		    add_files(rp, (unsigned)i, files, n) < 0)
			return -ENOMEM;
		if (!n)
			kl_log(KL_LOG_WARN, "replay: source '%s': no file matches '%s'",
			       cfg->sources[i].name, cfg->sources[i].path);
	}
	return 0;
}

#define STATE_NAME "rules.state"
#define STATE_MAX (256u << 20)

/* --state DIR: restore DIR/rules.state if it is there, and the clock with it. */
static int state_load(struct replay *rp, const char *dir, struct kl_buf *path)
{
	if (kl_buf_appendf(path, "%s/%s", dir, STATE_NAME) < 0)
		return -ENOMEM;
	char *data = NULL;
	size_t len = 0;
	int rc = kl_read_file(path->p, STATE_MAX, &data, &len);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0) {
		fprintf(stderr, "klaxon replay: cannot read \"%s\": %s\n", path->p, strerror(-rc));
		return rc;
	}
	struct rules_restore_stats st;
	rc = rules_restore(rp->rt.rules, data, len, &st);
	free(data);
	if (rc < 0) {
		fprintf(stderr, "klaxon replay: \"%s\" is damaged or from another version%s\n",
			path->p, rc == -ENOMEM ? " (out of memory)" : "");
		return rc;
	}
	/* Go on as if the last replay had not stopped: the ticks from its last
	 * instant on are still to come (event times are whole seconds, often
	 * exactly on a tick). */
	int64_t step = rules_eval_interval(rp->rt.rules), t = st.saved_at_us;
	rp->clock.now = rp->clock.last_batch = t;
	rp->clock.next_tick = t % step ? t - t % step + step : t;
	return 0;
}

static int state_write(struct replay *rp, const char *dir, const char *path)
{
	struct kl_buf b = { 0 };
	int rc = mkdir(dir, 0750) < 0 && errno != EEXIST ? -errno : 0;
	if (rc == 0)
		rc = rules_save(rp->rt.rules, &b);
	if (rc == 0)
		rc = kl_write_file_atomic(path, b.p, b.len);
	if (rc < 0)
		fprintf(stderr, "klaxon replay: cannot write \"%s\": %s\n", path, strerror(-rc));
	kl_buf_free(&b);
	return rc;
}

static void summary(const struct replay *rp, double secs)
{
	uint64_t events = 0, errors = 0;
	for (size_t i = 0; i < rp->rt.cfg->nsources; i++) {
		events += rp->rt.stats[i].events;
		errors += rp->rt.stats[i].parse_errors;
	}
	fprintf(stderr,
		"klaxon: replay: %llu lines, %llu events, %llu parse errors, %llu too long, %llu read errors, %llu alerts in %.2f s (%.0f lines/s)\n",
		(unsigned long long)rp->lines, (unsigned long long)events, (unsigned long long)errors,
		(unsigned long long)rp->too_long, (unsigned long long)rp->read_errors,
		(unsigned long long)rp->rt.alerts, secs, secs > 0 ? (double)rp->lines / secs : 0.0);
}

int cmd_replay(int argc, char **argv)
{
	struct args a;
	if (args_parse("replay", argc, argv, true, &a) < 0 || a.npositional)
		return EXIT_USAGE;
	const char *path = find_config_or_explain(a.config);
	if (!path)
		return EXIT_PROBLEMS;
	struct replay rp = { 0 };
	struct kl_diag d = { .out = stderr };
	struct kl_buf state_path = { 0 };
	int status = EXIT_PROBLEMS;
	int64_t t0 = kl_mono_us();
	event_clock_init(&rp.clock);
	kl_log_set_quiet(true);
	if (runtime_load(&rp.rt, path, &d) < 0 || runtime_open_sinks(&rp.rt, NULL) < 0 ||
	    gather(&rp, &a) < 0 || (a.state && state_load(&rp, a.state, &state_path) < 0))
		goto out;
	for (size_t i = 0; i < rp.ncursors; i++)
		advance(&rp, &rp.cursors[i]);
	for (struct cursor *c; (c = oldest(&rp));) {
		event_clock_advance(&rp.clock, rp.rt.rules, c->head_us, runtime_transition, &rp.rt);
		runtime_feed(&rp.rt, c->src);
		advance(&rp, c);
	}
	event_clock_finish(&rp.clock, rp.rt.rules, runtime_transition, &rp.rt);
	runtime_flush(&rp.rt);
	summary(&rp, (double)(kl_mono_us() - t0) / 1e6);
	status = rp.open_failed ? EXIT_PROBLEMS : EXIT_OK;
	if (a.state && state_write(&rp, a.state, state_path.p) < 0)
		status = EXIT_PROBLEMS;
out:
	kl_buf_free(&state_path);
	for (size_t i = 0; i < rp.ncursors; i++) {
		if (rp.cursors[i].reader)
			ingest_reader_close(rp.cursors[i].reader);
		files_free(rp.cursors[i].files, rp.cursors[i].nfiles);
	}
	free(rp.cursors);
	runtime_free(&rp.rt);
	return status;
}
