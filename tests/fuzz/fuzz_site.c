// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * libFuzzer target: site_load on arbitrary bytes against maps/sfb2015.matrix (run from the
 * repository top, or set LYNCXDP_MATRIX); a site that loads is compiled, as `check` does.
 * Invariants: no crash, no leak, no undefined behaviour; a refusal names the file.
 */
#include "fuzz.h"

#include "compile.h"
#include "matrix.h"
#include "site.h"

#ifndef FUZZ_REGRESS
#define fuzz_site_one  LLVMFuzzerTestOneInput
#define fuzz_site_init LLVMFuzzerInitialize
#endif

static struct matrix fuzz_site_matrix;

int fuzz_site_init(int *argc, char ***argv);
int fuzz_site_init(int *argc, char ***argv)
{
	struct text_error err;
	const char *path = getenv("LYNCXDP_MATRIX");
	(void)argc;
	(void)argv;
	if (!path || !*path)
		path = "maps/sfb2015.matrix";
	if (matrix_load(path, &fuzz_site_matrix, &err) < 0) {
		fprintf(stderr, "fuzz_site: %s (run from the repository top)\n", err.msg);
		exit(2);
	}
	return 0;
}

int fuzz_site_one(const uint8_t *data, size_t size);
int fuzz_site_one(const uint8_t *data, size_t size)
{
	struct fuzz_input in;
	struct site s;
	struct compiled c;

	fuzz_input_open(&in, data, size);
	fuzz_last_rc = site_load(in.path, &fuzz_site_matrix, &s, &in.err);
	if (fuzz_last_rc == 0) {
		if (s.nprefixes <= 0) {
			fprintf(stderr, "site loaded without a prefix\n");
			abort();
		}
		if (compile_tables(&fuzz_site_matrix, &s, &c, &in.err) == 0)
			compile_free(&c);
		else /* more role combinations than groups: also "PATH:LINE: ..." */
			fuzz_check_error(in.path, &in.err);
		site_free(&s);
	} else {
		fuzz_check_error(in.path, &in.err);
	}
	close(in.fd);
	return 0;
}
