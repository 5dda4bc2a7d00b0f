/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Shared by the libFuzzer targets (tests/fuzz/fuzz_*.c) and their regression runner
 * (tests/test_fuzz_regress.c, which includes the targets with FUZZ_REGRESS defined and runs
 * every file of tests/fuzz/corpus/ through them once, without the fuzzer).
 *
 * The parsers take a path, so each input is written to an anonymous memory file and passed
 * as /proc/self/fd/N: nothing is added to user/ for the fuzzers.
 */
#ifndef LYNCXDP_TESTS_FUZZ_H
#define LYNCXDP_TESTS_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "text.h"

/* What the last input did: 0 it was accepted, -1 it was refused (with a message). */
static int fuzz_last_rc;
static char fuzz_last_msg[sizeof(((struct text_error *)0)->msg)];

/* The input as a file: returns the descriptor (close it after use) and its path. */
static int fuzz_file(const uint8_t *data, size_t size, char *path, size_t len)
{
	int fd = memfd_create("lyncxdp-fuzz", MFD_CLOEXEC);
	if (fd < 0) {
		perror("memfd_create");
		abort();
	}
	for (size_t done = 0; done < size;) {
		ssize_t n = write(fd, data + done, size - done);
		if (n <= 0) {
			perror("write");
			abort();
		}
		done += (size_t)n;
	}
	snprintf(path, len, "/proc/self/fd/%d", fd);
	return fd;
}

/* A refusal must name the file, "PATH:LINE: what" or "PATH: what", in a terminated string. */
static void fuzz_check_error(const char *path, const struct text_error *err)
{
	size_t n = strlen(path);
	if (!memchr(err->msg, '\0', sizeof(err->msg)) || strncmp(err->msg, path, n) != 0 ||
	    err->msg[n] != ':') {
		fprintf(stderr, "error message does not start with '%s:': '%.200s'\n", path,
			err->msg);
		abort();
	}
	memcpy(fuzz_last_msg, err->msg, sizeof(fuzz_last_msg));
}

/* One input as a file, with an empty error for the parser to fill. */
struct fuzz_input {
	char path[64];
	int fd;
	struct text_error err;
};

static void fuzz_input_open(struct fuzz_input *in, const uint8_t *data, size_t size)
{
	in->fd = fuzz_file(data, size, in->path, sizeof(in->path));
	memset(&in->err, 0, sizeof(in->err));
}

#endif
