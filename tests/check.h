/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The smallest test harness that does the job: each CHECK prints one "PASS name" or
 * "FAIL name: why" line; tests/run.sh counts them. check_done() returns the exit code.
 */
#ifndef LYNCXDP_TESTS_CHECK_H
#define LYNCXDP_TESTS_CHECK_H

#include <stdarg.h>
#include <stdio.h>

static int check_passed, check_failed;

__attribute__((format(printf, 2, 3))) static inline int check_result(int ok, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs(ok ? "PASS " : "FAIL ", stdout);
	vprintf(fmt, ap);
	fputc('\n', stdout);
	va_end(ap);
	ok ? check_passed++ : check_failed++;
	return ok;
}

/* CHECK(cond, "name %d", ...): the name says what was checked. */
#define CHECK(cond, ...) check_result(!!(cond), __VA_ARGS__)

static inline int check_done(void)
{
	printf("%d passed, %d failed\n", check_passed, check_failed);
	return check_failed ? 1 : 0;
}

#endif
