/*
 * tail.c — following a path or a glob on the loop, like `tail -F`.
 *
 * Design. Every followed file is a struct tfile: an open fd, its identity
 * (device, inode), the offset of the next byte to read, a fingerprint (a hash
 * of its first up to FP_MAX bytes, to tell a rewritten or reused file from
 * the one we were reading), a line splitter and a zero-delay read timer. The
 * name it was found under is only a hint: files are matched by identity.
 *
 * One function, reconcile(), decides what happened to a file and to the
 * pattern: grew (schedule a read), truncated (size below our offset, or the
 * first bytes changed: read again from 0), rotated (the name now names another
 * inode: the old fd is read to its end first, then the new file from 0),
 * deleted (drain to the end, then close), new match (read from 0; at start,
 * from the end unless from_beginning). It is called from the inotify callback
 * (IN_MODIFY on files; IN_CREATE, IN_MOVED_TO, IN_MOVED_FROM, IN_DELETE on the
 * directories; IN_Q_OVERFLOW), from the stat timer (every stat_interval, the
 * fallback that works without inotify) and from the glob timer (every
 * glob_interval). When inotify is not available (limits), that is logged once
 * and the stat timer also re-globs. Its content half (check_content: grew or
 * truncated) also runs before every read, so a read already scheduled never
 * consumes a rewritten file from the old offset. On truncation a pending
 * partial line is handed out as it is (it will never get its '\n').
 *
 * Reading: a file's read timer reads at most `chunk` bytes with pread at the
 * file's offset into the tail's one read buffer, hands every complete line out
 * (views into that buffer), calls cbs->batch, and re-arms itself (a zero-delay
 * timer, so inotify and the other timers keep being served) when it read a
 * full chunk. A short read means "at the end for now"; more data announces
 * itself through inotify or the stat timer. An unterminated last line stays
 * pending in the splitter until its '\n' arrives.
 *
 * Rotated and deleted files ("draining") stay open after their end for
 * rotate_wait (5 stat intervals) since their last data, so lines a writer
 * still appends to the old file after the rename are not lost; then their
 * pending partial line, if any, is handed out and they are closed. A file that
 * replaced a draining one under the same name is not read until the draining
 * one has reached its end once (tfile.wait), so lines come out in file order.
 *
 * Checkpoints: ingest_tail_save writes one record per followed file
 * (identity, fingerprint, the offset of the first byte not handed on, so a
 * pending partial line is read again); opts.state hands them back to a new
 * tail, which applies them before its first scan: a file still under its name
 * resumes at its offset; one rotated (or copied and truncated) while we were
 * stopped is found among the siblings of its name (NAME.*, NAME-*; compressed
 * ones are not searched) and followed as a draining file from its offset,
 * so it is read to its end before the file now under the name, read from 0.
 *
 * Invariants: a tfile is in t->files exactly while its fd is open; no two
 * tfiles share an identity; f->wait and f->waiter are mutual links, cleared
 * on both sides when either file closes. Callbacks (line, batch) must not
 * free the tail.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ev.h>
#include <zlib.h>

#include "ingest/ingest.h"

#define FP_MAX 1024		   /* bytes of a file's start that identify it */
#define ROTATE_WAIT_INTERVALS 5.0  /* drained files stay open this many stat intervals */
#define IGNORED_MAX 256		   /* problem names remembered (to log each once) */
#define GZ_IN (64 * 1024)	   /* compressed bytes read per wake-up */
/* File times come from the kernel's coarse clock, up to a tick (1-10 ms)
 * behind the wall clock we compare them with: a generation that came and
 * went between two looks may carry an mtime just before the first look.
 * Far below rotate_wait, so a generation closed after it went quiet is never
 * taken for a new one. (The copy of a content read to its end, often that
 * recent, is known by its first bytes: the done ring.) */
#define MTIME_SLACK_US 20000
#define SIBLINGS_MAX 4096	   /* rotated siblings of one name considered */
#define SIBLING_PASSES 4	   /* readdir passes until one finds nothing new */
#define FILE_MASK IN_MODIFY
#define DIR_MASK                                                                      \
	(IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF | \
	 IN_ONLYDIR)

struct tfile {
	struct ingest_tail *t;
	struct tfile *next;
	char *path; /* the name it was found under: a hint */
	int fd;
	int wd; /* inotify watch on the inode, or -1 */
	dev_t dev;
	ino_t ino;
	uint64_t off;	 /* next byte to read */
	uint64_t fp;	 /* fp_hash of the first fp_len bytes */
	size_t fp_len;	 /* <= FP_MAX */
	struct ingest_lines lines;
	ev_timer rd;	 /* zero-delay: read one chunk */
	int64_t read_us; /* wall time of the chunk being delivered */
	double last_data; /* loop time of the last data read (or of the drain start) */
	struct tfile *wait;   /* not read until that file reached its end */
	struct tfile *waiter; /* the file waiting for this one */
	bool draining;	      /* its name is gone or names another file */
	bool at_eof;	      /* the last read found no more data */
	struct tgz *gz;	      /* a compressed rotated file (restore only), or NULL */
	/* The data being split now (for ingest_tail_line_mark): it starts at
	 * file offset chunk_off; held_before bytes of a partial line preceded it. */
	const char *chunk;
	size_t chunk_len;
	uint64_t chunk_off;
	size_t held_before;
	bool check;	      /* an inotify event asks for reconcile */
	bool checked;	      /* reconcile just ran check_content: read_cb need not */
	bool err_logged;
	bool warned_long; /* an over-long line was logged */
	int64_t name_ok_us; /* wall time its name was last seen naming it */
	int64_t content_ok_us; /* wall time its content was last seen unchanged */
	/* Seen empty after a truncation, nothing learned of its content since:
	 * another copytruncate may have come and gone before our next look. */
	bool emptied;
};

/*
 * A gzip file found among the rotated siblings at restore (logrotate's
 * `compress` ran while we were stopped): inflated a bounded slice per
 * wake-up; off counts uncompressed bytes, and those below skip_to (the
 * checkpoint offset) are dropped, not handed on again.
 */
struct tgz {
	z_stream zs;
	unsigned char *in; /* GZ_IN */
	uint64_t coff;	   /* next compressed byte to read */
	uint64_t skip_to;
	bool eof;	   /* no more compressed input */
	bool ended;	   /* the last member's end was reached */
};

/* A content we read up to end: identified by its first fp_len bytes. */
struct done_content {
	uint64_t fp;
	size_t fp_len;
	uint64_t end;
};
/* A restore under fast rotation finishes dozens of generations in a row; a
 * copy of each may turn up among the siblings (compressed) a while later. */
#define DONE_MAX 256

struct ingest_tail {
	struct ev_loop *loop;
	char *pattern;
	char *dir_pattern;  /* the pattern's directory part */
	char *base_pattern; /* its last component */
	bool dir_magic;	    /* the directory part is itself a glob */
	bool base_magic;    /* the last component is a glob: its folder is listed */
	struct ingest_tail_cbs cbs;
	size_t max_line, chunk;
	double stat_interval, glob_interval, rotate_wait;
	bool from_beginning;
	bool initial; /* the first scan: existing files start at their end */
	int64_t state_time_us; /* opts.state_time_us */
	/* A checkpoint of this pattern exists and none of its records was
	 * dropped: a file it does not name appeared since, and is read from 0
	 * after its siblings modified since (whatever from_beginning says). */
	bool new_since_ckpt;
	char *rbuf;   /* chunk bytes; lines are views into it */

	int ifd; /* inotify, or -1 */
	ev_io iw;
	ev_timer stat_w, glob_w;
	int *dir_wds;
	size_t ndirs, dirs_cap;
	bool dirs_missing; /* no directory of the pattern exists (yet) */
	bool watch_failed; /* some watch could not be added: poll harder */
	bool warned_watch;
	bool denied; /* a folder of the pattern is closed to us (reported once) */

	struct tfile *files;
	char *ignored[IGNORED_MAX]; /* names already reported (first_report) */
	size_t nignored;
	bool warned_ignored;

	/* The last contents read to their end (or until truncated): a copy or
	 * generation of one of them met among the siblings is not read again. */
	struct done_content done[DONE_MAX];
	size_t ndone; /* entries written so far; the ring holds the last DONE_MAX */

	struct ingest_tail_stats st;
	uint64_t too_long_closed; /* too_long of files already closed */
	struct ingest_mark mark;  /* of the line being handed out */
};

/* ---------------------------------------------------------------------------
 * Small helpers.
 */

/* The fingerprint hash: 8 bytes a step (it runs before every read). */
static uint64_t fp_hash(const char *p, size_t n)
{
	uint64_t h = 0x9e3779b97f4a7c15ULL ^ n, w;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		memcpy(&w, p + i, 8);
		h = (h ^ w) * 0xff51afd7ed558ccdULL;
		h ^= h >> 32;
	}
	w = 0;
	memcpy(&w, p + i, n - i);
	h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
	return h ^ (h >> 29);
}

static ssize_t pread_all(int fd, char *buf, size_t n, uint64_t off)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = pread(fd, buf + got, n - got, (off_t)(off + got));
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

/*
 * Returns 1 if the file's first bytes are no longer those we fingerprinted
 * (it was truncated and rewritten), 0 if they are (then the fingerprint is
 * extended to min(size, FP_MAX) bytes), or -errno.
 */
static int fp_check(struct tfile *f, uint64_t size)
{
	char b[FP_MAX];
	size_t n = size < FP_MAX ? (size_t)size : FP_MAX;
	if (n < f->fp_len)
		return 1;
	if (n == f->fp_len && n < FP_MAX)
		return 0; /* nothing new to look at; size < off catches truncation */
	ssize_t r = pread_all(f->fd, b, n, 0);
	if (r < 0)
		return -errno;
	if ((size_t)r < f->fp_len)
		return 1;
	if (fp_hash(b, f->fp_len) != f->fp)
		return 1;
	f->fp = fp_hash(b, (size_t)r);
	f->fp_len = (size_t)r;
	return 0;
}

static bool has_magic(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] == '*' || s[i] == '?' || s[i] == '[' || s[i] == '\\')
			return true;
	return false;
}

static void schedule_read(struct tfile *f)
{
	/* A fired timer is pending, no longer active: do not start it twice. */
	if (!ev_is_active(&f->rd) && !ev_is_pending(&f->rd)) {
		ev_timer_set(&f->rd, 0., 0.);
		ev_timer_start(f->t->loop, &f->rd);
	}
}

static struct tfile *find_ino(struct ingest_tail *t, dev_t dev, ino_t ino)
{
	for (struct tfile *f = t->files; f; f = f->next)
		if (f->ino == ino && f->dev == dev)
			return f;
	return NULL;
}

/* The file currently followed under this name (not a draining one). */
static struct tfile *find_path(struct ingest_tail *t, const char *path)
{
	for (struct tfile *f = t->files; f; f = f->next)
		if (!f->draining && strcmp(f->path, path) == 0)
			return f;
	return NULL;
}

static bool is_dir_wd(const struct ingest_tail *t, int wd)
{
	for (size_t i = 0; i < t->ndirs; i++)
		if (t->dir_wds[i] == wd)
			return true;
	return false;
}

static void forget_dir_wd(struct ingest_tail *t, int wd)
{
	for (size_t i = 0; i < t->ndirs; i++)
		if (t->dir_wds[i] == wd) {
			t->dir_wds[i] = t->dir_wds[--t->ndirs];
			return;
		}
}

static void watch_failed(struct ingest_tail *t, const char *what, const char *path, int e)
{
	t->watch_failed = true;
	if (t->warned_watch)
		return;
	t->warned_watch = true;
	kl_log(KL_LOG_WARN,
	       "tail %s: cannot watch %s \"%s\" with inotify (%s); checking every %gs instead",
	       t->pattern, what, path,
	       e == ENOSPC ? "the inotify watch limit is reached: raise fs.inotify.max_user_watches"
			   : strerror(e),
	       t->stat_interval);
}

/*
 * True the first time a name is passed here: problems with a name (not a
 * regular file, cannot be opened) are logged once, not on every glob. At most
 * IGNORED_MAX names are remembered; past that nothing more is logged.
 */
static bool first_report(struct ingest_tail *t, const char *path)
{
	for (size_t i = 0; i < t->nignored; i++)
		if (strcmp(t->ignored[i], path) == 0)
			return false;
	if (t->nignored == IGNORED_MAX) {
		if (!t->warned_ignored)
			kl_log(KL_LOG_WARN, "tail %s: more problem matches; not logging them",
			       t->pattern);
		t->warned_ignored = true;
		return false;
	}
	char *copy = kl_strndup(path, strlen(path));
	if (!copy)
		return false;
	t->ignored[t->nignored++] = copy;
	return true;
}

/* A match that is not a regular file. */
static void note_ignored(struct ingest_tail *t, const char *path, mode_t mode)
{
	if (!first_report(t, path))
		return;
	kl_log(KL_LOG_WARN, "tail %s: ignoring \"%s\": %s, not a regular file", t->pattern, path,
	       S_ISDIR(mode)    ? "a directory"
	       : S_ISFIFO(mode) ? "a FIFO"
	       : S_ISSOCK(mode) ? "a socket"
				: "a device or other special file");
}

/* ---------------------------------------------------------------------------
 * Delivering lines.
 */

static void deliver(void *ctx, const char *line, size_t len)
{
	struct tfile *f = ctx;
	struct ingest_tail *t = f->t;
	/* A view into the chunk, or the splitter's copy of a line begun in an
	 * earlier chunk (or cut short at the end: flush). */
	if (f->chunk && line >= f->chunk && line <= f->chunk + f->chunk_len)
		t->mark = (struct ingest_mark){ f, f->chunk_off + (uint64_t)(line - f->chunk) };
	else
		t->mark = (struct ingest_mark){ f, f->chunk_off - f->held_before };
	t->st.lines++;
	t->cbs.line(t->cbs.ctx, line, len, f->read_us);
}

/* Split data read at file offset off into lines and hand them out. */
static int feed_chunk(struct tfile *f, const char *data, size_t len, uint64_t off)
{
	f->chunk = data;
	f->chunk_len = len;
	f->chunk_off = off;
	f->held_before = f->lines.len;
	uint64_t cut = f->lines.too_long;
	int rc = ingest_lines_feed(&f->lines, data, len, deliver, f);
	f->chunk = NULL;
	if (f->lines.too_long != cut && !f->warned_long) {
		/* Once per file: the count goes on in the stats. */
		f->warned_long = true;
		kl_log(KL_LOG_WARN,
		       "tail %s: \"%s\" (inode %llu) has a line longer than %zu bytes near offset "
		       "%llu; such lines are cut to their first %zu bytes (raise the source's "
		       "max_line to keep them whole); later ones are only counted",
		       f->t->pattern, f->path, (unsigned long long)f->ino, f->t->max_line,
		       (unsigned long long)off, f->t->max_line);
	}
	return rc;
}

/* Hand out a pending unterminated line (its file ends or restarts). */
static void flush_pending(struct tfile *f)
{
	if (f->lines.len == 0) {
		f->lines.skipping = false;
		return;
	}
	f->read_us = kl_wall_us();
	f->chunk = NULL;
	f->chunk_off = f->off;
	f->held_before = f->lines.len;
	ingest_lines_flush(&f->lines, deliver, f);
	if (f->t->cbs.batch)
		f->t->cbs.batch(f->t->cbs.ctx);
}

/* This file reached its end: a file waiting behind it may go on. */
static void release_waiter(struct tfile *f)
{
	struct tfile *w = f->waiter;
	if (!w)
		return;
	f->waiter = NULL;
	w->wait = NULL;
	schedule_read(w);
}

static void read_error(struct tfile *f, const char *what, int e)
{
	struct ingest_tail *t = f->t;
	t->st.read_errors++;
	if (!f->err_logged)
		kl_log(KL_LOG_ERROR, "tail %s: %s \"%s\" (inode %llu) at offset %llu: %s",
		       t->pattern, what, f->path, (unsigned long long)f->ino,
		       (unsigned long long)f->off, strerror(e));
	f->err_logged = true;
	/* Do not hold up the file behind it; reconcile retries on growth. */
	f->at_eof = true;
	release_waiter(f);
}

/* Remember a content read up to end (see struct done_content). */
static void remember_done(struct ingest_tail *t, uint64_t fp, size_t fp_len, uint64_t end)
{
	if (fp_len == 0)
		return;
	t->done[t->ndone++ % DONE_MAX] = (struct done_content){ fp, fp_len, end };
}

/* Defined with the restore code, whose sibling search they share. */
static bool drain_copy(struct tfile *f);
static void follow_intermediates(struct tfile *f, dev_t cur_dev, ino_t cur_ino);
static void follow_since(struct ingest_tail *t, const char *name, dev_t cur_dev, ino_t cur_ino,
			 int cur_fd, int64_t since_us, struct tfile *before, struct tfile *after);

static void truncated(struct tfile *f, uint64_t size)
{
	struct ingest_tail *t = f->t;
	t->st.truncations++;
	/* copytruncate: what we had not read yet is in the copy; read it there
	 * first (the partial line too, whole), then this file from 0. That is
	 * all of it when we had read nothing yet (waiting behind generations to
	 * read first), so the copy is looked for whenever we know first bytes. */
	bool copied = drain_copy(f);
	kl_log(KL_LOG_INFO,
	       "tail %s: \"%s\" (inode %llu) was truncated (size %llu, we were at %llu); "
	       "reading it again from the start%s",
	       t->pattern, f->path, (unsigned long long)f->ino, (unsigned long long)size,
	       (unsigned long long)f->off, copied ? ", after the rest of its copy" : "");
	if (copied) {
		f->lines.len = 0;
		f->lines.skipping = false;
	} else {
		flush_pending(f);
	}
	/* The old content is done with here: its copy, if read to where we
	 * were only, is known by this record; f is known by its new first
	 * bytes from now on (a short old fingerprint, of a file seen under
	 * 1 KiB, also starts copies of later contents of the same second). */
	remember_done(t, f->fp, f->fp_len, f->off);
	f->off = 0;
	f->fp = fp_hash("", 0);
	f->fp_len = 0;
	fp_check(f, size);
	f->emptied = f->fp_len == 0;
	f->at_eof = false;
	/* Truncated more than once since we last saw its content: the copies
	 * made in between come after that copy, before this file. */
	struct tfile *copy = f->wait;
	if (copy) {
		copy->waiter = NULL;
		f->wait = NULL;
	}
	follow_since(t, f->path, f->dev, f->ino, f->fd, f->content_ok_us - MTIME_SLACK_US, copy, f);
}

/*
 * f, seen empty after a truncation, has content now that we know nothing
 * of: if it was copied and truncated again in between (a logrotate every
 * few milliseconds outruns a busy loop), that copy is among the siblings,
 * modified since we last saw f's content, neither followed nor read. It is
 * read before f.
 */
static void copies_unseen(struct tfile *f)
{
	struct tfile *before = f->wait;
	if (before) {
		before->waiter = NULL;
		f->wait = NULL;
	}
	follow_since(f->t, f->path, f->dev, f->ino, f->fd, f->content_ok_us - MTIME_SLACK_US, before,
		     f);
}

/*
 * The content half of reconcile: did the file grow, or was it truncated (size
 * below our offset, or its first bytes changed: copytruncate and a rewrite
 * past our offset)? Also run before every read, so that a read already
 * scheduled cannot consume a rewritten file from the old offset. Returns true
 * if there is something to read at f->off.
 */
static bool check_content(struct tfile *f)
{
	struct stat fs;
	if (fstat(f->fd, &fs) < 0) {
		read_error(f, "fstat of", errno);
		return false;
	}
	uint64_t size = (uint64_t)fs.st_size;
	int64_t looked = kl_wall_us();
	/* Shorter than the bytes we fingerprinted: truncated, even at our
	 * offset (a file not read yet, copied and emptied by copytruncate, then
	 * left empty: its copy holds what we never read). */
	if (size < f->off || size < f->fp_len ||
	    (size > f->off && fp_check(f, size) == 1)) {
		truncated(f, size);
		return size > f->off;
	}
	if (f->emptied && size > 0) {
		f->emptied = false;
		copies_unseen(f);
	}
	f->content_ok_us = looked;
	return size > f->off;
}

/* ---------------------------------------------------------------------------
 * Compressed rotated files (restore only).
 */

static void close_file(struct tfile *f, bool flush);

static void gz_free(struct tgz *z)
{
	if (!z)
		return;
	inflateEnd(&z->zs);
	free(z->in);
	free(z);
}

static struct tgz *gz_new(uint64_t skip_to)
{
	struct tgz *z = calloc(1, sizeof *z);
	if (!z)
		return NULL;
	z->in = malloc(GZ_IN);
	/* 15 + 16: a gzip wrapper only (rotated logs are gzip files). */
	if (!z->in || inflateInit2(&z->zs, 15 + 16) != Z_OK) {
		free(z->in);
		free(z);
		return NULL;
	}
	z->skip_to = skip_to;
	return z;
}

/*
 * Inflate into out (up to cap bytes) from the gzip file fd, reading more input
 * as needed (at most one GZ_IN read per call). Concatenated members are read
 * on. Returns the bytes produced (0 with *done at the end), or -EIO for a
 * damaged or cut-short stream, or -errno from the read.
 */
static ssize_t gz_inflate(struct tgz *z, int fd, char *out, size_t cap, bool *done)
{
	bool read_once = false;
	*done = false;
	z->zs.next_out = (Bytef *)out;
	z->zs.avail_out = (uInt)cap;
	while (z->zs.avail_out > 0) {
		if (z->zs.avail_in == 0) {
			if (z->eof || read_once)
				break;
			ssize_t n = pread_all(fd, (char *)z->in, GZ_IN, z->coff);
			if (n < 0)
				return -errno;
			read_once = true;
			if (n == 0) {
				z->eof = true;
				break;
			}
			z->coff += (uint64_t)n;
			z->zs.next_in = z->in;
			z->zs.avail_in = (uInt)n;
		}
		if (z->ended) {
			/* More input after a member's end: the next member. */
			if (inflateReset(&z->zs) != Z_OK)
				return -EIO;
			z->ended = false;
		}
		int rc = inflate(&z->zs, Z_NO_FLUSH);
		if (rc == Z_STREAM_END)
			z->ended = true;
		else if (rc != Z_OK && !(rc == Z_BUF_ERROR && z->zs.avail_in == 0))
			return -EIO;
	}
	size_t got = cap - z->zs.avail_out;
	if (got == 0 && z->eof && z->zs.avail_in == 0) {
		*done = true;
		if (!z->ended)
			return -EIO; /* cut short inside a member */
	}
	return (ssize_t)got;
}

/* The first up to n uncompressed bytes of the gzip file fd (fewer if it is
 * shorter, or damaged past them), or -errno. */
static ssize_t gz_peek(int fd, char *out, size_t n)
{
	struct tgz *z = gz_new(0);
	size_t got = 0;
	bool done = false;
	if (!z)
		return -ENOMEM;
	while (got < n && !done) {
		ssize_t r = gz_inflate(z, fd, out + got, n - got, &done);
		if (r < 0)
			break;
		got += (size_t)r;
	}
	gz_free(z);
	return (ssize_t)got;
}

/* One slice of a compressed file; closes it at its end. */
static void read_gz(struct tfile *f)
{
	struct ingest_tail *t = f->t;
	struct tgz *z = f->gz;
	bool done = false;
	ssize_t n = gz_inflate(z, f->fd, t->rbuf, t->chunk, &done);
	if (n < 0) {
		t->st.read_errors++;
		kl_log(KL_LOG_ERROR,
		       "tail %s: the compressed rotated file of \"%s\" (inode %llu) is %s after "
		       "%llu uncompressed bytes; the lines before were read, the rest is lost",
		       t->pattern, f->path, (unsigned long long)f->ino,
		       n == -EIO ? "damaged or cut short" : strerror((int)-n),
		       (unsigned long long)f->off);
		close_file(f, true);
		return;
	}
	if (done) {
		kl_log(KL_LOG_INFO,
		       "tail %s: done with the compressed rotated file of \"%s\" (inode %llu) at "
		       "%llu uncompressed bytes",
		       t->pattern, f->path, (unsigned long long)f->ino, (unsigned long long)f->off);
		close_file(f, true);
		return;
	}
	uint64_t start = f->off;
	size_t drop = 0;
	if (start < z->skip_to)
		drop = z->skip_to - start < (uint64_t)n ? (size_t)(z->skip_to - start) : (size_t)n;
	f->off += (uint64_t)n;
	t->st.bytes += (uint64_t)n - drop;
	f->last_data = ev_now(t->loop);
	f->read_us = kl_wall_us();
	if ((size_t)n > drop &&
	    feed_chunk(f, t->rbuf + drop, (size_t)n - drop, start + drop) < 0 && !f->err_logged) {
		f->err_logged = true;
		kl_log(KL_LOG_ERROR, "tail %s: \"%s\": no memory for a partial line; it was dropped",
		       t->pattern, f->path);
	}
	if (t->cbs.batch)
		t->cbs.batch(t->cbs.ctx);
	f->at_eof = false;
	schedule_read(f);
}

static void read_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct tfile *f = w->data;
	struct ingest_tail *t = f->t;
	(void)loop;

	bool fresh = f->checked;
	f->checked = false;
	if (f->wait)
		return; /* scheduled again by release_waiter */
	if (f->gz) {
		read_gz(f);
		return;
	}
	if (!fresh && !check_content(f)) {
		f->at_eof = true;
		release_waiter(f);
		return;
	}
	if (f->wait)
		return; /* truncated, and its copy comes first */

	ssize_t n = pread(f->fd, t->rbuf, t->chunk, (off_t)f->off);
	if (n < 0) {
		if (errno == EINTR || errno == EAGAIN)
			schedule_read(f);
		else
			read_error(f, "reading", errno);
		return;
	}
	if (n == 0) {
		f->at_eof = true;
		release_waiter(f);
		return;
	}
	/* Truncated (and rewritten) while we read, copytruncate racing us? Then
	 * what we read may be new content at the old offset: drop it; the old
	 * content's rest comes from the copy, the new from 0 (truncated()). */
	uint64_t truncs = t->st.truncations;
	(void)check_content(f);
	if (t->st.truncations != truncs) {
		schedule_read(f);
		return;
	}
	uint64_t start = f->off;
	f->off += (uint64_t)n;
	t->st.bytes += (uint64_t)n;
	f->last_data = ev_now(t->loop);
	f->read_us = kl_wall_us();
	if (feed_chunk(f, t->rbuf, (size_t)n, start) < 0 && !f->err_logged) {
		f->err_logged = true;
		kl_log(KL_LOG_ERROR,
		       "tail %s: \"%s\": no memory for a partial line; it was dropped",
		       t->pattern, f->path);
	}
	if (t->cbs.batch)
		t->cbs.batch(t->cbs.ctx);
	if ((size_t)n == t->chunk) {
		/* Maybe more: one chunk per wake-up, then the others' turn. */
		f->at_eof = false;
		schedule_read(f);
	} else {
		f->at_eof = true;
		release_waiter(f);
	}
}

/* ---------------------------------------------------------------------------
 * Opening and closing.
 */

static void close_file(struct tfile *f, bool flush)
{
	struct ingest_tail *t = f->t;

	if (flush)
		flush_pending(f);
	remember_done(t, f->fp, f->fp_len, f->off);
	release_waiter(f);
	if (f->wait) {
		f->wait->waiter = NULL;
		f->wait = NULL;
	}
	ev_timer_stop(t->loop, &f->rd);
	if (f->wd >= 0 && t->ifd >= 0)
		inotify_rm_watch(t->ifd, f->wd);
	close(f->fd);
	gz_free(f->gz);
	t->too_long_closed += f->lines.too_long;
	ingest_lines_free(&f->lines);
	for (struct tfile **pp = &t->files; *pp; pp = &(*pp)->next)
		if (*pp == f) {
			*pp = f->next;
			break;
		}
	t->st.files_open--;
	free(f->path);
	free(f);
}

static void add_file_watch(struct tfile *f)
{
	struct ingest_tail *t = f->t;
	if (t->ifd < 0)
		return;
	/* Watch the inode we hold, not whatever the name names by now. */
	char proc[64];
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", f->fd);
	f->wd = inotify_add_watch(t->ifd, proc, FILE_MASK);
	if (f->wd < 0 && errno == ENOENT) /* no /proc */
		f->wd = inotify_add_watch(t->ifd, f->path, FILE_MASK);
	if (f->wd < 0)
		watch_failed(t, "file", f->path, errno);
}

/*
 * Follow the open regular file fd (identity st) found under path, from off.
 * A draining file (restored from a checkpoint: found under a rotated name)
 * keeps path as its name hint and is read to its end; otherwise a draining
 * file that had this name is read to its end before this one. Returns the
 * file, which owns fd, or NULL (no memory; fd is left to the caller).
 */
static struct tfile *track(struct ingest_tail *t, int fd, const struct stat *st, const char *path,
			   uint64_t off, bool draining)
{
	struct tfile *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->path = kl_strndup(path, strlen(path));
	if (!f->path || ingest_lines_init(&f->lines, t->max_line) < 0) {
		free(f->path);
		free(f);
		return NULL;
	}
	f->t = t;
	f->fd = fd;
	f->wd = -1;
	f->dev = st->st_dev;
	f->ino = st->st_ino;
	f->fp = fp_hash("", 0);
	f->off = off;
	f->draining = draining;
	f->last_data = ev_now(t->loop);
	f->name_ok_us = f->content_ok_us = kl_wall_us();
	ev_timer_init(&f->rd, read_cb, 0., 0.);
	f->rd.data = f;
	fp_check(f, (uint64_t)st->st_size);

	struct tfile **pp = &t->files;
	while (*pp)
		pp = &(*pp)->next;
	*pp = f;
	t->st.files_opened++;
	t->st.files_open++;
	add_file_watch(f);

	/* The newest draining file that had this name (the last of a chain of
	 * generations) is read to its end first. */
	struct tfile *before = NULL;
	for (struct tfile *o = t->files; o && !draining; o = o->next)
		if (o != f && o->draining && !o->waiter && strcmp(o->path, path) == 0)
			before = o;
	if (before) {
		before->waiter = f;
		f->wait = before;
		schedule_read(before);
	}
	if (f->off < (uint64_t)st->st_size || f->wait)
		schedule_read(f);
	return f;
}

/*
 * Open path and follow it from 0 or from its end. Returns the file (possibly
 * one already followed, if path names its inode under another name), or NULL
 * if it cannot be opened or is not a regular file.
 */
static struct tfile *open_file(struct ingest_tail *t, const char *path, bool from_end)
{
	struct stat st;
	struct tfile *f = NULL;

	/* O_NONBLOCK: opening a FIFO must not block the loop. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		int e = errno;
		if (e != ENOENT && e != ENOTDIR && first_report(t, path))
			kl_log(KL_LOG_ERROR, "tail %s: cannot open \"%s\": %s (retrying quietly)",
			       t->pattern, path, strerror(e));
		return NULL;
	}
	if (fstat(fd, &st) < 0)
		goto out;
	if (!S_ISREG(st.st_mode)) {
		note_ignored(t, path, st.st_mode);
		goto out;
	}
	f = find_ino(t, st.st_dev, st.st_ino);
	if (f)
		goto out;
	f = track(t, fd, &st, path, from_end ? (uint64_t)st.st_size : 0, false);
	if (!f)
		goto out;
	kl_log(KL_LOG_INFO, "tail %s: following \"%s\" (inode %llu) from offset %llu", t->pattern,
	       path, (unsigned long long)f->ino, (unsigned long long)f->off);
	return f;

out:
	close(fd);
	return f;
}

/* ---------------------------------------------------------------------------
 * Directories and globbing.
 */

static void watch_dir(struct ingest_tail *t, const char *dir)
{
	int wd = inotify_add_watch(t->ifd, dir, DIR_MASK);
	if (wd < 0) {
		if (errno != ENOENT && errno != ENOTDIR)
			watch_failed(t, "directory", dir, errno);
		return;
	}
	if (is_dir_wd(t, wd))
		return;
	if (t->ndirs == t->dirs_cap) {
		size_t cap = t->dirs_cap ? t->dirs_cap * 2 : 4;
		int *p = realloc(t->dir_wds, cap * sizeof(*p));
		if (!p) {
			inotify_rm_watch(t->ifd, wd);
			watch_failed(t, "directory", dir, ENOMEM);
			return;
		}
		t->dir_wds = p;
		t->dirs_cap = cap;
	}
	t->dir_wds[t->ndirs++] = wd;
}

/*
 * A folder we may not enter (or list, when the file name is a glob) hides
 * every file in it, and nothing else would say so: the files just never
 * appear. Typical of a sidecar whose user the log volume's owner did not
 * expect. Reported once when it starts and once when it ends.
 */
static bool dir_denied(struct ingest_tail *t, const char *dir, int stat_errno)
{
	int need = t->base_magic ? R_OK | X_OK : X_OK;
	int e = stat_errno;
	if (!e && faccessat(AT_FDCWD, dir, need, AT_EACCESS) < 0)
		e = errno;
	if (e != EACCES && e != EPERM)
		return false;
	if (!t->denied)
		kl_log(KL_LOG_ERROR,
		       "tail %s: the folder \"%s\" is closed to klaxon (uid %u, gid %u): %s; no file "
		       "in it is followed until it may %s it (give this user, or a group it is in, "
		       "read and search access; the compose stack's log-init service does)",
		       t->pattern, dir, (unsigned)geteuid(), (unsigned)getegid(), strerror(e),
		       t->base_magic ? "list and enter" : "enter");
	return true;
}

/* Watch every existing directory of the pattern; note when there is none,
 * and when one is closed to us. */
static void watch_dirs(struct ingest_tail *t)
{
	bool found = false, denied = false;
	if (!t->dir_magic) {
		struct stat st;
		int rc = stat(t->dir_pattern, &st);
		found = rc == 0 && S_ISDIR(st.st_mode);
		denied = (found || rc < 0) && dir_denied(t, t->dir_pattern, rc < 0 ? errno : 0);
		if (found && t->ifd >= 0)
			watch_dir(t, t->dir_pattern);
	} else {
		glob_t g;
		if (glob(t->dir_pattern, GLOB_ONLYDIR | GLOB_NOSORT, NULL, &g) == 0) {
			for (size_t i = 0; i < g.gl_pathc; i++) {
				struct stat st;
				if (stat(g.gl_pathv[i], &st) < 0 || !S_ISDIR(st.st_mode))
					continue;
				found = true;
				denied = dir_denied(t, g.gl_pathv[i], 0) || denied;
				if (t->ifd >= 0)
					watch_dir(t, g.gl_pathv[i]);
			}
		}
		globfree(&g);
	}
	if (t->denied && !denied)
		kl_log(KL_LOG_INFO, "tail %s: its folders are open to klaxon again", t->pattern);
	t->denied = denied;
	t->dirs_missing = !found;
}

/* A followed file is found under a new name that matches: follow it there. */
static void rename_file(struct tfile *f, const char *path)
{
	if (strcmp(f->path, path) != 0) {
		char *copy = kl_strndup(path, strlen(path));
		if (!copy)
			return; /* stays draining: closed later, nothing read twice */
		kl_log(KL_LOG_INFO, "tail %s: \"%s\" (inode %llu) is now \"%s\"", f->t->pattern,
		       f->path, (unsigned long long)f->ino, path);
		free(f->path);
		f->path = copy;
	}
	f->draining = false;
}

/*
 * At start, a file the checkpoint does not name: it appeared after the
 * checkpoint was written (a crash soon after its creation), so all of it is
 * new, and so are the generations it was rotated into since.
 */
static void open_new_since_checkpoint(struct ingest_tail *t, const char *path)
{
	struct tfile *f = open_file(t, path, false);
	if (f)
		follow_since(t, path, f->dev, f->ino, f->fd, t->state_time_us - MTIME_SLACK_US, NULL, f);
}

/* Find new matches of the pattern (and new names of draining files). */
static void scan(struct ingest_tail *t)
{
	glob_t g;
	watch_dirs(t);
	int rc = glob(t->pattern, 0, NULL, &g);
	if (rc != 0) {
		if (rc != GLOB_NOMATCH)
			kl_log(KL_LOG_DEBUG, "tail %s: glob failed (%d)", t->pattern, rc);
		globfree(&g);
		return;
	}
	for (size_t i = 0; i < g.gl_pathc; i++) {
		const char *path = g.gl_pathv[i];
		struct stat st;
		if (find_path(t, path))
			continue;
		if (stat(path, &st) < 0)
			continue;
		if (!S_ISREG(st.st_mode)) {
			note_ignored(t, path, st.st_mode);
			continue;
		}
		struct tfile *f = find_ino(t, st.st_dev, st.st_ino);
		if (f) {
			/* A file we follow, under a new name that still matches
			 * (a rotation into the pattern): keep following it. */
			if (f->draining)
				rename_file(f, path);
			continue;
		}
		if (t->initial && t->new_since_ckpt) {
			open_new_since_checkpoint(t, path);
			continue;
		}
		open_file(t, path, t->initial && !t->from_beginning);
	}
	globfree(&g);
}

/* ---------------------------------------------------------------------------
 * The one place that decides what happened.
 */

static void start_drain(struct tfile *f, const char *why)
{
	struct ingest_tail *t = f->t;
	t->st.rotations++;
	f->draining = true;
	f->last_data = ev_now(t->loop);
	kl_log(KL_LOG_INFO, "tail %s: \"%s\" (inode %llu) %s; reading it to its end", t->pattern,
	       f->path, (unsigned long long)f->ino, why);
	schedule_read(f); /* to its end, which releases the file behind it */
}

/* The last file of the chain of generations read after f. */
static struct tfile *chain_tail(struct tfile *f)
{
	while (f->waiter)
		f = f->waiter;
	return f;
}

/*
 * f was rotated and its name named the file ps when we looked: open what the
 * name names now. Under a logrotate that is fast next to us, the name may
 * have moved on again in between (ps renamed, even compressed, and a newer
 * file created): ps is a sibling by now, modified since we last saw the name
 * name f, and is read before the file opened, as any generation that came
 * and went between two looks.
 */
static void open_successor(struct tfile *f, const struct stat *ps)
{
	struct ingest_tail *t = f->t;
	struct tfile *g = open_file(t, f->path, false);
	if (g && ((g->dev == ps->st_dev && g->ino == ps->st_ino) || g->draining))
		return; /* the file we saw, or a generation followed already */
	/* g NULL: the name vanished meanwhile; ps may still be a sibling. */
	struct tfile *tail = chain_tail(f);
	if (g && g->wait) {
		g->wait->waiter = NULL; /* it waits behind the newcomers instead */
		g->wait = NULL;
		tail = chain_tail(f);
	}
	follow_since(t, f->path, g ? g->dev : 0, g ? g->ino : 0, g ? g->fd : -1,
		     f->name_ok_us - MTIME_SLACK_US, tail, g);
}

/* Returns false if f was closed. */
static bool reconcile_file(struct tfile *f)
{
	struct ingest_tail *t = f->t;
	struct stat ps;

	if (f->gz)
		return true; /* read to its end, then closed, by read_gz */
	if (check_content(f)) {
		f->checked = true;
		schedule_read(f);
	}

	if (!f->draining) {
		int64_t looked = kl_wall_us();
		if (stat(f->path, &ps) < 0) {
			if (errno == ENOENT || errno == ENOTDIR)
				start_drain(f, "was deleted or renamed away");
		} else if (ps.st_ino == f->ino && ps.st_dev == f->dev) {
			f->name_ok_us = looked;
		} else if (ps.st_ino != f->ino || ps.st_dev != f->dev) {
			start_drain(f, "was rotated");
			/* Generations that came and went since we last looked. */
			follow_intermediates(f, ps.st_dev, ps.st_ino);
			struct tfile *g = find_ino(t, ps.st_dev, ps.st_ino);
			if (g)
				rename_file(g, f->path); /* another followed file moved here */
			else if (S_ISREG(ps.st_mode))
				open_successor(f, &ps);
			else
				note_ignored(t, f->path, ps.st_mode);
		}
		return true;
	}

	/* Draining: close once at its end and quiet for rotate_wait. */
	if (f->at_eof && !ev_is_active(&f->rd) && !ev_is_pending(&f->rd) && !f->waiter &&
	    ev_now(t->loop) - f->last_data >= t->rotate_wait) {
		kl_log(KL_LOG_INFO, "tail %s: done with \"%s\" (inode %llu) at offset %llu",
		       t->pattern, f->path, (unsigned long long)f->ino, (unsigned long long)f->off);
		close_file(f, true);
		return false;
	}
	return true;
}

/*
 * Reconcile every file (all) or those an inotify event flagged, then look
 * for new matches (rescan).
 */
static void reconcile(struct ingest_tail *t, bool all, bool rescan)
{
	struct tfile *f = t->files, *next;
	for (; f; f = next) {
		next = f->next; /* a file opened meanwhile may be visited or not: harmless */
		if (!all && !f->check)
			continue;
		f->check = false;
		reconcile_file(f);
	}
	if (rescan)
		scan(t);
}

/* ---------------------------------------------------------------------------
 * Watchers.
 */

static void inotify_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ingest_tail *t = w->data;
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool any = false, all = false, rescan = false;
	(void)loop;

	/* One read per wake-up: the watcher is level-triggered, so events left
	 * in the queue bring us back on the next iteration. */
	ssize_t n = read(t->ifd, buf, sizeof buf);
	if (n <= 0) {
		if (n < 0 && errno != EINTR && errno != EAGAIN) {
			/* Cannot happen on a sane inotify fd; do not spin on it. */
			kl_log(KL_LOG_ERROR,
			       "tail %s: reading inotify events: %s; checking every %gs instead",
			       t->pattern, strerror(errno), t->stat_interval);
			ev_io_stop(t->loop, &t->iw);
			close(t->ifd);
			t->ifd = -1;
			for (struct tfile *f = t->files; f; f = f->next)
				f->wd = -1;
			t->ndirs = 0;
		}
		return;
	}
	for (char *p = buf; p < buf + n;) {
		const struct inotify_event *ev = (const struct inotify_event *)p;
		p += sizeof(*ev) + ev->len;
		if (ev->mask & IN_Q_OVERFLOW) {
			kl_log(KL_LOG_WARN, "tail %s: inotify queue overflow; checking all",
			       t->pattern);
			all = rescan = true;
			continue;
		}
		if (is_dir_wd(t, ev->wd)) {
			if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) {
				if (ev->mask & IN_MOVE_SELF)
					inotify_rm_watch(t->ifd, ev->wd);
				if (ev->mask & (IN_IGNORED | IN_MOVE_SELF))
					forget_dir_wd(t, ev->wd);
				all = rescan = true;
			} else if (ev->len &&
				   fnmatch(t->base_pattern, ev->name, FNM_PERIOD) == 0) {
				all = rescan = true;
			}
			continue;
		}
		if (ev->mask & IN_IGNORED)
			continue;
		for (struct tfile *f = t->files; f; f = f->next)
			if (f->wd == ev->wd) {
				f->check = true;
				any = true;
			}
	}
	if (any || all || rescan)
		reconcile(t, all, rescan);
}

static void stat_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ingest_tail *t = w->data;
	(void)loop;
	reconcile(t, true, t->dirs_missing || t->ifd < 0 || t->watch_failed);
}

static void glob_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ingest_tail *t = w->data;
	(void)loop;
	reconcile(t, true, true);
}

/* ---------------------------------------------------------------------------
 * Checkpoints: the position of every followed file, saved and restored.
 *
 * One line per file:
 *   file dev=D ino=I off=O fplen=N fp=HHHHHHHHHHHHHHHH skip=0|1 path=P
 * off is the first byte not handed on (the start of a pending partial line);
 * fp is fp_hash of the first fplen bytes; skip=1 means the splitter was
 * dropping the rest of an over-long line; P is the name the file was followed
 * under, with bytes <= ' ', >= 0x7f and '%' written as %XX.
 */

#define CKPT_MAX_RECORDS 100000

struct saved {
	char *path;
	uint64_t dev, ino, off, fp;
	size_t fp_len;
	bool skip;
	bool ignore;   /* not matched by the pattern any more */
	bool in_place; /* still under its name, at least as long as off */
};

static void saved_free(struct saved *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].path);
	free(v);
}

static int pct_append(struct kl_buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p <= ' ' || *p >= 0x7f || *p == '%') {
			char e[3] = { '%', hex[*p >> 4], hex[*p & 15] };
			if (kl_buf_append(b, e, 3) < 0)
				return -ENOMEM;
		} else if (kl_buf_append(b, p, 1) < 0) {
			return -ENOMEM;
		}
	}
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode a %XX-encoded path: no NUL, no raw blank or control byte. */
static int pct_decode(const char *s, size_t n, char **out)
{
	char *d = malloc(n + 1);
	size_t j = 0;
	if (!d)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '%') {
			if (i + 2 >= n)
				goto bad;
			int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				goto bad;
			d[j++] = (char)(hi << 4 | lo);
			i += 2;
		} else if (c <= ' ' || c == 0x7f) {
			goto bad;
		} else {
			d[j++] = (char)c;
		}
	}
	if (j == 0 || j >= PATH_MAX)
		goto bad;
	d[j] = '\0';
	*out = d;
	return 0;
bad:
	free(d);
	return -EINVAL;
}

/* Parse "KEY=value" at *p (value up to the next ' ' or the end of line). */
static int field(const char **p, const char *end, const char *key, struct kl_str *val)
{
	size_t kl = strlen(key);
	if ((size_t)(end - *p) < kl + 1 || memcmp(*p, key, kl) != 0 || (*p)[kl] != '=')
		return -EINVAL;
	const char *v = *p + kl + 1, *e = v;
	while (e < end && *e != ' ')
		e++;
	if (e == v)
		return -EINVAL;
	*val = (struct kl_str){ v, (size_t)(e - v) };
	*p = e < end ? e + 1 : e;
	return 0;
}

static int field_u64(const char **p, const char *end, const char *key, uint64_t *out)
{
	struct kl_str v;
	if (field(p, end, key, &v) < 0)
		return -EINVAL;
	return kl_parse_u64(v.p, v.len, out) < 0 ? -EINVAL : 0;
}

static int parse_hex64(struct kl_str v, uint64_t *out)
{
	if (v.len != 16)
		return -EINVAL;
	*out = 0;
	for (size_t i = 0; i < 16; i++) {
		int h = hexval(v.p[i]);
		if (h < 0)
			return -EINVAL;
		*out = *out << 4 | (uint64_t)h;
	}
	return 0;
}

static int parse_record(const char *s, const char *end, struct saved *r)
{
	static const char pfx[] = "file ";
	const char *p = s;
	uint64_t fplen, skip;
	struct kl_str v;

	memset(r, 0, sizeof(*r));
	if ((size_t)(end - p) < sizeof pfx - 1 || memcmp(p, pfx, sizeof pfx - 1) != 0)
		return -EINVAL;
	p += sizeof pfx - 1;
	if (field_u64(&p, end, "dev", &r->dev) < 0 || field_u64(&p, end, "ino", &r->ino) < 0 ||
	    field_u64(&p, end, "off", &r->off) < 0 || field_u64(&p, end, "fplen", &fplen) < 0 ||
	    fplen > FP_MAX || r->off > (uint64_t)INT64_MAX)
		return -EINVAL;
	r->fp_len = (size_t)fplen;
	if (field(&p, end, "fp", &v) < 0 || parse_hex64(v, &r->fp) < 0)
		return -EINVAL;
	if (field_u64(&p, end, "skip", &skip) < 0 || skip > 1)
		return -EINVAL;
	r->skip = skip == 1;
	/* path= is the rest of the line. */
	if ((size_t)(end - p) < 6 || memcmp(p, "path=", 5) != 0)
		return -EINVAL;
	p += 5;
	return pct_decode(p, (size_t)(end - p), &r->path);
}

/* "done fp=<16 hex> fplen=N end=E": a content read to its end (remember_done). */
static int parse_done(const char *s, const char *end, struct done_content *d)
{
	const char *p = s + 5;
	struct kl_str v;
	uint64_t fplen;
	if (field(&p, end, "fp", &v) < 0 || parse_hex64(v, &d->fp) < 0 ||
	    field_u64(&p, end, "fplen", &fplen) < 0 || fplen == 0 || fplen > FP_MAX ||
	    field_u64(&p, end, "end", &d->end) < 0 || p != end)
		return -EINVAL;
	d->fp_len = (size_t)fplen;
	return 0;
}

static bool is_done_record(const char *p, const char *le)
{
	return le - p > 5 && memcmp(p, "done ", 5) == 0;
}

/*
 * Parse checkpoint records: file records into *out, done records into
 * done[] (the last DONE_MAX kept, oldest first; *ndone how many were read).
 * On error *bad_line is the 1-based line.
 */
static int parse_state(const char *data, size_t len, struct saved **out, size_t *nout,
		       struct done_content done[DONE_MAX], size_t *ndone, size_t *bad_line)
{
	struct saved *v = NULL;
	size_t n = 0, cap = 0, line = 0;
	const char *p = data, *end = data + len;
	int rc = 0;

	*ndone = 0;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		line++;
		if (is_done_record(p, le)) {
			if ((rc = parse_done(p, le, &done[*ndone % DONE_MAX])) < 0)
				goto fail;
			++*ndone;
			p = nl ? nl + 1 : end;
			continue;
		}
		if (n == CKPT_MAX_RECORDS) {
			rc = -E2BIG;
			goto fail;
		}
		if (n == cap) {
			size_t c = cap ? cap * 2 : 8;
			struct saved *nv = realloc(v, c * sizeof(*nv));
			if (!nv) {
				rc = -ENOMEM;
				goto fail;
			}
			v = nv;
			cap = c;
		}
		rc = parse_record(p, le, &v[n]);
		if (rc < 0)
			goto fail;
		n++;
		p = nl ? nl + 1 : end;
	}
	*out = v;
	*nout = n;
	return 0;
fail:
	if (bad_line)
		*bad_line = line;
	saved_free(v, n);
	return rc;
}

int ingest_tail_state_check(const char *data, size_t len, size_t *bad_line)
{
	struct saved *v = NULL;
	struct done_content done[DONE_MAX];
	size_t n = 0, ndone = 0;
	int rc = parse_state(data, len, &v, &n, done, &ndone, bad_line);
	if (rc == 0)
		saved_free(v, n);
	return rc;
}

void ingest_tail_line_mark(const struct ingest_tail *t, struct ingest_mark *out)
{
	*out = t->mark;
}

int ingest_tail_save(const struct ingest_tail *t, struct kl_buf *out)
{
	return ingest_tail_save_held(t, out, NULL, 0);
}

/* What a checkpoint says was handed on of f: a compressed file not read
 * past the part a restore resumed it at yet still counts that part. */
static uint64_t saved_offset(const struct tfile *f)
{
	uint64_t off = f->off - f->lines.len;
	return f->gz && f->gz->skip_to > off ? f->gz->skip_to : off;
}

/* The done ring, oldest first: after a restart, a generation read to its end
 * and closed before the checkpoint, but renamed, copied or compressed since
 * (its mtime then says "modified after the checkpoint"), is not read again. */
static int save_done(const struct ingest_tail *t, struct kl_buf *out)
{
	size_t n = t->ndone < DONE_MAX ? t->ndone : DONE_MAX;
	for (size_t i = t->ndone - n; i < t->ndone; i++) {
		const struct done_content *d = &t->done[i % DONE_MAX];
		if (kl_buf_appendf(out, "done fp=%016llx fplen=%zu end=%llu\n",
				   (unsigned long long)d->fp, d->fp_len,
				   (unsigned long long)d->end) < 0)
			return -ENOMEM;
	}
	return 0;
}

int ingest_tail_save_held(const struct ingest_tail *t, struct kl_buf *out,
			  const struct ingest_mark *held, size_t nheld)
{
	size_t mark = out->len;
	if (save_done(t, out) < 0) {
		out->len = mark;
		return -ENOMEM;
	}
	for (const struct tfile *f = t->files; f; f = f->next) {
		/* The pending partial line was not handed on: it is read again. */
		uint64_t off = saved_offset(f);
		bool skip = f->lines.skipping;
		for (size_t i = 0; i < nheld; i++)
			if (held[i].file == f && held[i].off < off) {
				off = held[i].off; /* a line start: nothing to skip */
				skip = false;
			}
		if (kl_buf_appendf(out,
				   "file dev=%llu ino=%llu off=%llu fplen=%zu fp=%016llx skip=%d "
				   "path=",
				   (unsigned long long)f->dev, (unsigned long long)f->ino,
				   (unsigned long long)off, f->fp_len, (unsigned long long)f->fp,
				   skip ? 1 : 0) < 0 ||
		    pct_append(out, f->path) < 0 || kl_buf_append(out, "\n", 1) < 0) {
			out->len = mark;
			return -ENOMEM;
		}
	}
	return 0;
}

int ingest_tail_position(const struct ingest_tail *t, uint64_t dev, uint64_t ino, uint64_t *off)
{
	for (const struct tfile *f = t->files; f; f = f->next)
		if ((uint64_t)f->dev == dev && (uint64_t)f->ino == ino) {
			*off = saved_offset(f); /* as ingest_tail_save says */
			return 0;
		}
	return -ENOENT;
}

int ingest_tail_record_position(const char *rec, size_t len, uint64_t dev, uint64_t ino,
				uint64_t *off)
{
	struct saved r;
	int rc = parse_record(rec, rec + len, &r);
	if (rc < 0)
		return rc == -ENOMEM ? rc : -EINVAL;
	free(r.path);
	if (r.dev != dev || r.ino != ino)
		return -ENOENT;
	*off = r.off;
	return 0;
}

/* Is the open file (of size size) the saved one, read up to r->off? */
static bool same_content(int fd, uint64_t size, const struct saved *r)
{
	char b[FP_MAX];
	if (size < r->off || size < r->fp_len)
		return false;
	ssize_t n = pread_all(fd, b, r->fp_len, 0);
	return n == (ssize_t)r->fp_len && fp_hash(b, r->fp_len) == r->fp;
}

static bool compressed_name(const char *name)
{
	static const char *const ext[] = { ".gz", ".bz2", ".xz", ".zst" };
	size_t n = strlen(name);
	for (size_t i = 0; i < KL_ARRAY_LEN(ext); i++) {
		size_t e = strlen(ext[i]);
		if (n > e && strcmp(name + n - e, ext[i]) == 0)
			return true;
	}
	return false;
}

/*
 * Restoring a name whose file moved while we were stopped. The rotated
 * siblings of NAME (NAME.*, NAME-*: logrotate's numbered and dateext names,
 * plain or gzip) are listed with their mtimes; each saved record not at its
 * name is located among them (by identity and first bytes, or by first bytes
 * alone: a copy, or a compressed one). Every sibling at least as new as the
 * oldest located one (rotated after it: generations a writer filled while we
 * were stopped) is then read, oldest first, each to its end before the next,
 * the located ones from their saved offsets, the others from 0; the file now
 * under the name comes last. Older siblings were read before the stop.
 */
struct sib {
	char path[PATH_MAX];
	dev_t dev;
	ino_t ino;
	struct timespec mtime;
	uint64_t size;
	bool gz;
	const struct saved *rec; /* the saved record located here, or NULL */
	int fd;			 /* open since the listing: logrotate may rename it meanwhile */
	int rank;		 /* 2: identity and content, 1: content only */
	/* Its first bytes (uncompressed), read once when first compared: a
	 * restore ranks every sibling against every record. -1: not read. */
	ssize_t head_len;
	char head[FP_MAX];
};

static int64_t sib_mtime_us(const struct sib *c)
{
	return (int64_t)c->mtime.tv_sec * 1000000 + c->mtime.tv_nsec / 1000;
}

static bool is_gz_name(const char *name)
{
	size_t n = strlen(name);
	return n > 3 && strcmp(name + n - 3, ".gz") == 0;
}

static int by_mtime(const void *a, const void *b)
{
	const struct sib *x = a, *y = b;
	if (x->mtime.tv_sec != y->mtime.tv_sec)
		return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
	if (x->mtime.tv_nsec != y->mtime.tv_nsec)
		return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : 1;
	return strcmp(y->path, x->path); /* NAME.2 before NAME.1 */
}

static void split_path(const char *path, char dir[PATH_MAX], const char **base)
{
	const char *slash = strrchr(path, '/');
	*base = slash ? slash + 1 : path;
	if (!slash) {
		memcpy(dir, ".", 2);
	} else if (slash == path) {
		memcpy(dir, "/", 2);
	} else {
		size_t d = (size_t)(slash - path);
		memcpy(dir, path, d);
		dir[d] = '\0';
	}
}

static const char *sib_head(struct sib *c)
{
	if (c->head_len < 0) {
		size_t want = c->size < FP_MAX ? (size_t)c->size : FP_MAX;
		ssize_t n = c->gz ? gz_peek(c->fd, c->head, FP_MAX)
				  : pread_all(c->fd, c->head, want, 0);
		c->head_len = n < 0 ? 0 : n;
	}
	return c->head;
}

/* Does the sibling start with the bytes r was fingerprinted on? */
static bool sib_starts_as(struct sib *c, const struct saved *r)
{
	const char *h = sib_head(c);
	return (size_t)c->head_len >= r->fp_len && fp_hash(h, r->fp_len) == r->fp;
}

/* Is this open sibling the saved file r? 2, 1 (see struct sib) or 0. */
static int sib_rank(struct sib *c, const struct saved *r)
{
	if (c->gz) /* compressed meanwhile: only its first bytes can tell */
		return r->fp_len > 0 && sib_starts_as(c, r) ? 1 : 0;
	if (c->size < r->off || c->size < r->fp_len || !sib_starts_as(c, r))
		return 0;
	if ((uint64_t)c->dev == r->dev && (uint64_t)c->ino == r->ino)
		return 2;
	return r->fp_len > 0 ? 1 : 0;
}

static void sibs_free(struct sib *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		close(v[i].fd);
	free(v);
}

static bool sib_listed(const struct sib *v, size_t n, dev_t dev, ino_t ino)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].dev == dev && v[i].ino == ino)
			return true;
	return false;
}

/* Room for one more sibling in *v. */
static int sib_reserve(struct sib **v, size_t n, size_t *cap)
{
	if (n < *cap)
		return 0;
	size_t c = *cap ? *cap * 2 : 16;
	struct sib *nv = realloc(*v, c * sizeof *nv);
	if (!nv)
		return -ENOMEM;
	*v = nv;
	*cap = c;
	return 0;
}

/* One readdir pass over dir: add the siblings of base not listed yet.
 * Returns how many were added, or -ENOMEM. */
static int list_pass(struct ingest_tail *t, const char *dir, const char *base, dev_t cur_dev,
		     ino_t cur_ino, struct sib **v, size_t *n, size_t *cap)
{
	size_t blen = strlen(base), before = *n;
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL && *n < SIBLINGS_MAX) {
		const char *nm = de->d_name;
		if (strncmp(nm, base, blen) != 0 || (nm[blen] != '.' && nm[blen] != '-') ||
		    nm[blen + 1] == '\0')
			continue;
		bool gz = is_gz_name(nm);
		size_t nl = strlen(nm);
		if ((compressed_name(nm) && !gz) || (nl > 4 && strcmp(nm + nl - 4, ".tmp") == 0))
			continue; /* bzip2, xz, zstd: not read here; NAME.1.gz.tmp: a compressor's */
		if (sib_reserve(v, *n, cap) < 0) {
			closedir(d);
			return -ENOMEM;
		}
		struct sib *c = &(*v)[*n];
		memset(c, 0, sizeof *c);
		int w = snprintf(c->path, sizeof c->path, "%s/%s", dir, nm);
		struct stat st;
		/* Opened now, and known by this fd from here on: names shift under
		 * a logrotate running meanwhile (NAME.1 becomes NAME.2). */
		c->fd = w < 0 || (size_t)w >= sizeof c->path
				? -1
				: open(c->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY | O_NOFOLLOW);
		if (c->fd < 0)
			continue;
		if (fstat(c->fd, &st) < 0 || !S_ISREG(st.st_mode) ||
		    (st.st_dev == cur_dev && st.st_ino == cur_ino) || find_ino(t, st.st_dev, st.st_ino) ||
		    sib_listed(*v, *n, st.st_dev, st.st_ino)) {
			close(c->fd);
			continue;
		}
		c->dev = st.st_dev;
		c->ino = st.st_ino;
		c->mtime = st.st_mtim;
		c->size = (uint64_t)st.st_size;
		c->gz = gz;
		c->head_len = -1;
		(*n)++;
	}
	closedir(d);
	return (int)(*n - before);
}

/* Is NAME (gz's path less ".gz") still a regular file? The listing leaves
 * out the files we follow, so the twin may be on disk but not in it. */
static bool plain_twin_on_disk(const struct sib *gz)
{
	char plain[PATH_MAX];
	size_t len = strlen(gz->path) - 3;
	struct stat st;
	memcpy(plain, gz->path, len);
	plain[len] = '\0';
	return stat(plain, &st) == 0 && S_ISREG(st.st_mode);
}

/* NAME.1.gz next to NAME.1 (listed, or followed by us): gzip is still at
 * work, the .gz may be half written; the plain one counts. */
static void drop_compressing(struct sib *v, size_t *n)
{
	for (size_t i = 0; i < *n;) {
		bool dup = false;
		size_t len = strlen(v[i].path);
		for (size_t k = 0; v[i].gz && k < *n && !dup; k++)
			dup = k != i && !v[k].gz && strlen(v[k].path) == len - 3 &&
			      memcmp(v[k].path, v[i].path, len - 3) == 0;
		if (!dup && v[i].gz)
			dup = plain_twin_on_disk(&v[i]);
		if (dup) {
			close(v[i].fd);
			v[i] = v[--*n];
		} else {
			i++;
		}
	}
}

/*
 * The regular-file siblings of path, not followed already and not the file
 * now under the name (cur). Heap array in *out (free it), or -ENOMEM.
 *
 * readdir over a directory whose entries are renamed meanwhile (a logrotate
 * shifting NAME.1 … NAME.500 every few milliseconds) may skip an entry moved
 * behind the cursor. Passes are repeated, each adding what the others missed
 * (known by inode, its fd held), until one finds nothing new.
 */
static int list_siblings(struct ingest_tail *t, const char *path, dev_t cur_dev, ino_t cur_ino,
			 struct sib **out, size_t *nout)
{
	char dir[PATH_MAX];
	const char *base;
	size_t n = 0, cap = 0;
	struct sib *v = NULL;
	split_path(path, dir, &base);
	*out = NULL;
	*nout = 0;
	for (int pass = 0; pass < SIBLING_PASSES; pass++) {
		int added = list_pass(t, dir, base, cur_dev, cur_ino, &v, &n, &cap);
		if (added < 0) {
			sibs_free(v, n);
			return -ENOMEM;
		}
		if (added == 0 && pass > 0)
			break;
	}
	drop_compressing(v, &n);
	*out = v;
	*nout = n;
	return 0;
}

/* Follow sibling c under the name path, from off, behind prev (if any). */
static struct tfile *follow_sibling(struct ingest_tail *t, const struct sib *c, const char *path,
				    const struct saved *r, struct tfile *prev, const char *why)
{
	int fd = dup(c->fd);
	struct stat st;
	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) < 0 || st.st_dev != c->dev || st.st_ino != c->ino) {
		close(fd);
		return NULL;
	}
	uint64_t off = r ? r->off : 0;
	struct tgz *z = NULL;
	if (c->gz && !(z = gz_new(off))) {
		close(fd);
		return NULL;
	}
	/* A compressed file is read from its start, its saved part dropped. */
	struct tfile *f = track(t, fd, &st, path, c->gz ? 0 : off, true);
	if (!f) {
		gz_free(z);
		close(fd);
		return NULL;
	}
	if (z) {
		char b[FP_MAX];
		ssize_t n = gz_peek(fd, b, FP_MAX);
		f->gz = z;
		f->fp_len = n > 0 ? (size_t)n : 0;
		f->fp = fp_hash(b, f->fp_len);
		if (f->wd >= 0 && t->ifd >= 0)
			inotify_rm_watch(t->ifd, f->wd); /* nobody appends to it */
		f->wd = -1;
	}
	if (r)
		f->lines.skipping = r->skip;
	if (prev) {
		prev->waiter = f;
		f->wait = prev;
	}
	schedule_read(f);
	t->st.rotations++;
	kl_log(KL_LOG_INFO,
	       "tail %s: reading \"%s\"%s, a generation of \"%s\" %s, from offset %llu, before "
	       "what follows it",
	       t->pattern, c->path, c->gz ? " (compressed)" : "", path, why,
	       (unsigned long long)off);
	return f;
}

/* Every record of path that moved away is among the siblings listed. */
static bool all_located(struct sib *sibs, size_t ns, const struct saved *v, size_t n,
			const char *path)
{
	for (size_t i = 0; i < n; i++) {
		const struct saved *r = &v[i];
		bool found = false;
		if (r->ignore || r->in_place || strcmp(r->path, path) != 0)
			continue;
		for (size_t k = 0; k < ns && !found; k++)
			found = sib_rank(&sibs[k], r) > 0;
		if (!found)
			return false;
	}
	return true;
}

static void restore_lost(struct ingest_tail *t, const struct saved *r, bool in_place_ino)
{
	kl_log(KL_LOG_WARN,
	       "tail %s: \"%s\" (inode %llu, checkpoint offset %llu) was %s while we were "
	       "stopped and is not among its siblings (NAME.*, NAME-*, plain or .gz); whatever it "
	       "held past that offset is lost",
	       t->pattern, r->path, (unsigned long long)r->ino, (unsigned long long)r->off,
	       in_place_ino ? "truncated or rewritten" : "rotated or removed");
}

/*
 * Of two siblings that start as r, is c likelier r's copy than best? With
 * a fingerprint of FP_MAX bytes, the newer is: older generations may share
 * first bytes. A shorter one (the file was smaller when we last looked)
 * also starts the copies of later contents written in the same second (log
 * lines share their first tens of bytes, timestamp included): then the
 * oldest made since we last saw r's content (seen_us) is; the later ones
 * hold what came after it.
 */
static bool likelier_copy(const struct sib *c, const struct sib *best, const struct saved *r,
			  int64_t seen_us)
{
	if (!best)
		return true;
	if (r->fp_len >= FP_MAX)
		return by_mtime(c, best) > 0;
	bool c_since = sib_mtime_us(c) > seen_us, best_since = sib_mtime_us(best) > seen_us;
	if (c_since != best_since)
		return c_since;
	return c_since ? by_mtime(c, best) < 0 : by_mtime(c, best) > 0;
}

/* The file of f's name's copy: f truncated by copytruncate. Found among the
 * siblings by f's first bytes (plain or compressed), it is read from where we
 * were to its end, before f from 0. True if there is one with more to read. */
static bool drain_copy(struct tfile *f)
{
	struct ingest_tail *t = f->t;
	struct saved r = { .path = f->path, .dev = (uint64_t)f->dev, .ino = (uint64_t)f->ino,
			   .off = f->off - f->lines.len, .fp = f->fp, .fp_len = f->fp_len,
			   .skip = f->lines.skipping };
	struct sib *sibs = NULL, *best = NULL;
	size_t ns = 0;
	if (f->gz || r.fp_len == 0 || list_siblings(t, f->path, f->dev, f->ino, &sibs, &ns) < 0)
		return false;
	int64_t seen_us = f->content_ok_us - MTIME_SLACK_US;
	for (size_t k = 0; k < ns; k++)
		if (sib_rank(&sibs[k], &r) > 0 && likelier_copy(&sibs[k], best, &r, seen_us))
			best = &sibs[k];
	struct tfile *copy = NULL;
	if (best && (best->gz || best->size > r.off)) {
		/* f waits for it: it is read before f's new content, after the
		 * generations f was waiting for (a restore's, still draining). */
		struct tfile *before = f->wait;
		if (before) {
			before->waiter = NULL;
			f->wait = NULL;
		}
		copy = follow_sibling(t, best, f->path, &r, before, "copied before a truncation");
		if (copy) {
			release_waiter(f);
			copy->waiter = f;
			f->wait = copy;
		} else if (before) {
			before->waiter = f;
			f->wait = before;
		}
	}
	sibs_free(sibs, ns);
	return copy != NULL;
}

/* A sibling holding a content we read to its end already: a copy made
 * before a truncation we had caught up with, or a finished generation (plain,
 * no longer than what we read; or compressed meanwhile). */
static bool already_read(struct ingest_tail *t, struct sib *c)
{
	size_t n = t->ndone < DONE_MAX ? t->ndone : DONE_MAX;
	const char *head = sib_head(c);
	size_t hashed_len = SIZE_MAX; /* the head's hash, for the length last asked */
	uint64_t h = 0;
	for (size_t i = 0; i < n; i++) {
		const struct done_content *d = &t->done[i];
		if ((!c->gz && c->size > d->end) || (size_t)c->head_len < d->fp_len)
			continue;
		if (d->fp_len != hashed_len) {
			hashed_len = d->fp_len;
			h = fp_hash(head, hashed_len);
		}
		if (h == d->fp) {
			kl_log(KL_LOG_DEBUG,
			       "tail %s: \"%s\" starts as a content read to offset %llu (its first "
			       "%zu bytes)",
			       t->pattern, c->path, (unsigned long long)d->end, d->fp_len);
			return true;
		}
	}
	return false;
}

/* A sibling holding a file we follow under the same name (compressed meanwhile,
 * or copied): its first bytes are that file's. Not a generation of its own.
 * A file fingerprinted under FP_MAX bytes is matched by a sibling of exactly
 * those bytes only: its short start is also the start of other contents. */
static bool copy_of_followed(struct ingest_tail *t, struct sib *c, const char *path)
{
	bool copy = false;
	for (struct tfile *o = t->files; o && !copy; o = o->next) {
		struct saved r = { .fp = o->fp, .fp_len = o->fp_len };
		copy = !o->gz && strcmp(o->path, path) == 0 && sib_rank(c, &r) > 0 &&
		       (o->fp_len >= FP_MAX || (size_t)c->head_len == o->fp_len);
	}
	return copy;
}

/*
 * f's name names another file now: a generation that was under the name
 * only between two of our looks (rotated again before we saw it) is among
 * the siblings, modified since we last saw the name name f. Those are read
 * after f, oldest first, each to its end; the file now under the name waits
 * for the last (track()).
 */
static void follow_intermediates(struct tfile *f, dev_t cur_dev, ino_t cur_ino)
{
	/* f's waiter (if any) moves to the end of the chain. */
	struct tfile *after = f->waiter;
	if (after) {
		f->waiter = NULL;
		after->wait = NULL;
	}
	follow_since(f->t, f->path, cur_dev, cur_ino, -1, f->name_ok_us - MTIME_SLACK_US, f, after);
}

/*
 * Is c the compressed copy of the file a restore holds open (cur_fd, to be
 * followed under the name), renamed and compressed since we opened it? Then
 * the plain file is unlinked and we read it whole through cur_fd: the copy
 * would be read twice. (A plain copy of a file still linked: copy_of_current.)
 */
static bool compressed_copy_of_held(int cur_fd, struct sib *c)
{
	struct stat st;
	char b[FP_MAX];
	if (cur_fd < 0 || !c->gz || fstat(cur_fd, &st) < 0 || st.st_nlink > 0)
		return false;
	ssize_t n = pread_all(cur_fd, b, sizeof b, 0);
	if (n <= 0)
		return false;
	struct saved head = { .fp = fp_hash(b, (size_t)n), .fp_len = (size_t)n };
	return sib_rank(c, &head) > 0;
}

/*
 * Is c a copy of what the file now under the name (cur_fd) holds: a
 * copytruncate copying it right now, or done copying but not truncated yet?
 * Its bytes are read in that file, and the rest of them in c once the
 * truncation comes (drain_copy): read from c as well, they would come twice.
 * (Once truncated, that file starts otherwise: c is a generation then.)
 */
static bool copy_of_current(int cur_fd, struct sib *c)
{
	if (cur_fd < 0 || c->gz)
		return false;
	const char *head = sib_head(c);
	if (c->head_len <= 0)
		return false;
	char b[FP_MAX];
	ssize_t n = pread_all(cur_fd, b, (size_t)c->head_len, 0);
	return n == c->head_len && memcmp(b, head, (size_t)n) == 0;
}

/* A sibling whose bytes we read through the file now under the name. */
static bool read_through_current(int cur_fd, struct sib *c)
{
	return compressed_copy_of_held(cur_fd, c) || copy_of_current(cur_fd, c);
}

/* Why follow_since leaves sibling c of name alone, or NULL if it does not. */
static const char *passed_over(struct ingest_tail *t, struct sib *c, const char *name,
			       int cur_fd, int64_t since_us)
{
	if (sib_mtime_us(c) <= since_us)
		return "not modified since";
	if (copy_of_followed(t, c, name))
		return "a copy of a file followed";
	if (already_read(t, c))
		return "its content was read to its end";
	if (read_through_current(cur_fd, c))
		return "a copy of the file under the name";
	return NULL;
}

/*
 * The generations of name modified after since_us that we do not follow,
 * read oldest first, each to its end: after `before` (if any), and before
 * `after` (if any, which must not be waiting for anything). cur_fd: the file
 * now under the name, open, or -1 (see read_through_current).
 */
static void follow_since(struct ingest_tail *t, const char *name, dev_t cur_dev, ino_t cur_ino,
			 int cur_fd, int64_t since_us, struct tfile *before, struct tfile *after)
{
	struct sib *sibs = NULL;
	size_t ns = 0, keep = 0;
	struct tfile *prev = before;
	if (list_siblings(t, name, cur_dev, cur_ino, &sibs, &ns) == 0) {
		for (size_t k = 0; k < ns; k++) {
			const char *why = passed_over(t, &sibs[k], name, cur_fd, since_us);
			if (!why) {
				sibs[keep++] = sibs[k];
				continue;
			}
			if (sib_mtime_us(&sibs[k]) > since_us - 1000000) /* near misses too */
				kl_log(KL_LOG_DEBUG, "tail %s: \"%s\" (inode %llu, %llu bytes) not read: %s",
				       t->pattern, sibs[k].path, (unsigned long long)sibs[k].ino,
				       (unsigned long long)sibs[k].size, why);
			close(sibs[k].fd);
		}
		if (keep > 1)
			qsort(sibs, keep, sizeof *sibs, by_mtime);
		for (size_t k = 0; k < keep; k++) {
			struct tfile *g =
				follow_sibling(t, &sibs[k], name, NULL, prev, "rotated between two looks");
			if (g)
				prev = g;
		}
		sibs_free(sibs, keep);
	}
	if (after && prev) {
		prev->waiter = after;
		after->wait = prev;
	}
}

/*
 * Record r located nowhere: is there a plain copy that starts as r but ends
 * before r's offset? Then copytruncate copied r's content and lost what was
 * written between the copy and the truncation; we had read all of the copy
 * and more (the checkpoint, written before we saw the truncation, could not
 * know it, and the copy may even look newer than it). The content goes to
 * the done ring: the copy is not read again (already_read), and nothing is
 * lost.
 */
static bool copy_read_past(struct ingest_tail *t, struct sib *sibs, size_t ns,
			   const struct saved *r)
{
	for (size_t k = 0; k < ns; k++) {
		struct sib *c = &sibs[k];
		if (c->gz || c->rec || r->fp_len == 0 || c->size >= r->off || c->size < r->fp_len ||
		    !sib_starts_as(c, r))
			continue;
		remember_done(t, r->fp, r->fp_len, r->off);
		kl_log(KL_LOG_INFO,
		       "tail %s: \"%s\" is the copy of \"%s\" (inode %llu) the checkpoint names, "
		       "but ends at %llu, before its offset %llu: read already (the lines written "
		       "between the copy and the truncation were lost by the rotation, after we "
		       "read them)",
		       t->pattern, c->path, r->path, (unsigned long long)r->ino,
		       (unsigned long long)c->size, (unsigned long long)r->off);
		return true;
	}
	return false;
}

/*
 * The saved records of path that are not at it any more: locate them among
 * its siblings, then read every sibling rotated since the oldest of them.
 */
static int restore_rotated(struct ingest_tail *t, const struct saved *v, size_t n,
			   const char *path, dev_t cur_dev, ino_t cur_ino, int cur_fd)
{
	struct sib *sibs = NULL;
	size_t ns = 0;
	int rc = 0;
	/* A logrotate running now renames siblings under our feet (NAME.1 to
	 * NAME.2 between readdir and open): list again while a record is not found. */
	for (int attempt = 0; attempt < 3; attempt++) {
		sibs_free(sibs, ns);
		sibs = NULL;
		ns = 0;
		if ((rc = list_siblings(t, path, cur_dev, cur_ino, &sibs, &ns)) < 0)
			return rc;
		if (all_located(sibs, ns, v, n, path))
			break;
	}
	for (size_t i = 0; i < n; i++) {
		const struct saved *r = &v[i];
		if (r->ignore || r->in_place || strcmp(r->path, path) != 0)
			continue;
		/* The best match not claimed as well or better by another record. */
		struct sib *best = NULL;
		int best_rank = 0;
		int64_t seen_us = t->state_time_us - MTIME_SLACK_US;
		for (size_t k = 0; k < ns; k++) {
			int rank = sib_rank(&sibs[k], r);
			if (rank > sibs[k].rank &&
			    (rank > best_rank ||
			     (rank == 1 && best_rank == 1 && likelier_copy(&sibs[k], best, r, seen_us)))) {
				best = &sibs[k];
				best_rank = rank;
			}
		}
		if (best) {
			best->rec = r;
			best->rank = best_rank;
		} else if (!copy_read_past(t, sibs, ns, r)) {
			restore_lost(t, r, (uint64_t)cur_dev == r->dev && (uint64_t)cur_ino == r->ino);
		}
	}
	if (ns > 1)
		qsort(sibs, ns, sizeof *sibs, by_mtime);
	/* From the oldest located one, or the first modified after the records
	 * were written (a generation filled while we were stopped). */
	size_t first = ns;
	for (size_t k = 0; k < ns && first == ns; k++) {
		int64_t m = sib_mtime_us(&sibs[k]);
		if (sibs[k].rec || (t->state_time_us > 0 && m > t->state_time_us))
			first = k;
	}
	struct tfile *prev = NULL;
	for (size_t k = first; k < ns; k++) {
		/* One the records do not name was read to its end already (a
		 * copy drained before a truncation, a generation finished) if
		 * it was last modified before they were written, or if its
		 * content is a done record's (copied or compressed since, so
		 * its mtime is newer): not read again. */
		int64_t m = sib_mtime_us(&sibs[k]);
		if (!sibs[k].rec && ((t->state_time_us > 0 && m <= t->state_time_us - MTIME_SLACK_US) ||
				     already_read(t, &sibs[k]) || read_through_current(cur_fd, &sibs[k])))
			continue;
		struct tfile *f = follow_sibling(t, &sibs[k], path, sibs[k].rec, prev,
						  "rotated while we were stopped");
		if (f)
			prev = f;
	}
	sibs_free(sibs, ns);
	return 0;
}

/* The newest generation of path being read to its end (what a new file
 * under the name waits for, as track() finds it), or NULL. */
static struct tfile *last_generation(struct ingest_tail *t, const char *path)
{
	struct tfile *last = NULL;
	for (struct tfile *o = t->files; o; o = o->next)
		if (o->draining && !o->waiter && strcmp(o->path, path) == 0)
			last = o;
	return last;
}

/* Open r->path: resume the saved file that is still there, or read the new
 * one from 0 (it replaced the saved one, or the saved one was truncated). */
static void restore_path(struct ingest_tail *t, const struct saved *v, size_t n, const char *path,
			 int fd, int64_t opened_us)
{
	struct stat st;
	if (fd < 0)
		return; /* picked up by the scan if it appears */
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || find_ino(t, st.st_dev, st.st_ino)) {
		close(fd);
		return; /* the scan decides (and reports) */
	}
	const struct saved *r = NULL;
	for (size_t i = 0; i < n && !r; i++)
		if (!v[i].ignore && strcmp(v[i].path, path) == 0 &&
		    v[i].dev == (uint64_t)st.st_dev && v[i].ino == (uint64_t)st.st_ino &&
		    same_content(fd, (uint64_t)st.st_size, &v[i]))
			r = &v[i];
	struct tfile *f = track(t, fd, &st, path, r ? r->off : 0, false);
	if (!f) {
		close(fd);
		return;
	}
	/* The name was seen naming it when it was opened, before the siblings
	 * were read: a generation rotated since is found by its mtime. */
	f->name_ok_us = f->content_ok_us = opened_us;
	if (r) {
		f->lines.skipping = r->skip;
		kl_log(KL_LOG_INFO, "tail %s: resuming \"%s\" (inode %llu) at offset %llu of %llu",
		       t->pattern, path, (unsigned long long)f->ino, (unsigned long long)f->off,
		       (unsigned long long)st.st_size);
	} else {
		kl_log(KL_LOG_INFO,
		       "tail %s: \"%s\" (inode %llu) is not the file the checkpoint names "
		       "(replaced or truncated since); reading it from the start",
		       t->pattern, path, (unsigned long long)f->ino);
	}
}

/*
 * Apply saved records before the first scan: for each saved name, first the
 * files that moved away from it (restore_rotated), then the file under it
 * now (restore_path); the scan that follows applies from_beginning to files
 * the records do not name.
 */
static int restore(struct ingest_tail *t, struct saved *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct saved *r = &v[i];
		if (fnmatch(t->pattern, r->path, FNM_PATHNAME | FNM_PERIOD) != 0) {
			r->ignore = true;
			kl_log(KL_LOG_INFO,
			       "tail %s: checkpoint entry \"%s\" does not match the pattern; "
			       "forgotten",
			       t->pattern, r->path);
			continue;
		}
		struct stat st;
		int fd = open(r->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
		if (fd >= 0) {
			r->in_place = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
				      (uint64_t)st.st_dev == r->dev && (uint64_t)st.st_ino == r->ino &&
				      same_content(fd, (uint64_t)st.st_size, r);
			close(fd);
		}
	}
	for (size_t i = 0; i < n; i++) {
		struct saved *r = &v[i];
		bool seen = false;
		for (size_t k = 0; k < i && !seen; k++)
			seen = !v[k].ignore && strcmp(v[k].path, r->path) == 0;
		if (r->ignore || seen)
			continue; /* one pass per name */
		/* Opened first, and followed by this fd: a logrotate running now
		 * may rotate the name again before we are done with its siblings;
		 * the file we excluded from them is the one we follow. */
		struct stat st;
		dev_t cd = 0;
		ino_t ci = 0;
		int64_t opened_us = kl_wall_us();
		int fd = open(r->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
		if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
			cd = st.st_dev;
			ci = st.st_ino;
		}
		int rc = restore_rotated(t, v, n, r->path, cd, ci, fd);
		if (rc < 0) {
			if (fd >= 0)
				close(fd);
			return rc;
		}
		/* Rotated or copied again while we read the records' siblings. */
		follow_since(t, r->path, cd, ci, fd, opened_us - MTIME_SLACK_US,
			     last_generation(t, r->path), NULL);
		if (!find_path(t, r->path))
			restore_path(t, v, n, r->path, fd, opened_us);
		else if (fd >= 0)
			close(fd);
	}
	return 0;
}

/* ---------------------------------------------------------------------------
 * Public interface.
 */

static double interval_or(double v, double dflt)
{
	return v > 0 && v < 1e9 ? v : dflt; /* also rejects NaN */
}

struct ingest_tail *ingest_tail_new(struct ev_loop *loop, const struct ingest_tail_opts *opts,
				    const struct ingest_tail_cbs *cbs, int *err)
{
	struct ingest_tail *t = NULL;
	int rc = -EINVAL;

	if (!loop || !opts || !cbs || !cbs->line || !opts->pattern)
		goto fail;
	size_t plen = strlen(opts->pattern);
	if (plen == 0 || opts->pattern[plen - 1] == '/')
		goto fail;
	rc = -ENAMETOOLONG;
	if (plen >= PATH_MAX)
		goto fail;

	rc = -ENOMEM;
	t = calloc(1, sizeof(*t));
	if (!t)
		goto fail;
	t->loop = loop;
	t->ifd = -1;
	t->cbs = *cbs;
	t->from_beginning = opts->from_beginning;
	t->state_time_us = opts->state_time_us;
	t->max_line = opts->max_line ? opts->max_line : INGEST_DEFAULT_MAX_LINE;
	t->chunk = opts->chunk ? opts->chunk : INGEST_DEFAULT_CHUNK;
	t->stat_interval = interval_or(opts->stat_interval, 1.0);
	t->glob_interval = interval_or(opts->glob_interval, 2.0);
	t->rotate_wait = ROTATE_WAIT_INTERVALS * t->stat_interval;

	t->pattern = kl_strndup(opts->pattern, plen);
	if (!t->pattern)
		goto fail;
	const char *slash = strrchr(t->pattern, '/');
	if (!slash) {
		t->dir_pattern = kl_strndup(".", 1);
		t->base_pattern = kl_strndup(t->pattern, plen);
	} else {
		size_t dlen = (size_t)(slash - t->pattern);
		t->dir_pattern = dlen ? kl_strndup(t->pattern, dlen) : kl_strndup("/", 1);
		t->base_pattern = kl_strndup(slash + 1, strlen(slash + 1));
		t->dir_magic = has_magic(t->pattern, dlen);
	}
	t->base_magic = has_magic(t->base_pattern, strlen(t->base_pattern));
	t->rbuf = malloc(t->chunk);
	if (!t->dir_pattern || !t->base_pattern || !t->rbuf)
		goto fail;

	t->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (t->ifd < 0) {
		t->warned_watch = true;
		kl_log(KL_LOG_WARN, "tail %s: inotify unavailable (%s); checking every %gs instead",
		       t->pattern, strerror(errno), t->stat_interval);
	} else {
		ev_io_init(&t->iw, inotify_cb, t->ifd, EV_READ);
		t->iw.data = t;
		ev_io_start(loop, &t->iw);
	}
	ev_timer_init(&t->stat_w, stat_cb, t->stat_interval, t->stat_interval);
	t->stat_w.data = t;
	ev_timer_start(loop, &t->stat_w);
	ev_timer_init(&t->glob_w, glob_cb, t->glob_interval, t->glob_interval);
	t->glob_w.data = t;
	ev_timer_start(loop, &t->glob_w);

	if (opts->state && opts->state_len) {
		struct saved *v = NULL;
		size_t n = 0, bad = 0;
		int prc = parse_state(opts->state, opts->state_len, &v, &n, t->done, &t->ndone,
				      &bad);
		if (prc == -ENOMEM)
			goto fail;
		if (prc < 0) {
			t->ndone = 0;
			kl_log(KL_LOG_ERROR,
			       "tail %s: checkpoint record %zu is not valid; starting without "
			       "the checkpoint",
			       t->pattern, bad);
		} else {
			int rrc = restore(t, v, n);
			bool dropped = false;
			for (size_t i = 0; i < n; i++)
				dropped |= v[i].ignore;
			saved_free(v, n);
			if (rrc == -ENOMEM)
				goto fail;
			t->new_since_ckpt = !dropped && t->state_time_us > 0;
		}
	} else if (opts->state && t->state_time_us > 0) {
		t->new_since_ckpt = true; /* the checkpoint followed no file here */
	}
	t->initial = true;
	reconcile(t, true, true);
	t->initial = false;
	if (t->dirs_missing)
		kl_log(KL_LOG_INFO, "tail %s: no directory \"%s\" yet; checking every %gs",
		       t->pattern, t->dir_pattern, t->stat_interval);
	return t;

fail:
	ingest_tail_free(t);
	if (err)
		*err = rc;
	return NULL;
}

void ingest_tail_free(struct ingest_tail *t)
{
	if (!t)
		return;
	while (t->files)
		close_file(t->files, false);
	if (t->ifd >= 0) {
		ev_io_stop(t->loop, &t->iw);
		close(t->ifd);
	}
	if (t->loop) {
		ev_timer_stop(t->loop, &t->stat_w);
		ev_timer_stop(t->loop, &t->glob_w);
	}
	for (size_t i = 0; i < t->nignored; i++)
		free(t->ignored[i]);
	free(t->dir_wds);
	free(t->rbuf);
	free(t->pattern);
	free(t->dir_pattern);
	free(t->base_pattern);
	free(t);
}

void ingest_tail_get_stats(const struct ingest_tail *t, struct ingest_tail_stats *out)
{
	*out = t->st;
	out->too_long = t->too_long_closed;
	out->bytes_behind = 0;
	for (const struct tfile *f = t->files; f; f = f->next) {
		struct stat st;
		out->too_long += f->lines.too_long;
		if (!f->gz && fstat(f->fd, &st) == 0 && (uint64_t)st.st_size > f->off)
			out->bytes_behind += (uint64_t)st.st_size - f->off;
	}
}
