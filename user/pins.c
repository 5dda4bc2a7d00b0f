// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The pinned state under /sys/fs/bpf/lyncxdp: maps under .../maps shared by every attached
 * interface, each interface's link under .../links, and the lx_state record saying which slot
 * belongs to which interface and what the tables were compiled from. Commands that change it
 * hold LX_PIN_LOCK; readers only open the maps.
 */
#include "pins.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

void pins_map_path(const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", LX_PIN_MAPS, name);
}

int pins_map_fd(const char *name, struct text_error *err)
{
	char path[256];
	pins_map_path(name, path, sizeof(path));
	int fd = bpf_obj_get(path);
	if (fd < 0)
		snprintf(err->msg, sizeof(err->msg), "%s: %s", path,
			 errno == ENOENT ? "lyncxdp is not attached to any interface"
					 : strerror(errno));
	return fd;
}

/* Every field of struct lx_map_fds and the map it holds. */
static const struct {
	const char *name;
	size_t offset;
} pinned_set[] = {
	{ LX_PIN_COUNTERS, offsetof(struct lx_map_fds, counters) },
	{ LX_PIN_SPECIAL, offsetof(struct lx_map_fds, special) },
	{ LX_PIN_REMARKED, offsetof(struct lx_map_fds, remarked) },
	{ LX_PIN_CONFORMANCE, offsetof(struct lx_map_fds, conformance) },
	{ LX_PIN_DROPS, offsetof(struct lx_map_fds, drops) },
	{ LX_PIN_DROPLOG, offsetof(struct lx_map_fds, droplog) },
	{ LX_PIN_DROPLOG_RL, offsetof(struct lx_map_fds, droplog_rl) },
	{ LX_PIN_RULE_INFO, offsetof(struct lx_map_fds, rule_info) },
	{ LX_PIN_STATE, offsetof(struct lx_map_fds, state) },
	{ LX_PIN_LAST, offsetof(struct lx_map_fds, last) },
	{ LX_PIN_MEDIA, offsetof(struct lx_map_fds, media) },
	{ LX_PIN_STREAMS, offsetof(struct lx_map_fds, streams) },
	{ LX_PIN_FLOWS, offsetof(struct lx_map_fds, flows) },
	{ LX_PIN_FLOW_STATS, offsetof(struct lx_map_fds, flow_stats) },
};
#define PINNED_SET_N (sizeof(pinned_set) / sizeof(pinned_set[0]))

static int *fd_field(struct lx_map_fds *fds, size_t i)
{
	return (int *)((char *)fds + pinned_set[i].offset);
}

int pins_open(struct lx_map_fds *fds, struct text_error *err)
{
	for (size_t i = 0; i < PINNED_SET_N; i++)
		*fd_field(fds, i) = -1;
	for (size_t i = 0; i < PINNED_SET_N; i++)
		if ((*fd_field(fds, i) = pins_map_fd(pinned_set[i].name, err)) < 0) {
			pins_close(fds);
			return -1;
		}
	return 0;
}

void pins_close(struct lx_map_fds *fds)
{
	for (size_t i = 0; i < PINNED_SET_N; i++) {
		int *fd = fd_field(fds, i);
		if (*fd >= 0)
			close(*fd);
		*fd = -1;
	}
}

int pins_state_read(struct lx_state *st, struct text_error *err)
{
	char path[256];
	pins_map_path(LX_PIN_STATE, path, sizeof(path));
	if (access(path, F_OK) != 0) {
		memset(st, 0, sizeof(*st));
		return 0;
	}
	int fd = pins_map_fd(LX_PIN_STATE, err);
	if (fd < 0)
		return -1;
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	__u32 zero = 0;
	int r = bpf_obj_get_info_by_fd(fd, &info, &len);
	if (r == 0 && info.value_size != sizeof(*st)) {
		close(fd);
		snprintf(err->msg, sizeof(err->msg),
			 "stale pins from another lyncxdp version in %s (state of %u bytes, this "
			 "version uses %zu): detach with that version, or remove the directory",
			 LX_PIN_DIR, info.value_size, sizeof(*st));
		return -1;
	}
	r = bpf_map_lookup_elem(fd, &zero, st);
	close(fd);
	if (r) {
		snprintf(err->msg, sizeof(err->msg), "reading %s: %s", path, strerror(errno));
		return -1;
	}
	if (st->layout_version != LX_LAYOUT_VERSION) {
		snprintf(err->msg, sizeof(err->msg),
			 "stale pins from another lyncxdp version in %s (layout %u, this version "
			 "uses %u): detach with that version, or remove the directory",
			 LX_PIN_DIR, st->layout_version, LX_LAYOUT_VERSION);
		return -1;
	}
	return 1;
}

int pins_state_write(const struct lx_state *st, struct text_error *err)
{
	int fd = pins_map_fd(LX_PIN_STATE, err);
	if (fd < 0)
		return -1;
	__u32 zero = 0;
	int r = bpf_map_update_elem(fd, &zero, st, 0);
	close(fd);
	if (r)
		snprintf(err->msg, sizeof(err->msg), "writing the state: %s", strerror(errno));
	return r ? -1 : 0;
}

/* Released when the fd is closed or the process exits. */
int pins_lock(struct text_error *err)
{
	int fd = open(LX_PIN_LOCK, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || flock(fd, LOCK_EX)) {
		snprintf(err->msg, sizeof(err->msg), "%s: %s", LX_PIN_LOCK, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

int pins_make_dirs(struct text_error *err)
{
	const char *dirs[] = { LX_PIN_DIR, LX_PIN_MAPS, LX_PIN_LINKS };
	for (size_t i = 0; i < 3; i++)
		if (mkdir(dirs[i], 0700) && errno != EEXIST) {
			snprintf(err->msg, sizeof(err->msg), "%s: %s", dirs[i], strerror(errno));
			return -1;
		}
	return 0;
}

/* Every file under the maps directory is ours: remove them all, then the directories. */
void pins_remove_all(void)
{
	char path[512];
	DIR *dir = opendir(LX_PIN_MAPS);
	if (dir) {
		struct dirent *e;
		while ((e = readdir(dir)))
			if (e->d_name[0] != '.') {
				pins_map_path(e->d_name, path, sizeof(path));
				unlink(path);
			}
		closedir(dir);
	}
	rmdir(LX_PIN_MAPS);
	rmdir(LX_PIN_LINKS);
	rmdir(LX_PIN_DIR);
}

/* Interface indexes are per network namespace, and the pins are shared by all of them. */
uint64_t pins_current_netns(void)
{
	struct stat st;
	return stat("/proc/self/ns/net", &st) == 0 ? (uint64_t)st.st_ino : 0;
}

void pins_link_path(const struct lx_iface_state *ifs, char *buf, size_t len)
{
	snprintf(buf, len, "%s/ns%llu_if%u", LX_PIN_LINKS, (unsigned long long)ifs->netns,
		 ifs->ifindex);
}

int pins_link_alive(const struct lx_iface_state *ifs)
{
	char pin[256];
	pins_link_path(ifs, pin, sizeof(pin));
	int fd = bpf_obj_get(pin);
	if (fd < 0)
		return 0;
	struct bpf_link_info info = {};
	__u32 len = sizeof(info);
	int alive = bpf_obj_get_info_by_fd(fd, &info, &len) == 0 && info.xdp.ifindex != 0;
	close(fd);
	return alive;
}

const char *pins_mode_name(uint32_t mode)
{
	return mode == LX_MODE_NATIVE ? "native" : mode == LX_MODE_GENERIC ? "generic" : "?";
}

const char *pins_policy_name(uint32_t policy)
{
	return policy == LX_POLICY_ENFORCE ? "enforce" : "monitor";
}

/* Sides as `--side` takes them. */
const char *pins_side_name(uint32_t side)
{
	return side == LX_SIDE_PROTECTED     ? "protected"
	       : side == LX_SIDE_ROUTE	     ? "route"
	       : side == LX_SIDE_UNPROTECTED ? "unprotected"
					     : "?";
}

int pins_parse_side(const char *text)
{
	for (uint32_t i = 0; i < LX_SIDE_MAX; i++)
		if (!strcmp(text, pins_side_name(i)))
			return (int)i;
	return -1;
}

int pins_flows_each(int fd, int (*fn)(const struct lx_flow_slot *s, void *arg), void *arg)
{
	enum { CHUNK = 4096 };
	__u32 *keys = malloc(CHUNK * sizeof(*keys));
	struct lx_flow_slot *slots = malloc(CHUNK * sizeof(*slots));
	int rc = keys && slots ? 0 : -1, last = 0;
	__u32 next = 0;
	for (void *from = NULL; !rc && !last; from = &next) {
		__u32 n = CHUNK;
		if (bpf_map_lookup_batch(fd, from, &next, keys, slots, &n, NULL) < 0) {
			if (errno != ENOENT) {
				rc = -1;
				break;
			}
			last = 1; /* the end of the table, with the last n slots */
		}
		for (__u32 i = 0; i < n && !rc; i++)
			if (slots[i].key.family && fn(&slots[i], arg))
				rc = 1;
	}
	free(keys);
	free(slots);
	return rc;
}

int pins_flow_lookup(int fd, uint32_t slots, uint64_t seed, const struct lx_flow_key *k,
		     struct lx_flow *f)
{
	struct lx_flow_key key = *k;
	key.check = 0;
	uint64_t h = lx_flow_hash(&key, seed);
	key.check = lx_flow_check(h);
	__u32 first = ((__u32)h & (slots / LX_FLOW_WAYS - 1)) * LX_FLOW_WAYS;
	for (__u32 way = 0; way < LX_FLOW_WAYS; way++) {
		__u32 i = first + way;
		struct lx_flow_slot s;
		if (bpf_map_lookup_elem(fd, &i, &s))
			return -1;
		if (!memcmp(&s.key, &key, sizeof(key))) {
			*f = s.flow;
			return 1;
		}
	}
	return 0;
}

int pins_flows_clear(int fd)
{
	enum { CHUNK = 4096 };
	struct bpf_map_info info = { 0 };
	__u32 info_len = sizeof(info);
	if (bpf_obj_get_info_by_fd(fd, &info, &info_len))
		return -1;
	__u32 *keys = malloc(CHUNK * sizeof(*keys));
	struct lx_flow_slot *zero = calloc(CHUNK, sizeof(*zero));
	int rc = keys && zero ? 0 : -1;
	for (__u32 at = 0; !rc && at < info.max_entries; at += CHUNK) {
		__u32 n = info.max_entries - at < CHUNK ? info.max_entries - at : CHUNK;
		for (__u32 i = 0; i < n; i++)
			keys[i] = at + i;
		if (bpf_map_update_batch(fd, keys, zero, &n, NULL) < 0)
			rc = -1;
	}
	free(keys);
	free(zero);
	return rc;
}

struct flow_count {
	uint64_t now, entries, live;
};

int pins_flow_live(const struct lx_flow_slot *s, uint64_t now_ns)
{
	/* The timeouts every program is loaded with (lx_config). */
	const uint64_t timeout = s->flow.closing		? LX_TCP_CLOSING_S * 1000000000ULL
				 : s->key.proto == LX_PROTO_TCP ? LX_TCP_TIMEOUT_S * 1000000000ULL
								: LX_UDP_TIMEOUT_S * 1000000000ULL;
	return !lx_elapsed_over(now_ns, s->flow.last_seen_ns, timeout);
}

static int flow_count(const struct lx_flow_slot *s, void *arg)
{
	struct flow_count *fc = arg;
	fc->entries++;
	fc->live += pins_flow_live(s, fc->now) != 0;
	return 0;
}

int pins_droplog_suppressed(int fd, uint64_t per_slot[LX_MAX_IFACES])
{
	memset(per_slot, 0, LX_MAX_IFACES * sizeof(*per_slot));
	int ncpu = libbpf_num_possible_cpus();
	struct lx_drop_count *c = ncpu > 0 ? calloc((size_t)ncpu, sizeof(*c)) : NULL;
	int rc = c ? 0 : -1;
	for (__u32 k = 0; rc == 0 && k < LX_DROP_COUNTERS; k++) {
		rc = bpf_map_lookup_elem(fd, &k, c) ? -1 : 0;
		for (int i = 0; rc == 0 && i < ncpu; i++)
			per_slot[k / (LX_DROP_COUNTERS / LX_MAX_IFACES)] += c[i].suppressed;
	}
	free(c);
	return rc;
}

int pins_flow_stats(int fd, struct lx_flow_stats *sum)
{
	memset(sum, 0, sizeof(*sum));
	__u32 zero = 0;
	int ncpu = libbpf_num_possible_cpus();
	struct lx_flow_stats *percpu = ncpu > 0 ? calloc((size_t)ncpu, sizeof(*percpu)) : NULL;
	int rc = percpu && !bpf_map_lookup_elem(fd, &zero, percpu) ? 0 : -1;
	for (int i = 0; rc == 0 && i < ncpu; i++) {
		sum->opened += percpu[i].opened;
		sum->evicted += percpu[i].evicted;
	}
	free(percpu);
	return rc;
}

int pins_flow_usage(struct pins_flow_usage *u, struct text_error *err)
{
	memset(u, 0, sizeof(*u));
	int flows = pins_map_fd(LX_PIN_FLOWS, err);
	if (flows < 0)
		return -1;
	int stats = pins_map_fd(LX_PIN_FLOW_STATS, err);
	if (stats < 0) {
		close(flows);
		return -1;
	}
	struct bpf_map_info info = { 0 };
	__u32 info_len = sizeof(info);
	if (!bpf_obj_get_info_by_fd(flows, &info, &info_len))
		u->max = info.max_entries / LX_FLOW_SLOTS_PER_FLOW;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	struct flow_count fc = { .now =
				     (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec };
	int rc = pins_flows_each(flows, flow_count, &fc);
	u->entries = fc.entries;
	u->live = fc.live;
	struct lx_flow_stats sum;
	if (pins_flow_stats(stats, &sum) == 0) {
		u->opened = sum.opened;
		u->evicted = sum.evicted;
	}
	close(flows);
	close(stats);
	if (rc < 0) {
		snprintf(err->msg, sizeof(err->msg), "reading %s: %s", LX_PIN_FLOWS,
			 strerror(errno));
		return -1;
	}
	return 0;
}
