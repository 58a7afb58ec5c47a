/*
 * http.c — libcurl's multi-socket interface on the libev loop.
 *
 * One CURLM per struct http. libcurl tells us what to wait for through two
 * callbacks, and we tell it what happened through curl_multi_socket_action:
 *
 *   socket callback  one ev_io per socket libcurl wants watched, created on
 *                    the first call for that socket and attached to it with
 *                    curl_multi_assign, re-armed when the wanted events
 *                    change, stopped and freed on CURL_POLL_REMOVE (libcurl
 *                    calls that before it closes the socket).
 *   timer callback   one ev_timer: -1 stops it; any other value (re)arms it
 *                    to fire once after that many milliseconds. 0 therefore
 *                    means "on the next loop iteration": libcurl must not be
 *                    called from inside its own callbacks, so the work is
 *                    never done there.
 *
 * After every curl_multi_socket_action the finished transfers are collected
 * with curl_multi_info_read; each one's done callback runs exactly once, after
 * its easy handle has left the multi. Nothing here blocks and nothing polls:
 * the loop sleeps until a socket is ready or libcurl's next deadline.
 *
 * Connection reuse comes from the multi's connection cache, which lives as long
 * as the struct http; every request gets a fresh easy handle (requests are rare:
 * one per notification attempt).
 *
 * A callback may call http_post (the new transfer starts on a later loop
 * iteration) or http_free (the teardown is then finished when control returns
 * to our watcher, and no other callback runs).
 *
 * http.c writes no log line: the caller decides what is worth logging and
 * redacts the URL. Where libcurl's error message quotes the URL's credentials
 * or its path and query (the parts that may carry a token), they are masked.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <ev.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "sinks/sinks_int.h"

#ifndef KLAXON_VERSION
#define KLAXON_VERSION "0.0.0"
#endif

#define DEFAULT_TIMEOUT_MS 10000L
#define BODY_CAP 4096	   /* response bytes kept; the rest is read and dropped */
#define FIRST_LINE_MAX 200 /* bytes of body_first_line, NUL excluded */

struct sock {
	ev_io io;		/* io.data = the struct http; io.fd = the socket */
	struct sock *prev, *next;
};

struct xfer {
	CURL *easy;
	struct curl_slist *headers;
	http_done_fn done;
	void *ctx;
	double retry_after_s;
	size_t body_len;	/* bytes kept in body, ≤ BODY_CAP */
	struct xfer *prev, *next;
	char *scrub[2];		/* URL parts to keep out of error strings */
	char errbuf[CURL_ERROR_SIZE];
	char error[CURL_ERROR_SIZE];
	char first_line[FIRST_LINE_MAX + 1];
	char body[BODY_CAP];
};

struct http {
	struct ev_loop *loop;
	CURLM *multi;
	ev_timer timer;
	struct sock *socks;	/* every socket watcher we hold */
	struct xfer *xfers;	/* every transfer in the multi */
	size_t inflight;
	unsigned depth;		/* > 0 while one of our watchers runs */
	bool dead;		/* http_free called from a done callback */
};

static unsigned global_refs;

/* ---- lists ------------------------------------------------------------------- */

#define DL_PUSH(head, e)                      \
	do {                                    \
		(e)->prev = NULL;               \
		(e)->next = (head);             \
		if (head)                       \
			(head)->prev = (e);     \
		(head) = (e);                   \
	} while (0)

#define DL_UNLINK(head, e)                          \
	do {                                          \
		if ((e)->prev)                        \
			(e)->prev->next = (e)->next;  \
		else                                  \
			(head) = (e)->next;           \
		if ((e)->next)                        \
			(e)->next->prev = (e)->prev;  \
		(e)->prev = (e)->next = NULL;         \
	} while (0)

/* ---- small helpers --------------------------------------------------------------- */

static int ascii_lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* Does the header line h start with name (case-insensitive; name has the ':')? */
static bool header_is(const char *h, size_t hlen, const char *name)
{
	size_t n = strlen(name);

	if (hlen < n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (ascii_lower((unsigned char)h[i]) != name[i])
			return false;
	return true;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static void xfer_free(struct xfer *x)
{
	if (!x)
		return;
	if (x->easy)
		curl_easy_cleanup(x->easy);
	curl_slist_free_all(x->headers);
	free(x->scrub[0]);
	free(x->scrub[1]);
	free(x);
}

static void sock_free(struct http *h, struct sock *s)
{
	ev_io_stop(h->loop, &s->io);
	DL_UNLINK(h->socks, s);
	free(s);
}

/* ---- libcurl → libev --------------------------------------------------------------- */

static void check_done(struct http *h);
static void destroy(struct http *h);

/* Our watcher callbacks call into libcurl, then collect what finished. */
static void socket_action(struct http *h, curl_socket_t fd, int flags)
{
	int running;

	h->depth++;
	curl_multi_socket_action(h->multi, fd, flags, &running);
	check_done(h);
	if (--h->depth == 0 && h->dead)
		destroy(h);
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	int flags = 0;

	if (revents & EV_READ)
		flags |= CURL_CSELECT_IN;
	if (revents & EV_WRITE)
		flags |= CURL_CSELECT_OUT;
	if (revents & EV_ERROR)
		flags |= CURL_CSELECT_ERR;
	/* w may be freed inside (CURL_POLL_REMOVE): read it first. */
	socket_action(w->data, w->fd, flags);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	socket_action(w->data, CURL_SOCKET_TIMEOUT, 0);
}

/* CURLMOPT_SOCKETFUNCTION: keep one ev_io per socket in step with libcurl. */
static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct http *h = userp;
	struct sock *s = socketp;
	int events = 0;

	if (what == CURL_POLL_REMOVE) {
		if (s)
			sock_free(h, s);
		return 0;
	}
	if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
		events |= EV_READ;
	if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
		events |= EV_WRITE;

	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s)
			return -1; /* libcurl fails the transfers using this socket */
		ev_io_init(&s->io, io_cb, fd, events);
		s->io.data = h;
		if (curl_multi_assign(h->multi, fd, s) != CURLM_OK) {
			free(s);
			return -1;
		}
		DL_PUSH(h->socks, s);
		if (events)
			ev_io_start(h->loop, &s->io);
		return 0;
	}
	if (events != (s->io.events & (EV_READ | EV_WRITE)) || !ev_is_active(&s->io)) {
		ev_io_stop(h->loop, &s->io);
		ev_io_set(&s->io, fd, events);
		if (events)
			ev_io_start(h->loop, &s->io);
	}
	return 0;
}

/* CURLMOPT_TIMERFUNCTION: one non-repeating timer; never calls libcurl. */
static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
	struct http *h = userp;

	ev_timer_stop(h->loop, &h->timer);
	if (timeout_ms >= 0) {
		ev_timer_set(&h->timer, (double)timeout_ms / 1000.0, 0.0);
		ev_timer_start(h->loop, &h->timer);
	}
	return 0;
}

/* ---- per-transfer callbacks ----------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t nmemb, void *userp)
{
	struct xfer *x = userp;
	size_t n = size * nmemb;
	size_t room = BODY_CAP - x->body_len;
	size_t take = n < room ? n : room;

	memcpy(x->body + x->body_len, p, take);
	x->body_len += take;
	return n; /* the rest is dropped, not an error */
}

/* Retry-After: delay-seconds, or an HTTP-date turned into seconds from now. */
static double parse_retry_after(const char *v, size_t len)
{
	uint64_t secs;
	char date[64];
	time_t t;
	double now;

	if (len == 0)
		return -1;
	if (v[0] >= '0' && v[0] <= '9') {
		if (kl_parse_u64(v, len, &secs) < 0)
			return -1;
		return (double)secs;
	}
	if (len >= sizeof(date))
		return -1;
	memcpy(date, v, len);
	date[len] = '\0';
	t = curl_getdate(date, NULL);
	if (t == (time_t)-1)
		return -1;
	now = (double)kl_wall_us() / 1e6;
	return (double)t > now ? (double)t - now : 0.0;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *userp)
{
	struct xfer *x = userp;
	size_t n = size * nmemb;
	size_t i, end;

	/* A status line opens a new header block (after a 100 Continue, or a
	 * proxy's CONNECT answer): only the final response's headers count. */
	if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) {
		x->retry_after_s = -1;
		return n;
	}
	if (!header_is(p, n, "retry-after:"))
		return n;
	i = strlen("retry-after:");
	end = n;
	while (i < end && is_blank(p[i]))
		i++;
	while (end > i && is_blank(p[end - 1]))
		end--;
	x->retry_after_s = parse_retry_after(p + i, end - i);
	return n;
}

/* ---- finishing a transfer --------------------------------------------------------------- */

/*
 * The first non-blank line of the body, at most FIRST_LINE_MAX bytes, cut on a
 * UTF-8 character boundary; control characters become '?' so that the line is
 * safe to put in a log.
 */
static void make_first_line(struct xfer *x)
{
	const char *b = x->body;
	size_t len = x->body_len, i = 0, n = 0;

	while (i < len && is_blank(b[i]))
		i++;
	while (i + n < len && b[i + n] != '\n' && b[i + n] != '\r')
		n++;
	while (n > 0 && (b[i + n - 1] == ' ' || b[i + n - 1] == '\t'))
		n--;
	if (n > FIRST_LINE_MAX) {
		n = FIRST_LINE_MAX;
		/* Back off continuation bytes so that no character is split. */
		while (n > 0 && ((unsigned char)b[i + n] & 0xC0) == 0x80)
			n--;
	}
	for (size_t k = 0; k < n; k++) {
		unsigned char c = (unsigned char)b[i + k];
		x->first_line[k] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	x->first_line[n] = '\0';
}

/* Copy src to x->error with every occurrence of the secret URL parts masked. */
static void make_error(struct xfer *x, const char *src)
{
	size_t o = 0, cap = sizeof(x->error) - 1;
	static const char mask[] = "[redacted]";

	while (*src && o < cap) {
		size_t skip = 0;
		for (size_t k = 0; k < KL_ARRAY_LEN(x->scrub) && !skip; k++) {
			size_t sl = x->scrub[k] ? strlen(x->scrub[k]) : 0;
			if (sl && strncmp(src, x->scrub[k], sl) == 0)
				skip = sl;
		}
		if (skip) {
			size_t m = sizeof(mask) - 1 < cap - o ? sizeof(mask) - 1 : cap - o;
			memcpy(x->error + o, mask, m);
			o += m;
			src += skip;
		} else {
			x->error[o++] = *src++;
		}
	}
	x->error[o] = '\0';
}

static void finish(struct http *h, struct xfer *x, CURLcode code)
{
	struct http_response r = { .retry_after_s = -1 };
	long status = 0;
	double secs = 0;

	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(x->easy, CURLINFO_TOTAL_TIME, &secs);
	r.status = status;
	r.curl_code = (int)code;
	r.seconds = secs;
	if (code != CURLE_OK)
		make_error(x, x->errbuf[0] ? x->errbuf : curl_easy_strerror(code));
	else
		x->error[0] = '\0';
	r.error = x->error;
	if (status > 0)
		r.retry_after_s = x->retry_after_s;
	make_first_line(x);
	r.body_first_line = x->first_line;

	x->done(x->ctx, &r);
}

static void check_done(struct http *h)
{
	CURLMsg *m;
	int left;

	while (!h->dead && (m = curl_multi_info_read(h->multi, &left))) {
		struct xfer *x;
		CURL *easy = m->easy_handle;
		CURLcode code = m->data.result;
		void *priv = NULL;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
		x = priv;
		/* m is invalid once the handle leaves the multi. */
		curl_multi_remove_handle(h->multi, easy);
		DL_UNLINK(h->xfers, x);
		h->inflight--;
		finish(h, x, code);
		xfer_free(x);
	}
}

/* ---- public ----------------------------------------------------------------------------- */

struct http *http_new(struct ev_loop *loop)
{
	struct http *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	if (global_refs == 0 && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		free(h);
		return NULL;
	}
	global_refs++;
	h->loop = loop;
	ev_timer_init(&h->timer, timer_cb, 0.0, 0.0);
	h->timer.data = h;
	h->multi = curl_multi_init();
	if (!h->multi)
		goto fail;
	if (curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_socket) != CURLM_OK ||
	    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h) != CURLM_OK ||
	    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_timer) != CURLM_OK ||
	    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h) != CURLM_OK)
		goto fail;
	return h;
fail:
	destroy(h);
	return NULL;
}

static void destroy(struct http *h)
{
	while (h->xfers) {
		struct xfer *x = h->xfers;
		DL_UNLINK(h->xfers, x);
		curl_multi_remove_handle(h->multi, x->easy);
		xfer_free(x);
	}
	/* Closing the cached connections may still call on_socket / on_timer:
	 * h stays whole until the multi is gone. */
	if (h->multi)
		curl_multi_cleanup(h->multi);
	while (h->socks)
		sock_free(h, h->socks);
	ev_timer_stop(h->loop, &h->timer);
	if (--global_refs == 0)
		curl_global_cleanup();
	free(h);
}

void http_free(struct http *h)
{
	if (!h)
		return;
	if (h->depth > 0) {
		/* Called from a done callback: no further callback runs, and the
		 * watcher that called it finishes the teardown on its way out. */
		h->dead = true;
		return;
	}
	destroy(h);
}

size_t http_inflight(const struct http *h)
{
	return h ? h->inflight : 0;
}

static int curl_errno(CURLcode c)
{
	switch (c) {
	case CURLE_OK:
		return 0;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	case CURLE_UNKNOWN_OPTION:
	case CURLE_NOT_BUILT_IN:
		return -ENOTSUP;
	default:
		return -EINVAL;
	}
}

/* The URL's userinfo and its path-and-query, kept to mask them in errors. */
static int note_secrets(struct xfer *x, const char *url)
{
	const char *hs = strstr(url, "://");
	const char *at, *pe;

	if (!hs)
		return 0;
	hs += 3;
	pe = hs + strcspn(hs, "/?#");
	at = memchr(hs, '@', (size_t)(pe - hs));
	if (at && at > hs && !(x->scrub[0] = kl_strndup(hs, (size_t)(at - hs))))
		return -ENOMEM;
	if (strlen(pe) > 1 && !(x->scrub[1] = kl_strndup(pe, strlen(pe))))
		return -ENOMEM;
	return 0;
}

static int add_headers(struct xfer *x, const char *const *hdrs)
{
	bool has_ctype = false, has_expect = false;
	struct curl_slist *l;

	for (size_t i = 0; hdrs && hdrs[i]; i++) {
		const char *s = hdrs[i];
		size_t n = strlen(s);
		/* A CR or LF would let a value smuggle in more headers. */
		if (strpbrk(s, "\r\n") || !memchr(s, ':', n))
			return -EINVAL;
		has_ctype |= header_is(s, n, "content-type:");
		has_expect |= header_is(s, n, "expect:");
		if (!(l = curl_slist_append(x->headers, s)))
			return -ENOMEM;
		x->headers = l;
	}
	if (!has_ctype) {
		if (!(l = curl_slist_append(x->headers, "Content-Type: application/json")))
			return -ENOMEM;
		x->headers = l;
	}
	/* libcurl would send "Expect: 100-continue" with a larger body and wait
	 * up to a second for a receiver that may never answer it. */
	if (!has_expect) {
		if (!(l = curl_slist_append(x->headers, "Expect:")))
			return -ENOMEM;
		x->headers = l;
	}
	return 0;
}

#define SET(opt, val)                                             \
	do {                                                      \
		if ((rc = curl_errno(curl_easy_setopt(e, opt, val)))) \
			goto fail;                                \
	} while (0)

int http_post(struct http *h, const struct http_request *req, http_done_fn done, void *ctx)
{
	struct xfer *x = NULL;
	long timeout_ms;
	CURL *e;
	CURLMcode mc;
	int rc;

	if (!h || h->dead || !req || !req->url || !done || (!req->body && req->len) ||
	    req->timeout_ms < 0)
		return -EINVAL;
	timeout_ms = req->timeout_ms ? req->timeout_ms : DEFAULT_TIMEOUT_MS;

	x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->done = done;
	x->ctx = ctx;
	x->retry_after_s = -1;
	if ((rc = note_secrets(x, req->url)) < 0 || (rc = add_headers(x, req->headers)) < 0)
		goto fail;
	e = x->easy = curl_easy_init();
	if (!e) {
		rc = -ENOMEM;
		goto fail;
	}

	SET(CURLOPT_URL, req->url);
#if LIBCURL_VERSION_NUM >= 0x075500
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
#else
	SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	SET(CURLOPT_PRIVATE, (void *)x);
	SET(CURLOPT_ERRORBUFFER, x->errbuf);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_TIMEOUT_MS, timeout_ms);
	SET(CURLOPT_USERAGENT, "klaxon/" KLAXON_VERSION);
	SET(CURLOPT_HTTPHEADER, x->headers);
	SET(CURLOPT_POST, 1L);
	/* The size first, so that a body holding NUL bytes is copied whole. */
	SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->len);
	SET(CURLOPT_COPYPOSTFIELDS, req->body ? req->body : "");
	SET(CURLOPT_SSL_VERIFYPEER, req->tls_insecure ? 0L : 1L);
	SET(CURLOPT_SSL_VERIFYHOST, req->tls_insecure ? 0L : 2L);
	SET(CURLOPT_WRITEFUNCTION, on_body);
	SET(CURLOPT_WRITEDATA, (void *)x);
	SET(CURLOPT_HEADERFUNCTION, on_header);
	SET(CURLOPT_HEADERDATA, (void *)x);
	/* Proxies: libcurl reads http_proxy, https_proxy, no_proxy, … itself. */

	mc = curl_multi_add_handle(h->multi, e);
	if (mc != CURLM_OK) {
		rc = mc == CURLM_OUT_OF_MEMORY ? -ENOMEM : -EIO;
		goto fail;
	}
	DL_PUSH(h->xfers, x);
	h->inflight++;
	return 0;
fail:
	xfer_free(x);
	return rc;
}

#undef SET

/* ---- HMAC --------------------------------------------------------------------------- */

void hmac_sha256_hex(const void *key, size_t klen, const void *data, size_t len, char out[65])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	/* OpenSSL wants non-NULL pointers even for empty input. */
	const void *k = klen ? key : "";
	const unsigned char *d = len ? data : (const void *)"";

	if (klen > INT_MAX || !HMAC(EVP_sha256(), k, (int)klen, d, len, md, &mdlen) ||
	    mdlen != 32) {
		out[0] = '\0'; /* only on allocation failure inside OpenSSL */
		return;
	}
	for (unsigned i = 0; i < 32; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 0xf];
	}
	out[64] = '\0';
}
