# lyncxdp: build, demo, tests. `make help` lists the targets: each target's line says what it
# does after `## ` (more lines: `## ` lines right below it); tests/suite_make.sh checks that
# every target is listed.
.DEFAULT_GOAL := all

BUILD     ?= build
CC        := clang
BPF_CLANG := clang
BPFTOOL   ?= bpftool
MULTIARCH := $(shell gcc -print-multiarch 2>/dev/null)
# The BPF target architecture (__TARGET_ARCH_*, as libbpf's bpf_tracing.h names it) of this
# machine; BPF_ARCH=... overrides it.
BPF_ARCH  ?= $(shell uname -m | sed -e 's/^x86_64$$/x86/' -e 's/^i.86$$/x86/' \
               -e 's/^aarch64.*/arm64/' -e 's/^armv.*/arm/' -e 's/^ppc64.*/powerpc/' \
               -e 's/^s390.*/s390/' -e 's/^riscv.*/riscv/' -e 's/^loongarch.*/loongarch/' \
               -e 's/^mips.*/mips/')
VERSION   := 0.1.0

CFLAGS_COMMON := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g -I$(BUILD) -Ibpf \
                 -DLYNCXDP_VERSION='"$(VERSION)"'
CFLAGS  ?= -O2
LDLIBS  := -lbpf -lelf -lz -lpcap -lmicrohttpd
SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
BPF_CFLAGS := -g -O2 -target bpf -mcpu=v3 -D__TARGET_ARCH_$(BPF_ARCH) -I/usr/include/$(MULTIARCH) -Ibpf \
              -Wall -Wextra -Werror

# Every module but the CLI's main: the tests link against the same objects.
LIB_SRCS := $(filter-out user/lyncxdp.c,$(wildcard user/*.c))
LIB_OBJS := $(LIB_SRCS:user/%.c=$(BUILD)/obj/%.o)
SAN_OBJS := $(LIB_SRCS:user/%.c=$(BUILD)/san/%.o)
TEST_BINS := $(BUILD)/test_parsers $(BUILD)/test_datapath $(BUILD)/test_policy $(BUILD)/test_differential $(BUILD)/test_fuzz_regress $(BUILD)/test_media
HEADERS  := $(wildcard user/*.h) bpf/lyncxdp_kern_user.h $(BUILD)/lyncxdp.skel.h

.PHONY: all deps demo test format format-check install man deb print-version clean help

all: $(BUILD)/lyncxdp ## build build/lyncxdp (the default: `make`)

help: ## this list: every target and what it does
	@awk '/^[a-z][a-z0-9-]*:.*## / { t = $$0; sub(/:.*/, "", t); d = $$0; sub(/^[^#]*## /, "", d); \
		printf "make %-13s %s\n", t, d; more = 1; next } \
		more && /^## / { d = $$0; sub(/^## /, "", d); printf "%18s %s\n", "", d; next } \
		{ more = 0 }' $(firstword $(MAKEFILE_LIST))

deps: ## install build and test dependencies (Debian 12, root)
	@bash scripts/install-deps.sh

$(BUILD)/lyncxdp.bpf.o: bpf/lyncxdp.bpf.c bpf/lyncxdp_kern_user.h | $(BUILD)
	$(BPF_CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/lyncxdp.skel.h: $(BUILD)/lyncxdp.bpf.o
	$(BPFTOOL) gen skeleton $< name lyncxdp_bpf > $@.tmp && mv $@.tmp $@

$(BUILD)/obj/%.o: user/%.c $(HEADERS) | $(BUILD)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/san/%.o: user/%.c $(HEADERS) | $(BUILD)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) -O1 $(SAN) -c $< -o $@

$(BUILD)/lyncxdp: $(BUILD)/obj/lyncxdp.o $(LIB_OBJS)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/san/lyncxdp: $(BUILD)/san/lyncxdp.o $(SAN_OBJS)
	$(CC) $(SAN) -o $@ $^ $(LDLIBS)

# Every C test links tests/support.c (die, checksums, frames, program instances).
TEST_SUPPORT := tests/support.c tests/support.h tests/check.h

$(BUILD)/test_%: tests/test_%.c $(TEST_SUPPORT) $(LIB_OBJS) $(HEADERS)
	$(CC) $(CFLAGS_COMMON) $(CFLAGS) -Iuser -o $@ $< tests/support.c $(LIB_OBJS) $(LDLIBS)

$(BUILD)/san/test_%: tests/test_%.c $(TEST_SUPPORT) $(SAN_OBJS) $(HEADERS)
	$(CC) $(CFLAGS_COMMON) -O1 $(SAN) -Iuser -o $@ $< tests/support.c $(SAN_OBJS) $(LDLIBS)

$(BUILD):
	@mkdir -p $(BUILD)

demo: deps all ## two namespaces on a veth pair, attach, Lync-shaped traffic, stats
	@bash scripts/demo.sh

# Unit and data-path tests (plain and under ASan/UBSan), then the shell suites.
TEST_DEPS := deps all $(TEST_BINS) $(TEST_BINS:$(BUILD)/%=$(BUILD)/san/%) $(BUILD)/san/lyncxdp
test: $(TEST_DEPS) ## every test (tests/run.sh), ending with 'N passed, N failed'
	@bash tests/run.sh

# Every C source and header of the project (clang-format 14, .clang-format).
C_SOURCES := $(wildcard bpf/*.c bpf/*.h user/*.c user/*.h tests/*.c tests/*.h tests/fuzz/*.c \
                        tests/fuzz/*.h tests/bench/*.c tests/bench/*.h)

format: ## clang-format every C source (bpf/, user/, tests/, tests/fuzz/, tests/bench/)
	clang-format -i $(C_SOURCES)

format-check: ## what CI runs: fails when `make format` would change a C source
	clang-format --dry-run --Werror $(C_SOURCES)

# DESTDIR stages the files elsewhere (packaging, tests); PREFIX is /usr/local, or /usr for the
# Debian package (`make deb`). Units go to UNITDIR; the configuration example next to where
# lyncxdp.service reads /etc/lyncxdp/lyncxdp.conf (never overwritten: only the .example is
# installed). The paths in the units, the wrapper and the example follow PREFIX. Then:
# systemctl daemon-reload.
PREFIX  ?= /usr/local
UNITDIR ?= /etc/systemd/system
DOCDIR  := $(PREFIX)/share/doc/lyncxdp
COMPDIR := $(PREFIX)/share/bash-completion/completions
AT_PREFIX := sed 's|/usr/local/|$(PREFIX)/|g'

install: all man ## binary to /usr/local/sbin, matrices to /usr/local/share/lyncxdp,
## systemd units, /etc/lyncxdp/lyncxdp.conf.example, docs, man page, bash completion
## (DESTDIR=..., PREFIX=/usr/local)
	install -D -m 0755 $(BUILD)/lyncxdp $(DESTDIR)$(PREFIX)/sbin/lyncxdp
	install -d $(DESTDIR)$(PREFIX)/share/lyncxdp/maps
	install -m 0644 maps/*.matrix maps/media maps/qos.profiles maps/site.example maps/README.md \
		$(DESTDIR)$(PREFIX)/share/lyncxdp/maps/
	install -m 0644 maps/site.example $(DESTDIR)$(PREFIX)/share/lyncxdp/site.example
	install -d $(DESTDIR)$(PREFIX)/lib/lyncxdp $(DESTDIR)$(UNITDIR) $(DESTDIR)/etc/lyncxdp
	$(AT_PREFIX) scripts/lyncxdp-service >$(DESTDIR)$(PREFIX)/lib/lyncxdp/lyncxdp-service
	chmod 0755 $(DESTDIR)$(PREFIX)/lib/lyncxdp/lyncxdp-service
	for u in lyncxdp.service lyncxdp-exporter.service; do \
		$(AT_PREFIX) scripts/$$u >$(DESTDIR)$(UNITDIR)/$$u && chmod 0644 $(DESTDIR)$(UNITDIR)/$$u; done
	$(AT_PREFIX) scripts/lyncxdp.conf.example >$(DESTDIR)/etc/lyncxdp/lyncxdp.conf.example
	chmod 0644 $(DESTDIR)/etc/lyncxdp/lyncxdp.conf.example
	install -D -m 0644 scripts/lyncxdp-rules.yml $(DESTDIR)$(PREFIX)/share/lyncxdp/prometheus/lyncxdp-rules.yml
	install -D -m 0644 scripts/lyncxdp-dashboard.json \
		$(DESTDIR)$(PREFIX)/share/lyncxdp/grafana/lyncxdp-dashboard.json
	install -D -m 0644 README.md $(DESTDIR)$(DOCDIR)/README.md
	{ echo "lyncxdp $(VERSION): every command's --help"; echo; \
	  $(BUILD)/lyncxdp --help; \
	  for c in $$($(BUILD)/lyncxdp --help | sed -n '/^Commands:/,/^$$/p' | grep -Eo '^  [a-z][a-z-]*'); do \
		echo; echo "---- lyncxdp $$c"; echo; $(BUILD)/lyncxdp $$c --help; done; \
	  echo; echo "---- lyncxdp-service"; echo; bash scripts/lyncxdp-service --help; \
	} >$(BUILD)/lyncxdp.txt
	install -m 0644 $(BUILD)/lyncxdp.txt $(DESTDIR)$(DOCDIR)/lyncxdp.txt
	install -D -m 0644 $(BUILD)/lyncxdp.8 $(DESTDIR)$(PREFIX)/share/man/man8/lyncxdp.8
	install -D -m 0644 scripts/lyncxdp.bash-completion $(DESTDIR)$(COMPDIR)/lyncxdp

# lyncxdp(8): generated from the real `--help` of the program and of each command, plus the
# hand-written sections (file formats, exit status, files, examples) of scripts/lyncxdp.8.in.
man: $(BUILD)/lyncxdp.8 ## build/lyncxdp.8 from the real --help texts

$(BUILD)/lyncxdp.8: $(BUILD)/lyncxdp scripts/manpage.sh scripts/lyncxdp.8.in
	bash scripts/manpage.sh $(BUILD)/lyncxdp scripts/lyncxdp.8.in >$@.tmp && mv $@.tmp $@

# The Debian package, lyncxdp_VERSION_ARCH.deb in DEBDIR, by default this directory
# (scripts/deb/build.sh: Debian's build flags, `make install PREFIX=/usr`, dpkg-shlibdeps,
# dpkg-gencontrol, dpkg-deb). tests/suite_package.sh builds it with DEBDIR=a scratch directory.
DEBDIR ?= $(CURDIR)
deb: deps ## lyncxdp_VERSION_ARCH.deb here (scripts/deb/build.sh): apt install ./lyncxdp_*.deb
	@bash scripts/deb/build.sh $(DEBDIR)

print-version: ## the version, for scripts
	@echo $(VERSION)

clean: ## remove build/
	rm -rf $(BUILD)

# ---- `make bench`: per-packet cost, throughput, scaling, control plane (scripts/bench.sh).
# Not part of `make test` or CI. BENCH_SECONDS shortens the throughput runs (default 10).
BENCH_BPF := $(BUILD)/bench_pass.bpf.o $(BUILD)/bench_floor.bpf.o $(BUILD)/bench_drop.bpf.o \
             $(BUILD)/bench_txgen.bpf.o

$(BUILD)/bench_%.bpf.o: bpf/bench_%.bpf.c | $(BUILD)
	$(BPF_CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/bench: tests/bench/bench.c $(LIB_OBJS) $(HEADERS)
	$(CC) $(CFLAGS_COMMON) $(CFLAGS) -Iuser -o $@ $< $(LIB_OBJS) $(LDLIBS)

.PHONY: bench
bench: deps all $(BUILD)/bench $(BENCH_BPF) ## per-packet cost, throughput, scaling, control plane
## (scripts/bench.sh; not part of `make test`)
	@BUILD=$(BUILD) bash scripts/bench.sh

# ---- differential test, fuzzers, their regression runner (tests/test_differential.c,
# tests/reference.c, tests/fuzz/). `make fuzz` runs each fuzzer FUZZ_SECONDS (default 60) on
# tests/fuzz/corpus/TARGET plus its own working corpus in $(BUILD)/fuzz/, then the long
# differential run (1,000,000 frames). `make fuzz-smoke` (CI): each fuzzer 10 s, no long run.
# A crash leaves $(BUILD)/fuzz/crash-TARGET-*: copy it to tests/fuzz/corpus/TARGET/ (named
# crash-*) so that test_fuzz_regress replays it in every `make test`.
DIFF_SRCS := tests/test_differential.c tests/reference.c tests/support.c

$(BUILD)/test_differential: $(DIFF_SRCS) tests/reference.h $(TEST_SUPPORT) $(LIB_OBJS) $(HEADERS)
	$(CC) $(CFLAGS_COMMON) $(CFLAGS) -Iuser -o $@ $(DIFF_SRCS) $(LIB_OBJS) $(LDLIBS)

$(BUILD)/san/test_differential: $(DIFF_SRCS) tests/reference.h $(TEST_SUPPORT) $(SAN_OBJS) $(HEADERS)
	$(CC) $(CFLAGS_COMMON) -O1 $(SAN) -Iuser -o $@ $(DIFF_SRCS) $(SAN_OBJS) $(LDLIBS)

FUZZ_TARGETS := matrix site replay
FUZZ_SRCS    := $(FUZZ_TARGETS:%=tests/fuzz/fuzz_%.c) tests/fuzz/fuzz.h
FUZZ_BINS    := $(FUZZ_TARGETS:%=$(BUILD)/fuzz/fuzz_%)
FUZZ_OBJS    := $(LIB_SRCS:user/%.c=$(BUILD)/fuzz/obj/%.o)
FUZZ_SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
FUZZ_SECONDS ?= 60
FUZZ_MAX_LEN ?= 8192

# Built by a pattern rule only: keep them between runs.
.SECONDARY: $(FUZZ_OBJS)

# The regression runner includes the fuzz targets: rebuild it when they change.
$(BUILD)/test_fuzz_regress $(BUILD)/san/test_fuzz_regress: $(FUZZ_SRCS)

$(BUILD)/fuzz/obj/%.o: user/%.c $(HEADERS) | $(BUILD)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) -O1 $(FUZZ_SAN) -fsanitize=fuzzer-no-link -c $< -o $@

$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_SRCS) $(FUZZ_OBJS) $(HEADERS)
	$(CC) $(CFLAGS_COMMON) -O1 $(FUZZ_SAN) -fsanitize=fuzzer -Iuser -o $@ $< $(FUZZ_OBJS) $(LDLIBS)

.PHONY: fuzz fuzz-smoke fuzz-run
fuzz-run: $(FUZZ_BINS) ## each fuzzer FUZZ_SECONDS (default 60), no differential run
	@set -e; for t in $(FUZZ_TARGETS); do \
		mkdir -p $(BUILD)/fuzz/corpus-$$t; \
		log=$(BUILD)/fuzz/fuzz_$$t.log; rc=0; \
		echo "=== fuzz_$$t: $(FUZZ_SECONDS) s (log: $$log)"; \
		$(BUILD)/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -max_len=$(FUZZ_MAX_LEN) \
			-timeout=10 -rss_limit_mb=4096 -close_fd_mask=2 -print_final_stats=1 \
			-artifact_prefix=$(BUILD)/fuzz/crash-$$t- \
			$$(test -f tests/fuzz/$$t.dict && echo -dict=tests/fuzz/$$t.dict) \
			$(BUILD)/fuzz/corpus-$$t tests/fuzz/corpus/$$t >$$log 2>&1 || rc=$$?; \
		grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb)' $$log || true; \
		if [ $$rc -ne 0 ] || ls $(BUILD)/fuzz/crash-$$t-* >/dev/null 2>&1; then \
			tail -n 40 $$log; \
			echo "FAIL fuzz_$$t (exit $$rc): inputs in $(BUILD)/fuzz/crash-$$t-*"; exit 1; \
		fi; \
		echo "PASS fuzz_$$t"; \
	done

fuzz: all $(BUILD)/test_differential ## fuzz-run, then the differential test on 1,000,000 frames
	@$(MAKE) --no-print-directory BUILD=$(BUILD) fuzz-run
	$(BUILD)/test_differential --long

fuzz-smoke: all ## each fuzzer 10 s (CI)
	@$(MAKE) --no-print-directory BUILD=$(BUILD) FUZZ_SECONDS=10 fuzz-run
