/*
 * test_rotate.c — rotate/: the scan's decisions on real files with real ages
 * (utimensat), the gzip output (inflated here and compared byte for byte, its
 * header's name and mtime checked), keep / dateext naming, copytruncate, the
 * refusals (symlink, non-regular, hard link, unsafe directory, ".."), leftover
 * .tmp cleanup, the tailer hook, and faults injected into write, fsync,
 * rename and unlink (through rotate_test_set_io) leaving the original intact.
 *
 * Each test runs in its own temporary directory; scans run without a loop
 * (in the test's thread) except test_on_loop, which runs the worker thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <ev.h>
#include <zlib.h>

#include "common/kl.h"
#include "rotate/rotate.h"
#include "rotate/rotate_int.h"

#define DAY (INT64_C(86400) * 1000000)

struct fx {
	char *dir;
	struct kl_buf lines; /* every reported line, '\n'-terminated */
	/* fully_read: files (by inode) the tailer is behind on */
	ino_t behind;
	uint64_t behind_read;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	char tmpl[] = "/tmp/test_rotate.XXXXXX";
	assert_non_null(mkdtemp(tmpl));
	f->dir = kl_strndup(tmpl, strlen(tmpl));
	*state = f;
	return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int teardown(void **state)
{
	struct fx *f = *state;
	rotate_test_set_io(NULL, NULL, NULL, NULL);
	chmod(f->dir, 0700);
	nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(f->dir);
	kl_buf_free(&f->lines);
	free(f);
	return 0;
}

static char *path(struct fx *f, const char *name)
{
	static char buf[4][4096];
	static int k;
	char *p = buf[k++ & 3];
	snprintf(p, 4096, "%s/%s", f->dir, name);
	return p;
}

/* A file of n bytes of log-like text, seeded so that files differ. */
static void make(struct fx *f, const char *name, size_t n, int64_t age_us)
{
	struct kl_buf b = { 0 };
	for (unsigned i = 0; b.len < n; i++)
		kl_buf_appendf(&b, "%s 127.0.0.1 - - GET /x/%u HTTP/1.1 200 %u\n", name, i, i * 7);
	b.len = n;
	int fd = open(path(f, name), O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, b.p, n), (ssize_t)n);
	close(fd);
	kl_buf_free(&b);
	if (age_us) {
		int64_t t = kl_wall_us() - age_us;
		struct timespec ts[2] = { { t / 1000000, (t % 1000000) * 1000 },
					  { t / 1000000, (t % 1000000) * 1000 } };
		assert_int_equal(utimensat(AT_FDCWD, path(f, name), ts, AT_SYMLINK_NOFOLLOW), 0);
	}
}

static bool exists(struct fx *f, const char *name)
{
	struct stat st;
	return lstat(path(f, name), &st) == 0;
}

static char *slurp(const char *p, size_t *len)
{
	char *data;
	assert_int_equal(kl_read_file(p, 1u << 30, &data, len), 0);
	return data;
}

/* Inflate a gzip file; check its header; return the bytes. */
static char *gunzip(const char *p, size_t *outlen, char *name, size_t namelen, uLong *mtime)
{
	size_t len;
	char *gz = slurp(p, &len);
	z_stream z = { 0 };
	gz_header h = { 0 };
	h.name = (Bytef *)name;
	h.name_max = (uInt)namelen;
	assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
	assert_int_equal(inflateGetHeader(&z, &h), Z_OK);
	struct kl_buf out = { 0 };
	z.next_in = (Bytef *)gz;
	z.avail_in = (uInt)len;
	int zrc;
	do {
		assert_int_equal(kl_buf_reserve(&out, 65536), 0);
		z.next_out = (Bytef *)out.p + out.len;
		z.avail_out = 65536;
		zrc = inflate(&z, Z_NO_FLUSH);
		assert_true(zrc == Z_OK || zrc == Z_STREAM_END);
		out.len = 65536 - z.avail_out + out.len;
	} while (zrc != Z_STREAM_END);
	assert_int_equal(z.avail_in, 0); /* one member, nothing after */
	inflateEnd(&z);
	*mtime = h.time;
	free(gz);
	*outlen = out.len;
	return out.p;
}

static void on_report(void *ctx, enum rotate_outcome o, const char *line)
{
	struct fx *f = ctx;
	static const char *const tag[] = { "done", "skipped", "failed" };
	kl_buf_appendf(&f->lines, "%s: %s\n", tag[o], line);
}

static bool behind_hook(void *ctx, dev_t dev, ino_t ino, uint64_t size, uint64_t *read)
{
	struct fx *f = ctx;
	(void)dev;
	if (ino != f->behind)
		return true;
	*read = f->behind_read;
	return f->behind_read >= size;
}

static struct rotate_rule rule(struct fx *f, const char *glob)
{
	static char pbuf[8][4096];
	static int k;
	char *p = pbuf[k++ & 7];
	snprintf(p, 4096, "%s/%s", f->dir, glob);
	return (struct rotate_rule){ .path = p, .compress_after_us = -1, .delete_after_us = -1,
				     .max_age_us = -1, .keep = -1, .level = 6 };
}

/* One scan without a loop; returns its result. */
static int scan(struct fx *f, const struct rotate_rule *rules, size_t n, bool dry)
{
	struct rotate_opts o = { .dry_run = dry };
	struct rotate_hooks h = { behind_hook, on_report, f };
	int err = 0;
	kl_buf_reset(&f->lines);
	kl_buf_append(&f->lines, "", 0);
	struct rotate *r = rotate_new(NULL, rules, n, &o, &h, &err);
	assert_non_null(r);
	int rc = rotate_scan(r);
	rotate_free(r);
	if (!f->lines.p)
		kl_buf_append(&f->lines, "", 1);
	return rc;
}

static void assert_reported(struct fx *f, const char *needle)
{
	if (!f->lines.p || !strstr(f->lines.p, needle))
		fail_msg("expected a report containing \"%s\"; got:\n%s", needle,
			 f->lines.p ? f->lines.p : "(nothing)");
}

/* ------------------------------------------------------------------------- */

static void test_compress_aged(void **state)
{
	struct fx *f = *state;
	make(f, "a.log.1", 300000, 8 * DAY);
	make(f, "a.log.2", 1000, 1 * DAY);
	make(f, "a.log.3.gz", 100, 9 * DAY); /* compressed already */
	assert_int_equal(chmod(path(f, "a.log.1"), 0640), 0);
	struct stat before;
	assert_int_equal(stat(path(f, "a.log.1"), &before), 0);
	size_t olen;
	char *orig = slurp(path(f, "a.log.1"), &olen);

	struct rotate_rule r = rule(f, "*.log.*");
	r.compress_after_us = 7 * DAY;
	assert_int_equal(scan(f, &r, 1, false), 0);

	assert_false(exists(f, "a.log.1"));
	assert_false(exists(f, "a.log.1.gz.tmp"));
	assert_true(exists(f, "a.log.2"));
	assert_false(exists(f, "a.log.2.gz"));
	assert_false(exists(f, "a.log.3.gz.gz"));
	char name[256] = "";
	uLong mtime;
	size_t len;
	char *got = gunzip(path(f, "a.log.1.gz"), &len, name, sizeof name, &mtime);
	assert_int_equal(len, olen);
	assert_memory_equal(got, orig, olen);
	assert_string_equal(name, "a.log.1");
	assert_int_equal(mtime, (uLong)before.st_mtim.tv_sec);
	struct stat gz;
	assert_int_equal(stat(path(f, "a.log.1.gz"), &gz), 0);
	assert_int_equal(gz.st_mtim.tv_sec, before.st_mtim.tv_sec);
	assert_int_equal(gz.st_mode & 07777, 0640);
	assert_int_equal(gz.st_uid, before.st_uid);
	assert_reported(f, "compress ");
	assert_reported(f, "a.log.1 -> ");
	assert_reported(f, "(age 8d > compress_after 7d; 300000 -> ");
	free(got);
	free(orig);
}

static void test_delete_after(void **state)
{
	struct fx *f = *state;
	make(f, "b.log.1", 100, 10 * DAY);
	make(f, "b.log.2.gz", 100, 31 * DAY);
	make(f, "b.log.3", 100, 40 * DAY);
	make(f, "other.txt", 100, 90 * DAY); /* not named by the rule */
	struct rotate_rule r = rule(f, "b.log.*");
	r.compress_after_us = 7 * DAY;
	r.delete_after_us = 30 * DAY;
	assert_int_equal(scan(f, &r, 1, false), 0);
	assert_true(exists(f, "b.log.1.gz"));
	assert_false(exists(f, "b.log.2.gz"));
	assert_false(exists(f, "b.log.3"));
	assert_false(exists(f, "b.log.3.gz")); /* deleted, not compressed first */
	assert_true(exists(f, "other.txt"));
	assert_reported(f, "b.log.3 (age 40d > delete_after 30d)");
}

static void test_dry_run(void **state)
{
	struct fx *f = *state;
	make(f, "c.log.1", 100, 8 * DAY);
	make(f, "c.log.2", 100, 40 * DAY);
	struct rotate_rule r = rule(f, "c.log.*");
	r.compress_after_us = 7 * DAY;
	r.delete_after_us = 30 * DAY;
	assert_int_equal(scan(f, &r, 1, true), 0);
	assert_true(exists(f, "c.log.1"));
	assert_true(exists(f, "c.log.2"));
	assert_false(exists(f, "c.log.1.gz"));
	assert_reported(f, "c.log.1.gz (age 8d > compress_after 7d)");
	assert_reported(f, "delete ");
}

static void test_rotate_numbered_keep(void **state)
{
	struct fx *f = *state;
	make(f, "d.log", 5000, 0);
	make(f, "d.log.1", 11, 1 * DAY);
	make(f, "d.log.2.gz", 12, 2 * DAY);
	size_t l0, l1;
	char *live = slurp(path(f, "d.log"), &l0);
	char *one = slurp(path(f, "d.log.1"), &l1);
	struct rotate_rule r = rule(f, "d.log");
	r.max_size = 1000;
	r.keep = 2;
	assert_int_equal(scan(f, &r, 1, false), 0);
	assert_false(exists(f, "d.log")); /* the writer re-creates it */
	assert_false(exists(f, "d.log.2.gz"));
	assert_false(exists(f, "d.log.3"));
	size_t n;
	char *got = slurp(path(f, "d.log.1"), &n);
	assert_int_equal(n, l0);
	assert_memory_equal(got, live, l0);
	free(got);
	got = slurp(path(f, "d.log.2"), &n);
	assert_int_equal(n, l1);
	assert_memory_equal(got, one, l1);
	assert_reported(f, "d.log.1 (size 5000 > max_size 1000)");
	assert_reported(f, "delete ");
	free(got);
	free(live);
	free(one);

	/* under max_size: nothing happens */
	make(f, "d.log", 10, 0);
	assert_int_equal(scan(f, &r, 1, false), 0);
	assert_true(exists(f, "d.log"));
	assert_string_equal(f->lines.p, "");
}

static void test_rotate_keep_generations_compress(void **state)
{
	struct fx *f = *state;
	make(f, "e.log", 100, 0);
	make(f, "e.log.1", 100, 3 * DAY);
	make(f, "e.log.2", 100, 4 * DAY);
	make(f, "e.log.3", 100, 5 * DAY);
	make(f, "e.log.4", 100, 6 * DAY);
	struct rotate_rule r = rule(f, "e.log");
	r.max_size = 1 << 20; /* not due */
	r.keep = 3;
	r.compress_after_us = 2 * DAY;
	assert_int_equal(scan(f, &r, 1, false), 0);
	assert_true(exists(f, "e.log"));
	assert_true(exists(f, "e.log.1.gz"));
	assert_true(exists(f, "e.log.2.gz"));
	assert_true(exists(f, "e.log.3.gz"));
	assert_false(exists(f, "e.log.4"));
	assert_false(exists(f, "e.log.4.gz"));
	assert_reported(f, "e.log.4 (beyond keep 3)");
}

static void test_copytruncate(void **state)
{
	struct fx *f = *state;
	make(f, "g.log", 4000, 0);
	struct stat before, after;
	assert_int_equal(stat(path(f, "g.log"), &before), 0);
	size_t l0;
	char *live = slurp(path(f, "g.log"), &l0);
	struct rotate_rule r = rule(f, "g.log");
	r.max_size = 100;
	r.method = ROTATE_COPYTRUNCATE;
	assert_int_equal(scan(f, &r, 1, false), 0);
	assert_int_equal(stat(path(f, "g.log"), &after), 0);
	assert_int_equal(after.st_ino, before.st_ino);
	assert_int_equal(after.st_size, 0);
	size_t n;
	char *got = slurp(path(f, "g.log.1"), &n);
	assert_int_equal(n, l0);
	assert_memory_equal(got, live, l0);
	assert_false(exists(f, "g.log.1.tmp"));
	free(got);
	free(live);

	/* the tailer behind on it: nothing copied in place, nothing truncated */
	make(f, "g.log", 4000, 0);
	assert_int_equal(stat(path(f, "g.log"), &before), 0);
	f->behind = before.st_ino;
	f->behind_read = 10;
	assert_int_equal(scan(f, &r, 1, false), 0);
	assert_int_equal(stat(path(f, "g.log"), &after), 0);
	assert_int_equal(after.st_size, 4000);
	assert_false(exists(f, "g.log.1.tmp"));
	assert_true(exists(f, "g.log.1"));
	assert_false(exists(f, "g.log.2")); /* nothing shifted either */
	assert_reported(f, "rotation waits: the tailer has read 10 of its 4000 bytes");
}

static void test_dateext(void **state)
{
	struct fx *f = *state;
	make(f, "h.log", 4000, 0);
	make(f, "h.log-20200101.gz", 10, 30 * DAY);
	make(f, "h.log-20200102", 10, 29 * DAY);
	struct rotate_rule r = rule(f, "h.log");
	r.max_size = 100;
	r.dateext = true;
	r.keep = 2;
	assert_int_equal(scan(f, &r, 1, false), 0);
	char today[64];
	time_t t = time(NULL);
	struct tm tm;
	localtime_r(&t, &tm);
	strftime(today, sizeof today, "h.log-%Y%m%d", &tm);
	assert_true(exists(f, today));
	assert_false(exists(f, "h.log"));
	assert_true(exists(f, "h.log-20200102"));
	assert_false(exists(f, "h.log-20200101.gz")); /* the oldest, beyond keep 2 */

	/* a second rotation the same day takes the time too */
	make(f, "h.log", 4000, 0);
	assert_int_equal(scan(f, &r, 1, false), 0);
	assert_false(exists(f, "h.log"));
	assert_false(exists(f, "h.log-20200102"));
	assert_reported(f, "h.log-20");
}

static void test_live_glob_skips_generations(void **state)
{
	struct fx *f = *state;
	make(f, "i.log", 4000, 0);
	make(f, "i.log.1", 4000, 1 * DAY);
	struct rotate_rule r = rule(f, "i.log*");
	r.max_size = 100;
	assert_int_equal(scan(f, &r, 1, false), 0);
	assert_true(exists(f, "i.log.1"));
	assert_true(exists(f, "i.log.2"));
	assert_false(exists(f, "i.log.1.1"));
	assert_false(exists(f, "i.log"));
}

static void test_symlink_left_alone(void **state)
{
	struct fx *f = *state;
	char outside[] = "/tmp/test_rotate_out.XXXXXX";
	int fd = mkstemp(outside);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "secret\n", 7), 7);
	close(fd);
	struct timespec old[2] = { { time(NULL) - 40 * 86400, 0 }, { time(NULL) - 40 * 86400, 0 } };
	assert_int_equal(utimensat(AT_FDCWD, outside, old, 0), 0);
	assert_int_equal(symlink(outside, path(f, "j.log.1")), 0);
	assert_int_equal(utimensat(AT_FDCWD, path(f, "j.log.1"), old, AT_SYMLINK_NOFOLLOW), 0);
	/* and as a live file */
	assert_int_equal(symlink(outside, path(f, "k.log")), 0);

	struct rotate_rule r[2] = { rule(f, "j.log.*"), rule(f, "k.log") };
	r[0].compress_after_us = 7 * DAY;
	r[0].delete_after_us = 30 * DAY;
	r[1].max_size = 1;
	assert_int_equal(scan(f, r, 2, false), 0);
	struct stat st;
	assert_int_equal(lstat(path(f, "j.log.1"), &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	assert_int_equal(lstat(path(f, "k.log"), &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	assert_false(exists(f, "j.log.1.gz"));
	assert_false(exists(f, "k.log.1"));
	size_t n;
	char *got = slurp(outside, &n);
	assert_int_equal(n, 7);
	assert_memory_equal(got, "secret\n", 7);
	free(got);
	assert_int_equal(stat(outside, &st), 0);
	assert_int_equal(st.st_mtim.tv_sec, old[1].tv_sec);
	assert_reported(f, "j.log.1: a symbolic link (never followed)");
	assert_reported(f, "k.log: a symbolic link (never followed)");
	unlink(outside);
}

static void test_not_regular_or_linked(void **state)
{
	struct fx *f = *state;
	struct timespec old[2] = { { time(NULL) - 9 * 86400, 0 }, { time(NULL) - 9 * 86400, 0 } };
	assert_int_equal(mkfifo(path(f, "l.log.1"), 0600), 0);
	assert_int_equal(utimensat(AT_FDCWD, path(f, "l.log.1"), old, 0), 0);
	make(f, "l.log.2", 100, 9 * DAY);
	assert_int_equal(link(path(f, "l.log.2"), path(f, "hard")), 0);
	assert_int_equal(mkdir(path(f, "l.log.3"), 0700), 0);
	assert_int_equal(utimensat(AT_FDCWD, path(f, "l.log.3"), old, 0), 0);
	struct rotate_rule r = rule(f, "l.log.*");
	r.compress_after_us = 7 * DAY;
	assert_int_equal(scan(f, &r, 1, false), 0);
	assert_true(exists(f, "l.log.1"));
	assert_true(exists(f, "l.log.2"));
	assert_false(exists(f, "l.log.2.gz"));
	assert_true(exists(f, "l.log.3"));
	assert_reported(f, "l.log.1: not a regular file");
	assert_reported(f, "l.log.2: it has 2 hard links");
}

static void test_unsafe_dir(void **state)
{
	struct fx *f = *state;
	make(f, "m.log.1", 100, 9 * DAY);
	assert_int_equal(chmod(f->dir, 0777), 0);
	struct rotate_rule r = rule(f, "m.log.*");
	r.compress_after_us = 7 * DAY;
	assert_int_equal(scan(f, &r, 1, false), 0);
	assert_true(exists(f, "m.log.1"));
	assert_reported(f, "the directory is world-writable");
	r.allow_unsafe_dir = true;
	assert_int_equal(scan(f, &r, 1, false), 0);
	assert_false(exists(f, "m.log.1"));
	assert_true(exists(f, "m.log.1.gz"));
}

static void test_bad_paths(void **state)
{
	struct fx *f = *state;
	const char *why = NULL;
	struct rotate_rule r = rule(f, "x");
	static const char *const bad[] = { "/var/log/../etc/*.log", "../x.log", "a/..", "/var/*/x.log",
					   "/var/log/", "" };
	for (size_t i = 0; i < KL_ARRAY_LEN(bad); i++) {
		r.path = bad[i];
		if (rotate_rule_check(&r, &why) != -EINVAL)
			fail_msg("'%s' accepted", bad[i]);
		int err = 0;
		assert_null(rotate_new(NULL, &r, 1, NULL, NULL, &err));
		assert_int_equal(err, -EINVAL);
	}
	r.path = "/var/log/..x/*.log"; /* a name that starts with two dots is fine */
	assert_int_equal(rotate_rule_check(&r, &why), 0);
	r.path = "x.log";
	assert_int_equal(rotate_rule_check(&r, &why), 0);
	assert_int_equal(rotate_signal_parse("USR1"), SIGUSR1);
	assert_int_equal(rotate_signal_parse("SIGHUP"), SIGHUP);
	assert_int_equal(rotate_signal_parse("KILL"), -EINVAL);
}

static void test_leftover_tmp(void **state)
{
	struct fx *f = *state;
	make(f, "n.log.1", 5000, 9 * DAY);
	make(f, "n.log.1.gz.tmp", 77, 0);   /* a crash mid-write */
	make(f, "unrelated.gz.tmp", 77, 0); /* not this rule's */
	struct rotate_rule r = rule(f, "n.log.*");
	r.compress_after_us = 7 * DAY;
	assert_int_equal(scan(f, &r, 1, false), 0);
	assert_false(exists(f, "n.log.1.gz.tmp"));
	assert_true(exists(f, "unrelated.gz.tmp"));
	assert_true(exists(f, "n.log.1.gz"));
	assert_false(exists(f, "n.log.1"));
	assert_reported(f, "remove ");
	assert_reported(f, "n.log.1.gz.tmp (left by an interrupted run)");
}

static void test_tailer_behind(void **state)
{
	struct fx *f = *state;
	make(f, "o.log.1", 5000, 9 * DAY);
	struct stat st;
	assert_int_equal(stat(path(f, "o.log.1"), &st), 0);
	f->behind = st.st_ino;
	f->behind_read = 4999;
	struct rotate_rule r = rule(f, "o.log.*");
	r.compress_after_us = 7 * DAY;
	assert_int_equal(scan(f, &r, 1, false), 0);
	assert_true(exists(f, "o.log.1"));
	assert_false(exists(f, "o.log.1.gz"));
	assert_reported(f, "o.log.1: the tailer has read 4999 of its 5000 bytes");
	f->behind_read = 5000;
	assert_int_equal(scan(f, &r, 1, false), 0);
	assert_false(exists(f, "o.log.1"));
	assert_true(exists(f, "o.log.1.gz"));
}

static void test_existing_archive(void **state)
{
	struct fx *f = *state;
	/* a complete archive of the same bytes (a crash before the unlink) */
	make(f, "p.log.1", 9000, 9 * DAY);
	char cmd[8192];
	snprintf(cmd, sizeof cmd, "gzip -c '%s' > '%s'", path(f, "p.log.1"), path(f, "p.log.1.gz"));
	assert_int_equal(system(cmd), 0);
	/* one that differs */
	make(f, "p.log.2", 9000, 9 * DAY);
	make(f, "p.log.2.gz", 10, 1 * DAY);
	struct rotate_rule r = rule(f, "p.log.*");
	r.compress_after_us = 7 * DAY;
	assert_int_not_equal(scan(f, &r, 1, false), 0);
	assert_false(exists(f, "p.log.1"));
	assert_true(exists(f, "p.log.1.gz"));
	assert_true(exists(f, "p.log.2"));
	assert_true(exists(f, "p.log.2.gz"));
	assert_reported(f, "the archive was complete already");
	assert_reported(f, "p.log.2.gz exists and does not hold this file's bytes");
}

/* Faults. */
static int fail_errno;
static int fail_after; /* calls before the failing one */

static ssize_t bad_write(int fd, const void *p, size_t n)
{
	if (fail_after-- <= 0) {
		errno = fail_errno;
		return -1;
	}
	return write(fd, p, n > 4096 ? 4096 : n); /* short writes too */
}

static int bad_fsync(int fd)
{
	(void)fd;
	errno = EIO;
	return -1;
}

static int bad_rename(int a, const char *from, int b, const char *to)
{
	(void)a;
	(void)from;
	(void)b;
	(void)to;
	errno = EXDEV;
	return -1;
}

static int unlink_calls;
static int bad_unlink(int dfd, const char *name, int flags)
{
	/* the original's unlink fails; removing our temporary file works */
	if (strstr(name, ".tmp"))
		return unlinkat(dfd, name, flags);
	unlink_calls++;
	errno = EBUSY;
	return -1;
}

static void assert_original_only(struct fx *f, const char *name, const char *orig, size_t olen)
{
	char gz[256], tmp[256];
	snprintf(gz, sizeof gz, "%s.gz", name);
	snprintf(tmp, sizeof tmp, "%s.gz.tmp", name);
	assert_false(exists(f, gz));
	assert_false(exists(f, tmp));
	size_t n;
	char *got = slurp(path(f, name), &n);
	assert_int_equal(n, olen);
	assert_memory_equal(got, orig, olen);
	free(got);
}

static void test_faults(void **state)
{
	struct fx *f = *state;
	make(f, "q.log.1", 700000, 9 * DAY);
	size_t olen;
	char *orig = slurp(path(f, "q.log.1"), &olen);
	struct rotate_rule r = rule(f, "q.log.*");
	r.compress_after_us = 7 * DAY;
	r.level = 1;

	for (int k = 0; k < 4; k++) { /* a write failing at once, or later */
		fail_errno = k & 1 ? ENOSPC : EIO;
		fail_after = k * 5;
		rotate_test_set_io(bad_write, NULL, NULL, NULL);
		assert_int_not_equal(scan(f, &r, 1, false), 0);
		assert_original_only(f, "q.log.1", orig, olen);
		assert_reported(f, k & 1 ? "No space left on device" : "Input/output error");
	}
	rotate_test_set_io(NULL, bad_fsync, NULL, NULL);
	assert_int_equal(scan(f, &r, 1, false), -EIO);
	assert_original_only(f, "q.log.1", orig, olen);
	assert_reported(f, "cannot fsync");

	rotate_test_set_io(NULL, NULL, bad_rename, NULL);
	assert_int_equal(scan(f, &r, 1, false), -EXDEV);
	assert_original_only(f, "q.log.1", orig, olen);

	/* the archive is in place, the original cannot go: both stay; the
	 * next scan finds the archive complete and only removes the original */
	unlink_calls = 0;
	rotate_test_set_io(NULL, NULL, NULL, bad_unlink);
	assert_int_equal(scan(f, &r, 1, false), -EBUSY);
	assert_int_equal(unlink_calls, 1);
	assert_true(exists(f, "q.log.1"));
	assert_true(exists(f, "q.log.1.gz"));
	rotate_test_set_io(NULL, NULL, NULL, NULL);
	assert_int_equal(scan(f, &r, 1, false), 0);
	assert_false(exists(f, "q.log.1"));
	char name[64];
	uLong mtime;
	size_t n;
	char *got = gunzip(path(f, "q.log.1.gz"), &n, name, sizeof name, &mtime);
	assert_int_equal(n, olen);
	assert_memory_equal(got, orig, olen);
	free(got);
	free(orig);
}

static void test_rotation_faults(void **state)
{
	struct fx *f = *state;
	make(f, "s.log", 5000, 0);
	make(f, "s.log.1", 10, 1 * DAY);
	struct rotate_rule r = rule(f, "s.log");
	r.max_size = 100;
	rotate_test_set_io(NULL, NULL, bad_rename, NULL);
	assert_int_equal(scan(f, &r, 1, false), -EXDEV);
	assert_true(exists(f, "s.log"));
	assert_true(exists(f, "s.log.1"));
	assert_false(exists(f, "s.log.2"));
	rotate_test_set_io(NULL, NULL, NULL, NULL);
	r.method = ROTATE_COPYTRUNCATE;
	fail_errno = ENOSPC;
	fail_after = 0;
	rotate_test_set_io(bad_write, NULL, NULL, NULL);
	assert_int_equal(scan(f, &r, 1, false), -ENOSPC);
	struct stat st;
	assert_int_equal(stat(path(f, "s.log"), &st), 0);
	assert_int_equal(st.st_size, 5000); /* not truncated */
	assert_false(exists(f, "s.log.1.tmp"));
}

/* On a loop: the compression runs on the worker thread and reports back. */
static void test_on_loop(void **state)
{
	struct fx *f = *state;
	make(f, "u.log.1", 3000000, 9 * DAY);
	make(f, "u.log.2", 1000, 9 * DAY);
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct rotate_rule r = rule(f, "u.log.*");
	r.compress_after_us = 7 * DAY;
	struct rotate_opts o = { .interval_us = 3600 * INT64_C(1000000) };
	struct rotate_hooks h = { NULL, on_report, f };
	int err;
	struct rotate *rot = rotate_new(loop, &r, 1, &o, &h, &err);
	assert_non_null(rot);
	assert_int_equal(rotate_scan(rot), 0);
	assert_true(rotate_busy(rot)); /* the worker has it */
	for (int i = 0; i < 100000 && rotate_busy(rot); i++)
		ev_run(loop, EVRUN_ONCE);
	assert_false(rotate_busy(rot));
	if (exists(f, "u.log.1"))
		fail_msg("not compressed; reports:\n%s", f->lines.p ? f->lines.p : "");
	assert_false(exists(f, "u.log.1"));
	assert_false(exists(f, "u.log.2"));
	assert_true(exists(f, "u.log.1.gz"));
	assert_true(exists(f, "u.log.2.gz"));
	struct rotate_stats st;
	rotate_get_stats(rot, &st);
	assert_int_equal(st.compressed, 2);
	assert_int_equal(st.bytes_in, 3001000);

	/* stopping in the middle of a compression: cancelled, tmp removed */
	make(f, "u.log.3", 20000000, 9 * DAY);
	assert_int_equal(rotate_scan(rot), 0);
	rotate_free(rot);
	assert_false(exists(f, "u.log.3.gz.tmp"));
	/* cancelled (almost always), or done just before: never both, never none */
	assert_true(exists(f, "u.log.3") != exists(f, "u.log.3.gz"));
	ev_loop_destroy(loop);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_compress_aged),
		T(test_delete_after),
		T(test_dry_run),
		T(test_rotate_numbered_keep),
		T(test_rotate_keep_generations_compress),
		T(test_copytruncate),
		T(test_dateext),
		T(test_live_glob_skips_generations),
		T(test_symlink_left_alone),
		T(test_not_regular_or_linked),
		T(test_unsafe_dir),
		T(test_bad_paths),
		T(test_leftover_tmp),
		T(test_tailer_behind),
		T(test_existing_archive),
		T(test_faults),
		T(test_rotation_faults),
		T(test_on_loop),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
