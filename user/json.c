// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The JSON writer (see json.h): separators, nesting and string escaping in one place. */
#include "json.h"

void json_init(struct json_writer *w, FILE *out)
{
	*w = (struct json_writer){ .out = out };
}

void json_begin(struct json_writer *w, FILE *out)
{
	json_init(w, out);
	json_object_begin(w);
}

void json_end(struct json_writer *w)
{
	json_object_end(w);
	fputc('\n', w->out);
}

void json_break(struct json_writer *w, const char *text)
{
	w->brk = text;
}

static void put_string(FILE *out, const char *s)
{
	fputc('"', out);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(out, "\\%c", *p);
		else if (*p < 0x20)
			fprintf(out, "\\u%04x", *p);
		else
			fputc(*p, out);
	}
	fputc('"', out);
}

/* Before a key, a value or a container: the comma and the break (or space) it needs. */
static void separate(struct json_writer *w)
{
	if (w->after_key) {
		w->after_key = 0;
		return;
	}
	if (w->used[w->depth])
		fputc(',', w->out);
	if (w->brk)
		fputs(w->brk, w->out);
	else if (w->used[w->depth])
		fputc(' ', w->out);
	w->brk = NULL;
	w->used[w->depth] = 1;
}

static void container_open(struct json_writer *w, char c)
{
	separate(w);
	fputc(c, w->out);
	if (w->depth + 1 < JSON_MAX_DEPTH)
		w->depth++;
	w->used[w->depth] = 0;
}

static void container_close(struct json_writer *w, char c)
{
	if (w->brk)
		fputs(w->brk, w->out);
	w->brk = NULL;
	fputc(c, w->out);
	if (w->depth > 0)
		w->depth--;
}

void json_object_begin(struct json_writer *w)
{
	container_open(w, '{');
}

void json_object_end(struct json_writer *w)
{
	container_close(w, '}');
}

void json_array_begin(struct json_writer *w)
{
	container_open(w, '[');
}

void json_array_end(struct json_writer *w)
{
	container_close(w, ']');
}

void json_key(struct json_writer *w, const char *key)
{
	separate(w);
	put_string(w->out, key);
	fputs(": ", w->out);
	w->after_key = 1;
}

void json_str(struct json_writer *w, const char *s)
{
	separate(w);
	if (s)
		put_string(w->out, s);
	else
		fputs("null", w->out);
}

void json_uint(struct json_writer *w, uint64_t v)
{
	separate(w);
	fprintf(w->out, "%llu", (unsigned long long)v);
}

void json_int(struct json_writer *w, int64_t v)
{
	separate(w);
	fprintf(w->out, "%lld", (long long)v);
}

void json_bool(struct json_writer *w, int v)
{
	separate(w);
	fputs(v ? "true" : "false", w->out);
}

void json_null(struct json_writer *w)
{
	separate(w);
	fputs("null", w->out);
}

void json_fixed(struct json_writer *w, int decimals, double v)
{
	separate(w);
	fprintf(w->out, "%.*f", decimals, v);
}

void json_hex64(struct json_writer *w, uint64_t v)
{
	separate(w);
	fprintf(w->out, "\"%016llx\"", (unsigned long long)v);
}

void json_kv_str(struct json_writer *w, const char *key, const char *s)
{
	json_key(w, key);
	json_str(w, s);
}

void json_kv_uint(struct json_writer *w, const char *key, uint64_t v)
{
	json_key(w, key);
	json_uint(w, v);
}

void json_kv_int(struct json_writer *w, const char *key, int64_t v)
{
	json_key(w, key);
	json_int(w, v);
}

void json_kv_bool(struct json_writer *w, const char *key, int v)
{
	json_key(w, key);
	json_bool(w, v);
}

void json_kv_fixed(struct json_writer *w, const char *key, int decimals, double v)
{
	json_key(w, key);
	json_fixed(w, decimals, v);
}
