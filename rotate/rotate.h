/*
 * rotate.h — the rotator: gzip aged logs, retention, rotation of live files.
 *
 * A rule (one `rotate:` entry) names files by a glob whose directory part is a
 * literal directory and whose last component may hold * ? [...]. A rule is
 * one of two kinds:
 *  - an archive rule (no max_size, no max_age): every matching regular file
 *    older (by mtime) than delete_after is deleted; else, older than
 *    compress_after and at least min_size, it is gzipped to NAME.gz;
 *  - a live rule (max_size and/or max_age): every matching file is a live log;
 *    it is rotated (method rename or copytruncate) to NAME.1 (the older ones
 *    shifted to NAME.2, ...) or, with dateext, to NAME-YYYYMMDD; its rotated
 *    generations are deleted beyond keep or past delete_after, and gzipped
 *    past compress_after.
 *
 * A scan looks at the directories, decides, and then carries the actions out
 * one after the other; each action checks again, just before it acts, that
 * the file is still the one the scan saw (device, inode, regular, one link).
 * Compression and the copy of copytruncate run on a worker thread that
 * reports back to the loop with ev_async, so a large file never stalls the
 * loop; with no loop (the `klaxon rotate` command) everything runs in the
 * caller. The safety rules (no symlink followed, nothing outside the rule's
 * directory, no unsafe directory, no file the tailer has not read, archives
 * written durably before their source is removed) are in rotate.c's opening
 * comment.
 */
#ifndef ROTATE_H
#define ROTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct ev_loop;

enum rotate_method {
	ROTATE_RENAME = 0, /* NAME -> NAME.1, then the writer is told to reopen */
	ROTATE_COPYTRUNCATE, /* NAME copied to NAME.1, then NAME truncated to 0 */
};

/* One `rotate:` entry, as the config loads it. Strings are not copied:
 * they must outlive the rotator. Durations in microseconds; -1: not set. */
struct rotate_rule {
	const char *path;	   /* a path or a glob in its last component */
	int64_t compress_after_us; /* -1: never compress */
	int64_t delete_after_us;   /* -1: never delete by age */
	uint64_t max_size;	   /* live: rotate above this many bytes; 0: not by size */
	int64_t max_age_us;	   /* live: rotate when the newest generation is older; -1 */
	enum rotate_method method;
	int keep;		   /* live: rotated generations kept; -1: no limit */
	bool dateext;		   /* live: NAME-YYYYMMDD rather than NAME.N */
	int level;		   /* gzip level 1..9 */
	uint64_t min_size;	   /* smaller files are not compressed or rotated by age */
	const char *pidfile;	   /* rename: signal the process named there; NULL: none */
	int sig;		   /* that signal (SIGUSR1, SIGHUP, ...) */
	bool allow_unsafe_dir;	   /* accept a world-writable or foreign-owned directory */
};

/* What a reported line says. */
enum rotate_outcome {
	ROTATE_DONE,	/* the action was taken (or, in a dry run, would be) */
	ROTATE_SKIPPED, /* a file the rules name, left alone, and why */
	ROTATE_FAILED,	/* the action failed; what is on disk is as before it */
};

/*
 * Services the rotator needs from the main program (it never includes
 * another stage's header). Every member may be NULL.
 */
struct rotate_hooks {
	/*
	 * How far the tailer has handed on the file (dev, ino): true when it has
	 * read all of its size bytes or does not follow it at all. false with
	 * *read set to the bytes handed on so far. NULL: every file counts as
	 * read. Called on the loop's thread.
	 */
	bool (*fully_read)(void *ctx, dev_t dev, ino_t ino, uint64_t size, uint64_t *read);
	/* Every action taken, skipped or failed, as one line of text
	 * ("compress /var/log/a.log.1 -> /var/log/a.log.1.gz"); line is valid
	 * during the call. Called on the loop's thread. */
	void (*report)(void *ctx, enum rotate_outcome o, const char *line);
	void *ctx;
};

struct rotate_stats {
	uint64_t scans;
	uint64_t compressed;
	uint64_t deleted;
	uint64_t rotated;
	uint64_t tmp_removed; /* leftover NAME.gz.tmp of an interrupted run */
	uint64_t skipped;
	uint64_t failed;
	uint64_t bytes_in;    /* bytes compressed */
	uint64_t bytes_out;   /* gzip bytes written */
};

struct rotate;

struct rotate_opts {
	int64_t interval_us; /* run: scan every interval (the first after 1 s); 0: 1 min */
	bool dry_run;	     /* decide and report, change nothing */
};

/*
 * A rotator over rules[0..n) (copied; their strings are not). With a loop, it
 * scans on a timer and compresses on a worker thread; with loop NULL it does
 * nothing until rotate_scan. Returns NULL with *err = -errno (-ENOMEM, or
 * -EINVAL for a rule that names no file or holds "..").
 */
struct rotate *rotate_new(struct ev_loop *loop, const struct rotate_rule *rules, size_t n,
			  const struct rotate_opts *opts, const struct rotate_hooks *hooks, int *err);
/*
 * One pass over every rule, carried out before it returns (loop NULL), or
 * started on the loop (it goes on in the background; a scan still running is
 * not started twice). Returns 0, or the first -errno of a failed action (each
 * is reported and counted).
 */
int rotate_scan(struct rotate *r);
/* True while a scan started on the loop is still carrying out actions. */
bool rotate_busy(const struct rotate *r);
void rotate_get_stats(const struct rotate *r, struct rotate_stats *out);
/* Stop the timer; a compression in progress is cancelled (its temporary file
 * removed, the original left as it was) and waited for. Accepts NULL. */
void rotate_free(struct rotate *r);

/* "rename" / "copytruncate" for messages. */
const char *rotate_method_name(enum rotate_method m);
/* A signal by name ("USR1" or "SIGUSR1"; USR1, USR2, HUP, INT, TERM, WINCH),
 * or -EINVAL. */
int rotate_signal_parse(const char *name);
/* Is rule->path usable: not empty, no ".." component, a glob only in its
 * last component, a file name (not a directory). 0, or -EINVAL with *why. */
int rotate_rule_check(const struct rotate_rule *rule, const char **why);

#endif
