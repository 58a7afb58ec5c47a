/*
 * fuzz_django.c — the django parser (Python logging text, with its format
 * derived to a regex) and gunicorn_access, on one record of arbitrary bytes.
 *
 * Two shapes of input:
 * - "F:" FORMAT "\n" RECORD: a parser is built from FORMAT (the derivation
 *   must fail cleanly or give a regex and a multi-line rule that compile) and
 *   parses RECORD;
 * - anything else: one record for the long-lived parsers (default format, a
 *   padded verbose format, gunicorn's error log with a datefmt, and
 *   gunicorn_access), so their time caches are exercised across inputs.
 * Checks: fields are views inside the record, numbers convert or fail
 * cleanly, the event's JSON has no raw control bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <pcre2.h>

#include "common/kl.h"
#include "parsers/parsers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct parser *parsers[4];
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
	}
	kl_buf_reset(&out);
	if (parser_event_json(&ev, "app", &out) < 0)
		abort();
	for (size_t i = 0; i < out.len; i++)
		if ((unsigned char)out.p[i] < 0x20)
			abort();
}

static void check_rule(struct parser *p)
{
	struct parser_multiline ml;
	if (!parser_default_multiline(p, &ml))
		return;
	const char *re = ml.start ? ml.start : ml.continuation;
	int ec;
	PCRE2_SIZE eo;
	pcre2_code *c = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, 0, &ec, &eo, NULL);
	if (!c)
		abort(); /* a derived rule must compile */
	pcre2_code_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!parsers[0]) {
		static const struct parser_spec specs[4] = {
			{ .name = "d", .type = "django" },
			{ .name = "v", .type = "django",
			  .format = "[%(asctime)s] %(levelname)-8s %(name)s:%(lineno)d %(threadName)s %(module)s.%(funcName)s %(message)s" },
			{ .name = "g", .type = "django",
			  .format = "[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s",
			  .time_format = "%Y-%m-%d %H:%M:%S %z" },
			{ .name = "a", .type = "gunicorn_access" },
		};
		for (int i = 0; i < 4; i++) {
			parsers[i] = parser_new(&specs[i], NULL, 0, NULL);
			if (!parsers[i])
				abort();
		}
	}
	if (size >= 2 && data[0] == 'F' && data[1] == ':') {
		const uint8_t *nl = memchr(data, '\n', size);
		size_t flen = nl ? (size_t)(nl - data) - 2 : size - 2;
		char *fmt = kl_strndup((const char *)data + 2, flen);
		if (!fmt)
			return 0;
		struct parser_spec spec = { .name = "f", .type = "django", .format = fmt };
		struct parser *p = parser_new(&spec, NULL, 0, NULL);
		if (p) {
			check_rule(p);
			size_t off = nl ? (size_t)(nl - data) + 1 : size;
			char *rec = malloc(size - off ? size - off : 1);
			if (rec) {
				memcpy(rec, data + off, size - off);
				run(p, rec, size - off);
				free(rec);
			}
			parser_free(p);
		}
		free(fmt);
		return 0;
	}
	/* an exact-size copy, so reading past the record is caught by ASan */
	char *rec = malloc(size ? size : 1);
	if (!rec)
		return 0;
	memcpy(rec, data, size);
	for (int i = 0; i < 4; i++)
		run(parsers[i], rec, size);
	free(rec);
	return 0;
}
