# Turns the records of scripts/bench.sh ("R<TAB>section<TAB>row<TAB>metric<TAB>value") into
# tests/bench/results.json: figures, targets (measured, not asserted) and the method.
def num: if test("^-?[0-9]+(\\.[0-9]+)?$") then tonumber else . end;
def ratio(a; b): if (a | type) == "number" and (b | type) == "number" and b > 0 then a / b else null end;
def target(name; value; limit; op; unit):
  { target: name, value: value, limit: limit, unit: unit,
    met: (if value == null then null elif op == "<=" then value <= limit else value >= limit end) };

# Frame types of the mix, from the frames' names: regressions show where they come from.
def frame_type: if startswith("ipv6 ") then "IPv6" elif test("^(vlan|qinq) ") then "VLAN"
  elif test("\\(reply\\)") then "flow-tracked reply" elif startswith("unclassified") then "unclassified"
  else "IPv4" end;
def mean: if length == 0 then null else add / length end;

(split("\n") | map(select(startswith("R\t")) | split("\t")
  | { s: .[1], r: .[2], m: .[3], v: (.[4] // "") })) as $recs
| (reduce $recs[] as $x ({};
    if ($x.m | startswith("pkt:")) then
      .[$x.s][$x.r].packets[$x.m[4:]] = { ns: ($x.v | split(" ")[0] | num), verdict: ($x.v | split(" ")[1]) }
    else .[$x.s][$x.r][$x.m] = ($x.v | num) end)) as $d
| ($d.cost // {}) as $cost
| ($cost | with_entries(select(.key | test("^(rules|prefixes)(-inside)? ") | not))) as $pp
| ($cost | with_entries(select(.key | test("^(rules|prefixes)(-inside)? ")))) as $sc
| ($d.tput // {}) as $tp
| ($d.ctl.sfb2015 // {}) as $ctl
| {
  date: $date, kernel: $kernel, cpu: { model: $cpu, count: $ncpu, mitigations: $mitigations },
  runtime_s: $runtime,
  settings: { repeat: $repeat, cost_runs: $cost_runs, tput_seconds: $tput_seconds,
              tput_runs: $tput_runs, cpu: $bench_cpu, napi: $napi, scheduling: (if $rt == "" then "normal" else $rt end),
              loadavg_before: $load,
              generator_cpu: (if $napi == "threaded" then $gen_cpu else $bench_cpu end) },
  per_packet: $pp,
  frame_types: ($pp | with_entries(select(.value.packets != null)
    | .value |= (.packets | to_entries | group_by(.key | frame_type)
                 | map({ key: (.[0].key | frame_type), value: (map(.value.ns) | mean) }) | from_entries))),
  throughput: ($tp | del(.receiver)),
  receiver: ($tp.receiver // {}),
  scaling: $sc,
  control: ($ctl | with_entries(select(.key | startswith("map:") | not))),
  control_maps: ($ctl | with_entries(select(.key | startswith("map:"))) | with_entries(.key |= .[4:])),
  info: ($d.info // {}),
  na: ([$recs[] | select(.m == "na") | { section: .s, row: .r, reason: .v }]),
  targets: [
    target("lyncxdp monitor per packet <= 0.5x xdp-filter";
           ratio($pp["lyncxdp monitor"].ns; $pp["xdp-filter"].ns); 0.5; "<="; "x"),
    target("lyncxdp monitor per packet <= 67 ns"; $pp["lyncxdp monitor"].ns; 67; "<="; "ns"),
    target("lyncxdp monitor per packet <= 1.25x floor";
           ratio($pp["lyncxdp monitor"].ns; $pp["floor"].ns); 1.25; "<="; "x"),
    target("lyncxdp enforce per packet <= 1.5x floor";
           ratio($pp["lyncxdp enforce"].ns; $pp["floor"].ns); 1.5; "<="; "x"),
    target("lyncxdp monitor+tag per packet <= monitor + 2 ns";
           (if ($pp["lyncxdp monitor+tag"].ns | type) == "number" and ($pp["lyncxdp monitor"].ns | type) == "number"
            then $pp["lyncxdp monitor+tag"].ns - $pp["lyncxdp monitor"].ns else null end); 2; "<="; "ns"),
    target("lyncxdp enforce per packet <= 67 ns"; $pp["lyncxdp enforce"].ns; 67; "<="; "ns"),
    target("lyncxdp enforce throughput >= 85% of bare XDP_DROP";
           ratio($tp["lyncxdp enforce"].pps; $tp["bare XDP_DROP"].pps); 0.85; ">="; "x"),
    target("lyncxdp enforce throughput >= 1.5x xdp-filter";
           ratio($tp["lyncxdp enforce"].pps; $tp["xdp-filter"].pps); 1.5; ">="; "x"),
    target("lyncxdp enforce throughput >= 5x nftables (set)";
           ratio($tp["lyncxdp enforce"].pps; $tp["nftables set"].pps); 5; ">="; "x"),
    ($sc | to_entries[] | select(.key | test(" (10)$") | not)
     | (.key | split(" ")[0]) as $kind
     | target("\(.key) within 25% of \($kind) 10"; ratio(.value.ns; $sc["\($kind) 10"].ns); 1.25; "<="; "x"))
  ],
  method: [
    "Per-packet cost: BPF_PROG_TEST_RUN, \($repeat) repeats of each of 16 frames (SIP/TLS to and from a Front End and the Edge, STUN both ways, media 49152-65535 and 50000-59999 with a relay reply on a tracked flow, IPv6, 802.1Q and QinQ, unclassified web and DNS), row cost = mean over the frames, median of \($cost_runs) runs, rows interleaved inside each run, pinned to CPU \($bench_cpu) with taskset\(if $rt == "" then "" else " and run SCHED_FIFO (\($rt)) so that other work cannot preempt it; the same for the throughput and control-plane drivers" end). Time = wall clock of each call / repeats; every program is attached to an idle veth while measured so it stays in the XDP dispatcher (otherwise each call adds ms of dispatcher updates); the kernel's own whole-ns figure is in kernel_ns.",
    "Rows: bare = XDP_PASS without parsing (the hook's own cost); floor = bpf/bench_floor.bpf.c, the least a classifier that looks an address up must do: parse Ethernet (two VLAN tags), IPv4 or IPv6 and the TCP/UDP ports, one hash lookup of the destination address (filled with every destination of the mix, so every lookup hits), one per-CPU counter increment; per frame type = mean over the mix's frames of that type (IPv4: untagged IPv4 frames a rule classifies, not replies; IPv6; VLAN: 802.1Q and QinQ; flow-tracked reply: the relay reply on the flow the Edge opened; unclassified: web and DNS no rule matches); lyncxdp instances are private (loaded, filled, never pinned), sfb2015 matrix and maps/site.example: monitor rows without the site's `protect` lines (classification and counting alone), enforce with exactly `protect edge-external edge-internal`; monitor+tag rewrites DSCP.",
    "xdp-filter (xdp-tools): `xdp-filter load -p deny` (allow-list: a frame passes when its destination port is listed for its transport) in native mode on a veth, pins in a private bpffs, libxdp dispatcher skipped (LIBXDP_SKIP_DISPATCHER=1) so the attached program is xdp-filter's own; ports: every port of every range an sfb2015 rule names (`xdp-filter port -p PROTO FIRST`, the rest of each range copied from that value into its filter_ports map: key = port in network byte order, per-CPU u64 of flags src=1 dst=2 tcp=4 udp=8 plus a hit counter). Ports on both transports need its 'all' program (ethernet and IP address lookups run too, on empty maps). Run with BPF_PROG_TEST_RUN on the same frames by program id.",
    "Throughput: veth pair between namespaces lxbench-tx and lxbench-rx. Generator: bench_txgen (XDP_TX) run with BPF_PROG_TEST_RUN and BPF_F_TEST_XDP_LIVE_FRAMES on the sending veth (ctx data_end = frame length, ingress_ifindex = sending veth; the program is also attached to the sending veth so test runs skip dispatcher updates); one 64-byte frame, TCP to a protected Edge address on a port it does not accept, dropped by every row. Where the receiver runs: veth has no IRQ to steer and RPS only applies after XDP; the receiving veth's NAPI is scheduled by veth_xdp_xmit on the sending CPU and runs in that CPU's NET_RX softirq. " + (if $napi == "threaded" then "Here the receiving veth uses threaded NAPI, its kthread pinned to CPU \($bench_cpu), the generator on CPU \($gen_cpu): the receiver then spends most of its time in the page_pool spinlock returning the generator's pages across CPUs (perf: ~70% in __pv_queued_spin_lock_slowpath/page_pool_put_unrefed_netmem), which swamps the programs' differences and makes rounds vary." else "Both are pinned to CPU \($bench_cpu) (taskset of the generator): one CPU does the generator's and the receiver's work (cpuN_busy, cpuN_net_rx_softirqs_per_s show it), so a row's rate is 1 / (generator + receive cost) and the difference in ns_per_packet between two rows is exactly their difference in receive cost. The alternative, threaded NAPI on the other CPU (BENCH_NAPI=threaded), was measured to spend ~70% of the receiver's time in the page_pool spinlock returning the generator's pages across CPUs, swamping the programs' differences." end),
    "Receiver rows take turns in each of \($tput_runs) rounds (\($tput_seconds) s windows after 1 s settling, generator running throughout); pps = the row's own drop counter (bench_drop's per-CPU counter, lyncxdp's enforced-drop counters, xdp-filter's XDP_DROP stats, the nftables named counter) / window, median over rounds; if_rx_pps is the veth's rx_packets for comparison. xdp-filter here is the program loaded above, attached to the receiving veth too. nftables rows: bare XDP_PASS on the receiver so that veth delivers frames through NAPI/GRO, and a netdev ingress table on it generated from the matrix for the protected roles (listen rules accepted per protected address, then drop; no conntrack in netdev, so replies to outbound flows are not admitted), as a plain rule list or with concatenated interval sets.",
    "Scaling: monitor instances, same frames; rules: generated matrices = the 10 rules the frames need + padding rules on ports 6000-39999, with the example site (no protect); prefixes: generated sites = the 10 prefixes the frames need + padding (IPv4 hosts and /28s in 10/8, IPv6 hosts and /64s in 2001:db8:1000::/36 and 2001:db8:2000::/36); prefixes-inside: the same sizes with the padding around the frames' own addresses, never covering one (IPv4 hosts in 198.51/16, /28s in 192.0/13, skipping the frames' /24s; IPv6 hosts in the frames' /64s, /64s in 2001:db8:20::/48), so host lookups and the trie walk happen where the traffic is.",
    "Control plane: parse + compile, load (verifier), fill maps, native attach of the sfb2015 matrix with the example site; reload = a second instance parsed, loaded and filled, then swapped in with XDP_FLAGS_REPLACE; median of 5. Memory = sum of memlock of the instance's maps (what bpftool map show reports as bytes_memlock, read from /proc/self/fdinfo)."
  ]
}
