/*
 * ingest_int.h — shared inside ingest/ only (and by its unit tests): the
 * probe object every kind's file fills in, and the pure pieces of the checks
 * (text parsers, arithmetic, the sliced gzip check) kept apart from the I/O
 * so that tests feed them fixture text.
 */
#ifndef INGEST_INT_H
#define INGEST_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/statvfs.h>

#include <ev.h>

#include "common/kl_lookup.h"
#include "ingest/ingest.h"

#define PROBE_ERR_MAX 256

struct ingest_probe;

/* What a kind does. start begins a check (the deadline is armed already) and
 * returns 0, or -errno after calling probe_fail itself. cancel abandons the
 * check in flight without reporting (timeout, free). destroy frees impl. */
struct probe_ops {
	int (*init)(struct ingest_probe *p);
	void (*start)(struct ingest_probe *p);
	void (*cancel)(struct ingest_probe *p);
	void (*destroy)(struct ingest_probe *p);
};

struct ingest_probe {
	struct ev_loop *loop;
	enum ingest_probe_kind kind;
	char *name;
	char *target;
	char *ca_file;
	char *root;
	bool tls_insecure;
	int64_t interval_us, timeout_us;
	ingest_probe_fn fn;
	void *ctx;
	ev_timer every;	   /* the interval */
	ev_timer deadline; /* the check in flight times out */
	bool running;	   /* a check is in flight */
	bool due;	   /* the interval came while it was */
	int64_t started_us; /* monotonic, of the check in flight */
	const struct probe_ops *ops;
	void *impl;
	size_t nfields;
	struct ingest_probe_value v[INGEST_PROBE_MAX_FIELDS];
	char str[INGEST_PROBE_MAX_FIELDS][PROBE_ERR_MAX]; /* string values */
	struct ingest_probe_stats stats;
};

/* Field indexes of each kind, in the order of probe.c's tables (which
 * ingest_probe_fields hands out): up and error first everywhere. */
#define PF_UP 0
#define PF_ERROR 1
enum { PF_HTTP_STATUS = 2, PF_HTTP_LATENCY, PF_HTTP_CERT_DAYS, PF_HTTP_N };
enum { PF_TCP_LATENCY = 2, PF_TCP_N };
enum { PF_DISK_FREE_PCT = 2, PF_DISK_FREE_BYTES, PF_DISK_TOTAL_BYTES, PF_DISK_INODES_FREE_PCT,
       PF_DISK_N };
enum { PF_PG_LATENCY = 2, PF_PG_CONNECTIONS, PF_PG_MAX_CONNECTIONS, PF_PG_LONGEST,
       PF_PG_OVER_1M, PF_PG_WAITING, PF_PG_N };
enum { PF_REDIS_LATENCY = 2, PF_REDIS_USED_MEMORY, PF_REDIS_CLIENTS, PF_REDIS_BGSAVE,
       PF_REDIS_N };
enum { PF_HOST_MEM = 2, PF_HOST_CPU, PF_HOST_LOAD1, PF_HOST_N };
enum { PF_FILE_AGE = 2, PF_FILE_SIZE, PF_FILE_COUNT, PF_FILE_INTACT, PF_FILE_PATH, PF_FILE_N };

/* Set a numeric value of the check in flight. */
void probe_set(struct ingest_probe *p, unsigned idx, double v);
/* Set a string value (copied into a per-field buffer of 256 bytes). */
void probe_set_str(struct ingest_probe *p, unsigned idx, const char *s);
/* The check ended well (up = 1 unless set): hand out the result. */
void probe_done(struct ingest_probe *p);
/* The check failed: up = 0, error = the message; hand out the result (with
 * the values set so far). */
void probe_fail(struct ingest_probe *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hand out an extra result outside a check (the file probe's gzip verdict),
 * with the values as they are. */
void probe_emit(struct ingest_probe *p);
/* Seconds since the check began. */
double probe_elapsed(const struct ingest_probe *p);

extern const struct probe_ops probe_http_ops, probe_tcp_ops, probe_disk_ops, probe_pg_ops,
	probe_redis_ops, probe_host_ops, probe_file_ops;

/* "host:port", "[v6]:port" → host (without brackets) and port. 0 or -EINVAL. */
int probe_split_hostport(const char *s, char *host, size_t hostlen, uint16_t *port);

/* ---------------------------------------------------------------------------
 * Pure pieces.
 */
struct probe_disk {
	double free_pct;	/* available to unprivileged users, of used + available */
	double free_bytes;
	double total_bytes;
	double inodes_free_pct; /* < 0: the filesystem does not count inodes */
};
/* 0, or -EINVAL for a filesystem of no blocks. */
int probe_disk_compute(const struct statvfs *st, struct probe_disk *out);

/* /proc/meminfo → MemTotal and MemAvailable in bytes. 0 or -EINVAL. */
int probe_meminfo_parse(const char *text, size_t len, uint64_t *total, uint64_t *avail);
/* /proc/stat's "cpu" line → busy and total jiffies (iowait counts as idle).
 * 0 or -EINVAL. */
int probe_proc_stat_parse(const char *text, size_t len, uint64_t *busy, uint64_t *total);
/* /proc/loadavg → the 1-minute load. 0 or -EINVAL. */
int probe_loadavg_parse(const char *text, size_t len, double *load1);
/* cgroup v2: memory.max ("max" or bytes), memory.current, memory.stat
 * (inactive_file is not counted as used, as `docker stats` does), and the
 * host's total for "max" → percent used. 0 or -EINVAL. */
int probe_cgroup_mem_pct(const char *max, const char *current, const char *stat,
			 uint64_t host_total, double *pct);
/* cgroup v2 cpu.stat → usage_usec. 0 or -EINVAL. */
int probe_cgroup_cpu_usage(const char *text, size_t len, uint64_t *usage_us);
/* cgroup v2 cpu.max ("max 100000", "50000 100000") → CPUs allowed, at most
 * ncpu (ncpu when there is no quota or the text is unreadable). */
double probe_cgroup_cpu_limit(const char *text, unsigned ncpu);
/* /proc/self/cgroup → the v2 path ("0::/PATH"), into out. 0 or -ENOENT. */
int probe_cgroup_path(const char *text, size_t len, char *out, size_t outlen);

/* Redis INFO: the three fields the probe hands out. Absent: < 0 / "". */
struct probe_redis_info {
	double used_memory;
	double connected_clients;
	char rdb_last_bgsave_status[16];
};
void probe_redis_info_parse(const char *text, size_t len, struct probe_redis_info *out);

/* OpenSSL's certificate date as libcurl's CERTINFO shows it ("Expire
 * date:Nov 14 22:13:20 2024 GMT", also "2024-11-14 22:13:20 GMT") → µs
 * since the epoch. 0 or -EINVAL. */
int probe_cert_date(const char *s, int64_t *out_us);

/* The gzip integrity check, in slices: every member decompresses, with its
 * CRC-32 and length; nothing follows the last member. */
struct probe_gz;
struct probe_gz *probe_gz_open(const char *path, int *err);
/* Read and check up to budget bytes: 1 more to do, 0 intact, -EIO not intact
 * (why set), other -errno read errors. */
int probe_gz_step(struct probe_gz *g, size_t budget, const char **why);
void probe_gz_close(struct probe_gz *g);

#endif
