#!/usr/bin/env bash
# Capture replay: every capture of tests/captures through `lyncxdp replay`, which runs each
# frame through a private instance of the real XDP program with BPF_PROG_TEST_RUN (nothing is
# attached, nothing pinned, nothing sent). Needs root (BPF), tshark, python3 with scapy, jq.
#
# The expected counts are derived independently of lyncxdp: per capture, each rule that should
# match is written below as a tshark display filter chosen by hand from the site file and the
# matrix, and tshark counts the frames (and sums frame.len) that match it. The special counters
# have generic filters (see derive_counts). No count is pinned from lyncxdp's own output.
#
# Usage: bash tests/suite_replay.sh      CAPTURES=DIR overrides $TOP/tests/captures
# shellcheck shell=bash
set -uo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CAPS=${CAPTURES:-$TOP/tests/captures}
SITES=$TOP/tests/sites
PRODUCT=sfb2015
# Binaries outside build/ (build/san/lyncxdp) find the matrices through this.
export LYNCXDP_MAPS=${LYNCXDP_MAPS:-$MAPS}
WORK=$(mktemp -d /tmp/lyncxdp-replay.XXXXXX)
# LYNCXDP_KEEP_TMP=1 keeps the reports and generated captures for a post-mortem.
trap 'if [ -n "${LYNCXDP_KEEP_TMP:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi' EXIT
started=$SECONDS

# Frames tshark must not count for a rule: ICMP errors quote a UDP/TCP header that tshark
# dissects (udp.dstport matches it) but the XDP program counts as icmp. No capture here has
# frames cut by a snap length (replay would pad them to their wire length; see "snaplen" below
# for those), so the cap_len guards only keep the partition exact.
GUARD='!icmp && !icmpv6 && frame.cap_len == frame.len'
# Special counters, in the order of enum lx_counter. Together with the rule filters of a capture
# they partition its frames (checked: the derived counts must add up to the frame count).
NONIP='!ip && !ipv6'
FRAG='(ip.frag_offset > 0 || ipv6.fraghdr.offset > 0) && frame.cap_len == frame.len'
ICMP='(icmp || icmpv6) && frame.cap_len == frame.len'
OTHER="(ip || ipv6) && !tcp && !udp && !icmp && !icmpv6 && !($FRAG) && frame.cap_len == frame.len"
MALF='(ip || ipv6) && frame.cap_len < frame.len'
COUNTERS=(unclassified non_ip fragments icmp other_l4 malformed)

# The key of a report row, as expect_rule names it (jq, on one element of .services).
ROW_KEY='"\(.role) \(.service) \(.proto) \({"outbound-to": "to ", "outbound-from": "from "}[.kind] // "")\(.ports) \(.direction)"'

tshark_q() { tshark -o ip.defragment:FALSE -o ipv6.defragment:FALSE "$@" 2>/dev/null; }

# replay SITE CAPTURE [--json]: stdout to $WORK/out, stderr to $WORK/err, returns the exit code.
replay() {
	local site=$1 cap=$2
	shift 2
	"$LYNCXDP" replay --product "$PRODUCT" --site "$site" "$cap" "$@" >"$WORK/out" 2>"$WORK/err"
}

# derive_counts CAPTURE FILTER...: one "packets bytes" line per filter, from one tshark pass
# (io,stat over the whole capture: Frames and Bytes = sum of frame.len per filter).
derive_counts() {
	local cap=$1
	shift
	local spec="io,stat,0" f
	for f in "$@"; do
		case $f in *,*)
			echo "derive_counts: a filter may not contain a comma: $f" >&2
			return 1
			;;
		esac
		spec+=",$f"
	done
	tshark -o ip.defragment:FALSE -o ipv6.defragment:FALSE -r "$cap" -q -z "$spec" \
		>"$WORK/tshark.out" 2>"$WORK/tshark.err"
	if ! grep -q '<>' "$WORK/tshark.out"; then
		grep -v '^Running as user' "$WORK/tshark.err" | head -n 2 >&2
		return 1
	fi
	grep '<>' "$WORK/tshark.out" | tail -n 1 |
		awk -F'|' '{ for (i = 3; i < NF; i += 2) { gsub(/ /, "", $i); gsub(/ /, "", $(i + 1)); print $i, $(i + 1) } }'
}

# ---- one capture: declare the rules that should match, then check everything ----

CASE='' CAP='' SITE='' RULE_KEYS=() RULE_FILTERS=() COVERED=()

# case_begin NAME CAPTURE-FILE SITE-FILE   (a capture file name is in $CAPS unless absolute)
case_begin() {
	CASE=$1 CAP=$2 SITE=$SITES/$3
	case $CAP in /*) ;; *)
		COVERED+=("$CAP")
		CAP=$CAPS/$CAP
		;;
	esac
	RULE_KEYS=() RULE_FILTERS=()
}

# expect_rule "ROLE SERVICE PROTO PORTS DIR" 'tshark filter of the frames that rule counts'
# PORTS as the table prints it: "5061" for a listening rule, "to 53" for an outbound-to rule,
# "from 50000-59999" for an outbound-from rule (JSON: "ports" and "kind").
expect_rule() {
	RULE_KEYS+=("$1")
	RULE_FILTERS+=("$2")
}

# Runs the checks of the current case; leaves its JSON report in $WORK/$CASE.json.
case_end() {
	local name=$CASE json=$WORK/$CASE.json
	if [ ! -r "$CAP" ]; then
		fail "$name: capture $CAP not found"
		return
	fi

	# 1. exit 0, frames = what tshark reads, nothing refused, truncation as tshark sees it
	replay "$SITE" "$CAP" --json
	local rc=$?
	cp "$WORK/out" "$json"
	if [ "$rc" -ne 0 ] || ! jq -e . "$json" >/dev/null 2>&1; then
		fail "$name: replay --json exited $rc: $(head -c 300 "$WORK/err")"
		return
	fi
	pass "$name: replay --json exits 0 with valid JSON"
	local frames truncated
	frames=$(tshark_q -r "$CAP" | wc -l)
	truncated=$(tshark_q -r "$CAP" -Y 'frame.cap_len < frame.len' | wc -l)
	expect_eq "$name: capture.frames = tshark's frame count ($frames)" "$frames" "$(jq .capture.frames "$json")"
	expect_eq "$name: capture.truncated = frames with cap_len < len ($truncated)" "$truncated" \
		"$(jq .capture.truncated "$json")"
	expect_eq "$name: capture.not_run = 0 (every frame ran)" 0 "$(jq .capture.not_run "$json")"
	expect_eq "$name: total.packets + not_run = frames" "$frames" \
		"$(jq '.total.packets + .capture.not_run' "$json")"
	expect_eq "$name: total = sum of every row and counter" "$(jq -c .total "$json")" \
		"$(jq -c '[.services[], .unclassified, .non_ip, .fragments, .icmp, .other_l4, .malformed] |
			{packets: (map(.packets) | add), bytes: (map(.bytes) | add)}' "$json")"

	# 2. per rule and per counter, lyncxdp = tshark
	local filters=() unclassified="(tcp || udp) && $GUARD" f
	for f in "${RULE_FILTERS[@]}"; do
		filters+=("($GUARD) && ($f)")
		unclassified+=" && !($f)"
	done
	filters+=("$unclassified" "$NONIP" "$FRAG" "$ICMP" "$OTHER" "$MALF")
	local derived=()
	mapfile -t derived < <(derive_counts "$CAP" "${filters[@]}" 2>"$WORK/derive.err")
	if [ "${#derived[@]}" -ne "${#filters[@]}" ]; then
		fail "$name: tshark derived ${#derived[@]} counts for ${#filters[@]} filters: $(tr '\n' ' ' <"$WORK/derive.err")"
		return
	fi
	local sum
	sum=$(printf '%s\n' "${derived[@]}" | awk '{ s += $1 } END { print s + 0 }')
	expect_eq "$name: the tshark filters partition the capture" "$frames" "$sum"

	local i key got
	for i in "${!RULE_KEYS[@]}"; do
		key=${RULE_KEYS[$i]}
		got=$(jq -r --arg k "$key" '.services[] | select('"$ROW_KEY"' == $k) |
			"\(.packets) \(.bytes)"' "$json")
		expect_eq "$name: $key = ${derived[$i]} (packets bytes)" "${derived[$i]}" "${got:-no such row}"
	done
	local n=${#RULE_KEYS[@]} c
	for c in "${!COUNTERS[@]}"; do
		got=$(jq -r ".${COUNTERS[$c]} | \"\(.packets) \(.bytes)\"" "$json")
		expect_eq "$name: ${COUNTERS[$c]} = ${derived[$((n + c))]}" "${derived[$((n + c))]}" "$got"
	done
	# Nothing classified beyond what the filters above name.
	local unexpected
	unexpected=$(jq -r ".services[] | select(.packets > 0) | $ROW_KEY" "$json" | while read -r key; do
		# (no pipe into grep -q: under pipefail, printf's SIGPIPE would fail a match)
		grep -qxF "$key" <<<"$(printf '%s\n' "${RULE_KEYS[@]}")" || echo "$key;"
	done | paste -sd ' ')
	expect_eq "$name: no rule counts beyond the expected ones" "" "$unexpected"

	# 3. stable: a second replay gives the same report, byte for byte
	replay "$SITE" "$CAP" --json
	if cmp -s "$json" "$WORK/out"; then
		pass "$name: a second replay gives identical JSON"
	else
		fail "$name: a second replay differs: $(diff "$json" "$WORK/out" | head -n 4 | tr '\n' ' ')"
	fi

	# 4. table output: summary line, header, total line equal to the JSON total
	replay "$SITE" "$CAP"
	rc=$?
	local table=$WORK/out
	local total
	total=$(jq -r '"total \(.total.packets) \(.total.bytes)"' "$json")
	if [ "$rc" -eq 0 ] &&
		head -n 1 "$table" | grep -qF "$CAP: $frames frames (" &&
		grep -Eq '^ROLE +SERVICE +PROTO +PORTS +DIR +PACKETS +BYTES( +DSCP CONFORM)?$' "$table" &&
		[ "$(grep '^total ' "$table" | tr -s ' ')" = "$total" ]; then
		pass "$name: table output has the summary, the header and '$total'"
	else
		fail "$name: table output (exit $rc): $(head -c 400 "$table" | tr '\n' '|')"
	fi
}

# ---- preconditions ----

if [ ! -x "$LYNCXDP" ] || ! command -v tshark >/dev/null || ! command -v jq >/dev/null ||
	[ ! -d "$CAPS" ]; then
	fail "replay suite needs $LYNCXDP (make), tshark, jq and the captures in $CAPS"
	suite_done
	exit
fi
ncaps=$(find "$CAPS" -maxdepth 1 \( -name '*.pcap' -o -name '*.pcapng' \) | wc -l)
expect_eq "captures: 8 pcap/pcapng files in $CAPS" 8 "$ncaps"
if [ -z "${CAPTURES:-}" ]; then
	check "captures: every file matches tests/captures/SHA256SUMS (provenance in its README)" \
		bash -c 'cd "$1" && sha256sum --quiet --strict -c SHA256SUMS' _ "$CAPS"
else
	skip "captures: checksums: CAPTURES=$CAPTURES is not the repository's set"
fi
for s in "$SITES"/replay-*.site; do
	check "site $(basename "$s") passes lyncxdp check" "$LYNCXDP" check --product "$PRODUCT" --site "$s"
done

# ---- the captures ----
# Rule keys are "ROLE SERVICE PROTO PORTS DIR" as the JSON report names them (maps/sfb2015.matrix):
# "in" toward the address and port of the rule's role, "out" from them. When both ends have a
# rule, a server role's beats a client's, then the smaller range, then the earlier line; a client
# rule counts only when the other end holds a role (maps/README.md, "Precedence"). Filters are
# written for the frames each rule must count under the site file.

# stun.pcap: the VLAN 1611 app-sharing flow classifies despite the tag (two clients: the same
# rule at both ends, "in" both ways); STUN servers on UDP 3478 as Edge external (IPv4, IPv6 host,
# IPv6 prefix); STUN over TCP 3478, Facebook and Zoom do not.
case_begin stun stun.pcap replay-stun.site
expect_rule "clients client-media tcp 1024-65535 in" 'vlan.id == 1611 && tcp'
expect_rule "edge-external stun udp 3478 in" \
	'udp.dstport == 3478 && (ip.dst == 142.250.82.99 || ip.dst == 74.125.247.128 || ipv6.dst == 2a38:e156:8167:a333:face:b00c:0:24d9 || ipv6.dst == 2600:1900:4160:5999::/64)'
expect_rule "edge-external stun udp 3478 out" \
	'udp.srcport == 3478 && (ip.src == 142.250.82.99 || ip.src == 74.125.247.128 || ipv6.src == 2a38:e156:8167:a333:face:b00c:0:24d9 || ipv6.src == 2600:1900:4160:5999::/64)'
case_end
# VLAN: the whole classified TCP flow is tagged 1611, and none of it is left unclassified.
vlan=$(derive_counts "$CAPS/stun.pcap" 'vlan.id == 1611 && tcp' | cut -d' ' -f1)
expect_eq "stun: the VLAN 1611 flow ($vlan frames, tagged) classifies in full" "$vlan" \
	"$(jq '[.services[] | select(.role == "clients" and .proto == "tcp") | .packets] | add' "$WORK/stun.json")"
expect_eq "stun: the VLAN 1611 flow is in the capture" true "$([ "${vlan:-0}" -gt 0 ] && echo true || echo false)"
expect_eq "stun: STUN over TCP 3478 to an Edge counts under no rule (no such Edge port)" 0 \
	"$(jq '[.services[] | select(.role == "edge-external" and .proto == "tcp") | .packets] | add' "$WORK/stun.json")"

# stun_msteams_unidir.pcapng: audio from the Teams relay to a client, one way (the relay's range
# is listed as teams-cloud: a peer holding a role, without rules in sfb2015).
case_begin stun_msteams_unidir stun_msteams_unidir.pcapng replay-stun_msteams_unidir.site
expect_rule "clients client-media udp 1024-65535 in" 'ip.dst == 10.0.0.1 && udp.dstport >= 1024'
case_end

# stun_tcp_multiple_msgs_same_pkt.pcap: STUN over TCP 3479 from a client; 3479 is no Edge port.
case_begin stun_tcp_multiple_msgs_same_pkt stun_tcp_multiple_msgs_same_pkt.pcap \
	replay-stun_tcp_multiple_msgs_same_pkt.site
expect_rule "clients client-media tcp 1024-65535 in" 'ip.dst == 23.183.197.71 && tcp.dstport >= 1024'
expect_rule "clients client-media tcp 1024-65535 out" 'ip.src == 23.183.197.71 && tcp.srcport >= 1024'
case_end

# stun_classic.pcap: media between a Mediation Server (server audio range) and a client: the
# server's range beats the client's, both ways.
case_begin stun_classic stun_classic.pcap replay-stun_classic.site
expect_rule "all-servers media-audio udp 49152-57500 in" \
	'ip.dst == 172.16.63.224 && udp.dstport >= 49152 && udp.dstport <= 57500'
expect_rule "all-servers media-audio udp 49152-57500 out" \
	'ip.src == 172.16.63.224 && udp.srcport >= 49152 && udp.srcport <= 57500'
case_end

# sip.pcap, servers only: SIP over UDP and RTP on 40392 are no Skype for Business service.
case_begin sip sip.pcap replay-sip.site
case_end
expect_eq "sip: SIP over UDP 5060 does not count under the frontend's TCP 5060 rule" 0 \
	"$(jq '[.services[] | select(.role == "frontend" and .service == "sip-tcp") | .packets] | add' "$WORK/sip.json")"

# sip.pcap with the phone as a client: what it exchanges with the listed servers is client media
# (no server rule on those ports); with 200.68.120.81, which holds no role, nothing counts.
case_begin sip-phone sip.pcap replay-sip-phone.site
expect_rule "clients client-media udp 1024-65535 in" \
	'ip.dst == 192.168.1.2 && udp.dstport >= 1024 && ip.src != 200.68.120.81'
expect_rule "clients client-media udp 1024-65535 out" \
	'ip.src == 192.168.1.2 && udp.srcport >= 1024 && ip.dst != 200.68.120.81'
case_end

# sip_hello.pcapng: a user agent (client) and its registrar (frontend) over UDP 5060.
case_begin sip_hello sip_hello.pcapng replay-sip_hello.site
expect_rule "clients client-media udp 1024-65535 in" 'ip.dst == 172.29.38.91 && udp.dstport >= 1024'
expect_rule "clients client-media udp 1024-65535 out" 'ip.src == 172.29.38.91 && udp.srcport >= 1024'
case_end

# rtp.pcapng: A/V Edge media relay both ways; RTP over TCP between two clients ("in" both
# ways); a client on VLAN 1508 sending to an address without a role: nothing counts.
case_begin rtp rtp.pcapng replay-rtp.site
expect_rule "edge-external edge-media-relay udp from 50000-59999 in" \
	'ip.dst == 192.113.193.227 && udp.dstport >= 50000 && udp.dstport <= 59999'
expect_rule "edge-external edge-media-relay udp from 50000-59999 out" \
	'ip.src == 192.113.193.227 && udp.srcport >= 50000 && udp.srcport <= 59999'
expect_rule "clients client-media tcp 1024-65535 in" 'ip.addr == 172.16.168.24 && tcp'
case_end

# dnscrypt_skype_false_positive.pcapng: the negative case, nothing classifies.
case_begin dnscrypt dnscrypt_skype_false_positive.pcapng replay-dnscrypt_skype_false_positive.site
case_end
expect_eq "dnscrypt: no Lync service counts anything" 0 \
	"$(jq '[.services[].packets] | add' "$WORK/dnscrypt.json")"

# The same with the home machine as a client: only what its port implies.
case_begin dnscrypt-client dnscrypt_skype_false_positive.pcapng replay-dnscrypt-client.site
expect_rule "clients client-media udp 1024-65535 in" 'ip.dst == 192.168.2.100 && udp.dstport >= 1024'
expect_rule "clients client-media udp 1024-65535 out" 'ip.src == 192.168.2.100 && udp.srcport >= 1024'
case_end

# Every capture in the directory has a case above.
missing=$(cd "$CAPS" && for f in *.pcap *.pcapng; do
	[ -e "$f" ] && ! printf '%s\n' "${COVERED[@]}" | grep -qxF "$f" && echo "$f"
done | paste -sd ' ')
expect_eq "every capture in $CAPS has a case" "" "$missing"

# ---- a synthetic capture: every special counter, both families, tags, precedence ----
# One frame of each kind the program tells apart, written with scapy; the same tshark partition
# gives the truth (fragments: IPv4 offset > 0 and IPv6 fragment offset > 0; ESP and IPv6
# no-next-header are other_l4; ARP and LLDP non_ip; a first fragment still classifies).
if $PY - "$WORK/mixed.pcap" <<'EOF' 2>/dev/null; then
import sys
from scapy.all import (Ether, Dot1Q, Dot1AD, ARP, IP, IPv6, IPv6ExtHdrHopByHop,
                       IPv6ExtHdrFragment, UDP, TCP, ICMP, ICMPv6EchoRequest, Raw, wrpcap)
def E(**k):
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", **k)
C4, C6, FE, X4, X6 = "192.0.2.130", "2001:db8:20::5", "192.0.2.11", "198.51.100.9", "2001:db8:99::9"
wrpcap(sys.argv[1], [
    E() / ARP(psrc=X4, pdst=C4),
    Ether(src="02:00:00:00:00:01", dst="01:80:c2:00:00:0e", type=0x88cc) / Raw(b"\0" * 46),
    E() / IP(src=X4, dst=C4) / UDP(sport=3478, dport=50010) / Raw(b"a" * 100),
    E() / IP(src=X4, dst=C4, options=b"\x01\x01\x01\x01") / UDP(sport=9, dport=50011) / Raw(b"b" * 20),
    E() / Dot1Q(vlan=10) / IP(src=X4, dst=C4) / UDP(sport=9, dport=50012) / Raw(b"c" * 30),
    E(type=0x88a8) / Dot1AD(vlan=20, type=0x8100) / Dot1Q(vlan=30) / IP(src=X4, dst=C4) /
        UDP(sport=9, dport=50013),
    E() / IPv6(src=X6, dst=C6) / UDP(sport=9, dport=50014) / Raw(b"d" * 10),
    E() / IPv6(src=X6, dst=C6) / IPv6ExtHdrHopByHop() / UDP(sport=9, dport=50015),
    E() / IP(src=C4, dst=FE) / TCP(sport=50016, dport=5061, flags="S"),
    E() / IP(src=X4, dst=C4, flags="MF", frag=0, id=7) / UDP(sport=9, dport=50017, len=1008) /
        Raw(b"e" * 200),
    E() / IP(src=X4, dst=C4, frag=26, id=7, proto=17) / Raw(b"f" * 200),
    E() / IPv6(src=X6, dst=C6) / IPv6ExtHdrFragment(offset=25, id=8, nh=17) / Raw(b"g" * 64),
    E() / IP(src=X4, dst=C4) / ICMP() / Raw(b"h" * 8),
    E() / IPv6(src=X6, dst=C6) / ICMPv6EchoRequest(),
    E() / IP(src=X4, dst=C4, proto=50) / Raw(b"i" * 40),
    E() / IPv6(src=X6, dst=C6, nh=59),
    E() / IP(src=X4, dst=C4) / UDP(sport=9, dport=80),
])
EOF
	case_begin mixed "$WORK/mixed.pcap" replay-mixed.site
	expect_rule "frontend sip-tls tcp 5061 in" 'ip.dst == 192.0.2.11 && tcp.dstport == 5061'
	# The other frames toward the clients come from addresses without a role: unclassified.
	case_end
	for c in non_ip fragments icmp other_l4 unclassified; do
		expect_eq "mixed: $c is exercised" true "$(jq ".$c.packets > 0" "$WORK/mixed.json")"
	done
else
	fail "mixed: could not write a capture with scapy ($PY)"
fi

# ---- a synthetic Edge capture: outbound rules, precedence, and the policy ----
# The Edge E (203.0.113.20, 2001:db8:e::20) talks to X (198.51.100.9, 2001:db8:99::9, no role)
# and to a Front End F (192.0.2.11). Frames in time order: each request of the Edge comes before
# its answer, so under --policy enforce an answer is on a flow the Edge opened. Frames toward
# the Edge on ports 41000-41999 and UDP 50011 answer nothing the Edge sent.
if $PY - "$WORK/edge.pcap" <<'EOF' 2>/dev/null; then
import sys
from scapy.all import Ether, IP, IPv6, UDP, TCP, ICMP, ICMPv6ND_NS, Raw, wrpcap
E4, E6, X4, X6, F4 = "203.0.113.20", "2001:db8:e::20", "198.51.100.9", "2001:db8:99::9", "192.0.2.11"
n = [0]
def E(pkt, size=None):
    n[0] += 1
    pad = size if size is not None else 7 * n[0] % 90
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / pkt / Raw(b"p" * pad)
def pair(src, dst, proto, sport, dport, v6=False):
    """A request from src and its answer from dst (TCP: SYN, SYN-ACK, ACK with data)."""
    L3 = IPv6 if v6 else IP
    if proto == "udp":
        return [E(L3(src=src, dst=dst) / UDP(sport=sport, dport=dport)),
                E(L3(src=dst, dst=src) / UDP(sport=dport, dport=sport))]
    return [E(L3(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags="S"), 0),
            E(L3(src=dst, dst=src) / TCP(sport=dport, dport=sport, flags="SA"), 0),
            E(L3(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags="A"))]
frames = []
frames += pair(E4, X4, "udp", 40001, 53)     # DNS query and answer
frames += pair(E4, X4, "tcp", 40002, 53)
frames += pair(E4, X4, "tcp", 40003, 80)     # CRL download
frames += pair(E4, X4, "tcp", 40004, 5061)   # federation, the Edge connects
frames += pair(E4, X4, "tcp", 40005, 443)    # MSTURN over TCP to a peer
frames += pair(E4, X4, "tcp", 40006, 5269)   # XMPP, the Edge connects
frames += pair(X4, E4, "tcp", 40007, 5269)   # XMPP, a peer connects
frames += pair(E4, X4, "udp", 40008, 3478)   # STUN to a peer's 3478
frames += pair(E4, X4, "udp", 3478, 3478)    # 3478 to 3478: the Edge's listening port wins
frames += pair(E4, X4, "udp", 50010, 3478)   # from the media relay range to a peer's 3478
frames += pair(E4, F4, "tcp", 40013, 5061)   # the Edge to a Front End's 5061
frames += pair(X4, E4, "tcp", 40016, 443)    # a client to the Edge's 443
frames += pair(X4, E4, "udp", 40018, 3478)   # a client to the Edge's 3478
frames += pair(E6, X6, "udp", 40014, 53, v6=True)
frames += pair(E6, X6, "tcp", 40019, 5061, v6=True)
frames += [
    E(IP(src=X4, dst=E4) / TCP(sport=5061, dport=41009, flags="SA")),    # forged: no such flow
    E(IP(src=X4, dst=E4) / UDP(sport=53, dport=41020)),                  # forged DNS answer
    E(IPv6(src=X6, dst=E6) / TCP(sport=5061, dport=41015, flags="A")),   # forged, IPv6
    E(IP(src=X4, dst=E4) / UDP(sport=40012, dport=50011)),               # relay port never used
    E(IP(src=X4, dst=E4) / TCP(sport=40010, dport=8080, flags="S"), 0),  # no Edge port
    E(IPv6(src=X6, dst=E6) / TCP(sport=40021, dport=8080, flags="S"), 0),
    E(IP(src=X4, dst=E4) / UDP(sport=40011, dport=5061)),                # 5061 is TCP only
    E(IP(src=X4, dst=E4) / ICMP(type=8) / Raw(b"ping")),                 # echo: not allowed
    E(IP(src=X4, dst=E4) / ICMP(type=3, code=4) / IP(src=E4, dst=X4) / TCP(sport=40004, dport=5061)),
    E(IPv6(src="fe80::9", dst=E6, hlim=255) / ICMPv6ND_NS(tgt=E6), 0),  # neighbour discovery
    # a first fragment to the Edge's 3478 and its second: both pass
    E(IP(src=X4, dst=E4, flags="MF", frag=0, id=77) / UDP(sport=40017, dport=3478, len=408), 200),
    E(IP(src=X4, dst=E4, frag=26, id=77, proto=17), 200),
    # a first fragment to no Edge port (dropped for the port) and its second (no verdict kept: fragment)
    E(IP(src=X4, dst=E4, flags="MF", frag=0, id=88) / UDP(sport=40022, dport=8080, len=408), 200),
    E(IP(src=X4, dst=E4, frag=26, id=88, proto=17), 200),
    # a later fragment whose first fragment never came
    E(IP(src=X4, dst=E4, frag=26, id=99, proto=17), 120),
]
wrpcap(sys.argv[1], frames)
EOF
	E='(ip.src == 203.0.113.20 || ipv6.src == 2001:db8:e::20)'
	TOE='(ip.dst == 203.0.113.20 || ipv6.dst == 2001:db8:e::20)'
	case_begin edge "$WORK/edge.pcap" replay-edge.site
	# Toward the Edge: its listening ports first, then (outbound-to) the peer's source port.
	expect_rule "edge-external xmpp tcp 5269 in" "$TOE && tcp.dstport == 5269"
	expect_rule "edge-external edge-443 tcp 443 in" "$TOE && tcp.dstport == 443"
	expect_rule "edge-external stun udp 3478 in" "$TOE && udp.dstport == 3478"
	expect_rule "edge-external edge-media-relay udp from 50000-59999 in" \
		"$TOE && udp.dstport >= 50000 && udp.dstport <= 59999"
	expect_rule "edge-external dns udp to 53 in" "$TOE && udp.srcport == 53"
	expect_rule "edge-external dns tcp to 53 in" "$TOE && tcp.srcport == 53"
	expect_rule "edge-external crl-http tcp to 80 in" "$TOE && tcp.srcport == 80"
	expect_rule "edge-external sip-tls tcp to 5061 in" "$TOE && tcp.srcport == 5061 && !(ip.src == 192.0.2.11)"
	expect_rule "edge-external edge-443 tcp to 443 in" "$TOE && tcp.srcport == 443 && tcp.dstport != 443"
	expect_rule "edge-external xmpp tcp to 5269 in" "$TOE && tcp.srcport == 5269 && tcp.dstport != 5269"
	expect_rule "edge-external stun udp to 3478 in" \
		"$TOE && udp.srcport == 3478 && udp.dstport != 3478 && !(udp.dstport >= 50000 && udp.dstport <= 59999)"
	# From the Edge: toward the Front End's listening 5061 (equal to the Edge's outbound-to 5061
	# at the other end: the Front End's line comes first), then the Edge's own listening ports
	# (its answers), then its outbound-to rules by the peer's destination port. The Front End's
	# answers from 5061 count under its rule too (out).
	expect_rule "frontend sip-tls tcp 5061 in" "ip.dst == 192.0.2.11 && tcp.dstport == 5061"
	expect_rule "frontend sip-tls tcp 5061 out" "ip.src == 192.0.2.11 && tcp.srcport == 5061"
	expect_rule "edge-external xmpp tcp 5269 out" "$E && tcp.srcport == 5269"
	expect_rule "edge-external edge-443 tcp 443 out" "$E && tcp.srcport == 443"
	expect_rule "edge-external stun udp 3478 out" "$E && udp.srcport == 3478"
	expect_rule "edge-external edge-media-relay udp from 50000-59999 out" \
		"$E && udp.srcport >= 50000 && udp.srcport <= 59999"
	expect_rule "edge-external dns udp to 53 out" "$E && udp.dstport == 53"
	expect_rule "edge-external dns tcp to 53 out" "$E && tcp.dstport == 53"
	expect_rule "edge-external crl-http tcp to 80 out" "$E && tcp.dstport == 80"
	expect_rule "edge-external sip-tls tcp to 5061 out" "$E && tcp.dstport == 5061 && !(ip.dst == 192.0.2.11)"
	expect_rule "edge-external edge-443 tcp to 443 out" "$E && tcp.dstport == 443 && tcp.srcport != 443"
	expect_rule "edge-external xmpp tcp to 5269 out" "$E && tcp.dstport == 5269 && tcp.srcport != 5269"
	expect_rule "edge-external stun udp to 3478 out" \
		"$E && udp.dstport == 3478 && udp.srcport != 3478 && !(udp.srcport >= 50000 && udp.srcport <= 59999)"
	case_end

	# The policy: what enforce drops, by reason, from filters on the frames toward the Edge.
	# port: no Edge rule has that port on either transport (a dropped first fragment leaves no
	# verdict: its later fragment is a fragment); transport: the port is the Edge's on the other transport, or
	# ICMP that is no error and no neighbour discovery (the capture's one error quotes a live flow of
	# the Edge: it passes); unsolicited: an answer on no
	# flow the Edge opened; fragment: a later fragment whose first never came or was dropped.
	T2E="!icmp && !icmpv6 && $TOE"
	DROP_REASONS=(port transport unsolicited fragment malformed)
	DROP_FILTERS=(
		"$T2E && (tcp.dstport == 8080 || udp.dstport == 8080)"
		"($T2E && udp.dstport == 5061) || (ip.dst == 203.0.113.20 && icmp.type == 8)"
		"$T2E && ((tcp.dstport >= 41000 && tcp.dstport <= 41999) || (udp.dstport >= 41000 && udp.dstport <= 41999) || udp.dstport == 50011)"
		"$T2E && (ip.id == 99 || (ip.id == 88 && ip.frag_offset > 0))"
		"$TOE && frame.cap_len < frame.len"
	)
	mapfile -t want < <(derive_counts "$WORK/edge.pcap" "${DROP_FILTERS[@]}")
	for policy in monitor enforce; do
		replay "$SITES/replay-edge.site" "$WORK/edge.pcap" --json --policy $policy
		rc=$?
		cp "$WORK/out" "$WORK/edge-$policy.json"
		expect_eq "edge --policy $policy: exit 0" 0 "$rc"
	done
	for i in "${!DROP_REASONS[@]}"; do
		r=${DROP_REASONS[$i]}
		expect_eq "edge --policy enforce: drops.$r = ${want[$i]:-?} (packets bytes)" "${want[$i]:-?}" \
			"$(jq -r ".drops.$r | \"\(.packets) \(.bytes)\"" "$WORK/edge-enforce.json")"
		expect_eq "edge --policy monitor: would_drop.$r = ${want[$i]:-?}" "${want[$i]:-?}" \
			"$(jq -r ".would_drop.$r | \"\(.packets) \(.bytes)\"" "$WORK/edge-monitor.json")"
	done
	expect_eq "edge --policy enforce: the fragmentation-needed quoting the Edge's live flow to 5061 passes (no icmp-unrelated)" \
		0 "$(jq '.drops["icmp-unrelated"].packets' "$WORK/edge-enforce.json")"
	expect_eq "edge: the capture exercises every reason but malformed" 4 \
		"$(printf '%s\n' "${want[@]:0:4}" | awk '$1 > 0' | wc -l)"
	expect_eq "edge: replay without --policy (monitor) drops nothing" 0 \
		"$(jq '[.drops[].packets] | add' "$WORK/edge.json")"
	expect_eq "edge --policy enforce: nothing counted as would-drop" 0 \
		"$(jq '[.would_drop[].packets] | add' "$WORK/edge-enforce.json")"
	expect_eq "edge --policy monitor: nothing counted as dropped" 0 \
		"$(jq '[.drops[].packets] | add' "$WORK/edge-monitor.json")"
	# Media kinds and DSCP conformance describe what goes on: a packet enforce drops has its
	# rule and reason counted, nothing more.
	same_rows='del(.drops, .would_drop) | .services |= map(del(.media, .conformance))'
	expect_eq "edge: the policy changes no classification (same rows, packets and bytes)" \
		"$(jq -c "$same_rows" "$WORK/edge-monitor.json")" "$(jq -c "$same_rows" "$WORK/edge-enforce.json")"
	media_packets='[.services[] | (.media // {}), (.conformance // {}) | .[].packets] | add'
	m=$(jq "$media_packets" "$WORK/edge-monitor.json")
	e=$(jq "$media_packets" "$WORK/edge-enforce.json")
	d=$(jq '[.drops[].packets] | add' "$WORK/edge-enforce.json")
	check "edge --policy enforce: media kinds and conformance count fewer packets than monitor ($e < $m), by no more than it drops ($d)" \
		test "$e" -lt "$m" -a $((m - e)) -le "$d"
else
	fail "edge: could not write a capture with scapy ($PY)"
fi

# ---- captures that are not whole ----

# bad_input NAME FILE: a one-line error on stderr, a non-zero exit, no crash (no signal).
bad_input() {
	local name=$1 file=$2
	replay "$SITES/replay-stun.site" "$file" --json
	local rc=$? lines
	lines=$(wc -l <"$WORK/err")
	if [ "$rc" -ne 0 ] && [ "$rc" -lt 128 ] && [ "$lines" -eq 1 ] && grep -q '^lyncxdp: ' "$WORK/err"; then
		pass "$name: exit $rc, one line: $(cat "$WORK/err")"
	else
		fail "$name: exit $rc, $lines lines on stderr: $(head -c 300 "$WORK/err" | tr '\n' '|')"
	fi
}

# pcap cut in the middle of a record (its size is not a record boundary: checked with tshark)
half=$(($(stat -c %s "$CAPS/sip.pcap") / 2))
head -c "$half" "$CAPS/sip.pcap" >"$WORK/cut.pcap"
if tshark -r "$WORK/cut.pcap" >/dev/null 2>&1; then
	fail "truncated pcap: tshark reads $WORK/cut.pcap whole, the cut is not mid-record"
fi
bad_input "truncated pcap (cut mid-record)" "$WORK/cut.pcap"
half=$(($(stat -c %s "$CAPS/rtp.pcapng") / 2))
head -c "$half" "$CAPS/rtp.pcapng" >"$WORK/cut.pcapng"
bad_input "truncated pcapng (cut mid-block)" "$WORK/cut.pcapng"
head -c 10 "$CAPS/sip.pcap" >"$WORK/header.pcap"
bad_input "pcap cut inside its file header" "$WORK/header.pcap"
cp "$CAPS/README.md" "$WORK/not-a-capture.pcap"
bad_input "a text file named .pcap" "$WORK/not-a-capture.pcap"
: >"$WORK/empty.pcap"
bad_input "an empty file" "$WORK/empty.pcap"
bad_input "a missing file" "$WORK/does-not-exist.pcap"

# snaplen SRC SNAPLEN [WHOLE]: frames captured short of their length run padded with zeros to
# their wire length (README, replay): none is left out, none is malformed for being short, and
# bytes count at wire length (tshark's frame.len). WHOLE: the snap length keeps every header of
# the capture's frames, so every counter equals the uncut capture's.
snaplen() {
	local src=$1 snap=$2 whole=${3:-} name="snaplen $2 ($1)" out=$WORK/snap$2-$1
	editcap -s "$snap" "$CAPS/$src" "$out" >/dev/null 2>&1 || {
		fail "$name: editcap failed"
		return
	}
	replay "$SITES/replay-stun.site" "$out" --json
	local rc=$?
	cp "$WORK/out" "$out.json"
	if [ "$rc" -ne 0 ]; then
		fail "$name: replay exited $rc: $(head -c 300 "$WORK/err")"
		return
	fi
	local frames truncated wire
	frames=$(tshark_q -r "$out" | wc -l)
	truncated=$(tshark_q -r "$out" -Y 'frame.cap_len < frame.len' | wc -l)
	wire=$(tshark_q -r "$out" -T fields -e frame.len | awk '{ b += $1 } END { print b + 0 }')
	expect_eq "$name: frames ($frames)" "$frames" "$(jq .capture.frames "$out.json")"
	expect_eq "$name: truncated = padded = frames captured short ($truncated)" \
		"$truncated $truncated" "$(jq -r '"\(.capture.truncated) \(.capture.padded)"' "$out.json")"
	expect_eq "$name: every frame runs (not_run 0)" 0 "$(jq .capture.not_run "$out.json")"
	expect_eq "$name: total = frames at wire length ($frames $wire)" "$frames $wire" \
		"$(jq -r '"\(.total.packets) \(.total.bytes)"' "$out.json")"
	if [ -n "$whole" ]; then
		replay "$SITES/replay-stun.site" "$CAPS/$src" --json
		cp "$WORK/out" "$out.full.json"
		local view='[.services[] | [.rule, .direction, .packets, .bytes]], .unclassified,
			.non_ip, .fragments, .icmp, .other_l4, .malformed'
		expect_eq "$name: every counter equals the uncut capture's" \
			"$(jq -c "$view" "$out.full.json" | paste -sd ' ')" \
			"$(jq -c "$view" "$out.json" | paste -sd ' ')"
	fi
}
if command -v editcap >/dev/null; then
	snaplen stun.pcap 40
	snaplen sip.pcap 64 whole
	snaplen rtp.pcapng 96 whole
	snaplen stun_classic.pcap 10
else
	fail "editcap (tshark's companion) is missing: snaplen tests not run"
fi

# ---- frames larger than a test run's single buffer ----
# None of the captures has a frame over 1486 bytes, but captures taken on a host with GRO/TSO
# hold TCP frames up to 65549 bytes, and jumbo-frame networks 9000. BPF_PROG_TEST_RUN for XDP
# puts at most PAGE_SIZE - 256 (headroom) - 320 (skb_shared_info) = 3520 bytes in the linear
# buffer; since Linux 5.18 the rest goes to fragments (up to MAX_SKB_FRAGS = 17 pages, so 73152
# bytes in all), which this program, not an xdp.frags program, cannot see.
# Well-formed TCP frames to a Front End's 5061: each must either classify (sip-tls in, its full
# length) or count as not run; never both, never malformed; and the replay must finish.
JUMBO_SIZES=(1500 3520 3521 4096 4097 9000 65549)
if $PY - "$WORK/jumbo.pcap" "${JUMBO_SIZES[@]}" <<'EOF' 2>/dev/null; then
import sys
from scapy.all import Ether, IP, TCP, Raw, wrpcap
frames = []
for size in map(int, sys.argv[2:]):
    p = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / \
        IP(src="198.51.100.7", dst="192.0.2.10") / TCP(sport=50000, dport=5061, flags="A")
    frames.append(p / Raw(b"x" * (size - len(p))))
wrpcap(sys.argv[1], frames, snaplen=262144)
EOF
	n=${#JUMBO_SIZES[@]}
	replay "$SITES/replay-jumbo.site" "$WORK/jumbo.pcap" --json
	rc=$?
	cp "$WORK/out" "$WORK/jumbo.json"
	expect_eq "jumbo: replay exits 0" 0 "$rc"
	expect_eq "jumbo: $n frames of ${JUMBO_SIZES[*]} bytes read" "$n" "$(jq .capture.frames "$WORK/jumbo.json")"
	expect_eq "jumbo: total.packets + not_run = frames (no frame both run and refused)" "$n" \
		"$(jq '.total.packets + .capture.not_run' "$WORK/jumbo.json")"
	expect_eq "jumbo: no well-formed frame counted as malformed" "0 0" \
		"$(jq -r '"\(.malformed.packets) \(.malformed.bytes)"' "$WORK/jumbo.json")"
	# Sizes ascend: whatever runs whole is the smallest frames, 1500 and 3520 at least.
	expect_eq "jumbo: the frames that classify count their full length (1500 and 3520 at least)" true \
		"$(jq --arg s "${JUMBO_SIZES[*]}" '[.services[] | select(.role == "frontend" and .service == "sip-tls" and
			.direction == "in")][0] as $r | ($s | split(" ") | map(tonumber) | .[:$r.packets] | add) as $b |
			$r.packets >= 2 and $r.bytes == $b' "$WORK/jumbo.json")"
else
	fail "jumbo: could not write a capture with scapy ($PY)"
fi

# A frame larger than the kernel takes at all (80000 bytes, non-IP: IPv4 cannot say that length),
# then a small one: the replay goes on past it and accounts for both frames.
if $PY - "$WORK/huge.pcap" <<'EOF' 2>/dev/null; then
import struct, sys
frames = [b"\x02" * 12 + b"\x88\xb5" + b"y" * (80000 - 14), b"\x02" * 12 + b"\x88\xb5" + b"z" * 46]
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 262144, 1))
    for frame in frames:
        f.write(struct.pack("<IIII", 0, 0, len(frame), len(frame)) + frame)
EOF
	replay "$SITES/replay-jumbo.site" "$WORK/huge.pcap" --json
	rc=$?
	if [ "$rc" -eq 0 ]; then
		pass "huge frame: replay exits 0"
		expect_eq "huge frame: total.packets + not_run = frames = 2" "2 2" \
			"$(jq -r '"\(.total.packets + .capture.not_run) \(.capture.frames)"' "$WORK/out")"
	else
		fail "huge frame: an 80000-byte frame aborts the replay (exit $rc): $(head -c 200 "$WORK/err")"
	fi
else
	fail "huge frame: could not write the capture ($PY)"
fi

echo "replay suite: $((SECONDS - started)) s"
suite_done
