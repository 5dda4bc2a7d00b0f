# Network namespace helpers for the demo, the tests and the benchmark. Source it, and call
# ns_cleanup from an EXIT trap: every namespace made with ns_add goes, with what lyncxdp
# attached inside it. Needs $LYNCXDP (the lyncxdp binary).
# shellcheck shell=bash

# Network namespaces created through ns_add are deleted by ns_cleanup (run it from a trap).
NS_CREATED=()
ns_add() {
	ip netns add "$1"
	NS_CREATED+=("$1")
	ip -n "$1" link set lo up
}

ns_cleanup() {
	local ns
	for ns in "${NS_CREATED[@]}"; do
		# Detach whatever lyncxdp left in that namespace before the interfaces vanish.
		nsenter --net="/run/netns/$ns" "$LYNCXDP" detach --all >/dev/null 2>&1 || true
		ip netns del "$ns" 2>/dev/null || true
	done
	NS_CREATED=()
}

# veth_pair NS_A IF_A NS_B IF_B: a veth pair between two namespaces, both ends up.
veth_pair() {
	ip link add "$2" netns "$1" type veth peer name "$4" netns "$3"
	ip -n "$1" link set "$2" up
	ip -n "$3" link set "$4" up
}

# lx NS ARGS...: lyncxdp inside a namespace, sharing the host's /sys/fs/bpf pins.
lx() {
	local ns=$1
	shift
	nsenter --net="/run/netns/$ns" "$LYNCXDP" "$@"
}

