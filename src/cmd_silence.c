/*
 * cmd_silence.c — `klaxon silence add|list|expire`: silences in
 * state_dir/silences.json, which a running klaxon watches and applies without
 * a restart.
 *
 *   klaxon silence add --match alertname=HighErrorRate [--match path=~'^/api'] \
 *                      --for 2h --comment "deploy of 1.4.2"
 *   klaxon silence list
 *   klaxon silence expire ID
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/commands.h"
#include "src/config.h"

#define MAX_MATCHERS 16

static const char silence_usage[] =
	"usage: klaxon silence add --match NAME=VALUE [--match NAME=~REGEX ...] --for DURATION\n"
	"                          [--comment TEXT] [-c FILE]\n"
	"       klaxon silence list [-c FILE]\n"
	"       klaxon silence expire ID [-c FILE]\n";

struct silence_args {
	const char *config;
	const char *matchers[MAX_MATCHERS];
	size_t nmatchers;
	const char *duration;
	const char *comment;
	const char *id;
};

static int parse_silence_args(int argc, char **argv, struct silence_args *a)
{
	memset(a, 0, sizeof *a);
	for (int i = 2; i < argc; i++) {
		const char *o = argv[i];
		bool has_value = i + 1 < argc;
		if ((!strcmp(o, "-c") || !strcmp(o, "--config")) && has_value) {
			a->config = argv[++i];
		} else if (!strcmp(o, "--match") && has_value) {
			if (a->nmatchers == MAX_MATCHERS) {
				fprintf(stderr, "klaxon silence: at most %d --match\n", MAX_MATCHERS);
				return -1;
			}
			a->matchers[a->nmatchers++] = argv[++i];
		} else if (!strcmp(o, "--for") && has_value) {
			a->duration = argv[++i];
		} else if (!strcmp(o, "--comment") && has_value) {
			a->comment = argv[++i];
		} else if (o[0] != '-' && !a->id) {
			a->id = o;
		} else {
			fprintf(stderr, "klaxon silence: unexpected '%s'\n%s", o, silence_usage);
			return -1;
		}
	}
	return 0;
}

/* NAME=VALUE or NAME=~REGEX into m (heap copies). */
static int parse_matcher(const char *s, struct silence_matcher *m)
{
	const char *eq = strchr(s, '=');
	if (!eq || eq == s) {
		fprintf(stderr, "klaxon silence: --match takes NAME=VALUE or NAME=~REGEX, got '%s'\n", s);
		return -EINVAL;
	}
	m->regex = eq[1] == '~';
	const char *v = eq + 1 + m->regex;
	m->name = kl_strndup(s, (size_t)(eq - s));
	m->value = kl_strndup(v, strlen(v));
	return m->name && m->value ? 0 : -ENOMEM;
}

static int add(const char *state_dir, const struct silence_args *a)
{
	int64_t dur;
	if (!a->nmatchers || !a->duration) {
		fprintf(stderr, "klaxon silence add: --match and --for are required\n%s", silence_usage);
		return EXIT_USAGE;
	}
	if (kl_parse_duration_us(a->duration, strlen(a->duration), &dur) < 0 || dur <= 0) {
		fprintf(stderr, "klaxon silence add: --for '%s' is not a duration (e.g. 30m, 2h, 1d)\n",
			a->duration);
		return EXIT_USAGE;
	}
	struct silences list;
	if (silences_load(state_dir, &list) < 0)
		return EXIT_PROBLEMS;
	struct silence *grown = realloc(list.items, (list.n + 1) * sizeof *grown);
	if (!grown)
		goto nomem;
	list.items = grown;
	struct silence *s = &list.items[list.n++];
	memset(s, 0, sizeof *s);
	char id[17];
	silence_new_id(id);
	s->id = kl_strndup(id, 16);
	s->comment = kl_strndup(a->comment ? a->comment : "", a->comment ? strlen(a->comment) : 0);
	s->matchers = calloc(a->nmatchers, sizeof *s->matchers);
	if (!s->id || !s->comment || !s->matchers)
		goto nomem;
	for (size_t i = 0; i < a->nmatchers; i++) {
		s->nmatchers++;
		if (parse_matcher(a->matchers[i], &s->matchers[i]) < 0) {
			silences_free(&list);
			return EXIT_USAGE;
		}
	}
	s->created_us = s->starts_us = kl_wall_us();
	s->ends_us = s->starts_us + dur;
	int rc = silences_save(state_dir, &list);
	if (rc < 0) {
		fprintf(stderr, "klaxon silence add: cannot write %s/silences.json: %s\n", state_dir,
			strerror(-rc));
		silences_free(&list);
		return EXIT_PROBLEMS;
	}
	printf("%s\n", id);
	silences_free(&list);
	return EXIT_OK;
nomem:
	fprintf(stderr, "klaxon silence add: out of memory\n");
	silences_free(&list);
	return EXIT_PROBLEMS;
}

static int list_all(const char *state_dir)
{
	struct silences list;
	if (silences_load(state_dir, &list) < 0)
		return EXIT_PROBLEMS;
	int64_t now = kl_wall_us();
	printf("%-16s  %-8s  %-20s  %s\n", "ID", "STATE", "ENDS", "MATCHERS / COMMENT");
	for (size_t i = 0; i < list.n; i++) {
		const struct silence *s = &list.items[i];
		char ends[KL_RFC3339_MAX];
		kl_format_rfc3339(s->ends_us, false, ends);
		const char *state = now < s->starts_us ? "pending" : now < s->ends_us ? "active" : "expired";
		printf("%-16s  %-8s  %-20s  ", s->id, state, ends);
		for (size_t k = 0; k < s->nmatchers; k++)
			printf("%s%s%s%s", k ? "," : "", s->matchers[k].name,
			       s->matchers[k].regex ? "=~" : "=", s->matchers[k].value);
		printf("  %s\n", s->comment ? s->comment : "");
	}
	silences_free(&list);
	return EXIT_OK;
}

static int expire(const char *state_dir, const char *id)
{
	if (!id) {
		fprintf(stderr, "klaxon silence expire: which ID? (see klaxon silence list)\n");
		return EXIT_USAGE;
	}
	struct silences list;
	if (silences_load(state_dir, &list) < 0)
		return EXIT_PROBLEMS;
	int64_t now = kl_wall_us();
	bool found = false;
	for (size_t i = 0; i < list.n; i++)
		if (!strcmp(list.items[i].id, id)) {
			found = true;
			if (list.items[i].ends_us > now)
				list.items[i].ends_us = now;
		}
	int status = EXIT_OK;
	if (!found) {
		fprintf(stderr, "klaxon silence expire: no silence with id '%s'\n", id);
		status = EXIT_PROBLEMS;
	} else if (silences_save(state_dir, &list) < 0) {
		fprintf(stderr, "klaxon silence expire: cannot write %s/silences.json\n", state_dir);
		status = EXIT_PROBLEMS;
	}
	silences_free(&list);
	return status;
}

int cmd_silence(int argc, char **argv)
{
	struct silence_args a;
	if (argc < 2) {
		fputs(silence_usage, stderr);
		return EXIT_USAGE;
	}
	if (parse_silence_args(argc, argv, &a) < 0)
		return EXIT_USAGE;
	const char *path = find_config_or_explain(a.config);
	if (!path)
		return EXIT_PROBLEMS;
	struct config *cfg;
	struct kl_diag d = { .out = stderr };
	if (config_load(path, &cfg, &d) < 0)
		return EXIT_PROBLEMS;
	int status;
	const char *what = argv[1];
	if (!strcmp(what, "add"))
		status = add(cfg->state_dir, &a);
	else if (!strcmp(what, "list") || !strcmp(what, "ls"))
		status = list_all(cfg->state_dir);
	else if (!strcmp(what, "expire"))
		status = expire(cfg->state_dir, a.id);
	else {
		fprintf(stderr, "klaxon silence: unknown action '%s'\n%s", what, silence_usage);
		status = EXIT_USAGE;
	}
	config_free(cfg);
	return status;
}
