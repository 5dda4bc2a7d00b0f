#!/usr/bin/env bash
# End to end on a live veth link: lyncxdp attached in a server namespace must count exactly
# the frames a client namespace sends it, frame for frame and byte for byte, compared with a
# tcpdump capture on the same interface. Then the interface filter of `stats`, `--interval`,
# `status`, a second interface sharing the tables, detaching one then the last, generic mode.
#
#   lxe2e-c (client)  lxe2e-c0 ==== lxe2e-s0  lxe2e-s (server)  192.0.2.0/24     2001:db8:1::/64
#                     lxe2e-c1 ==== lxe2e-s1                    198.51.100.0/24  2001:db8:2::/64
#
# Site: tests/sites/e2e.site (server = frontend, .2 = edge-external, client v4 = clients).
# Every flow uses its own client source port, so the capture tells its frames apart; the
# counters are read before and after each flow and must move by exactly the captured frames.
# shellcheck shell=bash
set -uo pipefail
# shellcheck source=tests/lib.sh
source "$(dirname "$0")/lib.sh"

C=lxe2e-c
S=lxe2e-s
SITE=$TOP/tests/sites/e2e.site
PRODUCT=sfb2015

suite_start lxe2e-

# ---- flows: measured now, checked against the captures at the end ----
F_NAME=() F_CAP=() F_MAC=() F_SPORT=() F_KEY=() F_BEFORE=() F_AFTER=() F_SENT=()
nsnap=0

# snap [IFACE]: a stats --json report in a new file; sets SNAP to its path.
snap() {
	nsnap=$((nsnap + 1))
	SNAP=$T/snap$nsnap.json
	settle "$@"
	lx $S stats "$@" --json >"$SNAP"
}

# flow NAME CAPTURE MAC SPORT KEY SENT [IFACE] -- CMD...: runs CMD (the flow) between two
# snapshots and records what to check. SENT is "PACKETS BYTES" when known beforehand, or "-"
# to take CMD's own output (ns_udp_send prints it), or "" when only the capture knows.
flow() {
	local name=$1 cap=$2 mac=$3 sport=$4 key=$5 sent=$6 iface=()
	shift 6
	if [ "$1" != -- ]; then
		iface=("$1")
		shift
	fi
	shift
	snap "${iface[@]}"
	local before=$SNAP out rc
	out=$("$@")
	rc=$?
	[ "$rc" -eq 0 ] || fail "$name: the traffic did not go through (exit $rc)"
	[ "$sent" = - ] && sent=$out
	snap "${iface[@]}"
	F_NAME+=("$name") F_CAP+=("$cap") F_MAC+=("$mac") F_SPORT+=("$sport") F_KEY+=("$key")
	F_BEFORE+=("$before") F_AFTER+=("$SNAP") F_SENT+=("$sent")
}

# tcp_send NS SOCAT-ADDRESS SPORT FILE: push FILE over a new connection, wait until it is closed.
tcp_send() {
	nsenter --net="/run/netns/$1" timeout 20 socat -T 5 -u "OPEN:$4" "$2,sourceport=$3" &&
		ns_wait_tcp_closed "$1" "$3"
}

# tcp_fetch NS SOCAT-ADDRESS SPORT FILE: read what the server sends into FILE until it closes.
tcp_fetch() {
	nsenter --net="/run/netns/$1" timeout 20 socat -T 5 -u "$2,sourceport=$3" "CREATE:$4" &&
		ns_wait_tcp_closed "$1" "$3"
}

# explain_rule NAME ROLE DIR PROTO SRC DST: the rule id the real program picks for that packet
# (explain --json), checked to belong to ROLE in direction DIR; sets RULE.
explain_rule() {
	local name=$1 role=$2 dir=$3 out got
	out=$("$LYNCXDP" explain --site "$SITE" --product $PRODUCT --json "$4" "$5" "$6")
	got=$(echo "$out" | json_get '"%s %s" % (j["role"], j["direction"])')
	RULE=$(echo "$out" | json_get 'j["rule"]')
	expect_eq "explain: $name is $role, $dir (rule $RULE)" "$role $dir" "$got"
}

# ---- preconditions ----
check "lyncxdp is built" test -x "$LYNCXDP"
check "check: the e2e site compiles against $PRODUCT" "$LYNCXDP" check --site "$SITE" --product $PRODUCT
nrules=$(grep -Ec '^(rule|outbound) ' "$MAPS/$PRODUCT.matrix")
nactive=$("$LYNCXDP" check --site "$SITE" --product $PRODUCT | sed -n 's/.*(\([0-9]*\) active.*/\1/p')
head -c 150000 /dev/urandom >"$T/blob150k"
head -c 60000 /dev/urandom >"$T/blob60k"
head -c 300000 /dev/urandom >"$T/blob300k"
head -c 80000 /dev/urandom >"$T/blob80k"

# ---- namespaces and the first link ----
two_ns_veth $C lxe2e-c0 $S lxe2e-s0
ns_addr $C lxe2e-c0 192.0.2.100/24 2001:db8:1::100/64
ns_addr $S lxe2e-s0 192.0.2.1/24 192.0.2.2/24 2001:db8:1::1/64 2001:db8:1::2/64
CMAC0=$(ns_mac $C lxe2e-c0)

# ---- attach, status ----
out=$(lx $S attach lxe2e-s0 --site "$SITE" --product $PRODUCT --mode native 2>&1)
rc=$?
expect_eq "attach lxe2e-s0 --mode native exits 0 ($out)" 0 "$rc"
[ "$rc" -eq 0 ] || {
	suite_done
	exit 1
}
expect_eq "ip link shows native XDP on lxe2e-s0" native "$(ns_xdp $S lxe2e-s0)"
expect_eq "pins: links/ns<netns inode>_if<ifindex> and maps/ under /sys/fs/bpf/lyncxdp" \
	"links/ns$(stat -L -c %i /run/netns/$S)_if$(ip -n $S -o link show lxe2e-s0 | cut -d: -f1) maps/lx_state" \
	"$(cd /sys/fs/bpf/lyncxdp && echo links/ns*_if* maps/lx_state)"

lx $S status --json >"$T/status1.json"
st() { json_get "$1" <"$T/status1.json"; }
expect_eq "status --json: attached" True "$(st 'j["attached"]')"
expect_eq "status --json: product" $PRODUCT "$(st 'j["product"]')"
expect_eq "status --json: matrix" "$(realpath "$MAPS/$PRODUCT.matrix")" "$(st 'j["matrix"]')"
expect_eq "status --json: site" "$(realpath "$SITE")" "$(st 'j["site"]')"
expect_eq "status --json: rules (rule and outbound lines of the matrix)" "$nrules" "$(st 'j["rules"]')"
expect_eq "status --json: rules_active (as check says)" "$nactive" "$(st 'j["rules_active"]')"
expect_eq "status --json: prefix and group counts" "4 3 3" \
	"$(st '"%d %d %d" % (j["prefixes_ipv4"], j["prefixes_ipv6"], j["role_groups"])')"
expect_eq "status --json: one interface, lxe2e-s0, native, alive, policy monitor, tag off (defaults)" \
	"lxe2e-s0 native True monitor False" \
	"$(st '" ".join("%s %s %s %s %s" % (i["name"], i["mode"], i["alive"], i["policy"], i["tag"]) for i in j["interfaces"])')"
expect_eq "status --json: ifindex and prog_id match ip link" \
	"$(ip -n $S -o link show lxe2e-s0 | cut -d: -f1) $(ip -n $S -d link show lxe2e-s0 | sed -n 's/.*prog\/xdp id \([0-9]*\).*/\1/p')" \
	"$(st '"%d %d" % (j["interfaces"][0]["ifindex"], j["interfaces"][0]["prog_id"])')"
out=$(lx $S status)
check "status (table) names the product, site and interface" \
	grep -Eq "^product +$PRODUCT" <<<"$out"
check "status (table): lxe2e-s0 native running" grep -Eq '^lxe2e-s0 .* native .* running$' <<<"$out"

# ---- which rule each flow should hit, from the real program (explain) ----
explain_rule "tcp to frontend:5061" frontend in tcp 192.0.2.100:40001 192.0.2.1:5061
R_SIP=$RULE
explain_rule "tcp6 to frontend:5061" frontend in tcp '[2001:db8:1::100]:40002' '[2001:db8:1::1]:5061'
expect_eq "IPv4 and IPv6 SIP/TLS share one rule" "$R_SIP" "$RULE"
explain_rule "tcp to frontend:443" frontend in tcp 192.0.2.100:40003 192.0.2.1:443
R_WEB=$RULE
explain_rule "udp to edge-external:3478" edge-external in udp 192.0.2.100:40004 192.0.2.2:3478
R_STUN=$RULE
explain_rule "udp to edge-external:50000" edge-external in udp 192.0.2.100:40006 192.0.2.2:50000
R_RELAY=$RULE
explain_rule "udp to frontend:50010 (all-servers includes frontend)" all-servers in \
	udp '[2001:db8:1::100]:40007' '[2001:db8:1::1]:50010'
R_AUDIO=$RULE
explain_rule "udp from clients:50020 to frontend:9" clients out udp 192.0.2.100:50020 192.0.2.1:9
R_CLIENT=$RULE
expect_eq "explain: udp6 from an address with no role to port 9 is unclassified" "None None" \
	"$("$LYNCXDP" explain --site "$SITE" --json udp '[2001:db8:1::100]:40008' '[2001:db8:1::1]:9' |
		json_get '"%s %s" % (j["rule"], j["direction"])')"

# ---- traffic on the first link ----
ns_capture_start $S lxe2e-s0 "$T/s0.pcap" || fail "tcpdump on lxe2e-s0"
ns_bg $S timeout 60 socat -T 5 -u TCP4-LISTEN:5061,bind=192.0.2.1,reuseaddr,fork OPEN:/dev/null
ns_bg $S timeout 20 socat -T 5 -u 'TCP6-LISTEN:5061,bind=[2001:db8:1::1],reuseaddr,fork' OPEN:/dev/null
ns_bg $S timeout 20 socat -T 5 -u "OPEN:$T/blob300k" TCP4-LISTEN:443,bind=192.0.2.1,reuseaddr
ns_wait_listen $S tcp 5061 && ns_wait_listen $S tcp 443 || fail "socat listeners"

flow "tcp 150 KB to frontend:5061" s0 "$CMAC0" 40001 "rule:$R_SIP:in" "" -- \
	tcp_send $C TCP4:192.0.2.1:5061 40001 "$T/blob150k"
flow "tcp6 60 KB to frontend:5061" s0 "$CMAC0" 40002 "rule:$R_SIP:in" "" -- \
	tcp_send $C 'TCP6:[2001:db8:1::1]:5061' 40002 "$T/blob60k"
flow "tcp download of 300 KB from frontend:443 (client ACKs)" s0 "$CMAC0" 40003 "rule:$R_WEB:in" "" -- \
	tcp_fetch $C TCP4:192.0.2.1:443 40003 "$T/fetched"
expect_eq "monitor mode passes every packet: the 300 KB download arrived whole" \
	"$(md5sum <"$T/blob300k")" "$(md5sum <"$T/fetched" 2>&1)"
flow "37 udp datagrams to edge-external:3478" s0 "$CMAC0" 40004 "rule:$R_STUN:in" - -- \
	ns_udp_send $C 192.0.2.100 40004 192.0.2.2 3478 37
flow "23 udp6 datagrams to edge-external:3478" s0 "$CMAC0" 40005 "rule:$R_STUN:in" - -- \
	ns_udp_send $C 2001:db8:1::100 40005 2001:db8:1::2 3478 23
flow "40 udp datagrams to edge-external:50000-50009" s0 "$CMAC0" 40006 "rule:$R_RELAY:in" - -- \
	ns_udp_send $C 192.0.2.100 40006 192.0.2.2 50000 40 10
flow "15 udp6 datagrams to frontend:50010 (audio)" s0 "$CMAC0" 40007 "rule:$R_AUDIO:in" - -- \
	ns_udp_send $C 2001:db8:1::100 40007 2001:db8:1::1 50010 15
flow "12 udp datagrams from clients:50020 (direction out)" s0 "$CMAC0" 50020 "rule:$R_CLIENT:out" - -- \
	ns_udp_send $C 192.0.2.100 50020 192.0.2.1 9 12
flow "9 udp6 datagrams matching no rule" s0 "$CMAC0" 40008 unclassified - -- \
	ns_udp_send $C 2001:db8:1::100 40008 2001:db8:1::1 9 9

# Datagrams larger than the MTU: the first fragment carries the ports and is classified, the
# others are counted as fragments.
snap
frag_before=$SNAP
ns_udp_send $C 192.0.2.100 40014 192.0.2.2 3478 5 1 0 3000 >/dev/null || fail "fragmented udp"
ns_udp_send $C 2001:db8:1::100 40015 2001:db8:1::2 3478 4 1 0 3000 >/dev/null || fail "fragmented udp6"
snap
frag_after=$SNAP

# ---- stats: interface filter, table, --interval ----
settle
lx $S stats --json >"$T/all.json"
lx $S stats lxe2e-s0 --json >"$T/s0.json"
expect_eq "stats lxe2e-s0 --json = stats --json with one interface" \
	"$(jq -c .services "$T/all.json")" "$(jq -c .services "$T/s0.json")"
out=$(lx $S stats)
want=$(stats_get "$T/all.json" "rule:$R_STUN:in")
check "stats (table): edge-external stun udp 3478 in $want" \
	grep -Eq "^edge-external +stun +udp +3478 +in +${want% *} +${want#* }( .*)?\$" <<<"$out"
check "stats (table): no row for rules that counted nothing" \
	test "$(grep -Ec ' (in|out) +0 +0( |$)' <<<"$out")" -eq 0
check "stats --all (table) lists every active rule in both directions" \
	test "$(lx $S stats --all | grep -Ec ' (in|out) +[0-9]+ +[0-9]+( +[0-9]+ +[0-9.]+%)?$')" -eq $((2 * nactive))
check "stats --json: services lists every active rule in both directions" \
	test "$(jq '.services | length' "$T/all.json")" -eq $((2 * nactive))
check "stats --json: counters unclassified non_ip fragments icmp other_l4 malformed total" \
	jq -e '[.unclassified, .non_ip, .fragments, .icmp, .other_l4, .malformed, .total]
		| all(.packets >= 0 and .bytes >= 0)' "$T/all.json"
check "stats --json: no policy drop nor would-drop counted (the site protects nothing)" jq -e \
	'(.drops | keys) == (.would_drop | keys) and (.drops | length) >= 5 and
	 ([.drops[], .would_drop[]] | all(.packets == 0 and .bytes == 0))' "$T/all.json"
check "stats --json: total = sum of every row and counter" jq -e \
	'.total.packets == ([.services[].packets] + [.unclassified, .non_ip, .fragments, .icmp,
	 .other_l4, .malformed | .packets] | add)' "$T/all.json"

# --interval with a trickle of STUN running: two reports, each with rates.
snap
before=$SNAP
ns_udp_send $C 192.0.2.100 40009 192.0.2.2 3478 60 1 0.025 >"$T/trickle.out" &
trickle=$!
NS_PIDS+=("$trickle")
t0=$(date +%s.%N)
lx $S stats lxe2e-s0 --json --interval 0.5 --count 2 >"$T/interval.json"
rc=$?
t1=$(date +%s.%N)
wait $trickle
expect_eq "stats --interval 0.5 --count 2 exits 0" 0 "$rc"
reports=$($PY -c '
import json, sys
text, dec, out, i = open(sys.argv[1]).read(), json.JSONDecoder(), [], 0
while text[i:].strip():
    while text[i].isspace(): i += 1
    obj, i = dec.raw_decode(text, i)
    out.append(obj)
rows = [[r for r in o["services"] if r["rule"] == int(sys.argv[2]) and r["direction"] == "in"][0] for o in out]
print(len(out), all("packets_per_second" in o["total"] and "packets_per_second" in r for o, r in zip(out, rows)),
      max(r["packets_per_second"] for r in rows) > 0)
' "$T/interval.json" "$R_STUN" 2>&1)
expect_eq "stats --json --interval 0.5 --count 2: 2 reports, rates in each, STUN rate > 0" \
	"2 True True" "$reports"
check "stats --interval 0.5 --count 2 takes about 1 s" \
	$PY -c "import sys; sys.exit(not 0.9 <= $t1 - $t0 < 10)"
out=$(lx $S stats --interval 0.5 --count 2)
expect_eq "stats --interval (table): 2 reports with PPS and BIT/S columns" 2 \
	"$(grep -Ec '^ROLE .* PPS +BIT/S$' <<<"$out")"
snap
read -r tp tb <"$T/trickle.out"
expect_delta "60 udp datagrams to edge-external:3478 during --interval" "$before" "$SNAP" \
	"rule:$R_STUN:in" "$tp" "$tb"

# ---- a second interface in the same namespace shares the tables ----
veth_pair $C lxe2e-c1 $S lxe2e-s1
ns_addr $C lxe2e-c1 198.51.100.100/24 2001:db8:2::100/64
ns_addr $S lxe2e-s1 198.51.100.1/24 2001:db8:2::1/64
CMAC1=$(ns_mac $C lxe2e-c1)
out=$(lx $S attach lxe2e-s1 --site "$SITE" --product $PRODUCT 2>&1)
expect_eq "attach lxe2e-s1 (same files) exits 0 ($out)" 0 $?
expect_eq "ip link shows native XDP on lxe2e-s1" native "$(ns_xdp $S lxe2e-s1)"
lx $S status --json >"$T/status2.json"
expect_eq "status --json lists both interfaces, native, alive" \
	"lxe2e-s0 native True,lxe2e-s1 native True" \
	"$(json_get '",".join(sorted("%s %s %s" % (i["name"], i["mode"], i["alive"]) for i in j["interfaces"]))' <"$T/status2.json")"
expect_eq "status --json: loaded_at unchanged by the second attach (shared tables)" \
	"$(jq -r .loaded_at "$T/status1.json")" "$(jq -r .loaded_at "$T/status2.json")"
expect_eq "status --json: lxe2e-s0 keeps its program" \
	"$(jq -c '.interfaces[] | select(.name == "lxe2e-s0") | [.ifindex, .prog_id, .link_id]' "$T/status1.json")" \
	"$(jq -c '.interfaces[] | select(.name == "lxe2e-s0") | [.ifindex, .prog_id, .link_id]' "$T/status2.json")"
check "stats lxe2e-s1 --json: a new interface starts from zero" \
	jq -e '([.services[].packets] | add) == 0 and .unclassified.packets == 0' <(lx $S stats lxe2e-s1 --json)

ns_capture_start $S lxe2e-s1 "$T/s1.pcap" || fail "tcpdump on lxe2e-s1"
snap
all0=$SNAP
snap lxe2e-s0
s0a=$SNAP
flow "25 udp datagrams to frontend:50030 over lxe2e-s1 (stats lxe2e-s1)" s1 "$CMAC1" 40010 \
	"rule:$R_AUDIO:in" - lxe2e-s1 -- ns_udp_send $C 198.51.100.100 40010 198.51.100.1 50030 25
snap lxe2e-s0
s0b=$SNAP
snap
all1=$SNAP
expect_delta "stats lxe2e-s0: unchanged by traffic on lxe2e-s1" "$s0a" "$s0b" unclassified 0 0
expect_delta "stats (every interface): counts the lxe2e-s1 traffic" "$all0" "$all1" \
	"rule:$R_AUDIO:in" ${F_SENT[-1]}
out=$(lx $S stats lxe2e-s1)
check "stats lxe2e-s1 (table): the audio row shows 25 packets" \
	grep -Eq '^all-servers +media-audio +udp +49152-57500 +in +25 ' <<<"$out"

# ---- detach one: the other keeps counting ----
out=$(lx $S detach lxe2e-s0 2>&1)
expect_eq "detach lxe2e-s0 exits 0 ($out)" 0 $?
expect_eq "no XDP left on lxe2e-s0" none "$(ns_xdp $S lxe2e-s0)"
expect_eq "lxe2e-s1 still has native XDP" native "$(ns_xdp $S lxe2e-s1)"
check "pins stay while lxe2e-s1 is attached" test -e /sys/fs/bpf/lyncxdp/maps/lx_state
expect_eq "status --json: only lxe2e-s1 left" "lxe2e-s1" \
	"$(lx $S status --json | json_get '",".join(i["name"] for i in j["interfaces"])')"
check "stats lxe2e-s1 keeps its 25 audio packets after lxe2e-s0 left" \
	grep -Eq '^all-servers +media-audio +udp +49152-57500 +in +25 ' <<<"$(lx $S stats lxe2e-s1)"
out=$(lx $S attach lxe2e-s0 --site "$SITE" --product $PRODUCT 2>&1)
expect_eq "attach lxe2e-s0 again while lxe2e-s1 runs ($out)" 0 $?
check "stats lxe2e-s0: the re-attached interface starts from zero, not from its old counts" \
	jq -e '([.services[].packets] | add) == 0 and .unclassified.packets == 0 and .fragments.packets == 0' \
	<(lx $S stats lxe2e-s0 --json)
out=$(lx $S detach lxe2e-s0 2>&1)
expect_eq "detach lxe2e-s0 again ($out)" 0 $?
ns_bg $S timeout 20 socat -T 5 -u 'TCP6-LISTEN:5061,bind=[2001:db8:2::1],reuseaddr' OPEN:/dev/null
ns_wait_listen $S tcp 5061 || fail "socat listener on [2001:db8:2::1]:5061"
flow "tcp6 80 KB to frontend:5061 over lxe2e-s1 after lxe2e-s0 left" s1 "$CMAC1" 40011 \
	"rule:$R_SIP:in" "" -- tcp_send $C 'TCP6:[2001:db8:2::1]:5061' 40011 "$T/blob80k"

# ---- detach the last: every pin goes ----
out=$(lx $S detach lxe2e-s1 2>&1)
expect_eq "detach lxe2e-s1 (the last) exits 0 ($out)" 0 $?
expect_no_pins "the last detach removed /sys/fs/bpf/lyncxdp"
expect_eq "no XDP left on lxe2e-s0 and lxe2e-s1" "none none" \
	"$(ns_xdp $S lxe2e-s0) $(ns_xdp $S lxe2e-s1)"
expect_eq "status --json: not attached" "False 0" \
	"$(lx $S status --json | json_get '"%s %d" % (j["attached"], len(j["interfaces"]))')"
ns_capture_stop "$T/s1.pcap"

# ---- generic mode ----
out=$(lx $S attach lxe2e-s0 --site "$SITE" --product $PRODUCT --mode generic 2>&1)
expect_eq "attach lxe2e-s0 --mode generic exits 0 ($out)" 0 $?
expect_eq "ip link shows generic XDP (xdpgeneric) on lxe2e-s0" generic "$(ns_xdp $S lxe2e-s0)"
expect_eq "status --json: mode generic" generic \
	"$(lx $S status --json | json_get 'j["interfaces"][0]["mode"]')"
check "stats: a new attach starts from zero" \
	jq -e '([.services[].packets] | add) == 0 and .unclassified.packets == 0' <(lx $S stats --json)
flow "generic: 31 udp datagrams to edge-external:3478" s0 "$CMAC0" 40012 "rule:$R_STUN:in" - -- \
	ns_udp_send $C 192.0.2.100 40012 192.0.2.2 3478 31
flow "generic: tcp 150 KB to frontend:5061" s0 "$CMAC0" 40013 "rule:$R_SIP:in" "" -- \
	tcp_send $C TCP4:192.0.2.1:5061 40013 "$T/blob150k"
out=$(lx $S detach lxe2e-s0 2>&1)
expect_eq "detach lxe2e-s0 (generic) exits 0 ($out)" 0 $?
expect_eq "no XDP left on lxe2e-s0 after generic detach" none "$(ns_xdp $S lxe2e-s0)"
expect_no_pins "no pins after the generic detach"
ns_capture_stop "$T/s0.pcap"

# ---- every flow against the captures ----
pcap_tsv "$T/s0.pcap" "$T/s0.tsv"
pcap_tsv "$T/s1.pcap" "$T/s1.tsv"
for i in "${!F_NAME[@]}"; do
	truth=$(pcap_flow "$T/${F_CAP[$i]}.tsv" "${F_MAC[$i]}" "${F_SPORT[$i]}")
	if [ -n "${F_SENT[$i]}" ]; then
		expect_eq "${F_NAME[$i]}: the capture shows what was sent" "${F_SENT[$i]}" "$truth"
	elif [ "${truth% *}" -lt 10 ]; then
		fail "${F_NAME[$i]}: the capture shows only $truth"
	fi
	expect_delta "${F_NAME[$i]}: lyncxdp counted every captured frame" \
		"${F_BEFORE[$i]}" "${F_AFTER[$i]}" "${F_KEY[$i]}" $truth
done

first=$(cat <(pcap_flow "$T/s0.tsv" "$CMAC0" 40014) <(pcap_flow "$T/s0.tsv" "$CMAC0" 40015) |
	awk '{p += $1; b += $2} END {print p, b}')
frags=$(pcap_frags "$T/s0.tsv" "$CMAC0")
expect_eq "9 udp datagrams of 3000 bytes (v4 and v6): 9 first and 18 other fragments captured" \
	"9 18" "${first% *} ${frags% *}"
expect_delta "fragmented datagrams: first fragments counted as stun, the others as fragments" \
	"$frag_before" "$frag_after" "rule:$R_STUN:in" $first fragments $frags

ns_cleanup
expect_clean lxe2e-
suite_done
