/*
 * observe.h — `klaxon run` watched: the `listen:` endpoints (private to the
 * main program).
 *
 *   GET /metrics   the Prometheus text format (src/metrics.c renders it)
 *   GET /healthz   200 "ok" when every source is readable, else 503 with one
 *                  line per problem: "source 'app': /var/log/app does not
 *                  exist". Answered from the loop, so any answer also says
 *                  the loop is running. A source is readable when
 *                    - the directory of its path (for a glob, the one before
 *                      the first wildcard) exists and can be searched and read;
 *                    - every file its pattern matches now can be read;
 *                    - its tail had no read error in the last HEALTH_ERROR_S
 *                      seconds (60).
 *                  A file that does not exist yet, in a directory that does,
 *                  is healthy: it is picked up when it appears.
 *   GET /alerts    the pending and firing alerts as a JSON array:
 *                  [{"alert":"X","labels":{...},"state":"firing",
 *                    "since":"...Z","value":0.07}, ...]
 *                  In shared mode each also has "replica" (where it was
 *                  judged), and the other replicas' alerts of unshared rules
 *                  follow ours (src/alert_board.h).
 *
 * Lag: bytes_behind is the tail's (file sizes less our offsets);
 * seconds_behind is 0 when nothing is unread, else the time since the source
 * was last seen with nothing unread. The sources are sampled every second
 * and at each scrape, so a source that keeps up never shows more than about
 * a second, and one that falls behind grows by one second a second; every
 * unread byte was written after that instant, so it bounds the age of the
 * oldest unread byte from above.
 */
#ifndef KLAXON_OBSERVE_H
#define KLAXON_OBSERVE_H

#include "src/pipeline.h"

struct observe;

/*
 * Serve rt->cfg->listen on loop for the sources followed by tails[0..ntails)
 * (one per configured source, in order; the array must outlive the server).
 * Returns 0 with *out set (NULL when listen is off, or when the default
 * address — `listen:` not written — cannot be bound: logged as a warning,
 * klaxon runs on without it), or -errno when an explicit `listen:` cannot be
 * served (logged with the address).
 */
int observe_start(struct ev_loop *loop, struct runtime *rt, struct ingest_tail *const *tails,
		  size_t ntails, struct observe **out);
/* Stop serving and free. Accepts NULL. */
void observe_free(struct observe *o);

#endif
