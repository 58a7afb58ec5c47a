/*
 * spool.c — the notification spool: an append-only, checksummed, fsync'd log
 * of the payloads not yet delivered, in DIR/spool.log.
 *
 * On disk, a sequence of records; integers little-endian:
 *
 *   offset size
 *        0    4  magic F5 4B 53 50 ("\xF5KSP"; 0xF5 never occurs in UTF-8)
 *        4    4  CRC-32C (Castagnoli) of bytes 8 .. end of the record
 *        8    1  type: 1 APPEND, 2 ACK, 3 NEXT
 *        9    1  format version: 1
 *       10    2  sink name length (APPEND; 0 otherwise)
 *       12    4  body length (APPEND; 0 otherwise)
 *       16    8  id (≥ 1)
 *       24    8  APPEND: created, µs since the epoch; others: when written
 *       32       sink name, then body
 *
 * APPEND carries one payload. ACK names the id of an APPEND delivered, given
 * up or dropped. NEXT, first in a compacted file, keeps the next id, so ids
 * are never reused even when everything has been compacted away.
 *
 * Invariants:
 * - In the file, APPEND ids strictly increase. In memory the pending records
 *   (APPENDs without an ACK) are e[head .. n), in id order, each owning one
 *   allocation "sink NUL body NUL".
 * - s->end is the offset just after the last good record. Every write goes
 *   there (pwrite, not O_APPEND) as one buffer, then fdatasync; only then does
 *   memory change. When a write or its fdatasync fails the file is truncated
 *   back to s->end; if even that fails, the next write overwrites the bytes
 *   and retries the truncation first.
 * - Pending bytes (the sizes of the pending APPEND records) never exceed
 *   max_bytes: an append drops the oldest records first (their ACKs and the
 *   new APPEND go out in a single write: all or nothing). The file holds the
 *   pending bytes plus acknowledged ones; compaction runs when those are more
 *   than half of a file over COMPACT_MIN, so the file stays under about
 *   2 × max_bytes. A record whose own size (header, sink, body) exceeds
 *   max_bytes is refused with -EFBIG. max_bytes 0 means 64 MiB, as in the
 *   configuration.
 * - Compaction is the durable-write recipe: spool.log.tmp (written, fsync'd,
 *   flock'd), rename over spool.log, fsync of the directory. It is written
 *   here rather than with kl_write_file_atomic because its I/O must go through
 *   the fault-injection table, and because the temporary file's descriptor
 *   becomes the spool's (no reopen that could fail after the rename). Until
 *   the rename the old file is untouched and stays in use.
 *
 * Recovery at open: a record is good if its magic, type, version, lengths and
 * CRC hold and, for an APPEND, its id is above every APPEND or ACK id before
 * it (NEXT only raises the next id, once the file is read). At a bad
 * record the reader looks for the next good one: none (a crash mid-append, a
 * torn tail) → the tail is truncated; one (damage in the middle: a flipped
 * bit, a bad sector) → the damaged span is skipped, the records after it are
 * kept and the file is compacted at once. Each skipped span counts once in
 * stats.torn. A damaged APPEND loses that payload; a damaged ACK brings its
 * payload back (delivered twice): delivery is at-least-once.
 *
 * Acknowledging forgets the record in memory even when writing the ACK fails
 * (the error is returned), so a deliverer never sends it again in this run;
 * it comes back after a restart. One process at a time: spool.log is flock'd.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sinks/sinks_int.h"

#define HDR_LEN 32
#define FORMAT_VERSION 1
#define COMPACT_MIN (64 * 1024)
#define DEFAULT_MAX_BYTES (UINT64_C(64) << 20)
#define DROP_LOG_EVERY_US (60 * INT64_C(1000000))
#define SCRATCH_KEEP (1024 * 1024) /* larger scratch buffers are freed after use */

enum { REC_APPEND = 1, REC_ACK = 2, REC_NEXT = 3 };

static const unsigned char rec_magic[4] = { 0xf5, 'K', 'S', 'P' };

/* ---------------------------------------------------------------------------
 * The I/O that can fail in interesting ways goes through this table, so the
 * tests can inject faults (spool_test_set_io). Reads, close, flock and unlink
 * are called directly.
 */
static int sys_open(const char *path, int flags, mode_t mode)
{
	return open(path, flags, mode);
}

struct spool_io {
	int (*open)(const char *path, int flags, mode_t mode);
	ssize_t (*pwrite)(int fd, const void *p, size_t n, off_t off);
	int (*fdatasync)(int fd);
	int (*fsync)(int fd);
	int (*rename)(const char *from, const char *to);
	int (*ftruncate)(int fd, off_t len);
};

static struct spool_io io = { sys_open, pwrite, fdatasync, fsync, rename, ftruncate };

/*
 * For tests only (declared in tests/unit/test_spool.c): replace the I/O calls
 * above; a NULL argument restores the real call. Not thread-safe.
 */
void spool_test_set_io(int (*open_fn)(const char *, int, mode_t),
		       ssize_t (*pwrite_fn)(int, const void *, size_t, off_t),
		       int (*fdatasync_fn)(int), int (*fsync_fn)(int),
		       int (*rename_fn)(const char *, const char *),
		       int (*ftruncate_fn)(int, off_t));
void spool_test_set_io(int (*open_fn)(const char *, int, mode_t),
		       ssize_t (*pwrite_fn)(int, const void *, size_t, off_t),
		       int (*fdatasync_fn)(int), int (*fsync_fn)(int),
		       int (*rename_fn)(const char *, const char *),
		       int (*ftruncate_fn)(int, off_t))
{
	io.open = open_fn ? open_fn : sys_open;
	io.pwrite = pwrite_fn ? pwrite_fn : pwrite;
	io.fdatasync = fdatasync_fn ? fdatasync_fn : fdatasync;
	io.fsync = fsync_fn ? fsync_fn : fsync;
	io.rename = rename_fn ? rename_fn : rename;
	io.ftruncate = ftruncate_fn ? ftruncate_fn : ftruncate;
}

/* ---------------------------------------------------------------------------
 * CRC-32C, reflected polynomial 0x82F63B78, one table lookup per byte.
 * crc32c("123456789") == 0xE3069283.
 */
static uint32_t crc_table[256];

static void crc_init(void)
{
	if (crc_table[1])
		return;
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (UINT32_C(0x82f63b78) & (0u - (c & 1u)));
		crc_table[i] = c;
	}
}

static uint32_t crc32c(const void *data, size_t n)
{
	const unsigned char *p = data;
	uint32_t c = 0xffffffffu;
	while (n--)
		c = crc_table[(c ^ *p++) & 0xffu] ^ (c >> 8);
	return c ^ 0xffffffffu;
}

static void put_le(unsigned char *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, int n)
{
	uint64_t v = 0;
	for (int i = n - 1; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* ---------------------------------------------------------------------------
 * Records
 */
struct hdr {
	unsigned type;
	size_t sink_len;
	size_t body_len;
	uint64_t id;
	int64_t created_us;
};

/* Append one encoded record to b. 0 or -ENOMEM (b unchanged). */
static int encode(struct kl_buf *b, unsigned type, uint64_t id, int64_t created_us,
		  const char *sink, size_t sink_len, const void *body, size_t body_len)
{
	unsigned char h[HDR_LEN];
	size_t start = b->len;

	if (body_len > SIZE_MAX - HDR_LEN - sink_len)
		return -ENOMEM;
	int rc = kl_buf_reserve(b, HDR_LEN + sink_len + body_len);
	if (rc < 0)
		return rc;
	memcpy(h, rec_magic, 4);
	put_le(h + 4, 0, 4);
	h[8] = (unsigned char)type;
	h[9] = FORMAT_VERSION;
	put_le(h + 10, sink_len, 2);
	put_le(h + 12, body_len, 4);
	put_le(h + 16, id, 8);
	put_le(h + 24, (uint64_t)created_us, 8);
	/* Cannot fail after the reserve. */
	kl_buf_append(b, h, HDR_LEN);
	kl_buf_append(b, sink, sink_len);
	kl_buf_append(b, body, body_len);
	unsigned char *rec = (unsigned char *)b->p + start;
	put_le(rec + 4, crc32c(rec + 8, b->len - start - 8), 4);
	return 0;
}

/* The length of the good record at p (n bytes readable), or 0. */
static size_t decode(const unsigned char *p, size_t n, struct hdr *h)
{
	if (n < HDR_LEN || memcmp(p, rec_magic, 4) != 0 || p[9] != FORMAT_VERSION)
		return 0;
	h->type = p[8];
	h->sink_len = (size_t)get_le(p + 10, 2);
	h->body_len = (size_t)get_le(p + 12, 4);
	h->id = get_le(p + 16, 8);
	h->created_us = (int64_t)get_le(p + 24, 8);
	if (h->type < REC_APPEND || h->type > REC_NEXT || h->id == 0)
		return 0;
	if (h->type != REC_APPEND && (h->sink_len || h->body_len))
		return 0;
	uint64_t len = (uint64_t)HDR_LEN + h->sink_len + h->body_len;
	if (len > n)
		return 0;
	if (crc32c(p + 8, (size_t)len - 8) != (uint32_t)get_le(p + 4, 4))
		return 0;
	return (size_t)len;
}

/* ---------------------------------------------------------------------------
 * The spool
 */
struct entry {
	struct spool_rec rec; /* sink and body point into mem */
	char *mem;	      /* "sink NUL body NUL" */
	uint64_t disk;	      /* size of its APPEND record */
	bool dead;	      /* acknowledged; only while loading */
};

struct spool {
	char *dir;
	char *path; /* DIR/spool.log */
	char *tmp;  /* DIR/spool.log.tmp */
	int fd;
	uint64_t max_bytes;
	struct entry *e;
	size_t head, n, cap; /* pending: e[head .. n) */
	uint64_t next_id;
	uint64_t next_floor;	   /* while loading: the largest NEXT */
	uint64_t end;		   /* offset after the last good record */
	uint64_t live;		   /* sum of e[].disk: the pending bytes */
	bool tail_dirty;	   /* bytes of a failed write may lie past end */
	uint64_t compact_retry_at; /* after a failed compaction: wait for end to reach it */
	uint64_t write_failures;   /* in a row, for rate-limited logging */
	uint64_t drops_unlogged;
	int64_t drop_logged_us; /* monotonic */
	struct kl_buf scratch;
	struct spool_stats st;
};

static void entry_free(struct entry *e)
{
	free(e->mem);
	e->mem = NULL;
}

/* Make e[n] usable. 0 or -ENOMEM. */
static int ensure_slot(struct spool *s)
{
	if (s->n < s->cap)
		return 0;
	if (s->head > 0) {
		memmove(s->e, s->e + s->head, (s->n - s->head) * sizeof *s->e);
		s->n -= s->head;
		s->head = 0;
		return 0;
	}
	size_t ncap = s->cap ? s->cap * 2 : 16;
	if (ncap > SIZE_MAX / sizeof *s->e)
		return -ENOMEM;
	struct entry *ne = realloc(s->e, ncap * sizeof *s->e);
	if (!ne)
		return -ENOMEM;
	s->e = ne;
	s->cap = ncap;
	return 0;
}

/* Index k in [head, n) of the pending record id, or n. */
static size_t find(const struct spool *s, uint64_t id)
{
	size_t lo = s->head, hi = s->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->e[mid].rec.id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < s->n && s->e[lo].rec.id == id ? lo : s->n;
}

/* Forget e[k]; moves whichever side of it is shorter. */
static void remove_at(struct spool *s, size_t k)
{
	s->live -= s->e[k].disk;
	entry_free(&s->e[k]);
	if (k - s->head < s->n - 1 - k) {
		memmove(s->e + s->head + 1, s->e + s->head, (k - s->head) * sizeof *s->e);
		s->head++;
	} else {
		memmove(s->e + k, s->e + k + 1, (s->n - 1 - k) * sizeof *s->e);
		s->n--;
	}
	if (s->head == s->n)
		s->head = s->n = 0;
}

/* Fill e[n] (ensure_slot done) from a record; takes mem. */
static void push(struct spool *s, char *mem, uint64_t id, int64_t created_us, size_t sink_len,
		 size_t body_len)
{
	struct entry *e = &s->e[s->n++];
	e->mem = mem;
	e->rec.id = id;
	e->rec.sink = mem;
	e->rec.sink_len = sink_len;
	e->rec.body = mem + sink_len + 1;
	e->rec.len = body_len;
	e->rec.created_us = created_us;
	e->disk = (uint64_t)HDR_LEN + sink_len + body_len;
	e->dead = false;
	s->live += e->disk;
}

static char *copy_rec(const char *sink, size_t sink_len, const void *body, size_t body_len)
{
	if (body_len > SIZE_MAX - 2 - sink_len)
		return NULL;
	char *mem = malloc(sink_len + body_len + 2);
	if (!mem)
		return NULL;
	memcpy(mem, sink, sink_len);
	mem[sink_len] = '\0';
	if (body_len)
		memcpy(mem + sink_len + 1, body, body_len);
	mem[sink_len + 1 + body_len] = '\0';
	return mem;
}

/* ---------------------------------------------------------------------------
 * Writing
 */
static int write_at(int fd, const void *data, size_t len, uint64_t off)
{
	const char *p = data;
	while (len > 0) {
		ssize_t w = io.pwrite(fd, p, len, (off_t)off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (w == 0)
			return -EIO;
		p += w;
		len -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

static int fsync_dir(const struct spool *s)
{
	int dfd = io.open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (dfd < 0)
		return -errno;
	int rc = io.fsync(dfd) < 0 ? -errno : 0;
	close(dfd);
	return rc;
}

/* Cut what a failed write left past end. 0 or -errno. */
static int cut_tail(struct spool *s)
{
	if (io.ftruncate(s->fd, (off_t)s->end) < 0) {
		s->tail_dirty = true;
		return -errno;
	}
	(void)io.fdatasync(s->fd); /* best effort: the next write syncs anyway */
	s->tail_dirty = false;
	return 0;
}

/*
 * Write len bytes at end and fdatasync them. On failure the file is cut back
 * to end and -errno returned; what names the operation for the log.
 */
static int commit(struct spool *s, const void *p, size_t len, const char *what)
{
	if (s->tail_dirty)
		(void)cut_tail(s); /* if it fails again, the write overwrites anyway */
	int rc = write_at(s->fd, p, len, s->end);
	if (rc == 0 && io.fdatasync(s->fd) < 0)
		rc = -errno;
	if (rc < 0) {
		s->write_failures++;
		/* The first failure, then the 2nd, 4th, 8th, … of a run. */
		if ((s->write_failures & (s->write_failures - 1)) == 0)
			kl_log(KL_LOG_ERROR,
			       "spool: cannot write %s to '%s' at offset %" PRIu64 ": %s"
			       " (%" PRIu64 " failure(s) in a row)",
			       what, s->path, s->end, strerror(-rc), s->write_failures);
		int trc = cut_tail(s);
		if (trc < 0)
			kl_log(KL_LOG_WARN,
			       "spool: cannot truncate '%s' back to %" PRIu64 " bytes: %s;"
			       " will retry before the next write",
			       s->path, s->end, strerror(-trc));
		return rc;
	}
	if (s->write_failures) {
		kl_log(KL_LOG_INFO, "spool: writing to '%s' works again after %" PRIu64
		       " failure(s)", s->path, s->write_failures);
		s->write_failures = 0;
	}
	s->end += len;
	s->st.bytes = s->end;
	return 0;
}

/* Rewrite the file with only the pending records. 0 or -errno (logged; the
 * old file stays in use). */
static int compact(struct spool *s)
{
	struct kl_buf img = { 0 };
	int fd = -1, rc;
	bool created = false;
	const char *step = "build the image of";

	rc = encode(&img, REC_NEXT, s->next_id, kl_wall_us(), NULL, 0, NULL, 0);
	for (size_t k = s->head; rc == 0 && k < s->n; k++) {
		const struct spool_rec *r = &s->e[k].rec;
		rc = encode(&img, REC_APPEND, r->id, r->created_us, r->sink, r->sink_len, r->body,
			    r->len);
	}
	if (rc < 0)
		goto fail;
	step = "create";
	fd = io.open(s->tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		goto fail;
	}
	created = true;
	step = "lock";
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) { /* before anyone can open it by name */
		rc = -errno;
		goto fail;
	}
	step = "write";
	rc = write_at(fd, img.p, img.len, 0);
	if (rc < 0)
		goto fail;
	step = "fsync";
	if (io.fsync(fd) < 0) {
		rc = -errno;
		goto fail;
	}
	step = "rename";
	if (io.rename(s->tmp, s->path) < 0) {
		rc = -errno;
		goto fail;
	}
	/* Committed: the new file is spool.log, and fd is it. */
	close(s->fd);
	s->fd = fd;
	s->end = img.len;
	s->st.bytes = s->end;
	s->st.compactions++;
	s->tail_dirty = false;
	s->compact_retry_at = 0;
	kl_buf_free(&img);
	rc = fsync_dir(s);
	if (rc < 0)
		kl_log(KL_LOG_WARN,
		       "spool: compacted '%s' but cannot fsync its directory: %s;"
		       " a power loss may bring back delivered notifications",
		       s->path, strerror(-rc));
	return 0;
fail:
	kl_log(KL_LOG_WARN, "spool: compaction failed (cannot %s '%s': %s); going on with '%s'",
	       step, s->tmp, strerror(-rc), s->path);
	if (fd >= 0)
		close(fd);
	if (created)
		unlink(s->tmp);
	kl_buf_free(&img);
	s->compact_retry_at = s->end + (s->end / 4 > COMPACT_MIN ? s->end / 4 : COMPACT_MIN);
	return rc;
}

static void maybe_compact(struct spool *s)
{
	uint64_t dead = s->end - s->live;
	if (s->end <= COMPACT_MIN || dead * 2 <= s->end)
		return;
	if (s->compact_retry_at && s->end < s->compact_retry_at)
		return;
	(void)compact(s);
}

static void log_drops(struct spool *s, bool force)
{
	if (!s->drops_unlogged)
		return;
	int64_t now = kl_mono_us();
	if (!force && s->drop_logged_us && now - s->drop_logged_us < DROP_LOG_EVERY_US)
		return;
	kl_log(KL_LOG_WARN,
	       "spool: '%s' is full (max %" PRIu64 " bytes): dropped the %" PRIu64
	       " oldest pending notification(s) (%" PRIu64 " since start)",
	       s->path, s->max_bytes, s->drops_unlogged, s->st.dropped);
	s->drops_unlogged = 0;
	s->drop_logged_us = now;
}

static void trim_scratch(struct spool *s)
{
	if (s->scratch.cap > SCRATCH_KEEP)
		kl_buf_free(&s->scratch);
}

/* ---------------------------------------------------------------------------
 * Loading
 */

/* The offset of the next good record at or after from, or size. */
static size_t resync(const unsigned char *buf, size_t size, size_t from)
{
	struct hdr h;
	while (from < size) {
		const unsigned char *m = memchr(buf + from, rec_magic[0], size - from);
		if (!m)
			break;
		size_t at = (size_t)(m - buf);
		if (decode(m, size - at, &h))
			return at;
		from = at + 1;
	}
	return size;
}

/* Apply one good record. Returns false when it is out of order (damage). */
static bool apply(struct spool *s, const struct hdr *h, const unsigned char *payload, int *rc)
{
	switch (h->type) {
	case REC_APPEND: {
		if (h->id < s->next_id)
			return false;
		char *mem = copy_rec((const char *)payload, h->sink_len, payload + h->sink_len,
				     h->body_len);
		if (!mem || ensure_slot(s) < 0) {
			free(mem);
			*rc = -ENOMEM;
			return true;
		}
		push(s, mem, h->id, h->created_us, h->sink_len, h->body_len);
		s->next_id = h->id + 1;
		break;
	}
	case REC_ACK: {
		/* Binary search works over dead entries: ids stay sorted. */
		size_t k = find(s, h->id);
		if (k < s->n && !s->e[k].dead) {
			s->e[k].dead = true;
			s->live -= s->e[k].disk;
		}
		if (h->id >= s->next_id)
			s->next_id = h->id + 1;
		break;
	}
	case REC_NEXT:
		/* Applied after loading: the APPENDs after it have lower ids. */
		if (h->id > s->next_floor)
			s->next_floor = h->id;
		break;
	}
	return true;
}

/* Parse the file's bytes into s. Sets s->end; *mid_damage when good records
 * follow a bad span. 0 or -ENOMEM. */
static int load(struct spool *s, const unsigned char *buf, size_t size, bool *mid_damage)
{
	size_t off = 0;
	int rc = 0;

	while (off < size && rc == 0) {
		struct hdr h;
		size_t len = decode(buf + off, size - off, &h);
		if (len && apply(s, &h, buf + off + HDR_LEN, &rc)) {
			off += len;
			s->end = off;
			continue;
		}
		size_t next = resync(buf, size, off + 1);
		s->st.torn++;
		kl_log(KL_LOG_WARN,
		       "spool: '%s': %s at offset %zu (%zu bytes skipped)", s->path,
		       next == size ? "torn or damaged tail" : "damaged record", off, next - off);
		if (next < size)
			*mid_damage = true;
		off = next;
	}
	if (s->next_floor > s->next_id)
		s->next_id = s->next_floor;
	/* Squeeze out the acknowledged records. */
	size_t w = 0;
	for (size_t k = 0; k < s->n; k++) {
		if (s->e[k].dead)
			entry_free(&s->e[k]);
		else
			s->e[w++] = s->e[k];
	}
	s->n = w;
	return rc;
}

static int read_all(int fd, unsigned char **out, size_t *outlen)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size > SIZE_MAX - 1)
		return -EFBIG;
	size_t size = (size_t)st.st_size, got = 0;
	unsigned char *buf = malloc(size ? size : 1);
	if (!buf)
		return -ENOMEM;
	while (got < size) {
		ssize_t r = pread(fd, buf + got, size - got, (off_t)got);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			int rc = -errno;
			free(buf);
			return rc;
		}
		if (r == 0)
			break; /* shrank under us: take what is there */
		got += (size_t)r;
	}
	*out = buf;
	*outlen = got;
	return 0;
}

static char *join(const char *a, const char *b)
{
	struct kl_buf p = { 0 };
	if (kl_buf_appendf(&p, "%s/%s", a, b) < 0)
		return NULL;
	return p.p;
}

int spool_open(const char *dir, uint64_t max_bytes, struct spool **out)
{
	unsigned char *buf = NULL;
	size_t size = 0;
	bool created = false, mid_damage = false;
	int rc;

	crc_init();
	struct spool *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->fd = -1;
	s->next_id = 1;
	s->max_bytes = max_bytes ? max_bytes : DEFAULT_MAX_BYTES;
	s->dir = kl_strndup(dir, strlen(dir));
	s->path = join(dir, "spool.log");
	s->tmp = join(dir, "spool.log.tmp");
	if (!s->dir || !s->path || !s->tmp) {
		rc = -ENOMEM;
		goto fail;
	}

	s->fd = io.open(s->path, O_RDWR | O_CLOEXEC, 0);
	if (s->fd < 0 && errno == ENOENT) {
		s->fd = io.open(s->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		created = true;
	}
	if (s->fd < 0) {
		rc = -errno;
		kl_log(KL_LOG_ERROR, "spool: cannot open '%s': %s", s->path, strerror(-rc));
		goto fail;
	}
	if (flock(s->fd, LOCK_EX | LOCK_NB) < 0) {
		rc = -errno;
		if (rc == -EWOULDBLOCK) {
			rc = -EBUSY;
			kl_log(KL_LOG_ERROR, "spool: '%s' is in use by another process"
			       " (two klaxons sharing a state_dir?)", s->path);
		} else {
			kl_log(KL_LOG_ERROR, "spool: cannot lock '%s': %s", s->path,
			       strerror(-rc));
		}
		goto fail;
	}
	if (created) {
		rc = fsync_dir(s);
		if (rc < 0) /* nothing in it yet: a lost entry loses nothing */
			kl_log(KL_LOG_WARN, "spool: cannot fsync directory '%s': %s", s->dir,
			       strerror(-rc));
	}
	if (unlink(s->tmp) == 0) /* left by a crash mid-compaction; spool.log is whole */
		kl_log(KL_LOG_INFO, "spool: removed '%s' left by an interrupted compaction",
		       s->tmp);

	rc = read_all(s->fd, &buf, &size);
	if (rc < 0) {
		kl_log(KL_LOG_ERROR, "spool: cannot read '%s': %s", s->path, strerror(-rc));
		goto fail;
	}
	rc = load(s, buf, size, &mid_damage);
	free(buf);
	if (rc < 0)
		goto fail;
	s->st.bytes = s->end;
	if (mid_damage)
		(void)compact(s); /* on failure: good records after the damage still load */
	if (s->end < size && !(mid_damage && s->st.compactions)) {
		rc = cut_tail(s);
		if (rc < 0)
			kl_log(KL_LOG_WARN,
			       "spool: cannot truncate '%s' to %" PRIu64 " bytes: %s;"
			       " will retry before the next write",
			       s->path, s->end, strerror(-rc));
	}
	if (s->n - s->head)
		kl_log(KL_LOG_INFO, "spool: %zu pending notification(s) in '%s'",
		       s->n - s->head, s->path);
	/* Over max_bytes (lowered since): the next append drops what it must. */
	maybe_compact(s);
	*out = s;
	return 0;
fail:
	spool_close(s);
	return rc;
}

void spool_close(struct spool *s)
{
	if (!s)
		return;
	if (s->fd >= 0 && s->tail_dirty)
		(void)cut_tail(s);
	log_drops(s, true);
	for (size_t k = s->head; k < s->n; k++)
		entry_free(&s->e[k]);
	free(s->e);
	if (s->fd >= 0)
		close(s->fd);
	kl_buf_free(&s->scratch);
	free(s->dir);
	free(s->path);
	free(s->tmp);
	free(s);
}

int spool_append(struct spool *s, const char *sink, const void *body, size_t len,
		 int64_t now_us, uint64_t *id)
{
	if (!s || !sink || (!body && len))
		return -EINVAL;
	size_t sink_len = strlen(sink);
	if (sink_len > UINT16_MAX)
		return -ENAMETOOLONG;
	uint64_t disk = (uint64_t)HDR_LEN + sink_len + len;
	if ((uint64_t)len > UINT32_MAX || disk > s->max_bytes) {
		kl_log(KL_LOG_WARN,
		       "spool: a notification of %zu bytes for sink '%s' cannot fit in '%s'"
		       " (max %" PRIu64 " bytes)", len, sink, s->path, s->max_bytes);
		return -EFBIG;
	}

	char *mem = copy_rec(sink, sink_len, body, len);
	int rc = mem ? ensure_slot(s) : -ENOMEM;
	if (rc < 0)
		goto fail;

	/* The oldest records that must go, with an ACK each, in the same write. */
	size_t ndrop = 0;
	uint64_t live = s->live;
	int64_t wall = kl_wall_us();
	kl_buf_reset(&s->scratch);
	while (rc == 0 && live + disk > s->max_bytes) {
		const struct entry *e = &s->e[s->head + ndrop++];
		live -= e->disk;
		rc = encode(&s->scratch, REC_ACK, e->rec.id, wall, NULL, 0, NULL, 0);
	}
	if (rc == 0)
		rc = encode(&s->scratch, REC_APPEND, s->next_id, now_us, sink, sink_len, body,
			    len);
	if (rc == 0)
		rc = commit(s, s->scratch.p, s->scratch.len, "a notification");
	trim_scratch(s);
	if (rc < 0)
		goto fail;

	for (size_t i = 0; i < ndrop; i++)
		remove_at(s, s->head);
	s->st.dropped += ndrop;
	s->drops_unlogged += ndrop;
	/* Still room at e[n]: removals never move n up. */
	push(s, mem, s->next_id, now_us, sink_len, len);
	if (id)
		*id = s->next_id;
	s->next_id++;
	s->st.appended++;
	log_drops(s, false);
	maybe_compact(s);
	return 0;
fail:
	free(mem);
	return rc;
}

int spool_ack(struct spool *s, uint64_t id)
{
	size_t k = find(s, id);
	if (k == s->n)
		return -ENOENT;
	kl_buf_reset(&s->scratch);
	int rc = encode(&s->scratch, REC_ACK, id, kl_wall_us(), NULL, 0, NULL, 0);
	if (rc == 0)
		rc = commit(s, s->scratch.p, s->scratch.len, "an acknowledgement");
	/* Forgotten even on failure: see the opening comment. */
	remove_at(s, k);
	s->st.acked++;
	if (rc == 0)
		maybe_compact(s);
	return rc;
}

size_t spool_pending(const struct spool *s)
{
	return s->n - s->head;
}

const struct spool_rec *spool_get(const struct spool *s, size_t i)
{
	return i < s->n - s->head ? &s->e[s->head + i].rec : NULL;
}

void spool_get_stats(const struct spool *s, struct spool_stats *out)
{
	*out = s->st;
	out->bytes = s->end;
}
