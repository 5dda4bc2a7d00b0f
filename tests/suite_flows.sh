#!/usr/bin/env bash
# Per-flow results of real captures: `lyncxdp replay --flows --json` on every capture of the
# project, with site files written for them (tests/sites/flows-*.site, each says which address
# stands in for which role), against:
#  - tshark: the set of TCP/UDP flows and each direction's packets and bytes (frame.len, the
#    wire length) must be exactly tshark's, so no flow is missing, merged or split;
#  - the expectations below, written by hand from the site file and the matrix (maps/README.md,
#    "Precedence" and "Clients"): the service and direction of EVERY direction of EVERY flow,
#    all of its packets alike. A direction without an expectation, or an expectation no flow
#    uses, fails.
# Then a capture cut to a 64-byte snap length (editcap -s): every frame cut short is padded to
# its wire length, and the flows, services and bytes are those of the full capture.
# Needs root (BPF), tshark, editcap, python3.
#
# Usage: bash tests/suite_flows.sh      CAPTURES=DIR overrides tests/captures
# shellcheck shell=bash
set -uo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CAPTURES=${CAPTURES:-$TOP/tests/captures}
SITES=$TOP/tests/sites
export LYNCXDP_MAPS=${LYNCXDP_MAPS:-$MAPS}
WORK=$(mktemp -d /tmp/lyncxdp-flows.XXXXXX)
trap 'if [ -n "${LYNCXDP_KEEP_TMP:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi' EXIT

for tool in tshark editcap; do
	command -v $tool >/dev/null || { fail "$tool is not installed (scripts/install-deps.sh)"; suite_done; exit 1; }
done

CASE='' CAP='' SITE='' PRODUCT='' EXPECT=''

# flow_case NAME CAPTURE SITE PRODUCT  (CAPTURE in $CAPTURES unless absolute)
flow_case() {
	CASE=$1 CAP=$2 SITE=$SITES/$3 PRODUCT=$4 EXPECT=''
	case $CAP in /*) ;; *) CAP=$CAPTURES/$CAP ;; esac
}

# expect PROTO SRC DST "SERVICE DIR" | unclassified: the packets from SRC to DST of that flow.
expect() {
	EXPECT+="$1 $2 $3 $4"$'\n'
}

# flows_of CAPTURE > TSV: proto, source, destination, frame.len of each TCP/UDP frame that is no
# ICMP error and no later fragment (those carry no ports of their own).
flows_of() {
	tshark -r "$1" -o ip.defragment:FALSE -o ipv6.defragment:FALSE \
		-Y '(tcp || udp) && !icmp && !icmpv6' -T fields -E separator=/t -E occurrence=f \
		-e ip.src -e ipv6.src -e ip.dst -e ipv6.dst -e tcp.srcport -e udp.srcport \
		-e tcp.dstport -e udp.dstport -e frame.len 2>/dev/null
}

# The checks of the current case, on a report already in $WORK/$CASE.json.
check_report() {
	local name=$1 json=$2 tsv=$3
	printf '%s' "$EXPECT" >"$WORK/$CASE.expect"
	$PY - "$json" "$tsv" "$WORK/$CASE.expect" <<'PYEOF'
import ipaddress, json, sys

def ep(text):
    """'1.2.3.4:5' or '[::1]:5' -> (address, port), normalised."""
    host, port = text.rsplit(":", 1)
    return (ipaddress.ip_address(host.strip("[]")), int(port))

report = json.load(open(sys.argv[1]))
out = []
def check(ok, what):
    out.append(("PASS " if ok else "FAIL ") + what)

# tshark's view: packets and bytes per (proto, src, dst)
want = {}
for line in open(sys.argv[2]):
    f = line.rstrip("\n").split("\t")
    if len(f) < 9:
        continue
    src = f[0] or f[1]
    dst = f[2] or f[3]
    proto = "tcp" if f[4] else "udp"
    key = (proto, (ipaddress.ip_address(src), int(f[4] or f[5])),
           (ipaddress.ip_address(dst), int(f[6] or f[7])))
    p, b = want.get(key, (0, 0))
    want[key] = (p + 1, b + int(f[8]))

got = {}
decided = {}
for fl in report["flows"]:
    a, b = ep(fl["a"]), ep(fl["b"])
    for src, dst, side in ((a, b, "a_to_b"), (b, a, "b_to_a")):
        s = fl[side]
        if s["packets"]:
            got[(fl["proto"], src, dst)] = (s["packets"], s["bytes"])
            decided[(fl["proto"], src, dst)] = s
check(got == want, "%d directions of %d flows: packets and bytes equal tshark's (%d directions)"
      % (len(got), len(report["flows"]), len(want)) +
      ("" if got == want else ": only lyncxdp %s; only tshark %s; differ %s" % (
          sorted(set(got) - set(want))[:3], sorted(set(want) - set(got))[:3],
          [(k, got[k], want[k]) for k in got if k in want and got[k] != want[k]][:3])))

expected = {}
for line in open(sys.argv[3]):
    f = line.split()
    if not f:
        continue
    expected[(f[0], ep(f[1]), ep(f[2]))] = " ".join(f[3:])
for key, s in sorted(decided.items(), key=str):
    label = "%s %s:%d -> %s:%d" % (key[0], key[1][0], key[1][1], key[2][0], key[2][1])
    if s["service"]:
        is_ = "%s %s" % (s["service"], s["direction"])
    else:
        is_ = s["counter"]
    uniform = len(s["decisions"]) == 1 and not s["other"]
    if key not in expected:
        check(False, "%s: %d packets counted as %s, but no expectation is written for it"
              % (label, s["packets"], is_))
        continue
    exp = expected.pop(key)
    check(is_ == exp and uniform, "%s: %d packets, all %s%s" % (
        label, s["packets"], exp,
        "" if is_ == exp and uniform else " (got %s)" % s["decisions"]))
for key, exp in expected.items():
    check(False, "expectation %s %s -> %s (%s) matched no flow of the capture" % (key + (exp,)))
print("\n".join(out))
PYEOF
}

# Runs the current case: replay, tshark, every flow direction against the expectations.
case_end() {
	local name="$CASE ($PRODUCT)" json=$WORK/$CASE.json
	if [ ! -r "$CAP" ]; then
		fail "$name: capture $CAP not found"
		return
	fi
	if ! "$LYNCXDP" replay --product "$PRODUCT" --site "$SITE" --flows --json "$CAP" \
		>"$json" 2>"$WORK/err"; then
		fail "$name: replay --flows --json failed: $(head -c 300 "$WORK/err")"
		return
	fi
	flows_of "$CAP" >"$WORK/$CASE.tsv"
	while IFS= read -r line; do
		case $line in
		PASS\ *) pass "$name: ${line#PASS }" ;;
		FAIL\ *) fail "$name: ${line#FAIL }" ;;
		*) fail "$name: checker said: $line" ;;
		esac
	done < <(check_report "$name" "$json" "$WORK/$CASE.tsv" 2>&1)
}

# ---- stun.pcap: clients' STUN/media with Google, Facebook and Zoom (no role) unclassified;
# peer-to-peer app sharing between two client subnets; STUN over TCP 3478 to the Edge's address,
# a port none of its rules has, from an address without a role: unclassified ----
flow_case stun stun.pcap flows-stun.site sfb2015
expect tcp 54.1.57.155:37257 87.47.100.17:3478 unclassified
expect tcp 87.47.100.17:3478 54.1.57.155:37257 unclassified
expect tcp 10.77.110.51:41588 10.206.50.239:42000 "client-media in"
expect tcp 10.206.50.239:42000 10.77.110.51:41588 "client-media in"
for pair in 192.168.12.169:38123,31.13.86.54:40003 192.168.12.169:49153,142.250.82.99:3478 \
	192.168.12.169:43016,74.125.247.128:3478 192.168.43.169:48854,134.224.90.111:8801 \
	'[3516:bf0b:fc53:75e7:70af:f67f:8e49:f603]:56880,[2a38:e156:8167:a333:face:b00c:0:24d9]:3478'; do
	expect udp "${pair%,*}" "${pair#*,}" unclassified
	expect udp "${pair#*,}" "${pair%,*}" unclassified
done
expect udp '[2600:1900:4160:5999:0:19::]:3478' '[2001:b07:a3d:c112:48a1:1094:1227:281e]:48094' \
	unclassified # one way only
case_end

# ---- stun_msteams_unidir.pcapng: a Teams relay's media to a client, one way ----
flow_case teams stun_msteams_unidir.pcapng flows-teams.site teams
expect udp 52.115.136.55:3479 10.0.0.1:50006 "teams-relay out"
case_end
# The same site with the on-premises matrix alone: the cloud holds a role but no rule, so the
# client's own range counts (Microsoft's cloud is a peer).
flow_case teams-sfb stun_msteams_unidir.pcapng flows-teams.site sfb2015
expect udp 52.115.136.55:3479 10.0.0.1:50006 "client-media in"
case_end
# Hybrid: both matrices; the relay's port beats the client's ranges.
flow_case teams-hybrid stun_msteams_unidir.pcapng flows-teams.site sfb2015,teams
expect udp 52.115.136.55:3479 10.0.0.1:50006 "teams-relay out"
case_end

# The text form of the same listing: the flow, then one line per direction.
out=$("$LYNCXDP" replay --product teams --site "$SITES/flows-teams.site" --flows \
	"$CAPTURES/stun_msteams_unidir.pcapng" 2>&1)
check "teams: replay --flows (text) lists the flow" grep -q '^udp A 52.115.136.55:3479  B 10.0.0.1:50006$' <<<"$out"
check "teams: replay --flows (text): A->B 12 packets 5944 bytes, teams-relay out" \
	grep -qE '^    A->B +12 packets +5944 bytes +teams-relay out \(teams-cloud, rule [0-9]+\)$' <<<"$out"
check "teams: replay --flows (text): B->A sent nothing" grep -qE '^    B->A +0 packets +0 bytes$' <<<"$out"
check "teams: replay --flows (text): verdicts" grep -q '^    verdicts pass 12, drop 0$' <<<"$out"

# ---- rtp.pcapng: media through the Edge's relay range both ways, peer-to-peer RTP, and RTP to
# an address without a role ----
flow_case rtp rtp.pcapng flows-rtp.site sfb2015
expect udp 150.219.118.19:54234 192.113.193.227:50003 "edge-media-relay in"
expect udp 192.113.193.227:50003 150.219.118.19:54234 "edge-media-relay out"
expect tcp 172.16.168.24:40252 172.16.168.64:5000 "client-media in"
expect tcp 172.16.168.64:5000 172.16.168.24:40252 "client-media in"
expect udp 10.204.220.71:6000 10.204.220.171:6000 "client-media in"
expect udp 10.140.67.167:55402 148.153.85.97:6008 unclassified
case_end

# ---- sip.pcap: a phone on a client subnet with a SIP trunk provider: not Lync ----
flow_case sip sip.pcap flows-sip.site sfb2015
for pair in 192.168.1.2:5060,212.242.33.35:5060 192.168.1.2:5060,200.68.120.81:5060; do
	expect udp "${pair%,*}" "${pair#*,}" unclassified
	expect udp "${pair#*,}" "${pair%,*}" unclassified
done
expect udp 192.168.1.2:30000 212.242.33.36:40392 unclassified # RTP, one way
expect udp 192.168.1.2:30001 212.242.33.36:40393 unclassified
case_end

# ---- sip_hello.pcapng: a client's SIP over UDP with a Front End (no UDP 5060 rule) ----
flow_case sip_hello sip_hello.pcapng flows-sip.site sfb2015
expect udp 10.239.156.235:5060 172.29.38.91:5060 "client-media out"
expect udp 172.29.38.91:5060 10.239.156.235:5060 "client-media in"
case_end

# ---- stun_classic.pcap: STUN then RTP between two clients ----
flow_case stun_classic stun_classic.pcap flows-misc.site sfb2015
expect udp 172.16.63.224:55050 172.16.63.21:13958 "client-media in"
expect udp 172.16.63.21:13958 172.16.63.224:55050 "client-media in"
case_end

# ---- stun_tcp_multiple_msgs_same_pkt.pcap: MS-TURN over TCP with the cloud, hybrid site ----
flow_case stun_tcp stun_tcp_multiple_msgs_same_pkt.pcap flows-misc.site sfb2015,teams
expect tcp 23.183.197.71:42849 166.172.142.131:3479 "client-media out"
expect tcp 166.172.142.131:3479 23.183.197.71:42849 "client-media in"
case_end

# ---- dnscrypt_skype_false_positive.pcapng: a listed client's DNSCrypt (UDP 443) to the
# internet ----
flow_case dnscrypt dnscrypt_skype_false_positive.pcapng flows-misc.site sfb2015
expect udp 192.168.2.100:46858 212.47.228.136:443 unclassified
expect udp 212.47.228.136:443 192.168.2.100:46858 unclassified
case_end

# ---- a 64-byte snap length: frames cut short are padded to their wire length ----
short=$WORK/stun-snap64.pcapng
if editcap -s 64 "$CAPTURES/stun.pcap" "$short" 2>"$WORK/err"; then
	cut=$(tshark -r "$short" -Y 'frame.cap_len < frame.len' 2>/dev/null | wc -l)
	if "$LYNCXDP" replay --product sfb2015 --site "$SITES/flows-stun.site" --json "$short" \
		>"$WORK/short.json" 2>"$WORK/err"; then
		expect_eq "snap length 64: every frame cut short ($cut) is reported padded" \
			"$cut $cut" "$(json_get 'j["capture"]["truncated"], j["capture"]["padded"]' \
				<"$WORK/short.json" | tr -d '(),')"
		expect_eq "snap length 64: nothing is malformed" 0 \
			"$(json_get 'j["malformed"]["packets"]' <"$WORK/short.json")"
	else
		fail "snap length 64: replay failed: $(head -c 300 "$WORK/err")"
	fi
	# The full capture's expectations hold for the cut one: same flows, services, wire bytes.
	flow_case stun stun.pcap flows-stun.site sfb2015
	EXPECT=$(cat "$WORK/stun.expect")$'\n'
	CASE=stun-snap64 CAP=$short
	case_end
else
	fail "editcap -s 64: $(head -c 300 "$WORK/err")"
fi

suite_done
