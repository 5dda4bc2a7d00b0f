// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "testrun.h"

#include <errno.h>
#include <linux/bpf.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "pins.h"

int testrun_open(struct testrun *t, const struct matrix *m, const struct site *s,
		 const struct compiled *c, uint32_t policy, uint32_t tag, struct text_error *err)
{
	return testrun_open_config(t, m, s, c, policy, tag, NULL, err);
}

int testrun_open_config(struct testrun *t, const struct matrix *m, const struct site *s,
			const struct compiled *c, uint32_t policy, uint32_t tag,
			const struct lx_config *config, struct text_error *err)
{
	(void)s; /* what the tables need of the site, c holds */
	memset(t, 0, sizeof(*t));
	t->rule_cap = loader_rule_cap(m->nrules);
	t->nrules = (uint32_t)m->nrules;
	t->flow_slots = loader_flow_slots(c->flows_max);
	if (loader_flow_seed(&t->flow_seed, err) < 0)
		return -1;
	struct loader_opts lo = { .iface_slot = 0,
				  .rule_cap = t->rule_cap,
				  .record_last = 1,
				  .size_for = c,
				  .replay_clock = 1,
				  .config = config,
				  .flow_slots = t->flow_slots,
				  .flow_seed = t->flow_seed };
	t->skel = loader_load(&lo, err);
	if (!t->skel)
		return -1;
	if (loader_write_tables(t->skel, c, err) < 0 ||
	    loader_set_iface(loader_iface_config_fd(t->skel), 0, (int)policy, (int)tag, -1, err) <
		0) {
		testrun_close(t);
		return -1;
	}
	loader_map_fds(t->skel, &t->fds);
	t->prog_fd = loader_prog_fd(t->skel);
	return 0;
}

int testrun_set(struct testrun *t, uint32_t policy, uint32_t tag, struct text_error *err)
{
	return loader_set_iface(loader_iface_config_fd(t->skel), 0, (int)policy, (int)tag, -1, err);
}

int testrun_flow(const struct testrun *t, const struct lx_flow_key *k, struct lx_flow *f)
{
	return pins_flow_lookup(t->fds.flows, t->flow_slots, t->flow_seed, k, f) == 1 ? 0 : -1;
}

void testrun_set_time(struct testrun *t, uint64_t ns)
{
	loader_set_replay_time(t->skel, ns);
}

int testrun_set_side(struct testrun *t, uint32_t side, struct text_error *err)
{
	return loader_set_iface(loader_iface_config_fd(t->skel), 0, -1, -1, (int)side, err);
}

void testrun_close(struct testrun *t)
{
	loader_destroy(t->skel);
	t->skel = NULL;
}

int testrun_frame(struct testrun *t, const uint8_t *frame, size_t len, struct testrun_result *res,
		  struct text_error *err)
{
	/*
	 * The kernel takes at least an Ethernet header, and shows the program one page less
	 * its head and tail room (256 + 320 bytes); beyond that it would run a truncated or
	 * multi-buffer frame, which is not what the NIC would hand over. Count, don't run.
	 */
	if (len < 14) {
		t->too_short++;
		return 1;
	}
	if (len > (size_t)sysconf(_SC_PAGESIZE) - 256 - 320) {
		t->too_long++;
		return 1;
	}
	memset(&res->last, 0, sizeof(res->last));
	__u32 zero = 0;

	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame, .data_size_in = (__u32)len,
		    .data_out = res->out, .data_size_out = sizeof(res->out), .repeat = 1);
	if (bpf_prog_test_run_opts(t->prog_fd, &opts)) {
		if (errno == EINVAL) {
			t->too_long++;
			return 1;
		}
		snprintf(err->msg, sizeof(err->msg), "BPF_PROG_TEST_RUN: %s", strerror(errno));
		return -1;
	}
	res->retval = opts.retval;
	res->out_len = opts.data_size_out;
	/* lx_last is per CPU: the run happened on one of them, and only that one is set. */
	struct lx_last percpu[512];
	int ncpu = libbpf_num_possible_cpus();
	if (ncpu > 512 || bpf_map_lookup_elem(t->fds.last, &zero, percpu)) {
		snprintf(err->msg, sizeof(err->msg), "reading the decision: %s", strerror(errno));
		return -1;
	}
	for (int i = 0; i < ncpu; i++)
		if (percpu[i].verdict || percpu[i].rule || percpu[i].counter)
			res->last = percpu[i];
	/* Clear for the next frame, which may run on another CPU. */
	memset(percpu, 0, sizeof(percpu[0]) * (size_t)ncpu);
	bpf_map_update_elem(t->fds.last, &zero, percpu, 0);
	return 0;
}

int testrun_report(struct testrun *t, struct stats_report *r, struct text_error *err)
{
	return stats_collect(&t->fds, t->rule_cap, t->nrules, 1u, r, err);
}
