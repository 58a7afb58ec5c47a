/*
 * shared.c — windows shared across replicas through a store (Redis).
 *
 * Design: every replica publishes, for each shared rule and group, a
 * snapshot of each bucket it wrote since its last sync, under its own field
 * ("REPLICA|GROUP") of the bucket's hash ("klaxon:w:ALERT/SOURCE:BUCKET").
 * Each replica reads the hashes of the window back, and keeps the sum of the
 * other replicas' snapshots per group in a second ring (group.remote) that
 * window_events and window_agg fold in with the local one. A snapshot
 * replaces the previous one of the same field, so a retry or a repeat counts
 * nothing twice (HINCRBY would, and could not carry sketches or hlls); the
 * merge of sketches is exact, of hlls a union, so a p95 or a distinct() over
 * three replicas is the one a single process would have computed.
 *
 * Invariants:
 *  - Nothing here waits: put and get are the store's, and return at once.
 *  - Only buckets that may still change are read again: the current one and
 *    those within REREAD_US behind it (another replica publishes within a
 *    sync of writing). Older ones are read once and kept (final_upto) —
 *    except in the first REREAD_US after a (re)connect, when the others are
 *    publishing their whole windows again, and once every FULL_REREAD_US (a
 *    replica that joined late published old buckets the others had cached).
 *  - Losing the store drops the remote rings: the rules are judged on local
 *    windows alone until the store is back, and then every live bucket is
 *    published again (a restarted Redis has none of them).
 *  - Our own field is never merged: the local ring already holds it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rules/rules_int.h"

/* How far behind now a bucket may still be written by another replica: its
 * sync period (the eval tick, ~1 s) and some clock skew. */
#define REREAD_US (3 * 1000000LL)
/* Keys live a window and this much more: a replica that stops publishing
 * leaves nothing behind after that. */
#define TTL_MARGIN_MS 60000
/* Completed buckets are read again this often: a replica that joins, or
 * reconnects, publishes old buckets again, after the others cached them. */
#define FULL_REREAD_US (30 * 1000000LL)

struct shared_rule {
	char *prefix;	    /* "klaxon:w:ALERT/SOURCE:" */
	size_t plen;
	int64_t final_upto; /* newest bucket read for good, or INT64_MIN */
	int64_t full_us;    /* when the whole window was last read, or INT64_MIN */
	int64_t grace_until_us; /* after a (re)connect: nothing is final before */
};

struct shared_set {
	struct rules_store store;
	char *replica;
	size_t rlen;
	struct kl_buf key, field, val; /* scratch, reused */
	struct rules_shared_stats st;
};

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static void rule_unshare(struct rule *r)
{
	if (!r->sh)
		return;
	free(r->sh->prefix);
	free(r->sh);
	r->sh = NULL;
	for (size_t i = 0; i < r->ngroups; i++) {
		struct group *g = &r->groups[i];
		g->w.remote = NULL;
		if (g->remote) {
			window_free(g->remote, &r->shape);
			free(g->remote);
			g->remote = NULL;
		}
	}
}

void shared_free(struct rules_set *rs)
{
	if (!rs->shared)
		return;
	for (size_t i = 0; i < rs->n; i++)
		rule_unshare(&rs->rules[i]);
	kl_buf_free(&rs->shared->key);
	kl_buf_free(&rs->shared->field);
	kl_buf_free(&rs->shared->val);
	free(rs->shared->replica);
	free(rs->shared);
	rs->shared = NULL;
}

/* Publish every bucket of the ring again at the next sync. */
static void republish(struct rule *r)
{
	for (size_t i = 0; i < r->ngroups; i++) {
		struct group *g = &r->groups[i];
		g->pub_hot = INT64_MAX;
		if (g->w.newest == INT64_MIN)
			continue;
		g->pub_lo = (g->w.newest - (int64_t)r->shape.nb + 1) * r->shape.width_us;
		g->pub_hi = g->w.newest * r->shape.width_us;
	}
}

int rules_share(struct rules_set *rs, const struct rules_store *store, const char *replica,
		bool share_all)
{
	shared_free(rs);
	struct shared_set *ss = calloc(1, sizeof *ss);
	if (!ss || !(ss->replica = kl_strndup(replica, strlen(replica)))) {
		free(ss);
		return -ENOMEM;
	}
	ss->rlen = strlen(replica);
	ss->store = *store;
	rs->shared = ss;
	for (size_t i = 0; i < rs->n; i++) {
		struct rule *r = &rs->rules[i];
		if (!share_all && !r->shared)
			continue;
		struct kl_buf p = { 0 };
		r->sh = calloc(1, sizeof *r->sh);
		if (!r->sh || kl_buf_appendf(&p, "klaxon:w:%s/%s:", r->alert,
					     rs->sources[r->source].name) < 0) {
			kl_buf_free(&p);
			free(r->sh);
			r->sh = NULL;
			shared_free(rs);
			return -ENOMEM;
		}
		r->sh->prefix = p.p;
		r->sh->plen = p.len;
		r->sh->final_upto = INT64_MIN;
		r->sh->full_us = INT64_MIN;
		republish(r); /* restored state, or a reload: the store may not have it */
		ss->st.rules++;
	}
	return 0;
}

/* "REPLICA|" then each by-value as a varint length and its bytes. */
static int field_of(struct shared_set *ss, const struct rule *r, const struct group *g)
{
	kl_buf_reset(&ss->field);
	int rc = kl_buf_append(&ss->field, ss->replica, ss->rlen);
	if (rc == 0)
		rc = kl_buf_append(&ss->field, "|", 1);
	for (size_t i = 0; i < r->nby && rc == 0; i++)
		rc = kl_buf_put_bytes(&ss->field, g->vals[i].p, g->vals[i].len);
	return rc;
}

static int key_of(struct shared_set *ss, const struct rule *r, int64_t bucket)
{
	kl_buf_reset(&ss->key);
	return kl_buf_appendf(&ss->key, "%s%lld", r->sh->prefix, (long long)bucket);
}

/* Put the buckets g wrote since the last sync (at most a ring of them). */
static void publish_group(struct shared_set *ss, struct rule *r, struct group *g, int64_t cur,
			  int64_t ttl_ms)
{
	const struct window_shape *s = &r->shape;
	if (g->pub_lo > g->pub_hi)
		return;
	int64_t hi = floor_div(g->pub_hi, s->width_us);
	int64_t lo = floor_div(g->pub_lo, s->width_us);
	if (lo < hi - (int64_t)s->nb + 1)
		lo = hi - (int64_t)s->nb + 1;
	if (lo < cur - (int64_t)s->nb)
		lo = cur - (int64_t)s->nb; /* gone from every ring: nobody reads it */
	g->pub_lo = INT64_MAX;
	g->pub_hi = INT64_MIN;
	g->pub_hot = INT64_MAX; /* the next event in the same bucket marks it again */
	if (field_of(ss, r, g) < 0)
		return;
	for (int64_t b = lo; b <= hi; b++) {
		kl_buf_reset(&ss->val);
		if (window_bucket_encode(&g->w, s, b, &ss->val) < 0 || key_of(ss, r, b) < 0)
			continue;
		ss->store.put(ss->store.ctx, ss->key.p, ss->field.p, ss->field.len, ss->val.p,
			      ss->val.len, ttl_ms);
		ss->st.puts++;
	}
}

/* Ask for the buckets of the window that are not cached for good. */
static void fetch_rule(struct shared_set *ss, struct rule *r, size_t idx, int64_t now,
		       int64_t cur)
{
	const struct window_shape *s = &r->shape;
	/* The first reads after a (re)connect are none of them final: the
	 * other replicas publish their whole windows again within a sync. */
	if (r->sh->full_us == INT64_MIN) {
		r->sh->grace_until_us = now + REREAD_US;
		r->sh->full_us = now;
		r->sh->final_upto = INT64_MIN;
	} else if (now - r->sh->full_us >= FULL_REREAD_US) {
		r->sh->full_us = now; /* one whole read, then cached again */
		r->sh->final_upto = INT64_MIN;
	}
	bool settled = now >= r->sh->grace_until_us;
	int64_t depth = 1 + (REREAD_US + s->width_us - 1) / s->width_us;
	int64_t from = cur - (int64_t)s->nwin + 1;
	if (r->sh->final_upto != INT64_MIN && r->sh->final_upto + 1 > from)
		from = r->sh->final_upto + 1;
	for (int64_t b = from; b <= cur; b++) {
		if (key_of(ss, r, b) < 0)
			return;
		ss->store.get(ss->store.ctx, ss->key.p, (uint64_t)idx);
		ss->st.gets++;
		/* Read now, and nobody writes it any more: the answer is final
		 * (if it never comes, the store was lost and this is reset). */
		if (settled && b <= cur - depth)
			r->sh->final_upto = b;
	}
}

void rules_shared_sync(struct rules_set *rs, int64_t now)
{
	struct shared_set *ss = rs->shared;
	if (!ss)
		return;
	for (size_t i = 0; i < rs->n; i++) {
		struct rule *r = &rs->rules[i];
		if (!r->sh)
			continue;
		int64_t cur = floor_div(now, r->shape.width_us);
		int64_t ttl_ms = (int64_t)r->shape.nb * r->shape.width_us / 1000 + TTL_MARGIN_MS;
		for (size_t k = 0; k < r->ngroups; k++)
			publish_group(ss, r, &r->groups[k], cur, ttl_ms);
		fetch_rule(ss, r, i, now, cur);
	}
}

/* The group a field names, with its remote ring; NULL for our own field, a
 * malformed one (counted) or past the group cap. */
static struct group *field_group(struct rules_set *rs, struct rule *r,
				 const struct rules_field *f)
{
	struct shared_set *ss = rs->shared;
	const char *bar = memchr(f->name, '|', f->nlen);
	if (!bar)
		goto refused;
	if ((size_t)(bar - f->name) == ss->rlen && !memcmp(f->name, ss->replica, ss->rlen))
		return NULL;
	struct kl_rd rd = kl_rd_of(bar + 1, f->nlen - (size_t)(bar + 1 - f->name));
	struct kl_str vals[MAX_BY];
	for (size_t i = 0; i < r->nby; i++)
		vals[i] = kl_rd_bytes(&rd, 65536);
	if (rd.bad || !kl_rd_done(&rd))
		goto refused;
	struct group *g = group_of_values(rs, r, vals);
	if (!g)
		return NULL;
	if (!g->remote) {
		g->remote = malloc(sizeof *g->remote);
		if (!g->remote || window_init(g->remote, &r->shape) < 0) {
			free(g->remote);
			g->remote = NULL;
			return NULL;
		}
	}
	return g;
refused:
	ss->st.refused++;
	return NULL;
}

void rules_shared_answer(struct rules_set *rs, uint64_t tag, const char *key,
			 const struct rules_field *fields, size_t n)
{
	struct shared_set *ss = rs->shared;
	if (!ss || tag >= rs->n)
		return;
	struct rule *r = &rs->rules[tag];
	/* A reload may have renumbered the rules since the get: the key says
	 * which rule it was for. */
	if (!r->sh || strncmp(key, r->sh->prefix, r->sh->plen))
		return;
	int64_t b;
	const char *num = key + r->sh->plen;
	if (kl_parse_i64(num, strlen(num), &b) < 0)
		return;
	if (b <= floor_div(rs->last_now_us, r->shape.width_us) - (int64_t)r->shape.nb)
		return; /* out of every ring by now */
	/* The answer is the whole bucket: what it held before goes. */
	for (size_t k = 0; k < r->ngroups; k++)
		if (r->groups[k].remote)
			window_bucket_clear(r->groups[k].remote, &r->shape, b);
	for (size_t i = 0; i < n; i++) {
		struct group *g = field_group(rs, r, &fields[i]);
		if (!g)
			continue;
		size_t slot = (size_t)(((b % (int64_t)r->shape.nb) + r->shape.nb) % r->shape.nb);
		if (g->remote->epoch[slot] != b && window_bucket_clear(g->remote, &r->shape, b) < 0)
			continue;
		if (window_bucket_merge(g->remote, &r->shape, b, fields[i].val, fields[i].vlen) < 0) {
			ss->st.refused++;
			continue;
		}
		g->w.remote = g->remote;
		ss->st.fields++;
	}
	r->dirty = true;
}

void rules_shared_lost(struct rules_set *rs)
{
	if (!rs->shared)
		return;
	for (size_t i = 0; i < rs->n; i++) {
		struct rule *r = &rs->rules[i];
		if (!r->sh)
			continue;
		r->sh->final_upto = INT64_MIN;
		r->sh->full_us = INT64_MIN;
		for (size_t k = 0; k < r->ngroups; k++) {
			struct group *g = &r->groups[k];
			g->w.remote = NULL;
			if (g->remote) {
				window_free(g->remote, &r->shape);
				free(g->remote);
				g->remote = NULL;
			}
		}
		republish(r);
		r->dirty = true;
	}
}

void rules_shared_get_stats(const struct rules_set *rs, struct rules_shared_stats *out)
{
	if (rs->shared)
		*out = rs->shared->st;
	else
		memset(out, 0, sizeof *out);
}
