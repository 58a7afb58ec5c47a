/*
 * test_json.c — the json built-in: JSON lines with any key path as a field.
 *
 * The registry (fields registered on lookup), nested and dotted keys, string
 * escapes (\u escapes, surrogate pairs, lone surrogates, \u0000), numbers
 * kept as text and typed only when declared, literals, duplicate keys, the
 * time field (ISO 8601, strptime formats, epoch numbers), malformed input
 * (counted), the scratch buffer's lifetime rule, and the event's JSON
 * (checked with jansson).
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

#include "common/kl.h"
#include "parsers/parsers.h"

#define ABSENT ((const char *)1)
#define READ_US 77

static struct parser *make_spec(struct parser_spec *spec)
{
	char err[256];
	spec->name = "app";
	spec->type = "json";
	struct parser *p = parser_new(spec, err, sizeof err, NULL);
	if (!p)
		print_error("json: %s\n", err);
	assert_non_null(p);
	return p;
}

static struct parser *make(void)
{
	struct parser_spec spec = { 0 };
	return make_spec(&spec);
}

static int field(struct parser *p, const char *name)
{
	int idx = parser_field_index(p, name, strlen(name));
	if (idx < 0)
		print_error("cannot register '%s'\n", name);
	assert_true(idx >= 0);
	return idx;
}

static int parse(struct parser *p, const char *s, struct parser_event *ev)
{
	parser_event_init(ev, p);
	return parser_parse(p, s, strlen(s), READ_US, ev);
}

static void expect_bytes_(struct parser_event *ev, const char *name, const char *want,
			  size_t wlen, int line)
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
	if (!got.p || got.len != wlen || memcmp(got.p, want, wlen) != 0) {
		print_error("line %d: %s = '%.*s'%s (%zu bytes), expected '%s' (%zu bytes)\n", line,
			    name, got.p ? (int)got.len : 0, got.p ? got.p : "",
			    got.p ? "" : " (absent)", got.len, want, wlen);
		fail();
	}
}
#define expect_str(ev, name, want) \
	expect_bytes_(ev, name, want, (want) == ABSENT ? 0 : strlen(want), __LINE__)
#define expect_bytes(ev, name, lit) expect_bytes_(ev, name, lit, sizeof(lit) - 1, __LINE__)

static void expect_num_(struct parser_event *ev, const char *name, int want_rc, double want,
			int line)
{
	int idx = parser_field_index(ev->parser, name, strlen(name));
	double got = -12345;
	int rc = parser_event_number(ev, (unsigned)idx, &got);
	if (rc != want_rc || (rc == 0 && fabs(got - want) > 1e-9 * fmax(1, fabs(want)))) {
		print_error("line %d: %s → rc %d value %.17g, expected rc %d value %.17g\n", line,
			    name, rc, got, want_rc, want);
		fail();
	}
}
#define expect_num(ev, name, want) expect_num_(ev, name, 0, want, __LINE__)
#define expect_num_err(ev, name, rc) expect_num_(ev, name, rc, 0, __LINE__)

/* The event as JSON, loaded by jansson; caller decrefs. */
static json_t *event_json(struct parser_event *ev)
{
	struct kl_buf out = { 0 };
	json_error_t jerr;
	assert_int_equal(parser_event_json(ev, "app", &out), 0);
	json_t *j = json_loadb(out.p, out.len, JSON_ALLOW_NUL, &jerr);
	if (!j)
		print_error("%s: %.*s\n", jerr.text, (int)out.len, out.p);
	assert_non_null(j);
	kl_buf_free(&out);
	return j;
}

/* ---- tests -------------------------------------------------------------- */

static void test_registry(void **state)
{
	(void)state;
	struct parser *p = make();
	struct parser_multiline ml;

	assert_false(parser_default_multiline(p, &ml));
	/* the default time field is there from the start */
	assert_int_equal(parser_field_count(p), 1);
	assert_string_equal(parser_field_name(p, 0), "time");
	assert_int_equal(parser_field_type(p, 0), PARSER_T_TIME);

	int a = field(p, "level"), b = field(p, "http.status");
	assert_int_equal(a, 1);
	assert_int_equal(b, 2);
	assert_int_equal(field(p, "level"), a); /* the same name, the same field */
	assert_int_equal(parser_field_count(p), 3);
	assert_string_equal(parser_field_name(p, 2), "http.status");
	/* undeclared fields are strings for the rules */
	assert_int_equal(parser_field_type(p, (unsigned)b), PARSER_T_STRING);
	assert_false(parser_type_is_numeric(parser_field_type(p, (unsigned)b)));
	/* names that cannot be fields */
	assert_int_equal(parser_field_index(p, "", 0), -1);
	assert_int_equal(parser_field_index(p, "a\0b", 3), -1);
	assert_int_equal(parser_field_index(p, NULL, 0), -1);
	/* only the first len bytes count */
	assert_int_equal(parser_field_index(p, "levelXYZ", 5), a);

	/* up to PARSER_MAX_FIELDS */
	char name[32];
	for (unsigned i = parser_field_count(p); i < PARSER_MAX_FIELDS; i++) {
		snprintf(name, sizeof name, "f%u", i);
		assert_int_equal(parser_field_index(p, name, strlen(name)), (int)i);
	}
	assert_int_equal(parser_field_index(p, "one.too.many", 12), -1);
	assert_int_equal(parser_field_count(p), PARSER_MAX_FIELDS);

	/* registered after a parse: filled from the next parse on */
	parser_free(p);
	p = make();
	struct parser_event ev;
	assert_int_equal(parse(p, "{\"a\":1,\"b\":\"x\"}", &ev), 0);
	field(p, "b");
	assert_int_equal(parse(p, "{\"a\":1,\"b\":\"x\"}", &ev), 0);
	expect_str(&ev, "b", "x");
	parser_free(p);
}

static void test_values(void **state)
{
	(void)state;
	struct parser *p = make();
	struct parser_event ev;
	field(p, "level");
	field(p, "msg");
	field(p, "latency_ms");
	field(p, "user.id");
	field(p, "user.name");
	field(p, "user");
	field(p, "tags");
	field(p, "ok");
	field(p, "gone");
	field(p, "neg");

	assert_int_equal(parse(p, " {\"time\":\"2023-11-14T22:13:20.123Z\", \"level\":\"error\","
				  "\"msg\":\"boom\",\"latency_ms\":12.5,"
				  "\"user\":{\"id\":42,\"name\":\"alice\",\"roles\":[\"a\",{\"b\":null}]},"
				  "\"tags\":[1,2,3],\"ok\":true,\"gone\":null,\"neg\":-1.5e-3,"
				  "\"other\":{\"deep\":[[[{}]]]}}\r\n", &ev), 0);
	assert_int_equal(ev.time_us, 1700000000123000LL);
	expect_str(&ev, "level", "error");
	expect_str(&ev, "msg", "boom");
	expect_str(&ev, "latency_ms", "12.5");
	expect_str(&ev, "user.id", "42");
	expect_str(&ev, "user.name", "alice");
	expect_str(&ev, "user", "{\"id\":42,\"name\":\"alice\",\"roles\":[\"a\",{\"b\":null}]}");
	expect_str(&ev, "tags", "[1,2,3]");
	expect_str(&ev, "ok", "true");
	expect_str(&ev, "gone", ABSENT);
	expect_str(&ev, "neg", "-1.5e-3");
	/* undeclared: not numbers for rules */
	expect_num_err(&ev, "latency_ms", -EINVAL);

	/* but numbers (and true) in the event's JSON; objects as strings */
	json_t *j = event_json(&ev);
	json_t *f = json_object_get(j, "fields");
	assert_true(json_is_real(json_object_get(f, "latency_ms")));
	assert_true(json_real_value(json_object_get(f, "latency_ms")) == 12.5);
	assert_true(json_is_integer(json_object_get(f, "user.id")));
	assert_true(json_is_true(json_object_get(f, "ok")));
	assert_true(json_is_string(json_object_get(f, "user")));
	assert_true(json_is_string(json_object_get(f, "msg")));
	assert_null(json_object_get(f, "gone"));
	assert_null(json_object_get(f, "time"));
	json_decref(j);

	/* a field that is a number in one record and a string in the next */
	assert_int_equal(parse(p, "{\"user\":{\"id\":\"42\"},\"msg\":7}", &ev), 0);
	expect_str(&ev, "user.id", "42");
	assert_false(ev.literal >> parser_field_index(p, "user.id", 7) & 1);
	assert_true(ev.literal >> parser_field_index(p, "msg", 3) & 1);
	expect_str(&ev, "level", ABSENT);
	assert_int_equal(ev.time_us, READ_US); /* no "time": the read time */

	/* a number out of double's range is written as a string */
	assert_int_equal(parse(p, "{\"msg\":1e400}", &ev), 0);
	j = event_json(&ev);
	assert_true(json_is_string(json_object_get(json_object_get(j, "fields"), "msg")));
	json_decref(j);
	/* an integer beyond int64 as a double (jansson refused the digits; found
	 * by fuzz_json), one within int64 as written */
	assert_int_equal(parse(p, "{\"msg\":111111111111111111111111111111111111111111111111111111111111111111111111110,"
				  "\"level\":9223372036854775807}", &ev), 0);
	expect_str(&ev, "msg", "111111111111111111111111111111111111111111111111111111111111111111111111110");
	j = event_json(&ev);
	assert_true(json_is_real(json_object_get(json_object_get(j, "fields"), "msg")));
	assert_true(json_integer_value(json_object_get(json_object_get(j, "fields"), "level")) ==
		    9223372036854775807LL);
	json_decref(j);

	/* the last of repeated keys wins, null included */
	assert_int_equal(parse(p, "{\"msg\":\"a\",\"msg\":\"b\",\"level\":\"x\",\"level\":null}", &ev), 0);
	expect_str(&ev, "msg", "b");
	expect_str(&ev, "level", ABSENT);
	parser_free(p);
}

static void test_paths(void **state)
{
	(void)state;
	struct parser *p = make();
	struct parser_event ev;
	field(p, "http.status");
	field(p, "a.b.c");
	field(p, "a.b");
	field(p, "x.y");

	/* nested */
	assert_int_equal(parse(p, "{\"http\":{\"method\":\"GET\",\"status\":503},\"a\":{\"b\":{\"c\":\"deep\"}}}", &ev), 0);
	expect_str(&ev, "http.status", "503");
	expect_str(&ev, "a.b.c", "deep");
	expect_str(&ev, "a.b", "{\"c\":\"deep\"}");
	/* flat dotted keys, and mixtures */
	assert_int_equal(parse(p, "{\"http.status\":200,\"a\":{\"b.c\":\"mixed\"},\"a.b\":5}", &ev), 0);
	expect_str(&ev, "http.status", "200");
	expect_str(&ev, "a.b.c", "mixed");
	expect_str(&ev, "a.b", "5");
	/* a prefix of a key is not the key; an array is not an object */
	assert_int_equal(parse(p, "{\"http\":{\"statusx\":1},\"x\":[{\"y\":1}],\"xy\":2,\"x.\":3}", &ev), 0);
	expect_str(&ev, "http.status", ABSENT);
	expect_str(&ev, "x.y", ABSENT);
	parser_free(p);
}

static void test_escapes(void **state)
{
	(void)state;
	struct parser *p = make();
	struct parser_event ev;
	field(p, "s");
	field(p, "user");

	assert_int_equal(parse(p, "{\"s\":\"q\\\" b\\\\ s\\/ \\b\\f\\n\\r\\t\"}", &ev), 0);
	expect_bytes(&ev, "s", "q\" b\\ s/ \b\f\n\r\t");
	/* \u escapes to UTF-8: é, €, a pair (😀), upper-case hex */
	assert_int_equal(parse(p, "{\"s\":\"\\u00e9\\u20AC\\ud83d\\ude00\"}", &ev), 0);
	expect_bytes(&ev, "s", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
	/* lone surrogates become U+FFFD; a high one before a non-low escape too */
	assert_int_equal(parse(p, "{\"s\":\"\\ud83dx\\ude00\\ud800\\u0041\"}", &ev), 0);
	expect_bytes(&ev, "s", "\xef\xbf\xbdx\xef\xbf\xbd\xef\xbf\xbd" "A");
	/* \u0000 is a NUL byte in the value */
	assert_int_equal(parse(p, "{\"s\":\"a\\u0000b\"}", &ev), 0);
	expect_bytes(&ev, "s", "a\0b");
	/* raw control bytes and invalid UTF-8 inside strings are just bytes */
	assert_int_equal(parse(p, "{\"s\":\"a\tb\x01\xff\"}", &ev), 0);
	expect_bytes(&ev, "s", "a\tb\x01\xff");
	/* an escaped key matches its unescaped name */
	assert_int_equal(parse(p, "{\"us\\u0065r\":\"bob\",\"\\u0073\":\"k\"}", &ev), 0);
	expect_str(&ev, "user", "bob");
	expect_str(&ev, "s", "k");
	/* the event's JSON is valid whatever the bytes */
	assert_int_equal(parse(p, "{\"s\":\"\\u0000\\ud800\x80\x01\"}", &ev), 0);
	json_t *j = event_json(&ev);
	json_decref(j);
	parser_free(p);
}

static void test_malformed(void **state)
{
	(void)state;
	struct parser *p = make();
	struct parser_event ev;
	field(p, "a");
	field(p, "a.b");
	static const char *const bad[] = {
		"", " ", "{", "}", "{\"a\":}", "{\"a\" 1}", "{\"a\":1,}", "{,}", "{\"a\":1 \"b\":2}",
		"[1,2]", "\"str\"", "42", "null", "{\"a\":01}", "{\"a\":1.}", "{\"a\":-}",
		"{\"a\":.5}", "{\"a\":1e}", "{\"a\":+1}", "{\"a\":tru}", "{\"a\":nul}",
		"{\"a\":True}", "{\"a\":\"\\x\"}", "{\"a\":\"\\u12g4\"}", "{\"a\":\"\\u12\"}",
		"{\"a\":\"open}", "{\"a\":\"x\\", "{} x", "{}{}", "{'a':1}", "{a:1}",
		"{\"a\":[1,]}", "{\"a\":[1 2]}", "{\"a\":{\"b\":}}", "{\"a\":{\"b\":1}",
		"{\"a\":NaN}", "{\"a\":Infinity}", "\xef\xbb\xbf{}",
	};
	uint64_t um = parser_stats(p)->unmatched;
	for (size_t i = 0; i < KL_ARRAY_LEN(bad); i++) {
		if (parse(p, bad[i], &ev) != -EINVAL) {
			print_error("accepted: '%s'\n", bad[i]);
			fail();
		}
	}
	assert_int_equal(parser_stats(p)->unmatched, um + KL_ARRAY_LEN(bad));
	/* deep nesting: a limit, not a crash */
	struct kl_buf b = { 0 };
	kl_buf_append_str(&b, "{\"a\":");
	for (int i = 0; i < 200; i++)
		kl_buf_append_str(&b, "[");
	for (int i = 0; i < 200; i++)
		kl_buf_append_str(&b, "]");
	kl_buf_append_str(&b, "}");
	assert_int_equal(parse(p, b.p, &ev), -EINVAL);
	kl_buf_reset(&b);
	kl_buf_append_str(&b, "{\"a\":");
	for (int i = 0; i < 100; i++)
		kl_buf_append_str(&b, "[");
	for (int i = 0; i < 100; i++)
		kl_buf_append_str(&b, "]");
	kl_buf_append_str(&b, "}");
	assert_int_equal(parse(p, b.p, &ev), 0);
	kl_buf_free(&b);
	/* fine ones */
	assert_int_equal(parse(p, "{}", &ev), 0);
	assert_int_equal(parse(p, "\t{ \"a\" : { } }\n ", &ev), 0);
	assert_int_equal(parse(p, "{\"a\":-0.0e+00}", &ev), 0);
	parser_free(p);
}

static void test_types(void **state)
{
	(void)state;
	struct parser_field_spec types[] = {
		{ "status", PARSER_T_INT },   { "ratio", PARSER_T_FLOAT },
		{ "took", PARSER_T_SECONDS }, { "latency_ms", PARSER_T_MS },
		{ "http.bytes", PARSER_T_INT }, { "name", PARSER_T_STRING },
	};
	struct parser_spec spec = { .types = types, .ntypes = KL_ARRAY_LEN(types) };
	struct parser *p = make_spec(&spec);
	struct parser_event ev;

	int st = field(p, "status");
	assert_int_equal(parser_field_type(p, (unsigned)st), PARSER_T_INT);
	assert_int_equal(parser_field_type(p, (unsigned)field(p, "latency_ms")), PARSER_T_MS);
	assert_int_equal(parse(p, "{\"status\":503,\"ratio\":0.25,\"took\":\"1.5\",\"latency_ms\":1234.5,"
				  "\"http\":{\"bytes\":\"2048\"},\"name\":12}", &ev), 0);
	expect_num(&ev, "status", 503);
	expect_num(&ev, "ratio", 0.25);
	expect_num(&ev, "took", 1.5);	  /* a numeric string converts too */
	expect_num(&ev, "latency_ms", 1.2345); /* ms → seconds */
	expect_num(&ev, "http.bytes", 2048);
	expect_num_err(&ev, "name", -EINVAL);
	json_t *j = event_json(&ev);
	json_t *f = json_object_get(j, "fields");
	assert_true(json_real_value(json_object_get(f, "latency_ms")) == 1.2345);
	assert_true(json_is_integer(json_object_get(f, "status")));
	assert_true(json_is_integer(json_object_get(f, "name"))); /* a JSON number stays one */
	json_decref(j);
	/* text that is not of the declared type: -EINVAL, kept as text */
	assert_int_equal(parse(p, "{\"status\":\"n/a\",\"ratio\":true,\"took\":null}", &ev), 0);
	expect_num_err(&ev, "status", -EINVAL);
	expect_num_err(&ev, "ratio", -EINVAL);
	expect_num_err(&ev, "took", -ENOENT);
	j = event_json(&ev);
	f = json_object_get(j, "fields");
	assert_string_equal(json_string_value(json_object_get(f, "status")), "n/a");
	assert_true(json_is_true(json_object_get(f, "ratio")));
	json_decref(j);
	parser_free(p);
}

static void test_time(void **state)
{
	(void)state;
	struct parser *p = make();
	struct parser_event ev;

	/* the default "time": ISO 8601 when there, else the read time */
	assert_int_equal(parse(p, "{\"time\":\"2023-11-14T23:13:20+01:00\"}", &ev), 0);
	assert_int_equal(ev.time_us, 1700000000000000LL);
	assert_int_equal(parse(p, "{\"time\":\"2023-11-14 22:13:20,5\"}", &ev), 0);
	assert_int_equal(ev.time_us, 1700000000500000LL);
	assert_int_equal(parse(p, "{\"time\":1700000000.25}", &ev), 0);
	assert_int_equal(ev.time_us, 1700000000250000LL);
	assert_int_equal(parse(p, "{\"time\":\"yesterday\"}", &ev), 0);
	assert_int_equal(ev.time_us, READ_US);
	assert_int_equal(parse(p, "{\"msg\":1}", &ev), 0);
	assert_int_equal(ev.time_us, READ_US);
	assert_int_equal(parser_stats(p)->bad_time, 0);
	parser_free(p);

	/* an explicit field: numbers as epoch s/ms/µs/ns; missing or bad: bad_time */
	struct parser_spec spec = { .time_field = "ts" };
	p = make_spec(&spec);
	assert_int_equal(parse(p, "{\"ts\":1700000000}", &ev), 0);
	assert_int_equal(ev.time_us, 1700000000000000LL);
	assert_int_equal(parse(p, "{\"ts\":1700000000123}", &ev), 0);
	assert_int_equal(ev.time_us, 1700000000123000LL);
	assert_int_equal(parse(p, "{\"ts\":1700000000123456}", &ev), 0);
	assert_int_equal(ev.time_us, 1700000000123456LL);
	assert_int_equal(parse(p, "{\"ts\":1700000000123456789}", &ev), 0);
	assert_int_equal(ev.time_us, 1700000000123456LL);
	assert_int_equal(parse(p, "{\"ts\":\"2023-11-14T22:13:20Z\"}", &ev), 0);
	assert_int_equal(ev.time_us, 1700000000000000LL);
	assert_int_equal(parse(p, "{\"msg\":1}", &ev), -EINVAL);
	assert_int_equal(parse(p, "{\"ts\":-5}", &ev), -EINVAL);
	assert_int_equal(parse(p, "{\"ts\":1.7e9}", &ev), -EINVAL);
	assert_int_equal(parse(p, "{\"ts\":\"soon\"}", &ev), -EINVAL);
	assert_int_equal(parser_stats(p)->bad_time, 4);
	parser_free(p);

	/* a nested time field with a strptime format */
	spec = (struct parser_spec){ .time_field = "meta.at", .time_format = "%d/%b/%Y:%H:%M:%S %z" };
	p = make_spec(&spec);
	assert_int_equal(parse(p, "{\"meta\":{\"at\":\"14/Nov/2023:22:13:20 +0000\"}}", &ev), 0);
	assert_int_equal(ev.time_us, 1700000000000000LL);
	parser_free(p);

	/* "epoch" as a format reads numeric strings */
	spec = (struct parser_spec){ .time_field = "t", .time_format = "epoch" };
	p = make_spec(&spec);
	assert_int_equal(parse(p, "{\"t\":\"1700000000.5\"}", &ev), 0);
	assert_int_equal(ev.time_us, 1700000000500000LL);
	parser_free(p);
}

static void test_options(void **state)
{
	(void)state;
	char err[256];
	struct parser_field_spec t[] = { { "ts", PARSER_T_INT } };
	struct parser_spec spec = { .name = "x", .type = "json", .time_field = "ts", .types = t,
				    .ntypes = 1 };
	assert_null(parser_new(&spec, err, sizeof err, NULL));
	assert_non_null(strstr(err, "types: 'ts' is the time field"));
	spec = (struct parser_spec){ .name = "x", .type = "json", .time_format = "%Q" };
	assert_null(parser_new(&spec, err, sizeof err, NULL));
	assert_non_null(strstr(err, "time.format: unknown conversion %Q"));
	spec = (struct parser_spec){ .name = "x", .type = "json", .regex = "x" };
	assert_null(parser_new(&spec, err, sizeof err, NULL));
	assert_non_null(strstr(err, "has its own regex"));
	spec = (struct parser_spec){ .name = "x", .type = "json", .format = "%(message)s" };
	assert_null(parser_new(&spec, err, sizeof err, NULL));
	assert_non_null(strstr(err, "format: only the django parser"));
}

static void test_scratch(void **state)
{
	(void)state;
	struct parser *p = make();
	struct parser_event ev;
	field(p, "s");
	field(p, "t");

	/* escaped strings live in the parser's buffer, plain ones in the record;
	 * a longer record grows the buffer before any view is made */
	for (size_t n = 1; n <= (1u << 20); n *= 4) {
		struct kl_buf b = { 0 };
		kl_buf_append_str(&b, "{\"s\":\"");
		for (size_t i = 0; i < n; i++)
			kl_buf_append_str(&b, "\\n");
		kl_buf_append_str(&b, "\",\"t\":\"\\u00e9");
		for (size_t i = 0; i < n; i++)
			kl_buf_append_str(&b, "x");
		kl_buf_append_str(&b, "\"}");
		char *rec = malloc(b.len); /* exact size */
		memcpy(rec, b.p, b.len);
		parser_event_init(&ev, p);
		assert_int_equal(parser_parse(p, rec, b.len, 1, &ev), 0);
		int si = parser_field_index(p, "s", 1), ti = parser_field_index(p, "t", 1);
		assert_int_equal(ev.raw[si].len, n);
		assert_int_equal(ev.raw[ti].len, n + 2);
		for (size_t i = 0; i < n; i++)
			assert_int_equal(ev.raw[si].p[i], '\n');
		assert_memory_equal(ev.raw[ti].p, "\xc3\xa9", 2);
		free(rec);
		kl_buf_free(&b);
	}
	parser_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_registry),  cmocka_unit_test(test_values),
		cmocka_unit_test(test_paths),	  cmocka_unit_test(test_escapes),
		cmocka_unit_test(test_malformed), cmocka_unit_test(test_types),
		cmocka_unit_test(test_time),	  cmocka_unit_test(test_options),
		cmocka_unit_test(test_scratch),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
