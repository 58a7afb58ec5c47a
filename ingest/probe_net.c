/*
 * probe_net.c — the tcp probe: a non-blocking connect watched with ev_io for
 * writability, then SO_ERROR; `latency` is the connect time (the lookup,
 * common/kl_lookup.c, included), `up` 1 when the connection was accepted.
 * The socket is closed at once.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ingest/ingest_int.h"

/* ---- tcp ------------------------------------------------------------------------------ */

struct tcp {
	ev_io io;
	struct kl_lookup *lookup;
	char host[256];
	uint16_t port;
};

static void tcp_close(struct ingest_probe *p)
{
	struct tcp *t = p->impl;
	kl_lookup_cancel(t->lookup);
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
	int rc = kl_lookup_start(p->loop, t->host, t->port, on_looked_up, p, &t->lookup, &a, &len);
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
