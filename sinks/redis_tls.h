/*
 * redis_tls.h — rediss:// for hiredis 0.14, which has no TLS (private to
 * sinks/).
 *
 * hiredis speaks plain RESP over a unix socket to this bridge; the bridge
 * carries the bytes over TLS (OpenSSL, non-blocking, on the loop) to the
 * server. One bridge per connection: redis_tls_start opens a TCP connection
 * to addr and a listening socket in a fresh 0700 directory, whose path
 * hiredis connects to (redisAsyncConnectUnix). The first peer that is this
 * process is taken; the socket and its directory are removed at once.
 *
 * A failure (connect, handshake, certificate, the server closing) closes
 * hiredis's side: hiredis sees the connection end, and redis_tls_error tells
 * why. Nothing blocks; at most two 64 KiB buffers per bridge.
 */
#ifndef KL_SINKS_REDIS_TLS_H
#define KL_SINKS_REDIS_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include <ev.h>

/* The TLS settings of one sink: trust (the system's CAs, or ca_file) and
 * whether the server's certificate and name are checked. */
struct redis_tls_ctx;
/* NULL with err set when the CA file cannot be loaded, or no memory. */
struct redis_tls_ctx *redis_tls_ctx_new(const char *ca_file, bool verify, char *err,
					size_t errlen);
void redis_tls_ctx_free(struct redis_tls_ctx *c);

struct redis_tls;
/* host: the name checked against the certificate (and sent as SNI). NULL
 * with err set on failure. */
struct redis_tls *redis_tls_start(struct ev_loop *loop, struct redis_tls_ctx *c,
				  const struct sockaddr_storage *addr, socklen_t addrlen,
				  const char *host, char *err, size_t errlen);
/* The path hiredis connects to. */
const char *redis_tls_path(const struct redis_tls *b);
/* Why the bridge ended, or NULL while it works. */
const char *redis_tls_error(const struct redis_tls *b);
/* Close both sides and free. NULL ok. */
void redis_tls_free(struct redis_tls *b);

#endif
