/*
 * redis_tls.c — the TLS bridge between hiredis (plain, over a unix socket)
 * and a rediss:// server (see redis_tls.h).
 *
 * One function moves bytes (pump): hiredis → up → SSL_write, SSL_read →
 * down → hiredis, then re-arms both watchers for what is wanted next (the
 * TLS side's wants are OpenSSL's: a read may need the socket writable during
 * a renegotiation, and so on). A full buffer stops reading its source, so
 * neither side can make the bridge grow.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/kl.h"
#include "sinks/redis_tls.h"

#define BRIDGE_BUF (64 * 1024)

struct redis_tls_ctx {
	SSL_CTX *ssl;
	bool verify;
};

enum bridge_state { B_CONNECTING, B_HANDSHAKE, B_OPEN, B_DONE };

struct redis_tls {
	struct ev_loop *loop;
	struct redis_tls_ctx *ctx;
	enum bridge_state state;
	char dir[64];	  /* the socket's private directory ("" once removed) */
	char path[128];	  /* the socket */
	int lfd, ufd, tfd; /* listening, hiredis's side, the server's */
	ev_io lw, uw, tw;
	SSL *ssl;
	int twant; /* EV_READ / EV_WRITE the TLS side waits for */
	char why[256];
	size_t up_len, down_len;
	char up[BRIDGE_BUF];   /* from hiredis, for the server */
	char down[BRIDGE_BUF]; /* from the server, for hiredis */
};

/* ---- the settings ----------------------------------------------------------------------- */

static void ssl_error_text(const char *what, char *err, size_t errlen)
{
	char e[200] = "";
	unsigned long code = ERR_get_error();
	if (code)
		ERR_error_string_n(code, e, sizeof e);
	snprintf(err, errlen, "%s%s%s", what, e[0] ? ": " : "", e);
	ERR_clear_error();
}

struct redis_tls_ctx *redis_tls_ctx_new(const char *ca_file, bool verify, char *err,
					size_t errlen)
{
	struct redis_tls_ctx *c = calloc(1, sizeof *c);
	if (!c || !(c->ssl = SSL_CTX_new(TLS_client_method()))) {
		snprintf(err, errlen, "cannot set up TLS (out of memory)");
		free(c);
		return NULL;
	}
	c->verify = verify;
	SSL_CTX_set_min_proto_version(c->ssl, TLS1_2_VERSION);
	SSL_CTX_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE |
					 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_verify(c->ssl, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
	int ok = ca_file ? SSL_CTX_load_verify_locations(c->ssl, ca_file, NULL)
			 : SSL_CTX_set_default_verify_paths(c->ssl);
	if (ok != 1) {
		char what[300];
		snprintf(what, sizeof what, "cannot load the CA certificates of %s",
			 ca_file ? ca_file : "the system");
		ssl_error_text(what, err, errlen);
		redis_tls_ctx_free(c);
		return NULL;
	}
	return c;
}

void redis_tls_ctx_free(struct redis_tls_ctx *c)
{
	if (!c)
		return;
	SSL_CTX_free(c->ssl);
	free(c);
}

/* ---- the bridge ------------------------------------------------------------------------- */

static void remove_socket(struct redis_tls *b)
{
	if (b->lfd >= 0) {
		ev_io_stop(b->loop, &b->lw);
		close(b->lfd);
		b->lfd = -1;
	}
	if (b->dir[0]) {
		unlink(b->path);
		rmdir(b->dir);
		b->dir[0] = '\0';
	}
}

static void close_fd(struct redis_tls *b, ev_io *w, int *fd)
{
	if (*fd < 0)
		return;
	ev_io_stop(b->loop, w);
	close(*fd);
	*fd = -1;
}

static void write_to_hiredis(struct redis_tls *b);

/* The end: hiredis's side closed (it sees the connection end), why kept. */
static void finish(struct redis_tls *b, const char *why)
{
	if (b->state == B_DONE)
		return;
	b->state = B_DONE;
	if (why && !b->why[0])
		snprintf(b->why, sizeof b->why, "%s", why);
	else if (!b->why[0])
		snprintf(b->why, sizeof b->why, "closed");
	if (b->ssl) {
		SSL_free(b->ssl);
		b->ssl = NULL;
	}
	close_fd(b, &b->tw, &b->tfd);
	remove_socket(b);
	if (b->ufd >= 0)
		write_to_hiredis(b); /* the replies that came before the end */
	close_fd(b, &b->uw, &b->ufd);
}

static void finish_ssl(struct redis_tls *b, int rc, const char *what)
{
	int e = SSL_get_error(b->ssl, rc);
	char why[256];
	if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
		snprintf(why, sizeof why, "%s: %s", what,
			 errno && e == SSL_ERROR_SYSCALL ? strerror(errno) : "closed by the server");
		ERR_clear_error();
	} else if (b->state == B_HANDSHAKE && SSL_get_verify_result(b->ssl) != X509_V_OK) {
		snprintf(why, sizeof why, "TLS: the server's certificate is not trusted: %s",
			 X509_verify_cert_error_string(SSL_get_verify_result(b->ssl)));
		ERR_clear_error();
	} else {
		ssl_error_text(what, why, sizeof why);
	}
	finish(b, why);
}

/* SSL wants the socket readable or writable before it can go on. */
static bool ssl_wants(struct redis_tls *b, int rc)
{
	int e = SSL_get_error(b->ssl, rc);
	if (e == SSL_ERROR_WANT_READ)
		b->twant |= EV_READ;
	else if (e == SSL_ERROR_WANT_WRITE)
		b->twant |= EV_WRITE;
	else
		return false;
	return true;
}

static void read_from_hiredis(struct redis_tls *b)
{
	while (b->ufd >= 0 && b->up_len < sizeof b->up) {
		ssize_t n = read(b->ufd, b->up + b->up_len, sizeof b->up - b->up_len);
		if (n > 0) {
			b->up_len += (size_t)n;
		} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
			finish(b, "closed by hiredis");
			return;
		} else if (errno == EAGAIN) {
			return;
		}
	}
}

static void write_to_hiredis(struct redis_tls *b)
{
	while (b->ufd >= 0 && b->down_len > 0) {
		ssize_t n = write(b->ufd, b->down, b->down_len);
		if (n > 0) {
			memmove(b->down, b->down + n, b->down_len - (size_t)n);
			b->down_len -= (size_t)n;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else {
			return; /* EAGAIN: when writable; an error: hiredis sees it too */
		}
	}
}

static void tls_write(struct redis_tls *b)
{
	while (b->state == B_OPEN && b->up_len > 0) {
		ERR_clear_error();
		int n = SSL_write(b->ssl, b->up, (int)b->up_len);
		if (n > 0) {
			memmove(b->up, b->up + n, b->up_len - (size_t)n);
			b->up_len -= (size_t)n;
		} else if (!ssl_wants(b, n)) {
			finish_ssl(b, n, "TLS write");
		} else {
			return;
		}
	}
}

static void tls_read(struct redis_tls *b)
{
	while (b->state == B_OPEN && b->down_len < sizeof b->down) {
		ERR_clear_error();
		int n = SSL_read(b->ssl, b->down + b->down_len, (int)(sizeof b->down - b->down_len));
		if (n > 0)
			b->down_len += (size_t)n;
		else if (!ssl_wants(b, n))
			finish_ssl(b, n, "TLS read");
		else
			return;
	}
}

static void handshake(struct redis_tls *b)
{
	ERR_clear_error();
	int rc = SSL_connect(b->ssl);
	if (rc == 1)
		b->state = B_OPEN;
	else if (!ssl_wants(b, rc))
		finish_ssl(b, rc, "TLS handshake");
}

static void set_events(struct redis_tls *b, ev_io *w, int fd, int events)
{
	if (fd < 0 || (ev_is_active(w) && (w->events & (EV_READ | EV_WRITE)) == events))
		return;
	ev_io_stop(b->loop, w);
	if (events) {
		ev_io_set(w, fd, events);
		ev_io_start(b->loop, w);
	}
}

static void rearm(struct redis_tls *b)
{
	if (b->state == B_DONE)
		return;
	int u = (b->up_len < sizeof b->up ? EV_READ : 0) | (b->down_len ? EV_WRITE : 0);
	int t = b->state == B_CONNECTING ? EV_WRITE : b->twant;
	set_events(b, &b->uw, b->ufd, u);
	set_events(b, &b->tw, b->tfd, t);
}

static void pump(struct redis_tls *b)
{
	b->twant = 0;
	read_from_hiredis(b);
	if (b->state == B_HANDSHAKE)
		handshake(b);
	tls_write(b);
	tls_read(b);
	write_to_hiredis(b);
	rearm(b);
}

static void connected(struct redis_tls *b)
{
	int err = 0;
	socklen_t len = sizeof err;
	if (getsockopt(b->tfd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err) {
		char why[160];
		snprintf(why, sizeof why, "cannot connect: %s", strerror(err));
		finish(b, why);
		return;
	}
	b->state = B_HANDSHAKE;
}

static void on_server(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	struct redis_tls *b = w->data;
	if (b->state == B_CONNECTING)
		connected(b);
	if (b->state != B_DONE)
		pump(b);
}

static void on_hiredis(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	pump(w->data);
}

/* hiredis connects: only a peer that is this process is taken. */
static void on_listen(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	struct redis_tls *b = w->data;
	int fd = accept4(b->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return;
	struct ucred cred;
	socklen_t len = sizeof cred;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.pid != getpid()) {
		close(fd);
		return;
	}
	b->ufd = fd;
	remove_socket(b);
	ev_io_init(&b->uw, on_hiredis, fd, EV_READ);
	b->uw.data = b;
	ev_io_start(b->loop, &b->uw);
	pump(b);
}

static int listen_socket(struct redis_tls *b, char *err, size_t errlen)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(b->dir, sizeof b->dir, "%s/klaxon-redis-XXXXXX",
		 tmp && tmp[0] && strlen(tmp) < 30 ? tmp : "/tmp");
	if (!mkdtemp(b->dir)) {
		snprintf(err, errlen, "TLS: cannot make the bridge's folder in %s: %s",
			 tmp && tmp[0] ? tmp : "/tmp", strerror(errno));
		b->dir[0] = '\0';
		return -1;
	}
	snprintf(b->path, sizeof b->path, "%s/s", b->dir);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	memcpy(sa.sun_path, b->path, strlen(b->path) + 1);
	b->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (b->lfd < 0 || bind(b->lfd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
	    listen(b->lfd, 1) < 0) {
		snprintf(err, errlen, "TLS: cannot listen on %s: %s", b->path, strerror(errno));
		return -1;
	}
	ev_io_init(&b->lw, on_listen, b->lfd, EV_READ);
	b->lw.data = b;
	ev_io_start(b->loop, &b->lw);
	return 0;
}

static int connect_server(struct redis_tls *b, const struct sockaddr_storage *addr,
			  socklen_t addrlen, char *err, size_t errlen)
{
	b->tfd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (b->tfd < 0 ||
	    (connect(b->tfd, (const struct sockaddr *)addr, addrlen) < 0 && errno != EINPROGRESS)) {
		snprintf(err, errlen, "cannot connect: %s", strerror(errno));
		return -1;
	}
	ev_io_init(&b->tw, on_server, b->tfd, EV_WRITE);
	b->tw.data = b;
	ev_io_start(b->loop, &b->tw);
	return 0;
}

/* The server's name: SNI (not for an address) and the certificate's check. */
static int name_the_server(struct redis_tls *b, const char *host, char *err, size_t errlen)
{
	unsigned char bin[16];
	bool ip = inet_pton(AF_INET, host, bin) == 1 || inet_pton(AF_INET6, host, bin) == 1;
	int ok = ip ? 1 : SSL_set_tlsext_host_name(b->ssl, host);
	if (ok == 1 && b->ctx->verify)
		ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(b->ssl), host)
			: SSL_set1_host(b->ssl, host);
	if (ok != 1) {
		ssl_error_text("TLS: cannot set the server's name", err, errlen);
		return -1;
	}
	return 0;
}

struct redis_tls *redis_tls_start(struct ev_loop *loop, struct redis_tls_ctx *c,
				  const struct sockaddr_storage *addr, socklen_t addrlen,
				  const char *host, char *err, size_t errlen)
{
	struct redis_tls *b = calloc(1, sizeof *b);
	err[0] = '\0';
	if (!b) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	b->loop = loop;
	b->ctx = c;
	b->lfd = b->ufd = b->tfd = -1;
	b->state = B_CONNECTING;
	if (!(b->ssl = SSL_new(c->ssl))) {
		ssl_error_text("TLS: cannot start a connection", err, errlen);
		redis_tls_free(b);
		return NULL;
	}
	if (name_the_server(b, host, err, errlen) < 0 || listen_socket(b, err, errlen) < 0 ||
	    connect_server(b, addr, addrlen, err, errlen) < 0 || SSL_set_fd(b->ssl, b->tfd) != 1) {
		if (!err[0])
			ssl_error_text("TLS: cannot start a connection", err, errlen);
		redis_tls_free(b);
		return NULL;
	}
	SSL_set_connect_state(b->ssl);
	return b;
}

const char *redis_tls_path(const struct redis_tls *b)
{
	return b->path;
}

const char *redis_tls_error(const struct redis_tls *b)
{
	return b && b->why[0] ? b->why : NULL;
}

void redis_tls_free(struct redis_tls *b)
{
	if (!b)
		return;
	if (b->ssl)
		SSL_free(b->ssl);
	b->ssl = NULL;
	close_fd(b, &b->tw, &b->tfd);
	close_fd(b, &b->uw, &b->ufd);
	remove_socket(b);
	free(b);
}
