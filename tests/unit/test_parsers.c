/*
 * test_parsers.c — the parser stage: built-in nginx formats on lines a real
 * nginx (1.22, Debian) wrote, regex parsers, field types, numbers, errors,
 * stats, and the event's JSON (checked with jansson).
 *
 * The REAL_* lines below were written by nginx with
 *   log_format timed '$remote_addr - $remote_user [$time_local] "$request" '
 *     '$status $body_bytes_sent "$http_referer" "$http_user_agent" '
 *     'rt=$request_time urt="$upstream_response_time"';
 * driven by curl, openssl s_client (TLS to the HTTP port) and raw sockets
 * (bare words, HTTP/0.9, truncated and malformed request lines).
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

#include "parsers/parsers.h"

#define S 1000000LL
#define T_REAL 1795613242LL /* 25/Nov/2026:13:27:22 +0000 */
#define ABSENT ((const char *)1)

static struct parser *builtin(const char *type)
{
	char err[256];
	struct parser_spec spec = { .name = "nginx", .type = type };
	struct parser *p = parser_new(&spec, err, sizeof err, NULL);
	if (!p)
		print_error("%s: %s\n", type, err);
	assert_non_null(p);
	return p;
}

static void expect_str_(struct parser_event *ev, const char *name, const char *want, int line)
{
	const struct parser *p = ev->parser;
	int idx = parser_field_index(p, name, strlen(name));
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

/* want_rc 0: expect value want; otherwise expect that error. */
static void expect_num_(struct parser_event *ev, const char *name, int want_rc, double want,
			int line)
{
	int idx = parser_field_index(ev->parser, name, strlen(name));
	double got = -12345;
	if (idx < 0) {
		print_error("line %d: no field '%s'\n", line, name);
		fail();
	}
	int rc = parser_event_number(ev, (unsigned)idx, &got);
	if (rc != want_rc || (rc == 0 && fabs(got - want) > 1e-9 * fmax(1, fabs(want)))) {
		print_error("line %d: %s → rc %d value %.17g, expected rc %d value %.17g\n", line,
			    name, rc, got, want_rc, want);
		fail();
	}
}
#define expect_num(ev, name, want) expect_num_(ev, name, 0, want, __LINE__)
#define expect_num_err(ev, name, rc) expect_num_(ev, name, rc, 0, __LINE__)

static int parse_line(struct parser *p, const char *line, struct parser_event *ev)
{
	parser_event_init(ev, p);
	return parser_parse(p, line, strlen(line), 7 * S, ev);
}

/* ------------------------------------------------------------------------- */

static void test_builtin_names(void **state)
{
	(void)state;
	assert_true(parser_builtin_exists("nginx_combined"));
	assert_true(parser_builtin_exists("nginx_timed"));
	assert_false(parser_builtin_exists("ngnix"));
	assert_false(parser_builtin_exists("regex"));
	assert_false(parser_builtin_exists(NULL));
	const char *const *n = parser_builtin_names();
	size_t count = 0;
	bool comb = false, timed = false;
	for (; n[count]; count++) {
		comb |= strcmp(n[count], "nginx_combined") == 0;
		timed |= strcmp(n[count], "nginx_timed") == 0;
	}
	assert_true(comb && timed);
}

static void test_builtin_fields(void **state)
{
	(void)state;
	static const char *const want[] = {
		"remote_addr", "remote_user", "time",	"request", "method",
		"path",	       "protocol",    "status", "bytes",   "referer",
		"agent",       "request_time", "upstream_response_time",
	};
	struct parser *t = builtin("nginx_timed");
	struct parser *c = builtin("nginx_combined");
	assert_string_equal(parser_name(t), "nginx");
	assert_int_equal(parser_field_count(t), 13);
	assert_int_equal(parser_field_count(c), 11);
	for (unsigned i = 0; i < 13; i++) {
		assert_string_equal(parser_field_name(t, i), want[i]);
		if (i < 11)
			assert_string_equal(parser_field_name(c, i), want[i]);
		assert_int_equal(parser_field_index(t, want[i], strlen(want[i])), i);
	}
	assert_null(parser_field_name(t, 13));
	assert_int_equal(parser_field_index(t, "nope", 4), -1);
	assert_int_equal(parser_field_index(t, "status_x", 6), 7); /* by length */
	assert_int_equal(parser_field_type(t, 2), PARSER_T_TIME);
	assert_int_equal(parser_field_type(t, 7), PARSER_T_INT);
	assert_int_equal(parser_field_type(t, 8), PARSER_T_INT);
	assert_int_equal(parser_field_type(t, 11), PARSER_T_SECONDS);
	assert_int_equal(parser_field_type(t, 12), PARSER_T_SECONDS);
	assert_int_equal(parser_field_type(t, 4), PARSER_T_STRING);
	parser_free(t);
	parser_free(c);
}

static void test_type_names(void **state)
{
	(void)state;
	static const char *const names[] = { "string", "int", "float", "seconds", "ms" };
	for (size_t i = 0; i < 5; i++) {
		enum parser_type t;
		assert_int_equal(parser_type_from_name(names[i], &t), 0);
		assert_string_equal(parser_type_name(t), names[i]);
	}
	enum parser_type t = PARSER_T_INT;
	assert_int_equal(parser_type_from_name("integer", &t), -EINVAL);
	assert_int_equal(parser_type_from_name("time", &t), -EINVAL);
	assert_int_equal(parser_type_from_name(NULL, &t), -EINVAL);
	assert_int_equal(t, PARSER_T_INT); /* untouched on failure */
	assert_string_equal(parser_type_name(PARSER_T_TIME), "time");
	assert_true(parser_type_is_numeric(PARSER_T_MS));
	assert_false(parser_type_is_numeric(PARSER_T_TIME));
}

/* ------------------------------------------------------------------------- */

struct real {
	const char *line;
	const char *addr, *user, *request, *method, *path, *protocol;
	int status, bytes;
	const char *referer, *agent;
	double urt; /* < 0: absent */
	int64_t t;  /* seconds after T_REAL */
};

static const struct real reals[] = {
	{ "127.0.0.1 - - [25/Nov/2026:13:27:22 +0000] \"GET / HTTP/1.1\" 200 6 \"-\" \"curl/7.88.1\" rt=0.000 urt=\"-\"",
	  "127.0.0.1", ABSENT, "GET / HTTP/1.1", "GET", "/", "HTTP/1.1", 200, 6, "-",
	  "curl/7.88.1", -1, 0 },
	/* query string; '"' and '\' escaped by nginx as \x22 and \x5C */
	{ "127.0.0.1 - - [25/Nov/2026:13:27:22 +0000] \"GET /a?b=1&c=%22x%22 HTTP/1.1\" 404 153 \"https://ex.com/p?q=\\x221\\x22\" \"Mozilla/5.0 (X11; Linux x86_64) \\x22quoted\\x22 \\x5C back\" rt=0.000 urt=\"-\"",
	  "127.0.0.1", ABSENT, "GET /a?b=1&c=%22x%22 HTTP/1.1", "GET", "/a?b=1&c=%22x%22",
	  "HTTP/1.1", 404, 153, "https://ex.com/p?q=\\x221\\x22",
	  "Mozilla/5.0 (X11; Linux x86_64) \\x22quoted\\x22 \\x5C back", -1, 0 },
	{ "127.0.0.1 - - [25/Nov/2026:13:27:22 +0000] \"GET /err HTTP/1.1\" 503 197 \"-\" \"curl/7.88.1\" rt=0.000 urt=\"-\"",
	  "127.0.0.1", ABSENT, "GET /err HTTP/1.1", "GET", "/err", "HTTP/1.1", 503, 197, "-",
	  "curl/7.88.1", -1, 0 },
	{ "127.0.0.1 - - [25/Nov/2026:13:27:22 +0000] \"GET /up/x HTTP/1.1\" 200 3 \"-\" \"curl/7.88.1\" rt=0.000 urt=\"0.001\"",
	  "127.0.0.1", ABSENT, "GET /up/x HTTP/1.1", "GET", "/up/x", "HTTP/1.1", 200, 3, "-",
	  "curl/7.88.1", 0.001, 0 },
	/* two upstreams: comma list */
	{ "127.0.0.1 - - [25/Nov/2026:13:27:22 +0000] \"GET /two/b HTTP/1.1\" 200 3 \"-\" \"curl/7.88.1\" rt=0.000 urt=\"0.001, 0.000\"",
	  "127.0.0.1", ABSENT, "GET /two/b HTTP/1.1", "GET", "/two/b", "HTTP/1.1", 200, 3, "-",
	  "curl/7.88.1", 0.001, 0 },
	{ "127.0.0.1 - - [25/Nov/2026:13:27:22 +0000] \"GET /dead/x HTTP/1.1\" 502 157 \"-\" \"curl/7.88.1\" rt=0.000 urt=\"0.001\"",
	  "127.0.0.1", ABSENT, "GET /dead/x HTTP/1.1", "GET", "/dead/x", "HTTP/1.1", 502, 157,
	  "-", "curl/7.88.1", 0.001, 0 },
	/* IPv6 client */
	{ "::1 - - [25/Nov/2026:13:27:22 +0000] \"GET /v6 HTTP/1.1\" 404 153 \"-\" \"curl/7.88.1\" rt=0.000 urt=\"-\"",
	  "::1", ABSENT, "GET /v6 HTTP/1.1", "GET", "/v6", "HTTP/1.1", 404, 153, "-",
	  "curl/7.88.1", -1, 0 },
	/* basic auth users, one with blanks and brackets (nginx does not escape them) */
	{ "127.0.0.1 - alice [25/Nov/2026:13:27:22 +0000] \"GET /auth HTTP/1.1\" 404 153 \"-\" \"curl/7.88.1\" rt=0.000 urt=\"-\"",
	  "127.0.0.1", "alice", "GET /auth HTTP/1.1", "GET", "/auth", "HTTP/1.1", 404, 153,
	  "-", "curl/7.88.1", -1, 0 },
	{ "127.0.0.1 - bob smith [x] [25/Nov/2026:13:27:22 +0000] \"GET /auth2 HTTP/1.1\" 404 153 \"-\" \"curl/7.88.1\" rt=0.000 urt=\"-\"",
	  "127.0.0.1", "bob smith [x]", "GET /auth2 HTTP/1.1", "GET", "/auth2", "HTTP/1.1",
	  404, 153, "-", "curl/7.88.1", -1, 0 },
	{ "127.0.0.1 - ev\\x22il] \\x22x [y [25/Nov/2026:13:27:28 +0000] \"GET / HTTP/1.1\" 200 6 \"-\" \"-\" rt=0.000 urt=\"-\"",
	  "127.0.0.1", "ev\\x22il] \\x22x [y", "GET / HTTP/1.1", "GET", "/", "HTTP/1.1", 200,
	  6, "-", "-", -1, 6 },
	{ "127.0.0.1 - - [25/Nov/2026:13:27:22 +0000] \"POST /post HTTP/1.1\" 404 153 \"-\" \"curl/7.88.1\" rt=0.000 urt=\"-\"",
	  "127.0.0.1", ABSENT, "POST /post HTTP/1.1", "POST", "/post", "HTTP/1.1", 404, 153,
	  "-", "curl/7.88.1", -1, 0 },
	/* control and non-ASCII bytes in the agent, escaped by nginx */
	{ "127.0.0.1 - - [25/Nov/2026:13:27:22 +0000] \"GET /utf HTTP/1.1\" 404 153 \"-\" \"tab\\x09here \\xC3\\xA9 \\xFF\" rt=0.000 urt=\"-\"",
	  "127.0.0.1", ABSENT, "GET /utf HTTP/1.1", "GET", "/utf", "HTTP/1.1", 404, 153, "-",
	  "tab\\x09here \\xC3\\xA9 \\xFF", -1, 0 },
	/* a TLS ClientHello sent to the HTTP port */
	{ "127.0.0.1 - - [25/Nov/2026:13:27:22 +0000] \"\\x16\\x03\\x01\\x01$\\x01\\x00\\x0"
	  "1 \\x03\\x03\\xE7\\xF4M\\xFE}*Q\\xB9\\x1A\\xB8w\\x95\\xB5\\xA6\\xAB\\xF3}c#|\\xB"
	  "9\\xBEOGJ\\xE7 \\xC0\\xEC\\xE2\\x98\\x84 \\xE1\\x19\\xDEg\\xA0UH~\\xFE\\xEE\\xD8"
	  "wi\\x04\\xEC#\\xE0\\xC4\\xD7\\x81\\x845\\xF7i\\xE7\\x19\\xD4R\\xEBe\\x98&\\x00>\\x"
	  "13\\x02\\x13\\x03\\x13\\x01\\xC0,\\xC00\\x00\\x9F\\xCC\\xA9\\xCC\\xA8\\xCC\\xAA\\x"
	  "C0+\\xC0/\\x00\\x9E\\xC0$\\xC0(\\x00k\\xC0#\\xC0'\\x00g\\xC0\" 400 157 \"-\" \"-"
	  "\" rt=0.000 urt=\"-\"",
	  "127.0.0.1", ABSENT, NULL, ABSENT, ABSENT, ABSENT, 400, 157, "-", "-", -1, 0 },
	/* a bare word */
	{ "127.0.0.1 - - [25/Nov/2026:13:27:23 +0000] \"GARBAGE\" 400 157 \"-\" \"-\" rt=0.000 urt=\"-\"",
	  "127.0.0.1", ABSENT, "GARBAGE", ABSENT, ABSENT, ABSENT, 400, 157, "-", "-", -1, 1 },
	/* HTTP/0.9: no protocol */
	{ "127.0.0.1 - - [25/Nov/2026:13:27:23 +0000] \"GET /path\" 404 153 \"-\" \"-\" rt=0.000 urt=\"-\"",
	  "127.0.0.1", ABSENT, "GET /path", "GET", "/path", ABSENT, 404, 153, "-", "-", -1, 1 },
	/* rejected by nginx: lowercase method, extra token, truncated protocol */
	{ "127.0.0.1 - - [25/Nov/2026:13:27:23 +0000] \"get / HTTP/1.1\" 400 157 \"-\" \"-\" rt=0.000 urt=\"-\"",
	  "127.0.0.1", ABSENT, "get / HTTP/1.1", ABSENT, ABSENT, ABSENT, 400, 157, "-", "-",
	  -1, 1 },
	{ "127.0.0.1 - - [25/Nov/2026:13:27:24 +0000] \"GET / HTTP/1.1 extra\" 400 157 \"-\" \"-\" rt=0.000 urt=\"-\"",
	  "127.0.0.1", ABSENT, "GET / HTTP/1.1 extra", ABSENT, ABSENT, ABSENT, 400, 157, "-",
	  "-", -1, 2 },
	{ "127.0.0.1 - - [25/Nov/2026:13:27:25 +0000] \"GET /x HTTP/1.\" 400 0 \"-\" \"-\" rt=1.001 urt=\"-\"",
	  "127.0.0.1", ABSENT, "GET /x HTTP/1.", ABSENT, ABSENT, ABSENT, 400, 0, "-", "-", -1,
	  3 },
	/* '"' in the path, escaped */
	{ "127.0.0.1 - - [25/Nov/2026:13:27:23 +0000] \"GET /a\\x22b HTTP/1.1\" 404 153 \"-\" \"-\" rt=0.000 urt=\"-\"",
	  "127.0.0.1", ABSENT, "GET /a\\x22b HTTP/1.1", "GET", "/a\\x22b", "HTTP/1.1", 404,
	  153, "-", "-", -1, 1 },
	{ "127.0.0.1 - - [25/Nov/2026:13:27:25 +0000] \"GET /\\xC3\\xA9\\x01 HTTP/1.1\" 400 157 \"-\" \"-\" rt=0.000 urt=\"-\"",
	  "127.0.0.1", ABSENT, "GET /\\xC3\\xA9\\x01 HTTP/1.1", "GET", "/\\xC3\\xA9\\x01",
	  "HTTP/1.1", 400, 157, "-", "-", -1, 3 },
	/* an empty request line (nginx 1.22 writes ""; others "-") */
	{ "127.0.0.1 - - [25/Nov/2026:13:27:26 +0000] \"\" 400 0 \"-\" \"-\" rt=1.001 urt=\"-\"",
	  "127.0.0.1", ABSENT, "", ABSENT, ABSENT, ABSENT, 400, 0, "-", "-", -1, 4 },
	{ "127.0.0.1 - - [25/Nov/2026:13:27:26 +0000] \"-\" 400 0 \"-\" \"-\" rt=0.000 urt=\"-\"",
	  "127.0.0.1", ABSENT, "-", ABSENT, ABSENT, ABSENT, 400, 0, "-", "-", -1, 4 },
	/* HTTP/2 preface sent in clear */
	{ "127.0.0.1 - - [25/Nov/2026:13:27:27 +0000] \"PRI * HTTP/2.0\" 400 157 \"-\" \"-\" rt=0.000 urt=\"-\"",
	  "127.0.0.1", ABSENT, "PRI * HTTP/2.0", "PRI", "*", "HTTP/2.0", 400, 157, "-", "-",
	  -1, 5 },
	/* internal redirect to a second upstream: colon list */
	{ "127.0.0.1 - - [25/Nov/2026:13:27:37 +0000] \"GET /redir/z HTTP/1.1\" 200 3 \"-\" \"curl/7.88.1\" rt=0.000 urt=\"0.001 : 0.000\"",
	  "127.0.0.1", ABSENT, "GET /redir/z HTTP/1.1", "GET", "/redir/z", "HTTP/1.1", 200, 3,
	  "-", "curl/7.88.1", 0.001, 15 },
	/* escape=json writes \" (tolerated) */
	{ "10.0.0.1 - - [25/Nov/2026:13:27:22 +0000] \"GET /q?x=\\\"y\\\" HTTP/1.1\" 200 6 \"-\" \"say \\\"hi\\\"\" rt=0.000 urt=\"-\"",
	  "10.0.0.1", ABSENT, "GET /q?x=\\\"y\\\" HTTP/1.1", "GET", "/q?x=\\\"y\\\"", "HTTP/1.1",
	  200, 6, "-", "say \\\"hi\\\"", -1, 0 },
};

static void check_real(struct parser *p, const struct real *r, bool timed)
{
	struct parser_event ev;
	int rc = parse_line(p, r->line, &ev);
	if (rc != 0) {
		print_error("did not parse (%d): %s\n", rc, r->line);
		fail();
	}
	expect_str(&ev, "remote_addr", r->addr);
	expect_str(&ev, "remote_user", r->user);
	if (r->request)
		expect_str(&ev, "request", r->request);
	else
		assert_non_null(ev.raw[parser_field_index(p, "request", 7)].p);
	expect_str(&ev, "method", r->method);
	expect_str(&ev, "path", r->path);
	expect_str(&ev, "protocol", r->protocol);
	expect_str(&ev, "referer", r->referer);
	expect_str(&ev, "agent", r->agent);
	expect_num(&ev, "status", r->status);
	expect_num(&ev, "bytes", r->bytes);
	assert_int_equal(ev.time_us, (T_REAL + r->t) * S);
	assert_int_equal(ev.read_us, 7 * S);
	assert_ptr_equal(ev.parser, p);
	if (timed) {
		assert_non_null(ev.raw[parser_field_index(p, "request_time", 12)].p);
		if (r->urt < 0)
			expect_num_err(&ev, "upstream_response_time", -ENOENT);
		else
			expect_num(&ev, "upstream_response_time", r->urt);
	}
}

static void test_nginx_real_lines(void **state)
{
	(void)state;
	struct parser *t = builtin("nginx_timed");
	struct parser *c = builtin("nginx_combined");
	size_t n = sizeof reals / sizeof reals[0];
	for (size_t i = 0; i < n; i++) {
		check_real(t, &reals[i], true);
		/* the combined format reads the same lines, ignoring the suffix */
		check_real(c, &reals[i], false);
	}
	assert_int_equal(parser_stats(t)->parsed, n);
	assert_int_equal(parser_stats(t)->unmatched, 0);
	assert_int_equal(parser_stats(t)->bad_time, 0);
	assert_int_equal(parser_stats(c)->parsed, n);
	parser_free(t);
	parser_free(c);
}

static void test_nginx_long_request(void **state)
{
	(void)state;
	/* nginx logged an 8 KB request line (client_header_buffer_size) whole */
	struct kl_buf b = { 0 };
	assert_int_equal(kl_buf_append_str(&b, "127.0.0.1 - - [25/Nov/2026:13:27:28 +0000] \"GET /"), 0);
	for (int i = 0; i < 8200; i++)
		assert_int_equal(kl_buf_append(&b, "A", 1), 0);
	assert_int_equal(kl_buf_append_str(&b, " HTTP/1.1\" 414 0 \"-\" \"-\" rt=0.000 urt=\"-\""), 0);
	struct parser *t = builtin("nginx_timed");
	struct parser_event ev;
	parser_event_init(&ev, t);
	assert_int_equal(parser_parse(t, b.p, b.len, 0, &ev), 0);
	int path = parser_field_index(t, "path", 4);
	assert_int_equal(ev.raw[path].len, 8201);
	expect_str(&ev, "protocol", "HTTP/1.1");
	expect_num(&ev, "status", 414);
	parser_free(t);
	kl_buf_free(&b);
}

static void test_nginx_durations(void **state)
{
	(void)state;
	static const struct {
		const char *rt, *urt;
		int rt_rc;
		double rtv;
		int urt_rc;
		double urtv;
	} cases[] = {
		{ "0.412", "0.410", 0, 0.412, 0, 0.410 },
		{ "12.000", "0.003, 0.120", 0, 12, 0, 0.123 },
		{ "0.130", "0.003 : 0.120", 0, 0.13, 0, 0.123 },
		{ "0.700", "0.003, 0.120 : 0.500", 0, 0.7, 0, 0.623 },
		{ "0.010", "-", 0, 0.01, -ENOENT, 0 },
		{ "0.010", "0.003, -", 0, 0.01, 0, 0.003 },
		{ "0.010", "- : 0.004", 0, 0.01, 0, 0.004 },
		{ "0.010", "-, -", 0, 0.01, -ENOENT, 0 },
		{ "0.010", "", 0, 0.01, -ENOENT, 0 },
		{ "-", "0.003,", -ENOENT, 0, -EINVAL, 0 },
		{ "", "abc", -ENOENT, 0, -EINVAL, 0 },
		{ "1e-3", "0.003 0.004", 0, 0.001, -EINVAL, 0 },
	};
	struct parser *p = builtin("nginx_timed");
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char line[512];
		snprintf(line, sizeof line,
			 "10.1.2.3 - - [14/Nov/2023:22:13:20 +0000] \"GET /api/debts HTTP/1.1\" 503 0 \"-\" \"curl/8.0\" rt=%s urt=\"%s\"",
			 cases[i].rt, cases[i].urt);
		struct parser_event ev;
		if (parse_line(p, line, &ev) != 0) {
			print_error("did not parse: %s\n", line);
			fail();
		}
		assert_int_equal(ev.time_us, 1700000000 * S);
		expect_num_(&ev, "request_time", cases[i].rt_rc, cases[i].rtv, __LINE__);
		expect_num_(&ev, "upstream_response_time", cases[i].urt_rc, cases[i].urtv, __LINE__);
	}
	parser_free(p);
}

static void test_timed_parser_on_combined_line(void **state)
{
	(void)state;
	/* a line written before the log_format gained the rt= suffix */
	struct parser *p = builtin("nginx_timed");
	struct parser_event ev;
	assert_int_equal(parse_line(p, "10.1.2.3 - - [14/Nov/2023:22:13:20 +0000] \"GET / HTTP/1.1\" 200 612 \"-\" \"Mozilla/5.0\"", &ev), 0);
	expect_num(&ev, "status", 200);
	expect_str(&ev, "request_time", ABSENT);
	expect_num_err(&ev, "request_time", -ENOENT);
	expect_num_err(&ev, "upstream_response_time", -ENOENT);
	parser_free(p);
}

static void test_nginx_unmatched_and_bad_time(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"",
		"hello world",
		"10.1.2.3 - - [14/Nov/2023:22:13:20 +0000] \"GET / HTTP/1.1\" 200 612 \"-\" \"Mozi",
		"10.1.2.3 - - [14/Nov/2023:22:13:20 +0000] \"GET / HTTP/1.1\" 200",
		"10.1.2.3 - - [14/Nov/2023:22:13:20 +0000] \"GET / HTTP/1.1\" abc 612 \"-\" \"-\"",
		"10.1.2.3 - - [14/Nov/2023:22:13:20] \"GET / HTTP/1.1\" 200 612 \"-\" \"-\"",
		"10.1.2.3 - - [2023-11-14T22:13:20Z] \"GET / HTTP/1.1\" 200 612 \"-\" \"-\"",
		" 10.1.2.3 - - [14/Nov/2023:22:13:20 +0000] \"GET / HTTP/1.1\" 200 612 \"-\" \"-\"",
		/* anchored: a valid line after junk is not found */
		"junk 10.1.2.3 - - [14/Nov/2023:22:13:20 +0000] \"GET / HTTP/1.1\" 200 612 \"-\" \"-\"",
	};
	static const char *const bad_time[] = {
		"10.1.2.3 - - [32/Nov/2023:22:13:20 +0000] \"GET / HTTP/1.1\" 200 612 \"-\" \"-\"",
		"10.1.2.3 - - [14/Foo/2023:22:13:20 +0000] \"GET / HTTP/1.1\" 200 612 \"-\" \"-\"",
		"10.1.2.3 - - [30/Feb/2024:22:13:20 +0000] \"GET / HTTP/1.1\" 200 612 \"-\" \"-\"",
		"10.1.2.3 - - [14/Nov/2023:24:13:20 +0000] \"GET / HTTP/1.1\" 200 612 \"-\" \"-\"",
	};
	struct parser *p = builtin("nginx_timed");
	struct parser_event ev;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (parse_line(p, bad[i], &ev) != -EINVAL) {
			print_error("parsed, but should not: '%s'\n", bad[i]);
			fail();
		}
	}
	for (size_t i = 0; i < sizeof bad_time / sizeof bad_time[0]; i++)
		assert_int_equal(parse_line(p, bad_time[i], &ev), -EINVAL);
	assert_int_equal(parse_line(p, reals[0].line, &ev), 0);
	const struct parser_stats *st = parser_stats(p);
	assert_int_equal(st->unmatched, sizeof bad / sizeof bad[0]);
	assert_int_equal(st->bad_time, sizeof bad_time / sizeof bad_time[0]);
	assert_int_equal(st->parsed, 1);
	/* NULL record is an empty record */
	assert_int_equal(parser_parse(p, NULL, 0, 0, &ev), -EINVAL);
	assert_int_equal(st->unmatched, sizeof bad / sizeof bad[0] + 1);
	parser_free(p);
}

/* NUL bytes and invalid UTF-8 are bytes: no crash, and valid JSON out. */
static void test_nul_and_invalid_utf8(void **state)
{
	(void)state;
	static const char line[] =
		"10.1.2.3 - - [14/Nov/2023:22:13:20 +0000] \"GET /\xff\xfe\0x HTTP/1.1\" 200 1 \"\xc3\x28\" \"a\0b\xed\xa0\x80\xf4\x90\x80\x80\" rt=0.1 urt=\"-\"";
	struct parser *p = builtin("nginx_timed");
	struct parser_event ev;
	parser_event_init(&ev, p);
	assert_int_equal(parser_parse(p, line, sizeof line - 1, 0, &ev), 0);
	int path = parser_field_index(p, "path", 4);
	assert_int_equal(ev.raw[path].len, 5);
	assert_memory_equal(ev.raw[path].p, "/\xff\xfe\0x", 5);

	struct kl_buf b = { 0 };
	assert_int_equal(parser_event_json(&ev, "ng\xffinx", &b), 0);
	json_error_t jerr;
	json_t *j = json_loadb(b.p, b.len, JSON_ALLOW_NUL, &jerr);
	if (!j) {
		print_error("invalid JSON (%s): %s\n", jerr.text, b.p);
		fail();
	}
	json_t *f = json_object_get(j, "fields");
	const char *agent = json_string_value(json_object_get(f, "agent"));
	assert_non_null(agent);
	/* "a", NUL, "b", then U+FFFD for the surrogate and the > U+10FFFF */
	assert_true(json_string_length(json_object_get(f, "agent")) > 6);
	assert_memory_equal(agent, "a\0b\xef\xbf\xbd", 6);
	assert_true(strstr(json_string_value(json_object_get(j, "source")), "\xef\xbf\xbd") != NULL);
	json_decref(j);
	kl_buf_free(&b);

	/* every prefix and every single-byte corruption of a real line */
	const char *real = reals[1].line;
	size_t n = strlen(real);
	char *copy = malloc(n);
	assert_non_null(copy);
	for (size_t i = 0; i <= n; i++)
		(void)parser_parse(p, real, i, 0, &ev);
	for (size_t i = 0; i < n; i++) {
		static const char subst[] = { '\0', '"', '\\', ' ', '\xff', '[', ']', '-' };
		for (size_t k = 0; k < sizeof subst; k++) {
			memcpy(copy, real, n);
			copy[i] = subst[k];
			if (parser_parse(p, copy, n, 0, &ev) == 0) {
				struct kl_buf o = { 0 };
				assert_int_equal(parser_event_json(&ev, "nginx", &o), 0);
				json_t *jj = json_loadb(o.p, o.len, JSON_ALLOW_NUL, &jerr);
				if (!jj) {
					print_error("invalid JSON (%s): %s\n", jerr.text, o.p);
					fail();
				}
				json_decref(jj);
				kl_buf_free(&o);
			}
		}
	}
	free(copy);
	parser_free(p);
}

/* ------------------------------------------------------------------------- */

static struct parser *types_parser(void)
{
	static const struct parser_field_spec types[] = {
		{ "i", PARSER_T_INT },	     { "f", PARSER_T_FLOAT }, { "sec", PARSER_T_SECONDS },
		{ "ms", PARSER_T_MS },	     { "str", PARSER_T_STRING },
	};
	char err[256];
	struct parser_spec spec = {
		.name = "types",
		.regex = "^(?<i>[^|]*)\\|(?<f>[^|]*)\\|(?<sec>[^|]*)\\|(?<ms>[^|]*)\\|(?<str>[^|]*)$",
		.types = types,
		.ntypes = 5,
	};
	struct parser *p = parser_new(&spec, err, sizeof err, NULL);
	if (!p)
		print_error("%s\n", err);
	assert_non_null(p);
	return p;
}

static void test_field_types(void **state)
{
	(void)state;
	struct parser *p = types_parser();
	struct parser_event ev;

	assert_int_equal(parse_line(p, "503|0.412|1.5|250|hello", &ev), 0);
	assert_int_equal(ev.time_us, 7 * S); /* no time field: the read time */
	expect_num(&ev, "i", 503);
	expect_num(&ev, "f", 0.412);
	expect_num(&ev, "sec", 1.5);
	expect_num(&ev, "ms", 0.25);
	expect_num_err(&ev, "str", -EINVAL);
	expect_str(&ev, "str", "hello");

	assert_int_equal(parse_line(p, "-42|-1.5e3|2E-3|1e3|", &ev), 0);
	expect_num(&ev, "i", -42);
	expect_num(&ev, "f", -1500);
	expect_num(&ev, "sec", 0.002);
	expect_num(&ev, "ms", 1);
	expect_str(&ev, "str", "");

	/* "-" and empty are absent; junk is invalid */
	assert_int_equal(parse_line(p, "-||-||", &ev), 0);
	expect_num_err(&ev, "i", -ENOENT);
	expect_num_err(&ev, "f", -ENOENT);
	expect_num_err(&ev, "sec", -ENOENT);
	expect_num_err(&ev, "ms", -ENOENT);
	assert_int_equal(parse_line(p, "1.5|abc|0x10|inf|", &ev), 0);
	expect_num_err(&ev, "i", -EINVAL);
	expect_num_err(&ev, "f", -EINVAL);
	expect_num_err(&ev, "sec", -EINVAL);
	expect_num_err(&ev, "ms", -EINVAL);
	assert_int_equal(parse_line(p, "99999999999999999999|nan|1e999|--1|", &ev), 0);
	expect_num_err(&ev, "i", -EINVAL);
	expect_num_err(&ev, "f", -EINVAL);
	expect_num_err(&ev, "sec", -EINVAL);
	expect_num_err(&ev, "ms", -EINVAL);
	/* edges: int64 limits, long mantissas (slow path), lists */
	assert_int_equal(parse_line(p, "-9223372036854775808|0.12345678901234567890|.5|3, 4 : 5|", &ev), 0);
	expect_num(&ev, "i", -9223372036854775807.0 - 1);
	expect_num(&ev, "f", 0.12345678901234568);
	expect_num(&ev, "sec", 0.5);
	expect_num(&ev, "ms", 0.012);
	assert_int_equal(parse_line(p, "9223372036854775807|+7|5.|1,,2|", &ev), 0);
	expect_num(&ev, "i", 9223372036854775807.0);
	expect_num(&ev, "f", 7);
	expect_num(&ev, "sec", 5);
	expect_num_err(&ev, "ms", -EINVAL);
	assert_int_equal(parse_line(p, "9223372036854775808| 1.5 |.|,1|", &ev), 0);
	expect_num_err(&ev, "i", -EINVAL);
	expect_num(&ev, "f", 1.5);
	expect_num_err(&ev, "sec", -EINVAL);
	expect_num_err(&ev, "ms", -EINVAL);

	/* out of range index */
	double v;
	assert_int_equal(parser_event_number(&ev, 5, &v), -EINVAL);
	assert_int_equal(parser_event_number(&ev, 1000, &v), -EINVAL);
	parser_free(p);
}

static void test_number_cache(void **state)
{
	(void)state;
	struct parser *p = types_parser();
	struct parser_event ev;
	double v = 0;

	assert_int_equal(parse_line(p, "503|x|-|2|s", &ev), 0);
	assert_int_equal(ev.num_tried, 0);
	assert_int_equal(parser_event_number(&ev, 0, &v), 0);
	assert_true(v == 503);
	assert_int_equal(ev.num_tried, 1);
	assert_int_equal(ev.num_ok, 1);
	/* a cached value is returned without looking at the text */
	ev.num[0] = 7;
	assert_int_equal(parser_event_number(&ev, 0, &v), 0);
	assert_true(v == 7);
	/* cached failures keep their kind */
	assert_int_equal(parser_event_number(&ev, 1, &v), -EINVAL);
	assert_int_equal(parser_event_number(&ev, 1, &v), -EINVAL);
	assert_int_equal(parser_event_number(&ev, 2, &v), -ENOENT);
	assert_int_equal(parser_event_number(&ev, 2, &v), -ENOENT);
	assert_int_equal(ev.num_tried, 7);
	assert_int_equal(ev.num_ok, 1);
	/* the next record starts afresh */
	assert_int_equal(parse_line(p, "404|1|2|3|s", &ev), 0);
	assert_int_equal(ev.num_tried, 0);
	assert_int_equal(ev.num_ok, 0);
	assert_int_equal(parser_event_number(&ev, 0, &v), 0);
	assert_true(v == 404);
	parser_free(p);
}

/* The hand-written fast path must agree with strtod bit for bit. */
static void test_number_fast_path_exact(void **state)
{
	(void)state;
	struct parser *p = types_parser();
	uint64_t x = 88172645463325252ull;
	for (int i = 0; i < 200000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		char num[64], line[128];
		unsigned ip = (unsigned)(x % 100000) >> (x >> 60), fd = (unsigned)(x >> 20) % 16;
		unsigned long long fr = (x >> 8) % 10000000000000000ull;
		if (i % 3 == 0)
			snprintf(num, sizeof num, "%u.%03u", ip % 100, (unsigned)(fr % 1000));
		else
			snprintf(num, sizeof num, "%s%u.%.*llu", (x & 1) ? "-" : "", ip, (int)fd,
				 fr);
		snprintf(line, sizeof line, "0|%s|0|0|s", num);
		struct parser_event ev;
		assert_int_equal(parse_line(p, line, &ev), 0);
		double got, want = strtod(num, NULL);
		assert_int_equal(parser_event_number(&ev, 1, &got), 0);
		if (memcmp(&got, &want, sizeof got) != 0) {
			print_error("'%s': %.17g, strtod %.17g\n", num, got, want);
			fail();
		}
	}
	parser_free(p);
}

/* ------------------------------------------------------------------------- */

static void expect_new_error_(const struct parser_spec *spec, const char *want, bool want_off,
			      int line)
{
	char err[256] = "";
	int off = -2;
	struct parser *p = parser_new(spec, err, sizeof err, &off);
	if (p || !strstr(err, want) || (want_off ? off < 0 : off != -1)) {
		print_error("line %d: got '%s' (offset %d), expected an error with '%s'\n", line,
			    err, off, want);
		parser_free(p);
		fail();
	}
}
#define expect_new_error(spec, want, off) expect_new_error_(spec, want, off, __LINE__)

static void test_parser_errors(void **state)
{
	(void)state;
	struct parser_spec s;
	static const struct parser_field_spec typo[] = { { "statsu", PARSER_T_INT } };
	static const struct parser_field_spec ok_types[] = { { "status", PARSER_T_INT },
							     { "t", PARSER_T_INT } };

	s = (struct parser_spec){ .regex = "^(?<status>\\d+" };
	expect_new_error(&s, "regex: missing closing parenthesis", true);
	s = (struct parser_spec){ .regex = "^(?<status>\\d+)[" };
	expect_new_error(&s, "regex: missing terminating ] for character class", true);
	s = (struct parser_spec){ .regex = "^(?<status>\\d+)", .types = typo, .ntypes = 1 };
	expect_new_error(&s, "types: 'statsu' is not a named group of the regex", false);
	s = (struct parser_spec){ .regex = "^(?<status>\\d+) (?<t>\\S+)", .time_field = "ts" };
	expect_new_error(&s, "time.field: 'ts' is not a named group of the regex", false);
	s = (struct parser_spec){ .regex = "^(?<status>\\d+) (?<t>\\S+)", .time_field = "t",
				  .time_format = "%d/%Q" };
	expect_new_error(&s, "time.format: unknown conversion %Q", false);
	s = (struct parser_spec){ .regex = "^(?<status>\\d+) (?<t>\\S+)",
				  .time_format = "%Y-%m-%d" };
	expect_new_error(&s, "time.field is not", false);
	s = (struct parser_spec){ .regex = "^(?<status>\\d+) (?<t>\\S+)", .time_field = "t",
				  .types = ok_types, .ntypes = 2 };
	expect_new_error(&s, "'t' is the time field", false);
	s = (struct parser_spec){ .type = "ngnix" };
	expect_new_error(&s, "unknown built-in parser 'ngnix'; expected one of: nginx_combined, nginx_timed", false);
	s = (struct parser_spec){ .type = "nginx_timed", .regex = "x" };
	expect_new_error(&s, "has its own regex", false);
	s = (struct parser_spec){ .type = "nginx_timed", .types = typo, .ntypes = 1 };
	expect_new_error(&s, "fixed field types", false);
	s = (struct parser_spec){ .type = "regex" };
	expect_new_error(&s, "regex: missing", false);
	s = (struct parser_spec){ 0 };
	expect_new_error(&s, "regex: missing", false);

	/* more named groups than an event holds */
	char big[2048] = "^";
	for (int i = 0; i < PARSER_MAX_FIELDS + 1; i++)
		snprintf(big + strlen(big), sizeof big - strlen(big), "(?<g%d>a)", i);
	s = (struct parser_spec){ .regex = big };
	expect_new_error(&s, "too many named groups", false);
	big[strlen(big) - strlen("(?<g48>a)")] = '\0';
	struct parser *p = parser_new(&s, NULL, 0, NULL); /* no err buffer: fine */
	assert_non_null(p);
	assert_int_equal(parser_field_count(p), PARSER_MAX_FIELDS);
	parser_free(p);

	assert_null(parser_new(NULL, NULL, 0, NULL));
	s = (struct parser_spec){ .regex = "(" };
	assert_null(parser_new(&s, NULL, 0, NULL));
	parser_free(NULL);
}

static void test_regex_parser(void **state)
{
	(void)state;
	char err[256];
	/* unanchored as given; unnamed groups are not fields; fields in group
	 * order; (?| ...) and (?J) let two groups share a name: first set wins */
	struct parser_spec spec = {
		.name = "app",
		.regex = "(?J)level=(\\w+) (?|(?<code>\\d+)|code=(?<code>\\w+)) (?:a=(?<v>\\d+)|b=(?<v>\\d+))(?: (?<w>\\S+))?",
	};
	struct parser *p = parser_new(&spec, err, sizeof err, NULL);
	if (!p)
		print_error("%s\n", err);
	assert_non_null(p);
	assert_string_equal(parser_name(p), "app");
	assert_int_equal(parser_field_count(p), 3);
	assert_string_equal(parser_field_name(p, 0), "code");
	assert_string_equal(parser_field_name(p, 1), "v");
	assert_string_equal(parser_field_name(p, 2), "w");
	struct parser_event ev;
	assert_int_equal(parse_line(p, "xx level=warn 42 b=7 tail", &ev), 0);
	expect_str(&ev, "code", "42");
	expect_str(&ev, "v", "7");
	expect_str(&ev, "w", "tail");
	assert_int_equal(parse_line(p, "level=warn code=E1 a=3", &ev), 0);
	expect_str(&ev, "code", "E1");
	expect_str(&ev, "v", "3");
	expect_str(&ev, "w", ABSENT);
	assert_int_equal(parse_line(p, "nothing here", &ev), -EINVAL);
	assert_int_equal(parser_stats(p)->unmatched, 1);
	assert_int_equal(parser_stats(p)->parsed, 2);
	parser_free(p);

	/* a regex parser with an ISO 8601 time field (time_format NULL) */
	spec = (struct parser_spec){
		.name = "django",
		.regex = "^\\[(?<ts>[^\\]]+)\\] (?<level>[A-Z]+)",
		.time_field = "ts",
	};
	p = parser_new(&spec, err, sizeof err, NULL);
	assert_non_null(p);
	assert_int_equal(parser_field_type(p, 0), PARSER_T_TIME);
	assert_int_equal(parse_line(p, "[2023-11-14 22:13:20,123] ERROR boom", &ev), 0);
	assert_int_equal(ev.time_us, 1700000000 * S + 123000);
	assert_int_equal(parse_line(p, "[2023-11-14 22:13:20,123 ] ERROR boom", &ev), -EINVAL);
	assert_int_equal(parser_stats(p)->bad_time, 1);
	parser_free(p);

	/* an optional time group that did not take part is a bad time */
	spec = (struct parser_spec){ .regex = "^(?:(?<ts>\\S+) )?msg", .time_field = "ts" };
	p = parser_new(&spec, err, sizeof err, NULL);
	assert_non_null(p);
	assert_int_equal(parse_line(p, "msg", &ev), -EINVAL);
	assert_int_equal(parser_stats(p)->bad_time, 1);
	parser_free(p);
}

static void test_regex_utf_and_no_jit(void **state)
{
	(void)state;
	char err[256];
	struct parser_event ev;
	/* (*UTF) on invalid input must not be undefined behaviour */
	struct parser_spec spec = { .regex = "(*UTF)^(?<a>.)(?<b>\\w*)" };
	struct parser *p = parser_new(&spec, err, sizeof err, NULL);
	assert_non_null(p);
	static const char *const inputs[] = { "\xc3\xa9t\xc3\xa9", "\xff\xfe", "a\xed\xa0\x80",
					      "\xf4\x90\x80\x80", "\xc3", "" };
	for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
		int rc = parse_line(p, inputs[i], &ev);
		assert_true(rc == 0 || rc == -EINVAL);
	}
	assert_int_equal(parse_line(p, "\xc3\xa9t\xc3\xa9", &ev), 0);
	expect_str(&ev, "a", "\xc3\xa9");
	parser_free(p);

	/* (*NO_JIT): the interpreter does the same work */
	spec = (struct parser_spec){ .regex = "(*NO_JIT)^(?<a>\\w+) (?<n>\\d+)",
				     .types = (const struct parser_field_spec[]){ { "n", PARSER_T_INT } },
				     .ntypes = 1 };
	p = parser_new(&spec, err, sizeof err, NULL);
	assert_non_null(p);
	assert_int_equal(parse_line(p, "abc 12", &ev), 0);
	expect_str(&ev, "a", "abc");
	expect_num(&ev, "n", 12);
	parser_free(p);
}

static void test_backtracking_is_bounded(void **state)
{
	(void)state;
	char err[256];
	struct parser_spec spec = { .regex = "^(?<a>(a+)+)$" };
	struct parser *p = parser_new(&spec, err, sizeof err, NULL);
	assert_non_null(p);
	char line[64];
	memset(line, 'a', 60);
	line[60] = 'b';
	line[61] = '\0';
	struct parser_event ev;
	/* 2^60 paths without a limit; the match limit makes it a quick miss */
	assert_int_equal(parse_line(p, line, &ev), -EINVAL);
	assert_int_equal(parser_stats(p)->unmatched, 1);
	parser_free(p);
}

/* ------------------------------------------------------------------------- */

static void test_json_output(void **state)
{
	(void)state;
	struct parser *p = builtin("nginx_timed");
	struct parser_event ev;
	struct kl_buf b = { 0 };
	const char *line = "10.1.2.3 - - [14/Nov/2023:23:13:20 +0100] \"GET /api/debts HTTP/1.1\" 503 0 \"-\" \"curl/8.0\" rt=0.412 urt=\"-\"";

	assert_int_equal(parse_line(p, line, &ev), 0);
	assert_int_equal(parser_event_json(&ev, "nginx", &b), 0);
	/* exact text: order, absent fields (remote_user, urt) and the time
	 * field left out, numbers as numbers */
	assert_string_equal(b.p,
			    "{\"time\":\"2023-11-14T22:13:20.000Z\",\"source\":\"nginx\",\"fields\":{"
			    "\"remote_addr\":\"10.1.2.3\",\"request\":\"GET /api/debts HTTP/1.1\","
			    "\"method\":\"GET\",\"path\":\"/api/debts\",\"protocol\":\"HTTP/1.1\","
			    "\"status\":503,\"bytes\":0,\"referer\":\"-\",\"agent\":\"curl/8.0\","
			    "\"request_time\":0.412}}");
	json_error_t jerr;
	json_t *j = json_loads(b.p, 0, &jerr);
	assert_non_null(j);
	json_t *f = json_object_get(j, "fields");
	assert_true(json_is_integer(json_object_get(f, "status")));
	assert_int_equal(json_integer_value(json_object_get(f, "status")), 503);
	assert_true(json_is_real(json_object_get(f, "request_time")));
	assert_true(json_real_value(json_object_get(f, "request_time")) == 0.412);
	assert_null(json_object_get(f, "time"));
	assert_null(json_object_get(f, "remote_user"));
	assert_null(json_object_get(f, "upstream_response_time"));
	json_decref(j);

	/* appends; a numeric field whose text is not a number stays a string;
	 * ms are written in seconds */
	struct parser *t = types_parser();
	assert_int_equal(parse_line(t, "abc|1e3|-|1500|\"q\"\n\t\x01", &ev), 0);
	size_t before = b.len;
	assert_int_equal(parser_event_json(&ev, "types", &b), 0);
	assert_string_equal(b.p + before,
			    "{\"time\":\"1970-01-01T00:00:07.000Z\",\"source\":\"types\",\"fields\":{"
			    "\"i\":\"abc\",\"f\":1000,\"ms\":1.5,\"str\":\"\\\"q\\\"\\n\\t\\u0001\"}}");
	j = json_loads(b.p + before, 0, &jerr);
	assert_non_null(j);
	json_decref(j);

	/* every real line gives valid JSON */
	for (size_t i = 0; i < sizeof reals / sizeof reals[0]; i++) {
		assert_int_equal(parse_line(p, reals[i].line, &ev), 0);
		kl_buf_reset(&b);
		assert_int_equal(parser_event_json(&ev, "nginx", &b), 0);
		j = json_loads(b.p, 0, &jerr);
		if (!j) {
			print_error("invalid JSON (%s): %s\n", jerr.text, b.p);
			fail();
		}
		json_decref(j);
	}
	kl_buf_free(&b);
	parser_free(t);
	parser_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_builtin_names),
		cmocka_unit_test(test_builtin_fields),
		cmocka_unit_test(test_type_names),
		cmocka_unit_test(test_nginx_real_lines),
		cmocka_unit_test(test_nginx_long_request),
		cmocka_unit_test(test_nginx_durations),
		cmocka_unit_test(test_timed_parser_on_combined_line),
		cmocka_unit_test(test_nginx_unmatched_and_bad_time),
		cmocka_unit_test(test_nul_and_invalid_utf8),
		cmocka_unit_test(test_field_types),
		cmocka_unit_test(test_number_cache),
		cmocka_unit_test(test_number_fast_path_exact),
		cmocka_unit_test(test_parser_errors),
		cmocka_unit_test(test_regex_parser),
		cmocka_unit_test(test_regex_utf_and_no_jit),
		cmocka_unit_test(test_backtracking_is_bounded),
		cmocka_unit_test(test_json_output),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
