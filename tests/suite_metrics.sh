#!/usr/bin/env bash
# Metrics: `stats --prometheus` passes promtool's checks and says what `stats --json` says;
# `lyncxdp exporter` serves it at /metrics (and nothing else); a real Prometheus server scrapes
# the exporter and its HTTP API returns what lyncxdp counted, before and after a reload (the
# counters of rules both tables hold never reset).
#
#   lxmt-c (client)  lxmt-c0 192.0.2.100 ==== lxmt-s0 192.0.2.1  lxmt-s (server, Front End)
#
# The exporter and Prometheus run in the host namespace on 127.0.0.1 (the exporter only reads
# the pins). Tables: tests/data/reload/a.* then b.* (B gives a new rule an id above the
# number of rules, which the metrics must list too).
# shellcheck shell=bash
set -uo pipefail
# shellcheck source=tests/lib.sh
source "$(dirname "$0")/lib.sh"

C=lxmt-c
S=lxmt-s
D=$TOP/tests/data/reload

suite_start lxmt-

check "lyncxdp is built" test -x "$LYNCXDP"
check "promtool is installed" command -v promtool
check "prometheus is installed" command -v prometheus

two_ns_veth $C lxmt-c0 $S lxmt-s0
ns_addr $C lxmt-c0 192.0.2.100/24
ns_addr $S lxmt-s0 192.0.2.1/24

attach_or_stop "attach lxmt-s0" $S lxmt-s0 --matrix "$D/a.matrix" --site "$D/a.site"

# prom_vs_json PROM JSON: "ok" when every per-rule and per-reason series of the Prometheus
# text equals the `stats --json` value (one interface), and each side has every row of the
# other; else what differs.
prom_vs_json() {
	$PY - "$1" "$2" <<'PYEOF'
import json, re, sys
series = {}
for line in open(sys.argv[1]):
    if line.startswith("#") or not line.strip():
        continue
    m = re.match(r'^([a-z_]+)(?:\{(.*)\})? (\S+)$', line.strip())
    if not m:
        print("unparsable line: %r" % line)
        sys.exit()
    labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
    series[(m.group(1), tuple(sorted(labels.items())))] = float(m.group(3))
j = json.load(open(sys.argv[2]))
want = {}
for r in j["services"]:
    lab = {"interface": "lxmt-s0", "role": r["role"], "service": r["service"], "proto": r["proto"],
           "ports": r["ports"], "kind": r["kind"], "direction": r["direction"]}
    key = tuple(sorted(lab.items()))
    want[("lyncxdp_packets_total", key)] = r["packets"]
    want[("lyncxdp_bytes_total", key)] = r["bytes"]
    want[("lyncxdp_remarked_packets_total", key)] = r["remarked_packets"]
    for media, v in r.get("media", {}).items():  # media services: what their packets carried
        mkey = tuple(sorted(dict(lab, media=media).items()))
        want[("lyncxdp_media_packets_total", mkey)] = v["packets"]
        want[("lyncxdp_media_bytes_total", mkey)] = v["bytes"]
    for c, v in (r["conformance"] or {}).items():
        ckey = tuple(sorted(dict(lab, conformance=c).items()))
        want[("lyncxdp_dscp_packets_total", ckey)] = v["packets"]
for reason in ("unclassified", "non_ip", "fragments", "icmp", "other_l4", "malformed"):
    key = tuple(sorted({"interface": "lxmt-s0", "reason": reason}.items()))
    want[("lyncxdp_unmatched_packets_total", key)] = j[reason]["packets"]
    want[("lyncxdp_unmatched_bytes_total", key)] = j[reason]["bytes"]
for action, src in (("dropped", "drops"), ("would_drop", "would_drop")):
    for reason, v in j[src].items():
        key = tuple(sorted({"interface": "lxmt-s0", "reason": reason, "action": action}.items()))
        want[("lyncxdp_policy_packets_total", key)] = v["packets"]
        want[("lyncxdp_policy_bytes_total", key)] = v["bytes"]
problems = []
for k, v in want.items():
    if k not in series:
        problems.append("missing %s{%s}" % (k[0], ",".join("%s=%s" % p for p in k[1])))
    elif series[k] != v:
        problems.append("%s{%s} = %s, json %s" % (k[0], dict(k[1]), series[k], v))
# lyncxdp_flows* (flow-table occupancy) are not in stats --json: suite_enforce compares them with status --json.
for k in series:
    # RTP stream metrics come from the stream table, not stats: tests/suite_media_live.sh
    if k not in want and k[0] not in ("lyncxdp_info", "lyncxdp_attached", "lyncxdp_rules") \
            and not k[0].startswith(("lyncxdp_rtp_", "lyncxdp_flows")):
        problems.append("extra series %s{%s}" % (k[0], dict(k[1])))
print("; ".join(problems[:4]) + (" (+%d more)" % (len(problems) - 4) if len(problems) > 4 else "")
      if problems else "ok")
PYEOF
}

# prom_json_pair N: stats --prometheus into $T/mN.prom and stats --json into $T/sN.json, read
# again (up to 3 times) while they differ: a neighbour discovery or MLD packet of the link may
# arrive between the two reads. Sets PAIR to the comparison.
prom_json_pair() {
	local _
	for _ in 1 2 3; do
		lx $S stats --prometheus >"$T/m$1.prom" || echo "stats --prometheus failed" >"$T/m$1.prom"
		lx $S stats --json >"$T/s$1.json"
		PAIR=$(prom_vs_json "$T/m$1.prom" "$T/s$1.json")
		[ "$PAIR" = ok ] && return 0
		sleep 0.5
	done
}

# ---- known traffic ----
ns_udp_send $C 192.0.2.100 40001 192.0.2.1 50000 32 20 >/dev/null
ns_udp_send $C 192.0.2.100 40002 192.0.2.1 3478 20 >/dev/null
ns_udp_send $C 192.0.2.100 40003 192.0.2.1 9 7 >/dev/null
settle

# ---- stats --prometheus ----
lx $S stats --prometheus >/dev/null
expect_eq "stats --prometheus exits 0" 0 "$?"
prom_json_pair 1
out=$(promtool check metrics <"$T/m1.prom" 2>&1)
rc=$?
expect_eq "promtool check metrics: exit 0, no error or warning" "0 " "$rc $(echo "$out" | tr '\n' ' ' | sed 's/ $//')"
expect_eq "stats --prometheus equals stats --json" ok "$PAIR"
for m in lyncxdp_packets_total lyncxdp_bytes_total lyncxdp_remarked_packets_total \
	lyncxdp_dscp_packets_total lyncxdp_unmatched_packets_total lyncxdp_policy_packets_total; do
	check "$m is a counter with HELP" grep -qx "# TYPE $m counter" "$T/m1.prom"
done
expect_eq "lyncxdp_info: product and checksums as status says" \
	"$(lx $S status --json | json_get '"product=%s matrix_hash=%s site_hash=%s" % (j["product"], j["matrix_hash"], j["site_hash"])')" \
	"$(sed -n 's/^lyncxdp_info{.*product="\([^"]*\)",matrix_hash="\([^"]*\)",site_hash="\([^"]*\)"} 1$/product=\1 matrix_hash=\2 site_hash=\3/p' "$T/m1.prom")"
check "lyncxdp_attached: lxmt-s0 native monitor, tag off" \
	grep -qx 'lyncxdp_attached{interface="lxmt-s0",mode="native",policy="monitor",tag="off"} 1' "$T/m1.prom"
check "audio: 32 packets in" grep -qx 'lyncxdp_packets_total{interface="lxmt-s0",role="frontend",service="media-audio",proto="udp",ports="50000-50019",kind="listen",direction="in"} 32' "$T/m1.prom"
check "audio DSCP conformance: the 32 packets arrived unmarked (zero)" grep -qx 'lyncxdp_dscp_packets_total{interface="lxmt-s0",role="frontend",service="media-audio",proto="udp",ports="50000-50019",kind="listen",direction="in",conformance="zero"} 32' "$T/m1.prom"
check "audio DSCP conformance: none expected" grep -qx 'lyncxdp_dscp_packets_total{interface="lxmt-s0",role="frontend",service="media-audio",proto="udp",ports="50000-50019",kind="listen",direction="in",conformance="expected"} 0' "$T/m1.prom"
check "unclassified: 7 packets" grep -qx 'lyncxdp_unmatched_packets_total{interface="lxmt-s0",reason="unclassified"} 7' "$T/m1.prom"
expect_fail "stats --prometheus takes no --json" "prometheus" lx $S stats --prometheus --json

# lyncxdp-exporter.service is hardened (ProtectSystem=strict and friends): reading the pins must
# not need write access to /sys/fs/bpf.
# shellcheck disable=SC2016
out=$(unshare -m --propagation private bash -c 'mount -o remount,bind,ro /sys/fs/bpf &&
	nsenter --net="/run/netns/$1" "$2" stats --prometheus' _ $S "$LYNCXDP" 2>&1)
expect_eq "stats --prometheus with /sys/fs/bpf mounted read-only: exit 0" 0 "$?"
check "... and the same rule series" diff <(grep '^lyncxdp_packets_total' "$T/m1.prom") \
	<(grep '^lyncxdp_packets_total' <<<"$out")

# ---- the exporter ----
EPORT=$(free_port)
"$LYNCXDP" exporter --listen "127.0.0.1:$EPORT" 2>"$T/exporter.log" &
EXP_PID=$!
NS_PIDS+=("$EXP_PID")
expect_eq "exporter answers on 127.0.0.1:$EPORT" 1 "$(http_up "http://127.0.0.1:$EPORT/metrics")"
res=$(curl -s -o "$T/e1.prom" -w '%{http_code}|%{content_type}' "http://127.0.0.1:$EPORT/metrics")
expect_eq "GET /metrics: 200" 200 "${res%%|*}"
check "GET /metrics: content type text/plain; version=0.0.4 (${res#*|})" \
	grep -q '^text/plain; version=0\.0\.4' <<<"${res#*|}"
# (but for ICMP and non-IP counters: the links' own neighbour discovery and MLD may arrive)
noise='reason="(icmp|non_ip)"'
expect_eq "GET /metrics: the same text as stats --prometheus" \
	"$(grep -Ev "$noise" "$T/m1.prom")" "$(grep -Ev "$noise" "$T/e1.prom")"
out=$(promtool check metrics <"$T/e1.prom" 2>&1)
expect_eq "promtool check metrics on the exporter's answer" "0 " "$? $(echo "$out" | tr '\n' ' ' | sed 's/ $//')"
expect_eq "GET /other: 404" 404 "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$EPORT/other")"
expect_eq "GET /: 404" 404 "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$EPORT/")"
expect_eq "GET /metrics/x: 404" 404 "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$EPORT/metrics/x")"
expect_eq "POST /metrics: 405" 405 "$(curl -s -o /dev/null -w '%{http_code}' -X POST -d x "http://127.0.0.1:$EPORT/metrics")"
expect_eq "HEAD /metrics: 200" 200 "$(curl -s -I -o /dev/null -w '%{http_code}' "http://127.0.0.1:$EPORT/metrics")"
expect_fail "a second exporter on the same port fails" "cannot listen|in use" \
	timeout 5 "$LYNCXDP" exporter --listen "127.0.0.1:$EPORT"
expect_fail "exporter --listen without a port fails" "listen" timeout 5 "$LYNCXDP" exporter --listen 127.0.0.1

# ---- a real Prometheus scraping the exporter ----
PPORT=$(free_port)
mkdir -p "$T/data"
cat >"$T/prom.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: lyncxdp
    static_configs:
      - targets: ['127.0.0.1:$EPORT']
EOF
check "promtool check config" promtool check config "$T/prom.yml"
prom_start "$T/prom.yml"

AUDIO='lyncxdp_packets_total{service="media-audio",direction="in"}'
STUN='lyncxdp_packets_total{role="frontend",service="stun",direction="in"}'
jval() { json_get "$2" <"$1"; }
A1=$(jval "$T/s1.json" '[r["packets"] for r in j["services"] if r["service"] == "media-audio" and r["direction"] == "in"][0]')
S1=$(jval "$T/s1.json" '[r["packets"] for r in j["services"] if r["service"] == "stun" and r["role"] == "frontend" and r["direction"] == "in"][0]')
expect_eq "prometheus scraped the exporter: up == 1" 1 "$(pq_wait 'up{job="lyncxdp"}' 1)"
expect_eq "prometheus: audio packets as lyncxdp counted ($A1)" "$A1" "$(pq_wait "$AUDIO" "$A1")"
expect_eq "prometheus: STUN packets as lyncxdp counted ($S1)" "$S1" "$(pq "$STUN")"
expect_eq "prometheus: audio bytes as lyncxdp counted" \
	"$(jval "$T/s1.json" '[r["bytes"] for r in j["services"] if r["service"] == "media-audio" and r["direction"] == "in"][0]')" \
	"$(pq 'lyncxdp_bytes_total{service="media-audio",direction="in"}')"
expect_eq "prometheus: unclassified packets (7)" 7 "$(pq 'lyncxdp_unmatched_packets_total{reason="unclassified"}')"
expect_eq "prometheus: one lyncxdp_attached series" 1 "$(pq 'count(lyncxdp_attached)')"
expect_eq "prometheus: every rule row as a series" \
	"$(jval "$T/s1.json" 'len(j["services"])')" "$(pq 'count(lyncxdp_packets_total)')"

# ---- reload to table B, more traffic: counters go on from where they were ----
out=$(lx $S reload --matrix "$D/b.matrix" --site "$D/b.site" 2>&1)
expect_eq "reload to table B exits 0 ($out)" 0 "$?"
ns_udp_send $C 192.0.2.100 40004 192.0.2.1 50000 25 20 >/dev/null
ns_udp_send $C 192.0.2.100 40005 192.0.2.1 3478 5 >/dev/null
ns_udp_send $C 192.0.2.100 40006 192.0.2.1 58000 9 >/dev/null # video, only in B
settle
prom_json_pair 2
out=$(promtool check metrics <"$T/m2.prom" 2>&1)
expect_eq "after the reload: promtool check metrics" "0 " "$? $(echo "$out" | tr '\n' ' ' | sed 's/ $//')"
expect_eq "after the reload: stats --prometheus equals stats --json (every rule, ids above the rule count too)" \
	ok "$PAIR"
check "after the reload: the video rule (only in B) is exported with its 9 packets" \
	grep -qx 'lyncxdp_packets_total{interface="lxmt-s0",role="frontend",service="video",proto="udp",ports="58000-58099",kind="listen",direction="in"} 9' "$T/m2.prom"
check "after the reload: only-a is no longer exported" bash -c "! grep -q 'service=\"only-a\"' '$T/m2.prom'"
expect_eq "stats --json: audio grew by exactly 25 across the reload" $((A1 + 25)) \
	"$(jval "$T/s2.json" '[r["packets"] for r in j["services"] if r["service"] == "media-audio" and r["direction"] == "in"][0]')"
expect_eq "prometheus after the reload: audio $((A1 + 25))" $((A1 + 25)) "$(pq_wait "$AUDIO" $((A1 + 25)))"
expect_eq "prometheus after the reload: STUN $((S1 + 5))" $((S1 + 5)) "$(pq_wait "$STUN" $((S1 + 5)))"
expect_eq "prometheus: no counter reset of audio or STUN across the reload" 0 \
	"$(pq 'sum(resets(lyncxdp_packets_total{service=~"media-audio|stun",role="frontend"}[5m]))')"
expect_eq "prometheus: lyncxdp_info has B's matrix checksum" \
	"$(lx $S status --json | json_get 'j["matrix_hash"]')" \
	"$(curl -s -G "http://127.0.0.1:$PPORT/api/v1/query" --data-urlencode 'query=lyncxdp_info' |
		json_get 'j["data"]["result"][0]["metric"]["matrix_hash"]')"
expect_eq "prometheus: video (only in B) $((9))" 9 \
	"$(pq_wait 'lyncxdp_packets_total{service="video",direction="in"}' 9)"

# ---- detached: the exporter says so ----
check "detach --all" lx $S detach --all
res=$(curl -s -o "$T/e3.prom" -w '%{http_code}' "http://127.0.0.1:$EPORT/metrics")
expect_eq "exporter with nothing attached: 200" 200 "$res"
check "exporter with nothing attached: lyncxdp_rules 0" grep -qx 'lyncxdp_rules 0' "$T/e3.prom"
out=$(promtool check metrics <"$T/e3.prom" 2>&1)
expect_eq "exporter with nothing attached: promtool check metrics" "0 " "$? $(echo "$out" | tr '\n' ' ' | sed 's/ $//')"

kill "$PROM_PID" "$EXP_PID" 2>/dev/null
wait "$PROM_PID" "$EXP_PID" 2>/dev/null
check "the exporter logged where it serves" grep -q "serving metrics on http://127.0.0.1:$EPORT/metrics" "$T/exporter.log"
ns_cleanup
expect_clean lxmt-
suite_done
