/*
 * parsers_int.h — shared inside parsers/ only; nothing outside this folder
 * includes it. The parser object, the compiled time format, the built-in
 * table, the hooks of the formats that are more than a fixed regex
 * (django.c, postgres.c, json.c) and the derived signature (signature.c).
 */
#ifndef PARSERS_INT_H
#define PARSERS_INT_H

#ifndef PCRE2_CODE_UNIT_WIDTH /* pkg-config's cflags usually define it */
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <pcre2.h>

#include "parsers/parsers.h"

/* ---------------------------------------------------------------------------
 * Time formats (timefmt.c).
 *
 * A format is compiled once into a short program of ops. Parsing keeps a
 * one-entry cache of the last text that parsed: a line from the same second as
 * the previous one (the common case: thousands of lines per second share it)
 * costs one memcmp. With a fraction (%f, or ISO 8601's ".123"), the cache key is
 * the text around the fraction digits, and only the digits are converted.
 */
enum tf_kind {
	TF_LIT,	      /* one literal byte */
	TF_SPACE,     /* one or more blanks */
	TF_YEAR,      /* %Y: exactly 4 digits */
	TF_MON,	      /* %m: 1-2 digits */
	TF_MON_NAME,  /* %b / %h: Jan..Dec, any case */
	TF_DAY,	      /* %d: 1-2 digits */
	TF_DAY_SP,    /* %e: an optional blank, then 1-2 digits */
	TF_HOUR,      /* %H */
	TF_MIN,	      /* %M */
	TF_SEC,	      /* %S */
	TF_FRAC,      /* %f: one or more digits (µs precision, rest truncated) */
	TF_ZONE,      /* %z: Z, +hh, +hhmm, +hh:mm */
	TF_ZONE_NAME, /* %Z: a zone name (UTC, GMT, any other letters: see timefmt.c)
		       * or a numeric offset as %z */
};

#define TF_MAX_OPS 64
#define TF_CACHE_KEY 64

struct tf_op {
	unsigned char kind; /* enum tf_kind */
	char c;		    /* TF_LIT: the byte */
};

struct timefmt {
	bool iso;   /* ISO 8601 / RFC 3339, no program */
	bool epoch; /* seconds since the epoch ("1699999999.123"), or ms, µs, ns */
	unsigned nops;
	struct tf_op ops[TF_MAX_OPS];

	/* One-entry cache. c_frac_pos < 0: the key is the whole text. Otherwise
	 * the key is c_key[0, c_frac_pos) + digits + c_key[c_frac_pos +
	 * c_frac_len, c_len), and c_base_us excludes the fraction. */
	bool c_valid;
	unsigned char c_len;
	signed char c_frac_pos;
	unsigned char c_frac_len;
	int64_t c_base_us;
	char c_key[TF_CACHE_KEY];
};

/* fmt NULL or "iso8601": ISO 8601; "epoch": a number of seconds since the
 * epoch (see timefmt_epoch). 0, or -EINVAL with a message in err. */
int timefmt_compile(struct timefmt *tf, const char *fmt, char *err, size_t errlen);
/* 0 and *out_us (µs since the epoch, UTC), or -EINVAL. Updates the cache. */
int timefmt_parse(struct timefmt *tf, const char *s, size_t len, int64_t *out_us);
/*
 * A number as an instant: "1699999999", "1699999999.123" (seconds), or an
 * integer of milliseconds, microseconds or nanoseconds, told apart by its
 * magnitude (seconds up to 1e11, i.e. the year 5138; ms up to 1e14; µs up to
 * 1e17; ns above). 0 and *out_us, or -EINVAL (junk, negative, exponent).
 */
int timefmt_epoch(const char *s, size_t len, int64_t *out_us);
/* Append a regex (no capture groups) that matches the texts fmt accepts, for
 * formats that derive their regex (django's asctime with a datefmt). 0,
 * -EINVAL (fmt does not compile) or -ENOMEM. */
int timefmt_regex(const char *fmt, struct kl_buf *out);

/* ---------------------------------------------------------------------------
 * Field tables.
 *
 * A parser's fields live behind a pointer, so that the json formats can
 * register fields on lookup (parser_field_index takes a const parser; the
 * table it writes is not part of the const object).
 */
struct parser_fields {
	unsigned n;
	const char *name[PARSER_MAX_FIELDS];
	enum parser_type type[PARSER_MAX_FIELDS];
};

/* ---------------------------------------------------------------------------
 * Built-in formats (builtin.c).
 */
enum parser_kind {
	PK_REGEX,    /* a regex, fixed, derived or the user's; maybe a post hook */
	PK_JSON,     /* json.c's scanner: json and postgres_json */
};

struct parser_derived;

struct parser_builtin {
	const char *name;
	enum parser_kind kind;
	const char *regex; /* a fixed regex, compiled with PCRE2_ANCHORED; or NULL */
	const struct parser_field_spec *types;
	size_t ntypes;
	const char *time_field;
	const char *time_format;
	const char *const *dash_absent; /* NULL-terminated: fields where "-" means absent */
	/* Formats whose regex is derived from an option: fills d (regex, types,
	 * time, extra fields, multi-line rule). 0 or -EINVAL/-ENOMEM with a
	 * message. */
	int (*derive)(const struct parser_spec *spec, struct parser_derived *d, char *err,
		      size_t errlen);
	/* After the regex's fields are mapped: resolve the format's own state
	 * (field indexes, a second regex). 0 or -errno with a message. */
	int (*setup)(struct parser *p, const struct parser_derived *d, char *err, size_t errlen);
	/* After a match: set the fields the regex cannot (postgres' folded
	 * DETAIL/HINT lines, django's exception). end is where the match ended.
	 * 0, or -EINVAL to count the record as unmatched. */
	int (*post)(struct parser *p, const char *rec, size_t len, size_t end,
		    struct parser_event *ev);
	void (*destroy)(struct parser *p); /* frees what setup made; NULL-safe state */
	bool options_format;	       /* takes parser_spec.format */
	bool options_log_line_prefix;  /* takes parser_spec.log_line_prefix */
	bool options_time_format;      /* takes parser_spec.time_format (django: datefmt) */
};

const struct parser_builtin *parser_builtin_find(const char *name);

/* What a derive hook produces. Owned by parser_new, released with
 * parser_derived_free. */
#define PD_MAX_EXTRA 12
struct parser_derived {
	struct kl_buf regex;
	struct parser_field_spec types[PARSER_MAX_FIELDS];
	size_t ntypes;
	const char *time_field;	 /* NULL: read time */
	char time_format[128];
	/* Fields the post hook sets (not groups of the regex), in order. */
	struct parser_field_spec extra[PD_MAX_EXTRA];
	size_t nextra;
	struct kl_buf ml_start, ml_cont; /* the multi-line rule, empty if none */
	struct kl_buf regex2;		 /* a second regex for the post hook, or empty */
};
void parser_derived_free(struct parser_derived *d);

/* Regex text helpers for the derive hooks (parser.c). */
int pd_lit(struct kl_buf *b, const char *s, size_t n); /* s as a literal */

/* ---------------------------------------------------------------------------
 * Format state (django.c, postgres.c, json.c).
 */
struct django_state {
	int message, exception, exception_message, traceback; /* field indexes */
};

struct pg_state {
	pcre2_code *code2;	/* prefix + (?<kw>DETAIL|HINT|...):  (anchored) */
	pcre2_match_data *md2;
	int kw_group, pid_group2; /* in code2; pid_group2 < 0 when %p is absent */
	bool jit2;
	int pid, message, duration, statement, detail, hint, context, query; /* fields */
};

struct json_state; /* json.c */

/* The derived field `signature` (signature.c). */
#define SIG_MAX_SRC 4
enum sig_how {
	SIG_FIRST,     /* the first of src[] present */
	SIG_REQUEST,   /* src: request, method, path, protocol */
	SIG_EXCEPTION, /* src: exception, exception_message, message */
	SIG_RECORD,    /* the whole record */
};
struct parser_sig {
	int field;	       /* its field index; -1: not registered, not computed */
	enum sig_how how;
	int src[SIG_MAX_SRC]; /* the fields it is made from, -1: none */
	char *buf;	       /* PARSER_SIGNATURE_MAX bytes, from registration on */
};

/* ---------------------------------------------------------------------------
 * The parser (parser.c).
 */
struct parser_group {
	uint16_t group;	 /* capture group number */
	uint8_t field;	 /* field index */
};

struct parser {
	char *name;
	enum parser_kind kind;
	const struct parser_builtin *builtin; /* NULL for a user regex */
	pcre2_code *code;
	pcre2_match_data *md;
	pcre2_match_context *mctx;
	pcre2_jit_stack *jstack;
	const PCRE2_SIZE *ov; /* md's ovector */
	bool jit;

	struct parser_fields *fields; /* see above: behind a pointer on purpose */
	uint64_t dash_absent;	      /* bit i: "-" in field i means absent */

	/* named groups in group order; several groups may share a field (?J) */
	unsigned ngroups;
	struct parser_group *groups;

	/* the format's post hook (builtin->post), kept here for the hot path */
	int (*post)(struct parser *p, const char *rec, size_t len, size_t end,
		    struct parser_event *ev);

	int time_idx; /* -1: the event time is the read time */
	bool time_lenient; /* json's default time field: a bad one means read time */
	struct timefmt tf;

	char *ml_start, *ml_cont; /* parser_default_multiline, or NULL */

	union {
		struct django_state dj;
		struct pg_state pg;
	} u;
	struct json_state *js; /* json formats: the registry and scratch buffer */
	/* behind a pointer, like fields: registered by a lookup on a const parser */
	struct parser_sig *sig;

	struct parser_stats stats;
};

/* Shared with the format files (parser.c). */
int parser_find_field(const struct parser *p, const char *name, size_t len);
/* Append a field not backed by a regex group; its index, or -1 when full. */
int parser_add_field(struct parser *p, const char *name, enum parser_type type);
pcre2_code *parser_compile(const char *regex, uint32_t opts, char *err, size_t errlen,
			   int *erroff);
void parser_set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* fields.c: numeric value of a field's text by type; 0, -ENOENT or -EINVAL. */
int parser_text_number(enum parser_type t, const char *s, size_t len, double *out);

/* django.c */
int django_derive(const struct parser_spec *spec, struct parser_derived *d, char *err,
		  size_t errlen);
int django_setup(struct parser *p, const struct parser_derived *d, char *err, size_t errlen);
int django_post(struct parser *p, const char *rec, size_t len, size_t end,
		struct parser_event *ev);

/* postgres.c */
int pg_derive(const struct parser_spec *spec, struct parser_derived *d, char *err,
	      size_t errlen);
int pg_setup(struct parser *p, const struct parser_derived *d, char *err, size_t errlen);
int pg_post(struct parser *p, const char *rec, size_t len, size_t end, struct parser_event *ev);
void pg_free(struct parser *p);
/* "duration: 1.5 ms  statement: ..." → views on "1.5" and the statement
 * (postgres and postgres_json). Either may be left absent. */
void pg_message_fields(const char *msg, size_t len, struct kl_str *duration,
		       struct kl_str *statement);

/* signature.c: register the field (once; its index, or -1 when the field
 * table is full or out of memory), and compute it after a parse. */
int parser_sig_register(const struct parser *p);
void parser_sig_compute(struct parser *p, const char *rec, size_t len, struct parser_event *ev);

/* json.c */
int json_new(struct parser *p, const struct parser_spec *spec, bool pg, char *err,
	     size_t errlen);
void json_free(struct parser *p);
int json_field_index(const struct parser *p, const char *name, size_t len);
int json_parse(struct parser *p, const char *rec, size_t len, int64_t read_us,
	       struct parser_event *ev);

#endif
