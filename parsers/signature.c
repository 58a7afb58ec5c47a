/*
 * signature.c — the derived field `signature`: an event's message with what
 * varies from one instance of an error to the next masked (numbers, ids,
 * addresses, quoted strings), so that `new(signature, 7d)` and
 * `count(...) by signature` see a new kind of error, not a new instance of an
 * old one.
 *
 * Registration. Every parser answers parser_field_index(p, "signature"),
 * unless it has a field of that name of its own (a regex group, a django
 * format key, a json key declared in `types:`), which wins. The first lookup
 * appends a string field, resolves the fields the signature is made from
 * (sig_choices below: one row per format) and allocates the parser's output
 * buffer of PARSER_SIGNATURE_MAX bytes, once. A parser nobody asked for a
 * signature never computes one (stats.signatures stays 0). The json format
 * registers the keys "message" and "msg" for it (they then appear in the
 * event, as any registered key does).
 *
 * Computing. After a record parsed (the format's post hook and the time
 * included), the source text is masked in one pass into the buffer, and the
 * field is a view into it: valid until the next parser_parse on the parser,
 * like json's unescaped strings. The pipeline consumes an event (event sinks,
 * rules_feed) before it parses the next record. Nothing is allocated.
 *
 * The masks, in the order they are tried at the start of a word (a byte of
 * [A-Za-z0-9_] not preceded by one):
 *   UUID, 8-4-4-4-12 hex digits                   → <uuid>
 *   IPv4 a.b.c.d (each ≤ 255); IPv6 with "::" or
 *     eight groups, holding a digit (and an IPv4
 *     tail); a port after it is a number          → <ip>
 *   0x and hex digits; a word of ≥ 8 hex digits
 *     with both a digit and a letter              → <hex>
 *   a number: digits, a fraction, an exponent, a
 *     sign when not after a word ("-3", "=-5")    → <n>
 *     A unit of letters after it stays ("3.2s" → "<n>s", "100ms" → "<n>ms");
 *     a word that mixes digits and letters further ("3f9c1", "1a2b") and
 *     digits after letters ("pg_stat2", "utf8", "http2", "user_42") stay,
 *     and so do a word's dotted parts ("v1.2", "app.3f9c1.js").
 *     Otherwise '.' and '-' separate words ("2026-11-25" → "<n>-<n>-<n>",
 *     "worker-3" → "worker-<n>").
 *   '...' and "..." → '<s>' and "<s>": a quote opens when it does not follow
 *     a word byte (so "can't" opens nothing), and closes at the next same
 *     quote that is not after a backslash and not before a word byte or
 *     another such quote (SQL's '' inside a string); no close: a plain byte.
 *   A path's numeric and id segments fall out of the above
 *     ("/api/debts/123/edit" → "/api/debts/<n>/edit", "?page=2" → "?page=<n>").
 *   Escapes are kept as written and end a word: %XX (URLs) and \xHH (nginx).
 *   Runs of blanks (space, TAB, CR, LF, VT, FF) become one space; leading and
 *     trailing ones go.
 *   Every other byte is kept as it is: NUL, control bytes, invalid UTF-8
 *     (parser_event_json escapes them).
 * Output is cut at PARSER_SIGNATURE_MAX bytes: a mask is never cut in half, a
 * cut never ends inside a UTF-8 sequence, and stats.signatures_cut counts
 * the events cut. Scanning stops at the cut, so a long record costs no more
 * than its first few hundred output bytes (plus, at most once per quote
 * kind, a memchr for a closing quote).
 */
#include <stdlib.h>
#include <string.h>

#include "parsers/parsers_int.h"

/* What each format signs. SIG_FIRST: the first of the fields present in the
 * event. SIG_REQUEST: fields request, method, path, protocol: "METHOD
 * <masked path> PROTOCOL" when nginx split the request, else the request
 * masked whole. SIG_EXCEPTION: fields exception, exception_message, message:
 * a traceback's "<exception>: <masked exception_message>", else the message.
 * A format that has none of its fields signs the whole record (a regex
 * without a `message` or `msg` group). */
static const struct sig_choice {
	const char *format; /* a built-in's name; NULL: a regex parser */
	enum sig_how how;
	const char *fields[SIG_MAX_SRC];
} sig_choices[] = {
	{ "nginx_combined", SIG_REQUEST, { "request", "method", "path", "protocol" } },
	{ "nginx_timed", SIG_REQUEST, { "request", "method", "path", "protocol" } },
	{ "gunicorn_access", SIG_REQUEST, { "request", "method", "path", "protocol" } },
	{ "django", SIG_EXCEPTION, { "exception", "exception_message", "message", NULL } },
	{ "postgres", SIG_FIRST, { "message", NULL, NULL, NULL } },
	{ "postgres_json", SIG_FIRST, { "message", NULL, NULL, NULL } },
	{ "json", SIG_FIRST, { "message", "msg", NULL, NULL } },
	{ NULL, SIG_FIRST, { "message", "msg", NULL, NULL } },
};

static const struct sig_choice *choice_of(const struct parser *p)
{
	const char *name = p->builtin ? p->builtin->name : NULL;
	for (size_t i = 0; i + 1 < KL_ARRAY_LEN(sig_choices); i++)
		if (name && strcmp(sig_choices[i].format, name) == 0)
			return &sig_choices[i];
	return &sig_choices[KL_ARRAY_LEN(sig_choices) - 1];
}

int parser_sig_register(const struct parser *p)
{
	struct parser_sig *sg = p->sig;
	struct parser_fields *f = p->fields;
	const struct sig_choice *ch = choice_of(p);
	int src[SIG_MAX_SRC];
	bool any = false;

	if (sg->field >= 0)
		return sg->field;
	for (size_t k = 0; k < SIG_MAX_SRC; k++) {
		const char *n = ch->fields[k];
		src[k] = -1;
		if (n)
			src[k] = p->kind == PK_JSON ? json_field_index(p, n, strlen(n))
						    : parser_find_field(p, n, strlen(n));
		any |= src[k] >= 0;
	}
	if (f->n == PARSER_MAX_FIELDS)
		return -1;
	if (!sg->buf && !(sg->buf = malloc(PARSER_SIGNATURE_MAX)))
		return -1;
	sg->how = any ? ch->how : SIG_RECORD;
	memcpy(sg->src, src, sizeof src);
	/* json's key registry (json.c) keeps a NULL path for this index: the
	 * scanner never fills it */
	f->name[f->n] = "signature";
	f->type[f->n] = PARSER_T_STRING;
	sg->field = (int)f->n++;
	return sg->field;
}

/* ------------------------------------------------------------------------- */
/* The scanner */

/* Byte classes, one table lookup each. */
enum {
	C_DIGIT = 1,
	C_ALPHA = 2, /* letters and '_': the word bytes that are not digits */
	C_HEX = 4,
	C_BLANK = 8,
	C_SPECIAL = 16, /* ' " % \ + - : start a rule of their own */
};
#define CL(c)                                                                               \
	((((c) >= '0' && (c) <= '9') ? C_DIGIT | C_HEX : 0) |                                 \
	 ((((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z') || (c) == '_') ? C_ALPHA  \
										      : 0) | \
	 ((((c) >= 'a' && (c) <= 'f') || ((c) >= 'A' && (c) <= 'F')) ? C_HEX : 0) |          \
	 (((c) == ' ' || ((c) >= '\t' && (c) <= '\r')) ? C_BLANK : 0) |                        \
	 (((c) == '\'' || (c) == '"' || (c) == '%' || (c) == '\\' || (c) == '+' || (c) == '-' || \
	   (c) == ':')                                                                        \
		  ? C_SPECIAL                                                                 \
		  : 0))
#define R4(b) CL(b), CL((b) + 1), CL((b) + 2), CL((b) + 3)
#define R16(b) R4(b), R4((b) + 4), R4((b) + 8), R4((b) + 12)
#define R64(b) R16(b), R16((b) + 16), R16((b) + 32), R16((b) + 48)
static const unsigned char cls[256] = { R64(0), R64(64), R64(128), R64(192) };

static inline bool is_digit(unsigned char c)
{
	return cls[c] & C_DIGIT;
}

static inline bool is_alpha(unsigned char c)
{
	return cls[c] & C_ALPHA;
}

static inline bool is_word(unsigned char c)
{
	return cls[c] & (C_DIGIT | C_ALPHA);
}

static inline bool is_hex(unsigned char c)
{
	return cls[c] & C_HEX;
}

#define U(s, i) ((unsigned char)(s)[i])

struct out {
	char *p;
	size_t len;
	bool cut;
	bool space; /* a blank is pending: written before the next byte */
};

/* n bytes, all or none (a mask is never cut in half). */
static bool put(struct out *o, const char *s, size_t n)
{
	if (o->len + n + o->space > PARSER_SIGNATURE_MAX) {
		o->cut = true;
		return false;
	}
	if (o->space)
		o->p[o->len++] = ' ';
	o->space = false;
	memcpy(o->p + o->len, s, n);
	o->len += n;
	return true;
}

/* Bytes kept as written: as many as fit. */
static void put_some(struct out *o, const char *s, size_t n)
{
	if (put(o, s, n))
		return;
	if (o->space && o->len < PARSER_SIGNATURE_MAX)
		o->p[o->len++] = ' ';
	o->space = false;
	size_t room = PARSER_SIGNATURE_MAX - o->len;
	memcpy(o->p + o->len, s, room < n ? room : n);
	o->len += room < n ? room : n;
}

#define PUT_LIT(o, lit) put(o, lit, sizeof(lit) - 1)

/* A blank between two parts (none at the start). */
static void blank(struct out *o)
{
	o->space = o->len > 0;
}

/* 8-4-4-4-12 hex digits, not followed by a word byte. */
static size_t uuid(const char *s, size_t n)
{
	if (n < 36)
		return 0;
	for (size_t i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return 0;
		} else if (!is_hex(U(s, i))) {
			return 0;
		}
	}
	return n > 36 && is_word(U(s, 36)) ? 0 : 36;
}

/* a.b.c.d, each 1-3 digits ≤ 255, not followed by a word byte or ".digit". */
static size_t ipv4(const char *s, size_t n)
{
	size_t i = 0;
	for (int part = 0; part < 4; part++) {
		if (part) {
			if (i >= n || s[i] != '.')
				return 0;
			i++;
		}
		size_t b = i;
		unsigned v = 0;
		while (i < n && i - b < 3 && is_digit(U(s, i)))
			v = v * 10 + (unsigned)(s[i++] - '0');
		if (i == b || v > 255)
			return 0;
	}
	if (i < n && (is_word(U(s, i)) || (s[i] == '.' && i + 1 < n && is_digit(U(s, i + 1)))))
		return 0;
	return i;
}

/* Groups of 1-4 hex digits joined by ':', one "::" (then at most seven
 * groups) or exactly eight, holding a digit; an IPv4 tail counts two groups.
 * "22:13:20" (no "::", three groups) is not one. */
static size_t ipv6(const char *s, size_t n)
{
	size_t i = 0, groups = 0;
	bool dbl = false, digit = false;

	if (n >= 2 && s[0] == ':' && s[1] == ':') {
		dbl = true;
		i = 2;
	}
	for (;;) {
		size_t b = i;
		while (i < n && i - b <= 4 && is_hex(U(s, i)))
			i++;
		if (i - b > 4)
			return 0;
		if (i == b) /* at the start (no address) or after "::" (its end) */
			break;
		if (i < n && s[i] == '.') { /* ::ffff:10.0.0.1 */
			size_t v4 = ipv4(s + b, n - b);
			if (!v4 || groups > 6)
				return 0;
			groups += 2;
			i = b + v4;
			digit = true;
			goto done;
		}
		for (size_t k = b; k < i; k++)
			digit |= is_digit(U(s, k));
		if (++groups > 8)
			return 0;
		if (i + 1 < n && s[i] == ':' && s[i + 1] == ':') {
			if (dbl)
				return 0;
			dbl = true;
			i += 2;
			continue;
		}
		if (i + 1 < n && s[i] == ':' && is_hex(U(s, i + 1))) {
			i++;
			continue;
		}
		break;
	}
	if (i < n && is_word(U(s, i)))
		return 0;
done:
	if (!digit || (dbl ? groups > 7 : groups != 8))
		return 0;
	return i;
}

/* 0x1F…, or a word of ≥ 8 hex digits with a digit and a letter. */
static size_t hexid(const char *s, size_t n)
{
	size_t i = 0;
	bool digit = false, alpha = false;

	if (n >= 3 && s[0] == '0' && (s[1] | 0x20) == 'x' && is_hex(U(s, 2))) {
		for (i = 2; i < n && is_hex(U(s, i)); i++)
			;
		return i < n && is_word(U(s, i)) ? 0 : i;
	}
	for (; i < n && is_hex(U(s, i)); i++) {
		if (is_digit(U(s, i)))
			digit = true;
		else
			alpha = true;
	}
	if (i < 8 || !digit || !alpha || (i < n && is_word(U(s, i))))
		return 0;
	return i;
}

/* Digits, a fraction, an exponent, then the end of the word or a unit of
 * letters ("3.2s"): the length with the unit, the number's in *numlen. 0
 * when the word goes on with digits ("3f9c1": an identifier). */
static size_t number(const char *s, size_t n, size_t *numlen)
{
	size_t i = 0;
	while (i < n && is_digit(U(s, i)))
		i++;
	if (i + 1 < n && s[i] == '.' && is_digit(U(s, i + 1)))
		for (i++; i < n && is_digit(U(s, i)); i++)
			;
	if (i + 1 < n && (s[i] | 0x20) == 'e') {
		size_t j = i + 1;
		if (j < n && (s[j] == '+' || s[j] == '-'))
			j++;
		if (j < n && is_digit(U(s, j)))
			for (i = j; i < n && is_digit(U(s, i)); i++)
				;
	}
	*numlen = i;
	size_t j = i;
	while (j < n && is_alpha(U(s, j)))
		j++;
	if (j < n && is_digit(U(s, j)))
		return 0;
	return j;
}

/* Where a string opened by the quote at s[i] closes, or n. */
static size_t closing(const char *s, size_t i, size_t n, char q)
{
	const char *p = s + i + 1, *e = s + n;
	while (p < e && (p = memchr(p, q, (size_t)(e - p)))) {
		if (p[-1] != '\\' && (p + 1 == e || (!is_word((unsigned char)p[1]) && p[1] != q)))
			return (size_t)(p - s);
		p++;
	}
	return n;
}

/* At the start of a word: a mask's length (0: none) and which, with *numlen
 * the length of a number before its unit. */
static size_t masked_word(const char *s, size_t n, const char **m, size_t *ml, size_t *numlen)
{
	unsigned char c = U(s, 0);
	size_t h = 0, k;

	*numlen = 0;
	if (!(cls[c] & C_HEX)) /* g-z, _: a word */
		return 0;
	while (h < n && is_hex(U(s, h)))
		h++;
	if (h == 8 && (k = uuid(s, n))) {
		*m = "<uuid>", *ml = 6;
		return k;
	}
	if (h <= 3 && h < n && s[h] == '.' && (k = ipv4(s, n))) {
		*m = "<ip>", *ml = 4;
		return k;
	}
	if (h <= 4 && h < n && s[h] == ':' && (k = ipv6(s, n))) {
		*m = "<ip>", *ml = 4;
		return k;
	}
	if ((h >= 8 || (c == '0' && h == 1)) && (k = hexid(s, n))) {
		*m = "<hex>", *ml = 5;
		return k;
	}
	if (is_digit(c) && (k = number(s, n, numlen))) {
		*m = "<n>", *ml = 3;
		return k;
	}
	return 0;
}

/*
 * One pass. Bytes kept as written are not copied one by one: s[lit, i) is the
 * run kept so far, put when a mask (or a run of blanks) ends it.
 */
static void mask(struct out *o, const char *s, size_t n)
{
	size_t i = 0, lit = 0, k, nl, ml;
	bool pw = false;		   /* the byte before i belongs to a word */
	bool no_sq = false, no_dq = false; /* no closing ' / " after here */
	const char *m;

#define FLUSH()                                          \
	do {                                             \
		if (i > lit)                             \
			put_some(o, s + lit, i - lit); \
		lit = i;                                 \
	} while (0)

	while (i < n && !o->cut) {
		unsigned char c = U(s, i);
		unsigned cl = cls[c];

		if (i - lit > PARSER_SIGNATURE_MAX) /* the kept run alone fills it */
			break;
		if (cl & (C_DIGIT | C_ALPHA)) {
			if (!pw && (k = masked_word(s + i, n - i, &m, &ml, &nl))) {
				FLUSH();
				put(o, m, ml);
				lit = nl ? i + nl : i + k; /* a unit is kept */
				i += k;
			} else {
				/* a word, dotted names included ("v1.2",
				 * "psycopg2.errors", "app.3f9c1.js") */
				for (i++; i < n; i++)
					if (!is_word(U(s, i)) &&
					    !(s[i] == '.' && i + 1 < n && is_word(U(s, i + 1))))
						break;
			}
			pw = true;
			continue;
		}
		bool after_word = pw;
		pw = false;
		if (cl & C_BLANK) {
			size_t j = i + 1;
			while (j < n && (cls[U(s, j)] & C_BLANK))
				j++;
			/* one space between two kept bytes is kept as it is */
			if (c == ' ' && j == i + 1 && j < n && (i > lit || (o->len && !o->space))) {
				i = j;
				continue;
			}
			FLUSH();
			o->space = o->len > 0;
			i = lit = j;
			continue;
		}
		if (!(cl & C_SPECIAL)) {
			for (i++; i < n && !(cls[U(s, i)] & (C_DIGIT | C_ALPHA | C_BLANK | C_SPECIAL));
			     i++)
				;
			continue;
		}
		/* a sign: only before a number that is nothing else ("-3", not
		 * "-10.0.0.1" or "-deadbeef01") */
		if (!after_word && (c == '-' || c == '+') && i + 1 < n && is_digit(U(s, i + 1)) &&
		    (k = masked_word(s + i + 1, n - i - 1, &m, &ml, &nl)) && m[1] == 'n') {
			FLUSH();
			put(o, m, ml);
			lit = nl ? i + 1 + nl : i + 1 + k;
			i += 1 + k;
			pw = true;
			continue;
		}
		if (!after_word && ((c == '\'' && !no_sq) || (c == '"' && !no_dq))) {
			size_t j = closing(s, i, n, (char)c);
			if (j < n) {
				FLUSH();
				if (c == '\'')
					PUT_LIT(o, "'<s>'");
				else
					PUT_LIT(o, "\"<s>\"");
				i = lit = j + 1;
				continue;
			}
			if (c == '\'')
				no_sq = true;
			else
				no_dq = true;
		}
		if (c == '%' && i + 2 < n && is_hex(U(s, i + 1)) && is_hex(U(s, i + 2))) {
			i += 3;
			continue;
		}
		if (c == '\\' && i + 3 < n && s[i + 1] == 'x' && is_hex(U(s, i + 2)) &&
		    is_hex(U(s, i + 3))) {
			i += 4;
			continue;
		}
		if (!after_word && c == ':' && i + 1 < n && s[i + 1] == ':' &&
		    (k = ipv6(s + i, n - i))) {
			FLUSH();
			PUT_LIT(o, "<ip>");
			i = lit = i + k;
			pw = true;
			continue;
		}
		i++;
	}
	if (!o->cut)
		FLUSH();
#undef FLUSH
}

/* After a cut: no half UTF-8 sequence, no trailing blank. */
static void finish(struct out *o)
{
	if (!o->cut)
		return;
	size_t k = o->len, cont = 0;
	while (k > 0 && cont < 3 && (U(o->p, k - 1) & 0xC0) == 0x80) {
		k--;
		cont++;
	}
	if (k > 0) {
		unsigned char lead = U(o->p, k - 1);
		size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
		if (lead >= 0xC0 && cont + 1 < need)
			o->len = k - 1;
	}
	while (o->len && o->p[o->len - 1] == ' ')
		o->len--;
}

void parser_sig_compute(struct parser *p, const char *rec, size_t len, struct parser_event *ev)
{
	const struct parser_sig *sg = p->sig;
	struct out o = { sg->buf, 0, false, false };
	const struct kl_str *f[SIG_MAX_SRC];

	for (size_t k = 0; k < SIG_MAX_SRC; k++)
		f[k] = sg->src[k] >= 0 && ev->raw[sg->src[k]].p ? &ev->raw[sg->src[k]] : NULL;
	switch (sg->how) {
	case SIG_REQUEST:
		if (f[1] && f[2]) {
			put_some(&o, f[1]->p, f[1]->len);
			blank(&o);
			mask(&o, f[2]->p, f[2]->len);
			if (f[3]) {
				blank(&o);
				put_some(&o, f[3]->p, f[3]->len);
			}
		} else if (f[0]) {
			mask(&o, f[0]->p, f[0]->len);
		} else {
			return;
		}
		break;
	case SIG_EXCEPTION:
		if (f[0]) {
			mask(&o, f[0]->p, f[0]->len);
			if (f[1]) {
				o.space = false;
				PUT_LIT(&o, ":");
				blank(&o);
				mask(&o, f[1]->p, f[1]->len);
			}
		} else if (f[2]) {
			mask(&o, f[2]->p, f[2]->len);
		} else {
			return;
		}
		break;
	case SIG_FIRST: {
		size_t k = 0;
		while (k < SIG_MAX_SRC && !f[k])
			k++;
		if (k == SIG_MAX_SRC)
			return;
		mask(&o, f[k]->p, f[k]->len);
		break;
	}
	case SIG_RECORD:
		mask(&o, rec, len);
		break;
	}
	finish(&o);
	ev->raw[sg->field] = (struct kl_str){ o.p, o.len };
	p->stats.signatures++;
	if (o.cut)
		p->stats.signatures_cut++;
}
