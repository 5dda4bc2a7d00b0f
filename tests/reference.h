/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * A reference classifier for the differential test (tests/test_differential.c): a plain,
 * slow user-space model of what the XDP program must decide, written apart from it. It
 * reads the matrix and the site through the same parsers (user/matrix.c, user/site.c) but
 * shares nothing else with the fast path: its own packet parser (byte offsets), and for
 * every packet a scan of every site prefix and every rule, with the documented precedence
 * (maps/README.md "Precedence", README.md "Enforcement", "DSCP tagging").
 *
 * It keeps the state the program keeps (flows opened by protected hosts, first-fragment
 * verdicts) and tallies what the program's counters must show.
 */
#ifndef LYNCXDP_TESTS_REFERENCE_H
#define LYNCXDP_TESTS_REFERENCE_H

#include <stddef.h>
#include <stdint.h>

#include "../bpf/lyncxdp_kern_user.h"
#include "matrix.h"
#include "site.h"

/* What the program's flows table ages by (lx_config): nanoseconds. */
struct ref_timeouts {
	uint64_t tcp, tcp_closing, udp;
};

/* A moment known to lie between lo and hi (the coarse clock read around a test run). */
struct ref_time {
	uint64_t lo, hi;
};

/* The packet as the reference's own parser reads it. */
enum ref_kind {
	REF_PORTS = 0,	/* TCP or UDP with ports */
	REF_NON_IP,	/* not IP, or a third VLAN tag */
	REF_LATER_FRAG, /* a non-first fragment */
	REF_ICMP,	/* ICMP (IPv4) or ICMPv6 (IPv6) */
	REF_OTHER_L4,	/* IP, not TCP/UDP/ICMP */
	REF_MALFORMED,	/* truncated or inconsistent */
};

struct ref_pkt {
	int kind;	/* enum ref_kind */
	int have_addrs; /* the IP addresses could be read (also for some malformed packets) */
	int family;	/* 4 or 6 when have_addrs */
	size_t ip_off;	/* offset of the IP header in the frame */
	uint8_t saddr[16], daddr[16];
	int ipproto; /* upper-layer protocol */
	int proto;   /* LX_PROTO_TCP / LX_PROTO_UDP for REF_PORTS */
	uint16_t sport, dport;
	uint8_t tcp_flags;
	uint32_t tcp_seq, tcp_ack; /* TCP: sequence and acknowledgment numbers */
	uint16_t tcp_win;	   /* TCP: the window field */
	uint8_t icmp_type, icmp_code;
	const uint8_t *icmp; /* ICMP: the message (header first), icmp_len bytes (IP length) */
	size_t icmp_len;
	int hop_limit;	/* IPv6 */
	int first_frag; /* offset 0, more fragments */
	uint32_t frag_id;
	int frag_proto;		    /* the protocol a fragment is remembered by */
	size_t frag_len;	    /* a later fragment's payload */
	const uint8_t *udp_payload; /* TCP/UDP: the payload, udp_payload_len bytes (IP length) */
	size_t udp_payload_len;
	const char *why; /* for REF_MALFORMED: what is wrong */
};

/* A decision, in the terms of struct lx_last and the counters. */
struct ref_decision {
	uint32_t rule;	   /* 1-based rule id (matrix line order), 0: none */
	uint32_t dir;	   /* LX_DIR_*, when rule */
	uint32_t counter;  /* enum lx_counter: when rule == 0 (LX_CNT_UNCLASSIFIED for TCP/UDP) */
	uint32_t verdict;  /* XDP_PASS / XDP_DROP */
	uint32_t reason;   /* enum lx_drop_reason */
	uint32_t dscp;	   /* DSCP it leaves with; 0xff when the IP header was not read */
	int remarked;	   /* the tag mode rewrote the DSCP */
	int flow_opened;   /* a protected host's packet opened or refreshed a flow */
	int reply_passed;  /* passed as a reply on a live flow */
	int nat_reply;	   /* ... sent to a NAT'd public address (site `nat`) */
	int nat_spoofed;   /* spoofed: a NAT'd public address as the source of a flow */
	int remote_close;  /* its FIN or RST (on a live TCP flow): 1 fit, closing; 2 did not */
	int frag_followed; /* a later fragment found its first fragment's verdict */
	int expired_flow;  /* a reply found its flow, but expired */
	int icmp_related;  /* an ICMP error to a protected host: 1 by a listen rule, 2 by a flow */
	int both_ends;	   /* both ends had a rule: 1 the destination's won, 2 the source's */
	int no_peer;	   /* a client rule did not count: an end is no unicast role holder */
	int ambiguous;	   /* expiry checks that the clock could not settle (see choices) */
	uint32_t media;	   /* enum lx_media_kind of a media service's UDP packet, else MAX */
	int media_tagged;  /* the tag mode wrote the DSCP of what a mixed service carried */
};

struct ref_flow_key {
	uint8_t family, proto;
	uint16_t lport, rport;
	uint8_t laddr[16], raddr[16];
};

struct ref_flow {
	struct ref_time last; /* the protected host's last packet */
	int closing;
	/* TCP, what the host's own packets said (README, "TCP closing"): */
	int tcp_state;	  /* enum lx_tcp_state: nothing yet, its SYN sent, an ACK seen */
	uint32_t rcv_nxt; /* the ACK number it sent last; after its SYN: the SYN's seq + 1 */
	uint16_t rcv_wnd; /* the window it sent with that ACK */
};

struct ref_frag_key {
	uint8_t family, proto;
	uint32_t id;
	uint8_t saddr[16], daddr[16];
};

/* An RTP stream of a media service, as far as the tag mode needs it: confirmed or not. */
struct ref_stream_key {
	uint8_t family, proto;
	uint16_t sport, dport;
	uint32_t ssrc;
	uint8_t saddr[16], daddr[16];
};

struct ref_stream {
	int confirmed;
	uint16_t last_seq; /* on probation: the one packet seen */
	int kind;	   /* enum lx_media_kind of its payload type */
};

/* A first fragment that passed: when, and the later fragments' payload since. */
struct ref_frag {
	struct ref_time first;
	uint64_t bytes;
};

/* State updates a decision makes, applied by ref_commit. */
struct ref_updates {
	int nstreams;
	struct ref_stream_key stream_key;
	struct ref_stream stream;
	int nflows;
	struct ref_flow_key flow_key[2];
	struct ref_flow flow[2];
	int nfrags;
	struct ref_frag_key frag_key;
	struct ref_frag frag;
};

struct ref_count {
	uint64_t packets, bytes;
};

struct ref_tally {
	struct ref_count *rules;    /* [rule id][dir], nrules + 1 */
	struct ref_count *remarked; /* [rule id][dir] */
	struct ref_count special[LX_CNT_MAX];
	struct ref_count drops[LX_DROP_MAX];
	struct ref_count would_drop[LX_DROP_MAX];
	struct ref_count total;
};

struct ref_table; /* a small open-addressing hash table, reference.c */

struct ref {
	const struct matrix *m;
	const struct site *s;
	uint32_t policy; /* enum lx_policy */
	uint32_t tag;
	uint32_t side; /* enum lx_side: protected or unprotected (route is not modelled) */
	struct ref_timeouts timeouts;
	int *dscp; /* [rule index]: tag-mode DSCP or -1 */
	struct ref_table *flows;
	struct ref_table *frags;
	struct ref_tally tally;
	/* Media (README "Media and call quality"), set by ref_set_media; none by default. */
	const uint8_t *media_rule;	   /* [rule index] 1: UDP payloads inspected */
	uint8_t media_dscp[LX_MEDIA_MAX];  /* tag mode, `-` media services, per kind */
	uint8_t pt_kind[LX_PAYLOAD_TYPES]; /* payload type -> kind, LX_MEDIA_OTHER unknown */
	struct ref_table *streams;
};

/* Media inspection as the program does it: rules inspected, DSCP per kind, payload types. */
void ref_set_media(struct ref *r, const uint8_t *media_rule, const uint8_t *media_dscp,
		   const uint8_t *pt_kind);

int ref_init(struct ref *r, const struct matrix *m, const struct site *s,
	     const struct ref_timeouts *t);
void ref_free(struct ref *r);
void ref_set_mode(struct ref *r, uint32_t policy, uint32_t tag);

/* Forgets every flow and fragment verdict (the test clears the program's tables alike). */
void ref_clear_state(struct ref *r);
size_t ref_nflows(const struct ref *r);
size_t ref_nfrags(const struct ref *r);
size_t ref_nstreams(const struct ref *r);

/* 1 when the address can be a client rule's peer (see reference.c, "classification"). */
int ref_is_peer(const struct ref *r, int family, const uint8_t *addr);

/* The reference's packet parser. */
void ref_parse(const uint8_t *frame, size_t len, struct ref_pkt *p);

/*
 * Decides one frame without changing any state. `now` is when the program ran. Flow expiry
 * that the clock cannot settle is counted in d->ambiguous; the k-th such check takes bit k
 * of `choices` (1: expired). out (len bytes) receives the frame as it must leave.
 */
void ref_decide(const struct ref *r, const uint8_t *frame, size_t len, struct ref_time now,
		uint32_t choices, struct ref_decision *d, struct ref_updates *u, uint8_t *out);

/* Applies a decision's state updates and counts it. */
void ref_commit(struct ref *r, const struct ref_decision *d, const struct ref_updates *u,
		size_t len);

/* Sets one flow as the program's table holds it (the test settles timing ambiguities so). */
void ref_flow_put(struct ref *r, const struct ref_flow_key *k, const struct ref_flow *f);

/* "role service proto ports kind" of a rule id, for messages. */
void ref_rule_text(const struct ref *r, uint32_t rule, char *buf, size_t len);

/* The roles (after includes= closure) of an address, as the site gives them. */
uint64_t ref_roles_of(const struct ref *r, int family, const uint8_t *addr);

#endif
