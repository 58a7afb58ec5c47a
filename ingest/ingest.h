/*
 * ingest.h — getting records out of files.
 *
 * Three pieces:
 *  - ingest_lines: a line splitter fed with chunks; hands out each complete line
 *    as a view into its buffer (no copy per line), enforces a maximum line
 *    length (the excess is skipped up to the next newline and counted).
 *  - ingest_reader: pull-based reading of a whole file, plain or gzip (zlib),
 *    for `replay` and `parse`; the last line is returned even without its
 *    newline.
 *  - ingest_tail: follows a path or glob like `tail -F` on a libev loop —
 *    appends (inotify, plus a periodic stat as a fallback), rename-and-create
 *    rotation (the old file is drained to its end first), truncation
 *    (copytruncate: restart at 0), deletion, late creation, new glob matches —
 *    and hands out every complete line with the time it was read. Its
 *    position in every file can be saved (ingest_tail_save) and handed to the
 *    next run (ingest_tail_opts.state), which resumes there.
 *  - ingest_probe: a check run on an interval on the loop (HTTP, TCP, disk,
 *    PostgreSQL, Redis, host, newest file of a glob); each run hands out one
 *    result, a short list of typed values in the kind's fixed field order,
 *    never nothing: a check that fails or times out gives up = 0 and error.
 *
 * Lines never include their '\n' (a trailing '\r' is kept: it is data).
 */
#ifndef INGEST_H
#define INGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/kl.h"

struct ev_loop;

#define INGEST_DEFAULT_MAX_LINE (64 * 1024)
#define INGEST_DEFAULT_CHUNK (256 * 1024)

/* Called for each line; line is valid only during the call. */
typedef void (*ingest_line_fn)(void *ctx, const char *line, size_t len);

/* ---------------------------------------------------------------------------
 * Line splitter. Zero-initialise, then ingest_lines_init.
 */
struct ingest_lines {
	char *buf;	   /* pending partial line (owned) */
	size_t len;	   /* bytes pending */
	size_t cap;
	size_t max_line;   /* longest line handed out whole */
	bool skipping;	   /* inside an over-long line: drop to the next '\n' */
	uint64_t lines;	   /* lines handed out */
	uint64_t too_long; /* lines cut: their first max_line bytes are handed out,
			    * the rest skipped */
};

int ingest_lines_init(struct ingest_lines *s, size_t max_line);
void ingest_lines_free(struct ingest_lines *s);
/*
 * Split data (any size) into lines, calling fn for each complete one; keeps
 * the unterminated tail for the next call. A line longer than max_line is
 * handed out truncated to max_line bytes once, and counted in too_long.
 * Returns 0 or -ENOMEM (then the pending tail is dropped and counted).
 */
int ingest_lines_feed(struct ingest_lines *s, const char *data, size_t len, ingest_line_fn fn,
		      void *ctx);
/* Hand out the unterminated tail, if any, as a last line (end of input). */
void ingest_lines_flush(struct ingest_lines *s, ingest_line_fn fn, void *ctx);

/* ---------------------------------------------------------------------------
 * Multi-line records. Lines go in, records come out: a record is one or more
 * lines joined with '\n' (no trailing newline). With `start`, a line matching
 * it begins a record and other lines append to the current one; with
 * `continuation`, a line matching it appends to the current record and other
 * lines begin one. A record is cut at max_lines / max_bytes (the rest of its
 * lines are dropped and counted). The pending record is handed out when the
 * next record begins, on ingest_multiline_flush (end of input, or its
 * deadline passed: no line for timeout), never held forever.
 */
struct ingest_multiline;

struct ingest_multiline_opts {
	const char *start;	  /* PCRE2 regex, or NULL */
	const char *continuation; /* PCRE2 regex, or NULL; exactly one of the two */
	int64_t timeout_us;	  /* 0: 500 ms */
	size_t max_lines;	  /* 0: 500 */
	size_t max_bytes;	  /* 0: 1 MiB */
};

/* A record: valid until the next record is handed out by the same assembler
 * (records are double-buffered, so replay can hold one while reading on).
 * first_read_us is the read time of its first line. */
typedef void (*ingest_record_fn)(void *ctx, const char *rec, size_t len, int64_t first_read_us);

/* NULL with a message ("start: missing ) at offset 4") on a bad regex. */
struct ingest_multiline *ingest_multiline_new(const struct ingest_multiline_opts *o, char *err,
					      size_t errlen);
void ingest_multiline_free(struct ingest_multiline *m); /* accepts NULL */
void ingest_multiline_feed(struct ingest_multiline *m, const char *line, size_t len, int64_t read_us,
			   ingest_record_fn fn, void *ctx);
/* Hand out the pending record, if any. */
void ingest_multiline_flush(struct ingest_multiline *m, ingest_record_fn fn, void *ctx);
/* When the pending record's timeout expires (read time of its last line +
 * timeout), or INT64_MAX when nothing is pending. */
int64_t ingest_multiline_deadline(const struct ingest_multiline *m);

/* Lines in the pending record (0: none). After a feed, 1 means the line
 * just fed began a record. */
size_t ingest_multiline_pending(const struct ingest_multiline *m);

struct ingest_multiline_stats {
	uint64_t records;
	uint64_t lines;
	uint64_t cut_lines; /* lines dropped past max_lines / max_bytes */
	uint64_t cut_records;
};
const struct ingest_multiline_stats *ingest_multiline_stats(const struct ingest_multiline *m);

/* ---------------------------------------------------------------------------
 * Whole-file reader, plain or gzip (detected by content, not by name).
 */
struct ingest_reader;

/*
 * Open path ("-" for standard input). Returns NULL with *err = -errno when it
 * cannot be opened. max_line as for ingest_lines (0: the default).
 */
struct ingest_reader *ingest_reader_open(const char *path, size_t max_line, int *err);
/*
 * Next line: 1 with *line set (valid until the next call), 0 at the end, or a
 * negative errno on a read error (-EIO for a corrupt or truncated gzip
 * stream: the lines before the damage were all returned; the error is logged
 * once with the path).
 */
int ingest_reader_next(struct ingest_reader *r, struct kl_str *line);
struct ingest_reader_stats {
	uint64_t lines;
	uint64_t bytes;	   /* uncompressed bytes read */
	uint64_t too_long;
	uint64_t errors;
};
const struct ingest_reader_stats *ingest_reader_stats(const struct ingest_reader *r);
const char *ingest_reader_path(const struct ingest_reader *r);
void ingest_reader_close(struct ingest_reader *r);

/* ---------------------------------------------------------------------------
 * Following files on the loop.
 */
struct ingest_tail;

struct ingest_tail_opts {
	const char *pattern;	/* a path or a glob(7) pattern; copied */
	bool from_beginning;	/* a file present at start: read from 0 (else from its end);
				 * files that appear later are always read from 0 */
	size_t max_line;	/* 0: INGEST_DEFAULT_MAX_LINE */
	size_t chunk;		/* bytes read per file per wake-up; 0: INGEST_DEFAULT_CHUNK */
	double stat_interval;	/* seconds between stat fallback checks; 0: 1.0 */
	double glob_interval;	/* seconds between re-globbing; 0: 2.0 */
	/* Checkpoint records from ingest_tail_save (not copied; read only during
	 * ingest_tail_new), or NULL. A saved file still under its name (same
	 * device, inode and first bytes, at least as long as its offset) resumes
	 * at its offset; one that is not (rotated, or copied and truncated, while
	 * we were stopped) is looked for among its siblings NAME.* and NAME-*
	 * (compressed ones excluded) by identity or first bytes, read from its
	 * offset to its end first, then the file now under the name from 0.
	 * Files the records do not name appeared after the checkpoint: read from
	 * 0, after their siblings modified since state_time_us (from_beginning
	 * applies only without a checkpoint, or when records were ignored).
	 * Records whose path the pattern no longer matches are ignored. Invalid records: logged, the
	 * whole state ignored (check them first with ingest_tail_state_check). */
	const char *state;
	size_t state_len;
	/* When the records were written (wall µs; 0: unknown). A rotated
	 * sibling modified after it holds lines written since: it is read even
	 * when none of the records could be located. */
	int64_t state_time_us;
};

struct ingest_tail_cbs {
	/* One complete line of file path. read_us is the wall time of the read. */
	void (*line)(void *ctx, const char *line, size_t len, int64_t read_us);
	/* After each read chunk (all its lines delivered): evaluate now. May be NULL. */
	void (*batch)(void *ctx);
	void *ctx;
};

/*
 * Start following. Returns NULL with *err = -errno only for a bad pattern or
 * no memory; a path that does not exist yet is not an error (it is picked up
 * when it appears). Callbacks run on loop.
 */
struct ingest_tail *ingest_tail_new(struct ev_loop *loop, const struct ingest_tail_opts *opts,
				    const struct ingest_tail_cbs *cbs, int *err);
/* Stop all watchers and free. Accepts NULL. */
void ingest_tail_free(struct ingest_tail *t);

struct ingest_tail_stats {
	uint64_t lines;
	uint64_t bytes;
	uint64_t too_long;
	uint64_t files_opened;
	uint64_t rotations;   /* rename-and-create or deletion handled */
	uint64_t truncations; /* copytruncate handled */
	uint64_t read_errors;
	unsigned files_open;  /* currently followed */
	/* Lag: bytes written to the followed files and not read yet (their
	 * sizes now, less our offsets; compressed files count as 0). The
	 * pipeline is pull-based: a slow rule pack or sink slows the reads, and
	 * this grows, not memory. */
	uint64_t bytes_behind;
};
void ingest_tail_get_stats(const struct ingest_tail *t, struct ingest_tail_stats *out);

/*
 * Where the line being handed out starts: its file (a token compared, never
 * dereferenced) and byte offset. Valid only inside the line callback. A
 * consumer that holds lines back (a multi-line record not complete yet) keeps
 * the mark of the first held line and passes it to ingest_tail_save, so a
 * restart reads the held lines again instead of losing them.
 */
struct ingest_mark {
	const void *file;
	uint64_t off;
};
void ingest_tail_line_mark(const struct ingest_tail *t, struct ingest_mark *out);

/*
 * Append checkpoint records to out: one line per content read to its end
 * lately (the last 256), so a restart does not read it again when it turns up
 * renamed, copied or compressed,
 *   done fp=<16 hex> fplen=N end=E
 * then one line per followed file:
 *   file dev=D ino=I off=O fplen=N fp=<16 hex> skip=0|1 path=<%XX-encoded>
 * off is the first byte not handed on (a pending partial line is read again
 * after a restart); fp is a hash of the file's first fplen (<= 1024) bytes;
 * skip=1: inside an over-long line whose first part was handed on. The
 * records change only when something was read, so comparing two saves tells
 * whether a checkpoint needs writing. 0, or -ENOMEM (out unchanged).
 */
int ingest_tail_save(const struct ingest_tail *t, struct kl_buf *out);
/* The same, the file of each mark saved at most at its offset (held lines). */
int ingest_tail_save_held(const struct ingest_tail *t, struct kl_buf *out,
			  const struct ingest_mark *held, size_t nheld);
/* Validate records as ingest_tail_save writes them: 0, or -EINVAL / -E2BIG
 * (more than 100000) with *bad_line (1-based), or -ENOMEM. */
int ingest_tail_state_check(const char *data, size_t len, size_t *bad_line);

/*
 * How far the file (dev, ino) has been handed on: the offset of its first
 * byte not handed on (what ingest_tail_save would write), from a live tail,
 * or from one record line as ingest_tail_save writes it. 0 with *off, or
 * -ENOENT (not followed / another file's record), -EINVAL (not a record).
 * For the rotator, which must not remove what has not been read.
 */
int ingest_tail_position(const struct ingest_tail *t, uint64_t dev, uint64_t ino, uint64_t *off);
int ingest_tail_record_position(const char *rec, size_t len, uint64_t dev, uint64_t ino,
				uint64_t *off);

/* ---------------------------------------------------------------------------
 * Probes. A probe runs its check at once, then every interval; a check that
 * has not finished after timeout is abandoned and reported as failed (a check
 * still running when the next one is due makes that one wait: checks of one
 * probe never overlap). Nothing blocks the loop: sockets (HTTP through
 * libcurl's multi interface, PostgreSQL through libpq's non-blocking calls,
 * Redis through hiredis's libev adapter, TCP connects) are watched with
 * ev_io; host name lookups run on a short-lived helper thread; disk and host
 * checks are a few small syscalls; the gzip integrity of the file probe is
 * read in 1 MiB slices from an ev_idle watcher.
 */
enum ingest_probe_kind {
	INGEST_PROBE_HTTP,
	INGEST_PROBE_TCP,
	INGEST_PROBE_DISK,
	INGEST_PROBE_POSTGRES,
	INGEST_PROBE_REDIS,
	INGEST_PROBE_HOST,
	INGEST_PROBE_FILE,
};
#define INGEST_PROBE_KINDS 7
#define INGEST_PROBE_MAX_FIELDS 12

/* "http" ... "file" → kind; 0 or -EINVAL. */
int ingest_probe_kind_from_name(const char *name, enum ingest_probe_kind *out);
const char *ingest_probe_kind_name(enum ingest_probe_kind k);

enum ingest_probe_ftype {
	INGEST_PF_NUMBER,  /* a number (percentages are 0..100) */
	INGEST_PF_COUNT,   /* a whole number */
	INGEST_PF_SECONDS, /* a duration in seconds */
	INGEST_PF_STRING,
};

struct ingest_probe_field {
	const char *name;
	enum ingest_probe_ftype type;
};

/* The fields of a kind, in result order: always `up` (0/1) first and `error`
 * (why the check failed; absent when up is 1) second. Static; *n set. */
const struct ingest_probe_field *ingest_probe_fields(enum ingest_probe_kind k, size_t *n);

struct ingest_probe_value {
	bool set;	 /* false: absent in this result */
	double num;	 /* numeric fields */
	const char *str; /* string fields, NUL-terminated */
};

/* One check's outcome; valid only during the callback. */
struct ingest_probe_result {
	const char *name;		       /* the probe's */
	enum ingest_probe_kind kind;
	int64_t at_us;			       /* wall time the check ended */
	const struct ingest_probe_value *values; /* n values, in ingest_probe_fields order */
	size_t n;
};

typedef void (*ingest_probe_fn)(void *ctx, const struct ingest_probe_result *r);

struct ingest_probe_opts {
	const char *name;
	enum ingest_probe_kind kind;
	/* http: an http:// or https:// URL; tcp: HOST:PORT; disk: a path; postgres:
	 * a libpq connection string (key=value or postgresql:// URI); redis:
	 * redis://[:PASSWORD@]HOST[:PORT][/DB] or HOST:PORT; host: ignored; file:
	 * a glob(7) pattern. Copied. */
	const char *target;
	int64_t interval_us; /* > 0 */
	int64_t timeout_us;  /* > 0, at most interval_us */
	bool tls_insecure;   /* http: do not verify the peer (tls_verify: false) */
	const char *ca_file; /* http: CA bundle to verify with, or NULL; copied */
	const char *root;    /* host: where /proc and /sys are ("" or NULL: "/"); tests */
};

/*
 * Start a probe on loop; fn gets every result. NULL with *err = -EINVAL (a
 * target this kind cannot use; checked first by ingest_probe_check_target)
 * or -ENOMEM.
 */
struct ingest_probe *ingest_probe_new(struct ev_loop *loop, const struct ingest_probe_opts *o,
				      ingest_probe_fn fn, void *ctx, int *err);
/* Stop its watchers, abandon a check in flight (fn is not called). NULL ok. */
void ingest_probe_free(struct ingest_probe *p);
/* Whether target suits kind: 0, or -EINVAL with a message for the user in
 * why ("expected HOST:PORT, e.g. db:5432"). Reads no file and resolves no
 * name. */
int ingest_probe_check_target(enum ingest_probe_kind k, const char *target, char *why,
			      size_t whylen);

struct ingest_probe_stats {
	uint64_t checks;   /* results handed out */
	uint64_t failures; /* with up = 0 */
	uint64_t timeouts;
	uint64_t delayed;  /* a check due while the previous one still ran */
};
void ingest_probe_get_stats(const struct ingest_probe *p, struct ingest_probe_stats *out);

#endif
