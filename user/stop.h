/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * SIGINT and SIGTERM ask a long-running command (stats --interval, streams, drops, exporter,
 * top) to finish its round and return: one handler, one flag, for all of them.
 */
#ifndef LYNCXDP_STOP_H
#define LYNCXDP_STOP_H

#include <signal.h>

extern volatile sig_atomic_t stop_requested;

/* Installs the handler (once; later calls change nothing) and ignores SIGPIPE. */
void stop_on_signals(void);

#endif
