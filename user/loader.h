/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Opens and loads the XDP program (libbpf skeleton) and writes into its table maps what
 * user/compile.c returned, without reading the matrix or site. */
#ifndef LYNCXDP_LOADER_H
#define LYNCXDP_LOADER_H

#include <stdint.h>

#include "compile.h"
#include "matrix.h"
#include "pins.h"

struct lyncxdp_bpf;

struct loader_opts {
	uint32_t iface_slot;
	uint32_t rule_cap;
	int record_last;  /* explain/replay: remember each decision */
	int replay_clock; /* media streams take their time from loader_set_replay_time */
	int pinned;	  /* share the maps pinned under LX_PIN_MAPS (created when absent) */
	/* Reload: the tables (maps named tbl_*) are new, not the pinned ones: created empty,
	 * or shared with this instance's. */
	int fresh_tables;
	struct lyncxdp_bpf *tables_from;
	/* When the tables are created by this load (not reused): size them for this site. */
	const struct compiled *size_for;
	/* What the tables were compiled from, when not size_for (joining an attach): the
	 * program's load-time constants follow it. */
	const struct compiled *compiled;
	/* The program's load-time config when not loader_config() of the site (tests). */
	const struct lx_config *config;
	/* The flow table (lx_flows): its slots (loader_flow_slots()) and its hash's seed. A
	 * pinned table is joined with the values it was created with (lx_state). */
	uint32_t flow_slots;
	uint64_t flow_seed;
};

/* The load-time config of the program (flags, protected groups, timeouts) for a site. */
struct lx_config loader_config(const struct compiled *c);

/* Rule ids a counter map must hold for this many rules: a power of two, LX_RULE_CAP_MIN at
 * least. */
uint32_t loader_rule_cap(int nrules);

/* Slots of the flow table for the site's `flows N` (0: LX_MAX_FLOWS): LX_FLOW_SLOTS_PER_FLOW
 * per flow, rounded up to a power of two (whole sets of LX_FLOW_WAYS). */
uint32_t loader_flow_slots(uint32_t flows_max);

/* A new flow table's seed, from the kernel's random source; -1 with err when it gives none
 * (never a constant: anyone could then aim flows at one set). */
int loader_flow_seed(uint64_t *seed, struct text_error *err);

/* Open, configure and load. Returns NULL with a message in err. */
struct lyncxdp_bpf *loader_load(const struct loader_opts *opts, struct text_error *err);
void loader_destroy(struct lyncxdp_bpf *skel);

/* Fills every table map (and lx_rule_info) with what compile returned; reads nothing else. */
int loader_write_tables(struct lyncxdp_bpf *skel, const struct compiled *c, struct text_error *err);

/* Sets one interface slot's policy, tag mode and side (enum lx_side); -1 keeps one as it is.
 * Live: the program reads them per packet. */
int loader_set_iface(int iface_config_fd, uint32_t slot, int policy, int tag, int side,
		     struct text_error *err);
int loader_iface_config_fd(struct lyncxdp_bpf *skel);

int loader_prog_fd(struct lyncxdp_bpf *skel);

/* Replay instances (replay_clock): the arrival time of the next frame, in nanoseconds. */
void loader_set_replay_time(struct lyncxdp_bpf *skel, uint64_t ns);

/* The fds of a loaded instance's maps, as pins_open gives the pinned ones. */
void loader_map_fds(struct lyncxdp_bpf *skel, struct lx_map_fds *fds);

/* After a reload: the pins of the table maps now name this instance's tables. */
int loader_repin_tables(struct lyncxdp_bpf *skel, struct text_error *err);

#endif
