/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* `lyncxdp explain`: what the program decided for one packet, as lines or as JSON. */
#ifndef LYNCXDP_EXPLAIN_H
#define LYNCXDP_EXPLAIN_H

#include <stdio.h>

#include "site.h"
#include "testrun.h"

/* The packet as the user wrote it (proto, src, dst), the matrix and site it ran against. */
void explain_print(FILE *out, const struct matrix *m, const struct site *s,
		   const struct testrun_result *res, const char *proto, const char *src,
		   const char *dst, int json);

#endif
