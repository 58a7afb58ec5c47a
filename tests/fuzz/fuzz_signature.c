/*
 * fuzz_signature.c — the derived field `signature` on one record of arbitrary
 * bytes, through every built-in and two regex parsers (one whose message is
 * the record, one without a message group: the whole record is signed).
 * Checks the cap (at most PARSER_SIGNATURE_MAX bytes), that blanks are
 * collapsed (no blank but single spaces, none at either end), that the same
 * record signs the same twice, and that the event's JSON has no raw control
 * bytes. The parsers live across inputs.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/kl.h"
#include "parsers/parsers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NP 8
static struct parser *parsers[NP];
static int sig[NP];
static struct kl_buf out;
static char first[PARSER_SIGNATURE_MAX];

static void check(const struct kl_str *s)
{
	if (s->len > PARSER_SIGNATURE_MAX)
		abort();
	if (s->len && (s->p[0] == ' ' || s->p[s->len - 1] == ' '))
		abort();
	for (size_t i = 0; i < s->len; i++) {
		char c = s->p[i];
		if (c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f')
			abort();
		if (c == ' ' && i && s->p[i - 1] == ' ')
			abort();
	}
}

static void run(struct parser *p, int idx, const char *rec, size_t len)
{
	struct parser_event ev;
	parser_event_init(&ev, p);
	if (parser_parse(p, rec, len, 1700000000000000, &ev) < 0)
		return;
	struct kl_str s = ev.raw[idx];
	if (!s.p)
		return;
	check(&s);
	memcpy(first, s.p, s.len);
	size_t n = s.len;
	kl_buf_reset(&out);
	if (parser_event_json(&ev, "sig", &out) < 0)
		abort();
	for (size_t i = 0; i < out.len; i++)
		if ((unsigned char)out.p[i] < 0x20)
			abort();
	/* deterministic */
	parser_event_init(&ev, p);
	if (parser_parse(p, rec, len, 1700000000000000, &ev) < 0)
		abort();
	if (ev.raw[idx].len != n || memcmp(ev.raw[idx].p, first, n) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!parsers[0]) {
		static const struct parser_spec specs[NP] = {
			{ .name = "m", .regex = "(?s)(?<message>.*)" },
			{ .name = "r", .regex = "(?s)^(?<level>[A-Z]*+)" },
			{ .name = "nginx_timed", .type = "nginx_timed" },
			{ .name = "gunicorn_access", .type = "gunicorn_access" },
			{ .name = "django", .type = "django" },
			{ .name = "postgres", .type = "postgres", .log_line_prefix = "%m [%p] %q%u@%d " },
			{ .name = "json", .type = "json" },
			{ .name = "postgres_json", .type = "postgres_json" },
		};
		for (int i = 0; i < NP; i++) {
			parsers[i] = parser_new(&specs[i], NULL, 0, NULL);
			if (!parsers[i])
				abort();
			sig[i] = parser_field_index(parsers[i], "signature", 9);
			if (sig[i] < 0)
				abort();
		}
	}
	/* an exact-size copy, so reading past the record is caught by ASan */
	char *rec = malloc(size ? size : 1);
	if (!rec)
		return 0;
	memcpy(rec, data, size);
	for (int i = 0; i < NP; i++)
		run(parsers[i], sig[i], rec, size);
	free(rec);
	return 0;
}
