/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Builds test packets (Ethernet, VLANs, IPv4/IPv6, TCP/UDP) and parses endpoints. */
#ifndef LYNCXDP_PACKET_H
#define LYNCXDP_PACKET_H

#include <stddef.h>
#include <stdint.h>

struct endpoint {
	int family; /* 4 or 6 */
	uint8_t addr[16];
	uint16_t port;
};

/* "192.0.2.1:5061" or "[2001:db8::1]:443". Returns -1 with a reason in why. */
int endpoint_parse(const char *text, struct endpoint *ep, char *why, size_t whylen);

struct packet_spec {
	uint8_t ipproto; /* IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP(V6), ... */
	struct endpoint src, dst;
	int nvlans;	       /* 0..2 */
	uint16_t vlan_tpid[2]; /* 0 means 802.1Q (0x8100) */
	uint16_t vlan_id[2];
	uint8_t tos;	      /* IPv4 TOS / IPv6 traffic class */
	uint8_t tcp_flags;    /* 0 means SYN */
	uint8_t ipv4_options; /* bytes of IPv4 options (multiple of 4, at most 40) */
	uint8_t ipv6_ext;     /* number of IPv6 destination-options headers before L4 */
	int ipv6_fragment;    /* IPv6: add a fragment header (offset 0 = first fragment) */
	uint16_t frag_offset; /* in 8-byte units; nonzero makes a non-first fragment */
	int more_fragments;
	size_t payload_len;
};

/* Writes the frame into buf; returns its length, or 0 when it does not fit. */
size_t packet_build(const struct packet_spec *spec, uint8_t *buf, size_t cap);

#endif
