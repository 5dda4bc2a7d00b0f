/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* `lyncxdp status`: the attached state and flow-table usage, as a table or as JSON. */
#ifndef LYNCXDP_STATUS_H
#define LYNCXDP_STATUS_H

#include <stdio.h>

#include "pins.h"

/* attached: what state_read returned (0: nothing attached, st and fu unused). */
void status_print(FILE *out, const struct lx_state *st, int attached,
		  const struct pins_flow_usage *fu, int json);

#endif
