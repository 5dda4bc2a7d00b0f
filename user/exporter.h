/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* `lyncxdp exporter`: serves the metrics at /metrics over HTTP (libmicrohttpd). */
#ifndef LYNCXDP_EXPORTER_H
#define LYNCXDP_EXPORTER_H

#include "text.h"

/* Serves until SIGINT or SIGTERM (stop.h). listen is "ADDR:PORT" or "[ADDR6]:PORT". */
int exporter_run(const char *listen, struct text_error *err);

#endif
