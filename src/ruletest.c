/*
 * ruletest.c — see ruletest.h.
 *
 * One pass over the tree, key by key, in document order; each problem is
 * reported at the node at fault and checking goes on. Offsets (`at`, `from`,
 * `until`) are durations from the test's start, or RFC 3339 instants turned
 * into offsets once the test's start is known (so `start:` is read first,
 * wherever it is written).
 */
#include "src/ruletest.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ld {
	struct ruletest_file *f;
	struct kl_diag *d;
	unsigned before;
	bool oom;
};

static void err(struct ld *l, const struct kl_ynode *n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void err(struct ld *l, const struct kl_ynode *n, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	kl_diag_error(l->d, l->f->path, n ? n->line : 0, n ? n->col : 0, "%s", msg);
}

static void *alloc_n(struct ld *l, size_t n, size_t size)
{
	void *q = calloc(n ? n : 1, size);
	if (!q && !l->oom) {
		l->oom = true;
		kl_diag_error(l->d, l->f->path, 0, 0, "out of memory");
	}
	return q;
}

/* Scalar text for messages, cut. */
static const char *show(const struct kl_ynode *n, char *buf, size_t size)
{
	if (!n || n->type != KL_Y_SCALAR)
		return "";
	size_t len = n->len < size - 4 ? n->len : size - 4;
	memcpy(buf, n->str, len);
	if (n->len > len)
		memcpy(buf + len, "...", 3), len += 3;
	buf[len] = '\0';
	return buf;
}

static int known_key(struct ld *l, const struct kl_ynode *k, const char *const *names,
		     const char *where)
{
	for (int i = 0; names[i]; i++)
		if (k->type == KL_Y_SCALAR && strcmp(k->str, names[i]) == 0)
			return i;
	char list[256] = "", shown[96];
	size_t o = 0;
	for (int i = 0; names[i] && o < sizeof list; i++)
		o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", i ? ", " : "", names[i]);
	err(l, k, "unknown key '%s'%s; expected one of: %s", show(k, shown, sizeof shown), where,
	    list);
	return -1;
}

static const char *scalar(struct ld *l, const struct kl_ynode *n, const char *key,
			  const char *what)
{
	if (n->type != KL_Y_SCALAR || (n->plain && kl_ynode_is_null(n))) {
		err(l, n, "expected %s for '%s', found %s", what, key,
		    n->type == KL_Y_SCALAR ? "nothing" : kl_ynode_kind(n));
		return NULL;
	}
	return n->str;
}

static bool duration(struct ld *l, const struct kl_ynode *n, const char *key, int64_t *out)
{
	const char *s = scalar(l, n, key, "a duration");
	char shown[96];
	if (!s)
		return false;
	if (kl_parse_duration_us(s, n->len, out) < 0 || *out > RULETEST_MAX_SPAN_US) {
		err(l, n,
		    "invalid duration '%s' for '%s'; expected a number with a unit: us, ms, s, m, "
		    "h, d, w (e.g. 90s, 2m30s), up to a year",
		    show(n, shown, sizeof shown), key);
		return false;
	}
	return true;
}

/* An offset from start: a duration, or an RFC 3339 instant not before start. */
static bool offset(struct ld *l, const struct kl_ynode *n, const char *key, int64_t start,
		   int64_t *out)
{
	int64_t abs;
	char shown[96];
	if (n->type == KL_Y_SCALAR && ruletest_parse_instant(n->str, n->len, &abs) == 0) {
		if (abs < start || abs - start > RULETEST_MAX_SPAN_US) {
			err(l, n, "'%s': %s is %s the test's start", key, show(n, shown, sizeof shown),
			    abs < start ? "before" : "more than a year after");
			return false;
		}
		*out = abs - start;
		return true;
	}
	const char *s = scalar(l, n, key, "an offset");
	if (!s)
		return false;
	if (kl_parse_duration_us(s, n->len, out) < 0 || *out > RULETEST_MAX_SPAN_US) {
		err(l, n,
		    "invalid offset '%s' for '%s'; expected a duration from the test's start (90s, "
		    "2m30s) or an RFC 3339 instant (2023-11-14T22:05:00Z)",
		    show(n, shown, sizeof shown), key);
		return false;
	}
	return true;
}

static bool want(struct ld *l, const struct kl_ynode *n, enum kl_ynode_type t, const char *key)
{
	if (n->type == t)
		return true;
	err(l, n, "expected %s for '%s', found %s",
	    t == KL_Y_MAP ? "a mapping" : t == KL_Y_SEQ ? "a list" : "a scalar", key,
	    kl_ynode_kind(n));
	return false;
}

static bool kvs(struct ld *l, const struct kl_ynode *n, const char *key, struct ruletest_kv **out,
		size_t *nout)
{
	if (!want(l, n, KL_Y_MAP, key))
		return false;
	*out = alloc_n(l, n->n, sizeof **out);
	if (!*out)
		return false;
	for (size_t i = 0; i < n->n; i++) {
		const struct kl_ynode *v = n->items[i];
		if (v->type != KL_Y_SCALAR) {
			err(l, v, "expected a string for '%s.%s', found %s", key, n->keys[i]->str,
			    kl_ynode_kind(v));
			continue;
		}
		(*out)[(*nout)++] = (struct ruletest_kv){ n->keys[i]->str, v->str };
	}
	return true;
}

/* ------------------------------------------------------------------------- */

static const char *const item_keys[] = { "line", "lines", "at",     "every",
					 "for",	 "times", "fields", NULL };

/* `fields: {up: 0, error: 'timed out after 5s'}`: one probe result. */
static void load_fields(struct ld *l, struct ruletest_item *it, const struct kl_ynode *v)
{
	if (!want(l, v, KL_Y_MAP, "fields"))
		return;
	if (!v->n) {
		err(l, v, "'fields' is empty; give at least one field of the probe's result");
		return;
	}
	it->fields = alloc_n(l, v->n, sizeof *it->fields);
	for (size_t i = 0; it->fields && i < v->n; i++) {
		const struct kl_ynode *x = v->items[i];
		if (x->type != KL_Y_SCALAR || (x->plain && kl_ynode_is_null(x))) {
			err(l, x, "expected a number or a string for 'fields.%s', found %s",
			    v->keys[i]->str, x->type == KL_Y_SCALAR ? "nothing" : kl_ynode_kind(x));
			continue;
		}
		it->fields[it->nfields++] = (struct ruletest_field){
			v->keys[i]->str, x->str, x->line, x->col, v->keys[i]->line, v->keys[i]->col
		};
	}
}

static void load_item(struct ld *l, struct ruletest_case *t, struct ruletest_item *it,
		      const struct kl_ynode *n)
{
	it->line = n->line;
	it->col = n->col;
	it->times = 1;
	if (n->type == KL_Y_SCALAR) { /* a bare line, at 0 */
		it->lines = alloc_n(l, 1, sizeof *it->lines);
		if (it->lines)
			it->lines[it->nlines++] = n->str;
		t->nlines++;
		return;
	}
	if (!want(l, n, KL_Y_MAP, "input"))
		return;
	const struct kl_ynode *every = NULL, *forn = NULL, *times = NULL;
	int64_t span = 0;
	for (size_t i = 0; i < n->n; i++) {
		const struct kl_ynode *v = n->items[i];
		switch (known_key(l, n->keys[i], item_keys, " in an input entry")) {
		case 0:
			if (kl_ymap_get(n, "lines")) {
				err(l, n->keys[i], "an input entry has 'line' or 'lines', not both");
				break;
			}
			if (kl_ymap_get(n, "fields")) {
				err(l, n->keys[i], "an input entry has 'line' (a log line) or 'fields' "
						   "(a probe's result), not both");
				break;
			}
			if (!scalar(l, v, "line", "a log line"))
				break;
			it->lines = alloc_n(l, 1, sizeof *it->lines);
			if (it->lines)
				it->lines[it->nlines++] = v->str;
			break;
		case 1:
			if (kl_ymap_get(n, "fields")) {
				err(l, n->keys[i], "an input entry has 'lines' (log lines) or 'fields' "
						   "(a probe's result), not both");
				break;
			}
			if (!want(l, v, KL_Y_SEQ, "lines"))
				break;
			if (!v->n) {
				err(l, v, "'lines' is empty");
				break;
			}
			it->lines = alloc_n(l, v->n, sizeof *it->lines);
			for (size_t k = 0; it->lines && k < v->n; k++)
				if (scalar(l, v->items[k], "lines", "a log line"))
					it->lines[it->nlines++] = v->items[k]->str;
			break;
		case 2:
			offset(l, v, "at", t->start_us, &it->at_us);
			break;
		case 3:
			every = v;
			if (duration(l, v, "every", &it->every_us) && it->every_us <= 0)
				err(l, v, "'every' must be more than 0");
			break;
		case 4:
			forn = v;
			duration(l, v, "for", &span);
			break;
		case 5: {
			times = v;
			const char *s = scalar(l, v, "times", "a count");
			if (s && (kl_parse_u64(s, v->len, &it->times) < 0 || it->times == 0 ||
				  it->times > RULETEST_MAX_LINES)) {
				err(l, v, "'times' must be a count from 1 to %d", RULETEST_MAX_LINES);
				it->times = 1;
			}
			break;
		}
		case 6: load_fields(l, it, v); break;
		default:
			break;
		}
	}
	if (!kl_ymap_get(n, "line") && !kl_ymap_get(n, "lines") && !kl_ymap_get(n, "fields"))
		err(l, n, "an input entry needs 'line' (one log line), 'lines' (a list) or, for a "
			  "probe, 'fields' (a check's result)");
	if (forn && times)
		err(l, forn, "an input entry has 'for' or 'times', not both");
	if ((forn || times) && !every)
		err(l, forn ? forn : times, "'%s' needs 'every' (how often the lines are written)",
		    forn ? "for" : "times");
	if (every && !forn && !times)
		err(l, every, "'every' needs 'for' (how long) or 'times' (how many)");
	if (every && forn && it->every_us > 0) {
		/* at, at+every, ... before at+for */
		uint64_t k = (uint64_t)((span + it->every_us - 1) / it->every_us);
		it->times = k ? k : 1;
	}
	if (it->every_us > 0 && it->times > 1 &&
	    (it->times - 1) > (uint64_t)(RULETEST_MAX_SPAN_US / it->every_us))
		err(l, n, "this entry spans more than a year");
	/* a probe entry gives one result per repetition */
	size_t per = it->nfields ? 1 : it->nlines;
	if (it->times * (per ? per : 1) > RULETEST_MAX_LINES)
		err(l, n, "this entry writes more than %d lines", RULETEST_MAX_LINES);
	else
		t->nlines += it->times * per;
}

static void load_input(struct ld *l, struct ruletest_case *t, const struct kl_ynode *n)
{
	if (!want(l, n, KL_Y_MAP, "input"))
		return;
	t->inputs = alloc_n(l, n->n, sizeof *t->inputs);
	if (!t->inputs)
		return;
	for (size_t i = 0; i < n->n; i++) {
		const struct kl_ynode *k = n->keys[i], *v = n->items[i];
		struct ruletest_input *in = &t->inputs[t->ninputs++];
		*in = (struct ruletest_input){ .source = k->str, .line = k->line, .col = k->col };
		const struct kl_ynode one = { .type = KL_Y_SEQ, .line = v->line, .col = v->col,
					      .items = (struct kl_ynode **)&v, .n = 1 };
		/* `source: 'a line'` or `source: {line: ...}` stand for a list of one */
		const struct kl_ynode *list = v->type == KL_Y_SEQ ? v : &one;
		in->items = alloc_n(l, list->n, sizeof *in->items);
		for (size_t j = 0; in->items && j < list->n; j++)
			load_item(l, t, &in->items[in->nitems++], list->items[j]);
	}
	if (t->nlines > RULETEST_MAX_LINES)
		err(l, n, "this test writes %zu lines; at most %d", t->nlines, RULETEST_MAX_LINES);
}

static bool status_of(struct ld *l, const struct kl_ynode *v, bool *resolved)
{
	const char *s = scalar(l, v, "status", "firing or resolved");
	if (!s)
		return false;
	if (strcmp(s, "firing") == 0)
		*resolved = false;
	else if (strcmp(s, "resolved") == 0)
		*resolved = true;
	else {
		char shown[96];
		err(l, v, "invalid status '%s'; expected firing or resolved",
		    show(v, shown, sizeof shown));
		return false;
	}
	return true;
}

static const char *const expect_keys[] = { "at",      "alert",	     "status", "labels",
					   "summary", "annotations", "within", NULL };

static void load_expect(struct ld *l, struct ruletest_case *t, struct ruletest_expect *e,
			const struct kl_ynode *n)
{
	e->line = n->line;
	e->col = n->col;
	e->within_us = -1;
	if (!want(l, n, KL_Y_MAP, "expect"))
		return;
	const struct kl_ynode *summary = kl_ymap_get(n, "summary");
	const struct kl_ynode *ann = kl_ymap_get(n, "annotations");
	for (size_t i = 0; i < n->n; i++) {
		const struct kl_ynode *v = n->items[i];
		switch (known_key(l, n->keys[i], expect_keys, " in an expected transition")) {
		case 0: offset(l, v, "at", t->start_us, &e->at_us); break;
		case 1: e->alert = scalar(l, v, "alert", "an alert name"); break;
		case 2: status_of(l, v, &e->resolved); break;
		case 3: kvs(l, v, "labels", &e->labels, &e->nlabels); break;
		case 4: scalar(l, v, "summary", "the rendered summary"); break;
		case 5: want(l, v, KL_Y_MAP, "annotations"); break;
		case 6: duration(l, v, "within", &e->within_us); break;
		default: break;
		}
	}
	if (!kl_ymap_get(n, "at"))
		err(l, n, "an expected transition needs 'at' (its instant)");
	if (!kl_ymap_get(n, "alert"))
		err(l, n, "an expected transition needs 'alert'");
	/* summary: and annotations: together make one list */
	size_t na = (ann && ann->type == KL_Y_MAP ? ann->n : 0) + (summary != NULL);
	e->annotations = alloc_n(l, na, sizeof *e->annotations);
	if (!e->annotations)
		return;
	if (summary && summary->type == KL_Y_SCALAR)
		e->annotations[e->nannotations++] = (struct ruletest_kv){ "summary", summary->str };
	for (size_t i = 0; ann && ann->type == KL_Y_MAP && i < ann->n; i++) {
		const struct kl_ynode *v = ann->items[i];
		if (v->type != KL_Y_SCALAR) {
			err(l, v, "expected a string for 'annotations.%s', found %s", ann->keys[i]->str,
			    kl_ynode_kind(v));
			continue;
		}
		if (summary && strcmp(ann->keys[i]->str, "summary") == 0) {
			err(l, ann->keys[i], "'summary' is given twice (also at line %d)",
			    summary->line);
			continue;
		}
		e->annotations[e->nannotations++] = (struct ruletest_kv){ ann->keys[i]->str, v->str };
	}
}

static const char *const absent_keys[] = { "alert", "status", "labels", "from", "until", NULL };

static void load_absent(struct ld *l, struct ruletest_case *t, struct ruletest_absent *a,
			const struct kl_ynode *n)
{
	a->line = n->line;
	a->col = n->col;
	a->until_us = -1;
	a->status = -1;
	if (n->type == KL_Y_SCALAR) { /* absent: [NoTraffic] */
		a->alert = scalar(l, n, "absent", "an alert name");
		return;
	}
	if (!want(l, n, KL_Y_MAP, "absent"))
		return;
	for (size_t i = 0; i < n->n; i++) {
		const struct kl_ynode *v = n->items[i];
		switch (known_key(l, n->keys[i], absent_keys, " in an absent entry")) {
		case 0: a->alert = scalar(l, v, "alert", "an alert name"); break;
		case 1: {
			bool resolved;
			if (status_of(l, v, &resolved))
				a->status = resolved;
			break;
		}
		case 2: kvs(l, v, "labels", &a->labels, &a->nlabels); break;
		case 3: offset(l, v, "from", t->start_us, &a->from_us); break;
		case 4: offset(l, v, "until", t->start_us, &a->until_us); break;
		default: break;
		}
	}
	if (!kl_ymap_get(n, "alert"))
		err(l, n, "an absent entry needs 'alert'");
	if (a->until_us >= 0 && a->until_us < a->from_us)
		err(l, n, "'until' is before 'from'");
}

static bool instant(struct ld *l, const struct kl_ynode *v, const char *key, int64_t *out)
{
	char shown[96];
	const char *s = scalar(l, v, key, "an RFC 3339 instant");
	if (!s)
		return false;
	if (ruletest_parse_instant(s, v->len, out) < 0) {
		err(l, v, "invalid instant '%s' for '%s'; expected RFC 3339, e.g. 2023-11-14T22:00:00Z",
		    show(v, shown, sizeof shown), key);
		return false;
	}
	return true;
}

static const char *const test_keys[] = { "name",   "start",  "until", "input",
					 "expect", "absent", NULL };

static void load_test(struct ld *l, struct ruletest_case *t, const struct kl_ynode *n,
		      int64_t start)
{
	t->line = n->line;
	t->col = n->col;
	t->start_us = start;
	t->until_us = -1;
	if (!want(l, n, KL_Y_MAP, "tests"))
		return;
	const struct kl_ynode *v = kl_ymap_get(n, "start");
	if (v)
		instant(l, v, "start", &t->start_us);
	for (size_t i = 0; i < n->n; i++) {
		v = n->items[i];
		switch (known_key(l, n->keys[i], test_keys, " in a test")) {
		case 0: t->name = scalar(l, v, "name", "the test's name"); break;
		case 1: break; /* read first */
		case 2: offset(l, v, "until", t->start_us, &t->until_us); break;
		case 3: load_input(l, t, v); break;
		case 4:
			if (!want(l, v, KL_Y_SEQ, "expect"))
				break;
			t->expects = alloc_n(l, v->n, sizeof *t->expects);
			for (size_t k = 0; t->expects && k < v->n; k++)
				load_expect(l, t, &t->expects[t->nexpects++], v->items[k]);
			break;
		case 5:
			if (!want(l, v, KL_Y_SEQ, "absent"))
				break;
			t->absents = alloc_n(l, v->n, sizeof *t->absents);
			for (size_t k = 0; t->absents && k < v->n; k++)
				load_absent(l, t, &t->absents[t->nabsents++], v->items[k]);
			break;
		default: break;
		}
	}
	if (!kl_ymap_get(n, "name"))
		err(l, n, "a test needs 'name'");
	if (!t->nexpects && !t->nabsents)
		err(l, n, "a test needs 'expect' (the transitions it must give) or 'absent' (the "
			  "alerts it must not give), or both");
}

static void load_time_formats(struct ld *l, const struct kl_ynode *v)
{
	struct ruletest_file *f = l->f;
	if (!want(l, v, KL_Y_MAP, "time_format"))
		return;
	f->time_formats = alloc_n(l, v->n, sizeof *f->time_formats);
	for (size_t i = 0; f->time_formats && i < v->n; i++) {
		const char *fmt = scalar(l, v->items[i], "time_format", "a time format");
		struct kl_buf b = { 0 };
		if (!fmt)
			continue;
		int rc = ruletest_format_time(fmt, 0, &b);
		kl_buf_free(&b);
		if (rc == -EINVAL) {
			err(l, v->items[i],
			    "time_format: unknown conversion in '%s'; known: %%Y %%m %%d %%H %%M %%S %%b "
			    "%%a %%j %%F %%T %%L (ms) %%f (us) %%z %%Z %%s %%%%",
			    fmt);
			continue;
		}
		f->time_formats[f->ntime_formats++] = (struct ruletest_timefmt){
			v->keys[i]->str, fmt, v->keys[i]->line, v->keys[i]->col
		};
	}
}

static const char *const top_keys[] = { "config",	 "sources", "parsers",	   "rule_files",
					"eval_interval", "start",   "time_format", "tests",
					NULL };

static char *dir_join(const char *file, const char *rel)
{
	struct kl_buf b = { 0 };
	const char *slash = strrchr(file, '/');
	if (rel[0] != '/' && slash && kl_buf_append(&b, file, (size_t)(slash - file + 1)) < 0)
		return NULL;
	if (kl_buf_append_str(&b, rel) < 0) {
		kl_buf_free(&b);
		return NULL;
	}
	return b.p;
}

static void load_root(struct ld *l, const struct kl_ynode *root)
{
	struct ruletest_file *f = l->f;
	if (root->type != KL_Y_MAP) {
		err(l, root, "expected a mapping at the top level of a test file, found %s",
		    kl_ynode_kind(root));
		return;
	}
	int64_t start = RULETEST_DEFAULT_START_US;
	const struct kl_ynode *v = kl_ymap_get(root, "start");
	if (v)
		instant(l, v, "start", &start);
	/* the config loader's view: at most these four keys */
	f->embedded = (struct kl_ynode){ .type = KL_Y_MAP, .line = root->line, .col = root->col };
	f->embedded.keys = alloc_n(l, 4, sizeof *f->embedded.keys);
	f->embedded.items = alloc_n(l, 4, sizeof *f->embedded.items);
	if (!f->embedded.keys || !f->embedded.items)
		return;
	for (size_t i = 0; i < root->n; i++) {
		v = root->items[i];
		int k = known_key(l, root->keys[i], top_keys, " in a test file");
		switch (k) {
		case 0: {
			const char *s = scalar(l, v, "config", "the path of a klaxon config");
			if (!s)
				break;
			f->config_line = v->line;
			f->config_col = v->col;
			if (!(f->config_path = dir_join(f->path, s)))
				l->oom = true;
			break;
		}
		case 1:
		case 2:
		case 3:
		case 4:
			if (k == 4)
				f->has_eval_interval = true;
			f->embedded.keys[f->embedded.n] = root->keys[i];
			f->embedded.items[f->embedded.n++] = (struct kl_ynode *)v;
			break;
		case 5: break; /* read first */
		case 6: load_time_formats(l, v); break;
		case 7:
			if (!want(l, v, KL_Y_SEQ, "tests"))
				break;
			if (!v->n) {
				err(l, v, "'tests' is empty");
				break;
			}
			f->tests = alloc_n(l, v->n, sizeof *f->tests);
			for (size_t j = 0; f->tests && j < v->n; j++)
				load_test(l, &f->tests[f->ntests++], v->items[j], start);
			break;
		default: break;
		}
	}
	const struct kl_ynode *cfg = kl_ymap_get(root, "config"), *srcs = kl_ymap_get(root, "sources");
	if (cfg && srcs)
		err(l, srcs, "a test file has 'config' (a klaxon config's sources) or 'sources' "
			     "(written here), not both");
	if (!cfg && !srcs)
		err(l, root, "a test file needs 'config' (the path of a klaxon config, for its "
			     "sources and parsers) or 'sources' (name and parser of each)");
	if (cfg && kl_ymap_get(root, "parsers"))
		err(l, kl_ymap_get(root, "parsers"),
		    "'parsers' comes with 'sources'; with 'config' the parsers are the config's");
	if (!kl_ymap_get(root, "rule_files"))
		err(l, root, "a test file needs 'rule_files' (the rule files under test, relative "
			     "to the test file)");
	if (!kl_ymap_get(root, "tests"))
		err(l, root, "a test file needs 'tests'");
}

static struct ruletest_file *finish(const char *name, struct kl_ynode *tree, struct kl_diag *d)
{
	struct ruletest_file *f = calloc(1, sizeof *f);
	struct ld l = { .f = f, .d = d, .before = d->errors };
	if (!f || !(f->path = kl_strndup(name, strlen(name)))) {
		kl_diag_error(d, name, 0, 0, "out of memory");
		free(f);
		kl_yaml_free(tree);
		return NULL;
	}
	f->tree = tree;
	if (!tree) {
		ruletest_free(f);
		return NULL;
	}
	load_root(&l, tree);
	if (l.oom && d->errors == l.before)
		kl_diag_error(d, name, 0, 0, "out of memory");
	if (d->errors != l.before) {
		ruletest_free(f);
		return NULL;
	}
	return f;
}

struct ruletest_file *ruletest_load(const char *path, struct kl_diag *d)
{
	return finish(path, kl_yaml_load_file(path, d), d);
}

struct ruletest_file *ruletest_load_mem(const char *name, const char *data, size_t len,
					struct kl_diag *d)
{
	return finish(name, kl_yaml_load_mem(name, data, len, d), d);
}

void ruletest_free(struct ruletest_file *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->ntests; i++) {
		struct ruletest_case *t = &f->tests[i];
		for (size_t j = 0; j < t->ninputs; j++) {
			for (size_t k = 0; k < t->inputs[j].nitems; k++) {
				free(t->inputs[j].items[k].lines);
				free(t->inputs[j].items[k].fields);
			}
			free(t->inputs[j].items);
		}
		free(t->inputs);
		for (size_t j = 0; j < t->nexpects; j++) {
			free(t->expects[j].labels);
			free(t->expects[j].annotations);
		}
		free(t->expects);
		for (size_t j = 0; j < t->nabsents; j++)
			free(t->absents[j].labels);
		free(t->absents);
	}
	free(f->tests);
	free(f->time_formats);
	free(f->embedded.keys);
	free(f->embedded.items);
	free(f->config_path);
	kl_yaml_free(f->tree);
	free(f->path);
	free(f);
}

/* ------------------------------------------------------------------------- */
/* Time */

/* Civil date of a day count since 1970-01-01 (Howard Hinnant's algorithm). */
static void civil(int64_t days, int64_t *y, unsigned *m, unsigned *d)
{
	days += 719468;
	int64_t era = (days >= 0 ? days : days - 146096) / 146097;
	unsigned doe = (unsigned)(days - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

int ruletest_format_time(const char *fmt, int64_t t_us, struct kl_buf *out)
{
	static const char *const mon[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	static const char *const wday[] = { "Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed" };
	int64_t secs = t_us >= 0 ? t_us / 1000000 : -((-t_us + 999999) / 1000000);
	int64_t us = t_us - secs * 1000000;
	int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
	int64_t sod = secs - days * 86400;
	int64_t y;
	unsigned m, d;
	civil(days, &y, &m, &d);
	int rc = 0;
	for (const char *p = fmt; *p && rc == 0; p++) {
		if (*p != '%') {
			rc = kl_buf_append(out, p, 1);
			continue;
		}
		switch (*++p) {
		case 'Y': rc = kl_buf_appendf(out, "%04lld", (long long)y); break;
		case 'm': rc = kl_buf_appendf(out, "%02u", m); break;
		case 'd': rc = kl_buf_appendf(out, "%02u", d); break;
		case 'H': rc = kl_buf_appendf(out, "%02d", (int)(sod / 3600)); break;
		case 'M': rc = kl_buf_appendf(out, "%02d", (int)(sod / 60 % 60)); break;
		case 'S': rc = kl_buf_appendf(out, "%02d", (int)(sod % 60)); break;
		case 'b': rc = kl_buf_append_str(out, mon[m - 1]); break;
		case 'a': rc = kl_buf_append_str(out, wday[((days % 7) + 7) % 7]); break;
		case 'j':
			rc = kl_buf_appendf(out, "%03lld",
					    (long long)(days - kl_days_from_civil(y, 1, 1) + 1));
			break;
		case 'F':
			rc = kl_buf_appendf(out, "%04lld-%02u-%02u", (long long)y, m, d);
			break;
		case 'T':
			rc = kl_buf_appendf(out, "%02d:%02d:%02d", (int)(sod / 3600),
					    (int)(sod / 60 % 60), (int)(sod % 60));
			break;
		case 'L': rc = kl_buf_appendf(out, "%03d", (int)(us / 1000)); break;
		case 'f': rc = kl_buf_appendf(out, "%06d", (int)us); break;
		case 'z': rc = kl_buf_append_str(out, "+0000"); break;
		case 'Z': rc = kl_buf_append_str(out, "UTC"); break;
		case 's': rc = kl_buf_appendf(out, "%lld", (long long)secs); break;
		case '%': rc = kl_buf_append(out, "%", 1); break;
		default: return -EINVAL;
		}
	}
	return rc;
}

int64_t ruletest_time_precision(const char *fmt)
{
	int64_t p = 1000000;
	for (const char *s = fmt; *s; s++) {
		if (*s != '%' || !s[1])
			continue;
		s++;
		if (*s == 'f')
			p = 1;
		else if (*s == 'L' && p > 1000)
			p = 1000;
	}
	return p;
}

const char *const *ruletest_time_candidates(void)
{
	static const char *const c[] = {
		"%d/%b/%Y:%H:%M:%S %z",	   /* nginx $time_local, gunicorn %(t)s */
		"%Y-%m-%d %H:%M:%S,%L",	   /* Python logging's asctime */
		"%Y-%m-%d %H:%M:%S.%L %Z", /* PostgreSQL %m */
		"%Y-%m-%d %H:%M:%S %Z",	   /* PostgreSQL %t */
		"%Y-%m-%dT%H:%M:%S.%LZ",   /* ISO 8601 / RFC 3339 */
		"%Y-%m-%dT%H:%M:%SZ",
		"%Y-%m-%d %H:%M:%S.%L",
		"%Y-%m-%d %H:%M:%S %z",	   /* gunicorn's error log */
		"%Y-%m-%d %H:%M:%S",
		"%s.%L", /* PostgreSQL %n */
		"%s",
		NULL,
	};
	return c;
}

static const char TIME_TAG[] = "{{time}}";
static const char N_TAG[] = "{{n}}";

bool ruletest_has_time(const char *tmpl, size_t len)
{
	for (size_t i = 0; i + sizeof TIME_TAG - 1 <= len; i++)
		if (memcmp(tmpl + i, TIME_TAG, sizeof TIME_TAG - 1) == 0)
			return true;
	return false;
}

int ruletest_expand(const char *tmpl, size_t len, const char *timefmt, int64_t t_us, uint64_t n,
		    struct kl_buf *out)
{
	size_t i = 0, lit = 0;
	int rc = 0;
	while (i < len && rc == 0) {
		size_t tag = 0;
		if (len - i >= sizeof TIME_TAG - 1 && memcmp(tmpl + i, TIME_TAG, sizeof TIME_TAG - 1) == 0)
			tag = sizeof TIME_TAG - 1;
		else if (len - i >= sizeof N_TAG - 1 && memcmp(tmpl + i, N_TAG, sizeof N_TAG - 1) == 0)
			tag = sizeof N_TAG - 1;
		if (!tag) {
			i++;
			continue;
		}
		rc = kl_buf_append(out, tmpl + lit, i - lit);
		if (rc == 0 && tag == sizeof TIME_TAG - 1)
			rc = timefmt ? ruletest_format_time(timefmt, t_us, out) : -EINVAL;
		else if (rc == 0)
			rc = kl_buf_appendf(out, "%llu", (unsigned long long)n);
		i += tag;
		lit = i;
	}
	if (rc == 0)
		rc = kl_buf_append(out, tmpl + lit, len - lit);
	return rc;
}

int ruletest_probe_number(const char *s, size_t len, bool seconds, double *out)
{
	int64_t us;
	if (kl_parse_double(s, len, out) == 0)
		return 0;
	if (!seconds || kl_parse_duration_us(s, len, &us) < 0)
		return -EINVAL;
	*out = (double)us / 1e6;
	return 0;
}

static bool digits(const char *s, size_t n, int *out)
{
	int v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

int ruletest_parse_instant(const char *s, size_t len, int64_t *out_us)
{
	int y, mo, d, h, mi, sec;
	if (len < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
	    s[13] != ':' || s[16] != ':' || !digits(s, 4, &y) || !digits(s + 5, 2, &mo) ||
	    !digits(s + 8, 2, &d) || !digits(s + 11, 2, &h) || !digits(s + 14, 2, &mi) ||
	    !digits(s + 17, 2, &sec))
		return -EINVAL;
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || sec > 60)
		return -EINVAL;
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (mo == 2 && d == 29 && !leap)
		return -EINVAL;
	size_t i = 19;
	int64_t frac = 0;
	if (i < len && s[i] == '.') {
		int64_t scale = 100000;
		size_t first = ++i;
		for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
			frac += (s[i] - '0') * scale;
			scale /= 10;
		}
		if (i == first)
			return -EINVAL;
	}
	int64_t off = 0;
	if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
		i++;
	} else if (i + 6 == len && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
		int oh, om;
		if (!digits(s + i + 1, 2, &oh) || !digits(s + i + 4, 2, &om) || oh > 23 || om > 59)
			return -EINVAL;
		off = (oh * 3600 + om * 60) * (s[i] == '-' ? -1 : 1);
		i += 6;
	} else {
		return -EINVAL;
	}
	if (i != len)
		return -EINVAL;
	int64_t secs = kl_days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 +
		       mi * 60 + sec - off;
	*out_us = secs * 1000000 + frac;
	return 0;
}
