/*
 * http_server.h — a small HTTP server on the libev loop, for `listen:`
 * (private to the main program).
 *
 * libmicrohttpd does the HTTP; it runs without threads of its own, in its
 * epoll mode: its one epoll descriptor is watched by an ev_io, and MHD_run is
 * called from that watcher and from an ev_timer armed with MHD's timeout. So
 * a request is answered from the loop, between two read batches, and the
 * handler runs on the loop like every other callback: it must be quick and
 * must not block.
 *
 * Only GET (and HEAD) are served; other methods get 405. Bodies are built in
 * memory and copied into the response.
 */
#ifndef KLAXON_HTTP_SERVER_H
#define KLAXON_HTTP_SERVER_H

#include "common/kl.h"

struct ev_loop;
struct http_server;

/*
 * Answer a GET of path (no query string). Append the body to body, set
 * *content_type (a static string), return the status (200, 404, 503, ...).
 */
typedef int (*http_server_fn)(void *ctx, const char *path, struct kl_buf *body,
			      const char **content_type);

/*
 * Listen on addr ("HOST:PORT", "[V6]:PORT"; HOST a name or an address) and
 * serve through fn on loop. NULL with *err = -errno when the address cannot
 * be resolved or bound (logged once, with the address: "listen
 * 127.0.0.1:9731: cannot bind: Address already in use") or MHD cannot start.
 */
struct http_server *http_server_start(struct ev_loop *loop, const char *addr, http_server_fn fn,
				      void *ctx, int *err);
/* Stop serving (connections in progress are closed) and free. Accepts NULL. */
void http_server_free(struct http_server *s);

#endif
