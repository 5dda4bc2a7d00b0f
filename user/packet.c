// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "packet.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"

int endpoint_parse(const char *text, struct endpoint *ep, char *why, size_t whylen)
{
	char addr[INET6_ADDRSTRLEN + 2];
	const char *port;
	unsigned long p;

	memset(ep, 0, sizeof(*ep));
	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		if (!close || close[1] != ':' || (size_t)(close - text - 1) >= sizeof(addr)) {
			snprintf(why, whylen, "'%s': expected [IPV6]:PORT", text);
			return -1;
		}
		memcpy(addr, text + 1, (size_t)(close - text - 1));
		addr[close - text - 1] = '\0';
		port = close + 2;
		ep->family = 6;
	} else {
		const char *colon = strrchr(text, ':');
		if (!colon || strchr(text, ':') != colon ||
		    (size_t)(colon - text) >= sizeof(addr)) {
			snprintf(why, whylen, "'%s': expected IPV4:PORT or [IPV6]:PORT", text);
			return -1;
		}
		memcpy(addr, text, (size_t)(colon - text));
		addr[colon - text] = '\0';
		port = colon + 1;
		ep->family = 4;
	}
	if (inet_pton(ep->family == 4 ? AF_INET : AF_INET6, addr, ep->addr) != 1) {
		snprintf(why, whylen, "'%s' is not an IPv%d address", addr, ep->family);
		return -1;
	}
	if (text_parse_uint(port, 0, 65535, &p) < 0) {
		snprintf(why, whylen, "port '%s' is not 0..65535", port);
		return -1;
	}
	ep->port = (uint16_t)p;
	return 0;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint32_t sum16(const uint8_t *p, size_t len, uint32_t sum)
{
	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		sum += (uint32_t)(p[len - 1] << 8);
	return sum;
}

static uint16_t fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static size_t put_l4(const struct packet_spec *s, uint8_t *p)
{
	size_t len;
	if (s->ipproto == IPPROTO_TCP) {
		len = 20;
		put16(p, s->src.port);
		put16(p + 2, s->dst.port);
		p[12] = 5 << 4;
		p[13] = s->tcp_flags ? s->tcp_flags : 0x02;
		put16(p + 14, 65535);
	} else if (s->ipproto == IPPROTO_UDP) {
		len = 8;
		put16(p, s->src.port);
		put16(p + 2, s->dst.port);
		put16(p + 4, (uint16_t)(8 + s->payload_len));
	} else { /* ICMP echo request (type 8 / 128) */
		len = 8;
		p[0] = s->ipproto == IPPROTO_ICMP ? 8 : 128;
	}
	for (size_t i = 0; i < s->payload_len; i++)
		p[len + i] = (uint8_t)('a' + i % 26);
	return len + s->payload_len;
}

/* TCP/UDP/ICMPv6 checksum with the pseudo header; ICMP over IPv4 has none. */
static void l4_checksum(const struct packet_spec *s, uint8_t *l4, size_t len)
{
	int off = s->ipproto == IPPROTO_TCP ? 16 : s->ipproto == IPPROTO_UDP ? 6 : 2;
	uint32_t sum = 0;
	if (s->ipproto != IPPROTO_ICMP) {
		size_t alen = s->src.family == 4 ? 4 : 16;
		sum = sum16(s->src.addr, alen, 0);
		sum = sum16(s->dst.addr, alen, sum);
		sum += s->ipproto + (uint32_t)len;
	}
	uint16_t c = fold(sum16(l4, len, sum));
	if (s->ipproto == IPPROTO_UDP && c == 0)
		c = 0xffff;
	put16(l4 + off, c);
}

static size_t put_ipv4(const struct packet_spec *s, uint8_t *p, size_t l4len)
{
	size_t hl = 20 + s->ipv4_options;
	p[0] = (uint8_t)(0x40 | (hl / 4));
	p[1] = s->tos;
	put16(p + 2, (uint16_t)(hl + l4len));
	put16(p + 4, 0x1234);
	put16(p + 6, (uint16_t)((s->more_fragments ? 0x2000 : 0) | (s->frag_offset & 0x1fff)));
	p[8] = 64;
	p[9] = s->ipproto;
	memcpy(p + 12, s->src.addr, 4);
	memcpy(p + 16, s->dst.addr, 4);
	memset(p + 20, 1, s->ipv4_options); /* NOP options */
	put16(p + 10, fold(sum16(p, hl, 0)));
	return hl;
}

static size_t put_ipv6(const struct packet_spec *s, uint8_t *p, size_t l4len)
{
	size_t ext = (size_t)s->ipv6_ext * 8 + (s->ipv6_fragment ? 8 : 0);
	p[0] = (uint8_t)(0x60 | (s->tos >> 4));
	p[1] = (uint8_t)(s->tos << 4);
	put16(p + 4, (uint16_t)(ext + l4len));
	p[7] = 64;
	memcpy(p + 8, s->src.addr, 16);
	memcpy(p + 24, s->dst.addr, 16);
	uint8_t *next = &p[6];
	uint8_t *h = p + 40;
	for (int i = 0; i < s->ipv6_ext; i++, h += 8) {
		*next = IPPROTO_DSTOPTS;
		memset(h, 0, 8);
		h[2] = 1; /* PadN covering the rest */
		h[3] = 4;
		next = &h[0];
	}
	if (s->ipv6_fragment) {
		*next = IPPROTO_FRAGMENT;
		memset(h, 0, 8);
		put16(h + 2, (uint16_t)((s->frag_offset << 3) | (s->more_fragments ? 1 : 0)));
		h[7] = 0x42;
		next = &h[0];
		h += 8;
	}
	*next = s->ipproto;
	return 40 + ext;
}

size_t packet_build(const struct packet_spec *s, uint8_t *buf, size_t cap)
{
	size_t l2 = 14 + 4 * (size_t)s->nvlans;
	size_t l3 = s->src.family == 4 ? 20 + s->ipv4_options : 40 + s->ipv6_ext * 8u + 8u;
	if (s->nvlans < 0 || s->nvlans > 2 || s->ipv4_options > 40 || s->ipv4_options % 4 ||
	    s->src.family != s->dst.family || l2 + l3 + 20 + s->payload_len > cap)
		return 0;
	memset(buf, 0, l2 + l3 + 20 + s->payload_len);
	static const uint8_t dst_mac[6] = { 0x02, 0, 0, 0, 0, 2 },
			     src_mac[6] = { 0x02, 0, 0, 0, 0, 1 };
	memcpy(buf, dst_mac, 6);
	memcpy(buf + 6, src_mac, 6);
	uint8_t *p = buf + 12;
	for (int i = 0; i < s->nvlans; i++, p += 4) {
		put16(p, s->vlan_tpid[i] ? s->vlan_tpid[i] : 0x8100);
		put16(p + 2, s->vlan_id[i] & 0x0fff);
	}
	put16(p, s->src.family == 4 ? 0x0800 : 0x86dd);
	uint8_t *ip = p + 2;

	/* L4 first, at its final offset, so the IP header can carry its length. */
	size_t iphl = s->src.family == 4 ? 20 + s->ipv4_options
					 : 40 + s->ipv6_ext * 8u + (s->ipv6_fragment ? 8u : 0u);
	uint8_t *l4 = ip + iphl;
	size_t l4len = put_l4(s, l4);
	l4_checksum(s, l4, l4len);
	if (s->src.family == 4)
		put_ipv4(s, ip, l4len);
	else
		put_ipv6(s, ip, l4len);
	return (size_t)(l4 - buf) + l4len;
}
