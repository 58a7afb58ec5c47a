/*
 * test_rules.c — rule files and the alert state machine (rules/rules.c).
 *
 * State: `for` (pending, then firing once it has held that long; back to
 * inactive if it drops while pending), `keep_firing_for` (firing through a
 * short dip, resolved after), min_events (no verdict: no transition either
 * way, a pending alert stays pending), `by` (one alert per value, the value in
 * the labels, a cardinality cap whose overflow is dropped and counted, idle
 * groups forgotten), flatline `count() == 0` on evaluation ticks with no
 * events, and what a transition carries: at_us, value (the left-hand side of
 * the first comparison), labels (source, the rule's labels, the `by` fields),
 * rendered annotations. rules_eval evaluates every rule on a tick and only the
 * rules fed in between.
 *
 * Loading: every problem is reported as FILE:LINE:COL: message, the column of
 * an expression error pointing inside the expression as written in the file.
 *
 * Each test gets a fresh temporary directory, diag stream and rule set from
 * its setup, and its teardown frees and removes all of them. Events come from
 * two sources: "app" (a regex parser: ISO 8601 time, status, rt, path, method)
 * and "web" (the built-in nginx_timed).
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/kl.h"
#include "parsers/parsers.h"
#include "rules/rules.h"

#define assert_dbl(got, want, tol)                                                              \
	do {                                                                                    \
		double g_ = (got), w_ = (want), t_ = (tol);                                     \
		if (!(fabs(g_ - w_) <= t_)) {                                                   \
			print_error("%s = %.17g\n  expected %s = %.17g (within %g)\n", #got, g_, \
				    #want, w_, t_);                                             \
			fail();                                                                 \
		}                                                                               \
	} while (0)

#define BASE_US (1700000000LL * 1000000) /* 2023-11-14T22:13:20Z */
#define SEC 1000000LL
#define T(s) (BASE_US + (int64_t)((s) * 1e6))

static struct parser *PAPP, *PWEB;
static struct rules_source SOURCES[2];

/* ------------------------------------------------------------------------- */
/* fixture */

struct rec {
	enum rules_status status;
	char alert[64];
	int64_t at_us, started_us, window_us;
	double value;
	char labels[256]; /* "k=v,k=v" in order */
	char ann[512];	  /* "k=v|k=v" in order */
};

#define MAX_FILES 4
#define MAX_RECS 64

struct fx {
	char dir[256];
	char files[MAX_FILES][320];
	unsigned nfiles;
	struct kl_diag d;
	char *dtext;
	size_t dlen;
	struct rules_set *rs;
	struct rec recs[MAX_RECS];
	unsigned nrec;
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
		.regex = "^(?<time>\\S+) (?<status>\\d+) (?<rt>\\S+) (?<path>\\S+)(?: (?<method>\\S+))?$",
		.types = types,
		.ntypes = KL_ARRAY_LEN(types),
		.time_field = "time",
		.time_format = "iso8601",
	};
	struct parser_spec web = { .name = "web", .type = "nginx_timed" };
	char err[256];
	int eo;
	PAPP = parser_new(&app, err, sizeof err, &eo);
	PWEB = parser_new(&web, err, sizeof err, &eo);
	if (!PAPP || !PWEB)
		return -1;
	SOURCES[0] = (struct rules_source){ "app", PAPP };
	SOURCES[1] = (struct rules_source){ "web", PWEB };
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	parser_free(PAPP);
	parser_free(PWEB);
	return 0;
}

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof *fx);
	if (!fx)
		return -1;
	const char *tmp = getenv("TMPDIR");
	snprintf(fx->dir, sizeof fx->dir, "%s/klaxon-rules-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(fx->dir))
		return -1;
	fx->d.out = open_memstream(&fx->dtext, &fx->dlen);
	if (!fx->d.out)
		return -1;
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	rules_free(fx->rs);
	fclose(fx->d.out);
	free(fx->dtext);
	for (unsigned i = 0; i < fx->nfiles; i++)
		unlink(fx->files[i]);
	rmdir(fx->dir);
	free(fx);
	return 0;
}

/* Write a rule file into the test's directory; returns its path. */
static const char *rule_file(struct fx *fx, const char *name, const char *text)
{
	assert_in_range(fx->nfiles, 0, MAX_FILES - 1);
	char *path = fx->files[fx->nfiles++];
	struct kl_buf b = { 0 };
	assert_int_equal(kl_buf_appendf(&b, "%s/%s", fx->dir, name), 0);
	assert_in_range(b.len, 1, sizeof fx->files[0] - 1);
	memcpy(path, b.p, b.len + 1);
	kl_buf_free(&b);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_not_equal(fputs(text, f), EOF);
	assert_int_equal(fclose(f), 0);
	return path;
}

static const char *diag_text(struct fx *fx)
{
	fflush(fx->d.out);
	return fx->dtext ? fx->dtext : "";
}

/* Load one rule file that must be fine. */
static void load_ok(struct fx *fx, const char *text)
{
	const char *files[] = { rule_file(fx, "rules.yml", text) };
	fx->rs = rules_load(files, 1, SOURCES, 2, &fx->d);
	if (!fx->rs) {
		print_error("rules_load failed:\n%s", diag_text(fx));
		fail();
	}
	assert_int_equal(fx->d.errors, 0);
}

static void on_transition(void *ctx, const struct rules_transition *t)
{
	struct fx *fx = ctx;
	assert_in_range(fx->nrec, 0, MAX_RECS - 1);
	struct rec *r = &fx->recs[fx->nrec++];
	memset(r, 0, sizeof *r);
	r->status = t->status;
	snprintf(r->alert, sizeof r->alert, "%s", t->alert);
	r->at_us = t->at_us;
	r->started_us = t->started_us;
	r->window_us = t->window_us;
	r->value = t->value;
	size_t n = 0;
	for (size_t i = 0; i < t->nlabels; i++)
		n += (size_t)snprintf(r->labels + n, sizeof r->labels - n, "%s%s=%s", i ? "," : "",
				      t->labels[i].key, t->labels[i].value);
	n = 0;
	for (size_t i = 0; i < t->nannotations; i++)
		n += (size_t)snprintf(r->ann + n, sizeof r->ann - n, "%s%s=%s", i ? "|" : "",
				      t->annotations[i].key, t->annotations[i].value);
}

/* Feed "STATUS RT PATH [METHOD]" to source app at us (whole milliseconds). */
static void feed_app(struct fx *fx, int64_t us, const char *rest)
{
	char ts[KL_RFC3339_MAX], line[256];
	kl_format_rfc3339(us, true, ts);
	int n = snprintf(line, sizeof line, "%s %s", ts, rest);
	struct parser_event ev;
	parser_event_init(&ev, PAPP);
	if (parser_parse(PAPP, line, (size_t)n, 0, &ev) != 0) {
		print_error("app line does not parse: '%s'\n", line);
		fail();
	}
	assert_int_equal(ev.time_us, us);
	rules_feed(fx->rs, 0, &ev);
}

/* Feed an nginx_timed line to source web at us (whole seconds). */
static void feed_web(struct fx *fx, int64_t us, const char *method, const char *path, int status,
		     double rt)
{
	time_t secs = (time_t)(us / SEC);
	struct tm tm;
	gmtime_r(&secs, &tm);
	char when[64], line[512];
	strftime(when, sizeof when, "%d/%b/%Y:%H:%M:%S +0000", &tm);
	int n = snprintf(line, sizeof line,
			 "203.0.113.7 - - [%s] \"%s %s HTTP/1.1\" %d 512 \"-\" \"curl/8.0\" rt=%.3f urt=\"%.3f\"",
			 when, method, path, status, rt, rt);
	struct parser_event ev;
	parser_event_init(&ev, PWEB);
	if (parser_parse(PWEB, line, (size_t)n, 0, &ev) != 0) {
		print_error("web line does not parse: '%s'\n", line);
		fail();
	}
	assert_int_equal(ev.time_us, us);
	rules_feed(fx->rs, 1, &ev);
}

/* Evaluate every rule at now; returns the transitions it produced. */
static unsigned eval_at(struct fx *fx, int64_t now)
{
	unsigned before = fx->nrec;
	rules_eval_all(fx->rs, now, on_transition, fx);
	return fx->nrec - before;
}

static const char *status_name(enum rules_status s)
{
	return s == RULES_FIRING ? "firing" : "resolved";
}

static void expect_none_at(struct fx *fx, int64_t now, int line)
{
	unsigned n = eval_at(fx, now);
	if (n) {
		const struct rec *r = &fx->recs[fx->nrec - n];
		print_error("line %d: at +%.3fs expected no transition, got %u: %s %s value %.6g\n",
			    line, (double)(now - BASE_US) / 1e6, n, r->alert, status_name(r->status),
			    r->value);
		fail();
	}
}

static const struct rec *expect_one_at(struct fx *fx, int64_t now, enum rules_status st,
				       const char *alert, int line)
{
	unsigned n = eval_at(fx, now);
	if (n != 1) {
		print_error("line %d: at +%.3fs expected one transition (%s %s), got %u\n", line,
			    (double)(now - BASE_US) / 1e6, alert, status_name(st), n);
		fail();
	}
	const struct rec *r = &fx->recs[fx->nrec - 1];
	if (r->status != st || strcmp(r->alert, alert) != 0 || r->at_us != now) {
		print_error("line %d: got %s %s at +%.3fs, expected %s %s at +%.3fs\n", line,
			    r->alert, status_name(r->status), (double)(r->at_us - BASE_US) / 1e6,
			    alert, status_name(st), (double)(now - BASE_US) / 1e6);
		fail();
	}
	return r;
}

#define EXPECT_NONE(fx, now) expect_none_at((fx), (now), __LINE__)
#define EXPECT_ONE(fx, now, st, alert) expect_one_at((fx), (now), (st), (alert), __LINE__)

/* ------------------------------------------------------------------------- */
/* the state machine */

static void test_for(void **state)
{
	struct fx *fx = *state;
	load_ok(fx, "rules:\n"
		    "  - alert: Errors\n"
		    "    source: app\n"
		    "    expr: last(status) >= 500\n"
		    "    window: 5m\n"
		    "    for: 1m\n");
	assert_int_equal(rules_count(fx->rs), 1);
	feed_app(fx, T(0), "500 0.1 /a");
	EXPECT_NONE(fx, T(0));	/* pending */
	EXPECT_NONE(fx, T(30));
	feed_app(fx, T(40), "200 0.1 /a");
	EXPECT_NONE(fx, T(40)); /* dropped while pending: inactive again */
	feed_app(fx, T(50), "500 0.1 /a");
	EXPECT_NONE(fx, T(50)); /* pending since 50 */
	EXPECT_NONE(fx, T(70)); /* 60 s after the first, 20 s after the second */
	EXPECT_NONE(fx, T(109.999));
	const struct rec *r = EXPECT_ONE(fx, T(110), RULES_FIRING, "Errors");
	assert_dbl(r->value, 500, 0);
	assert_int_equal(r->started_us, T(110));
	assert_int_equal(r->window_us, 300 * SEC);
	struct rules_stats st;
	rules_get_stats(fx->rs, &st);
	assert_int_equal(st.firing, 1);
	EXPECT_NONE(fx, T(120)); /* still firing: no repeat */
	feed_app(fx, T(130), "200 0.1 /a");
	r = EXPECT_ONE(fx, T(130), RULES_RESOLVED, "Errors"); /* keep_firing_for 0 */
	assert_dbl(r->value, 200, 0);
	assert_int_equal(r->started_us, T(110));
	EXPECT_NONE(fx, T(140));
	rules_get_stats(fx->rs, &st);
	assert_int_equal(st.firing, 0);
	assert_int_equal(st.transitions, 2);
	assert_int_equal(st.events, 4);
}

static void test_keep_firing_for(void **state)
{
	struct fx *fx = *state;
	load_ok(fx, "rules:\n"
		    "  - alert: Flappy\n"
		    "    source: app\n"
		    "    expr: last(status) >= 500\n"
		    "    keep_firing_for: 2m\n");
	feed_app(fx, T(0), "500 0.1 /a");
	const struct rec *r = EXPECT_ONE(fx, T(0), RULES_FIRING, "Flappy"); /* for: 0 */
	assert_int_equal(r->started_us, T(0));
	feed_app(fx, T(10), "200 0.1 /a");
	EXPECT_NONE(fx, T(10)); /* a dip */
	EXPECT_NONE(fx, T(60));
	feed_app(fx, T(70), "503 0.1 /a");
	EXPECT_NONE(fx, T(70)); /* back: the dip is forgotten */
	feed_app(fx, T(80), "200 0.1 /a");
	EXPECT_NONE(fx, T(80));
	EXPECT_NONE(fx, T(150)); /* 2 m after the first dip, 70 s after this one */
	EXPECT_NONE(fx, T(199.999));
	r = EXPECT_ONE(fx, T(200), RULES_RESOLVED, "Flappy");
	assert_dbl(r->value, 200, 0);
	assert_int_equal(r->started_us, T(0));
	EXPECT_NONE(fx, T(260));
	/* fires again at once, and the new firing has its own start */
	feed_app(fx, T(270), "500 0.1 /a");
	r = EXPECT_ONE(fx, T(270), RULES_FIRING, "Flappy");
	assert_int_equal(r->started_us, T(270));
}

/* Below min_events there is no verdict: nothing changes either way. */
static void test_min_events(void **state)
{
	struct fx *fx = *state;
	load_ok(fx, "rules:\n"
		    "  - alert: ErrRatio\n"
		    "    source: app\n"
		    "    expr: ratio(status >= 500) > 50%\n"
		    "    window: 1m\n"
		    "    min_events: 3\n");
	feed_app(fx, T(0), "500 0.1 /a");
	feed_app(fx, T(1), "500 0.1 /a");
	EXPECT_NONE(fx, T(2)); /* true, but only 2 events */
	feed_app(fx, T(3), "500 0.1 /a");
	const struct rec *r = EXPECT_ONE(fx, T(3), RULES_FIRING, "ErrRatio");
	assert_dbl(r->value, 1.0, 0);
	EXPECT_NONE(fx, T(70)); /* the window is empty: still firing */
	feed_app(fx, T(71), "200 0.1 /a");
	feed_app(fx, T(72), "200 0.1 /a");
	EXPECT_NONE(fx, T(72)); /* false, but only 2 events */
	feed_app(fx, T(73), "200 0.1 /a");
	r = EXPECT_ONE(fx, T(73), RULES_RESOLVED, "ErrRatio");
	assert_dbl(r->value, 0.0, 0);
}

/* A pending alert stays pending through a stretch without a verdict. */
static void test_min_events_pending(void **state)
{
	struct fx *fx = *state;
	load_ok(fx, "rules:\n"
		    "  - alert: ErrRatio\n"
		    "    source: app\n"
		    "    expr: ratio(status >= 500) > 50%\n"
		    "    window: 1m\n"
		    "    min_events: 3\n"
		    "    for: 30s\n");
	for (int i = 0; i < 3; i++)
		feed_app(fx, T(0), "500 0.1 /a");
	EXPECT_NONE(fx, T(0));	/* pending since 0 */
	EXPECT_NONE(fx, T(20));
	EXPECT_NONE(fx, T(61)); /* no events: no verdict */
	for (int i = 0; i < 3; i++)
		feed_app(fx, T(62), "500 0.1 /a");
	EXPECT_ONE(fx, T(62), RULES_FIRING, "ErrRatio"); /* held since 0 */
}

static void test_by(void **state)
{
	struct fx *fx = *state;
	load_ok(fx, "rules:\n"
		    "  - alert: PathDown\n"
		    "    source: app\n"
		    "    expr: last(status) >= 500\n"
		    "    window: 5m\n"
		    "    by: [path]\n"
		    "    max_groups: 2\n"
		    "    labels: {severity: page, team: web}\n");
	feed_app(fx, T(0), "500 0.1 /a");
	feed_app(fx, T(1), "200 0.1 /b");
	feed_app(fx, T(2), "500 0.1 /c"); /* a third group: over the cap */
	const struct rec *r = EXPECT_ONE(fx, T(3), RULES_FIRING, "PathDown");
	assert_string_equal(r->labels, "source=app,severity=page,team=web,path=/a");
	struct rules_stats st;
	rules_get_stats(fx->rs, &st);
	assert_int_equal(st.groups_dropped, 1);
	feed_app(fx, T(4), "503 0.1 /b");
	r = EXPECT_ONE(fx, T(4), RULES_FIRING, "PathDown");
	assert_string_equal(r->labels, "source=app,severity=page,team=web,path=/b");
	assert_dbl(r->value, 503, 0);
	feed_app(fx, T(5), "500 0.1 /c");
	feed_app(fx, T(5), "500 0.1 /d");
	EXPECT_NONE(fx, T(5));
	rules_get_stats(fx->rs, &st);
	assert_int_equal(st.groups_dropped, 3);
	assert_int_equal(st.firing, 2);

	/* both resolve, each with its own labels */
	feed_app(fx, T(6), "200 0.1 /a");
	feed_app(fx, T(6), "200 0.1 /b");
	assert_int_equal(eval_at(fx, T(6)), 2);
	const struct rec *r1 = &fx->recs[fx->nrec - 2], *r2 = &fx->recs[fx->nrec - 1];
	assert_int_equal(r1->status, RULES_RESOLVED);
	assert_int_equal(r2->status, RULES_RESOLVED);
	assert_string_equal(r1->labels, "source=app,severity=page,team=web,path=/a");
	assert_string_equal(r2->labels, "source=app,severity=page,team=web,path=/b");

	/* once their windows are empty the groups are forgotten: room again */
	EXPECT_NONE(fx, T(320));
	feed_app(fx, T(321), "500 0.1 /c");
	r = EXPECT_ONE(fx, T(321), RULES_FIRING, "PathDown");
	assert_string_equal(r->labels, "source=app,severity=page,team=web,path=/c");
	rules_get_stats(fx->rs, &st);
	assert_int_equal(st.groups_dropped, 3);
}

/* A group forgotten from the middle of the table: the others are still
 * found (no duplicate group, no room taken). */
static void test_by_forget(void **state)
{
	struct fx *fx = *state;
	load_ok(fx, "rules:\n"
		    "  - alert: PathDown\n"
		    "    source: app\n"
		    "    expr: last(status) >= 500\n"
		    "    window: 1m\n"
		    "    by: [path]\n"
		    "    max_groups: 3\n");
	feed_app(fx, T(0), "200 0.1 /a");
	feed_app(fx, T(50), "200 0.1 /b");
	feed_app(fx, T(50), "200 0.1 /c");
	EXPECT_NONE(fx, T(50));
	EXPECT_NONE(fx, T(80)); /* /a's window is empty: forgotten */
	feed_app(fx, T(81), "500 0.1 /c");
	feed_app(fx, T(81), "500 0.1 /b");
	feed_app(fx, T(82), "500 0.1 /d"); /* the third group again */
	assert_int_equal(eval_at(fx, T(83)), 3);
	assert_string_equal(fx->recs[0].labels, "source=app,path=/c");
	assert_string_equal(fx->recs[1].labels, "source=app,path=/b");
	assert_string_equal(fx->recs[2].labels, "source=app,path=/d");
	struct rules_stats st;
	rules_get_stats(fx->rs, &st);
	assert_int_equal(st.groups_dropped, 0);
	assert_int_equal(st.firing, 3);
}

/* Several by fields, in the order given; an absent one is "". */
static void test_by_fields(void **state)
{
	struct fx *fx = *state;
	load_ok(fx, "rules:\n"
		    "  - alert: Busy\n"
		    "    source: app\n"
		    "    expr: count() >= 2\n"
		    "    by: [method, path]\n");
	feed_app(fx, T(0), "200 0.1 /x GET");
	feed_app(fx, T(1), "200 0.1 /x");
	feed_app(fx, T(2), "200 0.1 /x GET");
	feed_app(fx, T(3), "200 0.1 /y GET");
	feed_app(fx, T(4), "200 0.1 /x");
	feed_app(fx, T(5), "200 0.1 /x POST");
	assert_int_equal(eval_at(fx, T(6)), 2);
	const struct rec *a = &fx->recs[0], *b = &fx->recs[1];
	assert_string_equal(a->labels, "source=app,method=GET,path=/x");
	assert_string_equal(b->labels, "source=app,method=,path=/x");
	assert_dbl(a->value, 2, 0);
	assert_dbl(b->value, 2, 0);
}

/* count() == 0 fires on evaluation ticks while nothing comes. */
static void test_flatline(void **state)
{
	struct fx *fx = *state;
	load_ok(fx, "rules:\n"
		    "  - alert: Silent\n"
		    "    source: app\n"
		    "    expr: count() == 0\n"
		    "    window: 1m\n"
		    "    for: 30s\n"
		    "  - alert: NeverHeard\n"
		    "    source: web\n"
		    "    expr: count() == 0\n"
		    "    window: 1m\n");
	rules_set_eval_interval(fx->rs, SEC);
	unsigned fired_silent = 0, fired_never = 0;
	int64_t silent_at = 0, never_at = 0;
	for (int s = 0; s <= 130; s++) {
		if (s <= 10)
			feed_app(fx, T(s), "200 0.1 /a");
		unsigned before = fx->nrec;
		rules_eval(fx->rs, T(s), on_transition, fx);
		for (unsigned i = before; i < fx->nrec; i++) {
			const struct rec *r = &fx->recs[i];
			assert_int_equal(r->status, RULES_FIRING);
			assert_dbl(r->value, 0, 0);
			if (!strcmp(r->alert, "Silent")) {
				fired_silent++;
				silent_at = r->at_us;
				assert_string_equal(r->labels, "source=app");
			} else {
				fired_never++;
				never_at = r->at_us;
				assert_string_equal(r->labels, "source=web");
			}
		}
	}
	assert_int_equal(fired_never, 1);
	assert_int_equal(never_at, T(0));
	assert_int_equal(fired_silent, 1);
	/* the last event (t = 10 s) leaves the 1 m window at 70 s; 30 s later */
	assert_int_equal(silent_at, T(100));
	feed_app(fx, T(131), "200 0.1 /a");
	const struct rec *r = EXPECT_ONE(fx, T(131), RULES_RESOLVED, "Silent");
	assert_dbl(r->value, 1, 0);
}

/* rules_eval: every rule on a tick, only the rules fed in between. */
static void test_eval_ticks(void **state)
{
	struct fx *fx = *state;
	load_ok(fx, "rules:\n"
		    "  - alert: AppSilent\n"
		    "    source: app\n"
		    "    expr: count() == 0\n"
		    "  - alert: AppBusy\n"
		    "    source: app\n"
		    "    expr: count() > 0\n"
		    "  - alert: WebSilent\n"
		    "    source: web\n"
		    "    expr: count() == 0\n");
	rules_set_eval_interval(fx->rs, 10 * SEC);
	assert_int_equal(rules_eval_interval(fx->rs), 10 * SEC);
	struct rules_stats st;
	rules_eval(fx->rs, T(0), on_transition, fx); /* a tick: all three */
	rules_get_stats(fx->rs, &st);
	assert_int_equal(st.evaluations, 3);
	assert_int_equal(fx->nrec, 2); /* AppSilent, WebSilent */
	rules_eval(fx->rs, T(1), on_transition, fx); /* nothing fed */
	rules_get_stats(fx->rs, &st);
	assert_int_equal(st.evaluations, 3);
	feed_app(fx, T(2), "200 0.1 /a");
	rules_eval(fx->rs, T(2), on_transition, fx); /* the two app rules */
	rules_get_stats(fx->rs, &st);
	assert_int_equal(st.evaluations, 5);
	assert_int_equal(fx->nrec, 4); /* AppSilent resolved, AppBusy firing */
	assert_string_equal(fx->recs[2].alert, "AppSilent");
	assert_int_equal(fx->recs[2].status, RULES_RESOLVED);
	assert_string_equal(fx->recs[3].alert, "AppBusy");
	assert_int_equal(fx->recs[3].status, RULES_FIRING);
	rules_eval(fx->rs, T(9.999), on_transition, fx);
	rules_get_stats(fx->rs, &st);
	assert_int_equal(st.evaluations, 5);
	rules_eval(fx->rs, T(10), on_transition, fx); /* the next tick */
	rules_get_stats(fx->rs, &st);
	assert_int_equal(st.evaluations, 8);
	/* time never goes back: an earlier now is the last one */
	unsigned n = fx->nrec;
	rules_eval_all(fx->rs, T(5), on_transition, fx);
	assert_int_equal(fx->nrec, n);
	rules_get_stats(fx->rs, &st);
	assert_int_equal(st.evaluations, 11);
}

/* Everything a transition carries. */
static void test_transition(void **state)
{
	struct fx *fx = *state;
	load_ok(fx, "rules:\n"
		    "  - alert: HighErrorRate\n"
		    "    source: web\n"
		    "    expr: ratio(status >= 500) > 5% and count() > 10\n"
		    "    window: 5m\n"
		    "    by: [method]\n"
		    "    labels: {severity: page, team: sre}\n"
		    "    annotations:\n"
		    "      summary: '5xx at {{ value | pct }} over {{ window }} on {{ source }}'\n"
		    "      detail: \"{{alert}}: {{ value }} ({{ value|duration }}) "
		    "{{ labels.severity }}/{{ labels.method }}/{{labels.source}}\"\n"
		    "      plain: no placeholders here\n");
	for (int i = 0; i < 20; i++)
		feed_web(fx, T(i), "GET", "/api/debts", i % 10 == 0 ? 503 : 200, 0.1);
	for (int i = 0; i < 12; i++)
		feed_web(fx, T(i), "POST", "/api/debts", 200, 0.1);
	const struct rec *r = EXPECT_ONE(fx, T(20), RULES_FIRING, "HighErrorRate");
	assert_dbl(r->value, 0.1, 1e-12);
	assert_int_equal(r->at_us, T(20));
	assert_int_equal(r->started_us, T(20));
	assert_int_equal(r->window_us, 300 * SEC);
	assert_string_equal(r->labels, "source=web,severity=page,team=sre,method=GET");
	assert_string_equal(r->ann, "summary=5xx at 10.00% over 5m on web"
				    "|detail=HighErrorRate: 0.1 (100ms) page/GET/web"
				    "|plain=no placeholders here");
}

/* The reported value is the left-hand side of the first comparison, also
 * when the rule resolves; a duration renders in seconds from 1 s (and in
 * d/h/m/s from a minute: test_long_duration). */
static void test_value(void **state)
{
	struct fx *fx = *state;
	load_ok(fx, "rules:\n"
		    "  - alert: Slow\n"
		    "    source: web\n"
		    "    expr: p95(request_time) > 2s and count() > 10\n"
		    "    annotations: {summary: 'p95 {{ value | duration }}'}\n");
	for (int i = 0; i < 20; i++)
		feed_web(fx, T(i), "GET", "/", 200, i < 18 ? 0.2 : 3.5);
	/* rank floor(0.95 * 19) = 18: the first of the two slow ones */
	const struct rec *r = EXPECT_ONE(fx, T(20), RULES_FIRING, "Slow");
	assert_dbl(r->value, 3.5, 3.5 * 0.01);
	char want[64];
	snprintf(want, sizeof want, "summary=p95 %.2fs", r->value);
	assert_string_equal(r->ann, want);
	for (int i = 0; i < 200; i++)
		feed_web(fx, T(21), "GET", "/", 200, 0.2);
	r = EXPECT_ONE(fx, T(21), RULES_RESOLVED, "Slow");
	assert_dbl(r->value, 0.2, 0.2 * 0.01);
}

/* From a minute, a duration reads as an SRE writes it, to the second. */
static void test_long_duration(void **state)
{
	struct fx *fx = *state;
	load_ok(fx, "rules:\n"
		    "  - alert: Stale\n"
		    "    source: web\n"
		    "    expr: max(request_time) > 60\n"
		    "    annotations: {summary: '{{ value | duration }} old'}\n");
	feed_web(fx, T(1), "GET", "/", 200, 93900.4); /* 26h5m and a bit */
	const struct rec *r = EXPECT_ONE(fx, T(2), RULES_FIRING, "Stale");
	assert_string_equal(r->ann, "summary=1d2h5m old");
}

/* Late events (older than the ring) are dropped and counted. */
static void test_late_events(void **state)
{
	struct fx *fx = *state;
	load_ok(fx, "rules:\n"
		    "  - alert: Any\n"
		    "    source: app\n"
		    "    expr: count() > 1\n"
		    "    window: 1m\n");
	feed_app(fx, T(100), "200 0.1 /a");
	feed_app(fx, T(10), "200 0.1 /a"); /* 90 s older than the newest */
	EXPECT_NONE(fx, T(100));
	struct rules_stats st;
	rules_get_stats(fx->rs, &st);
	assert_int_equal(st.late_events, 1);
	assert_int_equal(st.events, 2);
	feed_app(fx, T(60), "200 0.1 /a"); /* inside the window: fine */
	EXPECT_ONE(fx, T(100), RULES_FIRING, "Any");
}

/* Two files; the same alert on two sources is two alerts. */
static void test_files(void **state)
{
	struct fx *fx = *state;
	const char *files[] = {
		rule_file(fx, "a.yml", "rules:\n"
				       "  - {alert: Down, source: app, expr: count() == 0}\n"),
		rule_file(fx, "b.yml", "rules:\n"
				       "  - {alert: Down, source: web, expr: count() == 0}\n"
				       "  - {alert: Up, source: web, expr: count() > 0}\n"),
	};
	fx->rs = rules_load(files, 2, SOURCES, 2, &fx->d);
	if (!fx->rs) {
		print_error("%s", diag_text(fx));
		fail();
	}
	assert_int_equal(rules_count(fx->rs), 3);
	assert_int_equal(eval_at(fx, T(0)), 2);
	assert_string_equal(fx->recs[0].labels, "source=app");
	assert_string_equal(fx->recs[1].labels, "source=web");
}

/* ------------------------------------------------------------------------- */
/* rule-file errors: FILE:LINE:COL: message */

struct want {
	int line, col;
	const char *msg; /* a substring of the message */
};

/* Load text (as FILE) and compare each reported line with want[]. */
static void load_bad(struct fx *fx, const char *text, const struct want *want, size_t nwant,
		     int caller)
{
	const char *path = rule_file(fx, "bad.yml", text);
	const char *files[] = { path };
	struct rules_set *rs = rules_load(files, 1, SOURCES, 2, &fx->d);
	const char *out = diag_text(fx);
	bool ok = rs == NULL && fx->d.errors == nwant;
	const char *p = out;
	for (size_t i = 0; ok && i < nwant; i++) {
		char prefix[400];
		snprintf(prefix, sizeof prefix, "%s:%d:%d: ", path, want[i].line, want[i].col);
		const char *eol = strchr(p, '\n');
		ok = eol && !strncmp(p, prefix, strlen(prefix)) &&
		     memmem(p, (size_t)(eol - p), want[i].msg, strlen(want[i].msg));
		p = eol ? eol + 1 : p;
	}
	ok = ok && *p == '\0';
	if (!ok) {
		print_error("line %d: rules_load returned %s with %u errors; reported:\n%s"
			    "expected %zu:\n",
			    caller, rs ? "a set" : "NULL", fx->d.errors, out, nwant);
		for (size_t i = 0; i < nwant; i++)
			print_error("%s:%d:%d: ...%s...\n", path, want[i].line, want[i].col,
				    want[i].msg);
		rules_free(rs);
		fail();
	}
}

#define LOAD_BAD(fx, text, ...)                                                             \
	do {                                                                                \
		static const struct want w_[] = { __VA_ARGS__ };                            \
		load_bad((fx), (text), w_, KL_ARRAY_LEN(w_), __LINE__);                     \
	} while (0)

static void test_err_unknown_key(void **state)
{
	LOAD_BAD(*state,
		 "rules:\n"
		 "  - alert: A\n"
		 "    source: app\n"
		 "    expr: count() > 0\n"
		 "    widnow: 5m\n",
		 { 5, 5, "unknown key 'widnow' in a rule; expected alert, source, expr, window" });
}

static void test_err_missing(void **state)
{
	LOAD_BAD(*state,
		 "rules:\n"
		 "  - alert: A\n"
		 "    source: app\n"
		 "  - alert: B\n"
		 "    expr: count() > 0\n"
		 "  - source: app\n"
		 "    expr: count() > 0\n",
		 { 2, 5, "a rule needs 'expr'" }, { 4, 5, "a rule needs 'source'" },
		 { 6, 5, "a rule needs 'alert'" });
}

static void test_err_unknown_source(void **state)
{
	LOAD_BAD(*state,
		 "rules:\n"
		 "  - alert: A\n"
		 "    source: nignx\n"
		 "    expr: count() > 0\n",
		 { 3, 13, "unknown source 'nignx'; the config defines: app, web" });
}

static void test_err_duration(void **state)
{
	LOAD_BAD(*state,
		 "rules:\n"
		 "  - alert: A\n"
		 "    source: app\n"
		 "    expr: count() > 0\n"
		 "    window: 5 minutes\n"
		 "    for: soon\n"
		 "    keep_firing_for: -1m\n",
		 { 5, 13, "'window': '5 minutes' is not a duration; expected e.g. 30s, 5m" },
		 { 6, 10, "'for': 'soon' is not a duration" },
		 { 7, 22, "'keep_firing_for': '-1m' is not a duration" });
}

/* The column of an expression error points inside the expression. */
static void test_err_expr_plain(void **state)
{
	LOAD_BAD(*state,
		 "rules:\n"
		 "  - alert: A\n"
		 "    source: app\n"
		 "    expr: count(stauts >= 500) > 0\n",
		 { 4, 17, "expr: unknown field 'stauts' for parser 'app'; "
			  "its fields are: time, status, rt, path, method" });
}

static void test_err_expr_quoted(void **state)
{
	LOAD_BAD(*state,
		 "rules:\n"
		 "  - alert: A\n"
		 "    source: app\n"
		 "    expr: 'count(stauts >= 500) > 0'\n"
		 "  - alert: B\n"
		 "    source: app\n"
		 "    expr: \"ratio(status >= 500) > 5xyz\"\n"
		 "  - {alert: C, source: app, expr: 'count() > 1 junk'}\n",
		 { 4, 18, "expr: unknown field 'stauts'" }, { 7, 36, "expr: unknown unit 'xyz'" },
		 { 8, 48, "expr: expected an operator or the end of the expression, found 'junk'" });
}

/* Quoted scalars with escapes: the column is where the problem is written. */
static void test_err_expr_escapes(void **state)
{
	LOAD_BAD(*state,
		 "rules:\n"
		 "  - alert: A\n"
		 "    source: app\n"
		 "    expr: \"count(path == \\\"/x\\\" and stauts > 1) > 0\"\n"
		 "  - alert: B\n"
		 "    source: app\n"
		 "    expr: 'count(path == ''/x'' and stauts > 1) > 0'\n",
		 { 4, 37, "expr: unknown field 'stauts'" }, { 7, 37, "expr: unknown field 'stauts'" });
}

/* An expression written over several lines: the line and column of the
 * problem, not of the expression's start. */
static void test_err_expr_multiline(void **state)
{
	LOAD_BAD(*state,
		 "rules:\n"
		 "  - alert: A\n"
		 "    source: app\n"
		 "    expr: count(status >= 500) > 0 and\n"
		 "      count(stauts > 1) > 0\n"
		 "  - alert: B\n"
		 "    source: app\n"
		 "    expr: >-\n"
		 "      count(status >= 500) > 0 and\n"
		 "      count(stauts > 1) > 0\n",
		 { 5, 13, "expr: unknown field 'stauts'" }, { 10, 13, "expr: unknown field 'stauts'" });
}

static void test_err_template(void **state)
{
	LOAD_BAD(*state,
		 "rules:\n"
		 "  - alert: A\n"
		 "    source: app\n"
		 "    expr: count() > 0\n"
		 "    labels: {severity: page}\n"
		 "    annotations:\n"
		 "      summary: 'at {{ valeu }} now'\n"
		 "      who: '{{ labels.severity }} {{ labels.owner }}'\n"
		 "      how: \"{{ value | pcnt }}\"\n"
		 "      open: at {{ value\n",
		 { 7, 20, "annotation 'summary': unknown placeholder '{{ valeu }}'; expected {{ value }}" },
		 { 8, 35, "annotation 'who': unknown placeholder '{{ labels.owner }}'" },
		 { 9, 13, "annotation 'how': unknown placeholder '{{ value | pcnt }}'" },
		 { 10, 16, "annotation 'open': unknown placeholder '{{ value'" });
}

static void test_err_duplicate(void **state)
{
	LOAD_BAD(*state,
		 "rules:\n"
		 "  - alert: A\n"
		 "    source: app\n"
		 "    expr: count() > 0\n"
		 "  - alert: A\n"
		 "    source: web\n"
		 "    expr: count() > 0\n"
		 "  - alert: A\n"
		 "    source: app\n"
		 "    expr: count() > 1\n",
		 { 8, 5, "alert 'A' on source 'app' is already defined at " });
	/* ... and it names the first one's file and line */
	assert_non_null(strstr(diag_text(*state), "bad.yml:2\n"));
}

static void test_err_duplicate_across_files(void **state)
{
	struct fx *fx = *state;
	const char *files[] = {
		rule_file(fx, "one.yml", "rules:\n  - {alert: A, source: app, expr: count() > 0}\n"),
		rule_file(fx, "two.yml", "rules:\n\n  - {alert: A, source: app, expr: count() > 1}\n"),
	};
	struct rules_set *rs = rules_load(files, 2, SOURCES, 2, &fx->d);
	assert_null(rs);
	char want[1024];
	snprintf(want, sizeof want, "%s:3:5: alert 'A' on source 'app' is already defined at %s:2\n",
		 files[1], files[0]);
	assert_string_equal(diag_text(fx), want);
}

static void test_err_values(void **state)
{
	LOAD_BAD(*state,
		 "rules:\n"
		 "  - alert: High-Errors\n"
		 "    source: app\n"
		 "    expr: count() > 0\n"
		 "    min_events: many\n"
		 "    max_groups: 0\n"
		 "    by: [path, nope]\n"
		 "    window: 0s\n"
		 "    labels: [a, b]\n",
		 { 2, 12, "alert name 'High-Errors' must be letters, digits and '_'" },
		 { 8, 13, "'window' must be longer than zero" },
		 { 5, 17, "'min_events' must be a whole number, found 'many'" },
		 { 6, 17, "'max_groups' must be a whole number from 1 to" },
		 { 7, 16, "'by': unknown field 'nope' for parser 'app'" },
		 { 9, 13, "'labels' must be a mapping of names to values, found a list" });
}

static void test_err_file(void **state)
{
	LOAD_BAD(*state, "rulez:\n  - alert: A\n",
		 { 1, 1, "a rule file is a mapping with a 'rules:' list" });
}

/* Loading goes on after a problem to report the others, in other rules. */
static void test_err_many(void **state)
{
	LOAD_BAD(*state,
		 "rules:\n"
		 "  - alert: A\n"
		 "    source: app\n"
		 "    expr: count(stauts > 1) > 0\n"
		 "  - alert: B\n"
		 "    source: app\n"
		 "    expr: count() > 0\n"
		 "  - alert: C\n"
		 "    source: app\n"
		 "    expr: count() > 0\n"
		 "    for: never\n",
		 { 4, 17, "unknown field 'stauts'" }, { 11, 10, "'for': 'never' is not a duration" });
}

int main(void)
{
#define T_(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T_(test_for),
		T_(test_keep_firing_for),
		T_(test_min_events),
		T_(test_min_events_pending),
		T_(test_by),
		T_(test_by_forget),
		T_(test_by_fields),
		T_(test_flatline),
		T_(test_eval_ticks),
		T_(test_transition),
		T_(test_value),
		T_(test_long_duration),
		T_(test_late_events),
		T_(test_files),
		T_(test_err_unknown_key),
		T_(test_err_missing),
		T_(test_err_unknown_source),
		T_(test_err_duration),
		T_(test_err_expr_plain),
		T_(test_err_expr_quoted),
		T_(test_err_expr_escapes),
		T_(test_err_expr_multiline),
		T_(test_err_template),
		T_(test_err_duplicate),
		T_(test_err_duplicate_across_files),
		T_(test_err_values),
		T_(test_err_file),
		T_(test_err_many),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
