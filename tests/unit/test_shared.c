/*
 * test_shared.c — shared windows (rules/shared.c) over an in-memory store
 * that behaves like Redis's hashes: HSET replaces a field, HGETALL answers
 * later (queued, as the real store answers on a later loop iteration).
 *
 * Two or three rule sets loaded from one rule file stand for replicas: each
 * is fed its part of the traffic, synced, and judged on the union; a quantile
 * over the union equals the one a single set fed everything computes; a sync
 * repeated counts nothing twice; a lost store leaves each replica on its own.
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
#include <unistd.h>

#include <cmocka.h>

#include "common/kl.h"
#include "parsers/parsers.h"
#include "rules/rules.h"

#define BASE_US (1700000000LL * 1000000)
#define SEC 1000000LL

static struct parser *PAPP;
static struct rules_source SOURCES[1];

/* ---- the store ----------------------------------------------------------- */

#define MAX_ENTRIES 4096
#define MAX_GETS 4096

struct entry {
	char *key;
	char *field;
	size_t flen;
	char *val;
	size_t vlen;
};

struct get {
	struct rules_set *rs;
	char *key;
	uint64_t tag;
};

struct store {
	struct entry e[MAX_ENTRIES];
	size_t n;
	struct get q[MAX_GETS];
	size_t nq;
	struct rules_set *asking; /* the set whose sync is running */
	uint64_t puts;
};

static struct store ST;

static void put(void *ctx, const char *key, const char *field, size_t flen, const char *val,
		size_t vlen, int64_t ttl_ms)
{
	struct store *s = ctx;
	assert_true(ttl_ms > 0);
	s->puts++;
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->e[i].key, key) && s->e[i].flen == flen &&
		    !memcmp(s->e[i].field, field, flen)) {
			free(s->e[i].val);
			s->e[i].val = kl_strndup(val, vlen);
			s->e[i].vlen = vlen;
			return;
		}
	assert_true(s->n < MAX_ENTRIES);
	s->e[s->n++] = (struct entry){ kl_strndup(key, strlen(key)), kl_strndup(field, flen), flen,
				       kl_strndup(val, vlen), vlen };
}

static void get(void *ctx, const char *key, uint64_t tag)
{
	struct store *s = ctx;
	assert_true(s->nq < MAX_GETS);
	s->q[s->nq++] = (struct get){ s->asking, kl_strndup(key, strlen(key)), tag };
}

static void answer_all(struct store *s)
{
	struct rules_field f[64];
	for (size_t i = 0; i < s->nq; i++) {
		size_t n = 0;
		for (size_t k = 0; k < s->n && n < 64; k++)
			if (!strcmp(s->e[k].key, s->q[i].key))
				f[n++] = (struct rules_field){ s->e[k].field, s->e[k].flen, s->e[k].val,
							       s->e[k].vlen };
		rules_shared_answer(s->q[i].rs, s->q[i].tag, s->q[i].key, f, n);
		free(s->q[i].key);
	}
	s->nq = 0;
}

static void store_clear(struct store *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->e[i].key);
		free(s->e[i].field);
		free(s->e[i].val);
	}
	for (size_t i = 0; i < s->nq; i++)
		free(s->q[i].key);
	memset(s, 0, sizeof *s);
}

/* ---- fixture --------------------------------------------------------------- */

struct fx {
	char dir[64];
	char file[128];
	struct rules_set *rep[3];
	unsigned fired[3];
	double value[3];
};

static int group_setup(void **state)
{
	(void)state;
	kl_log_set_quiet(true);
	static const struct parser_field_spec types[] = {
		{ "status", PARSER_T_INT },
		{ "rt", PARSER_T_SECONDS },
	};
	struct parser_spec app = {
		.name = "app",
		.regex = "^(?<time>\\d+) (?<status>\\d+) (?<rt>\\S+) (?<path>\\S+)$",
		.types = types,
		.ntypes = KL_ARRAY_LEN(types),
	};
	char err[256];
	int eo;
	PAPP = parser_new(&app, err, sizeof err, &eo);
	if (!PAPP)
		return -1;
	SOURCES[0] = (struct rules_source){ "app", PAPP };
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	parser_free(PAPP);
	return 0;
}

static const char RULES[] =
	"rules:\n"
	"  - alert: Errors\n"
	"    source: app\n"
	"    expr: ratio(status >= 500) > 5%\n"
	"    window: 1m\n"
	"    min_events: 150\n"
	"    shared: true\n"
	"    by: [path]\n"
	"  - alert: Slow\n"
	"    source: app\n"
	"    expr: p95(rt) > 100\n"
	"    window: 1m\n"
	"    shared: true\n"
	"  - alert: Local\n"
	"    source: app\n"
	"    expr: count() > 150\n"
	"    window: 1m\n";

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof *fx);
	snprintf(fx->dir, sizeof fx->dir, "/tmp/test_shared.XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->file, sizeof fx->file, "%s/r.yml", fx->dir);
	FILE *f = fopen(fx->file, "w");
	fputs(RULES, f);
	fclose(f);
	const char *files[] = { fx->file };
	struct rules_store store = { &ST, put, get };
	static const char *const names[] = { "a", "b", "c" };
	for (unsigned i = 0; i < 3; i++) {
		struct kl_diag d = { .out = stderr };
		fx->rep[i] = rules_load(files, 1, SOURCES, 1, &d);
		assert_non_null(fx->rep[i]);
		assert_int_equal(rules_share(fx->rep[i], &store, names[i], false), 0);
	}
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	for (unsigned i = 0; i < 3; i++)
		rules_free(fx->rep[i]);
	store_clear(&ST);
	unlink(fx->file);
	rmdir(fx->dir);
	free(fx);
	return 0;
}

static void feed(struct rules_set *rs, int64_t us, int status, double rt, const char *path)
{
	char line[128];
	int n = snprintf(line, sizeof line, "%lld %d %.3f %s", (long long)(us / SEC), status, rt,
			 path);
	struct parser_event ev;
	parser_event_init(&ev, PAPP);
	assert_int_equal(parser_parse(PAPP, line, (size_t)n, us, &ev), 0);
	ev.time_us = us; /* the regex has no time format: the read time */
	rules_feed(rs, 0, &ev);
}

struct seen {
	unsigned errors, slow, local;
	double errors_value, slow_value;
};

static void on_tr(void *ctx, const struct rules_transition *t)
{
	struct seen *s = ctx;
	if (t->status != RULES_FIRING)
		return;
	if (!strcmp(t->alert, "Errors")) {
		s->errors++;
		s->errors_value = t->value;
	} else if (!strcmp(t->alert, "Slow")) {
		s->slow++;
		s->slow_value = t->value;
	} else {
		s->local++;
	}
}

/* Every replica syncs, the store answers, every replica evaluates at now. */
static void round_at(struct fx *fx, unsigned n, int64_t now, struct seen *out)
{
	for (unsigned i = 0; i < n; i++) {
		ST.asking = fx->rep[i];
		rules_shared_sync(fx->rep[i], now);
	}
	answer_all(&ST);
	for (unsigned i = 0; i < n; i++)
		rules_eval_all(fx->rep[i], now, on_tr, &out[i]);
}

/* 100 events each, 4% and 8% errors: neither has min_events alone, the union
 * (200 events, 6%) fires on every replica. The unshared rule stays local. */
static void test_union_fires(void **state)
{
	struct fx *fx = *state;
	int64_t t0 = BASE_US;
	for (int i = 0; i < 100; i++) {
		feed(fx->rep[0], t0 + i * 100000, i < 4 ? 503 : 200, 0.01, "/api");
		feed(fx->rep[1], t0 + i * 100000, i < 8 ? 503 : 200, 0.01, "/api");
	}
	struct seen s[3] = { 0 };
	rules_eval_all(fx->rep[0], t0 + 11 * SEC, on_tr, &s[0]);
	rules_eval_all(fx->rep[1], t0 + 11 * SEC, on_tr, &s[1]);
	assert_int_equal(s[0].errors + s[1].errors, 0);
	round_at(fx, 2, t0 + 12 * SEC, s);
	assert_int_equal(s[0].errors, 1);
	assert_int_equal(s[1].errors, 1);
	assert_true(fabs(s[0].errors_value - 0.06) < 1e-9);
	assert_true(fabs(s[1].errors_value - 0.06) < 1e-9);
	assert_int_equal(s[0].local + s[1].local, 0); /* 100 each: count() > 150 is local */

	/* Syncing again and again replaces snapshots: still 200 events. */
	for (int k = 0; k < 3; k++)
		round_at(fx, 2, t0 + (13 + k) * SEC, s);
	struct rules_shared_stats st;
	rules_shared_get_stats(fx->rep[0], &st);
	assert_int_equal(st.rules, 2);
	assert_true(st.puts > 0 && st.fields > 0);
	assert_int_equal(st.refused, 0);
}

static void on_alert(void *ctx, const struct rules_alert_state *a)
{
	if (!strcmp(a->alert, "Errors"))
		*(double *)ctx = a->value;
}

static void test_idempotent(void **state)
{
	struct fx *fx = *state;
	int64_t t0 = BASE_US;
	for (int i = 0; i < 100; i++) {
		feed(fx->rep[0], t0 + i * 100000, i < 6 ? 503 : 200, 0.01, "/x");
		feed(fx->rep[1], t0 + i * 100000, i < 6 ? 503 : 200, 0.01, "/x");
	}
	struct seen s[3] = { 0 };
	for (int k = 0; k < 5; k++)
		round_at(fx, 2, t0 + (12 + k) * SEC, s);
	double v = NAN;
	rules_each_alert(fx->rep[1], on_alert, &v);
	assert_true(fabs(v - 0.06) < 1e-9); /* 12 of 200, however many syncs */
	assert_int_equal(s[1].errors, 1);
}

/* p95 over three replicas = p95 of one set fed everything (exact merge). */
static void test_quantile_exact(void **state)
{
	struct fx *fx = *state;
	struct kl_diag d = { .out = stderr };
	const char *files[] = { fx->file };
	struct rules_set *all = rules_load(files, 1, SOURCES, 1, &d);
	int64_t t0 = BASE_US;
	for (int i = 0; i < 300; i++) {
		double rt = 1 + i; /* replica 0 holds 1..100: its p95 alone is below 100 */
		feed(fx->rep[i / 100], t0 + i * 50000, 200, rt, "/q");
		feed(all, t0 + i * 50000, 200, rt, "/q");
	}
	struct seen s[3] = { 0 }, s_all = { 0 };
	round_at(fx, 3, t0 + 20 * SEC, s);
	rules_eval_all(all, t0 + 20 * SEC, on_tr, &s_all);
	assert_int_equal(s_all.slow, 1);
	for (unsigned i = 0; i < 3; i++) {
		assert_int_equal(s[i].slow, 1);
		assert_true(s[i].slow_value == s_all.slow_value); /* bin for bin */
	}
	rules_free(all);
}

/* The store lost: each replica is back on its own windows; when it returns,
 * every bucket is published again and the union is back. */
static void test_lost_and_back(void **state)
{
	struct fx *fx = *state;
	int64_t t0 = BASE_US;
	for (int i = 0; i < 100; i++) {
		feed(fx->rep[0], t0 + i * 100000, i < 6 ? 503 : 200, 0.01, "/y");
		feed(fx->rep[1], t0 + i * 100000, i < 6 ? 503 : 200, 0.01, "/y");
	}
	struct seen s[3] = { 0 };
	round_at(fx, 2, t0 + 12 * SEC, s);
	double v = NAN;
	rules_each_alert(fx->rep[0], on_alert, &v);
	assert_true(fabs(v - 0.06) < 1e-9);
	rules_shared_lost(fx->rep[0]);
	store_clear(&ST); /* a restarted Redis: empty */
	v = NAN;
	rules_eval_all(fx->rep[0], t0 + 13 * SEC, on_tr, &s[0]);
	uint64_t before = ST.puts;
	round_at(fx, 2, t0 + 14 * SEC, s);
	assert_true(ST.puts > before); /* republished */
	/* rep[1] republishes only what changed since: nothing; rep[0] sees
	 * only its own until rep[1] is told the store was lost too. */
	rules_shared_lost(fx->rep[1]);
	round_at(fx, 2, t0 + 15 * SEC, s);
	round_at(fx, 2, t0 + 16 * SEC, s);
	v = NAN;
	rules_each_alert(fx->rep[0], on_alert, &v);
	assert_true(fabs(v - 0.06) < 1e-9);
}

/* What another process wrote is input: junk fields and snapshots of another
 * shape are refused and counted, never merged, never a crash. */
static void test_hostile_fields(void **state)
{
	struct fx *fx = *state;
	int64_t t0 = BASE_US;
	for (int i = 0; i < 100; i++)
		feed(fx->rep[0], t0 + i * 100000, i < 6 ? 503 : 200, 0.01, "/z");
	struct seen s[3] = { 0 };
	round_at(fx, 1, t0 + 12 * SEC, s);
	/* Every key rep[0] wrote gets junk from "x": no '|', a bad group, a
	 * snapshot cut short, and a snapshot of another rule (Slow's shape). */
	const char *slow_val = NULL;
	size_t slow_len = 0;
	for (size_t i = 0; i < ST.n; i++)
		if (strstr(ST.e[i].key, "klaxon:w:Slow/")) {
			slow_val = ST.e[i].val;
			slow_len = ST.e[i].vlen;
		}
	assert_non_null(slow_val);
	size_t n = ST.n;
	for (size_t i = 0; i < n; i++) {
		if (!strstr(ST.e[i].key, "klaxon:w:Errors/"))
			continue;
		char *key = kl_strndup(ST.e[i].key, strlen(ST.e[i].key));
		char *val = kl_strndup(ST.e[i].val, ST.e[i].vlen);
		size_t vlen = ST.e[i].vlen;
		put(&ST, key, "nobar", 5, "x", 1, 1000);
		put(&ST, key, "x|\xff\xff\xff", 5, val, vlen, 1000);
		put(&ST, key, "y|\x02/z", 5, val, vlen / 2, 1000);
		put(&ST, key, "w|\x02/z", 5, slow_val, slow_len, 1000);
		free(key);
		free(val);
	}
	ST.asking = fx->rep[1];
	rules_shared_sync(fx->rep[1], t0 + 13 * SEC);
	answer_all(&ST);
	struct rules_shared_stats st;
	rules_shared_get_stats(fx->rep[1], &st);
	assert_true(st.refused >= 4);
	/* rep[0]'s own snapshot was merged: rep[1] sees its 100 events. */
	assert_true(st.fields >= 1);
}

/* `shared:` takes true or false; anything else is an error at its place. */
static void test_shared_key(void **state)
{
	struct fx *fx = *state;
	char file[160];
	snprintf(file, sizeof file, "%s/bad.yml", fx->dir);
	FILE *f = fopen(file, "w");
	fputs("rules:\n  - alert: A\n    source: app\n    expr: count() > 1\n    shared: maybe\n", f);
	fclose(f);
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	struct kl_diag d = { .out = out };
	const char *files[] = { file };
	assert_null(rules_load(files, 1, SOURCES, 1, &d));
	fclose(out);
	char want[512];
	snprintf(want, sizeof want,
		 "%s:5:13: 'shared' must be true or false, found 'maybe' (true: the rule's windows "
		 "are merged across replicas through `redis:`)\n",
		 file);
	assert_string_equal(text, want);
	free(text);
	unlink(file);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_union_fires, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idempotent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_quantile_exact, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lost_and_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_fields, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shared_key, setup, teardown),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
