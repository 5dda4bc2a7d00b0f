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

/* Flow timeouts and the drop-log rate: policy knobs with the defaults below. Idle TCP: 2 h
 * 5 min, so that a host using Windows' default TCP keepalive (KeepAliveTime, 2 h) keeps its
 * idle connections open (README, "Enforcement"). */
#define LOADER_TCP_TIMEOUT_S   7500
#define LOADER_TCP_CLOSING_S   10
#define LOADER_UDP_TIMEOUT_S   120
#define LOADER_DROPLOG_PER_SEC 100

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
};

/* Table maps (tbl_*) hold what the matrix and site compile to; a reload replaces them
 * whole. Every other map is state that outlives reloads: counters, flows, drop log. */
#define LOADER_TABLE_PREFIX "tbl_"

/* The load-time config of the program (flags, protected groups, timeouts) for a site. */
struct lx_config loader_config(const struct compiled *c);

/* Rule ids a counter map must hold for this many rules (at least 1024, a power of two). */
uint32_t loader_rule_cap(int nrules);

/* Open, configure and load. Returns NULL with a message in err. */
struct lyncxdp_bpf *loader_load(const struct loader_opts *opts, struct text_error *err);
void loader_destroy(struct lyncxdp_bpf *skel);

/* Fills every table map from a compiled matrix and site. */
int loader_write_tables(struct lyncxdp_bpf *skel, const struct matrix *m, const struct site *s,
			const struct compiled *c, struct text_error *err);

/* Sets one interface slot's policy and tag mode (live: the program reads it per packet). */
int loader_set_iface(int iface_config_fd, uint32_t slot, uint32_t policy, uint32_t tag,
		     struct text_error *err);
/* Sets one interface slot's side (enum lx_side), keeping its policy and tag. */
int loader_set_side(int iface_config_fd, uint32_t slot, uint32_t side, struct text_error *err);
int loader_iface_config_fd(struct lyncxdp_bpf *skel);

int loader_prog_fd(struct lyncxdp_bpf *skel);

/* Replay instances (replay_clock): the arrival time of the next frame, in nanoseconds. */
void loader_set_replay_time(struct lyncxdp_bpf *skel, uint64_t ns);

/* Map fds by role, so stats can read a private instance and the pins alike. */
struct lx_map_fds {
	int counters;
	int special;
	int remarked;
	int conformance;
	int drops;
	int droplog_rl;
	int rule_info;
	int state;
	int last;
	int media;	/* lx_media: per-kind counters of media services */
	int streams;	/* lx_streams: RTP streams */
	int flows;	/* lx_flows, for occupancy */
	int flow_stats; /* lx_flow_stats */
};
void loader_map_fds(struct lyncxdp_bpf *skel, struct lx_map_fds *fds);

/* After a reload: the pins of the table maps now name this instance's tables. */
int loader_repin_tables(struct lyncxdp_bpf *skel, struct text_error *err);

/* Removes every map pin and the pin directories (after the last detach or a failed attach). */
void loader_unpin_all(void);

#endif
