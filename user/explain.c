// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* `lyncxdp explain` output (see explain.h): lines for people, JSON through json.c. */
#include <linux/bpf.h>

#include "explain.h"
#include "json.h"
#include "stats.h"

void explain_print(FILE *out, const struct matrix *m, const struct site *s,
		   const struct testrun_result *res, const char *proto, const char *src,
		   const char *dst, int json)
{
	const char *reason = res->last.reason ? stats_reason_name(res->last.reason) : NULL;
	const struct matrix_rule *r = res->last.rule ? &m->rules[res->last.rule - 1] : NULL;
	const char *role = r ? m->roles[r->role].slug : NULL;
	const struct matrix_service *svc = r ? &m->services[r->service] : NULL;
	const char *dir = r ? stats_dir_name(res->last.dir) : NULL;
	const char *verdict = res->retval == XDP_DROP ? "drop" : "pass";
	const char *qos = s->qos_line ? s->qos.name : NULL;
	char ports[16] = "";
	if (r)
		snprintf(ports, sizeof(ports), r->port_lo == r->port_hi ? "%u" : "%u-%u",
			 r->port_lo, r->port_hi);
	if (json) {
		struct json_writer w;
		json_begin(&w, out);
		json_kv_str(&w, "proto", proto);
		json_kv_str(&w, "src", src);
		json_kv_str(&w, "dst", dst);
		json_kv_str(&w, "role", role);
		json_kv_str(&w, "service", svc ? svc->slug : NULL);
		json_kv_str(&w, "service_name", svc ? svc->name : NULL);
		json_key(&w, "rule");
		if (r) {
			json_uint(&w, res->last.rule);
			json_kv_str(&w, "ports", ports);
			json_kv_int(&w, "line", r->line);
		} else {
			json_null(&w);
			json_kv_str(&w, "counter", stats_counter_name((int)res->last.counter));
		}
		json_kv_str(&w, "direction", dir);
		json_kv_str(&w, "verdict", verdict);
		json_kv_str(&w, "reason", reason);
		json_kv_uint(&w, "dscp", res->last.dscp);
		json_kv_str(&w, "qos", qos);
		json_end(&w);
		return;
	}
	fprintf(out, "packet     %s %s -> %s\n", proto, src, dst);
	if (r) {
		fprintf(out, "role       %s\nservice    %s (%s)\n", role, svc->slug, svc->name);
		char where[2 * LX_PATH_LEN];
		matrix_rule_where(m, r, where, sizeof(where));
		fprintf(out, "rule       #%u: %s %s %s, %s\n", res->last.rule, role,
			matrix_proto_name(r->proto), ports, where);
		fprintf(out, "direction  %s\n", dir);
	} else {
		fprintf(out, "role       -\nservice    -\ncounter    %s\n",
			stats_counter_name((int)res->last.counter));
	}
	fprintf(out, "verdict    %s%s%s%s\n", verdict, reason ? " (" : "", reason ? reason : "",
		reason ? (res->retval == XDP_DROP ? ")" : ": enforce would drop it)") : "");
	fprintf(out, "dscp       %u", res->last.dscp);
	if (qos)
		fprintf(out, " (site selects qos profile %s)", qos);
	fputc('\n', out);
}
