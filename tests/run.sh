#!/usr/bin/env bash
# Runs every test suite and ends with one line: "N passed, N failed".
# Suites print PASS/FAIL lines; a suite that dies without saying why counts as a failure.
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

passed=0
failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for entry in "${suites[@]}"; do
	name=${entry%%:*}
	cmd=${entry#*:}
	echo "=== $name"
	$cmd >"$log" 2>&1
	rc=$?
	grep -E '^(PASS|FAIL) ' "$log" | grep -v '^PASS ' || true
	p=$(grep -c '^PASS ' "$log")
	f=$(grep -c '^FAIL ' "$log")
	echo "    $p passed, $f failed (exit $rc)"
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "FAIL $name: exited $rc without a FAIL line; last output:"
		tail -n 15 "$log" | sed 's/^/    /'
		f=1
	fi
	passed=$((passed + p))
	failed=$((failed + f))
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
