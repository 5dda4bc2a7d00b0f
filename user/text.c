// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "text.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

uint64_t text_fnv1a(uint64_t hash, const void *data, size_t len)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < len; i++) {
		hash ^= p[i];
		hash *= 0x100000001b3ULL;
	}
	return hash;
}

void text_copy(char *dst, size_t size, const char *src)
{
	if (!size)
		return;
	size_t n = strlen(src);
	if (n >= size)
		n = size - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

int text_fail(const struct text_file *tf, struct text_error *err, const char *fmt, ...)
{
	char what[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(err->msg, sizeof(err->msg), "%s:%d: %s", tf->path, tf->line, what);
	return -1;
}

int text_open(struct text_file *tf, const char *path, struct text_error *err)
{
	memset(tf, 0, sizeof(*tf));
	tf->path = path;
	tf->hash = TEXT_FNV_INIT;
	tf->fp = fopen(path, "rb");
	if (!tf->fp) {
		snprintf(err->msg, sizeof(err->msg), "%s: %s", path, strerror(errno));
		return -1;
	}
	struct stat st;
	/* Pipes (--site <(...), /dev/stdin) are fine; a directory reads as an error. */
	if (fstat(fileno(tf->fp), &st) == 0 && S_ISDIR(st.st_mode)) {
		snprintf(err->msg, sizeof(err->msg), "%s: is a directory, not a file", path);
		text_close(tf);
		return -1;
	}
	return 0;
}

void text_close(struct text_file *tf)
{
	if (tf->fp)
		fclose(tf->fp);
	tf->fp = NULL;
}

/* Reads one physical line into tf->buf without its line end. 0 at EOF, -1 on error. */
static int read_line(struct text_file *tf, struct text_error *err)
{
	size_t len = 0;
	int c;

	while ((c = getc(tf->fp)) != EOF) {
		unsigned char byte = (unsigned char)c;
		tf->hash = text_fnv1a(tf->hash, &byte, 1);
		if (c == '\n')
			break;
		if (len >= TEXT_MAX_LINE) {
			tf->line++;
			return text_fail(tf, err, "line longer than %d characters", TEXT_MAX_LINE);
		}
		tf->buf[len++] = (char)c;
	}
	if (c == EOF && len == 0) {
		if (ferror(tf->fp)) {
			snprintf(err->msg, sizeof(err->msg), "%s: read error", tf->path);
			return -1;
		}
		return 0;
	}
	tf->line++;
	if (len > 0 && tf->buf[len - 1] == '\r') /* CRLF files are accepted as written */
		len--;
	tf->buf[len] = '\0';
	/* Windows editors may start a file with a UTF-8 byte order mark: it means nothing here. */
	size_t skip = tf->line == 1 && len >= 3 && !memcmp(tf->buf, "\xef\xbb\xbf", 3) ? 3 : 0;
	if (skip)
		memmove(tf->buf, tf->buf + skip, len - skip + 1);
	if (memchr(tf->buf, '\0', len - skip))
		return text_fail(tf, err, "binary data (NUL byte): not a text file");
	for (const char *p = tf->buf; *p; p++)
		if ((unsigned char)*p < 0x20 && *p != '\t')
			return text_fail(tf, err, "control character 0x%02x%s", (unsigned char)*p,
					 *p == '\r'
					     ? " (old Mac line ends? save the file with LF or CRLF)"
					     : "");
	return 1;
}

static int tokenize(struct text_file *tf, struct text_tokens *toks, struct text_error *err)
{
	char *p = tf->buf;

	toks->n = 0;
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0' || *p == '#')
			return 1;
		if (toks->n == TEXT_MAX_TOKENS)
			return text_fail(tf, err, "more than %d fields on one line",
					 TEXT_MAX_TOKENS);
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return text_fail(tf, err, "control character 0x%02x", (unsigned char)*p);
		if (*p == '"') {
			char *close = strchr(p + 1, '"');
			if (!close)
				return text_fail(tf, err, "unterminated quote");
			*close = '\0';
			toks->quoted[toks->n] = 1;
			toks->tok[toks->n++] = p + 1;
			p = close + 1;
			if (*p == '#')
				return 1;
			if (*p != '\0' && *p != ' ' && *p != '\t')
				return text_fail(tf, err, "text right after a closing quote");
			continue;
		}
		toks->quoted[toks->n] = 0;
		toks->tok[toks->n++] = p;
		while (*p && *p != ' ' && *p != '\t' && *p != '#')
			p++;
		if (*p == '#') {
			*p = '\0';
			return 1;
		}
		if (*p)
			*p++ = '\0';
	}
}

int text_next(struct text_file *tf, struct text_tokens *toks, struct text_error *err)
{
	int r = read_line(tf, err);
	if (r <= 0)
		return r;
	return tokenize(tf, toks, err);
}

int text_is_slug(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n >= max || !islower((unsigned char)s[0]))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) && s[i] != '-')
			return 0;
	return 1;
}

int text_parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
	if (!isdigit((unsigned char)s[0]) || strlen(s) > 10)
		return -1;
	for (const char *p = s; *p; p++)
		if (!isdigit((unsigned char)*p))
			return -1;
	unsigned long v = strtoul(s, NULL, 10);
	if (v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

const char *text_name(const char *const *names, size_t n, long i)
{
	return i >= 0 && (size_t)i < n && names[i] ? names[i] : "?";
}
