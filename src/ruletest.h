/*
 * ruletest.h — the test files of `klaxon test` (private to the main program):
 * loaded and checked, and the helpers that turn their input templates into
 * log lines.
 *
 * A test file names rule files and where its sources come from (a config
 * file, or sources and parsers written inline), then lists tests: input
 * lines per source (or check results per probe, `fields:`) at offsets from
 * the test's start, and the alert
 * transitions expected (or not expected) at given instants. The format is in
 * README.md ("klaxon test").
 *
 * Loading checks every key and value and reports each problem through the
 * diag as FILE:LINE:COL: message, going on to find the others; a file with
 * any problem is not handed out. Names of sources are checked later, against
 * the config they are resolved in (cmd_test.c), with the positions kept here.
 *
 * Ownership: a ruletest_file owns its YAML tree; every string below points
 * into it and lives until ruletest_free.
 */
#ifndef KLAXON_RULETEST_H
#define KLAXON_RULETEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/kl.h"
#include "common/kl_yaml.h"

/* Caps, so that a hostile test file costs bounded time and memory. */
#define RULETEST_MAX_LINES 1000000 /* generated lines per test */
#define RULETEST_MAX_SPAN_US (INT64_C(366) * 86400 * 1000000) /* offsets */

/* The instant of offset 0 when a file says nothing: 2023-11-14T22:00:00Z. */
#define RULETEST_DEFAULT_START_US (INT64_C(1699999200) * 1000000)

struct ruletest_kv {
	const char *key;
	const char *value;
};

/* A field of a probe's result (`fields:`): its name and value as written;
 * checked against the probe's kind in cmd_test.c, where the kind is known. */
struct ruletest_field {
	const char *name;
	const char *value;
	int line, col;	       /* of the value */
	int name_line, name_col; /* of the name */
};

/* One entry of a source's input: its lines (templates, written in order at
 * each instant), or for a probe the fields of one check's result, at at_us,
 * then every every_us, times times in all. Exactly one of nlines, nfields is
 * not 0. */
struct ruletest_item {
	const char **lines;
	size_t nlines;
	struct ruletest_field *fields;
	size_t nfields;
	int64_t at_us;	  /* offset from the test's start */
	int64_t every_us; /* 0 when written once */
	uint64_t times;	  /* 1 when written once */
	int line, col;
};

struct ruletest_input {
	const char *source;
	int line, col; /* of the source's key */
	struct ruletest_item *items;
	size_t nitems;
};

struct ruletest_expect {
	const char *alert;
	bool resolved;	   /* status: resolved (else firing) */
	int64_t at_us;	   /* offset */
	int64_t within_us; /* tolerance; -1: the default (see cmd_test.c) */
	struct ruletest_kv *labels; /* each must be among the got labels */
	size_t nlabels;
	struct ruletest_kv *annotations; /* `summary:` is annotations[summary] */
	size_t nannotations;
	int line, col;
};

/* No transition of alert (with these labels) from from_us to until_us. */
struct ruletest_absent {
	const char *alert;
	int status; /* -1: any; else resolved (1) or firing (0) */
	struct ruletest_kv *labels;
	size_t nlabels;
	int64_t from_us;
	int64_t until_us; /* -1: the end of the test */
	int line, col;
};

struct ruletest_case {
	const char *name;
	int line, col;
	int64_t start_us; /* instant of offset 0 (µs since the epoch) */
	int64_t until_us; /* offset of the end; -1: the last instant named + margin */
	struct ruletest_input *inputs;
	size_t ninputs;
	struct ruletest_expect *expects;
	size_t nexpects;
	struct ruletest_absent *absents;
	size_t nabsents;
	size_t nlines; /* lines and probe results the inputs generate (records may span
			* several lines) */
};

struct ruletest_timefmt {
	const char *source;
	const char *format;
	int line, col; /* of the source's key */
};

struct ruletest_file {
	char *path;
	struct kl_ynode *tree;
	char *config_path; /* `config:` resolved against the file's directory, or NULL */
	int config_line, config_col;
	/* What the config loader gets (config_load_embedded): a mapping that
	 * borrows the file's sources, parsers, rule_files and eval_interval. */
	struct kl_ynode embedded;
	bool has_eval_interval;
	struct ruletest_timefmt *time_formats; /* `time_format:` source → format */
	size_t ntime_formats;
	struct ruletest_case *tests;
	size_t ntests;
};

/* Load and check. NULL after reporting every problem through d. */
struct ruletest_file *ruletest_load(const char *path, struct kl_diag *d);
/* The same from memory (tests); name stands for the file. */
struct ruletest_file *ruletest_load_mem(const char *name, const char *data, size_t len,
					struct kl_diag *d);
void ruletest_free(struct ruletest_file *f);

/*
 * Append instant t_us (UTC) formatted by fmt: %Y %m %d %H %M %S %b (Jan) %a
 * (Mon) %j %F (%Y-%m-%d) %T (%H:%M:%S) %L (milliseconds, 3 digits) %f
 * (microseconds, 6 digits) %z (+0000) %Z (UTC) %s (seconds since the
 * epoch) %%. 0, -EINVAL for another conversion (the buffer may then hold a
 * part), -ENOMEM.
 */
int ruletest_format_time(const char *fmt, int64_t t_us, struct kl_buf *out);
/* The finest unit fmt writes: 1 (%f), 1000 (%L) or 1000000 µs. */
int64_t ruletest_time_precision(const char *fmt);
/* The formats {{time}} is tried in when a source has no `time_format`, in
 * order (NULL-terminated): nginx, Python logging, PostgreSQL, ISO 8601, ... */
const char *const *ruletest_time_candidates(void);

/*
 * Append template tmpl[0..len) with {{time}} replaced by t_us in timefmt
 * (which may be NULL when the template has no {{time}}) and {{n}} by n (the
 * repetition, from 0). 0, -EINVAL (a bad timefmt), -ENOMEM.
 */
int ruletest_expand(const char *tmpl, size_t len, const char *timefmt, int64_t t_us, uint64_t n,
		    struct kl_buf *out);
/* True if the template has {{time}}. */
bool ruletest_has_time(const char *tmpl, size_t len);

/*
 * The value of a probe's numeric field as written in `fields:`: a decimal
 * number ("0.042", "95", "-1e3"); for a field in seconds (seconds true) also a
 * duration with units ("27h", "1m30s"), in seconds. 0 and *out, or -EINVAL.
 */
int ruletest_probe_number(const char *s, size_t len, bool seconds, double *out);

/* RFC 3339: 2023-11-14T22:00:00Z, with optional fraction, Z or ±HH:MM, 't' or
 * ' ' for 'T'. 0 and *out_us, or -EINVAL. */
int ruletest_parse_instant(const char *s, size_t len, int64_t *out_us);

#endif
