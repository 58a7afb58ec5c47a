/*
 * test_postgres.c — the postgres (stderr) and postgres_json (jsonlog) parsers
 * on what a real PostgreSQL 15 wrote.
 *
 * tests/data/postgres/ holds logs of PostgreSQL 15.18 (Debian) driven by
 * tests/data/postgres/capture.sh: connections and disconnections, slow
 * pg_sleep statements, a multi-line statement, a syntax error (ERROR +
 * STATEMENT), a unique violation (ERROR + DETAIL + STATEMENT), PL/pgSQL
 * errors (CONTEXT, multi-line message and DETAIL, HINT), wrong passwords
 * (FATAL + DETAIL), a deadlock (LOG and ERROR, each with DETAIL, HINT,
 * CONTEXT, STATEMENT), connections past max_connections (both FATALs),
 * pgbench's extended protocol (parse/bind/execute with DETAIL parameters), a
 * smart shutdown ("shutting down" FATAL) and a crash recovery ("starting up",
 * "not yet accepting connections" + DETAIL) — once per log_line_prefix:
 *   stderr_default.log   '%m [%p] '
 *   stderr_debian.log    '%m [%p] %q%u@%d '
 *   stderr_pgbadger.log  '%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h '
 *   stderr_sqlstate.log  '%m [%p] %e %q%u@%d/%a %r '
 *   stderr_kitchen.log   '%n|%s|%c|%l|%v|%x|%e|%i|%b|%P|%Q|%%|%q%-10u|%8d|%a|%r|%h '
 *   stderr_verbose.log   '%m [%p] %q%u@%d ' with log_error_verbosity = verbose
 *   jsonlog.json         log_destination = jsonlog
 *   tz_*.log             '%m [%p] ' with log_timezone = Europe/Paris,
 *                        America/Sao_Paulo, Asia/Kolkata, America/Chicago
 * Records are assembled here with the parser's own default multi-line rule
 * (the same rule ingest/multiline.c applies), so the rule is tested too.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>
#include <pcre2.h>

#include "common/kl.h"
#include "parsers/parsers.h"

#define ABSENT ((const char *)1)

static const char P_DEFAULT[] = "%m [%p] ";
static const char P_DEBIAN[] = "%m [%p] %q%u@%d ";
static const char P_PGBADGER[] = "%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h ";
static const char P_SQLSTATE[] = "%m [%p] %e %q%u@%d/%a %r ";
static const char P_KITCHEN[] = "%n|%s|%c|%l|%v|%x|%e|%i|%b|%P|%Q|%%|%q%-10u|%8d|%a|%r|%h ";

/* ---- helpers ------------------------------------------------------------ */

static struct parser *pg(const char *prefix)
{
	char err[256];
	struct parser_spec spec = { .name = "pg", .type = "postgres", .log_line_prefix = prefix };
	struct parser *p = parser_new(&spec, err, sizeof err, NULL);
	if (!p)
		print_error("prefix '%s': %s\n", prefix ? prefix : "(default)", err);
	assert_non_null(p);
	return p;
}

static struct parser *pgjson(void)
{
	char err[256];
	struct parser_spec spec = { .name = "pgj", .type = "postgres_json" };
	struct parser *p = parser_new(&spec, err, sizeof err, NULL);
	if (!p)
		print_error("postgres_json: %s\n", err);
	assert_non_null(p);
	return p;
}

static void expect_str_(struct parser_event *ev, const char *name, const char *want, int line)
{
	int idx = parser_field_index(ev->parser, name, strlen(name));
	if (idx < 0) {
		print_error("line %d: no field '%s'\n", line, name);
		fail();
	}
	struct kl_str got = ev->raw[idx];
	if (want == ABSENT) {
		if (got.p) {
			print_error("line %d: %s = '%.*s', expected absent\n", line, name,
				    (int)got.len, got.p);
			fail();
		}
		return;
	}
	if (!got.p || got.len != strlen(want) || memcmp(got.p, want, got.len) != 0) {
		print_error("line %d: %s = '%.*s'%s, expected '%s'\n", line, name,
			    got.p ? (int)got.len : 0, got.p ? got.p : "", got.p ? "" : " (absent)",
			    want);
		fail();
	}
}
#define expect_str(ev, name, want) expect_str_(ev, name, want, __LINE__)

static void expect_prefix_(struct parser_event *ev, const char *name, const char *want, int line)
{
	int idx = parser_field_index(ev->parser, name, strlen(name));
	struct kl_str got = idx >= 0 ? ev->raw[idx] : (struct kl_str){ NULL, 0 };
	if (!got.p || got.len < strlen(want) || memcmp(got.p, want, strlen(want)) != 0) {
		print_error("line %d: %s = '%.*s'%s, expected it to start with '%s'\n", line, name,
			    got.p ? (int)got.len : 0, got.p ? got.p : "", got.p ? "" : " (absent)",
			    want);
		fail();
	}
}
#define expect_prefix(ev, name, want) expect_prefix_(ev, name, want, __LINE__)

static void expect_num_(struct parser_event *ev, const char *name, double want, double tol,
			int line)
{
	int idx = parser_field_index(ev->parser, name, strlen(name));
	double got = -12345;
	int rc = idx >= 0 ? parser_event_number(ev, (unsigned)idx, &got) : -99;
	if (rc != 0 || fabs(got - want) > tol) {
		print_error("line %d: %s → rc %d value %.17g, expected %.17g\n", line, name, rc, got,
			    want);
		fail();
	}
}
#define expect_num(ev, name, want) expect_num_(ev, name, want, 1e-9, __LINE__)

/* Records of a data file, assembled with the parser's default rule. */
struct records {
	char **r;
	size_t *len;
	size_t n, cap;
	char *data;
};

static void rec_push(struct records *rs, const char *p, size_t len)
{
	if (rs->n == rs->cap) {
		rs->cap = rs->cap ? rs->cap * 2 : 64;
		rs->r = realloc(rs->r, rs->cap * sizeof *rs->r);
		rs->len = realloc(rs->len, rs->cap * sizeof *rs->len);
		assert_non_null(rs->r);
		assert_non_null(rs->len);
	}
	rs->r[rs->n] = malloc(len ? len : 1); /* exact size: ASan sees overreads */
	assert_non_null(rs->r[rs->n]);
	memcpy(rs->r[rs->n], p, len);
	rs->len[rs->n++] = len;
}

static void load(const char *name, const struct parser *p, struct records *rs)
{
	const char *dir = getenv("KLAXON_TEST_DATA");
	char path[1024];
	size_t len;
	struct parser_multiline ml = { 0 };
	pcre2_code *code = NULL;
	pcre2_match_data *md = NULL;
	struct kl_buf cur = { 0 };
	bool pending = false;

	memset(rs, 0, sizeof *rs);
	snprintf(path, sizeof path, "%s/postgres/%s", dir ? dir : "tests/data", name);
	if (kl_read_file(path, 1 << 24, &rs->data, &len) < 0) {
		print_error("cannot read %s\n", path);
		fail();
	}
	if (parser_default_multiline(p, &ml)) {
		int ec;
		PCRE2_SIZE eo;
		const char *re = ml.start ? ml.start : ml.continuation;
		code = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, 0, &ec, &eo, NULL);
		assert_non_null(code);
		md = pcre2_match_data_create(1, NULL);
	}
	for (size_t i = 0; i < len;) {
		const char *nl = memchr(rs->data + i, '\n', len - i);
		size_t l = nl ? (size_t)(nl - (rs->data + i)) : len - i;
		const char *line = rs->data + i;
		bool join = false;
		i += l + 1;
		if (code) {
			bool m = pcre2_match(code, (PCRE2_SPTR)line, l, 0, 0, md, NULL) >= 0;
			join = ml.start ? !m : m;
		}
		if (pending && join) {
			assert_int_equal(kl_buf_append(&cur, "\n", 1), 0);
			assert_int_equal(kl_buf_append(&cur, line, l), 0);
			continue;
		}
		if (pending)
			rec_push(rs, cur.p, cur.len);
		kl_buf_reset(&cur);
		assert_int_equal(kl_buf_append(&cur, line, l), 0);
		pending = true;
	}
	if (pending)
		rec_push(rs, cur.p, cur.len);
	kl_buf_free(&cur);
	pcre2_match_data_free(md);
	pcre2_code_free(code);
}

static void records_free(struct records *rs)
{
	for (size_t i = 0; i < rs->n; i++)
		free(rs->r[i]);
	free(rs->r);
	free(rs->len);
	free(rs->data);
}

/* Parse every record; all must parse. */
static void parse_all(struct parser *p, const struct records *rs)
{
	struct parser_event ev;
	for (size_t i = 0; i < rs->n; i++) {
		parser_event_init(&ev, p);
		if (parser_parse(p, rs->r[i], rs->len[i], 1, &ev) != 0) {
			print_error("record %zu did not parse: '%.*s'\n", i, (int)rs->len[i], rs->r[i]);
			fail();
		}
	}
}

/* The first record (from `from` on) whose field starts with msg (and whose
 * severity is sev, unless NULL); parsed into ev. */
static size_t find_in(struct parser *p, const struct records *rs, size_t from, const char *sev,
		      const char *field, const char *msg, struct parser_event *ev, int line)
{
	int mi = parser_field_index(p, field, strlen(field)), si = parser_field_index(p, "severity", 8);
	for (size_t i = from; i < rs->n; i++) {
		parser_event_init(ev, p);
		if (parser_parse(p, rs->r[i], rs->len[i], 1, ev) != 0)
			continue;
		struct kl_str m = ev->raw[mi], s = ev->raw[si];
		if (!m.p || m.len < strlen(msg) || memcmp(m.p, msg, strlen(msg)) != 0)
			continue;
		if (sev && !kl_str_eq(s, sev, strlen(sev)))
			continue;
		return i;
	}
	print_error("line %d: no %s record with %s '%s'\n", line, sev ? sev : "", field, msg);
	fail();
	return 0;
}
#define find_(p, rs, from, sev, msg, ev, line) find_in(p, rs, from, sev, "message", msg, ev, line)
#define find(p, rs, sev, msg, ev) find_in(p, rs, 0, sev, "message", msg, ev, __LINE__)
#define find_stmt(p, rs, stmt, ev) find_in(p, rs, 0, "LOG", "statement", stmt, ev, __LINE__)

/* Count the lines of a sample that start a report (what the rule must give). */
static size_t count_reports(const char *data)
{
	size_t n = 0;
	static const char *const kws[] = { " DETAIL:  ", " HINT:  ", " CONTEXT:  ", " STATEMENT:  ",
					   " QUERY:  ", " LOCATION:  " };
	for (const char *l = data; *l;) {
		const char *nl = strchr(l, '\n');
		size_t len = nl ? (size_t)(nl - l) : strlen(l);
		bool cont = len && l[0] == '\t';
		for (size_t k = 0; !cont && k < KL_ARRAY_LEN(kws); k++) {
			const char *hit = memmem(l, len, kws[k], strlen(kws[k]));
			/* the keyword right after the prefix: before any "LOG:  " etc. */
			if (hit && !memmem(l, (size_t)(hit - l), ":  ", 3))
				cont = true;
		}
		if (len && !cont)
			n++;
		l = nl ? nl + 1 : l + len;
	}
	return n;
}

/* ---- tests -------------------------------------------------------------- */

static void test_names_fields_rules(void **state)
{
	(void)state;
	assert_true(parser_builtin_exists("postgres"));
	assert_true(parser_builtin_exists("postgres_json"));
	struct parser *p = pg(NULL);
	static const char *const want[] = { "time",	 "pid",	      "severity", "sqlstate",
					    "message",	 "duration",  "statement", "detail",
					    "hint",	 "context",   "query" };
	assert_int_equal(parser_field_count(p), KL_ARRAY_LEN(want));
	for (size_t i = 0; i < KL_ARRAY_LEN(want); i++)
		assert_string_equal(parser_field_name(p, (unsigned)i), want[i]);
	assert_int_equal(parser_field_type(p, 1), PARSER_T_INT);
	assert_int_equal(parser_field_type(p, 5), PARSER_T_MS);
	assert_int_equal(parser_field_type(p, 0), PARSER_T_TIME);

	struct parser_multiline ml;
	assert_true(parser_default_multiline(p, &ml));
	assert_null(ml.start);
	assert_string_equal(ml.continuation,
			    "^(?:\\t|\\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2}:\\d{2}\\.\\d{3} "
			    "(?:[A-Za-z]++|[+-]\\d{2}(?::?\\d{2})?+) \\[\\d++\\] "
			    "(?:DETAIL|HINT|CONTEXT|STATEMENT|QUERY|LOCATION|BACKTRACE):  )");
	parser_free(p);

	/* Debian's prefix: user and database, optional (%q) */
	p = pg(P_DEBIAN);
	assert_true(parser_field_index(p, "user", 4) >= 0);
	assert_true(parser_field_index(p, "database", 8) >= 0);
	assert_int_equal(parser_field_index(p, "application", 11), -1);
	parser_free(p);

	/* every escape has its field and type */
	p = pg(P_KITCHEN);
	static const struct {
		const char *name;
		enum parser_type t;
	} kf[] = {
		{ "time", PARSER_T_TIME },	     { "session_start", PARSER_T_STRING },
		{ "session_id", PARSER_T_STRING },   { "line_num", PARSER_T_INT },
		{ "vxid", PARSER_T_STRING },	     { "txid", PARSER_T_INT },
		{ "sqlstate", PARSER_T_STRING },     { "command_tag", PARSER_T_STRING },
		{ "backend_type", PARSER_T_STRING }, { "leader_pid", PARSER_T_INT },
		{ "query_id", PARSER_T_INT },	     { "user", PARSER_T_STRING },
		{ "database", PARSER_T_STRING },     { "application", PARSER_T_STRING },
		{ "remote_host", PARSER_T_STRING },  { "remote_port", PARSER_T_INT },
		{ "duration", PARSER_T_MS },
	};
	for (size_t i = 0; i < KL_ARRAY_LEN(kf); i++) {
		int idx = parser_field_index(p, kf[i].name, strlen(kf[i].name));
		if (idx < 0 || parser_field_type(p, (unsigned)idx) != kf[i].t) {
			print_error("kitchen: field %s idx %d type %d\n", kf[i].name, idx,
				    idx >= 0 ? (int)parser_field_type(p, (unsigned)idx) : -1);
			fail();
		}
	}
	parser_free(p);
}

/* The reports every capture has, read with any prefix. */
static void check_common(struct parser *p, const struct records *rs)
{
	struct parser_event ev;
	size_t i;

	/* a slow statement: duration in seconds, the statement */
	find_stmt(p, rs, "SELECT pg_sleep(0.3);", &ev);
	expect_prefix(&ev, "message", "duration: 30");
	expect_num_(&ev, "duration", 0.3, 0.01, __LINE__);
	find_stmt(p, rs, "SELECT pg_sleep(2);", &ev);
	expect_num_(&ev, "duration", 2.0, 0.01, __LINE__);

	/* a multi-line statement: its lines continue with a TAB */
	find_stmt(p, rs, "SELECT count(*) AS n,\n", &ev);
	expect_str(&ev, "statement", "SELECT count(*) AS n,\n\t       max(v) AS top\n\tFROM t\n\tWHERE id > 0;");

	/* ERROR + STATEMENT */
	find(p, rs, "ERROR", "syntax error at or near \"SELEC\"", &ev);
	expect_str(&ev, "statement", "SELEC 1;");
	expect_str(&ev, "detail", ABSENT);
	expect_str(&ev, "duration", ABSENT);

	/* ERROR + DETAIL + STATEMENT */
	find(p, rs, "ERROR", "duplicate key value violates unique constraint \"t_pkey\"", &ev);
	expect_str(&ev, "detail", "Key (id)=(1) already exists.");
	expect_str(&ev, "statement", "INSERT INTO t VALUES (1, 5);");

	/* ERROR + CONTEXT (two lines) + STATEMENT */
	find(p, rs, "ERROR", "division by zero", &ev);
	expect_str(&ev, "context",
		   "SQL statement \"SELECT 1/0\"\n\tPL/pgSQL function inline_code_block line 1 at PERFORM");
	expect_str(&ev, "statement", "DO $$ BEGIN PERFORM 1/0; END $$;");

	/* a LOG whose message spans lines, with CONTEXT and STATEMENT */
	find(p, rs, "LOG", "first line", &ev);
	expect_str(&ev, "message", "first line\n\tsecond line");
	expect_str(&ev, "context", "PL/pgSQL function inline_code_block line 1 at RAISE");
	expect_prefix(&ev, "statement", "DO $$ BEGIN RAISE LOG E'first line\\nsecond line'");

	/* multi-line message and DETAIL, HINT */
	find(p, rs, "ERROR", "balance check failed", &ev);
	expect_str(&ev, "message", "balance check failed\n\tfor debt 8812");
	expect_str(&ev, "detail", "expected 10\n\tgot 12");
	expect_str(&ev, "hint", "run the reconciler");
	expect_str(&ev, "context", "PL/pgSQL function inline_code_block line 1 at RAISE");

	/* FATAL + DETAIL: wrong password, unknown role */
	find(p, rs, "FATAL", "password authentication failed for user \"app\"", &ev);
	expect_prefix(&ev, "detail", "Connection matched pg_hba.conf line 91: \"host    all");
	find(p, rs, "FATAL", "password authentication failed for user \"nobody\"", &ev);
	expect_prefix(&ev, "detail", "Role \"nobody\" does not exist.\n\tConnection matched pg_hba.conf");

	/* the deadlock: a LOG with DETAIL, CONTEXT, STATEMENT, then the ERROR */
	find(p, rs, "LOG", "process ", &ev);
	expect_prefix(&ev, "message", "process ");
	expect_prefix(&ev, "detail", "Process holding the lock: ");
	expect_prefix(&ev, "context", "while updating tuple (0,");
	expect_prefix(&ev, "statement", "UPDATE t SET v = v + 1 WHERE id = ");
	find(p, rs, "ERROR", "deadlock detected", &ev);
	expect_prefix(&ev, "detail", "Process ");
	int di = parser_field_index(p, "detail", 6);
	assert_non_null(memmem(ev.raw[di].p, ev.raw[di].len, "\n\tProcess ", 10));
	expect_str(&ev, "hint", "See server log for query details.");
	expect_prefix(&ev, "context", "while updating tuple (0,");
	expect_prefix(&ev, "statement", "UPDATE t SET v = v + 1 WHERE id = ");

	/* connections past the limit */
	find(p, rs, "FATAL", "sorry, too many clients already", &ev);
	find(p, rs, "FATAL", "remaining connection slots are reserved", &ev);
	/* the server stopping and starting */
	find(p, rs, "FATAL", "the database system is shutting down", &ev);
	find(p, rs, "FATAL", "the database system is starting up", &ev);
	find(p, rs, "FATAL", "the database system is not yet accepting connections", &ev);
	expect_str(&ev, "detail", "Consistent recovery state has not been yet reached.");

	/* extended protocol: the statement of parse/bind/execute, DETAIL parameters */
	i = 0;
	for (;;) {
		i = find_in(p, rs, i, "LOG", "statement", "UPDATE pgbench_accounts", &ev, __LINE__) + 1;
		int mi = parser_field_index(p, "message", 7);
		if (memmem(ev.raw[mi].p, ev.raw[mi].len, "  bind P_1: ", 12))
			break;
	}
	expect_str(&ev, "statement", "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2;");
	expect_prefix(&ev, "detail", "parameters: $1 = '");
}

static void run_sample(const char *file, const char *prefix, size_t want_records)
{
	struct parser *p = pg(prefix);
	struct records rs;
	load(file, p, &rs);
	if (rs.n != want_records || rs.n != count_reports(rs.data)) {
		print_error("%s: %zu records, expected %zu (%zu reports by the test's count)\n", file,
			    rs.n, want_records, count_reports(rs.data));
		fail();
	}
	parse_all(p, &rs);
	check_common(p, &rs);
	const struct parser_stats *st = parser_stats(p);
	assert_int_equal(st->unmatched, 0);
	assert_int_equal(st->bad_time, 0);
	records_free(&rs);
	parser_free(p);
}

static void test_default_prefix(void **state)
{
	(void)state;
	run_sample("stderr_default.log", NULL, 298);

	struct parser *p = pg(P_DEFAULT);
	struct records rs;
	struct parser_event ev;
	load("stderr_default.log", p, &rs);
	parser_event_init(&ev, p);
	assert_int_equal(parser_parse(p, rs.r[0], rs.len[0], 1, &ev), 0);
	assert_int_equal(ev.time_us, 1795616204711000LL); /* 2026-11-25 14:16:44.711 UTC */
	expect_num(&ev, "pid", 1980);
	expect_str(&ev, "severity", "LOG");
	expect_prefix(&ev, "message", "starting PostgreSQL 15.18");
	expect_str(&ev, "statement", ABSENT);
	records_free(&rs);
	parser_free(p);
}

static void test_debian_prefix(void **state)
{
	(void)state;
	run_sample("stderr_debian.log", P_DEBIAN, 252);

	struct parser *p = pg(P_DEBIAN);
	struct records rs;
	struct parser_event ev;
	load("stderr_debian.log", p, &rs);
	/* a process without a session: %q left the rest out */
	find(p, &rs, "LOG", "starting PostgreSQL", &ev);
	expect_str(&ev, "user", ABSENT);
	expect_str(&ev, "database", ABSENT);
	/* before authentication */
	find(p, &rs, "LOG", "connection received: host=127.0.0.1", &ev);
	expect_str(&ev, "user", "[unknown]");
	expect_str(&ev, "database", "[unknown]");
	find(p, &rs, "FATAL", "password authentication failed for user \"app\"", &ev);
	expect_str(&ev, "user", "app");
	expect_str(&ev, "database", "debts");
	records_free(&rs);
	parser_free(p);
}

static void test_pgbadger_prefix(void **state)
{
	(void)state;
	run_sample("stderr_pgbadger.log", P_PGBADGER, 250);

	struct parser *p = pg(P_PGBADGER);
	struct records rs;
	struct parser_event ev;
	load("stderr_pgbadger.log", p, &rs);
	parser_event_init(&ev, p);
	assert_int_equal(parser_parse(p, rs.r[0], rs.len[0], 1, &ev), 0);
	assert_int_equal(ev.time_us, 1795616233000000LL); /* %t: 2026-11-25 14:17:13 UTC */
	expect_num(&ev, "line_num", 1);
	expect_str(&ev, "user", ABSENT); /* "user=," */
	expect_str(&ev, "application", ABSENT);
	find(p, &rs, "ERROR", "duplicate key", &ev);
	expect_str(&ev, "user", "app");
	expect_str(&ev, "database", "debts");
	expect_str(&ev, "application", "debts-web");
	expect_str(&ev, "remote_host", "127.0.0.1");
	records_free(&rs);
	parser_free(p);
}

static void test_sqlstate_prefix(void **state)
{
	(void)state;
	run_sample("stderr_sqlstate.log", P_SQLSTATE, 268);

	struct parser *p = pg(P_SQLSTATE);
	struct records rs;
	struct parser_event ev;
	load("stderr_sqlstate.log", p, &rs);
	find(p, &rs, "FATAL", "password authentication failed", &ev);
	expect_str(&ev, "sqlstate", "28P01");
	expect_str(&ev, "remote_host", "127.0.0.1");
	expect_str(&ev, "application", "[unknown]");
	find(p, &rs, "FATAL", "sorry, too many clients already", &ev);
	expect_str(&ev, "sqlstate", "53300");
	expect_str(&ev, "remote_host", "[local]");
	expect_str(&ev, "remote_port", ABSENT);
	find(p, &rs, "ERROR", "deadlock detected", &ev);
	expect_str(&ev, "sqlstate", "40P01");
	int rp = parser_field_index(p, "remote_port", 11);
	assert_true(rp >= 0 && ev.raw[rp].p);
	records_free(&rs);
	parser_free(p);
}

static void test_kitchen_prefix(void **state)
{
	(void)state;
	run_sample("stderr_kitchen.log", P_KITCHEN, 258);

	struct parser *p = pg(P_KITCHEN);
	struct records rs;
	struct parser_event ev;
	load("stderr_kitchen.log", p, &rs);
	parser_event_init(&ev, p);
	assert_int_equal(parser_parse(p, rs.r[0], rs.len[0], 1, &ev), 0);
	assert_int_equal(ev.time_us, 1795616251983000LL); /* %n 1795616251.983 */
	expect_str(&ev, "session_start", "2026-11-25 14:17:31 UTC");
	expect_str(&ev, "session_id", "6b06edfb.c57");
	expect_num(&ev, "line_num", 1);
	expect_str(&ev, "vxid", ABSENT);
	expect_num(&ev, "txid", 0);
	expect_str(&ev, "sqlstate", "00000");
	expect_str(&ev, "command_tag", ABSENT);
	expect_str(&ev, "backend_type", "postmaster");
	expect_str(&ev, "leader_pid", ABSENT);
	expect_num(&ev, "query_id", 0);
	expect_str(&ev, "user", ABSENT);

	find(p, &rs, "ERROR", "duplicate key", &ev);
	expect_str(&ev, "user", "app"); /* %-10u: "app       " */
	expect_str(&ev, "database", "debts"); /* %8d: "   debts" */
	expect_str(&ev, "application", "debts-web");
	expect_str(&ev, "remote_host", "127.0.0.1");
	int rp = parser_field_index(p, "remote_port", 11);
	double port = 0;
	assert_int_equal(parser_event_number(&ev, (unsigned)rp, &port), 0);
	assert_true(port > 1024 && port < 65536);
	expect_str(&ev, "command_tag", "INSERT");
	expect_str(&ev, "backend_type", "client backend");
	expect_str(&ev, "sqlstate", "23505");
	expect_prefix(&ev, "vxid", "3/");

	find(p, &rs, "FATAL", "sorry, too many clients", &ev);
	expect_str(&ev, "command_tag", "initializing");
	expect_str(&ev, "remote_host", "[local]");
	records_free(&rs);
	parser_free(p);
}

static void test_verbose(void **state)
{
	(void)state;
	struct parser *p = pg(P_DEBIAN);
	struct records rs;
	struct parser_event ev;
	load("stderr_verbose.log", p, &rs);
	assert_int_equal(rs.n, 250);
	assert_int_equal(rs.n, count_reports(rs.data));
	parse_all(p, &rs);
	/* "ERROR:  42601: syntax error ...", then LOCATION and STATEMENT */
	find(p, &rs, "ERROR", "syntax error", &ev);
	expect_str(&ev, "sqlstate", "42601");
	expect_str(&ev, "message", "syntax error at or near \"SELEC\" at character 1");
	expect_str(&ev, "statement", "SELEC 1;");
	find_stmt(p, &rs, "SELECT pg_sleep(0.3);", &ev);
	expect_str(&ev, "sqlstate", "00000");
	expect_prefix(&ev, "message", "duration: 30");
	find(p, &rs, "ERROR", "deadlock detected", &ev);
	expect_str(&ev, "sqlstate", "40P01");
	expect_str(&ev, "hint", "See server log for query details.");
	records_free(&rs);
	parser_free(p);
}

static void test_time_zones(void **state)
{
	(void)state;
	struct parser *p = pg(NULL);
	struct records rs;
	struct parser_event ev;

	load("tz_Europe_Paris.log", p, &rs); /* "2026-11-25 15:28:07.308 CET" */
	parser_event_init(&ev, p);
	assert_int_equal(parser_parse(p, rs.r[0], rs.len[0], 1, &ev), 0);
	assert_int_equal(ev.time_us, 1795616887308000LL);
	records_free(&rs);

	load("tz_America_Sao_Paulo.log", p, &rs); /* "2026-11-25 11:28:07.573 -03" */
	parser_event_init(&ev, p);
	assert_int_equal(parser_parse(p, rs.r[0], rs.len[0], 1, &ev), 0);
	assert_int_equal(ev.time_us, 1795616887573000LL);
	records_free(&rs);

	/* ambiguous abbreviations (IST, CST) are refused, and counted */
	uint64_t bad = parser_stats(p)->bad_time;
	load("tz_Asia_Kolkata.log", p, &rs);
	assert_int_equal(parser_parse(p, rs.r[0], rs.len[0], 1, &ev), -EINVAL);
	records_free(&rs);
	load("tz_America_Chicago.log", p, &rs);
	assert_int_equal(parser_parse(p, rs.r[0], rs.len[0], 1, &ev), -EINVAL);
	records_free(&rs);
	assert_int_equal(parser_stats(p)->bad_time, bad + 2);
	parser_free(p);
}

static int parse_str(struct parser *p, const char *s, struct parser_event *ev)
{
	parser_event_init(ev, p);
	return parser_parse(p, s, strlen(s), 7, ev);
}

static void test_synthetic(void **state)
{
	(void)state;
	struct parser *p = pg(P_DEBIAN);
	struct parser_event ev;

	/* log_statement's own lines */
	assert_int_equal(parse_str(p, "2023-11-14 22:13:20.123 UTC [7] a@b LOG:  statement: SELECT 1", &ev), 0);
	expect_str(&ev, "statement", "SELECT 1");
	expect_str(&ev, "duration", ABSENT);
	assert_int_equal(parse_str(p, "2023-11-14 22:13:20.123 UTC [7] a@b LOG:  execute <unnamed>: SELECT $1", &ev), 0);
	expect_str(&ev, "statement", "SELECT $1");
	/* log_duration alone, auto_explain's plan */
	assert_int_equal(parse_str(p, "2023-11-14 22:13:20.123 UTC [7] a@b LOG:  duration: 0.5 ms", &ev), 0);
	expect_num(&ev, "duration", 0.0005);
	expect_str(&ev, "statement", ABSENT);
	assert_int_equal(parse_str(p, "2023-11-14 22:13:20.123 UTC [7] a@b LOG:  duration: 61234.567 ms  plan:\n\tQuery Text: SELECT 1", &ev), 0);
	expect_num(&ev, "duration", 61.234567);
	expect_str(&ev, "statement", ABSENT);
	/* "duration:" not at the start of the message is not a duration */
	assert_int_equal(parse_str(p, "2023-11-14 22:13:20.123 UTC [7] a@b ERROR:  bad duration: 5 ms", &ev), 0);
	expect_str(&ev, "duration", ABSENT);

	/* a DETAIL from another pid is not folded (PostgreSQL never writes it) */
	assert_int_equal(parse_str(p, "2023-11-14 22:13:20.123 UTC [7] a@b ERROR:  x\n"
				      "2023-11-14 22:13:20.123 UTC [8] a@b DETAIL:  y", &ev), 0);
	expect_str(&ev, "message", "x");
	expect_str(&ev, "detail", ABSENT);
	/* a line that is no report ends the folding; the event stays */
	assert_int_equal(parse_str(p, "2023-11-14 22:13:20.123 UTC [7] a@b ERROR:  x\n"
				      "garbage\n"
				      "2023-11-14 22:13:20.123 UTC [7] a@b DETAIL:  y", &ev), 0);
	expect_str(&ev, "message", "x");
	expect_str(&ev, "detail", ABSENT);
	/* an orphan DETAIL is an event of its own */
	assert_int_equal(parse_str(p, "2023-11-14 22:13:20.123 UTC [7] a@b DETAIL:  lost", &ev), 0);
	expect_str(&ev, "severity", "DETAIL");
	expect_str(&ev, "message", "lost");
	/* QUERY folds into query; LOCATION is read and dropped */
	assert_int_equal(parse_str(p, "2023-11-14 22:13:20.123 UTC [7] a@b ERROR:  x\n"
				      "2023-11-14 22:13:20.123 UTC [7] a@b QUERY:  SELECT 1/0\n"
				      "2023-11-14 22:13:20.123 UTC [7] a@b LOCATION:  f, g.c:1\n"
				      "2023-11-14 22:13:20.123 UTC [7] a@b STATEMENT:  DO $$ $$", &ev), 0);
	expect_str(&ev, "query", "SELECT 1/0");
	expect_str(&ev, "statement", "DO $$ $$");
	/* no match: one space after the colon, no prefix, an empty record */
	uint64_t um = parser_stats(p)->unmatched;
	assert_int_equal(parse_str(p, "2023-11-14 22:13:20.123 UTC [7] a@b LOG: x", &ev), -EINVAL);
	assert_int_equal(parse_str(p, "LOG:  x", &ev), -EINVAL);
	assert_int_equal(parse_str(p, "", &ev), -EINVAL);
	assert_int_equal(parser_stats(p)->unmatched, um + 3);
	parser_free(p);

	/* padding both ways, %% and an escape PostgreSQL ignores (%Z) */
	p = pg("%t %10p|%-6u|%Z%%|%a ");
	assert_int_equal(parse_str(p, "2023-11-14 22:13:20 UTC        123|bob   |%|my app LOG:  hi", &ev), 0);
	expect_num(&ev, "pid", 123);
	expect_str(&ev, "user", "bob");
	expect_str(&ev, "application", "my app");
	expect_str(&ev, "message", "hi");
	assert_int_equal(ev.time_us, 1700000000000000LL);
	parser_free(p);

	/* an empty prefix */
	p = pg("");
	assert_int_equal(parse_str(p, "LOG:  checkpoint starting: time", &ev), 0);
	expect_str(&ev, "severity", "LOG");
	assert_int_equal(ev.time_us, 7); /* no time in the prefix: the read time */
	parser_free(p);
}

static void test_errors(void **state)
{
	(void)state;
	char err[256];
	struct parser_spec spec = { .name = "x", .type = "postgres", .log_line_prefix = "%m\n" };
	assert_null(parser_new(&spec, err, sizeof err, NULL));
	assert_non_null(strstr(err, "log_line_prefix: control byte"));

	spec = (struct parser_spec){ .name = "x", .type = "nginx_timed", .log_line_prefix = "%m" };
	assert_null(parser_new(&spec, err, sizeof err, NULL));
	assert_non_null(strstr(err, "log_line_prefix: only the postgres parser"));

	spec = (struct parser_spec){ .name = "x", .regex = "(?<a>.)", .log_line_prefix = "%m" };
	assert_null(parser_new(&spec, err, sizeof err, NULL));
	assert_non_null(strstr(err, "log_line_prefix: only the postgres parser"));

	struct parser_field_spec t[] = { { "pid", PARSER_T_STRING } };
	spec = (struct parser_spec){ .name = "x", .type = "postgres", .types = t, .ntypes = 1 };
	assert_null(parser_new(&spec, err, sizeof err, NULL));
	assert_non_null(strstr(err, "fixed field types"));

	spec = (struct parser_spec){ .name = "x", .type = "postgres_json", .types = t, .ntypes = 1 };
	assert_null(parser_new(&spec, err, sizeof err, NULL));
	assert_non_null(strstr(err, "types: 'pid' has a fixed type"));

	spec = (struct parser_spec){ .name = "x", .type = "postgres_json", .time_field = "ts" };
	assert_null(parser_new(&spec, err, sizeof err, NULL));
	assert_non_null(strstr(err, "fixed time"));
}

static void test_jsonlog(void **state)
{
	(void)state;
	struct parser *p = pgjson();
	struct records rs;
	struct parser_event ev;

	load("jsonlog.json", p, &rs);
	assert_int_equal(rs.n, 257);
	parse_all(p, &rs);
	assert_int_equal(parser_stats(p)->unmatched, 0);
	assert_int_equal(parser_stats(p)->bad_time, 0);

	parser_event_init(&ev, p);
	assert_int_equal(parser_parse(p, rs.r[0], rs.len[0], 1, &ev), 0);
	assert_int_equal(ev.time_us, 1795616263378000LL); /* 2026-11-25 14:17:43.378 UTC */
	expect_str(&ev, "severity", "LOG");
	expect_str(&ev, "message", "ending log output to stderr");
	expect_str(&ev, "hint", "Future log output will go to log destination \"jsonlog\".");
	expect_str(&ev, "user", ABSENT);

	find(p, &rs, "LOG", "duration: 30", &ev);
	expect_num_(&ev, "duration", 0.3, 0.01, __LINE__);
	expect_str(&ev, "statement", "SELECT pg_sleep(0.3);");
	expect_str(&ev, "user", "app");
	expect_str(&ev, "database", "debts");
	expect_str(&ev, "application", "debts-web");
	expect_str(&ev, "remote_host", "127.0.0.1");

	find(p, &rs, "ERROR", "syntax error at or near \"SELEC\"", &ev);
	expect_str(&ev, "sqlstate", "42601");
	expect_str(&ev, "statement", "SELEC 1;");
	expect_str(&ev, "duration", ABSENT);

	find(p, &rs, "FATAL", "password authentication failed for user \"nobody\"", &ev);
	expect_str(&ev, "sqlstate", "28P01");
	expect_prefix(&ev, "detail", "Role \"nobody\" does not exist.\nConnection matched");

	find(p, &rs, "ERROR", "deadlock detected", &ev);
	expect_str(&ev, "sqlstate", "40P01");
	expect_str(&ev, "hint", "See server log for query details.");
	expect_prefix(&ev, "context", "while updating tuple");
	expect_prefix(&ev, "statement", "UPDATE t SET v = v + 1 WHERE id = ");

	find(p, &rs, "LOG", "first line\nsecond line", &ev);
	expect_str(&ev, "context", "PL/pgSQL function inline_code_block line 1 at RAISE");

	/* the multi-line statement: real newlines in JSON */
	find_stmt(p, &rs, "SELECT count(*) AS n,\n", &ev);
	expect_str(&ev, "statement", "SELECT count(*) AS n,\n       max(v) AS top\nFROM t\nWHERE id > 0;");

	find(p, &rs, "FATAL", "sorry, too many clients already", &ev);
	expect_str(&ev, "sqlstate", "53300");
	find(p, &rs, "FATAL", "the database system is shutting down", &ev);
	find(p, &rs, "FATAL", "the database system is starting up", &ev);

	/* other jsonlog keys register by name; jsonlog's numbers are ints */
	unsigned n0 = parser_field_count(p);
	int bt = parser_field_index(p, "backend_type", 12);
	int qi = parser_field_index(p, "query_id", 8);
	int rp = parser_field_index(p, "remote_port", 11);
	assert_true(bt >= (int)n0 && qi > bt && rp > qi);
	assert_int_equal(parser_field_count(p), n0 + 3);
	assert_int_equal(parser_field_type(p, (unsigned)bt), PARSER_T_STRING);
	assert_int_equal(parser_field_type(p, (unsigned)qi), PARSER_T_INT);
	assert_int_equal(parser_field_index(p, "backend_type", 12), bt);
	find(p, &rs, "ERROR", "duplicate key", &ev);
	expect_str(&ev, "backend_type", "client backend");
	expect_num(&ev, "query_id", 0);
	double port;
	assert_int_equal(parser_event_number(&ev, (unsigned)rp, &port), 0);
	assert_true(port > 1024);

	/* the event as JSON: numbers as numbers, durations in seconds */
	find_stmt(p, &rs, "SELECT pg_sleep(0.3);", &ev);
	struct kl_buf out = { 0 };
	assert_int_equal(parser_event_json(&ev, "pg", &out), 0);
	json_error_t jerr;
	json_t *j = json_loadb(out.p, out.len, 0, &jerr);
	if (!j)
		print_error("%s: %.*s\n", jerr.text, (int)out.len, out.p);
	assert_non_null(j);
	json_t *fields = json_object_get(j, "fields");
	assert_true(json_is_integer(json_object_get(fields, "pid")));
	assert_true(json_is_real(json_object_get(fields, "duration")));
	assert_true(fabs(json_real_value(json_object_get(fields, "duration")) - 0.3) < 0.01);
	assert_true(json_is_integer(json_object_get(fields, "query_id")));
	assert_string_equal(json_string_value(json_object_get(fields, "severity")), "LOG");
	assert_null(json_object_get(fields, "time"));
	json_decref(j);
	kl_buf_free(&out);

	records_free(&rs);
	parser_free(p);
}

static void test_event_json(void **state)
{
	(void)state;
	struct parser *p = pg(P_DEBIAN);
	struct parser_event ev;
	struct kl_buf out = { 0 };
	assert_int_equal(parse_str(p, "2023-11-14 22:13:20.123 UTC [42] app@debts LOG:  duration: 61234.5 ms  statement: SELECT \"x\"\n\tFROM t", &ev), 0);
	assert_int_equal(parser_event_json(&ev, "pg", &out), 0);
	assert_string_equal(out.p, "{\"time\":\"2023-11-14T22:13:20.123Z\",\"source\":\"pg\",\"fields\":{"
				   "\"pid\":42,\"user\":\"app\",\"database\":\"debts\",\"severity\":\"LOG\","
				   "\"message\":\"duration: 61234.5 ms  statement: SELECT \\\"x\\\"\\n\\tFROM t\","
				   "\"duration\":61.2345,\"statement\":\"SELECT \\\"x\\\"\\n\\tFROM t\"}}");
	kl_buf_free(&out);
	parser_free(p);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A long line that almost matches must not cost quadratic time: the
 * multi-line rule runs on every line, and a client controls its statement
 * text. With unbounded lazy groups these took seconds (PCRE2's JIT does not
 * count lazy character loops against the match limit). */
static void test_backtracking_bounded(void **state)
{
	(void)state;
	static const struct {
		const char *prefix, *head, *fill, *tail;
		bool by_limit; /* only the match limit bounds it (ingest/multiline.c sets one) */
	} cases[] = {
		{ P_PGBADGER, "2023-11-14 22:13:20 UTC [1]: [1-1] user=a,db=b,app=x,client=1.2.3.4 LOG:  statement: SELECT 1 -- ",
		  ",client=", " LOG:  x", false },
		{ P_PGBADGER, "2023-11-14 22:13:20 UTC [1]: [1-1] user=a,db=b,app=", ",client=", " LOG:  x",
		  false },
		{ P_DEBIAN, "2023-11-14 22:13:20.123 UTC [1] ", "@", "", false },
		{ P_DEBIAN, "2023-11-14 22:13:20.123 UTC [1] ", "a@", " LOG:  x", false },
		/* adjacent escapes cannot be told apart: only the limit bounds them */
		{ "%a%i%b%u%d ", "", "a", "", true },
	};
	for (size_t c = 0; c < KL_ARRAY_LEN(cases); c++) {
		struct parser *p = pg(cases[c].prefix);
		struct parser_multiline ml;
		assert_true(parser_default_multiline(p, &ml));
		int ec;
		PCRE2_SIZE eo;
		pcre2_code *code = pcre2_compile((PCRE2_SPTR)ml.continuation, PCRE2_ZERO_TERMINATED, 0,
						 &ec, &eo, NULL);
		assert_non_null(code);
		/* Not JIT'd: the interpreter counts every backtracking step against
		 * the match limit, so "bounded" is a count, not a time. */
		pcre2_match_data *md = pcre2_match_data_create(1, NULL);
		pcre2_match_context *mc = pcre2_match_context_create(NULL);
		pcre2_set_match_limit(mc, 10000000);
		struct kl_buf b = { 0 };
		kl_buf_append_str(&b, cases[c].head);
		while (b.len < 64 * 1024)
			kl_buf_append_str(&b, cases[c].fill);
		kl_buf_append_str(&b, cases[c].tail);
		struct parser_event ev;
		double t0 = now_s();
		parser_event_init(&ev, p);
		(void)parser_parse(p, b.p, b.len, 1, &ev);
		double t1 = now_s();
		int rc = pcre2_match(code, (PCRE2_SPTR)b.p, b.len, 0, 0, md, mc);
		if (rc == PCRE2_ERROR_MATCHLIMIT && !cases[c].by_limit) {
			print_error("case %zu: the multi-line rule needs over 10^7 steps on a %zu-byte "
				    "line: its backtracking is not bounded\n", c, b.len);
			fail();
		}
		/* The parse is JIT'd (no step count): its time is shown, for bench/. */
		print_message("case %zu: parse %.3f s on a %zu-byte line\n", c, t1 - t0, b.len);
		kl_buf_free(&b);
		pcre2_match_data_free(md);
		pcre2_match_context_free(mc);
		pcre2_code_free(code);
		parser_free(p);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names_fields_rules),
		cmocka_unit_test(test_default_prefix),
		cmocka_unit_test(test_debian_prefix),
		cmocka_unit_test(test_pgbadger_prefix),
		cmocka_unit_test(test_sqlstate_prefix),
		cmocka_unit_test(test_kitchen_prefix),
		cmocka_unit_test(test_verbose),
		cmocka_unit_test(test_time_zones),
		cmocka_unit_test(test_synthetic),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_jsonlog),
		cmocka_unit_test(test_event_json),
		cmocka_unit_test(test_backtracking_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
