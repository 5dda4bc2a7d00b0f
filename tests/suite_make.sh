#!/usr/bin/env bash
# The Makefile itself: `make help` lists every target the Makefile defines (and nothing it
# does not), every .PHONY name has a rule, `make format`/`format-check` cover every C file
# (tests/fuzz and tests/bench included), and the BPF target architecture (__TARGET_ARCH_*)
# follows `uname -m` (checked with a stand-in uname on PATH for x86_64, aarch64 and ppc64le).
# Nothing is built: `make -n` only.
# shellcheck shell=bash
set -uo pipefail
# shellcheck source=tests/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$TOP" || exit 1

ns_tmpdir lxmake
T=$NS_TMP
ns_traps

# ---- make help ----
help=$(make --no-print-directory help 2>&1)
rc=$?
expect_eq "make help exits 0" 0 "$rc"
targets=$(grep -oE '^[a-z][a-z0-9-]*:' Makefile | grep -v ':=' | tr -d ':' | sort -u)
listed=$(printf '%s\n' "$help" | sed -n 's/^make \([a-z][a-z0-9-]*\) .*/\1/p' | sort -u)
check "the Makefile defines targets ($(echo "$targets" | wc -l))" test -n "$targets"
missing=$(comm -23 <(echo "$targets") <(echo "$listed") | tr '\n' ' ')
expect_eq "make help lists every target of the Makefile" "" "$missing"
stale=$(comm -13 <(echo "$targets") <(echo "$listed") | tr '\n' ' ')
expect_eq "make help lists no target the Makefile lacks" "" "$stale"
empty=$(printf '%s\n' "$help" | grep -E '^make [a-z][a-z0-9-]* *$' | tr '\n' ' ')
expect_eq "every target in make help says what it does" "" "$empty"
phony=$(sed -n 's/^\.PHONY: *//p' Makefile | tr ' ' '\n' | grep . | sort -u)
norule=$(comm -23 <(echo "$phony") <(echo "$targets") | tr '\n' ' ')
expect_eq "every .PHONY name has a rule" "" "$norule"

# ---- format and format-check cover every C file ----
for t in format format-check; do
	cmd=$(make --no-print-directory -n $t 2>&1)
	left=""
	for f in bpf/*.[ch] user/*.[ch] tests/*.[ch] tests/fuzz/*.[ch] tests/bench/*.[ch]; do
		[ -e "$f" ] || continue
		[[ " $cmd " == *" $f "* ]] || left+="$f "
	done
	expect_eq "make $t covers every C file (tests/fuzz and tests/bench too)" "" "$left"
done

# ---- the BPF target architecture follows uname -m ----
mkdir -p "$T/bin"
bpf_line() { # bpf_line [UNAME_M]: the BPF compile command, with uname -m answering UNAME_M
	if [ -n "${1:-}" ]; then
		printf '#!/bin/sh\n[ "$1" = -m ] && echo %s && exit 0\nexec /usr/bin/uname "$@"\n' "$1" \
			>"$T/bin/uname"
		chmod +x "$T/bin/uname"
		PATH="$T/bin:$PATH" make --no-print-directory -n -B BUILD="$T/b" "$T/b/lyncxdp.bpf.o"
	else
		make --no-print-directory -n -B BUILD="$T/b" "$T/b/lyncxdp.bpf.o"
	fi 2>&1 | grep -- '-target bpf'
}
case $(uname -m) in
x86_64) here=x86 ;;
aarch64) here=arm64 ;;
*) here=$(uname -m) ;;
esac
line=$(bpf_line)
check "BPF objects build for this machine's uname -m ($(uname -m): __TARGET_ARCH_$here)" \
	grep -q -- "-D__TARGET_ARCH_$here " <<<"$line"
for pair in x86_64:x86 aarch64:arm64 ppc64le:powerpc; do
	line=$(bpf_line "${pair%%:*}")
	check "uname -m ${pair%%:*}: -D__TARGET_ARCH_${pair#*:}, no other" \
		bash -c '[[ "$1" == *"-D__TARGET_ARCH_$2 "* ]] && [ "$(grep -o __TARGET_ARCH_ <<<"$1" | wc -l)" -eq 1 ]' _ "$line" "${pair#*:}"
done

suite_done
