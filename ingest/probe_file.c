/*
 * probe_file.c — the newest file that matches a glob (nightly backups):
 * `age` (seconds since its mtime), `size`, `count` (matches), `path`, and for
 * a .gz file `intact`.
 *
 * intact is 1 when the whole file decompresses (every gzip member, with its
 * CRC-32 and length checked by zlib) and nothing but gzip members is in it; 0
 * otherwise (a dump cut short by a full disk, a killed cron job). The check
 * runs once per new file — a file is new when its device, inode, size or
 * mtime differ from the last one checked — and only once the file is settled
 * (the same size and mtime as at the previous check, or an mtime older than
 * the interval), so a dump still being written is not judged. It reads 1 MiB
 * per loop iteration from an ev_idle watcher, which runs only when no other
 * watcher is pending, so the loop's real work always goes first. Until the
 * verdict is known, results carry no `intact`; the verdict is handed out as
 * an extra result the moment it is known, then with every check.
 */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "ingest/ingest_int.h"

#define SLICE (1024 * 1024)
#define OUTBUF (256 * 1024)

/* ---- the sliced gzip check -------------------------------------------------------- */

struct probe_gz {
	int fd;
	z_stream zs;
	bool zinit;
	bool member_done; /* between members: only a new member (or the end) may follow */
	bool any;	  /* a member was seen */
	unsigned char in[64 * 1024];
	unsigned char out[OUTBUF];
};

struct probe_gz *probe_gz_open(const char *path, int *err)
{
	struct probe_gz *g = calloc(1, sizeof *g);
	if (!g) {
		*err = -ENOMEM;
		return NULL;
	}
	g->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (g->fd < 0) {
		*err = -errno;
		free(g);
		return NULL;
	}
	/* 16 + 15: the gzip wrapper only, with its CRC-32 and ISIZE checks */
	if (inflateInit2(&g->zs, 16 + MAX_WBITS) != Z_OK) {
		close(g->fd);
		free(g);
		*err = -ENOMEM;
		return NULL;
	}
	g->zinit = true;
	return g;
}

int probe_gz_step(struct probe_gz *g, size_t budget, const char **why)
{
	size_t done = 0;
	*why = NULL;
	while (done < budget) {
		ssize_t n = read(g->fd, g->in, sizeof g->in);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0) {
			if (!g->any) {
				*why = "empty file";
				return -EIO;
			}
			if (!g->member_done) {
				*why = "unexpected end of file (truncated)";
				return -EIO;
			}
			return 0;
		}
		done += (size_t)n;
		g->zs.next_in = g->in;
		g->zs.avail_in = (uInt)n;
		while (g->zs.avail_in > 0) {
			if (g->member_done) {
				/* another member must begin with the gzip magic */
				if (g->zs.avail_in >= 1 && g->zs.next_in[0] != 0x1f) {
					*why = "data after the last gzip member";
					return -EIO;
				}
				inflateReset(&g->zs);
				g->member_done = false;
			}
			g->any = true;
			g->zs.next_out = g->out;
			g->zs.avail_out = sizeof g->out;
			int zr = inflate(&g->zs, Z_NO_FLUSH);
			if (zr == Z_STREAM_END) {
				g->member_done = true;
			} else if (zr == Z_BUF_ERROR) {
				if (g->zs.avail_out != 0 && g->zs.avail_in != 0) {
					*why = "corrupt data";
					return -EIO;
				}
			} else if (zr != Z_OK) {
				*why = zr == Z_DATA_ERROR ? (g->zs.msg ? g->zs.msg : "corrupt data")
							  : "cannot decompress";
				return -EIO;
			}
		}
	}
	return 1;
}

void probe_gz_close(struct probe_gz *g)
{
	if (!g)
		return;
	if (g->zinit)
		inflateEnd(&g->zs);
	close(g->fd);
	free(g);
}

/* ---- the probe ---------------------------------------------------------------------- */

struct ident {
	dev_t dev;
	ino_t ino;
	off_t size;
	int64_t mtime_ns;
};

struct fprobe {
	ev_idle idle;
	struct probe_gz *gz;
	char *checking;	    /* the path being checked */
	struct ident cur;   /* what is being or was last checked */
	bool have_cur;
	int verdict;	    /* -1 unknown, 0 or 1 */
	struct ident last_seen; /* the newest file at the previous check */
	bool have_last;
};

static bool same(const struct ident *a, const struct ident *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime_ns == b->mtime_ns;
}

static bool is_gz(const char *path)
{
	size_t n = strlen(path);
	return n > 3 && strcmp(path + n - 3, ".gz") == 0;
}

static void stop_gz(struct ingest_probe *p)
{
	struct fprobe *f = p->impl;
	ev_idle_stop(p->loop, &f->idle);
	probe_gz_close(f->gz);
	f->gz = NULL;
	free(f->checking);
	f->checking = NULL;
}

static void on_idle(struct ev_loop *loop, ev_idle *w, int revents)
{
	struct ingest_probe *p = w->data;
	struct fprobe *f = p->impl;
	const char *why = NULL;
	int rc = probe_gz_step(f->gz, SLICE, &why);
	if (rc == 1)
		return;
	if (rc == 0) {
		f->verdict = 1;
	} else {
		f->verdict = 0;
		kl_log(KL_LOG_WARN, "probe '%s': '%s' is not an intact gzip file: %s", p->name,
		       f->checking, why ? why : strerror(-rc));
	}
	stop_gz(p);
	if (p->running)
		return; /* the check in flight reports it */
	/* hand the verdict out now, with the rest as the last check saw it */
	if (p->v[PF_FILE_PATH].set) {
		probe_set(p, PF_FILE_INTACT, f->verdict);
		probe_emit(p);
	}
}

static int file_init(struct ingest_probe *p)
{
	struct fprobe *f = calloc(1, sizeof *f);
	if (!f)
		return -ENOMEM;
	f->verdict = -1;
	ev_idle_init(&f->idle, on_idle);
	f->idle.data = p;
	p->impl = f;
	return 0;
}

static void file_start(struct ingest_probe *p)
{
	struct fprobe *f = p->impl;
	glob_t g;
	int rc = glob(p->target, 0, NULL, &g);
	if (rc != 0 && rc != GLOB_NOMATCH) {
		probe_fail(p, "cannot read the directories of '%s'", p->target);
		return;
	}
	size_t count = 0;
	const char *newest = NULL;
	struct stat best = { 0 };
	for (size_t i = 0; rc == 0 && i < g.gl_pathc; i++) {
		struct stat st;
		if (stat(g.gl_pathv[i], &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		count++;
		if (!newest || st.st_mtim.tv_sec > best.st_mtim.tv_sec ||
		    (st.st_mtim.tv_sec == best.st_mtim.tv_sec &&
		     st.st_mtim.tv_nsec > best.st_mtim.tv_nsec)) {
			newest = g.gl_pathv[i];
			best = st;
		}
	}
	probe_set(p, PF_FILE_COUNT, (double)count);
	if (!newest) {
		if (rc == 0)
			globfree(&g);
		f->have_last = false;
		probe_done(p); /* up: the check ran; count 0 says what it found */
		return;
	}
	int64_t mt = (int64_t)best.st_mtim.tv_sec * 1000000000 + best.st_mtim.tv_nsec;
	struct ident id = { best.st_dev, best.st_ino, best.st_size, mt };
	double age = (double)(kl_wall_us() - mt / 1000) / 1e6;
	probe_set(p, PF_FILE_AGE, age < 0 ? 0 : age);
	probe_set(p, PF_FILE_SIZE, (double)best.st_size);
	probe_set_str(p, PF_FILE_PATH, newest);

	if (is_gz(newest)) {
		bool settled = (f->have_last && same(&id, &f->last_seen)) ||
			       age * 1e6 >= (double)p->interval_us;
		if (f->have_cur && same(&id, &f->cur)) {
			if (f->verdict >= 0)
				probe_set(p, PF_FILE_INTACT, f->verdict);
		} else if (settled) {
			if (f->gz)
				stop_gz(p);
			int err = 0;
			f->cur = id;
			f->have_cur = true;
			f->verdict = -1;
			f->gz = probe_gz_open(newest, &err);
			f->checking = kl_strndup(newest, strlen(newest));
			if (!f->gz || !f->checking) {
				kl_log(KL_LOG_WARN, "probe '%s': cannot open '%s' to check it: %s",
				       p->name, newest, strerror(err ? -err : ENOMEM));
				stop_gz(p);
				f->have_cur = false; /* try again next time */
			} else {
				ev_idle_start(p->loop, &f->idle);
			}
		}
	}
	f->last_seen = id;
	f->have_last = true;
	globfree(&g);
	probe_done(p);
}

static void file_cancel(struct ingest_probe *p)
{
	/* the gzip check goes on across checks: it belongs to the file */
}

static void file_destroy(struct ingest_probe *p)
{
	if (!p->impl)
		return;
	stop_gz(p);
	free(p->impl);
	p->impl = NULL;
}

const struct probe_ops probe_file_ops = { file_init, file_start, file_cancel, file_destroy };
