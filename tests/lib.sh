# Shared by the shell test suites: results, network namespaces, cleanup.
# Source it; every suite prints PASS/FAIL lines that tests/run.sh counts.
# shellcheck shell=bash

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LYNCXDP=${LYNCXDP:-$TOP/build/lyncxdp}
MAPS=$TOP/maps
PY=/usr/bin/python3
suite_passed=0
suite_failed=0

pass() { echo "PASS $*"; suite_passed=$((suite_passed + 1)); }
fail() { echo "FAIL $*"; suite_failed=$((suite_failed + 1)); }

# check NAME CMD...: passes when CMD exits 0.
check() {
	local name=$1
	shift
	if "$@" >/tmp/lyncxdp-check.$$ 2>&1; then
		pass "$name"
	else
		fail "$name: $(tail -n 3 /tmp/lyncxdp-check.$$ | tr '\n' ' ')"
	fi
	rm -f /tmp/lyncxdp-check.$$
}

# expect_eq NAME EXPECTED ACTUAL
expect_eq() {
	if [ "$2" = "$3" ]; then pass "$1"; else fail "$1: expected '$2', got '$3'"; fi
}

suite_done() {
	echo "$suite_passed passed, $suite_failed failed"
	[ "$suite_failed" -eq 0 ]
}

# shellcheck source=../scripts/netns.sh
source "$TOP/scripts/netns.sh"

# json_get 'EXPR' < json: evaluate a Python expression on the parsed object `j`.
json_get() {
	$PY -c 'import json,sys; j=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"
}
