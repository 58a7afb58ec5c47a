/*
 * parsers.h — turning a record (one log line, or a multi-line record) into an
 * event: an event time and typed fields.
 *
 * A parser is a PCRE2 regex, compiled and JIT'd once, whose named groups are the
 * fields; built-in formats are parsers with a fixed regex (nginx_combined,
 * nginx_timed, gunicorn_access), a regex derived once from an option (django
 * from its Python logging format, postgres from its log_line_prefix), or a
 * JSON scanner (json, postgres_json). Parsing a record allocates nothing: the
 * event's fields are views into the caller's record buffer, valid until that
 * buffer changes — except for the json formats, whose escaped strings are
 * unescaped into the parser's own scratch buffer: those views are valid until
 * the next parser_parse on that parser (or until the record changes, whichever
 * comes first); so is the derived `signature` (below), which lives in a
 * per-parser buffer. Numbers are converted only when someone asks
 * (parser_event_number), and the conversion is cached in the event.
 *
 * Field numbering: a parser has parser_field_count() fields, numbered from 0,
 * stable for the parser's lifetime (the json formats add fields as they are
 * looked up, never remove or renumber). Consumers (rules) resolve names to
 * indexes once, at load, with parser_field_index().
 *
 * A parser is single-threaded: it owns one pcre2_match_data reused per call.
 */
#ifndef PARSERS_H
#define PARSERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/kl.h"

#define PARSER_MAX_FIELDS 48
/* The longest `signature` (bytes); a longer one is cut (stats.signatures_cut). */
#define PARSER_SIGNATURE_MAX 256

enum parser_type {
	PARSER_T_STRING,
	PARSER_T_INT,	  /* 64-bit signed integer */
	PARSER_T_FLOAT,
	PARSER_T_SECONDS, /* a duration written in seconds ("0.412"); value in seconds */
	PARSER_T_MS,	  /* a duration written in milliseconds; value in seconds */
	PARSER_T_TIME,	  /* the event-time field; its value is the raw text */
};

/* "string", "int", "float", "seconds", "ms" → type. 0 or -EINVAL. */
int parser_type_from_name(const char *name, enum parser_type *out);
const char *parser_type_name(enum parser_type t);
static inline bool parser_type_is_numeric(enum parser_type t)
{
	return t == PARSER_T_INT || t == PARSER_T_FLOAT || t == PARSER_T_SECONDS ||
	       t == PARSER_T_MS;
}

struct parser;

/*
 * One parsed record. Owned by the caller, reused from record to record (set up
 * once with parser_event_init). Views in raw[] point into the record passed to
 * parser_parse and die with it.
 */
struct parser_event {
	int64_t time_us;		      /* event time (µs since the epoch, UTC) */
	int64_t read_us;		      /* when the record was read (wall clock) */
	const struct parser *parser;	      /* the parser that produced it */
	struct kl_str raw[PARSER_MAX_FIELDS]; /* .p == NULL: the field is absent */
	uint64_t num_tried;		      /* bit i: num[i] computed */
	uint64_t num_ok;		      /* bit i: num[i] valid */
	uint64_t literal; /* json formats: bit i: raw[i] is a JSON number, true or
			   * false, written as such by parser_event_json */
	double num[PARSER_MAX_FIELDS];
};

struct parser_field_spec {
	const char *name;
	enum parser_type type;
};

struct parser_spec {
	const char *name;  /* the parser's name, for messages */
	/* NULL or "regex": a regex parser; otherwise a built-in format name
	 * (parser_builtin_names()) and regex must be NULL. Built-ins have fixed
	 * types and time, except: json takes types, time_field and time_format;
	 * postgres_json takes types for the keys it does not fix; django takes
	 * time_format as the datefmt of its %(asctime)s. */
	const char *type;
	const char *regex; /* PCRE2 pattern with named groups */
	const struct parser_field_spec *types; /* declared types; others are strings */
	size_t ntypes;
	const char *time_field;	 /* NULL: the event time is the read time (json:
				  * NULL means the key "time" when present) */
	const char *time_format; /* strptime-like ("%d/%b/%Y:%H:%M:%S %z", with %Z
				  * for a zone name), NULL / "iso8601" for ISO
				  * 8601 / RFC 3339, or "epoch" for seconds (ms, µs,
				  * ns by magnitude) since 1970 */
	/* Options of built-in formats (NULL: the format's default). */
	const char *log_line_prefix; /* postgres: PostgreSQL's log_line_prefix */
	const char *format;	     /* django: the Python logging format string */
};

/*
 * Build a parser. On failure returns NULL and writes a message for the user to
 * err ("unknown built-in parser 'ngnix'; expected one of: ...", "regex: missing
 * closing parenthesis", "types: 'statsu' is not a named group of the regex",
 * "time.format: unknown conversion %Q") and, for regex errors, the byte offset
 * in the regex to *erroff (else -1).
 */
struct parser *parser_new(const struct parser_spec *spec, char *err, size_t errlen, int *erroff);
void parser_free(struct parser *p);
/*
 * The record rule a format brings for multi-line records (a Python traceback,
 * PostgreSQL's TAB-continued lines and DETAIL/HINT/CONTEXT/STATEMENT lines):
 * a PCRE2 regex that a line starting a record matches (start), or that a line
 * continuing the previous record matches (continuation). Returns false when
 * the format's records are single lines. The strings live as long as p.
 */
struct parser_multiline {
	const char *start;
	const char *continuation;
};
bool parser_default_multiline(const struct parser *p, struct parser_multiline *out);

/* True if name is a built-in format accepted as parser_spec.type. */
bool parser_builtin_exists(const char *name);
/* NULL-terminated list of built-in format names, for messages. */
const char *const *parser_builtin_names(void);

const char *parser_name(const struct parser *p);
unsigned parser_field_count(const struct parser *p);
const char *parser_field_name(const struct parser *p, unsigned idx);
enum parser_type parser_field_type(const struct parser *p, unsigned idx);
/*
 * Index of a field by name, or -1. For the json and postgres_json formats any
 * key path ("a.b" for nested objects) is a field: the first lookup of a name
 * registers it (up to PARSER_MAX_FIELDS), and parsing extracts only the
 * registered ones. This registry is the one mutable part of a parser, done at
 * load time by the rules; parsing never changes it. A registered json field
 * is a string unless declared in the parser's `types:` (a rule that compares
 * it with a number is refused at load, with the advice to declare it); its
 * JSON numbers still print as numbers in parser_event_json.
 *
 * "signature" is a field of every parser (unless it has its own field of that
 * name, which wins): the format's message with numbers, hex ids, UUIDs, IP
 * addresses and quoted strings masked ("<n>", "<hex>", "<uuid>", "<ip>",
 * "'<s>'"), blanks collapsed, at most PARSER_SIGNATURE_MAX bytes — nginx and
 * gunicorn: the request; django: "Exception: message" of a traceback, else the
 * message; postgres, postgres_json: the message; json and regex parsers: the
 * field message or msg (a regex without either: the whole record). Its first
 * lookup registers it (json: with the keys message and msg); only then does
 * parsing compute it, into a buffer of the parser's (the view is valid until
 * the next parser_parse on it). The masks in detail: signature.c.
 */
int parser_field_index(const struct parser *p, const char *name, size_t len);

void parser_event_init(struct parser_event *ev, const struct parser *p);

/*
 * Parse one record of len bytes (no trailing newline). read_us is the wall
 * time of the read; it becomes the event time when the format has no time
 * field. Returns 0, or -EINVAL when the record does not match (or its time
 * field does not parse): the event is then unspecified and the failure is
 * counted in the parser's stats. Never fails on bytes it does not like: NUL,
 * invalid UTF-8 and control characters are just bytes. The json formats also
 * return -EINVAL for malformed JSON (counted as unmatched), and -ENOMEM when
 * their scratch buffer cannot grow to the record's size (counted likewise).
 */
int parser_parse(struct parser *p, const char *rec, size_t len, int64_t read_us,
		 struct parser_event *ev);

/*
 * Numeric value of field idx: 0 and *out, or -ENOENT (absent, or "-"),
 * -EINVAL (not a number of the field's type; string fields always). Durations
 * are in seconds. A list ("0.003, 0.120" as nginx writes for several upstreams)
 * is the sum of its members.
 */
int parser_event_number(struct parser_event *ev, unsigned idx, double *out);

struct parser_stats {
	uint64_t parsed;
	uint64_t unmatched;
	uint64_t bad_time;
	uint64_t signatures;	 /* events whose `signature` was computed */
	uint64_t signatures_cut; /* ... and cut at PARSER_SIGNATURE_MAX */
};
const struct parser_stats *parser_stats(const struct parser *p);

/*
 * Append the event as one JSON object (no newline):
 *   {"time":"2023-11-14T22:13:20.000Z","source":"nginx","fields":{...}}
 * Fields in parser order, absent ones left out, the time field left out (it is
 * "time"), numeric fields as numbers (durations in seconds), strings escaped
 * (always valid UTF-8 JSON). Returns 0 or -ENOMEM.
 */
int parser_event_json(struct parser_event *ev, const char *source, struct kl_buf *out);

#endif
