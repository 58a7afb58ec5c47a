/*
 * timefmt.c — event-time parsing: strptime-like formats and ISO 8601.
 *
 * A format is compiled once (timefmt_compile) into a list of ops; parsing runs
 * the ops over the whole text (trailing bytes are an error), validates the
 * calendar date (no month 13, no 30 February, no hour 24; a leap second :60 is
 * accepted as RFC 3339 allows) and converts to µs since the epoch, UTC, with
 * kl_days_from_civil. No libc time functions: no locale, no TZ, no allocation.
 *
 * The cache: parsing the same text twice gives the same result, so the last
 * text that parsed is kept with its result and compared first. Log lines come
 * in bursts from the same second, so the slow path runs about once a second.
 * When the text has a fraction (%f after a literal, or ISO 8601's ".123"), the
 * key is the text around the fraction digits and the hit only converts the
 * digits. That is sound because every op before the fraction stops at or before
 * the literal just in front of it (so it sees only key bytes), the fraction
 * takes every digit, and the ops after it see only the (equal) suffix.
 *
 * Zone names (%Z, as PostgreSQL writes its log_timezone: "UTC", "CET", or a
 * numeric "+03" for zones without an abbreviation): a short table of the
 * abbreviations that mean one thing in the tz database. Others ("CST" is
 * both America/Chicago and Asia/Shanghai, "IST" three zones) do not parse:
 * the record counts as bad_time rather than taking a time that may be hours
 * off. Set log_timezone to UTC (or a zone in the table) to avoid them.
 *
 * "epoch": a number of seconds since 1970 ("1699999999.123", PostgreSQL's %n,
 * JSON logs' numeric times), or an integer count of ms, µs or ns (by
 * magnitude, see timefmt_epoch).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "parsers/parsers_int.h"

static const char tf_conv_name[][3] = {
	[TF_YEAR] = "%Y", [TF_MON] = "%m", [TF_MON_NAME] = "%b", [TF_DAY] = "%d",
	[TF_DAY_SP] = "%e", [TF_HOUR] = "%H", [TF_MIN] = "%M", [TF_SEC] = "%S",
	[TF_FRAC] = "%f", [TF_ZONE] = "%z", [TF_ZONE_NAME] = "%Z",
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

int timefmt_compile(struct timefmt *tf, const char *fmt, char *err, size_t errlen)
{
	unsigned seen = 0; /* bit per enum tf_kind already used */

	memset(tf, 0, sizeof *tf);
	tf->c_frac_pos = -1;
	if (!fmt || strcmp(fmt, "iso8601") == 0) {
		tf->iso = true;
		return 0;
	}
	if (strcmp(fmt, "epoch") == 0) {
		tf->epoch = true;
		return 0;
	}
	for (const char *f = fmt; *f; f++) {
		unsigned char k;
		if (tf->nops + 5 > TF_MAX_OPS) {
			set_err(err, errlen, "time.format: too long (at most %d conversions and literals)",
				TF_MAX_OPS - 5);
			return -EINVAL;
		}
		if (is_blank(*f)) {
			if (tf->nops == 0 || tf->ops[tf->nops - 1].kind != TF_SPACE)
				tf->ops[tf->nops++] = (struct tf_op){ TF_SPACE, ' ' };
			continue;
		}
		if (*f != '%') {
			tf->ops[tf->nops++] = (struct tf_op){ TF_LIT, *f };
			continue;
		}
		f++;
		switch (*f) {
		case 'Y': k = TF_YEAR; break;
		case 'm': k = TF_MON; break;
		case 'b': case 'h': k = TF_MON_NAME; break;
		case 'd': k = TF_DAY; break;
		case 'e': k = TF_DAY_SP; break;
		case 'H': k = TF_HOUR; break;
		case 'M': k = TF_MIN; break;
		case 'S': k = TF_SEC; break;
		case 'f': k = TF_FRAC; break;
		case 'z': k = TF_ZONE; break;
		case 'Z': k = TF_ZONE_NAME; break;
		case 'T':
			if (seen & (1u << TF_HOUR | 1u << TF_MIN | 1u << TF_SEC)) {
				set_err(err, errlen,
					"time.format: %%T repeats an hour, minute or second already in the format");
				return -EINVAL;
			}
			seen |= 1u << TF_HOUR | 1u << TF_MIN | 1u << TF_SEC;
			tf->ops[tf->nops++] = (struct tf_op){ TF_HOUR, 0 };
			tf->ops[tf->nops++] = (struct tf_op){ TF_LIT, ':' };
			tf->ops[tf->nops++] = (struct tf_op){ TF_MIN, 0 };
			tf->ops[tf->nops++] = (struct tf_op){ TF_LIT, ':' };
			tf->ops[tf->nops++] = (struct tf_op){ TF_SEC, 0 };
			continue;
		case '%':
			tf->ops[tf->nops++] = (struct tf_op){ TF_LIT, '%' };
			continue;
		case '\0':
			set_err(err, errlen, "time.format: ends with a lone '%%'");
			return -EINVAL;
		default:
			if ((unsigned char)*f >= 0x21 && (unsigned char)*f < 0x7f)
				set_err(err, errlen,
					"time.format: unknown conversion %%%c (known: %%Y %%m %%b %%d %%e %%H %%M %%S %%T %%f %%z %%Z %%%%; or 'iso8601', 'epoch')",
					*f);
			else
				set_err(err, errlen, "time.format: unknown conversion %%\\x%02X",
					(unsigned char)*f);
			return -EINVAL;
		}
		bool month = k == TF_MON || k == TF_MON_NAME, day = k == TF_DAY || k == TF_DAY_SP;
		bool zone = k == TF_ZONE || k == TF_ZONE_NAME;
		if ((seen & (1u << k)) ||
		    (zone && (seen & (1u << TF_ZONE | 1u << TF_ZONE_NAME))) ||
		    (month && (seen & (1u << TF_MON | 1u << TF_MON_NAME))) ||
		    (day && (seen & (1u << TF_DAY | 1u << TF_DAY_SP)))) {
			set_err(err, errlen, "time.format: %s appears twice (or with its twin)",
				tf_conv_name[k]);
			return -EINVAL;
		}
		seen |= 1u << k;
		tf->ops[tf->nops++] = (struct tf_op){ k, 0 };
	}
	if (!(seen & 1u << TF_YEAR) || !(seen & (1u << TF_MON | 1u << TF_MON_NAME)) ||
	    !(seen & (1u << TF_DAY | 1u << TF_DAY_SP))) {
		set_err(err, errlen,
			"time.format: needs a year (%%Y), a month (%%m or %%b) and a day (%%d or %%e)");
		return -EINVAL;
	}
	return 0;
}

/* The result of a full parse. */
struct tf_res {
	int64_t us;	   /* the instant, fraction included */
	int64_t frac_us;   /* the fraction's part of it */
	int frac_pos;	   /* -1: no cacheable fraction */
	size_t frac_len;
};

/* 1..maxw digits at s[*i]; advances *i. */
static bool take_num(const char *s, size_t len, size_t *i, unsigned minw, unsigned maxw, int *out)
{
	unsigned n = 0;
	int v = 0;
	while (n < maxw && *i < len && is_digit(s[*i])) {
		v = v * 10 + (s[*i] - '0');
		(*i)++;
		n++;
	}
	if (n < minw)
		return false;
	*out = v;
	return true;
}

/* Up to 6 digits of a fraction as µs (further digits truncated). */
static int64_t frac_to_us(const char *s, size_t n)
{
	int64_t v = 0;
	for (size_t k = 0; k < 6; k++)
		v = v * 10 + (k < n ? s[k] - '0' : 0);
	return v;
}

static size_t digit_run(const char *s, size_t len, size_t i)
{
	size_t j = i;
	while (j < len && is_digit(s[j]))
		j++;
	return j - i;
}

/* Z, z, +hh, +hhmm, +hh:mm (or -). Offset east of UTC in seconds. */
static bool take_zone(const char *s, size_t len, size_t *i, int *off_s)
{
	int hh, mm = 0;
	if (*i < len && (s[*i] == 'Z' || s[*i] == 'z')) {
		(*i)++;
		*off_s = 0;
		return true;
	}
	if (*i >= len || (s[*i] != '+' && s[*i] != '-'))
		return false;
	int sign = s[*i] == '-' ? -1 : 1;
	size_t j = *i + 1;
	if (digit_run(s, len, j) < 2)
		return false;
	hh = (s[j] - '0') * 10 + (s[j + 1] - '0');
	j += 2;
	size_t k = j < len && s[j] == ':' ? j + 1 : j;
	if (digit_run(s, len, k) >= 2) {
		mm = (s[k] - '0') * 10 + (s[k + 1] - '0');
		j = k + 2;
	}
	if (hh > 23 || mm > 59)
		return false;
	*off_s = sign * (hh * 3600 + mm * 60);
	*i = j;
	return true;
}

/* Zone abbreviations that mean one offset in the tz database (minutes east
 * of UTC). Ambiguous ones (CST, IST, ...) are left out on purpose. */
static const struct {
	char name[5];
	short min;
} zone_names[] = {
	{ "UTC", 0 },	   { "GMT", 0 },     { "UT", 0 },	{ "Z", 0 },	  { "WET", 0 },
	{ "WEST", 60 },	   { "BST", 60 },    { "CET", 60 },	{ "CEST", 120 },  { "MET", 60 },
	{ "MEST", 120 },   { "EET", 120 },   { "EEST", 180 },	{ "MSK", 180 },	  { "SAST", 120 },
	{ "WAT", 60 },	   { "CAT", 120 },   { "EAT", 180 },	{ "PKT", 300 },	  { "WIB", 420 },
	{ "HKT", 480 },	   { "AWST", 480 },  { "JST", 540 },	{ "KST", 540 },	  { "ACST", 570 },
	{ "ACDT", 630 },   { "AEST", 600 },  { "AEDT", 660 },	{ "NZST", 720 },  { "NZDT", 780 },
	{ "HST", -600 },   { "AKST", -540 }, { "AKDT", -480 },	{ "PST", -480 },  { "PDT", -420 },
	{ "MST", -420 },   { "MDT", -360 },  { "EST", -300 },	{ "EDT", -240 },  { "AST", -240 },
	{ "ADT", -180 },   { "NST", -210 },  { "NDT", -150 },
};

/* %Z: a name from the table, or what %z takes. */
static bool take_zone_name(const char *s, size_t len, size_t *i, int *off_s)
{
	size_t j = *i;
	while (j < len && ((s[j] >= 'A' && s[j] <= 'Z') || (s[j] >= 'a' && s[j] <= 'z')))
		j++;
	if (j == *i)
		return take_zone(s, len, i, off_s);
	size_t n = j - *i;
	for (size_t k = 0; k < KL_ARRAY_LEN(zone_names); k++) {
		if (strlen(zone_names[k].name) == n && memcmp(zone_names[k].name, s + *i, n) == 0) {
			*off_s = zone_names[k].min * 60;
			*i = j;
			return true;
		}
	}
	return false;
}

static int month_from_name(const char *s)
{
	static const char names[12][4] = { "jan", "feb", "mar", "apr", "may", "jun",
					   "jul", "aug", "sep", "oct", "nov", "dec" };
	char a = (char)(s[0] | 0x20), b = (char)(s[1] | 0x20), c = (char)(s[2] | 0x20);
	for (int m = 0; m < 12; m++)
		if (names[m][0] == a && names[m][1] == b && names[m][2] == c)
			return m + 1;
	return 0;
}

static bool is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m)
{
	static const unsigned char dim[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

/* Validate the calendar fields and convert; false on an impossible date. */
static bool to_us(int y, int mon, int d, int h, int mi, int sec, int off_s, int64_t frac,
		  int64_t *out)
{
	if (mon < 1 || mon > 12 || d < 1 || d > days_in_month(y, mon) || h > 23 || mi > 59 ||
	    sec > 60)
		return false;
	int64_t days = kl_days_from_civil(y, (unsigned)mon, (unsigned)d);
	int64_t secs = days * 86400 + h * 3600 + mi * 60 + sec - off_s;
	*out = secs * 1000000 + frac;
	return true;
}

static bool run_ops(const struct timefmt *tf, const char *s, size_t len, struct tf_res *r)
{
	int y = 0, mon = 1, d = 1, h = 0, mi = 0, sec = 0, off = 0;
	size_t i = 0;

	r->frac_us = 0;
	r->frac_pos = -1;
	r->frac_len = 0;
	for (unsigned k = 0; k < tf->nops; k++) {
		const struct tf_op *op = &tf->ops[k];
		switch ((enum tf_kind)op->kind) {
		case TF_LIT:
			if (i >= len || s[i] != op->c)
				return false;
			i++;
			break;
		case TF_SPACE:
			if (i >= len || !is_blank(s[i]))
				return false;
			while (i < len && is_blank(s[i]))
				i++;
			break;
		case TF_YEAR:
			if (!take_num(s, len, &i, 4, 4, &y))
				return false;
			break;
		case TF_MON:
			if (!take_num(s, len, &i, 1, 2, &mon))
				return false;
			break;
		case TF_MON_NAME:
			if (len - i < 3 || !(mon = month_from_name(s + i)))
				return false;
			i += 3;
			break;
		case TF_DAY_SP:
			if (i < len && s[i] == ' ')
				i++;
			/* fall through */
		case TF_DAY:
			if (!take_num(s, len, &i, 1, 2, &d))
				return false;
			break;
		case TF_HOUR:
			if (!take_num(s, len, &i, 1, 2, &h))
				return false;
			break;
		case TF_MIN:
			if (!take_num(s, len, &i, 1, 2, &mi))
				return false;
			break;
		case TF_SEC:
			if (!take_num(s, len, &i, 1, 2, &sec))
				return false;
			break;
		case TF_FRAC: {
			size_t n = digit_run(s, len, i);
			if (n == 0)
				return false;
			r->frac_us = frac_to_us(s + i, n);
			if (k > 0 && tf->ops[k - 1].kind == TF_LIT) {
				r->frac_pos = (int)i;
				r->frac_len = n;
			}
			i += n;
			break;
		}
		case TF_ZONE:
			if (!take_zone(s, len, &i, &off))
				return false;
			break;
		case TF_ZONE_NAME:
			if (!take_zone_name(s, len, &i, &off))
				return false;
			break;
		}
	}
	if (i != len)
		return false;
	return to_us(y, mon, d, h, mi, sec, off, r->frac_us, &r->us);
}

/*
 * YYYY-MM-DD[(T|t| )hh:mm[:ss[(.|,)digits]][zone]]; no zone means UTC.
 */
static bool run_iso(const char *s, size_t len, struct tf_res *r)
{
	int y, mon, d, h = 0, mi = 0, sec = 0, off = 0;
	size_t i = 0;

	r->frac_us = 0;
	r->frac_pos = -1;
	r->frac_len = 0;
	if (!take_num(s, len, &i, 4, 4, &y) || i >= len || s[i++] != '-' ||
	    !take_num(s, len, &i, 2, 2, &mon) || i >= len || s[i++] != '-' ||
	    !take_num(s, len, &i, 2, 2, &d))
		return false;
	if (i < len) {
		if (s[i] != 'T' && s[i] != 't' && s[i] != ' ')
			return false;
		i++;
		if (!take_num(s, len, &i, 2, 2, &h) || i >= len || s[i++] != ':' ||
		    !take_num(s, len, &i, 2, 2, &mi))
			return false;
		if (i < len && s[i] == ':') {
			i++;
			if (!take_num(s, len, &i, 2, 2, &sec))
				return false;
			if (i < len && (s[i] == '.' || s[i] == ',')) {
				i++;
				size_t n = digit_run(s, len, i);
				if (n == 0)
					return false;
				r->frac_us = frac_to_us(s + i, n);
				r->frac_pos = (int)i;
				r->frac_len = n;
				i += n;
			}
		}
		if (i < len && !take_zone(s, len, &i, &off))
			return false;
	}
	if (i != len)
		return false;
	return to_us(y, mon, d, h, mi, sec, off, r->frac_us, &r->us);
}

static bool cache_hit(const struct timefmt *tf, const char *s, size_t len, int64_t *out)
{
	if (!tf->c_valid)
		return false;
	if (tf->c_frac_pos < 0) {
		if (len != tf->c_len || memcmp(s, tf->c_key, len) != 0)
			return false;
		*out = tf->c_base_us;
		return true;
	}
	size_t fp = (size_t)tf->c_frac_pos;
	size_t suffix = (size_t)tf->c_len - fp - tf->c_frac_len;
	if (len <= fp + suffix || memcmp(s, tf->c_key, fp) != 0)
		return false;
	size_t n = digit_run(s, len, fp);
	if (n == 0 || len - fp - n != suffix ||
	    memcmp(s + fp + n, tf->c_key + fp + tf->c_frac_len, suffix) != 0)
		return false;
	*out = tf->c_base_us + frac_to_us(s + fp, n);
	return true;
}

int timefmt_epoch(const char *s, size_t len, int64_t *out_us)
{
	size_t i = 0, nd = 0;
	uint64_t v = 0;

	while (i < len && is_digit(s[i]) && nd < 19) {
		v = v * 10 + (uint64_t)(s[i] - '0');
		i++;
		nd++;
	}
	if (nd == 0 || (i < len && is_digit(s[i])))
		return -EINVAL;
	if (i < len && s[i] == '.') {
		size_t n = digit_run(s, len, i + 1);
		if (n == 0 || i + 1 + n != len || v >= 100000000000ull)
			return -EINVAL;
		*out_us = (int64_t)v * 1000000 + frac_to_us(s + i + 1, n);
		return 0;
	}
	if (i != len)
		return -EINVAL;
	if (v < 100000000000ull) /* seconds: before the year 5138 */
		*out_us = (int64_t)v * 1000000;
	else if (v < 100000000000000ull) /* milliseconds */
		*out_us = (int64_t)v * 1000;
	else if (v < 100000000000000000ull) /* microseconds */
		*out_us = (int64_t)v;
	else /* nanoseconds */
		*out_us = (int64_t)(v / 1000);
	return 0;
}

int timefmt_regex(const char *fmt, struct kl_buf *out)
{
	static const char *const re[] = {
		[TF_SPACE] = "[ \\t]++",
		[TF_YEAR] = "[0-9]{4}",
		[TF_MON] = "[0-9]{1,2}",
		[TF_MON_NAME] = "[A-Za-z]{3}",
		[TF_DAY] = "[0-9]{1,2}",
		[TF_DAY_SP] = " ?[0-9]{1,2}",
		[TF_HOUR] = "[0-9]{1,2}",
		[TF_MIN] = "[0-9]{1,2}",
		[TF_SEC] = "[0-9]{1,2}",
		[TF_FRAC] = "[0-9]++",
		[TF_ZONE] = "(?:[Zz]|[+-][0-9]{2}(?::?[0-9]{2})?+)",
		[TF_ZONE_NAME] = "(?:[A-Za-z]++|[+-][0-9]{2}(?::?[0-9]{2})?+)",
	};
	struct timefmt tf;

	if (timefmt_compile(&tf, fmt, NULL, 0) < 0)
		return -EINVAL;
	if (tf.iso)
		return kl_buf_append_str(out, "[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[Tt ][0-9]{2}:[0-9]{2}"
					      "(?::[0-9]{2}(?:[.,][0-9]++)?+)?+"
					      "(?:[Zz]|[+-][0-9]{2}(?::?[0-9]{2})?+)?+)?+");
	if (tf.epoch)
		return kl_buf_append_str(out, "[0-9]++(?:\\.[0-9]++)?+");
	for (unsigned k = 0; k < tf.nops; k++) {
		int rc;
		if (tf.ops[k].kind == TF_LIT)
			rc = pd_lit(out, &tf.ops[k].c, 1);
		else
			rc = kl_buf_append_str(out, re[tf.ops[k].kind]);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int timefmt_parse(struct timefmt *tf, const char *s, size_t len, int64_t *out_us)
{
	struct tf_res r;

	if (tf->epoch)
		return timefmt_epoch(s, len, out_us);
	if (cache_hit(tf, s, len, out_us))
		return 0;
	if (!(tf->iso ? run_iso(s, len, &r) : run_ops(tf, s, len, &r)))
		return -EINVAL;
	if (len <= TF_CACHE_KEY) {
		memcpy(tf->c_key, s, len);
		tf->c_len = (unsigned char)len;
		if (r.frac_pos >= 0) {
			tf->c_frac_pos = (signed char)r.frac_pos;
			tf->c_frac_len = (unsigned char)r.frac_len;
			tf->c_base_us = r.us - r.frac_us;
		} else {
			tf->c_frac_pos = -1;
			tf->c_frac_len = 0;
			tf->c_base_us = r.us;
		}
		tf->c_valid = true;
	}
	*out_us = r.us;
	return 0;
}
