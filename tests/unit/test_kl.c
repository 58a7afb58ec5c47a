/*
 * test_kl.c — unit tests for common/: kl.c (buffers, JSON output, bounded
 * parsing, time and duration formatting, logging, problem reports, files) and
 * kl_yaml.c (marks, aliases and anchors, duplicate keys, libyaml errors, the
 * place in the file of a byte of a scalar's value).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/kl.h"
#include "common/kl_yaml.h"

/* ------------------------------------------------------------------------- */
/* helpers */

/* Escape s and return the JSON text (a static buffer reused by each call). */
static const char *esc(const char *s, size_t len)
{
	static struct kl_buf b;
	kl_buf_reset(&b);
	assert_int_equal(kl_json_append_str(&b, s, len), 0);
	assert_int_equal(strlen(b.p), b.len); /* no NUL escaped into the output */
	return b.p;
}

#define ESC(lit) esc((lit), sizeof(lit) - 1)

static const char *num(double v)
{
	static struct kl_buf b;
	kl_buf_reset(&b);
	assert_int_equal(kl_json_append_num(&b, v), 0);
	return b.p;
}

static int64_t dur(const char *s)
{
	int64_t v = -1;
	assert_int_equal(kl_parse_duration_us(s, strlen(s), &v), 0);
	return v;
}

static int dur_rc(const char *s)
{
	int64_t v = 12345;
	int rc = kl_parse_duration_us(s, strlen(s), &v);
	assert_int_equal(v, 12345); /* untouched on failure */
	return rc;
}

static uint64_t size(const char *s)
{
	uint64_t v = 0;
	assert_int_equal(kl_parse_size(s, strlen(s), &v), 0);
	return v;
}

static int size_rc(const char *s)
{
	uint64_t v = 777;
	int rc = kl_parse_size(s, strlen(s), &v);
	assert_int_equal(v, 777);
	return rc;
}

/* A diag writing to a memory stream; diag_text() returns what was written. */
struct memdiag {
	struct kl_diag d;
	char *buf;
	size_t len;
};

static void memdiag_open(struct memdiag *m)
{
	memset(m, 0, sizeof *m);
	m->d.out = open_memstream(&m->buf, &m->len);
	assert_non_null(m->d.out);
}

static const char *memdiag_text(struct memdiag *m)
{
	fflush(m->d.out);
	return m->buf;
}

static void memdiag_close(struct memdiag *m)
{
	fclose(m->d.out);
	free(m->buf);
}

static char *make_tmpdir(void)
{
	char tmpl[] = "/tmp/test_kl.XXXXXX";
	char *dir = mkdtemp(tmpl);
	assert_non_null(dir);
	return kl_strndup(dir, strlen(dir));
}

static char *path_in(const char *dir, const char *name)
{
	struct kl_buf b = { 0 };
	assert_int_equal(kl_buf_appendf(&b, "%s/%s", dir, name), 0);
	return b.p;
}

/* ------------------------------------------------------------------------- */
/* kl_strndup, kl_buf */

static void test_strndup(void **state)
{
	(void)state;
	char *s = kl_strndup("hello world", 5);
	assert_string_equal(s, "hello");
	free(s);
	s = kl_strndup(NULL, 0);
	assert_string_equal(s, "");
	free(s);
}

static void test_buf(void **state)
{
	(void)state;
	struct kl_buf b = { 0 };

	assert_int_equal(kl_buf_append(&b, "ab", 2), 0);
	assert_int_equal(kl_buf_append_str(&b, "cd"), 0);
	assert_int_equal(b.len, 4);
	assert_string_equal(b.p, "abcd");
	assert_int_equal(kl_buf_appendf(&b, "-%d-%s", 42, "x"), 0);
	assert_string_equal(b.p, "abcd-42-x");
	/* growth through appendf: more than the first allocation */
	char big[1000];
	memset(big, 'z', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	assert_int_equal(kl_buf_appendf(&b, "%s|", big), 0);
	assert_int_equal(b.len, 9 + 999 + 1);
	assert_int_equal(b.p[b.len], '\0');
	assert_int_equal(b.p[b.len - 1], '|');
	kl_buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_int_equal(kl_buf_append(&b, "", 0), 0);
	assert_string_equal(b.p, "");
	assert_int_equal(kl_buf_reserve(&b, SIZE_MAX), -ENOMEM);
	kl_buf_free(&b);
	assert_null(b.p);
	kl_buf_free(NULL);
}

/* ------------------------------------------------------------------------- */
/* JSON strings */

static void test_json_plain(void **state)
{
	(void)state;
	assert_string_equal(ESC(""), "\"\"");
	assert_string_equal(ESC("hello"), "\"hello\"");
	assert_string_equal(ESC("a \"quoted\" word"), "\"a \\\"quoted\\\" word\"");
	assert_string_equal(ESC("back\\slash"), "\"back\\\\slash\"");
	assert_string_equal(ESC("/path/ok"), "\"/path/ok\""); /* '/' needs no escape */
	assert_string_equal(ESC("del\x7f"), "\"del\x7f\"");
	/* the 8-byte fast path with a special byte at every offset */
	for (size_t k = 0; k < 24; k++) {
		char in[25], want[64];
		memset(in, 'a', 24);
		in[k] = '"';
		in[24] = '\0';
		size_t o = 0;
		want[o++] = '"';
		for (size_t i = 0; i < 24; i++) {
			if (i == k)
				want[o++] = '\\';
			want[o++] = in[i];
		}
		want[o++] = '"';
		want[o] = '\0';
		assert_string_equal(esc(in, 24), want);
	}
}

static void test_json_controls(void **state)
{
	(void)state;
	static const char *const want[32] = {
		"\\u0000", "\\u0001", "\\u0002", "\\u0003", "\\u0004", "\\u0005", "\\u0006",
		"\\u0007", "\\b",     "\\t",	 "\\n",	    "\\u000b", "\\f",	  "\\r",
		"\\u000e", "\\u000f", "\\u0010", "\\u0011", "\\u0012", "\\u0013", "\\u0014",
		"\\u0015", "\\u0016", "\\u0017", "\\u0018", "\\u0019", "\\u001a", "\\u001b",
		"\\u001c", "\\u001d", "\\u001e", "\\u001f",
	};
	for (int c = 0; c < 32; c++) {
		char in[3] = { 'x', (char)c, 'y' };
		char expect[16];
		snprintf(expect, sizeof expect, "\"x%sy\"", want[c]);
		assert_string_equal(esc(in, 3), expect);
	}
	assert_string_equal(ESC("a\0b"), "\"a\\u0000b\"");
	assert_string_equal(ESC("\0"), "\"\\u0000\"");
}

#define FFFD "\xef\xbf\xbd"

static void test_json_utf8_valid(void **state)
{
	(void)state;
	/* boundaries of each length pass unchanged */
	assert_string_equal(ESC("\xc2\x80"), "\"\xc2\x80\"");		/* U+0080 */
	assert_string_equal(ESC("caf\xc3\xa9"), "\"caf\xc3\xa9\"");	/* é */
	assert_string_equal(ESC("\xdf\xbf"), "\"\xdf\xbf\"");		/* U+07FF */
	assert_string_equal(ESC("\xe0\xa0\x80"), "\"\xe0\xa0\x80\"");	/* U+0800 */
	assert_string_equal(ESC("\xe2\x82\xac"), "\"\xe2\x82\xac\"");	/* € */
	assert_string_equal(ESC("\xed\x9f\xbf"), "\"\xed\x9f\xbf\"");	/* U+D7FF */
	assert_string_equal(ESC("\xee\x80\x80"), "\"\xee\x80\x80\"");	/* U+E000 */
	assert_string_equal(ESC("\xef\xbf\xbf"), "\"\xef\xbf\xbf\"");	/* U+FFFF */
	assert_string_equal(ESC("\xf0\x90\x80\x80"), "\"\xf0\x90\x80\x80\""); /* U+10000 */
	assert_string_equal(ESC("\xf0\x9f\x98\x80"), "\"\xf0\x9f\x98\x80\""); /* 😀 */
	assert_string_equal(ESC("\xf4\x8f\xbf\xbf"), "\"\xf4\x8f\xbf\xbf\""); /* U+10FFFF */
	assert_string_equal(ESC(FFFD), "\"" FFFD "\"");
}

static void test_json_utf8_invalid(void **state)
{
	(void)state;
	/* stray continuation bytes: one U+FFFD each */
	assert_string_equal(ESC("a\x80z"), "\"a" FFFD "z\"");
	assert_string_equal(ESC("\xbf\xbf"), "\"" FFFD FFFD "\"");
	/* bytes that never start a sequence */
	assert_string_equal(ESC("\xc0\xaf"), "\"" FFFD FFFD "\""); /* overlong '/' */
	assert_string_equal(ESC("\xc1\xbf"), "\"" FFFD FFFD "\"");
	assert_string_equal(ESC("\xf5\x80\x80\x80"), "\"" FFFD FFFD FFFD FFFD "\"");
	assert_string_equal(ESC("\xfe"), "\"" FFFD "\"");
	assert_string_equal(ESC("\xff"), "\"" FFFD "\"");
	/* overlong 3- and 4-byte forms */
	assert_string_equal(ESC("\xe0\x80\xaf"), "\"" FFFD FFFD FFFD "\"");
	assert_string_equal(ESC("\xe0\x9f\xbf"), "\"" FFFD FFFD FFFD "\"");
	assert_string_equal(ESC("\xf0\x80\x80\xaf"), "\"" FFFD FFFD FFFD FFFD "\"");
	assert_string_equal(ESC("\xf0\x8f\xbf\xbf"), "\"" FFFD FFFD FFFD FFFD "\"");
	/* UTF-16 surrogates, alone and paired */
	assert_string_equal(ESC("\xed\xa0\x80"), "\"" FFFD FFFD FFFD "\"");
	assert_string_equal(ESC("\xed\xbf\xbf"), "\"" FFFD FFFD FFFD "\"");
	assert_string_equal(ESC("\xed\xa0\xbd\xed\xb8\x80"),
			    "\"" FFFD FFFD FFFD FFFD FFFD FFFD "\"");
	/* above U+10FFFF */
	assert_string_equal(ESC("\xf4\x90\x80\x80"), "\"" FFFD FFFD FFFD FFFD "\"");
	/* truncated sequences: the maximal subpart is one U+FFFD */
	assert_string_equal(ESC("\xc3"), "\"" FFFD "\"");
	assert_string_equal(ESC("\xe2\x82"), "\"" FFFD "\"");
	assert_string_equal(ESC("\xe2\x82z"), "\"" FFFD "z\"");
	assert_string_equal(ESC("\xf0\x9f\x98"), "\"" FFFD "\"");
	assert_string_equal(ESC("\xf0\x9f\x98\"x"), "\"" FFFD "\\\"x\"");
	assert_string_equal(ESC("\xf0\x9fz\xf0"), "\"" FFFD "z" FFFD "\"");
	/* a lead byte followed by another lead byte */
	assert_string_equal(ESC("\xc3\xc3\xa9"), "\"" FFFD "\xc3\xa9\"");
	/* TLS handshake bytes, as nginx logs them when sent to an HTTP port */
	assert_string_equal(ESC("\x16\x03\x01\x02\x00\x01"),
			    "\"\\u0016\\u0003\\u0001\\u0002\\u0000\\u0001\"");
}

/* A byte-at-a-time reference for the escaper, to compare on random input. */
static void ref_escape(const unsigned char *s, size_t len, struct kl_buf *b)
{
	kl_buf_append(b, "\"", 1);
	for (size_t i = 0; i < len;) {
		unsigned c = s[i];
		if (c == '"' || c == '\\') {
			char e[2] = { '\\', (char)c };
			kl_buf_append(b, e, 2);
			i++;
		} else if (c < 0x20) {
			switch (c) {
			case '\b': kl_buf_append(b, "\\b", 2); break;
			case '\f': kl_buf_append(b, "\\f", 2); break;
			case '\n': kl_buf_append(b, "\\n", 2); break;
			case '\r': kl_buf_append(b, "\\r", 2); break;
			case '\t': kl_buf_append(b, "\\t", 2); break;
			default: kl_buf_appendf(b, "\\u%04x", c); break;
			}
			i++;
		} else if (c < 0x80) {
			kl_buf_append(b, s + i, 1);
			i++;
		} else {
			/* decode, then check the code point's range and minimality */
			size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
			uint32_t cp = need == 4 ? c & 7 : need == 3 ? c & 15 : c & 31;
			size_t k = 1;
			bool ok = need != 0 && c < 0xf8;
			for (; ok && k < need; k++) {
				if (i + k >= len || (s[i + k] & 0xc0) != 0x80) {
					ok = false;
					break;
				}
				cp = cp << 6 | (s[i + k] & 0x3f);
			}
			if (ok) {
				uint32_t min = need == 2 ? 0x80 : need == 3 ? 0x800 : 0x10000;
				ok = cp >= min && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff);
			}
			if (ok) {
				kl_buf_append(b, s + i, need);
				i += need;
				continue;
			}
			/* maximal subpart: the prefix accepted byte by byte (k bytes
			 * when the failure was a non-continuation; the checks of the
			 * second byte for E0/ED/F0/F4 cut it to 1) */
			size_t sub = 1;
			if (need) {
				unsigned lo = 0x80, hi = 0xbf;
				if (c == 0xe0) lo = 0xa0;
				if (c == 0xed) hi = 0x9f;
				if (c == 0xf0) lo = 0x90;
				if (c == 0xf4) hi = 0x8f;
				if (c >= 0xc2 && c <= 0xf4 && i + 1 < len && s[i + 1] >= lo &&
				    s[i + 1] <= hi) {
					sub = 2;
					while (sub < need && i + sub < len &&
					       (s[i + sub] & 0xc0) == 0x80)
						sub++;
				}
			}
			kl_buf_append(b, FFFD, 3);
			i += sub;
		}
	}
	kl_buf_append(b, "\"", 1);
}

static void test_json_random(void **state)
{
	(void)state;
	static const unsigned char alphabet[] = { 'a', ' ', '"', '\\', 0, '\n', 0x1f, 0x7f,
						  0x80, 0xbf, 0xc2, 0xc3, 0xe0, 0xe2, 0xed,
						  0xf0, 0xf4, 0xf5, 0xff, 0x9f, 0xa0, 0x90 };
	struct kl_buf got = { 0 }, want = { 0 };
	unsigned seed = 12345;

	for (int round = 0; round < 20000; round++) {
		unsigned char in[40];
		size_t len = (seed = seed * 1103515245 + 12345) >> 16 & 31;
		for (size_t i = 0; i < len; i++) {
			seed = seed * 1103515245 + 12345;
			unsigned r = seed >> 16;
			/* mostly plain runs, so both paths are exercised */
			in[i] = r % 3 ? (unsigned char)('A' + r % 26)
				      : alphabet[(r / 3) % sizeof alphabet];
		}
		kl_buf_reset(&got);
		kl_buf_reset(&want);
		assert_int_equal(kl_json_append_str(&got, (const char *)in, len), 0);
		ref_escape(in, len, &want);
		assert_int_equal(got.len, want.len);
		assert_memory_equal(got.p, want.p, want.len);
	}
	kl_buf_free(&got);
	kl_buf_free(&want);
}

static void test_json_appends(void **state)
{
	(void)state;
	struct kl_buf b = { 0 };
	kl_buf_append_str(&b, "{\"k\":");
	assert_int_equal(kl_json_append_str(&b, "v\n", 2), 0);
	kl_buf_append_str(&b, ",\"n\":");
	assert_int_equal(kl_json_append_num(&b, 0.5), 0);
	kl_buf_append_str(&b, "}");
	assert_string_equal(b.p, "{\"k\":\"v\\n\",\"n\":0.5}");
	kl_buf_free(&b);
}

/* ------------------------------------------------------------------------- */
/* JSON numbers */

static void test_json_num(void **state)
{
	(void)state;
	assert_string_equal(num(0), "0");
	assert_string_equal(num(-0.0), "0");
	assert_string_equal(num(1), "1");
	assert_string_equal(num(-1), "-1");
	assert_string_equal(num(200), "200");
	assert_string_equal(num(1e15), "1000000000000000");
	assert_string_equal(num(9007199254740991.0), "9007199254740991");
	assert_string_equal(num(-9007199254740991.0), "-9007199254740991");
	assert_string_equal(num(9007199254740992.0), "9007199254740992");
	assert_string_equal(num(1e20), "1e+20");
	assert_string_equal(num(0.5), "0.5");
	assert_string_equal(num(0.1), "0.1");
	assert_string_equal(num(0.412), "0.412");
	assert_string_equal(num(-3.25), "-3.25");
	assert_string_equal(num(1.0 / 3), "0.3333333333333333");
	assert_string_equal(num(0.1 + 0.2), "0.30000000000000004");
	assert_string_equal(num(1e300), "1e+300");
	assert_string_equal(num(5e-324), "4.94065645841247e-324");
	assert_string_equal(num(NAN), "null");
	assert_string_equal(num(INFINITY), "null");
	assert_string_equal(num(-INFINITY), "null");
	/* every output reads back to the same double */
	unsigned seed = 7;
	for (int i = 0; i < 10000; i++) {
		uint64_t bits = 0;
		for (int k = 0; k < 4; k++) {
			seed = seed * 1103515245 + 12345;
			bits = bits << 16 | (seed >> 16 & 0xffff);
		}
		double v;
		memcpy(&v, &bits, sizeof v);
		if (!isfinite(v))
			continue;
		const char *s = num(v);
		assert_true(strtod(s, NULL) == v);
	}
}

/* ------------------------------------------------------------------------- */
/* Bounded numbers */

static void test_parse_ints(void **state)
{
	(void)state;
	int64_t i = 0;
	uint64_t u = 0;

	assert_int_equal(kl_parse_i64("123", 3, &i), 0);
	assert_int_equal(i, 123);
	assert_int_equal(kl_parse_i64("-42", 3, &i), 0);
	assert_int_equal(i, -42);
	assert_int_equal(kl_parse_i64("9223372036854775807", 19, &i), 0);
	assert_true(i == INT64_MAX);
	assert_int_equal(kl_parse_i64("-9223372036854775808", 20, &i), 0);
	assert_true(i == INT64_MIN);
	assert_int_equal(kl_parse_i64("9223372036854775808", 19, &i), -ERANGE);
	assert_int_equal(kl_parse_i64("-9223372036854775809", 20, &i), -ERANGE);
	assert_int_equal(kl_parse_i64("", 0, &i), -EINVAL);
	assert_int_equal(kl_parse_i64("-", 1, &i), -EINVAL);
	assert_int_equal(kl_parse_i64(" 1", 2, &i), -EINVAL);
	assert_int_equal(kl_parse_i64("1 ", 2, &i), -EINVAL);
	assert_int_equal(kl_parse_i64("1x", 2, &i), -EINVAL);
	assert_int_equal(kl_parse_i64("+1", 2, &i), -EINVAL);
	/* only len bytes are looked at */
	assert_int_equal(kl_parse_i64("12345", 2, &i), 0);
	assert_int_equal(i, 12);

	assert_int_equal(kl_parse_u64("18446744073709551615", 20, &u), 0);
	assert_true(u == UINT64_MAX);
	assert_int_equal(kl_parse_u64("18446744073709551616", 20, &u), -ERANGE);
	assert_int_equal(kl_parse_u64("99999999999999999999999", 23, &u), -ERANGE);
	assert_int_equal(kl_parse_u64("-1", 2, &u), -EINVAL);
	assert_int_equal(kl_parse_u64("0x10", 4, &u), -EINVAL);
	assert_int_equal(kl_parse_u64("007", 3, &u), 0);
	assert_int_equal(u, 7);
}

static void test_parse_double(void **state)
{
	(void)state;
	double d = 0;
	static const struct {
		const char *s;
		double v;
	} ok[] = {
		{ "12", 12 },	    { "0.412", 0.412 }, { "-3.5", -3.5 }, { "1e3", 1000 },
		{ "1E-2", 0.01 },   { "+2", 2 },	{ ".5", 0.5 },	  { "5.", 5 },
		{ "2.5e+2", 250 },
	};
	for (size_t i = 0; i < KL_ARRAY_LEN(ok); i++) {
		assert_int_equal(kl_parse_double(ok[i].s, strlen(ok[i].s), &d), 0);
		assert_true(d == ok[i].v);
	}
	static const char *const bad[] = { "",	   "-",	   ".",	   "e3",  "1e",	 "1e+",
					   "0x10", "inf",  "nan",  "1.2.3", " 1", "1 ",
					   "1,5",  "--1",  "1e3x", "Infinity" };
	for (size_t i = 0; i < KL_ARRAY_LEN(bad); i++)
		assert_int_equal(kl_parse_double(bad[i], strlen(bad[i]), &d), -EINVAL);
	assert_int_equal(kl_parse_double("1e999", 5, &d), -ERANGE);
	assert_int_equal(kl_parse_double("-1e999", 6, &d), -ERANGE);
	/* only len bytes are looked at */
	assert_int_equal(kl_parse_double("1.5xyz", 3, &d), 0);
	assert_true(d == 1.5);
}

/* ------------------------------------------------------------------------- */
/* Durations and sizes */

static void test_duration(void **state)
{
	(void)state;
	assert_int_equal(dur("500ms"), 500000);
	assert_int_equal(dur("2s"), 2000000);
	assert_int_equal(dur("1m30s"), 90000000);
	assert_int_equal(dur("7d"), INT64_C(604800000000));
	assert_int_equal(dur("1.5h"), INT64_C(5400000000));
	assert_int_equal(dur("1w"), INT64_C(604800000000));
	assert_int_equal(dur("250us"), 250);
	assert_int_equal(dur("2"), 2000000);
	assert_int_equal(dur("0.5"), 500000);
	assert_int_equal(dur("0"), 0);
	assert_int_equal(dur("0s"), 0);
	assert_int_equal(dur("1h30m"), INT64_C(5400000000));
	assert_int_equal(dur("1d2h3m4s5ms6us"), INT64_C(93784005006));
	assert_int_equal(dur("30s1m"), 90000000); /* any order */
	assert_int_equal(dur("1.0000005s"), 1000000); /* sub-µs truncated */
	assert_int_equal(dur("0.001ms"), 1);
	assert_int_equal(dur("1.25ms"), 1250);
	assert_int_equal(dur("9223372036854775807us"), INT64_MAX);

	assert_int_equal(dur_rc(""), -EINVAL);
	assert_int_equal(dur_rc("-1s"), -EINVAL);
	assert_int_equal(dur_rc("-5"), -EINVAL);
	assert_int_equal(dur_rc("5x"), -EINVAL);
	assert_int_equal(dur_rc("5S"), -EINVAL);
	assert_int_equal(dur_rc("s"), -EINVAL);
	assert_int_equal(dur_rc("1m30"), -EINVAL);
	assert_int_equal(dur_rc(" 5s"), -EINVAL);
	assert_int_equal(dur_rc("5s "), -EINVAL);
	assert_int_equal(dur_rc("5 s"), -EINVAL);
	assert_int_equal(dur_rc("1.s"), -EINVAL);
	assert_int_equal(dur_rc(".5s"), -EINVAL);
	assert_int_equal(dur_rc("1e3s"), -EINVAL);
	assert_int_equal(dur_rc("5sec"), -EINVAL);
	assert_int_equal(dur_rc("5mss"), -EINVAL);
	assert_int_equal(dur_rc("1m-30s"), -EINVAL);
	assert_int_equal(dur_rc("\xc2\xb5s"), -EINVAL);
	assert_int_equal(dur_rc("99999999999999999999s"), -ERANGE);
	assert_int_equal(dur_rc("20000000w"), -ERANGE);
	assert_int_equal(dur_rc("9223372036854775808us"), -ERANGE);
	assert_int_equal(dur_rc("9223372036854775807us1us"), -ERANGE);
	assert_int_equal(dur_rc("106751992d"), -ERANGE);
	/* only len bytes are looked at */
	int64_t v;
	assert_int_equal(kl_parse_duration_us("5sXYZ", 2, &v), 0);
	assert_int_equal(v, 5000000);
}

static void test_size(void **state)
{
	(void)state;
	assert_int_equal(size("0"), 0);
	assert_int_equal(size("5"), 5);
	assert_int_equal(size("5B"), 5);
	assert_int_equal(size("5b"), 5);
	assert_int_equal(size("64KiB"), 65536);
	assert_int_equal(size("64kib"), 65536);
	assert_int_equal(size("64KIB"), 65536);
	assert_int_equal(size("1KB"), 1000);
	assert_int_equal(size("1kb"), 1000);
	assert_int_equal(size("10MB"), 10000000);
	assert_int_equal(size("10mb"), 10000000);
	assert_int_equal(size("500MB"), 500000000);
	assert_int_equal(size("2GB"), 2000000000);
	assert_int_equal(size("3TB"), UINT64_C(3000000000000));
	assert_int_equal(size("64MiB"), 64u << 20);
	assert_int_equal(size("1GiB"), 1u << 30);
	assert_int_equal(size("2TiB"), UINT64_C(2) << 40);
	assert_int_equal(size("1.5KiB"), 1536);
	assert_int_equal(size("0.5MB"), 500000);
	assert_int_equal(size("1.0000000001B"), 1); /* fraction truncated to bytes */
	assert_true(size("18446744073709551615") == UINT64_MAX);

	assert_int_equal(size_rc(""), -EINVAL);
	assert_int_equal(size_rc("KB"), -EINVAL);
	assert_int_equal(size_rc("-5"), -EINVAL);
	assert_int_equal(size_rc("5 KB"), -EINVAL);
	assert_int_equal(size_rc(" 5"), -EINVAL);
	assert_int_equal(size_rc("5K"), -EINVAL);
	assert_int_equal(size_rc("5KiBB"), -EINVAL);
	assert_int_equal(size_rc("5PB"), -EINVAL);
	assert_int_equal(size_rc("5.KB"), -EINVAL);
	assert_int_equal(size_rc("1e3"), -EINVAL);
	assert_int_equal(size_rc("18446744073709551616"), -ERANGE);
	assert_int_equal(size_rc("20000000TB"), -ERANGE);
	assert_int_equal(size_rc("16777216TiB"), -ERANGE);
}

/* ------------------------------------------------------------------------- */
/* Time */

static const char *rfc(int64_t us, bool millis)
{
	static char out[KL_RFC3339_MAX];
	size_t n = kl_format_rfc3339(us, millis, out);
	assert_int_equal(n, strlen(out));
	assert_true(n < KL_RFC3339_MAX);
	return out;
}

static void test_rfc3339(void **state)
{
	(void)state;
	assert_string_equal(rfc(0, false), "1970-01-01T00:00:00Z");
	assert_string_equal(rfc(0, true), "1970-01-01T00:00:00.000Z");
	assert_string_equal(rfc(INT64_C(1700000000) * 1000000, false), "2023-11-14T22:13:20Z");
	assert_string_equal(rfc(INT64_C(1700000000) * 1000000 + 123456, true),
			    "2023-11-14T22:13:20.123Z");
	assert_string_equal(rfc(INT64_C(1700000000) * 1000000 + 999999, false),
			    "2023-11-14T22:13:20Z");
	assert_string_equal(rfc(-1, true), "1969-12-31T23:59:59.999Z");
	assert_string_equal(rfc(-1000000, false), "1969-12-31T23:59:59Z");
	assert_string_equal(rfc(INT64_C(951782400) * 1000000, false), "2000-02-29T00:00:00Z");
	assert_string_equal(rfc(INT64_C(253402300799) * 1000000, false), "9999-12-31T23:59:59Z");
	assert_string_equal(rfc(INT64_C(-62135596800) * 1000000, false), "0001-01-01T00:00:00Z");
	/* out of RFC 3339's range: readable, no crash */
	assert_string_equal(rfc(INT64_MAX, true), "294247-01-10T04:00:54.775Z");
	assert_string_equal(rfc(INT64_MIN, true), "-290308-12-21T19:59:05.224Z");

	assert_int_equal(kl_days_from_civil(1970, 1, 1), 0);
	assert_int_equal(kl_days_from_civil(2000, 3, 1), 11017);
	assert_int_equal(kl_days_from_civil(1969, 12, 31), -1);
	assert_int_equal(kl_days_from_civil(2023, 11, 14), 19675);
	/* every day of 1900..2100 formats back to its date */
	for (int64_t y = 1900; y <= 2100; y += 7) {
		for (unsigned m = 1; m <= 12; m++) {
			int64_t days = kl_days_from_civil(y, m, 28);
			char want[32];
			snprintf(want, sizeof want, "%04d-%02u-28T00:00:00Z", (int)y, m);
			assert_string_equal(rfc(days * 86400 * 1000000, false), want);
		}
	}
}

static void test_clocks(void **state)
{
	(void)state;
	int64_t w = kl_wall_us();
	assert_true(w > INT64_C(1600000000) * 1000000);
	int64_t a = kl_mono_us(), b = kl_mono_us();
	assert_true(b >= a);
}

static const char *fdur(int64_t us)
{
	static char out[32];
	size_t n = kl_format_duration(us, out);
	assert_int_equal(n, strlen(out));
	return out;
}

static void test_format_duration(void **state)
{
	(void)state;
	assert_string_equal(fdur(0), "0s");
	assert_string_equal(fdur(1), "1us");
	assert_string_equal(fdur(500000), "500ms");
	assert_string_equal(fdur(2000000), "2s");
	assert_string_equal(fdur(300000000), "5m");
	assert_string_equal(fdur(90000000), "1m30s");
	assert_string_equal(fdur(INT64_C(5400000000)), "1h30m");
	assert_string_equal(fdur(INT64_C(3601000000)), "1h1s");
	assert_string_equal(fdur(INT64_C(604800000000)), "7d");
	assert_string_equal(fdur(1500), "1ms500us");
	assert_string_equal(fdur(-2000000), "-2s");
	assert_string_equal(fdur(INT64_MAX), "106751991d4h54s775ms807us");
	assert_string_equal(fdur(INT64_MIN), "-106751991d4h54s775ms808us");
	/* round trip */
	unsigned seed = 99;
	for (int i = 0; i < 10000; i++) {
		seed = seed * 1103515245 + 12345;
		int64_t v = (int64_t)(seed >> 8) * (int64_t)(1 + (seed & 0xff)) * 977;
		int64_t back = -1;
		const char *s = fdur(v);
		assert_int_equal(kl_parse_duration_us(s, strlen(s), &back), 0);
		assert_int_equal(back, v);
	}
}

/* ------------------------------------------------------------------------- */
/* Logging and problem reports */

/* Run fn with stderr sent to a temporary file; return what it wrote. */
static char *capture_stderr(void (*fn)(void))
{
	FILE *tmp = tmpfile();
	assert_non_null(tmp);
	fflush(stderr);
	int saved = dup(2);
	dup2(fileno(tmp), 2);
	fn();
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	long n = ftell(tmp);
	(void)n;
	fseek(tmp, 0, SEEK_END);
	long len = ftell(tmp);
	rewind(tmp);
	char *buf = calloc(1, (size_t)len + 1);
	assert_int_equal(fread(buf, 1, (size_t)len, tmp), (size_t)len);
	fclose(tmp);
	return buf;
}

static void do_logs(void)
{
	kl_log(KL_LOG_ERROR, "boom %d", 1);
	kl_log(KL_LOG_WARN, "config: 'probes' is not implemented in this version and is ignored");
	kl_log(KL_LOG_INFO, "hello");
	kl_log(KL_LOG_DEBUG, "not shown");
	kl_log_set_quiet(true);
	kl_log(KL_LOG_INFO, "hidden");
	kl_log(KL_LOG_WARN, "still shown");
	kl_log_set_quiet(false);
}

static void test_log(void **state)
{
	(void)state;
	unsetenv("KLAXON_DEBUG");
	char *out = capture_stderr(do_logs);
	assert_string_equal(out, "klaxon: error: boom 1\n"
				 "klaxon: warning: config: 'probes' is not implemented in this "
				 "version and is ignored\n"
				 "klaxon: info: hello\n"
				 "klaxon: warning: still shown\n");
	free(out);
}

static void test_diag(void **state)
{
	(void)state;
	struct memdiag m;
	memdiag_open(&m);
	kl_diag_error(&m.d, "klaxon.yml", 3, 7, "unknown key '%s'", "soruces");
	kl_diag_error(&m.d, "klaxon.yml", 0, 0, "cannot read: %s", "No such file or directory");
	kl_diag_error(&m.d, "r.yml", 12, 1, "x");
	assert_string_equal(memdiag_text(&m), "klaxon.yml:3:7: unknown key 'soruces'\n"
					      "klaxon.yml: cannot read: No such file or directory\n"
					      "r.yml:12:1: x\n");
	assert_int_equal(m.d.errors, 3);
	memdiag_close(&m);
}

/* ------------------------------------------------------------------------- */
/* Files */

static void test_write_atomic(void **state)
{
	(void)state;
	char *dir = make_tmpdir();
	char *path = path_in(dir, "state.json");
	char *tmp = path_in(dir, "state.json.tmp");
	char *data;
	size_t len;

	assert_int_equal(kl_write_file_atomic(path, "first", 5), 0);
	assert_int_equal(kl_read_file(path, 1024, &data, &len), 0);
	assert_int_equal(len, 5);
	assert_string_equal(data, "first");
	free(data);
	assert_int_equal(access(tmp, F_OK), -1);

	/* replace, bigger than one write chunk of a pipe, with NULs */
	size_t big = 300000;
	char *blob = malloc(big);
	for (size_t i = 0; i < big; i++)
		blob[i] = (char)(i * 7);
	assert_int_equal(kl_write_file_atomic(path, blob, big), 0);
	assert_int_equal(kl_read_file(path, big, &data, &len), 0);
	assert_int_equal(len, big);
	assert_memory_equal(data, blob, big);
	free(data);
	free(blob);
	assert_int_equal(access(tmp, F_OK), -1);

	/* empty */
	assert_int_equal(kl_write_file_atomic(path, "", 0), 0);
	assert_int_equal(kl_read_file(path, 10, &data, &len), 0);
	assert_int_equal(len, 0);
	assert_string_equal(data, "");
	free(data);

	/* rename fails (PATH is a non-empty directory): tmp removed, PATH intact */
	char *sub = path_in(dir, "sub");
	char *subfile = path_in(sub, "keep");
	char *subtmp = path_in(dir, "sub.tmp");
	assert_int_equal(mkdir(sub, 0700), 0);
	assert_int_equal(kl_write_file_atomic(subfile, "k", 1), 0);
	int rc = kl_write_file_atomic(sub, "x", 1);
	assert_true(rc == -EISDIR || rc == -ENOTEMPTY || rc == -EEXIST);
	assert_int_equal(access(subtmp, F_OK), -1);
	assert_int_equal(access(subfile, F_OK), 0);

	/* no such directory */
	char *nodir = path_in(dir, "missing/x");
	assert_int_equal(kl_write_file_atomic(nodir, "x", 1), -ENOENT);

	/* a relative path: the directory to fsync is "." */
	char cwd[4096];
	assert_non_null(getcwd(cwd, sizeof cwd));
	assert_int_equal(chdir(dir), 0);
	assert_int_equal(kl_write_file_atomic("rel", "r", 1), 0);
	assert_int_equal(chdir(cwd), 0);
	char *rel = path_in(dir, "rel");
	assert_int_equal(kl_read_file(rel, 10, &data, &len), 0);
	assert_string_equal(data, "r");
	free(data);

	unlink(rel);
	unlink(subfile);
	rmdir(sub);
	unlink(path);
	rmdir(dir);
	free(rel);
	free(nodir);
	free(subtmp);
	free(subfile);
	free(sub);
	free(tmp);
	free(path);
	free(dir);
}

static void test_read_file(void **state)
{
	(void)state;
	char *dir = make_tmpdir();
	char *path = path_in(dir, "f");
	char *data = NULL;
	size_t len = 0;

	assert_int_equal(kl_write_file_atomic(path, "0123456789", 10), 0);
	assert_int_equal(kl_read_file(path, 10, &data, &len), 0);
	assert_int_equal(len, 10);
	assert_string_equal(data, "0123456789");
	free(data);
	data = NULL;
	assert_int_equal(kl_read_file(path, 9, &data, &len), -EFBIG);
	assert_null(data);
	assert_int_equal(kl_read_file(dir, 100, &data, &len), -EISDIR);
	char *missing = path_in(dir, "missing");
	assert_int_equal(kl_read_file(missing, 100, &data, &len), -ENOENT);
	/* not a regular file: read to EOF all the same, and capped */
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	assert_int_equal(write(fds[1], "piped", 5), 5);
	close(fds[1]);
	char fdpath[64];
	snprintf(fdpath, sizeof fdpath, "/dev/fd/%d", fds[0]);
	assert_int_equal(kl_read_file(fdpath, 4, &data, &len), -EFBIG);
	close(fds[0]);
	assert_int_equal(pipe(fds), 0);
	assert_int_equal(write(fds[1], "piped", 5), 5);
	close(fds[1]);
	snprintf(fdpath, sizeof fdpath, "/dev/fd/%d", fds[0]);
	assert_int_equal(kl_read_file(fdpath, 5, &data, &len), 0);
	assert_string_equal(data, "piped");
	free(data);
	close(fds[0]);

	unlink(path);
	rmdir(dir);
	free(missing);
	free(path);
	free(dir);
}

/* ------------------------------------------------------------------------- */
/* YAML */

static struct kl_ynode *yload(const char *text, struct memdiag *m)
{
	return kl_yaml_load_mem("t.yml", text, strlen(text), &m->d);
}

/* Load text, expect failure, and return the reports (caller frees). */
static char *yfail(const char *text)
{
	struct memdiag m;
	memdiag_open(&m);
	struct kl_ynode *n = yload(text, &m);
	assert_null(n);
	assert_true(m.d.errors > 0);
	const char *got = memdiag_text(&m);
	char *out = kl_strndup(got, m.len);
	memdiag_close(&m);
	return out;
}

static void test_yaml_marks(void **state)
{
	(void)state;
	static const char text[] = "# comment\n"
				   "state_dir: /var/lib/klaxon\n"
				   "sources:\n"
				   "  - name: nginx\n"
				   "    path: '/var/log/a.log'\n"
				   "  - {name: app, path: \"x\\ty\"}\n"
				   "empty:\n"
				   "tilde: ~\n"
				   "quoted_null: 'null'\n"
				   "list: [1, 2]\n";
	struct memdiag m;
	memdiag_open(&m);
	struct kl_ynode *root = yload(text, &m);
	assert_non_null(root);
	assert_int_equal(m.d.errors, 0);
	assert_int_equal(root->type, KL_Y_MAP);
	assert_int_equal(root->n, 6);
	assert_int_equal(root->line, 2);
	assert_int_equal(root->col, 1);
	assert_int_equal(root->keys[0]->line, 2);
	assert_int_equal(root->keys[0]->col, 1);

	const struct kl_ynode *sd = kl_ymap_get(root, "state_dir");
	assert_non_null(sd);
	assert_int_equal(sd->type, KL_Y_SCALAR);
	assert_string_equal(sd->str, "/var/lib/klaxon");
	assert_int_equal(sd->line, 2);
	assert_int_equal(sd->col, 12);
	assert_true(sd->plain);

	const struct kl_ynode *src = kl_ymap_get(root, "sources");
	assert_int_equal(src->type, KL_Y_SEQ);
	assert_string_equal(kl_ynode_kind(src), "a list");
	assert_int_equal(src->n, 2);
	const struct kl_ynode *s0 = src->items[0];
	assert_int_equal(s0->type, KL_Y_MAP);
	assert_string_equal(kl_ynode_kind(s0), "a mapping");
	assert_int_equal(s0->line, 4);
	assert_int_equal(s0->col, 5);
	const struct kl_ynode *p0 = kl_ymap_get(s0, "path");
	assert_string_equal(p0->str, "/var/log/a.log");
	assert_false(p0->plain);
	assert_int_equal(p0->line, 5);
	assert_int_equal(p0->col, 11);
	const struct kl_ynode *s1 = src->items[1];
	assert_int_equal(s1->line, 6);
	assert_int_equal(s1->col, 5);
	const struct kl_ynode *p1 = kl_ymap_get(s1, "path");
	assert_string_equal(p1->str, "x\ty");
	assert_int_equal(p1->col, 23);
	assert_string_equal(kl_ynode_kind(p1), "a scalar");

	assert_true(kl_ynode_is_null(kl_ymap_get(root, "empty")));
	assert_true(kl_ynode_is_null(kl_ymap_get(root, "tilde")));
	assert_false(kl_ynode_is_null(kl_ymap_get(root, "quoted_null")));
	assert_false(kl_ynode_is_null(sd));
	assert_false(kl_ynode_is_null(NULL));
	const struct kl_ynode *l = kl_ymap_get(root, "list");
	assert_int_equal(l->n, 2);
	assert_int_equal(l->items[1]->line, 10);
	assert_int_equal(l->items[1]->col, 11);

	assert_null(kl_ymap_get(root, "nope"));
	assert_null(kl_ymap_get(NULL, "x"));
	assert_null(kl_ymap_get(sd, "x"));
	assert_string_equal(kl_ynode_kind(NULL), "nothing");
	kl_yaml_free(root);
	kl_yaml_free(NULL);
	memdiag_close(&m);
}

static void test_yaml_scalar_nul(void **state)
{
	(void)state;
	struct memdiag m;
	memdiag_open(&m);
	struct kl_ynode *root = yload("k: \"a\\0b\"\n", &m);
	assert_non_null(root);
	const struct kl_ynode *k = kl_ymap_get(root, "k");
	assert_int_equal(k->len, 3);
	assert_memory_equal(k->str, "a\0b", 4);
	kl_yaml_free(root);
	memdiag_close(&m);
}

static void test_yaml_empty(void **state)
{
	(void)state;
	struct memdiag m;
	memdiag_open(&m);
	/* an empty document is an empty mapping */
	struct kl_ynode *root = yload("---\n", &m);
	assert_non_null(root);
	assert_int_equal(root->type, KL_Y_MAP);
	assert_int_equal(root->n, 0);
	kl_yaml_free(root);
	root = yload("--- ~\n", &m);
	assert_non_null(root);
	assert_int_equal(root->type, KL_Y_MAP);
	kl_yaml_free(root);
	assert_int_equal(m.d.errors, 0);
	memdiag_close(&m);

	char *out = yfail("");
	assert_string_equal(out, "t.yml: the file is empty; expected a YAML mapping\n");
	free(out);
	out = yfail("# only a comment\n\n");
	assert_string_equal(out, "t.yml: the file is empty; expected a YAML mapping\n");
	free(out);

	/* a top-level scalar or list is returned as such (the caller checks) */
	memdiag_open(&m);
	root = yload("- a\n", &m);
	assert_non_null(root);
	assert_int_equal(root->type, KL_Y_SEQ);
	kl_yaml_free(root);
	memdiag_close(&m);
}

static void test_yaml_alias(void **state)
{
	(void)state;
	char *out = yfail("base: &b {x: 1}\n"
			  "other: *b\n");
	assert_string_equal(out, "t.yml:1:7: anchors are not supported (found '&b'); "
				 "repeat the value instead\n"
				 "t.yml:2:8: aliases are not supported (found '*b'); repeat "
				 "the value instead\n");
	free(out);
	out = yfail("a: &x 1\n");
	assert_string_equal(out, "t.yml:1:4: anchors are not supported (found '&x'); "
				 "repeat the value instead\n");
	free(out);
	out = yfail("list:\n  - &y [1]\n");
	assert_string_equal(out, "t.yml:2:5: anchors are not supported (found '&y'); "
				 "repeat the value instead\n");
	free(out);
	/* merge keys come through an alias too */
	out = yfail("a: &a {x: 1}\nb:\n  <<: *a\n");
	assert_string_equal(out, "t.yml:1:4: anchors are not supported (found '&a'); "
				 "repeat the value instead\n"
				 "t.yml:3:7: aliases are not supported (found '*a'); repeat "
				 "the value instead\n");
	free(out);
}

static void test_yaml_duplicates(void **state)
{
	(void)state;
	char *out = yfail("sources: []\n"
			  "listen: x\n"
			  "sources: [a]\n");
	assert_string_equal(out, "t.yml:3:1: duplicate key 'sources' (first at line 1)\n");
	free(out);
	/* in nested maps, several, reported in document order, each naming the first */
	out = yfail("a:\n"
		    "  k: 1\n"
		    "  j: 2\n"
		    "  k: 3\n"
		    "  j: 4\n"
		    "  k: 5\n");
	assert_string_equal(out, "t.yml:4:3: duplicate key 'k' (first at line 2)\n"
				 "t.yml:5:3: duplicate key 'j' (first at line 3)\n"
				 "t.yml:6:3: duplicate key 'k' (first at line 2)\n");
	free(out);
	/* quoting does not make a key different */
	out = yfail("{\"a\": 1, a: 2}");
	assert_string_equal(out, "t.yml:1:10: duplicate key 'a' (first at line 1)\n");
	free(out);
	/* the same key in different maps is fine */
	struct memdiag m;
	memdiag_open(&m);
	struct kl_ynode *root = yload("- {a: 1}\n- {a: 2}\n", &m);
	assert_non_null(root);
	kl_yaml_free(root);
	memdiag_close(&m);
}

static void test_yaml_bad_keys(void **state)
{
	(void)state;
	char *out = yfail("? [a, b]\n: 1\n");
	assert_string_equal(out, "t.yml:1:3: a mapping key must be a scalar, found a list\n");
	free(out);
	out = yfail("{? {x: 1} : 2}\n");
	assert_string_equal(out, "t.yml:1:4: a mapping key must be a scalar, found a mapping\n");
	free(out);
}

static void test_yaml_syntax(void **state)
{
	(void)state;
	char *out = yfail("sources:\n"
			  "  - name: a\n"
			  "   path: b\n");
	assert_string_equal(out, "t.yml:3:4: did not find expected '-' indicator while "
				 "parsing a block collection (started at line 2)\n");
	free(out);
	out = yfail("a: [1, 2\n");
	assert_string_equal(out, "t.yml:2:1: did not find expected ',' or ']' while parsing "
				 "a flow sequence (started at line 1)\n");
	free(out);
	out = yfail("a: 'unterminated\n");
	assert_string_equal(out, "t.yml:2:1: found unexpected end of stream while scanning a "
				 "quoted scalar (started at line 1)\n");
	free(out);
	out = yfail("a: b: c\n");
	assert_string_equal(out, "t.yml:1:5: mapping values are not allowed in this context\n");
	free(out);
	/* reader errors: position from the byte offset */
	out = yfail("a: 1\nb: \xff\n");
	assert_string_equal(out, "t.yml:2:4: invalid leading UTF-8 octet (byte 0xff)\n");
	free(out);
	out = yfail("a: \x01\n");
	assert_string_equal(out, "t.yml:1:4: control characters are not allowed (byte 0x01)\n");
	free(out);
}

static void test_yaml_depth(void **state)
{
	(void)state;
	struct kl_buf b = { 0 };
	for (int i = 0; i < 100; i++)
		kl_buf_append(&b, "[", 1);
	for (int i = 0; i < 100; i++)
		kl_buf_append(&b, "]", 1);
	char *out = yfail(b.p);
	assert_string_equal(out, "t.yml:1:65: nesting deeper than 64 levels\n");
	free(out);
	kl_buf_free(&b);
	/* 64 levels are fine */
	for (int i = 0; i < 64; i++)
		kl_buf_append(&b, "[", 1);
	for (int i = 0; i < 64; i++)
		kl_buf_append(&b, "]", 1);
	struct memdiag m;
	memdiag_open(&m);
	struct kl_ynode *root = yload(b.p, &m);
	assert_non_null(root);
	kl_yaml_free(root);
	memdiag_close(&m);
	kl_buf_free(&b);
}

static void test_yaml_many_keys(void **state)
{
	(void)state;
	struct kl_buf b = { 0 };
	for (int i = 0; i < 20000; i++)
		kl_buf_appendf(&b, "k%d: %d\n", i, i);
	struct memdiag m;
	memdiag_open(&m);
	struct kl_ynode *root = yload(b.p, &m);
	assert_non_null(root);
	assert_int_equal(root->n, 20000);
	assert_string_equal(kl_ymap_get(root, "k19999")->str, "19999");
	kl_yaml_free(root);
	kl_buf_appendf(&b, "k%d: dup\n", 1234);
	root = yload(b.p, &m);
	assert_null(root);
	assert_string_equal(memdiag_text(&m),
			    "t.yml:20001:1: duplicate key 'k1234' (first at line 1235)\n");
	memdiag_close(&m);
	kl_buf_free(&b);
}

static void test_yaml_first_document(void **state)
{
	(void)state;
	struct memdiag m;
	memdiag_open(&m);
	struct kl_ynode *root = yload("a: 1\n---\nb: 2\n", &m);
	assert_non_null(root);
	assert_non_null(kl_ymap_get(root, "a"));
	assert_null(kl_ymap_get(root, "b"));
	kl_yaml_free(root);
	memdiag_close(&m);
}

static void test_yaml_file(void **state)
{
	(void)state;
	char *dir = make_tmpdir();
	char *path = path_in(dir, "c.yml");
	struct memdiag m;

	assert_int_equal(kl_write_file_atomic(path, "x: 1\ny: [\n", 10), 0);
	memdiag_open(&m);
	assert_null(kl_yaml_load_file(path, &m.d));
	struct kl_buf want = { 0 };
	kl_buf_appendf(&want,
		       "%s:3:1: did not find expected node content while parsing a flow node\n",
		       path);
	assert_string_equal(memdiag_text(&m), want.p);
	memdiag_close(&m);

	assert_int_equal(kl_write_file_atomic(path, "x: 1\n", 5), 0);
	memdiag_open(&m);
	struct kl_ynode *root = kl_yaml_load_file(path, &m.d);
	assert_non_null(root);
	assert_string_equal(kl_ymap_get(root, "x")->str, "1");
	kl_yaml_free(root);
	memdiag_close(&m);

	char *missing = path_in(dir, "missing.yml");
	memdiag_open(&m);
	assert_null(kl_yaml_load_file(missing, &m.d));
	kl_buf_reset(&want);
	kl_buf_appendf(&want, "%s: cannot read: No such file or directory\n", missing);
	assert_string_equal(memdiag_text(&m), want.p);
	assert_int_equal(m.d.errors, 1);
	memdiag_close(&m);

	kl_buf_free(&want);
	unlink(path);
	rmdir(dir);
	free(missing);
	free(path);
	free(dir);
}

/* ------------------------------------------------------------------------- */
/* kl_ynode_source_pos: from a byte of a scalar's value back to the file */

/* Assert that byte off of n's value is written at line:col. */
#define assert_pos(n, off, line, col)                                            \
	do {                                                                       \
		int l_ = -1, c_ = -1;                                              \
		assert_int_equal(kl_ynode_source_pos((n), (off), &l_, &c_), 0);  \
		assert_int_equal(l_, (line));                                      \
		assert_int_equal(c_, (col));                                       \
	} while (0)

/* The offset of the first sub in n's value. */
static size_t value_off(const struct kl_ynode *n, const char *sub)
{
	const char *p = strstr(n->str, sub);
	assert_non_null(p);
	return (size_t)(p - n->str);
}

/* Load text and return the value of key (the tree in *root). */
static const struct kl_ynode *yget(const char *text, const char *key, struct kl_ynode **root)
{
	struct memdiag m;
	memdiag_open(&m);
	*root = yload(text, &m);
	assert_non_null(*root);
	assert_int_equal(m.d.errors, 0);
	memdiag_close(&m);
	const struct kl_ynode *n = kl_ymap_get(*root, key);
	assert_non_null(n);
	return n;
}

/* The same for a scalar value. */
static const struct kl_ynode *ykey(const char *text, const char *key, struct kl_ynode **root)
{
	const struct kl_ynode *n = yget(text, key, root);
	assert_int_equal(n->type, KL_Y_SCALAR);
	return n;
}

static void test_source_pos_plain(void **state)
{
	(void)state;
	struct kl_ynode *root;
	/* one line: the scalar's column plus the offset */
	const struct kl_ynode *n = ykey("expr: count(stauts > 1) > 0\n", "expr", &root);
	assert_string_equal(n->str, "count(stauts > 1) > 0");
	assert_int_equal(n->src_off, 6);
	assert_int_equal(n->src_len, 21);
	assert_memory_equal(n->src, "count(stauts > 1) > 0", 21);
	assert_pos(n, 0, 1, 7);
	assert_pos(n, value_off(n, "stauts"), 1, 13);
	assert_pos(n, n->len, 1, 28); /* just after the value */
	kl_yaml_free(root);

	/* several lines: a break folded into a space is at the end of its
	 * line, the next line's indentation is skipped */
	n = ykey("a:\n  count(x) > 0 and\n    count(stauts) > 1\n", "a", &root);
	assert_string_equal(n->str, "count(x) > 0 and count(stauts) > 1");
	assert_pos(n, 0, 2, 3);
	assert_pos(n, 16, 2, 19);
	assert_pos(n, value_off(n, "count(stauts"), 3, 5);
	assert_pos(n, value_off(n, "stauts"), 3, 11);
	assert_pos(n, n->len, 3, 22);
	kl_yaml_free(root);

	/* an empty line is a line break of the value */
	n = ykey("p: one\n\n  two  three\n", "p", &root);
	assert_string_equal(n->str, "one\ntwo  three");
	assert_pos(n, 3, 2, 1);
	assert_pos(n, 4, 3, 3);
	assert_pos(n, value_off(n, "  three"), 3, 6);
	assert_pos(n, value_off(n, "three"), 3, 8);
	kl_yaml_free(root);

	/* a tag and a comment before the value are skipped */
	n = ykey("t: !!str # note\n  x  y\n", "t", &root);
	assert_string_equal(n->str, "x  y");
	assert_int_equal(n->line, 1);
	assert_int_equal(n->col, 4);
	assert_pos(n, 0, 2, 3);
	assert_pos(n, 3, 2, 6);
	kl_yaml_free(root);
}

static void test_source_pos_single(void **state)
{
	(void)state;
	struct kl_ynode *root;
	const struct kl_ynode *n = ykey("s: 'it''s ''x'' and stauts'\n", "s", &root);
	assert_string_equal(n->str, "it's 'x' and stauts");
	assert_int_equal(n->src_off, 3);
	assert_int_equal(n->src_len, 24);
	assert_memory_equal(n->src, "'it''s ''x'' and stauts'", 24);
	assert_pos(n, 0, 1, 5);
	assert_pos(n, 2, 1, 7); /* '' is one quote, at its first */
	assert_pos(n, 3, 1, 9);
	assert_pos(n, 5, 1, 11);
	assert_pos(n, 6, 1, 13);
	assert_pos(n, 7, 1, 14);
	assert_pos(n, 8, 1, 16);
	assert_pos(n, value_off(n, "stauts"), 1, 21);
	assert_pos(n, n->len, 1, 27); /* the closing quote */
	kl_yaml_free(root);

	/* folded over lines */
	n = ykey("s: 'a ''b''\n    c\n\n   d'\n", "s", &root);
	assert_string_equal(n->str, "a 'b' c\nd");
	assert_pos(n, 5, 1, 12);
	assert_pos(n, 6, 2, 5);
	assert_pos(n, 7, 3, 1);
	assert_pos(n, 8, 4, 4);
	kl_yaml_free(root);
}

static void test_source_pos_double(void **state)
{
	(void)state;
	struct kl_ynode *root;
	/* every kind of escape is one place, whatever it yields */
	const struct kl_ynode *n =
		ykey("d: \"a\\\\b\\\"c\\nd\\te\\x41f\\u00e9g\\u20ach\\U0001F600i stauts\"\n", "d",
		     &root);
	assert_int_equal(n->len, 30);
	assert_memory_equal(n->str, "a\\b\"c\nd\teAf\xc3\xa9g\xe2\x82\xach\xf0\x9f\x98\x80i stauts", 30);
	static const struct {
		size_t off;
		int col;
	} want[] = {
		{ 0, 5 },   { 1, 6 },	{ 2, 8 },   { 3, 9 },	/* a \\ b \" */
		{ 4, 11 },  { 5, 12 },	{ 6, 14 },  { 7, 15 },	/* c \n d \t */
		{ 8, 17 },  { 9, 18 },	{ 10, 22 },		/* e \x41 f */
		{ 11, 23 }, { 12, 23 }, { 13, 29 },		/* \u00e9 (2 bytes) g */
		{ 14, 30 }, { 15, 30 }, { 16, 30 }, { 17, 36 }, /* \u20ac (3 bytes) h */
		{ 18, 37 }, { 21, 37 }, { 22, 47 },		/* \U0001F600 (4 bytes) i */
		{ 23, 48 }, { 24, 49 }, { 30, 55 },		/* ' ' stauts, the quote */
	};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		assert_pos(n, want[i].off, 1, want[i].col);
	kl_yaml_free(root);

	/* line folding, an escaped line break (nothing), an empty line (a
	 * break), a tab escaped at the end of a line */
	n = ykey("f: \"one\n    two \\\n  three\\\n\n  four\\t\n  five\"\n", "f", &root);
	assert_string_equal(n->str, "one two three\nfour\t five");
	assert_pos(n, 0, 1, 5);
	assert_pos(n, 3, 1, 8);
	assert_pos(n, 4, 2, 5);
	assert_pos(n, 7, 2, 8);
	assert_pos(n, value_off(n, "three"), 3, 3);
	assert_pos(n, value_off(n, "\n"), 4, 1);
	assert_pos(n, value_off(n, "four"), 5, 3);
	assert_pos(n, value_off(n, "\t"), 5, 7);
	assert_pos(n, value_off(n, " five"), 5, 9);
	assert_pos(n, value_off(n, "five"), 6, 3);
	assert_pos(n, n->len, 6, 7);
	kl_yaml_free(root);
}

static void test_source_pos_block(void **state)
{
	(void)state;
	struct kl_ynode *root;
	/* folded, stripped: the header and the indentation yield nothing */
	const struct kl_ynode *n = ykey("e: >-\n"
					"  count(status >= 500) > 0 and\n"
					"  count(stauts > 1) > 0\n"
					"\n"
					"  last\n"
					"x: 1\n",
					"e", &root);
	assert_string_equal(n->str, "count(status >= 500) > 0 and count(stauts > 1) > 0\nlast");
	assert_int_equal(n->line, 1);
	assert_int_equal(n->col, 4);
	assert_pos(n, 0, 2, 3);
	assert_pos(n, 28, 2, 31); /* the folded break */
	assert_pos(n, value_off(n, "stauts"), 3, 9);
	assert_pos(n, value_off(n, "\n"), 4, 1);
	assert_pos(n, value_off(n, "last"), 5, 3);
	assert_pos(n, n->len, 5, 7);
	kl_yaml_free(root);

	/* literal: every break stays, more indentation is content */
	n = ykey("l: |\n  one\n    two\n  three\n", "l", &root);
	assert_string_equal(n->str, "one\n  two\nthree\n");
	assert_memory_equal(n->src, "|\n  one\n    two\n  three\n", n->src_len);
	assert_pos(n, 0, 2, 3);
	assert_pos(n, 3, 2, 6);
	assert_pos(n, 4, 3, 3);
	assert_pos(n, 6, 3, 5);
	assert_pos(n, 9, 3, 8);
	assert_pos(n, 10, 4, 3);
	assert_pos(n, 15, 4, 8);
	kl_yaml_free(root);

	/* an indentation indicator, relative to the enclosing mapping; a
	 * comment after the header */
	n = yget("m:\n  k: |2- # c\n     x\n    y\n", "m", &root);
	n = kl_ymap_get(n, "k");
	assert_non_null(n);
	assert_string_equal(n->str, " x\ny");
	assert_int_equal(n->src_indent, 2);
	assert_pos(n, 0, 3, 5);
	assert_pos(n, 1, 3, 6);
	assert_pos(n, 3, 4, 5);
	kl_yaml_free(root);
}

/* Columns count characters, as in every other report. */
static void test_source_pos_utf8(void **state)
{
	(void)state;
	struct kl_ynode *root;
	const struct kl_ynode *n = ykey("u: '\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 stauts'\n", "u", &root);
	assert_int_equal(n->src_len, 1 + 2 + 3 + 4 + 8);
	assert_pos(n, 0, 1, 5);
	assert_pos(n, 2, 1, 6);
	assert_pos(n, 5, 1, 7);
	assert_pos(n, value_off(n, "stauts"), 1, 9);
	kl_yaml_free(root);

	/* a BOM (no column) and CR LF line ends; src_off counts bytes */
	n = ykey("\xef\xbb\xbf" "a: \xc3\xa9\r\nc: >\r\n  one\r\n  \xc3\xa9 two\r\n", "c", &root);
	assert_string_equal(n->str, "one \xc3\xa9 two\n");
	assert_pos(n, 0, 3, 3);
	assert_pos(n, 3, 3, 6);
	assert_pos(n, value_off(n, "two"), 4, 5);
	const struct kl_ynode *a = kl_ymap_get(root, "a");
	assert_int_equal(a->col, 4);
	assert_int_equal(a->src_off, 6);
	assert_int_equal(a->src_len, 2);
	assert_pos(a, 2, 1, 5);
	kl_yaml_free(root);
}

/* Failures leave the scalar's own place, ready for a report. */
static void test_source_pos_errors(void **state)
{
	(void)state;
	struct kl_ynode *root;
	const struct kl_ynode *n = yget("k:\n  v: \"x\\ty\"\n", "k", &root);
	int line = -1, col = -1;
	assert_int_equal(kl_ynode_source_pos(NULL, 0, &line, &col), -EINVAL);
	assert_int_equal(line, 0);
	assert_int_equal(col, 0);
	assert_int_equal(kl_ynode_source_pos(n, 0, &line, &col), -EINVAL); /* a mapping */
	assert_int_equal(line, 2);
	assert_int_equal(col, 3);
	const struct kl_ynode *v = kl_ymap_get(n, "v");
	assert_int_equal(kl_ynode_source_pos(v, v->len + 1, &line, &col), -EINVAL);
	assert_int_equal(line, 2);
	assert_int_equal(col, 6);

	/* no source text kept */
	struct kl_ynode copy = *v;
	copy.src = NULL;
	line = col = -1;
	assert_int_equal(kl_ynode_source_pos(&copy, 0, &line, &col), -ENOENT);
	assert_int_equal(line, 2);
	assert_int_equal(col, 6);
	/* a source that does not give back the value: never a guess */
	char other[] = "x\tz";
	copy = *v;
	copy.str = other;
	assert_pos(&copy, 1, 2, 8);
	assert_int_equal(kl_ynode_source_pos(&copy, 2, &line, &col), -ENOENT);
	assert_int_equal(line, 2);
	assert_int_equal(col, 6);
	copy.plain = true; /* a quoted text for a plain scalar */
	assert_int_equal(kl_ynode_source_pos(&copy, 0, &line, &col), -ENOENT);
	kl_yaml_free(root);

	/* a UTF-16 document: marks are fine, the text is not kept */
	static const char u16[] = "\xff\xfe" "a\0:\0 \0x\0\n\0";
	struct memdiag m;
	memdiag_open(&m);
	root = kl_yaml_load_mem("t.yml", u16, sizeof u16 - 1, &m.d);
	assert_non_null(root);
	memdiag_close(&m);
	v = kl_ymap_get(root, "a");
	assert_non_null(v);
	assert_null(v->src);
	assert_int_equal(kl_ynode_source_pos(v, 0, &line, &col), -ENOENT);
	assert_int_equal(line, 1);
	assert_int_equal(col, 4);
	kl_yaml_free(root);
}

/* Every byte of every scalar of a document in all styles maps to a place
 * that holds that byte (or the escape that makes it). */
static void check_scalars(const struct kl_ynode *n, const char *doc)
{
	if (n->type != KL_Y_SCALAR) {
		for (size_t i = 0; i < n->n; i++) {
			if (n->keys)
				check_scalars(n->keys[i], doc);
			check_scalars(n->items[i], doc);
		}
		return;
	}
	assert_non_null(n->src);
	assert_memory_equal(doc + n->src_off, n->src, n->src_len);
	for (size_t off = 0; off <= n->len; off++) {
		int line, col;
		assert_int_equal(kl_ynode_source_pos(n, off, &line, &col), 0);
		const char *p = doc; /* ASCII, LF: columns are bytes */
		for (int l = 1; l < line; l++)
			p = strchr(p, '\n') + 1;
		p += col - 1;
		if (off == n->len)
			continue;
		char c = n->str[off];
		if (c == ' ' || c == '\n')
			assert_true(*p == ' ' || *p == '\n' || *p == '\\');
		else
			assert_true(*p == c || *p == '\\');
	}
}

static void test_source_pos_all(void **state)
{
	(void)state;
	static const char doc[] = "plain: a b\n"
				  "  c\n"
				  "\n"
				  "  d\n"
				  "single: 'a ''b''\n"
				  "\n"
				  "  c'\n"
				  "double: \"a\\tb \\\"c\\\"\n"
				  "  d\\\n"
				  "  e \\x41\"\n"
				  "list:\n"
				  "- |+\n"
				  "  keep\n"
				  "\n"
				  "- >2\n"
				  "   more\n"
				  "  less\n"
				  "   more\n"
				  "- {k: v, \"q\": 'w x', f: [y, z z]}\n"
				  "? complex key\n"
				  ": !!str |-\n"
				  "  tagged\n"
				  "last:\n";
	struct memdiag m;
	memdiag_open(&m);
	struct kl_ynode *root = yload(doc, &m);
	assert_non_null(root);
	assert_int_equal(m.d.errors, 0);
	memdiag_close(&m);
	check_scalars(root, doc);
	kl_yaml_free(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_strndup),
		cmocka_unit_test(test_buf),
		cmocka_unit_test(test_json_plain),
		cmocka_unit_test(test_json_controls),
		cmocka_unit_test(test_json_utf8_valid),
		cmocka_unit_test(test_json_utf8_invalid),
		cmocka_unit_test(test_json_random),
		cmocka_unit_test(test_json_appends),
		cmocka_unit_test(test_json_num),
		cmocka_unit_test(test_parse_ints),
		cmocka_unit_test(test_parse_double),
		cmocka_unit_test(test_duration),
		cmocka_unit_test(test_size),
		cmocka_unit_test(test_rfc3339),
		cmocka_unit_test(test_clocks),
		cmocka_unit_test(test_format_duration),
		cmocka_unit_test(test_log),
		cmocka_unit_test(test_diag),
		cmocka_unit_test(test_write_atomic),
		cmocka_unit_test(test_read_file),
		cmocka_unit_test(test_yaml_marks),
		cmocka_unit_test(test_yaml_scalar_nul),
		cmocka_unit_test(test_yaml_empty),
		cmocka_unit_test(test_yaml_alias),
		cmocka_unit_test(test_yaml_duplicates),
		cmocka_unit_test(test_yaml_bad_keys),
		cmocka_unit_test(test_yaml_syntax),
		cmocka_unit_test(test_yaml_depth),
		cmocka_unit_test(test_yaml_many_keys),
		cmocka_unit_test(test_yaml_first_document),
		cmocka_unit_test(test_yaml_file),
		cmocka_unit_test(test_source_pos_plain),
		cmocka_unit_test(test_source_pos_single),
		cmocka_unit_test(test_source_pos_double),
		cmocka_unit_test(test_source_pos_block),
		cmocka_unit_test(test_source_pos_utf8),
		cmocka_unit_test(test_source_pos_errors),
		cmocka_unit_test(test_source_pos_all),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
