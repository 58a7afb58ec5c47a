/*
 * cmd_rotate.c — `klaxon rotate [-c FILE] [--dry-run]`: one pass of the
 * rotator, in this process, without a loop.
 *
 * Every action taken (or, with --dry-run, that would be taken), every file
 * left alone and why, and every failure is one line on stdout; a summary goes
 * to stderr. Exit 0, or 1 if the config is bad or any action failed.
 *
 * The tailer's progress comes from the checkpoint that `klaxon run` writes in
 * state_dir (every second): a file it records with an offset below the file's
 * size is not compressed, deleted or truncated yet. With no checkpoint (no
 * `run` has used this state_dir), nothing is held back. The checkpoint is read
 * again at each question, so a copytruncate sees the latest offset.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/ingest.h"
#include "rotate/rotate.h"
#include "src/args.h"
#include "src/commands.h"
#include "src/config.h"

#define CHECKPOINT_MAX (64u << 20)

struct rotate_cmd {
	char *ckpt_path;
};

static bool ckpt_fully_read(void *ctx, dev_t dev, ino_t ino, uint64_t size, uint64_t *read)
{
	struct rotate_cmd *c = ctx;
	char *data = NULL;
	size_t len = 0;
	bool done = true;
	if (kl_read_file(c->ckpt_path, CHECKPOINT_MAX, &data, &len) < 0)
		return true; /* no checkpoint: no tailer to wait for */
	for (const char *p = data, *end = data + len; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
		uint64_t off;
		if (l > 5 && memcmp(p, "file ", 5) == 0 &&
		    ingest_tail_record_position(p, l, (uint64_t)dev, (uint64_t)ino, &off) == 0) {
			*read = off;
			done = off >= size;
			break;
		}
		p += l + 1;
	}
	free(data);
	return done;
}

static void print_line(void *ctx, enum rotate_outcome o, const char *line)
{
	(void)ctx;
	(void)o;
	printf("%s\n", line);
	fflush(stdout);
}

int cmd_rotate(int argc, char **argv)
{
	/* --dry-run is this command's own; the shared options go to args. */
	char *rest[64];
	int nrest = 0;
	bool dry = false;
	for (int i = 0; i < argc; i++) {
		if (i > 0 && (!strcmp(argv[i], "--dry-run") || !strcmp(argv[i], "-n")))
			dry = true;
		else if (nrest < (int)KL_ARRAY_LEN(rest))
			rest[nrest++] = argv[i];
	}
	struct args a;
	if (args_parse("rotate", nrest, rest, false, &a) < 0 || a.npositional || a.source)
		return EXIT_USAGE;
	const char *path = find_config_or_explain(a.config);
	if (!path)
		return EXIT_PROBLEMS;
	struct kl_diag d = { .out = stderr };
	struct config *cfg = NULL;
	if (config_load(path, &cfg, &d) < 0) {
		fprintf(stderr, "klaxon: rotate: %u problem(s) in %s\n", d.errors ? d.errors : 1, path);
		return EXIT_PROBLEMS;
	}
	int status = EXIT_PROBLEMS;
	struct rotate_cmd c = { 0 };
	struct kl_buf b = { 0 };
	struct rotate *rot = NULL;
	if (cfg->nrotate == 0) {
		fprintf(stderr, "klaxon: rotate: %s has no 'rotate:' entries: nothing to do\n", path);
		status = EXIT_OK;
		goto out;
	}
	if (kl_buf_appendf(&b, "%s/checkpoint", cfg->state_dir) < 0)
		goto out;
	c.ckpt_path = b.p;
	struct rotate_opts o = { .dry_run = dry };
	struct rotate_hooks h = { ckpt_fully_read, print_line, &c };
	int err = 0;
	rot = rotate_new(NULL, cfg->rotate, cfg->nrotate, &o, &h, &err);
	if (!rot) {
		fprintf(stderr, "klaxon: rotate: cannot start: %s\n", strerror(-err));
		goto out;
	}
	int rc = rotate_scan(rot);
	struct rotate_stats st;
	rotate_get_stats(rot, &st);
	fprintf(stderr,
		"klaxon: rotate: %s%llu compressed (%llu -> %llu bytes), %llu deleted, %llu rotated, "
		"%llu leftover(s) removed, %llu skipped, %llu failed\n",
		dry ? "dry run: " : "", (unsigned long long)st.compressed,
		(unsigned long long)st.bytes_in, (unsigned long long)st.bytes_out,
		(unsigned long long)st.deleted, (unsigned long long)st.rotated,
		(unsigned long long)st.tmp_removed, (unsigned long long)st.skipped,
		(unsigned long long)st.failed);
	status = rc == 0 && st.failed == 0 ? EXIT_OK : EXIT_PROBLEMS;
out:
	rotate_free(rot);
	kl_buf_free(&b);
	config_free(cfg);
	return status;
}
