/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Prometheus text exposition of the pinned counters: `stats --prometheus` and the exporter. */
#ifndef LYNCXDP_METRICS_H
#define LYNCXDP_METRICS_H

#include <stdio.h>

#include "text.h"

/* Writes every metric of every attached interface. */
int metrics_write(FILE *out, struct text_error *err);

#endif
