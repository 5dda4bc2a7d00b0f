// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "flows.h"

#include <arpa/inet.h>
#include <linux/bpf.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "stats.h"

static unsigned be16(const uint8_t *b)
{
	return (unsigned)b[0] << 8 | b[1];
}

/* Ethernet, up to two VLAN tags, IPv4 or IPv6 (extension headers), TCP or UDP. A later
 * fragment carries no ports: not a flow's packet here. */
int flows_parse(const uint8_t *f, size_t len, struct flows_key *k)
{
	size_t at = 12;
	memset(k, 0, sizeof(*k));
	if (len < 14)
		return -1;
	unsigned type = be16(f + at);
	for (int tags = 0; (type == 0x8100 || type == 0x88a8) && tags < 2; tags++) {
		at += 4;
		if (len < at + 2)
			return -1;
		type = be16(f + at);
	}
	at += 2;
	int proto;
	if (type == 0x0800) {
		if (len < at + 20 || (f[at] >> 4) != 4)
			return -1;
		size_t ihl = (size_t)(f[at] & 0x0f) * 4;
		if (ihl < 20 || (be16(f + at + 6) & 0x1fff))
			return -1;
		k->family = 4;
		memcpy(k->a, f + at + 12, 4);
		memcpy(k->b, f + at + 16, 4);
		proto = f[at + 9];
		at += ihl;
	} else if (type == 0x86dd) {
		if (len < at + 40 || (f[at] >> 4) != 6)
			return -1;
		k->family = 6;
		memcpy(k->a, f + at + 8, 16);
		memcpy(k->b, f + at + 24, 16);
		proto = f[at + 6];
		at += 40;
		for (int i = 0; i < 8 && (proto == 0 || proto == 43 || proto == 60 || proto == 44);
		     i++) {
			if (len < at + 8)
				return -1;
			if (proto == 44 && (be16(f + at + 2) & 0xfff8))
				return -1; /* a later fragment */
			size_t hlen = proto == 44 ? 8 : ((size_t)f[at + 1] + 1) * 8;
			proto = f[at];
			at += hlen;
		}
	} else {
		return -1;
	}
	if ((proto != 6 && proto != 17) || len < at + 4)
		return -1;
	k->ipproto = (uint8_t)proto;
	k->aport = (uint16_t)be16(f + at);
	k->bport = (uint16_t)be16(f + at + 2);
	return 0;
}

static int same_end(const uint8_t *x, uint16_t xp, const uint8_t *y, uint16_t yp)
{
	return xp == yp && !memcmp(x, y, 16);
}

/* Both directions of a flow hash alike. */
static uint64_t key_hash(const struct flows_key *k)
{
	int swap = memcmp(k->a, k->b, 16) > 0 || (!memcmp(k->a, k->b, 16) && k->aport > k->bport);
	const uint8_t *lo = swap ? k->b : k->a, *hi = swap ? k->a : k->b;
	uint16_t lp = swap ? k->bport : k->aport, hp = swap ? k->aport : k->bport;
	uint8_t buf[38];
	buf[0] = k->family;
	buf[1] = k->ipproto;
	memcpy(buf + 2, lo, 16);
	memcpy(buf + 18, hi, 16);
	buf[34] = (uint8_t)(lp >> 8);
	buf[35] = (uint8_t)lp;
	buf[36] = (uint8_t)(hp >> 8);
	buf[37] = (uint8_t)hp;
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < sizeof(buf); i++)
		h = (h ^ buf[i]) * 0x100000001b3ULL;
	return h;
}

/* 0: the packet goes a -> b of the flow, 1: b -> a, -1: another flow. */
static int side_of(const struct flows_flow *fl, const struct flows_key *k)
{
	const struct flows_key *f = &fl->key;
	if (f->family != k->family || f->ipproto != k->ipproto)
		return -1;
	if (same_end(f->a, f->aport, k->a, k->aport) && same_end(f->b, f->bport, k->b, k->bport))
		return 0;
	if (same_end(f->a, f->aport, k->b, k->bport) && same_end(f->b, f->bport, k->a, k->aport))
		return 1;
	return -1;
}

static int grow_slots(struct flows_table *t)
{
	size_t nslots = t->nslots ? t->nslots * 2 : 1024;
	int32_t *slots = malloc(nslots * sizeof(*slots));
	if (!slots)
		return -1;
	for (size_t i = 0; i < nslots; i++)
		slots[i] = -1;
	for (size_t i = 0; i < t->n; i++) {
		size_t s = key_hash(&t->flows[i].key) & (nslots - 1);
		while (slots[s] >= 0)
			s = (s + 1) & (nslots - 1);
		slots[s] = (int32_t)i;
	}
	free(t->slots);
	t->slots = slots;
	t->nslots = nslots;
	return 0;
}

int flows_add(struct flows_table *t, const uint8_t *frame, size_t len, uint32_t rule, uint32_t dir,
	      uint32_t counter, uint32_t verdict, uint32_t reason)
{
	struct flows_key k;
	if (flows_parse(frame, len, &k) < 0)
		return 0;
	if ((t->n + 1) * 2 > t->nslots && grow_slots(t) < 0)
		return -1;
	size_t s = key_hash(&k) & (t->nslots - 1);
	int side = -1;
	struct flows_flow *fl = NULL;
	for (; t->slots[s] >= 0; s = (s + 1) & (t->nslots - 1)) {
		fl = &t->flows[t->slots[s]];
		if ((side = side_of(fl, &k)) >= 0)
			break;
	}
	if (side < 0) {
		if (t->n == t->cap) {
			size_t cap = t->cap ? t->cap * 2 : 256;
			struct flows_flow *g = realloc(t->flows, cap * sizeof(*g));
			if (!g)
				return -1;
			t->flows = g;
			t->cap = cap;
		}
		fl = &t->flows[t->n];
		memset(fl, 0, sizeof(*fl));
		fl->key = k;
		t->slots[s] = (int32_t)t->n++;
		side = 0;
	}
	struct flows_side *sd = &fl->side[side];
	sd->packets++;
	sd->bytes += len;
	if (!rule)
		dir = 0;
	else
		counter = 0;
	int i = 0;
	for (; i < sd->ndecisions; i++)
		if (sd->decisions[i].rule == rule && sd->decisions[i].dir == dir &&
		    sd->decisions[i].counter == counter)
			break;
	if (i == sd->ndecisions && i < FLOWS_DECISIONS)
		sd->decisions[sd->ndecisions++] =
		    (struct flows_decision){ .rule = rule, .dir = dir, .counter = counter };
	if (i < FLOWS_DECISIONS)
		sd->decisions[i].packets++;
	else
		sd->other++;
	if (verdict == XDP_DROP)
		fl->drop++;
	else
		fl->pass++;
	if (reason < LX_DROP_MAX && reason)
		fl->reasons[reason]++;
	return 0;
}

static void endpoint_text(const struct flows_key *k, int b, char *buf, size_t len)
{
	char addr[INET6_ADDRSTRLEN];
	inet_ntop(k->family == 4 ? AF_INET : AF_INET6, b ? k->b : k->a, addr, sizeof(addr));
	snprintf(buf, len, k->family == 4 ? "%s:%u" : "[%s]:%u", addr, b ? k->bport : k->aport);
}

static const struct matrix_rule *rule_of(const struct matrix *m, uint32_t rule)
{
	return rule && rule <= (uint32_t)m->nrules ? &m->rules[rule - 1] : NULL;
}

/* The decision most of a direction's packets got. */
static const struct flows_decision *main_decision(const struct flows_side *sd)
{
	const struct flows_decision *best = NULL;
	for (int i = 0; i < sd->ndecisions; i++)
		if (!best || sd->decisions[i].packets > best->packets)
			best = &sd->decisions[i];
	return best;
}

static void decision_text(const struct matrix *m, const struct flows_decision *d, char *buf,
			  size_t len)
{
	const struct matrix_rule *r = rule_of(m, d->rule);
	if (r)
		snprintf(buf, len, "%s %s (%s, rule %u)", m->services[r->service].slug,
			 stats_dir_name(d->dir), m->roles[r->role].slug, d->rule);
	else
		snprintf(buf, len, "%s", stats_counter_name((int)d->counter));
}

void flows_print(FILE *out, const struct flows_table *t, const struct matrix *m)
{
	fprintf(out, "\nflows: %zu (TCP and UDP 5-tuples, in order of appearance; A sent first)\n",
		t->n);
	for (size_t i = 0; i < t->n; i++) {
		const struct flows_flow *fl = &t->flows[i];
		char a[64], b[64];
		endpoint_text(&fl->key, 0, a, sizeof(a));
		endpoint_text(&fl->key, 1, b, sizeof(b));
		fprintf(out, "%s A %s  B %s\n", fl->key.ipproto == 6 ? "tcp" : "udp", a, b);
		for (int s = 0; s < 2; s++) {
			const struct flows_side *sd = &fl->side[s];
			fprintf(out, "    %s %8llu packets %10llu bytes", s ? "B->A" : "A->B",
				(unsigned long long)sd->packets, (unsigned long long)sd->bytes);
			for (int d = 0; d < sd->ndecisions; d++) {
				char text[160];
				decision_text(m, &sd->decisions[d], text, sizeof(text));
				fprintf(out, "%s %s", d ? "," : " ", text);
				if (sd->ndecisions > 1)
					fprintf(out, " x%llu",
						(unsigned long long)sd->decisions[d].packets);
			}
			if (sd->other)
				fprintf(out, ", other x%llu", (unsigned long long)sd->other);
			fputc('\n', out);
		}
		fprintf(out, "    verdicts pass %llu, drop %llu", (unsigned long long)fl->pass,
			(unsigned long long)fl->drop);
		for (uint32_t r = 1; r < LX_DROP_MAX; r++)
			if (fl->reasons[r])
				fprintf(out, ", %s %llu", stats_reason_name(r),
					(unsigned long long)fl->reasons[r]);
		fputc('\n', out);
	}
}

static void json_decision(struct json_writer *w, const struct matrix *m,
			  const struct flows_decision *d)
{
	const struct matrix_rule *r = d ? rule_of(m, d->rule) : NULL;
	json_kv_str(w, "service", r ? m->services[r->service].slug : NULL);
	json_kv_str(w, "role", r ? m->roles[r->role].slug : NULL);
	json_kv_str(w, "direction", r ? stats_dir_name(d->dir) : NULL);
	json_key(w, "rule");
	r ? json_uint(w, d->rule) : json_null(w);
	json_kv_str(w, "counter", r || !d ? NULL : stats_counter_name((int)d->counter));
}

void flows_print_json(struct json_writer *w, const struct flows_table *t, const struct matrix *m)
{
	json_key(w, "flows");
	json_array_begin(w);
	for (size_t i = 0; i < t->n; i++) {
		const struct flows_flow *fl = &t->flows[i];
		char a[64], b[64];
		endpoint_text(&fl->key, 0, a, sizeof(a));
		endpoint_text(&fl->key, 1, b, sizeof(b));
		json_break(w, "\n  ");
		json_object_begin(w);
		json_kv_str(w, "proto", fl->key.ipproto == 6 ? "tcp" : "udp");
		json_kv_str(w, "a", a);
		json_kv_str(w, "b", b);
		for (int s = 0; s < 2; s++) {
			const struct flows_side *sd = &fl->side[s];
			json_key(w, s ? "b_to_a" : "a_to_b");
			json_object_begin(w);
			json_kv_uint(w, "packets", sd->packets);
			json_kv_uint(w, "bytes", sd->bytes);
			json_decision(w, m, main_decision(sd));
			json_key(w, "decisions");
			json_array_begin(w);
			for (int d = 0; d < sd->ndecisions; d++) {
				json_object_begin(w);
				json_decision(w, m, &sd->decisions[d]);
				json_kv_uint(w, "packets", sd->decisions[d].packets);
				json_object_end(w);
			}
			json_array_end(w);
			json_kv_uint(w, "other", sd->other);
			json_object_end(w);
		}
		json_kv_uint(w, "pass", fl->pass);
		json_kv_uint(w, "drop", fl->drop);
		json_key(w, "reasons");
		json_object_begin(w);
		for (uint32_t r = 1; r < LX_DROP_MAX; r++)
			if (fl->reasons[r])
				json_kv_uint(w, stats_reason_name(r), fl->reasons[r]);
		json_object_end(w);
		json_object_end(w);
	}
	json_break(w, "\n");
	json_array_end(w);
}

void flows_free(struct flows_table *t)
{
	free(t->flows);
	free(t->slots);
	memset(t, 0, sizeof(*t));
}
