/*
 * replay_main.c — a plain main() for fuzz targets built without libFuzzer: runs
 * LLVMFuzzerTestOneInput over every file of the corpus directories (or files)
 * given as arguments, so `meson test` replays the seeds and every crash found
 * so far.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/kl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
	char *buf;
	size_t len;
	int rc = kl_read_file(path, 16 << 20, &buf, &len);
	if (rc < 0) {
		fprintf(stderr, "cannot read %s\n", path);
		return 1;
	}
	LLVMFuzzerTestOneInput((const uint8_t *)buf, len);
	free(buf);
	return 0;
}

static int run_path(const char *path, unsigned *n)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		fprintf(stderr, "no corpus at %s\n", path);
		return 1;
	}
	if (!S_ISDIR(st.st_mode)) {
		(*n)++;
		return run_file(path);
	}
	DIR *d = opendir(path);
	if (!d)
		return 1;
	int bad = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char sub[4096];
		snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
		bad |= run_path(sub, n);
	}
	closedir(d);
	return bad;
}

int main(int argc, char **argv)
{
	unsigned n = 0;
	int bad = 0;
	for (int i = 1; i < argc; i++)
		bad |= run_path(argv[i], &n);
	printf("replayed %u inputs\n", n);
	return bad || n == 0;
}
