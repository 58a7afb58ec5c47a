/*
 * json.c — JSON lines: the `json` and `postgres_json` built-ins.
 *
 * One JSON object per record. There is no regex: a hand-written scanner
 * validates the whole object (RFC 8259 structure: strings, numbers, literals,
 * nesting up to JSON_MAX_DEPTH) and extracts only the registered fields.
 *
 * The registry. Any key path is a field: "a.b" is key "b" of the object under
 * key "a" (and also a flat key "a.b", or "a" → "b.c" → ..., whichever the
 * record has: a path matches key by key at '.' boundaries). A name is
 * registered the first time parser_field_index asks for it (the rules do, at
 * load), up to PARSER_MAX_FIELDS; the field table and this registry sit
 * behind pointers in the parser, so a const parser can grow them. Parsing
 * never changes the registry. Names declared in `types:` and the time field
 * are registered at parser_new.
 *
 * Values. A string is a view into the record when it has no escapes, else it
 * is unescaped into the parser's scratch buffer (\uXXXX to UTF-8, surrogate
 * pairs joined, a lone surrogate as U+FFFD, \u0000 as a NUL byte); the
 * buffer is sized to the record before scanning (unescaping only shrinks), so
 * it never moves during a parse: field views stay valid until the next
 * parse. A number is kept as its text, and so are true and false (bit i of
 * ev->literal says so, and parser_event_json writes them unquoted); null is
 * absent; an object or array is its JSON text, as a string. Bytes inside
 * strings are not judged (control bytes and invalid UTF-8 are just bytes, as
 * elsewhere in klaxon); the structure is. If a key repeats, the last one wins.
 *
 * Types. A field declared in `types:` has that type (a JSON number or a
 * numeric string both convert). An undeclared field is a string for the
 * rules — `latency > 5` on it is refused at load with the rules stage's
 * "declare it numeric in the parser's types" — even when its values are JSON
 * numbers; those still print as numbers in the event's JSON. No guessing from
 * names or from the first values seen: declare what you compare.
 *
 * Time. json: spec.time_field names the key path (default "time"); its value
 * is read with spec.time_format (ISO 8601 by default, any strptime-like
 * format, or "epoch"), and a JSON number is always epoch seconds (or ms, µs,
 * ns by magnitude). An explicit time field that is missing or does not parse
 * makes the record a bad_time error; the default "time" is optional (the read
 * time then). postgres_json: "timestamp", "2023-11-14 22:13:20.123 UTC".
 *
 * postgres_json (PostgreSQL 15 log_destination = jsonlog, checked against a
 * real server): the fixed fields severity ← error_severity, sqlstate ←
 * state_code, user, database ← dbname, pid (int), application ←
 * application_name, remote_host, message, detail, hint, context, statement,
 * query ← internal_query, and from the message duration ("duration: 1.5 ms",
 * in seconds) and statement (when the record has no "statement" key: a
 * duration's "statement: ..."). Other jsonlog keys register by their own
 * names; the numeric ones jsonlog writes (remote_port, line_num, txid,
 * leader_pid, query_id, cursor_position, internal_position) as int.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "parsers/parsers_int.h"

#define JSON_MAX_DEPTH 128
#define JSON_MAX_NAME 256

struct json_state {
	bool pg;
	char *owned[PARSER_MAX_FIELDS];	   /* registered names we copied */
	const char *path[PARSER_MAX_FIELDS]; /* key path; NULL: not from a key */
	size_t pathlen[PARSER_MAX_FIELDS];
	/* postgres_json */
	int message, duration, statement;
	/* the scratch buffer strings are unescaped into */
	char *scratch;
	size_t cap;
	/* top-level keys: bit f of by_byte[c] says path f starts with byte c;
	 * rebuilt when the registry has grown (indexed for fields) */
	uint64_t by_byte[256];
	unsigned indexed;
};

/* A registered path that the enclosing keys matched so far: rest is what is
 * left of it. */
struct cand {
	const char *rest;
	uint32_t rl;
	uint8_t field;
};

struct jscan {
	const char *s, *e; /* cursor, end */
	const struct json_state *js;
	struct parser_event *ev;
	char *out; /* scratch, next free byte */
};

static const char *const pg_numeric[] = { "remote_port", "line_num", "txid", "leader_pid",
					  "query_id", "cursor_position", "internal_position" };

/* ------------------------------------------------------------------------- */
/* The registry */

/* Register a field. Takes the two tables, not the parser: a const parser's
 * pointers lead to them, and registering changes nothing else. */
static int reg(struct parser_fields *f, struct json_state *js, const char *name,
	       const char *path, enum parser_type type, bool copy)
{
	if (f->n == PARSER_MAX_FIELDS)
		return -1;
	unsigned i = f->n;
	if (copy) {
		js->owned[i] = kl_strndup(name, strlen(name));
		if (!js->owned[i])
			return -1;
		name = path = js->owned[i];
	}
	f->name[i] = name;
	f->type[i] = type;
	js->path[i] = path;
	js->pathlen[i] = path ? strlen(path) : 0;
	f->n++;
	return (int)i;
}

int json_field_index(const struct parser *p, const char *name, size_t len)
{
	int idx = parser_find_field(p, name, len);
	if (idx >= 0)
		return idx;
	if (len == 0 || len > JSON_MAX_NAME || memchr(name, '\0', len))
		return -1;
	char buf[JSON_MAX_NAME + 1];
	memcpy(buf, name, len);
	buf[len] = '\0';
	enum parser_type t = PARSER_T_STRING;
	if (p->js->pg)
		for (size_t i = 0; i < KL_ARRAY_LEN(pg_numeric); i++)
			if (strcmp(pg_numeric[i], buf) == 0)
				t = PARSER_T_INT;
	return reg(p->fields, p->js, buf, NULL, t, true);
}

struct pg_key {
	const char *name, *path;
	enum parser_type type;
};

static const struct pg_key pg_keys[] = {
	{ "time", "timestamp", PARSER_T_TIME },
	{ "severity", "error_severity", PARSER_T_STRING },
	{ "sqlstate", "state_code", PARSER_T_STRING },
	{ "user", "user", PARSER_T_STRING },
	{ "database", "dbname", PARSER_T_STRING },
	{ "pid", "pid", PARSER_T_INT },
	{ "application", "application_name", PARSER_T_STRING },
	{ "remote_host", "remote_host", PARSER_T_STRING },
	{ "message", "message", PARSER_T_STRING },
	{ "duration", NULL, PARSER_T_MS },
	{ "statement", "statement", PARSER_T_STRING },
	{ "detail", "detail", PARSER_T_STRING },
	{ "hint", "hint", PARSER_T_STRING },
	{ "context", "context", PARSER_T_STRING },
	{ "query", "internal_query", PARSER_T_STRING },
};

int json_new(struct parser *p, const struct parser_spec *spec, bool pg, char *err,
	     size_t errlen)
{
	struct json_state *js = calloc(1, sizeof *js);
	if (!js)
		goto nomem;
	p->js = js;
	js->pg = pg;
	js->message = js->duration = js->statement = -1;

	if (pg) {
		for (size_t i = 0; i < KL_ARRAY_LEN(pg_keys); i++)
			if (reg(p->fields, js, pg_keys[i].name, pg_keys[i].path, pg_keys[i].type,
				false) < 0)
				goto nomem;
		js->message = parser_find_field(p, "message", 7);
		js->duration = parser_find_field(p, "duration", 8);
		js->statement = parser_find_field(p, "statement", 9);
		p->time_idx = parser_find_field(p, "time", 4);
		if (timefmt_compile(&p->tf, "%Y-%m-%d %H:%M:%S.%f %Z", err, errlen) < 0)
			return -EINVAL;
	}

	for (size_t i = 0; i < spec->ntypes; i++) {
		const char *tn = spec->types[i].name ? spec->types[i].name : "";
		enum parser_type t = spec->types[i].type;
		if ((unsigned)t > PARSER_T_MS) {
			parser_set_err(err, errlen, "types: '%s' has an unknown type", tn);
			return -EINVAL;
		}
		int f = parser_find_field(p, tn, strlen(tn));
		if (f >= 0 && pg) {
			parser_set_err(err, errlen,
				       "types: '%s' has a fixed type in postgres_json (%s); remove it",
				       tn, parser_type_name(p->fields->type[f]));
			return -EINVAL;
		}
		if (f < 0)
			f = json_field_index(p, tn, strlen(tn));
		if (f < 0) {
			parser_set_err(err, errlen,
				       *tn ? "types: too many fields (at most %d)"
					   : "types: a field with an empty name (at most %d fields)",
				       PARSER_MAX_FIELDS);
			return -EINVAL;
		}
		p->fields->type[f] = t;
	}

	if (!pg) {
		const char *tfield = spec->time_field ? spec->time_field : "time";
		int f = json_field_index(p, tfield, strlen(tfield));
		if (f < 0) {
			parser_set_err(err, errlen, "time.field: '%s' cannot be a field", tfield);
			return -EINVAL;
		}
		if (parser_type_is_numeric(p->fields->type[f])) {
			parser_set_err(err, errlen,
				       "types: '%s' is the time field, so it cannot also be %s (time.format says how to read it)",
				       tfield, parser_type_name(p->fields->type[f]));
			return -EINVAL;
		}
		p->fields->type[f] = PARSER_T_TIME;
		p->time_idx = f;
		p->time_lenient = spec->time_field == NULL;
		if (timefmt_compile(&p->tf, spec->time_format, err, errlen) < 0)
			return -EINVAL;
	}
	return 0;
nomem:
	parser_set_err(err, errlen, "out of memory");
	return -ENOMEM;
}

void json_free(struct parser *p)
{
	struct json_state *js = p->js;
	if (!js)
		return;
	for (unsigned i = 0; i < PARSER_MAX_FIELDS; i++)
		free(js->owned[i]);
	free(js->scratch);
	free(js);
	p->js = NULL;
}

/* ------------------------------------------------------------------------- */
/* The scanner */

static void ws(struct jscan *j)
{
	while (j->s < j->e && (*j->s == ' ' || *j->s == '\t' || *j->s == '\n' || *j->s == '\r'))
		j->s++;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool hex4(const char *s, unsigned *out)
{
	unsigned v = 0;
	for (int i = 0; i < 4; i++) {
		int h = hexval(s[i]);
		if (h < 0)
			return false;
		v = v << 4 | (unsigned)h;
	}
	*out = v;
	return true;
}

/* A string at j->s (the opening quote): its raw body, and whether it holds
 * escapes. Escapes are validated here. */
static int scan_string(struct jscan *j, struct kl_str *body, bool *esc)
{
	const char *s = j->s + 1, *e = j->e;
	*esc = false;
	for (;;) {
		/* eight bytes at a time to the next '"' or '\\' */
		while (e - s >= 8) {
			uint64_t x, q, b;
			memcpy(&x, s, 8);
			q = x ^ 0x2222222222222222ull;
			b = x ^ 0x5C5C5C5C5C5C5C5Cull;
			if (((q - 0x0101010101010101ull) & ~q & 0x8080808080808080ull) |
			    ((b - 0x0101010101010101ull) & ~b & 0x8080808080808080ull))
				break;
			s += 8;
		}
		while (s < e && *s != '"' && *s != '\\')
			s++;
		if (s >= e)
			return -EINVAL;
		if (*s == '"')
			break;
		*esc = true;
		if (e - s < 2)
			return -EINVAL;
		switch (s[1]) {
		case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
			s += 2;
			break;
		case 'u': {
			unsigned v;
			if (e - s < 6 || !hex4(s + 2, &v))
				return -EINVAL;
			s += 6;
			break;
		}
		default:
			return -EINVAL;
		}
	}
	*body = (struct kl_str){ j->s + 1, (size_t)(s - (j->s + 1)) };
	j->s = s + 1;
	return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xC0 | cp >> 6);
		o[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xE0 | cp >> 12);
		o[1] = (char)(0x80 | (cp >> 6 & 0x3F));
		o[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	o[0] = (char)(0xF0 | cp >> 18);
	o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
	o[2] = (char)(0x80 | (cp >> 6 & 0x3F));
	o[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

/* Unescape a validated body into out; the length written (never more than
 * n: every escape is longer than what it stands for). */
static size_t unescape(const char *s, size_t n, char *out)
{
	size_t i = 0, o = 0;
	while (i < n) {
		if (s[i] != '\\') {
			out[o++] = s[i++];
			continue;
		}
		char c = s[i + 1];
		i += 2;
		switch (c) {
		case 'b': out[o++] = '\b'; break;
		case 'f': out[o++] = '\f'; break;
		case 'n': out[o++] = '\n'; break;
		case 'r': out[o++] = '\r'; break;
		case 't': out[o++] = '\t'; break;
		case 'u': {
			unsigned cp = 0xFFFD, lo;
			(void)hex4(s + i, &cp); /* validated by scan_string */
			i += 4;
			if (cp >= 0xD800 && cp <= 0xDBFF) {
				if (i + 6 <= n && s[i] == '\\' && s[i + 1] == 'u' && hex4(s + i + 2, &lo) &&
				    lo >= 0xDC00 && lo <= 0xDFFF) {
					cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
					i += 6;
				} else {
					cp = 0xFFFD; /* a lone high surrogate */
				}
			} else if (cp >= 0xDC00 && cp <= 0xDFFF) {
				cp = 0xFFFD; /* a lone low surrogate */
			}
			o += put_utf8(out + o, cp);
			break;
		}
		default: out[o++] = c; break; /* '"', '\\', '/' */
		}
	}
	return o;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int scan_number(struct jscan *j)
{
	const char *s = j->s, *e = j->e;
	if (s < e && *s == '-')
		s++;
	if (s >= e || !is_digit(*s))
		return -EINVAL;
	if (*s == '0')
		s++;
	else
		while (s < e && is_digit(*s))
			s++;
	if (s < e && *s == '.') {
		s++;
		if (s >= e || !is_digit(*s))
			return -EINVAL;
		while (s < e && is_digit(*s))
			s++;
	}
	if (s < e && (*s == 'e' || *s == 'E')) {
		s++;
		if (s < e && (*s == '+' || *s == '-'))
			s++;
		if (s >= e || !is_digit(*s))
			return -EINVAL;
		while (s < e && is_digit(*s))
			s++;
	}
	j->s = s;
	return 0;
}

static int scan_literal(struct jscan *j, const char *lit, size_t n)
{
	if ((size_t)(j->e - j->s) < n || memcmp(j->s, lit, n) != 0)
		return -EINVAL;
	j->s += n;
	return 0;
}

static int parse_object(struct jscan *j, const struct cand *cands, unsigned nc, bool top,
			unsigned depth);

/* Any value, validated and skipped (or, for objects with candidates, parsed). */
static int skip_value(struct jscan *j, unsigned depth)
{
	struct kl_str body;
	bool esc;

	if (j->s >= j->e)
		return -EINVAL;
	switch (*j->s) {
	case '"':
		return scan_string(j, &body, &esc);
	case '{':
		return parse_object(j, NULL, 0, false, depth);
	case '[':
		if (depth >= JSON_MAX_DEPTH)
			return -EINVAL;
		j->s++;
		ws(j);
		if (j->s < j->e && *j->s == ']') {
			j->s++;
			return 0;
		}
		for (;;) {
			ws(j);
			if (skip_value(j, depth + 1) < 0)
				return -EINVAL;
			ws(j);
			if (j->s >= j->e)
				return -EINVAL;
			if (*j->s == ']') {
				j->s++;
				return 0;
			}
			if (*j->s != ',')
				return -EINVAL;
			j->s++;
		}
	case 't':
		return scan_literal(j, "true", 4);
	case 'f':
		return scan_literal(j, "false", 5);
	case 'n':
		return scan_literal(j, "null", 4);
	default:
		return scan_number(j);
	}
}

/* Match a key against the candidates: exact matches are targets, prefixes
 * up to a '.' continue as children. */
static void match_key(struct kl_str key, const struct cand *c, struct cand *child,
		      unsigned *nchild, uint8_t *targets, unsigned *nt)
{
	if (key.len > c->rl || memcmp(c->rest, key.p, key.len) != 0)
		return;
	if (key.len == c->rl)
		targets[(*nt)++] = c->field;
	else if (c->rest[key.len] == '.')
		child[(*nchild)++] = (struct cand){ c->rest + key.len + 1,
						    c->rl - (uint32_t)key.len - 1, c->field };
}

/* The object at j->s ('{'). cands: the registered paths that the enclosing
 * keys matched so far; top: the object is the record (every path is a
 * candidate: js->by_byte finds them by their first byte). */
static int parse_object(struct jscan *j, const struct cand *cands, unsigned nc, bool top,
			unsigned depth)
{
	const struct json_state *js = j->js;
	struct parser_event *ev = j->ev;

	if (depth >= JSON_MAX_DEPTH || j->s >= j->e || *j->s != '{')
		return -EINVAL;
	j->s++;
	ws(j);
	if (j->s < j->e && *j->s == '}') {
		j->s++;
		return 0;
	}
	for (;;) {
		struct kl_str key;
		bool esc;
		struct cand child[PARSER_MAX_FIELDS];
		uint8_t targets[PARSER_MAX_FIELDS];
		unsigned nchild = 0, nt = 0;

		ws(j);
		if (j->s >= j->e || *j->s != '"' || scan_string(j, &key, &esc) < 0)
			return -EINVAL;
		if (nc || top) {
			if (esc) { /* compare the unescaped key; the scratch is not kept */
				size_t kl = unescape(key.p, key.len, j->out);
				key = (struct kl_str){ j->out, kl };
			}
			unsigned char k0 = key.len ? (unsigned char)key.p[0] : 0;
			if (top) {
				for (uint64_t m = js->by_byte[k0]; m; m &= m - 1) {
					unsigned f = (unsigned)__builtin_ctzll(m);
					struct cand c = { js->path[f], (uint32_t)js->pathlen[f],
							  (uint8_t)f };
					match_key(key, &c, child, &nchild, targets, &nt);
				}
			} else {
				for (unsigned c = 0; c < nc; c++)
					if ((unsigned char)cands[c].rest[0] == k0)
						match_key(key, &cands[c], child, &nchild, targets,
							  &nt);
			}
		}
		ws(j);
		if (j->s >= j->e || *j->s != ':')
			return -EINVAL;
		j->s++;
		ws(j);
		if (j->s >= j->e)
			return -EINVAL;

		const char *vs = j->s;
		char c0 = *vs;
		struct kl_str val = { NULL, 0 };
		bool literal = false;
		if (c0 == '"') {
			if (scan_string(j, &val, &esc) < 0)
				return -EINVAL;
			if (esc && nt) {
				size_t n = unescape(val.p, val.len, j->out);
				val = (struct kl_str){ j->out, n };
				j->out += n;
			}
		} else if (c0 == '{' && nchild) {
			if (parse_object(j, child, nchild, false, depth + 1) < 0)
				return -EINVAL;
			val = (struct kl_str){ vs, (size_t)(j->s - vs) };
		} else {
			if (skip_value(j, depth + 1) < 0)
				return -EINVAL;
			val = (struct kl_str){ vs, (size_t)(j->s - vs) };
			literal = c0 != '{' && c0 != '[';
			if (c0 == 'n')
				val = (struct kl_str){ NULL, 0 }; /* null: absent */
		}
		for (unsigned t = 0; t < nt; t++) {
			ev->raw[targets[t]] = val;
			if (literal && val.p)
				ev->literal |= 1ull << targets[t];
			else
				ev->literal &= ~(1ull << targets[t]);
		}

		ws(j);
		if (j->s >= j->e)
			return -EINVAL;
		if (*j->s == '}') {
			j->s++;
			return 0;
		}
		if (*j->s != ',')
			return -EINVAL;
		j->s++;
	}
}

int json_parse(struct parser *p, const char *rec, size_t len, int64_t read_us,
	       struct parser_event *ev)
{
	struct json_state *js = p->js;
	const struct parser_fields *f = p->fields;

	if (js->cap < len) {
		size_t cap = js->cap ? js->cap : 256;
		while (cap < len)
			cap *= 2;
		char *s = realloc(js->scratch, cap);
		if (!s) {
			p->stats.unmatched++;
			return -ENOMEM;
		}
		js->scratch = s;
		js->cap = cap;
	}
	if (js->indexed != f->n) { /* fields were registered since */
		memset(js->by_byte, 0, sizeof js->by_byte);
		for (unsigned i = 0; i < f->n; i++)
			if (js->path[i])
				js->by_byte[(unsigned char)js->path[i][0]] |= 1ull << i;
		js->indexed = f->n;
	}
	for (unsigned i = 0; i < f->n; i++)
		ev->raw[i] = (struct kl_str){ NULL, 0 };
	ev->parser = p;
	ev->read_us = read_us;
	ev->num_tried = 0;
	ev->num_ok = 0;
	ev->literal = 0;

	struct jscan j = { rec, rec + len, js, ev, js->scratch };
	ws(&j);
	if (parse_object(&j, NULL, 0, true, 0) < 0)
		goto bad;
	ws(&j);
	if (j.s != j.e)
		goto bad;

	if (js->pg) {
		struct kl_str dur, stmt;
		const struct kl_str *m = &ev->raw[js->message];
		pg_message_fields(m->p, m->len, &dur, &stmt);
		ev->raw[js->duration] = dur;
		if (!ev->raw[js->statement].p)
			ev->raw[js->statement] = stmt;
	}

	ev->time_us = read_us;
	if (p->time_idx >= 0) {
		const struct kl_str *t = &ev->raw[p->time_idx];
		int rc = -EINVAL;
		if (t->p)
			rc = (ev->literal >> p->time_idx & 1)
				     ? timefmt_epoch(t->p, t->len, &ev->time_us)
				     : timefmt_parse(&p->tf, t->p, t->len, &ev->time_us);
		if (rc < 0) {
			ev->time_us = read_us;
			if (!p->time_lenient) {
				p->stats.bad_time++;
				return -EINVAL;
			}
		}
	}
	p->stats.parsed++;
	return 0;
bad:
	p->stats.unmatched++;
	return -EINVAL;
}
