/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Opens and loads the XDP program (libbpf skeleton) and writes compiled tables into it. */
#ifndef LYNCXDP_LOADER_H
#define LYNCXDP_LOADER_H

#include <stdint.h>

#include "compile.h"
#include "matrix.h"

#define LX_PIN_DIR   "/sys/fs/bpf/lyncxdp"
#define LX_PIN_MAPS  LX_PIN_DIR "/maps"
#define LX_PIN_LINKS LX_PIN_DIR "/links"

struct lyncxdp_bpf;

struct loader_opts {
	uint32_t iface_slot;
	uint32_t rule_cap;
	int record_last; /* explain/replay: remember each decision */
	int pinned;	 /* share the maps pinned under LX_PIN_MAPS (created when absent) */
};

/* Rule ids a counter map must hold for this many rules (at least 1024, a power of two). */
uint32_t loader_rule_cap(int nrules);

/* Open, configure and load. Returns NULL with a message in err. */
struct lyncxdp_bpf *loader_load(const struct loader_opts *opts, struct text_error *err);
void loader_destroy(struct lyncxdp_bpf *skel);

/* Fills every table map from a compiled matrix and site. */
int loader_write_tables(struct lyncxdp_bpf *skel, const struct matrix *m, const struct compiled *c,
			struct text_error *err);

int loader_prog_fd(struct lyncxdp_bpf *skel);

/* Map fds by role, so stats can read a private instance and the pins alike. */
struct lx_map_fds {
	int counters;
	int special;
	int rule_info;
	int state;
	int last;
};
void loader_map_fds(struct lyncxdp_bpf *skel, struct lx_map_fds *fds);

/* Removes every map pin and the pin directories (after the last detach or a failed attach). */
void loader_unpin_all(void);

#endif
