/*
 * pipeline.h — the wiring every command shares: config → parsers → rules →
 * sinks (private to the main program).
 *
 * A runtime owns the loaded config, the rule set compiled against its sources
 * and probes, one reusable event per source and per probe, and the sinks.
 * Rules see a probe as one more source: index nsources + i is probe i, whose
 * "parser" is the config's stand-in for its fields (config_probe_parser). A
 * probe's result is turned into that event here (the ingest stage knows no
 * parser) and goes straight to the rules. Feeding it a line parses it
 * with its source's parser, hands the event to the event sinks and the rules;
 * transitions the rules report go to the alert sinks. Nothing here knows
 * whether time comes from the wall clock (run) or from the events (replay).
 */
#ifndef KLAXON_PIPELINE_H
#define KLAXON_PIPELINE_H

#include "common/kl.h"
#include "ingest/ingest.h"

struct ev_loop;
#include "parsers/parsers.h"
#include "rules/rules.h"
#include "sinks/sinks.h"
#include "src/config.h"

struct source_stats {
	uint64_t lines;
	uint64_t events;
	uint64_t parse_errors;
	uint64_t reported_errors; /* parse_errors when last logged */
};

struct runtime {
	struct config *cfg;
	struct rules_source *sources; /* cfg->sources, then cfg->probes, for rules_load */
	size_t nall;		      /* nsources + nprobes */
	struct kl_buf probe_text;     /* the text of a probe result's numbers */
	struct rules_set *rules;
	struct sinks *sinks;
	bool event_sinks;	    /* any sink wants events */
	struct parser_event *events; /* one per source, reused */
	struct ingest_multiline **multiline; /* per source; NULL: single-line records */
	struct source_stats *stats;
	uint64_t alerts;	    /* transitions seen */
	/* Shared mode (`redis:`): the connection's spec and this replica's
	 * name, and the rules' store over that connection. */
	struct sink_redis_spec redis_spec;
	char *replica;
	struct rules_field *fields; /* an answer's fields, converted; reused */
	size_t fcap;
	struct alert_board *board; /* the other replicas' alerts (shared mode), or NULL */
};

/* Load the config at path and its rules. 0, or -EINVAL after reporting. */
int runtime_load(struct runtime *rt, const char *path, struct kl_diag *d);
/* The same from a loaded config, which the runtime takes (freed with it,
 * also on failure by runtime_free). */
int runtime_load_config(struct runtime *rt, struct config *cfg, struct kl_diag *d);
/* Open the configured sinks on loop (run), or one stdout sink (replay, loop
 * NULL: a replay never notifies anyone). 0 or -errno (logged). */
int runtime_open_sinks(struct runtime *rt, struct ev_loop *loop);
/*
 * Reload the rule files the config names now; on any error the old rules keep
 * running and the problems are logged. 0 or -EINVAL.
 */
int runtime_reload_rules(struct runtime *rt);
/* Shared mode, once a tick: publish the rules' changed buckets, read the
 * others'. Nothing when Redis is away. */
void runtime_shared_sync(struct runtime *rt, int64_t now_us);
void runtime_free(struct runtime *rt);

/*
 * Parse one line of source src and feed it on. Returns 0 with *event_us set,
 * or -EINVAL when the line did not parse (counted).
 */
int runtime_line(struct runtime *rt, unsigned src, const char *line, size_t len, int64_t read_us,
		 int64_t *event_us);
/*
 * A line of source src as read (run): through the source's multi-line
 * assembler when it has one (complete records are parsed and fed), else
 * parsed and fed at once.
 */
void runtime_input(struct runtime *rt, unsigned src, const char *line, size_t len, int64_t read_us);
/* A result of probe i (run): its event goes to the event sinks and the
 * rules, as a parsed line would. */
void runtime_probe(struct runtime *rt, unsigned probe, const struct ingest_probe_result *r);
/* Hand out src's pending multi-line record (timeout, end of input). */
void runtime_input_flush(struct runtime *rt, unsigned src);

/* Only parse (and count) into rt->events[src]; runtime_feed hands it on. */
int runtime_line_parse(struct runtime *rt, unsigned src, const char *line, size_t len,
		       int64_t read_us, int64_t *event_us);
/* Feed an event already parsed into rt->events[src] (replay's merge). */
void runtime_feed(struct runtime *rt, unsigned src);
/* rules_transition_fn: hand a transition to every alert sink. */
void runtime_transition(void *rt, const struct rules_transition *t);
void runtime_flush(struct runtime *rt);
/* Log, once per call, the sources whose parse errors grew since last time. */
void runtime_report_parse_errors(struct runtime *rt);


/*
 * The files of a source for replay and parse: every match of its path glob
 * and, with rotated, their rotated siblings (NAME.1, NAME.2.gz, NAME-20231114,
 * ...), oldest first by mtime. A heap array of heap strings in *out; free with
 * files_free. 0 or -ENOMEM.
 */
int source_files(const char *pattern, bool rotated, char ***out, size_t *n);
void files_free(char **files, size_t n);

#endif
