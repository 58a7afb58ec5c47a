/*
 * metrics.c — see metrics.h.
 *
 * The text format, as Prometheus parses it: one `# HELP name text` and one
 * `# TYPE name type` line per family, then its samples `name{l="v",...} value`,
 * families never interleaved. Label values escape `\`, `"` and newline; HELP
 * text escapes `\` and newline. Values are Go-style floats (shortest form that
 * reads back, `+Inf`, `-Inf`, `NaN`); counters are integers. A histogram
 * writes cumulative `_bucket{le=...}` samples ending with `le="+Inf"`, then
 * `_sum` and `_count` (equal to the `+Inf` bucket).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "src/metrics.h"

int metrics_label_value(struct kl_buf *out, const char *v)
{
	const unsigned char *p = (const unsigned char *)v;
	size_t n = strlen(v);
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0;) {
		unsigned char c = p[i];
		if (c == '\\') {
			rc = kl_buf_append(out, "\\\\", 2);
		} else if (c == '"') {
			rc = kl_buf_append(out, "\\\"", 2);
		} else if (c == '\n') {
			rc = kl_buf_append(out, "\\n", 2);
		} else if (c < 0x80) {
			rc = kl_buf_append(out, &p[i], 1);
		} else {
			size_t bad = 0, len = kl_utf8_seq(p + i, n - i, &bad);
			if (len) {
				rc = kl_buf_append(out, &p[i], len);
				i += len;
				continue;
			}
			rc = kl_buf_append(out, "\xEF\xBF\xBD", 3); /* U+FFFD */
			i += bad ? bad : 1;
			continue;
		}
		i++;
	}
	return rc;
}

static int put_num(struct kl_buf *b, double v)
{
	if (isnan(v))
		return kl_buf_append_str(b, "NaN");
	if (isinf(v))
		return kl_buf_append_str(b, v > 0 ? "+Inf" : "-Inf");
	char s[40];
	snprintf(s, sizeof s, "%.15g", v);
	if (strtod(s, NULL) != v)
		snprintf(s, sizeof s, "%.17g", v);
	return kl_buf_append_str(b, s);
}

static int family(struct kl_buf *b, const char *name, const char *type, const char *help)
{
	return kl_buf_appendf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{key="value"[,key2="value2"]} — a sample's start, up to the space. */
static int sample(struct kl_buf *b, const char *name, const char *k1, const char *v1,
		  const char *k2, const char *v2)
{
	int rc = kl_buf_append_str(b, name);
	if (rc == 0 && k1) {
		rc = kl_buf_appendf(b, "{%s=\"", k1);
		if (rc == 0)
			rc = metrics_label_value(b, v1);
		if (rc == 0 && k2) {
			rc = kl_buf_appendf(b, "\",%s=\"", k2);
			if (rc == 0)
				rc = metrics_label_value(b, v2);
		}
		if (rc == 0)
			rc = kl_buf_append_str(b, "\"}");
	}
	return rc == 0 ? kl_buf_append(b, " ", 1) : rc;
}

static int u64_line(struct kl_buf *b, uint64_t v)
{
	return kl_buf_appendf(b, "%llu\n", (unsigned long long)v);
}

static int num_line(struct kl_buf *b, double v)
{
	int rc = put_num(b, v);
	return rc == 0 ? kl_buf_append(b, "\n", 1) : rc;
}

/* ---- per source ------------------------------------------------------------ */

enum src_field { SF_LINES, SF_BYTES, SF_EVENTS, SF_ERRORS, SF_BEHIND, SF_SECONDS };

static const struct {
	const char *name, *type, *help;
} src_families[] = {
	[SF_LINES] = { "klaxon_source_lines_total", "counter", "Lines read from the source's files." },
	[SF_BYTES] = { "klaxon_source_bytes_total", "counter", "Bytes read from the source's files." },
	[SF_EVENTS] = { "klaxon_source_events_total", "counter",
			"Records of the source parsed into events." },
	[SF_ERRORS] = { "klaxon_source_parse_errors_total", "counter",
			"Records of the source its parser did not match." },
	[SF_BEHIND] = { "klaxon_source_bytes_behind", "gauge",
			"Bytes written to the source's files and not read yet." },
	[SF_SECONDS] = { "klaxon_source_seconds_behind", "gauge",
			 "0 when nothing is unread, else the time since the source was last seen "
			 "with nothing unread (checked every second): the oldest unread byte is at "
			 "most this old." },
};

static int render_sources(const struct metrics_snapshot *s, struct kl_buf *b)
{
	int rc = 0;
	for (size_t f = 0; f < KL_ARRAY_LEN(src_families) && rc == 0; f++) {
		rc = family(b, src_families[f].name, src_families[f].type, src_families[f].help);
		for (size_t i = 0; i < s->nsources && rc == 0; i++) {
			const struct metrics_source *m = &s->sources[i];
			rc = sample(b, src_families[f].name, "source", m->name, NULL, NULL);
			if (rc < 0)
				break;
			switch ((enum src_field)f) {
			case SF_LINES: rc = u64_line(b, m->lines); break;
			case SF_BYTES: rc = u64_line(b, m->bytes); break;
			case SF_EVENTS: rc = u64_line(b, m->events); break;
			case SF_ERRORS: rc = u64_line(b, m->parse_errors); break;
			case SF_BEHIND: rc = u64_line(b, m->bytes_behind); break;
			case SF_SECONDS: rc = num_line(b, m->seconds_behind); break;
			}
		}
	}
	return rc;
}

/* ---- per rule ----------------------------------------------------------------- */

/* Two rules may share an alert name (a warning and a page): the rule file
 * and line make each series unique. */
static int rule_sample(struct kl_buf *b, const char *name, const struct metrics_rule *r,
		       const char *state)
{
	int rc = kl_buf_appendf(b, "%s{rule=\"", name);
	if (rc == 0)
		rc = metrics_label_value(b, r->name);
	if (rc == 0)
		rc = kl_buf_append_str(b, "\",file=\"");
	if (rc == 0)
		rc = metrics_label_value(b, r->file ? r->file : "");
	if (rc == 0)
		rc = kl_buf_appendf(b, "\",line=\"%d\"", r->line);
	if (rc == 0 && state)
		rc = kl_buf_appendf(b, ",state=\"%s\"", state);
	return rc == 0 ? kl_buf_append_str(b, "} ") : rc;
}

static int render_rules(const struct metrics_snapshot *s, struct kl_buf *b)
{
	int rc = family(b, "klaxon_rule_evaluations_total", "counter",
			"Evaluations of the rule (each read batch that fed it, and every "
			"eval_interval).");
	for (size_t i = 0; i < s->nrules && rc == 0; i++) {
		rc = rule_sample(b, "klaxon_rule_evaluations_total", &s->rules[i], NULL);
		if (rc == 0)
			rc = u64_line(b, s->rules[i].evaluations);
	}
	if (rc == 0)
		rc = family(b, "klaxon_rule_evaluation_seconds_total", "counter",
			    "Time spent evaluating the rule.");
	for (size_t i = 0; i < s->nrules && rc == 0; i++) {
		rc = rule_sample(b, "klaxon_rule_evaluation_seconds_total", &s->rules[i], NULL);
		if (rc == 0)
			rc = num_line(b, s->rules[i].eval_seconds);
	}
	if (rc == 0)
		rc = family(b, "klaxon_rule_alerts", "gauge",
			    "Alerts of the rule (one per `by` group) in each state.");
	for (size_t i = 0; i < s->nrules && rc == 0; i++) {
		rc = rule_sample(b, "klaxon_rule_alerts", &s->rules[i], "firing");
		if (rc == 0)
			rc = u64_line(b, s->rules[i].firing);
		if (rc == 0)
			rc = rule_sample(b, "klaxon_rule_alerts", &s->rules[i], "pending");
		if (rc == 0)
			rc = u64_line(b, s->rules[i].pending);
	}
	if (rc == 0)
		rc = family(b, "klaxon_rules_groups_dropped_total", "counter",
			    "Events of a new `by` group dropped past the rule's max_groups.");
	if (rc == 0)
		rc = kl_buf_appendf(b, "klaxon_rules_groups_dropped_total %llu\n",
				    (unsigned long long)s->rules_groups_dropped);
	if (rc == 0)
		rc = family(b, "klaxon_rules_late_events_total", "counter",
			    "Events older than their rule's window, not counted.");
	if (rc == 0)
		rc = kl_buf_appendf(b, "klaxon_rules_late_events_total %llu\n",
				    (unsigned long long)s->rules_late_events);
	return rc;
}

/* ---- per sink --------------------------------------------------------------------- */

static const struct {
	const char *name, *help;
} sink_families[] = {
	{ "klaxon_sink_sent_total",
	  "Notifiers: messages the receiver took (2xx); record sinks: lines written." },
	{ "klaxon_sink_failed_total",
	  "Notifiers: messages refused for good (4xx) or not queued; record sinks: lines lost." },
	{ "klaxon_sink_retried_total", "Notifiers: delivery attempts that will be retried." },
	{ "klaxon_sink_spooled_total", "Notifiers: messages written to the delivery spool." },
};

static int render_sinks(const struct metrics_snapshot *s, struct kl_buf *b)
{
	int rc = 0;
	for (size_t f = 0; f < KL_ARRAY_LEN(sink_families) && rc == 0; f++) {
		rc = family(b, sink_families[f].name, "counter", sink_families[f].help);
		for (size_t i = 0; i < s->nsinks && rc == 0; i++) {
			const struct metrics_sink *m = &s->sinks[i];
			uint64_t v = f == 0 ? m->sent : f == 1 ? m->failed : f == 2 ? m->retried : m->spooled;
			rc = sample(b, sink_families[f].name, "sink", m->name, "type", m->type);
			if (rc == 0)
				rc = u64_line(b, v);
		}
	}
	return rc;
}

static int render_histogram(const struct metrics_histogram *h, struct kl_buf *b)
{
	const char *name = "klaxon_line_to_page_seconds";
	int rc = family(b, name, "histogram",
			"From the read of the line behind an alert to the 2xx of the message "
			"telling it, per delivered message.");
	uint64_t cum = 0;
	for (size_t i = 0; i < h->nle && rc == 0; i++) {
		cum += h->counts[i];
		rc = kl_buf_appendf(b, "%s_bucket{le=\"", name);
		if (rc == 0)
			rc = put_num(b, h->le[i]);
		if (rc == 0)
			rc = kl_buf_appendf(b, "\"} %llu\n", (unsigned long long)cum);
	}
	if (rc == 0)
		rc = kl_buf_appendf(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum ", name,
				    (unsigned long long)h->count, name);
	if (rc == 0)
		rc = num_line(b, h->sum);
	if (rc == 0)
		rc = kl_buf_appendf(b, "%s_count %llu\n", name, (unsigned long long)h->count);
	return rc;
}

/* ---- shared mode ------------------------------------------------------------------ */

static int render_redis(const struct metrics_redis *r, struct kl_buf *b)
{
	const struct {
		const char *name, *type, *help;
		uint64_t v;
	} fs[] = {
		{ "klaxon_redis_up", "gauge", "1 while connected to Redis (shared mode on), else 0.",
		  r->up },
		{ "klaxon_redis_connects_total", "counter", "Connections made to Redis.", r->connects },
		{ "klaxon_redis_disconnects_total", "counter",
		  "Connections lost (down, restarted, or slow: unanswered for 3s); the replica went "
		  "local each time.", r->disconnects },
		{ "klaxon_redis_slow_total", "counter", "Connections dropped for slowness.", r->slow },
		{ "klaxon_redis_commands_total", "counter", "Commands sent to Redis.", r->commands },
		{ "klaxon_redis_sent_bytes_total", "counter", "Bytes of commands sent to Redis.",
		  r->bytes_out },
		{ "klaxon_redis_received_bytes_total", "counter",
		  "Bytes of other replicas' bucket snapshots read back.", r->bytes_in },
		{ "klaxon_redis_dropped_total", "counter",
		  "Commands not sent: too many awaiting an answer.", r->dropped },
		{ "klaxon_redis_errors_total", "counter", "Error answers from Redis.", r->errors },
		{ "klaxon_notify_leases_won_total", "counter",
		  "Messages this replica sent holding the group's lease.", r->leases_won },
		{ "klaxon_notify_stood_down_total", "counter",
		  "Messages left to the replica holding the group's lease.", r->leases_lost },
		{ "klaxon_notify_sent_alone_total", "counter",
		  "Messages sent without a lease (Redis away): possible duplicates.", r->leases_local },
		{ "klaxon_redis_stream_added_total", "counter", "Entries added to the stream.",
		  r->stream_added },
		{ "klaxon_shared_buckets_put_total", "counter", "Bucket snapshots published.",
		  r->buckets_put },
		{ "klaxon_shared_buckets_read_total", "counter", "Bucket hashes read back.",
		  r->buckets_get },
		{ "klaxon_shared_snapshots_merged_total", "counter",
		  "Other replicas' bucket snapshots merged.", r->snapshots_merged },
		{ "klaxon_shared_snapshots_refused_total", "counter",
		  "Snapshots not of this rule's shape (a replica with another rule of that name).",
		  r->snapshots_refused },
	};
	int rc = 0;
	for (size_t i = 0; i < KL_ARRAY_LEN(fs) && rc == 0; i++) {
		rc = family(b, fs[i].name, fs[i].type, fs[i].help);
		if (rc == 0)
			rc = kl_buf_appendf(b, "%s %llu\n", fs[i].name, (unsigned long long)fs[i].v);
	}
	return rc;
}

int metrics_render(const struct metrics_snapshot *s, struct kl_buf *out)
{
	int rc = family(out, "klaxon_build_info", "gauge", "Always 1; the version as a label.");
	if (rc == 0)
		rc = sample(out, "klaxon_build_info", "version", s->version ? s->version : "", NULL,
			    NULL);
	if (rc == 0)
		rc = kl_buf_append_str(out, "1\n");
	if (rc == 0)
		rc = render_sources(s, out);
	if (rc == 0)
		rc = render_rules(s, out);
	if (rc == 0)
		rc = render_sinks(s, out);
	if (rc == 0)
		rc = render_histogram(&s->line_to_page, out);
	if (rc == 0 && s->redis)
		rc = render_redis(s->redis, out);
	return rc < 0 ? -ENOMEM : 0;
}
