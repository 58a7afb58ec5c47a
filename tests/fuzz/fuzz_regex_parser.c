/*
 * fuzz_regex_parser.c — user-defined regex parsers. The input is a regex on
 * its first line and records on the following lines. The regex is built once
 * as given, then again with types assigned to its fields in turn (string, int,
 * float, seconds, ms) and, when a group is named "time" or "t", a time field
 * with one of a few formats; every record goes through both: parse, numbers,
 * JSON.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/kl.h"
#include "parsers/parsers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_REGEX 512

static void run(struct parser *p, const char *rec, size_t len)
{
	struct parser_event ev;
	struct kl_buf out = { 0 };
	parser_event_init(&ev, p);
	if (parser_parse(p, rec, len, 0, &ev) < 0)
		return;
	for (unsigned i = 0; i < parser_field_count(p); i++) {
		const struct kl_str *f = &ev.raw[i];
		if (f->p && (f->p < rec || f->p + f->len > rec + len))
			abort();
		double v;
		(void)parser_event_number(&ev, i, &v);
	}
	if (parser_event_json(&ev, "fuzz", &out) < 0)
		abort();
	for (size_t i = 0; i < out.len; i++)
		if ((unsigned char)out.p[i] < 0x20)
			abort();
	kl_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *d = (const char *)data;
	const char *nl = memchr(d, '\n', size);
	size_t rlen = nl ? (size_t)(nl - d) : size;
	char regex[MAX_REGEX + 1];
	char err[256];
	int off;

	if (rlen > MAX_REGEX)
		return 0;
	memcpy(regex, d, rlen);
	regex[rlen] = '\0'; /* an embedded NUL just ends the regex early */

	struct parser_spec spec = { .name = "fuzz", .regex = regex };
	struct parser *plain = parser_new(&spec, err, sizeof err, &off);
	if (!plain)
		return 0;

	static const enum parser_type cycle[] = { PARSER_T_STRING, PARSER_T_INT, PARSER_T_FLOAT,
						  PARSER_T_SECONDS, PARSER_T_MS };
	static const char *const formats[] = { NULL, "%d/%b/%Y:%H:%M:%S %z",
					       "%Y-%m-%d %H:%M:%S.%f", "%b %e %T %Y" };
	struct parser_field_spec types[PARSER_MAX_FIELDS];
	size_t nt = 0;
	for (unsigned i = 0; i < parser_field_count(plain); i++) {
		const char *n = parser_field_name(plain, i);
		if (strcmp(n, "time") == 0 || strcmp(n, "t") == 0) {
			if (!spec.time_field) {
				spec.time_field = n;
				spec.time_format = formats[rlen % 4];
				continue;
			}
		}
		types[nt++] = (struct parser_field_spec){ n, cycle[i % 5] };
	}
	spec.types = types;
	spec.ntypes = nt;
	struct parser *typed = parser_new(&spec, err, sizeof err, &off);

	const char *rec = nl ? nl + 1 : d + size;
	const char *end = d + size;
	while (rec <= end) {
		const char *e = memchr(rec, '\n', (size_t)(end - rec));
		size_t len = e ? (size_t)(e - rec) : (size_t)(end - rec);
		/* exact-size copy so over-reads are caught */
		char *copy = malloc(len ? len : 1);
		if (!copy)
			break;
		memcpy(copy, rec, len);
		run(plain, copy, len);
		if (typed)
			run(typed, copy, len);
		free(copy);
		if (!e)
			break;
		rec = e + 1;
	}
	parser_free(typed);
	parser_free(plain);
	return 0;
}
