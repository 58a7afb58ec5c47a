/*
 * fuzz_postgres.c — the postgres parser (log_line_prefix derived to a regex,
 * DETAIL/HINT/CONTEXT/STATEMENT folding) and postgres_json, on one record of
 * arbitrary bytes.
 *
 * Two shapes of input:
 * - "P:" PREFIX "\n" RECORD: a parser is built from PREFIX (it must fail
 *   cleanly or give a regex, a folding regex and a continuation rule that
 *   compile) and parses RECORD;
 * - anything else: one record for the long-lived parsers (the default,
 *   Debian, pgbadger and an every-escape prefix, and postgres_json).
 * Checks: regex parsers' fields are views inside the record; numbers convert
 * or fail cleanly; the event's JSON has no raw control bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <pcre2.h>

#include "common/kl.h"
#include "parsers/parsers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NP 5
static struct parser *parsers[NP];
static struct kl_buf out;

static void run(struct parser *p, bool views_in_record, const char *rec, size_t len)
{
	struct parser_event ev;
	parser_event_init(&ev, p);
	if (parser_parse(p, rec, len, 1700000000000000, &ev) < 0)
		return;
	for (unsigned i = 0; i < parser_field_count(p); i++) {
		const struct kl_str *f = &ev.raw[i];
		if (views_in_record && f->p && (f->p < rec || f->p + f->len > rec + len))
			abort();
		double v;
		(void)parser_event_number(&ev, i, &v);
	}
	kl_buf_reset(&out);
	if (parser_event_json(&ev, "pg", &out) < 0)
		abort();
	for (size_t i = 0; i < out.len; i++)
		if ((unsigned char)out.p[i] < 0x20)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!parsers[0]) {
		static const struct parser_spec specs[NP] = {
			{ .name = "a", .type = "postgres" },
			{ .name = "b", .type = "postgres", .log_line_prefix = "%m [%p] %q%u@%d " },
			{ .name = "c", .type = "postgres",
			  .log_line_prefix = "%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h " },
			{ .name = "d", .type = "postgres",
			  .log_line_prefix = "%n|%s|%c|%l|%v|%x|%e|%i|%b|%P|%Q|%%|%q%-10u|%8d|%a|%r|%h " },
			{ .name = "j", .type = "postgres_json" },
		};
		for (int i = 0; i < NP; i++) {
			parsers[i] = parser_new(&specs[i], NULL, 0, NULL);
			if (!parsers[i])
				abort();
		}
		/* jsonlog keys beyond the fixed ones */
		(void)parser_field_index(parsers[4], "backend_type", 12);
		(void)parser_field_index(parsers[4], "query_id", 8);
	}
	if (size >= 2 && data[0] == 'P' && data[1] == ':') {
		const uint8_t *nl = memchr(data, '\n', size);
		size_t plen = nl ? (size_t)(nl - data) - 2 : size - 2;
		char *prefix = kl_strndup((const char *)data + 2, plen);
		if (!prefix)
			return 0;
		struct parser_spec spec = { .name = "p", .type = "postgres", .log_line_prefix = prefix };
		struct parser *p = parser_new(&spec, NULL, 0, NULL);
		if (p) {
			struct parser_multiline ml;
			if (!parser_default_multiline(p, &ml) || !ml.continuation)
				abort();
			int ec;
			PCRE2_SIZE eo;
			pcre2_code *c = pcre2_compile((PCRE2_SPTR)ml.continuation, PCRE2_ZERO_TERMINATED,
						      0, &ec, &eo, NULL);
			if (!c)
				abort();
			pcre2_code_free(c);
			size_t off = nl ? (size_t)(nl - data) + 1 : size;
			char *rec = malloc(size - off ? size - off : 1);
			if (rec) {
				memcpy(rec, data + off, size - off);
				run(p, true, rec, size - off);
				free(rec);
			}
			parser_free(p);
		}
		free(prefix);
		return 0;
	}
	char *rec = malloc(size ? size : 1); /* exact size: ASan sees overreads */
	if (!rec)
		return 0;
	memcpy(rec, data, size);
	for (int i = 0; i < NP; i++)
		run(parsers[i], i < NP - 1, rec, size);
	free(rec);
	return 0;
}
