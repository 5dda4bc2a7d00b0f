// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Attach, detach, set and reload: one XDP program instance per interface, all sharing the
 * maps pinned under /sys/fs/bpf/lyncxdp/maps; each instance's link is pinned under .../links
 * so it keeps running after the loader exits. Paths, map names, the lx_state record (which
 * slot belongs to which interface, what the tables were compiled from) and the lock are
 * user/pins.c; the tables' contents are what user/compile.c returns.
 */
#include "attach.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#define BPF_FS_MAGIC_NUMBER 0xcafe4a11

int attach_check_privileges(struct text_error *err)
{
	if (geteuid() != 0) {
		snprintf(err->msg, sizeof(err->msg),
			 "this command needs root (CAP_BPF and CAP_NET_ADMIN)");
		return -1;
	}
	return 0;
}

int attach_check_bpffs(struct text_error *err)
{
	struct statfs fs;
	if (statfs("/sys/fs/bpf", &fs) || fs.f_type != BPF_FS_MAGIC_NUMBER) {
		snprintf(err->msg, sizeof(err->msg),
			 "bpffs is not mounted at /sys/fs/bpf (mount -t bpf bpf /sys/fs/bpf)");
		return -1;
	}
	return 0;
}

/* The slot of an interface of this namespace, by index or (when it is gone) by name. */
static int find_slot(const struct lx_state *st, const char *ifname, uint32_t ifindex)
{
	uint64_t netns = pins_current_netns();
	for (int i = 0; i < LX_MAX_IFACES; i++) {
		const struct lx_iface_state *ifs = &st->ifaces[i];
		if (ifs->ifindex && ifs->netns == netns &&
		    ((ifindex && ifs->ifindex == ifindex) || !strcmp(ifs->name, ifname)))
			return i;
	}
	return -1;
}

static int free_slot(const struct lx_state *st)
{
	for (int i = 0; i < LX_MAX_IFACES; i++)
		if (!st->ifaces[i].ifindex)
			return i;
	return -1;
}

/* A second interface joins the tables already attached: they must be the same ones. */
static int check_same_tables(const struct lx_state *st, const struct matrix *m,
			     const struct site *s, struct text_error *err)
{
	if (st->matrix_hash == m->hash && st->site_hash == s->hash)
		return 0;
	snprintf(err->msg, sizeof(err->msg),
		 "lyncxdp is attached with matrix %s and site %s; every interface shares those "
		 "tables: use the same files, or detach every interface first",
		 st->matrix, st->site);
	return -1;
}

static void fill_state(struct lx_state *st, const struct matrix *m, const struct site *s,
		       const struct compiled *c, uint32_t rule_cap)
{
	memset(st, 0, sizeof(*st));
	st->layout_version = LX_LAYOUT_VERSION;
	st->rule_cap = rule_cap;
	st->rules_total = (uint32_t)m->nrules;
	st->rules_active = (uint32_t)c->nactive;
	st->prefixes4 = c->hosts4 + c->nets4;
	st->prefixes6 = c->hosts6 + c->nets6;
	st->groups = (uint32_t)c->role_groups;
	st->flows_max = loader_flow_slots(c->flows_max);
	st->loaded_at = (uint64_t)time(NULL);
	st->max_rule_id = c->max_id;
	st->matrix_hash = m->hash;
	st->site_hash = s->hash;
	text_copy(st->product, sizeof(st->product), m->product);
	for (int i = 0; i < m->nroles && i < LX_MAX_ROLES; i++)
		text_copy(st->roles[i], sizeof(st->roles[i]), m->roles[i].slug);
	for (int g = 0; g < c->ngroups; g++)
		st->group_roles[g] = c->group_roles[g];
	char *abs = realpath(m->path, NULL);
	text_copy(st->matrix, sizeof(st->matrix), abs ? abs : m->path);
	free(abs);
	abs = realpath(s->path, NULL);
	text_copy(st->site, sizeof(st->site), abs ? abs : s->path);
	free(abs);
}

static int create_link(int prog_fd, uint32_t ifindex, const char *ifname, enum attach_mode mode,
		       struct text_error *err)
{
	LIBBPF_OPTS(bpf_link_create_opts, opts);
	opts.flags = mode == ATTACH_MODE_NATIVE	   ? XDP_FLAGS_DRV_MODE
		     : mode == ATTACH_MODE_GENERIC ? XDP_FLAGS_SKB_MODE
						   : 0;
	int fd = bpf_link_create(prog_fd, (int)ifindex, BPF_XDP, &opts);
	if (fd >= 0)
		return fd;
	int e = errno;
	if (e == EBUSY || e == EEXIST)
		snprintf(err->msg, sizeof(err->msg),
			 "%s already has an XDP program that is not lyncxdp's (ip link show %s)",
			 ifname, ifname);
	else if (e == EOPNOTSUPP && mode == ATTACH_MODE_NATIVE)
		snprintf(err->msg, sizeof(err->msg),
			 "%s: the driver has no native XDP support (try --mode generic)", ifname);
	else
		snprintf(err->msg, sizeof(err->msg), "attaching to %s: %s", ifname, strerror(e));
	return -1;
}

static uint32_t link_mode(int link_fd, uint32_t *prog_id, uint32_t *link_id)
{
	struct bpf_link_info info = {};
	__u32 len = sizeof(info);
	if (bpf_obj_get_info_by_fd(link_fd, &info, &len))
		return 0;
	*prog_id = info.prog_id;
	*link_id = info.id;
	/* The link does not say which mode the kernel chose; the netlink query does. */
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	if (bpf_xdp_query((int)info.xdp.ifindex, 0, &q) == 0)
		return q.attach_mode == XDP_ATTACHED_SKB ? LX_MODE_GENERIC : LX_MODE_NATIVE;
	return 0;
}

int attach_iface(const char *ifname, const struct attach_opts *o, const struct matrix *m,
		 const struct site *s, const struct compiled *c, struct text_error *err)
{
	struct lx_state st;
	uint32_t ifindex = if_nametoindex(ifname);
	if (!ifindex) {
		snprintf(err->msg, sizeof(err->msg), "%s: no such interface", ifname);
		return -1;
	}
	int lock = pins_lock(err);
	if (lock < 0)
		return -1;
	int rc = -1, link_fd = -1, fresh = 0;
	struct lyncxdp_bpf *skel = NULL;

	int attached = pins_state_read(&st, err);
	if (attached < 0)
		goto out;
	if (attached) {
		int slot = find_slot(&st, ifname, ifindex);
		if (slot >= 0) {
			snprintf(err->msg, sizeof(err->msg),
				 "%s is already attached (lyncxdp detach %s first)", ifname,
				 ifname);
			goto out;
		}
		if (check_same_tables(&st, m, s, err) < 0)
			goto out;
	} else {
		fill_state(&st, m, s, c, loader_rule_cap(m->nrules));
		uint64_t seed;
		if (loader_flow_seed(&seed, err) < 0)
			goto out;
		st.flow_seed = seed;
		fresh = 1;
	}
	int slot = free_slot(&st);
	if (slot < 0) {
		snprintf(err->msg, sizeof(err->msg), "already attached to %d interfaces, the most",
			 LX_MAX_IFACES);
		goto out;
	}
	if (pins_make_dirs(err) < 0)
		goto out;
	struct loader_opts lo = { .iface_slot = (uint32_t)slot,
				  .rule_cap = st.rule_cap,
				  .pinned = 1,
				  .size_for = fresh ? c : NULL,
				  .compiled = c,
				  .flow_slots = st.flows_max,
				  .flow_seed = st.flow_seed };
	skel = loader_load(&lo, err);
	if (!skel)
		goto out;
	/* Tables are complete before the first packet reaches the program. */
	if (fresh && loader_write_tables(skel, c, err) < 0)
		goto out;
	if (loader_set_iface(loader_iface_config_fd(skel), (uint32_t)slot, (int)o->policy,
			     (int)o->tag, (int)o->side, err) < 0)
		goto out;
	link_fd = create_link(loader_prog_fd(skel), ifindex, ifname, o->mode, err);
	if (link_fd < 0)
		goto out;

	struct lx_iface_state *ifs = &st.ifaces[slot];
	memset(ifs, 0, sizeof(*ifs));
	ifs->ifindex = ifindex;
	ifs->netns = pins_current_netns();
	char pin[256];
	pins_link_path(ifs, pin, sizeof(pin));
	if (bpf_obj_pin(link_fd, pin)) {
		snprintf(err->msg, sizeof(err->msg), "pinning %s: %s", pin, strerror(errno));
		memset(ifs, 0, sizeof(*ifs));
		goto out;
	}
	ifs->attached_at = (uint64_t)time(NULL);
	text_copy(ifs->name, sizeof(ifs->name), ifname);
	ifs->policy = o->policy;
	ifs->tag = o->tag;
	ifs->side = o->side;
	ifs->mode = link_mode(link_fd, &ifs->prog_id, &ifs->link_id);
	if (pins_state_write(&st, err) < 0) {
		unlink(pin);
		goto out;
	}
	rc = 0;
out:
	if (link_fd >= 0)
		close(link_fd); /* the pin keeps the link; without it, this detaches */
	loader_destroy(skel);
	if (rc < 0 && fresh)
		pins_remove_all();
	close(lock);
	return rc;
}

/* Zeroes `count` per-CPU entries of a pinned map from `first`. */
static void zero_entries(const char *map, uint32_t first, uint32_t count, const void *zeros)
{
	struct text_error ignored;
	int fd = pins_map_fd(map, &ignored);
	if (fd < 0)
		return;
	for (uint32_t i = 0; i < count; i++) {
		__u32 key = first + i;
		bpf_map_update_elem(fd, &key, zeros, 0);
	}
	close(fd);
}

/* New attaches to a slot start from zero. */
static void zero_slot_counters(uint32_t slot, uint32_t rule_cap)
{
	int ncpu = libbpf_num_possible_cpus();
	/* as many zeros as the largest value takes (lx_drops') */
	struct lx_drop_count *zeros = calloc((size_t)(ncpu > 0 ? ncpu : 1), sizeof(*zeros));
	if (!zeros)
		return;
	uint32_t per_slot = rule_cap * LX_DIR_MAX;
	zero_entries(LX_PIN_COUNTERS, slot * per_slot, per_slot, zeros);
	zero_entries(LX_PIN_REMARKED, slot * per_slot, per_slot, zeros);
	zero_entries(LX_PIN_CONFORMANCE, slot * per_slot * LX_CONF_MAX, per_slot * LX_CONF_MAX,
		     zeros);
	zero_entries(LX_PIN_SPECIAL, lx_special_counter_index(slot, 0), LX_CNT_MAX, zeros);
	zero_entries(LX_PIN_DROPS, lx_drop_counter_index(slot, 0, 0, 0),
		     LX_DROP_MAX * 2 * LX_DROP_CLASSES, zeros);
	free(zeros);
}

static int remaining(const struct lx_state *st)
{
	int n = 0;
	for (int i = 0; i < LX_MAX_IFACES; i++)
		n += st->ifaces[i].ifindex != 0;
	return n;
}

static int detach_slot(struct lx_state *st, int slot, struct text_error *err)
{
	char pin[256];
	pins_link_path(&st->ifaces[slot], pin, sizeof(pin));
	int fd = bpf_obj_get(pin);
	if (fd >= 0) {
		/* Fails only when the interface is already gone, which detached it anyway. */
		bpf_link_detach(fd);
		close(fd);
	}
	unlink(pin);
	zero_slot_counters((uint32_t)slot, st->rule_cap);
	memset(&st->ifaces[slot], 0, sizeof(st->ifaces[slot]));
	if (remaining(st) == 0) {
		pins_remove_all();
		return 0;
	}
	return pins_state_write(st, err);
}

/* Takes the lock and finds IFACE's slot in this namespace; -1 (lock released) if none. */
static int lock_attached_slot(const char *ifname, struct lx_state *st, int *lock,
			      struct text_error *err)
{
	*lock = pins_lock(err);
	if (*lock < 0)
		return -1;
	int attached = pins_state_read(st, err);
	int slot = attached > 0 ? find_slot(st, ifname, if_nametoindex(ifname)) : -1;
	if (slot < 0) {
		if (attached >= 0)
			snprintf(err->msg, sizeof(err->msg), "%s: lyncxdp is not attached there",
				 ifname);
		close(*lock);
	}
	return slot;
}

int detach_iface(const char *ifname, struct text_error *err)
{
	struct lx_state st;
	int lock;
	int slot = lock_attached_slot(ifname, &st, &lock, err);
	if (slot < 0)
		return -1;
	int rc = detach_slot(&st, slot, err);
	close(lock);
	return rc;
}

int detach_all(struct text_error *err)
{
	struct lx_state st;
	int lock = pins_lock(err);
	if (lock < 0)
		return -1;
	int rc = 0;
	int attached = pins_state_read(&st, err);
	if (attached < 0)
		rc = -1;
	for (int i = 0; attached > 0 && rc == 0 && i < LX_MAX_IFACES; i++)
		if (st.ifaces[i].ifindex)
			rc = detach_slot(&st, i, err);
	if (attached == 0)
		pins_remove_all(); /* leftovers of an interrupted attach */
	close(lock);
	return rc;
}

int attach_set(const char *ifname, int policy, int tag, int side, struct text_error *err)
{
	struct lx_state st;
	int lock, rc = -1;
	int slot = lock_attached_slot(ifname, &st, &lock, err);
	if (slot < 0)
		return -1;
	struct lx_iface_state *ifs = &st.ifaces[slot];
	if (policy >= 0)
		ifs->policy = (uint32_t)policy;
	if (tag >= 0)
		ifs->tag = (uint32_t)tag;
	if (side >= 0)
		ifs->side = (uint32_t)side;
	int fd = pins_map_fd(LX_PIN_IFACE_CONFIG, err);
	if (fd < 0)
		goto out;
	rc = loader_set_iface(fd, (uint32_t)slot, (int)ifs->policy, (int)ifs->tag, (int)ifs->side,
			      err);
	close(fd);
	if (rc == 0)
		rc = pins_state_write(&st, err);
out:
	close(lock);
	return rc;
}

/* Rule ids the attached maps describe, for compile_assign_ids. */
static int read_old_rules(const struct lx_state *st, struct compile_old_rule **out, int *n,
			  struct text_error *err)
{
	int fd = pins_map_fd(LX_PIN_RULE_INFO, err);
	if (fd < 0)
		return -1;
	*out = calloc(st->rule_cap, sizeof(**out));
	*n = 0;
	for (uint32_t id = 1; *out && id < st->rule_cap; id++) {
		struct compile_old_rule *o = &(*out)[*n];
		if (bpf_map_lookup_elem(fd, &id, &o->info) == 0 && o->info.role[0]) {
			o->id = id;
			(*n)++;
		}
	}
	close(fd);
	if (!*out)
		snprintf(err->msg, sizeof(err->msg), "out of memory");
	return *out ? 0 : -1;
}

/* Counters of ids a reload gives to new rules start from zero, on every slot. */
static void zero_rule_ids(const struct lx_state *st, const uint8_t *ids)
{
	int ncpu = libbpf_num_possible_cpus();
	struct lx_count *zeros = calloc((size_t)(ncpu > 0 ? ncpu : 1), sizeof(*zeros));
	for (uint32_t id = 1; zeros && id < st->rule_cap; id++) {
		if (!ids[id])
			continue;
		for (uint32_t slot = 0; slot < LX_MAX_IFACES; slot++) {
			uint32_t first = lx_rule_counter_index(slot, st->rule_cap, id, 0);
			zero_entries(LX_PIN_COUNTERS, first, LX_DIR_MAX, zeros);
			zero_entries(LX_PIN_REMARKED, first, LX_DIR_MAX, zeros);
			zero_entries(LX_PIN_CONFORMANCE, first * LX_CONF_MAX,
				     LX_DIR_MAX * LX_CONF_MAX, zeros);
		}
	}
	free(zeros);
}

/* Forgets the descriptions of rules the new matrix no longer has, freeing their ids. */
static void clear_removed_rules(const struct compile_old_rule *old, int nold,
				const struct compiled *c)
{
	struct text_error ignored;
	int fd = pins_map_fd(LX_PIN_RULE_INFO, &ignored);
	struct lx_rule_info none = { 0 };
	for (int k = 0; fd >= 0 && k < nold; k++) {
		int kept = 0;
		for (int i = 0; i < c->nrules && !kept; i++)
			kept = c->ids[i] == old[k].id;
		if (!kept)
			bpf_map_update_elem(fd, &old[k].id, &none, 0);
	}
	if (fd >= 0)
		close(fd);
}

/* Swaps every attached link to its new program; on a failure, swaps back those done. */
static int swap_programs(const struct lx_state *st, struct lyncxdp_bpf **inst,
			 struct text_error *err)
{
	int done[LX_MAX_IFACES] = { 0 }, old_prog[LX_MAX_IFACES], rc = 0;
	for (int slot = 0; slot < LX_MAX_IFACES && rc == 0; slot++) {
		if (!inst[slot])
			continue;
		char pin[256];
		pins_link_path(&st->ifaces[slot], pin, sizeof(pin));
		int link = bpf_obj_get(pin);
		old_prog[slot] = bpf_prog_get_fd_by_id(st->ifaces[slot].prog_id);
		if (link < 0 || bpf_link_update(link, loader_prog_fd(inst[slot]), NULL)) {
			snprintf(err->msg, sizeof(err->msg), "swapping the program of %s: %s",
				 st->ifaces[slot].name, strerror(errno));
			rc = -1;
		} else {
			done[slot] = 1;
		}
		if (link >= 0)
			close(link);
	}
	for (int slot = 0; slot < LX_MAX_IFACES; slot++) {
		if (rc && done[slot] && old_prog[slot] >= 0) {
			char pin[256];
			pins_link_path(&st->ifaces[slot], pin, sizeof(pin));
			int link = bpf_obj_get(pin);
			if (link >= 0) {
				bpf_link_update(link, old_prog[slot], NULL);
				close(link);
			}
		}
		if (inst[slot] && old_prog[slot] >= 0)
			close(old_prog[slot]);
	}
	return rc;
}

static void update_state_after_reload(struct lx_state *st, const struct matrix *m,
				      const struct site *s, const struct compiled *c,
				      struct lyncxdp_bpf **inst)
{
	struct lx_state fresh;
	fill_state(&fresh, m, s, c, st->rule_cap);
	fresh.loaded_at = st->loaded_at;
	fresh.reloaded_at = (uint64_t)time(NULL);
	fresh.reloads = st->reloads + 1;
	/* The flow table is state: kept as it was created (a new `flows` line waits for the
	 * next first attach). */
	fresh.flows_max = st->flows_max;
	fresh.flow_seed = st->flow_seed;
	memcpy(fresh.ifaces, st->ifaces, sizeof(fresh.ifaces));
	for (int slot = 0; slot < LX_MAX_IFACES; slot++) {
		if (!inst[slot])
			continue;
		struct bpf_prog_info info = {};
		__u32 len = sizeof(info);
		if (bpf_obj_get_info_by_fd(loader_prog_fd(inst[slot]), &info, &len) == 0)
			fresh.ifaces[slot].prog_id = info.id;
	}
	*st = fresh;
}

int attach_reload(const struct matrix *m, const struct site *s, const struct compiled *compiled,
		  struct text_error *err)
{
	struct compiled renumbered = { 0 }, *c = &renumbered;
	struct lx_state st;
	struct lyncxdp_bpf *inst[LX_MAX_IFACES] = { 0 };
	struct compile_old_rule *old = NULL;
	uint8_t *new_ids = NULL;
	int nold = 0, rc = -1, first = -1;
	int lock = pins_lock(err);
	if (lock < 0)
		return -1;
	int attached = pins_state_read(&st, err);
	if (attached <= 0) {
		if (attached == 0)
			snprintf(err->msg, sizeof(err->msg),
				 "lyncxdp is not attached: nothing to reload");
		goto out;
	}
	new_ids = calloc(st.rule_cap, 1);
	if (!new_ids || read_old_rules(&st, &old, &nold, err) < 0 ||
	    compile_renumbered(compiled, m, old, nold, st.rule_cap, c, new_ids, err) < 0)
		goto out;

	/* Every new program is loaded and its tables written before any interface switches. */
	for (int slot = 0; slot < LX_MAX_IFACES; slot++) {
		if (!st.ifaces[slot].ifindex)
			continue;
		struct loader_opts lo = { .iface_slot = (uint32_t)slot,
					  .rule_cap = st.rule_cap,
					  .pinned = 1,
					  .fresh_tables = first < 0,
					  .tables_from = first < 0 ? NULL : inst[first],
					  .size_for = first < 0 ? c : NULL,
					  .compiled = c,
					  .flow_slots = st.flows_max,
					  .flow_seed = st.flow_seed };
		inst[slot] = loader_load(&lo, err);
		if (!inst[slot])
			goto out;
		if (first < 0) {
			first = slot;
			zero_rule_ids(&st, new_ids);
			if (loader_write_tables(inst[slot], c, err) < 0)
				goto out;
		}
	}
	if (first < 0) {
		snprintf(err->msg, sizeof(err->msg), "no interface is attached");
		goto out;
	}
	if (swap_programs(&st, inst, err) < 0)
		goto out;
	/* From here on every interface runs the new tables. */
	clear_removed_rules(old, nold, c);
	update_state_after_reload(&st, m, s, c, inst);
	rc = loader_repin_tables(inst[first], err);
	if (pins_state_write(&st, err) < 0)
		rc = -1;
out:
	for (int slot = 0; slot < LX_MAX_IFACES; slot++)
		loader_destroy(inst[slot]);
	if (renumbered.ids)
		compile_free_renumbered(&renumbered);
	free(old);
	free(new_ids);
	close(lock);
	return rc;
}
