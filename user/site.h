/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The site file: which address prefixes hold which role. */
#ifndef LYNCXDP_SITE_H
#define LYNCXDP_SITE_H

#include <stdint.h>

#include "matrix.h"
#include "qos.h"

struct site_prefix {
	int family;	  /* 4 or 6 */
	uint8_t addr[16]; /* IPv4 in the first four bytes, network order */
	int len;
	uint64_t roles; /* roles given for exactly this prefix, before closure */
	int line;	/* first line that named it */
};

/* `dscp SERVICE VALUE`: the tag mode's DSCP for a service, instead of the matrix default. */
struct site_dscp {
	int service; /* index into the matrix's services */
	int dscp;    /* 0..63, or MATRIX_DSCP_KEEP */
	int line;
};

/* `nat PUBLIC PRIVATE`: a 1:1 NAT on the gateway maps a listed host's private address to a
 * public one; both are that host (its roles, its flows). */
struct site_nat {
	int family;		 /* 4 or 6, both addresses */
	uint8_t public_addr[16]; /* IPv4 in the first four bytes, network order */
	uint8_t private_addr[16];
	int line;
};

/* `allow-outbound PROTO PORT[-PORT]`: protected hosts may open connections to those ports of
 * any peer (so that the replies pass), beyond the matrix's outbound rules. */
struct site_outbound {
	int proto; /* enum lx_proto */
	uint16_t port_lo, port_hi;
	int line;
};

#define SITE_MAX_DSCP	  256
#define SITE_MAX_OUTBOUND 256
#define SITE_MIN_FLOWS	  1024u
#define SITE_MAX_FLOWS	  4194304u

struct site {
	char path[LX_PATH_LEN];
	uint64_t hash;
	uint64_t roles_present;	  /* roles named in the file, before closure */
	uint64_t protected_roles; /* `protect ROLE ...` */
	int protect_line;	  /* the first `protect` line, for warnings */
	int ndscp;
	struct site_dscp dscp[SITE_MAX_DSCP];
	int nicmp; /* `allow-icmp ipv4|ipv6 TYPE[:CODE] ...`, beyond the matrix's */
	struct matrix_icmp icmp[MATRIX_MAX_ICMP];
	int qos_line;		/* `qos PROFILE`: 0 when the site selects none */
	struct qos_profile qos; /* the selected profile, read from maps/qos.profiles */
	uint32_t flows_max;	/* `flows N`: size of the flow table, 0 for the default */
	int flows_line;
	int nnat;
	struct site_nat *nat; /* LX_MAX_NAT at most */
	int noutbound;
	struct site_outbound outbound[SITE_MAX_OUTBOUND];
	int nprefixes;
	struct site_prefix *prefixes;
	int nwarnings;
};

/* Reads a site file against a matrix's roles. Warnings go to stderr as file:line. */
int site_load(const char *path, const struct matrix *m, struct site *s, struct text_error *err);
void site_free(struct site *s);

/*
 * Adds the site's `allow-outbound` lines to the matrix as outbound-to rules (service
 * allow-outbound, source local:allow-outbound, at the site's file and line) of every
 * protected role that has no outbound rule for exactly those ports. Call after site_load and
 * before compile_tables; rule ids and precedence follow (they come after the matrix's lines).
 */
int site_add_outbound_rules(struct matrix *m, const struct site *s, struct text_error *err);

/* The private address of a NAT'd public one (`nat` lines), NULL when addr is none. */
const uint8_t *site_nat_private(const struct site *s, int family, const uint8_t *addr);

/* The DSCP a service gets: the site's `dscp` line, else its qos profile's, else the matrix's
 * default. 0..63 or MATRIX_DSCP_KEEP. */
int site_service_dscp(const struct matrix *m, const struct site *s, int service);

/* Parses "ADDR[/LEN]" (IPv4 or IPv6). Returns 0, or -1 with a reason in why. */
int site_parse_prefix(const char *text, struct site_prefix *p, char *why, size_t whylen);

/* Formats a prefix as text ("192.0.2.0/24", "2001:db8::1/128"). */
void site_format_prefix(const struct site_prefix *p, char *buf, size_t len);

#endif
