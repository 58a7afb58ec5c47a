/*
 * test_ruletest.c — the test-file loader of `klaxon test` (src/ruletest.c):
 * offsets and instants, input expansion, the time formats {{time}} is
 * written in, probe results given as `fields:`, and every problem reported
 * at its FILE:LINE:COL.
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

#include "src/ruletest.h"

#define S(x) ((int64_t)(x) * 1000000)

static struct ruletest_file *load(const char *text, char *diag, size_t size, unsigned *errors)
{
	FILE *out = fmemopen(diag, size, "w");
	assert_non_null(out);
	struct kl_diag d = { .out = out };
	struct ruletest_file *f = ruletest_load_mem("t.yml", text, strlen(text), &d);
	fclose(out);
	*errors = d.errors;
	return f;
}

static void test_full_file(void **state)
{
	(void)state;
	static const char text[] =
		"sources: [{name: web, parser: nginx_timed}]\n"
		"rule_files: [r.yml]\n"
		"eval_interval: 500ms\n"
		"start: 2024-01-01T00:00:00Z\n"
		"time_format: {web: '%d/%b/%Y:%H:%M:%S %z'}\n"
		"tests:\n"
		"  - name: one\n"
		"    until: 20m\n"
		"    input:\n"
		"      web:\n"
		"        - {lines: [a, b], every: 10s, for: 1m, at: 2024-01-01T00:01:00Z}\n"
		"        - 'c'\n"
		"        - {line: d, every: 1s, times: 3}\n"
		"    expect:\n"
		"      - {at: 90s, alert: X, labels: {severity: page}, summary: s, within: 3s}\n"
		"      - {at: 5m, alert: X, status: resolved, annotations: {runbook: r}}\n"
		"    absent: [Y, {alert: Z, status: firing, from: 1m, until: 2m}]\n"
		"  - name: two\n"
		"    start: 2024-06-01T12:00:00.5+02:00\n"
		"    input: {web: {line: e}}\n"
		"    absent: [Y]\n";
	char diag[2048] = "";
	unsigned errors;
	struct ruletest_file *f = load(text, diag, sizeof diag, &errors);
	assert_int_equal(errors, 0);
	assert_non_null(f);
	assert_null(f->config_path);
	assert_true(f->has_eval_interval);
	assert_int_equal(f->embedded.n, 3); /* sources, rule_files, eval_interval */
	assert_int_equal(f->ntime_formats, 1);
	assert_string_equal(f->time_formats[0].source, "web");
	assert_int_equal(f->ntests, 2);

	const struct ruletest_case *t = &f->tests[0];
	assert_string_equal(t->name, "one");
	assert_int_equal(t->start_us, S(1704067200));
	assert_int_equal(t->until_us, S(1200));
	assert_int_equal(t->ninputs, 1);
	assert_string_equal(t->inputs[0].source, "web");
	assert_int_equal(t->inputs[0].nitems, 3);
	const struct ruletest_item *it = &t->inputs[0].items[0];
	assert_int_equal(it->nlines, 2);
	assert_int_equal(it->at_us, S(60));
	assert_int_equal(it->every_us, S(10));
	assert_int_equal(it->times, 6); /* 1m / 10s: 60s, 70s, ..., 110s */
	assert_int_equal(it->line, 11);
	assert_int_equal(t->inputs[0].items[1].times, 1);
	assert_string_equal(t->inputs[0].items[1].lines[0], "c");
	assert_int_equal(t->inputs[0].items[2].times, 3);
	assert_int_equal(t->nlines, 12 + 1 + 3);

	assert_int_equal(t->nexpects, 2);
	assert_string_equal(t->expects[0].alert, "X");
	assert_false(t->expects[0].resolved);
	assert_int_equal(t->expects[0].at_us, S(90));
	assert_int_equal(t->expects[0].within_us, S(3));
	assert_int_equal(t->expects[0].nlabels, 1);
	assert_string_equal(t->expects[0].labels[0].value, "page");
	assert_int_equal(t->expects[0].nannotations, 1);
	assert_string_equal(t->expects[0].annotations[0].key, "summary");
	assert_true(t->expects[1].resolved);
	assert_int_equal(t->expects[1].within_us, -1);
	assert_string_equal(t->expects[1].annotations[0].key, "runbook");

	assert_int_equal(t->nabsents, 2);
	assert_string_equal(t->absents[0].alert, "Y");
	assert_int_equal(t->absents[0].until_us, -1);
	assert_int_equal(t->absents[0].status, -1);
	assert_int_equal(t->absents[1].status, 0);
	assert_int_equal(t->absents[1].from_us, S(60));
	assert_int_equal(t->absents[1].until_us, S(120));

	t = &f->tests[1];
	assert_int_equal(t->start_us, S(1717243200 - 7200) + 500000);
	assert_int_equal(t->until_us, -1);
	assert_int_equal(t->inputs[0].nitems, 1);
	ruletest_free(f);
}

static void test_config_form(void **state)
{
	(void)state;
	char diag[1024] = "";
	unsigned errors;
	struct ruletest_file *f = load("config: ../klaxon.yml\nrule_files: r.yml\n"
				       "tests: [{name: a, absent: [X]}]\n",
				       diag, sizeof diag, &errors);
	assert_non_null(f);
	assert_string_equal(f->config_path, "../klaxon.yml"); /* t.yml has no directory */
	assert_int_equal(f->embedded.n, 1);
	assert_false(f->has_eval_interval);
	assert_int_equal(f->tests[0].start_us, RULETEST_DEFAULT_START_US);
	ruletest_free(f);
}

/* A probe's results: `fields:` kept as written, with their positions, one
 * result per repetition; numbers read later by ruletest_probe_number. */
static void test_probe_fields(void **state)
{
	(void)state;
	char diag[1024] = "";
	unsigned errors;
	struct ruletest_file *f = load("config: c\nrule_files: r\ntests:\n"
				       "  - name: a\n"
				       "    absent: [X]\n"
				       "    input:\n"
				       "      web:\n"
				       "        - {fields: {up: 0, error: 'timed out after 5s'}, every: 30s, times: 4}\n"
				       "        - {at: 2m, fields: {status: 200, latency: 0.042}}\n",
				       diag, sizeof diag, &errors);
	if (!f)
		fail_msg("%s", diag);
	const struct ruletest_input *in = &f->tests[0].inputs[0];
	assert_int_equal(in->nitems, 2);
	const struct ruletest_item *it = &in->items[0];
	assert_int_equal(it->nlines, 0);
	assert_int_equal(it->nfields, 2);
	assert_string_equal(it->fields[0].name, "up");
	assert_string_equal(it->fields[0].value, "0");
	assert_string_equal(it->fields[1].name, "error");
	assert_string_equal(it->fields[1].value, "timed out after 5s");
	assert_int_equal(it->fields[1].line, 8);
	assert_int_equal(it->fields[1].col, 35); /* the quote */
	assert_int_equal(it->fields[1].name_line, 8);
	assert_int_equal(it->fields[1].name_col, 28);
	assert_int_equal(it->times, 4);
	assert_int_equal(it->every_us, S(30));
	assert_int_equal(in->items[1].at_us, S(120));
	assert_int_equal(in->items[1].nfields, 2);
	assert_int_equal(f->tests[0].nlines, 5); /* results, one per repetition */
	ruletest_free(f);

	double v;
	assert_int_equal(ruletest_probe_number("0.042", 5, false, &v), 0);
	assert_true(v == 0.042);
	assert_int_equal(ruletest_probe_number("-3", 2, false, &v), 0);
	assert_true(v == -3);
	assert_int_equal(ruletest_probe_number("27h", 3, true, &v), 0);
	assert_true(v == 27 * 3600);
	assert_int_equal(ruletest_probe_number("1m30s", 5, true, &v), 0);
	assert_true(v == 90);
	assert_int_equal(ruletest_probe_number("90", 2, true, &v), 0);
	assert_true(v == 90);
	assert_int_equal(ruletest_probe_number("27h", 3, false, &v), -EINVAL); /* not seconds */
	assert_int_equal(ruletest_probe_number("12%", 3, false, &v), -EINVAL);
	assert_int_equal(ruletest_probe_number("", 0, true, &v), -EINVAL);
	assert_int_equal(ruletest_probe_number("inf", 3, false, &v), -EINVAL);
}

/* Each bad file: the FILE:LINE:COL and a part of the message. */
static void test_problems(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		const char *want;
	} cases[] = {
		{ "rule_files: r\ntests: [{name: a, absent: [X]}]\n", "t.yml:1:1: a test file needs 'config'" },
		{ "config: c\nsources: []\nrule_files: r\ntests: [{name: a, absent: [X]}]\n",
		  "t.yml:2:10: a test file has 'config'" },
		{ "config: c\nrule_files: r\ntests: []\n", "t.yml:3:8: 'tests' is empty" },
		{ "config: c\nrule_files: r\nbogus: 1\ntests: [{name: a, absent: [X]}]\n",
		  "t.yml:3:1: unknown key 'bogus' in a test file" },
		{ "config: c\nrule_files: r\ntests:\n  - {name: a, absent: [X], input: {w: [{line: x, every: 1s}]}}\n",
		  "'every' needs 'for'" },
		{ "config: c\nrule_files: r\ntests:\n  - {name: a, absent: [X], input: {w: [{line: x, for: 1m}]}}\n",
		  "'for' needs 'every'" },
		{ "config: c\nrule_files: r\ntests:\n  - {name: a, absent: [X], input: {w: [{at: 1m}]}}\n",
		  "t.yml:4:40: an input entry needs 'line'" },
		{ "config: c\nrule_files: r\ntests:\n  - {name: a, expect: [{at: soon, alert: X}]}\n",
		  "t.yml:4:29: invalid offset 'soon' for 'at'" },
		{ "config: c\nrule_files: r\ntests:\n  - {name: a, expect: [{at: 1m, alert: X, status: pending}]}\n",
		  "invalid status 'pending'" },
		{ "config: c\nrule_files: r\ntests:\n  - {name: a, start: 2023-11-14T22:00:00Z, expect: [{at: 2023-11-14T21:00:00Z, alert: X}]}\n",
		  "before the test's start" },
		{ "config: c\nrule_files: r\ntests:\n  - {name: a}\n", "t.yml:4:5: a test needs 'expect'" },
		{ "config: c\nrule_files: r\ntests:\n  - {name: a, absent: [X], input: {w: [{line: x, every: 1ms, for: 1h}]}}\n",
		  "more than 1000000 lines" },
		{ "config: c\nrule_files: r\ntime_format: {w: '%Q'}\ntests: [{name: a, absent: [X]}]\n",
		  "t.yml:3:18: time_format: unknown conversion" },
		{ "config: c\nrule_files: r\ntests:\n  - {name: a, absent: [{alert: X, from: 2m, until: 1m}]}\n",
		  "'until' is before 'from'" },
		{ "config: c\nrule_files: r\ntests:\n  - {name: a, absent: [X], input: {w: [{line: x, fields: {up: 0}}]}}\n",
		  "t.yml:4:41: an input entry has 'line' (a log line) or 'fields'" },
		{ "config: c\nrule_files: r\ntests:\n  - {name: a, absent: [X], input: {w: [{lines: [x], fields: {up: 0}}]}}\n",
		  "an input entry has 'lines' (log lines) or 'fields'" },
		{ "config: c\nrule_files: r\ntests:\n  - {name: a, absent: [X], input: {w: [{fields: {}}]}}\n",
		  "t.yml:4:49: 'fields' is empty" },
		{ "config: c\nrule_files: r\ntests:\n  - {name: a, absent: [X], input: {w: [{fields: [up]}]}}\n",
		  "expected a mapping for 'fields'" },
		{ "config: c\nrule_files: r\ntests:\n  - {name: a, absent: [X], input: {w: [{fields: {up: {a: 1}}}]}}\n",
		  "t.yml:4:54: expected a number or a string for 'fields.up', found a mapping" },
		{ "config: c\nrule_files: r\ntests:\n  - {name: a, absent: [X], input: {w: [{fields: {up: ~}}]}}\n",
		  "for 'fields.up', found nothing" },
		{ "config: c\nrule_files: r\ntests:\n  - {name: a, absent: [X], input: {w: [{fields: {up: 1}, every: 1ms, for: 1h}]}}\n",
		  "more than 1000000 lines" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char diag[2048] = "";
		unsigned errors;
		struct ruletest_file *f = load(cases[i].text, diag, sizeof diag, &errors);
		if (f || !strstr(diag, cases[i].want))
			fail_msg("case %zu: wanted '%s', got: %s", i, cases[i].want, diag);
		assert_true(errors > 0);
	}
}

static void test_format_time(void **state)
{
	(void)state;
	struct kl_buf b = { 0 };
	int64_t t = S(1699999200) + 7000; /* 2023-11-14T22:00:00.007Z, a Tuesday */
	assert_int_equal(ruletest_format_time("%d/%b/%Y:%H:%M:%S %z|%F %T,%L|%f|%a %j|%Z|%s|%%", t, &b), 0);
	assert_int_equal(kl_buf_append(&b, "", 1), 0);
	assert_string_equal(b.p, "14/Nov/2023:22:00:00 +0000|2023-11-14 22:00:00,007|007000|Tue 318|UTC|1699999200|%");
	kl_buf_reset(&b);
	assert_int_equal(ruletest_format_time("%Y-%m-%d", S(951782400), &b), 0); /* leap day */
	assert_int_equal(kl_buf_append(&b, "", 1), 0);
	assert_string_equal(b.p, "2000-02-29");
	kl_buf_reset(&b);
	assert_int_equal(ruletest_format_time("%Q", 0, &b), -EINVAL);
	kl_buf_free(&b);
	assert_int_equal(ruletest_time_precision("%s"), 1000000);
	assert_int_equal(ruletest_time_precision("%S.%L"), 1000);
	assert_int_equal(ruletest_time_precision("%S.%f"), 1);
	/* every candidate formats */
	for (const char *const *c = ruletest_time_candidates(); *c; c++) {
		struct kl_buf x = { 0 };
		assert_int_equal(ruletest_format_time(*c, t, &x), 0);
		kl_buf_free(&x);
	}
}

static void test_expand(void **state)
{
	(void)state;
	struct kl_buf b = { 0 };
	const char tmpl[] = "[{{time}}] pid={{n}} {{x}} {{time}}";
	assert_true(ruletest_has_time(tmpl, strlen(tmpl)));
	assert_false(ruletest_has_time("{{tim}}", 7));
	assert_int_equal(ruletest_expand(tmpl, strlen(tmpl), "%H:%M", S(3600 * 5 + 60 * 7), 42, &b), 0);
	assert_int_equal(kl_buf_append(&b, "", 1), 0);
	assert_string_equal(b.p, "[05:07] pid=42 {{x}} 05:07");
	kl_buf_reset(&b);
	assert_int_equal(ruletest_expand(tmpl, strlen(tmpl), NULL, 0, 0, &b), -EINVAL);
	kl_buf_reset(&b);
	assert_int_equal(ruletest_expand("plain", 5, NULL, 0, 0, &b), 0);
	assert_int_equal(b.len, 5);
	kl_buf_free(&b);
}

static void test_instants(void **state)
{
	(void)state;
	int64_t t;
	assert_int_equal(ruletest_parse_instant("2023-11-14T22:13:20Z", 20, &t), 0);
	assert_int_equal(t, S(1700000000));
	assert_int_equal(ruletest_parse_instant("2023-11-14 22:13:20.25z", 23, &t), 0);
	assert_int_equal(t, S(1700000000) + 250000);
	assert_int_equal(ruletest_parse_instant("2023-11-15T00:13:20+02:00", 25, &t), 0);
	assert_int_equal(t, S(1700000000));
	assert_int_equal(ruletest_parse_instant("2023-11-14T17:13:20-05:00", 25, &t), 0);
	assert_int_equal(t, S(1700000000));
	static const char *const bad[] = { "2023-11-14T22:13:20",  "2023-02-29T00:00:00Z",
					   "2023-13-01T00:00:00Z", "2023-11-14T24:00:00Z",
					   "2023-11-14T22:13:20.Z", "2023-11-14T22:13:20+0200",
					   "5m",		    "2023-11-14T22:13:20Zjunk" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(ruletest_parse_instant(bad[i], strlen(bad[i]), &t), -EINVAL);
	assert_int_equal(ruletest_parse_instant("2024-02-29T00:00:00Z", 20, &t), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_file), cmocka_unit_test(test_config_form),
		cmocka_unit_test(test_problems),  cmocka_unit_test(test_format_time),
		cmocka_unit_test(test_expand),	  cmocka_unit_test(test_instants),
		cmocka_unit_test(test_probe_fields),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
