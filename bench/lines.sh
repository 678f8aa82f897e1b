#!/usr/bin/env bash
# What request lines cost (issue 15, item 4). Two `disttags serve` (release build) on one file store
# holding left-pad, one as shipped (one JSON line per request, to a file) and one with RUST_LOG=warn
# (no request lines), both on CPU 0, wrk on CPU 1 (taskset). For each wrk connection count (1, 10,
# 100) the two are driven in turn, ROUNDS times each for DURATION, so that a change in the machine's
# speed falls on both alike; prints a markdown table of the medians: req/s and the server's CPU time
# (user + system, /proc/PID/stat) per request, and on against off. Figures are printed, never
# asserted.
#
#   bench/lines.sh [--quick]      (default: 7 rounds of 3 s per cell, about 3 min; --quick: 1 of 1 s)
set -euo pipefail
shopt -s inherit_errexit
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "$0")/common.sh"

rounds=7
duration=3s
for arg in "$@"; do
  case "$arg" in
    --quick) rounds=1; duration=1s ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $arg (use --quick)" ;;
  esac
done

need cargo "Rust toolchain"
need curl
need python3
need taskset "util-linux"
[ "$(nproc)" -ge 2 ] || die "needs at least 2 CPUs (the server on one, wrk on another)"
install_tools wrk
left_pad_store

on_addr=127.0.0.1:$(free_port)
off_addr=127.0.0.1:$(free_port)
DISTTAGS_LOG=stdout taskset -c 0 "$bin/disttags" serve --listen "$on_addr" --store "file://$store" \
  --upstream off >"$work/on.log" 2>&1 &
bench_pids+=($!)
DISTTAGS_LOG=stdout RUST_LOG=warn taskset -c 0 "$bin/disttags" serve --listen "$off_addr" \
  --store "file://$store" --upstream off >"$work/off.log" 2>&1 &
bench_pids+=($!)
on_pid=${bench_pids[0]} off_pid=${bench_pids[1]}
wait_ok "http://$on_addr/-/ping" 10 || die "disttags serve did not start: $(tail -3 "$work/on.log")"
wait_ok "http://$off_addr/-/ping" 10 || die "disttags serve (RUST_LOG=warn) did not start: $(tail -3 "$work/off.log")"

# cell PID ADDR C -> "req/s cpu_us_per_request"
cell() {
  local out before after
  before=$(cpu_ticks "$1")
  out=$(taskset -c 1 wrk -t1 -c"$3" -d"$duration" --timeout 30s "http://$2/-/package/left-pad/dist-tags" 2>&1) ||
    die "wrk failed against $2: $out"
  after=$(cpu_ticks "$1")
  awk -v ticks=$((after - before)) -v hz="$tick" '
    /^Requests\/sec:/ { rps = $2 }
    / requests in / { n = $1 }
    /Non-2xx or 3xx responses:/ { bad += $NF }
    END { if (bad) { print "error " bad " non-2xx answers"; exit }
          printf "%.0f %.2f\n", rps, n ? ticks / hz / n * 1e6 : 0 }' <<<"$out"
}

results=$work/results.tsv
: >"$results"
machine=$(machine_line)
for c in 1 10 100; do
  say "c=$c: $rounds rounds of $duration each, lines on and off in turn"
  for _ in $(seq "$rounds"); do
    for server in on off; do
      if [ "$server" = on ]; then row=$(cell "$on_pid" "$on_addr" "$c"); else row=$(cell "$off_pid" "$off_addr" "$c"); fi
      case $row in error*) die "$server, c=$c: $row" ;; esac
      printf '%s\t%s\t%s\n' "$c" "$server" "$row" >>"$results"
    done
  done
done
lines=$(grep -c '"message"' "$work/on.log" || true)
[ "$lines" -gt 0 ] || die "the server with request lines on wrote none"

echo
echo "$machine"
echo "commit $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown); $rounds rounds of $duration per cell; disttags serve on CPU 0, wrk -t1 on CPU 1; left-pad; lines to a file ($lines written)"
echo
python3 - "$results" <<'PY'
import statistics, sys
cells = {}
for line in open(sys.argv[1]):
    c, server, rps, cpu = line.split()
    cells.setdefault((int(c), server), []).append((float(rps), float(cpu)))
print("| wrk connections | lines off: req/s | CPU µs/req | lines on: req/s | CPU µs/req | on vs off |")
print("|---:|---:|---:|---:|---:|---:|")
for c in sorted({c for c, _ in cells}):
    med = {s: (statistics.median(r for r, _ in cells[(c, s)]), statistics.median(u for _, u in cells[(c, s)])) for s in ("on", "off")}
    (off_rps, off_cpu), (on_rps, on_cpu) = med["off"], med["on"]
    change = f"{(on_cpu - off_cpu) / off_cpu * 100:+.0f}%" if off_cpu else "-"
    print(f"| {c} | {off_rps:,.0f} | {off_cpu:.2f} | {on_rps:,.0f} | {on_cpu:.2f} | {change} |")
PY
