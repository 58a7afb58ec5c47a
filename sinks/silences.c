/*
 * silences.c — silences stored in state_dir/silences.json.
 *
 * The file is the interface between `klaxon silence ...` and a running klaxon:
 * the command rewrites it atomically (temp, fsync, rename), the sidecar watches
 * it and reloads it when it changes. Expired silences are kept (they are
 * history) until they are a day old, then dropped on the next save.
 *
 *   {"silences":[{"id":"3f2a…","matchers":[{"name":"alertname","value":"X",
 *     "regex":false}],"starts_at":"…Z","ends_at":"…Z","created_at":"…Z",
 *     "comment":"…"}]}
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "sinks/sinks.h"

#define SILENCES_FILE "silences.json"
#define KEEP_EXPIRED_US (24 * 3600 * 1000000LL)

static char *path_of(const char *state_dir)
{
	struct kl_buf b = { 0 };
	if (kl_buf_appendf(&b, "%s/%s", state_dir, SILENCES_FILE) < 0)
		return NULL;
	return b.p;
}

/* RFC 3339 "YYYY-MM-DDTHH:MM:SS[.fff]Z" → µs; what we write, nothing more. */
static int parse_time(const char *s, int64_t *out)
{
	int64_t f[6];
	static const int width[6] = { 4, 2, 2, 2, 2, 2 };
	static const char sep[6] = { '-', '-', 'T', ':', ':', 0 };
	const char *p = s;
	for (int i = 0; i < 6; i++) {
		if (kl_parse_i64(p, (size_t)width[i], &f[i]) < 0)
			return -EINVAL;
		p += width[i];
		if (sep[i] && *p++ != sep[i])
			return -EINVAL;
	}
	int64_t frac = 0, scale = 1000000;
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++)
			if (scale > 1) {
				scale /= 10;
				frac += (*p - '0') * scale;
			}
	if (*p != 'Z' || p[1])
		return -EINVAL;
	int64_t days = kl_days_from_civil(f[0], (unsigned)f[1], (unsigned)f[2]);
	*out = ((days * 24 + f[3]) * 60 + f[4]) * 60 * 1000000 + f[5] * 1000000 + frac;
	return 0;
}

static char *dup_json_str(json_t *o, const char *key)
{
	const char *v = json_string_value(json_object_get(o, key));
	return v ? kl_strndup(v, strlen(v)) : NULL;
}

static int load_one(json_t *o, struct silence *s)
{
	json_t *ms = json_object_get(o, "matchers");
	const char *st = json_string_value(json_object_get(o, "starts_at"));
	const char *en = json_string_value(json_object_get(o, "ends_at"));
	const char *cr = json_string_value(json_object_get(o, "created_at"));
	s->id = dup_json_str(o, "id");
	s->comment = dup_json_str(o, "comment");
	if (!s->id || !json_is_array(ms) || !st || !en || parse_time(st, &s->starts_us) < 0 ||
	    parse_time(en, &s->ends_us) < 0)
		return -EINVAL;
	if (!cr || parse_time(cr, &s->created_us) < 0)
		s->created_us = s->starts_us;
	s->matchers = calloc(json_array_size(ms) + 1, sizeof *s->matchers);
	if (!s->matchers)
		return -ENOMEM;
	for (size_t i = 0; i < json_array_size(ms); i++) {
		json_t *m = json_array_get(ms, i);
		struct silence_matcher *sm = &s->matchers[s->nmatchers++];
		sm->name = dup_json_str(m, "name");
		sm->value = dup_json_str(m, "value");
		sm->regex = json_is_true(json_object_get(m, "regex"));
		if (!sm->name || !sm->value)
			return -EINVAL;
	}
	return s->nmatchers ? 0 : -EINVAL;
}

int silences_load(const char *state_dir, struct silences *out)
{
	memset(out, 0, sizeof *out);
	char *path = path_of(state_dir);
	if (!path)
		return -ENOMEM;
	json_error_t je;
	json_t *root = json_load_file(path, 0, &je);
	int rc = 0;
	if (!root) {
		if (access(path, F_OK) < 0) {
			free(path);
			return 0; /* no silences yet */
		}
		kl_log(KL_LOG_ERROR, "silences: %s:%d:%d: %s; the silences in it are not applied",
		       path, je.line, je.column, je.text);
		free(path);
		return -EINVAL;
	}
	json_t *list = json_object_get(root, "silences");
	size_t n = json_array_size(list);
	out->items = calloc(n + 1, sizeof *out->items);
	if (!out->items) {
		rc = -ENOMEM;
		goto done;
	}
	for (size_t i = 0; i < n; i++) {
		struct silence *s = &out->items[out->n++];
		if ((rc = load_one(json_array_get(list, i), s)) < 0) {
			kl_log(KL_LOG_ERROR, "silences: %s: entry %zu is malformed; the silences in it are not applied",
			       path, i + 1);
			silences_free(out);
			goto done;
		}
	}
done:
	json_decref(root);
	free(path);
	return rc;
}

static json_t *time_json(int64_t us)
{
	char b[KL_RFC3339_MAX];
	kl_format_rfc3339(us, true, b);
	return json_string(b);
}

int silences_save(const char *state_dir, const struct silences *s)
{
	json_t *root = json_object(), *list = json_array();
	int64_t now = kl_wall_us();
	int rc = -ENOMEM;
	if (!root || !list)
		goto done;
	json_object_set_new(root, "silences", list);
	list = NULL;
	json_t *arr = json_object_get(root, "silences");
	for (size_t i = 0; i < s->n; i++) {
		const struct silence *x = &s->items[i];
		if (x->ends_us < now - KEEP_EXPIRED_US)
			continue;
		json_t *o = json_object(), *ms = json_array();
		for (size_t k = 0; k < x->nmatchers; k++)
			json_array_append_new(ms, json_pack("{s:s, s:s, s:b}", "name", x->matchers[k].name,
							    "value", x->matchers[k].value, "regex",
							    x->matchers[k].regex));
		json_object_set_new(o, "id", json_string(x->id));
		json_object_set_new(o, "matchers", ms);
		json_object_set_new(o, "starts_at", time_json(x->starts_us));
		json_object_set_new(o, "ends_at", time_json(x->ends_us));
		json_object_set_new(o, "created_at", time_json(x->created_us));
		json_object_set_new(o, "comment", json_string(x->comment ? x->comment : ""));
		json_array_append_new(arr, o);
	}
	char *text = json_dumps(root, JSON_INDENT(2) | JSON_ENSURE_ASCII);
	char *path = path_of(state_dir);
	if (text && path) {
		size_t len = strlen(text);
		text[len] = '\n'; /* json_dumps leaves room for the NUL; replace it */
		rc = kl_write_file_atomic(path, text, len + 1);
	}
	free(text);
	free(path);
done:
	json_decref(list);
	json_decref(root);
	return rc;
}

void silences_free(struct silences *s)
{
	for (size_t i = 0; s->items && i < s->n; i++) {
		struct silence *x = &s->items[i];
		for (size_t k = 0; k < x->nmatchers; k++) {
			free(x->matchers[k].name);
			free(x->matchers[k].value);
		}
		free(x->matchers);
		free(x->id);
		free(x->comment);
	}
	free(s->items);
	memset(s, 0, sizeof *s);
}

void silence_new_id(char out[17])
{
	uint64_t r = 0;
	if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
		r = (uint64_t)kl_wall_us() * 0x9e3779b97f4a7c15ULL ^ (uint64_t)getpid();
	static const char hex[] = "0123456789abcdef";
	for (int i = 0; i < 16; i++)
		out[i] = hex[(r >> (60 - 4 * i)) & 0xf];
	out[16] = '\0';
}

/* A regex matcher matches the whole value, as Alertmanager's do. Compiled per
 * call: silences are checked per notification, not per event. */
static bool regex_matches(const char *re, const char *value)
{
	int ec;
	PCRE2_SIZE eo;
	pcre2_code *code = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, PCRE2_ANCHORED | PCRE2_ENDANCHORED,
					 &ec, &eo, NULL);
	if (!code)
		return false;
	pcre2_match_data *md = pcre2_match_data_create_from_pattern(code, NULL);
	bool ok = md && pcre2_match(code, (PCRE2_SPTR)value, strlen(value), 0, 0, md, NULL) >= 0;
	pcre2_match_data_free(md);
	pcre2_code_free(code);
	return ok;
}

bool silence_matches(const struct silence *s, const struct sink_match *labels, size_t n,
		     int64_t now_us)
{
	if (now_us < s->starts_us || now_us >= s->ends_us)
		return false;
	for (size_t k = 0; k < s->nmatchers; k++) {
		const struct silence_matcher *m = &s->matchers[k];
		const char *value = "";
		for (size_t i = 0; i < n; i++)
			if (!strcmp(labels[i].name, m->name))
				value = labels[i].value;
		if (m->regex ? !regex_matches(m->value, value) : strcmp(m->value, value) != 0)
			return false;
	}
	return true;
}
