/*
 * probe_pg.c — the postgres probe: libpq in non-blocking mode on the loop.
 *
 * Each check connects (PQconnectStartParams, then PQconnectPoll whenever
 * libpq's socket is ready the way it asked: the socket may change between
 * polls, when libpq tries the next address), sends one fixed, read-only
 * query (PQsendQuery; PQflush until it is out), reads the answer as it comes
 * (PQconsumeInput, PQisBusy, PQgetResult), and closes. A fresh connection per
 * check is what an application's new connection meets: when every slot is
 * taken, the check fails with the server's "too many clients" (up = 0), which
 * is the database connection trouble the guide asks about. That failure still
 * says how many connections there are, and the result says it too: every
 * slot when the server has none left ("too many clients already"), every slot
 * but the reserved ones when only those are left ("remaining connection slots
 * are reserved"), from the last good check's settings. Without that a rule
 * on connections / max_connections would lose its value exactly when the
 * pool is full.
 *
 * A host name in the connection string is looked up off the loop first
 * (probe_net.c) and handed to libpq as hostaddr, because PQconnectStart's own
 * lookup blocks; a connection string with several hosts, a socket directory
 * or a hostaddr of its own goes to libpq as written.
 *
 * The role needs pg_monitor (or to be a superuser) to see other roles'
 * queries in pg_stat_activity; without it their state is hidden and only the
 * counts of connections are right.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <netdb.h>

#include <libpq-fe.h>

#include "ingest/ingest_int.h"

/* One row, read-only, on the catalog views only. */
static const char probe_sql[] =
	"SELECT "
	"(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),"
	" current_setting('max_connections')::int,"
	" COALESCE((SELECT EXTRACT(EPOCH FROM max(now() - query_start)) FROM pg_stat_activity"
	"  WHERE state = 'active' AND backend_type = 'client backend' AND pid <> pg_backend_pid()), 0),"
	" (SELECT count(*) FROM pg_stat_activity WHERE state = 'active'"
	"  AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
	"  AND now() - query_start > interval '1 minute'),"
	" (SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'),"
	" current_setting('superuser_reserved_connections')::int"
	"  + COALESCE(current_setting('reserved_connections', true)::int, 0)"; /* 16+ */

#define MAX_PARAMS 64

enum phase { PH_IDLE, PH_LOOKUP, PH_CONNECT, PH_QUERY };

struct pgprobe {
	PGconn *conn;
	ev_io io;
	enum phase phase;
	struct kl_lookup *lookup;
	const char *kw[MAX_PARAMS + 3];
	const char *val[MAX_PARAMS + 3];
	size_t n;		 /* parameters from the connection string */
	int hostaddr_slot;	 /* index of the hostaddr we add, or -1 */
	char host[256];		 /* to look up, or "" */
	char addr[64];
	PQconninfoOption *opts;
	bool got_row;
	/* From the last good check: what a refused connection implies. */
	double max_conn, reserved;
	bool known;
};

static void watch(struct ingest_probe *p, int events)
{
	struct pgprobe *g = p->impl;
	int fd = PQsocket(g->conn);
	ev_io_stop(p->loop, &g->io);
	if (fd < 0)
		return;
	ev_io_set(&g->io, fd, events);
	ev_io_start(p->loop, &g->io);
}

static void pg_close(struct ingest_probe *p)
{
	struct pgprobe *g = p->impl;
	kl_lookup_cancel(g->lookup);
	g->lookup = NULL;
	ev_io_stop(p->loop, &g->io);
	if (g->conn)
		PQfinish(g->conn);
	g->conn = NULL;
	g->phase = PH_IDLE;
}

/* A connection refused for want of a slot: how many are in use then. */
static void note_slots_taken(struct ingest_probe *p, const char *msg)
{
	struct pgprobe *g = p->impl;
	double in_use;
	if (!g->known)
		return;
	if (strstr(msg, "too many clients already"))
		in_use = g->max_conn;
	else if (strstr(msg, "remaining connection slots are reserved"))
		in_use = g->max_conn - g->reserved;
	else
		return;
	probe_set(p, PF_PG_CONNECTIONS, in_use);
	probe_set(p, PF_PG_MAX_CONNECTIONS, g->max_conn);
}

/* libpq's messages end with a newline and may hold several lines. */
static void fail_conn(struct ingest_probe *p, const char *what)
{
	struct pgprobe *g = p->impl;
	char msg[PROBE_ERR_MAX];
	snprintf(msg, sizeof msg, "%s", g->conn ? PQerrorMessage(g->conn) : "out of memory");
	pg_close(p);
	note_slots_taken(p, msg);
	probe_fail(p, "%s%s", what, msg);
}

static bool number(PGresult *r, int col, double *out)
{
	if (PQgetisnull(r, 0, col))
		return false;
	const char *s = PQgetvalue(r, 0, col);
	return kl_parse_double(s, strlen(s), out) == 0;
}

static void take_result(struct ingest_probe *p, PGresult *r)
{
	struct pgprobe *g = p->impl;
	static const unsigned idx[] = { PF_PG_CONNECTIONS, PF_PG_MAX_CONNECTIONS, PF_PG_LONGEST,
					PF_PG_OVER_1M, PF_PG_WAITING };
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 || PQnfields(r) != 6) {
		if (!p->v[PF_ERROR].set)
			probe_set_str(p, PF_ERROR, PQresultStatus(r) == PGRES_TUPLES_OK
							   ? "unexpected answer to the probe's query"
							   : PQresultErrorMessage(r));
		return;
	}
	for (int c = 0; c < 5; c++) {
		double v;
		if (number(r, c, &v))
			probe_set(p, idx[c], v);
	}
	g->known = number(r, 1, &g->max_conn) && number(r, 5, &g->reserved);
	g->got_row = true;
}

static void query_io(struct ingest_probe *p, int revents)
{
	struct pgprobe *g = p->impl;
	if (revents & EV_WRITE) {
		int f = PQflush(g->conn);
		if (f < 0) {
			fail_conn(p, "");
			return;
		}
		watch(p, f ? EV_READ | EV_WRITE : EV_READ);
	}
	if (!(revents & EV_READ))
		return;
	if (!PQconsumeInput(g->conn)) {
		fail_conn(p, "");
		return;
	}
	while (!PQisBusy(g->conn)) {
		PGresult *r = PQgetResult(g->conn);
		if (!r) {
			double secs = probe_elapsed(p);
			bool ok = g->got_row;
			pg_close(p);
			probe_set(p, PF_PG_LATENCY, secs);
			if (ok) {
				probe_done(p);
			} else {
				char msg[PROBE_ERR_MAX];
				snprintf(msg, sizeof msg, "%s",
					 p->v[PF_ERROR].set ? p->v[PF_ERROR].str : "no answer");
				probe_fail(p, "%s", msg);
			}
			return;
		}
		take_result(p, r);
		PQclear(r);
	}
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ingest_probe *p = w->data;
	struct pgprobe *g = p->impl;
	if (g->phase == PH_QUERY) {
		query_io(p, revents);
		return;
	}
	switch (PQconnectPoll(g->conn)) {
	case PGRES_POLLING_READING:
		watch(p, EV_READ);
		break;
	case PGRES_POLLING_WRITING:
		watch(p, EV_WRITE);
		break;
	case PGRES_POLLING_OK:
		if (PQsetnonblocking(g->conn, 1) != 0 || !PQsendQuery(g->conn, probe_sql)) {
			fail_conn(p, "");
			return;
		}
		g->phase = PH_QUERY;
		g->got_row = false;
		watch(p, EV_READ | EV_WRITE);
		break;
	default:
		fail_conn(p, "");
		break;
	}
}

static void connect_now(struct ingest_probe *p)
{
	struct pgprobe *g = p->impl;
	size_t n = g->n;
	if (g->addr[0]) {
		g->kw[n] = "hostaddr";
		g->val[n] = g->addr;
		n++;
	}
	g->kw[n] = NULL;
	g->val[n] = NULL;
	g->conn = PQconnectStartParams(g->kw, g->val, 0);
	if (!g->conn || PQstatus(g->conn) == CONNECTION_BAD) {
		fail_conn(p, "");
		return;
	}
	g->phase = PH_CONNECT;
	watch(p, EV_WRITE);
	if (PQsocket(g->conn) < 0)
		fail_conn(p, "");
}

static void on_looked_up(void *ctx, int err, const struct sockaddr_storage *a, socklen_t len)
{
	struct ingest_probe *p = ctx;
	struct pgprobe *g = p->impl;
	g->lookup = NULL;
	if (err) {
		g->phase = PH_IDLE;
		probe_fail(p, "cannot resolve '%s': %s", g->host, gai_strerror(err));
		return;
	}
	if (kl_addr_text(a, g->addr, sizeof g->addr) < 0) {
		g->phase = PH_IDLE;
		probe_fail(p, "cannot use the address of '%s'", g->host);
		return;
	}
	connect_now(p);
}

static int pg_init(struct ingest_probe *p)
{
	struct pgprobe *g = calloc(1, sizeof *g);
	char *errmsg = NULL;
	if (!g)
		return -ENOMEM;
	ev_init(&g->io, on_io);
	g->io.data = p;
	p->impl = g;
	g->opts = PQconninfoParse(p->target, &errmsg);
	if (!g->opts) {
		/* the message may quote the string, which may hold a password */
		PQfreemem(errmsg);
		return -EINVAL;
	}
	const char *host = NULL;
	bool hostaddr = false;
	for (PQconninfoOption *o = g->opts; o->keyword; o++) {
		if (!o->val)
			continue;
		if (g->n == MAX_PARAMS)
			return -EINVAL;
		if (!strcmp(o->keyword, "host"))
			host = o->val;
		if (!strcmp(o->keyword, "hostaddr"))
			hostaddr = true;
		g->kw[g->n] = o->keyword;
		g->val[g->n] = o->val;
		g->n++;
	}
	g->kw[g->n] = "fallback_application_name";
	g->val[g->n] = "klaxon-probe";
	g->n++;
	if (host && !hostaddr && host[0] && host[0] != '/' && host[0] != '@' && !strchr(host, ',') &&
	    strlen(host) < sizeof g->host)
		memcpy(g->host, host, strlen(host) + 1);
	return 0;
}

static void pg_start(struct ingest_probe *p)
{
	struct pgprobe *g = p->impl;
	g->addr[0] = '\0';
	if (!g->host[0]) {
		connect_now(p);
		return;
	}
	struct sockaddr_storage a;
	socklen_t len;
	g->phase = PH_LOOKUP;
	int rc = kl_lookup_start(p->loop, g->host, 5432, on_looked_up, p, &g->lookup, &a, &len);
	if (rc < 0) {
		g->phase = PH_IDLE;
		probe_fail(p, "cannot resolve '%s': %s", g->host, strerror(-rc));
	} else if (rc == 1) {
		on_looked_up(p, 0, &a, len);
	}
}

static void pg_destroy(struct ingest_probe *p)
{
	struct pgprobe *g = p->impl;
	if (!g)
		return;
	pg_close(p);
	if (g->opts)
		PQconninfoFree(g->opts);
	free(g);
	p->impl = NULL;
}

const struct probe_ops probe_pg_ops = { pg_init, pg_start, pg_close, pg_destroy };
