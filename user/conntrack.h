/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * `lyncxdp conntrack`: the connections protected hosts opened, as the program holds them in
 * its flow table (lx_flows), like `conntrack -L`: a table for people, or JSON.
 */
#ifndef LYNCXDP_CONNTRACK_H
#define LYNCXDP_CONNTRACK_H

#include <stdint.h>
#include <stdio.h>

#include "text.h"

/* Lists every flow of the flow table fd, most recently refreshed first; now_ns is the
 * program's clock (CLOCK_MONOTONIC_COARSE). -1 with err when the table cannot be read. */
int conntrack_print(FILE *out, int flows_fd, uint64_t now_ns, int json, struct text_error *err);

#endif
