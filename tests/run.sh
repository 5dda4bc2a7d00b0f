#!/usr/bin/env bash
# Runs every test suite and ends with one line: "N passed, N failed", or
# "N passed, N failed, N skipped" when a check could not run here.
# Suites print PASS/FAIL/SKIP lines ("SKIP name: why"); a suite that dies without saying why
# counts as a failure. Skips are listed and exit 0, unless LYNCXDP_SKIP_FAILS=1 (CI): then any
# skip fails the run, so CI never passes a check that did not run.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export LYNCXDP=${LYNCXDP:-$PWD/$BUILD/lyncxdp} # the shell suites run this build's binary

suites=(
	"parsers:$BUILD/test_parsers"
	"parsers (ASan/UBSan):$BUILD/san/test_parsers"
	"datapath:$BUILD/test_datapath"
	"datapath (ASan/UBSan):$BUILD/san/test_datapath"
	"policy:$BUILD/test_policy"
	"policy (ASan/UBSan):$BUILD/san/test_policy"
	"differential:$BUILD/test_differential"
	"differential (ASan/UBSan):$BUILD/san/test_differential"
	"fuzz regressions:$BUILD/test_fuzz_regress"
	"fuzz regressions (ASan/UBSan):$BUILD/san/test_fuzz_regress"
	"media:$BUILD/test_media"
	"media (ASan/UBSan):$BUILD/san/test_media"
)
for s in tests/suite_*.sh; do
	[ -e "$s" ] && suites+=("$(basename "$s" .sh | sed 's/^suite_//'):bash $s")
done
# LYNCXDP_SUITES: "name:command" lines that replace the list (tests/suite_harness.sh runs this
# script on suites of its own to check the counting).
[ -n "${LYNCXDP_SUITES:-}" ] && mapfile -t suites <<<"$LYNCXDP_SUITES"

passed=0
failed=0
skipped=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for entry in "${suites[@]}"; do
	name=${entry%%:*}
	cmd=${entry#*:}
	echo "=== $name"
	$cmd >"$log" 2>&1
	rc=$?
	grep -E '^(PASS|FAIL|SKIP) ' "$log" | grep -v '^PASS ' || true
	p=$(grep -c '^PASS ' "$log")
	f=$(grep -c '^FAIL ' "$log")
	s=$(grep -c '^SKIP ' "$log")
	echo "    $p passed, $f failed$([ "$s" -eq 0 ] || echo ", $s skipped") (exit $rc)"
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "FAIL $name: exited $rc without a FAIL line; last output:"
		tail -n 15 "$log" | sed 's/^/    /'
		f=1
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	skipped=$((skipped + s))
done
if [ "$skipped" -eq 0 ]; then
	echo "$passed passed, $failed failed"
else
	echo "$passed passed, $failed failed, $skipped skipped"
fi
[ "$failed" -eq 0 ] && { [ "$skipped" -eq 0 ] || [ "${LYNCXDP_SKIP_FAILS:-0}" != 1 ]; }
