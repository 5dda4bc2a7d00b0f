#!/usr/bin/env bash
# DSCP tagging end to end: lyncxdp attached with --tag on the server's end of a veth pair
# rewrites the DSCP of what the client sends toward the server's Lync services. Captures on
# both ends, read with tshark, must show for every flow: the same frames in the same order
# (nothing lost, nothing merged), the ECN bits as sent (ECT(0), ECT(1), CE, and TCP's own ECN),
# the DSCP the matrix or the site's `dscp` override gives, or the DSCP as sent for services
# with `-` and unclassified traffic. TCP completes with its data intact, the kernel counts no
# checksum error, `stats --json` counts as re-marked exactly the packets whose DSCP changed.
# Then `lyncxdp set --no-tag`: packets keep their DSCP, nothing more is re-marked.
# IPv4 and IPv6; 802.1Q and QinQ frames too (written with scapy, the tags in the frame: this
# kernel may have no 802.1Q support for VLAN interfaces, and the server's kernel drops them
# after the capture; the checks on arrival are the same).
#
#   lxtag-c (client)  lxtag-c0 ==== lxtag-s0  lxtag-s (server)   192.0.2.0/24, 2001:db8:1::/64
#
# Site: tests/sites/tag.site (.1 frontend, .2 clients; sip-tcp 26 and web-https 18 overridden).
# shellcheck shell=bash
set -uo pipefail
# shellcheck source=tests/lib.sh
source "$(dirname "$0")/lib.sh"

C=lxtag-c
S=lxtag-s
SITE=$TOP/tests/sites/tag.site
# TOS bytes the UDP senders cycle through: DSCP 0, 46, 10 and 34 with every ECN codepoint.
TOSES=0x00,0x01,0x02,0x03,0xb8,0xbb,0x28,0x29,0x2a,0x88,0x8b

suite_start lxtag-
started=$SECONDS

# csum_errors: the receiving namespace's checksum and header error counters (nstat).
csum_errors() {
	ip netns exec $S nstat -asz 2>/dev/null | awk '$1 ~ /CsumErrors|InHdrErrors/ { print $1, $2 }' |
		sort | paste -sd ' '
}

# ---- flows: NAME, tshark filter of its frames toward the server, expected DSCP on arrival
# ("keep": as sent), the rule it counts under ("ROLE SERVICE PROTO PORTS", "-" for none) ----
# (F_QOS: the DSCP the rule expects whatever the tag mode, for the QoS conformance counters.)
F_NAME=() F_FILTER=() F_DSCP=() F_RULE=() F_QOS=()
flow() { F_NAME+=("$1") F_FILTER+=("$2") F_DSCP+=("$3") F_RULE+=("$4") F_QOS+=("$3"); }

# flow_check C-PCAP S-PCAP FILTER DSCP QOS: line 1 "ok ..." or what is wrong, line 2 "SENT
# REMARKED" (frames the client sent in that flow, and how many of them with a DSCP other than
# DSCP), line 3 "EXPECTED ZERO OTHER": the frames sent with DSCP QOS, 0 and another value.
flow_check() {
	$PY - "$@" <<'EOF'
import subprocess, sys
sent_pcap, recv_pcap, filt, want, qos = sys.argv[1:]
def frames(pcap):
    out = subprocess.run(["tshark", "-n", "-r", pcap, "-Y", filt, "-T", "fields", "-E", "occurrence=f",
                          "-e", "frame.len", "-e", "ip.dsfield.dscp", "-e", "ip.dsfield.ecn",
                          "-e", "ipv6.tclass.dscp", "-e", "ipv6.tclass.ecn"],
                         capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        f = line.split("\t")
        if len(f) < 5:
            continue
        dscp, ecn = (f[1], f[2]) if f[1] else (f[3], f[4])
        rows.append((int(f[0]), int(dscp), int(ecn)))
    return rows
sent, recv = frames(sent_pcap), frames(recv_pcap)
problems = []
if not sent:
    problems.append("no frame of this flow in the client's capture")
if [(l, e) for l, _, e in sent] != [(l, e) for l, _, e in recv]:
    problems.append("frames (length, ECN) differ: sent %d, received %d; first sent %s, received %s"
                    % (len(sent), len(recv), sent[:3], recv[:3]))
for k, (s, r) in enumerate(zip(sent, recv)):
    expect = s[1] if want == "keep" else int(want)
    if r[1] != expect:
        problems.append("frame %d: sent with DSCP %d, arrived with %d, expected %d" % (k, s[1], r[1], expect))
        break
ecns = sorted(set(e for _, _, e in sent))
remarked = sum(1 for s in sent if want != "keep" and s[1] != int(want))
print("; ".join(problems) if problems else "ok %d frames, ECN %s, %d re-marked" %
      (len(sent), "/".join(map(str, ecns)), remarked))
print(len(sent), remarked)
if qos == "keep":
    print(0, 0, 0)
else:
    e = sum(1 for s in sent if s[1] == int(qos))
    z = sum(1 for s in sent if s[1] == 0 and int(qos) != 0)
    print(e, z, len(sent) - e - z)
EOF
}

# check_flows PHASE C-PCAP S-PCAP: every flow, the captures of both sides (in parallel).
check_flows() {
	local phase=$1 i out pids=()
	for i in "${!F_NAME[@]}"; do
		flow_check "$2" "$3" "${F_FILTER[$i]}" "${F_DSCP[$i]}" "${F_QOS[$i]}" >"$T/flow.$phase.$i" 2>&1 &
		pids+=($!)
	done
	wait "${pids[@]}"
	for i in "${!F_NAME[@]}"; do
		out=$(head -n 1 "$T/flow.$phase.$i")
		if [ "${out%% *}" = ok ]; then
			pass "$phase: ${F_NAME[$i]}: DSCP ${F_DSCP[$i]}, ECN and frames as sent ($out)"
		else
			fail "$phase: ${F_NAME[$i]}: $out"
		fi
	done
}

# check_rules PHASE BEFORE AFTER: per rule, packets grew by the frames the client sent toward
# it (its flows) and remarked_packets by those with another DSCP than the rule's; the QoS
# conformance counters by the frames sent with the rule's DSCP, with 0 and with another.
check_rules() {
	local phase=$1 rule i n want e z o
	for rule in $(printf '%s\n' "${F_RULE[@]}" | grep -v '^-$' | sort -u | tr ' ' '|'); do
		rule=${rule//|/ }
		n=0 want=0 e=0 z=0 o=0
		for i in "${!F_NAME[@]}"; do
			[ "${F_RULE[$i]}" = "$rule" ] || continue
			read -r a b < <(sed -n 2p "$T/flow.$phase.$i")
			n=$((n + ${a:-0})) want=$((want + ${b:-0}))
			read -r a b c < <(sed -n 3p "$T/flow.$phase.$i")
			e=$((e + ${a:-0})) z=$((z + ${b:-0})) o=$((o + ${c:-0}))
		done
		expect_eq "$phase: stats: $rule in: DSCP conformance +$e expected, +$z zero, +$o other" \
			"$e $z $o" "$($PY - "$2" "$3" "$rule" <<'EOF'
import json, sys
def row(path):
    for r in json.load(open(path))["services"]:
        if "%s %s %s %s" % (r["role"], r["service"], r["proto"], r["ports"]) == sys.argv[3] and r["direction"] == "in":
            return r
a, b = row(sys.argv[1]), row(sys.argv[2])
if not a or not b:
    print("no such row")
elif b["conformance"] is None:
    print(0, 0, 0)
else:
    print(*(b["conformance"][k]["packets"] - a["conformance"][k]["packets"] for k in ("expected", "zero", "other")))
EOF
		)"
		expect_eq "$phase: stats: $rule in: +$n packets, +$want re-marked" "$n $want" "$($PY - "$2" "$3" "$rule" <<'EOF'
import json, sys
def row(path):
    for r in json.load(open(path))["services"]:
        if "%s %s %s %s" % (r["role"], r["service"], r["proto"], r["ports"]) == sys.argv[3] and r["direction"] == "in":
            return r
a, b = row(sys.argv[1]), row(sys.argv[2])
print(b["packets"] - a["packets"], b["remarked_packets"] - a["remarked_packets"]) if a and b else print("no such row")
EOF
		)"
	done
}

# ---- namespaces, addresses, VLAN ----
check "lyncxdp is built" test -x "$LYNCXDP"
check "check: the tag site compiles" "$LYNCXDP" check --site "$SITE"
two_ns_veth $C lxtag-c0 $S lxtag-s0
ns_addr $C lxtag-c0 192.0.2.100/24 2001:db8:1::100/64
ns_addr $S lxtag-s0 192.0.2.1/24 192.0.2.2/24 2001:db8:1::1/64 2001:db8:1::2/64
ip netns exec $C sysctl -qw net.ipv4.tcp_ecn=1 # the client asks for ECN: ECT(0) on TCP data
SMAC=$(ns_mac $S lxtag-s0)

head -c 300000 /dev/urandom >"$T/300k"
head -c 100000 /dev/urandom >"$T/100k"
for p in 5061 5060 443 6891 6895; do serve $S tcp_server $p sink; done

out=$(lx $S attach lxtag-s0 --site "$SITE" --tag 2>&1)
expect_eq "attach lxtag-s0 --tag ($out)" 0 $?
expect_eq "status --json: lxtag-s0 tag on, policy monitor" "True monitor" \
	"$(lx $S status --json | json_get '"%s %s" % (j["interfaces"][0]["tag"], j["interfaces"][0]["policy"])')"

# ---- the flows ----
# (ICMP errors quote a datagram's header, which tshark matches too: they are left out.)
V4F='!icmp && ip.dst == 192.0.2.1' V4C='!icmp && ip.dst == 192.0.2.2'
V6F='!icmpv6 && ipv6.dst == 2001:db8:1::1' V6C='!icmpv6 && ipv6.dst == 2001:db8:1::2'
flow "TCP SIP/TLS to 5061" "$V4F && tcp.dstport == 5061" 24 "frontend sip-tls tcp 5061"
flow "TCP SIP/TLS to [v6]:5061, sent with DSCP 8" "$V6F && tcp.dstport == 5061" 24 "frontend sip-tls tcp 5061"
flow "TCP SIP to 5060 (site override 26)" "$V4F && tcp.dstport == 5060" 26 "frontend sip-tcp tcp 5060"
flow "TCP HTTPS to [v6]:443 (site override 18 of '-')" "$V6F && tcp.dstport == 443" 18 \
	"frontend web-https tcp 443"
flow "TCP file transfer to a client's 6891" "$V4C && tcp.dstport == 6891" 14 "clients file-transfer tcp 6891-6901"
flow "TCP file transfer to a client's [v6]:6895" "$V6C && tcp.dstport == 6895" 14 "clients file-transfer tcp 6891-6901"
flow "UDP audio to 50000" "$V4F && udp.dstport == 50000" 46 "all-servers media-audio udp 49152-57500"
flow "UDP audio to [v6]:50001" "$V6F && udp.dstport == 50001" 46 "all-servers media-audio udp 49152-57500"
flow "UDP video to 60000" "$V4F && udp.dstport == 60000" 34 "frontend media-video udp 57501-65535"
flow "UDP video to [v6]:60001" "$V6F && udp.dstport == 60001" 34 "frontend media-video udp 57501-65535"
flow "UDP client media to a client's 40000 (service '-')" "$V4C && udp.dstport == 40000" keep \
	"clients client-media udp 1024-65535"
flow "UDP to port 9 (unclassified)" "$V4F && udp.dstport == 9" keep -
flow "VLAN 100: TCP SYNs to 5061" "vlan.id == 100 && ip.dst == 198.51.100.1 && tcp.dstport == 5061" 24 \
	"frontend sip-tls tcp 5061"
flow "QinQ 100/200: TCP SYNs to [v6]:5061" "vlan.id == 200 && ipv6.dst == 2001:db8:100::1 && tcp.dstport == 5061" 24 \
	"frontend sip-tls tcp 5061"
flow "VLAN 100: UDP audio to 50002" "vlan.id == 100 && ip.dst == 198.51.100.1 && udp.dstport == 50002" 46 \
	"all-servers media-audio udp 49152-57500"
flow "VLAN 100: UDP video to [v6]:60002" "vlan.id == 100 && ipv6.dst == 2001:db8:100::1 && udp.dstport == 60002" 34 \
	"frontend media-video udp 57501-65535"
flow "QinQ 100/200: UDP audio to 50003" "vlan.id == 200 && ip.dst == 198.51.100.1 && udp.dstport == 50003" 46 \
	"all-servers media-audio udp 49152-57500"

# traffic PHASE: every flow above once; TCP uploads checked whole.
traffic() {
	local p=$1 d300 d100
	d300=$(digest "$T/300k") d100=$(digest "$T/100k")
	expect_eq "$p: TCP 300 KB to 5061 arrives intact" "$d300" "$(h $C tcp_client 192.0.2.1 5061 "$T/300k" sink 0 3)"
	expect_eq "$p: TCP 100 KB to [v6]:5061 arrives intact" "$d100" \
		"$(h $C tcp_client 2001:db8:1::1 5061 "$T/100k" sink 0 3 0x20)"
	expect_eq "$p: TCP 100 KB to 5060 arrives intact" "$d100" "$(h $C tcp_client 192.0.2.1 5060 "$T/100k" sink 0 3)"
	expect_eq "$p: TCP 100 KB to [v6]:443 arrives intact" "$d100" \
		"$(h $C tcp_client 2001:db8:1::1 443 "$T/100k" sink 0 3)"
	expect_eq "$p: TCP 300 KB to a client's 6891 arrives intact" "$d300" \
		"$(h $C tcp_client 192.0.2.2 6891 "$T/300k" sink 0 3)"
	expect_eq "$p: TCP 100 KB to a client's [v6]:6895 arrives intact" "$d100" \
		"$(h $C tcp_client 2001:db8:1::2 6895 "$T/100k" sink 0 3)"
	h $C udp_send 192.0.2.100 41000 192.0.2.1 50000 22 0 $TOSES >/dev/null
	h $C udp_send 2001:db8:1::100 41001 2001:db8:1::1 50001 22 0 $TOSES >/dev/null
	h $C udp_send 192.0.2.100 41002 192.0.2.1 60000 22 0 $TOSES >/dev/null
	h $C udp_send 2001:db8:1::100 41003 2001:db8:1::1 60001 22 0 $TOSES >/dev/null
	h $C udp_send 192.0.2.100 41004 192.0.2.2 40000 11 0 $TOSES >/dev/null
	h $C udp_send 192.0.2.100 41005 192.0.2.1 9 11 0 $TOSES >/dev/null
	h $C vlan_send lxtag-c0 "$SMAC" \
		"100 198.51.100.100 198.51.100.1 tcp 41006 5061 6 0x00,0x20,0x60" \
		"100,200 2001:db8:100::100 2001:db8:100::1 tcp 41007 5061 6 0x00,0x02,0x60" \
		"100 198.51.100.100 198.51.100.1 udp 41008 50002 22 $TOSES" \
		"100 2001:db8:100::100 2001:db8:100::1 udp 41009 60002 22 $TOSES" \
		"100,200 198.51.100.100 198.51.100.1 udp 41010 50003 11 $TOSES"
}

csum0=$(csum_errors)
snap tag0
ns_capture_start $C lxtag-c0 "$T/tag-c.pcap" || fail "tcpdump on lxtag-c0"
ns_capture_start $S lxtag-s0 "$T/tag-s.pcap" || fail "tcpdump on lxtag-s0"
traffic tag
ns_capture_stop "$T/tag-c.pcap"
ns_capture_stop "$T/tag-s.pcap"
snap tag1
check_flows tag "$T/tag-c.pcap" "$T/tag-s.pcap"
check_rules tag "$T/tag0.json" "$T/tag1.json"
check "tag: the UDP audio to 50000 was sent with every ECN codepoint (0/1/2/3)" \
	grep -q 'ECN 0/1/2/3' "$T/flow.tag.6"
check "tag: the TCP SIP/TLS to 5061 carried ECT(0) data (ECN negotiated)" grep -Eq 'ECN 0/2' "$T/flow.tag.0"
check "tag: the VLAN UDP audio was sent with every ECN codepoint" grep -q 'ECN 0/1/2/3' "$T/flow.tag.14"
expect_eq "tag: tshark finds no bad IPv4 header checksum on arrival" 0 \
	"$(tshark -r "$T/tag-s.pcap" -o ip.check_checksum:TRUE -Y 'ip.checksum.status == 0' 2>/dev/null | wc -l)"
expect_eq "tag: the server's kernel counted no checksum or header error" "$csum0" "$(csum_errors)"

# ---- --no-tag: DSCP as sent ----
out=$(lx $S set lxtag-s0 --no-tag 2>&1)
expect_eq "set lxtag-s0 --no-tag ($out)" 0 $?
expect_eq "status --json: tag off" False "$(lx $S status --json | json_get 'j["interfaces"][0]["tag"]')"
for i in "${!F_DSCP[@]}"; do F_DSCP[i]=keep; done
snap notag0
ns_capture_start $C lxtag-c0 "$T/notag-c.pcap" || fail "tcpdump on lxtag-c0"
ns_capture_start $S lxtag-s0 "$T/notag-s.pcap" || fail "tcpdump on lxtag-s0"
traffic no-tag
ns_capture_stop "$T/notag-c.pcap"
ns_capture_stop "$T/notag-s.pcap"
snap notag1
check_flows no-tag "$T/notag-c.pcap" "$T/notag-s.pcap"
check_rules no-tag "$T/notag0.json" "$T/notag1.json"
expect_eq "no-tag: the server's kernel counted no checksum or header error" "$csum0" "$(csum_errors)"

# The kernel's counters do see a bad IPv4 header checksum (so the checks above can fail).
h $C bad_ipv4_csum lxtag-c0 "$(ns_mac $S lxtag-s0)" 192.0.2.100 192.0.2.1 9
sleep 0.2
check "a datagram with a bad IPv4 header checksum moves the server's counters" \
	test "$csum0" != "$(csum_errors)"

ns_cleanup
expect_clean lxtag-
echo "tag suite: $((SECONDS - started)) s"
suite_done
