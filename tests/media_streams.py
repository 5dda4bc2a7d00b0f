#!/usr/bin/env python3
"""Media streams of `lyncxdp replay --streams --json` against tshark and against synthetic
streams whose figures are known by construction. Prints PASS/FAIL lines (tests/run.sh counts
them) and exits non-zero on any failure. Usage: media_streams.py LYNCXDP CAPTURES SITES WORK"""
import glob
import json
import os
import re
import struct
import subprocess
import sys

LYNCXDP, CAPS, SITES, WORK = sys.argv[1:5]
SITE_ALL = os.path.join(SITES, "media-all.site")
SITE = os.path.join(SITES, "media.site")
MEDIA = os.path.join(os.path.dirname(SITES), "..", "maps", "media")
passed = failed = 0


def check(ok, name):
    global passed, failed
    print(("PASS " if ok else "FAIL ") + name)
    if ok:
        passed += 1
    else:
        failed += 1
    return ok


def known_pts():
    """Payload types of maps/media: {pt: (kind, clock)}."""
    pts = {}
    path = os.path.join(os.environ.get("LYNCXDP_MAPS", os.path.dirname(MEDIA)), "media")
    for line in open(path):
        f = line.split("#")[0].split()
        if f and f[0] == "pt":
            pts[int(f[1])] = (f[2], int(f[3]))
    return pts


PTS = known_pts()


def replay(site, cap, *extra):
    r = subprocess.run([LYNCXDP, "replay", "--site", site, cap, "--json", *extra],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"lyncxdp replay {cap}: {r.stderr.strip()}")
    return json.loads(r.stdout)


def tshark_streams(cap, decode=()):
    """tshark's RTP streams: {(src, sport, dst, dport, ssrc): dict}. decode: extra tshark
    arguments (-d tcp.port==P,rtp: RTP over TCP, RFC 4571, which no heuristic finds)."""
    out = subprocess.run(["tshark", "-r", cap, "-o", "rtp.heuristic_rtp:TRUE", *decode, "-q",
                          "-z", "rtp,streams"], capture_output=True, text=True).stdout
    streams = {}
    for line in out.splitlines():
        m = re.match(r"\s*[\d.]+\s+[\d.]+\s+(\S+)\s+(\d+)\s+(\S+)\s+(\d+)\s+(0x[0-9A-Fa-f]+)"
                     r"\s+(.+?)\s+(\d+)\s+(-?\d+) \(.*?\)\s+([-\d.]+)\s+([-\d.]+)\s+([-\d.]+)"
                     r"\s+([-\d.]+)\s+([-\d.]+)\s+([-\d.]+)", line)
        if not m:
            continue
        key = (m[1], int(m[2]), m[3], int(m[4]), int(m[5], 16))
        streams[key] = {"payload": m[6], "packets": int(m[7]), "lost": int(m[8]),
                        "mean_jitter": float(m[13])}
    # The payload type of each stream's first packet, from tshark too.
    fields = subprocess.run(["tshark", "-r", cap, "-o", "rtp.heuristic_rtp:TRUE", *decode, "-Y",
                             "rtp", "-T", "fields", "-E", "separator=,", "-E", "occurrence=f",
                             "-e", "ip.src", "-e", "ipv6.src", "-e", "udp.srcport", "-e",
                             "tcp.srcport", "-e", "ip.dst", "-e", "ipv6.dst", "-e",
                             "udp.dstport", "-e", "tcp.dstport", "-e", "rtp.ssrc", "-e",
                             "rtp.p_type"], capture_output=True, text=True).stdout
    for line in fields.splitlines():
        f = line.split(",")
        if len(f) < 10 or not f[8]:
            continue
        key = (f[0] or f[1], int(f[2] or f[3]), f[4] or f[5], int(f[6] or f[7]), int(f[8], 16))
        if key in streams and "pt" not in streams[key]:
            streams[key]["pt"] = int(f[9])
    return streams


def ours(report):
    return {(s["src"], s["sport"], s["dst"], s["dport"], int(s["ssrc"], 16)): s
            for s in report["streams"]}


def compare_captures():
    caps = sorted(glob.glob(os.path.join(CAPS, "*.pcap")) +
                  glob.glob(os.path.join(CAPS, "*.pcapng")))
    check(len(caps) >= 8, f"{len(caps)} captures found in {CAPS}")
    total_theirs = total_compared = total_excluded = 0
    fp_packets = rtp_packets_total = udp_total = 0
    for cap in caps:
        name = os.path.basename(cap)
        theirs = tshark_streams(cap)
        report = replay(SITE_ALL, cap, "--streams")
        mine = ours(report)
        # RTP over TCP (RFC 4571, MS-TURN over TCP): tshark decodes it when told the port.
        for s in report["streams"]:
            if s["transport"] == "tcp":
                more = tshark_streams(cap, ("-d", f"tcp.port=={s['dport']},rtp"))
                theirs.update({k: v for k, v in more.items() if k not in theirs})
        total_theirs += len(theirs)
        for key, t in sorted(theirs.items()):
            label = f"{name} {key[0]}:{key[1]} -> {key[2]}:{key[3]} ssrc 0x{key[4]:08X}"
            pt = t.get("pt")
            if pt not in PTS:
                total_excluded += 1
                check(key not in mine, f"{label}: payload type {pt} ({t['payload']}) is not in "
                      "maps/media, so lyncxdp does not track it (documented)")
                continue
            total_compared += 1
            if not check(key in mine, f"{label}: tshark's stream ({t['payload']}) is tracked"):
                continue
            s = mine[key]
            check(s["payload_type"] == pt, f"{label}: payload type {pt} (ours "
                  f"{s['payload_type']})")
            check(s["packets"] == t["packets"], f"{label}: packets {t['packets']} (ours "
                  f"{s['packets']})")
            check(s["lost"] == max(t["lost"], 0), f"{label}: lost {t['lost']} (ours "
                  f"{s['lost']})")
            clock_known = pt < 96 and PTS[pt][1] > 0  # tshark knows static clocks only
            if clock_known:
                ref = t["mean_jitter"]
                ok = abs(s["mean_jitter_ms"] - ref) <= 0.05 * ref + 1e-9
                check(ok, f"{label}: mean jitter {ref} ms (ours {s['mean_jitter_ms']:.4f}, "
                      "within 5%)")
        for key in mine:
            check(key in theirs, f"{name}: our stream {key} is one of tshark's")
        # False positives: packets counted as RTP media that are not in a tshark stream.
        rep = replay(SITE_ALL, cap)
        counted = sum(r["media"][k]["packets"] for r in rep["services"] if "media" in r
                      for k in ("audio", "video", "sharing"))
        inspected = sum(sum(v["packets"] for v in r["media"].values())
                        for r in rep["services"] if "media" in r)
        in_streams = sum(s["packets"] - 1 for s in mine.values())  # first: probation
        fp = counted - sum(s["packets"] - 1 for k, s in mine.items() if k in theirs)
        check(counted == in_streams and fp == 0,
              f"{name}: {counted} packets counted as RTP media, all in streams tshark finds "
              f"(false positives {fp} of {inspected} inspected packets)")
        fp_packets += fp
        udp_total += inspected
        rtp_packets_total += counted
    check(total_compared + total_excluded == total_theirs and total_compared >= 6,
          f"captures: {total_theirs} tshark streams, {total_compared} compared, "
          f"{total_excluded} excluded by payload type")
    print(f"# captures: {udp_total} inspected packets, {rtp_packets_total} counted as RTP "
          f"media, {fp_packets} false positives")


# ---- synthetic streams with known figures ----

def rtp_packet(pt, seq, ts, ssrc, marker=0, size=160):
    return struct.pack("!BBHII", 0x80, (marker << 7) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF,
                       ssrc) + bytes(size)


def rfc_jitter(arrivals_s, stamps, clock):
    """RFC 3550 A.8 in floating point, in ms, and Wireshark's mean of it."""
    j = 0.0
    mean = 0.0
    for i in range(1, len(arrivals_s)):
        d = abs((arrivals_s[i] - arrivals_s[i - 1]) * clock - (stamps[i] - stamps[i - 1]))
        j += (d - j) / 16
        mean = (mean * (i - 1) + j) / i
    return j * 1000 / clock, mean * 1000 / clock


def synthetic():
    from scapy.all import Ether, IP, UDP, Raw, wrpcap  # noqa: E402
    frames = []
    expect = {}

    def stream(ssrc, pt, seqs, clock, ptime, start, jitter_pattern=None, sport=50000,
               dport=40000, channel=False, wrap_seq=None):
        """seqs: the sequence numbers as sent (with gaps, swaps, repeats)."""
        base = seqs[0]
        arrivals, stamps = [], []
        for i, seq in enumerate(seqs):
            idx = (seq - base) & 0xFFFF if wrap_seq is None else (seq - base) % 65536
            ts = idx * int(clock * ptime)
            t = start + i * ptime + (jitter_pattern[i % len(jitter_pattern)]
                                     if jitter_pattern else 0.0)
            payload = rtp_packet(pt, seq, ts, ssrc)
            if channel:
                payload = struct.pack("!HH", 0x4001, len(payload)) + payload
            p = Ether() / IP(src="192.0.2.130", dst="198.51.100.7") / \
                UDP(sport=sport, dport=dport) / Raw(payload)
            p.time = t
            frames.append(p)
            arrivals.append(t)
            stamps.append(ts)
        return arrivals, stamps

    start = 1700000000.0
    # 1. clean: 200 packets, no loss.
    stream(0x1001, 0, list(range(100, 300)), 8000, 0.02, start, sport=50000)
    expect[0x1001] = dict(packets=200, lost=0, reordered=0, duplicates=0, expected=200)
    # 2. loss: 300 packets sent, 10, 11 and 150 lost.
    seqs = [s for s in range(1000, 1300) if s not in (1010, 1011, 1150)]
    stream(0x1002, 8, seqs, 8000, 0.02, start, sport=50002)
    expect[0x1002] = dict(packets=297, lost=3, reordered=0, duplicates=0, expected=300)
    # 3. reordering: 2001/2002 and 2050/2052 swapped; nothing lost.
    seqs = list(range(2000 - 5, 2100))
    i = seqs.index(2000)
    seqs[i + 1], seqs[i + 2] = seqs[i + 2], seqs[i + 1]
    i = seqs.index(2050)
    seqs[i], seqs[i + 2] = seqs[i + 2], seqs[i]
    stream(0x1003, 9, seqs, 8000, 0.02, start, sport=50004)
    # ... 2049, 2052, 2051, 2050, 2053: 2051 and 2050 arrive late, as does 2001.
    expect[0x1003] = dict(packets=105, lost=0, reordered=3, duplicates=0, expected=105)
    # 4. duplicates: 3010 twice more, 3020 once more.
    seqs = list(range(3000, 3100))
    seqs.insert(seqs.index(3010) + 1, 3010)
    seqs.insert(seqs.index(3010) + 1, 3010)
    seqs.insert(seqs.index(3020) + 1, 3020)
    stream(0x1004, 0, seqs, 8000, 0.02, start, sport=50006)
    expect[0x1004] = dict(packets=103, lost=0, reordered=0, duplicates=3, expected=100)
    # 5. sequence wrap: 65500 .. 65535, 0 .. 99, one lost after the wrap.
    seqs = [s & 0xFFFF for s in range(65500, 65636) if s != 65540]
    stream(0x1005, 0, seqs, 8000, 0.02, start, sport=50008, wrap_seq=True)
    expect[0x1005] = dict(packets=135, lost=1, reordered=0, duplicates=0, expected=136,
                          highest_seq=65536 + 99)
    # 6. jitter: arrivals alternate 0 / +4 ms around a 20 ms clock (8 kHz), 400 packets.
    arr, st = stream(0x1006, 0, list(range(0, 400)), 8000, 0.02, start, [0.0, 0.004],
                     sport=50010)
    j, mean = rfc_jitter(arr, st, 8000)
    expect[0x1006] = dict(packets=400, lost=0, jitter_ms=j, mean_jitter_ms=mean)
    # 7. video at 90 kHz with jitter pattern, through TURN ChannelData.
    arr, st = stream(0x1007, 121, list(range(7000, 7300)), 90000, 1 / 30, start,
                     [0.0, 0.002, 0.005, 0.001], sport=50012, channel=True)
    j, mean = rfc_jitter(arr, st, 90000)
    expect[0x1007] = dict(packets=300, lost=0, jitter_ms=j, mean_jitter_ms=mean, media="video",
                          turn_channel=True)
    # 8. a poor audio stream (CQD: > 500 packets and loss > 10%) and a good one.
    seqs = [s for s in range(600 * 10) if s % 10 < 8][:600]
    stream(0x1008, 0, seqs, 8000, 0.02, start, sport=50014)
    expect[0x1008] = dict(packets=600, verdict="poor")
    stream(0x1009, 0, list(range(600)), 8000, 0.02, start, sport=50016)
    expect[0x1009] = dict(packets=600, verdict="good", lost=0)
    frames.sort(key=lambda p: float(p.time))
    path = os.path.join(WORK, "synthetic.pcap")
    wrpcap(path, frames)
    mine = {int(s["ssrc"], 16): s for s in replay(SITE, path, "--streams")["streams"]}
    for ssrc, exp in sorted(expect.items()):
        s = mine.get(ssrc)
        if not check(s is not None, f"synthetic stream 0x{ssrc:08X} is tracked"):
            continue
        for k, v in exp.items():
            if k in ("jitter_ms", "mean_jitter_ms"):
                ok = abs(s[k] - v) <= 0.01 * v + 0.002
                check(ok, f"synthetic 0x{ssrc:08X}: {k} {v:.4f} (RFC 3550 A.8 in floating "
                      f"point; ours {s[k]:.4f}, within 1%)")
            else:
                check(s[k] == v, f"synthetic 0x{ssrc:08X}: {k} {v} (ours {s[k]})")
    check(len(mine) == len(expect), f"synthetic: {len(expect)} streams, no others "
          f"(ours {len(mine)})")
    # tshark agrees on the synthetic capture too (packets, lost) where it has no duplicates.
    theirs = tshark_streams(path)
    for key, t in theirs.items():
        s = mine.get(key[4])
        if s and s["duplicates"] == 0 and s["reordered"] == 0 and not s["turn_channel"]:
            check(s["packets"] == t["packets"] and s["lost"] == max(t["lost"], 0),
                  f"synthetic 0x{key[4]:08X}: tshark agrees: {t['packets']} packets, "
                  f"{t['lost']} lost")


compare_captures()
synthetic()
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
