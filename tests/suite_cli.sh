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
NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups)

require_clean_start lxcli-
trap ns_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP # so that the EXIT trap runs
ns_tmpdir
T=$NS_TMP

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
expect_eq "the main help lists every command" "attach detach status stats explain replay check" \
	"$(echo $commands)"
for c in $commands; do
	out=$("${NOBODY[@]}" "$LYNCXDP" "$c" --help 2>"$T/err")
	rc=$?
	expect_eq "lyncxdp $c --help: exit 0 without root, 'Usage: lyncxdp $c' on stdout" \
		"0 Usage: lyncxdp $c " "$rc $(head -n 1 <<<"$out" | awk '{print $1, $2, $3}') $(cat "$T/err")"
done
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

# ---- nothing attached yet ----
refused "detach of an interface never attached" "^lyncxdp: lxcli-a: lyncxdp is not attached there$" \
	lx $N detach lxcli-a
refused "stats with nothing attached" "^lyncxdp: not attached to any interface$" lx $N stats
refused "stats --json with nothing attached" "not attached to any interface" lx $N stats --json
expect_eq "status with nothing attached" "lyncxdp: not attached" "$(lx $N status 2>&1)"
expect_eq "status --json with nothing attached" '{"attached": false, "interfaces": []}' \
	"$(lx $N status --json 2>&1)"
check "detach --all with nothing attached succeeds" lx $N detach --all

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

# ---- malformed site ----
mkdir -p "$T/s"
printf '# comment\nfrontend 192.0.2.11\nbogus-role 192.0.2.3\n' >"$T/s/role.site"
printf 'frontend 192.0.2.11\nclients 192.0.2.1/24\n' >"$T/s/hostbits.site"
printf 'frontend 192.0.2.300\n' >"$T/s/addr.site"
printf '\n\nclients 2001:db8::/129\n' >"$T/s/len.site"
printf 'frontend 192.0.2.11\nfrontend\n' >"$T/s/noprefix.site"
printf '# nothing\n\n' >"$T/s/empty.site"
printf 'frontend 192.0.2.11\nprotect frontend\n' >"$T/s/protect.site"
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
protect.site 2 protect is not supported yet
scope.site 1 scope id
EOF
refused "attach --site with an unknown role" "^lyncxdp: $T/s/role.site:3: unknown role 'bogus-role'" \
	lx $N attach lxcli-a --site "$T/s/role.site"
hints_exist "site with an unknown role" "$LYNCXDP" check --site "$T/s/role.site"
hints_exist "matrix with an unknown service" "$LYNCXDP" check --matrix "$T/m/service.matrix" --site "$SITE"
printf 'frontend 192.0.2.11\nfrontend 192.0.2.11 192.0.2.12\n' >"$T/s/twice.site"
out=$("$LYNCXDP" check --site "$T/s/twice.site" 2>"$T/err")
expect_eq "check: a prefix listed twice is a warning with FILE:LINE, exit 0" \
	"0 1" "$? $(grep -c "^$T/s/twice.site:2: warning: 192.0.2.11/32 is already frontend (line 1)" "$T/err")"

# ---- check ----
out=$("${NOBODY[@]}" "$LYNCXDP" check --site "$SITE" 2>"$T/err")
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
expect_eq "explain IPv6 udp to a client subnet (prefix, media)" "clients client-media in pass" \
	"$(exj udp '[2001:db8:ff::12]:3478' '[2001:db8:20::7]:50000')"
expect_eq "explain udp to a frontend's audio port (all-servers)" "all-servers media-audio in pass" \
	"$(exj udp 198.51.100.99:40000 192.0.2.12:50000)"
expect_eq "explain tcp on a port no role has is unclassified" "None None None pass" \
	"$(exj tcp 198.51.100.7:40000 192.0.2.11:9)"
expect_eq "explain IPv6 unclassified" "None None None pass" \
	"$(exj udp '[2001:db8:99::1]:1000' '[2001:db8:99::2]:1000')"
out=$(ex --json udp 198.51.100.99:40000 203.0.113.11:3478)
expect_eq "explain --json keys (classified)" \
	"direction dst line ports proto role rule service service_name src verdict" \
	"$(json_get '" ".join(sorted(j))' <<<"$out")"
expect_eq "explain --json: proto, src, dst, ports echo the packet and rule" \
	"udp 198.51.100.99:40000 203.0.113.11:3478 3478" \
	"$(json_get '" ".join(str(j[k]) for k in ("proto", "src", "dst", "ports"))' <<<"$out")"
line=$(json_get 'j["line"]' <<<"$out")
check "explain --json: line points at the stun rule of the matrix" \
	grep -Eq '^rule +edge-external +stun +udp +3478 ' <<<"$(sed -n "${line}p" "$MAPS/sfb2015.matrix")"
out=$(ex --json tcp 198.51.100.7:40000 192.0.2.11:9)
expect_eq "explain --json keys (unclassified): counter, direction null" \
	"counter=unclassified direction=None dst role=None rule=None service=None service_name=None src verdict=pass" \
	"$(json_get '" ".join(k if k in ("src", "dst", "proto") else "%s=%s" % (k, j[k]) for k in sorted(j) if k != "proto")' <<<"$out")"
out=$(ex udp 198.51.100.99:40000 203.0.113.11:3478)
check "explain (text): role, service, rule, direction, verdict lines" \
	test "$(grep -Ec '^(packet|role|service|rule|direction|verdict) ' <<<"$out")" -eq 6
check "explain (text): rule names the matrix file and line" grep -Eq "^rule +#[0-9]+: edge-external udp 3478, .*sfb2015.matrix:$line$" <<<"$out"
out=$(ex tcp 198.51.100.7:40000 192.0.2.11:9)
check "explain (text) of an unclassified packet: counter unclassified" grep -Eq '^counter +unclassified$' <<<"$out"
expect_eq "explain --product lync2013" "frontend sip-tls in pass" \
	"$(lx $N explain --product lync2013 --site "$SITE" --json tcp 198.51.100.7:50123 192.0.2.11:5061 | json_get "$JQ")"
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
	"explain --site $SITE tcp 192.0.2.1:1 192.0.2.11:5061"; do
	# shellcheck disable=SC2086
	refused "not root: ${args%% *}" "^lyncxdp: this command needs root" \
		nsenter --net=/run/netns/$N "${NOBODY[@]}" "$LYNCXDP" $args
done
nobpffs() {
	unshare -m sh -c 'while mountpoint -q /sys/fs/bpf; do umount /sys/fs/bpf || exit 99; done
		exec nsenter --net=/run/netns/'"$N"' "$@"' sh "$LYNCXDP" "$@"
}
for args in "attach lxcli-a --site $SITE" "status" "stats" "detach lxcli-a"; do
	# shellcheck disable=SC2086
	refused "bpffs not mounted: ${args%% *}" "^lyncxdp: bpffs is not mounted at /sys/fs/bpf \(mount -t bpf" \
		nobpffs $args
done
check "the host's /sys/fs/bpf is still mounted" mountpoint -q /sys/fs/bpf

# ---- attach refusals ----
refused "attach to an unknown interface" "^lyncxdp: lxcli-nope: no such interface$" \
	lx $N attach lxcli-nope --site "$SITE"
ip -n $N link set dev lxcli-b xdpgeneric obj "$TOP/build/lyncxdp.bpf.o" sec xdp 2>"$T/err" ||
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
refused "not root, attached: detach" "needs root" nsenter --net=/run/netns/$N "${NOBODY[@]}" "$LYNCXDP" detach lxcli-a
refused "bpffs not mounted, attached: detach" "bpffs is not mounted" nobpffs detach lxcli-a
refused "bpffs not mounted, attached: stats" "bpffs is not mounted" nobpffs stats
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
