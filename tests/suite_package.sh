#!/usr/bin/env bash
# The Debian package: `make deb` (scripts/deb/build.sh) builds it; lintian passes it;
# dpkg installs it into a scratch root whose status database holds the host's entries for the
# package's dependencies (so dpkg checks Depends, computed by dpkg-shlibdeps, against real
# versions); the installed files are mounted over the host's (private mount namespace, read-only
# overlays) to run `lyncxdp --version`, `lyncxdp check --site /usr/share/lyncxdp/site.example`,
# `man`, `systemd-analyze verify` and the bash completion; purge leaves nothing behind.
# Drift: every command and option the program accepts (probed as nobody, so nothing runs) must be
# in its --help, the man page and the completion; a doctored help proves the check can fail.
# Usage: bash tests/suite_package.sh     (root; DEB=FILE tests an already built package)
# shellcheck shell=bash
set -uo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ns_tmpdir lxpkg
T=$NS_TMP
chmod 755 "$T" # nobody runs the installed binary from here (drift probes)
trap ns_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP
started=$SECONDS
NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups)

for tool in dpkg-deb dpkg-shlibdeps lintian man systemd-analyze setpriv; do
	command -v "$tool" >/dev/null || fail "$tool is not installed (scripts/install-deps.sh installs it)"
done
[ "$suite_failed" -eq 0 ] || { suite_done; exit; }

# ---- build ----
version=$(make -s --no-print-directory -C "$TOP" print-version)
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
if [ -n "${DEB:-}" ]; then
	deb=$DEB
else
	out=$(make -s --no-print-directory -C "$TOP" deb DEBDIR="$T" 2>"$T/build.err" | grep -v '^install-deps')
	expect_eq "make deb exits 0 and names the package" "0 $T/lyncxdp_${version}_${arch}.deb" "$? $out"
	deb=$T/lyncxdp_${version}_${arch}.deb
fi
if [ ! -f "$deb" ]; then
	fail "no package $deb: $(tail -n 5 "$T/build.err" 2>/dev/null | tr '\n' ' ')"
	suite_done
	exit
fi
expect_eq "package name, version and architecture" "lyncxdp $version $arch" \
	"$(dpkg-deb -f "$deb" Package Version Architecture | awk -F': ' '{printf "%s%s", (NR > 1 ? " " : ""), $2}')"
expect_eq "changelog's version is the Makefile's" "$version" \
	"$(dpkg-parsechangelog -l "$TOP/scripts/deb/changelog" -S Version)"

# ---- lintian: nothing, at every level, but the overrides explained in scripts/deb ----
lint=$(lintian --pedantic -I --fail-on error,warning,info,pedantic "$deb" 2>/dev/null)
expect_eq "lintian --pedantic -I: no tag (exit 0)" "0 " "$? $(echo "$lint" | tr '\n' ' ' | sed 's/ $//')"
overrides=$(dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/share/lintian/overrides/lyncxdp)
expect_eq "every lintian override has its reason in a comment above it" "0" \
	"$(awk '/^lyncxdp:/ && prev !~ /^(#|lyncxdp:)/ { n++ } { prev = $0 } END { print n + 0 }' <<<"$overrides")"

# ---- Depends: computed by dpkg-shlibdeps, and naming the libraries it links ----
depends=$(dpkg-deb -f "$deb" Depends)
for lib in libbpf1 libelf1 zlib1g libpcap0.8 libmicrohttpd12 libc6; do
	check "Depends names $lib" grep -Eq "(^|, )$lib( |,|$)" <<<"$depends"
done
mkdir -p "$T/x/debian" "$T/unpacked"
dpkg-deb -x "$deb" "$T/unpacked"
cp "$TOP/scripts/deb/control" "$T/x/debian/"
shlibs=$(cd "$T/x" && dpkg-shlibdeps -O "$T/unpacked/usr/sbin/lyncxdp" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
expect_eq "Depends is exactly what dpkg-shlibdeps computes from the packaged binary" "$shlibs" "$depends"

# ---- contents ----
contents=$(dpkg-deb -c "$deb" | awk '{print $1, $NF}')
for f in -rwxr-xr-x:./usr/sbin/lyncxdp -rwxr-xr-x:./usr/lib/lyncxdp/lyncxdp-service \
	-rw-r--r--:./usr/share/lyncxdp/site.example \
	$(cd "$TOP/maps" && for m in *.matrix; do echo "-rw-r--r--:./usr/share/lyncxdp/maps/$m"; done) \
	-rw-r--r--:./usr/share/lyncxdp/maps/qos.profiles \
	-rw-r--r--:./usr/share/lyncxdp/prometheus/lyncxdp-rules.yml \
	-rw-r--r--:./usr/share/lyncxdp/grafana/lyncxdp-dashboard.json \
	-rw-r--r--:./lib/systemd/system/lyncxdp.service -rw-r--r--:./lib/systemd/system/lyncxdp-exporter.service \
	-rw-r--r--:./etc/lyncxdp/lyncxdp.conf.example -rw-r--r--:./usr/share/doc/lyncxdp/copyright \
	-rw-r--r--:./usr/share/doc/lyncxdp/changelog.gz -rw-r--r--:./usr/share/doc/lyncxdp/README.md \
	-rw-r--r--:./usr/share/man/man8/lyncxdp.8.gz \
	-rw-r--r--:./usr/share/bash-completion/completions/lyncxdp; do
	check "package holds ${f#*:} (${f%%:*})" grep -qxF -- "${f%%:*} ${f#*:}" <<<"$contents"
done
check "no file under /usr/local" bash -c '! grep -q " ./usr/local" <<<"$1"' _ "$contents"
check "the configuration example is a conffile" grep -qx /etc/lyncxdp/lyncxdp.conf.example \
	<(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)
check "no installed file names /usr/local (units, wrapper, example)" \
	bash -c '! grep -rl /usr/local "$1/lib" "$1/etc" "$1/usr/lib/lyncxdp"' _ "$T/unpacked"
check "the packaged binary is stripped (no symbol table, no debug sections)" \
	bash -c '! readelf -S "$1" | grep -qE "\.symtab|\.debug"' _ "$T/unpacked/usr/sbin/lyncxdp"

# ---- install into a scratch root ----
R=$T/root
mkdir -p "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates"
: >"$R/var/lib/dpkg/available"
# The host's status entries of the dependencies: dpkg checks Depends against them.
for p in $(sed 's/([^)]*)//g; s/|/,/g' <<<"$depends" | tr ',' '\n' | awk '{print $1}'); do
	dpkg-query -s "$p" 2>/dev/null || fail "dependency $p is not installed on this machine"
	echo
done >"$R/var/lib/dpkg/status"
# --path-include: a host whose dpkg.cfg.d excludes docs or man pages (container images) must
# still install every file here.
DPKG=(dpkg --root="$R" --force-script-chrootless --log="$T/dpkg.log" --path-include='*')
out=$("${DPKG[@]}" -i "$deb" 2>&1)
expect_eq "dpkg -i into the scratch root: exit 0, dependencies satisfied" 0 "$?"
grep -qi 'dependency problems' <<<"$out" && fail "dpkg -i: $(tr '\n' ' ' <<<"$out")"
expect_eq "dpkg: lyncxdp is installed" "install ok installed" "$(dpkg --root="$R" -s lyncxdp 2>/dev/null | sed -n 's/^Status: //p')"

# in_root CMD...: CMD with the installed files over the host's /usr, /etc and units (read-only
# overlays in a private mount namespace), PATH as a login shell has it.
in_root() {
	# shellcheck disable=SC2016
	unshare -m --propagation private bash -c '
		mount -t overlay lx-usr -o "lowerdir=$1/usr:/usr" /usr &&
		mount -t overlay lx-units -o "lowerdir=$1/lib/systemd/system:/usr/lib/systemd/system" /usr/lib/systemd/system &&
		mount -t overlay lx-etc -o "lowerdir=$1/etc:/etc" /etc || exit 99
		shift; export PATH=/usr/sbin:/usr/bin:/sbin:/bin; exec "$@"' _ "$R" "$@"
}

out=$(in_root lyncxdp --version 2>&1)
expect_eq "installed: lyncxdp --version" "lyncxdp $version" "$out"
out=$(in_root lyncxdp check --site /usr/share/lyncxdp/site.example 2>&1)
rc=$?
expect_eq "installed: lyncxdp check --site /usr/share/lyncxdp/site.example exits 0" 0 "$rc"
check "installed: check finds the packaged matrix (/usr/share/lyncxdp/maps)" \
	grep -q '^/usr/sbin/../share/lyncxdp/maps/sfb2015.matrix: sfb2015' <<<"$out"
for p in $(cd "$TOP/maps" && ls -- *.matrix | sed 's/\.matrix$//') sfb2015,teams; do
	check "installed: check --product $p" in_root lyncxdp check --product "$p" --site /usr/share/lyncxdp/site.example
done

# man: the installed page renders without a warning, `man lyncxdp` finds it, it holds every section.
page=$(in_root man --warnings -l /usr/share/man/man8/lyncxdp.8.gz 2>"$T/man.err" | col -b)
expect_eq "man -l lyncxdp.8.gz: renders without warnings" "0 " "$? $(cat "$T/man.err")"
expect_eq "man -w lyncxdp finds the installed page" /usr/share/man/man8/lyncxdp.8.gz "$(in_root man -w lyncxdp 2>&1)"
for s in NAME SYNOPSIS DESCRIPTION COMMANDS "FILE FORMATS" "EXIT STATUS" ENVIRONMENT FILES EXAMPLES "SEE ALSO"; do
	check "man page has a $s section" grep -qx "$s" <<<"$page"
done
for w in /sys/fs/bpf/lyncxdp /etc/lyncxdp/lyncxdp.conf /usr/share/lyncxdp/site.example "Port matrix" "Site file"; do
	check "man page mentions $w" grep -qF "$w" <<<"$page"
done

# systemd-analyze verify of the installed units (it checks that ExecStart's binaries exist).
for u in lyncxdp.service lyncxdp-exporter.service; do
	out=$(in_root systemd-analyze verify "/lib/systemd/system/$u" 2>&1)
	rc=$?
	if [ "$rc" -ne 0 ] && grep -qiE 'system has not been booted|failed to connect' <<<"$out"; then
		skip "systemd-analyze verify $u: does not work here ($out)"
	else
		expect_eq "installed: systemd-analyze verify $u: exit 0, no warning" "0 " "$rc $(tr '\n' ' ' <<<"$out" | sed 's/ $//')"
	fi
	check "installed $u runs the packaged files" \
		bash -c '! grep -n "/usr/local" "$1" && grep -Eq "^ExecStart=/usr/(lib/lyncxdp/lyncxdp-service|sbin/lyncxdp) " "$1"' \
		_ "$R/lib/systemd/system/$u"
done

# ---- drift: commands and options the program accepts vs. its help, the man page, completion ----
# The commands the program dispatches (its command table) must all be in the main help.
# (Its entries start { "NAME", cmd_NAME, ...; clang-format may break them over lines.)
table=$(tr '\n' ' ' <"$TOP/user/lyncxdp.c" | grep -oE '\{[[:space:]]*"[a-z][a-z-]*",[[:space:]]*cmd_[a-z_]+' | cut -d'"' -f2 | sort)
cp "$T/unpacked/usr/sbin/lyncxdp" "$T/lyncxdp"
LX=$T/lyncxdp # the packaged binary, readable by nobody
listed=$("$LX" --help | sed -n '/^Commands:/,/^$/p' | grep -Eo '^  [a-z][a-z-]*' | tr -d ' ' | sort)
expect_eq "every command of the program's table is in lyncxdp --help" "$(echo $table)" "$(echo $listed)"
# The options each command accepts, probed as nobody (each one alone: parsing comes before
# anything runs, and nobody cannot attach anything). Candidates: every long option name in
# user/*.c (getopt tables and the CLI's option tables) and every --word of any help text.
# ACCEPTED[CMD] = " --a --b ...".
candidates=$({
	grep -ohE '"[a-z][a-z0-9-]*", *(no|required|optional)_argument' "$TOP"/user/*.c | cut -d'"' -f2
	tr '\n' ' ' <"$TOP/user/lyncxdp.c" | grep -oE 'CLI_OPT_[A-Z]+\([[:space:]]*"[a-z][a-z0-9-]*"' | cut -d'"' -f2
	for c in "" $table; do "$LX" $c --help; done | grep -Eo -- '--[a-z][a-z0-9-]*' | sed 's/^--//'
} | sort -u | grep -vx help)
declare -A ACCEPTED
n=0
for c in $table; do
	for o in $candidates; do
		out=$("${NOBODY[@]}" timeout 10 "$LX" "$c" "--$o" 2>&1 </dev/null)
		grep -qF "unknown option '--$o'" <<<"$out" || ACCEPTED[$c]+=" --$o"
	done
	# getopt_long takes a unique prefix of an option: a candidate that is only a prefix of an
	# accepted option (--tag of a --tags) is that option, not one of its own.
	kept=""
	for o in ${ACCEPTED[$c]:-}; do
		for o2 in ${ACCEPTED[$c]}; do [ "$o2" != "$o" ] && [[ $o2 == "$o"* ]] && continue 2; done
		kept+=" $o"
	done
	ACCEPTED[$c]=$kept
	n=$((n + $(wc -w <<<"$kept")))
done
check "drift: the probe found options to check ($n in ${#ACCEPTED[@]} commands)" test "$n" -ge 20

# drift LX MANPAGE: prints "CMD --opt: not in its --help / the man page / completed" for each gap.
drift() {
	local lx=$1 man=$2 c o help sect comp
	for c in $table; do
		help=$("$lx" "$c" --help 2>&1)
		# The man page's section for c: from its .SS line to the next .SS/.SH.
		sect=$(awk -v c="lyncxdp $c" '/^\.S[SH] / { on = ($0 == ".SS \"" c "\""); next } on' "$man" | sed 's/\\-/-/g')
		# shellcheck disable=SC2016
		comp=$(bash -c 'source "$1"; COMP_WORDS=("$2" "$3" --); COMP_CWORD=2; _lyncxdp; printf "%s\n" "${COMPREPLY[@]}"' \
			_ "$COMPLETION" "$lx" "$c")
		[ -n "$sect" ] || echo "$c: no section in the man page"
		for o in ${ACCEPTED[$c]:-}; do
			grep -qE -- "$o([^a-z0-9-]|$)" <<<"$help" || echo "$c $o: not in its --help"
			grep -qE -- "$o([^a-z0-9-]|$)" <<<"$sect" || echo "$c $o: not in the man page"
			grep -qx -- "$o" <<<"$comp" || echo "$c $o: not completed"
		done
	done
}
COMPLETION=$T/unpacked/usr/share/bash-completion/completions/lyncxdp
zcat "$T/unpacked/usr/share/man/man8/lyncxdp.8.gz" >"$T/lyncxdp.8"
gaps=$(drift "$LX" "$T/lyncxdp.8")
expect_eq "drift: every option every command accepts is in its --help, the man page and completion" "" "$gaps"
# The check can fail: a build whose `stats --help` forgets --prometheus (man page and completion
# generated from it, as the real ones are).
cat >"$T/forgetful" <<EOS
#!/bin/bash
if [ "\$1 \$2" = "stats --help" ]; then "$LX" stats --help | sed 's/--prometheus//g'; else exec "$LX" "\$@"; fi
EOS
chmod 755 "$T/forgetful"
bash "$TOP/scripts/manpage.sh" "$T/forgetful" >"$T/forgetful.8"
gaps=$(drift "$T/forgetful" "$T/forgetful.8" | grep '^stats' | sort | tr '\n' '|')
expect_eq "drift: an option missing from stats --help is caught in help, man page and completion" \
	"stats --prometheus: not completed|stats --prometheus: not in its --help|stats --prometheus: not in the man page|" "$gaps"

# ---- completion, as an operator's shell uses it (installed file, installed binary) ----
# complete WORDS...: the completion of the last word (empty = a new word).
complete_words() {
	in_root bash -c 'source /usr/share/bash-completion/completions/lyncxdp
		COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _lyncxdp
		[ ${#COMPREPLY[@]} -eq 0 ] || printf "%s\n" "${COMPREPLY[@]}" | sort | tr "\n" " "' _ "$@"
}
commands=$(echo $(printf '%s\n' $listed --help --version | sort))
expect_eq "completion: commands" "$commands" "$(complete_words lyncxdp '' | sed 's/ $//')"
expect_eq "completion: a command's prefix" "stats status " "$(complete_words lyncxdp sta)"
# Every product the package ships (a matrix in /usr/share/lyncxdp/maps), no other word.
products=$(cd "$T/unpacked/usr/share/lyncxdp/maps" && ls -- *.matrix | sed 's/\.matrix$//' | sort | tr '\n' ' ')
expect_eq "completion: --product offers every shipped product" "$products" "$(complete_words lyncxdp attach --product '')"
expect_eq "completion: --product a,b completes the item after the comma" "sfb2015,lync2010 sfb2015,lync2013 " \
	"$(complete_words lyncxdp replay --product sfb2015,lync)"
expect_eq "completion: --policy values" "enforce monitor " "$(complete_words lyncxdp set eth0 --policy '')"
expect_eq "completion: explain --policy values (from the main help)" "enforce monitor " "$(complete_words lyncxdp explain --policy '')"
expect_eq "completion: --mode values" "generic native " "$(complete_words lyncxdp attach lo --mode '')"
check "completion: attach IFACE offers interface names (lo)" grep -qw lo <<<"$(complete_words lyncxdp attach '')"
check "completion: detach offers interface names (lo)" grep -qw lo <<<"$(complete_words lyncxdp detach l)"
expect_eq "completion: --site FILE completes files" "/usr/share/lyncxdp/site.example " \
	"$(complete_words lyncxdp check --site /usr/share/lyncxdp/site.e)"
expect_eq "completion: --matrix FILE completes files" "/usr/share/lyncxdp/maps/sfb2015.matrix " \
	"$(complete_words lyncxdp attach --matrix /usr/share/lyncxdp/maps/sfb)"
mkdir "$T/caps" && : >"$T/caps/only.pcap"
expect_eq "completion: replay's capture FILE completes files" "$T/caps/only.pcap " \
	"$(complete_words lyncxdp replay --site x "$T/caps/on")"
expect_eq "completion: explain PROTO" "tcp udp " "$(complete_words lyncxdp explain --site x '')"
expect_eq "completion: no values offered for --listen" "" "$(complete_words lyncxdp exporter --listen '')"

# ---- remove, then purge: nothing left but dpkg's own database ----
out=$("${DPKG[@]}" -r lyncxdp 2>&1)
expect_eq "dpkg -r: exit 0" 0 "$?"
check "after remove, the conffile stays" test -f "$R/etc/lyncxdp/lyncxdp.conf.example"
check "after remove, the binary is gone" test ! -e "$R/usr/sbin/lyncxdp"
out=$("${DPKG[@]}" -P lyncxdp 2>&1)
expect_eq "dpkg -P: exit 0" 0 "$?"
left=$(cd "$R" && find . -mindepth 1 ! -path ./var ! -path ./var/lib ! -path './var/lib/dpkg*' | sort | tr '\n' ' ')
expect_eq "purge leaves nothing outside dpkg's database" "" "$left"
expect_eq "purge leaves no lyncxdp entry in dpkg's database" "" \
	"$(cd "$R/var/lib/dpkg" && { ls info | grep '^lyncxdp\.'; grep -x 'Package: lyncxdp' status; } | tr '\n' ' ')"

echo "package suite: $((SECONDS - started)) s"
suite_done
