/*
 * test_probe_config.c — `probes:` in src/config.c: a valid entry of every
 * kind with its defaults, the stand-in parser rules resolve probe fields
 * with, and every problem the loader reports, each as the exact
 * "FILE:LINE:COL: message" the user sees (a connection string is never
 * shown: it may hold a password).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/kl.h"
#include "src/config.h"

static char *out;
static size_t outlen;

/* Load text (named "k.yml"); the reports are in out. */
static int load(const char *text, struct config **c)
{
	FILE *f = open_memstream(&out, &outlen);
	assert_non_null(f);
	struct kl_diag d = { .out = f };
	*c = NULL;
	int rc = config_load_mem("k.yml", text, strlen(text), c, &d);
	fclose(f);
	return rc;
}

static void expect_errors(const char *text, const char *want)
{
	struct config *c;
	int rc = load(text, &c);
	struct kl_buf exp = { 0 };
	for (const char *p = want; *p;) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) + 1 : strlen(p);
		kl_buf_appendf(&exp, "k.yml:%.*s", (int)n, p);
		p += n;
	}
	assert_string_equal(out, exp.p);
	assert_int_equal(rc, -EINVAL);
	assert_null(c);
	kl_buf_free(&exp);
	free(out);
	out = NULL;
}

static void test_valid(void **state)
{
	char secret[] = "/tmp/test_probe_config.XXXXXX";
	int fd = mkstemp(secret);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "host=db user=k password=s3cr3t\n", 31), 31);
	close(fd);
	struct kl_buf text = { 0 };
	kl_buf_appendf(&text,
		       "probes:\n"
		       "  - {name: web, http: 'https://web:8000/healthz', interval: 30s, timeout: 5s,\n"
		       "     tls_verify: false, ca_file: /etc/ca.pem}\n"
		       "  - {name: pgport, tcp: 'db:5432'}\n"
		       "  - {name: disk, disk: /var/lib/postgresql/data, interval: 60s}\n"
		       "  - {name: db, postgres: 'host=db dbname=d', interval: 15s}\n"
		       "  - {name: db2, postgres_file: %s}\n"
		       "  - {name: cache, redis: 'redis://redis:6379/0', interval: 200ms}\n"
		       "  - {name: host, host: true, interval: 30s}\n"
		       "  - {name: backups, file: '/backups/daily_*.sql.gz', interval: 5m}\n",
		       secret);
	struct config *c;
	assert_int_equal(load(text.p, &c), 0);
	assert_string_equal(out, "");
	free(out);
	out = NULL;
	assert_int_equal(c->nprobes, 8);
	assert_int_equal(c->probes[0].kind, INGEST_PROBE_HTTP);
	assert_true(c->probes[0].tls_insecure);
	assert_string_equal(c->probes[0].ca_file, "/etc/ca.pem");
	assert_int_equal(c->probes[1].interval_us, 30000000); /* default */
	assert_int_equal(c->probes[1].timeout_us, 5000000);
	assert_int_equal(c->probes[4].kind, INGEST_PROBE_POSTGRES);
	assert_string_equal(c->probes[4].target, "host=db user=k password=s3cr3t");
	assert_int_equal(c->probes[5].timeout_us, 200000); /* at most the interval */
	assert_int_equal(c->probes[6].kind, INGEST_PROBE_HOST);
	const struct config_probe *b = config_probe_by_name(c, "backups");
	assert_non_null(b);
	assert_int_equal(b->interval_us, 300000000);
	/* the stand-in parser: the kind's fields, typed */
	const struct parser *p = b->parser;
	assert_int_equal(parser_field_count(p), 7);
	int age = parser_field_index(p, "age", 3);
	assert_true(age >= 0);
	assert_int_equal(parser_field_type(p, (unsigned)age), PARSER_T_SECONDS);
	assert_int_equal(parser_field_type(p, (unsigned)parser_field_index(p, "path", 4)),
			 PARSER_T_STRING);
	assert_int_equal(parser_field_index(p, "cert_days_left", 14), -1);
	assert_true(parser_field_index(c->probes[0].parser, "cert_days_left", 14) >= 0);
	config_free(c);
	kl_buf_free(&text);
	unlink(secret);
}

static void test_errors(void **state)
{
	expect_errors("probes:\n  - {name: web, htp: 'https://x/'}\n",
		      "2:17: unknown key 'htp' in probe 'web'; expected one of: name, http, tcp, "
		      "disk, postgres, postgres_file, redis, host, file, interval, timeout, "
		      "tls_verify, ca_file\n"
		      "2:5: probe 'web' has no kind; expected one of: http, tcp, disk, postgres, "
		      "postgres_file, redis, host, file (e.g. {name: web, http: "
		      "'https://web:8000/healthz'})\n");
	expect_errors("probes:\n  - {name: x, http: 'https://x/', tcp: 'x:1'}\n",
		      "2:35: probe 'x' has two kinds, 'http' (line 2) and 'tcp'; one probe checks "
		      "one thing: make it two entries\n");
	expect_errors("probes:\n  - {name: x, tcp: 'x:1', interval: 5 minutes}\n",
		      "2:37: invalid duration '5 minutes' for 'interval'; expected a number with a "
		      "unit: us, ms, s, m, h, d, w (e.g. 30s, 5m, 4h)\n");
	expect_errors("probes:\n  - {name: x, tcp: 'x:1', interval: 10ms}\n",
		      "2:37: probe 'x': 'interval' must be at least 100ms\n");
	expect_errors("probes:\n  - {name: x, tcp: 'x:1', interval: 0s}\n",
		      "2:37: 'interval' must be more than 0\n");
	expect_errors("probes:\n  - {name: x, tcp: 'x:1', interval: 5s, timeout: 10s}\n",
		      "2:50: probe 'x': 'timeout' (10s) is longer than 'interval' (5s)\n");
	expect_errors("probes:\n  - {name: x, tcp: db}\n",
		      "2:20: probe 'x': invalid value 'db' for 'tcp': expected HOST:PORT (e.g. "
		      "db:5432, [::1]:6379)\n");
	expect_errors("probes:\n  - {name: x, http: 'ftp://x/'}\n",
		      "2:21: probe 'x': invalid value 'ftp://x/' for 'http': expected a URL starting "
		      "with http:// or https://\n");
	expect_errors("probes:\n  - {name: x, host: false}\n",
		      "2:21: probe 'x': 'host' takes true (the host or container klaxon runs in)\n");
	expect_errors("probes:\n  - {name: x, disk: /d, tls_verify: false}\n",
		      "2:37: probe 'x': 'tls_verify' is only for http probes\n");
	expect_errors("probes:\n  - {name: x, postgres_file: /nonexistent/dsn}\n",
		      "2:30: cannot read the secret for 'postgres_file' from '/nonexistent/dsn': No "
		      "such file or directory\n");
	expect_errors("probes:\n  - {http: 'http://x/'}\n", "2:5: probe is missing 'name'\n");
	expect_errors("probes:\n  - {name: 'a b', disk: /}\n",
		      "2:12: invalid probe name 'a b'; use 1 to 64 letters, digits, '_' and '-'\n");
	expect_errors("probes: {a: 1}\n", "1:9: expected a list for 'probes', found a mapping\n");
	expect_errors("probes:\n  - x\n",
		      "2:5: expected a mapping for each entry of 'probes', found a scalar\n");
	expect_errors("probes:\n  - {name: d, disk: /}\n  - {name: d, host: true}\n",
		      "3:12: duplicate probe name 'd' (first at line 2)\n");
	expect_errors("sources:\n  - {name: nginx, path: /x, parser: nginx_timed}\n"
		      "probes:\n  - {name: nginx, http: 'http://x/'}\n",
		      "4:12: probe name 'nginx' is also a source's (line 2); rules name both by "
		      "`source:`, so each name must be unique\n");
}

/* A connection string may hold a password: never in a message. */
static void test_secret_not_shown(void **state)
{
	struct config *c;
	setenv("KL_TEST_DSN", "password=hunter2", 1);
	assert_int_equal(load("probes:\n  - {name: db, postgres: '${KL_TEST_DSN}', tls_verify: "
			      "true}\n",
			      &c),
			 -EINVAL);
	assert_null(strstr(out, "hunter2"));
	free(out);
	out = NULL;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_secret_not_shown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
