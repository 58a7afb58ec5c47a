/*
 * django.c — Python logging text, as Django, gunicorn and any Python program
 * write it: the `django` built-in.
 *
 * The regex is derived once from the logging format string (option `format`,
 * default "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s"):
 * literal text is escaped, each %(key)<flags><width><.precision><conv>
 * placeholder becomes a group. The known keys get their natural field name
 * and type:
 *   asctime → time (the event time), levelname → level, name → logger,
 *   process → pid (int), levelno, thread, lineno (int), msecs, created,
 *   relativeCreated (float), processName, threadName, module, funcName,
 *   filename, pathname, message (strings);
 * any other key is a generic non-space group named after the key (unnamed
 * when the key is not a valid group name). A repeated key is captured once.
 * Padding ("%(levelname)-8s", "%(process)5d") allows the blanks Python adds.
 * Word-like groups are possessive when the format's next byte cannot be part
 * of them (the common case: a space), lazy otherwise; nothing crosses a line
 * except the message; every variable part is bounded (words 255 bytes, thread
 * names and paths 1024, numbers 20 digits, levels 32), which bounds the
 * backtracking of a line that does not match.
 *
 * Time: asctime is written in local time by Python and the zone is not in the
 * log, so it is read as UTC (run the application with TZ=UTC, as containers
 * do, and the two agree). The default asctime is "2023-11-14 22:13:20,123"
 * (a comma before the milliseconds); a `time.format` option gives the datefmt
 * the application configured (strptime-like: %Y %m %d %H %M %S %z ...), and
 * its regex is derived from it too. Without asctime, `created` (epoch
 * seconds) is the time; without either, the read time.
 *
 * Records: a record is the formatted first line(s) plus the traceback Python
 * appends after it (the multi-line rule parser_default_multiline gives
 * starts a record at a line that matches the format's head: the regex of
 * everything up to the first strong placeholder — asctime, a number or the
 * level — and the literal after it, e.g. "^\d{4}-\d{2}-\d{2}
 * \d{2}:\d{2}:\d{2},\d{3} " for the default). The message is DOTALL: it
 * may span lines. The post hook then:
 * - ends `message` where the traceback begins (the first line that is
 *   "Traceback (most recent call last):"), and sets `traceback` to the rest;
 * - reads the final exception of the chain: after the LAST "Traceback (most
 *   recent call last):" line (chains — "During handling of the above
 *   exception, another exception occurred:", "The above exception was the
 *   direct cause of the following exception:" — put the final one last), the
 *   frame lines are indented; the first line that is not is the exception:
 *   "Qualified.Name: message" or a bare "Name". `exception` is the name,
 *   `exception_message` the message: the rest of that line and the lines
 *   after it to the end of the record (psycopg2's OperationalError
 *   continues on a TAB-indented second line).
 * Exception groups (Python 3.11's "  + Exception Group Traceback") are not
 * read: such a record has no `exception`.
 */
#include <errno.h>
#include <string.h>

#include "parsers/parsers_int.h"

enum pat {
	P_WORD,	   /* non-blank, non-newline */
	P_ANY,	   /* anything but a newline (thread names, paths: may hold blanks) */
	P_INT,	   /* -?digits */
	P_FLOAT,   /* -?digits[.digits] */
	P_LEVEL,   /* DEBUG, INFO, WARNING, ERROR, CRITICAL, custom upper-case names */
	P_TIME,	   /* asctime */
	P_MESSAGE, /* the rest (DOTALL) */
};

struct key_info {
	const char *key;
	const char *field;
	enum parser_type type;
	enum pat pat;
	bool strong; /* anchors the multi-line start rule */
};

static const struct key_info known_keys[] = {
	{ "asctime", "time", PARSER_T_TIME, P_TIME, true },
	{ "levelname", "level", PARSER_T_STRING, P_LEVEL, true },
	{ "levelno", "levelno", PARSER_T_INT, P_INT, true },
	{ "name", "logger", PARSER_T_STRING, P_WORD, false },
	{ "process", "pid", PARSER_T_INT, P_INT, true },
	{ "processName", "processName", PARSER_T_STRING, P_WORD, false },
	{ "thread", "thread", PARSER_T_INT, P_INT, true },
	{ "threadName", "threadName", PARSER_T_STRING, P_ANY, false },
	{ "module", "module", PARSER_T_STRING, P_WORD, false },
	{ "funcName", "funcName", PARSER_T_STRING, P_WORD, false },
	{ "lineno", "lineno", PARSER_T_INT, P_INT, true },
	{ "filename", "filename", PARSER_T_STRING, P_WORD, false },
	{ "pathname", "pathname", PARSER_T_STRING, P_ANY, false },
	{ "msecs", "msecs", PARSER_T_FLOAT, P_FLOAT, true },
	{ "created", "created", PARSER_T_FLOAT, P_FLOAT, true },
	{ "relativeCreated", "relativeCreated", PARSER_T_FLOAT, P_FLOAT, true },
	{ "message", "message", PARSER_T_STRING, P_MESSAGE, false },
};

#define DEFAULT_FORMAT "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s"
#define DEFAULT_ASCTIME "%Y-%m-%d %H:%M:%S,%f"
#define DEFAULT_ASCTIME_RE "\\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2}:\\d{2},\\d{3}"
#define MAX_ELEMS 64
#define MAX_KEY 32 /* PCRE2's longest group name */

struct elem {
	bool field;
	const char *lit; /* literal: bytes of the format */
	size_t litlen;
	char key[MAX_KEY + 1];
	const struct key_info *ki; /* NULL: an unknown key */
	bool pad, left;		   /* a width was given; '-' flag */
	unsigned width;
	bool named;		   /* first occurrence of its field */
};

static const char tb_header[] = "Traceback (most recent call last):";

static bool valid_group_name(const char *s)
{
	if (!*s || !((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
		return false;
	for (; *s; s++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
		      (*s >= '0' && *s <= '9') || *s == '_'))
			return false;
	return true;
}

static bool in_class(enum pat pat, char c)
{
	switch (pat) {
	case P_WORD: return c != ' ' && c != '\n' && c != '\t';
	case P_ANY: return c != '\n';
	case P_INT: return (c >= '0' && c <= '9') || c == '-';
	case P_FLOAT: return (c >= '0' && c <= '9') || c == '.' || c == '-';
	case P_LEVEL: return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
	default: return true;
	}
}

/* Split the format into literals and placeholders. 0 or -EINVAL. */
static int split(const char *fmt, struct elem *el, size_t *nel, char *err, size_t errlen)
{
	size_t n = 0;
	const char *f = fmt, *lit = NULL;

	while (*f) {
		if (n + 2 > MAX_ELEMS) {
			parser_set_err(err, errlen, "format: too long (at most %d placeholders and literals)",
				       MAX_ELEMS - 2);
			return -EINVAL;
		}
		if (f[0] == '%' && f[1] == '%') {
			/* "%%" is one literal '%': a literal of its own */
			if (lit) {
				el[n++] = (struct elem){ .lit = lit, .litlen = (size_t)(f - lit) };
				lit = NULL;
			}
			el[n++] = (struct elem){ .lit = f, .litlen = 1 };
			f += 2;
			continue;
		}
		if (f[0] != '%') {
			if (!lit)
				lit = f;
			f++;
			continue;
		}
		if (lit) {
			el[n++] = (struct elem){ .lit = lit, .litlen = (size_t)(f - lit) };
			lit = NULL;
		}
		size_t at = (size_t)(f - fmt);
		if (f[1] != '(') {
			parser_set_err(err, errlen,
				       "format: '%%' at offset %zu must be followed by (key) or another '%%' (Python logging's %%-style, e.g. %%(levelname)s)",
				       at);
			return -EINVAL;
		}
		const char *k = f + 2, *ke = strchr(k, ')');
		if (!ke) {
			parser_set_err(err, errlen, "format: '%%(' at offset %zu has no closing ')'", at);
			return -EINVAL;
		}
		struct elem *e = &el[n];
		*e = (struct elem){ .field = true };
		size_t kl = (size_t)(ke - k);
		if (kl > MAX_KEY)
			kl = MAX_KEY + 1; /* too long to be a group name: captured unnamed */
		if (kl <= MAX_KEY) {
			memcpy(e->key, k, kl);
			e->key[kl] = '\0';
		}
		f = ke + 1;
		while (*f && strchr("-#0 +", *f)) {
			if (*f == '-')
				e->left = true;
			f++;
		}
		while (*f >= '0' && *f <= '9') {
			e->pad = true;
			e->width = e->width * 10 + (unsigned)(*f - '0');
			if (e->width > 65535) /* PCRE2's longest counted repeat */
				e->width = 65535;
			f++;
		}
		if (*f == '.') {
			f++;
			while (*f >= '0' && *f <= '9')
				f++;
		}
		if (!*f || !strchr("diouxXeEfFgGcrsa", *f)) {
			parser_set_err(err, errlen,
				       "format: placeholder %%(%.*s) at offset %zu needs a conversion such as 's' or 'd'",
				       (int)(ke - k), k, at);
			return -EINVAL;
		}
		f++;
		for (size_t i = 0; i < KL_ARRAY_LEN(known_keys); i++)
			if (strcmp(known_keys[i].key, e->key) == 0)
				e->ki = &known_keys[i];
		n++;
	}
	if (lit)
		el[n++] = (struct elem){ .lit = lit, .litlen = (size_t)(f - lit) };
	*nel = n;
	return 0;
}

/* The field's name and type (NULL: unnamed). */
static const char *field_of(const struct elem *e, enum parser_type *type)
{
	if (e->ki) {
		*type = e->ki->type;
		return e->ki->field;
	}
	*type = PARSER_T_STRING;
	return valid_group_name(e->key) ? e->key : NULL;
}

/* Append the pattern of placeholder el[i] (named or not). */
static int add_field(struct kl_buf *b, const struct elem *el, size_t nel, size_t i, bool named,
		     const char *time_re)
{
	const struct elem *e = &el[i];
	enum pat pat = e->ki ? e->ki->pat : P_WORD;
	const struct elem *next = i + 1 < nel ? &el[i + 1] : NULL;
	/* possessive when what follows cannot be taken for part of the value */
	bool poss = next ? !next->field && !in_class(pat, next->lit[0]) : true;
	enum parser_type type;
	const char *name = field_of(e, &type);
	const char *body;
	int rc = 0;

	/* Every variable part is bounded, so that a line that does not match
	 * (the start rule fails on every traceback line) costs a bounded amount
	 * of backtracking: PCRE2's JIT does not count lazy character loops
	 * against the match limit. */
	switch (pat) {
	case P_WORD: body = poss ? "[^ \\t\\n]{0,255}+" : "[^ \\t\\n]{0,255}?"; break;
	case P_ANY: body = poss ? "[^\\n]{0,1024}+" : "[^\\n]{0,1024}?"; break;
	case P_INT: body = poss ? "-?\\d{1,20}+" : "-?\\d{1,20}?"; break;
	case P_FLOAT: body = poss ? "-?\\d{1,20}+(?:\\.\\d{1,20}+)?+" : "-?\\d{1,20}?(?:\\.\\d{1,20}?)??"; break;
	case P_LEVEL: body = poss ? "[A-Z][A-Z0-9_]{0,31}+" : "[A-Z][A-Z0-9_]{0,31}?"; break;
	case P_TIME: body = time_re; break;
	case P_MESSAGE: body = next ? "(?s:.*?)" : "(?s:.*+)"; break;
	default: body = ""; break;
	}
	if (e->pad && !e->left)
		rc |= kl_buf_appendf(b, " {0,%u}", e->width);
	/* bodies have no top-level alternation: unnamed ones need no group */
	bool group = named && name && e->named;
	if (group)
		rc |= kl_buf_appendf(b, "(?<%s>", name);
	rc |= kl_buf_append_str(b, body);
	if (group)
		rc |= kl_buf_append_str(b, ")");
	if (e->pad && e->left)
		rc |= kl_buf_appendf(b, " {0,%u}", e->width);
	return rc < 0 ? -ENOMEM : 0;
}

int django_derive(const struct parser_spec *spec, struct parser_derived *d, char *err,
		  size_t errlen)
{
	const char *fmt = spec->format ? spec->format : DEFAULT_FORMAT;
	struct elem el[MAX_ELEMS];
	size_t nel = 0;
	struct kl_buf time_re = { 0 };
	int rc = -ENOMEM;
	bool has_time = false, has_created = false;

	if (split(fmt, el, &nel, err, errlen) < 0)
		return -EINVAL;
	if (nel == 0) {
		parser_set_err(err, errlen, "format: empty (the default is '%s')", DEFAULT_FORMAT);
		return -EINVAL;
	}

	/* which placeholders are named: the first of each field */
	for (size_t i = 0; i < nel; i++) {
		enum parser_type t;
		const char *name;
		if (!el[i].field || !(name = field_of(&el[i], &t)))
			continue;
		el[i].named = true;
		for (size_t j = 0; j < i; j++) {
			enum parser_type t2;
			const char *n2;
			if (el[j].field && (n2 = field_of(&el[j], &t2)) && strcmp(n2, name) == 0)
				el[i].named = false;
		}
		if (!el[i].named)
			continue;
		if (el[i].ki && el[i].ki->pat == P_TIME)
			has_time = true;
		else if (el[i].ki && strcmp(el[i].ki->key, "created") == 0)
			has_created = true;
	}

	if (has_time) {
		const char *tf = spec->time_format;
		if (tf) {
			if (timefmt_regex(tf, &time_re) < 0) {
				/* let timefmt_compile say what is wrong */
				struct timefmt t;
				if (timefmt_compile(&t, tf, err, errlen) == 0)
					parser_set_err(err, errlen, "time.format: '%s' cannot be used",
						       tf);
				rc = -EINVAL;
				goto out;
			}
		} else if (kl_buf_append_str(&time_re, DEFAULT_ASCTIME_RE) < 0) {
			goto out;
		}
		size_t tl = strlen(tf ? tf : DEFAULT_ASCTIME);
		if (tl >= sizeof d->time_format) {
			parser_set_err(err, errlen, "time.format: too long (at most %zu bytes)",
				       sizeof d->time_format - 1);
			rc = -EINVAL;
			goto out;
		}
		memcpy(d->time_format, tf ? tf : DEFAULT_ASCTIME, tl + 1);
		d->time_field = "time";
	} else if (spec->time_format) {
		parser_set_err(err, errlen,
			       "time.format: the format has no %%(asctime)s for it to read");
		rc = -EINVAL;
		goto out;
	} else if (has_created) {
		memcpy(d->time_format, "epoch", 6);
		d->time_field = "created";
	}

	/* the record regex */
	bool msg_mid = false;
	for (size_t i = 0; i < nel; i++) {
		if (!el[i].field) {
			if (pd_lit(&d->regex, el[i].lit, el[i].litlen) < 0)
				goto out;
			continue;
		}
		if (add_field(&d->regex, el, nel, i, true, time_re.p) < 0)
			goto out;
		if (el[i].ki && el[i].ki->pat == P_MESSAGE && i + 1 < nel)
			msg_mid = true;
		if (el[i].named) {
			enum parser_type t;
			const char *name = field_of(&el[i], &t);
			if (strcmp(name, "created") == 0 && has_created && !has_time)
				continue; /* the time field: its type is the time's */
			if (t != PARSER_T_STRING && t != PARSER_T_TIME)
				d->types[d->ntypes++] = (struct parser_field_spec){ name, t };
		}
	}
	/* a message in the middle ends where the rest of the format ends a line */
	if (msg_mid && kl_buf_append_str(&d->regex, "(?=\\n|\\z)") < 0)
		goto out;

	/* the multi-line start rule: the head of the format up to its first
	 * strong placeholder and the literal after it */
	size_t stop = nel;
	for (size_t i = 0; i < nel; i++) {
		if (el[i].field && el[i].ki && el[i].ki->pat == P_MESSAGE) {
			stop = i;
			break;
		}
		if (el[i].field && el[i].ki && el[i].ki->strong) {
			stop = i + 1 < nel && !el[i + 1].field ? i + 2 : i + 1;
			break;
		}
	}
	if (stop > 0) {
		if (kl_buf_append_str(&d->ml_start, "^") < 0)
			goto out;
		for (size_t i = 0; i < stop; i++) {
			if (el[i].field ? add_field(&d->ml_start, el, nel, i, false, time_re.p) < 0
					: pd_lit(&d->ml_start, el[i].lit, el[i].litlen) < 0)
				goto out;
		}
	}

	d->extra[d->nextra++] = (struct parser_field_spec){ "exception", PARSER_T_STRING };
	d->extra[d->nextra++] = (struct parser_field_spec){ "exception_message", PARSER_T_STRING };
	d->extra[d->nextra++] = (struct parser_field_spec){ "traceback", PARSER_T_STRING };
	rc = 0;
out:
	if (rc == -ENOMEM)
		parser_set_err(err, errlen, "out of memory");
	kl_buf_free(&time_re);
	return rc;
}

int django_setup(struct parser *p, const struct parser_derived *d, char *err, size_t errlen)
{
	struct django_state *st = &p->u.dj;
	(void)d;
	(void)err;
	(void)errlen;
	st->message = parser_find_field(p, "message", 7);
	st->exception = parser_find_field(p, "exception", 9);
	st->exception_message = parser_find_field(p, "exception_message", 17);
	st->traceback = parser_find_field(p, "traceback", 9);
	return 0;
}

static bool is_name_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '.' || c == '<' || c == '>';
}

/* "Name", "pkg.Name: message" (the exception line of a traceback). */
static bool exception_line(const char *s, size_t n, struct kl_str *name, struct kl_str *msg)
{
	size_t i = 0;
	if (n == 0 || !((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
		return false;
	while (i < n && is_name_char(s[i]))
		i++;
	size_t end = i;
	while (end < n && (s[end] == '\r' || s[end] == ' '))
		end++;
	if (end == n) {
		*name = (struct kl_str){ s, i };
		*msg = (struct kl_str){ NULL, 0 };
		return true;
	}
	if (s[i] != ':')
		return false;
	*name = (struct kl_str){ s, i };
	i++;
	if (i < n && s[i] == ' ')
		i++;
	size_t e = n;
	while (e > i && (s[e - 1] == '\r' || s[e - 1] == ' '))
		e--;
	*msg = e > i ? (struct kl_str){ s + i, e - i } : (struct kl_str){ NULL, 0 };
	return true;
}

int django_post(struct parser *p, const char *rec, size_t len, size_t end,
		struct parser_event *ev)
{
	const struct django_state *st = &p->u.dj;
	const size_t tbl = sizeof tb_header - 1;
	struct kl_str *msg = st->message >= 0 ? &ev->raw[st->message] : NULL;
	const char *q = msg && msg->p ? msg->p : rec + end, *e = rec + len, *nl;
	const char *first = NULL, *last = NULL;

	/* the traceback headers, each at the start of a line */
	while (q < e && (nl = memchr(q, '\n', (size_t)(e - q)))) {
		q = nl + 1;
		if ((size_t)(e - q) >= tbl && memcmp(q, tb_header, tbl) == 0) {
			if (!first)
				first = q;
			last = q;
		}
	}
	if (!first)
		return 0;
	if (msg && msg->p && msg->p + msg->len > first - 1)
		msg->len = msg->p < first ? (size_t)(first - 1 - msg->p) : 0;
	if (st->traceback >= 0) {
		size_t n = (size_t)(e - first);
		while (n && (first[n - 1] == '\n' || first[n - 1] == '\r'))
			n--;
		ev->raw[st->traceback] = (struct kl_str){ first, n };
	}

	/* after the last header: indented frame lines, then the exception */
	q = last;
	while (q < e && (nl = memchr(q, '\n', (size_t)(e - q)))) {
		q = nl + 1;
		if (q < e && (*q == ' ' || *q == '\t'))
			continue;
		const char *le = memchr(q, '\n', (size_t)(e - q));
		size_t ll = le ? (size_t)(le - q) : (size_t)(e - q);
		struct kl_str name, text;
		if (exception_line(q, ll, &name, &text)) {
			if (st->exception >= 0)
				ev->raw[st->exception] = name;
			if (st->exception_message >= 0 && text.p) {
				/* The message runs to the end of the record: psycopg2's
				 * OperationalError continues on a TAB-indented line. */
				size_t n = (size_t)(e - text.p);
				while (n && (text.p[n - 1] == '\n' || text.p[n - 1] == '\r' ||
					     text.p[n - 1] == ' '))
					n--;
				ev->raw[st->exception_message] = (struct kl_str){ text.p, n };
			}
		}
		break;
	}
	return 0;
}
