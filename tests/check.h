/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The smallest test harness that does the job: each CHECK prints one "PASS name" or
 * "FAIL name: why" line, each SKIP one "SKIP name: why" line (a check that cannot run here:
 * never a silent pass); tests/run.sh counts them, and CI fails on a skip. check_done()
 * returns the exit code.
 */
#ifndef LYNCXDP_TESTS_CHECK_H
#define LYNCXDP_TESTS_CHECK_H

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int check_passed, check_failed, check_skipped;

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

/* SKIP("name: why", ...): a check that cannot run on this machine, and why. */
__attribute__((format(printf, 1, 2))) static inline void SKIP(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("SKIP ", stdout);
	vprintf(fmt, ap);
	fputc('\n', stdout);
	va_end(ap);
	check_skipped++;
}

static inline int check_done(void)
{
	if (check_skipped)
		printf("%d passed, %d failed, %d skipped\n", check_passed, check_failed,
		       check_skipped);
	else
		printf("%d passed, %d failed\n", check_passed, check_failed);
	return check_failed ? 1 : 0;
}

/* Tests read files relative to the repository top: go there, wherever they are run from. */
static inline void goto_repo_top(void)
{
	if (access("tests/check.h", R_OK) == 0)
		return;
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return;
	exe[n] = '\0';
	for (char *slash; (slash = strrchr(exe, '/')) != NULL;) {
		*slash = '\0';
		char probe[PATH_MAX + 32];
		snprintf(probe, sizeof(probe), "%s/tests/check.h", exe);
		if (exe[0] && access(probe, R_OK) == 0) {
			if (chdir(exe) != 0)
				perror("chdir");
			return;
		}
	}
}

#endif
