// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Benchmark floor: an XDP program that parses nothing and passes every frame. `make bench`
 * runs it with BPF_PROG_TEST_RUN (the cost of the hook itself) and attaches it to the
 * receiving veth of the nftables rows, so that veth delivers frames through NAPI.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int bench_pass(struct xdp_md *ctx)
{
	(void)ctx;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
