/*
 * bench_parsers.c — microbenchmark of the nginx_timed parser on one core.
 *
 *   bench_parsers [LINES [FILE]]
 *
 * Without FILE, generates LINES (default 1,000,000) varied nginx_timed lines in
 * memory (a thousand lines per second of event time, some upstream lists, some
 * rejected requests); with FILE, uses its lines instead (e.g. gen_nginx output).
 * Then parses them all, several passes, and prints lines/s for parsing alone
 * and for parsing plus reading status, request_time and upstream_response_time
 * as numbers (what a rule does), by wall time and by the thread's CPU time (the
 * latter is the fairer number on a busy machine). Not a test: numbers, not
 * verdicts.
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

static const char *const paths[] = {
	"/api/debts", "/api/debts/8812/payments?page=2", "/static/app.3f9c1.js",
	"/static/css/main.css", "/login/", "/healthz", "/api/profile", "/wp-login.php",
	"/api/debts/search?q=car%20loan&sort=-amount", "/favicon.ico",
};
static const char *const agents[] = {
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
	"curl/7.88.1", "Docker-HealthCheck/1.0",
	"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
};
static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
				      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

static void generate(struct kl_buf *b, size_t n)
{
	int64_t t = 1699999000; /* 2023-11-14T22:56:40Z */
	for (size_t i = 0; i < n; i++) {
		if (i % 1000 == 999)
			t++;
		int64_t days = t / 86400, s = t % 86400;
		/* civil date of days (Hinnant) */
		int64_t z = days + 719468, era = z / 146097, doe = z - era * 146097;
		int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
		int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
		int d = (int)(doy - (153 * mp + 2) / 5 + 1), m = (int)(mp < 10 ? mp + 3 : mp - 9);
		int y = (int)(yoe + era * 400 + (m <= 2));
		uint32_t r = rnd();
		unsigned status = (const unsigned[]){ 200, 200, 200, 200, 304, 302, 404, 502 }[r % 8];
		unsigned rt = rnd() % 2500;
		char urt[64];
		if (r % 5 == 0)
			snprintf(urt, sizeof urt, "-");
		else if (r % 97 == 0)
			snprintf(urt, sizeof urt, "0.%03u, 0.%03u", rt % 1000, (rt / 3) % 1000);
		else
			snprintf(urt, sizeof urt, "%u.%03u", rt / 1000, rt % 1000);
		const char *req_fmt = r % 501 == 0 ? "\"\\x16\\x03\\x01\\x00\\xFA\\x01\\x00\\x00\"" : NULL;
		char req[256];
		if (req_fmt)
			snprintf(req, sizeof req, "%s", req_fmt);
		else
			snprintf(req, sizeof req, "\"%s %s HTTP/1.1\"", r % 7 == 0 ? "POST" : "GET",
				 paths[rnd() % KL_ARRAY_LEN(paths)]);
		kl_buf_appendf(b,
			       "%u.%u.%u.%u - - [%02d/%s/%04d:%02d:%02d:%02d +0000] %s %u %u \"%s\" \"%s\" rt=%u.%03u urt=\"%s\"\n",
			       10 + r % 200, (r >> 8) % 256, (r >> 16) % 256, 1 + (r >> 24) % 250, d,
			       months[m - 1], y, (int)(s / 3600), (int)(s / 60 % 60), (int)(s % 60),
			       req, status, rnd() % 50000,
			       r % 3 ? "https://debts.example.com/dashboard" : "-",
			       agents[rnd() % KL_ARRAY_LEN(agents)], rt / 1000, rt % 1000, urt);
	}
}

static double now_s(clockid_t clk)
{
	struct timespec ts;
	clock_gettime(clk, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	size_t n = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 1000000;
	struct kl_buf buf = { 0 };
	char err[256];

	if (argc > 2) {
		char *data;
		size_t len;
		if (kl_read_file(argv[2], (size_t)1 << 31, &data, &len) < 0) {
			fprintf(stderr, "bench_parsers: cannot read %s\n", argv[2]);
			return 1;
		}
		buf.p = data;
		buf.len = len;
		buf.cap = len + 1;
	} else {
		generate(&buf, n ? n : 1);
	}

	/* split into lines once, outside the timing */
	size_t nl = 0, cap = 1024;
	struct kl_str *lines = malloc(cap * sizeof *lines);
	for (size_t i = 0; i < buf.len && lines;) {
		const char *e = memchr(buf.p + i, '\n', buf.len - i);
		size_t l = e ? (size_t)(e - (buf.p + i)) : buf.len - i;
		if (nl == cap) {
			cap *= 2;
			struct kl_str *nlines = realloc(lines, cap * sizeof *lines);
			if (!nlines) {
				free(lines);
				lines = NULL;
				break;
			}
			lines = nlines;
		}
		lines[nl++] = (struct kl_str){ buf.p + i, l };
		i += l + 1;
	}
	if (!lines) {
		fprintf(stderr, "bench_parsers: out of memory\n");
		return 1;
	}

	struct parser_spec spec = { .name = "nginx", .type = "nginx_timed" };
	struct parser *p = parser_new(&spec, err, sizeof err, NULL);
	if (!p) {
		fprintf(stderr, "bench_parsers: %s\n", err);
		return 1;
	}
	int st = parser_field_index(p, "status", 6), rt = parser_field_index(p, "request_time", 12),
	    urt = parser_field_index(p, "upstream_response_time", 22);
	struct parser_event ev;
	parser_event_init(&ev, p);

	for (int mode = 0; mode < 2; mode++) {
		double best = 0, best_cpu = 0, sink = 0;
		size_t ok = 0;
		for (int pass = 0; pass < 5; pass++) {
			double t0 = now_s(CLOCK_MONOTONIC), c0 = now_s(CLOCK_THREAD_CPUTIME_ID);
			ok = 0;
			for (size_t i = 0; i < nl; i++) {
				if (parser_parse(p, lines[i].p, lines[i].len, 0, &ev) < 0)
					continue;
				ok++;
				if (mode == 1) {
					double v;
					if (parser_event_number(&ev, (unsigned)st, &v) == 0)
						sink += v;
					if (parser_event_number(&ev, (unsigned)rt, &v) == 0)
						sink += v;
					if (parser_event_number(&ev, (unsigned)urt, &v) == 0)
						sink += v;
				}
			}
			double dt = now_s(CLOCK_MONOTONIC) - t0, rate = (double)nl / dt;
			double cpu = (double)nl / (now_s(CLOCK_THREAD_CPUTIME_ID) - c0);
			if (rate > best)
				best = rate;
			if (cpu > best_cpu)
				best_cpu = cpu;
		}
		printf("nginx_timed %-17s %zu lines (%zu parsed): %.2f M lines/s wall, %.2f M lines/s per CPU second (best of 5)%s\n",
		       mode ? "parse+3 numbers:" : "parse:", nl, ok, best / 1e6, best_cpu / 1e6,
		       sink == -1 ? " " : "");
	}
	const struct parser_stats *s = parser_stats(p);
	printf("stats: parsed %llu, unmatched %llu, bad_time %llu\n",
	       (unsigned long long)s->parsed, (unsigned long long)s->unmatched,
	       (unsigned long long)s->bad_time);
	parser_free(p);
	free(lines);
	kl_buf_free(&buf);
	return 0;
}
