#!/usr/bin/env bash
# An Edge behind 1:1 NAT, end to end (issue 10, item 5): lyncxdp on the NAT gateway itself,
# which translates the Edge's private addresses to public ones with real nftables SNAT/DNAT
# (Microsoft's "symmetric NAT" Edge layout). XDP sees a frame before netfilter: on the outside
# leg the public address (before DNAT), on the perimeter leg the private one (before SNAT). The
# site says `nat PUBLIC PRIVATE`, so both are one host.
#
#   lxnat-o (Internet)   lxnat-o0 ==== lxnat-g0  lxnat-g (gateway, NAT)  lxnat-g1 ==== lxnat-e0  lxnat-e (Edge)
#   192.0.2.10/24, 2001:db8:c::10/64   .1, ::1 (default via .10)  .1, ::1   198.51.100.110/24, 2001:db8:e::110/64
#   public addresses of the Edge: 203.0.113.10, 2001:db8:ff::10 (routed by lxnat-o to the gateway)
#
# The same traffic runs in monitor, then in enforce, on both address families:
#  - federation: the Edge's own TLS-like TCP connection to an Internet 5061 (2 MB echoed back);
#  - inbound: an Internet client's upload to the public address's 5061 (Edge listener);
#  - DNS: the Edge's UDP queries to a real UDP server on 53 outside, answered through the NAT;
#  - the attack: a frame forged outside with the Edge's PUBLIC address as source, to the
#    attacker's 53 (it would open a flow for the attacker's "replies"), then those replies to
#    the public address, where the Edge listens: spoofed and unsolicited, they never reach it
#    under enforce (the gateway's default route points outside, so the reverse-path check alone
#    would take the forged frame for the Edge's);
#  - without the nat line (the layout before issue 10): every reply to the public address is
#    dropped, the false positive that issue reports.
# Monitor's would-drops equal enforce's drops, reason by reason.
# shellcheck shell=bash
set -uo pipefail
# shellcheck source=tests/lib.sh
source "$(dirname "$0")/lib.sh"

O=lxnat-o
G=lxnat-g
E=lxnat-e
O4=192.0.2.10 O6=2001:db8:c::10
GO4=192.0.2.1 GO6=2001:db8:c::1 GE4=198.51.100.1 GE6=2001:db8:e::1
PRIV4=198.51.100.110 PRIV6=2001:db8:e::110
PUB4=203.0.113.10 PUB6=2001:db8:ff::10
require_clean_start lxnat-
trap ns_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP # so that the EXIT trap runs
ns_tmpdir lxnat
T=$NS_TMP

LX_NS=$G # settle: the gateway's counters
# reasons drops|would_drop: "REASON PACKETS;..." of every reason, from stats --json
reasons() {
	settle
	lx $G stats --json | jq -r --arg k "$1" '.[$k] | to_entries | map("\(.key) \(.value.packets)") | join(";")'
}
# grown BEFORE AFTER: "REASON +N;..." of the reasons that grew
grown() {
	$PY - "$1" "$2" <<'EOF'
import sys
a = dict(x.rsplit(" ", 1) for x in sys.argv[1].split(";") if x)
b = dict(x.rsplit(" ", 1) for x in sys.argv[2].split(";") if x)
print(";".join("%s +%d" % (k, int(b[k]) - int(a.get(k, 0))) for k in sorted(b)
               if int(b[k]) != int(a.get(k, 0))))
EOF
}
received() { grep -c "^$O4 53 \|^$O6 53 " "$T/victim.log" 2>/dev/null; }

# ---- namespaces, addresses, routes, NAT ----
check "lyncxdp is built" test -x "$LYNCXDP"
check "nft is installed (scripts/install-deps.sh: nftables)" command -v nft
three_ns_path $O lxnat-o0 $G lxnat-g0 lxnat-g1 $E lxnat-e0
ns_addr $O lxnat-o0 $O4/24
ns_addr $O lxnat-o0 $O6/64
ns_addr $G lxnat-g0 $GO4/24
ns_addr $G lxnat-g0 $GO6/64
ns_addr $G lxnat-g1 $GE4/24
ns_addr $G lxnat-g1 $GE6/64
ns_addr $E lxnat-e0 $PRIV4/24
ns_addr $E lxnat-e0 $PRIV6/64
ip -n $O route add $PUB4/32 via $GO4
ip -n $O -6 route add $PUB6/128 via $GO6
ip -n $G route add default via $O4 # the gateway's upstream: the public address routes outside
ip -n $G -6 route add default via $O6
ip -n $E route add default via $GE4
ip -n $E -6 route add default via $GE6
ip netns exec $G sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
ip netns exec $E sysctl -qw net.ipv4.ip_local_port_range="40000 44999"
cat >"$T/nat.nft" <<EOF
table ip lxnat {
	chain pre { type nat hook prerouting priority dstnat; ip daddr $PUB4 dnat to $PRIV4; }
	chain post { type nat hook postrouting priority srcnat; oifname "lxnat-g0" ip saddr $PRIV4 snat to $PUB4; }
}
table ip lxraw {
	# The gateway's own anti-spoofing for its NAT address, after XDP: a forged frame from the
	# public address must not reach conntrack (it would turn the attacker's answers into
	# replies of its entry, never DNAT'd). lyncxdp sees the frame before this: the frame must
	# not open a flow there either.
	chain pre { type filter hook prerouting priority raw; iifname "lxnat-g0" ip saddr $PUB4 drop; }
}
table ip6 lxraw {
	chain pre { type filter hook prerouting priority raw; iifname "lxnat-g0" ip6 saddr $PUB6 drop; }
}
table ip6 lxnat {
	chain pre { type nat hook prerouting priority dstnat; ip6 daddr $PUB6 dnat to $PRIV6; }
	chain post { type nat hook postrouting priority srcnat; oifname "lxnat-g0" ip6 saddr $PRIV6 snat to $PUB6; }
}
EOF
check "nftables: 1:1 SNAT/DNAT of the Edge in the gateway" ip netns exec $G nft -f "$T/nat.nft"
GMAC=$(ns_mac $G lxnat-g0)

cat >"$T/nat.site" <<EOF
protect edge-external
edge-external $PRIV4 $PRIV6
nat $PUB4 $PRIV4
nat $PUB6 $PRIV6
EOF
grep -v '^nat ' "$T/nat.site" | sed "s/^edge-external .*/edge-external $PUB4 $PUB6/" >"$T/before.site"
check "check: the nat site compiles" "$LYNCXDP" check --site "$T/nat.site"

head -c 2000000 /dev/urandom >"$T/2m"
head -c 1000000 /dev/urandom >"$T/1m"
# The partner sends each SYN-ACK once: the half-open connections the false positive (1.) leaves,
# their SYN-ACKs dropped, must not retransmit into the counts of 2. (up to 63 s later).
check "the partner answers each SYN once (tcp_synack_retries 0)" \
	ip netns exec $O sysctl -qw net.ipv4.tcp_synack_retries=0
serve $O tcp_server 5061 echo  # a federation partner
serve $O udp_echo 53           # a DNS server (answers every query)
serve $E tcp_server 5061 sink  # the Access Edge
serve $E media 33001 "$T/victim.log" "$T/victim.ctrl" # the Edge port the attacker aims at

# traffic POLICY: the legitimate cases, then the attack
traffic() {
	local p=$1 fam dst pub src n0
	for fam in 4 6; do
		if [ $fam = 4 ]; then dst=$O4 pub=$PUB4 src=$PRIV4; else dst=$O6 pub=$PUB6 src=$PRIV6; fi
		expect_eq "$p: the Edge's federation connection to $dst:5061 (SNAT): 2 MB echoed back intact" \
			"$(digest "$T/2m")" "$(h $E tcp_client "$dst" 5061 "$T/2m" echo 0 3)"
		expect_eq "$p: an Internet client's upload to the public $pub:5061 (DNAT) arrives intact" \
			"$(digest "$T/1m")" "$(h $O tcp_client "$pub" 5061 "$T/1m" sink 0 3)"
		expect_eq "$p: the Edge's DNS queries from $src to $dst:53: 4 queries, 4 answers" 4 \
			"$(h $E udp_send "$src" 33000 "$dst" 53 4 2)"
		# the attack: a "query" forged from the public address, then the "answers"
		n0=$(received)
		h $O spoof lxnat-o0 "$GMAC" "$pub" "$dst" udp 33001 53 - 1 >/dev/null
		h $O spoof lxnat-o0 "$GMAC" "$dst" "$pub" udp 53 33001 - 3 >/dev/null
		sleep 0.3
		if [ "$p" = enforce ]; then
			expect_eq "$p: the attacker's answers to the public $pub:33001 never reach the Edge" \
				"$n0" "$(received)"
		else
			expect_eq "$p: the attacker's answers to the public $pub:33001 reach the Edge (DNAT)" \
				"$((n0 + 3))" "$(received)"
		fi
	done
}

# ---- 1. without the nat line: the false positive ----
for i in lxnat-g0 lxnat-g1; do
	out=$(lx $G attach $i --site "$T/before.site" --policy enforce 2>&1)
	expect_eq "attach $i, site without nat, --policy enforce ($out)" 0 $?
done
b=$(reasons drops)
h $E tcp_client $O4 5061 "$T/1m" echo 0 2 >/dev/null 2>&1
rc=$?
check "no nat line, enforce: the Edge's federation connection gets no answer (exit $rc)" test "$rc" -ne 0
expect_eq "no nat line, enforce: the Edge's DNS queries get no answer" 0 \
	"$(h $E udp_send $PRIV4 33000 $O4 53 2 1)"
check "no nat line, enforce: the answers were dropped as unsolicited ($(grown "$b" "$(reasons drops)"))" \
	grep -q "unsolicited +" <<<"$(grown "$b" "$(reasons drops)")"
lx $G detach lxnat-g0 >/dev/null 2>&1
lx $G detach lxnat-g1 >/dev/null 2>&1

# ---- 2. with the nat line: monitor, then enforce ----
for i in lxnat-g0 lxnat-g1; do
	out=$(lx $G attach $i --site "$T/nat.site" --policy monitor 2>&1)
	expect_eq "attach $i --site nat.site --policy monitor ($out)" 0 $?
done
b=$(reasons would_drop)
bd=$(reasons drops)
traffic monitor
would=$(grown "$b" "$(reasons would_drop)")
expect_eq "monitor: would-drop exactly the 2 forged frames (spoofed) and the 6 answers (unsolicited)" \
	"spoofed +2;unsolicited +6" "$would"
expect_eq "monitor: nothing dropped" "" "$(grown "$bd" "$(reasons drops)")"

for i in lxnat-g0 lxnat-g1; do
	check "set $i --policy enforce" lx $G set $i --policy enforce
done
b=$(reasons drops)
traffic enforce
dropped=$(grown "$b" "$(reasons drops)")
expect_eq "enforce: dropped exactly what monitor would have dropped, reason by reason" "$would" "$dropped"
lx $G drops --json --seconds 3 >"$T/droplog.json" 2>"$T/droplog.err" &
dl=$!
sleep 1
h $O spoof lxnat-o0 "$GMAC" $PUB4 $O4 udp 33002 53 - 1 >/dev/null
wait $dl
check "drop log: the frame forged from the public address $PUB4:33002, dropped as spoofed" \
	grep -q "\"src\": \"$PUB4:33002\".*\"reason\": \"spoofed\".*\"action\": \"dropped\"" "$T/droplog.json"

for i in lxnat-g0 lxnat-g1; do lx $G detach $i >/dev/null 2>&1; done
expect_no_pins "no pins left"
suite_done
