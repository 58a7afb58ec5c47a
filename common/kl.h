/*
 * kl.h — small helpers shared by every stage: length-carrying strings, a growable
 * buffer, bounded number/duration/size parsing, strict JSON string output, time
 * formatting, logging, problem reports with file:line:col, and the durable-write
 * recipe.
 *
 * Conventions: a fallible function returns 0 or a negative errno and writes its
 * outputs only on success. Nothing here allocates unless its name says so
 * (kl_buf_*, kl_strndup).
 */
#ifndef KL_H
#define KL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* A view of bytes; not NUL-terminated, not owned. p == NULL means "absent". */
struct kl_str {
	const char *p;
	size_t len;
};

#define KL_STR_LIT(lit) ((struct kl_str){ (lit), sizeof(lit) - 1 })
#define KL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static inline bool kl_str_eq(struct kl_str s, const char *lit, size_t litlen)
{
	return s.len == litlen && (litlen == 0 || memcmp(s.p, lit, litlen) == 0);
}

/* NUL-terminated heap copy of n bytes; NULL on allocation failure. */
char *kl_strndup(const char *s, size_t n);

/* ---------------------------------------------------------------------------
 * Growable buffer. Owned by whoever declared it; zero-initialise to start.
 * Appending functions return 0 or -ENOMEM (the buffer is then unchanged).
 */
struct kl_buf {
	char *p;
	size_t len;
	size_t cap;
};

int kl_buf_reserve(struct kl_buf *b, size_t extra);
int kl_buf_append(struct kl_buf *b, const void *data, size_t n);
int kl_buf_append_str(struct kl_buf *b, const char *s); /* NUL-terminated s */
int kl_buf_appendf(struct kl_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static inline void kl_buf_reset(struct kl_buf *b) { b->len = 0; }
void kl_buf_free(struct kl_buf *b);

/*
 * A compact binary encoding for saved state (rules windows, and later what
 * replicas share): unsigned LEB128 varints, zigzag for signed, doubles as
 * their 8 IEEE bytes little-endian, byte strings as a varint length and the
 * bytes. The put functions return 0 or -ENOMEM like kl_buf_append.
 */
int kl_buf_put_u64(struct kl_buf *b, uint64_t v);
int kl_buf_put_i64(struct kl_buf *b, int64_t v);
int kl_buf_put_f64(struct kl_buf *b, double v);
int kl_buf_put_bytes(struct kl_buf *b, const void *p, size_t n);

/*
 * The reader: reads never run past end; the first short or malformed read
 * sets bad, and every later read returns 0 (or an empty string), so a decoder
 * reads a whole record and checks bad once.
 */
struct kl_rd {
	const unsigned char *p, *end;
	bool bad;
};
static inline struct kl_rd kl_rd_of(const void *p, size_t n)
{
	return (struct kl_rd){ p, (const unsigned char *)p + n, false };
}
uint64_t kl_rd_u64(struct kl_rd *r);
/* A varint that must be <= max (else bad): counts and indexes. */
uint64_t kl_rd_count(struct kl_rd *r, uint64_t max);
int64_t kl_rd_i64(struct kl_rd *r);
double kl_rd_f64(struct kl_rd *r);
/* A view into the input (not copied), at most max bytes long. */
struct kl_str kl_rd_bytes(struct kl_rd *r, size_t max);
static inline bool kl_rd_done(const struct kl_rd *r)
{
	return !r->bad && r->p == r->end;
}

/*
 * Append s as a JSON string literal, quotes included. The output is always valid
 * UTF-8 JSON: control characters are escaped (\n, \t, \u00XX), invalid UTF-8
 * sequences (overlongs, surrogates, truncated sequences, bytes > 0xF4) are each
 * replaced by U+FFFD, NUL bytes become \u0000.
 */
int kl_json_append_str(struct kl_buf *b, const char *s, size_t len);
/*
 * Length of the well-formed UTF-8 sequence at s (n > 0 bytes available, s[0]
 * >= 0x80), or 0 when it is not one, with *bad set to the length of the
 * maximal ill-formed subpart (what one U+FFFD replaces, per Unicode).
 */
size_t kl_utf8_seq(const unsigned char *s, size_t n, size_t *bad);
/* Append a JSON number: integers without a fraction, others with up to 17
 * significant digits, shortest form that round-trips; NaN/inf become null. */
int kl_json_append_num(struct kl_buf *b, double v);

/* ---------------------------------------------------------------------------
 * Bounded parsing. The whole of [s, s+len) must be consumed; no leading or
 * trailing blanks; overflow and junk give -EINVAL (or -ERANGE for overflow).
 */
int kl_parse_i64(const char *s, size_t len, int64_t *out);
int kl_parse_u64(const char *s, size_t len, uint64_t *out);
/* Decimal floating point: "12", "0.412", "-3.5", "1e3". No hex, no inf/nan. */
int kl_parse_double(const char *s, size_t len, double *out);
/*
 * Durations: a sequence of <number><unit> with units us, ms, s, m, h, d, w
 * ("500ms", "2s", "1m30s", "7d", "1.5h"); a bare number is seconds. Result in
 * microseconds; negative durations are rejected.
 */
int kl_parse_duration_us(const char *s, size_t len, int64_t *out_us);
/* Sizes: <number>[B|KB|MB|GB|TB|KiB|MiB|GiB|TiB] (KB = 1000, KiB = 1024). */
int kl_parse_size(const char *s, size_t len, uint64_t *out);

/* ---------------------------------------------------------------------------
 * Time. Microseconds since the Unix epoch (wall) or since an arbitrary point
 * (monotonic).
 */
int64_t kl_wall_us(void);
int64_t kl_mono_us(void);
/* Days since 1970-01-01 of a proleptic Gregorian date (no table, no timezone). */
int64_t kl_days_from_civil(int64_t y, unsigned m, unsigned d);
/*
 * Format as RFC 3339 UTC: "2023-11-14T22:13:20Z" (millis == false) or
 * "2023-11-14T22:13:20.000Z" (millis == true). out must hold KL_RFC3339_MAX
 * bytes; returns the length written (NUL-terminated).
 */
#define KL_RFC3339_MAX 40
size_t kl_format_rfc3339(int64_t us, bool millis, char *out);
/* Format a duration in the unit syntax above, shortest exact form ("5m", "90s",
 * "500ms", "1h30m"). out must hold 32 bytes. */
size_t kl_format_duration(int64_t us, char *out);

/* ---------------------------------------------------------------------------
 * Logging to stderr: "klaxon: <level>: <message>\n". Messages must never
 * contain secrets. KL_LOG_DEBUG is shown only with KLAXON_DEBUG=1 in the env.
 */
enum kl_level { KL_LOG_ERROR, KL_LOG_WARN, KL_LOG_INFO, KL_LOG_DEBUG };
void kl_log(enum kl_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void kl_log_set_quiet(bool quiet); /* quiet: only errors and warnings */

/*
 * Problem reports for config and rule files. Each report is printed at once as
 * "FILE:LINE:COL: message" on the stream given (stderr in the program) and
 * counted; line and col are 1-based (0 when unknown: then only "FILE: message").
 */
struct kl_diag {
	FILE *out;
	unsigned errors;
};
void kl_diag_error(struct kl_diag *d, const char *file, int line, int col, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/* ---------------------------------------------------------------------------
 * Durable write: PATH.tmp, write all (EINTR/short writes retried), fsync,
 * rename over PATH, fsync the directory. Returns 0 or -errno; on failure PATH
 * is untouched and the temporary file removed.
 */
int kl_write_file_atomic(const char *path, const void *data, size_t len);
/* Read a whole regular file (capped at max bytes) into a NUL-terminated heap
 * buffer. Returns 0 or -errno (-EFBIG above max). */
int kl_read_file(const char *path, size_t max, char **out, size_t *outlen);

#endif
