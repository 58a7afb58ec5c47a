/*
 * args.h — the options the commands share (private to the main program).
 */
#ifndef KLAXON_ARGS_H
#define KLAXON_ARGS_H

#include <stdbool.h>
#include <stddef.h>

#define ARGS_MAX_SOURCES 256

struct args {
	const char *config;	/* -c FILE */
	const char *source;	/* parse: --source NAME */
	struct {
		char *name;	/* replay: --source NAME=PATH (points into argv) */
		const char *path;
	} files[ARGS_MAX_SOURCES];
	size_t nfiles;
	const char *state;	/* replay: --state DIR */
	const char *positional[4];
	size_t npositional;
};

/*
 * Parse argv[1..argc) of a command. `pairs`: --source takes NAME=PATH (replay)
 * rather than NAME (parse). Prints a message and returns -1 on a bad option.
 */
int args_parse(const char *cmd, int argc, char **argv, bool pairs, struct args *out);

#endif
