/*
 * rotate_int.h — private to rotate/: the file operations of archive.c that
 * rotate.c's actions are made of, and the test seams.
 *
 * Every name is one directory entry (no '/') relative to a directory fd; every
 * open is O_NOFOLLOW; a file is acted on only if it is still the one the scan
 * saw (device and inode), a regular file with one link. Functions return 0 or
 * -errno and, on failure, leave the directory as it was (a temporary file they
 * made is removed); *why, when given, then says what went wrong in words.
 */
#ifndef ROTATE_INT_H
#define ROTATE_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#define ROTATE_BUF (256 * 1024) /* each of the input and output buffers of a job */
#define ROTATE_WHY 160

/* Open name in dfd (flags | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK) and check it
 * is a regular file with one link, and (dev != 0) that it is (dev, ino).
 * Returns the fd and *st, or -errno: -ELOOP (a symlink), -EINVAL (not
 * regular), -EMLINK (hard links), -ESTALE (another file now). */
int rotate_open_checked(int dfd, const char *name, int flags, dev_t dev, ino_t ino,
			struct stat *st);
/* Unlink name if it is still (dev, ino), a regular file; then fsync dfd. */
int rotate_unlink_checked(int dfd, const char *name, dev_t dev, ino_t ino);
/* Rename from -> to in dfd, never replacing an existing to (-EEXIST); then
 * fsync dfd. */
int rotate_rename_noreplace(int dfd, const char *from, const char *to);

struct rotate_gz_result {
	uint64_t in, out; /* bytes read, gzip bytes written */
	bool reused;	  /* NAME.gz was there already, complete, with the same bytes:
			   * only NAME was removed (an earlier run stopped before) */
};

/*
 * Compress name (which must be (dev, ino)) to name.gz in dfd: name.gz.tmp
 * written with a gzip header holding name and the mtime, fsync'd, with the
 * original's mode, owner and times; renamed to name.gz; the directory
 * fsync'd; only then name removed (if it is unchanged since the start: a file
 * that grew meanwhile is kept and -EAGAIN returned). cancel (may be NULL) is
 * polled between buffers: -ECANCELED.
 */
int rotate_gzip(int dfd, const char *name, dev_t dev, ino_t ino, int level,
		atomic_bool *cancel, struct rotate_gz_result *res, char *why);

/*
 * The first half of copytruncate: copy name (which must be (dev, ino)) as far
 * as its size at the start to tmp (created, never replaced) with the
 * original's mode, owner and times, fsync'd. *copied: the bytes copied.
 */
int rotate_copy(int dfd, const char *name, dev_t dev, ino_t ino, const char *tmp,
		atomic_bool *cancel, uint64_t *copied, char *why);
/* The second half: truncate name (still (dev, ino)) to 0. */
int rotate_truncate_checked(int dfd, const char *name, dev_t dev, ino_t ino);

/*
 * Test hook (for the end-to-end crash tests): when the environment variable
 * KLAXON_ROTATE_FAIL_AT names step, the process ends at once with
 * _exit(99), as a crash there would: nothing is cleaned up. Steps:
 *   gzip_partial  half of the input compressed into NAME.gz.tmp
 *   gzip_tmp      NAME.gz.tmp complete and fsync'd, not renamed
 *   gzip_renamed  NAME.gz in place, NAME not yet removed
 *   rotate_shift  generations shifted, NAME not yet renamed
 *   rotate_renamed  NAME renamed, the writer not yet signalled
 *   copy_tmp      the copy of copytruncate written, not in place
 *   copy_renamed  the copy in place, NAME not yet truncated
 */
void rotate_crash_point(const char *step);

/* For tests only: replace the calls that can fail in interesting ways; NULL
 * restores the real one. Not thread-safe: set it before a scan. */
void rotate_test_set_io(ssize_t (*write_fn)(int, const void *, size_t), int (*fsync_fn)(int),
			int (*renameat_fn)(int, const char *, int, const char *),
			int (*unlinkat_fn)(int, const char *, int));

#endif
