/*
 * config.h — the klaxon.yml file, loaded and checked (private to the main
 * program, which wires the stages together from it).
 *
 * Every problem is reported as FILE:LINE:COL: message through the diag, and
 * loading goes on to find the others; config_load fails if there was any.
 * `${VAR}` in a scalar is replaced by the environment variable (an unset
 * variable is an error naming it); keys ending in `_file` read a secret from a
 * file; secrets are never printed.
 */
#ifndef KLAXON_CONFIG_H
#define KLAXON_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/kl.h"
#include "ingest/ingest.h"
#include "parsers/parsers.h"
#include "rotate/rotate.h"
#include "sinks/sinks.h"

struct config_parser {
	char *name;
	struct parser *parser; /* owned */
	int line, col;
};

/* A source's `multiline:` (or, when absent, its parser's default rule). */
struct config_multiline {
	bool set;	    /* `multiline:` given */
	char *start;	    /* regex, or NULL */
	char *continuation; /* regex, or NULL */
	int64_t timeout_us; /* default 500ms */
	size_t max_lines;   /* default 500 */
	size_t max_bytes;   /* default 1MiB */
};

struct config_source {
	char *name;
	char *path;		     /* a path or a glob */
	char *parser_name;
	const struct parser *parser; /* resolved: a config_parser's, or a built-in's */
	bool from_beginning;	     /* `from: beginning|end`, default end */
	size_t max_line;	     /* `max_line: 64KiB` */
	struct config_multiline multiline;
	int line, col;
};

/* A probe (`probes:`): a source whose events are its checks' results. */
struct config_probe {
	char *name;
	enum ingest_probe_kind kind;
	char *target;	     /* URL, HOST:PORT, path, glob, connection string (postgres:
			      * may hold a password: never printed) */
	int64_t interval_us; /* default 30s */
	int64_t timeout_us;  /* default 5s, at most the interval */
	bool tls_insecure;   /* http: `tls_verify: false` */
	char *ca_file;	     /* http: `ca_file` */
	/* The probe's fields as a parser (never used to parse), so that rules
	 * resolve and type-check them like a log source's. Owned. */
	struct parser *parser;
	int line, col;
};

/* Sink types are the sinks stage's (sink_kind); these names stay for tests. */
#define CONFIG_SINK_STDOUT SINK_STDOUT
#define CONFIG_SINK_JSONL SINK_JSONL

struct config_sink {
	char *name;
	enum sink_kind type;
	char *path;	    /* jsonl */
	bool events;	    /* jsonl: `what: events` (else alerts) */
	char *url;	    /* notifiers: `url` (may come from ${VAR}) or `url_file` */
	char *secret;	    /* `secret_file`: HMAC key */
	bool tls_insecure;  /* `tls_verify: false` */
	int64_t timeout_us; /* `timeout`, default 10s */
	int line, col;
};

struct config_route {
	struct sink_match *match; /* owned strings */
	size_t nmatch;
	char **sinks;
	size_t nsinks;
	char **group_by;
	size_t ngroup_by;
	bool cont;
	struct notify_spec notify; /* the global `notify:` with this route's overrides */
	int line, col;
};

struct config_inhibit {
	struct sink_match *source_match;
	size_t nsource;
	struct sink_match *target_match;
	size_t ntarget;
	char **equal;
	size_t nequal;
};

/*
 * `redis:` — shared mode (see README "Shared mode"): a URL string, or a map
 * {url, share: marked|all, password_file, replica, lease, stream: {key,
 * maxlen, what}}. Absent: set is false and nothing else is filled.
 */
struct config_redis {
	bool set;
	char *host;	     /* from the URL */
	uint16_t port;	     /* default 6379 */
	unsigned db;	     /* /DB in the URL, default 0 */
	char *password;	     /* from the URL or password_file; a secret: never printed */
	bool share_all;	     /* share: all (else only rules with `shared: true`) */
	char *replica;	     /* the replica's name; NULL: HOSTNAME-PID at start */
	int64_t lease_us;    /* notification lease, default 30s */
	char *stream_key;    /* stream: key (NULL: no stream) */
	uint64_t stream_maxlen; /* default 100000 */
	bool stream_events;  /* what: events (else alerts: the transitions) */
	bool tls;	     /* rediss:// */
	char *tls_ca_file;   /* `ca_file:` (rediss://); NULL: the system's CAs */
	bool tls_insecure;   /* `tls_verify: false` (rediss://) */
	int line, col;
};

struct config {
	char *file;	     /* the path it was loaded from */
	char *state_dir;     /* default /var/lib/klaxon */
	char *listen;	     /* default 127.0.0.1:9731; NULL: `listen: off` (or empty) */
	bool listen_set;     /* `listen:` was written (else the default is in force) */
	int64_t eval_interval_us; /* default 1s */
	char **rule_files;   /* globs expanded, sorted, relative paths resolved
			      * against the config file's directory */
	size_t nrule_files;
	struct config_parser *parsers; /* user-defined and built-ins in use */
	size_t nparsers;
	struct config_source *sources;
	size_t nsources;
	struct config_probe *probes;
	size_t nprobes;
	struct config_sink *sinks; /* none configured: one stdout sink */
	size_t nsinks;
	struct config_route *routes;
	size_t nroutes;
	struct notify_spec notify;
	struct config_inhibit *inhibits;
	size_t ninhibits;
	char *external_url;
	struct config_redis redis;
	/* `rotate:` entries; path and pidfile are owned by the config. */
	struct rotate_rule *rotate;
	size_t nrotate;
	int64_t rotate_interval_us; /* default 1m */
	/* The view of the above that the sinks stage takes (built at load). */
	struct sinks_spec sinks_spec;
	struct sink_spec *sink_specs;
	struct route_spec *route_specs;
	struct inhibit_spec *inhibit_specs;
};

/*
 * Find the config file: explicit (from -c) if not NULL, else $KLAXON_CONFIG,
 * else ./klaxon.yml, else /etc/klaxon/klaxon.yml. Returns a static or the
 * given string, or NULL when none exists (then the caller says where it
 * looked).
 */
const char *config_find(const char *explicit_path);

/* Load and check. Returns 0 and *out, or -EINVAL after reporting through d. */
int config_load(const char *path, struct config **out, struct kl_diag *d);
/* The same from memory (tests, fuzzing); name stands for the file in reports,
 * and its directory is the one relative rule_files are resolved against. */
int config_load_mem(const char *name, const char *data, size_t len, struct config **out,
		    struct kl_diag *d);
/*
 * The same from a mapping inside another document that the caller keeps
 * (`klaxon test`: a test file's sources, parsers, rule_files and
 * eval_interval). name is that document's file (reports, and the directory
 * relative rule_files are resolved against); sources need no `path`.
 */
struct kl_ynode;
int config_load_embedded(const char *name, const struct kl_ynode *root, struct config **out,
			 struct kl_diag *d);
void config_free(struct config *c);
const struct config_source *config_source_by_name(const struct config *c, const char *name);
const struct config_probe *config_probe_by_name(const struct config *c, const char *name);
/*
 * The parser that stands for a probe kind's fields (see config_probe.parser):
 * a regex of one empty named group per field, with the fields' types. NULL
 * on allocation failure.
 */
struct parser *config_probe_parser(enum ingest_probe_kind kind, const char *name);

#endif
