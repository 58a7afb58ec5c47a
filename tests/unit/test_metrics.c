/*
 * test_metrics.c — unit tests for src/metrics.c: label escaping, the families
 * and their HELP/TYPE lines, counters and gauges per source, rule and sink,
 * the histogram's cumulative buckets, number formatting, and the rules of
 * the text format a strict parser holds us to (one HELP and TYPE per family,
 * families not interleaved, every sample line `name{labels} value`).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "src/metrics.h"

static char *render(const struct metrics_snapshot *s)
{
	struct kl_buf b = { 0 };
	assert_int_equal(metrics_render(s, &b), 0);
	assert_int_equal(kl_buf_append(&b, "", 1), 0);
	return b.p;
}

/* The line of text that starts with prefix (whole line), or NULL. */
static const char *line_of(const char *text, const char *prefix)
{
	size_t n = strlen(prefix);
	for (const char *p = text; p && *p;) {
		if (!strncmp(p, prefix, n))
			return p;
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return NULL;
}

static void has_line(const char *text, const char *want)
{
	const char *p = line_of(text, want);
	if (!p || (p[strlen(want)] != '\n' && p[strlen(want)] != '\0'))
		fail_msg("no line \"%s\" in:\n%s", want, text);
}

static const char *esc(const char *v)
{
	static struct kl_buf b;
	kl_buf_reset(&b);
	assert_int_equal(metrics_label_value(&b, v), 0);
	assert_int_equal(kl_buf_append(&b, "", 1), 0);
	return b.p;
}

static void test_label_escape(void **state)
{
	assert_string_equal(esc("nginx"), "nginx");
	assert_string_equal(esc("a\\b"), "a\\\\b");
	assert_string_equal(esc("say \"hi\""), "say \\\"hi\\\"");
	assert_string_equal(esc("two\nlines"), "two\\nlines");
	assert_string_equal(esc("tab\tstays"), "tab\tstays");
	assert_string_equal(esc("caf\xc3\xa9"), "caf\xc3\xa9");	/* valid UTF-8 kept */
	assert_string_equal(esc("bad\xff!"), "bad\xef\xbf\xbd!"); /* replaced */
	assert_string_equal(esc("cut\xe2\x82"), "cut\xef\xbf\xbd");
	assert_string_equal(esc(""), "");
}

static const double le[3] = { 0.001, 0.25, 10 };

static void test_full(void **state)
{
	struct metrics_source src[] = {
		{ "nginx", 100, 9000, 98, 2, 0, 0.0 },
		{ "we\"ird", 5, 50, 5, 0, 4096, 3.5 },
	};
	struct metrics_rule rules[] = {
		{ "HighErrorRate", "rules/nginx.yml", 3, 42, 0.0015, 1, 2 },
		{ "HighErrorRate", "rules/nginx.yml", 12, 40, 0.5, 0, 0 },
	};
	struct metrics_sink sinks[] = {
		{ "oncall", "webhook", 7, 1, 3, 8 },
		{ "stdout", "stdout", 9, 0, 0, 0 },
	};
	uint64_t counts[4] = { 1, 2, 0, 1 };
	struct metrics_snapshot s = {
		.version = "0.1.0",
		.sources = src, .nsources = 2,
		.rules = rules, .nrules = 2,
		.rules_groups_dropped = 4, .rules_late_events = 5,
		.sinks = sinks, .nsinks = 2,
		.line_to_page = { le, 3, counts, 4, 11.25 },
	};
	char *t = render(&s);

	has_line(t, "klaxon_build_info{version=\"0.1.0\"} 1");
	has_line(t, "# TYPE klaxon_source_lines_total counter");
	has_line(t, "klaxon_source_lines_total{source=\"nginx\"} 100");
	has_line(t, "klaxon_source_lines_total{source=\"we\\\"ird\"} 5");
	has_line(t, "klaxon_source_bytes_total{source=\"nginx\"} 9000");
	has_line(t, "klaxon_source_events_total{source=\"nginx\"} 98");
	has_line(t, "klaxon_source_parse_errors_total{source=\"nginx\"} 2");
	has_line(t, "# TYPE klaxon_source_bytes_behind gauge");
	has_line(t, "klaxon_source_bytes_behind{source=\"we\\\"ird\"} 4096");
	has_line(t, "klaxon_source_seconds_behind{source=\"we\\\"ird\"} 3.5");
	has_line(t, "klaxon_source_seconds_behind{source=\"nginx\"} 0");

	/* two rules of one name stay two series */
	has_line(t, "klaxon_rule_evaluations_total{rule=\"HighErrorRate\",file=\"rules/nginx.yml\","
		    "line=\"3\"} 42");
	has_line(t, "klaxon_rule_evaluations_total{rule=\"HighErrorRate\",file=\"rules/nginx.yml\","
		    "line=\"12\"} 40");
	has_line(t, "klaxon_rule_evaluation_seconds_total{rule=\"HighErrorRate\","
		    "file=\"rules/nginx.yml\",line=\"3\"} 0.0015");
	has_line(t, "klaxon_rule_alerts{rule=\"HighErrorRate\",file=\"rules/nginx.yml\",line=\"3\","
		    "state=\"firing\"} 2");
	has_line(t, "klaxon_rule_alerts{rule=\"HighErrorRate\",file=\"rules/nginx.yml\",line=\"3\","
		    "state=\"pending\"} 1");
	has_line(t, "klaxon_rules_groups_dropped_total 4");
	has_line(t, "klaxon_rules_late_events_total 5");

	has_line(t, "klaxon_sink_sent_total{sink=\"oncall\",type=\"webhook\"} 7");
	has_line(t, "klaxon_sink_failed_total{sink=\"oncall\",type=\"webhook\"} 1");
	has_line(t, "klaxon_sink_retried_total{sink=\"oncall\",type=\"webhook\"} 3");
	has_line(t, "klaxon_sink_spooled_total{sink=\"oncall\",type=\"webhook\"} 8");
	has_line(t, "klaxon_sink_sent_total{sink=\"stdout\",type=\"stdout\"} 9");

	/* cumulative buckets, +Inf = count */
	has_line(t, "# TYPE klaxon_line_to_page_seconds histogram");
	has_line(t, "klaxon_line_to_page_seconds_bucket{le=\"0.001\"} 1");
	has_line(t, "klaxon_line_to_page_seconds_bucket{le=\"0.25\"} 3");
	has_line(t, "klaxon_line_to_page_seconds_bucket{le=\"10\"} 3");
	has_line(t, "klaxon_line_to_page_seconds_bucket{le=\"+Inf\"} 4");
	has_line(t, "klaxon_line_to_page_seconds_sum 11.25");
	has_line(t, "klaxon_line_to_page_seconds_count 4");
	free(t);
}

/* Every family once, HELP before TYPE before its samples, never interleaved;
 * every other line is `name[{...}] value`. */
static void check_structure(const char *t)
{
	char seen[64][80];
	size_t nseen = 0;
	char cur[80] = "";
	for (const char *p = t; *p;) {
		const char *nl = strchr(p, '\n');
		assert_non_null(nl); /* the text ends with a newline */
		size_t n = (size_t)(nl - p);
		char line[1024];
		assert_true(n < sizeof line);
		memcpy(line, p, n);
		line[n] = '\0';
		p = nl + 1;
		if (!strncmp(line, "# HELP ", 7)) {
			char name[80];
			size_t w = strcspn(line + 7, " ");
			assert_true(w > 0 && w < sizeof name);
			snprintf(name, sizeof name, "%.*s", (int)w, line + 7);
			for (size_t i = 0; i < nseen; i++)
				if (!strcmp(seen[i], name))
					fail_msg("family %s twice", name);
			assert_true(nseen < 64);
			snprintf(seen[nseen++], sizeof seen[0], "%s", name);
			snprintf(cur, sizeof cur, "%s", name);
			continue;
		}
		if (!strncmp(line, "# TYPE ", 7)) {
			assert_true(!strncmp(line + 7, cur, strlen(cur)));
			continue;
		}
		/* a sample of the current family */
		size_t cl = strlen(cur);
		if (strncmp(line, cur, cl) != 0)
			fail_msg("sample \"%s\" outside its family (current %s)", line, cur);
		const char *rest = line + cl;
		if (!strncmp(rest, "_bucket", 7))
			rest += 7;
		else if (!strncmp(rest, "_sum", 4))
			rest += 4;
		else if (!strncmp(rest, "_count", 6))
			rest += 6;
		if (*rest == '{') {
			const char *close = strrchr(rest, '}');
			assert_non_null(close);
			rest = close + 1;
		}
		assert_int_equal(*rest, ' ');
		char *end;
		rest++;
		if (strcmp(rest, "NaN") && strcmp(rest, "+Inf") && strcmp(rest, "-Inf")) {
			strtod(rest, &end);
			if (end == rest || *end)
				fail_msg("not a number in \"%s\"", line);
		}
	}
	assert_int_equal(nseen, 17); /* build_info, 6 per source, 5 of rules, 4 per sink, 1 */
}

static void test_structure(void **state)
{
	struct metrics_source src[] = { { "a", 1, 2, 3, 4, 5, 6 }, { "b", 0, 0, 0, 0, 0, 0 } };
	struct metrics_rule rules[] = { { "R", "f.yml", 1, 1, 0.1, 0, 1 } };
	struct metrics_sink sinks[] = { { "s", "slack", 1, 2, 3, 4 } };
	uint64_t counts[4] = { 0, 0, 0, 0 };
	struct metrics_snapshot s = {
		.version = "x",
		.sources = src, .nsources = 2,
		.rules = rules, .nrules = 1,
		.sinks = sinks, .nsinks = 1,
		.line_to_page = { le, 3, counts, 0, 0 },
	};
	char *t = render(&s);
	check_structure(t);
	free(t);
}

/* Nothing configured, no observation: every family is still there. */
static void test_empty(void **state)
{
	struct metrics_snapshot s = { 0 };
	char *t = render(&s);
	check_structure(t);
	has_line(t, "# TYPE klaxon_source_lines_total counter");
	has_line(t, "# TYPE klaxon_rule_alerts gauge");
	has_line(t, "# TYPE klaxon_sink_sent_total counter");
	has_line(t, "klaxon_line_to_page_seconds_bucket{le=\"+Inf\"} 0");
	has_line(t, "klaxon_line_to_page_seconds_sum 0");
	has_line(t, "klaxon_line_to_page_seconds_count 0");
	assert_null(line_of(t, "klaxon_source_lines_total{"));
	free(t);
}

static void test_numbers(void **state)
{
	struct metrics_source src[] = {
		{ "n", 18446744073709551615ULL, 0, 0, 0, 0, NAN },
		{ "i", 0, 0, 0, 0, 0, INFINITY },
		{ "f", 0, 0, 0, 0, 0, 0.1 },
		{ "g", 0, 0, 0, 0, 0, 1e-7 },
	};
	struct metrics_snapshot s = { .sources = src, .nsources = 4 };
	char *t = render(&s);
	has_line(t, "klaxon_source_lines_total{source=\"n\"} 18446744073709551615");
	has_line(t, "klaxon_source_seconds_behind{source=\"n\"} NaN");
	has_line(t, "klaxon_source_seconds_behind{source=\"i\"} +Inf");
	has_line(t, "klaxon_source_seconds_behind{source=\"f\"} 0.1");
	has_line(t, "klaxon_source_seconds_behind{source=\"g\"} 1e-07");
	check_structure(t);
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_label_escape),
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_structure),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_numbers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
