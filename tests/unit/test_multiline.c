/*
 * test_multiline.c — the multi-line record assembler: Python tracebacks
 * (chained ones included) with `start`, PostgreSQL continuations with
 * `continuation`, flushing at the end of input and at the deadline, the
 * max_lines / max_bytes cuts and their counters, the double-buffered records,
 * lines with nothing pending, empty lines, CRLF, and bad regexes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ingest/ingest.h"

#define DATE_START "^\\d{4}-\\d{2}-\\d{2} "

/* Records handed out, each copied, with where the view pointed. */
struct got {
	char **v;
	size_t *len;
	const char **ptr;
	int64_t *first_us;
	size_t n, cap;
};

static void got_add(void *ctx, const char *rec, size_t len, int64_t first_us)
{
	struct got *g = ctx;
	assert_non_null(rec);
	if (g->n == g->cap) {
		g->cap = g->cap ? g->cap * 2 : 16;
		g->v = realloc(g->v, g->cap * sizeof(*g->v));
		g->len = realloc(g->len, g->cap * sizeof(*g->len));
		g->ptr = realloc(g->ptr, g->cap * sizeof(*g->ptr));
		g->first_us = realloc(g->first_us, g->cap * sizeof(*g->first_us));
		assert_non_null(g->v);
		assert_non_null(g->len);
		assert_non_null(g->ptr);
		assert_non_null(g->first_us);
	}
	g->v[g->n] = malloc(len + 1);
	assert_non_null(g->v[g->n]);
	if (len)
		memcpy(g->v[g->n], rec, len);
	g->v[g->n][len] = '\0';
	g->len[g->n] = len;
	g->ptr[g->n] = rec;
	g->first_us[g->n] = first_us;
	g->n++;
}

static void got_free(struct got *g)
{
	for (size_t i = 0; i < g->n; i++)
		free(g->v[i]);
	free(g->v);
	free(g->len);
	free(g->ptr);
	free(g->first_us);
	memset(g, 0, sizeof(*g));
}

static struct ingest_multiline *new_ml(const struct ingest_multiline_opts *o)
{
	char err[256] = "";
	struct ingest_multiline *m = ingest_multiline_new(o, err, sizeof err);
	if (!m)
		print_error("ingest_multiline_new: %s\n", err);
	assert_non_null(m);
	return m;
}

/* Feed text split on '\n' (a last line without '\n' counts), each line a fresh
 * heap copy freed after the call, read at t, t + step, ... */
static void feed_text(struct ingest_multiline *m, const char *text, int64_t t, int64_t step,
		      struct got *g)
{
	const char *p = text, *end = text + strlen(text);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		char *copy = malloc(n + 1);
		assert_non_null(copy);
		memcpy(copy, p, n);
		ingest_multiline_feed(m, copy, n, t, got_add, g);
		memset(copy, '#', n);
		free(copy);
		t += step;
		p += n + (nl ? 1 : 0);
	}
}

static void assert_rec(const struct got *g, size_t i, const char *want)
{
	if (i >= g->n)
		print_error("record %zu expected, only %zu handed out\n", i, g->n);
	assert_true(i < g->n);
	if (strlen(want) != g->len[i] || memcmp(want, g->v[i], g->len[i]) != 0)
		print_error("record %zu:\n--- expected (%zu bytes)\n%s\n--- got (%zu bytes)\n%s\n---\n",
			    i, strlen(want), want, g->len[i], g->v[i]);
	assert_int_equal(strlen(want), g->len[i]);
	assert_memory_equal(want, g->v[i], g->len[i]);
}

/* ------------------------------------------------------------------------- */

#define PY_TB_CHAINED                                                                              \
	"Traceback (most recent call last):\n"                                                     \
	"  File \"/usr/lib/python3/dist-packages/django/db/backends/base/base.py\", line 289, in ensure_connection\n" \
	"    self.connect()\n"                                                                     \
	"  File \"/usr/lib/python3/dist-packages/django/utils/asyncio.py\", line 26, in inner\n"   \
	"    return func(*args, **kwargs)\n"                                                       \
	"           ^^^^^^^^^^^^^^^^^^^^^\n"                                                       \
	"  File \"/usr/lib/python3/dist-packages/psycopg2/__init__.py\", line 122, in connect\n"   \
	"    conn = _connect(dsn, connection_factory=connection_factory, **kwasync)\n"             \
	"psycopg2.OperationalError: connection to server at \"127.0.0.1\", port 5432 failed: Connection refused\n" \
	"\tIs the server running on that host and accepting TCP/IP connections?\n"                 \
	"\n"                                                                                       \
	"\n"                                                                                       \
	"The above exception was the direct cause of the following exception:\n"                  \
	"\n"                                                                                       \
	"Traceback (most recent call last):\n"                                                     \
	"  File \"/srv/app/debt/views.py\", line 41, in profile\n"                                 \
	"    debts = list(Debt.objects.filter(owner=request.user))\n"                              \
	"  File \"/usr/lib/python3/dist-packages/django/db/utils.py\", line 91, in __exit__\n"     \
	"    raise dj_exc_value.with_traceback(traceback) from exc_value\n"                        \
	"django.db.utils.OperationalError: connection to server at \"127.0.0.1\", port 5432 failed: Connection refused\n" \
	"\tIs the server running on that host and accepting TCP/IP connections?\n"                 \
	"\n"                                                                                       \
	"During handling of the above exception, another exception occurred:\n"                   \
	"\n"                                                                                       \
	"Traceback (most recent call last):\n"                                                     \
	"  File \"/srv/app/debt/middleware.py\", line 17, in __call__\n"                           \
	"    log_failure(request)\n"                                                               \
	"KeyError: 'user_id'"

static const char django_log[] =
	"2024-03-01 12:00:00,123 INFO django.server 1234 \"GET /health HTTP/1.1\" 200 2\n"
	"2024-03-01 12:00:01,456 ERROR django.request 1234 Internal Server Error: /profile/\n" PY_TB_CHAINED
	"\n"
	"2024-03-01 12:00:02,000 WARNING django.security 1234 Invalid HTTP_HOST header: 'x'\n"
	"2024-03-01 12:00:03,000 ERROR django.request 1235 Internal Server Error: /debts/\n"
	"Traceback (most recent call last):\n"
	"  File \"/srv/app/debt/views.py\", line 12, in debts\n"
	"    return render(request, 'debts.html', ctx)\n"
	"ValueError: bad\n"
	"2024-03-01 12:00:04,000 INFO django.server 1235 \"GET / HTTP/1.1\" 200 512\n";

static void test_python_traceback(void **state)
{
	struct ingest_multiline_opts o = { .start = DATE_START };
	struct ingest_multiline *m = new_ml(&o);
	struct got g = { 0 };
	feed_text(m, django_log, 1000, 1, &g);
	/* The last record is pending until something closes it. */
	assert_int_equal(g.n, 4);
	ingest_multiline_flush(m, got_add, &g);
	assert_int_equal(g.n, 5);
	assert_rec(&g, 0,
		   "2024-03-01 12:00:00,123 INFO django.server 1234 \"GET /health HTTP/1.1\" 200 2");
	assert_rec(&g, 1,
		   "2024-03-01 12:00:01,456 ERROR django.request 1234 Internal Server Error: /profile/\n" PY_TB_CHAINED);
	assert_rec(&g, 2,
		   "2024-03-01 12:00:02,000 WARNING django.security 1234 Invalid HTTP_HOST header: 'x'");
	assert_rec(&g, 3,
		   "2024-03-01 12:00:03,000 ERROR django.request 1235 Internal Server Error: /debts/\n"
		   "Traceback (most recent call last):\n"
		   "  File \"/srv/app/debt/views.py\", line 12, in debts\n"
		   "    return render(request, 'debts.html', ctx)\n"
		   "ValueError: bad");
	assert_rec(&g, 4,
		   "2024-03-01 12:00:04,000 INFO django.server 1235 \"GET / HTTP/1.1\" 200 512");
	/* first_read_us is the read time of the record's first line. */
	assert_int_equal(g.first_us[0], 1000);
	assert_int_equal(g.first_us[1], 1001);

	const struct ingest_multiline_stats *st = ingest_multiline_stats(m);
	assert_int_equal(st->records, 5);
	assert_int_equal(st->cut_lines, 0);
	assert_int_equal(st->cut_records, 0);
	size_t nlines = 0;
	for (const char *p = django_log; *p; p++)
		nlines += *p == '\n';
	assert_int_equal(st->lines, nlines);
	got_free(&g);
	ingest_multiline_free(m);
}

/* The trailing empty line of a traceback belongs to it; so do empty lines
 * between chained tracebacks (checked above), and empty lines right after
 * the first line. */
static void test_empty_lines_inside(void **state)
{
	struct ingest_multiline_opts o = { .start = DATE_START };
	struct ingest_multiline *m = new_ml(&o);
	struct got g = { 0 };
	feed_text(m,
		  "2024-03-01 12:00:00 A\n"
		  "\n"
		  "\n"
		  "x\n"
		  "\n"
		  "2024-03-01 12:00:01 B\n"
		  "\n",
		  0, 0, &g);
	ingest_multiline_flush(m, got_add, &g);
	assert_int_equal(g.n, 2);
	assert_rec(&g, 0, "2024-03-01 12:00:00 A\n\n\nx\n");
	assert_rec(&g, 1, "2024-03-01 12:00:01 B\n");
	assert_int_equal(ingest_multiline_stats(m)->lines, 7);
	got_free(&g);
	ingest_multiline_free(m);
}

/* ------------------------------------------------------------------------- */

static const char pg_log[] =
	"2024-03-01 12:00:00.123 UTC [4242] LOG:  duration: 1234.567 ms  statement: SELECT a,\n"
	"\t\t b\n"
	"\tFROM t\n"
	"\tWHERE a > 1;\n"
	"2024-03-01 12:00:00.200 UTC [4243] ERROR:  duplicate key value violates unique constraint \"debt_pkey\"\n"
	"2024-03-01 12:00:00.200 UTC [4243] DETAIL:  Key (id)=(7) already exists.\n"
	"2024-03-01 12:00:00.200 UTC [4243] STATEMENT:  INSERT INTO debt (id, owner)\n"
	"\tVALUES (7, 'x');\n"
	"2024-03-01 12:00:01.000 UTC [4250] FATAL:  sorry, too many clients already\n"
	"2024-03-01 12:00:02.000 UTC [4251] ERROR:  deadlock detected\n"
	"2024-03-01 12:00:02.000 UTC [4251] DETAIL:  Process 4251 waits for ShareLock on transaction 901; blocked by process 4252.\n"
	"\tProcess 4252 waits for ShareLock on transaction 900; blocked by process 4251.\n"
	"\tProcess 4251: UPDATE debt SET amount = 1 WHERE id = 1;\n"
	"2024-03-01 12:00:02.000 UTC [4251] HINT:  See server log for query details.\n"
	"2024-03-01 12:00:02.000 UTC [4251] CONTEXT:  while updating tuple (0,1) in relation \"debt\"\n"
	"2024-03-01 12:00:02.000 UTC [4251] STATEMENT:  UPDATE debt SET amount = 1 WHERE id = 1;\n"
	"2024-03-01 12:00:03.000 UTC [4260] LOG:  checkpoint starting: time\n";

static void test_postgres_tab_continuation(void **state)
{
	struct ingest_multiline_opts o = { .continuation = "^\\t" };
	struct ingest_multiline *m = new_ml(&o);
	struct got g = { 0 };
	feed_text(m, pg_log, 0, 10, &g);
	ingest_multiline_flush(m, got_add, &g);
	assert_int_equal(g.n, 11);
	assert_rec(&g, 0,
		   "2024-03-01 12:00:00.123 UTC [4242] LOG:  duration: 1234.567 ms  statement: SELECT a,\n"
		   "\t\t b\n"
		   "\tFROM t\n"
		   "\tWHERE a > 1;");
	assert_rec(&g, 1,
		   "2024-03-01 12:00:00.200 UTC [4243] ERROR:  duplicate key value violates unique constraint \"debt_pkey\"");
	assert_rec(&g, 3,
		   "2024-03-01 12:00:00.200 UTC [4243] STATEMENT:  INSERT INTO debt (id, owner)\n"
		   "\tVALUES (7, 'x');");
	assert_rec(&g, 6,
		   "2024-03-01 12:00:02.000 UTC [4251] DETAIL:  Process 4251 waits for ShareLock on transaction 901; blocked by process 4252.\n"
		   "\tProcess 4252 waits for ShareLock on transaction 900; blocked by process 4251.\n"
		   "\tProcess 4251: UPDATE debt SET amount = 1 WHERE id = 1;");
	assert_rec(&g, 10, "2024-03-01 12:00:03.000 UTC [4260] LOG:  checkpoint starting: time");
	assert_int_equal(g.first_us[3], 60);
	got_free(&g);
	ingest_multiline_free(m);
}

/* DETAIL/HINT/CONTEXT/STATEMENT lines continue the ERROR before them. */
static void test_postgres_detail_continuation(void **state)
{
	struct ingest_multiline_opts o = {
		.continuation = "^(\\t|\\d{4}-\\d{2}-\\d{2} [^\\[]*\\[\\d+\\] (DETAIL|HINT|CONTEXT|STATEMENT):  )",
	};
	struct ingest_multiline *m = new_ml(&o);
	struct got g = { 0 };
	feed_text(m, pg_log, 0, 10, &g);
	ingest_multiline_flush(m, got_add, &g);
	assert_int_equal(g.n, 5);
	assert_rec(&g, 1,
		   "2024-03-01 12:00:00.200 UTC [4243] ERROR:  duplicate key value violates unique constraint \"debt_pkey\"\n"
		   "2024-03-01 12:00:00.200 UTC [4243] DETAIL:  Key (id)=(7) already exists.\n"
		   "2024-03-01 12:00:00.200 UTC [4243] STATEMENT:  INSERT INTO debt (id, owner)\n"
		   "\tVALUES (7, 'x');");
	assert_rec(&g, 2, "2024-03-01 12:00:01.000 UTC [4250] FATAL:  sorry, too many clients already");
	assert_rec(&g, 3,
		   "2024-03-01 12:00:02.000 UTC [4251] ERROR:  deadlock detected\n"
		   "2024-03-01 12:00:02.000 UTC [4251] DETAIL:  Process 4251 waits for ShareLock on transaction 901; blocked by process 4252.\n"
		   "\tProcess 4252 waits for ShareLock on transaction 900; blocked by process 4251.\n"
		   "\tProcess 4251: UPDATE debt SET amount = 1 WHERE id = 1;\n"
		   "2024-03-01 12:00:02.000 UTC [4251] HINT:  See server log for query details.\n"
		   "2024-03-01 12:00:02.000 UTC [4251] CONTEXT:  while updating tuple (0,1) in relation \"debt\"\n"
		   "2024-03-01 12:00:02.000 UTC [4251] STATEMENT:  UPDATE debt SET amount = 1 WHERE id = 1;");
	assert_int_equal(ingest_multiline_stats(m)->records, 5);
	got_free(&g);
	ingest_multiline_free(m);
}

/* A continuation line with nothing pending begins a record (never dropped). */
static void test_continuation_first(void **state)
{
	struct ingest_multiline_opts o = { .continuation = "^\\t" };
	struct ingest_multiline *m = new_ml(&o);
	struct got g = { 0 };
	feed_text(m, "\torphan\n\tmore\nhead\n", 0, 0, &g);
	ingest_multiline_flush(m, got_add, &g);
	assert_int_equal(g.n, 2);
	assert_rec(&g, 0, "\torphan\n\tmore");
	assert_rec(&g, 1, "head");
	got_free(&g);
	ingest_multiline_free(m);
}

/* A line that does not match start with nothing pending is a record by
 * itself, and later non-matching lines join it. */
static void test_no_start_nothing_pending(void **state)
{
	struct ingest_multiline_opts o = { .start = DATE_START };
	struct ingest_multiline *m = new_ml(&o);
	struct got g = { 0 };
	feed_text(m, "  tail of a record from before we started\nValueError: x\n", 5, 1, &g);
	assert_int_equal(g.n, 0);
	ingest_multiline_flush(m, got_add, &g);
	assert_int_equal(g.n, 1);
	assert_rec(&g, 0, "  tail of a record from before we started\nValueError: x");
	assert_int_equal(g.first_us[0], 5);
	/* After a flush, the same again: a record by itself. */
	feed_text(m, "orphan\n2024-01-01 x\n", 10, 1, &g);
	ingest_multiline_flush(m, got_add, &g);
	assert_int_equal(g.n, 3);
	assert_rec(&g, 1, "orphan");
	assert_rec(&g, 2, "2024-01-01 x");
	/* An empty line with nothing pending is an (empty) record too. */
	feed_text(m, "\n", 20, 0, &g);
	ingest_multiline_flush(m, got_add, &g);
	assert_int_equal(g.n, 4);
	assert_rec(&g, 3, "");
	assert_int_equal(ingest_multiline_stats(m)->lines, 5);
	assert_int_equal(ingest_multiline_stats(m)->records, 4);
	got_free(&g);
	ingest_multiline_free(m);
}

/* ------------------------------------------------------------------------- */

static void test_flush(void **state)
{
	struct ingest_multiline_opts o = { .start = DATE_START };
	struct ingest_multiline *m = new_ml(&o);
	struct got g = { 0 };
	ingest_multiline_flush(m, got_add, &g); /* nothing pending: nothing */
	assert_int_equal(g.n, 0);
	/* A chunk ends in the middle of a traceback: nothing handed out yet. */
	feed_text(m, "2024-03-01 12:00:00 ERROR x\nTraceback (most recent call last):\n", 0, 0,
		  &g);
	assert_int_equal(g.n, 0);
	/* The next chunk continues it. */
	feed_text(m, "  File \"a.py\", line 1, in f\nKeyError: 'k'\n", 0, 0, &g);
	assert_int_equal(g.n, 0);
	/* End of file. */
	ingest_multiline_flush(m, got_add, &g);
	assert_int_equal(g.n, 1);
	assert_rec(&g, 0,
		   "2024-03-01 12:00:00 ERROR x\nTraceback (most recent call last):\n"
		   "  File \"a.py\", line 1, in f\nKeyError: 'k'");
	ingest_multiline_flush(m, got_add, &g); /* twice: nothing more */
	ingest_multiline_flush(m, NULL, NULL);
	assert_int_equal(g.n, 1);
	assert_int_equal(ingest_multiline_stats(m)->records, 1);
	got_free(&g);
	ingest_multiline_free(m);
}

static void test_deadline(void **state)
{
	struct ingest_multiline_opts o = { .start = DATE_START, .timeout_us = 2000, .max_lines = 2 };
	struct ingest_multiline *m = new_ml(&o);
	struct got g = { 0 };
	assert_int_equal(ingest_multiline_deadline(m), INT64_MAX);
	ingest_multiline_feed(m, "2024-03-01 a", 12, 1000, got_add, &g);
	assert_int_equal(ingest_multiline_deadline(m), 3000);
	/* The deadline follows the record's last line. */
	ingest_multiline_feed(m, "  more", 6, 1500, got_add, &g);
	assert_int_equal(ingest_multiline_deadline(m), 3500);
	/* A line dropped past max_lines still belongs to the record. */
	ingest_multiline_feed(m, "  dropped", 9, 2500, got_add, &g);
	assert_int_equal(ingest_multiline_deadline(m), 4500);
	assert_int_equal(g.n, 0);
	/* The caller's timer fires: flush. */
	ingest_multiline_flush(m, got_add, &g);
	assert_int_equal(g.n, 1);
	assert_rec(&g, 0, "2024-03-01 a\n  more");
	assert_int_equal(g.first_us[0], 1000);
	assert_int_equal(ingest_multiline_deadline(m), INT64_MAX);

	/* A continuation line that comes at or after the deadline finds the
	 * record already closed (as if the timer had fired first): it begins a
	 * record of its own. */
	ingest_multiline_feed(m, "2024-03-01 b", 12, 10000, got_add, &g);
	ingest_multiline_feed(m, "  late", 6, 12000, got_add, &g);
	assert_int_equal(g.n, 2);
	assert_rec(&g, 1, "2024-03-01 b");
	assert_int_equal(ingest_multiline_deadline(m), 14000);
	ingest_multiline_feed(m, "  in time", 9, 13999, got_add, &g);
	assert_int_equal(g.n, 2);
	ingest_multiline_flush(m, got_add, &g);
	assert_rec(&g, 2, "  late\n  in time");
	assert_int_equal(g.first_us[2], 12000);

	/* No overflow near the end of time. */
	ingest_multiline_feed(m, "x", 1, INT64_MAX - 10, got_add, &g);
	assert_true(ingest_multiline_deadline(m) < INT64_MAX);
	assert_true(ingest_multiline_deadline(m) >= INT64_MAX - 10);
	ingest_multiline_flush(m, got_add, &g);
	assert_int_equal(ingest_multiline_deadline(m), INT64_MAX);
	got_free(&g);
	ingest_multiline_free(m);

	/* The default timeout is 500 ms. */
	struct ingest_multiline_opts d = { .continuation = "^\\s" };
	m = new_ml(&d);
	ingest_multiline_feed(m, "a", 1, 7, NULL, NULL);
	assert_int_equal(ingest_multiline_deadline(m), 7 + 500 * 1000);
	ingest_multiline_free(m);
}

/* ------------------------------------------------------------------------- */

static void test_max_lines(void **state)
{
	struct ingest_multiline_opts o = { .start = "^S", .max_lines = 3 };
	struct ingest_multiline *m = new_ml(&o);
	struct got g = { 0 };
	feed_text(m, "S1\na\nb\nc\nd\ne\nS2\nf\nS3\ng\nh\ni\n", 0, 0, &g);
	ingest_multiline_flush(m, got_add, &g);
	assert_int_equal(g.n, 3);
	assert_rec(&g, 0, "S1\na\nb");
	assert_rec(&g, 1, "S2\nf");
	assert_rec(&g, 2, "S3\ng\nh");
	const struct ingest_multiline_stats *st = ingest_multiline_stats(m);
	assert_int_equal(st->lines, 12);
	assert_int_equal(st->records, 3);
	assert_int_equal(st->cut_lines, 4); /* c d e, i */
	assert_int_equal(st->cut_records, 2);
	got_free(&g);
	ingest_multiline_free(m);

	/* max_lines 1: every line its own record or cut. */
	struct ingest_multiline_opts one = { .continuation = "^ ", .max_lines = 1 };
	m = new_ml(&one);
	feed_text(m, "a\n b\n c\nd\n", 0, 0, &g);
	ingest_multiline_flush(m, got_add, &g);
	assert_int_equal(g.n, 2);
	assert_rec(&g, 0, "a");
	assert_rec(&g, 1, "d");
	assert_int_equal(ingest_multiline_stats(m)->cut_lines, 2);
	assert_int_equal(ingest_multiline_stats(m)->cut_records, 1);
	got_free(&g);
	ingest_multiline_free(m);

	/* The default is 500 lines. */
	struct ingest_multiline_opts d = { .start = "^S" };
	m = new_ml(&d);
	ingest_multiline_feed(m, "S", 1, 0, got_add, &g);
	for (int i = 0; i < 600; i++)
		ingest_multiline_feed(m, "x", 1, 0, got_add, &g);
	ingest_multiline_flush(m, got_add, &g);
	assert_int_equal(g.n, 1);
	assert_int_equal(g.len[0], 1 + 499 * 2);
	assert_int_equal(ingest_multiline_stats(m)->cut_lines, 101);
	got_free(&g);
	ingest_multiline_free(m);
}

static void test_max_bytes(void **state)
{
	struct ingest_multiline_opts o = { .start = "^S", .max_bytes = 20 };
	struct ingest_multiline *m = new_ml(&o);
	struct got g = { 0 };
	/* 10 + 1 + 9 = 20 fits exactly; the next line does not, and neither do
	 * the ones after it. */
	feed_text(m, "S123456789\n123456789\n1\n2\n", 0, 0, &g);
	/* Once a line was dropped, the rest of the record is cut, even a line
	 * that would still fit ("1": 5 + 1 + 1). */
	feed_text(m, "Sabcd\n123456789012345\n1\n", 0, 0, &g);
	/* A first line longer than max_bytes is truncated; its record is cut. */
	feed_text(m, "S1234567890123456789012345\nmore\n", 0, 0, &g);
	/* A record that fits is untouched. */
	feed_text(m, "S\n\n", 0, 0, &g);
	ingest_multiline_flush(m, got_add, &g);
	assert_int_equal(g.n, 4);
	assert_rec(&g, 0, "S123456789\n123456789");
	assert_rec(&g, 1, "Sabcd");
	assert_rec(&g, 2, "S1234567890123456789");
	assert_rec(&g, 3, "S\n");
	const struct ingest_multiline_stats *st = ingest_multiline_stats(m);
	assert_int_equal(st->lines, 11);
	assert_int_equal(st->cut_lines, 5); /* 1, 2; 123456789012345, 1; more */
	assert_int_equal(st->cut_records, 3);
	for (size_t i = 0; i < g.n; i++)
		assert_true(g.len[i] <= 20);
	got_free(&g);
	ingest_multiline_free(m);

	/* One byte: a separator never fits. */
	struct ingest_multiline_opts tiny = { .continuation = "^ ", .max_bytes = 1 };
	m = new_ml(&tiny);
	feed_text(m, "ab\n c\n\n d\n", 0, 0, &g);
	ingest_multiline_flush(m, got_add, &g);
	assert_int_equal(g.n, 2);
	assert_rec(&g, 0, "a");
	assert_rec(&g, 1, "");
	assert_int_equal(ingest_multiline_stats(m)->cut_lines, 2);
	assert_int_equal(ingest_multiline_stats(m)->cut_records, 2);
	got_free(&g);
	ingest_multiline_free(m);

	/* Big records, past the first buffer size, up to the cap. */
	struct ingest_multiline_opts big = { .start = "^S", .max_bytes = 100000 };
	m = new_ml(&big);
	char line[1000];
	memset(line, 'x', sizeof line);
	line[0] = 'S';
	ingest_multiline_feed(m, line, sizeof line, 0, got_add, &g);
	line[0] = ' ';
	for (int i = 0; i < 200; i++)
		ingest_multiline_feed(m, line, sizeof line, 0, got_add, &g);
	ingest_multiline_flush(m, got_add, &g);
	assert_int_equal(g.n, 1);
	/* 1000 + 98 * 1001 = 99098; one more line would pass 100000. */
	assert_int_equal(g.len[0], 1000 + 98 * 1001);
	assert_int_equal(ingest_multiline_stats(m)->cut_lines, 102);
	got_free(&g);
	ingest_multiline_free(m);
}

/* ------------------------------------------------------------------------- */

/* Replay's use: hold record N as the head of a merge while N+1 is assembled
 * and handed out; N's bytes must be intact until then. */
struct holder {
	const char *held; /* the previous record's view */
	char *copy;	  /* and its bytes as handed out */
	size_t len;
	unsigned n;
	unsigned checked;
};

static void hold(void *ctx, const char *rec, size_t len, int64_t first_us)
{
	struct holder *h = ctx;
	if (h->held) {
		/* N is still intact while N+1 is being handed out. */
		assert_ptr_not_equal(h->held, rec);
		assert_memory_equal(h->held, h->copy, h->len);
		h->checked++;
	}
	free(h->copy);
	h->copy = malloc(len + 1);
	assert_non_null(h->copy);
	memcpy(h->copy, rec, len);
	h->held = rec;
	h->len = len;
	h->n++;
}

static void test_double_buffer(void **state)
{
	struct ingest_multiline_opts o = { .start = "^S" };
	struct ingest_multiline *m = new_ml(&o);
	struct holder h = { 0 };
	char line[3000];
	/* Records of growing and shrinking sizes, so buffers are reallocated
	 * while the other one is held. */
	static const unsigned sizes[] = { 1, 5, 2, 40, 3, 100, 7, 2, 300, 1, 1, 50 };
	for (size_t r = 0; r < KL_ARRAY_LEN(sizes); r++) {
		memset(line, 'a' + (int)(r % 26), sizeof line);
		line[0] = 'S';
		ingest_multiline_feed(m, line, 10 + r, 0, hold, &h);
		/* Record r-1 was handed out by the line above and is held: it
		 * stays intact while record r grows. */
		line[0] = ' ';
		for (unsigned i = 0; i < sizes[r]; i++) {
			ingest_multiline_feed(m, line, sizeof line, 0, hold, &h);
			if (h.held)
				assert_memory_equal(h.held, h.copy, h.len);
		}
	}
	ingest_multiline_flush(m, hold, &h);
	assert_int_equal(h.n, KL_ARRAY_LEN(sizes));
	assert_int_equal(h.checked, KL_ARRAY_LEN(sizes) - 1);
	/* The last record stays valid after the flush too. */
	assert_memory_equal(h.held, h.copy, h.len);
	free(h.copy);
	ingest_multiline_free(m);
}

/* ------------------------------------------------------------------------- */

static void test_crlf(void **state)
{
	struct ingest_multiline_opts o = { .start = DATE_START };
	struct ingest_multiline *m = new_ml(&o);
	struct got g = { 0 };
	feed_text(m,
		  "2024-03-01 12:00:00 ERROR x\r\n"
		  "Traceback (most recent call last):\r\n"
		  "\r\n"
		  "KeyError: 'k'\r\n"
		  "2024-03-01 12:00:01 INFO y\r\n",
		  0, 0, &g);
	ingest_multiline_flush(m, got_add, &g);
	assert_int_equal(g.n, 2);
	assert_rec(&g, 0,
		   "2024-03-01 12:00:00 ERROR x\r\nTraceback (most recent call last):\r\n\r\nKeyError: 'k'\r");
	assert_rec(&g, 1, "2024-03-01 12:00:01 INFO y\r");
	got_free(&g);
	ingest_multiline_free(m);
}

/* Lines are bytes: NULs, invalid UTF-8, even with a regex that asks for UTF. */
static void test_binary_lines(void **state)
{
	static const char *const regexes[] = { "^\\xff", "(*UTF)^\\x{ff}", "(*UTF)^.\\w" };
	for (size_t r = 0; r < KL_ARRAY_LEN(regexes); r++) {
		struct ingest_multiline_opts o = { .start = regexes[r] };
		struct ingest_multiline *m = new_ml(&o);
		struct got g = { 0 };
		static const char l1[] = { '\xff', '\0', 'a' };
		static const char l2[] = { '\xc3', '\x28', '\0' };
		static const char l3[] = { '\xed', '\xa0', '\x80' };
		ingest_multiline_feed(m, l1, sizeof l1, 0, got_add, &g);
		ingest_multiline_feed(m, l2, sizeof l2, 0, got_add, &g);
		ingest_multiline_feed(m, l3, sizeof l3, 0, got_add, &g);
		ingest_multiline_feed(m, NULL, 0, 0, got_add, &g);
		ingest_multiline_flush(m, got_add, &g);
		size_t total = 0;
		for (size_t i = 0; i < g.n; i++)
			total += g.len[i];
		/* 9 bytes, plus separators between lines of a record. */
		assert_int_equal(total, 9 + 4 - g.n);
		assert_int_equal(ingest_multiline_stats(m)->lines, 4);
		if (r == 0) {
			assert_int_equal(g.n, 1);
			assert_memory_equal(g.v[0], "\xff\0a\n\xc3\x28\0\n\xed\xa0\x80\n", 12);
		}
		got_free(&g);
		ingest_multiline_free(m);
	}
}

static void test_bad_options(void **state)
{
	char err[256];
	struct ingest_multiline_opts o = { .start = "^(abc" };
	assert_null(ingest_multiline_new(&o, err, sizeof err));
	if (strncmp(err, "start: ", 7) != 0 || !strstr(err, "at offset 5"))
		print_error("got \"%s\"\n", err);
	assert_true(strncmp(err, "start: ", 7) == 0);
	assert_non_null(strstr(err, "missing closing parenthesis"));
	assert_non_null(strstr(err, "at offset 5"));

	o = (struct ingest_multiline_opts){ .continuation = "^\\t[" };
	assert_null(ingest_multiline_new(&o, err, sizeof err));
	if (strncmp(err, "continuation: ", 14) != 0)
		print_error("got \"%s\"\n", err);
	assert_true(strncmp(err, "continuation: ", 14) == 0);
	assert_non_null(strstr(err, "at offset 4"));

	o = (struct ingest_multiline_opts){ .start = "a{2,1}" };
	assert_null(ingest_multiline_new(&o, err, sizeof err));
	assert_true(strncmp(err, "start: ", 7) == 0);

	o = (struct ingest_multiline_opts){ .start = "^a", .continuation = "^b" };
	assert_null(ingest_multiline_new(&o, err, sizeof err));
	assert_non_null(strstr(err, "exactly one"));

	o = (struct ingest_multiline_opts){ .max_lines = 3 };
	assert_null(ingest_multiline_new(&o, err, sizeof err));
	assert_non_null(strstr(err, "exactly one"));

	o = (struct ingest_multiline_opts){ .start = "^a", .timeout_us = -1 };
	assert_null(ingest_multiline_new(&o, err, sizeof err));
	assert_non_null(strstr(err, "timeout"));

	assert_null(ingest_multiline_new(NULL, err, sizeof err));
	/* No error buffer is fine. */
	o = (struct ingest_multiline_opts){ .start = ")" };
	assert_null(ingest_multiline_new(&o, NULL, 0));
	/* A short one is truncated, not overrun. */
	char small[8];
	assert_null(ingest_multiline_new(&o, small, sizeof small));
	assert_string_equal(small, "start: ");

	/* The empty regex is valid: with start, every line is a record. */
	o = (struct ingest_multiline_opts){ .start = "" };
	struct ingest_multiline *m = ingest_multiline_new(&o, err, sizeof err);
	assert_non_null(m);
	struct got g = { 0 };
	feed_text(m, "a\n b\n", 0, 0, &g);
	ingest_multiline_flush(m, got_add, &g);
	assert_int_equal(g.n, 2);
	got_free(&g);
	ingest_multiline_free(m);
	ingest_multiline_free(NULL);
}

/* A catastrophic user regex counts as "no match" within the match limit,
 * instead of hanging on a line. */
static void test_match_limit(void **state)
{
	struct ingest_multiline_opts o = { .continuation = "^(a+)+$" };
	struct ingest_multiline *m = new_ml(&o);
	struct got g = { 0 };
	char line[64];
	memset(line, 'a', sizeof line);
	line[sizeof line - 1] = 'b';
	ingest_multiline_feed(m, "head", 4, 0, got_add, &g);
	ingest_multiline_feed(m, line, sizeof line, 0, got_add, &g);
	ingest_multiline_feed(m, "aaaa", 4, 0, got_add, &g);
	ingest_multiline_flush(m, got_add, &g);
	assert_int_equal(g.n, 2);
	assert_rec(&g, 0, "head");
	assert_int_equal(g.len[1], sizeof line + 5);
	got_free(&g);
	ingest_multiline_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_python_traceback),
		cmocka_unit_test(test_empty_lines_inside),
		cmocka_unit_test(test_postgres_tab_continuation),
		cmocka_unit_test(test_postgres_detail_continuation),
		cmocka_unit_test(test_continuation_first),
		cmocka_unit_test(test_no_start_nothing_pending),
		cmocka_unit_test(test_flush),
		cmocka_unit_test(test_deadline),
		cmocka_unit_test(test_max_lines),
		cmocka_unit_test(test_max_bytes),
		cmocka_unit_test(test_double_buffer),
		cmocka_unit_test(test_crlf),
		cmocka_unit_test(test_binary_lines),
		cmocka_unit_test(test_bad_options),
		cmocka_unit_test(test_match_limit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
