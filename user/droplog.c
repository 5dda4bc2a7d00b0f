// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "droplog.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "json.h"
#include "pins.h"
#include "stats.h"
#include "stop.h"

struct stream {
	const struct droplog_opts *o;
	struct lx_state st;
	unsigned long seen;
	int64_t mono_to_real_ns; /* add to CLOCK_MONOTONIC to get wall-clock time */
};

static int64_t clock_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* "frontend,all-servers": the roles of the group (destination's; source's when spoofed). */
static void group_roles(const struct lx_state *st, uint32_t group, char *buf, size_t len)
{
	size_t used = 0;
	buf[0] = '\0';
	uint64_t roles = group < LX_MAX_GROUPS ? st->group_roles[group] : 0;
	for (int i = 0; i < LX_MAX_ROLES && used < len; i++)
		if (roles & (1ULL << i))
			used += (size_t)snprintf(buf + used, len - used, "%s%s", used ? "," : "",
						 st->roles[i]);
}

static void format_endpoint(const struct lx_drop_event *e, int src, char *buf, size_t len)
{
	char addr[INET6_ADDRSTRLEN];
	const void *a = src ? e->saddr : e->daddr;
	unsigned port = src ? e->sport : e->dport;
	inet_ntop(e->family == 4 ? AF_INET : AF_INET6, a, addr, sizeof(addr));
	if (e->ipproto == IPPROTO_TCP || e->ipproto == IPPROTO_UDP)
		snprintf(buf, len, e->family == 4 ? "%s:%u" : "[%s]:%u", addr, port);
	else
		snprintf(buf, len, "%s", addr);
}

static const char *ipproto_name(uint8_t p)
{
	switch (p) {
	case IPPROTO_TCP:
		return "tcp";
	case IPPROTO_UDP:
		return "udp";
	case IPPROTO_ICMP:
		return "icmp";
	case IPPROTO_ICMPV6:
		return "icmpv6";
	default:
		return "ip";
	}
}

static int on_event(void *ctx, void *data, size_t size)
{
	struct stream *s = ctx;
	const struct lx_drop_event *e = data;
	if (size < sizeof(*e))
		return 0;
	char when[40], src[64], dst[64], roles[256], ifname[IF_NAMESIZE] = "?";
	int64_t real = (int64_t)e->time_ns + s->mono_to_real_ns;
	time_t secs = (time_t)(real / 1000000000LL);
	struct tm tm;
	gmtime_r(&secs, &tm);
	size_t n = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(when + n, sizeof(when) - n, ".%03dZ", (int)(real / 1000000 % 1000));
	if_indextoname(e->ifindex, ifname);
	format_endpoint(e, 1, src, sizeof(src));
	format_endpoint(e, 0, dst, sizeof(dst));
	group_roles(&s->st, e->group, roles, sizeof(roles));
	const char *reason = stats_reason_name(e->reason);
	if (s->o->json) {
		struct json_writer w;
		json_begin(&w, stdout);
		json_kv_str(&w, "time", when);
		json_kv_str(&w, "interface", ifname);
		json_kv_str(&w, "proto", ipproto_name(e->ipproto));
		json_kv_str(&w, "src", src);
		json_kv_str(&w, "dst", dst);
		json_kv_str(&w, "reason", reason);
		json_kv_str(&w, "role", roles);
		json_kv_str(&w, "action", e->enforced ? "dropped" : "would-drop");
		json_end(&w);
	} else {
		printf("%s %-10s %-6s %-45s -> %-45s %-11s %-10s %s\n", when, ifname,
		       ipproto_name(e->ipproto), src, dst, reason,
		       e->enforced ? "dropped" : "would-drop", roles);
	}
	fflush(stdout);
	s->seen++;
	return 0;
}

/*
 * Records the rate limit held back since the stream started: the rises of each interface
 * slot's count between reads. A detach zeroes its slot's counters: a count found lower than
 * the last read started again from zero.
 */
struct held_back {
	uint64_t last[LX_MAX_IFACES];
	unsigned long long total;
};

static void held_back_read(int drops_fd, struct held_back *h, int first)
{
	uint64_t now[LX_MAX_IFACES];
	if (pins_droplog_suppressed(drops_fd, now) < 0)
		return;
	for (int s = 0; s < LX_MAX_IFACES; s++) {
		if (!first)
			h->total += now[s] >= h->last[s] ? now[s] - h->last[s] : now[s];
		h->last[s] = now[s];
	}
}

static void print_suppressed(const struct droplog_opts *o, unsigned long long n)
{
	if (o->json) {
		struct json_writer w;
		json_begin(&w, stdout);
		json_kv_uint(&w, "suppressed", n);
		json_end(&w);
	} else {
		printf("-- %llu records suppressed by the rate limit so far\n", n);
	}
	fflush(stdout);
}

int droplog_stream(const struct droplog_opts *o, struct text_error *err)
{
	struct stream s = { .o = o };
	int attached = pins_state_read(&s.st, err);
	if (attached <= 0) {
		if (attached == 0)
			snprintf(err->msg, sizeof(err->msg),
				 "lyncxdp is not attached to any interface");
		return -1;
	}
	struct lx_map_fds fds;
	if (pins_open(&fds, err) < 0)
		return -1;
	int ring_fd = fds.droplog, drops_fd = fds.drops;
	s.mono_to_real_ns = clock_ns(CLOCK_REALTIME) - clock_ns(CLOCK_MONOTONIC);
	struct ring_buffer *rb = ring_buffer__new(ring_fd, on_event, &s, NULL);
	if (!rb) {
		snprintf(err->msg, sizeof(err->msg), "opening the drop log: %s", strerror(errno));
		pins_close(&fds);
		return -1;
	}
	struct held_back held = { { 0 }, 0 };
	held_back_read(drops_fd, &held, 1);
	unsigned long long reported = 0;
	int64_t start = clock_ns(CLOCK_MONOTONIC), last_report = start;
	int rc = 0;
	while (!stop_requested && (!o->count || s.seen < o->count)) {
		if (o->seconds > 0 &&
		    clock_ns(CLOCK_MONOTONIC) - start >= (int64_t)(o->seconds * 1e9))
			break;
		int r = ring_buffer__poll(rb, 200);
		if (r < 0 && r != -EINTR) {
			snprintf(err->msg, sizeof(err->msg), "reading the drop log: %s",
				 strerror(-r));
			rc = -1;
			break;
		}
		/* Read at every poll (a detach between two reads would hide its slot's rise);
		 * say every few seconds how many records the rate limit held back meanwhile. */
		held_back_read(drops_fd, &held, 0);
		int64_t now = clock_ns(CLOCK_MONOTONIC);
		if (now - last_report >= 5000000000LL) {
			if (held.total != reported)
				print_suppressed(o, held.total);
			reported = held.total;
			last_report = now;
		}
	}
	if (rc == 0) {
		held_back_read(drops_fd, &held, 0);
		print_suppressed(o, held.total);
	}
	ring_buffer__free(rb);
	pins_close(&fds);
	return rc;
}
