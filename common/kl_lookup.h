/*
 * kl_lookup.h — host name lookups that do not block the loop.
 *
 * kl_lookup_start returns 1 with *addr set (port included) when host is a
 * numeric address (no thread), 0 when a lookup thread was started (fn runs
 * on the loop when it ends, unless cancelled first), or -errno. fn's err is
 * 0 or an EAI_* code (gai_strerror).
 */
#ifndef KL_LOOKUP_H
#define KL_LOOKUP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <ev.h>

struct kl_lookup;
typedef void (*kl_lookup_fn)(void *ctx, int err, const struct sockaddr_storage *addr,
			     socklen_t len);
int kl_lookup_start(struct ev_loop *loop, const char *host, uint16_t port, kl_lookup_fn fn,
		    void *ctx, struct kl_lookup **out, struct sockaddr_storage *addr,
		    socklen_t *len);
/* Cancel (fn is not called). NULL ok. */
void kl_lookup_cancel(struct kl_lookup *l);

/* A numeric address as text (for libpq's hostaddr, for hiredis). 0 or -errno. */
int kl_addr_text(const struct sockaddr_storage *a, char *out, size_t outlen);

#endif
