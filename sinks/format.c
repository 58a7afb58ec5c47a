/*
 * format.c — a notification → the bytes of one payload format.
 *
 *   webhook       Alertmanager's webhook payload, version 4, field for field as
 *                 Alertmanager's notify/webhook writes it (template.Data plus
 *                 version, groupKey, truncatedAlerts), so a receiver written for
 *                 Alertmanager works unchanged.
 *   alertmanager  the body of POST /api/v2/alerts: an array of postableAlert.
 *   slack, discord, teams
 *                 a chat message: a headline for the group ("[FIRING:2]
 *                 HighErrorRate (nginx, page)"), then one card per alert: its
 *                 summary and runbook as text, its value and labels as fields,
 *                 red while firing, green once resolved.
 *
 * Invariants:
 *  - Every string goes through kl_json_append_str: the payload is valid UTF-8
 *    JSON whatever the labels and annotations hold.
 *  - Chat services have limits (Discord rejects a payload over its own). Text
 *    is cut on the source, after a whole code point (as kl_json_append_str
 *    decodes it), before it is escaped; a cut is marked with "…". So a cut
 *    never splits a UTF-8 sequence, a JSON escape or a Slack entity.
 *  - Each chat format has a budget for the strings of all its cards; a card
 *    gets its share of what is left, and what it does not use goes to the
 *    next. Within a card the text gets what the fields do not need, but the
 *    fields keep at least a third when both are long.
 *  - Log content cannot ping a channel: Slack's control characters (& < >)
 *    are sent as entities (Mattermost reads them the same way), and Discord
 *    gets allowed_mentions with nothing allowed.
 *
 * Allocation: scratch buffers per call, freed before returning.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sinks/sinks_int.h"

/* Go's zero time.Time, which Alertmanager writes as a firing alert's endsAt. */
#define ZERO_TIME "\"0001-01-01T00:00:00Z\""
#define ELLIPSIS "\xe2\x80\xa6" /* U+2026 */
#define MAX_FIELDS 25		/* per card, the most any format below allows */

/* ------------------------------------------------------------------------- */
/* Output with a sticky error: after the first failure every call does nothing,
 * and format_payload reports it once. */

struct w {
	struct kl_buf *b;      /* the payload */
	struct kl_buf title;   /* scratch: a headline or card title, composed raw */
	struct kl_buf text;    /* scratch: a card's text, composed raw */
	struct kl_buf ent;     /* scratch: one of those with Slack's entities */
	int err;
};

static void put(struct w *w, const void *p, size_t n)
{
	if (!w->err && kl_buf_append(w->b, p, n) < 0)
		w->err = -ENOMEM;
}

#define PUT(w, lit) put((w), (lit), sizeof(lit) - 1)

/* A whole string, as a JSON string; NULL is "". */
static void put_str(struct w *w, const char *s)
{
	if (!s)
		s = "";
	if (!w->err && kl_json_append_str(w->b, s, strlen(s)) < 0)
		w->err = -ENOMEM;
}

static void raw(struct w *w, struct kl_buf *r, const char *s, size_t n)
{
	if (!w->err && kl_buf_append(r, s, n) < 0)
		w->err = -ENOMEM;
}

static void raw_str(struct w *w, struct kl_buf *r, const char *s)
{
	if (s)
		raw(w, r, s, strlen(s));
}

#define RAW(w, r, lit) raw((w), (r), (lit), sizeof(lit) - 1)

static void put_labels(struct w *w, const struct notif_label *l, size_t n)
{
	PUT(w, "{");
	for (size_t i = 0; i < n; i++) {
		if (i)
			PUT(w, ",");
		put_str(w, l[i].key);
		PUT(w, ":");
		put_str(w, l[i].value);
	}
	PUT(w, "}");
}

static void put_time(struct w *w, int64_t us)
{
	char t[KL_RFC3339_MAX];
	size_t n = kl_format_rfc3339(us, true, t);

	PUT(w, "\"");
	put(w, t, n);
	PUT(w, "\"");
}

static const char *label_get(const struct notif_label *l, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++) {
		if (l[i].key && strcmp(l[i].key, key) == 0)
			return l[i].value ? l[i].value : "";
	}
	return NULL;
}

/* ------------------------------------------------------------------------- */
/* Fingerprint: prometheus/common model.labelSetToFingerprint, which is
 * FNV-1a 64 over name, 0xff, value, 0xff for each label in sorted name order
 * (byte order, as Go's sort.Strings), printed as Fingerprint.String():
 * "%016x". The empty set gives the FNV offset basis, cbf29ce484222325. */

#define FNV_OFFSET UINT64_C(14695981039346656037)
#define FNV_PRIME UINT64_C(1099511628211)

static uint64_t fnv_add(uint64_t h, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
		h ^= *p;
		h *= FNV_PRIME;
	}
	return h;
}

static uint64_t fnv_label(uint64_t h, const struct notif_label *l)
{
	h = fnv_add(h, l->key);
	h = (h ^ 0xff) * FNV_PRIME;
	h = fnv_add(h, l->value);
	return (h ^ 0xff) * FNV_PRIME;
}

/* (key, index) order, so that a selection over an unsorted array is total. */
static int key_cmp(const struct notif_label *l, size_t i, size_t j)
{
	int c = strcmp(l[i].key ? l[i].key : "", l[j].key ? l[j].key : "");
	return c ? c : (i > j) - (i < j);
}

void format_fingerprint(const struct notif_label *labels, size_t n, char out[17])
{
	uint64_t h = FNV_OFFSET;
	bool sorted = true;

	for (size_t i = 1; i < n && sorted; i++)
		sorted = key_cmp(labels, i - 1, i) < 0;
	if (sorted) {
		for (size_t i = 0; i < n; i++)
			h = fnv_label(h, &labels[i]);
	} else {
		/* The contract says sorted; if not, select in order (no allocation,
		 * label sets are small). */
		size_t prev = SIZE_MAX;
		for (size_t k = 0; k < n; k++) {
			size_t best = SIZE_MAX;
			for (size_t j = 0; j < n; j++) {
				if (prev != SIZE_MAX && key_cmp(labels, j, prev) <= 0)
					continue;
				if (best == SIZE_MAX || key_cmp(labels, j, best) < 0)
					best = j;
			}
			h = fnv_label(h, &labels[best]);
			prev = best;
		}
	}
	snprintf(out, 17, "%016" PRIx64, h);
}

/* policy.c's fingerprint when it set one, else computed here. */
static void put_fingerprint(struct w *w, const struct notif_alert *a)
{
	char fp[17];

	if (strnlen(a->fingerprint, sizeof a->fingerprint) == 16) {
		memcpy(fp, a->fingerprint, 16);
		fp[16] = '\0';
	} else {
		format_fingerprint(a->labels, a->nlabels, fp);
	}
	put_str(w, fp);
}

static size_t count_firing(const struct notification *n)
{
	size_t k = 0;
	for (size_t i = 0; i < n->nalerts; i++)
		k += n->alerts[i].firing;
	return k;
}

/* ------------------------------------------------------------------------- */
/* webhook: Alertmanager's notify/webhook Message, in its field order. */

static void fmt_webhook(struct w *w, const struct notification *n)
{
	PUT(w, "{\"receiver\":");
	put_str(w, n->receiver);
	PUT(w, ",\"status\":");
	put_str(w, n->firing ? "firing" : "resolved");
	PUT(w, ",\"alerts\":[");
	for (size_t i = 0; i < n->nalerts; i++) {
		const struct notif_alert *a = &n->alerts[i];
		if (i)
			PUT(w, ",");
		PUT(w, "{\"status\":");
		put_str(w, a->firing ? "firing" : "resolved");
		PUT(w, ",\"labels\":");
		put_labels(w, a->labels, a->nlabels);
		PUT(w, ",\"annotations\":");
		put_labels(w, a->annotations, a->nannotations);
		PUT(w, ",\"startsAt\":");
		put_time(w, a->starts_us);
		PUT(w, ",\"endsAt\":");
		if (a->firing || a->ends_us == 0)
			PUT(w, ZERO_TIME);
		else
			put_time(w, a->ends_us);
		/* klaxon generated the alert: its external URL is the link back */
		PUT(w, ",\"generatorURL\":");
		put_str(w, n->external_url);
		PUT(w, ",\"fingerprint\":");
		put_fingerprint(w, a);
		PUT(w, "}");
	}
	PUT(w, "],\"groupLabels\":");
	put_labels(w, n->group_labels, n->ngroup_labels);
	PUT(w, ",\"commonLabels\":");
	put_labels(w, n->common_labels, n->ncommon_labels);
	PUT(w, ",\"commonAnnotations\":");
	put_labels(w, n->common_annotations, n->ncommon_annotations);
	PUT(w, ",\"externalURL\":");
	put_str(w, n->external_url);
	PUT(w, ",\"version\":\"4\",\"groupKey\":");
	put_str(w, n->group_key);
	PUT(w, ",\"truncatedAlerts\":0}");
}

/* ------------------------------------------------------------------------- */
/* alertmanager: postableAlerts. A firing alert has no endsAt, so Alertmanager
 * sets it to now + resolve_timeout; a resolved one ends at its ends_us. */

static void fmt_alertmanager(struct w *w, const struct notification *n)
{
	PUT(w, "[");
	for (size_t i = 0; i < n->nalerts; i++) {
		const struct notif_alert *a = &n->alerts[i];
		if (i)
			PUT(w, ",");
		PUT(w, "{\"labels\":");
		put_labels(w, a->labels, a->nlabels);
		PUT(w, ",\"annotations\":");
		put_labels(w, a->annotations, a->nannotations);
		PUT(w, ",\"startsAt\":");
		put_time(w, a->starts_us);
		if (!a->firing) {
			PUT(w, ",\"endsAt\":");
			put_time(w, a->ends_us);
		}
		/* format: uri in the API's schema; "" would not be one */
		if (n->external_url && n->external_url[0]) {
			PUT(w, ",\"generatorURL\":");
			put_str(w, n->external_url);
		}
		PUT(w, "}");
	}
	PUT(w, "]");
}

/* ------------------------------------------------------------------------- */
/* Cutting text to a limit. Units are UTF-16 code units of the text (Discord
 * counts characters; code units are never fewer) or bytes of the escaped JSON
 * between the quotes (Slack, Teams: their limits are on request size). */

struct cut {
	size_t len;  /* source bytes kept */
	size_t cost; /* units of the output, "…" included */
	bool dots;   /* cut short: "…" follows */
};


/* Bytes one ASCII byte becomes: a Slack entity, a JSON escape, or itself. */
static size_t ascii_cost(unsigned char c, bool ent)
{
	if (ent && c == '&')
		return 5; /* &amp; */
	if (ent && (c == '<' || c == '>'))
		return 4; /* &lt; &gt; */
	switch (c) {
	case '"': case '\\': case '\b': case '\f': case '\n': case '\r': case '\t':
		return 2;
	default:
		return c < 0x20 ? 6 : 1; /* \u00XX */
	}
}

/* The longest prefix of s[0..len) that fits cap units, whole units only; when
 * s does not fit, the longest that fits with "…" after it (or nothing, when
 * even "…" does not fit). */
static struct cut measure(const char *s, size_t len, bool ent, bool utf16, size_t cap)
{
	const unsigned char *u = (const unsigned char *)s;
	const size_t ell = utf16 ? 1 : 3;
	struct cut fit = { 0, 0, true };
	bool have_fit = cap >= ell;
	size_t i = 0, cost = 0;

	while (i < len) {
		size_t n, units, bytes, bad = 1;
		if (u[i] < 0x80) {
			n = 1;
			units = 1;
			bytes = ascii_cost(u[i], ent);
		} else if ((n = kl_utf8_seq(u + i, len - i, &bad)) != 0) {
			units = n == 4 ? 2 : 1; /* outside the BMP: a surrogate pair */
			bytes = n;
		} else {
			n = bad;
			units = 1;
			bytes = 3; /* U+FFFD */
		}
		size_t k = utf16 ? units : bytes;
		if (k > cap - cost) {
			if (!have_fit)
				return (struct cut){ 0, 0, false };
			fit.cost += ell;
			return fit;
		}
		cost += k;
		i += n;
		if (cap - cost >= ell) {
			fit.len = i;
			fit.cost = cost;
		}
	}
	return (struct cut){ len, cost, false };
}

/* Write s cut as k says, as one JSON string; suffix (ours, already valid
 * inside a JSON string) goes after the cut. */
static void put_cut(struct w *w, const char *s, const struct cut *k, bool ent, const char *suffix)
{
	const char *p = s;
	size_t n = k->len;

	if (w->err)
		return;
	if (ent) {
		kl_buf_reset(&w->ent);
		for (size_t i = 0; i < k->len; i++) {
			switch (s[i]) {
			case '&': RAW(w, &w->ent, "&amp;"); break;
			case '<': RAW(w, &w->ent, "&lt;"); break;
			case '>': RAW(w, &w->ent, "&gt;"); break;
			default: raw(w, &w->ent, &s[i], 1); break;
			}
		}
		if (w->err)
			return;
		p = w->ent.p;
		n = w->ent.len;
	}
	if (kl_json_append_str(w->b, n ? p : "", n) < 0) {
		w->err = -ENOMEM;
		return;
	}
	if (!k->dots && !suffix)
		return;
	w->b->len--; /* reopen: the closing quote goes after what follows */
	if (k->dots)
		PUT(w, ELLIPSIS);
	if (suffix)
		put(w, suffix, strlen(suffix));
	PUT(w, "\"");
}

/* ------------------------------------------------------------------------- */
/* Chat formats: limits and a plan per card. */

enum chat_kind { CHAT_SLACK, CHAT_DISCORD, CHAT_TEAMS };

struct chat {
	enum chat_kind kind;
	bool utf16;	     /* units: UTF-16 code units, else escaped bytes */
	bool ent;	     /* Slack's entities in text, titles and field values */
	const char *para;    /* between summary and runbook */
	size_t cards;	     /* at most this many cards; a note says how many more */
	size_t fields;	     /* at most this many fields per card */
	size_t head;	     /* the headline */
	size_t title, text, name, value; /* per string of a card */
	size_t total;	     /* all the cards' strings together */
};

/*
 * Slack: at most 20 attachments is Slack's own advice (100 is an error);
 * text over 40,000 characters is truncated by Slack, Mattermost keeps 16,383
 * in a message. Discord (Execute Webhook, embed limits): content 2000;
 * 10 embeds; title 256, description 4096, 25 fields of name 256 and value
 * 1024; 6000 characters over all embeds. Teams: a webhook request is at most
 * 28 KB and a card shows 10 sections; 16 KB of strings, 10 sections of
 * 20 facts and the headline keep the whole payload under 24 KB.
 */
static const struct chat SLACK = {
	CHAT_SLACK, false, true, "\n", 20, MAX_FIELDS, 3000, 500, 8000, 200, 1000, 32000,
};
static const struct chat DISCORD = {
	CHAT_DISCORD, true, false, "\n", 10, 25, 2000, 256, 4096, 256, 1024, 6000,
};
static const struct chat TEAMS = {
	CHAT_TEAMS, false, false, "\n\n", 10, 20, 500, 400, 4000, 200, 1000, 16000,
};

#define RED 0xD63232   /* firing */
#define GREEN 0x2EB67D /* resolved */

/* A colour as Slack ("#D63232"), Teams ("D63232") or Discord (an integer)
 * take it. */
static void put_color(struct w *w, enum chat_kind kind, bool firing)
{
	char t[16];
	int n = snprintf(t, sizeof t, kind == CHAT_DISCORD ? "%d" : kind == CHAT_SLACK ?
			 "\"#%06X\"" : "\"%06X\"", firing ? RED : GREEN);
	put(w, t, (size_t)n);
}

struct field {
	const char *name, *val;
	struct cut nc, vc;
};

struct card {
	struct cut tc, xc; /* title (w->title), text (w->text) */
	struct field f[MAX_FIELDS];
	size_t nf;
	size_t cost;
};

static size_t min_sz(size_t a, size_t b)
{
	return a < b ? a : b;
}

static const char *nonempty(const char *s)
{
	return s && s[0] ? s : "(empty)"; /* Discord refuses empty field values */
}

/* The group's headline, into w->title:
 * "[FIRING:2] HighErrorRate (nginx, page)" / "[RESOLVED] HighErrorRate (…)":
 * the group labels' values (alertname first), then the other common labels'
 * values. Without group labels, the common alertname names the group. */
static void headline(struct w *w, const struct notification *n)
{
	struct kl_buf *r = &w->title;
	const char *name = label_get(n->group_labels, n->ngroup_labels, "alertname");
	bool sep = false, named_by_common = false;
	char num[32];

	kl_buf_reset(r);
	if (n->firing) {
		snprintf(num, sizeof num, "[FIRING:%zu]", count_firing(n));
		raw_str(w, r, num);
	} else {
		RAW(w, r, "[RESOLVED]");
	}
	if (!name && n->ngroup_labels == 0) {
		name = label_get(n->common_labels, n->ncommon_labels, "alertname");
		named_by_common = name != NULL;
	}
	if (name) {
		RAW(w, r, " ");
		raw_str(w, r, name);
	}
	for (size_t i = 0; i < n->ngroup_labels; i++) {
		if (n->group_labels[i].key && strcmp(n->group_labels[i].key, "alertname") == 0)
			continue;
		RAW(w, r, " ");
		raw_str(w, r, n->group_labels[i].value);
	}
	for (size_t i = 0; i < n->ncommon_labels; i++) {
		const struct notif_label *l = &n->common_labels[i];
		if (!l->key || label_get(n->group_labels, n->ngroup_labels, l->key))
			continue;
		if (named_by_common && strcmp(l->key, "alertname") == 0)
			continue;
		raw_str(w, r, sep ? ", " : " (");
		raw_str(w, r, l->value);
		sep = true;
	}
	if (sep)
		RAW(w, r, ")");
}

/* One alert's card title and text, into w->title and w->text. The title names
 * the labels that set it apart from the group: "[FIRING] HighErrorRate
 * (path=/api)". The text is the summary (else the description) and the
 * runbook. */
static void card_text(struct w *w, const struct chat *c, const struct notification *n,
		      const struct notif_alert *a)
{
	const char *alertname = label_get(a->labels, a->nlabels, "alertname");
	const char *summary = label_get(a->annotations, a->nannotations, "summary");
	const char *runbook = label_get(a->annotations, a->nannotations, "runbook");
	bool sep = false;

	kl_buf_reset(&w->title);
	kl_buf_reset(&w->text);
	if (a->firing)
		RAW(w, &w->title, "[FIRING]");
	else
		RAW(w, &w->title, "[RESOLVED]");
	if (alertname) {
		RAW(w, &w->title, " ");
		raw_str(w, &w->title, alertname);
	}
	for (size_t i = 0; i < a->nlabels; i++) {
		const struct notif_label *l = &a->labels[i];
		const char *common;
		if (!l->key || strcmp(l->key, "alertname") == 0)
			continue;
		common = label_get(n->common_labels, n->ncommon_labels, l->key);
		if (common && l->value && strcmp(common, l->value) == 0)
			continue;
		raw_str(w, &w->title, sep ? ", " : " (");
		raw_str(w, &w->title, l->key);
		RAW(w, &w->title, "=");
		raw_str(w, &w->title, l->value);
		sep = true;
	}
	if (sep)
		RAW(w, &w->title, ")");

	if (!summary || !summary[0])
		summary = label_get(a->annotations, a->nannotations, "description");
	raw_str(w, &w->text, summary);
	if (runbook && runbook[0]) {
		if (w->text.len)
			raw_str(w, &w->text, c->para);
		RAW(w, &w->text, "Runbook: ");
		raw_str(w, &w->text, runbook);
	}
}

/* Plan one card within budget units: see the opening comment for who gets
 * what. Fields are the value annotation, then the labels but alertname. */
static void plan_card(struct w *w, const struct chat *c, const struct notification *n,
		      const struct notif_alert *a, size_t budget, struct card *k)
{
	const size_t ell = c->utf16 ? 1 : 3;
	const char *value = label_get(a->annotations, a->nannotations, "value");
	struct field cand[MAX_FIELDS];
	size_t ncand = 0, need = 0, rem;

	card_text(w, c, n, a);
	memset(k, 0, sizeof *k);
	if (w->err)
		return;

	if (value && ncand < c->fields)
		cand[ncand++] = (struct field){ .name = "value", .val = nonempty(value) };
	for (size_t i = 0; i < a->nlabels && ncand < c->fields; i++) {
		const struct notif_label *l = &a->labels[i];
		if (l->key && strcmp(l->key, "alertname") == 0)
			continue;
		cand[ncand++] = (struct field){ .name = nonempty(l->key), .val = nonempty(l->value) };
	}
	for (size_t i = 0; i < ncand; i++) {
		need += measure(cand[i].name, strlen(cand[i].name), false, c->utf16, c->name).cost;
		need += measure(cand[i].val, strlen(cand[i].val), c->ent, c->utf16, c->value).cost;
	}

	k->tc = measure(w->title.p, w->title.len, c->ent, c->utf16, min_sz(c->title, budget));
	rem = budget - k->tc.cost;
	if (c->kind == CHAT_SLACK) /* the title is also the fallback */
		rem -= min_sz(rem, k->tc.cost);
	k->xc = measure(w->text.p, w->text.len, c->ent, c->utf16,
			min_sz(c->text, rem - min_sz(need, rem / 3)));
	rem -= k->xc.cost;

	for (size_t i = 0; i < ncand && rem >= 2 * ell; i++) {
		struct field *f = &k->f[k->nf];
		*f = cand[i];
		f->nc = measure(f->name, strlen(f->name), false, c->utf16, min_sz(c->name, rem - ell));
		if (f->nc.cost == 0)
			break;
		f->vc = measure(f->val, strlen(f->val), c->ent, c->utf16,
				min_sz(c->value, rem - f->nc.cost));
		if (f->vc.cost == 0)
			break;
		rem -= f->nc.cost + f->vc.cost;
		k->nf++;
	}
	k->cost = budget - rem;
}

/* A card's fields as a JSON array of {NAME: …, VALUE: …TAIL}: the key names
 * and the trailing member differ between chat services, the shape does not.
 * ent: Slack's entity escaping of the value. */
static void put_fields(struct w *w, const struct card *k, const char *name_key,
		       const char *tail, bool ent)
{
	PUT(w, "[");
	for (size_t i = 0; i < k->nf; i++) {
		if (i)
			PUT(w, ",");
		PUT(w, "{");
		put(w, name_key, strlen(name_key));
		put_cut(w, k->f[i].name, &k->f[i].nc, false, NULL);
		PUT(w, ",\"value\":");
		put_cut(w, k->f[i].val, &k->f[i].vc, ent, NULL);
		put(w, tail, strlen(tail));
	}
	PUT(w, "]}");
}

static void emit_card(struct w *w, const struct chat *c, const struct notif_alert *a,
		      const struct card *k)
{
	switch (c->kind) {
	case CHAT_SLACK:
		PUT(w, "{\"fallback\":");
		put_cut(w, w->title.p, &k->tc, true, NULL);
		PUT(w, ",\"color\":");
		put_color(w, c->kind, a->firing);
		PUT(w, ",\"title\":");
		put_cut(w, w->title.p, &k->tc, true, NULL);
		if (k->xc.cost) {
			PUT(w, ",\"text\":");
			put_cut(w, w->text.p, &k->xc, true, NULL);
		}
		/* a field's title is plain text: Slack escapes it itself */
		PUT(w, ",\"fields\":");
		put_fields(w, k, "\"title\":", ",\"short\":true}", true);
		break;
	case CHAT_DISCORD:
		PUT(w, "{\"title\":");
		put_cut(w, w->title.p, &k->tc, false, NULL);
		if (k->xc.cost) {
			PUT(w, ",\"description\":");
			put_cut(w, w->text.p, &k->xc, false, NULL);
		}
		PUT(w, ",\"color\":");
		put_color(w, c->kind, a->firing);
		PUT(w, ",\"fields\":");
		put_fields(w, k, "\"name\":", ",\"inline\":true}", false);
		break;
	case CHAT_TEAMS:
		PUT(w, "{\"activityTitle\":");
		put_cut(w, w->title.p, &k->tc, false, NULL);
		if (k->xc.cost) {
			PUT(w, ",\"text\":");
			put_cut(w, w->text.p, &k->xc, false, NULL);
		}
		PUT(w, ",\"facts\":");
		put_fields(w, k, "\"name\":", "}", false);
		break;
	}
}

static void fmt_chat(struct w *w, const struct chat *c, const struct notification *n)
{
	size_t shown = min_sz(n->nalerts, c->cards), left = c->total;
	char more[64] = "";
	struct cut hc;

	/* JSON-escaped already: it goes inside the headline's string (Slack,
	 * Discord) as is; Teams gets it as a string of its own, past the "\\n" */
	if (shown < n->nalerts)
		snprintf(more, sizeof more, "\\n(%zu more alerts not shown)", n->nalerts - shown);

	headline(w, n);
	if (w->err)
		return;
	switch (c->kind) {
	case CHAT_SLACK:
		/* the note goes on its own line, after the (maybe cut) headline */
		hc = measure(w->title.p, w->title.len, true, false, c->head - strlen(more));
		PUT(w, "{\"text\":");
		put_cut(w, w->title.p, &hc, true, more[0] ? more : NULL);
		PUT(w, ",\"attachments\":[");
		break;
	case CHAT_DISCORD:
		hc = measure(w->title.p, w->title.len, false, true, c->head - strlen(more));
		PUT(w, "{\"content\":");
		put_cut(w, w->title.p, &hc, false, more[0] ? more : NULL);
		/* no @everyone, @here, role or user mention from log content */
		PUT(w, ",\"allowed_mentions\":{\"parse\":[]},\"embeds\":[");
		break;
	case CHAT_TEAMS:
		hc = measure(w->title.p, w->title.len, false, false, c->head);
		PUT(w, "{\"@type\":\"MessageCard\",\"@context\":\"https://schema.org/extensions\","
		       "\"themeColor\":");
		put_color(w, c->kind, n->firing);
		PUT(w, ",\"summary\":");
		put_cut(w, w->title.p, &hc, false, NULL);
		PUT(w, ",\"title\":");
		put_cut(w, w->title.p, &hc, false, NULL);
		if (more[0]) {
			PUT(w, ",\"text\":");
			put_str(w, more + 2);
		}
		PUT(w, ",\"sections\":[");
		break;
	}

	for (size_t i = 0; i < shown && !w->err; i++) {
		struct card k;
		plan_card(w, c, n, &n->alerts[i], left / (shown - i), &k);
		if (i)
			PUT(w, ",");
		emit_card(w, c, &n->alerts[i], &k);
		left -= k.cost;
	}
	PUT(w, "]}");
}

/* ------------------------------------------------------------------------- */

int format_payload(enum sink_format f, const struct notification *n, struct kl_buf *out)
{
	struct w w = { .b = out };
	size_t start = out->len;

	switch (f) {
	case FORMAT_WEBHOOK:
		fmt_webhook(&w, n);
		break;
	case FORMAT_ALERTMANAGER:
		fmt_alertmanager(&w, n);
		break;
	case FORMAT_SLACK:
		fmt_chat(&w, &SLACK, n);
		break;
	case FORMAT_DISCORD:
		fmt_chat(&w, &DISCORD, n);
		break;
	case FORMAT_TEAMS:
		fmt_chat(&w, &TEAMS, n);
		break;
	default:
		w.err = -EINVAL;
		break;
	}
	kl_buf_free(&w.title);
	kl_buf_free(&w.text);
	kl_buf_free(&w.ent);
	if (w.err) {
		out->len = start;
		if (out->p)
			out->p[start] = '\0';
		return w.err;
	}
	return 0;
}
