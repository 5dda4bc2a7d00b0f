/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * QoS marking profiles (maps/qos.profiles): the DSCP each service gets under a named profile
 * (sfb, teams, expressroute), and the values a profile allows at all. A site selects one with
 * `qos NAME`; its own `dscp` lines still win.
 */
#ifndef LYNCXDP_QOS_H
#define LYNCXDP_QOS_H

#include <stdint.h>

#include "matrix.h"

#define QOS_FILE	 "qos.profiles"
#define QOS_UNSET	 (-2) /* the profile leaves the service at the matrix's default */
#define QOS_MAX_PROFILES 16

struct qos_profile {
	char name[LX_SLUG_LEN];
	char title[LX_NAME_LEN];
	char path[LX_PATH_LEN]; /* the profiles file it came from */
	int line;		/* its `profile` line */
	uint64_t allowed;	/* bit v: DSCP v may be written; 0: any value */
	int allow_line;
	int nservices;
	int *dscp; /* per matrix service: 0..63, MATRIX_DSCP_KEEP or QOS_UNSET */
	int *mark_line;
};

/*
 * Finds maps/qos.profiles beside the matrix (else $LYNCXDP_MAPS, else the installed maps) and
 * reads profile `name` against the matrix's services. Lines for services the matrix does not
 * declare are skipped (every shipped matrix declares the same services). Returns 0, or -1
 * with "file:line: what is wrong" in err.
 */
int qos_profile_load(const struct matrix *m, const char *name, struct qos_profile *p,
		     struct text_error *err);
void qos_profile_free(struct qos_profile *p);

/* The profiles file qos_profile_load reads for this matrix; 0, or -1 when there is none. */
int qos_profiles_path(const struct matrix *m, char *buf, size_t len);

/* "46, 34, 18, 10, 0"-style list of the allowed values, in file order is not kept: descending. */
void qos_format_allowed(uint64_t allowed, char *buf, size_t len);

#endif
