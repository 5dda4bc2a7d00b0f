// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Option tables to getopt_long, usage errors, --help and the main usage (see cli_params.h). */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli_params.h"
#include "text.h"

#define CLI_MAX_OPTS   32
#define WIDTH	       92 /* help lines wrap before this column */
#define SUMMARY_COLUMN 21 /* the main usage's one-line summaries */

int cli_usage_error(const char *cmd, const char *what)
{
	fprintf(stderr, "lyncxdp %s: %s (see `lyncxdp %s --help`)\n", cmd, what, cmd);
	return 2;
}

/* Every option of the command, its tables in order. */
static size_t collect(const struct cli_cmd *c, const struct cli_opt **all)
{
	size_t n = 0;
	for (int t = 0; t < CLI_MAX_TABLES && c->opts[t]; t++)
		for (const struct cli_opt *o = c->opts[t]; o->name && n < CLI_MAX_OPTS; o++)
			all[n++] = o;
	return n;
}

/* "--side is route, protected or unprotected" */
static void choice_error(const struct cli_opt *o, char *buf, size_t len)
{
	size_t used = (size_t)snprintf(buf, len, "--%s is ", o->name);
	for (const struct cli_choice *ch = o->choices; ch->name && used < len; ch++) {
		const char *sep = ch == o->choices ? "" : ch[1].name ? ", " : " or ";
		used += (size_t)snprintf(buf + used, len - used, "%s%s", sep, ch->name);
	}
}

/* Stores the option's value in its field: 0, or -1 with the usage error in why. */
static int apply(const struct cli_opt *o, void *values, const char *arg, char *why, size_t len)
{
	void *field = (char *)values + o->offset;
	switch (o->kind) {
	case CLI_FLAG:
		*(int *)field = o->value;
		return 0;
	case CLI_STRING:
		*(const char **)field = arg;
		return 0;
	case CLI_CHOICE:
		for (const struct cli_choice *ch = o->choices; ch->name; ch++)
			if (!strcmp(arg, ch->name)) {
				*(int *)field = ch->value;
				return 0;
			}
		choice_error(o, why, len);
		return -1;
	case CLI_PARSE:
		if (o->parse(arg, field, o->max) == 0)
			return 0;
		snprintf(why, len, o->bad, o->max);
		return -1;
	}
	return -1;
}

int cli_parse(const struct cli_cmd *c, void *values, int argc, char **argv, int *first)
{
	const struct cli_opt *all[CLI_MAX_OPTS];
	struct option longopts[CLI_MAX_OPTS + 2];
	size_t n = collect(c, all);
	for (size_t i = 0; i < n; i++)
		longopts[i] =
		    (struct option){ all[i]->name, all[i]->meta ? required_argument : no_argument,
				     NULL, 256 + (int)i };
	longopts[n] = (struct option){ "help", no_argument, NULL, 'h' };
	longopts[n + 1] = (struct option){ 0 };
	char why[160];
	int opt;
	optind = 0; /* getopt starts over: a command may run another's parse */
	opterr = 0; /* said here, in one line */
	while ((opt = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
		if (opt == 'h') {
			cli_print_help(stdout, c);
			return 0;
		}
		if (opt < 256) { /* '?' unknown, ':' without its value */
			const char *arg = argv[optind - 1];
			if (opt == ':')
				snprintf(why, sizeof(why), "option '%s' needs a value", arg);
			else
				snprintf(why, sizeof(why), "unknown option '%s'", arg);
			return cli_usage_error(c->name, why);
		}
		if (apply(all[opt - 256], values, optarg, why, sizeof(why)) < 0)
			return cli_usage_error(c->name, why);
	}
	int nargs = argc - optind;
	if (nargs < c->min_args || nargs > c->max_args)
		return cli_usage_error(c->name, c->args_error);
	*first = optind;
	return -1;
}

/* ---- help ---- */

/* Writes the words of text from column col, wrapping before WIDTH to column indent. A word
 * starting with '-' stays on the line of the word before it: a continuation line never
 * starts like an option (the man page reads such a line as one). */
static size_t put_wrapped(FILE *out, const char *text, size_t col, size_t indent)
{
	const char *p = text;
	int first = 1;
	while (*p) {
		size_t len = strcspn(p, " "), unit = len;
		const char *next = p + len + strspn(p + len, " ");
		if (*next == '-')
			unit += 1 + strcspn(next, " ");
		if (!first && *p != '-' && col + 1 + unit >= WIDTH) {
			fprintf(out, "\n%*s", (int)indent, "");
			col = indent;
		} else if (!first) {
			fputc(' ', out);
			col++;
		}
		fwrite(p, 1, len, out);
		col += len;
		first = 0;
		p = next;
	}
	return col;
}

/* "--name VALUE": choices spelled out (a|b) in the synopsis, the meta name in the list. */
static void opt_text(const struct cli_opt *o, int choices, char *buf, size_t len)
{
	size_t used = (size_t)snprintf(buf, len, "--%s", o->name);
	if (choices && o->kind == CLI_CHOICE) {
		for (const struct cli_choice *ch = o->choices; ch->name && used < len; ch++)
			used += (size_t)snprintf(buf + used, len - used, "%s%s",
						 ch == o->choices ? " " : "|", ch->name);
	} else if (o->meta) {
		snprintf(buf + used, len - used, " %s", o->meta);
	}
}

/* The synopsis after "lyncxdp CMD ", wrapped to indent; returns the column it ends at. */
static size_t put_synopsis(FILE *out, const struct cli_cmd *c, size_t col, size_t indent)
{
	const struct cli_opt *all[CLI_MAX_OPTS];
	size_t n = collect(c, all);
	char items[CLI_MAX_OPTS + 2][160];
	size_t k = 0;
	if (c->args && c->args_first)
		text_copy(items[k++], sizeof(items[0]), c->args);
	for (size_t i = 0; i < n; i++) {
		if (all[i]->flags & CLI_NO_SYNOPSIS)
			continue;
		char one[80];
		size_t used = 0, len = sizeof(items[0]);
		char *item = items[k++];
		int required = all[i]->flags & CLI_REQUIRED;
		if (!required)
			used += (size_t)snprintf(item, len, "[");
		for (;; i++) {
			opt_text(all[i], 1, one, sizeof(one));
			used += (size_t)snprintf(item + used, len - used, "%s", one);
			if (!(all[i]->flags & CLI_OR_NEXT) || i + 1 >= n)
				break;
			used += (size_t)snprintf(item + used, len - used, " | ");
		}
		if (!required)
			snprintf(item + used, len - used, "]");
	}
	if (c->args && !c->args_first)
		text_copy(items[k++], sizeof(items[0]), c->args);
	for (size_t i = 0; i < k; i++) {
		size_t len = strlen(items[i]);
		if (i && col + 1 + len >= WIDTH) {
			fprintf(out, "\n%*s", (int)indent, "");
			col = indent;
		} else if (i) {
			fputc(' ', out);
			col++;
		}
		fputs(items[i], out);
		col += len;
	}
	return col;
}

void cli_print_help(FILE *out, const struct cli_cmd *c)
{
	const struct cli_opt *all[CLI_MAX_OPTS];
	size_t n = collect(c, all), width = 0;
	char text[80];
	int col = fprintf(out, "Usage: lyncxdp %s ", c->name);
	put_synopsis(out, c, (size_t)col, (size_t)col);
	fprintf(out, "\n\n%s", c->text);
	for (size_t i = 0; i < n; i++) {
		opt_text(all[i], 0, text, sizeof(text));
		if (strlen(text) > width)
			width = strlen(text);
	}
	for (size_t i = 0; i < n; i++) {
		opt_text(all[i], 0, text, sizeof(text));
		fprintf(out, "  %-*s  ", (int)width, text);
		put_wrapped(out, all[i]->help, width + 4, width + 4);
		fputc('\n', out);
	}
}

void cli_print_usage(FILE *out, const char *head, const struct cli_cmd *cmds, size_t n,
		     const char *tail)
{
	fputs(head, out);
	for (size_t i = 0; i < n; i++) {
		int col = fprintf(out, "  %s ", cmds[i].name);
		size_t end = put_synopsis(out, &cmds[i], (size_t)col, (size_t)col);
		if (end + 2 <= SUMMARY_COLUMN)
			fprintf(out, "%*s", (int)(SUMMARY_COLUMN - end), "");
		else
			fprintf(out, "\n%*s", SUMMARY_COLUMN, "");
		fprintf(out, "%s\n", cmds[i].summary);
	}
	fputs(tail, out);
}

/* ---- converters ---- */

int cli_parse_interval(const char *arg, void *field, double max)
{
	char *end;
	double v = strtod(arg, &end);
	if (*end || !(v >= 0.1 && v <= max))
		return -1;
	*(double *)field = v;
	return 0;
}

int cli_parse_positive(const char *arg, void *field, double max)
{
	char *end;
	double v = strtod(arg, &end);
	(void)max;
	if (*end || !(v > 0))
		return -1;
	*(double *)field = v;
	return 0;
}

int cli_parse_count(const char *arg, void *field, double max)
{
	(void)max;
	return text_parse_uint(arg, 1, 1000000000UL, field);
}

int cli_parse_byte(const char *arg, void *field, double max)
{
	unsigned long *out = field;
	(void)max;
	if (arg[0] == '0' && (arg[1] == 'x' || arg[1] == 'X')) {
		const char *h = arg + 2;
		if (!*h || strlen(h) > 2 || strspn(h, "0123456789abcdefABCDEF") != strlen(h))
			return -1;
		*out = strtoul(h, NULL, 16);
		return 0;
	}
	return text_parse_uint(arg, 0, 255, out);
}
