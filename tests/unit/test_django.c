/*
 * test_django.c — the django (Python logging text) and gunicorn_access
 * parsers, on what a real Django 3.2 application under gunicorn 20.1 (Python
 * 3.11, Debian packages) wrote, and on synthetic tracebacks.
 *
 * tests/data/django/ (captured by tests/data/django/capture.sh):
 *   django.log            LOGGING format '%(asctime)s %(levelname)s %(name)s
 *                         %(process)d %(message)s' (the parser's default):
 *                         views that log, raise ValueError, raise a chained
 *                         RuntimeError ("During handling of ..."), a LookupError
 *                         "from" a ValueError ("The above exception was the
 *                         direct cause ..."), query a database that refuses the
 *                         connection (psycopg2.OperationalError whose message
 *                         spans two lines, re-raised as
 *                         django.db.utils.OperationalError), log a two-line
 *                         warning, log.exception() a ZeroDivisionError, raise
 *                         an exception with no message (a bare name), 404s;
 *   django_verbose.log    the same through '[%(asctime)s] %(levelname)-8s
 *                         %(name)s:%(lineno)d %(threadName)s
 *                         %(module)s.%(funcName)s %(message)s';
 *   gunicorn_error.log    gunicorn's own log: '[%(asctime)s] [%(process)d]
 *                         [%(levelname)s] %(message)s', datefmt
 *                         '%Y-%m-%d %H:%M:%S %z';
 *   gunicorn_access.log   gunicorn's default access log format.
 * Records are assembled with the parser's own default start rule.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <pcre2.h>

#include "common/kl.h"
#include "parsers/parsers.h"

#define ABSENT ((const char *)1)
#define VERBOSE_FMT                                                                   \
	"[%(asctime)s] %(levelname)-8s %(name)s:%(lineno)d %(threadName)s " \
	"%(module)s.%(funcName)s %(message)s"
#define GUNICORN_FMT "[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"

static struct parser *make(const char *type, const char *format, const char *datefmt)
{
	char err[256];
	struct parser_spec spec = { .name = "app", .type = type, .format = format,
				    .time_format = datefmt };
	struct parser *p = parser_new(&spec, err, sizeof err, NULL);
	if (!p)
		print_error("%s '%s': %s\n", type, format ? format : "(default)", err);
	assert_non_null(p);
	return p;
}

static void expect_str_(struct parser_event *ev, const char *name, const char *want, int line)
{
	int idx = parser_field_index(ev->parser, name, strlen(name));
	if (idx < 0) {
		print_error("line %d: no field '%s'\n", line, name);
		fail();
	}
	struct kl_str got = ev->raw[idx];
	if (want == ABSENT) {
		if (got.p) {
			print_error("line %d: %s = '%.*s', expected absent\n", line, name,
				    (int)got.len, got.p);
			fail();
		}
		return;
	}
	if (!got.p || got.len != strlen(want) || memcmp(got.p, want, got.len) != 0) {
		print_error("line %d: %s = '%.*s'%s, expected '%s'\n", line, name,
			    got.p ? (int)got.len : 0, got.p ? got.p : "", got.p ? "" : " (absent)",
			    want);
		fail();
	}
}
#define expect_str(ev, name, want) expect_str_(ev, name, want, __LINE__)

static void expect_prefix_(struct parser_event *ev, const char *name, const char *want, int line)
{
	int idx = parser_field_index(ev->parser, name, strlen(name));
	struct kl_str got = idx >= 0 ? ev->raw[idx] : (struct kl_str){ NULL, 0 };
	if (!got.p || got.len < strlen(want) || memcmp(got.p, want, strlen(want)) != 0) {
		print_error("line %d: %s = '%.*s'%s, expected it to start with '%s'\n", line, name,
			    got.p ? (int)got.len : 0, got.p ? got.p : "", got.p ? "" : " (absent)",
			    want);
		fail();
	}
}
#define expect_prefix(ev, name, want) expect_prefix_(ev, name, want, __LINE__)

static void expect_num_(struct parser_event *ev, const char *name, double want, int line)
{
	int idx = parser_field_index(ev->parser, name, strlen(name));
	double got = -12345;
	int rc = idx >= 0 ? parser_event_number(ev, (unsigned)idx, &got) : -99;
	if (rc != 0 || fabs(got - want) > 1e-9) {
		print_error("line %d: %s → rc %d value %.17g, expected %.17g\n", line, name, rc, got,
			    want);
		fail();
	}
}
#define expect_num(ev, name, want) expect_num_(ev, name, want, __LINE__)

struct records {
	char **r;
	size_t *len;
	size_t n, cap;
};

static void rec_push(struct records *rs, const char *p, size_t len)
{
	if (rs->n == rs->cap) {
		rs->cap = rs->cap ? rs->cap * 2 : 64;
		rs->r = realloc(rs->r, rs->cap * sizeof *rs->r);
		rs->len = realloc(rs->len, rs->cap * sizeof *rs->len);
		assert_non_null(rs->r);
		assert_non_null(rs->len);
	}
	rs->r[rs->n] = malloc(len ? len : 1); /* exact size: ASan sees overreads */
	assert_non_null(rs->r[rs->n]);
	memcpy(rs->r[rs->n], p, len);
	rs->len[rs->n++] = len;
}

/* The records of a data file (or of text, when file is NULL), assembled with
 * the parser's default rule, as ingest/multiline.c would. */
static void load(const char *file, const char *text, const struct parser *p, struct records *rs)
{
	const char *dir = getenv("KLAXON_TEST_DATA");
	char path[1024], *data = NULL;
	size_t len;
	struct parser_multiline ml = { 0 };
	pcre2_code *code = NULL;
	pcre2_match_data *md = NULL;
	struct kl_buf cur = { 0 };
	bool pending = false;

	memset(rs, 0, sizeof *rs);
	if (file) {
		snprintf(path, sizeof path, "%s/django/%s", dir ? dir : "tests/data", file);
		if (kl_read_file(path, 1 << 24, &data, &len) < 0) {
			print_error("cannot read %s\n", path);
			fail();
		}
	} else {
		data = kl_strndup(text, strlen(text));
		assert_non_null(data);
		len = strlen(text);
	}
	if (parser_default_multiline(p, &ml)) {
		int ec;
		PCRE2_SIZE eo;
		const char *re = ml.start ? ml.start : ml.continuation;
		code = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, 0, &ec, &eo, NULL);
		assert_non_null(code);
		md = pcre2_match_data_create(1, NULL);
	}
	for (size_t i = 0; i < len;) {
		const char *nl = memchr(data + i, '\n', len - i);
		size_t l = nl ? (size_t)(nl - (data + i)) : len - i;
		const char *line = data + i;
		bool join = false;
		i += l + 1;
		if (code) {
			bool m = pcre2_match(code, (PCRE2_SPTR)line, l, 0, 0, md, NULL) >= 0;
			join = ml.start ? !m : m;
		}
		if (pending && join) {
			assert_int_equal(kl_buf_append(&cur, "\n", 1), 0);
			assert_int_equal(kl_buf_append(&cur, line, l), 0);
			continue;
		}
		if (pending)
			rec_push(rs, cur.p, cur.len);
		kl_buf_reset(&cur);
		assert_int_equal(kl_buf_append(&cur, line, l), 0);
		pending = true;
	}
	if (pending)
		rec_push(rs, cur.p, cur.len);
	kl_buf_free(&cur);
	pcre2_match_data_free(md);
	pcre2_code_free(code);
	free(data);
}

static void records_free(struct records *rs)
{
	for (size_t i = 0; i < rs->n; i++)
		free(rs->r[i]);
	free(rs->r);
	free(rs->len);
}

static void parse_rec(struct parser *p, const struct records *rs, size_t i, struct parser_event *ev)
{
	assert_true(i < rs->n);
	parser_event_init(ev, p);
	if (parser_parse(p, rs->r[i], rs->len[i], 5, ev) != 0) {
		print_error("record %zu did not parse: '%.*s'\n", i, (int)rs->len[i], rs->r[i]);
		fail();
	}
}

static int parse_str(struct parser *p, const char *s, struct parser_event *ev)
{
	parser_event_init(ev, p);
	return parser_parse(p, s, strlen(s), 5, ev);
}

/* The exception lines of the recorded sample, in order. */
static void check_recorded(struct parser *p, const struct records *rs)
{
	struct parser_event ev;

	assert_int_equal(rs->n, 13);
	parse_rec(p, rs, 0, &ev);
	expect_str(&ev, "level", "INFO");
	expect_str(&ev, "logger", "debts.views");
	expect_str(&ev, "message", "listed 12 debts for user alice");
	expect_str(&ev, "exception", ABSENT);
	expect_str(&ev, "traceback", ABSENT);
	assert_int_equal(ev.time_us, 1795616313665000LL); /* 2026-11-25 14:18:33,665 as UTC */

	parse_rec(p, rs, 1, &ev);
	expect_str(&ev, "level", "ERROR");
	expect_str(&ev, "logger", "django.request");
	expect_str(&ev, "message", "Internal Server Error: /boom");
	expect_str(&ev, "exception", "ValueError");
	expect_str(&ev, "exception_message", "amount must be positive, got -3");
	expect_prefix(&ev, "traceback", "Traceback (most recent call last):\n  File ");

	/* During handling of the above exception, another exception occurred */
	parse_rec(p, rs, 2, &ev);
	expect_str(&ev, "message", "Internal Server Error: /chain");
	expect_str(&ev, "exception", "RuntimeError");
	expect_str(&ev, "exception_message", "could not price the debt");

	/* The above exception was the direct cause of the following exception */
	parse_rec(p, rs, 3, &ev);
	expect_str(&ev, "exception", "LookupError");
	expect_str(&ev, "exception_message", "bad debt id");

	/* psycopg2's two-line message, chained into Django's OperationalError */
	parse_rec(p, rs, 4, &ev);
	expect_str(&ev, "message", "Internal Server Error: /db");
	expect_str(&ev, "exception", "django.db.utils.OperationalError");
	expect_str(&ev, "exception_message",
		   "connection to server at \"127.0.0.1\", port 5999 failed: Connection refused\n"
		   "\tIs the server running on that host and accepting TCP/IP connections?");
	int tb = parser_field_index(p, "traceback", 9);
	const char tail[] = "\n\tIs the server running on that host and accepting TCP/IP connections?";
	assert_true(ev.raw[tb].len > strlen(tail));
	assert_memory_equal(ev.raw[tb].p + ev.raw[tb].len - strlen(tail), tail, strlen(tail));

	/* a two-line message, no traceback */
	parse_rec(p, rs, 5, &ev);
	expect_str(&ev, "level", "WARNING");
	expect_str(&ev, "message", "slow payment provider: 3.2s\nretrying with backup");
	expect_str(&ev, "exception", ABSENT);

	/* log.exception() */
	parse_rec(p, rs, 6, &ev);
	expect_str(&ev, "logger", "debts.views");
	expect_str(&ev, "message", "interest computation failed for debt 8812");
	expect_str(&ev, "exception", "ZeroDivisionError");
	expect_str(&ev, "exception_message", "division by zero");

	/* an exception without a message: "urls.PaymentError" */
	parse_rec(p, rs, 7, &ev);
	expect_str(&ev, "exception", "urls.PaymentError");
	expect_str(&ev, "exception_message", ABSENT);

	parse_rec(p, rs, 10, &ev);
	expect_str(&ev, "level", "WARNING");
	expect_str(&ev, "message", "Not Found: /missing");
	for (size_t i = 0; i < rs->n; i++)
		parse_rec(p, rs, i, &ev);
}

/* ---- tests -------------------------------------------------------------- */

static void test_default_format(void **state)
{
	(void)state;
	assert_true(parser_builtin_exists("django"));
	assert_true(parser_builtin_exists("gunicorn_access"));
	struct parser *p = make("django", NULL, NULL);
	static const char *const want[] = { "time",    "level",	    "logger",
					    "pid",     "message",   "exception",
					    "exception_message", "traceback" };
	assert_int_equal(parser_field_count(p), KL_ARRAY_LEN(want));
	for (size_t i = 0; i < KL_ARRAY_LEN(want); i++)
		assert_string_equal(parser_field_name(p, (unsigned)i), want[i]);
	assert_int_equal(parser_field_type(p, 0), PARSER_T_TIME);
	assert_int_equal(parser_field_type(p, 3), PARSER_T_INT);
	assert_int_equal(parser_field_type(p, 4), PARSER_T_STRING);

	struct parser_multiline ml;
	assert_true(parser_default_multiline(p, &ml));
	assert_null(ml.continuation);
	assert_string_equal(ml.start, "^\\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2}:\\d{2},\\d{3} ");

	struct records rs;
	load("django.log", NULL, p, &rs);
	check_recorded(p, &rs);
	struct parser_event ev;
	parse_rec(p, &rs, 0, &ev);
	expect_num(&ev, "pid", 4146);
	assert_int_equal(parser_stats(p)->unmatched, 0);
	records_free(&rs);
	parser_free(p);
}

static void test_verbose_format(void **state)
{
	(void)state;
	struct parser *p = make("django", VERBOSE_FMT, NULL);
	struct parser_multiline ml;
	assert_true(parser_default_multiline(p, &ml));
	assert_string_equal(ml.start, "^\\[\\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2}:\\d{2},\\d{3}\\] ");

	struct records rs;
	struct parser_event ev;
	load("django_verbose.log", NULL, p, &rs);
	check_recorded(p, &rs);
	parse_rec(p, &rs, 1, &ev);
	expect_str(&ev, "level", "ERROR"); /* "ERROR   " */
	expect_str(&ev, "logger", "django.request");
	expect_num(&ev, "lineno", 229);
	expect_str(&ev, "threadName", "MainThread");
	expect_str(&ev, "module", "log");
	expect_str(&ev, "funcName", "log_response");
	int li = parser_field_index(p, "lineno", 6);
	assert_int_equal(parser_field_type(p, (unsigned)li), PARSER_T_INT);
	assert_int_equal(parser_field_index(p, "pid", 3), -1);
	records_free(&rs);
	parser_free(p);
}

static void test_gunicorn_error_log(void **state)
{
	(void)state;
	struct parser *p = make("django", GUNICORN_FMT, "%Y-%m-%d %H:%M:%S %z");
	struct records rs;
	struct parser_event ev;

	load("gunicorn_error.log", NULL, p, &rs);
	assert_int_equal(rs.n, 7);
	parse_rec(p, &rs, 0, &ev);
	assert_int_equal(ev.time_us, 1795616311000000LL); /* [2026-11-25 14:18:31 +0000] */
	expect_num(&ev, "pid", 4144);
	expect_str(&ev, "level", "INFO");
	expect_str(&ev, "message", "Starting gunicorn 20.1.0");
	for (size_t i = 0; i < rs.n; i++)
		parse_rec(p, &rs, i, &ev);
	records_free(&rs);

	/* the zone of the datefmt is honoured */
	assert_int_equal(parse_str(p, "[2026-11-25 08:18:31 -0600] [7] [CRITICAL] WORKER TIMEOUT (pid:8)", &ev), 0);
	assert_int_equal(ev.time_us, 1795616311000000LL);
	expect_str(&ev, "level", "CRITICAL");
	/* a worker's traceback in gunicorn's log */
	load(NULL,
	     "[2026-11-25 14:18:31 +0000] [8] [ERROR] Exception in worker process\n"
	     "Traceback (most recent call last):\n"
	     "  File \"/usr/lib/python3/dist-packages/gunicorn/arbiter.py\", line 589, in spawn_worker\n"
	     "    worker.init_process()\n"
	     "ModuleNotFoundError: No module named 'debts'\n"
	     "[2026-11-25 14:18:31 +0000] [8] [INFO] Worker exiting (pid: 8)",
	     p, &rs);
	assert_int_equal(rs.n, 2);
	parse_rec(p, &rs, 0, &ev);
	expect_str(&ev, "message", "Exception in worker process");
	expect_str(&ev, "exception", "ModuleNotFoundError");
	expect_str(&ev, "exception_message", "No module named 'debts'");
	records_free(&rs);
	parser_free(p);
}

static void test_gunicorn_access(void **state)
{
	(void)state;
	struct parser *p = make("gunicorn_access", NULL, NULL);
	struct records rs;
	struct parser_event ev;
	struct parser_multiline ml;

	assert_false(parser_default_multiline(p, &ml));
	static const char *const want[] = { "remote_addr", "remote_user", "time",   "request",
					    "method",	   "path",	  "protocol", "status",
					    "bytes",	   "referer",	  "agent" };
	assert_int_equal(parser_field_count(p), KL_ARRAY_LEN(want));
	for (size_t i = 0; i < KL_ARRAY_LEN(want); i++)
		assert_string_equal(parser_field_name(p, (unsigned)i), want[i]);

	load("gunicorn_access.log", NULL, p, &rs);
	assert_int_equal(rs.n, 13);
	for (size_t i = 0; i < rs.n; i++)
		parse_rec(p, &rs, i, &ev);
	parse_rec(p, &rs, 1, &ev);
	expect_str(&ev, "remote_addr", "127.0.0.1");
	expect_str(&ev, "remote_user", ABSENT);
	assert_int_equal(ev.time_us, 1795616313000000LL);
	expect_str(&ev, "method", "GET");
	expect_str(&ev, "path", "/boom");
	expect_str(&ev, "protocol", "HTTP/1.1");
	expect_num(&ev, "status", 500);
	expect_num(&ev, "bytes", 145);
	expect_str(&ev, "referer", "https://debts.example.com/dashboard");
	expect_str(&ev, "agent", "Mozilla/5.0 (X11; Linux x86_64) \\\"quoted\\\" agent");
	parse_rec(p, &rs, 9, &ev);
	expect_str(&ev, "path", "/ok?page=2&q=car%20loan");
	parse_rec(p, &rs, 11, &ev);
	expect_str(&ev, "remote_user", "bob");
	expect_str(&ev, "method", "POST");
	expect_str(&ev, "agent", "curl/7.88.1");
	parse_rec(p, &rs, 12, &ev);
	expect_str(&ev, "protocol", "HTTP/1.0");
	/* gunicorn writes "-" for an unknown size */
	assert_int_equal(parse_str(p, "10.0.0.1 - - [14/Nov/2023:22:13:20 +0000] \"GET / HTTP/1.1\" 304 - \"-\" \"-\"", &ev), 0);
	int bi = parser_field_index(p, "bytes", 5);
	double v;
	assert_int_equal(parser_event_number(&ev, (unsigned)bi, &v), -ENOENT);
	records_free(&rs);
	parser_free(p);
}

static void test_tracebacks(void **state)
{
	(void)state;
	struct parser *p = make("django", NULL, NULL);
	struct parser_event ev;

	/* the example: the message of the final exception spans two lines */
	assert_int_equal(parse_str(p,
		"2023-11-14 22:13:20,123 ERROR django.request 7 Internal Server Error: /api/debts\n"
		"Traceback (most recent call last):\n"
		"  File \"/app/venv/lib/python3.11/site-packages/django/db/backends/base/base.py\", line 289, in ensure_connection\n"
		"    self.connect()\n"
		"psycopg2.OperationalError: connection to server at \"db\" (172.18.0.3), port 5432 failed: Connection refused\n"
		"\tIs the server running on that host and accepting TCP/IP connections?\n"
		"\n"
		"\n"
		"The above exception was the direct cause of the following exception:\n"
		"\n"
		"Traceback (most recent call last):\n"
		"  File \"/app/venv/lib/python3.11/site-packages/django/core/handlers/exception.py\", line 55, in inner\n"
		"    response = get_response(request)\n"
		"               ^^^^^^^^^^^^^^^^^^^^^\n"
		"django.db.utils.OperationalError: connection to server at \"db\" (172.18.0.3), port 5432 failed: Connection refused\n"
		"\tIs the server running on that host and accepting TCP/IP connections?\n", &ev), 0);
	assert_int_equal(ev.time_us, 1700000000123000LL);
	expect_str(&ev, "message", "Internal Server Error: /api/debts");
	expect_str(&ev, "exception", "django.db.utils.OperationalError");
	expect_str(&ev, "exception_message",
		   "connection to server at \"db\" (172.18.0.3), port 5432 failed: Connection refused\n"
		   "\tIs the server running on that host and accepting TCP/IP connections?");

	/* a SyntaxError: its caret lines are indented, the exception is not */
	assert_int_equal(parse_str(p,
		"2023-11-14 22:13:20,123 ERROR app 7 import failed\n"
		"Traceback (most recent call last):\n"
		"  File \"/app/x.py\", line 1\n"
		"    foo(\n"
		"       ^\n"
		"SyntaxError: '(' was never closed", &ev), 0);
	expect_str(&ev, "exception", "SyntaxError");
	expect_str(&ev, "exception_message", "'(' was never closed");

	/* a message with colons, CRLF line ends, a bare name with trailing blanks */
	assert_int_equal(parse_str(p,
		"2023-11-14 22:13:20,123 ERROR app 7 x\r\n"
		"Traceback (most recent call last):\r\n"
		"  File \"a.py\", line 1, in <module>\r\n"
		"KeyError: 'a: b'\r", &ev), 0);
	expect_str(&ev, "exception", "KeyError");
	expect_str(&ev, "exception_message", "'a: b'");
	assert_int_equal(parse_str(p,
		"2023-11-14 22:13:20,123 ERROR app 7 x\n"
		"Traceback (most recent call last):\n"
		"  File \"a.py\", line 1, in <module>\n"
		"KeyboardInterrupt  ", &ev), 0);
	expect_str(&ev, "exception", "KeyboardInterrupt");
	expect_str(&ev, "exception_message", ABSENT);

	/* cut short (max_lines): frames and no exception line */
	assert_int_equal(parse_str(p,
		"2023-11-14 22:13:20,123 ERROR app 7 x\n"
		"Traceback (most recent call last):\n"
		"  File \"a.py\", line 1, in <module>", &ev), 0);
	expect_str(&ev, "message", "x");
	expect_str(&ev, "exception", ABSENT);
	expect_prefix(&ev, "traceback", "Traceback");

	/* "Traceback" inside a line is not a traceback; an exception-like
	 * line without a traceback is not an exception */
	assert_int_equal(parse_str(p,
		"2023-11-14 22:13:20,123 WARNING app 7 saw Traceback (most recent call last): in a line\n"
		"ValueError: not after a traceback", &ev), 0);
	expect_str(&ev, "exception", ABSENT);
	expect_str(&ev, "message", "saw Traceback (most recent call last): in a line\nValueError: not after a traceback");

	/* a line that is not an exception after the frames */
	assert_int_equal(parse_str(p,
		"2023-11-14 22:13:20,123 ERROR app 7 x\n"
		"Traceback (most recent call last):\n"
		"  File \"a.py\", line 1\n"
		"--- not an exception ---", &ev), 0);
	expect_str(&ev, "exception", ABSENT);

	/* an exception group is not read */
	assert_int_equal(parse_str(p,
		"2023-11-14 22:13:20,123 ERROR app 7 x\n"
		"  + Exception Group Traceback (most recent call last):\n"
		"  | ExceptionGroup: eg (1 sub-exception)", &ev), 0);
	expect_str(&ev, "exception", ABSENT);

	/* records that are not this format */
	uint64_t um = parser_stats(p)->unmatched;
	assert_int_equal(parse_str(p, "Traceback (most recent call last):", &ev), -EINVAL);
	assert_int_equal(parse_str(p, "2023-11-14 22:13:20 ERROR app 7 no millis", &ev), -EINVAL);
	assert_int_equal(parse_str(p, "2023-11-14 22:13:20,123 error app 7 lower-case level", &ev), -EINVAL);
	assert_int_equal(parse_str(p, "", &ev), -EINVAL);
	assert_int_equal(parser_stats(p)->unmatched, um + 4);
	/* an impossible date is a bad time */
	uint64_t bt = parser_stats(p)->bad_time;
	assert_int_equal(parse_str(p, "2023-02-30 22:13:20,123 ERROR app 7 x", &ev), -EINVAL);
	assert_int_equal(parser_stats(p)->bad_time, bt + 1);
	/* NUL bytes and invalid UTF-8 are bytes */
	static const char bin[] = "2023-11-14 22:13:20,123 INFO app 7 a\0b\xff\n\xc3";
	parser_event_init(&ev, p);
	assert_int_equal(parser_parse(p, bin, sizeof bin - 1, 5, &ev), 0);
	int mi = parser_field_index(p, "message", 7);
	assert_int_equal(ev.raw[mi].len, 6); /* "a\0b\xff\n\xc3" */
	parser_free(p);
}

static void test_format_variants(void **state)
{
	(void)state;
	struct parser *p;
	struct parser_event ev;

	/* the message in the middle; the traceback after the whole line */
	p = make("django", "%(levelname)s [%(name)s] %(message)s (%(filename)s:%(lineno)d)", NULL);
	assert_int_equal(parse_str(p, "ERROR [app.views] it broke (views.py:12)\n"
				      "Traceback (most recent call last):\n"
				      "  File \"views.py\", line 12, in get\n"
				      "RuntimeError: boom", &ev), 0);
	expect_str(&ev, "message", "it broke");
	expect_str(&ev, "filename", "views.py");
	expect_num(&ev, "lineno", 12);
	expect_str(&ev, "exception", "RuntimeError");
	assert_int_equal(ev.time_us, 5); /* no asctime: the read time */
	struct parser_multiline ml;
	assert_true(parser_default_multiline(p, &ml));
	assert_string_equal(ml.start, "^[A-Z][A-Z0-9_]{0,31}+ \\[");
	parser_free(p);

	/* unknown keys, one that is no group name, a repeated key, %%, padding */
	p = make("django", "%(asctime)s %(request_id)s %(my-key)s %(levelname)8s 100%% %(name)s %(name)s: %(message)s", NULL);
	assert_int_equal(parse_str(p, "2023-11-14 22:13:20,123 req-42 k    ERROR 100% a.b a.b: hi", &ev), 0);
	expect_str(&ev, "request_id", "req-42");
	expect_str(&ev, "level", "ERROR");
	expect_str(&ev, "logger", "a.b");
	expect_str(&ev, "message", "hi");
	assert_int_equal(parser_field_index(p, "my-key", 6), -1);
	parser_free(p);

	/* created as the time (epoch seconds), threadName with blanks, msecs */
	p = make("django", "%(created)f %(threadName)s|%(msecs)03d %(message)s", NULL);
	assert_int_equal(parse_str(p, "1700000000.250000 Thread-1 (process_request_thread)|250 ok", &ev), 0);
	assert_int_equal(ev.time_us, 1700000000250000LL);
	expect_str(&ev, "threadName", "Thread-1 (process_request_thread)");
	expect_num(&ev, "msecs", 250);
	parser_free(p);

	/* a datefmt without a zone: read as UTC */
	p = make("django", "%(asctime)s %(levelname)s %(message)s", "%d/%b/%Y %H:%M:%S");
	assert_int_equal(parse_str(p, "14/Nov/2023 22:13:20 INFO x", &ev), 0);
	assert_int_equal(ev.time_us, 1700000000000000LL);
	parser_free(p);
}

static void test_errors(void **state)
{
	(void)state;
	char err[256];
	static const struct {
		const char *format, *datefmt, *want;
	} cases[] = {
		{ "%(levelname", NULL, "format: '%(' at offset 0 has no closing ')'" },
		{ "%s %(message)s", NULL, "format: '%' at offset 0 must be followed by (key)" },
		{ "x %(message)", NULL, "format: placeholder %(message) at offset 2 needs a conversion" },
		{ "", NULL, "format: empty" },
		{ "%(levelname)s %(message)s", "%H:%M", "time.format: the format has no %(asctime)s" },
		{ NULL, "%Q", "time.format: unknown conversion %Q" },
		{ NULL, "%H:%M:%S", "time.format: needs a year" },
	};
	for (size_t i = 0; i < KL_ARRAY_LEN(cases); i++) {
		struct parser_spec spec = { .name = "x", .type = "django", .format = cases[i].format,
					    .time_format = cases[i].datefmt };
		struct parser *p = parser_new(&spec, err, sizeof err, NULL);
		if (p || strncmp(err, cases[i].want, strlen(cases[i].want)) != 0) {
			print_error("case %zu: got %s '%s', expected '%s'\n", i, p ? "a parser" : "",
				    err, cases[i].want);
			fail();
		}
	}
	struct parser_spec spec = { .name = "x", .type = "nginx_timed", .format = "%(message)s" };
	assert_null(parser_new(&spec, err, sizeof err, NULL));
	assert_non_null(strstr(err, "format: only the django parser"));
	spec = (struct parser_spec){ .name = "x", .type = "django", .log_line_prefix = "%m" };
	assert_null(parser_new(&spec, err, sizeof err, NULL));
	assert_non_null(strstr(err, "log_line_prefix: only the postgres parser"));
	spec = (struct parser_spec){ .name = "x", .type = "django", .time_field = "time" };
	assert_null(parser_new(&spec, err, sizeof err, NULL));
	assert_non_null(strstr(err, "remove 'types' and 'time.field'"));
	spec = (struct parser_spec){ .name = "x", .type = "gunicorn_access", .time_format = "%Y" };
	assert_null(parser_new(&spec, err, sizeof err, NULL));
	assert_non_null(strstr(err, "has fixed field types and time"));
}

static void test_event_json(void **state)
{
	(void)state;
	struct parser *p = make("django", NULL, NULL);
	struct records rs;
	struct parser_event ev;
	struct kl_buf out = { 0 };

	load("django.log", NULL, p, &rs);
	for (size_t i = 0; i < rs.n; i++) {
		parse_rec(p, &rs, i, &ev);
		kl_buf_reset(&out);
		assert_int_equal(parser_event_json(&ev, "app", &out), 0);
		json_error_t jerr;
		json_t *j = json_loadb(out.p, out.len, 0, &jerr);
		if (!j)
			print_error("%s: %.*s\n", jerr.text, (int)out.len, out.p);
		assert_non_null(j);
		json_t *f = json_object_get(j, "fields");
		assert_true(json_is_integer(json_object_get(f, "pid")));
		if (i == 4)
			assert_string_equal(json_string_value(json_object_get(f, "exception")),
					    "django.db.utils.OperationalError");
		json_decref(j);
	}
	kl_buf_free(&out);
	records_free(&rs);
	parser_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_default_format),
		cmocka_unit_test(test_verbose_format),
		cmocka_unit_test(test_gunicorn_error_log),
		cmocka_unit_test(test_gunicorn_access),
		cmocka_unit_test(test_tracebacks),
		cmocka_unit_test(test_format_variants),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_event_json),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
