// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The stop flag of the long-running commands (see stop.h). */
#include "stop.h"

volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
	(void)sig;
	stop_requested = 1;
}

void stop_on_signals(void)
{
	static int installed;
	if (installed)
		return;
	installed = 1;
	struct sigaction sa = { .sa_handler = on_stop };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}
