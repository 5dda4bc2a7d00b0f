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
	int line;
};

struct matrix_service {
	char slug[LX_SLUG_LEN];
	char name[LX_NAME_LEN];
	int dscp; /* 0..63, or MATRIX_DSCP_KEEP */
	int line;
};

struct matrix_rule {
	int role;    /* index into roles */
	int service; /* index into services */
	int proto;   /* enum lx_proto */
	uint16_t port_lo;
	uint16_t port_hi;
	char source[MATRIX_SOURCE_LEN];
	int line;
};

struct matrix {
	char path[LX_PATH_LEN];
	char product[LX_SLUG_LEN];
	char product_name[LX_NAME_LEN];
	uint64_t hash; /* FNV-1a of the file */
	int nroles;
	struct matrix_role roles[MATRIX_MAX_ROLES];
	int nservices;
	struct matrix_service *services;
	int nrules; /* rule id = index + 1 */
	struct matrix_rule *rules;
};

int matrix_load(const char *path, struct matrix *m, struct text_error *err);
void matrix_free(struct matrix *m);

int matrix_find_role(const struct matrix *m, const char *slug);
int matrix_find_service(const struct matrix *m, const char *slug);

/* A role set with every role that includes one of its members added. */
uint64_t matrix_role_closure(const struct matrix *m, uint64_t roles);

const char *matrix_proto_name(int proto);
int matrix_proto_parse(const char *s);

#endif
