/*
 * bench_formats.c — events/s of every built-in format on one core.
 *
 *   bench_formats [RECORDS [FORMAT]]
 *
 * For each format (or the one named), generates RECORDS (default 500,000)
 * realistic records in memory — what the Debt Profile stack writes, shaped
 * after the samples in tests/data/ — then parses them all, several passes,
 * and prints records/s and MB/s for parsing, and for parsing plus reading
 * the fields a rule reads (numbers converted, strings touched), by the
 * thread's CPU time (best of 5); then, with the derived field `signature`
 * registered, parsing again: ns/event without and with it, and the
 * difference (its cost per event). Records are whole multi-line records, as the
 * multi-line assembler hands them over. Not a test: numbers, not verdicts.
 *
 *   django         the default format; 1 % tracebacks (some chained, some
 *                  psycopg2's two-line OperationalError), 3 % two-line messages
 *   gunicorn_access gunicorn's default access format
 *   postgres       '%m [%p] %q%u@%d '; mostly duration lines, connections,
 *                  some multi-line statements, ERRORs with DETAIL/STATEMENT,
 *                  FATALs with DETAIL
 *   json           structured app logs: nested keys, a few escapes, numbers;
 *                  six registered fields (one declared ms)
 *   postgres_json  jsonlog, the same mix as postgres
 *   nginx_timed    for comparison with bench_parsers
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/kl.h"
#include "parsers/parsers.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 11);
}

#define PICK(a) ((a)[rnd() % KL_ARRAY_LEN(a)])

static const char *const paths[] = {
	"/api/debts", "/api/debts/8812/payments?page=2", "/static/app.3f9c1.js",
	"/login/", "/healthz", "/api/profile", "/api/debts/search?q=car%20loan&sort=-amount",
};
static const char *const agents[] = {
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
	"curl/7.88.1", "Docker-HealthCheck/1.0",
};
static const char *const loggers[] = { "debts.views", "debts.api", "django.request",
				       "debts.payments", "django.db.backends", "celery.worker" };
static const char *const infos[] = {
	"listed 12 debts for user alice", "payment 88123 accepted for debt 8812",
	"recomputed the schedule of debt 431 in 0.042s", "user 77 logged in",
	"export of 1200 rows finished", "cache miss for profile:77",
};
static const char *const queries[] = {
	"SELECT \"debts_debt\".\"id\", \"debts_debt\".\"amount\" FROM \"debts_debt\" WHERE \"debts_debt\".\"owner_id\" = 77 ORDER BY \"debts_debt\".\"due\" ASC LIMIT 21",
	"UPDATE \"debts_payment\" SET \"state\" = 'accepted' WHERE \"debts_payment\".\"id\" = 88123",
	"SELECT 1", "BEGIN", "COMMIT",
	"INSERT INTO \"debts_event\" (\"debt_id\", \"kind\", \"at\") VALUES (8812, 'payment', '2026-11-25T14:18:33.665000+00:00'::timestamptz) RETURNING \"debts_event\".\"id\"",
};
static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
				      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

struct tm_utc {
	int y, m, d, H, M, S;
};

static struct tm_utc civil(int64_t t)
{
	int64_t days = t / 86400, s = t % 86400;
	int64_t z = days + 719468, era = z / 146097, doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
	struct tm_utc r;
	r.d = (int)(doy - (153 * mp + 2) / 5 + 1);
	r.m = (int)(mp < 10 ? mp + 3 : mp - 9);
	r.y = (int)(yoe + era * 400 + (r.m <= 2));
	r.H = (int)(s / 3600);
	r.M = (int)(s / 60 % 60);
	r.S = (int)(s % 60);
	return r;
}

/* Records are stored one after the other, each followed by a NUL (not part
 * of it); recs[] are views. */
struct set {
	struct kl_buf buf;
	size_t *off, *len, n;
};

static void add(struct set *s, size_t start)
{
	s->off[s->n] = start;
	s->len[s->n] = s->buf.len - start;
	s->n++;
	kl_buf_append(&s->buf, "\0", 1);
}

static const char traceback[] =
	"Traceback (most recent call last):\n"
	"  File \"/usr/lib/python3/dist-packages/django/core/handlers/exception.py\", line 47, in inner\n"
	"    response = get_response(request)\n"
	"               ^^^^^^^^^^^^^^^^^^^^^\n"
	"  File \"/usr/lib/python3/dist-packages/django/core/handlers/base.py\", line 181, in _get_response\n"
	"    response = wrapped_callback(request, *callback_args, **callback_kwargs)\n"
	"               ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
	"  File \"/srv/debts/app/views.py\", line 88, in pay\n"
	"    schedule = debt.schedule(amount)\n";

static void gen_django(struct set *s, size_t n)
{
	int64_t t = 1795616313;
	for (size_t i = 0; i < n; i++) {
		if (i % 1000 == 999)
			t++;
		struct tm_utc c = civil(t);
		uint32_t r = rnd() % 1000;
		size_t start = s->buf.len;
		const char *lvl = r < 900 ? "INFO" : r < 960 ? "WARNING" : "ERROR";
		kl_buf_appendf(&s->buf, "%04d-%02d-%02d %02d:%02d:%02d,%03u %s %s %u ", c.y, c.m, c.d,
			       c.H, c.M, c.S, (unsigned)(i % 1000), lvl, PICK(loggers),
			       4100 + rnd() % 8);
		if (r < 900) {
			kl_buf_append_str(&s->buf, PICK(infos));
		} else if (r < 930) {
			kl_buf_append_str(&s->buf, "slow payment provider: 3.2s\nretrying with backup");
		} else if (r < 960) {
			kl_buf_appendf(&s->buf, "Not Found: %s", PICK(paths));
		} else if (r < 990) {
			kl_buf_append_str(&s->buf, "payment provider answered 502");
		} else if (r < 995) {
			kl_buf_appendf(&s->buf, "Internal Server Error: /api/debts/%u/pay\n%s"
						"ValueError: amount must be positive, got -3",
				       rnd() % 10000, traceback);
		} else {
			kl_buf_appendf(&s->buf,
				       "Internal Server Error: /api/debts\n%s"
				       "psycopg2.OperationalError: connection to server at \"db\" (172.18.0.3), port 5432 failed: Connection refused\n"
				       "\tIs the server running on that host and accepting TCP/IP connections?\n\n\n"
				       "The above exception was the direct cause of the following exception:\n\n%s"
				       "django.db.utils.OperationalError: connection to server at \"db\" (172.18.0.3), port 5432 failed: Connection refused\n"
				       "\tIs the server running on that host and accepting TCP/IP connections?",
				       traceback, traceback);
		}
		add(s, start);
	}
}

static void gen_access(struct set *s, size_t n, bool timed)
{
	int64_t t = 1795616313;
	for (size_t i = 0; i < n; i++) {
		if (i % 1000 == 999)
			t++;
		struct tm_utc c = civil(t);
		uint32_t r = rnd();
		unsigned status = (const unsigned[]){ 200, 200, 200, 200, 304, 302, 404, 500 }[r % 8];
		size_t start = s->buf.len;
		kl_buf_appendf(&s->buf,
			       "%u.%u.%u.%u - %s [%02d/%s/%04d:%02d:%02d:%02d +0000] \"%s %s HTTP/1.1\" %u %u \"%s\" \"%s\"",
			       10 + r % 200, (r >> 8) % 256, (r >> 16) % 256, 1 + (r >> 24) % 250,
			       r % 13 ? "-" : "bob", c.d, months[c.m - 1], c.y, c.H, c.M, c.S,
			       r % 7 ? "GET" : "POST", PICK(paths), status, rnd() % 50000,
			       r % 3 ? "https://debts.example.com/dashboard" : "-", PICK(agents));
		if (timed) {
			unsigned rt = rnd() % 2500;
			kl_buf_appendf(&s->buf, " rt=%u.%03u urt=\"%u.%03u\"", rt / 1000, rt % 1000,
				       rt / 1000, rt % 1000);
		}
		add(s, start);
	}
}

/* One PostgreSQL report: the severity, message and secondary lines. */
struct pg_report {
	const char *sev;
	char msg[512];
	const char *detail, *hint, *context, *statement;
	bool session;
};

static void pg_report(struct pg_report *rep, size_t i)
{
	uint32_t r = rnd() % 1000;
	memset(rep, 0, sizeof *rep);
	rep->sev = "LOG";
	rep->session = true;
	if (r < 850) {
		unsigned ms = rnd() % 100000;
		const char *q = r < 20 ? "SELECT count(*) AS n,\n\t       max(v) AS top\n\tFROM t\n\tWHERE id > 0;"
				       : PICK(queries);
		snprintf(rep->msg, sizeof rep->msg, "duration: %u.%03u ms  statement: %s", ms / 1000,
			 ms % 1000, q);
	} else if (r < 930) {
		snprintf(rep->msg, sizeof rep->msg, r % 2 ? "connection authorized: user=app database=debts application_name=debts-web"
							  : "disconnection: session time: 0:00:00.0%02u user=app database=debts host=172.18.0.4 port=4%04u",
			 (unsigned)(i % 100), (unsigned)(i % 10000));
	} else if (r < 960) {
		rep->session = false;
		snprintf(rep->msg, sizeof rep->msg, "checkpoint complete: wrote %u buffers (0.0%%); 0 WAL file(s) added, 0 removed, 0 recycled; write=0.003 s, sync=0.002 s, total=0.010 s; sync files=2, longest=0.001 s, average=0.001 s; distance=7 kB, estimate=%u kB",
			 rnd() % 5000, rnd() % 100000);
	} else if (r < 985) {
		rep->sev = "ERROR";
		snprintf(rep->msg, sizeof rep->msg, "duplicate key value violates unique constraint \"debts_payment_pkey\"");
		rep->detail = "Key (id)=(88123) already exists.";
		rep->statement = PICK(queries);
	} else {
		rep->sev = "FATAL";
		snprintf(rep->msg, sizeof rep->msg, "password authentication failed for user \"app\"");
		rep->detail = "Connection matched pg_hba.conf line 100: \"host all all all scram-sha-256\"";
	}
}

static void gen_postgres(struct set *s, size_t n)
{
	int64_t t = 1795616313;
	struct pg_report rep;
	for (size_t i = 0; i < n; i++) {
		if (i % 1000 == 999)
			t++;
		struct tm_utc c = civil(t);
		char prefix[96];
		unsigned pid = 4100 + rnd() % 64;
		pg_report(&rep, i);
		snprintf(prefix, sizeof prefix, "%04d-%02d-%02d %02d:%02d:%02d.%03u UTC [%u] %s", c.y,
			 c.m, c.d, c.H, c.M, c.S, (unsigned)(i % 1000), pid,
			 rep.session ? "app@debts " : "");
		size_t start = s->buf.len;
		kl_buf_appendf(&s->buf, "%s%s:  %s", prefix, rep.sev, rep.msg);
		if (rep.detail)
			kl_buf_appendf(&s->buf, "\n%sDETAIL:  %s", prefix, rep.detail);
		if (rep.statement)
			kl_buf_appendf(&s->buf, "\n%sSTATEMENT:  %s", prefix, rep.statement);
		add(s, start);
	}
}

static void json_str(struct kl_buf *b, const char *s)
{
	kl_json_append_str(b, s, strlen(s));
}

static void gen_pgjson(struct set *s, size_t n)
{
	int64_t t = 1795616313;
	struct pg_report rep;
	for (size_t i = 0; i < n; i++) {
		if (i % 1000 == 999)
			t++;
		struct tm_utc c = civil(t);
		pg_report(&rep, i);
		size_t start = s->buf.len;
		kl_buf_appendf(&s->buf, "{\"timestamp\":\"%04d-%02d-%02d %02d:%02d:%02d.%03u UTC\",",
			       c.y, c.m, c.d, c.H, c.M, c.S, (unsigned)(i % 1000));
		if (rep.session)
			kl_buf_append_str(&s->buf, "\"user\":\"app\",\"dbname\":\"debts\",");
		kl_buf_appendf(&s->buf, "\"pid\":%u,", 4100 + rnd() % 64);
		if (rep.session)
			kl_buf_appendf(&s->buf, "\"remote_host\":\"172.18.0.4\",\"remote_port\":4%04u,",
				       (unsigned)(i % 10000));
		kl_buf_appendf(&s->buf, "\"session_id\":\"6b06ee08.%x\",\"line_num\":%u,", 3500 + rnd() % 64,
			       rnd() % 100);
		if (rep.session)
			kl_buf_append_str(&s->buf, "\"ps\":\"SELECT\",");
		kl_buf_appendf(&s->buf, "\"session_start\":\"%04d-%02d-%02d %02d:%02d:%02d UTC\",", c.y,
			       c.m, c.d, c.H, c.M, c.S);
		if (rep.session)
			kl_buf_append_str(&s->buf, "\"vxid\":\"3/19\",");
		kl_buf_appendf(&s->buf, "\"txid\":0,\"error_severity\":\"%s\",", rep.sev);
		if (strcmp(rep.sev, "LOG") != 0)
			kl_buf_append_str(&s->buf, "\"state_code\":\"23505\",");
		kl_buf_append_str(&s->buf, "\"message\":");
		json_str(&s->buf, rep.msg);
		if (rep.detail) {
			kl_buf_append_str(&s->buf, ",\"detail\":");
			json_str(&s->buf, rep.detail);
		}
		if (rep.statement) {
			kl_buf_append_str(&s->buf, ",\"statement\":");
			json_str(&s->buf, rep.statement);
		}
		if (rep.session)
			kl_buf_append_str(&s->buf, ",\"application_name\":\"debts-web\",\"backend_type\":\"client backend\"");
		else
			kl_buf_append_str(&s->buf, ",\"backend_type\":\"checkpointer\"");
		kl_buf_append_str(&s->buf, ",\"query_id\":0}");
		add(s, start);
	}
}

static void gen_json(struct set *s, size_t n)
{
	int64_t t = 1795616313;
	for (size_t i = 0; i < n; i++) {
		if (i % 1000 == 999)
			t++;
		struct tm_utc c = civil(t);
		uint32_t r = rnd() % 100;
		unsigned status = (const unsigned[]){ 200, 200, 200, 201, 304, 404, 500, 502 }[rnd() % 8];
		unsigned ms = rnd() % 3000;
		size_t start = s->buf.len;
		kl_buf_appendf(&s->buf,
			       "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03uZ\",\"level\":\"%s\",\"logger\":\"%s\",",
			       c.y, c.m, c.d, c.H, c.M, c.S, (unsigned)(i % 1000),
			       r < 90 ? "info" : r < 97 ? "warning" : "error", PICK(loggers));
		kl_buf_append_str(&s->buf, "\"msg\":");
		if (r % 10 == 3)
			kl_buf_append_str(&s->buf, "\"payment \\\"88123\\\" refused:\\n\\tcard expired (caf\\u00e9 \\u20ac12)\"");
		else
			json_str(&s->buf, PICK(infos));
		kl_buf_appendf(&s->buf,
			       ",\"request_id\":\"%08x-%04x\",\"duration_ms\":%u.%u,"
			       "\"http\":{\"method\":\"%s\",\"path\":",
			       rnd(), rnd() % 65536, ms, rnd() % 10, r % 7 ? "GET" : "POST");
		json_str(&s->buf, PICK(paths));
		kl_buf_appendf(&s->buf, ",\"status\":%u,\"bytes\":%u},\"user\":{\"id\":%u,\"plan\":\"pro\"},"
					"\"tags\":[\"web\",\"eu-west-1\"]}",
			       status, rnd() % 50000, rnd() % 10000);
		add(s, start);
	}
}

static double cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct format {
	const char *name, *type, *option;
	void (*gen)(struct set *s, size_t n);
	const char *const *read; /* fields a rule reads */
	const struct parser_field_spec *types;
	size_t ntypes;
};

static void gen_gunicorn(struct set *s, size_t n)
{
	gen_access(s, n, false);
}

static void gen_nginx(struct set *s, size_t n)
{
	gen_access(s, n, true);
}

static const char *const read_django[] = { "level", "exception", "pid", NULL };
static const char *const read_access[] = { "status", "path", "bytes", NULL };
static const char *const read_pg[] = { "severity", "duration", "user", "pid", NULL };
static const char *const read_json[] = { "level", "msg", "http.status", "http.path", "duration_ms",
					 "user.id", NULL };
static const char *const read_nginx[] = { "status", "request_time", "upstream_response_time", NULL };
static const struct parser_field_spec json_types[] = { { "duration_ms", PARSER_T_MS },
						       { "http.status", PARSER_T_INT } };

static const struct format formats[] = {
	{ "django", "django", NULL, gen_django, read_django, NULL, 0 },
	{ "gunicorn_access", "gunicorn_access", NULL, gen_gunicorn, read_access, NULL, 0 },
	{ "postgres", "postgres", "%m [%p] %q%u@%d ", gen_postgres, read_pg, NULL, 0 },
	{ "json", "json", NULL, gen_json, read_json, json_types, KL_ARRAY_LEN(json_types) },
	{ "postgres_json", "postgres_json", NULL, gen_pgjson, read_pg, NULL, 0 },
	{ "nginx_timed", "nginx_timed", NULL, gen_nginx, read_nginx, NULL, 0 },
};

static int bench(const struct format *f, size_t n)
{
	char err[256];
	struct parser_spec spec = { .name = f->name, .type = f->type, .types = f->types,
				    .ntypes = f->ntypes };
	if (strcmp(f->type, "postgres") == 0)
		spec.log_line_prefix = f->option;
	struct parser *p = parser_new(&spec, err, sizeof err, NULL);
	if (!p) {
		fprintf(stderr, "bench_formats: %s: %s\n", f->name, err);
		return 1;
	}
	int idx[8];
	size_t nread = 0;
	for (; f->read[nread]; nread++) {
		idx[nread] = parser_field_index(p, f->read[nread], strlen(f->read[nread]));
		if (idx[nread] < 0) {
			fprintf(stderr, "bench_formats: %s: no field %s\n", f->name, f->read[nread]);
			return 1;
		}
	}
	struct set s = { 0 };
	s.off = malloc(n * sizeof *s.off);
	s.len = malloc(n * sizeof *s.len);
	if (!s.off || !s.len)
		return 1;
	f->gen(&s, n);
	size_t bytes = 0;
	for (size_t i = 0; i < s.n; i++)
		bytes += s.len[i] + 1;

	struct parser_event ev;
	parser_event_init(&ev, p);
	double best[3] = { 0, 0, 0 }, sink = 0;
	size_t ok = 0;
	for (int mode = 0; mode < 3; mode++) {
		/* mode 2: parsing with the signature (registering cannot be undone,
		 * so it comes last) */
		if (mode == 2 && parser_field_index(p, "signature", 9) < 0) {
			fprintf(stderr, "bench_formats: %s: no field signature\n", f->name);
			return 1;
		}
		for (int pass = 0; pass < 5; pass++) {
			double c0 = cpu_s();
			ok = 0;
			for (size_t i = 0; i < s.n; i++) {
				if (parser_parse(p, s.buf.p + s.off[i], s.len[i], 0, &ev) < 0)
					continue;
				ok++;
				if (mode != 1)
					continue;
				for (size_t k = 0; k < nread; k++) {
					double v;
					if (parser_event_number(&ev, (unsigned)idx[k], &v) == 0)
						sink += v;
					else if (ev.raw[idx[k]].p)
						sink += ev.raw[idx[k]].p[0];
				}
			}
			double rate = (double)s.n / (cpu_s() - c0);
			if (rate > best[mode])
				best[mode] = rate;
		}
	}
	printf("%-16s %8zu records %6.1f MB (%3.0f B/rec, %zu parsed): parse %6.2f M/s %6.0f MB/s | +read %zu fields %6.2f M/s%s\n",
	       f->name, s.n, (double)bytes / 1e6, (double)bytes / (double)s.n, ok, best[0] / 1e6,
	       best[0] * (double)bytes / (double)s.n / 1e6, nread, best[1] / 1e6,
	       sink == -1 ? " " : "");
	const struct parser_stats *st = parser_stats(p);
	printf("  signature: parse %6.1f ns/event, with signature %6.1f ns/event: +%5.1f ns/event (%llu signed, %llu cut)\n",
	       1e9 / best[0], 1e9 / best[2], 1e9 / best[2] - 1e9 / best[0],
	       (unsigned long long)st->signatures, (unsigned long long)st->signatures_cut);
	if (st->unmatched || st->bad_time)
		printf("  stats: parsed %llu, unmatched %llu, bad_time %llu\n",
		       (unsigned long long)st->parsed, (unsigned long long)st->unmatched,
		       (unsigned long long)st->bad_time);
	parser_free(p);
	kl_buf_free(&s.buf);
	free(s.off);
	free(s.len);
	return 0;
}

int main(int argc, char **argv)
{
	size_t n = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 500000;
	const char *only = argc > 2 ? argv[2] : NULL;
	int rc = 0;
	if (!n)
		n = 1;
	for (size_t i = 0; i < KL_ARRAY_LEN(formats); i++)
		if (!only || strcmp(only, formats[i].name) == 0)
			rc |= bench(&formats[i], n);
	return rc;
}
