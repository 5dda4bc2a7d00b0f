/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The little JSON output needs: strings escaped per RFC 8259. */
#ifndef LYNCXDP_JSON_H
#define LYNCXDP_JSON_H

#include <stdio.h>

void json_string(FILE *out, const char *s);

#endif
