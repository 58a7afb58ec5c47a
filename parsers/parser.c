/*
 * parser.c — a parser is one PCRE2 regex whose named groups are the fields.
 *
 * Design and invariants:
 * - Everything that costs is done once, in parser_new: the regex is compiled
 *   (built-ins with PCRE2_ANCHORED; user regexes as given), JIT-compiled with
 *   PCRE2_JIT_COMPLETE (the interpreter is the fallback, with a warning), the
 *   name table is mapped to field indexes, the time format is compiled, and the
 *   one pcre2_match_data, match context and JIT stack are allocated.
 * - parser_parse allocates nothing and copies nothing: one pcre2_jit_match, then
 *   the ovector becomes {ptr, len} views into the caller's record. Numbers are
 *   converted later, on demand (fields.c). The event time goes through the time
 *   format's one-entry cache (timefmt.c), so lines of the same second cost a
 *   memcmp.
 * - Fields are numbered in the order of their first capture group, so the
 *   built-ins list them in the documented order. Several groups may carry one
 *   name ((?J), (?|...)): the first that matched gives the field.
 * - Subjects are bytes: built-in regexes are compiled without UTF, so NULs and
 *   invalid UTF-8 are ordinary bytes. A user regex that turns UTF on with (*UTF)
 *   is recompiled with PCRE2_MATCH_INVALID_UTF, because pcre2_jit_match does no
 *   UTF check of its own and invalid input must never be undefined behaviour.
 * - A match that hits the match limit (catastrophic backtracking in a user
 *   regex) counts as unmatched; the limit bounds the time one line can take.
 * - A parser is single-threaded (the match data and the time cache are its).
 * - Built-in formats come in three shapes (builtin.c): a fixed regex (nginx,
 *   gunicorn_access); a regex derived once from an option, with a post hook
 *   that sets the fields a regex cannot (django's exception from a traceback,
 *   postgres' folded DETAIL/HINT/CONTEXT/STATEMENT lines, durations); and
 *   json.c's allocation-free scanner (json, postgres_json), which has no regex
 *   at all. The field table sits behind a pointer (struct parser_fields) so
 *   that json's registry can grow on lookup without casting away const.
 * - Every parser has the derived field `signature` (signature.c), registered
 *   by its first lookup and computed after a successful parse only from then
 *   on: one test of an int on the path of a parser that does not use it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/kl_regex.h"
#include "parsers/parsers_int.h"

/* Backtracking steps a line may take before it counts as unmatched. The
 * built-ins need a few hundred; a sane user regex a few thousand. */
#define PARSER_MATCH_LIMIT 1000000
#define PARSER_JIT_STACK_MAX (1024 * 1024)

void parser_set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static const char *const type_names[] = {
	[PARSER_T_STRING] = "string", [PARSER_T_INT] = "int",	[PARSER_T_FLOAT] = "float",
	[PARSER_T_SECONDS] = "seconds", [PARSER_T_MS] = "ms", [PARSER_T_TIME] = "time",
};

int parser_type_from_name(const char *name, enum parser_type *out)
{
	if (!name)
		return -EINVAL;
	/* "time" is not a type a user declares: time.field says it. */
	for (int t = PARSER_T_STRING; t <= PARSER_T_MS; t++) {
		if (strcmp(type_names[t], name) == 0) {
			*out = (enum parser_type)t;
			return 0;
		}
	}
	return -EINVAL;
}

const char *parser_type_name(enum parser_type t)
{
	if ((unsigned)t < KL_ARRAY_LEN(type_names))
		return type_names[t];
	return "unknown";
}

int parser_find_field(const struct parser *p, const char *name, size_t len)
{
	const struct parser_fields *f = p->fields;
	for (unsigned i = 0; i < f->n; i++) {
		if (strlen(f->name[i]) == len && memcmp(f->name[i], name, len) == 0)
			return (int)i;
	}
	return -1;
}

int parser_add_field(struct parser *p, const char *name, enum parser_type type)
{
	struct parser_fields *f = p->fields;
	if (f->n == PARSER_MAX_FIELDS)
		return -1;
	f->name[f->n] = name;
	f->type[f->n] = type;
	return (int)f->n++;
}

/* A literal for a regex: every ASCII byte that is not a letter, a digit or a
 * space is escaped (in PCRE2 "\" before a non-alphanumeric is always that
 * character); control bytes as \xhh; other bytes as they are. */
int pd_lit(struct kl_buf *b, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		int rc;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == ' ' || c >= 0x80)
			rc = kl_buf_append(b, &s[i], 1);
		else if (c < 0x20 || c == 0x7f)
			rc = kl_buf_appendf(b, "\\x%02x", c);
		else
			rc = kl_buf_appendf(b, "\\%c", c);
		if (rc < 0)
			return rc;
	}
	return 0;
}

void parser_derived_free(struct parser_derived *d)
{
	kl_buf_free(&d->regex);
	kl_buf_free(&d->regex2);
	kl_buf_free(&d->ml_start);
	kl_buf_free(&d->ml_cont);
}

struct named_group {
	uint16_t group;
	const char *name;
};

/* Map the name table to fields, in group order. 0 or -EINVAL/-ENOMEM. */
static int map_names(struct parser *p, char *err, size_t errlen)
{
	uint32_t count = 0, entry = 0;
	PCRE2_SPTR table = NULL;
	struct named_group *ng;
	int rc = 0;

	pcre2_pattern_info(p->code, PCRE2_INFO_NAMECOUNT, &count);
	pcre2_pattern_info(p->code, PCRE2_INFO_NAMEENTRYSIZE, &entry);
	pcre2_pattern_info(p->code, PCRE2_INFO_NAMETABLE, &table);
	if (count == 0)
		return 0;
	ng = calloc(count, sizeof *ng);
	p->groups = calloc(count, sizeof *p->groups);
	if (!ng || !p->groups) {
		parser_set_err(err, errlen, "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	/* The table is sorted by name; we want group order (insertion sort:
	 * a handful of entries, once). */
	for (uint32_t i = 0; i < count; i++) {
		PCRE2_SPTR e = table + (size_t)i * entry;
		struct named_group cur = { (uint16_t)(e[0] << 8 | e[1]), (const char *)(e + 2) };
		uint32_t j = i;
		while (j > 0 && ng[j - 1].group > cur.group) {
			ng[j] = ng[j - 1];
			j--;
		}
		ng[j] = cur;
	}
	for (uint32_t i = 0; i < count; i++) {
		int f = parser_find_field(p, ng[i].name, strlen(ng[i].name));
		if (f < 0)
			f = parser_add_field(p, ng[i].name, PARSER_T_STRING);
		if (f < 0) {
			parser_set_err(err, errlen, "regex: too many named groups (at most %d)",
				       PARSER_MAX_FIELDS);
			rc = -EINVAL;
			goto out;
		}
		p->groups[p->ngroups++] = (struct parser_group){ ng[i].group, (uint8_t)f };
	}
out:
	free(ng);
	return rc;
}

pcre2_code *parser_compile(const char *regex, uint32_t opts, char *err, size_t errlen,
			   int *erroff)
{
	int ec;
	PCRE2_SIZE eo;
	pcre2_code *code = pcre2_compile((PCRE2_SPTR)regex, PCRE2_ZERO_TERMINATED, opts, &ec, &eo,
					 NULL);
	if (!code) {
		PCRE2_UCHAR msg[256];
		if (pcre2_get_error_message(ec, msg, sizeof msg) < 0)
			snprintf((char *)msg, sizeof msg, "error %d", ec);
		parser_set_err(err, errlen, "regex: %s", (const char *)msg);
		if (erroff)
			*erroff = eo > (PCRE2_SIZE)0x7fffffff ? -1 : (int)eo;
	}
	return code;
}

/* The built-in's name list, for messages. */
static void builtin_list(char *list, size_t cap)
{
	size_t used = 0;
	list[0] = '\0';
	for (const char *const *n = parser_builtin_names(); *n; n++) {
		int w = snprintf(list + used, cap - used, "%s%s", used ? ", " : "", *n);
		if (w < 0 || (size_t)w >= cap - used)
			break;
		used += (size_t)w;
	}
}

/* Options that only some formats take. 0, or -EINVAL with a message. */
static int check_options(const struct parser_spec *spec, const struct parser_builtin *b,
			 char *err, size_t errlen)
{
	const char *who = b ? b->name : "a regex parser";
	if (spec->format && !(b && b->options_format)) {
		parser_set_err(err, errlen,
			       "format: only the django parser takes a Python logging format (this is %s)",
			       who);
		return -EINVAL;
	}
	if (spec->log_line_prefix && !(b && b->options_log_line_prefix)) {
		parser_set_err(err, errlen,
			       "log_line_prefix: only the postgres parser takes one (this is %s)", who);
		return -EINVAL;
	}
	if (!b)
		return 0;
	if (spec->regex) {
		parser_set_err(err, errlen,
			       "built-in parser '%s' has its own regex; remove 'regex' (or drop 'type' to use yours)",
			       b->name);
		return -EINVAL;
	}
	if (strcmp(b->name, "json") == 0)
		return 0; /* any types and time */
	if (b->kind == PK_JSON) { /* postgres_json: types for the keys it does not fix */
		if (spec->time_field || spec->time_format) {
			parser_set_err(err, errlen,
				       "built-in parser '%s' has a fixed time (the 'timestamp' key); remove 'time'",
				       b->name);
			return -EINVAL;
		}
		return 0;
	}
	if (spec->ntypes || spec->time_field || (spec->time_format && !b->options_time_format)) {
		parser_set_err(err, errlen,
			       b->options_time_format
				       ? "built-in parser '%s' has fixed field types and time field; remove 'types' and 'time.field' (time.format is the asctime datefmt)"
				       : "built-in parser '%s' has fixed field types and time; remove 'types' and 'time'",
			       b->name);
		return -EINVAL;
	}
	return 0;
}

struct parser *parser_new(const struct parser_spec *spec, char *err, size_t errlen, int *erroff)
{
	const struct parser_builtin *b = NULL;
	const struct parser_field_spec *types;
	const char *regex, *time_field, *time_format, *name;
	size_t ntypes;
	uint32_t opts = 0, all = 0;
	struct parser *p = NULL;
	struct parser_derived d;
	bool derived = false;

	if (erroff)
		*erroff = -1;
	if (err && errlen)
		err[0] = '\0';
	if (!spec) {
		parser_set_err(err, errlen, "no parser given");
		return NULL;
	}
	name = spec->name;
	if (spec->type && strcmp(spec->type, "regex") != 0) {
		b = parser_builtin_find(spec->type);
		if (!b) {
			char list[256];
			builtin_list(list, sizeof list);
			parser_set_err(err, errlen,
				       "unknown built-in parser '%s'; expected one of: %s (or a regex)",
				       spec->type, list);
			return NULL;
		}
	} else if (!spec->regex) {
		parser_set_err(err, errlen,
			       "regex: missing (a parser needs a regex or a built-in type)");
		return NULL;
	}
	if (check_options(spec, b, err, errlen) < 0)
		return NULL;
	if (spec->ntypes && !spec->types) {
		parser_set_err(err, errlen, "types: %zu entries but no array", spec->ntypes);
		return NULL;
	}
	if (!name)
		name = b ? b->name : "regex";

	p = calloc(1, sizeof *p);
	if (!p)
		goto nomem;
	p->time_idx = -1;
	p->builtin = b;
	p->kind = b ? b->kind : PK_REGEX;
	p->name = kl_strndup(name, strlen(name));
	p->fields = calloc(1, sizeof *p->fields);
	p->sig = calloc(1, sizeof *p->sig);
	if (!p->name || !p->fields || !p->sig)
		goto nomem;
	p->sig->field = -1;

	if (p->kind == PK_JSON) {
		if (json_new(p, spec, strcmp(b->name, "json") != 0, err, errlen) < 0)
			goto fail;
		return p;
	}

	if (b && b->derive) {
		memset(&d, 0, sizeof d);
		derived = true;
		if (b->derive(spec, &d, err, errlen) < 0)
			goto fail;
		regex = d.regex.p;
		types = d.types;
		ntypes = d.ntypes;
		time_field = d.time_field;
		time_format = d.time_format[0] ? d.time_format : NULL;
		opts = PCRE2_ANCHORED;
		if (d.ml_start.len)
			p->ml_start = kl_strndup(d.ml_start.p, d.ml_start.len);
		if (d.ml_cont.len)
			p->ml_cont = kl_strndup(d.ml_cont.p, d.ml_cont.len);
		if ((d.ml_start.len && !p->ml_start) || (d.ml_cont.len && !p->ml_cont))
			goto nomem;
	} else if (b) {
		regex = b->regex;
		types = b->types;
		ntypes = b->ntypes;
		time_field = b->time_field;
		time_format = b->time_format;
		opts = PCRE2_ANCHORED;
	} else {
		regex = spec->regex;
		types = spec->types;
		ntypes = spec->ntypes;
		time_field = spec->time_field;
		time_format = spec->time_format;
	}

	p->code = parser_compile(regex, opts, err, errlen, erroff);
	if (!p->code)
		goto fail;
	pcre2_pattern_info(p->code, PCRE2_INFO_ALLOPTIONS, &all);
	if ((all & PCRE2_UTF) && !(all & PCRE2_MATCH_INVALID_UTF)) {
		pcre2_code_free(p->code);
		p->code = parser_compile(regex, opts | PCRE2_MATCH_INVALID_UTF, err, errlen, erroff);
		if (!p->code)
			goto fail;
	}

	char why[256];
	p->jit = kl_regex_jit(p->code, why, sizeof why);
	if (!p->jit)
		kl_log(KL_LOG_WARN,
		       "parser '%s': PCRE2 JIT not available (%s); using the interpreter, which is several times slower",
		       p->name, why);

	p->mctx = pcre2_match_context_create(NULL);
	p->md = pcre2_match_data_create_from_pattern(p->code, NULL);
	if (!p->mctx || !p->md)
		goto nomem;
	pcre2_set_match_limit(p->mctx, PARSER_MATCH_LIMIT);
	if (p->jit) {
		p->jstack = pcre2_jit_stack_create(32 * 1024, PARSER_JIT_STACK_MAX, NULL);
		if (!p->jstack)
			goto nomem;
		pcre2_jit_stack_assign(p->mctx, NULL, p->jstack);
	}
	p->ov = pcre2_get_ovector_pointer(p->md);

	int rc = map_names(p, err, errlen);
	if (rc < 0)
		goto fail;

	if (derived) {
		for (size_t i = 0; i < d.nextra; i++) {
			if (parser_find_field(p, d.extra[i].name, strlen(d.extra[i].name)) < 0 &&
			    parser_add_field(p, d.extra[i].name, d.extra[i].type) < 0) {
				parser_set_err(err, errlen, "too many fields (at most %d)",
					       PARSER_MAX_FIELDS);
				goto fail;
			}
		}
	}

	for (size_t i = 0; i < ntypes; i++) {
		const char *tn = types[i].name ? types[i].name : "";
		int f = parser_find_field(p, tn, strlen(tn));
		if (f < 0) {
			parser_set_err(err, errlen, "types: '%s' is not a named group of the regex",
				       tn);
			goto fail;
		}
		if ((unsigned)types[i].type > PARSER_T_TIME) {
			parser_set_err(err, errlen, "types: '%s' has an unknown type", tn);
			goto fail;
		}
		p->fields->type[f] = types[i].type;
	}

	if (time_field) {
		int f = parser_find_field(p, time_field, strlen(time_field));
		if (f < 0) {
			parser_set_err(err, errlen,
				       "time.field: '%s' is not a named group of the regex",
				       time_field);
			goto fail;
		}
		if (parser_type_is_numeric(p->fields->type[f])) {
			parser_set_err(err, errlen,
				       "types: '%s' is the time field, so it cannot also be %s (time.format says how to read it)",
				       time_field, parser_type_name(p->fields->type[f]));
			goto fail;
		}
		p->fields->type[f] = PARSER_T_TIME;
		p->time_idx = f;
		if (timefmt_compile(&p->tf, time_format, err, errlen) < 0)
			goto fail;
	} else if (time_format && !derived) {
		parser_set_err(err, errlen,
			       "time.format is set but time.field is not; name the group that holds the time");
		goto fail;
	} else {
		for (unsigned i = 0; i < p->fields->n; i++) {
			if (p->fields->type[i] == PARSER_T_TIME) {
				parser_set_err(err, errlen,
					       "types: '%s' is declared a time but time.field does not name it",
					       p->fields->name[i]);
				goto fail;
			}
		}
	}

	if (b && b->dash_absent) {
		for (const char *const *n = b->dash_absent; *n; n++) {
			int f = parser_find_field(p, *n, strlen(*n));
			if (f >= 0)
				p->dash_absent |= 1ull << f;
		}
	}
	if (b && b->setup && b->setup(p, derived ? &d : NULL, err, errlen) < 0)
		goto fail;
	p->post = b ? b->post : NULL;
	if (derived)
		parser_derived_free(&d);
	return p;

nomem:
	parser_set_err(err, errlen, "out of memory");
fail:
	if (derived)
		parser_derived_free(&d);
	parser_free(p);
	return NULL;
}

void parser_free(struct parser *p)
{
	if (!p)
		return;
	if (p->builtin && p->builtin->destroy)
		p->builtin->destroy(p);
	json_free(p);
	pcre2_match_data_free(p->md);
	pcre2_match_context_free(p->mctx);
	pcre2_jit_stack_free(p->jstack);
	pcre2_code_free(p->code);
	free(p->groups);
	free(p->fields);
	if (p->sig)
		free(p->sig->buf);
	free(p->sig);
	free(p->ml_start);
	free(p->ml_cont);
	free(p->name);
	free(p);
}

bool parser_default_multiline(const struct parser *p, struct parser_multiline *out)
{
	if (!p || (!p->ml_start && !p->ml_cont))
		return false;
	out->start = p->ml_start;
	out->continuation = p->ml_cont;
	return true;
}

const char *parser_name(const struct parser *p)
{
	return p->name;
}

unsigned parser_field_count(const struct parser *p)
{
	return p->fields->n;
}

const char *parser_field_name(const struct parser *p, unsigned idx)
{
	return idx < p->fields->n ? p->fields->name[idx] : NULL;
}

enum parser_type parser_field_type(const struct parser *p, unsigned idx)
{
	return idx < p->fields->n ? p->fields->type[idx] : PARSER_T_STRING;
}

int parser_field_index(const struct parser *p, const char *name, size_t len)
{
	if (!name)
		return -1;
	int idx = parser_find_field(p, name, len);
	if (idx >= 0)
		return idx; /* a field of the format's own, "signature" included */
	if (len == 9 && memcmp(name, "signature", 9) == 0)
		return parser_sig_register(p);
	if (p->kind == PK_JSON)
		return json_field_index(p, name, len);
	return -1;
}

const struct parser_stats *parser_stats(const struct parser *p)
{
	return &p->stats;
}

int parser_parse(struct parser *p, const char *rec, size_t len, int64_t read_us,
		 struct parser_event *ev)
{
	int rc;

	if (!rec) {
		rec = "";
		len = 0;
	}
	if (p->kind == PK_JSON) {
		rc = json_parse(p, rec, len, read_us, ev);
		if (rc == 0 && p->sig->field >= 0)
			parser_sig_compute(p, rec, len, ev);
		return rc;
	}
	if (p->jit)
		rc = pcre2_jit_match(p->code, (PCRE2_SPTR)rec, len, 0, 0, p->md, p->mctx);
	else
		rc = pcre2_match(p->code, (PCRE2_SPTR)rec, len, 0, 0, p->md, p->mctx);
	if (rc <= 0) {
		p->stats.unmatched++;
		return -EINVAL;
	}

	unsigned nf = p->fields->n;
	for (unsigned i = 0; i < nf; i++)
		ev->raw[i] = (struct kl_str){ NULL, 0 };
	const PCRE2_SIZE *ov = p->ov;
	for (unsigned i = 0; i < p->ngroups; i++) {
		unsigned g = p->groups[i].group;
		if (g >= (unsigned)rc) /* groups are in order; the rest are unset */
			break;
		PCRE2_SIZE s = ov[2 * g], e = ov[2 * g + 1];
		struct kl_str *f = &ev->raw[p->groups[i].field];
		if (s == PCRE2_UNSET || e < s || e > len || f->p)
			continue;
		f->p = rec + s;
		f->len = e - s;
	}
	for (uint64_t m = p->dash_absent; m; m &= m - 1) {
		struct kl_str *f = &ev->raw[__builtin_ctzll(m)];
		if (f->len == 1 && f->p[0] == '-') {
			f->p = NULL;
			f->len = 0;
		}
	}
	ev->parser = p;
	ev->read_us = read_us;
	ev->num_tried = 0;
	ev->num_ok = 0;
	ev->literal = 0;
	if (p->post && p->post(p, rec, len, ov[1] <= len ? ov[1] : len, ev) < 0) {
		p->stats.unmatched++;
		return -EINVAL;
	}
	if (p->time_idx >= 0) {
		const struct kl_str *t = &ev->raw[p->time_idx];
		if (!t->p || timefmt_parse(&p->tf, t->p, t->len, &ev->time_us) < 0) {
			p->stats.bad_time++;
			return -EINVAL;
		}
	} else {
		ev->time_us = read_us;
	}
	if (p->sig->field >= 0)
		parser_sig_compute(p, rec, len, ev);
	p->stats.parsed++;
	return 0;
}
