/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Line reading and tokenizing shared by the matrix and site parsers. */
#ifndef LYNCXDP_TEXT_H
#define LYNCXDP_TEXT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define TEXT_MAX_LINE	4096
#define TEXT_MAX_TOKENS 64

/* One input file being read line by line, for "file:line: message" errors. */
struct text_file {
	const char *path;
	FILE *fp;
	int line;
	uint64_t hash; /* FNV-1a of every byte read so far */
	char buf[TEXT_MAX_LINE + 2];
};

struct text_tokens {
	int n;
	char *tok[TEXT_MAX_TOKENS];
	int quoted[TEXT_MAX_TOKENS];
};

/* Error text for the caller to print; every parser fills one and returns -1. */
struct text_error {
	char msg[640];
};

int text_open(struct text_file *tf, const char *path, struct text_error *err);
void text_close(struct text_file *tf);

/*
 * Reads the next line and splits it into tokens (quotes kept together, `#` comments
 * dropped). Returns 1 with tokens (possibly none), 0 at end of file, -1 on error.
 */
int text_next(struct text_file *tf, struct text_tokens *toks, struct text_error *err);

/* Formats "path:line: message" into err. Always returns -1. */
int text_fail(const struct text_file *tf, struct text_error *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A lowercase slug: [a-z0-9-], starts with a letter, shorter than max. */
int text_is_slug(const char *s, size_t max);

/* Strict decimal parse of an unsigned value in [min, max]. */
int text_parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out);

/* names[i] of a table indexed by an enum of n values; "?" when out of range or unnamed. */
const char *text_name(const char *const *names, size_t n, long i);

/* Bounded copy that always terminates. */
void text_copy(char *dst, size_t size, const char *src);

uint64_t text_fnv1a(uint64_t hash, const void *data, size_t len);
#define TEXT_FNV_INIT 0xcbf29ce484222325ULL

#endif
