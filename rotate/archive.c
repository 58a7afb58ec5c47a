/*
 * archive.c — the rotator's file operations: checked open, unlink and rename
 * in a directory fd, streaming gzip, the copy of copytruncate.
 *
 * The durable-write recipe (STYLE.md) in directory-fd form: write NAME.gz.tmp
 * (created with O_EXCL, never through a symlink), fsync, rename to NAME.gz
 * without replacing anything, fsync the directory, and only then remove NAME.
 * A crash at any point leaves NAME, or NAME and a complete NAME.gz; the next
 * scan removes a leftover .tmp, and finds an existing NAME.gz with NAME's
 * exact bytes (checked by decompressing it) complete, so it only removes NAME.
 * kl_write_file_atomic is not used: it writes from memory by path, and here
 * the bytes stream from a file, every name is relative to a directory fd, and
 * the I/O goes through the fault-injection table below.
 *
 * Memory per job: two ROTATE_BUF buffers and zlib's deflate state (about
 * 256 KiB at memLevel 8), whatever the file's size.
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "rotate/rotate_int.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

/* ---------------------------------------------------------------------------
 * Fault-injection table (rotate_test_set_io).
 */
static int sys_rename_noreplace(int odfd, const char *from, int ndfd, const char *to)
{
	if (renameat2(odfd, from, ndfd, to, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	/* A file system without RENAME_NOREPLACE: a hard link cannot replace
	 * either, so link then unlink the old name. */
	if (linkat(odfd, from, ndfd, to, 0) < 0)
		return -1;
	return unlinkat(odfd, from, 0);
}

static struct {
	ssize_t (*write)(int, const void *, size_t);
	int (*fsync)(int);
	int (*rename)(int, const char *, int, const char *);
	int (*unlinkat)(int, const char *, int);
} io = { write, fsync, sys_rename_noreplace, unlinkat };

void rotate_test_set_io(ssize_t (*write_fn)(int, const void *, size_t), int (*fsync_fn)(int),
			int (*renameat_fn)(int, const char *, int, const char *),
			int (*unlinkat_fn)(int, const char *, int))
{
	io.write = write_fn ? write_fn : write;
	io.fsync = fsync_fn ? fsync_fn : fsync;
	io.rename = renameat_fn ? renameat_fn : sys_rename_noreplace;
	io.unlinkat = unlinkat_fn ? unlinkat_fn : unlinkat;
}

void rotate_crash_point(const char *step)
{
	const char *want = getenv("KLAXON_ROTATE_FAIL_AT");
	if (want && strcmp(want, step) == 0) {
		/* Test hook (rotate_int.h): a crash here, nothing cleaned up. */
		static const char msg[] = "klaxon: rotate: KLAXON_ROTATE_FAIL_AT: exiting\n";
		ssize_t w = write(2, msg, sizeof msg - 1);
		(void)w;
		_exit(99);
	}
}

/* ---------------------------------------------------------------------------
 * Small helpers.
 */
static void say(char *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(char *why, const char *fmt, ...)
{
	va_list ap;
	if (!why)
		return;
	va_start(ap, fmt);
	vsnprintf(why, ROTATE_WHY, fmt, ap);
	va_end(ap);
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
	while (n) {
		ssize_t w = io.write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (w == 0)
			return -EIO;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static ssize_t read_some(int fd, unsigned char *p, size_t n)
{
	for (;;) {
		ssize_t r = read(fd, p, n);
		if (r >= 0 || errno != EINTR)
			return r;
	}
}

static int sync_dir(int dfd)
{
	return io.fsync(dfd) < 0 ? -errno : 0;
}

int rotate_open_checked(int dfd, const char *name, int flags, dev_t dev, ino_t ino,
			struct stat *st)
{
	int fd = openat(dfd, name, flags | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return -errno; /* ELOOP: a symbolic link */
	int rc = 0;
	if (fstat(fd, st) < 0)
		rc = -errno;
	else if (!S_ISREG(st->st_mode))
		rc = -EINVAL;
	else if (st->st_nlink != 1)
		rc = -EMLINK;
	else if (dev && (st->st_dev != dev || st->st_ino != ino))
		rc = -ESTALE;
	if (rc < 0) {
		close(fd);
		return rc;
	}
	/* Reads and writes below must block normally (O_NONBLOCK only kept the
	 * open from hanging on a FIFO planted under the name). */
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	return fd;
}

int rotate_unlink_checked(int dfd, const char *name, dev_t dev, ino_t ino)
{
	struct stat st;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	if (st.st_dev != dev || st.st_ino != ino)
		return -ESTALE;
	if (io.unlinkat(dfd, name, 0) < 0)
		return -errno;
	return sync_dir(dfd);
}

int rotate_rename_noreplace(int dfd, const char *from, const char *to)
{
	if (io.rename(dfd, from, dfd, to) < 0)
		return -errno;
	return sync_dir(dfd);
}

/* Give tfd the source's owner, mode and times. Only root may give a file
 * away: as another user the owner stays ours and the group is kept when we
 * belong to it, the best an unprivileged process can do. The owner is set
 * before the mode, because chown clears the set-id bits. */
static int copy_meta(int tfd, const struct stat *st)
{
	if (fchown(tfd, st->st_uid, st->st_gid) < 0 && errno == EPERM)
		(void)!fchown(tfd, (uid_t)-1, st->st_gid);
	if (fchmod(tfd, st->st_mode & 07777) < 0)
		return -errno;
	struct timespec ts[2] = { st->st_atim, st->st_mtim };
	if (futimens(tfd, ts) < 0)
		return -errno;
	return 0;
}

/* Create tmp for writing: never through a symlink, never an existing file.
 * A leftover of ours (a crash) is removed once and the create retried. */
static int create_tmp(int dfd, const char *tmp)
{
	for (int tries = 0; tries < 2; tries++) {
		int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0) {
			/* held until closed (or the process dies): a scan of
			 * another klaxon leaves a locked .tmp alone */
			(void)flock(fd, LOCK_EX | LOCK_NB);
			return fd;
		}
		if (errno != EEXIST || tries)
			return -errno;
		struct stat st;
		if (fstatat(dfd, tmp, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode) ||
		    st.st_nlink != 1 || io.unlinkat(dfd, tmp, 0) < 0)
			return -EEXIST;
	}
	return -EEXIST;
}

static bool cancelled(atomic_bool *cancel)
{
	return cancel && atomic_load_explicit(cancel, memory_order_relaxed);
}

/* ---------------------------------------------------------------------------
 * gzip.
 */

/*
 * Does gz (a gzip file) decompress to exactly the bytes of src (read from its
 * current offset to its end)? 1 yes, 0 no, -errno on a read error.
 */
static int gz_matches(int gzfd, int src, unsigned char *a, unsigned char *b)
{
	z_stream z = { 0 };
	int rc = 0, zrc = Z_OK;
	size_t have = 0, used = 0; /* src bytes in a[0..have), compared up to used */
	bool src_eof = false;
	unsigned char in[16384];

	if (inflateInit2(&z, 15 + 16) != Z_OK)
		return -ENOMEM;
	for (;;) {
		if (z.avail_in == 0) {
			ssize_t r = read_some(gzfd, in, sizeof in);
			if (r < 0) {
				rc = -errno;
				goto out;
			}
			if (r == 0)
				break; /* cut short (zrc != Z_STREAM_END below) */
			z.next_in = in;
			z.avail_in = (uInt)r;
		}
		z.next_out = b;
		z.avail_out = ROTATE_BUF;
		zrc = inflate(&z, Z_NO_FLUSH);
		if (zrc != Z_OK && zrc != Z_STREAM_END && zrc != Z_BUF_ERROR)
			goto out; /* corrupt: no match */
		size_t got = ROTATE_BUF - z.avail_out, off = 0;
		while (off < got) {
			if (used == have) {
				if (src_eof)
					goto out; /* the archive is longer */
				ssize_t r = read_some(src, a, ROTATE_BUF);
				if (r < 0) {
					rc = -errno;
					goto out;
				}
				src_eof = r == 0;
				have = (size_t)r;
				used = 0;
				if (r == 0)
					goto out;
			}
			size_t n = got - off < have - used ? got - off : have - used;
			if (memcmp(b + off, a + used, n) != 0)
				goto out;
			off += n;
			used += n;
		}
		if (zrc == Z_STREAM_END)
			break;
	}
	if (zrc != Z_STREAM_END || z.avail_in != 0)
		goto out;
	if (read_some(gzfd, in, 1) != 0)
		goto out; /* something after the member */
	if (used == have && read_some(src, a, 1) == 0)
		rc = 1;
out:
	inflateEnd(&z);
	return rc;
}

/* NAME.gz exists: if it holds NAME's bytes, NAME is only removed. */
static int gzip_reuse(int dfd, const char *name, const char *gz, int fd, const struct stat *st,
		      unsigned char *a, unsigned char *b, struct rotate_gz_result *res, char *why)
{
	struct stat gst;
	int gfd = rotate_open_checked(dfd, gz, O_RDONLY, 0, 0, &gst);
	if (gfd < 0) {
		say(why, "%s exists and cannot be read: %s", gz, strerror(-gfd));
		return -EEXIST;
	}
	int m = gz_matches(gfd, fd, a, b);
	close(gfd);
	if (m <= 0) {
		say(why, "%s exists and does not hold this file's bytes%s%s; both are kept", gz,
		    m < 0 ? ": " : "", m < 0 ? strerror(-m) : "");
		return -EEXIST;
	}
	int rc = rotate_unlink_checked(dfd, name, st->st_dev, st->st_ino);
	if (rc < 0) {
		say(why, "cannot remove it after finding %s complete: %s", gz, strerror(-rc));
		return rc;
	}
	res->in = (uint64_t)st->st_size;
	res->out = (uint64_t)gst.st_size;
	res->reused = true;
	return 0;
}

int rotate_gzip(int dfd, const char *name, dev_t dev, ino_t ino, int level,
		atomic_bool *cancel, struct rotate_gz_result *res, char *why)
{
	char gz[NAME_MAX + 1], tmp[NAME_MAX + 1];
	unsigned char *ibuf = NULL, *obuf = NULL;
	struct stat st, after;
	z_stream z = { 0 };
	bool zinit = false, made = false;
	int fd = -1, tfd = -1, rc;

	memset(res, 0, sizeof *res);
	if ((size_t)snprintf(gz, sizeof gz, "%s.gz", name) >= sizeof gz ||
	    (size_t)snprintf(tmp, sizeof tmp, "%s.gz.tmp", name) >= sizeof tmp) {
		say(why, "the name is too long for a .gz.tmp");
		return -ENAMETOOLONG;
	}
	fd = rotate_open_checked(dfd, name, O_RDONLY, dev, ino, &st);
	if (fd < 0) {
		rc = fd;
		say(why, "cannot open it: %s", strerror(-rc));
		fd = -1;
		goto fail;
	}
	ibuf = malloc(ROTATE_BUF);
	obuf = malloc(ROTATE_BUF);
	if (!ibuf || !obuf) {
		rc = -ENOMEM;
		say(why, "out of memory");
		goto fail;
	}
	struct stat gst;
	if (fstatat(dfd, gz, &gst, AT_SYMLINK_NOFOLLOW) == 0) {
		rc = gzip_reuse(dfd, name, gz, fd, &st, ibuf, obuf, res, why);
		goto out;
	}
	tfd = create_tmp(dfd, tmp);
	if (tfd < 0) {
		rc = tfd;
		tfd = -1;
		say(why, "cannot create %s: %s", tmp, strerror(-rc));
		goto fail;
	}
	made = true;
	if (deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
		rc = -ENOMEM;
		say(why, "zlib: out of memory");
		goto fail;
	}
	zinit = true;
	/* The header keeps the name and the mtime, as gzip(1) writes them, so
	 * `gzip -dN` restores both. */
	gz_header h = { 0 };
	h.name = (Bytef *)name;
	h.time = st.st_mtim.tv_sec > 0 && st.st_mtim.tv_sec <= UINT32_MAX ? (uLong)st.st_mtim.tv_sec : 0;
	h.os = 3; /* Unix */
	if (deflateSetHeader(&z, &h) != Z_OK) {
		rc = -EINVAL;
		say(why, "zlib refused the header");
		goto fail;
	}
	uint64_t half = (uint64_t)st.st_size / 2;
	bool crashed_half = false;
	int flush;
	do {
		if (cancelled(cancel)) {
			rc = -ECANCELED;
			say(why, "cancelled (klaxon is stopping)");
			goto fail;
		}
		ssize_t r = read_some(fd, ibuf, ROTATE_BUF);
		if (r < 0) {
			rc = -errno;
			say(why, "read error: %s", strerror(-rc));
			goto fail;
		}
		res->in += (uint64_t)r;
		flush = r == 0 || res->in >= (uint64_t)st.st_size ? Z_FINISH : Z_NO_FLUSH;
		z.next_in = ibuf;
		z.avail_in = (uInt)r;
		do {
			z.next_out = obuf;
			z.avail_out = ROTATE_BUF;
			int zrc = deflate(&z, flush);
			if (zrc == Z_STREAM_ERROR) {
				rc = -EIO;
				say(why, "zlib stream error");
				goto fail;
			}
			size_t n = ROTATE_BUF - z.avail_out;
			rc = write_all(tfd, obuf, n);
			if (rc < 0) {
				say(why, "cannot write %s: %s", tmp, strerror(-rc));
				goto fail;
			}
			res->out += n;
		} while (z.avail_out == 0);
		if (!crashed_half && res->in >= half && half > 0) {
			crashed_half = true;
			rotate_crash_point("gzip_partial");
		}
	} while (flush != Z_FINISH);
	rc = copy_meta(tfd, &st);
	if (rc < 0) {
		say(why, "cannot set the mode and times of %s: %s", tmp, strerror(-rc));
		goto fail;
	}
	if (io.fsync(tfd) < 0) {
		rc = -errno;
		say(why, "cannot fsync %s: %s", tmp, strerror(-rc));
		goto fail;
	}
	rotate_crash_point("gzip_tmp");
	/* A file written to while we read it is not removed: the next scan
	 * sees it again (and a writer still using it means it is not aged). */
	if (fstat(fd, &after) < 0 || after.st_size != st.st_size ||
	    after.st_mtim.tv_sec != st.st_mtim.tv_sec || after.st_mtim.tv_nsec != st.st_mtim.tv_nsec ||
	    res->in != (uint64_t)st.st_size) {
		rc = -EAGAIN;
		say(why, "it changed while it was compressed; kept, for the next scan");
		goto fail;
	}
	if (close(tfd) < 0) {
		tfd = -1;
		rc = -errno;
		say(why, "cannot close %s: %s", tmp, strerror(-rc));
		goto fail;
	}
	tfd = -1;
	if (io.rename(dfd, tmp, dfd, gz) < 0) {
		rc = -errno;
		say(why, "cannot rename %s: %s", tmp, strerror(-rc));
		goto fail;
	}
	made = false;
	if (io.fsync(dfd) < 0) {
		/* NAME.gz may not be durable yet: NAME stays until a scan that
		 * finds NAME.gz complete (gzip_reuse). */
		rc = -errno;
		say(why, "cannot fsync the directory: %s", strerror(-rc));
		goto out;
	}
	rotate_crash_point("gzip_renamed");
	rc = rotate_unlink_checked(dfd, name, st.st_dev, st.st_ino);
	if (rc < 0)
		say(why, "%s is complete, but the original cannot be removed: %s", gz, strerror(-rc));
	goto out;
fail:
	if (tfd >= 0)
		close(tfd);
	tfd = -1;
	if (made)
		io.unlinkat(dfd, tmp, 0);
out:
	if (tfd >= 0)
		close(tfd);
	if (zinit)
		deflateEnd(&z);
	if (fd >= 0)
		close(fd);
	free(ibuf);
	free(obuf);
	return rc;
}

/* ---------------------------------------------------------------------------
 * copytruncate.
 */
int rotate_copy(int dfd, const char *name, dev_t dev, ino_t ino, const char *tmp,
		atomic_bool *cancel, uint64_t *copied, char *why)
{
	struct stat st;
	unsigned char *buf = NULL;
	int fd, tfd = -1, rc = 0;
	uint64_t done = 0;

	fd = rotate_open_checked(dfd, name, O_RDONLY, dev, ino, &st);
	if (fd < 0) {
		say(why, "cannot open it: %s", strerror(-fd));
		return fd;
	}
	buf = malloc(ROTATE_BUF);
	if (!buf) {
		rc = -ENOMEM;
		goto fail;
	}
	tfd = create_tmp(dfd, tmp);
	if (tfd < 0) {
		rc = tfd;
		tfd = -1;
		say(why, "cannot create %s: %s", tmp, strerror(-rc));
		goto fail;
	}
	/* Only as far as the size at the start: what is written later is not
	 * in the copy (and lost at the truncation, as with logrotate). */
	while (done < (uint64_t)st.st_size) {
		if (cancelled(cancel)) {
			rc = -ECANCELED;
			say(why, "cancelled (klaxon is stopping)");
			goto fail;
		}
		uint64_t left = (uint64_t)st.st_size - done;
		ssize_t r = read_some(fd, buf, left < ROTATE_BUF ? (size_t)left : ROTATE_BUF);
		if (r < 0) {
			rc = -errno;
			say(why, "read error: %s", strerror(-rc));
			goto fail;
		}
		if (r == 0)
			break; /* truncated under us: copy what there was */
		rc = write_all(tfd, buf, (size_t)r);
		if (rc < 0) {
			say(why, "cannot write %s: %s", tmp, strerror(-rc));
			goto fail;
		}
		done += (uint64_t)r;
	}
	rc = copy_meta(tfd, &st);
	if (rc == 0 && io.fsync(tfd) < 0)
		rc = -errno;
	if (rc < 0) {
		say(why, "cannot fsync %s: %s", tmp, strerror(-rc));
		goto fail;
	}
	if (close(tfd) < 0) {
		tfd = -1;
		rc = -errno;
		goto fail;
	}
	close(fd);
	free(buf);
	*copied = done;
	return 0;
fail:
	if (tfd >= 0) {
		close(tfd);
		io.unlinkat(dfd, tmp, 0);
	}
	close(fd);
	free(buf);
	return rc;
}

int rotate_truncate_checked(int dfd, const char *name, dev_t dev, ino_t ino)
{
	struct stat st;
	int fd = rotate_open_checked(dfd, name, O_WRONLY, dev, ino, &st);
	if (fd < 0)
		return fd;
	int rc = ftruncate(fd, 0) < 0 ? -errno : 0;
	close(fd);
	return rc;
}
