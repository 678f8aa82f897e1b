#!/usr/bin/env bash
# What request lines cost (issue 15, item 4). Three `disttags serve` (release build) on one file
# store holding left-pad: one as shipped (one JSON line per request, to a file) and two with
# RUST_LOG=warn (no request lines), all three on CPU 0 and driven at the same time, each by its own
# `wrk -t1` on CPU 1 (taskset). Whatever slows the machine during a run slows all three alike, so
# the ratio of their CPU time (user + system, /proc/PID/stat) per request is steady where the
# times themselves are not (on a shared VM identical runs in turn differ by a third). The second
# server without lines is the control: its ratio to the first shows what the method itself makes
# of two identical servers. For each wrk connection count (1, 10, 100), ROUNDS runs of DURATION;
# prints a markdown table of medians. Figures are printed, never asserted.
#
#   bench/lines.sh [--quick]      (default: 7 rounds of 3 s per cell, about 1.5 min; --quick: 1 of 1 s)
set -euo pipefail
shopt -s inherit_errexit
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "$0")/common.sh"

rounds=7
duration=3s
for arg in "$@"; do
  case "$arg" in
    --quick) rounds=1; duration=1s ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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

servers=(on off control)
declare -A addr pid
for server in "${servers[@]}"; do
  addr[$server]=127.0.0.1:$(free_port)
  level=warn
  [ "$server" = on ] && level=info
  DISTTAGS_LOG=stdout RUST_LOG=$level taskset -c 0 "$bin/disttags" serve --listen "${addr[$server]}" \
    --store "file://$store" --upstream off >"$work/$server.log" 2>&1 &
  bench_pids+=($!)
  pid[$server]=$!
done
for server in "${servers[@]}"; do
  wait_ok "http://${addr[$server]}/-/ping" 10 ||
    die "disttags serve ($server) did not start: $(tail -3 "$work/$server.log")"
done

# round C: every server driven at once for DURATION; appends "c server req/s cpu_us_per_request"
# per server to $results.
round() {
  local server before=() after=() wrk_pids=() i=0
  for server in "${servers[@]}"; do before+=("$(cpu_ticks "${pid[$server]}")"); done
  for server in "${servers[@]}"; do
    taskset -c 1 wrk -t1 -c"$1" -d"$duration" --timeout 30s \
      "http://${addr[$server]}/-/package/left-pad/dist-tags" >"$work/wrk-$server.out" 2>&1 &
    wrk_pids+=($!)
  done
  for p in "${wrk_pids[@]}"; do
    wait "$p" || die "wrk failed: $(cat "$work"/wrk-*.out)"
  done
  for server in "${servers[@]}"; do after+=("$(cpu_ticks "${pid[$server]}")"); done
  for server in "${servers[@]}"; do
    awk -v c="$1" -v s="$server" -v ticks=$((after[i] - before[i])) -v hz="$tick" '
      /^Requests\/sec:/ { rps = $2 }
      / requests in / { n = $1 }
      /Non-2xx or 3xx responses:/ { bad += $NF }
      END { if (bad || !n) { print "error " s " " bad " non-2xx answers, " n " requests"; exit 1 }
            printf "%s\t%s\t%.0f\t%.3f\n", c, s, rps, ticks / hz / n * 1e6 }' \
      "$work/wrk-$server.out" >>"$results" || die "$(tail -1 "$results")"
    i=$((i + 1))
  done
}

results=$work/results.tsv
: >"$results"
machine=$(machine_line)
for c in 1 10 100; do
  say "c=$c: $rounds rounds of $duration, the three servers at once"
  for _ in $(seq "$rounds"); do round "$c"; done
done
lines=$(grep -c '"message"' "$work/on.log" || true)
[ "$lines" -gt 0 ] || die "the server with request lines on wrote none"

echo
echo "$machine"
echo "commit $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown); $rounds rounds of $duration per cell; three disttags serve on CPU 0 driven at once, each by a wrk -t1 on CPU 1; left-pad; lines to a file ($lines written)"
echo
python3 - "$results" "$rounds" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
rounds = int(sys.argv[2])
cells = {}
for c, server, rps, cpu in rows:
    cells.setdefault((int(c), server), []).append((float(rps), float(cpu)))
print("| wrk connections | lines off: req/s | CPU µs/req | lines on: req/s | CPU µs/req | on vs off | control vs off |")
print("|---:|---:|---:|---:|---:|---:|---:|")
for c in sorted({c for c, _ in cells}):
    med = lambda s, i: statistics.median(r[i] for r in cells[(c, s)])
    # Ratios within each round, where the three servers saw the same machine.
    ratio = lambda s: statistics.median(a[1] / b[1] for a, b in zip(cells[(c, s)], cells[(c, "off")]))
    print(f"| {c} | {med('off', 0):,.0f} | {med('off', 1):.2f} | {med('on', 0):,.0f} | {med('on', 1):.2f} "
          f"| {(ratio('on') - 1) * 100:+.1f}% | {(ratio('control') - 1) * 100:+.1f}% |")
PY
