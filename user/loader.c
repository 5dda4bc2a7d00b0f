// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "loader.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "addr4.h"
#include "addr6.h"
#include "lyncxdp.skel.h"

uint32_t loader_rule_cap(int nrules)
{
	uint32_t cap = LX_RULE_CAP_MIN;
	while (cap < (uint32_t)nrules + 1)
		cap *= 2;
	return cap;
}

uint32_t loader_flow_slots(uint32_t flows_max)
{
	uint64_t want = (uint64_t)(flows_max ? flows_max : LX_MAX_FLOWS) * LX_FLOW_SLOTS_PER_FLOW;
	uint32_t slots = LX_FLOW_WAYS;
	while (slots < want)
		slots *= 2;
	return slots;
}

int loader_flow_seed(uint64_t *seed, struct text_error *err)
{
	ssize_t n;
	do
		n = getrandom(seed, sizeof(*seed), 0);
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(*seed))
		return 0;
	snprintf(err->msg, sizeof(err->msg), "no random bytes for the flow table's hash seed: %s",
		 n < 0 ? strerror(errno) : "short read");
	return -1;
}

/* The program's load-time config (its .rodata `config`) for a compiled site. */
struct lx_config loader_config(const struct compiled *c)
{
	struct lx_config cfg = {
		.flags = c->config_flags,
		.protected_groups = c->protected_groups,
		.peer_groups = c->peer_groups,
		.server_groups = c->server_groups,
		.client_groups = c->client_groups,
		.nat_groups = c->nat_groups,
		.tcp_timeout_ns = LX_TCP_TIMEOUT_S * 1000000000ULL,
		.tcp_closing_ns = LX_TCP_CLOSING_S * 1000000000ULL,
		.udp_timeout_ns = LX_UDP_TIMEOUT_S * 1000000000ULL,
		.droplog_per_sec = LX_DROPLOG_PER_SEC,
	};
	return cfg;
}

static int is_table(const struct bpf_map *map)
{
	return !strncmp(bpf_map__name(map), LX_PIN_TABLE_PREFIX, strlen(LX_PIN_TABLE_PREFIX));
}

/* Reload: this instance uses the (new, unpinned) table maps of another one. */
static int reuse_tables(struct bpf_object *obj, struct lyncxdp_bpf *from, struct text_error *err)
{
	struct bpf_map *map;
	bpf_object__for_each_map (map, obj) {
		if (!is_table(map))
			continue;
		struct bpf_map *src = bpf_object__find_map_by_name(from->obj, bpf_map__name(map));
		int r = src ? bpf_map__reuse_fd(map, bpf_map__fd(src)) : -ENOENT;
		if (r) {
			snprintf(err->msg, sizeof(err->msg), "sharing table %s: %s",
				 bpf_map__name(map), strerror(-r));
			return -1;
		}
	}
	return 0;
}

/*
 * Joining an attach: the tables are the pinned ones, sized for the attached site. Adopting
 * them by fd takes their real sizes (libbpf would refuse them against the defaults).
 */
static int reuse_pinned_tables(struct bpf_object *obj, struct text_error *err)
{
	struct bpf_map *map;
	char path[256];
	bpf_object__for_each_map (map, obj) {
		if (!is_table(map))
			continue;
		pins_map_path(bpf_map__name(map), path, sizeof(path));
		int fd = bpf_obj_get(path);
		if (fd < 0)
			continue; /* absent: created and pinned at load */
		int r = bpf_map__reuse_fd(map, fd);
		close(fd);
		if (r) {
			snprintf(err->msg, sizeof(err->msg), "reusing %s: %s", path, strerror(-r));
			return -1;
		}
	}
	return 0;
}

static int set_pin_paths(struct bpf_object *obj, const struct loader_opts *opts,
			 struct text_error *err)
{
	struct bpf_map *map;
	char path[256];

	bpf_object__for_each_map (map, obj) {
		if (bpf_map__is_internal(map)) /* .rodata stays per instance */
			continue;
		if (is_table(map) && (opts->fresh_tables || opts->tables_from))
			continue;
		pins_map_path(bpf_map__name(map), path, sizeof(path));
		int r = bpf_map__set_pin_path(map, path);
		if (r) {
			snprintf(err->msg, sizeof(err->msg), "pin path %s: %s", path, strerror(-r));
			return -1;
		}
	}
	return 0;
}

static uint32_t at_least(uint32_t n, uint32_t floor)
{
	return n > floor ? n : floor;
}

/*
 * The tables a site needs, not the most any site could: a reload creates new tables, so
 * they never have to grow in place. The rule table holds the groups in use, the address
 * maps their entries, the outbound table its entries.
 */
static int size_tables(struct lyncxdp_bpf *skel, const struct compiled *c, struct text_error *err)
{
	struct addr4_table t4;
	if (addr4_build(c, &t4) < 0) {
		snprintf(err->msg, sizeof(err->msg), "out of memory");
		return -1;
	}
	bpf_map__set_max_entries(skel->maps.tbl_rules,
				 (uint32_t)c->ngroups * LX_PROTO_MAX * LX_SLOTS_PER_PROTO);
	bpf_map__set_max_entries(skel->maps.tbl_remote,
				 (uint32_t)c->ngroups * LX_PROTO_MAX * LX_SLOTS_PER_PROTO);
	bpf_map__set_max_entries(skel->maps.tbl_dir4_l2, at_least(t4.n2, 1));
	bpf_map__set_max_entries(skel->maps.tbl_dir4_l3, at_least(t4.n3, 1));
	bpf_map__set_max_entries(skel->maps.tbl_host6, at_least(c->hosts6, 64));
	struct addr6_table t6;
	if (addr6_build(c, &t6) < 0) {
		addr4_free(&t4);
		snprintf(err->msg, sizeof(err->msg), "out of memory");
		return -1;
	}
	bpf_map__set_max_entries(skel->maps.tbl_addr6, t6.usable ? t6.nbuckets : 1);
	addr6_free(&t6);
	bpf_map__set_max_entries(skel->maps.tbl_lpm6, at_least(c->nets6, 64));
	addr4_free(&t4);
	return 0;
}

struct lyncxdp_bpf *loader_load(const struct loader_opts *opts, struct text_error *err)
{
	struct lyncxdp_bpf *skel = lyncxdp_bpf__open();
	if (!skel) {
		snprintf(err->msg, sizeof(err->msg), "cannot open the BPF object: %s",
			 strerror(errno));
		return NULL;
	}
	skel->rodata->iface_slot = opts->iface_slot;
	skel->rodata->rule_cap = opts->rule_cap;
	skel->rodata->record_last = opts->record_last ? 1 : 0;
	skel->rodata->replay_clock = opts->replay_clock ? 1 : 0;
	const struct compiled *c = opts->size_for ? opts->size_for : opts->compiled;
	if (c) {
		struct addr6_table t6;
		if (addr6_build(c, &t6) < 0) {
			snprintf(err->msg, sizeof(err->msg), "out of memory");
			lyncxdp_bpf__destroy(skel);
			return NULL;
		}
		skel->rodata->config = opts->config ? *opts->config : loader_config(c);
		skel->rodata->addr6_on = (__u8)t6.usable;
		skel->rodata->addr6_nlens = t6.nlens;
		memcpy((void *)skel->rodata->addr6_lens, t6.lens, sizeof(t6.lens));
		skel->rodata->addr6_mask = t6.usable ? t6.nbuckets - 1 : 0;
		addr6_free(&t6);
	}
	bpf_map__set_max_entries(skel->maps.lx_counters,
				 LX_MAX_IFACES * opts->rule_cap * LX_DIR_MAX);
	bpf_map__set_max_entries(skel->maps.lx_remarked,
				 LX_MAX_IFACES * opts->rule_cap * LX_DIR_MAX);
	bpf_map__set_max_entries(skel->maps.lx_media,
				 LX_MAX_IFACES * opts->rule_cap * LX_DIR_MAX * LX_MEDIA_MAX);
	bpf_map__set_max_entries(skel->maps.lx_conformance,
				 LX_MAX_IFACES * opts->rule_cap * LX_DIR_MAX * LX_CONF_MAX);
	bpf_map__set_max_entries(skel->maps.lx_rule_info, opts->rule_cap);
	uint32_t flow_slots = opts->flow_slots ? opts->flow_slots : loader_flow_slots(0);
	bpf_map__set_max_entries(skel->maps.lx_flows, flow_slots);
	skel->rodata->flow_sets = flow_slots / LX_FLOW_WAYS;
	skel->rodata->flow_seed = opts->flow_seed;
	bpf_map__set_max_entries(skel->maps.tbl_actions, opts->rule_cap);

	if (opts->size_for) {
		if (size_tables(skel, opts->size_for, err) < 0) {
			lyncxdp_bpf__destroy(skel);
			return NULL;
		}
	} else if (opts->pinned && !opts->fresh_tables && !opts->tables_from &&
		   reuse_pinned_tables(skel->obj, err) < 0) {
		lyncxdp_bpf__destroy(skel);
		return NULL;
	}
	if ((opts->pinned && set_pin_paths(skel->obj, opts, err) < 0) ||
	    (opts->tables_from && reuse_tables(skel->obj, opts->tables_from, err) < 0)) {
		lyncxdp_bpf__destroy(skel);
		return NULL;
	}
	int r = lyncxdp_bpf__load(skel);
	if (r) {
		snprintf(err->msg, sizeof(err->msg), "loading the XDP program failed: %s%s",
			 strerror(-r),
			 opts->pinned ? " (pinned maps of another layout? see `lyncxdp status`)"
				      : "");
		lyncxdp_bpf__destroy(skel);
		return NULL;
	}
	return skel;
}

void loader_destroy(struct lyncxdp_bpf *skel)
{
	lyncxdp_bpf__destroy(skel);
}

void loader_set_replay_time(struct lyncxdp_bpf *skel, uint64_t ns)
{
	skel->bss->replay_now_ns = ns;
}

int loader_prog_fd(struct lyncxdp_bpf *skel)
{
	return bpf_program__fd(skel->progs.lyncxdp);
}

void loader_map_fds(struct lyncxdp_bpf *skel, struct lx_map_fds *fds)
{
	fds->counters = bpf_map__fd(skel->maps.lx_counters);
	fds->special = bpf_map__fd(skel->maps.lx_special);
	fds->remarked = bpf_map__fd(skel->maps.lx_remarked);
	fds->conformance = bpf_map__fd(skel->maps.lx_conformance);
	fds->drops = bpf_map__fd(skel->maps.lx_drops);
	fds->droplog = bpf_map__fd(skel->maps.lx_droplog);
	fds->droplog_rl = bpf_map__fd(skel->maps.lx_droplog_rl);
	fds->rule_info = bpf_map__fd(skel->maps.lx_rule_info);
	fds->state = bpf_map__fd(skel->maps.lx_state);
	fds->last = bpf_map__fd(skel->maps.lx_last);
	fds->media = bpf_map__fd(skel->maps.lx_media);
	fds->streams = bpf_map__fd(skel->maps.lx_streams);
	fds->flows = bpf_map__fd(skel->maps.lx_flows);
	fds->flow_stats = bpf_map__fd(skel->maps.lx_flow_stats);
}

/* Array maps are written in batches: a full table is a million slots. */
static int write_array(int fd, const void *values, size_t value_size, uint32_t first,
		       uint32_t count, const char *what, struct text_error *err)
{
	enum { CHUNK = 8192 };
	uint32_t keys[CHUNK];

	for (uint32_t done = 0; done < count;) {
		uint32_t n = count - done < CHUNK ? count - done : CHUNK;
		for (uint32_t i = 0; i < n; i++)
			keys[i] = first + done + i;
		__u32 written = n;
		const char *chunk = (const char *)values + (size_t)done * value_size;
		if (bpf_map_update_batch(fd, keys, chunk, &written, NULL)) {
			snprintf(err->msg, sizeof(err->msg), "writing %s: %s", what,
				 strerror(errno));
			return -1;
		}
		done += n;
	}
	return 0;
}

static int write_addresses(struct lyncxdp_bpf *skel, const struct compiled *c,
			   struct text_error *err)
{
	struct addr4_table t4;
	if (addr4_build(c, &t4) < 0) {
		snprintf(err->msg, sizeof(err->msg), "out of memory");
		return -1;
	}
	int r = write_array(bpf_map__fd(skel->maps.tbl_dir4_l1), t4.l1, sizeof(*t4.l1), 0,
			    LX_DIR4_L1, "the IPv4 address table", err);
	if (r == 0)
		r = write_array(bpf_map__fd(skel->maps.tbl_dir4_l2), t4.l2, sizeof(*t4.l2), 0,
				t4.n2, "the IPv4 address table", err);
	if (r == 0)
		r = write_array(bpf_map__fd(skel->maps.tbl_dir4_l3), t4.l3, sizeof(*t4.l3), 0,
				t4.n3, "the IPv4 address table", err);
	addr4_free(&t4);
	if (r < 0)
		return -1;
	struct addr6_table t6;
	if (addr6_build(c, &t6) < 0) {
		snprintf(err->msg, sizeof(err->msg), "out of memory");
		return -1;
	}
	if (t6.usable)
		r = write_array(bpf_map__fd(skel->maps.tbl_addr6), t6.buckets, sizeof(*t6.buckets),
				0, t6.nbuckets, "the IPv6 address table", err);
	addr6_free(&t6);
	if (r < 0)
		return -1;
	for (int i = 0; i < c->naddrs; i++) {
		const struct compiled_addr *a = &c->addrs[i];
		if (a->family == 4)
			continue; /* in the three-level table */
		if (a->len == 128) {
			struct lx_addr6 key;
			memcpy(key.addr, a->addr, 16);
			r = bpf_map_update_elem(bpf_map__fd(skel->maps.tbl_host6), &key, &a->group,
						0);
		} else {
			struct lx_lpm6_key key = { .prefixlen = (__u32)a->len };
			memcpy(key.addr, a->addr, 16);
			r = bpf_map_update_elem(bpf_map__fd(skel->maps.tbl_lpm6), &key, &a->group,
						0);
		}
		if (r) {
			snprintf(err->msg, sizeof(err->msg), "writing address %d of %d: %s", i + 1,
				 c->naddrs, strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* The rule table, or the outbound-to table (remote): same layout, groups in use only. */
static int write_rule_table(struct lyncxdp_bpf *skel, const struct compiled *c, int remote,
			    struct text_error *err)
{
	/* Only groups in use: the rest of the preallocated table is already zero. */
	uint32_t slots = (uint32_t)c->ngroups * LX_PROTO_MAX * LX_SLOTS_PER_PROTO;
	struct lx_rule_slot *table = calloc(slots, sizeof(*table));
	if (!table) {
		snprintf(err->msg, sizeof(err->msg), "out of memory");
		return -1;
	}
	for (uint32_t g = 0; g < (uint32_t)c->ngroups; g++)
		for (int proto = 0; proto < LX_PROTO_MAX; proto++)
			for (uint32_t port = 0; port < LX_PORTS; port++) {
				uint32_t idx = lx_rule_slot_index(g, (uint32_t)proto, port);
				table[idx].rule[port % LX_RULES_PER_SLOT] =
				    remote ? compiled_remote_at(c, g, proto, port)
					   : compiled_rule_at(c, g, proto, port);
			}
	int r = write_array(bpf_map__fd(remote ? skel->maps.tbl_remote : skel->maps.tbl_rules),
			    table, sizeof(*table), 0, slots,
			    remote ? "the outbound rules" : "the rule table", err);
	free(table);
	return r;
}

/* tbl_actions and lx_rule_info, keyed by rule id. */
static int write_rule_records(struct lyncxdp_bpf *skel, const struct compiled *c,
			      struct text_error *err)
{
	for (int i = 0; i < c->nrules; i++) {
		__u32 id = c->ids[i];
		if (bpf_map_update_elem(bpf_map__fd(skel->maps.tbl_actions), &id, &c->actions[i],
					0) ||
		    bpf_map_update_elem(bpf_map__fd(skel->maps.lx_rule_info), &id, &c->infos[i],
					0)) {
			snprintf(err->msg, sizeof(err->msg), "writing rule %u: %s", id,
				 strerror(errno));
			return -1;
		}
	}
	return 0;
}

static int write_icmp(struct lyncxdp_bpf *skel, const struct compiled *c, struct text_error *err)
{
	__u32 one = 1;
	for (int i = 0; i < c->nicmp; i++)
		if (bpf_map_update_elem(bpf_map__fd(skel->maps.tbl_icmp), &c->icmp_keys[i], &one,
					0)) {
			snprintf(err->msg, sizeof(err->msg), "writing allowed ICMP: %s",
				 strerror(errno));
			return -1;
		}
	return 0;
}

int loader_iface_config_fd(struct lyncxdp_bpf *skel)
{
	return bpf_map__fd(skel->maps.lx_iface_config);
}

int loader_set_iface(int iface_config_fd, uint32_t slot, int policy, int tag, int side,
		     struct text_error *err)
{
	struct lx_iface_config ic = { 0 };
	bpf_map_lookup_elem(iface_config_fd, &slot, &ic); /* keeps what is not given */
	if (policy >= 0)
		ic.policy = (uint32_t)policy;
	if (tag >= 0)
		ic.tag = (uint32_t)tag;
	if (side >= 0)
		ic.side = (uint32_t)side;
	if (bpf_map_update_elem(iface_config_fd, &slot, &ic, 0)) {
		snprintf(err->msg, sizeof(err->msg), "setting the interface %s: %s",
			 policy >= 0 || tag >= 0 ? "policy" : "side", strerror(errno));
		return -1;
	}
	return 0;
}

/* Payload types and the per-kind DSCP of media services (maps/media). */
static int write_media(struct lyncxdp_bpf *skel, const struct compiled *c, struct text_error *err)
{
	struct lx_media_config mc;
	__u32 zero = 0;
	memset(&mc, LX_DSCP_KEEP, sizeof(mc));
	memcpy(mc.dscp, c->media_dscp, sizeof(c->media_dscp));
	if (write_array(bpf_map__fd(skel->maps.tbl_payload), c->payload, sizeof(c->payload[0]), 0,
			LX_PAYLOAD_TYPES, "the payload types", err) < 0)
		return -1;
	if (bpf_map_update_elem(bpf_map__fd(skel->maps.tbl_media), &zero, &mc, 0)) {
		snprintf(err->msg, sizeof(err->msg), "writing the media config: %s",
			 strerror(errno));
		return -1;
	}
	return 0;
}

/* `nat PUBLIC PRIVATE`: public -> private, the address the program keys flows by. */
static int write_nat(struct lyncxdp_bpf *skel, const struct compiled *c, struct text_error *err)
{
	for (int i = 0; i < c->nnat; i++) {
		struct lx_addr6 pub = { 0 }, priv = { 0 };
		size_t n = c->nat[i].family == 4 ? 4 : 16;
		memcpy(pub.addr, c->nat[i].public_addr, n);
		memcpy(priv.addr, c->nat[i].private_addr, n);
		if (bpf_map_update_elem(bpf_map__fd(skel->maps.tbl_nat), &pub, &priv, 0)) {
			snprintf(err->msg, sizeof(err->msg), "writing the NAT table: %s",
				 strerror(errno));
			return -1;
		}
	}
	return 0;
}

int loader_write_tables(struct lyncxdp_bpf *skel, const struct compiled *c, struct text_error *err)
{
	if (write_addresses(skel, c, err) < 0 ||
	    write_array(bpf_map__fd(skel->maps.tbl_ports), c->port_groups,
			sizeof(struct lx_port_table), 0, 1, "the port groups", err) < 0 ||
	    write_array(bpf_map__fd(skel->maps.tbl_filter6), c->filter6, sizeof(uint64_t), 0,
			LX_FILTER_WORDS, "the IPv6 filter", err) < 0 ||
	    write_rule_table(skel, c, 0, err) < 0 || write_rule_table(skel, c, 1, err) < 0 ||
	    write_rule_records(skel, c, err) < 0 || write_media(skel, c, err) < 0 ||
	    write_icmp(skel, c, err) < 0 || write_nat(skel, c, err) < 0)
		return -1;
	return 0;
}

int loader_repin_tables(struct lyncxdp_bpf *skel, struct text_error *err)
{
	struct bpf_map *map;
	char path[256];
	bpf_object__for_each_map (map, skel->obj) {
		if (!is_table(map))
			continue;
		pins_map_path(bpf_map__name(map), path, sizeof(path));
		unlink(path);
		if (bpf_obj_pin(bpf_map__fd(map), path)) {
			snprintf(err->msg, sizeof(err->msg), "pinning %s: %s", path,
				 strerror(errno));
			return -1;
		}
	}
	return 0;
}
