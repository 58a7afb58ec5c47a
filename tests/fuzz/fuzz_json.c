/*
 * fuzz_json.c — the json scanner on one record of arbitrary bytes, checked
 * against jansson: whatever jansson accepts as one object (nested at most 100
 * deep: the scanner's limit is 128; and without raw NUL bytes, which
 * jansson's buffer reader takes for the end of the text) the scanner must
 * accept, and a top-level
 * string "msg" must unescape to the same bytes. The scanner may accept more
 * (invalid UTF-8, lone surrogates, raw control bytes, numbers out of range:
 * bytes are not judged), never less. Also: numbers convert or fail cleanly,
 * the event's JSON has no raw control bytes and loads back in jansson.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/kl.h"
#include "parsers/parsers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct parser *pj, *pg;
static struct kl_buf out;

static void check_event(struct parser_event *ev)
{
	for (unsigned i = 0; i < parser_field_count(ev->parser); i++) {
		double v;
		(void)parser_event_number(ev, i, &v);
	}
	kl_buf_reset(&out);
	if (parser_event_json(ev, "j", &out) < 0)
		abort();
	for (size_t i = 0; i < out.len; i++)
		if ((unsigned char)out.p[i] < 0x20)
			abort();
	json_error_t jerr;
	json_t *j = json_loadb(out.p, out.len, JSON_ALLOW_NUL, &jerr);
	if (!j)
		abort();
	json_decref(j);
}

/* The deepest nesting of a text jansson accepted (strings skipped). */
static unsigned depth_of(const char *s, size_t n)
{
	unsigned d = 0, max = 0;
	bool str = false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				str = false;
		} else if (c == '"') {
			str = true;
		} else if (c == '{' || c == '[') {
			if (++d > max)
				max = d;
		} else if (c == '}' || c == ']') {
			d--;
		}
	}
	return max;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!pj) {
		static const struct parser_field_spec types[] = { { "status", PARSER_T_INT },
								  { "took", PARSER_T_MS } };
		struct parser_spec spec = { .name = "j", .type = "json", .types = types, .ntypes = 2 };
		pj = parser_new(&spec, NULL, 0, NULL);
		struct parser_spec pspec = { .name = "p", .type = "postgres_json" };
		pg = parser_new(&pspec, NULL, 0, NULL);
		if (!pj || !pg)
			abort();
		static const char *const names[] = { "msg", "level", "a", "a.b", "a.b.c", "user.id",
						     "http.status", "x.y.z.w" };
		for (size_t i = 0; i < KL_ARRAY_LEN(names); i++)
			if (parser_field_index(pj, names[i], strlen(names[i])) < 0)
				abort();
	}
	char *rec = malloc(size ? size : 1); /* exact size: ASan sees overreads */
	if (!rec)
		return 0;
	memcpy(rec, data, size);

	struct parser_event ev;
	parser_event_init(&ev, pj);
	int rc = parser_parse(pj, rec, size, 1700000000000000, &ev);
	if (rc == 0)
		check_event(&ev);

	json_error_t jerr;
	json_t *j = json_loadb(rec, size, JSON_ALLOW_NUL, &jerr);
	if (j && json_is_object(j) && depth_of(rec, size) <= 100 && !memchr(rec, '\0', size)) {
		if (rc != 0)
			abort(); /* jansson took it, the scanner did not */
		json_t *m = json_object_get(j, "msg");
		int mi = parser_field_index(pj, "msg", 3);
		if (json_is_string(m)) {
			const struct kl_str *f = &ev.raw[mi];
			if (!f->p || f->len != json_string_length(m) ||
			    memcmp(f->p, json_string_value(m), f->len) != 0)
				abort();
		} else if (json_is_null(m) || !m) {
			if (ev.raw[mi].p)
				abort();
		}
	}
	json_decref(j);

	parser_event_init(&ev, pg);
	if (parser_parse(pg, rec, size, 1700000000000000, &ev) == 0)
		check_event(&ev);
	free(rec);
	return 0;
}
