/*
 * expr.c — the rule expression language: lexer, parser, type checks, filters.
 *
 * Two grammars share one lexer. The outer one is a precedence parser over
 * values (numbers with units, aggregate calls, + - * /, comparisons, and/or/not);
 * its result must be a boolean. Inside an aggregate's parentheses, a filter is a
 * predicate over one event's fields:
 *
 *   filter := conj ("or" conj)*        conj := neg ("and" neg)*
 *   neg    := "not" neg | "(" filter ")" | FIELD cmp LITERAL
 *           | FIELD ("=~" | "!~") STRING | FIELD ["not"] "in" "(" LITERAL, ... ")"
 *
 * Field names are resolved against the source's parser here, once; a field of
 * the wrong type for its use is an error at load, never a surprise at 3 a.m.
 * Every error carries the byte offset of the token it is about.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rules/rules_int.h"

/* Parsing, type checks, evaluation and freeing all recurse over the tree, so
 * what one expression may hold is bounded: no input can exhaust the stack. */
#define MAX_DEPTH 100  /* nesting of '(', unary '-' and 'not' */
#define MAX_NODES 1000 /* value and filter nodes: the tree's depth is below this */

enum tok_kind {
	T_END,
	T_NUM,
	T_STR,
	T_IDENT,
	T_LP,
	T_RP,
	T_COMMA,
	T_PLUS,
	T_MINUS,
	T_STAR,
	T_SLASH,
	T_EQ,
	T_NE,
	T_LT,
	T_LE,
	T_GT,
	T_GE,
	T_MATCH,
	T_NMATCH,
	T_BAD,
};

struct tok {
	enum tok_kind kind;
	size_t off;
	size_t len;
	double num;
};

struct ps {
	const char *src;
	size_t len;
	size_t pos;
	struct tok t; /* current token */
	const struct parser *parser;
	struct expr *e;
	char *err;
	size_t errlen;
	size_t erroff;
	bool failed;
	unsigned depth;
	unsigned nodes;
};

static void fail_at(struct ps *ps, size_t off, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void fail_at(struct ps *ps, size_t off, const char *fmt, ...)
{
	if (ps->failed)
		return;
	ps->failed = true;
	ps->erroff = off;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ps->err, ps->errlen, fmt, ap);
	va_end(ap);
}

/* ---- lexer --------------------------------------------------------------- */

static bool is_ident_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_ident_char(char c)
{
	return is_ident_start(c) || (c >= '0' && c <= '9') || c == '.';
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

struct unit {
	const char *name;
	double mult;
	bool time; /* a duration's: may be followed by a smaller one (1m30s) */
};

/* Units a literal may carry; durations are in seconds, sizes in bytes. */
static const struct unit units[] = {
	{ "%", 0.01, false },	 { "us", 1e-6, true },	    { "ms", 1e-3, true },
	{ "s", 1, true },	 { "m", 60, true },	    { "h", 3600, true },
	{ "d", 86400, true },	 { "w", 604800, true },	    { "B", 1, false },
	{ "KB", 1e3, false },	 { "MB", 1e6, false },	    { "GB", 1e9, false },
	{ "TB", 1e12, false },	 { "KiB", 1024.0, false },  { "MiB", 1048576.0, false },
	{ "GiB", 1073741824.0, false },
};

/* The end of the digits (and a decimal point) of a number starting at i. */
static size_t digits_end(const struct ps *ps, size_t i)
{
	while (i < ps->len && (is_digit(ps->src[i]) || ps->src[i] == '.'))
		i++;
	return i;
}

/* The unit written at i (NULL if none: *end == i), or fails on an unknown one. */
static const struct unit *lex_unit(struct ps *ps, size_t i, size_t *end, bool *bad)
{
	const char *s = ps->src;
	size_t u = i;
	*bad = false;
	if (u < ps->len && s[u] == '%')
		u++;
	else
		while (u < ps->len && ((s[u] >= 'a' && s[u] <= 'z') || (s[u] >= 'A' && s[u] <= 'Z')))
			u++;
	*end = u;
	if (u == i)
		return NULL;
	for (size_t k = 0; k < KL_ARRAY_LEN(units); k++)
		if (strlen(units[k].name) == u - i && !memcmp(units[k].name, s + i, u - i))
			return &units[k];
	fail_at(ps, i,
		"unknown unit '%.*s'; expected one of %%, us, ms, s, m, h, d, w, B, KB, MB, GB, TB, KiB, MiB, GiB",
		(int)(u - i), s + i);
	*bad = true;
	return NULL;
}

/*
 * The rest of a compound duration after its first part, as `| duration`
 * writes them and `for:` takes them: 1m30s, 1h30m, 2d4h. Each part is a
 * number with a time unit smaller than the one before. Adds to *v; returns
 * the end, or 0 after failing.
 */
static size_t lex_duration_rest(struct ps *ps, size_t i, const struct unit *prev, double *v)
{
	while (i < ps->len && is_digit(ps->src[i])) {
		size_t n = digits_end(ps, i), u;
		bool bad;
		double part;
		if (kl_parse_double(ps->src + i, n - i, &part) < 0) {
			fail_at(ps, i, "'%.*s' is not a number", (int)(n - i), ps->src + i);
			return 0;
		}
		const struct unit *un = lex_unit(ps, n, &u, &bad);
		if (bad)
			return 0;
		if (!(un && un->time) || un->mult >= prev->mult) {
			fail_at(ps, i,
				"'%.*s' cannot follow '%s' in a duration: each part needs a smaller time "
				"unit than the one before (1h30m, 1m30s)",
				(int)(u - i), ps->src + i, prev->name);
			return 0;
		}
		*v += part * un->mult;
		prev = un;
		i = u;
	}
	return i;
}

static void lex_number(struct ps *ps, struct tok *t)
{
	const char *s = ps->src;
	size_t i = digits_end(ps, ps->pos);
	if (i < ps->len && (s[i] == 'e' || s[i] == 'E') && i + 1 < ps->len &&
	    (is_digit(s[i + 1]) || ((s[i + 1] == '-' || s[i + 1] == '+') && i + 2 < ps->len &&
				    is_digit(s[i + 2])))) {
		i += 2;
		while (i < ps->len && is_digit(s[i]))
			i++;
	}
	double v;
	if (kl_parse_double(s + ps->pos, i - ps->pos, &v) < 0) {
		fail_at(ps, ps->pos, "'%.*s' is not a number", (int)(i - ps->pos), s + ps->pos);
		t->kind = T_BAD;
		return;
	}
	size_t u;
	bool bad;
	const struct unit *un = lex_unit(ps, i, &u, &bad);
	if (bad) {
		t->kind = T_BAD;
		return;
	}
	if (un)
		v *= un->mult;
	if (un && un->time) {
		u = lex_duration_rest(ps, u, un, &v);
		if (!u) {
			t->kind = T_BAD;
			return;
		}
	}
	t->kind = T_NUM;
	t->num = v;
	t->len = u - ps->pos;
	ps->pos = u;
}

static void lex_string(struct ps *ps, struct tok *t)
{
	char q = ps->src[ps->pos];
	size_t i = ps->pos + 1;
	while (i < ps->len && ps->src[i] != q) {
		if (ps->src[i] == '\\' && i + 1 < ps->len)
			i++;
		i++;
	}
	if (i >= ps->len) {
		fail_at(ps, ps->pos, "unterminated string: expected a closing %c", q);
		t->kind = T_BAD;
		return;
	}
	t->kind = T_STR;
	t->len = i + 1 - ps->pos;
	ps->pos = i + 1;
}

struct op2 {
	char s[3];
	enum tok_kind kind;
};

static const struct op2 ops[] = {
	{ "==", T_EQ },	   { "!=", T_NE },   { "<=", T_LE },	{ ">=", T_GE },
	{ "=~", T_MATCH }, { "!~", T_NMATCH }, { "<", T_LT },	{ ">", T_GT },
	{ "(", T_LP },	   { ")", T_RP },    { ",", T_COMMA },	{ "+", T_PLUS },
	{ "-", T_MINUS },  { "*", T_STAR },  { "/", T_SLASH },
};

static void next(struct ps *ps)
{
	struct tok *t = &ps->t;
	while (ps->pos < ps->len && (ps->src[ps->pos] == ' ' || ps->src[ps->pos] == '\t' ||
				     ps->src[ps->pos] == '\n' || ps->src[ps->pos] == '\r'))
		ps->pos++;
	t->off = ps->pos;
	t->len = 0;
	if (ps->pos >= ps->len) {
		t->kind = T_END;
		return;
	}
	char c = ps->src[ps->pos];
	if (is_digit(c) || (c == '.' && ps->pos + 1 < ps->len && is_digit(ps->src[ps->pos + 1]))) {
		lex_number(ps, t);
		return;
	}
	if (c == '\'' || c == '"') {
		lex_string(ps, t);
		return;
	}
	if (is_ident_start(c)) {
		size_t i = ps->pos;
		while (i < ps->len && is_ident_char(ps->src[i]))
			i++;
		t->kind = T_IDENT;
		t->len = i - ps->pos;
		ps->pos = i;
		return;
	}
	for (size_t k = 0; k < KL_ARRAY_LEN(ops); k++) {
		size_t n = strlen(ops[k].s);
		if (ps->pos + n <= ps->len && !memcmp(ps->src + ps->pos, ops[k].s, n)) {
			t->kind = ops[k].kind;
			t->len = n;
			ps->pos += n;
			return;
		}
	}
	fail_at(ps, ps->pos, "unexpected character '%c'", c >= 0x20 && c < 0x7f ? c : '?');
	t->kind = T_BAD;
}

static bool tok_is(const struct ps *ps, const char *word)
{
	size_t n = strlen(word);
	return ps->t.kind == T_IDENT && ps->t.len == n && !memcmp(ps->src + ps->t.off, word, n);
}

static const char *tok_desc(const struct ps *ps, char *buf, size_t n)
{
	if (ps->t.kind == T_END)
		return "the end of the expression";
	snprintf(buf, n, "'%.*s'", (int)(ps->t.len > 40 ? 40 : ps->t.len), ps->src + ps->t.off);
	return buf;
}

static bool expect(struct ps *ps, enum tok_kind k, const char *what)
{
	if (ps->t.kind == k) {
		next(ps);
		return true;
	}
	char b[64];
	fail_at(ps, ps->t.off, "expected %s, found %s", what, tok_desc(ps, b, sizeof b));
	return false;
}

/* Copy a quoted string token's contents, resolving \\ \' \" (other escapes are
 * kept as written so regexes keep their backslashes). */
static struct kl_str unquote(const struct ps *ps, const struct tok *t)
{
	const char *s = ps->src + t->off + 1;
	size_t n = t->len - 2;
	char *out = malloc(n + 1);
	if (!out)
		return (struct kl_str){ NULL, 0 };
	size_t j = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\\' && i + 1 < n && (s[i + 1] == '\\' || s[i + 1] == '\'' || s[i + 1] == '"'))
			i++;
		out[j++] = s[i];
	}
	out[j] = '\0';
	return (struct kl_str){ out, j };
}

/* Offset in src of byte i of a string token's unquoted contents. */
static size_t quoted_off(const struct ps *ps, const struct tok *t, size_t i)
{
	const char *s = ps->src + t->off + 1;
	size_t n = t->len - 2, k = 0;
	for (size_t j = 0; k < n && j < i; k++, j++)
		if (s[k] == '\\' && k + 1 < n && (s[k + 1] == '\\' || s[k + 1] == '\'' || s[k + 1] == '"'))
			k++;
	return t->off + 1 + k;
}

/* ---- filters ------------------------------------------------------------- */

static bool node_budget(struct ps *ps)
{
	if (++ps->nodes <= MAX_NODES)
		return true;
	fail_at(ps, ps->t.off, "the expression is too long: more than %d operators and comparisons",
		MAX_NODES);
	return false;
}

static struct filt *filt_new(struct ps *ps, enum filt_kind k)
{
	if (!node_budget(ps))
		return NULL;
	struct filt *f = calloc(1, sizeof *f);
	if (!f)
		fail_at(ps, ps->t.off, "out of memory");
	else
		f->kind = k;
	return f;
}

static void filt_free(struct filt *f)
{
	if (!f)
		return;
	filt_free(f->a);
	filt_free(f->b);
	free((void *)f->str.p);
	if (f->re)
		pcre2_code_free(f->re);
	free(f->nums);
	for (size_t i = 0; i < f->nin && f->strs; i++)
		free((void *)f->strs[i].p);
	free(f->strs);
	free(f);
}

/* Resolve the identifier token as a field of the source's parser. */
static int field_of(struct ps *ps, const struct tok *t)
{
	int idx = parser_field_index(ps->parser, ps->src + t->off, t->len);
	if (idx < 0) {
		char list[512];
		size_t used = 0;
		list[0] = '\0';
		for (unsigned i = 0; i < parser_field_count(ps->parser) && used + 40 < sizeof list; i++)
			used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "",
						 parser_field_name(ps->parser, i));
		fail_at(ps, t->off, "unknown field '%.*s' for parser '%s'; its fields are: %s",
			(int)t->len, ps->src + t->off, parser_name(ps->parser), list);
	}
	return idx;
}

static bool field_numeric(const struct ps *ps, int idx)
{
	return parser_type_is_numeric(parser_field_type(ps->parser, (unsigned)idx));
}

static const char *field_name(const struct ps *ps, int idx)
{
	return parser_field_name(ps->parser, (unsigned)idx);
}

static enum cmp_op cmp_of(enum tok_kind k)
{
	switch (k) {
	case T_EQ: return OP_EQ;
	case T_NE: return OP_NE;
	case T_LT: return OP_LT;
	case T_LE: return OP_LE;
	case T_GT: return OP_GT;
	default: return OP_GE;
	}
}

static bool is_cmp(enum tok_kind k)
{
	return k == T_EQ || k == T_NE || k == T_LT || k == T_LE || k == T_GT || k == T_GE;
}

/* A literal number, possibly negative. */
static bool parse_num_lit(struct ps *ps, double *out)
{
	bool neg = false;
	if (ps->t.kind == T_MINUS) {
		neg = true;
		next(ps);
	}
	if (ps->t.kind != T_NUM) {
		char b[64];
		fail_at(ps, ps->t.off, "expected a number, found %s", tok_desc(ps, b, sizeof b));
		return false;
	}
	*out = neg ? -ps->t.num : ps->t.num;
	next(ps);
	return true;
}

static struct filt *parse_filter(struct ps *ps);

static struct filt *parse_in(struct ps *ps, int field, bool negate)
{
	bool num = field_numeric(ps, field);
	struct filt *f = filt_new(ps, num ? F_IN_NUM : F_IN_STR);
	if (!f)
		return NULL;
	f->field = (unsigned)field;
	f->negate = negate;
	if (!expect(ps, T_LP, "'(' after 'in'"))
		return f;
	size_t cap = 0;
	for (;;) {
		if (f->nin == cap) {
			cap = cap ? cap * 2 : 4;
			void *p = num ? realloc(f->nums, cap * sizeof *f->nums)
				      : realloc(f->strs, cap * sizeof *f->strs);
			if (!p) {
				fail_at(ps, ps->t.off, "out of memory");
				return f;
			}
			if (num)
				f->nums = p;
			else
				f->strs = p;
		}
		if (num) {
			if (!parse_num_lit(ps, &f->nums[f->nin]))
				return f;
			f->nin++;
		} else {
			if (ps->t.kind != T_STR) {
				char b[64];
				fail_at(ps, ps->t.off, "expected a quoted string in the list for string field '%s', found %s",
					field_name(ps, field), tok_desc(ps, b, sizeof b));
				return f;
			}
			f->strs[f->nin++] = unquote(ps, &ps->t);
			next(ps);
		}
		if (ps->t.kind == T_COMMA) {
			next(ps);
			continue;
		}
		expect(ps, T_RP, "',' or ')' in the 'in' list");
		return f;
	}
}

static struct filt *parse_regex(struct ps *ps, int field, bool negate)
{
	struct filt *f = filt_new(ps, F_REGEX);
	if (!f)
		return NULL;
	f->field = (unsigned)field;
	f->negate = negate;
	if (ps->t.kind != T_STR) {
		char b[64];
		fail_at(ps, ps->t.off, "expected a quoted regex after '=~' or '!~', found %s",
			tok_desc(ps, b, sizeof b));
		return f;
	}
	struct kl_str re = unquote(ps, &ps->t);
	int ec;
	PCRE2_SIZE eo;
	f->re = pcre2_compile((PCRE2_SPTR)re.p, re.len, PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &ec, &eo, NULL);
	free((void *)re.p);
	if (!f->re) {
		PCRE2_UCHAR msg[160];
		pcre2_get_error_message(ec, msg, sizeof msg);
		fail_at(ps, quoted_off(ps, &ps->t, eo), "bad regex: %s", (const char *)msg);
		return f;
	}
	pcre2_jit_compile(f->re, PCRE2_JIT_COMPLETE); /* the interpreter is the fallback */
	next(ps);
	return f;
}

static struct filt *parse_field_pred(struct ps *ps)
{
	if (ps->t.kind != T_IDENT) {
		char b[64];
		fail_at(ps, ps->t.off, "expected a field name, 'not' or '(', found %s",
			tok_desc(ps, b, sizeof b));
		return NULL;
	}
	struct tok ft = ps->t;
	int field = field_of(ps, &ft);
	if (field < 0)
		return NULL;
	next(ps);
	if (tok_is(ps, "in") || tok_is(ps, "not")) {
		bool negate = tok_is(ps, "not");
		next(ps);
		if (negate && !tok_is(ps, "in")) {
			fail_at(ps, ps->t.off, "expected 'in' after 'not'");
			return NULL;
		}
		if (negate)
			next(ps);
		return parse_in(ps, field, negate);
	}
	if (ps->t.kind == T_MATCH || ps->t.kind == T_NMATCH) {
		bool negate = ps->t.kind == T_NMATCH;
		next(ps);
		return parse_regex(ps, field, negate);
	}
	if (!is_cmp(ps->t.kind)) {
		char b[64];
		fail_at(ps, ps->t.off,
			"expected a comparison (== != < <= > >= =~ !~ in) after field '%.*s', found %s",
			(int)ft.len, ps->src + ft.off, tok_desc(ps, b, sizeof b));
		return NULL;
	}
	struct tok optok = ps->t;
	enum cmp_op op = cmp_of(ps->t.kind);
	next(ps);
	if (ps->t.kind == T_STR) {
		if (field_numeric(ps, field)) {
			fail_at(ps, ps->t.off, "field '%s' is a number (%s); compare it with a number, not a string",
				field_name(ps, field), parser_type_name(parser_field_type(ps->parser, (unsigned)field)));
			return NULL;
		}
		if (op != OP_EQ && op != OP_NE) {
			fail_at(ps, optok.off, "strings compare only with == and != (or =~ for a regex)");
			return NULL;
		}
		struct filt *f = filt_new(ps, F_CMP_STR);
		if (!f)
			return NULL;
		f->field = (unsigned)field;
		f->op = op;
		f->str = unquote(ps, &ps->t);
		next(ps);
		return f;
	}
	if (!field_numeric(ps, field)) {
		fail_at(ps, ft.off,
			"field '%s' is a string; compare it with a quoted string, or declare it numeric in the parser's types",
			field_name(ps, field));
		return NULL;
	}
	struct filt *f = filt_new(ps, F_CMP_NUM);
	if (!f)
		return NULL;
	f->field = (unsigned)field;
	f->op = op;
	parse_num_lit(ps, &f->num);
	return f;
}

static struct filt *parse_neg_1(struct ps *ps);

static struct filt *parse_neg(struct ps *ps)
{
	if (ps->depth >= MAX_DEPTH) {
		fail_at(ps, ps->t.off, "the expression is nested too deeply (more than %d levels)",
			MAX_DEPTH);
		return NULL;
	}
	ps->depth++;
	struct filt *f = parse_neg_1(ps);
	ps->depth--;
	return f;
}

static struct filt *parse_neg_1(struct ps *ps)
{
	if (tok_is(ps, "not")) {
		next(ps);
		struct filt *f = filt_new(ps, F_NOT);
		if (f)
			f->a = parse_neg(ps);
		return f;
	}
	if (ps->t.kind == T_LP) {
		next(ps);
		struct filt *f = parse_filter(ps);
		expect(ps, T_RP, "')'");
		return f;
	}
	return parse_field_pred(ps);
}

static struct filt *parse_conj(struct ps *ps)
{
	struct filt *l = parse_neg(ps);
	while (!ps->failed && tok_is(ps, "and")) {
		next(ps);
		struct filt *f = filt_new(ps, F_AND);
		if (!f)
			return l;
		f->a = l;
		f->b = parse_neg(ps);
		l = f;
	}
	return l;
}

static struct filt *parse_filter(struct ps *ps)
{
	struct filt *l = parse_conj(ps);
	while (!ps->failed && tok_is(ps, "or")) {
		next(ps);
		struct filt *f = filt_new(ps, F_OR);
		if (!f)
			return l;
		f->a = l;
		f->b = parse_conj(ps);
		l = f;
	}
	return l;
}

static bool cmp_num(enum cmp_op op, double a, double b)
{
	switch (op) {
	case OP_EQ: return a == b;
	case OP_NE: return a != b;
	case OP_LT: return a < b;
	case OP_LE: return a <= b;
	case OP_GT: return a > b;
	default: return a >= b;
	}
}

/* An absent field matches no comparison but "!=", "!~" and "not in": the
 * question "is it not X" is true of a value that is not there. */
bool filt_match(const struct filt *f, struct parser_event *ev, pcre2_match_data *md)
{
	double v;
	struct kl_str s;
	switch (f->kind) {
	case F_TRUE:
		return true;
	case F_AND:
		return filt_match(f->a, ev, md) && filt_match(f->b, ev, md);
	case F_OR:
		return filt_match(f->a, ev, md) || filt_match(f->b, ev, md);
	case F_NOT:
		return !filt_match(f->a, ev, md);
	case F_CMP_NUM:
		if (parser_event_number(ev, f->field, &v) < 0)
			return f->op == OP_NE;
		return cmp_num(f->op, v, f->num);
	case F_IN_NUM:
		if (parser_event_number(ev, f->field, &v) < 0)
			return f->negate;
		for (size_t i = 0; i < f->nin; i++)
			if (v == f->nums[i])
				return !f->negate;
		return f->negate;
	case F_CMP_STR:
		s = ev->raw[f->field];
		if (!s.p)
			return f->op == OP_NE;
		return (s.len == f->str.len && !memcmp(s.p, f->str.p, s.len)) == (f->op == OP_EQ);
	case F_IN_STR:
		s = ev->raw[f->field];
		if (!s.p)
			return f->negate;
		for (size_t i = 0; i < f->nin; i++)
			if (s.len == f->strs[i].len && !memcmp(s.p, f->strs[i].p, s.len))
				return !f->negate;
		return f->negate;
	case F_REGEX:
		s = ev->raw[f->field];
		if (!s.p)
			return f->negate;
		return (pcre2_match(f->re, (PCRE2_SPTR)s.p, s.len, 0, 0, md, NULL) >= 0) != f->negate;
	}
	return false;
}

/* ---- aggregates and values ---------------------------------------------- */

struct fn_info {
	const char *name;
	enum agg_kind kind;
	double q;
};

static const struct fn_info fns[] = {
	{ "count", AGG_COUNT, 0 },     { "rate", AGG_RATE, 0 },	     { "ratio", AGG_RATIO, 0 },
	{ "sum", AGG_SUM, 0 },	       { "avg", AGG_AVG, 0 },	     { "min", AGG_MIN, 0 },
	{ "max", AGG_MAX, 0 },	       { "last", AGG_LAST, 0 },	     { "p50", AGG_QUANTILE, 0.50 },
	{ "p90", AGG_QUANTILE, 0.90 }, { "p95", AGG_QUANTILE, 0.95 }, { "p99", AGG_QUANTILE, 0.99 },
	{ "distinct", AGG_DISTINCT, 0 },
};

/* Anomaly functions: zscore(VALUE, H), baseline(VALUE, P), new(FIELD, H). */
#define HIST_SPAN_MIN_US (60 * 1000000LL)	     /* a minute: one sample */
#define HIST_SPAN_MAX_US (366 * 86400 * 1000000LL) /* a year */

static struct node *node_new(struct ps *ps, enum node_kind k)
{
	if (!node_budget(ps))
		return NULL;
	struct node *n = calloc(1, sizeof *n);
	if (!n)
		fail_at(ps, ps->t.off, "out of memory");
	else
		n->kind = k;
	return n;
}

static void node_free(struct node *n)
{
	if (!n)
		return;
	node_free(n->a);
	node_free(n->b);
	free(n);
}

static unsigned cells_of(enum agg_kind k)
{
	switch (k) {
	case AGG_COUNT:
	case AGG_RATE:
	case AGG_MIN:
	case AGG_MAX:
		return 1;
	case AGG_NEW:
		return 1;
	case AGG_RATIO:
	case AGG_SUM:
	case AGG_AVG:
	case AGG_LAST:
		return 2;
	default:
		return 0;
	}
}

static struct node *add_agg(struct ps *ps, struct agg *a)
{
	struct expr *e = ps->e;
	void *p = realloc(e->aggs, (e->naggs + 1) * sizeof *e->aggs);
	if (!p) {
		fail_at(ps, ps->t.off, "out of memory");
		filt_free(a->filter);
		filt_free(a->base);
		return NULL;
	}
	e->aggs = p;
	a->cell = e->ncells;
	a->ncells = cells_of(a->kind);
	e->ncells += a->ncells;
	a->sketch = -1;
	if (a->kind == AGG_QUANTILE)
		a->sketch = (int)e->nsketches++;
	else if (a->kind == AGG_DISTINCT)
		a->sketch = (int)e->nhlls++;
	else if (a->kind == AGG_NEW)
		e->nnew++;
	e->aggs[e->naggs] = *a;
	struct node *n = node_new(ps, N_AGG);
	if (n)
		n->agg = (unsigned)e->naggs;
	e->naggs++;
	return n;
}

static struct node *parse_value(struct ps *ps, int min_prec);

static bool node_is_bool(const struct node *n)
{
	return n->kind == N_CMP || n->kind == N_AND || n->kind == N_OR || n->kind == N_NOT;
}

/* The value reads the window (not a constant, not another history). */
static bool has_agg(const struct node *n)
{
	if (!n || n->kind == N_ZSCORE || n->kind == N_BASELINE)
		return false;
	return n->kind == N_AGG || has_agg(n->a) || has_agg(n->b);
}

static bool name_is(const struct ps *ps, const struct tok *t, const char *word)
{
	return strlen(word) == t->len && !memcmp(word, ps->src + t->off, t->len);
}

/* The duration argument of an anomaly function: `, 1d)`. */
static bool parse_span(struct ps *ps, const char *fn, int64_t *out)
{
	char b[64];
	if (!expect(ps, T_COMMA, "',' and a duration (e.g. 1d) after the first argument"))
		return false;
	size_t off = ps->t.off;
	if (ps->t.kind != T_NUM) {
		fail_at(ps, off, "%s() takes a duration second, e.g. 1d, found %s", fn,
			tok_desc(ps, b, sizeof b));
		return false;
	}
	double us = ps->t.num * 1e6;
	if (!(us >= (double)HIST_SPAN_MIN_US && us <= (double)HIST_SPAN_MAX_US)) {
		fail_at(ps, off, "%s(): the duration must be between 1m and 366d", fn);
		return false;
	}
	*out = (int64_t)us;
	next(ps);
	return expect(ps, T_RP, "')' to close the call");
}

/* zscore(VALUE, H) and baseline(VALUE, P): VALUE is any arithmetic of
 * aggregates; each call gets a history (expr.hists). */
static struct node *parse_hist_call(struct ps *ps, const struct tok *name, enum hist_kind kind)
{
	const char *fn = kind == HIST_ZSCORE ? "zscore" : "baseline";
	next(ps); /* '(' */
	size_t inner_off = ps->t.off;
	struct node *inner = parse_value(ps, 5); /* arithmetic only: no comparison */
	int64_t span = 0;
	if (ps->failed || !parse_span(ps, fn, &span)) {
		node_free(inner);
		return NULL;
	}
	if (!inner || node_is_bool(inner) || !has_agg(inner)) {
		fail_at(ps, inner_off, "%s() takes an aggregate first, e.g. %s(rate(), %s)", fn, fn,
			kind == HIST_ZSCORE ? "1d" : "1d");
		node_free(inner);
		return NULL;
	}
	struct expr *e = ps->e;
	struct hist_shape *h = realloc(e->hists, (e->nhists + 1) * sizeof *h);
	struct node *n = h ? node_new(ps, kind == HIST_ZSCORE ? N_ZSCORE : N_BASELINE) : NULL;
	if (h)
		e->hists = h;
	if (!n) {
		if (!h)
			fail_at(ps, name->off, "out of memory");
		node_free(inner);
		return NULL;
	}
	hist_shape_init(&e->hists[e->nhists], kind, span);
	e->hists[e->nhists].node = n;
	n->a = inner;
	n->hist = e->nhists++;
	return n;
}

/* new(FIELD, H): a count of the window's events with a value not seen in H. */
static struct node *parse_new_call(struct ps *ps)
{
	char b[64];
	next(ps); /* '(' */
	if (ps->t.kind != T_IDENT) {
		fail_at(ps, ps->t.off, "new() takes a field name first, e.g. new(exception, 7d), found %s",
			tok_desc(ps, b, sizeof b));
		return NULL;
	}
	struct agg a = { .kind = AGG_NEW, .field = field_of(ps, &ps->t) };
	if (a.field < 0)
		return NULL;
	next(ps);
	if (!parse_span(ps, "new", &a.span_us))
		return NULL;
	return add_agg(ps, &a);
}

static struct node *parse_call(struct ps *ps, const struct tok *name)
{
	const struct fn_info *fn = NULL;
	for (size_t k = 0; k < KL_ARRAY_LEN(fns); k++)
		if (strlen(fns[k].name) == name->len && !memcmp(fns[k].name, ps->src + name->off, name->len))
			fn = &fns[k];
	if (!fn) {
		if (name_is(ps, name, "zscore"))
			return parse_hist_call(ps, name, HIST_ZSCORE);
		if (name_is(ps, name, "baseline"))
			return parse_hist_call(ps, name, HIST_BASELINE);
		if (name_is(ps, name, "new"))
			return parse_new_call(ps);
		fail_at(ps, name->off,
			"unknown function '%.*s'; expected count, rate, ratio, sum, avg, min, max, last, p50, p90, p95, p99, distinct, zscore, baseline or new",
			(int)name->len, ps->src + name->off);
		return NULL;
	}
	next(ps); /* '(' */
	struct agg a = { .kind = fn->kind, .field = -1, .q = fn->q };
	bool wants_field = fn->kind >= AGG_SUM;
	if (wants_field) {
		if (ps->t.kind != T_IDENT) {
			char b[64];
			fail_at(ps, ps->t.off, "%s() takes a field name first, found %s", fn->name,
				tok_desc(ps, b, sizeof b));
			return NULL;
		}
		a.field = field_of(ps, &ps->t);
		if (a.field < 0)
			return NULL;
		if (fn->kind != AGG_DISTINCT && fn->kind != AGG_LAST && !field_numeric(ps, a.field)) {
			fail_at(ps, ps->t.off,
				"%s() needs a numeric field, and '%s' is a string; declare its type in the parser's types",
				fn->name, field_name(ps, a.field));
			return NULL;
		}
		if (fn->kind == AGG_LAST && !field_numeric(ps, a.field)) {
			fail_at(ps, ps->t.off, "last() needs a numeric field, and '%s' is a string",
				field_name(ps, a.field));
			return NULL;
		}
		next(ps);
		if (ps->t.kind == T_COMMA) {
			next(ps);
			a.filter = parse_filter(ps);
		}
	} else if (ps->t.kind != T_RP) {
		a.filter = parse_filter(ps);
		if (fn->kind == AGG_RATIO && ps->t.kind == T_COMMA) {
			next(ps);
			a.base = parse_filter(ps);
		}
	} else if (fn->kind == AGG_RATIO) {
		fail_at(ps, ps->t.off, "ratio() needs a filter: ratio(status >= 500)");
	}
	if (!ps->failed)
		expect(ps, T_RP, "')' to close the call");
	if (ps->failed) {
		filt_free(a.filter);
		filt_free(a.base);
		return NULL;
	}
	return add_agg(ps, &a);
}

static struct node *parse_primary_1(struct ps *ps);

static struct node *parse_primary(struct ps *ps)
{
	if (ps->depth >= MAX_DEPTH) {
		fail_at(ps, ps->t.off, "the expression is nested too deeply (more than %d levels)",
			MAX_DEPTH);
		return NULL;
	}
	ps->depth++;
	struct node *n = parse_primary_1(ps);
	ps->depth--;
	return n;
}

static struct node *parse_primary_1(struct ps *ps)
{
	char b[64];
	switch (ps->t.kind) {
	case T_NUM: {
		struct node *n = node_new(ps, N_NUM);
		if (n)
			n->num = ps->t.num;
		next(ps);
		return n;
	}
	case T_MINUS: {
		next(ps);
		struct node *n = node_new(ps, N_NEG);
		if (n)
			n->a = parse_primary(ps);
		return n;
	}
	case T_LP: {
		next(ps);
		struct node *n = parse_value(ps, 0);
		expect(ps, T_RP, "')'");
		return n;
	}
	case T_IDENT: {
		if (tok_is(ps, "not")) {
			next(ps);
			struct node *n = node_new(ps, N_NOT);
			if (n)
				n->a = parse_value(ps, 3);
			return n;
		}
		struct tok name = ps->t;
		next(ps);
		if (ps->t.kind != T_LP) {
			fail_at(ps, name.off,
				"'%.*s' is not a function call; fields are used inside an aggregate, e.g. max(%.*s)",
				(int)name.len, ps->src + name.off, (int)name.len, ps->src + name.off);
			return NULL;
		}
		return parse_call(ps, &name);
	}
	default:
		fail_at(ps, ps->t.off, "expected a number, an aggregate such as count() or '(', found %s",
			tok_desc(ps, b, sizeof b));
		return NULL;
	}
}

/* Binding powers: or 1, and 2, not 3, comparisons 4, + - 5, * / 6. */
static int prec_of(const struct ps *ps, enum node_kind *k)
{
	switch (ps->t.kind) {
	case T_PLUS: *k = N_ADD; return 5;
	case T_MINUS: *k = N_SUB; return 5;
	case T_STAR: *k = N_MUL; return 6;
	case T_SLASH: *k = N_DIV; return 6;
	case T_EQ: case T_NE: case T_LT: case T_LE: case T_GT: case T_GE:
		*k = N_CMP;
		return 4;
	case T_IDENT:
		if (tok_is(ps, "and")) {
			*k = N_AND;
			return 2;
		}
		if (tok_is(ps, "or")) {
			*k = N_OR;
			return 1;
		}
		return -1;
	default:
		return -1;
	}
}

static struct node *parse_value(struct ps *ps, int min_prec)
{
	struct node *l = parse_primary(ps);
	for (;;) {
		if (ps->failed)
			return l;
		enum node_kind k;
		int p = prec_of(ps, &k);
		if (p < 0 || p < min_prec)
			return l;
		enum cmp_op op = cmp_of(ps->t.kind);
		next(ps);
		struct node *n = node_new(ps, k);
		if (!n)
			return l;
		n->op = op;
		n->a = l;
		n->b = parse_value(ps, p + 1);
		l = n;
	}
}


/* Check operand kinds; returns false after reporting. Offsets are not kept
 * per node, so these errors point at the start of the expression. */
static bool type_check(struct ps *ps, const struct node *n, bool want_bool)
{
	if (!n)
		return false;
	if (node_is_bool(n) != want_bool) {
		fail_at(ps, 0, want_bool ? "the expression must be a condition, e.g. ratio(status >= 500) > 5%%"
					 : "a condition (comparison, and, or, not) cannot be used as a number");
		return false;
	}
	switch (n->kind) {
	case N_AND:
	case N_OR:
		return type_check(ps, n->a, true) && type_check(ps, n->b, true);
	case N_NOT:
		return type_check(ps, n->a, true);
	case N_CMP:
	case N_ADD:
	case N_SUB:
	case N_MUL:
	case N_DIV:
		return type_check(ps, n->a, false) && type_check(ps, n->b, false);
	case N_NEG:
	case N_ZSCORE:
	case N_BASELINE:
		return type_check(ps, n->a, false);
	default:
		return true;
	}
}

int expr_compile(const char *src, const struct parser *p, struct expr *out, char *err,
		 size_t errlen, size_t *erroff)
{
	struct expr e = { .ncells = 1 }; /* cell 0 counts every event */
	struct ps ps = { .src = src, .len = strlen(src), .parser = p, .e = &e, .err = err, .errlen = errlen };
	next(&ps);
	e.root = parse_value(&ps, 0);
	if (!ps.failed && ps.t.kind != T_END) {
		char b[64];
		fail_at(&ps, ps.t.off, "expected an operator or the end of the expression, found %s",
			tok_desc(&ps, b, sizeof b));
	}
	if (!ps.failed)
		type_check(&ps, e.root, true);
	if (ps.failed) {
		*erroff = ps.erroff;
		expr_free(&e);
		return -EINVAL;
	}
	*out = e;
	return 0;
}

void expr_free(struct expr *e)
{
	node_free(e->root);
	for (size_t i = 0; i < e->naggs; i++) {
		filt_free(e->aggs[i].filter);
		filt_free(e->aggs[i].base);
	}
	free(e->aggs);
	free(e->hists);
	memset(e, 0, sizeof *e);
}
