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

/* libyaml's indentation for a scalar in the open collection (-1 at the top):
 * the column where a block collection starts, that of its first key or '-'.
 * (Not so for a collection with a tag, whose mark is the tag's: then a block
 * scalar's explicit indentation is taken wrong, and kl_ynode_source_pos finds
 * that it cannot rebuild the value.) */
static int block_indent(const struct loader *ld)
{
	return ld->depth ? ld->stack[ld->depth - 1].node->col - 1 : -1;
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
	const unsigned char *u = (const unsigned char *)data;
	if (len >= 2 && ((u[0] == 0xff && u[1] == 0xfe) || (u[0] == 0xfe && u[1] == 0xff)))
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

/* ------------------------------------------------------------------------- */
/*
 * kl_ynode_source_pos: the scalar's source text read again the way libyaml's
 * scanner reads it (yaml_parser_scan_plain_scalar, _flow_scalar,
 * _block_scalar), each value byte rebuilt with the position of the source
 * character it comes from and compared with the value. Scanning stops at the
 * byte asked for; any difference is a failure, never a wrong position.
 */

struct pos {
	int line, col;
};

struct rscan {
	const unsigned char *p, *end; /* cursor in the source text */
	struct pos at;		      /* position of *p */
	struct pos after;	      /* just after the last character copied */
	const struct kl_ynode *n;
	size_t v;    /* value bytes rebuilt so far */
	size_t want; /* the value offset asked for */
	bool found, bad;
	struct pos hit;
};

/* a line break in the source: where, and the bytes it stands for */
struct rbreak {
	const unsigned char *p; /* NULL: none */
	struct pos at;
};

static bool rs_done(const struct rscan *s)
{
	return s->found || s->bad || s->p >= s->end;
}

static bool is_blank(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/* Length of the line break at p (CR LF, CR, LF, NEL, LS, PS), 0 if none. */
static size_t brk_len(const unsigned char *p, const unsigned char *end)
{
	if (p >= end)
		return 0;
	if (p[0] == '\r')
		return end - p > 1 && p[1] == '\n' ? 2 : 1;
	if (p[0] == '\n')
		return 1;
	if (end - p >= 2 && p[0] == 0xc2 && p[1] == 0x85)
		return 2;
	if (end - p >= 3 && p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9))
		return 3;
	return 0;
}

static void pos_next_col(struct pos *at)
{
	if (at->col < INT32_MAX)
		at->col++;
}

/* Step over one character or line break. */
static void rs_adv(struct rscan *s)
{
	if (s->p >= s->end)
		return;
	size_t b = brk_len(s->p, s->end);
	if (b) {
		s->p += b;
		if (s->at.line < INT32_MAX)
			s->at.line++;
		s->at.col = 1;
		return;
	}
	unsigned char c = *s->p;
	size_t w = c < 0xc0 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
	if (w > (size_t)(s->end - s->p))
		w = (size_t)(s->end - s->p);
	s->p += w;
	pos_next_col(&s->at);
}

/* The source character at `at` yields the k value bytes b. */
static void rs_emit(struct rscan *s, const void *b, size_t k, struct pos at)
{
	if (s->found || s->bad)
		return;
	if (k > s->n->len - s->v || memcmp(s->n->str + s->v, b, k) != 0) {
		s->bad = true;
		return;
	}
	if (s->want < s->v + k) {
		s->found = true;
		s->hit = at;
	}
	s->v += k;
}

/* Copy the character at the cursor to the value. */
static void rs_copy(struct rscan *s)
{
	const unsigned char *q = s->p;
	struct pos at = s->at;
	rs_adv(s);
	rs_emit(s, q, (size_t)(s->p - q), at);
	s->after = s->at;
}

/* A line break yields "\n", except LS and PS, which are kept as they are. */
static void rs_emit_break(struct rscan *s, const unsigned char *p, struct pos at)
{
	if (brk_len(p, s->end) == 3)
		rs_emit(s, p, 3, at);
	else
		rs_emit(s, "\n", 1, at);
}

static bool break_is_lf(const struct rscan *s, const struct rbreak *b)
{
	return b->p && brk_len(b->p, s->end) != 3;
}

/* Emit the line breaks between the cursor and end (what lies between them is
 * indentation), leaving the cursor at end. */
static void rs_emit_breaks_to(struct rscan *s, const unsigned char *end)
{
	while (s->p < end && !s->found && !s->bad) {
		if (brk_len(s->p, s->end))
			rs_emit_break(s, s->p, s->at);
		rs_adv(s);
	}
}

/*
 * Blanks and line breaks between two runs of characters of a plain or quoted
 * scalar. Without a line break, the blanks are kept. With some, the blanks
 * around them go; the first break (the leading one) becomes a space if no other
 * follows, else it goes and the others stay; a leading LS or PS is kept. After
 * an escaped line break (escaped: true) the leading break is empty: the
 * following breaks stay.
 */
static void rs_gap(struct rscan *s, bool escaped)
{
	const unsigned char *q = s->p;
	size_t nbreaks = 0;
	while (q < s->end) {
		size_t b = brk_len(q, s->end);
		if (b) {
			nbreaks++;
			q += b;
		} else if (is_blank(*q)) {
			q++;
		} else {
			break;
		}
	}
	if (!escaped && nbreaks == 0) {
		while (s->p < q && !s->found && !s->bad)
			rs_copy(s);
		return;
	}
	struct rbreak lead = { NULL, { 0, 0 } };
	if (!escaped) {
		while (!brk_len(s->p, s->end))
			rs_adv(s);
		lead = (struct rbreak){ s->p, s->at };
		rs_adv(s);
		nbreaks--;
	}
	if (break_is_lf(s, &lead)) {
		if (nbreaks == 0)
			rs_emit(s, " ", 1, lead.at);
	} else if (lead.p) {
		rs_emit_break(s, lead.p, lead.at);
	}
	rs_emit_breaks_to(s, q);
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The escape sequence at the cursor (on its backslash), not a line break. */
static void rs_escape(struct rscan *s)
{
	static const char simple_in[] = "0abt\tnvfre \"/\\";
	static const char simple_out[] = "\0\a\b\t\t\n\v\f\r\x1b \"/\\";
	struct pos at = s->at;
	if (s->end - s->p < 2) {
		s->bad = true;
		return;
	}
	unsigned char c = s->p[1];
	const char *hit = c ? memchr(simple_in, c, sizeof simple_in - 1) : NULL;
	unsigned char out[4];
	size_t nout = 0, ndigits = 0;
	if (hit) {
		out[nout++] = (unsigned char)simple_out[hit - simple_in];
	} else if (c == 'N') { /* NEL */
		memcpy(out, "\xc2\x85", nout = 2);
	} else if (c == '_') { /* NBSP */
		memcpy(out, "\xc2\xa0", nout = 2);
	} else if (c == 'L') { /* LS */
		memcpy(out, "\xe2\x80\xa8", nout = 3);
	} else if (c == 'P') { /* PS */
		memcpy(out, "\xe2\x80\xa9", nout = 3);
	} else if (c == 'x' || c == 'u' || c == 'U') {
		ndigits = c == 'x' ? 2 : c == 'u' ? 4 : 8;
	} else {
		s->bad = true;
		return;
	}
	rs_adv(s);
	rs_adv(s);
	if (ndigits) {
		unsigned long cp = 0;
		if ((size_t)(s->end - s->p) < ndigits) {
			s->bad = true;
			return;
		}
		for (size_t i = 0; i < ndigits; i++) {
			int h = hexval(s->p[i]);
			if (h < 0) {
				s->bad = true;
				return;
			}
			cp = cp << 4 | (unsigned)h;
		}
		for (size_t i = 0; i < ndigits; i++)
			rs_adv(s);
		if (cp <= 0x7f) {
			out[nout++] = (unsigned char)cp;
		} else if (cp <= 0x7ff) {
			out[nout++] = (unsigned char)(0xc0 | cp >> 6);
			out[nout++] = (unsigned char)(0x80 | (cp & 0x3f));
		} else if (cp <= 0xffff) {
			out[nout++] = (unsigned char)(0xe0 | cp >> 12);
			out[nout++] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
			out[nout++] = (unsigned char)(0x80 | (cp & 0x3f));
		} else if (cp <= 0x10ffff) {
			out[nout++] = (unsigned char)(0xf0 | cp >> 18);
			out[nout++] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
			out[nout++] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
			out[nout++] = (unsigned char)(0x80 | (cp & 0x3f));
		} else {
			s->bad = true;
			return;
		}
	}
	rs_emit(s, out, nout, at);
	s->after = s->at;
}

/* A plain (quote 0), single- or double-quoted scalar. */
static void rs_flow(struct rscan *s, unsigned char quote)
{
	if (quote)
		rs_adv(s);
	while (!rs_done(s)) {
		unsigned char c = *s->p;
		if (is_blank(c) || brk_len(s->p, s->end)) {
			rs_gap(s, false);
		} else if (quote == '\'' && c == '\'') {
			if (s->end - s->p < 2 || s->p[1] != '\'')
				break; /* the closing quote */
			struct pos at = s->at;
			rs_adv(s);
			rs_adv(s);
			rs_emit(s, "'", 1, at);
			s->after = s->at;
		} else if (quote == '"' && c == '"') {
			break;
		} else if (quote == '"' && c == '\\' && brk_len(s->p + 1, s->end)) {
			rs_adv(s);
			rs_adv(s);
			rs_gap(s, true);
		} else if (quote == '"' && c == '\\') {
			rs_escape(s);
		} else {
			rs_copy(s);
		}
	}
	if (quote)
		s->after = s->at; /* the end of the value: the closing quote */
}

/* Line breaks and indentation before a line of a block scalar: the cursor is
 * left on the line's first character past the indentation; *first is the first
 * break, *nbreaks their count. With *indent 0 (no indentation indicator), the
 * indentation is found: the deepest of these lines. (libyaml also makes it at
 * least one more than the enclosing collection's; a first line indented less
 * is not part of the scalar, so it is not in the source text either.) */
static void rs_block_breaks(struct rscan *s, int *indent, struct rbreak *first, size_t *nbreaks)
{
	int max_indent = 0;
	*first = (struct rbreak){ NULL, { 0, 0 } };
	*nbreaks = 0;
	for (;;) {
		while ((!*indent || s->at.col - 1 < *indent) && s->p < s->end && *s->p == ' ')
			rs_adv(s);
		if (s->at.col - 1 > max_indent)
			max_indent = s->at.col - 1;
		if (!brk_len(s->p, s->end))
			break;
		if (!first->p)
			*first = (struct rbreak){ s->p, s->at };
		(*nbreaks)++;
		rs_adv(s);
	}
	if (!*indent)
		*indent = max_indent > 1 ? max_indent : 1;
}

/* Emit the nbreaks breaks from first on, at their own positions. */
static void rs_emit_breaks(struct rscan *s, const struct rbreak *first, size_t nbreaks)
{
	if (!first->p)
		return;
	struct rscan t = *s; /* a second cursor over the same text */
	t.p = first->p;
	t.at = first->at;
	while (nbreaks > 0 && t.p < t.end && !t.found && !t.bad) {
		if (brk_len(t.p, t.end)) {
			rs_emit_break(&t, t.p, t.at);
			nbreaks--;
		}
		rs_adv(&t);
	}
	s->v = t.v;
	s->found = t.found;
	s->bad = t.bad;
	s->hit = t.hit;
}

/* A literal ("|") or folded (">") block scalar, on its indicator. */
static void rs_block(struct rscan *s, bool literal)
{
	int chomping = 0, increment = 0;
	rs_adv(s);
	for (int i = 0; i < 2 && s->p < s->end; i++) {
		unsigned char c = *s->p;
		if (!chomping && (c == '+' || c == '-')) {
			chomping = c == '+' ? 1 : -1;
			rs_adv(s);
		} else if (!increment && c >= '1' && c <= '9') {
			increment = c - '0';
			rs_adv(s);
		}
	}
	while (s->p < s->end && is_blank(*s->p))
		rs_adv(s);
	if (s->p < s->end && *s->p == '#')
		while (s->p < s->end && !brk_len(s->p, s->end))
			rs_adv(s);
	if (brk_len(s->p, s->end))
		rs_adv(s);
	else if (s->p < s->end)
		s->bad = true;
	s->after = s->at;

	int indent = 0;
	if (increment && s->n->src_indent > INT32_MAX - 10)
		s->bad = true;
	else if (increment)
		indent = s->n->src_indent >= 0 ? s->n->src_indent + increment : increment;
	struct rbreak lead = { NULL, { 0, 0 } }, trail;
	size_t ntrail;
	bool leading_blank = false;
	rs_block_breaks(s, &indent, &trail, &ntrail);
	while (!rs_done(s) && s->at.col - 1 == indent) {
		bool trailing_blank = is_blank(*s->p);
		if (!literal && break_is_lf(s, &lead) && !leading_blank && !trailing_blank) {
			if (ntrail == 0)
				rs_emit(s, " ", 1, lead.at);
		} else if (lead.p) {
			rs_emit_break(s, lead.p, lead.at);
		}
		rs_emit_breaks(s, &trail, ntrail);
		lead.p = NULL;
		leading_blank = is_blank(*s->p);
		while (s->p < s->end && !brk_len(s->p, s->end) && !s->found && !s->bad)
			rs_copy(s);
		if (brk_len(s->p, s->end)) {
			lead = (struct rbreak){ s->p, s->at };
			rs_adv(s);
		}
		rs_block_breaks(s, &indent, &trail, &ntrail);
	}
	if (chomping != -1 && lead.p)
		rs_emit_break(s, lead.p, lead.at);
	if (chomping == 1)
		rs_emit_breaks(s, &trail, ntrail);
}

int kl_ynode_source_pos(const struct kl_ynode *n, size_t value_off, int *line, int *col)
{
	*line = n ? n->line : 0;
	*col = n ? n->col : 0;
	if (!n || n->type != KL_Y_SCALAR || value_off > n->len)
		return -EINVAL;
	if (!n->src)
		return -ENOENT;

	struct rscan s = {
		.p = (const unsigned char *)n->src,
		.end = (const unsigned char *)n->src + n->src_len,
		.at = { n->line, n->col },
		.n = n,
		.want = value_off,
	};
	/* properties first: a tag (an anchor is refused, but skipped all the
	 * same), then blanks, line breaks and comments up to the content */
	while (s.p < s.end && (*s.p == '!' || *s.p == '&')) {
		while (s.p < s.end && !is_blank(*s.p) && !brk_len(s.p, s.end))
			rs_adv(&s);
		while (s.p < s.end) {
			if (is_blank(*s.p) || brk_len(s.p, s.end)) {
				rs_adv(&s);
			} else if (*s.p == '#') {
				while (s.p < s.end && !brk_len(s.p, s.end))
					rs_adv(&s);
			} else {
				break;
			}
		}
	}
	s.after = s.at;
	unsigned char c = s.p < s.end ? *s.p : 0;
	if (c == '\'' || c == '"') {
		if (n->plain)
			return -ENOENT;
		rs_flow(&s, c);
	} else if (c == '|' || c == '>') {
		if (n->plain)
			return -ENOENT;
		rs_block(&s, c == '|');
	} else {
		if (!n->plain)
			return -ENOENT;
		rs_flow(&s, 0);
	}
	/* not found: only the end of the value, once all of it is rebuilt */
	if (s.bad || (!s.found && (value_off != n->len || s.v != n->len)))
		return -ENOENT;
	struct pos at = s.found ? s.hit : s.after;
	*line = at.line;
	*col = at.col;
	return 0;
}
