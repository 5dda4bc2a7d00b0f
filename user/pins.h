/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The pinned state that outlives the loader, in one place: where it lives in bpffs, the names
 * of the pinned maps, opening and closing them, the state record (lx_state) with its layout
 * check, and the lock that serialises the commands changing it. Readers of counters (stats,
 * metrics, droplog, top, streams) need only this and the shared kern_user header; attaching,
 * detaching and reloading are user/attach.c.
 */
#ifndef LYNCXDP_PINS_H
#define LYNCXDP_PINS_H

#include <stddef.h>
#include <stdint.h>

#include "../bpf/lyncxdp_kern_user.h"
#include "text.h"

#define LX_PIN_DIR   "/sys/fs/bpf/lyncxdp"
#define LX_PIN_MAPS  LX_PIN_DIR "/maps"
#define LX_PIN_LINKS LX_PIN_DIR "/links"
#define LX_PIN_LOCK  "/run/lyncxdp.lock"

/*
 * The pinned maps by file name: the BPF program's map identifiers (bpf/lyncxdp.bpf.c). Maps
 * named LX_PIN_TABLE_PREFIX... are tables, replaced whole by a reload; every other map is
 * state kept across reloads.
 */
#define LX_PIN_TABLE_PREFIX "tbl_"
#define LX_PIN_STATE	    "lx_state"
#define LX_PIN_IFACE_CONFIG "lx_iface_config"
#define LX_PIN_RULE_INFO    "lx_rule_info"
#define LX_PIN_COUNTERS	    "lx_counters"
#define LX_PIN_SPECIAL	    "lx_special"
#define LX_PIN_REMARKED	    "lx_remarked"
#define LX_PIN_CONFORMANCE  "lx_conformance"
#define LX_PIN_DROPS	    "lx_drops"
#define LX_PIN_DROPLOG	    "lx_droplog"
#define LX_PIN_DROPLOG_RL   "lx_droplog_rl"
#define LX_PIN_MEDIA	    "lx_media"
#define LX_PIN_STREAMS	    "lx_streams"
#define LX_PIN_FLOWS	    "lx_flows"
#define LX_PIN_FLOW_STATS   "lx_flow_stats"
#define LX_PIN_LAST	    "lx_last"

/* Map fds by role, so stats can read a private instance (loader_map_fds) and the pins alike. */
struct lx_map_fds {
	int counters;
	int special;
	int remarked;
	int conformance;
	int drops;
	int droplog;	/* lx_droplog: the ring of drop records */
	int droplog_rl; /* lx_droplog_rl: records the rate limit held back */
	int rule_info;
	int state;
	int last;
	int media;	/* lx_media: per-kind counters of media services */
	int streams;	/* lx_streams: RTP streams */
	int flows;	/* lx_flows, for occupancy */
	int flow_stats; /* lx_flow_stats */
};

/* The path of a pinned map's file. */
void pins_map_path(const char *name, char *buf, size_t len);

/* Opens one pinned map by name (LX_PIN_*); -1 with err when absent. */
int pins_map_fd(const char *name, struct text_error *err);

/* Opens every pinned map of struct lx_map_fds; -1 with err (none left open) when one is absent. */
int pins_open(struct lx_map_fds *fds, struct text_error *err);
/* Closes what pins_open opened (never a private instance's fds). */
void pins_close(struct lx_map_fds *fds);

/* Reads the state record. Returns 1 when attached, 0 when nothing is, -1 on error (pins of
 * another layout included). */
int pins_state_read(struct lx_state *st, struct text_error *err);
int pins_state_write(const struct lx_state *st, struct text_error *err);

/* Serialises the commands that change the pins: an fd to close, or -1 with err. */
int pins_lock(struct text_error *err);

/* The pin directories, created when absent. */
int pins_make_dirs(struct text_error *err);
/* Removes every map pin and the pin directories (after the last detach or a failed attach). */
void pins_remove_all(void);

/* The pinned link of an interface slot; 1 when live, 0 when gone (interface removed). */
void pins_link_path(const struct lx_iface_state *ifs, char *buf, size_t len);
int pins_link_alive(const struct lx_iface_state *ifs);

/* Inode of this process's network namespace: interfaces are named within one. */
uint64_t pins_current_netns(void);

/* The fields of an interface slot (lx_iface_state) by name. */
const char *pins_mode_name(uint32_t mode);
const char *pins_policy_name(uint32_t policy);
const char *pins_side_name(uint32_t side);
int pins_parse_side(const char *text); /* enum lx_side, -1 when not a side's name */

/* The flow table: flows it is sized for (slots / LX_FLOW_SLOTS_PER_FLOW), flows present (live: not
 * timed out), flows ever opened, and live flows evicted by a new one when their set was full (the
 * program never deletes one). */
struct pins_flow_usage {
	uint32_t max;
	uint64_t entries, live, opened, evicted;
};
int pins_flow_usage(struct pins_flow_usage *u, struct text_error *err);

/* Drop-log records the rate limit (or a full ring) held back, per interface slot: the
 * `suppressed` of its drop counters (lx_drops fd) summed over CPUs (a detach zeroes its
 * slot's); -1 when they cannot be read. */
int pins_droplog_suppressed(int fd, uint64_t per_slot[LX_MAX_IFACES]);

/* lx_flow_stats (fd) summed over CPUs; -1 when it cannot be read. */
int pins_flow_stats(int fd, struct lx_flow_stats *sum);

/* Calls fn for each flow of a flow table (lx_flows fd), in slot order, until fn returns
 * nonzero: returns 1 then, 0 at the end, -1 when the table cannot be read (errno). */
int pins_flows_each(int fd, int (*fn)(const struct lx_flow_slot *s, void *arg), void *arg);
/* The flow of key k (its check ignored) into *f, in a table of `slots` slots hashed with
 * seed (lx_state.flows_max, .flow_seed): only its set is read. 1 found, 0 not, -1 error. */
int pins_flow_lookup(int fd, uint32_t slots, uint64_t seed, const struct lx_flow_key *k,
		     struct lx_flow *f);
/* Whether a flow has not timed out at now_ns (CLOCK_MONOTONIC_COARSE), by the timeouts every
 * program is loaded with. */
int pins_flow_live(const struct lx_flow_slot *s, uint64_t now_ns);
/* Every slot of a flow table emptied; -1 on error (errno). */
int pins_flows_clear(int fd);

#endif
