/*
 * test_config.c — src/config.c: a complete valid file, the defaults, ${VAR},
 * rule_files globs, config_find, and every problem the loader reports, each
 * checked as the exact "FILE:LINE:COL: message" the user sees.
 *
 * Each test runs in its own temporary directory (setup/teardown) holding the
 * config file and two rule files.
 */
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/kl.h"
#include "src/config.h"

struct fx {
	char *dir;
	char *cfg; /* DIR/klaxon.yml */
	char *out; /* what the diag printed */
	size_t outlen;
	FILE *f;
	struct kl_diag d;
};

static char *join_path(const char *dir, const char *name)
{
	struct kl_buf b = { 0 };
	assert_int_equal(kl_buf_appendf(&b, "%s/%s", dir, name), 0);
	return b.p;
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char *p = join_path(dir, name);
	assert_int_equal(kl_write_file_atomic(p, text, strlen(text)), 0);
	free(p);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	char tmpl[] = "/tmp/test_config.XXXXXX";
	assert_non_null(mkdtemp(tmpl));
	f->dir = kl_strndup(tmpl, strlen(tmpl));
	f->cfg = join_path(f->dir, "klaxon.yml");
	char *rules = join_path(f->dir, "rules");
	assert_int_equal(mkdir(rules, 0700), 0);
	free(rules);
	write_file(f->dir, "rules/b.yml", "rules: []\n");
	write_file(f->dir, "rules/a.yml", "rules: []\n");
	write_file(f->dir, "extra.yml", "rules: []\n");
	*state = f;
	return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int teardown(void **state)
{
	struct fx *f = *state;
	if (f->f)
		fclose(f->f);
	free(f->out);
	nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(f->cfg);
	free(f->dir);
	free(f);
	return 0;
}

/* Write text as the config file and load it; the diag output is in f->out. */
static int load(struct fx *f, const char *text, struct config **c)
{
	write_file(f->dir, "klaxon.yml", text);
	if (f->f)
		fclose(f->f);
	free(f->out);
	f->out = NULL;
	f->f = open_memstream(&f->out, &f->outlen);
	assert_non_null(f->f);
	f->d = (struct kl_diag){ .out = f->f };
	*c = NULL;
	int rc = config_load(f->cfg, c, &f->d);
	fflush(f->f);
	return rc;
}

/* Expect text to fail with exactly the reports in want, one per line, each
 * written without the file name: "3:1: unknown key ..." (or " message" for
 * a report without a position). */
static void expect_errors(struct fx *f, const char *text, const char *want)
{
	struct config *c = (struct config *)1;
	int rc = load(f, text, &c);
	struct kl_buf exp = { 0 };
	unsigned lines = 0;
	for (const char *p = want; *p;) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) + 1 : strlen(p);
		kl_buf_appendf(&exp, "%s:%.*s", f->cfg, (int)n, p);
		p += n;
		lines++;
	}
	assert_string_equal(f->out, exp.p);
	assert_int_equal(rc, -EINVAL);
	assert_null(c);
	assert_int_equal(f->d.errors, lines);
	kl_buf_free(&exp);
}

static void expect_ok(struct fx *f, const char *text, struct config **c)
{
	int rc = load(f, text, c);
	assert_string_equal(f->out, "");
	assert_int_equal(rc, 0);
	assert_non_null(*c);
}

/* Run fn(f) with stderr in a temporary file; return what was written. */
static char *capture_stderr(void (*fn)(struct fx *), struct fx *f)
{
	FILE *tmp = tmpfile();
	assert_non_null(tmp);
	fflush(stderr);
	int saved = dup(2);
	dup2(fileno(tmp), 2);
	fn(f);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	fseek(tmp, 0, SEEK_END);
	long len = ftell(tmp);
	rewind(tmp);
	char *buf = calloc(1, (size_t)len + 1);
	assert_int_equal(fread(buf, 1, (size_t)len, tmp), (size_t)len);
	fclose(tmp);
	return buf;
}

/* ------------------------------------------------------------------------- */

static const char full_config[] =
	"state_dir: /tmp/klaxon-state\n"
	"listen: 0.0.0.0:9999\n"
	"eval_interval: 500ms\n"
	"rule_files: [rules/*.yml, extra.yml, rules/a.yml]\n"
	"sources:\n"
	"  - name: nginx\n"
	"    path: /var/log/nginx/access.log\n"
	"    parser: nginx_timed\n"
	"    from: beginning\n"
	"    max_line: 1MiB\n"
	"  - name: edge-2\n"
	"    path: /var/log/nginx/*.log\n"
	"    parser: nginx_timed\n"
	"  - name: app_1\n"
	"    path: /var/log/app.log\n"
	"    parser: edge\n"
	"    from: end\n"
	"    max_line: 1024\n"
	"  - name: combined\n"
	"    path: /var/log/c.log\n"
	"    parser: nginx_combined\n"
	"parsers:\n"
	"  - name: edge\n"
	"    regex: '^(?<ip>\\S+) (?<time>\\S+) (?<status>\\d+) (?<rt>[\\d.]+) (?<msg>.*)$'\n"
	"    types: {status: int, rt: seconds}\n"
	"    time: {field: time, format: iso8601}\n"
	"  - name: unused\n"
	"    regex: '(?<x>.)'\n"
	"sinks:\n"
	"  - {name: console, type: stdout}\n"
	"  - {name: events, type: jsonl, path: /tmp/events.jsonl, what: events}\n"
	"  - {name: alerts, type: jsonl, path: /tmp/alerts.jsonl}\n";

static void test_full(void **state)
{
	struct fx *f = *state;
	struct config *c;

	expect_ok(f, full_config, &c);
	assert_string_equal(c->file, f->cfg);
	assert_string_equal(c->state_dir, "/tmp/klaxon-state");
	assert_string_equal(c->listen, "0.0.0.0:9999");
	assert_int_equal(c->eval_interval_us, 500000);

	/* globs expanded against the config's directory, sorted, each once */
	assert_int_equal(c->nrule_files, 3);
	char *a = join_path(f->dir, "extra.yml"), *b = join_path(f->dir, "rules/a.yml"),
	     *cc = join_path(f->dir, "rules/b.yml");
	assert_string_equal(c->rule_files[0], a);
	assert_string_equal(c->rule_files[1], b);
	assert_string_equal(c->rule_files[2], cc);
	free(a);
	free(b);
	free(cc);

	assert_int_equal(c->nsources, 4);
	const struct config_source *s = &c->sources[0];
	assert_string_equal(s->name, "nginx");
	assert_string_equal(s->path, "/var/log/nginx/access.log");
	assert_string_equal(s->parser_name, "nginx_timed");
	assert_true(s->from_beginning);
	assert_int_equal(s->max_line, 1 << 20);
	assert_int_equal(s->line, 6);
	assert_int_equal(s->col, 5);
	assert_non_null(s->parser);
	assert_string_equal(parser_name(s->parser), "nginx_timed");

	const struct config_source *s2 = &c->sources[1];
	assert_string_equal(s2->name, "edge-2");
	assert_false(s2->from_beginning);
	assert_int_equal(s2->max_line, 64 << 10);
	assert_ptr_equal(s2->parser, s->parser); /* one instance per built-in */

	const struct config_source *s3 = &c->sources[2];
	assert_string_equal(s3->parser_name, "edge");
	assert_int_equal(s3->max_line, 1024);
	assert_string_equal(parser_name(s3->parser), "edge");
	int rt = parser_field_index(s3->parser, "rt", 2);
	assert_true(rt >= 0);
	assert_int_equal(parser_field_type(s3->parser, (unsigned)rt), PARSER_T_SECONDS);

	assert_string_equal(parser_name(c->sources[3].parser), "nginx_combined");
	assert_ptr_not_equal(c->sources[3].parser, s->parser);

	/* user parsers (used or not) and the built-ins in use, each once */
	assert_int_equal(c->nparsers, 4);
	assert_string_equal(c->parsers[0].name, "edge");
	assert_int_equal(c->parsers[0].line, 23);
	assert_string_equal(c->parsers[1].name, "unused");
	assert_string_equal(c->parsers[2].name, "nginx_timed");
	assert_int_equal(c->parsers[2].line, 8);
	assert_int_equal(c->parsers[2].col, 13);
	assert_string_equal(c->parsers[3].name, "nginx_combined");

	assert_int_equal(c->nsinks, 3);
	assert_string_equal(c->sinks[0].name, "console");
	assert_int_equal(c->sinks[0].type, CONFIG_SINK_STDOUT);
	assert_null(c->sinks[0].path);
	assert_int_equal(c->sinks[1].type, CONFIG_SINK_JSONL);
	assert_string_equal(c->sinks[1].path, "/tmp/events.jsonl");
	assert_true(c->sinks[1].events);
	assert_false(c->sinks[2].events);
	assert_int_equal(c->sinks[2].line, 32);
	assert_int_equal(c->sinks[2].col, 5);

	assert_ptr_equal(config_source_by_name(c, "app_1"), s3);
	assert_null(config_source_by_name(c, "nope"));
	assert_null(config_source_by_name(NULL, "nope"));
	config_free(c);
	config_free(NULL);
}

static void test_defaults(void **state)
{
	struct fx *f = *state;
	struct config *c;

	expect_ok(f, "---\n", &c);
	assert_string_equal(c->state_dir, "/var/lib/klaxon");
	assert_string_equal(c->listen, "127.0.0.1:9731");
	assert_int_equal(c->eval_interval_us, 1000000);
	assert_int_equal(c->nrule_files, 0);
	assert_int_equal(c->nsources, 0);
	assert_int_equal(c->nparsers, 0);
	assert_int_equal(c->nsinks, 1);
	assert_string_equal(c->sinks[0].name, "stdout");
	assert_int_equal(c->sinks[0].type, CONFIG_SINK_STDOUT);
	config_free(c);

	/* empty lists and empty values are the defaults too */
	expect_ok(f, "sources: []\nsinks: []\nparsers:\nrule_files:\n", &c);
	assert_int_equal(c->nsinks, 1);
	assert_int_equal(c->nsources, 0);
	config_free(c);
}

static void test_env(void **state)
{
	struct fx *f = *state;
	struct config *c;

	setenv("KL_TEST_LOGDIR", "/srv/logs", 1);
	setenv("KL_TEST_EMPTY", "", 1);
	unsetenv("KL_TEST_UNSET");
	expect_ok(f,
		  "state_dir: ${KL_TEST_LOGDIR}/state${KL_TEST_EMPTY}\n"
		  "sources:\n"
		  "  - {name: a, path: '${KL_TEST_LOGDIR}/a.log', parser: nginx_combined}\n"
		  "  - {name: b, path: '$KL_TEST_LOGDIR/${ not a var}/${1X}/$', parser: nginx_combined}\n",
		  &c);
	assert_string_equal(c->state_dir, "/srv/logs/state");
	assert_string_equal(c->sources[0].path, "/srv/logs/a.log");
	assert_string_equal(c->sources[1].path, "$KL_TEST_LOGDIR/${ not a var}/${1X}/$");
	config_free(c);

	/* an unset variable is named; the value is never printed */
	setenv("KL_TEST_SECRET", "s3cr3t-token", 1);
	expect_errors(f,
		      "listen: ${KL_TEST_UNSET}\n"
		      "sinks:\n"
		      "  - {name: chat, type: '${KL_TEST_SECRET}'}\n",
		      "1:9: environment variable 'KL_TEST_UNSET' is not set\n"
		      "3:24: unknown sink type '${KL_TEST_SECRET}'; available: stdout, jsonl\n");
	assert_null(strstr(f->out, "s3cr3t"));
}

static void test_top_level(void **state)
{
	struct fx *f = *state;

	expect_errors(f,
		      "state_dir: /x\n"
		      "soruces: []\n",
		      "2:1: unknown key 'soruces'; expected one of: state_dir, listen, "
		      "eval_interval, rule_files, sources, parsers, sinks, redis, probes, routes, "
		      "notify, rotate, inhibit\n");
	expect_errors(f, "- a\n- b\n", "1:1: expected a mapping at the top level, found a list\n");
	expect_errors(f, "just text\n",
		      "1:1: expected a mapping at the top level, found a scalar\n");
	expect_errors(f, "sources: nginx\n", "1:10: expected a list for 'sources', found a scalar\n");
	expect_errors(f, "parsers: {a: 1}\n",
		      "1:10: expected a list for 'parsers', found a mapping\n");
	expect_errors(f, "sinks: x\n", "1:8: expected a list for 'sinks', found a scalar\n");
	expect_errors(f, "state_dir: [a]\n",
		      "1:12: expected a directory for 'state_dir', found a list\n");
	expect_errors(f, "state_dir:\n",
		      "1:11: expected a directory for 'state_dir', found an empty value\n");
	expect_errors(f, "listen: localhost\n",
		      "1:9: invalid address 'localhost' for 'listen'; expected HOST:PORT (e.g. "
		      "127.0.0.1:9731)\n");
	expect_errors(f, "listen: 'h:70000'\n",
		      "1:9: invalid address 'h:70000' for 'listen'; expected HOST:PORT (e.g. "
		      "127.0.0.1:9731)\n");
	expect_errors(f, "eval_interval: 5 seconds\n",
		      "1:16: invalid duration '5 seconds' for 'eval_interval'; expected a number "
		      "with a unit: us, ms, s, m, h, d, w (e.g. 500ms, 1m30s)\n");
	expect_errors(f, "eval_interval: 0s\n", "1:16: 'eval_interval' must be more than 0\n");
	expect_errors(f, "eval_interval: {a: 1}\n",
		      "1:16: expected a duration for 'eval_interval', found a mapping\n");
	expect_errors(f, "state_dir: \"a\\0b\"\n", "1:12: 'state_dir' contains a NUL byte\n");
	/* a YAML problem comes through as it is */
	expect_errors(f, "a: [1\n",
		      "2:1: did not find expected ',' or ']' while parsing a flow sequence "
		      "(started at line 1)\n");
	expect_errors(f, "sources: []\nsources: []\n",
		      "2:1: duplicate key 'sources' (first at line 1)\n");

	struct config *c;
	expect_ok(f, "listen: '[::1]:9731'\neval_interval: 2\n", &c);
	assert_string_equal(c->listen, "[::1]:9731");
	assert_int_equal(c->eval_interval_us, 2000000);
	config_free(c);
}

static void load_reserved(struct fx *f)
{
	struct config *c;
	expect_ok(f,
		  "redis: redis://r:6379/0\n"
		  "probes:\n"
		  "  - {name: web, http: 'https://web/healthz', interval: 30s}\n"
		  "routes: [{sinks: [chat]}]\n"
		  "notify: {group_wait: 10s}\n"
		  "rotate: []\n"
		  "inhibit: x\n",
		  &c);
	config_free(c);
}

static void test_reserved(void **state)
{
	struct fx *f = *state;
	char *err = capture_stderr(load_reserved, f);
	assert_string_equal(
		err,
		"klaxon: warning: config: 'redis' is not implemented in this version and is ignored\n"
		"klaxon: warning: config: 'probes' is not implemented in this version and is ignored\n"
		"klaxon: warning: config: 'routes' is not implemented in this version and is ignored\n"
		"klaxon: warning: config: 'notify' is not implemented in this version and is ignored\n"
		"klaxon: warning: config: 'rotate' is not implemented in this version and is ignored\n"
		"klaxon: warning: config: 'inhibit' is not implemented in this version and is "
		"ignored\n");
	free(err);
}

static void test_rule_files(void **state)
{
	struct fx *f = *state;
	struct config *c;

	expect_ok(f, "rule_files: rules/*.yml\n", &c);
	assert_int_equal(c->nrule_files, 2);
	config_free(c);

	/* an absolute glob is taken as it is; directories are not rule files */
	struct kl_buf b = { 0 };
	kl_buf_appendf(&b, "rule_files: ['%s/*']\n", f->dir);
	expect_ok(f, b.p, &c);
	assert_int_equal(c->nrule_files, 2); /* extra.yml, klaxon.yml (not rules/) */
	config_free(c);
	kl_buf_free(&b);

	expect_errors(f, "rule_files: [rules/*.yml, 'nope/*.yml', missing.yml]\n",
		      "1:27: rule_files: no file matches 'nope/*.yml'\n"
		      "1:41: rule_files: no file matches 'missing.yml'\n");
	expect_errors(f, "rule_files: rules\n", "1:13: rule_files: no file matches 'rules'\n");
	expect_errors(f, "rule_files: {a: b}\n",
		      "1:13: expected a path or a list of paths for 'rule_files', found a mapping\n");
	expect_errors(f, "rule_files: [[a]]\n",
		      "1:14: expected a path or glob for each entry of 'rule_files', found a list\n");
}

static void test_rule_files_dir_metachars(void **state)
{
	struct fx *f = *state;
	/* the config's directory holds glob metacharacters: they are literal */
	char *odd = join_path(f->dir, "odd[1]*");
	assert_int_equal(mkdir(odd, 0700), 0);
	write_file(odd, "r.yml", "rules: []\n");
	char *cfg = join_path(odd, "k.yml");
	write_file(odd, "k.yml", "rule_files: ['*.yml']\n");
	struct config *c = NULL;
	struct kl_diag d = { .out = stderr };
	assert_int_equal(config_load(cfg, &c, &d), 0);
	assert_int_equal(c->nrule_files, 2);
	char *want = join_path(odd, "k.yml");
	assert_string_equal(c->rule_files[0], want);
	config_free(c);
	free(want);
	free(cfg);
	free(odd);
}

static void test_source_errors(void **state)
{
	struct fx *f = *state;

	expect_errors(f, "sources:\n  - nginx\n",
		      "2:5: expected a mapping for each entry of 'sources', found a scalar\n");
	expect_errors(f, "sources:\n  - {path: /x, parser: nginx_combined}\n",
		      "2:5: source is missing 'name'\n");
	expect_errors(f, "sources:\n  - {parser: nginx_combined, pth: /x}\n",
		      "2:5: source is missing 'name'\n"
		      "2:30: unknown key 'pth' in a source; expected one of: name, path, parser, "
		      "from, max_line, multiline\n"
		      "2:5: a source is missing 'path'\n");
	expect_errors(f, "sources:\n  - {name: a}\n",
		      "2:5: source 'a' is missing 'path'\n"
		      "2:5: source 'a' is missing 'parser' (a built-in such as nginx_combined, or "
		      "one from 'parsers:')\n");
	expect_errors(f, "sources:\n  - {name: 'ng inx', path: /x, parser: nginx_combined}\n",
		      "2:12: invalid source name 'ng inx'; use 1 to 64 letters, digits, '_' and "
		      "'-'\n");
	expect_errors(f,
		      "sources:\n"
		      "  - {name: a, path: /x, parser: nginx_combined}\n"
		      "  - {name: b, path: /y, parser: nginx_combined}\n"
		      "  - {name: a, path: /z, parser: nginx_combined}\n",
		      "4:12: duplicate source name 'a' (first at line 2)\n");
	expect_errors(f, "sources:\n  - {name: a, paht: /x, path: /x, parser: nginx_combined}\n",
		      "2:15: unknown key 'paht' in source 'a'; expected one of: name, path, "
		      "parser, from, max_line, multiline\n");
	expect_errors(f, "sources:\n  - {name: a, path: /x, parser: nginx_combined, from: start}\n",
		      "2:55: invalid value 'start' for 'from'; expected 'beginning' or 'end'\n");
	expect_errors(f, "sources:\n  - {name: a, path: [/x], parser: nginx_combined}\n",
		      "2:21: expected a path or glob for 'path', found a list\n");
	expect_errors(f,
		      "sources:\n"
		      "  - {name: a, path: /x, parser: nginx_combined, max_line: 64 KiB}\n"
		      "  - {name: b, path: /x, parser: nginx_combined, max_line: 1023}\n"
		      "  - {name: c, path: /x, parser: nginx_combined, max_line: 65MiB}\n"
		      "  - {name: d, path: /x, parser: nginx_combined, max_line: 1KiB}\n"
		      "  - {name: e, path: /x, parser: nginx_combined, max_line: 64MiB}\n"
		      "  - {name: f, path: /x, parser: nginx_combined, max_line: 99999999999999999999}\n",
		      "2:59: invalid size '64 KiB' for 'max_line'; expected a number of bytes with "
		      "an optional unit: B, KB, MB, GB, KiB, MiB, GiB (e.g. 64KiB)\n"
		      "3:59: 'max_line' must be between 1KiB and 64MiB, found '1023'\n"
		      "4:59: 'max_line' must be between 1KiB and 64MiB, found '65MiB'\n"
		      "7:59: invalid size '99999999999999999999' for 'max_line'; expected a "
		      "number of bytes with an optional unit: B, KB, MB, GB, KiB, MiB, GiB (e.g. "
		      "64KiB)\n");
	expect_errors(f, "sources:\n  - {name: a, path: /x, parser: nginx_combined, multiline: x}\n",
		      "2:60: expected a mapping for 'multiline', found a scalar\n");
	expect_errors(f, "sources:\n  - {name: a, path: /x, parser: ngnix}\n",
		      "2:33: unknown parser 'ngnix' for source 'a'; expected a built-in "
		      "(nginx_combined, nginx_timed) or one defined under 'parsers:'\n");
	expect_errors(f,
		      "parsers:\n"
		      "  - {name: edge, regex: '(?<a>.)'}\n"
		      "  - {name: pg, regex: '(?<b>.)'}\n"
		      "sources:\n"
		      "  - {name: a, path: /x, parser: egde}\n",
		      "5:33: unknown parser 'egde' for source 'a'; expected a built-in "
		      "(nginx_combined, nginx_timed) or one from 'parsers:' (edge, pg)\n");
	/* several problems in one file, all reported, in order */
	expect_errors(f,
		      "sources:\n"
		      "  - name: a\n"
		      "    path: /x\n"
		      "    parser: nginx_combined\n"
		      "    from: middle\n"
		      "  - name: a\n"
		      "    parser: nope\n"
		      "listen: x\n",
		      "5:11: invalid value 'middle' for 'from'; expected 'beginning' or 'end'\n"
		      "6:11: duplicate source name 'a' (first at line 2)\n"
		      "6:5: source 'a' is missing 'path'\n"
		      "8:9: invalid address 'x' for 'listen'; expected HOST:PORT (e.g. "
		      "127.0.0.1:9731)\n"
		      "7:13: unknown parser 'nope' for source 'a'; expected a built-in "
		      "(nginx_combined, nginx_timed) or one defined under 'parsers:'\n");
}

static void load_multiline(struct fx *f)
{
	struct config *c;
	expect_ok(f,
		  "sources:\n"
		  "  - name: app\n"
		  "    path: /x\n"
		  "    parser: nginx_combined\n"
		  "    multiline: {start: '^\\d', timeout: 500ms}\n",
		  &c);
	config_free(c);
}

static void test_multiline_warns(void **state)
{
	struct fx *f = *state;
	char *err = capture_stderr(load_multiline, f);
	assert_string_equal(err, "klaxon: warning: config: source 'app': 'multiline' is not "
				 "implemented in this version and is ignored\n");
	free(err);
}

static void test_parser_errors(void **state)
{
	struct fx *f = *state;

	expect_errors(f, "parsers:\n  - {name: nginx_timed, regex: '(?<a>.)'}\n",
		      "2:12: parser name 'nginx_timed' is a built-in parser; choose another name\n");
	expect_errors(f,
		      "parsers:\n"
		      "  - {name: p, regex: '(?<a>.)'}\n"
		      "  - {name: p, regex: '(?<b>.)'}\n",
		      "3:12: duplicate parser name 'p' (first at line 2)\n");
	expect_errors(f, "parsers:\n  - {regex: '(?<a>.)'}\n", "2:5: parser is missing 'name'\n");
	expect_errors(f, "parsers:\n  - {name: p, regx: '(?<a>.)'}\n",
		      "2:15: unknown key 'regx' in parser 'p'; expected one of: name, type, "
		      "regex, types, time\n");
	expect_errors(f, "parsers:\n  - [a]\n",
		      "2:5: expected a mapping for each entry of 'parsers', found a list\n");
	/* parser_new's own messages, placed at the node they are about */
	expect_errors(f, "parsers:\n  - {name: p}\n",
		      "2:5: parser 'p': regex: missing (a parser needs a regex or a built-in "
		      "type)\n");
	expect_errors(f, "parsers:\n  - {name: p, type: ngnix}\n",
		      "2:21: parser 'p': unknown built-in parser 'ngnix'; expected one of: "
		      "nginx_combined, nginx_timed (or a regex)\n");
	expect_errors(f, "parsers:\n  - {name: p, type: nginx_timed, regex: 'x'}\n",
		      "2:21: parser 'p': built-in parser 'nginx_timed' has its own regex; remove "
		      "'regex' (or drop 'type' to use yours)\n");
	expect_errors(f,
		      "parsers:\n"
		      "  - name: p\n"
		      "    regex: '(?<a>x)(?<b>y'\n",
		      "3:26: parser 'p': regex: missing closing parenthesis\n");
	expect_errors(f,
		      "parsers:\n"
		      "  - name: p\n"
		      "    regex: (?<a>x)(?<b>y\n",
		      "3:25: parser 'p': regex: missing closing parenthesis\n");
	expect_errors(f,
		      "parsers:\n"
		      "  - name: p\n"
		      "    regex: '(?<a>x)'\n"
		      "    types: {a: int, statsu: int}\n",
		      "4:21: parser 'p': types: 'statsu' is not a named group of the regex\n");
	expect_errors(f,
		      "parsers:\n"
		      "  - name: p\n"
		      "    regex: '(?<a>x)'\n"
		      "    types: {a: integer}\n",
		      "4:16: unknown type 'integer' for field 'a'; expected one of: int, float, "
		      "seconds, ms, string\n");
	expect_errors(f,
		      "parsers:\n"
		      "  - name: p\n"
		      "    regex: '(?<a>x)'\n"
		      "    types: [a]\n",
		      "4:12: expected a mapping for 'types', found a list\n");
	expect_errors(f,
		      "parsers:\n"
		      "  - name: p\n"
		      "    regex: '(?<a>x)'\n"
		      "    time: {field: t}\n",
		      "4:19: parser 'p': time.field: 't' is not a named group of the regex\n");
	expect_errors(f,
		      "parsers:\n"
		      "  - name: p\n"
		      "    regex: '(?<a>x)'\n"
		      "    time: {field: a, fmt: x}\n",
		      "4:22: unknown key 'fmt' in 'time'; expected one of: field, format\n");
	expect_errors(f,
		      "parsers:\n"
		      "  - name: p\n"
		      "    regex: '(?<a>x)'\n"
		      "    time: a\n",
		      "4:11: expected a mapping for 'time', found a scalar\n");
	/* a parser that failed does not also make its sources fail */
	expect_errors(f,
		      "parsers:\n"
		      "  - {name: p, regex: '('}\n"
		      "sources:\n"
		      "  - {name: s, path: /x, parser: p}\n",
		      "2:24: parser 'p': regex: missing closing parenthesis\n");
}

static void test_sink_errors(void **state)
{
	struct fx *f = *state;

	expect_errors(f, "sinks:\n  - {name: chat, type: slack, url: 'https://x'}\n",
		      "2:24: sink type 'slack' is not available in this version; available: "
		      "stdout, jsonl\n"
		      "2:31: unknown key 'url' in sink 'chat'; expected one of: name, type, path, "
		      "what\n");
	expect_errors(f, "sinks:\n  - {name: hook, type: webhook}\n",
		      "2:24: sink type 'webhook' is not available in this version; available: "
		      "stdout, jsonl\n");
	expect_errors(f, "sinks:\n  - {name: x, type: pager}\n",
		      "2:21: unknown sink type 'pager'; available: stdout, jsonl\n");
	expect_errors(f, "sinks:\n  - {name: x}\n",
		      "2:5: sink 'x' is missing 'type' (stdout or jsonl)\n");
	expect_errors(f, "sinks:\n  - {type: stdout}\n", "2:5: sink is missing 'name'\n");
	expect_errors(f, "sinks:\n  - {name: j, type: jsonl}\n",
		      "2:5: sink 'j' is missing 'path' (the file a jsonl sink writes)\n");
	expect_errors(f, "sinks:\n  - {name: j, type: jsonl, path: /x, what: all}\n",
		      "2:44: invalid value 'all' for 'what'; expected 'events' or 'alerts'\n");
	expect_errors(f, "sinks:\n  - {name: o, type: stdout, path: /x, what: events}\n",
		      "2:35: 'path' is not used by a stdout sink\n"
		      "2:45: 'what' is not used by a stdout sink\n");
	expect_errors(f,
		      "sinks:\n"
		      "  - {name: o, type: stdout}\n"
		      "  - {name: o, type: stdout}\n",
		      "3:12: duplicate sink name 'o' (first at line 2)\n");
	expect_errors(f, "sinks:\n  - stdout\n",
		      "2:5: expected a mapping for each entry of 'sinks', found a scalar\n");
}

static void test_find(void **state)
{
	struct fx *f = *state;
	char cwd[4096];
	assert_non_null(getcwd(cwd, sizeof cwd));
	write_file(f->dir, "klaxon.yml", "---\n");
	write_file(f->dir, "other.yml", "---\n");
	char *other = join_path(f->dir, "other.yml");
	char *missing = join_path(f->dir, "missing.yml");

	unsetenv("KLAXON_CONFIG");
	assert_ptr_equal(config_find(other), other);
	assert_null(config_find(missing));
	setenv("KLAXON_CONFIG", other, 1);
	assert_string_equal(config_find(NULL), other);
	assert_ptr_equal(config_find(f->cfg), f->cfg); /* -c wins */
	setenv("KLAXON_CONFIG", missing, 1);
	assert_null(config_find(NULL)); /* no silent fallback */
	unsetenv("KLAXON_CONFIG");
	assert_int_equal(chdir(f->dir), 0);
	assert_string_equal(config_find(NULL), "klaxon.yml");
	assert_int_equal(chdir(cwd), 0);

	free(other);
	free(missing);
}

static void test_load_mem(void **state)
{
	struct fx *f = *state;
	struct config *c = NULL;
	struct kl_buf name = { 0 };
	kl_buf_appendf(&name, "%s/virtual.yml", f->dir);
	static const char text[] = "rule_files: extra.yml\n"
				   "sources: [{name: a, path: /x, parser: nginx_timed}]\n";
	struct kl_diag d = { .out = stderr };
	assert_int_equal(config_load_mem(name.p, text, strlen(text), &c, &d), 0);
	assert_string_equal(c->file, name.p);
	assert_int_equal(c->nrule_files, 1);
	assert_int_equal(c->nsources, 1);
	config_free(c);

	/* a missing file: reported with the path only */
	char *missing = join_path(f->dir, "missing.yml");
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	d = (struct kl_diag){ .out = out };
	c = NULL;
	assert_int_equal(config_load(missing, &c, &d), -EINVAL);
	assert_null(c);
	fflush(out);
	struct kl_buf want = { 0 };
	kl_buf_appendf(&want, "%s: cannot read: No such file or directory\n", missing);
	assert_string_equal(buf, want.p);
	fclose(out);
	free(buf);
	kl_buf_free(&want);
	free(missing);
	kl_buf_free(&name);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_full),
		T(test_defaults),
		T(test_env),
		T(test_top_level),
		T(test_reserved),
		T(test_rule_files),
		T(test_rule_files_dir_metachars),
		T(test_source_errors),
		T(test_multiline_warns),
		T(test_parser_errors),
		T(test_sink_errors),
		T(test_find),
		T(test_load_mem),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
