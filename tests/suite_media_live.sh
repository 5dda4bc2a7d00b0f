#!/usr/bin/env bash
# Media streams live: lyncxdp attached (native XDP on a veth, in namespaces) sees a real RTP
# stream sent over UDP, and `streams`, `streams --json`, `stats --json` (per-kind counters) and
# `stats --prometheus` (stream metrics, promtool-clean, no address or SSRC label) say so.
#
#   lxmd-c (client)  lxmd-c0 192.0.2.130 ==== lxmd-s0 192.0.2.1  lxmd-s (peer)
#
# The client's address holds the `clients` role (tests/sites/media.site): its UDP from 50000
# is client-media, a mixed media service, outbound. The program runs on lxmd-s0's ingress.
# shellcheck shell=bash
set -uo pipefail
# shellcheck source=tests/lib.sh
source "$(dirname "$0")/lib.sh"

C=lxmd-c
S=lxmd-s
suite_start lxmd-

two_ns_veth $C lxmd-c0 $S lxmd-s0
ns_addr $C lxmd-c0 192.0.2.130/24
ns_addr $S lxmd-s0 192.0.2.1/24

attach_or_stop "attach lxmd-s0" $S lxmd-s0 --product sfb2015 --site "$TOP/tests/sites/media.site"

# 300 PCMU packets every 20 ms minus three (sequence 1010, 1011, 1150): 297 sent, 3 lost;
# then STUN (magic cookie) and an RTCP receiver report on the same flow.
nsenter --net=/run/netns/$C timeout 30 $PY - <<'PYEOF' >"$T/sent" 2>&1
import socket, struct, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("192.0.2.130", 50000))
dst = ("192.0.2.1", 40000)
sent = 0
for i in range(300):
    seq = 1000 + i
    if seq in (1010, 1011, 1150):
        continue
    s.sendto(struct.pack("!BBHII", 0x80, 0, seq, i * 160, 0xC0FFEE01) + bytes(160), dst)
    sent += 1
    time.sleep(0.02)
s.sendto(struct.pack("!HHI12x", 1, 0, 0x2112A442), dst)
s.sendto(struct.pack("!BBHI", 0x80, 201, 1, 0xC0FFEE01), dst)
print(sent)
PYEOF
expect_eq "the client sent 297 RTP packets" 297 "$(cat "$T/sent")"
sleep 0.5

lx $S streams --json >"$T/streams.json" 2>"$T/err"
expect_eq "streams --json exits 0 ($(cat "$T/err"))" 0 "$?"
got=$(json_get '[(s["service"], s["direction"], s["media"], s["codec"], s["src"], s["sport"], s["ssrc"], s["packets"], s["lost"], s["expected"]) for s in j["streams"]]' <"$T/streams.json")
expect_eq "one stream: client-media out, audio PCMU, 192.0.2.130:50000, 297 packets, 3 lost of 300" \
	"[('client-media', 'out', 'audio', 'PCMU', '192.0.2.130', 50000, '0xC0FFEE01', 297, 3, 300)]" "$got"
jit=$(json_get '"%.1f" % j["streams"][0]["jitter_ms"] if j["streams"] else "none"' <"$T/streams.json")
check "its jitter is under 100 ms on a veth, however loaded the machine ($jit ms)" $PY -c "import sys; sys.exit(0 if float('$jit') < 100 else 1)"
first=$(json_get 'round(j["streams"][0]["first_seen"]) if j["streams"] else 0' <"$T/streams.json")
check "first_seen is wall-clock time, within a minute of now ($first)" \
	$PY -c "import time, sys; sys.exit(0 if abs(time.time() - $first) < 60 else 1)"
lx $S streams >"$T/streams.txt" 2>&1
sed 's/^/# /' "$T/streams.txt"
check "streams (table) lists it with its verdict" grep -Eq 'client-media +out +audio +PCMU .*C0FFEE01 +297 +1\.00 .* (good|unclassified)' "$T/streams.txt"
lx $S streams lxmd-s0 --interval 0.2 --count 2 >"$T/streams2.txt" 2>&1
expect_eq "streams IFACE --interval --count 2 prints twice" 2 "$(grep -c C0FFEE01 "$T/streams2.txt")"
expect_fail "streams on an interface it is not attached to" 'not attached there' lx $S streams lo
expect_fail "streams --interval 0" 'interval' lx $S streams --interval 0

lx $S stats --json >"$T/stats.json"
media=$(json_get '[(r["service"], r["direction"], r["media"]["audio"]["packets"], r["media"]["other"]["packets"], r["media"]["stun"]["packets"], r["media"]["rtcp"]["packets"]) for r in j["services"] if r["packets"] and "media" in r]' <"$T/stats.json")
expect_eq "stats --json: client-media out carried audio 296 (the first on probation), other 1, stun 1, rtcp 1" \
	"[('client-media', 'out', 296, 1, 1, 1)]" "$media"

lx $S stats --prometheus >"$T/metrics.txt" 2>&1
check "stats --prometheus passes promtool check metrics" promtool check metrics <"$T/metrics.txt"
check "metrics: one client-media audio stream" grep -Eq '^lyncxdp_rtp_streams\{interface="lxmd-s0",role="clients",service="client-media",direction="out",media="audio"\} 1$' "$T/metrics.txt"
check "metrics: its loss in the 0.01 bucket (1%)" grep -Eq '^lyncxdp_rtp_stream_loss_ratio_bucket\{.*media="audio",le="0.01"\} 1$' "$T/metrics.txt"
check "metrics: per-kind packets" grep -Eq '^lyncxdp_media_packets_total\{.*service="client-media".*direction="out",media="audio"\} 296$' "$T/metrics.txt"
leak=$(grep -E '^lyncxdp_(rtp|media)' "$T/metrics.txt" | grep -Eci '192\.0\.2|ssrc|c0ffee' || true)
expect_eq "no address or SSRC in any media metric" 0 "$leak"

lx $S detach lxmd-s0 >/dev/null 2>&1
ns_cleanup
trap - EXIT
expect_clean lxmd-
suite_done
