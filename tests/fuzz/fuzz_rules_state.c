/*
 * fuzz_rules_state.c — rules_restore on any bytes, into a set loaded from a
 * fixed rule file (every aggregate kind, `by` and not, annotations), then
 * whatever got restored is announced, fed, evaluated and saved.
 *
 * The rules use every kind of saved state: windows (cells, sketches, hlls),
 * zscore and baseline histories, a new() seen table.
 *
 * The first byte picks the mode, the rest is the state:
 *   byte & 1 == 0   the rest as it is (mostly refused at the checksum);
 *   byte & 1 == 1   the rest with its correct crc32 appended (zlib crc32,
 *                   4 bytes little-endian, as rules_save writes it), so the
 *                   structure decoder behind the checksum is fuzzed too.
 *
 * Invariants (any violation abort()s): the result is 0, -EINVAL or -ENOMEM;
 * a refused state leaves the set fresh (it announces nothing and saves the
 * same bytes as a set just loaded); a restored one announces as many alerts
 * as the stats say are firing, and what it saves after evaluating restores
 * into another fresh set and saves again to the same bytes.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "common/kl.h"
#include "parsers/parsers.h"
#include "rules/rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char RULES[] =
	"rules:\n"
	"  - alert: Errs\n"
	"    source: app\n"
	"    expr: ratio(status >= 500) > 10% and count() >= 2\n"
	"    window: 1m\n"
	"    for: 10s\n"
	"    keep_firing_for: 5s\n"
	"    by: [path]\n"
	"    max_groups: 4\n"
	"    labels: {severity: page}\n"
	"    annotations:\n"
	"      summary: '{{ labels.path }} {{ value | pct }} {{ value }} {{ value | duration }}'\n"
	"      where: '{{ alert }} on {{ source }} over {{ window }}'\n"
	"  - alert: Slow\n"
	"    source: app\n"
	"    expr: p95(rt) > 1s or p50(rt, status >= 500) > 2s\n"
	"    window: 30s\n"
	"    annotations: {s: '{{ value | duration }}'}\n"
	"  - alert: Paths\n"
	"    source: app\n"
	"    expr: distinct(path) > 2 and max(bytes) > 0 and min(bytes) >= 0 and avg(rt) >= 0"
	" and sum(bytes) >= 0 and last(status) > 0 and rate() > 0\n"
	"    window: 5m\n"
	"    by: [method]\n"
	"    min_events: 2\n"
	"  - alert: Odd\n"
	"    source: app\n"
	"    expr: zscore(count(), 1h) > 3 or rate() > 10 * baseline(rate(), 1h)\n"
	"    window: 1m\n"
	"    by: [path]\n"
	"    max_groups: 3\n"
	"    annotations: {z: '{{ zscore }} {{ baseline }} {{ value }}'}\n"
	"  - alert: Fresh\n"
	"    source: app\n"
	"    expr: new(path, 2h) > 0\n"
	"    window: 1m\n"
	"    by: [method]\n"
	"  - alert: Quiet\n"
	"    source: app\n"
	"    expr: count() == 0\n"
	"    window: 10s\n";

#define BASE_US (1700000000LL * 1000000) /* 2023-11-14T22:13:20Z */

static const char *const LINES[] = {
	"2023-11-14T22:13:20.000Z 503 0.412 /api GET 1200",
	"2023-11-14T22:13:21.500Z 200 - /health",
	"2023-11-14T22:13:25.000Z 500 2.5 /login POST 20000000",
	"2023-11-14T22:13:59.999Z 200 0.1 /api GET 0",
	"2023-11-14T22:14:30.000Z 502 3.0 /api GET 12",
};

static struct parser *parser;
static struct rules_source source;
static char path[256];
static struct kl_buf fresh; /* what a set just loaded saves */

static void cleanup(void)
{
	unlink(path);
	kl_buf_free(&fresh);
	parser_free(parser);
}

static struct rules_set *load(void)
{
	const char *files[] = { path };
	struct kl_diag d = { stderr, 0 };
	struct rules_set *rs = rules_load(files, 1, &source, 1, &d);
	if (!rs)
		abort();
	return rs;
}

static void setup(void)
{
	static const struct parser_field_spec types[] = {
		{ "status", PARSER_T_INT },
		{ "rt", PARSER_T_SECONDS },
		{ "bytes", PARSER_T_INT },
	};
	struct parser_spec spec = {
		.name = "app",
		.regex = "^(?<time>\\S+) (?<status>\\S+) (?<rt>\\S+) (?<path>\\S+)"
			 "(?: (?<method>\\S+))?(?: (?<bytes>\\S+))?$",
		.types = types,
		.ntypes = KL_ARRAY_LEN(types),
		.time_field = "time",
		.time_format = "iso8601",
	};
	char err[256];
	int eo;
	kl_log_set_quiet(true);
	parser = parser_new(&spec, err, sizeof err, &eo);
	if (!parser) {
		fprintf(stderr, "fuzz_rules_state: setup: %s\n", err);
		abort();
	}
	source = (struct rules_source){ "app", parser };
	const char *tmp = getenv("TMPDIR");
	snprintf(path, sizeof path, "%s/klaxon-fuzz-rules-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	int fd = mkstemp(path);
	if (fd < 0 || write(fd, RULES, sizeof RULES - 1) != (ssize_t)(sizeof RULES - 1) ||
	    close(fd) < 0)
		abort();
	atexit(cleanup);
	struct rules_set *rs = load();
	if (rules_save(rs, &fresh) < 0)
		abort();
	rules_free(rs);
}

static volatile size_t sink;

static void count_cb(void *ctx, const struct rules_transition *t)
{
	size_t *n = ctx;
	/* read what a sink would */
	size_t sum = strlen(t->alert);
	for (size_t i = 0; i < t->nlabels; i++)
		sum += strlen(t->labels[i].key) + strlen(t->labels[i].value);
	for (size_t i = 0; i < t->nannotations; i++)
		sum += strlen(t->annotations[i].key) + strlen(t->annotations[i].value);
	sink += sum;
	if (t->restored && t->status != RULES_FIRING)
		abort(); /* only firing alerts are announced */
	(*n)++;
}

static void feed_lines(struct rules_set *rs)
{
	for (size_t i = 0; i < KL_ARRAY_LEN(LINES); i++) {
		struct parser_event ev;
		parser_event_init(&ev, parser);
		if (parser_parse(parser, LINES[i], strlen(LINES[i]), 0, &ev) < 0)
			abort();
		rules_feed(rs, 0, &ev);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!parser)
		setup();
	struct kl_buf in = { 0 }, out = { 0 }, again = { 0 };
	if (size > 0) {
		if (kl_buf_append(&in, data + 1, size - 1) < 0)
			return 0;
		if (data[0] & 1) {
			uLong c = crc32(0L, (const Bytef *)data + 1, (uInt)(size - 1));
			unsigned char le[4] = { (unsigned char)c, (unsigned char)(c >> 8),
						(unsigned char)(c >> 16), (unsigned char)(c >> 24) };
			if (kl_buf_append(&in, le, 4) < 0)
				return 0;
		}
	}
	struct rules_set *rs = load();
	struct rules_restore_stats st;
	/* an exact-size copy, so a read past the end shows under ASan */
	char *copy = malloc(in.len ? in.len : 1);
	if (!copy)
		abort();
	if (in.len)
		memcpy(copy, in.p, in.len);
	int rc = rules_restore(rs, copy, in.len, &st);
	free(copy);
	if (rc != 0 && rc != -EINVAL && rc != -ENOMEM)
		abort();

	size_t announced = 0;
	rules_announce(rs, BASE_US, count_cb, &announced);
	if (rc == -EINVAL) {
		if (announced || st.restored || st.firing || st.pending)
			abort();
		if (rules_save(rs, &out) < 0)
			abort();
		if (out.len != fresh.len || memcmp(out.p, fresh.p, out.len) != 0)
			abort(); /* not fresh after a refusal */
		goto done;
	}
	if (rc < 0)
		goto done;
	if (announced != st.firing || (st.restored == 0 && st.firing))
		abort();

	/* what was restored, evaluated on the clock (first as the daemon does,
	 * on its tick) and against new events */
	size_t n = 0;
	rules_eval(rs, BASE_US, count_cb, &n);
	rules_eval_all(rs, BASE_US, count_cb, &n);
	feed_lines(rs);
	rules_eval(rs, BASE_US + 30 * 1000000LL, count_cb, &n);
	rules_eval_all(rs, BASE_US + 61 * 1000000LL, count_cb, &n);
	rules_eval(rs, BASE_US + 3600 * 1000000LL, count_cb, &n);
	rules_announce(rs, BASE_US + 3600 * 1000000LL, count_cb, &n);
	if (rules_save(rs, &out) < 0)
		goto done;

	/* what it saves restores, and saves again the same */
	struct rules_set *rs2 = load();
	rc = rules_restore(rs2, out.p, out.len, &st);
	if (rc == 0 && rules_save(rs2, &again) == 0 &&
	    (again.len != out.len || memcmp(again.p, out.p, out.len) != 0))
		abort();
	if (rc != 0 && rc != -ENOMEM)
		abort();
	rules_free(rs2);
done:
	rules_free(rs);
	kl_buf_free(&in);
	kl_buf_free(&out);
	kl_buf_free(&again);
	return 0;
}
