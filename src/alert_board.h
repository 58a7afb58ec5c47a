/*
 * alert_board.h — shared mode: the alerts of every replica on every
 * replica's /alerts (private to the main program).
 *
 * A shared rule is judged on the union on every replica, so each one already
 * reports it. An unshared rule is judged on one replica's lines alone: every
 * ALERT_BOARD_PERIOD_S each replica publishes those alerts of its own
 *
 *   HSET klaxon:board:<unix seconds / 10> <replica> {"at":<ms>,"alerts":[...]}
 *
 * (the key expires 30 s after its last write, so the fields of a replica
 * that died go with it), reads back that key and the one before, and keeps
 * the freshest entry of each other replica (not older than
 * ALERT_BOARD_STALE_S by its own clock). Redis lost: the board is emptied
 * (each replica goes on alone, its /alerts its own).
 */
#ifndef KLAXON_ALERT_BOARD_H
#define KLAXON_ALERT_BOARD_H

#include <stdint.h>

#include "common/kl.h"
#include "rules/rules.h"
#include "sinks/sinks.h"

#define ALERT_BOARD_PERIOD_S 2
#define ALERT_BOARD_STALE_S 10
/* The tag of the board's HGETALLs (the rules' tags are rule indices). */
#define ALERT_BOARD_TAG UINT64_MAX

/* One alert as a JSON object, as /alerts lists it; replica: where it was
 * judged (shared mode), or NULL. 0 or -ENOMEM. */
int alert_json(struct kl_buf *b, const struct rules_alert_state *a, const char *replica);

struct alert_board;
struct alert_board *alert_board_new(const char *replica);
void alert_board_free(struct alert_board *ab);
/* Once a tick: publish and read back every ALERT_BOARD_PERIOD_S. */
void alert_board_sync(struct alert_board *ab, struct sink_redis *r, struct rules_set *rules,
		      int64_t now_us);
/* An answer to one of the board's HGETALLs. */
void alert_board_answer(struct alert_board *ab, const struct sink_redis_field *f, size_t n,
			int64_t now_us);
/* Redis lost: forget the other replicas. */
void alert_board_clear(struct alert_board *ab);
/* Append the other replicas' fresh alerts to b, each replica's preceded by
 * ",\n " (or "\n " when *count is 0, which then grows). 0 or -ENOMEM. */
int alert_board_append(const struct alert_board *ab, struct kl_buf *b, size_t *count,
		       int64_t now_us);

#endif
