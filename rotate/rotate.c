/*
 * rotate.c — the rotator: scans, decisions and actions (see rotate.h).
 *
 * Design. A scan has two halves. The plan: for every rule, its directory is
 * opened and checked, its entries listed once, and every matching file
 * looked at with fstatat(AT_SYMLINK_NOFOLLOW); what must happen to it becomes
 * an action (remove a leftover .tmp, delete, compress, rotate) in a list. The
 * execution: the actions run one after the other, in plan order; each opens
 * or stats its file again and acts only if it is still the same (device,
 * inode), a regular file with one link, read to its end by the tailer. Only
 * one scan runs at a time, and its actions never overlap, so klaxon never
 * races itself; against other processes, the identity checks and renames
 * that never replace (RENAME_NOREPLACE) keep every step safe.
 *
 * Threads. The plan, deletions, renames and signals are quick system calls
 * and run on the loop's thread; compressing and the copy of copytruncate
 * stream a whole file and run on a worker thread (one at a time), which
 * reports back with ev_async; the loop goes on with the next action then.
 * The worker touches only r->job and the directory fd; cancel asks it to stop
 * between buffers. Without a loop, jobs run in the caller.
 *
 * Safety rules, each enforced here or in archive.c:
 *  - never follow a symlink: entries are lstat'ed, every open is O_NOFOLLOW
 *    and relative to the rule's directory fd; names come from readdir (no
 *    '/'), and a rule's path may not hold "..";
 *  - never act in an unsafe directory: world-writable, or owned by neither
 *    root nor our user (another user could plant names there), unless the
 *    rule says allow_unsafe_dir;
 *  - never touch anything but a regular file with one link (a hard link
 *    would let a planted name reach a file elsewhere);
 *  - never delete but what delete_after or keep names (and our own leftover
 *    .tmp files, which are flock'ed while being written, so one in use by
 *    another klaxon is left alone);
 *  - never compress, delete or truncate a file the tailer has not handed on
 *    to its end (hooks.fully_read);
 *  - archives are complete and durable before their source goes (archive.c).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "common/kl.h"
#include "rotate/rotate.h"
#include "rotate/rotate_int.h"

#define MAX_ENTRIES 100000	    /* directory entries looked at per rule and scan */
#define MAX_GENS 4096		    /* generations of one live file looked at */
#define FIRST_SCAN 1.0		    /* s after start: the tailer has applied its checkpoint */
#define TAILER_WAIT_US 5000000	    /* copytruncate: how long the truncation waits */
#define TAILER_POLL 0.05
#define DEFAULT_INTERVAL_US 60000000

struct rule {
	struct rotate_rule r;
	char *dir;  /* the directory part of r.path ("." when none) */
	char *base; /* its last component: a name or a glob */
	bool live;  /* max_size or max_age: rotation of live files */
	int dfd;    /* open during a scan, else -1 */
};

enum act_kind { ACT_RMTMP, ACT_DELETE, ACT_COMPRESS, ACT_ROTATE };

struct action {
	enum act_kind kind;
	struct rule *rule;
	char name[NAME_MAX + 1];
	dev_t dev;
	ino_t ino;
	char why[ROTATE_WHY]; /* "age 8d > compress_after 7d" */
};

enum job_kind { JOB_GZIP, JOB_COPY };

/* What the worker is given and hands back: its own copies (the plan may
 * move while it works). */
struct job {
	enum job_kind kind;
	int dfd;
	char name[NAME_MAX + 1];
	char tmp[NAME_MAX + 1];
	dev_t dev;
	ino_t ino;
	int level;
	int rc;
	struct rotate_gz_result gz;
	uint64_t copied;
	char why[ROTATE_WHY];
};

/* A rotation in progress (it may wait for the worker and for the tailer). */
struct rot {
	char target[NAME_MAX + 1];
	char tmp[NAME_MAX + 1];
	uint64_t size;
	int64_t wait_until; /* copytruncate: give up waiting for the tailer then */
};

struct rotate {
	struct ev_loop *loop;
	struct rule *rules;
	size_t nrules;
	struct rotate_opts opts;
	struct rotate_hooks hooks;
	struct rotate_stats st, at_start; /* at_start: st when the scan began */
	ev_timer timer;
	ev_timer poll; /* copytruncate: is the tailer there yet */
	ev_async done;
	pthread_t thread;
	bool thread_running;
	atomic_bool cancel;
	struct job job;
	struct action *plan;
	size_t nplan, capplan, next;
	bool scanning;
	int first_err;
	struct rot rot;
};

/* ---------------------------------------------------------------------------
 * Small helpers.
 */

const char *rotate_method_name(enum rotate_method m)
{
	return m == ROTATE_COPYTRUNCATE ? "copytruncate" : "rename";
}

static const struct {
	const char *name;
	int sig;
} signals[] = { { "USR1", SIGUSR1 }, { "USR2", SIGUSR2 }, { "HUP", SIGHUP },
		{ "INT", SIGINT },   { "TERM", SIGTERM }, { "WINCH", SIGWINCH } };

int rotate_signal_parse(const char *name)
{
	if (strncmp(name, "SIG", 3) == 0)
		name += 3;
	for (size_t i = 0; i < KL_ARRAY_LEN(signals); i++)
		if (strcmp(name, signals[i].name) == 0)
			return signals[i].sig;
	return -EINVAL;
}

static const char *signal_name(int sig)
{
	for (size_t i = 0; i < KL_ARRAY_LEN(signals); i++)
		if (signals[i].sig == sig)
			return signals[i].name;
	return "?";
}

/* snprintf for messages, where cutting a long name short is fine. */
static void fmt(char *buf, size_t size, const char *f, ...) __attribute__((format(printf, 3, 4)));
static void fmt(char *buf, size_t size, const char *f, ...)
{
	va_list ap;
	va_start(ap, f);
	vsnprintf(buf, size, f, ap);
	va_end(ap);
}

static bool has_magic(const char *s)
{
	return strpbrk(s, "*?[\\") != NULL;
}

int rotate_rule_check(const struct rotate_rule *rule, const char **why)
{
	const char *p = rule->path;
	if (!p || !*p) {
		*why = "the path is empty";
		return -EINVAL;
	}
	for (const char *c = p; *c;) {
		const char *e = strchr(c, '/');
		size_t n = e ? (size_t)(e - c) : strlen(c);
		if (n == 2 && c[0] == '.' && c[1] == '.') {
			*why = "the path holds '..' (a rule stays inside the directory it names)";
			return -EINVAL;
		}
		c += n + (e ? 1 : 0);
	}
	const char *slash = strrchr(p, '/');
	const char *base = slash ? slash + 1 : p;
	if (!*base || strcmp(base, ".") == 0) {
		*why = "the path names a directory; name files in it (e.g. /var/log/app/*.log)";
		return -EINVAL;
	}
	if (slash) {
		char *dir = kl_strndup(p, (size_t)(slash - p));
		bool magic = dir && has_magic(dir);
		free(dir);
		if (magic) {
			*why = "only the last component of the path may be a glob";
			return -EINVAL;
		}
	}
	if (strlen(base) > NAME_MAX) {
		*why = "the file name is too long";
		return -EINVAL;
	}
	return 0;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

/* Compressed already (by us or by another tool): never compressed again. */
static bool compressed(const char *name)
{
	static const char *const ext[] = { ".gz", ".bz2", ".xz", ".zst", ".lz4", ".Z", ".zip" };
	for (size_t i = 0; i < KL_ARRAY_LEN(ext); i++)
		if (ends_with(name, ext[i]))
			return true;
	return false;
}

static bool all_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return n > 0;
}

/* A rotated generation of live: live.N, live-YYYYMMDD, live-YYYYMMDD-HHMMSS,
 * each optionally .gz. *idx: N, or 0 for a dated one. */
static bool gen_of(const char *live, const char *e, long *idx, bool *gz)
{
	size_t ln = strlen(live), en = strlen(e);
	if (en <= ln || memcmp(e, live, ln) != 0)
		return false;
	const char *s = e + ln;
	size_t n = en - ln;
	*gz = n > 3 && memcmp(s + n - 3, ".gz", 3) == 0;
	if (*gz)
		n -= 3;
	if (n >= 2 && n <= 7 && s[0] == '.' && s[1] != '0' && all_digits(s + 1, n - 1)) {
		uint64_t v;
		if (kl_parse_u64(s + 1, n - 1, &v) < 0)
			return false;
		*idx = (long)v;
		return true;
	}
	if ((n == 9 || n == 16) && s[0] == '-' && all_digits(s + 1, 8) &&
	    (n == 9 || (s[9] == '-' && all_digits(s + 10, 6)))) {
		*idx = 0;
		return true;
	}
	return false;
}

/* The live name that generation e belongs to, if it looks like one: e with
 * its generation suffix cut, into out. */
static bool strip_gen(const char *e, char *out, size_t size)
{
	size_t n = strlen(e);
	if (n >= size)
		return false;
	memcpy(out, e, n + 1);
	if (n > 3 && ends_with(out, ".gz"))
		out[n -= 3] = '\0';
	size_t i = n;
	while (i > 0 && out[i - 1] >= '0' && out[i - 1] <= '9')
		i--;
	if (i == n || i == 0)
		return false;
	if (out[i - 1] == '.') {
		out[i - 1] = '\0';
		return i - 1 > 0;
	}
	if (out[i - 1] == '-' && (n - i == 8 || n - i == 6)) {
		size_t cut = i - 1;
		if (n - i == 6 && cut >= 9 && out[cut - 9] == '-' && all_digits(out + cut - 8, 8))
			cut -= 9;
		else if (n - i != 8)
			return false;
		out[cut] = '\0';
		return cut > 0;
	}
	return false;
}

static int64_t mtime_us(const struct stat *st)
{
	return (int64_t)st->st_mtim.tv_sec * 1000000 + st->st_mtim.tv_nsec / 1000;
}

/* An age or a limit in its largest unit, rounded down: "31d", "1.5h", "90s"
 * (a tenth is shown below 10 of the unit). */
static const char *fmt_age(int64_t us, char *buf, size_t size)
{
	static const struct {
		int64_t us;
		const char *unit;
	} units[] = { { 86400000000, "d" }, { 3600000000, "h" }, { 60000000, "m" }, { 1000000, "s" } };
	if (us < 0)
		us = 0;
	for (size_t i = 0; i < KL_ARRAY_LEN(units); i++) {
		int64_t u = units[i].us;
		if (us < u)
			continue;
		if (us % u * 10 / u == 0 || us >= 10 * u)
			snprintf(buf, size, "%lld%s", (long long)(us / u), units[i].unit);
		else
			snprintf(buf, size, "%lld.%lld%s", (long long)(us / u),
				 (long long)(us % u * 10 / u), units[i].unit);
		return buf;
	}
	snprintf(buf, size, "%lldms", (long long)(us / 1000));
	return buf;
}

static void report(struct rotate *r, enum rotate_outcome o, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void report(struct rotate *r, enum rotate_outcome o, const char *fmt, ...)
{
	char line[3 * PATH_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (o == ROTATE_SKIPPED)
		r->st.skipped++;
	else if (o == ROTATE_FAILED)
		r->st.failed++;
	if (r->hooks.report) {
		r->hooks.report(r->hooks.ctx, o, line);
		return;
	}
	/* Skips repeat every scan while their reason lasts: not at INFO. */
	kl_log(o == ROTATE_FAILED ? KL_LOG_ERROR : o == ROTATE_SKIPPED ? KL_LOG_DEBUG : KL_LOG_INFO,
	       "rotate: %s%s", r->opts.dry_run ? "(dry run) " : "", line);
}

/* dir/name for messages. */
static const char *path_of(const struct rule *ru, const char *name, char *buf, size_t size)
{
	if (strcmp(ru->dir, ".") == 0 && ru->r.path[0] != '.')
		snprintf(buf, size, "%s", name);
	else
		snprintf(buf, size, "%s%s%s", ru->dir, ends_with(ru->dir, "/") ? "" : "/", name);
	return buf;
}

/* Has the tailer handed on all of st's file? Else why says how far it is. */
static bool tailer_done(struct rotate *r, const struct stat *st, char *why, size_t size)
{
	uint64_t got = 0;
	if (!r->hooks.fully_read ||
	    r->hooks.fully_read(r->hooks.ctx, st->st_dev, st->st_ino, (uint64_t)st->st_size, &got))
		return true;
	snprintf(why, size, "the tailer has read %llu of its %llu bytes; it waits until all are read",
		 (unsigned long long)got, (unsigned long long)st->st_size);
	return false;
}

/* ---------------------------------------------------------------------------
 * The plan.
 */
static int add_action(struct rotate *r, enum act_kind k, struct rule *ru, const char *name,
		      const struct stat *st, const char *why)
{
	if (r->nplan == r->capplan) {
		size_t cap = r->capplan ? r->capplan * 2 : 16;
		struct action *np = realloc(r->plan, cap * sizeof *np);
		if (!np)
			return -ENOMEM;
		r->plan = np;
		r->capplan = cap;
	}
	struct action *a = &r->plan[r->nplan++];
	memset(a, 0, sizeof *a);
	a->kind = k;
	a->rule = ru;
	snprintf(a->name, sizeof a->name, "%s", name);
	a->dev = st->st_dev;
	a->ino = st->st_ino;
	snprintf(a->why, sizeof a->why, "%s", why);
	return 0;
}

/* Open and check the rule's directory; -errno (reported) when it is not used. */
static int open_dir(struct rotate *r, struct rule *ru)
{
	struct stat st;
	int dfd = open(ru->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		int e = errno;
		if (e == ENOENT)
			kl_log(KL_LOG_DEBUG, "rotate: \"%s\" does not exist (yet)", ru->dir);
		else
			report(r, ROTATE_FAILED, "error %s: cannot open the directory: %s", ru->dir,
			       strerror(e));
		return -e;
	}
	if (fstat(dfd, &st) < 0) {
		int e = errno;
		close(dfd);
		return -e;
	}
	if (!ru->r.allow_unsafe_dir &&
	    ((st.st_mode & S_IWOTH) || (st.st_uid != 0 && st.st_uid != geteuid()))) {
		report(r, ROTATE_SKIPPED,
		       "skip %s: the directory is %s (another user could plant names in it); "
		       "nothing in it is touched unless the rule says allow_unsafe_dir: true",
		       ru->dir, (st.st_mode & S_IWOTH) ? "world-writable" : "owned by another user");
		close(dfd);
		return -EPERM;
	}
	ru->dfd = dfd;
	return 0;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The directory's entries, sorted (capped at MAX_ENTRIES). */
static int list_dir(int dfd, char ***out, size_t *nout)
{
	int fd = dup(dfd);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	rewinddir(d);
	char **v = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;
	struct dirent *de;
	while ((de = readdir(d)) && n < MAX_ENTRIES) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (n == cap) {
			size_t c = cap ? cap * 2 : 64;
			char **nv = realloc(v, c * sizeof *nv);
			if (!nv) {
				rc = -ENOMEM;
				break;
			}
			v = nv;
			cap = c;
		}
		if (!(v[n] = kl_strndup(de->d_name, strlen(de->d_name)))) {
			rc = -ENOMEM;
			break;
		}
		n++;
	}
	closedir(d);
	if (n > 1)
		qsort(v, n, sizeof *v, cmp_name);
	*out = v;
	*nout = n;
	return rc;
}

static void free_list(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static bool matches(const struct rule *ru, const char *name)
{
	return fnmatch(ru->base, name, FNM_PERIOD) == 0;
}

/* X.gz.tmp or X.tmp that this rule's own actions write. */
static bool our_tmp(const struct rule *ru, const char *name)
{
	char y[NAME_MAX + 1], live[NAME_MAX + 1];
	size_t n = strlen(name);
	if (n <= 4 || !ends_with(name, ".tmp") || n - 4 >= sizeof y)
		return false;
	memcpy(y, name, n - 4);
	y[n - 4] = '\0';
	if (ends_with(y, ".gz"))
		y[n - 7] = '\0';
	if (!ru->live)
		return ends_with(name, ".gz.tmp") && matches(ru, y);
	/* a live rule writes LIVE.N.gz.tmp, LIVE-DATE.gz.tmp and LIVE.1.tmp */
	return strip_gen(y, live, sizeof live) && matches(ru, live);
}

struct gen {
	char name[NAME_MAX + 1];
	struct stat st;
	long idx; /* N of LIVE.N; 0 for a dated one */
	bool gz;
};

/* Newest first: by mtime, then by number (a lower one is newer), then name
 * (a later date is newer). */
static int cmp_gen(const void *pa, const void *pb)
{
	const struct gen *a = pa, *b = pb;
	int64_t ma = mtime_us(&a->st), mb = mtime_us(&b->st);
	if (ma != mb)
		return ma > mb ? -1 : 1;
	if (a->idx != b->idx)
		return a->idx < b->idx ? -1 : 1;
	return -strcmp(a->name, b->name);
}

/* The generations of live in dfd (lstat'ed; symlinks and others included,
 * for the caller to refuse), newest first. */
static int list_gens(int dfd, const char *live, struct gen **out, size_t *nout)
{
	char **names;
	size_t n;
	int rc = list_dir(dfd, &names, &n);
	if (rc < 0) {
		free_list(names, n);
		return rc;
	}
	struct gen *g = calloc(n ? (n < MAX_GENS ? n : MAX_GENS) : 1, sizeof *g);
	size_t k = 0;
	if (!g) {
		free_list(names, n);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n && k < MAX_GENS; i++) {
		long idx;
		bool gz;
		if (!gen_of(live, names[i], &idx, &gz) ||
		    fstatat(dfd, names[i], &g[k].st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		snprintf(g[k].name, sizeof g[k].name, "%s", names[i]);
		g[k].idx = idx;
		g[k].gz = gz;
		k++;
	}
	free_list(names, n);
	qsort(g, k, sizeof *g, cmp_gen);
	*out = g;
	*nout = k;
	return 0;
}

/* Why st's file cannot be acted on at all, or NULL. */
static const char *refuse(const struct stat *st, char *buf, size_t size)
{
	if (S_ISLNK(st->st_mode))
		return "a symbolic link (never followed)";
	if (!S_ISREG(st->st_mode))
		return "not a regular file";
	if (st->st_nlink != 1) {
		snprintf(buf, size, "it has %ju hard links (one could be outside the directory)",
			 (uintmax_t)st->st_nlink);
		return buf;
	}
	return NULL;
}

/* Plan to delete or compress one file, or report why it is left alone. */
static int plan_file(struct rotate *r, struct rule *ru, const char *name, const struct stat *st,
		     int64_t now, bool keep_out)
{
	const struct rotate_rule *rr = &ru->r;
	int64_t age = now - mtime_us(st);
	char why[ROTATE_WHY], a1[32], a2[32], path[PATH_MAX], buf[ROTATE_WHY];
	enum act_kind k;

	if (keep_out) {
		k = ACT_DELETE;
		snprintf(why, sizeof why, "beyond keep %d", rr->keep);
	} else if (rr->delete_after_us >= 0 && age > rr->delete_after_us) {
		k = ACT_DELETE;
		snprintf(why, sizeof why, "age %s > delete_after %s", fmt_age(age, a1, sizeof a1),
			 fmt_age(rr->delete_after_us, a2, sizeof a2));
	} else if (rr->compress_after_us >= 0 && !compressed(name) && age > rr->compress_after_us) {
		k = ACT_COMPRESS;
		snprintf(why, sizeof why, "age %s > compress_after %s", fmt_age(age, a1, sizeof a1),
			 fmt_age(rr->compress_after_us, a2, sizeof a2));
		if ((uint64_t)st->st_size < rr->min_size) {
			report(r, ROTATE_SKIPPED, "skip %s: %lld bytes, below min_size %llu",
			       path_of(ru, name, path, sizeof path), (long long)st->st_size,
			       (unsigned long long)rr->min_size);
			return 0;
		}
	} else {
		return 0;
	}
	const char *no = refuse(st, buf, sizeof buf);
	if (!no && !tailer_done(r, st, buf, sizeof buf))
		no = buf;
	if (no) {
		report(r, ROTATE_SKIPPED, "skip %s: %s", path_of(ru, name, path, sizeof path), no);
		return 0;
	}
	return add_action(r, k, ru, name, st, why);
}

/* The generations of the live file name (which may be gone: a rename
 * rotation with no writer to create it again): keep, delete_after,
 * compress_after. *newest: the newest one's mtime, or -1. */
static int plan_gens(struct rotate *r, struct rule *ru, const char *name, int64_t now,
		     int64_t *newest)
{
	const struct rotate_rule *rr = &ru->r;
	struct gen *g;
	size_t n, kept = 0;
	int rc = list_gens(ru->dfd, name, &g, &n);
	if (rc < 0)
		return rc;
	*newest = -1;
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (*newest < 0 && S_ISREG(g[i].st.st_mode))
			*newest = mtime_us(&g[i].st);
		bool out = rr->keep >= 0 && kept >= (size_t)rr->keep;
		if (!out && !(rr->delete_after_us >= 0 && now - mtime_us(&g[i].st) > rr->delete_after_us))
			kept++;
		rc = plan_file(r, ru, g[i].name, &g[i].st, now, out);
	}
	free(g);
	return rc;
}

/* A live file: its generations, then whether it is due for rotation. */
static int plan_live(struct rotate *r, struct rule *ru, const char *name, const struct stat *st,
		     int64_t now)
{
	const struct rotate_rule *rr = &ru->r;
	int64_t newest;
	int rc = plan_gens(r, ru, name, now, &newest);
	if (rc < 0)
		return rc;

	char why[ROTATE_WHY], a1[32], a2[32], path[PATH_MAX], buf[ROTATE_WHY];
	why[0] = '\0';
	if (rr->max_size && (uint64_t)st->st_size > rr->max_size) {
		snprintf(why, sizeof why, "size %lld > max_size %llu", (long long)st->st_size,
			 (unsigned long long)rr->max_size);
	} else if (rr->max_age_us >= 0 && st->st_size > 0 && (uint64_t)st->st_size >= rr->min_size) {
		/* The last rotation is the newest generation's mtime; without
		 * one, the file's birth time when the file system keeps it. */
		int64_t since = newest;
		if (since < 0) {
			struct statx sx;
			if (statx(ru->dfd, name, AT_SYMLINK_NOFOLLOW, STATX_BTIME, &sx) == 0 &&
			    (sx.stx_mask & STATX_BTIME))
				since = (int64_t)sx.stx_btime.tv_sec * 1000000 + sx.stx_btime.tv_nsec / 1000;
			else
				since = 0;
		}
		if (now - since > rr->max_age_us)
			snprintf(why, sizeof why, "age %s > max_age %s",
				 since ? fmt_age(now - since, a1, sizeof a1) : "unknown",
				 fmt_age(rr->max_age_us, a2, sizeof a2));
	}
	if (!why[0])
		return 0;
	const char *no = refuse(st, buf, sizeof buf);
	if (no) {
		report(r, ROTATE_SKIPPED, "skip %s: %s", path_of(ru, name, path, sizeof path), no);
		return 0;
	}
	return add_action(r, ACT_ROTATE, ru, name, st, why);
}

static int plan_rule(struct rotate *r, struct rule *ru, int64_t now)
{
	char **names;
	size_t n;
	char path[PATH_MAX], buf[ROTATE_WHY], live[NAME_MAX + 1];
	int rc = list_dir(ru->dfd, &names, &n);
	/* Leftovers first: the actions after them may want their names. */
	for (size_t i = 0; i < n && rc == 0; i++) {
		const char *name = names[i];
		struct stat st;
		if (!ends_with(name, ".tmp") || !our_tmp(ru, name) ||
		    fstatat(ru->dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		const char *no = refuse(&st, buf, sizeof buf);
		if (no)
			report(r, ROTATE_SKIPPED, "skip %s: %s", path_of(ru, name, path, sizeof path), no);
		else
			rc = add_action(r, ACT_RMTMP, ru, name, &st, "left by an interrupted run");
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		const char *name = names[i];
		struct stat st;
		if (ends_with(name, ".tmp") || !matches(ru, name) ||
		    fstatat(ru->dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (!ru->live) {
			rc = plan_file(r, ru, name, &st, now, false);
			continue;
		}
		/* A live rule's glob may match the generations too (app.log*):
		 * those belong to the live file they were rotated from. */
		if (compressed(name) ||
		    (strip_gen(name, live, sizeof live) && matches(ru, live) &&
		     bsearch(&(const char *){ live }, names, n, sizeof *names, cmp_name)))
			continue;
		if (S_ISLNK(st.st_mode) || !S_ISREG(st.st_mode)) {
			report(r, ROTATE_SKIPPED, "skip %s: %s", path_of(ru, name, path, sizeof path),
			       refuse(&st, buf, sizeof buf));
			continue;
		}
		rc = plan_live(r, ru, name, &st, now);
	}
	/* Generations whose live file is gone are still kept in bounds. */
	char **orphans = NULL;
	size_t norphans = 0;
	for (size_t i = 0; i < n && rc == 0 && ru->live; i++) {
		int64_t newest;
		if (ends_with(names[i], ".tmp") || !strip_gen(names[i], live, sizeof live) ||
		    !matches(ru, live) ||
		    bsearch(&(const char *){ live }, names, n, sizeof *names, cmp_name))
			continue;
		bool seen = false;
		for (size_t k = 0; k < norphans && !seen; k++)
			seen = strcmp(orphans[k], live) == 0;
		if (seen)
			continue;
		char **no = realloc(orphans, (norphans + 1) * sizeof *no);
		if (!no || !(no[norphans] = kl_strndup(live, strlen(live)))) {
			if (no)
				orphans = no;
			rc = -ENOMEM;
			break;
		}
		orphans = no;
		norphans++;
		rc = plan_gens(r, ru, live, now, &newest);
	}
	free_list(orphans, norphans);
	free_list(names, n);
	return rc;
}

/* ---------------------------------------------------------------------------
 * The worker.
 */
static void run_job(struct rotate *r)
{
	struct job *j = &r->job;
	j->why[0] = '\0';
	if (j->kind == JOB_GZIP)
		j->rc = rotate_gzip(j->dfd, j->name, j->dev, j->ino, j->level, &r->cancel, &j->gz, j->why);
	else
		j->rc = rotate_copy(j->dfd, j->name, j->dev, j->ino, j->tmp, &r->cancel, &j->copied,
				    j->why);
}

static void *worker_main(void *arg)
{
	struct rotate *r = arg;
	run_job(r);
	ev_async_send(r->loop, &r->done);
	return NULL;
}

/* Run r->job: on the worker (1: the loop hears back through r->done), or
 * here when there is no loop or no thread can be made (0: done). */
static int start_job(struct rotate *r)
{
	if (r->loop && pthread_create(&r->thread, NULL, worker_main, r) == 0) {
		r->thread_running = true;
		return 1;
	}
	run_job(r);
	return 0;
}

/* ---------------------------------------------------------------------------
 * Actions. Each returns 1 when it waits for the worker or the tailer (it is
 * resumed by resume()), 0 when it is over (reported and counted).
 */
static void note_err(struct rotate *r, int rc)
{
	if (rc < 0 && r->first_err == 0)
		r->first_err = rc;
}

static void fail_action(struct rotate *r, const struct action *a, const char *what, int rc,
			const char *why)
{
	char path[PATH_MAX], hint[160] = "";
	/* A sidecar's user is often not the one the log folder was made for. */
	if (rc == -EACCES || rc == -EPERM)
		snprintf(hint, sizeof hint,
			 " (klaxon runs as uid %u and must be able to write this file and its folder; "
			 "the compose stack's log-init service sees to that)",
			 (unsigned)geteuid());
	report(r, ROTATE_FAILED, "error %s: %s: %s%s", path_of(a->rule, a->name, path, sizeof path),
	       what, why && why[0] ? why : strerror(-rc), hint);
	note_err(r, rc);
}

/* Is a still the file the plan saw, read by the tailer? 0, or 1 after
 * reporting a skip. */
static int still_there(struct rotate *r, const struct action *a, struct stat *st)
{
	char path[PATH_MAX], buf[ROTATE_WHY];
	const char *no = NULL;
	if (fstatat(a->rule->dfd, a->name, st, AT_SYMLINK_NOFOLLOW) < 0)
		no = "it is gone";
	else if (st->st_dev != a->dev || st->st_ino != a->ino)
		no = "another file has its name now";
	else if (!(no = refuse(st, buf, sizeof buf)) && a->kind != ACT_ROTATE && a->kind != ACT_RMTMP &&
		 !tailer_done(r, st, buf, sizeof buf))
		no = buf;
	if (!no)
		return 0;
	report(r, ROTATE_SKIPPED, "skip %s: %s", path_of(a->rule, a->name, path, sizeof path), no);
	return 1;
}

static void act_rmtmp(struct rotate *r, const struct action *a)
{
	char path[PATH_MAX];
	struct stat st;
	if (still_there(r, a, &st))
		return;
	/* One being written (by another klaxon) is flock'ed: left alone. */
	int fd = rotate_open_checked(a->rule->dfd, a->name, O_RDONLY, a->dev, a->ino, &st);
	if (fd < 0) {
		fail_action(r, a, "remove", fd, NULL);
		return;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		close(fd);
		report(r, ROTATE_SKIPPED, "skip %s: being written by another process",
		       path_of(a->rule, a->name, path, sizeof path));
		return;
	}
	int rc = rotate_unlink_checked(a->rule->dfd, a->name, a->dev, a->ino);
	close(fd);
	if (rc < 0) {
		fail_action(r, a, "remove", rc, NULL);
		return;
	}
	r->st.tmp_removed++;
	report(r, ROTATE_DONE, "remove %s (%s)", path_of(a->rule, a->name, path, sizeof path), a->why);
}

static void act_delete(struct rotate *r, const struct action *a)
{
	char path[PATH_MAX];
	struct stat st;
	if (still_there(r, a, &st))
		return;
	int rc = rotate_unlink_checked(a->rule->dfd, a->name, a->dev, a->ino);
	if (rc < 0) {
		fail_action(r, a, "delete", rc, NULL);
		return;
	}
	r->st.deleted++;
	report(r, ROTATE_DONE, "delete %s (%s)", path_of(a->rule, a->name, path, sizeof path), a->why);
}

static int job_done(struct rotate *r, const struct action *a);

static int act_compress(struct rotate *r, const struct action *a)
{
	struct stat st;
	if (still_there(r, a, &st))
		return 0;
	r->job = (struct job){ .kind = JOB_GZIP, .dfd = a->rule->dfd, .dev = a->dev,
			       .ino = a->ino, .level = a->rule->r.level };
	memcpy(r->job.name, a->name, sizeof a->name);
	return start_job(r) ? 1 : job_done(r, a);
}

static void compress_done(struct rotate *r, const struct action *a)
{
	const struct job *j = &r->job;
	char path[PATH_MAX];
	if (j->rc < 0) {
		fail_action(r, a, "compress", j->rc, j->why);
		return;
	}
	r->st.compressed++;
	r->st.bytes_in += j->gz.in;
	r->st.bytes_out += j->gz.out;
	path_of(a->rule, a->name, path, sizeof path);
	if (j->gz.reused)
		report(r, ROTATE_DONE, "compress %s -> %s.gz (%s; the archive was complete already: "
		       "only the original removed)", path, path, a->why);
	else
		report(r, ROTATE_DONE, "compress %s -> %s.gz (%s; %llu -> %llu bytes)", path, path,
		       a->why, (unsigned long long)j->gz.in, (unsigned long long)j->gz.out);
}

/* Tell the writer to reopen its log (rename method with a pidfile). */
static void send_signal(struct rotate *r, const struct action *a)
{
	const struct rotate_rule *rr = &a->rule->r;
	char *buf = NULL;
	size_t len = 0;
	int64_t pid = 0;
	int rc = kl_read_file(rr->pidfile, 64, &buf, &len);
	if (rc == 0) {
		while (len && (buf[len - 1] == '\n' || buf[len - 1] == ' ' || buf[len - 1] == '\r'))
			len--;
		if (kl_parse_i64(buf, len, &pid) < 0 || pid <= 1 || pid > INT32_MAX)
			rc = -EINVAL;
		else if (kill((pid_t)pid, rr->sig) < 0)
			rc = -errno;
	}
	free(buf);
	if (rc < 0) {
		report(r, ROTATE_FAILED, "error %s: cannot signal the writer (pidfile %s): %s", rr->pidfile,
		       rr->pidfile, rc == -EINVAL ? "no process id in it" : strerror(-rc));
		note_err(r, rc);
		return;
	}
	report(r, ROTATE_DONE, "signal %s to pid %lld (pidfile %s)", signal_name(rr->sig),
	       (long long)pid, rr->pidfile);
}

static int cmp_idx_desc(const void *pa, const void *pb)
{
	const struct gen *a = pa, *b = pb;
	if (a->idx != b->idx)
		return a->idx > b->idx ? -1 : 1;
	return strcmp(a->name, b->name);
}

/*
 * Make room for LIVE.1: LIVE.N[.gz] -> LIVE.N+1[.gz] from the highest N
 * down; those that would pass keep are deleted (if the tailer is done with
 * them: otherwise nothing moves and the rotation waits for the next scan).
 */
static int shift(struct rotate *r, const struct action *a, char *why)
{
	const struct rule *ru = a->rule;
	struct gen *g;
	size_t n, m = 0;
	int rc = list_gens(ru->dfd, a->name, &g, &n);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n; i++)
		if (g[i].idx > 0)
			g[m++] = g[i];
	qsort(g, m, sizeof *g, cmp_idx_desc);
	for (size_t i = 0; i < m; i++) {
		char buf[ROTATE_WHY];
		const char *no = refuse(&g[i].st, buf, sizeof buf);
		if (!no && ru->r.keep >= 0 && g[i].idx >= ru->r.keep &&
		    !tailer_done(r, &g[i].st, buf, sizeof buf))
			no = buf;
		if (no) {
			fmt(why, ROTATE_WHY, "%s: %s", g[i].name, no);
			free(g);
			return -EAGAIN;
		}
	}
	for (size_t i = 0; i < m && rc == 0; i++) {
		char to[NAME_MAX + 1], path[PATH_MAX], tpath[PATH_MAX];
		path_of(ru, g[i].name, path, sizeof path);
		if (ru->r.keep >= 0 && g[i].idx >= ru->r.keep) {
			rc = rotate_unlink_checked(ru->dfd, g[i].name, g[i].st.st_dev, g[i].st.st_ino);
			if (rc == 0) {
				r->st.deleted++;
				report(r, ROTATE_DONE, "delete %s (beyond keep %d)", path, ru->r.keep);
			}
			continue;
		}
		if ((size_t)snprintf(to, sizeof to, "%s.%ld%s", a->name, g[i].idx + 1,
				     g[i].gz ? ".gz" : "") >= sizeof to) {
			rc = -ENAMETOOLONG;
			break;
		}
		rc = rotate_rename_noreplace(ru->dfd, g[i].name, to);
		if (rc == 0)
			kl_log(KL_LOG_DEBUG, "rotate: renamed %s -> %s", path,
			       path_of(ru, to, tpath, sizeof tpath));
	}
	free(g);
	if (rc < 0)
		snprintf(why, ROTATE_WHY, "cannot shift the older generations: %s", strerror(-rc));
	return rc;
}

/* The name of the new generation: LIVE.1, or LIVE-YYYYMMDD (LIVE-YYYYMMDD-
 * HHMMSS when that day has one already). */
static int target_name(const struct action *a, char *out, size_t size)
{
	if (!a->rule->r.dateext)
		return (size_t)snprintf(out, size, "%s.1", a->name) < size ? 0 : -ENAMETOOLONG;
	time_t t = time(NULL);
	struct tm tm;
	char stamp[32];
	localtime_r(&t, &tm);
	for (int pass = 0; pass < 2; pass++) {
		strftime(stamp, sizeof stamp, pass ? "-%Y%m%d-%H%M%S" : "-%Y%m%d", &tm);
		if ((size_t)snprintf(out, size, "%s%s", a->name, stamp) >= size)
			return -ENAMETOOLONG;
		char gz[NAME_MAX + 8];
		snprintf(gz, sizeof gz, "%s.gz", out);
		struct stat st;
		if (fstatat(a->rule->dfd, out, &st, AT_SYMLINK_NOFOLLOW) < 0 &&
		    fstatat(a->rule->dfd, gz, &st, AT_SYMLINK_NOFOLLOW) < 0)
			return 0;
	}
	return -EEXIST;
}

/* dateext: the oldest generations beyond keep are deleted after a rotation;
 * the deletions are appended to the plan, so they run right after it. */
static void trim_dated(struct rotate *r, const struct action *a)
{
	struct gen *g;
	size_t n;
	int64_t now = kl_wall_us();
	if (a->rule->r.keep < 0 || list_gens(a->rule->dfd, a->name, &g, &n) < 0)
		return;
	for (size_t i = (size_t)a->rule->r.keep; i < n; i++)
		if (plan_file(r, a->rule, g[i].name, &g[i].st, now, true) < 0)
			break;
	free(g);
}

static int act_rotate(struct rotate *r, const struct action *a)
{
	const struct rule *ru = a->rule;
	char path[PATH_MAX], tpath[PATH_MAX], why[ROTATE_WHY];
	struct stat st;
	int rc;

	if (still_there(r, a, &st))
		return 0;
	memset(&r->rot, 0, sizeof r->rot);
	r->rot.size = (uint64_t)st.st_size;
	/* copytruncate loses what the tailer has not read when it truncates:
	 * with the tailer behind, nothing is moved at all (this scan). */
	if (ru->r.method == ROTATE_COPYTRUNCATE && !tailer_done(r, &st, why, sizeof why)) {
		report(r, ROTATE_SKIPPED, "skip %s: rotation waits: %s",
		       path_of(ru, a->name, path, sizeof path), why);
		return 0;
	}
	if (!ru->r.dateext) {
		why[0] = '\0';
		rc = shift(r, a, why);
		if (rc == -EAGAIN) {
			report(r, ROTATE_SKIPPED, "skip %s: rotation waits: %s",
			       path_of(ru, a->name, path, sizeof path), why);
			return 0;
		}
		if (rc < 0) {
			fail_action(r, a, "rotate", rc, why);
			return 0;
		}
		rotate_crash_point("rotate_shift");
	}
	rc = target_name(a, r->rot.target, sizeof r->rot.target);
	if (rc < 0) {
		fail_action(r, a, "rotate", rc,
			    rc == -EEXIST ? "today's and this second's dated names are taken" : NULL);
		return 0;
	}
	if (ru->r.method == ROTATE_RENAME) {
		rc = rotate_rename_noreplace(ru->dfd, a->name, r->rot.target);
		if (rc < 0) {
			fail_action(r, a, "rotate", rc, NULL);
			return 0;
		}
		r->st.rotated++;
		report(r, ROTATE_DONE, "rotate %s -> %s (%s)", path_of(ru, a->name, path, sizeof path),
		       path_of(ru, r->rot.target, tpath, sizeof tpath), a->why);
		rotate_crash_point("rotate_renamed");
		if (ru->r.pidfile)
			send_signal(r, a);
		if (ru->r.dateext)
			trim_dated(r, a);
		return 0;
	}
	if ((size_t)snprintf(r->rot.tmp, sizeof r->rot.tmp, "%s.tmp", r->rot.target) >=
	    sizeof r->rot.tmp) {
		fail_action(r, a, "rotate", -ENAMETOOLONG, NULL);
		return 0;
	}
	r->job = (struct job){ .kind = JOB_COPY, .dfd = ru->dfd, .dev = a->dev, .ino = a->ino };
	memcpy(r->job.name, a->name, sizeof a->name);
	memcpy(r->job.tmp, r->rot.tmp, sizeof r->rot.tmp);
	r->rot.wait_until = kl_mono_us() + TAILER_WAIT_US;
	return start_job(r) ? 1 : job_done(r, a);
}

/* copytruncate, once the copy is written: put it in place and truncate,
 * when the tailer has read what was copied. 1: waiting for the tailer. */
static int copytruncate_finish(struct rotate *r, const struct action *a)
{
	const struct rule *ru = a->rule;
	char path[PATH_MAX], tpath[PATH_MAX], why[ROTATE_WHY];
	struct stat st;
	int rc;

	if (fstatat(ru->dfd, a->name, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_ino != a->ino ||
	    st.st_dev != a->dev) {
		unlinkat(ru->dfd, r->rot.tmp, 0);
		report(r, ROTATE_SKIPPED, "skip %s: it was replaced while it was copied",
		       path_of(ru, a->name, path, sizeof path));
		return 0;
	}
	struct stat copied = st;
	copied.st_size = (off_t)r->job.copied;
	if (!tailer_done(r, &copied, why, sizeof why)) {
		if (r->loop && kl_mono_us() < r->rot.wait_until) {
			ev_timer_set(&r->poll, TAILER_POLL, 0.0);
			ev_timer_start(r->loop, &r->poll);
			return 1;
		}
		unlinkat(ru->dfd, r->rot.tmp, 0);
		report(r, ROTATE_SKIPPED, "skip %s: not truncated: %s",
		       path_of(ru, a->name, path, sizeof path), why);
		return 0;
	}
	rotate_crash_point("copy_tmp");
	rc = rotate_rename_noreplace(ru->dfd, r->rot.tmp, r->rot.target);
	if (rc < 0) {
		unlinkat(ru->dfd, r->rot.tmp, 0);
		fail_action(r, a, "rotate", rc, NULL);
		return 0;
	}
	rotate_crash_point("copy_renamed");
	rc = rotate_truncate_checked(ru->dfd, a->name, a->dev, a->ino);
	if (rc < 0) {
		/* The copy stays (it is a complete generation); the live file
		 * keeps its bytes too: they are in both, which loses nothing. */
		fail_action(r, a, "truncate", rc, NULL);
		return 0;
	}
	r->st.rotated++;
	report(r, ROTATE_DONE, "rotate %s -> %s (%s; copytruncate, %llu bytes copied)",
	       path_of(ru, a->name, path, sizeof path), path_of(ru, r->rot.target, tpath, sizeof tpath),
	       a->why, (unsigned long long)r->job.copied);
	if (ru->r.dateext)
		trim_dated(r, a);
	return 0;
}

/* The worker is done with r->job: finish the current action. 1: it waits. */
static int job_done(struct rotate *r, const struct action *a)
{
	if (a->kind == ACT_COMPRESS) {
		compress_done(r, a);
		return 0;
	}
	if (r->job.rc < 0) {
		fail_action(r, a, "rotate (copy)", r->job.rc, r->job.why);
		return 0;
	}
	return copytruncate_finish(r, a);
}

static int start_action(struct rotate *r, const struct action *a)
{
	char path[PATH_MAX], tpath[PATH_MAX];
	if (r->opts.dry_run) {
		path_of(a->rule, a->name, path, sizeof path);
		switch (a->kind) {
		case ACT_RMTMP: report(r, ROTATE_DONE, "remove %s (%s)", path, a->why); break;
		case ACT_DELETE: report(r, ROTATE_DONE, "delete %s (%s)", path, a->why); break;
		case ACT_COMPRESS:
			report(r, ROTATE_DONE, "compress %s -> %s.gz (%s)", path, path, a->why);
			break;
		case ACT_ROTATE: {
			char target[NAME_MAX + 1];
			if (target_name(a, target, sizeof target) < 0)
				fmt(target, sizeof target, "%s.?", a->name);
			report(r, ROTATE_DONE, "rotate %s -> %s (%s%s)", path,
			       path_of(a->rule, target, tpath, sizeof tpath), a->why,
			       a->rule->r.method == ROTATE_COPYTRUNCATE ? "; copytruncate" : "");
			break;
		}
		}
		return 0;
	}
	switch (a->kind) {
	case ACT_RMTMP: act_rmtmp(r, a); return 0;
	case ACT_DELETE: act_delete(r, a); return 0;
	case ACT_COMPRESS: return act_compress(r, a);
	case ACT_ROTATE: return act_rotate(r, a);
	}
	return 0;
}

static void finish_scan(struct rotate *r)
{
	for (size_t i = 0; i < r->nrules; i++) {
		if (r->rules[i].dfd >= 0)
			close(r->rules[i].dfd);
		r->rules[i].dfd = -1;
	}
	r->nplan = r->next = 0;
	r->scanning = false;
	const struct rotate_stats *s = &r->st, *b = &r->at_start;
	if (s->compressed + s->deleted + s->rotated + s->tmp_removed + s->failed ==
	    b->compressed + b->deleted + b->rotated + b->tmp_removed + b->failed)
		return;
	kl_log(r->hooks.report ? KL_LOG_DEBUG : KL_LOG_INFO,
	       "rotate: scan done: %llu compressed (%llu -> %llu bytes), %llu deleted, %llu rotated, "
	       "%llu leftover(s) removed, %llu failed",
	       (unsigned long long)(s->compressed - b->compressed),
	       (unsigned long long)(s->bytes_in - b->bytes_in),
	       (unsigned long long)(s->bytes_out - b->bytes_out),
	       (unsigned long long)(s->deleted - b->deleted), (unsigned long long)(s->rotated - b->rotated),
	       (unsigned long long)(s->tmp_removed - b->tmp_removed),
	       (unsigned long long)(s->failed - b->failed));
}

/* Carry out the plan from r->next; stops when an action waits. */
static void run_plan(struct rotate *r)
{
	while (r->next < r->nplan) {
		/* A copy: trim_dated may append to (and move) the plan. */
		struct action a = r->plan[r->next];
		if (start_action(r, &a))
			return;
		r->next++;
	}
	finish_scan(r);
}

static void resume(struct rotate *r)
{
	struct action a = r->plan[r->next];
	if (job_done(r, &a))
		return;
	r->next++;
	run_plan(r);
}

static void on_done(struct ev_loop *loop, ev_async *w, int revents)
{
	struct rotate *r = w->data;
	if (!r->thread_running)
		return;
	pthread_join(r->thread, NULL);
	r->thread_running = false;
	resume(r);
}

static void on_poll(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct rotate *r = w->data;
	struct action a = r->plan[r->next];
	if (copytruncate_finish(r, &a))
		return;
	r->next++;
	run_plan(r);
}

int rotate_scan(struct rotate *r)
{
	if (r->scanning) {
		kl_log(KL_LOG_DEBUG, "rotate: the last scan is still running; this one is skipped");
		return 0;
	}
	r->scanning = true;
	r->first_err = 0;
	r->nplan = r->next = 0;
	r->at_start = r->st;
	r->st.scans++;
	int64_t now = kl_wall_us();
	for (size_t i = 0; i < r->nrules; i++) {
		struct rule *ru = &r->rules[i];
		if (open_dir(r, ru) < 0)
			continue;
		int rc = plan_rule(r, ru, now);
		if (rc < 0) {
			report(r, ROTATE_FAILED, "error %s: cannot scan: %s", ru->r.path, strerror(-rc));
			note_err(r, rc);
		}
	}
	run_plan(r);
	return r->loop ? 0 : r->first_err;
}

bool rotate_busy(const struct rotate *r)
{
	return r->scanning;
}

void rotate_get_stats(const struct rotate *r, struct rotate_stats *out)
{
	*out = r->st;
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	rotate_scan(w->data);
}

struct rotate *rotate_new(struct ev_loop *loop, const struct rotate_rule *rules, size_t n,
			  const struct rotate_opts *opts, const struct rotate_hooks *hooks, int *err)
{
	struct rotate *r = calloc(1, sizeof *r);
	int rc = -ENOMEM;
	if (!r)
		goto fail;
	r->loop = loop;
	if (opts)
		r->opts = *opts;
	if (r->opts.interval_us <= 0)
		r->opts.interval_us = DEFAULT_INTERVAL_US;
	if (hooks)
		r->hooks = *hooks;
	atomic_init(&r->cancel, false);
	r->rules = calloc(n ? n : 1, sizeof *r->rules);
	if (!r->rules)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		struct rule *ru = &r->rules[i];
		const char *why;
		ru->dfd = -1;
		ru->r = rules[i];
		r->nrules++; /* from here rotate_free frees it */
		if (rotate_rule_check(&rules[i], &why) < 0) {
			kl_log(KL_LOG_ERROR, "rotate: \"%s\": %s", rules[i].path ? rules[i].path : "", why);
			rc = -EINVAL;
			goto fail;
		}
		const char *slash = strrchr(ru->r.path, '/');
		ru->dir = slash == ru->r.path ? kl_strndup("/", 1)
			: slash			? kl_strndup(ru->r.path, (size_t)(slash - ru->r.path))
						: kl_strndup(".", 1);
		ru->base = slash ? kl_strndup(slash + 1, strlen(slash + 1))
				 : kl_strndup(ru->r.path, strlen(ru->r.path));
		if (!ru->dir || !ru->base)
			goto fail;
		ru->live = ru->r.max_size > 0 || ru->r.max_age_us >= 0;
		if (ru->r.level < 1 || ru->r.level > 9)
			ru->r.level = 6;
	}
	if (loop) {
		double iv = (double)r->opts.interval_us / 1e6;
		ev_timer_init(&r->timer, on_timer, FIRST_SCAN < iv ? FIRST_SCAN : iv, iv);
		r->timer.data = r;
		ev_timer_start(loop, &r->timer);
		ev_init(&r->poll, on_poll);
		r->poll.data = r;
		ev_async_init(&r->done, on_done);
		r->done.data = r;
		ev_async_start(loop, &r->done);
	}
	return r;
fail:
	rotate_free(r);
	*err = rc;
	return NULL;
}

void rotate_free(struct rotate *r)
{
	if (!r)
		return;
	if (r->thread_running) {
		/* A cancelled compression removes its own temporary file. */
		atomic_store(&r->cancel, true);
		pthread_join(r->thread, NULL);
		r->thread_running = false;
	}
	if (r->loop) {
		ev_timer_stop(r->loop, &r->timer);
		ev_timer_stop(r->loop, &r->poll);
		ev_async_stop(r->loop, &r->done);
	}
	/* A copytruncate cut short (its copy written, not in place): the copy
	 * goes, the live file was not truncated. */
	if (r->scanning && r->next < r->nplan && r->plan[r->next].kind == ACT_ROTATE &&
	    r->rot.tmp[0] && r->plan[r->next].rule->dfd >= 0)
		unlinkat(r->plan[r->next].rule->dfd, r->rot.tmp, 0);
	for (size_t i = 0; i < r->nrules; i++) {
		if (r->rules[i].dfd >= 0)
			close(r->rules[i].dfd);
		free(r->rules[i].dir);
		free(r->rules[i].base);
	}
	free(r->rules);
	free(r->plan);
	free(r);
}
