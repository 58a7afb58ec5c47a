/*
 * args.c — see args.h.
 */
#include <stdio.h>
#include <string.h>

#include "src/args.h"

static const char *value_of(const char *cmd, int argc, char **argv, int *i)
{
	if (*i + 1 >= argc) {
		fprintf(stderr, "klaxon %s: %s needs a value\n", cmd, argv[*i]);
		return NULL;
	}
	return argv[++*i];
}

int args_parse(const char *cmd, int argc, char **argv, bool pairs, struct args *out)
{
	memset(out, 0, sizeof *out);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-c") || !strcmp(a, "--config")) {
			if (!(out->config = value_of(cmd, argc, argv, &i)))
				return -1;
		} else if (!strcmp(a, "--source") || !strcmp(a, "-s")) {
			const char *v = value_of(cmd, argc, argv, &i);
			if (!v)
				return -1;
			if (!pairs) {
				out->source = v;
				continue;
			}
			char *eq = strchr(argv[i], '=');
			if (!eq || eq == argv[i] || !eq[1]) {
				fprintf(stderr, "klaxon %s: --source takes NAME=PATH, got '%s'\n", cmd, v);
				return -1;
			}
			if (out->nfiles == ARGS_MAX_SOURCES) {
				fprintf(stderr, "klaxon %s: at most %d --source options\n", cmd, ARGS_MAX_SOURCES);
				return -1;
			}
			*eq = '\0';
			out->files[out->nfiles].name = argv[i];
			out->files[out->nfiles].path = eq + 1;
			out->nfiles++;
		} else if (pairs && !strcmp(a, "--state")) {
			if (!(out->state = value_of(cmd, argc, argv, &i)))
				return -1;
		} else if (a[0] == '-' && a[1] != '\0') {
			fprintf(stderr, "klaxon %s: unknown option '%s' (see klaxon --help)\n", cmd, a);
			return -1;
		} else if (out->npositional < sizeof out->positional / sizeof out->positional[0]) {
			out->positional[out->npositional++] = a;
		} else {
			fprintf(stderr, "klaxon %s: too many arguments\n", cmd);
			return -1;
		}
	}
	return 0;
}
