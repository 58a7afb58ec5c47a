/*
 * test_timefmt.c — event-time formats, through the public interface: a regex
 * parser whose one group is the time field, so every case also goes through
 * parser_parse and its bad_time counter.
 *
 * Expected instants were computed independently (Python's datetime).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "parsers/parsers.h"

#define S 1000000LL /* µs per second */

static struct parser *time_parser(const char *fmt)
{
	char err[256];
	struct parser_spec spec = {
		.name = "t",
		.regex = "(?s)\\A(?<t>.*)\\z",
		.time_field = "t",
		.time_format = fmt,
	};
	struct parser *p = parser_new(&spec, err, sizeof err, NULL);
	if (!p)
		print_error("format '%s': %s\n", fmt ? fmt : "(iso8601)", err);
	assert_non_null(p);
	return p;
}

/* Parse text with p; 0 and *us, or -EINVAL. */
static int tp(struct parser *p, const char *text, int64_t *us)
{
	struct parser_event ev;
	parser_event_init(&ev, p);
	int rc = parser_parse(p, text, strlen(text), 42, &ev);
	if (rc == 0)
		*us = ev.time_us;
	return rc;
}

static void expect_time_(struct parser *p, const char *text, int64_t want, int line)
{
	int64_t got = 0;
	int rc = tp(p, text, &got);
	if (rc != 0) {
		print_error("line %d: '%s' did not parse (rc %d), expected %lld\n", line, text, rc,
			    (long long)want);
		fail();
	}
	if (got != want) {
		print_error("line %d: '%s' → %lld, expected %lld (diff %lld µs)\n", line, text,
			    (long long)got, (long long)want, (long long)(got - want));
		fail();
	}
}
#define expect_time(p, text, want) expect_time_(p, text, want, __LINE__)

static void expect_bad_(struct parser *p, const char *text, int line)
{
	int64_t got = 0;
	uint64_t before = parser_stats(p)->bad_time;
	int rc = tp(p, text, &got);
	if (rc != -EINVAL) {
		print_error("line %d: '%s' parsed as %lld; expected a bad time\n", line, text,
			    (long long)got);
		fail();
	}
	assert_int_equal(parser_stats(p)->bad_time, before + 1);
}
#define expect_bad(p, text) expect_bad_(p, text, __LINE__)

static void one_time(const char *fmt, const char *text, int64_t want, int line)
{
	struct parser *p = time_parser(fmt);
	expect_time_(p, text, want, line);
	parser_free(p);
}
#define expect_fmt(fmt, text, want) one_time(fmt, text, want, __LINE__)

static void test_nginx_format(void **state)
{
	(void)state;
	struct parser *p = time_parser("%d/%b/%Y:%H:%M:%S %z");
	expect_time(p, "14/Nov/2023:22:13:20 +0000", 1700000000 * S);
	expect_time(p, "25/Nov/2026:13:27:22 +0000", 1795613242 * S);
	expect_time(p, "14/Nov/2023:22:13:20 -0530", 1700019800 * S);
	expect_time(p, "14/Nov/2023:23:13:20 +0100", 1700000000 * S);
	/* any case of the month name */
	expect_time(p, "14/nov/2023:22:13:20 +0000", 1700000000 * S);
	expect_time(p, "14/NOV/2023:22:13:20 +0000", 1700000000 * S);
	expect_bad(p, "14/Foo/2023:22:13:20 +0000");
	expect_bad(p, "14/No/2023:22:13:20 +0000");
	/* trailing bytes, missing parts, nothing */
	expect_bad(p, "14/Nov/2023:22:13:20 +0000 ");
	expect_bad(p, "14/Nov/2023:22:13:20");
	expect_bad(p, "14/Nov/2023:22:13");
	expect_bad(p, "");
	expect_bad(p, "14/Nov/23:22:13:20 +0000");
	assert_int_equal(parser_stats(p)->parsed, 6);
	parser_free(p);
}

static void test_day_month_year_boundaries(void **state)
{
	(void)state;
	struct parser *p = time_parser("%d/%b/%Y:%H:%M:%S %z");
	/* an offset that moves the instant across a year boundary, both ways */
	expect_time(p, "31/Dec/2023:23:59:59 -0100", 1704070799 * S);
	expect_time(p, "01/Jan/2024:00:30:00 +0100", 1704065400 * S);
	/* leap years */
	expect_time(p, "29/Feb/2024:12:00:00 +0000", 1709208000 * S);
	expect_time(p, "29/Feb/2000:00:00:00 +0000", 951782400 * S);
	expect_bad(p, "29/Feb/2023:12:00:00 +0000");
	expect_bad(p, "29/Feb/1900:12:00:00 +0000");
	expect_bad(p, "30/Feb/2024:12:00:00 +0000");
	expect_bad(p, "31/Apr/2024:12:00:00 +0000");
	expect_bad(p, "32/Jan/2024:12:00:00 +0000");
	expect_bad(p, "00/Jan/2024:12:00:00 +0000");
	/* the last day of each 30-day month is fine */
	expect_time(p, "30/Apr/2024:00:00:00 +0000", (1709208000 + 86400 * 61 - 43200) * S);
	/* times */
	expect_bad(p, "14/Nov/2023:24:00:00 +0000");
	expect_bad(p, "14/Nov/2023:23:60:00 +0000");
	expect_bad(p, "14/Nov/2023:23:59:61 +0000");
	/* a leap second is the next minute's first second */
	expect_time(p, "14/Nov/2023:22:12:60 +0000", 1700000000 * S - 20 * S);
	/* offsets out of range */
	expect_bad(p, "14/Nov/2023:22:13:20 +2400");
	expect_bad(p, "14/Nov/2023:22:13:20 +0160");
	expect_bad(p, "14/Nov/2023:22:13:20 0000");
	parser_free(p);

	struct parser *m = time_parser("%Y-%m-%d %H:%M:%S");
	expect_bad(m, "2023-13-01 00:00:00");
	expect_bad(m, "2023-00-01 00:00:00");
	expect_time(m, "0001-01-01 00:00:00", -62135596800LL * S);
	expect_time(m, "9999-12-31 23:59:59", 253402300799LL * S);
	expect_time(m, "1969-12-31 23:59:59", -1 * S);
	expect_time(m, "1970-01-01 00:00:00", 0);
	parser_free(m);
}

static void test_conversions(void **state)
{
	(void)state;
	/* %Y %m %d %H %M %S, no zone = UTC */
	expect_fmt("%Y-%m-%d %H:%M:%S", "2023-11-14 22:13:20", 1700000000 * S);
	/* single-digit fields */
	expect_fmt("%Y-%m-%d %H:%M:%S", "2023-11-4 9:5:3", 1699088703 * S);
	/* compact, fixed width */
	expect_fmt("%Y%m%d%H%M%S", "20231114221320", 1700000000 * S);
	/* %T */
	expect_fmt("%Y%m%d %T", "20231114 22:13:20", 1700000000 * S);
	/* %e: space-padded day, at the start and after a blank */
	expect_fmt("%b %e %T %Y", "Nov  4 09:05:03 2023", 1699088703 * S);
	expect_fmt("%b %e %T %Y", "Nov 14 22:13:20 2023", 1700000000 * S);
	expect_fmt("%e/%m/%Y", " 4/11/2023", 1699056000 * S);
	/* a blank in the format matches a run of blanks */
	expect_fmt("%Y-%m-%d %H:%M:%S", "2023-11-14  \t22:13:20", 1700000000 * S);
	/* %h is %b */
	expect_fmt("%d %h %Y", "14 Nov 2023", 1699920000 * S);
	/* %% and literals */
	expect_fmt("[%Y-%m-%d %T] %%", "[2023-11-14 22:13:20] %", 1700000000 * S);
	/* %z forms */
	expect_fmt("%Y-%m-%dT%T%z", "2023-11-14T22:13:20Z", 1700000000 * S);
	expect_fmt("%Y-%m-%dT%T%z", "2023-11-14T23:13:20+01", 1700000000 * S);
	expect_fmt("%Y-%m-%dT%T%z", "2023-11-14T23:13:20+0100", 1700000000 * S);
	expect_fmt("%Y-%m-%dT%T%z", "2023-11-14T23:13:20+01:00", 1700000000 * S);
	expect_fmt("%Y-%m-%dT%T%z", "2023-11-14T21:43:20-00:30", 1700000000 * S);
	expect_fmt("%Y-%m-%dT%T %z", "2023-11-14T22:13:20 -0000", 1700000000 * S);
	/* %f: any number of digits, µs precision, further digits truncated */
	expect_fmt("%Y-%m-%d %T.%f", "2023-11-14 22:13:20.5", 1700000000 * S + 500000);
	expect_fmt("%Y-%m-%d %T.%f", "2023-11-14 22:13:20.123", 1700000000 * S + 123000);
	expect_fmt("%Y-%m-%d %T.%f", "2023-11-14 22:13:20.123456", 1700000000 * S + 123456);
	expect_fmt("%Y-%m-%d %T.%f", "2023-11-14 22:13:20.123456789", 1700000000 * S + 123456);
	expect_fmt("%Y-%m-%d %T,%f", "2023-11-14 22:13:20,007", 1700000000 * S + 7000);
	expect_fmt("%Y-%m-%dT%T.%f%z", "2023-11-14T23:13:20.123456+01:00",
		   1700000000 * S + 123456);
	/* a fraction before an offset on the negative side still adds */
	expect_fmt("%Y-%m-%dT%T.%f%z", "1969-12-31T23:59:59.250Z", -1 * S + 250000);

	struct parser *p = time_parser("%Y-%m-%d %T.%f");
	expect_bad(p, "2023-11-14 22:13:20.");
	expect_bad(p, "2023-11-14 22:13:20");
	expect_bad(p, "2023-11-14 22:13:20.12a");
	parser_free(p);
}

static void test_iso8601(void **state)
{
	(void)state;
	struct parser *p = time_parser(NULL);
	struct parser *q = time_parser("iso8601");
	expect_time(p, "2023-11-14T22:13:20Z", 1700000000 * S);
	expect_time(q, "2023-11-14T22:13:20Z", 1700000000 * S);
	expect_time(p, "2023-11-14T23:13:20.123+01:00", 1700000000 * S + 123000);
	expect_time(p, "2023-11-14T23:13:20.123+0100", 1700000000 * S + 123000);
	expect_time(p, "2023-11-14T23:13:20+01", 1700000000 * S);
	expect_time(p, "2023-11-14T17:13:20-05:00", 1700000000 * S);
	/* ' ' instead of 'T', no zone = UTC, Python's comma before millis */
	expect_time(p, "2023-11-14 22:13:20", 1700000000 * S);
	expect_time(p, "2023-11-14 22:13:20,123", 1700000000 * S + 123000);
	expect_time(p, "2023-11-14 22:13:20.000001", 1700000000 * S + 1);
	expect_time(p, "2023-11-14t22:13:20z", 1700000000 * S);
	/* minutes only, date only */
	expect_time(p, "2023-11-14T22:13Z", 1700000000 * S - 20 * S);
	expect_time(p, "2023-11-14", 1699920000 * S);
	/* boundaries */
	expect_time(p, "2024-01-01T00:30:00+01:00", 1704065400 * S);
	expect_time(p, "2024-02-29T12:00:00Z", 1709208000 * S);
	expect_bad(p, "2023-02-29T12:00:00Z");
	expect_bad(p, "2023-13-01T00:00:00Z");
	expect_bad(p, "2023-11-14T24:00:00Z");
	expect_bad(p, "2023-11-14T22:13:20.Z");
	expect_bad(p, "2023-11-14T22:13:20+25:00");
	expect_bad(p, "2023-11-14X22:13:20");
	expect_bad(p, "2023-11-14T22:13:20Z ");
	expect_bad(p, "2023-11-14T22");
	expect_bad(p, "23-11-14T22:13:20");
	expect_bad(p, "2023/11/14 22:13:20");
	expect_bad(p, "");
	parser_free(p);
	parser_free(q);
}

/* The one-entry cache must never change an answer: compare a warm parser with
 * a fresh one on texts that share prefixes with the previous one. */
static void test_cache_is_transparent(void **state)
{
	(void)state;
	static const struct {
		const char *fmt;
		const char *texts[10];
	} cases[] = {
		{ "%d/%b/%Y:%H:%M:%S %z",
		  { "14/Nov/2023:22:13:20 +0000", "14/Nov/2023:22:13:20 +0000",
		    "14/Nov/2023:22:13:20 +0100", "14/Nov/2023:22:13:20 +0100 ",
		    "14/Nov/2023:22:13:21 +0100", "14/Nov/2023:22:13:2 +0100",
		    "14/Nov/2023:22:13:20 +0000", NULL } },
		{ NULL,
		  { "2023-11-14T22:13:20.123Z", "2023-11-14T22:13:20.456Z",
		    "2023-11-14T22:13:20.4567891Z", "2023-11-14T22:13:20Z",
		    "2023-11-14T22:13:20.5+01:00", "2023-11-14T22:13:20.5+01:0",
		    "2023-11-14T22:13:20.Z", "2023-11-14T22:13:20.9+01:00",
		    "2023-11-14T22:13:21.000Z", NULL } },
		{ "%Y-%m-%d %T,%f",
		  { "2023-11-14 22:13:20,123", "2023-11-14 22:13:20,9", "2023-11-14 22:13:20,",
		    "2023-11-14 22:13:20,12x", "2023-11-14 22:13:20,000000001", NULL } },
		/* a fraction with no literal before it is cached as whole text */
		{ "%Y%m%d%H%M%S%f",
		  { "20231114221320123", "20231114221320456", "2023111422132", NULL } },
	};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		struct parser *warm = time_parser(cases[c].fmt);
		for (size_t i = 0; cases[c].texts[i]; i++) {
			struct parser *cold = time_parser(cases[c].fmt);
			int64_t a = -1, b = -1;
			int ra = tp(warm, cases[c].texts[i], &a);
			int rb = tp(cold, cases[c].texts[i], &b);
			if (ra != rb || (ra == 0 && a != b)) {
				print_error("'%s': warm %d/%lld, cold %d/%lld\n", cases[c].texts[i],
					    ra, (long long)a, rb, (long long)b);
				fail();
			}
			parser_free(cold);
		}
		parser_free(warm);
	}
}

static void expect_compile_error(const char *fmt, const char *want)
{
	char err[256] = "";
	struct parser_spec spec = {
		.regex = "(?<t>.*)", .time_field = "t", .time_format = fmt,
	};
	struct parser *p = parser_new(&spec, err, sizeof err, NULL);
	if (p || !strstr(err, want)) {
		print_error("format '%s': got '%s', expected an error with '%s'\n", fmt, err, want);
		parser_free(p);
		fail();
	}
}

static void test_format_errors(void **state)
{
	(void)state;
	expect_compile_error("%d/%b/%Y:%Q", "time.format: unknown conversion %Q");
	expect_compile_error("%Y-%m-%d %", "lone '%'");
	expect_compile_error("%H:%M:%S", "needs a year");
	expect_compile_error("%Y-%d", "needs a year");
	expect_compile_error("%Y-%m-%d %Y", "%Y appears twice");
	expect_compile_error("%Y-%m-%b", "%b appears twice");
	expect_compile_error("%Y-%m-%d %H %T", "%T repeats");
	expect_compile_error("%Y-%m-%d %j", "unknown conversion %j");
	expect_compile_error("%Y-%m-%d %\x01", "unknown conversion %\\x01");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nginx_format),
		cmocka_unit_test(test_day_month_year_boundaries),
		cmocka_unit_test(test_conversions),
		cmocka_unit_test(test_iso8601),
		cmocka_unit_test(test_cache_is_transparent),
		cmocka_unit_test(test_format_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
