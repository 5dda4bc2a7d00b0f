// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * lyncxdp: classify every packet by Lync / Skype for Business service and direction.
 *
 * Reads top to bottom: parse (Ethernet, VLANs, IPv4/IPv6, TCP/UDP/ICMP), classify (role of
 * the destination and source address, then the rule for (role set, transport, port)), act
 * (count; track flows opened by protected hosts; drop or count what the policy forbids;
 * rewrite DSCP). The loader fills every table; the program reads them and writes counters,
 * the flow and fragment tables and the drop log.
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

#define IPV4_MF		  0x2000
#define IPV4_FRAG_OFFSET  0x1fff
#define IPV6_FRAG_OFFSET  0xfff8
#define IPV6_MF		  0x0001
#define MAX_VLAN_TAGS	  2
#define MAX_IPV6_EXT_HDRS 6
#define TCP_FIN		  0x01
#define TCP_SYN		  0x02
#define TCP_RST		  0x04
#define TCP_ACK		  0x10
#define NSEC_PER_SEC	  1000000000ULL
#define AF_INET		  2
#define AF_INET6	  10

/* Set by the loader before load; constant for the verifier. */
const volatile __u32 iface_slot = 0;  /* which interface's counters this instance feeds */
const volatile __u8 record_last = 0;  /* explain/replay: remember the last decision */
const volatile __u8 replay_clock = 0; /* media: time is replay_now_ns, not the kernel's */
/* Rule ids per slot in lx_counters: a power of two, LX_RULE_CAP_MIN at least. */
const volatile __u32 rule_cap = LX_RULE_CAP_MIN;

/* The flow table: its hash's seed (kept with it across reloads, in lx_state) and its number
 * of sets, a power of two. */
const volatile __u64 flow_seed = 0;
const volatile __u32 flow_sets = LX_MAX_FLOWS * LX_FLOW_SLOTS_PER_FLOW / LX_FLOW_WAYS;

/* Replay: the capture timestamp of the frame about to run, written by the loader (testrun). */
volatile __u64 replay_now_ns = 0;

/*
 * What the loader compiled from the site: address maps in use, protected groups, flow
 * timeouts, drop-log rate. Constant for the verifier, which removes what a site does not use
 * (nothing protected: no policy, no flows). A reload loads new programs with new values.
 */
const volatile struct lx_config config = {};

/* IPv6 through tbl_addr6 (user/addr6.h): its prefix lengths, longest first, and bucket mask. */
const volatile __u8 addr6_on = 0;
const volatile __u32 addr6_nlens = 0;
const volatile __u8 addr6_lens[LX_ADDR6_LENS] = {};
const volatile __u32 addr6_mask = 0;

/*
 * The maps, in three groups as a reload sees them (user/attach.c, attach_reload):
 * - tables (tbl_*): what the matrix and site compile to (user/compile.c), written only by the
 *   loader. A reload creates new ones, fills them, swaps every program to them and pins them
 *   in place of the old: they are replaced whole, never changed under a running program.
 * - state (lx_*): counters, flows, fragments, streams and the drop log written by the
 *   program, and what the loader records of the attach (interface config, rule
 *   descriptions, lx_state). Pinned once; a reload keeps them (rule ids keep their counters).
 * - debug: lx_last, the decision for the last packet, read by explain and replay.
 * Maps indexed by rule id are declared for LX_RULE_CAP_MIN ids; the loader sizes them.
 */

/* ---- tables: replaced whole by a reload ---- */

// IPv4 address, top 16 bits -> group, or LX_DIR4_CHILD | chunk of tbl_dir4_l2. Loader.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LX_DIR4_L1);
	__type(key, __u32);
	__type(value, __u32);
} tbl_dir4_l1 SEC(".maps");

// Chunk -> by the third byte: group, or LX_DIR4_CHILD | chunk of tbl_dir4_l3. Loader, sized
// for the site.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lx_dir4_l2);
} tbl_dir4_l2 SEC(".maps");

// Chunk -> by the last byte: group. Loader, sized for the site.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lx_dir4_l3);
} tbl_dir4_l3 SEC(".maps");

// IPv6 (masked address, prefix length) -> group, in buckets of lx_addr6_hash. Written by the
// loader, sized for the site; used when addr6_on.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lx_addr6_bucket);
} tbl_addr6 SEC(".maps");

// IPv6 prefixes (not /128) -> role-set group id. Written by the loader.
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, LX_MAX_PREFIXES);
	__type(key, struct lx_lpm6_key);
	__type(value, __u32);
} tbl_lpm6 SEC(".maps");

// IPv6 hosts (/128) -> group id. Written by the loader.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, LX_MAX_PREFIXES);
	__type(key, struct lx_addr6);
	__type(value, __u32);
} tbl_host6 SEC(".maps");

// One bit per hashed IPv6 /32 touched by a site prefix (lx_filter6_bit). Written by the loader.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LX_FILTER_WORDS);
	__type(key, __u32);
	__type(value, __u64);
} tbl_filter6 SEC(".maps");

// (proto, port) -> groups with a rule on their own port there, and groups with an
// outbound-to rule to that peer port; lets most packets skip address lookups. Loader.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lx_port_table);
} tbl_ports SEC(".maps");

// (group, proto, the role's own port) -> winning rule id, precedence resolved by the loader.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LX_RULE_TABLE_SIZE);
	__type(key, __u32);
	__type(value, struct lx_rule_slot);
} tbl_rules SEC(".maps");

// (group, proto, the peer's port) -> outbound-to rule id, laid out as tbl_rules. Loader.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LX_RULE_TABLE_SIZE);
	__type(key, __u32);
	__type(value, struct lx_rule_slot);
} tbl_remote SEC(".maps");

// Rule id -> kind and DSCP. Written by the loader; sized rule_cap.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LX_RULE_CAP_MIN);
	__type(key, __u32);
	__type(value, struct lx_rule_action);
} tbl_actions SEC(".maps");

// RTP payload type -> media kind, clock rate, flags (maps/media). Written by the loader.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LX_PAYLOAD_TYPES);
	__type(key, __u32);
	__type(value, struct lx_payload_type);
} tbl_payload SEC(".maps");

// Tag-mode DSCP per media kind for media services whose own DSCP is `-`. Written by the loader.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lx_media_config);
} tbl_media SEC(".maps");

// ICMP types (and codes) that protected hosts accept. Written by the loader.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LX_MAX_ICMP);
	__type(key, __u32);
	__type(value, __u32);
} tbl_icmp SEC(".maps");

/* ---- state: pinned once, kept by a reload ---- */

// Per interface slot: policy and tag mode. Written by the loader (attach, set).
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LX_MAX_IFACES);
	__type(key, __u32);
	__type(value, struct lx_iface_config);
} lx_iface_config SEC(".maps");

// NAT'd public address -> the private address of the same host (site `nat PUBLIC PRIVATE`).
// Flows are keyed by private addresses. Written by the loader; read only for addresses whose
// group is one of config.nat_groups.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LX_MAX_NAT);
	__type(key, struct lx_addr6);
	__type(value, struct lx_addr6);
} tbl_nat SEC(".maps");

// Connections opened by protected hosts, keyed from the host's side: slots of a
// set-associative table (struct lx_flow_slot, flow_find()). Written by the program; the
// loader sizes it (flow_sets sets of LX_FLOW_WAYS).
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LX_MAX_FLOWS);
	__type(key, __u32);
	__type(value, struct lx_flow_slot);
} lx_flows SEC(".maps");

// New entries of lx_flows (evictions = opened - entries present). Written by the program.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lx_flow_stats);
} lx_flow_stats SEC(".maps");

// First-fragment verdicts for the fragments that follow. Written by the program.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LX_MAX_FRAGS);
	__type(key, struct lx_frag_key);
	__type(value, struct lx_frag_verdict);
} lx_frags SEC(".maps");

// Per-CPU packets/bytes per (interface slot, rule, direction). Written by the program;
// sized by the loader (LX_MAX_IFACES * rule_cap * 2).
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, (LX_MAX_IFACES * LX_RULE_CAP_MIN * LX_DIR_MAX));
	__type(key, __u32);
	__type(value, struct lx_count);
} lx_counters SEC(".maps");

// Per-CPU packets/bytes re-marked by the tag mode, indexed like lx_counters. Program.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, (LX_MAX_IFACES * LX_RULE_CAP_MIN * LX_DIR_MAX));
	__type(key, __u32);
	__type(value, struct lx_count);
} lx_remarked SEC(".maps");

// Per-CPU packets/bytes of media services per (slot, rule, direction, enum lx_media_kind).
// Written by the program; sized by the loader (lx_counters' size * LX_MEDIA_MAX).
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, (LX_MAX_IFACES * LX_RULE_CAP_MIN * LX_DIR_MAX * LX_MEDIA_MAX));
	__type(key, __u32);
	__type(value, struct lx_count);
} lx_media SEC(".maps");

// RTP streams of media services: sequence, loss, jitter per 5-tuple and SSRC. Program.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LX_MAX_STREAMS);
	__type(key, struct lx_stream_key);
	__type(value, struct lx_stream);
} lx_streams SEC(".maps");

// Per-CPU packets/bytes per (interface slot, rule, direction, enum lx_conformance): the DSCP
// classified packets arrive with against their service's. Program; sized by the loader.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, (LX_MAX_IFACES * LX_RULE_CAP_MIN * LX_DIR_MAX * LX_CONF_MAX));
	__type(key, __u32);
	__type(value, struct lx_count);
} lx_conformance SEC(".maps");

// Per-CPU packets/bytes per (interface slot, enum lx_counter). Written by the program.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LX_MAX_IFACES *LX_CNT_MAX);
	__type(key, __u32);
	__type(value, struct lx_count);
} lx_special SEC(".maps");

// Per-CPU drops and would-drops per (interface slot, reason, class: lx_drop_counter_index).
// Written by the program.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LX_DROP_COUNTERS);
	__type(key, __u32);
	__type(value, struct lx_drop_count);
} lx_drops SEC(".maps");

// Drop log records for `lyncxdp drops`. Written by the program, rate-limited.
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} lx_droplog SEC(".maps");

// Per CPU: the coarse clock as last read from the kernel, and in which jiffy (clock_ns).
// Written by the program.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lx_clock);
} lx_clock SEC(".maps");

// Per-CPU one-second window of the drop-log rate limit. Written by the program.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lx_droplog_window);
} lx_droplog_rl SEC(".maps");

// Rule descriptions for `lyncxdp stats`; the program never reads it. Written by the loader.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LX_RULE_CAP_MIN);
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

/* ---- debug ---- */

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

enum fragment_kind {
	FRAG_NONE = 0,
	FRAG_FIRST = 1, /* offset 0, more fragments follow: has the L4 header */
	FRAG_LATER = 2, /* no L4 header */
};

/* What parsing found. Addresses are valid once have_addrs is set, even for fragments. */
struct packet {
	__u8 family; /* 4 or 6 */
	__u8 have_addrs;
	__u8 ipproto;
	__u8 fragment; /* enum fragment_kind */
	__u8 tcp_flags;
	__u8 icmp_type;
	__u8 icmp_code;
	__u8 proto; /* enum lx_proto, for TCP and UDP */
	__u32 frag_id;
	__u8 frag_proto; /* protocol the fragment header (or IPv4 header) names: the fragment key */
	__u16 l4_room;	 /* bytes the IP length leaves for the transport header */
	__u16 sport;
	__u16 dport;
	__u16 tcp_win; /* TCP: window, sequence and acknowledgment numbers, host order */
	__u32 tcp_seq;
	__u32 tcp_ack;
	struct lx_addr6 saddr; /* IPv4 in the first four bytes */
	struct lx_addr6 daddr;
	void *ip;	   /* the IP header, for the DSCP rewrite */
	__u16 payload_at;  /* TCP/UDP payload, from the IP header (0: none), for media services;
			    * for ICMP the ICMP header */
	__u16 payload_len; /* its length by the IP header */
};

/*
 * The config through a pointer the compiler knows nothing about, so that it cannot fold the
 * loads (the initialiser is all zeros); the verifier still reads them from the frozen .rodata
 * as constants and prunes the branches they decide.
 */
static __always_inline const struct lx_config *config_ptr(void)
{
	const struct lx_config *c = (const struct lx_config *)&config;
	asm volatile("" : "+r"(c));
	return c;
}

/*
 * What a parser returns: PARSE_NEXT when the layer it read leads on (Ethernet and VLAN tags to
 * L3, IP to L4, L4 to classify: ports found), else the lx_counter that counts the frame.
 */
#define PARSE_NEXT LX_CNT_MAX

/* A malformed frame is the rare case: its exits go out of the way of the common path. */
#define unlikely(x) __builtin_expect(!!(x), 0)

/* ---- parse ---- */

static __always_inline int parse_ethernet(struct cursor *c, __u16 *eth_proto)
{
	struct ethhdr *eth = c->pos;
	if (unlikely((void *)(eth + 1) > c->end))
		return LX_CNT_MALFORMED;
	/* struct ethhdr is packed: read its type as one 16-bit word, not byte by byte */
	*eth_proto = *(__u16 *)((__u8 *)eth + offsetof(struct ethhdr, h_proto));
	c->pos = eth + 1;

#pragma unroll
	for (int i = 0; i < MAX_VLAN_TAGS; i++) {
		if (*eth_proto != bpf_htons(ETH_P_8021Q) && *eth_proto != bpf_htons(ETH_P_8021AD))
			return PARSE_NEXT;
		struct vlan_hdr *vlan = c->pos;
		if ((void *)(vlan + 1) > c->end)
			return LX_CNT_MALFORMED;
		*eth_proto = vlan->encap_proto;
		c->pos = vlan + 1;
	}
	/* A third tag is beyond what we parse: count it with the other non-IP frames. */
	if (*eth_proto == bpf_htons(ETH_P_8021Q) || *eth_proto == bpf_htons(ETH_P_8021AD))
		return LX_CNT_NON_IP;
	return PARSE_NEXT;
}

static __always_inline int parse_l4(struct cursor *c, struct packet *p)
{
	/* ICMP is protocol 1 in IPv4 and 58 in IPv6; the other number is just another protocol. */
	int icmp = p->ipproto == (p->family == 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6);
	if (p->ipproto == IPPROTO_TCP) {
		struct tcphdr *tcp = c->pos;
		if (unlikely((void *)(tcp + 1) > c->end))
			return LX_CNT_MALFORMED;
		/* A header of 20 bytes or more within the IP length (then l4_room >= 20 too). */
		__u16 hdr_len = tcp->doff * 4; /* read once: stores to p may alias the packet */
		if (unlikely(hdr_len < sizeof(*tcp) || hdr_len > p->l4_room))
			return LX_CNT_MALFORMED;
		p->proto = LX_PROTO_TCP;
		p->sport = bpf_ntohs(tcp->source);
		p->dport = bpf_ntohs(tcp->dest);
		p->tcp_flags = ((__u8 *)tcp)[13];
		p->tcp_seq = bpf_ntohl(tcp->seq);
		p->tcp_ack = bpf_ntohl(tcp->ack_seq);
		p->tcp_win = bpf_ntohs(tcp->window);
		p->payload_at = (__u16)((void *)tcp - p->ip) + hdr_len;
		p->payload_len = p->l4_room - hdr_len;
		return PARSE_NEXT;
	}
	if (p->ipproto == IPPROTO_UDP) {
		struct udphdr *udp = c->pos;
		if (unlikely((void *)(udp + 1) > c->end || p->l4_room < sizeof(*udp)))
			return LX_CNT_MALFORMED;
		p->proto = LX_PROTO_UDP;
		p->sport = bpf_ntohs(udp->source);
		p->dport = bpf_ntohs(udp->dest);
		/* Offsets, not a packet pointer: a pointer per parse path would defeat the
		 * verifier's state pruning. */
		p->payload_at = (__u16)((void *)(udp + 1) - p->ip);
		p->payload_len = p->l4_room - sizeof(*udp);
		return PARSE_NEXT;
	}
	if (icmp) {
		__u8 *hdr = c->pos; /* type, code, checksum */
		if (unlikely((void *)(hdr + 4) > c->end || p->l4_room < 4))
			return LX_CNT_MALFORMED;
		p->icmp_type = hdr[0];
		p->icmp_code = hdr[1];
		/* Where the ICMP message starts, for an error's quoted packet (ICMP never takes
		 * the media path these fields serve otherwise). */
		p->payload_at = (__u16)((void *)hdr - p->ip);
		p->payload_len = p->l4_room;
		return LX_CNT_ICMP;
	}
	return LX_CNT_OTHER_L4;
}

static __always_inline int parse_ipv4(struct cursor *c, struct packet *p)
{
	struct iphdr *ip = c->pos;
	if (unlikely((void *)(ip + 1) > c->end))
		return LX_CNT_MALFORMED;
	p->family = 4;
	p->ip = ip;
	__builtin_memcpy(p->saddr.addr, &ip->saddr, 4);
	__builtin_memcpy(p->daddr.addr, &ip->daddr, 4);
	p->have_addrs = 1;
	/* version 4 and a header of 5 words or more: the first byte is 0x45..0x4f */
	if (unlikely((__u8)(((__u8 *)ip)[0] - 0x45) > 0x0a))
		return LX_CNT_MALFORMED;
	__u32 hdr_len = ip->ihl * 4;
	__u32 tot_len = bpf_ntohs(ip->tot_len);
	/* The header within the IP length, and that within the frame (the transport's own
	 * bounds check covers what the verifier needs of the header's end). */
	if (unlikely(tot_len < hdr_len || (void *)ip + tot_len > c->end))
		return LX_CNT_MALFORMED;

	p->ipproto = ip->protocol;
	p->frag_proto = ip->protocol;
	p->l4_room = (__u16)(tot_len - hdr_len);
	__u16 frag = bpf_ntohs(ip->frag_off);
	p->frag_id = bpf_ntohs(ip->id);
	if (frag & IPV4_FRAG_OFFSET) {
		p->fragment = FRAG_LATER;
		return LX_CNT_FRAGMENT;
	}
	if (frag & IPV4_MF)
		p->fragment = FRAG_FIRST;
	c->pos = (void *)ip + hdr_len;
	return parse_l4(c, p);
}

static __always_inline int parse_ipv6(struct cursor *c, struct packet *p)
{
	struct ipv6hdr *ip6 = c->pos;
	if ((void *)(ip6 + 1) > c->end)
		return LX_CNT_MALFORMED;
	p->family = 6;
	p->ip = ip6;
	__builtin_memcpy(&p->saddr, &ip6->saddr, sizeof(p->saddr));
	__builtin_memcpy(&p->daddr, &ip6->daddr, sizeof(p->daddr));
	p->have_addrs = 1;
	if (ip6->version != 6)
		return LX_CNT_MALFORMED;
	if ((void *)(ip6 + 1) + bpf_ntohs(ip6->payload_len) > c->end)
		return LX_CNT_MALFORMED;

	__u8 nexthdr = ip6->nexthdr;
	__u32 room = bpf_ntohs(ip6->payload_len); /* what the extension headers leave for L4 */
	c->pos = ip6 + 1;

#pragma unroll
	for (int i = 0; i <= MAX_IPV6_EXT_HDRS; i++) { /* up to MAX headers, then L4 */
		int ext = nexthdr == IPPROTO_HOPOPTS || nexthdr == IPPROTO_ROUTING ||
			  nexthdr == IPPROTO_DSTOPTS || nexthdr == IPPROTO_FRAGMENT;
		if (ext && i == MAX_IPV6_EXT_HDRS)
			break; /* one more extension header than any real sender uses */
		if (nexthdr == IPPROTO_HOPOPTS || nexthdr == IPPROTO_ROUTING ||
		    nexthdr == IPPROTO_DSTOPTS) {
			__u8 *opt =
			    c->pos; /* next header, length in 8-octet units beyond the first */
			if ((void *)(opt + 8) > c->end)
				return LX_CNT_MALFORMED;
			__u32 len = (opt[1] + 1) * 8;
			if (len > room)
				return LX_CNT_MALFORMED;
			room -= len;
			nexthdr = opt[0];
			c->pos = opt + len;
			if (c->pos > c->end) /* the header's own length runs past the frame */
				return LX_CNT_MALFORMED;
			continue;
		}
		if (nexthdr == IPPROTO_FRAGMENT) {
			struct ipv6_frag *frag = c->pos;
			if ((void *)(frag + 1) > c->end)
				return LX_CNT_MALFORMED;
			__u16 off = bpf_ntohs(frag->frag_off);
			if (room < sizeof(*frag))
				return LX_CNT_MALFORMED;
			room -= sizeof(*frag);
			p->frag_id = bpf_ntohl(frag->id);
			p->ipproto = frag->nexthdr;
			p->frag_proto = frag->nexthdr;
			if (off & IPV6_FRAG_OFFSET) {
				p->fragment = FRAG_LATER;
				p->l4_room = (__u16)room;
				return LX_CNT_FRAGMENT;
			}
			if (off & IPV6_MF)
				p->fragment = FRAG_FIRST;
			nexthdr = frag->nexthdr;
			c->pos = frag + 1;
			continue;
		}
		p->ipproto = nexthdr;
		p->l4_room = (__u16)room;
		return parse_l4(c, p);
	}
	/* Longer extension chains than any real sender uses. */
	return LX_CNT_MALFORMED;
}

/* ---- classify ---- */

/* One array read that says "holds no role" for most addresses (see lx_filter4_bit). */
static __always_inline int filtered_out(void *filter, __u32 bit)
{
	__u32 word = bit / 64;
	__u64 *w = bpf_map_lookup_elem(filter, &word);
	return !w || !(*w & (1ULL << (bit % 64)));
}

/* The group of an IPv4 address (host byte order): three array reads at most. */
static __always_inline __u32 group_of4(__u32 a)
{
	__u32 key = a >> 16;
	__u32 *l1 = bpf_map_lookup_elem(&tbl_dir4_l1, &key);
	if (!l1)
		return 0;
	if (!(*l1 & LX_DIR4_CHILD))
		return *l1;
	key = *l1 & ~LX_DIR4_CHILD;
	struct lx_dir4_l2 *l2 = bpf_map_lookup_elem(&tbl_dir4_l2, &key);
	if (!l2)
		return 0;
	__u32 v = l2->entry[(a >> 8) & 0xff];
	if (!(v & LX_DIR4_CHILD))
		return v;
	key = v & ~LX_DIR4_CHILD;
	struct lx_dir4_l3 *l3 = bpf_map_lookup_elem(&tbl_dir4_l3, &key);
	return l3 ? l3->group[a & 0xff] : 0;
}

/* The group of an IPv6 address: the site's prefix lengths, longest first, one probe each. */
static __always_inline __u32 group_of6(const struct lx_addr6 *addr)
{
	__u32 a[4];
	__builtin_memcpy(a, addr->addr, 16);
#pragma unroll
	for (__u32 i = 0; i < LX_ADDR6_LENS; i++) {
		if (i >= addr6_nlens)
			break;
		__u32 len = addr6_lens[i], m[4];
#pragma unroll
		for (__u32 k = 0; k < 4; k++)
			m[k] = lx_addr6_word(a[k], k, len);
		__u32 b = lx_addr6_hash(m, len) & addr6_mask;
		struct lx_addr6_bucket *bucket = bpf_map_lookup_elem(&tbl_addr6, &b);
		if (!bucket)
			return 0;
#pragma unroll
		for (int w = 0; w < LX_ADDR6_WAYS; w++) {
			struct lx_addr6_slot *slot = &bucket->slot[w];
			if (slot->group && slot->len == len && slot->addr[0] == m[0] &&
			    slot->addr[1] == m[1] && slot->addr[2] == m[2] && slot->addr[3] == m[3])
				return slot->group;
		}
	}
	return 0;
}

static __always_inline __u32 group_of(const struct packet *p, const struct lx_addr6 *addr,
				      __u32 flags)
{
	__u32 *group, top;

	__builtin_memcpy(&top, addr->addr, 4);
	top = bpf_ntohl(top);
	if (p->family == 4)
		return group_of4(top);
	if ((flags & LX_CFG_FILTER6) && filtered_out(&tbl_filter6, lx_filter6_bit(top)))
		return 0;
	if (addr6_on)
		return group_of6(addr);
	if (flags & LX_CFG_HOST6) {
		group = bpf_map_lookup_elem(&tbl_host6, addr);
		if (group)
			return *group;
	}
	if (flags & LX_CFG_NET6) {
		struct lx_lpm6_key key = { .prefixlen = 128 };
		__builtin_memcpy(key.addr, addr->addr, sizeof(key.addr));
		group = bpf_map_lookup_elem(&tbl_lpm6, &key);
		if (group)
			return *group;
	}
	return 0;
}

/* tbl_ports' one value: a constant key, so the lookup is off the packet's critical path. */
static __always_inline const struct lx_port_table *port_table(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&tbl_ports, &zero);
}

static __always_inline struct lx_port_groups groups_at_port(const struct lx_port_table *t,
							    __u32 proto, __u16 port)
{
	struct lx_port_groups none = {};
	return t ? t->at[lx_port_index(proto & 1, port)] : none;
}

static __always_inline __u32 group_bit(__u32 group)
{
	return group && group < LX_MAX_GROUPS ? 1u << group : 0;
}

/* The rule of a group on its own port (listen or outbound-from). */
static __always_inline __u32 local_rule(__u32 group, __u32 proto, __u16 port)
{
	__u32 idx = lx_rule_slot_index(group, proto, port);
	struct lx_rule_slot *slot = bpf_map_lookup_elem(&tbl_rules, &idx);
	return slot ? slot->rule[port % LX_RULES_PER_SLOT] : 0;
}

/* The outbound-to rule of a group toward a peer's port. */
static __always_inline __u32 remote_rule(__u32 group, __u32 proto, __u16 port)
{
	__u32 idx = lx_rule_slot_index(group, proto, port);
	struct lx_rule_slot *slot = bpf_map_lookup_elem(&tbl_remote, &idx);
	return slot ? slot->rule[port % LX_RULES_PER_SLOT] : 0;
}

static __always_inline __u32 rule_kind(__u32 rule)
{
	struct lx_rule_action *a = bpf_map_lookup_elem(&tbl_actions, &rule);
	return a ? a->kind : LX_KIND_LISTEN;
}

struct decision {
	__u32 rule;
	__u32 dir;
	__u32 dst_rule;	 /* the destination's own rule: what a protected host admits */
	__u32 dst_other; /* groups with the destination port on the other transport */
	__u32 pad;	 /* whole 8-byte stack slots: the verifier prunes them */
	__u32 dst_group; /* 0 when unknown or no role */
	__u32 src_group;
	__u32 reason; /* enum lx_drop_reason */
};

/* Multicast, and IPv4 class E and limited broadcast: never a client's peer. */
static __always_inline int group_address(const struct packet *p, const struct lx_addr6 *addr)
{
	return p->family == 4 ? addr->addr[0] >= 224 : addr->addr[0] == 0xff;
}

/* Both ends can carry a client rule: each holds a role and is a unicast host. */
static __always_inline int client_pair(const struct packet *p, const struct lx_config *cfg,
				       __u32 dst_group, __u32 src_group)
{
	return (cfg->peer_groups & group_bit(dst_group)) &&
	       (cfg->peer_groups & group_bit(src_group)) && !group_address(p, &p->daddr) &&
	       !group_address(p, &p->saddr);
}

/*
 * Both ends: the destination's rule (its own port: listen/outbound-from, or the peer's port
 * for its outbound-to: "in") and the source's (likewise: "out"). When both have one, the
 * higher rank the loader stored wins, the destination's on a tie (maps/README.md,
 * "Precedence"). A client role's rule counts only between two unicast ends that both hold a
 * role, so the peer's group is looked up when the candidate is a client rule. A protected
 * destination that admits none of this is judged by the destination alone. The source
 * group is also looked up when a protected host may be opening a flow, which must be
 * tracked whatever the classification.
 */
static __always_inline void classify(const struct packet *p, const struct lx_config *cfg,
				     struct decision *d)
{
	const struct lx_port_table *ports = port_table();
	struct lx_port_groups at_dport = groups_at_port(ports, p->proto, p->dport);
	struct lx_port_groups at_sport = groups_at_port(ports, p->proto, p->sport);
	__u32 src_candidates = at_sport.local | at_dport.remote;
	__u32 in = 0, out = 0;

	/* The destination's group: for its own rule, for the policy, and as the peer a client
	 * rule of the source needs. One lookup site, so the verifier walks it once. */
	if (at_dport.local || at_sport.remote || cfg->protected_groups ||
	    (src_candidates & cfg->client_groups))
		d->dst_group = group_of(p, &p->daddr, cfg->flags);
	__u32 bit = group_bit(d->dst_group);
	if (at_dport.local & bit)
		in = local_rule(d->dst_group, p->proto, p->dport);
	else if (at_sport.remote & bit)
		in = remote_rule(d->dst_group, p->proto, p->sport);
	d->dst_rule = in;
	d->dst_other = at_dport.local_other;
	struct lx_rule_action *a_in = in ? bpf_map_lookup_elem(&tbl_actions, &in) : 0;
	int in_client = a_in && a_in->client;

	/*
	 * Settled by the destination alone: a protected destination that admits none of this
	 * (the policy refuses it whatever the source is: one lookup less on the drop path), or
	 * a server role's rule at the destination when only groups without a server role have a
	 * rule on the source's ports (a client rule never beats it: the common client -> server
	 * packet). Then the source's group is looked up only when a protected host may be
	 * opening a flow, which must be tracked whatever the classification.
	 */
	int settled = (!in && (cfg->protected_groups & bit)) ||
		      (a_in && !in_client && !(src_candidates & cfg->server_groups));
	if (settled ? (src_candidates & cfg->protected_groups) : (src_candidates || in_client))
		d->src_group = group_of(p, &p->saddr, cfg->flags);
	if (settled) {
		if (a_in) {
			d->rule = in;
			d->dir = LX_DIR_IN;
		}
		return;
	}

	bit = group_bit(d->src_group);
	if (at_sport.local & bit)
		out = local_rule(d->src_group, p->proto, p->sport);
	else if (at_dport.remote & bit)
		out = remote_rule(d->src_group, p->proto, p->dport);
	struct lx_rule_action *a_out = out ? bpf_map_lookup_elem(&tbl_actions, &out) : 0;
	int out_client = a_out && a_out->client;

	/* A client rule needs both ends to be unicast holders of a role (both groups known:
	 * the destination's was looked up for any client candidate at the source, the
	 * source's for a client rule at the destination). */
	if ((in_client || out_client) && !client_pair(p, cfg, d->dst_group, d->src_group)) {
		if (in_client)
			a_in = 0;
		if (out_client)
			a_out = 0;
	}
	if (a_out && (!a_in || a_out->rank > a_in->rank)) {
		d->rule = out;
		d->dir = LX_DIR_OUT;
	} else if (a_in) {
		d->rule = in;
		d->dir = LX_DIR_IN;
	}
}

/* ---- act: flows opened by protected hosts ---- */

/*
 * The flow of a packet, from the protected host's side. Flows are keyed by private addresses:
 * behind a 1:1 NAT on this gateway (site `nat PUBLIC PRIVATE`), XDP sees a host's public
 * address only as a destination (netfilter translates after XDP on the way out, before
 * routing on the way in), so a destination in a NAT group (dst_group) is translated: the
 * reply to the public address finds the flow the private one opened, and so does a host's
 * flow toward another NAT'd host. Returns 0 when a NAT group's address has no entry.
 */
static __always_inline int flow_key(const struct packet *p, int local_is_src, __u32 dst_group,
				    const struct lx_config *cfg, struct lx_flow_key *k)
{
	k->family = p->family;
	k->proto = p->proto;
	k->local_port = local_is_src ? p->sport : p->dport;
	k->remote_port = local_is_src ? p->dport : p->sport;
	__builtin_memcpy(k->local_addr, local_is_src ? p->saddr.addr : p->daddr.addr, 16);
	__builtin_memcpy(k->remote_addr, local_is_src ? p->daddr.addr : p->saddr.addr, 16);
	if (!(cfg->nat_groups & group_bit(dst_group)))
		return 1;
	struct lx_addr6 *inside = bpf_map_lookup_elem(&tbl_nat, &p->daddr);
	if (!inside)
		return 0;
	__builtin_memcpy(local_is_src ? k->remote_addr : k->local_addr, inside->addr, 16);
	return 1;
}

/*
 * The coarse clock (CLOCK_MONOTONIC_COARSE: it moves once per jiffy, plenty for timeouts of
 * seconds), only where a timeout needs it, and read from the kernel once per jiffy and CPU:
 * jiffies are an inlined load, while every helper call costs, several times more on CPUs
 * whose returns go through a mitigation thunk. Within a jiffy the cached value is what the
 * helper returns, or one tick behind for the whole jiffy when it was read as the tick was
 * being applied (jiffies move first, the coarse time a moment later). Another CPU may then
 * store a time a tick after this CPU's now: compare stored times with lx_elapsed_over().
 */
static __always_inline __u64 clock_ns(__u64 *now)
{
	if (*now)
		return *now;
	__u32 zero = 0;
	__u64 j = bpf_jiffies64();
	struct lx_clock *c = bpf_map_lookup_elem(&lx_clock, &zero);
	if (c && c->jiffies == j && c->ns) {
		*now = c->ns;
		return *now;
	}
	*now = bpf_ktime_get_coarse_ns();
	if (c) {
		c->jiffies = j;
		c->ns = *now;
	}
	return *now;
}

static __always_inline int flow_expired(const struct lx_flow *f, __u32 proto,
					const struct lx_config *cfg, __u64 now)
{
	__u64 timeout = f->closing		? cfg->tcp_closing_ns
			: proto == LX_PROTO_TCP ? cfg->tcp_timeout_ns
						: cfg->udp_timeout_ns;
	return lx_elapsed_over(now, f->last_seen_ns, timeout);
}

/*
 * Did a packet from a protected address arrive on the side where that host is? Only asked
 * of packets that would open, refresh or close a flow (the rare path). Routed: the route
 * back to the source must leave through the interface the packet came in on (a reverse-path
 * check with the kernel's FIB); a bridge cannot say, so the operator declares the side.
 */
static __always_inline int from_host_side(struct xdp_md *ctx, const struct packet *p, __u32 side)
{
	if (side == LX_SIDE_PROTECTED)
		return 1;
	if (side != LX_SIDE_ROUTE)
		return 0;
	struct bpf_fib_lookup fib = {};
	fib.ifindex = ctx->ingress_ifindex;
	if (p->family == 4) {
		fib.family = AF_INET;
		__builtin_memcpy(&fib.ipv4_src, p->daddr.addr, 4);
		__builtin_memcpy(&fib.ipv4_dst, p->saddr.addr, 4);
	} else {
		fib.family = AF_INET6;
		__builtin_memcpy(fib.ipv6_src, p->daddr.addr, 16);
		__builtin_memcpy(fib.ipv6_dst, p->saddr.addr, 16);
	}
	long rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), BPF_FIB_LOOKUP_SKIP_NEIGH);
	return (rc == BPF_FIB_LKUP_RET_SUCCESS || rc == BPF_FIB_LKUP_RET_NO_NEIGH) &&
	       fib.ifindex == ctx->ingress_ifindex;
}

/*
 * What a protected host's TCP packet says of its receive window: an ACK gives the next
 * sequence number it expects and the window it advertises; a SYN without ACK starts a new
 * connection on the 5-tuple (the closing mark of an older one goes). Written only when it
 * changes: the refresh is in place and a store dirties the entry's cache line.
 */
static __always_inline void host_tcp(struct lx_flow *f, const struct packet *p)
{
	if (p->tcp_flags & TCP_ACK) {
		if (f->rcv_nxt != p->tcp_ack)
			f->rcv_nxt = p->tcp_ack;
		if (f->rcv_wnd != p->tcp_win)
			f->rcv_wnd = p->tcp_win;
		if (f->tcp_state != LX_TCP_SYNCED)
			f->tcp_state = LX_TCP_SYNCED;
	} else if (p->tcp_flags & TCP_SYN) {
		f->rcv_nxt = p->tcp_seq + 1;
		f->tcp_state = LX_TCP_SYN_SENT;
		f->closing = 0;
	}
}

/*
 * Does a FIN or RST from the remote side fit the connection? RFC 5961 §3.2's test, as a
 * middlebox can make it: its sequence number (a RST's own; a FIN's, after the data it
 * carries) lies in the window the protected host last acknowledged and advertised,
 * [rcv_nxt, rcv_nxt + max(rcv_wnd, 1)), the window taken as sent, without the window scale
 * (a narrower window than the host's: a FIN or RST beyond it passes but closes nothing).
 * Before the host acknowledged anything only a RST acknowledging its SYN fits (RFC 793,
 * SYN-SENT). A blind RST with a guessed port and sequence number almost never does.
 */
static __always_inline int remote_close_fits(const struct lx_flow *f, const struct packet *p)
{
	if (f->tcp_state == LX_TCP_SYN_SENT)
		return (p->tcp_flags & TCP_RST) && (p->tcp_flags & TCP_ACK) &&
		       p->tcp_ack == f->rcv_nxt;
	if (f->tcp_state != LX_TCP_SYNCED)
		return 0;
	__u32 seq = p->tcp_flags & TCP_RST ? p->tcp_seq : p->tcp_seq + p->payload_len;
	__u32 wnd = f->rcv_wnd ? f->rcv_wnd : 1;
	return seq - f->rcv_nxt < wnd;
}

/*
 * The slot holding flow k (NULL: none). Fills in k's check and the first slot of its set
 * (for flow_way_new). Inline array lookups and word compares: no call.
 */
static __always_inline struct lx_flow_slot *flow_find(struct lx_flow_key *k, __u32 *set_at)
{
	__u64 h = lx_flow_hash(k, flow_seed);
	k->check = lx_flow_check(h);
	*set_at = ((__u32)h & (flow_sets - 1)) * LX_FLOW_WAYS;
	const __u64 *kw = (const __u64 *)k;
#pragma unroll
	for (__u32 way = 0; way < LX_FLOW_WAYS; way++) {
		__u32 i = *set_at + way;
		struct lx_flow_slot *s = bpf_map_lookup_elem(&lx_flows, &i);
		if (!s)
			return NULL;
		const __u64 *sw = (const __u64 *)&s->key;
		if (sw[0] == kw[0] && sw[1] == kw[1] && sw[2] == kw[2] && sw[3] == kw[3] &&
		    sw[4] == kw[4])
			return s;
	}
	return NULL;
}

#define FLOW_WAY_EVICTS 0x100 /* flow_way_new: the way's live flow is evicted */

/*
 * The way of the set at set_at that a new flow takes: an empty slot, else one timed out,
 * else the least recently refreshed, whose live flow is evicted (FLOW_WAY_EVICTS set);
 * -1: none. Only a new flow comes here: a function of its own (a call), which the verifier
 * checks once rather than on every path that may open a flow.
 */
__noinline int flow_way_new(__u32 set_at, __u64 now)
{
	const struct lx_config *cfg = config_ptr();
	__u64 oldest_seen = ~0ULL;
	int oldest = 0;
	for (int way = 0; way < LX_FLOW_WAYS; way++) {
		__u32 i = set_at + (__u32)way;
		struct lx_flow_slot *s = bpf_map_lookup_elem(&lx_flows, &i);
		if (!s)
			return -1;
		if (!s->key.family || flow_expired(&s->flow, s->key.proto, cfg, now))
			return way;
		if (s->flow.last_seen_ns < oldest_seen) {
			oldest_seen = s->flow.last_seen_ns;
			oldest = way;
		}
	}
	return oldest | FLOW_WAY_EVICTS;
}

/*
 * Writes a new flow into slot s: the key is taken away first and put back last, so that a
 * packet on another CPU matches the old flow or the new one, never the new key with the
 * old state.
 */
static __always_inline void flow_write(struct lx_flow_slot *s, const struct lx_flow_key *k,
				       const struct lx_flow *f)
{
	s->key.family = 0;
	asm volatile("" ::: "memory");
	s->flow = *f;
	asm volatile("" ::: "memory");
	__builtin_memcpy((__u8 *)&s->key + 1, (const __u8 *)k + 1, sizeof(*k) - 1);
	asm volatile("" ::: "memory");
	s->key.family = k->family;
}

/*
 * A protected host sends: when one of its outbound rules covers it, open or refresh the flow.
 * Returns LX_DROP_SPOOFED when the packet claims the host's address from the wrong side.
 */
static __always_inline __u32 track_outbound(struct xdp_md *ctx, const struct packet *p,
					    const struct lx_config *cfg, __u32 side,
					    __u32 src_group, __u32 dst_group, __u64 *clock)
{
	if (!(cfg->protected_groups & group_bit(src_group)))
		return LX_DROP_NONE;
	__u32 rule = local_rule(src_group, p->proto, p->sport);
	__u32 kind = rule ? rule_kind(rule) : LX_KIND_OUTBOUND_TO;
	/* From a port the host listens on: a reply on an inbound connection (a SYN-ACK, a
	 * STUN answer), never a flow of its own; replies to that port are admitted anyway. */
	if (kind == LX_KIND_LISTEN)
		return LX_DROP_NONE;
	if (kind != LX_KIND_OUTBOUND_FROM && !remote_rule(src_group, p->proto, p->dport))
		return LX_DROP_NONE;
	/* A NAT'd public address is never a source here (see flow_key): forged. */
	if (cfg->nat_groups & group_bit(src_group))
		return LX_DROP_SPOOFED;
	struct lx_flow_key key = {};
	if (!flow_key(p, 1, dst_group, cfg, &key))
		return LX_DROP_NONE;
	int closing = (p->tcp_flags & (TCP_FIN | TCP_RST)) != 0;
	__u32 ifindex = ctx->ingress_ifindex;
	__u32 set_at = 0;
	struct lx_flow_slot *slot = flow_find(&key, &set_at);
	struct lx_flow *live = slot ? &slot->flow : NULL;
	if (live && !flow_expired(live, p->proto, cfg, clock_ns(clock))) {
		/* Where the host was seen before needs no second look. */
		if (live->ifindex != ifindex && !from_host_side(ctx, p, side))
			return LX_DROP_SPOOFED;
		/* Refresh in place: an LRU update per packet costs more than the rest of it. */
		if (live->last_seen_ns != *clock)
			live->last_seen_ns = *clock;
		if (live->ifindex != ifindex)
			live->ifindex = ifindex;
		host_tcp(live, p);
		if (closing)
			live->closing = 1;
		return LX_DROP_NONE;
	}
	if (!from_host_side(ctx, p, side))
		return LX_DROP_SPOOFED;
	/* A FIN or RST closes a flow but never opens one: the host's RST answering a forged
	 * packet must not let the next forged packet in. Any other packet opens it, so flows
	 * established before lyncxdp was attached survive the switch to enforce. */
	if (closing)
		return LX_DROP_NONE;
	/* Its own timed-out slot is taken again; a new flow takes one of its set. */
	int evicted = 0;
	if (!slot) {
		int way = flow_way_new(set_at, clock_ns(clock));
		if (way < 0)
			return LX_DROP_NONE;
		evicted = (way & FLOW_WAY_EVICTS) != 0;
		__u32 i = set_at + ((__u32)way & (LX_FLOW_WAYS - 1));
		slot = bpf_map_lookup_elem(&lx_flows, &i);
		if (!slot)
			return LX_DROP_NONE;
	}
	struct lx_flow flow = { .last_seen_ns = clock_ns(clock), .ifindex = ifindex };
	host_tcp(&flow, p);
	if (!live) {
		__u32 zero = 0;
		struct lx_flow_stats *fs = bpf_map_lookup_elem(&lx_flow_stats, &zero);
		if (fs) {
			fs->opened++;
			fs->evicted += evicted;
		}
	}
	flow_write(slot, &key, &flow);
	return LX_DROP_NONE;
}

/*
 * A reply toward a protected host passes only on a live flow the host opened. It does not
 * refresh the flow: only the host's own packets do, so a remote host alone cannot keep a flow
 * alive. Its FIN or RST closes the flow only when it fits the connection; one that does not
 * (a blind RST with a guessed port and sequence number) passes, to be judged by the host's
 * own TCP, and changes nothing.
 */
static __always_inline int reply_allowed(const struct packet *p, const struct lx_config *cfg,
					 __u32 dst_group, __u64 *clock)
{
	struct lx_flow_key key = {};
	if (!flow_key(p, 0, dst_group, cfg, &key))
		return 0;
	__u32 set_at;
	struct lx_flow_slot *slot = flow_find(&key, &set_at);
	if (!slot)
		return 0;
	struct lx_flow *flow = &slot->flow;
	if (flow_expired(flow, p->proto, cfg, clock_ns(clock)))
		return 0;
	if ((p->tcp_flags & (TCP_FIN | TCP_RST)) && !flow->closing && remote_close_fits(flow, p))
		flow->closing = 1;
	return 1;
}

/* ---- act: the policy for protected destinations ---- */

static __always_inline void frag_key(const struct packet *p, struct lx_frag_key *k)
{
	k->family = p->family;
	k->ipproto = p->frag_proto;
	k->id = p->frag_id;
	__builtin_memcpy(k->saddr, p->saddr.addr, 16);
	__builtin_memcpy(k->daddr, p->daddr.addr, 16);
}

#define ICMP_HDR_LEN	  8    /* type, code, checksum, 4 bytes; then an error's quoted packet */
#define ICMP_QUOTED_L4	  8    /* of the quoted packet's transport header: RFC 792's 64 bits */
#define ICMP_QUOTED_MAX	  1024 /* where the ICMP header may start: Ethernet to ICMP, bounded */
#define ICMP6_RA	  134
#define ICMP6_REDIRECT	  137
#define IPV6_HOP_LIMIT_ND 255 /* RFC 4861: what neighbour discovery from the link carries */

/* Errors that quote a packet the destination sent: IPv4 destination unreachable, time
 * exceeded, parameter problem; ICMPv6 1-4 (RFC 4443). */
static __always_inline int icmp_error(const struct packet *p)
{
	__u8 t = p->icmp_type;
	return p->family == 4 ? t == 3 || t == 11 || t == 12 : t >= 1 && t <= 4;
}

/*
 * Does the ICMP error quote a packet the protected destination sent on a connection the
 * policy lets through (conntrack's RELATED)? The quoted packet must be TCP or UDP from the
 * destination's address, with its IP header and 8 bytes of transport header inside the
 * message, IPv4 not a later fragment, IPv6 without extension headers; it is related when
 * (a) its source port is one a listen rule of the destination has, and that rule admits the
 * peer it was sent to (the host's answer on an admitted connection), or (b) its 5-tuple is a
 * live flow the destination opened (a NAT'd public source read as its private host). Nothing
 * is refreshed.
 */
static __always_inline int icmp_related(const struct packet *p, const struct decision *d,
					const struct lx_config *cfg, void *end, __u64 *clock)
{
	__u32 off = p->payload_at;
	__u32 room = p->payload_len; /* ICMP header and quoted packet, by the IP length */
	if (off > ICMP_QUOTED_MAX || room < ICMP_HDR_LEN)
		return 0;
	__u8 *q = (__u8 *)p->ip + off + ICMP_HDR_LEN;
	room -= ICMP_HDR_LEN;
	struct lx_flow_key k = { .family = p->family };
	__u32 hdr_len, ipproto;
	if (p->family == 4) {
		struct iphdr *ip = (struct iphdr *)q;
		if ((void *)(ip + 1) > end || ip->version != 4 || ip->ihl < 5 ||
		    (ip->frag_off & bpf_htons(IPV4_FRAG_OFFSET)))
			return 0;
		hdr_len = ip->ihl * 4;
		ipproto = ip->protocol;
		__builtin_memcpy(k.local_addr, &ip->saddr, 4);
		__builtin_memcpy(k.remote_addr, &ip->daddr, 4);
	} else {
		struct ipv6hdr *ip6 = (struct ipv6hdr *)q;
		if ((void *)(ip6 + 1) > end || ip6->version != 6)
			return 0;
		hdr_len = sizeof(*ip6);
		ipproto = ip6->nexthdr;
		__builtin_memcpy(k.local_addr, &ip6->saddr, 16);
		__builtin_memcpy(k.remote_addr, &ip6->daddr, 16);
	}
	__u8 *l4 = q + hdr_len;
	if (room < hdr_len + ICMP_QUOTED_L4 || (void *)(l4 + ICMP_QUOTED_L4) > end)
		return 0;
	if (ipproto == IPPROTO_TCP)
		k.proto = LX_PROTO_TCP;
	else if (ipproto == IPPROTO_UDP)
		k.proto = LX_PROTO_UDP;
	else
		return 0;
	k.local_port = (__u16)(l4[0] << 8 | l4[1]);
	k.remote_port = (__u16)(l4[2] << 8 | l4[3]);
	/* Sent by the destination itself (an error goes back to the quoted packet's source). */
	__u32 a[4], b[4];
	__builtin_memcpy(a, k.local_addr, 16);
	__builtin_memcpy(b, p->daddr.addr, 16);
	if (a[0] != b[0] || a[1] != b[1] || a[2] != b[2] || a[3] != b[3])
		return 0;

	/* (a) from a port it listens on, to a peer that rule admits */
	__u32 rule = local_rule(d->dst_group, k.proto, k.local_port);
	struct lx_rule_action *act = rule ? bpf_map_lookup_elem(&tbl_actions, &rule) : 0;
	if (act && act->kind == LX_KIND_LISTEN) {
		if (!(act->from_groups & LX_FROM_RESTRICTED))
			return 1;
		__u32 peer = group_of(p, (const struct lx_addr6 *)k.remote_addr, cfg->flags);
		if (act->from_groups & group_bit(peer))
			return 1;
	}
	/* (b) on a flow it opened; behind the 1:1 NAT the world saw (and quotes) the public
	 * source, while flows are keyed by the private address */
	if (cfg->nat_groups & group_bit(d->dst_group)) {
		struct lx_addr6 *inside = bpf_map_lookup_elem(&tbl_nat, &p->daddr);
		if (!inside)
			return 0;
		__builtin_memcpy(k.local_addr, inside->addr, 16);
	}
	__u32 set_at;
	struct lx_flow_slot *f = flow_find(&k, &set_at);
	return f && !flow_expired(&f->flow, k.proto, cfg, clock_ns(clock));
}

/* A router advertisement or redirect from the link: hop limit 255, link-local source. */
static __always_inline int from_link(const struct packet *p, void *end)
{
	struct ipv6hdr *ip6 = p->ip;
	if (!ip6 || (void *)(ip6 + 1) > end)
		return 0;
	return ip6->hop_limit == IPV6_HOP_LIMIT_ND && p->saddr.addr[0] == 0xfe &&
	       (p->saddr.addr[1] & 0xc0) == 0x80;
}

/*
 * ICMP to a protected host: an error passes only when it is related to a connection of the
 * host (whatever its type's entry in tbl_icmp); anything else when tbl_icmp admits it, and
 * ICMPv6 router advertisements and redirects then only from the link.
 */
static __always_inline __u32 icmp_reason(const struct packet *p, const struct decision *d,
					 const struct lx_config *cfg, void *end, __u64 *clock)
{
	if (icmp_error(p))
		return icmp_related(p, d, cfg, end, clock) ? LX_DROP_NONE : LX_DROP_ICMP_UNRELATED;
	__u32 key = lx_icmp_key(p->family, p->icmp_type, p->icmp_code);
	if (!bpf_map_lookup_elem(&tbl_icmp, &key)) {
		key = lx_icmp_key(p->family, p->icmp_type, LX_ICMP_ANY);
		if (!bpf_map_lookup_elem(&tbl_icmp, &key))
			return LX_DROP_TRANSPORT;
	}
	if (p->family == 6 && (p->icmp_type == ICMP6_RA || p->icmp_type == ICMP6_REDIRECT) &&
	    !from_link(p, end))
		return LX_DROP_ICMP_OFFLINK;
	return LX_DROP_NONE;
}

static __always_inline __u32 port_reason(const struct packet *p, const struct decision *d,
					 const struct lx_config *cfg, __u64 *clock)
{
	if (d->dst_rule) {
		struct lx_rule_action *a = bpf_map_lookup_elem(&tbl_actions, &d->dst_rule);
		if (!a || a->kind == LX_KIND_LISTEN) {
			/* Restricted to some roles (`from`): the source is looked up only here. */
			if (!a || !(a->from_groups & LX_FROM_RESTRICTED))
				return LX_DROP_NONE;
			__u32 src =
			    d->src_group ? d->src_group : group_of(p, &p->saddr, cfg->flags);
			return a->from_groups & group_bit(src) ? LX_DROP_NONE : LX_DROP_SOURCE;
		}
		return reply_allowed(p, cfg, d->dst_group, clock) ? LX_DROP_NONE
								  : LX_DROP_UNSOLICITED;
	}
	/* Not a port of this role: is it one on the other transport? */
	if (d->dst_other & group_bit(d->dst_group))
		return LX_DROP_TRANSPORT;
	return LX_DROP_PORT;
}

/* Why the policy refuses a packet to a protected address, LX_DROP_NONE when it may pass. */
static __always_inline __u32 policy_reason(const struct packet *p, int parsed,
					   const struct decision *d, const struct lx_config *cfg,
					   void *end, __u64 *clock)
{
	__u32 reason;

	if (parsed == LX_CNT_MALFORMED)
		return LX_DROP_MALFORMED;
	if (parsed == LX_CNT_FRAGMENT) {
		struct lx_frag_key key = {};
		frag_key(p, &key);
		struct lx_frag_verdict *first = bpf_map_lookup_elem(&lx_frags, &key);
		/* Its first fragment passed, not longer ago than the kernel keeps fragments,
		 * and the datagram stays within 64 KiB. */
		if (!first ||
		    lx_elapsed_over(clock_ns(clock), first->first_ns, LX_FRAG_TIMEOUT_NS) ||
		    first->bytes + p->l4_room > LX_FRAG_MAX_BYTES)
			return LX_DROP_FRAGMENT;
		first->bytes += p->l4_room;
		return first->reason;
	}
	if (parsed == LX_CNT_ICMP)
		reason = icmp_reason(p, d, cfg, end, clock);
	else if (parsed == LX_CNT_OTHER_L4)
		reason = LX_DROP_TRANSPORT;
	else
		reason = port_reason(p, d, cfg, clock);

	/* A first fragment that passes is remembered (a dropped one needs no entry); a second
	 * first fragment of the same datagram does not replace a live verdict. */
	if (p->fragment == FRAG_FIRST && reason == LX_DROP_NONE) {
		struct lx_frag_key key = {};
		frag_key(p, &key);
		struct lx_frag_verdict *old = bpf_map_lookup_elem(&lx_frags, &key);
		if (!old || lx_elapsed_over(clock_ns(clock), old->first_ns, LX_FRAG_TIMEOUT_NS)) {
			struct lx_frag_verdict v = { .first_ns = clock_ns(clock) };
			bpf_map_update_elem(&lx_frags, &key, &v, BPF_ANY);
		}
	}
	return reason;
}

/* ---- act: DSCP ---- */

static __always_inline __u8 current_dscp(const struct packet *p, void *end)
{
	if (p->family == 4) {
		struct iphdr *ip = p->ip;
		if (!ip || (void *)(ip + 1) > end)
			return LX_DSCP_KEEP;
		return ip->tos >> 2;
	}
	__u8 *b = p->ip;
	if (!b || (void *)(b + 2) > end)
		return LX_DSCP_KEEP;
	return (__u8)(((b[0] & 0x0f) << 4 | b[1] >> 4) >> 2);
}

/* Rewrites DSCP, keeping ECN; IPv4 checksum updated incrementally (RFC 1624, eqn. 3). */
static __always_inline int set_dscp(const struct packet *p, void *end, __u8 dscp)
{
	if (p->family == 4) {
		struct iphdr *ip = p->ip;
		if (!ip || (void *)(ip + 1) > end)
			return 0;
		__u8 tos = (__u8)(dscp << 2 | (ip->tos & 0x03));
		if (tos == ip->tos)
			return 0;
		__u16 old_word = bpf_ntohs(*(__be16 *)ip);
		ip->tos = tos;
		__u16 new_word = bpf_ntohs(*(__be16 *)ip);
		__u32 sum = (__u16)~bpf_ntohs(ip->check) + (__u16)~old_word + new_word;
		sum = (sum & 0xffff) + (sum >> 16);
		sum = (sum & 0xffff) + (sum >> 16);
		ip->check = bpf_htons((__u16)~sum);
		return 1;
	}
	__u8 *b = p->ip;
	if (!b || (void *)(b + 2) > end)
		return 0;
	__u8 tc = (__u8)((b[0] & 0x0f) << 4 | b[1] >> 4);
	__u8 new_tc = (__u8)(dscp << 2 | (tc & 0x03));
	if (new_tc == tc)
		return 0;
	b[0] = (__u8)((b[0] & 0xf0) | new_tc >> 4);
	b[1] = (__u8)((new_tc & 0x0f) << 4 | (b[1] & 0x0f)); /* flow label bits untouched */
	return 1;
}

/* ---- act: what a media service's UDP payload carries ---- */

#define MAX_DROPOUT	3000 /* RFC 3550 A.1 */
#define MAX_MISORDER	100
#define RTP_CANDIDATE	LX_MEDIA_MAX	 /* recognise(): an RTP header, payload type not checked */
#define MAX_JITTER_STEP 1000000000000ULL /* ns: a longer silence is a gap, not jitter */

struct rtp_fields {
	__u8 pt;
	__u8 marker;
	__u8 channel; /* inside TURN ChannelData */
	__u16 seq;
	__u32 ts;
	__u32 ssrc;
};

/* STUN (RFC 5389 magic cookie) or classic STUN / MS-TURN without it: the length field covers
 * exactly the rest of the datagram. */
static __always_inline __u32 stun_kind(__u8 *b, void *end, __u32 room)
{
	if (room < 20 || (void *)(b + 20) > end)
		return LX_MEDIA_OTHER;
	__u32 len = (__u32)b[2] << 8 | b[3];
	if (len + 20 != room)
		return LX_MEDIA_OTHER;
	return LX_MEDIA_STUN;
}

/*
 * The first payload bytes, demultiplexed as RFC 7983 does: 0-3 STUN, 20-63 DTLS, 64-79
 * TURN ChannelData (RTP or RTCP inside), 128-191 RTP and RTCP (RFC 5761: payload types
 * 192-223 are RTCP); 0xFF10 is Microsoft's multiplexed TURN framing.
 */
static __always_inline __u32 rtp_or_rtcp(__u8 *b, __u32 room, void *end, struct rtp_fields *r);

static __always_inline __u32 recognise(__u8 *b, __u32 room, void *end, struct rtp_fields *r)
{
	if (room < 4 || (void *)(b + 4) > end)
		return LX_MEDIA_OTHER;
	__u8 b0 = b[0];
	if (b0 == 0xff && b[1] == 0x10)
		return LX_MEDIA_STUN;
	if (b0 < 4)
		return stun_kind(b, end, room);
	if (b0 >= 20 && b0 <= 63)
		return b[1] == 0xfe ? LX_MEDIA_DTLS : LX_MEDIA_OTHER; /* DTLS 1.x version */
	if (b0 >= 64 && b0 <= 79) {
		__u32 len = (__u32)b[2] << 8 | b[3];
		if (len + 4 > room)
			return LX_MEDIA_OTHER;
		b += 4;
		room = len;
		r->channel = 1;
		if (room < 4 || (void *)(b + 4) > end)
			return LX_MEDIA_OTHER;
		b0 = b[0];
	}
	return rtp_or_rtcp(b, room, end, r);
}

/* RTP (RTP_CANDIDATE, fields in r) or RTCP (RFC 5761: payload types 192-223), else other. */
static __always_inline __u32 rtp_or_rtcp(__u8 *b, __u32 room, void *end, struct rtp_fields *r)
{
	if (room < 4 || (void *)(b + 4) > end || (b[0] & 0xc0) != 0x80)
		return LX_MEDIA_OTHER;
	__u8 b1 = b[1];
	if (b1 >= 192 && b1 <= 223) {
		__u32 words = (__u32)b[2] << 8 | b[3];
		return room >= 8 && (words + 1) * 4 <= room ? LX_MEDIA_RTCP : LX_MEDIA_OTHER;
	}
	if (room < 12 || (void *)(b + 12) > end)
		return LX_MEDIA_OTHER;
	r->pt = b1 & 0x7f;
	r->marker = b1 >> 7;
	r->seq = (__u16)b[2] << 8 | b[3];
	r->ts = (__u32)b[4] << 24 | (__u32)b[5] << 16 | (__u32)b[6] << 8 | b[7];
	r->ssrc = (__u32)b[8] << 24 | (__u32)b[9] << 16 | (__u32)b[10] << 8 | b[11];
	return RTP_CANDIDATE;
}

/*
 * TCP: the first frame of the segment only (cheap; a segment that starts inside a frame is
 * other). MS-TURN over TCP frames each message as type (0x02 control: STUN; 0x03 data: RTP or
 * RTCP), a zero byte and a 2-byte length; ICE-TCP (RFC 6544) uses RFC 4571's 2-byte length
 * before RTP, RTCP or STUN.
 */
static __always_inline __u32 recognise_tcp(__u8 *b, __u32 room, void *end, struct rtp_fields *r)
{
	if (room < 4 || (void *)(b + 4) > end)
		return LX_MEDIA_OTHER;
	__u32 len;
	if ((b[0] == 2 || b[0] == 3) && b[1] == 0) {
		len = (__u32)b[2] << 8 | b[3];
		if (len + 4 > room)
			return LX_MEDIA_OTHER;
		if (b[0] == 2)
			return stun_kind(b + 4, end, len);
		return rtp_or_rtcp(b + 4, len, end, r);
	}
	len = (__u32)b[0] << 8 | b[1];
	if (len + 2 > room)
		return LX_MEDIA_OTHER;
	if (b[2] < 4)
		return stun_kind(b + 2, end, len);
	return rtp_or_rtcp(b + 2, len, end, r);
}

static const struct lx_stream zero_stream = {};

static __always_inline __u64 media_now(void)
{
	return replay_clock ? replay_now_ns : bpf_ktime_get_ns();
}

/* What the main program hands the media inspection (a subprogram verified on its own). */
struct media_in {
	__u64 bytes;
	__u32 rule;
	__u32 dir;
	__u32 payload_off; /* from ctx->data */
	__u32 payload_len;
	__u32 tcp;		  /* framed as recognise_tcp() says */
	struct lx_stream_key key; /* all but the SSRC */
};

static __always_inline void stream_start(struct lx_stream *s, const struct rtp_fields *r,
					 const struct lx_payload_type *pt, const struct media_in *d,
					 __u64 now, __u64 bytes)
{
	__builtin_memset(s, 0, sizeof(*s));
	s->first_ns = now;
	s->last_ns = now;
	s->packets = 1;
	s->bytes = bytes;
	s->received = 1;
	s->window = 1;
	s->base_seq = r->seq;
	s->bad_seq = 0x10001; /* RFC 3550 A.1: no sequence number is this */
	s->max_seq = r->seq;
	s->last_ts = r->ts;
	s->clock_hz = pt->clock_hz;
	s->rule = d->rule;
	s->dir = (__u8)d->dir;
	s->kind = pt->kind;
	s->pt = r->pt;
	s->last_cn = pt->flags & LX_PT_CN;
	s->channel = r->channel;
}

/* RFC 3550 A.1/A.3: sequence, loss, reordering and duplicates of one more packet. */
static __always_inline void stream_sequence(struct lx_stream *s, __u16 seq)
{
	__u16 udelta = seq - s->max_seq;
	if (udelta == 0) {
		s->duplicates++;
	} else if (udelta < MAX_DROPOUT) {
		if (seq < s->max_seq)
			s->cycles += 0x10000;
		s->window = udelta < 64 ? s->window << udelta | 1 : 1;
		s->max_seq = seq;
		s->received++;
	} else if (udelta <= 0x10000 - MAX_MISORDER) {
		/* A jump: two packets in sequence after it mean the sender restarted. */
		if (seq == s->bad_seq) {
			s->base_seq = seq;
			s->cycles = 0;
			s->max_seq = seq;
			s->received = 1;
			s->window = 1;
		}
		s->bad_seq = (seq + 1) & 0xffff;
	} else {
		__u16 back = s->max_seq - seq;
		if (back < 64 && (s->window >> back) & 1) {
			s->duplicates++;
		} else {
			s->reordered++;
			s->received++;
			if (back < 64)
				s->window |= 1ULL << back;
		}
	}
}

/*
 * RFC 3550 A.8 interarrival jitter, in 1/256 of a timestamp unit, from the arrival and RTP
 * timestamp differences to the previous packet. The mean is Wireshark's: the running jitter
 * averaged over regular packets (no marker, no comfort noise, timestamp not going back).
 */
static __always_inline void stream_jitter(struct lx_stream *s, const struct rtp_fields *r, __u8 cn,
					  __u64 now, __u64 packets_before)
{
	__u64 dt = now > s->last_ns ? now - s->last_ns : 0;
	if (dt > MAX_JITTER_STEP)
		dt = MAX_JITTER_STEP;
	__s64 arrival = (__s64)(dt * s->clock_hz * 16 / NSEC_PER_SEC);
	__s64 stamp = (__s64)(__s32)(r->ts - s->last_ts) * 16;
	__s64 d = arrival - stamp;
	if (d < 0)
		d = -d;
	s->jitter += (__u64)d - ((s->jitter + 8) >> 4);
	int regular = !r->marker && !cn && !s->last_cn && (__s32)(r->ts - s->last_ts) >= 0;
	if (!regular || !packets_before)
		return;
	/* mean += (jitter - mean) / n, kept 2^16 finer than the jitter so that truncating
	 * at every packet does not add up */
	__u64 target = s->jitter << 16;
	if (target >= s->mean_jitter)
		s->mean_jitter += (target - s->mean_jitter) / packets_before;
	else
		s->mean_jitter -= (s->mean_jitter - target) / packets_before;
}

static __always_inline __u16 seq_next(__u16 seq)
{
	return (__u16)(seq + 1);
}

/* One RTP packet of a known payload type: its stream's kind once confirmed, else other. */
static __always_inline __u32 track_rtp(struct media_in *d, const struct rtp_fields *r,
				       const struct lx_payload_type *pt, __u64 bytes)
{
	struct lx_stream_key key = d->key;
	key.ssrc = r->ssrc;
	__u64 now = media_now();
	struct lx_stream *s = bpf_map_lookup_elem(&lx_streams, &key);
	if (!s) {
		/* Created from a zero value and filled in place: the stack is too small for
		 * a second copy (the main program's and this one's frames share 512 bytes). */
		bpf_map_update_elem(&lx_streams, &key, &zero_stream, BPF_NOEXIST);
		s = bpf_map_lookup_elem(&lx_streams, &key);
		if (s)
			stream_start(s, r, pt, d, now, bytes);
		return LX_MEDIA_OTHER;
	}
	if (s->state == LX_STREAM_PROBATION) {
		/* RFC 3550 A.1: a stream is valid after two packets in sequence. */
		if (seq_next(s->max_seq) != r->seq || pt->kind != s->kind) {
			stream_start(s, r, pt, d, now, bytes);
			return LX_MEDIA_OTHER;
		}
		s->state = LX_STREAM_CONFIRMED;
	}
	__u64 before = s->packets;
	s->packets++;
	s->bytes += bytes;
	s->rule = d->rule;
	stream_sequence(s, r->seq);
	__u8 cn = pt->flags & LX_PT_CN;
	if (s->clock_hz)
		stream_jitter(s, r, cn, now, before);
	s->last_ns = now;
	s->last_ts = r->ts;
	s->last_cn = cn;
	s->pt = r->pt;
	return s->kind;
}

/* Ethernet, two VLAN tags, IPv6 and its extension headers, UDP: the payload starts before. */
#define MEDIA_MAX_OFFSET 1024

/*
 * What a UDP packet of a media service carries; RTP streams are tracked on the way. A global
 * function: the verifier checks it once, not once per path of the parser that leads here.
 */
__attribute__((noinline)) int lx_media_kind(struct xdp_md *ctx, struct media_in *in)
{
	if (!ctx || !in)
		return LX_MEDIA_OTHER;
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 off = in->payload_off;
	if (off > MEDIA_MAX_OFFSET)
		return LX_MEDIA_OTHER;
	struct rtp_fields r = {};
	__u8 *b = (__u8 *)data + off;
	__u32 kind = in->tcp ? recognise_tcp(b, in->payload_len, end, &r)
			     : recognise(b, in->payload_len, end, &r);
	if (kind != RTP_CANDIDATE)
		return kind;
	__u32 idx = r.pt;
	struct lx_payload_type *pt = bpf_map_lookup_elem(&tbl_payload, &idx);
	if (!pt || pt->kind == LX_MEDIA_OTHER)
		return LX_MEDIA_OTHER;
	return (int)track_rtp(in, &r, pt, in->bytes);
}

/* The DSCP the tag mode writes: the rule's, or for a `-` media service what it carries. */
static __always_inline __u8 tag_dscp(const struct lx_rule_action *a, __u32 mkind)
{
	if (a->dscp != LX_DSCP_KEEP || !a->media || mkind >= LX_MEDIA_MAX)
		return a->dscp;
	__u32 zero = 0;
	struct lx_media_config *mc = bpf_map_lookup_elem(&tbl_media, &zero);
	/* The bound, again where the verifier sees it (clang drops a mask it can prove). */
	asm volatile("%[k] &= 7" : [k] "+r"(mkind));
	return mc ? mc->dscp[mkind] : LX_DSCP_KEEP;
}

/* ---- act: counters and the drop log ---- */

static __always_inline void count(void *map, __u32 idx, __u64 bytes)
{
	struct lx_count *c = bpf_map_lookup_elem(map, &idx);
	if (c) {
		c->packets++;
		c->bytes += bytes;
	}
}

/* What the drop log records of a packet (lx_log_drop's argument). */
struct drop_in {
	__u32 group;
	__u8 family;
	__u8 ipproto;
	__u8 reason;
	__u8 enforced;
	__u16 sport;
	__u16 dport;
	__u8 saddr[16];
	__u8 daddr[16];
	__u32 pad;
};

enum { LOG_SENT, LOG_FULL, LOG_RING_FULL };

/*
 * One record for the drop log, unless the rate limit holds it back: at most per_sec records
 * per CPU in each one-second window. Returns LOG_FULL when the window is full, LOG_RING_FULL
 * when the ring is (then the window counts as full for the rest of the jiffy): then it stays
 * full until the next tick at least (the coarse clock, read through clock_ns() once per
 * jiffy, cannot move before; only a new window, at a later tick, resets `sent`), which the
 * caller remembers on the packet's drop counter, so that in a flood of drops neither the
 * window nor the clock is read again before then (log_drop). A global function: the
 * verifier checks it once, not on every path that drops, and only a drop that may be
 * logged pays for the call.
 */
__attribute__((noinline)) int lx_log_drop(struct xdp_md *ctx, struct drop_in *in, __u64 jiffies,
					  __u32 per_sec)
{
	if (!ctx || !in)
		return LOG_RING_FULL;
	__u32 zero = 0;
	__u64 now = 0;
	struct lx_droplog_window *w = bpf_map_lookup_elem(&lx_droplog_rl, &zero);
	if (!w)
		return LOG_RING_FULL;
	if (w->full_jiffies == jiffies)
		return LOG_FULL;
	if (clock_ns(&now) - w->start_ns >= NSEC_PER_SEC) {
		w->start_ns = clock_ns(&now);
		w->sent = 0;
	}
	if (w->sent >= per_sec) {
		w->full_jiffies = jiffies;
		return LOG_FULL;
	}
	struct lx_drop_event *e = bpf_ringbuf_reserve(&lx_droplog, sizeof(*e), 0);
	if (!e) {
		/* Nobody reads the log (or not fast enough): as full as a window until the next
		 * tick, so that a flood does not try the ring, a helper call, on every drop. */
		w->full_jiffies = jiffies;
		return LOG_RING_FULL;
	}
	w->sent++;
	e->time_ns = clock_ns(&now);
	e->ifindex = ctx->ingress_ifindex;
	e->group = in->group;
	e->family = in->family;
	e->ipproto = in->ipproto;
	e->reason = in->reason;
	e->enforced = in->enforced;
	e->sport = in->sport;
	e->dport = in->dport;
	__builtin_memcpy(e->saddr, in->saddr, 16);
	__builtin_memcpy(e->daddr, in->daddr, 16);
	bpf_ringbuf_submit(e, 0);
	return LOG_SENT;
}

/*
 * The drop log for a packet counted on `dc`: records held back by the rate limit (or a full
 * ring) are counted there too. In a flood, a counter that found the window full in this
 * jiffy skips it with one comparison.
 */
static __always_inline void log_drop(struct xdp_md *ctx, const struct packet *p,
				     const struct decision *d, int enforced,
				     const struct lx_config *cfg, struct lx_drop_count *dc)
{
	__u64 jiffies = bpf_jiffies64();
	if (dc->full_jiffies == jiffies) {
		dc->suppressed++;
		return;
	}
	struct drop_in in = {
		.group = d->reason == LX_DROP_SPOOFED ? d->src_group : d->dst_group,
		.family = p->family,
		.ipproto = p->ipproto,
		.reason = (__u8)d->reason,
		.enforced = (__u8)enforced,
		.sport = p->sport,
		.dport = p->dport,
	};
	__builtin_memcpy(in.saddr, p->saddr.addr, 16);
	__builtin_memcpy(in.daddr, p->daddr.addr, 16);
	if (lx_log_drop(ctx, &in, jiffies, cfg->droplog_per_sec) == LOG_SENT)
		return;
	dc->suppressed++;
	dc->full_jiffies = jiffies; /* the window or the ring is full until the next tick */
}

static __always_inline void remember(const struct decision *d, __u32 counter, __u32 verdict,
				     __u8 dscp, __u32 media)
{
	__u32 zero = 0;
	struct lx_last *last = bpf_map_lookup_elem(&lx_last, &zero);
	if (last) {
		last->rule = d->rule;
		last->dir = d->dir;
		last->counter = counter;
		last->verdict = verdict;
		last->reason = d->reason;
		last->dscp = dscp;
		last->media = media;
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
	struct decision d = {};
	__u16 eth_proto = 0;
	__u32 slot = iface_slot;

	/* parse */
	int parsed = parse_ethernet(&c, &eth_proto);
	__u32 l3_at = (__u32)(c.pos - (void *)(long)ctx->data); /* for the media inspection */
	if (parsed == PARSE_NEXT) {
		if (eth_proto == bpf_htons(ETH_P_IP))
			parsed = parse_ipv4(&c, &p);
		else if (eth_proto == bpf_htons(ETH_P_IPV6))
			parsed = parse_ipv6(&c, &p);
		else
			parsed = LX_CNT_NON_IP;
	}

	const struct lx_config *cfg = config_ptr();
	struct lx_iface_config *ifc = bpf_map_lookup_elem(&lx_iface_config, &slot);
	if (!ifc)
		return XDP_PASS;

	/* classify */
	if (parsed == PARSE_NEXT) {
		classify(&p, cfg, &d);
		parsed = LX_CNT_UNCLASSIFIED;
	} else if (cfg->protected_groups && p.have_addrs) {
		d.dst_group = group_of(&p, &p.daddr, cfg->flags);
	}

	/* act: flows of protected hosts, and the policy for protected destinations. */
	__u64 now = 0; /* clock_ns() reads it on first use */
	if (cfg->protected_groups & group_bit(d.src_group))
		d.reason = track_outbound(ctx, &p, cfg, ifc->side, d.src_group, d.dst_group, &now);
	if (!d.reason && (cfg->protected_groups & group_bit(d.dst_group)))
		d.reason = policy_reason(&p, parsed, &d, cfg, c.end, &now);
	int enforce = ifc->policy == LX_POLICY_ENFORCE;
	__u32 verdict = d.reason && enforce ? XDP_DROP : XDP_PASS;

	/* act: count */
	int matched = d.rule && d.rule < rule_cap;
	__u32 idx = 0; /* the rule counter's, for the blocks of matched packets below */
	if (matched) {
		idx = lx_rule_counter_index(slot, rule_cap, d.rule, d.dir);
		count(&lx_counters, idx, bytes);
	} else if (!d.reason) /* a refused packet's class is counted with its reason */
		count(&lx_special, lx_special_counter_index(slot, parsed), bytes);
	if (d.reason) {
		__u32 di = lx_drop_counter_index(slot, d.reason, enforce,
						 matched ? LX_DROP_CLASS_RULE : (__u32)parsed);
		struct lx_drop_count *dc = bpf_map_lookup_elem(&lx_drops, &di);
		if (dc) {
			dc->packets++;
			dc->bytes += bytes;
			log_drop(ctx, &p, &d, enforce, cfg, dc);
		}
	}

	/* A dropped packet ends here, counted and logged: what its payload carries (media
	 * kinds, RTP streams) and its DSCP (conformance) describe only traffic that goes on. */
	if (verdict == XDP_DROP) {
		if (record_last)
			remember(&d, parsed, verdict, p.have_addrs ? current_dscp(&p, c.end) : 0xff,
				 LX_MEDIA_MAX);
		return XDP_DROP;
	}

	/* act: what the UDP payload of a media service carries (others pay nothing here) */
	__u32 mkind = LX_MEDIA_MAX;
	struct lx_rule_action *a = NULL;
	if (matched && p.payload_at) {
		a = bpf_map_lookup_elem(&tbl_actions, &d.rule);
		if (a && a->media && p.payload_len < 4) {
			mkind = LX_MEDIA_OTHER; /* nothing to read (a TCP ACK): no call */
			count(&lx_media,
			      lx_media_counter_index(slot, rule_cap, d.rule, d.dir, mkind), bytes);
		} else if (a && a->media) {
			struct media_in in = {
				.bytes = bytes,
				.rule = d.rule,
				.dir = d.dir,
				.payload_off = l3_at + p.payload_at,
				.payload_len = p.payload_len,
				.tcp = p.proto == LX_PROTO_TCP,
				.key = { .family = p.family,
					 .slot = (__u8)slot,
					 .proto = p.proto,
					 .sport = p.sport,
					 .dport = p.dport },
			};
			__builtin_memcpy(in.key.saddr, p.saddr.addr, 16);
			__builtin_memcpy(in.key.daddr, p.daddr.addr, 16);
			mkind = (__u32)lx_media_kind(ctx, &in) & 7;
			count(&lx_media,
			      lx_media_counter_index(slot, rule_cap, d.rule, d.dir, mkind), bytes);
		}
	}

	/* act: DSCP of classified packets whose service has one: is it what arrived (QoS
	 * conformance)? In tag mode, rewrite it on the packets that pass. */
	if (matched) {
		if (!a)
			a = bpf_map_lookup_elem(&tbl_actions, &d.rule);
		if (a && a->dscp != LX_DSCP_KEEP) {
			__u8 arrived = current_dscp(&p, c.end);
			__u32 conf = arrived == a->dscp ? LX_CONF_EXPECTED
				     : arrived == 0	? LX_CONF_ZERO
							: LX_CONF_OTHER;
			count(&lx_conformance, lx_conformance_index(idx, conf), bytes);
			if (ifc->tag && verdict == XDP_PASS && set_dscp(&p, c.end, a->dscp))
				count(&lx_remarked, idx, bytes);
		} else if (a && ifc->tag && verdict == XDP_PASS) {
			/* a `-` media service: what the packet carries, once confirmed */
			__u8 dscp = tag_dscp(a, mkind);
			if (dscp != LX_DSCP_KEEP && set_dscp(&p, c.end, dscp))
				count(&lx_remarked, idx, bytes);
		}
	}

	if (record_last)
		remember(&d, parsed, verdict, p.have_addrs ? current_dscp(&p, c.end) : 0xff, mkind);
	return verdict;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
