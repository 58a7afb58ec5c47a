/*
 * cmd_check.c — `klaxon check`: load the config and every rule file, report
 * every problem as FILE:LINE:COL: message, exit 0 or 1.
 */
#include <stdio.h>

#include "src/args.h"
#include "src/commands.h"
#include "src/pipeline.h"

int cmd_check(int argc, char **argv)
{
	struct args a;
	if (args_parse("check", argc, argv, false, &a) < 0 || a.npositional)
		return EXIT_USAGE;
	const char *path = find_config_or_explain(a.config);
	if (!path)
		return EXIT_PROBLEMS;
	struct kl_diag d = { .out = stderr };
	struct runtime rt;
	int rc = runtime_load(&rt, path, &d);
	if (rc == 0)
		fprintf(stderr,
			"klaxon: check: %s: %zu source(s), %zu probe(s), %zu rule(s) in %zu file(s): OK\n",
			path, rt.cfg->nsources, rt.cfg->nprobes, rules_count(rt.rules), rt.cfg->nrule_files);
	else
		fprintf(stderr, "klaxon: check: %u problem(s)\n", d.errors ? d.errors : 1);
	runtime_free(&rt);
	return rc == 0 ? EXIT_OK : EXIT_PROBLEMS;
}
