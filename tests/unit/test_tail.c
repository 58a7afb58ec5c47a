/*
 * test_tail.c — following files on a real libev loop, against real files in a
 * temporary directory: appends, rename-and-create rotation (with lines written
 * to the old file after the rename), rotation into a name the glob matches,
 * copytruncate (seen by size, by fingerprint, and by a file shorter than
 * its fingerprint; twice between two looks with a fingerprint of a partial
 * line; a restart in the middle of one), delete and recreate, late
 * creation of the file and of its directory, globs with new matches and
 * non-regular matches, from_beginning true and false, a 1 MiB line, NUL
 * bytes, fairness between files, and all of it again without inotify.
 *
 * The loop is driven with ev_run(EVRUN_ONCE) until the expected lines are in
 * or a deadline passes; a deadline only bounds a wait, it never decides a
 * result. "Nothing twice" is checked by running the loop for several more
 * stat intervals after the expected lines arrived. Every line is compared:
 * the exact sequence, or the exact sequence per file where two files are
 * written at once. The teardown checks that no watcher is left on the loop.
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
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <ev.h>
#include <zlib.h>

#include "ingest/ingest.h"

#define STAT_IVL 0.05
#define GLOB_IVL 0.1
#define DEADLINE 10.0 /* seconds: only bounds a wait that should take milliseconds */
#define SETTLE (6 * STAT_IVL)

struct line {
	char *s;
	size_t len;
	int64_t read_us;
	struct ingest_mark mark;
};

struct fixture {
	char dir[256];
	struct ev_loop *loop;
	struct ingest_tail *t;
	struct line *v;
	size_t n, cap;
	unsigned batches;
	int fds[8]; /* writers kept open by a test */
};

static void on_line(void *ctx, const char *line, size_t len, int64_t read_us)
{
	struct fixture *fx = ctx;
	if (fx->n == fx->cap) {
		fx->cap = fx->cap ? fx->cap * 2 : 64;
		fx->v = realloc(fx->v, fx->cap * sizeof(*fx->v));
		assert_non_null(fx->v);
	}
	char *copy = malloc(len + 1);
	assert_non_null(copy);
	memcpy(copy, line, len);
	copy[len] = '\0';
	fx->v[fx->n] = (struct line){ copy, len, read_us, { NULL, 0 } };
	ingest_tail_line_mark(fx->t, &fx->v[fx->n].mark);
	fx->n++;
}

static void on_batch(void *ctx)
{
	struct fixture *fx = ctx;
	fx->batches++;
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	if (!fx)
		return -1;
	const char *tmp = getenv("TMPDIR");
	snprintf(fx->dir, sizeof fx->dir, "%s/klaxon-tail-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(fx->dir))
		return -1;
	fx->loop = ev_loop_new(EVFLAG_AUTO);
	if (!fx->loop)
		return -1;
	for (size_t i = 0; i < KL_ARRAY_LEN(fx->fds); i++)
		fx->fds[i] = -1;
	kl_log_set_quiet(getenv("TEST_VERBOSE") == NULL);
	*state = fx;
	return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	ingest_tail_free(fx->t);
	/* no watcher left behind: a non-blocking run finds nothing active */
	int active = ev_run(fx->loop, EVRUN_NOWAIT);
	ev_loop_destroy(fx->loop);
	for (size_t i = 0; i < KL_ARRAY_LEN(fx->fds); i++)
		if (fx->fds[i] >= 0)
			close(fx->fds[i]);
	for (size_t i = 0; i < fx->n; i++)
		free(fx->v[i].s);
	free(fx->v);
	nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(fx);
	if (active) {
		print_error("watchers still active after ingest_tail_free\n");
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------------------
 * Helpers.
 */

static char *path_of(struct fixture *fx, const char *name)
{
	static char buf[4][512];
	static int k;
	char *p = buf[k++ % 4];
	snprintf(p, sizeof buf[0], "%s/%s", fx->dir, name);
	return p;
}

static void write_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	while (len) {
		ssize_t n = write(fd, p, len);
		assert_true(n > 0);
		p += n;
		len -= (size_t)n;
	}
}

/* Append with one write(2) and close, like a logger that reopens each time. */
static void append(struct fixture *fx, const char *name, const char *s)
{
	int fd = open(path_of(fx, name), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	write_all(fd, s, strlen(s));
	close(fd);
}

/* A writer that stays open (slot i), like nginx's. */
static int writer(struct fixture *fx, int i, const char *name)
{
	if (fx->fds[i] >= 0)
		close(fx->fds[i]);
	fx->fds[i] = open(path_of(fx, name), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	assert_true(fx->fds[i] >= 0);
	return fx->fds[i];
}

static void put(struct fixture *fx, int i, const char *s)
{
	write_all(fx->fds[i], s, strlen(s));
}

static struct ingest_tail_opts opts_for(struct fixture *fx, const char *pattern, bool from_beg)
{
	return (struct ingest_tail_opts){
		.pattern = path_of(fx, pattern),
		.from_beginning = from_beg,
		.stat_interval = STAT_IVL,
		.glob_interval = GLOB_IVL,
	};
}

static void start(struct fixture *fx, const struct ingest_tail_opts *o)
{
	struct ingest_tail_cbs cbs = { .line = on_line, .batch = on_batch, .ctx = fx };
	int err = 0;
	fx->t = ingest_tail_new(fx->loop, o, &cbs, &err);
	if (!fx->t)
		print_error("ingest_tail_new: %s\n", strerror(-err));
	assert_non_null(fx->t);
}

static void start_simple(struct fixture *fx, const char *pattern, bool from_beg)
{
	struct ingest_tail_opts o = opts_for(fx, pattern, from_beg);
	start(fx, &o);
}

/* Run the loop until n lines are in (true) or the deadline passed (false). */
static bool run_until_lines(struct fixture *fx, size_t n)
{
	ev_tstamp end = ev_time() + DEADLINE;
	for (unsigned i = 0; fx->n < n && i < 1000000 && ev_time() < end; i++)
		ev_run(fx->loop, EVRUN_ONCE);
	if (fx->n < n)
		print_error("waited for %zu lines, got %zu\n", n, fx->n);
	return fx->n >= n;
}

static struct ingest_tail_stats stats(struct fixture *fx)
{
	struct ingest_tail_stats st;
	ingest_tail_get_stats(fx->t, &st);
	return st;
}

/* Run the loop until a stats condition holds. */
#define RUN_UNTIL(fx, cond)                                                                 \
	do {                                                                                \
		ev_tstamp end_ = ev_time() + DEADLINE;                                      \
		struct ingest_tail_stats st_;                                               \
		for (;;) {                                                                  \
			ingest_tail_get_stats((fx)->t, &st_);                               \
			struct ingest_tail_stats *s = &st_;                                 \
			if (cond)                                                           \
				break;                                                      \
			if (ev_time() >= end_)                                              \
				fail_msg("timed out waiting for %s", #cond);                \
			ev_run((fx)->loop, EVRUN_ONCE);                                     \
		}                                                                           \
	} while (0)

/* Run the loop for a while: whatever arrives then would be a line too many. */
static void settle(struct fixture *fx, double secs)
{
	ev_tstamp end = ev_time() + secs;
	for (unsigned i = 0; i < 1000000 && ev_time() < end; i++)
		ev_run(fx->loop, EVRUN_ONCE);
}

/* The collected lines, from index from, are exactly the NULL-terminated list. */
static void expect_from(struct fixture *fx, size_t from, const char *const *want)
{
	size_t k = 0;
	for (; want[k]; k++) {
		if (from + k >= fx->n)
			fail_msg("line %zu: expected \"%s\", got nothing (%zu lines)", from + k,
				 want[k], fx->n);
		if (strcmp(fx->v[from + k].s, want[k]) != 0)
			fail_msg("line %zu: expected \"%s\", got \"%s\"", from + k, want[k],
				 fx->v[from + k].s);
	}
	if (from + k != fx->n)
		fail_msg("%zu lines expected, got %zu (the first extra: \"%s\")", from + k, fx->n,
			 fx->v[from + k].s);
}

#define EXPECT(fx, ...) expect_from((fx), 0, (const char *const[]){ __VA_ARGS__, NULL })
#define EXPECT_FROM(fx, from, ...) \
	expect_from((fx), (from), (const char *const[]){ __VA_ARGS__, NULL })

/* The lines with the given prefix, in order, are exactly the list. */
static void expect_prefixed(struct fixture *fx, const char *prefix, const char *const *want)
{
	size_t k = 0, pl = strlen(prefix);
	for (size_t i = 0; i < fx->n; i++) {
		if (strncmp(fx->v[i].s, prefix, pl) != 0)
			continue;
		if (!want[k])
			fail_msg("extra line \"%s\"", fx->v[i].s);
		if (strcmp(fx->v[i].s, want[k]) != 0)
			fail_msg("expected \"%s\", got \"%s\"", want[k], fx->v[i].s);
		k++;
	}
	if (want[k])
		fail_msg("missing \"%s\"", want[k]);
}

#define EXPECT_PREFIXED(fx, prefix, ...) \
	expect_prefixed((fx), (prefix), (const char *const[]){ __VA_ARGS__, NULL })

/* ---------------------------------------------------------------------------
 * Tests.
 */

static void test_append(void **state)
{
	struct fixture *fx = *state;
	append(fx, "a.log", "l1\nl2\n");
	int64_t before = kl_wall_us();
	start_simple(fx, "a.log", true);
	assert_true(run_until_lines(fx, 2));
	append(fx, "a.log", "l3\nl4\npart");
	assert_true(run_until_lines(fx, 4));
	settle(fx, SETTLE); /* the partial line waits for its newline */
	assert_int_equal(fx->n, 4);
	append(fx, "a.log", "ial\n\n");
	assert_true(run_until_lines(fx, 6));
	settle(fx, SETTLE);
	EXPECT(fx, "l1", "l2", "l3", "l4", "partial", "");
	int64_t after = kl_wall_us();
	for (size_t i = 0; i < fx->n; i++)
		assert_true(fx->v[i].read_us >= before && fx->v[i].read_us <= after);
	struct ingest_tail_stats st = stats(fx);
	assert_int_equal(st.lines, 6);
	assert_int_equal(st.bytes, 21);
	assert_int_equal(st.files_opened, 1);
	assert_int_equal(st.files_open, 1);
	assert_int_equal(st.rotations, 0);
	assert_int_equal(st.truncations, 0);
	assert_int_equal(st.read_errors, 0);
	assert_true(fx->batches >= 3);
}

static void test_from_end(void **state)
{
	struct fixture *fx = *state;
	append(fx, "a.log", "old1\nold2\n");
	start_simple(fx, "*.log", false);
	settle(fx, SETTLE);
	assert_int_equal(fx->n, 0); /* present at start: read from its end */
	append(fx, "a.log", "new1\n");
	assert_true(run_until_lines(fx, 1));
	append(fx, "b.log", "b1\nb2\n"); /* appears later: read from 0 */
	assert_true(run_until_lines(fx, 3));
	settle(fx, SETTLE);
	EXPECT(fx, "new1", "b1", "b2");
	assert_int_equal(stats(fx).files_open, 2);
}

static void test_from_beginning(void **state)
{
	struct fixture *fx = *state;
	append(fx, "a.log", "old1\nold2\n");
	append(fx, "b.log", "bold\n");
	start_simple(fx, "*.log", true);
	assert_true(run_until_lines(fx, 3));
	append(fx, "a.log", "new1\n");
	assert_true(run_until_lines(fx, 4));
	settle(fx, SETTLE);
	EXPECT_PREFIXED(fx, "old", "old1", "old2");
	EXPECT_PREFIXED(fx, "bold", "bold");
	EXPECT_FROM(fx, 3, "new1");
}

static void test_rotate_rename_create(void **state)
{
	struct fixture *fx = *state;
	writer(fx, 0, "a.log");
	put(fx, 0, "old1\nold2\n");
	start_simple(fx, "a.log", true);
	assert_true(run_until_lines(fx, 2));

	/* logrotate renames; the app still writes to the old file, then reopens */
	assert_int_equal(rename(path_of(fx, "a.log"), path_of(fx, "a.log.1")), 0);
	put(fx, 0, "old3\n");
	writer(fx, 1, "a.log");
	put(fx, 1, "new1\n");
	put(fx, 0, "old4\n");
	assert_true(run_until_lines(fx, 5));
	/* the old file is read to its end first, then the new one from 0 */
	EXPECT(fx, "old1", "old2", "old3", "old4", "new1");

	/* late writes to the old file, within the grace period, are not lost */
	put(fx, 0, "old5\n");
	put(fx, 1, "new2\n");
	assert_true(run_until_lines(fx, 7));
	settle(fx, SETTLE);
	EXPECT_PREFIXED(fx, "old", "old1", "old2", "old3", "old4", "old5");
	EXPECT_PREFIXED(fx, "new", "new1", "new2");
	struct ingest_tail_stats st = stats(fx);
	assert_int_equal(st.rotations, 1);
	assert_int_equal(st.files_opened, 2);

	/* after the grace period the old file is closed */
	close(fx->fds[0]);
	fx->fds[0] = -1;
	RUN_UNTIL(fx, s->files_open == 1);
	put(fx, 1, "new3\n");
	assert_true(run_until_lines(fx, 8));
	settle(fx, SETTLE);
	EXPECT_FROM(fx, 7, "new3");
}

static void test_rotate_seen_before_create(void **state)
{
	struct fixture *fx = *state;
	writer(fx, 0, "a.log");
	put(fx, 0, "old1\n");
	start_simple(fx, "a.log", true);
	assert_true(run_until_lines(fx, 1));
	assert_int_equal(rename(path_of(fx, "a.log"), path_of(fx, "a.log.1")), 0);
	RUN_UNTIL(fx, s->rotations == 1); /* the name is gone: draining */
	put(fx, 0, "old2\n");
	writer(fx, 1, "a.log");
	put(fx, 1, "new1\n");
	assert_true(run_until_lines(fx, 3));
	settle(fx, SETTLE);
	EXPECT(fx, "old1", "old2", "new1");
	assert_int_equal(stats(fx).rotations, 1);
}

static void test_rotate_into_glob(void **state)
{
	struct fixture *fx = *state;
	/* the rotated name matches the pattern too: followed on, never read again */
	writer(fx, 0, "a.log");
	put(fx, 0, "old1\n");
	start_simple(fx, "a.log*", true);
	assert_true(run_until_lines(fx, 1));
	assert_int_equal(rename(path_of(fx, "a.log"), path_of(fx, "a.log.1")), 0);
	put(fx, 0, "old2\n");
	writer(fx, 1, "a.log");
	put(fx, 1, "new1\n");
	assert_true(run_until_lines(fx, 3));
	EXPECT(fx, "old1", "old2", "new1");
	/* long after any grace period, the renamed file is still followed */
	settle(fx, 10 * STAT_IVL + 3 * GLOB_IVL);
	put(fx, 0, "old3\n");
	assert_true(run_until_lines(fx, 4));
	settle(fx, SETTLE);
	EXPECT(fx, "old1", "old2", "new1", "old3");
	struct ingest_tail_stats st = stats(fx);
	assert_int_equal(st.files_opened, 2);
	assert_int_equal(st.files_open, 2);
}

static void test_rename_over_followed(void **state)
{
	struct fixture *fx = *state;
	/* mv b.log a.log, both followed: a.log's old file is drained, b's file
	 * is followed on under its new name, nothing is read twice */
	writer(fx, 0, "a.log");
	writer(fx, 1, "b.log");
	put(fx, 0, "a1\n");
	put(fx, 1, "b1\n");
	start_simple(fx, "*.log", true);
	assert_true(run_until_lines(fx, 2));
	put(fx, 0, "a2\n");
	put(fx, 1, "b2\n");
	assert_int_equal(rename(path_of(fx, "b.log"), path_of(fx, "a.log")), 0);
	put(fx, 1, "b3\n");
	assert_true(run_until_lines(fx, 5));
	RUN_UNTIL(fx, s->files_open == 1); /* the old a.log, after the grace period */
	settle(fx, 3 * GLOB_IVL);
	put(fx, 1, "b4\n");
	assert_true(run_until_lines(fx, 6));
	settle(fx, SETTLE);
	EXPECT_PREFIXED(fx, "a", "a1", "a2");
	EXPECT_PREFIXED(fx, "b", "b1", "b2", "b3", "b4");
	assert_int_equal(fx->n, 6);
	assert_int_equal(stats(fx).files_opened, 2);
}

static void test_copytruncate(void **state)
{
	struct fixture *fx = *state;
	writer(fx, 0, "a.log");
	put(fx, 0, "L1\nL2\nL3\n");
	start_simple(fx, "a.log", true);
	assert_true(run_until_lines(fx, 3));

	/* truncated to less than we read: seen by size */
	assert_int_equal(ftruncate(fx->fds[0], 0), 0);
	put(fx, 0, "T1\n");
	assert_true(run_until_lines(fx, 4));
	settle(fx, SETTLE);
	EXPECT(fx, "L1", "L2", "L3", "T1");
	assert_int_equal(stats(fx).truncations, 1);

	/* truncated and rewritten past our offset before we look: seen by the
	 * fingerprint of the first bytes */
	assert_int_equal(ftruncate(fx->fds[0], 0), 0);
	put(fx, 0, "U1 a longer first line\nU2\n");
	assert_true(run_until_lines(fx, 6));
	settle(fx, SETTLE);
	EXPECT(fx, "L1", "L2", "L3", "T1", "U1 a longer first line", "U2");
	struct ingest_tail_stats st = stats(fx);
	assert_int_equal(st.truncations, 2);
	assert_int_equal(st.rotations, 0);
	assert_int_equal(st.files_opened, 1);
}

/* logrotate's copytruncate of a.log (writer slot 0), between two of our
 * looks: a.log.1 shifted to a.log.2 if there, `copy` written to a.log.1 (what
 * a.log held, or less: the lines written between copy and truncation are
 * lost), a.log truncated, then `next` written to it. */
static void copytruncate_as_logrotate(struct fixture *fx, const char *copy, const char *next)
{
	if (access(path_of(fx, "a.log.1"), F_OK) == 0)
		assert_int_equal(rename(path_of(fx, "a.log.1"), path_of(fx, "a.log.2")), 0);
	append(fx, "a.log.1", copy);
	assert_int_equal(ftruncate(fx->fds[0], 0), 0);
	put(fx, 0, next);
}

static void test_copytruncated_to_empty_before_read(void **state)
{
	struct fixture *fx = *state;
	/* followed, fingerprinted, not read yet; then copied to a.log.1 and
	 * emptied, and nothing written since: size == offset == 0, yet its
	 * first bytes are gone, and its copy holds lines we never read */
	writer(fx, 0, "a.log");
	put(fx, 0, "e1\ne2\n");
	start_simple(fx, "a.log", true);
	copytruncate_as_logrotate(fx, "e1\ne2\n", "");
	assert_true(run_until_lines(fx, 2));
	settle(fx, SETTLE);
	EXPECT(fx, "e1", "e2");
	assert_int_equal(stats(fx).truncations, 1);
	put(fx, 0, "f1\n");
	assert_true(run_until_lines(fx, 3));
	settle(fx, SETTLE);
	EXPECT(fx, "e1", "e2", "f1");
}

static void test_copytruncated_twice_short_fingerprint(void **state)
{
	struct fixture *fx = *state;
	/* last seen holding the start of a line only: its fingerprint is those
	 * 7 bytes, which the next content's first line shares (log lines of one
	 * second do). Copied to a.log.2, then the next content copied to a.log.1,
	 * then a third one, all between two looks: each is read once, in order */
	writer(fx, 0, "a.log");
	put(fx, 0, "PREFIX-");
	start_simple(fx, "a.log", true);
	settle(fx, SETTLE);
	assert_int_equal(fx->n, 0);
	put(fx, 0, "a1\nPREFIX-a2\n");
	copytruncate_as_logrotate(fx, "PREFIX-a1\nPREFIX-a2\n", "PREFIX-b1\n");
	copytruncate_as_logrotate(fx, "PREFIX-b1\n", "other\n");
	assert_true(run_until_lines(fx, 4));
	settle(fx, SETTLE);
	EXPECT(fx, "PREFIX-a1", "PREFIX-a2", "PREFIX-b1", "other");
}

static void test_copytruncated_then_short_start(void **state)
{
	struct fixture *fx = *state;
	/* read to its end, then copied and truncated twice between two looks;
	 * seen next holding the start of a line only, which the copy of the
	 * content in between also starts with: that copy is not taken for one
	 * of the file now under the name */
	writer(fx, 0, "a.log");
	put(fx, 0, "a1\na2\n");
	start_simple(fx, "a.log", true);
	assert_true(run_until_lines(fx, 2));
	settle(fx, SETTLE);
	copytruncate_as_logrotate(fx, "a1\na2\n", "PREFIX-b1\n");
	copytruncate_as_logrotate(fx, "PREFIX-b1\n", "PREFIX-");
	assert_true(run_until_lines(fx, 3));
	settle(fx, SETTLE);
	put(fx, 0, "c1\n");
	assert_true(run_until_lines(fx, 4));
	settle(fx, SETTLE);
	EXPECT(fx, "a1", "a2", "PREFIX-b1", "PREFIX-c1");
}

static void test_truncated_while_reading(void **state)
{
	struct fixture *fx = *state;
	/* a busy file, read 4 KiB per wake-up, copytruncated in the middle and
	 * rewritten past our offset before the next read */
	writer(fx, 0, "a.log");
	char buf[100];
	size_t nold = 0, nnew = 0;
	for (size_t total = 0; total < 64 * 1024; nold++)
		total += (size_t)snprintf(buf, sizeof buf, "old %06zu padding padding\n", nold),
			put(fx, 0, buf);
	struct ingest_tail_opts o = opts_for(fx, "a.log", true);
	o.chunk = 4096;
	start(fx, &o);
	assert_true(run_until_lines(fx, 100));
	assert_true(fx->n < nold);
	assert_int_equal(ftruncate(fx->fds[0], 0), 0);
	for (size_t total = 0; total < 32 * 1024; nnew++)
		total += (size_t)snprintf(buf, sizeof buf, "new %06zu padding\n", nnew),
			put(fx, 0, buf);
	snprintf(buf, sizeof buf, "new %06zu padding", nnew - 1);
	ev_tstamp end = ev_time() + DEADLINE;
	while (ev_time() < end && (fx->n == 0 || strcmp(fx->v[fx->n - 1].s, buf) != 0))
		ev_run(fx->loop, EVRUN_ONCE);
	settle(fx, SETTLE);

	/* old lines in order up to where we were, perhaps the cut-off old line we
	 * were in the middle of, then every new line once */
	size_t i = 0;
	for (; i < fx->n && strncmp(fx->v[i].s, "new ", 4) != 0; i++) {
		snprintf(buf, sizeof buf, "old %06zu padding padding", i);
		if (strcmp(fx->v[i].s, buf) != 0) {
			/* the partial line pending at the truncation: a prefix */
			assert_true(strncmp(fx->v[i].s, buf, fx->v[i].len) == 0);
			i++;
			break;
		}
	}
	assert_true(i < nold);
	assert_int_equal(fx->n - i, nnew);
	for (size_t k = 0; k < nnew; k++) {
		snprintf(buf, sizeof buf, "new %06zu padding", k);
		assert_string_equal(fx->v[i + k].s, buf);
	}
	assert_int_equal(stats(fx).truncations, 1);
}

static void test_delete_and_recreate(void **state)
{
	struct fixture *fx = *state;
	append(fx, "a.log", "d1\n");
	start_simple(fx, "a.log", true);
	assert_true(run_until_lines(fx, 1));
	assert_int_equal(unlink(path_of(fx, "a.log")), 0);
	RUN_UNTIL(fx, s->rotations == 1);
	RUN_UNTIL(fx, s->files_open == 0); /* drained, then closed */
	append(fx, "a.log", "r1\n");
	assert_true(run_until_lines(fx, 2));

	/* deleted and recreated at once, with lines left unread in the old one */
	writer(fx, 0, "a.log");
	put(fx, 0, "r2\n");
	assert_int_equal(unlink(path_of(fx, "a.log")), 0);
	append(fx, "a.log", "s1\n");
	assert_true(run_until_lines(fx, 4));
	settle(fx, SETTLE);
	EXPECT(fx, "d1", "r1", "r2", "s1");
	struct ingest_tail_stats st = stats(fx);
	assert_int_equal(st.rotations, 2);
	assert_int_equal(st.files_opened, 3);
}

static void test_late_creation(void **state)
{
	struct fixture *fx = *state;
	/* neither the directory nor the file exists yet */
	start_simple(fx, "later/app.log", false);
	settle(fx, SETTLE);
	assert_int_equal(stats(fx).files_open, 0);
	assert_int_equal(mkdir(path_of(fx, "later"), 0755), 0);
	settle(fx, SETTLE);
	append(fx, "later/app.log", "late1\nlate2\n"); /* appeared later: from 0 */
	assert_true(run_until_lines(fx, 2));
	settle(fx, SETTLE);
	EXPECT(fx, "late1", "late2");
	assert_int_equal(stats(fx).files_open, 1);
}

static void test_glob_second_file(void **state)
{
	struct fixture *fx = *state;
	append(fx, "a.log", "a1\n");
	assert_int_equal(mkdir(path_of(fx, "d.log"), 0755), 0); /* a directory */
	assert_int_equal(mkfifo(path_of(fx, "f.log"), 0644), 0); /* must not block */
	append(fx, "other.txt", "not matched\n");
	start_simple(fx, "*.log", true);
	assert_true(run_until_lines(fx, 1));
	append(fx, "b.log", "b1\nb2\n");
	assert_true(run_until_lines(fx, 3));
	append(fx, "a.log", "a2\n");
	assert_true(run_until_lines(fx, 4));
	settle(fx, 3 * GLOB_IVL);
	EXPECT(fx, "a1", "b1", "b2", "a2");
	struct ingest_tail_stats st = stats(fx);
	assert_int_equal(st.files_open, 2);
	assert_int_equal(st.files_opened, 2);
}

static void test_one_mib_line(void **state)
{
	struct fixture *fx = *state;
	size_t big = 1 << 20;
	char *line = malloc(big + 1);
	assert_non_null(line);
	for (size_t i = 0; i < big; i++)
		line[i] = (char)('a' + i % 26);
	line[big] = '\0';

	struct ingest_tail_opts o = opts_for(fx, "a.log", true);
	o.max_line = 2 << 20;
	start(fx, &o);
	writer(fx, 0, "a.log");
	put(fx, 0, "before\n");
	put(fx, 0, line);
	put(fx, 0, "\nafter\n");
	assert_true(run_until_lines(fx, 3));
	settle(fx, SETTLE);
	assert_int_equal(fx->n, 3);
	assert_string_equal(fx->v[0].s, "before");
	assert_int_equal(fx->v[1].len, big);
	assert_memory_equal(fx->v[1].s, line, big);
	assert_string_equal(fx->v[2].s, "after");
	assert_true(fx->batches >= 4); /* 1 MiB in 256 KiB chunks */
	assert_int_equal(stats(fx).too_long, 0);
	free(line);
}

static void test_one_mib_line_cut(void **state)
{
	struct fixture *fx = *state;
	size_t big = 1 << 20;
	char *line = malloc(big + 1);
	assert_non_null(line);
	memset(line, 'x', big);
	line[big] = '\0';
	start_simple(fx, "a.log", true); /* default max_line: 64 KiB */
	writer(fx, 0, "a.log");
	put(fx, 0, line);
	put(fx, 0, "\nnext\n");
	assert_true(run_until_lines(fx, 2));
	settle(fx, SETTLE);
	assert_int_equal(fx->n, 2);
	assert_int_equal(fx->v[0].len, INGEST_DEFAULT_MAX_LINE);
	assert_memory_equal(fx->v[0].s, line, INGEST_DEFAULT_MAX_LINE);
	assert_string_equal(fx->v[1].s, "next");
	assert_int_equal(stats(fx).too_long, 1);
	free(line);
}

static void test_nul_bytes(void **state)
{
	struct fixture *fx = *state;
	start_simple(fx, "a.log", true);
	writer(fx, 0, "a.log");
	write_all(fx->fds[0], "a\0b\n\0\n\0\0\0tail", 13);
	assert_true(run_until_lines(fx, 2));
	write_all(fx->fds[0], "\n", 1);
	assert_true(run_until_lines(fx, 3));
	settle(fx, SETTLE);
	assert_int_equal(fx->n, 3);
	assert_int_equal(fx->v[0].len, 3);
	assert_memory_equal(fx->v[0].s, "a\0b", 3);
	assert_int_equal(fx->v[1].len, 1);
	assert_int_equal(fx->v[1].s[0], '\0');
	assert_int_equal(fx->v[2].len, 7);
	assert_memory_equal(fx->v[2].s, "\0\0\0tail", 7);
}

static void test_busy_file_does_not_starve(void **state)
{
	struct fixture *fx = *state;
	/* 2 MiB of lines in one file, one line in another; chunk 4 KiB */
	writer(fx, 0, "big.log");
	char buf[100];
	size_t nbig = 0;
	for (size_t total = 0; total < (2u << 20); nbig++) {
		int w = snprintf(buf, sizeof buf, "big %06zu padding padding padding\n", nbig);
		put(fx, 0, buf);
		total += (size_t)w;
	}
	append(fx, "small.log", "small\n");
	struct ingest_tail_opts o = opts_for(fx, "*.log", true);
	o.chunk = 4096;
	start(fx, &o);
	assert_true(run_until_lines(fx, nbig + 1));
	settle(fx, SETTLE);
	assert_int_equal(fx->n, nbig + 1);
	size_t at = fx->n;
	for (size_t i = 0; i < fx->n; i++)
		if (strcmp(fx->v[i].s, "small") == 0)
			at = i;
	assert_true(at < nbig / 4); /* served early, not after the whole big file */
	for (size_t i = 0, k = 0; i < fx->n; i++) {
		if (i == at)
			continue;
		snprintf(buf, sizeof buf, "big %06zu padding padding padding", k++);
		assert_string_equal(fx->v[i].s, buf);
	}
	assert_true(fx->batches >= (2u << 20) / 4096);
}

/*
 * Without inotify: start the tail while no file descriptor can be opened, so
 * inotify_init1 fails (and the first scan too); everything then rests on the
 * stat and glob timers.
 */
static void start_without_inotify(struct fixture *fx, const char *pattern, bool from_beg)
{
	struct rlimit saved, lim;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
	int probe = dup(0);
	assert_true(probe >= 0);
	close(probe);
	/* every descriptor below probe is taken: no new one can be opened */
	lim = saved;
	lim.rlim_cur = (rlim_t)probe;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &lim), 0);
	struct ingest_tail_opts o = opts_for(fx, pattern, from_beg);
	struct ingest_tail_cbs cbs = { .line = on_line, .batch = on_batch, .ctx = fx };
	int err = 0;
	fx->t = ingest_tail_new(fx->loop, &o, &cbs, &err);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
	assert_non_null(fx->t);
}

static void test_without_inotify(void **state)
{
	struct fixture *fx = *state;
	writer(fx, 0, "a.log");
	put(fx, 0, "x1\n");
	start_without_inotify(fx, "*.log", true);
	assert_true(run_until_lines(fx, 1));
	put(fx, 0, "x2\n");
	assert_true(run_until_lines(fx, 2));
	/* rotation */
	assert_int_equal(rename(path_of(fx, "a.log"), path_of(fx, "a.log.1")), 0);
	put(fx, 0, "x3\n");
	writer(fx, 1, "a.log");
	put(fx, 1, "y1\n");
	assert_true(run_until_lines(fx, 4));
	/* copytruncate of the new file */
	assert_int_equal(ftruncate(fx->fds[1], 0), 0);
	put(fx, 1, "z1 longer than before\n");
	assert_true(run_until_lines(fx, 5));
	settle(fx, SETTLE);
	EXPECT(fx, "x1", "x2", "x3", "y1", "z1 longer than before");
	struct ingest_tail_stats st = stats(fx);
	assert_int_equal(st.rotations, 1);
	assert_int_equal(st.truncations, 1);
	/* a new match, found by the stat timer's re-glob */
	append(fx, "b.log", "b1\n");
	assert_true(run_until_lines(fx, 6));
	settle(fx, SETTLE);
	EXPECT_FROM(fx, 5, "b1");
}

static void test_bad_pattern(void **state)
{
	struct fixture *fx = *state;
	struct ingest_tail_cbs cbs = { .line = on_line, .ctx = fx };
	struct ingest_tail_opts o = { .pattern = "" };
	int err = 0;
	assert_null(ingest_tail_new(fx->loop, &o, &cbs, &err));
	assert_int_equal(err, -EINVAL);
	o.pattern = path_of(fx, "dir/");
	assert_null(ingest_tail_new(fx->loop, &o, &cbs, &err));
	assert_int_equal(err, -EINVAL);
	ingest_tail_free(NULL);
}

/* ---------------------------------------------------------------------------
 * Checkpoints: ingest_tail_save, then a new tail with opts.state.
 */

/* Save the tail's records into *buf (reset first), then free the tail. */
static void save_and_stop(struct fixture *fx, struct kl_buf *buf)
{
	kl_buf_reset(buf);
	assert_int_equal(ingest_tail_save(fx->t, buf), 0);
	size_t bad = 0;
	if (ingest_tail_state_check(buf->p, buf->len, &bad) != 0)
		fail_msg("saved records do not check (line %zu): %.*s", bad, (int)buf->len, buf->p);
	ingest_tail_free(fx->t);
	fx->t = NULL;
}

static void start_from(struct fixture *fx, const char *pattern, bool from_beg,
		       const struct kl_buf *buf)
{
	struct ingest_tail_opts o = opts_for(fx, pattern, from_beg);
	o.state = buf->p;
	o.state_len = buf->len;
	start(fx, &o);
}

static void test_checkpoint_resume(void **state)
{
	struct fixture *fx = *state;
	struct kl_buf buf = { 0 };
	/* a name that needs encoding: a blank and a '%' */
	append(fx, "a b%.log", "l1\nl2\npart");
	start_simple(fx, "a b%.log", true);
	assert_true(run_until_lines(fx, 2));
	settle(fx, SETTLE);
	save_and_stop(fx, &buf);
	/* the partial line was not handed on: the offset is its start */
	if (!strstr(buf.p, " off=6 ") || !strstr(buf.p, "/a%20b%25.log\n"))
		fail_msg("unexpected record: %.*s", (int)buf.len, buf.p);
	append(fx, "a b%.log", "ial\nl3\n");
	start_from(fx, "a b%.log", true, &buf);
	assert_true(run_until_lines(fx, 4));
	settle(fx, SETTLE);
	EXPECT(fx, "l1", "l2", "partial", "l3");
	kl_buf_free(&buf);
}

static void test_checkpoint_rotated_while_stopped(void **state)
{
	struct fixture *fx = *state;
	struct kl_buf buf = { 0 };
	writer(fx, 0, "a.log");
	put(fx, 0, "a1\na2\n");
	start_simple(fx, "a.log", true);
	assert_true(run_until_lines(fx, 2));
	settle(fx, SETTLE);
	save_and_stop(fx, &buf);
	/* while stopped: more lines, rename, a new file */
	put(fx, 0, "a3\n");
	assert_int_equal(rename(path_of(fx, "a.log"), path_of(fx, "a.log.1")), 0);
	put(fx, 0, "a4\n");
	writer(fx, 1, "a.log");
	put(fx, 1, "b1\n");
	/* from the end for unknown files: the new a.log is still read from 0 */
	start_from(fx, "a.log", false, &buf);
	assert_true(run_until_lines(fx, 5));
	put(fx, 1, "b2\n");
	assert_true(run_until_lines(fx, 6));
	settle(fx, SETTLE);
	EXPECT(fx, "a1", "a2", "a3", "a4", "b1", "b2");
	assert_int_equal(stats(fx).rotations, 1);
	kl_buf_free(&buf);
}

static void test_checkpoint_dateext_while_stopped(void **state)
{
	struct fixture *fx = *state;
	struct kl_buf buf = { 0 };
	writer(fx, 0, "a.log");
	put(fx, 0, "a1\n");
	start_simple(fx, "a.log", true);
	assert_true(run_until_lines(fx, 1));
	save_and_stop(fx, &buf);
	put(fx, 0, "a2\n");
	/* a compressed sibling is not searched; a dateext one is */
	append(fx, "a.log.2.gz", "not gzip, not ours\n");
	assert_int_equal(rename(path_of(fx, "a.log"), path_of(fx, "a.log-20260101")), 0);
	writer(fx, 1, "a.log");
	put(fx, 1, "b1\n");
	start_from(fx, "a.log", true, &buf);
	assert_true(run_until_lines(fx, 3));
	settle(fx, SETTLE);
	EXPECT(fx, "a1", "a2", "b1");
	kl_buf_free(&buf);
}

static void test_checkpoint_copytruncate_while_stopped(void **state)
{
	struct fixture *fx = *state;
	struct kl_buf buf = { 0 };
	writer(fx, 0, "a.log");
	put(fx, 0, "c1\nc2\n");
	start_simple(fx, "a.log", true);
	assert_true(run_until_lines(fx, 2));
	save_and_stop(fx, &buf);
	/* while stopped: more lines, copied to a.log.1, a.log truncated */
	put(fx, 0, "c3\n");
	append(fx, "a.log.1", "c1\nc2\nc3\n");
	assert_int_equal(ftruncate(fx->fds[0], 0), 0);
	put(fx, 0, "d1\n");
	start_from(fx, "a.log", true, &buf);
	assert_true(run_until_lines(fx, 4));
	settle(fx, SETTLE);
	EXPECT(fx, "c1", "c2", "c3", "d1");
	kl_buf_free(&buf);
}

/* Restart while logrotate's copytruncate runs: the copy of a.log made (or
 * half made) but a.log not truncated yet. The copy's lines are a.log's: read
 * there, and what the truncation takes from the copy; never twice. */
static void restart_during_copytruncate(struct fixture *fx, const char *copied_before,
					const char *copied_after)
{
	struct kl_buf buf = { 0 };
	writer(fx, 0, "a.log");
	put(fx, 0, "c1\nc2\n");
	start_simple(fx, "a.log", true);
	assert_true(run_until_lines(fx, 2));
	settle(fx, SETTLE);
	save_and_stop(fx, &buf);
	int64_t saved_us = kl_wall_us();
	put(fx, 0, "c3\n");
	append(fx, "a.log.1", copied_before);
	struct ingest_tail_opts o = opts_for(fx, "a.log", true);
	o.state = buf.p;
	o.state_len = buf.len;
	o.state_time_us = saved_us - 1000000; /* the copy is newer, past the slack */
	start(fx, &o);
	if (*copied_after)
		append(fx, "a.log.1", copied_after);
	assert_int_equal(ftruncate(fx->fds[0], 0), 0);
	put(fx, 0, "d1\n");
	assert_true(run_until_lines(fx, 4));
	settle(fx, SETTLE);
	EXPECT(fx, "c1", "c2", "c3", "d1");
	kl_buf_free(&buf);
}

static void test_checkpoint_copied_not_truncated(void **state)
{
	restart_during_copytruncate(*state, "c1\nc2\nc3\n", "");
}

static void test_checkpoint_copy_half_made(void **state)
{
	restart_during_copytruncate(*state, "c1\nc", "2\nc3\n");
}

static void test_checkpoint_copy_shorter_than_read(void **state)
{
	struct fixture *fx = *state;
	struct kl_buf buf = { 0 };
	/* read to its end (1600 bytes), checkpointed; then copytruncate copies
	 * it but loses its last 5 lines (written between the copy and the
	 * truncation): the copy ends before the checkpoint's offset, and looks
	 * newer than the checkpoint. It holds only lines read already: none of
	 * them again, nothing reported lost */
	char line[128], all[4096] = "", copied[4096] = "";
	writer(fx, 0, "a.log");
	for (int i = 0; i < 20; i++) {
		snprintf(line, sizeof line, "line %02d %s\n", i,
			 "padding padding padding padding padding padding padding padding padding");
		strcat(all, line);
		if (i < 15)
			strcat(copied, line);
	}
	put(fx, 0, all);
	start_simple(fx, "a.log", true);
	assert_true(run_until_lines(fx, 20));
	settle(fx, SETTLE);
	save_and_stop(fx, &buf);
	int64_t saved_us = kl_wall_us();
	copytruncate_as_logrotate(fx, copied, "d1\n");
	struct ingest_tail_opts o = opts_for(fx, "a.log", true);
	o.state = buf.p;
	o.state_len = buf.len;
	o.state_time_us = saved_us - 1000000; /* the copy is newer, past the slack */
	start(fx, &o);
	assert_true(run_until_lines(fx, 21));
	settle(fx, SETTLE);
	assert_int_equal(fx->n, 21);
	assert_string_equal(fx->v[19].s, "line 19 padding padding padding padding padding padding "
					 "padding padding padding");
	assert_string_equal(fx->v[20].s, "d1");
	kl_buf_free(&buf);
}

/* Write name as a gzip file of s, with the mtime of the file `like` (as
 * gzip and logrotate's compress keep it). */
static void gzip_as(struct fixture *fx, const char *name, const char *s, const char *like)
{
	struct stat st;
	assert_int_equal(stat(path_of(fx, like), &st), 0);
	gzFile g = gzopen(path_of(fx, name), "wb");
	assert_non_null(g);
	assert_int_equal(gzwrite(g, s, (unsigned)strlen(s)), (int)strlen(s));
	assert_int_equal(gzclose(g), Z_OK);
	struct timespec ts[2] = { st.st_atim, st.st_mtim };
	assert_int_equal(utimensat(AT_FDCWD, path_of(fx, name), ts, 0), 0);
}

/* Back-date a file's mtime by secs (an older generation). */
static void age(struct fixture *fx, const char *name, int secs)
{
	struct stat st;
	assert_int_equal(stat(path_of(fx, name), &st), 0);
	st.st_mtim.tv_sec -= secs;
	struct timespec ts[2] = { st.st_atim, st.st_mtim };
	assert_int_equal(utimensat(AT_FDCWD, path_of(fx, name), ts, 0), 0);
}

static void test_checkpoint_rotated_twice_compressed(void **state)
{
	struct fixture *fx = *state;
	struct kl_buf buf = { 0 };
	/* an older generation, read before: never read again */
	append(fx, "a.log.3", "old1\nold2\n");
	age(fx, "a.log.3", 3600);
	writer(fx, 0, "a.log");
	put(fx, 0, "a1\na2\n");
	start_simple(fx, "a.log", true);
	assert_true(run_until_lines(fx, 2));
	settle(fx, SETTLE);
	save_and_stop(fx, &buf);
	/* while stopped: a3, rotation (a.log.1), b1, a second rotation with
	 * compress (a.log.1 -> a.log.2.gz, a.log -> a.log.1), c1 */
	put(fx, 0, "a3\n");
	age(fx, "a.log", 20);
	assert_int_equal(rename(path_of(fx, "a.log"), path_of(fx, "a.log.1")), 0);
	writer(fx, 1, "a.log");
	put(fx, 1, "b1\n");
	age(fx, "a.log", 10);
	gzip_as(fx, "a.log.2.gz", "a1\na2\na3\n", "a.log.1");
	assert_int_equal(unlink(path_of(fx, "a.log.1")), 0);
	assert_int_equal(rename(path_of(fx, "a.log"), path_of(fx, "a.log.1")), 0);
	writer(fx, 2, "a.log");
	put(fx, 2, "c1\n");
	start_from(fx, "a.log", false, &buf);
	assert_true(run_until_lines(fx, 5));
	put(fx, 2, "c2\n");
	assert_true(run_until_lines(fx, 6));
	settle(fx, SETTLE);
	EXPECT(fx, "a1", "a2", "a3", "b1", "c1", "c2");
	assert_int_equal(stats(fx).rotations, 2);
	kl_buf_free(&buf);
}

/* A generation read to its end and closed before the checkpoint, compressed
 * after it (the .gz newer than the checkpoint, as logrotate's compress makes
 * it, and no record names it): known by its content (a done record), not
 * read again. */
static void test_checkpoint_done_generation_compressed_later(void **state)
{
	struct fixture *fx = *state;
	struct kl_buf buf = { 0 };
	writer(fx, 0, "a.log");
	put(fx, 0, "a1\na2\n");
	struct ingest_tail_opts o = opts_for(fx, "a.log", true);
	start(fx, &o);
	assert_true(run_until_lines(fx, 2));
	assert_int_equal(rename(path_of(fx, "a.log"), path_of(fx, "a.log.1")), 0);
	writer(fx, 1, "a.log");
	put(fx, 1, "b1\n");
	assert_true(run_until_lines(fx, 3));
	settle(fx, 2 * SETTLE); /* past rotate_wait (5 stat intervals) */
	assert_int_equal(stats(fx).files_open, 1); /* a.log.1 done with */
	save_and_stop(fx, &buf);
	if (!strstr(buf.p, "done fp="))
		fail_msg("no done record: %.*s", (int)buf.len, buf.p);
	int64_t saved_us = kl_wall_us();
	put(fx, 1, "b2\n");
	gzip_as(fx, "a.log.1.gz", "a1\na2\n", "a.log"); /* mtime: now */
	assert_int_equal(unlink(path_of(fx, "a.log.1")), 0);
	o.state = buf.p;
	o.state_len = buf.len;
	o.state_time_us = saved_us - 1000000; /* the .gz is newer, past the slack */
	start(fx, &o);
	assert_true(run_until_lines(fx, 4));
	settle(fx, SETTLE);
	EXPECT(fx, "a1", "a2", "b1", "b2");
	kl_buf_free(&buf);
}

static void test_checkpoint_resume_inside_gz(void **state)
{
	struct fixture *fx = *state;
	struct kl_buf buf = { 0 };
	/* stopped while reading a compressed generation: resumed inside it */
	append(fx, "a.log", "g1\n");
	start_simple(fx, "a.log", true);
	assert_true(run_until_lines(fx, 1));
	save_and_stop(fx, &buf);
	append(fx, "a.log", "g2\n");
	age(fx, "a.log", 5);
	gzip_as(fx, "a.log.1.gz", "g1\ng2\n", "a.log");
	assert_int_equal(unlink(path_of(fx, "a.log")), 0);
	append(fx, "a.log", "h1\n");
	start_from(fx, "a.log", true, &buf);
	/* a checkpoint before the compressed file is read keeps its offset,
	 * not 0: a crash then must not read g1 again */
	struct kl_buf again = { 0 };
	assert_int_equal(ingest_tail_save(fx->t, &again), 0);
	if (!strstr(again.p, " off=3 "))
		fail_msg("the compressed generation is saved without its offset: %.*s",
			 (int)again.len, again.p);
	kl_buf_free(&again);
	/* only g2 of the compressed file is new */
	assert_true(run_until_lines(fx, 3));
	settle(fx, SETTLE);
	EXPECT(fx, "g1", "g2", "h1");
	kl_buf_free(&buf);
}

static void test_checkpoint_damaged_gz(void **state)
{
	struct fixture *fx = *state;
	struct kl_buf buf = { 0 };
	append(fx, "a.log", "k1\n");
	start_simple(fx, "a.log", true);
	assert_true(run_until_lines(fx, 1));
	save_and_stop(fx, &buf);
	/* the compressed generation is cut short: what it holds is read, the
	 * error counted, and the new file still follows */
	append(fx, "a.log", "k2\nk3\n");
	age(fx, "a.log", 5);
	gzip_as(fx, "a.log.1.gz", "k1\nk2\nk3\n", "a.log");
	struct stat st;
	assert_int_equal(stat(path_of(fx, "a.log.1.gz"), &st), 0);
	assert_int_equal(truncate(path_of(fx, "a.log.1.gz"), st.st_size - 6), 0);
	/* a compressor's temporary file is never a generation */
	append(fx, "a.log.1.gz.tmp", "junk\n");
	age(fx, "a.log.1.gz.tmp", 4);
	assert_int_equal(unlink(path_of(fx, "a.log")), 0);
	append(fx, "a.log", "m1\n");
	start_from(fx, "a.log", true, &buf);
	RUN_UNTIL(fx, s->read_errors == 1);
	assert_true(run_until_lines(fx, 4));
	settle(fx, SETTLE);
	EXPECT(fx, "k1", "k2", "k3", "m1");
	kl_buf_free(&buf);
}

/* ingest_tail_line_mark names each line's start, also of a line completed
 * across two reads; a save held at a mark resumes there. */
static void test_line_mark_and_held_save(void **state)
{
	struct fixture *fx = *state;
	struct kl_buf buf = { 0 };
	writer(fx, 0, "a.log");
	put(fx, 0, "l1\nl2\npa");
	start_simple(fx, "a.log", true);
	assert_true(run_until_lines(fx, 2));
	settle(fx, SETTLE);
	put(fx, 0, "rt\nl4\n");
	assert_true(run_until_lines(fx, 4));
	EXPECT(fx, "l1", "l2", "part", "l4");
	const uint64_t want[] = { 0, 3, 6, 11 };
	for (size_t i = 0; i < 4; i++) {
		assert_non_null(fx->v[i].mark.file);
		if (fx->v[i].mark.off != want[i])
			fail_msg("line %zu: mark at %llu, expected %llu", i,
				 (unsigned long long)fx->v[i].mark.off, (unsigned long long)want[i]);
	}
	struct ingest_mark held = fx->v[2].mark; /* "part" is held back */
	assert_int_equal(ingest_tail_save_held(fx->t, &buf, &held, 1), 0);
	if (!strstr(buf.p, " off=6 "))
		fail_msg("the held save does not stop at the held line: %.*s", (int)buf.len, buf.p);
	ingest_tail_free(fx->t);
	fx->t = NULL;
	start_from(fx, "a.log", true, &buf);
	assert_true(run_until_lines(fx, 6));
	settle(fx, SETTLE);
	EXPECT_FROM(fx, 4, "part", "l4");
	kl_buf_free(&buf);
}

static void test_checkpoint_replaced_while_stopped(void **state)
{
	struct fixture *fx = *state;
	struct kl_buf buf = { 0 };
	append(fx, "a.log", "r1\nr2\n");
	start_simple(fx, "a.log", true);
	assert_true(run_until_lines(fx, 2));
	save_and_stop(fx, &buf);
	/* same inode, rewritten longer than the offset: the first bytes differ */
	int fd = open(path_of(fx, "a.log"), O_WRONLY | O_TRUNC | O_CLOEXEC);
	assert_true(fd >= 0);
	write_all(fd, "s1 other content\ns2\n", 20);
	close(fd);
	start_from(fx, "a.log", false, &buf);
	assert_true(run_until_lines(fx, 4));
	settle(fx, SETTLE);
	EXPECT(fx, "r1", "r2", "s1 other content", "s2");
	kl_buf_free(&buf);
}

static void test_checkpoint_unknown_file_follows_from(void **state)
{
	struct fixture *fx = *state;
	struct kl_buf buf = { 0 };
	append(fx, "a.log", "a1\n");
	start_simple(fx, "*.log", true);
	assert_true(run_until_lines(fx, 1));
	save_and_stop(fx, &buf);
	append(fx, "a.log", "a2\n");
	append(fx, "b.log", "b-old\n"); /* not in the checkpoint: from the end */
	start_from(fx, "*.log", false, &buf);
	assert_true(run_until_lines(fx, 2));
	append(fx, "b.log", "b-new\n");
	assert_true(run_until_lines(fx, 3));
	settle(fx, SETTLE);
	EXPECT(fx, "a1", "a2", "b-new");
	kl_buf_free(&buf);
}

/* With the checkpoint's time known, a file it does not name appeared since:
 * read from 0, whatever from_beginning says. */
static void test_checkpoint_unknown_file_new_since(void **state)
{
	struct fixture *fx = *state;
	struct kl_buf buf = { 0 };
	append(fx, "a.log", "a1\n");
	start_simple(fx, "*.log", true);
	assert_true(run_until_lines(fx, 1));
	save_and_stop(fx, &buf);
	int64_t saved_us = kl_wall_us();
	append(fx, "b.log", "b1\n");
	struct ingest_tail_opts o = opts_for(fx, "*.log", false);
	o.state = buf.p;
	o.state_len = buf.len;
	o.state_time_us = saved_us;
	start(fx, &o);
	assert_true(run_until_lines(fx, 2));
	settle(fx, SETTLE);
	EXPECT(fx, "a1", "b1");
	kl_buf_free(&buf);
}

/* A checkpoint written before the file existed (it names no file): the file
 * created, rotated and created again while we were stopped is read whole,
 * its generation first. */
static void test_checkpoint_empty_then_rotated(void **state)
{
	struct fixture *fx = *state;
	int64_t saved_us = kl_wall_us();
	writer(fx, 0, "a.log");
	put(fx, 0, "a1\na2\n");
	assert_int_equal(rename(path_of(fx, "a.log"), path_of(fx, "a.log.1")), 0);
	writer(fx, 1, "a.log");
	put(fx, 1, "b1\n");
	struct ingest_tail_opts o = opts_for(fx, "a.log", false);
	o.state = "";
	o.state_len = 0;
	o.state_time_us = saved_us - 1000000; /* older than the files, past the slack */
	start(fx, &o);
	assert_true(run_until_lines(fx, 3));
	settle(fx, SETTLE);
	EXPECT(fx, "a1", "a2", "b1");
	assert_int_equal(stats(fx).rotations, 1);
}

static void test_checkpoint_inside_long_line(void **state)
{
	struct fixture *fx = *state;
	struct kl_buf buf = { 0 };
	struct ingest_tail_opts o = opts_for(fx, "a.log", true);
	o.max_line = 8;
	append(fx, "a.log", "x1\n0123456789abc");
	start(fx, &o);
	assert_true(run_until_lines(fx, 2)); /* x1, then the cut line */
	settle(fx, SETTLE);
	save_and_stop(fx, &buf);
	if (!strstr(buf.p, " off=16 ") || !strstr(buf.p, " skip=1 "))
		fail_msg("unexpected record: %.*s", (int)buf.len, buf.p);
	append(fx, "a.log", "def\nok\n");
	o.state = buf.p;
	o.state_len = buf.len;
	start(fx, &o);
	assert_true(run_until_lines(fx, 3));
	settle(fx, SETTLE);
	/* the rest of the cut line is still skipped after the restart */
	EXPECT(fx, "x1", "01234567", "ok");
	kl_buf_free(&buf);
}

static void test_checkpoint_state_check(void **state)
{
	(void)state;
	static const char ok[] =
		"file dev=1 ino=2 off=3 fplen=3 fp=00000000000000ff skip=0 path=/x/a%20b\n"
		"file dev=1 ino=3 off=0 fplen=0 fp=0123456789abcdef skip=1 path=rel.log\n"
		"done fp=0123456789abcdef fplen=1024 end=5000";
	size_t bad = 0;
	assert_int_equal(ingest_tail_state_check(ok, strlen(ok), &bad), 0);
	assert_int_equal(ingest_tail_state_check("", 0, &bad), 0);
	static const char *const bads[] = {
		"file dev=1",
		"file dev=1 ino=2 off=3 fplen=3 fp=ff skip=0 path=/x",		 /* short fp */
		"file dev=1 ino=2 off=3 fplen=3 fp=00000000000000fg skip=0 path=/x", /* not hex */
		"file dev=1 ino=2 off=3 fplen=2000 fp=00000000000000ff skip=0 path=/x",
		"file dev=1 ino=2 off=3 fplen=3 fp=00000000000000ff skip=2 path=/x",
		"file dev=1 ino=2 off=3 fplen=3 fp=00000000000000ff skip=0 path=/a b",
		"file dev=1 ino=2 off=3 fplen=3 fp=00000000000000ff skip=0 path=/a%00",
		"file dev=1 ino=2 off=3 fplen=3 fp=00000000000000ff skip=0 path=/a%2",
		"file dev=1 ino=2 off=3 fplen=3 fp=00000000000000ff skip=0 path=",
		"file dev=-1 ino=2 off=3 fplen=3 fp=00000000000000ff skip=0 path=/x",
		"file dev=1 ino=2 off=99999999999999999999 fplen=3 fp=00000000000000ff skip=0 "
		"path=/x",
		"file ino=2 dev=1 off=3 fplen=3 fp=00000000000000ff skip=0 path=/x",
		"done fp=00000000000000ff fplen=0 end=3",	  /* nothing fingerprinted */
		"done fp=00000000000000ff fplen=1025 end=3",	  /* longer than FP_MAX */
		"done fp=000000000000ff fplen=3 end=3",		  /* short fp */
		"done fp=00000000000000ff fplen=3",		  /* no end */
		"done fp=00000000000000ff fplen=3 end=3 more=1", /* trailing field */
		"\n",
	};
	for (size_t i = 0; i < KL_ARRAY_LEN(bads); i++) {
		char two[512];
		int n = snprintf(two, sizeof two, "%.*s%s", 72, ok, bads[i]);
		assert_true(n > 0 && (size_t)n < sizeof two);
		bad = 0;
		if (ingest_tail_state_check(two, (size_t)n, &bad) != -EINVAL)
			fail_msg("accepted: \"%s\"", bads[i]);
		assert_int_equal(bad, 2);
	}
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_append),
		T(test_from_end),
		T(test_from_beginning),
		T(test_rotate_rename_create),
		T(test_rotate_seen_before_create),
		T(test_rotate_into_glob),
		T(test_rename_over_followed),
		T(test_copytruncate),
		T(test_copytruncated_to_empty_before_read),
		T(test_copytruncated_twice_short_fingerprint),
		T(test_copytruncated_then_short_start),
		T(test_truncated_while_reading),
		T(test_delete_and_recreate),
		T(test_late_creation),
		T(test_glob_second_file),
		T(test_one_mib_line),
		T(test_one_mib_line_cut),
		T(test_nul_bytes),
		T(test_busy_file_does_not_starve),
		T(test_without_inotify),
		T(test_bad_pattern),
		T(test_checkpoint_resume),
		T(test_checkpoint_rotated_while_stopped),
		T(test_checkpoint_dateext_while_stopped),
		T(test_checkpoint_copytruncate_while_stopped),
		T(test_checkpoint_copied_not_truncated),
		T(test_checkpoint_copy_half_made),
		T(test_checkpoint_copy_shorter_than_read),
		T(test_checkpoint_rotated_twice_compressed),
		T(test_checkpoint_done_generation_compressed_later),
		T(test_checkpoint_resume_inside_gz),
		T(test_checkpoint_damaged_gz),
		T(test_line_mark_and_held_save),
		T(test_checkpoint_replaced_while_stopped),
		T(test_checkpoint_unknown_file_follows_from),
		T(test_checkpoint_unknown_file_new_since),
		T(test_checkpoint_empty_then_rotated),
		T(test_checkpoint_inside_long_line),
		T(test_checkpoint_state_check),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
