/*
 * kl_yaml.h — a YAML document loaded into a small tree that keeps every node's
 * line and column, so config and rule errors can point at the exact place.
 *
 * Built on libyaml's event parser. Anchors/aliases are rejected (a config has no
 * need for them and they make marks ambiguous). The tree is owned by the caller
 * and freed with kl_yaml_free; node strings live as long as the tree.
 *
 * Every scalar also keeps the text it was written as (quotes, escapes, line
 * breaks and indentation included), so that kl_ynode_source_pos can point at a
 * place inside its value: e.g. an error in a rule's expression.
 */
#ifndef KL_YAML_H
#define KL_YAML_H

#include <stdbool.h>
#include <stddef.h>

#include "common/kl.h"

enum kl_ynode_type {
	KL_Y_SCALAR,
	KL_Y_SEQ,
	KL_Y_MAP,
};

struct kl_ynode {
	enum kl_ynode_type type;
	int line;	/* 1-based */
	int col;	/* 1-based */
	/* KL_Y_SCALAR */
	char *str;	/* NUL-terminated (may contain NULs before len) */
	size_t len;
	bool plain;	/* unquoted scalar: "~", "null" and "" are null only if plain */
	/* KL_Y_SEQ: items[0..n); KL_Y_MAP: keys[i] (scalars) → items[i] */
	struct kl_ynode **keys;
	struct kl_ynode **items;
	size_t n;
	/*
	 * KL_Y_SCALAR, for kl_ynode_source_pos: the scalar as written in the
	 * document, from its first property (tag) or character to the end of
	 * its text (libyaml's start and end marks): src_off is its byte offset
	 * in the document, src_len its length in bytes and src a copy of those
	 * bytes, owned by the node (it lives and is freed with str). src is
	 * NULL when the text was not kept (a UTF-16 document, an alias
	 * placeholder, a node not made by the loader). src_indent is the
	 * indentation (0-based column) of the block collection holding the
	 * scalar, -1 at the top level: the base of a block scalar's explicit
	 * indentation indicator ("|2").
	 */
	const char *src;
	size_t src_off;
	size_t src_len;
	int src_indent;
};

/*
 * Load the first document of a file. On a syntax error, an I/O error or an
 * empty file, reports through d as "FILE:LINE:COL: message" and returns NULL.
 * An empty document yields an empty map.
 */
struct kl_ynode *kl_yaml_load_file(const char *path, struct kl_diag *d);
/* The same from memory; name is used in reports. */
struct kl_ynode *kl_yaml_load_mem(const char *name, const char *data, size_t len,
				  struct kl_diag *d);
void kl_yaml_free(struct kl_ynode *n);

/* Value of key in a map, or NULL (also when map is NULL or not a map). */
const struct kl_ynode *kl_ymap_get(const struct kl_ynode *map, const char *key);
/* True for a plain scalar spelled "", "~" or "null". */
bool kl_ynode_is_null(const struct kl_ynode *n);
/* Name of a node type for messages: "a scalar", "a list", "a mapping". */
const char *kl_ynode_kind(const struct kl_ynode *n);

/*
 * Where byte value_off of scalar n's value (n->str) is written in the file:
 * sets *line and *col (1-based; columns count characters, like every other
 * mark) to the source character that produced that byte. The scalar's text is
 * re-scanned the way libyaml reads it: the opening quote is skipped; in a
 * double-quoted scalar an escape (\\, \", \n, \t, \xHH, \uHHHH, ...) is
 * the position of its backslash for every byte it yields (a \u escape may
 * yield up to four bytes of UTF-8), an escaped line break yields nothing; in a
 * single-quoted one '' is one quote; in plain, quoted and folded scalars a line
 * break folded into a space is placed at the end of the line it ends, and the
 * indentation of the next line yields nothing; in block scalars ("|", ">-",
 * ...) the header and each line's indentation yield nothing. value_off ==
 * n->len is the place just after the value (the closing quote of a quoted
 * scalar). Tags before the scalar are skipped.
 *
 * Returns 0; or -EINVAL (n is not a scalar, value_off > n->len) or -ENOENT (the
 * source text was not kept, or scanning it did not give back the value), and
 * then *line and *col are n->line and n->col (0 and 0 for a NULL n), so that
 * they can be used in a report in every case.
 */
int kl_ynode_source_pos(const struct kl_ynode *n, size_t value_off, int *line, int *col);

#endif
