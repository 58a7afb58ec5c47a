/*
 * parsers_int.h — shared inside parsers/ only; nothing outside this folder
 * includes it. The parser object, the compiled time format and the built-in
 * table.
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
};

#define TF_MAX_OPS 64
#define TF_CACHE_KEY 64

struct tf_op {
	unsigned char kind; /* enum tf_kind */
	char c;		    /* TF_LIT: the byte */
};

struct timefmt {
	bool iso; /* ISO 8601 / RFC 3339, no program */
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

/* fmt NULL or "iso8601": ISO 8601. 0, or -EINVAL with a message in err. */
int timefmt_compile(struct timefmt *tf, const char *fmt, char *err, size_t errlen);
/* 0 and *out_us (µs since the epoch, UTC), or -EINVAL. Updates the cache. */
int timefmt_parse(struct timefmt *tf, const char *s, size_t len, int64_t *out_us);

/* ---------------------------------------------------------------------------
 * Built-in formats (builtin.c).
 */
struct parser_builtin {
	const char *name;
	const char *regex; /* compiled with PCRE2_ANCHORED */
	const struct parser_field_spec *types;
	size_t ntypes;
	const char *time_field;
	const char *time_format;
	const char *const *dash_absent; /* NULL-terminated: fields where "-" means absent */
};

const struct parser_builtin *parser_builtin_find(const char *name);

/* ---------------------------------------------------------------------------
 * The parser (parser.c).
 */
struct parser_group {
	uint16_t group;	 /* capture group number */
	uint8_t field;	 /* field index */
};

struct parser {
	char *name;
	pcre2_code *code;
	pcre2_match_data *md;
	pcre2_match_context *mctx;
	pcre2_jit_stack *jstack;
	const PCRE2_SIZE *ov; /* md's ovector */
	bool jit;

	unsigned nfields;
	const char *field_name[PARSER_MAX_FIELDS]; /* into code's name table */
	enum parser_type field_type[PARSER_MAX_FIELDS];
	uint64_t dash_absent; /* bit i: "-" in field i means absent */

	/* named groups in group order; several groups may share a field (?J) */
	unsigned ngroups;
	struct parser_group *groups;

	int time_idx; /* -1: the event time is the read time */
	struct timefmt tf;

	struct parser_stats stats;
};

/* fields.c: numeric value of a field's text by type; 0, -ENOENT or -EINVAL. */
int parser_text_number(enum parser_type t, const char *s, size_t len, double *out);

#endif
