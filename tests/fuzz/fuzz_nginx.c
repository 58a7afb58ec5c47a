/*
 * fuzz_nginx.c — the built-in nginx parsers (nginx_timed and nginx_combined)
 * on one record of arbitrary bytes: parse, read every field as a number, write
 * the JSON. Checks that fields are views inside the record and that the JSON
 * has no raw control bytes. The parsers live across inputs, so the time cache
 * is exercised too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/kl.h"
#include "parsers/parsers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct parser *parsers[2];
static struct kl_buf out;

static void run(struct parser *p, const char *rec, size_t len)
{
	struct parser_event ev;
	parser_event_init(&ev, p);
	if (parser_parse(p, rec, len, 1700000000000000, &ev) < 0)
		return;
	for (unsigned i = 0; i < parser_field_count(p); i++) {
		const struct kl_str *f = &ev.raw[i];
		if (f->p && (f->p < rec || f->p + f->len > rec + len))
			abort();
		double v;
		(void)parser_event_number(&ev, i, &v);
		(void)parser_event_number(&ev, i, &v); /* the cached path */
	}
	kl_buf_reset(&out);
	if (parser_event_json(&ev, "nginx", &out) < 0)
		abort();
	for (size_t i = 0; i < out.len; i++)
		if ((unsigned char)out.p[i] < 0x20)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!parsers[0]) {
		static const char *const types[2] = { "nginx_timed", "nginx_combined" };
		for (int i = 0; i < 2; i++) {
			struct parser_spec spec = { .name = types[i], .type = types[i] };
			parsers[i] = parser_new(&spec, NULL, 0, NULL);
			if (!parsers[i])
				abort();
		}
	}
	/* an exact-size copy, so reading past the record is caught by ASan */
	char *rec = malloc(size ? size : 1);
	if (!rec)
		return 0;
	memcpy(rec, data, size);
	for (int i = 0; i < 2; i++)
		run(parsers[i], rec, size);
	free(rec);
	return 0;
}
