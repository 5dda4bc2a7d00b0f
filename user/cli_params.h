/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The command line described as tables: one table per command of its options (name, value,
 * help, the field it sets), from which the getopt_long options, the parsing with its usage
 * errors, each command's --help and the main usage are produced. The man page
 * (scripts/manpage.sh) and the bash completion read those help texts, so neither can drift.
 */
#ifndef LYNCXDP_CLI_PARAMS_H
#define LYNCXDP_CLI_PARAMS_H

#include <stddef.h>
#include <stdio.h>

enum cli_kind {
	CLI_FLAG,   /* no value: stores .value in an int */
	CLI_STRING, /* stores the value (const char *) */
	CLI_CHOICE, /* one of .choices: stores its value in an int */
	CLI_PARSE,  /* .parse converts it; on failure the usage error is .bad */
};

enum cli_flags {
	CLI_REQUIRED = 1,    /* in the synopsis without brackets */
	CLI_OR_NEXT = 2,     /* in the synopsis: [--this | --next] */
	CLI_NO_SYNOPSIS = 4, /* the command's .args mentions it */
};

struct cli_choice {
	const char *name;
	int value;
};

struct cli_opt {
	const char *name; /* without the leading -- */
	const char *meta; /* its value in the option list ("FILE"); NULL: takes none */
	const char *help; /* one paragraph, wrapped when printed */
	enum cli_kind kind;
	size_t offset;			  /* the field of the command's values it sets */
	int value;			  /* CLI_FLAG */
	const struct cli_choice *choices; /* CLI_CHOICE: ends with { NULL } */
	int (*parse)(const char *arg, void *field, double max); /* CLI_PARSE: 0 or -1 */
	double max;	 /* CLI_PARSE: passed to parse, and to .bad's %g */
	const char *bad; /* CLI_PARSE: printf format of the usage error */
	unsigned flags;	 /* enum cli_flags */
};

/* One option of a table, by kind (off: offsetof the field it sets in the command's values). */
#define CLI_OPT_FLAG(n, off, val, fl, h)                                                           \
	{                                                                                          \
		.name = (n), .kind = CLI_FLAG, .offset = (off), .value = (val), .flags = (fl),     \
		.help = (h)                                                                        \
	}
#define CLI_OPT_STRING(n, m, off, fl, h)                                                           \
	{                                                                                          \
		.name = (n), .meta = (m), .kind = CLI_STRING, .offset = (off), .flags = (fl),      \
		.help = (h)                                                                        \
	}
#define CLI_OPT_CHOICE(n, m, off, ch, h)                                                           \
	{                                                                                          \
		.name = (n), .meta = (m), .kind = CLI_CHOICE, .offset = (off), .choices = (ch),    \
		.help = (h)                                                                        \
	}
#define CLI_OPT_PARSE(n, m, off, fn, mx, bad_, h)                                                  \
	{                                                                                          \
		.name = (n), .meta = (m), .kind = CLI_PARSE, .offset = (off), .parse = (fn),       \
		.max = (mx), .bad = (bad_), .help = (h)                                            \
	}

#define CLI_MAX_TABLES 5

struct cli_cmd {
	const char *name;
	/* Runs the command with what its options set; returns the exit code. */
	int (*run)(void *values);
	const char *args; /* positional arguments in the synopsis ("IFACE", "[IFACE]") */
	int args_first;	  /* the synopsis lists them before the options */
	int min_args;	  /* how many the command takes, else args_error */
	int max_args;
	const char *args_error;
	const char *summary; /* one line of the main usage */
	const char *text;    /* --help: what the command does, before the option list */
	const struct cli_opt *opts[CLI_MAX_TABLES]; /* each ends with { 0 } */
};

/* Parses argv (argv[0] the command's name) into values. Returns -1 with *first set to the
 * index of the first argument after the options (argv stays NULL-terminated), or the exit code: 0
 * after --help, 2 after a usage error (said on stderr in one line). */
int cli_parse(const struct cli_cmd *c, void *values, int argc, char **argv, int *first);

/* "lyncxdp CMD: WHAT (see `lyncxdp CMD --help`)" on stderr; returns 2. */
int cli_usage_error(const char *cmd, const char *what);

void cli_print_help(FILE *out, const struct cli_cmd *c);

/* The main usage: head, the commands' synopses and summaries, tail. */
void cli_print_usage(FILE *out, const char *head, const struct cli_cmd *cmds, size_t n,
		     const char *tail);

/* Converters for CLI_PARSE. */
int cli_parse_interval(const char *arg, void *field, double max); /* double, 0.1 to max */
int cli_parse_positive(const char *arg, void *field, double max); /* double, > 0 */
int cli_parse_count(const char *arg, void *field, double max);	  /* unsigned long, >= 1 */
int cli_parse_byte(const char *arg, void *field, double max);	  /* unsigned long 0..255, 0xNN */

#endif
