// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* `lyncxdp status` output (see status.h): a table for people, JSON through json.c. */
#include <time.h>

#include "json.h"
#include "status.h"

static void format_time(uint64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void print_json(FILE *out, const struct lx_state *st, int attached,
		       const struct pins_flow_usage *fu)
{
	struct json_writer w;
	char when[32];
	json_begin(&w, out);
	json_kv_bool(&w, "attached", attached);
	if (attached) {
		json_kv_str(&w, "product", st->product);
		json_kv_str(&w, "matrix", st->matrix);
		json_kv_str(&w, "site", st->site);
		json_key(&w, "matrix_hash");
		json_hex64(&w, st->matrix_hash);
		json_key(&w, "site_hash");
		json_hex64(&w, st->site_hash);
		json_kv_uint(&w, "rules", st->rules_total);
		json_kv_uint(&w, "rules_active", st->rules_active);
		json_kv_uint(&w, "prefixes_ipv4", st->prefixes4);
		json_kv_uint(&w, "prefixes_ipv6", st->prefixes6);
		json_kv_uint(&w, "role_groups", st->groups);
		format_time(st->loaded_at, when, sizeof(when));
		json_kv_str(&w, "loaded_at", when);
		json_kv_uint(&w, "reloads", st->reloads);
		format_time(st->reloaded_at, when, sizeof(when));
		json_kv_str(&w, "reloaded_at", st->reloads ? when : NULL);
		json_key(&w, "flows");
		json_object_begin(&w);
		json_kv_uint(&w, "max", fu->max);
		json_kv_uint(&w, "entries", fu->entries);
		json_kv_uint(&w, "live", fu->live);
		json_kv_uint(&w, "opened", fu->opened);
		json_kv_uint(&w, "evicted", fu->evicted);
		json_object_end(&w);
	}
	json_key(&w, "interfaces");
	json_array_begin(&w);
	for (int i = 0; attached && i < LX_MAX_IFACES; i++) {
		const struct lx_iface_state *ifs = &st->ifaces[i];
		if (!ifs->ifindex)
			continue;
		format_time(ifs->attached_at, when, sizeof(when));
		json_object_begin(&w);
		json_kv_str(&w, "name", ifs->name);
		json_kv_uint(&w, "ifindex", ifs->ifindex);
		json_kv_str(&w, "mode", pins_mode_name(ifs->mode));
		json_kv_str(&w, "policy", pins_policy_name(ifs->policy));
		json_kv_bool(&w, "tag", ifs->tag);
		json_kv_str(&w, "side", pins_side_name(ifs->side));
		json_kv_uint(&w, "prog_id", ifs->prog_id);
		json_kv_uint(&w, "link_id", ifs->link_id);
		json_kv_str(&w, "attached_at", when);
		json_kv_bool(&w, "alive", pins_link_alive(ifs));
		json_object_end(&w);
	}
	json_array_end(&w);
	json_end(&w);
}

static void print_text(FILE *out, const struct lx_state *st, int attached,
		       const struct pins_flow_usage *fu)
{
	char when[32];
	if (!attached) {
		fprintf(out, "lyncxdp: not attached\n");
		return;
	}
	format_time(st->loaded_at, when, sizeof(when));
	fprintf(out, "product   %s\nmatrix    %s (%016llx)\nsite      %s (%016llx)\n", st->product,
		st->matrix, (unsigned long long)st->matrix_hash, st->site,
		(unsigned long long)st->site_hash);
	fprintf(out,
		"rules     %u (%u active)\nprefixes  %u IPv4, %u IPv6 (%u role groups)\n"
		"loaded    %s\n",
		st->rules_total, st->rules_active, st->prefixes4, st->prefixes6, st->groups, when);
	format_time(st->reloaded_at, when, sizeof(when));
	fprintf(out, "reloaded  %s\n", st->reloads ? when : "never");
	fprintf(out, "flows     %llu of %u entries (%llu live), %llu opened, %llu evicted\n\n",
		(unsigned long long)fu->entries, fu->max, (unsigned long long)fu->live,
		(unsigned long long)fu->opened, (unsigned long long)fu->evicted);
	fprintf(out, "%-16s %7s %-8s %-8s %-4s %-11s %7s %7s %-21s %s\n", "IFACE", "IFINDEX",
		"MODE", "POLICY", "TAG", "SIDE", "PROG", "LINK", "ATTACHED", "STATE");
	for (int i = 0; i < LX_MAX_IFACES; i++) {
		const struct lx_iface_state *ifs = &st->ifaces[i];
		if (!ifs->ifindex)
			continue;
		format_time(ifs->attached_at, when, sizeof(when));
		fprintf(out, "%-16s %7u %-8s %-8s %-4s %-11s %7u %7u %-21s %s\n", ifs->name,
			ifs->ifindex, pins_mode_name(ifs->mode), pins_policy_name(ifs->policy),
			ifs->tag ? "on" : "off", pins_side_name(ifs->side), ifs->prog_id,
			ifs->link_id, when,
			pins_link_alive(ifs) ? "running" : "gone (interface removed?)");
	}
}

void status_print(FILE *out, const struct lx_state *st, int attached,
		  const struct pins_flow_usage *fu, int json)
{
	json ? print_json(out, st, attached, fu) : print_text(out, st, attached, fu);
}
