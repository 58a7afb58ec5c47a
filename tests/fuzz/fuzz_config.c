/*
 * fuzz_config.c — the config loader on arbitrary bytes: YAML parsing
 * (kl_yaml), every key's checks, ${VAR} substitution, parser building. It
 * must never crash, leak or hang, whatever the input; reports go to
 * /dev/null.
 *
 * The input is loaded with config_load_mem under a name whose directory does
 * not exist, so relative rule_files globs match nothing. Absolute globs would
 * walk the real file system: inputs with rule_files and more than two '*' or
 * '?' are skipped, so that a pattern with a wildcard in every component of a
 * deep absolute path cannot turn a run into a crawl of the machine.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/kl.h"
#include "src/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool risky_glob(const uint8_t *data, size_t size)
{
	static const char key[] = "rule_files";
	unsigned wild = 0;
	if (!memmem(data, size, key, sizeof key - 1))
		return false;
	for (size_t i = 0; i < size; i++)
		wild += data[i] == '*' || data[i] == '?';
	return wild > 2;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static FILE *devnull;
	struct config *c = NULL;

	if (size > 1 << 20 || risky_glob(data, size))
		return 0;
	if (!devnull) {
		devnull = fopen("/dev/null", "w");
		if (!devnull)
			abort();
		kl_log_set_quiet(true);
	}
	struct kl_diag d = { .out = devnull };
	int rc = config_load_mem("/nonexistent-klaxon-fuzz/klaxon.yml", (const char *)data, size,
				 &c, &d);
	if (rc == 0) {
		/* a config that loads is complete and consistent */
		if (!c || d.errors != 0 || c->nsinks == 0 || c->eval_interval_us <= 0)
			abort();
		for (size_t i = 0; i < c->nsources; i++) {
			const struct config_source *s = &c->sources[i];
			if (!s->name || !s->path || !s->parser || config_source_by_name(c, s->name) != s)
				abort();
		}
		config_free(c);
	} else if (c || d.errors == 0) {
		abort();
	}
	return 0;
}
