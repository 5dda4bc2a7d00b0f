#!/usr/bin/env bash
# `make bench`: per-packet cost, throughput, scaling and control-plane figures of lyncxdp,
# against a bare XDP program, xdp-filter (xdp-tools) and nftables. Prints one table and
# writes the same figures to tests/bench/results.md and tests/bench/results.json.
#
# Everything runs in namespaces made here (lxbench-*), with documentation addresses only,
# and is removed on exit, also on failure or Ctrl-C. Never touches the host's interfaces,
# never uses `lyncxdp attach` or /sys/fs/bpf/lyncxdp (the driver loads private instances).
#
# Knobs (environment): BENCH_SECONDS (throughput window, default 10), BENCH_TPUT_RUNS (3),
# BENCH_COST_RUNS (5), BENCH_REPEAT (10000000), BENCH_CPU (the CPU everything measured runs
# on, 1), BENCH_NAPI (softirq: the receiver's NAPI runs in the generator's softirq on
# BENCH_CPU; threaded: its own kthread pinned to BENCH_CPU, generator on BENCH_GEN_CPU, 0),
# BENCH_RT (1: measured processes run SCHED_FIFO so that other work on the machine cannot
# preempt them on BENCH_CPU; the kernel's RT throttling still leaves others 5%),
# BENCH_SECTIONS ("cost tput ctl").
set -uo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
BENCH=$BUILD/bench
TPUT_SECONDS=${BENCH_SECONDS:-10}
TPUT_RUNS=${BENCH_TPUT_RUNS:-3}
COST_RUNS=${BENCH_COST_RUNS:-5}
REPEAT=${BENCH_REPEAT:-10000000}
CPU=${BENCH_CPU:-1}
GEN_CPU=${BENCH_GEN_CPU:-0}
NAPI=${BENCH_NAPI:-softirq}
RT=()
[ "${BENCH_RT:-1}" = 1 ] && command -v chrt >/dev/null && RT=(chrt -f 50)
SECTIONS=${BENCH_SECTIONS:-cost tput ctl}
MATRIX=maps/sfb2015.matrix
SITE=maps/site.example
OUT=tests/bench

NS_COST=lxbench-cost
NS_XF=lxbench-xf
NS_TX=lxbench-tx
NS_RX=lxbench-rx
IF_XF=lxbench-xf0
IF_TX=lxbench-tx
IF_RX=lxbench-rx
IF_CTL=lxbench-c0
PARK=lxbench-p # lxbench-p0, -p1, ...: one per program of the cost section
# The throughput frame: toward a protected Edge address, on a port the Edge does not accept.
DROP_SRC=203.0.113.99:40000
DROP_DST=203.0.113.10:22

log() { echo "bench: $*" >&2; }

for f in "$BENCH" "$BUILD/bench_pass.bpf.o" "$BUILD/bench_floor.bpf.o" "$BUILD/bench_drop.bpf.o" \
	"$BUILD/bench_txgen.bpf.o"; do
	[ -e "$f" ] || { log "missing $f: run 'make bench'"; exit 1; }
done
if [ "$(id -u)" -ne 0 ]; then
	log "needs root (namespaces, XDP)"
	exit 1
fi
if [ "$(nproc)" -lt 2 ]; then
	CPU=0
	GEN_CPU=0
	log "one CPU only: generator and receiver share it"
fi

# One benchmark at a time; namespaces left by a run that was killed outright are stale.
exec 9>/run/lxbench.lock
if ! flock -n 9; then
	log "another 'make bench' is running"
	exit 1
fi

WORK=$(mktemp -d /tmp/lxbench.XXXXXX)
RES=$WORK/records.tsv
BPFFS=$WORK/bpffs
: >"$RES"
NS_MADE=()
T_START=$(date +%s)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

cleanup() {
	set +e
	if mountpoint -q "$BPFFS" 2>/dev/null; then
		ip netns exec "$NS_XF" env LIBXDP_BPFFS="$BPFFS" xdp-filter unload "$IF_XF" >/dev/null 2>&1
		umount "$BPFFS"
	fi
	# Deleting a namespace deletes its veths, and with them whatever XDP program or netdev
	# table was attached to them.
	for ns in "${NS_MADE[@]}"; do
		ip netns del "$ns" 2>/dev/null
	done
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM HUP

ns_add() {
	if ip netns list | grep -qw "^$1"; then
		log "removing stale namespace $1"
		ip netns del "$1"
	fi
	ip netns add "$1" && NS_MADE+=("$1") && ip -n "$1" link set lo up
}

# veth NS A B: a veth pair inside one namespace, both ends up.
veth_in() {
	ip -n "$1" link add "$2" type veth peer name "$3" && ip -n "$1" link set "$2" up &&
		ip -n "$1" link set "$3" up
}

record() { printf 'R\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RES"; }

# What was measured: the tree's commit, and whether the data path differs from it.
record info source commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
record info source modified "$(git status --porcelain -- bpf user 2>/dev/null | awk '{ printf "%s%s", sep, $2; sep = " " }')"

# Site files: the example without `protect` lines (monitor rows: classification alone), and
# that with the Edge protected (enforce rows, throughput, control plane).
MSITE=$WORK/site.monitor
PSITE=$WORK/site.protect
grep -v '^[[:space:]]*protect[[:space:]]' "$SITE" >"$MSITE"
{
	cat "$MSITE"
	echo "protect edge-external edge-internal"
} >"$PSITE"

# ---------------------------------------------------------------------------------------
# xdp-filter, our nearest peer: loaded natively on a veth of its own namespace, with its
# pins in a private bpffs (LIBXDP_BPFFS) and without libxdp's dispatcher, so its program is
# the one attached and the one we run. Policy deny (allow-list): a packet passes when its
# destination port is listed for its transport, the nearest xdp-filter gets to "enforce the
# matrix". Ports: every port of every range any sfb2015 rule names (xdp-filter has no
# ranges and no per-address ports): `xdp-filter port` for each range's first port, then
# `bench xf-ports` copies that value over the rest of the range.
# ---------------------------------------------------------------------------------------
XF_ID=""
XF_WHY=""
xdpfilter_setup() {
	command -v xdp-filter >/dev/null || { XF_WHY="xdp-filter not installed"; return 1; }
	ns_add "$NS_XF" && veth_in "$NS_XF" "$IF_XF" lxbench-xf1 || { XF_WHY="namespace setup failed"; return 1; }
	mkdir -p "$BPFFS" && mount -t bpf bpf "$BPFFS" || { XF_WHY="cannot mount a private bpffs"; return 1; }
	local xf=(ip netns exec "$NS_XF" env LIBXDP_BPFFS="$BPFFS" LIBXDP_SKIP_DISPATCHER=1 xdp-filter)
	"${xf[@]}" load -m native -p deny "$IF_XF" >"$WORK/xf.log" 2>&1 || {
		XF_WHY="xdp-filter load: $(tail -n1 "$WORK/xf.log")"
		return 1
	}
	local n=0 proto lo
	while read -r proto lo; do
		"${xf[@]}" port -p "$proto" "$lo" >>"$WORK/xf.log" 2>&1 || {
			XF_WHY="xdp-filter port -p $proto $lo failed"
			return 1
		}
		n=$((n + 1))
	done < <(awk '$1 == "rule" { print $4, $5 } $1 == "outbound" { print $4, $6 }' "$MATRIX" |
		sed 's/-[0-9]*$//' | sort -u)
	"$BENCH" xf-ports "$MATRIX" "$BPFFS/xdp-filter/filter_ports" 2>"$WORK/xf-ports.log" || {
		XF_WHY="filling the port ranges failed: $(tail -n1 "$WORK/xf-ports.log")"
		return 1
	}
	XF_ID=$(ip netns exec "$NS_XF" bpftool -j net show dev "$IF_XF" | jq -r '.[0].xdp[0].id // empty')
	[ -n "$XF_ID" ] || { XF_WHY="no program id from bpftool net show"; return 1; }
	local name
	name=$(bpftool -j prog show id "$XF_ID" | jq -r .name)
	record info xdp-filter program "$name (id $XF_ID), policy deny, $n xdp-filter port calls, ranges filled"
	log "xdp-filter: $name id $XF_ID"
}

# ---------------------------------------------------------------------------------------
# 1 and 3: per-packet cost (BPF_PROG_TEST_RUN), lyncxdp rows, peers and scaling rows in one
# run, interleaved. Every program is parked (attached natively to an idle veth) so that it
# stays in the kernel's XDP dispatcher: otherwise each test run would add and remove it
# there (two synchronize_rcu, several ms), and only the kernel's whole-ns figure would be
# usable.
# ---------------------------------------------------------------------------------------
section_cost() {
	local rows=() i
	rows+=("bare XDP_PASS=obj:$BUILD/bench_pass.bpf.o")
	rows+=("floor=floor:$BUILD/bench_floor.bpf.o")
	rows+=("lyncxdp monitor=lx:monitor:0:$MATRIX:$MSITE")
	rows+=("lyncxdp monitor+tag=lx:monitor:1:$MATRIX:$MSITE")
	rows+=("lyncxdp enforce=lx:enforce:0:$MATRIX:$PSITE")
	if [ -n "$XF_ID" ]; then
		rows+=("xdp-filter=id:$XF_ID")
	else
		rows+=("xdp-filter=na:$XF_WHY")
	fi
	# Scaling: generated matrices (10 rules the mix needs + padding) with the example site,
	# generated sites (10 base prefixes the mix needs + padding) with sfb2015. Monitor mode.
	for n in 10 1000 10000; do
		if "$BENCH" gen-matrix "$MATRIX" "$n" >"$WORK/rules$n.matrix"; then
			rows+=("rules $n=lx:monitor:0:$WORK/rules$n.matrix:$MSITE")
		else
			rows+=("rules $n=na:gen-matrix failed")
		fi
	done
	for n in 10 1000 100000; do
		if "$BENCH" gen-site "$n" >"$WORK/prefixes$n.site"; then
			rows+=("prefixes $n=lx:monitor:0:$MATRIX:$WORK/prefixes$n.site")
		else
			rows+=("prefixes $n=na:gen-site failed")
		fi
	done
	# The same sizes with the padding around the frames' own addresses (their /16s, the
	# IPv6 /48s of their prefixes): host lookups and the trie walk where the traffic is.
	for n in 10 1000 100000; do
		if "$BENCH" gen-site --inside "$n" >"$WORK/inside$n.site"; then
			rows+=("prefixes-inside $n=lx:monitor:0:$MATRIX:$WORK/inside$n.site")
		else
			rows+=("prefixes-inside $n=na:gen-site --inside failed")
		fi
	done
	ns_add "$NS_COST" || return 1
	for ((i = 0; i < ${#rows[@]}; i++)); do
		veth_in "$NS_COST" "$PARK$i" "lxbench-q$i" || return 1
	done
	local args=()
	for r in "${rows[@]}"; do args+=(--row "$r"); done
	log "per-packet cost: ${#rows[@]} rows x 16 frames x $REPEAT repeats x $COST_RUNS runs on CPU $CPU"
	ip netns exec "$NS_COST" "${RT[@]}" taskset -c "$CPU" "$BENCH" cost --park "$PARK" --repeat "$REPEAT" \
		--runs "$COST_RUNS" --extra "tcp $DROP_SRC $DROP_DST" "${args[@]}" >>"$RES"
}

# ---------------------------------------------------------------------------------------
# 2: throughput on a veth pair between two namespaces. The generator runs in lxbench-tx
# (BPF_PROG_TEST_RUN, live frames, XDP_TX). veth has no IRQ to steer and RPS comes after
# XDP: the receiving veth's NAPI is scheduled by the sender and runs in the NET_RX softirq
# of the sending CPU. By default both are pinned to CPU: one CPU does all the work, and the
# difference between two rows is exactly their difference in receive cost. BENCH_NAPI=
# threaded gives the receiver a NAPI kthread on CPU and the generator GEN_CPU instead; there
# the receiver spends most of its time in the page_pool spinlock returning the generator's
# pages across CPUs, which swamps the programs' differences (see the report).
# Receiver rows take turns within every round.
# ---------------------------------------------------------------------------------------
section_tput() {
	ns_add "$NS_TX" && ns_add "$NS_RX" || return 1
	ip link add "$IF_TX" netns "$NS_TX" type veth peer name "$IF_RX" netns "$NS_RX" || return 1
	# The MACs packet_build writes, so that frames are addressed to the receiver.
	ip -n "$NS_TX" link set "$IF_TX" address 02:00:00:00:00:01 up || return 1
	ip -n "$NS_RX" link set "$IF_RX" address 02:00:00:00:00:02 up || return 1
	"$BENCH" nft --matrix "$MATRIX" --site "$PSITE" --style list --ifname "$IF_RX" \
		>"$WORK/list.nft" 2>"$WORK/list.log"
	"$BENCH" nft --matrix "$MATRIX" --site "$PSITE" --style set --ifname "$IF_RX" \
		>"$WORK/set.nft" 2>"$WORK/set.log"
	record info "nftables list" ruleset "$(sed 's/^bench nft: //' "$WORK/list.log")"
	record info "nftables set" ruleset "$(sed 's/^bench nft: //' "$WORK/set.log")"
	local rows=(--row "bare XDP_DROP=drop" --row "lyncxdp enforce=lyncxdp:$MATRIX:$PSITE")
	if [ -n "$XF_ID" ]; then
		rows+=(--row "xdp-filter=xdpfilter:$XF_ID")
	else
		rows+=(--row "xdp-filter=na:$XF_WHY")
	fi
	if command -v nft >/dev/null; then
		rows+=(--row "nftables list=nft:$WORK/list.nft" --row "nftables set=nft:$WORK/set.nft")
	else
		rows+=(--row "nftables list=na:nft not installed" --row "nftables set=na:nft not installed")
	fi
	local cpus=(--napi softirq --gen-cpu "$CPU" --rx-cpu "$CPU")
	[ "$NAPI" = threaded ] && cpus=(--napi threaded --gen-cpu "$GEN_CPU" --rx-cpu "$CPU")
	log "throughput: 5 rows x $TPUT_RUNS rounds x ${TPUT_SECONDS}s, NAPI $NAPI, ${cpus[*]}"
	ip netns exec "$NS_RX" "${RT[@]}" "$BENCH" tput --rx-if "$IF_RX" --tx-ns "$NS_TX" --tx-if "$IF_TX" \
		--objdir "$BUILD" --seconds "$TPUT_SECONDS" --runs "$TPUT_RUNS" "${cpus[@]}" \
		--src "$DROP_SRC" --dst "$DROP_DST" "${rows[@]}" >>"$RES"
}

# ---------------------------------------------------------------------------------------
# 4: control plane: load + fill + attach of the full sfb2015 matrix with the example site
# (protected Edge), a reload (second load + fill, swapped in atomically), memlock of the
# instance's maps.
# ---------------------------------------------------------------------------------------
section_ctl() {
	ns_add lxbench-ctl && veth_in lxbench-ctl "$IF_CTL" lxbench-c1 || return 1
	log "control plane: attach and reload, 5 times"
	ip netns exec lxbench-ctl "${RT[@]}" taskset -c "$CPU" "$BENCH" ctl --matrix "$MATRIX" --site "$PSITE" --ifname "$IF_CTL" \
		--runs 5 --label sfb2015 >>"$RES"
}

# Each section on its own: a failure is reported as n/a with its reason, and the rest runs.
run_section() {
	local name=$1
	shift
	if ! "$@"; then
		grep -q "^R	$name	" "$RES" || record "$name" "(section)" na "setup failed, see the messages above"
		log "section $name did not complete"
	fi
}

case " $SECTIONS " in *" cost "* | *" tput "*) xdpfilter_setup || log "xdp-filter: $XF_WHY" ;; esac
case " $SECTIONS " in *" cost "*) run_section cost section_cost ;; esac
case " $SECTIONS " in *" tput "*) run_section tput section_tput ;; esac
case " $SECTIONS " in *" ctl "*) run_section ctl section_ctl ;; esac
T_END=$(date +%s)

# ---------------------------------------------------------------------------------------
# Report: records -> JSON (targets computed there) -> table on stdout and Markdown.
# ---------------------------------------------------------------------------------------
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
# The kernel's mitigation lines: on some CPUs (AMD with SRSO "Safe RET", retpolines) every
# call and return costs several times more, which moves every ratio.
MITIGATIONS=$(for f in /sys/devices/system/cpu/vulnerabilities/*; do
	[ -r "$f" ] && printf '%s\t%s\n' "$(basename "$f")" "$(cat "$f")"
done | jq -R -s 'split("\n") | map(select(length > 0) | split("\t") | { (.[0]): .[1] }) | add // {}')
# One results file per CPU model (tests/bench/results/<model>.md|json); the README lists the
# latest of each. results.md/json stay the latest run, whatever the CPU.
CPU_SLUG=$(echo "$CPU_MODEL" | tr 'A-Z' 'a-z' | sed 's/([^)]*)//g; s/[^a-z0-9]\+/-/g; s/^-//; s/-$//')
mkdir -p "$OUT/results"
jq -R -s \
	--argjson mitigations "$MITIGATIONS" \
	--arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --arg kernel "$(uname -r)" \
	--arg cpu "$CPU_MODEL" --argjson ncpu "$(nproc)" --argjson runtime $((T_END - T_START)) \
	--argjson repeat "$REPEAT" --argjson cost_runs "$COST_RUNS" \
	--argjson tput_seconds "$TPUT_SECONDS" --argjson tput_runs "$TPUT_RUNS" \
	--argjson bench_cpu "$CPU" --argjson gen_cpu "$GEN_CPU" --arg napi "$NAPI" \
	--arg rt "${RT[*]:-}" --arg load "$LOAD_BEFORE" \
	-f tests/bench/report.jq \
	"$RES" >"$OUT/results.json" || {
	log "could not build the report; raw records:"
	cat "$RES"
	exit 1
}
jq -r -f tests/bench/table.jq --arg fmt text "$OUT/results.json"
jq -r -f tests/bench/table.jq --arg fmt md "$OUT/results.json" >"$OUT/results.md"
cp "$OUT/results.json" "$OUT/results/${CPU_SLUG:-unknown}.json"
cp "$OUT/results.md" "$OUT/results/${CPU_SLUG:-unknown}.md"
# README: the latest table of every CPU model measured, between its bench markers.
if grep -q '^<!-- bench:begin -->' README.md && grep -q '^<!-- bench:end -->' README.md; then
	for f in "$OUT"/results/*.json; do
		jq -r -f tests/bench/table.jq --arg fmt readme "$f" && echo
	done >"$WORK/readme-bench.md"
	awk -v tables="$WORK/readme-bench.md" '
		/^<!-- bench:end -->/ { skip = 0 }
		!skip { print }
		/^<!-- bench:begin -->/ { while ((getline l < tables) > 0) print l; skip = 1 }' README.md >"$WORK/README.md" &&
		cat "$WORK/README.md" >README.md
fi
log "wrote $OUT/results.json and $OUT/results.md, and as $OUT/results/${CPU_SLUG:-unknown}.*, README's tables ($((T_END - T_START)) s)"
