// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Runs every file of tests/fuzz/corpus/{matrix,site,replay}/ once through the same entry
 * points as the libFuzzer targets (tests/fuzz/fuzz_*.c, built here without the fuzzer), so
 * that every input a fuzzer once crashed on stays fixed. Files named ok-* must be accepted,
 * bad-* refused with a message naming the file; others (crash-*, seeds) must only not
 * crash (the sanitizer build of this test catches what the fuzzer did).
 *
 * Run from the repository top (tests/run.sh does). The replay inputs run through the real
 * XDP program when root (BPF_PROG_TEST_RUN).
 */
#define FUZZ_REGRESS 1

#include <dirent.h>
#include <stdlib.h>

#include "check.h"
#include "fuzz/fuzz_matrix.c"
#include "fuzz/fuzz_replay.c"
#include "fuzz/fuzz_site.c"

#define CORPUS "tests/fuzz/corpus"

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static uint8_t *read_all(const char *path, size_t *size)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 4096, n = 0, got;
	uint8_t *buf = malloc(cap);
	while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
		n += got;
		if (n == cap) {
			uint8_t *grown = realloc(buf, cap * 2);
			if (!grown)
				free(buf);
			buf = grown;
			cap *= 2;
		}
	}
	fclose(f);
	*size = n;
	return buf;
}

static void run_corpus(const char *target, int (*one)(const uint8_t *, size_t))
{
	char dir[256], path[512];
	char *names[1024];
	int n = 0, ok = 0, bad = 0, other = 0;
	snprintf(dir, sizeof(dir), "%s/%s", CORPUS, target);
	DIR *d = opendir(dir);
	if (!d) {
		CHECK(0, "%s corpus: cannot open %s", target, dir);
		return;
	}
	for (struct dirent *e; (e = readdir(d)) && n < 1024;)
		if (e->d_name[0] != '.')
			names[n++] = strdup(e->d_name);
	closedir(d);
	qsort(names, (size_t)n, sizeof(names[0]), name_cmp);
	for (int i = 0; i < n; i++) {
		size_t size = 0;
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		uint8_t *data = read_all(path, &size);
		if (!data) {
			CHECK(0, "%s corpus: cannot read %s", target, path);
			free(names[i]);
			continue;
		}
		fuzz_last_rc = 0;
		fuzz_last_msg[0] = '\0';
		one(data, size);
		free(data);
		if (!strncmp(names[i], "ok-", 3)) {
			ok++;
			CHECK(fuzz_last_rc == 0, "%s corpus: %s is accepted%s%s", target, names[i],
			      fuzz_last_rc ? ": " : "", fuzz_last_rc ? fuzz_last_msg : "");
		} else if (!strncmp(names[i], "bad-", 4)) {
			bad++;
			CHECK(fuzz_last_rc < 0 && fuzz_last_msg[0],
			      "%s corpus: %s is refused with a message naming the file (%s)",
			      target, names[i], fuzz_last_msg);
		} else {
			other++;
		}
		free(names[i]);
	}
	CHECK(n > 0 && ok > 0,
	      "%s corpus: %d files ran without a crash (%d ok-, %d bad-, %d other)", target, n, ok,
	      bad, other);
}

int main(void)
{
	fuzz_site_init(NULL, NULL);
	fuzz_replay_init(NULL, NULL);
	run_corpus("matrix", fuzz_matrix_one);
	run_corpus("site", fuzz_site_one);
	run_corpus("replay", fuzz_replay_one);
	CHECK(fuzz_replay.bpf && fuzz_replay.runs > 0,
	      "replay corpus: %llu frames ran through the XDP program (%llu handed over)",
	      (unsigned long long)fuzz_replay.runs, (unsigned long long)fuzz_replay.frames);
	if (fuzz_replay.bpf)
		testrun_close(&fuzz_replay.t);
	compile_free(&fuzz_replay.c);
	site_free(&fuzz_replay.s);
	matrix_free(&fuzz_replay.m);
	matrix_free(&fuzz_site_matrix);
	return check_done();
}
