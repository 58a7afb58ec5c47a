/*
 * test_lines.c — the line splitter: every chunk boundary, CRLF, empty lines,
 * max_line cuts and their counting, zero-copy views, the buffer bound.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ingest/ingest.h"

/* Collected lines, each copied. */
struct got {
	char **v;
	size_t *len;
	const char **ptr; /* where the view pointed */
	size_t n, cap;
};

static void got_add(void *ctx, const char *line, size_t len)
{
	struct got *g = ctx;
	if (g->n == g->cap) {
		g->cap = g->cap ? g->cap * 2 : 16;
		g->v = realloc(g->v, g->cap * sizeof(*g->v));
		g->len = realloc(g->len, g->cap * sizeof(*g->len));
		g->ptr = realloc(g->ptr, g->cap * sizeof(*g->ptr));
		assert_non_null(g->v);
		assert_non_null(g->len);
		assert_non_null(g->ptr);
	}
	g->v[g->n] = malloc(len + 1);
	assert_non_null(g->v[g->n]);
	memcpy(g->v[g->n], line, len);
	g->v[g->n][len] = '\0';
	g->len[g->n] = len;
	g->ptr[g->n] = line;
	g->n++;
}

static void got_free(struct got *g)
{
	for (size_t i = 0; i < g->n; i++)
		free(g->v[i]);
	free(g->v);
	free(g->len);
	free(g->ptr);
	memset(g, 0, sizeof(*g));
}

/* The reference: split on '\n', cut to max, the tail as a last line. */
static void reference(const char *text, size_t len, size_t max, struct got *g, uint64_t *cut)
{
	size_t start = 0;
	*cut = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && text[i] != '\n')
			continue;
		if (i == len && start == len)
			break;
		size_t n = i - start;
		if (n > max) {
			n = max;
			(*cut)++;
		}
		got_add(g, text + start, n);
		start = i + 1;
	}
}

static void assert_same(const struct got *want, const struct got *got, size_t chunk)
{
	if (want->n != got->n)
		print_error("chunk size %zu: %zu lines expected, got %zu\n", chunk, want->n,
			    got->n);
	assert_int_equal(want->n, got->n);
	for (size_t i = 0; i < want->n; i++) {
		if (want->len[i] != got->len[i] || memcmp(want->v[i], got->v[i], want->len[i]) != 0)
			print_error("chunk size %zu, line %zu: expected \"%s\", got \"%s\"\n",
				    chunk, i, want->v[i], got->v[i]);
		assert_int_equal(want->len[i], got->len[i]);
		assert_memory_equal(want->v[i], got->v[i], want->len[i]);
	}
}

/* Feed text in chunks of every size 1..len; the result must not depend on it. */
static void check_all_chunkings(const char *text, size_t len, size_t max)
{
	struct got want = { 0 };
	uint64_t cut;
	reference(text, len, max, &want, &cut);

	for (size_t chunk = 1; chunk <= len + 1; chunk++) {
		struct ingest_lines s = { 0 };
		struct got g = { 0 };
		assert_int_equal(ingest_lines_init(&s, max), 0);
		for (size_t off = 0; off < len; off += chunk) {
			size_t n = len - off < chunk ? len - off : chunk;
			/* A fresh copy per chunk: views must not outlive the call. */
			char *copy = malloc(n);
			assert_non_null(copy);
			memcpy(copy, text + off, n);
			assert_int_equal(ingest_lines_feed(&s, copy, n, got_add, &g), 0);
			memset(copy, '#', n);
			free(copy);
			assert_true(s.len <= s.max_line);
			assert_true(s.cap <= s.max_line + 1);
		}
		ingest_lines_flush(&s, got_add, &g);
		assert_same(&want, &g, chunk);
		assert_int_equal(s.lines, want.n);
		assert_int_equal(s.too_long, cut);
		assert_int_equal(s.len, 0);
		assert_false(s.skipping);
		ingest_lines_free(&s);
		got_free(&g);
	}
	got_free(&want);
}

static const char text1[] = "first line\n"
			    "\n"
			    "crlf line\r\n"
			    "\r\n"
			    "a somewhat longer line with words in it, and more words\n"
			    "x\n"
			    "\n"
			    "\n"
			    "last line without newline";

static void test_every_chunk_boundary(void **state)
{
	check_all_chunkings(text1, sizeof(text1) - 1, INGEST_DEFAULT_MAX_LINE);
	/* and ending with a newline */
	check_all_chunkings(text1, 11, INGEST_DEFAULT_MAX_LINE);
}

static void test_every_chunk_boundary_with_cuts(void **state)
{
	/* Cut at every small max_line, against every chunking. */
	for (size_t max = 1; max <= 12; max++)
		check_all_chunkings(text1, sizeof(text1) - 1, max);
	static const char exact[] = "12345\n123456\n1234\n\n123456789012\n12345";
	check_all_chunkings(exact, sizeof(exact) - 1, 5);
}

static void test_crlf_kept(void **state)
{
	struct ingest_lines s = { 0 };
	struct got g = { 0 };
	assert_int_equal(ingest_lines_init(&s, 0), 0);
	assert_int_equal(s.max_line, INGEST_DEFAULT_MAX_LINE);
	const char in[] = "a\r\nb\r\n\r\n";
	assert_int_equal(ingest_lines_feed(&s, in, sizeof(in) - 1, got_add, &g), 0);
	assert_int_equal(g.n, 3);
	assert_string_equal(g.v[0], "a\r");
	assert_string_equal(g.v[1], "b\r");
	assert_string_equal(g.v[2], "\r");
	ingest_lines_free(&s);
	got_free(&g);
}

static void test_empty_lines(void **state)
{
	struct ingest_lines s = { 0 };
	struct got g = { 0 };
	assert_int_equal(ingest_lines_init(&s, 0), 0);
	assert_int_equal(ingest_lines_feed(&s, "\n\n\n", 3, got_add, &g), 0);
	assert_int_equal(ingest_lines_feed(&s, "", 0, got_add, &g), 0);
	ingest_lines_flush(&s, got_add, &g); /* nothing pending: nothing handed out */
	assert_int_equal(g.n, 3);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(g.len[i], 0);
	assert_int_equal(s.lines, 3);
	ingest_lines_free(&s);
	got_free(&g);
}

static void test_zero_copy_views(void **state)
{
	struct ingest_lines s = { 0 };
	struct got g = { 0 };
	assert_int_equal(ingest_lines_init(&s, 0), 0);
	const char a[] = "one\ntwo\nthr";
	assert_int_equal(ingest_lines_feed(&s, a, sizeof(a) - 1, got_add, &g), 0);
	assert_int_equal(g.n, 2);
	assert_ptr_equal(g.ptr[0], a);	   /* views into the caller's data */
	assert_ptr_equal(g.ptr[1], a + 4);
	assert_int_equal(s.len, 3);	   /* only the tail is copied */
	const char b[] = "ee\nfour\n";
	assert_int_equal(ingest_lines_feed(&s, b, sizeof(b) - 1, got_add, &g), 0);
	assert_int_equal(g.n, 4);
	assert_string_equal(g.v[2], "three");
	assert_ptr_equal(g.ptr[2], s.buf); /* the completed partial comes from the buffer */
	assert_ptr_equal(g.ptr[3], b + 3); /* and the rest are views again */
	assert_string_equal(g.v[3], "four");
	ingest_lines_free(&s);
	got_free(&g);
}

static void test_max_line_cut_once(void **state)
{
	struct ingest_lines s = { 0 };
	struct got g = { 0 };
	assert_int_equal(ingest_lines_init(&s, 8), 0);
	/* An over-long line spread over many chunks: handed out once, counted once. */
	assert_int_equal(ingest_lines_feed(&s, "abcd", 4, got_add, &g), 0);
	assert_int_equal(ingest_lines_feed(&s, "efghij", 6, got_add, &g), 0);
	assert_int_equal(g.n, 1);
	assert_string_equal(g.v[0], "abcdefgh");
	assert_true(s.skipping);
	for (int i = 0; i < 100; i++)
		assert_int_equal(ingest_lines_feed(&s, "zzzzzzzzzz", 10, got_add, &g), 0);
	const char rest[] = "zz\nok\n12345678\n123456789\n";
	assert_int_equal(ingest_lines_feed(&s, rest, sizeof(rest) - 1, got_add, &g), 0);
	assert_int_equal(g.n, 4);
	assert_string_equal(g.v[1], "ok");
	assert_string_equal(g.v[2], "12345678"); /* exactly max_line: whole, not cut */
	assert_string_equal(g.v[3], "12345678");
	assert_int_equal(s.too_long, 2);
	assert_int_equal(s.lines, 4);
	assert_true(s.cap <= 9);
	/* A cut line at the end of input: flush hands out nothing more. */
	assert_int_equal(ingest_lines_feed(&s, "0123456789abc", 13, got_add, &g), 0);
	ingest_lines_flush(&s, got_add, &g);
	assert_int_equal(g.n, 5);
	assert_string_equal(g.v[4], "01234567");
	assert_false(s.skipping);
	/* and the next input starts a fresh line */
	assert_int_equal(ingest_lines_feed(&s, "new\n", 4, got_add, &g), 0);
	assert_int_equal(g.n, 6);
	assert_string_equal(g.v[5], "new");
	ingest_lines_free(&s);
	got_free(&g);
}

static void test_buffer_bounded(void **state)
{
	struct ingest_lines s = { 0 };
	struct got g = { 0 };
	const size_t max = 100000;
	assert_int_equal(ingest_lines_init(&s, max), 0);
	char *big = malloc(3 * max);
	assert_non_null(big);
	memset(big, 'x', 3 * max);
	/* pending grows by small pieces up to, never past, max_line + 1 */
	for (size_t off = 0; off < 3 * max; off += 777) {
		size_t n = 3 * max - off < 777 ? 3 * max - off : 777;
		assert_int_equal(ingest_lines_feed(&s, big + off, n, got_add, &g), 0);
		assert_true(s.cap <= max + 1);
	}
	assert_int_equal(ingest_lines_feed(&s, "\nend\n", 5, got_add, &g), 0);
	assert_int_equal(g.n, 2);
	assert_int_equal(g.len[0], max);
	assert_string_equal(g.v[1], "end");
	assert_int_equal(s.too_long, 1);
	free(big);
	ingest_lines_free(&s);
	ingest_lines_free(&s); /* twice is fine */
	got_free(&g);
}

static void test_nul_bytes(void **state)
{
	struct ingest_lines s = { 0 };
	struct got g = { 0 };
	assert_int_equal(ingest_lines_init(&s, 0), 0);
	const char in[] = "a\0b\n\0\n\0\0";
	assert_int_equal(ingest_lines_feed(&s, in, sizeof(in) - 1, got_add, &g), 0);
	ingest_lines_flush(&s, got_add, &g);
	assert_int_equal(g.n, 3);
	assert_int_equal(g.len[0], 3);
	assert_memory_equal(g.v[0], "a\0b", 3);
	assert_int_equal(g.len[1], 1);
	assert_int_equal(g.len[2], 2);
	ingest_lines_free(&s);
	got_free(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_chunk_boundary),
		cmocka_unit_test(test_every_chunk_boundary_with_cuts),
		cmocka_unit_test(test_crlf_kept),
		cmocka_unit_test(test_empty_lines),
		cmocka_unit_test(test_zero_copy_views),
		cmocka_unit_test(test_max_line_cut_once),
		cmocka_unit_test(test_buffer_bounded),
		cmocka_unit_test(test_nul_bytes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
