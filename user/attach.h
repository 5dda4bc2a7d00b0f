/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Attaching to interfaces, detaching, changing an interface's settings, reloading the tables.
 * What they leave pinned, and reading it, is user/pins.h. */
#ifndef LYNCXDP_ATTACH_H
#define LYNCXDP_ATTACH_H

#include "compile.h"
#include "loader.h"
#include "matrix.h"
#include "pins.h"
#include "site.h"

enum attach_mode {
	ATTACH_MODE_AUTO = 0, /* native when the driver supports it, else generic */
	ATTACH_MODE_NATIVE,
	ATTACH_MODE_GENERIC,
};

/* Checks shared by every command that touches the kernel: root and a mounted bpffs. */
int attach_check_privileges(struct text_error *err);
int attach_check_bpffs(struct text_error *err);

struct attach_opts {
	enum attach_mode mode;
	uint32_t policy; /* enum lx_policy */
	uint32_t tag;
	uint32_t side; /* enum lx_side: where protected hosts are, seen from this interface */
};

int attach_iface(const char *ifname, const struct attach_opts *o, const struct matrix *m,
		 const struct site *s, const struct compiled *c, struct text_error *err);

/*
 * Replaces the tables of every attached interface with a new matrix and site at once: each
 * interface's program is swapped atomically (bpf_link_update) for one reading the new
 * tables. Counters of rules that exist in both keep their values (the tables written use the
 * ids compile_renumbered gives them; c is not changed); flows are kept.
 */
int attach_reload(const struct matrix *m, const struct site *s, const struct compiled *c,
		  struct text_error *err);

/* Changes an attached interface's policy and tag live; -1 keeps a setting as it is. */
int attach_set(const char *ifname, int policy, int tag, int side, struct text_error *err);
int detach_iface(const char *ifname, struct text_error *err);
int detach_all(struct text_error *err);

#endif
