#!/usr/bin/env bash
# `make demo`: lyncxdp on a veth pair between two network namespaces. A client sends a little
# Lync-shaped traffic (SIP/TLS, HTTPS, STUN, audio and relayed media, plus some traffic no
# rule knows) to a Front End and an Edge; lyncxdp, attached on the server's end, counts it per
# service and direction, and what its policy would drop toward the protected Edge. Then the
# policy goes to enforce with DSCP tagging, live: what the Edge does not accept is dropped and
# logged, SIP is re-marked. Everything it creates (namespaces, interfaces, pins, files) goes
# when it ends, also on failure or Ctrl-C. Touches no interface of the host.
#
#   lxdemo-client  lxdemo-c ===== lxdemo-s  lxdemo-server (lyncxdp attached here)
#   192.0.2.200  192.0.2.50       192.0.2.11 frontend     203.0.113.10 edge-external
#   2001:db8:20::200              2001:db8:10::11         2001:db8:ff::10
# shellcheck shell=bash
set -uo pipefail
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LYNCXDP=${LYNCXDP:-$TOP/build/lyncxdp}
# shellcheck source=netns.sh
source "$TOP/scripts/netns.sh"

C=lxdemo-client
S=lxdemo-server
t_start=$(date +%s.%N)

if [ -t 1 ]; then B=$'\033[1m' R=$'\033[0m'; else B='' R=''; fi
say() { printf '\n%s== %s%s\n' "$B" "$*" "$R"; }
die() {
	echo "demo: $*" >&2
	exit 1
}
# run NS ARGS...: lyncxdp ARGS inside namespace NS, shown as a shell prompt there.
run() {
	local ns=$1
	shift
	echo "[$ns]# lyncxdp $*"
	lx "$ns" "$@"
}

[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces, XDP): sudo make demo"
[ -x "$LYNCXDP" ] || die "$LYNCXDP is not built: make"
ns_lock || die "another lyncxdp demo or test run is still going"
mountpoint -q /sys/fs/bpf || die "bpffs is not mounted at /sys/fs/bpf (mount -t bpf bpf /sys/fs/bpf)"
[ -e /sys/fs/bpf/lyncxdp ] && die "lyncxdp is already attached on this machine (lyncxdp status); the demo leaves it alone"
for ns in $C $S; do
	[ -e "/run/netns/$ns" ] && ip netns del "$ns" # left by a demo killed with SIGKILL
done
ns_traps
ns_tmpdir lyncxdp-demo
T=$NS_TMP

# ---- the site ----
cat >"$T/demo.site" <<'EOF'
# Which address holds which Lync role (format: maps/README.md).
frontend       192.0.2.11  2001:db8:10::11
edge-external  203.0.113.10 2001:db8:ff::10
clients        192.0.2.128/25 2001:db8:20::/64
# The Edge accepts only its listening ports and answers on flows it opened itself.
protect        edge-external
EOF
say "Site file: who is who"
grep -v '^#' "$T/demo.site"
"$LYNCXDP" check --site "$T/demo.site" >/dev/null || die "the demo site does not check"

# ---- two namespaces, one veth pair ----
say "Two namespaces joined by a veth pair"
two_ns_veth $C lxdemo-c $S lxdemo-s
ns_addr $C lxdemo-c 192.0.2.200/24 192.0.2.50/24 203.0.113.200/24 2001:db8:20::200/48
ns_addr $S lxdemo-s 192.0.2.11/24 203.0.113.10/24 2001:db8:10::11/48 2001:db8:ff::10/48
ip -n $C route add 2001:db8::/32 dev lxdemo-c
ip -n $S route add 2001:db8::/32 dev lxdemo-s
echo "$C: $(ip -n $C -br addr show lxdemo-c | awk '{$1=$2=""; print}')"
echo "$S: $(ip -n $S -br addr show lxdemo-s | awk '{$1=$2=""; print}')"

# ---- attach ----
say "Attach lyncxdp to lxdemo-s (monitor mode: every packet passes and is counted)"
run $S attach lxdemo-s --site "$T/demo.site" || die "attach failed"
ip -n $S link show lxdemo-s | grep -o 'prog/xdp.*' | sed 's/^/ip link: /'

# ---- traffic ----
say "Client traffic"
head -c 40000 /dev/urandom >"$T/sip"
head -c 250000 /dev/urandom >"$T/page"
ns_bg $S timeout 20 socat -T 5 -u TCP4-LISTEN:5061,bind=192.0.2.11,reuseaddr,fork OPEN:/dev/null
ns_bg $S timeout 20 socat -T 5 -u "OPEN:$T/page" TCP4-LISTEN:443,bind=192.0.2.11,reuseaddr
ns_bg $S timeout 20 socat -T 5 -u 'TCP6-LISTEN:5061,bind=[2001:db8:10::11],reuseaddr' OPEN:/dev/null
ns_wait_listen $S tcp 5061 && ns_wait_listen $S tcp 443 || die "socat listeners did not start"

echo "SIP/TLS   TCP 192.0.2.200 -> frontend 192.0.2.11:5061, 40 KB"
nsenter --net=/run/netns/$C timeout 20 socat -T 5 -u "OPEN:$T/sip" TCP4:192.0.2.11:5061 || die "SIP/TLS failed"
echo "SIP/TLS   TCP [2001:db8:20::200] -> frontend [2001:db8:10::11]:5061, 40 KB"
nsenter --net=/run/netns/$C timeout 20 socat -T 5 -u "OPEN:$T/sip" 'TCP6:[2001:db8:10::11]:5061' || die "SIP/TLS over IPv6 failed"
echo "HTTPS     TCP 192.0.2.200 <- frontend 192.0.2.11:443, a 250 KB download"
nsenter --net=/run/netns/$C timeout 20 socat -T 5 -u TCP4:192.0.2.11:443 OPEN:/dev/null || die "HTTPS failed"

# udp NAME SRC SPORT DST DPORT COUNT KIND: STUN binding requests, 20 ms RTP audio
# (G.711, 160-byte payload), or plain datagrams.
udp() {
	echo "$1"
	nsenter --net="/run/netns/$C" timeout 20 /usr/bin/python3 -c '
import os, socket, struct, sys
src, sport, dst, dport, count, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
s = socket.socket(socket.AF_INET6 if ":" in dst else socket.AF_INET, socket.SOCK_DGRAM)
s.bind((src, sport))
for i in range(count):
    if kind == "stun":    # Binding Request: type, length, magic cookie, transaction id
        data = struct.pack("!HHI", 0x0001, 0, 0x2112A442) + os.urandom(12)
    elif kind == "rtp":   # version 2, PCMU, sequence, timestamp, SSRC, 20 ms of audio
        data = struct.pack("!BBHII", 0x80, 0, i, i * 160, 0x4C594E43) + bytes(160)
    else:
        data = os.urandom(40)
    s.sendto(data, (dst, dport))
' "$2" "$3" "$4" "$5" "$6" "$7" || die "sending $1 failed"
}
udp "STUN      UDP 192.0.2.200 -> edge-external 203.0.113.10:3478, 8 binding requests" \
	192.0.2.200 50010 203.0.113.10 3478 8 stun
udp "STUN      UDP [2001:db8:20::200] -> edge-external [2001:db8:ff::10]:3478, 4 binding requests" \
	2001:db8:20::200 50012 2001:db8:ff::10 3478 4 stun
udp "media     UDP 203.0.113.200 -> edge-external 203.0.113.10:50040 (A/V relay), 6 RTP packets
          (the Edge never sent from 50040 to it: the policy would drop them as unsolicited)" \
	203.0.113.200 40000 203.0.113.10 50040 6 rtp
udp "audio     UDP 192.0.2.200:50020 -> frontend 192.0.2.11:49170 (conference), 50 RTP packets" \
	192.0.2.200 50020 192.0.2.11 49170 50 rtp
udp "other     UDP 192.0.2.50 -> frontend 192.0.2.11:53, 5 datagrams no rule knows" \
	192.0.2.50 5353 192.0.2.11 53 5 other
sleep 0.3 # the last packets reach the program

# ---- status and stats ----
say "lyncxdp status"
run $S status
say "lyncxdp stats"
run $S stats

# ---- enforce, live ----
say "Enforce and tag, live: no detach, counters and flows kept"
run $S set lxdemo-s --policy enforce --tag || die "set failed"
lx $S drops --seconds 4 >"$T/drops" 2>&1 &
drops=$!
NS_PIDS+=("$drops")
sleep 0.5 # the drop log reader is ready
echo "SIP/TLS   TCP 192.0.2.200 -> frontend 192.0.2.11:5061, 40 KB (re-marked DSCP 24)"
nsenter --net=/run/netns/$C timeout 20 socat -T 5 -u "OPEN:$T/sip" TCP4:192.0.2.11:5061 || die "SIP/TLS failed"
udp "STUN      UDP 192.0.2.200 -> edge-external 203.0.113.10:3478, 4 binding requests (pass)" \
	192.0.2.200 50010 203.0.113.10 3478 4 stun
udp "media     UDP 203.0.113.200 -> edge-external 203.0.113.10:50040, 4 RTP packets (dropped)" \
	203.0.113.200 40000 203.0.113.10 50040 4 rtp
echo "SSH       TCP 203.0.113.200 -> edge-external 203.0.113.10:22 (no Edge port: dropped)"
if nsenter --net=/run/netns/$C timeout 5 socat -T 1 -u OPEN:/dev/null TCP4:203.0.113.10:22,connect-timeout=1 2>/dev/null; then
	die "TCP 22 to the Edge got through"
fi
wait "$drops"
say "lyncxdp stats (the policy's counters at the end)"
run $S stats
say "lyncxdp drops --seconds 4 (ran in the background meanwhile; first the log's backlog)"
echo "[$S]# lyncxdp drops --seconds 4"
cat "$T/drops"

# ---- explain ----
say "Why? Explain one packet (run through the real program, nothing attached)"
run $S explain --site "$T/demo.site" udp 192.0.2.200:50010 203.0.113.10:3478

# ---- clean up ----
say "Clean up"
run $S detach lxdemo-s
ns_cleanup
left=$(ip netns list | grep -c '^lxdemo-' || true)
if [ -e /sys/fs/bpf/lyncxdp ] || [ "$left" -ne 0 ]; then
	die "something was left behind: $(ls -d /sys/fs/bpf/lyncxdp 2>/dev/null) $(ip netns list | grep '^lxdemo-')"
fi
echo "namespaces, interfaces, pins and files removed; nothing left behind."
/usr/bin/python3 -c 'import sys, time; print("demo done in %.1f s" % (time.time() - float(sys.argv[1])))' "$t_start"
