// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * libFuzzer target: the replay path. The input is a capture file (pcap or pcapng, any link
 * type) read by capture_foreach, as `lyncxdp replay` does; every frame it hands over runs
 * through a private instance of the real XDP program (BPF_PROG_TEST_RUN, opened once;
 * maps/sfb2015.matrix and tests/data/differential/protected.site, enforce and tag mode).
 * Without root the frames are only checked, not run.
 * Every frame also goes to `replay --flows`' table (its own 5-tuple parser), printed at the end.
 * Invariants: no crash, no leak, no undefined behaviour; frames are Ethernet-sized; every
 * frame read is handed over or counted as skipped; a refusal names the file; padded frames are
 * among the truncated ones.
 */
#include "fuzz.h"

#include <linux/bpf.h>

#include "capture.h"
#include "compile.h"
#include "flows.h"
#include "json.h"
#include "matrix.h"
#include "site.h"
#include "testrun.h"

#ifndef FUZZ_REGRESS
#define fuzz_replay_one	 LLVMFuzzerTestOneInput
#define fuzz_replay_init LLVMFuzzerInitialize
#endif

#define FUZZ_REPLAY_SITE "tests/data/differential/protected.site"

static struct {
	struct matrix m;
	struct site s;
	struct compiled c;
	struct testrun t;
	int bpf; /* the program runs the frames */
	uint64_t frames, runs;
	struct flows_table flows;
} fuzz_replay;

int fuzz_replay_init(int *argc, char ***argv);
int fuzz_replay_init(int *argc, char ***argv)
{
	struct text_error err;
	(void)argc;
	(void)argv;
	if (matrix_load("maps/sfb2015.matrix", &fuzz_replay.m, &err) < 0 ||
	    site_load(FUZZ_REPLAY_SITE, &fuzz_replay.m, &fuzz_replay.s, &err) < 0 ||
	    compile_tables(&fuzz_replay.m, &fuzz_replay.s, &fuzz_replay.c, &err) < 0) {
		fprintf(stderr, "fuzz_replay: %s (run from the repository top)\n", err.msg);
		exit(2);
	}
	if (testrun_open(&fuzz_replay.t, &fuzz_replay.m, &fuzz_replay.s, &fuzz_replay.c,
			 LX_POLICY_ENFORCE, 1, &err) == 0)
		fuzz_replay.bpf = 1;
	else
		fprintf(stderr, "fuzz_replay: no BPF test runs (%s): frames are only checked\n",
			err.msg);
	return 0;
}

static int fuzz_replay_frame(const uint8_t *frame, size_t len, void *arg)
{
	static struct testrun_result res;
	struct text_error err;
	uint64_t *handed = arg;
	(*handed)++;
	fuzz_replay.frames++;
	if (len > 65536 + 14) {
		fprintf(stderr, "capture_foreach handed over a %zu-byte frame\n", len);
		abort();
	}
	if (len) { /* the whole frame must be readable (ASan checks) */
		volatile uint8_t sum = 0;
		for (size_t i = 0; i < len; i++)
			sum ^= frame[i];
		(void)sum;
	}
	if (flows_add(&fuzz_replay.flows, frame, len, 0, 0, LX_CNT_UNCLASSIFIED, XDP_PASS, 0) < 0)
		abort();
	if (!fuzz_replay.bpf)
		return 0;
	int rc = testrun_frame(&fuzz_replay.t, frame, len, &res, &err);
	if (rc < 0) {
		fprintf(stderr, "testrun_frame: %s\n", err.msg);
		abort();
	}
	if (rc == 0) {
		fuzz_replay.runs++;
		if ((res.retval != XDP_PASS && res.retval != XDP_DROP) || res.out_len != len ||
		    res.last.verdict != res.retval || res.last.reason >= LX_DROP_MAX) {
			fprintf(stderr, "program: retval %u, %zu bytes out of %zu, reason %u\n",
				res.retval, res.out_len, len, res.last.reason);
			abort();
		}
	}
	return 0;
}

int fuzz_replay_one(const uint8_t *data, size_t size);
int fuzz_replay_one(const uint8_t *data, size_t size)
{
	struct fuzz_input in;
	struct capture_counts counts;
	uint64_t handed = 0;

	fuzz_input_open(&in, data, size);
	fuzz_last_rc = capture_foreach(in.path, fuzz_replay_frame, &handed, &counts, &in.err);
	if (fuzz_last_rc < 0)
		fuzz_check_error(in.path, &in.err);
	FILE *out = fopen("/dev/null", "w");
	if (out) {
		flows_print(out, &fuzz_replay.flows, &fuzz_replay.m);
		struct json_writer w;
		json_begin(&w, out);
		flows_print_json(&w, &fuzz_replay.flows, &fuzz_replay.m);
		json_end(&w);
		fclose(out);
	}
	flows_free(&fuzz_replay.flows);
	if (handed + counts.skipped != counts.frames || counts.truncated > counts.frames ||
	    counts.padded > counts.truncated) {
		fprintf(stderr,
			"capture_foreach: %llu frames read, %llu handed over, %llu skipped\n",
			(unsigned long long)counts.frames, (unsigned long long)handed,
			(unsigned long long)counts.skipped);
		abort();
	}
	close(in.fd);
	return 0;
}
