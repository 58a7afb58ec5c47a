/*
 * reader.c — whole-file reading for `replay` and `parse`: the hot path.
 *
 * Design: zlib's gzread reads plain files and gzip streams alike (it looks at
 * the content, and decodes concatenated members in a row). Decompressed bytes
 * go into one buffer of max_line + READ_CHUNK bytes; ingest_reader_next scans
 * it with memchr and hands out each line as a view into it. When no '\n' is
 * left, the unterminated tail (at most max_line bytes) is moved to the front
 * and the next chunk is read behind it. So there is no allocation and no copy
 * per line, and one memmove of at most one line per chunk.
 *
 * The line rules are those of ingest_lines: a line longer than max_line is
 * handed out cut to max_line bytes once (counted in too_long) and the rest up
 * to its '\n' skipped; the last line is handed out even without its '\n'.
 *
 * Errors: a read error or a corrupt/truncated gzip stream ends the file. Every
 * complete line decoded before the damage is handed out first; the partial
 * line at the damage is dropped (it is cut at an unknown point); then the
 * error is returned (and again on every later call), logged once with the
 * path.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "ingest/ingest.h"

#define READ_CHUNK ((size_t)256 * 1024)

struct ingest_reader {
	gzFile gz;
	char *path; /* for messages */
	char *buf;  /* max_line + READ_CHUNK bytes */
	size_t cap;
	size_t pos; /* next unread byte */
	size_t end; /* end of valid data */
	size_t max_line;
	bool skipping; /* inside a cut line: drop up to the next '\n' */
	bool eof;      /* no more input: the tail in [pos, end) is the last line */
	int err;       /* sticky: returned once the buffer is drained */
	struct ingest_reader_stats st;
};

struct ingest_reader *ingest_reader_open(const char *path, size_t max_line, int *err)
{
	struct ingest_reader *r = NULL;
	int fd = -1, rc;

	if (max_line == 0)
		max_line = INGEST_DEFAULT_MAX_LINE;
	if (!path || max_line > SIZE_MAX / 4) {
		rc = -EINVAL;
		goto fail;
	}

	if (strcmp(path, "-") == 0)
		fd = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 0); /* gzclose closes it, not stdin */
	else
		fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		goto fail;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto fail;
	}
	if (S_ISDIR(st.st_mode)) {
		rc = -EISDIR;
		goto fail;
	}
	if (S_ISREG(st.st_mode))
		(void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL); /* a hint: larger read-ahead */

	rc = -ENOMEM;
	r = calloc(1, sizeof(*r));
	if (!r)
		goto fail;
	r->max_line = max_line;
	r->cap = max_line + READ_CHUNK;
	r->path = kl_strndup(path, strlen(path));
	r->buf = malloc(r->cap);
	if (!r->path || !r->buf)
		goto fail;
	r->gz = gzdopen(fd, "rb");
	if (!r->gz)
		goto fail;
	fd = -1; /* owned by r->gz now */
	if (gzbuffer(r->gz, READ_CHUNK) != 0)
		goto fail;
	return r;

fail:
	if (fd >= 0)
		close(fd);
	ingest_reader_close(r);
	if (err)
		*err = rc;
	return NULL;
}

/* Read the next chunk behind the pending tail. Sets eof or err at the end. */
static void fill(struct ingest_reader *r)
{
	size_t tail = r->end - r->pos;
	if (tail && r->pos)
		memmove(r->buf, r->buf + r->pos, tail);
	r->pos = 0;
	r->end = tail;

	size_t want = r->cap - r->end;
	if (want > READ_CHUNK)
		want = READ_CHUNK;
	errno = 0;
	int n = gzread(r->gz, r->buf + r->end, (unsigned)want);
	int saved = errno;
	if (n > 0) {
		r->end += (size_t)n;
		r->st.bytes += (uint64_t)n;
		return;
	}

	/* 0 is the end, or a truncated stream (zlib reports Z_BUF_ERROR then). */
	int zerr = Z_OK;
	const char *msg = gzerror(r->gz, &zerr);
	if (n == 0 && zerr == Z_OK) {
		r->eof = true;
		return;
	}
	if (zerr == Z_ERRNO) {
		r->err = saved ? -saved : -EIO;
		msg = strerror(saved ? saved : EIO);
	} else {
		r->err = -EIO;
		if (zerr == Z_BUF_ERROR)
			msg = "gzip stream truncated";
	}
	r->st.errors++;
	/* The cut-off tail is not a line. */
	r->end = r->pos;
	kl_log(KL_LOG_ERROR,
	       "reading \"%s\": %s after %llu bytes; the %llu lines before it were read, the rest "
	       "of the file is skipped",
	       r->path, msg ? msg : "read error", (unsigned long long)r->st.bytes,
	       (unsigned long long)r->st.lines);
}

int ingest_reader_next(struct ingest_reader *r, struct kl_str *line)
{
	for (;;) {
		if (r->pos < r->end) {
			char *p = r->buf + r->pos;
			size_t avail = r->end - r->pos;
			char *nl = memchr(p, '\n', avail);
			if (r->skipping) {
				if (!nl) {
					r->pos = r->end;
					goto more;
				}
				r->skipping = false;
				r->pos += (size_t)(nl - p) + 1;
				continue;
			}
			if (nl) {
				size_t n = (size_t)(nl - p);
				r->pos += n + 1;
				if (n > r->max_line) {
					n = r->max_line;
					r->st.too_long++;
				}
				r->st.lines++;
				line->p = p;
				line->len = n;
				return 1;
			}
			if (avail > r->max_line) {
				/* Too long already: hand out the first max_line bytes. */
				r->pos = r->end;
				r->skipping = true;
				r->st.too_long++;
				r->st.lines++;
				line->p = p;
				line->len = r->max_line;
				return 1;
			}
			if (r->eof) {
				/* The last line, without its '\n'. */
				r->pos = r->end;
				r->st.lines++;
				line->p = p;
				line->len = avail;
				return 1;
			}
		}
	more:
		if (r->err)
			return r->err;
		if (r->eof)
			return 0;
		fill(r);
	}
}

const struct ingest_reader_stats *ingest_reader_stats(const struct ingest_reader *r)
{
	return &r->st;
}

const char *ingest_reader_path(const struct ingest_reader *r)
{
	return r->path;
}

void ingest_reader_close(struct ingest_reader *r)
{
	if (!r)
		return;
	if (r->gz)
		gzclose(r->gz);
	free(r->buf);
	free(r->path);
	free(r);
}
