/*
 * test_probe.c — ingest/probe*.c: the pure pieces from fixture text (cgroup
 * v2 and /proc files, statvfs arithmetic, Redis INFO, certificate dates,
 * HOST:PORT, targets), the sliced gzip check on good, truncated, corrupt and
 * multi-member files, and probes on a real loop: disk, host (from a fake
 * root), file (age, count, intact verdicts), tcp (a listener of our own, a
 * closed port, a name looked up on the helper thread) and a timeout (an http
 * server that accepts and never answers). Deadlines only bound waits.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>
#include <ev.h>

#include "ingest/ingest_int.h"

#define DEADLINE 10.0

/* ---- pure pieces ---------------------------------------------------------------- */

static void test_disk_compute(void **state)
{
	struct statvfs st = { 0 };
	struct probe_disk d;
	st.f_frsize = 4096;
	st.f_blocks = 1000;
	st.f_bfree = 150; /* 50 reserved for root */
	st.f_bavail = 100;
	st.f_files = 200;
	st.f_favail = 50;
	assert_int_equal(probe_disk_compute(&st, &d), 0);
	/* used 850, available 100: df's view, 100 / 950 free */
	assert_true(fabs(d.free_pct - 100.0 / 950.0 * 100.0) < 1e-9);
	assert_true(d.free_bytes == 100.0 * 4096);
	assert_true(d.total_bytes == 1000.0 * 4096);
	assert_true(d.inodes_free_pct == 25.0);
	st.f_files = 0; /* btrfs and others: no inode count */
	assert_int_equal(probe_disk_compute(&st, &d), 0);
	assert_true(d.inodes_free_pct < 0);
	st.f_blocks = 0;
	assert_int_equal(probe_disk_compute(&st, &d), -EINVAL);
}

static const char meminfo[] = "MemTotal:        8000000 kB\n"
			      "MemFree:          100000 kB\n"
			      "MemAvailable:    2000000 kB\n"
			      "Buffers:           50000 kB\n"
			      "Cached:           900000 kB\n";

static void test_meminfo(void **state)
{
	uint64_t total, avail;
	assert_int_equal(probe_meminfo_parse(meminfo, strlen(meminfo), &total, &avail), 0);
	assert_true(total == UINT64_C(8000000) * 1024);
	assert_true(avail == UINT64_C(2000000) * 1024);
	static const char old[] = "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 250 kB\n";
	assert_int_equal(probe_meminfo_parse(old, strlen(old), &total, &avail), 0);
	assert_true(avail == 400 * 1024);
	assert_int_equal(probe_meminfo_parse("junk\n", 5, &total, &avail), -EINVAL);
}

static void test_proc_stat(void **state)
{
	static const char st[] = "cpu  100 20 30 800 50 5 5 0 0 0\n"
				 "cpu0 50 10 15 400 25 2 3 0 0 0\n"
				 "intr 12345\n";
	uint64_t busy, total;
	assert_int_equal(probe_proc_stat_parse(st, strlen(st), &busy, &total), 0);
	assert_true(total == 1010);
	assert_true(busy == 160); /* idle and iowait are not busy */
	assert_int_equal(probe_proc_stat_parse("cpu0 1 2\n", 9, &busy, &total), -EINVAL);
	double l;
	assert_int_equal(probe_loadavg_parse("0.71 0.52 0.40 1/123 4567\n", 26, &l), 0);
	assert_true(l == 0.71);
}

static void test_cgroup(void **state)
{
	double pct;
	static const char stat[] = "anon 1000\nfile 5000\ninactive_file 2000000\nactive_file 10\n";
	assert_int_equal(probe_cgroup_mem_pct("4000000\n", "3000000\n", stat, 8000000, &pct), 0);
	assert_true(fabs(pct - 25.0) < 1e-9); /* (3e6 - 2e6) / 4e6 */
	assert_int_equal(probe_cgroup_mem_pct("max\n", "2000000\n", NULL, 8000000, &pct), 0);
	assert_true(fabs(pct - 25.0) < 1e-9); /* no limit: of the host's memory */
	assert_int_equal(probe_cgroup_mem_pct("max\n", "2000000\n", NULL, 0, &pct), -EINVAL);
	assert_int_equal(probe_cgroup_mem_pct("x\n", "1\n", NULL, 10, &pct), -EINVAL);

	static const char cpu[] = "usage_usec 123456789\nuser_usec 100\nsystem_usec 23\n";
	uint64_t us;
	assert_int_equal(probe_cgroup_cpu_usage(cpu, strlen(cpu), &us), 0);
	assert_true(us == 123456789);
	assert_true(probe_cgroup_cpu_limit("max 100000\n", 4) == 4.0);
	assert_true(probe_cgroup_cpu_limit("50000 100000\n", 4) == 0.5);
	assert_true(probe_cgroup_cpu_limit("800000 100000\n", 4) == 4.0);
	assert_true(probe_cgroup_cpu_limit(NULL, 2) == 2.0);

	char path[128];
	static const char v2[] = "0::/system.slice/docker-abc.scope\n";
	assert_int_equal(probe_cgroup_path(v2, strlen(v2), path, sizeof path), 0);
	assert_string_equal(path, "/system.slice/docker-abc.scope");
	static const char v1[] = "4:memory:/x\n1:cpu:/\n";
	assert_int_equal(probe_cgroup_path(v1, strlen(v1), path, sizeof path), -ENOENT);
}

static void test_redis_info(void **state)
{
	static const char info[] = "# Server\r\nredis_version:7.0.15\r\n\r\n# Clients\r\n"
				   "connected_clients:7\r\n# Memory\r\nused_memory:1048576\r\n"
				   "used_memory_human:1.00M\r\n# Persistence\r\n"
				   "rdb_last_bgsave_status:err\r\n";
	struct probe_redis_info in;
	probe_redis_info_parse(info, strlen(info), &in);
	assert_true(in.used_memory == 1048576);
	assert_true(in.connected_clients == 7);
	assert_string_equal(in.rdb_last_bgsave_status, "err");
	probe_redis_info_parse("", 0, &in);
	assert_true(in.used_memory < 0 && in.connected_clients < 0);
	assert_string_equal(in.rdb_last_bgsave_status, "");
}

static void test_cert_date(void **state)
{
	int64_t us;
	assert_int_equal(probe_cert_date("Expire date:Nov 14 22:13:20 2023 GMT", &us), 0);
	assert_true(us == INT64_C(1700000000) * 1000000);
	assert_int_equal(probe_cert_date("Expire date:Feb  3 00:00:00 2030 GMT", &us), 0);
	assert_int_equal(probe_cert_date("Expire date:2023-11-14 22:13:20 GMT", &us), 0);
	assert_true(us == INT64_C(1700000000) * 1000000);
	assert_int_equal(probe_cert_date("Expire date:Foo 14 22:13:20 2023 GMT", &us), -EINVAL);
	assert_int_equal(probe_cert_date("Expire date:Nov 14 22:13 2023 GMT", &us), -EINVAL);
	assert_int_equal(probe_cert_date("Expire date:Nov 14 22:13:20 2023 PST", &us), -EINVAL);
}

static void test_targets(void **state)
{
	char host[64], why[160];
	uint16_t port;
	assert_int_equal(probe_split_hostport("db:5432", host, sizeof host, &port), 0);
	assert_string_equal(host, "db");
	assert_int_equal(port, 5432);
	assert_int_equal(probe_split_hostport("[::1]:6379", host, sizeof host, &port), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(probe_split_hostport("::1:6379", host, sizeof host, &port), -EINVAL);
	assert_int_equal(probe_split_hostport("db", host, sizeof host, &port), -EINVAL);
	assert_int_equal(probe_split_hostport("db:0", host, sizeof host, &port), -EINVAL);
	assert_int_equal(probe_split_hostport("db:70000", host, sizeof host, &port), -EINVAL);
	assert_int_equal(probe_split_hostport(":80", host, sizeof host, &port), -EINVAL);

	assert_int_equal(ingest_probe_check_target(INGEST_PROBE_HTTP, "https://web/healthz", why,
						   sizeof why), 0);
	assert_int_equal(ingest_probe_check_target(INGEST_PROBE_HTTP, "ftp://x", why, sizeof why),
			 -EINVAL);
	assert_string_equal(why, "expected a URL starting with http:// or https://");
	assert_int_equal(ingest_probe_check_target(INGEST_PROBE_HTTP, "http:///x", why, sizeof why),
			 -EINVAL);
	assert_int_equal(ingest_probe_check_target(INGEST_PROBE_TCP, "db", why, sizeof why), -EINVAL);
	assert_string_equal(why, "expected HOST:PORT (e.g. db:5432, [::1]:6379)");
	assert_int_equal(ingest_probe_check_target(INGEST_PROBE_REDIS, "redis://:pw@r", why,
						   sizeof why), 0);
	assert_int_equal(ingest_probe_check_target(INGEST_PROBE_REDIS, "redis://r:6380/2", why,
						   sizeof why), 0);
	assert_int_equal(ingest_probe_check_target(INGEST_PROBE_REDIS, "redis:///2", why, sizeof why),
			 -EINVAL);
	assert_int_equal(ingest_probe_check_target(INGEST_PROBE_DISK, "", why, sizeof why), -EINVAL);
	assert_int_equal(ingest_probe_check_target(INGEST_PROBE_FILE, "/b/*.gz\n", why, sizeof why),
			 -EINVAL);

	enum ingest_probe_kind k;
	assert_int_equal(ingest_probe_kind_from_name("postgres", &k), 0);
	assert_int_equal(k, INGEST_PROBE_POSTGRES);
	assert_int_equal(ingest_probe_kind_from_name("pg", &k), -EINVAL);
	size_t n;
	const struct ingest_probe_field *f = ingest_probe_fields(INGEST_PROBE_FILE, &n);
	assert_int_equal(n, PF_FILE_N);
	assert_string_equal(f[PF_UP].name, "up");
	assert_string_equal(f[PF_ERROR].name, "error");
	assert_string_equal(f[PF_FILE_INTACT].name, "intact");
}

/* ---- gzip ----------------------------------------------------------------------------- */

static char tmpdir_path[64];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int setup_dir(void **state)
{
	snprintf(tmpdir_path, sizeof tmpdir_path, "/tmp/test_probe.XXXXXX");
	assert_non_null(mkdtemp(tmpdir_path));
	return 0;
}

static int teardown_dir(void **state)
{
	nftw(tmpdir_path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

static char *path_of(const char *name)
{
	struct kl_buf b = { 0 };
	assert_int_equal(kl_buf_appendf(&b, "%s/%s", tmpdir_path, name), 0);
	return b.p;
}

/* n bytes of text-like data, gzip'd (one member), into *out. */
static size_t make_gz(size_t n, unsigned char **out)
{
	z_stream zs = { 0 };
	unsigned char *in = malloc(n), *o = malloc(n + 1024);
	assert_non_null(in);
	assert_non_null(o);
	uint32_t x = 12345;
	for (size_t i = 0; i < n; i++) {
		x = x * 1103515245 + 12345;
		in[i] = (unsigned char)('a' + (x >> 16) % 26);
	}
	assert_int_equal(deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
	zs.next_in = in;
	zs.avail_in = (uInt)n;
	zs.next_out = o;
	zs.avail_out = (uInt)(n + 1024);
	assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
	size_t len = zs.total_out;
	deflateEnd(&zs);
	free(in);
	*out = o;
	return len;
}

static void put(const char *name, const void *data, size_t len)
{
	char *p = path_of(name);
	assert_int_equal(kl_write_file_atomic(p, data, len), 0);
	free(p);
}

/* Run the sliced check to its end, counting the slices. */
static int gz_verdict(const char *name, size_t budget, unsigned *slices, const char **why)
{
	char *p = path_of(name);
	int err = 0;
	struct probe_gz *g = probe_gz_open(p, &err);
	free(p);
	assert_non_null(g);
	int rc;
	*slices = 0;
	while ((rc = probe_gz_step(g, budget, why)) == 1)
		(*slices)++;
	probe_gz_close(g);
	return rc;
}

static void test_gz(void **state)
{
	unsigned char *gz;
	size_t len = make_gz(3 * 1024 * 1024, &gz);
	unsigned slices;
	const char *why;
	put("good.gz", gz, len);
	assert_int_equal(gz_verdict("good.gz", 256 * 1024, &slices, &why), 0);
	assert_true(slices >= 4); /* done in slices, not at once */

	put("cut.gz", gz, len - 100);
	assert_int_equal(gz_verdict("cut.gz", 1 << 20, &slices, &why), -EIO);
	assert_string_equal(why, "unexpected end of file (truncated)");

	put("short.gz", gz, 5); /* the header cut */
	assert_int_equal(gz_verdict("short.gz", 1 << 20, &slices, &why), -EIO);

	unsigned char *bad = malloc(len);
	memcpy(bad, gz, len);
	bad[len - 6] ^= 0xff; /* the CRC-32 */
	put("crc.gz", bad, len);
	assert_int_equal(gz_verdict("crc.gz", 1 << 20, &slices, &why), -EIO);
	memcpy(bad, gz, len);
	bad[len / 2] ^= 0x55; /* the data */
	put("data.gz", bad, len);
	assert_int_equal(gz_verdict("data.gz", 1 << 20, &slices, &why), -EIO);
	free(bad);

	/* two members (cat a.gz b.gz, as gzip -t accepts), then garbage after */
	unsigned char *two = malloc(2 * len + 4);
	memcpy(two, gz, len);
	memcpy(two + len, gz, len);
	put("two.gz", two, 2 * len);
	assert_int_equal(gz_verdict("two.gz", 1 << 20, &slices, &why), 0);
	memcpy(two + 2 * len, "junk", 4);
	put("junk.gz", two, 2 * len + 4);
	assert_int_equal(gz_verdict("junk.gz", 1 << 20, &slices, &why), -EIO);
	assert_string_equal(why, "data after the last gzip member");
	free(two);

	put("empty.gz", "", 0);
	assert_int_equal(gz_verdict("empty.gz", 1 << 20, &slices, &why), -EIO);
	assert_string_equal(why, "empty file");
	put("plain.gz", "hello\n", 6);
	assert_int_equal(gz_verdict("plain.gz", 1 << 20, &slices, &why), -EIO);
	free(gz);
}

/* ---- probes on a loop ------------------------------------------------------------------- */

#define MAX_RESULTS 64

struct got {
	unsigned n;
	struct {
		bool up;
		char error[PROBE_ERR_MAX];
		double v[INGEST_PROBE_MAX_FIELDS];
		bool set[INGEST_PROBE_MAX_FIELDS];
	} r[MAX_RESULTS];
};

static void on_result(void *ctx, const struct ingest_probe_result *res)
{
	struct got *g = ctx;
	if (g->n == MAX_RESULTS)
		return;
	unsigned i = g->n++;
	g->r[i].up = res->values[PF_UP].set && res->values[PF_UP].num == 1;
	snprintf(g->r[i].error, sizeof g->r[i].error, "%s",
		 res->values[PF_ERROR].set ? res->values[PF_ERROR].str : "");
	for (size_t k = 0; k < res->n; k++) {
		g->r[i].set[k] = res->values[k].set;
		g->r[i].v[k] = res->values[k].num;
	}
}

/* Run the loop until g has want results (or the deadline). */
static void run_until(struct ev_loop *loop, struct got *g, unsigned want)
{
	double end = ev_time() + DEADLINE;
	while (g->n < want && ev_time() < end)
		ev_run(loop, EVRUN_ONCE);
	assert_true(g->n >= want);
}

static struct ingest_probe *start_probe(struct ev_loop *loop, enum ingest_probe_kind k,
					const char *target, double interval, double timeout,
					struct got *g)
{
	struct ingest_probe_opts o = { .name = "t", .kind = k, .target = target,
				       .interval_us = (int64_t)(interval * 1e6),
				       .timeout_us = (int64_t)(timeout * 1e6), .root = NULL };
	int err = 0;
	struct ingest_probe *p = ingest_probe_new(loop, &o, on_result, g, &err);
	assert_non_null(p);
	return p;
}

/* After a probe is freed, nothing of it may be left on the loop. */
static void assert_loop_idle(struct ev_loop *loop)
{
	ev_run(loop, EVRUN_NOWAIT);
	assert_int_equal(ev_pending_count(loop), 0);
}

static void test_disk_probe(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct got *g = calloc(1, sizeof *g);
	struct ingest_probe *p = start_probe(loop, INGEST_PROBE_DISK, tmpdir_path, 0.1, 0.1, g);
	run_until(loop, g, 2);
	assert_true(g->r[0].up);
	assert_true(g->r[0].set[PF_DISK_FREE_PCT]);
	assert_true(g->r[0].v[PF_DISK_FREE_PCT] >= 0 && g->r[0].v[PF_DISK_FREE_PCT] <= 100);
	assert_true(g->r[0].v[PF_DISK_TOTAL_BYTES] > 0);
	ingest_probe_free(p);

	g->n = 0;
	char *missing = path_of("nope");
	p = start_probe(loop, INGEST_PROBE_DISK, missing, 1, 1, g);
	run_until(loop, g, 1);
	assert_false(g->r[0].up);
	assert_non_null(strstr(g->r[0].error, "No such file or directory"));
	free(missing);
	ingest_probe_free(p);
	assert_loop_idle(loop);
	ev_loop_destroy(loop);
	free(g);
}

static void mkdirs(const char *rel)
{
	char *p = path_of(rel);
	char cmd[512];
	snprintf(cmd, sizeof cmd, "mkdir -p '%s'", p);
	assert_int_equal(system(cmd), 0);
	free(p);
}

/* The host probe on a fake root: cgroup v2 files first, else /proc. */
static void test_host_probe(void **state)
{
	mkdirs("root/proc/self");
	mkdirs("root/sys/fs/cgroup/kl.slice");
	put("root/proc/meminfo", meminfo, strlen(meminfo));
	put("root/proc/stat", "cpu  100 0 0 900 0 0 0 0 0 0\n", 29);
	put("root/proc/loadavg", "1.50 1.00 0.50 1/1 1\n", 21);
	put("root/proc/self/cgroup", "0::/kl.slice\n", 13);
	put("root/sys/fs/cgroup/kl.slice/memory.max", "1000000\n", 8);
	put("root/sys/fs/cgroup/kl.slice/memory.current", "900000\n", 7);
	put("root/sys/fs/cgroup/kl.slice/memory.stat", "inactive_file 100000\n", 21);
	put("root/sys/fs/cgroup/kl.slice/cpu.stat", "usage_usec 1000\n", 16);
	put("root/sys/fs/cgroup/kl.slice/cpu.max", "max 100000\n", 11);
	char *root = path_of("root");
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct got *g = calloc(1, sizeof *g);
	struct ingest_probe_opts o = { .name = "h", .kind = INGEST_PROBE_HOST, .target = "",
				       .interval_us = 100000, .timeout_us = 100000, .root = root };
	struct ingest_probe *p = ingest_probe_new(loop, &o, on_result, g, NULL);
	assert_non_null(p);
	run_until(loop, g, 1);
	assert_true(g->r[0].up);
	assert_true(fabs(g->r[0].v[PF_HOST_MEM] - 80.0) < 1e-9); /* (900000-100000)/1e6 */
	assert_true(g->r[0].v[PF_HOST_LOAD1] == 1.5);
	ingest_probe_free(p);

	/* no cgroup v2 group: /proc/meminfo, /proc/stat between two checks */
	put("root/proc/self/cgroup", "4:memory:/x\n", 12);
	g->n = 0;
	p = ingest_probe_new(loop, &o, on_result, g, NULL);
	run_until(loop, g, 1);
	assert_true(fabs(g->r[0].v[PF_HOST_MEM] - 75.0) < 1e-9); /* (8e6-2e6)/8e6 */
	assert_false(g->r[0].set[PF_HOST_CPU]); /* the same sample as at start */
	put("root/proc/stat", "cpu  150 0 0 950 0 0 0 0 0 0\n", 29);
	run_until(loop, g, 2);
	assert_true(g->r[1].set[PF_HOST_CPU]);
	assert_true(fabs(g->r[1].v[PF_HOST_CPU] - 50.0) < 1e-9);
	ingest_probe_free(p);
	assert_loop_idle(loop);
	ev_loop_destroy(loop);
	free(root);
	free(g);
}

static void test_file_probe(void **state)
{
	mkdirs("backups");
	unsigned char *gz;
	size_t len = make_gz(2 * 1024 * 1024, &gz);
	put("backups/daily_1.sql.gz", gz, len);
	char *pat = path_of("backups/daily_*.sql.gz");
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct got *g = calloc(1, sizeof *g);
	struct ingest_probe *p = start_probe(loop, INGEST_PROBE_FILE, pat, 0.1, 0.1, g);
	/* settled after one look: then checked, the verdict handed out */
	double end = ev_time() + DEADLINE;
	while (ev_time() < end && !(g->n && g->r[g->n - 1].set[PF_FILE_INTACT]))
		ev_run(loop, EVRUN_ONCE);
	assert_true(g->n && g->r[g->n - 1].set[PF_FILE_INTACT]);
	assert_true(g->r[g->n - 1].v[PF_FILE_INTACT] == 1);
	assert_true(g->r[g->n - 1].v[PF_FILE_COUNT] == 1);
	assert_true(g->r[g->n - 1].v[PF_FILE_SIZE] == (double)len);
	assert_true(g->r[g->n - 1].v[PF_FILE_AGE] >= 0);

	/* a newer, truncated one */
	put("backups/daily_2.sql.gz", gz, len / 2);
	struct timespec ts[2] = { { 0, UTIME_NOW }, { 0, UTIME_NOW } };
	char *p2 = path_of("backups/daily_2.sql.gz");
	utimensat(AT_FDCWD, p2, ts, 0);
	end = ev_time() + DEADLINE;
	while (ev_time() < end && !(g->n && g->r[g->n - 1].set[PF_FILE_INTACT] &&
				    g->r[g->n - 1].v[PF_FILE_INTACT] == 0))
		ev_run(loop, EVRUN_ONCE);
	assert_true(g->r[g->n - 1].v[PF_FILE_INTACT] == 0);
	assert_true(g->r[g->n - 1].v[PF_FILE_COUNT] == 2);
	ingest_probe_free(p);

	/* none: count 0, up (the check ran), no age */
	char *none = path_of("backups/weekly_*.sql.gz");
	g->n = 0;
	p = start_probe(loop, INGEST_PROBE_FILE, none, 1, 1, g);
	run_until(loop, g, 1);
	assert_true(g->r[0].up);
	assert_true(g->r[0].v[PF_FILE_COUNT] == 0);
	assert_false(g->r[0].set[PF_FILE_AGE]);
	ingest_probe_free(p);
	assert_loop_idle(loop);
	ev_loop_destroy(loop);
	free(none);
	free(p2);
	free(pat);
	free(gz);
	free(g);
}

static int listener(uint16_t *port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t l = sizeof a;
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(fd, 16), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &l), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

static void test_tcp_probe(void **state)
{
	uint16_t port;
	int lfd = listener(&port);
	char target[64];
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct got *g = calloc(1, sizeof *g);

	snprintf(target, sizeof target, "127.0.0.1:%u", port);
	struct ingest_probe *p = start_probe(loop, INGEST_PROBE_TCP, target, 0.1, 0.1, g);
	run_until(loop, g, 2);
	assert_true(g->r[0].up);
	assert_true(g->r[0].set[PF_TCP_LATENCY]);
	ingest_probe_free(p);

	/* a name: looked up on the helper thread */
	g->n = 0;
	snprintf(target, sizeof target, "localhost:%u", port);
	p = start_probe(loop, INGEST_PROBE_TCP, target, 0.2, 0.2, g);
	run_until(loop, g, 1);
	assert_true(g->r[0].up || strstr(g->r[0].error, "refused")); /* localhost may be ::1 */
	ingest_probe_free(p);

	/* closed */
	close(lfd);
	g->n = 0;
	snprintf(target, sizeof target, "127.0.0.1:%u", port);
	p = start_probe(loop, INGEST_PROBE_TCP, target, 1, 1, g);
	run_until(loop, g, 1);
	assert_false(g->r[0].up);
	assert_non_null(strstr(g->r[0].error, "Connection refused"));
	ingest_probe_free(p);

	/* a lookup in flight when the probe is freed: the thread lets go alone */
	g->n = 0;
	p = start_probe(loop, INGEST_PROBE_TCP, "localhost:1", 1, 1, g);
	ingest_probe_free(p);
	assert_loop_idle(loop);
	ev_loop_destroy(loop);
	free(g);
}

/* A server that accepts (the backlog does) and never answers: timed out. */
static void test_timeout(void **state)
{
	uint16_t port;
	int lfd = listener(&port);
	char url[64];
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct got *g = calloc(1, sizeof *g);
	snprintf(url, sizeof url, "http://127.0.0.1:%u/healthz", port);
	struct ingest_probe *p = start_probe(loop, INGEST_PROBE_HTTP, url, 0.5, 0.3, g);
	run_until(loop, g, 1);
	assert_false(g->r[0].up);
	assert_string_equal(g->r[0].error, "timed out after 300ms");
	ingest_probe_free(p);
	assert_loop_idle(loop);
	close(lfd);
	ev_loop_destroy(loop);
	free(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_disk_compute),
		cmocka_unit_test(test_meminfo),
		cmocka_unit_test(test_proc_stat),
		cmocka_unit_test(test_cgroup),
		cmocka_unit_test(test_redis_info),
		cmocka_unit_test(test_cert_date),
		cmocka_unit_test(test_targets),
		cmocka_unit_test_setup_teardown(test_gz, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_disk_probe, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_host_probe, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_file_probe, setup_dir, teardown_dir),
		cmocka_unit_test(test_tcp_probe),
		cmocka_unit_test(test_timeout),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
