// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * lyncxdp: classify every packet by Lync / Skype for Business service and direction.
 *
 * Reads top to bottom: parse (Ethernet, VLANs, IPv4/IPv6, TCP/UDP), classify (role of the
 * destination and source address, then the rule for (role set, transport, port)), act
 * (count, pass). The loader fills every map; the program only reads them and counts.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "lyncxdp_kern_user.h"

#define IPV4_FRAG_OFFSET  0x1fff
#define IPV6_FRAG_OFFSET  0xfff8
#define MAX_VLAN_TAGS	  2
#define MAX_IPV6_EXT_HDRS 6

/* Set by the loader before load; constant for the verifier. */
const volatile __u32 iface_slot = 0;  /* which interface's counters this instance feeds */
const volatile __u32 rule_cap = 1024; /* rule ids per slot in lx_counters */
const volatile __u8 record_last = 0;  /* explain/replay: remember the last decision */

// IPv4 prefixes (not /32) -> role-set group id. Written by the loader from the site file.
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, LX_MAX_PREFIXES);
	__type(key, struct lx_lpm4_key);
	__type(value, __u32);
} lx_lpm4 SEC(".maps");

// IPv6 prefixes (not /128) -> role-set group id. Written by the loader.
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, LX_MAX_PREFIXES);
	__type(key, struct lx_lpm6_key);
	__type(value, __u32);
} lx_lpm6 SEC(".maps");

// IPv4 hosts (/32) -> group id, roles of covering prefixes included. Written by the loader.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, LX_MAX_PREFIXES);
	__type(key, __u32);
	__type(value, __u32);
} lx_host4 SEC(".maps");

// IPv6 hosts (/128) -> group id. Written by the loader.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, LX_MAX_PREFIXES);
	__type(key, struct lx_addr6);
	__type(value, __u32);
} lx_host6 SEC(".maps");

// (proto, port) -> bitmask of groups with a rule there; lets most packets skip address
// lookups. Written by the loader.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LX_PORT_GROUPS_SIZE);
	__type(key, __u32);
	__type(value, __u32);
} lx_port_groups SEC(".maps");

// (group, proto, port) -> winning rule id, precedence resolved by the loader.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LX_RULE_TABLE_SIZE);
	__type(key, __u32);
	__type(value, struct lx_rule_slot);
} lx_rule_table SEC(".maps");

// Which address maps are in use. Written by the loader.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lx_config);
} lx_config SEC(".maps");

// Per-CPU packets/bytes per (interface slot, rule, direction). Written by the program;
// sized by the loader (LX_MAX_IFACES * rule_cap * 2).
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LX_MAX_IFACES * 1024 * LX_DIR_MAX);
	__type(key, __u32);
	__type(value, struct lx_count);
} lx_counters SEC(".maps");

// Per-CPU packets/bytes per (interface slot, enum lx_counter). Written by the program.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LX_MAX_IFACES *LX_CNT_MAX);
	__type(key, __u32);
	__type(value, struct lx_count);
} lx_special SEC(".maps");

// Rule descriptions for `lyncxdp stats`; the program never reads it. Written by the loader.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct lx_rule_info);
} lx_rule_info SEC(".maps");

// Attached interfaces and what they run; the program never reads it. Written by the loader.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lx_state);
} lx_state SEC(".maps");

// The decision for the last packet, for explain and replay. Written by the program.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lx_last);
} lx_last SEC(".maps");

struct vlan_hdr {
	__be16 tci;
	__be16 encap_proto;
};

struct ipv6_frag {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off;
	__be32 id;
};

struct cursor {
	void *pos;
	void *end;
};

/* What parsing found: addresses and ports of a TCP/UDP packet. */
struct packet {
	__u32 family; /* 4 or 6 */
	__u32 proto;  /* enum lx_proto */
	__be32 saddr4;
	__be32 daddr4;
	struct lx_addr6 saddr6;
	struct lx_addr6 daddr6;
	__u16 sport;
	__u16 dport;
};

/* Parse results other than "ports found" are the lx_counter that counts them. */
#define PARSED_L4 LX_CNT_MAX

/* ---- parse ---- */

static __always_inline int parse_ethernet(struct cursor *c, __u16 *eth_proto)
{
	struct ethhdr *eth = c->pos;
	if ((void *)(eth + 1) > c->end)
		return LX_CNT_MALFORMED;
	*eth_proto = eth->h_proto;
	c->pos = eth + 1;

#pragma unroll
	for (int i = 0; i < MAX_VLAN_TAGS; i++) {
		if (*eth_proto != bpf_htons(ETH_P_8021Q) && *eth_proto != bpf_htons(ETH_P_8021AD))
			return PARSED_L4;
		struct vlan_hdr *vlan = c->pos;
		if ((void *)(vlan + 1) > c->end)
			return LX_CNT_MALFORMED;
		*eth_proto = vlan->encap_proto;
		c->pos = vlan + 1;
	}
	/* A third tag is beyond what we parse: count it with the other non-IP frames. */
	if (*eth_proto == bpf_htons(ETH_P_8021Q) || *eth_proto == bpf_htons(ETH_P_8021AD))
		return LX_CNT_NON_IP;
	return PARSED_L4;
}

static __always_inline int parse_ports(struct cursor *c, __u8 ipproto, struct packet *p)
{
	if (ipproto == IPPROTO_TCP) {
		struct tcphdr *tcp = c->pos;
		if ((void *)(tcp + 1) > c->end || tcp->doff < 5)
			return LX_CNT_MALFORMED;
		p->proto = LX_PROTO_TCP;
		p->sport = bpf_ntohs(tcp->source);
		p->dport = bpf_ntohs(tcp->dest);
		return PARSED_L4;
	}
	if (ipproto == IPPROTO_UDP) {
		struct udphdr *udp = c->pos;
		if ((void *)(udp + 1) > c->end)
			return LX_CNT_MALFORMED;
		p->proto = LX_PROTO_UDP;
		p->sport = bpf_ntohs(udp->source);
		p->dport = bpf_ntohs(udp->dest);
		return PARSED_L4;
	}
	if (ipproto == IPPROTO_ICMP || ipproto == IPPROTO_ICMPV6)
		return LX_CNT_ICMP;
	return LX_CNT_OTHER_L4;
}

static __always_inline int parse_ipv4(struct cursor *c, struct packet *p)
{
	struct iphdr *ip = c->pos;
	if ((void *)(ip + 1) > c->end)
		return LX_CNT_MALFORMED;
	if (ip->version != 4 || ip->ihl < 5)
		return LX_CNT_MALFORMED;
	__u32 hdr_len = ip->ihl * 4;
	__u32 tot_len = bpf_ntohs(ip->tot_len);
	if (tot_len < hdr_len || (void *)ip + tot_len > c->end)
		return LX_CNT_MALFORMED;
	if ((void *)ip + hdr_len > c->end)
		return LX_CNT_MALFORMED;
	if (bpf_ntohs(ip->frag_off) & IPV4_FRAG_OFFSET)
		return LX_CNT_FRAGMENT;

	p->family = 4;
	p->saddr4 = ip->saddr;
	p->daddr4 = ip->daddr;
	c->pos = (void *)ip + hdr_len;
	return parse_ports(c, ip->protocol, p);
}

static __always_inline int parse_ipv6(struct cursor *c, struct packet *p)
{
	struct ipv6hdr *ip6 = c->pos;
	if ((void *)(ip6 + 1) > c->end)
		return LX_CNT_MALFORMED;
	if (ip6->version != 6)
		return LX_CNT_MALFORMED;
	if ((void *)(ip6 + 1) + bpf_ntohs(ip6->payload_len) > c->end)
		return LX_CNT_MALFORMED;

	p->family = 6;
	__builtin_memcpy(&p->saddr6, &ip6->saddr, sizeof(p->saddr6));
	__builtin_memcpy(&p->daddr6, &ip6->daddr, sizeof(p->daddr6));
	__u8 nexthdr = ip6->nexthdr;
	c->pos = ip6 + 1;

#pragma unroll
	for (int i = 0; i <= MAX_IPV6_EXT_HDRS; i++) { /* up to MAX headers, then L4 */
		if (nexthdr == IPPROTO_HOPOPTS || nexthdr == IPPROTO_ROUTING ||
		    nexthdr == IPPROTO_DSTOPTS) {
			__u8 *opt =
			    c->pos; /* next header, length in 8-octet units beyond the first */
			if ((void *)(opt + 8) > c->end)
				return LX_CNT_MALFORMED;
			nexthdr = opt[0];
			c->pos = opt + (opt[1] + 1) * 8;
			continue;
		}
		if (nexthdr == IPPROTO_FRAGMENT) {
			struct ipv6_frag *frag = c->pos;
			if ((void *)(frag + 1) > c->end)
				return LX_CNT_MALFORMED;
			if (bpf_ntohs(frag->frag_off) & IPV6_FRAG_OFFSET)
				return LX_CNT_FRAGMENT;
			nexthdr = frag->nexthdr;
			c->pos = frag + 1;
			continue;
		}
		return parse_ports(c, nexthdr, p);
	}
	/* Longer extension chains than any real sender uses. */
	return LX_CNT_MALFORMED;
}

/* ---- classify ---- */

static __always_inline __u32 group_of_v4(__be32 addr, __u32 flags)
{
	__u32 *group;

	if (flags & LX_CFG_HOST4) {
		group = bpf_map_lookup_elem(&lx_host4, &addr);
		if (group)
			return *group;
	}
	if (flags & LX_CFG_NET4) {
		struct lx_lpm4_key key = { .prefixlen = 32, .addr = addr };
		group = bpf_map_lookup_elem(&lx_lpm4, &key);
		if (group)
			return *group;
	}
	return 0;
}

static __always_inline __u32 group_of_v6(const struct lx_addr6 *addr, __u32 flags)
{
	__u32 *group;

	if (flags & LX_CFG_HOST6) {
		group = bpf_map_lookup_elem(&lx_host6, addr);
		if (group)
			return *group;
	}
	if (flags & LX_CFG_NET6) {
		struct lx_lpm6_key key = { .prefixlen = 128 };
		__builtin_memcpy(key.addr, addr->addr, sizeof(key.addr));
		group = bpf_map_lookup_elem(&lx_lpm6, &key);
		if (group)
			return *group;
	}
	return 0;
}

static __always_inline __u32 groups_at_port(__u32 proto, __u16 port)
{
	__u32 idx = lx_port_index(proto, port);
	__u32 *mask = bpf_map_lookup_elem(&lx_port_groups, &idx);
	return mask ? *mask : 0;
}

static __always_inline __u32 rule_at(__u32 group, __u32 proto, __u16 port)
{
	__u32 idx = lx_rule_slot_index(group, proto, port);
	struct lx_rule_slot *slot = bpf_map_lookup_elem(&lx_rule_table, &idx);
	return slot ? slot->rule[port % LX_RULES_PER_SLOT] : 0;
}

/* The rule for one side of the packet: the address's role set listening on that port. */
static __always_inline __u32 match_side(const struct packet *p, int dst, __u32 flags)
{
	__u16 port = dst ? p->dport : p->sport;
	__u32 candidates = groups_at_port(p->proto, port);
	if (!candidates)
		return 0; /* no role listens on this port: skip the address lookup */

	__u32 group;
	if (p->family == 4)
		group = group_of_v4(dst ? p->daddr4 : p->saddr4, flags);
	else
		group = group_of_v6(dst ? &p->daddr6 : &p->saddr6, flags);
	if (!group || group >= LX_MAX_GROUPS || !(candidates & (1u << group)))
		return 0;
	return rule_at(group, p->proto, port);
}

/* ---- act ---- */

static __always_inline void count(void *map, __u32 idx, __u64 bytes)
{
	struct lx_count *c = bpf_map_lookup_elem(map, &idx);
	if (c) {
		c->packets++;
		c->bytes += bytes;
	}
}

static __always_inline void remember(__u32 rule, __u32 dir, __u32 counter, __u32 verdict)
{
	__u32 zero = 0;
	struct lx_last *last = bpf_map_lookup_elem(&lx_last, &zero);
	if (last) {
		last->rule = rule;
		last->dir = dir;
		last->counter = counter;
		last->verdict = verdict;
	}
}

SEC("xdp")
int lyncxdp(struct xdp_md *ctx)
{
	struct cursor c = {
		.pos = (void *)(long)ctx->data,
		.end = (void *)(long)ctx->data_end,
	};
	__u64 bytes = c.end - c.pos;
	struct packet p = {};
	__u16 eth_proto = 0;

	int result = parse_ethernet(&c, &eth_proto);
	if (result == PARSED_L4) {
		if (eth_proto == bpf_htons(ETH_P_IP))
			result = parse_ipv4(&c, &p);
		else if (eth_proto == bpf_htons(ETH_P_IPV6))
			result = parse_ipv6(&c, &p);
		else
			result = LX_CNT_NON_IP;
	}

	__u32 rule = 0, dir = LX_DIR_IN;
	if (result == PARSED_L4) {
		__u32 zero = 0;
		struct lx_config *cfg = bpf_map_lookup_elem(&lx_config, &zero);
		__u32 flags = cfg ? cfg->flags : 0;

		rule = match_side(&p, 1, flags); /* in wins when both sides match */
		if (!rule) {
			rule = match_side(&p, 0, flags);
			dir = LX_DIR_OUT;
		}
		result = LX_CNT_UNCLASSIFIED;
	}

	if (rule && rule < rule_cap)
		count(&lx_counters, lx_rule_counter_index(iface_slot, rule_cap, rule, dir), bytes);
	else
		count(&lx_special, lx_special_counter_index(iface_slot, result), bytes);

	if (record_last)
		remember(rule, dir, result, XDP_PASS);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
