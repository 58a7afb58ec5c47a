/*
 * alert_board.c — the other replicas' alerts of unshared rules (see
 * alert_board.h). Runs at most twice per ALERT_BOARD_PERIOD_S, never on the
 * line path: allocating here is fine.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "src/alert_board.h"

#define BOARD_KEY_SPAN_S 10 /* one key per 10 s of wall time */
#define BOARD_KEY_TTL_MS 30000
#define BOARD_MAX_REPLICAS 64

struct board_entry {
	char *replica;
	int64_t at_ms; /* when it published this, by its clock */
	char *items;   /* its alerts as compact JSON objects, ",\n "-separated; "" for none */
};

struct alert_board {
	char *replica;
	int64_t next_us; /* the next publish */
	struct board_entry e[BOARD_MAX_REPLICAS];
	size_t n;
	struct kl_buf out; /* the value published; reused */
};

int alert_json(struct kl_buf *b, const struct rules_alert_state *a, const char *replica)
{
	char since[40];
	kl_format_rfc3339(a->since_us, false, since);
	int rc = kl_buf_append_str(b, "{\"alert\":");
	if (rc == 0)
		rc = kl_json_append_str(b, a->alert, strlen(a->alert));
	if (rc == 0)
		rc = kl_buf_append_str(b, ",\"labels\":{");
	for (size_t i = 0; i < a->nlabels && rc == 0; i++) {
		const char *v = a->labels[i].value ? a->labels[i].value : "";
		if (i)
			rc = kl_buf_append(b, ",", 1);
		if (rc == 0)
			rc = kl_json_append_str(b, a->labels[i].key, strlen(a->labels[i].key));
		if (rc == 0)
			rc = kl_buf_append(b, ":", 1);
		if (rc == 0)
			rc = kl_json_append_str(b, v, strlen(v));
	}
	if (rc == 0)
		rc = kl_buf_appendf(b, "},\"state\":\"%s\",\"since\":\"%s\",\"value\":",
				    a->firing ? "firing" : "pending", since);
	if (rc == 0)
		rc = kl_json_append_num(b, a->value);
	if (rc == 0 && replica) {
		rc = kl_buf_append_str(b, ",\"replica\":");
		if (rc == 0)
			rc = kl_json_append_str(b, replica, strlen(replica));
	}
	if (rc == 0)
		rc = kl_buf_append(b, "}", 1);
	return rc;
}

struct alert_board *alert_board_new(const char *replica)
{
	struct alert_board *ab = calloc(1, sizeof *ab);
	if (!ab)
		return NULL;
	ab->replica = kl_strndup(replica, strlen(replica));
	if (!ab->replica) {
		free(ab);
		return NULL;
	}
	return ab;
}

static void entry_free(struct board_entry *e)
{
	free(e->replica);
	free(e->items);
	*e = (struct board_entry){ 0 };
}

void alert_board_clear(struct alert_board *ab)
{
	for (size_t i = 0; i < ab->n; i++)
		entry_free(&ab->e[i]);
	ab->n = 0;
}

void alert_board_free(struct alert_board *ab)
{
	if (!ab)
		return;
	alert_board_clear(ab);
	kl_buf_free(&ab->out);
	free(ab->replica);
	free(ab);
}

static void board_key(int64_t now_us, int back, char out[64])
{
	long long span = (long long)(now_us / 1000000 / BOARD_KEY_SPAN_S) - back;
	snprintf(out, 64, "klaxon:board:%lld", span);
}

struct publish_ctx {
	struct alert_board *ab;
	size_t n;
	int rc;
};

/* Only unshared rules: a shared one is judged on the union everywhere. */
static void publish_one(void *ctx, const struct rules_alert_state *a)
{
	struct publish_ctx *c = ctx;
	if (a->shared || c->rc < 0)
		return;
	int rc = kl_buf_append_str(&c->ab->out, c->n++ ? "," : "");
	if (rc == 0)
		rc = alert_json(&c->ab->out, a, c->ab->replica);
	if (rc < 0)
		c->rc = rc;
}

static int board_value(struct alert_board *ab, struct rules_set *rules, int64_t now_us)
{
	struct publish_ctx c = { ab, 0, 0 };
	kl_buf_reset(&ab->out);
	int rc = kl_buf_appendf(&ab->out, "{\"at\":%lld,\"alerts\":[", (long long)(now_us / 1000));
	if (rc == 0)
		rules_each_alert(rules, publish_one, &c);
	if (rc == 0 && c.rc == 0)
		rc = kl_buf_append_str(&ab->out, "]}");
	return rc < 0 ? rc : c.rc;
}

void alert_board_sync(struct alert_board *ab, struct sink_redis *r, struct rules_set *rules,
		      int64_t now_us)
{
	if (now_us < ab->next_us)
		return;
	ab->next_us = now_us + ALERT_BOARD_PERIOD_S * 1000000LL;
	char key[64];
	board_key(now_us, 0, key);
	if (board_value(ab, rules, now_us) == 0)
		sink_redis_hset(r, key, ab->replica, strlen(ab->replica), ab->out.p, ab->out.len,
				BOARD_KEY_TTL_MS);
	sink_redis_hgetall(r, key, ALERT_BOARD_TAG);
	board_key(now_us, 1, key);
	sink_redis_hgetall(r, key, ALERT_BOARD_TAG);
}

static struct board_entry *find_entry(struct alert_board *ab, const char *replica, size_t len)
{
	for (size_t i = 0; i < ab->n; i++)
		if (strlen(ab->e[i].replica) == len && memcmp(ab->e[i].replica, replica, len) == 0)
			return &ab->e[i];
	return NULL;
}

/* The published alerts as one string of compact objects, or NULL if the
 * value is not what alert_board_sync writes (another program's, damaged). */
static char *items_of(json_t *alerts)
{
	struct kl_buf b = { 0 };
	size_t i;
	json_t *it;
	int rc = kl_buf_append(&b, "", 0);
	json_array_foreach(alerts, i, it)
	{
		char *s = json_is_object(it) ? json_dumps(it, JSON_COMPACT) : NULL;
		if (!s) {
			rc = -EINVAL;
			break;
		}
		if (rc == 0 && i)
			rc = kl_buf_append_str(&b, ",\n ");
		if (rc == 0)
			rc = kl_buf_append_str(&b, s);
		free(s);
	}
	if (rc < 0) {
		kl_buf_free(&b);
		return NULL;
	}
	return b.p;
}

static void take_field(struct alert_board *ab, const struct sink_redis_field *f)
{
	if ((f->nlen == strlen(ab->replica) && memcmp(f->name, ab->replica, f->nlen) == 0))
		return; /* our own: /alerts has it first hand */
	json_t *v = json_loadb(f->val, f->vlen, 0, NULL);
	json_t *at = json_object_get(v, "at"), *alerts = json_object_get(v, "alerts");
	struct board_entry *e = find_entry(ab, f->name, f->nlen);
	if (!json_is_integer(at) || !json_is_array(alerts) ||
	    (e && e->at_ms >= json_integer_value(at))) {
		json_decref(v); /* not a board value, or older than the one we have */
		return;
	}
	char *items = items_of(alerts);
	int64_t at_ms = json_integer_value(at);
	json_decref(v);
	if (!items)
		return;
	if (!e && ab->n < BOARD_MAX_REPLICAS) {
		char *name = kl_strndup(f->name, f->nlen);
		if (name) {
			e = &ab->e[ab->n++];
			e->replica = name;
		}
	}
	if (!e) {
		free(items);
		return;
	}
	free(e->items);
	e->items = items;
	e->at_ms = at_ms;
}

static bool fresh(const struct board_entry *e, int64_t now_us)
{
	return e->at_ms >= now_us / 1000 - ALERT_BOARD_STALE_S * 1000LL;
}

void alert_board_answer(struct alert_board *ab, const struct sink_redis_field *f, size_t n,
			int64_t now_us)
{
	for (size_t i = 0; i < n; i++)
		take_field(ab, &f[i]);
	/* Forget the replicas gone quiet (dead, or their key expired). */
	for (size_t i = 0; i < ab->n;) {
		if (fresh(&ab->e[i], now_us)) {
			i++;
			continue;
		}
		entry_free(&ab->e[i]);
		ab->e[i] = ab->e[--ab->n];
		ab->e[ab->n] = (struct board_entry){ 0 };
	}
}

int alert_board_append(const struct alert_board *ab, struct kl_buf *b, size_t *count,
		       int64_t now_us)
{
	int rc = 0;
	for (size_t i = 0; i < ab->n && rc == 0; i++) {
		const struct board_entry *e = &ab->e[i];
		if (!fresh(e, now_us) || !e->items[0])
			continue;
		rc = kl_buf_append_str(b, (*count)++ ? ",\n " : "\n ");
		if (rc == 0)
			rc = kl_buf_append_str(b, e->items);
	}
	return rc;
}
