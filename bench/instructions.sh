#!/usr/bin/env bash
# What a request and its request line cost in instructions: a count that does not change with the
# machine's load, where CPU time on a shared VM can swing by a third between identical runs.
# `disttags serve` (release build) on one file store holding left-pad runs under valgrind's
# cachegrind (instruction counts only), with lines on (to a file) and with RUST_LOG=warn, each twice:
# a short and a long `wrk -c10` run. The difference of the two totals over the difference of their
# request counts is the instructions per request, start-up cancelled out. Prints a markdown table;
# figures are printed, never asserted. User-space instructions only: the kernel's part of a request
# (most of it: TCP) is not counted, so this is the line's share of the program's own work.
#
#   bench/instructions.sh [--quick]   (default: runs of 2 s and 8 s, about 1 min; --quick: 1 s and 2 s)
set -euo pipefail
shopt -s inherit_errexit
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "$0")/common.sh"

short=2s
long=8s
for arg in "$@"; do
  case "$arg" in
    --quick) short=1s; long=2s ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $arg (use --quick)" ;;
  esac
done

need cargo "Rust toolchain"
need curl
install_tools wrk valgrind
left_pad_store

# run NAME LEVEL DURATION: one server under cachegrind, one wrk run; sets `requests` and
# `instructions` (the whole process', start-up included).
run() {
  local addr out pid
  addr=127.0.0.1:$(free_port)
  out=$work/$1-$3
  DISTTAGS_LOG=stdout RUST_LOG=$2 valgrind --tool=cachegrind --cache-sim=no \
    --cachegrind-out-file="$out.cg" "$bin/disttags" serve --listen "$addr" --store "file://$store" \
    --upstream off >"$out.log" 2>"$out.err" &
  pid=$!
  bench_pids+=("$pid")
  wait_ok "http://$addr/-/ping" 60 || die "disttags serve under valgrind did not start: $(tail -3 "$out.err")"
  requests=$(wrk -t1 -c10 -d"$3" --timeout 30s "http://$addr/-/package/left-pad/dist-tags" |
    awk '/ requests in / { print $1 }')
  kill -TERM "$pid"
  wait "$pid" || die "disttags serve under valgrind did not stop cleanly: $(tail -3 "$out.err")"
  [ "${requests:-0}" -gt 0 ] || die "wrk answered no requests ($1, $3)"
  instructions=$(awk '/^summary:/ { print $2 }' "$out.cg")
  [ -n "$instructions" ] || die "cachegrind wrote no summary ($1, $3)"
}

machine=$(machine_line)
declare -A per_request
for mode in off on; do
  level=info
  [ "$mode" = off ] && level=warn
  say "lines $mode: runs of $short and $long under cachegrind"
  run "$mode" "$level" "$short"
  n1=$requests i1=$instructions
  run "$mode" "$level" "$long"
  n2=$requests i2=$instructions
  [ "$n2" -gt "$n1" ] || die "the $long run answered no more requests than the $short one ($n2 <= $n1)"
  per_request[$mode]=$(( (i2 - i1) / (n2 - n1) ))
  say "lines $mode: $n1 requests, $i1 instructions; then $n2 requests, $i2 instructions"
done

echo
echo "$machine"
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown); cachegrind, runs of $short and $long, wrk -c10; left-pad"
echo
echo "| | user-space instructions per request |"
echo "|---|---:|"
echo "| lines off (RUST_LOG=warn) | ${per_request[off]} |"
echo "| lines on | ${per_request[on]} |"
awk -v on="${per_request[on]}" -v off="${per_request[off]}" \
  'BEGIN { printf "| the line | %+d (%+.0f%%) |\n", on - off, (on - off) / off * 100 }'
