/*
 * test_format.c — unit tests for sinks/format.c: the five payload formats,
 * checked field by field after parsing with jansson; Alertmanager's
 * fingerprint against prometheus/common's own test vectors and an independent
 * implementation; the chat services' limits (Discord's are hard), cut at
 * UTF-8 boundaries; hostile bytes; empty annotations; 50 alerts; failing
 * allocations.
 */
#include <errno.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "sinks/sinks_int.h"

/* ------------------------------------------------------------------------- */
/* Failing allocations: kl_buf grows with realloc. Without ASan (which owns
 * the allocator), realloc is ours and fails when the countdown reaches 0. */

#if !defined(__SANITIZE_ADDRESS__)
#define FAULTS 1
extern void *__libc_realloc(void *p, size_t n);
static long fail_countdown = -1; /* < 0: never fail */

void *realloc(void *p, size_t n)
{
	if (fail_countdown == 0)
		return NULL;
	if (fail_countdown > 0)
		fail_countdown--;
	return __libc_realloc(p, n);
}
#endif

/* ------------------------------------------------------------------------- */
/* Fixtures */

#define T0 INT64_C(1700000000123456)	   /* 2023-11-14T22:13:20.123456Z */
#define T1 INT64_C(1700000000000000)	   /* 2023-11-14T22:13:20Z */
#define T2 INT64_C(1700000300500000)	   /* 2023-11-14T22:18:20.5Z */

#define RED 0xD63232
#define GREEN 0x2EB67D

struct fx {
	struct notif_label la[4], lb[4], aa[3], ab[2], gl[1], cl[3], ca[1];
	struct notif_alert alerts[2];
	struct notification n;
};

/* Two alerts of one group: /api firing, /login resolved. */
static void fx_init(struct fx *f)
{
	memset(f, 0, sizeof *f);
	f->la[0] = (struct notif_label){ "alertname", "HighErrorRate" };
	f->la[1] = (struct notif_label){ "path", "/api" };
	f->la[2] = (struct notif_label){ "severity", "page" };
	f->la[3] = (struct notif_label){ "source", "nginx" };
	f->lb[0] = (struct notif_label){ "alertname", "HighErrorRate" };
	f->lb[1] = (struct notif_label){ "path", "/login" };
	f->lb[2] = (struct notif_label){ "severity", "page" };
	f->lb[3] = (struct notif_label){ "source", "nginx" };
	f->aa[0] = (struct notif_label){ "runbook", "https://runbooks.example/5xx" };
	f->aa[1] = (struct notif_label){ "summary", "5xx ratio 41.2% on /api" };
	f->aa[2] = (struct notif_label){ "value", "0.412" };
	f->ab[0] = (struct notif_label){ "summary", "5xx ratio 0.3% on /login" };
	f->ab[1] = (struct notif_label){ "value", "0.003" };
	f->gl[0] = (struct notif_label){ "alertname", "HighErrorRate" };
	f->cl[0] = (struct notif_label){ "alertname", "HighErrorRate" };
	f->cl[1] = (struct notif_label){ "severity", "page" };
	f->cl[2] = (struct notif_label){ "source", "nginx" };
	f->ca[0] = (struct notif_label){ "team", "web" };

	struct notif_alert *a = &f->alerts[0], *b = &f->alerts[1];
	*a = (struct notif_alert){ .firing = true, .labels = f->la, .nlabels = 4,
				   .annotations = f->aa, .nannotations = 3,
				   .starts_us = T0, .ends_us = 0, .value = 0.412 };
	*b = (struct notif_alert){ .firing = false, .labels = f->lb, .nlabels = 4,
				   .annotations = f->ab, .nannotations = 2,
				   .starts_us = T1, .ends_us = T2, .value = 0.003 };
	format_fingerprint(a->labels, a->nlabels, a->fingerprint);
	format_fingerprint(b->labels, b->nlabels, b->fingerprint);

	f->n = (struct notification){
		.receiver = "web-team",
		.group_key = "{}/{source=\"nginx\"}:{alertname=\"HighErrorRate\"}",
		.firing = true,
		.group_labels = f->gl, .ngroup_labels = 1,
		.common_labels = f->cl, .ncommon_labels = 3,
		.common_annotations = f->ca, .ncommon_annotations = 0,
		.external_url = "https://klaxon.example:9100",
		.alerts = f->alerts, .nalerts = 2,
	};
}

#define HEADLINE "[FIRING:1] HighErrorRate (page, nginx)"

/* ------------------------------------------------------------------------- */
/* Helpers */

/* Format, check the buffer, parse strictly (duplicate keys rejected). */
static json_t *load(enum sink_format f, const struct notification *n, size_t *len)
{
	struct kl_buf b = { 0 };
	json_error_t err;

	assert_int_equal(format_payload(f, n, &b), 0);
	assert_non_null(b.p);
	assert_int_equal(strlen(b.p), b.len); /* no NUL inside */
	json_t *root = json_loadb(b.p, b.len, JSON_REJECT_DUPLICATES, &err);
	if (!root)
		fail_msg("format %d: invalid JSON at %d:%d: %s\n%.*s", (int)f, err.line,
			 err.column, err.text, (int)(b.len < 2000 ? b.len : 2000), b.p);
	if (len)
		*len = b.len;
	kl_buf_free(&b);
	return root;
}

static json_t *get(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	if (!v)
		fail_msg("missing key \"%s\"", key);
	return v;
}

static const char *str(json_t *o, const char *key)
{
	json_t *v = get(o, key);
	if (!json_is_string(v))
		fail_msg("\"%s\" is not a string", key);
	return json_string_value(v);
}

static json_t *arr(json_t *o, const char *key, size_t n)
{
	json_t *v = get(o, key);
	assert_true(json_is_array(v));
	assert_int_equal(json_array_size(v), n);
	return v;
}

static json_t *obj(json_t *o, const char *key, size_t n)
{
	json_t *v = get(o, key);
	assert_true(json_is_object(v));
	assert_int_equal(json_object_size(v), n);
	return v;
}

static void assert_rfc3339(const char *s)
{
	regex_t re;
	assert_int_equal(regcomp(&re,
				 "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
				 "(\\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$",
				 REG_EXTENDED | REG_NOSUB),
			 0);
	int rc = regexec(&re, s, 0, NULL, 0);
	regfree(&re);
	if (rc != 0)
		fail_msg("not RFC 3339: \"%s\"", s);
}

/* UTF-16 code units of valid UTF-8 (jansson only returns valid UTF-8). */
static size_t u16len(const char *s)
{
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p & 0xc0) != 0x80)
			n += *p >= 0xf0 ? 2 : 1;
	}
	return n;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

#define ELL "\xe2\x80\xa6"

/* An independent Alertmanager fingerprint: sort a copy, lay out the bytes
 * name 0xff value 0xff ... in one buffer, then FNV-1a 64 over it. */
static int cmp_label(const void *a, const void *b)
{
	return strcmp(((const struct notif_label *)a)->key, ((const struct notif_label *)b)->key);
}

static uint64_t ref_fingerprint(const struct notif_label *l, size_t n)
{
	struct notif_label *c = calloc(n + 1, sizeof *c);
	size_t total = 0, off = 0;
	memcpy(c, l, n * sizeof *c);
	qsort(c, n, sizeof *c, cmp_label);
	for (size_t i = 0; i < n; i++)
		total += strlen(c[i].key) + strlen(c[i].value) + 2;
	unsigned char *bytes = malloc(total + 1);
	for (size_t i = 0; i < n; i++) {
		size_t k = strlen(c[i].key), v = strlen(c[i].value);
		memcpy(bytes + off, c[i].key, k);
		off += k;
		bytes[off++] = 0xff;
		memcpy(bytes + off, c[i].value, v);
		off += v;
		bytes[off++] = 0xff;
	}
	uint64_t h = 0xcbf29ce484222325u;
	for (size_t i = 0; i < off; i++) {
		h ^= bytes[i];
		h *= 0x100000001b3u;
	}
	free(bytes);
	free(c);
	return h;
}

static void ref_hex(const struct notif_label *l, size_t n, char out[17])
{
	snprintf(out, 17, "%016llx", (unsigned long long)ref_fingerprint(l, n));
}

/* ------------------------------------------------------------------------- */
/* Fingerprint */

static uint64_t fp_u64(const struct notif_label *l, size_t n)
{
	char hex[17];
	format_fingerprint(l, n, hex);
	assert_int_equal(strlen(hex), 16);
	for (size_t i = 0; i < 16; i++)
		assert_true((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f'));
	return strtoull(hex, NULL, 16);
}

static void test_fingerprint_vectors(void **state)
{
	(void)state;
	/* prometheus/common model/signature_test.go */
	assert_int_equal(fp_u64(NULL, 0), UINT64_C(14695981039346656037));
	struct notif_label fear[] = { { "fear", "love is not enough" },
				      { "name", "garland, briggs" } };
	assert_int_equal(fp_u64(fear, 2), UINT64_C(5799056148416392346));
	struct notif_label three[] = { { "first-label", "first-label-value" },
				       { "second-label", "second-label-value" },
				       { "third-label", "third-label-value" } };
	assert_int_equal(fp_u64(three, 1), UINT64_C(5146282821936882169));
	assert_int_equal(fp_u64(three, 2), UINT64_C(3195800080984914717));
	assert_int_equal(fp_u64(three, 3), UINT64_C(13843036195897128121));

	char hex[17];
	format_fingerprint(NULL, 0, hex);
	assert_string_equal(hex, "cbf29ce484222325"); /* 16 digits, lower case */

	/* unsorted input: the same as sorted (Go sorts the names) */
	struct notif_label rev[] = { three[2], three[0], three[1] };
	assert_int_equal(fp_u64(rev, 3), UINT64_C(13843036195897128121));
}

static void test_fingerprint_independent(void **state)
{
	(void)state;
	struct fx f;
	char want[17], got[17];
	fx_init(&f);
	ref_hex(f.la, 4, want);
	format_fingerprint(f.la, 4, got);
	assert_string_equal(got, want);

	/* bytes >= 0x80 are hashed as bytes (Go strings are bytes) */
	struct notif_label odd[] = { { "a", "\xff\xfe" }, { "b", "caf\xc3\xa9" }, { "z", "" } };
	ref_hex(odd, 3, want);
	format_fingerprint(odd, 3, got);
	assert_string_equal(got, want);

	/* the separator matters: {a="bc"} and {ab="c"} differ */
	struct notif_label x[] = { { "a", "bc" } }, y[] = { { "ab", "c" } };
	assert_true(fp_u64(x, 1) != fp_u64(y, 1));
}

/* ------------------------------------------------------------------------- */
/* webhook */

static void check_webhook_alert(json_t *a, const struct notif_alert *want, const char *status)
{
	char fp[17], t[KL_RFC3339_MAX];

	assert_int_equal(json_object_size(a), 7);
	assert_string_equal(str(a, "status"), status);
	json_t *labels = obj(a, "labels", want->nlabels);
	for (size_t i = 0; i < want->nlabels; i++)
		assert_string_equal(str(labels, want->labels[i].key), want->labels[i].value);
	json_t *ann = obj(a, "annotations", want->nannotations);
	for (size_t i = 0; i < want->nannotations; i++)
		assert_string_equal(str(ann, want->annotations[i].key), want->annotations[i].value);
	assert_rfc3339(str(a, "startsAt"));
	assert_rfc3339(str(a, "endsAt"));
	kl_format_rfc3339(want->starts_us, true, t);
	assert_string_equal(str(a, "startsAt"), t);
	if (want->firing) {
		assert_string_equal(str(a, "endsAt"), "0001-01-01T00:00:00Z");
	} else {
		kl_format_rfc3339(want->ends_us, true, t);
		assert_string_equal(str(a, "endsAt"), t);
	}
	assert_string_equal(str(a, "generatorURL"), "https://klaxon.example:9100");
	ref_hex(want->labels, want->nlabels, fp);
	assert_string_equal(str(a, "fingerprint"), fp);
}

static void test_webhook(void **state)
{
	(void)state;
	struct fx f;
	fx_init(&f);
	f.n.ncommon_annotations = 1;
	json_t *r = load(FORMAT_WEBHOOK, &f.n, NULL);

	assert_int_equal(json_object_size(r), 10);
	assert_string_equal(str(r, "version"), "4");
	assert_string_equal(str(r, "status"), "firing");
	assert_string_equal(str(r, "receiver"), "web-team");
	assert_string_equal(str(r, "groupKey"), f.n.group_key);
	assert_string_equal(str(r, "externalURL"), "https://klaxon.example:9100");
	assert_true(json_is_integer(get(r, "truncatedAlerts")));
	assert_int_equal(json_integer_value(get(r, "truncatedAlerts")), 0);
	json_t *gl = obj(r, "groupLabels", 1);
	assert_string_equal(str(gl, "alertname"), "HighErrorRate");
	json_t *cl = obj(r, "commonLabels", 3);
	assert_string_equal(str(cl, "alertname"), "HighErrorRate");
	assert_string_equal(str(cl, "severity"), "page");
	assert_string_equal(str(cl, "source"), "nginx");
	json_t *ca = obj(r, "commonAnnotations", 1);
	assert_string_equal(str(ca, "team"), "web");

	json_t *alerts = arr(r, "alerts", 2);
	check_webhook_alert(json_array_get(alerts, 0), &f.alerts[0], "firing");
	check_webhook_alert(json_array_get(alerts, 1), &f.alerts[1], "resolved");
	assert_string_equal(str(json_object_get(json_array_get(alerts, 0), "labels"), "alertname"),
			    "HighErrorRate");
	/* exact times: millisecond precision, like Go's RFC3339Nano trimmed */
	assert_string_equal(str(json_array_get(alerts, 0), "startsAt"), "2023-11-14T22:13:20.123Z");
	assert_string_equal(str(json_array_get(alerts, 1), "endsAt"), "2023-11-14T22:18:20.500Z");
	json_decref(r);

	/* all resolved; no fingerprint from policy: computed here, the same */
	f.n.firing = false;
	f.alerts[0].firing = false;
	f.alerts[0].ends_us = T2;
	f.alerts[0].fingerprint[0] = '\0';
	r = load(FORMAT_WEBHOOK, &f.n, NULL);
	assert_string_equal(str(r, "status"), "resolved");
	alerts = arr(r, "alerts", 2);
	check_webhook_alert(json_array_get(alerts, 0), &f.alerts[0], "resolved");
	json_decref(r);
}

/* ------------------------------------------------------------------------- */
/* alertmanager */

static void test_alertmanager(void **state)
{
	(void)state;
	struct fx f;
	char t[KL_RFC3339_MAX];
	fx_init(&f);
	json_t *r = load(FORMAT_ALERTMANAGER, &f.n, NULL);

	assert_true(json_is_array(r));
	assert_int_equal(json_array_size(r), 2);
	json_t *a = json_array_get(r, 0), *b = json_array_get(r, 1);

	/* firing: no endsAt (Alertmanager applies resolve_timeout) */
	assert_int_equal(json_object_size(a), 4);
	assert_string_equal(str(obj(a, "labels", 4), "alertname"), "HighErrorRate");
	assert_string_equal(str(obj(a, "labels", 4), "path"), "/api");
	assert_string_equal(str(obj(a, "annotations", 3), "summary"), "5xx ratio 41.2% on /api");
	kl_format_rfc3339(T0, true, t);
	assert_string_equal(str(a, "startsAt"), t);
	assert_null(json_object_get(a, "endsAt"));
	assert_string_equal(str(a, "generatorURL"), "https://klaxon.example:9100");
	assert_null(json_object_get(a, "status"));
	assert_null(json_object_get(a, "fingerprint"));

	/* resolved: endsAt in the past makes it resolved in Alertmanager */
	assert_int_equal(json_object_size(b), 5);
	assert_string_equal(str(obj(b, "labels", 4), "path"), "/login");
	assert_rfc3339(str(b, "endsAt"));
	kl_format_rfc3339(T2, true, t);
	assert_string_equal(str(b, "endsAt"), t);
	json_decref(r);

	/* no external URL: no generatorURL ("" is not a uri) */
	f.n.external_url = "";
	r = load(FORMAT_ALERTMANAGER, &f.n, NULL);
	assert_null(json_object_get(json_array_get(r, 0), "generatorURL"));
	json_decref(r);
}

/* ------------------------------------------------------------------------- */
/* slack */

static void check_field(json_t *fl, const char *nk, const char *name, const char *vk,
			const char *value)
{
	assert_string_equal(str(fl, nk), name);
	assert_string_equal(str(fl, vk), value);
}

static void test_slack(void **state)
{
	(void)state;
	struct fx f;
	fx_init(&f);
	json_t *r = load(FORMAT_SLACK, &f.n, NULL);

	assert_int_equal(json_object_size(r), 2);
	assert_string_equal(str(r, "text"), HEADLINE);
	json_t *atts = arr(r, "attachments", 2);
	json_t *a = json_array_get(atts, 0), *b = json_array_get(atts, 1);

	assert_string_equal(str(a, "color"), "#D63232");
	assert_string_equal(str(a, "title"), "[FIRING] HighErrorRate (path=/api)");
	assert_string_equal(str(a, "fallback"), "[FIRING] HighErrorRate (path=/api)");
	assert_string_equal(str(a, "text"),
			    "5xx ratio 41.2% on /api\nRunbook: https://runbooks.example/5xx");
	json_t *fields = arr(a, "fields", 4); /* value, path, severity, source */
	check_field(json_array_get(fields, 0), "title", "value", "value", "0.412");
	check_field(json_array_get(fields, 1), "title", "path", "value", "/api");
	check_field(json_array_get(fields, 3), "title", "source", "value", "nginx");
	assert_true(json_is_true(get(json_array_get(fields, 0), "short")));

	assert_string_equal(str(b, "color"), "#2EB67D");
	assert_string_equal(str(b, "title"), "[RESOLVED] HighErrorRate (path=/login)");
	assert_string_equal(str(b, "text"), "5xx ratio 0.3% on /login");
	check_field(json_array_get(arr(b, "fields", 4), 0), "title", "value", "value", "0.003");
	json_decref(r);

	/* Slack's control characters from logs become entities: no <!channel> */
	f.aa[1].value = "<!channel> & <http://evil|click>";
	f.la[1].value = "/a<b>&";
	r = load(FORMAT_SLACK, &f.n, NULL);
	a = json_array_get(get(r, "attachments"), 0);
	assert_string_equal(str(a, "text"), "&lt;!channel&gt; &amp; &lt;http://evil|click&gt;\n"
					    "Runbook: https://runbooks.example/5xx");
	assert_string_equal(str(json_array_get(get(a, "fields"), 1), "value"), "/a&lt;b&gt;&amp;");
	assert_string_equal(str(a, "title"), "[FIRING] HighErrorRate (path=/a&lt;b&gt;&amp;)");
	json_decref(r);
}

/* ------------------------------------------------------------------------- */
/* discord */

/* Discord's documented limits, all of them, counted in UTF-16 code units. */
static void check_discord(json_t *r)
{
	size_t total = 0;

	assert_true(u16len(str(r, "content")) <= 2000);
	json_t *am = obj(r, "allowed_mentions", 1);
	assert_int_equal(json_array_size(arr(am, "parse", 0)), 0);
	json_t *embeds = get(r, "embeds");
	assert_true(json_is_array(embeds));
	assert_true(json_array_size(embeds) <= 10);
	for (size_t i = 0; i < json_array_size(embeds); i++) {
		json_t *e = json_array_get(embeds, i);
		size_t t = u16len(str(e, "title"));
		assert_true(t >= 1 && t <= 256);
		total += t;
		if (json_object_get(e, "description")) {
			size_t d = u16len(str(e, "description"));
			assert_true(d >= 1 && d <= 4096);
			total += d;
		}
		assert_true(json_is_integer(get(e, "color")));
		json_t *fields = get(e, "fields");
		assert_true(json_array_size(fields) <= 25);
		for (size_t j = 0; j < json_array_size(fields); j++) {
			json_t *fl = json_array_get(fields, j);
			size_t nm = u16len(str(fl, "name")), v = u16len(str(fl, "value"));
			assert_true(nm >= 1 && nm <= 256);
			assert_true(v >= 1 && v <= 1024);
			total += nm + v;
		}
	}
	if (total > 6000)
		fail_msg("embeds hold %zu characters, Discord allows 6000", total);
}

static void test_discord(void **state)
{
	(void)state;
	struct fx f;
	fx_init(&f);
	json_t *r = load(FORMAT_DISCORD, &f.n, NULL);

	check_discord(r);
	assert_string_equal(str(r, "content"), HEADLINE);
	json_t *embeds = arr(r, "embeds", 2);
	json_t *a = json_array_get(embeds, 0), *b = json_array_get(embeds, 1);
	assert_string_equal(str(a, "title"), "[FIRING] HighErrorRate (path=/api)");
	assert_string_equal(str(a, "description"),
			    "5xx ratio 41.2% on /api\nRunbook: https://runbooks.example/5xx");
	assert_int_equal(json_integer_value(get(a, "color")), RED);
	json_t *fields = arr(a, "fields", 4);
	check_field(json_array_get(fields, 0), "name", "value", "value", "0.412");
	check_field(json_array_get(fields, 2), "name", "severity", "value", "page");
	assert_true(json_is_true(get(json_array_get(fields, 0), "inline")));
	assert_int_equal(json_integer_value(get(b, "color")), GREEN);
	assert_string_equal(str(b, "title"), "[RESOLVED] HighErrorRate (path=/login)");
	json_decref(r);
}

/* A 5000-character summary of 1-, 2-, 3- and 4-byte characters (the last
 * two UTF-16 units): cut at a character boundary, marked with "…". */
static void test_discord_long_summary(void **state)
{
	(void)state;
	static const char unit[] = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"; /* a é € 😀 */
	char *big = malloc(1250 * (sizeof unit - 1) + 1), *lbl = malloc(3001);
	struct fx f;
	for (size_t i = 0; i < 1250; i++)
		memcpy(big + i * (sizeof unit - 1), unit, sizeof unit - 1);
	big[1250 * (sizeof unit - 1)] = '\0';
	memset(lbl, 'x', 3000);
	lbl[3000] = '\0';

	for (size_t nalerts = 1; nalerts <= 2; nalerts++) {
		fx_init(&f);
		f.aa[1].value = big;
		f.aa[0].value = ""; /* no runbook: the text is the summary alone */
		f.la[1].value = lbl;
		f.n.nalerts = nalerts;
		json_t *r = load(FORMAT_DISCORD, &f.n, NULL);
		check_discord(r);
		json_t *e = json_array_get(get(r, "embeds"), 0);
		const char *d = str(e, "description");
		size_t dl = strlen(d);
		assert_true(ends_with(d, ELL));
		/* what is kept is a prefix of the summary, whole characters */
		assert_true(dl - 3 < strlen(big));
		assert_memory_equal(d, big, dl - 3);
		assert_true((dl - 3) % (sizeof unit - 1) == 0 ||
			    (dl - 3) % (sizeof unit - 1) == 1 ||
			    (dl - 3) % (sizeof unit - 1) == 3 ||
			    (dl - 3) % (sizeof unit - 1) == 6);
		if (nalerts == 1) /* alone, it gets nearly all of the 4096 */
			assert_true(u16len(d) >= 4094);
		/* the long label: its field is cut to 1024 */
		json_t *path = json_array_get(get(e, "fields"), 1);
		assert_string_equal(str(path, "name"), "path");
		assert_true(ends_with(str(path, "value"), ELL));
		assert_true(u16len(str(path, "value")) <= 1024);
		json_decref(r);
	}
	free(big);
	free(lbl);
}

/* ------------------------------------------------------------------------- */
/* teams */

static void test_teams(void **state)
{
	(void)state;
	struct fx f;
	fx_init(&f);
	json_t *r = load(FORMAT_TEAMS, &f.n, NULL);

	assert_string_equal(str(r, "@type"), "MessageCard");
	assert_string_equal(str(r, "@context"), "https://schema.org/extensions");
	assert_string_equal(str(r, "themeColor"), "D63232");
	assert_string_equal(str(r, "summary"), HEADLINE);
	assert_string_equal(str(r, "title"), HEADLINE);
	json_t *sections = arr(r, "sections", 2);
	json_t *a = json_array_get(sections, 0), *b = json_array_get(sections, 1);
	assert_string_equal(str(a, "activityTitle"), "[FIRING] HighErrorRate (path=/api)");
	assert_string_equal(str(a, "text"),
			    "5xx ratio 41.2% on /api\n\nRunbook: https://runbooks.example/5xx");
	json_t *facts = arr(a, "facts", 4);
	check_field(json_array_get(facts, 0), "name", "value", "value", "0.412");
	check_field(json_array_get(facts, 1), "name", "path", "value", "/api");
	assert_string_equal(str(b, "activityTitle"), "[RESOLVED] HighErrorRate (path=/login)");
	json_decref(r);

	/* all resolved: green, [RESOLVED] */
	f.n.firing = false;
	f.alerts[0].firing = false;
	f.alerts[0].ends_us = T2;
	r = load(FORMAT_TEAMS, &f.n, NULL);
	assert_string_equal(str(r, "themeColor"), "2EB67D");
	assert_string_equal(str(r, "summary"), "[RESOLVED] HighErrorRate (page, nginx)");
	json_decref(r);
}

/* ------------------------------------------------------------------------- */
/* Hostile content, empty annotations, many alerts */

static const enum sink_format ALL[] = {
	FORMAT_WEBHOOK, FORMAT_ALERTMANAGER, FORMAT_SLACK, FORMAT_DISCORD, FORMAT_TEAMS,
};

/* Every byte but NUL (which ends a C string: it cannot reach us) in a label
 * value, an annotation's key and value, the summary, the runbook, the value,
 * the receiver and the group key. */
static void test_hostile(void **state)
{
	(void)state;
	char bytes[256], twice[511];
	struct fx f;
	struct notif_label ann[4];

	for (int i = 1; i < 256; i++)
		bytes[i - 1] = (char)i;
	bytes[255] = '\0';
	memcpy(twice, bytes, 255);
	memcpy(twice + 255, bytes, 256);

	fx_init(&f);
	f.la[1].value = bytes;
	f.cl[2].value = twice;
	f.lb[3].value = twice;
	ann[0] = (struct notif_label){ bytes, "x" };
	ann[1] = (struct notif_label){ "runbook", twice };
	ann[2] = (struct notif_label){ "summary", bytes };
	ann[3] = (struct notif_label){ "value", bytes };
	f.alerts[0].annotations = ann;
	f.alerts[0].nannotations = 4;
	f.alerts[0].fingerprint[0] = '\0';
	f.n.receiver = bytes;
	f.n.group_key = twice;

	for (size_t i = 0; i < sizeof ALL / sizeof ALL[0]; i++) {
		json_t *r = load(ALL[i], &f.n, NULL);
		if (ALL[i] == FORMAT_DISCORD)
			check_discord(r);
		json_decref(r);
	}

	/* ASCII survives exactly; the rest is U+FFFD where it is not UTF-8 */
	json_t *r = load(FORMAT_WEBHOOK, &f.n, NULL);
	const char *v = str(get(json_array_get(get(r, "alerts"), 0), "labels"), "path");
	assert_memory_equal(v, bytes, 127);
	assert_int_equal(strlen(v + 127), 128 * 3); /* 0x80..0xff: none starts a sequence */
	for (const char *p = v + 127; *p; p += 3)
		assert_memory_equal(p, "\xef\xbf\xbd", 3);
	json_decref(r);

	/* nothing Slack would parse: no raw '<' survives in the texts */
	r = load(FORMAT_SLACK, &f.n, NULL);
	json_t *a = json_array_get(get(r, "attachments"), 0);
	assert_null(strchr(str(a, "text"), '<'));
	assert_null(strchr(str(r, "text"), '<'));
	json_decref(r);
}

/* Cuts land between escapes: 20000 '&' (entities) and control bytes
 * (\u00XX escapes) in every chat format. */
static void test_cut_escapes(void **state)
{
	(void)state;
	char *amp = malloc(20001), *ctl = malloc(20001);
	struct fx f;
	memset(amp, '&', 20000);
	amp[20000] = '\0';
	memset(ctl, '\x01', 20000);
	ctl[20000] = '\0';

	fx_init(&f);
	f.aa[0].value = "";
	f.aa[1].value = amp;
	f.n.nalerts = 1;
	json_t *r = load(FORMAT_SLACK, &f.n, NULL);
	const char *t = str(json_array_get(get(r, "attachments"), 0), "text");
	size_t n = strlen(t);
	assert_true(ends_with(t, ELL));
	assert_int_equal((n - 3) % 5, 0);
	for (size_t i = 0; i + 3 < n; i += 5)
		assert_memory_equal(t + i, "&amp;", 5);
	json_decref(r);

	f.aa[1].value = ctl;
	for (size_t i = 0; i < sizeof ALL / sizeof ALL[0]; i++) {
		r = load(ALL[i], &f.n, NULL);
		const char *s = NULL;
		if (ALL[i] == FORMAT_SLACK)
			s = str(json_array_get(get(r, "attachments"), 0), "text");
		else if (ALL[i] == FORMAT_DISCORD)
			s = str(json_array_get(get(r, "embeds"), 0), "description");
		else if (ALL[i] == FORMAT_TEAMS)
			s = str(json_array_get(get(r, "sections"), 0), "text");
		if (s) {
			n = strlen(s);
			assert_true(ends_with(s, ELL));
			for (size_t j = 0; j + 3 < n; j++)
				assert_int_equal(s[j], '\x01');
		}
		json_decref(r);
	}
	free(amp);
	free(ctl);
}

static void test_empty_annotations(void **state)
{
	(void)state;
	struct fx f;
	fx_init(&f);
	f.alerts[0].annotations = NULL;
	f.alerts[0].nannotations = 0;
	f.alerts[1].annotations = NULL;
	f.alerts[1].nannotations = 0;
	f.n.common_annotations = NULL;
	f.n.ncommon_annotations = 0;
	f.n.group_labels = NULL;
	f.n.ngroup_labels = 0;

	json_t *r = load(FORMAT_WEBHOOK, &f.n, NULL);
	obj(json_array_get(get(r, "alerts"), 0), "annotations", 0);
	obj(r, "commonAnnotations", 0);
	obj(r, "groupLabels", 0);
	json_decref(r);

	r = load(FORMAT_ALERTMANAGER, &f.n, NULL);
	obj(json_array_get(r, 0), "annotations", 0);
	json_decref(r);

	/* no summary: no text; no value: only the labels as fields; the
	 * common alertname names the group */
	r = load(FORMAT_SLACK, &f.n, NULL);
	assert_string_equal(str(r, "text"), HEADLINE);
	json_t *a = json_array_get(get(r, "attachments"), 0);
	assert_null(json_object_get(a, "text"));
	assert_string_equal(str(json_array_get(arr(a, "fields", 3), 0), "title"), "path");
	json_decref(r);

	r = load(FORMAT_DISCORD, &f.n, NULL);
	check_discord(r);
	assert_null(json_object_get(json_array_get(get(r, "embeds"), 0), "description"));
	json_decref(r);

	r = load(FORMAT_TEAMS, &f.n, NULL);
	assert_null(json_object_get(json_array_get(get(r, "sections"), 0), "text"));
	json_decref(r);

	/* and nothing at all: no alerts, no labels, NULL strings */
	struct notification none = { 0 };
	for (size_t i = 0; i < sizeof ALL / sizeof ALL[0]; i++)
		json_decref(load(ALL[i], &none, NULL));
}

/* 50 alerts; then the worst case: each with a long hostile summary and 30
 * long labels. Chat formats stay within their limits. */
#define MANY 50
#define NLAB 30

struct many {
	struct notif_label labels[MANY][NLAB + 1];
	struct notif_label ann[MANY][2];
	struct notif_label common[1];
	struct notif_alert alerts[MANY];
	char keys[NLAB][8];
	char paths[MANY][16];
	struct notification n;
};

static void many_init(struct many *m, bool worst, const char *longv)
{
	memset(m, 0, sizeof *m);
	for (size_t k = 0; k < NLAB; k++)
		snprintf(m->keys[k], sizeof m->keys[k], "l%02zu", k);
	for (size_t i = 0; i < MANY; i++) {
		struct notif_label *l = m->labels[i];
		size_t nl = 0;
		snprintf(m->paths[i], sizeof m->paths[i], "/p%zu", i);
		l[nl++] = (struct notif_label){ "alertname", "HighErrorRate" };
		if (worst) {
			for (size_t k = 0; k < NLAB; k++)
				l[nl++] = (struct notif_label){ m->keys[k], longv };
		} else {
			l[nl++] = (struct notif_label){ "path", m->paths[i] };
		}
		m->ann[i][0] = (struct notif_label){ "summary", worst ? longv : "errors" };
		m->ann[i][1] = (struct notif_label){ "value", worst ? longv : "0.5" };
		m->alerts[i] = (struct notif_alert){ .firing = i % 2 == 0, .labels = l,
						     .nlabels = nl, .annotations = m->ann[i],
						     .nannotations = 2, .starts_us = T0,
						     .ends_us = i % 2 ? T2 : 0 };
		format_fingerprint(l, nl, m->alerts[i].fingerprint);
	}
	m->common[0] = (struct notif_label){ "alertname", "HighErrorRate" };
	m->n = (struct notification){ .receiver = "r", .group_key = "g", .firing = true,
				      .common_labels = m->common, .ncommon_labels = 1,
				      .external_url = "", .alerts = m->alerts,
				      .nalerts = MANY };
}

static void test_many_alerts(void **state)
{
	(void)state;
	struct many *m = malloc(sizeof *m);
	size_t len;
	char *longv = malloc(5001);
	for (size_t i = 0; i < 5000; i++)
		longv[i] = "\x01\"\\<&\xc3\xa9\xff"[i % 7];
	longv[5000] = '\0';

	many_init(m, false, NULL);
	json_t *r = load(FORMAT_WEBHOOK, &m->n, NULL);
	json_t *alerts = arr(r, "alerts", MANY);
	for (size_t i = 0; i < MANY; i++) {
		char fp[17];
		json_t *a = json_array_get(alerts, i);
		ref_hex(m->alerts[i].labels, m->alerts[i].nlabels, fp);
		assert_string_equal(str(a, "fingerprint"), fp);
		assert_string_equal(str(obj(a, "labels", 2), "path"), m->paths[i]);
	}
	json_decref(r);
	r = load(FORMAT_ALERTMANAGER, &m->n, NULL);
	assert_int_equal(json_array_size(r), MANY);
	json_decref(r);

	r = load(FORMAT_SLACK, &m->n, NULL);
	arr(r, "attachments", 20);
	assert_string_equal(str(r, "text"), "[FIRING:25] HighErrorRate\n(30 more alerts not shown)");
	json_decref(r);
	r = load(FORMAT_DISCORD, &m->n, NULL);
	check_discord(r);
	arr(r, "embeds", 10);
	assert_string_equal(str(r, "content"), "[FIRING:25] HighErrorRate\n(40 more alerts not shown)");
	json_decref(r);
	r = load(FORMAT_TEAMS, &m->n, NULL);
	arr(r, "sections", 10);
	assert_string_equal(str(r, "text"), "(40 more alerts not shown)");
	json_decref(r);

	/* the worst case */
	many_init(m, true, longv);
	m->n.group_labels = m->labels[0];
	m->n.ngroup_labels = NLAB + 1;
	m->n.common_labels = m->labels[0];
	m->n.ncommon_labels = NLAB + 1;
	for (size_t i = 0; i < sizeof ALL / sizeof ALL[0]; i++) {
		r = load(ALL[i], &m->n, &len);
		if (ALL[i] == FORMAT_DISCORD) {
			check_discord(r);
			json_t *e = json_array_get(get(r, "embeds"), 0);
			assert_true(json_array_size(get(e, "fields")) >= 1);
		}
		if (ALL[i] == FORMAT_TEAMS) {
			if (len > 28000)
				fail_msg("Teams payload of %zu bytes, over its 28 KB", len);
			assert_true(json_array_size(get(json_array_get(get(r, "sections"), 0),
							"facts")) <= 20);
		}
		if (ALL[i] == FORMAT_SLACK && len > 65536)
			fail_msg("Slack payload of %zu bytes", len);
		json_decref(r);
	}
	free(longv);
	free(m);
}

/* ------------------------------------------------------------------------- */
/* Failing allocations: -ENOMEM, and the buffer as it was. */

static void test_enomem(void **state)
{
	(void)state;
#ifdef FAULTS
	struct fx f;
	fx_init(&f);
	for (size_t i = 0; i < sizeof ALL / sizeof ALL[0]; i++) {
		bool done = false;
		for (long k = 0; !done; k++) {
			struct kl_buf b = { 0 };
			assert_int_equal(kl_buf_append(&b, "prefix", 6), 0);
			fail_countdown = k;
			int rc = format_payload(ALL[i], &f.n, &b);
			fail_countdown = -1;
			if (rc == 0) {
				done = true;
				assert_true(b.len > 6);
				assert_true(k > 0); /* some allocation did fail before */
			} else {
				assert_int_equal(rc, -ENOMEM);
				assert_int_equal(b.len, 6);
				assert_string_equal(b.p, "prefix");
			}
			kl_buf_free(&b);
			assert_true(k < 1000);
		}
	}
#else
	skip();
#endif
}

static void test_bad_format(void **state)
{
	(void)state;
	struct fx f;
	struct kl_buf b = { 0 };
	fx_init(&f);
	assert_int_equal(format_payload((enum sink_format)99, &f.n, &b), -EINVAL);
	assert_int_equal(b.len, 0);
	kl_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fingerprint_vectors),
		cmocka_unit_test(test_fingerprint_independent),
		cmocka_unit_test(test_webhook),
		cmocka_unit_test(test_alertmanager),
		cmocka_unit_test(test_slack),
		cmocka_unit_test(test_discord),
		cmocka_unit_test(test_discord_long_summary),
		cmocka_unit_test(test_teams),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_cut_escapes),
		cmocka_unit_test(test_empty_annotations),
		cmocka_unit_test(test_many_alerts),
		cmocka_unit_test(test_enomem),
		cmocka_unit_test(test_bad_format),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
