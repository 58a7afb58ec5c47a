/*
 * test_spool.c — unit tests for sinks/spool.c: the append-only notification
 * spool. Records survive close/reopen, a SIGKILL and torn or damaged bytes;
 * compaction and the size bound keep the file small; failing writes, fsyncs,
 * renames and opens (through the spool's fault-injection table) leave a file
 * that reopens with exactly the records whose append succeeded.
 *
 * Each test gets a fresh directory; a model (struct model) says what the
 * spool must hold and check() compares every field and byte.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "sinks/sinks_int.h"

/* The spool's test hook (sinks/spool.c): NULL restores the real call. */
extern void spool_test_set_io(int (*open_fn)(const char *, int, mode_t),
			      ssize_t (*pwrite_fn)(int, const void *, size_t, off_t),
			      int (*fdatasync_fn)(int), int (*fsync_fn)(int),
			      int (*rename_fn)(const char *, const char *),
			      int (*ftruncate_fn)(int, off_t));

#define HDR 32

static void io_reset(void)
{
	spool_test_set_io(NULL, NULL, NULL, NULL, NULL, NULL);
}

/* ------------------------------------------------------------------------- */
/* fixture and model */

struct fx {
	char dir[PATH_MAX];
	char path[PATH_MAX + 16];
	char tmp[PATH_MAX + 16];
};

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof *fx);
	if (!fx)
		return -1;
	const char *t = getenv("TMPDIR");
	snprintf(fx->dir, sizeof fx->dir, "%s/klaxon-spool-XXXXXX", t && *t ? t : "/tmp");
	if (!mkdtemp(fx->dir))
		return -1;
	snprintf(fx->path, sizeof fx->path, "%s/spool.log", fx->dir);
	snprintf(fx->tmp, sizeof fx->tmp, "%s/spool.log.tmp", fx->dir);
	kl_log_set_quiet(true);
	io_reset();
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	io_reset();
	unlink(fx->path);
	unlink(fx->tmp);
	rmdir(fx->dir);
	free(fx);
	return 0;
}

struct mrec {
	uint64_t id;
	char sink[16];
	unsigned tag;
	size_t len;
	int64_t created;
};

struct model {
	struct mrec r[4096];
	size_t n;
};

/* Body bytes of a tag: every byte value occurs, NUL and 0xF5 included. */
static void fill_body(unsigned char *p, unsigned tag, size_t len)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char)(tag * 131u + i * 7u + (i >> 8));
}

static uint64_t disk_size(const char *sink, size_t len)
{
	return HDR + strlen(sink) + len;
}

static int append_rc(struct spool *s, const char *sink, unsigned tag, size_t len, uint64_t *id)
{
	unsigned char *b = malloc(len ? len : 1);
	assert_non_null(b);
	fill_body(b, tag, len);
	int rc = spool_append(s, sink, b, len, 1000000 + (int64_t)tag, id);
	free(b);
	return rc;
}

/* Append, expect success, record it in m. */
static uint64_t add(struct spool *s, struct model *m, const char *sink, unsigned tag, size_t len)
{
	uint64_t id = 0;
	assert_int_equal(append_rc(s, sink, tag, len, &id), 0);
	assert_true(m->n < KL_ARRAY_LEN(m->r));
	struct mrec *r = &m->r[m->n++];
	r->id = id;
	snprintf(r->sink, sizeof r->sink, "%s", sink);
	r->tag = tag;
	r->len = len;
	r->created = 1000000 + (int64_t)tag;
	return id;
}

static void model_remove(struct model *m, uint64_t id)
{
	for (size_t i = 0; i < m->n; i++) {
		if (m->r[i].id == id) {
			memmove(&m->r[i], &m->r[i + 1], (m->n - i - 1) * sizeof m->r[0]);
			m->n--;
			return;
		}
	}
	fail_msg("id %llu not in the model", (unsigned long long)id);
}

static void ack(struct spool *s, struct model *m, uint64_t id)
{
	assert_int_equal(spool_ack(s, id), 0);
	model_remove(m, id);
}

static void check(const struct spool *s, const struct model *m)
{
	assert_int_equal(spool_pending(s), m->n);
	unsigned char *b = NULL;
	for (size_t i = 0; i < m->n; i++) {
		const struct spool_rec *r = spool_get(s, i);
		const struct mrec *e = &m->r[i];
		assert_non_null(r);
		assert_int_equal(r->id, e->id);
		assert_int_equal(r->sink_len, strlen(e->sink));
		assert_memory_equal(r->sink, e->sink, r->sink_len);
		assert_int_equal(r->sink[r->sink_len], '\0');
		assert_int_equal(r->len, e->len);
		assert_int_equal(r->created_us, e->created);
		b = realloc(b, e->len + 1);
		assert_non_null(b);
		fill_body(b, e->tag, e->len);
		if (e->len)
			assert_memory_equal(r->body, b, e->len);
		assert_int_equal(r->body[r->len], '\0');
		if (i)
			assert_true(r->id > spool_get(s, i - 1)->id);
	}
	assert_null(spool_get(s, m->n));
	free(b);
}

static struct spool *open_ok(const struct fx *fx, uint64_t max)
{
	struct spool *s = NULL;
	assert_int_equal(spool_open(fx->dir, max, &s), 0);
	assert_non_null(s);
	return s;
}

static struct spool_stats stats(const struct spool *s)
{
	struct spool_stats st;
	spool_get_stats(s, &st);
	return st;
}

static uint64_t file_size(const char *path)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	return (uint64_t)st.st_size;
}

static bool exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

static unsigned char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	unsigned char *p = NULL;
	size_t n = 0, cap = 0;
	for (;;) {
		if (n == cap) {
			cap = cap ? cap * 2 : 4096;
			p = realloc(p, cap);
			assert_non_null(p);
		}
		size_t r = fread(p + n, 1, cap - n, f);
		if (r == 0)
			break;
		n += r;
	}
	fclose(f);
	*len = n;
	return p;
}

static void spit(const char *path, const void *p, size_t len)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	if (len)
		assert_int_equal(fwrite(p, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* Reopen and compare with the model; returns the new spool. */
static struct spool *reopen(const struct fx *fx, struct spool *s, uint64_t max,
			    const struct model *m)
{
	spool_close(s);
	s = open_ok(fx, max);
	check(s, m);
	return s;
}

/* ------------------------------------------------------------------------- */
/* An independent, bitwise CRC-32C and record encoder, from the format
 * described at the top of sinks/spool.c. */

static uint32_t crc32c_bitwise(const unsigned char *p, size_t n)
{
	uint32_t c = 0xffffffffu;
	for (size_t i = 0; i < n; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = (c & 1u) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
	}
	return ~c;
}

static size_t enc(unsigned char *out, unsigned type, uint64_t id, int64_t created,
		  const char *sink, const void *body, size_t blen)
{
	size_t slen = sink ? strlen(sink) : 0;
	memcpy(out, "\xf5KSP", 4);
	out[8] = (unsigned char)type;
	out[9] = 1;
	for (int i = 0; i < 2; i++)
		out[10 + i] = (unsigned char)(slen >> (8 * i));
	for (int i = 0; i < 4; i++)
		out[12 + i] = (unsigned char)(blen >> (8 * i));
	for (int i = 0; i < 8; i++) {
		out[16 + i] = (unsigned char)(id >> (8 * i));
		out[24 + i] = (unsigned char)((uint64_t)created >> (8 * i));
	}
	if (slen)
		memcpy(out + HDR, sink, slen);
	if (blen)
		memcpy(out + HDR + slen, body, blen);
	uint32_t c = crc32c_bitwise(out + 8, HDR - 8 + slen + blen);
	for (int i = 0; i < 4; i++)
		out[4 + i] = (unsigned char)(c >> (8 * i));
	return HDR + slen + blen;
}

/* ------------------------------------------------------------------------- */
/* basics */

static void test_open_empty(void **state)
{
	struct fx *fx = *state;
	struct spool *s = open_ok(fx, 0);
	assert_true(exists(fx->path));
	assert_int_equal(spool_pending(s), 0);
	assert_null(spool_get(s, 0));
	struct spool_stats st = stats(s);
	assert_int_equal(st.bytes, 0);
	assert_int_equal(st.torn, 0);
	assert_int_equal(spool_ack(s, 1), -ENOENT);
	spool_close(s);
	spool_close(NULL);
	assert_int_equal(file_size(fx->path), 0);
}

static void test_format(void **state)
{
	struct fx *fx = *state;
	unsigned char want[256];
	assert_int_equal(crc32c_bitwise((const unsigned char *)"123456789", 9), 0xe3069283u);

	/* What the spool writes is what the format says. */
	struct spool *s = open_ok(fx, 0);
	uint64_t id = 0;
	assert_int_equal(spool_append(s, "web", "hello", 5, 1234, &id), 0);
	assert_int_equal(id, 1);
	spool_close(s);
	size_t len;
	unsigned char *got = slurp(fx->path, &len);
	size_t wlen = enc(want, 1, 1, 1234, "web", "hello", 5);
	assert_int_equal(len, wlen);
	assert_memory_equal(got, want, wlen);
	free(got);

	/* And a file written by hand reads back: NEXT 10, APPEND 12, APPEND 13,
	 * ACK 12, APPEND 14 with an empty body. */
	size_t n = 0;
	n += enc(want + n, 3, 10, 0, NULL, NULL, 0);
	n += enc(want + n, 1, 12, 77, "a", "x\0y", 3);
	n += enc(want + n, 1, 13, 78, "bb", "zz", 2);
	n += enc(want + n, 2, 12, 0, NULL, NULL, 0);
	n += enc(want + n, 1, 14, 79, "c", NULL, 0);
	spit(fx->path, want, n);
	s = open_ok(fx, 0);
	assert_int_equal(spool_pending(s), 2);
	const struct spool_rec *r = spool_get(s, 0);
	assert_int_equal(r->id, 13);
	assert_int_equal(r->created_us, 78);
	assert_int_equal(r->sink_len, 2);
	assert_string_equal(r->sink, "bb");
	assert_int_equal(r->len, 2);
	assert_memory_equal(r->body, "zz", 2);
	r = spool_get(s, 1);
	assert_int_equal(r->id, 14);
	assert_int_equal(r->len, 0);
	assert_string_equal(r->body, "");
	assert_int_equal(stats(s).torn, 0);
	assert_int_equal(stats(s).bytes, n);
	assert_int_equal(spool_append(s, "d", "", 0, 1, &id), 0);
	assert_int_equal(id, 15);
	spool_close(s);
}

static void test_append_ack_reopen(void **state)
{
	struct fx *fx = *state;
	struct model m = { 0 };
	struct spool *s = open_ok(fx, 0);
	uint64_t ids[6];
	ids[0] = add(s, &m, "web", 1, 100);
	ids[1] = add(s, &m, "slack", 2, 0);
	ids[2] = add(s, &m, "web", 3, 5000);
	ids[3] = add(s, &m, "", 4, 1);
	ids[4] = add(s, &m, "teams", 5, 257);
	ids[5] = add(s, &m, "web", 6, 64);
	for (size_t i = 1; i < 6; i++)
		assert_true(ids[i] > ids[i - 1]);
	check(s, &m);
	ack(s, &m, ids[1]);
	ack(s, &m, ids[3]);
	ack(s, &m, ids[5]); /* the newest */
	assert_int_equal(spool_ack(s, ids[3]), -ENOENT);
	check(s, &m);
	struct spool_stats st = stats(s);
	assert_int_equal(st.appended, 6);
	assert_int_equal(st.acked, 3);
	assert_int_equal(st.bytes, file_size(fx->path));

	s = reopen(fx, s, 0, &m);
	st = stats(s);
	assert_int_equal(st.torn, 0);
	assert_int_equal(st.bytes, file_size(fx->path));
	ack(s, &m, ids[0]);
	s = reopen(fx, s, 0, &m);
	ack(s, &m, ids[2]);
	ack(s, &m, ids[4]);
	s = reopen(fx, s, 0, &m);
	assert_int_equal(spool_pending(s), 0);
	spool_close(s);
}

static void test_ids_increase(void **state)
{
	struct fx *fx = *state;
	struct model m = { 0 };
	struct spool *s = open_ok(fx, 0);
	uint64_t last = 0;
	for (unsigned round = 0; round < 4; round++) {
		for (unsigned i = 0; i < 3; i++) {
			uint64_t id = add(s, &m, "w", round * 10 + i, 10);
			assert_true(id > last);
			last = id;
		}
		while (m.n)
			ack(s, &m, m.r[m.n - 1].id); /* newest first */
		s = reopen(fx, s, 0, &m);
	}
	assert_int_equal(last, 12);

	/* Compact with the newest acknowledged: only NEXT remembers the id. */
	for (unsigned i = 0; i < 40; i++)
		last = add(s, &m, "w", i, 4000);
	for (unsigned i = 0; i < 38; i++)
		ack(s, &m, m.r[m.n - 1].id);
	assert_true(stats(s).compactions >= 1);
	s = reopen(fx, s, 0, &m);
	assert_true(add(s, &m, "w", 99, 1) == last + 1);
	spool_close(s);
}

static void test_lock(void **state)
{
	struct fx *fx = *state;
	struct spool *s = open_ok(fx, 0), *s2 = NULL;
	assert_int_equal(spool_open(fx->dir, 0, &s2), -EBUSY);
	assert_null(s2); /* untouched */
	spool_close(s);
	s = open_ok(fx, 0);
	spool_close(s);
}

static void test_bad_args(void **state)
{
	struct fx *fx = *state;
	struct spool *s = open_ok(fx, 0);
	uint64_t id = 77;
	assert_int_equal(spool_append(s, NULL, "x", 1, 0, &id), -EINVAL);
	assert_int_equal(spool_append(s, "w", NULL, 1, 0, &id), -EINVAL);
	char *big = malloc(70000);
	assert_non_null(big);
	memset(big, 'a', 69999);
	big[69999] = '\0';
	assert_int_equal(spool_append(s, big, "x", 1, 0, &id), -ENAMETOOLONG);
	free(big);
	assert_int_equal(id, 77);
	assert_int_equal(spool_append(s, "w", NULL, 0, 0, NULL), 0);
	assert_int_equal(spool_pending(s), 1);
	spool_close(s);
	/* A directory that is not there. */
	char nodir[PATH_MAX + 16];
	snprintf(nodir, sizeof nodir, "%s/missing", fx->dir);
	s = NULL;
	assert_int_equal(spool_open(nodir, 0, &s), -ENOENT);
	assert_null(s);
}

/* ------------------------------------------------------------------------- */
/* damage */

static void test_torn_tail(void **state)
{
	struct fx *fx = *state;
	struct model m = { 0 };
	struct spool *s = open_ok(fx, 0);
	add(s, &m, "web", 1, 100);
	add(s, &m, "web", 2, 200);
	spool_close(s);
	uint64_t good = file_size(fx->path);
	s = open_ok(fx, 0);
	add(s, &m, "web", 3, 300);
	spool_close(s);
	size_t len;
	unsigned char *orig = slurp(fx->path, &len);
	size_t last = len - good;
	assert_int_equal(last, HDR + 3 + 300);

	const size_t cuts[] = { 1, 2, 3, 31, 32, 33, 100, 300, last - 33, last - 32, last - 4,
				last - 1 };
	for (size_t c = 0; c < KL_ARRAY_LEN(cuts); c++) {
		spit(fx->path, orig, len - cuts[c]);
		struct model mm = m;
		mm.n = 2; /* the third is torn */
		s = open_ok(fx, 0);
		check(s, &mm);
		struct spool_stats st = stats(s);
		assert_int_equal(st.torn, 1);
		assert_int_equal(st.bytes, good);
		assert_int_equal(file_size(fx->path), good);
		/* Appends after it are readable on the next open. */
		uint64_t id = add(s, &mm, "new", 40 + (unsigned)c, 50);
		assert_int_equal(id, 3); /* 3 never made it to the file */
		add(s, &mm, "new", 41, 0);
		s = reopen(fx, s, 0, &mm);
		assert_int_equal(stats(s).torn, 0);
		spool_close(s);
	}
	free(orig);
}

static void test_garbage_tail(void **state)
{
	struct fx *fx = *state;
	struct model m = { 0 };
	struct spool *s = open_ok(fx, 0);
	add(s, &m, "web", 1, 100);
	uint64_t id2 = add(s, &m, "web", 2, 200);
	spool_close(s);
	size_t len;
	unsigned char *orig = slurp(fx->path, &len);

	/* Random bytes, a lone magic, a plausible header with a bad CRC, and a
	 * full record copy with one bit flipped. */
	unsigned char tail[2048];
	size_t tl = 0;
	for (unsigned i = 0; i < 700; i++)
		tail[tl++] = (unsigned char)(i * 2654435761u >> 13);
	memcpy(tail + tl, "\xf5KS", 3);
	tl += 3;
	tl += enc(tail + tl, 1, id2 + 1, 5, "x", "abc", 3);
	tail[tl - 1] ^= 0x01;
	memcpy(tail + tl, "\xf5KSP", 4);
	tl += 4;

	unsigned char *buf = malloc(len + tl);
	assert_non_null(buf);
	memcpy(buf, orig, len);
	memcpy(buf + len, tail, tl);
	spit(fx->path, buf, len + tl);
	s = open_ok(fx, 0);
	check(s, &m);
	assert_int_equal(stats(s).torn, 1);
	assert_int_equal(file_size(fx->path), len);
	add(s, &m, "web", 3, 10);
	s = reopen(fx, s, 0, &m);
	assert_int_equal(stats(s).torn, 0);
	spool_close(s);

	/* A file of nothing but garbage: empty spool, truncated. */
	spit(fx->path, tail, 700);
	s = open_ok(fx, 0);
	assert_int_equal(spool_pending(s), 0);
	assert_int_equal(stats(s).torn, 1);
	assert_int_equal(file_size(fx->path), 0);
	spool_close(s);
	free(buf);
	free(orig);
}

/*
 * Policy for damage in the middle: the damaged record is skipped (counted in
 * torn), the reader resynchronises on the next good record, and the records
 * after it are kept; the file is rewritten at once.
 */
static void flip_middle(const struct fx *fx, size_t byte_in_rec)
{
	struct model m = { 0 };
	struct spool *s = open_ok(fx, 0);
	add(s, &m, "web", 1, 100);
	uint64_t first_end = stats(s).bytes;
	uint64_t mid = add(s, &m, "web", 2, 200);
	add(s, &m, "web", 3, 300);
	spool_close(s);
	size_t len;
	unsigned char *b = slurp(fx->path, &len);
	b[first_end + byte_in_rec] ^= 0x20;
	spit(fx->path, b, len);
	free(b);

	model_remove(&m, mid);
	s = open_ok(fx, 0);
	check(s, &m);
	struct spool_stats st = stats(s);
	assert_int_equal(st.torn, 1);
	assert_int_equal(st.compactions, 1);
	assert_int_equal(st.bytes, file_size(fx->path));
	assert_int_equal(add(s, &m, "web", 4, 10), 4);
	s = reopen(fx, s, 0, &m);
	assert_int_equal(stats(s).torn, 0);
	spool_close(s);
	unlink(fx->path);
}

static void test_flipped_byte_middle(void **state)
{
	struct fx *fx = *state;
	flip_middle(fx, 0);	   /* magic */
	flip_middle(fx, 5);	   /* CRC */
	flip_middle(fx, 12);	   /* body length */
	flip_middle(fx, 17);	   /* id */
	flip_middle(fx, HDR + 1);  /* sink name */
	flip_middle(fx, HDR + 99); /* body */
}

/* A damaged ACK brings its record back: at-least-once. */
static void test_damaged_ack(void **state)
{
	struct fx *fx = *state;
	struct model m = { 0 };
	struct spool *s = open_ok(fx, 0);
	add(s, &m, "web", 1, 10);
	uint64_t id = add(s, &m, "web", 2, 10);
	add(s, &m, "web", 3, 10);
	struct model before = m;
	ack(s, &m, id);
	spool_close(s);
	size_t len;
	unsigned char *b = slurp(fx->path, &len);
	b[len - 10] ^= 0x01; /* inside the ACK, the last record */
	spit(fx->path, b, len);
	free(b);
	s = open_ok(fx, 0);
	check(s, &before);
	assert_int_equal(stats(s).torn, 1);
	spool_close(s);
}

/* An APPEND whose id goes backwards (a stray copy) is damage, not data. */
static void test_odd_records(void **state)
{
	struct fx *fx = *state;
	unsigned char buf[512];
	size_t n = 0;
	n += enc(buf + n, 1, 5, 1, "a", "five", 4);
	n += enc(buf + n, 1, 4, 1, "a", "four", 4);
	n += enc(buf + n, 1, 6, 1, "a", "six", 3);
	spit(fx->path, buf, n);
	struct spool *s = open_ok(fx, 0);
	assert_int_equal(spool_pending(s), 2);
	assert_int_equal(spool_get(s, 0)->id, 5);
	assert_int_equal(spool_get(s, 1)->id, 6);
	assert_int_equal(stats(s).torn, 1);
	spool_close(s);

	/* Checksummed but impossible: an unknown type, an ACK with a body, id 0.
	 * An ACK whose APPEND was lost still raises the next id. */
	n = 0;
	n += enc(buf + n, 1, 1, 1, "a", "one", 3);
	n += enc(buf + n, 7, 2, 1, NULL, NULL, 0);
	n += enc(buf + n, 2, 1, 1, "a", "x", 1);
	n += enc(buf + n, 1, 0, 1, "a", "zero", 4);
	n += enc(buf + n, 2, 9, 1, NULL, NULL, 0);
	spit(fx->path, buf, n);
	s = open_ok(fx, 0);
	assert_int_equal(spool_pending(s), 1);
	assert_int_equal(spool_get(s, 0)->id, 1);
	assert_int_equal(stats(s).torn, 1); /* one span of three bad records */
	uint64_t id = 0;
	assert_int_equal(spool_append(s, "a", "b", 1, 1, &id), 0);
	assert_int_equal(id, 10);
	spool_close(s);
}

/* ------------------------------------------------------------------------- */
/* compaction and the bound */

static void test_compaction(void **state)
{
	struct fx *fx = *state;
	struct model m = { 0 };
	struct spool *s = open_ok(fx, 0);
	for (unsigned i = 0; i < 40; i++)
		add(s, &m, i % 2 ? "web" : "slack", i, 4000);
	uint64_t full = file_size(fx->path);
	assert_int_equal(stats(s).compactions, 0);
	for (unsigned i = 0; i < 30; i++)
		ack(s, &m, m.r[0].id);
	check(s, &m);
	struct spool_stats st = stats(s);
	assert_true(st.compactions >= 1);
	assert_int_equal(st.bytes, file_size(fx->path));
	assert_true(st.bytes < full / 2);
	assert_false(exists(fx->tmp));
	s = reopen(fx, s, 0, &m);
	assert_int_equal(stats(s).torn, 0);

	/* Everything acknowledged, newest last: the next id still follows. */
	for (unsigned i = 0; i < 30; i++)
		add(s, &m, "web", 100 + i, 4000);
	while (m.n > 1)
		ack(s, &m, m.r[0].id);
	uint64_t last = m.r[0].id;
	ack(s, &m, last);
	s = reopen(fx, s, 0, &m);
	assert_int_equal(add(s, &m, "web", 1, 1), last + 1);
	spool_close(s);
}

static void test_max_bytes_drops_oldest(void **state)
{
	struct fx *fx = *state;
	struct model m = { 0 };
	const uint64_t rec = disk_size("s", 100);
	const uint64_t max = rec * 10;
	struct spool *s = open_ok(fx, max);
	for (unsigned i = 0; i < 15; i++) {
		add(s, &m, "s", i, 100);
		if (m.n > 10)
			memmove(&m.r[0], &m.r[1], --m.n * sizeof m.r[0]);
	}
	check(s, &m);
	assert_int_equal(m.r[0].id, 6);
	struct spool_stats st = stats(s);
	assert_int_equal(st.dropped, 5);
	assert_int_equal(st.appended, 15);
	s = reopen(fx, s, max, &m);

	/* One record as big as three drops three. */
	add(s, &m, "s", 50, 3 * rec - disk_size("s", 0));
	memmove(&m.r[0], &m.r[3], (m.n - 3) * sizeof m.r[0]);
	m.n -= 3;
	check(s, &m);
	assert_int_equal(stats(s).dropped, 3);
	s = reopen(fx, s, max, &m);

	/* A lower bound at open: the next append drops what it must. */
	spool_close(s);
	s = open_ok(fx, rec * 2);
	check(s, &m);
	add(s, &m, "s", 60, 100);
	m.r[0] = m.r[m.n - 1];
	m.n = 1;
	check(s, &m);
	s = reopen(fx, s, rec * 2, &m);
	spool_close(s);
}

static void test_efbig(void **state)
{
	struct fx *fx = *state;
	struct model m = { 0 };
	struct spool *s = open_ok(fx, 1000);
	add(s, &m, "s", 1, 10);
	uint64_t before = file_size(fx->path), id = 5;
	assert_int_equal(append_rc(s, "s", 2, 1000, &id), -EFBIG);
	assert_int_equal(append_rc(s, "s", 2, 1000 - HDR, &id), -EFBIG); /* 1 over */
	assert_int_equal(id, 5);
	check(s, &m);
	assert_int_equal(file_size(fx->path), before);
	assert_int_equal(stats(s).dropped, 0);
	/* Exactly max_bytes fits, after dropping everything else. */
	add(s, &m, "s", 3, 1000 - HDR - 1);
	m.r[0] = m.r[1];
	m.n = 1;
	check(s, &m);
	assert_int_equal(stats(s).dropped, 1);
	s = reopen(fx, s, 1000, &m);
	spool_close(s);
}

/* ------------------------------------------------------------------------- */
/* fault injection */

static int calls;	/* hook calls since the hook was installed */
static int fail_errno;	/* what the failing hooks set */

static ssize_t pw_short_then_fail(int fd, const void *p, size_t n, off_t off)
{
	if (calls++ == 0)
		return pwrite(fd, p, n / 2, off);
	errno = fail_errno;
	return -1;
}

static ssize_t pw_eintr_and_short(int fd, const void *p, size_t n, off_t off)
{
	if (calls++ % 2 == 0) {
		errno = EINTR;
		return -1;
	}
	return pwrite(fd, p, n < 7 ? n : 7, off);
}

static ssize_t pw_zero(int fd, const void *p, size_t n, off_t off)
{
	(void)fd, (void)p, (void)n, (void)off;
	return 0;
}

static int fail_sync(int fd)
{
	(void)fd;
	calls++;
	errno = fail_errno;
	return -1;
}

static int fail_truncate(int fd, off_t len)
{
	(void)fd, (void)len;
	errno = EIO;
	return -1;
}

static int fail_rename(const char *a, const char *b)
{
	(void)a, (void)b;
	calls++;
	errno = fail_errno;
	return -1;
}

static int fail_open(const char *p, int flags, mode_t mode)
{
	(void)p, (void)flags, (void)mode;
	errno = fail_errno;
	return -1;
}

static int fsync_fail_dirs(int fd)
{
	struct stat st;
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		calls++;
		errno = EIO;
		return -1;
	}
	return fsync(fd);
}

static int fsync_fail_files(int fd)
{
	struct stat st;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
		calls++;
		errno = EIO;
		return -1;
	}
	return fsync(fd);
}

static void test_fault_short_write(void **state)
{
	struct fx *fx = *state;
	struct model m = { 0 };
	struct spool *s = open_ok(fx, 0);
	add(s, &m, "web", 1, 100);
	add(s, &m, "web", 2, 100);
	uint64_t before = file_size(fx->path), id = 99;
	calls = 0;
	fail_errno = ENOSPC;
	spool_test_set_io(NULL, pw_short_then_fail, NULL, NULL, NULL, NULL);
	assert_int_equal(append_rc(s, "web", 3, 1000, &id), -ENOSPC);
	assert_int_equal(calls, 2);
	io_reset();
	assert_int_equal(id, 99);
	check(s, &m);
	assert_int_equal(file_size(fx->path), before); /* cut back */
	assert_int_equal(stats(s).bytes, before);
	assert_int_equal(stats(s).appended, 2);
	/* A write of 0 bytes is an error too, not a loop. */
	spool_test_set_io(NULL, pw_zero, NULL, NULL, NULL, NULL);
	assert_int_equal(append_rc(s, "web", 3, 10, &id), -EIO);
	io_reset();
	add(s, &m, "web", 4, 10);
	s = reopen(fx, s, 0, &m);
	assert_int_equal(stats(s).torn, 0);
	spool_close(s);
}

static void test_fault_eintr_short(void **state)
{
	struct fx *fx = *state;
	struct model m = { 0 };
	struct spool *s = open_ok(fx, 0);
	calls = 0;
	spool_test_set_io(NULL, pw_eintr_and_short, NULL, NULL, NULL, NULL);
	add(s, &m, "web", 1, 300);
	add(s, &m, "web", 2, 0);
	assert_true(calls > 50);
	io_reset();
	s = reopen(fx, s, 0, &m);
	assert_int_equal(stats(s).torn, 0);
	spool_close(s);
}

static void test_fault_fdatasync(void **state)
{
	struct fx *fx = *state;
	struct model m = { 0 };
	struct spool *s = open_ok(fx, 0);
	uint64_t a = add(s, &m, "web", 1, 100);
	uint64_t before = file_size(fx->path), id = 0;
	calls = 0;
	fail_errno = EIO;
	spool_test_set_io(NULL, NULL, fail_sync, NULL, NULL, NULL);
	assert_int_equal(append_rc(s, "web", 2, 100, &id), -EIO);
	assert_true(calls >= 1);
	check(s, &m);
	assert_int_equal(file_size(fx->path), before);
	/* An ACK that cannot be synced: forgotten now, back after a restart. */
	struct model keep = m;
	assert_int_equal(spool_ack(s, a), -EIO);
	io_reset();
	assert_int_equal(spool_pending(s), 0);
	assert_int_equal(spool_ack(s, a), -ENOENT);
	assert_int_equal(file_size(fx->path), before);
	spool_close(s);
	s = open_ok(fx, 0);
	check(s, &keep);
	assert_int_equal(stats(s).torn, 0);
	/* The failed append's id may come again: it never reached the file. */
	assert_true(add(s, &keep, "web", 3, 1) > a);
	s = reopen(fx, s, 0, &keep);
	spool_close(s);
}

static void test_fault_truncate_too(void **state)
{
	struct fx *fx = *state;
	struct model m = { 0 };
	struct spool *s = open_ok(fx, 0);
	add(s, &m, "web", 1, 100);
	uint64_t before = file_size(fx->path);
	uint64_t id;

	/* The write leaves 1000 bytes and the truncation fails: the next
	 * append (shorter) first retries the truncation. */
	calls = 0;
	fail_errno = ENOSPC;
	spool_test_set_io(NULL, pw_short_then_fail, NULL, NULL, NULL, fail_truncate);
	assert_int_equal(append_rc(s, "web", 2, 2000, &id), -ENOSPC);
	io_reset();
	assert_true(file_size(fx->path) > before);
	check(s, &m);
	add(s, &m, "web", 3, 10);
	assert_int_equal(file_size(fx->path), stats(s).bytes);
	s = reopen(fx, s, 0, &m);
	assert_int_equal(stats(s).torn, 0);

	/* The truncation keeps failing: the next record overwrites the
	 * leftovers, which are a torn tail at the next open. */
	calls = 0;
	spool_test_set_io(NULL, pw_short_then_fail, NULL, NULL, NULL, fail_truncate);
	assert_int_equal(append_rc(s, "web", 4, 2000, &id), -ENOSPC);
	spool_test_set_io(NULL, NULL, NULL, NULL, NULL, fail_truncate);
	add(s, &m, "web", 5, 10);
	check(s, &m);
	spool_close(s);
	io_reset();
	s = open_ok(fx, 0);
	check(s, &m);
	assert_int_equal(stats(s).torn, 1);
	s = reopen(fx, s, 0, &m);
	assert_int_equal(stats(s).torn, 0);
	spool_close(s);
}

/* A torn tail that cannot be truncated at open: the spool opens all the
 * same and writes over it. */
static void test_fault_truncate_at_open(void **state)
{
	struct fx *fx = *state;
	struct model m = { 0 };
	struct spool *s = open_ok(fx, 0);
	add(s, &m, "web", 1, 10);
	add(s, &m, "web", 2, 300);
	spool_close(s);
	assert_int_equal(truncate(fx->path, (off_t)file_size(fx->path) - 1), 0);
	m.n = 1;
	spool_test_set_io(NULL, NULL, NULL, NULL, NULL, fail_truncate);
	s = open_ok(fx, 0);
	check(s, &m);
	assert_int_equal(stats(s).torn, 1);
	add(s, &m, "web", 3, 10);
	spool_close(s);
	io_reset();
	s = open_ok(fx, 0);
	check(s, &m);
	assert_int_equal(stats(s).torn, 1); /* the rest of the old tail */
	s = reopen(fx, s, 0, &m);
	assert_int_equal(stats(s).torn, 0);
	spool_close(s);
}

/* 40 × 4 KB, then 30 ACKs: enough for a compaction. */
static struct spool *fill_for_compaction(const struct fx *fx, struct model *m)
{
	struct spool *s = open_ok(fx, 0);
	for (unsigned i = 0; i < 40; i++)
		add(s, m, "web", i, 4000);
	return s;
}

static ssize_t pw_fail_at_zero(int fd, const void *p, size_t n, off_t off)
{
	if (off == 0) { /* only the compacted image starts there */
		calls++;
		errno = ENOSPC;
		return -1;
	}
	return pwrite(fd, p, n, off);
}

static void compaction_fails(const struct fx *fx,
			     ssize_t (*pwrite_fn)(int, const void *, size_t, off_t),
			     int (*fsync_fn)(int), int (*rename_fn)(const char *, const char *))
{
	struct model m = { 0 };
	struct spool *s = fill_for_compaction(fx, &m);
	calls = 0;
	fail_errno = EIO;
	spool_test_set_io(NULL, pwrite_fn, NULL, fsync_fn, rename_fn, NULL);
	for (unsigned i = 0; i < 30; i++)
		ack(s, &m, m.r[0].id); /* the ACKs themselves succeed */
	assert_true(calls >= 1);
	assert_int_equal(stats(s).compactions, 0);
	assert_false(exists(fx->tmp));
	assert_int_equal(stats(s).bytes, file_size(fx->path));
	check(s, &m);
	add(s, &m, "web", 77, 10); /* the old file is still in use */
	spool_close(s);
	io_reset();
	s = open_ok(fx, 0);
	check(s, &m);
	struct spool_stats st = stats(s);
	assert_int_equal(st.torn, 0);
	assert_int_equal(st.compactions, 1); /* at open, now that it works */
	s = reopen(fx, s, 0, &m);
	spool_close(s);
	unlink(fx->path);
}

static void test_fault_compaction(void **state)
{
	struct fx *fx = *state;
	compaction_fails(fx, NULL, NULL, fail_rename);
	compaction_fails(fx, NULL, fsync_fail_files, NULL);
	compaction_fails(fx, pw_fail_at_zero, NULL, NULL);
}

static void test_fault_compaction_dir_fsync(void **state)
{
	struct fx *fx = *state;
	struct model m = { 0 };
	struct spool *s = fill_for_compaction(fx, &m);
	calls = 0;
	spool_test_set_io(NULL, NULL, NULL, fsync_fail_dirs, NULL, NULL);
	for (unsigned i = 0; i < 30; i++)
		ack(s, &m, m.r[0].id);
	assert_true(calls >= 1);
	/* The rename happened: the compacted file is the one in use. */
	assert_true(stats(s).compactions >= 1);
	assert_int_equal(stats(s).bytes, file_size(fx->path));
	add(s, &m, "web", 77, 10);
	io_reset();
	s = reopen(fx, s, 0, &m);
	assert_int_equal(stats(s).torn, 0);
	spool_close(s);
}

static void test_fault_open(void **state)
{
	struct fx *fx = *state;
	struct spool *s = NULL;
	fail_errno = EACCES;
	spool_test_set_io(fail_open, NULL, NULL, NULL, NULL, NULL);
	assert_int_equal(spool_open(fx->dir, 0, &s), -EACCES);
	assert_null(s);
	io_reset();

	/* The temporary file cannot be created: compaction fails cleanly. */
	struct model m = { 0 };
	s = fill_for_compaction(fx, &m);
	spool_test_set_io(fail_open, NULL, NULL, NULL, NULL, NULL);
	for (unsigned i = 0; i < 30; i++)
		ack(s, &m, m.r[0].id);
	assert_int_equal(stats(s).compactions, 0);
	io_reset();
	s = reopen(fx, s, 0, &m);
	spool_close(s);
}

/* ------------------------------------------------------------------------- */
/* crashes */

static int child_status(pid_t pid)
{
	int st = 0;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return st;
}

static void test_sigkill(void **state)
{
	struct fx *fx = *state;
	struct model m = { 0 };
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct spool *s = NULL;
		if (spool_open(fx->dir, 0, &s) < 0)
			_exit(2);
		for (unsigned i = 0; i < 20; i++) {
			unsigned char b[500];
			fill_body(b, i, 100 + i);
			if (spool_append(s, "web", b, 100 + i, 1000000 + i, NULL) < 0)
				_exit(3);
			if (i % 3 == 0 && spool_ack(s, i + 1) < 0)
				_exit(4);
		}
		kill(getpid(), SIGKILL); /* no close, no flush */
		_exit(5);
	}
	int st = child_status(pid);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGKILL);
	for (unsigned i = 0; i < 20; i++) {
		if (i % 3 == 0)
			continue;
		struct mrec *r = &m.r[m.n++];
		r->id = i + 1;
		memcpy(r->sink, "web", 4);
		r->tag = i;
		r->len = 100 + i;
		r->created = 1000000 + i;
	}
	struct spool *s = open_ok(fx, 0);
	check(s, &m);
	assert_int_equal(stats(s).torn, 0);
	assert_int_equal(add(s, &m, "web", 99, 1), 21);
	s = reopen(fx, s, 0, &m);
	spool_close(s);
}

static ssize_t pw_half_then_die(int fd, const void *p, size_t n, off_t off)
{
	(void)!pwrite(fd, p, n / 2, off);
	kill(getpid(), SIGKILL);
	_exit(6);
}

static int rename_then_die(const char *a, const char *b)
{
	(void)a, (void)b;
	kill(getpid(), SIGKILL); /* the temporary file is written and synced */
	_exit(6);
}

static void test_sigkill_mid_append(void **state)
{
	struct fx *fx = *state;
	struct model m = { 0 };
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct spool *s = NULL;
		if (spool_open(fx->dir, 0, &s) < 0)
			_exit(2);
		for (unsigned i = 0; i < 6; i++) {
			unsigned char b[500];
			fill_body(b, i, 300);
			if (i == 5)
				spool_test_set_io(NULL, pw_half_then_die, NULL, NULL, NULL, NULL);
			if (spool_append(s, "web", b, 300, 1000000 + i, NULL) < 0)
				_exit(3);
		}
		_exit(5);
	}
	int st = child_status(pid);
	assert_true(WIFSIGNALED(st));
	for (unsigned i = 0; i < 5; i++) {
		struct mrec *r = &m.r[m.n++];
		r->id = i + 1;
		memcpy(r->sink, "web", 4);
		r->tag = i;
		r->len = 300;
		r->created = 1000000 + i;
	}
	struct spool *s = open_ok(fx, 0);
	check(s, &m);
	assert_int_equal(stats(s).torn, 1);
	add(s, &m, "web", 50, 10);
	s = reopen(fx, s, 0, &m);
	assert_int_equal(stats(s).torn, 0);
	spool_close(s);
}

static void test_sigkill_mid_compaction(void **state)
{
	struct fx *fx = *state;
	struct model m = { 0 };
	struct spool *s = fill_for_compaction(fx, &m);
	spool_close(s);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct spool *c = NULL;
		if (spool_open(fx->dir, 0, &c) < 0)
			_exit(2);
		spool_test_set_io(NULL, NULL, NULL, NULL, rename_then_die, NULL);
		for (uint64_t id = 1; id <= 30; id++)
			if (spool_ack(c, id) < 0)
				_exit(3);
		_exit(5);
	}
	int st = child_status(pid);
	assert_true(WIFSIGNALED(st));
	assert_true(exists(fx->tmp)); /* the child died before renaming it */
	s = open_ok(fx, 0);
	assert_false(exists(fx->tmp));
	/* The child died at the compaction after some ACKs: those are durable. */
	size_t p = spool_pending(s);
	assert_true(p > 10 && p < 40);
	assert_int_equal(spool_get(s, 0)->id, 40 - p + 1);
	memmove(&m.r[0], &m.r[40 - p], p * sizeof m.r[0]);
	m.n = p;
	check(s, &m);
	assert_int_equal(stats(s).torn, 0);
	spool_close(s);
}

/* ------------------------------------------------------------------------- */
/* a random walk against the model */

static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void test_random_walk(void **state)
{
	struct fx *fx = *state;
	static struct model m;
	const uint64_t max = 256 * 1024;
	const char *sinks[] = { "web", "slack", "pagerduty-main" };
	uint64_t live = 0, dropped = 0, last = 0, compactions = 0;
	memset(&m, 0, sizeof m);
	struct spool *s = open_ok(fx, max);
	for (unsigned step = 0; step < 3000; step++) {
		uint64_t r = next_rand() % 100;
		if (r < 60) {
			const char *sink = sinks[next_rand() % 3];
			size_t len = (size_t)(next_rand() % 6000);
			uint64_t d = disk_size(sink, len);
			while (live + d > max) {
				live -= disk_size(m.r[0].sink, m.r[0].len);
				memmove(&m.r[0], &m.r[1], --m.n * sizeof m.r[0]);
				dropped++;
			}
			uint64_t id = add(s, &m, sink, step, len);
			assert_true(id > last);
			last = id;
			live += d;
		} else if (r < 97) {
			if (!m.n)
				continue;
			/* Mostly the oldest, sometimes any. */
			size_t i = next_rand() % 4 ? 0 : (size_t)(next_rand() % m.n);
			live -= disk_size(m.r[i].sink, m.r[i].len);
			ack(s, &m, m.r[i].id);
		} else {
			compactions += stats(s).compactions;
			s = reopen(fx, s, max, &m);
			assert_int_equal(stats(s).torn, 0);
		}
		if (step % 50 == 0)
			check(s, &m);
		struct spool_stats st = stats(s);
		assert_int_equal(st.bytes, file_size(fx->path));
		/* The file stays under about twice the bound. */
		assert_true(st.bytes <= 2 * max + 64 * 1024);
	}
	check(s, &m);
	struct spool_stats st = stats(s);
	assert_true(compactions + st.compactions > 0); /* stats are per open */
	assert_true(dropped > 0);
	s = reopen(fx, s, max, &m);
	spool_close(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_format, setup, teardown),
		cmocka_unit_test_setup_teardown(test_append_ack_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ids_increase, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_args, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_tail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage_tail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flipped_byte_middle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_ack, setup, teardown),
		cmocka_unit_test_setup_teardown(test_odd_records, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compaction, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_bytes_drops_oldest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_efbig, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fault_short_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fault_eintr_short, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fault_fdatasync, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fault_truncate_too, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fault_truncate_at_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fault_compaction, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fault_compaction_dir_fsync, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fault_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sigkill, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sigkill_mid_append, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sigkill_mid_compaction, setup, teardown),
		cmocka_unit_test_setup_teardown(test_random_walk, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
