/*
 * fuzz_expr.c — the rule expression language. The input (a NUL-terminated
 * copy; an embedded NUL ends it early) is checked with rules_expr_check
 * against a fixed parser built once:
 *
 *   TIME STATUS RT PATH [METHOD [BYTES]]   status:int rt:seconds bytes:int
 *
 * Invariants (any violation abort()s): the result is 0 or -EINVAL; an error
 * has a message and a column inside the input or just past its end;
 * expr_compile agrees with the check (same result, same message, offset =
 * column - 1). An expression that compiles is then run: a few events go
 * through a window (filters, regexes, every aggregate), each aggregate is
 * read, and everything is freed, so a leak or a bad read shows under ASan.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/kl.h"
#include "parsers/parsers.h"
#include "rules/rules.h"
#include "rules/rules_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Built once, on the first input, and kept for the process's life. */
static struct parser *parser;
static pcre2_match_data *md;

static const char *const lines[] = {
	"2023-11-14T22:13:20.000Z 503 0.412 /api/debts GET 1200",
	"2023-11-14T22:13:21.500Z 200 - /health",
	"2023-11-14T22:13:25.000Z 301 2.5 /login POST 20000000",
	"2023-11-14T22:13:59.999Z 200 0.1 /q'x\"y",
};

static void setup(void)
{
	static const struct parser_field_spec types[] = {
		{ "status", PARSER_T_INT },
		{ "rt", PARSER_T_SECONDS },
		{ "bytes", PARSER_T_INT },
	};
	struct parser_spec spec = {
		.name = "app",
		.regex = "^(?<time>\\S+) (?<status>\\S+) (?<rt>\\S+) (?<path>\\S+)"
			 "(?: (?<method>\\S+))?(?: (?<bytes>\\S+))?$",
		.types = types,
		.ntypes = KL_ARRAY_LEN(types),
		.time_field = "time",
		.time_format = "iso8601",
	};
	char err[256];
	int eo;
	kl_log_set_quiet(true);
	parser = parser_new(&spec, err, sizeof err, &eo);
	md = pcre2_match_data_create(1, NULL);
	if (!parser || !md) {
		fprintf(stderr, "fuzz_expr: setup: %s\n", err);
		abort();
	}
}

static void run(const struct expr *e)
{
	struct window_shape s = { .width_us = 1000000, .nwin = 60, .nb = 62, .expr = e };
	struct window w;
	struct sketch sk;
	struct hll hl;
	if (window_init(&w, &s) < 0)
		return;
	sketch_init(&sk);
	hll_init(&hl);
	int64_t newest = 0;
	for (size_t i = 0; i < KL_ARRAY_LEN(lines); i++) {
		struct parser_event ev;
		parser_event_init(&ev, parser);
		if (parser_parse(parser, lines[i], strlen(lines[i]), 0, &ev) < 0)
			abort();
		if (window_add(&w, &s, &ev, md, NULL) < 0)
			abort();
		newest = ev.time_us;
	}
	for (size_t i = 0; i < e->naggs; i++) {
		double v = window_agg(&w, &s, (unsigned)i, newest, &sk, &hl);
		if (e->aggs[i].kind == AGG_COUNT && !(v >= 0 && v == floor(v)))
			abort(); /* a count is a whole number */
	}
	if (window_events(&w, &s, newest) != (double)KL_ARRAY_LEN(lines))
		abort();
	sketch_free(&sk);
	hll_free(&hl);
	window_free(&w, &s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!parser)
		setup();
	char *src = malloc(size + 1);
	if (!src)
		return 0;
	memcpy(src, data, size);
	src[size] = '\0';
	size_t len = strlen(src);

	char err[512] = "", err2[512] = "";
	int col = -1;
	int rc = rules_expr_check(src, parser, err, sizeof err, &col);
	if (rc != 0 && rc != -EINVAL)
		abort();
	if (rc < 0 && (col < 1 || (size_t)col > len + 1 || err[0] == '\0'))
		abort();

	struct expr e;
	size_t off = (size_t)-1;
	int rc2 = expr_compile(src, parser, &e, err2, sizeof err2, &off);
	if (rc2 != rc)
		abort();
	if (rc2 < 0 && (off != (size_t)col - 1 || strcmp(err, err2) != 0))
		abort();
	if (rc2 == 0) {
		if (!e.root || e.ncells < 1)
			abort();
		run(&e);
		expr_free(&e);
	}
	free(src);
	return 0;
}
