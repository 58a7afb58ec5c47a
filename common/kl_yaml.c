/*
 * kl_yaml.c — a YAML document as a tree of kl_ynode, built from libyaml's
 * event parser (yaml_parser_parse).
 *
 * Design:
 * - One pass over the events with an explicit stack of open collections; a
 *   node is attached to its parent as soon as it starts, so the tree is always
 *   well-formed and can be freed at any point.
 * - Nesting is capped (MAX_DEPTH) so that everything that walks the tree may
 *   recurse without fear for its stack, whatever the input.
 * - Problems that leave the structure intact (an anchor, an alias, a key that
 *   is not a scalar, a duplicate key) are reported and loading goes on to find
 *   the others; the result is then NULL. A libyaml error stops loading.
 * - Duplicate keys are found when a mapping ends, by sorting an index of its
 *   keys: O(n log n), so a hostile mapping with many keys stays cheap.
 * - Marks are libyaml's 0-based line/column plus one. Columns count characters
 *   (libyaml's column), not bytes.
 * - Each scalar keeps a copy of its source text, found from libyaml's mark
 *   indexes (which count characters, not bytes: a cursor converts them in one
 *   pass, as scalars come in document order). kl_ynode_source_pos re-reads
 *   that text the way libyaml's scanner does (folding, escapes, block
 *   indentation) and checks every byte it rebuilds against the value, so a
 *   position it returns is never a guess.
 */
#include "common/kl_yaml.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define MAX_DEPTH 64
#define MAX_FILE  (16u << 20)

struct frame {
	struct kl_ynode *node;
	struct kl_ynode *key; /* mapping: a key waiting for its value */
	size_t cap;	      /* allocated slots in keys/items */
};

struct loader {
	const char *name;
	const char *data;
	size_t len;
	struct kl_diag *d;
	struct frame stack[MAX_DEPTH];
	size_t depth;
	struct kl_ynode *root;
	bool failed;
	/* source text of scalars: libyaml mark index → byte offset in data */
	bool keep_src;	  /* false for UTF-16 input (indexes are not UTF-8) */
	size_t base;	  /* bytes of a leading UTF-8 BOM, which has no index */
	size_t cur_index; /* a mark index ... */
	size_t cur_byte;  /* ... and its byte offset */
};

static void node_free(struct kl_ynode *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->n; i++) {
		if (n->keys)
			node_free(n->keys[i]);
		node_free(n->items[i]);
	}
	free(n->keys);
	free(n->items);
	free(n->str);
	free(n);
}

void kl_yaml_free(struct kl_ynode *n)
{
	node_free(n);
}

/* A short, printable rendition of a scalar for messages: at most 60 bytes,
 * anything that is not printable ASCII shown as '?'. */
static const char *shown(const struct kl_ynode *n, char *buf, size_t size)
{
	size_t i, o = 0;

	for (i = 0; i < n->len && o + 4 < size && o < 60; i++) {
		unsigned char c = (unsigned char)n->str[i];
		buf[o++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	if (i < n->len) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
	return buf;
}

/* libyaml's 0-based mark → 1-based, clamped to int */
static int mark1(size_t v)
{
	return v >= (size_t)INT32_MAX ? INT32_MAX : (int)v + 1;
}

static struct kl_ynode *node_new(enum kl_ynode_type type, yaml_mark_t mark)
{
	struct kl_ynode *n = calloc(1, sizeof *n);
	if (!n)
		return NULL;
	n->type = type;
	n->line = mark1(mark.line);
	n->col = mark1(mark.column);
	return n;
}

/* Room for one more entry in the collection of frame f. */
static int frame_grow(struct frame *f)
{
	struct kl_ynode *n = f->node;
	if (n->n < f->cap)
		return 0;
	size_t ncap = f->cap ? f->cap * 2 : 4;
	struct kl_ynode **items = realloc(n->items, ncap * sizeof *items);
	if (!items)
		return -ENOMEM;
	n->items = items;
	if (n->type == KL_Y_MAP) {
		struct kl_ynode **keys = realloc(n->keys, ncap * sizeof *keys);
		if (!keys)
			return -ENOMEM;
		n->keys = keys;
	}
	f->cap = ncap;
	return 0;
}

/* Attach a new node to the open collection (or make it the root). Takes
 * ownership of n in every case. */
static int attach(struct loader *ld, struct kl_ynode *n)
{
	if (ld->depth == 0) {
		if (ld->root) {
			node_free(n); /* cannot happen: one node per document */
			return 0;
		}
		ld->root = n;
		return 0;
	}
	struct frame *f = &ld->stack[ld->depth - 1];
	if (f->node->type == KL_Y_MAP && !f->key) {
		if (n->type != KL_Y_SCALAR) {
			kl_diag_error(ld->d, ld->name, n->line, n->col,
				      "a mapping key must be a scalar, found %s", kl_ynode_kind(n));
			ld->failed = true;
		}
		f->key = n;
		return 0;
	}
	if (frame_grow(f) < 0) {
		node_free(n);
		return -ENOMEM;
	}
	if (f->node->type == KL_Y_MAP) {
		f->node->keys[f->node->n] = f->key;
		f->key = NULL;
	}
	f->node->items[f->node->n++] = n;
	return 0;
}

static int key_cmp(const struct kl_ynode *a, const struct kl_ynode *b)
{
	/* non-scalar keys (already reported) sort first and never compare equal */
	if (a->type != KL_Y_SCALAR || b->type != KL_Y_SCALAR)
		return (a->type == KL_Y_SCALAR) - (b->type == KL_Y_SCALAR);
	if (a->len != b->len)
		return a->len < b->len ? -1 : 1;
	return memcmp(a->str, b->str, a->len);
}

struct keyref {
	const struct kl_ynode *key;
	size_t idx; /* position in the mapping */
};

static int keyref_cmp(const void *pa, const void *pb)
{
	const struct keyref *a = pa, *b = pb;
	int c = key_cmp(a->key, b->key);
	if (c)
		return c;
	return a->idx < b->idx ? -1 : a->idx > b->idx;
}

/* Report every key of map that repeats an earlier one, in document order. */
static int check_duplicates(struct loader *ld, const struct kl_ynode *map)
{
	size_t n = map->n;
	if (n < 2)
		return 0;
	struct keyref *refs = malloc(n * sizeof *refs);
	size_t *first = malloc(n * sizeof *first);
	if (!refs || !first) {
		free(refs);
		free(first);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		refs[i] = (struct keyref){ map->keys[i], i };
		first[i] = SIZE_MAX;
	}
	qsort(refs, n, sizeof *refs, keyref_cmp);
	/* equal keys are adjacent, the earliest first */
	for (size_t i = 1; i < n; i++) {
		const struct keyref *a = &refs[i - 1], *b = &refs[i];
		if (a->key->type == KL_Y_SCALAR && key_cmp(a->key, b->key) == 0)
			first[b->idx] = first[a->idx] != SIZE_MAX ? first[a->idx] : a->idx;
	}
	for (size_t i = 0; i < n; i++) {
		if (first[i] == SIZE_MAX)
			continue;
		char buf[80];
		const struct kl_ynode *k = map->keys[i];
		kl_diag_error(ld->d, ld->name, k->line, k->col,
			      "duplicate key '%s' (first at line %d)", shown(k, buf, sizeof buf),
			      map->keys[first[i]]->line);
		ld->failed = true;
	}
	free(refs);
	free(first);
	return 0;
}

/* Line and column (1-based) of byte offset off in the input, for reader
 * errors, which carry an offset and no mark. */
static void offset_to_mark(const struct loader *ld, size_t off, int *line, int *col)
{
	int l = 1, c = 1;
	if (off > ld->len)
		off = ld->len;
	for (size_t i = 0; i < off; i++) {
		if (ld->data[i] == '\n') {
			l++;
			c = 1;
		} else if (((unsigned char)ld->data[i] & 0xc0) != 0x80) {
			c++;
		}
		if (l == INT32_MAX || c == INT32_MAX)
			break;
	}
	*line = l;
	*col = c;
}

static void report_libyaml(struct loader *ld, const yaml_parser_t *p)
{
	const char *problem = p->problem ? p->problem : "syntax error";
	int line, col;

	switch (p->error) {
	case YAML_MEMORY_ERROR:
		kl_diag_error(ld->d, ld->name, 0, 0, "out of memory");
		break;
	case YAML_READER_ERROR:
		offset_to_mark(ld, p->problem_offset, &line, &col);
		if (p->problem_value != -1)
			kl_diag_error(ld->d, ld->name, line, col, "%s (byte 0x%02x)", problem,
				      (unsigned)p->problem_value & 0xff);
		else
			kl_diag_error(ld->d, ld->name, line, col, "%s", problem);
		break;
	default:
		line = mark1(p->problem_mark.line);
		col = mark1(p->problem_mark.column);
		if (p->context && p->context_mark.line != p->problem_mark.line)
			kl_diag_error(ld->d, ld->name, line, col, "%s %s (started at line %d)",
				      problem, p->context, mark1(p->context_mark.line));
		else if (p->context)
			kl_diag_error(ld->d, ld->name, line, col, "%s %s", problem, p->context);
		else
			kl_diag_error(ld->d, ld->name, line, col, "%s", problem);
		break;
	}
	ld->failed = true;
}

static void check_anchor(struct loader *ld, const yaml_char_t *anchor, yaml_mark_t m)
{
	if (!anchor)
		return;
	kl_diag_error(ld->d, ld->name, mark1(m.line), mark1(m.column),
		      "anchors are not supported (found '&%s'); repeat the value instead",
		      (const char *)anchor);
	ld->failed = true;
}

/* Byte offset in the input of libyaml's mark index idx, which counts
 * characters after a leading BOM (a UTF-8 sequence is one, CR LF is two).
 * Marks come in document order, so the cursor only moves forward. */
static size_t index_to_byte(struct loader *ld, size_t idx)
{
	if (idx < ld->cur_index) {
		ld->cur_index = 0;
		ld->cur_byte = ld->base;
	}
	while (ld->cur_index < idx && ld->cur_byte < ld->len) {
		ld->cur_byte++;
		while (ld->cur_byte < ld->len && ((unsigned char)ld->data[ld->cur_byte] & 0xc0) == 0x80)
			ld->cur_byte++;
		ld->cur_index++;
	}
	return ld->cur_byte;
}

/* libyaml's indentation for a scalar in the open collection: the column of a
 * block mapping's keys or of a block sequence's entries; -1 at the top. */
static int block_indent(const struct loader *ld)
{
	if (ld->depth == 0)
		return -1;
	const struct frame *f = &ld->stack[ld->depth - 1];
	const struct kl_ynode *first = f->node;
	if (first->type == KL_Y_MAP && first->n > 0)
		first = first->keys[0];
	else if (first->type == KL_Y_MAP && f->key)
		first = f->key;
	return first->col - 1;
}

static int on_scalar(struct loader *ld, const yaml_event_t *ev)
{
	struct kl_ynode *n = node_new(KL_Y_SCALAR, ev->start_mark);
	if (!n)
		return -ENOMEM;
	size_t vlen = ev->data.scalar.length, start = 0, end = 0;
	bool keep = ld->keep_src;
	if (keep) {
		start = index_to_byte(ld, ev->start_mark.index);
		end = index_to_byte(ld, ev->end_mark.index);
		keep = start <= end;
	}
	size_t slen = keep ? end - start : 0;
	/* one block: the value, its NUL, then the source text and its NUL */
	char *buf = malloc(vlen + 1 + (keep ? slen + 1 : 0));
	if (!buf) {
		free(n);
		return -ENOMEM;
	}
	if (vlen)
		memcpy(buf, ev->data.scalar.value, vlen);
	buf[vlen] = '\0';
	if (keep) {
		char *src = buf + vlen + 1;
		if (slen)
			memcpy(src, ld->data + start, slen);
		src[slen] = '\0';
		n->src = src;
		n->src_off = start;
		n->src_len = slen;
	}
	n->src_indent = block_indent(ld);
	n->str = buf;
	n->len = vlen;
	n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
	check_anchor(ld, ev->data.scalar.anchor, ev->start_mark);
	return attach(ld, n);
}

static int on_alias(struct loader *ld, const yaml_event_t *ev)
{
	kl_diag_error(ld->d, ld->name, mark1(ev->start_mark.line), mark1(ev->start_mark.column),
		      "aliases are not supported (found '*%s'); repeat the value instead",
		      (const char *)ev->data.alias.anchor);
	ld->failed = true;
	/* an empty placeholder keeps the mapping's keys and values paired */
	struct kl_ynode *n = node_new(KL_Y_SCALAR, ev->start_mark);
	if (!n)
		return -ENOMEM;
	n->str = kl_strndup("", 0);
	if (!n->str) {
		free(n);
		return -ENOMEM;
	}
	n->plain = true;
	return attach(ld, n);
}

static int on_start(struct loader *ld, const yaml_event_t *ev, enum kl_ynode_type type)
{
	const yaml_char_t *anchor = type == KL_Y_MAP ? ev->data.mapping_start.anchor
						     : ev->data.sequence_start.anchor;
	if (ld->depth == MAX_DEPTH) {
		kl_diag_error(ld->d, ld->name, mark1(ev->start_mark.line),
			      mark1(ev->start_mark.column), "nesting deeper than %d levels",
			      MAX_DEPTH);
		ld->failed = true;
		return -E2BIG;
	}
	struct kl_ynode *n = node_new(type, ev->start_mark);
	if (!n)
		return -ENOMEM;
	check_anchor(ld, anchor, ev->start_mark);
	int rc = attach(ld, n);
	if (rc < 0)
		return rc;
	ld->stack[ld->depth++] = (struct frame){ .node = n };
	return 0;
}

static int on_end(struct loader *ld)
{
	struct frame *f = &ld->stack[--ld->depth];
	/* a key without a value cannot come out of libyaml; be safe anyway */
	node_free(f->key);
	f->key = NULL;
	if (f->node->type == KL_Y_MAP)
		return check_duplicates(ld, f->node);
	return 0;
}

/* Pop everything (after an error): open frames may hold a pending key. */
static void unwind(struct loader *ld)
{
	while (ld->depth > 0) {
		struct frame *f = &ld->stack[--ld->depth];
		node_free(f->key);
		f->key = NULL;
	}
}

/*
 * Returns 1 when the first document is complete, 0 to go on, or a negative
 * errno (the problem has been reported).
 */
static int on_event(struct loader *ld, const yaml_event_t *ev, bool *seen_doc)
{
	switch (ev->type) {
	case YAML_STREAM_START_EVENT:
		return 0;
	case YAML_DOCUMENT_START_EVENT:
		*seen_doc = true;
		return 0;
	case YAML_DOCUMENT_END_EVENT:
	case YAML_STREAM_END_EVENT:
		return 1;
	case YAML_SCALAR_EVENT:
		return on_scalar(ld, ev);
	case YAML_ALIAS_EVENT:
		return on_alias(ld, ev);
	case YAML_SEQUENCE_START_EVENT:
		return on_start(ld, ev, KL_Y_SEQ);
	case YAML_MAPPING_START_EVENT:
		return on_start(ld, ev, KL_Y_MAP);
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		return on_end(ld);
	default:
		return 0;
	}
}

struct kl_ynode *kl_yaml_load_mem(const char *name, const char *data, size_t len,
				  struct kl_diag *d)
{
	yaml_parser_t parser;
	bool seen_doc = false;
	int rc = 0;

	if (!data) /* libyaml asserts on a NULL input */
		data = "", len = 0;
	struct loader ld = { .name = name, .data = data, .len = len, .d = d, .keep_src = true };
	/* libyaml reads UTF-16 when the input starts with its BOM: its mark
	 * indexes do not count UTF-8 characters of data then */
	if (len >= 2 && ((data[0] == '\xff' && data[1] == '\xfe') ||
			 (data[0] == '\xfe' && data[1] == '\xff')))
		ld.keep_src = false;
	else if (len >= 3 && memcmp(data, "\xef\xbb\xbf", 3) == 0)
		ld.base = 3;
	ld.cur_byte = ld.base;
	if (!yaml_parser_initialize(&parser)) {
		kl_diag_error(d, name, 0, 0, "out of memory");
		return NULL;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
	while (rc == 0) {
		yaml_event_t ev;
		if (!yaml_parser_parse(&parser, &ev)) {
			report_libyaml(&ld, &parser);
			rc = -EINVAL;
			break;
		}
		rc = on_event(&ld, &ev, &seen_doc);
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&parser);
	unwind(&ld);
	if (rc == -ENOMEM) {
		kl_diag_error(d, name, 0, 0, "out of memory");
		ld.failed = true;
	}
	if (!ld.failed && !seen_doc) {
		kl_diag_error(d, name, 0, 0, "the file is empty; expected a YAML mapping");
		ld.failed = true;
	}
	if (!ld.failed && (!ld.root || kl_ynode_is_null(ld.root))) {
		/* an empty document: an empty mapping, placed where the null was */
		struct kl_ynode *m = calloc(1, sizeof *m);
		if (!m) {
			kl_diag_error(d, name, 0, 0, "out of memory");
			ld.failed = true;
		} else {
			m->type = KL_Y_MAP;
			m->line = ld.root ? ld.root->line : 1;
			m->col = ld.root ? ld.root->col : 1;
			node_free(ld.root);
			ld.root = m;
		}
	}
	if (ld.failed) {
		node_free(ld.root);
		return NULL;
	}
	return ld.root;
}

struct kl_ynode *kl_yaml_load_file(const char *path, struct kl_diag *d)
{
	char *data;
	size_t len;
	int rc = kl_read_file(path, MAX_FILE, &data, &len);

	if (rc == -EFBIG) {
		kl_diag_error(d, path, 0, 0, "the file is larger than %u MiB", MAX_FILE >> 20);
		return NULL;
	}
	if (rc < 0) {
		kl_diag_error(d, path, 0, 0, "cannot read: %s", strerror(-rc));
		return NULL;
	}
	struct kl_ynode *root = kl_yaml_load_mem(path, data, len, d);
	free(data);
	return root;
}

const struct kl_ynode *kl_ymap_get(const struct kl_ynode *map, const char *key)
{
	if (!map || map->type != KL_Y_MAP || !key)
		return NULL;
	size_t klen = strlen(key);
	for (size_t i = 0; i < map->n; i++) {
		const struct kl_ynode *k = map->keys[i];
		if (k->type == KL_Y_SCALAR && k->len == klen && memcmp(k->str, key, klen) == 0)
			return map->items[i];
	}
	return NULL;
}

bool kl_ynode_is_null(const struct kl_ynode *n)
{
	if (!n || n->type != KL_Y_SCALAR || !n->plain)
		return false;
	return n->len == 0 || (n->len == 1 && n->str[0] == '~') ||
	       (n->len == 4 && memcmp(n->str, "null", 4) == 0);
}

const char *kl_ynode_kind(const struct kl_ynode *n)
{
	if (!n)
		return "nothing";
	switch (n->type) {
	case KL_Y_SCALAR:
		return "a scalar";
	case KL_Y_SEQ:
		return "a list";
	case KL_Y_MAP:
		return "a mapping";
	}
	return "a node";
}
