/*
 * sinks.h — where alert transitions and events go.
 *
 * This version has two kinds of sink: `stdout` (every alert transition as one
 * JSON line, the contract's line) and `jsonl` (JSON lines appended to a file:
 * alert transitions, or with what: events every parsed event). Webhook and chat
 * sinks come with the notification issue and will plug in behind the same
 * calls.
 *
 * Writes are buffered; alert lines are written out at once (a page must not
 * wait in a buffer), event lines when the buffer fills and on sink_flush. A
 * failing write is logged once per sink and counted; the sink keeps trying.
 */
#ifndef SINKS_H
#define SINKS_H

#include <stdbool.h>
#include <stdint.h>

#include "common/kl.h"
#include "parsers/parsers.h"
#include "rules/rules.h"

struct sink;

/* Alert transitions as JSON lines on file descriptor fd (1 for stdout). */
struct sink *sink_stdout_new(const char *name, int fd);
/*
 * JSON lines appended to path (created 0640 if missing). events: every parsed
 * event; otherwise alert transitions. NULL with *err = -errno on failure.
 */
struct sink *sink_jsonl_new(const char *name, const char *path, bool events, int *err);
void sink_free(struct sink *s); /* flushes; accepts NULL */

bool sink_wants_events(const struct sink *s);
bool sink_wants_alerts(const struct sink *s);
void sink_alert(struct sink *s, const struct rules_transition *t);
void sink_event(struct sink *s, const char *source, struct parser_event *ev);
void sink_flush(struct sink *s);

struct sink_stats {
	uint64_t written;    /* lines */
	uint64_t failed;     /* lines lost to write errors */
};
void sink_get_stats(const struct sink *s, struct sink_stats *out);

/*
 * The contract's alert line, without the newline:
 * {"at":"…Z","status":"firing","alert":"X","labels":{…},"value":0.07,
 *  "annotations":{…},"started":"…Z"}
 */
int sink_transition_json(const struct rules_transition *t, struct kl_buf *out);

#endif
