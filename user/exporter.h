/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* `lyncxdp exporter`: serves the metrics at /metrics over HTTP (libmicrohttpd). */
#ifndef LYNCXDP_EXPORTER_H
#define LYNCXDP_EXPORTER_H

#include "text.h"

/* Serves until *stop becomes non-zero. listen is "ADDR:PORT" or "[ADDR6]:PORT". */
int exporter_run(const char *listen, const volatile int *stop, struct text_error *err);

#endif
