// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * libFuzzer target: matrix_load on arbitrary bytes; a matrix that loads is compiled against a
 * small site in memory that gives it every role (the tables `check` and `attach` build).
 * Invariants: no crash, no leak, no undefined behaviour; a refusal names the file.
 */
#include "fuzz.h"

#include "compile.h"
#include "matrix.h"
#include "site.h"

#ifndef FUZZ_REGRESS
#define fuzz_matrix_one LLVMFuzzerTestOneInput
#endif

/* Compiling costs (rules x ports x groups): skip matrices with very wide ranges. */
#define FUZZ_MATRIX_MAX_PORTS (1u << 18)

static void fuzz_matrix_compile(const struct matrix *m)
{
	struct site_prefix prefixes[3];
	struct site s;
	struct compiled c;
	struct text_error err;
	uint64_t every = m->nroles >= 64 ? ~0ULL : (1ULL << m->nroles) - 1;
	uint64_t ports = 0;

	for (int i = 0; i < m->nrules; i++)
		ports += (uint64_t)m->rules[i].port_hi - m->rules[i].port_lo + 1;
	if (ports > FUZZ_MATRIX_MAX_PORTS || !every)
		return;
	memset(&s, 0, sizeof(s));
	memset(prefixes, 0, sizeof(prefixes));
	/* 10.0.0.0/8: every role; 10.1.0.0/16 inside it: every other role; a host in it */
	prefixes[0] = (struct site_prefix){ .family = 4, .addr = { 10 }, .len = 8, .roles = every };
	prefixes[1] = (struct site_prefix){
		.family = 4, .addr = { 10, 1 }, .len = 16, .roles = every & 0x5555555555555555ULL
	};
	prefixes[2] =
	    (struct site_prefix){ .family = 4, .addr = { 10, 1, 1, 1 }, .len = 32, .roles = 1 };
	s.prefixes = prefixes;
	s.nprefixes = 3;
	s.roles_present = every;
	s.protected_roles = 1;
	if (compile_tables(m, &s, &c, &err) == 0) {
		if (c.ngroups < 2 || c.ngroups > 4 || c.nactive > m->nrules) {
			fprintf(stderr, "compile: %d groups, %d active rules of %d\n", c.ngroups,
				c.nactive, m->nrules);
			abort();
		}
		compile_free(&c);
	}
}

int fuzz_matrix_one(const uint8_t *data, size_t size);
int fuzz_matrix_one(const uint8_t *data, size_t size)
{
	struct fuzz_input in;
	struct matrix m;

	fuzz_input_open(&in, data, size);
	fuzz_last_rc = matrix_load(in.path, &m, &in.err);
	if (fuzz_last_rc == 0) {
		fuzz_matrix_compile(&m);
		matrix_free(&m);
	} else {
		fuzz_check_error(in.path, &in.err);
	}
	close(in.fd);
	return 0;
}
