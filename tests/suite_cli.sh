#!/usr/bin/env bash
# The command line: help, usage errors, malformed matrix and site files, missing privileges or
# bpffs, attach/detach refusals, check and explain. Every error must be one line on stderr
# with a non-zero exit and must change nothing: no pins appear, no XDP program comes or goes,
# `status` reads the same.
#
#   lxcli-n: lxcli-a ==== lxcli-b (and lxcli-c ==== lxcli-d, removed while attached)
#   lxcli-m: lxcli-m0 ==== lxcli-m1, built like lxcli-n so its interfaces get the same ifindexes
# shellcheck shell=bash
set -uo pipefail
# shellcheck source=tests/lib.sh
source "$(dirname "$0")/lib.sh"

N=lxcli-n
M=lxcli-m
SITE=$TOP/tests/sites/cli.site
OTHER=$TOP/tests/sites/cli-other.site

suite_start lxcli-

# Commands run as nobody (setpriv) read the binary, the matrices and the site: they run from a
# world-readable copy, since the checkout itself may be private (a clone under /root, or in a
# `mktemp -d` directory). The copied binary finds the copied matrices as ../maps.
ns_tmpdir lxcli-nobody
chmod 755 "$NS_TMP"
mkdir "$NS_TMP/build" "$NS_TMP/maps"
cp "$LYNCXDP" "$NS_TMP/build/lyncxdp"
cp "$MAPS"/*.matrix "$NS_TMP/maps/"
cp "$SITE" "$NS_TMP/cli.site"
SITE=$NS_TMP/cli.site
NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups "$NS_TMP/build/lyncxdp")

ns_add $N
ip -n $N link add lxcli-a type veth peer name lxcli-b
ip -n $N link set lxcli-a up
ip -n $N link set lxcli-b up

# fingerprint: everything an error must leave alone.
fingerprint() {
	find /sys/fs/bpf/lyncxdp 2>/dev/null | sort
	local ns ifc
	for ns in $N $M; do
		[ -e "/run/netns/$ns" ] || continue
		for ifc in $(ip -n $ns -o link show | awk -F': ' '{print $2}' | cut -d@ -f1); do
			echo "$ns $ifc $(ns_xdp $ns "$ifc") $(ip -n $ns -d link show "$ifc" | grep -o 'prog/xdp id [0-9]*')"
		done
	done
	lx $N status --json 2>&1
}

# refused NAME REGEX CMD...: expect_fail, then the fingerprint must not have changed.
refused() {
	local name=$1 before after
	before=$(fingerprint)
	expect_fail "$@"
	after=$(fingerprint)
	if [ "$before" = "$after" ]; then
		pass "$name: changed nothing"
	else
		fail "$name: changed the state: $(diff <(echo "$before") <(echo "$after") | grep '^[<>]' |
			grep -v '^< /sys/fs/bpf/lyncxdp/' | tr '\n' ' ' | cut -c1-400)"
	fi
}

# hints_exist NAME CMD...: every `lyncxdp WORD` an error message suggests must be a command.
hints_exist() {
	local name=$1 err word bad=""
	shift
	err=$("$@" 2>&1 >/dev/null)
	for word in $(grep -o '`lyncxdp [a-z-]*' <<<"$err" | awk '{print $2}'); do
		"$LYNCXDP" "$word" --help >/dev/null 2>&1 || bad="$bad $word"
	done
	if [ -z "$bad" ]; then
		pass "$name: the commands it suggests exist"
	else
		fail "$name: suggests a command that does not exist:$bad (message: $err)"
	fi
}

# ---- help ----
for h in --help -h help; do
	out=$("$LYNCXDP" $h 2>"$T/err")
	rc=$?
	expect_eq "lyncxdp $h: exit 0, usage on stdout, nothing on stderr" "0 Usage: lyncxdp COMMAND [OPTIONS] " \
		"$rc $(head -n 1 <<<"$out") $(cat "$T/err")"
done
"$LYNCXDP" >/dev/null 2>"$T/err"
expect_eq "lyncxdp without a command: exit 2, usage on stderr" "2 Usage: lyncxdp COMMAND [OPTIONS]" \
	"$? $(head -n 1 "$T/err")"
commands=$("$LYNCXDP" --help | sed -n '/^Commands:/,/^$/p' | grep -Eo '^  [a-z]+' | tr -d ' ')
expect_eq "the main help lists every command" \
	"attach reload set detach status conntrack stats top exporter streams drops explain replay check" \
	"$(echo $commands)"
for c in $commands; do
	out=$("${NOBODY[@]}" "$c" --help 2>"$T/err")
	rc=$?
	expect_eq "lyncxdp $c --help: exit 0 without root, 'Usage: lyncxdp $c' on stdout" \
		"0 Usage: lyncxdp $c " "$rc $(head -n 1 <<<"$out" | awk '{print $1, $2, $3}') $(cat "$T/err")"
done
rate=$(sed -n 's/^#define LX_DROPLOG_PER_SEC \([0-9]*\)$/\1/p' "$TOP/bpf/lyncxdp_kern_user.h")
check "drops --help states the program's drop-log rate ($rate records per CPU per second)" \
	grep -q "at most $rate records per CPU" <<<"$("$LYNCXDP" drops --help | tr '\n' ' ')"
check "lyncxdp --version" grep -Eq '^lyncxdp [0-9]+\.[0-9]+' <<<"$("$LYNCXDP" --version)"

# ---- usage errors ----
refused "unknown command" "^lyncxdp: unknown command 'frobnicate'" "$LYNCXDP" frobnicate
for c in $commands; do
	refused "$c: unknown option" "unknown option|unrecognized option" lx $N "$c" --bogus
done
refused "attach --mode without a value" "mode" lx $N attach lxcli-a --site "$SITE" --mode
refused "attach --mode bogus" "--mode is native or generic" lx $N attach lxcli-a --site "$SITE" --mode bogus
refused "attach without an interface" "expected one interface" lx $N attach --site "$SITE"
refused "attach with two interfaces" "expected one interface" lx $N attach lxcli-a lxcli-b --site "$SITE"
refused "attach without --site" "--site FILE is required" lx $N attach lxcli-a
refused "attach with --product and --matrix" "--product or --matrix, not both" \
	lx $N attach lxcli-a --site "$SITE" --product sfb2015 --matrix "$MAPS/sfb2015.matrix"
refused "attach --product unknown" "unknown product 'nope'" lx $N attach lxcli-a --site "$SITE" --product nope
refused "attach --site of a missing file" "$T/missing.site: No such file or directory" \
	lx $N attach lxcli-a --site "$T/missing.site"
refused "detach without an interface" "expected one interface, or --all" lx $N detach
refused "detach --all with an interface" "expected one interface, or --all" lx $N detach --all lxcli-a
refused "status with an argument" "takes no arguments" lx $N status lxcli-a
refused "stats with two interfaces" "at most one interface" lx $N stats lxcli-a lxcli-b
refused "stats --interval 0" "--interval is seconds" lx $N stats --interval 0
refused "stats --interval x" "--interval is seconds" lx $N stats --interval x
refused "stats --count 0" "--count is a positive number" lx $N stats --interval 1 --count 0
refused "check with an argument" "takes no arguments" "$LYNCXDP" check --site "$SITE" extra
refused "attach --policy bogus" "--policy is monitor or enforce" lx $N attach lxcli-a --site "$SITE" --policy bogus
refused "attach --policy without a value" "option '--policy' needs a value" lx $N attach lxcli-a --site "$SITE" --policy
refused "attach --tag with a value" "--tag" lx $N attach lxcli-a --site "$SITE" --tag=yes
refused "set without an interface" "^lyncxdp set: expected one interface" lx $N set --policy enforce
refused "set with two interfaces" "^lyncxdp set: expected one interface" lx $N set lxcli-a lxcli-b --tag
refused "set with nothing to set" "^lyncxdp set: nothing to set: give --policy, --tag, --no-tag or --side" lx $N set lxcli-a
refused "set --policy bogus" "^lyncxdp set: --policy is monitor or enforce" lx $N set lxcli-a --policy bogus
refused "set --policy without a value" "option '--policy' needs a value" lx $N set lxcli-a --policy
refused "reload with an argument" "^lyncxdp reload: takes no arguments" lx $N reload lxcli-a
refused "stats --prometheus with --json" "--prometheus takes no IFACE, --json or --interval" lx $N stats --prometheus --json
refused "stats --prometheus with an interface" "--prometheus takes no IFACE" lx $N stats lxcli-a --prometheus
refused "stats --prometheus with --interval" "--prometheus takes no IFACE" lx $N stats --prometheus --interval 1
refused "drops --seconds 0" "^lyncxdp drops: --seconds is a positive number" lx $N drops --seconds 0
refused "drops --seconds x" "^lyncxdp drops: --seconds is a positive number" lx $N drops --seconds x
refused "drops --count 0" "^lyncxdp drops: --count is a positive number" lx $N drops --count 0
refused "drops with an argument" "^lyncxdp drops: takes no arguments" lx $N drops lxcli-a
refused "exporter without --listen" "^lyncxdp exporter: expected --listen ADDR:PORT" lx $N exporter
refused "exporter with an argument" "^lyncxdp exporter: expected --listen ADDR:PORT" \
	lx $N exporter --listen 127.0.0.1:9817 extra
refused "exporter --listen without a port" "^lyncxdp: --listen: 'bogus': expected IPV4:PORT or \[IPV6\]:PORT" \
	lx $N exporter --listen bogus
refused "exporter --listen port 99999" "^lyncxdp: --listen: port '99999' is not 0..65535" \
	lx $N exporter --listen 127.0.0.1:99999
refused "explain --policy bogus" "^lyncxdp explain: --policy is monitor or enforce" \
	"$LYNCXDP" explain --site "$SITE" --policy bogus tcp 192.0.2.1:1 192.0.2.11:5061
refused "explain --tos 256" "^lyncxdp explain: --tos is 0..255" \
	"$LYNCXDP" explain --site "$SITE" --tos 256 tcp 192.0.2.1:1 192.0.2.11:5061
refused "explain --tos x" "^lyncxdp explain: --tos is 0..255" \
	"$LYNCXDP" explain --site "$SITE" --tos x tcp 192.0.2.1:1 192.0.2.11:5061
refused "explain --tos 0x100" "^lyncxdp explain: --tos is 0..255, decimal or hex" \
	"$LYNCXDP" explain --site "$SITE" --tos 0x100 tcp 192.0.2.1:1 192.0.2.11:5061
refused "explain --tos 0x" "^lyncxdp explain: --tos is 0..255, decimal or hex" \
	"$LYNCXDP" explain --site "$SITE" --tos 0x tcp 192.0.2.1:1 192.0.2.11:5061
refused "replay --policy bogus" "^lyncxdp replay: --policy is monitor or enforce" \
	"$LYNCXDP" replay --site "$SITE" --policy bogus /dev/null

# ---- nothing attached yet ----
refused "detach of an interface never attached" "^lyncxdp: lxcli-a: lyncxdp is not attached there$" \
	lx $N detach lxcli-a
refused "stats with nothing attached" "^lyncxdp: not attached to any interface$" lx $N stats
refused "stats --json with nothing attached" "not attached to any interface" lx $N stats --json
refused "conntrack with nothing attached" "^lyncxdp: not attached to any interface$" lx $N conntrack
refused "conntrack with an argument" "takes no arguments" lx $N conntrack lxcli-a
expect_eq "status with nothing attached" "lyncxdp: not attached" "$(lx $N status 2>&1)"
expect_eq "status --json with nothing attached" '{"attached": false, "interfaces": []}' \
	"$(lx $N status --json 2>&1)"
check "detach --all with nothing attached succeeds" lx $N detach --all
refused "set with nothing attached" "^lyncxdp: lxcli-a: lyncxdp is not attached there$" \
	lx $N set lxcli-a --policy enforce
refused "set --tag with nothing attached" "^lyncxdp: lxcli-a: lyncxdp is not attached there$" \
	lx $N set lxcli-a --tag
refused "reload with nothing attached" "^lyncxdp: not attached: nothing to reload \(use attach\)$" lx $N reload
refused "reload --site with nothing attached" "^lyncxdp: not attached: nothing to reload" \
	lx $N reload --site "$SITE"
refused "drops with nothing attached" "not attached to any interface$" lx $N drops --seconds 1
refused "drops --json with nothing attached" "not attached to any interface$" lx $N drops --json --count 1

# ---- malformed matrix: FILE:LINE: on one line, via check and attach ----
mkdir -p "$T/m"
printf '# a comment\nproduct t "T"\nrole a "A"\nservice s - "S"\nrule a s tcp 70000 seed:001\n' >"$T/m/port.matrix"
printf '# only a comment\nrole a "A"\n' >"$T/m/noproduct.matrix"
printf 'product t "T"\nrole a "A"\nservice s - "S"\nrule a nosuch tcp 1 seed:001\n' >"$T/m/service.matrix"
printf 'product t "T"\nrole a "A\n' >"$T/m/quote.matrix"
printf 'product t "T"\nrole a "A"\nservice s - "S"\nrule a s tcp 5061 seed:001\nrule a s tcp 5061 seed:002\n' >"$T/m/dup.matrix"
printf 'product t "T"\nrole a "A"\n\n# no rule\n' >"$T/m/norule.matrix"
printf 'product t "T"\nrole a "A"\nservice s 99 "S"\n' >"$T/m/dscp.matrix"
printf 'product t "T"\nrole a "A"\nbogus x\n' >"$T/m/keyword.matrix"
printf 'product t "T"\nrole a "A"\r\nservice s - "S"\nrule a s tcp 1 seed:001\x00\n' >"$T/m/nul.matrix"
while read -r f line what; do
	refused "check --matrix $f: $what" "^lyncxdp: $T/m/$f:$line: " \
		"$LYNCXDP" check --matrix "$T/m/$f" --site "$SITE"
done <<'EOF'
port.matrix 5 port out of range
noproduct.matrix 2 no product line first
service.matrix 4 unknown service
quote.matrix 2 unterminated quote
dup.matrix 5 duplicate rule
norule.matrix 4 no rule
dscp.matrix 3 DSCP out of range
keyword.matrix 3 unknown keyword
nul.matrix 4 NUL byte
EOF
refused "attach --matrix with a bad port" "^lyncxdp: $T/m/port.matrix:5: port '70000'" \
	lx $N attach lxcli-a --matrix "$T/m/port.matrix" --site "$SITE"
refused "explain --matrix with a bad port" "^lyncxdp: $T/m/port.matrix:5: " \
	"$LYNCXDP" explain --matrix "$T/m/port.matrix" --site "$SITE" tcp 192.0.2.1:1 192.0.2.11:5061

# ---- qos profiles: explain --tag shows the profile's value ----
for p in sfb teams expressroute; do
	{ cat "$SITE"; echo "qos $p"; } >"$T/qos-$p.site"
done
expect_eq "explain --tag, qos sfb: SIP/TLS 24, audio 46, client file transfer 14" "24 46 14" \
	"$(for pkt in "tcp 192.0.2.130:40000 192.0.2.11:5061" "udp 192.0.2.130:50020 192.0.2.11:50000" \
		"tcp 192.0.2.11:40000 192.0.2.130:6891"; do
		# shellcheck disable=SC2086
		"$LYNCXDP" explain --site "$T/qos-sfb.site" --tag --json $pkt | json_get 'j["dscp"]'
	done | paste -sd ' ')"
expect_eq "explain --tag, qos expressroute: SIP/TLS 0 (CS3 not honoured), audio 46, file transfer 10" \
	"0 46 10 expressroute" \
	"$(for pkt in "tcp 192.0.2.130:40000 192.0.2.11:5061" "udp 192.0.2.130:50020 192.0.2.11:50000" \
		"tcp 192.0.2.11:40000 192.0.2.130:6891"; do
		# shellcheck disable=SC2086
		"$LYNCXDP" explain --site "$T/qos-expressroute.site" --tag --json $pkt | json_get 'j["dscp"]'
	done | paste -sd ' ') $("$LYNCXDP" explain --site "$T/qos-expressroute.site" --tag --json tcp 192.0.2.130:40000 192.0.2.11:5061 | json_get 'j["qos"]')"
check "explain --tag, qos teams: text output names the profile" grep -qx 'dscp       46 (site selects qos profile teams)' \
	<("$LYNCXDP" explain --site "$T/qos-teams.site" --tag udp 192.0.2.130:50020 192.0.2.11:50000)
{ cat "$SITE"; printf 'qos expressroute\ndscp sip-tls 40\n'; } >"$T/qos-bad.site"
refused "check: a dscp line outside what expressroute allows" \
	"^lyncxdp: $T/qos-bad.site:$(($(wc -l <"$SITE") + 2)): dscp sip-tls 40: the expressroute profile allows only DSCP 46, 34, 18, 10, 0" \
	"$LYNCXDP" check --site "$T/qos-bad.site"
{ cat "$SITE"; echo "qos bogus"; } >"$T/qos-bogus.site"
refused "check: an unknown qos profile" "^lyncxdp: $T/qos-bogus.site:$(($(wc -l <"$SITE") + 1)): qos: unknown qos profile 'bogus'" \
	"$LYNCXDP" check --site "$T/qos-bogus.site"

# ---- malformed site ----
mkdir -p "$T/s"
printf '# comment\nfrontend 192.0.2.11\nbogus-role 192.0.2.3\n' >"$T/s/role.site"
printf 'frontend 192.0.2.11\nclients 192.0.2.1/24\n' >"$T/s/hostbits.site"
printf 'frontend 192.0.2.300\n' >"$T/s/addr.site"
printf '\n\nclients 2001:db8::/129\n' >"$T/s/len.site"
printf 'frontend 192.0.2.11\nfrontend\n' >"$T/s/noprefix.site"
printf '# nothing\n\n' >"$T/s/empty.site"
printf 'frontend 192.0.2.11\nprotect\n' >"$T/s/protect-none.site"
printf 'frontend 192.0.2.11\nprotect frontend nosuch\n' >"$T/s/protect-role.site"
printf 'frontend 192.0.2.11\ndscp sip-tls\n' >"$T/s/dscp-arity.site"
printf 'frontend 192.0.2.11\ndscp sip-tls 10 12\n' >"$T/s/dscp-extra.site"
printf 'frontend 192.0.2.11\ndscp nosuch 10\n' >"$T/s/dscp-service.site"
printf 'frontend 192.0.2.11\ndscp sip-tls 64\n' >"$T/s/dscp-64.site"
printf 'frontend 192.0.2.11\ndscp sip-tls ef\n' >"$T/s/dscp-word.site"
printf 'frontend 192.0.2.11\ndscp sip-tls 10\n\ndscp sip-tls -\n' >"$T/s/dscp-twice.site"
printf 'frontend 192.0.2.11\nallow-icmp ipv4\n' >"$T/s/icmp-none.site"
printf 'frontend 192.0.2.11\nallow-icmp ipv5 3\n' >"$T/s/icmp-family.site"
printf 'frontend 192.0.2.11\nallow-icmp ipv4 3:4 256\n' >"$T/s/icmp-type.site"
printf 'frontend 192.0.2.11\nallow-icmp ipv6 1:x\n' >"$T/s/icmp-code.site"
printf 'protect edge-external\n' >"$T/s/protect-only.site"
printf 'frontend fe80::1%%eth0\n' >"$T/s/scope.site"
while read -r f line what; do
	refused "check --site $f: $what" "^lyncxdp: $T/s/$f:$line: " "$LYNCXDP" check --site "$T/s/$f"
done <<'EOF'
role.site 3 unknown role
hostbits.site 2 host bits set
addr.site 1 not an address
len.site 3 prefix length 129
noprefix.site 2 role without prefix
empty.site 2 no role at all
protect-none.site 2 protect without a role
protect-role.site 2 protect of an unknown role
dscp-arity.site 2 dscp without a value
dscp-extra.site 2 dscp with two values
dscp-service.site 2 dscp of an unknown service
dscp-64.site 2 dscp 64
dscp-word.site 2 dscp not a number
dscp-twice.site 4 dscp of one service twice
icmp-none.site 2 allow-icmp without a type
icmp-family.site 2 allow-icmp of an unknown family
icmp-type.site 2 allow-icmp type 256
icmp-code.site 2 allow-icmp code not a number
protect-only.site 1 only a protect line, no role
scope.site 1 scope id
EOF
refused "attach --site with an unknown role" "^lyncxdp: $T/s/role.site:3: unknown role 'bogus-role'" \
	lx $N attach lxcli-a --site "$T/s/role.site"
hints_exist "site with an unknown role" "$LYNCXDP" check --site "$T/s/role.site"
roles=$(awk '$1 == "role" { printf "%s%s", sep, $2; sep = ", " }' "$MAPS/sfb2015.matrix")
err=$("$LYNCXDP" check --site "$T/s/role.site" 2>&1 >/dev/null)
check "unknown role: the message lists every role of the matrix and the keywords" grep -qF \
	"unknown role 'bogus-role' (the sfb2015 matrix has: $roles; keywords: protect, dscp, allow-icmp, allow-outbound, flows, nat, qos)" <<<"$err"
expect_eq "check: protect: unknown role names it" "lyncxdp: $T/s/protect-role.site:2: protect: unknown role 'nosuch'" \
	"$("$LYNCXDP" check --site "$T/s/protect-role.site" 2>&1 >/dev/null)"
expect_eq "check: dscp: a second line of one service names the first" \
	"lyncxdp: $T/s/dscp-twice.site:4: dscp: service 'sip-tls' already set at line 2" \
	"$("$LYNCXDP" check --site "$T/s/dscp-twice.site" 2>&1 >/dev/null)"
printf '%s\n' 'frontend 192.0.2.11' 'edge-external 203.0.113.10' 'protect edge-external' \
	'protect frontend edge-external' 'dscp sip-tls 26' 'dscp stun -' 'dscp media-video 0' \
	'allow-icmp ipv4 0 8 3:1' 'allow-icmp ipv6 128 129:0' >"$T/s/keywords.site"
out=$("$LYNCXDP" check --site "$T/s/keywords.site" 2>"$T/err")
expect_eq "check: protect, dscp (value, 0 and -) and allow-icmp lines are valid: exit 0, nothing on stderr" \
	"0 " "$? $(cat "$T/err")"
printf 'frontend 192.0.2.11\nprotect edge-external\n' >"$T/s/protect-absent.site"
out=$("$LYNCXDP" check --site "$T/s/protect-absent.site" 2>"$T/err")
expect_eq "check: protecting a role with no address is a warning, exit 0" "0 1" \
	"$? $(grep -c "warning: protected role edge-external has no address in the site" "$T/err")"
hints_exist "matrix with an unknown service" "$LYNCXDP" check --matrix "$T/m/service.matrix" --site "$SITE"
printf 'frontend 192.0.2.11\nfrontend 192.0.2.11 192.0.2.12\n' >"$T/s/twice.site"
out=$("$LYNCXDP" check --site "$T/s/twice.site" 2>"$T/err")
expect_eq "check: a prefix listed twice is a warning with FILE:LINE, exit 0" \
	"0 1" "$? $(grep -c "^$T/s/twice.site:2: warning: 192.0.2.11/32 is already frontend (line 1)" "$T/err")"

# ---- check ----
out=$("${NOBODY[@]}" check --site "$SITE" 2>"$T/err")
expect_eq "check without root: exit 0, nothing on stderr" "0 " "$? $(cat "$T/err")"
check "check names product, rule and prefix counts" \
	grep -Eq 'sfb2015, [0-9]+ roles, [0-9]+ services, [0-9]+ rules \([0-9]+ active with this site\)' <<<"$out"
check "check: 9 IPv4 and 3 IPv6 prefixes in 7 role groups" \
	grep -q "cli.site: 9 IPv4 and 3 IPv6 prefixes in 7 role groups" <<<"$out"
for p in ocs2007r2 lync2010 lync2013 sfb2015; do
	check "check --product $p" grep -q "/$p.matrix: $p, " \
		<<<"$("$LYNCXDP" check --product $p --site "$SITE" 2>&1)"
done
check "check --matrix FILE" "$LYNCXDP" check --matrix "$MAPS/lync2013.matrix" --site "$SITE"
check "check --product and LYNCXDP_MAPS" env LYNCXDP_MAPS="$MAPS" "$LYNCXDP" check --product lync2010 --site "$SITE"

# ---- explain ----
ex() { lx $N explain --site "$SITE" "$@"; }
exj() { ex --json "$@" | json_get "$JQ"; }
JQ='" ".join(str(j[k]) for k in ("role", "service", "direction", "verdict"))'
expect_eq "explain tcp to frontend:5061" "frontend sip-tls in pass" \
	"$(exj tcp 198.51.100.7:50123 192.0.2.11:5061)"
expect_eq "explain tcp from frontend:5061 (direction out)" "frontend sip-tls out pass" \
	"$(exj tcp 192.0.2.11:5061 198.51.100.7:50123)"
expect_eq "explain udp to edge-external:3478" "edge-external stun in pass" \
	"$(exj udp 198.51.100.99:40000 203.0.113.11:3478)"
expect_eq "explain udp from edge-external:3478 to no role (out)" "edge-external stun out pass" \
	"$(exj udp 203.0.113.10:3478 198.51.100.99:40000)"
expect_eq "explain IPv6 tcp to frontend:5061" "frontend sip-tls in pass" \
	"$(exj tcp '[2001:db8:20::5]:50000' '[2001:db8:10::11]:5061')"
expect_eq "explain IPv6 udp to edge-external:3478" "edge-external stun in pass" \
	"$(exj udp '[2001:db8::99]:40000' '[2001:db8:ff::12]:3478')"
expect_eq "explain IPv6 udp from the Edge's 3478 to a client (the server's port wins)" \
	"edge-external stun out pass" \
	"$(exj udp '[2001:db8:ff::12]:3478' '[2001:db8:20::7]:50000')"
# Combined products (a hybrid site): sfb2015,teams reads both matrices as one.
out=$("$LYNCXDP" check --site "$MAPS/site.example" --product sfb2015,teams 2>&1)
check "check --product sfb2015,teams: one combined matrix" grep -q ": sfb2015,teams, .* rules" <<<"$out"
expect_eq "explain --product sfb2015,teams: a Teams relay's media to a client is teams-relay out" \
	"teams-cloud teams-relay out pass" \
	"$(lx $N explain --json --site "$MAPS/site.example" --product sfb2015,teams udp 52.112.1.1:3479 \
		192.0.2.130:50010 | json_get "$JQ")"
expect_eq "explain --product sfb2015: the same packet is the client's media (the cloud is a peer)" \
	"clients client-media in pass" \
	"$(lx $N explain --json --site "$MAPS/site.example" --product sfb2015 udp 52.112.1.1:3479 \
		192.0.2.130:50010 | json_get "$JQ")"
refused "--product sfb2015,nope" "^lyncxdp: unknown product 'nope'" \
	"$LYNCXDP" check --site "$MAPS/site.example" --product sfb2015,nope
refused "--matrix a,,b" "expected one matrix file or up to 4 separated by ','" \
	"$LYNCXDP" check --site "$MAPS/site.example" --matrix "$MAPS/sfb2015.matrix,,$MAPS/teams.matrix"

# Client scope: a client rule needs a peer holding a role.
expect_eq "explain a listed client's DNS to an address without a role: unclassified" \
	"None None None pass" "$(exj udp 192.0.2.130:53000 198.51.100.99:53)"
expect_eq "explain the DNS answer to a listed client: unclassified" \
	"None None None pass" "$(exj udp 198.51.100.99:53 192.0.2.130:53000)"
expect_eq "explain a listed client's HTTPS to a web site: unclassified" \
	"None None None pass" "$(exj tcp 192.0.2.130:53000 198.51.100.99:443)"
expect_eq "explain client-to-client RTP: client-media in" \
	"clients client-media in pass" "$(exj udp 192.0.2.130:50000 192.0.2.131:50002)"
expect_eq "explain client RTP to the subnet broadcast address: unclassified" \
	"None None None pass" "$(exj udp 192.0.2.130:17500 192.0.2.255:17500)"
expect_eq "explain client SSDP to multicast: unclassified" \
	"None None None pass" "$(exj udp 192.0.2.130:50000 239.255.255.250:1900)"
expect_eq "explain client media to the Edge's relay port: edge-media-relay in" \
	"edge-external edge-media-relay in pass" "$(exj udp 192.0.2.130:50000 203.0.113.11:50010)"
expect_eq "explain udp to a frontend's audio port (all-servers)" "all-servers media-audio in pass" \
	"$(exj udp 198.51.100.99:40000 192.0.2.12:50000)"
expect_eq "explain tcp on a port no role has is unclassified" "None None None pass" \
	"$(exj tcp 198.51.100.7:40000 192.0.2.11:9)"
expect_eq "explain IPv6 unclassified" "None None None pass" \
	"$(exj udp '[2001:db8:99::1]:1000' '[2001:db8:99::2]:1000')"
out=$(ex --json udp 198.51.100.99:40000 203.0.113.11:3478)
expect_eq "explain --json keys (classified)" \
	"direction dscp dst line ports proto qos reason role rule service service_name src verdict" \
	"$(json_get '" ".join(sorted(j))' <<<"$out")"
expect_eq "explain --json: proto, src, dst, ports echo the packet and rule" \
	"udp 198.51.100.99:40000 203.0.113.11:3478 3478" \
	"$(json_get '" ".join(str(j[k]) for k in ("proto", "src", "dst", "ports"))' <<<"$out")"
line=$(json_get 'j["line"]' <<<"$out")
check "explain --json: line points at the stun rule of the matrix" \
	grep -Eq '^rule +edge-external +stun +udp +3478 ' <<<"$(sed -n "${line}p" "$MAPS/sfb2015.matrix")"
out=$(ex --json tcp 198.51.100.7:40000 192.0.2.11:9)
expect_eq "explain --json keys (unclassified): counter, direction null" \
	"counter=unclassified direction=None dscp=0 dst qos=None reason=None role=None rule=None service=None service_name=None src verdict=pass" \
	"$(json_get '" ".join(k if k in ("src", "dst", "proto") else "%s=%s" % (k, j[k]) for k in sorted(j) if k != "proto")' <<<"$out")"
out=$(ex udp 198.51.100.99:40000 203.0.113.11:3478)
check "explain (text): role, service, rule, direction, verdict lines" \
	test "$(grep -Ec '^(packet|role|service|rule|direction|verdict) ' <<<"$out")" -eq 6
check "explain (text): rule names the matrix file and line" grep -Eq "^rule +#[0-9]+: edge-external udp 3478, .*sfb2015.matrix:$line$" <<<"$out"
out=$(ex tcp 198.51.100.7:40000 192.0.2.11:9)
check "explain (text) of an unclassified packet: counter unclassified" grep -Eq '^counter +unclassified$' <<<"$out"
expect_eq "explain --product lync2013" "frontend sip-tls in pass" \
	"$(lx $N explain --product lync2013 --site "$SITE" --json tcp 198.51.100.7:50123 192.0.2.11:5061 | json_get "$JQ")"
# --policy, --tag, --tos: verdict, reason and DSCP (site with protect edge-external, dscp overrides)
printf '%s\n' 'frontend 192.0.2.11' 'edge-external 203.0.113.10' 'protect edge-external' \
	'dscp sip-tls 26' 'dscp stun 40' >"$T/s/policy.site"
JQP='" ".join(str(j[k]) for k in ("role", "direction", "verdict", "reason", "dscp"))'
exp() { lx $N explain --site "$T/s/policy.site" --json "$@" | json_get "$JQP"; }
expect_eq "explain --policy enforce: a protected Edge's listening port passes" \
	"edge-external in pass None 0" "$(exp --policy enforce tcp 198.51.100.1:40000 203.0.113.10:5061)"
expect_eq "explain --policy enforce: a port no Edge rule has drops (reason port)" \
	"None None drop port 0" "$(exp --policy enforce tcp 198.51.100.1:40000 203.0.113.10:8080)"
expect_eq "explain --policy monitor: the same passes, reason port (would drop)" \
	"None None pass port 0" "$(exp --policy monitor tcp 198.51.100.1:40000 203.0.113.10:8080)"
expect_eq "explain (default policy is monitor): the same passes" \
	"None None pass port 0" "$(exp tcp 198.51.100.1:40000 203.0.113.10:8080)"
expect_eq "explain --policy enforce: UDP to the Edge's TCP 5061 drops (reason transport)" \
	"None None drop transport 0" "$(exp --policy enforce udp 198.51.100.1:40000 203.0.113.10:5061)"
expect_eq "explain --policy enforce: from source port 5061 to an Edge port, no flow (reason unsolicited)" \
	"edge-external in drop unsolicited 0" "$(exp --policy enforce tcp 198.51.100.1:5061 203.0.113.10:40000)"
expect_eq "explain --policy enforce: to the media relay, no flow (reason unsolicited)" \
	"edge-external in drop unsolicited 0" "$(exp --policy enforce udp 198.51.100.1:40000 203.0.113.10:50010)"
expect_eq "explain --policy enforce: the Edge's DNS query, arriving on its own side (default), passes" \
	"edge-external out pass None 0" "$(exp --policy enforce tcp 203.0.113.10:3389 198.51.100.1:53)"
expect_eq "explain --side unprotected --policy enforce: the same frame on the outside leg is spoofed" \
	"edge-external out drop spoofed 0" "$(exp --side unprotected --policy enforce tcp 203.0.113.10:3389 198.51.100.1:53)"
expect_eq "explain --side unprotected (monitor): passes, reason spoofed (would drop)" \
	"edge-external out pass spoofed 0" "$(exp --side unprotected tcp 203.0.113.10:3389 198.51.100.1:53)"
expect_eq "explain --side unprotected: the Edge's SYN-ACK from its listening 443 opens nothing, is no spoof" \
	"edge-external out pass None 0" "$(exp --side unprotected --policy enforce tcp 203.0.113.10:443 198.51.100.1:53)"
out=$(lx $N explain --site "$T/s/policy.site" --side route tcp 203.0.113.10:3389 198.51.100.1:53 2>&1)
expect_eq "explain --side route: refused (a test run arrives on no interface), exit 2" \
	"2 lyncxdp explain: --side is protected or unprotected (see \`lyncxdp explain --help\`)" "$? $(head -1 <<<"$out")"
expect_eq "explain --policy enforce: to an unprotected frontend's closed port passes" \
	"None None pass None 0" "$(exp --policy enforce tcp 198.51.100.1:40000 192.0.2.11:9)"
expect_eq "explain --tag: SIP/TLS takes the site's dscp 26 (matrix default 24)" \
	"frontend in pass None 26" "$(exp --tag tcp 198.51.100.1:40000 192.0.2.11:5061)"
expect_eq "explain --tag --tos 3 (ECN CE): dscp 26" \
	"frontend in pass None 26" "$(exp --tag --tos 3 tcp 198.51.100.1:40000 192.0.2.11:5061)"
expect_eq "explain --tag: stun takes the site's 40 (matrix: leave as it is)" \
	"edge-external in pass None 40" "$(exp --tag udp 198.51.100.1:40000 203.0.113.10:3478)"
expect_eq "explain without --tag --tos 184: the DSCP stays 46" \
	"edge-external in pass None 46" "$(exp --tos 184 udp 198.51.100.1:40000 203.0.113.10:3478)"
expect_eq "explain --tos 0xb8 (hex) is --tos 184: DSCP 46" \
	"edge-external in pass None 46" "$(exp --tos 0xb8 udp 198.51.100.1:40000 203.0.113.10:3478)"
expect_eq "explain --tos 0x0B: DSCP 2" \
	"edge-external in pass None 2" "$(exp --tos 0x0B udp 198.51.100.1:40000 203.0.113.10:3478)"
expect_eq "explain --tag: an unclassified packet keeps its DSCP (--tos 40: 10)" \
	"None None pass None 10" "$(exp --tag --tos 40 udp 198.51.100.1:40000 198.51.100.2:9)"
refused "explain: PROTO icmp" "PROTO is tcp or udp" ex icmp 192.0.2.1:1 192.0.2.11:5061
refused "explain: address 192.0.2.300" "'192.0.2.300' is not an IPv4 address" ex tcp 192.0.2.300:1 192.0.2.11:5061
refused "explain: endpoint without a port" "expected IPV4:PORT or \[IPV6\]:PORT" ex tcp 192.0.2.1 192.0.2.11:5061
refused "explain: port 65536" "port '65536' is not 0..65535" ex tcp 192.0.2.1:65536 192.0.2.11:5061
refused "explain: IPv6 without brackets" "expected IPV4:PORT or \[IPV6\]:PORT" ex tcp 2001:db8::1:5061 192.0.2.11:5061
refused "explain: IPv6 without a port" "expected \[IPV6\]:PORT" ex tcp '[2001:db8::1]' '[2001:db8:10::11]:5061'
refused "explain: bad IPv6" "is not an IPv6 address" ex tcp '[2001:db8::zz]:1' '[2001:db8:10::11]:5061'
refused "explain: families differ" "different families" ex tcp 192.0.2.1:1 '[2001:db8:10::11]:5061'
refused "explain: two arguments" "expected PROTO SRC:PORT DST:PORT" ex tcp 192.0.2.1:1
refused "explain without --site" "--site FILE is required" lx $N explain tcp 192.0.2.1:1 192.0.2.11:5061
refused "explain --site with an unknown role" "^lyncxdp: $T/s/role.site:3: " \
	lx $N explain --site "$T/s/role.site" tcp 192.0.2.1:1 192.0.2.11:5061

# ---- privileges and bpffs ----
for args in "attach lxcli-a --site $SITE" "detach lxcli-a" "detach --all" "status" "stats" \
	"explain --site $SITE tcp 192.0.2.1:1 192.0.2.11:5061" "set lxcli-a --policy enforce" "reload" \
	"drops --seconds 1" "exporter --listen 127.0.0.1:9817" "stats --prometheus" "conntrack"; do
	# shellcheck disable=SC2086
	refused "not root: ${args%% *}" "^lyncxdp: this command needs root" \
		nsenter --net=/run/netns/$N "${NOBODY[@]}" $args
done
nobpffs() {
	unshare -m sh -c 'while mountpoint -q /sys/fs/bpf; do umount /sys/fs/bpf || exit 99; done
		exec nsenter --net=/run/netns/'"$N"' "$@"' sh "$LYNCXDP" "$@"
}
for args in "attach lxcli-a --site $SITE" "status" "stats" "detach lxcli-a" "set lxcli-a --tag" \
	"reload" "drops --seconds 1" "conntrack"; do
	# shellcheck disable=SC2086
	refused "bpffs not mounted: ${args%% *}" "^lyncxdp: bpffs is not mounted at /sys/fs/bpf \(mount -t bpf" \
		nobpffs $args
done
check "the host's /sys/fs/bpf is still mounted" mountpoint -q /sys/fs/bpf

# ---- attach refusals ----
refused "attach to an unknown interface" "^lyncxdp: lxcli-nope: no such interface$" \
	lx $N attach lxcli-nope --site "$SITE"
ip -n $N link set dev lxcli-b xdpgeneric obj "$(dirname "$LYNCXDP")/lyncxdp.bpf.o" sec xdp 2>"$T/err" ||
	fail "loading a foreign XDP program with ip link: $(cat "$T/err")"
refused "attach over a foreign XDP program" "^lyncxdp: lxcli-b already has an XDP program that is not lyncxdp's" \
	lx $N attach lxcli-b --site "$SITE"
ip -n $N link set dev lxcli-b xdpgeneric off

out=$(lx $N attach lxcli-a --site "$SITE" 2>&1)
expect_eq "attach lxcli-a ($out)" 0 $?
refused "second attach of the same interface" "^lyncxdp: lxcli-a is already attached \(lyncxdp detach lxcli-a first\)$" \
	lx $N attach lxcli-a --site "$SITE"
refused "second attach of the same interface, generic" "already attached" \
	lx $N attach lxcli-a --site "$SITE" --mode generic
refused "attach of the same interface with another site" "^lyncxdp: lxcli-a is already attached|every interface shares" \
	lx $N attach lxcli-a --site "$OTHER"
refused "attach of another interface with another site" \
	"^lyncxdp: lyncxdp is attached with matrix .*sfb2015.matrix and site .*cli.site; every interface shares those tables" \
	lx $N attach lxcli-b --site "$OTHER"
refused "attach of another interface with another product" "every interface shares those tables" \
	lx $N attach lxcli-b --site "$SITE" --product lync2013
refused "attach of another interface with a bad site" "^lyncxdp: $T/s/role.site:3: " \
	lx $N attach lxcli-b --site "$T/s/role.site"
refused "detach of an interface that is not attached" "^lyncxdp: lxcli-b: lyncxdp is not attached there$" \
	lx $N detach lxcli-b
refused "detach of an unknown interface" "^lyncxdp: lxcli-nope: lyncxdp is not attached there$" \
	lx $N detach lxcli-nope
refused "stats of an interface that is not attached" "^lyncxdp: lxcli-b: lyncxdp is not attached there$" \
	lx $N stats lxcli-b
refused "not root, attached: detach" "needs root" nsenter --net=/run/netns/$N "${NOBODY[@]}" detach lxcli-a
refused "bpffs not mounted, attached: detach" "bpffs is not mounted" nobpffs detach lxcli-a
refused "bpffs not mounted, attached: stats" "bpffs is not mounted" nobpffs stats
refused "set of an interface that is not attached" "^lyncxdp: lxcli-b: lyncxdp is not attached there$" \
	lx $N set lxcli-b --policy enforce
refused "set of an unknown interface" "^lyncxdp: lxcli-nope: lyncxdp is not attached there$" \
	lx $N set lxcli-nope --tag
refused "not root, attached: set" "needs root" \
	nsenter --net=/run/netns/$N "${NOBODY[@]}" set lxcli-a --policy enforce
refused "reload with a bad site" "^lyncxdp: $T/s/role.site:3: unknown role 'bogus-role'" \
	lx $N reload --site "$T/s/role.site"
refused "reload with a bad matrix" "^lyncxdp: $T/m/port.matrix:5: " lx $N reload --matrix "$T/m/port.matrix"
refused "reload with a missing site" "$T/missing.site: No such file or directory" \
	lx $N reload --site "$T/missing.site"
refused "reload --product unknown" "unknown product 'nope'" lx $N reload --product nope
refused "reload with --product and --matrix" "--product or --matrix, not both" \
	lx $N reload --product sfb2015 --matrix "$MAPS/sfb2015.matrix"
refused "not root, attached: reload" "needs root" nsenter --net=/run/netns/$N "${NOBODY[@]}" reload
refused "bpffs not mounted, attached: set" "bpffs is not mounted" nobpffs set lxcli-a --tag
refused "bpffs not mounted, attached: drops" "bpffs is not mounted" nobpffs drops --seconds 1

# set: policy and tagging change, and status says so; the program and link stay
st_if() { lx $N status --json | json_get '" ".join("%s %s %s %s %s" % (i["name"], i["policy"], i["tag"], i["prog_id"], i["link_id"]) for i in j["interfaces"])'; }
before=$(st_if)
expect_eq "status --json after attach: policy monitor, tag off" "lxcli-a monitor False" "$(cut -d' ' -f1-3 <<<"$before")"
out=$(lx $N set lxcli-a --policy enforce --tag 2>&1)
expect_eq "set lxcli-a --policy enforce --tag: exit 0 and says so" "0 lyncxdp: lxcli-a: policy enforce tagging on" "$? $out"
after=$(st_if)
expect_eq "status --json: policy enforce, tag on, same program and link" \
	"lxcli-a enforce True $(cut -d' ' -f4- <<<"$before")" "$after"
check "status (table): lxcli-a enforce, tag on" grep -Eq '^lxcli-a .* enforce +on ' <<<"$(lx $N status)"
out=$(lx $N set lxcli-a --no-tag 2>&1)
expect_eq "set lxcli-a --no-tag: exit 0 and says so" "0 lyncxdp: lxcli-a: tagging off" "$? $out"
out=$(lx $N set lxcli-a --policy monitor 2>&1)
expect_eq "set lxcli-a --policy monitor: exit 0 and says so" "0 lyncxdp: lxcli-a: policy monitor" "$? $out"
expect_eq "status --json: back to monitor, tag off, same program and link" "$before" "$(st_if)"

# drops and exporter while attached
out=$(timeout 10 nsenter --net=/run/netns/$N "$LYNCXDP" drops --json --seconds 0.3 2>"$T/err")
expect_eq "drops --json --seconds 0.3 while attached: exit 0, no records, nothing on stderr" \
	'0 {"suppressed": 0} ' "$? $out $(cat "$T/err")"
ns_bg $N timeout 20 "$LYNCXDP" exporter --listen 127.0.0.1:9817 >/dev/null
exporter=$NS_BG_PID
ns_wait_listen $N tcp 9817 || fail "the exporter does not listen on 127.0.0.1:9817"
check "exporter: /metrics names lxcli-a as attached" grep -q \
	'^lyncxdp_attached{interface="lxcli-a",mode="native",policy="monitor",tag="off"} 1$' \
	<<<"$(ip netns exec $N curl -s --max-time 5 http://127.0.0.1:9817/metrics)"
refused "exporter on an address already in use" "^lyncxdp: cannot listen on 127.0.0.1:9817" \
	lx $N exporter --listen 127.0.0.1:9817
kill "$exporter" 2>/dev/null
wait "$exporter" 2>/dev/null
expect_eq "exporter: ends on SIGTERM with exit 0" 0 $?
check "lxcli-a still counts after every refusal" test "$(ns_xdp $N lxcli-a)" = native

# ---- an interface removed while attached ----
ip -n $N link add lxcli-c type veth peer name lxcli-d
ip -n $N link set lxcli-c up
ip -n $N link set lxcli-d up
out=$(lx $N attach lxcli-c --site "$SITE" 2>&1)
expect_eq "attach lxcli-c ($out)" 0 $?
ip -n $N link del lxcli-c
expect_eq "status --json: a removed interface is listed, not alive" "lxcli-a True,lxcli-c False" \
	"$(lx $N status --json | json_get '",".join("%s %s" % (i["name"], i["alive"]) for i in j["interfaces"])')"
check "status (table): a removed interface shows as gone" grep -Eq '^lxcli-c .*gone' <<<"$(lx $N status)"
out=$(lx $N detach lxcli-c 2>&1)
expect_eq "detach of a removed interface works ($out)" 0 $?
expect_eq "status --json: lxcli-a left" lxcli-a \
	"$(lx $N status --json | json_get '",".join(i["name"] for i in j["interfaces"])')"

# ---- another namespace, same ifindex ----
ns_add $M
ip -n $M link add lxcli-m0 type veth peer name lxcli-m1
ip -n $M link set lxcli-m0 up
ip -n $M link set lxcli-m1 up
ia=$(ip -n $N -o link show lxcli-a | cut -d: -f1)
im=$(ip -n $M -o link show lxcli-m0 | cut -d: -f1)
if [ "$ia" = "$im" ]; then
	refused "detach, in another namespace, of an interface with the ifindex of an attached one" \
		"^lyncxdp: lxcli-m0: lyncxdp is not attached there$" lx $M detach lxcli-m0
	if [ "$(ns_xdp $N lxcli-a)" = native ]; then
		out=$(lx $M attach lxcli-m0 --site "$SITE" 2>&1)
		expect_eq "attach in another namespace to an interface with the same ifindex ($out)" 0 $?
	fi
else
	fail "setup: lxcli-a ($ia) and lxcli-m0 ($im) should have the same ifindex"
fi

# ---- the end ----
out=$(lx $N detach --all 2>&1)
expect_eq "detach --all ($out)" 0 $?
expect_no_pins "detach --all removed every pin"
expect_eq "no XDP on any interface" "none none none none" \
	"$(ns_xdp $N lxcli-a) $(ns_xdp $N lxcli-b) $(ns_xdp $M lxcli-m0) $(ns_xdp $M lxcli-m1)"

ns_cleanup
expect_clean lxcli-
suite_done
