/*
 * test_signature.c — the derived field `signature` (parsers/signature.c):
 * the masks one by one (through a regex parser whose `message` is the whole
 * record), then every built-in on real lines — nginx (1.22) with ids in paths
 * and query strings, Django tracebacks and PostgreSQL 15 reports taken from
 * tests/data/ — where two instances of one error must sign the same and two
 * errors differently; the registration (lazy, once, a field of the format's
 * own wins, nothing computed before), the cap, and bytes that are not text.
 */
#include <errno.h>
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

#define ABSENT ((const char *)1)

static struct parser *make(const char *type, const char *regex, const char *prefix)
{
	char err[256];
	struct parser_spec spec = { .name = "t", .type = type, .regex = regex,
				    .log_line_prefix = prefix };
	struct parser *p = parser_new(&spec, err, sizeof err, NULL);
	if (!p)
		print_error("%s: %s\n", type ? type : regex, err);
	assert_non_null(p);
	return p;
}

static int sig_idx(struct parser *p)
{
	int idx = parser_field_index(p, "signature", 9);
	assert_true(idx >= 0);
	return idx;
}

/* The signature of rec as a NUL-terminated copy (NULL: absent); the parse
 * must succeed. */
static char got[1 << 12];
static size_t got_len;

static const char *sign_n(struct parser *p, const char *rec, size_t len)
{
	struct parser_event ev;
	int idx = sig_idx(p);
	parser_event_init(&ev, p);
	int rc = parser_parse(p, rec, len, 0, &ev);
	if (rc != 0) {
		print_error("does not parse (%d): %.*s\n", rc, (int)len, rec);
		fail();
	}
	if (!ev.raw[idx].p)
		return NULL;
	assert_true(ev.raw[idx].len <= PARSER_SIGNATURE_MAX);
	memcpy(got, ev.raw[idx].p, ev.raw[idx].len);
	got_len = ev.raw[idx].len;
	got[got_len] = '\0';
	return got;
}

static const char *sign(struct parser *p, const char *rec)
{
	return sign_n(p, rec, strlen(rec));
}

static void expect_sig_(struct parser *p, const char *rec, const char *want, int line)
{
	const char *s = sign(p, rec);
	if (want == ABSENT) {
		if (s) {
			print_error("line %d: signature '%s', expected absent\n", line, s);
			fail();
		}
		return;
	}
	if (!s || strcmp(s, want) != 0) {
		print_error("line %d: signature of\n  %s\nis\n  %s\nexpected\n  %s\n", line, rec,
			    s ? s : "(absent)", want);
		fail();
	}
}
#define expect_sig(p, rec, want) expect_sig_(p, rec, want, __LINE__)

/* Two records sign the same (same = true) or differently. */
static void expect_same_(struct parser *p, const char *a, const char *b, bool same, int line)
{
	char sa[PARSER_SIGNATURE_MAX + 1];
	const char *s = sign(p, a);
	assert_non_null(s);
	memcpy(sa, s, got_len + 1);
	s = sign(p, b);
	assert_non_null(s);
	if ((strcmp(sa, s) == 0) != same) {
		print_error("line %d: expected %s signatures:\n  %s\n  %s\n", line,
			    same ? "the same" : "different", sa, s);
		fail();
	}
}
#define expect_same(p, a, b) expect_same_(p, a, b, true, __LINE__)
#define expect_differ(p, a, b) expect_same_(p, a, b, false, __LINE__)

/* A regex parser whose message is the record: the signature is the mask. */
static struct parser *masker(void)
{
	return make(NULL, "(?s)(?<message>.*)", NULL);
}

/* ------------------------------------------------------------------------- */

static const struct {
	const char *in, *out;
} masks[] = {
	/* numbers */
	{ "user 77 logged in", "user <n> logged in" },
	{ "took 1234.567 ms", "took <n> ms" },
	{ "got -3, want +4; x=-5 and 1e-9 or 6.02E23", "got <n>, want <n>; x=<n> and <n> or <n>" },
	{ "slow payment provider: 3.2s, 100ms, 8kB", "slow payment provider: <n>s, <n>ms, <n>kB" },
	{ "pg_stat2 utf8 http2 user_42 v1.2 sha256", "pg_stat2 utf8 http2 user_42 v1.2 sha256" },
	{ "a-3 2026-11-25 14:18:33,665", "a-<n> <n>-<n>-<n> <n>:<n>:<n>,<n>" },
	{ "app.3f9c1.js 1a2b 1.5a3", "app.3f9c1.js 1a2b 1.5a3" },
	{ "(id)=(88123) [4146]", "(id)=(<n>) [<n>]" },
	{ "1.2.3.4.5 and 1.2.3", "<n>.<n>.<n> and <n>.<n>" },
	/* hex */
	{ "at 0x7f3a2c001b80 and 0XFF", "at <hex> and <hex>" },
	{ "commit 3f9c1e8a2b and deadbeef01, not deadbeef or cafe12",
	  "commit <hex> and <hex>, not deadbeef or cafe12" },
	{ "session 6b06ee08.c62", "session <hex>.c62" },
	{ "12345678", "<n>" },
	/* UUIDs */
	{ "request 123e4567-e89b-12d3-a456-426614174000 failed", "request <uuid> failed" },
	{ "/jobs/F47AC10B-58CC-4372-A567-0E02B2C3D479/retry", "/jobs/<uuid>/retry" },
	{ "not 123e4567-e89b-12d3-a456-426614174000x", "not <hex>-e89b-12d3-a456-<n>x" },
	/* addresses */
	{ "from 172.18.0.3:5432 (10.0.0.1)", "from <ip>:<n> (<ip>)" },
	{ "no 256.1.1.1 or 1.2.3.4a", "no <n>.<n> or <n>.<n>a" },
	{ "::1 fe80::1ff:fe23:4567:890a 2001:db8::8a2e:370:7334 ::ffff:10.0.0.1",
	  "<ip> <ip> <ip> <ip>" },
	{ "2001:0db8:0000:0000:0000:ff00:0042:8329 fe80::1: refused", "<ip> <ip>: refused" },
	{ "at 22:13:20 std::vector dead::beef", "at <n>:<n>:<n> std::vector dead::beef" },
	/* quoted strings */
	{ "KeyError 'user_42' and \"x y\"", "KeyError '<s>' and \"<s>\"" },
	{ "can't connect to 'db' (it's down)", "can't connect to '<s>' (it's down)" },
	{ "WHERE a = 'it''s' AND b = '' AND c = 'x\\'y'", "WHERE a = '<s>' AND b = '<s>' AND c = '<s>'" },
	{ "\"debts_debt\".\"id\" = 7", "\"<s>\".\"<s>\" = <n>" },
	{ "open 'quote and 7", "open 'quote and <n>" },
	{ "an 'open one' then 'x' and 'never closed", "an '<s>' then '<s>' and 'never closed" },
	/* escapes */
	{ "/a?b=1&c=%22x%22&q=car%20loan%3D2", "/a?b=<n>&c=%22x%22&q=car%20loan%3D<n>" },
	{ "\\x16\\x03\\x01\\x00\\xFA", "\\x16\\x03\\x01\\x00\\xFA" },
	/* paths */
	{ "/api/debts/123/edit", "/api/debts/<n>/edit" },
	{ "/api/debts/8812/payments?page=2", "/api/debts/<n>/payments?page=<n>" },
	{ "/u/9f86d081884c7d65/avatar.png /v2/items/42.json", "/u/<hex>/avatar.png /v2/items/<n>.json" },
	/* blanks */
	{ "  a \t\t b\n\tc\r\n  ", "a b c" },
	{ "", "" },
	{ " \t\n ", "" },
	{ "42", "<n>" },
	{ "0123456789", "<n>" },
	/* already a signature: unchanged */
	{ "id <n> at <ip> '<s>' <hex> <uuid> <n>ms", "id <n> at <ip> '<s>' <hex> <uuid> <n>ms" },
};

static void test_masks(void **state)
{
	(void)state;
	struct parser *p = masker();
	for (size_t i = 0; i < sizeof masks / sizeof masks[0]; i++) {
		const char *s = sign(p, masks[i].in);
		if (!s || strcmp(s, masks[i].out) != 0) {
			print_error("mask %zu:\n  %s\nis\n  %s\nexpected\n  %s\n", i, masks[i].in,
				    s ? s : "(absent)", masks[i].out);
			fail();
		}
		/* a signature is its own signature */
		char once[PARSER_SIGNATURE_MAX + 1];
		memcpy(once, s, got_len + 1);
		assert_string_equal(sign(p, once), once);
	}
	parser_free(p);
}

/* ------------------------------------------------------------------------- */
/* nginx: lines nginx 1.22 wrote (log_format timed, see test_parsers.c) */

#define NG(req, status) \
	"127.0.0.1 - - [25/Nov/2026:13:27:22 +0000] \"" req "\" " status \
	" 153 \"-\" \"curl/7.88.1\" rt=0.000 urt=\"-\""

static void test_nginx(void **state)
{
	(void)state;
	struct parser *p = make("nginx_timed", NULL, NULL);
	expect_sig(p, NG("GET / HTTP/1.1", "200"), "GET / HTTP/1.1");
	expect_sig(p, NG("GET /api/debts/8812/payments?page=2 HTTP/1.1", "200"),
		   "GET /api/debts/<n>/payments?page=<n> HTTP/1.1");
	expect_same(p, NG("GET /api/debts/8812/payments?page=2 HTTP/1.1", "200"),
		    NG("GET /api/debts/17/payments?page=30 HTTP/1.1", "404"));
	expect_differ(p, NG("GET /api/debts/8812 HTTP/1.1", "200"),
		      NG("POST /api/debts/8812 HTTP/1.1", "200"));
	expect_differ(p, NG("GET /api/debts/8812 HTTP/1.1", "200"),
		      NG("GET /api/profile/8812 HTTP/1.1", "200"));
	expect_same(p, NG("DELETE /api/sessions/123e4567-e89b-12d3-a456-426614174000 HTTP/2.0", "204"),
		    NG("DELETE /api/sessions/f47ac10b-58cc-4372-a567-0e02b2c3d479 HTTP/2.0", "204"));
	expect_sig(p, NG("DELETE /api/sessions/123e4567-e89b-12d3-a456-426614174000 HTTP/2.0", "204"),
		   "DELETE /api/sessions/<uuid> HTTP/2.0");
	expect_sig(p, NG("GET /a?b=1&c=%22x%22 HTTP/1.1", "404"), "GET /a?b=<n>&c=%22x%22 HTTP/1.1");
	/* HTTP/0.9: no protocol */
	expect_sig(p, NG("GET /v1/items/42", "200"), "GET /v1/items/<n>");
	/* what nginx rejected: the request only, masked whole */
	expect_sig(p, NG("\\x16\\x03\\x01\\x00\\xFA\\x01\\x00\\x00", "400"),
		   "\\x16\\x03\\x01\\x00\\xFA\\x01\\x00\\x00");
	expect_sig(p, NG("GET /x 12 HTTP/1.1", "400"), "GET /x <n> HTTP/<n>");
	expect_sig(p, NG("-", "400"), "-");
	expect_sig(p, NG("", "400"), "");
	expect_sig(p, "::1 - - [25/Nov/2026:13:27:22 +0000] \"GET /v6/77 HTTP/1.1\" 404 153 \"-\" \"curl/7.88.1\"",
		   "GET /v6/<n> HTTP/1.1");
	parser_free(p);

	/* nginx_combined and gunicorn_access sign the same way */
	static const char *const others[] = { "nginx_combined", "gunicorn_access" };
	for (size_t i = 0; i < 2; i++) {
		p = make(others[i], NULL, NULL);
		expect_sig(p, "127.0.0.1 - - [25/Nov/2026:14:18:33 +0000] \"GET /api/debts/431/pay HTTP/1.1\" 500 145 \"https://debts.example.com/dashboard\" \"Mozilla/5.0 (X11; Linux x86_64) \\\"quoted\\\" agent\"",
			   "GET /api/debts/<n>/pay HTTP/1.1");
		parser_free(p);
	}
}

/* ------------------------------------------------------------------------- */
/* django: records from tests/data/django/django.log */

#define DJ_HEAD "2026-11-25 14:18:33,752 ERROR django.request 4146 Internal Server Error: /chain\n"
#define DJ_TB                                                                                    \
	"Traceback (most recent call last):\n"                                                     \
	"  File \"/usr/lib/python3/dist-packages/django/core/handlers/exception.py\", line 47, in inner\n" \
	"    response = get_response(request)\n"                                                   \
	"               ^^^^^^^^^^^^^^^^^^^^^\n"                                                   \
	"  File \"/srv/debts/app/urls.py\", line 17, in chain\n"                                   \
	"    profile = PROFILES[key]\n"

static void test_django(void **state)
{
	(void)state;
	struct parser *p = make("django", NULL, NULL);
	expect_sig(p, "2026-11-25 14:18:33,665 INFO debts.views 4146 listed 12 debts for user alice",
		   "listed <n> debts for user alice");
	expect_same(p, "2026-11-25 14:18:33,665 INFO debts.views 4146 listed 12 debts for user alice",
		    "2026-11-25 14:19:02,001 INFO debts.views 4147 listed 3 debts for user alice");
	/* a traceback: the final exception, not the message */
	expect_sig(p, DJ_HEAD DJ_TB "KeyError: 'user_42'", "KeyError: '<s>'");
	expect_same(p, DJ_HEAD DJ_TB "KeyError: 'user_42'",
		    "2026-11-25 14:20:00,000 ERROR django.request 4150 Internal Server Error: /other/7\n" DJ_TB
		    "KeyError: 'user_43'");
	expect_differ(p, DJ_HEAD DJ_TB "KeyError: 'user_42'", DJ_HEAD DJ_TB "ValueError: 'user_42'");
	expect_sig(p, DJ_HEAD DJ_TB "ValueError: amount must be positive, got -3",
		   "ValueError: amount must be positive, got <n>");
	expect_sig(p, DJ_HEAD DJ_TB "ValueError: invalid literal for int() with base 10: '12x'",
		   "ValueError: invalid literal for int() with base <n>: '<s>'");
	/* a bare exception name */
	expect_sig(p, DJ_HEAD DJ_TB "StopIteration", "StopIteration");
	/* a chain: the last exception */
	expect_sig(p, DJ_HEAD DJ_TB "KeyError: 'currency'\n\n"
				    "During handling of the above exception, another exception occurred:\n\n" DJ_TB
				    "RuntimeError: could not price the debt",
		   "RuntimeError: could not price the debt");
	/* psycopg2's two-line OperationalError */
	expect_sig(p, "2026-11-25 14:18:33,837 ERROR django.request 4146 Internal Server Error: /db\n" DJ_TB
		      "psycopg2.OperationalError: connection to server at \"127.0.0.1\", port 5999 failed: Connection refused\n"
		      "\tIs the server running on that host and accepting TCP/IP connections?\n",
		   "psycopg2.OperationalError: connection to server at \"<s>\", port <n> failed: Connection refused Is the server running on that host and accepting TCP/IP connections?");
	expect_same(p, "2026-11-25 14:18:33,837 ERROR django.db 4146 could not connect to server at 172.18.0.3:5432",
		    "2026-11-25 14:18:34,837 ERROR django.db 4146 could not connect to server at 172.18.0.4:5433");
	/* a two-line message: blanks collapse */
	expect_sig(p, "2026-11-25 14:18:33,665 WARNING debts.payments 4146 slow payment provider: 3.2s\nretrying with backup",
		   "slow payment provider: <n>s retrying with backup");
	parser_free(p);
}

/* ------------------------------------------------------------------------- */
/* postgres: reports from tests/data/postgres/stderr_default.log */

#define PG "2026-11-25 14:16:46.391 UTC [1996] "

static void test_postgres(void **state)
{
	(void)state;
	struct parser *p = make("postgres", NULL, NULL);
	expect_sig(p, PG "LOG:  duration: 1234.567 ms  statement: SELECT v FROM t WHERE id = 42",
		   "duration: <n> ms statement: SELECT v FROM t WHERE id = <n>");
	expect_same(p, PG "LOG:  duration: 1234.567 ms  statement: SELECT v FROM t WHERE id = 42",
		    "2026-11-25 14:16:47.001 UTC [2001] LOG:  duration: 0.099 ms  statement: SELECT v FROM t WHERE id = 43");
	expect_differ(p, PG "LOG:  duration: 1.5 ms  statement: SELECT v FROM t WHERE id = 42",
		      PG "LOG:  duration: 1.5 ms  statement: DELETE FROM t WHERE id = 42");
	expect_sig(p, PG "ERROR:  relation \"x\" does not exist at character 15",
		   "relation \"<s>\" does not exist at character <n>");
	expect_same(p, PG "ERROR:  relation \"x\" does not exist at character 15",
		    PG "ERROR:  relation \"debts_payment\" does not exist at character 22");
	expect_sig(p, PG "ERROR:  syntax error at or near \"SELEC\" at character 1",
		   "syntax error at or near \"<s>\" at character <n>");
	expect_sig(p, PG "ERROR:  duplicate key value violates unique constraint \"t_pkey\"\n"
			 PG "DETAIL:  Key (id)=(1) already exists.\n" PG "STATEMENT:  INSERT INTO t VALUES (1, 0);",
		   "duplicate key value violates unique constraint \"<s>\"");
	expect_same(p, PG "FATAL:  password authentication failed for user \"app\"",
		    PG "FATAL:  password authentication failed for user \"nobody\"");
	expect_differ(p, PG "FATAL:  password authentication failed for user \"app\"",
		      PG "FATAL:  the database system is starting up");
	/* a statement continued on TAB lines: one line */
	expect_sig(p, PG "LOG:  duration: 1.443 ms  statement: SELECT count(*) AS n,\n\t       max(v) AS top\n\tFROM t\n\tWHERE id > 0;",
		   "duration: <n> ms statement: SELECT count(*) AS n, max(v) AS top FROM t WHERE id > <n>;");
	expect_sig(p, PG "LOG:  disconnection: session time: 0:00:00.012 user=app database=debts host=172.18.0.4 port=43896",
		   "disconnection: session time: <n>:<n>:<n> user=app database=debts host=<ip> port=<n>");
	expect_sig(p, PG "LOG:  duration: 7.876 ms  statement: CREATE ROLE app LOGIN PASSWORD 'secret';",
		   "duration: <n> ms statement: CREATE ROLE app LOGIN PASSWORD '<s>';");
	parser_free(p);

	/* jsonlog: the same messages */
	p = make("postgres_json", NULL, NULL);
	expect_sig(p, "{\"timestamp\":\"2026-11-25 14:16:46.391 UTC\",\"pid\":1996,\"error_severity\":\"ERROR\",\"message\":\"relation \\\"x\\\" does not exist\"}",
		   "relation \"<s>\" does not exist");
	expect_sig(p, "{\"timestamp\":\"2026-11-25 14:16:46.391 UTC\",\"pid\":1996,\"error_severity\":\"LOG\",\"message\":\"duration: 1234.567 ms  statement: SELECT 1\"}",
		   "duration: <n> ms statement: SELECT <n>");
	expect_sig(p, "{\"timestamp\":\"2026-11-25 14:16:46.391 UTC\",\"pid\":1996}", ABSENT);
	parser_free(p);
}

/* ------------------------------------------------------------------------- */

static void test_json(void **state)
{
	(void)state;
	struct parser *p = make("json", NULL, NULL);
	unsigned n0 = parser_field_count(p);
	int idx = sig_idx(p);
	/* message and msg were registered for it, then the signature */
	assert_int_equal(parser_field_count(p), n0 + 3);
	assert_int_equal(idx, (int)n0 + 2);
	assert_int_equal(parser_field_index(p, "message", 7), (int)n0);
	assert_int_equal(parser_field_index(p, "msg", 3), (int)n0 + 1);
	expect_sig(p, "{\"msg\":\"payment 88123 accepted for debt 8812\"}",
		   "payment <n> accepted for debt <n>");
	expect_sig(p, "{\"message\":\"user 77 logged in\",\"msg\":\"other\"}", "user <n> logged in");
	/* escapes unescaped first */
	expect_sig(p, "{\"msg\":\"payment \\\"88123\\\" refused:\\n\\tcard expired (caf\\u00e9 \\u20ac12)\"}",
		   "payment \"<s>\" refused: card expired (caf\xc3\xa9 \xe2\x82\xac<n>)");
	expect_sig(p, "{\"msg\":42}", "<n>");
	expect_sig(p, "{\"level\":\"info\"}", ABSENT);
	expect_sig(p, "{\"msg\":null}", ABSENT);
	parser_free(p);

	/* a key named signature, declared in types:, wins */
	char err[256];
	struct parser_field_spec types[] = { { "signature", PARSER_T_STRING } };
	struct parser_spec spec = { .name = "j", .type = "json", .types = types, .ntypes = 1 };
	p = parser_new(&spec, err, sizeof err, NULL);
	assert_non_null(p);
	expect_sig(p, "{\"signature\":\"v1 42\",\"msg\":\"x 1\"}", "v1 42");
	assert_int_equal(parser_stats(p)->signatures, 0);
	parser_free(p);
}

static void test_regex(void **state)
{
	(void)state;
	/* a group msg */
	struct parser *p = make(NULL, "^(?<level>[A-Z]+) (?<msg>.*)$", NULL);
	expect_sig(p, "ERROR job 42 failed after 3 tries", "job <n> failed after <n> tries");
	parser_free(p);
	/* no message group: the whole record */
	p = make(NULL, "^(?<level>[A-Z]+) ", NULL);
	expect_sig(p, "ERROR job 42 failed", "ERROR job <n> failed");
	parser_free(p);
	/* a group message that did not take part: absent */
	p = make(NULL, "^(?<level>[A-Z]+)(?: (?<message>.+))?$", NULL);
	expect_sig(p, "ERROR", ABSENT);
	expect_sig(p, "ERROR x 1", "x <n>");
	parser_free(p);
	/* a group of its own named signature wins */
	p = make(NULL, "^(?<signature>[a-z]+) (?<message>.*)$", NULL);
	assert_int_equal(sig_idx(p), 0);
	assert_int_equal(parser_field_count(p), 2);
	expect_sig(p, "abc 42", "abc");
	assert_int_equal(parser_stats(p)->signatures, 0);
	parser_free(p);
}

/* ------------------------------------------------------------------------- */

static void test_lazy(void **state)
{
	(void)state;
	static const char line[] = NG("GET /api/debts/8812 HTTP/1.1", "200");
	struct parser *p = make("nginx_timed", NULL, NULL);
	struct parser_event ev;
	unsigned n0 = parser_field_count(p);

	/* not registered: not a field, nothing computed */
	for (unsigned i = 0; i < n0; i++)
		assert_string_not_equal(parser_field_name(p, i), "signature");
	parser_event_init(&ev, p);
	for (int i = 0; i < 3; i++)
		assert_int_equal(parser_parse(p, line, sizeof line - 1, 0, &ev), 0);
	assert_int_equal(parser_stats(p)->parsed, 3);
	assert_int_equal(parser_stats(p)->signatures, 0);
	assert_null(ev.raw[n0].p);

	/* registered once, at the end, stable */
	int idx = parser_field_index(p, "signature", 9);
	assert_int_equal(idx, (int)n0);
	assert_int_equal(parser_field_count(p), n0 + 1);
	assert_string_equal(parser_field_name(p, (unsigned)idx), "signature");
	assert_int_equal(parser_field_type(p, (unsigned)idx), PARSER_T_STRING);
	assert_int_equal(parser_field_index(p, "signature", 9), idx);
	assert_int_equal(parser_field_count(p), n0 + 1);
	assert_int_equal(parser_field_index(p, "signaturex", 9), idx); /* by length */
	assert_int_equal(parser_field_index(p, "signatur", 8), -1);

	assert_int_equal(parser_parse(p, line, sizeof line - 1, 0, &ev), 0);
	assert_int_equal(parser_stats(p)->signatures, 1);
	/* a record that does not match computes nothing */
	assert_int_equal(parser_parse(p, "junk", 4, 0, &ev), -EINVAL);
	assert_int_equal(parser_stats(p)->signatures, 1);
	assert_int_equal(parser_stats(p)->signatures_cut, 0);

	/* the view is the parser's, not the record's: the record may go */
	char *copy = strdup(line);
	assert_non_null(copy);
	assert_int_equal(parser_parse(p, copy, strlen(copy), 0, &ev), 0);
	memset(copy, 'x', strlen(copy));
	free(copy);
	assert_int_equal(ev.raw[idx].len, strlen("GET /api/debts/<n> HTTP/1.1"));
	assert_memory_equal(ev.raw[idx].p, "GET /api/debts/<n> HTTP/1.1", ev.raw[idx].len);

	/* in the event's JSON (the other fields are views into the record) */
	assert_int_equal(parser_parse(p, line, sizeof line - 1, 0, &ev), 0);
	struct kl_buf out = { 0 };
	assert_int_equal(parser_event_json(&ev, "nginx", &out), 0);
	assert_non_null(strstr(out.p, "\"signature\":\"GET /api/debts/<n> HTTP/1.1\""));
	kl_buf_free(&out);
	parser_free(p);
}

/* The signature survives parser_event_json as valid JSON, and says the
 * same bytes (checked with jansson). */
static void expect_json_(struct parser *p, const char *rec, size_t len, const char *want,
			 size_t wantlen, int line)
{
	struct parser_event ev;
	int idx = sig_idx(p);
	parser_event_init(&ev, p);
	assert_int_equal(parser_parse(p, rec, len, 0, &ev), 0);
	struct kl_buf out = { 0 };
	assert_int_equal(parser_event_json(&ev, "t", &out), 0);
	json_error_t jerr;
	json_t *j = json_loadb(out.p, out.len, JSON_ALLOW_NUL, &jerr);
	if (!j) {
		print_error("line %d: invalid JSON (%s): %s\n", line, jerr.text, out.p);
		fail();
	}
	json_t *s = json_object_get(json_object_get(j, "fields"), "signature");
	assert_non_null(s);
	if (want) {
		if (json_string_length(s) != wantlen || memcmp(json_string_value(s), want, wantlen)) {
			print_error("line %d: JSON signature %s\n", line, json_string_value(s));
			fail();
		}
		assert_int_equal(ev.raw[idx].len, wantlen);
	}
	json_decref(j);
	kl_buf_free(&out);
}
#define expect_json(p, rec, len, want, wantlen) expect_json_(p, rec, len, want, wantlen, __LINE__)

static void test_edges(void **state)
{
	(void)state;
	struct parser *p = masker();
	const size_t big = 1 << 20;
	char *rec = malloc(big);
	assert_non_null(rec);

	/* 1 MiB of numbers: cut at the cap between two masks */
	for (size_t i = 0; i < big; i++)
		rec[i] = i % 4 == 3 ? ' ' : (char)('0' + i % 4);
	const char *s = sign_n(p, rec, big);
	assert_non_null(s);
	assert_true(got_len <= PARSER_SIGNATURE_MAX && got_len > PARSER_SIGNATURE_MAX - 4);
	assert_int_equal(got_len % 4, 3); /* "<n> <n> ... <n>": no half mask, no trailing blank */
	assert_memory_equal(s + got_len - 3, "<n>", 3);
	assert_int_equal(parser_stats(p)->signatures_cut, 1);

	/* 1 MiB of letters: cut at the cap exactly */
	memset(rec, 'a', big);
	assert_non_null(sign_n(p, rec, big));
	assert_int_equal(got_len, PARSER_SIGNATURE_MAX);
	assert_int_equal(parser_stats(p)->signatures_cut, 2);

	/* a 1 MiB quoted string is one mask; so is a long line of one quote */
	rec[0] = '\'';
	rec[big - 1] = '\'';
	assert_string_equal(sign_n(p, rec, big), "'<s>'");
	rec[big - 1] = 'a';
	assert_non_null(sign_n(p, rec, big));
	assert_int_equal(got_len, PARSER_SIGNATURE_MAX);

	/* é (2 bytes) after one byte: the cut falls inside a sequence, and
	 * drops its first half */
	rec[0] = 'x';
	for (size_t i = 1; i + 1 < big; i += 2) {
		rec[i] = '\xc3';
		rec[i + 1] = '\xa9';
	}
	assert_non_null(sign_n(p, rec, big - 1));
	assert_int_equal(got_len, PARSER_SIGNATURE_MAX - 1);
	assert_int_equal((unsigned char)got[got_len - 1], 0xa9);
	expect_json(p, rec, big - 1, NULL, 0);
	assert_int_equal(parser_stats(p)->signatures_cut, 5);

	/* exactly at the cap: not cut */
	memset(rec, 'b', PARSER_SIGNATURE_MAX);
	assert_non_null(sign_n(p, rec, PARSER_SIGNATURE_MAX));
	assert_int_equal(got_len, PARSER_SIGNATURE_MAX);
	assert_int_equal(parser_stats(p)->signatures_cut, 5);
	free(rec);

	/* invalid UTF-8 and NULs are kept as bytes; the JSON stays valid */
	static const char bad[] = "id 42 \xff\xfe caf\xc3 \x80 x\0y 7\0" "8";
	expect_sig(p, "", "");
	s = sign_n(p, bad, sizeof bad - 1);
	static const char want[] = "id <n> \xff\xfe caf\xc3 \x80 x\0y <n>\0<n>";
	assert_int_equal(got_len, sizeof want - 1);
	assert_memory_equal(s, want, sizeof want - 1);
	expect_json(p, bad, sizeof bad - 1, NULL, 0);
	/* control bytes other than blanks are kept too */
	static const char ctl[] = "a\x01" "1\x1b[0m";
	s = sign_n(p, ctl, sizeof ctl - 1);
	assert_string_equal(s, "a\x01<n>\x1b[<n>m");
	expect_json(p, "x \"q\" 1", 7, "x \"<s>\" <n>", 11);
	parser_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_masks),  cmocka_unit_test(test_nginx),
		cmocka_unit_test(test_django), cmocka_unit_test(test_postgres),
		cmocka_unit_test(test_json),   cmocka_unit_test(test_regex),
		cmocka_unit_test(test_lazy),   cmocka_unit_test(test_edges),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
