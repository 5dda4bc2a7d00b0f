#!/usr/bin/env bash
# The test harness itself: tests/run.sh counts PASS, FAIL and SKIP lines, says "N skipped" in the
# summary only when something skipped, fails a suite that dies without a FAIL line, and fails on
# any skip under LYNCXDP_SKIP_FAILS=1 (what CI sets). Runs run.sh on small suites of its own.
# shellcheck shell=bash
set -uo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ns_tmpdir lxharness
T=$NS_TMP
trap ns_cleanup EXIT
printf 'source %q\npass one\npass two\nsuite_done\n' "$TOP/tests/lib.sh" >"$T/ok.sh"
printf 'source %q\npass one\nskip "two: not here"\nsuite_done\n' "$TOP/tests/lib.sh" >"$T/skip.sh"
printf 'source %q\npass one\nfail "two: wrong"\nsuite_done\n' "$TOP/tests/lib.sh" >"$T/fail.sh"
printf 'echo PASS one\nexit 3\n' >"$T/dies.sh"

# run_harness SKIP_FAILS SUITE...: "EXIT|LAST LINE" of run.sh over those suites.
run_harness() {
	local strict=$1 list="" s out
	shift
	for s in "$@"; do list+="$s:bash $T/$s.sh"$'\n'; done
	out=$(LYNCXDP_SUITES=${list%$'\n'} LYNCXDP_SKIP_FAILS=$strict bash "$TOP/tests/run.sh" 2>&1)
	echo "$?|$(tail -n 1 <<<"$out")"
}
expect_eq "all pass: N passed, N failed, exit 0" "0|2 passed, 0 failed" "$(run_harness 0 ok)"
expect_eq "a skip: counted in the summary, exit 0 outside CI" "0|3 passed, 0 failed, 1 skipped" "$(run_harness 0 ok skip)"
expect_eq "a skip under LYNCXDP_SKIP_FAILS=1 (CI): exit 1" "1|3 passed, 0 failed, 1 skipped" "$(run_harness 1 ok skip)"
expect_eq "a failure: exit 1" "1|1 passed, 1 failed" "$(run_harness 0 fail)"
expect_eq "a suite that dies without a FAIL line counts as a failure" "1|1 passed, 1 failed" "$(run_harness 0 dies)"
expect_eq "the suite's own summary names its skips" "1 passed, 0 failed, 1 skipped" "$(bash "$T/skip.sh" | tail -n 1)"
suite_done
