/*
 * fuzz_replay.c - run the fuzz target over saved inputs, without libFuzzer.
 *
 * usage: fuzz_replay PATH...
 *
 * Every PATH is a file or a directory; directories are walked recursively
 * (entries sorted by name, names starting with '.' skipped) and every
 * regular file is passed to LLVMFuzzerTestOneInput() in its own exactly
 * sized buffer, so a sanitizer build catches reads past the input.  Prints
 * how many inputs were replayed.  Exit status: 0; 1 if a PATH cannot be
 * read or no input was found; a failed check in the target aborts.
 */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t replayed;

static bool replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "fuzz_replay: %s: %s\n", path, strerror(errno));
		return false;
	}
	size_t cap = 4096, len = 0;
	uint8_t *buf = malloc(cap);
	bool ok = buf != NULL;
	while (ok) {
		if (len == cap) {
			uint8_t *nb = realloc(buf, cap * 2);
			if (!nb) {
				ok = false;
				break;
			}
			buf = nb;
			cap *= 2;
		}
		size_t got = fread(buf + len, 1, cap - len, f);
		len += got;
		if (got == 0)
			break;
	}
	if (ok && ferror(f)) {
		fprintf(stderr, "fuzz_replay: %s: read error\n", path);
		ok = false;
	} else if (!ok) {
		fprintf(stderr, "fuzz_replay: %s: out of memory\n", path);
	}
	fclose(f);
	if (ok) {
		/* An exactly sized copy: one byte past the input is a heap overflow. */
		uint8_t *exact = malloc(len ? len : 1);
		if (!exact) {
			fprintf(stderr, "fuzz_replay: %s: out of memory\n", path);
			ok = false;
		} else {
			if (len)
				memcpy(exact, buf, len);
			LLVMFuzzerTestOneInput(exact, len);
			free(exact);
			replayed++;
		}
	}
	free(buf);
	return ok;
}

static int skip_hidden(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

static bool replay_path(const char *path)
{
	struct stat st;

	if (stat(path, &st) != 0) {
		fprintf(stderr, "fuzz_replay: %s: %s\n", path, strerror(errno));
		return false;
	}
	if (!S_ISDIR(st.st_mode))
		return replay_file(path);

	struct dirent **names;
	int n = scandir(path, &names, skip_hidden, alphasort);
	if (n < 0) {
		fprintf(stderr, "fuzz_replay: %s: %s\n", path, strerror(errno));
		return false;
	}
	bool ok = true;
	for (int i = 0; i < n; i++) {
		size_t len = strlen(path) + strlen(names[i]->d_name) + 2;
		char *child = malloc(len);
		if (!child) {
			fprintf(stderr, "fuzz_replay: out of memory\n");
			ok = false;
		} else {
			snprintf(child, len, "%s/%s", path, names[i]->d_name);
			if (!replay_path(child))
				ok = false;
			free(child);
		}
		free(names[i]);
	}
	free(names);
	return ok;
}

int main(int argc, char **argv)
{
	bool ok = true;

	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE-OR-DIRECTORY...\n", argv[0]);
		return 1;
	}
	for (int i = 1; i < argc; i++)
		if (!replay_path(argv[i]))
			ok = false;
	printf("fuzz_replay: replayed %zu inputs\n", replayed);
	if (replayed == 0) {
		fprintf(stderr, "fuzz_replay: no inputs found\n");
		return 1;
	}
	return ok ? 0 : 1;
}
