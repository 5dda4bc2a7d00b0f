/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The one JSON writer of every `--json` output: objects, arrays, keys and values, with strings
 * escaped per RFC 8259 and the separators placed by the writer (", " between members, ": "
 * after a key), so no caller quotes or counts commas by hand. json_break() asks for a line
 * break (and indentation) before the next member, value or closing bracket, after its comma:
 * how the long reports keep one row per line. Nothing is buffered: it writes to the FILE.
 */
#ifndef LYNCXDP_JSON_H
#define LYNCXDP_JSON_H

#include <stdint.h>
#include <stdio.h>

#define JSON_MAX_DEPTH 16

struct json_writer {
	FILE *out;
	int depth;			    /* open objects and arrays */
	unsigned char used[JSON_MAX_DEPTH]; /* something written at that depth: a comma first */
	int after_key;			    /* a key was written: its value comes without a comma */
	const char *brk;		    /* written before the next item, after its comma */
};

void json_init(struct json_writer *w, FILE *out);
/* A document that is one object on its own line: json_init and '{'; '}' and '\n'. */
void json_begin(struct json_writer *w, FILE *out);
void json_end(struct json_writer *w);
void json_break(struct json_writer *w, const char *text);

void json_object_begin(struct json_writer *w);
void json_object_end(struct json_writer *w);
void json_array_begin(struct json_writer *w);
void json_array_end(struct json_writer *w);
void json_key(struct json_writer *w, const char *key);

void json_str(struct json_writer *w, const char *s); /* NULL: null */
void json_uint(struct json_writer *w, uint64_t v);
void json_int(struct json_writer *w, int64_t v);
void json_bool(struct json_writer *w, int v);
void json_null(struct json_writer *w);
void json_fixed(struct json_writer *w, int decimals, double v); /* %.Nf */
void json_hex64(struct json_writer *w, uint64_t v);		/* "%016llx" as a string */

/* A key and its value at once. */
void json_kv_str(struct json_writer *w, const char *key, const char *s);
void json_kv_uint(struct json_writer *w, const char *key, uint64_t v);
void json_kv_int(struct json_writer *w, const char *key, int64_t v);
void json_kv_bool(struct json_writer *w, const char *key, int v);
void json_kv_fixed(struct json_writer *w, const char *key, int decimals, double v);

#endif
