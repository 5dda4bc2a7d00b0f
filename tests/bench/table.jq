# Renders tests/bench/results.json as one table with the method under it.
# --arg fmt text: aligned columns for the terminal; --arg fmt md: Markdown.
def r2: . * 100 | round / 100;
def r1: . * 10 | round / 10;
def isnum: type == "number";
def ns: if isnum then "\(r2) ns" else "n/a" end;
def mpps: if isnum then "\(. / 1e6 | r2) Mpps" else "n/a" end;
def x: if isnum then "\(r2)x" else "n/a" end;
def pct: if isnum then "\(. * 100 | r1)%" else "n/a" end;
def ratio(a; b): if (a | isnum) and (b | isnum) and b > 0 then a / b else null end;
def status($t): if $t == null then "" elif $t.met == null then "n/a"
  elif $t.met then "MET" else "MISSED" end;
def tgt($name): (.targets | map(select(.target == $name)) | first) as $t
  | if $t == null then "" else "\($t.limit)\(if $t.unit == "x" then "x" else " \($t.unit)" end) \(status($t))" end;
def tgtp($R; $pre; $name; $post): ($R | tgt($name)) as $t | if $t == "" then empty else $pre + $t + $post end;
def result(v; f): if v.na then "n/a: \(v.na)" else (v | f) end;

. as $R
| $R.per_packet as $pp | $R.throughput as $tp | $R.scaling as $sc | $R.control as $c
| [ ["section", "row", "result", "compared", "target"] ]
+ [ $pp | to_entries[] | .key as $k | .value as $v
    | [ "per packet", $k, result($v; .ns | ns),
        (if $v.na or ($k | startswith("bare")) then ""
         else [ (if ($k | startswith("lyncxdp")) and ($pp.floor.ns | isnum) then "\(ratio($v.ns; $pp["floor"].ns) | x) of floor" else empty end),
                (if $k != "xdp-filter" then "\(ratio($v.ns; $pp["xdp-filter"].ns) | x) of xdp-filter" else empty end),
                "+\(($v.ns - ($pp["bare XDP_PASS"].ns // 0)) | r2) ns over bare",
                (if $v.extra_frame_ns | isnum then "throughput frame \($v.extra_frame_ns | r1) ns (\($v.extra_frame_verdict))" else empty end)
              ] | join(", ") end),
        (if $k == "lyncxdp monitor" then
           [ tgtp($R; "<= "; "lyncxdp monitor per packet <= 1.25x floor"; " of floor"),
             tgtp($R; "<= "; "lyncxdp monitor per packet <= 67 ns"; ""),
             tgtp($R; "<= "; "lyncxdp monitor per packet <= 0.5x xdp-filter"; " of xdp-filter") ] | join("; ")
         elif $k == "lyncxdp enforce" then
           [ tgtp($R; "<= "; "lyncxdp enforce per packet <= 1.5x floor"; " of floor"),
             tgtp($R; "<= "; "lyncxdp enforce per packet <= 67 ns"; "") ] | join("; ")
         elif $k == "lyncxdp monitor+tag" then
           [ tgtp($R; "<= monitor + "; "lyncxdp monitor+tag per packet <= monitor + 2 ns"; "") ] | join("")
         else "" end) ] ]
+ [ ($R.frame_types // {}) as $ft | ["IPv4", "IPv6", "VLAN", "flow-tracked reply", "unclassified"][] as $t
    | select($ft["lyncxdp monitor"][$t] != null)
    | [ "per frame type", $t,
        ([ [ "lyncxdp monitor", "lyncxdp monitor+tag", "lyncxdp enforce", "floor", "xdp-filter" ][] as $k
           | select($ft[$k][$t] | isnum) | "\($k | sub("^lyncxdp "; "")) \($ft[$k][$t] | ns)" ] | join(", ")),
        (if $ft.floor[$t] | isnum then "monitor \(ratio($ft["lyncxdp monitor"][$t]; $ft.floor[$t]) | x), enforce \(ratio($ft["lyncxdp enforce"][$t]; $ft.floor[$t]) | x) of floor" else "" end),
        "" ] ]
+ [ $tp | to_entries[] | .key as $k | .value as $v
    | [ "throughput", $k, result($v; .pps | mpps),
        (if $v.na or ($k | startswith("bare")) then ""
         else ([ "\(ratio($v.pps; $tp["bare XDP_DROP"].pps) | pct) of XDP_DROP",
                 (if ($v.ns_per_packet | isnum) and ($tp["bare XDP_DROP"].ns_per_packet | isnum) then
                    "+\(($v.ns_per_packet - $tp["bare XDP_DROP"].ns_per_packet) | r1) ns/pkt" else empty end) ]
               + (if $k == "lyncxdp enforce" then
                   [ "\(ratio($v.pps; $tp["xdp-filter"].pps) | x) xdp-filter",
                     "\(ratio($v.pps; $tp["nftables list"].pps) | x) nft list",
                     "\(ratio($v.pps; $tp["nftables set"].pps) | x) nft set" ] else [] end)) | join(", ") end),
        (if $k == "lyncxdp enforce" then
           [ ">= " + ($R | tgt("lyncxdp enforce throughput >= 85% of bare XDP_DROP")) + " of drop",
             ">= " + ($R | tgt("lyncxdp enforce throughput >= 1.5x xdp-filter")) + " xdp-filter",
             ">= " + ($R | tgt("lyncxdp enforce throughput >= 5x nftables (set)")) + " nft set" ] | join("; ")
         else "" end) ] ]
+ [ $sc | to_entries[] | .key as $k | .value as $v | ($k | split(" ")[0]) as $kind
    | [ "scaling", $k, result($v; .ns | ns),
        (if $v.na or ($k | test(" 10$")) then "" else "\(ratio($v.ns; $sc["\($kind) 10"].ns) | x) of \($kind) 10" end),
        (if $k | test(" 10$") then "" else "<= " + ($R | tgt("\($k) within 25% of \($kind) 10")) end) ] ]
+ (if ($c | length) == 0 then [] elif $c.na then [ [ "control", "sfb2015", "n/a: \($c.na)", "", "" ] ] else [
    [ "control", "attach sfb2015 (load+fill+attach)", "\($c.attach_ms) ms",
      "parse \($c.attach_parse_ms), load \($c.attach_load_ms), fill \($c.attach_fill_ms), attach \($c.attach_netlink_ms) ms", "" ],
    [ "control", "reload (second load+fill, swap)", "\($c.reload_ms) ms",
      "parse \($c.reload_parse_ms), load \($c.reload_load_ms), fill \($c.reload_fill_ms), swap \($c.reload_swap_ms) ms", "" ],
    [ "control", "map memory (memlock)", "\(($c.memlock_bytes // 0) / 1048576 | r2) MiB",
      "\($c.maps) maps, \($c.rules) rules, \($c.prefixes) prefixes", "" ] ] end)
| . as $rows
| if $fmt == "readme" then
    "### \($R.cpu.model)\n\n\($R.date), kernel \($R.kernel), \($R.cpu.count) CPUs, `make bench` at \($R.info.source.commit // "?")"
      + (if ($R.cpu.mitigations // {}) | length > 0 then ". Mitigations: " + ([ $R.cpu.mitigations | to_entries[]
         | select(.value | test("^Not affected$") | not) | "\(.key): \(.value)" ] | join("; ")) else ". Mitigations: not recorded" end) + ".\n",
    ($rows[0] | "| " + join(" | ") + " |"),
    ($rows[0] | map("---") | "| " + join(" | ") + " |"),
    ($rows[1:][] | map(gsub("\\|"; "\\|")) | "| " + join(" | ") + " |")
  elif $fmt == "md" then
    "# lyncxdp benchmark\n\n\($R.date), kernel \($R.kernel), \($R.cpu.model) (\($R.cpu.count) CPUs), \($R.runtime_s) s.\n",
    (if ($R.cpu.mitigations // {}) | length > 0 then
       "Mitigations (/sys/devices/system/cpu/vulnerabilities): " + ([ $R.cpu.mitigations | to_entries[]
         | select(.value | test("^Not affected$") | not) | "\(.key): \(.value)" ] | join("; ")) + ".\n"
     else "Mitigations: not recorded.\n" end),
    ($rows[0] | "| " + join(" | ") + " |"),
    ($rows[0] | map("---") | "| " + join(" | ") + " |"),
    ($rows[1:][] | map(gsub("\\|"; "\\|")) | "| " + join(" | ") + " |"),
    "\n## Targets\n",
    ($R.targets[] | "- \(.target): \(if .value | isnum then .value | r2 else "n/a" end) -> \(status(.))"),
    "\n## Method\n",
    ($R.method[] | "- " + .),
    (if ($R.na | length) > 0 then "\n## Not measured\n", ($R.na[] | "- \(.section) / \(.row): \(.reason)") else empty end)
  else
    ([range(0; 5) as $i | [$rows[] | .[$i] | length] | max]) as $w
    | "lyncxdp benchmark  \($R.date)  kernel \($R.kernel)  \($R.cpu.model) (\($R.cpu.count) CPUs)  \($R.runtime_s) s",
      "mitigations: " + ([ ($R.cpu.mitigations // {}) | to_entries[]
         | select(.value | test("^Not affected$") | not) | "\(.key): \(.value)" ] | join("; ")),
      "",
      ($rows[] | [range(0; 5) as $i | .[$i] + (" " * ($w[$i] - (.[$i] | length) + 2) // "")] | join("") | sub(" +$"; "")),
      "",
      "Method:",
      ($R.method[] | "  - " + .)
  end
