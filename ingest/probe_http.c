/*
 * probe_http.c — the http probe: a GET through libcurl's multi-socket
 * interface on the loop (the wiring of sinks/http.c: one ev_io per socket
 * libcurl names, one ev_timer for its deadline, curl_multi_socket_action from
 * our watchers only, never from inside libcurl's callbacks).
 *
 * Fields: `up` (1 for an answer with a status from 200 to 399), `status`,
 * `latency` (libcurl's total time), `error` (libcurl's reason, or "HTTP 503"),
 * and for https `cert_days_left`, from the peer certificate's notAfter as
 * libcurl's certificate info shows it (CURLOPT_CERTINFO). Every check opens a
 * fresh connection (certificate info is only gathered on a new one, and a
 * probe should see what a new client sees).
 *
 * Verification is on unless tls_verify: false. When it fails (an expired or
 * self-signed certificate, a wrong name), the check is run once more with
 * verification off, to read the certificate and the status all the same: the
 * result has up = 0, the verification error in `error`, and the expiry — an
 * expired certificate is exactly when cert_days_left matters.
 *
 * The body is read and dropped. Redirects are not followed (a 301 is up).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "ingest/ingest_int.h"

#ifndef KLAXON_VERSION
#define KLAXON_VERSION "0.0.0"
#endif

struct hsock {
	ev_io io;
	struct hsock *next;
	struct hprobe *h;
};

struct hprobe {
	struct ingest_probe *p;
	CURLM *multi;
	CURL *easy;	     /* the transfer in flight, or NULL */
	ev_timer timer;
	struct hsock *socks;
	bool insecure_retry; /* the transfer in flight is the unverified second look */
	char verify_error[PROBE_ERR_MAX];
	char errbuf[CURL_ERROR_SIZE];
};

static unsigned curl_refs;

/* ---- certificate dates ---------------------------------------------------------------- */

static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";

static int num(const char **s, unsigned digits_max, int *out)
{
	const char *p = *s;
	int v = 0;
	unsigned n = 0;
	while (*p >= '0' && *p <= '9' && n < digits_max) {
		v = v * 10 + (*p - '0');
		p++;
		n++;
	}
	if (!n)
		return -EINVAL;
	*s = p;
	*out = v;
	return 0;
}

int probe_cert_date(const char *s, int64_t *out_us)
{
	int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
	const char *p = s;
	if (!s)
		return -EINVAL;
	if (strncmp(p, "Expire date:", 12) == 0)
		p += 12;
	while (*p == ' ')
		p++;
	bool iso = p[0] >= '0' && p[0] <= '9';
	if (iso) { /* 2024-11-14 22:13:20 GMT */
		if (num(&p, 4, &y) < 0 || *p++ != '-' || num(&p, 2, &mo) < 0 || *p++ != '-' ||
		    num(&p, 2, &d) < 0 || *p++ != ' ')
			return -EINVAL;
	} else { /* Nov 14 22:13:20 2024 GMT (OpenSSL's ASN1_TIME_print) */
		for (int i = 0; i < 12; i++)
			if (strncmp(p, months + 3 * i, 3) == 0)
				mo = i + 1;
		if (!mo)
			return -EINVAL;
		p += 3;
		while (*p == ' ')
			p++;
		if (num(&p, 2, &d) < 0 || *p++ != ' ')
			return -EINVAL;
	}
	if (num(&p, 2, &h) < 0 || *p++ != ':' || num(&p, 2, &mi) < 0 || *p++ != ':' ||
	    num(&p, 2, &sec) < 0)
		return -EINVAL;
	if (!iso && (*p++ != ' ' || num(&p, 4, &y) < 0))
		return -EINVAL;
	while (*p == ' ')
		p++;
	if (*p && strcmp(p, "GMT") != 0 && strcmp(p, "UTC") != 0 && strcmp(p, "Z") != 0)
		return -EINVAL;
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return -EINVAL;
	int64_t days = kl_days_from_civil(y, (unsigned)mo, (unsigned)d);
	*out_us = ((days * 86400) + h * 3600 + mi * 60 + sec) * INT64_C(1000000);
	return 0;
}

/* ---- libcurl on libev ----------------------------------------------------------------------- */

static void check_done(struct hprobe *h);

static void action(struct hprobe *h, curl_socket_t fd, int flags)
{
	int running;
	curl_multi_socket_action(h->multi, fd, flags, &running);
	check_done(h);
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct hsock *s = w->data;
	int flags = (revents & EV_READ ? CURL_CSELECT_IN : 0) |
		    (revents & EV_WRITE ? CURL_CSELECT_OUT : 0) |
		    (revents & EV_ERROR ? CURL_CSELECT_ERR : 0);
	action(s->h, w->fd, flags); /* s may be freed inside */
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	action(w->data, CURL_SOCKET_TIMEOUT, 0);
}

static void sock_free(struct hprobe *h, struct hsock *s)
{
	ev_io_stop(h->p->loop, &s->io);
	for (struct hsock **pp = &h->socks; *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	}
	free(s);
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct hprobe *h = userp;
	struct hsock *s = socketp;
	int events = (what == CURL_POLL_IN || what == CURL_POLL_INOUT ? EV_READ : 0) |
		     (what == CURL_POLL_OUT || what == CURL_POLL_INOUT ? EV_WRITE : 0);
	if (what == CURL_POLL_REMOVE) {
		if (s)
			sock_free(h, s);
		return 0;
	}
	if (!s) {
		s = calloc(1, sizeof *s);
		if (!s)
			return -1;
		s->h = h;
		ev_io_init(&s->io, io_cb, fd, events);
		s->io.data = s;
		if (curl_multi_assign(h->multi, fd, s) != CURLM_OK) {
			free(s);
			return -1;
		}
		s->next = h->socks;
		h->socks = s;
	} else {
		ev_io_stop(h->p->loop, &s->io);
		ev_io_set(&s->io, fd, events);
	}
	if (events)
		ev_io_start(h->p->loop, &s->io);
	return 0;
}

static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
	struct hprobe *h = userp;
	ev_timer_stop(h->p->loop, &h->timer);
	if (timeout_ms >= 0) {
		ev_timer_set(&h->timer, (double)timeout_ms / 1000.0, 0.0);
		ev_timer_start(h->p->loop, &h->timer);
	}
	return 0;
}

static size_t discard(char *ptr, size_t size, size_t nmemb, void *userp)
{
	return size * nmemb;
}

/* ---- the check -------------------------------------------------------------------------- */

static void drop_easy(struct hprobe *h)
{
	if (!h->easy)
		return;
	curl_multi_remove_handle(h->multi, h->easy);
	curl_easy_cleanup(h->easy);
	h->easy = NULL;
}

static int add_transfer(struct hprobe *h, bool verify)
{
	struct ingest_probe *p = h->p;
	CURL *e = curl_easy_init();
	/* the probe's deadline decides (one message for every kind); libcurl's
	 * own limit is a backstop */
	long ms = (long)(p->timeout_us / 1000) + 1000;
	if (!e)
		return -ENOMEM;
	h->errbuf[0] = '\0';
	curl_easy_setopt(e, CURLOPT_URL, p->target);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, h->errbuf);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, ms > 0 ? ms : 1L);
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
	curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
	curl_easy_setopt(e, CURLOPT_CERTINFO, 1L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "klaxon-probe/" KLAXON_VERSION);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, verify ? 1L : 0L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, verify ? 2L : 0L);
	if (p->ca_file)
		curl_easy_setopt(e, CURLOPT_CAINFO, p->ca_file);
	curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)h);
	if (curl_multi_add_handle(h->multi, e) != CURLM_OK) {
		curl_easy_cleanup(e);
		return -ENOMEM;
	}
	h->easy = e;
	h->insecure_retry = !verify && !p->tls_insecure;
	return 0;
}

static bool verify_failure(CURLcode c)
{
	return c == CURLE_PEER_FAILED_VERIFICATION
#if defined(CURLE_SSL_CACERT) && CURLE_SSL_CACERT != CURLE_PEER_FAILED_VERIFICATION
	       || c == CURLE_SSL_CACERT
#endif
		;
}

static void read_cert(struct hprobe *h)
{
	struct curl_certinfo *ci = NULL;
	if (curl_easy_getinfo(h->easy, CURLINFO_CERTINFO, &ci) != CURLE_OK || !ci ||
	    ci->num_of_certs < 1)
		return;
	for (struct curl_slist *s = ci->certinfo[0]; s; s = s->next) {
		int64_t at;
		if (strncmp(s->data, "Expire date:", 12) == 0 && probe_cert_date(s->data, &at) == 0) {
			probe_set(h->p, PF_HTTP_CERT_DAYS, (double)(at - kl_wall_us()) / 86400e6);
			return;
		}
	}
}

static void transfer_done(struct hprobe *h, CURLcode code)
{
	struct ingest_probe *p = h->p;
	long status = 0;
	double secs = 0;
	char reason[PROBE_ERR_MAX];

	snprintf(reason, sizeof reason, "%s", h->errbuf[0] ? h->errbuf : curl_easy_strerror(code));
	if (code != CURLE_OK && verify_failure(code) && !h->insecure_retry && !p->tls_insecure) {
		/* look again without verification, for the certificate and status */
		snprintf(h->verify_error, sizeof h->verify_error, "%s", reason);
		probe_set(p, PF_HTTP_LATENCY, probe_elapsed(p));
		drop_easy(h);
		if (add_transfer(h, false) < 0)
			probe_fail(p, "%s", h->verify_error);
		return;
	}
	curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(h->easy, CURLINFO_TOTAL_TIME, &secs);
	read_cert(h);
	bool retry = h->insecure_retry;
	drop_easy(h);
	if (status > 0)
		probe_set(p, PF_HTTP_STATUS, (double)status);
	if (!retry)
		probe_set(p, PF_HTTP_LATENCY, secs);
	if (retry) {
		probe_fail(p, "%s", h->verify_error);
	} else if (code != CURLE_OK) {
		probe_fail(p, "%s", reason);
	} else if (status < 200 || status > 399) {
		probe_fail(p, "HTTP %ld", status);
	} else {
		probe_done(p);
	}
}

static void check_done(struct hprobe *h)
{
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(h->multi, &left))) {
		if (m->msg != CURLMSG_DONE || m->easy_handle != h->easy)
			continue;
		transfer_done(h, m->data.result); /* m is invalid after this */
	}
}

static int http_init(struct ingest_probe *p)
{
	struct hprobe *h = calloc(1, sizeof *h);
	if (!h)
		return -ENOMEM;
	h->p = p;
	ev_timer_init(&h->timer, timer_cb, 0.0, 0.0);
	h->timer.data = h;
	if (curl_refs == 0 && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		free(h);
		return -ENOMEM;
	}
	curl_refs++;
	p->impl = h;
	h->multi = curl_multi_init();
	if (!h->multi)
		return -ENOMEM;
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_timer);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
	return 0;
}

static void http_start(struct ingest_probe *p)
{
	struct hprobe *h = p->impl;
	h->verify_error[0] = '\0';
	if (add_transfer(h, !p->tls_insecure) < 0)
		probe_fail(p, "cannot start the request: out of memory");
}

static void http_cancel(struct ingest_probe *p)
{
	drop_easy(p->impl);
}

static void http_destroy(struct ingest_probe *p)
{
	struct hprobe *h = p->impl;
	if (!h)
		return;
	drop_easy(h);
	if (h->multi)
		curl_multi_cleanup(h->multi);
	while (h->socks)
		sock_free(h, h->socks);
	ev_timer_stop(p->loop, &h->timer);
	if (--curl_refs == 0)
		curl_global_cleanup();
	free(h);
	p->impl = NULL;
}

const struct probe_ops probe_http_ops = { http_init, http_start, http_cancel, http_destroy };
