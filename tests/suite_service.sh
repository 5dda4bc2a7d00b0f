#!/usr/bin/env bash
# Installation and the service wrapper: `make install DESTDIR=...` puts every file where the
# units expect it; systemd-analyze verifies the units; scripts/lyncxdp-service, with a
# configuration of its own, attaches two interfaces of a namespace as configured (start),
# applies a changed site, policy and tagging without detaching (reload), detaches everything
# (stop), and refuses bad configurations, leaving nothing attached.
#
#   lxsv-c  lxsv-c0 ==== lxsv-s0  lxsv-s   (the wrapper runs in lxsv-s)
#           lxsv-c1 ==== lxsv-s1
# shellcheck shell=bash
set -uo pipefail
# shellcheck source=tests/lib.sh
source "$(dirname "$0")/lib.sh"

C=lxsv-c
S=lxsv-s
D=$TOP/tests/data/reload
WRAPPER=$TOP/scripts/lyncxdp-service

suite_start lxsv-

check "lyncxdp is built" test -x "$LYNCXDP"

# ---- make install DESTDIR=... ----
DEST=$T/dest
BUILD_DIR=$(dirname "$LYNCXDP")
out=$(make -s -C "$TOP" install DESTDIR="$DEST" BUILD="$BUILD_DIR" 2>&1)
expect_eq "make install DESTDIR=... exits 0 ($(echo "$out" | tail -n 2 | tr '\n' ' '))" 0 "$?"
for f in usr/local/sbin/lyncxdp:755 usr/local/lib/lyncxdp/lyncxdp-service:755 \
	etc/systemd/system/lyncxdp.service:644 etc/systemd/system/lyncxdp-exporter.service:644 \
	etc/lyncxdp/lyncxdp.conf.example:644 usr/local/share/doc/lyncxdp/README.md:644 \
	usr/local/share/doc/lyncxdp/lyncxdp.txt:644 usr/local/share/lyncxdp/maps/site.example:644 \
	usr/local/share/lyncxdp/maps/README.md:644 usr/local/share/lyncxdp/maps/qos.profiles:644 \
	usr/local/share/lyncxdp/prometheus/lyncxdp-rules.yml:644 \
	usr/local/share/lyncxdp/grafana/lyncxdp-dashboard.json:644; do
	expect_eq "installed ${f%:*} (mode ${f#*:})" "${f#*:}" "$(stat -c %a "$DEST/${f%:*}" 2>&1)"
done
for p in ocs2007r2 lync2010 lync2013 sfb2015; do
	check "installed matrix $p identical to maps/$p.matrix" cmp "$MAPS/$p.matrix" "$DEST/usr/local/share/lyncxdp/maps/$p.matrix"
done
check "no lyncxdp.conf is installed (only the example)" test ! -e "$DEST/etc/lyncxdp/lyncxdp.conf"
check "the installed binary runs" "$DEST/usr/local/sbin/lyncxdp" --help
check "the installed binary checks the installed site.example against sfb2015" \
	"$DEST/usr/local/sbin/lyncxdp" check --matrix "$DEST/usr/local/share/lyncxdp/maps/sfb2015.matrix" \
	--site "$DEST/usr/local/share/lyncxdp/maps/site.example"
doc=$DEST/usr/local/share/doc/lyncxdp/lyncxdp.txt
missing=""
for c in attach reload set detach status stats exporter streams drops explain replay check top; do
	grep -q "^Usage: lyncxdp $c" "$doc" || missing="$missing $c"
done
expect_eq "lyncxdp.txt holds every command's --help" "" "$missing"
check "lyncxdp.txt holds the wrapper's help" grep -q 'lyncxdp-service start|reload|stop|status|check' "$doc"
expect_eq "the units name the installed paths" \
	"/usr/local/lib/lyncxdp/lyncxdp-service /usr/local/sbin/lyncxdp" \
	"$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$DEST/etc/systemd/system/lyncxdp.service" "$DEST/etc/systemd/system/lyncxdp-exporter.service" | tr '\n' ' ' | sed 's/ $//')"
out=$(make -s -C "$TOP" install DESTDIR="$DEST" BUILD="$BUILD_DIR" 2>&1)
expect_eq "make install a second time (idempotent) exits 0" 0 "$?"
out=$(make -s -C "$TOP" install DESTDIR="$T/dest2" BUILD="$BUILD_DIR" UNITDIR=/lib/systemd/system 2>&1)
check "UNITDIR=/lib/systemd/system puts the units there" \
	test -f "$T/dest2/lib/systemd/system/lyncxdp.service" -a ! -e "$T/dest2/etc/systemd"

# ---- systemd-analyze verify, with the staged /usr/local mounted over the real one in a private
# mount namespace (verify checks that every Exec binary exists) ----
if ! command -v systemd-analyze >/dev/null; then
	skip "systemd-analyze verify: systemd-analyze is not installed"
elif ! unshare -m --propagation private true 2>/dev/null; then
	skip "systemd-analyze verify: cannot make a private mount namespace here"
else
	for u in lyncxdp.service lyncxdp-exporter.service; do
		# shellcheck disable=SC2016
		out=$(unshare -m --propagation private bash -c 'mount --bind "$1/usr/local" /usr/local &&
			systemd-analyze verify "$1/etc/systemd/system/$2" 2>&1' _ "$DEST" "$u")
		rc=$?
		if [ "$rc" -ne 0 ] && grep -qiE 'system has not been booted|failed to connect|sysinit.target' <<<"$out"; then
			skip "systemd-analyze verify $u: does not work in this container ($out)"
		else
			expect_eq "systemd-analyze verify $u: exit 0, no warning" "0 " "$rc $(echo "$out" | tr '\n' ' ' | sed 's/ $//')"
		fi
	done
	# The check itself catches a broken unit.
	sed 's/^Type=oneshot/Type=oneshoot/' "$DEST/etc/systemd/system/lyncxdp.service" >"$T/broken.service"
	# shellcheck disable=SC2016
	out=$(unshare -m --propagation private bash -c 'mount --bind "$1/usr/local" /usr/local &&
		systemd-analyze verify "$2" 2>&1' _ "$DEST" "$T/broken.service")
	check "systemd-analyze verify reports a misspelt Type= (the check can fail)" grep -q "oneshoot" <<<"$out"
fi
for k in 'Type=oneshot' 'RemainAfterExit=yes' 'After=network-online.target' \
	'ExecReload=/usr/local/lib/lyncxdp/lyncxdp-service reload' \
	'ExecStop=/usr/local/lib/lyncxdp/lyncxdp-service stop'; do
	check "lyncxdp.service: $k" grep -qx "$k" "$DEST/etc/systemd/system/lyncxdp.service"
done
check "lyncxdp.service: the capability bounding set keeps CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN" \
	grep -Eq '^CapabilityBoundingSet=.*CAP_BPF.*CAP_NET_ADMIN.*CAP_SYS_ADMIN' "$DEST/etc/systemd/system/lyncxdp.service"
check "lyncxdp-exporter.service: EnvironmentFile and \${EXPORTER_LISTEN}" \
	grep -q 'EnvironmentFile=-/etc/lyncxdp/lyncxdp.conf' "$DEST/etc/systemd/system/lyncxdp-exporter.service"

# ---- the wrapper ----
# svc CONF CMD: the wrapper inside the server namespace with configuration CONF.
svc() {
	nsenter --net="/run/netns/$S" env LYNCXDP_CONF="$1" LYNCXDP="$LYNCXDP" bash "$WRAPPER" "$2"
}
# conf FILE KEY=VALUE...: a configuration file.
conf() {
	local f=$1
	shift
	{
		echo "# written by tests/suite_service.sh"
		printf '%s\n' "$@"
	} >"$f"
}

two_ns_veth $C lxsv-c0 $S lxsv-s0
veth_pair $C lxsv-c1 $S lxsv-s1
ns_addr $C lxsv-c0 192.0.2.100/24
ns_addr $S lxsv-s0 192.0.2.1/24
ns_addr $C lxsv-c1 198.51.100.100/24
ns_addr $S lxsv-s1 198.51.100.1/24
cp "$D/a.matrix" "$T/site.matrix"
cp "$D/a.site" "$T/site"

# The shipped example parses (its site path does not exist here: check says so, by name).
cp "$TOP/scripts/lyncxdp.conf.example" "$T/example.conf"
sed -i "s|^SITE=.*|SITE=$T/site|" "$T/example.conf"
expect_eq "check: the example configuration (with this test's site) is valid" \
	"lyncxdp-service: $T/example.conf: eth1 eth2: --product sfb2015 --site $T/site --policy monitor: ok" \
	"$(svc "$T/example.conf" check 2>&1)"

conf "$T/good.conf" 'INTERFACES="lxsv-s0 lxsv-s1"' "MATRIX=$T/site.matrix" "SITE='$T/site'" \
	POLICY=enforce TAG=yes MODE=native 'EXPORTER_LISTEN=127.0.0.1:9817'
out=$(svc "$T/good.conf" start 2>&1)
expect_eq "start exits 0 ($(echo "$out" | tail -n 1))" 0 "$?"
lx $S status --json >"$T/st1.json"
expect_eq "start: both interfaces attached, native, enforce, tagging" \
	"lxsv-s0 native enforce True|lxsv-s1 native enforce True" \
	"$(json_get '"|".join("%s %s %s %s" % (i["name"], i["mode"], i["policy"], i["tag"]) for i in sorted(j["interfaces"], key=lambda i: i["name"]))' <"$T/st1.json")"
expect_eq "start: the configured matrix and site" "$T/site.matrix $T/site 0" \
	"$(json_get '"%s %s %d" % (j["matrix"], j["site"], j["reloads"])' <"$T/st1.json")"
expect_eq "ip link: native XDP on both" "native native" "$(ns_xdp $S lxsv-s0) $(ns_xdp $S lxsv-s1)"
out=$(svc "$T/good.conf" start 2>&1)
rc=$?
check "start again while started: refused (exit $rc)" test "$rc" -ne 0
check "... lyncxdp says already attached, the wrapper that this start attached nothing" \
	grep -Pzq "already attached.*\n.*this start attached nothing" <<<"$out"
expect_eq "the refused second start left both attached" "native native" "$(ns_xdp $S lxsv-s0) $(ns_xdp $S lxsv-s1)"

# reload: site B's content in the same file, monitor, no tagging.
cp "$D/b.site" "$T/site"
conf "$T/good.conf" 'INTERFACES="lxsv-s0 lxsv-s1"' "MATRIX=$T/site.matrix" "SITE=$T/site" \
	POLICY=monitor TAG=no MODE=native
out=$(svc "$T/good.conf" reload 2>&1)
expect_eq "reload exits 0 ($(echo "$out" | tail -n 1))" 0 "$?"
lx $S status --json >"$T/st2.json"
expect_eq "reload: reloads == 1, same programs' links" \
	"1 $(json_get '" ".join(str(i["link_id"]) for i in j["interfaces"])' <"$T/st1.json")" \
	"$(json_get '"%d %s" % (j["reloads"], " ".join(str(i["link_id"]) for i in j["interfaces"]))' <"$T/st2.json")"
check "reload: the site checksum changed" test \
	"$(json_get 'j["site_hash"]' <"$T/st1.json")" != "$(json_get 'j["site_hash"]' <"$T/st2.json")"
expect_eq "reload: the changed site's prefixes (3 IPv4, 1 IPv6)" "3 1" \
	"$(json_get '"%d %d" % (j["prefixes_ipv4"], j["prefixes_ipv6"])' <"$T/st2.json")"
expect_eq "reload: both interfaces monitor, no tagging" \
	"lxsv-s0 monitor False|lxsv-s1 monitor False" \
	"$(json_get '"|".join("%s %s %s" % (i["name"], i["policy"], i["tag"]) for i in sorted(j["interfaces"], key=lambda i: i["name"]))' <"$T/st2.json")"

# A reload with a broken site changes nothing.
echo "frontend 192.0.2.300" >>"$T/site"
out=$(svc "$T/good.conf" reload 2>&1)
rc=$?
check "reload with a broken site fails (exit $rc)" test "$rc" -ne 0
check "reload with a broken site says file:line" grep -q "$T/site:[0-9]*: " <<<"$out"
expect_eq "reload with a broken site: reloads still 1" 1 "$(lx $S status --json | json_get 'j["reloads"]')"
cp "$D/b.site" "$T/site"

# A reload naming an interface that is not attached: tables reloaded, the error says to restart.
conf "$T/more.conf" 'INTERFACES="lxsv-s0 lxsv-s1 lxsv-c9"' "MATRIX=$T/site.matrix" "SITE=$T/site"
out=$(svc "$T/more.conf" reload 2>&1)
rc=$?
check "reload with an interface that is not attached fails (exit $rc)" test "$rc" -ne 0
check "... and says a changed INTERFACES needs a restart" grep -q "lxsv-c9.*restart" <<<"$out"

out=$(svc "$T/good.conf" stop 2>&1)
expect_eq "stop exits 0 ($out)" 0 "$?"
expect_no_pins "stop: no pins left"
expect_eq "stop: no XDP on either interface" "none none" "$(ns_xdp $S lxsv-s0) $(ns_xdp $S lxsv-s1)"
out=$(svc "$T/good.conf" stop 2>&1)
expect_eq "stop when nothing is attached exits 0" 0 "$?"
out=$(svc "$T/nonexistent.conf" stop 2>&1)
expect_eq "stop needs no configuration" 0 "$?"
out=$(svc "$T/good.conf" reload 2>&1)
rc=$?
check "reload with nothing attached fails (exit $rc)" test "$rc" -ne 0
check "... saying lyncxdp is not attached" grep -q "not attached" <<<"$out"
expect_no_pins "the failed reload attached nothing"

# start is all or nothing.
conf "$T/missing.conf" 'INTERFACES="lxsv-s0 lxsv-nope"' "MATRIX=$T/site.matrix" "SITE=$T/site" MODE=generic
out=$(svc "$T/missing.conf" start 2>&1)
rc=$?
check "start with a missing second interface fails (exit $rc)" test "$rc" -ne 0
check "... naming it and saying lxsv-s0 was detached again" \
	grep -q "attaching lxsv-nope failed; detached lxsv-s0 again: this start attached nothing" <<<"$out"
expect_eq "... lxsv-s0 has no XDP program left" none "$(ns_xdp $S lxsv-s0)"
expect_no_pins "... and no pins are left"
conf "$T/missing1.conf" 'INTERFACES="lxsv-nope lxsv-s0"' "MATRIX=$T/site.matrix" "SITE=$T/site"
out=$(svc "$T/missing1.conf" start 2>&1)
check "start with a missing first interface fails" test $? -ne 0
expect_eq "... nothing attached to lxsv-s0" none "$(ns_xdp $S lxsv-s0)"
expect_no_pins "... no pins"

# Bad configurations: one clear line each, nothing attached.
bad() { # bad NAME REGEX KEY=VALUE...
	local name=$1 re=$2
	shift 2
	conf "$T/bad.conf" "$@"
	expect_fail "start refuses $name" "$re" svc "$T/bad.conf" start
}
bad "an unknown key" "bad\.conf:3: unknown key 'POLCY'" 'INTERFACES=lxsv-s0' 'POLCY=enforce' "SITE=$T/site"
bad "a line that is not KEY=value" "bad\.conf:2: expected KEY=value" 'INTERFACES lxsv-s0'
bad "POLICY=block" "bad\.conf:3: POLICY is monitor or enforce" 'INTERFACES=lxsv-s0' 'POLICY=block' "SITE=$T/site"
bad "TAG=maybe" "bad\.conf:3: TAG is yes or no" 'INTERFACES=lxsv-s0' 'TAG=maybe' "SITE=$T/site"
bad "MODE=fast" "bad\.conf:3: MODE is native, generic or auto" 'INTERFACES=lxsv-s0' 'MODE=fast' "SITE=$T/site"
bad "PRODUCT and MATRIX both" "bad\.conf:4: set PRODUCT or MATRIX, not both" 'INTERFACES=lxsv-s0' \
	'PRODUCT=sfb2015' "MATRIX=$T/site.matrix" "SITE=$T/site"
bad "no interface" "bad\.conf:2: INTERFACES names no interface" 'INTERFACES=""' "SITE=$T/site"
bad "an interface twice" "listed twice" 'INTERFACES="lxsv-s0 lxsv-s0"' "SITE=$T/site"
bad "a key set twice" "bad\.conf:4: POLICY is set twice \(also on line 2\)" 'POLICY=monitor' 'INTERFACES=lxsv-s0' 'POLICY=enforce'
bad "an unquoted value with spaces" "bad\.conf:2: INTERFACES: put a value with spaces" 'INTERFACES=lxsv-s0 lxsv-s1'
expect_fail "start refuses a missing configuration file" "nonexistent\.conf: no such configuration file" \
	svc "$T/nonexistent.conf" start
echo "frontend 192.0.2.300" >"$T/broken.site"
conf "$T/bad.conf" 'INTERFACES=lxsv-s0' "MATRIX=$T/site.matrix" "SITE=$T/broken.site"
out=$(svc "$T/bad.conf" start 2>&1)
rc=$?
check "start with a broken site fails (exit $rc)" test "$rc" -ne 0
check "... with file:line of the site" grep -q "broken\.site:1: " <<<"$out"
expect_no_pins "bad configurations attached nothing"
expect_eq "no XDP on either interface after the refused starts" "none none" "$(ns_xdp $S lxsv-s0) $(ns_xdp $S lxsv-s1)"
out=$(bash "$WRAPPER" frobnicate 2>&1)
expect_eq "an unknown command: exit 2 and the usage" "2 Usage: lyncxdp-service start|reload|stop|status|check" \
	"$? $(echo "$out" | head -n 1)"

# The installed wrapper finds the installed binary by itself (no LYNCXDP in its environment).
conf "$T/inst.conf" 'INTERFACES=lxsv-s1' "MATRIX=$T/site.matrix" "SITE=$T/site"
out=$(env -u LYNCXDP LYNCXDP_CONF="$T/inst.conf" PATH="$DEST/usr/local/sbin:$PATH" \
	bash "$DEST/usr/local/lib/lyncxdp/lyncxdp-service" check 2>&1)
expect_eq "the installed wrapper checks with the installed binary ($out)" 0 "$?"

ns_cleanup
expect_clean lxsv-
suite_done
