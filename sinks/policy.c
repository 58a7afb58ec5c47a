/*
 * policy.c — from alert transitions to notifications, the way Alertmanager
 * does it, without running one.
 *
 * A transition is labelled (alertname + the rule's labels), fingerprinted, and
 * routed: the routes are tried in order, the first whose `match` labels the
 * alert carries takes it (the next ones too with `continue: true`); no routes
 * configured means one route to every notifier. Within a route, alerts of one
 * rule form a group (the route's group_by labels; default alertname), which
 * is one message. A group has one timer:
 *
 *   new group            → flush after group_wait
 *   a change (new alert,
 *   resolved, value)     → flush group_interval after the last flush
 *   nothing new, firing  → flush again repeat_interval after the last flush
 *
 * A flush leaves out silenced alerts (re-checked when the silence ends) and
 * inhibited ones (an inhibit rule's source alert firing with the same `equal`
 * labels), skips the message if the set of alerts and their states is what
 * was last sent (unless it is a repeat), hands the message to every notifier
 * of the route, then forgets the resolved alerts it covered. A group with no
 * alert left is freed.
 *
 * The firing set (every firing alert, routed or not) answers inhibition; when
 * an alert that can inhibit changes, every group is flushed again at its next
 * group_interval, so muted alerts appear once their cause resolves.
 *
 * Memory: groups ≤ routes × rules; alerts per group ≤ the rule's max_groups;
 * the firing set is capped at MAX_FIRING (overflow counted).
 */
#include <errno.h>
#include <ev.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sinks/sinks.h"
#include "sinks/sinks_int.h"

#define MAX_FIRING 10000
/*
 * Alertmanager resolves an alert posted without endsAt after its
 * resolve_timeout (5m by default): firing alerts are posted to alertmanager
 * sinks again every minute, whatever repeat_interval says for the others.
 */
#define AM_REFRESH_US (60 * 1000000LL)

struct galert {
	char fingerprint[17];
	struct notif_label *labels; /* owned, sorted, with alertname */
	size_t nlabels;
	struct notif_label *ann;    /* owned, with "value" */
	size_t nann;
	bool firing;
	int64_t starts_us;
	int64_t ends_us;
	double value;
	int64_t read_us; /* earliest line behind a change not notified yet, 0: none */
	/* Resolved, in a message we stood down for (shared mode): kept, left out
	 * of our messages and hashes, until the lease holder is known to have
	 * told it (then forgotten) or not (then told with our next message). */
	bool held;
};

struct group {
	struct policy *p;
	size_t route;
	char *key;		    /* "{}/routeN:{alertname=\"X\",…}" */
	struct notif_label *glabels; /* the group_by labels, owned, sorted */
	size_t nglabels;
	struct galert *alerts;
	size_t n;
	size_t cap;
	ev_timer timer;
	int64_t created_us;
	int64_t last_flush_us;
	int64_t last_am_us; /* last post to the route's Alertmanager sinks */
	int64_t recheck_us; /* a silence muting an alert here ends then (0: none) */
	bool flushed_once;
	bool dirty;
	uint64_t last_hash;
	/* Shared mode: the lease asked for before this group's next message
	 * (NULL: none in flight), and its verdict once answered. */
	struct lease_wait *lease_wait;
	bool lease_ready;
	int lease_verdict;
	/* Stood down for a message of hash verify_hash: once the holder's lease
	 * has run out, check that it told it (its "sent" mark), else send. */
	ev_timer verify;
	uint64_t verify_hash;
	struct lease_wait *verify_wait;
	struct group *next;
};

/* A lease in flight; the group forgets it (g = NULL) if it goes first. */
struct lease_wait {
	struct group *g;
};

struct firing {
	char fingerprint[17];
	struct notif_label *labels;
	size_t nlabels;
};

struct route {
	const struct route_spec *spec; /* NULL: the implicit route */
	struct notify_spec notify;
	bool has_am;		       /* an alertmanager sink: needs AM_REFRESH_US */
	struct notifier **notifiers;
	size_t nnotifiers;
};

struct policy {
	struct ev_loop *loop;
	const struct sinks_spec *spec;
	struct route *routes;
	size_t nroutes;
	struct group *groups;
	struct firing *firing;
	size_t nfiring;
	uint64_t firing_dropped;
	struct silences silences;
	ev_stat silences_watch;
	char *silences_path;
	struct kl_buf scratch;
	struct sink_redis *redis; /* shared mode: leases (NULL: every replica sends) */
};

/* ---- labels ------------------------------------------------------------------- */

static int cmp_label(const void *a, const void *b)
{
	return strcmp(((const struct notif_label *)a)->key, ((const struct notif_label *)b)->key);
}

static void free_labels(struct notif_label *l, size_t n)
{
	for (size_t i = 0; l && i < n; i++) {
		free((void *)l[i].key);
		free((void *)l[i].value);
	}
	free(l);
}

static bool set_label(struct notif_label *l, const char *k, const char *v)
{
	l->key = kl_strndup(k, strlen(k));
	l->value = kl_strndup(v, strlen(v));
	return l->key && l->value;
}

/* alertname + the transition's labels, sorted. */
static struct notif_label *labels_of(const struct rules_transition *t, size_t *n)
{
	struct notif_label *l = calloc(t->nlabels + 1, sizeof *l);
	if (!l)
		return NULL;
	bool ok = set_label(&l[0], "alertname", t->alert);
	for (size_t i = 0; ok && i < t->nlabels; i++)
		ok = set_label(&l[i + 1], t->labels[i].key, t->labels[i].value);
	if (!ok) {
		free_labels(l, t->nlabels + 1);
		return NULL;
	}
	*n = t->nlabels + 1;
	qsort(l, *n, sizeof *l, cmp_label);
	return l;
}

/* The transition's annotations plus "value". */
static struct notif_label *annotations_of(const struct rules_transition *t, size_t *n)
{
	struct notif_label *l = calloc(t->nannotations + 1, sizeof *l);
	char v[64];
	if (!l)
		return NULL;
	if (isnan(t->value))
		snprintf(v, sizeof v, "n/a");
	else
		snprintf(v, sizeof v, "%.6g", t->value);
	bool ok = set_label(&l[0], "value", v);
	for (size_t i = 0; ok && i < t->nannotations; i++)
		ok = set_label(&l[i + 1], t->annotations[i].key, t->annotations[i].value);
	if (!ok) {
		free_labels(l, t->nannotations + 1);
		return NULL;
	}
	*n = t->nannotations + 1;
	qsort(l, *n, sizeof *l, cmp_label);
	return l;
}

static const char *label_value(const struct notif_label *l, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(l[i].key, key))
			return l[i].value;
	return NULL;
}

static bool matches(const struct sink_match *m, size_t nm, const struct notif_label *l, size_t n)
{
	for (size_t i = 0; i < nm; i++) {
		const char *v = label_value(l, n, m[i].name);
		if (!v || strcmp(v, m[i].value))
			return false;
	}
	return true;
}

/* ---- the firing set, for inhibition ------------------------------------------- */

static bool can_inhibit(const struct policy *p, const struct notif_label *l, size_t n)
{
	for (size_t i = 0; i < p->spec->ninhibits; i++)
		if (matches(p->spec->inhibits[i].source_match, p->spec->inhibits[i].nsource, l, n))
			return true;
	return false;
}

/* Track a transition; true if it may change what is inhibited. */
static bool track_firing(struct policy *p, const struct notif_label *l, size_t n, const char *fp,
			 bool firing)
{
	size_t i = 0;
	while (i < p->nfiring && strcmp(p->firing[i].fingerprint, fp))
		i++;
	bool present = i < p->nfiring;
	if (firing == present)
		return false;
	if (!firing) {
		free_labels(p->firing[i].labels, p->firing[i].nlabels);
		p->firing[i] = p->firing[--p->nfiring];
		return can_inhibit(p, l, n);
	}
	if (p->nfiring == MAX_FIRING) {
		p->firing_dropped++;
		return false;
	}
	struct firing *f = &p->firing[p->nfiring];
	f->labels = calloc(n, sizeof *f->labels);
	if (!f->labels)
		return false;
	for (size_t k = 0; k < n; k++)
		if (!set_label(&f->labels[k], l[k].key, l[k].value)) {
			free_labels(f->labels, n);
			return false;
		}
	f->nlabels = n;
	memcpy(f->fingerprint, fp, sizeof f->fingerprint);
	p->nfiring++;
	return can_inhibit(p, l, n);
}

static bool inhibited(const struct policy *p, const struct galert *a)
{
	for (size_t r = 0; r < p->spec->ninhibits; r++) {
		const struct inhibit_spec *in = &p->spec->inhibits[r];
		if (!matches(in->target_match, in->ntarget, a->labels, a->nlabels))
			continue;
		for (size_t i = 0; i < p->nfiring; i++) {
			const struct firing *f = &p->firing[i];
			if (!strcmp(f->fingerprint, a->fingerprint) ||
			    !matches(in->source_match, in->nsource, f->labels, f->nlabels))
				continue;
			bool same = true;
			for (size_t e = 0; e < in->nequal && same; e++) {
				const char *x = label_value(f->labels, f->nlabels, in->equal[e]);
				const char *y = label_value(a->labels, a->nlabels, in->equal[e]);
				same = (!x && !y) || (x && y && !strcmp(x, y));
			}
			if (same)
				return true;
		}
	}
	return false;
}

/* The end of the first active silence muting a, or 0. */
static int64_t silenced_until(const struct policy *p, const struct galert *a, int64_t now)
{
	struct sink_match m[64];
	size_t n = a->nlabels < 64 ? a->nlabels : 64;
	for (size_t i = 0; i < n; i++)
		m[i] = (struct sink_match){ a->labels[i].key, a->labels[i].value };
	for (size_t i = 0; i < p->silences.n; i++)
		if (silence_matches(&p->silences.items[i], m, n, now))
			return p->silences.items[i].ends_us;
	return 0;
}

/* ---- groups ------------------------------------------------------------------------ */

static void galert_free(struct galert *a)
{
	free_labels(a->labels, a->nlabels);
	free_labels(a->ann, a->nann);
}

static void group_free(struct group *g)
{
	ev_timer_stop(g->p->loop, &g->timer);
	ev_timer_stop(g->p->loop, &g->verify);
	if (g->lease_wait)
		g->lease_wait->g = NULL;
	if (g->verify_wait)
		g->verify_wait->g = NULL;
	for (size_t i = 0; i < g->n; i++)
		galert_free(&g->alerts[i]);
	free(g->alerts);
	free(g->key);
	free_labels(g->glabels, g->nglabels);
	free(g);
}

static void unlink_group(struct policy *p, struct group *g)
{
	for (struct group **pp = &p->groups; *pp; pp = &(*pp)->next)
		if (*pp == g) {
			*pp = g->next;
			break;
		}
	group_free(g);
}

static bool has_firing(const struct group *g)
{
	for (size_t i = 0; i < g->n; i++)
		if (g->alerts[i].firing)
			return true;
	return false;
}

static void on_group_timer(struct ev_loop *loop, ev_timer *w, int revents);
static void on_verify(struct ev_loop *loop, ev_timer *w, int revents);

/* Arm the group's one timer for its next due instant. */
static void schedule(struct group *g, int64_t now)
{
	const struct notify_spec *ns = &g->p->routes[g->route].notify;
	int64_t due = INT64_MAX;
	if (g->lease_wait) { /* the lease's answer flushes it */
		ev_timer_stop(g->p->loop, &g->timer);
		return;
	}
	if (g->dirty)
		due = g->flushed_once ? g->last_flush_us + ns->group_interval_us
				      : g->created_us + ns->group_wait_us;
	else if (g->flushed_once && has_firing(g))
		due = g->last_flush_us + ns->repeat_interval_us;
	if (g->recheck_us && g->recheck_us < due)
		due = g->recheck_us;
	if (g->p->routes[g->route].has_am && g->flushed_once && has_firing(g) &&
	    g->last_am_us + AM_REFRESH_US < due)
		due = g->last_am_us + AM_REFRESH_US;
	ev_timer_stop(g->p->loop, &g->timer);
	if (due == INT64_MAX)
		return;
	double after = due > now ? (double)(due - now) / 1e6 : 0.0;
	ev_timer_set(&g->timer, after, 0.0);
	ev_timer_start(g->p->loop, &g->timer);
}

/* Whether label key is one the route groups by ("..." groups by all). */
static bool grouped_by(const struct route_spec *rs, const char *key)
{
	if (!rs || !rs->ngroup_by)
		return !strcmp(key, "alertname");
	for (size_t i = 0; i < rs->ngroup_by; i++)
		if (!strcmp(rs->group_by[i], "...") || !strcmp(rs->group_by[i], key))
			return true;
	return false;
}

/* The group of an alert on a route: by the route's group_by labels
 * (default: alertname, one group per rule), created if new. */
static struct group *group_get(struct policy *p, size_t route, const struct notif_label *labels,
			       size_t nl, int64_t now)
{
	const struct route_spec *rs = p->routes[route].spec;
	struct kl_buf key = { 0 };
	if (kl_buf_appendf(&key, "{}/route%zu:{", route) < 0)
		return NULL;
	size_t ng = 0;
	for (size_t i = 0; i < nl; i++) {
		if (!grouped_by(rs, labels[i].key))
			continue;
		if (kl_buf_appendf(&key, "%s%s=\"%s\"", ng++ ? "," : "", labels[i].key,
				   labels[i].value) < 0)
			goto nomem;
	}
	if (kl_buf_append(&key, "}", 1) < 0)
		goto nomem;
	for (struct group *g = p->groups; g; g = g->next)
		if (g->route == route && !strcmp(g->key, key.p)) {
			kl_buf_free(&key);
			return g;
		}
	struct group *g = calloc(1, sizeof *g);
	if (!g || !(g->glabels = calloc(ng ? ng : 1, sizeof *g->glabels)))
		goto nomem_g;
	for (size_t i = 0; i < nl; i++)
		if (grouped_by(rs, labels[i].key) &&
		    !set_label(&g->glabels[g->nglabels++], labels[i].key, labels[i].value))
			goto nomem_g;
	g->p = p;
	g->route = route;
	g->key = key.p;
	g->created_us = now;
	ev_init(&g->timer, on_group_timer);
	g->timer.data = g;
	ev_init(&g->verify, on_verify);
	g->verify.data = g;
	g->next = p->groups;
	p->groups = g;
	return g;
nomem_g:
	if (g)
		free_labels(g->glabels, g->nglabels);
	free(g);
nomem:
	kl_buf_free(&key);
	return NULL;
}

static struct galert *alert_in(struct group *g, const char *fp)
{
	for (size_t i = 0; i < g->n; i++)
		if (!strcmp(g->alerts[i].fingerprint, fp))
			return &g->alerts[i];
	return NULL;
}

static void remove_alert(struct group *g, struct galert *a)
{
	galert_free(a);
	*a = g->alerts[--g->n];
}

/* Apply a transition to a group; labels/ann are copied. */
static void group_apply(struct group *g, const struct rules_transition *t,
			const struct notif_label *labels, size_t nlabels, const char *fp)
{
	const struct notify_spec *ns = &g->p->routes[g->route].notify;
	struct galert *a = alert_in(g, fp);
	bool firing = t->status == RULES_FIRING;
	if (!a) {
		if (!firing)
			return; /* resolved before it was ever part of this group */
		if (g->n == g->cap) {
			size_t nc = g->cap ? g->cap * 2 : 4;
			struct galert *na = realloc(g->alerts, nc * sizeof *na);
			if (!na)
				return;
			g->alerts = na;
			g->cap = nc;
		}
		a = &g->alerts[g->n];
		memset(a, 0, sizeof *a);
		a->labels = calloc(nlabels, sizeof *a->labels);
		if (!a->labels)
			return;
		for (size_t i = 0; i < nlabels; i++)
			if (!set_label(&a->labels[i], labels[i].key, labels[i].value)) {
				free_labels(a->labels, nlabels);
				return;
			}
		a->nlabels = nlabels;
		memcpy(a->fingerprint, fp, sizeof a->fingerprint);
		g->n++;
	}
	if (!firing && !ns->send_resolved) {
		remove_alert(g, a);
		return;
	}
	free_labels(a->ann, a->nann);
	a->nann = 0;
	a->ann = annotations_of(t, &a->nann);
	a->firing = firing;
	a->held = false;
	a->value = t->value;
	a->starts_us = t->started_us;
	a->ends_us = firing ? 0 : t->at_us;
	if (t->read_us > 0 && (!a->read_us || t->read_us < a->read_us))
		a->read_us = t->read_us;
	g->dirty = true;
}

/* ---- flushing ------------------------------------------------------------------------ */

static uint64_t mix(uint64_t h, const char *s)
{
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* Labels present in every alert with the same value (sorted, borrowed). */
static size_t common_of(const struct notif_alert *as, size_t n, bool annotations,
			struct notif_label *out, size_t cap)
{
	if (!n)
		return 0;
	const struct notif_label *first = annotations ? as[0].annotations : as[0].labels;
	size_t nf = annotations ? as[0].nannotations : as[0].nlabels, m = 0;
	for (size_t i = 0; i < nf && m < cap; i++) {
		bool all = true;
		for (size_t k = 1; k < n && all; k++) {
			const char *v = annotations
						? label_value(as[k].annotations, as[k].nannotations, first[i].key)
						: label_value(as[k].labels, as[k].nlabels, first[i].key);
			all = v && !strcmp(v, first[i].value);
		}
		if (all)
			out[m++] = first[i];
	}
	return m;
}

/* Send to the route's notifiers (only its alertmanager sinks with am_only). */
static void send_group(struct policy *p, struct group *g, struct notif_alert *as, size_t n,
		       int64_t now, bool am_only, int64_t read_us)
{
	struct notif_label common[64], common_ann[64];
	struct notification msg = {
		.read_us = read_us,
		.group_key = g->key,
		.group_labels = g->glabels,
		.ngroup_labels = g->nglabels,
		.external_url = p->spec->external_url ? p->spec->external_url : "",
		.alerts = as,
		.nalerts = n,
	};
	for (size_t i = 0; i < n; i++)
		msg.firing |= as[i].firing;
	msg.common_labels = common;
	msg.ncommon_labels = common_of(as, n, false, common, 64);
	msg.common_annotations = common_ann;
	msg.ncommon_annotations = common_of(as, n, true, common_ann, 64);
	const struct route *r = &p->routes[g->route];
	for (size_t i = 0; i < r->nnotifiers; i++) {
		bool am = notifier_is_alertmanager(r->notifiers[i]);
		if (am_only && !am)
			continue;
		msg.receiver = notifier_name(r->notifiers[i]);
		notifier_send(r->notifiers[i], &msg, now);
	}
	if (r->has_am)
		g->last_am_us = now;
}

/*
 * An alert restored from saved state was notified before the restart: its
 * group counts as flushed with it, so the next message goes out on a change
 * (group_interval) or at repeat_interval, not at once.
 */
static void mark_notified(struct policy *p, struct group *g, int64_t now)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < g->n; i++) {
		struct galert *a = &g->alerts[i];
		if (silenced_until(p, a, now) || inhibited(p, a))
			continue;
		h = mix(mix(h, a->fingerprint), a->firing ? "F" : "R");
	}
	g->last_hash = h;
	g->last_flush_us = now;
	g->last_am_us = now;
	g->flushed_once = true;
	g->dirty = false;
}

/* ---- one page, not N (shared mode) ------------------------------------------- */

enum lease_step { LEASE_SEND, LEASE_WAIT, LEASE_STAND_DOWN };

static void on_lease(void *ctx, int verdict)
{
	struct lease_wait *w = ctx;
	struct group *g = w->g;
	free(w);
	if (!g || verdict == -2)
		return;
	g->lease_wait = NULL;
	g->lease_ready = true;
	g->lease_verdict = verdict;
	/* Flush again at once, with the verdict. */
	ev_timer_stop(g->p->loop, &g->timer);
	ev_timer_set(&g->timer, 0.0, 0.0);
	ev_timer_start(g->p->loop, &g->timer);
}

/*
 * Before a group's message leaves: the replica holding the group's lease
 * sends it, the others stand down. Without Redis (down, full) every replica
 * sends: duplicates rather than silence.
 */
static enum lease_step lease_step(struct policy *p, struct group *g)
{
	if (!p->redis)
		return LEASE_SEND;
	if (g->lease_ready) {
		g->lease_ready = false;
		/* Counted by the connection (won, stood down, alone). */
		return g->lease_verdict == 0 ? LEASE_STAND_DOWN : LEASE_SEND;
	}
	if (g->lease_wait)
		return LEASE_WAIT;
	struct lease_wait *w = malloc(sizeof *w);
	if (w)
		w->g = g;
	/* Down or full: -EAGAIN, counted as sent alone. */
	if (!w || sink_redis_lease(p->redis, g->key, on_lease, w) < 0) {
		free(w);
		return LEASE_SEND;
	}
	g->lease_wait = w;
	return LEASE_WAIT;
}

static void forget_held(struct group *g)
{
	for (size_t i = 0; i < g->n;) {
		if (g->alerts[i].held)
			remove_alert(g, &g->alerts[i]);
		else
			i++;
	}
}

/* Add the held resolutions to a message about to leave (a dead holder may
 * not have told them; told twice rather than never). */
static size_t add_held(struct group *g, struct notif_alert *as, size_t n, int64_t now)
{
	for (size_t i = 0; i < g->n; i++) {
		struct galert *a = &g->alerts[i];
		if (!a->held || silenced_until(g->p, a, now) || inhibited(g->p, a))
			continue;
		as[n++] = (struct notif_alert){ false, a->labels, a->nlabels, a->ann, a->nann,
						a->starts_us, a->ends_us, a->value, { 0 } };
		memcpy(as[n - 1].fingerprint, a->fingerprint, sizeof a->fingerprint);
	}
	return n;
}

/* Send the group's message again as if it had changed (the lease decides). */
static void resend(struct group *g)
{
	g->last_hash = 0;
	g->dirty = true;
	schedule(g, kl_wall_us());
}

static void on_sent_mark(void *ctx, int status, uint64_t hash)
{
	struct lease_wait *w = ctx;
	struct group *g = w->g;
	free(w);
	if (!g || status == -2)
		return;
	g->verify_wait = NULL;
	if (status == 1 && hash == g->verify_hash) {
		forget_held(g); /* the holder told them */
		if (!g->n)
			unlink_group(g->p, g);
		return;
	}
	if (g->last_hash != g->verify_hash)
		return; /* overtaken by a newer message of ours: its own check decides */
	kl_log(KL_LOG_WARN, "notify: group %s: the replica holding its lease did not send its "
			    "message; sending it from here",
	       g->key);
	resend(g);
}

static void on_verify(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct group *g = t->data;
	struct policy *p = g->p;
	if (g->verify_wait || g->last_hash != g->verify_hash)
		return;
	struct lease_wait *w = malloc(sizeof *w);
	if (w)
		w->g = g;
	if (!w || sink_redis_sent(p->redis, g->key, on_sent_mark, w) < 0) {
		free(w);
		resend(g); /* Redis away: duplicates rather than silence */
		return;
	}
	g->verify_wait = w;
}

/* After standing down for hash h: verify once the holder's lease is over. */
static void arm_verify(struct policy *p, struct group *g, uint64_t h)
{
	g->verify_hash = h;
	ev_timer_stop(p->loop, &g->verify);
	ev_timer_set(&g->verify, (double)sink_redis_lease_ms(p->redis) / 1000.0 + 1.0, 0.0);
	ev_timer_start(p->loop, &g->verify);
}

void policy_set_redis(struct policy *p, struct sink_redis *r)
{
	p->redis = r;
}

static void flush(struct policy *p, struct group *g, int64_t now)
{
	const struct route *rt = &p->routes[g->route];
	bool repeat = !g->dirty;
	/* Woken before the route's repeat with nothing marked new: a silence
	 * ended, or only Alertmanager's refresh is due. */
	bool early = repeat && g->flushed_once &&
		     now < g->last_flush_us + rt->notify.repeat_interval_us;
	struct notif_alert *as = calloc(g->n ? g->n : 1, sizeof *as);
	size_t n = 0;
	uint64_t h = 0xcbf29ce484222325ULL, silenced = 0, muted = 0;
	int64_t read_us = 0; /* the earliest line behind what this message tells */
	if (!as)
		return;
	g->recheck_us = 0;
	bool stood_down = false;
	for (size_t i = 0; i < g->n; i++) {
		struct galert *a = &g->alerts[i];
		if (a->held)
			continue; /* not ours to tell unless the holder did not */
		int64_t until = silenced_until(p, a, now);
		if (until) {
			silenced++;
			if (a->firing && (!g->recheck_us || until < g->recheck_us))
				g->recheck_us = until;
			continue;
		}
		if (inhibited(p, a)) {
			muted++;
			continue;
		}
		as[n++] = (struct notif_alert){ a->firing, a->labels, a->nlabels, a->ann, a->nann,
						a->starts_us, a->ends_us, a->value, { 0 } };
		memcpy(as[n - 1].fingerprint, a->fingerprint, sizeof a->fingerprint);
		if (a->read_us && (!read_us || a->read_us < read_us))
			read_us = a->read_us;
		h = mix(mix(h, a->fingerprint), a->firing ? "F" : "R");
	}
	bool changed = h != g->last_hash;
	bool am_only = early && !changed;
	if (n && am_only && rt->has_am) {
		send_group(p, g, as, n, now, true, 0);
	} else if (n && !am_only && (changed || repeat)) {
		enum lease_step step = lease_step(p, g);
		if (step == LEASE_WAIT) { /* flushed again when the answer comes */
			free(as);
			return;
		}
		if (step == LEASE_SEND) {
			send_group(p, g, as, add_held(g, as, n, now), now, false, read_us);
			forget_held(g);
		}
		if (step == LEASE_SEND && p->redis)
			sink_redis_mark_sent(p->redis, g->key, h);
		else if (step == LEASE_STAND_DOWN)
			arm_verify(p, g, h);
		stood_down = step == LEASE_STAND_DOWN;
		g->last_hash = h;
		g->last_flush_us = now;
		g->flushed_once = true;
	} else if (!g->flushed_once) {
		g->last_flush_us = now;
		g->flushed_once = true;
	} else if (repeat && !early) {
		g->last_flush_us = now; /* nothing to repeat now: try again a period later */
	}
	for (size_t i = 0; i < rt->nnotifiers; i++)
		notifier_count(rt->notifiers[i], silenced, muted);
	free(as);
	g->dirty = false;
	for (size_t i = 0; i < g->n; i++)
		g->alerts[i].read_us = 0; /* told, muted, or nothing new: paged or never */
	/* Resolved alerts were told (or muted): forget them — or, told by the
	 * lease holder we stood down for, hold them until we know it did. */
	for (size_t i = 0; i < g->n;) {
		struct galert *a = &g->alerts[i];
		if (!a->firing && stood_down && !a->held) {
			a->held = true;
			i++;
		} else if (!a->firing && !a->held) {
			remove_alert(g, a);
		} else {
			i++;
		}
	}
}

static void on_group_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct group *g = w->data;
	struct policy *p = g->p;
	int64_t now = kl_wall_us();
	flush(p, g, now);
	if (!g->n) {
		unlink_group(p, g);
		return;
	}
	schedule(g, now);
}

/* Every group with alerts flushes again at its next group_interval. */
static void touch_all(struct policy *p, int64_t now)
{
	for (struct group *g = p->groups; g; g = g->next)
		if (g->n) {
			g->dirty = true;
			schedule(g, now);
		}
}

/* ---- routing ----------------------------------------------------------------------- */

void policy_alert(struct policy *p, const struct rules_transition *t)
{
	size_t nl = 0;
	struct notif_label *labels = labels_of(t, &nl);
	char fp[17];
	int64_t now = kl_wall_us();
	if (!labels) {
		kl_log(KL_LOG_ERROR, "notify: out of memory; the transition of '%s' is not notified", t->alert);
		return;
	}
	format_fingerprint(labels, nl, fp);
	bool retouch = track_firing(p, labels, nl, fp, t->status == RULES_FIRING);
	for (size_t r = 0; r < p->nroutes; r++) {
		const struct route_spec *rs = p->routes[r].spec;
		if (rs && !matches(rs->match, rs->nmatch, labels, nl))
			continue;
		struct group *g = group_get(p, r, labels, nl, now);
		if (g) {
			group_apply(g, t, labels, nl, fp);
			if (t->restored) /* announced at start, before anything new */
				mark_notified(p, g, now);
			if (!g->n)
				unlink_group(p, g);
			else
				schedule(g, now);
		}
		if (!rs || !rs->cont)
			break;
	}
	free_labels(labels, nl);
	if (retouch)
		touch_all(p, now);
}

/* ---- silences ------------------------------------------------------------------------ */

static void reload_silences(struct policy *p)
{
	struct silences fresh;
	if (silences_load(p->spec->state_dir, &fresh) < 0)
		return; /* logged; the silences in force stay */
	silences_free(&p->silences);
	p->silences = fresh;
	kl_log(KL_LOG_INFO, "notify: %zu silence(s) loaded", fresh.n);
	touch_all(p, kl_wall_us());
}

static void on_silences_changed(struct ev_loop *loop, ev_stat *w, int revents)
{
	reload_silences(w->data);
}

/* ---- life -------------------------------------------------------------------------- */

static int setup_routes(struct policy *p, struct notifier **nts, size_t nnt)
{
	const struct sinks_spec *sp = p->spec;
	p->nroutes = sp->nroutes ? sp->nroutes : 1;
	p->routes = calloc(p->nroutes, sizeof *p->routes);
	if (!p->routes)
		return -ENOMEM;
	for (size_t r = 0; r < p->nroutes; r++) {
		struct route *rt = &p->routes[r];
		rt->spec = sp->nroutes ? &sp->routes[r] : NULL;
		rt->notify = rt->spec ? rt->spec->notify : sp->notify;
		rt->notifiers = calloc(nnt ? nnt : 1, sizeof *rt->notifiers);
		if (!rt->notifiers)
			return -ENOMEM;
		for (size_t i = 0; i < nnt; i++) {
			bool wanted = !rt->spec;
			for (size_t k = 0; rt->spec && k < rt->spec->nsinks; k++)
				wanted |= !strcmp(rt->spec->sinks[k], notifier_name(nts[i]));
			if (!wanted)
				continue;
			rt->notifiers[rt->nnotifiers++] = nts[i];
			rt->has_am |= notifier_is_alertmanager(nts[i]);
		}
	}
	return 0;
}

struct policy *policy_new(struct ev_loop *loop, const struct sinks_spec *spec,
			  struct notifier **notifiers, size_t nnotifiers, int *err)
{
	struct policy *p = calloc(1, sizeof *p);
	*err = -ENOMEM;
	if (!p)
		return NULL;
	p->loop = loop;
	p->spec = spec;
	p->firing = calloc(MAX_FIRING, sizeof *p->firing);
	struct kl_buf path = { 0 };
	if (!p->firing || setup_routes(p, notifiers, nnotifiers) < 0 ||
	    kl_buf_appendf(&path, "%s/silences.json", spec->state_dir) < 0) {
		kl_buf_free(&path);
		policy_free(p);
		return NULL;
	}
	p->silences_path = path.p;
	silences_load(spec->state_dir, &p->silences);
	/* ev_stat uses inotify where it can and polls every second otherwise:
	 * `klaxon silence add` takes effect without a restart. */
	ev_stat_init(&p->silences_watch, on_silences_changed, p->silences_path, 1.0);
	p->silences_watch.data = p;
	ev_stat_start(loop, &p->silences_watch);
	*err = 0;
	return p;
}

void policy_free(struct policy *p)
{
	if (!p)
		return;
	if (p->silences_path)
		ev_stat_stop(p->loop, &p->silences_watch);
	while (p->groups) {
		struct group *g = p->groups;
		p->groups = g->next;
		group_free(g);
	}
	for (size_t i = 0; i < p->nfiring; i++)
		free_labels(p->firing[i].labels, p->firing[i].nlabels);
	free(p->firing);
	for (size_t r = 0; p->routes && r < p->nroutes; r++)
		free(p->routes[r].notifiers);
	free(p->routes);
	silences_free(&p->silences);
	free(p->silences_path);
	kl_buf_free(&p->scratch);
	free(p);
}
