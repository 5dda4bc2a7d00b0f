# Shared by the shell test suites: results, suite start-up (suite_start), network namespaces
# (scripts/netns.sh), waiting for the counters (settle), cleanup.
# Source it; every suite prints PASS/FAIL lines that tests/run.sh counts.
# shellcheck shell=bash

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LYNCXDP=${LYNCXDP:-$TOP/build/lyncxdp}
MAPS=$TOP/maps
PY=/usr/bin/python3
suite_passed=0
suite_failed=0
suite_skipped=0

pass() { echo "PASS $*"; suite_passed=$((suite_passed + 1)); }
fail() { echo "FAIL $*"; suite_failed=$((suite_failed + 1)); }
# skip NAME: WHY: a check that cannot run here. tests/run.sh counts and lists it in the summary,
# and CI (LYNCXDP_SKIP_FAILS=1) fails on it: never pass a check that did not run.
skip() { echo "SKIP $*"; suite_skipped=$((suite_skipped + 1)); }

# check NAME CMD...: passes when CMD exits 0.
check() {
	local name=$1
	shift
	if "$@" >/tmp/lyncxdp-check.$$ 2>&1; then
		pass "$name"
	else
		fail "$name: $(tail -n 3 /tmp/lyncxdp-check.$$ | tr '\n' ' ')"
	fi
	rm -f /tmp/lyncxdp-check.$$
}

# expect_eq NAME EXPECTED ACTUAL
expect_eq() {
	if [ "$2" = "$3" ]; then pass "$1"; else fail "$1: expected '$2', got '$3'"; fi
}

suite_done() {
	echo "$suite_passed passed, $suite_failed failed$([ "$suite_skipped" -eq 0 ] || echo ", $suite_skipped skipped")"
	[ "$suite_failed" -eq 0 ]
}

# shellcheck source=../scripts/netns.sh
source "$TOP/scripts/netns.sh"

# json_get 'EXPR' < json: evaluate a Python expression on the parsed object `j`.
json_get() {
	$PY -c 'import json,sys; j=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"
}

# ---- live-network suites: captures, stats snapshots, error checks ----

# pcap_tsv PCAP TSV: one line per frame: length, source MAC, TCP source port, UDP source port,
# IPv4 and IPv6 fragment offsets (tshark without reassembly, so only a first fragment shows
# ports; first occurrence, so ICMP errors quoting a header count under their own ports).
pcap_tsv() {
	tshark -r "$1" -o ip.defragment:FALSE -o ipv6.defragment:FALSE \
		-T fields -E separator=/t -E occurrence=f -e frame.len -e eth.src -e tcp.srcport \
		-e udp.srcport -e ip.frag_offset -e ipv6.fraghdr.offset >"$2" 2>/dev/null
}

# pcap_frags TSV MAC: "PACKETS BYTES" of the non-first IP fragments sent by MAC.
pcap_frags() {
	awk -F'\t' -v mac="$2" '$2 == mac && ($5 > 0 || $6 > 0) { n++; b += $1 } END { print n + 0, b + 0 }' "$1"
}

# pcap_flow TSV MAC SPORT: "PACKETS BYTES" of the frames sent by MAC from TCP or UDP port SPORT.
pcap_flow() {
	awk -F'\t' -v mac="$2" -v port="$3" \
		'$2 == mac && ($3 == port || $4 == port) { n++; b += $1 } END { print n + 0, b + 0 }' "$1"
}

# stats_get FILE KEY: "PACKETS BYTES" of one counter of a `stats --json` report. KEY is
# rule:N:in, rule:N:out, unclassified, non_ip, fragments, icmp, other_l4, malformed or total.
stats_get() {
	$PY - "$1" "$2" <<'PYEOF'
import json, sys
j = json.load(open(sys.argv[1]))
key = sys.argv[2]
if key.startswith("rule:"):
    _, rule, d = key.split(":")
    rows = [r for r in j["services"] if r["rule"] == int(rule) and r["direction"] == d]
    print(*(rows[0]["packets"], rows[0]["bytes"]) if rows else ("missing", "missing"))
else:
    print(j[key]["packets"], j[key]["bytes"])
PYEOF
}

# stats_delta BEFORE AFTER KEY PACKETS BYTES [KEY PACKETS BYTES...]: prints "ok" when each KEY
# grew by exactly PACKETS and BYTES between two `stats --json` reports and no other rule row
# (nor the unclassified, fragment, malformed and other-L4 counters) moved; else what differs.
stats_delta() {
	$PY - "$@" <<'PYEOF'
import json, sys
def rows(path):
    j = json.load(open(path))
    d = {}
    for r in j["services"]:
        d["rule:%d:%s" % (r["rule"], r["direction"])] = (
            r["packets"], r["bytes"],
            "%s %s %s %s %s" % (r["role"], r["service"], r["proto"], r["ports"], r["direction"]))
    for k in ("unclassified", "fragments", "malformed", "other_l4"):
        d[k] = (j[k]["packets"], j[k]["bytes"], k)
    return d
before, after = rows(sys.argv[1]), rows(sys.argv[2])
args, keys, problems = sys.argv[3:], [], []
for i in range(0, len(args) - 2, 3):
    key, want_p, want_b = args[i], int(args[i + 1]), int(args[i + 2])
    keys.append(key)
    if key not in after:
        problems.append("no counter %s in the report" % key)
        continue
    dp = after[key][0] - before.get(key, (0, 0))[0]
    db = after[key][1] - before.get(key, (0, 0))[1]
    if (dp, db) != (want_p, want_b):
        problems.append("%s (%s) counted %d packets/%d bytes, expected %d/%d"
                        % (key, after[key][2], dp, db, want_p, want_b))
for k, (p, b, what) in after.items():
    if k not in keys and k in before and (p, b) != before[k][:2]:
        problems.append("%s also moved by %d packets" % (what, p - before[k][0]))
print("; ".join(problems) if problems else "ok")
PYEOF
}

# expect_delta NAME BEFORE AFTER KEY PACKETS BYTES [KEY PACKETS BYTES...]: a check around
# stats_delta.
expect_delta() {
	local name=$1 out
	shift
	out=$(stats_delta "$@" 2>&1)
	if [ "$out" = ok ]; then pass "$name ($4 packets, $5 bytes)"; else fail "$name: $out"; fi
}

# expect_fail NAME REGEX CMD...: CMD must exit non-zero, print nothing on stdout and exactly
# one line on stderr, matching the extended REGEX.
expect_fail() {
	local name=$1 re=$2 rc out err
	shift 2
	out=$("$@" 2>/tmp/lyncxdp-err.$$)
	rc=$?
	err=$(cat /tmp/lyncxdp-err.$$)
	rm -f /tmp/lyncxdp-err.$$
	if [ "$rc" -eq 0 ]; then
		fail "$name: exited 0 (stdout: $(echo "$out" | head -n 2 | tr '\n' ' '))"
	elif [ -n "$out" ]; then
		fail "$name: printed on stdout: $(echo "$out" | head -n 2 | tr '\n' ' ')"
	elif [ "$(printf '%s\n' "$err" | wc -l)" -ne 1 ] || [ -z "$err" ]; then
		fail "$name: expected one line on stderr, got: $(printf '%s' "$err" | tr '\n' '|')"
	elif ! printf '%s\n' "$err" | grep -Eq -- "$re"; then
		fail "$name: stderr '$err' does not match /$re/"
	else
		pass "$name (exit $rc)"
	fi
}

# expect_no_pins NAME: nothing lyncxdp pins exists.
expect_no_pins() {
	if [ -e /sys/fs/bpf/lyncxdp ]; then
		fail "$1: /sys/fs/bpf/lyncxdp exists: $(find /sys/fs/bpf/lyncxdp | tr '\n' ' ')"
	else
		pass "$1"
	fi
}

# expect_clean PREFIX: after ns_cleanup, no pins and no namespace named PREFIX* remain.
expect_clean() {
	expect_no_pins "no pins left under /sys/fs/bpf/lyncxdp"
	local left
	left=$(ip -all netns list 2>/dev/null | awk '{print $1}' | grep "^$1" | tr '\n' ' ')
	expect_eq "no $1* namespace left" "" "$left"
}

# require_clean_start PREFIX: wait for any other live-network run (ns_lock), refuse to run
# over someone else's attach (ns_cleanup would detach it), and drop namespaces PREFIX* that a
# killed earlier run left.
require_clean_start() {
	if [ "$(id -u)" -ne 0 ]; then
		fail "this suite needs root"
		suite_done
		exit 1
	fi
	if ! ns_lock; then
		fail "another live-network run holds /run/lyncxdp-netns.lock"
		suite_done
		exit 1
	fi
	if [ -e /sys/fs/bpf/lyncxdp ]; then
		fail "lyncxdp is already attached on this machine (/sys/fs/bpf/lyncxdp exists): not touching it"
		suite_done
		exit 1
	fi
	ns_stale "$1"
}

# attach_or_stop NAME NS ARGS...: `lyncxdp attach ARGS` inside NS must exit 0 (check NAME);
# else the suite stops there, since nothing after it could pass.
attach_or_stop() {
	local name=$1 ns=$2 out rc
	shift 2
	out=$(lx "$ns" attach "$@" 2>&1)
	rc=$?
	expect_eq "$name exits 0 ($out)" 0 "$rc"
	if [ "$rc" -ne 0 ]; then
		suite_done
		exit 1
	fi
}

# suite_start PREFIX [CLEANUP]: the start of a live-network suite: require_clean_start PREFIX,
# CLEANUP (default ns_cleanup) on exit (ns_traps), and a private temporary directory in $T
# that ns_cleanup removes.
suite_start() {
	require_clean_start "$1"
	ns_traps "${2:-ns_cleanup}"
	ns_tmpdir "${1%-}"
	T=$NS_TMP
}

# settle [STATS ARGS...]: wait (at most 3 s) until the counters of `lyncxdp stats ARGS` in
# namespace $LX_NS (default $S, the server) stop moving: XDP on veth runs in NAPI, a little
# after the sender returns.
settle() {
	local a b _ ns=${LX_NS:-$S}
	a=$(lx "$ns" stats "$@" --json 2>/dev/null | jq -c '[.total, .drops, .would_drop]')
	for _ in $(seq 30); do
		sleep 0.1
		b=$(lx "$ns" stats "$@" --json 2>/dev/null | jq -c '[.total, .drops, .would_drop]')
		[ "$a" = "$b" ] && return 0
		a=$b
	done
}

# snap NAME: settle, then a `stats --json` report of $LX_NS (default $S) in $T/NAME.json;
# every snapshot is kept in SNAPS, in order (for checks that counters never go backwards).
SNAPS=()
snap() {
	settle
	lx "${LX_NS:-$S}" stats --json >"$T/$1.json"
	SNAPS+=("$T/$1.json")
}

# ---- tests/nethelper.py: servers and clients in Python (see its docstring) ----
NH=$TOP/tests/nethelper.py

# h NS ARGS...: a nethelper client (or one-shot command) inside NS, at most 30 s.
h() {
	local ns=$1
	shift
	nsenter --net="/run/netns/$ns" timeout 30 "$PY" "$NH" "$@"
}

# serve NS tcp_server|udp_echo|media ARGS...: a nethelper server in the background inside
# NS, once it listens; its output in $T/serve.NS.WHAT.log. It lives until ns_cleanup stops it
# (at most 15 min: a loaded machine makes a suite take several times its usual 2 min, and a
# server gone before the last check fails it for nothing).
serve() {
	local ns=$1 out
	shift
	out=$T/serve.$ns.$2.log
	ns_bg "$ns" timeout 900 "$PY" -u "$NH" "$@" >"$out" 2>&1
	for _ in $(seq 50); do
		grep -q listening "$out" && return 0
		sleep 0.1
	done
	fail "server $* in $ns did not start: $(cat "$out")"
	return 1
}

# free_port: a free TCP port on 127.0.0.1.
free_port() {
	$PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# http_up URL: "1" once URL answers (at most 5 s), else "0".
http_up() {
	local _
	for _ in $(seq 50); do
		curl -s -o /dev/null "$1" && echo 1 && return 0
		sleep 0.1
	done
	echo 0
}

# ---- a real Prometheus server on 127.0.0.1:$PPORT (suites metrics and fleet) ----

# prom_start CONFIG: prometheus with CONFIG, its data and log in $T; sets PROM_PID
# (ns_cleanup stops it).
prom_start() {
	prometheus --config.file="$1" --storage.tsdb.path="$T/data" \
		--web.listen-address="127.0.0.1:$PPORT" >"$T/prometheus.log" 2>&1 &
	PROM_PID=$!
	NS_PIDS+=("$PROM_PID")
}

# prom_api PATH [CURL ARGS...]: GET /api/v1/PATH of that server.
prom_api() { curl -s -G --max-time 5 "http://127.0.0.1:$PPORT/api/v1/$1" "${@:2}"; }

# pq QUERY: the value of an instant query with exactly one result, "none" without a result,
# "many" with several.
pq() {
	prom_api query --data-urlencode "query=$1" | $PY -c '
import json, sys
try:
    r = json.load(sys.stdin)["data"]["result"]
except Exception:
    print("error"); sys.exit()
print("none" if not r else "many" if len(r) > 1 else r[0]["value"][1])'
}

# pq_wait QUERY VALUE: wait (at most 30 s) until QUERY gives VALUE; prints what it last gave.
pq_wait() {
	local v _
	for _ in $(seq 60); do
		v=$(pq "$1")
		[ "$v" = "$2" ] && break
		sleep 0.5
	done
	echo "$v"
}

# digest FILE: "SHA256 SIZE", to compare what was sent with what arrived.
digest() { echo "$(sha256sum <"$1" | cut -d' ' -f1) $(stat -c %s "$1")"; }
