/*
 * test_reader.c — whole-file reading: plain, gzip, concatenated gzip members,
 * truncated and corrupt gzip, the last line without '\n', long lines across
 * chunk boundaries, standard input, open errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "ingest/ingest.h"

struct fixture {
	char dir[256];
	char path[300];
};

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	if (!fx)
		return -1;
	const char *tmp = getenv("TMPDIR");
	snprintf(fx->dir, sizeof fx->dir, "%s/klaxon-reader-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(fx->dir))
		return -1;
	snprintf(fx->path, sizeof fx->path, "%s/input", fx->dir);
	kl_log_set_quiet(true);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	unlink(fx->path);
	rmdir(fx->dir);
	free(fx);
	return 0;
}

static void write_plain(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void write_gz(const char *path, const char *mode, const char *data, size_t len)
{
	gzFile gz = gzopen(path, mode);
	assert_non_null(gz);
	while (len) {
		unsigned n = len > (1u << 20) ? (1u << 20) : (unsigned)len;
		assert_int_equal(gzwrite(gz, data, n), (int)n);
		data += n;
		len -= n;
	}
	assert_int_equal(gzclose(gz), Z_OK);
}

/* Read everything; expect exactly the lines of want (split on '\n'). */
static void expect_lines(const char *path, size_t max, const char *want, size_t wlen, int end_rc)
{
	int err = 0;
	struct ingest_reader *r = ingest_reader_open(path, max, &err);
	assert_non_null(r);
	struct kl_str line;
	size_t off = 0, n = 0;
	int rc;
	while ((rc = ingest_reader_next(r, &line)) == 1) {
		assert_true(off <= wlen);
		const char *nl = memchr(want + off, '\n', wlen - off);
		size_t l = nl ? (size_t)(nl - (want + off)) : wlen - off;
		if (l != line.len || memcmp(line.p, want + off, l) != 0)
			print_error("line %zu: expected %zu bytes \"%.*s\", got %zu bytes "
				    "\"%.*s\"\n",
				    n, l, (int)(l > 60 ? 60 : l), want + off, line.len,
				    (int)(line.len > 60 ? 60 : line.len), line.p);
		assert_int_equal(line.len, l);
		assert_memory_equal(line.p, want + off, l);
		off += l + (nl ? 1 : 0);
		n++;
	}
	assert_int_equal(rc, end_rc);
	assert_int_equal(off, wlen);
	assert_int_equal(ingest_reader_stats(r)->lines, n);
	assert_int_equal(ingest_reader_next(r, &line), end_rc); /* stays at the end */
	assert_string_equal(ingest_reader_path(r), path);
	ingest_reader_close(r);
}

/* Lines of varying length (0..400 bytes), some empty, some CRLF. */
static char *make_text(size_t nlines, size_t *len)
{
	size_t cap = nlines * 410 + 1, off = 0;
	char *p = malloc(cap);
	assert_non_null(p);
	uint32_t x = 12345;
	for (size_t i = 0; i < nlines; i++) {
		x = x * 1103515245u + 12345u;
		size_t l = (x >> 16) % 400;
		int w = snprintf(p + off, cap - off, "%zu ", i);
		off += (size_t)w;
		for (size_t k = 0; k < l; k++)
			p[off++] = (char)('a' + (x >> (k % 24)) % 26);
		if (i % 17 == 0)
			p[off++] = '\r';
		p[off++] = '\n';
		if (i % 101 == 0)
			p[off++] = '\n';
	}
	*len = off;
	return p;
}

static void test_plain(void **state)
{
	struct fixture *fx = *state;
	static const char text[] = "one\ntwo\r\n\nfour\n";
	write_plain(fx->path, text, sizeof(text) - 1);
	expect_lines(fx->path, 0, text, sizeof(text) - 1, 0);
}

static void test_no_trailing_newline(void **state)
{
	struct fixture *fx = *state;
	static const char text[] = "one\ntwo";
	write_plain(fx->path, text, sizeof(text) - 1);
	expect_lines(fx->path, 0, text, sizeof(text) - 1, 0);
	write_gz(fx->path, "wb", text, sizeof(text) - 1);
	expect_lines(fx->path, 0, text, sizeof(text) - 1, 0);
}

static void test_empty_file(void **state)
{
	struct fixture *fx = *state;
	write_plain(fx->path, "", 0);
	expect_lines(fx->path, 0, "", 0, 0);
	write_gz(fx->path, "wb", "", 0);
	expect_lines(fx->path, 0, "", 0, 0);
}

static void test_large_plain_and_gzip(void **state)
{
	struct fixture *fx = *state;
	size_t len;
	char *text = make_text(20000, &len); /* ~4 MB: many 256 KiB chunk boundaries */
	write_plain(fx->path, text, len);
	expect_lines(fx->path, 0, text, len, 0);
	write_gz(fx->path, "wb6", text, len);
	expect_lines(fx->path, 0, text, len, 0);
	/* content, not the name, decides */
	int err;
	struct ingest_reader *r = ingest_reader_open(fx->path, 0, &err);
	assert_non_null(r);
	struct kl_str line;
	while (ingest_reader_next(r, &line) == 1)
		;
	assert_int_equal(ingest_reader_stats(r)->bytes, len);
	assert_int_equal(ingest_reader_stats(r)->errors, 0);
	ingest_reader_close(r);
	free(text);
}

static void test_concatenated_members(void **state)
{
	struct fixture *fx = *state;
	static const char a[] = "member one a\nmember one b\npartial ";
	static const char b[] = "line joined across members\nmember two\n";
	write_gz(fx->path, "wb", a, sizeof(a) - 1);
	write_gz(fx->path, "ab", b, sizeof(b) - 1);
	static const char all[] = "member one a\nmember one b\npartial line joined across "
				  "members\nmember two\n";
	expect_lines(fx->path, 0, all, sizeof(all) - 1, 0);
}

static void test_truncated_gzip(void **state)
{
	struct fixture *fx = *state;
	size_t len;
	char *text = make_text(20000, &len);
	write_gz(fx->path, "wb6", text, len);
	struct stat st;
	assert_int_equal(stat(fx->path, &st), 0);
	assert_int_equal(truncate(fx->path, st.st_size / 2), 0);

	int err;
	struct ingest_reader *r = ingest_reader_open(fx->path, 0, &err);
	assert_non_null(r);
	struct kl_str line;
	size_t off = 0, n = 0;
	int rc;
	while ((rc = ingest_reader_next(r, &line)) == 1) {
		/* every line handed out is a complete, correct line of the original */
		const char *nl = memchr(text + off, '\n', len - off);
		assert_non_null(nl);
		size_t l = (size_t)(nl - (text + off));
		assert_int_equal(line.len, l);
		assert_memory_equal(line.p, text + off, l);
		off += l + 1;
		n++;
	}
	assert_int_equal(rc, -EIO);
	assert_true(n > 1000);	/* the lines before the damage came out */
	assert_true(off < len);
	assert_int_equal(ingest_reader_stats(r)->errors, 1);
	assert_int_equal(ingest_reader_next(r, &line), -EIO);
	assert_int_equal(ingest_reader_stats(r)->errors, 1); /* logged and counted once */
	ingest_reader_close(r);
	free(text);
}

static void test_corrupt_gzip(void **state)
{
	struct fixture *fx = *state;
	size_t len;
	char *text = make_text(5000, &len);
	write_gz(fx->path, "wb6", text, len);
	struct stat st;
	assert_int_equal(stat(fx->path, &st), 0);
	int fd = open(fx->path, O_RDWR);
	assert_true(fd >= 0);
	char junk[64];
	memset(junk, 0xA5, sizeof junk);
	assert_int_equal(pwrite(fd, junk, sizeof junk, st.st_size / 2), (ssize_t)sizeof junk);
	close(fd);

	int err;
	struct ingest_reader *r = ingest_reader_open(fx->path, 0, &err);
	assert_non_null(r);
	struct kl_str line;
	int rc;
	while ((rc = ingest_reader_next(r, &line)) == 1)
		assert_true(line.len <= INGEST_DEFAULT_MAX_LINE);
	assert_int_equal(rc, -EIO);
	assert_int_equal(ingest_reader_stats(r)->errors, 1);
	ingest_reader_close(r);
	free(text);
}

static void test_long_lines(void **state)
{
	struct fixture *fx = *state;
	/* one line of 600000 bytes (spans chunks), then normal lines */
	size_t big = 600000;
	char *text = malloc(big + 64);
	assert_non_null(text);
	memset(text, 'L', big);
	memcpy(text + big, "\nshort\n0123456789\n", 18);
	size_t len = big + 18;
	write_plain(fx->path, text, len);

	int err;
	struct ingest_reader *r = ingest_reader_open(fx->path, 10, &err);
	assert_non_null(r);
	struct kl_str line;
	assert_int_equal(ingest_reader_next(r, &line), 1);
	assert_int_equal(line.len, 10);
	assert_memory_equal(line.p, "LLLLLLLLLL", 10);
	assert_int_equal(ingest_reader_next(r, &line), 1);
	assert_int_equal(line.len, 5);
	assert_memory_equal(line.p, "short", 5);
	assert_int_equal(ingest_reader_next(r, &line), 1);
	assert_int_equal(line.len, 10); /* exactly max_line: whole */
	assert_memory_equal(line.p, "0123456789", 10);
	assert_int_equal(ingest_reader_next(r, &line), 0);
	assert_int_equal(ingest_reader_stats(r)->too_long, 1);
	assert_int_equal(ingest_reader_stats(r)->lines, 3);
	ingest_reader_close(r);

	/* with a large enough max_line it comes out whole, from a gzip too */
	write_gz(fx->path, "wb", text, len);
	expect_lines(fx->path, 1 << 20, text, len, 0);

	/* a cut last line without '\n' */
	write_plain(fx->path, text, big);
	r = ingest_reader_open(fx->path, 100, &err);
	assert_non_null(r);
	assert_int_equal(ingest_reader_next(r, &line), 1);
	assert_int_equal(line.len, 100);
	assert_int_equal(ingest_reader_next(r, &line), 0);
	assert_int_equal(ingest_reader_stats(r)->too_long, 1);
	ingest_reader_close(r);
	free(text);
}

static void test_nul_bytes(void **state)
{
	struct fixture *fx = *state;
	static const char text[] = "a\0b\n\0\nc";
	write_plain(fx->path, text, sizeof(text) - 1);
	expect_lines(fx->path, 0, text, sizeof(text) - 1, 0);
}

static void test_stdin(void **state)
{
	struct fixture *fx = *state;
	static const char text[] = "from\nstdin";
	write_gz(fx->path, "wb", text, sizeof(text) - 1);
	int saved = dup(STDIN_FILENO);
	int fd = open(fx->path, O_RDONLY);
	assert_true(fd >= 0 && saved >= 0);
	assert_int_equal(dup2(fd, STDIN_FILENO), STDIN_FILENO);
	close(fd);

	int err;
	struct ingest_reader *r = ingest_reader_open("-", 0, &err);
	assert_non_null(r);
	struct kl_str line;
	assert_int_equal(ingest_reader_next(r, &line), 1);
	assert_memory_equal(line.p, "from", 4);
	assert_int_equal(ingest_reader_next(r, &line), 1);
	assert_int_equal(line.len, 5);
	assert_memory_equal(line.p, "stdin", 5);
	assert_int_equal(ingest_reader_next(r, &line), 0);
	assert_string_equal(ingest_reader_path(r), "-");
	ingest_reader_close(r);
	/* closing the reader left standard input open */
	assert_true(fcntl(STDIN_FILENO, F_GETFD) >= 0);
	assert_int_equal(dup2(saved, STDIN_FILENO), STDIN_FILENO);
	close(saved);
}

static void test_open_errors(void **state)
{
	struct fixture *fx = *state;
	int err = 0;
	assert_null(ingest_reader_open(fx->path, 0, &err)); /* not created yet */
	assert_int_equal(err, -ENOENT);
	err = 0;
	assert_null(ingest_reader_open(fx->dir, 0, &err));
	assert_int_equal(err, -EISDIR);
	ingest_reader_close(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_plain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_trailing_newline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_large_plain_and_gzip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concatenated_members, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_gzip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_gzip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nul_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stdin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
