/*
 * sinks.c — the set of sinks: record sinks (stdout, jsonl) here, notifiers
 * behind the policy (policy.c, deliver.c).
 *
 * A record sink is a file descriptor, a buffer, and what it wants. Alert lines
 * are flushed when written (they are rare and urgent); event lines are batched
 * up to FLUSH_AT bytes and flushed by the caller after each read batch, so the
 * jsonl events sink costs one write(2) per batch, not per line.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>

#include "sinks/sinks.h"
#include "sinks/sinks_int.h"

#define FLUSH_AT (256 * 1024)

struct record {
	char *name;
	char *path; /* NULL for stdout */
	int fd;
	bool events;
	bool owns_fd;
	bool write_failed; /* logged once until a write succeeds again */
	struct kl_buf buf;
	size_t lines_pending;
	struct sink_stats stats;
};

static struct record *record_alloc(const char *name, int fd, bool events)
{
	struct record *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->name = kl_strndup(name, strlen(name));
	if (!s->name) {
		free(s);
		return NULL;
	}
	s->fd = fd;
	s->events = events;
	return s;
}

static struct record *record_stdout_new(const char *name, int fd)
{
	return record_alloc(name, fd, false);
}

static struct record *record_jsonl_new(const char *name, const char *path, bool events, int *err)
{
	int fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (fd < 0) {
		*err = -errno;
		return NULL;
	}
	/* A line cut short by a crash of the last run: end it, so the next
	 * record starts on a line of its own and every other line stays JSON. */
	char last;
	off_t size = lseek(fd, 0, SEEK_END);
	if (size > 0 && pread(fd, &last, 1, size - 1) == 1 && last != '\n' &&
	    write(fd, "\n", 1) != 1)
		kl_log(KL_LOG_WARN, "sink '%s': cannot end the cut-off last line of %s", name, path);
	struct record *s = record_alloc(name, fd, events);
	if (!s || !(s->path = kl_strndup(path, strlen(path)))) {
		if (s)
			free(s->name);
		free(s);
		close(fd);
		*err = -ENOMEM;
		return NULL;
	}
	s->owns_fd = true;
	return s;
}

static void record_flush(struct record *s)
{
	size_t off = 0;
	while (off < s->buf.len) {
		ssize_t n = write(s->fd, s->buf.p + off, s->buf.len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (!s->write_failed)
				kl_log(KL_LOG_ERROR, "sink '%s': writing to %s failed: %s; %zu lines lost",
				       s->name, s->path ? s->path : "stdout", strerror(errno),
				       s->lines_pending);
			s->write_failed = true;
			s->stats.failed += s->lines_pending;
			goto done;
		}
		off += (size_t)n;
	}
	s->write_failed = false;
	s->stats.written += s->lines_pending;
done:
	s->lines_pending = 0;
	kl_buf_reset(&s->buf);
}

static void record_free(struct record *s)
{
	if (!s)
		return;
	record_flush(s);
	if (s->owns_fd)
		close(s->fd);
	kl_buf_free(&s->buf);
	free(s->name);
	free(s->path);
	free(s);
}

static int append_labels(struct kl_buf *b, const struct rules_label *l, size_t n)
{
	int rc = kl_buf_append(b, "{", 1);
	for (size_t i = 0; i < n && !rc; i++) {
		if (i)
			rc = kl_buf_append(b, ",", 1);
		rc = rc ? rc : kl_json_append_str(b, l[i].key, strlen(l[i].key));
		rc = rc ? rc : kl_buf_append(b, ":", 1);
		rc = rc ? rc : kl_json_append_str(b, l[i].value, strlen(l[i].value));
	}
	return rc ? rc : kl_buf_append(b, "}", 1);
}

int sink_transition_json(const struct rules_transition *t, struct kl_buf *b)
{
	char at[KL_RFC3339_MAX], started[KL_RFC3339_MAX];
	kl_format_rfc3339(t->at_us, false, at);
	kl_format_rfc3339(t->started_us, false, started);
	int rc = kl_buf_appendf(b, "{\"at\":\"%s\",\"status\":\"%s\",\"alert\":", at,
				t->status == RULES_FIRING ? "firing" : "resolved");
	rc = rc ? rc : kl_json_append_str(b, t->alert, strlen(t->alert));
	rc = rc ? rc : kl_buf_append_str(b, ",\"labels\":");
	rc = rc ? rc : append_labels(b, t->labels, t->nlabels);
	rc = rc ? rc : kl_buf_append_str(b, ",\"value\":");
	rc = rc ? rc : kl_json_append_num(b, t->value);
	if (t->nannotations) {
		rc = rc ? rc : kl_buf_append_str(b, ",\"annotations\":");
		rc = rc ? rc : append_labels(b, t->annotations, t->nannotations);
	}
	rc = rc ? rc : kl_buf_appendf(b, ",\"started\":\"%s\"}", started);
	return rc;
}

static void record_alert(struct record *s, const struct rules_transition *t)
{
	/* A restored alert's firing line was written by the run before. */
	if (s->events || t->restored)
		return;
	size_t mark = s->buf.len;
	if (sink_transition_json(t, &s->buf) < 0 || kl_buf_append(&s->buf, "\n", 1) < 0) {
		s->buf.len = mark;
		s->stats.failed++;
		return;
	}
	s->lines_pending++;
	record_flush(s);
}

static void record_event(struct record *s, const char *source, struct parser_event *ev)
{
	if (!s->events)
		return;
	size_t mark = s->buf.len;
	if (parser_event_json(ev, source, &s->buf) < 0 || kl_buf_append(&s->buf, "\n", 1) < 0) {
		s->buf.len = mark;
		s->stats.failed++;
		return;
	}
	s->lines_pending++;
	if (s->buf.len >= FLUSH_AT)
		record_flush(s);
}

/* ---- the set ------------------------------------------------------------------ */

struct sinks {
	struct record **records;
	size_t nrecords;
	struct notifier **notifiers;
	size_t nnotifiers;
	struct http *http;
	struct spool *spool;
	struct policy *policy;
	bool want_events;
	struct sink_redis *redis; /* shared mode (NULL: none) */
	struct kl_buf xbuf;	  /* the stream's JSON, reused */
};

static const char *const kind_names[] = {
	[SINK_STDOUT] = "stdout",   [SINK_JSONL] = "jsonl",   [SINK_WEBHOOK] = "webhook",
	[SINK_ALERTMANAGER] = "alertmanager", [SINK_SLACK] = "slack", [SINK_DISCORD] = "discord",
	[SINK_TEAMS] = "teams",
};

int sink_kind_from_name(const char *name, enum sink_kind *out)
{
	for (size_t i = 0; i < KL_ARRAY_LEN(kind_names); i++)
		if (!strcmp(kind_names[i], name)) {
			*out = (enum sink_kind)i;
			return 0;
		}
	return -EINVAL;
}

const char *sink_kind_name(enum sink_kind k)
{
	return (size_t)k < KL_ARRAY_LEN(kind_names) ? kind_names[k] : "unknown";
}

void notify_spec_defaults(struct notify_spec *n)
{
	n->group_wait_us = 30 * 1000000LL;
	n->group_interval_us = 5 * 60 * 1000000LL;
	n->repeat_interval_us = 4 * 3600 * 1000000LL;
	n->send_resolved = true;
}

static int add_record(struct sinks *s, const struct sink_spec *sp)
{
	int err = -ENOMEM;
	struct record *r = sp->kind == SINK_STDOUT ? record_stdout_new(sp->name, STDOUT_FILENO)
						   : record_jsonl_new(sp->name, sp->path, sp->events, &err);
	if (!r) {
		kl_log(KL_LOG_ERROR, "sink '%s': cannot open '%s': %s", sp->name,
		       sp->path ? sp->path : "stdout", strerror(-err));
		return err;
	}
	s->records[s->nrecords++] = r;
	s->want_events |= r->events;
	return 0;
}

/* Messages spooled for a sink that is no longer configured can never be
 * delivered: say so once and drop them, rather than keep them forever. */
static void drop_orphans(struct sinks *s)
{
	uint64_t dropped = 0;
	size_t budget = spool_pending(s->spool); /* each turn removes or skips one */
	for (size_t i = 0; i < spool_pending(s->spool) && budget--;) {
		const struct spool_rec *r = spool_get(s->spool, i);
		bool known = false;
		for (size_t k = 0; k < s->nnotifiers && !known; k++) {
			const char *name = notifier_name(s->notifiers[k]);
			known = strlen(name) == r->sink_len && !memcmp(name, r->sink, r->sink_len);
		}
		if (known) {
			i++;
			continue;
		}
		dropped++;
		spool_ack(s->spool, r->id); /* removed from memory even if the disk fails */
	}
	if (dropped)
		kl_log(KL_LOG_WARN, "sinks: %llu spooled message(s) were for sinks no longer configured; dropped",
		       (unsigned long long)dropped);
}

static int open_notifiers(struct sinks *s, struct ev_loop *loop, const struct sinks_spec *spec)
{
	int rc = spool_open(spec->state_dir, spec->spool_max_bytes ? spec->spool_max_bytes : 64u << 20,
			    &s->spool);
	if (rc < 0) {
		kl_log(KL_LOG_ERROR, "sinks: cannot open the spool in '%s': %s; check state_dir exists and is writable",
		       spec->state_dir, strerror(-rc));
		return rc;
	}
	s->http = http_new(loop);
	if (!s->http)
		return -ENOMEM;
	for (size_t i = 0; i < spec->nsinks; i++) {
		if (!sink_kind_notifies(spec->sinks[i].kind))
			continue;
		struct notifier *n = notifier_new(loop, s->http, s->spool, &spec->sinks[i],
						  spec->external_url ? spec->external_url : "");
		if (!n)
			return -ENOMEM;
		s->notifiers[s->nnotifiers++] = n;
	}
	drop_orphans(s);
	s->policy = policy_new(loop, spec, s->notifiers, s->nnotifiers, &rc);
	if (!s->policy)
		return rc;
	policy_set_redis(s->policy, s->redis);
	for (size_t i = 0; i < s->nnotifiers; i++)
		notifier_kick(s->notifiers[i]);
	return 0;
}

struct sinks *sinks_new(struct ev_loop *loop, const struct sinks_spec *spec, int *err)
{
	struct sinks *s = calloc(1, sizeof *s);
	size_t n = spec->nsinks ? spec->nsinks : 1;
	if (!s || !(s->records = calloc(n, sizeof *s->records)) ||
	    !(s->notifiers = calloc(n, sizeof *s->notifiers))) {
		*err = -ENOMEM;
		goto fail;
	}
	if (spec->redis && loop) {
		if (!(s->redis = sink_redis_new(loop, spec->redis))) {
			*err = -ENOMEM;
			goto fail;
		}
		s->want_events |= sink_redis_streams(s->redis, true);
	}
	bool notifiers = false;
	for (size_t i = 0; i < spec->nsinks; i++) {
		if (sink_kind_notifies(spec->sinks[i].kind)) {
			notifiers = true;
			continue;
		}
		if ((*err = add_record(s, &spec->sinks[i])) < 0)
			goto fail;
	}
	if (notifiers) {
		if (!loop) {
			*err = -EINVAL;
			goto fail;
		}
		if ((*err = open_notifiers(s, loop, spec)) < 0)
			goto fail;
	}
	return s;
fail:
	sinks_free(s);
	return NULL;
}

void sinks_free(struct sinks *s)
{
	if (!s)
		return;
	sink_redis_free(s->redis); /* first: cancelled leases still find their groups */
	kl_buf_free(&s->xbuf);
	policy_free(s->policy);
	for (size_t i = 0; i < s->nnotifiers; i++)
		notifier_free(s->notifiers[i]);
	http_free(s->http);
	spool_close(s->spool);
	for (size_t i = 0; i < s->nrecords; i++)
		record_free(s->records[i]);
	free(s->records);
	free(s->notifiers);
	free(s);
}

void sinks_alert(struct sinks *s, const struct rules_transition *t)
{
	for (size_t i = 0; i < s->nrecords; i++)
		record_alert(s->records[i], t);
	if (s->policy)
		policy_alert(s->policy, t);
	if (!t->restored && sink_redis_streams(s->redis, false)) {
		kl_buf_reset(&s->xbuf);
		if (sink_transition_json(t, &s->xbuf) == 0)
			sink_redis_xadd(s->redis, false, t->status == RULES_FIRING ? "firing" : "resolved",
					s->xbuf.p, s->xbuf.len);
	}
}

bool sinks_want_events(const struct sinks *s)
{
	return s->want_events;
}

void sinks_event(struct sinks *s, const char *source, struct parser_event *ev)
{
	for (size_t i = 0; i < s->nrecords; i++)
		record_event(s->records[i], source, ev);
	if (sink_redis_streams(s->redis, true)) {
		kl_buf_reset(&s->xbuf);
		if (parser_event_json(ev, source, &s->xbuf) == 0)
			sink_redis_xadd(s->redis, true, "event", s->xbuf.p, s->xbuf.len);
	}
}

struct sink_redis *sinks_redis(const struct sinks *s)
{
	return s ? s->redis : NULL;
}

void sinks_flush(struct sinks *s)
{
	for (size_t i = 0; i < s->nrecords; i++)
		record_flush(s->records[i]);
}

int sinks_get_stats(const struct sinks *s, const char *name, struct sink_stats *out)
{
	for (size_t i = 0; i < s->nrecords; i++)
		if (!strcmp(s->records[i]->name, name)) {
			*out = s->records[i]->stats;
			return 0;
		}
	for (size_t i = 0; i < s->nnotifiers; i++)
		if (!strcmp(notifier_name(s->notifiers[i]), name)) {
			notifier_get_stats(s->notifiers[i], out);
			return 0;
		}
	return -ENOENT;
}

uint64_t sinks_spooled(const struct sinks *s)
{
	uint64_t n = 0;
	for (size_t i = 0; s && i < s->nnotifiers; i++) {
		struct sink_stats st;
		notifier_get_stats(s->notifiers[i], &st);
		n += st.spooled;
	}
	return n;
}

void sinks_get_latency(const struct sinks *s, struct sink_latency *out)
{
	memset(out, 0, sizeof *out);
	for (size_t i = 0; i < s->nnotifiers; i++)
		notifier_add_latency(s->notifiers[i], out);
	if (!s->nnotifiers)
		notifier_add_latency(NULL, out); /* the bounds */
}
