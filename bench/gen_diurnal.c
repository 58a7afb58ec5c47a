/*
 * gen_diurnal.c — days of traffic with a daily shape, and relative incidents,
 * for the anomaly rules (zscore, baseline, new): deterministic, seeded.
 *
 *   gen_diurnal [--days N | --day N] [--night R] [--peak R] [--seed S] ...
 *               [--incident dayD@HH:MM+DUR:KIND=AMOUNT ...] [--app]
 *
 * nginx mode (default): `nginx_timed` lines, as gen_nginx writes them. The
 * request rate follows the time of day (UTC): a raised cosine from --night
 * req/s at 04:00 to --peak req/s at 16:00, each day scaled by a factor
 * 1 + --day-jitter × N(0,1) (traffic is never the same two days running), and
 * the number of requests in each second is Poisson around it. A request is a
 * 5xx with probability --5xx (0.5 %), a 4xx with --4xx (2 %); request_time is
 * lognormal around --latency (150 ms, shape --sigma 0.5; a 504 takes 60 s).
 *
 * app mode (--app): the Django application's log in the `django` parser's
 * default format: request lines at 1/20 of the nginx rate, and now and then
 * (about every --exc-every seconds) an ERROR with a traceback whose final
 * exception is one of a few the application always throws (ValueError,
 * django.db.utils.IntegrityError, redis.exceptions.TimeoutError,
 * django.core.exceptions.PermissionDenied).
 *
 * Incidents, relative to the normal traffic, from day D (1 = the first day)
 * at HH:MM UTC for DUR (90s, 30m, 2h), repeatable, may overlap:
 *   5xx=+4%      an extra 4 % of requests fail with 5xx (share added)
 *   4xx=+5%      an extra 5 % of requests get a 4xx
 *   latency=x2.5 request_time multiplied by 2.5
 *   drop=50%     half of the traffic never arrives (the rate × 0.5)
 *   exception=KeyError   (app mode) a traceback ending in KeyError about
 *                every 30 s (a new exception class, for new())
 *
 * Every day has its own PRNG stream (seeded from --seed and the day), so
 * `--day 3` writes exactly the bytes of the third day of `--days 5`: the
 * tests generate days one at a time, as a week of daily archives.
 *
 * Speed: lines are assembled by hand into a large buffer; several days at
 * realistic rates (millions of lines) take seconds.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_START 1699920000LL /* 2023-11-14T00:00:00Z, a midnight */
#define DAY 86400
#define MAX_INCIDENTS 32
#define OUTBUF (1 << 20)

/* ------------------------------------------------------------------ PRNG */

static uint64_t rs[4];

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t next_u64(void) /* xoshiro256** */
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

static bool have_spare;

static void seed_rng(uint64_t seed)
{
	for (int i = 0; i < 4; i++) { /* splitmix64 */
		uint64_t z = (seed += 0x9e3779b97f4a7c15ULL);
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
		rs[i] = z ^ (z >> 31);
	}
	have_spare = false;
}

static double uni(void)
{
	return (double)(next_u64() >> 11) * (1.0 / 9007199254740992.0);
}

static uint32_t below(uint32_t n)
{
	return (uint32_t)(((next_u64() >> 32) * (uint64_t)n) >> 32);
}

static double gauss(void)
{
	static double spare;
	if (have_spare) {
		have_spare = false;
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
	have_spare = true;
	return u * m;
}

/* Poisson(lambda): Knuth's product of uniforms in slices of 30 (exp(-30) is
 * far from underflow), so any rate works. */
static unsigned poisson(double lambda)
{
	unsigned n = 0;
	while (lambda > 30) {
		double limit = exp(-30.0), p = 1;
		unsigned k = 0;
		for (;;) {
			p *= uni();
			if (p <= limit)
				break;
			k++;
		}
		n += k;
		lambda -= 30;
	}
	double limit = exp(-lambda), p = uni();
	while (p > limit) {
		n++;
		p *= uni();
	}
	return n;
}

/* ------------------------------------------------------------------ output */

static char obuf[OUTBUF];
static size_t outlen;
static int outfd = 1;

static void flush_out(void)
{
	size_t off = 0;
	while (off < outlen) {
		ssize_t n = write(outfd, obuf + off, outlen - off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EPIPE)
				perror("gen_diurnal: write");
			exit(errno == EPIPE ? 0 : 1);
		}
		off += (size_t)n;
	}
	outlen = 0;
}

static char *reserve(void)
{
	if (outlen > OUTBUF - 8192)
		flush_out();
	return obuf + outlen;
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

static char *put_2(char *p, int v)
{
	*p++ = (char)('0' + v / 10 % 10);
	*p++ = (char)('0' + v % 10);
	return p;
}

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

static uint64_t to_ms(double s)
{
	if (s < 0)
		s = 0;
	if (s > 3600)
		s = 3600;
	return (uint64_t)(s * 1000.0 + 0.5);
}

/* "14/Nov/2023:22:00:00 +0000" (nginx) or "2023-11-14 22:00:00" (Django),
 * formatted once per second. */
static long long cached_sec = -1;
static char nginx_time[40], iso_time[40];

static void format_time(long long sec)
{
	if (sec == cached_sec)
		return;
	static const char mon[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t t = (time_t)sec;
	struct tm tm;
	gmtime_r(&t, &tm);
	char *p = nginx_time;
	p = put_2(p, tm.tm_mday);
	*p++ = '/';
	memcpy(p, mon[tm.tm_mon], 3);
	p += 3;
	*p++ = '/';
	p = put_u(p, (uint64_t)(tm.tm_year + 1900));
	*p++ = ':';
	p = put_2(p, tm.tm_hour);
	*p++ = ':';
	p = put_2(p, tm.tm_min);
	*p++ = ':';
	p = put_2(p, tm.tm_sec);
	*put_s(p, " +0000") = 0;
	p = iso_time;
	p = put_u(p, (uint64_t)(tm.tm_year + 1900));
	*p++ = '-';
	p = put_2(p, tm.tm_mon + 1);
	*p++ = '-';
	p = put_2(p, tm.tm_mday);
	*p++ = ' ';
	p = put_2(p, tm.tm_hour);
	*p++ = ':';
	p = put_2(p, tm.tm_min);
	*p++ = ':';
	p = put_2(p, tm.tm_sec);
	*p = 0;
	cached_sec = sec;
}

/* ------------------------------------------------------------------ options */

struct opts {
	long long start;
	int days, only_day;
	double night, peak, share5, share4, latency, sigma, jitter, exc_every;
	uint64_t seed;
	bool app;
} O = {
	.start = DEFAULT_START,
	.days = 5,
	.night = 5,
	.peak = 60,
	.share5 = 0.005,
	.share4 = 0.02,
	.latency = 0.150,
	.sigma = 0.5,
	.jitter = 0.05,
	.exc_every = 1800,
	.seed = 1,
};

enum inc_kind { INC_5XX, INC_4XX, INC_LATENCY, INC_DROP, INC_EXCEPTION };

struct incident {
	long long start, end; /* seconds since --start */
	enum inc_kind kind;
	double amount;
	char name[96]; /* exception */
};
static struct incident incidents[MAX_INCIDENTS];
static int nincidents;

struct effects {
	double add5, add4, slow, keep;
	const char *exception; /* an extra exception being thrown */
};

static void effects_at(long long off, struct effects *e)
{
	*e = (struct effects){ 0, 0, 1, 1, NULL };
	for (int i = 0; i < nincidents; i++) {
		const struct incident *in = &incidents[i];
		if (off < in->start || off >= in->end)
			continue;
		switch (in->kind) {
		case INC_5XX: e->add5 += in->amount; break;
		case INC_4XX: e->add4 += in->amount; break;
		case INC_LATENCY: e->slow *= in->amount; break;
		case INC_DROP: e->keep *= 1 - in->amount; break;
		case INC_EXCEPTION: e->exception = in->name; break;
		}
	}
}

/* ------------------------------------------------------------------ traffic */

/* Requests per second at second `off` of day `day` (0-based). */
static double rate_at(long long off, double day_factor)
{
	double h = (double)(off % DAY) / 3600.0;
	double shape = (1 - cos(2 * M_PI * (h - 4) / 24)) / 2; /* 0 at 04:00, 1 at 16:00 */
	return (O.night + (O.peak - O.night) * shape) * day_factor;
}

static const char *const paths[] = {
	"/api/debts/", "/api/debts/4821/", "/api/loans/311/", "/api/payments/?month=2023-11",
	"/api/summary/", "/api/profile/", "/dashboard/", "/accounts/login/?next=/dashboard/",
};
static const char *const agents[] = {
	"Mozilla/5.0 Chrome/119.0", "Mozilla/5.0 Safari/604.1", "DebtProfile/2.4.1", "okhttp/4.11.0",
};

static void emit_nginx(const struct effects *e)
{
	char *const start = reserve();
	char *p = start;
	double u = uni();
	double p5 = O.share5 + e->add5, p4 = O.share4 + e->add4;
	int status;
	double rt = O.latency * exp(O.sigma * gauss()) * e->slow;
	uint64_t bytes;
	if (u < p5) {
		uint32_t k = below(10);
		status = k == 0 ? 500 : k < 6 ? 502 : k < 9 ? 503 : 504;
		if (status == 504)
			rt = 60.0 + 0.001 * below(5);
		bytes = 157;
	} else if (u < p5 + p4) {
		uint32_t k = below(20);
		status = k < 12 ? 404 : k < 16 ? 400 : k < 19 ? 401 : 403;
		bytes = 23 + below(100);
	} else {
		uint32_t k = below(20);
		status = k < 17 ? 200 : k < 18 ? 201 : 302;
		bytes = status == 302 ? 0 : 300 + below(8000);
	}
	p = put_s(p, "10.");
	p = put_u(p, below(4));
	*p++ = '.';
	p = put_u(p, below(256));
	*p++ = '.';
	p = put_u(p, 1 + below(254));
	p = put_s(p, " - - [");
	p = put_s(p, nginx_time);
	p = put_s(p, below(8) ? "] \"GET " : "] \"POST ");
	p = put_s(p, paths[below(sizeof paths / sizeof paths[0])]);
	p = put_s(p, " HTTP/1.1\" ");
	p = put_u(p, (uint64_t)status);
	*p++ = ' ';
	p = put_u(p, bytes);
	p = put_s(p, " \"-\" \"");
	p = put_s(p, agents[below(sizeof agents / sizeof agents[0])]);
	p = put_s(p, "\" rt=");
	uint64_t ms = to_ms(rt);
	p = put_ms(p, ms);
	p = put_s(p, " urt=\"");
	p = put_ms(p, ms > 2 ? ms - below(3) : ms);
	p = put_s(p, "\"\n");
	outlen += (size_t)(p - start);
}

/* The exceptions the application always throws, with a frame and message. */
static const struct {
	const char *name, *frame, *line, *msg;
} usual[] = {
	{ "ValueError", "debts/views.py\", line 88, in create", "raise ValueError(f'amount must be positive, got {amount}')",
	  "amount must be positive, got -3" },
	{ "django.db.utils.IntegrityError", "django/db/backends/utils.py\", line 89, in _execute",
	  "return self.cursor.execute(sql, params)",
	  "duplicate key value violates unique constraint \"debts_debt_user_id_name_key\"" },
	{ "redis.exceptions.TimeoutError", "redis/connection.py\", line 512, in read_response",
	  "raise TimeoutError(\"Timeout reading from socket\")", "Timeout reading from socket" },
	{ "django.core.exceptions.PermissionDenied", "debts/views.py\", line 41, in detail",
	  "raise PermissionDenied", "" },
};
#define NUSUAL (sizeof usual / sizeof usual[0])

static char *app_prefix(char *p, long long sec, const char *level, const char *logger)
{
	p = put_s(p, iso_time);
	*p++ = ',';
	uint32_t ms = below(1000);
	*p++ = (char)('0' + ms / 100);
	*p++ = (char)('0' + ms / 10 % 10);
	*p++ = (char)('0' + ms % 10);
	*p++ = ' ';
	p = put_s(p, level);
	*p++ = ' ';
	p = put_s(p, logger);
	*p++ = ' ';
	p = put_u(p, 100 + (uint64_t)(sec / 3600 % 4)); /* gunicorn workers */
	*p++ = ' ';
	return p;
}

static void emit_traceback(long long sec, const char *name, const char *frame, const char *line,
			   const char *msg)
{
	char *const start = reserve();
	char *p = app_prefix(start, sec, "ERROR", "django.request");
	p = put_s(p, "Internal Server Error: ");
	p = put_s(p, paths[below(6)]);
	p = put_s(p, "\nTraceback (most recent call last):\n"
		     "  File \"/usr/lib/python3/dist-packages/django/core/handlers/exception.py\", line 55, in inner\n"
		     "    response = get_response(request)\n"
		     "               ^^^^^^^^^^^^^^^^^^^^^\n"
		     "  File \"/app/");
	p = put_s(p, frame);
	p = put_s(p, "\n    ");
	p = put_s(p, line);
	*p++ = '\n';
	p = put_s(p, name);
	if (*msg) {
		p = put_s(p, ": ");
		p = put_s(p, msg);
	}
	*p++ = '\n';
	outlen += (size_t)(p - start);
}

static void emit_app(long long sec, double per_second, const struct effects *e)
{
	format_time(sec);
	/* request lines: a twentieth of the web traffic */
	for (unsigned n = poisson(per_second / 20); n; n--) {
		char *const start = reserve();
		char *p = app_prefix(start, sec, "INFO", "debts.views");
		p = put_s(p, "served ");
		p = put_s(p, paths[below(6)]);
		p = put_s(p, " for user ");
		p = put_u(p, 1000 + below(9000));
		*p++ = '\n';
		outlen += (size_t)(p - start);
	}
	if (uni() < 1.0 / O.exc_every) {
		uint32_t k = below(NUSUAL);
		emit_traceback(sec, usual[k].name, usual[k].frame, usual[k].line, usual[k].msg);
	}
	if (e->exception && uni() < 1.0 / 30)
		emit_traceback(sec, e->exception, "debts/pricing.py\", line 27, in price",
			       "rate = RATES[debt.currency]", "'XOF'");
}

static void gen_day(int day)
{
	/* each day its own stream: --day N is the Nth day of --days */
	seed_rng(O.seed * 1000003ULL + (uint64_t)day * 7919ULL + (O.app ? 17 : 0));
	double factor = 1 + O.jitter * gauss();
	if (factor < 0.5)
		factor = 0.5;
	struct effects e;
	for (long long s = 0; s < DAY; s++) {
		long long off = (long long)day * DAY + s;
		effects_at(off, &e);
		double lambda = rate_at(off, factor) * e.keep;
		long long sec = O.start + off;
		if (O.app) {
			emit_app(sec, lambda, &e);
			continue;
		}
		unsigned n = poisson(lambda);
		if (n)
			format_time(sec);
		while (n--)
			emit_nginx(&e);
	}
}

/* ------------------------------------------------------------------ main */

static void usage(FILE *f)
{
	fputs("usage: gen_diurnal [options]\n"
	      "  --days N        days to write (default 5)\n"
	      "  --day N         only day N (1-based): the same bytes as in --days\n"
	      "  --start EPOCH   the first day's midnight (default 1699920000, 2023-11-14)\n"
	      "  --night R       req/s at 04:00 (default 5)\n"
	      "  --peak R        req/s at 16:00 (default 60)\n"
	      "  --5xx S --4xx S base shares (default 0.5%, 2%)\n"
	      "  --latency S     median request_time in seconds (default 0.150)\n"
	      "  --sigma X       lognormal shape (default 0.5)\n"
	      "  --day-jitter J  each day's rate x (1 + J N(0,1)) (default 0.05)\n"
	      "  --app           the Django application log instead of nginx's\n"
	      "  --exc-every S   app: a usual traceback every S seconds on average (1800)\n"
	      "  --incident dayD@HH:MM+DUR:KIND=AMOUNT\n"
	      "                  5xx=+4%, 4xx=+5%, latency=x2.5, drop=50%, exception=NAME\n"
	      "  --seed N        (default 1)\n"
	      "  -o FILE         write to FILE (default standard output)\n",
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

/* 90s, 30m, 2h, 1d */
static int parse_dur(const char *s, size_t n, long long *out)
{
	char buf[32];
	if (n == 0 || n >= sizeof buf)
		return -1;
	memcpy(buf, s, n);
	buf[n] = 0;
	char *end;
	double v = strtod(buf, &end);
	double mul = !strcmp(end, "s") || !*end ? 1 : !strcmp(end, "m") ? 60 : !strcmp(end, "h") ? 3600
		   : !strcmp(end, "d") ? DAY : -1;
	if (mul < 0 || !(v > 0))
		return -1;
	*out = (long long)(v * mul + 0.5);
	return 0;
}

static int parse_incident(const char *arg)
{
	if (nincidents == MAX_INCIDENTS)
		return -1;
	struct incident *in = &incidents[nincidents];
	int day, hh, mm, used = 0;
	if (sscanf(arg, "day%d@%d:%d+%n", &day, &hh, &mm, &used) != 3 || !used || day < 1 ||
	    hh < 0 || hh > 23 || mm < 0 || mm > 59)
		return -1;
	const char *d = arg + used, *colon = strchr(d, ':');
	long long dur;
	if (!colon || parse_dur(d, (size_t)(colon - d), &dur) < 0)
		return -1;
	in->start = (long long)(day - 1) * DAY + hh * 3600 + mm * 60;
	in->end = in->start + dur;
	const char *kind = colon + 1, *eq = strchr(kind, '=');
	if (!eq || !eq[1])
		return -1;
	size_t klen = (size_t)(eq - kind);
	const char *v = eq + 1;
	double a;
	if (klen == 3 && !memcmp(kind, "5xx", 3) && !parse_num(v + (*v == '+'), &a) && a > 0 && a < 1)
		in->kind = INC_5XX;
	else if (klen == 3 && !memcmp(kind, "4xx", 3) && !parse_num(v + (*v == '+'), &a) && a > 0 && a < 1)
		in->kind = INC_4XX;
	else if (klen == 7 && !memcmp(kind, "latency", 7) && !parse_num(v + (*v == 'x'), &a) && a > 0)
		in->kind = INC_LATENCY;
	else if (klen == 4 && !memcmp(kind, "drop", 4) && !parse_num(v, &a) && a > 0 && a <= 1)
		in->kind = INC_DROP;
	else if (klen == 9 && !memcmp(kind, "exception", 9) && strlen(v) < sizeof in->name) {
		in->kind = INC_EXCEPTION;
		a = 0;
		strcpy(in->name, v);
	} else
		return -1;
	in->amount = a;
	nincidents++;
	return 0;
}

int main(int argc, char **argv)
{
	const char *output = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		}
		if (!strcmp(a, "--app")) {
			O.app = true;
			continue;
		}
		const char *v = i + 1 < argc ? argv[++i] : NULL;
		double d;
		bool ok = v != NULL;
		if (!ok)
			;
		else if (!strcmp(a, "--days"))
			ok = !parse_num(v, &d) && d >= 1 && d <= 400 && (O.days = (int)d);
		else if (!strcmp(a, "--day"))
			ok = !parse_num(v, &d) && d >= 1 && d <= 400 && (O.only_day = (int)d);
		else if (!strcmp(a, "--start"))
			ok = !parse_num(v, &d) && (O.start = (long long)d, true);
		else if (!strcmp(a, "--night"))
			ok = !parse_num(v, &d) && d > 0 && (O.night = d, true);
		else if (!strcmp(a, "--peak"))
			ok = !parse_num(v, &d) && d > 0 && (O.peak = d, true);
		else if (!strcmp(a, "--5xx"))
			ok = !parse_num(v, &d) && d >= 0 && d < 1 && (O.share5 = d, true);
		else if (!strcmp(a, "--4xx"))
			ok = !parse_num(v, &d) && d >= 0 && d < 1 && (O.share4 = d, true);
		else if (!strcmp(a, "--latency"))
			ok = !parse_num(v, &d) && d > 0 && (O.latency = d, true);
		else if (!strcmp(a, "--sigma"))
			ok = !parse_num(v, &d) && d >= 0 && (O.sigma = d, true);
		else if (!strcmp(a, "--day-jitter"))
			ok = !parse_num(v, &d) && d >= 0 && d < 0.5 && (O.jitter = d, true);
		else if (!strcmp(a, "--exc-every"))
			ok = !parse_num(v, &d) && d >= 1 && (O.exc_every = d, true);
		else if (!strcmp(a, "--seed"))
			ok = !parse_num(v, &d) && d >= 0 && (O.seed = (uint64_t)d, true);
		else if (!strcmp(a, "--incident"))
			ok = parse_incident(v) == 0;
		else if (!strcmp(a, "-o") || !strcmp(a, "--output"))
			output = v;
		else
			ok = false;
		if (!ok) {
			fprintf(stderr, "gen_diurnal: bad option or value: %s %s\n", a, v ? v : "");
			usage(stderr);
			return 2;
		}
	}
	if (output) {
		outfd = open(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (outfd < 0) {
			fprintf(stderr, "gen_diurnal: cannot open '%s': %s\n", output, strerror(errno));
			return 1;
		}
	}
	if (O.only_day)
		gen_day(O.only_day - 1);
	else
		for (int day = 0; day < O.days; day++)
			gen_day(day);
	flush_out();
	return 0;
}
