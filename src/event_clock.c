/*
 * event_clock.c — see event_clock.h.
 */
#include "src/event_clock.h"

void event_clock_advance(struct event_clock *c, struct rules_set *rs, int64_t t,
			 rules_transition_fn fn, void *ctx)
{
	int64_t step = rules_eval_interval(rs);
	if (c->now == INT64_MIN) {
		c->now = c->last_batch = t;
		c->next_tick = t - t % step + step;
		return;
	}
	if (t <= c->now)
		return;
	if (t - c->last_batch >= EVENT_CLOCK_BATCH_US || c->next_tick < t) {
		rules_eval(rs, c->now, fn, ctx);
		c->last_batch = c->now;
	}
	for (; c->next_tick < t; c->next_tick += step)
		rules_eval_all(rs, c->next_tick, fn, ctx);
	c->now = t;
}

void event_clock_finish(struct event_clock *c, struct rules_set *rs, rules_transition_fn fn,
			void *ctx)
{
	if (c->now != INT64_MIN)
		rules_eval(rs, c->now, fn, ctx);
}
