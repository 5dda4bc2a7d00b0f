#!/usr/bin/env bash
# Media streams through the real program (`lyncxdp replay --streams`, BPF_PROG_TEST_RUN):
#  1. every RTP stream of the project's captures against Wireshark's own RTP analysis
#     (tshark -o rtp.heuristic_rtp:TRUE -z rtp,streams, run here): same streams, packets and
#     lost equal, mean jitter within 5% where tshark knows the clock rate;
#  2. synthetic scapy streams with known loss, reordering, duplicates, sequence wrap and
#     jitter (capture timestamps set) give exactly the expected figures;
#  3. false positives on the captures: nothing counted as RTP that tshark does not call RTP.
# Needs root (BPF), tshark, python3 with scapy. The work is in tests/media_streams.py.
# shellcheck shell=bash
set -uo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CAPS=${CAPTURES:-$TOP/tests/captures}
export LYNCXDP_MAPS=${LYNCXDP_MAPS:-$MAPS}
WORK=$(mktemp -d /tmp/lyncxdp-media.XXXXXX)
trap 'if [ -n "${LYNCXDP_KEEP_TMP:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi' EXIT

if ! command -v tshark >/dev/null; then
	fail "tshark is not installed: the comparison cannot run"
	exit 1
fi
$PY "$TOP/tests/media_streams.py" "$LYNCXDP" "$CAPS" "$TOP/tests/sites" "$WORK"
