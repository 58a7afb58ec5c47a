/*
 * fields.c — an event's fields: typed numbers on demand, and the event as JSON.
 *
 * Numbers are converted only when asked, once per record: bit i of num_tried
 * says num[i] holds the outcome (the value when bit i of num_ok is set, else
 * the negative errno as a double), and parser_parse clears both words.
 *
 * Conversion is bounded and hand-written for the shapes logs carry ("503",
 * "0.412"): at most 15 significant digits and a fraction convert exactly with
 * one correctly rounded division (the integer and the power of ten are both
 * exact doubles), so the fast path gives what strtod gives. Anything else
 * (exponents, long mantissas) goes to kl_parse_double. A value that is a list,
 * as nginx writes for several upstreams ("0.003, 0.120", "0.003 : 0.120"), is
 * the sum of its members; "-" members (an upstream that gave no answer) count
 * for nothing, and a value that is only "-" (or empty) is absent.
 */
#include <errno.h>
#include <string.h>

#include "parsers/parsers_int.h"

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int int_number(const char *s, size_t n, double *out)
{
	size_t i = 0;
	bool neg = false;
	uint64_t v = 0;

	if (i < n && (s[i] == '-' || s[i] == '+')) {
		neg = s[i] == '-';
		i++;
	}
	if (i == n)
		return -EINVAL;
	for (; i < n; i++) {
		if (!is_digit(s[i]))
			return -EINVAL;
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -EINVAL;
		v = v * 10 + d;
	}
	if (v > (uint64_t)INT64_MAX + neg)
		return -EINVAL;
	*out = neg ? -(double)v : (double)v;
	return 0;
}

static const double pow10_exact[] = { 1e0,  1e1,  1e2,  1e3,	1e4,  1e5,  1e6,  1e7,
				      1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
				      1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22 };

/* "[-+]digits[.digits]" with at most 15 digits, divided by 10^scale (3 for
 * milliseconds to seconds: "878.690" → 0.87869 with one rounding, not two):
 * exact, or 1 to say "not that shape" (the caller decides what it is). */
static int decimal_fast(const char *s, size_t n, unsigned scale, double *out)
{
	size_t i = 0;
	bool neg = false;
	uint64_t m = 0;
	unsigned nd = 0, frac = 0;

	if (i < n && (s[i] == '-' || s[i] == '+')) {
		neg = s[i] == '-';
		i++;
	}
	for (; i < n && is_digit(s[i]) && nd <= 15; i++, nd++)
		m = m * 10 + (uint64_t)(s[i] - '0');
	if (i < n && s[i] == '.') {
		for (i++; i < n && is_digit(s[i]) && nd <= 15; i++, nd++, frac++)
			m = m * 10 + (uint64_t)(s[i] - '0');
	}
	if (i != n || nd == 0 || nd > 15)
		return 1;
	double v = (double)m;
	if (frac + scale)
		v /= pow10_exact[frac + scale];
	*out = neg ? -v : v;
	return 0;
}

static int decimal_number(const char *s, size_t n, double *out)
{
	if (decimal_fast(s, n, 0, out) == 0)
		return 0;
	/* exponent, long mantissa, or junk: the careful path decides */
	double v;
	if (kl_parse_double(s, n, &v) < 0)
		return -EINVAL;
	*out = v;
	return 0;
}

static bool is_sep(char c)
{
	return c == ',' || c == ':';
}

int parser_text_number(enum parser_type t, const char *s, size_t n, double *out)
{
	double sum = 0, v;
	bool any = false;
	size_t i = 0;

	if (!parser_type_is_numeric(t))
		return -EINVAL;
	if (n == 0 || (n == 1 && s[0] == '-'))
		return -ENOENT;
	/* the common case, one plain number ("503", "0.412"), without the list
	 * scanner; anything else takes the general path below */
	if (t == PARSER_T_INT ? int_number(s, n, &v) == 0
			      : decimal_fast(s, n, t == PARSER_T_MS ? 3 : 0, &v) == 0) {
		*out = v;
		return 0;
	}
	for (;;) {
		while (i < n && s[i] == ' ')
			i++;
		size_t b = i;
		while (i < n && s[i] != ' ' && !is_sep(s[i]))
			i++;
		if (i == b)
			return -EINVAL; /* "", "1,", ", 2", "1,,2" */
		if (!(i - b == 1 && s[b] == '-')) {
			int rc = t == PARSER_T_INT ? int_number(s + b, i - b, &v)
						   : decimal_number(s + b, i - b, &v);
			if (rc < 0)
				return -EINVAL;
			sum += v;
			any = true;
		}
		while (i < n && s[i] == ' ')
			i++;
		if (i == n)
			break;
		if (!is_sep(s[i]))
			return -EINVAL; /* "1 2" */
		i++;
	}
	if (!any)
		return -ENOENT;
	*out = t == PARSER_T_MS ? sum / 1000 : sum;
	return 0;
}

void parser_event_init(struct parser_event *ev, const struct parser *p)
{
	memset(ev, 0, sizeof *ev);
	ev->parser = p;
}

int parser_event_number(struct parser_event *ev, unsigned idx, double *out)
{
	const struct parser *p = ev->parser;
	uint64_t bit;
	double v;
	int rc;

	if (!p || idx >= p->fields->n)
		return -EINVAL;
	bit = 1ull << idx;
	if (ev->num_tried & bit) {
		if (!(ev->num_ok & bit))
			return (int)ev->num[idx];
		*out = ev->num[idx];
		return 0;
	}
	if (!ev->raw[idx].p)
		rc = -ENOENT;
	else
		rc = parser_text_number(p->fields->type[idx], ev->raw[idx].p, ev->raw[idx].len,
					&v);
	ev->num_tried |= bit;
	if (rc < 0) {
		ev->num[idx] = rc;
		return rc;
	}
	ev->num_ok |= bit;
	ev->num[idx] = v;
	*out = v;
	return 0;
}

/* A JSON literal (json.c validated its syntax) in a form any reader loads:
 * true and false, integers within int64 and other numbers within double's
 * range as written; a longer integer as a double; a number out of double's
 * range as a string. */
static int append_literal(struct kl_buf *out, const struct kl_str *raw)
{
	double v;
	int64_t iv;
	if (raw->p[0] == 't' || raw->p[0] == 'f')
		return kl_buf_append(out, raw->p, raw->len);
	if (kl_parse_double(raw->p, raw->len, &v) < 0 || v - v != 0)
		return kl_json_append_str(out, raw->p, raw->len);
	if (!memchr(raw->p, '.', raw->len) && !memchr(raw->p, 'e', raw->len) &&
	    !memchr(raw->p, 'E', raw->len) && kl_parse_i64(raw->p, raw->len, &iv) < 0)
		return kl_json_append_num(out, v);
	return kl_buf_append(out, raw->p, raw->len);
}

int parser_event_json(struct parser_event *ev, const char *source, struct kl_buf *out)
{
	const struct parser *p = ev->parser;
	size_t start = out->len;
	char ts[KL_RFC3339_MAX];
	size_t tn = kl_format_rfc3339(ev->time_us, true, ts);
	bool first = true;

	if (kl_buf_append(out, "{\"time\":\"", 9) < 0 || kl_buf_append(out, ts, tn) < 0 ||
	    kl_buf_append(out, "\",\"source\":", 11) < 0 ||
	    kl_json_append_str(out, source ? source : "", source ? strlen(source) : 0) < 0 ||
	    kl_buf_append(out, ",\"fields\":{", 11) < 0)
		goto fail;
	for (unsigned i = 0; p && i < p->fields->n; i++) {
		enum parser_type t = p->fields->type[i];
		const struct kl_str *raw = &ev->raw[i];
		double v = 0;
		int rc = -EINVAL;

		if (!raw->p || t == PARSER_T_TIME)
			continue;
		if (parser_type_is_numeric(t)) {
			rc = parser_event_number(ev, i, &v);
			if (rc == -ENOENT)
				continue;
		}
		const char *name = p->fields->name[i];
		if ((!first && kl_buf_append(out, ",", 1) < 0) ||
		    kl_json_append_str(out, name, strlen(name)) < 0 ||
		    kl_buf_append(out, ":", 1) < 0)
			goto fail;
		first = false;
		/* a number when it is one; text that is not (a misdeclared type)
		 * is kept as a string rather than lost. An undeclared json field
		 * that was a JSON number (or true/false) keeps its JSON text,
		 * which json.c validated; a number out of double's range
		 * becomes a string, so any reader can load the line. */
		if (rc == 0) {
			if (kl_json_append_num(out, v) < 0)
				goto fail;
		} else if (ev->literal >> i & 1) {
			if (append_literal(out, raw) < 0)
				goto fail;
		} else if (kl_json_append_str(out, raw->p, raw->len) < 0) {
			goto fail;
		}
	}
	if (kl_buf_append(out, "}}", 2) < 0)
		goto fail;
	return 0;
fail:
	out->len = start;
	if (out->p)
		out->p[start] = '\0';
	return -ENOMEM;
}
