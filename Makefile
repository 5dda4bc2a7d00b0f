# lyncxdp: build, demo, tests. `make help` lists the targets.
.DEFAULT_GOAL := all

BUILD     ?= build
CC        := clang
BPF_CLANG := clang
BPFTOOL   ?= bpftool
MULTIARCH := $(shell gcc -print-multiarch 2>/dev/null)
VERSION   := 0.1.0

CFLAGS_COMMON := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g -I$(BUILD) -Ibpf \
                 -DLYNCXDP_VERSION='"$(VERSION)"'
CFLAGS  ?= -O2
LDLIBS  := -lbpf -lelf -lz -lpcap -lmicrohttpd
SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_x86 -I/usr/include/$(MULTIARCH) -Ibpf \
              -Wall -Wextra -Werror

# Every module but the CLI's main: the tests link against the same objects.
LIB_SRCS := $(filter-out user/lyncxdp.c,$(wildcard user/*.c))
LIB_OBJS := $(LIB_SRCS:user/%.c=$(BUILD)/obj/%.o)
SAN_OBJS := $(LIB_SRCS:user/%.c=$(BUILD)/san/%.o)
TEST_BINS := $(BUILD)/test_parsers $(BUILD)/test_datapath $(BUILD)/test_policy
HEADERS  := $(wildcard user/*.h) bpf/lyncxdp_kern_user.h $(BUILD)/lyncxdp.skel.h

.PHONY: all deps demo test test-unit format format-check install clean help

all: $(BUILD)/lyncxdp

help:
	@echo "make            build build/lyncxdp"
	@echo "make deps       install build and test dependencies (Debian 12, root)"
	@echo "make demo       two namespaces on a veth pair, attach, Lync-shaped traffic, stats"
	@echo "make test       every test, ending with 'N passed, N failed'"
	@echo "make install    binary to /usr/local/sbin, matrices to /usr/local/share/lyncxdp"
	@echo "make format     clang-format the C sources"

deps:
	@bash scripts/install-deps.sh

$(BUILD)/lyncxdp.bpf.o: bpf/lyncxdp.bpf.c bpf/lyncxdp_kern_user.h | $(BUILD)
	$(BPF_CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/lyncxdp.skel.h: $(BUILD)/lyncxdp.bpf.o
	$(BPFTOOL) gen skeleton $< name lyncxdp_bpf > $@.tmp && mv $@.tmp $@

$(BUILD)/obj/%.o: user/%.c $(HEADERS) | $(BUILD)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) $(CFLAGS) -c $< -o $@

$(BUILD)/san/%.o: user/%.c $(HEADERS) | $(BUILD)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) -O1 $(SAN) -c $< -o $@

$(BUILD)/lyncxdp: $(BUILD)/obj/lyncxdp.o $(LIB_OBJS)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/san/lyncxdp: $(BUILD)/san/lyncxdp.o $(SAN_OBJS)
	$(CC) $(SAN) -o $@ $^ $(LDLIBS)

$(BUILD)/test_%: tests/test_%.c tests/check.h $(LIB_OBJS) $(HEADERS)
	$(CC) $(CFLAGS_COMMON) $(CFLAGS) -Iuser -o $@ $< $(LIB_OBJS) $(LDLIBS)

$(BUILD)/san/test_%: tests/test_%.c tests/check.h $(SAN_OBJS) $(HEADERS)
	$(CC) $(CFLAGS_COMMON) -O1 $(SAN) -Iuser -o $@ $< $(SAN_OBJS) $(LDLIBS)

$(BUILD):
	@mkdir -p $(BUILD)

demo: deps all
	@bash scripts/demo.sh

# Unit and data-path tests (plain and under ASan/UBSan), then the shell suites.
test: deps all $(TEST_BINS) $(TEST_BINS:$(BUILD)/%=$(BUILD)/san/%) $(BUILD)/san/lyncxdp
	@bash tests/run.sh

format:
	clang-format -i bpf/*.c bpf/*.h user/*.c user/*.h tests/*.c tests/*.h

format-check:
	clang-format --dry-run --Werror bpf/*.c bpf/*.h user/*.c user/*.h tests/*.c tests/*.h

install: all
	install -D -m 0755 $(BUILD)/lyncxdp $(DESTDIR)/usr/local/sbin/lyncxdp
	install -d $(DESTDIR)/usr/local/share/lyncxdp/maps
	install -m 0644 maps/*.matrix maps/site.example maps/README.md \
		$(DESTDIR)/usr/local/share/lyncxdp/maps/

clean:
	rm -rf $(BUILD)

# ---- `make bench`: per-packet cost, throughput, scaling, control plane (scripts/bench.sh).
# Not part of `make test` or CI. BENCH_SECONDS shortens the throughput runs (default 10).
BENCH_BPF := $(BUILD)/bench_pass.bpf.o $(BUILD)/bench_drop.bpf.o $(BUILD)/bench_txgen.bpf.o

$(BUILD)/bench_%.bpf.o: bpf/bench_%.bpf.c | $(BUILD)
	$(BPF_CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/bench: tests/bench/bench.c $(LIB_OBJS) $(HEADERS)
	$(CC) $(CFLAGS_COMMON) $(CFLAGS) -Iuser -o $@ $< $(LIB_OBJS) $(LDLIBS)

.PHONY: bench
bench: deps all $(BUILD)/bench $(BENCH_BPF)
	@BUILD=$(BUILD) bash scripts/bench.sh
