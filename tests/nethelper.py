"""Traffic helpers for the live-network shell suites (suite_enforce.sh, suite_tag.sh).

Usage: python3 tests/nethelper.py COMMAND ARGS...   (run inside a namespace with nsenter)

Servers print "listening" once their socket is bound, then run until killed. Clients are
bounded by socket timeouts. Addresses are IPv4 or IPv6 (without brackets).

  tcp_server PORT sink|echo          dual-stack; sink answers "SHA256 LENGTH" of what it read,
                                     echo sends every byte back
  tcp_client DST PORT FILE sink|echo RATE CONNECT_TIMEOUT [TOS]
                                     sends FILE (RATE bytes/s, 0 = as fast as possible); prints
                                     the server's answer (sink) or "SHA256 LENGTH" of what came
                                     back (echo); exit 3 when it cannot connect
  udp_echo PORT                      dual-stack, answers every datagram with itself
  udp_send SRC SPORT DST DPORT COUNT WAIT [TOS,TOS...]
                                     COUNT datagrams (sizes vary), each with the next TOS /
                                     traffic class of the list; prints how many answers came
                                     within WAIT seconds
  media PORT LOG CTRL                dual-stack UDP port that logs "SRC SPORT LENGTH" per
                                     datagram and, when the file CTRL says "DST DPORT COUNT",
                                     sends COUNT datagrams there from PORT (CTRL -> CTRL.done)
  answer SRC SPORT COUNT WAIT        waits for a datagram on SRC:SPORT, answers COUNT times
  ping DST COUNT WAIT                ICMP / ICMPv6 echo through the kernel; prints the answers
  forge IFACE GWMAC SRC DST SPORT DPORT COUNT
                                     COUNT forged TCP SYN-ACKs (scapy) out of IFACE
  spoof IFACE GWMAC SRC DST tcp|udp SPORT DPORT FLAGS COUNT [SEQ]
                                     COUNT frames with any source (scapy) out of IFACE; FLAGS
                                     are scapy's TCP flags ("S", "SA", "R"), "-" for UDP; SEQ
                                     the TCP sequence number (default 1000, "random": a random
                                     one per frame)
  hold_server PORT CTRL LOG          dual-stack TCP server that keeps every connection open;
                                     logs "accepted PEERPORT"; when the file CTRL says
                                     "PEERPORT send N", "PEERPORT fin" (shutdown) or
                                     "PEERPORT rst" (abortive close), does it (CTRL -> CTRL.done)
  hold_client DST PORT SPORT LOG     connects from SPORT and only reads, never sends; logs
                                     "connected", then "recv TOTAL" per read, "eof", "reset"
  icmp_error IFACE GWMAC SRC DST QSRC QSPORT QDST QDPORT COUNT
                                     COUNT forged "fragmentation needed" (IPv4) / "packet too
                                     big" (IPv6) errors (scapy) from SRC to DST, quoting a TCP
                                     segment QSRC:QSPORT -> QDST:QDPORT
  router_adv IFACE GWMAC SRC DST HOPLIMIT COUNT
                                     COUNT ICMPv6 router advertisements (scapy)
  connect_from SRC SPORT DST DPORT TIMEOUT
                                     a TCP connect() from SRC:SPORT; prints "connected" or
                                     "connect failed: REASON"
  bad_ipv4_csum IFACE GWMAC SRC DST DPORT
                                     one UDP datagram whose IPv4 header checksum is wrong
  vlan_send IFACE DSTMAC "VLANS SRC DST tcp|udp SPORT DPORT COUNT TOS,TOS..."...
                                     frames (scapy) with their VLAN tags in the frame
  txvlan IFACE on|off                VLAN tag insertion offload of IFACE (ethtool flags ioctl),
                                     then prints the resulting state
"""
import ctypes
import fcntl
import hashlib
import logging
import os
import select
import socket
import struct
import sys
import threading
import time


# scapy warns about routes it does not need (frames go out of a named interface)
logging.getLogger("scapy.runtime").setLevel(logging.ERROR)


def fam(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def v6(addr):  # an address for a dual-stack socket
    return addr if ":" in addr else "::ffff:" + addr


def plain(addr):
    return addr[7:] if addr.startswith("::ffff:") else addr


def set_tos(s, family, tos):
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, tos)
    else:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, tos)


def dual(kind, port):
    s = socket.socket(socket.AF_INET6, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", int(port)))
    return s


def handle(c, mode):
    h, n = hashlib.sha256(), 0
    c.settimeout(30)
    try:
        while True:
            b = c.recv(65536)
            if not b:
                break
            h.update(b)
            n += len(b)
            if mode == "echo":
                c.sendall(b)
        if mode == "sink":
            c.sendall(("%s %d\n" % (h.hexdigest(), n)).encode())
        c.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    finally:
        c.close()


def tcp_server(port, mode):
    s = dual(socket.SOCK_STREAM, port)
    s.listen(16)
    print("listening", flush=True)
    while True:
        c, _ = s.accept()
        threading.Thread(target=handle, args=(c, mode), daemon=True).start()


def tcp_client(dst, port, path, mode, rate, ctimeout, tos="0"):
    data = open(path, "rb").read()
    rate, s = float(rate), socket.socket(fam(dst), socket.SOCK_STREAM)
    if int(tos, 0):
        set_tos(s, fam(dst), int(tos, 0))
    s.settimeout(float(ctimeout))
    try:
        s.connect((dst, int(port)))
    except OSError as e:
        print("connect failed: %s" % e)
        sys.exit(3)
    s.settimeout(20)

    def send():
        t0, step = time.time(), 16384
        for off in range(0, len(data), step):
            s.sendall(data[off:off + step])
            if rate:
                ahead = (off + step) / rate - (time.time() - t0)
                if ahead > 0:
                    time.sleep(ahead)
        s.shutdown(socket.SHUT_WR)

    t = threading.Thread(target=send, daemon=True)
    t.start()
    h, n, got = hashlib.sha256(), 0, b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        if mode == "echo":
            h.update(b)
            n += len(b)
        else:
            got += b
    t.join(20)
    print(got.decode().strip() if mode == "sink" else "%s %d" % (h.hexdigest(), n))


def udp_echo(port):
    s = dual(socket.SOCK_DGRAM, port)
    print("listening", flush=True)
    while True:
        b, a = s.recvfrom(65535)
        s.sendto(b, a)


def udp_send(src, sport, dst, dport, count, wait, tos=""):
    s = socket.socket(fam(dst), socket.SOCK_DGRAM)
    s.bind((src, int(sport)))
    toses = [int(t, 0) for t in tos.split(",") if t]
    for i in range(int(count)):
        if toses:
            set_tos(s, fam(dst), toses[i % len(toses)])
        s.sendto(bytes([i & 0xff]) * (60 + 13 * i % 200), (dst, int(dport)))
    got, end = 0, time.time() + float(wait)
    while got < int(count) and time.time() < end:
        r, _, _ = select.select([s], [], [], max(0, end - time.time()))
        if r:
            s.recv(65535)
            got += 1
    print(got)


def media(port, log, ctrl):
    s = dual(socket.SOCK_DGRAM, port)
    out = open(log, "a")
    print("listening", flush=True)
    while True:
        r, _, _ = select.select([s], [], [], 0.05)
        if r:
            b, a = s.recvfrom(65535)
            out.write("%s %d %d\n" % (plain(a[0]), a[1], len(b)))
            out.flush()
        if os.path.exists(ctrl):
            dst, dport, count = open(ctrl).read().split()
            for _ in range(int(count)):
                s.sendto(b"E" * 60, (v6(dst), int(dport)))
            os.rename(ctrl, ctrl + ".done")


def answer(src, sport, count, wait):
    s = socket.socket(fam(src), socket.SOCK_DGRAM)
    s.bind((src, int(sport)))
    r, _, _ = select.select([s], [], [], float(wait))
    if not r:
        print("nothing came")
        sys.exit(1)
    _, a = s.recvfrom(65535)
    time.sleep(0.3)  # the rest of the burst arrives; no port-unreachable goes back
    for _ in range(int(count)):
        s.sendto(b"C" * 80, a[:2])
    print("%s %d" % (a[0], a[1]))
    time.sleep(0.3)


def csum(b):
    b += b"\0" * (len(b) & 1)
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    t = (t & 0xffff) + (t >> 16)
    return ~((t & 0xffff) + (t >> 16)) & 0xffff


def ping(dst, count, wait):
    is6, ident = ":" in dst, os.getpid() & 0xffff
    s = socket.socket(fam(dst), socket.SOCK_RAW,
                      socket.IPPROTO_ICMPV6 if is6 else socket.IPPROTO_ICMP)
    got = set()
    for seq in range(int(count)):
        body = struct.pack("!HH", ident, seq) + b"lyncxdp-ping"
        if is6:  # the kernel computes the ICMPv6 checksum
            msg = struct.pack("!BBH", 128, 0, 0) + body
        else:
            msg = struct.pack("!BBH", 8, 0, csum(struct.pack("!BBH", 8, 0, 0) + body)) + body
        s.sendto(msg, (dst, 0))
        end = time.time() + (float(wait) if seq == int(count) - 1 else 0.2)
        while time.time() < end:
            r, _, _ = select.select([s], [], [], max(0, end - time.time()))
            if not r:
                break
            b, a = s.recvfrom(65535)
            if not is6:
                b = b[(b[0] & 0x0f) * 4:]
            if (a[0] == dst and len(b) >= 8 and b[0] == (129 if is6 else 0)
                    and struct.unpack("!H", b[4:6])[0] == ident):
                got.add(struct.unpack("!H", b[6:8])[0])
    print(len(got))


def forge(iface, gwmac, src, dst, sport, dport, count):
    from scapy.all import Ether, IP, IPv6, TCP, sendp
    L3 = IPv6 if ":" in dst else IP
    p = Ether(dst=gwmac) / L3(src=src, dst=dst) / TCP(sport=int(sport), dport=int(dport),
                                                     flags="SA", seq=1000, ack=2000)
    sendp([p] * int(count), iface=iface, verbose=0)


def spoof(iface, gwmac, src, dst, proto, sport, dport, flags, count, seq="1000"):
    import random
    from scapy.all import Ether, IP, IPv6, TCP, UDP, Raw, sendp
    L3 = IPv6 if ":" in dst else IP
    frames = []
    for _ in range(int(count)):
        n = random.getrandbits(32) if seq == "random" else int(seq)
        l4 = (TCP(sport=int(sport), dport=int(dport), flags=flags, seq=n) if proto == "tcp"
              else UDP(sport=int(sport), dport=int(dport)) / Raw(b"spoofed"))
        frames.append(Ether(dst=gwmac) / L3(src=src, dst=dst) / l4)
    sendp(frames, iface=iface, verbose=0)


def hold_server(port, ctrl, log):
    s = dual(socket.SOCK_STREAM, port)
    s.listen(16)
    out, conns = open(log, "a"), {}
    print("listening", flush=True)
    while True:
        r, _, _ = select.select([s], [], [], 0.05)
        if r:
            c, a = s.accept()
            conns[str(a[1])] = c
            out.write("accepted %d\n" % a[1])
            out.flush()
        if os.path.exists(ctrl):
            for line in open(ctrl).read().splitlines():
                peer, what = line.split()[:2]
                c = conns[peer]
                if what == "send":
                    c.sendall(b"L" * int(line.split()[2]))
                elif what == "fin":
                    c.shutdown(socket.SHUT_WR)
                elif what == "rst":
                    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    c.close()
            os.rename(ctrl, ctrl + ".done")


def hold_client(dst, port, sport, log):
    s = socket.socket(fam(dst), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::" if ":" in dst else "0.0.0.0", int(sport)))
    s.settimeout(5)
    out, total = open(log, "a"), 0
    s.connect((dst, int(port)))
    out.write("connected\n")
    out.flush()
    s.settimeout(None)
    try:
        while True:
            b = s.recv(65536)
            if not b:
                out.write("eof\n")
                break
            total += len(b)
            out.write("recv %d\n" % total)
            out.flush()
    except ConnectionResetError:
        out.write("reset\n")
    out.flush()
    time.sleep(3600)  # keep the socket: the Edge never closes its side (killed at the end)


def icmp_error(iface, gwmac, src, dst, qsrc, qsport, qdst, qdport, count):
    from scapy.all import Ether, IP, IPv6, TCP, ICMP, ICMPv6PacketTooBig, sendp
    if ":" in dst:
        quoted = IPv6(src=qsrc, dst=qdst) / TCP(sport=int(qsport), dport=int(qdport), flags="A")
        err = IPv6(src=src, dst=dst) / ICMPv6PacketTooBig(mtu=1280) / quoted
    else:
        quoted = IP(src=qsrc, dst=qdst, flags="DF") / TCP(sport=int(qsport), dport=int(qdport),
                                                          flags="A")
        err = IP(src=src, dst=dst) / ICMP(type=3, code=4, nexthopmtu=1280) / quoted
    sendp([Ether(dst=gwmac) / err] * int(count), iface=iface, verbose=0)


def router_adv(iface, gwmac, src, dst, hlim, count):
    from scapy.all import Ether, IPv6, ICMPv6ND_RA, sendp
    p = Ether(dst=gwmac) / IPv6(src=src, dst=dst, hlim=int(hlim)) / ICMPv6ND_RA()
    sendp([p] * int(count), iface=iface, verbose=0)


def connect_from(src, sport, dst, dport, ctimeout):
    s = socket.socket(fam(dst), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((src, int(sport)))
    s.settimeout(float(ctimeout))
    try:
        s.connect((dst, int(dport)))
        print("connected")
    except OSError as e:
        print("connect failed: %s" % e)


def vlan_send(iface, dstmac, *specs):
    # Per SPEC "VLANS SRC DST tcp|udp SPORT DPORT COUNT TOS,TOS...": COUNT frames with the
    # VLAN tags VLANS ("100": 802.1Q; "100,200": 802.1ad 100 outside, 802.1Q 200 inside) in
    # the frame itself, each with the next TOS / traffic class of the list.
    from scapy.all import Ether, Dot1Q, Dot1AD, IP, IPv6, TCP, UDP, Raw, sendp
    frames = []
    for spec in specs:
        vlans, src, dst, proto, sport, dport, count, tos = spec.split()
        tags = [int(v) for v in vlans.split(",")]
        toses = [int(t, 0) for t in tos.split(",")]
        for i in range(int(count)):
            t = toses[i % len(toses)]
            l3 = (IPv6(src=src, dst=dst, tc=t) if ":" in dst
                  else IP(src=src, dst=dst, tos=t, id=1000 + i))
            l4 = (TCP(sport=int(sport), dport=int(dport), flags="S", seq=i) if proto == "tcp"
                  else UDP(sport=int(sport), dport=int(dport)))
            if len(tags) == 2:
                eth = (Ether(dst=dstmac, type=0x88a8) / Dot1AD(vlan=tags[0], type=0x8100)
                       / Dot1Q(vlan=tags[1]))
            else:
                eth = Ether(dst=dstmac) / Dot1Q(vlan=tags[0])
            frames.append(eth / l3 / l4 / Raw(bytes([i & 0xff]) * (40 + 11 * i % 150)))
    sendp(frames, iface=iface, verbose=0)


def bad_ipv4_csum(iface, gwmac, src, dst, dport):
    from scapy.all import Ether, IP, UDP, Raw, sendp
    p = IP(src=src, dst=dst) / UDP(sport=40999, dport=int(dport)) / Raw(b"x" * 20)
    p = IP(bytes(p))
    p.chksum ^= 0x5555
    sendp(Ether(dst=gwmac) / p, iface=iface, verbose=0)


def txvlan(iface, state):
    # ETHTOOL_GFLAGS / ETHTOOL_SFLAGS with ETH_FLAG_TXVLAN: whether the kernel leaves the VLAN
    # tag in the packet's metadata (offload) or writes it into the frame.
    SIOCETHTOOL, GFLAGS, SFLAGS, TXVLAN = 0x8946, 0x25, 0x26, 1 << 7
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def call(cmd, data):
        ev = ctypes.create_string_buffer(struct.pack("II", cmd, data), 8)
        ifr = struct.pack("16sP", iface.encode(), ctypes.addressof(ev)).ljust(40, b"\0")
        fcntl.ioctl(s, SIOCETHTOOL, ifr)
        return struct.unpack("II", ev.raw)[1]

    flags = call(GFLAGS, 0)
    call(SFLAGS, flags | TXVLAN if state == "on" else flags & ~TXVLAN)
    print("on" if call(GFLAGS, 0) & TXVLAN else "off")


if __name__ == "__main__":
    globals()[sys.argv[1]](*sys.argv[2:])
