#!/usr/bin/env bash
# Start-up and footprint (issue 6, item 6). For each shim binary (release profile: fat LTO,
# stripped): time from process start to the first successful response (median of 20 fresh starts;
# disttags-lambda through the test suite's Runtime API emulator, tests/src/lambda.rs, which
# bench/startup.py drives through the `runtime_api` binary), idle RSS, RSS after 100k
# requests and the peak RSS, and the binary's size. Prints a markdown table; figures are never
# asserted. The store is a file store holding is-odd, left-pad, react and typescript (`.front`).
#
#   bench/startup.sh [--quick]      # --quick: 5 starts and 5k requests, for CI
#   DISTTAGS_METRICS=off bench/startup.sh   # the same without the metrics recorder
#
# Every shim listens on 127.0.0.1 except disttags-cloudrun, which binds 0.0.0.0:$PORT as on Cloud Run.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "$0")/common.sh"

starts=20
requests=100000
for arg in "$@"; do
  case "$arg" in
    --quick) starts=5; requests=5000 ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $arg (use --quick)" ;;
  esac
done
shims=(disttags disttags-cloudrun disttags-azure disttags-lambda)

need cargo "Rust toolchain"
need python3
need curl
install_tools wrk
check_packuments is-odd.front left-pad.front react.front typescript.front

cd "$repo"
build_release
# The Runtime API emulator the Lambda shim polls: a test-suite tool, so a debug build (its speed is not
# what is measured, and the tests have usually built it already).
build_debug
runtime_api="${CARGO_TARGET_DIR:-$repo/target}/debug/runtime_api"

start_work
store=$bench_work/store
DISTTAGS_LOG=none "$bin/disttags" import --store "file://$store" \
  "$shared"/{is-odd,left-pad,react,typescript}.front.json.gz >/dev/null

machine=$(machine_line)
results=$bench_work/results.jsonl
for shim in "${shims[@]}"; do
  say "$shim: $starts starts, then $requests requests"
  python3 "$repo/bench/startup.py" --shim "$shim" --bin "$bin/$shim" --store "$store" --work "$bench_work" \
    --starts "$starts" --requests "$requests" --runtime-api "$runtime_api" >>"$results"
done
stripped=""
command -v file >/dev/null 2>&1 && stripped=$(for s in "${shims[@]}"; do file -b "$bin/$s" | grep -o 'not stripped' || true; done)

echo
echo "$machine"
echo "$bench_profile profile$([ "$bench_profile" = release ] && echo ' (fat LTO, codegen-units 1, strip)'); $starts starts per shim; load: $requests requests cycling is-odd, left-pad, react, typescript (HTTP shims: wrk -t1 -c10; Lambda: one invocation after another through the emulator)"
[ -n "$stripped" ] && echo "note: some binaries are not stripped"
echo
python3 - "$results" "$requests" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
requests = int(sys.argv[2])
load = f"{requests // 1000}k" if requests % 1000 == 0 else str(requests)
print(f"| shim | start → first 200, median (min–max) | idle RSS | RSS after {load} | peak RSS | binary |")
print("|---|---:|---:|---:|---:|---:|")
failed = []
mib = lambda kib: f"{kib / 1024:.1f} MiB"
for r in rows:
    size = f"{r['size'] / 1048576:.1f} MiB ({r['size']:,} B)"
    if "error" in r:
        failed.append(r)
        print(f"| {r['shim']} | failed † | | | | {size} |")
        continue
    t = r["start_ms"]
    start = f"{statistics.median(t):.1f} ms ({min(t):.1f}–{max(t):.1f})"
    errors = f" ({r['errors']} errors)" if r.get("errors") else ""
    print(f"| {r['shim']} | {start} | {mib(r['idle_kib'])} | {mib(r['after_kib'])}{errors} | {mib(r['peak_kib'])} | {size} |")
print()
for r in rows:
    if "error" not in r:
        print(f"{r['shim']}: {r['requests']} requests in {r['load_s']:.1f} s ({r['requests'] / r['load_s']:,.0f}/s)")
for r in failed:
    print(f"† {r['shim']}: {r['error']}")
sys.exit(1 if failed else 0)
EOF
