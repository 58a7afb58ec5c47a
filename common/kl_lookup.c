/*
 * kl_lookup.c — host name lookups off the loop.
 *
 * getaddrinfo blocks (a DNS server that does not answer holds it for
 * seconds), so a name is looked up on a short-lived detached thread that
 * reports back to the loop with ev_async. A numeric address needs no thread.
 * The lookup object is shared by the thread and the loop under a mutex; the
 * last of the two to let go frees it, so cancelling a lookup in flight (a
 * timeout, a stop) never waits for the thread and never leaves it writing
 * into freed memory.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/kl_lookup.h"

struct kl_lookup {
	pthread_mutex_t mu;
	ev_async async;
	struct ev_loop *loop;
	kl_lookup_fn fn;
	void *ctx;
	char host[256];
	uint16_t port;
	bool cancelled; /* the loop let go: the thread frees it */
	bool finished;	/* the thread let go: the loop frees it */
	int err;
	struct sockaddr_storage addr;
	socklen_t len;
};

static void lookup_free(struct kl_lookup *l)
{
	pthread_mutex_destroy(&l->mu);
	free(l);
}

/* One address is tried, not each in turn: the first IPv4 one when there is
 * one, because servers in compose and on loopback often listen on IPv4 only
 * while "localhost" may resolve to ::1 first. */
static const struct addrinfo *prefer_ipv4(const struct addrinfo *res)
{
	for (const struct addrinfo *a = res; a; a = a->ai_next)
		if (a->ai_family == AF_INET)
			return a;
	return res;
}

static void *lookup_thread(void *arg)
{
	struct kl_lookup *l = arg;
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_ADDRCONFIG };
	struct addrinfo *res = NULL;
	int err = getaddrinfo(l->host, NULL, &hints, &res);
	const struct addrinfo *pick = prefer_ipv4(res);
	pthread_mutex_lock(&l->mu);
	if (err == 0 && pick && pick->ai_addrlen <= sizeof l->addr) {
		memcpy(&l->addr, pick->ai_addr, pick->ai_addrlen);
		l->len = pick->ai_addrlen;
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
	struct kl_lookup *l = w->data;
	pthread_mutex_lock(&l->mu);
	bool finished = l->finished;
	pthread_mutex_unlock(&l->mu);
	if (!finished)
		return;
	ev_async_stop(loop, &l->async);
	set_port(&l->addr, l->port);
	kl_lookup_fn fn = l->fn;
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

int kl_lookup_start(struct ev_loop *loop, const char *host, uint16_t port, kl_lookup_fn fn,
		       void *ctx, struct kl_lookup **out, struct sockaddr_storage *addr,
		       socklen_t *len)
{
	*out = NULL;
	if (numeric(host, port, addr, len))
		return 1;
	if (strlen(host) >= sizeof((struct kl_lookup *)0)->host)
		return -ENAMETOOLONG;
	struct kl_lookup *l = calloc(1, sizeof *l);
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

void kl_lookup_cancel(struct kl_lookup *l)
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

int kl_addr_text(const struct sockaddr_storage *a, char *out, size_t outlen)
{
	const void *src = a->ss_family == AF_INET
				  ? (const void *)&((const struct sockaddr_in *)a)->sin_addr
				  : (const void *)&((const struct sockaddr_in6 *)a)->sin6_addr;
	return inet_ntop(a->ss_family, src, out, (socklen_t)outlen) ? 0 : -errno;
}
