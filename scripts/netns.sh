# Network namespace helpers for the demo, the tests and the benchmark. Source it, and call
# ns_traps (ns_cleanup from an EXIT trap): every namespace made with ns_add goes, with what
# lyncxdp attached inside it. Needs $LYNCXDP (the lyncxdp binary). two_ns_veth makes the usual
# pair of namespaces joined by one veth pair (the demo and most live suites).
# shellcheck shell=bash

# Network namespaces created through ns_add are deleted by ns_cleanup (run it from a trap).
NS_CREATED=()
NS_PIDS=()    # background processes started with ns_bg / ns_capture_start
NS_TMPDIRS=() # directories made with ns_tmpdir
ns_add() {
	ip netns add "$1"
	NS_CREATED+=("$1")
	ip -n "$1" link set lo up
}

ns_cleanup() {
	local ns pid running killed=()
	# Background helpers first (captures, listeners, senders), each by its own pid, and only
	# while it is still a running job of this shell (an ended one's pid may be reused).
	running=" $(jobs -rp | tr '\n' ' ') "
	for pid in "${NS_PIDS[@]}"; do
		if [[ $running == *" $pid "* ]] && kill "$pid" 2>/dev/null; then
			killed+=("$pid")
		fi
	done
	for pid in "${killed[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	NS_PIDS=()
	for ns in "${NS_CREATED[@]}"; do
		# Detach whatever lyncxdp left in that namespace before the interfaces vanish.
		nsenter --net="/run/netns/$ns" "$LYNCXDP" detach --all >/dev/null 2>&1 || true
		ip netns del "$ns" 2>/dev/null || true
	done
	NS_CREATED=()
	for ns in "${NS_TMPDIRS[@]}"; do
		# LYNCXDP_KEEP_TMP=1 keeps captures and reports for a post-mortem.
		if [ -n "${LYNCXDP_KEEP_TMP:-}" ]; then echo "kept $ns" >&2; else rm -rf -- "$ns"; fi
	done
	NS_TMPDIRS=()
}

# ns_traps [CLEANUP]: CLEANUP (default ns_cleanup) runs on exit, also after Ctrl-C or a kill
# (INT, TERM and HUP exit so that the EXIT trap runs).
ns_traps() {
	# shellcheck disable=SC2064 # the command is fixed now
	trap "${1:-ns_cleanup}" EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM HUP
}

# veth_pair NS_A IF_A NS_B IF_B: a veth pair between two namespaces, both ends up.
veth_pair() {
	ip link add "$2" netns "$1" type veth peer name "$4" netns "$3"
	ip -n "$1" link set "$2" up
	ip -n "$3" link set "$4" up
}

# two_ns_veth NS_A IF_A NS_B IF_B: two new quiet namespaces (ns_add, ns_quiet) joined by a
# veth pair IF_A (in NS_A) ==== IF_B (in NS_B); addresses are the caller's (ns_addr).
two_ns_veth() {
	ns_add "$1"
	ns_add "$3"
	ns_quiet "$1"
	ns_quiet "$3"
	veth_pair "$@"
}

# three_ns_path NS_A IF_A NS_G IF_GA IF_GB NS_B IF_B: three new quiet namespaces in a row, NS_A
# and NS_B each joined to NS_G (a gateway) by a veth pair: IF_A ==== IF_GA, IF_GB ==== IF_B;
# addresses, routes and forwarding are the caller's.
three_ns_path() {
	two_ns_veth "$1" "$2" "$3" "$4"
	ns_add "$6"
	ns_quiet "$6"
	veth_pair "$3" "$5" "$6" "$7"
}

# lx NS ARGS...: lyncxdp inside a namespace, sharing the host's /sys/fs/bpf pins.
lx() {
	local ns=$1
	shift
	nsenter --net="/run/netns/$ns" "$LYNCXDP" "$@"
}


# ns_tmpdir [NAME]: a private temporary directory /tmp/NAME.XXXXXX, removed by ns_cleanup;
# sets NS_TMP to its path (a path printed on stdout would lose the registration in a subshell).
ns_tmpdir() {
	NS_TMP=$(mktemp -d "/tmp/${1:-lyncxdp-test}.XXXXXX")
	NS_TMPDIRS+=("$NS_TMP")
}

# ns_stale PREFIX: delete namespaces named PREFIX* left by an earlier, killed run.
ns_stale() {
	local ns
	for ns in $(ip netns list | awk '{print $1}' | grep "^$1" || true); do
		ip netns del "$ns" 2>/dev/null || true
	done
}

# ns_addr NS IFACE ADDR/LEN...: addresses inside a namespace; IPv6 without duplicate address
# detection, so that they are usable at once.
ns_addr() {
	local ns=$1 dev=$2 a
	shift 2
	for a in "$@"; do
		case $a in
		*:*) ip -n "$ns" addr add "$a" dev "$dev" nodad || return 1 ;;
		*) ip -n "$ns" addr add "$a" dev "$dev" || return 1 ;;
		esac
	done
}

# ns_quiet NS: no router solicitations and no autoconfiguration on links created afterwards
# in NS, so the only traffic is what the caller sends (plus neighbour discovery and MLD).
ns_quiet() {
	local k
	for k in default all; do
		ip netns exec "$1" sysctl -qw "net.ipv6.conf.$k.accept_ra=0" \
			"net.ipv6.conf.$k.autoconf=0" "net.ipv6.conf.$k.router_solicitations=0" \
			2>/dev/null || true
	done
}

# ns_mac NS IFACE: the interface's MAC address.
ns_mac() {
	ip -n "$1" -o link show dev "$2" | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p'
}

# ns_xdp NS IFACE: "native", "generic" or "none": what `ip link` shows attached to IFACE.
ns_xdp() {
	local out
	out=$(ip -n "$1" -d link show dev "$2" 2>/dev/null) || {
		echo missing
		return
	}
	case $out in
	*xdpgeneric*) echo generic ;;
	*"prog/xdp"*) echo native ;;
	*) echo none ;;
	esac
}

# ns_bg NS CMD...: CMD in the background inside NS; ns_cleanup stops it. Sets NS_BG_PID.
ns_bg() {
	local ns=$1
	shift
	nsenter --net="/run/netns/$ns" "$@" &
	NS_BG_PID=$!
	NS_PIDS+=("$NS_BG_PID")
}

# ns_wait_listen NS tcp|udp PORT: wait (at most 5 s) until something listens on PORT.
ns_wait_listen() {
	local i flag=-Hltn
	[ "$2" = udp ] && flag=-Hlun
	for i in $(seq 50); do
		[ -n "$(ip netns exec "$1" ss $flag "sport = :$3" 2>/dev/null)" ] && return 0
		sleep 0.1
	done
	echo "nothing listens on $2 port $3 in $1" >&2
	return 1
}

# ns_wait_tcp_closed NS PORT: wait (at most 5 s) until no TCP socket on local port PORT is
# open any more (TIME-WAIT counts as closed: its last ACK is sent).
ns_wait_tcp_closed() {
	local i
	for i in $(seq 50); do
		[ -z "$(ip netns exec "$1" ss -Htan "sport = :$2" 2>/dev/null | grep -v TIME-WAIT)" ] &&
			return 0
		sleep 0.1
	done
	echo "TCP port $2 in $1 still open" >&2
	return 1
}

# ns_capture_start NS IFACE FILE: tcpdump on IFACE into FILE (pcap), returns once it listens.
# ns_capture_stop FILE ends it and waits until the file is complete.
declare -A NS_CAPTURE_PID=()
ns_capture_start() {
	local i
	ns_bg "$1" tcpdump -i "$2" -n -U --immediate-mode -Z root -s 96 -w "$3" 2>"$3.log"
	NS_CAPTURE_PID[$3]=$NS_BG_PID
	for i in $(seq 50); do
		grep -q 'listening on' "$3.log" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "tcpdump on $2 in $1 did not start: $(cat "$3.log")" >&2
	return 1
}

ns_capture_stop() {
	local pid=${NS_CAPTURE_PID[$1]:-}
	[ -n "$pid" ] || return 1
	sleep 0.2 # the last frames reach the capture socket
	kill -INT "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	unset "NS_CAPTURE_PID[$1]"
}

# ns_udp_send NS SRC SPORT DST DPORT COUNT [SPAN [GAP [SIZE]]]: COUNT datagrams from SRC:SPORT
# to DST:DPORT..DPORT+SPAN-1 (round robin), GAP seconds apart, payloads of 20 to 319 bytes
# (or SIZE bytes each). Prints "DATAGRAMS BYTES", BYTES counting whole Ethernet frames as a
# capture shows them (for datagrams that fit in one frame).
ns_udp_send() {
	nsenter --net="/run/netns/$1" timeout 20 /usr/bin/python3 -c '
import socket, sys, time
src, sport, dst, dport, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
span, gap, size = int(sys.argv[6]), float(sys.argv[7]), int(sys.argv[8])
v6 = ":" in dst
s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
s.bind((src, sport))
total = 0
for i in range(count):
    n = size or 20 + (i * 37) % 300
    s.sendto(bytes([0x80 | (i & 0x3f)]) + b"\0" * (n - 1), (dst, dport + i % span))
    total += 14 + (40 if v6 else 20) + 8 + n
    if gap:
        time.sleep(gap)
print(count, total)
' "$2" "$3" "$4" "$5" "$6" "${7:-1}" "${8:-0}" "${9:-0}"
}

# ns_lock [SECONDS]: one live-network run at a time. The suites, the demo and the benchmark
# share the pins in /sys/fs/bpf/lyncxdp (ns_cleanup detaches everything) and clear namespaces
# a killed run left, so a second run waits here (default 300 s) until the first one exits.
ns_lock() {
	exec {NS_LOCK_FD}>>/run/lyncxdp-netns.lock
	flock -n "$NS_LOCK_FD" && return 0
	echo "waiting for another lyncxdp test or demo run to finish (/run/lyncxdp-netns.lock)" >&2
	flock -w "${1:-300}" "$NS_LOCK_FD" && return 0
	echo "another lyncxdp test or demo run still holds /run/lyncxdp-netns.lock" >&2
	return 1
}
