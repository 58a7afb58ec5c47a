/*
 * gen_nginx.c — a deterministic generator of realistic nginx access-log lines
 * in klaxon's `nginx_timed` format:
 *
 *   log_format timed '$remote_addr - $remote_user [$time_local] "$request" '
 *                    '$status $body_bytes_sent "$http_referer" '
 *                    '"$http_user_agent" rt=$request_time urt="$upstream_response_time"';
 *
 * The traffic is that of the Debt Profile app behind nginx: static assets
 * served by nginx itself (urt "-", 200/304), the Django API and pages proxied
 * upstream (request_time lognormal around 80 ms with a heavy tail, urt close to
 * rt), logins and redirects (302), a docker health check, crawlers, scanners
 * probing for /wp-login.php (404), and now and then a request nginx rejected
 * before it had a request line (a TLS handshake on the HTTP port, an empty
 * connection, a bare word) logged with status 400.
 *
 * Determinism: one seeded PRNG (xoshiro256**) drives every choice, so the same
 * options give the same bytes. Event time advances by exponential gaps with
 * mean 1/--rate from --start; --live writes at --rate real lines per second
 * with the wall clock instead.
 *
 * Incidents (--incident START:DURATION:KIND:AMOUNT, offsets in seconds from
 * the start, repeatable, may overlap):
 *   5xx      AMOUNT (a share, 0.2 or 20%) of requests become 502/503/504
 *   slow     proxied requests' request_time is multiplied by AMOUNT
 *   silence  no lines at all for DURATION
 *
 * Speed: lines are assembled by hand into a large output buffer (no printf
 * per line); the time prefix is formatted once per second.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_START 1699999200LL /* 2023-11-14T22:00:00Z */
#define MAX_INCIDENTS 32
#define OUTBUF (1 << 20)
#define NCLIENTS 4096

/* ------------------------------------------------------------------ PRNG */

static uint64_t rs[4];

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t next_u64(void)
{
	uint64_t result = rotl(rs[1] * 5, 7) * 9;
	uint64_t t = rs[1] << 17;
	rs[2] ^= rs[0];
	rs[3] ^= rs[1];
	rs[1] ^= rs[2];
	rs[0] ^= rs[3];
	rs[2] ^= t;
	rs[3] = rotl(rs[3], 45);
	return result;
}

static void seed_rng(uint64_t seed)
{
	for (int i = 0; i < 4; i++) { /* splitmix64 */
		uint64_t z = (seed += 0x9e3779b97f4a7c15ULL);
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
		rs[i] = z ^ (z >> 31);
	}
}

/* uniform in [0, 1) */
static double uni(void)
{
	return (double)(next_u64() >> 11) * (1.0 / 9007199254740992.0);
}

/* uniform integer in [0, n) */
static uint32_t below(uint32_t n)
{
	return (uint32_t)(((next_u64() >> 32) * (uint64_t)n) >> 32);
}

static double gauss(void)
{
	static bool have;
	static double spare;
	if (have) {
		have = false;
		return spare;
	}
	double u, v, s;
	do {
		u = 2.0 * uni() - 1.0;
		v = 2.0 * uni() - 1.0;
		s = u * u + v * v;
	} while (s >= 1.0 || s == 0.0);
	double m = sqrt(-2.0 * log(s) / s);
	spare = v * m;
	have = true;
	return u * m;
}

/* lognormal with the given median and shape */
static double lognormal(double median, double sigma)
{
	return median * exp(sigma * gauss());
}

/* ------------------------------------------------------------------ output */

static char out[OUTBUF];
static size_t outlen;
static int outfd = 1;

static void flush_out(void)
{
	size_t off = 0;
	while (off < outlen) {
		ssize_t n = write(outfd, out + off, outlen - off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EPIPE)
				perror("gen_nginx: write");
			exit(errno == EPIPE ? 0 : 1);
		}
		off += (size_t)n;
	}
	outlen = 0;
}

/* Room for one line; the longest line we write is well under 2 KiB. */
static char *reserve(void)
{
	if (outlen > OUTBUF - 4096)
		flush_out();
	return out + outlen;
}

static char *put_s(char *p, const char *s)
{
	size_t n = strlen(s);
	memcpy(p, s, n);
	return p + n;
}

static char *put_u(char *p, uint64_t v)
{
	char tmp[24];
	int n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*p++ = tmp[--n];
	return p;
}

/* seconds with millisecond resolution, as nginx writes $request_time */
static char *put_ms(char *p, uint64_t ms)
{
	p = put_u(p, ms / 1000);
	*p++ = '.';
	unsigned f = (unsigned)(ms % 1000);
	*p++ = (char)('0' + f / 100);
	*p++ = (char)('0' + f / 10 % 10);
	*p++ = (char)('0' + f % 10);
	return p;
}

/* ------------------------------------------------------------------ time */

static long long cached_sec = -1;
static char time_str[40]; /* "14/Nov/2023:22:00:00 +0000" */

static const char *time_local(long long sec)
{
	if (sec != cached_sec) {
		static const char mon[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
						"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
		time_t t = (time_t)sec;
		struct tm tm;
		gmtime_r(&t, &tm);
		char *p = time_str;
		*p++ = (char)('0' + tm.tm_mday / 10);
		*p++ = (char)('0' + tm.tm_mday % 10);
		*p++ = '/';
		memcpy(p, mon[tm.tm_mon], 3);
		p += 3;
		*p++ = '/';
		p = put_u(p, (uint64_t)(tm.tm_year + 1900));
		*p++ = ':';
		int f[3] = {tm.tm_hour, tm.tm_min, tm.tm_sec};
		for (int i = 0; i < 3; i++) {
			*p++ = (char)('0' + f[i] / 10);
			*p++ = (char)('0' + f[i] % 10);
			*p++ = i < 2 ? ':' : ' ';
		}
		p = put_s(p, "+0000");
		*p = 0;
		cached_sec = sec;
	}
	return time_str;
}

/* ------------------------------------------------------------------ traffic */

static const char *const agents[] = {
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:120.0) Gecko/20100101 Firefox/120.0",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Mobile Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36 Edg/119.0.2151.58",
	"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/118.0.0.0 Safari/537.36",
	"DebtProfile/2.4.1 (iPhone; iOS 17.1; Scale/3.00)",
	"okhttp/4.11.0",
};
#define NAGENTS_HUMAN (sizeof agents / sizeof agents[0])
static const char *const bots[] = {
	"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
	"Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
	"Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
};
static const char *const scanners[] = {
	"Mozilla/5.0 zgrab/0.x",
	"python-requests/2.31.0",
	"Go-http-client/1.1",
	"curl/7.88.1",
	"-",
};
static const char *const scan_paths[] = {
	"/wp-login.php", "/.env", "/phpmyadmin/index.php", "/.git/config",
	"/admin/config.php", "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php",
	"/cgi-bin/luci/;stok=/locale", "/actuator/health", "/xmlrpc.php",
	"/index.php?s=/Index/\\x5Cthink\\x5Capp/invokefunction&function=call_user_func_array",
};
static const char *const referers[] = {
	"https://debtprofile.example.com/dashboard/",
	"https://debtprofile.example.com/debts/",
	"https://debtprofile.example.com/loans/",
	"https://debtprofile.example.com/accounts/login/?next=/dashboard/",
	"https://debtprofile.example.com/",
	"https://www.google.com/",
};

struct client {
	char ip[40];
	uint8_t agent; /* index into agents */
};
static struct client clients[NCLIENTS];

static void make_clients(void)
{
	/* Public-looking IPv4 addresses (first octets of big ISP blocks), a
	 * few IPv6 ones; each client keeps one browser. */
	static const unsigned first[] = {24, 31, 46, 62, 66, 73, 77, 81, 86, 89, 92, 98,
					 104, 109, 151, 176, 178, 185, 188, 203, 212, 217};
	for (int i = 0; i < NCLIENTS; i++) {
		char *p = clients[i].ip;
		if (below(100) < 4) { /* e.g. 2a02:c7c:1a2b:3c4d::5e6f */
			static const char hex[] = "0123456789abcdef";
			p = put_s(p, below(2) ? "2a02:c7c:" : "2600:1700:");
			for (int g = 0; g < 3; g++) {
				if (g == 2)
					*p++ = ':';
				for (int d = 0; d < 4; d++)
					*p++ = hex[d == 0 ? 1 + below(15) : below(16)];
				if (g < 2)
					*p++ = ':';
			}
			*p = 0;
		} else {
			p = put_u(p, first[below(sizeof first / sizeof first[0])]);
			for (int o = 0; o < 3; o++) {
				*p++ = '.';
				p = put_u(p, o == 2 ? 1 + below(254) : below(256));
			}
			*p = 0;
		}
		clients[i].agent = (uint8_t)below(NAGENTS_HUMAN);
	}
}

/* A skewed pick: a few clients make most of the requests. */
static const struct client *pick_client(void)
{
	double u = uni();
	return &clients[(int)(NCLIENTS * u * u * u)];
}

struct incident {
	double start, end; /* seconds from the start */
	enum { INC_5XX, INC_SLOW, INC_SILENCE } kind;
	double amount;
};
static struct incident incidents[MAX_INCIDENTS];
static int nincidents;

struct effects {
	double err_share; /* of requests turned into 5xx */
	double slow;	  /* request_time multiplier */
	double silent_until; /* > now: silence */
};

static void effects_at(double off, struct effects *e)
{
	e->err_share = 0;
	e->slow = 1;
	e->silent_until = -1;
	for (int i = 0; i < nincidents; i++) {
		const struct incident *in = &incidents[i];
		if (off < in->start || off >= in->end)
			continue;
		switch (in->kind) {
		case INC_5XX: e->err_share = 1 - (1 - e->err_share) * (1 - in->amount); break;
		case INC_SLOW: e->slow *= in->amount; break;
		case INC_SILENCE:
			if (in->end > e->silent_until)
				e->silent_until = in->end;
			break;
		}
	}
}

enum kind { K_STATIC, K_API, K_PAGE, K_HEALTH, K_BOT, K_SCAN };

struct req {
	const char *method;
	char path[256];
	const char *proto;
	int status;
	uint64_t bytes;
	double rt; /* seconds */
	enum kind kind;
	const char *agent;
	const char *referer;
	const char *ip;
};

static char *path_id(char *p, const char *pre, uint64_t id, const char *post)
{
	p = put_s(p, pre);
	p = put_u(p, id);
	p = put_s(p, post);
	*p = 0;
	return p;
}

/* The request mix of a normal minute. */
static void make_request(struct req *r)
{
	const struct client *c = pick_client();
	r->ip = c->ip;
	r->agent = agents[c->agent];
	r->referer = referers[below(5)];
	r->proto = below(100) < 70 ? "HTTP/1.1" : "HTTP/2.0";
	r->method = "GET";
	r->kind = K_API;
	r->status = 200;
	r->bytes = 0;
	double med = 0.080; /* upstream median, seconds */
	uint32_t w = below(1000);
	char *p = r->path;

	if (w < 190) { /* static assets, served by nginx */
		static const struct {
			const char *path;
			uint64_t size;
		} assets[] = {
			{"/static/js/app.4f9c2e1b.js", 184523},
			{"/static/css/app.91d0c7aa.css", 40211},
			{"/static/js/vendor.07bd51e3.js", 412876},
			{"/static/img/logo.svg", 3312},
			{"/static/fonts/inter-var.woff2", 48276},
			{"/favicon.ico", 15086},
		};
		uint32_t a = below(sizeof assets / sizeof assets[0]);
		put_s(p, assets[a].path)[0] = 0;
		r->kind = K_STATIC;
		if (below(100) < 38) {
			r->status = 304;
		} else {
			r->bytes = assets[a].size;
		}
		r->rt = below(100) < 80 ? 0 : 0.001 * (1 + below(4));
		return;
	}
	if (w < 310) {
		put_s(p, below(4) ? "/api/debts/" : "/api/debts/?ordering=-balance")[0] = 0;
		r->bytes = 900 + below(7000);
		r->referer = referers[1];
	} else if (w < 390) {
		path_id(p, "/api/debts/", 1000 + below(9000), "/");
		r->bytes = 350 + below(500);
		if (below(100) < 4) {
			r->status = 404;
			r->bytes = 23;
		}
		r->referer = referers[1];
	} else if (w < 415) {
		r->method = "POST";
		put_s(p, "/api/debts/")[0] = 0;
		r->status = below(100) < 91 ? 201 : 400;
		r->bytes = r->status == 201 ? 420 + below(200) : 96;
		med = 0.120;
	} else if (w < 430) {
		r->method = below(3) ? "PUT" : "PATCH";
		path_id(p, "/api/debts/", 1000 + below(9000), "/");
		r->bytes = 420 + below(200);
		med = 0.110;
	} else if (w < 435) {
		r->method = "DELETE";
		path_id(p, "/api/debts/", 1000 + below(9000), "/");
		r->status = 204;
	} else if (w < 525) {
		path_id(p, "/api/loans/", 100 + below(900), "/");
		r->bytes = 520 + below(900);
		if (below(100) < 3) {
			r->status = 404;
			r->bytes = 23;
		}
		r->referer = referers[2];
	} else if (w < 565) {
		path_id(p, "/api/loans/?page=", 1 + below(6), "");
		r->bytes = 2000 + below(6000);
		r->referer = referers[2];
	} else if (w < 620) {
		put_s(p, "/api/payments/?month=2023-11")[0] = 0;
		r->bytes = 700 + below(4000);
	} else if (w < 665) {
		put_s(p, "/api/summary/")[0] = 0;
		r->bytes = 1400 + below(300);
		med = 0.150;
	} else if (w < 700) {
		put_s(p, "/api/profile/")[0] = 0;
		r->bytes = 610 + below(40);
		if (below(100) < 3) {
			r->status = 401;
			r->bytes = 58;
		}
	} else if (w < 705) {
		r->method = "POST";
		put_s(p, "/api/debts/import/")[0] = 0;
		r->bytes = 180 + below(60);
		med = 0.900;
	} else if (w < 765) {
		r->kind = K_PAGE;
		put_s(p, "/dashboard/")[0] = 0;
		if (below(100) < 10) {
			r->status = 302;
		} else {
			r->bytes = 14000 + below(3000);
		}
		med = 0.095;
	} else if (w < 795) {
		r->kind = K_PAGE;
		put_s(p, "/")[0] = 0;
		r->status = 302;
		r->referer = below(2) ? "-" : referers[5];
		med = 0.012;
	} else if (w < 825) {
		r->kind = K_PAGE;
		put_s(p, "/accounts/login/?next=/dashboard/")[0] = 0;
		r->bytes = 5200 + below(200);
		med = 0.030;
	} else if (w < 845) {
		r->kind = K_PAGE;
		r->method = "POST";
		put_s(p, "/accounts/login/")[0] = 0;
		r->referer = referers[3];
		if (below(100) < 85) {
			r->status = 302;
		} else {
			r->bytes = 5400 + below(200);
		}
		med = 0.210; /* password hashing */
	} else if (w < 853) {
		r->kind = K_PAGE;
		put_s(p, "/accounts/logout/")[0] = 0;
		r->status = 302;
		med = 0.020;
	} else if (w < 866) { /* docker-compose health check */
		r->kind = K_HEALTH;
		put_s(p, "/healthz")[0] = 0;
		r->ip = "172.18.0.1";
		r->agent = "curl/7.88.1";
		r->referer = "-";
		r->proto = "HTTP/1.1";
		r->bytes = 15;
		med = 0.004;
	} else if (w < 884) {
		r->kind = K_BOT;
		r->agent = bots[below(sizeof bots / sizeof bots[0])];
		r->referer = "-";
		if (below(3)) {
			put_s(p, "/robots.txt")[0] = 0;
			r->bytes = 68;
			r->kind = K_STATIC;
			r->rt = 0;
			return;
		}
		put_s(p, "/")[0] = 0;
		r->status = 302;
		med = 0.012;
	} else if (w >= 902) {
		path_id(p, "/api/debts/", 1000 + below(9000), "/payments/");
		r->bytes = 300 + below(3000);
		r->referer = referers[1];
	} else { /* scanners */
		r->kind = K_SCAN;
		r->agent = scanners[below(sizeof scanners / sizeof scanners[0])];
		r->referer = "-";
		r->proto = "HTTP/1.1";
		r->method = below(5) ? "GET" : "POST";
		put_s(p, scan_paths[below(sizeof scan_paths / sizeof scan_paths[0])])[0] = 0;
		r->status = 404;
		r->bytes = 179;
		med = 0.008;
	}
	if (r->status == 302)
		r->bytes = 0;
	/* lognormal body, and a heavy tail: slow queries, cold caches, GC. */
	r->rt = lognormal(med, 0.55);
	if (below(1000) < 6)
		r->rt *= 4 + 40 * pow(uni(), 3);
	/* a client that gave up */
	if (r->kind == K_API && below(1000) < 2) {
		r->status = 499;
		r->bytes = 0;
	}
}

/* A line nginx writes for a connection it rejected before any request. */
static char *put_rejected(char *p)
{
	switch (below(4)) {
	case 0: /* a TLS ClientHello sent to the HTTP port */
		p = put_s(p, "\"\\x16\\x03\\x01\\x02\\x00\\x01\\x00\\x01\\xFC\\x03\\x03\\xA7"
			  "\\x1C\\xE5\\x8B\\xF2g\\x9D\\x0E\" 400 157 \"-\" \"-\"");
		break;
	case 1: /* connected, sent nothing or garbage nginx could not parse */
		p = put_s(p, "\"-\" 400 0 \"-\" \"-\"");
		break;
	case 2: /* a bare word */
		p = put_s(p, below(2) ? "\"SSH-2.0-Go\" 400 157 \"-\" \"-\""
				      : "\"GET\" 400 157 \"-\" \"-\"");
		break;
	default: /* a truncated or malformed request line */
		p = put_s(p, "\"GET /api/debts/ HTTP/1.1\\x0D\\x0AHost:\" 400 157 \"-\" \"-\"");
		break;
	}
	return put_s(p, " rt=0.001 urt=\"-\"\n");
}

static uint64_t to_ms(double s)
{
	if (s < 0)
		s = 0;
	if (s > 3600)
		s = 3600;
	return (uint64_t)(s * 1000.0 + 0.5);
}

static void emit(long long sec, const struct effects *e)
{
	char *const start = reserve();
	char *p = start;

	if (below(20000) == 0) {
		const struct client *c = pick_client();
		p = put_s(p, c->ip);
		p = put_s(p, " - - [");
		p = put_s(p, time_local(sec));
		p = put_s(p, "] ");
		p = put_rejected(p);
		outlen += (size_t)(p - start);
		return;
	}

	struct req r;
	make_request(&r);
	bool proxied = r.kind != K_STATIC;
	uint64_t rt_ms, urt_ms = 0;
	const char *urt_list = NULL; /* a second upstream tried after a failure */

	if (proxied && e->slow != 1.0)
		r.rt *= e->slow;
	if (e->err_share > 0 && r.kind != K_SCAN && uni() < e->err_share) {
		uint32_t k = below(100);
		proxied = true;
		if (k < 60) { /* upstream refused / reset: both app servers tried */
			r.status = 502;
			r.bytes = 157;
			r.rt = 0.001 * below(4);
			urt_list = "0.000, ";
		} else if (k < 90) { /* the app sheds load */
			r.status = 503;
			r.bytes = 197;
			r.rt = lognormal(0.010, 0.5);
		} else { /* proxy_read_timeout */
			r.status = 504;
			r.bytes = 160;
			r.rt = 60.0 + 0.001 * below(5);
		}
	}
	rt_ms = to_ms(r.rt);
	if (proxied) {
		uint64_t d = below(3);
		urt_ms = rt_ms > d ? rt_ms - d : 0;
	}

	p = put_s(p, r.ip);
	p = put_s(p, " - ");
	p = put_s(p, r.kind == K_API && r.status != 401 && below(50) == 0 ? "api" : "-");
	p = put_s(p, " [");
	p = put_s(p, time_local(sec));
	p = put_s(p, "] \"");
	p = put_s(p, r.method);
	*p++ = ' ';
	p = put_s(p, r.path);
	*p++ = ' ';
	p = put_s(p, r.proto);
	p = put_s(p, "\" ");
	p = put_u(p, (uint64_t)r.status);
	*p++ = ' ';
	p = put_u(p, r.bytes);
	p = put_s(p, " \"");
	p = put_s(p, r.referer);
	p = put_s(p, "\" \"");
	p = put_s(p, r.agent);
	p = put_s(p, "\" rt=");
	p = put_ms(p, rt_ms);
	p = put_s(p, " urt=\"");
	if (!proxied) {
		*p++ = '-';
	} else {
		if (urt_list)
			p = put_s(p, urt_list);
		p = put_ms(p, urt_ms);
	}
	p = put_s(p, "\"\n");
	outlen += (size_t)(p - start);
}

/* ------------------------------------------------------------------ main */

static void usage(FILE *f)
{
	fputs("usage: gen_nginx [options]\n"
	      "  --lines N          lines to write (default 1000000; with --live 0 = no limit)\n"
	      "  --duration S       stop after S seconds of event time (or real time with --live)\n"
	      "  --start EPOCH      event time of the first line (default 1699999200,\n"
	      "                     2023-11-14T22:00:00Z)\n"
	      "  --rate R           lines per second (default 1000)\n"
	      "  --incident START:DURATION:KIND:AMOUNT\n"
	      "                     from START s for DURATION s: KIND 5xx (AMOUNT = share of\n"
	      "                     requests, 0.2 or 20%), slow (request_time x AMOUNT),\n"
	      "                     silence (no lines); repeatable\n"
	      "  --seed N           PRNG seed (default 1)\n"
	      "  --live             write with the wall-clock time at R real lines per second,\n"
	      "                     flushing as it goes; incidents relative to the start\n"
	      "  -o, --output FILE  append to FILE instead of standard output\n",
	      f);
}

static int parse_num(const char *s, double *res)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s)
		return -1;
	if (*end == '%') {
		v /= 100.0;
		end++;
	}
	if (*end)
		return -1;
	*res = v;
	return 0;
}

static int parse_incident(const char *arg)
{
	if (nincidents == MAX_INCIDENTS)
		return -1;
	char buf[128];
	if (strlen(arg) >= sizeof buf)
		return -1;
	memcpy(buf, arg, strlen(arg) + 1);
	char *f[4] = {0};
	int n = 0;
	char *s = buf;
	while (n < 4) {
		f[n++] = s;
		char *colon = strchr(s, ':');
		if (!colon)
			break;
		*colon = 0;
		s = colon + 1;
	}
	if (n < 3)
		return -1;
	struct incident *in = &incidents[nincidents];
	double start, dur;
	if (parse_num(f[0], &start) || parse_num(f[1], &dur) || start < 0 || dur <= 0)
		return -1;
	in->start = start;
	in->end = start + dur;
	in->amount = 0;
	if (!strcmp(f[2], "5xx"))
		in->kind = INC_5XX;
	else if (!strcmp(f[2], "slow"))
		in->kind = INC_SLOW;
	else if (!strcmp(f[2], "silence"))
		in->kind = INC_SILENCE;
	else
		return -1;
	if (n == 4 && parse_num(f[3], &in->amount))
		return -1;
	if (in->kind == INC_5XX && (in->amount <= 0 || in->amount > 1))
		return -1;
	if (in->kind == INC_SLOW && in->amount <= 0)
		return -1;
	nincidents++;
	return 0;
}

static double mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_s(double s)
{
	if (s <= 0)
		return;
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* next arrival gap, exponential with mean 1/rate */
static double gap(double rate)
{
	return -log(1.0 - uni()) / rate;
}

int main(int argc, char **argv)
{
	uint64_t lines = 1000000, seed = 1;
	bool lines_set = false, live = false;
	double rate = 1000, duration = 0;
	long long start = DEFAULT_START;
	const char *output = NULL;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		double d;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(a, "--live")) {
			live = true;
			continue;
		}
		if (!v) {
			fprintf(stderr, "gen_nginx: %s needs a value\n", a);
			usage(stderr);
			return 2;
		}
		i++;
		if (!strcmp(a, "--lines") && !parse_num(v, &d) && d >= 0) {
			lines = (uint64_t)d;
			lines_set = true;
		} else if (!strcmp(a, "--duration") && !parse_num(v, &d) && d > 0) {
			duration = d;
		} else if (!strcmp(a, "--start") && !parse_num(v, &d)) {
			start = (long long)d;
		} else if (!strcmp(a, "--rate") && !parse_num(v, &d) && d > 0) {
			rate = d;
		} else if (!strcmp(a, "--seed") && !parse_num(v, &d) && d >= 0) {
			seed = (uint64_t)d;
		} else if (!strcmp(a, "--incident")) {
			if (parse_incident(v) < 0) {
				fprintf(stderr, "gen_nginx: bad --incident '%s' "
						"(want START:DURATION:5xx|slow|silence:AMOUNT)\n", v);
				return 2;
			}
		} else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
			output = v;
		} else {
			fprintf(stderr, "gen_nginx: bad option or value: %s %s\n", a, v);
			usage(stderr);
			return 2;
		}
	}
	if (live && !lines_set)
		lines = 0;
	if (duration > 0 && !lines_set)
		lines = 0;
	if (!live && lines == 0 && duration <= 0) {
		fprintf(stderr, "gen_nginx: give --lines or --duration\n");
		return 2;
	}
	if (output) {
		outfd = open(output, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (outfd < 0) {
			fprintf(stderr, "gen_nginx: cannot open '%s': %s\n", output, strerror(errno));
			return 1;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	seed_rng(seed);
	make_clients();

	struct effects e;
	uint64_t n = 0;
	if (!live) {
		double off = 0; /* event time since start, seconds */
		for (;;) {
			off += gap(rate);
			effects_at(off, &e);
			if (e.silent_until > off) { /* nobody reaches us: skip ahead */
				off = e.silent_until;
				continue;
			}
			if (duration > 0 && off >= duration)
				break;
			emit(start + (long long)floor(off), &e);
			if (++n == lines)
				break;
		}
		flush_out();
		return 0;
	}

	/* live: the wall clock; write every line that is due, flush, sleep. */
	double t0 = mono_now(), due = gap(rate);
	for (;;) {
		double off = mono_now() - t0;
		if (duration > 0 && off >= duration)
			break;
		while (due <= off) {
			effects_at(due, &e);
			if (e.silent_until <= due) {
				emit((long long)time(NULL), &e);
				n++;
			}
			due += gap(rate);
			if (lines && n == lines)
				break;
		}
		flush_out();
		if (lines && n == lines)
			break;
		double wait = due - (mono_now() - t0);
		sleep_s(wait < 0.001 ? 0.001 : wait > 0.2 ? 0.2 : wait);
	}
	flush_out();
	return 0;
}
