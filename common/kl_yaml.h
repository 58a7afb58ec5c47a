/*
 * kl_yaml.h — a YAML document loaded into a small tree that keeps every node's
 * line and column, so config and rule errors can point at the exact place.
 *
 * Built on libyaml's event parser. Anchors/aliases are rejected (a config has no
 * need for them and they make marks ambiguous). The tree is owned by the caller
 * and freed with kl_yaml_free; node strings live as long as the tree.
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

#endif
