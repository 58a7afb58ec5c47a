/*
 * config.c — klaxon.yml: loaded with kl_yaml (every node keeps its line and
 * column), checked key by key, turned into struct config.
 *
 * Design and invariants:
 * - One pass over the top-level keys in document order, then one pass that
 *   resolves every source's parser (so `parsers:` may come before or after
 *   `sources:`). Every problem is reported through the diag with the position
 *   of the node at fault, and checking goes on to find the others; the result
 *   is handed out only if the diag counted nothing new.
 * - The YAML tree is never modified. `${NAME}` is substituted when a value is
 *   read (get_str); the substituted copies live in the loading context until
 *   the config has copied what it keeps. Messages quote the text as written in
 *   the file (show), never a substituted value, so secrets taken from the
 *   environment do not reach the terminal or the logs.
 * - A built-in parser used by name gets one instance, shared by every source
 *   that names it, and kept in c->parsers with the user-defined ones; the
 *   config owns them all.
 * - Caps: MAX_SOURCES, MAX_PARSERS, MAX_SINKS, MAX_RULE_FILES, so that a
 *   hostile file costs bounded time (names are checked for duplicates by a
 *   linear scan).
 * - Paths of sources and jsonl sinks are kept as written (relative to the
 *   working directory); rule_files globs are resolved against the config
 *   file's directory, as documented in config.h.
 */
#include "src/config.h"

#include <errno.h>
#include <glob.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/kl_yaml.h"
#include "ingest/ingest.h"

#define MAX_SOURCES    1024
#define MAX_PROBES     256
#define PROBE_INTERVAL_MIN  100000 /* 100ms */
#define PROBE_INTERVAL_DEF  30000000
#define PROBE_TIMEOUT_DEF   5000000
#define MAX_PARSERS    256
#define MAX_SINKS      64
#define MAX_RULE_FILES 4096
#define MAX_ROTATE     256
#define MAX_LINE_MIN   (UINT64_C(1) << 10)
#define MAX_LINE_MAX   (UINT64_C(64) << 20)
#define MAX_LINE_DEF   ((size_t)64 << 10)

struct subst {
	const struct kl_ynode *node;
	char *value;
};

/* A parser named under `parsers:` (whether or not it could be built). */
struct declared {
	char *name;
	int line;
};

/* A source's `parser:` node, kept until the parsers are resolved. */
struct pending_source {
	const struct kl_ynode *parser_node;
};

struct ctx {
	const char *file;
	struct kl_diag *d;
	struct config *c;
	char *dir; /* the config file's directory */
	struct subst *subst;
	size_t nsubst, capsubst;
	struct declared *declared; /* user parsers, built or not */
	size_t ndeclared;
	struct pending_source *pending; /* parallel to c->sources */
	bool no_paths; /* config_load_embedded: sources have no `path` */
};

static void config_error(struct ctx *x, const struct kl_ynode *n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void config_error(struct ctx *x, const struct kl_ynode *n, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	kl_diag_error(x->d, x->file, n ? n->line : 0, n ? n->col : 0, "%s", msg);
}

static void oom(struct ctx *x)
{
	kl_diag_error(x->d, x->file, 0, 0, "out of memory");
}

/* ------------------------------------------------------------------------- */
/* Reading values */

/* A scalar's text as written, for messages: at most 80 bytes, anything not
 * printable shown as '?'. Returns buf. */
static const char *show(const struct kl_ynode *n, char *buf, size_t size)
{
	size_t i, o = 0;

	if (!n || n->type != KL_Y_SCALAR) {
		snprintf(buf, size, "%s", kl_ynode_kind(n));
		return buf;
	}
	for (i = 0; i < n->len && o + 4 < size && o < 80; i++) {
		unsigned char ch = (unsigned char)n->str[i];
		buf[o++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
	}
	if (i < n->len) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
	return buf;
}

static const char *kind(const struct kl_ynode *n)
{
	return kl_ynode_is_null(n) ? "an empty value" : kl_ynode_kind(n);
}

static bool env_name_start(char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || ch == '_';
}

static bool env_name_char(char ch)
{
	return env_name_start(ch) || (ch >= '0' && ch <= '9');
}

/*
 * Replace every ${NAME} (NAME: [A-Za-z_][A-Za-z0-9_]*) in s by the variable's
 * value. Anything else, "${" included, stays as written. *out is NULL when
 * there was nothing to replace. Returns 0, -ENOENT (reported), -ENOMEM.
 */
static int substitute(struct ctx *x, const struct kl_ynode *n, char **out)
{
	const char *s = n->str;
	struct kl_buf b = { 0 };
	size_t i = 0, done = 0;
	bool any = false;
	int rc = 0;

	*out = NULL;
	while (i + 1 < n->len) {
		if (s[i] != '$' || s[i + 1] != '{') {
			i++;
			continue;
		}
		size_t j = i + 2;
		if (j >= n->len || !env_name_start(s[j])) {
			i++;
			continue;
		}
		while (j < n->len && env_name_char(s[j]))
			j++;
		if (j >= n->len || s[j] != '}') {
			i++;
			continue;
		}
		char name[256];
		size_t nlen = j - i - 2;
		if (nlen >= sizeof name) {
			i++;
			continue;
		}
		memcpy(name, s + i + 2, nlen);
		name[nlen] = '\0';
		const char *val = getenv(name);
		if (!val) {
			config_error(x, n, "environment variable '%s' is not set", name);
			rc = -ENOENT;
			goto fail;
		}
		if (kl_buf_append(&b, s + done, i - done) < 0 || kl_buf_append_str(&b, val) < 0) {
			rc = -ENOMEM;
			goto fail;
		}
		any = true;
		i = done = j + 1;
	}
	if (!any)
		return 0;
	if (kl_buf_append(&b, s + done, n->len - done) < 0) {
		rc = -ENOMEM;
		goto fail;
	}
	*out = b.p;
	return 0;
fail:
	if (rc == -ENOMEM)
		oom(x);
	kl_buf_free(&b);
	return rc;
}

/*
 * The value of scalar n with ${NAME} substituted, owned by the context, or
 * NULL after reporting: not a scalar, empty, holding a NUL byte, an unset
 * variable. what ("a string", "a duration") and key name it in messages.
 */
static const char *get_str(struct ctx *x, const struct kl_ynode *n, const char *what,
			   const char *key)
{
	if (!n || n->type != KL_Y_SCALAR || kl_ynode_is_null(n)) {
		config_error(x, n, "expected %s for '%s', found %s", what, key, kind(n));
		return NULL;
	}
	if (memchr(n->str, '\0', n->len)) {
		config_error(x, n, "'%s' contains a NUL byte", key);
		return NULL;
	}
	for (size_t i = 0; i < x->nsubst; i++)
		if (x->subst[i].node == n)
			return x->subst[i].value;
	char *v;
	if (substitute(x, n, &v) < 0)
		return NULL;
	if (!v)
		return n->str;
	if (x->nsubst == x->capsubst) {
		size_t ncap = x->capsubst ? x->capsubst * 2 : 8;
		struct subst *ns = realloc(x->subst, ncap * sizeof *ns);
		if (!ns) {
			free(v);
			oom(x);
			return NULL;
		}
		x->subst = ns;
		x->capsubst = ncap;
	}
	x->subst[x->nsubst++] = (struct subst){ n, v };
	return v;
}

/* get_str, then a heap copy (the config keeps it). */
static char *dup_str(struct ctx *x, const struct kl_ynode *n, const char *what, const char *key)
{
	const char *s = get_str(x, n, what, key);
	if (!s)
		return NULL;
	char *p = kl_strndup(s, strlen(s));
	if (!p)
		oom(x);
	return p;
}

/* n must be a list (or an empty value, taken as an empty list). */
static bool want_list(struct ctx *x, const struct kl_ynode *n, const char *key)
{
	if (n->type == KL_Y_SEQ || kl_ynode_is_null(n))
		return true;
	config_error(x, n, "expected a list for '%s', found %s", key, kind(n));
	return false;
}

static bool want_map(struct ctx *x, const struct kl_ynode *n, const char *key)
{
	if (n->type == KL_Y_MAP)
		return true;
	config_error(x, n, "expected a mapping for '%s', found %s", key, kind(n));
	return false;
}

static size_t list_len(const struct kl_ynode *n)
{
	return n->type == KL_Y_SEQ ? n->n : 0;
}

/* "a, b, c" from a NULL-terminated list of names. */
static const char *join(const char *const *names, char *buf, size_t size)
{
	size_t used = 0;
	buf[0] = '\0';
	for (size_t i = 0; names[i]; i++) {
		int w = snprintf(buf + used, size - used, "%s%s", i ? ", " : "", names[i]);
		if (w < 0 || (size_t)w >= size - used)
			break;
		used += (size_t)w;
	}
	return buf;
}

static bool key_is(const struct kl_ynode *k, const char *name)
{
	return k->type == KL_Y_SCALAR && strlen(name) == k->len && memcmp(k->str, name, k->len) == 0;
}

/* The index of key k in names, or -1 (after reporting it as unknown, in a
 * section described by where: "", " in source 'nginx'"). */
static int known_key(struct ctx *x, const struct kl_ynode *k, const char *const *names,
		     const char *where)
{
	for (int i = 0; names[i]; i++)
		if (key_is(k, names[i]))
			return i;
	char shown[96], list[512];
	config_error(x, k, "unknown key '%s'%s; expected one of: %s", show(k, shown, sizeof shown),
		     where, join(names, list, sizeof list));
	return -1;
}

/* Names of sources, parsers and sinks: [A-Za-z0-9_-]+, at most 64 bytes. */
static bool valid_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
		      ch == '_' || ch == '-'))
			return false;
	}
	return true;
}

/* "source 'nginx'", or "a source" when the name is missing or invalid. */
static const char *label(char *buf, size_t size, const char *what, const char *name)
{
	if (name)
		snprintf(buf, size, "%s '%s'", what, name);
	else
		snprintf(buf, size, "a %s", what);
	return buf;
}

/* The `name:` of an entry of a list of `what`s; NULL after reporting. */
static char *entry_name(struct ctx *x, const struct kl_ynode *item, const char *what)
{
	const struct kl_ynode *n = kl_ymap_get(item, "name");
	if (!n) {
		config_error(x, item, "%s is missing 'name'", what);
		return NULL;
	}
	char *name = dup_str(x, n, "a name", "name");
	if (!name)
		return NULL;
	if (!valid_name(name)) {
		char shown[96];
		config_error(x, n, "invalid %s name '%s'; use 1 to 64 letters, digits, '_' and '-'",
			     what, show(n, shown, sizeof shown));
		free(name);
		return NULL;
	}
	return name;
}

/* ------------------------------------------------------------------------- */
/* Top-level scalars */

static void load_state_dir(struct ctx *x, const struct kl_ynode *v)
{
	char *s = dup_str(x, v, "a directory", "state_dir");
	if (!s)
		return;
	free(x->c->state_dir);
	x->c->state_dir = s;
}

/* HOST:PORT, [V6]:PORT; the port 1..65535. */
static bool valid_listen(const char *s)
{
	const char *colon = strrchr(s, ':');
	uint64_t port;
	if (!colon || colon == s)
		return false;
	if (s[0] == '[' && colon[-1] != ']')
		return false;
	if (kl_parse_u64(colon + 1, strlen(colon + 1), &port) < 0)
		return false;
	return port >= 1 && port <= 65535;
}

static void load_listen(struct ctx *x, const struct kl_ynode *v)
{
	x->c->listen_set = true;
	if (v && kl_ynode_is_null(v)) { /* `listen:` with no value: off */
		free(x->c->listen);
		x->c->listen = NULL;
		return;
	}
	char *s = dup_str(x, v, "an address", "listen");
	if (!s)
		return;
	if (!*s || !strcmp(s, "off")) {
		free(s);
		free(x->c->listen);
		x->c->listen = NULL;
		return;
	}
	if (!valid_listen(s)) {
		char shown[96];
		config_error(x, v,
			     "invalid address '%s' for 'listen'; expected HOST:PORT (e.g. 127.0.0.1:9731)",
			     show(v, shown, sizeof shown));
		free(s);
		return;
	}
	free(x->c->listen);
	x->c->listen = s;
}

static void load_eval_interval(struct ctx *x, const struct kl_ynode *v)
{
	const char *s = get_str(x, v, "a duration", "eval_interval");
	int64_t us;
	char shown[96];
	if (!s)
		return;
	if (kl_parse_duration_us(s, strlen(s), &us) < 0) {
		config_error(x, v,
			     "invalid duration '%s' for 'eval_interval'; expected a number with a "
			     "unit: us, ms, s, m, h, d, w (e.g. 500ms, 1m30s)",
			     show(v, shown, sizeof shown));
		return;
	}
	if (us <= 0) {
		config_error(x, v, "'eval_interval' must be more than 0");
		return;
	}
	x->c->eval_interval_us = us;
}

/* ------------------------------------------------------------------------- */
/* rule_files */

static int add_rule_file(struct ctx *x, const char *path)
{
	struct config *c = x->c;
	if (c->nrule_files == MAX_RULE_FILES)
		return -E2BIG;
	char **nf = realloc(c->rule_files, (c->nrule_files + 1) * sizeof *nf);
	if (!nf)
		return -ENOMEM;
	c->rule_files = nf;
	c->rule_files[c->nrule_files] = kl_strndup(path, strlen(path));
	if (!c->rule_files[c->nrule_files])
		return -ENOMEM;
	c->nrule_files++;
	return 0;
}

/* pattern, made relative to the config's directory (whose glob
 * metacharacters are escaped). Heap string or NULL. */
static char *resolve_glob(const struct ctx *x, const char *pattern)
{
	struct kl_buf b = { 0 };
	if (pattern[0] != '/' && strcmp(x->dir, ".") != 0) {
		for (const char *p = x->dir; *p; p++) {
			if (strchr("*?[]\\", *p) && kl_buf_append(&b, "\\", 1) < 0)
				goto fail;
			if (kl_buf_append(&b, p, 1) < 0)
				goto fail;
		}
		if (b.len && b.p[b.len - 1] != '/' && kl_buf_append(&b, "/", 1) < 0)
			goto fail;
	}
	if (kl_buf_append_str(&b, pattern) < 0)
		goto fail;
	return b.p;
fail:
	kl_buf_free(&b);
	return NULL;
}

static void load_rule_glob(struct ctx *x, const struct kl_ynode *n)
{
	const char *pattern = get_str(x, n, "a path or glob", "rule_files");
	char shown[96];
	glob_t g;
	if (!pattern)
		return;
	char *full = resolve_glob(x, pattern);
	if (!full) {
		oom(x);
		return;
	}
	int grc = glob(full, GLOB_MARK, NULL, &g);
	free(full);
	if (grc == GLOB_NOSPACE) {
		oom(x);
		return;
	}
	if (grc == GLOB_ABORTED) {
		config_error(x, n, "rule_files: cannot read the directories of '%s'",
			     show(n, shown, sizeof shown));
		return;
	}
	size_t found = 0;
	for (size_t i = 0; grc == 0 && i < g.gl_pathc; i++) {
		const char *p = g.gl_pathv[i];
		size_t len = strlen(p);
		if (len && p[len - 1] == '/')
			continue; /* a directory (GLOB_MARK) */
		int rc = add_rule_file(x, p);
		if (rc == -E2BIG) {
			config_error(x, n, "rule_files: more than %d files", MAX_RULE_FILES);
			break;
		}
		if (rc < 0) {
			oom(x);
			break;
		}
		found++;
	}
	if (grc == 0)
		globfree(&g);
	if (found == 0 && (grc == 0 || grc == GLOB_NOMATCH))
		config_error(x, n, "rule_files: no file matches '%s'", show(n, shown, sizeof shown));
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void load_rule_files(struct ctx *x, const struct kl_ynode *v)
{
	if (v->type == KL_Y_SCALAR && !kl_ynode_is_null(v)) {
		load_rule_glob(x, v);
	} else if (v->type == KL_Y_SEQ) {
		for (size_t i = 0; i < v->n; i++) {
			if (v->items[i]->type != KL_Y_SCALAR) {
				config_error(x, v->items[i],
					     "expected a path or glob for each entry of 'rule_files', found %s",
					     kind(v->items[i]));
				continue;
			}
			load_rule_glob(x, v->items[i]);
		}
	} else if (!kl_ynode_is_null(v)) {
		config_error(x, v, "expected a path or a list of paths for 'rule_files', found %s",
			     kind(v));
	}
	/* sorted, each file once */
	struct config *c = x->c;
	if (c->nrule_files > 1) {
		qsort(c->rule_files, c->nrule_files, sizeof *c->rule_files, cmp_str);
		size_t o = 1;
		for (size_t i = 1; i < c->nrule_files; i++) {
			if (strcmp(c->rule_files[i], c->rule_files[o - 1]) == 0)
				free(c->rule_files[i]);
			else
				c->rule_files[o++] = c->rule_files[i];
		}
		c->nrule_files = o;
	}
}

/* ------------------------------------------------------------------------- */
/* parsers */

/* The nodes of one `parsers:` entry, for placing parser_new's messages. */
struct parser_nodes {
	const struct kl_ynode *item, *type, *regex, *types, *time, *time_field, *time_format;
	const struct kl_ynode *prefix, *format;
};

static int add_parser(struct ctx *x, char *name, struct parser *p, const struct kl_ynode *at)
{
	struct config *c = x->c;
	struct config_parser *np = realloc(c->parsers, (c->nparsers + 1) * sizeof *np);
	if (!np)
		return -ENOMEM;
	c->parsers = np;
	c->parsers[c->nparsers++] = (struct config_parser){
		.name = name, .parser = p, .line = at->line, .col = at->col
	};
	return 0;
}

/* The key node of types: named by a parser_new message "types: 'NAME' ...". */
static const struct kl_ynode *types_key_in(const struct kl_ynode *types, const char *msg)
{
	const char *q = strchr(msg, '\'');
	const char *e = q ? strchr(q + 1, '\'') : NULL;
	if (!types || types->type != KL_Y_MAP || !e)
		return types;
	size_t len = (size_t)(e - q - 1);
	for (size_t i = 0; i < types->n; i++) {
		const struct kl_ynode *k = types->keys[i];
		if (k->len == len && memcmp(k->str, q + 1, len) == 0)
			return k;
	}
	return types;
}

static bool starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Report parser_new's message where it belongs. Regex errors point at the
 * failing byte when the regex is written on one line (best effort: escapes in
 * a quoted scalar shift the column). */
static void parser_new_error(struct ctx *x, const struct parser_nodes *pn, const char *name,
			     const char *msg, int erroff)
{
	const struct kl_ynode *at = pn->item;
	int line, col;

	if (starts_with(msg, "types:"))
		at = types_key_in(pn->types, msg);
	else if (starts_with(msg, "time.field") && pn->time_field)
		at = pn->time_field;
	else if (starts_with(msg, "time.format") && pn->time_format)
		at = pn->time_format;
	else if (starts_with(msg, "time") && pn->time)
		at = pn->time;
	else if (starts_with(msg, "regex") && pn->regex)
		at = pn->regex;
	else if (starts_with(msg, "log_line_prefix") && pn->prefix)
		at = pn->prefix;
	else if (starts_with(msg, "format") && pn->format)
		at = pn->format;
	else if ((starts_with(msg, "unknown built-in") || starts_with(msg, "built-in")) && pn->type)
		at = pn->type;
	if (!at)
		at = pn->item;
	line = at->line;
	col = at->col;
	if (at == pn->regex && erroff >= 0 && !memchr(pn->regex->str, '\n', pn->regex->len)) {
		long c = (long)col + erroff + (pn->regex->plain ? 0 : 1);
		col = c > INT32_MAX ? INT32_MAX : (int)c;
	}
	kl_diag_error(x->d, x->file, line, col, "parser '%s': %s", name, msg);
}

static const char *const parser_keys[] = { "name", "type", "regex", "types", "time",
					   "log_line_prefix", "format", NULL };
static const char *const time_keys[] = { "field", "format", NULL };
static const char *const type_names[] = { "int", "float", "seconds", "ms", "string", NULL };

/* types: {field: int|float|seconds|ms|string} → specs (names point into the
 * tree). Returns the count, or -1 after reporting. */
static int load_types(struct ctx *x, const struct kl_ynode *v, struct parser_field_spec **out)
{
	struct parser_field_spec *specs;
	int bad = 0;

	*out = NULL;
	if (!want_map(x, v, "types"))
		return -1;
	if (v->n == 0)
		return 0;
	specs = calloc(v->n, sizeof *specs);
	if (!specs) {
		oom(x);
		return -1;
	}
	for (size_t i = 0; i < v->n; i++) {
		const struct kl_ynode *k = v->keys[i], *t = v->items[i];
		char shown[96], field[96], list[128];
		if (memchr(k->str, '\0', k->len)) {
			config_error(x, k, "'types' has a field name with a NUL byte");
			bad = 1;
			continue;
		}
		specs[i].name = k->str;
		const char *tn = get_str(x, t, "a type", k->str);
		if (!tn) {
			bad = 1;
			continue;
		}
		if (parser_type_from_name(tn, &specs[i].type) < 0) {
			config_error(x, t, "unknown type '%s' for field '%s'; expected one of: %s",
				     show(t, shown, sizeof shown), show(k, field, sizeof field),
				     join(type_names, list, sizeof list));
			bad = 1;
		}
	}
	if (bad) {
		free(specs);
		return -1;
	}
	*out = specs;
	return (int)v->n;
}

/* time: {field: F, format: FMT}. false after reporting. */
static bool load_time(struct ctx *x, const struct kl_ynode *v, struct parser_nodes *pn,
		      struct parser_spec *spec)
{
	bool ok = true;
	if (!want_map(x, v, "time"))
		return false;
	for (size_t i = 0; i < v->n; i++) {
		int k = known_key(x, v->keys[i], time_keys, " in 'time'");
		if (k < 0) {
			ok = false;
			continue;
		}
		const struct kl_ynode *val = v->items[i];
		const char *s = get_str(x, val, k == 0 ? "a field name" : "a time format",
					time_keys[k]);
		if (!s) {
			ok = false;
			continue;
		}
		if (k == 0) {
			pn->time_field = val;
			spec->time_field = s;
		} else {
			pn->time_format = val;
			spec->time_format = s;
		}
	}
	return ok;
}

static const struct declared *find_declared(const struct ctx *x, const char *name)
{
	for (size_t i = 0; i < x->ndeclared; i++)
		if (strcmp(x->declared[i].name, name) == 0)
			return &x->declared[i];
	return NULL;
}

static void load_parser(struct ctx *x, const struct kl_ynode *item)
{
	struct parser_nodes pn = { .item = item };
	struct parser_spec spec = { 0 };
	struct parser_field_spec *types = NULL;
	const struct declared *first;
	char err[512];
	bool ok = true;
	int erroff = -1;

	if (item->type != KL_Y_MAP) {
		config_error(x, item, "expected a mapping for each entry of 'parsers', found %s",
			     kind(item));
		return;
	}
	char *name = entry_name(x, item, "parser");
	const struct kl_ynode *name_node = kl_ymap_get(item, "name");
	if (name) {
		if (parser_builtin_exists(name)) {
			config_error(x, name_node,
				     "parser name '%s' is a built-in parser; choose another name",
				     name);
			ok = false;
		} else if ((first = find_declared(x, name))) {
			config_error(x, name_node, "duplicate parser name '%s' (first at line %d)",
				     name, first->line);
			ok = false;
		} else {
			char *copy = kl_strndup(name, strlen(name));
			if (!copy) {
				oom(x);
				ok = false;
			} else {
				x->declared[x->ndeclared++] = (struct declared){ copy, name_node->line };
			}
		}
	} else {
		ok = false;
	}
	for (size_t i = 0; i < item->n; i++) {
		const struct kl_ynode *v = item->items[i];
		char where[128], lb[96];
		snprintf(where, sizeof where, " in %s", label(lb, sizeof lb, "parser", name));
		switch (known_key(x, item->keys[i], parser_keys, where)) {
		case 0: /* name */
			break;
		case 1: /* type */
			pn.type = v;
			spec.type = get_str(x, v, "a built-in parser name", "type");
			ok &= spec.type != NULL;
			break;
		case 2: /* regex */
			pn.regex = v;
			spec.regex = get_str(x, v, "a regex", "regex");
			ok &= spec.regex != NULL;
			break;
		case 3: { /* types */
			pn.types = v;
			int n = load_types(x, v, &types);
			if (n < 0)
				ok = false;
			else
				spec.ntypes = (size_t)n;
			spec.types = types;
			break;
		}
		case 4: /* time */
			pn.time = v;
			ok &= load_time(x, v, &pn, &spec);
			break;
		case 5: /* log_line_prefix (postgres) */
			pn.prefix = v;
			spec.log_line_prefix = get_str(x, v, "PostgreSQL's log_line_prefix", "log_line_prefix");
			ok &= spec.log_line_prefix != NULL;
			break;
		case 6: /* format (django) */
			pn.format = v;
			spec.format = get_str(x, v, "a Python logging format", "format");
			ok &= spec.format != NULL;
			break;
		default:
			ok = false;
			break;
		}
	}
	if (!ok)
		goto out;
	spec.name = name;
	struct parser *p = parser_new(&spec, err, sizeof err, &erroff);
	if (!p) {
		parser_new_error(x, &pn, name, err[0] ? err : "cannot build the parser", erroff);
		goto out;
	}
	if (add_parser(x, name, p, name_node) < 0) {
		parser_free(p);
		oom(x);
		goto out;
	}
	name = NULL; /* owned by c->parsers */
out:
	free(types);
	free(name);
}

static void load_parsers(struct ctx *x, const struct kl_ynode *v)
{
	if (!want_list(x, v, "parsers"))
		return;
	size_t n = list_len(v);
	if (n > MAX_PARSERS) {
		config_error(x, v, "too many parsers (%zu); at most %d", n, MAX_PARSERS);
		return;
	}
	struct declared *nd = realloc(x->declared, (x->ndeclared + n + 1) * sizeof *nd);
	if (!nd) {
		oom(x);
		return;
	}
	x->declared = nd;
	for (size_t i = 0; i < n; i++)
		load_parser(x, v->items[i]);
}

/* ------------------------------------------------------------------------- */
/* sources */

static const char *const source_keys[] = { "name", "path", "parser", "from", "max_line",
					   "multiline", NULL };

static bool get_duration(struct ctx *x, const struct kl_ynode *v, const char *key, int64_t *out);

static const char *const multiline_keys[] = { "start", "continuation", "timeout", "max_lines",
					      "max_bytes", NULL };

/* `multiline: {start: RE | continuation: RE, timeout, max_lines, max_bytes}`;
 * the regex is compiled here once so that its errors point at the file. */
static void source_multiline(struct ctx *x, struct config_source *s, const struct kl_ynode *v,
			     const char *lb)
{
	struct config_multiline *m = &s->multiline;
	char where[128];
	uint64_t n;
	if (!want_map(x, v, "multiline"))
		return;
	snprintf(where, sizeof where, " in the multiline of %s", lb);
	m->set = true;
	for (size_t i = 0; i < v->n; i++) {
		const struct kl_ynode *k = v->keys[i], *val = v->items[i];
		switch (known_key(x, k, multiline_keys, where)) {
		case 0:
			m->start = dup_str(x, val, "a regex", "start");
			break;
		case 1:
			m->continuation = dup_str(x, val, "a regex", "continuation");
			break;
		case 2:
			if (get_duration(x, val, "timeout", &m->timeout_us) && m->timeout_us <= 0)
				config_error(x, val, "'timeout' must be more than 0");
			break;
		case 3:
		case 4: {
			const char *str = get_str(x, val, "a number", k->str);
			int rc = !str ? -EINVAL
			       : key_is(k, "max_lines") ? kl_parse_u64(str, strlen(str), &n)
							 : kl_parse_size(str, strlen(str), &n);
			if (rc < 0 || n == 0 || n > (64u << 20))
				config_error(x, val, "'%s' must be a number from 1 to 64Mi%s", k->str,
					     key_is(k, "max_bytes") ? " (a size: 1MiB)" : "");
			else if (key_is(k, "max_lines"))
				m->max_lines = (size_t)n;
			else
				m->max_bytes = (size_t)n;
			break;
		}
		default:
			break;
		}
	}
	if (!m->start == !m->continuation) {
		config_error(x, v, "%s: multiline needs exactly one of 'start' or 'continuation'", lb);
		return;
	}
	char err[256];
	struct ingest_multiline_opts o = { m->start, m->continuation, m->timeout_us, m->max_lines,
					   m->max_bytes };
	struct ingest_multiline *probe = ingest_multiline_new(&o, err, sizeof err);
	if (!probe)
		config_error(x, kl_ymap_get(v, m->start ? "start" : "continuation"), "%s: multiline %s",
			     lb, err);
	ingest_multiline_free(probe);
}

static void source_max_line(struct ctx *x, struct config_source *s, const struct kl_ynode *v)
{
	const char *str = get_str(x, v, "a size", "max_line");
	char shown[96];
	uint64_t sz;
	if (!str)
		return;
	if (kl_parse_size(str, strlen(str), &sz) < 0) {
		config_error(x, v,
			     "invalid size '%s' for 'max_line'; expected a number of bytes with an "
			     "optional unit: B, KB, MB, GB, KiB, MiB, GiB (e.g. 64KiB)",
			     show(v, shown, sizeof shown));
		return;
	}
	if (sz < MAX_LINE_MIN || sz > MAX_LINE_MAX) {
		config_error(x, v, "'max_line' must be between 1KiB and 64MiB, found '%s'",
			     show(v, shown, sizeof shown));
		return;
	}
	s->max_line = (size_t)sz;
}

static void source_from(struct ctx *x, struct config_source *s, const struct kl_ynode *v)
{
	const char *str = get_str(x, v, "'beginning' or 'end'", "from");
	char shown[96];
	if (!str)
		return;
	if (strcmp(str, "beginning") == 0)
		s->from_beginning = true;
	else if (strcmp(str, "end") == 0)
		s->from_beginning = false;
	else
		config_error(x, v, "invalid value '%s' for 'from'; expected 'beginning' or 'end'",
			     show(v, shown, sizeof shown));
}

/* Fills s (already zeroed, in c->sources). */
static void load_source(struct ctx *x, struct config_source *s, struct pending_source *ps,
			const struct kl_ynode *item)
{
	struct config *c = x->c;

	if (item->type != KL_Y_MAP) {
		config_error(x, item, "expected a mapping for each entry of 'sources', found %s",
			     kind(item));
		return;
	}
	s->line = item->line;
	s->col = item->col;
	s->max_line = MAX_LINE_DEF;
	s->name = entry_name(x, item, "source");
	const struct kl_ynode *name_node = kl_ymap_get(item, "name");
	if (s->name) {
		/* the sources before this one are complete */
		for (struct config_source *o = c->sources; o < s; o++) {
			if (o->name && strcmp(o->name, s->name) == 0) {
				config_error(x, name_node,
					     "duplicate source name '%s' (first at line %d)",
					     s->name, o->line);
				break;
			}
		}
	}
	char lb[96];
	label(lb, sizeof lb, "source", s->name);
	for (size_t i = 0; i < item->n; i++) {
		const struct kl_ynode *v = item->items[i];
		char where[128];
		snprintf(where, sizeof where, " in %s", lb);
		switch (known_key(x, item->keys[i], source_keys, where)) {
		case 0: /* name */
			break;
		case 1: /* path */
			s->path = dup_str(x, v, "a path or glob", "path");
			break;
		case 2: /* parser */
			ps->parser_node = v;
			s->parser_name = dup_str(x, v, "a parser name", "parser");
			break;
		case 3:
			source_from(x, s, v);
			break;
		case 4:
			source_max_line(x, s, v);
			break;
		case 5:
			source_multiline(x, s, v, lb);
			break;
		default:
			break;
		}
	}
	if (!kl_ymap_get(item, "path") && !x->no_paths)
		config_error(x, item, "%s is missing 'path'", lb);
	if (!kl_ymap_get(item, "parser"))
		config_error(x, item,
			     "%s is missing 'parser' (a built-in such as nginx_combined, "
			     "or one from 'parsers:')",
			     lb);
}

static void load_sources(struct ctx *x, const struct kl_ynode *v)
{
	struct config *c = x->c;
	if (!want_list(x, v, "sources"))
		return;
	size_t n = list_len(v);
	if (n == 0)
		return;
	if (n > MAX_SOURCES) {
		config_error(x, v, "too many sources (%zu); at most %d", n, MAX_SOURCES);
		return;
	}
	c->sources = calloc(n, sizeof *c->sources);
	x->pending = calloc(n, sizeof *x->pending);
	if (!c->sources || !x->pending) {
		oom(x);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		c->nsources++;
		load_source(x, &c->sources[i], &x->pending[i], v->items[i]);
	}
}

static struct config_parser *parser_by_name(const struct config *c, const char *name)
{
	for (size_t i = 0; i < c->nparsers; i++)
		if (strcmp(c->parsers[i].name, name) == 0)
			return &c->parsers[i];
	return NULL;
}

/* A built-in by name: one instance, created on first use. */
static struct config_parser *builtin_instance(struct ctx *x, const char *name,
					      const struct kl_ynode *at)
{
	struct parser_spec spec = { .name = name, .type = name };
	char err[512];
	int erroff;
	struct parser *p = parser_new(&spec, err, sizeof err, &erroff);
	if (!p) {
		config_error(x, at, "built-in parser '%s': %s", name, err);
		return NULL;
	}
	char *copy = kl_strndup(name, strlen(name));
	if (!copy || add_parser(x, copy, p, at) < 0) {
		free(copy);
		parser_free(p);
		oom(x);
		return NULL;
	}
	return &x->c->parsers[x->c->nparsers - 1];
}

static void resolve_parsers(struct ctx *x)
{
	struct config *c = x->c;
	for (size_t i = 0; i < c->nsources; i++) {
		struct config_source *s = &c->sources[i];
		const struct kl_ynode *at = x->pending[i].parser_node;
		if (!s->parser_name)
			continue;
		struct config_parser *cp = parser_by_name(c, s->parser_name);
		if (!cp && parser_builtin_exists(s->parser_name))
			cp = builtin_instance(x, s->parser_name, at);
		else if (!cp && !find_declared(x, s->parser_name)) {
			char shown[96], builtins[256], users[512] = "";
			size_t used = 0;
			for (size_t k = 0; k < x->ndeclared; k++) {
				int w = snprintf(users + used, sizeof users - used, "%s%s",
						 k ? ", " : "", x->declared[k].name);
				if (w < 0 || (size_t)w >= sizeof users - used)
					break;
				used += (size_t)w;
			}
			join(parser_builtin_names(), builtins, sizeof builtins);
			if (x->ndeclared)
				config_error(x, at,
					     "unknown parser '%s' for source '%s'; expected a built-in "
					     "(%s) or one from 'parsers:' (%s)",
					     show(at, shown, sizeof shown), s->name ? s->name : "?",
					     builtins, users);
			else
				config_error(x, at,
					     "unknown parser '%s' for source '%s'; expected a built-in "
					     "(%s) or one defined under 'parsers:'",
					     show(at, shown, sizeof shown), s->name ? s->name : "?",
					     builtins);
		}
		/* declared but not built: its problem has been reported already */
		if (cp)
			s->parser = cp->parser;
	}
}

/* ------------------------------------------------------------------------- */
/* Small typed readers for the notification keys */

/* A duration; false after reporting. */
static bool get_duration(struct ctx *x, const struct kl_ynode *v, const char *key, int64_t *out)
{
	const char *s = get_str(x, v, "a duration", key);
	char shown[96];
	if (!s)
		return false;
	if (kl_parse_duration_us(s, strlen(s), out) < 0) {
		config_error(x, v,
			     "invalid duration '%s' for '%s'; expected a number with a unit: us, ms, s, "
			     "m, h, d, w (e.g. 30s, 5m, 4h)",
			     show(v, shown, sizeof shown), key);
		return false;
	}
	return true;
}

/* A duration of more than 0 (*out is left alone otherwise). */
static bool get_positive_duration(struct ctx *x, const struct kl_ynode *v, const char *key,
				  int64_t *out)
{
	int64_t us;
	if (!get_duration(x, v, key, &us))
		return false;
	if (us <= 0) {
		config_error(x, v, "'%s' must be more than 0", key);
		return false;
	}
	*out = us;
	return true;
}

static bool get_bool(struct ctx *x, const struct kl_ynode *v, const char *key, bool *out)
{
	const char *s = get_str(x, v, "true or false", key);
	char shown[96];
	if (!s)
		return false;
	if (!strcmp(s, "true") || !strcmp(s, "yes")) {
		*out = true;
		return true;
	}
	if (!strcmp(s, "false") || !strcmp(s, "no")) {
		*out = false;
		return true;
	}
	config_error(x, v, "invalid value '%s' for '%s'; expected true or false",
		     show(v, shown, sizeof shown), key);
	return false;
}

/*
 * A mapping of label names to values (route `match`, inhibit matchers) into
 * *out, *n. An entry that cannot be read is reported and left out (the load
 * fails anyway); what was read is freed with the config.
 */
static void get_matchers(struct ctx *x, const struct kl_ynode *v, const char *key,
			 struct sink_match **out, size_t *n)
{
	if (!want_map(x, v, key))
		return;
	*out = calloc(v->n ? v->n : 1, sizeof **out);
	if (!*out) {
		oom(x);
		return;
	}
	for (size_t i = 0; i < v->n; i++) {
		const struct kl_ynode *k = v->keys[i];
		char shown[96];
		show(k, shown, sizeof shown);
		if (k->type != KL_Y_SCALAR || k->len == 0 || memchr(k->str, '\0', k->len)) {
			config_error(x, k, "invalid label name '%s' in '%s'", shown, key);
			continue;
		}
		char *value = dup_str(x, v->items[i], "a label value", shown);
		if (!value)
			continue;
		char *name = kl_strndup(k->str, k->len);
		if (!name) {
			free(value);
			oom(x);
			return;
		}
		(*out)[(*n)++] = (struct sink_match){ name, value };
	}
}

/* A list of names, or one name, into *out, *n; an entry that cannot be read is
 * reported and left out. */
static void get_names(struct ctx *x, const struct kl_ynode *v, const char *key, char ***out,
		      size_t *n)
{
	const struct kl_ynode *const *items = (const struct kl_ynode *const *)&v;
	size_t count = 1;
	if (v->type == KL_Y_SEQ) {
		items = (const struct kl_ynode *const *)v->items;
		count = v->n;
	} else if (v->type != KL_Y_SCALAR || kl_ynode_is_null(v)) {
		config_error(x, v, "expected a name or a list of names for '%s', found %s", key,
			     kind(v));
		return;
	}
	*out = calloc(count ? count : 1, sizeof **out);
	if (!*out) {
		oom(x);
		return;
	}
	for (size_t i = 0; i < count; i++) {
		char *name = dup_str(x, items[i], "a name", key);
		if (name)
			(*out)[(*n)++] = name;
	}
}

/*
 * The value get_str gave n earlier, without reporting anything: the
 * substituted copy, or the text as written; NULL for a node get_str refuses.
 * For second looks (check_routes) at nodes already read and reported on.
 */
static const char *quiet_value(const struct ctx *x, const struct kl_ynode *n)
{
	if (!n || n->type != KL_Y_SCALAR || kl_ynode_is_null(n) || memchr(n->str, '\0', n->len))
		return NULL;
	for (size_t i = 0; i < x->nsubst; i++)
		if (x->subst[i].node == n)
			return x->subst[i].value;
	return n->str;
}

/* s starts with prefix, ASCII letters compared without case. */
static bool starts_nocase(const char *s, const char *prefix)
{
	for (; *prefix; s++, prefix++) {
		char a = *s >= 'A' && *s <= 'Z' ? (char)(*s - 'A' + 'a') : *s;
		if (a != *prefix)
			return false;
	}
	return true;
}

/* A URL klaxon can post to: http:// or https://, a host, no space or control
 * character. NULL if it is one, else what is wrong (never the URL itself). */
static const char *url_problem(const char *url)
{
	size_t skip = starts_nocase(url, "http://")  ? 7 :
		      starts_nocase(url, "https://") ? 8 :
						       0;
	if (!skip)
		return "must start with http:// or https://";
	if (url[skip] == '\0' || url[skip] == '/')
		return "has no host after the scheme";
	for (const char *p = url; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f)
			return "contains a space or a control character";
	return NULL;
}

/* ------------------------------------------------------------------------- */
/* sinks */

static const char *const sink_keys[] = { "name", "type", "path", "what", "url", "url_file",
					 "secret_file", "tls_verify", "timeout", NULL };
enum { SK_NAME, SK_TYPE, SK_PATH, SK_WHAT, SK_URL, SK_URL_FILE, SK_SECRET_FILE, SK_TLS, SK_TIMEOUT };

/* type: one of sink_kind's names. false after reporting. */
static bool sink_type(struct ctx *x, struct config_sink *s, const struct kl_ynode *v)
{
	const char *t = get_str(x, v, "a sink type", "type");
	char shown[96];
	if (!t)
		return false;
	if (sink_kind_from_name(t, &s->type) == 0)
		return true;
	config_error(x, v,
		     "unknown sink type '%s'; available: stdout, jsonl, webhook, alertmanager, slack, "
		     "discord, teams",
		     show(v, shown, sizeof shown));
	return false;
}

/* A secret read from a file: the first line, trailing whitespace removed. The
 * message names the file, never its content. */
static char *read_secret(struct ctx *x, const struct kl_ynode *v, const char *key)
{
	const char *path = get_str(x, v, "a file path", key);
	char *data;
	size_t len;
	if (!path)
		return NULL;
	int rc = kl_read_file(path, 64 * 1024, &data, &len);
	if (rc < 0) {
		config_error(x, v, "cannot read the secret for '%s' from '%s': %s", key, path,
			     strerror(-rc));
		return NULL;
	}
	char *nl = memchr(data, '\n', len);
	if (nl)
		len = (size_t)(nl - data);
	while (len && (data[len - 1] == '\r' || data[len - 1] == ' ' || data[len - 1] == '\t'))
		len--;
	data[len] = '\0';
	const char *problem = !len			 ? "its first line is empty" :
			      memchr(data, '\0', len) ? "its first line contains a NUL byte" :
							 NULL;
	if (problem) {
		config_error(x, v, "the file '%s' for '%s' holds no usable secret: %s", path, key,
			     problem);
		memset(data, 0, len);
		free(data);
		return NULL;
	}
	return data;
}

static void sink_records(struct ctx *x, struct config_sink *s, const char *lb,
			 const struct kl_ynode *item, const struct kl_ynode *path,
			 const struct kl_ynode *what)
{
	char shown[96];
	if (s->type == SINK_STDOUT) {
		if (path)
			config_error(x, path, "'path' is not used by a stdout sink");
		if (what)
			config_error(x, what, "'what' is not used by a stdout sink");
		return;
	}
	if (!path)
		config_error(x, item, "%s is missing 'path' (the file a jsonl sink writes)", lb);
	else
		s->path = dup_str(x, path, "a path", "path");
	if (what) {
		const char *w = get_str(x, what, "'events' or 'alerts'", "what");
		if (w && strcmp(w, "events") == 0)
			s->events = true;
		else if (w && strcmp(w, "alerts") != 0)
			config_error(x, what,
				     "invalid value '%s' for 'what'; expected 'events' or 'alerts'",
				     show(what, shown, sizeof shown));
	}
}

static void sink_notifier(struct ctx *x, struct config_sink *s, const char *lb,
			  const struct kl_ynode *item, const struct kl_ynode *const *nodes)
{
	const struct kl_ynode *url = nodes[SK_URL], *url_file = nodes[SK_URL_FILE];
	if (nodes[SK_PATH])
		config_error(x, nodes[SK_PATH], "'path' is used only by jsonl sinks");
	if (nodes[SK_WHAT])
		config_error(x, nodes[SK_WHAT], "'what' is used only by jsonl sinks");
	if (url && url_file)
		config_error(x, url_file, "%s has both 'url' and 'url_file'; keep one", lb);
	else if (url)
		s->url = dup_str(x, url, "a URL", "url");
	else if (url_file)
		s->url = read_secret(x, url_file, "url_file");
	else
		config_error(x, item, "%s is missing 'url' (or 'url_file')", lb);
	const char *problem = s->url ? url_problem(s->url) : NULL;
	if (problem) {
		/* Never shown: a webhook URL is a secret. */
		config_error(x, url ? url : url_file,
			     "%s: the URL %s (not shown: a URL may hold a secret)", lb, problem);
	}
	if (nodes[SK_SECRET_FILE])
		s->secret = read_secret(x, nodes[SK_SECRET_FILE], "secret_file");
	bool verify = true;
	if (nodes[SK_TLS] && get_bool(x, nodes[SK_TLS], "tls_verify", &verify) && !verify) {
		s->tls_insecure = true;
		kl_log(KL_LOG_WARN,
		       "config: %s: tls_verify is false: the receiver's TLS certificate is not checked",
		       lb);
	}
	s->timeout_us = 10 * 1000000LL;
	if (nodes[SK_TIMEOUT])
		get_positive_duration(x, nodes[SK_TIMEOUT], "timeout", &s->timeout_us);
}

static void load_sink(struct ctx *x, struct config_sink *s, const struct kl_ynode *item)
{
	struct config *c = x->c;
	if (item->type != KL_Y_MAP) {
		config_error(x, item, "expected a mapping for each entry of 'sinks', found %s",
			     kind(item));
		return;
	}
	s->line = item->line;
	s->col = item->col;
	s->name = entry_name(x, item, "sink");
	const struct kl_ynode *name_node = kl_ymap_get(item, "name");
	if (s->name) {
		for (struct config_sink *o = c->sinks; o < s; o++) {
			if (o->name && strcmp(o->name, s->name) == 0) {
				config_error(x, name_node, "duplicate sink name '%s' (first at line %d)",
					     s->name, o->line);
				break;
			}
		}
	}
	char lb[96];
	label(lb, sizeof lb, "sink", s->name);
	const struct kl_ynode *nodes[KL_ARRAY_LEN(sink_keys)] = { 0 };
	bool typed = false;
	for (size_t i = 0; i < item->n; i++) {
		char where[128];
		snprintf(where, sizeof where, " in %s", lb);
		int k = known_key(x, item->keys[i], sink_keys, where);
		if (k < 0)
			continue;
		nodes[k] = item->items[i];
		if (k == SK_TYPE)
			typed = sink_type(x, s, item->items[i]);
	}
	if (!nodes[SK_TYPE]) {
		config_error(x, item,
			     "%s is missing 'type' (stdout, jsonl, webhook, alertmanager, slack, discord "
			     "or teams)",
			     lb);
		return;
	}
	if (!typed)
		return;
	if (sink_kind_notifies(s->type)) {
		sink_notifier(x, s, lb, item, nodes);
		return;
	}
	for (int k = SK_URL; k <= SK_TIMEOUT; k++)
		if (nodes[k])
			config_error(x, nodes[k], "'%s' is used only by notifying sinks (webhook, "
						  "alertmanager, slack, discord, teams)",
				     sink_keys[k]);
	sink_records(x, s, lb, item, nodes[SK_PATH], nodes[SK_WHAT]);
}

static void load_sinks(struct ctx *x, const struct kl_ynode *v)
{
	struct config *c = x->c;
	if (!want_list(x, v, "sinks"))
		return;
	size_t n = list_len(v);
	if (n == 0)
		return;
	if (n > MAX_SINKS) {
		config_error(x, v, "too many sinks (%zu); at most %d", n, MAX_SINKS);
		return;
	}
	c->sinks = calloc(n, sizeof *c->sinks);
	if (!c->sinks) {
		oom(x);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		c->nsinks++;
		load_sink(x, &c->sinks[i], v->items[i]);
	}
}

/* ------------------------------------------------------------------------- */
/* notify, routes, inhibit */

static const char *const notify_keys[] = { "group_wait", "group_interval", "repeat_interval",
					   "send_resolved", NULL };

/*
 * Key k of a notify mapping (or a route's override) into n; true if it was
 * one. group_interval and repeat_interval must be more than 0: a group would
 * be sent again at once, over and over (Alertmanager refuses 0 too).
 */
static bool notify_key(struct ctx *x, const struct kl_ynode *k, const struct kl_ynode *v,
		       struct notify_spec *n)
{
	if (key_is(k, "group_wait"))
		get_duration(x, v, "group_wait", &n->group_wait_us);
	else if (key_is(k, "group_interval"))
		get_positive_duration(x, v, "group_interval", &n->group_interval_us);
	else if (key_is(k, "repeat_interval"))
		get_positive_duration(x, v, "repeat_interval", &n->repeat_interval_us);
	else if (key_is(k, "send_resolved"))
		get_bool(x, v, "send_resolved", &n->send_resolved);
	else
		return false;
	return true;
}

/* The global `notify:` (an empty value keeps the defaults). Loaded before
 * `routes:` wherever it is in the file, since routes inherit it. */
static void load_notify(struct ctx *x, const struct kl_ynode *v)
{
	if (kl_ynode_is_null(v) || !want_map(x, v, "notify"))
		return;
	for (size_t i = 0; i < v->n; i++)
		if (!notify_key(x, v->keys[i], v->items[i], &x->c->notify))
			known_key(x, v->keys[i], notify_keys, " in 'notify'");
}

static const char *const route_keys[] = { "match", "sinks", "continue", "group_by", "group_wait",
					  "group_interval", "repeat_interval", "send_resolved", NULL };

/* Route number idx + 1 (as messages count them); c->notify is loaded. */
static void load_route(struct ctx *x, struct config_route *r, size_t idx,
		       const struct kl_ynode *item)
{
	if (item->type != KL_Y_MAP) {
		config_error(x, item, "expected a mapping for each entry of 'routes', found %s",
			     kind(item));
		return;
	}
	r->line = item->line;
	r->col = item->col;
	r->notify = x->c->notify;
	char where[64];
	snprintf(where, sizeof where, " in route %zu", idx + 1);
	for (size_t i = 0; i < item->n; i++) {
		const struct kl_ynode *k = item->keys[i], *v = item->items[i];
		if (notify_key(x, k, v, &r->notify))
			continue;
		if (key_is(k, "match"))
			get_matchers(x, v, "match", &r->match, &r->nmatch);
		else if (key_is(k, "sinks"))
			get_names(x, v, "sinks", &r->sinks, &r->nsinks);
		else if (key_is(k, "continue"))
			get_bool(x, v, "continue", &r->cont);
		else if (key_is(k, "group_by"))
			get_names(x, v, "group_by", &r->group_by, &r->ngroup_by);
		else
			known_key(x, k, route_keys, where);
	}
	const struct kl_ynode *sinks = kl_ymap_get(item, "sinks");
	if (!sinks)
		config_error(x, item, "route %zu is missing 'sinks' (the notifying sinks it sends to)",
			     idx + 1);
	else if (sinks->type == KL_Y_SEQ && sinks->n == 0)
		config_error(x, sinks, "route %zu has no sinks; name at least one notifying sink",
			     idx + 1);
}

static void load_routes(struct ctx *x, const struct kl_ynode *v)
{
	struct config *c = x->c;
	if (!want_list(x, v, "routes") || !list_len(v))
		return;
	c->routes = calloc(list_len(v), sizeof *c->routes);
	if (!c->routes) {
		oom(x);
		return;
	}
	for (size_t i = 0; i < list_len(v); i++) {
		c->nroutes++;
		load_route(x, &c->routes[i], i, v->items[i]);
	}
}

static const char *const inhibit_keys[] = { "source_match", "target_match", "equal", NULL };

/* An inhibit rule's source_match or target_match must be there and name at
 * least one label (an empty one would match every alert). */
static void inhibit_needs(struct ctx *x, const struct kl_ynode *item, size_t idx,
			  const char *key, const char *what)
{
	const struct kl_ynode *m = kl_ymap_get(item, key);
	if (!m)
		config_error(x, item, "inhibit rule %zu is missing '%s' (%s)", idx + 1, key, what);
	else if (m->type == KL_Y_MAP && m->n == 0)
		config_error(x, m, "'%s' of inhibit rule %zu is empty; name at least one label", key,
			     idx + 1);
}

static void load_inhibits(struct ctx *x, const struct kl_ynode *v)
{
	struct config *c = x->c;
	if (!want_list(x, v, "inhibit") || !list_len(v))
		return;
	c->inhibits = calloc(list_len(v), sizeof *c->inhibits);
	if (!c->inhibits) {
		oom(x);
		return;
	}
	for (size_t i = 0; i < list_len(v); i++) {
		const struct kl_ynode *item = v->items[i];
		struct config_inhibit *in = &c->inhibits[c->ninhibits++];
		if (item->type != KL_Y_MAP) {
			config_error(x, item, "expected a mapping for each entry of 'inhibit', found %s",
				     kind(item));
			continue;
		}
		char where[64];
		snprintf(where, sizeof where, " in inhibit rule %zu", i + 1);
		for (size_t k = 0; k < item->n; k++) {
			const struct kl_ynode *key = item->keys[k], *val = item->items[k];
			if (key_is(key, "source_match"))
				get_matchers(x, val, "source_match", &in->source_match, &in->nsource);
			else if (key_is(key, "target_match"))
				get_matchers(x, val, "target_match", &in->target_match, &in->ntarget);
			else if (key_is(key, "equal"))
				get_names(x, val, "equal", &in->equal, &in->nequal);
			else
				known_key(x, key, inhibit_keys, where);
		}
		inhibit_needs(x, item, i, "source_match", "the labels of the alert that mutes");
		inhibit_needs(x, item, i, "target_match", "the labels of the alerts it mutes");
	}
}

/* The node of the name `name` under a route's `sinks:`, or the route itself. */
static const struct kl_ynode *route_sink_node(const struct ctx *x, const struct kl_ynode *route,
					      const char *name)
{
	const struct kl_ynode *sinks = kl_ymap_get(route, "sinks");
	if (!sinks)
		return route;
	if (sinks->type != KL_Y_SEQ)
		return sinks;
	for (size_t i = 0; i < sinks->n; i++) {
		const char *v = quiet_value(x, sinks->items[i]);
		if (v && !strcmp(v, name))
			return sinks->items[i];
	}
	return sinks;
}

/* Whether sink j's type was understood (else its error is out already, and
 * its zeroed type says nothing). sinks is the `sinks:` node. */
static bool sink_typed(const struct ctx *x, const struct kl_ynode *sinks, size_t j)
{
	enum sink_kind k;
	if (!sinks || sinks->type != KL_Y_SEQ || j >= sinks->n)
		return false;
	const char *t = quiet_value(x, kl_ymap_get(sinks->items[j], "type"));
	return t && sink_kind_from_name(t, &k) == 0;
}

/* Every route names notifying sinks that exist. */
static void check_routes(struct ctx *x, const struct kl_ynode *routes, const struct kl_ynode *sinks)
{
	struct config *c = x->c;
	char notifiers[512] = "";
	size_t used = 0;
	for (size_t j = 0; j < c->nsinks; j++) {
		if (!c->sinks[j].name || !sink_typed(x, sinks, j) ||
		    !sink_kind_notifies(c->sinks[j].type))
			continue;
		int w = snprintf(notifiers + used, sizeof notifiers - used, "%s%s", used ? ", " : "",
				 c->sinks[j].name);
		if (w < 0 || (size_t)w >= sizeof notifiers - used)
			break;
		used += (size_t)w;
	}
	for (size_t i = 0; i < c->nroutes && i < routes->n; i++)
		for (size_t k = 0; k < c->routes[i].nsinks; k++) {
			const char *name = c->routes[i].sinks[k];
			size_t found = c->nsinks;
			for (size_t j = 0; j < c->nsinks; j++)
				if (c->sinks[j].name && !strcmp(c->sinks[j].name, name))
					found = j;
			const struct kl_ynode *at = route_sink_node(x, routes->items[i], name);
			if (found == c->nsinks)
				config_error(x, at,
					     "route %zu names sink '%s', which is not defined under "
					     "'sinks'; %s%s",
					     i + 1, name,
					     used ? "notifying sinks: " : "no notifying sink is defined",
					     notifiers);
			else if (sink_typed(x, sinks, found) && !sink_kind_notifies(c->sinks[found].type))
				config_error(x, at,
					     "route %zu names sink '%s', a %s sink; routes choose among "
					     "notifying sinks (stdout and jsonl record every transition)",
					     i + 1, name, sink_kind_name(c->sinks[found].type));
		}
}

/* The address of this klaxon, in webhook payloads (externalURL); not a secret. */
static void load_external_url(struct ctx *x, const struct kl_ynode *v)
{
	char *url = dup_str(x, v, "a URL", "external_url");
	const char *problem = url ? url_problem(url) : NULL;
	if (problem) {
		char shown[96];
		config_error(x, v, "invalid URL '%s' for 'external_url': it %s",
			     show(v, shown, sizeof shown), problem);
		free(url);
		return;
	}
	if (!url)
		return;
	free(x->c->external_url);
	x->c->external_url = url;
}

/* ------------------------------------------------------------------------- */
/* redis (shared mode) */

static const char *const redis_keys[] = { "url",    "share",	"password_file", "replica", "lease",
					  "stream", "ca_file", "tls_verify",	 NULL };
enum { RK_URL, RK_SHARE, RK_PASSWORD_FILE, RK_REPLICA, RK_LEASE, RK_STREAM, RK_CA_FILE, RK_TLS };
static const char *const stream_keys[] = { "key", "maxlen", "what", NULL };

/* The password part of a URL is %-decoded (a '@' or ':' in it is written %40,
 * %3A). 0, or -EINVAL for a bad escape. */
static int url_unescape(const char *s, size_t n, char *out, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (ch == '%') {
			unsigned v = 0;
			for (size_t k = 1; k <= 2; k++) {
				char h = i + k < n ? s[i + k] : '\0';
				int d = h >= '0' && h <= '9' ? h - '0' :
					h >= 'a' && h <= 'f' ? h - 'a' + 10 :
					h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
				if (d < 0)
					return -EINVAL;
				v = v * 16 + (unsigned)d;
			}
			ch = (char)v;
			i += 2;
		}
		if (o + 1 >= cap || ch == '\0')
			return -EINVAL;
		out[o++] = ch;
	}
	out[o] = '\0';
	return 0;
}

/*
 * redis[s]://[[USER]:PASSWORD@]HOST[:PORT][/DB] into r. NULL, or what is
 * wrong (never quoting the URL: it may hold a password).
 */
static const char *redis_url_parse(const char *url, struct config_redis *r)
{
	r->tls = starts_nocase(url, "rediss://");
	if (!r->tls && !starts_nocase(url, "redis://"))
		return "must start with redis:// or rediss:// (TLS)";
	const char *p = url + (r->tls ? 9 : 8), *end = p + strlen(p);
	for (const char *q = url; *q; q++)
		if ((unsigned char)*q <= 0x20 || *q == 0x7f)
			return "contains a space or a control character";
	const char *slash = memchr(p, '/', (size_t)(end - p));
	const char *hostend = slash ? slash : end;
	const char *at = NULL;
	for (const char *q = p; q < hostend; q++)
		if (*q == '@')
			at = q;
	if (at) {
		const char *colon = memchr(p, ':', (size_t)(at - p));
		if (!colon)
			return "has credentials without a password (write redis://:PASSWORD@HOST)";
		char pw[512];
		if (url_unescape(colon + 1, (size_t)(at - colon - 1), pw, sizeof pw) < 0 || !pw[0])
			return "has an empty or badly %-escaped password";
		free(r->password);
		r->password = kl_strndup(pw, strlen(pw));
		memset(pw, 0, sizeof pw);
		p = at + 1;
	}
	const char *colon = memchr(p, ':', (size_t)(hostend - p));
	const char *hend = colon ? colon : hostend;
	if (hend == p)
		return "has no host (expected redis://HOST[:PORT][/DB])";
	r->port = 6379;
	if (colon) {
		uint64_t port;
		if (kl_parse_u64(colon + 1, (size_t)(hostend - colon - 1), &port) < 0 || port < 1 ||
		    port > 65535)
			return "has a port that is not a number from 1 to 65535";
		r->port = (uint16_t)port;
	}
	r->db = 0;
	if (slash && slash + 1 < end) {
		uint64_t db;
		if (kl_parse_u64(slash + 1, (size_t)(end - slash - 1), &db) < 0 || db > 1000000)
			return "has a database that is not a number (expected /0, /1, ...)";
		r->db = (unsigned)db;
	}
	free(r->host);
	r->host = kl_strndup(p, (size_t)(hend - p));
	return NULL;
}

static void redis_url(struct ctx *x, const struct kl_ynode *v)
{
	const char *url = get_str(x, v, "a redis:// URL", "redis");
	if (!url)
		return;
	const char *problem = redis_url_parse(url, &x->c->redis);
	if (problem)
		config_error(x, v, "invalid URL for 'redis': it %s", problem);
	else if (!x->c->redis.host)
		oom(x);
}

static void redis_stream(struct ctx *x, struct config_redis *r, const struct kl_ynode *v)
{
	if (!want_map(x, v, "stream"))
		return;
	r->stream_maxlen = 100000;
	bool have_key = false;
	for (size_t i = 0; i < v->n; i++) {
		const struct kl_ynode *e = v->items[i];
		const char *s;
		char shown[96];
		switch (known_key(x, v->keys[i], stream_keys, " in 'redis: stream'")) {
		case 0:
			free(r->stream_key);
			r->stream_key = dup_str(x, e, "a Redis key", "stream: key");
			have_key = r->stream_key != NULL;
			break;
		case 1:
			s = get_str(x, e, "a whole number", "stream: maxlen");
			if (s && (kl_parse_u64(s, strlen(s), &r->stream_maxlen) < 0 ||
				  r->stream_maxlen < 1))
				config_error(x, e,
					     "invalid 'maxlen' '%s' in 'redis: stream'; expected a whole "
					     "number of entries of 1 or more (e.g. 100000)",
					     show(e, shown, sizeof shown));
			break;
		case 2:
			s = get_str(x, e, "events or alerts", "stream: what");
			if (s && strcmp(s, "events") && strcmp(s, "alerts"))
				config_error(x, e,
					     "invalid 'what' '%s' in 'redis: stream'; expected events "
					     "(every parsed event) or alerts (alert transitions)",
					     show(e, shown, sizeof shown));
			else if (s)
				r->stream_events = !strcmp(s, "events");
			break;
		default:
			break;
		}
	}
	if (!have_key && !kl_ymap_get(v, "key"))
		config_error(x, v, "'redis: stream' needs a 'key' (e.g. key: klaxon:events)");
}

/* A replica name goes into Redis field names "REPLICA|GROUP": no '|'. */
static void redis_replica(struct ctx *x, struct config_redis *r, const struct kl_ynode *v)
{
	char *name = dup_str(x, v, "a name", "replica");
	if (name && (strchr(name, '|') || strlen(name) > 200)) {
		config_error(x, v, "invalid 'replica' name: at most 200 bytes and no '|' (it "
				   "separates the replica from the group in Redis field names)");
		free(name);
		return;
	}
	free(r->replica);
	r->replica = name;
}

static void redis_map(struct ctx *x, const struct kl_ynode *v)
{
	struct config_redis *r = &x->c->redis;
	const struct kl_ynode *url = kl_ymap_get(v, "url");
	if (!url) {
		config_error(x, v, "'redis' needs a 'url' (e.g. url: redis://redis:6379/0)");
		return;
	}
	for (size_t i = 0; i < v->n; i++) {
		const struct kl_ynode *e = v->items[i];
		const char *s;
		char shown[96];
		switch (known_key(x, v->keys[i], redis_keys, " in 'redis'")) {
		case RK_URL:
			redis_url(x, e);
			break;
		case RK_SHARE:
			s = get_str(x, e, "marked or all", "share");
			if (s && strcmp(s, "marked") && strcmp(s, "all"))
				config_error(x, e,
					     "invalid 'share' '%s' in 'redis'; expected marked (only rules "
					     "with `shared: true`) or all (every rule)",
					     show(e, shown, sizeof shown));
			else if (s)
				r->share_all = !strcmp(s, "all");
			break;
		case RK_PASSWORD_FILE: {
			char *pw = read_secret(x, e, "password_file");
			if (pw) {
				if (r->password)
					memset(r->password, 0, strlen(r->password));
				free(r->password);
				r->password = pw;
			}
			break;
		}
		case RK_REPLICA:
			redis_replica(x, r, e);
			break;
		case RK_LEASE:
			get_positive_duration(x, e, "lease", &r->lease_us);
			break;
		case RK_STREAM:
			redis_stream(x, r, e);
			break;
		case RK_CA_FILE:
			free(r->tls_ca_file);
			r->tls_ca_file = dup_str(x, e, "a file path", "ca_file");
			if (r->tls_ca_file && access(r->tls_ca_file, R_OK) < 0)
				config_error(x, e, "'ca_file' %s cannot be read: %s", r->tls_ca_file,
					     strerror(errno));
			break;
		case RK_TLS: {
			bool verify = true;
			if (get_bool(x, e, "tls_verify", &verify))
				r->tls_insecure = !verify;
			break;
		}
		default:
			break;
		}
	}
	const struct kl_ynode *tls_key = kl_ymap_get(v, "ca_file");
	if (!tls_key)
		tls_key = kl_ymap_get(v, "tls_verify");
	if (tls_key && !r->tls && r->host)
		config_error(x, tls_key, "'ca_file' and 'tls_verify' in 'redis' are for a rediss:// "
				     "URL (TLS); this one is redis://");
}

static void load_redis(struct ctx *x, const struct kl_ynode *v)
{
	struct config_redis *r = &x->c->redis;
	r->set = true;
	r->lease_us = 30 * 1000000LL;
	r->line = v->line;
	r->col = v->col;
	if (v->type == KL_Y_MAP)
		redis_map(x, v);
	else if (v->type == KL_Y_SCALAR && !kl_ynode_is_null(v))
		redis_url(x, v);
	else
		config_error(x, v,
			     "expected a redis:// URL or a mapping {url, share, password_file, "
			     "replica, lease, stream, ca_file, tls_verify} for 'redis', found %s",
			     kind(v));
}

/* ------------------------------------------------------------------------- */
/* rotate */

static const char *const rotate_keys[] = { "path", "compress_after", "delete_after", "max_size",
					   "max_age", "method", "keep", "dateext", "level",
					   "min_size", "signal", "allow_unsafe_dir", NULL };

/* A size of at least min bytes; false after reporting. */
static bool get_size(struct ctx *x, const struct kl_ynode *v, const char *key, uint64_t min,
		     uint64_t *out)
{
	const char *s = get_str(x, v, "a size", key);
	char shown[96];
	if (!s)
		return false;
	if (kl_parse_size(s, strlen(s), out) < 0) {
		config_error(x, v,
			     "invalid size '%s' for '%s'; expected a number of bytes with an optional "
			     "unit: B, KB, MB, GB, KiB, MiB, GiB (e.g. 500MB)",
			     show(v, shown, sizeof shown), key);
		return false;
	}
	if (*out < min) {
		config_error(x, v, "'%s' must be at least %llu bytes", key, (unsigned long long)min);
		return false;
	}
	return true;
}

/* An integer in [lo, hi]; false after reporting. */
static bool get_int(struct ctx *x, const struct kl_ynode *v, const char *key, int64_t lo,
		    int64_t hi, int64_t *out)
{
	const char *s = get_str(x, v, "a number", key);
	char shown[96];
	if (!s)
		return false;
	if (kl_parse_i64(s, strlen(s), out) < 0 || *out < lo || *out > hi) {
		config_error(x, v, "invalid value '%s' for '%s'; expected a whole number from %lld to %lld",
			     show(v, shown, sizeof shown), key, (long long)lo, (long long)hi);
		return false;
	}
	return true;
}

/* signal: {pidfile: PATH, sig: USR1} */
static void rotate_signal(struct ctx *x, struct rotate_rule *r, const struct kl_ynode *v)
{
	static const char *const keys[] = { "pidfile", "sig", NULL };
	char shown[96];
	if (!want_map(x, v, "signal"))
		return;
	for (size_t i = 0; i < v->n; i++) {
		const struct kl_ynode *val = v->items[i];
		switch (known_key(x, v->keys[i], keys, " in 'signal'")) {
		case 0:
			free((char *)r->pidfile);
			r->pidfile = dup_str(x, val, "a path", "pidfile");
			break;
		case 1: {
			const char *s = get_str(x, val, "a signal name", "sig");
			int sig = s ? rotate_signal_parse(s) : -EINVAL;
			if (s && sig < 0)
				config_error(x, val,
					     "unknown signal '%s' for 'sig'; expected one of: USR1, "
					     "USR2, HUP, INT, TERM, WINCH",
					     show(val, shown, sizeof shown));
			else if (s)
				r->sig = sig;
			break;
		}
		default:
			break;
		}
	}
	if (!kl_ymap_get(v, "pidfile"))
		config_error(x, v,
			     "'signal' needs 'pidfile' (the file holding the process id of the writer "
			     "to signal, e.g. /run/nginx.pid)");
}

/* Fills r (zeroed, in c->rotate). */
static void load_rotate_entry(struct ctx *x, struct rotate_rule *r, const struct kl_ynode *item)
{
	char shown[96];
	if (item->type != KL_Y_MAP) {
		config_error(x, item, "expected a mapping for each entry of 'rotate', found %s",
			     kind(item));
		return;
	}
	*r = (struct rotate_rule){ .compress_after_us = -1, .delete_after_us = -1,
				   .max_age_us = -1, .keep = -1, .level = 6, .sig = SIGUSR1 };
	const struct kl_ynode *path_node = kl_ymap_get(item, "path");
	const char *where = path_node && path_node->type == KL_Y_SCALAR ? path_node->str : NULL;
	char wbuf[160];
	snprintf(wbuf, sizeof wbuf, " in rotate entry '%s'", where ? show(path_node, shown, sizeof shown) : "?");
	for (size_t i = 0; i < item->n; i++) {
		const struct kl_ynode *k = item->keys[i], *v = item->items[i];
		int64_t n;
		bool b;
		switch (known_key(x, k, rotate_keys, wbuf)) {
		case 0:
			r->path = dup_str(x, v, "a path or glob", "path");
			if (r->path) {
				const char *why;
				if (rotate_rule_check(r, &why) < 0)
					config_error(x, v, "rotate path '%s': %s", show(v, shown, sizeof shown),
						     why);
			}
			break;
		case 1: get_duration(x, v, "compress_after", &r->compress_after_us); break;
		case 2: get_duration(x, v, "delete_after", &r->delete_after_us); break;
		case 3: get_size(x, v, "max_size", 1, &r->max_size); break;
		case 4: get_positive_duration(x, v, "max_age", &r->max_age_us); break;
		case 5: {
			const char *s = get_str(x, v, "'rename' or 'copytruncate'", "method");
			if (s && !strcmp(s, "rename"))
				r->method = ROTATE_RENAME;
			else if (s && !strcmp(s, "copytruncate"))
				r->method = ROTATE_COPYTRUNCATE;
			else if (s)
				config_error(x, v,
					     "invalid method '%s'; expected 'rename' or 'copytruncate'",
					     show(v, shown, sizeof shown));
			break;
		}
		case 6:
			if (get_int(x, v, "keep", 0, 100000, &n))
				r->keep = (int)n;
			break;
		case 7:
			if (get_bool(x, v, "dateext", &b))
				r->dateext = b;
			break;
		case 8:
			if (get_int(x, v, "level", 1, 9, &n))
				r->level = (int)n;
			break;
		case 9: get_size(x, v, "min_size", 0, &r->min_size); break;
		case 10: rotate_signal(x, r, v); break;
		case 11:
			if (get_bool(x, v, "allow_unsafe_dir", &b))
				r->allow_unsafe_dir = b;
			break;
		default:
			break;
		}
	}
	if (!path_node) {
		config_error(x, item, "rotate entry is missing 'path' (the files it applies to)");
		return;
	}
	bool live = kl_ymap_get(item, "max_size") || kl_ymap_get(item, "max_age");
	static const char *const live_only[] = { "method", "keep", "dateext", "signal" };
	for (size_t i = 0; i < KL_ARRAY_LEN(live_only) && !live; i++) {
		const struct kl_ynode *at = kl_ymap_get(item, live_only[i]);
		if (at)
			config_error(x, at,
				     "'%s' applies to the rotation of live files: set 'max_size' or "
				     "'max_age' too",
				     live_only[i]);
	}
	const struct kl_ynode *sig = kl_ymap_get(item, "signal");
	if (sig && live && r->method == ROTATE_COPYTRUNCATE)
		config_error(x, sig,
			     "'signal' goes with method 'rename' (a copytruncate leaves the writer's "
			     "file in place: nothing to reopen)");
	if (!live && !kl_ymap_get(item, "compress_after") && !kl_ymap_get(item, "delete_after"))
		config_error(x, item,
			     "rotate entry '%s' does nothing: set compress_after, delete_after, "
			     "max_size or max_age",
			     show(path_node, shown, sizeof shown));
}

static void load_rotate(struct ctx *x, const struct kl_ynode *v)
{
	struct config *c = x->c;
	if (!want_list(x, v, "rotate"))
		return;
	size_t n = list_len(v);
	if (n == 0)
		return;
	if (n > MAX_ROTATE) {
		config_error(x, v, "too many rotate entries (%zu); at most %d", n, MAX_ROTATE);
		return;
	}
	c->rotate = calloc(n, sizeof *c->rotate);
	if (!c->rotate) {
		oom(x);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		c->nrotate++;
		load_rotate_entry(x, &c->rotate[i], v->items[i]);
	}
}

static void load_rotate_interval(struct ctx *x, const struct kl_ynode *v)
{
	get_positive_duration(x, v, "rotate_interval", &x->c->rotate_interval_us);
}

/* The sinks stage's view of the config (pointers into it). */
static int build_sinks_spec(struct config *c)
{
	struct sinks_spec *sp = &c->sinks_spec;
	c->sink_specs = calloc(c->nsinks ? c->nsinks : 1, sizeof *c->sink_specs);
	c->route_specs = calloc(c->nroutes ? c->nroutes : 1, sizeof *c->route_specs);
	c->inhibit_specs = calloc(c->ninhibits ? c->ninhibits : 1, sizeof *c->inhibit_specs);
	if (!c->sink_specs || !c->route_specs || !c->inhibit_specs)
		return -ENOMEM;
	for (size_t i = 0; i < c->nsinks; i++) {
		const struct config_sink *s = &c->sinks[i];
		c->sink_specs[i] = (struct sink_spec){ s->name, s->type, s->path, s->events, s->url,
						       s->secret, s->tls_insecure, s->timeout_us };
	}
	for (size_t i = 0; i < c->nroutes; i++) {
		const struct config_route *r = &c->routes[i];
		c->route_specs[i] = (struct route_spec){ r->match,
							 r->nmatch,
							 (const char *const *)r->sinks,
							 r->nsinks,
							 r->cont,
							 r->notify,
							 (const char *const *)r->group_by,
							 r->ngroup_by };
	}
	for (size_t i = 0; i < c->ninhibits; i++) {
		const struct config_inhibit *in = &c->inhibits[i];
		c->inhibit_specs[i] = (struct inhibit_spec){ in->source_match, in->nsource,
							     in->target_match, in->ntarget,
							     (const char *const *)in->equal, in->nequal };
	}
	*sp = (struct sinks_spec){
		.state_dir = c->state_dir,
		.external_url = c->external_url,
		.sinks = c->sink_specs,
		.nsinks = c->nsinks,
		.routes = c->route_specs,
		.nroutes = c->nroutes,
		.notify = c->notify,
		.inhibits = c->inhibit_specs,
		.ninhibits = c->ninhibits,
	};
	return 0;
}


/* ------------------------------------------------------------------------- */
/* probes */

static const char *const probe_keys[] = { "name",  "http",    "tcp",	    "disk",
					  "postgres", "postgres_file", "redis", "host",
					  "file",  "interval", "timeout",  "tls_verify",
					  "ca_file", NULL };
enum { PK_NAME, PK_HTTP, PK_TCP, PK_DISK, PK_POSTGRES, PK_POSTGRES_FILE, PK_REDIS, PK_HOST,
       PK_FILE, PK_INTERVAL, PK_TIMEOUT, PK_TLS, PK_CA_FILE };

struct parser *config_probe_parser(enum ingest_probe_kind kind, const char *name)
{
	size_t n;
	const struct ingest_probe_field *f = ingest_probe_fields(kind, &n);
	struct parser_field_spec types[INGEST_PROBE_MAX_FIELDS];
	struct kl_buf re = { 0 };
	char err[256];
	int erroff;
	if (!f || n > INGEST_PROBE_MAX_FIELDS)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (kl_buf_appendf(&re, "(?<%s>)", f[i].name) < 0) {
			kl_buf_free(&re);
			return NULL;
		}
		types[i].name = f[i].name;
		types[i].type = f[i].type == INGEST_PF_STRING  ? PARSER_T_STRING :
				f[i].type == INGEST_PF_COUNT   ? PARSER_T_INT :
				f[i].type == INGEST_PF_SECONDS ? PARSER_T_SECONDS :
								 PARSER_T_FLOAT;
	}
	struct parser_spec spec = { .name = name, .regex = re.p, .types = types, .ntypes = n };
	struct parser *p = parser_new(&spec, err, sizeof err, &erroff);
	kl_buf_free(&re);
	return p;
}

/* The probe's kind key and its value; false after reporting. */
static bool probe_target(struct ctx *x, struct config_probe *pr, int key,
			 const struct kl_ynode *v, const char *lb)
{
	static const enum ingest_probe_kind of[] = {
		[PK_HTTP] = INGEST_PROBE_HTTP,		[PK_TCP] = INGEST_PROBE_TCP,
		[PK_DISK] = INGEST_PROBE_DISK,		[PK_POSTGRES] = INGEST_PROBE_POSTGRES,
		[PK_POSTGRES_FILE] = INGEST_PROBE_POSTGRES, [PK_REDIS] = INGEST_PROBE_REDIS,
		[PK_HOST] = INGEST_PROBE_HOST,		[PK_FILE] = INGEST_PROBE_FILE,
	};
	char why[160], shown[96];
	pr->kind = of[key];
	if (key == PK_HOST) {
		bool on = false;
		if (!get_bool(x, v, "host", &on))
			return false;
		if (!on) {
			config_error(x, v, "%s: 'host' takes true (the host or container klaxon runs in)", lb);
			return false;
		}
		pr->target = kl_strndup("", 0);
		return pr->target != NULL;
	}
	if (key == PK_POSTGRES_FILE) {
		pr->target = read_secret(x, v, "postgres_file");
		return pr->target != NULL;
	}
	pr->target = dup_str(x, v, key == PK_HTTP ? "a URL" : key == PK_FILE ? "a path or glob" :
				   key == PK_DISK ? "a path" : key == PK_POSTGRES ? "a connection string" :
				   "HOST:PORT", probe_keys[key]);
	if (!pr->target)
		return false;
	if (ingest_probe_check_target(pr->kind, pr->target, why, sizeof why) < 0) {
		/* a connection string may hold a password: never shown */
		if (key == PK_POSTGRES)
			config_error(x, v, "%s: invalid connection string for 'postgres': %s", lb, why);
		else
			config_error(x, v, "%s: invalid value '%s' for '%s': %s", lb,
				     show(v, shown, sizeof shown), probe_keys[key], why);
		return false;
	}
	return true;
}

static void load_probe(struct ctx *x, struct config_probe *pr, const struct kl_ynode *item)
{
	const struct kl_ynode *kind_key = NULL, *timeout = NULL;
	const struct kl_ynode *tls = NULL, *ca = NULL;
	char lb[96], where[128];

	if (item->type != KL_Y_MAP) {
		config_error(x, item, "expected a mapping for each entry of 'probes', found %s",
			     kind(item));
		return;
	}
	pr->line = item->line;
	pr->col = item->col;
	pr->interval_us = PROBE_INTERVAL_DEF;
	pr->timeout_us = -1;
	pr->name = entry_name(x, item, "probe");
	label(lb, sizeof lb, "probe", pr->name);
	snprintf(where, sizeof where, " in %s", lb);
	bool ok = pr->name != NULL;
	for (size_t i = 0; i < item->n; i++) {
		const struct kl_ynode *k = item->keys[i], *v = item->items[i];
		int key = known_key(x, k, probe_keys, where);
		switch (key) {
		case PK_NAME:
			break;
		case PK_INTERVAL:
			if (!get_positive_duration(x, v, "interval", &pr->interval_us))
				ok = false;
			else if (pr->interval_us < PROBE_INTERVAL_MIN) {
				config_error(x, v, "%s: 'interval' must be at least 100ms", lb);
				ok = false;
			}
			break;
		case PK_TIMEOUT:
			timeout = v;
			ok &= get_positive_duration(x, v, "timeout", &pr->timeout_us);
			break;
		case PK_TLS: {
			bool verify = true;
			tls = v;
			ok &= get_bool(x, v, "tls_verify", &verify);
			pr->tls_insecure = !verify;
			break;
		}
		case PK_CA_FILE:
			ca = v;
			pr->ca_file = dup_str(x, v, "a file path", "ca_file");
			ok &= pr->ca_file != NULL;
			break;
		case -1:
			ok = false;
			break;
		default: /* a kind */
			if (kind_key) {
				char first[96], second[96];
				config_error(x, k,
					     "%s has two kinds, '%s' (line %d) and '%s'; one probe checks one "
					     "thing: make it two entries",
					     lb, show(kind_key, first, sizeof first), kind_key->line,
					     show(k, second, sizeof second));
				ok = false;
				break;
			}
			kind_key = k;
			ok &= probe_target(x, pr, key, v, lb);
			break;
		}
	}
	if (!kind_key) {
		config_error(x, item,
			     "%s has no kind; expected one of: http, tcp, disk, postgres, "
			     "postgres_file, redis, host, file (e.g. {name: web, http: "
			     "'https://web:8000/healthz'})",
			     lb);
		return;
	}
	if (!ok)
		return;
	if (pr->timeout_us < 0) {
		pr->timeout_us = PROBE_TIMEOUT_DEF < pr->interval_us ? PROBE_TIMEOUT_DEF : pr->interval_us;
	} else if (pr->timeout_us > pr->interval_us) {
		char t[32], iv[32];
		kl_format_duration(pr->timeout_us, t);
		kl_format_duration(pr->interval_us, iv);
		config_error(x, timeout, "%s: 'timeout' (%s) is longer than 'interval' (%s)", lb, t, iv);
		return;
	}
	if ((tls || ca) && pr->kind != INGEST_PROBE_HTTP) {
		config_error(x, tls ? tls : ca, "%s: '%s' is only for http probes", lb,
			     tls ? "tls_verify" : "ca_file");
		return;
	}
	pr->parser = config_probe_parser(pr->kind, pr->name);
	if (!pr->parser)
		oom(x);
}

static void load_probes(struct ctx *x, const struct kl_ynode *v)
{
	struct config *c = x->c;
	if (!want_list(x, v, "probes"))
		return;
	size_t n = list_len(v);
	if (n == 0)
		return;
	if (n > MAX_PROBES) {
		config_error(x, v, "too many probes (%zu); at most %d", n, MAX_PROBES);
		return;
	}
	c->probes = calloc(n, sizeof *c->probes);
	if (!c->probes) {
		oom(x);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		c->nprobes++;
		load_probe(x, &c->probes[i], v->items[i]);
	}
}

/* Probe names are source names to rules: unique among both. */
static void check_probe_names(struct ctx *x, const struct kl_ynode *probes)
{
	struct config *c = x->c;
	for (size_t i = 0; i < c->nprobes; i++) {
		const struct config_probe *pr = &c->probes[i];
		const struct kl_ynode *at = probes && probes->type == KL_Y_SEQ && i < probes->n
						    ? kl_ymap_get(probes->items[i], "name")
						    : NULL;
		if (!pr->name)
			continue;
		const struct config_source *s = config_source_by_name(c, pr->name);
		if (s) {
			config_error(x, at,
				     "probe name '%s' is also a source's (line %d); rules name both "
				     "by `source:`, so each name must be unique",
				     pr->name, s->line);
			continue;
		}
		for (size_t j = 0; j < i; j++) {
			if (c->probes[j].name && !strcmp(c->probes[j].name, pr->name)) {
				config_error(x, at, "duplicate probe name '%s' (first at line %d)",
					     pr->name, c->probes[j].line);
				break;
			}
		}
	}
}

/* ------------------------------------------------------------------------- */
/* The whole file */

static const char *const top_keys[] = { "state_dir", "listen",	"eval_interval", "rule_files",
					"sources",   "parsers", "sinks",	 "routes",
					"notify",    "inhibit", "external_url",	 "rotate",
					"rotate_interval", "probes", "redis",	NULL };

static int set_defaults(struct config *c)
{
	c->state_dir = kl_strndup("/var/lib/klaxon", strlen("/var/lib/klaxon"));
	c->listen = kl_strndup("127.0.0.1:9731", strlen("127.0.0.1:9731"));
	c->eval_interval_us = 1000000;
	c->rotate_interval_us = 60000000;
	notify_spec_defaults(&c->notify);
	return c->state_dir && c->listen ? 0 : -ENOMEM;
}

static int default_sink(struct config *c)
{
	c->sinks = calloc(1, sizeof *c->sinks);
	if (!c->sinks)
		return -ENOMEM;
	c->sinks[0].name = kl_strndup("stdout", 6);
	if (!c->sinks[0].name)
		return -ENOMEM;
	c->sinks[0].type = CONFIG_SINK_STDOUT;
	c->nsinks = 1;
	return 0;
}

static void load_root(struct ctx *x, const struct kl_ynode *root)
{
	if (root->type != KL_Y_MAP) {
		config_error(x, root, "expected a mapping at the top level, found %s", kind(root));
		return;
	}
	const struct kl_ynode *notify = kl_ymap_get(root, "notify");
	bool notify_done = false; /* routes inherit it: it is loaded first */
	for (size_t i = 0; i < root->n; i++) {
		const struct kl_ynode *v = root->items[i];
		int k = known_key(x, root->keys[i], top_keys, "");
		switch (k) {
		case 0: load_state_dir(x, v); break;
		case 1: load_listen(x, v); break;
		case 2: load_eval_interval(x, v); break;
		case 3: load_rule_files(x, v); break;
		case 4: load_sources(x, v); break;
		case 5: load_parsers(x, v); break;
		case 6: load_sinks(x, v); break;
		case 7:
			if (notify && !notify_done)
				load_notify(x, notify);
			notify_done = true;
			load_routes(x, v);
			break;
		case 8:
			if (!notify_done)
				load_notify(x, v);
			notify_done = true;
			break;
		case 9: load_inhibits(x, v); break;
		case 10: load_external_url(x, v); break;
		case 11: load_rotate(x, v); break;
		case 12: load_rotate_interval(x, v); break;
		case 13: load_probes(x, v); break;
		case 14: load_redis(x, v); break;
		default:
			break;
		}
	}
	resolve_parsers(x);
	check_probe_names(x, kl_ymap_get(root, "probes"));
	const struct kl_ynode *routes = kl_ymap_get(root, "routes");
	if (routes && routes->type == KL_Y_SEQ)
		check_routes(x, routes, kl_ymap_get(root, "sinks"));
}

static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		return kl_strndup(".", 1);
	if (slash == path)
		return kl_strndup("/", 1);
	return kl_strndup(path, (size_t)(slash - path));
}

/* Check the tree and build the config. The tree stays the caller's. */
static int load_tree(const char *name, const struct kl_ynode *root, bool no_paths,
		     struct config **out, struct kl_diag *d)
{
	struct kl_diag local = { .out = stderr };
	struct ctx x = { .file = name, .d = d ? d : &local, .no_paths = no_paths };
	unsigned before = x.d->errors;
	struct config *c = NULL;

	if (!root)
		return -EINVAL;
	c = calloc(1, sizeof *c);
	x.c = c;
	x.dir = dir_of(name);
	if (!c || !x.dir || set_defaults(c) < 0 || !(c->file = kl_strndup(name, strlen(name)))) {
		oom(&x);
		goto fail;
	}
	load_root(&x, root);
	if (x.d->errors != before)
		goto fail;
	if ((c->nsinks == 0 && default_sink(c) < 0) || build_sinks_spec(c) < 0) {
		oom(&x);
		goto fail;
	}
	for (size_t i = 0; i < x.nsubst; i++)
		free(x.subst[i].value);
	free(x.subst);
	for (size_t i = 0; i < x.ndeclared; i++)
		free(x.declared[i].name);
	free(x.declared);
	free(x.pending);
	free(x.dir);
	*out = c;
	return 0;
fail:
	for (size_t i = 0; i < x.nsubst; i++)
		free(x.subst[i].value);
	free(x.subst);
	for (size_t i = 0; i < x.ndeclared; i++)
		free(x.declared[i].name);
	free(x.declared);
	free(x.pending);
	free(x.dir);
	config_free(c);
	return -EINVAL;
}

static int load_owned(const char *name, struct kl_ynode *root, struct config **out,
		      struct kl_diag *d)
{
	int rc = load_tree(name, root, false, out, d);
	kl_yaml_free(root);
	return rc;
}

int config_load(const char *path, struct config **out, struct kl_diag *d)
{
	return load_owned(path, kl_yaml_load_file(path, d), out, d);
}

int config_load_mem(const char *name, const char *data, size_t len, struct config **out,
		    struct kl_diag *d)
{
	return load_owned(name, kl_yaml_load_mem(name, data, len, d), out, d);
}

int config_load_embedded(const char *name, const struct kl_ynode *root, struct config **out,
			 struct kl_diag *d)
{
	return load_tree(name, root, true, out, d);
}

static void free_matchers(struct sink_match *m, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free((void *)m[i].name);
		free((void *)m[i].value);
	}
	free(m);
}

static void free_names(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void config_free(struct config *c)
{
	if (!c)
		return;
	free(c->file);
	free(c->state_dir);
	free(c->listen);
	for (size_t i = 0; i < c->nrule_files; i++)
		free(c->rule_files[i]);
	free(c->rule_files);
	for (size_t i = 0; i < c->nparsers; i++) {
		free(c->parsers[i].name);
		parser_free(c->parsers[i].parser);
	}
	free(c->parsers);
	for (size_t i = 0; i < c->nsources; i++) {
		free(c->sources[i].name);
		free(c->sources[i].path);
		free(c->sources[i].parser_name);
		free(c->sources[i].multiline.start);
		free(c->sources[i].multiline.continuation);
	}
	free(c->sources);
	for (size_t i = 0; i < c->nprobes; i++) {
		free(c->probes[i].name);
		if (c->probes[i].target) /* may be a connection string with a password */
			memset(c->probes[i].target, 0, strlen(c->probes[i].target));
		free(c->probes[i].target);
		free(c->probes[i].ca_file);
		parser_free(c->probes[i].parser);
	}
	free(c->probes);
	for (size_t i = 0; i < c->nsinks; i++) {
		free(c->sinks[i].name);
		free(c->sinks[i].path);
		free(c->sinks[i].url);
		free(c->sinks[i].secret);
	}
	free(c->sinks);
	for (size_t i = 0; i < c->nroutes; i++) {
		free_matchers(c->routes[i].match, c->routes[i].nmatch);
		free_names(c->routes[i].sinks, c->routes[i].nsinks);
		free_names(c->routes[i].group_by, c->routes[i].ngroup_by);
	}
	free(c->routes);
	for (size_t i = 0; i < c->ninhibits; i++) {
		free_matchers(c->inhibits[i].source_match, c->inhibits[i].nsource);
		free_matchers(c->inhibits[i].target_match, c->inhibits[i].ntarget);
		free_names(c->inhibits[i].equal, c->inhibits[i].nequal);
	}
	free(c->inhibits);
	free(c->external_url);
	free(c->redis.host);
	if (c->redis.password)
		memset(c->redis.password, 0, strlen(c->redis.password));
	free(c->redis.password);
	free(c->redis.replica);
	free(c->redis.stream_key);
	free(c->redis.tls_ca_file);
	for (size_t i = 0; i < c->nrotate; i++) {
		free((char *)c->rotate[i].path);
		free((char *)c->rotate[i].pidfile);
	}
	free(c->rotate);
	free(c->sink_specs);
	free(c->route_specs);
	free(c->inhibit_specs);
	free(c);
}

const struct config_source *config_source_by_name(const struct config *c, const char *name)
{
	if (!c || !name)
		return NULL;
	for (size_t i = 0; i < c->nsources; i++)
		if (c->sources[i].name && strcmp(c->sources[i].name, name) == 0)
			return &c->sources[i];
	return NULL;
}

const struct config_probe *config_probe_by_name(const struct config *c, const char *name)
{
	if (!c || !name)
		return NULL;
	for (size_t i = 0; i < c->nprobes; i++)
		if (c->probes[i].name && strcmp(c->probes[i].name, name) == 0)
			return &c->probes[i];
	return NULL;
}

/*
 * The first place that names a config is the only one tried: a -c FILE or a
 * $KLAXON_CONFIG that cannot be read gives NULL rather than a fallback to
 * another file the user did not mean.
 */
const char *config_find(const char *explicit_path)
{
	static const char *const defaults[] = { "klaxon.yml", "/etc/klaxon/klaxon.yml" };

	if (explicit_path)
		return access(explicit_path, R_OK) == 0 ? explicit_path : NULL;
	const char *env = getenv("KLAXON_CONFIG");
	if (env && env[0])
		return access(env, R_OK) == 0 ? env : NULL;
	for (size_t i = 0; i < KL_ARRAY_LEN(defaults); i++)
		if (access(defaults[i], R_OK) == 0)
			return defaults[i];
	return NULL;
}
