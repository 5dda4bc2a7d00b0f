/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The port matrix: roles, services and rules read from maps/PRODUCT.matrix. */
#ifndef LYNCXDP_MATRIX_H
#define LYNCXDP_MATRIX_H

#include <stdint.h>

#include "../bpf/lyncxdp_kern_user.h"
#include "text.h"

#define MATRIX_MAX_ROLES  64 /* role sets are 64-bit masks */
#define MATRIX_SOURCE_LEN 64
#define MATRIX_DSCP_KEEP  (-1)

struct matrix_role {
	char slug[LX_SLUG_LEN];
	char name[LX_NAME_LEN];
	uint64_t includes; /* roles whose addresses also hold this one */
	int client;	   /* `client`: its rules count only with a peer holding a role */
	int line;
	int file;
};

struct matrix_service {
	char slug[LX_SLUG_LEN];
	char name[LX_NAME_LEN];
	int dscp; /* 0..63, or MATRIX_DSCP_KEEP */
	int line;
	int file;
};

struct matrix_rule {
	int kind;    /* enum lx_rule_kind */
	int role;    /* index into roles */
	int service; /* index into services */
	int proto;   /* enum lx_proto */
	uint16_t port_lo;
	uint16_t port_hi;
	uint64_t from_roles; /* listen rules: `from ROLE,...` (before closure), 0 for any */
	char source[MATRIX_SOURCE_LEN];
	int line;
	int file; /* index into the matrix's files (a combined matrix has several) */
};

/* An ICMP type (and code) protected hosts accept by default; sites can add more. */
struct matrix_icmp {
	int family; /* 4 or 6 */
	int type;
	int code; /* MATRIX_ICMP_ANY for every code */
	char name[LX_NAME_LEN];
	int line;
};

#define MATRIX_ICMP_ANY (-1)
#define MATRIX_MAX_ICMP 256

#define MATRIX_MAX_FILES 4

struct matrix {
	char path[LX_PATH_LEN]; /* as given: one file, or several joined by ',' */
	int nfiles;
	char files[MATRIX_MAX_FILES][LX_PATH_LEN];
	char product[LX_SLUG_LEN];
	char product_name[LX_NAME_LEN];
	uint64_t hash; /* FNV-1a of the file */
	int nroles;
	struct matrix_role roles[MATRIX_MAX_ROLES];
	int nservices;
	struct matrix_service *services;
	int nrules; /* rule id = index + 1 */
	struct matrix_rule *rules;
	int nicmp;
	struct matrix_icmp icmp[MATRIX_MAX_ICMP];
};

/*
 * Reads a matrix file, or several separated by ',' (a combined product such as
 * sfb2015,teams): later files add their roles, services and rules to the first's; a role or
 * service they declare again must be declared identically.
 */
int matrix_load(const char *path, struct matrix *m, struct text_error *err);

/* Where a rule was read: its file and line, as "path:line". */
void matrix_rule_where(const struct matrix *m, const struct matrix_rule *r, char *buf, size_t len);

/*
 * The rank of a rule when the two ends of a packet both have one: the higher rank wins
 * (maps/README.md, "Precedence"). A rule of a role that is not a client role beats a client
 * rule; then the smaller port range; then the earlier line (index = rule index in m).
 */
uint32_t matrix_rule_rank(const struct matrix *m, int index);
void matrix_free(struct matrix *m);

int matrix_find_role(const struct matrix *m, const char *slug);
int matrix_find_service(const struct matrix *m, const char *slug);
/* A DSCP as the files write it: 0..63, or "-" for MATRIX_DSCP_KEEP; -1 if it is neither. */
int matrix_dscp_value(const char *s, int *dscp);

/* A role set with every role that includes one of its members added. */
uint64_t matrix_role_closure(const struct matrix *m, uint64_t roles);

const char *matrix_proto_name(int proto);
const char *matrix_kind_name(int kind);

/* "TYPE" or "TYPE:CODE" of ICMP (family 4) or ICMPv6 (family 6). */
/* "N" or "N-M", 1 <= N <= M <= 65535. Returns 0, or -1 with a reason in why. */
int matrix_parse_ports(const char *s, uint16_t *lo, uint16_t *hi, char *why, size_t whylen);

/*
 * Adds `outbound ROLE allow-outbound PROTO to LO-HI local:allow-outbound`, read at path:line
 * (a site file, which joins the matrix's files so that the rule's place can be named); the
 * service allow-outbound (DSCP `-`) is declared when the matrix has none. Nothing is added
 * when the role has an outbound-to rule for exactly those ports.
 */
int matrix_add_outbound(struct matrix *m, int role, int proto, uint16_t lo, uint16_t hi,
			const char *path, int line, struct text_error *err);

int matrix_parse_icmp(const char *family, const char *spec, struct matrix_icmp *out, char *why,
		      size_t whylen);
int matrix_proto_parse(const char *s);

#endif
