// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* `lyncxdp conntrack` output (see conntrack.h). */
#include "conntrack.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "pins.h"

struct rows {
	struct lx_flow_slot *v;
	size_t n, cap;
	int oom;
};

static int collect(const struct lx_flow_slot *s, void *arg)
{
	struct rows *r = arg;
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 256;
		struct lx_flow_slot *v = realloc(r->v, cap * sizeof(*v));
		if (!v) {
			r->oom = 1;
			return -1;
		}
		r->v = v;
		r->cap = cap;
	}
	r->v[r->n++] = *s;
	return 0;
}

/* Most recently refreshed first. */
static int by_last_seen(const void *a, const void *b)
{
	uint64_t x = ((const struct lx_flow_slot *)a)->flow.last_seen_ns;
	uint64_t y = ((const struct lx_flow_slot *)b)->flow.last_seen_ns;
	return x < y ? 1 : x > y ? -1 : 0;
}

/* What the program knows of the connection: TCP's state from the host's own packets. */
static const char *state_name(const struct lx_flow_slot *s, int live)
{
	if (!live)
		return "expired";
	if (s->flow.closing)
		return "closing";
	if (s->key.proto != LX_PROTO_TCP)
		return "open";
	return s->flow.tcp_state == LX_TCP_SYN_SENT ? "syn-sent"
	       : s->flow.tcp_state == LX_TCP_SYNCED ? "established"
						    : "open";
}

static void addr_text(const struct lx_flow_key *k, const uint8_t *a, char *buf, size_t len)
{
	inet_ntop(k->family == 4 ? AF_INET : AF_INET6, a, buf, (socklen_t)len);
}

int conntrack_print(FILE *out, int flows_fd, uint64_t now_ns, int json, struct text_error *err)
{
	struct rows r = { 0 };
	if (pins_flows_each(flows_fd, collect, &r) != 0) {
		snprintf(err->msg, sizeof(err->msg), "reading %s: %s", LX_PIN_FLOWS,
			 r.oom ? "out of memory" : strerror(errno));
		free(r.v);
		return -1;
	}
	qsort(r.v, r.n, sizeof(*r.v), by_last_seen);
	struct json_writer w;
	if (json) {
		json_begin(&w, out);
		json_key(&w, "flows");
		json_array_begin(&w);
	} else {
		fprintf(out, "%-5s %-45s %-45s %-11s %10s\n", "proto", "local (protected host)",
			"remote", "state", "idle");
	}
	for (size_t i = 0; i < r.n; i++) {
		const struct lx_flow_slot *s = &r.v[i];
		char local[INET6_ADDRSTRLEN], remote[INET6_ADDRSTRLEN];
		addr_text(&s->key, s->key.local_addr, local, sizeof(local));
		addr_text(&s->key, s->key.remote_addr, remote, sizeof(remote));
		int live = pins_flow_live(s, now_ns);
		uint64_t idle_ms = now_ns > s->flow.last_seen_ns
				       ? (now_ns - s->flow.last_seen_ns) / 1000000ULL
				       : 0;
		const char *proto = s->key.proto == LX_PROTO_TCP ? "tcp" : "udp";
		if (json) {
			json_object_begin(&w);
			json_kv_str(&w, "proto", proto);
			json_kv_str(&w, "local", local);
			json_kv_uint(&w, "local_port", s->key.local_port);
			json_kv_str(&w, "remote", remote);
			json_kv_uint(&w, "remote_port", s->key.remote_port);
			json_kv_str(&w, "state", state_name(s, live));
			json_kv_bool(&w, "live", live);
			json_kv_bool(&w, "closing", s->flow.closing != 0);
			json_kv_uint(&w, "idle_ms", idle_ms);
			json_kv_uint(&w, "last_seen_ns", s->flow.last_seen_ns);
			json_kv_uint(&w, "ifindex", s->flow.ifindex);
			json_object_end(&w);
		} else {
			char l[64], rm[64];
			snprintf(l, sizeof(l), s->key.family == 6 ? "[%s]:%u" : "%s:%u", local,
				 s->key.local_port);
			snprintf(rm, sizeof(rm), s->key.family == 6 ? "[%s]:%u" : "%s:%u", remote,
				 s->key.remote_port);
			fprintf(out, "%-5s %-45s %-45s %-11s %9.1fs\n", proto, l, rm,
				state_name(s, live), (double)idle_ms / 1000.0);
		}
	}
	if (json) {
		json_array_end(&w);
		json_end(&w);
	} else {
		fprintf(out, "%zu flows\n", r.n);
	}
	free(r.v);
	return 0;
}
