/*
 * postgres.c — PostgreSQL's stderr log: the `postgres` built-in, and the
 * message analysis it shares with postgres_json (json.c).
 *
 * What PostgreSQL 15 writes (checked against a real server, samples in
 * tests/data/postgres/): one report is
 *   PREFIX SEVERITY:  message            (severity, a colon, TWO spaces)
 *   \tmore message                       (a message's further lines: TAB)
 *   PREFIX DETAIL:  ...                  (then, when present, in this order:
 *   PREFIX HINT:  ...                     DETAIL, HINT, QUERY, CONTEXT,
 *   PREFIX CONTEXT:  ...                  LOCATION (verbose), STATEMENT;
 *   PREFIX STATEMENT:  ...                each with its own prefix and TABs)
 * written with one write(), so the lines of one report are never
 * interleaved with another process's. It is not only ERROR and FATAL that
 * have them: a LOG of a lock wait or a deadlock has DETAIL, CONTEXT and
 * STATEMENT, a LOG of a bind/execute with parameters has DETAIL. With
 * log_error_verbosity = verbose the message starts with the SQLSTATE
 * ("ERROR:  42601: syntax error ...") and a LOCATION line follows.
 *
 * The prefix (option log_line_prefix, default "%m [%p] ") becomes a regex:
 * literal text escaped; each escape a group —
 *   %m %t %n → time (the first of them; %m/%t "2023-11-14 22:13:20[.123] UTC",
 *              the zone as timefmt.c's %Z reads it; %n epoch seconds)
 *   %p pid (int)   %u user   %d database   %a application   %h remote_host
 *   %r remote_host + "(remote_port)" (int)   %e sqlstate   %c session_id
 *   %l line_num (int)   %s session_start   %v vxid   %x txid (int)
 *   %i command_tag   %b backend_type   %P leader_pid (int)   %Q query_id (int)
 *   %% a '%'   %q the rest only in session processes: the rest is optional
 * with PostgreSQL's padding ("%-10u", "%8d": blanks around the value).
 * Unknown escapes are ignored, as PostgreSQL ignores them. Values that may
 * hold blanks (application, command tag, backend type) are lazy, the others
 * stop at a blank; every variable-length value is bounded (user, database,
 * application: 127 bytes, PostgreSQL truncates them to 63; hosts and command
 * tags: 255), so that a record that does not match — the multi-line rule
 * fails on most lines — costs a bounded amount of backtracking however long
 * the line is and whatever a client put in its statement text (PCRE2's JIT
 * does not count lazy character loops against the match limit); values are empty in processes without a session (such
 * empty values are absent fields) and "[unknown]" before authentication. Server messages are expected in
 * English (lc_messages = 'C'), as every log analyser expects them.
 *
 * A record (the multi-line rule: a `continuation` regex, a TAB-indented line
 * or a line whose prefix is followed by DETAIL/HINT/CONTEXT/STATEMENT/QUERY/
 * LOCATION/BACKTRACE and ":  ") is one report: one event. The main regex
 * reads the first line's prefix and severity; the post hook then takes
 * `message` up to the first line that is not TAB-continued, and reads each
 * further line's prefix with a second regex (anchored there) to fold DETAIL,
 * HINT, CONTEXT, STATEMENT and QUERY into `detail`, `hint`, `context`,
 * `statement` and `query` (values keep their "\n\t" continuations). A line
 * whose prefix does not match, or whose pid differs from the first line's,
 * ends the folding (it cannot happen with PostgreSQL's own output).
 * From the message: `duration` from "duration: 1234.567 ms" (ms, so the
 * value is in seconds), and `statement` from "statement: ..." or
 * "execute|parse|bind NAME: ..." (after a duration, or alone as
 * log_statement writes it) when no STATEMENT line gave one.
 */
#include <errno.h>
#include <string.h>

#include "parsers/parsers_int.h"

#define DEFAULT_PREFIX "%m [%p] "
#define TIME_RE "\\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2}:\\d{2}"
#define ZONE_RE " (?:[A-Za-z]++|[+-]\\d{2}(?::?\\d{2})?+)"
#define KEYWORDS "DETAIL|HINT|CONTEXT|STATEMENT|QUERY|LOCATION|BACKTRACE"

enum cls {
	C_WORD, /* stops at a blank */
	C_ANY,	/* may hold blanks: lazy unless last */
	C_NUM,
	C_FIXED, /* a fixed shape: the regex as given */
};

struct esc {
	char c;
	const char *field;
	enum parser_type type;
	enum cls cls;
	const char *re; /* C_FIXED, C_NUM; for C_WORD, C_ANY: the longest value */
};

static const struct esc escapes[] = {
	{ 'a', "application", PARSER_T_STRING, C_ANY, "127" },
	{ 'u', "user", PARSER_T_STRING, C_WORD, "127" },
	{ 'd', "database", PARSER_T_STRING, C_WORD, "127" },
	{ 'h', "remote_host", PARSER_T_STRING, C_WORD, "255" },
	{ 'r', "remote_host", PARSER_T_STRING, C_WORD, "255" }, /* and remote_port */
	{ 'b', "backend_type", PARSER_T_STRING, C_ANY, "127" },
	{ 'i', "command_tag", PARSER_T_STRING, C_ANY, "255" },
	{ 'p', "pid", PARSER_T_INT, C_NUM, "\\d++" },
	{ 'P', "leader_pid", PARSER_T_INT, C_NUM, "\\d*+" },
	{ 'l', "line_num", PARSER_T_INT, C_NUM, "\\d++" },
	{ 'x', "txid", PARSER_T_INT, C_NUM, "\\d++" },
	{ 'Q', "query_id", PARSER_T_INT, C_NUM, "-?\\d++" },
	{ 'e', "sqlstate", PARSER_T_STRING, C_FIXED, "[0-9A-Z]{5}" },
	{ 'c', "session_id", PARSER_T_STRING, C_FIXED, "[0-9a-f]++\\.[0-9a-f]++" },
	{ 'v', "vxid", PARSER_T_STRING, C_FIXED, "(?:\\d++/\\d++)?+" },
	{ 's', "session_start", PARSER_T_STRING, C_FIXED, TIME_RE ZONE_RE },
	{ 'm', "time", PARSER_T_TIME, C_FIXED, TIME_RE "\\.\\d{3}" ZONE_RE },
	{ 't', "time", PARSER_T_TIME, C_FIXED, TIME_RE ZONE_RE },
	{ 'n', "time", PARSER_T_TIME, C_FIXED, "\\d++\\.\\d{3}" },
};

enum naming {
	N_ALL,	    /* the main regex: every field */
	N_PID,	    /* the folding regex: only pid */
	N_NONE,	    /* the multi-line rule */
};

static const struct esc *find_esc(char c)
{
	for (size_t i = 0; i < KL_ARRAY_LEN(escapes); i++)
		if (escapes[i].c == c)
			return &escapes[i];
	return NULL;
}

/* The escape after a '%' at p: PostgreSQL's padding ("-10", "8"; negative:
 * left-aligned) to *pad, the letter to *letter ('\0' at the end of the
 * prefix). Returns where the escape ends. */
static const char *next_escape(const char *p, int *pad, char *letter)
{
	*pad = 0;
	if (*p == '-' || (*p >= '1' && *p <= '9')) {
		int sign = 1, v = 0;
		if (*p == '-') {
			sign = -1;
			p++;
		}
		while (*p >= '0' && *p <= '9') {
			v = v * 10 + (*p - '0');
			if (v > 65535) /* PCRE2's longest counted repeat */
				v = 65535;
			p++;
		}
		*pad = sign * v;
	}
	*letter = *p;
	return *p ? p + 1 : p;
}

/* The first byte the prefix writes after position p (a literal), or 0 when
 * an escape or the end follows. */
static char next_literal(const char *p)
{
	if (!*p)
		return 0;
	if (*p == '%')
		return p[1] == '%' ? '%' : 0;
	return *p;
}

/* The prefix as a regex. time_letter (N_ALL) gets the first time escape. */
static int prefix_regex(const char *prefix, enum naming naming, struct kl_buf *b,
			char *time_letter)
{
	bool named_time = false, q_open = false;
	const char *p = prefix;
	int rc = 0;

	while (*p && rc == 0) {
		if (*p != '%') {
			const char *s = p;
			while (*p && *p != '%')
				p++;
			rc = pd_lit(b, s, (size_t)(p - s));
			continue;
		}
		int pad;
		char letter;
		p = next_escape(p + 1, &pad, &letter);
		if (letter == '\0')
			break; /* a trailing '%': PostgreSQL writes nothing */
		if (letter == '%') {
			rc = kl_buf_append_str(b, "%");
			continue;
		}
		if (letter == 'q') {
			if (!q_open)
				rc = kl_buf_append_str(b, "(?:");
			q_open = true;
			continue;
		}
		const struct esc *e = find_esc(letter);
		if (!e)
			continue; /* PostgreSQL ignores unknown escapes */
		const char *name = NULL;
		if (naming == N_ALL)
			name = e->field;
		else if (naming == N_PID && e->c == 'p')
			name = "pid";
		if (name && e->type == PARSER_T_TIME) {
			if (named_time)
				name = NULL;
			else if (time_letter)
				*time_letter = e->c;
			named_time = true;
		}
		char nl = next_literal(p);
		bool blank_next = nl == ' ' || nl == '\t';
		if (pad > 0)
			rc |= kl_buf_appendf(b, " {0,%d}", pad);
		/* bodies have no top-level alternation: unnamed ones need no group */
		if (name)
			rc |= kl_buf_appendf(b, "(?<%s>", name);
		switch (e->cls) {
		case C_WORD:
			/* %r: "host(port)", or "[local]" */
			rc |= kl_buf_appendf(b, "%s{0,%s}%s", e->c == 'r' ? "[^ \\t\\n(]" : "[^ \\t\\n]",
					     e->re, blank_next ? "+" : "?");
			break;
		case C_ANY:
			rc |= kl_buf_appendf(b, "[^\\n]{0,%s}?", e->re);
			break;
		case C_NUM:
		case C_FIXED:
			rc |= kl_buf_append_str(b, e->re);
			break;
		}
		if (name)
			rc |= kl_buf_append_str(b, ")");
		if (e->c == 'r')
			rc |= kl_buf_append_str(b, naming == N_ALL ? "(?:\\((?<remote_port>\\d++)\\))?+"
								 : "(?:\\(\\d++\\))?+");
		if (pad < 0)
			rc |= kl_buf_appendf(b, " {0,%d}", -pad);
	}
	if (rc == 0 && q_open)
		rc = kl_buf_append_str(b, ")?");
	return rc < 0 ? -ENOMEM : 0;
}

int pg_derive(const struct parser_spec *spec, struct parser_derived *d, char *err,
	      size_t errlen)
{
	const char *prefix = spec->log_line_prefix ? spec->log_line_prefix : DEFAULT_PREFIX;
	char time_letter = 0;
	int rc = 0;

	for (const char *p = prefix; *p; p++) {
		if ((unsigned char)*p < 0x20 && *p != '\t') {
			parser_set_err(err, errlen,
				       "log_line_prefix: control byte 0x%02x at offset %zu (PostgreSQL writes it as is, but a record cannot hold it)",
				       (unsigned char)*p, (size_t)(p - prefix));
			return -EINVAL;
		}
	}
	rc |= kl_buf_append_str(&d->regex, "(?J)");
	rc |= prefix_regex(prefix, N_ALL, &d->regex, &time_letter);
	rc |= kl_buf_append_str(&d->regex,
				"(?<severity>[A-Z][A-Z0-9]*+):  "
				"(?:(?=[A-Z]*+[0-9])(?<sqlstate>[0-9A-Z]{5}): )?+");

	rc |= kl_buf_append_str(&d->regex2, "(?J)");
	rc |= prefix_regex(prefix, N_PID, &d->regex2, NULL);
	rc |= kl_buf_append_str(&d->regex2, "(?<kw>" KEYWORDS "):  ");

	rc |= kl_buf_append_str(&d->ml_cont, "^(?:\\t|");
	rc |= prefix_regex(prefix, N_NONE, &d->ml_cont, NULL);
	rc |= kl_buf_append_str(&d->ml_cont, "(?:" KEYWORDS "):  )");
	if (rc < 0) {
		parser_set_err(err, errlen, "out of memory");
		return -ENOMEM;
	}

	for (const char *p = prefix; *p; p++) {
		if (*p != '%')
			continue;
		int pad;
		char letter;
		const char *n = next_escape(p + 1, &pad, &letter);
		const struct esc *e = find_esc(letter);
		if (letter == 'r') {
			static const struct esc port = { 'r', "remote_port", PARSER_T_INT, C_NUM, NULL };
			e = &port;
		}
		if (e && e->type != PARSER_T_STRING && e->type != PARSER_T_TIME) {
			bool seen = false;
			for (size_t i = 0; i < d->ntypes; i++)
				seen |= strcmp(d->types[i].name, e->field) == 0;
			if (!seen)
				d->types[d->ntypes++] = (struct parser_field_spec){ e->field, e->type };
		}
		p = n - 1;
		if (!*n)
			break;
	}
	if (time_letter) {
		d->time_field = "time";
		const char *tf = time_letter == 'm'   ? "%Y-%m-%d %H:%M:%S.%f %Z"
				 : time_letter == 't' ? "%Y-%m-%d %H:%M:%S %Z"
						      : "epoch";
		memcpy(d->time_format, tf, strlen(tf) + 1);
	}
	static const struct parser_field_spec extra[] = {
		{ "message", PARSER_T_STRING }, { "duration", PARSER_T_MS },
		{ "statement", PARSER_T_STRING }, { "detail", PARSER_T_STRING },
		{ "hint", PARSER_T_STRING },	{ "context", PARSER_T_STRING },
		{ "query", PARSER_T_STRING },
	};
	for (size_t i = 0; i < KL_ARRAY_LEN(extra); i++)
		d->extra[d->nextra++] = extra[i];
	return 0;
}

int pg_setup(struct parser *p, const struct parser_derived *d, char *err, size_t errlen)
{
	struct pg_state *st = &p->u.pg;
	int erroff;

	st->code2 = parser_compile(d->regex2.p, PCRE2_ANCHORED, err, errlen, &erroff);
	if (!st->code2)
		return -EINVAL;
	st->jit2 = p->jit && pcre2_jit_compile(st->code2, PCRE2_JIT_COMPLETE) == 0;
	st->md2 = pcre2_match_data_create_from_pattern(st->code2, NULL);
	if (!st->md2) {
		parser_set_err(err, errlen, "out of memory");
		return -ENOMEM;
	}
	st->kw_group = pcre2_substring_number_from_name(st->code2, (PCRE2_SPTR) "kw");
	st->pid_group2 = pcre2_substring_number_from_name(st->code2, (PCRE2_SPTR) "pid");
	if (st->pid_group2 < 0)
		st->pid_group2 = -1;
	st->pid = parser_find_field(p, "pid", 3);
	st->message = parser_find_field(p, "message", 7);
	st->duration = parser_find_field(p, "duration", 8);
	st->statement = parser_find_field(p, "statement", 9);
	st->detail = parser_find_field(p, "detail", 6);
	st->hint = parser_find_field(p, "hint", 4);
	st->context = parser_find_field(p, "context", 7);
	st->query = parser_find_field(p, "query", 5);
	return 0;
}

void pg_free(struct parser *p)
{
	pcre2_match_data_free(p->u.pg.md2);
	pcre2_code_free(p->u.pg.code2);
	p->u.pg.md2 = NULL;
	p->u.pg.code2 = NULL;
}

static bool starts(const char *s, size_t n, const char *lit, size_t litlen)
{
	return n >= litlen && memcmp(s, lit, litlen) == 0;
}
#define STARTS(s, n, lit) starts(s, n, lit, sizeof(lit) - 1)

/* The statement a log_statement / duration message carries. */
static struct kl_str statement_of(const char *s, size_t n)
{
	if (STARTS(s, n, "statement: "))
		return (struct kl_str){ s + 11, n - 11 };
	if (STARTS(s, n, "execute ") || STARTS(s, n, "parse ") || STARTS(s, n, "bind ")) {
		/* "execute <unnamed>: SELECT ...", "bind P_1: ..." */
		for (size_t i = 0; i + 1 < n && s[i] != '\n'; i++)
			if (s[i] == ':' && s[i + 1] == ' ')
				return (struct kl_str){ s + i + 2, n - i - 2 };
	}
	return (struct kl_str){ NULL, 0 };
}

void pg_message_fields(const char *msg, size_t n, struct kl_str *duration,
		       struct kl_str *statement)
{
	*duration = (struct kl_str){ NULL, 0 };
	*statement = (struct kl_str){ NULL, 0 };
	if (!msg)
		return;
	if (STARTS(msg, n, "duration: ")) {
		size_t i = 10, b = i;
		while (i < n && ((msg[i] >= '0' && msg[i] <= '9') || msg[i] == '.'))
			i++;
		if (i == b || !starts(msg + i, n - i, " ms", 3))
			return;
		*duration = (struct kl_str){ msg + b, i - b };
		i += 3;
		if (starts(msg + i, n - i, "  ", 2))
			*statement = statement_of(msg + i + 2, n - i - 2);
		return;
	}
	*statement = statement_of(msg, n);
}

/* Where the segment that starts at from ends: the first '\n' not followed by
 * a TAB, or len. */
static size_t seg_end(const char *rec, size_t len, size_t from)
{
	const char *q = rec + from, *e = rec + len, *nl;
	while ((nl = memchr(q, '\n', (size_t)(e - q)))) {
		if (nl + 1 == e || nl[1] != '\t')
			return (size_t)(nl - rec);
		q = nl + 1;
	}
	return len;
}

int pg_post(struct parser *p, const char *rec, size_t len, size_t end, struct parser_event *ev)
{
	const struct pg_state *st = &p->u.pg;
	size_t se = seg_end(rec, len, end);
	struct kl_str stmt_line = { NULL, 0 };

	/* an empty prefix value ("user=,db=" in a process without a session)
	 * is absent, as when %q left it out */
	for (unsigned i = 0; i < p->fields->n; i++)
		if (ev->raw[i].p && ev->raw[i].len == 0)
			ev->raw[i].p = NULL;
	ev->raw[st->message] = (struct kl_str){ rec + end, se - end };
	for (size_t pos = se; pos < len;) {
		size_t ls = pos + 1;
		int rc = st->jit2 ? pcre2_jit_match(st->code2, (PCRE2_SPTR)rec, len, ls, 0, st->md2,
						    p->mctx)
				  : pcre2_match(st->code2, (PCRE2_SPTR)rec, len, ls, 0, st->md2, p->mctx);
		if (rc <= 0)
			break;
		const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(st->md2);
		if (st->pid_group2 >= 0 && st->pid >= 0 && ev->raw[st->pid].p) {
			PCRE2_SIZE ps = ov[2 * st->pid_group2], pe = ov[2 * st->pid_group2 + 1];
			const struct kl_str *pid = &ev->raw[st->pid];
			if (ps == PCRE2_UNSET || pe - ps != pid->len ||
			    memcmp(rec + ps, pid->p, pid->len) != 0)
				break;
		}
		char kw = rec[ov[2 * st->kw_group]];
		size_t vs = ov[1], ve = seg_end(rec, len, vs);
		struct kl_str v = { rec + vs, ve - vs };
		int f = -1;
		switch (kw) {
		case 'D': f = st->detail; break;
		case 'H': f = st->hint; break;
		case 'C': f = st->context; break;
		case 'Q': f = st->query; break;
		case 'S':
			if (!stmt_line.p)
				stmt_line = v;
			break;
		default: break; /* LOCATION, BACKTRACE */
		}
		if (f >= 0 && !ev->raw[f].p)
			ev->raw[f] = v;
		pos = ve;
	}
	struct kl_str dur, stmt;
	const struct kl_str *m = &ev->raw[st->message];
	pg_message_fields(m->p, m->len, &dur, &stmt);
	ev->raw[st->duration] = dur;
	ev->raw[st->statement] = stmt_line.p ? stmt_line : stmt;
	return 0;
}
