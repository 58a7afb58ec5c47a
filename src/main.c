/*
 * main.c — klaxon's entry point: dispatches to a command.
 *
 * The commands share everything below the clock (src/pipeline.c): `run` drives
 * it from files followed on a libev loop with the wall clock, `replay` from
 * whole files with the event-time clock, `parse` stops after the parser,
 * `check` after loading.
 */
#include <stdio.h>
#include <string.h>

#include "src/commands.h"
#include "src/config.h"

#ifndef KLAXON_VERSION
#define KLAXON_VERSION "0.0.0"
#endif

static const char usage[] =
	"usage: klaxon COMMAND [OPTIONS]\n"
	"\n"
	"  run    [-c FILE]                   tail, evaluate, notify, rotate; until SIGTERM (SIGHUP reloads rules)\n"
	"  check  [-c FILE]                   validate the config and every rule file; exit 0 or 1\n"
	"  replay [-c FILE] [--source NAME=PATH ...] [--state DIR]\n"
	"                                     evaluate the rules over existing files (plain or .gz)\n"
	"                                     in event time; print alert transitions as JSON lines;\n"
	"                                     --state: continue from DIR/rules.state, save it there\n"
	"  test   [-v] FILE...                rule unit tests: input lines and times -> expected alerts\n"
	"  parse  [-c FILE] --source NAME [PATH|-]\n"
	"                                     print the parsed events as JSON lines\n"
	"  silence add --match NAME=VALUE --for DURATION [--comment TEXT] | list | expire ID\n"
	"                                     mute notifications; a running klaxon applies it at once\n"
	"  rotate [-c FILE] [--dry-run]       one pass of the rotator (compress, delete, rotate);\n"
	"                                     prints each action it takes, or would take\n"
	"\n"
	"The config is -c FILE, else $KLAXON_CONFIG, else ./klaxon.yml, else /etc/klaxon/klaxon.yml.\n"
	"  -h, --help       this text\n"
	"  -V, --version    the version\n";

const char *find_config_or_explain(const char *explicit_path)
{
	const char *path = config_find(explicit_path);
	if (!path)
		fprintf(stderr,
			"klaxon: no config file: tried %s%s$KLAXON_CONFIG, ./klaxon.yml and /etc/klaxon/klaxon.yml; "
			"pass one with -c FILE (see examples/klaxon.yml)\n",
			explicit_path ? explicit_path : "", explicit_path ? ", " : "");
	return path;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
		fputs(usage, stdout);
		return EXIT_OK;
	}
	if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version")) {
		printf("klaxon %s\n", KLAXON_VERSION);
		return EXIT_OK;
	}
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = {
		{ "run", cmd_run },
		{ "replay", cmd_replay },
		{ "parse", cmd_parse },
		{ "check", cmd_check },
		{ "silence", cmd_silence },
		{ "rotate", cmd_rotate },
		{ "test", cmd_test },
	};
	for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
		if (!strcmp(cmd, cmds[i].name))
			return cmds[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "klaxon: unknown command '%s'\n\n%s", cmd, usage);
	return EXIT_USAGE;
}
