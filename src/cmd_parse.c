/*
 * cmd_parse.c — `klaxon parse`: print a source's events as JSON lines, to
 * debug a regex. The first lines that do not match are shown on stderr with
 * their line numbers.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ingest/ingest.h"
#include "src/args.h"
#include "src/commands.h"
#include "src/pipeline.h"

#define SHOW_UNMATCHED 10
#define SHOW_BYTES 200

struct parse_run {
	struct runtime *rt;
	unsigned src;
	struct kl_buf out;
	uint64_t lines;	  /* as read */
	uint64_t records; /* lines, or multi-line records */
	uint64_t shown;
	uint64_t too_long;
};

static void flush_out(struct parse_run *p)
{
	size_t off = 0;
	while (off < p->out.len) {
		ssize_t n = write(STDOUT_FILENO, p->out.p + off, p->out.len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	kl_buf_reset(&p->out);
}

static void one_line(struct parse_run *p, const char *path, uint64_t lineno, struct kl_str line)
{
	int64_t t;
	p->records++;
	const struct config_source *s = &p->rt->cfg->sources[p->src];
	if (runtime_line_parse(p->rt, p->src, line.p, line.len, kl_wall_us(), &t) < 0) {
		if (p->shown++ < SHOW_UNMATCHED) {
			struct kl_buf b = { 0 };
			kl_json_append_str(&b, line.p, line.len < SHOW_BYTES ? line.len : SHOW_BYTES);
			fprintf(stderr, "klaxon: parse: %s:%llu: does not match parser '%s': %.*s%s\n", path,
				(unsigned long long)lineno, s->parser_name, (int)b.len, b.p ? b.p : "",
				line.len > SHOW_BYTES ? " (cut)" : "");
			kl_buf_free(&b);
		}
		return;
	}
	parser_event_json(&p->rt->events[p->src], s->name, &p->out);
	kl_buf_append(&p->out, "\n", 1);
	if (p->out.len > (1 << 16))
		flush_out(p);
}

struct record_ctx {
	struct parse_run *p;
	const char *path;
	uint64_t lineno; /* the line that ended the record (messages are approximate) */
};

static void on_record(void *ctx, const char *rec, size_t len, int64_t read_us)
{
	struct record_ctx *c = ctx;
	one_line(c->p, c->path, c->lineno, (struct kl_str){ rec, len });
}

static int one_file(struct parse_run *p, const char *path)
{
	int err = 0;
	struct ingest_reader *r =
		ingest_reader_open(path, p->rt->cfg->sources[p->src].max_line, &err);
	if (!r) {
		fprintf(stderr, "klaxon parse: cannot open '%s': %s\n", path, strerror(-err));
		return -1;
	}
	struct kl_str line;
	uint64_t lineno = 0;
	int rc;
	struct ingest_multiline *ml = p->rt->multiline[p->src];
	struct record_ctx rc_ctx = { p, path, 0 };
	while ((rc = ingest_reader_next(r, &line)) > 0) {
		lineno++;
		p->lines++;
		if (!ml) {
			one_line(p, path, lineno, line);
			continue;
		}
		/* A record is handed out when the next one begins: it ended
		 * just before this line, which is what messages name. */
		rc_ctx.lineno = lineno;
		ingest_multiline_feed(ml, line.p, line.len, 0, on_record, &rc_ctx);
	}
	if (ml)
		ingest_multiline_flush(ml, on_record, &rc_ctx);
	p->too_long += ingest_reader_stats(r)->too_long;
	ingest_reader_close(r);
	return rc < 0 ? -1 : 0;
}

int cmd_parse(int argc, char **argv)
{
	struct args a;
	if (args_parse("parse", argc, argv, false, &a) < 0 || a.npositional > 1)
		return EXIT_USAGE;
	if (!a.source) {
		fprintf(stderr, "klaxon parse: --source NAME is required (a source of the config)\n");
		return EXIT_USAGE;
	}
	const char *path = find_config_or_explain(a.config);
	if (!path)
		return EXIT_PROBLEMS;
	struct runtime rt;
	struct kl_diag d = { .out = stderr };
	int status = EXIT_PROBLEMS;
	char **files = NULL;
	size_t nfiles = 0;
	struct parse_run p = { .rt = &rt };
	if (runtime_load(&rt, path, &d) < 0)
		goto out;
	const struct config_source *s = config_source_by_name(rt.cfg, a.source);
	if (!s && config_probe_by_name(rt.cfg, a.source)) {
		fprintf(stderr, "klaxon parse: '%s' is a probe, not a log source: it has no lines to parse\n",
			a.source);
		goto out;
	}
	if (!s) {
		fprintf(stderr, "klaxon parse: no source named '%s' in %s\n", a.source, path);
		goto out;
	}
	p.src = (unsigned)(s - rt.cfg->sources);
	status = EXIT_OK;
	if (a.npositional) {
		status = one_file(&p, a.positional[0]) < 0 ? EXIT_PROBLEMS : EXIT_OK;
	} else if (source_files(s->path, false, &files, &nfiles) == 0) {
		if (!nfiles)
			fprintf(stderr, "klaxon parse: no file matches '%s'\n", s->path);
		for (size_t i = 0; i < nfiles; i++)
			if (one_file(&p, files[i]) < 0)
				status = EXIT_PROBLEMS;
	}
	flush_out(&p);
	fprintf(stderr, "klaxon: parse: %llu lines, %llu records, %llu events, %llu parse errors, %llu too long\n",
		(unsigned long long)p.lines, (unsigned long long)p.records,
		(unsigned long long)(p.records - rt.stats[p.src].parse_errors),
		(unsigned long long)rt.stats[p.src].parse_errors, (unsigned long long)p.too_long);
out:
	files_free(files, nfiles);
	kl_buf_free(&p.out);
	runtime_free(&rt);
	return status;
}
