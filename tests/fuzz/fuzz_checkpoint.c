/*
 * fuzz_checkpoint.c — the checkpoint loader: ingest_tail_state_check on any
 * bytes, and what it accepts handed to a tailer as its saved state (the
 * records name files that mostly do not exist: restore must treat them as
 * gone, never trust them).
 */
#include <ev.h>
#include <stdint.h>
#include <stdlib.h>

#include "ingest/ingest.h"

static void on_line(void *ctx, const char *line, size_t len, int64_t read_us)
{
	(void)ctx;
	(void)line;
	(void)len;
	(void)read_us;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t bad = 0;
	if (ingest_tail_state_check((const char *)data, size, &bad) < 0) {
		if (bad == 0)
			abort(); /* a rejection names the line at fault */
		return 0;
	}
	static struct ev_loop *loop;
	if (!loop)
		loop = ev_loop_new(EVFLAG_AUTO);
	struct ingest_tail_opts o = {
		.pattern = "/nonexistent-klaxon-fuzz/*.log",
		.state = (const char *)data,
		.state_len = size,
	};
	struct ingest_tail_cbs cbs = { on_line, NULL, NULL };
	int err = 0;
	struct ingest_tail *t = ingest_tail_new(loop, &o, &cbs, &err);
	ingest_tail_free(t);
	return 0;
}
