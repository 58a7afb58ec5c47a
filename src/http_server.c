/*
 * http_server.c — see http_server.h.
 *
 * The listening socket is ours (so a bind failure is reported with its errno
 * and the address), handed to MHD with MHD_OPTION_LISTEN_SOCKET; MHD closes
 * it when stopped. MHD is started with MHD_USE_EPOLL and no internal thread:
 * the descriptor of its epoll set becomes readable when any of its sockets
 * (the listener, every connection) is ready, so one ev_io covers them all.
 * After every MHD_run the timer is re-armed with MHD_get_timeout (connection
 * timeouts, data already buffered: a timeout of 0 means "run again now").
 *
 * Limits: CONNECTIONS connections at once, an idle connection closed after
 * IDLE_S seconds; MHD bounds the memory of each.
 */
#include <errno.h>
#include <ev.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "src/http_server.h"

#define CONNECTIONS 32
#define IDLE_S 10
#define BACKLOG 64

struct http_server {
	struct ev_loop *loop;
	struct MHD_Daemon *mhd;
	ev_io io;
	ev_timer timer;
	http_server_fn fn;
	void *ctx;
	struct kl_buf body;
	char addr[128];
};

static void rearm(struct http_server *s)
{
	MHD_UNSIGNED_LONG_LONG ms = 0;
	ev_timer_stop(s->loop, &s->timer);
	if (MHD_get_timeout(s->mhd, &ms) != MHD_YES)
		return;
	ev_timer_set(&s->timer, (double)ms / 1000.0, 0.0);
	ev_timer_start(s->loop, &s->timer);
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct http_server *s = w->data;
	MHD_run(s->mhd);
	rearm(s);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct http_server *s = w->data;
	MHD_run(s->mhd);
	rearm(s);
}

static enum MHD_Result answer(struct MHD_Connection *c, int status, const char *type,
			      const char *body, size_t len, bool allow)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (allow)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	enum MHD_Result rc = MHD_queue_response(c, (unsigned)status, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **req_cls)
{
	struct http_server *s = cls;
	static const char text[] = "text/plain; charset=utf-8";
	if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD)) {
		static const char no[] = "only GET and HEAD are served\n";
		return answer(c, MHD_HTTP_METHOD_NOT_ALLOWED, text, no, sizeof no - 1, true);
	}
	const char *type = text;
	kl_buf_reset(&s->body);
	int status = s->fn(s->ctx, url, &s->body, &type);
	return answer(c, status, type, s->body.p ? s->body.p : "", s->body.len, false);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct http_server *s = cls;
	char msg[512];
	vsnprintf(msg, sizeof msg, fmt, ap);
	size_t n = strlen(msg);
	while (n && msg[n - 1] == '\n')
		msg[--n] = '\0';
	kl_log(KL_LOG_WARN, "listen %s: %s", s->addr, msg);
}

/* HOST:PORT or [V6]:PORT → a bound, listening, non-blocking socket. */
static int bind_listen(const char *addr, int *fd_out)
{
	char host[128];
	const char *colon = strrchr(addr, ':');
	if (!colon || colon == addr || (size_t)(colon - addr) >= sizeof host)
		return -EINVAL;
	const char *h = addr;
	size_t hl = (size_t)(colon - addr);
	if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
		h++;
		hl -= 2;
	}
	memcpy(host, h, hl);
	host[hl] = '\0';
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *ai = NULL;
	int g = getaddrinfo(host, colon + 1, &hints, &ai);
	if (g != 0) {
		kl_log(KL_LOG_ERROR, "listen %s: cannot resolve '%s': %s", addr, host, gai_strerror(g));
		return -EADDRNOTAVAIL;
	}
	int err = -EADDRNOTAVAIL;
	const char *what = "bind";
	for (struct addrinfo *p = ai; p; p = p->ai_next) {
		int fd = socket(p->ai_family, p->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
				p->ai_protocol);
		if (fd < 0) {
			err = -errno;
			what = "create a socket";
			continue;
		}
		int on = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
		if (bind(fd, p->ai_addr, p->ai_addrlen) < 0) {
			err = -errno;
			what = "bind";
			close(fd);
			continue;
		}
		if (listen(fd, BACKLOG) < 0) {
			err = -errno;
			what = "listen";
			close(fd);
			continue;
		}
		freeaddrinfo(ai);
		*fd_out = fd;
		return 0;
	}
	freeaddrinfo(ai);
	kl_log(KL_LOG_ERROR, "listen %s: cannot %s: %s", addr, what, strerror(-err));
	return err;
}

struct http_server *http_server_start(struct ev_loop *loop, const char *addr, http_server_fn fn,
				      void *ctx, int *err)
{
	struct http_server *s = calloc(1, sizeof *s);
	int fd = -1;
	if (!s) {
		*err = -ENOMEM;
		return NULL;
	}
	s->loop = loop;
	s->fn = fn;
	s->ctx = ctx;
	snprintf(s->addr, sizeof s->addr, "%s", addr);
	int rc = bind_listen(addr, &fd);
	if (rc < 0) {
		*err = rc;
		free(s);
		return NULL;
	}
	s->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request, s,
				  MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
				  MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
				  MHD_OPTION_CONNECTION_LIMIT, (unsigned)CONNECTIONS,
				  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_S,
				  MHD_OPTION_END);
	const union MHD_DaemonInfo *info =
		s->mhd ? MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD) : NULL;
	if (!info) {
		kl_log(KL_LOG_ERROR, "listen %s: libmicrohttpd cannot start (epoll mode)", addr);
		if (s->mhd)
			MHD_stop_daemon(s->mhd);
		else
			close(fd);
		free(s);
		*err = -EIO;
		return NULL;
	}
	ev_io_init(&s->io, on_io, info->epoll_fd, EV_READ);
	ev_init(&s->timer, on_timer);
	s->io.data = s->timer.data = s;
	ev_io_start(loop, &s->io);
	rearm(s);
	return s;
}

void http_server_free(struct http_server *s)
{
	if (!s)
		return;
	ev_io_stop(s->loop, &s->io);
	ev_timer_stop(s->loop, &s->timer);
	MHD_stop_daemon(s->mhd);
	kl_buf_free(&s->body);
	free(s);
}
