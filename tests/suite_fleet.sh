#!/usr/bin/env bash
# Fleet metrics: the Prometheus rules and the Grafana dashboard under scripts/, against the real
# thing.
#  - promtool check rules, promtool test rules (tests/prometheus/lyncxdp-rules.test.yml), and
#    mutated copies of the rules that the unit tests must catch (so they can fail).
#  - The dashboard JSON: schema version, unique panel ids and grid, the variables it uses, every
#    query aggregating by bounded labels only.
#  - Two gateways, each a network namespace with its own bpffs (its own lyncxdp state, as two
#    hosts have), each attached and serving its own exporter; one Prometheus scrapes both with
#    `gateway` and `site` target labels and loads scripts/lyncxdp-rules.yml. After real traffic:
#    the recording rules equal the sum of both gateways' `stats --json`, every reason the rules
#    match on is one the exporter emits, forged ICMP errors and off-link router advertisements
#    toward the protected Front End fire their own alerts (and a port probe does not), every
#    dashboard panel's query returns series, a different site file reloaded on one gateway fires
#    the drift alert (pending: `for: 15m`), and a stopped exporter the exporter-down alert.
#
#   lxfl-c1 (client) lxfl-c10 ==== lxfl-g10  lxfl-g1 (gateway 1, Front End 192.0.2.1)
#   lxfl-c2 (client) lxfl-c20 ==== lxfl-g20  lxfl-g2 (gateway 2, Front End 192.0.2.1)
# shellcheck shell=bash
set -uo pipefail
# shellcheck source=tests/lib.sh
source "$(dirname "$0")/lib.sh"

RULES=$TOP/scripts/lyncxdp-rules.yml
UNIT=$TOP/tests/prometheus/lyncxdp-rules.test.yml
DASH=$TOP/scripts/lyncxdp-dashboard.json
D=$TOP/tests/data/reload

suite_start lxfl-

check "lyncxdp is built" test -x "$LYNCXDP"
check "promtool is installed" command -v promtool
check "prometheus is installed" command -v prometheus

# ---- the rules: promtool ----
out=$(promtool check rules "$RULES" 2>&1)
expect_eq "promtool check rules scripts/lyncxdp-rules.yml ($(echo "$out" | tail -n 1 | sed 's/^ *//'))" 0 $?
out=$(cd "$(dirname "$UNIT")" && promtool test rules "$(basename "$UNIT")" 2>&1)
expect_eq "promtool test rules tests/prometheus/lyncxdp-rules.test.yml ($(echo "$out" | grep -c SUCCESS) SUCCESS)" 0 $?
# Each mutation breaks one rule; the unit tests must fail on it.
mkdir -p "$T/mut/scripts" "$T/mut/tests/prometheus"
cp "$UNIT" "$T/mut/tests/prometheus/"
while IFS='@' read -r what from to; do
	sed "s/$from/$to/" "$RULES" >"$T/mut/scripts/lyncxdp-rules.yml"
	if cmp -s "$RULES" "$T/mut/scripts/lyncxdp-rules.yml"; then
		fail "mutation '$what': the pattern is not in the rules any more"
		continue
	fi
	(cd "$T/mut/tests/prometheus" && promtool test rules lyncxdp-rules.test.yml) >"$T/mut.log" 2>&1
	rc=$?
	if [ "$rc" -ne 0 ]; then pass "promtool test rules catches a mutation: $what"; else fail "promtool test rules passes a broken rule: $what"; fi
done <<'MUT'
drift alert needs 3 configurations@(lyncxdp_info{job="lyncxdp"})) > 1@(lyncxdp_info{job="lyncxdp"})) > 2
site sum keeps one gateway@sum by (site, role, service, direction) (lyncxdp_packets_total@max by (site, role, service, direction) (lyncxdp_packets_total
alerts after 1 minute instead of 5@for: 5m@for: 1m
non-conformance threshold 50%@ratio_rate15m > 0.05@ratio_rate15m > 0.5
unsolicited counted as a plain drop@reason!~"spoofed|unsolicited|@reason!~"spoofed|
icmp-unrelated counted as a plain drop@|icmp-unrelated|icmp-offlink"}@|icmp-offlink"}
icmp-offlink counted as a plain drop@|icmp-unrelated|icmp-offlink"}@|icmp-unrelated"}
the forged-ICMP alert matches a port probe too@reason="icmp-unrelated"}\[15m\]@reason=~"icmp-unrelated|port"}[15m]
the off-link alert matches other reasons too@reason="icmp-offlink"}\[15m\]@reason=~"icmp-offlink|spoofed|port"}[15m]
a burst of forged errors must last 5 minutes@reason="icmp-unrelated"}\[15m\])) > 0@reason="icmp-unrelated"}[5m])) > 0\n        for: 5m
a slow rogue router must last 5 minutes@reason="icmp-offlink"}\[15m\])) > 0@reason="icmp-offlink"}[15m])) > 0\n        for: 5m
forged ICMP alerts lose the action@sum by (site, gateway, reason, action) (increase@sum by (site, gateway, reason) (increase
MUT

# ---- the dashboard: structure ----
out=$($PY - "$DASH" <<'PYEOF'
import json, re, sys
d = json.load(open(sys.argv[1]))
problems = []
if d.get("schemaVersion") != 39:
    problems.append("schemaVersion %r, documented 39" % d.get("schemaVersion"))
for k in ("title", "uid", "panels", "templating", "time"):
    if k not in d:
        problems.append("no %s" % k)
variables = {v["name"]: v for v in d["templating"]["list"]}
for name in ("datasource", "site", "gateway"):
    if name not in variables:
        problems.append("no variable %s" % name)
if variables.get("datasource", {}).get("query") != "prometheus":
    problems.append("the datasource variable is not of Prometheus")
ids = [p["id"] for p in d["panels"]]
if len(ids) != len(set(ids)):
    problems.append("panel ids repeat")
bounded = {"site", "gateway", "role", "service", "direction", "reason", "action", "conformance",
           "product", "matrix_hash", "site_hash"}
cells = set()
for p in d["panels"]:
    g = p["gridPos"]
    if g["x"] < 0 or g["w"] < 1 or g["x"] + g["w"] > 24 or g["h"] < 1:
        problems.append("panel %d outside the 24-column grid" % p["id"])
    for x in range(g["x"], g["x"] + g["w"]):
        for y in range(g["y"], g["y"] + g["h"]):
            if (x, y) in cells:
                problems.append("panel %d overlaps another" % p["id"])
                break
            cells.add((x, y))
    if not p.get("title") or not p.get("targets"):
        problems.append("panel %d has no title or no query" % p["id"])
    for t in p.get("targets", []):
        if not t.get("refId") or not t.get("expr"):
            problems.append("panel %d: a target without refId or expr" % p["id"])
        if t.get("datasource", {}).get("uid") != "${datasource}":
            problems.append("panel %d: target not on ${datasource}" % p["id"])
        for v in re.findall(r"\$(\w+)", t["expr"]):
            if v not in variables and not v.startswith("__"):
                problems.append("panel %d uses undefined $%s" % (p["id"], v))
        for labels in re.findall(r"\bby \(([^)]*)\)", t["expr"]):
            extra = {l.strip() for l in labels.split(",")} - bounded
            if extra:
                problems.append("panel %d aggregates by unbounded %s" % (p["id"], sorted(extra)))
        if "rate(" in t["expr"] and not re.search(r"\bsum\b|\btopk\b", t["expr"]):
            problems.append("panel %d: a rate per raw series (interface, ports labels)" % p["id"])
print("; ".join(problems) if problems else "ok %d panels" % len(d["panels"]))
PYEOF
)
check "dashboard JSON: schema 39, variables datasource/site/gateway, grid, bounded labels ($out)" test "${out%% *}" = ok
PANELS=$(json_get 'len(j["panels"])' <"$DASH")

# ---- two gateways ----
# Table A and site A of the reload suite, plus what the forged ICMP below needs: the Front End
# protected (monitor: would-drops only) with an IPv6 address too, router advertisements admitted.
{ cat "$D/a.matrix"; echo 'icmp ipv6 134 "Router advertisement"'; } >"$T/fleet.matrix"
{ cat "$D/a.site"; echo "frontend 2001:db8::1"; echo "protect frontend"; } >"$T/fleet.site"
declare -A HOLDER EPORT EXP
for g in 1 2; do
	two_ns_veth lxfl-c$g lxfl-c${g}0 lxfl-g$g lxfl-g${g}0
	ns_addr lxfl-c$g lxfl-c${g}0 192.0.2.100/24
	ns_addr lxfl-g$g lxfl-g${g}0 192.0.2.1/24
	# The gateway's own bpffs, held by a process of its own mount namespace: two hosts.
	unshare -m --propagation private bash -c 'mount -t bpf bpf /sys/fs/bpf && exec sleep 900' &
	HOLDER[$g]=$!
	NS_PIDS+=("${HOLDER[$g]}")
	for _ in $(seq 50); do
		nsenter --mount="/proc/${HOLDER[$g]}/ns/mnt" mountpoint -q /sys/fs/bpf 2>/dev/null && break
		sleep 0.1
	done
done
# gw G ARGS...: lyncxdp on gateway G (its bpffs, its network namespace).
gw() {
	local g=$1
	shift
	nsenter --mount="/proc/${HOLDER[$g]}/ns/mnt" --net="/run/netns/lxfl-g$g" "$LYNCXDP" "$@"
}
for g in 1 2; do
	out=$(gw $g attach lxfl-g${g}0 --matrix "$T/fleet.matrix" --site "$T/fleet.site" 2>&1)
	expect_eq "gateway $g: attach lxfl-g${g}0 ($out)" 0 $?
done
expect_eq "the gateways have separate state: gateway 1 sees only its own interface" "lxfl-g10" \
	"$(gw 1 status --json | json_get '",".join(i["name"] for i in j["interfaces"])')"
for g in 1 2; do
	EPORT[$g]=$(free_port)
	nsenter --mount="/proc/${HOLDER[$g]}/ns/mnt" "$LYNCXDP" exporter --listen "127.0.0.1:${EPORT[$g]}" \
		2>"$T/exporter$g.log" &
	EXP[$g]=$!
	NS_PIDS+=("${EXP[$g]}")
done
for g in 1 2; do
	expect_eq "gateway $g: exporter answers on 127.0.0.1:${EPORT[$g]}" 1 \
		"$(http_up "http://127.0.0.1:${EPORT[$g]}/metrics")"
done

# ---- one Prometheus, both gateways, the rules ----
PPORT=$(free_port)
mkdir -p "$T/data"
cat >"$T/prom.yml" <<YML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $RULES
scrape_configs:
  - job_name: lyncxdp
    static_configs:
      - targets: ['127.0.0.1:${EPORT[1]}']
        labels: {gateway: gw1, site: hq}
      - targets: ['127.0.0.1:${EPORT[2]}']
        labels: {gateway: gw2, site: hq}
YML
check "promtool check config (with the rules)" promtool check config "$T/prom.yml"
prom_start "$T/prom.yml"

expect_eq "prometheus scrapes both gateways: sum(up) == 2" 2 "$(pq_wait 'sum(up{job="lyncxdp"})' 2)"
expect_eq "no drift while both gateways run the same files" none \
	"$(pq 'count by (site) (count by (site, product, matrix_hash, site_hash) (lyncxdp_info)) > 1')"

# ---- real traffic: audio (DSCP 46, 0 and 10), STUN, unclassified ----
udp() { h "$1" udp_send "${@:2}" >/dev/null; }
udp lxfl-c1 192.0.2.100 40001 192.0.2.1 50000 40 0 0xb8,0xb8,0x00,0x28
udp lxfl-c1 192.0.2.100 40002 192.0.2.1 3478 12 0
udp lxfl-c2 192.0.2.100 40003 192.0.2.1 50001 25 0 0xb8
udp lxfl-c2 192.0.2.100 40004 192.0.2.1 3478 7 0
udp lxfl-c2 192.0.2.100 40005 192.0.2.1 9 3 0
sleep 1
for g in 1 2; do gw $g stats --json >"$T/s$g.json"; done
# want: sum of both gateways' stats --json per (role, service, direction); got: the recording
# rule's series, all of them.
compare_rule() {
	$PY - "$T/s1.json" "$T/s2.json" "$1" "$PPORT" <<'PYEOF'
import json, sys, urllib.parse, urllib.request
want = {}
for path in sys.argv[1:3]:
    for r in json.load(open(path))["services"]:
        k = (r["role"], r["service"], r["direction"])
        want[k] = want.get(k, 0) + r["packets"]
url = "http://127.0.0.1:%s/api/v1/query?query=%s" % (sys.argv[4], urllib.parse.quote(sys.argv[3]))
res = json.load(urllib.request.urlopen(url, timeout=5))["data"]["result"]
got = {(s["metric"]["role"], s["metric"]["service"], s["metric"]["direction"]): int(float(s["value"][1])) for s in res}
if got == want:
    print("ok %d series, %d packets" % (len(got), sum(got.values())))
else:
    diff = ["%s: rule %s, stats %s" % ("/".join(k), got.get(k), want.get(k)) for k in sorted(set(got) | set(want)) if got.get(k) != want.get(k)]
    print("; ".join(diff[:4]))
PYEOF
}
for rule in 'role_service_direction:lyncxdp_packets:sum' 'site_role_service_direction:lyncxdp_packets:sum{site="hq"}'; do
	for _ in $(seq 40); do
		out=$(compare_rule "$rule")
		[ "${out%% *}" = ok ] && break
		sleep 0.5
	done
	check "recording rule $rule equals the sum of both gateways' stats --json ($out)" test "${out%% *}" = ok
done
expect_eq "the sum holds real traffic: audio in, both gateways (40 + 25)" 65 \
	"$(pq 'role_service_direction:lyncxdp_packets:sum{service="media-audio",direction="in"}')"
check "recording rule role_service_direction:lyncxdp_packets:rate5m: audio in above 0" \
	test "$(pq 'role_service_direction:lyncxdp_packets:rate5m{service="media-audio",direction="in"} > 0')" != none
expect_eq "DSCP conformance summed over gateways: audio expected (20 + 25)" 45 \
	"$(pq_wait 'sum(lyncxdp_dscp_packets_total{service="media-audio",conformance="expected"})' 45)"

# ---- drop reasons: the rules name only reasons the exporter emits ----
# (the unit tests use the rules' own spelling; this catches `icmp_unrelated` for `icmp-unrelated`)
named=$(grep -oE 'reason(=|=~|!~)"[^"]*"' "$RULES" | sed 's/^[^"]*"//; s/"$//' | tr '|' '\n' | sort -u)
emitted=$(prom_api label/reason/values --data-urlencode 'match[]=lyncxdp_policy_packets_total{job="lyncxdp"}' |
	json_get '"\n".join(sorted(j["data"]))')
expect_eq "every drop reason the rules match on is a reason label of lyncxdp_policy_packets_total ($(tr '\n' ' ' <<<"$named" | sed 's/ $//'))" \
	"" "$(comm -23 <(echo "$named") <(echo "$emitted") | tr '\n' ' ')"
check "... and the rules name icmp-unrelated and icmp-offlink" \
	test "$(grep -cxE 'icmp-unrelated|icmp-offlink' <<<"$named")" = 2

# ---- forged ICMP toward the protected Front End: alerts of their own ----
# To gateway 1, 3 "fragmentation needed" quoting a connection 192.0.2.1 never had; to gateway 2,
# 2 router advertisements from a global address (forged from afar). Both in monitor mode, so
# would-drops. Gateway 2 also would-drop 3 packets to port 9 above (reason port): no such alert.
h lxfl-c1 icmp_error lxfl-c10 "$(ns_mac lxfl-g1 lxfl-g10)" 192.0.2.100 192.0.2.1 \
	192.0.2.1 40999 198.51.100.7 443 3
h lxfl-c2 router_adv lxfl-c20 "$(ns_mac lxfl-g2 lxfl-g20)" 2001:db8::100 2001:db8::1 255 2
for v in 'gw1|icmp-unrelated|3' 'gw2|icmp-offlink|2' 'gw2|port|3'; do
	IFS='|' read -r g reason want <<<"$v"
	expect_eq "$g: the exporter counts $want would-drop $reason" "$want" \
		"$(pq_wait "sum(lyncxdp_policy_packets_total{gateway=\"$g\",reason=\"$reason\",action=\"would_drop\"})" "$want")"
done
icmp_alerts() {
	prom_api alerts | $PY -c '
import json, sys
a = json.load(sys.stdin)["data"]["alerts"]
print(" ".join(sorted("%s/%s/%s/%s/%s" % (x["labels"]["alertname"], x["labels"].get("gateway"),
      x["labels"].get("reason"), x["labels"].get("action"), x["state"])
      for x in a if x["labels"]["alertname"].startswith("LyncxdpIcmp")
      or x["labels"].get("reason") in ("port", "icmp-unrelated", "icmp-offlink"))))'
}
want="LyncxdpIcmpOffLink/gw2/icmp-offlink/would_drop/firing LyncxdpIcmpUnrelated/gw1/icmp-unrelated/would_drop/firing"
for _ in $(seq 40); do
	got=$(icmp_alerts)
	[ "$got" = "$want" ] && break
	sleep 0.5
done
expect_eq "forged ICMP: LyncxdpIcmpUnrelated for gateway 1, LyncxdpIcmpOffLink for gateway 2, firing at once; nothing for the port would-drops" \
	"$want" "$got"

# ---- drift: gateway 2 reloads a different site file ----
{ cat "$T/fleet.site"; echo "# gateway 2's copy, edited by hand"; } >"$T/a-gw2.site"
out=$(gw 2 reload --site "$T/a-gw2.site" 2>&1)
expect_eq "gateway 2: reload with a different site file ($out)" 0 $?
expect_eq "lyncxdp_info: two configurations in site hq" 2 \
	"$(pq_wait 'count(count by (site, product, matrix_hash, site_hash) (lyncxdp_info{site="hq"}))' 2)"
alert_state() {
	prom_api alerts | $PY -c '
import json, sys
a = [x for x in json.load(sys.stdin)["data"]["alerts"] if x["labels"]["alertname"] == sys.argv[1]
     and all(x["labels"].get(k) == v for k, v in (kv.split("=") for kv in sys.argv[2:]))]
print(",".join(sorted(x["state"] for x in a)) or "none")' "$@"
}
alert_wait() {
	local v _
	for _ in $(seq 40); do
		v=$(alert_state "$@")
		[ "$v" != none ] && break
		sleep 0.5
	done
	echo "$v"
}
state=$(alert_wait LyncxdpConfigDrift site=hq)
check "the drift alert LyncxdpConfigDrift{site=hq} is raised (state: $state; fires after for: 15m)" \
	grep -Eqx 'pending|firing' <<<"$state"

# ---- every dashboard panel's query returns series ----
# Variables as Grafana substitutes them: site and gateway "All" (.*) or one value, the rate
# interval one minute.
panel_queries() {
	$PY - "$DASH" "$1" "$2" <<'PYEOF'
import json, sys
d = json.load(open(sys.argv[1]))
for p in d["panels"]:
    for t in p["targets"]:
        e = t["expr"].replace("$__rate_interval", "1m").replace("$site", sys.argv[2]).replace("$gateway", sys.argv[3])
        print("%d\t%s\t%s" % (p["id"], p["title"], e))
PYEOF
}
sleep 2
for sel in '.*|.*' 'hq|gw1'; do
	n=0
	while IFS=$'\t' read -r id title expr; do
		cnt=$(prom_api query --data-urlencode "query=$expr" | json_get 'len(j["data"]["result"]) if j.get("status") == "success" else "error: %s" % j.get("error")')
		if [ "$cnt" -gt 0 ] 2>/dev/null; then
			pass "dashboard panel $id '$title' (site=${sel%|*} gateway=${sel#*|}): $cnt series"
		else
			fail "dashboard panel $id '$title' (site=${sel%|*} gateway=${sel#*|}): $cnt series for $expr"
		fi
		n=$((n + 1))
	done < <(panel_queries "${sel%|*}" "${sel#*|}")
	expect_eq "every panel's query was run (site=${sel%|*})" "$PANELS" "$n"
done
for v in 'site|lyncxdp_info|hq' 'gateway|lyncxdp_info{site=~"hq"}|gw1,gw2'; do
	IFS='|' read -r label match want <<<"$v"
	expect_eq "dashboard variable $label: label_values($match, $label)" "$want" \
		"$(prom_api "label/$label/values" --data-urlencode "match[]=$match" | json_get '",".join(sorted(j["data"]))')"
done

# ---- an exporter stops ----
kill "${EXP[2]}" 2>/dev/null
wait "${EXP[2]}" 2>/dev/null
expect_eq "gateway 2's exporter stopped: up{gateway=gw2} == 0" 0 "$(pq_wait 'up{job="lyncxdp",gateway="gw2"}' 0)"
state=$(alert_wait LyncxdpExporterDown gateway=gw2)
check "LyncxdpExporterDown{gateway=gw2} is raised (state: $state)" grep -Eqx 'pending|firing' <<<"$state"
expect_eq "... and not for gateway 1" none "$(alert_state LyncxdpExporterDown gateway=gw1)"

kill "$PROM_PID" "${EXP[1]}" 2>/dev/null
wait "$PROM_PID" "${EXP[1]}" 2>/dev/null
for g in 1 2; do
	out=$(gw $g detach --all 2>&1)
	expect_eq "gateway $g: detach --all ($out)" 0 $?
done
ns_cleanup
expect_clean lxfl-
suite_done
