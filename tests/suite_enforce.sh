#!/usr/bin/env bash
# Enforcement in front of an Edge, end to end: an internet client, a Linux gateway forwarding
# IPv4 and IPv6 between two veth pairs with lyncxdp attached to both of its interfaces, and an
# Edge (external interface, `protect edge-external`) with real listeners on TCP 443 and 5061,
# UDP 3478, the media relay port UDP 50010, and a forbidden TCP 8080.
#
#   lxenf-c (client)  lxenf-c0 ==== lxenf-g0  lxenf-g (gateway)  lxenf-g1 ==== lxenf-e0  lxenf-e (Edge)
#   198.51.100.10/24, 2001:db8:c::10/64 .1, ::1             .1, ::1     203.0.113.20/24, 2001:db8:e::20/64
#
# 1. monitor: everything passes; stats would_drop counts exactly the client's frames toward
#    the Edge that enforce would refuse, by reason (derived with tshark from a capture on the
#    client's interface).
# 2. enforce (`lyncxdp set` on both interfaces): the Edge's services work (a 10 MB upload over
#    443 arrives intact), the forbidden port gets nothing through, UDP to the media port passes
#    only once the Edge has sent from it, the Edge's own connection to an external 5061 gets
#    its answers, forged packets from source port 5061 never reach the Edge (capture in the
#    Edge's namespace), the drop log shows the drops with reason and 5-tuple, ARP and neighbour
#    discovery still work.
# 3. monitor -> enforce -> monitor while transfers run (one to the Edge's 443, one the Edge
#    opened itself): the data arrive intact, nothing is dropped, counters never go backwards.
# 4. spoofed protected sources (issue 10), with the default side (route: a reverse-path check
#    in the gateway's FIB): one frame "from" the Edge's 3389 to the attacker's 53 sent into the
#    outside leg opens nothing; the attacker's real connect() from 53 to a real listener on the
#    Edge's 3389 times out (UDP, the relay range and IPv6 alike); monitor counts them would-drop
#    spoofed; the drop log names them; replaying the client-side capture with
#    --side unprotected gives the same drops in monitor and enforce.
# 5. TCP closing (issue 10): the Edge's real connections to an external server's 80 survive
#    an attacker's blind RSTs and FIN (random sequence numbers, to the right port): the
#    server's data still arrive after the closing timeout; the server's real FIN and RST
#    close theirs (the flows' closing marks; after the timeout its packets on them are
#    dropped as unsolicited).
# 6. ICMP errors (issue 10): a host F behind the client over a 1280-byte link; transfers from
#    the Edge's listening 5269 and over the Edge's own connection to F's 5061 need path MTU
#    discovery: the client's kernel's "fragmentation needed" / "packet too big" pass the
#    gateway in enforce (related) and the data arrive intact; forged errors for a tuple the
#    Edge never used and router advertisements from a global address would-drop in monitor
#    and are dropped in enforce (icmp-unrelated, icmp-offlink), in the drop log too, and the
#    outside capture replays to the same drops in both policies.
# shellcheck shell=bash
set -uo pipefail
# shellcheck source=tests/lib.sh
source "$(dirname "$0")/lib.sh"

C=lxenf-c
G=lxenf-g
LX_NS=$G # settle reads its counters
E=lxenf-e
SITE=$TOP/tests/sites/enforce.site
C4=198.51.100.10 C6=2001:db8:c::10
E4=203.0.113.20 E6=2001:db8:e::20
GC4=198.51.100.1 GC6=2001:db8:c::1 GE4=203.0.113.1 GE6=2001:db8:e::1
FORGED_PORT=45678 # an Edge port outside its ephemeral range (40000-44999 below)
suite_start lxenf-
started=$SECONDS

# ---- helpers (h, serve, digest, snap: tests/lib.sh) ----
# policy_delta BEFORE AFTER drops|would_drop: "REASON PACKETS BYTES;..." of what grew.
policy_delta() {
	$PY - "$@" <<'EOF'
import json, sys
a, b = json.load(open(sys.argv[1]))[sys.argv[3]], json.load(open(sys.argv[2]))[sys.argv[3]]
print(";".join("%s %d %d" % (r, b[r]["packets"] - a[r]["packets"], b[r]["bytes"] - a[r]["bytes"])
               for r in ("port", "transport", "unsolicited", "fragment", "malformed")))
EOF
}
# cap_count PCAP FILTER: "PACKETS BYTES" (frame lengths) of the frames matching FILTER.
cap_count() {
	tshark -r "$1" -o ip.defragment:FALSE -o ipv6.defragment:FALSE -Y "$2" -T fields \
		-e frame.len 2>/dev/null | awk '{ n++; b += $1 } END { print n + 0, b + 0 }'
}
# expect_policy NAME BEFORE AFTER drops|would_drop PCAP: the counters grew by exactly the
# frames of PCAP (the client's side) that each reason's filter selects, nothing else.
TOE="(ip.dst == $E4 || ipv6.dst == $E6)"
expect_policy() {
	local name=$1 want
	want="port $(cap_count "$5" "$TOE && !icmp && !icmpv6 && tcp.dstport == 8080")"
	want+=";transport $(cap_count "$5" "$TOE && (icmp.type == 8 || icmpv6.type == 128)")"
	want+=";unsolicited $(cap_count "$5" "$TOE && !icmp && !icmpv6 && ((udp.dstport == 50010 && udp.srcport == 47001) || (tcp.srcport == 5061 && tcp.dstport >= $FORGED_PORT && tcp.dstport < $FORGED_PORT + 20))")"
	want+=";fragment 0 0;malformed 0 0"
	expect_eq "$name" "$want" "$(policy_delta "$2" "$3" "$4")"
}

# ---- namespaces, addresses, routes, forwarding ----
check "lyncxdp is built" test -x "$LYNCXDP"
check "check: the enforce site compiles" "$LYNCXDP" check --site "$SITE"
three_ns_path $C lxenf-c0 $G lxenf-g0 lxenf-g1 $E lxenf-e0
ns_addr $C lxenf-c0 $C4/24 $C6/64
ns_addr $G lxenf-g0 $GC4/24 $GC6/64
ns_addr $G lxenf-g1 $GE4/24 $GE6/64
ns_addr $E lxenf-e0 $E4/24 $E6/64
ip -n $C route add default via $GC4
ip -n $C -6 route add default via $GC6
ip -n $E route add default via $GE4
ip -n $E -6 route add default via $GE6
ip netns exec $G sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
ip netns exec $E sysctl -qw net.ipv4.ip_local_port_range="40000 44999"
GMAC=$(ns_mac $G lxenf-g0)

head -c 10485760 /dev/urandom >"$T/10m"
head -c 1048576 /dev/urandom >"$T/1m"
head -c 2000000 /dev/urandom >"$T/2m"
head -c 24000000 /dev/urandom >"$T/24m"
head -c 6000000 /dev/urandom >"$T/6m"
echo "hello 8080" >"$T/small"

serve $E tcp_server 443 sink
serve $E tcp_server 5061 sink
serve $E tcp_server 8080 sink
serve $E udp_echo 3478
serve $E media 50010 "$T/media.log" "$T/media.ctrl"
serve $E tcp_server 3389 sink # not an Edge port: what a spoofed flow would open
serve $E udp_echo 3390
serve $C tcp_server 5061 echo # an "external" SIP server the Edge connects to

# ---- attach, monitor ----
for i in lxenf-g0 lxenf-g1; do
	out=$(lx $G attach $i --site "$SITE" --policy monitor 2>&1)
	expect_eq "attach $i --policy monitor ($out)" 0 $?
done
lx $G status --json >"$T/status-attach.json"
expect_eq "status --json: both interfaces, monitor, side route (the default)" \
	"lxenf-g0 monitor route,lxenf-g1 monitor route" \
	"$(json_get '",".join("%s %s %s" % (i["name"], i["policy"], i["side"]) for i in j["interfaces"])' <"$T/status-attach.json")"
check "status: the SIDE column shows route" grep -q "^lxenf-g0 .* route " <<<"$(lx $G status)"

# connection checks, the same in both policies
svc_checks() {
	local p=$1
	expect_eq "$p: TCP upload of 1 MB to the Edge's 443 arrives intact" "$(digest "$T/1m")" \
		"$(h $C tcp_client $E4 443 "$T/1m" sink 0 3)"
	expect_eq "$p: TCP upload of 1 MB to the Edge's [IPv6]:443 arrives intact" "$(digest "$T/1m")" \
		"$(h $C tcp_client $E6 443 "$T/1m" sink 0 3)"
	expect_eq "$p: TCP to the Edge's 5061 works" "$(digest "$T/small")" \
		"$(h $C tcp_client $E4 5061 "$T/small" sink 0 3)"
	expect_eq "$p: UDP to the Edge's 3478: 5 datagrams, 5 answers" 5 \
		"$(h $C udp_send $C4 47100 $E4 3478 5 2)"
	expect_eq "$p: UDP to the Edge's [IPv6]:3478: 3 datagrams, 3 answers" 3 \
		"$(h $C udp_send $C6 47101 $E6 3478 3 2)"
	expect_eq "$p: the Edge's own connection to an external 5061: 2 MB echoed back intact" \
		"$(digest "$T/2m")" "$(h $E tcp_client $C4 5061 "$T/2m" echo 0 3)"
	expect_eq "$p: the same over IPv6" "$(digest "$T/1m")" "$(h $E tcp_client $C6 5061 "$T/1m" echo 0 3)"
}
media_from() { grep -c "^$C4 $1 " "$T/media.log" 2>/dev/null; }

snap m0
ns_capture_start $C lxenf-c0 "$T/mon.pcap" || fail "tcpdump on lxenf-c0"
ns_capture_start $E lxenf-e0 "$T/mon-edge.pcap" || fail "tcpdump on lxenf-e0"
svc_checks monitor
expect_eq "monitor: TCP to the forbidden 8080 connects and is served" "$(digest "$T/small")" \
	"$(h $C tcp_client $E4 8080 "$T/small" sink 0 3)"
expect_eq "monitor: TCP to the forbidden [IPv6]:8080 too" "$(digest "$T/small")" \
	"$(h $C tcp_client $E6 8080 "$T/small" sink 0 3)"
h $C udp_send $C4 47001 $E4 50010 5 0 >/dev/null
check "monitor: unsolicited UDP to the media port 50010 reaches the Edge (5 datagrams)" \
	test "$(sleep 0.3; media_from 47001)" = 5
# one forged packet per Edge port: the Edge answers each with a RST (see the check below)
for i in 0 1 2; do h $C forge lxenf-c0 "$GMAC" $C4 $E4 5061 $((FORGED_PORT + i)) 1; done
for i in 3 4; do h $C forge lxenf-c0 "$GMAC" $C6 $E6 5061 $((FORGED_PORT + i)) 1; done
expect_eq "monitor: ping from the client to the Edge: 2 requests, 2 answers" 2 "$(h $C ping $E4 2 2)"
ns_capture_stop "$T/mon.pcap"
ns_capture_stop "$T/mon-edge.pcap"
snap m1
expect_eq "monitor: the forged packets (source port 5061) reach the Edge (5, its capture)" "5" \
	"$(cap_count "$T/mon-edge.pcap" "tcp.srcport == 5061 && tcp.dstport >= $FORGED_PORT && tcp.dstport < $FORGED_PORT + 5" | cut -d' ' -f1)"
expect_policy "monitor: would_drop grew by the client's frames enforce refuses, by reason (tshark)" \
	"$T/m0.json" "$T/m1.json" would_drop "$T/mon.pcap"
expect_eq "monitor: nothing dropped" "port 0 0;transport 0 0;unsolicited 0 0;fragment 0 0;malformed 0 0" \
	"$(policy_delta "$T/m0.json" "$T/m1.json" drops)"
# Monitor must count what enforce would drop. Three forged packets to one Edge port: enforce
# drops all three (checked below); in monitor the first passes, the Edge answers it with a RST
# toward the peer's 5061, and that RST must not make the next two look like answers.
h $C forge lxenf-c0 "$GMAC" $C4 $E4 5061 $((FORGED_PORT + 10)) 3
snap m2
expect_eq "monitor: 3 forged packets to one Edge port: 3 would-drop unsolicited (enforce drops 3)" \
	"unsolicited 3 162" "$(policy_delta "$T/m1.json" "$T/m2.json" would_drop | tr ';' '\n' | grep unsolicited)"
check "monitor: the traffic was classified (edge-443 in, sip-tls to 5061 in, stun in, relay in)" \
	jq -e '[.services[] | select(.packets > 0) | "\(.service) \(.kind) \(.direction)"] as $s |
		["edge-443 listen in", "sip-tls outbound-to in", "stun listen in", "edge-media-relay outbound-from in"] |
		all(. as $k | $s | index($k))' "$T/m1.json"

# ---- enforce ----
for i in lxenf-g0 lxenf-g1; do
	out=$(lx $G set $i --policy enforce 2>&1)
	expect_eq "set $i --policy enforce ($out)" 0 $?
done
expect_eq "status --json: both interfaces enforce, same programs and links as attached" \
	"$(jq -c '[.interfaces[] | [.name, "enforce", .prog_id, .link_id]]' "$T/status-attach.json")" \
	"$(lx $G status --json | jq -c '[.interfaces[] | [.name, .policy, .prog_id, .link_id]]')"

snap e0
ns_bg $G timeout 60 "$LYNCXDP" drops --json --seconds 40 >"$T/drops.json" 2>"$T/drops.err"
DROPS_PID=$NS_BG_PID
sleep 0.5 # the reader is polling
ns_capture_start $C lxenf-c0 "$T/enf.pcap" || fail "tcpdump on lxenf-c0"
ns_capture_start $E lxenf-e0 "$T/enf-edge.pcap" || fail "tcpdump on lxenf-e0"
svc_checks enforce
expect_eq "enforce: a 10 MB upload to the Edge's 443 arrives intact (sha256)" "$(digest "$T/10m")" \
	"$(h $C tcp_client $E4 443 "$T/10m" sink 0 3)"
out=$(h $C tcp_client $E4 8080 "$T/small" sink 0 2)
check "enforce: TCP to the forbidden 8080 times out ($out)" grep -q 'connect failed: timed out' <<<"$out"
out=$(h $C tcp_client $E6 8080 "$T/small" sink 0 2)
check "enforce: TCP to the forbidden [IPv6]:8080 times out ($out)" grep -q 'connect failed: timed out' <<<"$out"
# media: unsolicited first, then the Edge sends from 50010 and the client's answers pass
n0=$(media_from 47001)
h $C udp_send $C4 47001 $E4 50010 5 0 >/dev/null
sleep 0.3
expect_eq "enforce: unsolicited UDP from the client to the media port 50010 does not arrive" \
	"$n0" "$(media_from 47001)"
ns_bg $C timeout 10 "$PY" "$NH" answer $C4 47000 4 5 >"$T/answer.out" 2>&1
answer_pid=$NS_BG_PID
sleep 0.3
echo "$C4 47000 3" >"$T/media.ctrl"
wait "$answer_pid"
expect_eq "enforce: the client heard the Edge's media port" "$E4 50010" "$(cat "$T/answer.out")"
sleep 0.3
expect_eq "enforce: after the Edge sent from 50010, the client's 4 answers arrive" 4 "$(media_from 47000)"
h $C udp_send $C4 47001 $E4 50010 2 0 >/dev/null
sleep 0.3
expect_eq "enforce: another client port to 50010 is still unsolicited (flows are per 5-tuple)" \
	"$n0" "$(media_from 47001)"
# forged answers from source port 5061, IPv4 and IPv6, to a port no forged packet used before
h $C forge lxenf-c0 "$GMAC" $C4 $E4 5061 $((FORGED_PORT + 15)) 3
h $C forge lxenf-c0 "$GMAC" $C6 $E6 5061 $((FORGED_PORT + 15)) 2
expect_eq "enforce: ping from the client to the Edge: 2 requests, no answer (ICMP echo is not allowed)" \
	0 "$(h $C ping $E4 2 1)"
# ARP and neighbour discovery: forget the neighbours, then the gateway reaches the Edge
ip -n $G neigh flush dev lxenf-g1
ip -n $E neigh flush dev lxenf-e0
expect_eq "enforce: after a neighbour flush, the gateway pings the Edge (ARP passes)" 1 "$(h $G ping $E4 1 2)"
expect_eq "enforce: and the Edge over IPv6 (neighbour discovery passes)" 1 "$(h $G ping $E6 1 2)"
check "enforce: the gateway resolved the Edge's MAC" \
	grep -q "lladdr $(ns_mac $E lxenf-e0)" <<<"$(ip -n $G neigh show $E4 dev lxenf-g1)"
check "enforce: the Edge resolved the gateway's MAC" \
	grep -q "lladdr $(ns_mac $G lxenf-g1)" <<<"$(ip -n $E neigh show $GE4 dev lxenf-e0)"
expect_eq "enforce: a TCP upload to 443 works after the flush" "$(digest "$T/small")" \
	"$(h $C tcp_client $E4 443 "$T/small" sink 0 3)"
ns_capture_stop "$T/enf.pcap"
ns_capture_stop "$T/enf-edge.pcap"
snap e1
kill -INT "$DROPS_PID" 2>/dev/null
wait "$DROPS_PID"
expect_eq "drops --json ended by SIGINT: exit 0, nothing on stderr" "0 " "$? $(cat "$T/drops.err")"

expect_policy "enforce: drops grew by exactly the client's frames refused, by reason (tshark)" \
	"$T/e0.json" "$T/e1.json" drops "$T/enf.pcap"
expect_eq "enforce: nothing counted as would-drop" \
	"port 0 0;transport 0 0;unsolicited 0 0;fragment 0 0;malformed 0 0" \
	"$(policy_delta "$T/e0.json" "$T/e1.json" would_drop)"
syns=$(cap_count "$T/enf.pcap" "$TOE && tcp.dstport == 8080 && tcp.flags == 0x002")
check "enforce: the client sent only SYNs to the forbidden 8080 (retransmitted; IPv4 and IPv6: $syns)" \
	test "$(cap_count "$T/enf.pcap" "$TOE && tcp.dstport == 8080")" = "$syns" -a "${syns% *}" -ge 2
expect_eq "enforce: the Edge's capture shows nothing to 8080, no forged packet, no unsolicited media" \
	"0 0" "$(cap_count "$T/enf-edge.pcap" "tcp.dstport == 8080 || (tcp.srcport == 5061 && tcp.dstport >= $FORGED_PORT && tcp.dstport < $FORGED_PORT + 20) || udp.srcport == 47001")"
check "enforce: the Edge's capture does show the allowed traffic (443)" \
	test "$(cap_count "$T/enf-edge.pcap" "tcp.dstport == 443" | cut -d' ' -f1)" -gt 100

# the drop log: the records of this phase (the log may start with older would-drop records)
$PY - "$T/drops.json" "$C4" "$E4" "$C6" "$E6" "$((FORGED_PORT + 15))" >"$T/drops.check" <<'EOF'
import json, sys
path, c4, e4, c6, e6, forged = sys.argv[1:]
recs, tail = [], None
for line in open(path):
    j = json.loads(line)
    if "suppressed" in j:
        tail = j["suppressed"]
    elif j["action"] == "dropped":
        recs.append(j)
def has(proto, src, dst, reason):
    return any(r["proto"] == proto and r["src"].startswith(src) and r["dst"] == dst and
               r["reason"] == reason and r["interface"] == "lxenf-g0" and r["role"] == "edge-external"
               for r in recs)
print("records", len(recs), "suppressed", tail)
print("8080", has("tcp", c4 + ":", e4 + ":8080", "port"))
print("8080v6", has("tcp", "[%s]:" % c6, "[%s]:8080" % e6, "port"))
print("media", has("udp", c4 + ":47001", e4 + ":50010", "unsolicited"))
print("forged", has("tcp", c4 + ":5061", "%s:%s" % (e4, forged), "unsolicited"))
print("forgedv6", has("tcp", "[%s]:5061" % c6, "[%s]:%s" % (e6, forged), "unsolicited"))
print("ping", any(r["proto"] == "icmp" and r["src"] == c4 and r["dst"] == e4 and
                  r["reason"] == "transport" for r in recs))
EOF
dropped=$(json_get 'sum(v["packets"] for v in j["drops"].values())' <"$T/e1.json")
dropped0=$(json_get 'sum(v["packets"] for v in j["drops"].values())' <"$T/e0.json")
expect_eq "drops --json: one dropped record per dropped packet, none suppressed" \
	"records $((dropped - dropped0)) suppressed 0" "$(sed -n 1p "$T/drops.check")"
for k in 8080 8080v6 media forged forgedv6 ping; do
	expect_eq "drops --json: a '$k' record with its 5-tuple, reason, interface and role" "$k True" \
		"$(grep "^$k " "$T/drops.check")"
done

# ---- monitor -> enforce -> monitor during transfers ----
for i in lxenf-g0 lxenf-g1; do lx $G set $i --policy monitor >/dev/null; done
snap s0
h $C tcp_client $E4 443 "$T/24m" sink 3000000 3 >"$T/up.out" 2>&1 &
up=$!
NS_PIDS+=("$up")
h $E tcp_client $C4 5061 "$T/6m" echo 750000 3 >"$T/out.out" 2>&1 &
outb=$!
NS_PIDS+=("$outb")
samples=()
sample() {
	samples+=("$T/sample${#samples[@]}.json")
	lx $G stats --json >"${samples[-1]}"
}
for _ in 1 2 3 4; do
	sample
	sleep 0.2
done
for i in lxenf-g0 lxenf-g1; do lx $G set $i --policy enforce >/dev/null; done
expect_eq "during the transfers: both interfaces switched to enforce" "enforce enforce" \
	"$(lx $G status --json | jq -r '[.interfaces[].policy] | join(" ")')"
for _ in 1 2 3 4 5; do
	sample
	sleep 0.2
done
running=0
kill -0 $up 2>/dev/null && kill -0 $outb 2>/dev/null && running=1
for i in lxenf-g0 lxenf-g1; do lx $G set $i --policy monitor >/dev/null; done
expect_eq "during the transfers: both back to monitor" "monitor monitor" \
	"$(lx $G status --json | jq -r '[.interfaces[].policy] | join(" ")')"
for _ in $(seq 40); do
	kill -0 $up 2>/dev/null || kill -0 $outb 2>/dev/null || break
	sample
	sleep 0.2
done
wait $up
wait $outb
snap s1
expect_eq "switching policy during a 24 MB upload to 443: it arrives intact" "$(digest "$T/24m")" \
	"$(cat "$T/up.out")"
expect_eq "switching policy during the Edge's own 6 MB echo over 5061: it comes back intact" \
	"$(digest "$T/6m")" "$(cat "$T/out.out")"
expect_eq "switching policy during the transfers: nothing dropped, nothing would-drop" \
	"port 0 0;transport 0 0;unsolicited 0 0;fragment 0 0;malformed 0 0 port 0 0;transport 0 0;unsolicited 0 0;fragment 0 0;malformed 0 0" \
	"$(policy_delta "$T/s0.json" "$T/s1.json" drops) $(policy_delta "$T/s0.json" "$T/s1.json" would_drop)"
# Paced to last about 8 s: both must still run when the policy goes back to monitor, else the
# switches above did not happen during the transfers (a machine too loaded for this test).
expect_eq "both transfers were still running when enforce was switched off (${#samples[@]} samples)" 1 "$running"
out=$($PY - "${SNAPS[@]:0:${#SNAPS[@]}-1}" "${samples[@]}" "${SNAPS[-1]}" <<'EOF'
import json, sys
def flat(path):
    j, d = json.load(open(path)), {}
    for r in j["services"]:
        for f in ("packets", "bytes", "remarked_packets", "remarked_bytes"):
            d["rule %d %s %s" % (r["rule"], r["direction"], f)] = r[f]
    for k in ("unclassified", "non_ip", "fragments", "icmp", "other_l4", "malformed", "total"):
        for f in ("packets", "bytes"):
            d["%s %s" % (k, f)] = j[k][f]
    for k in ("drops", "would_drop"):
        for r, v in j[k].items():
            for f in ("packets", "bytes"):
                d["%s %s %s" % (k, r, f)] = v[f]
    return d
prev, bad = None, []
for p in sys.argv[1:]:
    cur = flat(p)
    if prev:
        bad += ["%s: %s %d -> %d" % (p.rsplit("/", 1)[1], k, prev[k], cur.get(k, -1))
                for k in prev if cur.get(k, -1) < prev[k]]
    prev = cur
print("; ".join(bad[:5]) if bad else "ok %d" % (len(sys.argv) - 1))
EOF
)
check "counters never went backwards over $((${#SNAPS[@]} + ${#samples[@]})) reports of the whole run ($out)" \
	grep -q '^ok ' <<<"$out"

# ---- spoofed protected sources ----
policy_reason() { # BEFORE AFTER drops|would_drop REASON: the packets it grew by
	jq -n --slurpfile a "$1" --slurpfile b "$2" \
		"\$b[0].$3.$4.packets - \$a[0].$3.$4.packets"
}
# monitor: a control first (the listener is real: a connect() from port 80 is served), then
# the spoofed frames pass but are counted, and open no flow
expect_eq "monitor: a connect() from the client's port 80 to the Edge's 3389 is served (control)" \
	connected "$(h $C connect_from $C4 80 $E4 3389 3)"
snap p0
h $C spoof lxenf-c0 "$GMAC" $E4 $C4 tcp 3389 53 S 1
h $C spoof lxenf-c0 "$GMAC" $E6 $C6 tcp 3389 53 S 1
h $C spoof lxenf-c0 "$GMAC" $E4 $C4 udp 50020 3478 - 1
snap p1
expect_eq "monitor: 3 spoofed frames 'from' the Edge on the outside leg: 3 would-drop spoofed" \
	3 "$(policy_reason "$T/p0.json" "$T/p1.json" would_drop spoofed)"
expect_eq "monitor: and nothing dropped" 0 "$(policy_reason "$T/p0.json" "$T/p1.json" drops spoofed)"
for i in lxenf-g0 lxenf-g1; do lx $G set $i --policy enforce >/dev/null; done
flows0=$(lx $G status --json | jq .flows.opened)
ns_bg $G timeout 60 "$LYNCXDP" drops --json --seconds 30 >"$T/sdrops.json" 2>"$T/sdrops.err"
DROPS_PID=$NS_BG_PID
sleep 0.5
snap p2
ns_capture_start $C lxenf-c0 "$T/spoof.pcap" || fail "tcpdump on lxenf-c0"
ns_capture_start $E lxenf-e0 "$T/spoof-edge.pcap" || fail "tcpdump on lxenf-e0"
h $C spoof lxenf-c0 "$GMAC" $E4 $C4 tcp 3389 53 S 1
out=$(h $C connect_from $C4 53 $E4 3389 2)
check "enforce: after a spoofed SYN 'from' Edge:3389 to the attacker's 53, the attacker's connect() from 53 to the Edge's 3389 times out ($out)" \
	grep -q 'connect failed: timed out' <<<"$out"
h $C spoof lxenf-c0 "$GMAC" $E6 $C6 tcp 3389 53 SA 1
out=$(h $C connect_from $C6 53 $E6 3389 2)
check "enforce: the same over IPv6 (a spoofed SYN-ACK) times out ($out)" \
	grep -q 'connect failed: timed out' <<<"$out"
h $C spoof lxenf-c0 "$GMAC" $E4 $C4 udp 3390 53 - 1
expect_eq "enforce: after a spoofed UDP 'from' Edge:3390 to 53, the attacker's datagrams from 53 to the Edge's 3390 get no answer" \
	0 "$(h $C udp_send $C4 53 $E4 3390 3 1)"
n0=$(media_from 3478)
h $C spoof lxenf-c0 "$GMAC" $E4 $C4 udp 50010 3478 - 1
h $C udp_send $C4 3478 $E4 50010 3 0 >/dev/null
sleep 0.3
expect_eq "enforce: after a spoofed UDP 'from' the relay port 50010, the attacker's datagrams to it do not arrive" \
	"$n0" "$(media_from 3478)"
ns_capture_stop "$T/spoof.pcap"
ns_capture_stop "$T/spoof-edge.pcap"
# (after the captures: replayed as arriving outside, the Edge's own frames would be spoofed)
expect_eq "enforce: the Edge's own connection to an external 5061 still works (its side is right)" \
	"$(digest "$T/small")" "$(h $E tcp_client $C4 5061 "$T/small" echo 0 3)"
lx $G conntrack --json >"$T/conntrack.json"
check "conntrack: the Edge's connection to $C4:5061 is in the flow table; none that the spoofed frames claimed (the Edge's 3389, 3390, 50010 to $C4's 53 and 3478) is" \
	jq -e --arg e "$E4" --arg c "$C4" '([.flows[] | select(.proto == "tcp" and .local == $e and
		.remote == $c and .remote_port == 5061)] | length >= 1) and ([.flows[] |
		select((.local_port == 3389 or .local_port == 3390 or .local_port == 50010) and
		(.remote_port == 53 or .remote_port == 3478))] | length == 0)' "$T/conntrack.json"
check "conntrack: the table for people lists as many flows as the JSON" \
	test "$(lx $G conntrack | tail -n 1)" = "$(jq '.flows | length' "$T/conntrack.json") flows"
snap p3
kill -INT "$DROPS_PID" 2>/dev/null
wait "$DROPS_PID"
expect_eq "enforce: 4 spoofed frames dropped as spoofed" 4 \
	"$(policy_reason "$T/p2.json" "$T/p3.json" drops spoofed)"
expect_eq "enforce: the Edge never saw the attacker's packets to 3389/3390/50010 from 53/3478" "0 0" \
	"$(cap_count "$T/spoof-edge.pcap" "(tcp.dstport == 3389 && tcp.srcport == 53) || (udp.dstport == 3390 && udp.srcport == 53) || (udp.dstport == 50010 && udp.srcport == 3478)")"
expect_eq "enforce: the flows opened meanwhile are the Edge's own connection, nothing spoofed (opened +1)" \
	$((flows0 + 1)) "$(lx $G status --json | jq .flows.opened)"
check "status: flow-table occupancy and evictions" \
	jq -e '.flows.max == 65536 and .flows.entries >= 1 and .flows.evicted == 0' <<<"$(lx $G status --json)"
# The exporter publishes the same occupancy (the fleet's LyncxdpFlowTableNearFull alert reads it).
expect_eq "stats --prometheus: lyncxdp_flows, _max, _opened_total, _evicted_total equal status --json" \
	"$(lx $G status --json | jq -r '.flows | "\(.entries) \(.max) \(.opened) \(.evicted)"')" \
	"$(lx $G stats --prometheus | awk '$1 == "lyncxdp_flows" { e = $2 } $1 == "lyncxdp_flows_max" { m = $2 }
		$1 == "lyncxdp_flows_opened_total" { o = $2 } $1 == "lyncxdp_flows_evicted_total" { v = $2 }
		END { print e, m, o, v }')"
$PY - "$T/sdrops.json" "$E4" "$C4" "$E6" "$C6" >"$T/sdrops.check" <<'EOF'
import json, sys
path, e4, c4, e6, c6 = sys.argv[1:]
recs = [j for j in map(json.loads, open(path)) if "suppressed" not in j]
def has(proto, src, dst):
    return any(r["proto"] == proto and r["src"] == src and r["dst"] == dst and
               r["reason"] == "spoofed" and r["action"] == "dropped" and
               r["interface"] == "lxenf-g0" and r["role"] == "edge-external" for r in recs)
print(has("tcp", e4 + ":3389", c4 + ":53"), has("tcp", "[%s]:3389" % e6, "[%s]:53" % c6),
      has("udp", e4 + ":50010", c4 + ":3478"))
EOF
expect_eq "drops --json: the spoofed frames with reason spoofed, the Edge's role, interface lxenf-g0" \
	"True True True" "$(cat "$T/sdrops.check")"
# the client-side capture (the outside leg), replayed as arriving there: monitor's would-drops
# equal enforce's drops, reason by reason, spoofed included
rep_m=$("$LYNCXDP" replay --site "$SITE" --side unprotected --json "$T/spoof.pcap" | jq -c .would_drop)
rep_e=$("$LYNCXDP" replay --site "$SITE" --side unprotected --policy enforce --json "$T/spoof.pcap" | jq -c .drops)
expect_eq "replay --side unprotected of the outside capture: monitor would_drop = enforce drops" "$rep_m" "$rep_e"
check "replay --side unprotected: the 4 spoofed frames are there ($rep_e)" \
	jq -e '.spoofed.packets == 4' <<<"$rep_e"

# ---- TCP closing: a blind RST or FIN does not close a flow; the real FIN and RST do ----
# The Edge connects three times from fixed ports to an external server's 80 (its outbound
# `to 80`, CRL downloads) and only reads; the server sends when told.
serve $C hold_server 80 "$T/hold.ctrl" "$T/hold.log"
for p in 44101 44102 44103; do
	ns_bg $E timeout 300 "$PY" -u "$NH" hold_client $C4 80 $p "$T/hold.$p.log"
done
wait_line() { # FILE REGEX: true once FILE has a line matching REGEX (at most 5 s)
	for _ in $(seq 50); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
server_do() { # LINES: what the server does ("PORT send N", "PORT fin", "PORT rst")
	echo "$1" >"$T/hold.ctrl"
	for _ in $(seq 50); do
		[ -e "$T/hold.ctrl" ] || return 0
		sleep 0.1
	done
	fail "the hold server did not take '$1'"
}
for p in 44101 44102 44103; do
	check "tcp closing: the Edge's connection from its port $p to the server's 80 is up" \
		wait_line "$T/hold.$p.log" '^connected$'
done
server_do "44101 send 100
44102 send 100
44103 send 100"
for p in 44101 44102 44103; do
	check "tcp closing: 100 bytes from the server reach the Edge's port $p" \
		wait_line "$T/hold.$p.log" '^recv 100$'
done
snap c0
ns_capture_start $E lxenf-e0 "$T/close-edge.pcap" || fail "tcpdump on lxenf-e0"
# The attacker outside: blind RSTs and a FIN from the server's address and port to the
# Edge's real port (a lucky guess), random sequence numbers; one RST to a wrong guess.
h $C spoof lxenf-c0 "$GMAC" $C4 $E4 tcp 80 44101 R 3 random
h $C spoof lxenf-c0 "$GMAC" $C4 $E4 tcp 80 44101 FA 1 random
h $C spoof lxenf-c0 "$GMAC" $C4 $E4 tcp 80 44100 R 1 random
# The server's real FIN on the second connection, its real RST (abortive close) on the third.
server_do "44102 fin
44103 rst"
check "tcp closing: the server's real FIN reaches the Edge (end of stream on port 44102)" \
	wait_line "$T/hold.44102.log" '^eof$'
check "tcp closing: the server's real RST reaches the Edge (reset on port 44103)" \
	wait_line "$T/hold.44103.log" '^reset$'
# The flows as the program holds them: "PORT CLOSING LAST_SEEN_NS" of the three connections.
flows80() {
	lx $G conntrack --json | jq -r '.flows[] | select(.proto == "tcp" and .remote_port == 80 and
		.local_port >= 44101 and .local_port <= 44103) |
		"\(.local_port) \(if .closing then 1 else 0 end) \(.last_seen_ns)"' | sort
}
expect_eq "tcp closing: the blind RSTs and FIN left the flow of 44101 open; the real FIN and RST closed 44102 and 44103" \
	"44101 0;44102 1;44103 1" "$(flows80 | cut -d' ' -f1,2 | paste -sd';')"
# A reload keeps the flow table with its size and its hash's seed: the new program finds the
# flows where the old one put them (the server's data on 44101 below is a reply: it passes
# only on the flow).
status_seed() { lx $G status --json | jq -c '.flows | {max, entries}'; }
seed0=$(status_seed)
check "tcp closing: lyncxdp reload while the connections are held" lx $G reload
expect_eq "tcp closing: after the reload the flow table is the same (size, entries) and holds the same three flows" \
	"$seed0 44101 0;44102 1;44103 1" "$(status_seed) $(flows80 | cut -d' ' -f1,2 | paste -sd';')"
# Wait until the Edge's last packet on each connection (the flows' last_seen, on the program's
# clock: CLOCK_MONOTONIC_COARSE) is 11 s old: longer than the closing timeout (10 s).
coarse_ns() { $PY -c 'import time; print(time.clock_gettime_ns(6))'; } # CLOCK_MONOTONIC_COARSE
waited=0
for waited in $(seq 40); do
	last=$(flows80 | sort -n -k3 | tail -n 1 | cut -d' ' -f3)
	[ $(($(coarse_ns) - ${last:-0})) -gt 11000000000 ] && break
	sleep 1
done
check "tcp closing: the Edge's last packet on the three connections is 11 s old (after ${waited} s)" \
	test "$(($(coarse_ns) - ${last:-0}))" -gt 11000000000
server_do "44101 send 200"
check "tcp closing: the connection the blind RSTs and FIN aimed at survived (and the reload): 11 s after the Edge's last packet (closing timeout 10 s) the server's next 200 bytes reach the Edge" \
	wait_line "$T/hold.44101.log" '^recv 300$'
# The closed connections' flows are gone: the server's packets on them are now unsolicited.
h $C spoof lxenf-c0 "$GMAC" $C4 $E4 tcp 80 44102 A 1
h $C spoof lxenf-c0 "$GMAC" $C4 $E4 tcp 80 44103 A 1
ns_capture_stop "$T/close-edge.pcap"
snap c1
# what the flows of the three connections hold, and what the Edge saw (shown on a failure)
lx $G conntrack --json | jq -c '.flows[] | select(.remote_port == 80)' >"$T/close-flows.txt"
tshark -r "$T/close-edge.pcap" -o tcp.relative_sequence_numbers:FALSE "tcp.port == 80" \
	>"$T/close-edge.txt" 2>/dev/null
got=$(policy_reason "$T/c0.json" "$T/c1.json" drops unsolicited)
expect_eq "tcp closing: unsolicited drops: the RST to the wrong port, then one packet on each connection the server closed, after the closing timeout" \
	3 "$got"
[ "$got" = 3 ] || cat "$T/close-flows.txt" "$T/close-edge.txt"
expect_eq "tcp closing: the blind RSTs and FIN passed to the Edge's own TCP (its capture: 4), which ignored them" \
	"4" "$(cap_count "$T/close-edge.pcap" "tcp.srcport == 80 && tcp.dstport == 44101 && (tcp.flags.reset == 1 || tcp.flags.fin == 1)" | cut -d' ' -f1)"
expect_eq "tcp closing: the Edge never saw the packets on the closed connections after the closing timeout" \
	"0" "$(cap_count "$T/close-edge.pcap" "tcp.srcport == 80 && (tcp.dstport == 44102 || tcp.dstport == 44103) && tcp.seq_raw == 1000" | cut -d' ' -f1)"

# ---- ICMP errors (issue 10): path MTU discovery through the gateway, forged errors ----
# A host F behind the client, which now routes: the link from the client to F has MTU 1280,
# F's own interface 1500 (its routes send at most 1280 but advertise the full MSS), so the
# Edge's full-size segments toward F make the client's kernel answer "fragmentation needed" /
# "packet too big"; those cross the gateway toward the Edge and must pass, or the transfer
# stalls (a PMTU black hole: the Edge's tcp_mtu_probing is off).
F=lxenf-f
F4=192.0.2.50 F6=2001:db8:f::50 CF4=192.0.2.1 CF6=2001:db8:f::1
ns_add $F
ns_quiet $F
veth_pair $C lxenf-c1 $F lxenf-f0
ip -n $C link set lxenf-c1 mtu 1280
ns_addr $C lxenf-c1 $CF4/24
ns_addr $C lxenf-c1 $CF6/64
ns_addr $F lxenf-f0 $F4/24
ns_addr $F lxenf-f0 $F6/64
ip netns exec $C sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
ip -n $F route add default via $CF4 mtu 1280 advmss 1460
ip -n $F -6 route add default via $CF6 mtu 1280 advmss 1440
ip -n $G route add 192.0.2.0/24 via $C4
ip -n $G -6 route add 2001:db8:f::/64 via $C6
ip netns exec $E sysctl -qw net.ipv4.tcp_mtu_probing=0
serve $E tcp_server 5269 echo # a listening port of the Edge, answering with full segments
serve $F tcp_server 5061 echo # a federation partner the Edge connects to (a tracked flow)
for i in lxenf-g0 lxenf-g1; do lx $G set $i --policy enforce >/dev/null; done
snap i0
ns_capture_start $E lxenf-e0 "$T/pmtu-edge.pcap" || fail "tcpdump on lxenf-e0"
expect_eq "enforce, PMTUD: F's 1 MB echoed by the Edge's 5269 (an admitted connection) comes back intact" \
	"$(digest "$T/1m")" "$(h $F tcp_client $E4 5269 "$T/1m" echo 0 3)"
expect_eq "enforce, PMTUD: the same over IPv6" \
	"$(digest "$T/1m")" "$(h $F tcp_client $E6 5269 "$T/1m" echo 0 3)"
check "enforce, PMTUD: the Edge learnt the path MTU 1280 toward F ($(ip -n $E route get $F4 | tr -s ' \n' ' '))" \
	grep -q "mtu 1280" <<<"$(ip -n $E route get $F4)"
ip -n $E route flush cache
ip -n $E -6 route flush cache
expect_eq "enforce, PMTUD: the Edge's own connection to F's 5061 (a tracked flow): 1 MB echoed intact" \
	"$(digest "$T/1m")" "$(h $E tcp_client $F4 5061 "$T/1m" echo 0 3)"
expect_eq "enforce, PMTUD: the same over IPv6" \
	"$(digest "$T/1m")" "$(h $E tcp_client $F6 5061 "$T/1m" echo 0 3)"
ns_capture_stop "$T/pmtu-edge.pcap"
snap i1
ptb4=$(cap_count "$T/pmtu-edge.pcap" "icmp.type == 3 && icmp.code == 4 && ip.src == $C4" | cut -d' ' -f1)
ptb6=$(cap_count "$T/pmtu-edge.pcap" "icmpv6.type == 2 && ipv6.src == $C6" | cut -d' ' -f1)
check "enforce, PMTUD: the client's kernel's errors reached the Edge (fragmentation needed $ptb4, packet too big $ptb6)" \
	test "$ptb4" -ge 2 -a "$ptb6" -ge 2
expect_eq "enforce, PMTUD: nothing dropped meanwhile" 0 \
	"$(jq -n --slurpfile a "$T/i0.json" --slurpfile b "$T/i1.json" \
		'([$b[0].drops[].packets] | add) - ([$a[0].drops[].packets] | add)')"

# Forged errors and router advertisements from the outside, in monitor then in enforce:
# "fragmentation needed" / "packet too big" quoting a tuple the Edge never used, and router
# advertisements from a global address (hop limit 255, as a neighbour would send them).
forge_icmp() {
	h $C icmp_error lxenf-c0 "$GMAC" $C4 $E4 $E4 40999 $F4 443 3
	h $C icmp_error lxenf-c0 "$GMAC" $C6 $E6 $E6 40999 $F6 443 2
	h $C router_adv lxenf-c0 "$GMAC" $C6 $E6 255 2
}
# (no connection runs meanwhile: every such error is a forged one; the capture's snap length
# may cut the quoted TCP header)
FORGED_ICMP="(ip.src == $C4 && icmp.type == 3 && icmp.code == 4) || (ipv6.src == $C6 && (icmpv6.type == 2 || icmpv6.type == 134))"
for i in lxenf-g0 lxenf-g1; do lx $G set $i --policy monitor >/dev/null; done
snap i2
ns_capture_start $E lxenf-e0 "$T/icmp-mon-edge.pcap" || fail "tcpdump on lxenf-e0"
forge_icmp
ns_capture_stop "$T/icmp-mon-edge.pcap"
snap i3
expect_eq "monitor: 5 forged errors would-drop icmp-unrelated, 2 router advertisements icmp-offlink" \
	"5 2" "$(policy_reason "$T/i2.json" "$T/i3.json" would_drop '"icmp-unrelated"') $(policy_reason "$T/i2.json" "$T/i3.json" would_drop '"icmp-offlink"')"
expect_eq "monitor: they reach the Edge (its capture)" 7 \
	"$(cap_count "$T/icmp-mon-edge.pcap" "$FORGED_ICMP" | cut -d' ' -f1)"
for i in lxenf-g0 lxenf-g1; do lx $G set $i --policy enforce >/dev/null; done
ns_bg $G timeout 60 "$LYNCXDP" drops --json --seconds 30 >"$T/idrops.json" 2>"$T/idrops.err"
DROPS_PID=$NS_BG_PID
sleep 0.5
snap i4
ns_capture_start $C lxenf-c0 "$T/icmp.pcap" || fail "tcpdump on lxenf-c0"
ns_capture_start $E lxenf-e0 "$T/icmp-edge.pcap" || fail "tcpdump on lxenf-e0"
forge_icmp
ns_capture_stop "$T/icmp.pcap"
ns_capture_stop "$T/icmp-edge.pcap"
snap i5
kill -INT "$DROPS_PID" 2>/dev/null
wait "$DROPS_PID"
expect_eq "enforce: the same 5 forged errors dropped as icmp-unrelated, 2 router advertisements as icmp-offlink" \
	"5 2" "$(policy_reason "$T/i4.json" "$T/i5.json" drops '"icmp-unrelated"') $(policy_reason "$T/i4.json" "$T/i5.json" drops '"icmp-offlink"')"
expect_eq "enforce: none of them reaches the Edge (its capture)" 0 \
	"$(cap_count "$T/icmp-edge.pcap" "$FORGED_ICMP" | cut -d' ' -f1)"
$PY - "$T/idrops.json" "$C4" "$E4" "$C6" "$E6" >"$T/idrops.check" <<'EOF'
import json, sys
path, c4, e4, c6, e6 = sys.argv[1:]
recs = [j for j in map(json.loads, open(path)) if "suppressed" not in j]
def n(proto, src, dst, reason):
    return sum(r["proto"] == proto and r["src"] == src and r["dst"] == dst and
               r["reason"] == reason and r["action"] == "dropped" and
               r["interface"] == "lxenf-g0" and r["role"] == "edge-external" for r in recs)
print(n("icmp", c4, e4, "icmp-unrelated"), n("icmpv6", c6, e6, "icmp-unrelated"),
      n("icmpv6", c6, e6, "icmp-offlink"))
EOF
expect_eq "drops --json: 3 + 2 icmp-unrelated and 2 icmp-offlink records, the Edge's role, lxenf-g0" \
	"3 2 2" "$(cat "$T/idrops.check")"
# the outside capture replayed: monitor's would-drops equal enforce's drops, the new reasons too
rep_m=$("$LYNCXDP" replay --site "$SITE" --side unprotected --json "$T/icmp.pcap" | jq -c .would_drop)
rep_e=$("$LYNCXDP" replay --site "$SITE" --side unprotected --policy enforce --json "$T/icmp.pcap" | jq -c .drops)
expect_eq "replay of the outside capture with the forged ICMP: monitor would_drop = enforce drops" "$rep_m" "$rep_e"
check "replay: 5 icmp-unrelated and 2 icmp-offlink ($rep_e)" \
	jq -e '.["icmp-unrelated"].packets == 5 and .["icmp-offlink"].packets == 2' <<<"$rep_e"

# ---- the drop log's held-back count across a detach ----
# A flood of forged replies beyond the rate limit leaves records held back on lxenf-g0's
# counters; `drops` starts; lxenf-g0 is detached (its counters go) and attached again; a second
# flood: the stream's final held-back count is exactly the second flood's (drops minus records)
h $C forge lxenf-c0 "$GMAC" $C4 $E4 5061 $((FORGED_PORT + 18)) 400
ns_bg $G timeout 60 "$LYNCXDP" drops --json --seconds 12 >"$T/held.json" 2>"$T/held.err"
HELD_PID=$NS_BG_PID
sleep 1
lx $G detach lxenf-g0 >/dev/null
out=$(lx $G attach lxenf-g0 --site "$SITE" --policy enforce 2>&1)
expect_eq "detach and attach lxenf-g0 again while drops streams ($out)" 0 $?
snap h0
h $C forge lxenf-c0 "$GMAC" $C4 $E4 5061 $((FORGED_PORT + 19)) 300
snap h1
wait "$HELD_PID"
expect_eq "drops --json --seconds 12 across the detach: exit 0, nothing on stderr" "0 " \
	"$? $(cat "$T/held.err")"
d2=$(policy_reason "$T/h0.json" "$T/h1.json" drops '"unsolicited"')
r2=$(jq -s --arg d "$E4:$((FORGED_PORT + 19))" '[.[] | select(.dst == $d)] | length' "$T/held.json")
held=$(jq -s '[.[] | select(has("suppressed"))] | last | .suppressed' "$T/held.json")
check "the second flood was refused beyond the rate limit ($d2 drops, $r2 records)" \
	test "$d2" -gt "$r2" -a "$r2" -gt 0
expect_eq "drops --json: held back across the detach = the second flood's drops - records" \
	"$((d2 - r2))" "$held"

ns_cleanup
expect_clean lxenf-
echo "enforce suite: $((SECONDS - started)) s"
suite_done
