/*
 * kl.c — the helpers declared in kl.h.
 *
 * Design notes and invariants:
 * - struct kl_buf keeps one spare byte: after any successful append, p[len] is
 *   a NUL, so a buffer holding text can be handed to C string functions. An
 *   append that fails leaves len (and the bytes before it) unchanged.
 * - JSON strings: the output is strict UTF-8 JSON. Plain printable ASCII is
 *   scanned eight bytes at a time, well-formed UTF-8 is checked and kept, and
 *   both are copied as one run up to the next byte that needs an escape or a
 *   replacement (the hot path of the events sink). Ill-formed UTF-8
 *   is replaced following Unicode's "maximal subpart" practice (Unicode 15,
 *   §3.9, U+FFFD substitution): each maximal prefix of a would-be sequence, or
 *   each stray byte, becomes one U+FFFD, written as the raw bytes EF BF BD.
 * - Numbers, durations and sizes are parsed by hand over [s, s+len): no
 *   leading/trailing blanks, no locale, overflow is -ERANGE, junk -EINVAL.
 *   Fractions in durations and sizes keep at most 9 digits and are truncated
 *   to whole microseconds / bytes.
 * - kl_format_duration writes the greedy decomposition over d, h, m, s, ms, us
 *   with zero parts left out: 90 s is "1m30s", 5400 s is "1h30m", 7 days "7d".
 *   It is exact and kl_parse_duration_us reads it back to the same value.
 */
#include "common/kl.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

char *kl_strndup(const char *s, size_t n)
{
	if (n == SIZE_MAX)
		return NULL;
	char *p = malloc(n + 1);
	if (!p)
		return NULL;
	if (n)
		memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

/* ------------------------------------------------------------------------- */
/* Growable buffer */

int kl_buf_reserve(struct kl_buf *b, size_t extra)
{
	if (extra > SIZE_MAX - b->len - 1)
		return -ENOMEM;
	size_t need = b->len + extra + 1; /* + the NUL */
	if (need <= b->cap)
		return 0;
	size_t ncap = b->cap < 64 ? 64 : b->cap;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2) {
			ncap = need;
			break;
		}
		ncap *= 2;
	}
	char *np = realloc(b->p, ncap);
	if (!np)
		return -ENOMEM;
	b->p = np;
	b->cap = ncap;
	return 0;
}

int kl_buf_append(struct kl_buf *b, const void *data, size_t n)
{
	int rc = kl_buf_reserve(b, n);
	if (rc < 0)
		return rc;
	if (n)
		memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

/* ---- binary encoding ---------------------------------------------------- */

int kl_buf_put_u64(struct kl_buf *b, uint64_t v)
{
	unsigned char tmp[10];
	size_t n = 0;
	do {
		unsigned char c = v & 0x7f;
		v >>= 7;
		tmp[n++] = (unsigned char)(c | (v ? 0x80 : 0));
	} while (v);
	return kl_buf_append(b, tmp, n);
}

int kl_buf_put_i64(struct kl_buf *b, int64_t v)
{
	/* zigzag: small magnitudes of either sign stay short */
	uint64_t u = (uint64_t)v;
	return kl_buf_put_u64(b, (u << 1) ^ (v < 0 ? UINT64_MAX : 0));
}

int kl_buf_put_f64(struct kl_buf *b, double v)
{
	uint64_t u;
	unsigned char tmp[8];
	memcpy(&u, &v, 8);
	for (int i = 0; i < 8; i++)
		tmp[i] = (unsigned char)(u >> (8 * i));
	return kl_buf_append(b, tmp, 8);
}

int kl_buf_put_bytes(struct kl_buf *b, const void *p, size_t n)
{
	int rc = kl_buf_put_u64(b, n);
	return rc < 0 ? rc : kl_buf_append(b, p, n);
}

uint64_t kl_rd_u64(struct kl_rd *r)
{
	uint64_t v = 0;
	for (unsigned shift = 0; !r->bad && shift < 64; shift += 7) {
		if (r->p == r->end)
			break;
		unsigned char c = *r->p++;
		if (shift == 63 && c > 1)
			break; /* more than 64 bits */
		v |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80))
			return v;
	}
	r->bad = true;
	return 0;
}

uint64_t kl_rd_count(struct kl_rd *r, uint64_t max)
{
	uint64_t v = kl_rd_u64(r);
	if (v > max)
		r->bad = true;
	return r->bad ? 0 : v;
}

int64_t kl_rd_i64(struct kl_rd *r)
{
	uint64_t u = kl_rd_u64(r);
	return (int64_t)((u >> 1) ^ (0 - (u & 1)));
}

double kl_rd_f64(struct kl_rd *r)
{
	uint64_t u = 0;
	double v;
	if (r->bad || r->end - r->p < 8) {
		r->bad = true;
		return 0;
	}
	for (int i = 0; i < 8; i++)
		u |= (uint64_t)r->p[i] << (8 * i);
	r->p += 8;
	memcpy(&v, &u, 8);
	return v;
}

struct kl_str kl_rd_bytes(struct kl_rd *r, size_t max)
{
	uint64_t n = kl_rd_count(r, max);
	if (r->bad || (uint64_t)(r->end - r->p) < n) {
		r->bad = true;
		return (struct kl_str){ "", 0 };
	}
	struct kl_str s = { (const char *)r->p, (size_t)n };
	r->p += n;
	return s;
}

int kl_buf_append_str(struct kl_buf *b, const char *s)
{
	return kl_buf_append(b, s, strlen(s));
}

int kl_buf_appendf(struct kl_buf *b, const char *fmt, ...)
{
	va_list ap, ap2;
	size_t avail = b->cap > b->len ? b->cap - b->len : 0;

	va_start(ap, fmt);
	va_copy(ap2, ap);
	int n = vsnprintf(avail ? b->p + b->len : NULL, avail, fmt, ap);
	va_end(ap);
	if (n < 0) {
		va_end(ap2);
		if (avail)
			b->p[b->len] = '\0';
		return -EINVAL;
	}
	if ((size_t)n >= avail) {
		int rc = kl_buf_reserve(b, (size_t)n);
		if (rc < 0) {
			va_end(ap2);
			if (avail)
				b->p[b->len] = '\0';
			return rc;
		}
		vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap2);
	}
	va_end(ap2);
	b->len += (size_t)n;
	return 0;
}

void kl_buf_free(struct kl_buf *b)
{
	if (!b)
		return;
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

/* ------------------------------------------------------------------------- */
/* JSON output */

#define ONES  UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)

/*
 * A mask with bit 7 of each of the 8 bytes of x set if that byte needs
 * attention: not in 0x20..0x7f, or '"', or '\\'. (hasless and haszero from
 * "Bit Twiddling Hacks".) Borrows may flag bytes above the first one that
 * needs attention, never below it: the lowest flag is exact, which is all that
 * is used.
 */
static inline uint64_t word_special(uint64_t x)
{
	uint64_t hi = x & HIGHS;
	uint64_t ctl = (x - ONES * 0x20) & ~x & HIGHS;
	uint64_t q = x ^ (ONES * '"');
	uint64_t bs = x ^ (ONES * '\\');
	uint64_t zq = (q - ONES) & ~q & HIGHS;
	uint64_t zb = (bs - ONES) & ~bs & HIGHS;
	return hi | ctl | zq | zb;
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define FIRST_SPECIAL(m) ((size_t)__builtin_ctzll(m) >> 3)
#else
#define FIRST_SPECIAL(m) ((size_t)0) /* then the byte loop finds it */
#endif

static inline bool byte_is_plain(unsigned char c)
{
	return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

/*
 * s[0] >= 0x80. Returns the length of the well-formed UTF-8 sequence at s
 * (2..4), or 0 when ill-formed; then *bad is the length of the maximal subpart
 * to replace by one U+FFFD (at least 1). Table 3-7 of the Unicode standard:
 * no overlongs (C0, C1, E0 80..9F, F0 80..8F), no surrogates (ED A0..BF), no
 * code points above U+10FFFF (F4 90.., F5..FF).
 */
size_t kl_utf8_seq(const unsigned char *s, size_t n, size_t *bad)
{
	unsigned c = s[0];
	unsigned lo = 0x80, hi = 0xbf;
	size_t need;

	if (c >= 0xc2 && c <= 0xdf) {
		need = 2;
	} else if (c == 0xe0) {
		need = 3;
		lo = 0xa0;
	} else if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef) {
		need = 3;
	} else if (c == 0xed) {
		need = 3;
		hi = 0x9f;
	} else if (c == 0xf0) {
		need = 4;
		lo = 0x90;
	} else if (c >= 0xf1 && c <= 0xf3) {
		need = 4;
	} else if (c == 0xf4) {
		need = 4;
		hi = 0x8f;
	} else {
		*bad = 1;
		return 0;
	}
	if (n < 2 || s[1] < lo || s[1] > hi) {
		*bad = 1;
		return 0;
	}
	for (size_t i = 2; i < need; i++) {
		if (i >= n || s[i] < 0x80 || s[i] > 0xbf) {
			*bad = i;
			return 0;
		}
	}
	return need;
}

static const char hexdig[] = "0123456789abcdef";

/* kl_buf_reserve with the common case (room already there) inline. */
static inline int ensure(struct kl_buf *b, size_t extra)
{
	if (b->cap - b->len > extra) /* cap > len always holds once allocated */
		return 0;
	return kl_buf_reserve(b, extra);
}

/* Append the escape for one ASCII byte that is not plain. Room for 6 bytes
 * has been reserved by the caller. */
static size_t put_escape(char *o, unsigned char c)
{
	o[0] = '\\';
	switch (c) {
	case '"': o[1] = '"'; return 2;
	case '\\': o[1] = '\\'; return 2;
	case '\b': o[1] = 'b'; return 2;
	case '\f': o[1] = 'f'; return 2;
	case '\n': o[1] = 'n'; return 2;
	case '\r': o[1] = 'r'; return 2;
	case '\t': o[1] = 't'; return 2;
	default:
		o[1] = 'u';
		o[2] = '0';
		o[3] = '0';
		o[4] = hexdig[c >> 4];
		o[5] = hexdig[c & 0xf];
		return 6;
	}
}

/*
 * One pass: bytes that pass unchanged (plain ASCII, found eight at a time,
 * and well-formed UTF-8 sequences) accumulate in a run [start, i) that is
 * copied in one memcpy when an escape or a replacement interrupts it, or at
 * the end.
 */
int kl_json_append_str(struct kl_buf *b, const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t start = 0, i = 0, n, bad;
	size_t oldlen = b->len;

	/* enough for the common case: nothing to escape */
	if (len > SIZE_MAX - 2 || ensure(b, len + 2) < 0)
		return -ENOMEM;
	b->p[b->len++] = '"';
	while (i < len) {
		while (len - i >= 8) {
			uint64_t w;
			memcpy(&w, s + i, 8);
			uint64_t m = word_special(w);
			if (m) {
				i += FIRST_SPECIAL(m);
				break;
			}
			i += 8;
		}
		if (i == len)
			break;
		unsigned char c = s[i];
		if (byte_is_plain(c)) {
			i++;
			continue;
		}
		bad = 1;
		if (c >= 0x80) {
			n = kl_utf8_seq(s + i, len - i, &bad);
			if (n) {
				i += n;
				continue;
			}
		}
		/* flush the run, then up to 6 bytes of escape, + the closing quote */
		if (ensure(b, i - start + 7) < 0)
			goto fail;
		memcpy(b->p + b->len, s + start, i - start);
		b->len += i - start;
		if (c < 0x80) {
			b->len += put_escape(b->p + b->len, c);
		} else {
			memcpy(b->p + b->len, "\xef\xbf\xbd", 3);
			b->len += 3;
		}
		i += bad;
		start = i;
	}
	if (ensure(b, len - start + 1) < 0)
		goto fail;
	memcpy(b->p + b->len, s + start, len - start);
	b->len += len - start;
	b->p[b->len++] = '"';
	b->p[b->len] = '\0';
	return 0;
fail:
	b->len = oldlen;
	b->p[b->len] = '\0';
	return -ENOMEM;
}

int kl_json_append_num(struct kl_buf *b, double v)
{
	char tmp[40];
	int n;

	if (!isfinite(v))
		return kl_buf_append(b, "null", 4);
	if (fabs(v) < 9007199254740992.0 && v == trunc(v)) {
		n = snprintf(tmp, sizeof tmp, "%" PRId64, (int64_t)v);
	} else {
		static const char *const fmts[] = { "%.15g", "%.16g", "%.17g" };
		n = 0;
		for (size_t k = 0; k < KL_ARRAY_LEN(fmts); k++) {
			/* fmts[] are fixed literals; the one used is chosen by index */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
			n = snprintf(tmp, sizeof tmp, fmts[k], v);
#pragma GCC diagnostic pop
			if (n < 0 || (size_t)n >= sizeof tmp)
				return -EINVAL;
			if (strtod(tmp, NULL) == v)
				break;
		}
	}
	if (n < 0 || (size_t)n >= sizeof tmp)
		return -EINVAL;
	return kl_buf_append(b, tmp, (size_t)n);
}

/* ------------------------------------------------------------------------- */
/* Bounded parsing */

static inline bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Unsigned decimal digits only, the whole of s[0..len). */
static int parse_digits(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;

	if (len == 0)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (!is_digit(s[i]))
			return -EINVAL;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

int kl_parse_u64(const char *s, size_t len, uint64_t *out)
{
	return parse_digits(s, len, out);
}

int kl_parse_i64(const char *s, size_t len, int64_t *out)
{
	bool neg = len > 0 && s[0] == '-';
	uint64_t v;
	int rc = parse_digits(s + neg, len - neg, &v);

	if (rc < 0)
		return rc;
	if (neg) {
		if (v > (uint64_t)INT64_MAX + 1)
			return -ERANGE;
		*out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
	} else {
		if (v > (uint64_t)INT64_MAX)
			return -ERANGE;
		*out = (int64_t)v;
	}
	return 0;
}

/* Length of the run of digits at s[i..len). */
static size_t digits_at(const char *s, size_t i, size_t len)
{
	size_t j = i;
	while (j < len && is_digit(s[j]))
		j++;
	return j - i;
}

int kl_parse_double(const char *s, size_t len, double *out)
{
	char tmp[256];
	size_t i = 0;

	/* [-+]? (digits [. digits?] | . digits) ([eE] [-+]? digits)? */
	if (i < len && (s[i] == '-' || s[i] == '+'))
		i++;
	size_t ip = digits_at(s, i, len);
	i += ip;
	size_t fp = 0;
	if (i < len && s[i] == '.') {
		i++;
		fp = digits_at(s, i, len);
		i += fp;
	}
	if (ip + fp == 0)
		return -EINVAL;
	if (i < len && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < len && (s[i] == '-' || s[i] == '+'))
			i++;
		size_t ep = digits_at(s, i, len);
		if (ep == 0)
			return -EINVAL;
		i += ep;
	}
	if (i != len || len >= sizeof tmp)
		return -EINVAL;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	errno = 0;
	char *end;
	double v = strtod(tmp, &end);
	if (end != tmp + len)
		return -EINVAL;
	if (isinf(v))
		return -ERANGE;
	/* underflow (ERANGE with a tiny result) is accepted as that result */
	*out = v;
	return 0;
}

/*
 * A non-negative decimal "I[.F]" at s[*pos..len) → integer part and up to 9
 * fraction digits as a numerator over 10^*fdig (further digits truncated).
 * Advances *pos. -EINVAL if there is no number, -ERANGE if I overflows.
 */
static int parse_decimal(const char *s, size_t len, size_t *pos, uint64_t *ip, uint64_t *frac,
			 unsigned *fdig)
{
	size_t i = *pos;
	size_t n = digits_at(s, i, len);
	uint64_t f = 0;
	unsigned fd = 0;

	if (n == 0)
		return -EINVAL;
	int rc = parse_digits(s + i, n, ip);
	if (rc < 0)
		return rc;
	i += n;
	if (i < len && s[i] == '.') {
		i++;
		n = digits_at(s, i, len);
		if (n == 0)
			return -EINVAL;
		for (size_t k = 0; k < n; k++) {
			if (fd < 9) {
				f = f * 10 + (uint64_t)(s[i + k] - '0');
				fd++;
			}
		}
		i += n;
	}
	*frac = f;
	*fdig = fd;
	*pos = i;
	return 0;
}

static uint64_t pow10u(unsigned n)
{
	uint64_t p = 1;
	while (n--)
		p *= 10;
	return p;
}

/*
 * ip * mul + (frac / 10^fdig) * mul, truncated; -ERANGE above max. The
 * fraction is split as frac * (mul / den) + frac * (mul % den) / den so that
 * nothing overflows: frac < den ≤ 10^9 makes the first ≤ mul and the second
 * product < 10^18.
 */
static int scale(uint64_t ip, uint64_t frac, unsigned fdig, uint64_t mul, uint64_t max,
		 uint64_t *out)
{
	if (ip != 0 && ip > max / mul)
		return -ERANGE;
	uint64_t v = ip * mul;
	uint64_t den = pow10u(fdig);
	/* frac * mul / den, computed as (frac * (mul / den)) + frac * (mul % den) / den */
	uint64_t q = mul / den, r = mul % den;
	uint64_t fpart = frac * q + (frac * r) / den; /* frac, r < den ≤ 10^9: fits */
	if (fpart > max - v)
		return -ERANGE;
	*out = v + fpart;
	return 0;
}

struct unit {
	const char *name;
	uint64_t mul;
};

static const struct unit duration_units[] = {
	{ "us", 1 },
	{ "ms", 1000 },
	{ "s", 1000000 },
	{ "m", UINT64_C(60000000) },
	{ "h", UINT64_C(3600000000) },
	{ "d", UINT64_C(86400000000) },
	{ "w", UINT64_C(604800000000) },
};

int kl_parse_duration_us(const char *s, size_t len, int64_t *out_us)
{
	uint64_t total = 0;
	size_t i = 0;

	if (len == 0)
		return -EINVAL;
	while (i < len) {
		size_t start = i;
		uint64_t ip, frac, part, mul = 0;
		unsigned fdig;
		int rc = parse_decimal(s, len, &i, &ip, &frac, &fdig);
		if (rc < 0)
			return rc;
		size_t u = i;
		while (i < len && s[i] >= 'a' && s[i] <= 'z')
			i++;
		if (i == u) {
			/* a bare number is seconds, and only as the whole string */
			if (start != 0 || i != len)
				return -EINVAL;
			mul = 1000000;
		} else {
			for (size_t k = 0; k < KL_ARRAY_LEN(duration_units); k++) {
				if (strlen(duration_units[k].name) == i - u &&
				    memcmp(duration_units[k].name, s + u, i - u) == 0) {
					mul = duration_units[k].mul;
					break;
				}
			}
			if (mul == 0)
				return -EINVAL;
		}
		rc = scale(ip, frac, fdig, mul, (uint64_t)INT64_MAX, &part);
		if (rc < 0)
			return rc;
		if (part > (uint64_t)INT64_MAX - total)
			return -ERANGE;
		total += part;
	}
	*out_us = (int64_t)total;
	return 0;
}

static const struct unit size_units[] = {
	{ "b", 1 },
	{ "kb", UINT64_C(1000) },
	{ "mb", UINT64_C(1000000) },
	{ "gb", UINT64_C(1000000000) },
	{ "tb", UINT64_C(1000000000000) },
	{ "kib", UINT64_C(1) << 10 },
	{ "mib", UINT64_C(1) << 20 },
	{ "gib", UINT64_C(1) << 30 },
	{ "tib", UINT64_C(1) << 40 },
};

static inline char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Units are matched without regard to case: "64KiB", "64kib", "10MB", "10mb". */
int kl_parse_size(const char *s, size_t len, uint64_t *out)
{
	uint64_t ip, frac, mul = 0;
	unsigned fdig;
	size_t i = 0;
	int rc = parse_decimal(s, len, &i, &ip, &frac, &fdig);

	if (rc < 0)
		return rc;
	size_t ulen = len - i;
	if (ulen == 0) {
		mul = 1;
	} else {
		for (size_t k = 0; k < KL_ARRAY_LEN(size_units) && !mul; k++) {
			const char *name = size_units[k].name;
			if (strlen(name) != ulen)
				continue;
			size_t j = 0;
			while (j < ulen && lower(s[i + j]) == name[j])
				j++;
			if (j == ulen)
				mul = size_units[k].mul;
		}
		if (!mul)
			return -EINVAL;
	}
	uint64_t v;
	rc = scale(ip, frac, fdig, mul, UINT64_MAX, &v);
	if (rc < 0)
		return rc;
	*out = v;
	return 0;
}

/* ------------------------------------------------------------------------- */
/* Time */

static int64_t clock_us(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t kl_wall_us(void)
{
	return clock_us(CLOCK_REALTIME);
}

int64_t kl_mono_us(void)
{
	return clock_us(CLOCK_MONOTONIC);
}

/* Howard Hinnant's days_from_civil / civil_from_days (public domain). */
int64_t kl_days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;					  /* [0, 399] */
	int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; /* [0, 365] */
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;		  /* [0, 146096] */
	return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
	*m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

/* Floor division and its non-negative remainder. */
static int64_t floordiv(int64_t a, int64_t b, int64_t *rem)
{
	int64_t q = a / b, r = a % b;
	if (r < 0) {
		r += b;
		q--;
	}
	*rem = r;
	return q;
}

/*
 * Years outside 0000..9999 cannot be written in RFC 3339; they are written
 * with as many digits as they need (and a '-' before the year), so any
 * int64_t gives a readable, if non-standard, string.
 */
size_t kl_format_rfc3339(int64_t us, bool millis, char *out)
{
	int64_t rem_us, rem_s;
	int64_t secs = floordiv(us, 1000000, &rem_us);
	int64_t days = floordiv(secs, 86400, &rem_s);
	int64_t y;
	unsigned m, d;

	civil_from_days(days, &y, &m, &d);
	unsigned hh = (unsigned)(rem_s / 3600), mm = (unsigned)(rem_s / 60 % 60),
		 ss = (unsigned)(rem_s % 60);
	int n;
	if (millis)
		n = snprintf(out, KL_RFC3339_MAX, "%04" PRId64 "-%02u-%02uT%02u:%02u:%02u.%03uZ",
			     y, m, d, hh, mm, ss, (unsigned)(rem_us / 1000));
	else
		n = snprintf(out, KL_RFC3339_MAX, "%04" PRId64 "-%02u-%02uT%02u:%02u:%02uZ", y, m,
			     d, hh, mm, ss);
	if (n < 0) {
		out[0] = '\0';
		return 0;
	}
	return (size_t)n < KL_RFC3339_MAX ? (size_t)n : KL_RFC3339_MAX - 1;
}

size_t kl_format_duration(int64_t us, char *out)
{
	static const struct unit parts[] = {
		{ "d", UINT64_C(86400000000) }, { "h", UINT64_C(3600000000) },
		{ "m", UINT64_C(60000000) },	{ "s", 1000000 },
		{ "ms", 1000 },			{ "us", 1 },
	};
	/* the magnitude as unsigned, so INT64_MIN is fine too */
	uint64_t v = us < 0 ? (uint64_t)0 - (uint64_t)us : (uint64_t)us;
	size_t n = 0;

	if (us == 0) {
		memcpy(out, "0s", 3);
		return 2;
	}
	if (us < 0)
		out[n++] = '-';
	for (size_t k = 0; k < KL_ARRAY_LEN(parts); k++) {
		uint64_t q = v / parts[k].mul;
		if (q == 0)
			continue;
		v -= q * parts[k].mul;
		int w = snprintf(out + n, 32 - n, "%" PRIu64 "%s", q, parts[k].name);
		if (w < 0 || (size_t)w >= 32 - n)
			break; /* cannot happen: at most 27 bytes in all */
		n += (size_t)w;
	}
	out[n] = '\0';
	return n;
}

/* ------------------------------------------------------------------------- */
/* Logging and problem reports */

static bool log_quiet;
static int log_debug = -1; /* -1: not looked up yet */

void kl_log_set_quiet(bool quiet)
{
	log_quiet = quiet;
}

static const char *const level_names[] = {
	[KL_LOG_ERROR] = "error",
	[KL_LOG_WARN] = "warning",
	[KL_LOG_INFO] = "info",
	[KL_LOG_DEBUG] = "debug",
};

void kl_log(enum kl_level lvl, const char *fmt, ...)
{
	if (lvl == KL_LOG_DEBUG) {
		if (log_debug < 0) {
			const char *e = getenv("KLAXON_DEBUG");
			log_debug = e && strcmp(e, "1") == 0;
		}
		if (!log_debug)
			return;
	} else if (lvl == KL_LOG_INFO && log_quiet) {
		return;
	}
	if ((unsigned)lvl >= KL_ARRAY_LEN(level_names))
		lvl = KL_LOG_ERROR;

	va_list ap;
	va_start(ap, fmt);
	flockfile(stderr);
	fprintf(stderr, "klaxon: %s: ", level_names[lvl]);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	funlockfile(stderr);
	va_end(ap);
}

void kl_diag_error(struct kl_diag *d, const char *file, int line, int col, const char *fmt, ...)
{
	FILE *out = d && d->out ? d->out : stderr;
	va_list ap;

	if (!file)
		file = "<input>";
	flockfile(out);
	if (line > 0 && col > 0)
		fprintf(out, "%s:%d:%d: ", file, line, col);
	else if (line > 0)
		fprintf(out, "%s:%d: ", file, line);
	else
		fprintf(out, "%s: ", file);
	va_start(ap, fmt);
	vfprintf(out, fmt, ap);
	va_end(ap);
	fputc('\n', out);
	funlockfile(out);
	if (d)
		d->errors++;
}

/* ------------------------------------------------------------------------- */
/* Files */

static int write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (w == 0)
			return -EIO;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/* Open the directory holding path (for fsync). */
static int open_parent_dir(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	size_t n;

	if (!slash) {
		dir[0] = '.';
		n = 1;
	} else {
		n = slash == path ? 1 : (size_t)(slash - path);
		if (n >= sizeof dir)
			return -ENAMETOOLONG;
		memcpy(dir, path, n);
	}
	dir[n] = '\0';
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/*
 * If the final fsync of the directory fails, PATH has already been replaced
 * (rename is done) but the replacement may not be durable: the error is
 * returned all the same, so the caller does not drop what it depends on.
 */
int kl_write_file_atomic(const char *path, const void *data, size_t len)
{
	char tmp[PATH_MAX];
	size_t plen = strlen(path);
	int fd = -1, dfd = -1, rc;
	bool created = false;

	if (plen + sizeof ".tmp" > sizeof tmp)
		return -ENAMETOOLONG;
	memcpy(tmp, path, plen);
	memcpy(tmp + plen, ".tmp", sizeof ".tmp");

	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		goto fail;
	}
	created = true;
	rc = write_all(fd, data, len);
	if (rc < 0)
		goto fail;
	if (fsync(fd) < 0) {
		rc = -errno;
		goto fail;
	}
	rc = close(fd);
	fd = -1;
	if (rc < 0) {
		rc = -errno;
		goto fail;
	}
	if (rename(tmp, path) < 0) {
		rc = -errno;
		goto fail;
	}
	created = false;
	dfd = open_parent_dir(path);
	if (dfd < 0)
		return dfd;
	rc = fsync(dfd) < 0 ? -errno : 0;
	close(dfd);
	return rc;
fail:
	if (fd >= 0)
		close(fd);
	if (created)
		unlink(tmp);
	return rc;
}

/* Reads until EOF (so a pipe or /dev/fd/N works too); st_size is only a hint. */
int kl_read_file(const char *path, size_t max, char **out, size_t *outlen)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0, cap;
	int rc;
	int fd;

	if (max > SIZE_MAX / 2)
		max = SIZE_MAX / 2; /* so that max + 1 and doubling cannot wrap */
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto fail;
	}
	if (S_ISDIR(st.st_mode)) {
		rc = -EISDIR;
		goto fail;
	}
	if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > max) {
		rc = -EFBIG;
		goto fail;
	}
	cap = S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : 4096;
	if (cap > max + 1)
		cap = max + 1;
	buf = malloc(cap);
	if (!buf) {
		rc = -ENOMEM;
		goto fail;
	}
	for (;;) {
		if (len + 1 == cap) {
			if (len >= max) {
				/* one more byte would exceed max: probe for EOF */
				char c;
				ssize_t r = read(fd, &c, 1);
				if (r < 0 && errno == EINTR)
					continue;
				if (r < 0) {
					rc = -errno;
					goto fail;
				}
				if (r > 0) {
					rc = -EFBIG;
					goto fail;
				}
				break;
			}
			size_t ncap = cap * 2 > max + 1 || cap * 2 < cap ? max + 1 : cap * 2;
			char *nb = realloc(buf, ncap);
			if (!nb) {
				rc = -ENOMEM;
				goto fail;
			}
			buf = nb;
			cap = ncap;
		}
		ssize_t r = read(fd, buf + len, cap - 1 - len);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			goto fail;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	return 0;
fail:
	free(buf);
	close(fd);
	return rc;
}
