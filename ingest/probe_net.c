/*
 * probe_net.c — host name lookups off the loop, and the tcp probe.
 *
 * getaddrinfo blocks (a DNS server that does not answer holds it for
 * seconds), so a name is looked up on a short-lived detached thread that
 * reports back to the loop with ev_async. A numeric address needs no thread.
 * The lookup object is shared by the thread and the loop under a mutex; the
 * last of the two to let go frees it, so cancelling a lookup in flight (a
 * timeout, a stop) never waits for the thread and never leaves it writing
 * into freed memory.
 *
 * tcp: a non-blocking connect watched with ev_io for writability, then
 * SO_ERROR; `latency` is the connect time (the lookup included), `up` 1 when
 * the connection was accepted. The socket is closed at once.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ingest/ingest_int.h"

/* ---- lookups -------------------------------------------------------------------- */

struct probe_lookup {
	pthread_mutex_t mu;
	ev_async async;
	struct ev_loop *loop;
	probe_lookup_fn fn;
	void *ctx;
	char host[256];
	uint16_t port;
	bool cancelled; /* the loop let go: the thread frees it */
	bool finished;	/* the thread let go: the loop frees it */
	int err;
	struct sockaddr_storage addr;
	socklen_t len;
};

static void lookup_free(struct probe_lookup *l)
{
	pthread_mutex_destroy(&l->mu);
	free(l);
}

static void *lookup_thread(void *arg)
{
	struct probe_lookup *l = arg;
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_ADDRCONFIG };
	struct addrinfo *res = NULL;
	int err = getaddrinfo(l->host, NULL, &hints, &res);
	pthread_mutex_lock(&l->mu);
	if (err == 0 && res && res->ai_addrlen <= sizeof l->addr) {
		memcpy(&l->addr, res->ai_addr, res->ai_addrlen);
		l->len = res->ai_addrlen;
	} else if (err == 0) {
		err = EAI_NONAME;
	}
	if (res)
		freeaddrinfo(res);
	l->err = err;
	bool cancelled = l->cancelled;
	l->finished = true;
	if (!cancelled)
		ev_async_send(l->loop, &l->async);
	pthread_mutex_unlock(&l->mu);
	if (cancelled)
		lookup_free(l);
	return NULL;
}

static void set_port(struct sockaddr_storage *a, uint16_t port)
{
	if (a->ss_family == AF_INET)
		((struct sockaddr_in *)a)->sin_port = htons(port);
	else if (a->ss_family == AF_INET6)
		((struct sockaddr_in6 *)a)->sin6_port = htons(port);
}

static void on_async(struct ev_loop *loop, ev_async *w, int revents)
{
	struct probe_lookup *l = w->data;
	pthread_mutex_lock(&l->mu);
	bool finished = l->finished;
	pthread_mutex_unlock(&l->mu);
	if (!finished)
		return;
	ev_async_stop(loop, &l->async);
	set_port(&l->addr, l->port);
	probe_lookup_fn fn = l->fn;
	void *ctx = l->ctx;
	int err = l->err;
	struct sockaddr_storage addr = l->addr;
	socklen_t len = l->len;
	lookup_free(l);
	fn(ctx, err, &addr, len);
}

static bool numeric(const char *host, uint16_t port, struct sockaddr_storage *a, socklen_t *len)
{
	struct sockaddr_in *v4 = (struct sockaddr_in *)a;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)a;
	memset(a, 0, sizeof *a);
	if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		*len = sizeof *v4;
	} else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		*len = sizeof *v6;
	} else {
		return false;
	}
	set_port(a, port);
	return true;
}

int probe_lookup_start(struct ev_loop *loop, const char *host, uint16_t port, probe_lookup_fn fn,
		       void *ctx, struct probe_lookup **out, struct sockaddr_storage *addr,
		       socklen_t *len)
{
	*out = NULL;
	if (numeric(host, port, addr, len))
		return 1;
	if (strlen(host) >= sizeof((struct probe_lookup *)0)->host)
		return -ENAMETOOLONG;
	struct probe_lookup *l = calloc(1, sizeof *l);
	if (!l)
		return -ENOMEM;
	pthread_mutex_init(&l->mu, NULL);
	l->loop = loop;
	l->fn = fn;
	l->ctx = ctx;
	l->port = port;
	memcpy(l->host, host, strlen(host) + 1);
	ev_async_init(&l->async, on_async);
	l->async.data = l;
	ev_async_start(loop, &l->async);
	pthread_attr_t attr;
	pthread_t t;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	int rc = pthread_create(&t, &attr, lookup_thread, l);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		ev_async_stop(loop, &l->async);
		lookup_free(l);
		return -rc;
	}
	*out = l;
	return 0;
}

void probe_lookup_cancel(struct probe_lookup *l)
{
	if (!l)
		return;
	ev_async_stop(l->loop, &l->async);
	pthread_mutex_lock(&l->mu);
	bool finished = l->finished;
	l->cancelled = true;
	pthread_mutex_unlock(&l->mu);
	if (finished)
		lookup_free(l);
}

int probe_addr_text(const struct sockaddr_storage *a, char *out, size_t outlen)
{
	const void *src = a->ss_family == AF_INET
				  ? (const void *)&((const struct sockaddr_in *)a)->sin_addr
				  : (const void *)&((const struct sockaddr_in6 *)a)->sin6_addr;
	return inet_ntop(a->ss_family, src, out, (socklen_t)outlen) ? 0 : -errno;
}

/* ---- tcp ------------------------------------------------------------------------------ */

struct tcp {
	ev_io io;
	struct probe_lookup *lookup;
	char host[256];
	uint16_t port;
};

static void tcp_close(struct ingest_probe *p)
{
	struct tcp *t = p->impl;
	probe_lookup_cancel(t->lookup);
	t->lookup = NULL;
	if (t->io.fd >= 0) {
		ev_io_stop(p->loop, &t->io);
		close(t->io.fd);
		ev_io_set(&t->io, -1, EV_WRITE);
	}
}

static void on_connected(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ingest_probe *p = w->data;
	int soerr = 0;
	socklen_t sl = sizeof soerr;
	if (getsockopt(w->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
		soerr = errno;
	double secs = probe_elapsed(p);
	tcp_close(p);
	if (soerr) {
		probe_fail(p, "connect to %s:%u: %s", ((struct tcp *)p->impl)->host,
			   ((struct tcp *)p->impl)->port, strerror(soerr));
		return;
	}
	probe_set(p, PF_TCP_LATENCY, secs);
	probe_done(p);
}

static void tcp_connect(struct ingest_probe *p, const struct sockaddr_storage *a, socklen_t len)
{
	struct tcp *t = p->impl;
	int fd = socket(a->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		probe_fail(p, "socket: %s", strerror(errno));
		return;
	}
	if (connect(fd, (const struct sockaddr *)a, len) == 0 || errno == EINPROGRESS) {
		ev_io_set(&t->io, fd, EV_WRITE);
		ev_io_start(p->loop, &t->io);
		return;
	}
	int e = errno;
	close(fd);
	probe_fail(p, "connect to %s:%u: %s", t->host, t->port, strerror(e));
}

static void on_looked_up(void *ctx, int err, const struct sockaddr_storage *a, socklen_t len)
{
	struct ingest_probe *p = ctx;
	struct tcp *t = p->impl;
	t->lookup = NULL;
	if (err) {
		probe_fail(p, "cannot resolve '%s': %s", t->host, gai_strerror(err));
		return;
	}
	tcp_connect(p, a, len);
}

static int tcp_init(struct ingest_probe *p)
{
	struct tcp *t = calloc(1, sizeof *t);
	if (!t)
		return -ENOMEM;
	ev_io_init(&t->io, on_connected, -1, EV_WRITE);
	t->io.data = p;
	p->impl = t;
	return probe_split_hostport(p->target, t->host, sizeof t->host, &t->port);
}

static void tcp_start(struct ingest_probe *p)
{
	struct tcp *t = p->impl;
	struct sockaddr_storage a;
	socklen_t len;
	int rc = probe_lookup_start(p->loop, t->host, t->port, on_looked_up, p, &t->lookup, &a, &len);
	if (rc < 0)
		probe_fail(p, "cannot resolve '%s': %s", t->host, strerror(-rc));
	else if (rc == 1)
		tcp_connect(p, &a, len);
}

static void tcp_destroy(struct ingest_probe *p)
{
	if (!p->impl)
		return;
	tcp_close(p);
	free(p->impl);
	p->impl = NULL;
}

const struct probe_ops probe_tcp_ops = { tcp_init, tcp_start, tcp_close, tcp_destroy };
