/*
 * fuzz_timefmt.c — event-time formats. The input is a format on its first line
 * ("iso" for ISO 8601), then time texts, one per line. A parser that has seen
 * the earlier texts (its one-entry cache warm) must give the same answer as a
 * fresh one for every text: the cache may only make it faster.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parsers/parsers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_FORMAT 128
#define MAX_TEXTS 8

static struct parser *make(const char *fmt)
{
	struct parser_spec spec = {
		.name = "t",
		.regex = "(?s)\\A(?<t>.*)\\z",
		.time_field = "t",
		.time_format = fmt,
	};
	return parser_new(&spec, NULL, 0, NULL);
}

static int parse(struct parser *p, const char *s, size_t len, int64_t *us)
{
	struct parser_event ev;
	parser_event_init(&ev, p);
	int rc = parser_parse(p, s, len, 0, &ev);
	*us = rc == 0 ? ev.time_us : 0;
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *d = (const char *)data;
	const char *nl = memchr(d, '\n', size);
	size_t flen = nl ? (size_t)(nl - d) : size;
	char fmt[MAX_FORMAT + 1];

	if (flen > MAX_FORMAT)
		return 0;
	memcpy(fmt, d, flen);
	fmt[flen] = '\0';
	bool iso = strcmp(fmt, "iso") == 0;

	struct parser *warm = make(iso ? NULL : fmt);
	if (!warm)
		return 0;
	const char *rec = nl ? nl + 1 : d + size, *end = d + size;
	for (int n = 0; n < MAX_TEXTS && rec <= end; n++) {
		const char *e = memchr(rec, '\n', (size_t)(end - rec));
		size_t len = e ? (size_t)(e - rec) : (size_t)(end - rec);
		char *copy = malloc(len ? len : 1);
		if (!copy)
			break;
		memcpy(copy, rec, len);
		struct parser *cold = make(iso ? NULL : fmt);
		if (!cold)
			abort();
		int64_t a, b;
		int ra = parse(warm, copy, len, &a);
		int rb = parse(cold, copy, len, &b);
		if (ra != rb || a != b)
			abort();
		/* and again, now certainly from the cache */
		int rc = parse(warm, copy, len, &b);
		if (rc != ra || a != b)
			abort();
		parser_free(cold);
		free(copy);
		if (!e)
			break;
		rec = e + 1;
	}
	parser_free(warm);
	return 0;
}
