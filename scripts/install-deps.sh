#!/usr/bin/env bash
# Installs everything lyncxdp needs to build, run its demo and pass its tests on a fresh
# Debian 12 machine. Idempotent: packages already present are skipped by apt.
# Called by `make deps` (and so by `make demo`/`make test`) and by .ci/run.
set -euo pipefail

packages=(
	# build
	clang llvm gcc make pkg-config libbpf-dev bpftool libelf-dev zlib1g-dev libpcap-dev
	clang-format libclang-rt-14-dev libmicrohttpd-dev
	# the Debian package (make deb): dpkg-buildflags, dpkg-shlibdeps, dpkg-gencontrol, dpkg-deb
	dpkg-dev
	# run
	iproute2
	# tests and benchmark
	python3 python3-scapy tcpdump tshark socat xdp-tools nftables jq procps util-linux prometheus curl tmux
	# the package's test (suite_package): lintian, man -l, systemd-analyze verify
	lintian man-db systemd
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "install-deps: need root to install: ${missing[*]}" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	echo "install-deps: installing ${missing[*]}"
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# XDP pins live in bpffs; mount it when the machine has not.
if [ "$(id -u)" -eq 0 ] && ! mountpoint -q /sys/fs/bpf; then
	mount -t bpf bpf /sys/fs/bpf
fi
echo "install-deps: ok"
