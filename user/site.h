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

#define SITE_MAX_DSCP  256
#define SITE_MIN_FLOWS 1024u
#define SITE_MAX_FLOWS 16777216u

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
	int nprefixes;
	struct site_prefix *prefixes;
	int nwarnings;
};

/* Reads a site file against a matrix's roles. Warnings go to stderr as file:line. */
int site_load(const char *path, const struct matrix *m, struct site *s, struct text_error *err);
void site_free(struct site *s);

/* The DSCP a service gets: the site's `dscp` line, else its qos profile's, else the matrix's
 * default. 0..63 or MATRIX_DSCP_KEEP. */
int site_service_dscp(const struct matrix *m, const struct site *s, int service);

/* Parses "ADDR[/LEN]" (IPv4 or IPv6). Returns 0, or -1 with a reason in why. */
int site_parse_prefix(const char *text, struct site_prefix *p, char *why, size_t whylen);

/* Formats a prefix as text ("192.0.2.0/24", "2001:db8::1/128"). */
void site_format_prefix(const struct site_prefix *p, char *buf, size_t len);

#endif
