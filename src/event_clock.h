/*
 * event_clock.h — the event-time clock that `replay` and `test` drive the
 * rules with (private to the main program).
 *
 * The clock is the newest event time seen. When it moves forward by a batch
 * (EVENT_CLOCK_BATCH_US of event time, standing for `run`'s read batches),
 * the rules fed since are evaluated at the old instant, then every
 * eval_interval tick up to the new instant is evaluated in turn — across a
 * gap in the logs too, so a flatline fires in event time exactly as it would
 * live. Without the batch, logs with millisecond timestamps would evaluate
 * every rule at nearly every event. Events older than the clock leave it
 * where it is (they still feed the windows).
 *
 * The clock holds no resources; the rule set is passed to each call.
 */
#ifndef KLAXON_EVENT_CLOCK_H
#define KLAXON_EVENT_CLOCK_H

#include <stdint.h>

#include "rules/rules.h"

/* Event time that stands for one read batch of `run`: alerts land within it. */
#define EVENT_CLOCK_BATCH_US 100000

struct event_clock {
	int64_t now;	    /* INT64_MIN until the first instant */
	int64_t next_tick;
	int64_t last_batch; /* now at the last evaluation of fed rules */
};

static inline void event_clock_init(struct event_clock *c)
{
	c->now = c->next_tick = c->last_batch = INT64_MIN;
}

/* Move the clock to t (see above); transitions go to fn. The first call only
 * sets the clock (and the tick grid: multiples of eval_interval). */
void event_clock_advance(struct event_clock *c, struct rules_set *rs, int64_t t,
			 rules_transition_fn fn, void *ctx);
/* End of input: evaluate the rules fed since the last batch, at now. */
void event_clock_finish(struct event_clock *c, struct rules_set *rs, rules_transition_fn fn,
			void *ctx);

#endif
