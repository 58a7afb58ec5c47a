/*
 * probe_host.c — memory, CPU and load of the host, or of the container klaxon
 * runs in.
 *
 * cgroup v2 first: the group is the "0::PATH" line of /proc/self/cgroup; its
 * directory under /sys/fs/cgroup (or /sys/fs/cgroup itself, inside a cgroup
 * namespace) has memory.max, memory.current, memory.stat, cpu.stat and
 * cpu.max. Memory used is memory.current less inactive_file (page cache the
 * kernel takes back first, as `docker stats` counts it), of memory.max, or of
 * the host's MemTotal when there is no limit. CPU used is the growth of
 * usage_usec between two checks, of the wall time times the CPUs the group
 * may use (cpu.max's quota, else the online CPUs). Without a v2 group (cgroup
 * v1 hosts, bare machines): /proc/meminfo (MemTotal - MemAvailable) and
 * /proc/stat (busy of all jiffies). load1 is /proc/loadavg in both cases
 * (Linux has no per-cgroup load average).
 *
 * The files are small and in memory: reading them is a few syscalls on the
 * loop. The CPU share needs a previous sample: one is taken when the probe
 * starts, so the first check already has one.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ingest/ingest_int.h"

#define SMALL_FILE (64 * 1024)

struct host {
	bool cgroup;	  /* v2 files found */
	char dir[512];	  /* the group's directory */
	uint64_t prev_busy, prev_total; /* /proc/stat jiffies, or usage µs and wall µs */
	bool have_prev;
};

/* ---- pure parsers ------------------------------------------------------------ */

/* The text after "key" on its line (key includes the separator), or NULL. */
static const char *find_key(const char *text, size_t len, const char *key, size_t *vlen)
{
	size_t kl = strlen(key);
	const char *p = text, *end = text + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		if ((size_t)(le - p) >= kl && memcmp(p, key, kl) == 0) {
			*vlen = (size_t)(le - p - (ptrdiff_t)kl);
			return p + kl;
		}
		p = le + 1;
	}
	return NULL;
}

/* A leading unsigned number of s (blanks skipped), the rest ignored. */
static int lead_u64(const char *s, size_t n, uint64_t *out)
{
	size_t i = 0, b;
	while (i < n && (s[i] == ' ' || s[i] == '\t'))
		i++;
	b = i;
	while (i < n && s[i] >= '0' && s[i] <= '9')
		i++;
	return kl_parse_u64(s + b, i - b, out);
}

int probe_meminfo_parse(const char *text, size_t len, uint64_t *total, uint64_t *avail)
{
	size_t n;
	const char *t = find_key(text, len, "MemTotal:", &n);
	uint64_t tk, ak;
	if (!t || lead_u64(t, n, &tk) < 0 || tk == 0)
		return -EINVAL;
	const char *a = find_key(text, len, "MemAvailable:", &n);
	if (!a || lead_u64(a, n, &ak) < 0) {
		/* kernels before 3.14: free + buffers + cached */
		uint64_t f = 0, b = 0, c = 0;
		const char *x;
		if (!(x = find_key(text, len, "MemFree:", &n)) || lead_u64(x, n, &f) < 0)
			return -EINVAL;
		if ((x = find_key(text, len, "Buffers:", &n)))
			lead_u64(x, n, &b);
		if ((x = find_key(text, len, "Cached:", &n)))
			lead_u64(x, n, &c);
		ak = f + b + c;
	}
	*total = tk * 1024;
	*avail = (ak > tk ? tk : ak) * 1024;
	return 0;
}

int probe_proc_stat_parse(const char *text, size_t len, uint64_t *busy, uint64_t *total)
{
	size_t n;
	const char *v = find_key(text, len, "cpu ", &n);
	uint64_t f[10] = { 0 }, sum = 0;
	size_t i = 0, k = 0;
	if (!v)
		return -EINVAL;
	/* user nice system idle iowait irq softirq steal guest guest_nice; guest
	 * time is already in user and nice */
	while (k < 10) {
		while (i < n && v[i] == ' ')
			i++;
		size_t b = i;
		while (i < n && v[i] >= '0' && v[i] <= '9')
			i++;
		if (i == b)
			break;
		if (kl_parse_u64(v + b, i - b, &f[k]) < 0)
			return -EINVAL;
		k++;
	}
	if (k < 4)
		return -EINVAL;
	for (size_t j = 0; j < 8 && j < k; j++)
		sum += f[j];
	*total = sum;
	*busy = sum - f[3] - (k > 4 ? f[4] : 0);
	return 0;
}

int probe_loadavg_parse(const char *text, size_t len, double *load1)
{
	size_t i = 0;
	while (i < len && text[i] != ' ' && text[i] != '\n')
		i++;
	return kl_parse_double(text, i, load1);
}

int probe_cgroup_mem_pct(const char *max, const char *current, const char *stat,
			 uint64_t host_total, double *pct)
{
	uint64_t limit, cur, inactive = 0;
	size_t n;
	if (!max || !current)
		return -EINVAL;
	if (strncmp(max, "max", 3) == 0)
		limit = host_total;
	else if (lead_u64(max, strlen(max), &limit) < 0)
		return -EINVAL;
	if (lead_u64(current, strlen(current), &cur) < 0)
		return -EINVAL;
	if (host_total && limit > host_total)
		limit = host_total;
	if (limit == 0)
		return -EINVAL;
	const char *v = stat ? find_key(stat, strlen(stat), "inactive_file ", &n) : NULL;
	if (v)
		lead_u64(v, n, &inactive);
	uint64_t used = cur > inactive ? cur - inactive : 0;
	*pct = (double)used / (double)limit * 100.0;
	if (*pct > 100.0)
		*pct = 100.0;
	return 0;
}

int probe_cgroup_cpu_usage(const char *text, size_t len, uint64_t *usage_us)
{
	size_t n;
	const char *v = find_key(text, len, "usage_usec ", &n);
	return v ? lead_u64(v, n, usage_us) : -EINVAL;
}

double probe_cgroup_cpu_limit(const char *text, unsigned ncpu)
{
	uint64_t quota, period;
	if (!text || strncmp(text, "max", 3) == 0)
		return ncpu;
	const char *sp = strchr(text, ' ');
	if (!sp || lead_u64(text, (size_t)(sp - text), &quota) < 0 ||
	    lead_u64(sp + 1, strcspn(sp + 1, "\n"), &period) < 0 || period == 0)
		return ncpu;
	double c = (double)quota / (double)period;
	return c > 0 && c < ncpu ? c : ncpu;
}

int probe_cgroup_path(const char *text, size_t len, char *out, size_t outlen)
{
	const char *p = text, *end = text + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		if (le - p >= 3 && memcmp(p, "0::", 3) == 0) {
			size_t n = (size_t)(le - p - 3);
			if (n == 0 || n >= outlen)
				return -ENOENT;
			memcpy(out, p + 3, n);
			out[n] = '\0';
			return 0;
		}
		p = le + 1;
	}
	return -ENOENT;
}

/* ---- reading ------------------------------------------------------------------- */

static char *read_small(const struct ingest_probe *p, const char *dir, const char *name)
{
	struct kl_buf path = { 0 };
	char *data = NULL;
	size_t len;
	if (kl_buf_appendf(&path, "%s%s/%s", p->root, dir, name) < 0)
		return NULL;
	if (kl_read_file(path.p, SMALL_FILE, &data, &len) < 0)
		data = NULL;
	kl_buf_free(&path);
	return data;
}

static unsigned online_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

/* One CPU sample: busy and total in a common unit. */
static int cpu_sample(struct ingest_probe *p, uint64_t *busy, uint64_t *total)
{
	struct host *h = p->impl;
	char *t;
	int rc = -EINVAL;
	if (h->cgroup) {
		t = read_small(p, h->dir, "cpu.stat");
		if (t && probe_cgroup_cpu_usage(t, strlen(t), busy) == 0) {
			*total = (uint64_t)kl_mono_us();
			rc = 0;
		}
	} else {
		t = read_small(p, "/proc", "stat");
		if (t)
			rc = probe_proc_stat_parse(t, strlen(t), busy, total);
	}
	free(t);
	return rc;
}

static uint64_t host_memtotal(struct ingest_probe *p)
{
	char *t = read_small(p, "/proc", "meminfo");
	uint64_t total = 0, avail;
	if (t && probe_meminfo_parse(t, strlen(t), &total, &avail) < 0)
		total = 0;
	free(t);
	return total;
}

static int host_init(struct ingest_probe *p)
{
	struct host *h = calloc(1, sizeof *h);
	char cg[400];
	if (!h)
		return -ENOMEM;
	p->impl = h;
	char *self = read_small(p, "/proc/self", "cgroup");
	if (self && probe_cgroup_path(self, strlen(self), cg, sizeof cg) == 0) {
		/* the group's own directory, else the namespace's root */
		const char *cands[2] = { cg, "" };
		for (size_t i = 0; i < 2 && !h->cgroup; i++) {
			snprintf(h->dir, sizeof h->dir, "/sys/fs/cgroup%s",
				 strcmp(cands[i], "/") == 0 ? "" : cands[i]);
			char *mc = read_small(p, h->dir, "memory.current");
			h->cgroup = mc != NULL;
			free(mc);
		}
	}
	free(self);
	uint64_t b, t;
	if (cpu_sample(p, &b, &t) == 0) {
		h->prev_busy = b;
		h->prev_total = t;
		h->have_prev = true;
	}
	return 0;
}

static void host_start(struct ingest_probe *p)
{
	struct host *h = p->impl;
	char *t;
	double pct;
	bool any = false;

	if (h->cgroup) {
		char *max = read_small(p, h->dir, "memory.max");
		char *cur = read_small(p, h->dir, "memory.current");
		char *st = read_small(p, h->dir, "memory.stat");
		if (probe_cgroup_mem_pct(max, cur, st, host_memtotal(p), &pct) == 0) {
			probe_set(p, PF_HOST_MEM, pct);
			any = true;
		}
		free(max);
		free(cur);
		free(st);
	} else if ((t = read_small(p, "/proc", "meminfo"))) {
		uint64_t total, avail;
		if (probe_meminfo_parse(t, strlen(t), &total, &avail) == 0) {
			probe_set(p, PF_HOST_MEM, (double)(total - avail) / (double)total * 100.0);
			any = true;
		}
		free(t);
	}

	uint64_t busy, total;
	if (cpu_sample(p, &busy, &total) == 0) {
		if (h->have_prev && total > h->prev_total && busy >= h->prev_busy) {
			double share = (double)(busy - h->prev_busy) / (double)(total - h->prev_total);
			if (h->cgroup) {
				char *cm = read_small(p, h->dir, "cpu.max");
				share /= probe_cgroup_cpu_limit(cm, online_cpus());
				free(cm);
			}
			probe_set(p, PF_HOST_CPU, share > 1 ? 100.0 : share * 100.0);
			any = true;
		}
		h->prev_busy = busy;
		h->prev_total = total;
		h->have_prev = true;
	}

	if ((t = read_small(p, "/proc", "loadavg"))) {
		double l;
		if (probe_loadavg_parse(t, strlen(t), &l) == 0) {
			probe_set(p, PF_HOST_LOAD1, l);
			any = true;
		}
		free(t);
	}
	if (!any)
		probe_fail(p, "cannot read /proc/meminfo, /proc/stat or /proc/loadavg");
	else
		probe_done(p);
}

static void host_cancel(struct ingest_probe *p)
{
}

static void host_destroy(struct ingest_probe *p)
{
	free(p->impl);
	p->impl = NULL;
}

const struct probe_ops probe_host_ops = { host_init, host_start, host_cancel, host_destroy };
