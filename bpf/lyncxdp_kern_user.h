/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The one header shared by the XDP program (bpf/lyncxdp.bpf.c) and the loader (user/):
 * map keys, map values, enums and limits. Never copy these definitions elsewhere.
 */
#ifndef LYNCXDP_KERN_USER_H
#define LYNCXDP_KERN_USER_H

#include <linux/types.h>

/* Bumped whenever a pinned map's layout changes: a loader refuses pins of another version. */
#define LX_LAYOUT_VERSION 12

#define LX_MAX_IFACES	       8      /* interfaces sharing one set of pinned maps */
#define LX_MAX_RULES	       16384  /* rule ids are 1..LX_MAX_RULES-1; 0 means "no rule" */
#define LX_MAX_GROUPS	       32     /* role-set groups 1..31; 0 means "address holds no role" */
#define LX_MAX_PREFIXES	       262144 /* per address family, hosts and prefixes together */
#define LX_PORTS	       65536
#define LX_SLUG_LEN	       32
#define LX_NAME_LEN	       64
#define LX_PATH_LEN	       192
#define LX_MAX_FLOWS	       65536 /* connections opened by protected hosts the flow table is sized for */
#define LX_FLOW_WAYS	       4 /* slots per set of lx_flows */
/* Slots of lx_flows per connection it is sized for: a quarter full with that many, a set is
 * full (a new flow evicts a live one) for about 2% of new flows; at half that, 0.2%. */
#define LX_FLOW_SLOTS_PER_FLOW 4
#define LX_MAX_FRAGS	       8192  /* first-fragment verdicts, LRU */
#define LX_MAX_REMOTE	       65536 /* (group, proto, remote port) entries of outbound rules */
#define LX_MAX_ROLES	       64
#define LX_MAX_NAT	       1024 /* site `nat PUBLIC PRIVATE` lines */
#define LX_MAX_ICMP	       1024 /* allowed ICMP (family, type, code) entries */
/* Rule ids per interface slot at the least: maps indexed by rule id are declared with this
 * and sized by the loader to a power of two holding every rule (rule_cap). */
#define LX_RULE_CAP_MIN	       1024

/* Transports the matrix knows, as indexes (not IPPROTO numbers) so tables stay dense. */
enum lx_proto {
	LX_PROTO_TCP = 0,
	LX_PROTO_UDP = 1,
	LX_PROTO_MAX = 2,
};

/* in: toward the rule's role and port; out: from them. */
enum lx_dir {
	LX_DIR_IN = 0,
	LX_DIR_OUT = 1,
	LX_DIR_MAX = 2,
};

/*
 * What a rule describes. listen: the role's addresses accept PORTS (inbound allowed).
 * outbound-to: the role opens connections to PORTS of any peer; outbound-from: the role
 * opens connections from its own PORTS. Replies to outbound flows pass only when tracked.
 */
enum lx_rule_kind {
	LX_KIND_LISTEN = 0,
	LX_KIND_OUTBOUND_TO = 1,
	LX_KIND_OUTBOUND_FROM = 2,
};

enum lx_policy {
	LX_POLICY_MONITOR = 0, /* count what enforce would drop, pass everything */
	LX_POLICY_ENFORCE = 1, /* drop it */
};

/* Why a packet to a protected address is (or would be) dropped. */
enum lx_drop_reason {
	LX_DROP_NONE = 0,
	LX_DROP_PORT = 1,      /* no rule of the role accepts that port */
	LX_DROP_TRANSPORT = 2, /* port allowed on the other transport, or a protocol that is not */
	LX_DROP_UNSOLICITED = 3, /* looks like a reply to an outbound flow that was never opened */
	LX_DROP_FRAGMENT = 4,	 /* non-first fragment whose first fragment did not pass */
	LX_DROP_MALFORMED = 5,	 /* truncated or inconsistent headers */
	LX_DROP_SPOOFED = 6,	 /* a protected host's address, arriving where that host is not */
	LX_DROP_SOURCE = 7, /* a rule restricted to some roles (`from`), from another address */
	LX_DROP_ICMP_UNRELATED = 8, /* an ICMP error quoting no flow or admitted connection */
	LX_DROP_ICMP_OFFLINK = 9,   /* a router advertisement or redirect not from the link */
	LX_DROP_MAX = 10,
};

/* Counters for packets that match no rule, one per reason. */
enum lx_counter {
	LX_CNT_UNCLASSIFIED = 0, /* TCP/UDP, no rule matched either direction */
	LX_CNT_NON_IP = 1,	 /* ARP, LLDP, a third VLAN tag, ... */
	LX_CNT_FRAGMENT = 2,	 /* non-first IP fragment: no ports to classify */
	LX_CNT_ICMP = 3,	 /* ICMP and ICMPv6 */
	LX_CNT_OTHER_L4 = 4,	 /* IP but neither TCP, UDP nor ICMP */
	LX_CNT_MALFORMED = 5,	 /* truncated or inconsistent headers */
	LX_CNT_MAX = 6,
};

/* Value of the per-CPU counter maps, summed over CPUs in user space. */
struct lx_count {
	__u64 packets;
	__u64 bytes;
};

struct lx_lpm4_key {
	__u32 prefixlen;
	__u32 addr; /* network byte order */
};

struct lx_lpm6_key {
	__u32 prefixlen;
	__u8 addr[16];
};

struct lx_addr6 {
	__u8 addr[16];
};

/*
 * rule table: for each (group, proto, port) the id of the rule that wins there, resolved
 * once by the loader. Four ports share one array element to keep the table at 256 KiB
 * per group.
 */
#define LX_RULES_PER_SLOT  4
#define LX_SLOTS_PER_PROTO (LX_PORTS / LX_RULES_PER_SLOT)
#define LX_RULE_TABLE_SIZE (LX_MAX_GROUPS * LX_PROTO_MAX * LX_SLOTS_PER_PROTO)

struct lx_rule_slot {
	__u16 rule[LX_RULES_PER_SLOT];
};

static inline __u32 lx_rule_slot_index(__u32 group, __u32 proto, __u32 port)
{
	return (group * LX_PROTO_MAX + proto) * LX_SLOTS_PER_PROTO + port / LX_RULES_PER_SLOT;
}

/*
 * port groups: for each (proto, port) the bitmask of groups that have a rule there, keyed
 * by the role's own port (listen, outbound-from) or by the peer's port (outbound-to).
 */
#define LX_PORT_GROUPS_SIZE (LX_PROTO_MAX * LX_PORTS)

struct lx_port_groups {
	__u32 local;
	__u32 remote;
	__u32 local_other; /* `local` of the same port on the other transport */
};

/* tbl_ports' one value: every (proto, port), by lx_port_index(). */
struct lx_port_table {
	struct lx_port_groups at[LX_PORT_GROUPS_SIZE];
};

/* Outbound-to rules: (group, proto, the peer's port) -> rule id. */
struct lx_remote_key {
	__u32 group;
	__u16 proto;
	__u16 port;
};

/*
 * Per rule: how it competes with the other end's rule, and what the act stage does with its
 * packets. When both ends of a packet have a rule, the higher rank wins (equal: the
 * destination's); the loader computes it (matrix_rule_rank: a server role's rule beats a
 * client rule, then the smaller port range, then the earlier matrix line).
 */
struct lx_rule_action {
	__u8 dscp;   /* LX_DSCP_KEEP: leave the packet's DSCP alone */
	__u8 kind;   /* enum lx_rule_kind */
	__u8 client; /* 1: a client role's rule: counts only when the peer holds a role */
	__u8 media;  /* 1: a media service (maps/media): its payloads are inspected */
	__u32 rank;
	/* A listen rule with `from ROLE,...`: LX_FROM_RESTRICTED | the groups holding one of
	 * those roles; 0: any source. */
	__u32 from_groups;
};

#define LX_FROM_RESTRICTED 1u /* bit of group 0, which never holds a role */

static inline __u32 lx_port_index(__u32 proto, __u32 port)
{
	return proto * LX_PORTS + port;
}

/* Rule counters: per interface slot, per rule, per direction. */
static inline __u32 lx_rule_counter_index(__u32 slot, __u32 rule_cap, __u32 rule, __u32 dir)
{
	return (slot * rule_cap + rule) * LX_DIR_MAX + dir;
}

/*
 * QoS conformance: the DSCP a classified packet arrives with, against the one the rule's
 * service should carry (matrix default, the site's qos profile, its dscp lines). Counted
 * only for rules with a DSCP (not LX_DSCP_KEEP), before the tag mode rewrites anything.
 */
enum lx_conformance {
	LX_CONF_EXPECTED = 0, /* the service's DSCP */
	LX_CONF_ZERO = 1,     /* 0: unmarked, or the mark was stripped on the way */
	LX_CONF_OTHER = 2,    /* any other value */
	LX_CONF_MAX = 3,
};

/* Conformance counters: indexed like the rule counters, times LX_CONF_MAX. */
static inline __u32 lx_conformance_index(__u32 rule_counter_index, __u32 conformance)
{
	return rule_counter_index * LX_CONF_MAX + conformance;
}

static inline __u32 lx_special_counter_index(__u32 slot, __u32 counter)
{
	return slot * LX_CNT_MAX + counter;
}

/*
 * Drop counters: per interface slot, per reason, enforced drops and monitor's would-drops,
 * and per what else counts the packet: its rule (LX_DROP_CLASS_RULE: lx_counters counts it
 * too), or, when no rule matched, its enum lx_counter class, which lx_special then does not
 * count: one counter on the drop path; user/stats.c adds them back to the class's total.
 */
#define LX_DROP_CLASS_RULE LX_CNT_MAX
#define LX_DROP_CLASSES	   (LX_CNT_MAX + 1)
#define LX_DROP_COUNTERS   (LX_MAX_IFACES * LX_DROP_MAX * 2 * LX_DROP_CLASSES) /* lx_drops */

static inline __u32 lx_drop_counter_index(__u32 slot, __u32 reason, __u32 enforced, __u32 class)
{
	return ((slot * LX_DROP_MAX + reason) * 2 + enforced) * LX_DROP_CLASSES + class;
}

/*
 * IPv4 address -> group in three levels of 16, 8 and 8 bits (user/addr4.h builds them): an l1
 * or l2 entry is a group, or LX_DIR4_CHILD | the index of the chunk of the next level that
 * splits it further. Each level is one array read, inlined by the verifier.
 */
#define LX_DIR4_L1    65536
#define LX_DIR4_CHUNK 256
#define LX_DIR4_CHILD 0x80000000u

struct lx_dir4_l2 {
	__u32 entry[LX_DIR4_CHUNK]; /* by the address's third byte */
};

struct lx_dir4_l3 {
	__u8 group[LX_DIR4_CHUNK]; /* by the address's last byte */
};

/*
 * IPv6 address -> group: one exact-match table per prefix length the site uses, probed
 * longest first (a longest-prefix match), all in one array of buckets that the loader fills
 * (user/addr6.h). Each probe is one array read, inlined by the verifier, and a compare.
 * Sites with more than LX_ADDR6_LENS lengths use the host hash and the trie instead.
 */
#define LX_ADDR6_LENS 8
#define LX_ADDR6_WAYS 4

struct lx_addr6_slot {
	__u32 addr[4]; /* the address masked to len, as in the packet (network order) */
	__u8 len;
	__u8 group; /* 0: free slot */
	__u16 pad;
};

struct lx_addr6_bucket {
	struct lx_addr6_slot slot[LX_ADDR6_WAYS];
};

static inline __u32 lx_be32_mask(__u32 bits) /* the top `bits` bits of a network-order word */
{
	__u32 host = bits >= 32 ? ~0u : bits ? ~0u << (32 - bits) : 0;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return __builtin_bswap32(host);
#else
	return host;
#endif
}

/* Word i of an address masked to len (both network order). */
static inline __u32 lx_addr6_word(__u32 word, __u32 i, __u32 len)
{
	return len >= 32 * (i + 1) ? word : len <= 32 * i ? 0 : word & lx_be32_mask(len - 32 * i);
}

/* Bucket hash of a masked address and its length (multiply-xorshift). */
static inline __u32 lx_addr6_hash(const __u32 m[4], __u32 len)
{
	__u64 h = (__u64)len * 0x9e3779b97f4a7c15ULL;
	h = (h ^ m[0]) * 0xbf58476d1ce4e5b9ULL;
	h = (h ^ m[1]) * 0x94d049bb133111ebULL;
	h = (h ^ m[2]) * 0xbf58476d1ce4e5b9ULL;
	h = (h ^ m[3]) * 0x94d049bb133111ebULL;
	return (__u32)(h >> 32);
}

/* lx_config flags: which address maps hold entries, so empty ones cost nothing. */
enum lx_config_flags {
	LX_CFG_HOST4 = 1u << 0,
	LX_CFG_NET4 = 1u << 1,
	LX_CFG_HOST6 = 1u << 2,
	LX_CFG_NET6 = 1u << 3,
	LX_CFG_FILTER6 = 1u << 4, /* the IPv6 filter is exact enough to trust (no prefix < /32) */
};

/*
 * Address filters: one bit per IPv4 /24, and one per hash of an IPv6 address's top 32 bits,
 * set when a site prefix touches it. A clear bit means the address holds no role, decided by
 * one array read instead of a hash and a trie lookup: most addresses at a perimeter are the
 * internet's. A set bit only means "look it up".
 */
#define LX_FILTER_BITS	(1u << 24)
#define LX_FILTER_WORDS (LX_FILTER_BITS / 64)

static inline __u32 lx_filter4_bit(__u32 addr_host_order)
{
	return addr_host_order >> 8;
}

static inline __u32 lx_filter6_bit(__u32 top32_host_order)
{
	return (top32_host_order * 2654435761u) >> 8; /* Knuth's multiplicative hash, 24 bits */
}

/* What the loader gives every program in lx_config (user/loader.c), and so what readers of
 * the pinned flows take as their timeouts: flow timeouts and the drop-log rate. Idle TCP: 2 h
 * 5 min, so that a host using Windows' default TCP keepalive (KeepAliveTime, 2 h) keeps its
 * idle connections open (README, "Enforcement"). */
#define LX_TCP_TIMEOUT_S   7500
#define LX_TCP_CLOSING_S   10
#define LX_UDP_TIMEOUT_S   120
#define LX_DROPLOG_PER_SEC 100

struct lx_config {
	__u32 flags;
	__u32 protected_groups; /* bitmask of groups holding a protected role */
	__u64 tcp_timeout_ns;	/* idle TCP flow opened by a protected host */
	__u64 tcp_closing_ns;	/* after FIN or RST */
	__u64 udp_timeout_ns;
	__u32 droplog_per_sec; /* drop-log events per CPU per second; the rest are counted */
	__u32 peer_groups;     /* groups that can be a client's peer: they hold a role and are no
				  site prefix's broadcast address */
	__u32 server_groups;   /* groups holding a role that is not a client role */
	__u32 client_groups;   /* groups holding a client role */
	__u32 nat_groups;      /* groups of NAT'd public addresses (site `nat`): tbl_nat holds
				  each one's private address, by which its flows are keyed */
};

/*
 * Where protected hosts are, seen from one interface: may a packet from a protected address
 * that opens, refreshes or closes a flow arrive here? The zero value trusts the interface
 * (private test instances: explain, replay, tests); `attach` sets route unless told.
 */
enum lx_side {
	LX_SIDE_PROTECTED = 0,	 /* protected hosts are behind this interface (declared) */
	LX_SIDE_ROUTE = 1,	 /* ask the kernel's routing table (reverse path, bpf_fib_lookup) */
	LX_SIDE_UNPROTECTED = 2, /* no protected host is behind this interface (declared) */
	LX_SIDE_MAX = 3,
};

/* Per interface slot: what the program does besides counting. Changed live by `lyncxdp set`. */
struct lx_iface_config {
	__u32 policy; /* enum lx_policy */
	__u32 tag;    /* 1: rewrite DSCP of classified packets */
	__u32 side;   /* enum lx_side */
	__u32 pad;
};

/* Functions here are inlined in the program (never a BPF-to-BPF call) and in the loader. */
#define LX_INLINE static inline __attribute__((always_inline))

/* A connection opened by a protected host, from that host's side. 8-aligned: read as words. */
struct __attribute__((aligned(8))) lx_flow_key {
	__u8 family; /* 0: an empty slot of lx_flows */
	__u8 proto;  /* enum lx_proto */
	__u16 local_port;
	__u16 remote_port;
	__u16 check; /* lx_flow_check() of the rest: see struct lx_flow_slot */
	__u8 local_addr[16];
	__u8 remote_addr[16];
};
_Static_assert(sizeof(struct lx_flow_key) == 40, "lx_flow_key: five 64-bit words");

/*
 * What a TCP flow knows of the protected host's receive window, from the host's own packets:
 * a FIN or RST from the remote side closes the flow only when it fits it (RFC 5961 §3.2).
 */
enum lx_tcp_state {
	LX_TCP_UNKNOWN = 0,  /* neither a SYN nor an ACK from the host yet: nothing fits */
	LX_TCP_SYN_SENT = 1, /* the host's SYN, seq + 1 in rcv_nxt: a RST acknowledging it fits */
	LX_TCP_SYNCED = 2,   /* the host acknowledged rcv_nxt, advertising rcv_wnd */
};

struct lx_flow {
	__u64 last_seen_ns; /* the protected host's last packet: only the host refreshes a flow */
	__u32 closing;	    /* FIN or RST seen */
	__u32 ifindex;	    /* where the host's packets were seen to arrive: refreshes there are not
			     * checked again */
	__u32
	    rcv_nxt; /* TCP: the host's last acknowledgment number (SYN_SENT: its SYN's seq + 1) */
	__u16 rcv_wnd;	/* TCP: the window the host advertised with it, as sent (unscaled) */
	__u8 tcp_state; /* enum lx_tcp_state */
	__u8 pad;
};

/*
 * lx_flows is a set-associative table in an array: a flow lives in one of the LX_FLOW_WAYS
 * slots of the set its keyed hash picks (slot index = set * LX_FLOW_WAYS + way), so the
 * program finds it with inline loads and compares, no call into the kernel's hash table.
 * A new flow takes an empty slot of its set, else one timed out, else the least recently
 * refreshed (an eviction). The key carries 16 bits of its own hash: two CPUs writing one
 * slot at the same moment could leave a mix of two keys, which then matches no packet.
 */
struct lx_flow_slot {
	struct lx_flow_key key;
	struct lx_flow flow;
};
_Static_assert(sizeof(struct lx_flow_slot) == 64, "lx_flow_slot: one cache line");

/* The flow hash's multiplier: 2^64 / the golden ratio, odd. */
#define LX_FLOW_MUL 0x9e3779b97f4a7c15ULL

/*
 * The hash of a flow key (its check field taken as 0), keyed with the table's random seed
 * (lx_state.flow_seed, kept with the table across reloads) so that nobody outside can aim
 * flows at one set. Each word is multiplied on its own (the five multiplies run side by
 * side), the products rotated by different amounts and folded, then mixed once more. The
 * rotations matter: a product's top bit flips with its word's top bit whatever the seed, so
 * unrotated, two such flips in two words (IPv6 addresses differing in those bits) would
 * cancel for every seed. The low bits pick the set, the top 16 are the key's check.
 */
LX_INLINE __u64 lx_flow_rotl(__u64 x, unsigned r)
{
	return x << r | x >> (64 - r);
}

LX_INLINE __u64 lx_flow_hash(const struct lx_flow_key *k, __u64 seed)
{
	__u64 w[5];
	__builtin_memcpy(w, k, sizeof(w));
	w[0] &= ~(0xffffULL << 48); /* the check field: bytes 6-7 (little-endian hosts only) */
	__u64 h = ((w[0] ^ seed) * LX_FLOW_MUL) ^
		  lx_flow_rotl((w[1] + seed) * (LX_FLOW_MUL + 2), 13) ^
		  lx_flow_rotl((w[2] - seed) * (LX_FLOW_MUL + 4), 26) ^
		  lx_flow_rotl((w[3] ^ ~seed) * (LX_FLOW_MUL + 6), 39) ^
		  lx_flow_rotl((w[4] + ~seed) * (LX_FLOW_MUL + 8), 52);
	h = (h ^ (h >> 29)) * LX_FLOW_MUL;
	return h ^ (h >> 32);
}

LX_INLINE __u16 lx_flow_check(__u64 hash)
{
	return (__u16)(hash >> 48);
}

/* Flow-table activity, per CPU; occupancy is counted by reading lx_flows. Program. */
struct lx_flow_stats {
	__u64 opened;  /* new flows */
	__u64 evicted; /* live flows whose slot a new flow took (their set was full) */
};

/* The verdict of a first fragment, for the fragments that follow it. */
struct lx_frag_key {
	__u8 family;
	__u8 ipproto;
	__u16 pad;
	__u32 id;
	__u8 saddr[16];
	__u8 daddr[16];
};

/*
 * Only first fragments that pass are remembered: for LX_FRAG_TIMEOUT_NS (the kernel's
 * ipfrag_time), and for at most LX_FRAG_MAX_BYTES of later fragments' payload.
 */
struct lx_frag_verdict {
	__u32 reason; /* LX_DROP_NONE: the first fragment passed (the only verdict stored) */
	__u32 bytes;  /* payload of the later fragments that followed it */
	__u64 first_ns;
};

#define LX_FRAG_TIMEOUT_NS (30ULL * 1000000000ULL)
#define LX_FRAG_MAX_BYTES  65535u

/* ICMP allowed to protected hosts: key lx_icmp_key(family, type, code or LX_ICMP_ANY). */
#define LX_ICMP_ANY 0x100
static inline __u32 lx_icmp_key(__u32 family, __u32 type, __u32 code)
{
	return family << 24 | type << 12 | code;
}

/* One drop-log record, sent through the ring buffer. */
struct lx_drop_event {
	__u64 time_ns; /* CLOCK_MONOTONIC */
	__u32 ifindex;
	__u32 group; /* of the destination; of the source when the reason is spoofed */
	__u8 family;
	__u8 ipproto;
	__u8 reason;   /* enum lx_drop_reason */
	__u8 enforced; /* 0: monitor mode, would have dropped */
	__u16 sport;
	__u16 dport;
	__u8 saddr[16];
	__u8 daddr[16];
};

/* The program's per-CPU cache of the coarse clock (lx_clock): read once per jiffy. */
struct lx_clock {
	__u64 jiffies;
	__u64 ns; /* CLOCK_MONOTONIC_COARSE, as bpf_ktime_get_coarse_ns() returned it */
};

/*
 * Has more than `limit` ns passed from `then` (a time stored by the program, on any CPU) to
 * `now`? A CPU's clock can be a tick behind the time another CPU just stored (clock_ns() in
 * the program; a reader in user space): `then` after `now` is no time at all, not a
 * difference wrapped around to centuries, so a flow refreshed a moment ago is live.
 */
static inline int lx_elapsed_over(__u64 now, __u64 then, __u64 limit)
{
	return now > then && now - then > limit;
}

/* Rate limit of the drop log, per CPU: records sent in the one-second window from start_ns. */
struct lx_droplog_window {
	__u64 start_ns;
	__u64 sent;
	__u64 full_jiffies; /* found full in this jiffy: the clock is not read again before the next
			     */
};

/*
 * lx_drops' value, per CPU: a count, and what the drop log's rate limit held back of it. A
 * counter that found the CPU's window full remembers the jiffy, so that in a flood of one
 * kind of drop the window is not even looked up again before the next tick (the window is
 * still full until then: see log_drop).
 */
struct lx_drop_count {
	__u64 packets;
	__u64 bytes;
	__u64 suppressed;   /* drop-log records held back by the rate limit or a full ring */
	__u64 full_jiffies; /* the CPU's window was full in this jiffy */
};

/* What the program decided for the last packet (filled only by explain/replay instances). */
struct lx_last {
	__u32 rule;    /* 0 when no rule matched */
	__u32 dir;     /* enum lx_dir, valid when rule != 0 */
	__u32 counter; /* enum lx_counter when rule == 0 */
	__u32 verdict; /* XDP action returned */
	__u32 reason;  /* enum lx_drop_reason: why it was (or would be) dropped */
	__u32 dscp;    /* DSCP the packet leaves with; 0xff when not IP */
	__u32 media;   /* enum lx_media_kind of a media service's packet; LX_MEDIA_MAX: none */
	__u32 pad;     /* per-CPU values are read in 8-byte strides */
};

/* Describes one rule for `lyncxdp stats` after the loader has exited. */
struct lx_rule_info {
	char role[LX_SLUG_LEN];
	char service[LX_SLUG_LEN];
	char name[LX_NAME_LEN];
	__u16 port_lo;
	__u16 port_hi;
	__u8 proto;  /* enum lx_proto */
	__u8 active; /* 1 when the rule's role is present in the site */
	__u8 dscp;   /* DSCP for the tag mode, LX_DSCP_KEEP when the rule leaves it alone */
	__u8 kind;   /* enum lx_rule_kind */
	__u8 media;  /* 1: a media service, lx_media counts what its UDP packets carry */
};

#define LX_DSCP_KEEP 0xff

/* One attached interface, as remembered in the pinned state map. */
struct lx_iface_state {
	__u32 ifindex; /* 0 when the slot is free */
	__u32 mode;    /* enum lx_xdp_mode */
	__u32 prog_id;
	__u32 link_id;
	__u64 attached_at; /* seconds since the epoch */
	__u64 netns;	   /* inode of the interface's network namespace */
	char name[16];
	__u32 policy; /* enum lx_policy, as last set */
	__u32 tag;
	__u32 side; /* enum lx_side, as last set */
	__u32 pad;
};

enum lx_xdp_mode {
	LX_MODE_NATIVE = 1,
	LX_MODE_GENERIC = 2,
};

/* The pinned state: what is attached and what it was compiled from. */
struct lx_state {
	__u32 layout_version;
	__u32 rule_cap; /* sizes the counter and rule-info maps */
	__u32 rules_total;
	__u32 rules_active;
	__u32 prefixes4;
	__u32 prefixes6;
	__u32 groups;
	__u32 flows_max; /* slots of lx_flows (loader_flow_slots of the site's `flows` line) */
	__u32 pad1;
	__u64 flow_seed; /* the flow hash's seed, kept with lx_flows */
	__u64 loaded_at;
	__u64 reloaded_at; /* 0 until the first reload */
	__u32 reloads;
	__u32 max_rule_id; /* rule ids in use are 1..max_rule_id */
	__u64 matrix_hash; /* FNV-1a of the matrix file's bytes */
	__u64 site_hash;   /* FNV-1a of the site file's bytes */
	char product[LX_SLUG_LEN];
	char matrix[LX_PATH_LEN];
	char site[LX_PATH_LEN];
	struct lx_iface_state ifaces[LX_MAX_IFACES];
	__u64 group_roles[LX_MAX_GROUPS]; /* role bitmask of each group, for the drop log */
	char roles[LX_MAX_ROLES][LX_SLUG_LEN];
};

/* ---- media inside media services (maps/media, user/media.c) ---- */

/*
 * What a UDP payload of a media service carries. RTP counts as audio, video or sharing only
 * once its stream is confirmed (two packets in sequence, one SSRC): until then, and for
 * anything unrecognised, it is "other".
 */
enum lx_media_kind {
	LX_MEDIA_OTHER = 0,
	LX_MEDIA_STUN = 1, /* STUN, classic MS-TURN, multiplexed TURN (0xFF10) */
	LX_MEDIA_AUDIO = 2,
	LX_MEDIA_VIDEO = 3,
	LX_MEDIA_SHARING = 4,
	LX_MEDIA_RTCP = 5,
	LX_MEDIA_DTLS = 6,
	LX_MEDIA_MAX = 7,
};

#define LX_PAYLOAD_TYPES 128
#define LX_MAX_STREAMS	 65536 /* RTP streams tracked, LRU */

/* Per RTP payload type, from maps/media. kind LX_MEDIA_OTHER: not a known payload type. */
struct lx_payload_type {
	__u32 clock_hz; /* 0: no jitter (e.g. telephone-event) */
	__u8 kind;	/* LX_MEDIA_AUDIO, _VIDEO or _SHARING */
	__u8 flags;	/* enum lx_pt_flags */
	__u16 pad;
};

enum lx_pt_flags {
	LX_PT_CN = 1u << 0, /* comfort noise: not a regular packet for the mean jitter */
};

/* What the tag mode writes on media services whose own DSCP is `-`, per media kind. */
struct lx_media_config {
	__u8 dscp[8]; /* by enum lx_media_kind (LX_MEDIA_MAX <= 8); LX_DSCP_KEEP: leave it */
};

/* Per-kind counters of media services: per slot, rule, direction, kind. */
static inline __u32 lx_media_counter_index(__u32 slot, __u32 rule_cap, __u32 rule, __u32 dir,
					   __u32 kind)
{
	return lx_rule_counter_index(slot, rule_cap, rule, dir) * LX_MEDIA_MAX + kind;
}

/* One RTP stream as the gateway sees it: 5-tuple (UDP) and SSRC, per interface slot. */
struct lx_stream_key {
	__u8 family;
	__u8 slot;
	__u8 proto; /* enum lx_proto */
	__u8 pad;
	__u32 ssrc;
	__u16 sport;
	__u16 dport;
	__u8 saddr[16];
	__u8 daddr[16];
};

enum lx_stream_state {
	LX_STREAM_PROBATION = 0, /* one packet seen: not yet counted as RTP */
	LX_STREAM_CONFIRMED = 1,
};

/*
 * Per stream, written by the program (RFC 3550 A.1, A.3, A.8). Lost = extended highest
 * sequence - base + 1 - received (never negative); jitter in 1/256 of a timestamp unit.
 * mean_jitter follows Wireshark's RTP analysis (mean of the running jitter over regular
 * packets) so the two can be compared.
 */
struct lx_stream {
	__u64 first_ns;
	__u64 last_ns;
	__u64 packets; /* every packet, duplicates included */
	__u64 bytes;
	__u64 received; /* distinct sequence numbers (late ones included) */
	__u64 reordered;
	__u64 duplicates;
	__u64 jitter;	   /* RFC 3550 A.8, 1/256 timestamp unit */
	__u64 mean_jitter; /* 1/2^24 timestamp unit */
	__u64 window;	   /* bit i: sequence max_seq - i was received */
	__u32 cycles;	   /* sequence wraps << 16 */
	__u32 base_seq;
	__u32 bad_seq;
	__u32 last_ts;
	__u32 clock_hz;
	__u32 rule;
	__u16 max_seq;
	__u8 dir;
	__u8 kind; /* enum lx_media_kind */
	__u8 pt;
	__u8 state; /* enum lx_stream_state */
	__u8 last_cn;
	__u8 channel; /* 1: inside TURN ChannelData */
};

#endif /* LYNCXDP_KERN_USER_H */
