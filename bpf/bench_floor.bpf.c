// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Benchmark floor of a classifier: the least any program that looks an address up must do.
 * Parses Ethernet (up to two VLAN tags), IPv4 or IPv6 (no extension headers) and the TCP or
 * UDP ports, does one hash lookup of the destination address and increments one per-CPU
 * counter, then passes the frame. `make bench` fills the hash maps with the destination
 * addresses of its frames, so every lookup hits, as lyncxdp's host lookups do.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

// IPv4 destination address -> counter index. Written by bench.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u32);
} floor_host4 SEC(".maps");

// IPv6 destination address -> counter index. Written by bench.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct in6_addr);
	__type(value, __u32);
} floor_host6 SEC(".maps");

// Per-CPU packets per counter index (0: address not found). Written by the program.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} floor_count SEC(".maps");

struct vlan_hdr {
	__be16 tci;
	__be16 encap_proto;
};

SEC("xdp")
int bench_floor(struct xdp_md *ctx)
{
	void *pos = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = pos;
	__u32 *value = 0, idx = 0;
	__u16 proto;
	__u8 l4;

	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	proto = eth->h_proto;
	pos = eth + 1;
#pragma unroll
	for (int i = 0; i < 2; i++) {
		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		struct vlan_hdr *vlan = pos;
		if ((void *)(vlan + 1) > end)
			return XDP_PASS;
		proto = vlan->encap_proto;
		pos = vlan + 1;
	}
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = pos;
		if ((void *)(ip + 1) > end || ip->ihl < 5)
			return XDP_PASS;
		l4 = ip->protocol;
		pos = (void *)ip + ip->ihl * 4;
		value = bpf_map_lookup_elem(&floor_host4, &ip->daddr);
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = pos;
		if ((void *)(ip6 + 1) > end)
			return XDP_PASS;
		l4 = ip6->nexthdr;
		pos = ip6 + 1;
		value = bpf_map_lookup_elem(&floor_host6, &ip6->daddr);
	} else {
		return XDP_PASS;
	}
	if (l4 == IPPROTO_TCP || l4 == IPPROTO_UDP) {
		struct udphdr *ports = pos; /* source and destination port lead both headers */
		if ((void *)(ports + 1) > end)
			return XDP_PASS;
		idx = value ? *value + (ports->dest & 1) : 0;
	}
	__u64 *n = bpf_map_lookup_elem(&floor_count, &idx);
	if (n)
		(*n)++;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
