/*
 * sinks.c — the stdout and jsonl sinks.
 *
 * One struct serves both: a file descriptor, a buffer, and what it wants.
 * Alert lines are flushed when written (they are rare and urgent); event lines
 * are batched up to FLUSH_AT bytes and flushed by the caller after each read
 * batch, so the jsonl events sink costs one write(2) per batch, not per line.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sinks/sinks.h"

#define FLUSH_AT (256 * 1024)

struct sink {
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

static struct sink *sink_alloc(const char *name, int fd, bool events)
{
	struct sink *s = calloc(1, sizeof *s);
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

struct sink *sink_stdout_new(const char *name, int fd)
{
	return sink_alloc(name, fd, false);
}

struct sink *sink_jsonl_new(const char *name, const char *path, bool events, int *err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (fd < 0) {
		*err = -errno;
		return NULL;
	}
	struct sink *s = sink_alloc(name, fd, events);
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

void sink_flush(struct sink *s)
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

void sink_free(struct sink *s)
{
	if (!s)
		return;
	sink_flush(s);
	if (s->owns_fd)
		close(s->fd);
	kl_buf_free(&s->buf);
	free(s->name);
	free(s->path);
	free(s);
}

bool sink_wants_events(const struct sink *s)
{
	return s->events;
}

bool sink_wants_alerts(const struct sink *s)
{
	return !s->events;
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

void sink_alert(struct sink *s, const struct rules_transition *t)
{
	if (s->events)
		return;
	size_t mark = s->buf.len;
	if (sink_transition_json(t, &s->buf) < 0 || kl_buf_append(&s->buf, "\n", 1) < 0) {
		s->buf.len = mark;
		s->stats.failed++;
		return;
	}
	s->lines_pending++;
	sink_flush(s);
}

void sink_event(struct sink *s, const char *source, struct parser_event *ev)
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
		sink_flush(s);
}

void sink_get_stats(const struct sink *s, struct sink_stats *out)
{
	*out = s->stats;
}
