/*
 * test_http.c — sinks/http.c against a real HTTP server on 127.0.0.1.
 *
 * Each test forks a small HTTP/1.1 server (written below with plain sockets)
 * listening on a random loopback port. The server forks a handler per
 * connection; a handler reads each request whole (head and Content-Length
 * body), writes the raw bytes to a file "req-<handler pid>-<seq>" in the
 * test's temporary directory *before* answering, then answers according to
 * the request's path (the script: /ok, /retry7, /hang, /echo, …). The parent
 * drives a real ev_loop with ev_run(EVRUN_ONCE) until the expected callbacks
 * ran or a deadline passed; a deadline only bounds a wait, it never decides a
 * result. The teardown frees the struct http, checks that no watcher is left
 * on the loop, and kills the server's process group.
 *
 * Proxy variables are cleared in main() so that loopback requests go direct;
 * one test sets http_proxy to the test server itself and checks that the
 * request arrives there in absolute form.
 */
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <cmocka.h>
#include <ev.h>

#include "sinks/sinks_int.h"

#define DEADLINE 10.0 /* seconds: only bounds a wait that should take milliseconds */
#define MAX_CALLS 64

/* ---------------------------------------------------------------------------
 * The server (runs in forked children only; exits with _exit).
 */

static void srv_write_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			_exit(0); /* the client went away */
		p += n;
		len -= (size_t)n;
	}
}

static void srv_respond(int c, int status, const char *extra, const char *body, size_t blen)
{
	char head[1024];
	int n = snprintf(head, sizeof head,
			 "HTTP/1.1 %d Scripted\r\nContent-Length: %zu\r\n%s\r\n", status,
			 blen, extra);
	srv_write_all(c, head, (size_t)n);
	srv_write_all(c, body, blen);
}

static const char *find_crlf2(const char *p, size_t len)
{
	for (size_t i = 0; i + 4 <= len; i++)
		if (memcmp(p + i, "\r\n\r\n", 4) == 0)
			return p + i;
	return NULL;
}

static size_t srv_content_length(const char *head, size_t len)
{
	const char *p = head;
	const char *end = head + len;
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol)
			break;
		if ((size_t)(eol - p) > 15 && strncasecmp(p, "content-length:", 15) == 0)
			return (size_t)strtoul(p + 15, NULL, 10);
		p = eol + 1;
	}
	return 0;
}

/* Answer one request according to its path. */
static void srv_answer(int c, const char *path, const char *body, size_t blen)
{
	char buf[16384];

	if (strncmp(path, "http://", 7) == 0) { /* absolute form: through a proxy */
		const char *slash = strchr(path + 7, '/');
		path = slash ? slash : "/";
	}
	if (strncmp(path, "/ok", 3) == 0) {
		static const char b[] = "first line\nsecond line\n";
		srv_respond(c, 200, "X-Reply: yes\r\n", b, sizeof b - 1);
	} else if (strcmp(path, "/retry7") == 0) {
		srv_respond(c, 503, "Retry-After: 7\r\n", "busy\n", 5);
	} else if (strcmp(path, "/retrydate") == 0) {
		char extra[128], date[64];
		time_t t = time(NULL) + 30;
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
		snprintf(extra, sizeof extra, "Retry-After:   %s  \r\n", date);
		srv_respond(c, 429, extra, "slow down\n", 10);
	} else if (strncmp(path, "/hang", 5) == 0) {
		while (read(c, buf, sizeof buf) > 0) /* until the client gives up */
			;
		_exit(0);
	} else if (strcmp(path, "/echo") == 0) {
		srv_respond(c, 200, "", body, blen);
	} else if (strcmp(path, "/proxied") == 0) {
		srv_respond(c, 200, "", "proxied\n", 8);
	} else if (strcmp(path, "/firstline/blank") == 0) {
		static const char b[] = "\r\n\r\n  error: bad token \r\nmore\n";
		srv_respond(c, 400, "", b, sizeof b - 1);
	} else if (strcmp(path, "/firstline/long") == 0) {
		/* 199 'x', then a 2-byte character straddling byte 200 */
		memset(buf, 'x', 199);
		memcpy(buf + 199, "\xc3\xa9tail\n", 7);
		srv_respond(c, 400, "", buf, 206);
	} else if (strcmp(path, "/firstline/ctl") == 0) {
		static const char b[] = "a\x1b[31mb\tc\nsecond\n";
		srv_respond(c, 400, "", b, sizeof b - 1);
	} else if (strcmp(path, "/firstline/big") == 0) {
		memset(buf, 'y', sizeof buf); /* 16 KiB, one line, no newline */
		srv_respond(c, 200, "", buf, sizeof buf);
	} else if (strcmp(path, "/firstline/empty") == 0) {
		srv_respond(c, 200, "", "", 0);
	} else {
		srv_respond(c, 404, "", "not found\n", 10);
	}
}

/* One connection: requests in sequence (keep-alive) until the client closes. */
static void srv_connection(int c, const char *dir)
{
	size_t cap = 4 << 20, len = 0;
	char *buf = malloc(cap);
	unsigned seq = 0;

	if (!buf)
		_exit(1);
	for (;;) {
		const char *he;
		while (!(he = find_crlf2(buf, len))) {
			ssize_t n = read(c, buf + len, cap - len);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				_exit(0);
			len += (size_t)n;
		}
		size_t hlen = (size_t)(he - buf) + 4;
		size_t blen = srv_content_length(buf, hlen);
		if (hlen + blen > cap)
			_exit(1);
		while (len < hlen + blen) {
			ssize_t n = read(c, buf + len, cap - len);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				_exit(0);
			len += (size_t)n;
		}

		/* Record what arrived before answering, so that it is on disk when
		 * the client sees the answer. */
		char tmp[512], name[512];
		snprintf(tmp, sizeof tmp, "%s/.tmp-%ld", dir, (long)getpid());
		snprintf(name, sizeof name, "%s/req-%ld-%u", dir, (long)getpid(), seq++);
		int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0)
			_exit(1);
		srv_write_all(fd, buf, hlen + blen);
		close(fd);
		if (rename(tmp, name) < 0) /* whole, or not there at all */
			_exit(1);

		char path[2048] = "";
		const char *sp = memchr(buf, ' ', hlen);
		if (sp) {
			const char *sp2 = memchr(sp + 1, ' ', hlen - (size_t)(sp + 1 - buf));
			size_t pl = sp2 ? (size_t)(sp2 - sp - 1) : 0;
			if (pl < sizeof path) {
				memcpy(path, sp + 1, pl);
				path[pl] = '\0';
			}
		}
		char *q = strchr(path, '?');
		if (q)
			*q = '\0';
		srv_answer(c, path, buf + hlen, blen);

		memmove(buf, buf + hlen + blen, len - hlen - blen);
		len -= hlen + blen;
	}
}

static void srv_main(int lfd, const char *dir)
{
	signal(SIGCHLD, SIG_IGN); /* handlers are reaped by the kernel */
	signal(SIGPIPE, SIG_IGN);
	for (;;) {
		int c = accept(lfd, NULL, NULL);
		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			_exit(1);
		}
		pid_t p = fork();
		if (p == 0) {
			close(lfd);
			srv_connection(c, dir);
			_exit(0);
		}
		close(c);
	}
}

/* ---------------------------------------------------------------------------
 * Fixture.
 */

struct fixture;

struct call {
	struct fixture *fx;
	int calls;
	long status;
	int code;
	char error[CURL_ERROR_SIZE];
	double retry_after_s;
	char first_line[256];
	double seconds;
	void (*then)(struct call *c); /* runs inside the done callback */
};

struct fixture {
	char dir[256];
	struct ev_loop *loop;
	struct http *h;
	pid_t srv;
	int port;
	int ndone;
	struct call calls[MAX_CALLS];
	ev_timer tick;
};

static void on_done(void *ctx, const struct http_response *r)
{
	struct call *c = ctx;
	c->calls++;
	c->fx->ndone++;
	c->status = r->status;
	c->code = r->curl_code;
	assert_non_null(r->error);
	assert_non_null(r->body_first_line);
	snprintf(c->error, sizeof c->error, "%s", r->error);
	c->retry_after_s = r->retry_after_s;
	assert_true(strlen(r->body_first_line) <= 200);
	snprintf(c->first_line, sizeof c->first_line, "%s", r->body_first_line);
	c->seconds = r->seconds;
	if (c->then)
		c->then(c);
}

static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	/* only wakes the loop so that the deadline is checked */
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof sa;

	if (!fx)
		return -1;
	const char *tmp = getenv("TMPDIR");
	snprintf(fx->dir, sizeof fx->dir, "%s/klaxon-http-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(fx->dir))
		return -1;

	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		return -1;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, 128) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &sl) < 0)
		return -1;
	fx->port = ntohs(sa.sin_port);
	fflush(NULL);
	fx->srv = fork();
	if (fx->srv < 0)
		return -1;
	if (fx->srv == 0) {
		setpgid(0, 0);
		srv_main(lfd, fx->dir);
		_exit(0);
	}
	setpgid(fx->srv, fx->srv); /* either side may win the race; both agree */
	close(lfd);

	fx->loop = ev_loop_new(EVFLAG_AUTO);
	if (!fx->loop)
		return -1;
	ev_timer_init(&fx->tick, tick_cb, 0.05, 0.05);
	fx->h = http_new(fx->loop);
	if (!fx->h)
		return -1;
	for (int i = 0; i < MAX_CALLS; i++)
		fx->calls[i].fx = fx;
	*state = fx;
	return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	http_free(fx->h);
	/* no watcher left behind: a non-blocking run finds nothing active */
	int active = ev_run(fx->loop, EVRUN_NOWAIT);
	ev_loop_destroy(fx->loop);
	kill(-fx->srv, SIGKILL); /* the server and its connection handlers */
	waitpid(fx->srv, NULL, 0);
	nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(fx);
	if (active) {
		print_error("watchers still active after http_free\n");
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------------------
 * Helpers.
 */

static char *url(struct fixture *fx, const char *path)
{
	static char buf[4][512];
	static int k;
	char *p = buf[k++ % 4];
	snprintf(p, sizeof buf[0], "http://127.0.0.1:%d%s", fx->port, path);
	return p;
}

static void post(struct fixture *fx, int i, const struct http_request *req)
{
	int rc = http_post(fx->h, req, on_done, &fx->calls[i]);
	if (rc)
		print_error("http_post: %s\n", strerror(-rc));
	assert_int_equal(rc, 0);
}

static void post_simple(struct fixture *fx, int i, const char *path, const char *body)
{
	struct http_request req = { .url = url(fx, path), .body = body, .len = strlen(body) };
	post(fx, i, &req);
}

static int count_records(struct fixture *fx);

/* Run the loop until cond holds or the deadline passes; returns cond. */
#define RUN_UNTIL(fx, cond)                                                    \
	({                                                                     \
		double deadline_ = ev_time() + DEADLINE;                       \
		unsigned iters_ = 0;                                           \
		ev_timer_start((fx)->loop, &(fx)->tick);                       \
		while (!(cond) && ev_time() < deadline_ && iters_++ < 100000) \
			ev_run((fx)->loop, EVRUN_ONCE);                        \
		ev_timer_stop((fx)->loop, &(fx)->tick);                        \
		(cond);                                                        \
	})

static void run_for(struct fixture *fx, double secs)
{
	double until = ev_time() + secs;
	(void)RUN_UNTIL(fx, ev_time() >= until);
}

static void wait_done(struct fixture *fx, int n)
{
	if (!RUN_UNTIL(fx, fx->ndone >= n))
		print_error("only %d of %d requests completed\n", fx->ndone, n);
	assert_int_equal(fx->ndone, n);
}

/* A request as the server recorded it. */
struct rec {
	char name[256];
	char *raw;
	size_t len;
	char method[16];
	char target[1024];
	const char *body;
	size_t blen;
	size_t hlen; /* head bytes, final CRLFCRLF included */
};

static void rec_parse(struct rec *r)
{
	const char *he = find_crlf2(r->raw, r->len);
	assert_non_null(he);
	r->hlen = (size_t)(he - r->raw) + 4;
	r->body = r->raw + r->hlen;
	r->blen = r->len - r->hlen;
	const char *sp = strchr(r->raw, ' ');
	assert_non_null(sp);
	const char *sp2 = strchr(sp + 1, ' ');
	assert_non_null(sp2);
	assert_true((size_t)(sp - r->raw) < sizeof r->method);
	memcpy(r->method, r->raw, (size_t)(sp - r->raw));
	assert_true((size_t)(sp2 - sp - 1) < sizeof r->target);
	memcpy(r->target, sp + 1, (size_t)(sp2 - sp - 1));
}

/* Value of header name in r (the n-th occurrence), NUL-terminated in out; false if absent. */
static bool rec_header(const struct rec *r, const char *name, int nth, char *out, size_t outlen)
{
	size_t nl = strlen(name);
	const char *p = memchr(r->raw, '\n', r->hlen) + 1;
	const char *end = r->raw + r->hlen - 2;
	while (p < end) {
		const char *eol = memchr(p, '\r', (size_t)(end - p));
		assert_non_null(eol);
		if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			if (nth-- == 0) {
				const char *v = p + nl + 1;
				while (*v == ' ')
					v++;
				snprintf(out, outlen, "%.*s", (int)(eol - v), v);
				return true;
			}
		}
		p = eol + 2;
	}
	return false;
}

static int cmp_rec(const void *a, const void *b)
{
	return strcmp(((const struct rec *)a)->name, ((const struct rec *)b)->name);
}

/* All recorded requests, sorted by name; caller frees with recs_free. */
static size_t read_records(struct fixture *fx, struct rec **out)
{
	DIR *d = opendir(fx->dir);
	struct dirent *e;
	struct rec *v = NULL;
	size_t n = 0;

	assert_non_null(d);
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, "req-", 4) != 0)
			continue;
		v = realloc(v, (n + 1) * sizeof(*v));
		assert_non_null(v);
		struct rec *r = &v[n++];
		memset(r, 0, sizeof(*r));
		snprintf(r->name, sizeof r->name, "%s", e->d_name);
		char path[512];
		snprintf(path, sizeof path, "%s/%s", fx->dir, e->d_name);
		assert_int_equal(kl_read_file(path, 64 << 20, &r->raw, &r->len), 0);
		rec_parse(r);
	}
	closedir(d);
	if (n)
		qsort(v, n, sizeof(*v), cmp_rec);
	*out = v;
	return n;
}

static void recs_free(struct rec *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].raw);
	free(v);
}

static int count_records(struct fixture *fx)
{
	struct rec *v;
	size_t n = read_records(fx, &v);
	recs_free(v, n);
	return (int)n;
}

/* A loopback port with nothing listening: bound, then closed. */
static int closed_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

/* ---------------------------------------------------------------------------
 * Tests.
 */

static void test_post_200(void **state)
{
	struct fixture *fx = *state;
	static const char body[] = "{\"k\":\"v\"}\0tail\xff\n"; /* a NUL and a high byte */
	const size_t blen = sizeof body - 1;
	const char *hdrs[] = { "X-Custom: abc 123", "X-Klaxon-Signature: sha256=00ff", NULL };
	struct http_request req = {
		.url = url(fx, "/ok?token=s3cret"), .headers = hdrs, .body = body, .len = blen,
	};
	char v[256];

	post(fx, 0, &req);
	assert_int_equal(http_inflight(fx->h), 1);
	wait_done(fx, 1);
	assert_int_equal(http_inflight(fx->h), 0);

	struct call *c = &fx->calls[0];
	assert_int_equal(c->calls, 1);
	assert_int_equal(c->status, 200);
	assert_int_equal(c->code, CURLE_OK);
	assert_string_equal(c->error, "");
	assert_true(c->retry_after_s == -1);
	assert_string_equal(c->first_line, "first line");
	assert_true(c->seconds > 0 && c->seconds < DEADLINE);

	struct rec *r;
	size_t n = read_records(fx, &r);
	assert_int_equal(n, 1);
	assert_string_equal(r[0].method, "POST");
	assert_string_equal(r[0].target, "/ok?token=s3cret");
	assert_true(rec_header(&r[0], "X-Custom", 0, v, sizeof v));
	assert_string_equal(v, "abc 123");
	assert_true(rec_header(&r[0], "X-Klaxon-Signature", 0, v, sizeof v));
	assert_string_equal(v, "sha256=00ff");
	assert_true(rec_header(&r[0], "Content-Type", 0, v, sizeof v));
	assert_string_equal(v, "application/json");
	assert_false(rec_header(&r[0], "Content-Type", 1, v, sizeof v));
	assert_true(rec_header(&r[0], "Content-Length", 0, v, sizeof v));
	assert_int_equal(strtoul(v, NULL, 10), blen);
	assert_true(rec_header(&r[0], "User-Agent", 0, v, sizeof v));
	assert_memory_equal(v, "klaxon/", 7);
	assert_true(strlen(v) > 7);
	assert_false(rec_header(&r[0], "Expect", 0, v, sizeof v));
	assert_false(rec_header(&r[0], "Transfer-Encoding", 0, v, sizeof v));
	assert_int_equal(r[0].blen, blen);
	assert_memory_equal(r[0].body, body, blen);
	recs_free(r, n);

	/* nothing more arrives later */
	run_for(fx, 0.2);
	assert_int_equal(c->calls, 1);
}

/* A large body goes out whole, at once: no "Expect: 100-continue" wait. */
static void test_large_body(void **state)
{
	struct fixture *fx = *state;
	size_t blen = 2 * 1024 * 1024; /* libcurl adds Expect: 100-continue above 1 MiB */
	char *body = malloc(blen);
	char v[64];
	assert_non_null(body);
	for (size_t i = 0; i < blen; i++)
		body[i] = (char)('a' + i % 26);
	struct http_request req = { .url = url(fx, "/ok"), .body = body, .len = blen };

	post(fx, 0, &req);
	free(body); /* the request data were copied */
	wait_done(fx, 1);
	assert_int_equal(fx->calls[0].status, 200);

	struct rec *r;
	size_t n = read_records(fx, &r);
	assert_int_equal(n, 1);
	assert_false(rec_header(&r[0], "Expect", 0, v, sizeof v));
	assert_int_equal(r[0].blen, blen);
	for (size_t i = 0; i < blen; i++)
		if (r[0].body[i] != (char)('a' + i % 26))
			fail_msg("body differs at byte %zu", i);
	recs_free(r, n);
}

static void test_caller_content_type(void **state)
{
	struct fixture *fx = *state;
	const char *hdrs[] = { "content-type: text/plain; charset=utf-8", NULL };
	struct http_request req = { .url = url(fx, "/ok"), .headers = hdrs, .body = "x", .len = 1 };
	char v[128];

	post(fx, 0, &req);
	wait_done(fx, 1);
	struct rec *r;
	size_t n = read_records(fx, &r);
	assert_int_equal(n, 1);
	assert_true(rec_header(&r[0], "Content-Type", 0, v, sizeof v));
	assert_string_equal(v, "text/plain; charset=utf-8");
	assert_false(rec_header(&r[0], "Content-Type", 1, v, sizeof v));
	recs_free(r, n);
}

static void test_empty_body(void **state)
{
	struct fixture *fx = *state;
	struct http_request req = { .url = url(fx, "/ok") };

	post(fx, 0, &req);
	wait_done(fx, 1);
	assert_int_equal(fx->calls[0].status, 200);
	struct rec *r;
	size_t n = read_records(fx, &r);
	assert_int_equal(n, 1);
	assert_string_equal(r[0].method, "POST");
	assert_int_equal(r[0].blen, 0);
	recs_free(r, n);
}

static void test_retry_after_seconds(void **state)
{
	struct fixture *fx = *state;
	post_simple(fx, 0, "/retry7", "{}");
	wait_done(fx, 1);
	struct call *c = &fx->calls[0];
	assert_int_equal(c->status, 503);
	assert_int_equal(c->code, CURLE_OK);
	assert_string_equal(c->error, "");
	assert_true(c->retry_after_s == 7.0);
	assert_string_equal(c->first_line, "busy");
}

static void test_retry_after_date(void **state)
{
	struct fixture *fx = *state;
	post_simple(fx, 0, "/retrydate", "{}");
	wait_done(fx, 1);
	struct call *c = &fx->calls[0];
	assert_int_equal(c->status, 429);
	/* the server said "now + 30 s" with one-second resolution */
	if (!(c->retry_after_s >= 27 && c->retry_after_s <= 31))
		fail_msg("retry_after_s = %f, expected about 30", c->retry_after_s);
	assert_string_equal(c->first_line, "slow down");
}

static void test_connection_refused(void **state)
{
	struct fixture *fx = *state;
	char u[128];
	snprintf(u, sizeof u, "http://127.0.0.1:%d/path?token=s3cret", closed_port());
	struct http_request req = { .url = u, .body = "{}", .len = 2 };

	post(fx, 0, &req);
	wait_done(fx, 1);
	struct call *c = &fx->calls[0];
	assert_int_equal(c->status, 0);
	assert_int_equal(c->code, CURLE_COULDNT_CONNECT);
	assert_true(strlen(c->error) > 0);
	assert_null(strstr(c->error, "s3cret"));
	assert_true(c->retry_after_s == -1);
	assert_string_equal(c->first_line, "");
}

static void test_timeout(void **state)
{
	struct fixture *fx = *state;
	struct http_request req = {
		.url = url(fx, "/hang?token=s3cret"), .body = "{}", .len = 2, .timeout_ms = 300,
	};
	double t0 = ev_time();

	post(fx, 0, &req);
	wait_done(fx, 1);
	double took = ev_time() - t0;
	struct call *c = &fx->calls[0];
	assert_int_equal(c->status, 0);
	assert_int_equal(c->code, CURLE_OPERATION_TIMEDOUT);
	assert_true(strlen(c->error) > 0);
	assert_null(strstr(c->error, "s3cret"));
	assert_null(strstr(c->error, "/hang"));
	if (!(took >= 0.29 && took < 3.0))
		fail_msg("timed out after %f s, expected 0.3 s", took);
	assert_int_equal(count_records(fx), 1); /* it did reach the server */
}

static void test_concurrent(void **state)
{
	struct fixture *fx = *state;
	enum { N = 20 };
	char bodies[N][16];

	for (int i = 0; i < N; i++) {
		snprintf(bodies[i], sizeof bodies[i], "req-%d", i);
		post_simple(fx, i, "/echo", bodies[i]);
	}
	assert_int_equal(http_inflight(fx->h), N);
	wait_done(fx, N);
	run_for(fx, 0.2); /* a second callback would show up here */
	assert_int_equal(fx->ndone, N);
	assert_int_equal(http_inflight(fx->h), 0);
	for (int i = 0; i < N; i++) {
		assert_int_equal(fx->calls[i].calls, 1);
		assert_int_equal(fx->calls[i].status, 200);
		assert_string_equal(fx->calls[i].first_line, bodies[i]);
	}

	/* the server saw each body exactly once */
	struct rec *r;
	size_t n = read_records(fx, &r);
	assert_int_equal(n, N);
	int seen[N] = { 0 };
	for (size_t k = 0; k < n; k++) {
		int64_t i;
		assert_true(r[k].blen > 4);
		assert_memory_equal(r[k].body, "req-", 4);
		assert_int_equal(kl_parse_i64(r[k].body + 4, r[k].blen - 4, &i), 0);
		assert_in_range(i, 0, N - 1);
		seen[i]++;
	}
	for (int i = 0; i < N; i++)
		assert_int_equal(seen[i], 1);
	recs_free(r, n);
}

/* Two requests one after the other share the connection (the multi's cache). */
static void test_keepalive(void **state)
{
	struct fixture *fx = *state;

	post_simple(fx, 0, "/ok", "1");
	wait_done(fx, 1);
	post_simple(fx, 1, "/ok", "2");
	wait_done(fx, 2);

	struct rec *r;
	size_t n = read_records(fx, &r);
	assert_int_equal(n, 2);
	/* names are req-<handler pid>-<seq>: one handler, requests 0 and 1 */
	char *d0 = strrchr(r[0].name, '-'), *d1 = strrchr(r[1].name, '-');
	assert_int_equal(d0 - r[0].name, d1 - r[1].name);
	assert_memory_equal(r[0].name, r[1].name, (size_t)(d0 - r[0].name));
	assert_string_equal(d0, "-0");
	assert_string_equal(d1, "-1");
	recs_free(r, n);
}

static void test_first_line(void **state)
{
	struct fixture *fx = *state;
	char want[256];

	post_simple(fx, 0, "/firstline/blank", "{}");
	post_simple(fx, 1, "/firstline/long", "{}");
	post_simple(fx, 2, "/firstline/ctl", "{}");
	post_simple(fx, 3, "/firstline/big", "{}");
	post_simple(fx, 4, "/firstline/empty", "{}");
	post_simple(fx, 5, "/nowhere", "{}");
	wait_done(fx, 6);

	assert_int_equal(fx->calls[0].status, 400);
	assert_string_equal(fx->calls[0].first_line, "error: bad token");
	memset(want, 'x', 199); /* the 2-byte character at 199..200 is not split */
	want[199] = '\0';
	assert_string_equal(fx->calls[1].first_line, want);
	assert_string_equal(fx->calls[2].first_line, "a?[31mb?c");
	assert_int_equal(fx->calls[3].status, 200); /* 16 KiB body, only 4 KiB kept */
	assert_int_equal(fx->calls[3].code, CURLE_OK);
	memset(want, 'y', 200);
	want[200] = '\0';
	assert_string_equal(fx->calls[3].first_line, want);
	assert_string_equal(fx->calls[4].first_line, "");
	assert_int_equal(fx->calls[5].status, 404);
	assert_string_equal(fx->calls[5].first_line, "not found");
}

static void test_free_inflight(void **state)
{
	struct fixture *fx = *state;
	struct http_request req = { .url = url(fx, "/hang"), .body = "{}", .len = 2 };

	post(fx, 0, &req);
	post(fx, 1, &req);
	/* wait until both requests were sent and read by the server */
	assert_true(RUN_UNTIL(fx, count_records(fx) == 2));
	assert_int_equal(http_inflight(fx->h), 2);
	http_free(fx->h);
	fx->h = NULL;
	assert_int_equal(ev_run(fx->loop, EVRUN_NOWAIT), 0); /* no watcher left */
	assert_int_equal(fx->ndone, 0);
	assert_int_equal(fx->calls[0].calls, 0);
	assert_int_equal(fx->calls[1].calls, 0);
}

/* A callback that frees the struct http: no other callback runs. */
static void free_http(struct call *c)
{
	http_free(c->fx->h);
	c->fx->h = NULL;
}

static void test_free_from_callback(void **state)
{
	struct fixture *fx = *state;
	struct http_request hang = { .url = url(fx, "/hang"), .body = "{}", .len = 2 };

	post(fx, 0, &hang);
	fx->calls[1].then = free_http;
	post_simple(fx, 1, "/ok", "{}");
	post(fx, 2, &hang);
	wait_done(fx, 1);
	assert_null(fx->h);
	assert_int_equal(fx->calls[1].calls, 1);
	assert_int_equal(fx->calls[1].status, 200);
	assert_int_equal(ev_run(fx->loop, EVRUN_NOWAIT), 0);
	assert_int_equal(fx->ndone, 1);
}

/* A callback that starts another request (a retry, the next spooled message). */
static void post_next(struct call *c)
{
	struct fixture *fx = c->fx;
	post_simple(fx, 1, "/echo", "second");
}

static void test_post_from_callback(void **state)
{
	struct fixture *fx = *state;

	fx->calls[0].then = post_next;
	post_simple(fx, 0, "/echo", "first");
	wait_done(fx, 2);
	assert_string_equal(fx->calls[0].first_line, "first");
	assert_string_equal(fx->calls[1].first_line, "second");
	assert_int_equal(fx->calls[0].calls, 1);
	assert_int_equal(fx->calls[1].calls, 1);
	assert_int_equal(http_inflight(fx->h), 0);
}

static void test_bad_requests(void **state)
{
	struct fixture *fx = *state;
	const char *inject[] = { "X-A: ok\r\nX-Injected: 1", NULL };
	const char *nocolon[] = { "no colon here", NULL };
	struct http_request req = { .url = url(fx, "/ok"), .headers = inject, .body = "x", .len = 1 };

	assert_int_equal(http_post(fx->h, &req, on_done, &fx->calls[0]), -EINVAL);
	req.headers = nocolon;
	assert_int_equal(http_post(fx->h, &req, on_done, &fx->calls[0]), -EINVAL);
	req.headers = NULL;
	req.url = NULL;
	assert_int_equal(http_post(fx->h, &req, on_done, &fx->calls[0]), -EINVAL);
	req.url = url(fx, "/ok");
	req.timeout_ms = -1;
	assert_int_equal(http_post(fx->h, &req, on_done, &fx->calls[0]), -EINVAL);
	req.timeout_ms = 0;
	req.body = NULL;
	assert_int_equal(http_post(fx->h, &req, on_done, &fx->calls[0]), -EINVAL);
	assert_int_equal(http_inflight(fx->h), 0);

	/* Only http and https: file:// is refused by libcurl, reported on the loop. */
	struct http_request file = { .url = "file:///etc/hostname", .body = "x", .len = 1 };
	post(fx, 1, &file);
	wait_done(fx, 1);
	assert_int_equal(fx->calls[1].code, CURLE_UNSUPPORTED_PROTOCOL);
	assert_int_equal(fx->calls[1].status, 0);
	assert_int_equal(fx->calls[0].calls, 0);
}

/* Proxies come from the environment: http_proxy names the test server. */
static void test_proxy_from_env(void **state)
{
	struct fixture *fx = *state;
	char proxy[64];

	snprintf(proxy, sizeof proxy, "http://127.0.0.1:%d", fx->port);
	setenv("http_proxy", proxy, 1);
	struct http_request req = {
		.url = "http://receiver.invalid/proxied", .body = "{}", .len = 2,
	};
	post(fx, 0, &req);
	wait_done(fx, 1);
	unsetenv("http_proxy");
	assert_int_equal(fx->calls[0].code, CURLE_OK);
	assert_int_equal(fx->calls[0].status, 200);
	assert_string_equal(fx->calls[0].first_line, "proxied");

	struct rec *r;
	size_t n = read_records(fx, &r);
	assert_int_equal(n, 1);
	assert_string_equal(r[0].target, "http://receiver.invalid/proxied");
	recs_free(r, n);
}

static void test_hmac(void **state)
{
	char out[65];

	/* RFC 4231, test case 2 */
	hmac_sha256_hex("Jefe", 4, "what do ya want for nothing?", 28, out);
	assert_string_equal(out, "5bdcc146bf60754e6a042426089575c7"
				 "5a003f089d2739839dec58b964ec3843");
	/* RFC 4231, test case 1 */
	unsigned char key[20];
	memset(key, 0x0b, sizeof key);
	hmac_sha256_hex(key, sizeof key, "Hi There", 8, out);
	assert_string_equal(out, "b0344c61d8db38535ca8afceaf0bf12b"
				 "881dc200c9833da726e9376c2e32cff7");
	/* RFC 4231, test case 6: a key longer than the block size */
	unsigned char big[131];
	memset(big, 0xaa, sizeof big);
	static const char d6[] = "Test Using Larger Than Block-Size Key - Hash Key First";
	hmac_sha256_hex(big, sizeof big, d6, sizeof d6 - 1, out);
	assert_string_equal(out, "60e431591ee0b67f0d8a26aacbf5b77f"
				 "8e0bc6213728c5140546040f0ee37f54");
	/* empty key and data */
	hmac_sha256_hex(NULL, 0, NULL, 0, out);
	assert_string_equal(out, "b613679a0814d9ec772f95d778c35fc5"
				 "ff1697c493715653c6c712144292c5ad");
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	/* Loopback requests go direct whatever the environment says. */
	static const char *const proxies[] = { "http_proxy", "HTTP_PROXY", "https_proxy",
					       "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
					       "no_proxy", "NO_PROXY" };
	for (size_t i = 0; i < KL_ARRAY_LEN(proxies); i++)
		unsetenv(proxies[i]);
	signal(SIGPIPE, SIG_IGN);

	const struct CMUnitTest tests[] = {
		T(test_post_200),
		T(test_large_body),
		T(test_caller_content_type),
		T(test_empty_body),
		T(test_retry_after_seconds),
		T(test_retry_after_date),
		T(test_connection_refused),
		T(test_timeout),
		T(test_concurrent),
		T(test_keepalive),
		T(test_first_line),
		T(test_free_inflight),
		T(test_free_from_callback),
		T(test_post_from_callback),
		T(test_bad_requests),
		T(test_proxy_from_env),
		cmocka_unit_test(test_hmac),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
