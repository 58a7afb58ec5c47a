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
#include <signal.h>
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
	/* stderr captured (capture_begin/end): the file, and the real stderr */
	FILE *cap;
	int saved_fd;
	/* load_text: load text into loaded, its result in rc */
	const char *text;
	struct config *loaded;
	int rc;
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
	f->saved_fd = -1;
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

static char *capture_end(struct fx *f);

static int teardown(void **state)
{
	struct fx *f = *state;
	if (f->cap) {
		/* a test failed with stderr captured: show what it said */
		char *said = capture_end(f);
		fputs(said, stderr);
		free(said);
	}
	config_free(f->loaded);
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

/* Send stderr to a temporary file until capture_end. */
static void capture_begin(struct fx *f)
{
	assert_null(f->cap);
	f->cap = tmpfile();
	assert_non_null(f->cap);
	fflush(stderr);
	f->saved_fd = dup(2);
	assert_true(f->saved_fd >= 0);
	assert_true(dup2(fileno(f->cap), 2) >= 0);
}

/* Restore stderr; return what was written to it meanwhile. */
static char *capture_end(struct fx *f)
{
	fflush(stderr);
	dup2(f->saved_fd, 2);
	close(f->saved_fd);
	f->saved_fd = -1;
	FILE *tmp = f->cap;
	f->cap = NULL;
	fseek(tmp, 0, SEEK_END);
	long len = ftell(tmp);
	rewind(tmp);
	char *buf = calloc(1, (size_t)len + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)len, tmp), (size_t)len);
	fclose(tmp);
	return buf;
}

/* Run fn(f) with stderr in a temporary file; return what was written. */
static char *capture_stderr(void (*fn)(struct fx *), struct fx *f)
{
	capture_begin(f);
	fn(f);
	return capture_end(f);
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
	assert_false(c->listen_set);
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
		      "3:24: unknown sink type '${KL_TEST_SECRET}'; available: stdout, jsonl, "
		      "webhook, alertmanager, slack, discord, teams\n");
	assert_null(strstr(f->out, "s3cr3t"));
}

static void test_top_level(void **state)
{
	struct fx *f = *state;

	expect_errors(f,
		      "state_dir: /x\n"
		      "soruces: []\n",
		      "2:1: unknown key 'soruces'; expected one of: state_dir, listen, "
		      "eval_interval, rule_files, sources, parsers, sinks, routes, notify, inhibit, "
		      "external_url, rotate, rotate_interval, probes, redis\n");
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
	assert_true(c->listen_set);
	assert_int_equal(c->eval_interval_us, 2000000);
	config_free(c);
	/* `listen: off` or an empty value: no server */
	const char *const offs[] = { "listen: off\n", "listen:\n", "listen: ''\n" };
	for (size_t i = 0; i < 3; i++) {
		expect_ok(f, offs[i], &c);
		assert_null(c->listen);
		assert_true(c->listen_set);
		config_free(c);
	}
}

/* redis: a URL, or a map; the password from the URL or a file, never shown */
static void test_redis_config(void **state)
{
	struct fx *f = *state;
	struct config *c;

	expect_ok(f, "sources: []\n", &c);
	assert_false(c->redis.set);
	config_free(c);

	expect_ok(f, "redis: redis://r:6380/2\n", &c);
	assert_true(c->redis.set);
	assert_string_equal(c->redis.host, "r");
	assert_int_equal(c->redis.port, 6380);
	assert_int_equal(c->redis.db, 2);
	assert_null(c->redis.password);
	assert_false(c->redis.share_all);
	assert_int_equal(c->redis.lease_us, 30000000);
	assert_null(c->redis.stream_key);
	config_free(c);

	expect_ok(f, "redis: 'redis://:p%40ss@cache'\n", &c);
	assert_string_equal(c->redis.host, "cache");
	assert_int_equal(c->redis.port, 6379);
	assert_string_equal(c->redis.password, "p@ss");
	config_free(c);

	write_file(f->dir, "pw", "s3cret\n");
	struct kl_buf b = { 0 };
	kl_buf_appendf(&b,
		       "redis:\n"
		       "  url: redis://127.0.0.1:7000\n"
		       "  share: all\n"
		       "  password_file: %s/pw\n"
		       "  replica: web-1\n"
		       "  lease: 10s\n"
		       "  stream: {key: 'klaxon:events', maxlen: 500, what: events}\n",
		       f->dir);
	expect_ok(f, b.p, &c);
	kl_buf_free(&b);
	assert_string_equal(c->redis.host, "127.0.0.1");
	assert_int_equal(c->redis.port, 7000);
	assert_string_equal(c->redis.password, "s3cret");
	assert_true(c->redis.share_all);
	assert_string_equal(c->redis.replica, "web-1");
	assert_int_equal(c->redis.lease_us, 10000000);
	assert_string_equal(c->redis.stream_key, "klaxon:events");
	assert_int_equal(c->redis.stream_maxlen, 500);
	assert_true(c->redis.stream_events);
	config_free(c);

	expect_ok(f, "redis: {url: 'redis://r', stream: {key: s}}\n", &c);
	assert_int_equal(c->redis.stream_maxlen, 100000);
	assert_false(c->redis.stream_events);
	assert_false(c->redis.tls);
	config_free(c);

	/* rediss://: TLS, the system's CAs and the check unless told otherwise */
	expect_ok(f, "redis: rediss://r:6380/1\n", &c);
	assert_true(c->redis.tls);
	assert_string_equal(c->redis.host, "r");
	assert_int_equal(c->redis.port, 6380);
	assert_int_equal(c->redis.db, 1);
	assert_null(c->redis.tls_ca_file);
	assert_false(c->redis.tls_insecure);
	config_free(c);
	expect_ok(f, "redis: {url: 'rediss://r', ca_file: /dev/null, tls_verify: false}\n", &c);
	assert_string_equal(c->redis.tls_ca_file, "/dev/null");
	assert_true(c->redis.tls_insecure);
	config_free(c);
}

static void test_redis_errors(void **state)
{
	struct fx *f = *state;
	expect_errors(f, "redis: http://r\n",
		      "1:8: invalid URL for 'redis': it must start with redis:// or rediss:// "
		      "(TLS)\n");
	expect_errors(f, "redis: {url: 'redis://r', tls_verify: false}\n",
		      "1:39: 'ca_file' and 'tls_verify' in 'redis' are for a rediss:// URL (TLS); "
		      "this one is redis://\n");
	expect_errors(f, "redis: {url: 'rediss://r', ca_file: /nonexistent/ca.crt}\n",
		      "1:37: 'ca_file' /nonexistent/ca.crt cannot be read: No such file or "
		      "directory\n");
	expect_errors(f, "redis: redis://r:99999\n",
		      "1:8: invalid URL for 'redis': it has a port that is not a number from 1 "
		      "to 65535\n");
	expect_errors(f, "redis: redis://r/x\n",
		      "1:8: invalid URL for 'redis': it has a database that is not a number "
		      "(expected /0, /1, ...)\n");
	expect_errors(f, "redis: 'redis://user@r'\n",
		      "1:8: invalid URL for 'redis': it has credentials without a password (write "
		      "redis://:PASSWORD@HOST)\n");
	expect_errors(f, "redis: [a]\n",
		      "1:8: expected a redis:// URL or a mapping {url, share, password_file, "
		      "replica, lease, stream, ca_file, tls_verify} for 'redis', found a list\n");
	expect_errors(f, "redis: {share: all}\n",
		      "1:8: 'redis' needs a 'url' (e.g. url: redis://redis:6379/0)\n");
	expect_errors(f, "redis:\n  url: redis://r\n  share: some\n",
		      "3:10: invalid 'share' 'some' in 'redis'; expected marked (only rules with "
		      "`shared: true`) or all (every rule)\n");
	expect_errors(f, "redis:\n  url: redis://r\n  replica: 'a|b'\n",
		      "3:12: invalid 'replica' name: at most 200 bytes and no '|' (it separates "
		      "the replica from the group in Redis field names)\n");
	expect_errors(f, "redis:\n  url: redis://r\n  lease: 0s\n",
		      "3:10: 'lease' must be more than 0\n");
	expect_errors(f, "redis:\n  url: redis://r\n  stream: {maxlen: 0, what: x}\n",
		      "3:20: invalid 'maxlen' '0' in 'redis: stream'; expected a whole number of "
		      "entries of 1 or more (e.g. 100000)\n"
		      "3:29: invalid 'what' 'x' in 'redis: stream'; expected events (every parsed "
		      "event) or alerts (alert transitions)\n"
		      "3:11: 'redis: stream' needs a 'key' (e.g. key: klaxon:events)\n");
	expect_errors(f, "redis:\n  url: redis://r\n  tls: true\n",
		      "3:3: unknown key 'tls' in 'redis'; expected one of: url, share, "
		      "password_file, replica, lease, stream, ca_file, tls_verify\n");
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
		      "(nginx_combined, nginx_timed, gunicorn_access, django, postgres, json, postgres_json) or one defined under 'parsers:'\n");
	expect_errors(f,
		      "parsers:\n"
		      "  - {name: edge, regex: '(?<a>.)'}\n"
		      "  - {name: pg, regex: '(?<b>.)'}\n"
		      "sources:\n"
		      "  - {name: a, path: /x, parser: egde}\n",
		      "5:33: unknown parser 'egde' for source 'a'; expected a built-in "
		      "(nginx_combined, nginx_timed, gunicorn_access, django, postgres, json, postgres_json) or one from 'parsers:' (edge, pg)\n");
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
		      "(nginx_combined, nginx_timed, gunicorn_access, django, postgres, json, postgres_json) or one defined under 'parsers:'\n");
}

static void test_multiline(void **state)
{
	struct fx *f = *state;
	struct config *c;
	expect_ok(f,
		  "sources:\n"
		  "  - name: app\n"
		  "    path: /x\n"
		  "    parser: nginx_combined\n"
		  "    multiline: {start: '^\\d', timeout: 250ms, max_lines: 20, max_bytes: 64KiB}\n",
		  &c);
	const struct config_multiline *m = &c->sources[0].multiline;
	assert_true(m->set);
	assert_string_equal(m->start, "^\\d");
	assert_null(m->continuation);
	assert_int_equal(m->timeout_us, 250000);
	assert_int_equal(m->max_lines, 20);
	assert_int_equal(m->max_bytes, 65536);
	config_free(c);

	expect_errors(f,
		      "sources:\n  - {name: a, path: /x, parser: nginx_combined,"
		      " multiline: {start: '(', timeout: 1s}}\n",
		      "2:68: source 'a': multiline start: missing closing parenthesis at offset 1\n");
	expect_errors(f,
		      "sources:\n  - {name: a, path: /x, parser: nginx_combined,"
		      " multiline: {start: 'a', continuation: 'b'}}\n",
		      "2:60: source 'a': multiline needs exactly one of 'start' or 'continuation'\n");
	expect_errors(f,
		      "sources:\n  - {name: a, path: /x, parser: nginx_combined,"
		      " multiline: {start: 'a', max_lines: 0, strat: 1}}\n",
		      "2:84: 'max_lines' must be a number from 1 to 64Mi\n"
		      "2:87: unknown key 'strat' in the multiline of source 'a'; expected one of: "
		      "start, continuation, timeout, max_lines, max_bytes\n");
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
		      "regex, types, time, log_line_prefix, format\n");
	expect_errors(f, "parsers:\n  - [a]\n",
		      "2:5: expected a mapping for each entry of 'parsers', found a list\n");
	/* parser_new's own messages, placed at the node they are about */
	expect_errors(f, "parsers:\n  - {name: p}\n",
		      "2:5: parser 'p': regex: missing (a parser needs a regex or a built-in "
		      "type)\n");
	expect_errors(f, "parsers:\n  - {name: p, type: ngnix}\n",
		      "2:21: parser 'p': unknown built-in parser 'ngnix'; expected one of: "
		      "nginx_combined, nginx_timed, gunicorn_access, django, postgres, json, postgres_json (or a regex)\n");
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

	expect_errors(f, "sinks:\n  - {name: hook, type: webhook}\n",
		      "2:5: sink 'hook' is missing 'url' (or 'url_file')\n");
	expect_errors(f, "sinks:\n  - {name: x, type: pager}\n",
		      "2:21: unknown sink type 'pager'; available: stdout, jsonl, webhook, "
		      "alertmanager, slack, discord, teams\n");
	expect_errors(f, "sinks:\n  - {name: x}\n",
		      "2:5: sink 'x' is missing 'type' (stdout, jsonl, webhook, alertmanager, slack, "
		      "discord or teams)\n");
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
	expect_errors(f, "sinks:\n  - {name: o, type: stdout, urls: x}\n",
		      "2:29: unknown key 'urls' in sink 'o'; expected one of: name, type, path, what, "
		      "url, url_file, secret_file, tls_verify, timeout\n");
}

/* ------------------------------------------------------------------------- */
/* Notifications: notifier sinks, routes, notify, inhibit, external_url */

/* Values that stand for secrets: none may ever be printed. */
#define SECRET_HOOK  "s3cr3t-hook-4411"
#define SECRET_TOKEN "tok-9f8e7d6c"
#define SECRET_CHAT  "XOXB-chat-55aa"
#define SECRET_HMAC  "hmac-k3y-0b0b"
#define SECRET_OTHER "s3cr3t-other-7"

static const char *const secrets[] = { SECRET_HOOK, SECRET_TOKEN, SECRET_CHAT, SECRET_HMAC,
				       SECRET_OTHER };

static void assert_no_secret(const char *text)
{
	if (!text)
		return; /* nothing was printed */
	for (size_t i = 0; i < KL_ARRAY_LEN(secrets); i++)
		if (strstr(text, secrets[i]))
			fail_msg("a secret (%s) was printed: %s", secrets[i], text);
}

/* A heap string, printf-style. */
static char *strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *strf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	assert_true(n >= 0);
	char *p = malloc((size_t)n + 1);
	assert_non_null(p);
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return p;
}

static void load_text(struct fx *f)
{
	f->rc = load(f, f->text, &f->loaded);
}

static void assert_notify(const struct notify_spec *n, int64_t wait, int64_t interval,
			  int64_t repeat, bool resolved)
{
	assert_int_equal(n->group_wait_us, wait);
	assert_int_equal(n->group_interval_us, interval);
	assert_int_equal(n->repeat_interval_us, repeat);
	assert_int_equal(n->send_resolved, resolved);
}

#define S(x) ((int64_t)(x) * 1000000)

static const char notify_config[] =
	"state_dir: /tmp/klaxon-state\n"
	"external_url: https://klaxon.example:9731/\n"
	"sinks:\n"
	"  - {name: console, type: stdout}\n"
	"  - name: oncall\n"
	"    type: webhook\n"
	"    url: '${KL_TEST_HOOK}'\n"
	"    secret_file: %s/hmac\n"
	"    timeout: 2500ms\n"
	"  - name: am\n"
	"    type: alertmanager\n"
	"    url: http://alertmanager:9093\n"
	"    tls_verify: true\n"
	"  - name: chat\n"
	"    type: slack\n"
	"    url_file: %s/chat_url\n"
	"    tls_verify: false\n"
	"  - {name: disc, type: discord, url: 'https://discord.example/api/webhooks/1/${KL_TEST_TOKEN}'}\n"
	"  - {name: msteams, type: teams, url: 'HTTPS://teams.example/hook', timeout: 1m}\n"
	"routes:\n"
	"  - match: {severity: page}\n"
	"    sinks: [oncall, chat]\n"
	"    continue: true\n"
	"    group_wait: 0s\n"
	"    repeat_interval: 1h\n"
	"  - match: {severity: page, team: '${KL_TEST_TEAM}'}\n"
	"    sinks: am\n"
	"    send_resolved: false\n"
	"  - sinks: [chat, disc, msteams]\n"
	"    group_interval: 1m\n"
	"notify: {group_wait: 10s, repeat_interval: 2h}\n" /* after routes: still inherited */
	"inhibit:\n"
	"  - source_match: {alertname: Down}\n"
	"    target_match: {severity: warning}\n"
	"    equal: [source, instance]\n"
	"  - {source_match: {a: b}, target_match: {c: d}}\n";

static void test_notify_full(void **state)
{
	struct fx *f = *state;

	setenv("KL_TEST_HOOK", "https://hooks.example/T0/" SECRET_HOOK, 1);
	setenv("KL_TEST_TOKEN", SECRET_TOKEN, 1);
	setenv("KL_TEST_TEAM", "db", 1);
	/* a secret is the file's first line, its line end and trailing blanks cut */
	write_file(f->dir, "hmac", SECRET_HMAC "\nsecond line, ignored\n");
	write_file(f->dir, "chat_url", "https://chat.example/services/" SECRET_CHAT " \r\n");
	char *text = strf(notify_config, f->dir, f->dir);
	f->text = text;
	char *err = capture_stderr(load_text, f);
	assert_string_equal(f->out, "");
	assert_string_equal(err, "klaxon: warning: config: sink 'chat': tls_verify is false: the "
				 "receiver's TLS certificate is not checked\n");
	assert_no_secret(err);
	free(err);
	free(text);
	assert_int_equal(f->rc, 0);
	struct config *c = f->loaded;
	assert_non_null(c);

	assert_string_equal(c->external_url, "https://klaxon.example:9731/");
	assert_notify(&c->notify, S(10), S(300), S(7200), true);

	assert_int_equal(c->nsinks, 6);
	const struct config_sink *s = c->sinks;
	assert_int_equal(s[0].type, SINK_STDOUT);
	assert_null(s[0].url);

	assert_string_equal(s[1].name, "oncall");
	assert_int_equal(s[1].type, SINK_WEBHOOK);
	assert_string_equal(s[1].url, "https://hooks.example/T0/" SECRET_HOOK);
	assert_string_equal(s[1].secret, SECRET_HMAC);
	assert_false(s[1].tls_insecure);
	assert_int_equal(s[1].timeout_us, 2500000);
	assert_null(s[1].path);
	assert_int_equal(s[1].line, 5);
	assert_int_equal(s[1].col, 5);

	assert_int_equal(s[2].type, SINK_ALERTMANAGER);
	assert_string_equal(s[2].url, "http://alertmanager:9093");
	assert_null(s[2].secret);
	assert_false(s[2].tls_insecure);
	assert_int_equal(s[2].timeout_us, S(10)); /* the default */

	assert_int_equal(s[3].type, SINK_SLACK);
	assert_string_equal(s[3].url, "https://chat.example/services/" SECRET_CHAT);
	assert_true(s[3].tls_insecure);

	assert_int_equal(s[4].type, SINK_DISCORD);
	assert_string_equal(s[4].url, "https://discord.example/api/webhooks/1/" SECRET_TOKEN);

	assert_int_equal(s[5].type, SINK_TEAMS);
	assert_string_equal(s[5].url, "HTTPS://teams.example/hook");
	assert_int_equal(s[5].timeout_us, S(60));

	/* routes: the global notify with each route's overrides */
	assert_int_equal(c->nroutes, 3);
	const struct config_route *r = c->routes;
	assert_int_equal(r[0].nmatch, 1);
	assert_string_equal(r[0].match[0].name, "severity");
	assert_string_equal(r[0].match[0].value, "page");
	assert_int_equal(r[0].nsinks, 2);
	assert_string_equal(r[0].sinks[0], "oncall");
	assert_string_equal(r[0].sinks[1], "chat");
	assert_true(r[0].cont);
	assert_notify(&r[0].notify, 0, S(300), S(3600), true);
	assert_int_equal(r[0].line, 21);
	assert_int_equal(r[0].col, 5);

	assert_int_equal(r[1].nmatch, 2);
	assert_string_equal(r[1].match[1].name, "team");
	assert_string_equal(r[1].match[1].value, "db"); /* ${VAR} in a value */
	assert_int_equal(r[1].nsinks, 1);		 /* one name, not a list */
	assert_string_equal(r[1].sinks[0], "am");
	assert_false(r[1].cont);
	assert_notify(&r[1].notify, S(10), S(300), S(7200), false);

	assert_int_equal(r[2].nmatch, 0);
	assert_int_equal(r[2].nsinks, 3);
	assert_string_equal(r[2].sinks[2], "msteams");
	assert_notify(&r[2].notify, S(10), S(60), S(7200), true);

	assert_int_equal(c->ninhibits, 2);
	const struct config_inhibit *in = c->inhibits;
	assert_int_equal(in[0].nsource, 1);
	assert_string_equal(in[0].source_match[0].name, "alertname");
	assert_string_equal(in[0].source_match[0].value, "Down");
	assert_int_equal(in[0].ntarget, 1);
	assert_string_equal(in[0].target_match[0].value, "warning");
	assert_int_equal(in[0].nequal, 2);
	assert_string_equal(in[0].equal[0], "source");
	assert_string_equal(in[0].equal[1], "instance");
	assert_int_equal(in[1].nequal, 0);
	assert_string_equal(in[1].target_match[0].name, "c");

	/* the sinks stage's view points into the config */
	const struct sinks_spec *sp = &c->sinks_spec;
	assert_ptr_equal(sp->state_dir, c->state_dir);
	assert_ptr_equal(sp->external_url, c->external_url);
	assert_int_equal(sp->spool_max_bytes, 0);
	assert_int_equal(sp->nsinks, 6);
	for (size_t i = 0; i < sp->nsinks; i++) {
		const struct sink_spec *ss = &sp->sinks[i];
		assert_ptr_equal(ss->name, s[i].name);
		assert_int_equal(ss->kind, s[i].type);
		assert_ptr_equal(ss->path, s[i].path);
		assert_int_equal(ss->events, s[i].events);
		assert_ptr_equal(ss->url, s[i].url);
		assert_ptr_equal(ss->secret, s[i].secret);
		assert_int_equal(ss->tls_insecure, s[i].tls_insecure);
		assert_int_equal(ss->timeout_us, s[i].timeout_us);
	}
	assert_string_equal(sp->sinks[1].secret, SECRET_HMAC);
	assert_true(sp->sinks[3].tls_insecure);
	assert_int_equal(sp->nroutes, 3);
	for (size_t i = 0; i < sp->nroutes; i++) {
		const struct route_spec *rs = &sp->routes[i];
		assert_ptr_equal(rs->match, r[i].match);
		assert_int_equal(rs->nmatch, r[i].nmatch);
		assert_ptr_equal(rs->sinks, r[i].sinks);
		assert_int_equal(rs->nsinks, r[i].nsinks);
		assert_int_equal(rs->cont, r[i].cont);
		assert_memory_equal(&rs->notify, &r[i].notify, sizeof rs->notify);
	}
	assert_string_equal(sp->routes[0].sinks[1], "chat");
	assert_notify(&sp->notify, S(10), S(300), S(7200), true);
	assert_int_equal(sp->ninhibits, 2);
	assert_ptr_equal(sp->inhibits[0].source_match, in[0].source_match);
	assert_int_equal(sp->inhibits[0].nsource, 1);
	assert_ptr_equal(sp->inhibits[0].target_match, in[0].target_match);
	assert_int_equal(sp->inhibits[0].ntarget, 1);
	assert_ptr_equal(sp->inhibits[0].equal, in[0].equal);
	assert_int_equal(sp->inhibits[0].nequal, 2);
	assert_string_equal(sp->inhibits[1].source_match[0].value, "b");

	config_free(c);
	f->loaded = NULL;
	unsetenv("KL_TEST_HOOK");
	unsetenv("KL_TEST_TOKEN");
	unsetenv("KL_TEST_TEAM");
}

static void test_notify_defaults(void **state)
{
	struct fx *f = *state;
	struct config *c;

	/* Alertmanager's defaults; a route without overrides takes them */
	expect_ok(f,
		  "sinks: [{name: hook, type: webhook, url: 'http://127.0.0.1:9/x'}]\n"
		  "routes: [{sinks: [hook]}]\n",
		  &c);
	assert_notify(&c->notify, S(30), S(300), S(4 * 3600), true);
	assert_notify(&c->routes[0].notify, S(30), S(300), S(4 * 3600), true);
	assert_false(c->routes[0].cont);
	assert_null(c->sinks[0].secret);
	assert_false(c->sinks[0].tls_insecure);
	assert_int_equal(c->sinks[0].timeout_us, S(10));
	assert_null(c->external_url);
	assert_null(c->sinks_spec.external_url);
	assert_int_equal(c->ninhibits, 0);
	assert_int_equal(c->sinks_spec.ninhibits, 0);
	config_free(c);

	/* no routes, no notify: empty values and empty lists keep the defaults */
	expect_ok(f, "routes: []\ninhibit:\nnotify:\n", &c);
	assert_int_equal(c->nroutes, 0);
	assert_int_equal(c->sinks_spec.nroutes, 0);
	assert_notify(&c->sinks_spec.notify, S(30), S(300), S(4 * 3600), true);
	assert_int_equal(c->sinks_spec.nsinks, 1); /* the default stdout sink */
	assert_int_equal(c->sinks_spec.sinks[0].kind, SINK_STDOUT);
	config_free(c);

	/* group_wait may be 0; yes/no are booleans too */
	expect_ok(f,
		  "notify: {group_wait: 0s, send_resolved: no}\n"
		  "sinks: [{name: hook, type: webhook, url: 'http://127.0.0.1:9/x'}]\n"
		  "routes: [{sinks: hook, continue: yes, send_resolved: yes}]\n",
		  &c);
	assert_notify(&c->notify, 0, S(300), S(4 * 3600), false);
	assert_notify(&c->routes[0].notify, 0, S(300), S(4 * 3600), true);
	assert_true(c->routes[0].cont);
	config_free(c);
}

/* A notifying sink named chat, for the route tests. */
#define CHAT_SINK "  - {name: chat, type: slack, url: 'https://chat.example/x'}\n"

/* expect_errors, then no secret in what was reported */
static void expect_errors_ns(struct fx *f, const char *text, const char *want)
{
	expect_errors(f, text, want);
	assert_no_secret(f->out);
}

static void notify_errors(struct fx *f)
{
	/* routes name notifying sinks that exist */
	expect_errors_ns(f,
			 "sinks:\n" CHAT_SINK
			 "routes:\n"
			 "  - {sinks: [chat, pager]}\n",
			 "4:20: route 1 names sink 'pager', which is not defined under 'sinks'; "
			 "notifying sinks: chat\n");
	expect_errors_ns(f, "routes:\n  - {sinks: pager}\n",
			 "2:13: route 1 names sink 'pager', which is not defined under 'sinks'; no "
			 "notifying sink is defined\n");
	expect_errors_ns(f,
			 "sinks:\n"
			 "  - {name: console, type: stdout}\n"
			 "  - {name: log, type: jsonl, path: /x.jsonl}\n" CHAT_SINK
			 "routes:\n"
			 "  - sinks: [chat, console]\n"
			 "  - {match: {a: b}, sinks: [log]}\n",
			 "6:19: route 1 names sink 'console', a stdout sink; routes choose among "
			 "notifying sinks (stdout and jsonl record every transition)\n"
			 "7:29: route 2 names sink 'log', a jsonl sink; routes choose among notifying "
			 "sinks (stdout and jsonl record every transition)\n");
	/* a route needs sinks */
	expect_errors_ns(f,
			 "routes:\n"
			 "  - {match: {a: b}}\n"
			 "  - {sinks: []}\n"
			 "  - {sinks: {a: b}}\n"
			 "  - sinks:\n"
			 "  - chat\n"
			 "  - {sinks: [[chat]]}\n",
			 "2:5: route 1 is missing 'sinks' (the notifying sinks it sends to)\n"
			 "3:13: route 2 has no sinks; name at least one notifying sink\n"
			 "4:13: expected a name or a list of names for 'sinks', found a mapping\n"
			 "5:11: expected a name or a list of names for 'sinks', found an empty "
			 "value\n"
			 "6:5: expected a mapping for each entry of 'routes', found a scalar\n"
			 "7:14: expected a name for 'sinks', found a list\n");
	expect_errors_ns(f, "routes: {sinks: [chat]}\n",
			 "1:9: expected a list for 'routes', found a mapping\n");
	/* bad durations and booleans, in notify, a route and a sink */
	expect_errors_ns(f,
			 "notify: {group_wait: soon, group_interval: 0s, send_resolved: maybe}\n"
			 "routes:\n"
			 "  - {sinks: [chat], repeat_interval: 0, continue: 1, group_interval: -5m}\n"
			 "sinks:\n"
			 "  - {name: chat, type: slack, url: 'https://c.example/x', tls_verify: nope, "
			 "timeout: 0s}\n",
			 "1:22: invalid duration 'soon' for 'group_wait'; expected a number with a "
			 "unit: us, ms, s, m, h, d, w (e.g. 30s, 5m, 4h)\n"
			 "1:44: 'group_interval' must be more than 0\n"
			 "1:63: invalid value 'maybe' for 'send_resolved'; expected true or false\n"
			 "3:38: 'repeat_interval' must be more than 0\n"
			 "3:51: invalid value '1' for 'continue'; expected true or false\n"
			 "3:70: invalid duration '-5m' for 'group_interval'; expected a number with a "
			 "unit: us, ms, s, m, h, d, w (e.g. 30s, 5m, 4h)\n"
			 "5:71: invalid value 'nope' for 'tls_verify'; expected true or false\n"
			 "5:86: 'timeout' must be more than 0\n");
	expect_errors_ns(f, "notify: {repeat_interval: [1h]}\n",
			 "1:27: expected a duration for 'repeat_interval', found a list\n");
	expect_errors_ns(f, "notify: [group_wait]\n",
			 "1:9: expected a mapping for 'notify', found a list\n");
	/* notify after routes: inherited, and its problem reported once */
	expect_errors_ns(f,
			 "routes:\n"
			 "  - {sinks: [chat]}\n"
			 "  - {sinks: [chat]}\n"
			 "sinks:\n" CHAT_SINK
			 "notify: {repeat_interval: often}\n",
			 "6:27: invalid duration 'often' for 'repeat_interval'; expected a number "
			 "with a unit: us, ms, s, m, h, d, w (e.g. 30s, 5m, 4h)\n");
	/* unknown keys */
	expect_errors_ns(f,
			 "notify: {group_wiat: 1s}\n"
			 "routes:\n"
			 "  - {sinks: [chat], reciever: chat}\n"
			 "inhibit:\n"
			 "  - {source_match: {a: b}, target_match: {c: d}, equals: [x]}\n"
			 "sinks:\n" CHAT_SINK,
			 "1:10: unknown key 'group_wiat' in 'notify'; expected one of: group_wait, "
			 "group_interval, repeat_interval, send_resolved\n"
			 "3:21: unknown key 'reciever' in route 1; expected one of: match, sinks, "
			 "continue, group_by, group_wait, group_interval, repeat_interval, send_resolved\n"
			 "5:50: unknown key 'equals' in inhibit rule 1; expected one of: "
			 "source_match, target_match, equal\n");
	/* inhibit rules */
	expect_errors_ns(f,
			 "inhibit:\n"
			 "  - {target_match: {severity: warning}, equal: [source]}\n"
			 "  - {source_match: {}, target_match: {a: [b]}}\n"
			 "  - x\n"
			 "  - {source_match: x, target_match: {c: d}}\n"
			 "  - {source_match: {c: d}}\n",
			 "2:5: inhibit rule 1 is missing 'source_match' (the labels of the alert that "
			 "mutes)\n"
			 "3:42: expected a label value for 'a', found a list\n"
			 "3:20: 'source_match' of inhibit rule 2 is empty; name at least one label\n"
			 "4:5: expected a mapping for each entry of 'inhibit', found a scalar\n"
			 "5:20: expected a mapping for 'source_match', found a scalar\n"
			 "6:5: inhibit rule 5 is missing 'target_match' (the labels of the alerts it "
			 "mutes)\n");
	expect_errors_ns(f, "inhibit: x\n", "1:10: expected a list for 'inhibit', found a scalar\n");
	expect_errors_ns(f,
			 "sinks:\n" CHAT_SINK
			 "routes:\n"
			 "  - {match: [severity], sinks: [chat]}\n"
			 "  - {match: {severity: }, sinks: [chat]}\n",
			 "4:13: expected a mapping for 'match', found a list\n"
			 "5:24: expected a label value for 'severity', found an empty value\n");
	/* external_url is not a secret: shown */
	expect_errors_ns(f, "external_url: klaxon.example\n",
			 "1:15: invalid URL 'klaxon.example' for 'external_url': it must start with "
			 "http:// or https://\n");
	expect_errors_ns(f, "external_url: [a]\n",
			 "1:15: expected a URL for 'external_url', found a list\n");
}

static void test_notify_errors(void **state)
{
	struct fx *f = *state;
	char *err = capture_stderr(notify_errors, f);
	assert_string_equal(err, "");
	free(err);
}

static void notifier_errors(struct fx *f)
{
	/* url and url_file both: neither is read */
	expect_errors_ns(f,
			 "sinks:\n"
			 "  - name: chat\n"
			 "    type: slack\n"
			 "    url: 'https://c.example/x'\n"
			 "    url_file: missing_url\n",
			 "5:15: sink 'chat' has both 'url' and 'url_file'; keep one\n");
	/* a URL that is not http(s): never shown, wherever it came from */
	setenv("KL_TEST_BADURL", "gopher://h.example/" SECRET_OTHER, 1);
	write_file(f->dir, "ftp_url", "ftp://files.example/" SECRET_CHAT "\n");
	char *text = strf("sinks:\n"
			  "  - {name: a, type: webhook, url: 'ftp://files.example/" SECRET_HOOK "'}\n"
			  "  - {name: b, type: teams, url: '${KL_TEST_BADURL}'}\n"
			  "  - {name: c, type: discord, url: 'https:///" SECRET_TOKEN "'}\n"
			  "  - {name: d, type: slack, url: \"https://h.example/" SECRET_HMAC " x\"}\n"
			  "  - name: e\n"
			  "    type: webhook\n"
			  "    url_file: %s/ftp_url\n"
			  "  - {name: f, type: webhook, url: '${KL_TEST_UNSET}'}\n",
			  f->dir);
	unsetenv("KL_TEST_UNSET");
	expect_errors_ns(f, text,
			 "2:35: sink 'a': the URL must start with http:// or https:// (not shown: a "
			 "URL may hold a secret)\n"
			 "3:33: sink 'b': the URL must start with http:// or https:// (not shown: a "
			 "URL may hold a secret)\n"
			 "4:35: sink 'c': the URL has no host after the scheme (not shown: a URL may "
			 "hold a secret)\n"
			 "5:33: sink 'd': the URL contains a space or a control character (not shown: "
			 "a URL may hold a secret)\n"
			 "8:15: sink 'e': the URL must start with http:// or https:// (not shown: a "
			 "URL may hold a secret)\n"
			 "9:35: environment variable 'KL_TEST_UNSET' is not set\n");
	assert_null(strstr(f->out, "ftp:"));
	assert_null(strstr(f->out, "gopher"));
	assert_null(strstr(f->out, "files.example"));
	free(text);
	unsetenv("KL_TEST_BADURL");

	/* secret files: the message names the file, never what it holds */
	write_file(f->dir, "empty", "\n");
	write_file(f->dir, "blank_first", " \t\r\n" SECRET_OTHER "\n");
	char *nul = join_path(f->dir, "nul");
	assert_int_equal(kl_write_file_atomic(nul, SECRET_HMAC "\0x\n", sizeof SECRET_HMAC + 2), 0);
	free(nul);
	text = strf("sinks:\n"
		    "  - name: a\n"
		    "    type: webhook\n"
		    "    url: https://h.example/x\n"
		    "    secret_file: %s/missing\n"
		    "  - name: b\n"
		    "    type: webhook\n"
		    "    url: https://h.example/y\n"
		    "    secret_file: %s/empty\n"
		    "  - name: c\n"
		    "    type: slack\n"
		    "    url_file: %s/blank_first\n"
		    "  - name: d\n"
		    "    type: alertmanager\n"
		    "    url: https://h.example/z\n"
		    "    secret_file: %s/nul\n"
		    "  - name: e\n"
		    "    type: webhook\n"
		    "    url: https://h.example/z\n"
		    "    secret_file: [a]\n"
		    "  - name: f\n"
		    "    type: webhook\n"
		    "    url: https://h.example/z\n"
		    "    secret_file: %s\n",
		    f->dir, f->dir, f->dir, f->dir, f->dir);
	char *want = strf("5:18: cannot read the secret for 'secret_file' from '%s/missing': No "
			  "such file or directory\n"
			  "9:18: the file '%s/empty' for 'secret_file' holds no usable secret: its "
			  "first line is empty\n"
			  "12:15: the file '%s/blank_first' for 'url_file' holds no usable secret: "
			  "its first line is empty\n"
			  "16:18: the file '%s/nul' for 'secret_file' holds no usable secret: its "
			  "first line contains a NUL byte\n"
			  "20:18: expected a file path for 'secret_file', found a list\n"
			  "24:18: cannot read the secret for 'secret_file' from '%s': Is a "
			  "directory\n",
			  f->dir, f->dir, f->dir, f->dir, f->dir);
	expect_errors_ns(f, text, want);
	free(text);
	free(want);

	/* keys of the other family */
	expect_errors_ns(f,
			 "sinks:\n"
			 "  - {name: h, type: webhook, url: 'https://h.example/x', path: /x.jsonl, "
			 "what: events}\n"
			 "  - {name: o, type: stdout, url: 'https://h.example/" SECRET_HOOK
			 "', secret_file: missing, tls_verify: false, timeout: 1s}\n"
			 "  - {name: j, type: jsonl, path: /j.jsonl, url_file: u}\n",
			 "2:64: 'path' is used only by jsonl sinks\n"
			 "2:80: 'what' is used only by jsonl sinks\n"
			 "3:34: 'url' is used only by notifying sinks (webhook, alertmanager, slack, "
			 "discord, teams)\n"
			 "3:85: 'secret_file' is used only by notifying sinks (webhook, "
			 "alertmanager, slack, discord, teams)\n"
			 "3:106: 'tls_verify' is used only by notifying sinks (webhook, "
			 "alertmanager, slack, discord, teams)\n"
			 "3:122: 'timeout' is used only by notifying sinks (webhook, alertmanager, "
			 "slack, discord, teams)\n"
			 "4:54: 'url_file' is used only by notifying sinks (webhook, alertmanager, "
			 "slack, discord, teams)\n");
	/* a sink that failed is not blamed again by the routes naming it */
	expect_errors_ns(f,
			 "sinks:\n"
			 "  - {name: chat, type: slak, url: 'https://c.example/x'}\n"
			 "  - {name: hook, type: webhook, url: 'ftp://x'}\n"
			 "  - {name: bad, type: '${KL_TEST_UNSET}'}\n"
			 "routes:\n"
			 "  - {sinks: [chat, hook, bad]}\n",
			 "2:24: unknown sink type 'slak'; available: stdout, jsonl, webhook, "
			 "alertmanager, slack, discord, teams\n"
			 "3:38: sink 'hook': the URL must start with http:// or https:// (not shown: "
			 "a URL may hold a secret)\n"
			 "4:23: environment variable 'KL_TEST_UNSET' is not set\n");
}

static void test_notifier_errors(void **state)
{
	struct fx *f = *state;
	char *err = capture_stderr(notifier_errors, f);
	/* a stdout sink's tls_verify is refused, not warned about */
	assert_string_equal(err, "");
	assert_no_secret(err);
	free(err);
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

/* ------------------------------------------------------------------------- */
/* rotate */

static void test_rotate_config(void **state)
{
	struct fx *f = *state;
	struct config *c;
	expect_ok(f,
		  "rotate_interval: 30s\n"
		  "rotate:\n"
		  "  - {path: '/var/log/nginx/*.log.*', compress_after: 7d, delete_after: 30d}\n"
		  "  - path: /var/log/nginx/access.log\n"
		  "    max_size: 500MB\n"
		  "    method: copytruncate\n"
		  "    keep: 0\n"
		  "  - path: /var/log/app/app.log\n"
		  "    max_age: 1d\n"
		  "    min_size: 1KiB\n"
		  "    keep: 14\n"
		  "    dateext: true\n"
		  "    level: 9\n"
		  "    compress_after: 0s\n"
		  "    signal: {pidfile: /run/app.pid, sig: HUP}\n"
		  "    allow_unsafe_dir: yes\n",
		  &c);
	assert_int_equal(c->rotate_interval_us, 30000000);
	assert_int_equal(c->nrotate, 3);
	const struct rotate_rule *r = c->rotate;
	assert_string_equal(r[0].path, "/var/log/nginx/*.log.*");
	assert_int_equal(r[0].compress_after_us, 7 * 86400 * INT64_C(1000000));
	assert_int_equal(r[0].delete_after_us, 30 * 86400 * INT64_C(1000000));
	assert_int_equal(r[0].max_size, 0);
	assert_int_equal(r[0].max_age_us, -1);
	assert_int_equal(r[0].keep, -1);
	assert_int_equal(r[0].level, 6);
	assert_null(r[0].pidfile);
	assert_int_equal(r[1].max_size, 500000000);
	assert_int_equal(r[1].method, ROTATE_COPYTRUNCATE);
	assert_int_equal(r[1].keep, 0);
	assert_int_equal(r[1].compress_after_us, -1);
	assert_int_equal(r[2].max_age_us, 86400 * INT64_C(1000000));
	assert_int_equal(r[2].min_size, 1024);
	assert_int_equal(r[2].keep, 14);
	assert_true(r[2].dateext);
	assert_int_equal(r[2].level, 9);
	assert_int_equal(r[2].compress_after_us, 0);
	assert_string_equal(r[2].pidfile, "/run/app.pid");
	assert_int_equal(r[2].sig, SIGHUP);
	assert_true(r[2].allow_unsafe_dir);
	assert_int_equal(r[2].method, ROTATE_RENAME);
	config_free(c);

	expect_ok(f, "state_dir: /x\n", &c);
	assert_int_equal(c->rotate_interval_us, 60000000);
	assert_int_equal(c->nrotate, 0);
	config_free(c);
}

static void test_rotate_errors(void **state)
{
	struct fx *f = *state;
	expect_errors(f, "rotate:\n  - {path: /l/*.log, compres_after: 7d}\n",
		      "2:22: unknown key 'compres_after' in rotate entry '/l/*.log'; expected one "
		      "of: path, compress_after, delete_after, max_size, max_age, method, keep, "
		      "dateext, level, min_size, signal, allow_unsafe_dir\n"
		      "2:5: rotate entry '/l/*.log' does nothing: set compress_after, delete_after, "
		      "max_size or max_age\n");
	expect_errors(f, "rotate:\n  - {path: /l/*.log, compress_after: 7days}\n",
		      "2:38: invalid duration '7days' for 'compress_after'; expected a number with a "
		      "unit: us, ms, s, m, h, d, w (e.g. 30s, 5m, 4h)\n");
	expect_errors(f, "rotate:\n  - {path: /l/a.log, max_size: 5 parsecs}\n",
		      "2:32: invalid size '5 parsecs' for 'max_size'; expected a number of bytes "
		      "with an optional unit: B, KB, MB, GB, KiB, MiB, GiB (e.g. 500MB)\n");
	expect_errors(f, "rotate:\n  - {path: /l/a.log, max_size: 0}\n",
		      "2:32: 'max_size' must be at least 1 bytes\n");
	expect_errors(f, "rotate:\n  - {path: /l/a.log, max_size: 1MB, method: move}\n",
		      "2:45: invalid method 'move'; expected 'rename' or 'copytruncate'\n");
	expect_errors(f, "rotate:\n  - {path: /l/a.log, max_size: 1MB, keep: -1}\n",
		      "2:43: invalid value '-1' for 'keep'; expected a whole number from 0 to "
		      "100000\n");
	expect_errors(f, "rotate:\n  - {path: /l/*.gz, delete_after: 1d, level: 10}\n",
		      "2:46: invalid value '10' for 'level'; expected a whole number from 1 to 9\n");
	expect_errors(f, "rotate:\n  - {path: /l/a.log, max_age: 0s}\n",
		      "2:31: 'max_age' must be more than 0\n");
	expect_errors(f, "rotate:\n  - {path: /l/a.log, max_size: 1MB, signal: {sig: USR1}}\n",
		      "2:45: 'signal' needs 'pidfile' (the file holding the process id of the writer "
		      "to signal, e.g. /run/nginx.pid)\n");
	expect_errors(f,
		      "rotate:\n  - {path: /l/a.log, max_size: 1MB, signal: {pidfile: /p, sig: KILL}}\n",
		      "2:64: unknown signal 'KILL' for 'sig'; expected one of: USR1, USR2, HUP, INT, "
		      "TERM, WINCH\n");
	expect_errors(f,
		      "rotate:\n"
		      "  - {path: /l/a.log, max_size: 1MB, method: copytruncate, signal: {pidfile: /p}}\n",
		      "2:67: 'signal' goes with method 'rename' (a copytruncate leaves the writer's "
		      "file in place: nothing to reopen)\n");
	expect_errors(f, "rotate:\n  - {path: /l/*.log, delete_after: 1d, keep: 3, dateext: true}\n",
		      "2:46: 'keep' applies to the rotation of live files: set 'max_size' or "
		      "'max_age' too\n"
		      "2:58: 'dateext' applies to the rotation of live files: set 'max_size' or "
		      "'max_age' too\n");
	expect_errors(f, "rotate:\n  - {path: /var/log/../etc/*, delete_after: 1d}\n",
		      "2:12: rotate path '/var/log/../etc/*': the path holds '..' (a rule stays "
		      "inside the directory it names)\n");
	expect_errors(f, "rotate:\n  - {path: '/var/*/a.log', delete_after: 1d}\n",
		      "2:12: rotate path '/var/*/a.log': only the last component of the path may "
		      "be a glob\n");
	expect_errors(f, "rotate:\n  - {delete_after: 1d}\n",
		      "2:5: rotate entry is missing 'path' (the files it applies to)\n");
	expect_errors(f, "rotate:\n  - /var/log/*.log\n",
		      "2:5: expected a mapping for each entry of 'rotate', found a scalar\n");
	expect_errors(f, "rotate: {path: x}\n", "1:9: expected a list for 'rotate', found a mapping\n");
	expect_errors(f, "rotate_interval: never\n",
		      "1:18: invalid duration 'never' for 'rotate_interval'; expected a number with "
		      "a unit: us, ms, s, m, h, d, w (e.g. 30s, 5m, 4h)\n");
	expect_errors(f, "rotate_interval: 0s\n", "1:18: 'rotate_interval' must be more than 0\n");
	expect_errors(f, "rotate:\n  - {path: /l/a.log, max_size: 1MB, dateext: maybe}\n",
		      "2:46: invalid value 'maybe' for 'dateext'; expected true or false\n");
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_full),
		T(test_defaults),
		T(test_env),
		T(test_top_level),
		T(test_rotate_config),
		T(test_rotate_errors),
		T(test_redis_config),
		T(test_redis_errors),
		T(test_rule_files),
		T(test_rule_files_dir_metachars),
		T(test_source_errors),
		T(test_multiline),
		T(test_parser_errors),
		T(test_sink_errors),
		T(test_notify_full),
		T(test_notify_defaults),
		T(test_notify_errors),
		T(test_notifier_errors),
		T(test_find),
		T(test_load_mem),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
