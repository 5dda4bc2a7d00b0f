#!/usr/bin/env bash
# `lyncxdp top` in a real terminal: tmux runs it at 80x24 (capture-pane reads the screen,
# send-keys types) while real UDP streams cross a veth pair into the attached namespace:
# STUN at about three times the rate of audio, and datagrams to a port the protected Front End
# does not listen on (would-drops). The screen must fit 80x24, list the services sorted by rate
# with their rates and a sparkline, show the would-drops by reason; keys sort, filter, show idle
# rows and quit (exit 0, the terminal restored). Without a terminal it prints what
# `stats --interval` prints.
#
#   lxtop-c (client)  lxtop-c0 192.0.2.100 ==== lxtop-s0 192.0.2.1  lxtop-s (Front End)
# shellcheck shell=bash
set -uo pipefail
# shellcheck source=tests/lib.sh
source "$(dirname "$0")/lib.sh"

C=lxtop-c
S=lxtop-s
D=$TOP/tests/data/reload

TMUX_SOCK=lxtop-$$
cleanup() {
	tmux -L "$TMUX_SOCK" kill-server 2>/dev/null
	ns_cleanup
}
suite_start lxtop- cleanup

check "lyncxdp is built" test -x "$LYNCXDP"
check "tmux is installed" command -v tmux

two_ns_veth $C lxtop-c0 $S lxtop-s0
ns_addr $C lxtop-c0 192.0.2.100/24
ns_addr $S lxtop-s0 192.0.2.1/24
{ cat "$D/a.site"; echo "protect frontend"; } >"$T/top.site"
out=$(lx $S attach lxtop-s0 --matrix "$D/a.matrix" --site "$T/top.site" 2>&1)
expect_eq "attach lxtop-s0 ($out)" 0 $?

# Streams for SECONDS: STUN 3478 at 150/s, audio 50000 at 50/s, port 9 (would-drop) at 10/s.
stream() {
	ns_bg $C timeout 60 "$PY" -c '
import socket, sys, time
end = time.time() + float(sys.argv[1])
socks = []
for sport, dport, rate in ((41001, 3478, 150), (41002, 50000, 50), (41003, 9, 10)):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("192.0.2.100", sport))
    socks.append((s, dport, 1.0 / rate, [time.time()]))
while time.time() < end:
    now = time.time()
    for s, dport, gap, due in socks:
        while due[0] <= now:
            s.sendto(b"\x80" + b"\0" * 171, ("192.0.2.1", dport))
            due[0] += gap
    time.sleep(0.002)
' "$1"
}
stream 40

tmux -L "$TMUX_SOCK" -f /dev/null new-session -d -s top -x 80 -y 24 \
	"env LANG=C.UTF-8 nsenter --net=/run/netns/$S $LYNCXDP top; echo \$? >$T/top.rc; sleep 60"
screen() { tmux -L "$TMUX_SOCK" capture-pane -p -t top; }
keys() { tmux -L "$TMUX_SOCK" send-keys -t top "$@"; }
# screen_wait REGEX: the screen once a line matches (at most 15 s).
screen_wait() {
	local s _
	for _ in $(seq 60); do
		s=$(screen)
		grep -Eq -- "$1" <<<"$s" && break
		sleep 0.25
	done
	printf '%s\n' "$s"
}
# rows SCREEN: the data rows, "NAME IN_PPS IN_BPS OUT_PPS OUT_BPS" each.
rows() { awk '/^ROLE\/SERVICE/ { on = 1; next } /^POLICY REASON/ { on = 0 } on && $1 ~ /\// { print $1, $2, $3, $4, $5 }' <<<"$1"; }

# The sparkline needs a few samples: wait until STUN's shows more than one column.
sleep 5
s=$(screen_wait 'frontend/stun +[0-9.k]+ +[0-9.kM]+ +[0-9.k]+ +[0-9.kM]+ +.*[▁▂▃▄▅▆▇█].*[▁▂▃▄▅▆▇█]')
printf '%s\n' "$s" >"$T/screen1.txt"
check "top: title line names the product and the interface" grep -Eq '^lyncxdp top +test on lxtop-s0 ' <<<"$s"
expect_eq "top: the screen is 24 lines of at most 80 columns" "24 yes" \
	"$(wc -l <<<"$s") $($PY -c 'import sys; print("yes" if all(len(l) <= 80 for l in sys.stdin.read().split("\n")) else "no")' <<<"$s")"
check "top: column header" grep -Eq '^ROLE/SERVICE +IN pkt/s +IN bit/s +OUT pkt/s +OUT bit/s +last minute' <<<"$s"
expect_eq "top: sorted by rate, STUN (150/s) above audio (50/s)" "frontend/stun frontend/media-audio" \
	"$(rows "$s" | head -n 2 | cut -d' ' -f1 | paste -sd ' ')"
read -r _ stun_pps stun_bps _ <<<"$(rows "$s" | grep '^frontend/stun ')"
read -r _ audio_pps _ <<<"$(rows "$s" | grep '^frontend/media-audio ')"
check "top: STUN in packets/s ($stun_pps) is about three times audio's ($audio_pps)" \
	$PY -c "import sys; s, a = float('$stun_pps'), float('$audio_pps'); sys.exit(not (a > 0 and 1.5 < s / a < 6))"
check "top: STUN in bit/s ($stun_bps) is packets/s x 1728 bits (214-byte frames)" \
	$PY -c "
import sys
v = '$stun_bps'; m = {'k': 1e3, 'M': 1e6}.get(v[-1], 1); b = float(v.rstrip('kM')) * m
sys.exit(not (0.8 < b / (float('$stun_pps') * 214 * 8) < 1.25))"
check "top: a sparkline of the last minute beside STUN" \
	grep -Eq '^frontend/stun .*  .*[▁▂▃▄▅▆▇█]' <<<"$s"
check "top: the would-drops of the port-9 datagrams, by reason" \
	grep -Eq '^port +[0-9.]+ +[1-9][0-9.]* +total 0 / [1-9]' <<<"$s"
check "top: policy header" grep -Eq '^POLICY REASON +dropped/s +would-drop/s' <<<"$s"

# ---- keys ----
keys /
keys -l audio
keys Enter
s=$(screen_wait 'filter: audio')
expect_eq "top: / audio Enter: only the audio row" "frontend/media-audio" "$(rows "$s" | cut -d' ' -f1 | paste -sd ' ')"
keys Escape
s=$(screen_wait 'filter: -')
check "top: Esc clears the filter: STUN is back" grep -q '^frontend/stun ' <<<"$s"
keys s s s s
s=$(screen_wait 'sort: name')
expect_eq "top: s four times: sorted by name" "frontend/media-audio frontend/stun" \
	"$(rows "$s" | head -n 2 | cut -d' ' -f1 | paste -sd ' ')"
keys s
s=$(screen_wait 'sort: bit/s ')
check "top: s once more: back to bit/s" grep -q 'sort: bit/s ' <<<"$s"
n_active=$(rows "$s" | wc -l)
keys a
s=$(screen_wait 'all rows')
check "top: a shows rows without traffic too ($(rows "$s" | wc -l) rows, $n_active active)" \
	test "$(rows "$s" | wc -l)" -gt "$n_active"
check "top: ... such as the mediation role's" grep -q '^mediation/' <<<"$s"
keys q
for _ in $(seq 40); do
	[ -s "$T/top.rc" ] && break
	sleep 0.25
done
expect_eq "top: q quits with exit 0" 0 "$(cat "$T/top.rc" 2>/dev/null)"
check "top: the terminal is restored (the alternate screen is gone)" \
	bash -c "! tmux -L '$TMUX_SOCK' capture-pane -p -t top | grep -q 'lyncxdp top'"

# ---- not a terminal: stats --interval ----
out=$(lx $S top --interval 0.5 --count 2 </dev/null | cat)
expect_eq "top | cat: two stats --interval reports" 2 "$(grep -c '^ROLE ' <<<"$out")"
check "top | cat: with rates (PPS, BIT/S)" grep -Eq '^ROLE .* PPS +BIT/S$' <<<"$out"
check "top | cat: the STUN row" grep -Eq '^frontend +stun ' <<<"$out"
expect_fail "top --interval 0 is refused" "interval" lx $S top --interval 0
expect_fail "top with two interfaces is refused" "at most one interface" lx $S top a b

cleanup
expect_clean lxtop-
suite_done
